//! How schema messages name things: the value that failed (`` `key` ``, `item 2 of `steps``),
//! the object a key belongs to (`job `build``, `the `run` step`), and JSON types in words.

use jsonschema::JsonType;
use jsonschema::error::TypeKind;
use serde_json::Value;

use super::schema::Violation;
use super::schema_text::SchemaInfo;

pub(crate) fn plural(n: u64) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// `` `key` `` for a map value, `item 2 of `steps`` for a list item, `the config` for the root.
pub(crate) fn subject(v: &Violation<'_, '_>) -> String {
    let tokens = tokens(&v.ptr);
    match tokens.as_slice() {
        [] => "the config".to_string(),
        [.., parent, last] if is_index(last) => {
            let n: usize = last.parse().unwrap_or(0);
            format!("item {} of `{parent}`", n + 1)
        }
        [.., last] => format!("`{last}`"),
    }
}

fn tokens(ptr: &str) -> Vec<String> {
    ptr.split('/')
        .skip(1)
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect()
}

pub(crate) fn is_index(token: &str) -> bool {
    !token.is_empty() && token.bytes().all(|b| b.is_ascii_digit())
}

/// The object a missing or unknown key belongs to, as a message reads it.
pub(crate) fn owner(v: &Violation<'_, '_>, info: &SchemaInfo) -> String {
    let t = tokens(&v.ptr);
    let n = t.len();
    let at = |i: usize| t.get(i).map(String::as_str);
    // See: fuzz/regressions/unknown-key-in-machine.yml (`n - 4` underflowed when n == 3).
    let section_owner = n < 3 || (n >= 4 && at(n - 4) == Some("orbs"));
    match (n.checked_sub(2).and_then(at), t.last().map(String::as_str)) {
        (None, None) => "the config".into(),
        (Some("jobs"), Some(name)) if !is_index(name) && section_owner => format!("job `{name}`"),
        (Some("commands"), Some(name)) if section_owner => format!("command `{name}`"),
        (Some("executors"), Some(name)) if section_owner => format!("executor `{name}`"),
        (Some("workflows"), Some(name)) if n == 2 => format!("workflow `{name}`"),
        (Some("orbs"), Some(name)) => format!("orb `{name}`"),
        (Some("parameters"), Some(name)) => format!("parameter `{name}`"),
        (Some(index), Some(name)) if is_index(index) && n >= 3 && at(n - 3) == Some("jobs") => {
            format!("the workflow entry of job `{name}`")
        }
        (Some(index), Some(name))
            if is_index(index)
                && n >= 3
                && matches!(at(n - 3), Some("steps" | "pre-steps" | "post-steps")) =>
        {
            format!("the `{name}` step")
        }
        // A step of a list given as an argument (under the parameter's own name).
        (Some(index), Some(name))
            if is_index(index) && info.title.is_some_and(|t| t.ends_with(" step")) =>
        {
            format!("the `{name}` step")
        }
        (Some("docker"), Some(index)) if is_index(index) => {
            format!("docker image {}", index.parse::<usize>().unwrap_or(0) + 1)
        }
        (_, Some(name)) => match info.title {
            Some(title) if !title.contains(name) => format!("{title} `{name}`"),
            _ => format!("`{name}`"),
        },
        (_, None) => "the config".into(),
    }
}

pub(crate) fn types(kind: &TypeKind) -> String {
    let mut all: Vec<JsonType> = match kind {
        TypeKind::Single(t) => vec![*t],
        TypeKind::Multiple(set) => set.iter().collect(),
    };
    all.sort_by_key(|t| type_rank(*t));
    let names: Vec<&str> = all.into_iter().map(type_name).collect();
    match names.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        _ => names.concat(),
    }
}

/// Strings first and "empty" last reads best: "a string or a number", "a map or empty".
fn type_rank(t: JsonType) -> u8 {
    match t {
        JsonType::String => 0,
        JsonType::Integer => 1,
        JsonType::Number => 2,
        JsonType::Boolean => 3,
        JsonType::Array => 4,
        JsonType::Object => 5,
        JsonType::Null => 6,
    }
}

fn type_name(t: JsonType) -> &'static str {
    match t {
        JsonType::Array => "a list",
        JsonType::Boolean => "a boolean (true or false)",
        JsonType::Integer => "an integer",
        JsonType::Null => "empty",
        JsonType::Number => "a number",
        JsonType::Object => "a map",
        JsonType::String => "a string",
    }
}

pub(crate) fn scalar(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
