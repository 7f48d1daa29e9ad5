//! `localci execute [<job>] [--workflow NAME]`: turns the arguments into front-end and launch
//! options, connects to Docker, starts the one reporter, and maps how the run ended to an
//! [`Outcome`]: 0 every job that ran passed, 1 a job failed, 2 invalid config or usage,
//! 3 Docker unreachable or an image missing, 130 interrupted.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;

use super::Context;
use super::compile::CompileArgs;
use super::output::{self, errln, outln};
use crate::backend::BackendError;
use crate::backend::docker::DockerBackend;
use crate::diagnostic::{self, Diagnostic};
use crate::engine::{self, Approvals, EngineError, EngineOptions, Schedule};
use crate::exit::Outcome;
use crate::frontend::{self, FrontOptions};
use crate::launch::{self, LaunchOptions};
use crate::report::{JobRow, JobStatus, ReporterKind};
use crate::source::Sources;
use crate::store::CacheStore;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Run this one job: a job of the (processed) config, or a named invocation of a workflow.
    /// Without it, the workflow (--workflow, or the only one) runs.
    #[arg(value_name = "JOB")]
    pub job: Option<String>,

    /// Run this workflow as a DAG: each job starts as soon as what it requires has finished.
    #[arg(
        short = 'w',
        long = "workflow",
        value_name = "NAME",
        conflicts_with = "job"
    )]
    pub workflow: Option<String>,

    /// At most N nodes run at once [default: the number of CPUs].
    #[arg(short = 'j', long = "jobs", value_name = "N")]
    pub jobs: Option<usize>,

    /// Run only the jobs that failed or did not run in the workflow's latest run; the jobs
    /// that passed keep their results and workspace layers.
    #[arg(long = "rerun-failed", conflicts_with = "job")]
    pub rerun_failed: bool,

    /// Let approval jobs pass: all of them, or (repeatable) the one named.
    #[arg(long = "approve", value_name = "NAME", num_args = 0..=1, default_missing_value = "*")]
    pub approve: Vec<String>,

    /// The folder of context files: `context: NAME` reads NAME.env there [default:
    /// $XDG_CONFIG_HOME/localci/contexts, else ~/.config/localci/contexts]
    #[arg(long = "context-dir", value_name = "DIR")]
    pub context_dir: Option<PathBuf>,

    /// The config file [default: .circleci/config.yml of the current repository]
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// A variable for the jobs, like a project variable: KEY=VALUE, or KEY to pass on the
    /// value from your environment. Repeatable; wins over --env-file.
    #[arg(short = 'e', long = "env", value_name = "KEY[=VALUE]")]
    pub env: Vec<String>,

    /// A file of KEY=VALUE lines (# comments, optional `export`, optional quotes), read as
    /// project variables. Repeatable.
    #[arg(long = "env-file", value_name = "FILE")]
    pub env_file: Vec<PathBuf>,

    /// Keep the containers after the job, and print how to open a shell in the primary one.
    #[arg(long)]
    pub keep: bool,

    /// When a step fails, open an interactive shell in the job's primary container (the
    /// step's working directory, environment and shell); exiting it ends the job as failed.
    /// Needs a terminal.
    #[arg(long = "shell-on-fail", conflicts_with = "json")]
    pub shell_on_fail: bool,
    /// After the job, keep its containers and run its steps again whenever a file of the
    /// checkout changes, sending only what changed. Ctrl-C ends it (exit code of the last run).
    #[arg(long, conflicts_with_all = ["workflow", "rerun_failed"])]
    pub watch: bool,

    /// Run image TO wherever the config names image FROM (exact match). Repeatable.
    #[arg(long = "image-map", value_name = "FROM=TO")]
    pub image_map: Vec<String>,

    /// Where caches are stored [default: $LOCALCI_CACHE_DIR, else
    /// $XDG_CACHE_HOME/localci/<user>/<repo>/caches, else ~/.cache/localci/<user>/<repo>/caches]
    #[arg(long = "cache-dir", value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,

    /// Where store_artifacts and store_test_results copy files [default:
    /// .localci/runs/<run>/<job> in the repository]
    #[arg(long = "artifacts-dir", value_name = "DIR")]
    pub artifacts_dir: Option<PathBuf>,

    /// The local image `machine:` jobs run in: IMAGE for every one, or NAME=IMAGE for the
    /// CircleCI image NAME (`ubuntu-2204:2024.01.1`, `ubuntu-2204`, `default`). Repeatable;
    /// wins over the per-user config file ($LOCALCI_CONFIG, else
    /// ~/.config/localci/config.yml, `machine: images:`).
    #[arg(long = "machine-image", value_name = "[NAME=]IMAGE")]
    pub machine_image: Vec<String>,

    /// Mount the host's Docker socket into the primary container, so `setup_remote_docker`
    /// gives the job a Docker engine (the host's).
    #[arg(long = "docker-socket")]
    pub docker_socket: bool,

    /// Run only this node (CIRCLE_NODE_INDEX, 0-based) of a job [default: all its nodes].
    #[arg(long = "node-index", value_name = "N", requires = "job")]
    pub node_index: Option<u32>,

    /// CIRCLE_NODE_TOTAL [default: the job's `parallelism`].
    #[arg(long = "node-total", value_name = "M", requires = "job")]
    pub node_total: Option<u32>,

    /// Print the run as JSON events, one object per line (docs/events.md), instead of text.
    #[arg(long)]
    pub json: bool,

    /// Memory for each container, like `docker run --memory` (512m, 2g); no swap on top.
    #[arg(long, value_name = "SIZE", value_parser = engine::parse_memory)]
    pub memory: Option<i64>,

    /// CPUs for each container, like `docker run --cpus` (2, 0.5).
    #[arg(long, value_name = "N", value_parser = engine::parse_cpus)]
    pub cpus: Option<i64>,

    /// The most processes (and threads) each container may run at once.
    #[arg(long = "pids-limit", value_name = "N", value_parser = engine::parse_pids)]
    pub pids_limit: Option<i64>,

    /// Give each container the CPUs and memory CircleCI documents for the job's
    /// resource_class (medium when it has none); --memory and --cpus win.
    #[arg(long = "resource-class-limits")]
    pub resource_class_limits: bool,

    #[command(flatten)]
    pub compile: CompileArgs,
}

