//! Turns one JSON Schema violation into a sentence a person understands, with a hint taken
//! from the schema's own `title`/`description`, and a "did you mean" for misspelled keys and
//! values. `anyOf`/`oneOf` failures are explained by their best-matching branch, never as
//! "not valid under any of the schemas".

use jsonschema::error::{TypeKind, ValidationErrorKind};
use jsonschema::{JsonType, ValidationError};
use serde_json::Value;

use super::arguments::describe as describe_node;
use super::schema::{Violation, locate, resolve_ref, schema_at};
use super::suggest::{did_you_mean, one_of};
use crate::diagnostic::Diagnostic;
use crate::yaml::{Kind, Node};

/// The diagnostics for one violation (several for several unknown keys).
pub(crate) fn describe(v: &Violation<'_, '_>) -> Vec<Diagnostic> {
    let info = SchemaInfo::of(v.error);
    let diags = match v.error.kind() {
        ValidationErrorKind::AdditionalProperties { unexpected } => {
            unknown_keys(v, &info, unexpected)
        }
        ValidationErrorKind::AnyOf { context } | ValidationErrorKind::OneOfNotValid { context } => {
            return any_of(v, &info, context);
        }
        ValidationErrorKind::Required { property } => required(v, &info, property),
        kind => vec![single(v, &info, kind)],
    };
    diags.into_iter().map(|d| d.with_pointer(&v.ptr)).collect()
}

/// What the schema says about the place that failed.
struct SchemaInfo {
    title: Option<&'static str>,
    description: Option<&'static str>,
    /// The schema object holding the failing keyword.
    schema: Option<&'static Value>,
}

impl SchemaInfo {
    fn of(error: &ValidationError<'_>) -> SchemaInfo {
        let path = error.schema_path().as_str();
        let parent = path.rfind('/').map_or("", |i| &path[..i]);
        let mut info = SchemaInfo {
            title: None,
            description: None,
            schema: schema_at(parent),
        };
        let mut probe = parent;
        loop {
            if let Some(schema) = schema_at(probe) {
                info.title = info.title.or_else(|| text(schema, "title"));
                info.description = info.description.or_else(|| text(schema, "description"));
            }
            if info.title.is_some() && info.description.is_some() {
                break;
            }
            match probe.rfind('/') {
                Some(i) => probe = &probe[..i],
                None => break,
            }
        }
        info
    }

    fn hint(&self) -> Option<String> {
        self.description.map(str::to_string)
    }
}

