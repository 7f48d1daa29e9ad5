//! The job's containers, as CircleCI lays them out: the primary (kept alive by a tiny loop
//! unless its image opts out with `com.circleci.preserve-entrypoint=true` or the config sets
//! `entrypoint`/`command`), and one container per service joining the primary's network
//! namespace so services answer on `localhost`. `name:` aliases go into the primary's
//! `/etc/hosts`, which the services share (Docker refuses extra hosts with a shared network).
//!
//! A request to the daemon is never dropped half-way (Ctrl-C is checked between requests): a
//! create request abandoned after it was sent still makes a container, which cleanup would
//! not know about.

use std::collections::HashMap;

use tokio_util::sync::CancellationToken;

use super::run_info::RunInfo;
use crate::backend::{Backend, ContainerSpec, ImageInfo, Result};
use crate::plan::{ImagePlan, JobPlan};

/// The image label that keeps the image's own entrypoint on the primary container.
pub const PRESERVE_ENTRYPOINT: &str = "com.circleci.preserve-entrypoint";

/// Keeps the primary container running until it is removed; exits on TERM/INT.
const KEEP_ALIVE: &str = "trap 'exit 0' TERM INT; while :; do sleep 3600 & wait $!; done";

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
}

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
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Startup {
    Started,
    /// Ctrl-C arrived; some containers may exist (they are in `created`).
    Interrupted,
}

/// Creates and starts the primary, then the services, checking `cancel` between requests.
/// Ids land in `created` as soon as they exist.
pub async fn start(
    backend: &dyn Backend,
    plan: &JobPlan,
    run: &RunInfo,
    images: &HashMap<String, ImageInfo>,
    socket: Option<&SocketMount>,
    cancel: &CancellationToken,
    created: &mut Created,
) -> Result<Startup> {
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
    let spec = primary_spec(plan, primary_plan, run, preserve, socket);
    let primary = create(backend, spec, created).await?;
    created.primary = Some(primary.clone());
    if cancel.is_cancelled() {
        return Ok(Startup::Interrupted);
    }
    backend.start_container(&primary).await?;
    for (i, service) in services.iter().enumerate() {
        if cancel.is_cancelled() {
            return Ok(Startup::Interrupted);
        }
        let spec = service_spec(plan, service, run, i + 1, &primary);
        let id = create(backend, spec, created).await?;
        created.services.push(id.clone());
        if cancel.is_cancelled() {
            return Ok(Startup::Interrupted);
        }
        backend.start_container(&id).await?;
    }
    Ok(Startup::Started)
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

fn primary_spec(
    plan: &JobPlan,
    image: &ImagePlan,
    run: &RunInfo,
    preserve: bool,
    socket: Option<&SocketMount>,
) -> ContainerSpec {
    let mut spec = base_spec(plan, image, run, "");
    let configured = image.entrypoint.is_some() || image.command.is_some();
    if !configured && !preserve {
        spec.entrypoint = Some(vec!["/bin/sh".into()]);
        spec.cmd = Some(vec!["-c".into(), KEEP_ALIVE.into()]);
        spec.init = true;
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
/// that could not be removed. A container that does not exist counts as removed.
pub async fn remove(backend: &dyn Backend, created: &Created) -> Vec<(String, String)> {
    let mut failed = Vec::new();
    let targets = created.unconfirmed.iter().cloned().chain(created.all());
    let removals = targets.map(|id| async move {
        let result = backend.remove_container(&id).await;
        (id, result)
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
}
