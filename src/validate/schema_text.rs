//! Turns one JSON Schema violation into a sentence a person understands, with a hint taken
//! from the schema's own `title`/`description`, and a "did you mean" for misspelled keys and
//! values. `anyOf`/`oneOf` failures are explained by their best-matching branch, never as
//! "not valid under any of the schemas".

use jsonschema::ValidationError;
use jsonschema::error::ValidationErrorKind;
use serde_json::Value;

use super::arguments::describe as describe_node;
use super::schema::{Violation, locate, schema_at};
use super::schema_keys::{not_allowed, property_name, required, too_many_keys, unknown_keys};
use super::schema_words::{owner, plural, scalar, subject, types};
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
pub(crate) struct SchemaInfo {
    pub title: Option<&'static str>,
    pub description: Option<&'static str>,
    /// The schema object holding the failing keyword.
    pub schema: Option<&'static Value>,
}

impl SchemaInfo {
    pub(crate) fn of(error: &ValidationError<'_>) -> SchemaInfo {
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

    pub(crate) fn hint(&self) -> Option<String> {
        self.description.map(str::to_string)
    }
}

fn text(schema: &'static Value, key: &str) -> Option<&'static str> {
    schema.get(key).and_then(Value::as_str)
}

pub(crate) fn with_hint(d: Diagnostic, hint: Option<String>) -> Diagnostic {
    match hint {
        Some(h) => d.with_hint(h),
        None => d,
    }
}

fn single(v: &Violation<'_, '_>, info: &SchemaInfo, kind: &ValidationErrorKind) -> Diagnostic {
    let subject = subject(v);
    let shown = v.node.and_then(Node::scalar_text).unwrap_or_default();
    let (span, message) = match kind {
        ValidationErrorKind::Enum { options } => return choice(v, info, &subject, &shown, options),
        ValidationErrorKind::MaxProperties { limit } => return too_many_keys(v, info, *limit),
        ValidationErrorKind::PropertyNames { error } => return property_name(v, error),
        ValidationErrorKind::MinProperties { limit } => (
            v.key_span(),
            format!(
                "{} needs at least {limit} key{}",
                owner(v, info),
                plural(*limit)
            ),
        ),
        ValidationErrorKind::Not { .. } | ValidationErrorKind::FalseSchema => {
            (v.key_span(), not_allowed(v, &subject))
        }
        kind => (
            v.value_span(),
            value_message(v, info, kind, &subject, &shown),
        ),
    };
    with_hint(Diagnostic::error(span, message), info.hint())
}

/// The sentence for a value of the wrong type, size, range or form.
fn value_message(
    v: &Violation<'_, '_>,
    info: &SchemaInfo,
    kind: &ValidationErrorKind,
    subject: &str,
    shown: &str,
) -> String {
    match kind {
        ValidationErrorKind::Type { kind } => {
            let value = v.node.map_or_else(|| "missing".to_string(), describe_node);
            format!("{subject} must be {}, but it is {value}", types(kind))
        }
        ValidationErrorKind::Constant { expected_value } => {
            format!(
                "{subject} must be `{}`, not `{shown}`",
                scalar(expected_value)
            )
        }
        ValidationErrorKind::Minimum { limit } => {
            format!("{subject} must be at least {limit}, not {shown}")
        }
        ValidationErrorKind::Maximum { limit } => {
            format!("{subject} must be at most {limit}, not {shown}")
        }
        ValidationErrorKind::ExclusiveMinimum { limit } => {
            format!("{subject} must be more than {limit}, not {shown}")
        }
        ValidationErrorKind::ExclusiveMaximum { limit } => {
            format!("{subject} must be less than {limit}, not {shown}")
        }
        ValidationErrorKind::Pattern { .. } => {
            format!(
                "{subject}: `{shown}` is not a valid {}",
                info.title.unwrap_or("value")
            )
        }
        ValidationErrorKind::MinLength { .. } => format!("{subject} must not be empty"),
        ValidationErrorKind::MaxLength { limit } => {
            format!("{subject} must be at most {limit} characters long")
        }
        ValidationErrorKind::MinItems { limit } => {
            format!("{subject} needs at least {limit} item{}", plural(*limit))
        }
        ValidationErrorKind::MaxItems { limit } => {
            format!("{subject} takes at most {limit} item{}", plural(*limit))
        }
        ValidationErrorKind::UniqueItems => format!("{subject} has the same item twice"),
        _ => format!("{subject}: {}", v.error),
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
            .flat_map(|e| describe(&locate(e, v.root, v.base)))
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
