//! Parameter declarations of jobs, commands, executors and the pipeline, and the binding of an
//! invocation's arguments to them: unknown arguments, missing required ones, defaults and the
//! type check, worded like CircleCI's compiler (`Type error for argument mark: expected type:
//! boolean, actual value: "true" (type string)`).
//!
//! Binding does not substitute anything: argument values arrive already substituted in the
//! caller's scope.

use crate::diagnostic::Diagnostic;
use crate::source::Span;
use crate::yaml::{Kind, Map, Node};

use super::context::{Ctx, Reported, Res};
use super::value::repr;

pub(crate) use super::language::ParamType;

#[derive(Clone, Debug)]
pub(crate) struct ParamDecl {
    pub name: String,
    pub span: Span,
    pub ty: ParamType,
    pub default: Option<Node>,
}

/// The parameters an element declares, in declaration order.
#[derive(Clone, Debug, Default)]
pub(crate) struct Decls {
    pub list: Vec<ParamDecl>,
}

impl Decls {
    pub fn get(&self, name: &str) -> Option<&ParamDecl> {
        self.list.iter().find(|d| d.name == name)
    }

    /// Reads `parameters:` of an element. `what` names the element in messages.
    pub fn parse(ctx: &mut Ctx, node: Option<&Node>, what: &str) -> Res<Decls> {
        let Some(node) = node.filter(|n| !n.is_null()) else {
            return Ok(Decls::default());
        };
        let Some(map) = node.as_map() else {
            return Err(ctx.error(Diagnostic::error(
                node.span,
                format!("the parameters of {what} must be a map of parameter definitions"),
            )));
        };
        let mut list = Vec::new();
        let mut failed = false;
        for e in &map.entries {
            match parse_decl(ctx, &e.key, e.key_span, &e.value) {
                Ok(d) => list.push(d),
                Err(Reported) => failed = true,
            }
        }
        if failed {
            Err(Reported)
        } else {
            Ok(Decls { list })
        }
    }
}

fn parse_decl(ctx: &mut Ctx, name: &str, span: Span, node: &Node) -> Res<ParamDecl> {
    let Some(map) = node.as_map() else {
        return Err(ctx.error(
            Diagnostic::error(
                span,
                format!("parameter {name} must be a map with a `type`"),
            )
            .with_hint("e.g. `type: string` and an optional `default:`"),
        ));
    };
    let ty_node = map.get("type");
    let ty_name = ty_node.and_then(Node::as_str).unwrap_or("");
    if ty_name == "enum" {
        enum_values(ctx, name, span, map)?;
    }
    let Some(ty) = ParamType::of(node) else {
        let at = ty_node.map_or(span, |n| n.span);
        return Err(ctx.error(
            Diagnostic::error(at, format!("parameter {name} has no valid type")).with_hint(
                "types are string, boolean, integer, enum, executor, steps and env_var_name",
            ),
        ));
    };
    let decl = ParamDecl {
        name: name.to_string(),
        span,
        ty,
        default: map.get("default").cloned(),
    };
    if let Some(default) = &decl.default
        && let Err(msg) = check(&decl, default)
    {
        return Err(ctx.error(Diagnostic::error(
            default.span,
            format!("invalid default: {msg}"),
        )));
    }
    Ok(decl)
}

/// An enum parameter lists its values.
fn enum_values(ctx: &mut Ctx, name: &str, span: Span, map: &Map) -> Res<()> {
    let values = map.get("enum").and_then(Node::as_seq);
    if values.is_some_and(|v| !v.is_empty()) {
        return Ok(());
    }
    Err(ctx.error(Diagnostic::error(
        span,
        format!("enum parameter {name} needs an `enum:` list of allowed values"),
    )))
}

/// One bound argument: its type and value, and whether it came from the invocation (the
/// caller's namespace) or from the declaration's default.
#[derive(Clone, Debug)]
pub(crate) struct Arg {
    pub name: String,
    pub ty: ParamType,
    pub value: Node,
    pub from_default: bool,
    /// The namespace the value was written in (the caller's, or the declaring element's for a
    /// default): an executor name passed as an argument resolves there.
    pub origin: usize,
}

/// The arguments of one invocation, one per declared parameter that has a value.
#[derive(Clone, Debug, Default)]
pub(crate) struct Args {
    pub list: Vec<Arg>,
}

impl Args {
    pub fn get(&self, name: &str) -> Option<&Arg> {
        self.list.iter().find(|a| a.name == name)
    }
}

/// What is being invoked, for messages.
pub(crate) struct Callee<'a> {
    /// `command`, `job`, `executor`
    pub kind: &'a str,
    /// As written by the caller (`orb/name`).
    pub name: &'a str,
    /// Where the caller wrote the invocation.
    pub at: Span,
}

