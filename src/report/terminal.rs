//! The human reporter: CircleCI-style `====>> <step>` sections on stdout, one whole line at a
//! time. It is the only place that decides what a person sees of a run: for a run of several
//! jobs, every job line gets its job's prefix; on a terminal, a live block of running jobs and
//! pulls stays under the logs; at the end, the run's table. It must not format a line itself
//! (render.rs, table.rs do) nor draw (live.rs does).

use std::collections::HashMap;
use std::io::Write;
use std::time::{Duration, Instant};

use indicatif::ProgressDrawTarget;

use super::event::{Event, JobRef, JobStatus, TestCounts};
use super::live::Live;
use super::prefix::Prefixes;
use super::render::{Render, service_block};
use super::style::Paint;
use super::table::{Summary, add_counts, table};

pub struct Terminal<W: Write> {
    out: W,
    paint: Paint,
    render: Render,
    /// Set for runs of several jobs: every job line gets its job's prefix.
    prefixes: Option<Prefixes>,
    live: Live,
    /// Whether the live block is drawn on stderr (kept for when [`Live`] is rebuilt).
    live_on: bool,
    /// Service blocks held until the node that sent them ends: shown if it fails.
    services: HashMap<JobRef, Vec<Vec<String>>>,
    /// Test counts seen per job, for a table row that has none.
    tests: HashMap<String, TestCounts>,
    workflow: Option<String>,
    /// Text not yet written: it goes out in one piece, with the live block out of the way.
    pending: Vec<u8>,
    /// When pending text was last written while the live block was drawn.
    last_write: Option<Instant>,
}

/// Pending text is written out at this size even if more events are waiting.
const PENDING_MAX: usize = 64 * 1024;

/// While the live block is drawn, every write clears and redraws it: at most this often (the
/// tick writes what waited), so a job printing a line every few milliseconds does not make
/// the block flicker.
const LIVE_WRITE_EVERY: Duration = Duration::from_millis(50);

impl<W: Write> Terminal<W> {
    pub fn new(out: W, color: bool) -> Terminal<W> {
        let paint = Paint::new(color);
        Terminal {
            out,
            paint,
            render: Render::new(paint),
            prefixes: None,
            live: Live::new(ProgressDrawTarget::hidden(), color, false),
            live_on: false,
            services: HashMap::new(),
            tests: HashMap::new(),
            workflow: None,
            pending: Vec::new(),
            last_write: None,
        }
    }

    /// Attributes every job line to its job (`build | ...`) and, when live, gives each running
    /// job a line in the live block: for runs of several jobs.
    #[must_use]
    pub fn multi_job(mut self, on: bool) -> Terminal<W> {
        self.prefixes = on.then(|| Prefixes::new(self.paint));
        self.rebuild_live();
        self
    }

    /// Draws the live block (pulls, and running jobs when [`Terminal::multi_job`]) on stderr;
    /// indicatif draws nothing when stderr is not a terminal.
    #[must_use]
    pub fn live(mut self, on: bool) -> Terminal<W> {
        self.live_on = on;
        self.rebuild_live();
        self
    }

