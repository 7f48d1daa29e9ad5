//! What happens during a run, as data. Steps and the engine send [`Event`]s through an
//! [`Events`] handle; only the reporter turns them into text.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender};

pub use crate::backend::Stream;

use super::lines::LineSplitter;
use super::mask::{Secrets, mask_event};

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
        job: Arc<str>,
        title: String,
    },
    Info {
        job: Arc<str>,
        text: String,
    },
    Warning {
        job: Arc<str>,
        text: String,
    },
    StepStarted {
        job: Arc<str>,
        step: usize,
        name: String,
        /// Lines shown under the step's title (`#!/bin/bash -eo pipefail` and the command).
        header: Vec<String>,
        background: bool,
    },
    Output {
        job: Arc<str>,
        step: usize,
        stream: Stream,
        line: String,
    },
    StepFinished {
        job: Arc<str>,
        step: usize,
        status: StepStatus,
        duration: Duration,
    },
    StepSkipped {
        job: Arc<str>,
        step: usize,
        name: String,
        reason: String,
    },
    /// Progress of one layer while an image is pulled; drawn only on a terminal.
    LayerProgress {
        job: Arc<str>,
        image: String,
        layer: String,
        /// Docker's status text (`Downloading`, `Extracting`, `Pull complete` ...).
        status: String,
        current: Option<u64>,
        total: Option<u64>,
    },
    /// The pull of an image ended, either way: its layer lines go away.
    PullEnded {
        job: Arc<str>,
        image: String,
    },
    JobFinished {
        job: Arc<str>,
        passed: bool,
        /// The first failed step's name and why, when the job failed.
        failure: Option<String>,
        duration: Duration,
    },
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
    job: Arc<str>,
}

impl Events {
    pub fn new(sink: Sink, job: &str) -> Events {
        Events {
            sink,
            job: Arc::from(job),
        }
    }

    pub fn job(&self) -> Arc<str> {
        self.job.clone()
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
