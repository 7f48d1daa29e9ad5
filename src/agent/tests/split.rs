//! Splitting a test list over nodes: every test on exactly one node, the same answer on every
//! node, balanced by the chosen weight.

use std::collections::BTreeSet;

use crate::agent::split::{
    AUTODETECT_FAILED, NO_TIMINGS, TimingsType, by_filesize, by_name, by_timings, parse_list,
    partition,
};
use crate::agent::tsv::Timing;

fn names(list: &str) -> Vec<String> {
    parse_list(list)
}

fn timing(file: &str, class: &str, name: &str, seconds: f64) -> Timing {
    Timing {
        file: file.into(),
        class: class.into(),
        name: name.into(),
        seconds,
    }
}

/// Every test in exactly one share.
fn assert_exact_cover(shares: &[Vec<String>], tests: &[String]) {
    let all: Vec<&String> = shares.iter().flatten().collect();
    let unique: BTreeSet<&String> = all.iter().copied().collect();
    assert_eq!(
        all.len(),
        unique.len(),
        "a test is on two nodes: {shares:?}"
    );
    assert_eq!(
        unique,
        tests.iter().collect(),
        "a test is missing: {shares:?}"
    );
}

#[test]
fn lists_are_whitespace_separated_and_deduplicated() {
    assert_eq!(
        names(" b.py\na.py\t\tb.py\r\nc.py "),
        ["b.py", "a.py", "c.py"]
    );
    assert!(names(" \n").is_empty());
}

#[test]
fn by_name_deals_sorted_names_round_robin() {
    let tests = names("e d c b a");
    let shares = partition(by_name(&tests).tests, 2);
    assert_eq!(shares, [vec!["a", "c", "e"], vec!["b", "d"]]);
    assert_exact_cover(&shares, &tests);
}

#[test]
fn nodes_past_the_number_of_tests_get_nothing_and_cost_nothing() {
    let tests = names("a b");
    assert_eq!(partition(by_name(&tests).tests, 4), [["a"], ["b"]]);
    assert_eq!(partition(by_name(&tests).tests, usize::MAX), [["a"], ["b"]]);
    assert_eq!(partition(Vec::new(), 3), [Vec::<String>::new()]);
}

#[test]
fn every_split_covers_every_test_exactly_once_for_many_totals() {
    let tests: Vec<String> = (0..97).map(|i| format!("tests/test_{i:03}.py")).collect();
    for total in 1..=9 {
        let weighed: Vec<(String, u64)> = tests
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), (i as u64 * 7919) % 101))
            .collect();
        assert_exact_cover(&partition(weighed, total), &tests);
        assert_exact_cover(&partition(by_name(&tests).tests, total), &tests);
    }
}

// The example measured on CircleCI (durations 10, 6, 5, 4, 3, 2 over 3 nodes gave
// [10], [6, 3, 2], [5, 4]): heaviest first onto the lightest node.
#[test]
fn by_timings_packs_the_heaviest_first_onto_the_lightest_node() {
    let timings: Vec<Timing> = [10.0, 6.0, 5.0, 4.0, 3.0, 2.0]
        .iter()
        .map(|s| timing(&format!("spec/foo_{s}_spec.rb"), "", "t", *s))
        .collect();
    let tests: Vec<String> = timings.iter().rev().map(|t| t.file.clone()).collect();
    let weighed = by_timings(&tests, &timings, TimingsType::Autodetect, None);
    assert!(weighed.notes.is_empty(), "{:?}", weighed.notes);
    let shares = partition(weighed.tests, 3);
    assert_eq!(
        shares,
        [
            vec!["spec/foo_10_spec.rb"],
            vec![
                "spec/foo_6_spec.rb",
                "spec/foo_3_spec.rb",
                "spec/foo_2_spec.rb"
            ],
            vec!["spec/foo_5_spec.rb", "spec/foo_4_spec.rb"],
        ]
    );
}

