//! What a step can use while it runs: the backend, the plan, the primary container and the
//! facts learnt about it, the event sender and the cancellation token. Cheap to clone, so a
//! background step can own one.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

use crate::backend::Backend;
use crate::plan::JobPlan;
use crate::report::Events;

/// What localci learnt about the primary container before the first step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Facts {
    pub uid: u64,
    pub gid: u64,
    pub home: String,
    /// `/bin/bash` when the image has it, else `/bin/sh`.
    pub default_shell: String,
    /// The job's `working_directory`, absolute, `~` expanded.
    pub working_directory: String,
}

impl Facts {
    /// A path as CircleCI reads it in a step: `~` is the home folder, relative paths are
    /// relative to `base` (the working directory unless said otherwise).
    pub fn resolve_from(&self, base: &str, path: &str) -> String {
        let joined = if path == "~" {
            self.home.clone()
        } else if let Some(rest) = path.strip_prefix("~/") {
            format!("{}/{rest}", self.home.trim_end_matches('/'))
        } else if path.starts_with('/') {
            path.to_string()
        } else {
            format!("{}/{path}", base.trim_end_matches('/'))
        };
        normalize(&joined)
    }

    /// [`Facts::resolve_from`] the job's working directory.
    pub fn resolve(&self, path: &str) -> String {
        self.resolve_from(&self.working_directory, path)
    }
}

/// Removes `.` and empty components and applies `..` lexically (`/a/./b/../c` -> `/a/c`).
pub fn normalize(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    format!("/{}", parts.join("/"))
}

/// Host-side settings of the run.
#[derive(Clone, Debug, Default)]
pub struct Settings {
    /// Where `store_artifacts` and `store_test_results` copy to (`.localci/artifacts/<job>`).
    pub artifacts_dir: PathBuf,
    /// The local cache store.
    pub cache_dir: PathBuf,
    /// `--docker-socket`: the host socket is mounted in the primary container at this path.
    pub docker_socket: Option<String>,
    /// The workflow workspace this job persists to and attaches from; `None` when there is
    /// none (a single job run without an earlier workflow run).
    pub workspace: Option<Workspace>,
    /// `--shell-on-fail`: how a shell gets the host terminal after a failed step.
    pub shell_on_fail: Option<crate::engine::ShellOnFail>,
    /// `--watch`: the checkout sends only what changed since its last sync.
    pub sync: Option<Arc<super::sync::SyncState>>,
}

/// A job's view of its workflow's workspace (CircleCI: an additive stack of immutable layers,
/// one or more per job that persists; semantics file 4.9). The engine decides the folders and the
/// order; the workspace steps read and write layer files in them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Workspace {
    /// The folder this job writes its layers to (`persist_to_workspace`): one file per persist
    /// step and node, `<node>-<step>.tar`, written atomically.
    pub layers_dir: PathBuf,
    /// This job's node (`CIRCLE_NODE_INDEX`), for the layer file names.
    pub node: u32,
    /// The upstream jobs (transitive `requires`) whose layers `attach_workspace` applies, in
    /// workflow-graph (topological) order.
    pub upstream: Vec<UpstreamLayers>,
    /// Said once by `attach_workspace` when the layers come from an earlier run
    /// (`localci execute <job>` alone): which run and when.
    pub from_run: Option<String>,
}

/// The layers one upstream job stored.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct UpstreamLayers {
    /// The job's name in the workflow.
    pub job: String,
    /// Its layers folder (the `layers_dir` it had when it ran).
    pub dir: PathBuf,
    /// The upstream jobs of this one (transitive `requires`): a path written by two jobs is
    /// a conflict only when neither is upstream of the other (CircleCI fails the attach).
    pub ancestors: std::collections::BTreeSet<String>,
}

/// An upload of the `circleci` program under way.
pub type AgentUpload = tokio::task::JoinHandle<crate::backend::Result<()>>;

