//! Parameter declarations of jobs, commands, executors and the pipeline as the compiler reads
//! them (a declaration it cannot use is an error), and the binding of an invocation's arguments
//! to them, worded like CircleCI's compiler (`Type error for argument mark: expected type:
//! boolean, actual value: "true" (type string)`). The binding rule itself is
//! [`super::binding`], which `validate` uses too; this module only words it and builds the
//! arguments.
//!
//! Binding does not substitute anything: argument values arrive already substituted in the
//! caller's scope.

use crate::diagnostic::Diagnostic;
use crate::source::Span;
use crate::yaml::{Kind, Map, Node};

use super::binding::{self, Fit, Given, Problem, Source};
use super::context::{Ctx, Reported, Res};
use super::value::repr;

pub(crate) use super::binding::{Decls, ParamDecl};
pub(crate) use super::language::ParamType;

/// Reads `parameters:` of an element, refusing what the compiler cannot use. `what` names the
/// element in messages.
pub(crate) fn declared<'n>(ctx: &mut Ctx, node: Option<&'n Node>, what: &str) -> Res<Decls<'n>> {
    let Some(node) = node.filter(|n| !n.is_null()) else {
        return Ok(Decls::default());
    };
    if node.as_map().is_none() {
        return Err(ctx.error(Diagnostic::error(
            node.span,
            format!("the parameters of {what} must be a map of parameter definitions"),
        )));
    }
    let decls = Decls::read(Some(node));
    let mut failed = false;
    for decl in &decls.list {
        failed |= check_decl(ctx, decl).is_err();
    }
    if failed { Err(Reported) } else { Ok(decls) }
}

fn check_decl(ctx: &mut Ctx, decl: &ParamDecl) -> Res<()> {
    let (name, span) = (decl.name, decl.span);
    let Some(map) = decl.node.as_map() else {
        return Err(ctx.error(
            Diagnostic::error(
                span,
                format!("parameter {name} must be a map with a `type`"),
            )
            .with_hint("e.g. `type: string` and an optional `default:`"),
        ));
    };
    let ty_node = map.get("type");
    if ty_node.and_then(Node::as_str) == Some("enum") {
        enum_values(ctx, name, span, map)?;
    }
    if decl.ty.is_none() {
        let at = ty_node.map_or(span, |n| n.span);
        return Err(ctx.error(
            Diagnostic::error(at, format!("parameter {name} has no valid type")).with_hint(
                "types are string, boolean, integer, enum, executor, steps and env_var_name",
            ),
        ));
    }
    if let Some(default) = decl.default
        && let Err(msg) = check(decl, default)
    {
        return Err(ctx.error(Diagnostic::error(
            default.span,
            format!("invalid default: {msg}"),
        )));
    }
    Ok(())
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

/// Binds `given` (key, key span, value) to `decls` (see [`binding::bind`]). Every problem is
/// recorded; the binding fails when any was an error.
pub(crate) fn bind(
    ctx: &mut Ctx,
    decls: &Decls,
    given: &[(String, Span, Node)],
    callee: &Callee,
) -> Res<Args> {
    let views: Vec<Given> = given
        .iter()
        .map(|(key, span, value)| Given {
            key,
            span: *span,
            values: vec![value],
        })
        .collect();
    let binding = binding::bind(decls, &views);
    let mut missing = Vec::new();
    for problem in &binding.problems {
        match problem {
            Problem::Unknown { given: i, .. } => {
                ctx.error(unexpected(decls, &views[*i], callee));
            }
            Problem::Missing { decl } => missing.push(decl.name),
            Problem::Mismatch {
                given: i,
                value: v,
                decl,
                ty,
            } => {
                let value = views[*i].values[*v];
                let message = mismatch_text(decl.name, ty, value);
                ctx.error(
                    Diagnostic::error(value.span, message)
                        .with_label(decl.span, format!("parameter {} declared here", decl.name)),
                );
            }
            Problem::Reread {
                given: i,
                value: v,
                decl,
                written,
                read,
            } => ctx.warn(Diagnostic::warning(
                views[*i].values[*v].span,
                reread(decl.name, written, read),
            )),
        }
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
    }
    if binding.failed() {
        return Err(Reported);
    }
    let list = binding
        .bound
        .iter()
        .filter_map(|(decl, source)| {
            // `declared` refused every declaration without a valid type.
            let ty = decl.ty.clone()?;
            let (value, from_default) = match source {
                Source::Given(i) => (views[*i].values[0].clone(), false),
                Source::Default(d) => ((*d).clone(), true),
            };
            Some(Arg {
                name: decl.name.to_string(),
                ty,
                value,
                from_default,
                origin: 0,
            })
        })
        .collect();
    Ok(Args { list })
}

fn unexpected(decls: &Decls, given: &Given, callee: &Callee) -> Diagnostic {
    let known = decls.names();
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
    Diagnostic::error(given.span, format!("Unexpected argument(s): {}", given.key)).with_hint(hint)
}

/// Checks `value` against the declared type. `Ok(Some(..))` is a warning about a value that
/// CircleCI accepts but probably not as the author meant.
pub(crate) fn check(decl: &ParamDecl, value: &Node) -> Result<Option<String>, String> {
    let Some(ty) = &decl.ty else {
        return Ok(None);
    };
    match binding::fit(ty, value) {
        Fit::Yes => Ok(None),
        Fit::Reread { written, read } => Ok(Some(reread(decl.name, &written, &read))),
        Fit::No => Err(mismatch_text(decl.name, ty, value)),
    }
}

fn mismatch_text(name: &str, ty: &ParamType, value: &Node) -> String {
    match ty {
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
        _ => format!(
            "Type error for argument {name}: expected type: {}, actual value: {} (type {})",
            ty.name(),
            repr(value),
            value.type_name()
        ),
    }
}

fn reread(name: &str, raw: &str, read: &str) -> String {
    format!(
        "argument {name} is written {raw} but YAML reads it as the number {read}, and CircleCI \
         passes {read}; quote it (\"{raw}\") to keep the text"
    )
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

    fn decl(ty: ParamType) -> ParamDecl<'static> {
        ParamDecl {
            name: "mark",
            span: Span::default(),
            node: Box::leak(Box::new(Node::new(Span::default(), Kind::Null))),
            ty: Some(ty),
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
