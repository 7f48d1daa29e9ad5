//! Runs a workflow as CircleCI does: a true DAG. A job starts as soon as every job it
//! requires has ended in a status it accepts (`success` unless its `requires` says otherwise),
//! with at most `max_parallel` nodes at once; there is no stage or wave barrier, so a job
//! never waits for unrelated slow jobs. A job whose requirement ended otherwise is not run
//! (with the reason), which never stops unrelated branches; approvals pass with `--approve`
//! and otherwise hold their dependents. Semantics file, sections 7.2 and 7.5.
//!
//! Start-up overlaps: a job whose requirements are all running (or done) is *warmed*: its
//! containers start and are set up while it waits, behind a [`Go`] gate that opens when its
//! requirements end as it accepts, or withdraws it (the containers are removed, no step ran)
//! when they do not. The chain A -> B then costs B's steps, not B's container start-up too.
//! A job is warmed only once the jobs it waits for are up (their steps began), so that its
//! start-up never slows theirs.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::session::{Go, Images, JobSettings, Session, Up};
use super::{EngineError, NodeOutcome};
use crate::plan::{JobPlan, PlannedJob, PlannedKind};
use crate::report::{Event, JobRef, JobRow, JobStatus};

/// Which approval jobs pass: `--approve` (all) or `--approve NAME` (repeatable).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Approvals {
    pub all: bool,
    pub names: Vec<String>,
}

impl Approvals {
    fn approves(&self, name: &str) -> bool {
        self.all || self.names.iter().any(|n| n == name)
    }
}

/// How the scheduler may run the workflow.
#[derive(Clone, Debug)]
pub struct Schedule {
    /// At most this many nodes (a job with `parallelism: N` has N) run at once; a job
    /// with more nodes than this still runs, alone.
    pub max_parallel: usize,
    pub approvals: Approvals,
}

/// One job of the workflow as the scheduler gets it.
#[derive(Clone, Debug)]
pub struct ScheduledJob {
    pub planned: PlannedJob,
    /// One plan per node (empty for approvals, no-ops and skipped jobs).
    pub nodes: Vec<(JobPlan, JobSettings)>,
    /// It passed in the earlier run with this id and is not run again (`--rerun-failed`).
    pub reused_from: Option<String>,
}

#[derive(Clone, Debug)]
enum State {
    Pending,
    /// Its containers start while what it requires still runs; it waits at its gate.
    Warming,
    Running,
    Done(JobStatus, Option<Duration>),
}

/// The result of one job's task: its index, its status, how long it ran.
type Finished = (usize, Result<JobStatus, EngineError>, Duration);

