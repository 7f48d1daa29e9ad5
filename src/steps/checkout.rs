//! `checkout`: copies the local repository into the job's working directory (or `path`
//! under it) through a streamed tar: tracked files, untracked files that are not ignored
//! (`git ls-files --cached --others --exclude-standard`) and `.git`, so git works inside.
//! Files belong to the container user. Ignored files (`target/`, `node_modules/`) stay home.
//! Symlinks are sent as they are, also those pointing out of the repository, as a clone has
//! them. Ctrl-C stops the copy at once.

use std::collections::HashSet;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use super::StepOutcome;
use super::context::StepContext;
use super::process::collect;
use super::tarball::{self, Builder};
use crate::backend::{ExecSpec, Result};
use crate::engine::hold::{self, Moment};

/// What a checkout copied: files (not folders) and their bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Copied {
    pub files: u64,
    pub bytes: u64,
}

/// A shell function that refuses a target that exists, has content and is not a git
/// repository (as CircleCI does), otherwise creates it, and prints `fresh` when it holds no
/// repository yet. The setup calls it for a first `checkout` (engine/setup.rs).
pub(crate) const CHECK_TARGET: &str = r#"checkout_target() {
  if [ -d "$1" ] && [ ! -e "$1/.git" ] && [ -n "$(ls -A "$1" 2>/dev/null)" ]; then
    echo "Directory ($1) you are trying to checkout to is not empty and not a git repository"
    return 1
  fi
  mkdir -p "$1" || return 1
  [ -e "$1/.git" ] || echo fresh
}"#;

pub async fn run(ctx: &StepContext, path: Option<&str>) -> Result<StepOutcome> {
    let Some(root) = ctx.plan.git.root.clone() else {
        return Ok(StepOutcome::failed(
            "checkout needs a git repository, and the config is not in one (run `git init` in the project)",
        ));
    };
    let target = ctx.facts.resolve(path.unwrap_or("."));
    // The target is checked in the container (by the setup, for a first checkout) while git
    // lists the files on the host.
    let checked = ctx.take_first_checkout(&target);
    let staged = ctx.take_staged_checkout();
    if let (Some(staged), Some(checked)) = (&staged, &checked)
        && checked.exit_code == 0
    {
        // The repository is in the container already, staged on the host (engine/stage.rs).
        match unpack(ctx, staged, &target).await? {
            Unpacked::Done => {
                ctx.events.info(copied_line(staged.copied, &root, &target));
                return Ok(StepOutcome::Passed { exit_code: None });
            }
            Unpacked::Cancelled => return Ok(StepOutcome::Cancelled),
            // No `tar` in the image, or it failed: the upload below sends it all.
            Unpacked::Failed => {}
        }
    }
    let prepare = async {
        if let Some(checked) = checked {
            return Ok(checked);
        }
        let script = format!("{CHECK_TARGET}\ncheckout_target \"$1\"");
        let cmd = vec![
            "/bin/sh".into(),
            "-c".into(),
            script,
            "localci-checkout".into(),
            target.clone(),
        ];
        let spec = ExecSpec {
            cmd,
            ..ExecSpec::default()
        };
        collect(ctx.backend.as_ref(), &ctx.primary, spec).await
    };
    let (prepared, files, git_dirs) = tokio::join!(prepare, list_files(&root), git_dirs(&root));
    let prepared = prepared?;
    if prepared.exit_code != 0 {
        let why = format!("{}{}", prepared.stdout, prepared.stderr);
        return Ok(StepOutcome::failed(why.trim().to_string()));
    }
    let files = match files {
        Ok(files) => files,
        Err(e) => {
            return Ok(StepOutcome::failed(format!(
                "cannot list the repository's files: {e}"
            )));
        }
    };
    let git_dirs = match git_dirs {
        Ok(dirs) => dirs,
        Err(e) => {
            return Ok(StepOutcome::failed(format!(
                "cannot find the repository's .git: {e}"
            )));
        }
    };
    let owner = (ctx.facts.uid, ctx.facts.gid);
    let source = root.clone();
    // Sent to `/` with the target in every name: Docker refuses a link that climbs out of the
    // folder it extracts into, and a repository may hold `link -> ../file` (issue 9, finding 7).
    let prefix = PathBuf::from(target.trim_start_matches('/'));
    if let Some(state) = ctx.settings.sync.clone() {
        // --watch: send only what changed since the last sync into this target.
        let fresh = prepared.stdout.lines().any(|l| l.trim() == "fresh");
        let listed = super::sync::Listed {
            root,
            files,
            git_dirs,
        };
        let names = Names::at_checkout(prefix, owner);
        return super::sync::send(ctx, &state, &target, fresh, listed, names).await;
    }
    // The `circleci` program goes along when it is not in the container yet.
    let agent = ctx.agent_pending.load(Ordering::SeqCst);
    let (tar, writer) = tarball::spawn_writer(move |b| {
        if agent {
            crate::agent::append_to(b)?;
        }
        let names = Names::at_checkout(prefix, owner);
        write_checkout(b, &source, &files, &git_dirs, &names)
    });
    let tar = hold::stream(Moment::Checkout, &ctx.events, tar);
    // Ctrl-C stops the writer at its next chunk (issue 9, finding 5).
    let Some((uploaded, written)) =
        tarball::upload_while_written(ctx.backend.as_ref(), &ctx.primary, tar, writer, &ctx.cancel)
            .await
    else {
        return Ok(StepOutcome::Cancelled);
    };
    match (uploaded, written) {
        (Ok(()), Ok(sent)) => {
            if agent {
                ctx.agent_pending.store(false, Ordering::SeqCst);
            }
            ctx.events.info(copied_line(sent, &root, &target));
            Ok(StepOutcome::Passed { exit_code: None })
        }
        // A file that cannot be read fails the upload too; the file is the reason to show.
        (_, Err(e)) if !tarball::is_engine_stopped(&e) => Ok(StepOutcome::failed(format!(
            "cannot read the repository: {e}"
        ))),
        (Err(e), _) => Err(e),
        (Ok(()), Err(e)) => Ok(StepOutcome::failed(format!(
            "cannot send the repository: {e}"
        ))),
    }
}

