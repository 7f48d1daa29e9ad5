//! `persist_to_workspace` and `attach_workspace` (semantics file 4.9). Persist streams `root`
//! out of the primary container, keeps the entries that the `paths` patterns match (relative
//! to `root`) and writes them as one layer of the job's workspace folder. Attach verifies every
//! layer of the upstream jobs and checks them for conflicts before anything reaches the
//! container, then streams them, in workflow order, into `at`. No layer is ever held in memory
//! whole, and this module never reads or writes host files itself (`store::workspace` does).

mod glob;

use std::collections::HashSet;
use std::io::{self, Read, Write};
use std::time::Instant;

pub use glob::{Pattern, PatternError};

use super::StepOutcome;
use super::context::{StepContext, Workspace};
use super::process::collect;
use super::tarball::{self, blocking_reader, is_engine_stopped};
use crate::backend::{Backend, BackendError, ExecSpec, Result};
use crate::engine::hold::{self, Moment};
use crate::report::Events;
use crate::store::workspace::{LayerWriter, Upstream, VerifiedLayer, prepare_attach};
use crate::units::{format_bytes, format_go};

/// What persist kept from the container's archive.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Kept {
    entries: u64,
    bytes: u64,
    /// Per pattern: whether it matched anything.
    matched: Vec<bool>,
    /// Hard links whose target was not persisted, so they could not be kept.
    dropped_links: Vec<String>,
}

/// `persist_to_workspace`: one layer, `<node>-<index>.tar`, in this job's layers folder.
pub async fn persist(
    ctx: &StepContext,
    index: usize,
    root: &str,
    paths: &[String],
) -> Result<StepOutcome> {
    let Some(workspace) = ctx.settings.workspace.as_ref() else {
        return Ok(no_workspace("persist_to_workspace"));
    };
    let patterns = match parse_patterns(paths) {
        Ok(p) => p,
        Err(message) => return Ok(StepOutcome::failed(message)),
    };
    let root = ctx.facts.resolve(root);
    let stream = match ctx.backend.download(&ctx.primary, &root).await {
        Ok(stream) => hold::stream(Moment::Persist, &ctx.events, stream),
        // CircleCI's words for a missing root.
        Err(BackendError::NotFound(_)) => {
            return Ok(StepOutcome::failed(format!(
                "Error locating workspace root directory: stat {root}: no such file or directory"
            )));
        }
        Err(e) => return Err(e),
    };
    ctx.events.info("Creating workspace archive...");
    let started = Instant::now();
    let writer = match LayerWriter::create(&workspace.layers_dir, workspace.node, index) {
        Ok(w) => w,
        Err(e) => return Ok(StepOutcome::failed(e.to_string())),
    };
    let root_for_task = root.clone();
    let filtering = tokio::task::spawn_blocking(move || {
        let mut builder = tar::Builder::new(writer);
        let base = Base::of(&root_for_task);
        let kept = keep_matching(&mut builder, blocking_reader(stream), &patterns, base)?;
        let writer = builder.into_inner()?;
        Ok::<_, io::Error>((kept, writer, patterns))
    });
    let filtered = tokio::select! {
        () = ctx.cancel.cancelled() => return Ok(StepOutcome::Cancelled),
        filtered = filtering => filtered.map_err(|e| BackendError::Api(e.to_string()))?,
    };
    let (kept, writer, patterns) = match filtered {
        Ok(done) => done,
        Err(e) => {
            return Ok(StepOutcome::failed(format!(
                "cannot archive the workspace root {root}: {e}"
            )));
        }
    };
    if kept.entries == 0 {
        // CircleCI fails the step this way; the layer is dropped unwritten.
        return Ok(StepOutcome::failed(format!(
            "The specified paths did not match any files in {root}"
        )));
    }
    report_unmatched(ctx, &root, &patterns, &kept);
    publish(ctx, writer, &kept, started).await
}

