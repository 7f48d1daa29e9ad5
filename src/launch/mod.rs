//! `localci execute` as a library call: from the front end's [`Front`] and the options of a
//! run to a prepared run (every job and node planned, contexts loaded, workspaces and the run
//! folder decided, all before Docker), then the run itself through the engine's session and
//! scheduler, and its record in `.localci/runs/`. One job alone (`execute <job>`) is a run of
//! that job's nodes; a workflow is a run of its DAG.

mod env;
mod machine;
mod watch;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

pub use env::{context_dir, load_contexts, parse_env_arg, read_env_file};
pub use machine::{config_file, machine_images};

use crate::backend::Backend;
use crate::config::{Config, StepKind};
use crate::diagnostic::Diagnostic;
use crate::engine::{
    self, EngineError, EngineOptions, JobSettings, RunInfo, Schedule, ScheduledJob, Session,
};
use crate::frontend::Front;
use crate::plan::{
    self, JobPlan, Plan, PlanOptions, PlannedJob, PlannedKind, WorkflowPlan, choose_workflow,
    plan_workflow,
};
use crate::report::{JobRow, JobStatus, Sink};
use crate::steps::{UpstreamLayers, Workspace};
use crate::store::runs::{JobRecord, RunRecord, RunStore};

/// What the command line asks of a run (not clap's arguments).
#[derive(Clone, Debug, Default)]
pub struct LaunchOptions {
    /// `execute <job>`: one job (all its nodes, or `node_index`).
    pub job: Option<String>,
    /// `--workflow`: the workflow to run (the only one when neither this nor `job` is given).
    pub workflow: Option<String>,
    /// `--rerun-failed`: reuse the jobs that passed in the workflow's latest run.
    pub rerun_failed: bool,
    /// `--node-index`: run only this node of a parallel job.
    pub node_index: Option<u32>,
    /// `--node-total`: the node count [default: the job's `parallelism`].
    pub node_total: Option<u32>,
    /// `--env-file` then `-e` values, as project variables.
    pub project_env: Vec<(String, String)>,
    pub image_map: Vec<(String, String)>,
    /// Where `context: NAME` files (`NAME.env`) are.
    pub context_dir: PathBuf,
    /// `--artifacts-dir`: instead of the run's folder.
    pub artifacts_dir: Option<PathBuf>,
    /// `CIRCLE_USERNAME`.
    pub username: String,
    pub keep: bool,
    /// `--machine-image` and the per-user file: the local images of `machine:` jobs.
    pub machine_images: plan::MachineImages,
    /// `--watch`: rerun the job's steps in its containers when a file of the checkout changes.
    pub watch: bool,
}

/// A run decided down to every node, ready for the engine.
pub struct Prepared {
    pub run: RunInfo,
    pub store: RunStore,
    pub record: RunRecord,
    pub jobs: Vec<ScheduledJob>,
    /// One job alone: no workflow table or per-job prefixes are needed.
    pub single: bool,
    /// A job that by definition does nothing (`type: no-op`): why.
    pub nothing: Option<String>,
    /// `--watch`: the repository whose checkout files are watched.
    pub watch: Option<PathBuf>,
}

/// Plans the run. Errors are usage or config problems (exit 2).
pub fn prepare(front: &Front, options: &LaunchOptions) -> Result<Prepared, Vec<Diagnostic>> {
    let mut prepared = prepare_run(front, options)?;
    if options.watch && prepared.nothing.is_none() {
        prepared.watch = Some(watch::check(front, &prepared)?);
    }
    Ok(prepared)
}

