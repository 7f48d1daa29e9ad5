//! `localci cache ls | rm | prune` against stores filled through the library.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use assert_cmd::Command;
use localci::store::{CacheStore, SaveOutcome};
use predicates::prelude::*;
use predicates::str::contains;
use sha2::Digest as _;

/// A temp dir holding a cache dir, with a builder for `localci cache ...` runs in it.
struct Project {
    root: tempfile::TempDir,
}

impl Project {
    fn new() -> Self {
        Project {
            root: tempfile::tempdir().unwrap(),
        }
    }

    fn caches(&self) -> PathBuf {
        self.root.path().join("caches")
    }

    fn save(&self, key: &str, data: &[u8], age_secs: u64) {
        let store = CacheStore::open(&self.caches()).unwrap();
        let mut w = store.writer(key).unwrap();
        w.write_all(data).unwrap();
        let created = SystemTime::now() - Duration::from_secs(age_secs);
        assert!(matches!(
            w.commit_at(created).unwrap(),
            SaveOutcome::Saved(_)
        ));
    }

    fn keys(&self) -> Vec<String> {
        let store = CacheStore::open(&self.caches()).unwrap();
        store.list().unwrap().into_iter().map(|e| e.key).collect()
    }

    /// `localci cache <args>` in the project root, with no cache variables from the caller.
    fn cache(&self, args: &[&str]) -> Command {
        let mut cmd = Command::cargo_bin("localci").unwrap();
        cmd.current_dir(self.root.path())
            .env_remove("LOCALCI_CACHE_DIR")
            .env("XDG_CACHE_HOME", self.root.path().join("xdg"))
            .arg("cache")
            .args(args);
        cmd
    }

    fn with_dir(&self, args: &[&str]) -> Command {
        let mut cmd = self.cache(args);
        cmd.arg("--cache-dir").arg(self.caches());
        cmd
    }
}

#[test]
fn ls_lists_newest_first_with_size_and_age() {
    let p = Project::new();
    p.save("v1-deps-old", b"aaaa", 3 * 86_400);
    p.save("v1-deps-new", &[7u8; 5000], 2 * 3600);
    p.save("v2-build", b"b", 90);
    let out = p.with_dir(&["ls"]).assert().success();
    let stdout = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{stdout}");
    assert!(lines[0].starts_with("KEY"), "{stdout}");
    assert!(
        lines[1].starts_with("v2-build") && lines[1].ends_with("1m"),
        "{stdout}"
    );
    assert!(
        lines[2].starts_with("v1-deps-new") && lines[2].ends_with("2h"),
        "{stdout}"
    );
    assert!(
        lines[3].starts_with("v1-deps-old") && lines[3].ends_with("3d"),
        "{stdout}"
    );
    assert!(lines[2].contains(" B "), "sizes are shown: {stdout}");
    out.stderr(contains("3 caches"));
}

#[test]
fn the_cache_dir_flag_may_come_before_the_action() {
    let p = Project::new();
    p.save("k", b"x", 0);
    p.cache(&[])
        .arg("--cache-dir")
        .arg(p.caches())
        .arg("ls")
        .assert()
        .success()
        .stdout(contains("k "));
}

#[test]
fn ls_of_a_missing_dir_says_so_without_creating_it() {
    let p = Project::new();
    p.with_dir(&["ls"])
        .assert()
        .success()
        .stdout("")
        .stderr(contains("no caches in"));
    assert!(!p.caches().exists());
}

#[test]
fn rm_removes_by_prefix() {
    let p = Project::new();
    p.save("v1-deps-a", b"1", 20);
    p.save("v1-deps-b", b"2", 10);
    p.save("v2-deps", b"3", 5);
    p.with_dir(&["rm", "v1-"])
        .assert()
        .success()
        .stdout(contains("removed v1-deps-a").and(contains("removed v1-deps-b")));
    assert_eq!(p.keys(), vec!["v2-deps"]);
    p.with_dir(&["rm", "v9"])
        .assert()
        .success()
        .stderr(contains("no cache key starts with \"v9\""));
}

#[test]
fn rm_refuses_an_empty_prefix() {
    let p = Project::new();
    p.save("k", b"1", 0);
    p.with_dir(&["rm", ""])
        .assert()
        .code(2)
        .stderr(contains("prune --older-than 0s"));
    assert_eq!(p.keys(), vec!["k"]);
}

#[test]
fn prune_removes_only_older_caches() {
    let p = Project::new();
    p.save("old", b"1", 8 * 86_400);
    p.save("recent", b"2", 86_400);
    p.with_dir(&["prune", "--older-than", "7d"])
        .assert()
        .success()
        .stdout(predicates::str::is_match(r"^removed old \(\d+ B\)\n$").unwrap())
        .stderr(contains("pruned 1 cache"));
    assert_eq!(p.keys(), vec!["recent"]);
}

