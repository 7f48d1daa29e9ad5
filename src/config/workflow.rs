//! Workflows of a processed (2.0-shaped) config: each invocation with the job it runs, the
//! name it runs under, what it `requires` (with the accepted statuses), its `filters`,
//! `context` and whether it is an approval. 2.1 features (matrix, `when`, expression filters)
//! are already compiled away by `process`.

use serde::Serialize;

use super::read::{Reader, child, index};
use crate::source::Span;
use crate::yaml::{Kind, Node};

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Workflow {
    pub name: String,
    pub jobs: Vec<Invocation>,
    /// The workflow has `triggers:` (a schedule): CircleCI runs it only on its schedule;
    /// locally it runs on demand like any other.
    pub scheduled: bool,
    #[serde(skip)]
    pub span: Span,
}

/// One entry of a workflow's `jobs:` list.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Invocation {
    /// The job it runs (the entry's key).
    pub job: String,
    /// Its `name:` when the entry gives one.
    pub name: Option<String>,
    pub approval: bool,
    pub requires: Vec<Requirement>,
    pub filters: Option<Filters>,
    /// `context:` names, in order.
    pub context: Vec<String>,
    #[serde(skip)]
    pub span: Span,
}

/// `requires: [a, {b: failed}, {c: [success, canceled]}]`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Requirement {
    /// The name of the required invocation.
    pub job: String,
    /// The statuses it may end in for this job to run (`success` when none is written;
    /// `terminal` is already spread into its five statuses).
    pub statuses: Vec<String>,
    #[serde(skip)]
    pub span: Span,
}

/// The statuses `requires` accepts (CircleCI reference, "requires").
pub const REQUIRE_STATUSES: &[&str] = &["success", "failed", "canceled", "unauthorized", "not_run"];

/// Branch and tag filters (the map form; expression filters are decided by `process`).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Filters {
    pub branches: Option<PatternSet>,
    pub tags: Option<PatternSet>,
}

/// `only` and `ignore`, each a list of patterns: a literal name or a `/regex/` that must match
/// the whole name.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct PatternSet {
    pub only: Vec<Pattern>,
    pub ignore: Vec<Pattern>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Pattern {
    pub text: String,
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
                scheduled: e.value.get("triggers").is_some(),
                span: e.key_span,
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
            requires: Vec::new(),
            filters: None,
            context: Vec::new(),
            span: node.span,
        }),
        Kind::Map(map) if map.len() == 1 => {
            let entry = &map.entries[0];
            let p = child(pointer, &entry.key);
            let body = &entry.value;
            let is_map = body.as_map().is_some();
            let name = if is_map {
                r.opt_text(body, "name", &p)
            } else {
                None
            };
            let approval = body.get("type").and_then(Node::as_str) == Some("approval");
            let requires = match body.get("requires").filter(|_| is_map) {
                Some(list) => parse_requires(r, list, &child(&p, "requires")),
                None => Vec::new(),
            };
            let filters = body
                .get("filters")
                .filter(|_| is_map)
                .map(|f| parse_filters(r, f, &child(&p, "filters")));
            let context = match body.get("context").filter(|_| is_map) {
                Some(c) => r.strings(c, &child(&p, "context"), "`context`"),
                None => Vec::new(),
            };
            Some(Invocation {
                job: entry.key.clone(),
                name,
                approval,
                requires,
                filters,
                context,
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

fn parse_requires(r: &mut Reader, node: &Node, pointer: &str) -> Vec<Requirement> {
    let Some(items) = node.as_seq() else {
        // A single name is accepted by CircleCI's schema as a one-item list.
        return match node.scalar_text() {
            Some(job) => vec![Requirement {
                job,
                statuses: vec!["success".into()],
                span: node.span,
            }],
            None => {
                r.error(node, pointer, "`requires` must be a list of job names");
                Vec::new()
            }
        };
    };
    items
        .iter()
        .enumerate()
        .filter_map(|(i, item)| parse_requirement(r, item, &index(pointer, i)))
        .collect()
}

fn parse_requirement(r: &mut Reader, item: &Node, pointer: &str) -> Option<Requirement> {
    if let Some(job) = item.scalar_text() {
        return Some(Requirement {
            job,
            statuses: vec!["success".into()],
            span: item.span,
        });
    }
    let map = item.as_map().filter(|m| m.len() == 1);
    let Some(entry) = map.map(|m| &m.entries[0]) else {
        r.error(
            item,
            pointer,
            "a `requires` item is a job name or `name: status`",
        );
        return None;
    };
    let p = child(pointer, &entry.key);
    let mut statuses = Vec::new();
    for word in r.strings(&entry.value, &p, "a required status") {
        match word.as_str() {
            "terminal" => statuses.extend(REQUIRE_STATUSES.iter().map(|s| s.to_string())),
            w if REQUIRE_STATUSES.contains(&w) => statuses.push(word),
            _ => r.error_hint(
                &entry.value,
                &p,
                format!("`{word}` is not a job status"),
                "use success, failed, canceled, unauthorized, not_run or terminal",
            ),
        }
    }
    statuses.dedup();
    Some(Requirement {
        job: entry.key.clone(),
        statuses,
        span: item.span,
    })
}

fn parse_filters(r: &mut Reader, node: &Node, pointer: &str) -> Filters {
    let set = |r: &mut Reader, key: &str| {
        node.get(key)
            .map(|n| parse_pattern_set(r, n, &child(pointer, key)))
    };
    Filters {
        branches: set(r, "branches"),
        tags: set(r, "tags"),
    }
}

fn parse_pattern_set(r: &mut Reader, node: &Node, pointer: &str) -> PatternSet {
    let patterns = |r: &mut Reader, key: &str| -> Vec<Pattern> {
        let Some(value) = node.get(key) else {
            return Vec::new();
        };
        let p = child(pointer, key);
        match &value.kind {
            Kind::Seq(items) => items
                .iter()
                .enumerate()
                .filter_map(|(i, item)| {
                    r.text(item, &index(&p, i), "a filter pattern")
                        .map(|text| Pattern {
                            text,
                            span: item.span,
                        })
                })
                .collect(),
            Kind::Null => Vec::new(),
            _ => r
                .text(value, &p, "a filter pattern")
                .map(|text| Pattern {
                    text,
                    span: value.span,
                })
                .into_iter()
                .collect(),
        }
    };
    PatternSet {
        only: patterns(r, "only"),
        ignore: patterns(r, "ignore"),
    }
}