/// Commits the layer and says what it holds.
async fn publish(
    ctx: &StepContext,
    writer: LayerWriter,
    kept: &Kept,
    started: Instant,
) -> Result<StepOutcome> {
    ctx.events.info("Uploading workspace archive...");
    let committed = tokio::task::spawn_blocking(move || writer.commit())
        .await
        .map_err(|e| BackendError::Api(e.to_string()))?;
    match committed {
        Ok(layer) => {
            ctx.events.info(format!(
                "Total size uploaded: {} ({} entries, {} of file data) to {} in {}",
                format_bytes(layer.size),
                kept.entries,
                format_bytes(kept.bytes),
                layer.path.display(),
                format_go(started.elapsed())
            ));
            Ok(StepOutcome::Passed { exit_code: None })
        }
        Err(e) => Ok(StepOutcome::failed(e.to_string())),
    }
}

fn parse_patterns(paths: &[String]) -> std::result::Result<Vec<Pattern>, String> {
    if paths.is_empty() {
        return Err(
            "persist_to_workspace: `paths` lists nothing to persist; add the files or \
                    folders under `root` to keep (`.` for all of it)"
                .into(),
        );
    }
    paths
        .iter()
        .map(|p| {
            Pattern::parse(p).map_err(|e| {
                format!(
                    "persist_to_workspace: the path {p:?} is not a valid pattern: {e} (paths are \
                     Go filepath.Glob patterns relative to root: *, ?, [a-z], \\ to escape)"
                )
            })
        })
        .collect()
}

fn report_unmatched(ctx: &StepContext, root: &str, patterns: &[Pattern], kept: &Kept) {
    for (pattern, matched) in patterns.iter().zip(&kept.matched) {
        if !matched {
            ctx.events.warning(format!(
                "the path {pattern} did not match any files in {root}"
            ));
        }
    }
    for link in &kept.dropped_links {
        ctx.events.warning(format!(
            "{link} is a hard link to a file that is not persisted; it was left out"
        ));
    }
}

/// Copies the entries of the container's archive of `root` (named `<base>/...`) that the
/// patterns match into `builder`, relative to root. Folders above a kept entry are kept too,
/// so that they keep their mode and owner instead of being made by the extraction.
fn keep_matching<W: Write>(
    builder: &mut tar::Builder<W>,
    reader: impl Read,
    patterns: &[Pattern],
    base: Base,
) -> io::Result<Kept> {
    let mut kept = Kept {
        matched: vec![false; patterns.len()],
        ..Kept::default()
    };
    // The folders on the path of the current entry: (path, header, already written).
    let mut open: Vec<(String, tar::Header, bool)> = Vec::new();
    let mut files: HashSet<String> = HashSet::new();
    let mut archive = tar::Archive::new(reader);
    for entry in archive.entries()? {
        let mut entry = entry?;
        let kind = entry.header().entry_type();
        if !(kind.is_file() || kind.is_dir() || kind.is_symlink() || kind.is_hard_link()) {
            // Devices, fifos and global headers have no place in a workspace.
            continue;
        }
        let Some(rel) = base.strip(&entry.path()?) else {
            continue;
        };
        while open
            .last()
            .is_some_and(|(dir, _, _)| !rel.starts_with(&format!("{dir}/")))
        {
            open.pop();
        }
        let parts: Vec<&str> = rel.split('/').collect();
        let mut matched = false;
        for (i, pattern) in patterns.iter().enumerate() {
            if pattern.matches(&parts) {
                kept.matched[i] = true;
                matched = true;
            }
        }
        let header = fresh_header(entry.header(), entry.size())?;
        if matched {
            for (dir, dir_header, written) in open.iter_mut().filter(|(_, _, w)| !*w) {
                builder.append_data(&mut dir_header.clone(), dir.as_str(), io::empty())?;
                *written = true;
                kept.entries += 1;
            }
            if write_entry(builder, &mut entry, header.clone(), &rel, &files, base)? {
                kept.entries += 1;
                if kind.is_file() {
                    kept.bytes += entry.size();
                    files.insert(rel.clone());
                }
            } else {
                kept.dropped_links.push(rel.clone());
            }
        }
        if kind.is_dir() {
            open.push((rel, header, matched));
        }
    }
    Ok(kept)
}

