//! Arguments passed to a job, command or executor, checked against its parameter
//! declarations: unknown arguments, missing required ones, and values of the wrong type or
//! outside an `enum` (after substituting a `<< pipeline.parameters.x >>` value).

use super::ctx::{Ctx, Scope};
use super::model::Def;
use super::params::ParamType;
use super::suggest::{did_you_mean, one_of};
use super::template::{self, RefKind};
use crate::diagnostic::Diagnostic;
use crate::source::Span;
use crate::yaml::{Kind, Map, Node, pointer_token};

/// One call of a definition with its arguments.
pub(crate) struct Invocation<'a> {
    pub target: &'a Def<'a>,
    pub args: Option<&'a Map>,
    /// Pointer of the argument map.
    pub ptr: String,
    /// Where a missing argument is reported: the name that makes the call.
    pub at: Span,
    /// Keys of the argument map that are not arguments (`name`, `requires` ...).
    pub skip: &'static [&'static str],
    /// `matrix.parameters` of a workflow job entry: each supplies an argument.
    pub matrix: Option<&'a Map>,
}

pub(crate) fn check<'a>(cx: &mut Ctx<'a>, call: &Invocation<'a>, caller: Scope<'a>) {
    let declared = call.target.params();
    if let Some(args) = call.args {
        for entry in args
            .entries
            .iter()
            .filter(|e| !call.skip.contains(&e.key.as_str()))
        {
            let ptr = format!("{}/{}", call.ptr, pointer_token(&entry.key));
            match declared.and_then(|d| d.get(&entry.key)) {
                Some(decl) => check_value(
                    cx,
                    call.target,
                    &entry.key,
                    decl,
                    &entry.value,
                    &ptr,
                    caller,
                ),
                None => unknown(cx, call.target, &entry.key, entry.key_span, &ptr),
            }
        }
    }
    if let Some(matrix) = call.matrix {
        check_matrix(cx, call, matrix, caller);
    }
    missing(cx, call);
}

fn check_matrix<'a>(cx: &mut Ctx<'a>, call: &Invocation<'a>, matrix: &'a Map, caller: Scope<'a>) {
    let declared = call.target.params();
    let base = format!("{}/matrix/parameters", call.ptr);
    for entry in &matrix.entries {
        let ptr = format!("{base}/{}", pointer_token(&entry.key));
        let Some(decl) = declared.and_then(|d| d.get(&entry.key)) else {
            unknown(cx, call.target, &entry.key, entry.key_span, &ptr);
            continue;
        };
        for (i, value) in entry.value.as_seq().unwrap_or_default().iter().enumerate() {
            check_value(
                cx,
                call.target,
                &entry.key,
                decl,
                value,
                &format!("{ptr}/{i}"),
                caller,
            );
        }
    }
}

fn unknown(cx: &mut Ctx<'_>, target: &Def<'_>, arg: &str, span: Span, ptr: &str) {
    let names: Vec<&str> = target
        .params()
        .map(|p| p.entries.iter().map(|e| e.key.as_str()).collect())
        .unwrap_or_default();
    let mut message = format!("unknown argument `{arg}` for {}", target.label());
    if let Some(best) = did_you_mean(arg, names.iter().copied()) {
        message.push_str(&format!("; did you mean `{best}`?"));
    }
    let hint = if names.is_empty() {
        format!("{} declares no parameters", target.label())
    } else {
        format!("{} declares {}", target.label(), one_of(&names))
    };
    cx.push(
        Diagnostic::error(span, message)
            .with_hint(hint)
            .with_pointer(ptr),
    );
}

