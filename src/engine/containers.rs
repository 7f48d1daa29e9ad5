//! The job's containers, as CircleCI lays them out: the primary (running localci's setup,
//! then kept alive by a tiny loop, unless its image opts out with
//! `com.circleci.preserve-entrypoint=true` or the config sets `entrypoint`/`command`), and
//! one container per service joining the primary's network
//! namespace so services answer on `localhost`. `name:` aliases go into the primary's
//! `/etc/hosts`, which the services share (Docker refuses extra hosts with a shared network).
//!
//! Every container gets the job's [`Limits`] (`--memory`, `--cpus`, `--pids-limit`, or the
//! documented size of the job's `resource_class`), so a step cannot fork or allocate without
//! bound on the user's machine (issue 9).
//!
//! A request to the daemon is never dropped half-way (Ctrl-C is checked between requests): a
//! create request abandoned after it was sent still makes a container, which cleanup would
//! not know about.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;

use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use super::hold::{self, Moment};
use super::run_info::RunInfo;
use super::setup::{self, SetupArgs};
use super::stage::Stage;
use crate::backend::{Backend, BackendError, ContainerSpec, ImageInfo, Output, Result};
use crate::engine::EngineError;

use crate::plan::{ImagePlan, JobPlan};
use crate::report::Events;

/// The image label that keeps the image's own entrypoint on the primary container.
pub const PRESERVE_ENTRYPOINT: &str = "com.circleci.preserve-entrypoint";

/// Keeps the primary running until localci lets go of its stdin ([`StdinHold::release`], or
/// localci's exit, whatever way it ends): the container then stops and the engine removes it.
const KEEP_ALIVE: &str = "while read -r _; do :; done";
/// With the agent mounted: the step runner (engine/step_runner.rs) serves the job's processes
/// until localci lets go of its stdin. Should it not start, the shell says so in a line that
/// is not one of its frames, and the loop keeps the primary running for execs.
fn keep_alive_runner(agent: &str) -> String {
    let runner = crate::agent::runner::SUBCOMMAND;
    format!("{agent} {runner}\necho \"localci-runner-exit=$?\"\n{KEEP_ALIVE}")
}
/// With `--keep`: keeps the primary running until it is removed.
const KEEP_ALIVE_KEPT: &str = "while :; do sleep 3600 & wait $!; done";

/// Resource limits for each of the job's containers; `None` leaves Docker's default (none).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Limits {
    /// Bytes of memory; swap is not added on top, as on CircleCI.
    pub memory: Option<i64>,
    /// CPUs in billionths (`--cpus 1.5` is 1.5e9).
    pub nano_cpus: Option<i64>,
    /// The most processes and threads at once.
    pub pids: Option<i64>,
}

/// The error of a limit given on the command line.
#[derive(Debug, thiserror::Error)]
#[error("{value:?} is not {expected}")]
pub struct LimitError {
    value: String,
    expected: &'static str,
}

impl Limits {
    /// CircleCI's documented size of a Docker `resource_class` (x86 table in
    /// circleci-docs `execution-resources/docker-resource-table.adoc`; `.gen2` classes have the
    /// same sizes). `None` for classes without a documented Docker size (Arm, runners).
    pub fn for_resource_class(class: &str) -> Option<Limits> {
        const GB: i64 = 1024 * 1024 * 1024;
        let (cpus, gb) = match class.strip_suffix(".gen2").unwrap_or(class) {
            "small" => (1, 2),
            "medium" => (2, 4),
            "medium+" => (3, 6),
            "large" => (4, 8),
            "xlarge" => (8, 16),
            "2xlarge" => (16, 32),
            "2xlarge+" => (20, 40),
            _ => return None,
        };
        Some(Limits {
            memory: Some(gb * GB),
            nano_cpus: Some(cpus * 1_000_000_000),
            pids: None,
        })
    }

    /// CircleCI's documented size of a Linux machine (VM) `resource_class` (circleci-docs,
    /// "Linux VM" execution resources); `None` for classes without one (GPU, runners).
    pub fn for_machine_class(class: &str) -> Option<Limits> {
        const MB: i64 = 1024 * 1024;
        let (cpus, mb) = match class {
            "medium" => (2, 7680),
            "large" => (4, 15 * 1024),
            "xlarge" => (8, 32 * 1024),
            "2xlarge" => (16, 64 * 1024),
            "arm.medium" => (2, 8 * 1024),
            "arm.large" => (4, 16 * 1024),
            "arm.xlarge" => (8, 32 * 1024),
            "arm.2xlarge" => (16, 64 * 1024),
            _ => return None,
        };
        Some(Limits {
            memory: Some(mb * MB),
            nano_cpus: Some(cpus * 1_000_000_000),
            pids: None,
        })
    }