/// How the engine names the entries of a downloaded root: under the root's base name
/// (`ws/dist/a.js` for `/root/project/ws`), or, for `/`, from the top (`/bin/sh`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Base {
    Named,
    FileSystemRoot,
}

impl Base {
    fn of(root: &str) -> Base {
        if root.trim_end_matches('/').is_empty() {
            Base::FileSystemRoot
        } else {
            Base::Named
        }
    }

    /// The entry's path relative to root; `None` for root itself.
    fn strip(self, path: &std::path::Path) -> Option<String> {
        let skip = match self {
            Base::Named => 1,
            Base::FileSystemRoot => 0,
        };
        let parts: Vec<String> = path
            .components()
            .filter_map(|c| match c {
                std::path::Component::Normal(p) => Some(p.to_string_lossy().into_owned()),
                _ => None,
            })
            .skip(skip)
            .collect();
        (!parts.is_empty()).then(|| parts.join("/"))
    }
}

/// A GNU header with the entry's type, mode, owner, times and size; the path is set when
/// written (long names get GNU extension entries).
fn fresh_header(from: &tar::Header, size: u64) -> io::Result<tar::Header> {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(from.entry_type());
    // Blank numeric fields (some writers leave them empty) read as defaults, not errors.
    header.set_mode(from.mode().unwrap_or(0o644));
    header.set_uid(from.uid().unwrap_or(0));
    header.set_gid(from.gid().unwrap_or(0));
    header.set_mtime(from.mtime().unwrap_or(0));
    header.set_size(if from.entry_type().is_file() { size } else { 0 });
    Ok(header)
}

/// Writes one kept entry; `false` for a hard link whose target is not in the layer.
fn write_entry<W: Write, R: Read>(
    builder: &mut tar::Builder<W>,
    entry: &mut tar::Entry<'_, R>,
    mut header: tar::Header,
    rel: &str,
    files: &HashSet<String>,
    base: Base,
) -> io::Result<bool> {
    let kind = header.entry_type();
    if kind.is_file() {
        builder.append_data(&mut header, rel, entry)?;
    } else if kind.is_dir() {
        builder.append_data(&mut header, rel, io::empty())?;
    } else {
        let target = entry
            .link_name()?
            .map(|t| t.into_owned())
            .unwrap_or_default();
        let target = if kind.is_hard_link() {
            // Hard links name another entry of the archive, under root's base name.
            match base.strip(&target) {
                Some(t) if files.contains(&t) => std::path::PathBuf::from(t),
                _ => return Ok(false),
            }
        } else {
            target
        };
        builder.append_link(&mut header, rel, target)?;
    }
    Ok(true)
}

