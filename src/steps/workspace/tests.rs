//! The workspace steps on the in-memory backend: what persist keeps, what attach sends.

use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

use super::*;
use crate::backend::fake::FakeBackend;
use crate::engine::bash_env_path;
use crate::git::RepoInfo;
use crate::plan::{JobPlan, Plan, PlanOptions};
use crate::report::{Event, Events, JobRef, Receiver};
use crate::steps::{Facts, Settings, UpstreamLayers};
use crate::store::workspace::{LayerWriter, job_layers};

pub(super) fn job_plan() -> JobPlan {
    let yaml =
        "version: 2\njobs:\n  build:\n    docker: [{image: img}]\n    steps: [{run: 'true'}]\n";
    let mut sources = crate::source::Sources::new();
    let id = sources.add(crate::source::Source::new("t.yml", yaml.to_string()));
    let node = crate::yaml::parse(sources.get(id), id).unwrap();
    let config = crate::config::parse(&node).unwrap();
    let options = PlanOptions {
        repo: RepoInfo::default(),
        node_total: 1,
        bash_env: bash_env_path(1),
        ..PlanOptions::default()
    };
    match crate::plan::plan(&config, "build", &options).unwrap() {
        Plan::Run(p) => *p,
        Plan::Nothing(_) => unreachable!("a build job"),
    }
}

struct Harness {
    backend: Arc<FakeBackend>,
    ctx: StepContext,
    events: Receiver,
}

impl Harness {
    fn new(workspace: Option<Workspace>, uid: u64) -> Harness {
        let backend = Arc::new(FakeBackend::new(&["img"]));
        let primary = "primary".to_string();
        backend.state().containers.insert(
            primary.clone(),
            crate::backend::fake::FakeContainer {
                spec: crate::backend::ContainerSpec::default(),
                running: true,
            },
        );
        let (sink, events) = crate::report::channel();
        let dyn_backend: Arc<dyn Backend> = backend.clone();
        let ctx = StepContext {
            backend: dyn_backend,
            plan: Arc::new(job_plan()),
            events: Events::new(sink, JobRef::new("build", None)),
            cancel: CancellationToken::new(),
            primary,
            facts: Arc::new(Facts {
                uid,
                gid: uid,
                home: "/root".into(),
                default_shell: "/bin/sh".into(),
                working_directory: "/root/project".into(),
            }),
            settings: Arc::new(Settings {
                workspace,
                ..Settings::default()
            }),
            run_dir: "/tmp/.localci-test".into(),
            extra_env: Arc::new(Mutex::new(Vec::new())),
            halted: Arc::default(),
            agent_pending: Arc::default(),
            agent_upload: Arc::default(),
            first_checkout: Arc::default(),
            staged_checkout: Arc::default(),
        };
        Harness {
            backend,
            ctx,
            events,
        }
    }

    fn file(&self, path: &str, content: &str) {
        self.backend
            .state()
            .files
            .insert(path.into(), content.as_bytes().to_vec());
    }

    fn text(&mut self) -> String {
        let mut text = String::new();
        while let Some(e) = self.events.try_recv() {
            match e {
                Event::Info { text: t, .. } => text.push_str(&format!("{t}\n")),
                Event::Warning { text: t, .. } => text.push_str(&format!("Warning: {t}\n")),
                _ => {}
            }
        }
        text
    }
}

fn workspace(layers_dir: &Path, upstream: Vec<UpstreamLayers>) -> Workspace {
    Workspace {
        layers_dir: layers_dir.to_path_buf(),
        node: 0,
        upstream,
        from_run: None,
    }
}

fn upstream(job: &str, dir: &Path, ancestors: &[&str]) -> UpstreamLayers {
    UpstreamLayers {
        job: job.into(),
        dir: dir.to_path_buf(),
        ancestors: ancestors.iter().map(|s| s.to_string()).collect(),
    }
}

/// Paths, uids and contents of the entries of a tar.
fn entries(tar: &[u8]) -> Vec<(String, u64, String)> {
    tar::Archive::new(tar)
        .entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let mut content = String::new();
            e.read_to_string(&mut content).unwrap();
            let path = e.path().unwrap().to_string_lossy().into_owned();
            (path, e.header().uid().unwrap(), content)
        })
        .collect()
}

fn layer_entries(path: &Path) -> Vec<(String, u64, String)> {
    let layer = crate::store::workspace::verify("j", path).unwrap();
    let mut tar = Vec::new();
    layer.into_reader().unwrap().read_to_end(&mut tar).unwrap();
    entries(&tar)
}

