//! Runs one planned job against a [`Backend`]: images, containers, the per-job setup, the
//! steps, and cleanup on success, failure and Ctrl-C (or keeps the containers with
//! `--keep`). Async (tokio); formats nothing (events go to the reporter).

mod cleanup;
mod containers;
pub use containers::{Limits, job_limits, parse_cpus, parse_memory, parse_pids};
mod images;
mod leftovers;
mod owner;
mod run_info;
mod sequence;
mod setup;
mod signals;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use tokio_util::sync::CancellationToken;

pub use images::interpolate;
pub use owner::{LABEL_BOOT, LABEL_HOST, LABEL_PIDNS, LABEL_STARTED};
pub use run_info::{LABEL_JOB, LABEL_KEEP, RunInfo};
pub use signals::cancel_on_signals;

use crate::backend::{Backend, BackendError, ImageInfo};
use crate::plan::JobPlan;
use crate::report::{Event, Events, Sink};
use crate::steps::{Settings, StepContext};
use containers::{Created, SocketMount, Startup};
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
    /// `--memory`, `--cpus`, `--pids-limit` (or `--resource-class-limits`) for every container.
    pub limits: Limits,
}

/// How the job ended, when the infrastructure held up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobStatus {
    Passed,
    Failed,
    Interrupted,
}

/// Infrastructure failures (exit code 3).
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Backend(#[from] BackendError),
    #[error("cannot use image {image}: {reason}")]
    Image {
        image: String,
        mapped_from: Option<String>,
        reason: String,
        /// The image has `auth` credentials in the config.
        with_auth: bool,
        /// Variables its `auth` refers to that were not given (expanded to nothing).
        unset: Vec<String>,
    },
    #[error("{0}")]
    Setup(String),
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

/// Runs the job; emits events into `sink`; cleans up whatever happens.
pub async fn run_job(
    backend: Arc<dyn Backend>,
    plan: JobPlan,
    options: EngineOptions,
    sink: Sink,
    cancel: CancellationToken,
) -> Result<JobStatus, EngineError> {
    let run = RunInfo::new(options.keep);
    let events = Events::new(sink, &plan.name);
    let started = Instant::now();
    events.section("Spin up environment");
    // Leftovers are removed while the images are checked.
    let images = images::ensure(backend.as_ref(), &plan, &events, &cancel);
    let (removed, images) = tokio::join!(leftovers::remove_stale(backend.as_ref(), &run), images);
    match removed? {
        0 => {}
        n => events.info(format!(
            "Removed {n} leftover container(s) of earlier runs that did not finish"
        )),
    }
    let Some(images) = images? else {
        events.info("Interrupted: stopping the job");
        return Ok(JobStatus::Interrupted);
    };
    let plan = Arc::new(plan);
    let mut created = Created::default();
    let job = Job {
        backend: &backend,
        plan: &plan,
        options: &options,
        run: &run,
        events: &events,
        cancel: &cancel,
    };
    let result = run_in_containers(&job, &images, &mut created).await;
    let status = match &result {
        Ok(Sequence::Passed) => Some(JobStatus::Passed),
        Ok(Sequence::Failed(_)) => Some(JobStatus::Failed),
        Ok(Sequence::Interrupted) => Some(JobStatus::Interrupted),
        Err(_) => None,
    };
    if status == Some(JobStatus::Interrupted) {
        events.info("Interrupted: stopping the job and removing its containers");
    }
    let keep = options.keep && status != Some(JobStatus::Interrupted) && created.primary.is_some();
    if keep {
        announce_kept(&events, &created);
    } else {
        cleanup::cleanup(backend.as_ref(), &run, &created, &events).await;
    }
    let sequence = result?;
    if let Sequence::Passed | Sequence::Failed(_) = &sequence {
        events.send(Event::JobFinished {
            job: events.job(),
            passed: sequence == Sequence::Passed,
            failure: match &sequence {
                Sequence::Failed(why) => Some(why.clone()),
                _ => None,
            },
            duration: started.elapsed(),
        });
    }
    Ok(status.expect("set for every Ok result"))
}

/// What every phase of a run needs.
struct Job<'a> {
    backend: &'a Arc<dyn Backend>,
    plan: &'a Arc<JobPlan>,
    options: &'a EngineOptions,
    run: &'a RunInfo,
    events: &'a Events,
    cancel: &'a CancellationToken,
}

