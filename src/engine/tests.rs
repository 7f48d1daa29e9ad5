//! Engine tests against the in-memory backend: sequencing, containers, cleanup, cancellation.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use super::owner::Owner;
use super::*;
use crate::backend::fake::{FakeBackend, Reply};
use crate::backend::{LABEL, LABEL_PID, Labelled, ResourceKind, Stream};
use crate::plan::{Plan, PlanOptions};
use crate::report::Event;
use crate::report::StepStatus;
use crate::source::{Source, Sources};

fn plan_for(yaml: &str, job: &str) -> JobPlan {
    let mut sources = Sources::new();
    let id = sources.add(Source::new("t.yml", yaml.to_string()));
    let node = crate::yaml::parse(sources.get(id), id).expect("valid YAML");
    let config = crate::config::parse(&node).expect("valid config");
    let options = PlanOptions {
        node_total: 1,
        bash_env: bash_env_path(1),
        project_env: vec![("FROM_E".into(), "e".into())],
        ..PlanOptions::default()
    };
    match crate::plan::plan(&config, job, &options).expect("plans") {
        Plan::Run(p) => *p,
        Plan::Nothing(why) => panic!("{why}"),
    }
}

fn job(steps: &str) -> String {
    format!(
        "version: 2\njobs:\n  build:\n    docker: [{{image: img}}]\n    environment: {{FROM_JOB: j}}\n    steps:\n{steps}"
    )
}

struct Ran {
    status: Result<NodeOutcome, EngineError>,
    events: Vec<Event>,
}

