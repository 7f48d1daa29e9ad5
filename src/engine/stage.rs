//! Files the primary container gets from the host through read-only mounts instead of
//! archive uploads, when the engine sees this machine's files ([`Backend::shares_files`]):
//! the `circleci` program beside the job's agent folder (the step runner runs it; the setup
//! copies it to `/usr/local/bin` when it runs as root, else it is uploaded there), and the
//! repository of a job's first `checkout` as a tar that the step unpacks into its target
//! (steps/checkout.rs). Docker charges a fixed 60-100 ms for an upload whatever its size,
//! and a mount costs nothing (docs/execute.md, "Speed").
//!
//! The files live in a private temporary folder (mode 0700) removed when the job ends (and,
//! after a run that was killed, by the next run: [`sweep`]). The uploads stay for
//! everything else: a remote engine, `--keep` (the container outlives the
//! folder), the checkout under `--watch` (it syncs the checkout itself), a repository over
//! [`CHECKOUT_LIMIT`] (streamed, no copy on the host), and a tar the checkout step could not
//! unpack (no `tar` in the image): the step then copies as before.

use std::io;
use std::path::Path;
use std::sync::OnceLock;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::owner::Owner;
use crate::backend::{Backend, FileMount};
use crate::config::StepKind;
use crate::plan::JobPlan;
use crate::report::Events;
use crate::steps::checkout::{self, Copied, StageError};

/// The most file bytes of a repository staged on the host; a larger one is uploaded.
pub(crate) const CHECKOUT_LIMIT: u64 = 64 << 20;

/// The staged files of one job, with the mounts that show them in its primary container.
pub(crate) struct Stage {
    /// Removed with the stage.
    dir: tempfile::TempDir,
    /// The `circleci` program in the container: the step runner, and what the setup copies
    /// to `/usr/local/bin` when it runs as root (a mount there could not be replaced by a
    /// job that installs CircleCI's own CLI).
    pub(crate) agent_path: String,
    pub(crate) mounts: Vec<FileMount>,
    /// Where the first checkout's tar is in the container.
    checkout_path: Option<String>,
    /// The tar being written (the container is created and started meanwhile: the mount's
    /// file exists from the start).
    filling: Option<JoinHandle<Result<Copied, StageError>>>,
    /// What the tar holds, once written whole; `None` when it could not be staged.
    copied: Option<Copied>,
}

impl Stage {
    /// Waits until the repository is written (it is written while the primary is created
    /// and starts; the checkout step reads it); false when Ctrl-C came first.
    pub(crate) async fn finish(&mut self) -> bool {
        let Some(filling) = self.filling.take() else {
            return true;
        };
        match filling.await {
            Ok(Ok(copied)) => self.copied = Some(copied),
            Ok(Err(StageError::Cancelled)) => return false,
            // The checkout step copies it (and says what went wrong, if anything does).
            Ok(Err(StageError::TooLarge(_) | StageError::Io(_))) | Err(_) => {}
        }
        true
    }

    /// The staged repository, once [`Stage::finish`] saw it written whole.
    pub(crate) fn checkout(&self) -> Option<crate::steps::StagedCheckout> {
        Some(crate::steps::StagedCheckout {
            tar: self.checkout_path.clone()?,
            copied: self.copied?,
        })
    }
}

impl Drop for Stage {
    fn drop(&mut self) {
        if let Some(filling) = &self.filling {
            filling.abort();
        }
    }
}

/// Stages the `circleci` program and, for a job that begins with `checkout` (when
/// `checkout` allows it), starts writing the repository; `in_container` is the path prefix
/// of staged files in the container (the job's agent folder, so names cannot collide with
/// the image's). `None` when the primary gets uploads.
pub(crate) fn prepare(
    backend: &dyn Backend,
    plan: &JobPlan,
    in_container: &str,
    checkout: bool,
    events: &Events,
    cancel: &CancellationToken,
) -> Option<Stage> {
    if !backend.shares_files() {
        return None;
    }
    let prefix = stage_prefix();
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        // Private: the repository's files are in it.
        builder.permissions(std::fs::Permissions::from_mode(0o700));
    }
    let dir = builder.tempdir().ok()?;
    let agent_path = format!("{in_container}.agent");
    let mut stage = Stage {
        mounts: vec![FileMount {
            source: write_agent(dir.path()).ok()?,
            target: agent_path.clone(),
        }],
        dir,
        agent_path,
        checkout_path: None,
        filling: None,
        copied: None,
    };
    let first_checkout = checkout
        && matches!(
            plan.steps.first().map(|s| &s.kind),
            Some(StepKind::Checkout { .. })
        );
    if let (true, Some(root)) = (first_checkout, plan.git.root.clone()) {
        let file = stage.dir.path().join("checkout.tar");
        if std::fs::File::create(&file).is_ok() {
            let target = format!("{in_container}.checkout.tar");
            stage.mounts.push(FileMount {
                source: file.clone(),
                target: target.clone(),
            });
            stage.checkout_path = Some(target);
            let (events, cancel) = (events.clone(), cancel.clone());
            stage.filling = Some(tokio::spawn(async move {
                checkout::stage(&root, &file, CHECKOUT_LIMIT, &events, &cancel).await
            }));
        }
    }
    Some(stage)
}

