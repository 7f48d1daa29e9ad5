//! Turns one job event into the lines a person reads, CircleCI style (`====>> <step>`,
//! `---> "x" passed in 1s`). Pure formatting with the little state it needs (step names for
//! the closing lines); no I/O, no prefixes, no decision about when a line is shown.

use std::collections::HashMap;
use std::time::Duration;

use super::event::{Event, JobRef, JobStatus, StepStatus};
use super::style::{BOLD, DIM, GREEN, Paint, RED, YELLOW};
use super::table::counts_text;
use crate::units::format_go;

/// Step names in closing lines are cut to this many characters.
const SHORT_NAME: usize = 60;

/// The first line of a step name, cut to [`SHORT_NAME`] characters.
pub(crate) fn short_name(name: &str) -> String {
    let first = name.lines().next().unwrap_or_default();
    if first.chars().count() > SHORT_NAME || name.lines().nth(1).is_some() {
        let cut: String = first.chars().take(SHORT_NAME).collect();
        format!("{cut}...")
    } else {
        first.to_string()
    }
}

/// The word a status is shown with in lines and the end table.
pub(crate) fn status_word(status: &JobStatus) -> &'static str {
    match status {
        JobStatus::Success => "success",
        JobStatus::Failed => "failed",
        JobStatus::Canceled => "canceled",
        JobStatus::NotRun(_) => "not run",
        JobStatus::OnHold(_) => "on hold",
        JobStatus::Skipped(_) => "skipped",
    }
}

pub(crate) struct Render {
    paint: Paint,
    /// Short names of the steps started, by (job, step), for their closing line.
    names: HashMap<(JobRef, usize), String>,
    /// Background steps seen so far, by (job, step): their lines get the step's name.
    background: HashMap<(JobRef, usize), String>,
}

impl Render {
    pub(crate) fn new(paint: Paint) -> Render {
        Render {
            paint,
            names: HashMap::new(),
            background: HashMap::new(),
        }
    }

    /// The lines of a job event (none for events a terminal does not print as text: run-level
    /// events, pull progress, service logs, which have their own place).
    pub(crate) fn lines(&mut self, event: &Event) -> Vec<String> {
        let p = self.paint;
        match event {
            Event::Section { title, .. } => vec![p.paint(BOLD, &format!("====>> {title}"))],
            Event::Info { text, .. } => vec![text.clone()],
            Event::Warning { text, .. } => vec![format!("{} {text}", p.paint(YELLOW, "Warning:"))],
            Event::StepStarted {
                job,
                step,
                name,
                header,
                background,
            } => self.step_started(job, *step, name, header, *background),
            Event::Output {
                job, step, line, ..
            } => vec![self.output(job, *step, line)],
            Event::StepFinished {
                job,
                step,
                status,
                duration,
            } => self.step_finished(job, *step, status, *duration),
            Event::StepSkipped { name, reason, .. } => {
                vec![p.paint(DIM, &format!("====>> {name} (skipped: {reason})"))]
            }
            Event::JobEnded { job, status, .. } => job_ended(p, job, status),
            Event::TestSummary { job, counts } => {
                vec![format!("Tests of \"{job}\": {}", counts_text(counts))]
            }
            Event::JobFinished {
                job,
                passed,
                failure,
                duration,
            } => vec![job_finished(p, job, *passed, failure.as_deref(), *duration)],
            Event::ShellOpened { name, .. } => vec![p.paint(
                BOLD,
                &format!(
                    "Step \"{}\" failed; opening a shell in the primary container (exit the shell to end the job)",
                    short_name(name)
                ),
            )],
            Event::ShellClosed { exit_code, .. } => vec![p.paint(
                BOLD,
                &match exit_code {
                    Some(code) => format!("Shell closed (exit code {code}); the job ends as failed"),
                    None => "Shell closed; the job ends as failed".to_string(),
                },
            )],
            Event::WatchRerun {
                run, paths, count, ..
            } => vec![p.paint(BOLD, &watch_rerun(*run, paths, *count))],
            Event::WatchResult {
                run,
                passed,
                failure,
                duration,
                ..
            } => vec![watch_result(
                p,
                *run,
                *passed,
                failure.as_deref(),
                *duration,
            )],
            Event::RunStarted { .. }
            | Event::RunFinished { .. }
            | Event::JobStarted { .. }
            | Event::LayerProgress { .. }
            | Event::PullEnded { .. }
            | Event::ServiceLog { .. } => Vec::new(),
        }
    }

    fn step_started(
        &mut self,
        job: &JobRef,
        step: usize,
        name: &str,
        header: &[String],
        background: bool,
    ) -> Vec<String> {
        let p = self.paint;
        let mut title = p.paint(BOLD, &format!("====>> {name}"));
        self.names.insert((job.clone(), step), short_name(name));
        if background {
            title.push_str(&p.paint(DIM, " (background)"));
            self.background
                .insert((job.clone(), step), short_name(name));
        }
        let mut lines = vec![title];
        lines.extend(header.iter().map(|l| p.paint(DIM, &format!("  {l}"))));
        lines
    }

    fn output(&self, job: &JobRef, step: usize, line: &str) -> String {
        match self.background.get(&(job.clone(), step)) {
            Some(name) => format!("{} {line}", self.paint.paint(DIM, &format!("[{name}]"))),
            None => line.to_string(),
        }
    }

