//! JSON Schema validation with `schema/circleci-config.schema.json` (draft 2020-12, compiled
//! once per process), and the mapping of each violation back to the YAML: its JSON pointer
//! becomes a node, the node a span (the key for "missing"/"unknown key" problems, the value
//! otherwise), and the violation a sentence (see [`super::schema_text`]).

use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

use jsonschema::error::ValidationErrorKind;
use jsonschema::{Draft, ValidationError, Validator};
use serde_json::Value;

use super::schema_text;
use crate::diagnostic::Diagnostic;
use crate::source::Span;
use crate::yaml::{Entry, Node};

const SCHEMA_TEXT: &str = include_str!("../../schema/circleci-config.schema.json");

pub(crate) static SCHEMA: LazyLock<Value> =
    LazyLock::new(|| serde_json::from_str(SCHEMA_TEXT).expect("the bundled schema is JSON"));

static VALIDATOR: LazyLock<Validator> = LazyLock::new(|| compile(&SCHEMA));

/// The schema's step-list definition on its own, for steps that the config's structure does not
/// place under a `steps:` key: the arguments and defaults of `steps`-typed parameters.
static STEPS: LazyLock<Validator> = LazyLock::new(|| {
    compile(&serde_json::json!({
        "$ref": "#/$defs/steps",
        "$defs": SCHEMA["$defs"].clone(),
    }))
});

fn compile(schema: &Value) -> Validator {
    jsonschema::options()
        .with_draft(Draft::Draft202012)
        .build(schema)
        .expect("the bundled schema compiles")
}

/// One violation, located in the YAML tree.
pub(crate) struct Violation<'e, 'n> {
    pub error: &'e ValidationError<'e>,
    /// Pointer from the document's root (`base` + the error's path below `root`).
    pub ptr: String,
    /// Pointer of `root` in the document: empty unless a part was validated on its own.
    pub base: &'n str,
    pub node: Option<&'n Node>,
    pub entry: Option<&'n Entry>,
    pub root: &'n Node,
    /// Keys reported as unknown in the same map.
    pub unknown: Vec<String>,
}

impl Violation<'_, '_> {
    /// The value's span, or the nearest existing ancestor's. An empty value (`key:` with
    /// nothing after it) has no text to point at, so its key stands in.
    pub(crate) fn value_span(&self) -> Span {
        match (self.node, self.entry) {
            (Some(n), Some(e)) if n.is_null() => e.key_span,
            (Some(n), _) => n.span,
            (None, _) => self.root.span.head(),
        }
    }

    /// The key that names the value (`bad:` for a problem inside the map `bad`); the file's
    /// start for the document itself.
    pub(crate) fn key_span(&self) -> Span {
        match (self.entry, self.ptr.is_empty()) {
            (Some(e), _) => e.key_span,
            (None, true) => Span::new(self.root.span.file, 0, 0),
            (None, false) => self.value_span().head(),
        }
    }
}

/// Every schema violation in the document, as diagnostics.
pub(crate) fn check(root: &Node) -> Vec<Diagnostic> {
    violations(&VALIDATOR, root, "")
}

/// Every schema violation in a list of steps found at `base` (a pointer into the document),
/// reported exactly as the same steps under a job's `steps:` would be.
pub(crate) fn check_steps(steps: &Node, base: &str) -> Vec<Diagnostic> {
    violations(&STEPS, steps, base)
}

fn violations(validator: &Validator, root: &Node, base: &str) -> Vec<Diagnostic> {
    let instance = root.to_json();
    let errors: Vec<ValidationError<'_>> = validator.iter_errors(&instance).collect();
    // Pointers of one-key maps with several keys; a set, as a config can have tens of
    // thousands of them and every error is checked against each (issue 9).
    let one_key: HashSet<&str> = errors
        .iter()
        .filter(|e| matches!(e.kind(), ValidationErrorKind::MaxProperties { limit: 1 }))
        .map(|e| e.instance_path().as_str())
        .collect();
    let mut unknown: HashMap<&str, Vec<String>> = HashMap::new();
    for error in &errors {
        if let ValidationErrorKind::AdditionalProperties { unexpected } = error.kind() {
            unknown
                .entry(error.instance_path().as_str())
                .or_default()
                .extend(unexpected.iter().cloned());
        }
    }
    let mut out = Vec::new();
    for error in &errors {
        let ptr = error.instance_path().as_str();
        // A one-key map with several keys: the keys' own errors only repeat the problem.
        if inside_any(ptr, &one_key) {
            continue;
        }
        let mut violation = locate(error, root, base);
        violation.unknown = unknown.get(ptr).cloned().unwrap_or_default();
        out.extend(schema_text::describe(&violation));
    }
    out
}

/// Whether `ptr` lies below one of `maps` (pointers): some `/` of it ends one of them.
fn inside_any(ptr: &str, maps: &HashSet<&str>) -> bool {
    !maps.is_empty()
        && ptr
            .match_indices('/')
            .any(|(at, _)| maps.contains(&ptr[..at]))
}

/// Finds the node a violation is about (or its nearest existing ancestor) below `root`, which
/// sits at pointer `base` in the document.
pub(crate) fn locate<'e, 'n>(
    error: &'e ValidationError<'e>,
    root: &'n Node,
    base: &'n str,
) -> Violation<'e, 'n> {
    let path = error.instance_path().as_str();
    let mut violation = Violation {
        error,
        ptr: format!("{base}{path}"),
        base,
        node: None,
        entry: None,
        root,
        unknown: Vec::new(),
    };
    let mut probe = path;
    loop {
        if let Some((node, entry)) = root.pointer(probe) {
            violation.node = Some(node);
            violation.entry = if probe.len() == path.len() {
                entry
            } else {
                None
            };
            return violation;
        }
        match probe.rfind('/') {
            Some(i) => probe = &probe[..i],
            None => return violation,
        }
    }
}

/// The schema object at a JSON pointer into the schema (`/$defs/job/properties/steps`).
pub(crate) fn schema_at(pointer: &str) -> Option<&'static Value> {
    SCHEMA.pointer(pointer)
}

/// Resolves a local `$ref` (`#/$defs/x`) to its schema.
pub(crate) fn resolve_ref(schema: &'static Value) -> &'static Value {
    let mut current = schema;
    for _ in 0..8 {
        let Some(target) = current.get("$ref").and_then(Value::as_str) else {
            break;
        };
        match target.strip_prefix('#').and_then(schema_at) {
            Some(next) => current = next,
            None => break,
        }
    }
    current
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inside_any_matches_whole_tokens_below_a_map() {
        let maps: HashSet<&str> = ["/jobs/a/steps/0", ""].into_iter().collect();
        assert!(inside_any("/jobs/a/steps/0/run", &maps));
        assert!(inside_any("/x", &maps), "everything is below the document");
        let maps: HashSet<&str> = ["/jobs/a/steps/0"].into_iter().collect();
        assert!(!inside_any("/jobs/a/steps/0", &maps), "the map itself");
        assert!(!inside_any("/jobs/a/steps/01/run", &maps));
        assert!(!inside_any("/jobs/b/steps/0/run", &maps));
    }

    #[test]
    fn bundled_schema_compiles() {
        assert!(VALIDATOR.is_valid(&serde_json::json!({"version": 2.1})));
        assert!(!VALIDATOR.is_valid(&serde_json::json!({"version": true})));
    }
}
