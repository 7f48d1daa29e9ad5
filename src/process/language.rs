//! The 2.1 language's vocabulary, shared by `validate` and `process` so a rule lives in one
//! place: the kinds of elements and their namespaces, the parameter types, and the keys of a
//! workflow job entry that are not job arguments. (The built-in steps are in
//! `config::step`, which `execute` reads too.)
//!
//! Definitions only: no diagnostics, no I/O.

use indexmap::IndexMap;

use crate::yaml::{Kind, Map, Node};

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
    /// `alias/x` where `alias` is a registry orb with no source here (the index of that orb
    /// among the missing ones): nothing to check or compile, only a use to record for the
    /// orb's one diagnostic.
    MissingOrb(usize),
    /// `alias/x` where no orb is called `alias`.
    NoSuchOrb,
    NotFound,
}

impl<T> Lookup<T> {
    pub(crate) fn map<U>(self, f: impl FnOnce(T) -> U) -> Lookup<U> {
        match self {
            Lookup::Found(t) => Lookup::Found(f(t)),
            Lookup::MissingOrb(i) => Lookup::MissingOrb(i),
            Lookup::NoSuchOrb => Lookup::NoSuchOrb,
            Lookup::NotFound => Lookup::NotFound,
        }
    }
}

/// What an orb alias of a namespace stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Import {
    /// An orb whose source is here (inline, or a local file): its namespace.
    Orb(NsId),
    /// A registry orb with no source here: its index among the missing orbs.
    Missing(usize),
}

/// The config itself or one orb: its elements by kind and name, and its orb imports. `E` is
/// what a user of the index keeps per element (`validate` a borrowed definition with its JSON
/// pointer, `process` a shared copy of the definition).
#[derive(Debug)]
pub(crate) struct Namespace<E> {
    /// `None` for the config itself; the orb's name (alias or resolved reference) otherwise.
    pub orb: Option<String>,
    pub commands: IndexMap<String, E>,
    pub jobs: IndexMap<String, E>,
    pub executors: IndexMap<String, E>,
    pub imports: IndexMap<String, Import>,
}

impl<E> Namespace<E> {
    pub(crate) fn new(orb: Option<String>) -> Self {
        Namespace {
            orb,
            commands: IndexMap::new(),
            jobs: IndexMap::new(),
            executors: IndexMap::new(),
            imports: IndexMap::new(),
        }
    }

    pub(crate) fn in_orb(&self) -> bool {
        self.orb.is_some()
    }

    pub(crate) fn elements(&self, kind: ElementKind) -> &IndexMap<String, E> {
        match kind {
            ElementKind::Command => &self.commands,
            ElementKind::Job => &self.jobs,
            ElementKind::Executor => &self.executors,
        }
    }

    pub(crate) fn elements_mut(&mut self, kind: ElementKind) -> &mut IndexMap<String, E> {
        match kind {
            ElementKind::Command => &mut self.commands,
            ElementKind::Job => &mut self.jobs,
            ElementKind::Executor => &mut self.executors,
        }
    }
}

/// Every namespace of a config, [`ROOT`] first, and the one name lookup of the language.
#[derive(Debug)]
pub(crate) struct Index<E> {
    pub namespaces: Vec<Namespace<E>>,
}

impl<E> Default for Index<E> {
    fn default() -> Self {
        Index {
            namespaces: Vec::new(),
        }
    }
}

impl<E> Index<E> {
    pub(crate) fn ns(&self, id: NsId) -> &Namespace<E> {
        &self.namespaces[id]
    }

    /// Adds a namespace; its id.
    pub(crate) fn push(&mut self, ns: Namespace<E>) -> NsId {
        self.namespaces.push(ns);
        self.namespaces.len() - 1
    }

