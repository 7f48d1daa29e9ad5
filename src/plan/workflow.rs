//! From a typed [`Config`] and the build's branch or tag to a [`WorkflowPlan`]: which jobs of a
//! workflow run, what each one waits for (its `requires` with the accepted statuses), its
//! upstream jobs for the workspace, and why the others are left out (filters, and the pruning
//! rules for requirements that were filtered out). Pure and serializable: the scheduler in
//! `engine` runs it; `localci plan` prints it.

use std::collections::{BTreeMap, BTreeSet};

use regex::Regex;
use serde::Serialize;

use crate::config::{Config, Filters, Invocation, JobType, Pattern, PatternSet, Workflow};
use crate::diagnostic::Diagnostic;

/// What the build is: the branch or the tag it runs for (a tag build has no branch).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct BuildRef {
    pub branch: Option<String>,
    pub tag: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct WorkflowPlan {
    pub workflow: String,
    pub build: BuildRef,
    /// Every invocation, in an order where each job comes after those it requires (config
    /// order among the ready ones).
    pub jobs: Vec<PlannedJob>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PlannedJob {
    /// The name it runs under (`CIRCLE_JOB`), unique in the workflow.
    pub name: String,
    /// The job definition it runs (`None` for an approval).
    pub job: Option<String>,
    pub kind: PlannedKind,
    /// What it waits for, without the requirements that were filtered out.
    pub needs: Vec<Need>,
    /// Its upstream jobs (transitive `needs`), in plan order: whose workspace layers it sees.
    pub upstream: Vec<String>,
    /// `parallelism`: how many nodes run it.
    pub parallelism: u32,
    pub context: Vec<String>,
    /// Why it does not run in this build (its filters, or all it requires was filtered out).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PlannedKind {
    Build,
    Approval,
    NoOp,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Need {
    pub job: String,
    /// The statuses it may end in (`success`, `failed`, `canceled`, `unauthorized`, `not_run`).
    pub statuses: Vec<String>,
}

impl WorkflowPlan {
    pub fn get(&self, name: &str) -> Option<&PlannedJob> {
        self.jobs.iter().find(|j| j.name == name)
    }

    /// The jobs that run in this build (not skipped by filters).
    pub fn runnable(&self) -> impl Iterator<Item = &PlannedJob> {
        self.jobs.iter().filter(|j| j.skipped.is_none())
    }
}

/// Chooses the workflow to run: `wanted`, else the only one. Several and none chosen lists them.
pub fn choose_workflow<'a>(
    config: &'a Config,
    wanted: Option<&str>,
) -> Result<&'a Workflow, Diagnostic> {
    let names: Vec<&str> = config.workflows.iter().map(|w| w.name.as_str()).collect();
    match wanted {
        Some(name) => config
            .workflows
            .iter()
            .find(|w| w.name == name)
            .ok_or_else(|| {
                Diagnostic::bare(format!("no workflow named `{name}` in the config")).with_hint(
                    if names.is_empty() {
                        "the config has no workflows; run one job with `localci execute <job>`"
                            .to_string()
                    } else {
                        format!("the workflows are: {}", names.join(", "))
                    },
                )
            }),
        None => match config.workflows.as_slice() {
            [only] => Ok(only),
            [] => Err(Diagnostic::bare("the config has no workflows")
                .with_hint("run one job with `localci execute <job>`")),
            _ => Err(Diagnostic::bare(format!(
                "the config has {} workflows; choose one with --workflow",
                names.len()
            ))
            .with_hint(format!(
                "{}\n(`localci list` shows their jobs)",
                names
                    .iter()
                    .map(|n| format!("localci execute --workflow {n}"))
                    .collect::<Vec<_>>()
                    .join("\n")
            ))),
        },
    }
}

