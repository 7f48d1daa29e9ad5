use super::*;
use crate::source::{Source, Sources};

fn config(text: &str) -> Config {
    let mut sources = Sources::new();
    let id = sources.add(Source::new("t.yml", text.to_string()));
    let node = crate::yaml::parse(sources.get(id), id).expect("valid YAML");
    crate::config::parse(&node).expect("valid config")
}

const CONFIG: &str = r#"
version: 2
jobs:
  build:
    docker: [{image: cimg/python:3.12}, {image: redis:7, name: cache}]
    environment: {CIRCLE_BRANCH: from-job}
    steps: [checkout]
  mac:
    macos: {xcode: 15.0.0}
    steps: [checkout]
  nothing:
    type: no-op
workflows:
  main:
    jobs:
      - build: {name: build-py}
      - hold: {type: approval}
"#;

fn options() -> PlanOptions {
    PlanOptions {
        repo: RepoInfo {
            branch: Some("main".into()),
            revision: Some("abc".into()),
            remote_url: Some("git@github.com:acme/widget.git".into()),
            ..RepoInfo::default()
        },
        node_total: 1,
        bash_env: "/tmp/.bash_env-localci-1".into(),
        image_map: vec![("cimg/python:3.12".into(), "local/python:dev".into())],
        project_env: vec![("TOKEN".into(), "t".into())],
        ..PlanOptions::default()
    }
}

fn run(plan: Plan) -> JobPlan {
    match plan {
        Plan::Run(p) => *p,
        Plan::Nothing(why) => panic!("expected a job, got: {why}"),
    }
}

#[test]
fn plain_job_with_image_map_and_layers() {
    let plan = run(super::plan(&config(CONFIG), "build", &options()).unwrap());
    assert_eq!(plan.images[0].image, "local/python:dev");
    assert_eq!(
        plan.images[0].mapped_from.as_deref(),
        Some("cimg/python:3.12")
    );
    assert_eq!(plan.images[1].image, "redis:7");
    let env = plan.environment.for_step(&[]);
    let get = |k: &str| {
        env.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(
        get("CIRCLE_BRANCH"),
        Some("from-job"),
        "job env beats built-ins"
    );
    assert_eq!(get("CIRCLE_JOB"), Some("build"));
    assert_eq!(get("CIRCLE_WORKING_DIRECTORY"), Some("~/project"));
    assert_eq!(get("CIRCLE_PROJECT_USERNAME"), Some("acme"));
    assert_eq!(get("BASH_ENV"), Some("/tmp/.bash_env-localci-1"));
    assert_eq!(get("TOKEN"), Some("t"));
    assert_eq!(get("CI"), Some("true"));
}

#[test]
fn named_invocation_runs_its_job_under_its_name() {
    let plan = run(super::plan(&config(CONFIG), "build-py", &options()).unwrap());
    assert_eq!(
        (plan.name.as_str(), plan.job.as_str()),
        ("build-py", "build")
    );
    assert_eq!(plan.environment.get("CIRCLE_JOB"), Some("build-py"));
}

#[test]
fn unknown_job_lists_the_choices() {
    let err = super::plan(&config(CONFIG), "deploy", &options()).unwrap_err();
    assert_eq!(err.message, "no job named `deploy` in the config");
    assert_eq!(
        err.hint.as_deref(),
        Some("the jobs are: build, mac, nothing, build-py")
    );
}

#[test]
fn macos_is_refused_with_a_hint() {
    let err = super::plan(&config(CONFIG), "mac", &options()).unwrap_err();
    assert!(err.message.contains("`macos` executor"), "{}", err.message);
    assert!(err.hint.unwrap().contains("docker"));
}

#[test]
fn no_op_runs_nothing_and_bad_node_index_is_refused() {
    assert!(matches!(
        super::plan(&config(CONFIG), "nothing", &options()).unwrap(),
        Plan::Nothing(_)
    ));
    let bad = PlanOptions {
        node_index: 2,
        node_total: 2,
        ..options()
    };
    assert!(super::plan(&config(CONFIG), "build", &bad).is_err());
}

#[test]
fn tag_builds_contexts_and_workflow_builtins() {
    let mut opts = options();
    opts.repo.tag = Some("v1".into());
    opts.repo.branch = None;
    opts.context_env = vec![("TOKEN".into(), "from-context".into())];
    opts.extra_builtins = vec![("CIRCLE_BUILD_NUM".into(), "7".into())];
    let plan = run(super::plan(&config(CONFIG), "build", &opts).unwrap());
    assert_eq!(plan.git.branch, None);
    assert_eq!(plan.git.tag.as_deref(), Some("v1"));
    assert_eq!(plan.environment.get("TOKEN"), Some("from-context"));
    assert_eq!(plan.environment.get("CIRCLE_BUILD_NUM"), Some("7"));
}

#[test]
fn plan_serializes() {
    let plan = run(super::plan(&config(CONFIG), "build", &options()).unwrap());
    let json = serde_json::to_value(&plan).unwrap();
    assert_eq!(json["images"][0]["image"], "local/python:dev");
    assert_eq!(json["steps"][0]["kind"]["type"], "checkout");
}