/// The start of every stage folder's name.
const PREFIX: &str = "localci-stage-";

/// `localci-stage-<pid namespace>-<pid>-<start time>-`: who made the folder, so a later run
/// can tell the folders of killed runs from live ones ([`sweep`]). Swept once per process.
fn stage_prefix() -> String {
    static PREFIX_OF_ME: OnceLock<String> = OnceLock::new();
    PREFIX_OF_ME
        .get_or_init(|| {
            let me = Owner::me();
            let tmp = std::env::temp_dir();
            sweep(&tmp, &me);
            match (&me.pidns, me.started) {
                (Some(ns), Some(started)) => format!("{PREFIX}{ns}-{}-{started}-", me.pid),
                _ => PREFIX.to_string(),
            }
        })
        .clone()
}

/// Removes the stage folders in `tmp` that a run which has certainly ended left (SIGKILL, a
/// crash: the folder's removal at the job's end never came). Only folders of this user, made
/// in this pid namespace.
fn sweep(tmp: &Path, me: &Owner) {
    let Ok(entries) = std::fs::read_dir(tmp) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(PREFIX)) else {
            continue;
        };
        let mut parts = rest.splitn(4, '-');
        let (Some(ns), Some(pid), Some(started)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let (Ok(pid), Ok(started)) = (pid.parse(), started.parse()) else {
            continue;
        };
        let owner = Owner {
            pid,
            host: me.host.clone(),
            boot: me.boot.clone(),
            pidns: Some(ns.to_string()),
            started: Some(started),
        };
        if owner.is_gone(me, super::owner::probe) && owned_by_me(&entry) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

#[cfg(unix)]
fn owned_by_me(entry: &std::fs::DirEntry) -> bool {
    use std::os::unix::fs::MetadataExt;
    // SAFETY: geteuid cannot fail.
    let me = unsafe { libc::geteuid() };
    entry.metadata().is_ok_and(|m| m.is_dir() && m.uid() == me)
}

#[cfg(not(unix))]
fn owned_by_me(_: &std::fs::DirEntry) -> bool {
    false
}

/// The agent program as an executable file in `dir`.
fn write_agent(dir: &Path) -> io::Result<std::path::PathBuf> {
    let path = dir.join("circleci");
    std::fs::write(&path, crate::agent::AGENT_BINARY)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(target_os = "linux")]
    fn only_the_stage_folders_of_ended_runs_are_swept() {
        let me = Owner::me();
        let (Some(ns), Some(started)) = (me.pidns.clone(), me.started) else {
            return; // no /proc of our own: nothing can be told, nothing is swept
        };
        let tmp = tempfile::tempdir().unwrap();
        // pid_max is at most 2^22: this pid cannot exist.
        let dead = format!("{PREFIX}{ns}-{}-{started}-abc", 1 << 23);
        let live = format!("{PREFIX}{ns}-{}-{started}-def", me.pid);
        let reused = format!("{PREFIX}{ns}-{}-{}-ghi", me.pid, started + 1);
        let elsewhere = format!("{PREFIX}1-{}-{started}-jkl", 1 << 23);
        let unnamed = format!("{PREFIX}xyz");
        for name in [&dead, &live, &reused, &elsewhere, &unnamed] {
            std::fs::create_dir(tmp.path().join(name)).unwrap();
            std::fs::write(tmp.path().join(name).join("checkout.tar"), "x").unwrap();
        }
        sweep(tmp.path(), &me);
        let mut left: Vec<String> = std::fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        let mut kept = vec![live, elsewhere, unnamed];
        kept.sort();
        assert_eq!(left, kept);
    }
}