    fn rebuild_live(&mut self) {
        let target = if self.live_on {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        self.live = Live::new(target, self.paint.color(), self.prefixes.is_some());
    }

    pub fn into_inner(self) -> W {
        self.out
    }

    /// Takes one event (call [`Terminal::flush`] to show it); an unwritable stdout (a closed
    /// pipe) is ignored, as `echo` would.
    pub fn handle(&mut self, event: &Event) {
        if let Event::LayerProgress { .. } = event
            && !self.live.has_pulls()
        {
            // The lines before the pull ("Pulling image ...") must be on screen before the
            // layer lines are drawn under them.
            self.flush();
        }
        if self.prefixes.is_none() && !matches!(event, Event::LayerProgress { .. }) {
            // One job: its pull is over once anything else happens, whatever the engine sent.
            self.live.clear_pulls();
        }
        let prefixes = &mut self.prefixes;
        self.live.observe(event, |job| match prefixes {
            Some(p) => p.label(job),
            None => job.to_string(),
        });
        let lines = self.lines(event);
        self.write(event.job(), &lines);
    }

    /// The lines an event shows, with what it brings along (held service blocks, the table).
    fn lines(&mut self, event: &Event) -> Vec<String> {
        match event {
            Event::RunStarted { workflow, jobs, .. } => {
                self.workflow.clone_from(workflow);
                if let Some(p) = &mut self.prefixes {
                    p.announce(jobs);
                }
                Vec::new()
            }
            Event::TestSummary { job, counts } => {
                add_counts(&mut self.tests, &job.name, counts);
                self.render.lines(event)
            }
            Event::ServiceLog {
                job,
                service,
                exit_code,
                lines,
            } => self.service_log(job, service, *exit_code, lines),
            Event::JobFinished { job, passed, .. } => {
                let mut lines = self.held_services(|j| j == job, !passed);
                lines.extend(self.render.lines(event));
                lines
            }
            Event::JobEnded { job, status, .. } => {
                // A job canceled before its nodes finished still shows what its services said.
                let failed = matches!(status, JobStatus::Failed | JobStatus::Canceled);
                let mut lines = self.held_services(|j| j.name == job.name, failed);
                lines.extend(self.render.lines(event));
                lines
            }
            // One job alone ends with its own `Success!`/`Task failed` line, as it always did.
            Event::RunFinished { .. } if self.prefixes.is_none() => Vec::new(),
            Event::RunFinished {
                rows,
                wall,
                job_time,
            } => table(
                self.paint,
                &Summary {
                    workflow: self.workflow.as_deref(),
                    rows,
                    seen_tests: &self.tests,
                    wall: *wall,
                    job_time: *job_time,
                },
            ),
            _ => self.render.lines(event),
        }
    }

    /// A service that failed is shown at once; the others are held until their node ends.
    fn service_log(
        &mut self,
        job: &JobRef,
        service: &str,
        exit_code: Option<i64>,
        lines: &[String],
    ) -> Vec<String> {
        let block = service_block(self.paint, service, exit_code, lines);
        if exit_code.is_some_and(|c| c != 0) {
            return block;
        }
        self.services.entry(job.clone()).or_default().push(block);
        Vec::new()
    }

    /// Takes the held service blocks of the nodes `which` selects: their lines when `show`.
    fn held_services(&mut self, which: impl Fn(&JobRef) -> bool, show: bool) -> Vec<String> {
        let nodes: Vec<JobRef> = self.services.keys().filter(|j| which(j)).cloned().collect();
        let blocks = nodes.iter().filter_map(|j| self.services.remove(j));
        let lines: Vec<String> = blocks.flatten().flatten().collect();
        if show { lines } else { Vec::new() }
    }

    /// Queues whole lines, each with the job's prefix in a multi-job run.
    fn write(&mut self, job: Option<&JobRef>, lines: &[String]) {
        let prefix = match (job, &mut self.prefixes) {
            (Some(job), Some(p)) if !lines.is_empty() => p.prefix(job),
            _ => "",
        };
        // A message of several lines gets the prefix on each of them.
        for line in lines.iter().flat_map(|l| l.split('\n')) {
            self.pending.extend_from_slice(prefix.as_bytes());
            self.pending.extend_from_slice(line.as_bytes());
            self.pending.push(b'\n');
        }
        if self.pending.len() >= PENDING_MAX {
            self.flush();
        }
    }

    /// Advances the live block's spinners and clocks, and writes what waited.
    pub fn tick(&mut self) {
        self.live.tick();
        self.write_out();
    }

    /// Writes out what is pending, with the live block out of the way (or leaves it to the
    /// next tick when the block was redrawn a moment ago).
    pub fn flush(&mut self) {
        let recent = self
            .last_write
            .is_some_and(|at| at.elapsed() < LIVE_WRITE_EVERY);
        if recent && self.live.is_drawn() && self.pending.len() < PENDING_MAX {
            return;
        }
        self.write_out();
    }

    fn write_out(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        if self.live.is_drawn() {
            self.last_write = Some(Instant::now());
        }
        let text = std::mem::take(&mut self.pending);
        let out = &mut self.out;
        self.live.suspend(|| {
            let _ = out.write_all(&text);
            let _ = out.flush();
        });
    }

    /// Writes everything out and clears the live block, which stays away until
    /// [`Terminal::take_back`]: an interactive shell has the terminal meanwhile.
    pub fn hand_over(&mut self) {
        self.live.pause();
        self.write_out();
    }

    /// Draws the live block again after [`Terminal::hand_over`].
    pub fn take_back(&mut self) {
        if self.live_on {
            self.live.resume();
        }
    }

    /// Clears what is still drawn and writes everything out; the last call.
    pub fn finish(&mut self) {
        self.live.clear();
        self.write_out();
    }
}

#[cfg(test)]
mod tests;
