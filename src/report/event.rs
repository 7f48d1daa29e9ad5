//! What happens during a run, as data. Steps and the engine send [`Event`]s through an
//! [`Events`] handle; only the reporter turns them into text.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender};

pub use crate::backend::Stream;

use super::lines::LineSplitter;
use super::mask::{Secrets, mask_event};
/// Which job (and which parallel node of it) an event comes from: the envelope every job
/// event carries, so a reporter can attribute each line when several jobs run at once.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct JobRef {
    /// The name the job runs under in its workflow (`CIRCLE_JOB`).
    pub name: Arc<str>,
    /// `CIRCLE_NODE_INDEX`, when the job runs on more than one node (`parallelism` > 1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<u32>,
}

impl JobRef {
    pub fn new(name: &str, node: Option<u32>) -> JobRef {
        JobRef {
            name: Arc::from(name),
            node,
        }
    }
}

impl std::fmt::Display for JobRef {
    /// `build`, or `test[1]` for node 1 of a parallel job.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.node {
            Some(node) => write!(f, "{}[{node}]", self.name),
            None => f.write_str(&self.name),
        }
    }
}

/// How a job of a run ended (or why it never started).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "status", content = "reason")]
pub enum JobStatus {
    Success,
    Failed,
    /// Ctrl-C stopped it.
    Canceled,
    /// A job it requires ended in a status it does not accept (the reason names it).
    NotRun(String),
    /// Behind an approval that was not given (`--approve`).
    OnHold(String),
    /// Left out by `filters` or a requirement that was filtered out.
    Skipped(String),
}

impl JobStatus {
    /// The word CircleCI's `requires` statuses use (`success`, `failed`, `canceled`, `not_run`).
    pub fn requires_word(&self) -> &'static str {
        match self {
            JobStatus::Success => "success",
            JobStatus::Failed => "failed",
            JobStatus::Canceled => "canceled",
            JobStatus::NotRun(_) | JobStatus::OnHold(_) | JobStatus::Skipped(_) => "not_run",
        }
    }
}

/// Counts of one job's (or node's) JUnit results.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct TestCounts {
    pub tests: u64,
    pub failures: u64,
    pub errors: u64,
    pub skipped: u64,
}

/// What the checkout of a `--watch` rerun sent: only what changed since the sync before.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct SyncCounts {
    /// Files (and links) sent.
    pub files: u64,
    /// Bytes of file content sent.
    pub bytes: u64,
    /// Paths removed in the container (gone from the working tree).
    pub removed: u64,
    /// Paths that were already there as they are (nothing sent).
    pub unchanged: u64,
}

/// One row of the end-of-run table.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct JobRow {
    pub job: String,
    #[serde(flatten)]
    pub status: JobStatus,
    /// Wall time of the job (all its nodes), when it ran.
    pub duration: Option<Duration>,
    pub tests: Option<TestCounts>,
}

/// How a step ended.
#[derive(Clone, Debug, PartialEq)]
pub enum StepStatus {
    Passed {
        exit_code: Option<i64>,
    },
    Failed {
        exit_code: Option<i64>,
        /// Why, when it is not just the exit code (a timeout, an error of a built-in step).
        reason: Option<String>,
    },
}

