//! The writing side of the cache store: a [`CacheWriter`] compresses and hashes the tar
//! stream it receives into a temporary file, and `commit` publishes it under the key's name
//! with a rename that never replaces an existing entry (immutable keys; of two concurrent
//! writers, the first to finish wins). Dropping a writer publishes nothing.

use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use tempfile::NamedTempFile;

use super::cache::{CacheEntry, read_entry, sync_dir};
use super::hashing::HashingWriter;
use super::scratch::{self, Registration};
use super::trailer::Trailer;

/// zstd level 3: 250 MB/s and a 6x ratio on source trees (crates.md §5.2).
const LEVEL: i32 = 3;
/// Below this many uncompressed bytes, worker threads cost more than they save.
pub(super) const MULTITHREAD_FROM: usize = 4 << 20;
/// Upper bound of zstd worker threads. Each worker adds jobs in flight, and so buffers: 2
/// workers keep a 1 GiB save well under the 64 MB target on any machine (4 workers with 2 MiB
/// jobs took 71 MiB), and the engine's tar stream rarely outruns two workers anyway.
const MAX_WORKERS: usize = 2;
/// Bytes per zstd job. With 2 workers, random data (the worst case: nothing shrinks), 1 MiB
/// jobs hold 15 MiB of buffers where 2 MiB jobs held 29 MiB (a 256 MiB stream into a sink).
const JOB_SIZE: u32 = 1 << 20;
/// Each job starts from the last half window (1 MiB at level 3) of the data before it, so small
/// jobs lose no ratio: 7.54 on a 120 MB tar of Rust sources, against 7.24 with 2 MiB jobs and
/// zstd's default overlap and 7.39 single-threaded.
const OVERLAP_LOG: u32 = 8;

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

type Sink = HashingWriter<BufWriter<NamedTempFile>>;
type Encoder = zstd::stream::write::Encoder<'static, Sink>;

/// Receives the uncompressed tar stream of a cache being saved; compresses and hashes it as it
/// goes. Dropping it without [`CacheWriter::commit`] publishes nothing and deletes the
/// temporary file.
pub struct CacheWriter {
    /// The temporary file, for a forced exit to remove (no destructor runs then).
    _scratch: Registration,
    key: String,
    dir: PathBuf,
    final_path: PathBuf,
    stage: Stage,
    uncompressed: u64,
}

pub(super) enum Stage {
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
    pub(super) fn new(key: &str, dir: &Path, final_path: PathBuf, temp: NamedTempFile) -> Self {
        CacheWriter {
            _scratch: scratch::register(temp.path()),
            key: key.to_string(),
            dir: dir.to_path_buf(),
            final_path,
            stage: Stage::Buffering {
                sink: HashingWriter::new(BufWriter::with_capacity(256 * 1024, temp)),
                buf: Vec::new(),
            },
            uncompressed: 0,
        }
    }

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
            encoder.set_parameter(zstd::stream::raw::CParameter::JobSize(JOB_SIZE))?;
            encoder.set_parameter(zstd::stream::raw::CParameter::OverlapSizeLog(OVERLAP_LOG))?;
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
