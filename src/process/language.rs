//! The 2.1 language's vocabulary, shared by `validate` and `process` so a rule lives in one
//! place: the kinds of elements and their namespaces, the parameter types, and the keys of a
//! workflow job entry that are not job arguments. (The built-in steps are in
//! `config::step`, which `execute` reads too.)
//!
//! Definitions only: no diagnostics, no I/O.

use crate::yaml::Node;

/// A namespace: the config itself ([`ROOT`]) or one orb.
pub(crate) type NsId = usize;

/// The config's own namespace.
pub(crate) const ROOT: NsId = 0;

/// What a name under `jobs:`, `commands:` or `executors:` defines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ElementKind {
    Command,
    Job,
    Executor,
}

impl ElementKind {
    pub(crate) fn noun(self) -> &'static str {
        match self {
            ElementKind::Command => "command",
            ElementKind::Job => "job",
            ElementKind::Executor => "executor",
        }
    }

    /// The top-level key that holds elements of this kind.
    pub(crate) fn section(self) -> &'static str {
        match self {
            ElementKind::Command => "commands",
            ElementKind::Job => "jobs",
            ElementKind::Executor => "executors",
        }
    }
}

/// The outcome of looking a name (`x`, or `alias/x` for an orb's element) up from a
/// namespace: the same four cases for `validate` and `process`.
#[derive(Debug)]
pub(crate) enum Lookup<T> {
    Found(T),
    /// `alias/x` where `alias` is a registry orb with no source here: nothing to check or
    /// compile (the use was recorded, for the orb's one diagnostic).
    MissingOrb,
    /// `alias/x` where no orb is called `alias`.
    NoSuchOrb,
    NotFound,
}

/// A declared parameter type (configuration reference, "parameters").
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum ParamType {
    String,
    Boolean,
    Integer,
    /// The allowed values, as text.
    Enum(Vec<String>),
    Executor,
    Steps,
    EnvVarName,
}

impl ParamType {
    /// The type a declaration (`{type: enum, enum: [a, b]}`) names; `None` for a missing or
    /// unknown type, or an enum without an `enum:` list.
    pub(crate) fn of(decl: &Node) -> Option<ParamType> {
        Some(match decl.get("type")?.as_str()? {
            "string" => ParamType::String,
            "boolean" => ParamType::Boolean,
            "integer" => ParamType::Integer,
            "enum" => ParamType::Enum(
                decl.get("enum")?
                    .as_seq()?
                    .iter()
                    .filter_map(Node::scalar_text)
                    .collect(),
            ),
            "executor" => ParamType::Executor,
            "steps" => ParamType::Steps,
            "env_var_name" => ParamType::EnvVarName,
            _ => return None,
        })
    }

    pub(crate) fn name(&self) -> &'static str {
        match self {
            ParamType::String => "string",
            ParamType::Boolean => "boolean",
            ParamType::Integer => "integer",
            ParamType::Enum(_) => "enum",
            ParamType::Executor => "executor",
            ParamType::Steps => "steps",
            ParamType::EnvVarName => "env_var_name",
        }
    }
}

/// Keys of a workflow job entry that are not job arguments (configuration reference,
/// "workflows > jobs"); a job cannot declare parameters with these names.
pub(crate) const JOB_ENTRY_KEYS: [&str; 10] = [
    "name",
    "requires",
    "context",
    "type",
    "filters",
    "matrix",
    "pre-steps",
    "post-steps",
    "serial-group",
    "override-with",
];