impl StepStatus {
    pub fn passed(&self) -> bool {
        matches!(self, StepStatus::Passed { .. })
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// A phase that is not a step ("Spin up environment").
    Section {
        job: JobRef,
        title: String,
    },
    Info {
        job: JobRef,
        text: String,
    },
    Warning {
        job: JobRef,
        text: String,
    },
    StepStarted {
        job: JobRef,
        step: usize,
        name: String,
        /// Lines shown under the step's title (`#!/bin/bash -eo pipefail` and the command).
        header: Vec<String>,
        background: bool,
    },
    Output {
        job: JobRef,
        step: usize,
        stream: Stream,
        line: String,
    },
    StepFinished {
        job: JobRef,
        step: usize,
        status: StepStatus,
        duration: Duration,
    },
    StepSkipped {
        job: JobRef,
        step: usize,
        name: String,
        reason: String,
    },
    /// A run of a workflow (or of one job) begins: its id and the jobs it may run, in order.
    RunStarted {
        run: String,
        workflow: Option<String>,
        jobs: Vec<String>,
    },
    /// A job of the run starts (all its nodes): the scheduler handed it a slot.
    JobStarted {
        job: JobRef,
    },
    /// A job of the run ends without running (not run, on hold, skipped) or after all its nodes
    /// ran; `JobFinished` still reports each node's own end.
    JobEnded {
        job: JobRef,
        status: JobStatus,
        duration: Option<Duration>,
    },
    /// The JUnit results one job (node) stored with `store_test_results`.
    TestSummary {
        job: JobRef,
        counts: TestCounts,
    },
    /// The run is over: one row per job, the wall time and the sum of job times.
    RunFinished {
        rows: Vec<JobRow>,
        wall: Duration,
        job_time: Duration,
    },
    /// Progress of one layer while an image is pulled; drawn only on a terminal.
    LayerProgress {
        job: JobRef,
        image: String,
        layer: String,
        /// Docker's status text (`Downloading`, `Extracting`, `Pull complete` ...).
        status: String,
        current: Option<u64>,
        total: Option<u64>,
    },
    /// The pull of an image ended, either way: its layer lines go away.
    PullEnded {
        job: JobRef,
        image: String,
    },
    /// The last lines a service container of a job printed. The engine keeps each service's
    /// output per job and sends this when a service exited non-zero during the job, or when the
    /// job (node) failed, with the node's `JobRef`, before that node's `JobFinished`. A
    /// terminal shows it at once when the service exited non-zero, else when the node (or its
    /// job, `JobEnded` failed or canceled) fails; the JSON reporter always.
    ServiceLog {
        job: JobRef,
        /// The service's name (its container's `name:`, else its image).
        service: String,
        /// Its exit code, when it has exited.
        exit_code: Option<i64>,
        lines: Vec<String>,
    },
    /// `--shell-on-fail`: a shell opens in the job's primary container after the step that
    /// failed. The reporter writes out what it holds, clears its live block, and lends the
    /// terminal through `handoff` until the shell is over (see handoff.rs).
    ShellOpened {
        job: JobRef,
        step: usize,
        /// The failed step's name.
        name: String,
        handoff: super::handoff::Handoff,
    },
    /// The shell of [`Event::ShellOpened`] ended (its exit code, when known). The reporter
    /// makes it when the terminal is given back (handoff.rs), before any event that waited.
    ShellClosed {
        job: JobRef,
        exit_code: Option<i64>,
    },
    JobFinished {
        job: JobRef,
        passed: bool,
        /// The first failed step's name and why, when the job failed.
        failure: Option<String>,
        duration: Duration,
    },
    /// `--watch`: files of the checkout changed, and the job's steps run again (run `run`,
    /// counting the first as 1) in the same containers.
    WatchRerun {
        job: JobRef,
        run: u32,
        /// The first changed paths, relative to the repository.
        paths: Vec<String>,
        /// How many paths changed in all.
        count: usize,
    },
    /// `--watch`: a run of the job's steps ended (the first one and every rerun); the job then
    /// waits for the next change.
    WatchResult {
        job: JobRef,
        run: u32,
        passed: bool,
        /// The first failed step's name and why, when the run failed.
        failure: Option<String>,
        /// The first run from the job's start, a rerun from the change that started it.
        duration: Duration,
        /// What this run's checkout sent; `None` when no checkout step ran.
        synced: Option<SyncCounts>,
    },
}

impl Event {
    /// The job (node) the event belongs to; `None` for the run-level events.
    pub fn job(&self) -> Option<&JobRef> {
        match self {
            Event::RunStarted { .. } | Event::RunFinished { .. } => None,
            Event::Section { job, .. }
            | Event::Info { job, .. }
            | Event::Warning { job, .. }
            | Event::StepStarted { job, .. }
            | Event::Output { job, .. }
            | Event::StepFinished { job, .. }
            | Event::StepSkipped { job, .. }
            | Event::JobStarted { job }
            | Event::JobEnded { job, .. }
            | Event::TestSummary { job, .. }
            | Event::LayerProgress { job, .. }
            | Event::PullEnded { job, .. }
            | Event::ServiceLog { job, .. }
            | Event::ShellOpened { job, .. }
            | Event::ShellClosed { job, .. }
            | Event::JobFinished { job, .. }
            | Event::WatchRerun { job, .. }
            | Event::WatchResult { job, .. } => Some(job),
        }
    }
}

/// Output lines that may wait in the channel before producers are slowed down.
const LINES_IN_FLIGHT: usize = 4096;

/// The sending end of the event channel. Events keep their order in one channel; output
/// lines also take a permit, returned when the reporter has read them, so a step that prints
/// faster than the terminal shows is slowed down instead of filling memory.
#[derive(Clone)]
pub struct Sink {
    tx: UnboundedSender<Event>,
    lines: Arc<Semaphore>,
    /// Masked in every event sent (issue 9, finding 4), so every reporter gets masked events.
    secrets: Arc<Secrets>,
}

impl Sink {
    /// Sends a run-level event; a reporter that has gone away is not the run's problem.
    pub fn send(&self, event: Event) {
        let _ = self.tx.send(event);
    }
}

/// The receiving end, for the one reporter.
pub struct Receiver {
    rx: UnboundedReceiver<Event>,
    lines: Arc<Semaphore>,
}

/// A new event channel.
pub fn channel() -> (Sink, Receiver) {
    let (tx, rx) = mpsc::unbounded_channel();
    let lines = Arc::new(Semaphore::new(LINES_IN_FLIGHT));
    (
        Sink {
            tx,
            lines: lines.clone(),
            secrets: Arc::default(),
        },
        Receiver { rx, lines },
    )
}

impl Sink {
    /// This sink, masking `values` (the project and context variables) as `********` in every
    /// event sent through it, besides what it masked already.
    pub fn masking<'a>(mut self, values: impl IntoIterator<Item = &'a str>) -> Sink {
        self.secrets = Arc::new(self.secrets.with(values));
        self
    }
}

