//! Steps in one canonical form: every short form (`- checkout`, `- run: make`), the
//! deprecated `deploy` and the legacy 2.0 forms (`- type: shell`, `checkout: {post: [...]}`)
//! become the same [`Step`] a long form would give. No execution here.
//!
//! It also holds the step catalogue ([`BUILT_IN_STEPS`] and the legacy spellings): `validate`,
//! `process` and this parser all read it, so a step is known to all three or to none.

use std::time::Duration;

use serde::Serialize;

use super::read::{Reader, child, index};
use crate::source::Span;
use crate::yaml::{Entry, Kind, Map, Node};

/// Every step CircleCI knows without a definition (configuration reference, "steps"). In 2.1,
/// user and orb commands shadow them.
pub(crate) const BUILT_IN_STEPS: [&str; 12] = [
    "run",
    "checkout",
    "setup_remote_docker",
    "save_cache",
    "restore_cache",
    "store_artifacts",
    "store_test_results",
    "persist_to_workspace",
    "attach_workspace",
    "add_ssh_keys",
    "deploy",
    "install_signing_bundle",
];

/// Built-in steps that cannot be written bare because they need keys, and which keys.
pub(crate) const STEPS_NEEDING_KEYS: [(&str, &str); 6] = [
    ("save_cache", "`key` and `paths`"),
    ("restore_cache", "`key` or `keys`"),
    ("store_artifacts", "`path`"),
    ("store_test_results", "`path`"),
    ("persist_to_workspace", "`root` and `paths`"),
    ("attach_workspace", "`at`"),
];

/// 2.0 step names that 2.1 dropped, and the built-in step each stands for.
pub(crate) const LEGACY_2_0_STEPS: [(&str, &str); 2] = [
    ("shell", "run"),
    ("setup_docker_engine", "setup_remote_docker"),
];

/// The `type:` values of the 2.0-beta step maps (`- type: shell` with `command:` beside it),
/// and the built-in step each stands for. CircleCI still runs configs written this way
/// (circleci-semantics.md 4.1, "Legacy forms").
pub(crate) const LEGACY_STEP_TYPES: [(&str, &str); 8] = [
    ("shell", "run"),
    ("checkout", "checkout"),
    ("cache-save", "save_cache"),
    ("cache-restore", "restore_cache"),
    ("artifacts-store", "store_artifacts"),
    ("test-results-store", "store_test_results"),
    ("deploy", "deploy"),
    ("add-ssh-keys", "add_ssh_keys"),
];

/// Whether `name` is a built-in step of every version.
pub(crate) fn is_built_in(name: &str) -> bool {
    BUILT_IN_STEPS.contains(&name)
}

/// The built-in step a 2.0 name stands for: itself, or what a dropped 2.0 name meant.
pub(crate) fn built_in_2_0(name: &str) -> Option<&str> {
    if is_built_in(name) {
        return Some(name);
    }
    LEGACY_2_0_STEPS
        .iter()
        .find(|(old, _)| *old == name)
        .map(|(_, new)| *new)
}

/// The built-in step a legacy `type:` step map stands for, when `map` is one: a map with a
/// string `type` naming a legacy step type. (A command called `type` takes a map, so a string
/// there cannot be a command invocation.)
pub(crate) fn legacy_step_type(map: &Map) -> Option<&'static str> {
    let kind = map.get("type")?.as_str()?;
    LEGACY_STEP_TYPES
        .iter()
        .find(|(legacy, _)| *legacy == kind)
        .map(|(_, step)| *step)
}

/// When a step runs, relative to the job's state so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum When {
    #[default]
    OnSuccess,
    OnFail,
    Always,
}