fn text(schema: &'static Value, key: &str) -> Option<&'static str> {
    schema.get(key).and_then(Value::as_str)
}

fn with_hint(d: Diagnostic, hint: Option<String>) -> Diagnostic {
    match hint {
        Some(h) => d.with_hint(h),
        None => d,
    }
}

fn single(v: &Violation<'_, '_>, info: &SchemaInfo, kind: &ValidationErrorKind) -> Diagnostic {
    let subject = subject(v);
    let value = v.node.map_or_else(|| "missing".to_string(), describe_node);
    let shown = v.node.and_then(Node::scalar_text).unwrap_or_default();
    let (span, message, hint) = match kind {
        ValidationErrorKind::Type { kind } => (
            v.value_span(),
            format!("{subject} must be {}, but it is {value}", types(kind)),
            info.hint(),
        ),
        ValidationErrorKind::Enum { options } => return choice(v, info, &subject, &shown, options),
        ValidationErrorKind::Constant { expected_value } => (
            v.value_span(),
            format!(
                "{subject} must be `{}`, not `{shown}`",
                scalar(expected_value)
            ),
            info.hint(),
        ),
        ValidationErrorKind::Minimum { limit } => (
            v.value_span(),
            format!("{subject} must be at least {limit}, not {shown}"),
            info.hint(),
        ),
        ValidationErrorKind::Maximum { limit } => (
            v.value_span(),
            format!("{subject} must be at most {limit}, not {shown}"),
            info.hint(),
        ),
        ValidationErrorKind::ExclusiveMinimum { limit } => (
            v.value_span(),
            format!("{subject} must be more than {limit}, not {shown}"),
            info.hint(),
        ),
        ValidationErrorKind::ExclusiveMaximum { limit } => (
            v.value_span(),
            format!("{subject} must be less than {limit}, not {shown}"),
            info.hint(),
        ),
        ValidationErrorKind::Pattern { .. } => (
            v.value_span(),
            format!(
                "{subject}: `{shown}` is not a valid {}",
                info.title.unwrap_or("value")
            ),
            info.hint(),
        ),
        ValidationErrorKind::MinLength { .. } => (
            v.value_span(),
            format!("{subject} must not be empty"),
            info.hint(),
        ),
        ValidationErrorKind::MaxLength { limit } => (
            v.value_span(),
            format!("{subject} must be at most {limit} characters long"),
            info.hint(),
        ),
        ValidationErrorKind::MinItems { limit } => (
            v.value_span(),
            format!("{subject} needs at least {limit} item{}", plural(*limit)),
            info.hint(),
        ),
        ValidationErrorKind::MaxItems { limit } => (
            v.value_span(),
            format!("{subject} takes at most {limit} item{}", plural(*limit)),
            info.hint(),
        ),
        ValidationErrorKind::MinProperties { limit } => (
            v.key_span(),
            format!(
                "{} needs at least {limit} key{}",
                owner(v, info),
                plural(*limit)
            ),
            info.hint(),
        ),
        ValidationErrorKind::MaxProperties { limit } => return too_many_keys(v, info, *limit),
        ValidationErrorKind::Not { .. } | ValidationErrorKind::FalseSchema => {
            (v.key_span(), not_allowed(v, &subject), info.hint())
        }
        ValidationErrorKind::PropertyNames { error } => return property_name(v, error),
        ValidationErrorKind::UniqueItems => (
            v.value_span(),
            format!("{subject} has the same item twice"),
            info.hint(),
        ),
        _ => (
            v.value_span(),
            format!("{subject}: {}", v.error),
            info.hint(),
        ),
    };
    with_hint(Diagnostic::error(span, message), hint)
}

/// A key the schema forbids: alone, or (under `dependentSchemas`) next to another key.
fn not_allowed(v: &Violation<'_, '_>, subject: &str) -> String {
    let path = v.error.evaluation_path().as_str();
    let other = path
        .rsplit_once("/dependentSchemas/")
        .and_then(|(_, rest)| rest.split('/').next());
    match other {
        Some(key) => format!("{subject} cannot be used together with `{key}`"),
        None => format!("{subject} is not allowed here"),
    }
}

fn plural(n: u64) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// `` `key` `` for a map value, `item 2 of `steps`` for a list item, `the config` for the root.
fn subject(v: &Violation<'_, '_>) -> String {
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

fn is_index(token: &str) -> bool {
    !token.is_empty() && token.bytes().all(|b| b.is_ascii_digit())
}

/// The object a missing or unknown key belongs to, as a message reads it.
fn owner(v: &Violation<'_, '_>, info: &SchemaInfo) -> String {
    let t = tokens(&v.ptr);
    let n = t.len();
    let at = |i: usize| t.get(i).map(String::as_str);
    let section_owner = n < 3 || at(n - 3).is_some_and(|_| at(n - 4) == Some("orbs"));
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

fn types(kind: &TypeKind) -> String {
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

fn scalar(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn choice(
    v: &Violation<'_, '_>,
    info: &SchemaInfo,
    subject: &str,
    shown: &str,
    options: &Value,
) -> Diagnostic {
    let mut allowed: Vec<String> = Vec::new();
    for option in options.as_array().into_iter().flatten() {
        let text = scalar(option);
        if !allowed.contains(&text) {
            allowed.push(text);
        }
    }
    let found = if shown.is_empty() {
        "empty".to_string()
    } else {
        format!("`{shown}`")
    };
    let mut message = format!("{subject} must be {}, not {found}", one_of(&allowed));
    if let Some(best) = did_you_mean(shown, allowed.iter().map(String::as_str)) {
        message.push_str(&format!("; did you mean `{best}`?"));
    }
    let hint = info.hint().filter(|h| !h.starts_with("one of "));
    with_hint(Diagnostic::error(v.value_span(), message), hint)
}

fn required(v: &Violation<'_, '_>, info: &SchemaInfo, property: &Value) -> Vec<Diagnostic> {
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

fn unknown_keys(
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

fn too_many_keys(v: &Violation<'_, '_>, info: &SchemaInfo, limit: u64) -> Diagnostic {
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

fn property_name(v: &Violation<'_, '_>, error: &ValidationError<'_>) -> Diagnostic {
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

/// `anyOf`/`oneOf`: all branches only miss a key -> "needs one of"; all fail right here ->
/// "is not a valid <title>"; otherwise the branch that got furthest explains the problem.
fn any_of(
    v: &Violation<'_, '_>,
    info: &SchemaInfo,
    context: &[Vec<ValidationError<'static>>],
) -> Vec<Diagnostic> {
    let missing: Option<Vec<String>> = context
        .iter()
        .map(|branch| match branch.as_slice() {
            [only] => match only.kind() {
                ValidationErrorKind::Required { property } => Some(scalar(property)),
                _ => None,
            },
            _ => None,
        })
        .collect();
    if let Some(keys) = missing.filter(|k| !k.is_empty()) {
        let d = Diagnostic::error(
            v.key_span(),
            format!("{} needs {}", owner(v, info), one_of(&keys)),
        );
        return vec![with_hint(d, info.hint()).with_pointer(&v.ptr)];
    }
    let here = v.error.instance_path().as_str();
    let best = context
        .iter()
        .filter(|branch| !branch.is_empty())
        .filter(|branch| {
            !branch.iter().any(|e| {
                e.instance_path().as_str() == here
                    && matches!(e.kind(), ValidationErrorKind::Type { .. })
            })
        })
        .max_by_key(|branch| {
            (
                branch
                    .iter()
                    .map(|e| e.instance_path().as_str().len())
                    .max()
                    .unwrap_or(0),
                std::cmp::Reverse(branch.len()),
            )
        });
    match best {
        Some(branch) if branch.iter().any(|e| e.instance_path().as_str() != here) => branch
            .iter()
            .flat_map(|e| describe(&locate(e, v.root)))
            .collect(),
        _ => {
            let what = info.title.unwrap_or("value");
            let shown = match v.node.map(|n| &n.kind) {
                Some(Kind::Str(s)) => format!(" `{s}`"),
                _ => String::new(),
            };
            let d = Diagnostic::error(
                v.value_span(),
                format!("{}{shown} is not a valid {what}", subject(v)),
            );
            vec![with_hint(d, info.hint()).with_pointer(&v.ptr)]
        }
    }
}