impl Ran {
    fn output(&self) -> Vec<String> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Output { line, .. } => Some(line.clone()),
                _ => None,
            })
            .collect()
    }

    fn finished(&self) -> Vec<(usize, StepStatus)> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::StepFinished { step, status, .. } => Some((*step, status.clone())),
                _ => None,
            })
            .collect()
    }

    fn skipped(&self) -> Vec<usize> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::StepSkipped { step, .. } => Some(*step),
                _ => None,
            })
            .collect()
    }

    fn infos(&self) -> String {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Info { text, .. } | Event::Warning { text, .. } => Some(text.clone()),
                _ => None,
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

async fn run_with(
    backend: &Arc<FakeBackend>,
    plan: JobPlan,
    options: EngineOptions,
    cancel: CancellationToken,
) -> Ran {
    let (tx, mut rx) = crate::report::channel();
    let dyn_backend: Arc<dyn Backend> = backend.clone();
    let status = run_job(dyn_backend, plan, options, tx, cancel).await;
    let mut events = Vec::new();
    while let Some(e) = rx.try_recv() {
        events.push(e);
    }
    Ran { status, events }
}

async fn run(backend: &Arc<FakeBackend>, plan: JobPlan) -> Ran {
    run_with(
        backend,
        plan,
        EngineOptions::default(),
        CancellationToken::new(),
    )
    .await
}

fn passed(code: i64) -> StepStatus {
    StepStatus::Passed {
        exit_code: Some(code),
    }
}

fn failed(code: i64) -> StepStatus {
    StepStatus::Failed {
        exit_code: Some(code),
        reason: None,
    }
}

#[tokio::test]
async fn passing_job_streams_output_and_removes_its_container() {
    let backend = Arc::new(FakeBackend::new(&["img"]));
    let ran = run(
        &backend,
        plan_for(
            &job("      - run: echo hello\n      - run: echo err >&2\n"),
            "build",
        ),
    )
    .await;
    assert_eq!(*ran.status.as_ref().unwrap(), NodeOutcome::Passed);
    assert_eq!(ran.output(), vec!["hello", "err"]);
    assert_eq!(ran.finished(), vec![(0, passed(0)), (1, passed(0))]);
    let state = backend.state();
    let primary = &state.removed[0];
    assert!(state.execs.iter().all(|c| &c.container == primary));
    assert!(
        state.containers.is_empty(),
        "containers left: {:?}",
        state.containers.keys()
    );
    assert_eq!(state.removed.len(), 1);
    assert!(matches!(
        ran.events.last(),
        Some(Event::JobFinished { passed: true, .. })
    ));
}

#[tokio::test]
async fn primary_is_kept_alive_and_labelled() {
    let backend = Arc::new(FakeBackend::new(&["img"]));
    let plan = plan_for(&job("      - run: echo hi\n"), "build");
    let options = EngineOptions {
        keep: true,
        ..EngineOptions::default()
    };
    let ran = run_with(&backend, plan, options, CancellationToken::new()).await;
    assert_eq!(*ran.status.as_ref().unwrap(), NodeOutcome::Passed);
    let state = backend.state();
    let primary = state.containers.values().next().expect("kept with --keep");
    assert_eq!(
        primary.spec.entrypoint.as_deref(),
        Some(&["/bin/sh".to_string()][..])
    );
    assert!(primary.spec.init);
    for label in [
        LABEL,
        crate::backend::LABEL_RUN,
        LABEL_PID,
        LABEL_HOST,
        LABEL_KEEP,
    ] {
        assert!(
            primary.spec.labels.contains_key(label),
            "missing label {label}"
        );
    }
    assert!(
        ran.infos().contains("docker exec -it -w /root/project"),
        "{}",
        ran.infos()
    );
}

#[tokio::test]
async fn after_a_failure_only_on_fail_and_always_steps_run() {
    let backend = Arc::new(FakeBackend::new(&["img"]));
    let steps = "      - run: exit 3\n      - run: echo skipped\n      - run: {command: echo on-fail, when: on_fail}\n      - run: {command: echo always, when: always}\n      - run: {command: exit 4, when: always}\n";
    let ran = run(&backend, plan_for(&job(steps), "build")).await;
    assert_eq!(*ran.status.as_ref().unwrap(), NodeOutcome::Failed);
    assert_eq!(ran.output(), vec!["on-fail", "always"]);
    assert_eq!(ran.skipped(), vec![1]);
    assert_eq!(
        ran.finished(),
        vec![
            (0, failed(3)),
            (2, passed(0)),
            (3, passed(0)),
            (4, failed(4))
        ]
    );
    let Some(Event::JobFinished { failure, .. }) = ran.events.last() else {
        panic!("the job should finish")
    };
    assert_eq!(
        failure.as_deref(),
        Some("step \"exit 3\" exited with code 3")
    );
}

#[tokio::test]
async fn on_fail_steps_are_skipped_when_all_passed() {
    let backend = Arc::new(FakeBackend::new(&["img"]));
    let ran = run(
        &backend,
        plan_for(
            &job("      - run: {command: echo x, when: on_fail}\n"),
            "build",
        ),
    )
    .await;
    assert_eq!(*ran.status.as_ref().unwrap(), NodeOutcome::Passed);
    assert_eq!(ran.skipped(), vec![0]);
}

#[tokio::test]
async fn a_failing_background_step_does_not_fail_the_job() {
    let backend = Arc::new(FakeBackend::new(&["img"]));
    let steps = "      - run: {command: echo bg, background: true}\n      - run: sleep 0.2\n";
    let steps = format!(
        "{steps}      - run: {{command: \"echo later\\nexit 5\", background: true, name: bg2}}\n      - run: sleep 0.2\n"
    );
    let ran = run(&backend, plan_for(&job(&steps), "build")).await;
    assert_eq!(*ran.status.as_ref().unwrap(), NodeOutcome::Passed);
    let finished = ran.finished();
    assert!(finished.contains(&(2, failed(5))), "{finished:?}");
    assert!(ran.output().contains(&"bg".to_string()));
}

#[tokio::test]
async fn no_output_timeout_kills_the_step_with_circlecis_message() {
    let backend = Arc::new(FakeBackend::new(&["img"]));
    let steps = "      - run: {command: hang, no_output_timeout: 200ms}\n";
    let ran = run(&backend, plan_for(&job(steps), "build")).await;
    assert_eq!(*ran.status.as_ref().unwrap(), NodeOutcome::Failed);
    assert_eq!(
        ran.finished(),
        vec![(
            0,
            StepStatus::Failed {
                exit_code: None,
                reason: Some(
                    "Too long with no output (exceeded 200ms): context deadline exceeded".into()
                )
            }
        )]
    );
    assert!(
        backend
            .state()
            .execs
            .iter()
            .any(|c| c.helper() == Some("localci-kill"))
    );
}

#[tokio::test]
async fn reruns_until_an_attempt_passes() {
    let attempts = Arc::new(AtomicU32::new(0));
    let seen = attempts.clone();
    let backend = Arc::new(FakeBackend::with_handler(&["img"], move |call, _| {
        (call.step_script()? == "flaky").then(|| {
            let n = seen.fetch_add(1, Ordering::SeqCst) + 1;
            Reply {
                output: vec![(Stream::Stdout, format!("attempt {n}\n"))],
                exit_code: if n < 3 { 1 } else { 0 },
                ..Reply::default()
            }
        })
    }));
    let steps = "      - run: {command: flaky, max_auto_reruns: 3, auto_rerun_delay: 10ms}\n";
    let ran = run(&backend, plan_for(&job(steps), "build")).await;
    assert_eq!(*ran.status.as_ref().unwrap(), NodeOutcome::Passed);
    assert_eq!(ran.output(), vec!["attempt 1", "attempt 2", "attempt 3"]);
    assert!(
        ran.infos()
            .contains("Rerunning the step (attempt 3 of 4) after 10ms")
    );
}

#[tokio::test]
async fn reruns_that_all_fail_fail_the_step() {
    let backend = Arc::new(FakeBackend::new(&["img"]));
    let ran = run(
        &backend,
        plan_for(
            &job("      - run: {command: exit 2, max_auto_reruns: 1}\n"),
            "build",
        ),
    )
    .await;
    assert_eq!(*ran.status.as_ref().unwrap(), NodeOutcome::Failed);
    assert_eq!(
        backend
            .state()
            .execs
            .iter()
            .filter(|c| c.step_script().is_some())
            .count(),
        2
    );
}

#[tokio::test]
async fn cancelling_during_a_step_removes_everything() {
    let backend = Arc::new(FakeBackend::new(&["img", "svc"]));
    let yaml = "version: 2\njobs:\n  build:\n    docker: [{image: img}, {image: svc}]\n    steps:\n      - run: hang\n      - run: {command: echo never, when: always}\n";
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        trigger.cancel();
    });
    let options = EngineOptions {
        keep: true,
        ..EngineOptions::default()
    };
    let ran = run_with(&backend, plan_for(yaml, "build"), options, cancel).await;
    assert_eq!(*ran.status.as_ref().unwrap(), NodeOutcome::Interrupted);
    assert!(
        ran.output().is_empty(),
        "always steps do not run after a cancel"
    );
    assert!(
        backend.state().containers.is_empty(),
        "Ctrl-C removes even with --keep"
    );
    assert!(
        !ran.events
            .iter()
            .any(|e| matches!(e, Event::JobFinished { .. }))
    );
}