#[test]
fn prune_rejects_a_bad_duration() {
    let p = Project::new();
    p.with_dir(&["prune", "--older-than", "7x"])
        .assert()
        .code(2)
        .stderr(contains("invalid duration \"7x\""));
    p.with_dir(&["prune"])
        .assert()
        .code(2)
        .stderr(contains("--older-than"));
}

#[test]
fn the_environment_variable_names_the_dir() {
    let p = Project::new();
    p.save("from-env", b"1", 0);
    p.cache(&["ls"])
        .env("LOCALCI_CACHE_DIR", p.caches())
        .assert()
        .success()
        .stdout(contains("from-env"));
}

#[test]
fn the_default_dir_is_per_project() {
    let p = Project::new();
    let git = |args: &[&str]| crate::support::git(p.root.path(), args);
    git(&["init", "-q"]);
    git(&["remote", "add", "origin", "git@github.com:acme/widget.git"]);
    let dir = p.root.path().join("xdg/localci/acme/widget/caches");
    let store = CacheStore::open(&dir).unwrap();
    let mut w = store.writer("per-project").unwrap();
    w.write_all(b"x").unwrap();
    w.commit().unwrap();
    p.cache(&["ls"])
        .assert()
        .success()
        .stdout(contains("per-project"))
        .stderr(contains(path_str(&dir)));
}

fn path_str(path: &Path) -> String {
    path.display().to_string()
}

#[test]
fn ls_warns_about_damaged_files_and_still_lists_the_rest() {
    let p = Project::new();
    p.save("good", b"1", 0);
    let junk = p.caches().join(format!("{}.tar.zst", "b".repeat(64)));
    std::fs::write(&junk, "half a cache").unwrap();
    p.with_dir(&["ls"])
        .assert()
        .success()
        .stdout(contains("good "))
        .stderr(contains("warning: damaged cache entry").and(contains(path_str(&junk))));
}

/// An entry file for `key` whose trailer says it was created `created_secs` after the epoch.
fn entry_created_at(key: &str, created_secs: u64) -> Vec<u8> {
    let data = b"zzz";
    let sha = hex(&sha2::Sha256::digest(data));
    let json = format!(
        r#"{{"format":1,"key":"{key}","created_secs":{created_secs},"created_nanos":0,"data_len":{},"uncompressed":0,"sha256":"{sha}"}}"#,
        data.len()
    );
    let mut bytes = data.to_vec();
    bytes.extend_from_slice(json.as_bytes());
    bytes.extend_from_slice(&u32::try_from(json.len()).unwrap().to_le_bytes());
    bytes.extend_from_slice(b"LCICACH1");
    bytes
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

// See: review finding 3 (`cache ls` panicked, exit 101, on a creation time of u64::MAX).
#[test]
fn ls_reports_an_entry_with_an_impossible_time_as_damaged() {
    let p = Project::new();
    p.save("good", b"1", 0);
    let name = format!("{}.tar.zst", hex(&sha2::Sha256::digest(b"k1")));
    let damaged = p.caches().join(name);
    std::fs::write(&damaged, entry_created_at("k1", u64::MAX)).unwrap();
    p.with_dir(&["ls"])
        .assert()
        .success()
        .stdout(contains("good ").and(contains("k1").not()))
        .stderr(
            contains("warning: damaged cache entry")
                .and(contains("out of range"))
                .and(contains(path_str(&damaged))),
        );
    p.with_dir(&["prune", "--older-than", "1d"])
        .assert()
        .success();
}

// See: issue 9, finding 2 (a damaged entry that a restore moved aside stays visible until
// pruned).
#[test]
fn ls_names_quarantined_entries_and_prune_removes_them() {
    let p = Project::new();
    p.save("kept", b"1", 0);
    p.save("broken", b"2", 0);
    let store = CacheStore::open(&p.caches()).unwrap();
    let entry = store.get("broken").unwrap().unwrap();
    let moved = store.quarantine(&entry).unwrap();
    assert!(moved.starts_with(p.caches().join("quarantine")));
    p.with_dir(&["ls"])
        .assert()
        .success()
        .stdout(contains("kept").and(contains("broken").not()))
        .stderr(contains("warning: 1 damaged cache(s) were moved to").and(contains("quarantine")));
    p.with_dir(&["prune", "--older-than", "7d"])
        .assert()
        .success();
    assert!(!moved.exists(), "prune leaves no quarantined entry");
    assert_eq!(p.keys(), vec!["kept".to_string()]);
}
