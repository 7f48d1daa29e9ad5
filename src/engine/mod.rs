//! Runs planned jobs against a [`Backend`] in two parts: a [`Session`] per run (identity,
//! the leftover sweep, images checked once, the event sink, cancellation) that runs each job
//! (containers -> setup -> steps -> cleanup on success, failure and Ctrl-C, or kept with
//! `--keep`), and the [`run_workflow`] scheduler that runs a workflow's jobs as a DAG.
//! Async (tokio); formats nothing (events go to the reporter).

mod cleanup;
mod containers;
pub use containers::{Limits, job_limits, parse_cpus, parse_memory, parse_pids};
pub(crate) mod hold;
mod images;
mod leftovers;
mod machine;
mod owner;
mod run_info;
mod scheduler;
mod sequence;
mod session;
mod setup;
mod shell;
mod signals;
mod stage;
mod step_runner;
mod watch;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use tokio_util::sync::CancellationToken;

pub use images::interpolate;
pub use machine::{MachineError, check_endpoint as check_machine_endpoint};
pub use owner::{LABEL_BOOT, LABEL_HOST, LABEL_PIDNS, LABEL_STARTED};
pub use run_info::{LABEL_JOB, LABEL_KEEP, RunInfo, random_uuid};
pub use scheduler::{Approvals, Schedule, ScheduledJob, run_workflow};
pub use session::{Go, Images, JobSettings, Session, Up};
pub use shell::{ShellOnFail, usable as shell_on_fail_usable};
pub use signals::{cancel_on_signals, interrupted};
pub use watch::{Change, Changes};

use crate::backend::{Backend, BackendError};
use crate::plan::JobPlan;
use crate::report::{Events, Sink};
use containers::{Created, SocketMount};
use sequence::Sequence;

/// Where the host socket is mounted in the primary with `--docker-socket`.
pub const SOCKET_IN_CONTAINER: &str = "/var/run/docker.sock";

/// Knobs of one run.
#[derive(Clone, Debug, Default)]
pub struct EngineOptions {
    /// `--keep`: leave the containers running afterwards.
    pub keep: bool,
    /// `--docker-socket`: mount the host's Docker socket into the primary container.
    pub docker_socket: bool,
    pub artifacts_dir: PathBuf,
    pub cache_dir: PathBuf,
    /// `--memory`, `--cpus`, `--pids-limit` for every container.
    pub limits: Limits,
    /// `--resource-class-limits`: each job's containers also get the documented size of its
    /// `resource_class` (the flags win).
    pub class_limits: bool,
    /// `--shell-on-fail`: a shell in the primary container after the step that fails.
    pub shell_on_fail: Option<ShellOnFail>,
}

/// How one job (one node of it) ended, when the infrastructure held up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeOutcome {
    Passed,
    Failed,
    Interrupted,
    /// Its containers were started ahead of time, but a job it requires did not end as it
    /// accepts: no step ran.
    Withdrawn,
}

/// Infrastructure failures (exit code 3).
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// Every image that cannot be had, each with its hint.
    #[error(transparent)]
    Images(#[from] images::ImagesError),
    #[error("{0}")]
    Setup(String),
    /// A `machine:` job that cannot run against this engine or in its image.
    #[error(transparent)]
    Machine(#[from] MachineError),
}

/// The `BASH_ENV` path for a job started at `unix_seconds`.
pub fn bash_env_path(unix_seconds: u64) -> String {
    format!("/tmp/.bash_env-localci-{unix_seconds}")
}

/// Seconds since the epoch, for the `BASH_ENV` file name.
pub fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Milliseconds since the epoch.
pub fn now_unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Runs one job alone: opens a session, makes its images available, runs it. What
/// `localci execute <job>` did before workflows, kept for tests and simple callers.
pub async fn run_job(
    backend: Arc<dyn Backend>,
    plan: JobPlan,
    options: EngineOptions,
    sink: Sink,
    cancel: CancellationToken,
) -> Result<NodeOutcome, EngineError> {
    let settings = JobSettings {
        artifacts_dir: options.artifacts_dir.clone(),
        workspace: None,
        agent_dir_files: Vec::new(),
        gate: None,
        up: None,
        watch: None,
    };
    let run = RunInfo::new(options.keep);
    let session = Session::open(backend, run, options, sink, cancel).await?;
    let Some(images) = session.images(&[&plan]).await? else {
        session.close().await;
        return Ok(NodeOutcome::Interrupted);
    };
    let outcome = session.run_job(plan, &images, settings).await;
    session.close().await;
    outcome
}

/// Why a job whose primary container stopped failed.
const PRIMARY_STOPPED: &str = "the primary container stopped (did its entrypoint exit?)";

/// An error talking to the primary container fails the job when the container has stopped
/// (CircleCI ends the job when a preserved entrypoint exits); otherwise it is the error.
async fn primary_gone(
    backend: &dyn Backend,
    primary: &str,
    error: EngineError,
) -> Result<Sequence, EngineError> {
    match backend.container_running(primary).await {
        // Gone: the engine removes a stopped primary made with `auto_remove`.
        Ok(false) | Err(BackendError::NotFound(_)) => Ok(Sequence::Failed(PRIMARY_STOPPED.into())),
        _ => Err(error),
    }
}

/// The host socket to mount with `--docker-socket` (and always in a machine job), when the
/// engine is reached through one.
fn socket_mount(
    backend: &dyn Backend,
    options: &EngineOptions,
    events: &Events,
    machine: bool,
) -> Option<SocketMount> {
    if !options.docker_socket && !machine {
        return None;
    }
    let host = backend.host();
    let Some(path) = machine::local_socket(&host) else {
        events.warning(format!(
            "the Docker engine is at {host}, not a local socket; no Docker socket is mounted in the job's container"
        ));
        return None;
    };
    #[cfg(unix)]
    let gid = {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(path).ok().map(|m| m.gid())
    };
    #[cfg(not(unix))]
    let gid = None;
    Some(SocketMount {
        host_path: path.to_string(),
        container_path: SOCKET_IN_CONTAINER.to_string(),
        gid,
    })
}

fn announce_kept(events: &Events, created: &Created) {
    let primary = created.primary.as_deref().expect("checked by the caller");
    let shell = created.shell.as_deref().unwrap_or("/bin/sh");
    let workdir = created
        .working_directory
        .as_deref()
        .map_or(String::new(), |wd| format!("-w {wd} "));
    events.info(format!(
        "Kept the containers (--keep). Open a shell in the primary container with:\n  docker exec -it {workdir}{} {shell}\nRemove them with:\n  docker rm -f {}",
        short_id(primary),
        created.all().iter().map(|id| short_id(id)).collect::<Vec<_>>().join(" ")
    ));
}

fn short_id(id: &str) -> &str {
    &id[..id.len().min(12)]
}

#[cfg(test)]
mod tests;
