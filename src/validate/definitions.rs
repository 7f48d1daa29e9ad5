//! The definitions of jobs, commands and executors (of the config and of inline orbs): names,
//! parameter declarations, executor references, steps and resource classes, each checked in
//! the definition's own lexical scope.

use std::collections::HashMap;
use std::sync::LazyLock;

use regex::Regex;

use super::ctx::{Ctx, Scope};
use super::model::{Def, DefKind};
use super::{executors, params, resource_class, steps};
use crate::diagnostic::Diagnostic;

/// CircleCI allows letters, digits, `_` and `-` after a leading letter; the language server
/// also accepts spaces in job names, and real configs use them.
static JOB_NAME: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[A-Za-z][A-Za-z0-9 _-]*$").expect("the name pattern compiles"));

static ELEMENT_NAME: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[A-Za-z][A-Za-z0-9_-]*$").expect("the name pattern compiles"));

/// Checks every definition of every namespace.
pub(crate) fn check_all<'a>(cx: &mut Ctx<'a>) {
    let model = cx.model;
    for ns in &model.namespaces {
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
        && def.kind == DefKind::Job
    {
        executors::check_ref(cx, executor, &format!("{}/executor", def.ptr), scope);
    }
    if let (Some(list), DefKind::Job | DefKind::Command) = (body.get("steps"), def.kind) {
        steps::check_list(cx, list, &format!("{}/steps", def.ptr), scope);
    }
    if def.kind != DefKind::Command {
        resource_class::check(cx, def);
    }
}

fn check_name(cx: &mut Ctx<'_>, def: &Def<'_>) {
    let pattern = if def.kind == DefKind::Job {
        &JOB_NAME
    } else {
        &ELEMENT_NAME
    };
    if !cx.v21 || pattern.is_match(def.name) {
        return;
    }
    let allowed = if def.kind == DefKind::Job {
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
