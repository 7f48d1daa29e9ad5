//! Parameter declarations (`parameters:` of jobs, commands, executors and the pipeline): their
//! types, and the checks on the declarations themselves (names, reserved names, enum defaults,
//! executor and steps defaults).

use std::sync::LazyLock;

use regex::Regex;

use super::ctx::{Ctx, Scope};
use super::model::{Def, ElementKind};
use super::suggest::{did_you_mean, one_of};
use crate::diagnostic::Diagnostic;
use crate::process::binding::{self, Fit, ParamDecl};
use crate::yaml::{Entry, Kind, Node, pointer_token};

pub(crate) use crate::process::language::{JOB_ENTRY_KEYS, ParamType};

static NAME: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[A-Za-z][A-Za-z0-9_-]*$").expect("the name pattern compiles"));

static PIPELINE_NAME: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[A-Za-z][A-Za-z0-9_.-]*$").expect("the name pattern compiles"));

/// Checks the `parameters:` of a job, command or executor.
pub(crate) fn check_declarations(cx: &mut Ctx<'_>, def: &Def<'_>) {
    let Some(params) = def.params() else { return };
    let ptr = format!("{}/parameters", def.ptr);
    for entry in &params.entries {
        let here = format!("{ptr}/{}", pointer_token(&entry.key));
        check_name(cx, entry, &here, &NAME);
        if def.kind == ElementKind::Job && JOB_ENTRY_KEYS.contains(&entry.key.as_str()) {
            cx.push(
                Diagnostic::error(
                    entry.key_span,
                    format!(
                        "`{}` cannot be a job parameter: workflows use that key",
                        entry.key
                    ),
                )
                .with_hint(format!(
                    "rename the parameter; {} are keys of a workflow job entry",
                    one_of(&JOB_ENTRY_KEYS)
                ))
                .with_pointer(&here),
            );
        }
        check_default(cx, entry, &here);
    }
}

/// Checks the top-level pipeline parameter declarations.
pub(crate) fn check_pipeline(cx: &mut Ctx<'_>) {
    let Some(params) = cx.model.pipeline else {
        return;
    };
    for entry in &params.entries {
        let here = format!("/parameters/{}", pointer_token(&entry.key));
        check_name(cx, entry, &here, &PIPELINE_NAME);
        check_default(cx, entry, &here);
    }
}

fn check_name(cx: &mut Ctx<'_>, entry: &Entry, ptr: &str, pattern: &Regex) {
    if !cx.v21 || pattern.is_match(&entry.key) {
        return;
    }
    let message = if entry.key.is_empty() {
        "this parameter has no name".to_string()
    } else {
        format!("`{}` is not a valid parameter name", entry.key)
    };
    cx.push(
        Diagnostic::error(entry.key_span, message)
            .with_hint(
                "a parameter name starts with a letter and has only letters, digits, `_` and `-`",
            )
            .with_pointer(ptr),
    );
}

/// A default must fit its parameter's type by the language's one rule ([`binding::fit`], which
/// the compiler applies too). The schema words the shapes (a boolean, an integer, a list ...);
/// what it cannot express is reported here: an enum value outside the list (compared as the
/// compiler reads it: an unquoted `3.10` is the number 3.1), an `env_var_name` that is not one,
/// an executor map without `name`, and a `<< >>` default where a template cannot fit: the
/// compiler checks a default as written, before substituting it.
fn check_default(cx: &mut Ctx<'_>, entry: &Entry, ptr: &str) {
    let decl = ParamDecl::read(entry);
    let (Some(ty), Some(default)) = (&decl.ty, decl.default) else {
        return;
    };
    let beyond_schema = matches!(
        (ty, &default.kind),
        (
            ParamType::Enum(_),
            Kind::Str(_) | Kind::Int(_) | Kind::Float(_) | Kind::Bool(_)
        ) | (ParamType::EnvVarName, Kind::Str(_))
            | (ParamType::Executor, Kind::Map(_))
    );
    let templated = default.as_str().is_some_and(super::template::is_templated);
    if !(beyond_schema || templated) || binding::fit(ty, default) != Fit::No {
        return;
    }
    let d = match ty {
        _ if templated => Diagnostic::error(
            default.span,
            format!(
                "the default of {} parameter `{}` is a template, which cannot be {}",
                ty.name(),
                entry.key,
                ty.describe()
            ),
        )
        .with_hint(
            "the compiler checks a default as written, before substituting it; write the value itself",
        ),
        ParamType::Enum(allowed) => enum_default(entry, default, allowed),
        ParamType::EnvVarName => Diagnostic::error(
            default.span,
            format!(
                "the default `{}` of parameter `{}` is not an environment variable name",
                default.as_str().unwrap_or_default(),
                entry.key
            ),
        )
        .with_hint(
            "a variable name has only letters, digits and `_`, and does not start with a digit",
        ),
        _ => Diagnostic::error(
            default.span,
            format!(
                "the default of executor parameter `{}` is a map without `name`",
                entry.key
            ),
        )
        .with_hint(
            "name the executor: `default: {name: my-executor}`, or just `default: my-executor`",
        ),
    };
    cx.push(d.with_pointer(format!("{ptr}/default")));
}

fn enum_default(entry: &Entry, default: &Node, allowed: &[String]) -> Diagnostic {
    let text = binding::compiled_text(default).unwrap_or_default();
    let d = Diagnostic::error(
        default.span,
        format!(
            "the default `{text}` of enum parameter `{}` is not one of its values",
            entry.key
        ),
    );
    let written = default.raw.as_deref().unwrap_or(&text);
    if written != text {
        d.with_hint(format!(
            "YAML reads {written} as the number {text}; quote it (\"{written}\") to keep the text"
        ))
    } else if let Some(best) = did_you_mean(&text, allowed.iter().map(String::as_str)) {
        d.with_hint(format!("did you mean `{best}`?"))
    } else {
        d.with_hint(format!("use one of {}", one_of(allowed)))
    }
}

/// Checks the defaults of executor- and steps-typed parameters in the definition's own scope.
pub(crate) fn check_defaults<'a>(cx: &mut Ctx<'a>, def: &'a Def<'a>) {
    let Some(params) = def.params() else { return };
    for entry in &params.entries {
        let decl = ParamDecl::read(entry);
        let Some(default) = decl.default else {
            continue;
        };
        let ptr = format!(
            "{}/parameters/{}/default",
            def.ptr,
            pointer_token(&entry.key)
        );
        match decl.ty {
            Some(ParamType::Executor) => {
                super::executors::check_ref(cx, default, &ptr, Scope::of(def))
            }
            // The shape (a list) is the schema's; what the list holds is checked here.
            Some(ParamType::Steps) => super::steps::check_given(cx, default, &ptr, Scope::of(def)),
            _ => {}
        }
    }
}
