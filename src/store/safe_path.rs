//! Host folders localci writes under (artifacts, test results, the cache store, and any later
//! store such as workspaces), walked one component at a time from an open folder with
//! `openat(O_NOFOLLOW)`, so a symlink the repository (or a container's archive) planted on the
//! way is refused instead of followed. See: issue 9, finding 1 (a committed
//! `.localci/artifacts -> ~` symlink let `store_artifacts` replace and delete files outside the
//! repository).
//!
//! The trust rule: the *anchor* (the repository root, or a folder the user named outside the
//! repository) is opened as given, symlinks and all; everything below it must be a real folder.
//! Nothing here removes anything except the entry it is asked to remove by name inside a
//! folder opened this way, and removal never follows a symlink (a symlink is removed itself).

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{AtFlags, CWD, FileType, Mode, OFlags};
use rustix::io::Errno;

/// Why a folder could not be opened safely.
#[derive(Debug, thiserror::Error)]
pub enum SafePathError {
    #[error(
        "{} is a symlink, and localci does not write through symlinks it did not make; remove it (or choose another folder)",
        path.display()
    )]
    Symlink { path: PathBuf },
    #[error("{} is in the way: it is not a folder", path.display())]
    NotAFolder { path: PathBuf },
    #[error("{} is not a plain relative path", path.display())]
    NotRelative { path: PathBuf },
}

impl SafePathError {
    fn into_io(self) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, self)
    }
}

/// An open folder; every operation is relative to it and never follows a symlink.
#[derive(Debug)]
pub struct SafeDir {
    fd: OwnedFd,
    path: PathBuf,
}

const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

/// What a name in a folder is, without following it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Dir,
    Symlink,
    Other,
}

impl SafeDir {
    /// Opens (creating it and its parents if needed) the folder at `path`, trusting the part of
    /// it that is not inside `trusted_root`: below the root, no component may be a symlink. A
    /// path outside the root was named by the user (a flag, a variable) or is localci's default.
    pub fn create(path: &Path, trusted_root: &Path) -> io::Result<SafeDir> {
        let (anchor, rel) = split_at_root(path, trusted_root);
        std::fs::create_dir_all(&anchor)?;
        SafeDir::open_anchor(&anchor)?.create_dirs(&rel)
    }

    /// Opens a trusted folder as given (following symlinks: the user named it).
    pub fn open_anchor(path: &Path) -> io::Result<SafeDir> {
        let fd = rustix::fs::openat(
            CWD,
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| with_path(e.into(), path))?;
        Ok(SafeDir {
            fd,
            path: path.to_path_buf(),
        })
    }

    /// Where this folder was when it was opened (for messages and path-taking APIs).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The folder `rel` below this one, created (with its parents) if missing.
    pub fn create_dirs(&self, rel: &Path) -> io::Result<SafeDir> {
        self.walk(rel, true)
            .map(|d| d.expect("created when missing"))
    }

    /// The folder `rel` below this one; `None` when something on the way does not exist.
    pub fn open_dirs(&self, rel: &Path) -> io::Result<Option<SafeDir>> {
        self.walk(rel, false)
    }

    fn walk(&self, rel: &Path, create: bool) -> io::Result<Option<SafeDir>> {
        let mut current = self.try_clone()?;
        for component in rel.components() {
            match component {
                Component::Normal(name) => match current.child_dir(name, create)? {
                    Some(next) => current = next,
                    None => return Ok(None),
                },
                Component::CurDir => {}
                _ => {
                    return Err(SafePathError::NotRelative {
                        path: rel.to_path_buf(),
                    }
                    .into_io());
                }
            }
        }
        Ok(Some(current))
    }

    fn try_clone(&self) -> io::Result<SafeDir> {
        Ok(SafeDir {
            fd: self.fd.try_clone()?,
            path: self.path.clone(),
        })
    }

