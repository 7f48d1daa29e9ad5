//! Workflow workspace layers on the host (CircleCI: an additive stack of immutable layers, one
//! per `persist_to_workspace`; semantics file 4.9). A layer is a plain tar of the persisted
//! entries, relative to the step's `root`, followed by a trailer:
//!
//! ```text
//! [tar][SHA-256 of the tar: 32 bytes][u64 LE: tar length]["LCIWSL01"]
//! ```
//!
//! Layers are written to a temporary file in their folder, fsynced and renamed to
//! `<node>-<step>.tar`, so a reader never sees half a layer. Before any byte of a layer goes
//! to a container, [`verify`] reads it once in full: the SHA-256 must match (a damaged layer
//! is refused whole) and the pass lists the files it holds, for [`check_conflicts`].
//!
//! The folders live in the repository's `.localci/`, which the repository itself could fill
//! with symlinks: nothing here follows a symlink there (folders are made one component at a
//! time with `create_dir`, existing components must not be symlinks, layer files are opened
//! with `O_NOFOLLOW` and created with `O_EXCL`). This module knows nothing about containers.

use std::collections::{BTreeSet, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};

use sha2::{Digest, Sha256};
use tempfile::NamedTempFile;

use super::hashing::{HashingWriter, hex};

const MAGIC: &[u8; 8] = b"LCIWSL01";
/// Digest + length + magic.
const TRAILER_LEN: u64 = 32 + 8 + 8;
const TEMP_PREFIX: &str = ".tmp-";
/// How many conflicting paths an error lists before it summarizes the rest.
const CONFLICTS_SHOWN: usize = 20;
/// The folder below which every path component is localci's own (see [`guarded_from`]).
const LOCALCI_DIR: &str = ".localci";

/// What can go wrong with the workspace store.
#[derive(Debug, thiserror::Error)]
pub enum WorkspaceError {
    #[error("{what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("refusing to use {}: it is a symbolic link, and localci only follows links it made", path.display())]
    Symlink { path: PathBuf },
    #[error("the workspace layer {} is damaged ({reason}); run the job {job} again to persist it anew", path.display())]
    Damaged {
        job: String,
        path: PathBuf,
        reason: String,
    },
    #[error("{}", conflict_text(.0))]
    Conflicts(Vec<Conflict>),
}

type Result<T> = std::result::Result<T, WorkspaceError>;

fn io_error(what: &'static str, path: &Path) -> impl FnOnce(io::Error) -> WorkspaceError {
    let path = path.to_path_buf();
    move |source| WorkspaceError::Io { what, path, source }
}

/// One file that two upstream jobs persisted while neither required the other.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conflict {
    pub path: String,
    pub first: String,
    pub second: String,
}

fn conflict_text(conflicts: &[Conflict]) -> String {
    // CircleCI's wording (seen in failed attach logs), plus the jobs, which it does not name.
    let mut text =
        String::from("Concurrent upstream jobs persisted the same file(s) into the workspace:");
    for c in conflicts.iter().take(CONFLICTS_SHOWN) {
        text.push_str(&format!(
            "\n  - {} (persisted by {} and {})",
            c.path, c.first, c.second
        ));
    }
    if conflicts.len() > CONFLICTS_SHOWN {
        text.push_str(&format!(
            "\n  ... and {} more",
            conflicts.len() - CONFLICTS_SHOWN
        ));
    }
    text.push_str(
        "\nNeither job requires the other, so the order of their layers is undefined. Persist \
         different paths from each job, or make one job require the other.",
    );
    text
}

/// A layer file written and published.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredLayer {
    pub path: PathBuf,
    /// Bytes of the tar stream.
    pub size: u64,
}

/// Receives the tar stream of one `persist_to_workspace` and publishes it as a layer on
/// [`LayerWriter::commit`]. Dropping it publishes nothing and removes the temporary file.
pub struct LayerWriter {
    sink: HashingWriter<BufWriter<NamedTempFile>>,
    dir: PathBuf,
    final_path: PathBuf,
}

