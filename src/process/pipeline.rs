//! Pipeline values (`<< pipeline.git.branch >>`, `pipeline.number` ...): what CircleCI would
//! know about the pipeline, fabricated locally from the git repository the way
//! `circleci config process` does it (`LocalPipelineValues` in circleci-cli), and overridable
//! from the command line.
//!
//! No I/O: the repository facts arrive as a [`RepoInfo`].

use std::collections::BTreeMap;

use crate::git::RepoInfo;

/// The id CircleCI's CLI uses for local pipelines.
const LOCAL_PIPELINE_ID: &str = "00000000-0000-0000-0000-000000000001";

/// Families of pipeline values whose members depend on the trigger (a GitHub App event's
/// payload, an API call's parameters): any name below them is known, and unset locally.
const OPEN_FAMILIES: [&str; 4] = [
    "pipeline.event.github.",
    "pipeline.trigger_parameters.",
    "pipeline.deploy.",
    "pipeline.config.",
];

/// What a name of an [`OPEN_FAMILIES`] member resolves to.
static UNSET: PipelineValue = PipelineValue::Absent;

/// One pipeline value. `Absent` is a value CircleCI declares but leaves unset (the tag of a
/// branch build): it renders as an empty string and is "undefined" inside expressions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PipelineValue {
    Str(String),
    Int(i64),
    Bool(bool),
    Absent,
}

/// Every `pipeline.*` value, keyed by its full name (`pipeline.git.branch`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PipelineValues {
    values: BTreeMap<String, PipelineValue>,
}

impl PipelineValues {
    /// Values for a local run of the repository described by `info`.
    pub fn from_repo(info: &RepoInfo) -> Self {
        let mut entries = project_values(info);
        entries.extend(git_values(info));
        entries.extend(trigger_values());
        PipelineValues {
            values: entries
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
        }
    }

    /// A branch build of `branch` (`--branch`). A tag set before stays.
    pub fn set_branch(&mut self, branch: &str) {
        self.put("pipeline.git.branch", PipelineValue::Str(branch.into()));
        let is_default = branch == "main" || branch == "master";
        self.put(
            "pipeline.git.branch.is_default",
            PipelineValue::Bool(is_default),
        );
    }

    /// A tag build of `tag` (`--tag`): like on CircleCI, the branch is then empty.
    pub fn set_tag(&mut self, tag: &str) {
        self.put("pipeline.git.tag", PipelineValue::Str(tag.into()));
        self.put("pipeline.git.branch", PipelineValue::Absent);
        self.put("pipeline.git.branch.is_default", PipelineValue::Bool(false));
    }

    /// `--pipeline-value key=value`. `key` may omit the `pipeline.` prefix. The text is typed
    /// like the value it replaces (`number=7` is an integer); new keys are strings.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), String> {
        let key = if key.starts_with("pipeline.") {
            key.to_string()
        } else {
            format!("pipeline.{key}")
        };
        let typed = match self.values.get(&key) {
            Some(PipelineValue::Int(_)) => PipelineValue::Int(
                value
                    .parse()
                    .map_err(|_| format!("{key} is a number; {value:?} is not"))?,
            ),
            Some(PipelineValue::Bool(_)) => match value {
                "true" => PipelineValue::Bool(true),
                "false" => PipelineValue::Bool(false),
                _ => return Err(format!("{key} is true or false; {value:?} is neither")),
            },
            _ => PipelineValue::Str(value.to_string()),
        };
        self.values.insert(key, typed);
        Ok(())
    }

    fn put(&mut self, key: &str, value: PipelineValue) {
        self.values.insert(key.to_string(), value);
    }

    /// The value named `key` (full name, `pipeline.git.branch`). A member of an open family
    /// (`pipeline.event.github.pull_request.number`) that was not set is unset, not unknown.
    pub fn get(&self, key: &str) -> Option<&PipelineValue> {
        self.values.get(key).or_else(|| {
            OPEN_FAMILIES
                .iter()
                .any(|f| key.strip_prefix(f).is_some_and(|rest| !rest.is_empty()))
                .then_some(&UNSET)
        })
    }

    /// The branch of the pipeline, when it is a branch build.
    pub fn branch(&self) -> Option<&str> {
        match self.values.get("pipeline.git.branch") {
            Some(PipelineValue::Str(s)) => Some(s),
            _ => None,
        }
    }

    /// The tag of the pipeline, when it is a tag build.
    pub fn tag(&self) -> Option<&str> {
        match self.values.get("pipeline.git.tag") {
            Some(PipelineValue::Str(s)) => Some(s),
            _ => None,
        }
    }

    /// Every value, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &PipelineValue)> {
        self.values.iter().map(|(k, v)| (k.as_str(), v))
    }
}