/// Runs every job; returns one row per job, in plan order. An infrastructure failure stops
/// new jobs from starting, lets the running ones end, and is returned.
pub async fn run_workflow(
    session: Arc<Session>,
    jobs: Vec<ScheduledJob>,
    images: Arc<Images>,
    schedule: Schedule,
) -> Result<Vec<JobRow>, EngineError> {
    let started = Instant::now();
    let mut run = Run::new(&jobs);
    let mut tasks: JoinSet<Finished> = JoinSet::new();
    let mut running_nodes = 0usize;
    let mut error: Option<EngineError> = None;
    loop {
        run.decide(&jobs, &schedule, session.as_ref(), error.is_some());
        let ready = run.ready(&jobs);
        let warmed: Vec<usize> = ready
            .iter()
            .copied()
            .filter(|&i| matches!(run.states[i], State::Warming))
            .collect();
        for i in warmed {
            run.open_gate(i, Go::Run);
            run.opened[i] = Some(Instant::now());
            run.states[i] = State::Running;
        }
        for i in ready {
            if !matches!(run.states[i], State::Pending) {
                continue;
            }
            let nodes = jobs[i].nodes.len().max(1);
            if running_nodes > 0 && running_nodes + nodes > schedule.max_parallel.max(1) {
                break;
            }
            running_nodes += nodes;
            run.states[i] = State::Running;
            let up = run.up[i].clone();
            tasks.spawn(start(&session, &jobs, i, &images, None, up));
        }
        if error.is_none() && !session.cancel().is_cancelled() {
            for i in run.warmable(&jobs) {
                let nodes = jobs[i].nodes.len().max(1);
                if running_nodes + nodes > schedule.max_parallel.max(1) {
                    break;
                }
                running_nodes += nodes;
                let (gate, waiting) = watch::channel(Go::Wait);
                run.gates[i] = Some(gate);
                run.states[i] = State::Warming;
                let up = run.up[i].clone();
                tasks.spawn(start(&session, &jobs, i, &images, Some(waiting), up));
            }
        }
        let joined = tokio::select! {
            joined = tasks.join_next() => joined,
            // A job's steps began: the jobs after it may be warmed now.
            () = run.up_notify.notified() => continue,
        };
        let Some(joined) = joined else {
            break;
        };
        let (i, result, took) =
            joined.map_err(|e| EngineError::Setup(format!("a job task failed: {e}")))?;
        running_nodes -= jobs[i].nodes.len().max(1);
        let status = match (run.withdrawn[i].take(), result) {
            // Withdrawn at its gate: what its requirements decided, and it never ran.
            (Some(verdict), Ok(_)) => {
                run.finish(&jobs, i, verdict, None, session.as_ref());
                continue;
            }
            (_, Ok(status)) => status,
            (_, Err(e)) => {
                error.get_or_insert(e);
                JobStatus::Failed
            }
        };
        // A warmed job's time counts from its gate, not from its early start-up.
        let took = run.opened[i].map_or(took, |at| at.elapsed());
        run.finish(&jobs, i, status, Some(took), session.as_ref());
    }
    let rows = run.rows(&jobs);
    let job_time = rows.iter().filter_map(|r| r.duration).sum();
    session.sink().send(Event::RunFinished {
        rows: rows.clone(),
        wall: started.elapsed(),
        job_time,
    });
    match error {
        Some(e) => Err(e),
        None => Ok(rows),
    }
}

/// Spawns the task of job `i`: all its nodes, behind `gate` when it is warmed.
fn start(
    session: &Arc<Session>,
    jobs: &[ScheduledJob],
    i: usize,
    images: &Arc<Images>,
    gate: Option<watch::Receiver<Go>>,
    up: Up,
) -> impl std::future::Future<Output = Finished> + Send + 'static {
    session.sink().send(Event::JobStarted {
        job: JobRef::new(&jobs[i].planned.name, None),
    });
    let nodes = jobs[i]
        .nodes
        .iter()
        .map(|(plan, settings)| {
            let settings = JobSettings {
                gate: gate.clone(),
                up: Some(up.clone()),
                ..settings.clone()
            };
            (plan.clone(), settings)
        })
        .collect();
    run_job(session.clone(), i, nodes, images.clone())
}

/// The states of the jobs, by plan index.
struct Run {
    states: Vec<State>,
    index: BTreeMap<String, usize>,
    /// The gates of warmed jobs.
    gates: Vec<Option<watch::Sender<Go>>>,
    /// Warmed jobs withdrawn at their gate, with the status their requirements gave them.
    withdrawn: Vec<Option<JobStatus>>,
    /// When the gate of a warmed job opened.
    opened: Vec<Option<Instant>>,
    /// Each job's "steps began" signal, all waking the one notify.
    up: Vec<Up>,
    up_notify: Arc<tokio::sync::Notify>,
}

impl Run {
    fn new(jobs: &[ScheduledJob]) -> Run {
        let up_notify = Arc::new(tokio::sync::Notify::new());
        Run {
            up: (0..jobs.len())
                .map(|_| Up {
                    notify: up_notify.clone(),
                    ..Up::default()
                })
                .collect(),
            up_notify,
            states: vec![State::Pending; jobs.len()],
            gates: vec![None; jobs.len()],
            withdrawn: vec![None; jobs.len()],
            opened: vec![None; jobs.len()],
            index: jobs
                .iter()
                .enumerate()
                .map(|(i, j)| (j.planned.name.clone(), i))
                .collect(),
        }
    }

