//! Removes what earlier runs left behind when they could not clean up (killed with SIGKILL,
//! a crash, a lost daemon connection): labelled resources from this host whose creating
//! process is gone. Containers kept with `--keep` are never touched.

use super::run_info::{LABEL_HOST, LABEL_KEEP, RunInfo, process_alive};
use crate::backend::{Backend, LABEL, LABEL_PID, Labelled, ResourceKind, Result};

/// Removes stale resources; returns how many were removed.
pub async fn remove_stale(backend: &dyn Backend, me: &RunInfo) -> Result<usize> {
    let mut stale: Vec<Labelled> = backend
        .list_labelled(LABEL)
        .await?
        .into_iter()
        .filter(|r| is_stale(r, me))
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

fn is_stale(resource: &Labelled, me: &RunInfo) -> bool {
    if resource.labels.contains_key(LABEL_KEEP) {
        return false;
    }
    if resource.labels.get(LABEL_HOST) != Some(&me.host) {
        return false;
    }
    match resource
        .labels
        .get(LABEL_PID)
        .and_then(|p| p.parse::<u32>().ok())
    {
        Some(pid) => pid != me.pid && !process_alive(pid),
        None => false,
    }
}
