//! Tests of the terminal reporter over event sequences: single-job output as CircleCI shows
//! it, job prefixes in multi-job runs, whole lines across concurrent jobs, service blocks, the
//! live job lines and the end table.

use std::time::Duration;

use super::*;
use crate::backend::Stream;
use crate::report::event::{JobRow, JobStatus, StepStatus};

fn text(t: Terminal<Vec<u8>>) -> String {
    String::from_utf8(t.into_inner()).unwrap()
}

fn run(mut t: Terminal<Vec<u8>>, events: &[Event]) -> String {
    for e in events {
        t.handle(e);
    }
    t.finish();
    text(t)
}

fn started(job: &JobRef, step: usize, name: &str) -> Event {
    Event::StepStarted {
        job: job.clone(),
        step,
        name: name.into(),
        header: vec![format!("{name} --verbose")],
        background: false,
    }
}

fn out(job: &JobRef, step: usize, line: &str) -> Event {
    Event::Output {
        job: job.clone(),
        step,
        stream: Stream::Stdout,
        line: line.into(),
    }
}

fn finished(job: &JobRef, passed: bool) -> Event {
    Event::JobFinished {
        job: job.clone(),
        passed,
        failure: (!passed).then(|| "step \"make\" failed".into()),
        duration: Duration::from_secs(2),
    }
}

fn service(job: &JobRef, exit_code: Option<i64>) -> Event {
    Event::ServiceLog {
        job: job.clone(),
        service: "postgres".into(),
        exit_code,
        lines: vec!["ready".into(), "FATAL: out of disk".into()],
    }
}

