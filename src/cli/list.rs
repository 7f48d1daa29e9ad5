//! `localci list [--json]`: the workflows of the (processed) config, their jobs, what each
//! requires, its filters and contexts. No Docker.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::Context;
use super::compile::CompileArgs;
use super::output;
use crate::config::{Filters, Invocation, PatternSet, Workflow};
use crate::exit::Outcome;
use crate::plan::machine_note;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The config file [default: .circleci/config.yml of the current repository]
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Print JSON (the workflows with their jobs) instead of text.
    #[arg(long)]
    pub json: bool,

    #[command(flatten)]
    pub compile: CompileArgs,
}

pub fn run(ctx: &Context, args: &Args) -> Outcome {
    let options = args.compile.front_options(ctx, args.config.clone(), false);
    let front = match super::compile::front_or_report(ctx, &options) {
        Ok(front) => front,
        Err(outcome) => return outcome,
    };
    if args.json {
        let json = serde_json::json!({
            "workflows": front.config.workflows,
            "jobs": front.config.jobs.keys().collect::<Vec<_>>(),
        });
        output::stdout(&format!("{json:#}\n"));
    } else {
        // Machine jobs say which local image they would run in (the per-user file's mapping).
        let images = match crate::launch::machine_images(&[], &crate::launch::config_file(&ctx.env))
        {
            Ok(images) => images,
            Err(d) => {
                output::stderr(&crate::diagnostic::render_message(&d, ctx.color));
                return Outcome::Invalid;
            }
        };
        let machine: BTreeMap<String, String> = front
            .config
            .jobs
            .iter()
            .filter_map(|(name, job)| Some((name.clone(), machine_note(job, &images)?)))
            .collect();
        output::stdout(&render(
            &front.config.workflows,
            &front.config.jobs.keys().cloned().collect::<Vec<_>>(),
            &machine,
        ));
    }
    Outcome::Success
}

fn render(workflows: &[Workflow], jobs: &[String], machine: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    if workflows.is_empty() {
        out.push_str("no workflows\n");
    }
    for wf in workflows {
        let scheduled = if wf.scheduled { " (scheduled)" } else { "" };
        out.push_str(&format!("workflow {}{scheduled}\n", wf.name));
        let width = wf
            .jobs
            .iter()
            .map(|j| j.run_name().len())
            .max()
            .unwrap_or(0);
        for inv in &wf.jobs {
            let mut notes = notes(inv);
            notes.extend(machine.get(&inv.job).cloned());
            if notes.is_empty() {
                out.push_str(&format!("  {}\n", inv.run_name()));
            } else {
                out.push_str(&format!(
                    "  {:<width$}  {}\n",
                    inv.run_name(),
                    notes.join("; ")
                ));
            }
        }
    }
    out.push_str(&format!("jobs: {}\n", jobs.join(", ")));
    out
}

fn notes(inv: &Invocation) -> Vec<String> {
    let mut notes = Vec::new();
    if inv.approval {
        notes.push("approval".into());
    } else if inv.name.is_some() {
        notes.push(format!("runs job {}", inv.job));
    }
    if !inv.requires.is_empty() {
        let reqs: Vec<String> = inv
            .requires
            .iter()
            .map(|r| match r.statuses.as_slice() {
                [only] if only == "success" => r.job.clone(),
                statuses => format!("{} ({})", r.job, statuses.join("|")),
            })
            .collect();
        notes.push(format!("requires {}", reqs.join(", ")));
    }
    if let Some(filters) = &inv.filters {
        notes.extend(filter_notes(filters));
    }
    if !inv.context.is_empty() {
        notes.push(format!("context {}", inv.context.join(", ")));
    }
    notes
}

fn filter_notes(filters: &Filters) -> Vec<String> {
    let set = |what: &str, set: &Option<PatternSet>| -> Option<String> {
        let set = set.as_ref()?;
        let list = |ps: &[crate::config::Pattern]| {
            ps.iter()
                .map(|p| p.text.clone())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut parts = Vec::new();
        if !set.only.is_empty() {
            parts.push(format!("only {}", list(&set.only)));
        }
        if !set.ignore.is_empty() {
            parts.push(format!("ignore {}", list(&set.ignore)));
        }
        Some(format!("{what} {}", parts.join(" ")))
    };
    [
        set("branches", &filters.branches),
        set("tags", &filters.tags),
    ]
    .into_iter()
    .flatten()
    .collect()
}
