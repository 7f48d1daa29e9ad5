//! Small readers that turn YAML [`Node`]s into plain Rust values for the typed model, each
//! pushing a diagnostic (with the node's span and JSON pointer) when the shape is wrong.
//! No defaults or CircleCI rules live here; only "what type is this value".

use crate::diagnostic::Diagnostic;
use crate::yaml::{Kind, Node, pointer_token};

/// Collects the problems found while reading one config.
#[derive(Default)]
pub(crate) struct Reader {
    pub(crate) diags: Vec<Diagnostic>,
}

impl Reader {
    pub(crate) fn error(&mut self, node: &Node, pointer: &str, message: impl Into<String>) {
        self.diags
            .push(Diagnostic::error(node.span, message).with_pointer(pointer));
    }

    pub(crate) fn error_hint(
        &mut self,
        node: &Node,
        pointer: &str,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) {
        self.diags.push(
            Diagnostic::error(node.span, message)
                .with_pointer(pointer)
                .with_hint(hint),
        );
    }

    /// A scalar as text (`1.10` stays `1.10`); lists and maps are an error.
    pub(crate) fn text(&mut self, node: &Node, pointer: &str, what: &str) -> Option<String> {
        let text = node.scalar_text();
        if text.is_none() {
            self.error(
                node,
                pointer,
                format!("{what} must be a string, not a {}", node.type_name()),
            );
        }
        text
    }

    /// An optional scalar field of a mapping.
    pub(crate) fn opt_text(&mut self, map: &Node, key: &str, pointer: &str) -> Option<String> {
        let value = map.get(key)?;
        if value.is_null() {
            return None;
        }
        self.text(value, &child(pointer, key), &format!("`{key}`"))
    }

    /// A boolean field; YAML 1.1 `yes`/`no` are already booleans.
    pub(crate) fn opt_bool(&mut self, map: &Node, key: &str, pointer: &str) -> Option<bool> {
        let value = map.get(key)?;
        match &value.kind {
            Kind::Bool(b) => Some(*b),
            Kind::Str(s) if s == "true" => Some(true),
            Kind::Str(s) if s == "false" => Some(false),
            _ => {
                self.error(
                    value,
                    &child(pointer, key),
                    format!("`{key}` must be true or false"),
                );
                None
            }
        }
    }

    /// A non-negative integer field (written as a number or a numeric string).
    pub(crate) fn opt_u32(&mut self, map: &Node, key: &str, pointer: &str) -> Option<u32> {
        let value = map.get(key)?;
        let parsed = value
            .scalar_text()
            .and_then(|t| t.trim().parse::<u32>().ok());
        if parsed.is_none() {
            self.error(
                value,
                &child(pointer, key),
                format!("`{key}` must be a whole number"),
            );
        }
        parsed
    }

    /// A string, or a list of strings (`paths: [a, b]` or `paths: a`).
    pub(crate) fn strings(&mut self, node: &Node, pointer: &str, what: &str) -> Vec<String> {
        match &node.kind {
            Kind::Seq(items) => items
                .iter()
                .enumerate()
                .filter_map(|(i, item)| self.text(item, &index(pointer, i), what))
                .collect(),
            Kind::Null => Vec::new(),
            _ => self.text(node, pointer, what).into_iter().collect(),
        }
    }

    /// A command line: a list of words, or one string split with shell-word rules.
    pub(crate) fn words(&mut self, node: &Node, pointer: &str, what: &str) -> Option<Vec<String>> {
        if let Kind::Seq(_) = node.kind {
            return Some(self.strings(node, pointer, what));
        }
        let text = self.text(node, pointer, what)?;
        let words = shlex::split(&text);
        if words.is_none() {
            self.error(node, pointer, format!("{what} has an unterminated quote"));
        }
        words
    }

    /// An `environment`: a map, a list of `K=V` strings, or a list of one-key maps (the form
    /// some versions of `circleci config process` print). Values keep their source text.
    pub(crate) fn environment(&mut self, node: &Node, pointer: &str) -> Vec<(String, String)> {
        let mut out = Vec::new();
        match &node.kind {
            Kind::Map(map) => {
                for entry in &map.entries {
                    let p = child(pointer, &entry.key);
                    if let Some(v) = self.env_value(&entry.value, &p) {
                        out.push((entry.key.clone(), v));
                    }
                }
            }
            Kind::Seq(items) => {
                for (i, item) in items.iter().enumerate() {
                    let p = index(pointer, i);
                    if let Kind::Map(_) = item.kind {
                        out.extend(self.environment(item, &p));
                    } else if let Some(text) = self.text(item, &p, "an environment entry") {
                        out.extend(self.key_value(item, &p, &text));
                    }
                }
            }
            // One `KEY=value` string, as a 2.1 string parameter often leaves it.
            Kind::Str(text) => out.extend(self.key_value(node, pointer, text)),
            Kind::Null => {}
            _ => self.error(node, pointer, "`environment` must be a map of NAME: value"),
        }
        out
    }

    fn key_value(&mut self, node: &Node, pointer: &str, text: &str) -> Option<(String, String)> {
        match text.split_once('=') {
            Some((k, v)) if !k.is_empty() => Some((k.into(), v.into())),
            _ => {
                self.error_hint(
                    node,
                    pointer,
                    format!("environment entry `{text}` is not KEY=VALUE"),
                    "write it as `NAME=value`, or use a map `NAME: value`",
                );
                None
            }
        }
    }

    fn env_value(&mut self, value: &Node, pointer: &str) -> Option<String> {
        match value.kind {
            Kind::Seq(_) | Kind::Map(_) => {
                self.error(
                    value,
                    pointer,
                    "an environment value must be a string, number or boolean",
                );
                None
            }
            _ => value.scalar_text(),
        }
    }
}

/// The JSON pointer of a mapping key under `pointer`.
pub(crate) fn child(pointer: &str, key: &str) -> String {
    format!("{pointer}/{}", pointer_token(key))
}

/// The JSON pointer of a list item under `pointer`.
pub(crate) fn index(pointer: &str, i: usize) -> String {
    format!("{pointer}/{i}")
}