/// One step of a job.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Step {
    /// The `name:` written in the config, if any.
    pub name: Option<String>,
    pub when: When,
    pub kind: StepKind,
    #[serde(skip)]
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StepKind {
    Run(Run),
    Checkout {
        path: Option<String>,
        method: Option<String>,
    },
    SaveCache {
        key: String,
        paths: Vec<String>,
    },
    RestoreCache {
        /// `key` first, then `keys`, in the order they are tried.
        keys: Vec<String>,
    },
    StoreArtifacts {
        path: String,
        destination: Option<String>,
    },
    StoreTestResults {
        path: String,
    },
    PersistToWorkspace {
        root: String,
        paths: Vec<String>,
    },
    AttachWorkspace {
        at: String,
    },
    AddSshKeys {
        fingerprints: Vec<String>,
    },
    SetupRemoteDocker {
        version: Option<String>,
    },
    /// macOS only: installs the signing bundles of `macos.code_signing`.
    InstallSigningBundle,
}

/// A `run` (or `deploy`) step.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Run {
    pub command: String,
    pub shell: Option<String>,
    pub environment: Vec<(String, String)>,
    pub working_directory: Option<String>,
    pub background: bool,
    pub no_output_timeout: Option<Duration>,
    pub max_auto_reruns: u32,
    pub auto_rerun_delay: Option<Duration>,
}

impl Step {
    /// The name shown in the log: the `name:`, else CircleCI's default for the step type.
    pub fn display_name(&self) -> String {
        if let Some(name) = &self.name {
            return name.clone();
        }
        match &self.kind {
            StepKind::Run(run) => run.command.trim_end().to_string(),
            StepKind::Checkout { .. } => "Checkout code".into(),
            StepKind::SaveCache { .. } => "Saving Cache".into(),
            StepKind::RestoreCache { .. } => "Restoring Cache".into(),
            StepKind::StoreArtifacts { .. } => "Uploading artifacts".into(),
            StepKind::StoreTestResults { .. } => "Uploading test results".into(),
            StepKind::PersistToWorkspace { .. } => "Persisting to Workspace".into(),
            StepKind::AttachWorkspace { .. } => "Attaching Workspace".into(),
            StepKind::AddSshKeys { .. } => "Install SSH keys".into(),
            StepKind::SetupRemoteDocker { .. } => "Setup a remote Docker engine".into(),
            StepKind::InstallSigningBundle => "Install signing bundle".into(),
        }
    }
}

/// Reads a job's `steps:` list.
pub(crate) fn parse_steps(r: &mut Reader, node: &Node, pointer: &str) -> Vec<Step> {
    let Some(items) = node.as_seq() else {
        r.error(node, pointer, "`steps` must be a list of steps");
        return Vec::new();
    };
    let mut steps = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let pointer = index(pointer, i);
        if let Some(step) = parse_step(r, item, &pointer) {
            let post = checkout_post(r, item, &pointer);
            steps.push(step);
            steps.extend(post);
        }
    }
    steps
}

fn parse_step(r: &mut Reader, node: &Node, pointer: &str) -> Option<Step> {
    match &node.kind {
        Kind::Str(name) => bare_step(r, node, pointer, name),
        Kind::Map(map) if map.len() == 1 && legacy_step_type(map).is_none() => {
            let entry = &map.entries[0];
            step_with_body(r, &entry.key, &entry.value, &child(pointer, &entry.key)).map(|step| {
                Step {
                    span: node.span,
                    ..step
                }
            })
        }
        Kind::Map(map) if legacy_step_type(map).is_some() => legacy_step(r, node, map, pointer),
        Kind::Map(_) => {
            r.error_hint(
                node,
                pointer,
                "a step must be a map with exactly one key (the step type)",
                "check the indentation: the step's options belong under its type",
            );
            None
        }
        _ => {
            r.error(
                node,
                pointer,
                format!("a step cannot be a {}", node.type_name()),
            );
            None
        }
    }
}

/// `- type: shell` with the step's keys beside `type`: the 2.0-beta spelling of a step map.
fn legacy_step(r: &mut Reader, node: &Node, map: &Map, pointer: &str) -> Option<Step> {
    let kind = legacy_step_type(map).expect("checked by the caller");
    let keys: Vec<Entry> = map
        .entries
        .iter()
        .filter(|e| e.key != "type")
        .cloned()
        .collect();
    let body = Node::new(node.span, Kind::Map(Map::from_entries(keys)));
    let step = step_with_body(r, kind, &body, pointer)?;
    Some(Step {
        span: node.span,
        ..step
    })
}

