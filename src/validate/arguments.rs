//! Arguments passed to a job, command or executor, checked against its parameter
//! declarations with the language's one binding rule ([`binding::bind`], which the compiler
//! uses too): unknown arguments, missing required ones, and values of the wrong type or outside
//! an `enum` (after substituting a `<< pipeline.parameters.x >>` value), and the warning for an
//! unquoted number that YAML reads as another text (`3.10` is 3.1). This module words what the
//! rule finds, with JSON pointers, and checks inside executor and steps arguments.

use super::ctx::{Ctx, Scope};
use super::model::Def;
use super::suggest::{did_you_mean, one_of};
use super::template::{self, RefKind};
use crate::diagnostic::Diagnostic;
use crate::process::binding::{self, Decls, Given, ParamDecl, Problem};
use crate::process::language::ParamType;
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

/// One argument as written: an entry of the argument map, or a matrix parameter (one value
/// each of its list).
struct Written<'a> {
    key: &'a str,
    key_span: Span,
    ptr: String,
    values: Vec<(&'a Node, String)>,
    /// The values the type rule sees, as indexes into `values`, with the pipeline parameter a
    /// value stands for; values known only at compile time are left out.
    checked: Vec<Checked<'a>>,
}

struct Checked<'a> {
    value: &'a Node,
    written: usize,
    via: Option<&'a str>,
}

pub(crate) fn check<'a>(cx: &mut Ctx<'a>, call: &Invocation<'a>, caller: Scope<'a>) {
    let decls = Decls::read(call.target.body().get("parameters"));
    let written = arguments(cx, call, caller);
    let given: Vec<Given<'_>> = written
        .iter()
        .map(|w| Given {
            key: w.key,
            span: w.key_span,
            values: w.checked.iter().map(|c| c.value).collect(),
        })
        .collect();
    let binding = binding::bind(&decls, &given);
    let mut mismatched = Vec::new();
    for problem in &binding.problems {
        match problem {
            Problem::Unknown { given, suggestion } => {
                unknown(cx, call.target, &decls, &written[*given], *suggestion);
            }
            Problem::Missing { decl } => missing(cx, call, decl),
            Problem::Mismatch {
                given,
                value,
                decl,
                ty,
            } => {
                let w = &written[*given];
                let c = &w.checked[*value];
                mismatched.push((*given, c.written));
                let (at, ptr) = &w.values[c.written];
                mismatch(cx, call.target, decl.name, ty, c, at.span, ptr);
            }
            Problem::Reread {
                given,
                value,
                decl,
                written: raw,
                read,
            } => {
                let w = &written[*given];
                let c = &w.checked[*value];
                // A pipeline parameter's default is written elsewhere; its own check says it.
                if c.via.is_none() {
                    let (at, ptr) = &w.values[c.written];
                    reread(cx, call.target, decl.name, raw, read, at.span, ptr);
                }
            }
        }
    }
    for (i, w) in written.iter().enumerate() {
        let Some(ty) = decls.get(w.key).and_then(|d| d.ty.as_ref()) else {
            continue;
        };
        for (v, (value, ptr)) in w.values.iter().enumerate() {
            if !mismatched.contains(&(i, v)) {
                check_inside(cx, ty, value, ptr, caller);
            }
        }
    }
}

/// The arguments of a call, in the order written: the argument map's, then the matrix's.
fn arguments<'a>(cx: &Ctx<'a>, call: &Invocation<'a>, caller: Scope<'a>) -> Vec<Written<'a>> {
    let mut out = Vec::new();
    let args = call.args.map_or(&[][..], |a| &a.entries[..]);
    for entry in args.iter().filter(|e| !call.skip.contains(&e.key.as_str())) {
        let ptr = format!("{}/{}", call.ptr, pointer_token(&entry.key));
        let values = vec![(&entry.value, ptr.clone())];
        out.push(written(cx, entry, ptr, values, caller));
    }
    let base = format!("{}/matrix/parameters", call.ptr);
    let matrix = call.matrix.map_or(&[][..], |m| &m.entries[..]);
    for entry in matrix {
        let ptr = format!("{base}/{}", pointer_token(&entry.key));
        let values = entry
            .value
            .as_seq()
            .unwrap_or_default()
            .iter()
            .enumerate()
            .map(|(i, v)| (v, format!("{ptr}/{i}")))
            .collect();
        out.push(written(cx, entry, ptr, values, caller));
    }
    out
}

