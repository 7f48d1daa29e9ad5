//! Step tests on the in-memory backend: what checkout sends, what the cache steps store and
//! restore, what the artifact steps copy out.

use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::backend::Backend;
use crate::backend::fake::{FakeBackend, State};
use crate::engine::{EngineOptions, NodeOutcome, bash_env_path, run_job};
use crate::git::RepoInfo;
use crate::plan::{JobPlan, Plan, PlanOptions};
use crate::report::Event;
use crate::source::{Source, Sources};
use crate::store::CacheStore;

fn plan(steps: &str, repo: RepoInfo) -> JobPlan {
    let yaml =
        format!("version: 2\njobs:\n  build:\n    docker: [{{image: img}}]\n    steps:\n{steps}");
    let mut sources = Sources::new();
    let id = sources.add(Source::new("t.yml", yaml));
    let node = crate::yaml::parse(sources.get(id), id).unwrap();
    let config = crate::config::parse(&node).unwrap();
    let options = PlanOptions {
        repo,
        node_total: 1,
        bash_env: bash_env_path(1),
        ..PlanOptions::default()
    };
    match crate::plan::plan(&config, "build", &options).unwrap() {
        Plan::Run(p) => *p,
        Plan::Nothing(_) => unreachable!("a build job"),
    }
}

async fn run(backend: &Arc<FakeBackend>, plan: JobPlan, dirs: &Path) -> (NodeOutcome, String) {
    let (tx, mut rx) = crate::report::channel();
    let options = EngineOptions {
        artifacts_dir: dirs.join("artifacts"),
        cache_dir: dirs.join("cache"),
        ..EngineOptions::default()
    };
    let dyn_backend: Arc<dyn Backend> = backend.clone();
    let status = run_job(dyn_backend, plan, options, tx, CancellationToken::new())
        .await
        .unwrap();
    let mut text = String::new();
    while let Some(e) = rx.try_recv() {
        match e {
            Event::Info { text: t, .. } | Event::Warning { text: t, .. } => {
                text.push_str(&format!("{t}\n"))
            }
            Event::StepFinished { status, .. } => text.push_str(&format!("{status:?}\n")),
            _ => {}
        }
    }
    (status, text)
}

use crate::test_support::git;

#[tokio::test]
async fn checkout_sends_what_git_would_with_the_container_users_ownership() {
    let repo = small_repo();
    let root = repo.path();
    std::fs::create_dir_all(root.join(".localci/artifacts")).unwrap();
    std::fs::write(root.join(".localci/artifacts/a"), "own output").unwrap();
    let backend = Arc::new(FakeBackend::new(&["img"]));
    backend.state().uid = 3434;
    let dirs = tempfile::tempdir().unwrap();
    let (status, _) = run(
        &backend,
        plan("      - checkout\n", RepoInfo::discover(root)),
        dirs.path(),
    )
    .await;
    assert_eq!(status, NodeOutcome::Passed);
    let state = backend.state();
    // One upload: a job that begins with `checkout` gets the `circleci` program in it.
    assert_eq!(state.uploads.len(), 1, "the agent goes with the checkout");
    let (_, dir, data) = state.uploads.last().expect("checkout uploads");
    // Sent to `/` with the target in each name (Docker refuses links that climb out of the
    // folder it extracts into).
    assert_eq!(dir, "/");
    let mut archive = tar::Archive::new(&data[..]);
    let mut names = Vec::new();
    let mut agent = Vec::new();
    for entry in archive.entries().unwrap() {
        let entry = entry.unwrap();
        let name = entry.path().unwrap().to_string_lossy().into_owned();
        if name.starts_with("usr/local/bin/") {
            assert_eq!(
                entry.header().uid().unwrap(),
                0,
                "the agent belongs to root"
            );
            agent.push(name);
            continue;
        }
        assert_eq!(
            (entry.header().uid().unwrap(), entry.header().gid().unwrap()),
            (3434, 3434)
        );
        let name = entry.path().unwrap().to_string_lossy().into_owned();
        let rel = name.strip_prefix("root/project/").map(str::to_string);
        names.push(rel.unwrap_or_else(|| panic!("{name} is outside the target")));
    }
    for expected in [
        ".gitignore",
        "src",
        "src/tracked.txt",
        "untracked.txt",
        ".git",
        ".git/HEAD",
    ] {
        assert!(
            names.iter().any(|n| n.trim_end_matches('/') == expected),
            "{expected} missing from {names:?}"
        );
    }
    assert_eq!(
        agent,
        ["usr/local/bin/circleci", "usr/local/bin/circleci-agent"]
    );
    assert!(
        !names.iter().any(|n| n.ends_with(".log")),
        "ignored files are not sent"
    );
    assert!(
        !names.iter().any(|n| n.starts_with(".localci")),
        "localci's own output is not sent"
    );
}

