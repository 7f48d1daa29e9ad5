//! One module per kind of step. Each runs its step in the primary container through the
//! backend and returns a [`StepOutcome`]: a failed step is data, only infrastructure failures
//! are errors. Output goes out as events; nothing here prints.

pub mod artifacts;
pub mod cache;
pub mod checkout;
pub mod context;
pub mod notices;
pub mod process;
pub mod run;
pub mod sync;
pub mod tarball;
pub mod workspace;

pub use context::{
    Facts, FirstCheckout, Settings, StagedCheckout, StepContext, UpstreamLayers, Workspace,
};

use crate::backend::Result;
use crate::config::{Step, StepKind};
use crate::report::StepStatus;

/// How a step ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StepOutcome {
    Passed {
        exit_code: Option<i64>,
    },
    Failed {
        exit_code: Option<i64>,
        reason: Option<String>,
    },
    /// Ctrl-C while it ran.
    Cancelled,
}

impl StepOutcome {
    pub fn failed(reason: impl Into<String>) -> StepOutcome {
        StepOutcome::Failed {
            exit_code: None,
            reason: Some(reason.into()),
        }
    }

    /// The status the reporter shows (`None` for a cancelled step).
    pub fn status(&self) -> Option<StepStatus> {
        match self {
            StepOutcome::Passed { exit_code } => Some(StepStatus::Passed {
                exit_code: *exit_code,
            }),
            StepOutcome::Failed { exit_code, reason } => Some(StepStatus::Failed {
                exit_code: *exit_code,
                reason: reason.clone(),
            }),
            StepOutcome::Cancelled => None,
        }
    }
}

/// Lines shown under the step's title.
pub fn header(ctx: &StepContext, step: &Step) -> Vec<String> {
    match &step.kind {
        StepKind::Run(r) => run::header(ctx, r),
        _ => Vec::new(),
    }
}

/// Runs one step.
pub async fn execute(ctx: &StepContext, index: usize, step: &Step) -> Result<StepOutcome> {
    match &step.kind {
        StepKind::Run(r) => run::run(ctx, index, r).await,
        StepKind::Checkout { path, .. } => checkout::run(ctx, path.as_deref()).await,
        StepKind::AddSshKeys { fingerprints } => Ok(notices::add_ssh_keys(ctx, fingerprints)),
        StepKind::SetupRemoteDocker { version } => {
            Ok(notices::setup_remote_docker(ctx, version.as_deref()))
        }
        StepKind::PersistToWorkspace { root, paths } => {
            workspace::persist(ctx, index, root, paths).await
        }
        StepKind::AttachWorkspace { at } => workspace::attach(ctx, at).await,
        StepKind::SaveCache { key, paths } => cache::save(ctx, key, paths).await,
        StepKind::RestoreCache { keys } => cache::restore(ctx, keys).await,
        StepKind::StoreArtifacts { path, destination } => {
            artifacts::store_artifacts(ctx, path, destination.as_deref()).await
        }
        StepKind::StoreTestResults { path } => artifacts::store_test_results(ctx, path).await,
        StepKind::InstallSigningBundle => Ok(notices::install_signing_bundle(ctx)),
    }
}

#[cfg(test)]
mod tests;
