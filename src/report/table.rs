//! The end-of-run table: one row per job (status, duration, tests, why it did not run), the
//! run's wall time against the sum of its jobs' times, and the run's test totals. Pure
//! formatting; the rows come from the engine's `RunFinished`.

use std::collections::HashMap;
use std::time::Duration;

use super::event::{JobRow, JobStatus, TestCounts};
use super::render::status_word;
use super::style::{BOLD, DIM, GREEN, Paint, RED, YELLOW};
use crate::units::format_go;

/// What the table is made from.
pub(crate) struct Summary<'a> {
    /// The workflow's name, when the run is a workflow.
    pub workflow: Option<&'a str>,
    pub rows: &'a [JobRow],
    /// Test counts the reporter saw per job name, for rows that carry none.
    pub seen_tests: &'a HashMap<String, TestCounts>,
    pub wall: Duration,
    pub job_time: Duration,
}

const HEADERS: [&str; 4] = ["JOB", "STATUS", "DURATION", "TESTS"];

pub(crate) fn table(p: Paint, s: &Summary<'_>) -> Vec<String> {
    let cells: Vec<[String; 5]> = s.rows.iter().map(|row| cells(row, s.seen_tests)).collect();
    let mut widths = HEADERS.map(str::len);
    for row in &cells {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut lines = vec![p.paint(BOLD, &title(s.workflow))];
    let header = HEADERS.map(String::from);
    lines.push(p.paint(DIM, line(&header, &widths, "").trim_end()));
    for (row, cell) in s.rows.iter().zip(&cells) {
        lines.push(row_line(p, &row.status, cell, &widths));
    }
    lines.push(took(s));
    lines.extend(totals(s));
    lines
}

fn title(workflow: Option<&str>) -> String {
    match workflow {
        Some(name) => format!("Workflow \"{name}\":"),
        None => "Run:".to_string(),
    }
}

/// Job, status, duration, tests and the reason (last, not padded).
fn cells(row: &JobRow, seen: &HashMap<String, TestCounts>) -> [String; 5] {
    let tests = row.tests.as_ref().or_else(|| seen.get(&row.job));
    let reason = match &row.status {
        JobStatus::NotRun(why) | JobStatus::OnHold(why) | JobStatus::Skipped(why) => why.clone(),
        JobStatus::Success | JobStatus::Failed | JobStatus::Canceled => String::new(),
    };
    [
        row.job.clone(),
        status_word(&row.status).to_string(),
        row.duration.map_or("-".to_string(), format_go),
        tests.map_or("-".to_string(), counts_text),
        reason,
    ]
}

/// The cells padded to their column; `status` is the painted status cell.
fn line(cells: &[String; 4], widths: &[usize; 4], reason: &str) -> String {
    let mut s = String::new();
    for (cell, width) in cells.iter().zip(widths) {
        s.push_str(&format!("  {cell:<width$}"));
    }
    if !reason.is_empty() {
        s.push_str(&format!("  {reason}"));
    }
    s
}

fn row_line(p: Paint, status: &JobStatus, cell: &[String; 5], widths: &[usize; 4]) -> String {
    let [job, word, duration, tests, reason] = cell;
    // Padded before it is painted: escape codes have no width.
    let padded = format!("{word:<width$}", width = widths[1]);
    let style = match status {
        JobStatus::Success => GREEN,
        JobStatus::Failed => RED,
        JobStatus::Canceled => YELLOW,
        JobStatus::NotRun(_) | JobStatus::OnHold(_) | JobStatus::Skipped(_) => DIM,
    };
    let mut w = *widths;
    w[1] = 0;
    let cells = [
        job.clone(),
        p.paint(style, &padded),
        duration.clone(),
        tests.clone(),
    ];
    line(&cells, &w, reason).trim_end().to_string()
}

fn took(s: &Summary<'_>) -> String {
    let what = if s.workflow.is_some() {
        "Workflow"
    } else {
        "Run"
    };
    format!(
        "{what} took {} (jobs took {} in all)",
        format_go(s.wall),
        format_go(s.job_time)
    )
}

/// The run's test totals, when any job stored test results.
fn totals(s: &Summary<'_>) -> Option<String> {
    let mut sum: Option<TestCounts> = None;
    for row in s.rows {
        if let Some(c) = row.tests.as_ref().or_else(|| s.seen_tests.get(&row.job)) {
            let t = sum.get_or_insert_with(TestCounts::default);
            t.tests += c.tests;
            t.failures += c.failures;
            t.errors += c.errors;
            t.skipped += c.skipped;
        }
    }
    sum.map(|t| format!("Tests: {}", counts_text(&t)))
}

/// `12 tests, 1 failed, 2 skipped`: the counts that are not zero after the total.
pub(crate) fn counts_text(c: &TestCounts) -> String {
    let mut s = format!("{} tests", c.tests);
    for (n, word) in [
        (c.failures, "failed"),
        (c.errors, "errors"),
        (c.skipped, "skipped"),
    ] {
        if n > 0 {
            s.push_str(&format!(", {n} {word}"));
        }
    }
    s
}

/// Adds one node's counts to what was seen for its job.
pub(crate) fn add_counts(seen: &mut HashMap<String, TestCounts>, job: &str, c: &TestCounts) {
    let t = seen.entry(job.to_string()).or_default();
    t.tests += c.tests;
    t.failures += c.failures;
    t.errors += c.errors;
    t.skipped += c.skipped;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(job: &str, status: JobStatus, secs: Option<u64>, tests: Option<TestCounts>) -> JobRow {
        JobRow {
            job: job.into(),
            status,
            duration: secs.map(Duration::from_secs),
            tests,
        }
    }

    #[test]
    fn the_table_lists_every_job_the_times_and_the_test_totals() {
        let rows = [
            row(
                "build",
                JobStatus::Success,
                Some(2),
                Some(TestCounts {
                    tests: 3,
                    ..TestCounts::default()
                }),
            ),
            row("test-long-name", JobStatus::Failed, Some(5), None),
            row(
                "deploy",
                JobStatus::NotRun("requires test (failed)".into()),
                None,
                None,
            ),
        ];
        let mut seen = HashMap::new();
        let counts = TestCounts {
            tests: 4,
            failures: 1,
            errors: 0,
            skipped: 2,
        };
        add_counts(&mut seen, "test-long-name", &counts);
        add_counts(&mut seen, "test-long-name", &counts);
        let s = Summary {
            workflow: Some("ci"),
            rows: &rows,
            seen_tests: &seen,
            wall: Duration::from_secs(6),
            job_time: Duration::from_secs(7),
        };
        assert_eq!(
            table(Paint::new(false), &s).join("\n"),
            "Workflow \"ci\":
  JOB             STATUS   DURATION  TESTS
  build           success  2s        3 tests
  test-long-name  failed   5s        8 tests, 2 failed, 4 skipped
  deploy          not run  -         -                             requires test (failed)
Workflow took 6s (jobs took 7s in all)
Tests: 11 tests, 2 failed, 4 skipped"
        );
    }

    #[test]
    fn without_test_results_there_is_no_totals_line() {
        let rows = [row("build", JobStatus::Canceled, Some(1), None)];
        let seen = HashMap::new();
        let s = Summary {
            workflow: None,
            rows: &rows,
            seen_tests: &seen,
            wall: Duration::from_secs(1),
            job_time: Duration::from_secs(1),
        };
        let lines = table(Paint::new(false), &s);
        assert_eq!(lines.last().unwrap(), "Run took 1s (jobs took 1s in all)");
        assert_eq!(lines[2], "  build  canceled  1s        -");
    }
}
