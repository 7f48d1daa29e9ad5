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
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use tempfile::NamedTempFile;

use super::hashing::{self, HashingWriter, VerifyingReader};
use super::trailer::Trailer;
use crate::git::RepoInfo;

const SUFFIX: &str = ".tar.zst";
const TEMP_PREFIX: &str = ".tmp-";
/// Temporary files older than this belong to writers that died; nobody writes that slowly.
const STALE_TEMP: Duration = Duration::from_secs(3600);
/// zstd level 3: 250 MB/s and a 6x ratio on source trees (crates.md §5.2).
const LEVEL: i32 = 3;
/// Below this many uncompressed bytes, worker threads cost more than they save.
const MULTITHREAD_FROM: usize = 4 << 20;
/// Upper bound of zstd worker threads: each holds a few MB of buffers.
const MAX_WORKERS: usize = 4;

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

    fn from_trailer(path: PathBuf, trailer: Trailer, size: u64) -> Self {
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

/// What [`CacheWriter::commit`] did. Keys are immutable: the first complete save of a key wins
/// and later ones are dropped, as on CircleCI.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SaveOutcome {
    Saved(CacheEntry),
    AlreadyExists(CacheEntry),
}

impl SaveOutcome {
    pub fn entry(&self) -> &CacheEntry {
        match self {
            SaveOutcome::Saved(e) | SaveOutcome::AlreadyExists(e) => e,
        }
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
        Ok(CacheWriter {
            key: key.to_string(),
            dir: self.dir.clone(),
            final_path: self.entry_path(key),
            stage: Stage::Buffering {
                sink: HashingWriter::new(BufWriter::with_capacity(256 * 1024, temp)),
                buf: Vec::new(),
            },
            uncompressed: 0,
        })
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
        let file = File::open(&entry.path)?;
        let mut verified = VerifyingReader::new(file.take(entry.data_len), entry.sha256.clone());
        io::copy(&mut verified, &mut io::sink())
            .map(drop)
            .map_err(|e| damaged(&entry.describe(), &e))
    }

    /// Removes every entry whose key starts with `prefix`; returns what it removed.
    pub fn remove_prefix(&self, prefix: &str) -> io::Result<Vec<CacheEntry>> {
        let (entries, _) = self.scan()?;
        self.remove_all(entries.into_iter().filter(|e| e.key.starts_with(prefix)))
    }

    /// Removes entries created more than `age` ago, and damaged files last modified before
    /// then; returns the entries it removed.
    pub fn prune_older_than(&self, age: Duration) -> io::Result<Vec<CacheEntry>> {
        let cutoff = SystemTime::now()
            .checked_sub(age)
            .unwrap_or(SystemTime::UNIX_EPOCH);
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
            let stale = modified(&path)
                .and_then(|m| now.duration_since(m).ok())
                .is_some_and(|age| age > STALE_TEMP);
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
fn read_entry(path: &Path, expect_key: Option<&str>) -> io::Result<Option<CacheEntry>> {
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
    let trailer = Trailer::read_from(&mut file).map_err(invalid)?;
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
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

fn damaged(what: &str, e: &io::Error) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("{what} is damaged ({e}); remove it with `localci cache rm`"),
    )
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

type Sink = HashingWriter<BufWriter<NamedTempFile>>;
type Encoder = zstd::stream::write::Encoder<'static, Sink>;

/// Receives the uncompressed tar stream of a cache being saved; compresses and hashes it as it
/// goes. Dropping it without [`CacheWriter::commit`] publishes nothing and deletes the
/// temporary file.
pub struct CacheWriter {
    key: String,
    dir: PathBuf,
    final_path: PathBuf,
    stage: Stage,
    uncompressed: u64,
}

enum Stage {
    /// The first bytes, held until we know whether the cache is big enough for threads.
    Buffering {
        sink: Sink,
        buf: Vec<u8>,
    },
    Encoding(Box<Encoder>),
    /// An earlier write failed; the writer can only be dropped.
    Broken,
}

impl CacheWriter {
    /// Publishes the entry, timestamped now.
    pub fn commit(self) -> io::Result<SaveOutcome> {
        self.commit_at(SystemTime::now())
    }

    /// Publishes the entry with the given creation time (importing caches, tests of ages).
    pub fn commit_at(mut self, created: SystemTime) -> io::Result<SaveOutcome> {
        if matches!(self.stage, Stage::Buffering { .. }) {
            self.start_encoding(1)?;
        }
        let Stage::Encoding(encoder) = std::mem::replace(&mut self.stage, Stage::Broken) else {
            return Err(io::Error::other(
                "the cache writer failed earlier; nothing was saved",
            ));
        };
        let (mut buffered, sha256, data_len) = encoder.finish()?.finish();
        let trailer = Trailer::new(&self.key, created, data_len, self.uncompressed, sha256);
        trailer.write_to(&mut buffered)?;
        let temp = buffered
            .into_inner()
            .map_err(io::IntoInnerError::into_error)?;
        temp.as_file().sync_all()?;
        self.publish(temp)
    }

    /// Renames the temporary file to the entry's name unless that name exists. Retries when an
    /// entry that was in the way disappears (`cache rm` at the same moment).
    fn publish(&self, mut temp: NamedTempFile) -> io::Result<SaveOutcome> {
        for _ in 0..3 {
            match temp.persist_noclobber(&self.final_path) {
                Ok(file) => {
                    sync_dir(&self.dir)?;
                    let size = file.metadata()?.len();
                    let mut file = file;
                    let trailer = Trailer::read_from(&mut file).map_err(io::Error::other)?;
                    let path = self.final_path.clone();
                    return Ok(SaveOutcome::Saved(CacheEntry::from_trailer(
                        path, trailer, size,
                    )));
                }
                Err(e) if e.error.kind() == io::ErrorKind::AlreadyExists => {
                    if let Some(existing) = read_entry(&self.final_path, Some(&self.key))? {
                        return Ok(SaveOutcome::AlreadyExists(existing));
                    }
                    temp = e.file;
                }
                Err(e) => return Err(e.error),
            }
        }
        Err(io::Error::other(format!(
            "could not publish cache {:?}: the entry kept changing under us",
            self.key
        )))
    }

    fn start_encoding(&mut self, workers: usize) -> io::Result<()> {
        let Stage::Buffering { sink, buf } = std::mem::replace(&mut self.stage, Stage::Broken)
        else {
            return Ok(());
        };
        let mut encoder = Encoder::new(sink, LEVEL)?;
        encoder.include_checksum(true)?;
        if workers > 1 {
            encoder.multithread(u32::try_from(workers).unwrap_or(1))?;
        }
        encoder.write_all(&buf)?;
        self.stage = Stage::Encoding(Box::new(encoder));
        Ok(())
    }
}

fn workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(MAX_WORKERS))
}

impl Write for CacheWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = match &mut self.stage {
            Stage::Buffering { buf, .. } => {
                let n = data.len().min(MULTITHREAD_FROM - buf.len());
                buf.extend_from_slice(&data[..n]);
                if buf.len() >= MULTITHREAD_FROM {
                    self.start_encoding(workers())?;
                }
                n
            }
            Stage::Encoding(encoder) => encoder.write(data)?,
            Stage::Broken => return Err(io::Error::other("the cache writer failed earlier")),
        };
        self.uncompressed += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.stage {
            Stage::Encoding(encoder) => encoder.flush(),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests;
