//! `localci execute <job>`: load, validate, compile (2.1), plan one job, then run it in Docker
//! through the engine, with one reporter printing its events. Turns every way this can end
//! into an [`Outcome`]: 0 passed, 1 failed, 2 invalid config or usage, 3 Docker unreachable
//! or an image missing, 130 interrupted.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::Context;
use super::compile::CompileArgs;
use super::output::{self, errln, outln};
use crate::backend::BackendError;
use crate::backend::docker::DockerBackend;
use crate::diagnostic::{self, Diagnostic};
use crate::engine::{self, EngineError, EngineOptions, JobStatus};
use crate::exit::Outcome;
use crate::git::RepoInfo;
use crate::plan::{Plan, PlanOptions};
use crate::source::{FileId, Sources};
use crate::store::CacheStore;
use crate::yaml::Node;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The job to run: a job of the (processed) config, or a named invocation of a workflow.
    #[arg(value_name = "JOB")]
    pub job: String,

    /// The config file [default: .circleci/config.yml of the current repository]
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// A variable for the job, like a project variable: KEY=VALUE, or KEY to pass on the value
    /// from your environment. Repeatable; wins over --env-file.
    #[arg(short = 'e', long = "env", value_name = "KEY[=VALUE]")]
    pub env: Vec<String>,

    /// A file of KEY=VALUE lines (# comments, optional `export`, optional quotes), read as
    /// project variables. Repeatable.
    #[arg(long = "env-file", value_name = "FILE")]
    pub env_file: Vec<PathBuf>,

    /// Keep the containers after the job, and print how to open a shell in the primary one.
    #[arg(long)]
    pub keep: bool,

    /// Run image TO wherever the config names image FROM (exact match). Repeatable.
    #[arg(long = "image-map", value_name = "FROM=TO")]
    pub image_map: Vec<String>,

    /// Where caches are stored [default: $LOCALCI_CACHE_DIR, else
    /// $XDG_CACHE_HOME/localci/<user>/<repo>/caches, else ~/.cache/localci/<user>/<repo>/caches]
    #[arg(long = "cache-dir", value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,

    /// Where store_artifacts and store_test_results copy files [default:
    /// .localci/artifacts/<job> in the repository]
    #[arg(long = "artifacts-dir", value_name = "DIR")]
    pub artifacts_dir: Option<PathBuf>,

    /// Mount the host's Docker socket into the primary container, so `setup_remote_docker`
    /// gives the job a Docker engine (the host's).
    #[arg(long = "docker-socket")]
    pub docker_socket: bool,

    /// CIRCLE_NODE_INDEX of this run (0-based).
    #[arg(long = "node-index", value_name = "N", default_value_t = 0)]
    pub node_index: u32,

    /// CIRCLE_NODE_TOTAL of this run.
    #[arg(long = "node-total", value_name = "M", default_value_t = 1)]
    pub node_total: u32,

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
    runtime.block_on(execute(ctx, args))
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
    // Connecting (and negotiating the API version) overlaps with loading and planning.
    let connecting = tokio::spawn(DockerBackend::connect(ctx.env.clone()));
    let mut sources = Sources::new();
    let path = match crate::load::find_config(args.config.as_deref(), &ctx.cwd) {
        Ok(path) => path,
        Err(d) => {
            output::stderr(&diagnostic::render_human(&sources, &[d], ctx.color));
            return Outcome::Invalid;
        }
    };
    // The repository is the one that holds the config, wherever localci runs from.
    let repo = args.compile.repo(&super::compile::config_dir(ctx, &path));
    let planned = match plan_job(ctx, args, &path, &repo, &mut sources) {
        Ok(plan) => plan,
        Err(mut diags) => {
            diagnostic::sort(&mut diags);
            output::stderr(&diagnostic::render_human(&sources, &diags, ctx.color));
            return Outcome::Invalid;
        }
    };
    let plan = match planned {
        Plan::Run(plan) => *plan,
        Plan::Nothing(why) => {
            outln!("{why}");
            return Outcome::Success;
        }
    };
    let connected = tokio::select! {
        () = cancel.cancelled() => return Outcome::Interrupted,
        connected = connecting => connected,
    };
    let backend = match connected {
        Ok(Ok(backend)) => Arc::new(backend),
        Ok(Err(e)) => return report_error(ctx, &EngineError::Backend(e)),
        Err(e) => {
            errln!("error: connecting to Docker failed: {e}");
            return Outcome::Environment;
        }
    };
    let flags = engine::Limits {
        memory: args.memory,
        nano_cpus: args.cpus,
        pids: args.pids_limit,
    };
    let limits = match engine::job_limits(
        flags,
        args.resource_class_limits,
        plan.resource_class.as_deref(),
    ) {
        Ok(limits) => limits,
        Err(e) => {
            let d = Diagnostic::bare(e.to_string()).with_hint("or give --memory and --cpus");
            output::stderr(&diagnostic::render_message(&d, ctx.color));
            return Outcome::Invalid;
        }
    };
    let root = repo.root.clone().unwrap_or_else(|| ctx.cwd.clone());
    let options = EngineOptions {
        limits,
        keep: args.keep,
        docker_socket: args.docker_socket,
        artifacts_dir: args.artifacts_dir.clone().unwrap_or_else(|| {
            root.join(".localci")
                .join("artifacts")
                .join(folder_name(&plan.name))
        }),
        cache_dir: cache_dir(ctx, args, &repo),
    };
    let (tx, reporter) = crate::report::spawn(
        std::io::stdout(),
        ctx.color,
        std::io::stderr().is_terminal(),
    );
    let result = engine::run_job(backend, plan, options, tx, cancel).await;
    let _ = reporter.await;
    match result {
        Ok(JobStatus::Passed) => Outcome::Success,
        Ok(JobStatus::Failed) => Outcome::JobFailed,
        Ok(JobStatus::Interrupted) => Outcome::Interrupted,
        Err(e) => report_error(ctx, &e),
    }
}