    fn step_finished(
        &self,
        job: &JobRef,
        step: usize,
        status: &StepStatus,
        duration: Duration,
    ) -> Vec<String> {
        let p = self.paint;
        let key = (job.clone(), step);
        let name = self.names.get(&key).cloned().unwrap_or_default();
        let who = if self.background.contains_key(&key) {
            format!("background step \"{name}\" ")
        } else {
            format!("\"{name}\" ")
        };
        let took = format_go(duration);
        match status {
            StepStatus::Passed { exit_code } => {
                let code = exit_code.map_or(String::new(), |c| format!(", exit code {c}"));
                vec![p.paint(GREEN, &format!("---> {who}passed in {took}{code}"))]
            }
            StepStatus::Failed { exit_code, reason } => {
                let mut lines = Vec::new();
                if let Some(reason) = reason {
                    lines.push(p.paint(RED, reason));
                }
                if let Some(code) = exit_code {
                    lines.push(format!("Exited with code exit status {code}"));
                }
                let code = exit_code.map_or(String::new(), |c| format!(", exit code {c}"));
                lines.push(p.paint(RED, &format!("---> {who}failed in {took}{code}")));
                lines
            }
        }
    }
}

/// A job that ended without running says why; one that ran already said how it ended.
fn job_ended(p: Paint, job: &JobRef, status: &JobStatus) -> Vec<String> {
    match status {
        JobStatus::NotRun(why) | JobStatus::OnHold(why) | JobStatus::Skipped(why) => {
            vec![p.paint(
                DIM,
                &format!("Job \"{job}\" {}: {why}", status_word(status)),
            )]
        }
        JobStatus::Success | JobStatus::Failed | JobStatus::Canceled => Vec::new(),
    }
}

fn job_finished(
    p: Paint,
    job: &JobRef,
    passed: bool,
    failure: Option<&str>,
    duration: Duration,
) -> String {
    let took = format_go(duration);
    if passed {
        p.paint(GREEN, &format!("Success! Job \"{job}\" passed in {took}"))
    } else {
        let why = failure.map_or(String::new(), |f| format!(": {f}"));
        p.paint(
            RED,
            &format!("Task failed. Job \"{job}\" failed in {took}{why}"),
        )
    }
}

/// `====>> Rerun 2: src/app.py changed` (the first paths, then how many more).
fn watch_rerun(run: u32, paths: &[String], count: usize) -> String {
    let shown = paths.iter().take(3).cloned().collect::<Vec<_>>().join(", ");
    let more = count.saturating_sub(paths.len().min(3));
    let what = match (shown.is_empty(), more) {
        (true, _) => "files changed".to_string(),
        (false, 0) => format!("{shown} changed"),
        (false, n) => format!("{shown} and {n} more changed"),
    };
    format!("====>> Rerun {run}: {what}")
}

/// `Watch: run 2 passed in 1.2s; waiting for changes (Ctrl-C to stop)`.
fn watch_result(
    p: Paint,
    run: u32,
    passed: bool,
    failure: Option<&str>,
    duration: Duration,
) -> String {
    let took = format_go(duration);
    let (color, how) = if passed {
        (GREEN, format!("passed in {took}"))
    } else {
        let why = failure.map_or(String::new(), |f| format!(": {f}"));
        (RED, format!("failed in {took}{why}"))
    };
    format!(
        "{} {}",
        p.paint(color, &format!("Watch: run {run} {how};")),
        "waiting for changes to the checkout (Ctrl-C to stop)"
    )
}

/// The `last lines of service <name>:` block shown when a service or its job failed.
pub(crate) fn service_block(
    p: Paint,
    service: &str,
    exit_code: Option<i64>,
    lines: &[String],
) -> Vec<String> {
    let exited = exit_code.map_or(String::new(), |c| format!(" (exited with code {c})"));
    let mut block = vec![p.paint(BOLD, &format!("last lines of service {service}{exited}:"))];
    if lines.is_empty() {
        block.push(p.paint(DIM, "  (no output)"));
    }
    block.extend(lines.iter().map(|l| format!("  {l}")));
    block
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closing_lines_use_a_short_name() {
        assert_eq!(short_name("make test"), "make test");
        assert_eq!(short_name("echo a\necho b"), "echo a...");
        assert_eq!(
            short_name(&"x".repeat(70)),
            format!("{}...", "x".repeat(60))
        );
    }

    #[test]
    fn watch_lines_say_the_run_its_result_and_what_changed() {
        let p = Paint::new(false);
        assert_eq!(
            watch_result(p, 2, true, None, Duration::from_millis(1500)),
            "Watch: run 2 passed in 1.5s; waiting for changes to the checkout (Ctrl-C to stop)"
        );
        assert_eq!(
            watch_result(
                p,
                3,
                false,
                Some("step \"t\" exited with code 1"),
                Duration::from_secs(2)
            ),
            "Watch: run 3 failed in 2s: step \"t\" exited with code 1; waiting for changes to the checkout (Ctrl-C to stop)"
        );
        let paths: Vec<String> = ["a", "b", "c", "d"].map(String::from).to_vec();
        assert_eq!(watch_rerun(2, &paths[..1], 1), "====>> Rerun 2: a changed");
        assert_eq!(
            watch_rerun(2, &paths, 10),
            "====>> Rerun 2: a, b, c and 7 more changed"
        );
    }

    #[test]
    fn a_service_block_names_the_service_and_its_exit_code() {
        let block = service_block(Paint::new(false), "db", Some(3), &["boom".into()]);
        assert_eq!(
            block,
            ["last lines of service db (exited with code 3):", "  boom"]
        );
        let empty = service_block(Paint::new(false), "db", None, &[]);
        assert_eq!(empty, ["last lines of service db:", "  (no output)"]);
    }
}
