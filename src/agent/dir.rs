//! What localci and the in-container agent share: a folder in the container, owned by the
//! job's user, named by `$LOCALCI_AGENT_DIR`. Std only: compiled by the agent and the library.

/// The environment variable naming the folder.
pub(crate) const ENV: &str = "LOCALCI_AGENT_DIR";
/// Created by `step halt`; the engine ends the job successfully after the current step when
/// it exists (semantics §10.2).
pub(crate) const HALT: &str = "halt";
/// Written by the engine before the job (`timings_tsv`), read by `--split-by=timings`.
pub(crate) const TIMINGS: &str = "timings.tsv";