#[tokio::test]
async fn services_share_the_primary_network_and_names_are_hosts() {
    let backend = Arc::new(FakeBackend::new(&["img", "db"]));
    let yaml = "version: 2\njobs:\n  build:\n    docker:\n      - image: img\n      - image: db\n        name: database\n        command: [serve, --port, '5']\n        environment: {PASSWORD: pw}\n    steps: [{run: echo hi}]\n";
    let options = EngineOptions {
        keep: true,
        ..EngineOptions::default()
    };
    run_with(
        &backend,
        plan_for(yaml, "build"),
        options,
        CancellationToken::new(),
    )
    .await;
    let state = backend.state();
    let (primary_id, primary) = state
        .containers
        .iter()
        .find(|(_, c)| c.spec.image == "img")
        .unwrap();
    let service = state
        .containers
        .values()
        .find(|c| c.spec.image == "db")
        .unwrap();
    assert_eq!(primary.spec.extra_hosts, vec!["database:127.0.0.1"]);
    assert!(
        service.spec.extra_hosts.is_empty(),
        "Docker refuses extra hosts with a shared network"
    );
    assert_eq!(
        service.spec.network_mode.as_deref(),
        Some(format!("container:{primary_id}").as_str())
    );
    assert_eq!(
        service.spec.cmd.as_deref(),
        Some(&["serve".to_string(), "--port".into(), "5".into()][..])
    );
    assert_eq!(
        service.spec.entrypoint, None,
        "services keep their image's entrypoint"
    );
    assert_eq!(service.spec.env, vec!["PASSWORD=pw"]);
    assert!(service.spec.name.as_deref().unwrap().ends_with("-database"));
}

