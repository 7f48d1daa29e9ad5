//! Hold points for the interrupt tests: with `LOCALCI_HOLD_AT=<moment>` a run stops at that
//! moment of a job (a pull under way, a container created but not started, half of a copy
//! sent ...), says so in the job's log (`Holding at <moment> until a signal comes`) and goes
//! on only once SIGINT or SIGTERM arrived. A test can so signal a run at exactly that moment
//! instead of sleeping and hoping (issue 9: SIGINT and SIGTERM at every moment of a job leave
//! nothing behind). Without the variable every hold point returns at once; it changes no
//! output and costs one comparison. A hold never replaces the work: after the signal the
//! operation goes on, and its own cancellation decides how it ends.

use std::sync::OnceLock;

use futures_util::StreamExt;

use crate::backend::ByteStream;
use crate::report::Events;

/// The variable that names the moment to hold at.
pub(crate) const ENV: &str = "LOCALCI_HOLD_AT";

/// The moments a run can be held at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Moment {
    /// Before the job's images are looked for (nothing created yet).
    Images,
    /// After the first progress line of a pull.
    Pull,
    /// The primary container created, not yet started.
    Create,
    /// The primary started and running localci's setup, its report not read yet.
    Start,
    /// A service container started, the job's steps not yet begun.
    Service,
    /// Part of the repository sent to the container.
    Checkout,
    /// Part of a cache archive written to the cache directory.
    SaveCache,
    /// Part of a cache archive sent to the container.
    RestoreCache,
    /// Part of a workspace layer written.
    Persist,
    /// Part of a workspace layer sent to the container.
    Attach,
    /// Part of an artifact staged on the host.
    Artifacts,
    /// Part of the test results staged on the host.
    TestResults,
    /// A step ended, the next not begun (no process of localci's in the container).
    BetweenSteps,
    /// A job's containers up, the job waiting for the jobs it requires.
    Waiting,
    /// A job ended, its containers not yet removed.
    Cleanup,
}

const MOMENTS: [(Moment, &str); 15] = [
    (Moment::Images, "images"),
    (Moment::Pull, "pull"),
    (Moment::Create, "create"),
    (Moment::Start, "start"),
    (Moment::Service, "service"),
    (Moment::Checkout, "checkout"),
    (Moment::SaveCache, "save_cache"),
    (Moment::RestoreCache, "restore_cache"),
    (Moment::Persist, "persist_to_workspace"),
    (Moment::Attach, "attach_workspace"),
    (Moment::Artifacts, "store_artifacts"),
    (Moment::TestResults, "store_test_results"),
    (Moment::BetweenSteps, "between_steps"),
    (Moment::Waiting, "waiting"),
    (Moment::Cleanup, "cleanup"),
];

impl Moment {
    fn name(self) -> &'static str {
        MOMENTS
            .iter()
            .find(|(m, _)| *m == self)
            .map(|(_, name)| *name)
            .expect("every moment is listed")
    }
}

/// `LOCALCI_HOLD_AT` names no moment.
#[derive(Debug, thiserror::Error)]
#[error("{ENV}={given}: no such moment; use one of {}", names())]
pub(crate) struct UnknownMoment {
    given: String,
}

fn names() -> String {
    MOMENTS
        .iter()
        .map(|(_, name)| *name)
        .collect::<Vec<_>>()
        .join(", ")
}

static HOLD_AT: OnceLock<Moment> = OnceLock::new();

/// Sets the moment to hold at from the value of [`ENV`] (once per process; `None`: never).
pub(crate) fn hold_at(value: Option<&str>) -> Result<(), UnknownMoment> {
    let Some(value) = value else {
        return Ok(());
    };
    let moment = MOMENTS
        .iter()
        .find(|(_, name)| *name == value)
        .map(|(m, _)| *m)
        .ok_or_else(|| UnknownMoment {
            given: value.to_string(),
        })?;
    let _ = HOLD_AT.set(moment);
    Ok(())
}

fn holds(moment: Moment) -> bool {
    HOLD_AT.get() == Some(&moment)
}

/// Holds at `moment` when asked to, until the first signal; returns at once otherwise.
pub(crate) async fn at(moment: Moment, events: &Events) {
    if !holds(moment) {
        return;
    }
    let Some(signalled) = super::signals::signalled() else {
        return;
    };
    if signalled.is_cancelled() {
        return;
    }
    events.info(format!(
        "Holding at {} until a signal comes ({ENV})",
        moment.name()
    ));
    signalled.cancelled().await;
}

/// `stream`, held at `moment` after its first chunk (before its end when it has only one).
pub(crate) fn stream(moment: Moment, events: &Events, stream: ByteStream) -> ByteStream {
    if !holds(moment) {
        return stream;
    }
    let events = events.clone();
    futures_util::stream::unfold(
        (stream, events, 0u64),
        move |(mut s, events, n)| async move {
            if n == 1 {
                at(moment, &events).await;
            }
            let item = s.next().await?;
            Some((item, (s, events, n + 1)))
        },
    )
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_moment_has_a_name_and_unknown_names_are_refused() {
        for (moment, name) in MOMENTS {
            assert_eq!(moment.name(), name);
        }
        let e = hold_at(Some("bogus")).unwrap_err().to_string();
        assert!(e.starts_with("LOCALCI_HOLD_AT=bogus: no such moment; use one of images, pull"));
        assert!(hold_at(None).is_ok());
    }
}