fn prepare_run(front: &Front, options: &LaunchOptions) -> Result<Prepared, Vec<Diagnostic>> {
    let root = front
        .repo
        .root
        .clone()
        .unwrap_or_else(|| front.path.parent().unwrap_or(Path::new(".")).to_path_buf());
    let store = RunStore::new(&root);
    store.sweep_staging();
    let history = store.records();
    let run = RunInfo::new(options.keep);
    let left_out = match (&options.job, &options.workflow) {
        (Some(job), None) => front.unavailable(job, false),
        (None, Some(workflow)) => front.unavailable(workflow, true),
        _ => None,
    };
    if let Some(why) = left_out {
        return Err(vec![why.clone()]);
    }
    match (&options.job, &options.workflow) {
        (Some(job), None) => prepare_job(front, options, (store, &history), run, job),
        (Some(_), Some(_)) => Err(vec![
            Diagnostic::bare("give a job or --workflow, not both").with_hint(
                "localci execute <job> runs one job; localci execute --workflow <name> runs a workflow",
            ),
        ]),
        (None, workflow) => {
            if workflow.is_none() && front.config.workflows.is_empty() {
                return default_build_job(front, options, (store, &history), run);
            }
            prepare_workflow(front, options, (store, &history), run, workflow.as_deref())
        }
    }
}

/// A config without workflows runs its `build` job (CircleCI's default workflow).
fn default_build_job(
    front: &Front,
    options: &LaunchOptions,
    store: (RunStore, &[RunRecord]),
    run: RunInfo,
) -> Result<Prepared, Vec<Diagnostic>> {
    if front.config.jobs.contains_key("build") {
        return prepare_job(front, options, store, run, "build");
    }
    let names: Vec<&str> = front.config.jobs.keys().map(String::as_str).collect();
    Err(vec![
        Diagnostic::bare("the config has no workflows and no `build` job").with_hint(format!(
            "name a job: localci execute <job> ({})",
            names.join(", ")
        )),
    ])
}

fn prepare_workflow(
    front: &Front,
    options: &LaunchOptions,
    (store, history): (RunStore, &[RunRecord]),
    run: RunInfo,
    workflow: Option<&str>,
) -> Result<Prepared, Vec<Diagnostic>> {
    let wf = choose_workflow(&front.config, workflow).map_err(|d| vec![d])?;
    let plan = plan_workflow(&front.config, wf, &front.build())?;
    let previous = if options.rerun_failed {
        let found = latest_of(history, &wf.name);
        Some(found.ok_or_else(|| {
            vec![
                Diagnostic::bare(format!(
                    "--rerun-failed: no earlier run of workflow `{}` in {}",
                    wf.name,
                    store.run_dir("").display()
                ))
                .with_hint(format!(
                    "run it first: localci execute --workflow {}",
                    wf.name
                )),
            ]
        })?)
    } else {
        None
    };
    let workspace_id = previous
        .as_ref()
        .map_or_else(|| run.id.clone(), |p| p.workspace_id.clone());
    let mut record = RunRecord {
        id: run.id.clone(),
        workflow: Some(wf.name.clone()),
        started: engine::now_unix(),
        started_ms: engine::now_unix_ms(),
        branch: front.repo.branch.clone(),
        tag: front.repo.tag.clone(),
        workspace_id: workspace_id.clone(),
        jobs: BTreeMap::new(),
    };
    let layers = layer_dirs(&plan, &store, &run, previous.as_ref());
    let mut jobs = Vec::new();
    let mut diags = Vec::new();
    for planned in &plan.jobs {
        let reused = previous.as_ref().and_then(|p| {
            let done = p.jobs.get(&planned.name)?;
            (done.status == "success").then(|| (p.id.clone(), done.clone()))
        });
        if let Some((_, done)) = &reused {
            record.jobs.insert(planned.name.clone(), done.clone());
        }
        let runs =
            planned.skipped.is_none() && planned.kind == PlannedKind::Build && reused.is_none();
        let nodes = if runs {
            let facts = JobFacts {
                run: &run,
                store: &store,
                history,
                workspace_id: &workspace_id,
                workspace: Some(workspace_for(&plan, planned, &layers, None)),
            };
            match plan_nodes(front, options, &facts, planned, None) {
                Ok(nodes) => nodes,
                Err(d) => {
                    diags.push(d);
                    Vec::new()
                }
            }
        } else {
            Vec::new()
        };
        jobs.push(ScheduledJob {
            planned: planned.clone(),
            nodes,
            reused_from: reused.map(|(id, _)| id),
        });
    }
    if !diags.is_empty() {
        return Err(diags);
    }
    Ok(Prepared {
        run,
        store,
        record,
        jobs,
        single: false,
        nothing: None,
        watch: None,
    })
}

