//! Schema messages about keys: a required key that is missing (or misspelled), unknown keys with
//! a "did you mean", a one-key map with several keys, forbidden keys and invalid key names.

use jsonschema::ValidationError;
use serde_json::Value;

use super::schema::{Violation, resolve_ref};
use super::schema_text::{SchemaInfo, with_hint};
use super::schema_words::{owner, scalar};
use super::suggest::{did_you_mean, one_of};
use crate::diagnostic::Diagnostic;
use crate::yaml::Node;

/// A key the schema forbids: alone, or (under `dependentSchemas`) next to another key.
pub(crate) fn not_allowed(v: &Violation<'_, '_>, subject: &str) -> String {
    let path = v.error.evaluation_path().as_str();
    let other = path
        .rsplit_once("/dependentSchemas/")
        .and_then(|(_, rest)| rest.split('/').next());
    match other {
        Some(key) => format!("{subject} cannot be used together with `{key}`"),
        None => format!("{subject} is not allowed here"),
    }
}

pub(crate) fn required(
    v: &Violation<'_, '_>,
    info: &SchemaInfo,
    property: &Value,
) -> Vec<Diagnostic> {
    let name = scalar(property);
    if v.ptr.is_empty() && name == "version" {
        return vec![
            Diagnostic::error(v.key_span(), "the config has no `version`")
                .with_hint("start the file with `version: 2.1`"),
        ];
    }
    let mut message = format!("{} is missing `{name}`", owner(v, info));
    let written: Vec<&str> = v
        .node
        .and_then(Node::as_map)
        .map(|m| m.entries.iter().map(|e| e.key.as_str()).collect())
        .unwrap_or_default();
    let hint = match did_you_mean(&name, written.iter().copied()) {
        // The unknown-key error on the misspelled key already says "did you mean".
        Some(typo) if v.unknown.iter().any(|k| k == typo) => return Vec::new(),
        Some(typo) => {
            message.push_str(&format!("; is `{typo}` a misspelling of it?"));
            Some(format!("rename `{typo}` to `{name}`"))
        }
        None => property_description(info, &name).or_else(|| info.hint()),
    };
    vec![with_hint(Diagnostic::error(v.key_span(), message), hint)]
}

/// The description of `name` under the failing schema's `properties`.
fn property_description(info: &SchemaInfo, name: &str) -> Option<String> {
    let property = info.schema?.get("properties")?.get(name)?;
    let text = property
        .get("description")
        .or_else(|| resolve_ref(property).get("description"))?
        .as_str()?;
    Some(format!("`{name}`: {text}"))
}

pub(crate) fn unknown_keys(
    v: &Violation<'_, '_>,
    info: &SchemaInfo,
    unexpected: &[String],
) -> Vec<Diagnostic> {
    let known: Vec<&str> = info
        .schema
        .and_then(|s| s.get("properties"))
        .and_then(Value::as_object)
        .map(|p| p.keys().map(String::as_str).collect())
        .unwrap_or_default();
    let place = owner(v, info);
    unexpected
        .iter()
        .map(|key| {
            let span = v
                .node
                .and_then(|n| n.as_map())
                .and_then(|m| m.entry(key))
                .map_or(v.key_span(), |e| e.key_span);
            let mut message = format!("unknown key `{key}` in {place}");
            if let Some(best) = did_you_mean(key, known.iter().copied()) {
                message.push_str(&format!("; did you mean `{best}`?"));
            }
            let hint = if known.is_empty() {
                info.hint()
            } else {
                Some(format!("{place} accepts {}", one_of(&known)))
            };
            with_hint(Diagnostic::error(span, message), hint)
        })
        .collect()
}

pub(crate) fn too_many_keys(v: &Violation<'_, '_>, info: &SchemaInfo, limit: u64) -> Diagnostic {
    let entries = v
        .node
        .and_then(Node::as_map)
        .map(|m| m.entries.as_slice())
        .unwrap_or_default();
    let keys: Vec<&str> = entries.iter().map(|e| e.key.as_str()).collect();
    let what = info.title.unwrap_or("map");
    let all = one_of(&keys).replace(" or ", " and ");
    let limit_text = if limit == 1 {
        "one key".to_string()
    } else {
        format!("{limit} keys")
    };
    let message = format!(
        "a {what} takes {limit_text}, but this one has {}: {all}",
        keys.len()
    );
    // Point at the first key too many: that is the line to fix.
    let span = usize::try_from(limit)
        .ok()
        .and_then(|l| entries.get(l))
        .map_or(v.value_span(), |e| e.key_span);
    let hint = match keys.as_slice() {
        [first, rest @ ..] if limit == 1 && !rest.is_empty() => {
            let (verb, pronoun) = if rest.len() == 1 {
                ("belongs", "it")
            } else {
                ("belong", "them")
            };
            let rest = one_of(rest).replace(" or ", " and ");
            format!(
                "if {rest} {verb} to `{first}`, indent {pronoun} under `{first}:`; otherwise start each on its own `- ` line"
            )
        }
        _ => info.hint().unwrap_or_default(),
    };
    Diagnostic::error(span, message).with_hint(hint)
}

pub(crate) fn property_name(v: &Violation<'_, '_>, error: &ValidationError<'_>) -> Diagnostic {
    let name = match error.instance().as_ref() {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let span = v
        .node
        .and_then(Node::as_map)
        .and_then(|m| m.entry(&name))
        .map_or(v.value_span(), |e| e.key_span);
    let info = SchemaInfo::of(error);
    let what = info.title.unwrap_or("name");
    with_hint(
        Diagnostic::error(span, format!("`{name}` is not a valid {what}")),
        Some(
            "names start with a letter and use letters, digits, `_`, `-`, `.` and `/`".to_string(),
        ),
    )
}
