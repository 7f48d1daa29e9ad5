//! Tests of the JSON reporter: a stream with every kind of event is valid against
//! `schema/events.schema.json`, the schema and the reporter name the same event types, and
//! lines the schema must refuse are refused.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{Value, json};

use super::*;
use crate::report::event::JobRef;

const SCHEMA: &str = include_str!("../../../schema/events.schema.json");

fn validator() -> jsonschema::Validator {
    let schema: Value = serde_json::from_str(SCHEMA).expect("the schema is JSON");
    jsonschema::validator_for(&schema).expect("the schema is a valid JSON Schema")
}

/// One event of every kind, in the order a workflow run sends them.
fn every_kind() -> Vec<Event> {
    let job = JobRef::new("build", None);
    let node = JobRef::new("test", Some(1));
    let counts = TestCounts {
        tests: 4,
        failures: 1,
        errors: 0,
        skipped: 1,
    };
    vec![
        Event::RunStarted {
            run: "20261201-230000-ab12".into(),
            workflow: Some("ci".into()),
            jobs: vec!["build".into(), "test".into(), "deploy".into()],
        },
        Event::JobStarted { job: job.clone() },
        Event::Section {
            job: job.clone(),
            title: "Spin up environment".into(),
        },
        Event::LayerProgress {
            job: job.clone(),
            image: "cimg/base:2024.01".into(),
            layer: "fa71c512a4f3".into(),
            status: "Downloading".into(),
            current: Some(1024),
            total: Some(4096),
        },
        Event::PullEnded {
            job: job.clone(),
            image: "cimg/base:2024.01".into(),
        },
        Event::Info {
            job: job.clone(),
            text: "Pulled cimg/base:2024.01 in 1s".into(),
        },
        Event::Warning {
            job: job.clone(),
            text: "no such key".into(),
        },
        Event::StepStarted {
            job: node.clone(),
            step: 1,
            name: "make".into(),
            header: vec!["#!/bin/bash -eo pipefail".into(), "make".into()],
            background: false,
        },
        Event::Output {
            job: node.clone(),
            step: 1,
            stream: Stream::Stderr,
            line: "\x1b[31mred\x1b[0m text".into(),
        },
        Event::StepFinished {
            job: node.clone(),
            step: 1,
            status: StepStatus::Failed {
                exit_code: Some(2),
                reason: Some("Too long with no output (exceeded 10m0s)".into()),
            },
            duration: Duration::from_millis(1500),
        },
        Event::StepFinished {
            job: job.clone(),
            step: 2,
            status: StepStatus::Passed { exit_code: None },
            duration: Duration::from_millis(3),
        },
        Event::StepSkipped {
            job: node.clone(),
            step: 2,
            name: "deploy".into(),
            reason: "when: on_success".into(),
        },
        Event::TestSummary {
            job: node.clone(),
            counts: counts.clone(),
        },
        Event::ServiceLog {
            job: node.clone(),
            service: "postgres".into(),
            exit_code: Some(1),
            lines: vec!["FATAL: no space left".into()],
        },
        Event::WatchResult {
            job: job.clone(),
            run: 1,
            passed: true,
            failure: None,
            duration: Duration::from_millis(2400),
            synced: None,
        },
        Event::WatchRerun {
            job: job.clone(),
            run: 2,
            paths: vec!["src/app.py".into()],
            count: 1,
        },
        Event::WatchResult {
            job: job.clone(),
            run: 2,
            passed: false,
            failure: Some("step \"make\" exited with code 2".into()),
            duration: Duration::from_millis(800),
            synced: Some(crate::report::SyncCounts {
                files: 1,
                bytes: 12,
                removed: 0,
                unchanged: 9999,
            }),
        },
        Event::JobFinished {
            job: node.clone(),
            passed: false,
            failure: Some("step \"make\" failed".into()),
            duration: Duration::from_secs(2),
        },
        Event::JobEnded {
            job: JobRef::new("test", None),
            status: JobStatus::Failed,
            duration: Some(Duration::from_secs(2)),
        },
        Event::JobEnded {
            job: JobRef::new("deploy", None),
            status: JobStatus::NotRun("requires test (failed)".into()),
            duration: None,
        },
        Event::RunFinished {
            rows: vec![
                JobRow {
                    job: "test".into(),
                    status: JobStatus::Failed,
                    duration: Some(Duration::from_secs(2)),
                    tests: Some(counts),
                },
                JobRow {
                    job: "deploy".into(),
                    status: JobStatus::OnHold("approval \"hold\"".into()),
                    duration: None,
                    tests: None,
                },
            ],
            wall: Duration::from_secs(3),
            job_time: Duration::from_secs(4),
        },
    ]
}