/// The commands of a legacy `checkout: {post: [...]}`, which run right after the checkout
/// (the 2.0-beta form CircleCI still accepts), as `run` steps.
fn checkout_post(r: &mut Reader, step: &Node, pointer: &str) -> Vec<Step> {
    let Some(post) = step.get("checkout").and_then(|c| c.get("post")) else {
        return Vec::new();
    };
    let pointer = child(&child(pointer, "checkout"), "post");
    let commands = match post.kind {
        Kind::Seq(_) => r.strings(post, &pointer, "a command"),
        _ => r.text(post, &pointer, "`post`").into_iter().collect(),
    };
    commands
        .into_iter()
        .map(|command| Step {
            name: None,
            when: When::OnSuccess,
            kind: StepKind::Run(Run::new(command)),
            span: post.span,
        })
        .collect()
}

/// `- checkout`, `- setup_remote_docker`, `- add_ssh_keys`, `- install_signing_bundle`.
fn bare_step(r: &mut Reader, node: &Node, pointer: &str, name: &str) -> Option<Step> {
    let kind = match built_in_2_0(name).unwrap_or(name) {
        "checkout" => StepKind::Checkout {
            path: None,
            method: None,
        },
        "setup_remote_docker" => StepKind::SetupRemoteDocker { version: None },
        "add_ssh_keys" => StepKind::AddSshKeys {
            fingerprints: Vec::new(),
        },
        "install_signing_bundle" => StepKind::InstallSigningBundle,
        _ => {
            unknown_step(r, node, pointer, name);
            return None;
        }
    };
    Some(Step {
        name: None,
        when: default_when(&kind),
        kind,
        span: node.span,
    })
}

fn unknown_step(r: &mut Reader, node: &Node, pointer: &str, name: &str) {
    let hint = if matches!(name, "when" | "unless" | "steps") || built_in_2_0(name).is_none() {
        "commands, orbs and `when`/`unless` steps belong to version 2.1 configs; in a 2.0 (processed) config only built-in steps exist"
    } else {
        "write the step as a map: `- <type>: {...}`"
    };
    r.error_hint(node, pointer, format!("unknown step `{name}`"), hint);
}

/// `store_artifacts` and `store_test_results` run after failures too (CircleCI reference).
fn default_when(kind: &StepKind) -> When {
    match kind {
        StepKind::StoreArtifacts { .. } | StepKind::StoreTestResults { .. } => When::Always,
        _ => When::OnSuccess,
    }
}

