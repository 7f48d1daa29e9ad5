//! Parameter declarations (`parameters:` of jobs, commands, executors and the pipeline): their
//! types, and the checks on the declarations themselves (names, reserved names, enum defaults,
//! executor and steps defaults).

use std::sync::LazyLock;

use regex::Regex;

use super::ctx::{Ctx, Scope};
use super::model::{Def, ElementKind};
use super::suggest::{did_you_mean, one_of};
use crate::diagnostic::Diagnostic;
use crate::yaml::{Entry, pointer_token};

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
        check_enum_default(cx, entry, &here);
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
        check_enum_default(cx, entry, &here);
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

fn check_enum_default(cx: &mut Ctx<'_>, entry: &Entry, ptr: &str) {
    let Some(ParamType::Enum(allowed)) = ParamType::of(&entry.value) else {
        return;
    };
    let Some(default) = entry.value.get("default") else {
        return;
    };
    let Some(text) = default.scalar_text() else {
        return;
    };
    if allowed.contains(&text) || super::template::is_templated(&text) {
        return;
    }
    let mut d = Diagnostic::error(
        default.span,
        format!(
            "the default `{text}` of enum parameter `{}` is not one of its values",
            entry.key
        ),
    )
    .with_pointer(format!("{ptr}/default"));
    d = match did_you_mean(&text, allowed.iter().map(String::as_str)) {
        Some(best) => d.with_hint(format!("did you mean `{best}`?")),
        None => d.with_hint(format!("use one of {}", one_of(&allowed))),
    };
    cx.push(d);
}

/// Checks the defaults of executor- and steps-typed parameters in the definition's own scope.
pub(crate) fn check_defaults<'a>(cx: &mut Ctx<'a>, def: &'a Def<'a>) {
    let Some(params) = def.params() else { return };
    for entry in &params.entries {
        let Some(default) = entry.value.get("default") else {
            continue;
        };
        let ptr = format!(
            "{}/parameters/{}/default",
            def.ptr,
            pointer_token(&entry.key)
        );
        match ParamType::of(&entry.value) {
            Some(ParamType::Executor) => {
                super::executors::check_ref(cx, default, &ptr, Scope::of(def))
            }
            Some(ParamType::Steps) => {
                let what = format!("the default of parameter `{}`", entry.key);
                super::steps::check_value(cx, &what, default, &ptr, Scope::of(def));
            }
            _ => {}
        }
    }
}
