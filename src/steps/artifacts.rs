//! `store_artifacts` and `store_test_results` in a single job: the files are copied out of the
//! container into the artifacts folder on the host (`.localci/artifacts/<job>/...`) with
//! `extract_safe`, so nothing can land outside it; test results are summarised from their
//! JUnit files. Both are emulations: problems are warnings and never fail the job.

use std::io;
use std::path::{Path, PathBuf};

use super::StepOutcome;
use super::context::StepContext;
use super::tarball::blocking_reader;
use crate::backend::{BackendError, Result};
use crate::store::archive::extract_safe;
use crate::store::junit::{self, TestSummary};

pub async fn store_artifacts(
    ctx: &StepContext,
    path: &str,
    destination: Option<&str>,
) -> Result<StepOutcome> {
    let dest = destination.map_or_else(|| default_destination(path), clean_relative);
    if let Some(copied) = copy_out(
        ctx,
        "store_artifacts",
        path,
        &ctx.settings.artifacts_dir.join(&dest),
    )
    .await?
    {
        ctx.events.info(format!(
            "Stored {} file(s) of {path} in {}",
            copied.files,
            copied.place.display()
        ));
    }
    Ok(StepOutcome::Passed { exit_code: None })
}

pub async fn store_test_results(ctx: &StepContext, path: &str) -> Result<StepOutcome> {
    let place = ctx.settings.artifacts_dir.join(default_destination(path));
    let Some(copied) = copy_out(ctx, "store_test_results", path, &place).await? else {
        return Ok(StepOutcome::Passed { exit_code: None });
    };
    ctx.events.info(format!(
        "Stored the test results of {path} in {}",
        copied.place.display()
    ));
    let target = copied.place.clone();
    let summary = tokio::task::spawn_blocking(move || junit::summarize(&target))
        .await
        .map_err(|e| BackendError::Api(e.to_string()))?;
    match summary {
        Ok(summary) => report_summary(ctx, &summary),
        Err(e) => ctx
            .events
            .warning(format!("store_test_results: cannot read the results: {e}")),
    }
    Ok(StepOutcome::Passed { exit_code: None })
}

fn report_summary(ctx: &StepContext, s: &TestSummary) {
    if s.files == 0 {
        ctx.events
            .warning("store_test_results: no JUnit XML files (*.xml) found");
    } else {
        ctx.events.info(format!(
            "Test results: {} passed, {} failed, {} errors, {} skipped ({} file(s))",
            s.passed, s.failed, s.errors, s.skipped, s.files
        ));
    }
    for failure in &s.failures {
        ctx.events.info(format!("  failed: {failure}"));
    }
    for warning in &s.warnings {
        ctx.events.warning(format!("store_test_results: {warning}"));
    }
}

struct Copied {
    place: PathBuf,
    files: usize,
}

/// Downloads `path` from the container and puts it at `place` (replacing an earlier copy).
/// `None` (after a warning) when there is nothing to copy or copying failed.
async fn copy_out(
    ctx: &StepContext,
    step: &str,
    path: &str,
    place: &Path,
) -> Result<Option<Copied>> {
    let source = ctx.facts.resolve(path);
    let stream = match ctx.backend.download(&ctx.primary, &source).await {
        Ok(s) => s,
        Err(BackendError::NotFound(_)) => {
            ctx.events.warning(format!(
                "{step}: {source} does not exist; nothing was stored"
            ));
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    let base = source.rsplit('/').next().unwrap_or_default().to_string();
    let place_owned = place.to_path_buf();
    let result = tokio::task::spawn_blocking(move || {
        extract_to(blocking_reader(stream), &base, &place_owned)
    })
    .await
    .map_err(|e| BackendError::Api(e.to_string()))?;
    match result {
        Ok(files) => Ok(Some(Copied {
            place: place.to_path_buf(),
            files,
        })),
        Err(e) => {
            ctx.events
                .warning(format!("{step}: cannot copy {source}: {e}"));
            Ok(None)
        }
    }
}

/// Extracts into a fresh folder next to `place`, then moves the downloaded item into place,
/// so a failed copy never leaves half a result where the previous one was.
fn extract_to(reader: impl io::Read, base: &str, place: &Path) -> io::Result<usize> {
    let parent = place
        .parent()
        .ok_or_else(|| io::Error::other("no parent folder"))?;
    std::fs::create_dir_all(parent)?;
    let staging = tempfile::Builder::new()
        .prefix(".localci-copy-")
        .tempdir_in(parent)?;
    let files = extract_safe(reader, staging.path())?;
    let item = staging.path().join(base);
    if std::fs::symlink_metadata(place).is_ok() {
        if std::fs::symlink_metadata(place)?.is_dir() {
            std::fs::remove_dir_all(place)?;
        } else {
            std::fs::remove_file(place)?;
        }
    }
    std::fs::rename(&item, place)?;
    Ok(files.len())
}

/// Where an artifact goes by default: its path as written, without `~/`, `/` or `./` in front
/// (`/tmp/artifacts` -> `tmp/artifacts`).
fn default_destination(path: &str) -> String {
    let path = path.strip_prefix('~').unwrap_or(path);
    clean_relative(path)
}

/// A relative path without `.`, `..` or empty parts, so it stays inside the artifacts folder.
fn clean_relative(path: &str) -> String {
    let parts: Vec<&str> = path
        .split('/')
        .filter(|p| !p.is_empty() && *p != "." && *p != "..")
        .collect();
    if parts.is_empty() {
        "root".to_string()
    } else {
        parts.join("/")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_stay_inside() {
        assert_eq!(default_destination("/tmp/artifacts"), "tmp/artifacts");
        assert_eq!(default_destination("~/project/out/"), "project/out");
        assert_eq!(default_destination("./test-results"), "test-results");
        assert_eq!(clean_relative("../../etc"), "etc");
        assert_eq!(clean_relative("/"), "root");
    }

    #[test]
    fn extraction_replaces_the_previous_copy() {
        let dir = tempfile::tempdir().unwrap();
        let place = dir.path().join("out");
        std::fs::create_dir_all(place.join("old")).unwrap();
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(2);
        h.set_mode(0o644);
        b.append_data(&mut h, "results/a.txt", &b"hi"[..]).unwrap();
        let data = b.into_inner().unwrap();
        assert_eq!(extract_to(&data[..], "results", &place).unwrap(), 1);
        assert_eq!(std::fs::read_to_string(place.join("a.txt")).unwrap(), "hi");
        assert!(!place.join("old").exists());
    }
}