pub fn run(ctx: &Context, args: &Args) -> Outcome {
    if args.shell_on_fail && !engine::shell_on_fail_usable() {
        let d = Diagnostic::bare("--shell-on-fail needs a terminal, and standard input is not one")
            .with_hint("run it from an interactive terminal, or use --keep and `docker exec -it` into the kept container");
        output::stderr(&diagnostic::render_message(&d, ctx.color));
        return Outcome::Invalid;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            errln!("error: cannot start the async runtime: {e}");
            return Outcome::Environment;
        }
    };
    let outcome = runtime.block_on(execute(ctx, args));
    // Everything of the run has been awaited; what is left (idle connections, a finished
    // watcher's thread) need not hold up the exit.
    runtime.shutdown_background();
    match outcome {
        // 130 after SIGINT, 143 after SIGTERM.
        Outcome::Interrupted => engine::interrupted(),
        outcome => outcome,
    }
}

async fn execute(ctx: &Context, args: &Args) -> Outcome {
    // First of all, so that a Ctrl-C at any later point is ours to handle.
    let cancel = match engine::cancel_on_signals() {
        Ok(token) => token,
        Err(e) => {
            errln!("error: cannot handle Ctrl-C: {e}");
            return Outcome::Environment;
        }
    };
    if let Err(e) = engine::hold::hold_at(ctx.env.get(engine::hold::ENV).map(String::as_str)) {
        errln!("error: {e}");
        return Outcome::Invalid;
    }
    crate::trace::init(ctx.env.get(crate::trace::ENV).map(String::as_str));
    let began = std::time::Instant::now();
    // Connecting (and negotiating the API version) overlaps with loading and planning.
    let env = ctx.env.clone();
    let connecting = tokio::spawn(async move {
        let start = std::time::Instant::now();
        let connected = DockerBackend::connect(env).await;
        crate::trace::span("connect", "", start);
        connected
    });
    let front = match frontend::compile(&front_options(ctx, args)) {
        Ok(front) => front,
        Err(failure) => return invalid(ctx, &failure.sources, failure.diagnostics),
    };
    if !front.warnings.is_empty() {
        output::stderr(&diagnostic::render_human(
            &front.sources,
            &front.warnings,
            ctx.color,
        ));
    }
    let prepared = match launch_options(ctx, args).and_then(|o| launch::prepare(&front, &o)) {
        Ok(prepared) => prepared,
        Err(diags) => return invalid(ctx, &front.sources, diags),
    };
    crate::trace::span("front-end", "load, compile, plan", began);
    if let Some(why) = &prepared.nothing {
        // With --json, stdout carries only events.
        if args.json {
            errln!("{why}");
        } else {
            outln!("{why}");
        }
        return Outcome::Success;
    }
    // Resource limits: a class without a documented size is a usage error, before Docker.
    let flags = engine::Limits {
        memory: args.memory,
        nano_cpus: args.cpus,
        pids: args.pids_limit,
    };
    let unknown = prepared
        .jobs
        .iter()
        .flat_map(|j| &j.nodes)
        .find_map(|(plan, _)| {
            engine::job_limits(
                flags,
                args.resource_class_limits,
                plan.resource_class.as_deref(),
                plan.machine.is_some(),
            )
            .err()
        });
    if let Some(e) = unknown {
        let d = Diagnostic::bare(e.to_string()).with_hint("or give --memory and --cpus");
        output::stderr(&diagnostic::render_message(&d, ctx.color));
        return Outcome::Invalid;
    }
    let connected = tokio::select! {
        () = cancel.cancelled() => return Outcome::Interrupted,
        connected = connecting => connected,
    };
    let backend = match connected {
        Ok(Ok(backend)) => crate::backend::traced::wrap(Arc::new(backend)),
        Ok(Err(e)) => return report_error(ctx, &EngineError::Backend(e)),
        Err(e) => {
            errln!("error: connecting to Docker failed: {e}");
            return Outcome::Environment;
        }
    };
    let engine_options = EngineOptions {
        limits: flags,
        class_limits: args.resource_class_limits,
        keep: args.keep,
        docker_socket: args.docker_socket,
        shell_on_fail: args
            .shell_on_fail
            .then(engine::ShellOnFail::on_this_terminal),
        artifacts_dir: PathBuf::new(),
        cache_dir: cache_dir(ctx, args, &front.repo),
    };
    let schedule = Schedule {
        max_parallel: args.jobs.unwrap_or_else(default_parallel),
        approvals: approvals(&args.approve),
    };
    let kind = reporter_kind(ctx, args, !prepared.single);
    let (store, run_id) = (prepared.store.clone(), prepared.run.id.clone());
    let logs: crate::report::LogPaths =
        Box::new(move |job| store.open_log(&run_id, &job.name, job.node).ok());
    let (tx, reporter) = crate::report::spawn_with_logs(std::io::stdout(), kind, Some(logs));
    // Project and context variables are secrets: masked in everything the run prints.
    let secrets: Vec<String> = prepared
        .jobs
        .iter()
        .flat_map(|j| &j.nodes)
        .flat_map(|(plan, _)| plan.environment.project.iter().map(|(_, v)| v.clone()))
        .collect();
    let tx = tx.masking(secrets.iter().map(String::as_str));
    let running = std::time::Instant::now();
    let result = launch::run(
        prepared,
        backend,
        engine_options,
        schedule,
        tx,
        cancel.clone(),
    )
    .await;
    crate::trace::span("run", "", running);
    let reporting = std::time::Instant::now();
    let _ = reporter.await;
    crate::trace::span("report", "the reporter's last lines", reporting);
    crate::trace::span("execute", "", began);
    match result {
        // --watch: Ctrl-C is how a watch ends; the last run's result is the exit code.
        Ok(rows) => outcome(&rows, cancel.is_cancelled() && !args.watch),
        Err(e) => report_error(ctx, &e),
    }
}

