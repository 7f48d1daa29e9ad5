//! The local cache store behind `save_cache` and `restore_cache`: one directory per project,
//! one file per key, with CircleCI's rules: keys are immutable, a restore key matches as a
//! prefix and the newest match wins.
//!
//! An entry is a zstd-compressed tar stream followed by a trailer (see `trailer`) and is named
//! by the hex SHA-256 of its key, because keys contain `/` and `+` (base64 checksums). Entries
//! are written to a temporary file in the same directory, fsynced and published with a
//! rename that refuses to replace an existing file, so a crash or Ctrl-C never leaves a half
//! entry that `find` would return, and two writers of one key leave one whole entry. Data is
//! streamed both ways: memory stays small whatever the size of the cache. This module knows
//! nothing about containers; callers produce and consume the tar streams.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::hashing::{self, VerifyingReader};
use super::trailer::Trailer;
pub use super::writer::{CacheWriter, SaveOutcome};
use crate::git::RepoInfo;

const SUFFIX: &str = ".tar.zst";
/// Folder of the store where damaged entries are moved.
const QUARANTINE: &str = "quarantine";
const TEMP_PREFIX: &str = ".tmp-";
/// Temporary files older than this belong to writers that died; nobody writes that slowly.
const STALE_TEMP: Duration = Duration::from_secs(3600);
/// A live writer holds a `flock` on its temporary file, so one that is unlocked and older than
/// this (the moment between creating and locking it) belongs to a writer that died: a killed
/// run's `.partial` goes at the next open, not an hour later (issue 9, finding 8).
const UNLOCKED_GRACE: Duration = Duration::from_secs(10);

/// A directory of cache entries.
#[derive(Clone, Debug)]
pub struct CacheStore {
    dir: PathBuf,
}

/// One stored cache.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheEntry {
    pub key: String,
    /// When the entry was published (the end of its save).
    pub created: SystemTime,
    /// Bytes on disk.
    pub size: u64,
    /// Bytes of the tar stream it restores.
    pub uncompressed_size: u64,
    /// SHA-256 (hex) of the compressed data, checked on every read.
    pub sha256: String,
    path: PathBuf,
    data_len: u64,
}

impl CacheEntry {
    /// The file that holds the entry.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub(super) fn from_trailer(path: PathBuf, trailer: Trailer, size: u64) -> Self {
        CacheEntry {
            created: trailer.created(),
            key: trailer.key,
            size,
            uncompressed_size: trailer.uncompressed,
            sha256: trailer.sha256,
            path,
            data_len: trailer.data_len,
        }
    }

    fn describe(&self) -> String {
        format!("cache entry {:?} ({})", self.key, self.path.display())
    }
}

/// A file in the store that is not a readable entry, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Damaged {
    pub path: PathBuf,
    pub reason: String,
}