async fn run_in_containers(
    job: &Job<'_>,
    images: &HashMap<String, ImageInfo>,
    created: &mut Created,
) -> Result<Sequence, EngineError> {
    let Job {
        backend,
        plan,
        options,
        run,
        events,
        cancel,
    } = *job;
    let socket = socket_mount(backend.as_ref(), options, events);
    // Not raced against Ctrl-C: `start` checks it between requests (see containers.rs).
    let startup = containers::start(
        backend.as_ref(),
        plan,
        run,
        images,
        socket.as_ref(),
        options.limits,
        cancel,
        created,
    )
    .await?;
    if startup == Startup::Interrupted {
        return Ok(Sequence::Interrupted);
    }
    let primary = created.primary.clone().expect("set by containers::start");
    let run_dir = format!("/tmp/.localci-{}", run.short());
    let bash_env = plan
        .environment
        .get("BASH_ENV")
        .unwrap_or_default()
        .to_string();
    let prepared = match setup::prepare(
        backend.as_ref(),
        &primary,
        &plan.working_directory,
        &run_dir,
        &bash_env,
    )
    .await
    {
        Ok(prepared) => prepared,
        Err(e) => return primary_gone(backend.as_ref(), &primary, e).await,
    };
    created.shell = Some(prepared.facts.default_shell.clone());
    created.working_directory = Some(prepared.facts.working_directory.clone());
    for warning in &prepared.warnings {
        events.warning(warning.clone());
    }
    events.info(format!(
        "Primary container {} ({}) as uid {}, working directory {}",
        short_id(&primary),
        plan.images[0].image,
        prepared.facts.uid,
        prepared.facts.working_directory
    ));
    let ctx = StepContext {
        backend: backend.clone(),
        plan: plan.clone(),
        events: events.clone(),
        cancel: cancel.clone(),
        primary: primary.clone(),
        facts: Arc::new(prepared.facts),
        settings: Arc::new(Settings {
            artifacts_dir: options.artifacts_dir.clone(),
            cache_dir: options.cache_dir.clone(),
            docker_socket: socket.map(|s| s.container_path),
        }),
        run_dir,
        extra_env: Arc::new(Mutex::new(Vec::new())),
    };
    match sequence::run_steps(&ctx).await {
        Ok(sequence) => Ok(sequence),
        Err(e) => primary_gone(backend.as_ref(), &primary, e.into()).await,
    }
}

/// An error talking to the primary container fails the job when the container has stopped
/// (CircleCI ends the job when a preserved entrypoint exits); otherwise it is the error.
async fn primary_gone(
    backend: &dyn Backend,
    primary: &str,
    error: EngineError,
) -> Result<Sequence, EngineError> {
    match backend.container_running(primary).await {
        Ok(false) => Ok(Sequence::Failed(
            "the primary container stopped (did its entrypoint exit?)".into(),
        )),
        _ => Err(error),
    }
}

/// The host socket to mount with `--docker-socket`, when the engine is reached through one.
fn socket_mount(
    backend: &dyn Backend,
    options: &EngineOptions,
    events: &Events,
) -> Option<SocketMount> {
    if !options.docker_socket {
        return None;
    }
    let host = backend.host();
    let Some(path) = host.strip_prefix("unix://") else {
        events.warning(format!(
            "--docker-socket: the Docker engine is at {host}, not a local socket; nothing is mounted"
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
