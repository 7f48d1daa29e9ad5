//! The YAML document model every later stage works on: values with the span they came from.
//!
//! Anchors, aliases and `<<` merges are already resolved here. Plain scalars keep their raw
//! text so that `FOO: 1.10` can still reach an environment as `1.10`.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use crate::source::Span;

/// A YAML value and where it was written.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub span: Span,
    pub kind: Kind,
    /// The source text of a plain non-string scalar (`1.10`, `yes`, `0x1F`, `~`).
    pub raw: Option<Box<str>>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Kind {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Map),
}

/// A mapping that keeps its keys in source order.
///
/// Maps of [`INDEXED`] entries or more also keep a hash index from key to position, so that a
/// config with tens of thousands of jobs is not compiled in quadratic time (issue 9). The index
/// is rebuilt whenever the number of entries changed behind its back (`entries` is public); a
/// position it gives is checked against the entry before it is used.
#[derive(Clone, Default)]
pub struct Map {
    pub entries: Vec<Entry>,
    index: Index,
}

/// Below this many entries a linear search is faster than hashing.
const INDEXED: usize = 32;

/// Key -> first position, with the number of entries it was built for; boxed, so that a map
/// (and so every node) grows by 16 bytes only.
#[derive(Default)]
struct Index(Mutex<Option<Box<Built>>>);

/// The entry count an index was built for, and the index.
type Built = (usize, HashMap<String, usize>);

impl Clone for Index {
    /// A copy starts without an index; it is built on first use.
    fn clone(&self) -> Self {
        Index::default()
    }
}

impl PartialEq for Map {
    fn eq(&self, other: &Self) -> bool {
        self.entries == other.entries
    }
}

impl std::fmt::Debug for Map {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Map")
            .field("entries", &self.entries)
            .finish()
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    pub key: String,
    pub key_span: Span,
    pub value: Node,
}

impl Map {
    pub fn from_entries(entries: Vec<Entry>) -> Map {
        Map {
            entries,
            index: Index::default(),
        }
    }

    /// Position of the first entry with `key`.
    fn position(&self, key: &str) -> Option<usize> {
        if self.entries.len() < INDEXED {
            return self.entries.iter().position(|e| e.key == key);
        }
        let mut guard = self.index.0.lock().unwrap_or_else(PoisonError::into_inner);
        let len = self.entries.len();
        if !matches!(guard.as_deref(), Some((built, _)) if *built == len) {
            *guard = Some(Box::new((len, self.build_index())));
        }
        let (_, index) = guard.as_deref().expect("built above");
        match index.get(key) {
            Some(&i) if self.entries.get(i).is_some_and(|e| e.key == key) => Some(i),
            // A key renamed in place: forget the index and search.
            Some(_) => {
                *guard = None;
                self.entries.iter().position(|e| e.key == key)
            }
            None => None,
        }
    }

    fn build_index(&self) -> HashMap<String, usize> {
        let mut index = HashMap::with_capacity(self.entries.len());
        for (i, e) in self.entries.iter().enumerate() {
            index.entry(e.key.clone()).or_insert(i);
        }
        index
    }

    pub fn get(&self, key: &str) -> Option<&Node> {
        self.entry(key).map(|e| &e.value)
    }

    pub fn get_mut(&mut self, key: &str) -> Option<&mut Node> {
        let i = self.position(key)?;
        Some(&mut self.entries[i].value)
    }

    pub fn entry(&self, key: &str) -> Option<&Entry> {
        self.position(key).map(|i| &self.entries[i])
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.position(key).is_some()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &Node)> {
        self.entries.iter().map(|e| (e.key.as_str(), &e.value))
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Sets `key`, replacing an existing value in place or appending a new entry.
    pub fn insert(&mut self, key: impl Into<String>, key_span: Span, value: Node) {
        let key = key.into();
        if let Some(i) = self.position(&key) {
            self.entries[i].value = value;
            return;
        }
        let len = self.entries.len();
        // Keep a fresh index fresh instead of rebuilding it for the next lookup.
        if let Some((built, index)) = self
            .index
            .0
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .as_deref_mut()
            .filter(|(built, _)| *built == len)
        {
            index.insert(key.clone(), len);
            *built = len + 1;
        }
        self.entries.push(Entry {
            key,
            key_span,
            value,
        });
    }

    pub fn remove(&mut self, key: &str) -> Option<Entry> {
        let pos = self.position(key)?;
        *self
            .index
            .0
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner) = None;
        Some(self.entries.remove(pos))
    }
}

