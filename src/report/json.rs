//! The `--json` reporter: one JSON object per line on stdout for every event, for editors and
//! other tools. The schema is `schema/events.schema.json`, described in `docs/events.md`;
//! every object has `type` (the event's snake_case name) and `time` (milliseconds since the
//! run started, as the reporter received the event), job events also `job` and `node`. It must
//! not print anything else on stdout, and never an escape code (JSON escapes control
//! characters in strings).

use std::io::Write;
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};

use super::event::{Event, JobRow, JobStatus, StepStatus, Stream, TestCounts};

pub struct Json<W: Write> {
    out: W,
    start: Instant,
}

impl<W: Write> Json<W> {
    /// A reporter whose clock starts now (the run's start).
    pub fn new(out: W) -> Json<W> {
        Json {
            out,
            start: Instant::now(),
        }
    }

    pub fn into_inner(self) -> W {
        self.out
    }

    /// Writes the event's line; an unwritable stdout (a closed pipe) is ignored.
    pub fn handle(&mut self, event: &Event) {
        // `--shell-on-fail` needs the terminal and is refused with `--json` (stdout carries
        // only the events of schema/events.schema.json): its events are not lines.
        if let Event::ShellOpened { .. } | Event::ShellClosed { .. } = event {
            return;
        }
        let record = record(event, self.start.elapsed());
        let _ = serde_json::to_writer(&mut self.out, &record);
        let _ = self.out.write_all(b"\n");
    }

    pub fn flush(&mut self) {
        let _ = self.out.flush();
    }
}

/// The event's JSON object: the envelope (`type`, `time`, `job`, `node`) then its data.
pub(crate) fn record(event: &Event, since_start: Duration) -> Value {
    let mut object = Map::new();
    object.insert("type".into(), kind(event).into());
    object.insert("time".into(), millis(since_start).into());
    if let Some(job) = event.job() {
        object.insert("job".into(), job.name.as_ref().into());
        object.insert("node".into(), json!(job.node));
    }
    if let Value::Object(data) = data(event) {
        object.extend(data);
    }
    Value::Object(object)
}

/// The `type` of an event's line.
pub(crate) fn kind(event: &Event) -> &'static str {
    match event {
        Event::Section { .. } => "section",
        Event::Info { .. } => "info",
        Event::Warning { .. } => "warning",
        Event::StepStarted { .. } => "step_started",
        Event::Output { .. } => "output",
        Event::StepFinished { .. } => "step_finished",
        Event::StepSkipped { .. } => "step_skipped",
        Event::RunStarted { .. } => "run_started",
        Event::JobStarted { .. } => "job_started",
        Event::JobEnded { .. } => "job_ended",
        Event::TestSummary { .. } => "test_summary",
        Event::RunFinished { .. } => "run_finished",
        Event::LayerProgress { .. } => "layer_progress",
        Event::PullEnded { .. } => "pull_ended",
        Event::ServiceLog { .. } => "service_log",
        Event::ShellOpened { .. } => "shell_opened",
        Event::ShellClosed { .. } => "shell_closed",
        Event::JobFinished { .. } => "job_finished",
        Event::WatchRerun { .. } => "watch_rerun",
        Event::WatchResult { .. } => "watch_result",
    }
}