impl LayerWriter {
    /// A writer for the layer of step `step` on node `node`, in `dir` (created if missing).
    pub fn create(dir: &Path, node: u32, step: usize) -> Result<LayerWriter> {
        ensure_dir(dir)?;
        // tempfile opens with O_CREAT|O_EXCL, so it never writes through an existing link.
        let temp = tempfile::Builder::new()
            .prefix(TEMP_PREFIX)
            .suffix(".partial")
            .tempfile_in(dir)
            .map_err(io_error("cannot create a workspace layer in", dir))?;
        Ok(LayerWriter {
            sink: HashingWriter::new(BufWriter::with_capacity(256 * 1024, temp)),
            dir: dir.to_path_buf(),
            final_path: dir.join(layer_name(node, step)),
        })
    }

    /// Writes the trailer, syncs and renames the file to its final name. A layer of the same
    /// step and node (a job run again in the same workflow run) is replaced.
    pub fn commit(self) -> Result<StoredLayer> {
        let path = self.final_path.clone();
        let fail = |e| io_error("cannot write the workspace layer", &path)(e);
        let (mut buffered, digest, size) = self.sink.finish();
        buffered.write_all(&digest_bytes(&digest)).map_err(fail)?;
        buffered.write_all(&size.to_le_bytes()).map_err(fail)?;
        buffered.write_all(MAGIC).map_err(fail)?;
        let temp = buffered.into_inner().map_err(|e| fail(e.into_error()))?;
        temp.as_file().sync_all().map_err(fail)?;
        // rename(2) replaces the name itself, never what a symlink there points to.
        temp.persist(&self.final_path).map_err(|e| fail(e.error))?;
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io_error("cannot sync", &self.dir))?;
        Ok(StoredLayer { path, size })
    }
}

impl Write for LayerWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.sink.write(data)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.sink.flush()
    }
}

fn digest_bytes(hex_digest: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex_digest[2 * i..2 * i + 2], 16)
            .expect("HashingWriter gives 64 hex digits");
    }
    out
}

/// `<node>-<step>.tar`.
pub fn layer_name(node: u32, step: usize) -> String {
    format!("{node}-{step}.tar")
}

/// `(node, step)` of a layer file name; `None` for anything else (temporary files).
fn parse_layer_name(name: &str) -> Option<(u32, usize)> {
    let (node, step) = name.strip_suffix(".tar")?.split_once('-')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(node) || !digits(step) {
        return None;
    }
    Some((node.parse().ok()?, step.parse().ok()?))
}

/// The layer files of one job's folder, in the order they apply: by node, then by step. A
/// folder that does not exist holds no layers (the job persisted nothing).
pub fn job_layers(dir: &Path) -> Result<Vec<PathBuf>> {
    check_no_symlinks(dir)?;
    match fs::symlink_metadata(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_error("cannot read", dir)(e)),
        Ok(_) => {}
    }
    let mut found = Vec::new();
    for item in fs::read_dir(dir).map_err(io_error("cannot read", dir))? {
        let item = item.map_err(io_error("cannot read", dir))?;
        let name = item.file_name();
        if let Some(order) = name.to_str().and_then(parse_layer_name) {
            found.push((order, item.path()));
        }
    }
    found.sort();
    Ok(found.into_iter().map(|(_, path)| path).collect())
}

/// A layer whose data matched its digest, ready to stream.
#[derive(Debug)]
pub struct VerifiedLayer {
    pub job: String,
    pub path: PathBuf,
    /// Bytes of the tar stream.
    pub size: u64,
    /// The files (not folders) it holds, relative to the workspace root.
    pub files: Vec<String>,
    file: File,
}

