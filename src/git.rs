//! Facts about the local git repository (branch, tag, revision, remote), read once through the
//! `git` command. They feed pipeline values (`process`) and the `CIRCLE_*` variables (`execute`).

use std::path::{Path, PathBuf};
use std::process::Command;

/// What localci knows about the repository a config lives in. Every field is optional: a
/// config outside any repository still validates and processes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RepoInfo {
    pub root: Option<PathBuf>,
    pub branch: Option<String>,
    pub tag: Option<String>,
    pub revision: Option<String>,
    pub remote_url: Option<String>,
    /// The commit at HEAD (`pipeline.git.commit.*`).
    pub commit: Option<CommitInfo>,
}

/// What `git log -1` says about the commit at HEAD.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CommitInfo {
    pub subject: String,
    pub body: String,
    pub author_name: String,
    pub author_email: String,
}

impl CommitInfo {
    /// Fields separated by NUL: author name, author email, subject, body.
    fn parse(log: &str) -> Option<CommitInfo> {
        let mut fields = log.splitn(4, '\0');
        Some(CommitInfo {
            author_name: fields.next()?.to_string(),
            author_email: fields.next()?.to_string(),
            subject: fields.next()?.to_string(),
            body: fields.next().unwrap_or("").trim().to_string(),
        })
    }
}

impl RepoInfo {
    /// Reads the repository that contains `dir`. Branch builds have no tag; a detached HEAD that
    /// sits exactly on a tag is a tag build.
    pub fn discover(dir: &Path) -> RepoInfo {
        let git = |args: &[&str]| run_git(dir, args);
        // The questions do not depend on each other: asked at once, they cost one git start-up
        // on the way to every command (issue 10, speed). Whether `dir` is in a repository at
        // all is the first answer's first line.
        let (top, branch, origin, log) = std::thread::scope(|s| {
            let branch = s.spawn(|| git(&["symbolic-ref", "--short", "-q", "HEAD"]));
            let origin = s.spawn(|| git(&["remote", "get-url", "origin"]));
            let log = s.spawn(|| git(&["log", "-1", "--format=%an%x00%ae%x00%s%x00%b"]));
            // The top folder, then HEAD's commit (none before the first commit).
            let top = git_lines(
                dir,
                &["rev-parse", "--show-toplevel", "--verify", "-q", "HEAD"],
            );
            let joined =
                |h: std::thread::ScopedJoinHandle<'_, Option<String>>| h.join().unwrap_or_default();
            (top, joined(branch), joined(origin), joined(log))
        });
        let mut top = top.lines().map(str::trim).filter(|l| !l.is_empty());
        let Some(root) = top.next().map(str::to_string) else {
            return RepoInfo::default();
        };
        let revision = top.next().map(str::to_string);
        let tag = if branch.is_none() {
            git(&["describe", "--tags", "--exact-match", "HEAD"])
        } else {
            None
        };
        let remote_url = origin.or_else(|| {
            let first = git(&["remote"])?.lines().next()?.to_string();
            git(&["remote", "get-url", &first])
        });
        RepoInfo {
            root: Some(PathBuf::from(root)),
            branch,
            tag,
            revision,
            remote_url,
            commit: log.and_then(|log| CommitInfo::parse(&log)),
        }
    }

    /// `(username, reponame)` from the remote URL: `git@github.com:org/repo.git` and
    /// `https://github.com/org/repo` both give `("org", "repo")`. Falls back to the folder name.
    pub fn project_slug(&self) -> (String, String) {
        if let Some(url) = &self.remote_url {
            let trimmed = url.trim_end_matches('/').trim_end_matches(".git");
            let mut parts = trimmed.rsplit(['/', ':']);
            if let (Some(repo), Some(user)) = (parts.next(), parts.next())
                && !repo.is_empty()
                && !user.is_empty()
                && !user.contains('@')
            {
                return (user.to_string(), repo.to_string());
            }
        }
        let folder = self.root.as_deref().and_then(Path::file_name).map_or_else(
            || "project".to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        ("local".to_string(), folder)
    }

    /// `github`, `bitbucket` or `gitlab` from the remote host; `github` when unknown.
    pub fn vcs_type(&self) -> &'static str {
        match self.remote_url.as_deref() {
            Some(u) if u.contains("bitbucket") => "bitbucket",
            Some(u) if u.contains("gitlab") => "gitlab",
            _ => "github",
        }
    }
}

/// The `git ls-files` arguments that list the files of a checkout: tracked, and untracked
/// that are not ignored, NUL separated, relative to the repository's root.
pub(crate) const CHECKOUT_FILES: [&str; 5] = [
    "ls-files",
    "-z",
    "--cached",
    "--others",
    "--exclude-standard",
];

/// The paths [`CHECKOUT_FILES`] printed, each once, without localci's own `.localci` folder
/// (its output is not part of the project).
pub(crate) fn checkout_paths(listed: &[u8]) -> Vec<PathBuf> {
    let mut seen = std::collections::HashSet::new();
    listed
        .split(|&b| b == 0)
        .filter(|p| !p.is_empty())
        .map(|p| PathBuf::from(String::from_utf8_lossy(p).into_owned()))
        .filter(|p| !p.starts_with(".localci"))
        .filter(|p| seen.insert(p.clone()))
        .collect()
}

/// What git printed, also when it failed (`rev-parse` prints the top folder before it fails on
/// a repository without commits); empty when it could not run.
fn git_lines(dir: &Path, args: &[&str]) -> String {
    Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .unwrap_or_default()
}

fn run_git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!text.is_empty()).then_some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slug_from_ssh_and_https_remotes() {
        let info = |url: &str| RepoInfo {
            remote_url: Some(url.into()),
            ..RepoInfo::default()
        };
        assert_eq!(
            info("git@github.com:org/repo.git").project_slug(),
            ("org".into(), "repo".into())
        );
        assert_eq!(
            info("https://github.com/org/repo/").project_slug(),
            ("org".into(), "repo".into())
        );
    }

    #[test]
    fn reads_a_real_repository() {
        let dir = tempfile::tempdir().unwrap();
        let git = |args: &[&str]| crate::test_support::git(dir.path(), args);
        git(&["init", "-q", "-b", "main"]);
        git(&["commit", "-q", "--allow-empty", "-m", "x"]);
        git(&["remote", "add", "origin", "git@github.com:acme/widget.git"]);
        let info = RepoInfo::discover(dir.path());
        assert_eq!(info.branch.as_deref(), Some("main"));
        assert_eq!(info.revision.as_ref().map(String::len), Some(40));
        assert_eq!(info.project_slug(), ("acme".into(), "widget".into()));
        let commit = info.commit.expect("HEAD has a commit");
        assert_eq!(
            (commit.subject.as_str(), commit.author_email.as_str()),
            ("x", crate::test_support::AUTHOR_EMAIL)
        );
    }
}