/// 0 when every job that ran passed (held and filtered jobs are not failures), 1 when one
/// failed, 130 after Ctrl-C.
fn outcome(rows: &[JobRow], interrupted: bool) -> Outcome {
    if interrupted || rows.iter().any(|r| r.status == JobStatus::Canceled) {
        return Outcome::Interrupted;
    }
    if rows
        .iter()
        .any(|r| matches!(r.status, JobStatus::Failed | JobStatus::NotRun(_)))
    {
        return Outcome::JobFailed;
    }
    Outcome::Success
}

/// JSON events with `--json`, else text with the live view when stderr is a terminal; a
/// workflow's lines are attributed to their jobs.
fn reporter_kind(ctx: &Context, args: &Args, multi_job: bool) -> ReporterKind {
    if args.json {
        return ReporterKind::Json;
    }
    ReporterKind::Terminal {
        color: ctx.color,
        live: std::io::stderr().is_terminal(),
        multi_job,
    }
}

fn default_parallel() -> usize {
    std::thread::available_parallelism().map_or(2, std::num::NonZero::get)
}

fn approvals(given: &[String]) -> Approvals {
    Approvals {
        all: given.iter().any(|n| n == "*"),
        names: given.iter().filter(|n| *n != "*").cloned().collect(),
    }
}

fn front_options(ctx: &Context, args: &Args) -> FrontOptions {
    args.compile.front_options(ctx, args.config.clone(), true)
}