/// A repository with a tracked file, an untracked one and an ignored one.
fn small_repo() -> tempfile::TempDir {
    let repo = tempfile::tempdir().unwrap();
    let root = repo.path();
    git(root, &["init", "-q", "-b", "main"]);
    std::fs::write(root.join(".gitignore"), "*.log\n").unwrap();
    std::fs::create_dir_all(root.join("src")).unwrap();
    std::fs::write(root.join("src/tracked.txt"), "t").unwrap();
    git(root, &["add", "-A"]);
    git(root, &["commit", "-q", "-m", "x"]);
    std::fs::write(root.join("untracked.txt"), "u").unwrap();
    std::fs::write(root.join("debug.log"), "ignored").unwrap();
    repo
}

/// Runs `checkout` then a `run` step of the repository at `root` on a fake engine that sees
/// the host's files, set up by `setup`; the backend and what was printed. The job passes.
async fn staged_job(root: &Path, setup: impl FnOnce(&mut State)) -> (Arc<FakeBackend>, String) {
    let backend = Arc::new(FakeBackend::new(&["img"]));
    {
        let mut state = backend.state();
        state.shares_files = true;
        setup(&mut state);
    }
    let dirs = tempfile::tempdir().unwrap();
    let steps = "      - checkout\n      - run: echo built\n";
    let (status, events) = run(&backend, plan(steps, RepoInfo::discover(root)), dirs.path()).await;
    assert_eq!(status, NodeOutcome::Passed, "{events}");
    (backend, events)
}

// Issue 10 (speed): an engine that sees the host's files gets the `circleci` program and the
// first checkout's repository as mounted files, which the checkout unpacks: no upload at all.
#[tokio::test]
async fn a_local_engine_gets_the_first_checkout_staged_and_nothing_uploaded() {
    let repo = small_repo();
    let (backend, events) = staged_job(repo.path(), |_| {}).await;
    let expected = uploaded_copied_line(repo.path()).await;
    let state = backend.state();
    assert!(state.uploads.is_empty(), "uploads: {}", state.uploads.len());
    assert_eq!(
        state
            .files
            .get("/root/project/src/tracked.txt")
            .map(Vec::as_slice),
        Some(&b"t"[..])
    );
    assert!(state.files.contains_key("/root/project/untracked.txt"));
    assert!(state.files.contains_key("/root/project/.git/HEAD"));
    assert!(!state.files.contains_key("/root/project/debug.log"));
    assert_eq!(copied_line(&events), expected);
    assert!(
        !state
            .execs
            .iter()
            .any(|e| e.helper() == Some("localci-checkout"))
    );
    // The program is mounted beside the agent folder (the root setup copied it into
    // place), and the staged files are gone.
    let created = state.created_specs.first().expect("a primary was created");
    let targets: Vec<&str> = created
        .file_mounts
        .iter()
        .map(|m| m.target.as_str())
        .collect();
    assert_eq!(targets.len(), 2, "{targets:?}");
    assert!(targets[0].starts_with("/tmp/.localci-") && targets[0].ends_with(".agent"));
    assert!(targets[1].ends_with(".checkout.tar"), "{targets:?}");
    assert!(
        created.file_mounts.iter().all(|m| !m.source.exists()),
        "the staged files outlived the job"
    );
    // In a folder only localci's user can enter: the repository's files are in it.
    assert_eq!(state.mount_folder_modes, [0o700, 0o700]);
}

// A user other than root cannot copy the mounted program to /usr/local/bin: it is uploaded
// there while the first steps run, in place before the first `run` step, as a plain file a
// job may replace (CircleCI's own CLI).
#[tokio::test]
async fn a_non_root_job_gets_the_program_uploaded_before_its_first_run_step() {
    let repo = small_repo();
    let (backend, _) = staged_job(repo.path(), |state| state.uid = 3434).await;
    let state = backend.state();
    assert_eq!(state.uploads.len(), 1, "only the program is uploaded");
    assert!(state.files.contains_key("/usr/local/bin/circleci"));
    assert!(state.files.contains_key("/root/project/src/tracked.txt"));
}

