//! Host files and folders that exist only while an operation runs (a cache entry being
//! written, an artifact being staged), registered so that a forced exit can remove them:
//! `std::process::exit` after a second Ctrl-C runs no destructor. See: issue 9, finding 8 (a
//! double Ctrl-C left a 0-byte `.partial` in the cache directory).
//!
//! Only paths localci created itself are registered; removal never follows a symlink inside
//! them (`std::fs::remove_dir_all` does not).

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

static REGISTERED: Mutex<Vec<(u64, PathBuf)>> = Mutex::new(Vec::new());
static NEXT: AtomicU64 = AtomicU64::new(0);

/// Unregisters its path when dropped (the owner removed or published it).
#[derive(Debug)]
pub struct Registration(u64);

/// Registers a file or folder localci just created and will remove or rename itself.
pub fn register(path: &Path) -> Registration {
    let id = NEXT.fetch_add(1, Ordering::Relaxed);
    registered().push((id, path.to_path_buf()));
    Registration(id)
}

impl Drop for Registration {
    fn drop(&mut self) {
        registered().retain(|(id, _)| *id != self.0);
    }
}

fn registered() -> std::sync::MutexGuard<'static, Vec<(u64, PathBuf)>> {
    // A panic while holding the lock leaves a consistent list: keep using it.
    REGISTERED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Removes everything still registered (for a forced exit); returns how many paths it removed.
pub fn remove_all() -> usize {
    remove_where(|_| true)
}

fn remove_where(wanted: impl Fn(&Path) -> bool) -> usize {
    let paths: Vec<PathBuf> = {
        let mut list = registered();
        let (chosen, rest) = list.drain(..).partition(|(_, p)| wanted(p));
        *list = rest;
        chosen.into_iter().map(|(_, p)| p).collect()
    };
    paths
        .iter()
        .filter(|path| match std::fs::symlink_metadata(path) {
            Ok(m) if m.is_dir() => std::fs::remove_dir_all(path).is_ok(),
            Ok(_) => std::fs::remove_file(path).is_ok(),
            Err(_) => false,
        })
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_paths_are_removed_until_their_owner_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let kept = dir.path().join("published");
        let dropped = dir.path().join("dropped");
        let tree = dir.path().join("tree");
        std::fs::write(&kept, "x").unwrap();
        std::fs::create_dir_all(tree.join("a")).unwrap();
        std::fs::write(tree.join("a/f"), "y").unwrap();
        let released = register(&kept);
        let _file = register(&dropped);
        let _tree = register(&tree);
        drop(released);
        std::fs::write(&dropped, "z").unwrap();
        // Other tests register paths at the same time: remove only ours.
        assert_eq!(remove_where(|p| p.starts_with(dir.path())), 2);
        assert!(kept.exists());
        assert!(!dropped.exists());
        assert!(!tree.exists());
    }
}