/// Every job's layers folder: this run's, or (for a job reused by `--rerun-failed`) the one
/// of the run where it passed.
fn layer_dirs(
    plan: &WorkflowPlan,
    store: &RunStore,
    run: &RunInfo,
    previous: Option<&RunRecord>,
) -> BTreeMap<String, PathBuf> {
    plan.jobs
        .iter()
        .map(|j| {
            let earlier = previous
                .and_then(|p| p.jobs.get(&j.name))
                .filter(|r| r.status == "success")
                .and_then(|r| r.layers.clone());
            let dir = earlier.unwrap_or_else(|| store.layers_dir(&run.id, &j.name));
            (j.name.clone(), dir)
        })
        .collect()
}

/// The workspace a job of `plan` sees: its own layers folder and its upstream jobs' ones.
fn workspace_for(
    plan: &WorkflowPlan,
    job: &PlannedJob,
    layers: &BTreeMap<String, PathBuf>,
    from_run: Option<String>,
) -> Workspace {
    Workspace {
        layers_dir: layers.get(&job.name).cloned().unwrap_or_default(),
        node: 0,
        upstream: job
            .upstream
            .iter()
            .filter_map(|u| {
                Some(UpstreamLayers {
                    job: u.clone(),
                    dir: layers.get(u)?.clone(),
                    ancestors: plan
                        .get(u)
                        .map(|p| p.upstream.iter().cloned().collect::<BTreeSet<_>>())
                        .unwrap_or_default(),
                })
            })
            .collect(),
        from_run,
    }
}

/// What every node plan of one run shares.
struct JobFacts<'a> {
    run: &'a RunInfo,
    store: &'a RunStore,
    /// The earlier runs' records, newest first, read once for the whole run.
    history: &'a [RunRecord],
    workspace_id: &'a str,
    workspace: Option<Workspace>,
}

/// One plan per node of `planned` (or only `only_node`), with the run's built-in variables,
/// its contexts, its folders and its workspace.
fn plan_nodes(
    front: &Front,
    options: &LaunchOptions,
    facts: &JobFacts<'_>,
    planned: &PlannedJob,
    only_node: Option<u32>,
) -> Result<Vec<(JobPlan, JobSettings)>, Diagnostic> {
    let key = planned.job.as_deref().unwrap_or(&planned.name);
    let def = front
        .config
        .jobs
        .get(key)
        .ok_or_else(|| Diagnostic::bare(format!("`{key}` is not a job of the config")))?;
    let total = options.node_total.unwrap_or(planned.parallelism).max(1);
    let context_env = load_contexts(&planned.context, &options.context_dir, &planned.name)?;
    let build_num = facts.store.next_build_num().map_err(|e| {
        Diagnostic::bare(format!(
            "cannot count builds in {}: {e}",
            facts.store.run_dir("").display()
        ))
    })?;
    let job_id = engine::random_uuid();
    let agent_files = timings(facts.history, &planned.name);
    let nodes: Vec<u32> = match only_node {
        Some(n) => vec![n],
        None => (0..total).collect(),
    };
    let mut out = Vec::new();
    for node in nodes {
        let shown = (total > 1).then_some(node);
        let log = facts.store.log_path(&facts.run.id, &planned.name, shown);
        let plan_options = PlanOptions {
            repo: front.repo.clone(),
            node_index: node,
            node_total: total,
            project_env: options.project_env.clone(),
            image_map: options.image_map.clone(),
            bash_env: engine::bash_env_path(engine::now_unix()),
            context_env: context_env.clone(),
            machine_images: options.machine_images.clone(),
            extra_builtins: vec![
                ("CIRCLE_WORKFLOW_ID".into(), facts.run.id.clone()),
                ("CIRCLE_WORKFLOW_JOB_ID".into(), job_id.clone()),
                (
                    "CIRCLE_WORKFLOW_WORKSPACE_ID".into(),
                    facts.workspace_id.to_string(),
                ),
                ("CIRCLE_BUILD_NUM".into(), build_num.to_string()),
                (
                    "CIRCLE_BUILD_URL".into(),
                    format!("file://{}", log.display()),
                ),
                ("CIRCLE_USERNAME".into(), options.username.clone()),
            ],
        };
        let plan = match plan::plan_job(def, &planned.name, &plan_options)? {
            Plan::Run(plan) => *plan,
            Plan::Nothing(_) => continue,
        };
        let artifacts_dir = match &options.artifacts_dir {
            Some(dir) if only_node.is_some() || total == 1 => dir.clone(),
            Some(dir) => dir.join(format!("node-{node}")),
            None => facts.store.job_dir(&facts.run.id, &planned.name, shown),
        };
        let workspace = facts.workspace.clone().map(|w| Workspace { node, ..w });
        out.push((
            plan,
            JobSettings {
                artifacts_dir,
                workspace,
                agent_dir_files: agent_files.clone(),
                gate: None,
                up: None,
                watch: None,
            },
        ));
    }
    Ok(out)
}