fn launch_options(ctx: &Context, args: &Args) -> Result<LaunchOptions, Vec<Diagnostic>> {
    let mut project_env = Vec::new();
    for env_file in &args.env_file {
        project_env.extend(launch::read_env_file(&ctx.cwd.join(env_file)).map_err(|d| vec![d])?);
    }
    for item in &args.env {
        project_env.push(launch::parse_env_arg(item, &ctx.env).map_err(|d| vec![d])?);
    }
    let image_map = args
        .image_map
        .iter()
        .map(|m| parse_image_map(m))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|d| vec![d])?;
    Ok(LaunchOptions {
        job: args.job.clone(),
        workflow: args.workflow.clone(),
        rerun_failed: args.rerun_failed,
        node_index: args.node_index,
        node_total: args.node_total,
        project_env,
        image_map,
        context_dir: launch::context_dir(
            args.context_dir
                .as_ref()
                .map(|d| ctx.cwd.join(d))
                .as_deref(),
            &ctx.env,
        ),
        artifacts_dir: args.artifacts_dir.as_ref().map(|d| ctx.cwd.join(d)),
        username: ctx
            .env
            .get("USER")
            .or_else(|| ctx.env.get("LOGNAME"))
            .cloned()
            .unwrap_or_else(|| "localci".into()),
        keep: args.keep,
        machine_images: launch::machine_images(&args.machine_image, &launch::config_file(&ctx.env))
            .map_err(|d| vec![d])?,
        watch: args.watch,
    })
}

fn invalid(ctx: &Context, sources: &Sources, mut diags: Vec<Diagnostic>) -> Outcome {
    diagnostic::sort(&mut diags);
    output::stderr(&diagnostic::render_human(sources, &diags, ctx.color));
    Outcome::Invalid
}

fn parse_image_map(item: &str) -> Result<(String, String), Diagnostic> {
    match item.split_once('=') {
        Some((from, to)) if !from.is_empty() && !to.is_empty() => Ok((from.into(), to.into())),
        _ => Err(
            Diagnostic::bare(format!("--image-map {item}: expected FROM=TO"))
                .with_hint("for example --image-map cimg/python:3.12=my/python:local"),
        ),
    }
}

/// `--cache-dir`, else `$LOCALCI_CACHE_DIR`, else the project's default (as `localci cache`
/// resolves it, without asking git again).
fn cache_dir(ctx: &Context, args: &Args, repo: &crate::git::RepoInfo) -> PathBuf {
    if let Some(dir) = &args.cache_dir {
        return ctx.cwd.join(dir);
    }
    if let Some(dir) = ctx.env.get("LOCALCI_CACHE_DIR").filter(|d| !d.is_empty()) {
        return ctx.cwd.join(dir);
    }
    let (user, name) = repo.project_slug();
    CacheStore::default_dir(&ctx.env, &format!("{user}/{name}"))
}

fn report_error(ctx: &Context, e: &EngineError) -> Outcome {
    let d = match e {
        EngineError::Backend(BackendError::Unreachable { host, .. }) => {
            Diagnostic::bare(e.to_string()).with_hint(BackendError::unreachable_hint(host))
        }
        EngineError::Images(images) => Diagnostic::bare(e.to_string()).with_hint(images.hint()),
        EngineError::Setup(_) => Diagnostic::bare(e.to_string()),
        EngineError::Machine(m) => Diagnostic::bare(e.to_string()).with_hint(m.hint()),
        EngineError::Backend(BackendError::Lost { .. }) => {
            Diagnostic::bare(format!("{e}; the job could not finish"))
                .with_hint("check that Docker is running (`docker info`), then run the job again")
        }
        EngineError::Backend(BackendError::TooLarge { .. }) => Diagnostic::bare(e.to_string())
            .with_hint("check that DOCKER_HOST (or the Docker context) points at a Docker Engine"),
        EngineError::Backend(_) => Diagnostic::bare(format!("Docker failed: {e}")),
    };
    output::stderr(&diagnostic::render_message(&d, ctx.color));
    Outcome::Environment
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_of_a_run() {
        let row = |status| JobRow {
            job: "a".into(),
            status,
            duration: None,
            tests: None,
        };
        assert_eq!(
            outcome(
                &[row(JobStatus::Success), row(JobStatus::OnHold("x".into()))],
                false
            ),
            Outcome::Success
        );
        assert_eq!(
            outcome(
                &[row(JobStatus::Success), row(JobStatus::Skipped("x".into()))],
                false
            ),
            Outcome::Success
        );
        assert_eq!(
            outcome(
                &[row(JobStatus::Failed), row(JobStatus::NotRun("x".into()))],
                false
            ),
            Outcome::JobFailed
        );
        assert_eq!(
            outcome(&[row(JobStatus::Success)], true),
            Outcome::Interrupted
        );
    }

    #[test]
    fn approvals_all_or_by_name() {
        assert!(approvals(&["*".into()]).all);
        let some = approvals(&["hold".into()]);
        assert!(!some.all);
        assert_eq!(some.names, ["hold"]);
    }
}