#[tokio::test]
async fn preserve_entrypoint_label_keeps_the_image_entrypoint() {
    let backend = Arc::new(FakeBackend::new(&["img"]));
    backend
        .state()
        .images
        .get_mut("img")
        .unwrap()
        .labels
        .insert(containers::PRESERVE_ENTRYPOINT.into(), "true".into());
    let options = EngineOptions {
        keep: true,
        ..EngineOptions::default()
    };
    run_with(
        &backend,
        plan_for(&job("      - run: echo hi\n"), "build"),
        options,
        CancellationToken::new(),
    )
    .await;
    let state = backend.state();
    let primary = state.containers.values().next().unwrap();
    assert_eq!(
        (primary.spec.entrypoint.clone(), primary.spec.cmd.clone()),
        (None, None)
    );
}

#[tokio::test]
async fn environment_follows_circlecis_precedence() {
    let backend = Arc::new(FakeBackend::new(&["img"]));
    let steps = "      - run: {command: printenv FROM_JOB, environment: {FROM_JOB: step}}\n      - run: printenv FROM_JOB\n      - run: printenv FROM_E\n      - run: printenv CIRCLE_WORKING_DIRECTORY\n      - run: printenv BASH_ENV\n";
    let ran = run(&backend, plan_for(&job(steps), "build")).await;
    assert_eq!(
        ran.output(),
        vec!["step", "j", "e", "~/project", "/tmp/.bash_env-localci-1"]
    );
}

#[tokio::test]
async fn a_missing_image_that_cannot_be_pulled_is_an_environment_error() {
    let backend = Arc::new(FakeBackend::new(&[]));
    let ran = run(&backend, plan_for(&job("      - run: echo hi\n"), "build")).await;
    match ran.status {
        Err(EngineError::Images(e)) => {
            assert_eq!(e.problems.len(), 1);
            assert_eq!(e.problems[0].image, "img");
            assert!(e.to_string().contains("pull access denied"), "{e}");
        }
        other => panic!("expected an image error, got {other:?}"),
    }
}

#[tokio::test]
async fn a_missing_image_is_pulled() {
    let backend = Arc::new(FakeBackend::new(&[]));
    backend.state().pullable.insert("img".into());
    let ran = run(&backend, plan_for(&job("      - run: echo hi\n"), "build")).await;
    assert_eq!(*ran.status.as_ref().unwrap(), NodeOutcome::Passed);
    assert_eq!(backend.state().pulled, vec!["img"]);
    assert!(ran.infos().contains("Pulled img"));
}