/// The timings file for `circleci tests split --split-by=timings`: the test cases of the JUnit
/// results that the latest earlier run of this job stored (none when there are none).
fn timings(history: &[RunRecord], job: &str) -> Vec<(String, Vec<u8>)> {
    let results = history
        .iter()
        .find_map(|r| r.jobs.get(job)?.results.clone());
    let Some(dir) = results else {
        return Vec::new();
    };
    match crate::agent::timings_tsv_from(&dir) {
        Ok(tsv) if !tsv.is_empty() => {
            vec![(crate::agent::dir::TIMINGS.to_string(), tsv.into_bytes())]
        }
        _ => Vec::new(),
    }
}

/// `localci execute <job>`: the job's nodes, the contexts of its workflow invocation, and the
/// workspace its upstream jobs stored in the latest run of that workflow.
fn prepare_job(
    front: &Front,
    options: &LaunchOptions,
    (store, history): (RunStore, &[RunRecord]),
    run: RunInfo,
    name: &str,
) -> Result<Prepared, Vec<Diagnostic>> {
    // Checks the name (and says what a no-op or approval job is) the way it always did.
    let probe = PlanOptions {
        repo: front.repo.clone(),
        node_total: 1,
        machine_images: options.machine_images.clone(),
        ..PlanOptions::default()
    };
    let first = match plan::plan(&front.config, name, &probe).map_err(|d| vec![d])? {
        Plan::Run(plan) => *plan,
        Plan::Nothing(why) => {
            return Ok(Prepared {
                record: RunRecord::default(),
                run,
                store,
                jobs: Vec::new(),
                single: true,
                nothing: Some(why),
                watch: None,
            });
        }
    };
    let def = &front.config.jobs[&first.job];
    let total = options.node_total.unwrap_or(def.parallelism).max(1);
    if let Some(index) = options.node_index
        && index >= total
    {
        return Err(vec![
            Diagnostic::bare(format!(
                "--node-index {index} is not below the node total {total}"
            ))
            .with_hint("node indexes count from 0: --node-index 0 is the first node"),
        ]);
    }
    let invocation = find_invocation(&front.config, name);
    let (workspace, from) = single_job_workspace(front, (&store, history), &run, name, def)?;
    let planned = PlannedJob {
        name: name.to_string(),
        job: Some(first.job.clone()),
        kind: PlannedKind::Build,
        needs: Vec::new(),
        upstream: Vec::new(),
        parallelism: total,
        context: invocation
            .map(|(_, inv)| inv.context.clone())
            .unwrap_or_default(),
        skipped: None,
    };
    let workspace_id = from.clone().unwrap_or_else(|| run.id.clone());
    let facts = JobFacts {
        run: &run,
        store: &store,
        history,
        workspace_id: &workspace_id,
        workspace: Some(workspace),
    };
    let nodes =
        plan_nodes(front, options, &facts, &planned, options.node_index).map_err(|d| vec![d])?;
    let record = RunRecord {
        id: run.id.clone(),
        workflow: None,
        started: engine::now_unix(),
        started_ms: engine::now_unix_ms(),
        branch: front.repo.branch.clone(),
        tag: front.repo.tag.clone(),
        workspace_id,
        jobs: BTreeMap::new(),
    };
    Ok(Prepared {
        run,
        store,
        record,
        jobs: vec![ScheduledJob {
            planned,
            nodes,
            reused_from: None,
        }],
        single: true,
        nothing: None,
        watch: None,
    })
}

