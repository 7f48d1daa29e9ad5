//! `--watch`: after a run of the job's steps, the job waits in its containers (primary and
//! services stay up) for the next change of the checkout's files, then runs all its steps
//! again there; the checkout of a rerun sends only what changed (`steps::sync`). Each run ends
//! with a [`Event::WatchResult`]; a failed run does not end the watch, Ctrl-C does (the job
//! then ends as its last run did). What the host watches is not decided here: changes come as
//! [`Change`]s on a channel (`launch::watch` feeds it from the file system).

use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::watch;

use super::sequence::{self, Sequence};
use crate::backend::{ExecSpec, Result};
use crate::report::Event;
use crate::steps::StepContext;
use crate::steps::process::collect;
use crate::steps::sync::SyncState;

/// Files of the checkout changed (debounced): the latest change, numbered.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Change {
    /// Counts up from 1; 0 is "nothing changed yet".
    pub seq: u64,
    /// The first changed paths, relative to the repository.
    pub paths: Vec<String>,
    /// How many paths changed in all.
    pub count: usize,
}

/// The receiving end a watched job waits on (cloned per node: each reruns on every change).
pub type Changes = watch::Receiver<Change>;

/// Before a rerun, as root in the primary: kills what steps left running (background steps,
/// daemons they started: each step's process group, by the pid files its wrapper wrote),
/// removes the halt marker, and empties `BASH_ENV` as the setup left it, so that the rerun
/// starts as the first run did.
const RESET: &str = r#"d=$1
for f in "$d"/step-*.pid; do
  [ -f "$f" ] || continue
  p=$(cat "$f" 2>/dev/null)
  [ -n "$p" ] && { kill -KILL -"$p" 2>/dev/null || kill -KILL "$p" 2>/dev/null; }
  rm -f "$f"
done
rm -f "$d/$2"
[ -z "$3" ] || [ ! -f "$3" ] || : >"$3"
true"#;

/// Reruns the job's steps on every change until Ctrl-C; returns how the last run ended (an
/// interrupted run, or an infrastructure error, ends the watch at once).
pub(super) async fn rerun_on_changes(
    ctx: &StepContext,
    first: Result<Sequence>,
    started: Instant,
    mut changes: Changes,
    sync: &SyncState,
) -> Result<Sequence> {
    let initial_env = ctx
        .extra_env
        .lock()
        .expect("no step panics while holding it")
        .clone();
    let mut result = first;
    let mut run = 1u32;
    let mut began = started;
    loop {
        let sequence = match result {
            Ok(sequence @ (Sequence::Passed | Sequence::Failed(_))) => sequence,
            other => return other,
        };
        ctx.events.send(Event::WatchResult {
            job: ctx.events.job(),
            run,
            passed: sequence == Sequence::Passed,
            failure: match &sequence {
                Sequence::Failed(why) => Some(why.clone()),
                _ => None,
            },
            duration: began.elapsed(),
            synced: sync.take_counts(),
        });
        let changed = tokio::select! {
            () = ctx.cancel.cancelled() => {
                ctx.events.info(format!(
                    "Ctrl-C: the watch ends; the job ends as run {run} did"
                ));
                return Ok(sequence);
            }
            changed = changes.changed() => changed,
        };
        if changed.is_err() {
            // The watcher is gone (it said why): the watch ends as its last run did.
            return Ok(sequence);
        }
        let change = changes.borrow_and_update().clone();
        run += 1;
        began = Instant::now();
        ctx.events.send(Event::WatchRerun {
            job: ctx.events.job(),
            run,
            paths: change.paths,
            count: change.count,
        });
        reset(ctx).await?;
        let rerun = StepContext {
            extra_env: Arc::new(Mutex::new(initial_env.clone())),
            ..ctx.clone()
        };
        result = sequence::run_steps(&rerun).await;
    }
}

