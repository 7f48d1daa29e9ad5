//! `localci plan [--workflow NAME] [--json]`: what a workflow run would do for this build
//! (branch or tag), in which order, and what its filters leave out, without Docker.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::Context;
use super::compile::CompileArgs;
use super::output;
use crate::config::Config;
use crate::diagnostic;
use crate::exit::Outcome;
use crate::plan::{
    MachineImages, PlannedKind, WorkflowPlan, choose_workflow, machine_note, plan_workflow,
};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The workflow [default: the only one].
    #[arg(short = 'w', long = "workflow", value_name = "NAME")]
    pub workflow: Option<String>,

    /// The config file [default: .circleci/config.yml of the current repository]
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Print the plan as JSON.
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
    let planned = choose_workflow(&front.config, args.workflow.as_deref())
        .map_err(|d| vec![d])
        .and_then(|wf| plan_workflow(&front.config, wf, &front.build()));
    // Machine jobs say which local image they would run in (the per-user file's mapping).
    let images = match crate::launch::machine_images(&[], &crate::launch::config_file(&ctx.env)) {
        Ok(images) => images,
        Err(d) => {
            output::stderr(&diagnostic::render_message(&d, ctx.color));
            return Outcome::Invalid;
        }
    };
    match planned {
        Ok(plan) if args.json => {
            let json = serde_json::to_string_pretty(&plan).unwrap_or_default();
            output::stdout(&format!("{json}\n"));
            Outcome::Success
        }
        Ok(plan) => {
            output::stdout(&render(&plan, &front.config, &images));
            Outcome::Success
        }
        Err(diags) => {
            output::stderr(&diagnostic::render_human(&front.sources, &diags, ctx.color));
            Outcome::Invalid
        }
    }
}

/// The jobs by depth (a job is one deeper than the deepest job it needs): what can run at
/// once when nothing else waits. The scheduler starts each job as soon as its own needs end.
fn render(plan: &WorkflowPlan, config: &Config, images: &MachineImages) -> String {
    let build = match (&plan.build.branch, &plan.build.tag) {
        (_, Some(tag)) => format!("tag {tag}"),
        (Some(branch), None) => format!("branch {branch}"),
        (None, None) => "no branch".to_string(),
    };
    let running: Vec<_> = plan.runnable().collect();
    let mut out = format!(
        "workflow {} for {build}: {} of {} jobs run\n",
        plan.workflow,
        running.len(),
        plan.jobs.len()
    );
    let mut depth: BTreeMap<&str, usize> = BTreeMap::new();
    for job in &running {
        let d = job
            .needs
            .iter()
            .filter_map(|n| depth.get(n.job.as_str()))
            .max()
            .map_or(0, |d| d + 1);
        depth.insert(&job.name, d);
        let kind = match job.kind {
            PlannedKind::Approval => " (approval)".to_string(),
            PlannedKind::NoOp => " (no-op)".to_string(),
            PlannedKind::Build if job.parallelism > 1 => format!(" ({} nodes)", job.parallelism),
            PlannedKind::Build => String::new(),
        };
        let kind = match config
            .jobs
            .get(job.job.as_deref().unwrap_or(&job.name))
            .and_then(|def| machine_note(def, images))
        {
            Some(note) => format!("{kind} ({note})"),
            None => kind,
        };
        let after = if job.needs.is_empty() {
            String::new()
        } else {
            let needs: Vec<&str> = job.needs.iter().map(|n| n.job.as_str()).collect();
            format!("  after {}", needs.join(", "))
        };
        out.push_str(&format!("  {d}  {}{kind}{after}\n", job.name));
    }
    for job in plan.jobs.iter().filter(|j| j.skipped.is_some()) {
        out.push_str(&format!(
            "  -  {} skipped: {}\n",
            job.name,
            job.skipped.as_deref().unwrap_or_default()
        ));
    }
    out
}
