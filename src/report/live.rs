//! The live view of a run on a terminal: one indicatif block under the streamed logs, with one
//! line per running job (node): spinner, job, elapsed time, state and current step; and the
//! layer lines of image pulls. Logs are written through [`Live::suspend`] so they never tear
//! the block. Drawn on stderr only when it is a terminal (indicatif hides it otherwise): no
//! escape code ever reaches a pipe. It only draws; it never writes a log line itself.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::event::{Event, JobRef, StepStatus};
use super::pull_bars::PullBars;
use super::render::short_name;

pub(crate) struct Live {
    multi: MultiProgress,
    pulls: PullBars,
    /// Whether running jobs get a line (multi-job runs); pulls are drawn either way.
    job_lines: bool,
    jobs: BTreeMap<JobRef, JobLine>,
    /// Nodes that finished: a late event of theirs (cleanup) must not bring a line back.
    finished: HashSet<JobRef>,
    style: ProgressStyle,
}

struct JobLine {
    bar: ProgressBar,
    state: &'static str,
    activity: String,
}

impl Live {
    /// A view drawn on `target` (hidden, or stderr when it is a terminal).
    pub(crate) fn new(target: ProgressDrawTarget, color: bool, job_lines: bool) -> Live {
        let multi = MultiProgress::with_draw_target(target);
        // `wide_msg` is cut to the terminal's width: a long step name never wraps the line.
        let template = if color {
            "{spinner:.dim} {prefix} {elapsed:>4.dim} {wide_msg}"
        } else {
            "{spinner} {prefix} {elapsed:>4} {wide_msg}"
        };
        Live {
            pulls: PullBars::new(multi.clone(), color),
            multi,
            job_lines,
            jobs: BTreeMap::new(),
            finished: HashSet::new(),
            style: ProgressStyle::with_template(template).expect("the template is valid"),
        }
    }

    /// Removes the pull lines (a single job's pull is over once anything else happens).
    pub(crate) fn clear_pulls(&mut self) {
        self.pulls.clear();
    }

    pub(crate) fn has_pulls(&self) -> bool {
        !self.pulls.is_empty()
    }

    /// Whether the block is on screen now (drawn on a terminal and not empty).
    pub(crate) fn is_drawn(&self) -> bool {
        !(self.multi.is_hidden() || self.jobs.is_empty() && self.pulls.is_empty())
    }

    /// Runs `write` with the block cleared, then draws it again under what was written.
    pub(crate) fn suspend<R>(&self, write: impl FnOnce() -> R) -> R {
        if self.jobs.is_empty() && self.pulls.is_empty() {
            write()
        } else {
            self.multi.suspend(write)
        }
    }

    /// Follows an event: pull lines, and the line of the job it belongs to. `label` is the
    /// job's (padded, colored) name.
    pub(crate) fn observe(&mut self, event: &Event, label: impl FnOnce(&JobRef) -> String) {
        match event {
            Event::LayerProgress {
                image,
                layer,
                status,
                current,
                total,
                ..
            } => self.pulls.update(image, layer, status, (*current, *total)),
            Event::PullEnded { image, .. } => self.pulls.end(image),
            _ => {}
        }
        if self.job_lines {
            self.follow_job(event, label);
        }
    }

    fn follow_job(&mut self, event: &Event, label: impl FnOnce(&JobRef) -> String) {
        let Some(job) = event.job() else { return };
        let whole = JobRef::new(&job.name, None);
        if self.finished.contains(job) || self.finished.contains(&whole) {
            return;
        }
        match event {
            Event::JobFinished { .. } => {
                self.finished.insert(job.clone());
                return self.remove(|j| j == job);
            }
            // The whole job is over, all its nodes with it.
            Event::JobEnded { .. } => {
                self.finished.insert(whole);
                return self.remove(|j| j.name == job.name);
            }
            Event::TestSummary { .. } | Event::ServiceLog { .. } => return,
            _ => {}
        }
        let line = self.line(job, label);
        match event {
            Event::LayerProgress { image, .. } => line.set("pulling", image),
            Event::Section { title, .. } => line.set("running", title),
            Event::StepStarted { name, .. } => {
                let state = if line.state == "failing" {
                    "failing"
                } else {
                    "running"
                };
                line.set(state, &short_name(name));
            }
            Event::StepFinished {
                status: StepStatus::Failed { .. },
                ..
            } => line.set("failing", &line.activity.clone()),
            // --watch: between runs the job waits; a rerun starts afresh.
            Event::WatchResult { .. } => line.set("waiting", "for changes (--watch)"),
            Event::WatchRerun { run, .. } => line.set("running", &format!("rerun {run}")),
            _ => {}
        }
    }

    /// The line of `job`, made on its first event. A node's line replaces the job's own line
    /// (from `JobStarted`): the nodes are what runs.
    fn line(&mut self, job: &JobRef, label: impl FnOnce(&JobRef) -> String) -> &mut JobLine {
        if !self.jobs.contains_key(job) {
            if job.node.is_some() {
                let whole = JobRef::new(&job.name, None);
                self.remove(|j| *j == whole);
            }
            let bar = self.multi.add(ProgressBar::new_spinner());
            bar.set_style(self.style.clone());
            bar.set_prefix(label(job));
            let mut line = JobLine {
                bar,
                state: "",
                activity: String::new(),
            };
            line.set("starting", "");
            self.jobs.insert(job.clone(), line);
        }
        self.jobs.get_mut(job).expect("inserted above")
    }

    fn remove(&mut self, which: impl Fn(&JobRef) -> bool) {
        let gone: Vec<JobRef> = self.jobs.keys().filter(|j| which(j)).cloned().collect();
        for job in gone {
            if let Some(line) = self.jobs.remove(&job) {
                line.bar.finish_and_clear();
                self.multi.remove(&line.bar);
            }
        }
    }

    /// Advances the spinners and elapsed times (called a few times a second).
    pub(crate) fn tick(&self) {
        for line in self.jobs.values() {
            line.bar.tick();
        }
    }

    /// Clears the block from the screen and draws nothing until [`Live::resume`].
    pub(crate) fn pause(&mut self) {
        let _ = self.multi.clear();
        self.multi.set_draw_target(ProgressDrawTarget::hidden());
    }

    /// Draws the block on stderr again (at the next tick).
    pub(crate) fn resume(&mut self) {
        self.multi.set_draw_target(ProgressDrawTarget::stderr());
    }

    /// Removes every line: the run is over.
    pub(crate) fn clear(&mut self) {
        self.pulls.clear();
        self.remove(|_| true);
        let _ = self.multi.clear();
    }

    /// What the line of `job` shows: its state and activity, when it has a line.
    #[cfg(test)]
    pub(crate) fn shown(&self, job: &JobRef) -> Option<String> {
        self.jobs.get(job).map(|l| l.bar.message())
    }
}

impl JobLine {
    fn set(&mut self, state: &'static str, activity: &str) {
        self.state = state;
        activity.clone_into(&mut self.activity);
        if activity.is_empty() {
            self.bar.set_message(state);
        } else {
            self.bar.set_message(format!("{state}: {activity}"));
        }
    }
}

/// How often the spinners move while nothing else happens.
pub(crate) const TICK: Duration = Duration::from_millis(100);