/// Runs [`RESET`] in the primary container.
async fn reset(ctx: &StepContext) -> Result<()> {
    let bash_env = ctx
        .plan
        .environment
        .get("BASH_ENV")
        .unwrap_or_default()
        .to_string();
    let spec = ExecSpec {
        cmd: vec![
            "/bin/sh".into(),
            "-c".into(),
            RESET.into(),
            "localci-rerun".into(),
            ctx.run_dir.clone(),
            crate::agent::dir::HALT.into(),
            bash_env,
        ],
        user: Some("0".into()),
        ..ExecSpec::default()
    };
    collect(ctx.backend.as_ref(), &ctx.primary, spec).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use tokio_util::sync::CancellationToken;

    use super::*;
    use crate::backend::Backend;
    use crate::backend::fake::{FakeBackend, Reply};
    use crate::engine::{EngineOptions, JobSettings, NodeOutcome, RunInfo, Session};
    use crate::plan::{JobPlan, Plan, PlanOptions};
    use crate::source::{Source, Sources};

    fn plan() -> JobPlan {
        let yaml = "version: 2\njobs:\n  build:\n    docker: [{image: img}]\n    steps:\n      - run: echo hi\n";
        let mut sources = Sources::new();
        let id = sources.add(Source::new("t.yml", yaml.to_string()));
        let node = crate::yaml::parse(sources.get(id), id).expect("valid YAML");
        let config = crate::config::parse(&node).expect("valid config");
        let options = PlanOptions {
            node_total: 1,
            bash_env: crate::engine::bash_env_path(1),
            ..PlanOptions::default()
        };
        match crate::plan::plan(&config, "build", &options).expect("plans") {
            Plan::Run(p) => *p,
            Plan::Nothing(why) => panic!("{why}"),
        }
    }

    /// The next `watch_result`, with the events before it.
    async fn until_result(rx: &mut crate::report::Receiver, seen: &mut Vec<Event>) -> Event {
        loop {
            let event = tokio::time::timeout(std::time::Duration::from_secs(10), rx.recv())
                .await
                .expect("an event in time")
                .expect("the sink is open");
            seen.push(event.clone());
            if let Event::WatchResult { .. } = event {
                return event;
            }
        }
    }

    #[tokio::test]
    async fn a_failed_run_waits_for_a_change_and_the_rerun_resets_the_container_first() {
        // The first run of the step fails, the rerun passes.
        let steps = Arc::new(AtomicU32::new(0));
        let counted = steps.clone();
        let backend = Arc::new(FakeBackend::with_handler(&["img"], move |call, _| {
            (call.helper() == Some("localci-step")).then(|| Reply {
                exit_code: i64::from(counted.fetch_add(1, Ordering::SeqCst) == 0),
                ..Reply::default()
            })
        }));
        let dyn_backend: Arc<dyn Backend> = backend.clone();
        let (sink, mut rx) = crate::report::channel();
        let cancel = CancellationToken::new();
        let session = Session::open(
            dyn_backend,
            RunInfo::new(false),
            EngineOptions::default(),
            sink,
            cancel.clone(),
        )
        .await
        .unwrap();
        let plan = plan();
        let images = session.images(&[&plan]).await.unwrap().unwrap();
        let (tx, changes) = watch::channel(Change::default());
        let settings = JobSettings {
            watch: Some(changes),
            ..JobSettings::default()
        };
        let session = Arc::new(session);
        let running = {
            let session = session.clone();
            tokio::spawn(async move { session.run_job(plan, &images, settings).await })
        };
        let mut seen = Vec::new();
        let first = until_result(&mut rx, &mut seen).await;
        assert!(
            matches!(&first, Event::WatchResult { run: 1, passed: false, failure: Some(why), synced: None, .. } if why.contains("exited with code 1")),
            "{first:?}"
        );
        assert!(
            !running.is_finished(),
            "a failed run does not end the watch"
        );
        tx.send(Change {
            seq: 1,
            paths: vec!["src/app.py".into()],
            count: 1,
        })
        .unwrap();
        let second = until_result(&mut rx, &mut seen).await;
        assert!(
            matches!(
                second,
                Event::WatchResult {
                    run: 2,
                    passed: true,
                    ..
                }
            ),
            "{second:?}"
        );
        assert!(seen.iter().any(|e| matches!(e,
            Event::WatchRerun { run: 2, paths, count: 1, .. } if paths == &["src/app.py"])));
        let helpers: Vec<String> = backend
            .state()
            .execs
            .iter()
            .filter_map(|c| c.helper().map(str::to_string))
            .filter(|h| h == "localci-step" || h == "localci-rerun")
            .collect();
        assert_eq!(helpers, ["localci-step", "localci-rerun", "localci-step"]);
        let reset = backend
            .state()
            .execs
            .iter()
            .find(|c| c.helper() == Some("localci-rerun"))
            .cloned()
            .unwrap();
        assert_eq!(reset.spec.user.as_deref(), Some("0"));
        assert_eq!(reset.spec.cmd[6], crate::engine::bash_env_path(1));

        // Ctrl-C while waiting: the job ends as its last run did, and its container goes.
        cancel.cancel();
        let outcome = running.await.unwrap().unwrap();
        assert_eq!(outcome, NodeOutcome::Passed);
        session.close().await;
        assert_eq!(backend.state().removed.len(), 1);
    }
}
