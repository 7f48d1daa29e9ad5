//! Safe extraction on the host of tar streams that come out of containers (artifacts, test
//! results). A container is not trusted: an entry that would land outside the destination
//! (`..`, an absolute path, a path through a symlink, a link whose target leaves the
//! destination) stops the extraction with an error before anything is written for it. Device
//! files and FIFOs are skipped; owners are not restored.

use std::fs::{self, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use tar::EntryType;

/// Extracts `tar` into `dest` (created if missing) and returns the files and links written.
pub fn extract_safe(tar: impl Read, dest: &Path) -> io::Result<Vec<PathBuf>> {
    fs::create_dir_all(dest)?;
    let mut archive = tar::Archive::new(tar);
    let mut written = Vec::new();
    let mut dirs = Vec::new();
    for entry in archive.entries()? {
        let mut entry = entry?;
        let raw = entry.path()?.into_owned();
        let rel = relative(&raw)?;
        let kind = entry.header().entry_type();
        if rel.as_os_str().is_empty() {
            // `./` itself: `dest` already exists.
            if kind.is_dir() {
                continue;
            }
            return Err(refuse(&raw, "it names the destination itself"));
        }
        check_parents(dest, &rel, &raw)?;
        let target = dest.join(&rel);
        match kind {
            EntryType::Directory => {
                make_dir(&target, &raw)?;
                dirs.push((target, entry.header().mode().unwrap_or(0o755)));
            }
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                write_file(&mut entry, &target, &raw)?;
                written.push(target);
            }
            EntryType::Symlink => {
                let link = link_name(&entry, &raw)?;
                check_symlink(&rel, &link, &raw)?;
                clear(&target, &raw)?;
                std::os::unix::fs::symlink(&link, &target)?;
                written.push(target);
            }
            EntryType::Link => {
                hard_link(dest, &rel, &link_name(&entry, &raw)?, &raw)?;
                written.push(target);
            }
            // Devices, FIFOs and pax/GNU metadata carry nothing to keep on the host.
            _ => {}
        }
    }
    // Last, so read-only directories did not block the files inside them.
    for (dir, mode) in dirs.into_iter().rev() {
        fs::set_permissions(&dir, fs::Permissions::from_mode((mode & 0o777) | 0o700))?;
    }
    Ok(written)
}

fn refuse(path: &Path, reason: impl std::fmt::Display) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!(
            "refusing to extract {:?}: {reason}",
            path.display().to_string()
        ),
    )
}

/// The entry path without `.` components; `..` and absolute paths are refused.
fn relative(path: &Path) -> io::Result<PathBuf> {
    let mut rel = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => rel.push(part),
            Component::CurDir => {}
            Component::ParentDir => return Err(refuse(path, "it contains `..`")),
            Component::RootDir | Component::Prefix(_) => {
                return Err(refuse(path, "it is an absolute path"));
            }
        }
    }
    Ok(rel)
}

