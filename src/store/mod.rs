//! Local disk storage for what jobs keep between runs: the cache store (`save_cache` /
//! `restore_cache`), safe extraction of tar streams that come out of containers (artifacts,
//! test results) and JUnit summaries. Everything here is synchronous std I/O on the host; it
//! knows nothing about Docker, and writes that others may observe are atomic.

pub mod archive;
pub mod cache;
mod duration;
mod hashing;
pub mod junit;
mod trailer;

pub use cache::{CacheEntry, CacheStore, CacheWriter, SaveOutcome};
pub use duration::{format_age, parse_duration};