fn failure(outcome: &StepOutcome) -> &str {
    match outcome {
        StepOutcome::Failed {
            reason: Some(r), ..
        } => r,
        other => panic!("expected a failure, got {other:?}"),
    }
}

#[tokio::test]
async fn persist_keeps_what_the_patterns_match_relative_to_root() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("build");
    let mut h = Harness::new(Some(workspace(&dir, Vec::new())), 0);
    h.file("/root/project/ws/dist/a.js", "a");
    h.file("/root/project/ws/dist/b.css", "b");
    h.file("/root/project/ws/notes.txt", "n");
    h.file("/root/other/x", "x");
    let paths = vec!["dist/*.js".to_string(), "nothing-*".to_string()];
    let outcome = persist(&h.ctx, 4, "ws", &paths).await.unwrap();
    let text = h.text();
    assert_eq!(outcome, StepOutcome::Passed { exit_code: None }, "{text}");
    assert!(text.contains("Creating workspace archive..."), "{text}");
    assert!(text.contains("Total size uploaded: "), "{text}");
    assert!(
        text.contains("Warning: the path nothing-* did not match any files in /root/project/ws"),
        "{text}"
    );
    let layers = job_layers(&dir).unwrap();
    assert_eq!(layers, vec![dir.join("0-4.tar")]);
    let kept: Vec<String> = layer_entries(&layers[0]).into_iter().map(|e| e.0).collect();
    assert_eq!(kept, vec!["dist/a.js"]);

    // `.` keeps everything under root; `~` and absolute roots resolve like CircleCI's.
    let outcome = persist(&h.ctx, 5, "~/project/ws/", &[".".to_string()])
        .await
        .unwrap();
    assert_eq!(outcome, StepOutcome::Passed { exit_code: None });
    let mut kept: Vec<String> = layer_entries(&dir.join("0-5.tar"))
        .into_iter()
        .map(|e| e.0)
        .collect();
    kept.sort();
    assert_eq!(kept, vec!["dist/a.js", "dist/b.css", "notes.txt"]);
}

#[tokio::test]
async fn persist_fails_like_circleci_when_nothing_is_found() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("build");
    let h = Harness::new(Some(workspace(&dir, Vec::new())), 0);
    h.file("/root/project/ws/a", "a");
    let outcome = persist(&h.ctx, 1, "ws", &["b*".to_string()]).await.unwrap();
    assert_eq!(
        failure(&outcome),
        "The specified paths did not match any files in /root/project/ws"
    );
    assert!(
        job_layers(&dir).unwrap().is_empty(),
        "no layer, no temporary file"
    );
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);

    let outcome = persist(&h.ctx, 2, "/missing", &["a".to_string()])
        .await
        .unwrap();
    assert_eq!(
        failure(&outcome),
        "Error locating workspace root directory: stat /missing: no such file or directory"
    );
    let outcome = persist(&h.ctx, 3, "ws", &["a[".to_string()]).await.unwrap();
    assert!(
        failure(&outcome)
            .contains("the path \"a[\" is not a valid pattern: syntax error in pattern"),
        "{outcome:?}"
    );
    let outcome = persist(&h.ctx, 3, "ws", &["../up".to_string()])
        .await
        .unwrap();
    assert!(
        failure(&outcome).contains("leave the workspace root"),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn without_a_workspace_both_steps_fail_with_a_hint() {
    let h = Harness::new(None, 0);
    let outcome = persist(&h.ctx, 1, ".", &["a".to_string()]).await.unwrap();
    assert!(
        failure(&outcome).contains("Run the workflow: localci execute --workflow <name>"),
        "{outcome:?}"
    );
    let outcome = attach(&h.ctx, "/tmp/ws").await.unwrap();
    assert!(failure(&outcome).starts_with("attach_workspace: this job has no workspace"));
    assert!(h.backend.state().uploads.is_empty());
}

fn stored_layer(dir: &Path, step: usize, files: &[(&str, &str)]) {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, content) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(content.len() as u64);
        header.set_mode(0o644);
        header.set_uid(1000);
        builder
            .append_data(&mut header, path, content.as_bytes())
            .unwrap();
    }
    let mut writer = LayerWriter::create(dir, 0, step).unwrap();
    writer.write_all(&builder.into_inner().unwrap()).unwrap();
    writer.commit().unwrap();
}