    /// Settles every pending job whose fate is known without running it: skipped, reused,
    /// approvals, no-ops, and jobs whose requirements ended in a status they do not accept.
    fn decide(
        &mut self,
        jobs: &[ScheduledJob],
        schedule: &Schedule,
        session: &Session,
        stopping: bool,
    ) {
        loop {
            let mut changed = false;
            for i in 0..jobs.len() {
                let warming = match self.states[i] {
                    State::Pending => false,
                    State::Warming if self.withdrawn[i].is_none() => true,
                    _ => continue,
                };
                let Some(status) = self.verdict(jobs, i, schedule, session, stopping) else {
                    continue;
                };
                if warming {
                    // Its task ends at the gate; the status is recorded then.
                    self.withdrawn[i] = Some(status);
                    self.open_gate(i, Go::Withdraw);
                } else {
                    self.finish(jobs, i, status, None, session);
                    changed = true;
                }
            }
            if !changed {
                return;
            }
        }
    }

    /// `Some` when job `i` ends without running; `None` while it must wait or can start.
    fn verdict(
        &self,
        jobs: &[ScheduledJob],
        i: usize,
        schedule: &Schedule,
        session: &Session,
        stopping: bool,
    ) -> Option<JobStatus> {
        let job = &jobs[i].planned;
        if let Some(why) = &job.skipped {
            return Some(JobStatus::Skipped(why.clone()));
        }
        // After Ctrl-C nothing new starts: the workflow is canceled.
        if session.cancel().is_cancelled() {
            return Some(JobStatus::Canceled);
        }
        let mut ended = Vec::new();
        for need in &job.needs {
            match self.index.get(&need.job).map(|&j| &self.states[j]) {
                Some(State::Done(status, _)) => ended.push((need, status)),
                Some(_) => return None,
                None => {}
            }
        }
        for (need, status) in &ended {
            if let JobStatus::OnHold(_) = status {
                return Some(JobStatus::OnHold(format!("waits for `{}`", need.job)));
            }
            if !need.statuses.iter().any(|s| s == status.requires_word()) {
                return Some(JobStatus::NotRun(format!(
                    "it requires `{}`, which ended {}",
                    need.job,
                    status_text(status)
                )));
            }
        }
        if stopping {
            return Some(JobStatus::NotRun("the run stopped after an error".into()));
        }
        if jobs[i].reused_from.is_some() {
            return Some(JobStatus::Success);
        }
        match job.kind {
            PlannedKind::Approval if schedule.approvals.approves(&job.name) => {
                Some(JobStatus::Success)
            }
            PlannedKind::Approval => Some(JobStatus::OnHold(format!(
                "waits for approval: rerun with --approve {} (or --approve for all)",
                job.name
            ))),
            PlannedKind::NoOp => Some(JobStatus::Success),
            PlannedKind::Build => None,
        }
    }

    /// Opens (or withdraws) the gate of a warmed job.
    fn open_gate(&mut self, i: usize, go: Go) {
        if let Some(gate) = &self.gates[i] {
            let _ = gate.send(go);
        }
    }

    /// Pending build jobs whose requirements all run or are done (one still running): their
    /// containers may start now, in plan order.
    fn warmable(&self, jobs: &[ScheduledJob]) -> Vec<usize> {
        (0..jobs.len())
            .filter(|&i| matches!(self.states[i], State::Pending))
            .filter(|&i| !jobs[i].nodes.is_empty())
            .filter(|&i| {
                let needs = &jobs[i].planned.needs;
                let state = |job: &str| self.index.get(job).map(|&j| &self.states[j]);
                let up = |job: &str| self.index.get(job).is_some_and(|&j| self.up[j].is_up());
                needs.iter().all(|n| match state(&n.job) {
                    Some(State::Running) => up(&n.job),
                    Some(State::Done(..)) | None => true,
                    Some(State::Pending | State::Warming) => false,
                }) && needs
                    .iter()
                    .any(|n| matches!(state(&n.job), Some(State::Running)))
            })
            .collect()
    }

