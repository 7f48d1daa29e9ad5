//! Builds the [`Library`]: the config's namespace, and one namespace per imported orb.
//! Inline orbs are read in place; registry orbs (`ns/name@version`) come from local files,
//! searched in this order: `--orb ref=path`, `<config folder>/orbs/<ns>/<name>@<version>.yml`,
//! then each extra folder (the user cache), and last the orb registry (when one is given and
//! reachable; what it answers is cached by exact version). `@1`, `@1.2` and `@volatile` pick
//! the newest matching version present locally; only when none is does the registry resolve
//! them. Nested imports resolve recursively; a file imported twice is read once.
//!
//! This is the only part of `process` that reads files (and, through [`Registry`], the
//! network).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use indexmap::IndexMap;

use crate::diagnostic::Diagnostic;
use crate::source::{Sources, Span};
use crate::yaml::{Map, Node};

use super::context::Ctx;
use super::language::Namespace;
use super::library::{
    Def, Element, ElementKind, Import, Library, MissingOrb, NsId, OrbResolution, file_name,
};
use super::registry::Registry;

/// How long a chain of orb files importing orb files may be. Loading recurses once per
/// level; no published orb chain is more than a few deep.
const MAX_IMPORT_DEPTH: usize = 64;

/// Where registry orbs may come from.
pub(crate) struct OrbSources<'a> {
    /// `--orb ref=path` pairs.
    pub files: &'a [(String, PathBuf)],
    /// Folders laid out as `<ns>/<name>@<version>.yml`, in search order.
    pub dirs: Vec<PathBuf>,
    /// Asked last, for what no file provides.
    pub registry: Option<&'a Registry>,
}

