//! An index of what a config defines: jobs, commands and executors of the config itself and of
//! each inline orb (a namespace each), the registry orbs it imports, and its pipeline
//! parameters. Name lookup follows CircleCI's rules: `name` is looked up in the current
//! namespace, `alias/name` in the orb that `alias` names there.
//!
//! Built once from the YAML tree; reports nothing itself.

use std::cell::Cell;

use indexmap::IndexMap;

use crate::yaml::{Entry, Map, Node, pointer_token};

pub(crate) use crate::process::language::{ElementKind, NsId, ROOT};

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

/// What an orb alias stands for.
#[derive(Clone, Copy, Debug)]
pub(crate) enum OrbLink {
    Inline(NsId),
    Remote(usize),
}

/// The config itself or one inline orb.
#[derive(Debug)]
pub(crate) struct Namespace<'a> {
    pub in_orb: bool,
    pub jobs: IndexMap<&'a str, Def<'a>>,
    pub commands: IndexMap<&'a str, Def<'a>>,
    pub executors: IndexMap<&'a str, Def<'a>>,
    pub orbs: IndexMap<&'a str, OrbLink>,
}

impl<'a> Namespace<'a> {
    pub(crate) fn defs(&self, kind: ElementKind) -> &IndexMap<&'a str, Def<'a>> {
        match kind {
            ElementKind::Job => &self.jobs,
            ElementKind::Command => &self.commands,
            ElementKind::Executor => &self.executors,
        }
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
pub(crate) type Lookup<'m, 'a> = crate::process::language::Lookup<&'m Def<'a>>;

#[derive(Debug)]
pub(crate) struct Model<'a> {
    pub root: &'a Node,
    pub namespaces: Vec<Namespace<'a>>,
    pub remote: Vec<RemoteOrb<'a>>,
    pub pipeline: Option<&'a Map>,
}

impl<'a> Model<'a> {
    pub(crate) fn build(root: &'a Node) -> Self {
        let mut model = Model {
            root,
            namespaces: Vec::new(),
            remote: Vec::new(),
            pipeline: root.get("parameters").and_then(Node::as_map),
        };
        if let Some(map) = root.as_map() {
            model.add_namespace(map, String::new(), false);
        }
        model
    }

    fn add_namespace(&mut self, map: &'a Map, ptr: String, in_orb: bool) -> NsId {
        let id = self.namespaces.len();
        self.namespaces.push(Namespace {
            in_orb,
            jobs: defs(map, ElementKind::Job, id, &ptr),
            commands: defs(map, ElementKind::Command, id, &ptr),
            executors: defs(map, ElementKind::Executor, id, &ptr),
            orbs: IndexMap::new(),
        });
        let Some(orbs) = map.get("orbs").and_then(Node::as_map) else {
            return id;
        };
        for entry in &orbs.entries {
            let orb_ptr = format!("{ptr}/orbs/{}", pointer_token(&entry.key));
            let link = match &entry.value.kind {
                crate::yaml::Kind::Map(inline) => {
                    OrbLink::Inline(self.add_namespace(inline, orb_ptr, true))
                }
                _ => {
                    self.remote.push(RemoteOrb {
                        alias: &entry.key,
                        entry,
                        ptr: orb_ptr,
                        used: Cell::new(false),
                    });
                    OrbLink::Remote(self.remote.len() - 1)
                }
            };
            self.namespaces[id].orbs.insert(&entry.key, link);
        }
        id
    }

    pub(crate) fn ns(&self, id: NsId) -> &Namespace<'a> {
        &self.namespaces[id]
    }

    /// Looks `name` up from inside namespace `ns`; a use of a registry orb is counted.
    pub(crate) fn lookup(&self, ns: NsId, kind: ElementKind, name: &str) -> Lookup<'_, 'a> {
        // An exact name first: processed (2.0) configs name orb jobs `orb/job` literally.
        if let Some(def) = self.ns(ns).defs(kind).get(name) {
            return Lookup::Found(def);
        }
        let Some((alias, rest)) = name.split_once('/') else {
            return Lookup::NotFound;
        };
        match self.ns(ns).orbs.get(alias) {
            None => Lookup::NoSuchOrb,
            Some(OrbLink::Remote(i)) => {
                self.remote[*i].used.set(true);
                Lookup::MissingOrb
            }
            Some(OrbLink::Inline(child)) => self
                .ns(*child)
                .defs(kind)
                .get(rest)
                .map_or(Lookup::NotFound, Lookup::Found),
        }
    }

    /// Every name `kind` can be called by from `ns` (for suggestions).
    pub(crate) fn visible_names(&self, ns: NsId, kind: ElementKind) -> Vec<String> {
        let here = self.ns(ns);
        let mut names: Vec<String> = here.defs(kind).keys().map(|k| (*k).to_string()).collect();
        for (alias, link) in &here.orbs {
            if let OrbLink::Inline(child) = link {
                names.extend(
                    self.ns(*child)
                        .defs(kind)
                        .keys()
                        .map(|k| format!("{alias}/{k}")),
                );
            }
        }
        names
    }

    /// A declared pipeline parameter.
    pub(crate) fn pipeline_param(&self, name: &str) -> Option<&'a Entry> {
        self.pipeline?.entry(name)
    }
}

fn defs<'a>(map: &'a Map, kind: ElementKind, ns: NsId, ptr: &str) -> IndexMap<&'a str, Def<'a>> {
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
            (entry.key.as_str(), def)
        })
        .collect()
}
