//! Local disk storage for what jobs keep between runs: the cache store (`save_cache` /
//! `restore_cache`), safe extraction of tar streams that come out of containers (artifacts,
//! test results) and JUnit summaries. Everything here is synchronous std I/O on the host; it
//! knows nothing about Docker, and writes that others may observe are atomic. Folders below
//! the repository are walked with [`safe_path`], never through a symlink.

pub mod archive;
pub mod cache;
mod hashing;
pub mod junit;
mod read_ahead;
pub mod runs;
pub mod safe_path;
pub mod scratch;
pub mod staging;
mod trailer;
pub mod workspace;
mod writer;

/// Kept for `steps/cache.rs`, which is being changed elsewhere; new code uses `crate::units`.
pub use cache::{CacheEntry, CacheStore, CacheWriter, SaveOutcome};
pub use read_ahead::{ReadAhead, read_ahead};