/// The first workflow invocation that runs under `name`.
fn find_invocation<'a>(
    config: &'a Config,
    name: &str,
) -> Option<(&'a crate::config::Workflow, &'a crate::config::Invocation)> {
    config.workflows.iter().find_map(|w| {
        w.jobs
            .iter()
            .find(|inv| inv.run_name() == name && !inv.approval)
            .map(|inv| (w, inv))
    })
}

/// A single job's workspace: its own layers in this run, and the layers its upstream jobs
/// stored in the latest run of its workflow (`None` beside it when there was no such run).
fn single_job_workspace(
    front: &Front,
    (store, history): (&RunStore, &[RunRecord]),
    run: &RunInfo,
    name: &str,
    def: &crate::config::Job,
) -> Result<(Workspace, Option<String>), Vec<Diagnostic>> {
    let own = Workspace {
        layers_dir: store.layers_dir(&run.id, name),
        ..Workspace::default()
    };
    let Some((wf, _)) = find_invocation(&front.config, name) else {
        return Ok((own, None));
    };
    let Ok(plan) = plan_workflow(&front.config, wf, &front.build()) else {
        return Ok((own, None));
    };
    let Some(planned) = plan.get(name) else {
        return Ok((own, None));
    };
    let attaches = def
        .steps
        .iter()
        .any(|s| matches!(s.kind, StepKind::AttachWorkspace { .. }));
    if planned.upstream.is_empty() {
        return Ok((own, None));
    }
    let Some(latest) = latest_of(history, &wf.name) else {
        if attaches {
            return Err(vec![
                Diagnostic::bare(format!(
                    "`{name}` attaches the workspace of {}, but workflow `{}` has not run here yet",
                    planned.upstream.join(", "),
                    wf.name
                ))
                .with_hint(format!(
                    "run the workflow once (localci execute --workflow {}), then rerun this job",
                    wf.name
                )),
            ]);
        }
        return Ok((own, None));
    };
    let layers: BTreeMap<String, PathBuf> = latest
        .jobs
        .iter()
        .filter_map(|(job, r)| Some((job.clone(), r.layers.clone()?)))
        .collect();
    let note = format!(
        "the workspace comes from run {} of workflow `{}`",
        latest.id, wf.name
    );
    let mut workspace = workspace_for(&plan, planned, &layers, Some(note));
    workspace.layers_dir = own.layers_dir;
    Ok((workspace, Some(latest.workspace_id)))
}

