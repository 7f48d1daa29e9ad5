//! Removes what earlier runs left behind when they could not clean up (killed with SIGKILL,
//! a crash, a lost daemon connection): labelled resources whose creating process has certainly
//! ended (see [`Owner::is_gone`]). Never a live run's: when in doubt (another host, another pid
//! namespace, labels it cannot read), a resource stays. Containers kept with `--keep` are
//! never touched.

use std::sync::Arc;

use super::owner::{self, Owner};
use super::run_info::{LABEL_KEEP, RunInfo};
use crate::backend::{Backend, LABEL, Labelled, ResourceKind, Result};
use crate::report::Events;

/// Removes stale resources; returns how many were removed.
pub async fn remove_stale(backend: &dyn Backend, me: &RunInfo) -> Result<usize> {
    let mut stale: Vec<Labelled> = backend
        .list_labelled(LABEL)
        .await?
        .into_iter()
        .filter(|r| is_stale(r, &me.owner))
        .collect();
    // Containers first: networks and volumes in use cannot be removed.
    stale.sort_by_key(|r| r.kind != ResourceKind::Container);
    let mut removed = 0;
    for resource in &stale {
        if backend.remove(resource).await.is_ok() {
            removed += 1;
        }
    }
    Ok(removed)
}

/// [`remove_stale`], telling how many were removed, or why the sweep could not be done.
pub async fn sweep(backend: Arc<dyn Backend>, me: RunInfo, events: Events) {
    match remove_stale(backend.as_ref(), &me).await {
        Ok(0) => {}
        Ok(n) => events.info(format!(
            "Removed {n} leftover container(s) of earlier runs that did not finish"
        )),
        Err(e) => events.warning(format!(
            "could not look for the leftovers of earlier runs: {e}"
        )),
    }
}

fn is_stale(resource: &Labelled, me: &Owner) -> bool {
    !resource.labels.contains_key(LABEL_KEEP)
        && Owner::from_labels(&resource.labels).is_some_and(|o| o.is_gone(me, owner::probe))
}
