//! The typed model of a processed (2.0-shaped) config: jobs with their executors, steps in one
//! canonical form, and workflows. Built from a [`Node`] with a diagnostic (span + JSON pointer)
//! for every shape problem. Pure: no I/O, no Docker, no 2.1 features (those are compiled away
//! by `process` before this stage).

mod job;
mod read;
pub(crate) mod step;
mod workflow;

use indexmap::IndexMap;
use serde::Serialize;

/// Kept for `steps/cache.rs`, which is being changed elsewhere; new code uses `crate::units`.
pub use job::{
    Auth, AwsAuth, DEFAULT_WORKING_DIRECTORY, DockerImage, Executor, Job, JobType, Machine,
};
pub use step::{Run, Step, StepKind, When};
pub use workflow::{
    Filters, Invocation, Pattern, PatternSet, REQUIRE_STATUSES, Requirement, Workflow,
};

use crate::diagnostic::Diagnostic;
use crate::yaml::Node;
use read::{Reader, child};

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Config {
    pub jobs: IndexMap<String, Job>,
    pub workflows: Vec<Workflow>,
}

/// `true` when the document says `version: 2.1` (which needs compiling first).
pub fn is_version_2_1(node: &Node) -> bool {
    node.get("version")
        .and_then(Node::scalar_text)
        .is_some_and(|v| v.trim() == "2.1")
}

/// Builds the model; every problem is reported, not only the first.
pub fn parse(node: &Node) -> Result<Config, Vec<Diagnostic>> {
    let mut r = Reader::default();
    let mut jobs = IndexMap::new();
    match node.get("jobs") {
        Some(list) if list.as_map().is_some() => {
            for entry in &list.as_map().expect("checked above").entries {
                let pointer = child("/jobs", &entry.key);
                if let Some(job) = job::parse_job(&mut r, &entry.key, &entry.value, &pointer) {
                    jobs.insert(entry.key.clone(), job);
                }
            }
        }
        Some(other) => r.error(other, "/jobs", "`jobs` must be a map of job names to jobs"),
        None => r.diags.push(
            Diagnostic::error(node.span.head(), "the config has no `jobs`")
                .with_hint("add a `jobs:` map with at least one job"),
        ),
    }
    let workflows = node
        .get("workflows")
        .map(|w| workflow::parse_workflows(&mut r, w))
        .unwrap_or_default();
    if r.diags.is_empty() {
        Ok(Config { jobs, workflows })
    } else {
        Err(r.diags)
    }
}

#[cfg(test)]
mod tests;