fn missing(cx: &mut Ctx<'_>, call: &Invocation<'_>) {
    let Some(declared) = call.target.params() else {
        return;
    };
    let given = |name: &str| {
        call.args.is_some_and(|a| a.contains_key(name))
            || call.matrix.is_some_and(|m| m.contains_key(name))
    };
    for decl in &declared.entries {
        let required = decl
            .value
            .as_map()
            .is_some_and(|m| !m.contains_key("default"));
        if !required || given(&decl.key) {
            continue;
        }
        let ty = ParamType::of(&decl.value).map_or("a value".into(), |t| t.describe());
        cx.push(
            Diagnostic::error(
                call.at,
                format!(
                    "missing argument `{}` for {}",
                    decl.key,
                    call.target.label()
                ),
            )
            .with_label(decl.key_span, "declared here without a default")
            .with_hint(format!(
                "pass `{}:` with {ty}, or give the parameter a `default`",
                decl.key
            ))
            .with_pointer(&call.ptr),
        );
    }
}

/// Checks one argument value against its declaration, in the caller's scope.
pub(crate) fn check_value<'a>(
    cx: &mut Ctx<'a>,
    target: &Def<'_>,
    arg: &str,
    decl: &'a Node,
    value: &'a Node,
    ptr: &str,
    caller: Scope<'a>,
) {
    let Some(ty) = ParamType::of(decl) else {
        return;
    };
    match ty {
        ParamType::Executor => return super::executors::check_ref(cx, value, ptr, caller),
        ParamType::Steps => {
            let what = format!("argument `{arg}` of {}", target.label());
            return super::steps::check_value(cx, &what, value, ptr, caller);
        }
        _ => {}
    }
    let Some((effective, via)) = substitute(cx, value, caller) else {
        return;
    };
    if ty.accepts(effective) {
        return;
    }
    let found = match via {
        Some(name) => format!("pipeline parameter `{name}` is {}", describe(effective)),
        None => format!("found {}", describe(effective)),
    };
    let mut message = format!(
        "argument `{arg}` of {} must be {}, but {found}",
        target.label(),
        ty.describe()
    );
    if let ParamType::Enum(values) = &ty {
        let text = effective.scalar_text().unwrap_or_default();
        if let Some(best) = did_you_mean(&text, values.iter().map(String::as_str)) {
            message.push_str(&format!("; did you mean `{best}`?"));
        }
    }
    let d = Diagnostic::error(value.span, message)
        .with_hint(hint_for(&ty, effective, via.is_some()))
        .with_pointer(ptr);
    cx.push(d);
}

/// The value an argument really has: a whole `<< pipeline.parameters.x >>` stands for that
/// parameter's typed default. `None` when the value is only known at run time.
fn substitute<'a>(
    cx: &Ctx<'a>,
    value: &'a Node,
    caller: Scope<'_>,
) -> Option<(&'a Node, Option<&'a str>)> {
    let Some(text) = value.as_str() else {
        return Some((value, None));
    };
    if !template::is_templated(text) {
        return Some((value, None));
    }
    let reference = template::whole(text)?;
    if reference.kind != RefKind::PipelineParameter || cx.model.ns(caller.ns).in_orb() {
        return None;
    }
    let entry = cx.model.pipeline_param(&reference.name)?;
    let default = entry.value.get("default")?;
    Some((default, Some(entry.key.as_str())))
}

fn hint_for(ty: &ParamType, value: &Node, substituted: bool) -> String {
    match (ty, &value.kind) {
        (ParamType::String, Kind::Bool(b)) if !substituted => {
            format!("quote the value to pass it as text: \"{b}\"")
        }
        (ParamType::Enum(values), _) if !substituted => {
            format!("use one of {}", one_of(values))
        }
        _ if substituted => {
            "declare the pipeline parameter with the same type as the job parameter, or pass another value".into()
        }
        _ => format!("pass {}", ty.describe()),
    }
}

/// `the string `abc`` as a message reads it.
pub(crate) fn describe(node: &Node) -> String {
    let text = node.scalar_text().unwrap_or_default();
    match &node.kind {
        Kind::Null => "empty".into(),
        Kind::Bool(_) => format!("the boolean `{text}`"),
        Kind::Int(_) => format!("the integer `{text}`"),
        Kind::Float(_) => format!("the number `{text}`"),
        Kind::Str(_) => format!("the string `{text}`"),
        Kind::Seq(_) => "a list".into(),
        Kind::Map(_) => "a map".into(),
    }
}