// Without `tar` in the image, or with an engine that refuses the mounts, the checkout is
// uploaded as before, with the same files.
#[tokio::test]
async fn a_staged_checkout_falls_back_to_an_upload() {
    let repo = small_repo();
    for refuses in [false, true] {
        let (backend, events) = staged_job(repo.path(), |state| {
            state.no_tar = !refuses;
            state.refuses_mounts = refuses;
        })
        .await;
        let expected = uploaded_copied_line(repo.path()).await;
        let state = backend.state();
        assert!(
            state.files.contains_key("/root/project/src/tracked.txt"),
            "refuses mounts: {refuses}"
        );
        // No tar: the program is mounted and only the repository goes up. Mounts refused:
        // the program goes with the repository.
        assert_eq!(state.uploads.len(), 1, "refuses mounts: {refuses}");
        let agent_uploaded = state.files.contains_key("/usr/local/bin/circleci");
        assert_eq!(agent_uploaded, refuses);
        assert_eq!(copied_line(&events), expected);
    }
}

fn copied_line(events: &str) -> String {
    let line = events.lines().find(|l| l.starts_with("Copied "));
    line.unwrap_or_else(|| panic!("no Copied line in {events}"))
        .to_string()
}

/// The checkout's `Copied ...` line when the repository is uploaded.
async fn uploaded_copied_line(root: &Path) -> String {
    let backend = Arc::new(FakeBackend::new(&["img"]));
    let dirs = tempfile::tempdir().unwrap();
    let (_, events) = run(
        &backend,
        plan("      - checkout\n", RepoInfo::discover(root)),
        dirs.path(),
    )
    .await;
    copied_line(&events)
}

// Issue 10 (speed): the target of a first checkout is checked by the setup, so that step
// needs no exec of its own; a later checkout (the folder may have changed) checks again, and
// a refusal reported by the setup fails the step with the setup's words.
#[tokio::test]
async fn only_a_later_checkout_checks_its_target_with_an_exec() {
    let repo = tempfile::tempdir().unwrap();
    let root = repo.path();
    git(root, &["init", "-q", "-b", "main"]);
    std::fs::write(root.join("a.txt"), "a").unwrap();
    git(root, &["add", "-A"]);
    git(root, &["commit", "-q", "-m", "x"]);
    let backend = Arc::new(FakeBackend::new(&["img"]));
    let dirs = tempfile::tempdir().unwrap();
    let steps = "      - checkout\n      - checkout: {path: sub}\n";
    let (status, _) = run(&backend, plan(steps, RepoInfo::discover(root)), dirs.path()).await;
    assert_eq!(status, NodeOutcome::Passed);
    let checks: Vec<_> = backend
        .state()
        .execs
        .iter()
        .filter(|e| e.helper() == Some("localci-checkout"))
        .map(|e| e.spec.cmd[4].clone())
        .collect();
    assert_eq!(
        checks,
        ["/root/project/sub"],
        "only the second checkout execs"
    );

    let refusing = Arc::new(FakeBackend::with_handler(&["img"], |call, _| {
        (call.helper() == Some("localci-setup")).then(|| crate::backend::fake::Reply {
            output: vec![(
                crate::backend::Stream::Stdout,
                "uid=0\ngid=0\nhome=/root\nwd=/root/project\nshell=/bin/sh\ncheckout_exit=1\n\
                 checkout_dir=/root/project\ncheckout_out=Directory (/root/project) you are \
                 trying to checkout to is not empty and not a git repository\n"
                    .into(),
            )],
            ..Default::default()
        })
    }));
    let (status, events) = run(
        &refusing,
        plan("      - checkout\n", RepoInfo::discover(root)),
        dirs.path(),
    )
    .await;
    assert_eq!(status, NodeOutcome::Failed);
    assert!(
        events.contains("is not empty and not a git repository"),
        "{events}"
    );
    assert!(refusing.state().uploads.is_empty(), "nothing is sent");
}

#[tokio::test]
async fn checkout_outside_a_repository_fails_the_step() {
    let backend = Arc::new(FakeBackend::new(&["img"]));
    let dirs = tempfile::tempdir().unwrap();
    let (status, text) = run(
        &backend,
        plan(
            "      - checkout\n      - run: {command: echo hi, when: always}\n",
            RepoInfo::default(),
        ),
        dirs.path(),
    )
    .await;
    assert_eq!(status, NodeOutcome::Failed);
    assert!(text.contains("checkout needs a git repository"), "{text}");
    // The checkout did not send the `circleci` program: it is installed before the next
    // `run` step.
    let state = backend.state();
    assert_eq!(state.uploads.len(), 1);
    let (_, dir, data) = &state.uploads[0];
    assert_eq!(dir, "/");
    assert_eq!(&data[..], &crate::agent::agent_archive()[..]);
}