#[tokio::test]
async fn attach_applies_upstream_layers_in_order_as_the_job_user() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    stored_layer(&a, 1, &[("v", "from a"), ("only-a", "a")]);
    stored_layer(&b, 2, &[("v", "from b")]);
    let mut ws = workspace(
        &tmp.path().join("deploy"),
        vec![upstream("a", &a, &[]), upstream("b", &b, &["a"])],
    );
    ws.from_run = Some("run 7 (2026-12-01 22:00)".into());
    let mut h = Harness::new(Some(ws), 3434);
    let outcome = attach(&h.ctx, "~/ws").await.unwrap();
    let text = h.text();
    assert_eq!(outcome, StepOutcome::Passed { exit_code: None }, "{text}");
    assert!(
        text.contains("Using the workspace of an earlier run: run 7"),
        "{text}"
    );
    assert!(
        text.contains("Applying workspace layers\n  a\n  b\n"),
        "{text}"
    );
    assert!(
        text.contains(&format!("\n  {} - ", a.join("0-1.tar").display())),
        "{text}"
    );
    let state = h.backend.state();
    assert_eq!(
        state.files.get("/root/ws/v").map(Vec::as_slice),
        Some(&b"from b"[..]),
        "the later layer wins"
    );
    assert_eq!(
        state.files.get("/root/ws/only-a").map(Vec::as_slice),
        Some(&b"a"[..])
    );
    let mkdir = state
        .execs
        .iter()
        .find(|c| c.helper() == Some("localci-attach"))
        .expect("at is made by the job user");
    assert_eq!(mkdir.spec.cmd[4], "/root/ws");
    assert_eq!(mkdir.spec.user, None);
    assert_eq!(state.uploads.len(), 2);
    for (_, dir, data) in &state.uploads {
        assert_eq!(dir, "/root/ws");
        assert!(entries(data).iter().all(|(_, uid, _)| *uid == 3434));
    }
}

#[tokio::test]
async fn a_root_job_keeps_the_owners_persisted() {
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("a");
    stored_layer(&a, 1, &[("v", "x")]);
    let h = Harness::new(Some(workspace(tmp.path(), vec![upstream("a", &a, &[])])), 0);
    let outcome = attach(&h.ctx, "/ws").await.unwrap();
    assert_eq!(outcome, StepOutcome::Passed { exit_code: None });
    let state = h.backend.state();
    assert_eq!(entries(&state.uploads[0].2)[0].1, 1000);
}

#[tokio::test]
async fn a_damaged_layer_is_refused_before_anything_is_uploaded() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    stored_layer(&a, 1, &[("a", "good")]);
    stored_layer(&b, 1, &[("b", "will be damaged")]);
    let path = b.join("0-1.tar");
    let mut bytes = std::fs::read(&path).unwrap();
    let at = bytes.windows(4).position(|w| w == b"will").unwrap();
    bytes[at] = b'W';
    std::fs::write(&path, &bytes).unwrap();
    let ws = workspace(
        tmp.path(),
        vec![upstream("a", &a, &[]), upstream("b", &b, &["a"])],
    );
    let h = Harness::new(Some(ws), 0);
    let outcome = attach(&h.ctx, "/ws").await.unwrap();
    let reason = failure(&outcome);
    assert!(
        reason.contains("is damaged") && reason.contains("run the job b again"),
        "{reason}"
    );
    assert!(
        h.backend.state().uploads.is_empty(),
        "not even the good layer of a"
    );
}

#[tokio::test]
async fn concurrent_jobs_that_wrote_one_file_fail_the_attach() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    stored_layer(&a, 1, &[("out/log", "a")]);
    stored_layer(&b, 1, &[("out/log", "b")]);
    let ws = workspace(
        tmp.path(),
        vec![upstream("a", &a, &[]), upstream("b", &b, &[])],
    );
    let h = Harness::new(Some(ws), 0);
    let outcome = attach(&h.ctx, "/ws").await.unwrap();
    assert!(
        failure(&outcome).starts_with(
            "Concurrent upstream jobs persisted the same file(s) into the workspace:\n  - out/log (persisted by a and b)"
        ),
        "{outcome:?}"
    );
    assert!(h.backend.state().uploads.is_empty());
}

#[tokio::test]
async fn an_empty_workspace_is_a_note() {
    let tmp = tempfile::tempdir().unwrap();
    let mut h = Harness::new(Some(workspace(tmp.path(), Vec::new())), 0);
    let outcome = attach(&h.ctx, "/ws").await.unwrap();
    assert_eq!(outcome, StepOutcome::Passed { exit_code: None });
    assert!(h.text().contains("No upstream jobs"));
    let a = tmp.path().join("a");
    let ws = workspace(tmp.path(), vec![upstream("a", &a, &[])]);
    let mut h = Harness::new(Some(ws), 0);
    let outcome = attach(&h.ctx, "/ws").await.unwrap();
    assert_eq!(outcome, StepOutcome::Passed { exit_code: None });
    assert!(
        h.text()
            .contains("none of the upstream jobs (a) persisted anything")
    );
}