    /// These limits, with each one not set taken from `fallback`.
    #[must_use]
    pub fn or(self, fallback: Limits) -> Limits {
        Limits {
            memory: self.memory.or(fallback.memory),
            nano_cpus: self.nano_cpus.or(fallback.nano_cpus),
            pids: self.pids.or(fallback.pids),
        }
    }
}

/// A `resource_class` without a documented size, with `--resource-class-limits`.
#[derive(Debug, thiserror::Error)]
pub enum UnknownClass {
    #[error(
        "--resource-class-limits: resource_class `{0}` has no documented Docker size (small, medium, medium+, large, xlarge, 2xlarge, 2xlarge+)"
    )]
    Docker(String),
    #[error(
        "--resource-class-limits: resource_class `{0}` has no documented Linux machine size (medium, large, xlarge, 2xlarge, arm.medium, arm.large, arm.xlarge, arm.2xlarge)"
    )]
    Machine(String),
}

/// The limits for a job: the flags, then, with `--resource-class-limits`, the documented size
/// of its class (a Docker one, or a Linux machine one for a `machine` job), or of `medium`
/// when it names none (CircleCI's default, semantics §3.5).
pub fn job_limits(
    flags: Limits,
    by_class: bool,
    class: Option<&str>,
    machine: bool,
) -> std::result::Result<Limits, UnknownClass> {
    if !by_class {
        return Ok(flags);
    }
    let class = class.unwrap_or("medium");
    let sized = if machine {
        Limits::for_machine_class(class).ok_or_else(|| UnknownClass::Machine(class.into()))?
    } else {
        Limits::for_resource_class(class).ok_or_else(|| UnknownClass::Docker(class.into()))?
    };
    Ok(flags.or(sized))
}

/// `--memory`: bytes with an optional `b`, `k`, `m` or `g` suffix (Docker's units, base 1024).
pub fn parse_memory(value: &str) -> std::result::Result<i64, LimitError> {
    let err = || LimitError {
        value: value.to_string(),
        expected: "a memory size such as 512m or 2g (at least 6m, Docker's minimum)",
    };
    let lower = value.trim().to_ascii_lowercase();
    let (digits, unit) = match lower.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => lower.split_at(i),
        None => (lower.as_str(), ""),
    };
    let shift = match unit {
        "" | "b" => 0,
        "k" | "kb" => 10,
        "m" | "mb" => 20,
        "g" | "gb" => 30,
        _ => return Err(err()),
    };
    let bytes = digits
        .parse::<i64>()
        .ok()
        .and_then(|n| n.checked_mul(1 << shift))
        .ok_or_else(err)?;
    // Docker refuses less than 6 MiB.
    if bytes < 6 << 20 {
        return Err(err());
    }
    Ok(bytes)
}

/// `--cpus`: a positive number of CPUs, fractions allowed.
pub fn parse_cpus(value: &str) -> std::result::Result<i64, LimitError> {
    let cpus: f64 = value.trim().parse().unwrap_or(f64::NAN);
    if !(cpus.is_finite() && (0.01..=1024.0).contains(&cpus)) {
        return Err(LimitError {
            value: value.to_string(),
            expected: "a number of CPUs such as 2 or 0.5",
        });
    }
    #[allow(clippy::cast_possible_truncation)]
    Ok((cpus * 1e9).round() as i64)
}

/// `--pids-limit`: a positive number of processes.
pub fn parse_pids(value: &str) -> std::result::Result<i64, LimitError> {
    match value.trim().parse::<i64>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(LimitError {
            value: value.to_string(),
            expected: "a positive number of processes such as 512",
        }),
    }
}

/// Containers created so far, for cleanup even when creation stopped half-way.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Created {
    pub primary: Option<String>,
    pub services: Vec<String>,
    /// Names of containers whose create request failed: the daemon may have made them anyway
    /// (the answer was lost, or came too late), so cleanup removes them by name.
    pub unconfirmed: Vec<String>,
    /// The shell to offer for `docker exec` into the primary (known after setup).
    pub shell: Option<String>,
    /// The job's working directory, expanded (known after setup).
    pub working_directory: Option<String>,
    /// The engine removes the primary itself once it has stopped (`auto_remove`).
    pub primary_auto_removes: bool,
    /// The primary's stdin, when its keep-alive loop ends with it.
    pub stdin: StdinHold,
}