/// Every existing ancestor of `rel` under `dest` must be a real directory: writing through a
/// symlink could land anywhere.
fn check_parents(dest: &Path, rel: &Path, raw: &Path) -> io::Result<()> {
    let mut current = dest.to_path_buf();
    let Some(parent) = rel.parent() else {
        return Ok(());
    };
    for part in parent.components() {
        current.push(part);
        match fs::symlink_metadata(&current) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(refuse(
                    raw,
                    format!("it passes through the symlink {}", current.display()),
                ));
            }
            Ok(m) if !m.is_dir() => {
                return Err(refuse(
                    raw,
                    format!("{} is not a directory", current.display()),
                ));
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn make_dir(target: &Path, raw: &Path) -> io::Result<()> {
    match fs::symlink_metadata(target) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(m) if m.file_type().is_symlink() => Err(refuse(raw, "a symlink is in the way")),
        Ok(_) => {
            fs::remove_file(target)?;
            fs::create_dir_all(target)
        }
        Err(_) => fs::create_dir_all(target),
    }
}

/// Removes a file or symlink at `target` so that the new entry replaces it instead of writing
/// through it; a directory in the way is an error.
fn clear(target: &Path, raw: &Path) -> io::Result<()> {
    if let Some(parent) = target.parent() {
        fs::create_dir_all(parent)?;
    }
    match fs::symlink_metadata(target) {
        Ok(m) if m.is_dir() => Err(refuse(raw, "a directory is in the way")),
        Ok(_) => fs::remove_file(target),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

fn write_file<R: Read>(entry: &mut tar::Entry<'_, R>, target: &Path, raw: &Path) -> io::Result<()> {
    clear(target, raw)?;
    let mode = entry.header().mode().unwrap_or(0o644) & 0o777;
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(target)?;
    io::copy(entry, &mut file)?;
    if let Ok(mtime) = entry.header().mtime() {
        file.set_modified(UNIX_EPOCH + Duration::from_secs(mtime))?;
    }
    file.set_permissions(fs::Permissions::from_mode(mode))
}

fn link_name<R: Read>(entry: &tar::Entry<'_, R>, raw: &Path) -> io::Result<PathBuf> {
    match entry.link_name()? {
        Some(link) if !link.as_os_str().is_empty() => Ok(link.into_owned()),
        _ => Err(refuse(raw, "the link has no target")),
    }
}

/// A symlink at `rel` may point to `link` only if it stays inside: relative, and any `..` at
/// the start only (each one climbs one real directory, all of which exist under `dest`). A
/// `..` after a name is refused, because that name may itself be a symlink.
fn check_symlink(rel: &Path, link: &Path, raw: &Path) -> io::Result<()> {
    let depth = rel.components().count() - 1;
    let mut climbs = 0;
    let mut named = false;
    for component in link.components() {
        match component {
            Component::Normal(_) => named = true,
            Component::CurDir => {}
            Component::ParentDir if named => {
                return Err(refuse(
                    raw,
                    format!("its target {link:?} has `..` after a name"),
                ));
            }
            Component::ParentDir => climbs += 1,
            Component::RootDir | Component::Prefix(_) => {
                return Err(refuse(raw, format!("its target {link:?} is absolute")));
            }
        }
    }
    if climbs > depth {
        return Err(refuse(
            raw,
            format!("its target {link:?} leaves the destination"),
        ));
    }
    Ok(())
}

/// A hard link names another entry of the archive; that entry must be inside and not a
/// directory, and if it is a symlink its target must also be safe at the new place.
fn hard_link(dest: &Path, rel: &Path, link: &Path, raw: &Path) -> io::Result<()> {
    let source_rel = relative(link)
        .map_err(|_| refuse(raw, format!("its target {link:?} leaves the destination")))?;
    check_parents(dest, &source_rel, raw)?;
    let source = dest.join(&source_rel);
    let meta = fs::symlink_metadata(&source).map_err(|_| {
        refuse(
            raw,
            format!("its target {link:?} was not extracted before it"),
        )
    })?;
    if meta.is_dir() {
        return Err(refuse(raw, "hard links to directories are not allowed"));
    }
    if meta.file_type().is_symlink() {
        check_symlink(rel, &fs::read_link(&source)?, raw)?;
    }
    let target = dest.join(rel);
    clear(&target, raw)?;
    fs::hard_link(&source, &target)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tar entry written byte by byte, so the tests can build what the `tar` crate refuses to.
    fn raw_entry(out: &mut Vec<u8>, path: &str, kind: EntryType, link: &str, data: &[u8]) {
        let mut header = tar::Header::new_old();
        let old = header.as_old_mut();
        old.name[..path.len()].copy_from_slice(path.as_bytes());
        old.linkname[..link.len()].copy_from_slice(link.as_bytes());
        header.set_entry_type(kind);
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(1_700_000_000);
        header.set_cksum();
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(data);
        out.resize(out.len().next_multiple_of(512), 0);
    }

    fn tar_of(entries: &[(&str, EntryType, &str, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        for (path, kind, link, data) in entries {
            raw_entry(&mut out, path, *kind, link, data);
        }
        out.extend_from_slice(&[0; 1024]);
        out
    }

    /// Extracts into `root/dest` and returns the error; asserts nothing appeared in `root`
    /// outside `dest`.
    fn attack(entries: &[(&str, EntryType, &str, &[u8])]) -> String {
        let root = tempfile::tempdir().unwrap();
        let dest = root.path().join("dest");
        let err = extract_safe(&tar_of(entries)[..], &dest).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        let outside: Vec<_> = fs::read_dir(root.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(outside, vec!["dest"], "something escaped: {err}");
        err.to_string()
    }

    const FILE: EntryType = EntryType::Regular;
    const SYMLINK: EntryType = EntryType::Symlink;
    const HARDLINK: EntryType = EntryType::Link;

    #[test]
    fn extracts_files_dirs_and_inner_links() {
        let dir = tempfile::tempdir().unwrap();
        let tar = tar_of(&[
            ("./", EntryType::Directory, "", b""),
            ("a/", EntryType::Directory, "", b""),
            ("a/b.txt", FILE, "", b"hello"),
            ("a/c/d.txt", FILE, "", b"deep"),
            ("a/c/up", SYMLINK, "../b.txt", b""),
            ("same", HARDLINK, "a/b.txt", b""),
        ]);
        let written = extract_safe(&tar[..], dir.path()).unwrap();
        assert_eq!(written.len(), 4);
        assert_eq!(
            fs::read_to_string(dir.path().join("a/c/up")).unwrap(),
            "hello"
        );
        assert_eq!(
            fs::read_to_string(dir.path().join("same")).unwrap(),
            "hello"
        );
        assert_eq!(
            fs::read_to_string(dir.path().join("a/c/d.txt")).unwrap(),
            "deep"
        );
    }

    #[test]
    fn replaces_an_existing_symlink_instead_of_writing_through_it() {
        let root = tempfile::tempdir().unwrap();
        let dest = root.path().join("dest");
        fs::create_dir(&dest).unwrap();
        let victim = root.path().join("victim");
        fs::write(&victim, "safe").unwrap();
        std::os::unix::fs::symlink(&victim, dest.join("f")).unwrap();
        extract_safe(&tar_of(&[("f", FILE, "", b"new")])[..], &dest).unwrap();
        assert_eq!(fs::read_to_string(&victim).unwrap(), "safe");
        assert_eq!(fs::read_to_string(dest.join("f")).unwrap(), "new");
    }

    #[test]
    fn refuses_parent_dir_paths() {
        let err = attack(&[("../evil", FILE, "", b"x")]);
        assert!(err.contains("contains `..`"), "{err}");
        attack(&[("a/../../evil", FILE, "", b"x")]);
    }

    #[test]
    fn refuses_absolute_paths() {
        let err = attack(&[("/tmp/localci-evil", FILE, "", b"x")]);
        assert!(err.contains("absolute path"), "{err}");
    }

    #[test]
    fn refuses_symlinks_that_escape() {
        let err = attack(&[("l", SYMLINK, "/etc/passwd", b"")]);
        assert!(err.contains("is absolute"), "{err}");
        let err = attack(&[("a/l", SYMLINK, "../../x", b"")]);
        assert!(err.contains("leaves the destination"), "{err}");
        // `b` could be a symlink to `.`, making `b/..` the parent of dest.
        let err = attack(&[("l", SYMLINK, "b/../..", b"")]);
        assert!(err.contains("after a name"), "{err}");
    }

    #[test]
    fn refuses_entries_through_a_symlink() {
        // The classic two-step: a harmless-looking link, then a file written through it.
        let err = attack(&[("d", SYMLINK, ".", b""), ("d/f", FILE, "", b"x")]);
        assert!(err.contains("passes through the symlink"), "{err}");
        let err = attack(&[("up", SYMLINK, "sub", b""), ("up/x", FILE, "", b"x")]);
        assert!(err.contains("passes through the symlink"), "{err}");
    }

    #[test]
    fn refuses_hard_links_that_escape() {
        let err = attack(&[("h", HARDLINK, "../outside", b"")]);
        assert!(err.contains("leaves the destination"), "{err}");
        let err = attack(&[("h", HARDLINK, "/etc/passwd", b"")]);
        assert!(err.contains("leaves the destination"), "{err}");
        // A safe deep symlink hard-linked to a shallower place would point outside.
        let err = attack(&[
            ("a/b/l", SYMLINK, "../../x", b""),
            ("top", HARDLINK, "a/b/l", b""),
        ]);
        assert!(err.contains("leaves the destination"), "{err}");
    }

    #[test]
    fn a_file_that_is_not_a_tar_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let garbage = vec![7u8; 1024];
        assert!(extract_safe(&garbage[..], dir.path()).is_err());
    }
}
