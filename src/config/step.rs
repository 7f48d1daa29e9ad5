//! Steps in one canonical form: every short form (`- checkout`, `- run: make`) and the
//! deprecated `deploy` become the same [`Step`] a long form would give. No execution here.

use std::time::Duration;

use serde::Serialize;

use super::read::{Reader, child, index};
use crate::source::Span;
use crate::yaml::{Kind, Node};

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
        }
    }
}

/// Reads a job's `steps:` list.
pub(crate) fn parse_steps(r: &mut Reader, node: &Node, pointer: &str) -> Vec<Step> {
    let Some(items) = node.as_seq() else {
        r.error(node, pointer, "`steps` must be a list of steps");
        return Vec::new();
    };
    items
        .iter()
        .enumerate()
        .filter_map(|(i, item)| parse_step(r, item, &index(pointer, i)))
        .collect()
}

fn parse_step(r: &mut Reader, node: &Node, pointer: &str) -> Option<Step> {
    match &node.kind {
        Kind::Str(name) => bare_step(r, node, pointer, name),
        Kind::Map(map) if map.len() == 1 => {
            let entry = &map.entries[0];
            step_with_body(r, &entry.key, &entry.value, &child(pointer, &entry.key)).map(|step| {
                Step {
                    span: node.span,
                    ..step
                }
            })
        }
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

/// `- checkout`, `- setup_remote_docker`, `- add_ssh_keys`.
fn bare_step(r: &mut Reader, node: &Node, pointer: &str, name: &str) -> Option<Step> {
    let kind = match name {
        "checkout" => StepKind::Checkout {
            path: None,
            method: None,
        },
        "setup_remote_docker" => StepKind::SetupRemoteDocker { version: None },
        "add_ssh_keys" => StepKind::AddSshKeys {
            fingerprints: Vec::new(),
        },
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
    let hint = if matches!(name, "when" | "unless" | "steps") || !is_builtin(name) {
        "commands, orbs and `when`/`unless` steps belong to version 2.1 configs; in a 2.0 (processed) config only built-in steps exist"
    } else {
        "write the step as a map: `- <type>: {...}`"
    };
    r.error_hint(node, pointer, format!("unknown step `{name}`"), hint);
}

fn is_builtin(name: &str) -> bool {
    matches!(
        name,
        "run"
            | "deploy"
            | "checkout"
            | "save_cache"
            | "restore_cache"
            | "store_artifacts"
            | "store_test_results"
            | "persist_to_workspace"
            | "attach_workspace"
            | "add_ssh_keys"
            | "setup_remote_docker"
    )
}

/// `store_artifacts` and `store_test_results` run after failures too (CircleCI reference).
fn default_when(kind: &StepKind) -> When {
    match kind {
        StepKind::StoreArtifacts { .. } | StepKind::StoreTestResults { .. } => When::Always,
        _ => When::OnSuccess,
    }
}

fn step_with_body(r: &mut Reader, kind: &str, body: &Node, pointer: &str) -> Option<Step> {
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
