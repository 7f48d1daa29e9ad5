//! The environment of a job, layered with CircleCI's precedence (highest first): variables set
//! by the command itself, `run.environment`, job `environment`, built-in `CIRCLE_*` variables,
//! context and project variables (here: `--env-file` and `-e`). The primary image's own
//! `environment` is the container's environment, below all of these. Pure.

use std::collections::BTreeMap;

use serde::Serialize;

/// The layers, each in the order written; later entries of a layer win.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Layers {
    /// `--env-file` then `-e`, standing in for project variables.
    pub project: Vec<(String, String)>,
    /// `CI`, `CIRCLECI`, `CIRCLE_*`, `BASH_ENV`, `CIRCLE_SHELL_ENV`.
    pub builtin: Vec<(String, String)>,
    /// The job's `environment`.
    pub job: Vec<(String, String)>,
}

impl Layers {
    /// The variables a step sees, given its own `environment`.
    pub fn for_step(&self, step: &[(String, String)]) -> Vec<(String, String)> {
        let mut merged: BTreeMap<&str, &str> = BTreeMap::new();
        for (k, v) in self
            .project
            .iter()
            .chain(&self.builtin)
            .chain(&self.job)
            .chain(step)
        {
            merged.insert(k, v);
        }
        merged
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// What `{{ .Environment.X }}` sees in cache keys: built-ins and project variables only,
    /// never the config's `environment:` (CircleCI reference).
    pub fn for_templates(&self) -> BTreeMap<String, String> {
        self.project
            .iter()
            .chain(&self.builtin)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// One variable as steps see it.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.job
            .iter()
            .rev()
            .chain(self.builtin.iter().rev())
            .chain(self.project.iter().rev())
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Facts the built-in variables are made of.
pub(crate) struct BuiltinFacts<'a> {
    pub(crate) job: &'a str,
    pub(crate) working_directory: &'a str,
    pub(crate) branch: Option<&'a str>,
    pub(crate) tag: Option<&'a str>,
    pub(crate) revision: Option<&'a str>,
    pub(crate) repository_url: Option<&'a str>,
    pub(crate) project: (&'a str, &'a str),
    pub(crate) node_index: u32,
    pub(crate) node_total: u32,
    pub(crate) bash_env: &'a str,
}

/// The built-ins, as the old local CLI printed them (`CIRCLE_BUILD_NUM` empty locally).
pub(crate) fn builtins(f: &BuiltinFacts<'_>) -> Vec<(String, String)> {
    let mut vars = vec![
        ("CI", "true".to_string()),
        ("CIRCLECI", "true".to_string()),
        ("CIRCLE_JOB", f.job.to_string()),
        ("CIRCLE_BUILD_NUM", String::new()),
        ("CIRCLE_NODE_INDEX", f.node_index.to_string()),
        ("CIRCLE_NODE_TOTAL", f.node_total.to_string()),
        ("CIRCLE_WORKING_DIRECTORY", f.working_directory.to_string()),
        ("CIRCLE_PROJECT_USERNAME", f.project.0.to_string()),
        ("CIRCLE_PROJECT_REPONAME", f.project.1.to_string()),
        ("BASH_ENV", f.bash_env.to_string()),
        ("CIRCLE_SHELL_ENV", f.bash_env.to_string()),
    ];
    let optional = [
        ("CIRCLE_BRANCH", f.branch),
        ("CIRCLE_TAG", f.tag),
        ("CIRCLE_SHA1", f.revision),
        ("CIRCLE_REPOSITORY_URL", f.repository_url),
    ];
    vars.extend(
        optional
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k, v.to_string()))),
    );
    vars.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn higher_layers_win() {
        let layers = Layers {
            project: pairs(&[
                ("A", "project"),
                ("B", "project"),
                ("C", "project"),
                ("D", "p"),
            ]),
            builtin: pairs(&[("B", "builtin"), ("C", "builtin")]),
            job: pairs(&[("C", "job"), ("E", "job")]),
        };
        let env = layers.for_step(&pairs(&[("E", "step")]));
        assert_eq!(
            env,
            pairs(&[
                ("A", "project"),
                ("B", "builtin"),
                ("C", "job"),
                ("D", "p"),
                ("E", "step")
            ])
        );
        assert_eq!(layers.get("C"), Some("job"));
        let templates = layers.for_templates();
        assert_eq!(templates.get("C").map(String::as_str), Some("builtin"));
        assert!(
            !templates.contains_key("E"),
            "job environment is not visible to templates"
        );
    }
}