    /// Looks `name` up as seen from namespace `from`: an element of that name first (a
    /// processed 2.0 config names orb jobs `orb/job` literally), then `alias/x` as element `x`
    /// of the orb that `alias` imports there.
    pub(crate) fn lookup(&self, from: NsId, kind: ElementKind, name: &str) -> Lookup<(NsId, &E)> {
        if let Some(e) = self.ns(from).elements(kind).get(name) {
            return Lookup::Found((from, e));
        }
        let Some((alias, rest)) = name.split_once('/') else {
            return Lookup::NotFound;
        };
        match self.ns(from).imports.get(alias) {
            None => Lookup::NoSuchOrb,
            Some(Import::Missing(i)) => Lookup::MissingOrb(*i),
            Some(Import::Orb(child)) => self
                .ns(*child)
                .elements(kind)
                .get(rest)
                .map_or(Lookup::NotFound, |e| Lookup::Found((*child, e))),
        }
    }

    /// Every name an element of `kind` can be called by from `from` (for suggestions).
    pub(crate) fn visible_names(&self, from: NsId, kind: ElementKind) -> Vec<String> {
        let here = self.ns(from);
        let mut names: Vec<String> = here.elements(kind).keys().cloned().collect();
        for (alias, import) in &here.imports {
            if let Import::Orb(child) = import {
                names.extend(
                    self.ns(*child)
                        .elements(kind)
                        .keys()
                        .map(|k| format!("{alias}/{k}")),
                );
            }
        }
        names
    }
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

    /// Whether `value` (already substituted) is a value of this type, as CircleCI's compiler
    /// decides it: the one type rule of the language. A string takes any scalar but a boolean
    /// (a float is kept as YAML reads it); an enum value is compared as the compiler prints
    /// it (an unquoted `3.10` is the number 3.1).
    pub(crate) fn accepts(&self, value: &Node) -> bool {
        match (self, &value.kind) {
            (ParamType::String, kind) => {
                matches!(
                    kind,
                    Kind::Str(_) | Kind::Int(_) | Kind::Float(_) | Kind::Null
                )
            }
            (ParamType::Boolean, kind) => matches!(kind, Kind::Bool(_)),
            (ParamType::Integer, kind) => matches!(kind, Kind::Int(_)),
            (ParamType::Enum(allowed), Kind::Str(_) | Kind::Int(_) | Kind::Float(_)) => {
                super::value::text(value).is_some_and(|text| allowed.contains(&text))
            }
            (ParamType::Enum(_), _) => false,
            (ParamType::EnvVarName, Kind::Str(s)) => is_env_var_name(s),
            (ParamType::EnvVarName, _) => false,
            (ParamType::Executor, _) => executor_ref(value).is_some(),
            (ParamType::Steps, kind) => matches!(kind, Kind::Seq(_)),
        }
    }

    /// `a boolean (true or false)` as a message reads it.
    pub(crate) fn describe(&self) -> String {
        match self {
            ParamType::String => "a string".into(),
            ParamType::Boolean => "a boolean (true or false)".into(),
            ParamType::Integer => "an integer".into(),
            ParamType::Enum(values) => format!("one of {}", crate::diagnostic::one_of(values)),
            ParamType::Executor => "an executor (a name, or a map with `name`)".into(),
            ParamType::Steps => "a list of steps".into(),
            ParamType::EnvVarName => "an environment variable name".into(),
        }
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

/// An executor reference as written: `name`, or `{name: name, <arguments>}` (configuration
/// reference, "executor" of a job).
#[derive(Clone, Copy, Debug)]
pub(crate) struct ExecutorRef<'n> {
    pub name: &'n str,
    /// The node that holds the name (the value itself, or its `name:`).
    pub name_node: &'n Node,
    /// The map of the long form; its keys but `name` are arguments.
    pub args: Option<&'n Map>,
}

/// Reads an `executor:` value or an executor argument; `None` for any other shape. The one
/// reading of the form, for `validate`, the compiler and the `executor` parameter type.
pub(crate) fn executor_ref(value: &Node) -> Option<ExecutorRef<'_>> {
    match &value.kind {
        Kind::Str(name) => Some(ExecutorRef {
            name,
            name_node: value,
            args: None,
        }),
        Kind::Map(m) => {
            let name_node = m.get("name")?;
            Some(ExecutorRef {
                name: name_node.as_str()?,
                name_node,
                args: Some(m),
            })
        }
        _ => None,
    }
}

/// `[A-Za-z_][A-Za-z0-9_]*`: what an `env_var_name` parameter takes.
pub(crate) fn is_env_var_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
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