    /// The folder `name` in this one, never through a symlink.
    fn child_dir(&self, name: &OsStr, create: bool) -> io::Result<Option<SafeDir>> {
        let path = self.path.join(name);
        // Twice at most: a folder made by someone else between our two calls is fine.
        for _ in 0..2 {
            match rustix::fs::openat(&self.fd, name, DIR_FLAGS, Mode::empty()) {
                Ok(fd) => return Ok(Some(SafeDir { fd, path })),
                Err(Errno::NOENT) if create => {
                    match rustix::fs::mkdirat(&self.fd, name, Mode::from_raw_mode(0o777)) {
                        Ok(()) | Err(Errno::EXIST) => {}
                        Err(e) => return Err(with_path(e.into(), &path)),
                    }
                }
                Err(Errno::NOENT) => return Ok(None),
                Err(Errno::LOOP | Errno::NOTDIR) => return Err(self.not_a_dir(name)),
                Err(e) => return Err(with_path(e.into(), &path)),
            }
        }
        Err(with_path(
            io::Error::other("it keeps disappearing"),
            &self.path.join(name),
        ))
    }

    fn not_a_dir(&self, name: &OsStr) -> io::Error {
        let path = self.path.join(name);
        match self.kind(name) {
            Ok(Some(Kind::Symlink)) => SafePathError::Symlink { path }.into_io(),
            _ => SafePathError::NotAFolder { path }.into_io(),
        }
    }

