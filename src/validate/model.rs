//! An index of what a config defines: jobs, commands and executors of the config itself and of
//! each inline orb (a namespace each), the registry orbs it imports, and its pipeline
//! parameters. Name lookup follows CircleCI's rules: `name` is looked up in the current
//! namespace, `alias/name` in the orb that `alias` names there.
//!
//! Built once from the YAML tree; reports nothing itself.

use std::cell::Cell;

use indexmap::IndexMap;

use crate::yaml::{Entry, Map, Node, pointer_token};

pub(crate) use crate::process::language::Lookup;
pub(crate) use crate::process::language::{ElementKind, NsId, ROOT};
use crate::process::language::{Import, Index, Namespace};

/// One job, command or executor definition.
#[derive(Debug)]
pub(crate) struct Def<'a> {
    pub kind: ElementKind,
    pub name: &'a str,
    pub entry: &'a Entry,
    pub ns: NsId,
    pub ptr: String,
}

impl<'a> Def<'a> {
    pub(crate) fn body(&self) -> &'a Node {
        &self.entry.value
    }

    /// The `parameters:` declarations, when there are any.
    pub(crate) fn params(&self) -> Option<&'a Map> {
        self.entry.value.get("parameters")?.as_map()
    }

    /// `job `build`` as a message reads it.
    pub(crate) fn label(&self) -> String {
        format!("{} `{}`", self.kind.noun(), self.name)
    }
}

/// An orb that lives in a registry (or at a URL): it cannot be read offline.
#[derive(Debug)]
pub(crate) struct RemoteOrb<'a> {
    pub alias: &'a str,
    pub entry: &'a Entry,
    pub ptr: String,
    /// Whether anything refers into the orb.
    pub used: Cell<bool>,
}

/// What [`Model::lookup`] finds: the definition.
pub(crate) type Found<'m, 'a> = Lookup<&'m Def<'a>>;

#[derive(Debug)]
pub(crate) struct Model<'a> {
    pub root: &'a Node,
    /// The config's namespace and one per inline orb (the language's one index).
    pub index: Index<Def<'a>>,
    /// The registry orbs, in the order of [`Import::Missing`].
    pub remote: Vec<RemoteOrb<'a>>,
    pub pipeline: Option<&'a Map>,
}

impl<'a> Model<'a> {
    pub(crate) fn build(root: &'a Node) -> Self {
        let mut model = Model {
            root,
            index: Index::default(),
            remote: Vec::new(),
            pipeline: root.get("parameters").and_then(Node::as_map),
        };
        if let Some(map) = root.as_map() {
            model.add_namespace(map, String::new(), None);
        }
        model
    }

    fn add_namespace(&mut self, map: &'a Map, ptr: String, orb: Option<String>) -> NsId {
        let id = self.index.namespaces.len();
        let mut ns = Namespace::new(orb);
        for kind in [
            ElementKind::Job,
            ElementKind::Command,
            ElementKind::Executor,
        ] {
            *ns.elements_mut(kind) = defs(map, kind, id, &ptr);
        }
        self.index.push(ns);
        let Some(orbs) = map.get("orbs").and_then(Node::as_map) else {
            return id;
        };
        for entry in &orbs.entries {
            let orb_ptr = format!("{ptr}/orbs/{}", pointer_token(&entry.key));
            let import = match &entry.value.kind {
                crate::yaml::Kind::Map(inline) => {
                    Import::Orb(self.add_namespace(inline, orb_ptr, Some(entry.key.clone())))
                }
                _ => {
                    self.remote.push(RemoteOrb {
                        alias: &entry.key,
                        entry,
                        ptr: orb_ptr,
                        used: Cell::new(false),
                    });
                    Import::Missing(self.remote.len() - 1)
                }
            };
            self.index.namespaces[id]
                .imports
                .insert(entry.key.clone(), import);
        }
        id
    }

    pub(crate) fn ns(&self, id: NsId) -> &Namespace<Def<'a>> {
        self.index.ns(id)
    }

    /// Looks `name` up from inside namespace `ns`; a use of a registry orb is counted.
    pub(crate) fn lookup(&self, ns: NsId, kind: ElementKind, name: &str) -> Found<'_, 'a> {
        let found = self.index.lookup(ns, kind, name);
        if let Lookup::MissingOrb(i) = found {
            self.remote[i].used.set(true);
        }
        found.map(|(_, def)| def)
    }

    /// Every name `kind` can be called by from `ns` (for suggestions).
    pub(crate) fn visible_names(&self, ns: NsId, kind: ElementKind) -> Vec<String> {
        self.index.visible_names(ns, kind)
    }

    /// A declared pipeline parameter.
    pub(crate) fn pipeline_param(&self, name: &str) -> Option<&'a Entry> {
        self.pipeline?.entry(name)
    }
}

fn defs<'a>(map: &'a Map, kind: ElementKind, ns: NsId, ptr: &str) -> IndexMap<String, Def<'a>> {
    let Some(section) = map.get(kind.section()).and_then(Node::as_map) else {
        return IndexMap::new();
    };
    section
        .entries
        .iter()
        .map(|entry| {
            let def = Def {
                kind,
                name: &entry.key,
                entry,
                ns,
                ptr: format!("{ptr}/{}/{}", kind.section(), pointer_token(&entry.key)),
            };
            (entry.key.clone(), def)
        })
        .collect()
}
