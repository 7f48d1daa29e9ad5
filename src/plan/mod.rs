//! From a typed [`Config`] and the command line to a [`JobPlan`]: the one job to run, its
//! images after `--image-map`, its environment layers and its steps. Pure and serializable:
//! no Docker, no file system, no clock (the caller passes what varies).

mod environment;
mod machine;
mod select;
mod workflow;

use serde::Serialize;

pub use environment::Layers;
pub use machine::{
    DEFAULT_NAME as DEFAULT_MACHINE, MachineImages, MachinePlan, machine_note, missing_hint,
};
pub use select::choices;
pub use workflow::{
    BuildRef, Need, PlannedJob, PlannedKind, WorkflowPlan, choose_workflow, plan_workflow,
};

use crate::config::{Auth, Config, DockerImage, Executor, JobType, Step};
use crate::diagnostic::Diagnostic;
use crate::git::RepoInfo;
use environment::{BuiltinFacts, builtins};

/// What the command line and the repository add to the config.
#[derive(Clone, Debug, Default)]
pub struct PlanOptions {
    /// The repository, with `--branch`/`--tag` already applied by the front end.
    pub repo: RepoInfo,
    pub node_index: u32,
    pub node_total: u32,
    /// `--env-file` entries then `-e` entries; later ones win.
    pub project_env: Vec<(String, String)>,
    /// `--image-map from=to` pairs.
    pub image_map: Vec<(String, String)>,
    /// Path of the per-job `BASH_ENV` file inside the primary container.
    pub bash_env: String,
    /// Context variables (`context:` of the workflow job), above project variables.
    pub context_env: Vec<(String, String)>,
    /// Built-in variables of a workflow run (`CIRCLE_WORKFLOW_ID`, `CIRCLE_BUILD_NUM` ...);
    /// they win over the defaults of a single job.
    pub extra_builtins: Vec<(String, String)>,
    /// `--machine-image` and the per-user file: the local images of `machine:` jobs.
    pub machine_images: MachineImages,
}

/// Everything the engine needs to run one job.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct JobPlan {
    /// The name the job runs under (`CIRCLE_JOB`).
    pub name: String,
    /// The key of its definition under `jobs:`.
    pub job: String,
    /// The primary image first, then the services.
    pub images: Vec<ImagePlan>,
    /// As written (`~/project`); expanded in the container.
    pub working_directory: String,
    pub shell: Option<String>,
    pub environment: Layers,
    pub steps: Vec<Step>,
    pub git: GitFacts,
    pub node_index: u32,
    pub node_total: u32,
    /// The job's `resource_class`, for `--resource-class-limits`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_class: Option<String>,
    /// A `machine:` job: its one image runs as CircleCI's machine does (user `circleci`
    /// with sudo, the engine's Docker socket).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub machine: Option<MachinePlan>,
}

/// The repository facts steps and cache keys use.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct GitFacts {
    pub branch: Option<String>,
    pub tag: Option<String>,
    pub revision: Option<String>,
    #[serde(skip)]
    pub root: Option<std::path::PathBuf>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ImagePlan {
    /// The image to run (after `--image-map`).
    pub image: String,
    /// The image the config names, when `--image-map` replaced it.
    pub mapped_from: Option<String>,
    pub name: Option<String>,
    pub entrypoint: Option<Vec<String>>,
    pub command: Option<Vec<String>>,
    pub user: Option<String>,
    pub environment: Vec<(String, String)>,
    #[serde(skip)]
    pub auth: Option<Auth>,
}

/// The outcome of planning: a job to run, or a job that by definition does nothing.
#[derive(Clone, Debug, PartialEq)]
pub enum Plan {
    Run(Box<JobPlan>),
    /// `type: no-op` (and other non-build types): nothing runs; the reason says why.
    Nothing(String),
}

/// Plans `name`. Errors are usage or config problems (exit 2).
pub fn plan(config: &Config, name: &str, options: &PlanOptions) -> Result<Plan, Diagnostic> {
    let selected = select::select(config, name)?;
    plan_job(selected.job, &selected.run_name, options)
}