#[derive(Clone)]
pub struct StepContext {
    pub backend: Arc<dyn Backend>,
    pub plan: Arc<JobPlan>,
    pub events: Events,
    pub cancel: CancellationToken,
    /// The primary container's id.
    pub primary: String,
    pub facts: Arc<Facts>,
    pub settings: Arc<Settings>,
    /// A folder in the primary container for step scripts and pid files.
    pub run_dir: String,
    /// Variables set by steps for later steps (`DOCKER_HOST` after `setup_remote_docker`),
    /// at the level of the built-in variables.
    pub extra_env: Arc<Mutex<Vec<(String, String)>>>,
    /// Set when a `run` step ran `circleci-agent step halt` (its wrapper says so in-band):
    /// the job ends after that step.
    pub halted: Arc<AtomicBool>,
    /// The `circleci` program is not in the container yet: a job that begins with `checkout`
    /// sends it with the repository (one upload instead of two, and uploads into one
    /// container do not overlap in Docker); see [`StepContext::ensure_agent`].
    pub agent_pending: Arc<AtomicBool>,
    /// The upload of the `circleci` program started in the background (a user other than
    /// root, with the program mounted for the runner); awaited before the first `run` step.
    pub agent_upload: Arc<Mutex<Option<AgentUpload>>>,
    /// The setup's check of the target of a `checkout` that is the job's first step; taken
    /// by that step (see [`StepContext::take_first_checkout`]).
    pub first_checkout: Arc<Mutex<Option<FirstCheckout>>>,
    /// The first checkout's staged repository, taken by that step.
    pub staged_checkout: Arc<Mutex<Option<StagedCheckout>>>,
}

/// What the setup found at the target of the job's first `checkout` (the check that step
/// would otherwise make with an exec of its own).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FirstCheckout {
    /// The target the setup checked, resolved in the container.
    pub dir: String,
    /// What the check printed and its exit code, as [`super::checkout`]'s own check gives it.
    pub checked: super::process::Collected,
}

/// The repository of the job's first `checkout`, staged on the host and mounted in the
/// primary as a tar (engine/stage.rs), for that step to unpack.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StagedCheckout {
    /// The tar, in the container.
    pub tar: String,
    /// What it holds.
    pub copied: super::checkout::Copied,
}

impl StepContext {
    /// The setup's check of `target`, once: the first checkout's (a later one, or a rerun
    /// under `--watch`, checks again since steps may have changed the folder).
    pub fn take_first_checkout(&self, target: &str) -> Option<super::process::Collected> {
        let taken = self
            .first_checkout
            .lock()
            .expect("no task panics holding it")
            .take()?;
        (taken.dir == target).then_some(taken.checked)
    }

    /// The staged repository, once (the first checkout's; a later one uploads).
    pub fn take_staged_checkout(&self) -> Option<StagedCheckout> {
        self.staged_checkout
            .lock()
            .expect("no task panics holding it")
            .take()
    }

    /// Installs the `circleci` program if no checkout sent it yet (before a `run` step), or
    /// waits for its upload under way.
    pub async fn ensure_agent(&self) {
        let under_way = self
            .agent_upload
            .lock()
            .expect("no task panics holding it")
            .take();
        if let Some(upload) = under_way {
            let failed = match upload.await {
                Ok(Ok(())) => return,
                Ok(Err(e)) => e.to_string(),
                Err(e) => e.to_string(),
            };
            self.events.warning(format!(
                "cannot put the `circleci` program into the primary container: {failed}"
            ));
            return;
        }
        if !self.agent_pending.swap(false, Ordering::SeqCst) {
            return;
        }
        if let Err(e) = crate::agent::install(self.backend.as_ref(), &self.primary).await {
            self.events.warning(format!(
                "cannot put the `circleci` program into the primary container: {e}"
            ));
        }
    }

    /// The environment a step's processes get, as `KEY=VALUE`.
    pub fn step_env(&self, step_env: &[(String, String)]) -> Vec<String> {
        let mut layers = self.plan.environment.clone();
        let extra = self
            .extra_env
            .lock()
            .expect("no step panics while holding it");
        layers.builtin.extend(extra.iter().cloned());
        layers
            .for_step(step_env)
            .into_iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_resolve_like_circleci() {
        let facts = Facts {
            uid: 0,
            gid: 0,
            home: "/home/circleci".into(),
            default_shell: "/bin/bash".into(),
            working_directory: "/home/circleci/project".into(),
        };
        assert_eq!(facts.resolve("."), "/home/circleci/project");
        assert_eq!(facts.resolve("sub/../x"), "/home/circleci/project/x");
        assert_eq!(facts.resolve("~/.cache/pip"), "/home/circleci/.cache/pip");
        assert_eq!(facts.resolve("~"), "/home/circleci");
        assert_eq!(facts.resolve("/tmp/a/"), "/tmp/a");
    }
}