/// The attached stdin of a primary created with `stdin_once`: the primary runs while it is
/// open. Releasing it (or localci's exit) ends the keep-alive loop, and the engine removes
/// the container (`auto_remove`) without localci waiting for either.
#[derive(Clone, Default)]
pub struct StdinHold(Arc<tokio::sync::Mutex<Option<Input>>>);

/// The writing end of an attached stdin.
pub(crate) type Input = Pin<Box<dyn AsyncWrite + Send>>;

impl StdinHold {
    pub(crate) fn hold(&self, input: Input) {
        *self
            .0
            .try_lock()
            .expect("held before anyone else can see it") = Some(input);
    }

    fn held(&self) -> bool {
        self.0.try_lock().map_or(true, |input| input.is_some())
    }

    /// Writes `bytes` to the stdin (the step runner's requests: engine/step_runner.rs).
    pub(crate) async fn write(&self, bytes: &[u8]) -> std::io::Result<()> {
        let mut input = self.0.lock().await;
        let Some(input) = input.as_mut() else {
            return Err(std::io::ErrorKind::BrokenPipe.into());
        };
        input.write_all(bytes).await?;
        input.flush().await
    }

    /// Closes the stdin; false when there was none to close.
    async fn release(&self) -> bool {
        let input = self.0.lock().await.take();
        let Some(mut input) = input else {
            return false;
        };
        // A half-close: the engine closes the container's stdin at once. Dropping the
        // connection would do too, a moment later.
        let _ = input.shutdown().await;
        true
    }
}

impl std::fmt::Debug for StdinHold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.held() {
            "StdinHold(held)"
        } else {
            "StdinHold"
        })
    }
}

impl PartialEq for StdinHold {
    fn eq(&self, other: &StdinHold) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for StdinHold {}

impl Created {
    /// Services first: they live in the primary's network namespace.
    pub fn all(&self) -> Vec<String> {
        self.services.iter().chain(&self.primary).cloned().collect()
    }
}

/// Where the host's Docker socket goes in the primary container (`--docker-socket`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SocketMount {
    pub host_path: String,
    pub container_path: String,
    /// The socket's group on the host, so a non-root user may use it.
    pub gid: Option<u32>,
}

/// How [`start`] ended when the daemon did not fail.
pub enum Startup {
    /// With the primary's output when the primary runs the setup as its command, and whether
    /// the staged files are mounted in it (an engine that cannot see them refused the mounts).
    Started {
        output: Option<Output>,
        mounted: bool,
        /// The primary's command ends with the step runner (its output follows the setup's).
        runner: bool,
    },
    /// Ctrl-C arrived; some containers may exist (they are in `created`).
    Interrupted,
}

/// Creates and starts the primary (with the staged files of `stage`), then the services,
/// checking `cancel` between requests. Ids land in `created` as soon as they exist.
#[allow(clippy::too_many_arguments)]
pub async fn start(
    backend: &dyn Backend,
    plan: &JobPlan,
    run: &RunInfo,
    images: &HashMap<String, ImageInfo>,
    socket: Option<&SocketMount>,
    limits: Limits,
    setup: &SetupArgs,
    stage: Option<&Stage>,
    cancel: &CancellationToken,
    created: &mut Created,
    events: &Events,
) -> std::result::Result<Startup, EngineError> {
    let (primary_plan, services) = plan
        .images
        .split_first()
        .expect("a planned docker job has at least one image");
    let preserve = images
        .get(&primary_plan.image)
        .and_then(|i| i.labels.get(PRESERVE_ENTRYPOINT))
        .is_some_and(|v| v == "true");
    if cancel.is_cancelled() {
        return Ok(Startup::Interrupted);
    }
    let runs_setup = runs_localcis_command(primary_plan, preserve);
    // Without the mounts, the setup has no program to copy.
    let unmounted = SetupArgs {
        agent: None,
        ..setup.clone()
    };
    let mut spec = primary_spec(plan, primary_plan, run, runs_setup, socket, &unmounted);
    spec.limits = limits;
    let (auto_remove, stdin_once) = (spec.auto_remove, spec.stdin_once);
    let mut mounted = stage.is_some();
    let primary = if let Some(stage) = &stage {
        let mut with_mounts = spec.clone();
        with_mounts.file_mounts = stage.mounts.clone();
        let keep_alive = if stdin_once {
            keep_alive_runner(&stage.agent_path)
        } else {
            keep_alive(run).to_string()
        };
        if runs_setup {
            with_mounts.cmd = Some(setup::container_command(setup, &keep_alive));
        }
        match create(backend, with_mounts, created).await {
            Ok(id) => id,
            // An engine that cannot see the host's files refuses the mounts: upload then.
            Err(BackendError::Daemon { .. }) if !cancel.is_cancelled() => {
                mounted = false;
                create(backend, spec, created).await?
            }
            Err(e) => return Err(e.into()),
        }
    } else {
        create(backend, spec, created).await?
    };
    created.primary = Some(primary.clone());
    created.primary_auto_removes = auto_remove;
    if plan.machine.is_some() && !cancel.is_cancelled() {
        super::machine::provision(backend, &primary, &primary_plan.image, socket).await?;
    }
    hold::at(Moment::Create, events).await;
    if cancel.is_cancelled() {
        return Ok(Startup::Interrupted);
    }
    // Attached before the start, so that no line of the setup is missed.
    let output = if runs_setup {
        let attached = backend.attach(&primary).await?;
        if stdin_once {
            created.stdin.hold(attached.input);
        }
        Some(attached.output)
    } else {
        None
    };
    if let Err(e) = backend.start_container(&primary).await {
        return Err(no_shell(e));
    }
    hold::at(Moment::Start, events).await;
    for (i, service) in services.iter().enumerate() {
        if cancel.is_cancelled() {
            return Ok(Startup::Interrupted);
        }
        let mut spec = service_spec(plan, service, run, i + 1, &primary);
        spec.limits = limits;
        let id = create(backend, spec, created).await?;
        created.services.push(id.clone());
        if cancel.is_cancelled() {
            return Ok(Startup::Interrupted);
        }
        backend.start_container(&id).await?;
        hold::at(Moment::Service, events).await;
    }
    let runner = mounted && runs_setup && stdin_once;
    Ok(Startup::Started {
        output,
        mounted,
        runner,
    })
}