/// Binds `given` (key, key span, value) to `decls`. Every problem is recorded; the binding
/// fails when any was found.
pub(crate) fn bind(
    ctx: &mut Ctx,
    decls: &Decls,
    given: &[(String, Span, Node)],
    callee: &Callee,
) -> Res<Args> {
    let mut failed = false;
    for (key, span, _) in given {
        if decls.get(key).is_none() {
            let known: Vec<&str> = decls.list.iter().map(|d| d.name.as_str()).collect();
            let hint = if known.is_empty() {
                format!("{} {} declares no parameters", callee.kind, callee.name)
            } else {
                format!(
                    "{} {} declares: {}",
                    callee.kind,
                    callee.name,
                    known.join(", ")
                )
            };
            ctx.error(
                Diagnostic::error(*span, format!("Unexpected argument(s): {key}")).with_hint(hint),
            );
            failed = true;
        }
    }
    let mut list = Vec::new();
    let mut missing = Vec::new();
    for decl in &decls.list {
        let given = given.iter().find(|(k, _, _)| *k == decl.name);
        let (value, from_default) = match (given, &decl.default) {
            (Some((_, _, v)), _) => (v.clone(), false),
            (None, Some(d)) => (d.clone(), true),
            (None, None) => {
                missing.push(decl.name.as_str());
                continue;
            }
        };
        if !from_default {
            match check(decl, &value) {
                Ok(Some(warning)) => ctx.warn(Diagnostic::warning(value.span, warning)),
                Ok(None) => {}
                Err(msg) => {
                    ctx.error(
                        Diagnostic::error(value.span, msg).with_label(
                            decl.span,
                            format!("parameter {} declared here", decl.name),
                        ),
                    );
                    failed = true;
                    continue;
                }
            }
        }
        list.push(Arg {
            name: decl.name.clone(),
            ty: decl.ty.clone(),
            value,
            from_default,
            origin: 0,
        });
    }
    if !missing.is_empty() {
        ctx.error(
            Diagnostic::error(
                callee.at,
                format!("Missing required argument(s): {}", missing.join(", ")),
            )
            .with_hint(format!(
                "pass them to {} {}, or give the parameters a `default:`",
                callee.kind, callee.name
            )),
        );
        failed = true;
    }
    if failed {
        Err(Reported)
    } else {
        Ok(Args { list })
    }
}

/// Checks `value` against the declared type. `Ok(Some(..))` is a warning about a value that
/// CircleCI accepts but probably not as the author meant.
pub(crate) fn check(decl: &ParamDecl, value: &Node) -> Result<Option<String>, String> {
    let name = &decl.name;
    let mismatch = || {
        format!(
            "Type error for argument {name}: expected type: {}, actual value: {} (type {})",
            decl.ty.name(),
            repr(value),
            value.type_name()
        )
    };
    if !decl.ty.accepts(value) {
        return Err(match &decl.ty {
            ParamType::Enum(allowed)
                if matches!(value.kind, Kind::Str(_) | Kind::Int(_) | Kind::Float(_)) =>
            {
                format!(
                    "Type error for argument {name}: expected one of [{}], actual value: {}",
                    allowed
                        .iter()
                        .map(|a| format!("{a:?}"))
                        .collect::<Vec<_>>()
                        .join(", "),
                    repr(value)
                )
            }
            ParamType::EnvVarName if value.as_str().is_some() => format!(
                "Type error for argument {name}: expected an environment variable name \
                 ([A-Za-z_][A-Za-z0-9_]*), actual value: {}",
                repr(value)
            ),
            _ => mismatch(),
        });
    }
    Ok(match (&decl.ty, &value.kind) {
        (ParamType::String, Kind::Float(f)) => float_warning(name, value, *f),
        _ => None,
    })
}

fn float_warning(name: &str, value: &Node, f: f64) -> Option<String> {
    let raw = value.raw.as_deref()?;
    let read = super::value::float_text(f);
    (raw != read).then(|| {
        format!(
            "argument {name} is written {raw} but YAML reads it as the number {read}, and CircleCI \
             passes {read}; quote it (\"{raw}\") to keep the text"
        )
    })
}

/// The key/value pairs of an invocation map, minus `skip` keys.
pub(crate) fn given_args(map: Option<&Map>, skip: &[&str]) -> Vec<(String, Span, Node)> {
    map.map(|m| {
        m.entries
            .iter()
            .filter(|e| !skip.contains(&e.key.as_str()))
            .map(|e| (e.key.clone(), e.key_span, e.value.clone()))
            .collect()
    })
    .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decl(ty: ParamType) -> ParamDecl {
        ParamDecl {
            name: "mark".into(),
            span: Span::default(),
            ty,
            default: None,
        }
    }

    #[test]
    fn a_quoted_true_is_not_a_boolean() {
        let v = Node::string(Span::default(), "true");
        assert_eq!(
            check(&decl(ParamType::Boolean), &v).unwrap_err(),
            "Type error for argument mark: expected type: boolean, actual value: \"true\" (type string)"
        );
    }

    #[test]
    fn an_unquoted_boolean_is_not_a_string() {
        let v = Node::new(Span::default(), Kind::Bool(true));
        assert!(check(&decl(ParamType::String), &v).is_err());
    }

    #[test]
    fn enum_values_must_be_listed() {
        let ty = ParamType::Enum(vec!["npm".into(), "yarn".into()]);
        assert!(check(&decl(ty.clone()), &Node::string(Span::default(), "npm")).is_ok());
        assert!(check(&decl(ty), &Node::string(Span::default(), "pnpm")).is_err());
    }

    #[test]
    fn env_var_names_are_posix() {
        let ty = ParamType::EnvVarName;
        assert!(check(&decl(ty.clone()), &Node::string(Span::default(), "AWS_KEY")).is_ok());
        assert!(check(&decl(ty), &Node::string(Span::default(), "1KEY")).is_err());
    }
}
