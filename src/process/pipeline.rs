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
        use PipelineValue::{Absent, Bool, Int, Str};
        let text = |v: &Option<String>| v.clone().map_or(Absent, Str);
        let (user, repo) = info.project_slug();
        let host = match info.vcs_type() {
            "bitbucket" => "bitbucket.org",
            "gitlab" => "gitlab.com",
            _ => "github.com",
        };
        let revision = text(&info.revision);
        let is_default = info
            .branch
            .as_deref()
            .is_some_and(|b| b == "main" || b == "master");
        let entries = [
            ("pipeline.id", Str(LOCAL_PIPELINE_ID.into())),
            ("pipeline.number", Int(1)),
            (
                "pipeline.project.git_url",
                Str(format!("https://{host}/{user}/{repo}")),
            ),
            ("pipeline.project.type", Str(info.vcs_type().into())),
            ("pipeline.git.branch", text(&info.branch)),
            ("pipeline.git.branch.is_default", Bool(is_default)),
            ("pipeline.git.tag", text(&info.tag)),
            ("pipeline.git.revision", revision.clone()),
            ("pipeline.git.base_revision", revision),
            ("pipeline.git.commit.subject", Absent),
            ("pipeline.git.commit.body", Absent),
            ("pipeline.git.commit.author_name", Absent),
            ("pipeline.git.commit.author_email", Absent),
            ("pipeline.git.commit.author_avatar_url", Absent),
            ("pipeline.git.commit.url", Absent),
            ("pipeline.git.repo_name", Str(repo.clone())),
            ("pipeline.git.repo_owner", Str(user.clone())),
            ("pipeline.trigger_source", Str("webhook".into())),
            ("pipeline.trigger.type", Str("webhook".into())),
            ("pipeline.event.name", Str("push".into())),
            ("pipeline.schedule.name", Absent),
            ("pipeline.schedule.id", Absent),
        ];
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

    /// The value named `key` (full name, `pipeline.git.branch`).
    pub fn get(&self, key: &str) -> Option<&PipelineValue> {
        self.values.get(key)
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