/// A tar as Docker sends it for a root folder `ws`: folders, files, links.
fn container_archive() -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    let dir = |b: &mut tar::Builder<Vec<u8>>, path: &str, uid: u64| {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_size(0);
        h.set_mode(0o750);
        h.set_uid(uid);
        b.append_data(&mut h, path, io::empty()).unwrap();
    };
    let file = |b: &mut tar::Builder<Vec<u8>>, path: &str, content: &str| {
        let mut h = tar::Header::new_ustar();
        h.set_size(content.len() as u64);
        h.set_mode(0o755);
        h.set_uid(3434);
        b.append_data(&mut h, path, content.as_bytes()).unwrap();
    };
    let link = |b: &mut tar::Builder<Vec<u8>>, kind, path: &str, target: &str| {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(kind);
        h.set_size(0);
        h.set_mode(0o777);
        b.append_link(&mut h, path, target).unwrap();
    };
    dir(&mut builder, "ws/", 0);
    dir(&mut builder, "ws/bin/", 3434);
    dir(&mut builder, "ws/bin/deep/", 3434);
    file(&mut builder, "ws/bin/deep/tool", "#!/bin/sh");
    link(
        &mut builder,
        tar::EntryType::Symlink,
        "ws/bin/deep/alias",
        "tool",
    );
    link(
        &mut builder,
        tar::EntryType::Link,
        "ws/bin/deep/hard",
        "ws/bin/deep/tool",
    );
    link(
        &mut builder,
        tar::EntryType::Link,
        "ws/bin/deep/orphan",
        "ws/docs/readme",
    );
    dir(&mut builder, "ws/docs/", 0);
    file(&mut builder, "ws/docs/readme", "r");
    builder.into_inner().unwrap()
}

#[test]
fn parents_of_kept_entries_come_along_with_their_modes_and_links_are_kept() {
    let patterns = vec![Pattern::parse("bin/*/[a-t]*").unwrap()];
    let mut out = tar::Builder::new(Vec::new());
    let kept = keep_matching(&mut out, &container_archive()[..], &patterns, Base::Named).unwrap();
    let out = out.into_inner().unwrap();
    let mut got = Vec::new();
    for entry in tar::Archive::new(&out[..]).entries().unwrap() {
        let entry = entry.unwrap();
        let h = entry.header();
        got.push((
            entry.path().unwrap().to_string_lossy().into_owned(),
            h.mode().unwrap(),
            h.uid().unwrap(),
            entry
                .link_name()
                .unwrap()
                .map(|l| l.to_string_lossy().into_owned()),
        ));
    }
    assert_eq!(
        got,
        vec![
            ("bin".into(), 0o750, 3434, None),
            ("bin/deep".into(), 0o750, 3434, None),
            ("bin/deep/tool".into(), 0o755, 3434, None),
            ("bin/deep/alias".into(), 0o777, 0, Some("tool".into())),
            (
                "bin/deep/hard".into(),
                0o777,
                0,
                Some("bin/deep/tool".into())
            ),
        ]
    );
    assert_eq!(kept.entries, 5);
    assert_eq!(kept.bytes, 9);
    assert_eq!(kept.matched, vec![true]);
    assert_eq!(kept.dropped_links, vec!["bin/deep/orphan".to_string()]);
}

#[test]
fn a_file_system_root_is_archived_from_the_top() {
    // What Docker sends for `/`: entries named from `/`, no base name to strip.
    let mut builder = tar::Builder::new(Vec::new());
    for (path, content) in [("/usr/local/bin/tool", "t"), ("/etc/hostname", "h")] {
        let mut h = tar::Header::new_ustar();
        h.set_size(content.len() as u64);
        h.set_mode(0o755);
        // The tar crate refuses absolute names; Docker writes them, so set the bytes.
        h.as_old_mut().name[..path.len()].copy_from_slice(path.as_bytes());
        h.set_cksum();
        builder.append(&h, content.as_bytes()).unwrap();
    }
    let archive = builder.into_inner().unwrap();
    let patterns = vec![Pattern::parse("usr/local/bin").unwrap()];
    let mut out = tar::Builder::new(Vec::new());
    let kept = keep_matching(&mut out, &archive[..], &patterns, Base::of("/")).unwrap();
    assert_eq!(kept.entries, 1);
    let names: Vec<String> = entries(&out.into_inner().unwrap())
        .into_iter()
        .map(|e| e.0)
        .collect();
    assert_eq!(names, vec!["usr/local/bin/tool"]);
    assert_eq!(Base::of("/root/project/ws"), Base::Named);
}
