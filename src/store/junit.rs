//! Summaries of JUnit XML test reports for `store_test_results`: how many tests passed,
//! failed, errored and were skipped, and which ones failed. Reports are read as a stream
//! (quick-xml events), so big reports cost little memory; producers differ (pytest, jest,
//! Maven surefire, nested suites, several suites per file), so only `testsuite`, `testcase`,
//! `failure`, `error` and `skipped` are interpreted. A file that is not valid XML is reported in
//! `warnings` and left out of the counts; it never fails the caller. [`case_timings`] reads
//! the same reports for each test case's file, class, name and duration (the timings that
//! `circleci tests split --split-by=timings` weighs tests by).

use std::fs::{self, File};
use std::io::{self, BufReader};
use std::path::{Path, PathBuf};

use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};

/// The counts of all reports under a path.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TestSummary {
    pub passed: u64,
    pub failed: u64,
    pub skipped: u64,
    pub errors: u64,
    /// Failed and errored tests as `classname::name` (or `suite::name` without a class).
    pub failures: Vec<String>,
    /// JUnit files read.
    pub files: usize,
    /// Files that could not be read as JUnit, with the reason.
    pub warnings: Vec<String>,
}

impl TestSummary {
    pub fn total(&self) -> u64 {
        self.passed + self.failed + self.skipped + self.errors
    }

    fn add(&mut self, other: TestSummary) {
        self.passed += other.passed;
        self.failed += other.failed;
        self.skipped += other.skipped;
        self.errors += other.errors;
        self.failures.extend(other.failures);
        self.files += other.files;
        self.warnings.extend(other.warnings);
    }
}

/// One test case's duration, and where it is (empty when the report does not say).
#[derive(Clone, Debug, PartialEq)]
pub struct CaseTiming {
    /// The `file` attribute of the `<testcase>`, else of its innermost `<testsuite>` that has one
    /// (CircleCI reads it from either: "Use the CircleCI CLI to split tests", "JUnit XML reports").
    pub file: String,
    pub classname: String,
    pub name: String,
    /// The `time` attribute; 0 when missing or not a number.
    pub seconds: f64,
}

/// Summarizes one report file, or every `*.xml` under a directory (recursively, symlinked
/// directories not followed). Only a path that cannot be read at all is an error.
pub fn summarize(dir_or_file: &Path) -> io::Result<TestSummary> {
    let mut summary = TestSummary::default();
    for file in report_files(dir_or_file)? {
        match summarize_file(&file) {
            Ok(Some(one)) => summary.add(one),
            Ok(None) => summary.warnings.push(format!(
                "{}: not a JUnit report (no <testsuite> or <testsuites> root)",
                file.display()
            )),
            Err(reason) => summary
                .warnings
                .push(format!("{}: {reason}", file.display())),
        }
    }
    Ok(summary)
}

/// The timing of every test case in one report or under a directory (as [`summarize`] finds
/// them); files that are not JUnit reports are left out.
pub fn case_timings(dir_or_file: &Path) -> io::Result<Vec<CaseTiming>> {
    let mut timings = Vec::new();
    for file in report_files(dir_or_file)? {
        if let Ok(Some(state)) = read_report(&file, true) {
            timings.extend(state.timings.unwrap_or_default());
        }
    }
    Ok(timings)
}

fn report_files(dir_or_file: &Path) -> io::Result<Vec<PathBuf>> {
    if !fs::metadata(dir_or_file)?.is_dir() {
        return Ok(vec![dir_or_file.to_path_buf()]);
    }
    let mut files = Vec::new();
    xml_files(dir_or_file, &mut files)?;
    files.sort();
    Ok(files)
}

fn xml_files(dir: &Path, out: &mut Vec<PathBuf>) -> io::Result<()> {
    for item in fs::read_dir(dir)? {
        let item = item?;
        let path = item.path();
        let kind = item.file_type()?;
        if kind.is_dir() {
            xml_files(&path, out)?;
        } else if path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("xml"))
        {
            out.push(path);
        }
    }
    Ok(())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Passed,
    Failed,
    Error,
    Skipped,
}

/// The test case being read: its name and what its children said about it.
struct Case {
    name: String,
    class: String,
    outcome: Outcome,
    file: String,
    seconds: f64,
}

/// Reads one file. `Ok(None)`: well-formed, but the root is not a test suite.
fn summarize_file(path: &Path) -> Result<Option<TestSummary>, String> {
    Ok(read_report(path, false)?.map(|state| state.summary))
}