#[tokio::test]
async fn save_then_restore_puts_files_back_at_their_absolute_paths() {
    let backend = Arc::new(FakeBackend::new(&["img"]));
    {
        let mut state = backend.state();
        state
            .files
            .insert("/root/project/lock".into(), b"v1".to_vec());
        state
            .files
            .insert("/root/.cache/demo/a.txt".into(), b"cached".to_vec());
    }
    let dirs = tempfile::tempdir().unwrap();
    let save = "      - save_cache: {key: 'deps-{{ checksum \"lock\" }}', paths: [~/.cache/demo, missing]}\n";
    let (status, text) = run(&backend, plan(save, RepoInfo::default()), dirs.path()).await;
    assert_eq!(status, NodeOutcome::Passed, "{text}");
    let key = format!("deps-{}", crate::template::checksum(b"v1"));
    assert!(text.contains(&format!("Stored cache {key}")), "{text}");
    assert!(
        text.contains("/root/project/missing does not exist"),
        "{text}"
    );
    let store = CacheStore::open(&dirs.path().join("cache")).unwrap();
    let entry = store.get(&key).unwrap().expect("saved");
    let mut tar = Vec::new();
    store.reader(&entry).unwrap().read_to_end(&mut tar).unwrap();
    let names: Vec<String> = tar::Archive::new(&tar[..])
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, vec!["pax_global_header", "root/.cache/demo/a.txt"]);

    // A second save of the same key is skipped; a restore by prefix brings the file back.
    let (_, text) = run(&backend, plan(save, RepoInfo::default()), dirs.path()).await;
    assert!(
        text.contains("Skipping cache generation, cache already exists"),
        "{text}"
    );
    backend.state().files.remove("/root/.cache/demo/a.txt");
    let restore = "      - restore_cache: {keys: [nope-, deps-]}\n";
    let (status, text) = run(&backend, plan(restore, RepoInfo::default()), dirs.path()).await;
    assert_eq!(status, NodeOutcome::Passed);
    assert!(text.contains("No cache is found for key: nope-"), "{text}");
    assert_eq!(
        backend
            .state()
            .files
            .get("/root/.cache/demo/a.txt")
            .map(Vec::as_slice),
        Some(&b"cached"[..])
    );
}

#[tokio::test]
async fn a_missing_checksum_file_fails_save_and_is_a_miss_for_restore() {
    let backend = Arc::new(FakeBackend::new(&["img"]));
    let dirs = tempfile::tempdir().unwrap();
    let save = "      - save_cache: {key: 'k-{{ checksum \"nope.lock\" }}', paths: [x]}\n";
    let (status, text) = run(&backend, plan(save, RepoInfo::default()), dirs.path()).await;
    assert_eq!(status, NodeOutcome::Failed);
    assert!(
        text.contains("error computing cache key: template: cacheKey:1:5: executing")
            && text.contains(
                "error calling checksum: open /root/project/nope.lock: no such file or directory"
            ),
        "{text}"
    );
    let restore = "      - restore_cache: {key: 'k-{{ checksum \"nope.lock\" }}'}\n";
    let (status, text) = run(&backend, plan(restore, RepoInfo::default()), dirs.path()).await;
    assert_eq!(status, NodeOutcome::Passed);
    assert!(text.contains("No cache was restored"), "{text}");
}

#[tokio::test]
async fn artifacts_are_copied_to_the_host_and_never_fail_the_job() {
    let backend = Arc::new(FakeBackend::new(&["img"]));
    backend
        .state()
        .files
        .insert("/root/project/out/a/b.txt".into(), b"art".to_vec());
    let dirs = tempfile::tempdir().unwrap();
    let steps = "      - store_artifacts: {path: out}\n      - store_artifacts: {path: out, destination: renamed}\n      - store_test_results: {path: nothing-here}\n";
    let (status, text) = run(&backend, plan(steps, RepoInfo::default()), dirs.path()).await;
    assert_eq!(status, NodeOutcome::Passed, "{text}");
    let artifacts = dirs.path().join("artifacts");
    assert_eq!(
        std::fs::read_to_string(artifacts.join("out/a/b.txt")).unwrap(),
        "art"
    );
    assert_eq!(
        std::fs::read_to_string(artifacts.join("renamed/a/b.txt")).unwrap(),
        "art"
    );
    assert!(
        text.contains("/root/project/nothing-here does not exist"),
        "{text}"
    );
}