impl Node {
    pub fn new(span: Span, kind: Kind) -> Self {
        Node {
            span,
            kind,
            raw: None,
        }
    }

    pub fn null(span: Span) -> Self {
        Node::new(span, Kind::Null)
    }

    pub fn string(span: Span, s: impl Into<String>) -> Self {
        Node::new(span, Kind::Str(s.into()))
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            Kind::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_map(&self) -> Option<&Map> {
        match &self.kind {
            Kind::Map(m) => Some(m),
            _ => None,
        }
    }

    pub fn as_map_mut(&mut self) -> Option<&mut Map> {
        match &mut self.kind {
            Kind::Map(m) => Some(m),
            _ => None,
        }
    }

    pub fn as_seq(&self) -> Option<&[Node]> {
        match &self.kind {
            Kind::Seq(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self.kind {
            Kind::Bool(b) => Some(b),
            _ => None,
        }
    }

    pub fn as_i64(&self) -> Option<i64> {
        match self.kind {
            Kind::Int(i) => Some(i),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self.kind, Kind::Null)
    }

    /// `node.get("jobs")` on a mapping; `None` on anything else.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.as_map()?.get(key)
    }

    /// A short name for the node's type, as a user reads it in an error message.
    pub fn type_name(&self) -> &'static str {
        match self.kind {
            Kind::Null => "null",
            Kind::Bool(_) => "boolean",
            Kind::Int(_) => "integer",
            Kind::Float(_) => "number",
            Kind::Str(_) => "string",
            Kind::Seq(_) => "list",
            Kind::Map(_) => "map",
        }
    }

    /// The scalar as text: the raw source text for plain scalars, the value for strings.
    /// `None` for sequences and mappings.
    pub fn scalar_text(&self) -> Option<String> {
        if let Some(raw) = &self.raw {
            return Some(raw.to_string());
        }
        Some(match &self.kind {
            Kind::Null => String::new(),
            Kind::Bool(b) => b.to_string(),
            Kind::Int(i) => i.to_string(),
            Kind::Float(f) => f.to_string(),
            Kind::Str(s) => s.clone(),
            Kind::Seq(_) | Kind::Map(_) => return None,
        })
    }

    /// [`Node::scalar_text`] of a node that is no longer needed: its string is moved, not copied.
    pub(crate) fn into_scalar_text(self) -> Option<String> {
        match (self.raw, self.kind) {
            (Some(raw), _) => Some(raw.into_string()),
            (None, Kind::Str(s)) => Some(s),
            (None, kind) => Node::new(self.span, kind).scalar_text(),
        }
    }

    /// Follows a JSON pointer (`/jobs/build/steps/0`). Returns the node and, when the last
    /// token is a mapping key, that key's entry (for its span).
    pub fn pointer(&self, pointer: &str) -> Option<(&Node, Option<&Entry>)> {
        let mut node = self;
        let mut entry = None;
        if pointer.is_empty() {
            return Some((node, None));
        }
        for token in pointer.strip_prefix('/')?.split('/') {
            let token = token.replace("~1", "/").replace("~0", "~");
            match &node.kind {
                Kind::Map(m) => {
                    let e = m.entry(&token)?;
                    entry = Some(e);
                    node = &e.value;
                }
                Kind::Seq(items) => {
                    node = items.get(token.parse::<usize>().ok()?)?;
                    entry = None;
                }
                _ => return None,
            }
        }
        Some((node, entry))
    }

    /// The JSON form used for schema validation.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value;
        match &self.kind {
            Kind::Null => Value::Null,
            Kind::Bool(b) => Value::Bool(*b),
            Kind::Int(i) => Value::from(*i),
            Kind::Float(f) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
            Kind::Str(s) => Value::String(s.clone()),
            Kind::Seq(items) => Value::Array(items.iter().map(Node::to_json).collect()),
            Kind::Map(m) => Value::Object(
                m.entries
                    .iter()
                    .map(|e| (e.key.clone(), e.value.to_json()))
                    .collect(),
            ),
        }
    }
}

/// Escapes one JSON-pointer token.
pub fn pointer_token(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}
