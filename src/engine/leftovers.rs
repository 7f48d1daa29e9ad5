//! Removes what earlier runs left behind when they could not clean up (killed with SIGKILL,
//! a crash, a lost daemon connection): labelled resources whose creating process has certainly
//! ended (see [`Owner::is_gone`]). Never a live run's: when in doubt (another host, another pid
//! namespace, labels it cannot read), a resource stays. Containers kept with `--keep` are
//! never touched.

use super::owner::{self, Owner};
use super::run_info::{LABEL_KEEP, RunInfo};
use crate::backend::{Backend, LABEL, Labelled, ResourceKind, Result};

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

fn is_stale(resource: &Labelled, me: &Owner) -> bool {
    !resource.labels.contains_key(LABEL_KEEP)
        && Owner::from_labels(&resource.labels).is_some_and(|o| o.is_gone(me, owner::probe))
}
