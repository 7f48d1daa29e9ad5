//! Identity of one localci run: a random id and the process that runs it ([`Owner`]), written
//! as labels on everything the run creates so leftovers can be found and attributed later.

use std::collections::BTreeMap;
use std::hash::{BuildHasher, RandomState};
use std::time::{SystemTime, UNIX_EPOCH};

use super::owner::Owner;
use crate::backend::{LABEL, LABEL_RUN};

/// Label on containers created with `--keep`: never removed as leftovers.
pub const LABEL_KEEP: &str = "localci.keep";
/// Label naming the job.
pub const LABEL_JOB: &str = "localci.job";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunInfo {
    /// A random UUID (version 4 layout).
    pub id: String,
    pub owner: Owner,
    pub keep: bool,
}

impl RunInfo {
    pub fn new(keep: bool) -> RunInfo {
        RunInfo {
            id: random_uuid(),
            owner: Owner::me(),
            keep,
        }
    }

    /// The first 8 hex digits of the id, for container names.
    pub fn short(&self) -> &str {
        &self.id[..8]
    }

    pub fn labels(&self, job: &str) -> BTreeMap<String, String> {
        let mut labels = self.owner.labels();
        labels.extend([
            (LABEL.to_string(), "1".to_string()),
            (LABEL_RUN.to_string(), self.id.clone()),
            (LABEL_JOB.to_string(), job.to_string()),
        ]);
        if self.keep {
            labels.insert(LABEL_KEEP.to_string(), "1".to_string());
        }
        labels
    }
}

/// 122 random bits from the standard library's per-process random hasher keys, seeded
/// again with the clock and pid; no extra dependency for one id per run.
pub fn random_uuid() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let a = RandomState::new().hash_one((nanos, std::process::id()));
    let b = RandomState::new().hash_one((a, nanos));
    let a = (a & 0xffff_ffff_ffff_0fff) | 0x4000; // version 4
    let b = (b & 0x3fff_ffff_ffff_ffff) | 0x8000_0000_0000_0000; // RFC 4122 variant
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xffff,
        b >> 48,
        b & 0xffff_ffff_ffff
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_uuid_shaped_and_differ() {
        let a = RunInfo::new(false);
        let b = RunInfo::new(false);
        assert_ne!(a.id, b.id);
        assert_eq!(a.id.len(), 36);
        assert_eq!(&a.id[14..15], "4");
        assert_eq!(a.short().len(), 8);
    }
}