/// Plans the job definition `job` running under the name `run_name` (a workflow invocation).
pub fn plan_job(
    job: &crate::config::Job,
    run_name: &str,
    options: &PlanOptions,
) -> Result<Plan, Diagnostic> {
    let name = run_name;
    match job.job_type {
        JobType::Build => {}
        JobType::NoOp => {
            return Ok(Plan::Nothing(format!(
                "`{name}` is a no-op job; it runs nothing"
            )));
        }
        JobType::Approval => {
            return Err(Diagnostic::error(job.span, format!("`{name}` is an approval job"))
                .with_hint("approval jobs pause a workflow on CircleCI; execute the jobs around it instead"));
        }
        JobType::Other => {
            return Err(
                Diagnostic::error(job.span, format!("`{name}` is not a build job"))
                    .with_hint("only build jobs (the default `type`) run steps"),
            );
        }
    }
    let (images, machine) = match &job.executor {
        Executor::Docker(images) => (
            images
                .iter()
                .map(|i| map_image(i, &options.image_map))
                .collect(),
            None,
        ),
        Executor::Machine(m) => {
            let planned = machine::plan_machine(job, m, name, &options.machine_images)?;
            (vec![machine_image(&planned)], Some(planned))
        }
        Executor::Macos => return Err(unsupported_executor(job, name)),
        Executor::None => {
            return Err(
                Diagnostic::error(job.span, format!("job `{name}` has no executor"))
                    .with_hint("add `docker: [{image: ...}]` to the job"),
            );
        }
    };
    if options.node_index >= options.node_total.max(1) {
        return Err(Diagnostic::bare(format!(
            "--node-index {} is not below --node-total {}",
            options.node_index,
            options.node_total.max(1)
        ))
        .with_hint(
            "node indexes count from 0: --node-index 0 --node-total 2 is the first of two",
        ));
    }
    let git = git_facts(options);
    let (user, repo) = options.repo.project_slug();
    let mut builtin = builtins(&BuiltinFacts {
        job: run_name,
        working_directory: &job.working_directory,
        branch: git.branch.as_deref(),
        tag: git.tag.as_deref(),
        revision: git.revision.as_deref(),
        repository_url: options.repo.remote_url.as_deref(),
        project: (&user, &repo),
        node_index: options.node_index,
        node_total: options.node_total.max(1),
        bash_env: &options.bash_env,
    });
    builtin.extend(options.extra_builtins.iter().cloned());
    Ok(Plan::Run(Box::new(JobPlan {
        name: run_name.to_string(),
        job: job.name.clone(),
        images,
        working_directory: job.working_directory.clone(),
        shell: job.shell.clone().or_else(|| machine_shell(job)),
        environment: Layers {
            project: options
                .project_env
                .iter()
                .chain(&options.context_env)
                .cloned()
                .collect(),
            builtin,
            job: job.environment.clone(),
        },
        steps: job.steps.clone(),
        git,
        node_index: options.node_index,
        node_total: options.node_total.max(1),
        resource_class: job.resource_class.clone().or_else(|| match &job.executor {
            Executor::Machine(m) => m.resource_class.clone(),
            _ => None,
        }),
        machine,
    })))
}

fn unsupported_executor(job: &crate::config::Job, name: &str) -> Diagnostic {
    Diagnostic::error(job.span, format!("job `{name}` uses the `macos` executor, which localci cannot run"))
        .with_hint("localci runs `docker` and `machine` jobs; give the job a `docker: [{image: ...}]` executor (an image with the tools the job needs) to run it locally")
}

/// The one container of a machine job: the local image, as user `circleci` (created at
/// start-up when the image lacks it).
fn machine_image(machine: &MachinePlan) -> ImagePlan {
    ImagePlan {
        image: machine.local_image.clone(),
        mapped_from: Some(machine.image.clone()),
        name: None,
        entrypoint: None,
        command: None,
        user: Some(MACHINE_USER.to_string()),
        environment: Vec::new(),
        auth: None,
    }
}

/// The user steps of a machine job run as (CircleCI's machine images).
pub const MACHINE_USER: &str = "circleci";

/// `machine.shell`, the older place of a machine job's shell.
fn machine_shell(job: &crate::config::Job) -> Option<String> {
    match &job.executor {
        Executor::Machine(m) => m.shell.clone(),
        _ => None,
    }
}

fn git_facts(options: &PlanOptions) -> GitFacts {
    GitFacts {
        branch: options.repo.branch.clone(),
        tag: options.repo.tag.clone(),
        revision: options.repo.revision.clone(),
        root: options.repo.root.clone(),
    }
}

fn map_image(image: &DockerImage, map: &[(String, String)]) -> ImagePlan {
    let target = map
        .iter()
        .rev()
        .find(|(from, _)| *from == image.image)
        .map(|(_, to)| to.clone());
    ImagePlan {
        mapped_from: target.as_ref().map(|_| image.image.clone()),
        image: target.unwrap_or_else(|| image.image.clone()),
        name: image.name.clone(),
        entrypoint: image.entrypoint.clone(),
        command: image.command.clone(),
        user: image.user.clone(),
        environment: image.environment.clone(),
        auth: image.auth.clone(),
    }
}

#[cfg(test)]
mod tests;