/// A primary whose `/bin/sh` does not exist fails to start (it runs the setup with it): said
/// as the setup says it when it runs as an exec.
fn no_shell(e: BackendError) -> EngineError {
    match &e {
        BackendError::Daemon { message, .. }
            if message.contains("/bin/sh") && message.contains("no such file") =>
        {
            EngineError::Setup(setup::NO_SHELL.to_string())
        }
        _ => e.into(),
    }
}

/// One create request, awaited to the end; on failure its name goes to `unconfirmed`.
async fn create(
    backend: &dyn Backend,
    spec: ContainerSpec,
    created: &mut Created,
) -> Result<String> {
    let name = spec.name.clone();
    let result = backend.create_container(spec).await;
    if result.is_err() {
        created.unconfirmed.extend(name);
    }
    result
}

fn base_spec(plan: &JobPlan, image: &ImagePlan, run: &RunInfo, suffix: &str) -> ContainerSpec {
    ContainerSpec {
        name: Some(container_name(
            &super::session::job_ref(plan).to_string(),
            run.short(),
            suffix,
        )),
        image: image.image.clone(),
        entrypoint: image.entrypoint.clone(),
        cmd: image.command.clone(),
        env: image
            .environment
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect(),
        user: image.user.clone(),
        labels: run.labels(&super::session::job_ref(plan).to_string()),
        ..ContainerSpec::default()
    }
}

/// Whether the primary runs localci's command (the setup, then the keep-alive loop): not
/// when the image asks to keep its entrypoint, nor when the config sets `entrypoint` or
/// `command`.
fn runs_localcis_command(image: &ImagePlan, preserve: bool) -> bool {
    let configured = image.entrypoint.is_some() || image.command.is_some();
    !configured && !preserve
}

fn keep_alive(run: &RunInfo) -> &'static str {
    if run.keep {
        KEEP_ALIVE_KEPT
    } else {
        KEEP_ALIVE
    }
}

/// The primary's spec without staged files (see [`start`]).
fn primary_spec(
    plan: &JobPlan,
    image: &ImagePlan,
    run: &RunInfo,
    localcis_command: bool,
    socket: Option<&SocketMount>,
    setup: &SetupArgs,
) -> ContainerSpec {
    let mut spec = base_spec(plan, image, run, "");
    if localcis_command {
        spec.entrypoint = Some(vec!["/bin/sh".into()]);
        spec.cmd = Some(setup::container_command(setup, keep_alive(run)));
        spec.init = true;
        // It stops only when the job ends (its stdin closes, or cleanup kills it): the
        // engine then removes it while localci exits. Not with --keep, nor for an entrypoint
        // of the image's or the config's, which may exit during the job (its state and logs
        // are then needed).
        spec.auto_remove = !run.keep;
        spec.stdin_once = !run.keep;
    }
    spec.extra_hosts = plan
        .images
        .iter()
        .filter_map(|i| i.name.as_ref())
        .map(|name| format!("{name}:127.0.0.1"))
        .collect();
    if let Some(socket) = socket {
        spec.binds = vec![format!("{}:{}", socket.host_path, socket.container_path)];
        spec.group_add = socket.gid.map(|g| g.to_string()).into_iter().collect();
    }
    spec
}

