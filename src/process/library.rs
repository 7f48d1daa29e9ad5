//! The elements a compile can call: the config's own commands, jobs and executors, and those of
//! every orb it imports (inline or resolved from local files), each in its own namespace.
//! Inside an orb, its own elements are named without prefix and its imports as `alias/name`.
//!
//! An orb that could not be found is kept as a placeholder that records every place using it,
//! so the final error lists them all.

use std::path::PathBuf;
use std::rc::Rc;

use crate::diagnostic::Diagnostic;
use crate::source::Span;
use crate::yaml::{Kind, Node};

use super::context::Ctx;

pub(crate) use super::language::{ElementKind, Import, Lookup, NsId, ROOT};
use super::language::{Index, Namespace};

/// A definition as written (unsubstituted), and where its name was written. Cheap to copy,
/// because every call of a command looks it up again.
#[derive(Clone, Debug)]
pub(crate) struct Element<'c> {
    pub key_span: Span,
    pub def: Def<'c>,
}

/// The YAML of a definition: borrowed from the config (a config of tens of thousands of jobs is
/// not copied, issue 9), or shared out of an orb file's own tree.
#[derive(Clone, Debug)]
pub(crate) enum Def<'c> {
    Config(&'c Node),
    Orb(Rc<Node>),
}

impl std::ops::Deref for Def<'_> {
    type Target = Node;

    fn deref(&self) -> &Node {
        match self {
            Def::Config(node) => node,
            Def::Orb(node) => node,
        }
    }
}

/// A registry orb that no local source provides.
#[derive(Debug)]
pub(crate) struct MissingOrb {
    pub alias: String,
    pub reference: String,
    pub declared: Span,
    /// Uses the compile reached.
    pub usages: Vec<Span>,
    /// Other places that name the orb's elements (found by [`Library::scan_usages`]).
    pub scanned: Vec<Span>,
}

/// How one registry orb reference was resolved (`circleci/node@5` -> `circleci/node@5.2.0`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrbResolution {
    pub reference: String,
    pub resolved: String,
    pub path: PathBuf,
}

#[derive(Default, Debug)]
pub(crate) struct Library<'c> {
    /// The config's namespace and one per orb (the language's one index).
    pub index: Index<Element<'c>>,
    /// The registry orbs without a source, in the order of [`Import::Missing`].
    pub missing: Vec<MissingOrb>,
    pub resolved: Vec<OrbResolution>,
}

impl<'c> Library<'c> {
    pub fn ns(&self, id: NsId) -> &Namespace<Element<'c>> {
        self.index.ns(id)
    }

    pub fn is_orb(&self, id: NsId) -> bool {
        self.ns(id).in_orb()
    }

    /// Looks up `name` (`x` or `alias/x`) as seen from namespace `from`; a use of a missing
    /// orb (at `at`) is recorded.
    pub fn find(
        &mut self,
        from: NsId,
        kind: ElementKind,
        name: &str,
        at: Span,
    ) -> Lookup<(NsId, Element<'c>)> {
        let found = self
            .index
            .lookup(from, kind, name)
            .map(|(ns, e)| (ns, e.clone()));
        if let Lookup::MissingOrb(i) = found {
            let usages = &mut self.missing[i].usages;
            if !usages.contains(&at) {
                usages.push(at);
            }
        }
        found
    }

    /// Whether `name` has an orb prefix that this namespace does not import.
    pub fn unknown_alias<'n>(&self, from: NsId, name: &'n str) -> Option<&'n str> {
        let (alias, _) = name.split_once('/')?;
        (!self.ns(from).imports.contains_key(alias)).then_some(alias)
    }

    /// How many uses each missing orb has so far (see [`Library::missing_used_since`]).
    pub fn missing_uses(&self) -> Vec<usize> {
        self.missing.iter().map(|m| m.usages.len()).collect()
    }

    /// The references of the missing orbs used since `before` was taken.
    pub fn missing_used_since(&self, before: &[usize]) -> Vec<String> {
        self.missing
            .iter()
            .zip(before)
            .filter(|(m, n)| m.usages.len() > **n)
            .map(|(m, _)| m.reference.clone())
            .collect()
    }

    /// Adds to each missing orb of the config the places that name one of its elements
    /// (`alias/x` as a step, executor, job or `override-with`), so the error lists them all,
    /// including those the compile did not reach after an earlier error.
    pub fn scan_usages(&mut self, config: &Node) {
        let aliases: Vec<(String, usize)> = self
            .ns(ROOT)
            .imports
            .iter()
            .filter_map(|(alias, import)| match import {
                Import::Missing(i) => Some((alias.clone(), *i)),
                Import::Orb(_) => None,
            })
            .collect();
        if aliases.is_empty() {
            return;
        }
        let mut found = Vec::new();
        if let Some(map) = config.as_map() {
            for e in map.entries.iter().filter(|e| e.key != "orbs") {
                collect_refs(&e.value, &mut found);
            }
        }
        for (span, text) in found {
            let Some((alias, _)) = text.split_once('/') else {
                continue;
            };
            if let Some((_, i)) = aliases.iter().find(|(a, _)| a == alias) {
                let m = &mut self.missing[*i];
                if !m.usages.contains(&span) && !m.scanned.contains(&span) {
                    m.scanned.push(span);
                }
            }
        }
    }

    /// Errors for missing orbs that something used (warnings when `lazy`: what uses them is
    /// set aside), warnings for the others.
    pub fn report_missing(&self, ctx: &mut Ctx, searched: &[PathBuf], lazy: bool) {
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
            let mut places: Vec<Span> = m.usages.iter().chain(&m.scanned).copied().collect();
            places.sort();
            places.dedup();
            let mut d = Diagnostic::error(
                m.declared,
                format!(
                    "orb {} (alias `{}`) cannot be resolved offline, and {} place(s) use it",
                    m.reference,
                    m.alias,
                    places.len()
                ),
            )
            .with_hint(how);
            for u in places {
                d = d.with_label(u, format!("uses orb `{}`", m.alias));
            }
            if lazy {
                d.severity = crate::diagnostic::Severity::Warning;
                ctx.warnings.push(d);
            } else {
                ctx.errors.push(d);
            }
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

/// Every `x/y` string value and map key under `node`, with its span.
fn collect_refs(node: &Node, out: &mut Vec<(Span, String)>) {
    let is_ref = |s: &str| {
        s.split_once('/').is_some_and(|(a, b)| {
            let part = |p: &str| {
                !p.is_empty()
                    && p.chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
            };
            part(a) && part(b)
        })
    };
    match &node.kind {
        Kind::Str(s) if is_ref(s) => out.push((node.span, s.clone())),
        Kind::Seq(items) => items.iter().for_each(|i| collect_refs(i, out)),
        Kind::Map(m) => {
            for e in &m.entries {
                if is_ref(&e.key) {
                    out.push((e.key_span, e.key.clone()));
                }
                collect_refs(&e.value, out);
            }
        }
        _ => {}
    }
}