/// `attach_workspace`: every layer of the upstream jobs, in workflow order, into `at`.
pub async fn attach(ctx: &StepContext, at: &str) -> Result<StepOutcome> {
    let Some(workspace) = ctx.settings.workspace.clone() else {
        return Ok(no_workspace("attach_workspace"));
    };
    let at = ctx.facts.resolve(at);
    if let Some(run) = &workspace.from_run {
        ctx.events
            .info(format!("Using the workspace of an earlier run: {run}"));
    }
    let started = Instant::now();
    let prepared = {
        let workspace = workspace.clone();
        tokio::task::spawn_blocking(move || prepare(&workspace))
    };
    let layers = tokio::select! {
        () = ctx.cancel.cancelled() => return Ok(StepOutcome::Cancelled),
        prepared = prepared => prepared.map_err(|e| BackendError::Api(e.to_string()))?,
    };
    let layers = match layers {
        Ok(layers) => layers,
        Err(message) => return Ok(StepOutcome::failed(message)),
    };
    if let Some(outcome) = make_dir(ctx, &at).await? {
        return Ok(outcome);
    }
    if layers.is_empty() {
        ctx.events.info(nothing_to_attach(&workspace));
        return Ok(StepOutcome::Passed { exit_code: None });
    }
    ctx.events.info(downloading(&layers));
    ctx.events.info(applying(&layers));
    let owner = (ctx.facts.uid != 0).then_some((ctx.facts.uid, ctx.facts.gid));
    let (count, bytes) = (layers.len(), layers.iter().map(|l| l.size).sum::<u64>());
    for layer in layers {
        let job = layer.job.clone();
        let applied = tokio::select! {
            () = ctx.cancel.cancelled() => return Ok(StepOutcome::Cancelled),
            applied = apply_layer_in_job(
                ctx.backend.as_ref(), &ctx.primary, &at, layer, owner, Some(&ctx.events),
            ) => applied,
        };
        match applied {
            Ok(()) => {}
            Err(ApplyError::Backend(e @ BackendError::Unreachable { .. })) => return Err(e),
            Err(e) => {
                // CircleCI's words for a layer that does not unpack.
                return Ok(StepOutcome::failed(format!(
                    "Error applying workspace layer for job {job}: {e}"
                )));
            }
        }
    }
    ctx.events.info(format!(
        "Attached {count} layer(s), {} in total, at {at} in {}",
        format_bytes(bytes),
        format_go(started.elapsed())
    ));
    Ok(StepOutcome::Passed { exit_code: None })
}

/// Verifies the upstream layers on the host; the error is the step's failure message.
fn prepare(workspace: &Workspace) -> std::result::Result<Vec<VerifiedLayer>, String> {
    let upstream: Vec<Upstream<'_>> = workspace
        .upstream
        .iter()
        .map(|u| Upstream {
            job: &u.job,
            dir: &u.dir,
            ancestors: &u.ancestors,
        })
        .collect();
    prepare_attach(&upstream).map_err(|e| e.to_string())
}

fn nothing_to_attach(workspace: &Workspace) -> String {
    if workspace.upstream.is_empty() {
        "No upstream jobs: this job requires no other job, so its workspace is empty".into()
    } else {
        let jobs: Vec<&str> = workspace.upstream.iter().map(|u| u.job.as_str()).collect();
        format!(
            "The workspace is empty: none of the upstream jobs ({}) persisted anything",
            jobs.join(", ")
        )
    }
}

/// Like CircleCI's "Downloading workspace layers" list: where each layer is, and its size.
fn downloading(layers: &[VerifiedLayer]) -> String {
    let mut text = String::from("Downloading workspace layers");
    for layer in layers {
        text.push_str(&format!(
            "\n  {} - {}",
            layer.path.display(),
            format_bytes(layer.size)
        ));
    }
    text
}

/// Like CircleCI's "Applying workspace layers" list: the jobs, in the order they apply.
fn applying(layers: &[VerifiedLayer]) -> String {
    let mut text = String::from("Applying workspace layers");
    let mut last: Option<&str> = None;
    for layer in layers {
        if last != Some(layer.job.as_str()) {
            text.push_str(&format!("\n  {}", layer.job));
            last = Some(&layer.job);
        }
    }
    text
}