impl CacheStore {
    /// Opens (creating it if needed) a store and removes temporary files left by writers that
    /// died more than an hour ago.
    pub fn open(dir: &Path) -> io::Result<CacheStore> {
        fs::create_dir_all(dir)?;
        let store = CacheStore {
            dir: dir.to_path_buf(),
        };
        store.remove_stale_temps(SystemTime::now())?;
        Ok(store)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `$XDG_CACHE_HOME/localci/<project>/caches`, or `$HOME/.cache/...`; `project` is
    /// `user/repo` and each part is made safe for a path.
    pub fn default_dir(env: &BTreeMap<String, String>, project: &str) -> PathBuf {
        let non_empty = |name: &str| env.get(name).filter(|v| !v.is_empty());
        let base = non_empty("XDG_CACHE_HOME")
            .map(PathBuf::from)
            // The XDG spec says to ignore relative values.
            .filter(|p| p.is_absolute())
            .or_else(|| non_empty("HOME").map(|h| Path::new(h).join(".cache")))
            .unwrap_or_else(|| PathBuf::from(".localci"));
        let mut dir = base.join("localci");
        for part in project.split('/') {
            dir.push(path_safe(part));
        }
        dir.join("caches")
    }

    /// The directory a command should use: `--cache-dir`, else `$LOCALCI_CACHE_DIR`, else the
    /// per-project default for the repository containing `cwd`. Relative paths are against `cwd`.
    pub fn resolve_dir(
        explicit: Option<&Path>,
        env: &BTreeMap<String, String>,
        cwd: &Path,
    ) -> PathBuf {
        if let Some(dir) = explicit {
            return cwd.join(dir);
        }
        match env.get("LOCALCI_CACHE_DIR").filter(|v| !v.is_empty()) {
            Some(dir) => cwd.join(dir),
            None => Self::default_dir(env, &project_name(cwd)),
        }
    }

    fn entry_path(&self, key: &str) -> PathBuf {
        self.dir
            .join(format!("{}{SUFFIX}", hashing::sha256_hex(key.as_bytes())))
    }

    /// The entry with exactly this key.
    pub fn get(&self, key: &str) -> io::Result<Option<CacheEntry>> {
        read_entry(&self.entry_path(key), Some(key))
    }

    /// The newest entry whose key starts with `prefix` (CircleCI's `restore_cache` rule: a newer
    /// `v1-deps-b` beats an older exact `v1-deps`).
    pub fn find(&self, prefix: &str) -> io::Result<Option<CacheEntry>> {
        let (entries, _) = self.scan()?;
        Ok(entries
            .into_iter()
            .filter(|e| e.key.starts_with(prefix))
            .max_by(|a, b| a.created.cmp(&b.created).then_with(|| a.key.cmp(&b.key))))
    }

    /// Every readable entry, newest first.
    pub fn list(&self) -> io::Result<Vec<CacheEntry>> {
        let (mut entries, _) = self.scan()?;
        entries.sort_by(|a, b| b.created.cmp(&a.created).then_with(|| a.key.cmp(&b.key)));
        Ok(entries)
    }

    /// Files that look like entries but cannot be read as one. `find` never returns them.
    pub fn damaged(&self) -> io::Result<Vec<Damaged>> {
        Ok(self.scan()?.1)
    }

    /// Starts saving `key`: write the uncompressed tar stream into the writer, then commit.
    /// Callers may check [`CacheStore::get`] first to skip building an archive for a key that
    /// exists; `commit` checks again, atomically.
    pub fn writer(&self, key: &str) -> io::Result<CacheWriter> {
        if key.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "cache key is empty",
            ));
        }
        let temp = tempfile::Builder::new()
            .prefix(TEMP_PREFIX)
            .suffix(".partial")
            .tempfile_in(&self.dir)?;
        // Held while the writer lives (see `UNLOCKED_GRACE`); a new file, so it is free. A file
        // system without `flock` refuses it: the file then counts as locked, and only the
        // one-hour rule removes it.
        let _ = temp.as_file().try_lock();
        Ok(CacheWriter::new(key, &self.dir, self.entry_path(key), temp))
    }

    /// The uncompressed tar stream of an entry. The data is checked as it is read: reading to
    /// the end of a damaged entry fails (with `InvalidData`) instead of ending normally, so
    /// consumers must read to the end before trusting what they got (or call `verify` first).
    pub fn reader(&self, entry: &CacheEntry) -> io::Result<Box<dyn Read + Send>> {
        let file = File::open(&entry.path)?;
        let verified = VerifyingReader::new(file.take(entry.data_len), entry.sha256.clone());
        let decoder = zstd::stream::read::Decoder::new(verified)?;
        Ok(Box::new(EntryReader {
            inner: decoder,
            what: entry.describe(),
        }))
    }

    /// Checks an entry's compressed data against its SHA-256 without decompressing it, for
    /// callers that must not start restoring a damaged entry.
    pub fn verify(&self, entry: &CacheEntry) -> io::Result<()> {
        verify_file(&mut File::open(&entry.path)?, entry)
    }

    /// The uncompressed tar stream of an entry whose whole data was checked first, through the
    /// same open file: a restore gets no byte of a damaged entry (issue 9, finding 2: a flipped
    /// byte was restored half-way before the check at the end failed). A damaged entry is an
    /// `InvalidData` error naming it.
    pub fn verified_reader(&self, entry: &CacheEntry) -> io::Result<Box<dyn Read + Send>> {
        let mut file = File::open(&entry.path)?;
        verify_file(&mut file, entry)?;
        file.seek(SeekFrom::Start(0))?;
        let verified = VerifyingReader::new(file.take(entry.data_len), entry.sha256.clone());
        let decoder = zstd::stream::read::Decoder::new(verified)?;
        Ok(Box::new(EntryReader {
            inner: decoder,
            what: entry.describe(),
        }))
    }

    /// Moves a damaged entry out of the way, into `quarantine/` of the store, so no restore
    /// finds it again and a later save can store the key anew; returns where it went.
    pub fn quarantine(&self, entry: &CacheEntry) -> io::Result<PathBuf> {
        let dir = self.dir.join(QUARANTINE);
        fs::create_dir_all(&dir)?;
        let name = entry.path.file_name().unwrap_or_default();
        let target = dir.join(name);
        fs::rename(&entry.path, &target)?;
        sync_dir(&self.dir)?;
        Ok(target)
    }

    /// Files in quarantine (damaged entries moved aside by a restore).
    pub fn quarantined(&self) -> io::Result<Vec<PathBuf>> {
        match fs::read_dir(self.dir.join(QUARANTINE)) {
            Ok(items) => items.map(|i| i.map(|i| i.path())).collect(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    /// Removes every entry whose key starts with `prefix`; returns what it removed.
    pub fn remove_prefix(&self, prefix: &str) -> io::Result<Vec<CacheEntry>> {
        let (entries, _) = self.scan()?;
        self.remove_all(entries.into_iter().filter(|e| e.key.starts_with(prefix)))
    }

    /// Removes entries created more than `age` ago, damaged files last modified before then
    /// and every quarantined file (damaged for sure); returns the entries it removed.
    pub fn prune_older_than(&self, age: Duration) -> io::Result<Vec<CacheEntry>> {
        let cutoff = SystemTime::now()
            .checked_sub(age)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        for path in self.quarantined()? {
            if is_entry_name(&path) {
                remove_file_if_exists(&path)?;
            }
        }
        let (entries, damaged) = self.scan()?;
        for d in damaged {
            if modified(&d.path).is_some_and(|m| m < cutoff) {
                remove_file_if_exists(&d.path)?;
            }
        }
        self.remove_all(entries.into_iter().filter(|e| e.created < cutoff))
    }

    fn remove_all(&self, entries: impl Iterator<Item = CacheEntry>) -> io::Result<Vec<CacheEntry>> {
        let mut removed = Vec::new();
        for entry in entries {
            remove_file_if_exists(&entry.path)?;
            removed.push(entry);
        }
        if !removed.is_empty() {
            sync_dir(&self.dir)?;
        }
        Ok(removed)
    }

    /// Reads every entry file's trailer (not its data).
    fn scan(&self) -> io::Result<(Vec<CacheEntry>, Vec<Damaged>)> {
        let mut entries = Vec::new();
        let mut damaged = Vec::new();
        for item in fs::read_dir(&self.dir)? {
            let path = item?.path();
            if !is_entry_name(&path) {
                continue;
            }
            match read_entry(&path, None) {
                Ok(Some(entry)) => entries.push(entry),
                // Removed while we listed.
                Ok(None) => {}
                Err(e) if e.kind() == io::ErrorKind::InvalidData => damaged.push(Damaged {
                    path,
                    reason: e.to_string(),
                }),
                Err(e) => return Err(e),
            }
        }
        Ok((entries, damaged))
    }

    fn remove_stale_temps(&self, now: SystemTime) -> io::Result<()> {
        for item in fs::read_dir(&self.dir)? {
            let path = item?.path();
            let is_temp = path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(TEMP_PREFIX));
            let age = modified(&path).and_then(|m| now.duration_since(m).ok());
            let stale = age.is_some_and(|age| {
                age > STALE_TEMP || (age > UNLOCKED_GRACE && is_temp && unlocked(&path))
            });
            if is_temp && stale {
                remove_file_if_exists(&path)?;
            }
        }
        Ok(())
    }
}

/// `user/repo` of the repository containing `cwd` (`local/<folder>` without a remote).
pub fn project_name(cwd: &Path) -> String {
    let (user, repo) = RepoInfo::discover(cwd).project_slug();
    format!("{user}/{repo}")
}

fn path_safe(part: &str) -> String {
    let clean: String = part
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    if clean.chars().all(|c| c == '.') {
        format!("_{clean}")
    } else {
        clean
    }
}

fn is_entry_name(path: &Path) -> bool {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    name.strip_suffix(SUFFIX).is_some_and(|stem| {
        stem.len() == 64 && stem.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    })
}

/// Reads an entry file's trailer. `Ok(None)`: no such file. `InvalidData`: damaged, or (with
/// `expect_key`) holding another key, or named after another key.
pub(super) fn read_entry(path: &Path, expect_key: Option<&str>) -> io::Result<Option<CacheEntry>> {
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let invalid = |reason: String| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "damaged cache entry {}: {reason}; delete the file",
                path.display()
            ),
        )
    };
    let trailer = Trailer::read_from(&mut file).map_err(|e| invalid(e.to_string()))?;
    let expected_name = format!("{}{SUFFIX}", hashing::sha256_hex(trailer.key.as_bytes()));
    if path.file_name().and_then(|n| n.to_str()) != Some(expected_name.as_str()) {
        return Err(invalid(format!(
            "it holds key {:?}, which has another file name",
            trailer.key
        )));
    }
    if expect_key.is_some_and(|k| k != trailer.key) {
        return Err(invalid(format!("it holds key {:?}", trailer.key)));
    }
    let size = file.metadata()?.len();
    Ok(Some(CacheEntry::from_trailer(
        path.to_path_buf(),
        trailer,
        size,
    )))
}

