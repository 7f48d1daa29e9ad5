//! The human reporter: CircleCI-style `====>> <step>` sections on stdout, one whole line at a
//! time. It is the only place that formats run output, so concurrent jobs and background steps
//! can never garble a line.

use std::collections::HashMap;
use std::io::Write;

use indicatif::ProgressDrawTarget;

use super::event::{Event, JobRef, JobStatus, StepStatus};
use super::pull_bars::PullBars;
use crate::units::format_go;

pub struct Terminal<W: Write> {
    out: W,
    color: bool,
    /// Names of the background steps seen so far, by (job, step): their lines get a prefix.
    background: HashMap<(JobRef, usize), String>,
    /// Short names of the steps started, by (job, step), for their closing line.
    names: HashMap<(JobRef, usize), String>,
    /// The live layer lines of a pull (hidden unless [`Terminal::show_pulls`]).
    pulls: PullBars,
}

/// Step names in closing lines are cut to this many characters.
const SHORT_NAME: usize = 60;

/// The first line of a step name, cut to [`SHORT_NAME`] characters.
fn short_name(name: &str) -> String {
    let first = name.lines().next().unwrap_or_default();
    if first.chars().count() > SHORT_NAME || name.lines().nth(1).is_some() {
        let cut: String = first.chars().take(SHORT_NAME).collect();
        format!("{cut}...")
    } else {
        first.to_string()
    }
}

const BOLD: &str = "\x1b[1m";
const GREEN: &str = "\x1b[32m";
const RED: &str = "\x1b[31m";
const YELLOW: &str = "\x1b[33m";
const DIM: &str = "\x1b[2m";
const RESET: &str = "\x1b[0m";

/// The word a status is shown with in lines and the end table.
fn status_word(status: &JobStatus) -> &'static str {
    match status {
        JobStatus::Success => "success",
        JobStatus::Failed => "failed",
        JobStatus::Canceled => "canceled",
        JobStatus::NotRun(_) => "not run",
        JobStatus::OnHold(_) => "on hold",
        JobStatus::Skipped(_) => "skipped",
    }
}

impl<W: Write> Terminal<W> {
    pub fn new(out: W, color: bool) -> Terminal<W> {
        Terminal {
            out,
            color,
            background: HashMap::new(),
            names: HashMap::new(),
            pulls: PullBars::new(ProgressDrawTarget::hidden(), color),
        }
    }

    /// Draws pull progress (one line per layer) on stderr; for when stderr is a terminal.
    pub fn show_pulls(mut self) -> Terminal<W> {
        self.pulls = PullBars::new(ProgressDrawTarget::stderr(), self.color);
        self
    }

    pub fn into_inner(self) -> W {
        self.out
    }

    fn paint(&self, style: &str, text: &str) -> String {
        if self.color {
            format!("{style}{text}{RESET}")
        } else {
            text.to_string()
        }
    }

    /// Writes one event (call [`Terminal::flush`] to show it); an unwritable stdout (a closed
    /// pipe) is ignored, as `echo` would.
    pub fn handle(&mut self, event: &Event) {
        match event {
            Event::LayerProgress {
                layer,
                status,
                current,
                total,
                ..
            } => {
                if self.pulls.is_empty() {
                    // The lines before the pull ("Pulling image ...") must be on screen
                    // before the layer lines are drawn under them.
                    self.flush();
                }
                self.pulls.update(layer, status, *current, *total);
                return;
            }
            Event::PullEnded { .. } => {
                self.pulls.clear();
                return;
            }
            // Never a line in the middle of the live display, whatever the engine sent.
            _ => self.pulls.clear(),
        }
        let text = self.render(event);
        if !text.is_empty() {
            let _ = self.out.write_all(text.as_bytes());
        }
    }

    pub fn flush(&mut self) {
        let _ = self.out.flush();
    }

    /// Clears what is still drawn and writes everything out; the last call.
    pub fn finish(&mut self) {
        self.pulls.clear();
        self.flush();
    }

