//! The elements a compile can call: the config's own commands, jobs and executors, and those of
//! every orb it imports (inline or resolved from local files), each in its own namespace.
//! Inside an orb, its own elements are named without prefix and its imports as `alias/name`.
//!
//! An orb that could not be found is kept as a placeholder that records every place using it,
//! so the final error lists them all.

use std::collections::HashMap;
use std::path::PathBuf;

use crate::diagnostic::Diagnostic;
use crate::source::Span;
use crate::yaml::Node;

use super::context::Ctx;

pub(crate) type NsId = usize;

/// The config's own namespace.
pub(crate) const ROOT: NsId = 0;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ElementKind {
    Command,
    Job,
    Executor,
}

impl ElementKind {
    pub fn noun(self) -> &'static str {
        match self {
            ElementKind::Command => "command",
            ElementKind::Job => "job",
            ElementKind::Executor => "executor",
        }
    }
}

/// A definition as written (unsubstituted), and where its name was written.
#[derive(Clone, Debug)]
pub(crate) struct Element {
    pub key_span: Span,
    pub def: Node,
}

#[derive(Default, Debug)]
pub(crate) struct Namespace {
    /// `None` for the config itself; the orb's display name otherwise.
    pub orb: Option<String>,
    pub commands: HashMap<String, Element>,
    pub jobs: HashMap<String, Element>,
    pub executors: HashMap<String, Element>,
    pub imports: HashMap<String, Import>,
}

impl Namespace {
    fn table(&self, kind: ElementKind) -> &HashMap<String, Element> {
        match kind {
            ElementKind::Command => &self.commands,
            ElementKind::Job => &self.jobs,
            ElementKind::Executor => &self.executors,
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub(crate) enum Import {
    Orb(NsId),
    Missing(usize),
}

/// A registry orb that no local source provides.
#[derive(Debug)]
pub(crate) struct MissingOrb {
    pub alias: String,
    pub reference: String,
    pub declared: Span,
    pub usages: Vec<Span>,
}

/// How one registry orb reference was resolved (`circleci/node@5` -> `circleci/node@5.2.0`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrbResolution {
    pub reference: String,
    pub resolved: String,
    pub path: PathBuf,
}

#[derive(Default, Debug)]
pub(crate) struct Library {
    pub namespaces: Vec<Namespace>,
    pub missing: Vec<MissingOrb>,
    pub resolved: Vec<OrbResolution>,
}

/// The outcome of looking a name up.
pub(crate) enum Found {
    Element(NsId, Element),
    NotFound,
    /// The name belongs to an orb that could not be resolved; the use was recorded.
    MissingOrb,
}

impl Library {
    pub fn ns(&self, id: NsId) -> &Namespace {
        &self.namespaces[id]
    }

    pub fn is_orb(&self, id: NsId) -> bool {
        self.namespaces[id].orb.is_some()
    }

    /// Looks up `name` (`x` or `alias/x`) as seen from namespace `from`.
    pub fn find(&mut self, from: NsId, kind: ElementKind, name: &str, at: Span) -> Found {
        let (ns, local) = match name.split_once('/') {
            None => (from, name),
            Some((alias, rest)) => match self.namespaces[from].imports.get(alias) {
                Some(Import::Orb(id)) => (*id, rest),
                Some(Import::Missing(i)) => {
                    let usages = &mut self.missing[*i].usages;
                    if !usages.contains(&at) {
                        usages.push(at);
                    }
                    return Found::MissingOrb;
                }
                None => return Found::NotFound,
            },
        };
        match self.namespaces[ns].table(kind).get(local) {
            Some(e) => Found::Element(ns, e.clone()),
            None => Found::NotFound,
        }
    }

    /// Whether `name` has an orb prefix that this namespace does not import.
    pub fn unknown_alias<'n>(&self, from: NsId, name: &'n str) -> Option<&'n str> {
        let (alias, _) = name.split_once('/')?;
        (!self.namespaces[from].imports.contains_key(alias)).then_some(alias)
    }

    /// Errors for missing orbs that something used, warnings for the others.
    pub fn report_missing(&self, ctx: &mut Ctx, searched: &[PathBuf]) {
        for m in &self.missing {
            let places = searched
                .iter()
                .map(|d| format!("{}", d.join(file_name(&m.reference)).display()))
                .collect::<Vec<_>>();
            let how = format!(
                "save the orb's source (`circleci orb source {r} > file.yml`) as {}, or pass \
                 --orb {r}=path/to/orb.yml",
                if places.is_empty() {
                    "a local file".to_string()
                } else {
                    places.join(" or ")
                },
                r = m.reference
            );
            if m.usages.is_empty() {
                ctx.warn(
                    Diagnostic::warning(
                        m.declared,
                        format!(
                            "orb {} (alias `{}`) has no local source; it is not used, so the output does not depend on it",
                            m.reference, m.alias
                        ),
                    )
                    .with_hint(how),
                );
                continue;
            }
            let mut d = Diagnostic::error(
                m.declared,
                format!(
                    "orb {} (alias `{}`) cannot be resolved offline, and {} place(s) use it",
                    m.reference,
                    m.alias,
                    m.usages.len()
                ),
            )
            .with_hint(how);
            for u in &m.usages {
                d = d.with_label(*u, format!("uses orb `{}`", m.alias));
            }
            ctx.errors.push(d);
        }
    }
}

/// `ns/name@1.2.3` -> `ns/name@1.2.3.yml` (relative to an orb folder).
pub(crate) fn file_name(reference: &str) -> PathBuf {
    match reference.split_once('/') {
        Some((ns, rest)) => PathBuf::from(ns).join(format!("{rest}.yml")),
        None => PathBuf::from(format!("{reference}.yml")),
    }
}
