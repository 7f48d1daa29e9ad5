//! Staging folders for copies into a host folder (artifacts, test results): a copy is extracted
//! into `.localci-copy-<random>` in the destination root and moved into place whole, so a failed
//! or interrupted copy never leaves half a result, and an interrupted one leaves nothing.
//!
//! Runs that stage in a root hold a shared `flock` on it while their copy lives. A run that gets
//! the exclusive lock knows that no copy there is alive, so it removes the staging folders that
//! killed runs left (see: issue 9, finding 8: hundreds of MB stayed forever). The lock dies with
//! its process, so no pid or clock is trusted. Removes nothing but `.localci-copy-*` folders.

use std::ffi::{OsStr, OsString};
use std::fs::{File, TryLockError};
use std::hash::{BuildHasher, RandomState};
use std::io;

use super::safe_path::SafeDir;
use super::scratch::{self, Registration};

/// Name prefix of staging folders.
pub const PREFIX: &str = ".localci-copy-";

/// A staging folder, removed with everything in it when dropped unless published.
#[derive(Debug)]
pub struct Stage {
    root: SafeDir,
    name: OsString,
    dir: SafeDir,
    /// Held (shared) while the stage lives: tells other runs it is not a leftover.
    _lock: File,
    _registration: Registration,
}

/// Removes the staging folders that killed runs left in `root`, when no live copy holds it.
pub fn sweep(root: &SafeDir) -> io::Result<usize> {
    let lock = root.lock_handle()?;
    match lock.try_lock() {
        Ok(()) => remove_leftovers(root),
        Err(_) => Ok(0),
    }
}

impl Stage {
    /// Removes the staging folders dead runs left in `root`, then makes a new one. Returns the
    /// stage and how many leftovers were removed.
    pub fn begin(root: SafeDir) -> io::Result<(Stage, usize)> {
        let lock = root.lock_handle()?;
        let removed = match lock.try_lock() {
            Ok(()) => {
                let removed = remove_leftovers(&root);
                lock.lock_shared()?;
                removed?
            }
            Err(TryLockError::WouldBlock) => {
                lock.lock_shared()?;
                0
            }
            // A file system without `flock`: nobody can tell leftovers apart there, so none
            // are removed, and copies still work.
            Err(TryLockError::Error(_)) => 0,
        };
        let name = make_unique(&root)?;
        let dir = root
            .open_dirs(name.as_ref())?
            .ok_or_else(|| io::Error::other("the staging folder disappeared"))?;
        let registration = scratch::register(&root.path().join(&name));
        Ok((
            Stage {
                root,
                name,
                dir,
                _lock: lock,
                _registration: registration,
            },
            removed,
        ))
    }

    /// The staging folder.
    pub fn dir(&self) -> &SafeDir {
        &self.dir
    }

    /// The root the stage is in.
    pub fn root(&self) -> &SafeDir {
        &self.root
    }

    /// Moves `item` of the stage to `name` in `to`, replacing whatever was there (never through
    /// a symlink: a symlink in the way is removed itself).
    pub fn publish(self, item: &OsStr, to: &SafeDir, name: &OsStr) -> io::Result<()> {
        to.remove(name)?;
        self.dir.rename(item, to, name)
    }
}

impl Drop for Stage {
    fn drop(&mut self) {
        // Best effort: what is left is removed by the next run that stages here.
        let _ = self.root.remove(&self.name);
    }
}

/// Removes every staging folder in `root`; only called with the exclusive lock held.
fn remove_leftovers(root: &SafeDir) -> io::Result<usize> {
    let mut removed = 0;
    for name in root.names()? {
        if name.to_string_lossy().starts_with(PREFIX) {
            root.remove(&name)?;
            removed += 1;
        }
    }
    Ok(removed)
}

fn make_unique(root: &SafeDir) -> io::Result<OsString> {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    for attempt in 0u32..16 {
        let random = RandomState::new().hash_one((seed, std::process::id(), attempt));
        let name = OsString::from(format!("{PREFIX}{random:016x}"));
        match root.make_dir(&name) {
            Ok(()) => return Ok(name),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::other("cannot make a unique staging folder"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn staging_names(root: &Path) -> Vec<String> {
        std::fs::read_dir(root)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(PREFIX))
            .collect()
    }

    #[test]
    fn leftovers_go_only_when_no_live_stage_holds_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let left = dir.path().join(format!("{PREFIX}dead"));
        std::fs::create_dir_all(left.join("big")).unwrap();
        std::fs::write(left.join("big/file"), "x").unwrap();
        std::fs::write(dir.path().join("artifact.txt"), "kept").unwrap();
        let open = || SafeDir::open_anchor(dir.path()).unwrap();
        let (live, removed) = Stage::begin(open()).unwrap();
        assert_eq!(removed, 1);
        assert_eq!(staging_names(dir.path()).len(), 1, "only the live stage");
        // A second run while the first stages: it must not take the live stage for a leftover.
        let (second, removed) = Stage::begin(open()).unwrap();
        assert_eq!(removed, 0);
        assert_eq!(staging_names(dir.path()).len(), 2);
        drop(second);
        std::fs::write(live.dir().path().join("item"), "new").unwrap();
        let root = open();
        live.publish(OsStr::new("item"), &root, OsStr::new("artifact.txt"))
            .unwrap();
        assert_eq!(staging_names(dir.path()), Vec::<String>::new());
        assert_eq!(
            std::fs::read_to_string(dir.path().join("artifact.txt")).unwrap(),
            "new"
        );
    }
}
