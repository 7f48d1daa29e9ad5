//! Summaries of JUnit XML test reports for `store_test_results`: how many tests passed,
//! failed, errored and were skipped, and which ones failed. Reports are read as a stream
//! (quick-xml events), so big reports cost little memory; producers differ (pytest, jest,
//! Maven surefire, nested suites, several suites per file), so only `testsuite`, `testcase`,
//! `failure`, `error` and `skipped` are interpreted. A file that is not valid XML is reported in
//! `warnings` and left out of the counts; it never fails the caller.

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

/// Summarizes one report file, or every `*.xml` under a directory (recursively, symlinked
/// directories not followed). Only a path that cannot be read at all is an error.
pub fn summarize(dir_or_file: &Path) -> io::Result<TestSummary> {
    let files = if fs::metadata(dir_or_file)?.is_dir() {
        let mut files = Vec::new();
        xml_files(dir_or_file, &mut files)?;
        files.sort();
        files
    } else {
        vec![dir_or_file.to_path_buf()]
    };
    let mut summary = TestSummary::default();
    for file in files {
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
}

/// Reads one file. `Ok(None)`: well-formed, but the root is not a test suite.
fn summarize_file(path: &Path) -> Result<Option<TestSummary>, String> {
    let file = File::open(path).map_err(|e| e.to_string())?;
    let mut reader = Reader::from_reader(BufReader::new(file));
    let mut state = State::default();
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
    Ok(Some(state.summary))
}

#[derive(Default)]
struct State {
    summary: TestSummary,
    /// Names of the open `<testsuite>`s, innermost last.
    suites: Vec<String>,
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
            "testsuite" if !empty => self.suites.push(attr(e, "name")?),
            "testcase" => {
                let case = Case {
                    name: attr(e, "name")?,
                    class: attr(e, "classname")?,
                    outcome: Outcome::Passed,
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
