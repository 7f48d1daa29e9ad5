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

/// What was sent.
#[derive(Debug, Default)]
struct Sent {
    files: u64,
    bytes: u64,
}

/// Refuses a target that exists, has content and is not a git repository (as CircleCI
/// does), otherwise creates it.
const PREPARE: &str = r#"d=$1
if [ -d "$d" ] && [ ! -e "$d/.git" ] && [ -n "$(ls -A "$d" 2>/dev/null)" ]; then
  echo "Directory ($d) you are trying to checkout to is not empty and not a git repository"
  exit 1
fi
mkdir -p "$d""#;

pub async fn run(ctx: &StepContext, path: Option<&str>) -> Result<StepOutcome> {
    let Some(root) = ctx.plan.git.root.clone() else {
        return Ok(StepOutcome::failed(
            "checkout needs a git repository, and the config is not in one (run `git init` in the project)",
        ));
    };
    let target = ctx.facts.resolve(path.unwrap_or("."));
    // The target is checked in the container while git lists the files on the host.
    let prepare = collect(
        ctx.backend.as_ref(),
        &ctx.primary,
        ExecSpec {
            cmd: vec![
                "/bin/sh".into(),
                "-c".into(),
                PREPARE.into(),
                "localci-checkout".into(),
                target.clone(),
            ],
            ..ExecSpec::default()
        },
    );
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
    // The `circleci` program goes along when it is not in the container yet.
    let agent = ctx.agent_pending.load(Ordering::SeqCst);
    let (tar, writer) = tarball::spawn_writer(move |b| {
        if agent {
            crate::agent::append_to(b)?;
        }
        let names = Names { prefix, owner };
        write_checkout(b, &source, &files, &git_dirs, &names)
    });
    let upload = ctx.backend.upload(&ctx.primary, "/", tar);
    // Dropping the upload stops the writer at its next chunk (issue 9, finding 5).
    let uploaded = tokio::select! {
        () = ctx.cancel.cancelled() => return Ok(StepOutcome::Cancelled),
        uploaded = upload => uploaded,
    };
    let written = writer
        .await
        .map_err(|e| io::Error::other(e.to_string()))
        .and_then(|r| r);
    match (uploaded, written) {
        (Ok(()), Ok(sent)) => {
            if agent {
                ctx.agent_pending.store(false, Ordering::SeqCst);
            }
            ctx.events.info(format!(
                "Copied {} files ({}) from {} to {target}",
                sent.files,
                crate::units::format_bytes(sent.bytes),
                root.display()
            ));
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

/// `git ls-files`: tracked plus untracked-not-ignored, NUL separated, relative to `root`.
async fn list_files(root: &Path) -> io::Result<Vec<PathBuf>> {
    let out = git(
        root,
        &[
            "ls-files",
            "-z",
            "--cached",
            "--others",
            "--exclude-standard",
        ],
    )
    .await?;
    let mut seen = HashSet::new();
    Ok(out
        .split(|&b| b == 0)
        .filter(|p| !p.is_empty())
        .map(|p| PathBuf::from(String::from_utf8_lossy(p).into_owned()))
        // localci's own output (artifacts) is not part of the project.
        .filter(|p| !p.starts_with(".localci"))
        .filter(|p| seen.insert(p.clone()))
        .collect())
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
struct Names {
    prefix: PathBuf,
    owner: (u64, u64),
}

fn write_checkout(
    b: &mut Builder,
    root: &Path,
    files: &[PathBuf],
    (git_dir, common_dir): &(PathBuf, PathBuf),
    names: &Names,
) -> io::Result<Sent> {
    let mut sent = Sent::default();
    let mut dirs = HashSet::new();
    for rel in files {
        let source = root.join(rel);
        let Ok(meta) = std::fs::symlink_metadata(&source) else {
            continue; // deleted in the working tree but still in the index
        };
        parents(b, root, rel, &mut dirs, names)?;
        if meta.is_dir() {
            // A submodule or a nested repository: its files, recursively.
            walk(b, &source, rel, names, &mut sent, &|_| false)?;
        } else {
            let name = names.prefix.join(rel);
            sent.bytes += tarball::append_path(b, &source, &name, &meta, names.owner)?;
            sent.files += 1;
        }
    }
    let dot_git = Path::new(".git");
    if git_dir == common_dir {
        walk(b, git_dir, dot_git, names, &mut sent, &|_| false)?;
    } else {
        // A worktree: the shared data, then the worktree's own HEAD, index and logs on top.
        let own = own_files(git_dir)?;
        let skip = |rel: &Path| rel == Path::new("worktrees") || own.contains(rel);
        walk(b, common_dir, dot_git, names, &mut sent, &skip)?;
        let skip_links = |rel: &Path| rel == Path::new("commondir") || rel == Path::new("gitdir");
        walk(b, git_dir, dot_git, names, &mut sent, &skip_links)?;
    }
    Ok(sent)
}

/// Directory entries for the parents of `rel` not sent yet, so they get the right owner.
fn parents(
    b: &mut Builder,
    root: &Path,
    rel: &Path,
    done: &mut HashSet<PathBuf>,
    names: &Names,
) -> io::Result<()> {
    let mut chain: Vec<&Path> = rel
        .ancestors()
        .skip(1)
        .filter(|p| !p.as_os_str().is_empty())
        .collect();
    chain.reverse();
    for dir in chain {
        if done.insert(dir.to_path_buf()) {
            let meta = std::fs::symlink_metadata(root.join(dir))?;
            let name = names.prefix.join(dir);
            tarball::append_path(b, &root.join(dir), &name, &meta, names.owner)?;
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

/// Appends `source` as `name` and everything under it, skipping paths (relative to `source`)
/// for which `skip` says so. Symlinks are stored as links, never followed.
fn walk(
    b: &mut Builder,
    source: &Path,
    name: &Path,
    names: &Names,
    sent: &mut Sent,
    skip: &dyn Fn(&Path) -> bool,
) -> io::Result<()> {
    let name = names.prefix.join(name);
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let path = source.join(&rel);
        let meta = std::fs::symlink_metadata(&path)?;
        sent.bytes += tarball::append_path(b, &path, &name.join(&rel), &meta, names.owner)?;
        if meta.is_dir() {
            let mut children: Vec<PathBuf> = std::fs::read_dir(&path)?
                .map(|e| e.map(|e| rel.join(e.file_name())))
                .collect::<io::Result<_>>()?;
            children.retain(|c| !skip(c));
            children.sort();
            stack.extend(children.into_iter().rev());
        } else {
            sent.files += 1;
        }
    }
    Ok(())
}
