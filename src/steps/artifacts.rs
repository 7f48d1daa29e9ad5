//! `store_artifacts` and `store_test_results` in a single job: the files are copied out of the
//! container into the artifacts folder on the host (`.localci/artifacts/<job>/...`) through a
//! staging folder, with `extract_into`, so nothing can land outside it; below the repository
//! no symlink is followed (`store::safe_path`). Test results are summarised from their JUnit
//! files. Both are emulations: problems are warnings and never fail the job. Ctrl-C stops a
//! copy at once and leaves nothing behind.

use std::ffi::OsStr;
use std::io;
use std::path::{Path, PathBuf};

use super::StepOutcome;
use super::context::StepContext;
use super::tarball::{self, blocking_reader};
use crate::backend::{BackendError, Result};
use crate::engine::hold::{self, Moment};
use crate::store::archive::extract_into;
use crate::store::junit::{self, TestSummary};
use crate::store::safe_path::SafeDir;
use crate::store::staging::Stage;

pub async fn store_artifacts(
    ctx: &StepContext,
    path: &str,
    destination: Option<&str>,
) -> Result<StepOutcome> {
    let dest = destination.map_or_else(|| default_destination(path), clean_relative);
    let copied = copy_out(ctx, "store_artifacts", path, Path::new(&dest)).await?;
    if ctx.cancel.is_cancelled() {
        return Ok(StepOutcome::Cancelled);
    }
    if let Some(copied) = copied {
        ctx.events.info(format!(
            "Stored {} file(s) of {path} in {}",
            copied.files,
            copied.place.display()
        ));
    }
    Ok(StepOutcome::Passed { exit_code: None })
}

pub async fn store_test_results(ctx: &StepContext, path: &str) -> Result<StepOutcome> {
    let rel = PathBuf::from(default_destination(path));
    let copied = copy_out(ctx, "store_test_results", path, &rel).await?;
    if ctx.cancel.is_cancelled() {
        return Ok(StepOutcome::Cancelled);
    }
    let Some(copied) = copied else {
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
    ctx.events.send(crate::report::Event::TestSummary {
        job: ctx.events.job(),
        counts: crate::report::TestCounts {
            tests: s.passed + s.failed + s.errors + s.skipped,
            failures: s.failed,
            errors: s.errors,
            skipped: s.skipped,
        },
    });
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

/// Downloads `path` from the container and puts it at `rel` in the artifacts folder (replacing
/// an earlier copy). `None` (after a warning) when there is nothing to copy or copying failed,
/// and (silently) after Ctrl-C, which the caller reads from `ctx.cancel`.
async fn copy_out(ctx: &StepContext, step: &str, path: &str, rel: &Path) -> Result<Option<Copied>> {
    let source = ctx.facts.resolve(path);
    let moment = if step == "store_artifacts" {
        Moment::Artifacts
    } else {
        Moment::TestResults
    };
    let stream = match ctx.backend.download(&ctx.primary, &source).await {
        Ok(s) => tarball::cancellable(hold::stream(moment, &ctx.events, s), ctx.cancel.clone()),
        Err(BackendError::NotFound(_)) => {
            ctx.events.warning(format!(
                "{step}: {source} does not exist; nothing was stored"
            ));
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    let base = source.rsplit('/').next().unwrap_or_default().to_string();
    let (artifacts, trusted) = (ctx.settings.artifacts_dir.clone(), trusted_root(ctx));
    let rel_owned = rel.to_path_buf();
    // Not raced against Ctrl-C: the stream fails at once when cancelled, and waiting for the
    // extraction to stop lets its staging folder be removed before the run ends.
    let result = tokio::task::spawn_blocking(move || {
        let root = SafeDir::create(&artifacts, &trusted)?;
        extract_to(blocking_reader(stream), &base, root, &rel_owned)
    })
    .await
    .map_err(|e| BackendError::Api(e.to_string()))?;
    match result {
        Ok((files, removed)) => {
            if removed > 0 {
                ctx.events.info(format!(
                    "Removed {removed} unfinished copy folder(s) left by earlier runs"
                ));
            }
            Ok(Some(Copied {
                place: ctx.settings.artifacts_dir.join(rel),
                files,
            }))
        }
        Err(_) if ctx.cancel.is_cancelled() => Ok(None),
        Err(e) => {
            ctx.events
                .warning(format!("{step}: cannot copy {source}: {e}"));
            Ok(None)
        }
    }
}

/// Below this folder, no symlink is followed: the repository (whose content is anyone's),
/// else the folder localci runs in.
fn trusted_root(ctx: &StepContext) -> PathBuf {
    ctx.plan
        .git
        .root
        .clone()
        .or_else(|| std::env::current_dir().ok())
        .unwrap_or_else(|| PathBuf::from("/"))
}

/// Extracts into a staging folder in `root`, then moves the downloaded item to `rel`, so a
/// failed copy never leaves half a result where the previous one was. Returns the files
/// copied and the staging folders of dead runs that were removed.
fn extract_to(
    reader: impl io::Read,
    base: &str,
    root: SafeDir,
    rel: &Path,
) -> io::Result<(usize, usize)> {
    let name = rel
        .file_name()
        .ok_or_else(|| io::Error::other("the destination has no name"))?
        .to_os_string();
    let parent = root.create_dirs(rel.parent().unwrap_or(Path::new("")))?;
    let (stage, removed) = Stage::begin(root)?;
    let files = extract_into(reader, stage.dir())?;
    stage.publish(OsStr::new(base), &parent, &name)?;
    Ok((files.len(), removed))
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
        let root = SafeDir::open_anchor(dir.path()).unwrap();
        assert_eq!(
            extract_to(&data[..], "results", root, Path::new("out")).unwrap(),
            (1, 0)
        );
        assert_eq!(std::fs::read_to_string(place.join("a.txt")).unwrap(), "hi");
        assert!(!place.join("old").exists());
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "no staging folder is left");
    }

    // See: issue 9, finding 1 (a symlink planted on the way led the copy out of the folder).
    #[test]
    fn a_symlink_on_the_way_is_refused_and_nothing_outside_changes() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("authorized_keys"), "mine").unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("sub")).unwrap();
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(2);
        h.set_mode(0o644);
        b.append_data(&mut h, "keys", &b"hi"[..]).unwrap();
        let data = b.into_inner().unwrap();
        let open = || SafeDir::open_anchor(dir.path()).unwrap();
        let err =
            extract_to(&data[..], "keys", open(), Path::new("sub/authorized_keys")).unwrap_err();
        assert!(err.to_string().contains("sub is a symlink"), "{err}");
        // A link in the final place is replaced itself, never followed.
        extract_to(&data[..], "keys", open(), Path::new("sub")).unwrap();
        assert!(dir.path().join("sub").is_file());
        assert_eq!(
            std::fs::read_to_string(outside.path().join("authorized_keys")).unwrap(),
            "mine"
        );
    }
}
