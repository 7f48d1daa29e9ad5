//! The config version and what it allows: 2.1-only features (orbs, commands, executors,
//! parameters, job `executor:`, matrix) in a `version: 2` config, and the `version: 2` that
//! 2.0 workflows need. A malformed or missing version is the schema's to report.

use super::ctx::Ctx;
use crate::diagnostic::Diagnostic;
use crate::yaml::{Entry, Kind, Node, pointer_token};

/// Top-level keys that exist only in 2.1.
const TOP_LEVEL: [&str; 5] = ["orbs", "commands", "executors", "parameters", "setup"];

/// Which language the config is written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Version {
    V20,
    V21,
    /// Missing or malformed: checked as 2.1, the schema reports the version itself.
    Unknown,
}

impl Version {
    pub(crate) fn of(root: &Node) -> Version {
        let Some(value) = root.get("version") else {
            return Version::Unknown;
        };
        let text = match &value.kind {
            Kind::Str(s) => s.clone(),
            Kind::Int(_) | Kind::Float(_) => value.scalar_text().unwrap_or_default(),
            _ => return Version::Unknown,
        };
        match text.as_str() {
            "2" | "2.0" => Version::V20,
            "2.1" => Version::V21,
            _ => Version::Unknown,
        }
    }
}

pub(crate) fn check(cx: &mut Ctx<'_>, version: Version) {
    if version != Version::V20 {
        return;
    }
    let Some(root) = cx.model.root.as_map() else {
        return;
    };
    for entry in root
        .entries
        .iter()
        .filter(|e| TOP_LEVEL.contains(&e.key.as_str()))
    {
        feature(
            cx,
            entry,
            &format!("/{}", entry.key),
            &format!("`{}`", entry.key),
        );
    }
    if let Some(jobs) = root.get("jobs").and_then(Node::as_map) {
        for job in &jobs.entries {
            let ptr = format!("/jobs/{}", pointer_token(&job.key));
            for key in ["parameters", "executor"] {
                if let Some(e) = job.value.as_map().and_then(|m| m.entry(key)) {
                    feature(cx, e, &format!("{ptr}/{key}"), &format!("job `{key}`"));
                }
            }
        }
    }
    if let Some(workflows) = root.entry("workflows") {
        workflows_version(cx, workflows);
    }
}

fn feature(cx: &mut Ctx<'_>, entry: &Entry, ptr: &str, what: &str) {
    cx.push(
        Diagnostic::error(
            entry.key_span,
            format!("{what} needs `version: 2.1`, but this config is version 2"),
        )
        .with_hint("change the config's first line to `version: 2.1`")
        .with_pointer(ptr),
    );
}

/// A 2.0 config's workflows need `version: 2` under `workflows:`.
fn workflows_version(cx: &mut Ctx<'_>, workflows: &Entry) {
    let Some(map) = workflows.value.as_map() else {
        return;
    };
    if map.contains_key("version") {
        return;
    }
    cx.push(
        Diagnostic::error(workflows.key_span, "a version 2 config needs `version: 2` under `workflows:`")
            .with_hint("add `version: 2` as the first key under `workflows:`, or switch the config to `version: 2.1`")
            .with_pointer("/workflows"),
    );
}

#[cfg(test)]
mod tests {
    use super::Version;
    use crate::source::{FileId, Source};

    fn version(yaml: &str) -> Version {
        let source = Source::new("x.yml", yaml.to_string());
        Version::of(&crate::yaml::parse(&source, FileId(0)).expect("valid YAML"))
    }

    #[test]
    fn reads_numbers_and_strings() {
        assert_eq!(version("version: 2"), Version::V20);
        assert_eq!(version("version: 2.0"), Version::V20);
        assert_eq!(version("version: '2.0'"), Version::V20);
        assert_eq!(version("version: 2.1"), Version::V21);
        assert_eq!(version("version: \"2.1\""), Version::V21);
        assert_eq!(version("version: 2.1,"), Version::Unknown);
        assert_eq!(version("jobs: {}"), Version::Unknown);
    }
}
