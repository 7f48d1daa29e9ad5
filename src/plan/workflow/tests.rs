use super::*;
use crate::source::{Source, Sources};

fn config(text: &str) -> Config {
    let mut sources = Sources::new();
    let id = sources.add(Source::new("t.yml", text.to_string()));
    let node = crate::yaml::parse(sources.get(id), id).expect("valid YAML");
    crate::config::parse(&node).expect("valid config")
}

fn branch(name: &str) -> BuildRef {
    BuildRef {
        branch: Some(name.into()),
        tag: None,
    }
}

fn tag(name: &str) -> BuildRef {
    BuildRef {
        branch: None,
        tag: Some(name.into()),
    }
}

fn plan(text: &str, build: &BuildRef) -> WorkflowPlan {
    let config = config(text);
    let wf = choose_workflow(&config, None).expect("one workflow");
    plan_workflow(&config, wf, build).expect("plans")
}

fn skipped(plan: &WorkflowPlan) -> Vec<&str> {
    plan.jobs
        .iter()
        .filter(|j| j.skipped.is_some())
        .map(|j| j.name.as_str())
        .collect()
}

const DIAMOND: &str = r#"
version: 2.1
jobs:
  a: {docker: [{image: x}], steps: [checkout]}
  b: {docker: [{image: x}], parallelism: 3, steps: [checkout]}
  c: {docker: [{image: x}], steps: [checkout]}
  d: {docker: [{image: x}], steps: [checkout]}
workflows:
  ci:
    jobs:
      - d: {requires: [b, {c: [success, failed]}]}
      - b: {requires: [a]}
      - c: {requires: [a]}
      - a
      - hold: {type: approval, requires: [d]}
"#;

#[test]
fn a_diamond_is_ordered_with_needs_and_upstream() {
    let p = plan(DIAMOND, &branch("main"));
    let names: Vec<&str> = p.jobs.iter().map(|j| j.name.as_str()).collect();
    assert_eq!(names, ["a", "b", "c", "d", "hold"]);
    let d = p.get("d").unwrap();
    assert_eq!(d.upstream, ["a", "b", "c"]);
    assert_eq!(d.needs[1].statuses, ["success", "failed"]);
    assert_eq!(p.get("b").unwrap().parallelism, 3);
    assert_eq!(p.get("hold").unwrap().kind, PlannedKind::Approval);
    assert_eq!(p.get("hold").unwrap().upstream, ["a", "b", "c", "d"]);
}

#[test]
fn terminal_means_every_status() {
    let text = DIAMOND.replace("{c: [success, failed]}", "{c: terminal}");
    let p = plan(&text, &branch("main"));
    assert_eq!(
        p.get("d").unwrap().needs[1].statuses,
        ["success", "failed", "canceled", "unauthorized", "not_run"]
    );
}

const FILTERED: &str = r#"
version: 2
jobs:
  build: {docker: [{image: x}], steps: [checkout]}
  test: {docker: [{image: x}], steps: [checkout]}
  deploy: {docker: [{image: x}], steps: [checkout]}
  docs: {docker: [{image: x}], steps: [checkout]}
workflows:
  version: 2
  ci:
    jobs:
      - build: {filters: {tags: {only: /^v.*/}}}
      - test: {requires: [build], filters: {branches: {ignore: /feature-.*/}, tags: {only: /.*/}}}
      - deploy:
          requires: [test]
          filters: {branches: {only: [main, /release-\d+/]}, tags: {only: /^v\d+/}}
      - docs: {filters: {branches: {only: main}}}
"#;

#[test]
fn branch_filters_match_whole_names() {
    assert_eq!(
        skipped(&plan(FILTERED, &branch("main"))),
        Vec::<&str>::new()
    );
    assert_eq!(skipped(&plan(FILTERED, &branch("release-12"))), ["docs"]);
    // `/release-\d+/` must match the whole branch name.
    assert_eq!(
        skipped(&plan(FILTERED, &branch("release-12x"))),
        ["deploy", "docs"]
    );
    // A filtered-out requirement takes its dependents with it when it was all they required.
    assert_eq!(
        skipped(&plan(FILTERED, &branch("feature-x"))),
        ["test", "deploy", "docs"]
    );
}

#[test]
fn tag_builds_run_only_jobs_with_a_matching_tag_filter() {
    assert_eq!(skipped(&plan(FILTERED, &tag("v1"))), ["docs"]);
    // test matches `/.*/`, but all it requires (build) is filtered out, so it does not run.
    let p = plan(FILTERED, &tag("nightly"));
    assert_eq!(skipped(&p), ["build", "test", "deploy", "docs"]);
    assert!(
        p.get("test")
            .unwrap()
            .skipped
            .as_deref()
            .unwrap()
            .contains("left out (build)")
    );
    assert!(
        p.get("docs")
            .unwrap()
            .skipped
            .as_deref()
            .unwrap()
            .contains("no `tags` filter")
    );
}

#[test]
fn a_requirement_filtered_out_is_ignored_when_others_remain() {
    let text = r#"
version: 2
jobs:
  a: {docker: [{image: x}], steps: [checkout]}
  b: {docker: [{image: x}], steps: [checkout]}
  c: {docker: [{image: x}], steps: [checkout]}
workflows:
  ci:
    jobs:
      - a: {filters: {branches: {only: main}}}
      - b
      - c: {requires: [a, b]}
"#;
    let p = plan(text, &branch("dev"));
    assert_eq!(skipped(&p), ["a"]);
    let c = p.get("c").unwrap();
    assert_eq!(c.needs.len(), 1);
    assert_eq!(c.needs[0].job, "b");
}

#[test]
fn cycles_and_unknown_requirements_are_errors() {
    let text = r#"
version: 2
jobs:
  a: {docker: [{image: x}], steps: [checkout]}
  b: {docker: [{image: x}], steps: [checkout]}
workflows:
  ci:
    jobs:
      - a: {requires: [b]}
      - b: {requires: [a, nope]}
"#;
    let config = config(text);
    let wf = choose_workflow(&config, Some("ci")).unwrap();
    let errors = plan_workflow(&config, wf, &branch("main")).unwrap_err();
    let messages: Vec<&str> = errors.iter().map(|d| d.message.as_str()).collect();
    assert!(
        messages
            .iter()
            .any(|m| m.contains("`nope`, which is not a job")),
        "{messages:?}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m.contains("form a cycle among: a, b")),
        "{messages:?}"
    );
}

#[test]
fn choosing_a_workflow() {
    let text = r#"
version: 2
jobs:
  a: {docker: [{image: x}], steps: [checkout]}
workflows:
  one: {jobs: [a]}
  two: {jobs: [a]}
"#;
    let config = config(text);
    let many = choose_workflow(&config, None).unwrap_err();
    assert!(many.message.contains("has 2 workflows"));
    assert!(
        many.hint
            .unwrap()
            .contains("localci execute --workflow two")
    );
    assert_eq!(choose_workflow(&config, Some("two")).unwrap().name, "two");
    assert!(
        choose_workflow(&config, Some("three"))
            .unwrap_err()
            .hint
            .unwrap()
            .contains("one, two")
    );
}

#[test]
fn a_bad_regex_points_at_the_pattern() {
    let text = FILTERED.replace("/feature-.*/", "/feature-(/");
    let config = config(&text);
    let wf = choose_workflow(&config, None).unwrap();
    let errors = plan_workflow(&config, wf, &branch("x")).unwrap_err();
    assert!(
        errors[0]
            .message
            .contains("`/feature-(/` is not a regular expression")
    );
}