impl Receiver {
    /// The next event; `None` once every sink is gone.
    pub async fn recv(&mut self) -> Option<Event> {
        let event = self.rx.recv().await?;
        Some(self.release(event))
    }

    /// The next event if one is waiting.
    pub fn try_recv(&mut self) -> Option<Event> {
        let event = self.rx.try_recv().ok()?;
        Some(self.release(event))
    }

    pub fn is_empty(&self) -> bool {
        self.rx.is_empty()
    }

    fn release(&self, event: Event) -> Event {
        if let Event::Output { .. } = event {
            self.lines.add_permits(1);
        }
        event
    }
}

/// A job's handle for sending events; cheap to clone.
#[derive(Clone)]
pub struct Events {
    sink: Sink,
    job: JobRef,
}

impl Events {
    pub fn new(sink: Sink, job: JobRef) -> Events {
        Events { sink, job }
    }

    pub fn job(&self) -> JobRef {
        self.job.clone()
    }

    /// The sink, for events that belong to the run rather than to this job.
    pub fn sink(&self) -> &Sink {
        &self.sink
    }

    /// Sends an event, masked; a reporter that has gone away is not the job's problem.
    pub fn send(&self, event: Event) {
        let _ = self.sink.tx.send(mask_event(&self.sink.secrets, event));
    }

    /// A line splitter for a step's output that masks secrets cut across chunks.
    pub fn line_splitter(&self) -> LineSplitter {
        LineSplitter::masking(self.sink.secrets.clone())
    }

    pub fn section(&self, title: impl Into<String>) {
        self.send(Event::Section {
            job: self.job(),
            title: title.into(),
        });
    }

    pub fn info(&self, text: impl Into<String>) {
        self.send(Event::Info {
            job: self.job(),
            text: text.into(),
        });
    }

    pub fn warning(&self, text: impl Into<String>) {
        self.send(Event::Warning {
            job: self.job(),
            text: text.into(),
        });
    }

    /// Sends an output line, waiting while too many lines are unread.
    pub async fn output(&self, step: usize, stream: Stream, line: String) {
        if let Ok(permit) = self.sink.lines.acquire().await {
            // Given back by the reporter when it reads the line.
            permit.forget();
        }
        self.send(Event::Output {
            job: self.job(),
            step,
            stream,
            line,
        });
    }
}