#[test]
fn timings_of_one_file_are_summed_and_dot_slash_does_not_matter() {
    let timings = [
        timing("tests/test_slow.py", "S", "a", 3.0),
        timing("./tests/test_slow.py", "S", "b", 3.0),
        timing("tests/test_fast.py", "F", "c", 1.0),
        timing("tests/test_mid.py", "M", "d", 4.0),
    ];
    let tests = names("./tests/test_fast.py tests/test_mid.py tests/test_slow.py");
    let shares = partition(
        by_timings(&tests, &timings, TimingsType::Filename, None).tests,
        2,
    );
    assert_eq!(
        shares,
        [
            vec!["tests/test_slow.py"],
            vec!["tests/test_mid.py", "./tests/test_fast.py"]
        ]
    );
}

#[test]
fn autodetect_uses_class_names_when_no_file_matches() {
    let timings = [
        timing("", "com.acme.A", "x", 9.0),
        timing("", "com.acme.B", "y", 1.0),
        timing("", "com.acme.C", "z", 1.0),
    ];
    let tests = names("com.acme.A com.acme.B com.acme.C");
    let weighed = by_timings(&tests, &timings, TimingsType::Autodetect, None);
    assert!(weighed.notes.is_empty());
    assert_eq!(
        partition(weighed.tests, 2),
        [vec!["com.acme.A"], vec!["com.acme.B", "com.acme.C"]]
    );
    let by_test_name = by_timings(&names("x y z"), &timings, TimingsType::Testname, None);
    assert_eq!(by_test_name.tests[0], ("x".to_string(), 9_000_000));
}

#[test]
fn no_timings_at_all_falls_back_to_name_with_circlecis_message() {
    let tests = names("b a c");
    let weighed = by_timings(&tests, &[], TimingsType::Autodetect, None);
    assert_eq!(weighed.notes, [NO_TIMINGS]);
    assert_eq!(weighed, {
        let mut by = by_name(&tests);
        by.notes.push(NO_TIMINGS.into());
        by
    });
}

#[test]
fn autodetection_without_any_match_falls_back_to_name() {
    let timings = [timing("/abs/tests/a.py", "A", "t", 1.0)];
    let weighed = by_timings(
        &names("tests/a.py"),
        &timings,
        TimingsType::Autodetect,
        None,
    );
    assert!(
        weighed.notes[0].starts_with(AUTODETECT_FAILED),
        "{:?}",
        weighed.notes
    );
    assert!(weighed.notes[0].contains("absolute"));
    let explicit = by_timings(&names("tests/a.py"), &timings, TimingsType::Filename, None);
    assert!(
        explicit.notes[0].contains("Falling back to weighting by name"),
        "{:?}",
        explicit.notes
    );
}

#[test]
fn tests_without_timing_get_the_average_or_the_time_default() {
    let timings = [timing("a.py", "", "", 2.0), timing("b.py", "", "", 4.0)];
    let tests = names("a.py b.py new.py");
    let weighed = by_timings(&tests, &timings, TimingsType::Filename, None);
    assert_eq!(weighed.tests[2], ("new.py".to_string(), 3_000_000));
    assert_eq!(weighed.notes, ["No timing found for \"new.py\""]);
    let weighed = by_timings(&tests, &timings, TimingsType::Filename, Some(10_000_000));
    assert_eq!(weighed.tests[2], ("new.py".to_string(), 10_000_000));
}

#[test]
fn by_filesize_weighs_bytes_and_counts_unreadable_files_as_empty() {
    let tests = names("big small missing");
    let size = |t: &str| match t {
        "big" => Some(100),
        "small" => Some(10),
        _ => None,
    };
    let weighed = by_filesize(&tests, &size);
    assert_eq!(weighed.notes.len(), 1);
    assert!(weighed.notes[0].contains("\"missing\""));
    let shares = partition(weighed.tests, 2);
    assert_eq!(shares, [vec!["big"], vec!["small", "missing"]]);
}
