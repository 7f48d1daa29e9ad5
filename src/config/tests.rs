use std::time::Duration;

use super::*;
use crate::source::{Source, Sources};

fn parse_str(text: &str) -> Result<Config, Vec<Diagnostic>> {
    let mut sources = Sources::new();
    let id = sources.add(Source::new("t.yml", text.to_string()));
    let node = crate::yaml::parse(sources.get(id), id).expect("valid YAML");
    parse(&node)
}

fn messages(text: &str) -> Vec<String> {
    parse_str(text)
        .expect_err("should be rejected")
        .into_iter()
        .map(|d| d.message)
        .collect()
}

const BASIC: &str = r#"
version: 2
jobs:
  build:
    docker:
      - image: cimg/base:2024.01
        user: circleci
        environment: {A: 1.10}
      - image: redis:7
        name: cache
        command: redis-server --port 7000
    environment:
      - VERSION=1.10
      - EMPTY=
    steps:
      - checkout
      - run: make test
      - run:
          name: Lint
          command: make lint
          no_output_timeout: 1.5m
          when: always
          environment:
            X: yes
      - save_cache: {key: 'v1-{{ checksum "a" }}', paths: [node_modules]}
      - restore_cache: {key: v1-a, keys: [v1-b, v1-]}
      - store_test_results: {path: results}
      - deploy: ./deploy.sh
workflows:
  version: 2
  main:
    jobs:
      - build
      - build:
          name: build-2
      - hold: {type: approval}
"#;

#[test]
fn reads_jobs_images_and_environment_as_written() {
    let config = parse_str(BASIC).unwrap();
    let job = &config.jobs["build"];
    assert_eq!(job.working_directory, "~/project");
    assert_eq!(
        job.environment,
        vec![
            ("VERSION".into(), "1.10".into()),
            ("EMPTY".into(), "".into())
        ]
    );
    let Executor::Docker(images) = &job.executor else {
        panic!("docker executor expected");
    };
    assert_eq!(images[0].environment, vec![("A".into(), "1.10".into())]);
    assert_eq!(images[0].user.as_deref(), Some("circleci"));
    assert_eq!(images[1].name.as_deref(), Some("cache"));
    assert_eq!(
        images[1].command.as_deref(),
        Some(&["redis-server".to_string(), "--port".into(), "7000".into()][..])
    );
}

#[test]
fn steps_have_one_canonical_form() {
    let config = parse_str(BASIC).unwrap();
    let steps = &config.jobs["build"].steps;
    assert_eq!(steps[0].display_name(), "Checkout code");
    let StepKind::Run(run) = &steps[1].kind else {
        panic!("run expected")
    };
    assert_eq!(run.command, "make test");
    assert_eq!(steps[1].display_name(), "make test");
    let StepKind::Run(lint) = &steps[2].kind else {
        panic!("run expected")
    };
    assert_eq!(steps[2].when, When::Always);
    assert_eq!(lint.no_output_timeout, Some(Duration::from_secs(90)));
    assert_eq!(lint.environment, vec![("X".into(), "yes".into())]);
    assert_eq!(
        steps[4].kind,
        StepKind::RestoreCache {
            keys: vec!["v1-a".into(), "v1-b".into(), "v1-".into()]
        }
    );
    assert_eq!(
        steps[5].when,
        When::Always,
        "test results run after failures"
    );
    assert!(matches!(&steps[6].kind, StepKind::Run(r) if r.command == "./deploy.sh"));
}

#[test]
fn workflows_name_their_invocations() {
    let config = parse_str(BASIC).unwrap();
    let names: Vec<_> = config.workflows[0]
        .jobs
        .iter()
        .map(|j| (j.job.as_str(), j.run_name(), j.approval))
        .collect();
    assert_eq!(
        names,
        vec![
            ("build", "build", false),
            ("build", "build-2", false),
            ("hold", "hold", true)
        ]
    );
}

#[test]
fn every_problem_is_reported_with_its_pointer() {
    let text = "version: 2\njobs:\n  a:\n    docker: [{image: x}]\n    steps:\n      - frobnicate\n      - run: {name: x}\n      - run: {command: y, when: sometimes, no_output_timeout: 10}\n";
    let diags = parse_str(text).unwrap_err();
    let got: Vec<_> = diags
        .iter()
        .map(|d| (d.message.as_str(), d.pointer.as_deref().unwrap_or("")))
        .collect();
    assert_eq!(
        got,
        vec![
            ("unknown step `frobnicate`", "/jobs/a/steps/0"),
            ("`run` needs `command`", "/jobs/a/steps/1/run"),
            (
                "`no_output_timeout` is not a duration: `10`",
                "/jobs/a/steps/2/run/no_output_timeout"
            ),
            (
                "`when` must be `on_success`, `on_fail` or `always`",
                "/jobs/a/steps/2/run/when"
            ),
        ]
    );
}

#[test]
fn machine_and_missing_executors_are_recognised() {
    let config = parse_str(
        "version: 2\njobs:\n  m:\n    machine: {image: ubuntu-2204:current}\n    steps: [checkout]\n  hold:\n    type: approval\n",
    )
    .unwrap();
    assert_eq!(
        config.jobs["m"].executor,
        Executor::Machine(crate::config::Machine {
            image: Some("ubuntu-2204:current".into()),
            ..Default::default()
        })
    );
    assert_eq!(config.jobs["hold"].executor, Executor::None);
    assert_eq!(config.jobs["hold"].job_type, JobType::Approval);
}

#[test]
fn shape_errors() {
    assert_eq!(
        messages(
            "version: 2\njobs:\n  a:\n    docker: [{image: x}]\n    environment: [NOPE]\n    steps: [checkout]\n"
        ),
        vec!["environment entry `NOPE` is not KEY=VALUE"]
    );
    assert_eq!(
        messages(
            "version: 2\njobs:\n  a:\n    docker: [{image: x, auth: {username: u}}]\n    steps: [checkout]\n"
        ),
        vec!["`auth` needs both `username` and `password`"]
    );
    assert_eq!(messages("version: 2\n"), vec!["the config has no `jobs`"]);
}

#[test]
fn version_detection() {
    let mut sources = Sources::new();
    let id = sources.add(Source::new("t.yml", "version: 2.1\n".to_string()));
    let node = crate::yaml::parse(sources.get(id), id).unwrap();
    assert!(is_version_2_1(&node));
}
