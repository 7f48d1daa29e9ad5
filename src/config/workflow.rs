//! Workflows, read only as far as `execute` needs them: which job each invocation runs and
//! under which name.

use serde::Serialize;

use super::read::{Reader, child, index};
use crate::source::Span;
use crate::yaml::{Kind, Node};

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Workflow {
    pub name: String,
    pub jobs: Vec<Invocation>,
}

/// One entry of a workflow's `jobs:` list.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Invocation {
    /// The job it runs (the entry's key).
    pub job: String,
    /// Its `name:` when the entry gives one.
    pub name: Option<String>,
    pub approval: bool,
    #[serde(skip)]
    pub span: Span,
}

impl Invocation {
    /// The name the job runs under (`CIRCLE_JOB`).
    pub fn run_name(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.job)
    }
}

/// Reads `workflows:`; the `version` key is not a workflow.
pub(crate) fn parse_workflows(r: &mut Reader, node: &Node) -> Vec<Workflow> {
    let Some(map) = node.as_map() else {
        return Vec::new();
    };
    map.entries
        .iter()
        .filter(|e| e.key != "version")
        .map(|e| {
            let pointer = child("/workflows", &e.key);
            let jobs = e
                .value
                .get("jobs")
                .and_then(Node::as_seq)
                .unwrap_or_default()
                .iter()
                .enumerate()
                .filter_map(|(i, item)| {
                    parse_invocation(r, item, &index(&child(&pointer, "jobs"), i))
                })
                .collect();
            Workflow {
                name: e.key.clone(),
                jobs,
            }
        })
        .collect()
}

fn parse_invocation(r: &mut Reader, node: &Node, pointer: &str) -> Option<Invocation> {
    match &node.kind {
        Kind::Str(job) => Some(Invocation {
            job: job.clone(),
            name: None,
            approval: false,
            span: node.span,
        }),
        Kind::Map(map) if map.len() == 1 => {
            let entry = &map.entries[0];
            let p = child(pointer, &entry.key);
            let name = if entry.value.as_map().is_some() {
                r.opt_text(&entry.value, "name", &p)
            } else {
                None
            };
            let approval = entry.value.get("type").and_then(Node::as_str) == Some("approval");
            Some(Invocation {
                job: entry.key.clone(),
                name,
                approval,
                span: node.span,
            })
        }
        _ => {
            r.error(
                node,
                pointer,
                "a workflow job must be a job name or a one-key map",
            );
            None
        }
    }
}