impl VerifiedLayer {
    /// The tar stream, from the file that was verified (the same open file, so a layer
    /// replaced by name since is not what gets streamed).
    pub fn into_reader(mut self) -> io::Result<impl Read + Send + 'static> {
        self.file.seek(SeekFrom::Start(0))?;
        Ok(BufReader::with_capacity(
            256 * 1024,
            self.file.take(self.size),
        ))
    }
}

/// Reads a layer in full: checks its trailer and SHA-256 and lists its files. Nothing of a
/// layer should reach a container before this succeeded.
pub fn verify(job: &str, path: &Path) -> Result<VerifiedLayer> {
    let damaged = |reason: String| WorkspaceError::Damaged {
        job: job.to_string(),
        path: path.to_path_buf(),
        reason,
    };
    let mut file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => WorkspaceError::Symlink {
                path: path.to_path_buf(),
            },
            _ => io_error("cannot open the workspace layer", path)(e),
        })?;
    let (expected, size) = read_trailer(&mut file).map_err(damaged)?;
    file.seek(SeekFrom::Start(0))
        .map_err(io_error("cannot read", path))?;
    let mut hashing = HashingReader {
        inner: BufReader::with_capacity(256 * 1024, (&mut file).take(size)),
        hasher: Sha256::new(),
    };
    let files = list_files(&mut hashing).map_err(|e| damaged(e.to_string()))?;
    // The end-of-archive blocks (and anything else before the trailer) count too.
    io::copy(&mut hashing, &mut io::sink()).map_err(|e| damaged(e.to_string()))?;
    let actual: [u8; 32] = hashing.hasher.finalize().into();
    if actual != expected {
        return Err(damaged(format!(
            "its SHA-256 is {}, the trailer says {}",
            hex(&actual),
            hex(&expected)
        )));
    }
    Ok(VerifiedLayer {
        job: job.to_string(),
        path: path.to_path_buf(),
        size,
        files,
        file,
    })
}

fn read_trailer(file: &mut File) -> std::result::Result<([u8; 32], u64), String> {
    let len = file.metadata().map_err(|e| e.to_string())?.len();
    if len < TRAILER_LEN {
        return Err(format!("it is {len} bytes, too short for a layer"));
    }
    let mut trailer = [0u8; TRAILER_LEN as usize];
    file.seek(SeekFrom::Start(len - TRAILER_LEN))
        .and_then(|_| file.read_exact(&mut trailer))
        .map_err(|e| e.to_string())?;
    if &trailer[40..] != MAGIC {
        return Err("it does not end with a layer trailer".into());
    }
    let digest: [u8; 32] = trailer[..32].try_into().expect("32 bytes");
    let size = u64::from_le_bytes(trailer[32..40].try_into().expect("8 bytes"));
    if size != len - TRAILER_LEN {
        return Err(format!(
            "the trailer says {size} bytes of data, the file holds {}",
            len - TRAILER_LEN
        ));
    }
    Ok((digest, size))
}

struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// The non-folder entries of a tar stream, normalized (`./a/b` -> `a/b`).
fn list_files(reader: impl Read) -> io::Result<Vec<String>> {
    let mut archive = tar::Archive::new(reader);
    let mut files = Vec::new();
    for entry in archive.entries()? {
        let entry = entry?;
        let kind = entry.header().entry_type();
        if kind.is_dir() || !(kind.is_file() || kind.is_symlink() || kind.is_hard_link()) {
            continue;
        }
        files.push(normalize_entry(&entry.path()?));
    }
    Ok(files)
}

