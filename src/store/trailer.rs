//! The on-disk format of one cache entry: the zstd-compressed tar, then a JSON trailer that
//! names the real key and describes the data, then the trailer's length and a magic number.
//!
//! ```text
//! [zstd frame(s)][trailer JSON][u32 LE: JSON length]["LCICACH1"]
//! ```
//!
//! A trailer (rather than a header or a sidecar file) lets the entry be written in one
//! streaming pass and published with one rename: a file without a valid trailer is not an entry.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

const MAGIC: &[u8; 8] = b"LCICACH1";
const FORMAT: u32 = 1;
/// Length field + magic.
const TAIL: u64 = 12;
/// Keys are at most 900 characters; anything near this is not our trailer.
const MAX_JSON: u64 = 64 * 1024;

/// Why a file is not a valid cache entry.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TrailerError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("file too short to be a cache entry (unfinished write?)")]
    TooShort,
    #[error("no localci trailer at the end (unfinished write or not a cache entry)")]
    NoTrailer,
    #[error("trailer length out of range")]
    Length,
    #[error("unreadable trailer: {0}")]
    Unreadable(serde_json::Error),
    #[error("entry format {0} is not supported (expected {FORMAT})")]
    Format(u32),
    #[error("data is {actual} bytes, the trailer says {claimed}")]
    DataLength { actual: u64, claimed: u64 },
    #[error("creation time {secs}s {nanos}ns is out of range")]
    Created { secs: u64, nanos: u32 },
    #[error("trailer has no valid SHA-256")]
    Digest,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Trailer {
    pub format: u32,
    pub key: String,
    pub created_secs: u64,
    pub created_nanos: u32,
    /// Bytes of compressed data before the trailer.
    pub data_len: u64,
    /// Bytes of the uncompressed tar stream.
    pub uncompressed: u64,
    /// SHA-256 (hex) of the compressed data.
    pub sha256: String,
}

impl Trailer {
    pub fn new(
        key: &str,
        created: SystemTime,
        data_len: u64,
        uncompressed: u64,
        sha256: String,
    ) -> Self {
        let since = created.duration_since(UNIX_EPOCH).unwrap_or_default();
        Trailer {
            format: FORMAT,
            key: key.to_string(),
            created_secs: since.as_secs(),
            created_nanos: since.subsec_nanos(),
            data_len,
            uncompressed,
            sha256,
        }
    }

    pub fn created(&self) -> SystemTime {
        self.checked_created()
            .expect("read_from rejects times that do not fit; new() takes a SystemTime")
    }

    /// `None` for a time no `SystemTime` can hold (a damaged or forged trailer).
    fn checked_created(&self) -> Option<SystemTime> {
        if self.created_nanos >= 1_000_000_000 {
            return None;
        }
        UNIX_EPOCH.checked_add(Duration::new(self.created_secs, self.created_nanos))
    }

    pub fn write_to(&self, out: &mut impl Write) -> io::Result<()> {
        let json = serde_json::to_vec(self).map_err(io::Error::other)?;
        let len = u32::try_from(json.len()).map_err(io::Error::other)?;
        out.write_all(&json)?;
        out.write_all(&len.to_le_bytes())?;
        out.write_all(MAGIC)
    }

    /// Reads the trailer of an entry file; `Err` says why the file is not a valid entry.
    pub fn read_from(file: &mut File) -> Result<Trailer, TrailerError> {
        let file_len = file.metadata()?.len();
        if file_len < TAIL {
            return Err(TrailerError::TooShort);
        }
        let mut tail = [0u8; TAIL as usize];
        file.seek(SeekFrom::Start(file_len - TAIL))?;
        file.read_exact(&mut tail)?;
        if &tail[4..] != MAGIC {
            return Err(TrailerError::NoTrailer);
        }
        let json_len = u64::from(u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]));
        if json_len > MAX_JSON || json_len + TAIL > file_len {
            return Err(TrailerError::Length);
        }
        let mut json = vec![0u8; json_len as usize];
        file.seek(SeekFrom::Start(file_len - TAIL - json_len))?;
        file.read_exact(&mut json)?;
        let trailer: Trailer = serde_json::from_slice(&json).map_err(TrailerError::Unreadable)?;
        trailer.check(file_len - TAIL - json_len)?;
        Ok(trailer)
    }

    fn check(&self, data_len: u64) -> Result<(), TrailerError> {
        if self.format != FORMAT {
            return Err(TrailerError::Format(self.format));
        }
        if self.data_len != data_len {
            return Err(TrailerError::DataLength {
                actual: data_len,
                claimed: self.data_len,
            });
        }
        if self.checked_created().is_none() {
            return Err(TrailerError::Created {
                secs: self.created_secs,
                nanos: self.created_nanos,
            });
        }
        let hex = self.sha256.len() == 64 && self.sha256.bytes().all(|b| b.is_ascii_hexdigit());
        if !hex {
            return Err(TrailerError::Digest);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_with(bytes: &[u8]) -> File {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(bytes).unwrap();
        f
    }

    #[test]
    fn round_trips_after_the_data() {
        let created = UNIX_EPOCH + Duration::new(1_700_000_000, 123);
        let t = Trailer::new("v1-a/b+c=", created, 5, 10, "ab".repeat(32));
        let mut bytes = b"12345".to_vec();
        t.write_to(&mut bytes).unwrap();
        let back = Trailer::read_from(&mut file_with(&bytes)).unwrap();
        assert_eq!(back, t);
        assert_eq!(back.created(), created);
    }

    #[test]
    fn rejects_truncated_and_foreign_files() {
        let t = Trailer::new("k", SystemTime::now(), 5, 10, "ab".repeat(32));
        let mut bytes = b"12345".to_vec();
        t.write_to(&mut bytes).unwrap();
        let cut = &bytes[..bytes.len() - 1];
        assert!(Trailer::read_from(&mut file_with(cut)).is_err());
        assert!(Trailer::read_from(&mut file_with(b"hello")).is_err());
        // Data removed from the front: lengths no longer agree.
        assert!(Trailer::read_from(&mut file_with(&bytes[1..])).is_err());
    }

    // See: review finding 3 (`localci cache ls` panicked with "overflow when adding duration
    // to instant" on a trailer whose time was u64::MAX seconds).
    #[test]
    fn rejects_creation_times_out_of_range() {
        for (secs, nanos) in [
            (u64::MAX, 0),
            (1_700_000_000, 1_000_000_000),
            (u64::MAX, u32::MAX),
        ] {
            let mut t = Trailer::new("k", SystemTime::now(), 3, 0, "ab".repeat(32));
            t.created_secs = secs;
            t.created_nanos = nanos;
            let mut bytes = b"zzz".to_vec();
            t.write_to(&mut bytes).unwrap();
            let err = Trailer::read_from(&mut file_with(&bytes)).unwrap_err();
            assert!(
                matches!(err, TrailerError::Created { .. }),
                "{secs}s {nanos}ns: {err}"
            );
        }
    }
}