/// A job name as one safe folder name: a name like `../x` or `a/b` (legal in a workflow
/// `name:`) must not lead the artifacts out of `.localci/artifacts`.
fn folder_name(job: &str) -> String {
    let name: String = job
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || "-_.+@".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    if name.chars().all(|c| c == '.') {
        name.replace('.', "_")
    } else {
        name
    }
}

/// Load -> parse -> validate -> process (2.1) -> typed config -> plan.
fn plan_job(
    ctx: &Context,
    args: &Args,
    path: &Path,
    repo: &RepoInfo,
    sources: &mut Sources,
) -> Result<Plan, Vec<Diagnostic>> {
    let file = crate::load::load(sources, path).map_err(|d| vec![d])?;
    let node = crate::yaml::parse(sources.get(file), file).map_err(|d| vec![d])?;
    let diags =
        crate::validate::validate(sources, file, &node, &crate::validate::Options::default());
    if diags.iter().any(Diagnostic::is_error) {
        return Err(diags);
    }
    let processed = if crate::config::is_version_2_1(&node) {
        process_config(sources, file, &node, ctx, args)?
    } else {
        node
    };
    let config = crate::config::parse(&processed)?;
    let mut project_env = Vec::new();
    for env_file in &args.env_file {
        project_env.extend(read_env_file(&ctx.cwd.join(env_file)).map_err(|d| vec![d])?);
    }
    for item in &args.env {
        project_env.push(parse_env_arg(item, ctx).map_err(|d| vec![d])?);
    }
    let image_map = args
        .image_map
        .iter()
        .map(|m| parse_image_map(m))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|d| vec![d])?;
    let options = PlanOptions {
        repo: repo.clone(),
        branch: args.compile.branch.clone(),
        node_index: args.node_index,
        node_total: args.node_total,
        project_env,
        image_map,
        bash_env: engine::bash_env_path(engine::now_unix()),
    };
    crate::plan::plan(&config, &args.job, &options).map_err(|d| vec![d])
}

