//! Which job definition `localci execute <name>` means: a job of the processed config, or a
//! named invocation in a workflow. Unknown names list the choices.

use crate::config::{Config, Job};
use crate::diagnostic::Diagnostic;

/// A job definition and the name it runs under (`CIRCLE_JOB`).
pub(crate) struct Selected<'a> {
    pub(crate) run_name: String,
    pub(crate) job: &'a Job,
}

pub(crate) fn select<'a>(config: &'a Config, name: &str) -> Result<Selected<'a>, Diagnostic> {
    if let Some(job) = config.jobs.get(name) {
        return Ok(Selected {
            run_name: name.to_string(),
            job,
        });
    }
    let invoked = config
        .workflows
        .iter()
        .flat_map(|w| &w.jobs)
        .find(|inv| inv.name.as_deref() == Some(name));
    if let Some(job) = invoked.and_then(|inv| config.jobs.get(&inv.job)) {
        return Ok(Selected {
            run_name: name.to_string(),
            job,
        });
    }
    Err(unknown(config, name))
}

/// Every name `execute` accepts, in config order, without repeats.
pub fn choices(config: &Config) -> Vec<String> {
    let mut names: Vec<String> = config.jobs.keys().cloned().collect();
    for inv in config.workflows.iter().flat_map(|w| &w.jobs) {
        if inv.approval || !config.jobs.contains_key(&inv.job) {
            continue;
        }
        let name = inv.run_name().to_string();
        if !names.contains(&name) {
            names.push(name);
        }
    }
    names
}

fn unknown(config: &Config, name: &str) -> Diagnostic {
    let names = choices(config);
    let list = if names.is_empty() {
        "the config defines no jobs".to_string()
    } else {
        format!("the jobs are: {}", names.join(", "))
    };
    let near = names
        .iter()
        .find(|n| n.eq_ignore_ascii_case(name) || n.contains(name) || name.contains(n.as_str()));
    let hint = match near {
        Some(n) => format!("did you mean `{n}`? {list}"),
        None => list,
    };
    Diagnostic::bare(format!("no job named `{name}` in the config")).with_hint(hint)
}