/// Where a namespace's definitions are read from.
#[derive(Clone, Copy)]
pub(crate) enum Body<'c, 'o> {
    /// The config: its definitions are borrowed.
    Config(&'c Node),
    /// An orb (inline or from a file): its definitions are copied, once.
    Orb(&'o Node),
}

pub(crate) struct Loader<'a, 'c> {
    pub sources: &'a mut Sources,
    pub ctx: &'a mut Ctx,
    pub orb_sources: OrbSources<'a>,
    pub lib: Library<'c>,
    /// The warnings of registry fetches that failed with a reason (also in `ctx`).
    pub fetch_warnings: Vec<Diagnostic>,
    by_path: HashMap<PathBuf, NsId>,
    loading: Vec<PathBuf>,
}

impl<'a, 'c> Loader<'a, 'c> {
    pub fn new(sources: &'a mut Sources, ctx: &'a mut Ctx, orb_sources: OrbSources<'a>) -> Self {
        Loader {
            sources,
            ctx,
            orb_sources,
            lib: Library::default(),
            fetch_warnings: Vec::new(),
            by_path: HashMap::new(),
            loading: Vec::new(),
        }
    }

    /// Adds a namespace for `body` (the config, or an orb) and everything it imports.
    /// `imports` is the already-substituted `orbs:` map.
    pub fn namespace(
        &mut self,
        orb: Option<String>,
        body: Body<'c, '_>,
        imports: Option<&Node>,
    ) -> NsId {
        let mut ns = Namespace::new(orb);
        for kind in [
            ElementKind::Command,
            ElementKind::Job,
            ElementKind::Executor,
        ] {
            *ns.elements_mut(kind) = self.elements(body, kind.section());
        }
        let id = self.lib.index.push(ns);
        if let Some(map) = imports.and_then(Node::as_map) {
            for e in &map.entries {
                let import = self.import(&e.key, e.key_span, &e.value);
                if let Some(import) = import {
                    self.lib.index.namespaces[id]
                        .imports
                        .insert(e.key.clone(), import);
                }
            }
        } else if let Some(other) = imports.filter(|n| !n.is_null()) {
            self.ctx.error(Diagnostic::error(
                other.span,
                "`orbs` must be a map of alias: orb",
            ));
        }
        id
    }

    fn elements(&mut self, body: Body<'c, '_>, key: &str) -> IndexMap<String, Element<'c>> {
        let mut out = IndexMap::new();
        let section = match body {
            Body::Config(node) => self.section(node, key).map(|m| {
                m.entries
                    .iter()
                    .map(|e| (e, Def::Config(&e.value)))
                    .collect::<Vec<_>>()
            }),
            Body::Orb(node) => self.section(node, key).map(|m| {
                m.entries
                    .iter()
                    .map(|e| (e, Def::Orb(std::rc::Rc::new(e.value.clone()))))
                    .collect()
            }),
        };
        for (e, def) in section.unwrap_or_default() {
            out.insert(
                e.key.clone(),
                Element {
                    key_span: e.key_span,
                    def,
                },
            );
        }
        out
    }

    /// The map of definitions under `key` (`jobs`, ...); an error when it is not a map.
    fn section<'n>(&mut self, body: &'n Node, key: &str) -> Option<&'n Map> {
        let node = body.get(key).filter(|n| !n.is_null())?;
        if node.as_map().is_none() {
            self.ctx.error(Diagnostic::error(
                node.span,
                format!("`{key}` must be a map of name: definition"),
            ));
        }
        node.as_map()
    }

    fn import(&mut self, alias: &str, span: Span, value: &Node) -> Option<Import> {
        if value.as_map().is_some() {
            let nested = value.get("orbs");
            return Some(Import::Orb(self.namespace(
                Some(alias.to_string()),
                Body::Orb(value),
                nested,
            )));
        }
        let Some(reference) = value.as_str().map(str::trim) else {
            self.ctx.error(Diagnostic::error(
                value.span,
                format!(
                    "orb `{alias}` must be a reference like ns/name@1.2.3 or an inline orb map"
                ),
            ));
            return None;
        };
        match self
            .locate(reference)
            .or_else(|| self.fetch(alias, reference, value.span))
        {
            Some((path, resolved)) => self.load(alias, span, reference, path, resolved),
            None => {
                self.lib.missing.push(MissingOrb {
                    alias: alias.to_string(),
                    reference: reference.to_string(),
                    declared: value.span,
                    usages: Vec::new(),
                    scanned: Vec::new(),
                });
                Some(Import::Missing(self.lib.missing.len() - 1))
            }
        }
    }

    fn load(
        &mut self,
        alias: &str,
        span: Span,
        reference: &str,
        path: PathBuf,
        resolved: String,
    ) -> Option<Import> {
        let key = std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
        self.lib.resolved.push(OrbResolution {
            reference: reference.to_string(),
            resolved: resolved.clone(),
            path: path.clone(),
        });
        if let Some(id) = self.by_path.get(&key) {
            return Some(Import::Orb(*id));
        }
        if self.loading.len() >= MAX_IMPORT_DEPTH {
            self.ctx.error(Diagnostic::error(
                span,
                format!("orbs import each other more than {MAX_IMPORT_DEPTH} levels deep"),
            ));
            return None;
        }
        if self.loading.contains(&key) {
            self.ctx.error(Diagnostic::error(
                span,
                format!("orb {resolved} imports itself (through alias `{alias}`)"),
            ));
            return None;
        }
        let file = match crate::load::load(self.sources, &path) {
            Ok(f) => f,
            Err(d) => {
                self.ctx.error(d.with_label(
                    span,
                    format!("orb `{alias}` is read from {}", path.display()),
                ));
                return None;
            }
        };
        let body = match crate::yaml::parse(self.sources.get(file), file) {
            Ok(n) => n,
            Err(d) => {
                self.ctx.error(d.with_label(
                    span,
                    format!("orb `{alias}` is read from {}", path.display()),
                ));
                return None;
            }
        };
        if body.as_map().is_none() {
            self.ctx.error(Diagnostic::error(
                body.span,
                format!("{} is not an orb (a YAML map)", path.display()),
            ));
            return None;
        }
        self.loading.push(key.clone());
        let id = self.namespace(Some(resolved), Body::Orb(&body), body.get("orbs"));
        self.loading.pop();
        self.by_path.insert(key, id);
        Some(Import::Orb(id))
    }

    /// Asks the registry for `reference` (cached on success). A registry that cannot be
    /// reached stays silent (the orb is then reported missing, once); one that answers without
    /// the orb is a warning naming the orb and why.
    fn fetch(&mut self, alias: &str, reference: &str, at: Span) -> Option<(PathBuf, String)> {
        let registry = self.orb_sources.registry?;
        match registry.fetch(reference) {
            Ok(fetched) => Some((fetched.path, fetched.resolved)),
            Err(e) if e.is_silent() => None,
            Err(e) => {
                let warning = Diagnostic::warning(
                    at,
                    format!(
                        "orb `{alias}` ({reference}) could not be fetched from {}: {e}",
                        registry.url()
                    ),
                )
                .with_hint(
                    "check the reference on https://circleci.com/developer/orbs, or save the orb as .circleci/orbs/<ns>/<name>@<version>.yml",
                );
                self.fetch_warnings.push(warning.clone());
                self.ctx.warn(warning);
                None
            }
        }
    }

    /// The file that provides `reference`, and the exact reference it resolved to.
    fn locate(&self, reference: &str) -> Option<(PathBuf, String)> {
        let wanted = OrbRef::parse(reference);
        for (key, path) in self.orb_sources.files {
            let key = key.trim();
            let fits = key == reference
                || matches!((&wanted, OrbRef::parse(key)), (Some(w), Some(k)) if w.accepts(&k));
            if fits {
                let resolved = if key == reference {
                    reference.to_string()
                } else {
                    key.to_string()
                };
                return Some((path.clone(), resolved));
            }
        }
        let wanted = wanted?;
        self.orb_sources
            .dirs
            .iter()
            .find_map(|dir| wanted.find_in(dir))
    }
}