fn service_spec(
    plan: &JobPlan,
    image: &ImagePlan,
    run: &RunInfo,
    index: usize,
    primary: &str,
) -> ContainerSpec {
    let suffix = match &image.name {
        Some(name) => format!("-{name}"),
        None => format!("-svc{index}"),
    };
    let mut spec = base_spec(plan, image, run, &suffix);
    spec.network_mode = Some(format!("container:{primary}"));
    spec
}

/// `localci-<job>-<run>[-suffix]`, with characters Docker refuses in names replaced.
fn container_name(job: &str, short: &str, suffix: &str) -> String {
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                    c
                } else {
                    '-'
                }
            })
            .collect()
    };
    format!("localci-{}-{short}{}", clean(job), clean(suffix))
}

/// Removes everything in `created` (the unconfirmed ones by name); returns the ids or names
/// that could not be removed. A container that does not exist counts as removed. With
/// `kill_primary`, a primary the engine removes itself is only stopped (its stdin closed, or
/// killed): its removal goes on in the engine without holding up the caller.
pub async fn remove(
    backend: &dyn Backend,
    created: &Created,
    kill_primary: bool,
) -> Vec<(String, String)> {
    let mut failed = Vec::new();
    let targets = created.unconfirmed.iter().cloned().chain(created.all());
    let killed = created
        .primary
        .clone()
        .filter(|_| kill_primary && created.primary_auto_removes);
    let removals = targets.map(|id| {
        let kill = killed.as_ref() == Some(&id);
        async move {
            let result = if kill && created.stdin.release().await {
                // Its keep-alive loop ends with its stdin; nothing to wait for.
                Ok(())
            } else if kill {
                match backend.kill_container(&id).await {
                    Ok(()) => Ok(()),
                    // Remove it then, to be sure it goes.
                    Err(_) => backend.remove_container(&id).await,
                }
            } else {
                backend.remove_container(&id).await
            };
            (id, result)
        }
    });
    for (id, result) in futures_util::future::join_all(removals).await {
        if let Err(e) = result {
            failed.push((id, e.to_string()));
        }
    }
    failed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_docker_safe() {
        assert_eq!(
            container_name("build py/3", "abcd1234", "-db"),
            "localci-build-py-3-abcd1234-db"
        );
    }

    #[test]
    fn limits_parse_like_docker_and_resource_classes_have_their_documented_size() {
        assert_eq!(parse_memory("512m").unwrap(), 512 << 20);
        assert_eq!(parse_memory("2G").unwrap(), 2 << 30);
        assert!(parse_memory("1k").is_err());
        assert!(parse_memory("12x").is_err());
        assert!(parse_memory("99999999999g").is_err());
        assert_eq!(parse_cpus("1.5").unwrap(), 1_500_000_000);
        assert!(parse_cpus("-1").is_err() && parse_cpus("nan").is_err());
        assert_eq!(parse_pids("64").unwrap(), 64);
        assert!(parse_pids("0").is_err());
        let large = Limits::for_resource_class("large").unwrap();
        assert_eq!(
            (large.memory, large.nano_cpus),
            (Some(8 << 30), Some(4_000_000_000))
        );
        assert_eq!(
            Limits::for_resource_class("medium+.gen2").unwrap().memory,
            Some(6 << 30)
        );
        assert_eq!(Limits::for_resource_class("arm.medium"), None);
        // A machine job's class is a VM size: medium is 2 CPUs and 7.5 GB there.
        let machine = job_limits(Limits::default(), true, None, true).unwrap();
        assert_eq!(
            (machine.memory, machine.nano_cpus),
            (Some(7680 << 20), Some(2_000_000_000))
        );
        assert_eq!(
            job_limits(Limits::default(), true, Some("arm.large"), true)
                .unwrap()
                .memory,
            Some(16 << 30)
        );
        assert!(job_limits(Limits::default(), true, Some("medium+"), true).is_err());
        assert!(job_limits(Limits::default(), true, Some("arm.large"), false).is_err());
        let flags = Limits {
            memory: Some(1 << 30),
            ..Limits::default()
        };
        assert_eq!(flags.or(large).memory, Some(1 << 30));
        assert_eq!(flags.or(large).nano_cpus, large.nano_cpus);
    }
}
