//! The timings file: written by the host from JUnit reports, read back by the agent.

use std::fs;

use crate::agent::tsv::{Timing, parse, row};
use crate::agent::{timings_tsv, timings_tsv_from};
use crate::store::junit::CaseTiming;

#[test]
fn what_the_host_writes_the_agent_reads() {
    let cases = [
        CaseTiming {
            file: "tests/test_a.py".into(),
            classname: "tests.test_a".into(),
            name: "test_one[tab\there]".into(),
            seconds: 1.25,
        },
        CaseTiming {
            file: String::new(),
            classname: "com.acme.B".into(),
            name: "multi\nline".into(),
            seconds: 0.0,
        },
    ];
    let text = timings_tsv(&cases);
    assert_eq!(text.lines().count(), 2);
    assert_eq!(
        parse(&text),
        [
            Timing {
                file: "tests/test_a.py".into(),
                class: "tests.test_a".into(),
                name: "test_one[tab here]".into(),
                seconds: 1.25,
            },
            Timing {
                file: String::new(),
                class: "com.acme.B".into(),
                name: "multi line".into(),
                seconds: 0.0,
            },
        ]
    );
}

#[test]
fn damaged_lines_are_skipped() {
    let text = format!(
        "{}only\ttwo\n{}a\tb\tc\tNaN\na\tb\tc\t-1\na\tb\tc\t1\textra\n",
        row("x.py", "X", "t", 2.0),
        row("y.py", "Y", "u", 0.5)
    );
    let parsed = parse(&text);
    assert_eq!(parsed.len(), 2);
    assert_eq!(parsed[1].file, "y.py");
}

#[test]
fn a_results_folder_becomes_a_timings_file() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(
        dir.path().join("junit.xml"),
        r#"<testsuite name="pytest"><testcase classname="tests.test_a" name="t" file="tests/test_a.py" time="0.5"/></testsuite>"#,
    )
    .unwrap();
    assert_eq!(
        timings_tsv_from(dir.path()).unwrap(),
        "tests/test_a.py\ttests.test_a\tt\t0.5\n"
    );
    assert!(timings_tsv_from(&dir.path().join("missing")).is_err());
}
