//! The checkout of a `--watch` rerun: it sends only what changed. Every sync keeps a manifest
//! of what the container holds (per checkout target: each path's kind, size, times, mode, and
//! for files the SHA-256 of the bytes sent). The next sync lists the same files as a checkout
//! (`checkout::entries`), hashes only the files whose size or times changed, sends the files
//! whose content, mode or kind differ, and removes in the container what is gone from the
//! working tree. An unchanged tree sends no file data; a touched file whose content is the
//! same sends nothing either. Files that steps made or changed in the container are left as
//! they are (as a build's output stays between reruns).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use sha2::{Digest, Sha256};

use super::StepOutcome;
use super::checkout::{self, Entry, Names};
use super::context::StepContext;
use super::process::collect;
use super::tarball::{self, Builder};
use crate::backend::{ExecSpec, Result};
use crate::report::SyncCounts;

/// Paths removed by one `rm` (an argument list stays far below Linux's limits).
const REMOVE_BATCH: usize = 500;

/// What `checkout` listed on the host: the repository, its files, its git folders.
pub(crate) struct Listed {
    pub(crate) root: PathBuf,
    pub(crate) files: Vec<PathBuf>,
    pub(crate) git_dirs: (PathBuf, PathBuf),
}

/// The syncs of one watched job: a manifest per checkout target, and what the latest sync
/// sent (taken by the watch loop for its result line).
#[derive(Debug, Default)]
pub struct SyncState {
    manifests: Mutex<HashMap<String, Manifest>>,
    last: Mutex<Option<SyncCounts>>,
}

impl SyncState {
    /// What the syncs since the last call sent, added up; `None` when none ran.
    pub fn take_counts(&self) -> Option<SyncCounts> {
        self.last.lock().expect("never poisoned").take()
    }

    fn take(&self, target: &str) -> Manifest {
        let mut manifests = self.manifests.lock().expect("never poisoned");
        manifests.remove(target).unwrap_or_default()
    }

    fn put(&self, target: &str, manifest: Manifest) {
        let mut manifests = self.manifests.lock().expect("never poisoned");
        manifests.insert(target.to_string(), manifest);
    }

    fn add_counts(&self, counts: SyncCounts) {
        let mut last = self.last.lock().expect("never poisoned");
        let sum = last.get_or_insert_with(SyncCounts::default);
        sum.files += counts.files;
        sum.bytes += counts.bytes;
        sum.removed += counts.removed;
        sum.unchanged += counts.unchanged;
    }
}

/// What a path is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    File,
    Link(PathBuf),
    Dir,
    /// A socket, fifo or device: never sent.
    Other,
}

/// What a path's metadata says, cheaply: when it is the same as at the last sync, the path is
/// taken as unchanged without reading it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Stamp {
    pub(crate) size: u64,
    pub(crate) mode: u32,
    /// Modification and change times, in nanoseconds.
    pub(crate) mtime: i128,
    pub(crate) ctime: i128,
    pub(crate) inode: u64,
}

/// One path as the working tree has it now.
#[derive(Clone, Debug)]
pub(crate) struct Found {
    pub(crate) name: PathBuf,
    pub(crate) source: PathBuf,
    pub(crate) kind: Kind,
    pub(crate) stamp: Stamp,
}

/// One path as the container has it, after a sync.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Record {
    kind: Kind,
    stamp: Stamp,
    /// SHA-256 of a file's bytes as sent.
    hash: Option<[u8; 32]>,
}

/// What the container holds of one checkout target, by name under the target.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Manifest {
    entries: BTreeMap<PathBuf, Record>,
}

/// What a sync does.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Delta {
    /// Indexes into the found paths of those to send, in listing order (parents first).
    pub(crate) send: Vec<usize>,
    /// Paths to remove in the container, outermost only (a folder's content goes with it).
    pub(crate) remove: Vec<PathBuf>,
    /// Paths gone from the working tree that are not folders (for the figures).
    pub(crate) removed: u64,
    /// Records of the paths that stay as they are.
    pub(crate) kept: BTreeMap<PathBuf, Record>,
}