/// The lines the reporter writes for `events`.
fn stream(events: &[Event]) -> String {
    let mut json = Json::new(Vec::new());
    for e in events {
        json.handle(e);
    }
    json.flush();
    String::from_utf8(json.into_inner()).unwrap()
}

#[test]
fn a_stream_of_every_event_kind_is_valid_against_the_schema() {
    let validator = validator();
    let text = stream(&every_kind());
    let mut kinds = BTreeSet::new();
    for line in text.lines() {
        let value: Value = serde_json::from_str(line).expect("each line is one JSON object");
        let errors: Vec<String> = validator
            .iter_errors(&value)
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{line}: {errors:?}");
        kinds.insert(value["type"].as_str().unwrap().to_string());
    }
    // Every type the schema knows is in the stream: the test covers the whole schema.
    let schema: Value = serde_json::from_str(SCHEMA).unwrap();
    let declared: BTreeSet<String> = schema["oneOf"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r["$ref"]
                .as_str()
                .unwrap()
                .trim_start_matches("#/$defs/")
                .into()
        })
        .collect();
    assert_eq!(kinds, declared);
}

#[test]
fn lines_carry_the_envelope_first_and_never_an_escape_code() {
    let text = stream(&every_kind());
    assert!(!text.contains('\x1b'));
    let output = text.lines().find(|l| l.contains("\"output\"")).unwrap();
    assert!(
        output.starts_with(r#"{"type":"output","time":"#),
        "{output}"
    );
    let value: Value = serde_json::from_str(output).unwrap();
    assert_eq!(value["job"], "test");
    assert_eq!(value["node"], 1);
    assert_eq!(value["line"], "\x1b[31mred\x1b[0m text");
    let run: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert!(run.get("job").is_none());
    let section: Value = serde_json::from_str(text.lines().nth(2).unwrap()).unwrap();
    assert_eq!(section["node"], Value::Null);
}

#[test]
fn time_counts_milliseconds_from_the_start_of_the_run() {
    let start = Duration::from_millis(1234);
    let value = record(
        &Event::JobStarted {
            job: JobRef::new("a", None),
        },
        start,
    );
    assert_eq!(value["time"], 1234);
}

#[test]
fn the_schema_refuses_what_the_reporter_never_writes() {
    let validator = validator();
    let good = json!({"type": "output", "time": 1, "job": "a", "node": null, "step": 1,
        "stream": "stdout", "line": "x"});
    assert!(validator.is_valid(&good));
    let mut unknown = good.clone();
    unknown["colour"] = json!(true);
    let mut no_line = good.clone();
    no_line.as_object_mut().unwrap().remove("line");
    let mut bad_stream = good.clone();
    bad_stream["stream"] = json!("stdin");
    let no_reason = json!({"type": "job_ended", "time": 1, "job": "a", "node": null,
        "status": "not_run", "reason": null, "duration_ms": null});
    let unknown_type = json!({"type": "nope", "time": 1});
    for bad in [unknown, no_line, bad_stream, no_reason, unknown_type] {
        assert!(!validator.is_valid(&bad), "{bad}");
    }
}

#[test]
fn the_examples_in_the_docs_are_valid() {
    let docs = include_str!("../../../docs/events.md");
    let validator = validator();
    let examples: Vec<&str> = docs
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("{\"type\""))
        .collect();
    assert!(examples.len() >= 3);
    for line in examples {
        let value: Value = serde_json::from_str(line).unwrap();
        assert!(validator.is_valid(&value), "{line}");
    }
}
