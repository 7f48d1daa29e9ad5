//! Helpers every test module shares: one way to make a git repository.

use std::path::Path;
use std::process::Command;

/// Runs `git -C dir args...` with a fixed identity and no signing; panics when git fails.
#[track_caller]
pub(crate) fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args([
            "-c",
            "user.email=tests@localci.invalid",
            "-c",
            "user.name=localci tests",
        ])
        .args(["-c", "commit.gpgsign=false"])
        .args(args)
        .output()
        .expect("git is installed");
    assert!(
        out.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `git init -b <branch>` in `dir`.
pub(crate) fn init(dir: &Path, branch: &str) {
    git(dir, &["init", "-q", "-b", branch]);
}

/// Commits everything in `dir` (`git add -A && git commit`).
pub(crate) fn commit_all(dir: &Path, message: &str) {
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-q", "--allow-empty", "-m", message]);
}