// See: review finding 2 (a live run's containers were removed as another run's leftovers).
#[cfg(target_os = "linux")]
#[tokio::test]
async fn only_leftovers_of_runs_that_certainly_ended_are_removed() {
    let backend = Arc::new(FakeBackend::new(&["img"]));
    let me = Owner::me();
    let leftover = |id: &str, owner: &Owner, keep: bool| {
        let mut labels = owner.labels();
        labels.insert(LABEL.to_string(), "1".to_string());
        if keep {
            labels.insert(LABEL_KEEP.to_string(), "1".to_string());
        }
        Labelled {
            kind: ResourceKind::Container,
            id: id.to_string(),
            labels,
        }
    };
    // A pid that is certainly gone: a child that has exited and been reaped.
    let mut dead = std::process::Command::new("true").spawn().unwrap();
    dead.wait().unwrap();
    let dead = Owner {
        pid: dead.id(),
        ..me.clone()
    };
    let mut sleeper = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .unwrap();
    let super::owner::Probe::Exists(stat) = super::owner::probe(sleeper.id()) else {
        panic!("the child runs")
    };
    let live = Owner {
        pid: sleeper.id(),
        started: Some(stat.started),
        ..me.clone()
    };
    let mut old_labels = dead.labels();
    old_labels.retain(|k, _| k == LABEL_PID || k == LABEL_HOST);
    backend.state().others = vec![
        leftover("dead", &dead, false),
        leftover("kept", &dead, true),
        leftover(
            "elsewhere",
            &Owner {
                host: "another-host".into(),
                ..dead.clone()
            },
            false,
        ),
        leftover(
            "other-pid-namespace",
            &Owner {
                pidns: Some("1".into()),
                ..dead.clone()
            },
            false,
        ),
        Labelled {
            labels: old_labels,
            ..leftover("unplaced", &dead, false)
        },
        leftover("alive", &live, false),
        leftover(
            "pid-reused",
            &Owner {
                started: Some(stat.started + 1),
                ..live.clone()
            },
            false,
        ),
        leftover("this-process", &me, false),
    ];
    let ran = run(&backend, plan_for(&job("      - run: echo hi\n"), "build")).await;
    sleeper.kill().unwrap();
    sleeper.wait().unwrap();
    assert_eq!(*ran.status.as_ref().unwrap(), NodeOutcome::Passed);
    let left: Vec<String> = backend
        .state()
        .others
        .iter()
        .map(|o| o.id.clone())
        .collect();
    assert_eq!(
        left,
        vec![
            "kept",
            "elsewhere",
            "other-pid-namespace",
            "unplaced",
            "alive",
            "this-process"
        ]
    );
    assert!(ran.infos().contains("Removed 2 leftover"));
}

#[tokio::test]
async fn setup_failure_is_an_environment_error_and_cleans_up() {
    let backend = Arc::new(FakeBackend::with_handler(&["img"], |call, _| {
        (call.helper() == Some("localci-setup")).then(|| Reply {
            output: vec![(
                Stream::Stdout,
                "OCI runtime exec failed: no such file or directory\n".into(),
            )],
            exit_code: 126,
            ..Reply::default()
        })
    }));
    let ran = run(&backend, plan_for(&job("      - run: echo hi\n"), "build")).await;
    match ran.status {
        Err(EngineError::Setup(why)) => assert!(why.contains("no /bin/sh"), "{why}"),
        other => panic!("expected a setup error, got {other:?}"),
    }
    assert!(backend.state().containers.is_empty());
}

#[tokio::test]
async fn a_primary_container_that_stops_fails_the_job() {
    for helper in ["localci-setup", "localci-step"] {
        let backend = Arc::new(FakeBackend::new(&["img"]));
        backend.state().stop_on = Some(helper.to_string());
        let ran = run(&backend, plan_for(&job("      - run: echo hi\n"), "build")).await;
        assert_eq!(
            *ran.status.as_ref().unwrap(),
            NodeOutcome::Failed,
            "stopped at {helper}"
        );
        let Some(Event::JobFinished { failure, .. }) = ran.events.last() else {
            panic!("the job should finish")
        };
        assert_eq!(
            failure.as_deref(),
            Some("the primary container stopped (did its entrypoint exit?)")
        );
        assert!(backend.state().containers.is_empty());
    }
}

// See: review finding 1 (an early Ctrl-C dropped a create request that the daemon fulfilled
// anyway, leaving a `Created` container that cleanup had not seen).
#[tokio::test]
async fn ctrl_c_while_containers_are_created_leaves_none_behind() {
    let yaml = "version: 2\njobs:\n  build:\n    docker: [{image: img}, {image: svc}]\n    steps:\n      - run: echo never\n";
    // Each create takes 150 ms: Ctrl-C during the primary's, around its start, during the
    // service's.
    for cancel_after in [20, 100, 160, 250] {
        let backend = Arc::new(FakeBackend::new(&["img", "svc"]));
        backend.state().create_delay = Duration::from_millis(150);
        let cancel = CancellationToken::new();
        let trigger = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(cancel_after)).await;
            trigger.cancel();
        });
        let ran = run_with(
            &backend,
            plan_for(yaml, "build"),
            EngineOptions::default(),
            cancel,
        )
        .await;
        assert_eq!(
            *ran.status.as_ref().unwrap(),
            NodeOutcome::Interrupted,
            "Ctrl-C at {cancel_after} ms"
        );
        assert!(ran.output().is_empty(), "Ctrl-C at {cancel_after} ms");
        // Anything the "daemon" was still making has landed by now.
        tokio::time::sleep(Duration::from_millis(400)).await;
        let left: Vec<_> = backend.state().containers.keys().cloned().collect();
        assert!(left.is_empty(), "Ctrl-C at {cancel_after} ms left {left:?}");
    }
}