type Entries = Vec<(&'static str, PipelineValue)>;

fn text(v: Option<&str>) -> PipelineValue {
    v.map_or(PipelineValue::Absent, |s| PipelineValue::Str(s.to_string()))
}

/// The web address of the repository: `https://github.com/org/repo`.
fn repo_url(info: &RepoInfo) -> String {
    let (user, repo) = info.project_slug();
    let host = match info.vcs_type() {
        "bitbucket" => "bitbucket.org",
        "gitlab" => "gitlab.com",
        _ => "github.com",
    };
    format!("https://{host}/{user}/{repo}")
}

/// The pipeline and its project. The project slug is CircleCI's `gh/org/repo` form.
fn project_values(info: &RepoInfo) -> Entries {
    use PipelineValue::{Absent, Int, Str};
    let (user, repo) = info.project_slug();
    let vcs = match info.vcs_type() {
        "bitbucket" => "bb",
        "gitlab" => "gl",
        _ => "gh",
    };
    vec![
        ("pipeline.id", Str(LOCAL_PIPELINE_ID.into())),
        ("pipeline.number", Int(1)),
        ("pipeline.name", Absent),
        ("pipeline.definition.id", Absent),
        ("pipeline.project.git_url", Str(repo_url(info))),
        ("pipeline.project.type", Str(info.vcs_type().into())),
        ("pipeline.project.slug", Str(format!("{vcs}/{user}/{repo}"))),
        ("pipeline.integration_source", Str(info.vcs_type().into())),
    ]
}

/// `pipeline.git.*`: the branch or tag, the revision and the commit at HEAD.
fn git_values(info: &RepoInfo) -> Entries {
    use PipelineValue::{Absent, Bool, Str};
    let (user, repo) = info.project_slug();
    let is_default = info
        .branch
        .as_deref()
        .is_some_and(|b| b == "main" || b == "master");
    let commit = info.commit.clone().unwrap_or_default();
    let filled = |s: String| if s.is_empty() { Absent } else { Str(s) };
    let commits = if info.vcs_type() == "bitbucket" {
        "commits"
    } else {
        "commit"
    };
    let commit_url = info
        .revision
        .as_ref()
        .map_or(Absent, |r| Str(format!("{}/{commits}/{r}", repo_url(info))));
    vec![
        ("pipeline.git.branch", text(info.branch.as_deref())),
        ("pipeline.git.branch.is_default", Bool(is_default)),
        ("pipeline.git.tag", text(info.tag.as_deref())),
        ("pipeline.git.revision", text(info.revision.as_deref())),
        ("pipeline.git.base_revision", text(info.revision.as_deref())),
        ("pipeline.git.repo_url", Str(repo_url(info))),
        ("pipeline.git.repo_name", Str(repo)),
        ("pipeline.git.repo_owner", Str(user)),
        ("pipeline.git.repo_id", Absent),
        ("pipeline.git.commit.url", commit_url),
        ("pipeline.git.commit.subject", filled(commit.subject)),
        ("pipeline.git.commit.body", filled(commit.body)),
        (
            "pipeline.git.commit.author_name",
            filled(commit.author_name),
        ),
        (
            "pipeline.git.commit.author_email",
            filled(commit.author_email),
        ),
        ("pipeline.git.commit.author_login", Absent),
        ("pipeline.git.commit.author_avatar_url", Absent),
    ]
}

/// What triggered the pipeline: locally, a push webhook.
fn trigger_values() -> Entries {
    use PipelineValue::{Absent, Str};
    vec![
        ("pipeline.trigger_source", Str("webhook".into())),
        ("pipeline.trigger.id", Absent),
        ("pipeline.trigger.type", Str("webhook".into())),
        ("pipeline.event.name", Str("push".into())),
        ("pipeline.event.action", Absent),
        ("pipeline.schedule.name", Absent),
        ("pipeline.schedule.id", Absent),
    ]
}

impl Default for PipelineValues {
    /// The values of a config outside any git repository.
    fn default() -> Self {
        Self::from_repo(&RepoInfo::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_builds_have_no_branch() {
        let mut v = PipelineValues::from_repo(&RepoInfo {
            branch: Some("main".into()),
            ..RepoInfo::default()
        });
        assert_eq!(v.branch(), Some("main"));
        v.set_tag("v1.2.0");
        assert_eq!(v.branch(), None);
        assert_eq!(v.tag(), Some("v1.2.0"));
    }

    #[test]
    fn newer_values_from_git() {
        let v = PipelineValues::from_repo(&RepoInfo {
            revision: Some("abc".into()),
            remote_url: Some("git@github.com:acme/widget.git".into()),
            commit: Some(crate::git::CommitInfo {
                subject: "Fix it".into(),
                author_name: "Ann".into(),
                ..Default::default()
            }),
            ..RepoInfo::default()
        });
        let s = |k: &str| v.get(k).cloned();
        let text = |t: &str| Some(PipelineValue::Str(t.into()));
        assert_eq!(s("pipeline.project.slug"), text("gh/acme/widget"));
        assert_eq!(
            s("pipeline.git.commit.url"),
            text("https://github.com/acme/widget/commit/abc")
        );
        assert_eq!(s("pipeline.git.commit.subject"), text("Fix it"));
        assert_eq!(s("pipeline.git.commit.author_name"), text("Ann"));
        assert_eq!(s("pipeline.git.commit.body"), Some(PipelineValue::Absent));
        assert_eq!(
            s("pipeline.event.github.pull_request.number"),
            Some(PipelineValue::Absent)
        );
        assert_eq!(s("pipeline.event.github."), None);
        assert_eq!(s("pipeline.git.brnch"), None);
    }

    #[test]
    fn overrides_keep_the_type() {
        let mut v = PipelineValues::default();
        v.set("number", "42").unwrap();
        assert_eq!(v.get("pipeline.number"), Some(&PipelineValue::Int(42)));
        assert!(v.set("pipeline.number", "x").is_err());
        v.set("trigger_parameters.gitlab.branch", "dev").unwrap();
        assert_eq!(
            v.get("pipeline.trigger_parameters.gitlab.branch"),
            Some(&PipelineValue::Str("dev".into()))
        );
    }
}