/// Reads one file, with the timing of each case when `timings` is set.
fn read_report(path: &Path, timings: bool) -> Result<Option<State>, String> {
    let file = File::open(path).map_err(|e| e.to_string())?;
    let mut reader = Reader::from_reader(BufReader::new(file));
    let mut state = State {
        timings: timings.then(Vec::new),
        ..State::default()
    };
    let mut buf = Vec::new();
    loop {
        let event = reader
            .read_event_into(&mut buf)
            .map_err(|e| format!("invalid XML at byte {}: {e}", reader.error_position()))?;
        match event {
            Event::Start(e) => state.open(&e, false)?,
            Event::Empty(e) => state.open(&e, true)?,
            Event::End(e) => state.close(e.name().as_ref()),
            Event::Eof => break,
            _ => {}
        }
        if state.not_junit {
            return Ok(None);
        }
        buf.clear();
    }
    if !state.rooted {
        return Err("empty file".into());
    }
    state.summary.files = 1;
    Ok(Some(state))
}

#[derive(Default)]
struct State {
    summary: TestSummary,
    /// Names of the open `<testsuite>`s, innermost last.
    suites: Vec<String>,
    /// `file` attributes of the open `<testsuite>`s, innermost last (empty: none).
    suite_files: Vec<String>,
    /// Each case's timing, when asked for.
    timings: Option<Vec<CaseTiming>>,
    case: Option<Case>,
    rooted: bool,
    not_junit: bool,
}

impl State {
    fn open(&mut self, e: &BytesStart<'_>, empty: bool) -> Result<(), String> {
        let name = e.name();
        let tag = name.as_ref();
        if !self.rooted {
            self.rooted = true;
            self.not_junit = tag != "testsuite" && tag != "testsuites";
        }
        match tag {
            "testsuite" if !empty => {
                self.suites.push(attr(e, "name")?);
                self.suite_files.push(attr(e, "file")?);
            }
            "testcase" => {
                let case = Case {
                    name: attr(e, "name")?,
                    class: attr(e, "classname")?,
                    outcome: Outcome::Passed,
                    file: attr(e, "file")?,
                    seconds: attr(e, "time")?.trim().parse().unwrap_or(0.0),
                };
                if empty {
                    self.record(case);
                } else {
                    self.case = Some(case);
                }
            }
            "failure" | "error" | "skipped" => {
                if let Some(case) = self.case.as_mut().filter(|c| c.outcome == Outcome::Passed) {
                    case.outcome = match tag {
                        "failure" => Outcome::Failed,
                        "error" => Outcome::Error,
                        _ => Outcome::Skipped,
                    };
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn close(&mut self, tag: &str) {
        match tag {
            "testsuite" => {
                self.suites.pop();
                self.suite_files.pop();
            }
            "testcase" => {
                if let Some(case) = self.case.take() {
                    self.record(case);
                }
            }
            _ => {}
        }
    }

    fn record(&mut self, case: Case) {
        if let Some(timings) = self.timings.as_mut() {
            let suite_file = self.suite_files.iter().rev().find(|f| !f.is_empty());
            timings.push(CaseTiming {
                file: if case.file.is_empty() {
                    suite_file.cloned().unwrap_or_default()
                } else {
                    case.file.clone()
                },
                classname: case.class.clone(),
                name: case.name.clone(),
                seconds: if case.seconds.is_finite() {
                    case.seconds.max(0.0)
                } else {
                    0.0
                },
            });
        }
        let s = &mut self.summary;
        match case.outcome {
            Outcome::Passed => s.passed += 1,
            Outcome::Skipped => s.skipped += 1,
            Outcome::Failed => s.failed += 1,
            Outcome::Error => s.errors += 1,
        }
        if matches!(case.outcome, Outcome::Failed | Outcome::Error) {
            let owner = if case.class.is_empty() {
                self.suites.last().cloned().unwrap_or_default()
            } else {
                case.class
            };
            s.failures.push(if owner.is_empty() {
                case.name
            } else {
                format!("{owner}::{}", case.name)
            });
        }
    }
}

fn attr(e: &BytesStart<'_>, name: &str) -> Result<String, String> {
    match e.try_get_attribute(name).map_err(|err| err.to_string())? {
        Some(a) => a
            .normalized_value(quick_xml::XmlVersion::Implicit1_0)
            .map(|v| v.into_owned())
            .map_err(|err| err.to_string()),
        None => Ok(String::new()),
    }
}

#[cfg(test)]
mod tests;
