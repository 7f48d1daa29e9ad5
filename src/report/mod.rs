//! Run output: steps and the engine emit [`Event`]s into a channel; ONE reporter task consumes
//! them and writes them out, so lines are never interleaved mid-line: text for people
//! ([`Terminal`]: CircleCI's sections, job prefixes and a live block for multi-job runs, the
//! end table) or JSON lines for tools ([`Json`], docs/events.md). Nothing else prints run
//! output.

mod event;
mod handoff;
mod json;
mod lines;
mod live;
mod logs;
pub mod mask;
mod prefix;
mod pull_bars;
mod render;
mod style;
mod table;
mod terminal;

use std::io::{BufWriter, Write};

use tokio::task::JoinHandle;

pub use event::{
    Event, Events, JobRef, JobRow, JobStatus, Receiver, Sink, StepStatus, Stream, SyncCounts,
    TestCounts, channel,
};
pub use handoff::{Handoff, Lender, handoff};
pub use json::Json;
pub use lines::LineSplitter;
pub use logs::LogPaths;
pub use terminal::Terminal;

/// Which reporter turns the run's events into output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReporterKind {
    /// Text for people. `live`: draw the live block (pulls, running jobs) on stderr; give it
    /// only when stderr is a terminal. `multi_job`: a run of several jobs, every job line
    /// attributed to its job.
    Terminal {
        color: bool,
        live: bool,
        multi_job: bool,
    },
    /// One JSON object per event per line (`--json`, docs/events.md).
    Json,
}

/// What the consumer task needs of a reporter.
trait Reporter: Send {
    fn handle(&mut self, event: &Event);
    fn flush(&mut self);
    fn tick(&mut self) {}
    fn finish(&mut self) {
        self.flush();
    }
    /// Writes out everything and leaves the terminal alone (a shell takes it over).
    fn hand_over(&mut self) {
        self.flush();
    }
    /// The terminal is back after [`Reporter::hand_over`].
    fn take_back(&mut self) {}
}

impl<W: Write + Send> Reporter for Terminal<W> {
    fn handle(&mut self, event: &Event) {
        Terminal::handle(self, event);
    }
    fn flush(&mut self) {
        Terminal::flush(self);
    }
    fn tick(&mut self) {
        Terminal::tick(self);
    }
    fn finish(&mut self) {
        Terminal::finish(self);
    }
    fn hand_over(&mut self) {
        Terminal::hand_over(self);
    }
    fn take_back(&mut self) {
        Terminal::take_back(self);
    }
}

impl<W: Write + Send> Reporter for Json<W> {
    fn handle(&mut self, event: &Event) {
        Json::handle(self, event);
    }
    fn flush(&mut self) {
        Json::flush(self);
    }
}

/// Starts the one reporter task, writing to `out`. Drop every sink, then await the handle to
/// be sure everything was written.
pub fn spawn<W: Write + Send + 'static>(out: W, kind: ReporterKind) -> (Sink, JoinHandle<()>) {
    spawn_with_logs(out, kind, None)
}

/// [`spawn`], also writing each job's own log where `logs` says.
pub fn spawn_with_logs<W: Write + Send + 'static>(
    out: W,
    kind: ReporterKind,
    logs: Option<LogPaths>,
) -> (Sink, JoinHandle<()>) {
    let (sink, rx) = channel();
    let out = BufWriter::with_capacity(64 * 1024, out);
    let (reporter, live): (Box<dyn Reporter>, bool) = match kind {
        ReporterKind::Terminal {
            color,
            live,
            multi_job,
        } => {
            let terminal = Terminal::new(out, color).multi_job(multi_job).live(live);
            (Box::new(terminal), live)
        }
        ReporterKind::Json => (Box::new(Json::new(out)), false),
    };
    let reporter: Box<dyn Reporter> = match logs {
        Some(paths) => Box::new(WithLogs {
            main: reporter,
            logs: logs::JobLogs::new(paths),
        }),
        None => reporter,
    };
    (sink, tokio::spawn(consume(rx, reporter, live)))
}

/// A reporter that also writes every job's log.
struct WithLogs {
    main: Box<dyn Reporter>,
    logs: logs::JobLogs,
}

impl Reporter for WithLogs {
    fn handle(&mut self, event: &Event) {
        self.main.handle(event);
        self.logs.handle(event);
    }
    fn flush(&mut self) {
        self.main.flush();
        self.logs.flush();
    }
    fn tick(&mut self) {
        self.main.tick();
    }
    fn finish(&mut self) {
        self.main.finish();
        self.logs.flush();
    }
    fn hand_over(&mut self) {
        self.main.hand_over();
        self.logs.flush();
    }
    fn take_back(&mut self) {
        self.main.take_back();
    }
}

/// Feeds every event to the reporter until every sink is gone; ticks the live view meanwhile.
async fn consume(mut rx: Receiver, mut reporter: Box<dyn Reporter>, live: bool) {
    let mut ticks = tokio::time::interval(live::TICK);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            event = rx.recv() => {
                let Some(event) = event else { break };
                reporter.handle(&event);
                if let Event::ShellOpened { job, handoff, .. } = &event {
                    // Nothing is written while the shell has the terminal; its end is the
                    // first thing shown after.
                    reporter.hand_over();
                    let exit_code = handoff.lend().await;
                    reporter.take_back();
                    reporter.handle(&Event::ShellClosed { job: job.clone(), exit_code });
                    continue;
                }
                // Flush when caught up: a live view without a write per line under load.
                if rx.is_empty() {
                    reporter.flush();
                }
            }
            _ = ticks.tick(), if live => reporter.tick(),
        }
    }
    reporter.finish();
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// A writer the test can read after the reporter task has ended.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    async fn report(kind: ReporterKind) -> String {
        let out = Shared::default();
        let (sink, task) = spawn(out.clone(), kind);
        let events = Events::new(sink, JobRef::new("build", Some(0)));
        events.info("Pulled img in 1s");
        events.output(1, Stream::Stdout, "hello".into()).await;
        drop(events);
        task.await.unwrap();
        let text = out.0.lock().unwrap().clone();
        String::from_utf8(text).unwrap()
    }

    #[tokio::test]
    async fn the_kind_chooses_the_reporter() {
        let terminal = ReporterKind::Terminal {
            color: false,
            live: false,
            multi_job: true,
        };
        assert_eq!(
            report(terminal).await,
            "build[0] | Pulled img in 1s\nbuild[0] | hello\n"
        );
        let json = report(ReporterKind::Json).await;
        let types: Vec<&str> = json.lines().map(|l| l.split('"').nth(3).unwrap()).collect();
        assert_eq!(types, ["info", "output"], "{json}");
    }
}