/// Whether no process holds the lock of a writer's temporary file (its writer is gone).
fn unlocked(path: &Path) -> bool {
    File::open(path).is_ok_and(|f| f.try_lock().is_ok())
}

fn modified(path: &Path) -> Option<SystemTime> {
    fs::symlink_metadata(path).and_then(|m| m.modified()).ok()
}

fn remove_file_if_exists(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Makes a rename or removal in `dir` durable.
pub(super) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

fn verify_file(file: &mut File, entry: &CacheEntry) -> io::Result<()> {
    let mut verified = VerifyingReader::new(
        Read::by_ref(file).take(entry.data_len),
        entry.sha256.clone(),
    );
    io::copy(&mut verified, &mut io::sink())
        .map(drop)
        .map_err(|e| damaged(&entry.describe(), &e))
}

fn damaged(what: &str, e: &io::Error) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        Damage {
            what: what.to_string(),
            reason: e.to_string(),
        },
    )
}

/// The error of reading a damaged entry: what it is and what is wrong with it.
#[derive(Debug, thiserror::Error)]
#[error("{what} is damaged ({reason}); remove it with `localci cache rm`")]
pub struct Damage {
    pub what: String,
    /// What the check found (`its SHA-256 is ..., expected ...`).
    pub reason: String,
}

/// Decompressed data of an entry; errors name the entry.
struct EntryReader<R> {
    inner: R,
    what: String,
}

impl<R: Read> Read for EntryReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).map_err(|e| match e.kind() {
            // Our checksum, zstd's frame checksum or a truncated frame.
            io::ErrorKind::InvalidData | io::ErrorKind::Other | io::ErrorKind::UnexpectedEof => {
                damaged(&self.what, &e)
            }
            kind => io::Error::new(kind, format!("reading {}: {e}", self.what)),
        })
    }
}

#[cfg(test)]
mod tests;