fn written<'a>(
    cx: &Ctx<'a>,
    entry: &'a crate::yaml::Entry,
    ptr: String,
    values: Vec<(&'a Node, String)>,
    caller: Scope<'a>,
) -> Written<'a> {
    let checked = values
        .iter()
        .enumerate()
        .filter_map(|(i, (value, _))| {
            let (value, via) = substitute(cx, value, caller)?;
            Some(Checked {
                value,
                written: i,
                via,
            })
        })
        .collect();
    Written {
        key: &entry.key,
        key_span: entry.key_span,
        ptr,
        values,
        checked,
    }
}

/// What is inside an executor or steps argument of the right shape: the executor it names,
/// the steps it lists.
fn check_inside<'a>(
    cx: &mut Ctx<'a>,
    ty: &ParamType,
    value: &'a Node,
    ptr: &str,
    caller: Scope<'a>,
) {
    match ty {
        ParamType::Executor => super::executors::check_ref(cx, value, ptr, caller),
        ParamType::Steps => super::steps::check_given(cx, value, ptr, caller),
        _ => {}
    }
}

fn unknown(
    cx: &mut Ctx<'_>,
    target: &Def<'_>,
    decls: &Decls<'_>,
    arg: &Written<'_>,
    suggestion: Option<&str>,
) {
    let names = decls.names();
    let mut message = format!("unknown argument `{}` for {}", arg.key, target.label());
    if let Some(best) = suggestion {
        message.push_str(&format!("; did you mean `{best}`?"));
    }
    let hint = if names.is_empty() {
        format!("{} declares no parameters", target.label())
    } else {
        format!("{} declares {}", target.label(), one_of(&names))
    };
    cx.push(
        Diagnostic::error(arg.key_span, message)
            .with_hint(hint)
            .with_pointer(&arg.ptr),
    );
}

fn missing(cx: &mut Ctx<'_>, call: &Invocation<'_>, decl: &ParamDecl<'_>) {
    let ty = decl
        .ty
        .as_ref()
        .map_or("a value".into(), ParamType::describe);
    cx.push(
        Diagnostic::error(
            call.at,
            format!(
                "missing argument `{}` for {}",
                decl.name,
                call.target.label()
            ),
        )
        .with_label(decl.span, "declared here without a default")
        .with_hint(format!(
            "pass `{}:` with {ty}, or give the parameter a `default`",
            decl.name
        ))
        .with_pointer(&call.ptr),
    );
}

/// A value of the wrong type, written at `at` (`checked` is the value the rule saw: the
/// written one, or the default of the pipeline parameter it names).
fn mismatch(
    cx: &mut Ctx<'_>,
    target: &Def<'_>,
    arg: &str,
    ty: &ParamType,
    checked: &Checked<'_>,
    at: Span,
    ptr: &str,
) {
    let effective = checked.value;
    let found = match checked.via {
        Some(name) => format!("pipeline parameter `{name}` is {}", describe(effective)),
        None => format!("found {}", describe(effective)),
    };
    let mut message = format!(
        "argument `{arg}` of {} must be {}, but {found}",
        target.label(),
        ty.describe()
    );
    if let ParamType::Enum(values) = ty {
        let text = effective.scalar_text().unwrap_or_default();
        if let Some(best) = did_you_mean(&text, values.iter().map(String::as_str)) {
            message.push_str(&format!("; did you mean `{best}`?"));
        }
    }
    let d = Diagnostic::error(at, message)
        .with_hint(hint_for(ty, effective, checked.via.is_some()))
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
        (ParamType::Steps, _) if !substituted => {
            "write the steps as a list, one `- step` per line, even for one step".into()
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

/// An unquoted number given to a string parameter that YAML reads as another text: CircleCI
/// runs it with what YAML read, which is rarely what was meant.
fn reread(
    cx: &mut Ctx<'_>,
    target: &Def<'_>,
    arg: &str,
    raw: &str,
    read: &str,
    at: Span,
    ptr: &str,
) {
    cx.push(
        Diagnostic::warning(
            at,
            format!(
                "argument `{arg}` of {} is written {raw}, but YAML reads the number {read}, and \
                 CircleCI passes `{read}`",
                target.label()
            ),
        )
        .with_hint(format!("quote it (\"{raw}\") to pass the text"))
        .with_pointer(ptr),
    );
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
