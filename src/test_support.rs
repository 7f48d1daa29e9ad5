//! Helpers the unit tests share: one way to make a git repository.

use std::path::Path;
use std::process::Command;

/// The author email of commits made by [`git`].
pub(crate) const AUTHOR_EMAIL: &str = "tests@localci.invalid";

/// Runs `git -C dir args...` with a fixed identity and no signing; panics when git fails.
#[track_caller]
pub(crate) fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", &format!("user.email={AUTHOR_EMAIL}")])
        .args([
            "-c",
            "user.name=localci tests",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(args)
        .output()
        .expect("git is installed");
    assert!(
        out.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