#[tokio::test]
async fn a_container_made_despite_a_failed_create_request_is_removed() {
    let backend = Arc::new(FakeBackend::new(&["img"]));
    backend.state().create_delay = Duration::from_millis(100);
    backend.state().create_error = Some("connection reset by peer".into());
    let ran = run(&backend, plan_for(&job("      - run: echo hi\n"), "build")).await;
    match ran.status {
        Err(EngineError::Backend(e)) => assert!(e.to_string().contains("connection reset")),
        other => panic!("expected a backend error, got {other:?}"),
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(backend.state().containers.is_empty());
    assert_eq!(backend.state().removed.len(), 1);
}

// Issue 10 (speed): at the end of a finished job localci closes the primary's stdin, which
// ends its keep-alive loop, and the engine removes it (auto-remove) without localci waiting
// for either; after Ctrl-C every container is removed outright.
#[tokio::test]
async fn a_finished_job_closes_its_primarys_stdin_and_the_engine_removes_it() {
    for (steps, outcome) in [
        ("      - run: echo hi\n", NodeOutcome::Passed),
        ("      - run: exit 2\n", NodeOutcome::Failed),
    ] {
        let backend = Arc::new(FakeBackend::new(&["img"]));
        let ran = run(&backend, plan_for(&job(steps), "build")).await;
        assert_eq!(*ran.status.as_ref().unwrap(), outcome);
        // The fake "engine" sees the stdin close a moment later.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let state = backend.state();
        assert!(
            state.killed.is_empty(),
            "no kill request: {:?}",
            state.killed
        );
        assert_eq!(
            state.stdin_closed.len(),
            1,
            "the primary's stdin is closed once"
        );
        assert_eq!(
            state.removed, state.stdin_closed,
            "and the engine removed it"
        );
        assert!(state.containers.is_empty());
        // The setup ran as the primary's command, not as an exec.
        assert!(
            state
                .execs
                .iter()
                .all(|e| e.helper() != Some("localci-setup"))
        );
    }
}

// A `command` of the config's keeps the primary's own command, however many words it has:
// the setup is then an exec, and nothing waits for a setup report in the primary's output.
#[tokio::test]
async fn a_configured_command_of_several_words_gets_the_setup_as_an_exec() {
    // Also when the engine sees the host's files (the program is mounted, the command kept).
    for shares_files in [false, true] {
        configured_command_is_kept(shares_files).await;
    }
}

async fn configured_command_is_kept(shares_files: bool) {
    let backend = Arc::new(FakeBackend::new(&["img"]));
    backend.state().shares_files = shares_files;
    let yaml = "version: 2\njobs:\n  build:\n    docker: [{image: img, command: [sh, -c, serve]}]\n    steps:\n      - run: echo hi\n";
    let ran = tokio::time::timeout(
        Duration::from_secs(10),
        run(&backend, plan_for(yaml, "build")),
    )
    .await
    .expect("the job does not wait for a setup report that never comes");
    assert_eq!(*ran.status.as_ref().unwrap(), NodeOutcome::Passed);
    let state = backend.state();
    assert!(
        state
            .execs
            .iter()
            .any(|e| e.helper() == Some("localci-setup")),
        "the setup ran as an exec"
    );
    let primary = &state.created_specs[0];
    let command: Vec<&str> = primary.cmd.iter().flatten().map(String::as_str).collect();
    assert_eq!(command, ["sh", "-c", "serve"], "mounts: {shares_files}");
    assert_eq!(primary.file_mounts.is_empty(), !shares_files);
}

#[tokio::test]
async fn only_a_keep_alive_primary_without_keep_is_removed_by_the_engine() {
    let backend = Arc::new(FakeBackend::new(&["img", "svc"]));
    let yaml = "version: 2\njobs:\n  build:\n    docker: [{image: img}, {image: svc}]\n    steps:\n      - run: echo hi\n";
    let kept = EngineOptions {
        keep: true,
        ..EngineOptions::default()
    };
    run_with(
        &backend,
        plan_for(yaml, "build"),
        kept,
        CancellationToken::new(),
    )
    .await;
    {
        let state = backend.state();
        assert!(state.containers.values().all(|c| !c.spec.auto_remove));
        assert!(state.killed.is_empty(), "kept containers are not killed");
    }
    // A service keeps its state after it stops (its logs are shown), and so does a primary
    // running the config's own command: neither is removed by the engine.
    let watch = Arc::new(FakeBackend::new(&["img", "svc"]));
    let handler_state = watch.clone();
    let yaml = "version: 2\njobs:\n  build:\n    docker: [{image: img, command: [serve]}, {image: svc}]\n    steps:\n      - run: hang\n";
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    tokio::spawn(async move {
        // Look at the specs while the step runs, then stop the job.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let state = handler_state.state();
        assert_eq!(state.containers.len(), 2);
        assert!(state.containers.values().all(|c| !c.spec.auto_remove));
        drop(state);
        trigger.cancel();
    });
    let ran = run_with(
        &watch,
        plan_for(yaml, "build"),
        EngineOptions::default(),
        cancel,
    )
    .await;
    assert_eq!(*ran.status.as_ref().unwrap(), NodeOutcome::Interrupted);
    let state = watch.state();
    assert!(
        state.killed.is_empty(),
        "after Ctrl-C containers are removed, not killed"
    );
    assert!(state.containers.is_empty());
}

#[tokio::test]
async fn ctrl_c_removes_an_auto_removed_primary_outright() {
    let backend = Arc::new(FakeBackend::new(&["img"]));
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        trigger.cancel();
    });
    let plan = plan_for(&job("      - run: hang\n"), "build");
    let ran = run_with(&backend, plan, EngineOptions::default(), cancel).await;
    assert_eq!(*ran.status.as_ref().unwrap(), NodeOutcome::Interrupted);
    let state = backend.state();
    assert!(state.killed.is_empty());
    assert_eq!(state.removed.len(), 1);
    assert!(state.containers.is_empty());
}

