//! What happens during a run, as data. Steps and the engine send [`Event`]s through an
//! [`Events`] handle; only the reporter turns them into text.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc::UnboundedSender;

pub use crate::backend::Stream;

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
    JobFinished {
        job: Arc<str>,
        passed: bool,
        /// The first failed step's name and why, when the job failed.
        failure: Option<String>,
        duration: Duration,
    },
}

/// A job's handle for sending events; cheap to clone.
#[derive(Clone)]
pub struct Events {
    tx: UnboundedSender<Event>,
    job: Arc<str>,
}

impl Events {
    pub fn new(tx: UnboundedSender<Event>, job: &str) -> Events {
        Events {
            tx,
            job: Arc::from(job),
        }
    }

    pub fn job(&self) -> Arc<str> {
        self.job.clone()
    }

    /// Sends an event; a reporter that has gone away is not the job's problem.
    pub fn send(&self, event: Event) {
        let _ = self.tx.send(event);
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

    pub fn output(&self, step: usize, stream: Stream, line: String) {
        self.send(Event::Output {
            job: self.job(),
            step,
            stream,
            line,
        });
    }
}
