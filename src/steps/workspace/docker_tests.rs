//! Persist then attach through the real Docker daemon, with the local busybox test image
//! (`bash tests/images/build.sh`): Docker's own tar format (pax headers, folder entries, long
//! names) on the way out, and its extraction (owners, modes, links) on the way in. Skipped
//! without Docker, except in CI (`CI=true`), where that is a failure.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

use super::tests::job_plan;
use super::*;
use crate::backend::docker::DockerBackend;
use crate::backend::{ContainerSpec, LABEL};
use crate::report::{Events, JobRef};
use crate::steps::{Facts, Settings, UpstreamLayers};

const BUSYBOX: &str = "localci-test/busybox:latest";

async fn docker() -> Option<Arc<DockerBackend>> {
    let env: BTreeMap<String, String> = std::env::vars().collect();
    let why = match DockerBackend::connect(env).await {
        Ok(backend) => match backend.inspect_image(BUSYBOX).await {
            Ok(Some(_)) => return Some(Arc::new(backend)),
            Ok(None) => format!("{BUSYBOX} is missing; run `bash tests/images/build.sh`"),
            Err(e) => e.to_string(),
        },
        Err(e) => e.to_string(),
    };
    assert!(
        std::env::var("CI").map_or(true, |v| v != "true"),
        "Docker tests must run in CI: {why}"
    );
    eprintln!("skipping a Docker test: {why}");
    None
}

/// Removes the container when dropped, even when the test fails.
struct Container(String);

impl Drop for Container {
    fn drop(&mut self) {
        let _ = std::process::Command::new("docker")
            .args(["rm", "-f", &self.0])
            .output();
    }
}

async fn start(backend: &DockerBackend, user: Option<&str>) -> Container {
    let spec = ContainerSpec {
        image: BUSYBOX.into(),
        cmd: Some(vec!["sleep".into(), "600".into()]),
        user: user.map(str::to_string),
        labels: [(LABEL.to_string(), "workspace-test".to_string())].into(),
        init: true,
        ..ContainerSpec::default()
    };
    let id = backend.create_container(spec).await.unwrap();
    let container = Container(id);
    backend.start_container(&container.0).await.unwrap();
    container
}

async fn sh(backend: &DockerBackend, container: &Container, script: &str) -> String {
    let spec = ExecSpec {
        cmd: vec!["/bin/sh".into(), "-c".into(), script.into()],
        ..ExecSpec::default()
    };
    let out = collect(backend, &container.0, spec).await.unwrap();
    assert_eq!(out.exit_code, 0, "{script}\n{}{}", out.stdout, out.stderr);
    out.stdout
}

fn context(
    backend: Arc<DockerBackend>,
    container: &Container,
    uid: u64,
    workspace: Workspace,
) -> StepContext {
    let (sink, _events) = crate::report::channel();
    StepContext {
        backend,
        plan: Arc::new(job_plan()),
        events: Events::new(sink, JobRef::new("job", None)),
        cancel: CancellationToken::new(),
        primary: container.0.clone(),
        facts: Arc::new(Facts {
            uid,
            gid: uid,
            home: "/root".into(),
            default_shell: "/bin/sh".into(),
            working_directory: "/root/project".into(),
        }),
        settings: Arc::new(Settings {
            workspace: Some(workspace),
            ..Settings::default()
        }),
        run_dir: "/tmp".into(),
        extra_env: Arc::new(Mutex::new(Vec::new())),
        halted: Arc::default(),
        agent_pending: Arc::default(),
        agent_upload: Arc::default(),
        first_checkout: Arc::default(),
        staged_checkout: Arc::default(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persist_then_attach_through_the_real_daemon() {
    let Some(backend) = docker().await else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let build_dir = tmp.path().join(".localci/runs/r1/workspace/build");
    let long = "n".repeat(120);
    let builder = start(&backend, None).await;
    sh(
        &backend,
        &builder,
        &format!(
            "set -e; cd /root; mkdir -p project/ws/dist/sub project/ws/skip; \
             echo js > project/ws/dist/a.js; echo deep > project/ws/dist/sub/b.txt; \
             echo long > project/ws/dist/sub/{long}; ln -s a.js project/ws/dist/link; \
             echo no > project/ws/skip/x; echo top > project/ws/top.txt; \
             chmod 750 project/ws/dist; chown -R 1000:1000 project/ws/dist"
        ),
    )
    .await;
    let ws = Workspace {
        layers_dir: build_dir.clone(),
        node: 0,
        upstream: Vec::new(),
        from_run: None,
    };
    let ctx = context(backend.clone(), &builder, 0, ws);
    let paths = vec!["dist".to_string(), "t?p.*".to_string()];
    let outcome = persist(&ctx, 2, "ws", &paths).await.unwrap();
    assert_eq!(outcome, StepOutcome::Passed { exit_code: None });
    // `/` as root: Docker names those entries from the top, not under a base name.
    let paths = vec!["root/project/ws/t*".to_string()];
    let outcome = persist(&ctx, 3, "/", &paths).await.unwrap();
    assert_eq!(outcome, StepOutcome::Passed { exit_code: None });

    let deployer = start(&backend, Some("1000:1000")).await;
    let ws = Workspace {
        layers_dir: tmp.path().join(".localci/runs/r1/workspace/deploy"),
        node: 0,
        upstream: vec![UpstreamLayers {
            job: "build".into(),
            dir: build_dir,
            ancestors: Default::default(),
        }],
        from_run: None,
    };
    let ctx = context(backend.clone(), &deployer, 1000, ws);
    // As on CircleCI, a folder the job's user cannot write to fails the attach.
    let outcome = attach(&ctx, "/etc/ws").await.unwrap();
    let StepOutcome::Failed {
        reason: Some(reason),
        ..
    } = outcome
    else {
        panic!("{outcome:?}");
    };
    assert!(
        reason.starts_with("cannot attach the workspace at /etc/ws: mkdir:"),
        "{reason}"
    );
    let outcome = attach(&ctx, "/etc").await.unwrap();
    assert!(
        matches!(&outcome, StepOutcome::Failed { reason: Some(r), .. }
            if r.contains("/etc: permission denied for uid 1000")),
        "{outcome:?}"
    );
    let outcome = attach(&ctx, "/tmp/attached/here").await.unwrap();
    assert_eq!(outcome, StepOutcome::Passed { exit_code: None });
    let seen = sh(
        &backend,
        &deployer,
        &format!(
            "cd /tmp/attached/here; cat dist/a.js dist/sub/b.txt dist/sub/{long} top.txt; \
             cat root/project/ws/top.txt; readlink dist/link; stat -c '%u:%g %a %n' . dist dist/a.js; \
             test -e skip && echo skip-came-along; echo more >> dist/a.js && echo writable"
        ),
    )
    .await;
    assert_eq!(
        seen,
        "js\ndeep\nlong\ntop\ntop\na.js\n1000:1000 755 .\n1000:1000 750 dist\n1000:1000 644 dist/a.js\nwritable\n"
    );
}