#[test]
fn renders_circleci_style_sections() {
    let job = JobRef::new("build", None);
    let events = [
        Event::StepStarted {
            job: job.clone(),
            step: 1,
            name: "make".into(),
            header: vec!["#!/bin/sh -eo pipefail".into(), "make".into()],
            background: false,
        },
        out(&job, 1, "ok"),
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
        finished(&job, false),
    ];
    assert_eq!(
        run(Terminal::new(Vec::new(), false), &events),
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
    assert!(t.live.has_pulls());
    t.handle(&Event::PullEnded {
        job: job.clone(),
        image: "img".into(),
    });
    assert!(!t.live.has_pulls());
    t.handle(&info("Pulled img in 1s"));
    t.finish();
    assert_eq!(text(t), "Pulling image img\nPulled img in 1s\n");
}

#[test]
fn a_single_job_run_has_no_prefixes_even_inside_a_run() {
    let job = JobRef::new("build", None);
    let events = [
        Event::RunStarted {
            run: "r1".into(),
            workflow: None,
            jobs: vec!["build".into()],
        },
        Event::JobStarted { job: job.clone() },
        out(&job, 1, "hello"),
        finished(&job, true),
    ];
    let text = run(Terminal::new(Vec::new(), false), &events);
    assert_eq!(text, "hello\nSuccess! Job \"build\" passed in 2s\n");
}

#[test]
fn every_line_of_a_multi_job_run_carries_its_job_and_node() {
    let build = JobRef::new("build", None);
    let test1 = JobRef::new("test", Some(1));
    let events = [
        Event::RunStarted {
            run: "r1".into(),
            workflow: Some("ci".into()),
            jobs: vec!["build".into(), "test".into()],
        },
        started(&build, 1, "make"),
        started(&test1, 1, "pytest"),
        out(&build, 1, "compiling"),
        out(&test1, 1, "collected 3 items"),
        Event::TestSummary {
            job: test1.clone(),
            counts: TestCounts {
                tests: 3,
                ..TestCounts::default()
            },
        },
        finished(&test1, true),
        Event::JobEnded {
            job: JobRef::new("deploy", None),
            status: JobStatus::OnHold("approval \"hold\" not given (--approve)".into()),
            duration: None,
        },
    ];
    let text = run(Terminal::new(Vec::new(), false).multi_job(true), &events);
    assert_eq!(
        text,
        // `test[1]` is wider than any job the run announced: the column grows.
        "build | ====>> make
build |   make --verbose
test[1] | ====>> pytest
test[1] |   pytest --verbose
build   | compiling
test[1] | collected 3 items
test[1] | Tests of \"test[1]\": 3 tests
test[1] | Success! Job \"test[1]\" passed in 2s
deploy  | Job \"deploy\" on hold: approval \"hold\" not given (--approve)
"
    );
}

#[test]
fn lines_of_concurrent_jobs_never_mix() {
    // Two jobs printing at once, their events interleaved as the channel delivers them.
    let a = JobRef::new("a", None);
    let b = JobRef::new("bb", Some(0));
    let mut events = Vec::new();
    for i in 0..500 {
        events.push(out(&a, 1, &format!("a line {i} {}", "x".repeat(i % 97))));
        events.push(out(&b, 2, &format!("b line {i} {}", "y".repeat(i % 89))));
    }
    let text = run(Terminal::new(Vec::new(), true).multi_job(true), &events);
    let (mut seen_a, mut seen_b) = (0, 0);
    for line in text.lines() {
        let (who, rest) = line.split_once(" | ").expect("every line has a prefix");
        if who.trim_end() == "\x1b[36ma\x1b[0m" || who.starts_with("\x1b[36ma    ") {
            assert_eq!(rest, format!("a line {seen_a} {}", "x".repeat(seen_a % 97)));
            seen_a += 1;
        } else if who == "\x1b[35mbb[0]\x1b[0m" {
            assert_eq!(rest, format!("b line {seen_b} {}", "y".repeat(seen_b % 89)));
            seen_b += 1;
        } else {
            panic!("a line without its job: {line:?}");
        }
    }
    assert_eq!((seen_a, seen_b), (500, 500));
}

#[test]
fn without_color_a_multi_job_run_has_no_escape_codes() {
    let a = JobRef::new("a", None);
    let events = [
        started(&a, 1, "make"),
        out(&a, 1, "ok"),
        Event::StepFinished {
            job: a.clone(),
            step: 1,
            status: StepStatus::Passed { exit_code: Some(0) },
            duration: Duration::from_secs(1),
        },
        finished(&a, true),
        Event::RunFinished {
            rows: vec![JobRow {
                job: "a".into(),
                status: JobStatus::Success,
                duration: Some(Duration::from_secs(2)),
                tests: None,
            }],
            wall: Duration::from_secs(2),
            job_time: Duration::from_secs(2),
        },
    ];
    let mut t = Terminal::new(Vec::new(), false).multi_job(true).live(true);
    for e in &events {
        t.handle(e);
        t.tick();
    }
    t.finish();
    let text = text(t);
    assert!(!text.contains('\x1b'), "{text:?}");
    assert!(text.contains("a | ---> \"make\" passed in 1s, exit code 0\n"));
}

#[test]
fn the_run_ends_with_its_table_without_prefixes() {
    let a = JobRef::new("a", None);
    let events = [
        Event::RunStarted {
            run: "r1".into(),
            workflow: Some("ci".into()),
            jobs: vec!["a".into()],
        },
        Event::TestSummary {
            job: a.clone(),
            counts: TestCounts {
                tests: 5,
                failures: 1,
                ..TestCounts::default()
            },
        },
        finished(&a, false),
        Event::RunFinished {
            rows: vec![JobRow {
                job: "a".into(),
                status: JobStatus::Failed,
                duration: Some(Duration::from_secs(2)),
                tests: None,
            }],
            wall: Duration::from_secs(3),
            job_time: Duration::from_secs(2),
        },
    ];
    let text = run(Terminal::new(Vec::new(), false).multi_job(true), &events);
    let table: Vec<&str> = text.lines().skip(2).collect();
    assert_eq!(
        table,
        [
            "Workflow \"ci\":",
            "  JOB  STATUS  DURATION  TESTS",
            "  a    failed  2s        5 tests, 1 failed",
            "Workflow took 3s (jobs took 2s in all)",
            "Tests: 5 tests, 1 failed",
        ]
    );
}

#[test]
fn service_lines_are_shown_when_the_job_fails_and_not_when_it_passes() {
    let a = JobRef::new("a", None);
    let b = JobRef::new("b", None);
    let events = [
        service(&a, None),
        service(&b, None),
        finished(&b, true),
        finished(&a, false),
    ];
    let text = run(Terminal::new(Vec::new(), false).multi_job(true), &events);
    assert_eq!(
        text,
        "b | Success! Job \"b\" passed in 2s
a | last lines of service postgres:
a |   ready
a |   FATAL: out of disk
a | Task failed. Job \"a\" failed in 2s: step \"make\" failed
"
    );
}

#[test]
fn a_service_that_exits_non_zero_is_shown_at_once() {
    let a = JobRef::new("a", None);
    let text = run(Terminal::new(Vec::new(), false), &[service(&a, Some(1))]);
    assert_eq!(
        text,
        "last lines of service postgres (exited with code 1):\n  ready\n  FATAL: out of disk\n"
    );
}

#[test]
fn the_live_block_has_a_line_per_running_job_with_its_step() {
    let whole = JobRef::new("test", None);
    let n0 = JobRef::new("test", Some(0));
    let n1 = JobRef::new("test", Some(1));
    let mut t = Terminal::new(Vec::new(), false).multi_job(true);
    t.handle(&Event::JobStarted { job: whole.clone() });
    assert_eq!(t.live.shown(&whole).as_deref(), Some("starting"));
    t.handle(&started(&n0, 1, "make"));
    t.handle(&Event::LayerProgress {
        job: n1.clone(),
        image: "cimg/base".into(),
        layer: "fa71c512a4f3".into(),
        status: "Waiting".into(),
        current: None,
        total: None,
    });
    // The nodes replaced the job's own line.
    assert_eq!(t.live.shown(&whole), None);
    assert_eq!(t.live.shown(&n0).as_deref(), Some("running: make"));
    assert_eq!(t.live.shown(&n1).as_deref(), Some("pulling: cimg/base"));
    t.handle(&Event::StepFinished {
        job: n0.clone(),
        step: 1,
        status: StepStatus::Failed {
            exit_code: Some(1),
            reason: None,
        },
        duration: Duration::from_secs(1),
    });
    t.handle(&started(&n0, 2, "upload logs"));
    assert_eq!(t.live.shown(&n0).as_deref(), Some("failing: upload logs"));
    t.handle(&finished(&n0, false));
    assert_eq!(t.live.shown(&n0), None);
    assert!(t.live.shown(&n1).is_some());
    t.handle(&Event::JobEnded {
        job: whole.clone(),
        status: JobStatus::Failed,
        duration: Some(Duration::from_secs(3)),
    });
    assert_eq!(t.live.shown(&n1), None);
}

#[test]
fn a_single_job_run_has_no_job_line() {
    let job = JobRef::new("build", None);
    let mut t = Terminal::new(Vec::new(), false);
    t.handle(&started(&job, 1, "make"));
    assert_eq!(t.live.shown(&job), None);
}

#[test]
fn a_late_event_of_a_finished_node_brings_no_line_back() {
    let job = JobRef::new("build", None);
    let mut t = Terminal::new(Vec::new(), false).multi_job(true);
    t.handle(&started(&job, 1, "make"));
    t.handle(&finished(&job, true));
    t.handle(&Event::Info {
        job: job.clone(),
        text: "Removed the containers".into(),
    });
    assert_eq!(t.live.shown(&job), None);
}

#[test]
fn a_canceled_job_shows_its_held_service_lines() {
    let node = JobRef::new("a", Some(0));
    let events = [
        service(&node, None),
        Event::JobEnded {
            job: JobRef::new("a", None),
            status: JobStatus::Canceled,
            duration: None,
        },
    ];
    let text = run(Terminal::new(Vec::new(), false), &events);
    assert!(
        text.starts_with("last lines of service postgres:\n  ready\n"),
        "{text}"
    );
}