    /// Pending (or warmed) jobs that may run their steps now, in plan order.
    fn ready(&self, jobs: &[ScheduledJob]) -> Vec<usize> {
        (0..jobs.len())
            .filter(|&i| {
                matches!(self.states[i], State::Pending)
                    || (matches!(self.states[i], State::Warming) && self.withdrawn[i].is_none())
            })
            .filter(|&i| {
                jobs[i].planned.needs.iter().all(|need| {
                    self.index
                        .get(&need.job)
                        .is_none_or(|&j| matches!(self.states[j], State::Done(..)))
                })
            })
            .collect()
    }

    fn finish(
        &mut self,
        jobs: &[ScheduledJob],
        i: usize,
        status: JobStatus,
        duration: Option<Duration>,
        session: &Session,
    ) {
        let job = &jobs[i];
        if let Some(run) = &job.reused_from {
            if duration.is_none() && status == JobStatus::Success {
                session.sink().send(Event::Info {
                    job: JobRef::new(&job.planned.name, None),
                    text: format!("Passed in run {run}; not run again (--rerun-failed)"),
                });
            }
        } else if job.planned.kind == PlannedKind::Approval && status == JobStatus::Success {
            session.sink().send(Event::Info {
                job: JobRef::new(&job.planned.name, None),
                text: "Approved (--approve)".into(),
            });
        }
        session.sink().send(Event::JobEnded {
            job: JobRef::new(&job.planned.name, None),
            status: status.clone(),
            duration,
        });
        self.states[i] = State::Done(status, duration);
    }

    fn rows(&self, jobs: &[ScheduledJob]) -> Vec<JobRow> {
        jobs.iter()
            .zip(&self.states)
            .map(|(job, state)| {
                let (status, duration) = match state {
                    State::Done(status, duration) => (status.clone(), *duration),
                    State::Pending | State::Warming | State::Running => (JobStatus::Canceled, None),
                };
                JobRow {
                    job: job.planned.name.clone(),
                    status,
                    duration,
                    tests: None,
                }
            })
            .collect()
    }
}

fn status_text(status: &JobStatus) -> String {
    match status {
        JobStatus::Success => "successfully".into(),
        JobStatus::Failed => "failed".into(),
        JobStatus::Canceled => "canceled".into(),
        JobStatus::NotRun(_) => "without running".into(),
        JobStatus::OnHold(_) => "on hold".into(),
        JobStatus::Skipped(_) => "skipped by its filters".into(),
    }
}

/// Runs every node of one job at once; the job fails when a node fails.
async fn run_job(
    session: Arc<Session>,
    index: usize,
    nodes: Vec<(JobPlan, JobSettings)>,
    images: Arc<Images>,
) -> Finished {
    let started = Instant::now();
    let runs = nodes
        .into_iter()
        .map(|(plan, settings)| session.run_job(plan, &images, settings));
    let mut status = Ok(JobStatus::Success);
    for result in join_all(runs).await {
        status = match (status, result) {
            (Err(e), _) | (_, Err(e)) => Err(e),
            (Ok(JobStatus::Canceled), _) | (_, Ok(NodeOutcome::Interrupted)) => {
                Ok(JobStatus::Canceled)
            }
            (Ok(JobStatus::Failed), _) | (_, Ok(NodeOutcome::Failed)) => Ok(JobStatus::Failed),
            // Withdrawn at the gate: the scheduler records what its requirements decided.
            (Ok(s), Ok(NodeOutcome::Passed | NodeOutcome::Withdrawn)) => Ok(s),
        };
    }
    (index, status, started.elapsed())
}