// `circleci-agent step halt` is learnt from the step's own exec (its wrapper's token on
// stderr), not from a request after every step; the token is not shown.
#[tokio::test]
async fn a_halt_is_learnt_in_band_and_ends_the_job_after_its_step() {
    let backend = Arc::new(FakeBackend::new(&["img"]));
    let steps = "      - run: echo one\n      - run: |\n          echo two >&2\n          circleci-agent step halt\n          echo still-this-step\n      - run: echo never\n      - run: {command: echo never-either, when: always}\n";
    let ran = run(&backend, plan_for(&job(steps), "build")).await;
    assert_eq!(*ran.status.as_ref().unwrap(), NodeOutcome::Passed);
    assert_eq!(ran.output(), vec!["one", "two", "still-this-step"]);
    assert_eq!(ran.skipped(), vec![2, 3]);
    assert!(ran.infos().contains("circleci-agent step halt"));
    // A halt in a failing step keeps the job failed.
    let backend = Arc::new(FakeBackend::new(&["img"]));
    let steps = "      - run: |\n          circleci-agent step halt\n          exit 3\n      - run: echo never\n";
    let ran = run(&backend, plan_for(&job(steps), "build")).await;
    assert_eq!(*ran.status.as_ref().unwrap(), NodeOutcome::Failed);
    assert_eq!(ran.skipped(), vec![1]);
    // Without a halt, the token is never written: every step runs.
    let backend = Arc::new(FakeBackend::new(&["img"]));
    let ran = run(
        &backend,
        plan_for(&job("      - run: echo a\n      - run: echo b\n"), "build"),
    )
    .await;
    assert_eq!(ran.output(), vec!["a", "b"]);
    assert!(ran.skipped().is_empty());
}
