//! Workflows: each job entry names a job that exists (or is an approval), passes the job's
//! arguments, and `requires` only names of the same workflow, without cycles; explicit names
//! are unique.

use std::collections::HashSet;

use super::arguments::{self, Invocation};
use super::ctx::{Ctx, Scope};
use super::cycles;
use super::entries::{self, JobEntry};
use super::model::{ElementKind, Lookup, ROOT};
use super::params::JOB_ENTRY_KEYS;
use super::resolve::{self, Missing};
use super::steps;
use super::suggest::did_you_mean;
use super::template;
use crate::diagnostic::Diagnostic;
use crate::process::job_names::{Unnamed, duplicates, final_names};
use crate::yaml::{Node, pointer_token};

pub(crate) fn check_all<'a>(cx: &mut Ctx<'a>) {
    let Some(workflows) = cx.model.root.get("workflows").and_then(Node::as_map) else {
        return;
    };
    for entry in workflows.entries.iter().filter(|e| e.key != "version") {
        let ptr = format!("/workflows/{}", pointer_token(&entry.key));
        for key in ["when", "unless"] {
            // A string is an expression (checked with the references), not a logic statement.
            if let Some(statement) = entry.value.get(key).filter(|s| s.as_str().is_none()) {
                super::logic::check(cx, statement, &format!("{ptr}/{key}"));
            }
        }
        let Some(list) = entry.value.get("jobs").and_then(Node::as_seq) else {
            continue;
        };
        let jobs = entries::parse(list, &format!("{ptr}/jobs"));
        for job in &jobs {
            check_entry(cx, job);
        }
        let named = Named::of(&jobs);
        check_names(cx, &entry.key, &jobs, &named);
        check_requires(cx, &entry.key, &jobs, &named);
        cycles::check(cx, &jobs);
    }
}

fn check_entry<'a>(cx: &mut Ctx<'a>, job: &JobEntry<'a>) {
    let scope = Scope {
        matrix: job.matrix,
        ..Scope::workflow()
    };
    if let Some(settings) = job.settings {
        for key in ["pre-steps", "post-steps"] {
            if let Some(list) = settings.get(key) {
                steps::check_list(cx, list, &format!("{}/{key}", job.body_ptr), scope);
            }
        }
    }
    // `override-with` takes effect only when that orb job exists, so it is never an error;
    // looking it up records that the orb is used.
    if let Some(other) = job
        .settings
        .and_then(|s| s.get("override-with"))
        .and_then(Node::as_str)
    {
        let _ = cx.model.lookup(ROOT, ElementKind::Job, other);
    }
    if job.approval {
        return;
    }
    match cx.model.lookup(ROOT, ElementKind::Job, job.job) {
        Lookup::Found(def) => {
            let invocation = Invocation {
                target: def,
                args: job.settings,
                ptr: job.body_ptr.clone(),
                at: job.job_span,
                skip: &JOB_ENTRY_KEYS,
                matrix: job.matrix,
            };
            arguments::check(cx, &invocation, scope);
        }
        Lookup::MissingOrb(_) => {}
        Lookup::NoSuchOrb => resolve::report(
            cx,
            Missing::orb(ElementKind::Job, job.job, job.job_span, &job.ptr),
            scope,
        ),
        Lookup::NotFound => resolve::report(
            cx,
            Missing::def(ElementKind::Job, job.job, job.job_span, &job.ptr),
            scope,
        ),
    }
}

/// Two jobs of a workflow must not end up with one name, by the compiler's naming rule
/// (`process::job_names`): unnamed repeats are numbered (`job-1`, `job-2`), so only a `name:`
/// (or a matrix instance) can repeat one. `names` are the final names of `jobs`' instances.
fn check_names(cx: &mut Ctx<'_>, workflow: &str, jobs: &[JobEntry<'_>], names: &Named) {
    for (later, first) in duplicates(&names.names) {
        let name = &names.names[later];
        // A templated name (`build-<< pipeline.git.tag >>`) is only known after substitution.
        if template::is_templated(name) {
            continue;
        }
        let (job, prior) = (&jobs[names.owner[later]], &jobs[names.owner[first]]);
        let span = job.explicit_name.map_or(job.job_span, |n| n.span);
        let first_span = prior.explicit_name.map_or(prior.job_span, |n| n.span);
        cx.push(
            Diagnostic::error(
                span,
                format!("the job name `{name}` is used twice in workflow `{workflow}`"),
            )
            .with_label(first_span, "first used here")
            .with_hint("give each job entry of a workflow a unique `name:`")
            .with_pointer(&job.ptr),
        );
    }
}

/// The final name of every job instance of a workflow, and the entry that makes it.
struct Named {
    names: Vec<String>,
    owner: Vec<usize>,
}

impl Named {
    fn of(jobs: &[JobEntry<'_>]) -> Named {
        let mut unnamed = Vec::new();
        let mut owner = Vec::new();
        for (i, job) in jobs.iter().enumerate() {
            for base in &job.instances {
                unnamed.push(Unnamed {
                    base: base.clone(),
                    explicit: job.explicit_name.is_some(),
                });
                owner.push(i);
            }
        }
        Named {
            names: final_names(&unnamed),
            owner,
        }
    }
}

fn check_requires(cx: &mut Ctx<'_>, workflow: &str, jobs: &[JobEntry<'_>], named: &Named) {
    let known: HashSet<&str> = jobs
        .iter()
        .flat_map(|j| j.names.iter().map(String::as_str))
        .chain(named.names.iter().map(String::as_str))
        .collect();
    for job in jobs {
        for req in &job.requires {
            // A templated name (`build-<< matrix.os >>`) is only known after expansion.
            if known.contains(&req.name) || template::is_templated(req.name) {
                continue;
            }
            let mut message = format!(
                "`{}` in `requires` is not a job of workflow `{workflow}`",
                req.name
            );
            let names = jobs.iter().flat_map(|j| j.names.iter().map(String::as_str));
            if let Some(best) = did_you_mean(req.name, names) {
                message.push_str(&format!("; did you mean `{best}`?"));
            }
            cx.push(
                Diagnostic::error(req.span, message)
                    .with_hint("`requires` names other entries of the same workflow, by their `name:` or job name")
                    .with_pointer(&req.ptr),
            );
        }
    }
}
