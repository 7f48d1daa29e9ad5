//! localci's in-container agent: the `circleci` / `circleci-agent` program put into every
//! primary container (docs/agent.md), and what the host gives it.
//!
//! `build.rs` builds the agent (`agent/main.rs`) with rustc, statically linked, and this
//! module embeds it ([`AGENT_BINARY`]). The engine uploads [`agent_archive`] at `/` of the
//! primary container ([`install`]) and writes [`timings_tsv`] into the job's
//! `$LOCALCI_AGENT_DIR`; after each step it checks that folder for the `halt` marker of
//! `circleci-agent step halt` (semantics §10.2).
//!
//! The agent's logic (`args`, `dir`, `glob`, `split`, `subst`, `tsv`) is in files that both
//! the agent and this library compile, std only, so `cargo test` covers them; the library
//! itself uses only `dir` and `tsv` (the host writes what the agent reads). Nothing here
//! imports bollard: the upload goes through the `Backend` trait.

mod archive;
pub(crate) mod dir;
#[allow(
    dead_code,
    reason = "the agent serves requests (`serve`, tests here); the host frames them"
)]
pub(crate) mod runner;
#[allow(
    dead_code,
    reason = "the agent reads the timings file (`parse`), the host writes it"
)]
mod tsv;

#[cfg(test)]
mod args;
#[cfg(test)]
mod glob;
#[cfg(test)]
mod split;
#[cfg(test)]
mod subst;
#[cfg(test)]
mod tests;

use std::io;
use std::path::Path;

use bytes::Bytes;
use futures_util::StreamExt;

use crate::backend::{self, Backend};
use crate::store::junit::{self, CaseTiming};

/// The agent program (a static Linux executable), as `build.rs` built it.
pub(crate) const AGENT_BINARY: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/localci-agent"));

/// A tar holding the agent as `usr/local/bin/circleci` and `usr/local/bin/circleci-agent`
/// (mode 0755, owner root), to be extracted at `/` of a container.
pub(crate) fn agent_archive() -> Vec<u8> {
    archive::of(AGENT_BINARY)
}

/// Appends the agent's entries (those of [`agent_archive`]) to an archive extracted at `/`.
pub(crate) fn append_to<W: std::io::Write>(builder: &mut tar::Builder<W>) -> io::Result<()> {
    archive::append(builder, AGENT_BINARY)
}

/// Installs the agent in a (created or running) container through the backend's archive
/// upload: `/usr/local/bin/circleci` and `/usr/local/bin/circleci-agent`.
pub(crate) async fn install(backend: &dyn Backend, container: &str) -> backend::Result<()> {
    let archive = Bytes::from(agent_archive());
    let tar = futures_util::stream::once(async move { Ok(archive) }).boxed();
    backend.upload(container, "/", tar).await
}

/// The timings file for `--split-by=timings` (`$LOCALCI_AGENT_DIR/timings.tsv`): one line per
/// test case of earlier runs' JUnit reports.
pub(crate) fn timings_tsv(cases: &[CaseTiming]) -> String {
    cases
        .iter()
        .map(|c| tsv::row(&c.file, &c.classname, &c.name, c.seconds))
        .collect()
}

/// [`timings_tsv`] of every JUnit report in a results folder (or one report file).
pub(crate) fn timings_tsv_from(results: &Path) -> io::Result<String> {
    Ok(timings_tsv(&junit::case_timings(results)?))
}