/// Creates `at` as the job's user, as the extraction by that user would, and checks that the
/// user can write there: CircleCI unpacks as the job's user, so a folder it cannot write to
/// fails the attach (Docker's own extraction would not care). `Some` is the step's failure.
async fn make_dir(ctx: &StepContext, at: &str) -> Result<Option<StepOutcome>> {
    let made = collect(
        ctx.backend.as_ref(),
        &ctx.primary,
        ExecSpec {
            cmd: vec![
                "/bin/sh".into(),
                "-c".into(),
                r#"mkdir -p -- "$1" && { [ -w "$1" ] || { echo "$1: permission denied for uid $(id -u)" >&2; exit 1; }; }"#.into(),
                "localci-attach".into(),
                at.to_string(),
            ],
            ..ExecSpec::default()
        },
    )
    .await?;
    if made.exit_code == 0 {
        return Ok(None);
    }
    Ok(Some(StepOutcome::failed(format!(
        "cannot attach the workspace at {at}: {}. The job's user must be able to create and \
         write to that folder; attach under its home or working directory instead.",
        made.stderr.trim()
    ))))
}

/// Why a layer could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(transparent)]
    Backend(#[from] BackendError),
    #[error("reading the layer: {0}")]
    Layer(#[source] io::Error),
}

/// Streams one verified layer into `at` (which must exist) in `container`. With `owner`,
/// every entry belongs to that uid and gid, as when a non-root user unpacks a tar; without
/// it (a root job), entries keep the owners they were persisted with.
pub async fn apply_layer(
    backend: &dyn Backend,
    container: &str,
    at: &str,
    layer: VerifiedLayer,
    owner: Option<(u64, u64)>,
) -> std::result::Result<(), ApplyError> {
    apply_layer_in_job(backend, container, at, layer, owner, None).await
}

/// [`apply_layer`] in a job, whose `events` a hold point (`LOCALCI_HOLD_AT`) may speak through.
async fn apply_layer_in_job(
    backend: &dyn Backend,
    container: &str,
    at: &str,
    layer: VerifiedLayer,
    owner: Option<(u64, u64)>,
    events: Option<&Events>,
) -> std::result::Result<(), ApplyError> {
    let reader = layer.into_reader().map_err(ApplyError::Layer)?;
    let (stream, writer) = tarball::spawn_writer(move |builder| restamp(builder, reader, owner));
    let stream = match events {
        Some(events) => hold::stream(Moment::Attach, events, stream),
        None => stream,
    };
    let uploaded = backend.upload(container, at, stream).await;
    let written = writer.await.map_err(|e| BackendError::Api(e.to_string()))?;
    match (uploaded, written) {
        (Ok(()), Ok(())) => Ok(()),
        // A layer that failed to read is the cause; the engine only saw the stream end.
        (_, Err(e)) if !is_engine_stopped(&e) => Err(ApplyError::Layer(e)),
        (Err(e), _) => Err(ApplyError::Backend(e)),
        (Ok(()), Err(e)) => Err(ApplyError::Layer(e)),
    }
}

/// Copies a layer's entries into `builder`, with `owner` when given.
fn restamp(
    builder: &mut tarball::Builder,
    reader: impl Read,
    owner: Option<(u64, u64)>,
) -> io::Result<()> {
    let mut archive = tar::Archive::new(reader);
    for entry in archive.entries()? {
        let mut entry = entry?;
        let mut header = entry.header().clone();
        if let Some((uid, gid)) = owner {
            header.set_uid(uid);
            header.set_gid(gid);
        }
        let path = entry.path()?.into_owned();
        let kind = header.entry_type();
        if kind.is_symlink() || kind.is_hard_link() {
            let target = entry
                .link_name()?
                .map(|t| t.into_owned())
                .unwrap_or_default();
            builder.append_link(&mut header, &path, target)?;
        } else {
            builder.append_data(&mut header, &path, &mut entry)?;
        }
    }
    Ok(())
}

/// Persist or attach in a job that runs outside a workflow run (and has no earlier run).
fn no_workspace(step: &str) -> StepOutcome {
    StepOutcome::failed(format!(
        "{step}: this job has no workspace: workspaces pass files between the jobs of a \
         workflow run, and no workflow run has stored one for it. Run the workflow: localci \
         execute --workflow <name>"
    ))
}

#[cfg(test)]
mod docker_tests;
#[cfg(test)]
mod tests;