/// The fields of the event beyond the envelope.
fn data(event: &Event) -> Value {
    match event {
        Event::Section { title, .. } => json!({ "title": title }),
        Event::Info { text, .. } | Event::Warning { text, .. } => json!({ "text": text }),
        Event::StepStarted {
            step,
            name,
            header,
            background,
            ..
        } => json!({ "step": step, "name": name, "header": header, "background": background }),
        Event::Output {
            step, stream, line, ..
        } => json!({ "step": step, "stream": stream_name(*stream), "line": line }),
        Event::StepFinished {
            step,
            status,
            duration,
            ..
        } => step_finished(*step, status, *duration),
        Event::StepSkipped {
            step, name, reason, ..
        } => json!({ "step": step, "name": name, "reason": reason }),
        Event::RunStarted {
            run,
            workflow,
            jobs,
        } => json!({ "run": run, "workflow": workflow, "jobs": jobs }),
        Event::JobStarted { .. } => json!({}),
        Event::JobEnded {
            status, duration, ..
        } => {
            let mut v = job_status(status);
            v["duration_ms"] = json!(duration.map(millis));
            v
        }
        Event::TestSummary { counts, .. } => counts_value(counts),
        Event::RunFinished {
            rows,
            wall,
            job_time,
        } => json!({
            "rows": rows.iter().map(row).collect::<Vec<_>>(),
            "wall_ms": millis(*wall),
            "job_time_ms": millis(*job_time),
        }),
        Event::LayerProgress {
            image,
            layer,
            status,
            current,
            total,
            ..
        } => json!({
            "image": image, "layer": layer, "status": status, "current": current, "total": total,
        }),
        Event::PullEnded { image, .. } => json!({ "image": image }),
        Event::ServiceLog {
            service,
            exit_code,
            lines,
            ..
        } => json!({ "service": service, "exit_code": exit_code, "lines": lines }),
        Event::JobFinished {
            passed,
            failure,
            duration,
            ..
        } => json!({ "passed": passed, "failure": failure, "duration_ms": millis(*duration) }),
        Event::ShellOpened { step, name, .. } => json!({ "step": step, "name": name }),
        Event::ShellClosed { exit_code, .. } => json!({ "exit_code": exit_code }),
        Event::WatchRerun {
            run, paths, count, ..
        } => json!({ "run": run, "paths": paths, "count": count }),
        Event::WatchResult {
            run,
            passed,
            failure,
            duration,
            synced,
            ..
        } => json!({
            "run": run,
            "passed": passed,
            "failure": failure,
            "duration_ms": millis(*duration),
            "synced": synced,
        }),
    }
}

fn step_finished(step: usize, status: &StepStatus, duration: Duration) -> Value {
    let (word, exit_code, reason) = match status {
        StepStatus::Passed { exit_code } => ("passed", exit_code, None),
        StepStatus::Failed { exit_code, reason } => ("failed", exit_code, reason.as_deref()),
    };
    json!({
        "step": step,
        "status": word,
        "exit_code": exit_code,
        "reason": reason,
        "duration_ms": millis(duration),
    })
}

/// `{"status": "not_run", "reason": "..."}`; the reason is null for the statuses of jobs that
/// ran.
fn job_status(status: &JobStatus) -> Value {
    let reason = match status {
        JobStatus::NotRun(why) | JobStatus::OnHold(why) | JobStatus::Skipped(why) => Some(why),
        JobStatus::Success | JobStatus::Failed | JobStatus::Canceled => None,
    };
    let word = match status {
        JobStatus::Success => "success",
        JobStatus::Failed => "failed",
        JobStatus::Canceled => "canceled",
        JobStatus::NotRun(_) => "not_run",
        JobStatus::OnHold(_) => "on_hold",
        JobStatus::Skipped(_) => "skipped",
    };
    json!({ "status": word, "reason": reason })
}

fn row(row: &JobRow) -> Value {
    let mut v = job_status(&row.status);
    v["job"] = json!(row.job);
    v["duration_ms"] = json!(row.duration.map(millis));
    v["tests"] = row.tests.as_ref().map_or(Value::Null, counts_value);
    v
}

fn counts_value(c: &TestCounts) -> Value {
    json!({ "tests": c.tests, "failures": c.failures, "errors": c.errors, "skipped": c.skipped })
}

fn stream_name(stream: Stream) -> &'static str {
    match stream {
        Stream::Stdout => "stdout",
        Stream::Stderr => "stderr",
    }
}

/// Whole milliseconds: enough for a log, and an integer every JSON reader takes exactly.
fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests;
