//! Removes a finished (or failed, or interrupted) run's containers: those it knows by id, those
//! whose create request failed by name, and then anything else carrying the run's and the job's
//! labels, so a container the daemon made without us hearing of it does not outlive the job.
//! Never touches another run's containers, nor another job's (or node's) of the same run:
//! everything is matched by this run's id and this job's label, or by names.

use std::time::{Duration, Instant};

use super::containers::{self, Created};
use super::run_info::LABEL_JOB;
use super::run_info::RunInfo;
use super::short_id;
use crate::backend::{Backend, LABEL_RUN, Labelled};
use crate::report::Events;

/// How long a daemon may take to finish a create request whose answer we did not get.
const LATE_CREATE: Duration = Duration::from_millis(500);
/// How long to wait for removals another task started.
const SETTLE: Duration = Duration::from_secs(15);

/// Removes the job's containers. With `finished` (the job ran to its end, passed or failed), a
/// primary created with `auto_remove` is only killed: the engine removes it while localci
/// goes on (or exits), and the next run's leftover sweep removes it should the engine fail
/// to. After Ctrl-C or an infrastructure failure, every container is gone when this returns.
pub async fn cleanup(
    backend: &dyn Backend,
    run: &RunInfo,
    created: &Created,
    events: &Events,
    finished: bool,
) {
    // The run's containers are listed while the known ones go, unless every container is
    // known: after a finished job whose create requests were all answered, nothing else
    // can carry its labels.
    let complete = finished && created.unconfirmed.is_empty();
    let (mut failed, listed) =
        tokio::join!(containers::remove(backend, created, finished), async {
            if complete {
                return Some(Vec::new());
            }
            list(backend, events).await
        });
    failed.extend(remove_labelled(backend, run, created, events, listed).await);
    if !created.unconfirmed.is_empty() {
        // The daemon may still be making a container whose create request failed on our side.
        tokio::time::sleep(LATE_CREATE).await;
        failed = containers::remove(backend, created, finished).await;
        let listed = list(backend, events).await;
        failed.extend(remove_labelled(backend, run, created, events, listed).await);
    }
    let failed = settle(backend, failed).await;
    for (id, why) in failed {
        events.warning(format!(
            "could not remove container {}: {why}",
            short_id(&id)
        ));
    }
}

/// Waits while removals that failed are still under way elsewhere: a forced exit (second
/// Ctrl-C) removes the same containers, and the daemon then answers "removal already in
/// progress". The run must not end before they are gone (issue 9, finding 8). Returns those
/// still there at the deadline.
async fn settle(backend: &dyn Backend, mut failed: Vec<(String, String)>) -> Vec<(String, String)> {
    let deadline = Instant::now() + SETTLE;
    while !failed.is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let Ok(found) = backend.list_labelled(LABEL_RUN).await else {
            break;
        };
        failed.retain(|(id, _)| found.iter().any(|r| r.id == *id));
        for (id, why) in &mut failed {
            if let Err(e) = backend.remove_container(id).await {
                *why = e.to_string();
            }
        }
    }
    failed
}

/// Everything carrying the run label (of any run); `None`, after a warning, when the engine
/// cannot say.
async fn list(backend: &dyn Backend, events: &Events) -> Option<Vec<Labelled>> {
    match backend.list_labelled(LABEL_RUN).await {
        Ok(found) => Some(found),
        Err(e) => {
            events.warning(format!(
                "could not list this run's containers to remove them: {e}"
            ));
            None
        }
    }
}

/// Removes what `found` holds of this run's and this job's, besides the containers in
/// `created` (removed by id); returns what could not be removed.
async fn remove_labelled(
    backend: &dyn Backend,
    run: &RunInfo,
    created: &Created,
    events: &Events,
    found: Option<Vec<Labelled>>,
) -> Vec<(String, String)> {
    let known = created.all();
    let mut failed = Vec::new();
    for resource in found.unwrap_or_default() {
        if resource.labels.get(LABEL_RUN) == Some(&run.id)
            && resource.labels.get(LABEL_JOB).map(String::as_str)
                == Some(&*events.job().to_string())
            && !known.contains(&resource.id)
            && let Err(e) = backend.remove(&resource).await
        {
            failed.push((resource.id.clone(), e.to_string()));
        }
    }
    failed
}