fn normalize_entry(path: &Path) -> String {
    path.components()
        .filter_map(|c| match c {
            Component::Normal(part) => Some(part.to_string_lossy()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// One upstream job, as the attach sees it.
#[derive(Clone, Copy, Debug)]
pub struct Upstream<'a> {
    pub job: &'a str,
    pub dir: &'a Path,
    /// The jobs upstream of this one.
    pub ancestors: &'a BTreeSet<String>,
}

/// Verifies every layer of the upstream jobs, in their order, and checks them for conflicts.
/// The result is what an attach applies, in order; any error means nothing should be applied.
pub fn prepare_attach(upstream: &[Upstream<'_>]) -> Result<Vec<VerifiedLayer>> {
    let mut layers = Vec::new();
    for job in upstream {
        for path in job_layers(job.dir)? {
            layers.push(verify(job.job, &path)?);
        }
    }
    check_conflicts(upstream, &layers)?;
    Ok(layers)
}

/// A file persisted by two jobs neither of which is upstream of the other is a conflict
/// (CircleCI fails the attach); when one is upstream of the other, the later layer wins.
pub fn check_conflicts(upstream: &[Upstream<'_>], layers: &[VerifiedLayer]) -> Result<()> {
    let ancestors: HashMap<&str, &BTreeSet<String>> =
        upstream.iter().map(|u| (u.job, u.ancestors)).collect();
    let ordered = |a: &str, b: &str| {
        a == b
            || ancestors.get(a).is_some_and(|s| s.contains(b))
            || ancestors.get(b).is_some_and(|s| s.contains(a))
    };
    let mut writers: HashMap<&str, Vec<&str>> = HashMap::new();
    let mut conflicts = Vec::new();
    for layer in layers {
        for file in &layer.files {
            let earlier = writers.entry(file.as_str()).or_default();
            for &other in earlier.iter() {
                if !ordered(other, &layer.job) {
                    conflicts.push(Conflict {
                        path: file.clone(),
                        first: other.to_string(),
                        second: layer.job.clone(),
                    });
                }
            }
            if !earlier.contains(&layer.job.as_str()) {
                earlier.push(&layer.job);
            }
        }
    }
    if conflicts.is_empty() {
        Ok(())
    } else {
        conflicts.sort_by(|a, b| a.path.cmp(&b.path));
        Err(WorkspaceError::Conflicts(conflicts))
    }
}

/// The index of the first component to guard: from `.localci` down when the path has one,
/// else only the last component. Components above `.localci` are the user's own file system
/// (a home folder may well be a symlink); inside it, the repository could have planted links.
fn guarded_from(components: &[Component<'_>]) -> usize {
    components
        .iter()
        .position(|c| c.as_os_str() == LOCALCI_DIR)
        .unwrap_or(components.len().saturating_sub(1))
}

/// Fails when a guarded component of `dir` (see [`guarded_from`]) is a symlink.
pub fn check_no_symlinks(dir: &Path) -> Result<()> {
    let components: Vec<Component<'_>> = dir.components().collect();
    let mut current = PathBuf::new();
    for (i, component) in components.iter().enumerate() {
        current.push(component);
        if i < guarded_from(&components) {
            continue;
        }
        match fs::symlink_metadata(&current) {
            Ok(meta) if meta.file_type().is_symlink() => {
                return Err(WorkspaceError::Symlink { path: current });
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io_error("cannot inspect", &current)(e)),
        }
    }
    Ok(())
}

/// Creates `dir` one component at a time, refusing guarded components that are symlinks.
pub fn ensure_dir(dir: &Path) -> Result<()> {
    let components: Vec<Component<'_>> = dir.components().collect();
    let guard = guarded_from(&components);
    let mut current = PathBuf::new();
    for (i, component) in components.iter().enumerate() {
        current.push(component);
        match fs::symlink_metadata(&current) {
            Ok(meta) if meta.file_type().is_symlink() && i >= guard => {
                return Err(WorkspaceError::Symlink { path: current });
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => match fs::create_dir(&current) {
                Ok(()) => {}
                // Made by a concurrent job; check it like any existing component.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    if fs::symlink_metadata(&current).is_ok_and(|m| m.file_type().is_symlink()) {
                        return Err(WorkspaceError::Symlink { path: current });
                    }
                }
                Err(e) => return Err(io_error("cannot create", &current)(e)),
            },
            Err(e) => return Err(io_error("cannot inspect", &current)(e)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