enum Unpacked {
    Done,
    Failed,
    Cancelled,
}

/// Unpacks the staged repository into `target` with the image's `tar`, as the container
/// user (the files are theirs), keeping the modes in the archive and giving every file the
/// time of the checkout, as a clone does.
async fn unpack(
    ctx: &StepContext,
    staged: &super::StagedCheckout,
    target: &str,
) -> Result<Unpacked> {
    let spec = ExecSpec {
        cmd: vec![
            "/bin/sh".into(),
            "-c".into(),
            r#"umask 0 && exec tar -x -m -o -f "$1" -C "$2""#.into(),
            "localci-unpack".into(),
            staged.tar.clone(),
            target.to_string(),
        ],
        ..ExecSpec::default()
    };
    let unpacked = tokio::select! {
        // The container goes with the job; tar with it.
        () = ctx.cancel.cancelled() => return Ok(Unpacked::Cancelled),
        unpacked = collect(ctx.backend.as_ref(), &ctx.primary, spec) => unpacked?,
    };
    Ok(if unpacked.exit_code == 0 {
        Unpacked::Done
    } else {
        Unpacked::Failed
    })
}

fn copied_line(copied: Copied, root: &Path, target: &str) -> String {
    format!(
        "Copied {} files ({}) from {} to {target}",
        copied.files,
        crate::units::format_bytes(copied.bytes),
        root.display()
    )
}

