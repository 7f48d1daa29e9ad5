//! The definitions of jobs, commands and executors (of the config and of inline orbs): names,
//! parameter declarations, executor references, steps and resource classes, each checked in
//! the definition's own lexical scope.

use std::collections::HashMap;
use std::sync::LazyLock;

use regex::Regex;

use super::ctx::{Ctx, Scope};
use super::model::{Def, ElementKind};
use super::suggest::{did_you_mean, one_of};
use super::{executors, params, resource_class, steps};
use crate::diagnostic::Diagnostic;
use crate::yaml::pointer_token;

/// CircleCI allows letters, digits, `_` and `-` after a leading letter; the language server
/// also accepts spaces in job names, and real configs use them.
static JOB_NAME: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[A-Za-z][A-Za-z0-9 _-]*$").expect("the name pattern compiles"));

static ELEMENT_NAME: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[A-Za-z][A-Za-z0-9_-]*$").expect("the name pattern compiles"));

/// Checks every definition of every namespace.
pub(crate) fn check_all<'a>(cx: &mut Ctx<'a>) {
    let model = cx.model;
    for ns in &model.index.namespaces {
        unique_ignoring_case(cx, ns.jobs.values());
        for def in ns
            .executors
            .values()
            .chain(ns.commands.values())
            .chain(ns.jobs.values())
        {
            check(cx, def);
        }
    }
}

fn check<'a>(cx: &mut Ctx<'a>, def: &'a Def<'a>) {
    check_name(cx, def);
    if def.body().as_map().is_none() {
        return;
    }
    params::check_declarations(cx, def);
    params::check_defaults(cx, def);
    let scope = Scope::of(def);
    let body = def.body();
    if let Some(executor) = body.get("executor")
        && def.kind == ElementKind::Job
    {
        executors::check_ref(cx, executor, &format!("{}/executor", def.ptr), scope);
    }
    if let (Some(list), ElementKind::Job | ElementKind::Command) = (body.get("steps"), def.kind) {
        steps::check_list(cx, list, &format!("{}/steps", def.ptr), scope);
    }
    if def.kind != ElementKind::Command {
        resource_class::check(cx, def);
    }
    if def.kind == ElementKind::Job {
        extraneous_keys(cx, def);
    }
}

/// The keys a job may have: the job definition's properties in the bundled schema.
static JOB_KEYS: LazyLock<Vec<&'static str>> = LazyLock::new(|| {
    super::schema::schema_at("/$defs/job/properties")
        .and_then(serde_json::Value::as_object)
        .map(|props| props.keys().map(String::as_str).collect())
        .unwrap_or_default()
});

/// A key a job does not have (`working_dir:` for `working_directory:`). CircleCI reports it
/// as a schema warning ("extraneous key [x] is not permitted") and still runs the job, so it
/// is a warning here too; `--strict` makes it an error (circleci-semantics.md 4.1).
fn extraneous_keys(cx: &mut Ctx<'_>, def: &Def<'_>) {
    let Some(body) = def.body().as_map() else {
        return;
    };
    for entry in body
        .entries
        .iter()
        .filter(|e| !JOB_KEYS.contains(&e.key.as_str()))
    {
        let mut message = format!(
            "extraneous key `{}` in {}: CircleCI ignores it",
            entry.key,
            def.label()
        );
        // `working_dir` is too far from `working_directory` for an edit distance, but an
        // abbreviation of it.
        let abbreviated = || {
            JOB_KEYS
                .iter()
                .copied()
                .find(|k| entry.key.len() >= 4 && k.starts_with(entry.key.as_str()))
        };
        let suggestion = did_you_mean(&entry.key, JOB_KEYS.iter().copied()).or_else(abbreviated);
        let hint = match suggestion {
            Some(best) => {
                message.push_str(&format!("; did you mean `{best}`?"));
                format!("rename it to `{best}`, or remove it")
            }
            None => format!("remove it; a job takes {}", one_of(&JOB_KEYS)),
        };
        cx.push(
            Diagnostic::warning(entry.key_span, message)
                .with_hint(hint)
                .with_pointer(format!("{}/{}", def.ptr, pointer_token(&entry.key))),
        );
    }
}

fn check_name(cx: &mut Ctx<'_>, def: &Def<'_>) {
    let pattern = if def.kind == ElementKind::Job {
        &JOB_NAME
    } else {
        &ELEMENT_NAME
    };
    if !cx.v21 || pattern.is_match(def.name) {
        return;
    }
    let allowed = if def.kind == ElementKind::Job {
        "letters, digits, spaces, `_` and `-`"
    } else {
        "letters, digits, `_` and `-`"
    };
    cx.push(
        Diagnostic::error(
            def.entry.key_span,
            format!("`{}` is not a valid {} name", def.name, def.kind.noun()),
        )
        .with_hint(format!(
            "a {} name starts with a letter and has only {allowed}",
            def.kind.noun()
        ))
        .with_pointer(&def.ptr),
    );
}

/// Job names are unique regardless of case: `Build` and `build` are the same job to CircleCI.
fn unique_ignoring_case<'a>(cx: &mut Ctx<'_>, jobs: impl Iterator<Item = &'a Def<'a>>) {
    let mut seen: HashMap<String, &Def<'_>> = HashMap::new();
    for def in jobs {
        let Some(first) = seen.get(&def.name.to_lowercase()) else {
            seen.insert(def.name.to_lowercase(), def);
            continue;
        };
        cx.push(
            Diagnostic::error(
                def.entry.key_span,
                format!(
                    "job `{}` differs from job `{}` only in case",
                    def.name, first.name
                ),
            )
            .with_label(first.entry.key_span, "the other job")
            .with_hint("job names are unique regardless of case; rename one of them")
            .with_pointer(&def.ptr),
        );
    }
}