    fn render(&mut self, event: &Event) -> String {
        match event {
            Event::LayerProgress { .. }
            | Event::PullEnded { .. }
            | Event::RunStarted { .. }
            | Event::JobStarted { .. } => String::new(),
            Event::JobEnded { job, status, .. } => match status {
                JobStatus::NotRun(why) | JobStatus::OnHold(why) | JobStatus::Skipped(why) => {
                    format!(
                        "{}\n",
                        self.paint(
                            DIM,
                            &format!("Job \"{job}\" {}: {why}", status_word(status))
                        )
                    )
                }
                _ => String::new(),
            },
            Event::TestSummary { job, counts } => format!(
                "Tests of \"{job}\": {} run, {} failed, {} errors, {} skipped\n",
                counts.tests, counts.failures, counts.errors, counts.skipped
            ),
            Event::RunFinished {
                rows,
                wall,
                job_time,
            } => {
                let mut s = String::new();
                for row in rows {
                    let took = row.duration.map_or("-".to_string(), format_go);
                    s.push_str(&format!(
                        "  {:<30} {:<10} {took}\n",
                        row.job,
                        status_word(&row.status)
                    ));
                }
                s.push_str(&format!(
                    "Workflow took {} (jobs took {} in all)\n",
                    format_go(*wall),
                    format_go(*job_time)
                ));
                s
            }
            Event::Section { title, .. } => {
                format!("{}\n", self.paint(BOLD, &format!("====>> {title}")))
            }
            Event::Info { text, .. } => format!("{text}\n"),
            Event::Warning { text, .. } => {
                format!("{} {text}\n", self.paint(YELLOW, "Warning:"))
            }
            Event::StepStarted {
                job,
                step,
                name,
                header,
                background,
            } => {
                let mut s = self.paint(BOLD, &format!("====>> {name}"));
                self.names.insert((job.clone(), *step), short_name(name));
                if *background {
                    s.push_str(&self.paint(DIM, " (background)"));
                    self.background
                        .insert((job.clone(), *step), short_name(name));
                }
                s.push('\n');
                for line in header {
                    s.push_str(&self.paint(DIM, &format!("  {line}")));
                    s.push('\n');
                }
                s
            }
            Event::Output {
                job, step, line, ..
            } => match self.background.get(&(job.clone(), *step)) {
                Some(name) => format!("{} {line}\n", self.paint(DIM, &format!("[{name}]"))),
                None => format!("{line}\n"),
            },
            Event::StepFinished {
                job,
                step,
                status,
                duration,
            } => {
                let key = (job.clone(), *step);
                let name = self.names.get(&key).cloned().unwrap_or_default();
                let who = if self.background.contains_key(&key) {
                    format!("background step \"{name}\" ")
                } else {
                    format!("\"{name}\" ")
                };
                let took = format_go(*duration);
                match status {
                    StepStatus::Passed { exit_code } => {
                        let code = exit_code.map_or(String::new(), |c| format!(", exit code {c}"));
                        format!(
                            "{}\n",
                            self.paint(GREEN, &format!("---> {who}passed in {took}{code}"))
                        )
                    }
                    StepStatus::Failed { exit_code, reason } => {
                        let mut s = String::new();
                        if let Some(reason) = reason {
                            s.push_str(&format!("{}\n", self.paint(RED, reason)));
                        }
                        if let Some(code) = exit_code {
                            s.push_str(&format!("Exited with code exit status {code}\n"));
                        }
                        let code = exit_code.map_or(String::new(), |c| format!(", exit code {c}"));
                        s.push_str(&format!(
                            "{}\n",
                            self.paint(RED, &format!("---> {who}failed in {took}{code}"))
                        ));
                        s
                    }
                }
            }
            Event::StepSkipped { name, reason, .. } => {
                format!(
                    "{}\n",
                    self.paint(DIM, &format!("====>> {name} (skipped: {reason})"))
                )
            }
            Event::JobFinished {
                job,
                passed,
                failure,
                duration,
            } => {
                let took = format_go(*duration);
                if *passed {
                    format!(
                        "{}\n",
                        self.paint(GREEN, &format!("Success! Job \"{job}\" passed in {took}"))
                    )
                } else {
                    let why = failure
                        .as_deref()
                        .map_or(String::new(), |f| format!(": {f}"));
                    format!(
                        "{}\n",
                        self.paint(
                            RED,
                            &format!("Task failed. Job \"{job}\" failed in {took}{why}")
                        )
                    )
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::backend::Stream;

    #[test]
    fn renders_circleci_style_sections() {
        let job = JobRef::new("build", None);
        let mut t = Terminal::new(Vec::new(), false);
        let events = [
            Event::StepStarted {
                job: job.clone(),
                step: 1,
                name: "make".into(),
                header: vec!["#!/bin/sh -eo pipefail".into(), "make".into()],
                background: false,
            },
            Event::Output {
                job: job.clone(),
                step: 1,
                stream: Stream::Stdout,
                line: "ok".into(),
            },
            Event::StepFinished {
                job: job.clone(),
                step: 1,
                status: StepStatus::Failed {
                    exit_code: Some(2),
                    reason: None,
                },
                duration: Duration::from_millis(1500),
            },
            Event::StepStarted {
                job: job.clone(),
                step: 2,
                name: "server".into(),
                header: vec![],
                background: true,
            },
            Event::Output {
                job: job.clone(),
                step: 2,
                stream: Stream::Stderr,
                line: "listening".into(),
            },
            Event::JobFinished {
                job,
                passed: false,
                failure: Some("step \"make\" failed".into()),
                duration: Duration::from_secs(2),
            },
        ];
        for e in &events {
            t.handle(e);
        }
        let text = String::from_utf8(t.into_inner()).unwrap();
        assert_eq!(
            text,
            "====>> make\n  #!/bin/sh -eo pipefail\n  make\nok\nExited with code exit status 2\n---> \"make\" failed in 1.5s, exit code 2\n====>> server (background)\n[server] listening\nTask failed. Job \"build\" failed in 2s: step \"make\" failed\n"
        );
    }

    #[test]
    fn pull_progress_never_reaches_the_text_output() {
        let job = JobRef::new("build", None);
        let mut t = Terminal::new(Vec::new(), false);
        let info = |text: &str| Event::Info {
            job: job.clone(),
            text: text.into(),
        };
        t.handle(&info("Pulling image img"));
        t.handle(&Event::LayerProgress {
            job: job.clone(),
            image: "img".into(),
            layer: "fa71c512a4f3".into(),
            status: "Downloading".into(),
            current: Some(1),
            total: Some(2),
        });
        assert!(!t.pulls.is_empty());
        t.handle(&Event::PullEnded {
            job: job.clone(),
            image: "img".into(),
        });
        assert!(t.pulls.is_empty());
        t.handle(&info("Pulled img in 1s"));
        let text = String::from_utf8(t.into_inner()).unwrap();
        assert_eq!(text, "Pulling image img\nPulled img in 1s\n");
    }

    #[test]
    fn closing_lines_use_a_short_name() {
        assert_eq!(short_name("make test"), "make test");
        assert_eq!(short_name("echo a\necho b"), "echo a...");
        assert_eq!(
            short_name(&"x".repeat(70)),
            format!("{}...", "x".repeat(60))
        );
    }
}