/// Compares the working tree (`found`) with what the container holds (`old`). `hash` reads a
/// file whose metadata changed; a file that vanished meanwhile counts as gone.
pub(crate) fn diff(
    old: &Manifest,
    found: &[Found],
    hash: &mut dyn FnMut(&Found) -> io::Result<[u8; 32]>,
) -> io::Result<Delta> {
    // The last listing of a name wins (a worktree's own git files over the shared ones).
    let mut last: HashMap<&Path, usize> = HashMap::new();
    for (i, f) in found.iter().enumerate() {
        last.insert(&f.name, i);
    }
    let mut delta = Delta::default();
    let mut vanished: HashSet<&Path> = HashSet::new();
    for (i, f) in found.iter().enumerate() {
        if last[f.name.as_path()] != i || f.kind == Kind::Other {
            continue;
        }
        let Some(record) = old.entries.get(&f.name) else {
            delta.send.push(i);
            continue;
        };
        let same = match (&f.kind, &record.kind) {
            (Kind::Dir, Kind::Dir) => f.stamp.mode == record.stamp.mode,
            (Kind::Link(to), Kind::Link(was)) => to == was,
            (Kind::File, Kind::File) if f.stamp == record.stamp => true,
            (Kind::File, Kind::File) if f.stamp.mode != record.stamp.mode => false,
            (Kind::File, Kind::File) => match hash(f) {
                Ok(h) => record.hash == Some(h),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    vanished.insert(&f.name);
                    continue;
                }
                Err(e) => return Err(e),
            },
            _ => false,
        };
        if same {
            let hash = record.hash;
            let (kind, stamp) = (f.kind.clone(), f.stamp);
            delta
                .kept
                .insert(f.name.clone(), Record { kind, stamp, hash });
        } else {
            delta.send.push(i);
        }
    }
    let gone: Vec<&PathBuf> = old
        .entries
        .keys()
        .filter(|name| !last.contains_key(name.as_path()) || vanished.contains(name.as_path()))
        .collect();
    let gone_set: HashSet<&Path> = gone.iter().map(|p| p.as_path()).collect();
    for name in gone {
        if old.entries[name].kind != Kind::Dir {
            delta.removed += 1;
        }
        let inside_gone = name.ancestors().skip(1).any(|a| gone_set.contains(a));
        if !inside_gone {
            delta.remove.push(name.clone());
        }
    }
    Ok(delta)
}

/// The found form of a listed entry.
fn found(entry: Entry) -> io::Result<Found> {
    let kind = entry.meta.file_type();
    let kind = if kind.is_symlink() {
        Kind::Link(fs::read_link(&entry.source)?)
    } else if kind.is_dir() {
        Kind::Dir
    } else if kind.is_file() {
        Kind::File
    } else {
        Kind::Other
    };
    Ok(Found {
        stamp: stamp(&entry.meta),
        kind,
        name: entry.name,
        source: entry.source,
    })
}

#[cfg(unix)]
fn stamp(meta: &fs::Metadata) -> Stamp {
    use std::os::unix::fs::MetadataExt;
    let nanos = |s: i64, ns: i64| i128::from(s) * 1_000_000_000 + i128::from(ns);
    Stamp {
        size: meta.len(),
        mode: meta.mode(),
        mtime: nanos(meta.mtime(), meta.mtime_nsec()),
        ctime: nanos(meta.ctime(), meta.ctime_nsec()),
        inode: meta.ino(),
    }
}

#[cfg(not(unix))]
fn stamp(meta: &fs::Metadata) -> Stamp {
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos() as i128);
    Stamp {
        size: meta.len(),
        mode: u32::from(meta.permissions().readonly()),
        mtime,
        ..Stamp::default()
    }
}

/// SHA-256 of a file's first `size` bytes (what a sync of it would send).
fn hash_file(f: &Found) -> io::Result<[u8; 32]> {
    let mut hasher = Sha256::new();
    io::copy(
        &mut io::Read::take(fs::File::open(&f.source)?, f.stamp.size),
        &mut hasher,
    )?;
    Ok(hasher.finalize().into())
}

/// A reader that hashes what passes through it.
struct Hashing<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// Appends the paths to send; returns their records (files with the hash of what was sent)
/// and the figures.
fn write_delta(
    b: &mut Builder,
    paths: &[Found],
    names: &Names,
) -> io::Result<(Vec<(PathBuf, Record)>, SyncCounts)> {
    let mut records = Vec::with_capacity(paths.len());
    let mut counts = SyncCounts::default();
    for f in paths {
        let name = names.prefix.join(&f.name);
        let meta = match fs::symlink_metadata(&f.source) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                // Gone since it was listed: recorded as unknown, so that the next sync
                // removes what the container still has of it (or sends it again).
                // (`Other` matches no path's kind.)
                let unknown = Record {
                    kind: Kind::Other,
                    stamp: Stamp::default(),
                    hash: None,
                };
                records.push((f.name.clone(), unknown));
                continue;
            }
            Err(e) => return Err(e),
        };
        let hash = if meta.is_file() {
            let mut header = tar::Header::new_gnu();
            header.set_metadata_in_mode(&meta, tar::HeaderMode::Complete);
            header.set_uid(names.owner.0);
            header.set_gid(names.owner.1);
            header.set_size(f.stamp.size.min(meta.len()));
            let file = io::Read::take(fs::File::open(&f.source)?, header.size()?);
            let mut reader = Hashing {
                inner: file,
                hasher: Sha256::new(),
            };
            b.append_data(&mut header, &name, &mut reader)?;
            counts.bytes += header.size()?;
            Some(reader.hasher.finalize().into())
        } else {
            tarball::append_path(b, &f.source, &name, &meta, names.owner, Some(names.mtime))?;
            None
        };
        if !meta.is_dir() {
            counts.files += 1;
        }
        let record = Record {
            kind: f.kind.clone(),
            stamp: f.stamp,
            hash,
        };
        records.push((f.name.clone(), record));
    }
    Ok((records, counts))
}