/// Compiles a version 2.1 config to its 2.0 form (the `process` stage), keeping the jobs that
/// no workflow invokes so that any job can be run.
fn process_config(
    sources: &mut Sources,
    file: FileId,
    node: &Node,
    ctx: &Context,
    args: &Args,
) -> Result<Node, Vec<Diagnostic>> {
    let path = sources.get(file).path().to_path_buf();
    let mut options = args.compile.options(ctx, &path)?;
    options.all_jobs = true;
    let processed = crate::process::process(sources, file, node, &options)?;
    if !processed.warnings.is_empty() {
        output::stderr(&diagnostic::render_human(
            sources,
            &processed.warnings,
            ctx.color,
        ));
    }
    Ok(processed.config)
}

/// `-e KEY=VALUE`, or `-e KEY` taking the value from the caller's environment.
fn parse_env_arg(item: &str, ctx: &Context) -> Result<(String, String), Diagnostic> {
    if let Some((key, value)) = item.split_once('=') {
        if valid_name(key) {
            return Ok((key.to_string(), value.to_string()));
        }
    } else if valid_name(item) {
        return match ctx.env.get(item) {
            Some(value) => Ok((item.to_string(), value.clone())),
            None => Err(Diagnostic::bare(format!(
                "-e {item}: {item} is not set in your environment"
            ))
            .with_hint(format!(
                "export {item}=... first, or pass the value: -e {item}=VALUE"
            ))),
        };
    }
    Err(
        Diagnostic::bare(format!("-e {item}: not a variable assignment"))
            .with_hint("write -e NAME=VALUE, or -e NAME to pass on NAME from your environment"),
    )
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Reads `KEY=VALUE` lines; `#` comments, blank lines, `export ` and matching quotes allowed.
fn read_env_file(path: &Path) -> Result<Vec<(String, String)>, Diagnostic> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Diagnostic::bare(format!("cannot read the env file {}: {e}", path.display()))
            .with_hint("check the path given to --env-file")
    })?;
    let mut vars = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line).trim_start();
        let parsed = line
            .split_once('=')
            .filter(|(k, _)| valid_name(k.trim()))
            .map(|(k, v)| (k.trim().to_string(), unquote(v.trim()).to_string()));
        match parsed {
            Some(pair) => vars.push(pair),
            None => {
                return Err(Diagnostic::bare(format!(
                    "{}:{}: `{line}` is not NAME=VALUE",
                    path.display(),
                    n + 1
                ))
                .with_hint("env files hold one NAME=VALUE per line; # starts a comment"));
            }
        }
    }
    Ok(vars)
}

fn unquote(v: &str) -> &str {
    for q in ['"', '\''] {
        if v.len() >= 2 && v.starts_with(q) && v.ends_with(q) {
            return &v[1..v.len() - 1];
        }
    }
    v
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
fn cache_dir(ctx: &Context, args: &Args, repo: &RepoInfo) -> PathBuf {
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
        EngineError::Backend(BackendError::Unreachable { .. }) => Diagnostic::bare(e.to_string())
            .with_hint("start Docker, or point DOCKER_HOST at a running engine (unix:///path/to/docker.sock or tcp://host:2375)"),
        EngineError::Image { .. } => Diagnostic::bare(e.to_string()).with_hint(image_hint(e)),
        EngineError::Setup(_) => Diagnostic::bare(e.to_string()),
        EngineError::Backend(BackendError::Lost { .. }) => Diagnostic::bare(format!(
            "{e}; the job could not finish"
        ))
        .with_hint("check that Docker is running (`docker info`), then run the job again"),
        EngineError::Backend(_) => Diagnostic::bare(format!("Docker failed: {e}")),
    };
    output::stderr(&diagnostic::render_message(&d, ctx.color));
    Outcome::Environment
}

