//! The human reporter: CircleCI-style `====>> <step>` sections on stdout, one whole line at a
//! time. It is the only place that formats run output, so concurrent jobs and background steps
//! can never garble a line.

use std::collections::HashMap;
use std::io::Write;
use std::sync::Arc;

use super::event::{Event, StepStatus};
use crate::config::format_duration;

pub struct Terminal<W: Write> {
    out: W,
    color: bool,
    /// Names of the background steps seen so far, by (job, step): their lines get a prefix.
    background: HashMap<(Arc<str>, usize), String>,
}

const BOLD: &str = "\x1b[1m";
const GREEN: &str = "\x1b[32m";
const RED: &str = "\x1b[31m";
const YELLOW: &str = "\x1b[33m";
const DIM: &str = "\x1b[2m";
const RESET: &str = "\x1b[0m";

impl<W: Write> Terminal<W> {
    pub fn new(out: W, color: bool) -> Terminal<W> {
        Terminal {
            out,
            color,
            background: HashMap::new(),
        }
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

    /// Writes one event; an unwritable stdout (a closed pipe) is ignored like `echo` would.
    pub fn handle(&mut self, event: &Event) {
        let text = self.render(event);
        if !text.is_empty() {
            let _ = self.out.write_all(text.as_bytes());
            let _ = self.out.flush();
        }
    }

    fn render(&mut self, event: &Event) -> String {
        match event {
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
                if *background {
                    s.push_str(&self.paint(DIM, " (background)"));
                    self.background.insert((job.clone(), *step), name.clone());
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
                let who = match self.background.get(&(job.clone(), *step)) {
                    Some(name) => format!("background step \"{name}\" "),
                    None => String::new(),
                };
                let took = format_duration(*duration);
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
                let took = format_duration(*duration);
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
        let job: Arc<str> = Arc::from("build");
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
            "====>> make\n  #!/bin/sh -eo pipefail\n  make\nok\nExited with code exit status 2\n---> failed in 1.5s, exit code 2\n====>> server (background)\n[server] listening\nTask failed. Job \"build\" failed in 2s: step \"make\" failed\n"
        );
    }
}