/// Runs the prepared run; returns one row per job. Writes the run's record at the end,
/// whatever happened.
pub async fn run(
    prepared: Prepared,
    backend: Arc<dyn Backend>,
    engine_options: EngineOptions,
    schedule: Schedule,
    sink: Sink,
    cancel: CancellationToken,
) -> Result<Vec<JobRow>, EngineError> {
    let Prepared {
        run,
        store,
        mut record,
        mut jobs,
        single,
        watch,
        ..
    } = prepared;
    // Started before anything else, so that no change after the first checkout is missed.
    let _watcher = match watch {
        Some(root) => Some(start_watching(root, &mut jobs, &engine_options, &sink)?),
        None => None,
    };
    let plans: Vec<&JobPlan> = jobs
        .iter()
        .flat_map(|j| j.nodes.iter().map(|(p, _)| p))
        .collect();
    engine::check_machine_endpoint(&backend.host(), &plans)?;
    let opening = std::time::Instant::now();
    let session = Session::open(backend, run, engine_options, sink.clone(), cancel.clone()).await?;
    crate::trace::span("session-open", "", opening);
    if !single {
        sink.send(crate::report::Event::RunStarted {
            run: session.id().to_string(),
            workflow: record.workflow.clone(),
            jobs: jobs.iter().map(|j| j.planned.name.clone()).collect(),
        });
    }
    let checking = std::time::Instant::now();
    let images = session.images(&plans).await?;
    crate::trace::span("images", "", checking);
    let Some(images) = images else {
        return Ok(jobs
            .iter()
            .map(|j| JobRow {
                job: j.planned.name.clone(),
                status: JobStatus::Canceled,
                duration: None,
                tests: None,
            })
            .collect());
    };
    let layers: BTreeMap<String, Option<PathBuf>> = jobs
        .iter()
        .map(|j| {
            let dir = j
                .nodes
                .first()
                .and_then(|(_, s)| s.workspace.as_ref())
                .map(|w| w.layers_dir.clone());
            (j.planned.name.clone(), dir)
        })
        .collect();
    let session = Arc::new(session);
    let running = std::time::Instant::now();
    let rows = engine::run_workflow(session.clone(), jobs, Arc::new(images), schedule).await;
    crate::trace::span("jobs", "", running);
    let closing = std::time::Instant::now();
    session.close().await;
    crate::trace::span("close", "waiting for the removals", closing);
    if let Ok(rows) = &rows {
        for row in rows {
            if record.jobs.contains_key(&row.job) {
                continue; // reused from an earlier run: its record stays
            }
            let layers = layers
                .get(&row.job)
                .cloned()
                .flatten()
                .filter(|d| d.is_dir());
            let results = Some(store.job_dir(&record.id, &row.job, None)).filter(|d| d.is_dir());
            record.jobs.insert(
                row.job.clone(),
                JobRecord {
                    status: status_word(&row.status).into(),
                    layers,
                    results,
                },
            );
        }
        // A run record that cannot be written costs later runs their reuse, not this run.
        let _ = store.save(&record);
    }
    rows
}

/// Starts the `--watch` watcher of `root` and gives every node of the job its changes.
fn start_watching(
    root: PathBuf,
    jobs: &mut [ScheduledJob],
    engine_options: &EngineOptions,
    sink: &Sink,
) -> Result<watch::Watcher, EngineError> {
    // What the run writes itself is never a change (artifacts and caches may be in the tree).
    let mut own = vec![engine_options.cache_dir.clone()];
    own.extend(
        jobs.iter()
            .flat_map(|j| &j.nodes)
            .map(|(_, s)| s.artifacts_dir.clone()),
    );
    let name = jobs.first().map_or("localci", |j| j.planned.name.as_str());
    let events = crate::report::Events::new(sink.clone(), crate::report::JobRef::new(name, None));
    let (watcher, changes) = watch::start(watch::Watched { root, own }, events)?;
    for (_, settings) in jobs.iter_mut().flat_map(|j| &mut j.nodes) {
        settings.watch = Some(changes.clone());
    }
    Ok(watcher)
}

/// The newest earlier run of `workflow`.
fn latest_of(history: &[RunRecord], workflow: &str) -> Option<RunRecord> {
    history
        .iter()
        .find(|r| r.workflow.as_deref() == Some(workflow))
        .cloned()
}

/// The word a job's status is recorded with.
pub fn status_word(status: &JobStatus) -> &'static str {
    match status {
        JobStatus::Success => "success",
        JobStatus::Failed => "failed",
        JobStatus::Canceled => "canceled",
        JobStatus::NotRun(_) => "not_run",
        JobStatus::OnHold(_) => "on_hold",
        JobStatus::Skipped(_) => "skipped",
    }
}