/// What to do about an image that could not be pulled: fix the credentials when the registry
/// refused them, else pull or build it; in every case `--image-map` runs a local image instead.
fn image_hint(e: &EngineError) -> String {
    let EngineError::Image {
        image,
        mapped_from,
        reason,
        with_auth,
        unset,
    } = e
    else {
        return String::new();
    };
    let original = mapped_from.as_deref().unwrap_or(image);
    let map = format!("--image-map {original}=<local image>");
    let refused = [
        "unauthorized",
        "authentication required",
        "no basic auth credentials",
    ]
    .iter()
    .any(|word| reason.to_lowercase().contains(word));
    if !refused {
        return format!(
            "pull or build it yourself (docker pull {image}), or run a local image in its place: {map}"
        );
    }
    let fix = if !with_auth {
        "the registry wants credentials: give the image `auth: {username: $USER_VAR, password: $PASS_VAR}` in the config and the variables with -e or --env-file".to_string()
    } else if unset.is_empty() {
        "the registry refused the image's `auth` credentials: check the username and password (their $VARs come from -e and --env-file)".to_string()
    } else {
        let names: Vec<String> = unset.iter().map(|n| format!("${n}")).collect();
        format!(
            "the registry refused the image's `auth` credentials; {} used there {} not set: give {} with -e NAME=VALUE or --env-file",
            names.join(", "),
            if names.len() == 1 { "is" } else { "are" },
            if names.len() == 1 { "it" } else { "them" },
        )
    };
    format!("{fix}; or run a local image in its place: {map}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> Context {
        Context {
            cwd: PathBuf::from("."),
            color: false,
            env: [("TOKEN".to_string(), "secret".to_string())].into(),
        }
    }

    fn image_error(reason: &str, with_auth: bool, unset: &[&str]) -> EngineError {
        EngineError::Image {
            image: "127.0.0.1:5000/app:1".into(),
            mapped_from: None,
            reason: reason.into(),
            with_auth,
            unset: unset.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn image_hints_point_at_the_credentials_only_when_the_registry_refused_them() {
        let missing = image_hint(&image_error("manifest unknown", true, &[]));
        assert!(
            missing.starts_with("pull or build it yourself (docker pull 127.0.0.1:5000/app:1)")
        );
        let refused = image_hint(&image_error(
            "unauthorized: authentication required",
            true,
            &[],
        ));
        assert!(refused.starts_with("the registry refused the image's `auth` credentials: check"));
        let unset = image_hint(&image_error("unauthorized: x", true, &["REG_PASS"]));
        assert!(
            unset.contains("$REG_PASS used there is not set: give it with -e"),
            "{unset}"
        );
        let none = image_hint(&image_error("no basic auth credentials", false, &[]));
        assert!(none.starts_with("the registry wants credentials: give the image `auth:"));
        for hint in [missing, refused, unset, none] {
            assert!(
                hint.ends_with("--image-map 127.0.0.1:5000/app:1=<local image>"),
                "{hint}"
            );
        }
    }

    #[test]
    fn env_args() {
        assert_eq!(
            parse_env_arg("A=b=c", &ctx()).unwrap(),
            ("A".into(), "b=c".into())
        );
        assert_eq!(
            parse_env_arg("TOKEN", &ctx()).unwrap(),
            ("TOKEN".into(), "secret".into())
        );
        assert!(
            parse_env_arg("MISSING", &ctx())
                .unwrap_err()
                .message
                .contains("not set")
        );
        assert!(parse_env_arg("1X=2", &ctx()).is_err());
    }

    #[test]
    fn env_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".env");
        std::fs::write(&path, "# c\n\nexport A=1\nB=\"two words\"\nC='x'\n").unwrap();
        assert_eq!(
            read_env_file(&path).unwrap(),
            vec![
                ("A".into(), "1".into()),
                ("B".into(), "two words".into()),
                ("C".into(), "x".into())
            ]
        );
        std::fs::write(&path, "A=1\nnope\n").unwrap();
        assert!(
            read_env_file(&path)
                .unwrap_err()
                .message
                .ends_with(":2: `nope` is not NAME=VALUE")
        );
    }

    #[test]
    fn job_names_cannot_leave_the_artifacts_folder() {
        assert_eq!(folder_name("../../etc"), ".._.._etc");
        assert_eq!(folder_name(".."), "__");
        assert_eq!(folder_name("a/b"), "a_b");
        assert_eq!(folder_name("test-3.12"), "test-3.12");
    }
}
