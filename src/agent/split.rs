//! `circleci tests split` / `circleci tests run`: which of the listed tests this node runs.
//!
//! Every node of a `parallelism: N` job runs the same command on the same list and must reach
//! the same partition, so the split is deterministic: tests are weighed (by name: all equal; by
//! file size: bytes; by timings: earlier durations), heaviest first (ties by name), and each
//! goes to the node carrying the least so far (ties: fewer tests, then lower index). That is
//! the greedy scheme CircleCI's `--split-by=timings` is observed to use; with equal weights it
//! deals sorted names round-robin, which is the even alphabetical split `--split-by=name`
//! documents ("Use the CircleCI CLI to split tests", section "Split tests").
//!
//! Timings follow the same page, section "Split by timing data": the timing type
//! (`filename`, `classname`, `testname`, or `autodetect` of the first two) says which field of
//! the stored results names a test; a test without a timing gets `--time-default` (CircleCI:
//! "a random small value"; here the average of the found timings, so every node agrees); no
//! timings at all falls back to the split by name with CircleCI's message.
//!
//! Std only, no I/O (file sizes come through a lookup function): shared with the agent binary.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashSet};

use super::tsv::Timing;

/// What a test is weighed by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SplitBy {
    Name,
    Filesize,
    Timings,
}

/// Which field of the stored timings names the tests of the list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TimingsType {
    Filename,
    Classname,
    Testname,
    Autodetect,
}

/// CircleCI's message when there are no timings at all.
pub(crate) const NO_TIMINGS: &str = "Requested weighting by historical based timing, but they are not present. Falling back to weighting by name.";
/// CircleCI's message when autodetection finds neither file nor class names.
pub(crate) const AUTODETECT_FAILED: &str =
    "Error auto-detecting timing type, falling back to weighting by name.";

/// Tests with their weights, and the notes (for stderr) that explain them.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Weighed {
    pub(crate) tests: Vec<(String, u64)>,
    pub(crate) notes: Vec<String>,
}

/// The tests of a list: whitespace separated, each once, in first-seen order.
pub(crate) fn parse_list(text: &str) -> Vec<String> {
    let mut seen = HashSet::new();
    text.split_whitespace()
        .filter(|t| seen.insert(*t))
        .map(str::to_string)
        .collect()
}

/// `tests` split over `total` nodes: the share of each node, in the order it was dealt.
/// Only the first `min(total, tests)` nodes are returned: the lightest node is always the
/// lowest empty one while there are empty nodes, so later nodes would get nothing (and a huge
/// `--total` costs no memory).
pub(crate) fn partition(mut tests: Vec<(String, u64)>, total: usize) -> Vec<Vec<String>> {
    tests.sort_by(|(a, wa), (b, wb)| wb.cmp(wa).then_with(|| a.cmp(b)));
    let nodes = total.clamp(1, tests.len().max(1));
    let mut shares = vec![Vec::new(); nodes];
    // (load, tests so far, index): the smallest is the node to deal to next.
    let mut lightest: BinaryHeap<Reverse<(u64, usize, usize)>> =
        (0..nodes).map(|i| Reverse((0, 0, i))).collect();
    for (test, weight) in tests {
        let Reverse((load, count, index)) = lightest.pop().expect("there is at least one node");
        shares[index].push(test);
        lightest.push(Reverse((load.saturating_add(weight), count + 1, index)));
    }
    shares
}

/// Every test weighs the same.
pub(crate) fn by_name(tests: &[String]) -> Weighed {
    Weighed {
        tests: tests.iter().map(|t| (t.clone(), 1)).collect(),
        notes: Vec::new(),
    }
}

/// Weighed by size in bytes; `size` returns `None` for a file that cannot be read.
pub(crate) fn by_filesize(tests: &[String], size: &dyn Fn(&str) -> Option<u64>) -> Weighed {
    let mut notes = Vec::new();
    let tests = tests
        .iter()
        .map(|t| {
            let bytes = size(t).unwrap_or_else(|| {
                notes.push(format!(
                    "No file size found for {t:?}; counting it as empty."
                ));
                0
            });
            (t.clone(), bytes)
        })
        .collect();
    Weighed { tests, notes }
}

/// Weighed by stored durations (microseconds), or by name when none applies.
pub(crate) fn by_timings(
    tests: &[String],
    timings: &[Timing],
    kind: TimingsType,
    default_micros: Option<u64>,
) -> Weighed {
    if timings.is_empty() {
        return fallback(tests, NO_TIMINGS.to_string());
    }
    let Some((kind, table)) = table_for(tests, timings, kind) else {
        return fallback(
            tests,
            format!(
                "{AUTODETECT_FAILED} No test of the list is a file or class name of the stored \
                 timings; if they are file names, check relative against absolute paths."
            ),
        );
    };
    let found: Vec<u64> = tests
        .iter()
        .filter_map(|t| table.get(key(t)).copied())
        .collect();
    if found.is_empty() {
        return fallback(
            tests,
            format!("No timing found for any test by {kind}. Falling back to weighting by name."),
        );
    }
    let average = found.iter().sum::<u64>() / found.len() as u64;
    let default = default_micros.unwrap_or(average).max(1);
    let mut notes = Vec::new();
    let tests = tests
        .iter()
        .map(|t| {
            let weight = table.get(key(t)).copied().unwrap_or_else(|| {
                notes.push(format!("No timing found for {t:?}"));
                default
            });
            (t.clone(), weight)
        })
        .collect();
    Weighed { tests, notes }
}

fn fallback(tests: &[String], note: String) -> Weighed {
    let mut weighed = by_name(tests);
    weighed.notes.push(note);
    weighed
}

/// The total duration per name of the chosen kind (autodetect: file names when any test of
/// the list is one, else class names), or `None` when autodetection finds neither.
fn table_for<'t>(
    tests: &[String],
    timings: &'t [Timing],
    kind: TimingsType,
) -> Option<(&'static str, BTreeMap<&'t str, u64>)> {
    let pick = |field: fn(&Timing) -> &str| {
        let mut table: BTreeMap<&str, u64> = BTreeMap::new();
        for t in timings {
            let name = key(field(t));
            if !name.is_empty() {
                *table.entry(name).or_default() += micros(t.seconds);
            }
        }
        table
    };
    let files = || pick(|t| &t.file);
    let classes = || pick(|t| &t.class);
    match kind {
        TimingsType::Filename => Some(("filename", files())),
        TimingsType::Classname => Some(("classname", classes())),
        TimingsType::Testname => Some(("testname", pick(|t| &t.name))),
        TimingsType::Autodetect => {
            let any =
                |table: &BTreeMap<&str, u64>| tests.iter().any(|t| table.contains_key(key(t)));
            let files = files();
            if any(&files) {
                return Some(("filename", files));
            }
            let classes = classes();
            any(&classes).then_some(("classname", classes))
        }
    }
}

/// A test's name for lookups: `./tests/a.py` and `tests/a.py` are the same file.
fn key(name: &str) -> &str {
    let mut name = name;
    while let Some(rest) = name.strip_prefix("./") {
        name = rest;
    }
    name
}

fn micros(seconds: f64) -> u64 {
    // `as` saturates: a huge or negative duration cannot wrap.
    (seconds * 1_000_000.0).round() as u64
}