/// `ns/name@version`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OrbRef {
    pub ns: String,
    pub name: String,
    pub version: String,
}

impl OrbRef {
    pub fn parse(s: &str) -> Option<OrbRef> {
        let (path, version) = s.split_once('@')?;
        let (ns, name) = path.split_once('/')?;
        let ok = |p: &str| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        };
        (ok(ns) && ok(name) && !version.is_empty()).then(|| OrbRef {
            ns: ns.to_string(),
            name: name.to_string(),
            version: version.to_string(),
        })
    }

    fn text(&self, version: &str) -> String {
        format!("{}/{}@{}", self.ns, self.name, version)
    }

    /// Whether the exact orb `exact` satisfies this (possibly partial) reference.
    pub fn accepts(&self, exact: &OrbRef) -> bool {
        if self.ns != exact.ns || self.name != exact.name {
            return false;
        }
        if self.version == exact.version {
            return true;
        }
        let Some(v) = semver(&exact.version) else {
            return false;
        };
        match self.version.as_str() {
            "volatile" => true,
            partial => {
                let parts: Vec<&str> = partial.split('.').collect();
                parts.len() < 3
                    && parts
                        .iter()
                        .zip(v)
                        .all(|(p, n)| p.parse::<u64>().ok() == Some(n))
            }
        }
    }

    /// The newest file in `dir` that satisfies this reference.
    fn find_in(&self, dir: &Path) -> Option<(PathBuf, String)> {
        let exact = dir.join(file_name(&self.text(&self.version)));
        for candidate in [exact.clone(), exact.with_extension("yaml")] {
            if candidate.is_file() {
                return Some((candidate, self.text(&self.version)));
            }
        }
        let entries = std::fs::read_dir(dir.join(&self.ns)).ok()?;
        let prefix = format!("{}@", self.name);
        entries
            .filter_map(|e| {
                let path = e.ok()?.path();
                let stem = path.file_stem()?.to_str()?;
                let ext = path.extension()?.to_str()?;
                let version = stem.strip_prefix(&prefix)?;
                let v = semver(version)?;
                let fits = matches!(ext, "yml" | "yaml")
                    && self.accepts(&OrbRef {
                        version: version.to_string(),
                        ..self.clone()
                    });
                fits.then(|| (v, path.clone(), self.text(version)))
            })
            .max_by(|a, b| a.0.cmp(&b.0))
            .map(|(_, path, text)| (path, text))
    }
}

fn semver(v: &str) -> Option<[u64; 3]> {
    let mut parts = v.split('.').map(|p| p.parse::<u64>().ok());
    let out = [parts.next()??, parts.next()??, parts.next()??];
    parts.next().is_none().then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_versions_pick_the_newest_match() {
        let dir = tempfile::tempdir().unwrap();
        let ns = dir.path().join("circleci");
        std::fs::create_dir_all(&ns).unwrap();
        for v in ["5.0.3", "5.2.0", "5.10.1", "6.0.0"] {
            std::fs::write(ns.join(format!("node@{v}.yml")), "commands: {}\n").unwrap();
        }
        let find = |r: &str| {
            OrbRef::parse(r)
                .unwrap()
                .find_in(dir.path())
                .map(|(_, t)| t)
        };
        assert_eq!(
            find("circleci/node@5").as_deref(),
            Some("circleci/node@5.10.1")
        );
        assert_eq!(
            find("circleci/node@5.2").as_deref(),
            Some("circleci/node@5.2.0")
        );
        assert_eq!(
            find("circleci/node@5.2.0").as_deref(),
            Some("circleci/node@5.2.0")
        );
        assert_eq!(
            find("circleci/node@volatile").as_deref(),
            Some("circleci/node@6.0.0")
        );
        assert_eq!(find("circleci/node@7"), None);
        assert_eq!(find("circleci/python@1"), None);
    }
}