/// Syncs the checkout into `target`: everything when the target is `fresh` (no `.git` yet),
/// else what changed since the last sync.
pub(super) async fn send(
    ctx: &StepContext,
    state: &SyncState,
    target: &str,
    fresh: bool,
    listed: Listed,
    names: Names,
) -> Result<StepOutcome> {
    let old = state.take(target);
    // A target without `.git` was never synced (or a step removed it): everything goes.
    let old = if fresh { Manifest::default() } else { old };
    let root = listed.root.clone();
    let compared = tokio::task::spawn_blocking(move || -> io::Result<_> {
        let found = checkout::entries(&listed.root, &listed.files, &listed.git_dirs)?
            .into_iter()
            .map(found)
            .collect::<io::Result<Vec<_>>>()?;
        let delta = diff(&old, &found, &mut hash_file)?;
        Ok((found, delta))
    })
    .await
    .map_err(|e| io::Error::other(e.to_string()))
    .and_then(|r| r);
    let (found, delta) = match compared {
        Ok(compared) => compared,
        Err(e) => {
            return Ok(StepOutcome::failed(format!(
                "cannot read the repository: {e}"
            )));
        }
    };
    let unchanged = delta.kept.values().filter(|r| r.kind != Kind::Dir).count() as u64;
    // Until the container is known to hold the rest, only what stays is recorded.
    let mut manifest = Manifest {
        entries: delta.kept,
    };
    state.put(target, manifest.clone());
    if let Some(failed) = remove(ctx, target, &delta.remove).await? {
        return Ok(failed);
    }
    let to_send: Vec<Found> = delta.send.iter().map(|&i| found[i].clone()).collect();
    let mut counts = SyncCounts {
        removed: delta.removed,
        unchanged,
        ..SyncCounts::default()
    };
    if !to_send.is_empty() {
        let (tar, writer) = tarball::spawn_writer(move |b| write_delta(b, &to_send, &names));
        let Some((uploaded, written)) = tarball::upload_while_written(
            ctx.backend.as_ref(),
            &ctx.primary,
            tar,
            writer,
            &ctx.cancel,
        )
        .await
        else {
            return Ok(StepOutcome::Cancelled);
        };
        let (records, sent) = match (uploaded, written) {
            (Ok(()), Ok(done)) => done,
            (_, Err(e)) if !tarball::is_engine_stopped(&e) => {
                return Ok(StepOutcome::failed(format!(
                    "cannot read the repository: {e}"
                )));
            }
            (Err(e), _) => return Err(e),
            (Ok(()), Err(e)) => {
                return Ok(StepOutcome::failed(format!(
                    "cannot send the repository: {e}"
                )));
            }
        };
        manifest.entries.extend(records);
        counts.files = sent.files;
        counts.bytes = sent.bytes;
    }
    state.put(target, manifest);
    state.add_counts(counts);
    let text = if fresh {
        format!(
            "Copied {} files ({}) from {} to {target}",
            counts.files,
            crate::units::format_bytes(counts.bytes),
            root.display()
        )
    } else {
        sync_line(&counts)
    };
    ctx.events.info(text);
    Ok(StepOutcome::Passed { exit_code: None })
}

/// `checkout: synced 1 file (12 B), 0 removed, 9999 unchanged`.
pub(crate) fn sync_line(counts: &SyncCounts) -> String {
    format!(
        "checkout: synced {} file{} ({}), {} removed, {} unchanged",
        counts.files,
        if counts.files == 1 { "" } else { "s" },
        crate::units::format_bytes(counts.bytes),
        counts.removed,
        counts.unchanged
    )
}

/// Removes `paths` (names under `target`) in the container; `Some` failed step when `rm`
/// failed.
async fn remove(ctx: &StepContext, target: &str, paths: &[PathBuf]) -> Result<Option<StepOutcome>> {
    for batch in paths.chunks(REMOVE_BATCH) {
        let mut cmd: Vec<String> = ["rm", "-rf", "--"].map(String::from).to_vec();
        cmd.extend(
            batch
                .iter()
                .map(|p| format!("{}/{}", target.trim_end_matches('/'), p.display())),
        );
        let spec = ExecSpec {
            cmd,
            // As the engine extracts archives: whoever made a file, the checkout replaces it.
            user: Some("0".into()),
            ..ExecSpec::default()
        };
        let out = collect(ctx.backend.as_ref(), &ctx.primary, spec).await?;
        if out.exit_code != 0 {
            let why = format!("{}{}", out.stdout, out.stderr);
            return Ok(Some(StepOutcome::failed(format!(
                "cannot remove deleted files from the checkout: {}",
                why.trim()
            ))));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests;
