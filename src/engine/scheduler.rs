//! Runs a workflow as CircleCI does: a true DAG. A job starts as soon as every job it
//! requires has ended in a status it accepts (`success` unless its `requires` says otherwise),
//! with at most `max_parallel` nodes at once; there is no stage or wave barrier, so a job
//! never waits for unrelated slow jobs. A job whose requirement ended otherwise is not run
//! (with the reason), which never stops unrelated branches; approvals pass with `--approve`
//! and otherwise hold their dependents. Semantics file, sections 7.2 and 7.5.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use tokio::task::JoinSet;

use super::session::{Images, JobSettings, Session};
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
        for i in run.ready(&jobs) {
            let nodes = jobs[i].nodes.len().max(1);
            if running_nodes > 0 && running_nodes + nodes > schedule.max_parallel.max(1) {
                break;
            }
            running_nodes += nodes;
            run.states[i] = State::Running;
            session.sink().send(Event::JobStarted {
                job: JobRef::new(&jobs[i].planned.name, None),
            });
            tasks.spawn(run_job(
                session.clone(),
                i,
                jobs[i].nodes.clone(),
                images.clone(),
            ));
        }
        let Some(joined) = tasks.join_next().await else {
            break;
        };
        let (i, result, took) =
            joined.map_err(|e| EngineError::Setup(format!("a job task failed: {e}")))?;
        running_nodes -= jobs[i].nodes.len().max(1);
        let status = match result {
            Ok(status) => status,
            Err(e) => {
                error.get_or_insert(e);
                JobStatus::Failed
            }
        };
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

/// The states of the jobs, by plan index.
struct Run {
    states: Vec<State>,
    index: BTreeMap<String, usize>,
}

impl Run {
    fn new(jobs: &[ScheduledJob]) -> Run {
        Run {
            states: vec![State::Pending; jobs.len()],
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
                if !matches!(self.states[i], State::Pending) {
                    continue;
                }
                if let Some(status) = self.verdict(jobs, i, schedule, session, stopping) {
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

    /// Pending jobs that may start now, in plan order.
    fn ready(&self, jobs: &[ScheduledJob]) -> Vec<usize> {
        (0..jobs.len())
            .filter(|&i| matches!(self.states[i], State::Pending))
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
                    State::Pending | State::Running => (JobStatus::Canceled, None),
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
            (Ok(s), Ok(NodeOutcome::Passed)) => Ok(s),
        };
    }
    (index, status, started.elapsed())
}