    /// What `name` is, without following it; `None` when it does not exist.
    pub fn kind(&self, name: &OsStr) -> io::Result<Option<Kind>> {
        match rustix::fs::statat(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(stat) => Ok(Some(match FileType::from_raw_mode(stat.st_mode) {
                FileType::Directory => Kind::Dir,
                FileType::Symlink => Kind::Symlink,
                _ => Kind::Other,
            })),
            Err(Errno::NOENT) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Creates the folder `name` (which must not exist).
    pub fn make_dir(&self, name: &OsStr) -> io::Result<()> {
        rustix::fs::mkdirat(&self.fd, name, Mode::from_raw_mode(0o777)).map_err(Into::into)
    }

    /// Creates the file `name` for writing; fails if anything (a symlink too) has that name.
    pub fn create_file(&self, name: &OsStr, mode: u32) -> io::Result<File> {
        let flags =
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = rustix::fs::openat(&self.fd, name, flags, Mode::from_raw_mode(mode))?;
        Ok(File::from(fd))
    }

    /// The file `name` opened for reading, never through a symlink; `None` when it is missing.
    pub fn open_file(&self, name: &OsStr) -> io::Result<Option<File>> {
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        match rustix::fs::openat(&self.fd, name, flags, Mode::empty()) {
            Ok(fd) => Ok(Some(File::from(fd))),
            Err(Errno::NOENT) => Ok(None),
            Err(e) => Err(with_path(e.into(), &self.path.join(name))),
        }
    }

    /// The file `name` opened to read and write, created when missing, never through a
    /// symlink.
    pub fn open_rw(&self, name: &OsStr, mode: u32) -> io::Result<File> {
        let flags = OFlags::RDWR | OFlags::CREATE | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = rustix::fs::openat(&self.fd, name, flags, Mode::from_raw_mode(mode))
            .map_err(|e| with_path(e.into(), &self.path.join(name)))?;
        Ok(File::from(fd))
    }

    /// A symlink `name` pointing to `target`.
    pub fn symlink(&self, target: &Path, name: &OsStr) -> io::Result<()> {
        rustix::fs::symlinkat(target, &self.fd, name).map_err(Into::into)
    }

    /// Where the symlink `name` points.
    pub fn read_link(&self, name: &OsStr) -> io::Result<PathBuf> {
        let target = rustix::fs::readlinkat(&self.fd, name, Vec::new())?;
        Ok(PathBuf::from(<OsString as OsStringExt>::from_vec(
            target.into_bytes(),
        )))
    }

    /// A hard link `name` here to `source` in `from` (a symlink is linked, not followed).
    pub fn hard_link(&self, from: &SafeDir, source: &OsStr, name: &OsStr) -> io::Result<()> {
        rustix::fs::linkat(&from.fd, source, &self.fd, name, AtFlags::empty()).map_err(Into::into)
    }

    /// Moves `name` here to `to_name` in `to`, replacing a file (not a folder) there.
    pub fn rename(&self, name: &OsStr, to: &SafeDir, to_name: &OsStr) -> io::Result<()> {
        rustix::fs::renameat(&self.fd, name, &to.fd, to_name).map_err(Into::into)
    }

    /// Sets this folder's permission bits.
    pub fn set_mode(&self, mode: u32) -> io::Result<()> {
        rustix::fs::fchmod(&self.fd, Mode::from_raw_mode(mode)).map_err(Into::into)
    }

    /// The names in this folder (without `.` and `..`).
    pub fn names(&self) -> io::Result<Vec<OsString>> {
        let mut dir = rustix::fs::Dir::read_from(&self.fd)?;
        let mut names = Vec::new();
        while let Some(entry) = dir.read() {
            let bytes = entry?.file_name().to_bytes().to_vec();
            if bytes != b"." && bytes != b".." {
                names.push(OsString::from_vec(bytes));
            }
        }
        Ok(names)
    }

    /// This folder opened again as a `File`, for advisory locks (`flock` works on folders).
    /// A new open file description, so its lock is its own (a `dup` would share ours).
    pub fn lock_handle(&self) -> io::Result<File> {
        let fd = rustix::fs::openat(&self.fd, ".", DIR_FLAGS, Mode::empty())?;
        Ok(File::from(fd))
    }

    /// Removes `name` if it exists: a file or a symlink itself, or a folder with everything in
    /// it. Never follows a symlink, so nothing outside this folder is touched.
    pub fn remove(&self, name: &OsStr) -> io::Result<()> {
        match self.kind(name)? {
            None => Ok(()),
            Some(Kind::Dir) => self.remove_tree(name),
            Some(_) => ignore_missing(rustix::fs::unlinkat(&self.fd, name, AtFlags::empty())),
        }
    }

    /// Depth first without recursion (a container can send a very deep tree): a stack of open
    /// folders, each with the names still to remove.
    fn remove_tree(&self, name: &OsStr) -> io::Result<()> {
        let top = match self.child_dir(name, false)? {
            Some(dir) => dir,
            None => return Ok(()),
        };
        let names = top.names()?;
        let mut stack = vec![(top, names, name.to_os_string())];
        while let Some((dir, names, _)) = stack.last_mut() {
            let Some(child) = names.pop() else {
                let (_, _, own) = stack.pop().expect("not empty");
                let parent = stack.last().map_or(self, |(d, _, _)| d);
                ignore_missing(rustix::fs::unlinkat(
                    &parent.fd,
                    own.as_os_str(),
                    AtFlags::REMOVEDIR,
                ))?;
                continue;
            };
            if dir.kind(&child)? == Some(Kind::Dir) {
                if let Some(sub) = dir.child_dir(&child, false)? {
                    let names = sub.names()?;
                    stack.push((sub, names, child));
                }
            } else {
                ignore_missing(rustix::fs::unlinkat(&dir.fd, &child, AtFlags::empty()))?;
            }
        }
        Ok(())
    }
}

impl AsFd for SafeDir {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

fn ignore_missing(result: rustix::io::Result<()>) -> io::Result<()> {
    match result {
        Ok(()) | Err(Errno::NOENT) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

fn with_path(e: io::Error, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

/// Splits `path` into the trusted anchor and the part below `root` that must hold no symlink.
/// The anchor is the shortest ancestor of `path` that is the root (compared after resolving
/// both, so `/link/repo/x` with `/link -> /real` is inside `/real/repo`); a path outside the
/// root is its own anchor.
pub fn split_at_root(path: &Path, root: &Path) -> (PathBuf, PathBuf) {
    let path = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let Ok(root) = root.canonicalize() else {
        return (path, PathBuf::new());
    };
    let ancestors: Vec<&Path> = path.ancestors().collect();
    for ancestor in ancestors.into_iter().rev() {
        if ancestor.canonicalize().is_ok_and(|c| c == root) {
            let rel = path.strip_prefix(ancestor).unwrap_or(Path::new(""));
            // `..` below the root climbs a folder the walk would check anyway; one that climbs
            // out of the root leaves the repository: the path is then its own anchor.
            return match normalize(rel) {
                Some(rel) => (ancestor.to_path_buf(), rel),
                None => (path.clone(), PathBuf::new()),
            };
        }
    }
    (path, PathBuf::new())
}

/// `rel` with `.` dropped and `..` applied; `None` when it climbs above its start.
fn normalize(rel: &Path) -> Option<PathBuf> {
    let mut parts: Vec<&OsStr> = Vec::new();
    for component in rel.components() {
        match component {
            Component::Normal(part) => parts.push(part),
            Component::CurDir => {}
            Component::ParentDir => {
                parts.pop()?;
            }
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(parts.iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn folders_are_created_below_the_anchor_without_following_symlinks() {
        let root = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let repo = root.path().join("repo");
        std::fs::create_dir(&repo).unwrap();
        symlink(outside.path(), repo.join(".localci")).unwrap();
        let err = SafeDir::create(&repo.join(".localci/artifacts"), &repo).unwrap_err();
        assert!(err.to_string().contains(".localci is a symlink"), "{err}");
        assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
        // A real folder is fine, and created as needed.
        std::fs::remove_file(repo.join(".localci")).unwrap();
        let dir = SafeDir::create(&repo.join(".localci/artifacts/job"), &repo).unwrap();
        assert!(dir.path().ends_with(".localci/artifacts/job"));
        assert!(repo.join(".localci/artifacts/job").is_dir());
    }

    #[test]
    fn the_anchor_is_found_through_symlinked_parents() {
        let root = tempfile::tempdir().unwrap();
        let real = root.path().join("real");
        std::fs::create_dir_all(real.join("repo")).unwrap();
        symlink(&real, root.path().join("link")).unwrap();
        let via_link = root.path().join("link/repo/.cache/x");
        let (anchor, rel) = split_at_root(&via_link, &real.join("repo"));
        assert_eq!(anchor, root.path().join("link/repo"));
        assert_eq!(rel, Path::new(".cache/x"));
        // A planted link to the root itself is still below the root.
        symlink(real.join("repo"), real.join("repo/loop")).unwrap();
        let (_, rel) = split_at_root(&real.join("repo/loop/y"), &real.join("repo"));
        assert_eq!(rel, Path::new("loop/y"));
        let (_, rel) = split_at_root(&real.join("repo/a/../b/./c"), &real.join("repo"));
        assert_eq!(rel, Path::new("b/c"));
        let (anchor, rel) = split_at_root(&real.join("repo/../x"), &real.join("repo"));
        assert_eq!((anchor, rel), (real.join("repo/../x"), PathBuf::new()));
        let (anchor, rel) = split_at_root(Path::new("/var/tmp/x"), &real.join("repo"));
        assert_eq!(
            (anchor.as_path(), rel.as_path()),
            (Path::new("/var/tmp/x"), Path::new(""))
        );
    }

    #[test]
    fn removal_takes_symlinks_away_and_never_follows_them() {
        let root = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("keep"), "x").unwrap();
        let base = SafeDir::open_anchor(root.path()).unwrap();
        let tree = base.create_dirs(Path::new("t/a/b")).unwrap();
        std::fs::write(tree.path().join("f"), "y").unwrap();
        symlink(outside.path(), tree.path().join("out")).unwrap();
        symlink(outside.path(), root.path().join("l")).unwrap();
        base.remove(OsStr::new("t")).unwrap();
        base.remove(OsStr::new("l")).unwrap();
        base.remove(OsStr::new("missing")).unwrap();
        assert_eq!(std::fs::read_dir(root.path()).unwrap().count(), 0);
        assert_eq!(
            std::fs::read_to_string(outside.path().join("keep")).unwrap(),
            "x"
        );
    }

    #[test]
    fn files_are_never_created_through_a_symlink() {
        let root = tempfile::tempdir().unwrap();
        let victim = root.path().join("victim");
        std::fs::write(&victim, "safe").unwrap();
        symlink(&victim, root.path().join("f")).unwrap();
        let base = SafeDir::open_anchor(root.path()).unwrap();
        assert!(base.create_file(OsStr::new("f"), 0o644).is_err());
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "safe");
        let err = base.open_dirs(Path::new("f/x")).unwrap_err();
        assert!(err.to_string().contains("is a symlink"), "{err}");
    }
}