/// Plans `workflow` for the build `build`.
pub fn plan_workflow(
    config: &Config,
    workflow: &Workflow,
    build: &BuildRef,
) -> Result<WorkflowPlan, Vec<Diagnostic>> {
    let mut diags = Vec::new();
    let invocations = index_invocations(workflow, &mut diags);
    let order = topological_order(workflow, &invocations, &mut diags);
    let mut planned: Vec<PlannedJob> = Vec::new();
    let mut skipped: BTreeSet<&str> = BTreeSet::new();
    for &i in &order {
        let inv = &workflow.jobs[i];
        let mut job = match plan_invocation(config, inv) {
            Ok(job) => job,
            Err(d) => {
                diags.push(d);
                continue;
            }
        };
        job.skipped = match filter_verdict(inv.filters.as_ref(), build) {
            Ok(verdict) => verdict,
            Err(d) => {
                diags.push(d);
                None
            }
        };
        let required: Vec<&str> = inv.requires.iter().map(|r| r.job.as_str()).collect();
        if job.skipped.is_none()
            && !required.is_empty()
            && required.iter().all(|r| skipped.contains(r))
        {
            job.skipped = Some(format!(
                "every job it requires was left out ({})",
                required.join(", ")
            ));
        }
        job.needs = inv
            .requires
            .iter()
            .filter(|r| !skipped.contains(r.job.as_str()))
            .map(|r| Need {
                job: r.job.clone(),
                statuses: r.statuses.clone(),
            })
            .collect();
        if job.skipped.is_some() {
            skipped.insert(inv.run_name());
        }
        planned.push(job);
    }
    if !diags.is_empty() {
        return Err(diags);
    }
    fill_upstream(&mut planned);
    Ok(WorkflowPlan {
        workflow: workflow.name.clone(),
        build: build.clone(),
        jobs: planned,
    })
}

/// Run names to their index; a name used twice is an error (CircleCI asks for `name:`).
fn index_invocations<'a>(
    workflow: &'a Workflow,
    diags: &mut Vec<Diagnostic>,
) -> BTreeMap<&'a str, usize> {
    let mut names = BTreeMap::new();
    for (i, inv) in workflow.jobs.iter().enumerate() {
        if names.insert(inv.run_name(), i).is_some() {
            diags.push(
                Diagnostic::error(
                    inv.span,
                    format!(
                        "workflow `{}` runs `{}` twice under the same name",
                        workflow.name,
                        inv.run_name()
                    ),
                )
                .with_hint("give each invocation its own `name:`"),
            );
        }
    }
    names
}

/// Kahn's algorithm, taking the earliest ready invocation in config order each time.
fn topological_order(
    workflow: &Workflow,
    names: &BTreeMap<&str, usize>,
    diags: &mut Vec<Diagnostic>,
) -> Vec<usize> {
    let n = workflow.jobs.len();
    let mut waiting: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); n];
    for (i, inv) in workflow.jobs.iter().enumerate() {
        for req in &inv.requires {
            match names.get(req.job.as_str()) {
                Some(&j) => {
                    waiting[i].insert(j);
                }
                None => diags.push(
                    Diagnostic::error(
                        req.span,
                        format!(
                            "`{}` requires `{}`, which is not a job of workflow `{}`",
                            inv.run_name(),
                            req.job,
                            workflow.name
                        ),
                    )
                    .with_hint("requires names a job entry of the same workflow (its `name:`)"),
                ),
            }
        }
    }
    let mut order = Vec::with_capacity(n);
    let mut done = vec![false; n];
    while order.len() < n {
        let next = (0..n).find(|&i| !done[i] && waiting[i].iter().all(|&j| done[j]));
        let Some(i) = next else {
            let stuck: Vec<&str> = (0..n)
                .filter(|&i| !done[i])
                .map(|i| workflow.jobs[i].run_name())
                .collect();
            diags.push(
                Diagnostic::error(
                    workflow.span,
                    format!(
                        "the `requires` of workflow `{}` form a cycle among: {}",
                        workflow.name,
                        stuck.join(", ")
                    ),
                )
                .with_hint("a job cannot require itself, directly or through others"),
            );
            break;
        };
        done[i] = true;
        order.push(i);
    }
    order
}

