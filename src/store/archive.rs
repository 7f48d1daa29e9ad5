//! Safe extraction on the host of tar streams that come out of containers (artifacts, test
//! results). A container is not trusted: an entry that would land outside the destination
//! (`..`, an absolute path, a path through a symlink, a link whose target leaves the
//! destination) stops the extraction with an error before anything is written for it. Every
//! file operation is relative to an open folder ([`SafeDir`]) and never follows a symlink.
//! Device files and FIFOs are skipped; owners are not restored.

use std::ffi::OsStr;
use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use tar::EntryType;

use super::safe_path::{Kind, SafeDir};

/// Extracts `tar` into `dest` (created if missing, trusted as given) and returns the files and
/// links written.
pub fn extract_safe(tar: impl Read, dest: &Path) -> io::Result<Vec<PathBuf>> {
    fs::create_dir_all(dest)?;
    extract_into(tar, &SafeDir::open_anchor(dest)?)
}

/// Extracts `tar` into the open folder `dest`; returns the files and links written.
pub fn extract_into(tar: impl Read, dest: &SafeDir) -> io::Result<Vec<PathBuf>> {
    let mut archive = tar::Archive::new(tar);
    let mut written = Vec::new();
    let mut dirs = Vec::new();
    let mut parents = Parents::default();
    for entry in archive.entries()? {
        let mut entry = entry?;
        let raw = entry.path()?.into_owned();
        let rel = relative(&raw)?;
        let kind = entry.header().entry_type();
        let Some(name) = rel.file_name().map(OsStr::to_os_string) else {
            // `./` itself: `dest` already exists.
            if kind.is_dir() {
                continue;
            }
            return Err(refuse(&raw, "it names the destination itself"));
        };
        let parent = parents.open(dest, &rel, &raw)?;
        match kind {
            EntryType::Directory => {
                make_dir(parent, &name, &raw)?;
                dirs.push((rel.clone(), entry.header().mode().unwrap_or(0o755)));
            }
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                write_file(&mut entry, parent, &name, &raw)?;
                written.push(dest.path().join(&rel));
            }
            EntryType::Symlink => {
                let link = link_name(&entry, &raw)?;
                check_symlink(&rel, &link, &raw)?;
                clear(parent, &name, &raw)?;
                parent.symlink(&link, &name)?;
                written.push(dest.path().join(&rel));
            }
            EntryType::Link => {
                let link = link_name(&entry, &raw)?;
                hard_link(dest, (parent, &name), &rel, &link, &raw)?;
                written.push(dest.path().join(&rel));
            }
            // Devices, FIFOs and pax/GNU metadata carry nothing to keep on the host.
            _ => {}
        }
    }
    // Last, so read-only directories did not block the files inside them.
    for (rel, mode) in dirs.into_iter().rev() {
        if let Some(dir) = dest.open_dirs(&rel)? {
            dir.set_mode((mode & 0o777) | 0o700)?;
        }
    }
    Ok(written)
}

/// The parent folder of the last entry, kept open: archives list a folder's files together.
#[derive(Default)]
struct Parents {
    last: Option<(PathBuf, SafeDir)>,
}

impl Parents {
    /// The open parent folder of `rel`, created if missing; a symlink on the way is refused.
    fn open(&mut self, dest: &SafeDir, rel: &Path, raw: &Path) -> io::Result<&SafeDir> {
        let parent = rel.parent().unwrap_or(Path::new("")).to_path_buf();
        let cached = self.last.as_ref().is_some_and(|(p, _)| *p == parent);
        if !cached {
            let dir = dest.create_dirs(&parent).map_err(|e| through(raw, &e))?;
            self.last = Some((parent, dir));
        }
        Ok(&self.last.as_ref().expect("set above").1)
    }
}

/// An error of the walk to an entry's folder, said in terms of the entry.
fn through(raw: &Path, e: &io::Error) -> io::Error {
    let text = e.to_string();
    match text.split_once(" is a symlink") {
        Some((path, _)) => refuse(raw, format!("it passes through the symlink {path}")),
        None => io::Error::new(e.kind(), format!("{}: {text}", raw.display())),
    }
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

fn make_dir(parent: &SafeDir, name: &OsStr, raw: &Path) -> io::Result<()> {
    match parent.kind(name)? {
        Some(Kind::Dir) => Ok(()),
        Some(Kind::Symlink) => Err(refuse(raw, "a symlink is in the way")),
        Some(Kind::Other) => {
            parent.remove(name)?;
            parent.make_dir(name)
        }
        None => parent.make_dir(name),
    }
}

/// Removes a file or symlink named `name` so that the new entry replaces it instead of writing
/// through it; a directory in the way is an error.
fn clear(parent: &SafeDir, name: &OsStr, raw: &Path) -> io::Result<()> {
    match parent.kind(name)? {
        Some(Kind::Dir) => Err(refuse(raw, "a directory is in the way")),
        Some(_) => parent.remove(name),
        None => Ok(()),
    }
}

fn write_file<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    parent: &SafeDir,
    name: &OsStr,
    raw: &Path,
) -> io::Result<()> {
    clear(parent, name, raw)?;
    let mode = entry.header().mode().unwrap_or(0o644) & 0o777;
    let mut file = parent.create_file(name, 0o600)?;
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
fn hard_link(
    dest: &SafeDir,
    (parent, name): (&SafeDir, &OsStr),
    rel: &Path,
    link: &Path,
    raw: &Path,
) -> io::Result<()> {
    let leaves = || refuse(raw, format!("its target {link:?} leaves the destination"));
    let source_rel = relative(link).map_err(|_| leaves())?;
    let source_name = source_rel.file_name().ok_or_else(leaves)?;
    let missing = || {
        refuse(
            raw,
            format!("its target {link:?} was not extracted before it"),
        )
    };
    let source_parent = dest
        .open_dirs(source_rel.parent().unwrap_or(Path::new("")))
        .map_err(|e| through(raw, &e))?
        .ok_or_else(missing)?;
    match source_parent.kind(source_name)? {
        None => return Err(missing()),
        Some(Kind::Dir) => return Err(refuse(raw, "hard links to directories are not allowed")),
        Some(Kind::Symlink) => check_symlink(rel, &source_parent.read_link(source_name)?, raw)?,
        Some(Kind::Other) => {}
    }
    clear(parent, name, raw)?;
    parent.hard_link(&source_parent, source_name, name)
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