/// Why a staged checkout did not happen.
#[derive(Debug, thiserror::Error)]
pub enum StageError {
    /// Larger than the limit: an upload streams it without a copy on the host.
    #[error("the repository holds more than {0} bytes")]
    TooLarge(u64),
    #[error("interrupted (Ctrl-C)")]
    Cancelled,
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// The repository of a job's first `checkout`, written on the host into the tar `file` for
/// that step to unpack into its target ([`unpack`]; engine/stage.rs): names relative to the
/// target, owner root (a root user keeps it, any other user gets the files as its own, as
/// with an upload). Refused when its files hold more than `limit` bytes.
pub(crate) async fn stage(
    root: &Path,
    file: &Path,
    limit: u64,
    events: &crate::report::Events,
    cancel: &tokio_util::sync::CancellationToken,
) -> std::result::Result<Copied, StageError> {
    use futures_util::StreamExt;
    use tokio::io::AsyncWriteExt;
    let (files, git_dirs) = tokio::join!(list_files(root), git_dirs(root));
    let (files, git_dirs) = (files?, git_dirs?);
    let source = root.to_path_buf();
    let (tar, writer) = tarball::spawn_writer(move |b| {
        let entries = entries(&source, &files, &git_dirs)?;
        let bytes: u64 = entries
            .iter()
            .filter(|e| e.meta.is_file())
            .map(|e| e.meta.len())
            .sum();
        if bytes > limit {
            return Ok(None);
        }
        let names = Names::at_checkout(PathBuf::new(), (0, 0));
        write_entries(b, &entries, &names).map(Some)
    });
    let mut tar = hold::stream(Moment::Checkout, events, tar);
    let mut out = tokio::fs::File::create(file).await?;
    loop {
        let chunk = tokio::select! {
            () = cancel.cancelled() => return Err(StageError::Cancelled),
            chunk = tar.next() => chunk,
        };
        match chunk {
            Some(chunk) => out.write_all(&chunk?).await?,
            None => break,
        }
    }
    out.flush().await?;
    let written = writer
        .await
        .map_err(|e| io::Error::other(e.to_string()))??;
    written.ok_or(StageError::TooLarge(limit))
}

/// The files of the checkout ([`crate::git::CHECKOUT_FILES`]), relative to `root`.
async fn list_files(root: &Path) -> io::Result<Vec<PathBuf>> {
    let listed = git(root, &crate::git::CHECKOUT_FILES).await?;
    Ok(crate::git::checkout_paths(&listed))
}

/// Where the repository's git data lives: `(git_dir, common_dir)`. They differ in a
/// `git worktree`, whose `.git` is a file pointing into the main repository.
async fn git_dirs(root: &Path) -> io::Result<(PathBuf, PathBuf)> {
    let out = git(
        root,
        &[
            "rev-parse",
            "--path-format=absolute",
            "--git-dir",
            "--git-common-dir",
        ],
    )
    .await?;
    let text = String::from_utf8_lossy(&out);
    let mut lines = text.lines().map(|l| PathBuf::from(l.trim()));
    match (lines.next(), lines.next()) {
        (Some(dir), Some(common)) => Ok((dir, common)),
        _ => Err(io::Error::other("git rev-parse printed no git directory")),
    }
}

async fn git(root: &Path, args: &[&str]) -> io::Result<Vec<u8>> {
    let out = tokio::process::Command::new("git")
        .arg("-C")
        .arg(root)
        .args(args)
        .output()
        .await?;
    if !out.status.success() {
        return Err(io::Error::other(
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ));
    }
    Ok(out.stdout)
}

/// Where entries go in the archive (under `prefix`) and who owns them.
pub(super) struct Names {
    pub(super) prefix: PathBuf,
    pub(super) owner: (u64, u64),
    /// When every entry was modified: the checkout's time, as a clone gives every file.
    pub(super) mtime: u64,
}

impl Names {
    pub(super) fn at_checkout(prefix: PathBuf, owner: (u64, u64)) -> Names {
        Names {
            prefix,
            owner,
            mtime: crate::engine::now_unix(),
        }
    }
}

/// One path the checkout sends: where it is on the host, its name under the target, and
/// its metadata (not followed: a symlink is a link).
pub(super) struct Entry {
    pub(super) source: PathBuf,
    pub(super) name: PathBuf,
    pub(super) meta: std::fs::Metadata,
}

fn write_checkout(
    b: &mut Builder,
    root: &Path,
    files: &[PathBuf],
    git_dirs: &(PathBuf, PathBuf),
    names: &Names,
) -> io::Result<Copied> {
    write_entries(b, &entries(root, files, git_dirs)?, names)
}

fn write_entries(b: &mut Builder, entries: &[Entry], names: &Names) -> io::Result<Copied> {
    let mut sent = Copied::default();
    for entry in entries {
        let name = names.prefix.join(&entry.name);
        sent.bytes += tarball::append_path(
            b,
            &entry.source,
            &name,
            &entry.meta,
            names.owner,
            Some(names.mtime),
        )?;
        if !entry.meta.is_dir() {
            sent.files += 1;
        }
    }
    Ok(sent)
}

/// Everything the checkout sends, parents before children: the listed files (a submodule's
/// files, recursively), the folders on their way, then `.git`. A path that vanishes while it
/// is listed (a file deleted but still in the index, git's own lock files) is left out.
pub(super) fn entries(
    root: &Path,
    files: &[PathBuf],
    (git_dir, common_dir): &(PathBuf, PathBuf),
) -> io::Result<Vec<Entry>> {
    let mut out = Vec::new();
    let mut dirs = HashSet::new();
    for rel in files {
        let source = root.join(rel);
        let Ok(meta) = std::fs::symlink_metadata(&source) else {
            continue; // deleted in the working tree but still in the index
        };
        parents(&mut out, root, rel, &mut dirs)?;
        if meta.is_dir() {
            // A submodule or a nested repository: its files, recursively.
            walk(&mut out, &source, rel, &|_| false)?;
        } else {
            out.push(Entry {
                source,
                name: rel.clone(),
                meta,
            });
        }
    }
    let dot_git = Path::new(".git");
    if git_dir == common_dir {
        walk(&mut out, git_dir, dot_git, &|_| false)?;
    } else {
        // A worktree: the shared data, then the worktree's own HEAD, index and logs on top.
        let own = own_files(git_dir)?;
        let skip = |rel: &Path| rel == Path::new("worktrees") || own.contains(rel);
        walk(&mut out, common_dir, dot_git, &skip)?;
        let skip_links = |rel: &Path| rel == Path::new("commondir") || rel == Path::new("gitdir");
        walk(&mut out, git_dir, dot_git, &skip_links)?;
    }
    Ok(out)
}

/// Entries for the parents of `rel` not listed yet, so they get the right owner.
fn parents(
    out: &mut Vec<Entry>,
    root: &Path,
    rel: &Path,
    done: &mut HashSet<PathBuf>,
) -> io::Result<()> {
    let mut chain: Vec<&Path> = rel
        .ancestors()
        .skip(1)
        .filter(|p| !p.as_os_str().is_empty())
        .collect();
    chain.reverse();
    for dir in chain {
        if done.insert(dir.to_path_buf()) {
            let source = root.join(dir);
            let meta = std::fs::symlink_metadata(&source)?;
            out.push(Entry {
                source,
                name: dir.to_path_buf(),
                meta,
            });
        }
    }
    Ok(())
}

/// Files of a worktree's git dir, relative to it.
fn own_files(dir: &Path) -> io::Result<HashSet<PathBuf>> {
    let mut out = HashSet::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(current) = stack.pop() {
        for entry in std::fs::read_dir(&current)? {
            let entry = entry?;
            let path = entry.path();
            if entry.file_type()?.is_dir() {
                stack.push(path);
            } else if let Ok(rel) = path.strip_prefix(dir) {
                out.insert(rel.to_path_buf());
            }
        }
    }
    Ok(out)
}

/// Lists `source` as `name` and everything under it, skipping paths (relative to `source`)
/// for which `skip` says so. Symlinks are listed as links, never followed.
fn walk(
    out: &mut Vec<Entry>,
    source: &Path,
    name: &Path,
    skip: &dyn Fn(&Path) -> bool,
) -> io::Result<()> {
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let path = source.join(&rel);
        let meta = match std::fs::symlink_metadata(&path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        if meta.is_dir() {
            let children = match std::fs::read_dir(&path) {
                Ok(children) => children,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            let mut children: Vec<PathBuf> = children
                .map(|e| e.map(|e| rel.join(e.file_name())))
                .collect::<io::Result<_>>()?;
            children.retain(|c| !skip(c));
            children.sort();
            stack.extend(children.into_iter().rev());
        }
        out.push(Entry {
            source: path,
            name: name.join(&rel),
            meta,
        });
    }
    Ok(())
}