fn plan_invocation(config: &Config, inv: &Invocation) -> Result<PlannedJob, Diagnostic> {
    let (job, kind, parallelism) = if inv.approval {
        (None, PlannedKind::Approval, 1)
    } else {
        let Some(def) = config.jobs.get(&inv.job) else {
            return Err(Diagnostic::error(
                inv.span,
                format!("`{}` is not a job of the config", inv.job),
            )
            .with_hint("define it under `jobs:`, or make the entry `type: approval`"));
        };
        let kind = match def.job_type {
            JobType::Approval => PlannedKind::Approval,
            JobType::NoOp => PlannedKind::NoOp,
            JobType::Build | JobType::Other => PlannedKind::Build,
        };
        (Some(inv.job.clone()), kind, def.parallelism.max(1))
    };
    Ok(PlannedJob {
        name: inv.run_name().to_string(),
        job,
        kind,
        needs: Vec::new(),
        upstream: Vec::new(),
        parallelism,
        context: inv.context.clone(),
        skipped: None,
    })
}

/// `None` when the job runs in this build, else why not (CircleCI reference, "filters"): a tag
/// build runs only jobs with a matching `tags` filter; a branch build checks `branches`.
fn filter_verdict(
    filters: Option<&Filters>,
    build: &BuildRef,
) -> Result<Option<String>, Diagnostic> {
    let empty = Filters::default();
    let filters = filters.unwrap_or(&empty);
    if let Some(tag) = &build.tag {
        return Ok(match &filters.tags {
            None => Some(format!("tag {tag}: the job has no `tags` filter")),
            Some(set) => set_verdict(set, tag)?.map(|why| format!("tag {tag}: {why}")),
        });
    }
    let branch = build.branch.as_deref().unwrap_or_default();
    Ok(match &filters.branches {
        None => None,
        Some(set) => set_verdict(set, branch)?.map(|why| format!("branch {branch}: {why}")),
    })
}

fn set_verdict(set: &PatternSet, name: &str) -> Result<Option<String>, Diagnostic> {
    if !set.only.is_empty() && !any_match(&set.only, name)? {
        return Ok(Some("not in `only`".into()));
    }
    if any_match(&set.ignore, name)? {
        return Ok(Some("matched by `ignore`".into()));
    }
    Ok(None)
}

fn any_match(patterns: &[Pattern], name: &str) -> Result<bool, Diagnostic> {
    for p in patterns {
        if pattern_matches(p, name)? {
            return Ok(true);
        }
    }
    Ok(false)
}

/// A literal matches itself; `/regex/` must match the whole name (Java-style regexes; the
/// common subset is what the `regex` crate reads).
pub(crate) fn pattern_matches(pattern: &Pattern, name: &str) -> Result<bool, Diagnostic> {
    let text = pattern.text.as_str();
    let Some(body) = text
        .strip_prefix('/')
        .and_then(|t| t.strip_suffix('/'))
        .filter(|_| text.len() >= 2)
    else {
        return Ok(text == name);
    };
    let re = Regex::new(&format!("^(?:{body})$")).map_err(|e| {
        Diagnostic::error(
            pattern.span,
            format!("filter `{text}` is not a regular expression we can read: {e}"),
        )
        .with_hint("filters take a literal name or /regex/ (matched against the whole name)")
    })?;
    Ok(re.is_match(name))
}

/// Each job's upstream: the transitive closure of its needs, in plan order.
fn fill_upstream(jobs: &mut [PlannedJob]) {
    let position: BTreeMap<String, usize> = jobs
        .iter()
        .enumerate()
        .map(|(i, j)| (j.name.clone(), i))
        .collect();
    for i in 0..jobs.len() {
        let mut set: BTreeSet<usize> = BTreeSet::new();
        for need in &jobs[i].needs {
            if let Some(&j) = position.get(&need.job) {
                set.insert(j);
                set.extend(
                    jobs[j]
                        .upstream
                        .iter()
                        .filter_map(|u| position.get(u).copied()),
                );
            }
        }
        jobs[i].upstream = set.into_iter().map(|j| jobs[j].name.clone()).collect();
    }
}

#[cfg(test)]
mod tests;