fn step_with_body(r: &mut Reader, kind: &str, body: &Node, pointer: &str) -> Option<Step> {
    let kind = built_in_2_0(kind).unwrap_or(kind);
    if (kind == "run" || kind == "deploy") && !matches!(body.kind, Kind::Map(_)) {
        let command = r.text(body, pointer, "a `run` command")?;
        return Some(Step {
            name: None,
            when: When::OnSuccess,
            kind: StepKind::Run(Run::new(command)),
            span: body.span,
        });
    }
    let empty = Node::new(body.span, Kind::Map(Default::default()));
    let body = if body.is_null() { &empty } else { body };
    if body.as_map().is_none() {
        r.error(
            body,
            pointer,
            format!("the options of `{kind}` must be a map"),
        );
        return None;
    }
    let parsed = match kind {
        "run" | "deploy" => parse_run(r, body, pointer).map(StepKind::Run),
        "checkout" => Some(StepKind::Checkout {
            path: r.opt_text(body, "path", pointer),
            method: r.opt_text(body, "method", pointer),
        }),
        "save_cache" => parse_save_cache(r, body, pointer),
        "restore_cache" => parse_restore_cache(r, body, pointer),
        "store_artifacts" => Some(StepKind::StoreArtifacts {
            path: required(r, body, "path", pointer, kind)?,
            destination: r.opt_text(body, "destination", pointer),
        }),
        "store_test_results" => Some(StepKind::StoreTestResults {
            path: required(r, body, "path", pointer, kind)?,
        }),
        "persist_to_workspace" => Some(StepKind::PersistToWorkspace {
            root: required(r, body, "root", pointer, kind)?,
            paths: body
                .get("paths")
                .map(|p| r.strings(p, &child(pointer, "paths"), "a path"))
                .unwrap_or_default(),
        }),
        "attach_workspace" => Some(StepKind::AttachWorkspace {
            at: required(r, body, "at", pointer, kind)?,
        }),
        "add_ssh_keys" => Some(StepKind::AddSshKeys {
            fingerprints: body
                .get("fingerprints")
                .map(|p| r.strings(p, &child(pointer, "fingerprints"), "a fingerprint"))
                .unwrap_or_default(),
        }),
        "setup_remote_docker" => Some(StepKind::SetupRemoteDocker {
            version: r.opt_text(body, "version", pointer),
        }),
        "install_signing_bundle" => Some(StepKind::InstallSigningBundle),
        _ => {
            unknown_step(r, body, pointer, kind);
            None
        }
    }?;
    let when = match body.get("when") {
        Some(w) => parse_when(r, w, &child(pointer, "when"))?,
        None => default_when(&parsed),
    };
    Some(Step {
        name: r.opt_text(body, "name", pointer),
        when,
        kind: parsed,
        span: body.span,
    })
}

fn required(r: &mut Reader, body: &Node, key: &str, pointer: &str, kind: &str) -> Option<String> {
    let value = r.opt_text(body, key, pointer);
    if value.is_none() && body.get(key).is_none_or(Node::is_null) {
        r.error(body, pointer, format!("`{kind}` needs `{key}`"));
    }
    value
}

fn parse_when(r: &mut Reader, node: &Node, pointer: &str) -> Option<When> {
    match node.as_str() {
        Some("on_success") => Some(When::OnSuccess),
        Some("on_fail") => Some(When::OnFail),
        Some("always") => Some(When::Always),
        _ => {
            r.error_hint(
                node,
                pointer,
                "`when` must be `on_success`, `on_fail` or `always`",
                "conditional steps with `when: <condition>` are a 2.1 feature; process the config first",
            );
            None
        }
    }
}

impl Run {
    pub(crate) fn new(command: String) -> Run {
        Run {
            command,
            shell: None,
            environment: Vec::new(),
            working_directory: None,
            background: false,
            no_output_timeout: None,
            max_auto_reruns: 0,
            auto_rerun_delay: None,
        }
    }
}

fn parse_run(r: &mut Reader, body: &Node, pointer: &str) -> Option<Run> {
    let command = required(r, body, "command", pointer, "run")?;
    let mut run = Run::new(command);
    run.shell = body
        .get("shell")
        .and_then(|s| r.words(s, &child(pointer, "shell"), "`shell`"))
        .map(|w| w.join(" "));
    run.environment = body
        .get("environment")
        .map(|e| r.environment(e, &child(pointer, "environment")))
        .unwrap_or_default();
    run.working_directory = r.opt_text(body, "working_directory", pointer);
    run.background = r.opt_bool(body, "background", pointer).unwrap_or(false);
    run.no_output_timeout = opt_duration(r, body, "no_output_timeout", pointer);
    if let Some(n) = r.opt_u32(body, "max_auto_reruns", pointer) {
        if !(1..=5).contains(&n) {
            let node = body.get("max_auto_reruns").expect("read just above");
            r.error(
                node,
                &child(pointer, "max_auto_reruns"),
                "`max_auto_reruns` must be 1 to 5",
            );
        }
        run.max_auto_reruns = n.min(5);
    }
    run.auto_rerun_delay = opt_duration(r, body, "auto_rerun_delay", pointer);
    if let Some(delay) = run.auto_rerun_delay {
        let node = body.get("auto_rerun_delay").expect("read just above");
        if delay > Duration::from_secs(600) {
            r.error(
                node,
                &child(pointer, "auto_rerun_delay"),
                "`auto_rerun_delay` is at most 10m",
            );
        }
    }
    Some(run)
}

