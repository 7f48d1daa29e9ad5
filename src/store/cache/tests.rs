//! Tests of the cache store: lookups, immutability, atomic publication, damage, pruning.

use std::io::{Read, Seek, SeekFrom, Write};
use std::sync::{Arc, Barrier};

use super::*;
use crate::store::writer::MULTITHREAD_FROM;

fn store() -> (tempfile::TempDir, CacheStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = CacheStore::open(&dir.path().join("caches")).unwrap();
    (dir, store)
}

fn save_at(store: &CacheStore, key: &str, data: &[u8], created: SystemTime) -> SaveOutcome {
    let mut w = store.writer(key).unwrap();
    w.write_all(data).unwrap();
    w.commit_at(created).unwrap()
}

fn save(store: &CacheStore, key: &str, data: &[u8]) -> SaveOutcome {
    let mut w = store.writer(key).unwrap();
    w.write_all(data).unwrap();
    w.commit().unwrap()
}

fn read(store: &CacheStore, entry: &CacheEntry) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    store.reader(entry)?.read_to_end(&mut out)?;
    Ok(out)
}

fn ago(secs: u64) -> SystemTime {
    SystemTime::now() - Duration::from_secs(secs)
}

/// Deterministic data that compresses about as well as source code does.
fn data(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).max(1);
    (0..len)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            if i % 3 == 0 {
                (x % 251) as u8
            } else {
                b"fn main() {}\n"[i % 13]
            }
        })
        .collect()
}