fn opt_duration(r: &mut Reader, body: &Node, key: &str, pointer: &str) -> Option<Duration> {
    let node = body.get(key)?;
    let text = r.text(node, &child(pointer, key), &format!("`{key}`"))?;
    let parsed = crate::units::parse_go(&text);
    if parsed.is_none() {
        r.error_hint(
            node,
            &child(pointer, key),
            format!("`{key}` is not a duration: `{text}`"),
            "write a number with a unit: `30s`, `10m`, `1.5h`",
        );
    }
    parsed
}

fn parse_save_cache(r: &mut Reader, body: &Node, pointer: &str) -> Option<StepKind> {
    let key = required(r, body, "key", pointer, "save_cache")?;
    let Some(paths) = body.get("paths") else {
        r.error(body, pointer, "`save_cache` needs `paths`");
        return None;
    };
    Some(StepKind::SaveCache {
        key,
        paths: r.strings(paths, &child(pointer, "paths"), "a path"),
    })
}

fn parse_restore_cache(r: &mut Reader, body: &Node, pointer: &str) -> Option<StepKind> {
    let mut keys: Vec<String> = r.opt_text(body, "key", pointer).into_iter().collect();
    if let Some(list) = body.get("keys") {
        keys.extend(r.strings(list, &child(pointer, "keys"), "a cache key"));
    }
    if keys.is_empty() {
        r.error(body, pointer, "`restore_cache` needs `key` or `keys`");
        return None;
    }
    Some(StepKind::RestoreCache { keys })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::{Source, Sources};

    /// The steps of job `build` in a 2.0 config.
    fn steps_of(steps: &str) -> Vec<Step> {
        let text = format!(
            "version: 2\njobs:\n  build:\n    docker:\n      - image: x\n    environment: MODE=ci\n    steps:\n{steps}"
        );
        let mut sources = Sources::new();
        let id = sources.add(Source::new("t.yml", text));
        let node = crate::yaml::parse(sources.get(id), id).expect("valid YAML");
        let config = crate::config::parse(&node).expect("a valid config");
        config.jobs["build"].steps.clone()
    }

    fn command(step: &Step) -> &str {
        match &step.kind {
            StepKind::Run(run) => &run.command,
            other => panic!("not a run step: {other:?}"),
        }
    }

    /// See: issue 8. The 2.0-beta forms CircleCI still runs read like their modern forms.
    #[test]
    fn legacy_forms() {
        let steps = steps_of(
            "      - checkout:\n          post:\n            - git submodule sync\n            - make deps\n      - type: shell\n        name: Date\n        command: date -u\n      - shell:\n          command: uname\n",
        );
        assert!(matches!(steps[0].kind, StepKind::Checkout { .. }));
        assert_eq!(command(&steps[1]), "git submodule sync");
        assert_eq!(command(&steps[2]), "make deps");
        assert_eq!(
            (steps[3].name.as_deref(), command(&steps[3])),
            (Some("Date"), "date -u")
        );
        assert_eq!(command(&steps[4]), "uname");
        assert_eq!(steps.len(), 5);
    }

    /// See: issue 8. Every built-in step `validate` and `process` accept is a step here too.
    #[test]
    fn every_built_in_step_is_known() {
        for name in BUILT_IN_STEPS {
            let body = match STEPS_NEEDING_KEYS.iter().find(|(n, _)| *n == name) {
                None if matches!(name, "run" | "deploy") => format!("      - {name}: make\n"),
                None => format!("      - {name}\n"),
                Some(_) => format!(
                    "      - {name}:\n          key: k\n          paths: [p]\n          path: p\n          root: r\n          at: a\n"
                ),
            };
            assert_eq!(steps_of(&body).len(), 1, "{name}");
        }
        assert!(matches!(
            steps_of("      - install_signing_bundle\n")[0].kind,
            StepKind::InstallSigningBundle
        ));
    }
}