fn files_in(store: &CacheStore) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(store.dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn saves_and_restores_a_stream() {
    let (_t, store) = store();
    let content = data(100_000, 1);
    let SaveOutcome::Saved(entry) = save(&store, "v1-deps-aWt1SBJau3/+=", &content) else {
        panic!("first save must save");
    };
    assert_eq!(entry.uncompressed_size, 100_000);
    assert!(entry.size < 100_000, "compressed: {}", entry.size);
    assert_eq!(
        store.get("v1-deps-aWt1SBJau3/+=").unwrap(),
        Some(entry.clone())
    );
    assert_eq!(read(&store, &entry).unwrap(), content);
    store.verify(&entry).unwrap();
    // Keys with `/` and `+` become hex file names.
    let name = entry.path().file_name().unwrap().to_str().unwrap();
    assert!(name.ends_with(".tar.zst") && name.len() == 64 + 8, "{name}");
}

#[test]
fn big_caches_take_the_multithreaded_path_and_round_trip() {
    let (_t, store) = store();
    let content = data(MULTITHREAD_FROM * 2 + 12_345, 2);
    let mut w = store.writer("big").unwrap();
    for chunk in content.chunks(64 * 1024) {
        w.write_all(chunk).unwrap();
    }
    let entry = w.commit().unwrap().entry().clone();
    assert_eq!(entry.uncompressed_size, content.len() as u64);
    assert_eq!(read(&store, &entry).unwrap(), content);
}

#[test]
fn an_empty_stream_is_a_valid_entry() {
    let (_t, store) = store();
    let entry = save(&store, "empty", b"").entry().clone();
    assert_eq!(read(&store, &entry).unwrap(), b"");
}

#[test]
fn get_is_exact_and_find_is_newest_prefix_match() {
    let (_t, store) = store();
    save_at(&store, "v1-deps", b"exact", ago(300));
    save_at(&store, "v1-deps-b", b"newer", ago(100));
    save_at(&store, "v1-deps-a", b"older", ago(200));
    save_at(&store, "v2-deps", b"other", ago(10));
    assert_eq!(store.get("v1-dep").unwrap(), None);
    assert_eq!(store.get("v1-deps").unwrap().unwrap().key, "v1-deps");
    // CircleCI: a newer `v1-deps-b` beats the older exact `v1-deps`.
    assert_eq!(store.find("v1-deps").unwrap().unwrap().key, "v1-deps-b");
    assert_eq!(store.find("v1-").unwrap().unwrap().key, "v1-deps-b");
    assert_eq!(store.find("").unwrap().unwrap().key, "v2-deps");
    assert_eq!(store.find("v3").unwrap(), None);
}

#[test]
fn keys_are_immutable() {
    let (_t, store) = store();
    let first = save(&store, "k", b"first");
    let second = save(&store, "k", b"second");
    let SaveOutcome::AlreadyExists(existing) = second else {
        panic!("second save must not replace the first: {second:?}");
    };
    assert_eq!(&existing, first.entry());
    assert_eq!(read(&store, &existing).unwrap(), b"first");
    assert_eq!(files_in(&store).len(), 1, "the losing temp file is gone");
}

#[test]
fn concurrent_writers_of_one_key_leave_one_whole_entry() {
    let (_t, store) = store();
    let writers = 6;
    let barrier = Arc::new(Barrier::new(writers));
    let handles: Vec<_> = (0..writers)
        .map(|i| {
            let store = store.clone();
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                let content = data(300_000, i as u32 + 10);
                let mut w = store.writer("race").unwrap();
                w.write_all(&content).unwrap();
                barrier.wait();
                (w.commit().unwrap(), content)
            })
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let saved: Vec<_> = results
        .iter()
        .filter(|(o, _)| matches!(o, SaveOutcome::Saved(_)))
        .collect();
    assert_eq!(saved.len(), 1, "exactly one writer wins");
    let entry = store.get("race").unwrap().unwrap();
    assert_eq!(read(&store, &entry).unwrap(), saved[0].1);
    for (outcome, _) in &results {
        assert_eq!(outcome.entry(), &entry);
    }
    assert_eq!(files_in(&store).len(), 1);
}

#[test]
fn a_writer_dropped_without_commit_publishes_nothing() {
    let (_t, store) = store();
    let mut w = store.writer("abandoned").unwrap();
    w.write_all(&data(10_000, 3)).unwrap();
    drop(w);
    assert_eq!(store.find("abandoned").unwrap(), None);
    assert!(files_in(&store).is_empty(), "{:?}", files_in(&store));
}

#[test]
fn a_crash_mid_write_leaves_no_entry_and_old_temps_are_cleaned() {
    let (_t, store) = store();
    let mut w = store.writer("crashed").unwrap();
    w.write_all(&data(MULTITHREAD_FROM + 1, 4)).unwrap();
    // As if the process died: no destructor runs.
    std::mem::forget(w);
    assert_eq!(store.find("").unwrap(), None);
    let temps = files_in(&store);
    assert_eq!(temps.len(), 1);
    assert!(temps[0].starts_with(".tmp-"), "{temps:?}");

    // A fresh temp file survives reopening (its writer may be alive) ...
    CacheStore::open(store.dir()).unwrap();
    assert_eq!(files_in(&store).len(), 1);
    // ... one older than an hour does not.
    let temp = store.dir().join(&temps[0]);
    File::options()
        .write(true)
        .open(&temp)
        .unwrap()
        .set_modified(ago(2 * 3600))
        .unwrap();
    CacheStore::open(store.dir()).unwrap();
    assert!(files_in(&store).is_empty());
}

// See: issue 9, finding 8 (a killed run's `.partial` stayed for an hour).
#[test]
fn unlocked_temps_of_dead_writers_go_at_the_next_open_live_ones_stay() {
    let (_t, store) = store();
    let live = store.writer("live").unwrap();
    let dead = store.dir().join(".tmp-dead.partial");
    fs::write(&dead, b"half").unwrap();
    for name in files_in(&store) {
        File::options()
            .write(true)
            .open(store.dir().join(name))
            .unwrap()
            .set_modified(ago(20))
            .unwrap();
    }
    CacheStore::open(store.dir()).unwrap();
    let left = files_in(&store);
    assert_eq!(left.len(), 1, "{left:?}");
    assert_ne!(left[0], ".tmp-dead.partial");
    drop(live);
}

#[test]
fn a_half_written_file_under_an_entry_name_is_damaged_not_found() {
    let (_t, store) = store();
    let entry = save(&store, "k", &data(50_000, 5)).entry().clone();
    let len = fs::metadata(entry.path()).unwrap().len();
    File::options()
        .write(true)
        .open(entry.path())
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    assert_eq!(store.find("k").unwrap(), None);
    assert!(
        store
            .get("k")
            .unwrap_err()
            .to_string()
            .contains("damaged cache entry")
    );
    let damaged = store.damaged().unwrap();
    assert_eq!(damaged.len(), 1);
    assert_eq!(damaged[0].path, entry.path());
}

#[test]
fn corrupted_data_is_an_error_never_a_silent_restore() {
    let (_t, store) = store();
    let entry = save(&store, "k", &data(200_000, 6)).entry().clone();
    let mut file = File::options()
        .read(true)
        .write(true)
        .open(entry.path())
        .unwrap();
    let middle = entry.data_len / 2;
    let mut byte = [0u8];
    file.seek(SeekFrom::Start(middle)).unwrap();
    file.read_exact(&mut byte).unwrap();
    file.seek(SeekFrom::Start(middle)).unwrap();
    file.write_all(&[byte[0] ^ 0x55]).unwrap();
    drop(file);

    let entry = store.get("k").unwrap().unwrap();
    let err = read(&store, &entry).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    assert!(err.to_string().contains("is damaged"), "{err}");
    let err = store.verify(&entry).unwrap_err();
    assert!(err.to_string().contains("SHA-256"), "{err}");
}

#[test]
fn a_file_holding_another_key_is_damaged() {
    let (_t, store) = store();
    let entry = save(&store, "real", b"x").entry().clone();
    let wrong = store.dir().join(format!("{}.tar.zst", "0".repeat(64)));
    fs::rename(entry.path(), &wrong).unwrap();
    assert_eq!(store.find("").unwrap(), None);
    assert!(
        store.damaged().unwrap()[0]
            .reason
            .contains("another file name")
    );
}

#[test]
fn list_is_newest_first_and_ignores_other_files() {
    let (_t, store) = store();
    save_at(&store, "a", b"1", ago(30));
    save_at(&store, "b", b"2", ago(10));
    save_at(&store, "c", b"3", ago(20));
    fs::write(store.dir().join("README"), "not an entry").unwrap();
    let keys: Vec<_> = store.list().unwrap().into_iter().map(|e| e.key).collect();
    assert_eq!(keys, vec!["b", "c", "a"]);
    assert!(store.damaged().unwrap().is_empty());
}

#[test]
fn remove_prefix_removes_only_matches() {
    let (_t, store) = store();
    save(&store, "v1-a", b"1");
    save(&store, "v1-b", b"2");
    save(&store, "v2-a", b"3");
    let mut removed: Vec<_> = store
        .remove_prefix("v1-")
        .unwrap()
        .into_iter()
        .map(|e| e.key)
        .collect();
    removed.sort();
    assert_eq!(removed, vec!["v1-a", "v1-b"]);
    let left: Vec<_> = store.list().unwrap().into_iter().map(|e| e.key).collect();
    assert_eq!(left, vec!["v2-a"]);
    assert!(store.remove_prefix("v9").unwrap().is_empty());
}

#[test]
fn prune_removes_old_entries_and_old_damaged_files() {
    let (_t, store) = store();
    save_at(&store, "old", b"1", ago(8 * 86_400));
    save_at(&store, "new", b"2", ago(3600));
    let junk = store.dir().join(format!("{}.tar.zst", "a".repeat(64)));
    fs::write(&junk, "half").unwrap();
    File::options()
        .write(true)
        .open(&junk)
        .unwrap()
        .set_modified(ago(9 * 86_400))
        .unwrap();
    let removed: Vec<_> = store
        .prune_older_than(Duration::from_secs(7 * 86_400))
        .unwrap()
        .into_iter()
        .map(|e| e.key)
        .collect();
    assert_eq!(removed, vec!["old"]);
    assert!(!junk.exists());
    assert_eq!(store.list().unwrap()[0].key, "new");
}

#[test]
fn empty_keys_are_refused() {
    let (_t, store) = store();
    assert_eq!(
        store.writer("").err().unwrap().kind(),
        io::ErrorKind::InvalidInput
    );
}

#[test]
fn writers_and_readers_can_move_to_other_threads() {
    fn send<T: Send>(_: &T) {}
    let (_t, store) = store();
    let w = store.writer("k").unwrap();
    send(&w);
    let entry = w.commit().unwrap().entry().clone();
    send(&store.reader(&entry).unwrap());
}

#[test]
fn default_dir_follows_xdg_then_home_per_project() {
    let env = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    assert_eq!(
        CacheStore::default_dir(
            &env(&[("XDG_CACHE_HOME", "/x"), ("HOME", "/h")]),
            "acme/widget"
        ),
        PathBuf::from("/x/localci/acme/widget/caches")
    );
    assert_eq!(
        CacheStore::default_dir(
            &env(&[("XDG_CACHE_HOME", "rel"), ("HOME", "/h")]),
            "acme/widget"
        ),
        PathBuf::from("/h/.cache/localci/acme/widget/caches")
    );
    assert_eq!(
        CacheStore::default_dir(&env(&[("HOME", "/h")]), "a b/../c:d"),
        PathBuf::from("/h/.cache/localci/a_b/_../c_d/caches")
    );
}

#[test]
fn resolve_dir_prefers_flag_then_env() {
    let cwd = Path::new("/work/repo");
    let env: BTreeMap<String, String> =
        [("LOCALCI_CACHE_DIR".to_string(), "/env/caches".to_string())].into();
    assert_eq!(
        CacheStore::resolve_dir(Some(Path::new("rel")), &env, cwd),
        PathBuf::from("/work/repo/rel")
    );
    assert_eq!(
        CacheStore::resolve_dir(None, &env, cwd),
        PathBuf::from("/env/caches")
    );
    let home: BTreeMap<String, String> = [("HOME".to_string(), "/h".to_string())].into();
    let dir = CacheStore::resolve_dir(None, &home, Path::new("/nonexistent-dir-for-test"));
    assert_eq!(dir, PathBuf::from("/h/.cache/localci/local/project/caches"));
}
