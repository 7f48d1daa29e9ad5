//! Steps: built-in steps, command invocations (with their arguments), `when`/`unless` and
//! `steps` splices, checked in the scope of the job or command they are written in.

use std::sync::LazyLock;

use regex::Regex;

use super::arguments::{self, Invocation};
use super::ctx::{Ctx, Scope};
use super::model::{ElementKind, Lookup};
use super::resolve::{self, Missing};
use super::suggest::{self, did_you_mean};
use super::template;
use crate::config::step::{self as catalogue, STEPS_NEEDING_KEYS};
use crate::diagnostic::Diagnostic;
use crate::source::Span;
use crate::yaml::{Entry, Kind, Map, Node, pointer_token};

static DELAY: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^(\d+)([sm])$").expect("the delay pattern compiles"));

/// Checks a list of steps (or one step given as a map, or a steps parameter).
pub(crate) fn check_list<'a>(cx: &mut Ctx<'a>, steps: &'a Node, ptr: &str, scope: Scope<'a>) {
    match &steps.kind {
        Kind::Seq(items) => {
            for (i, step) in items.iter().enumerate() {
                check_step(cx, step, &format!("{ptr}/{i}"), scope);
            }
        }
        Kind::Map(_) => check_step(cx, steps, ptr, scope),
        _ => {}
    }
}

/// Checks a list given to a `steps` parameter against the schema and like a job's own steps.
pub(crate) fn check_given<'a>(cx: &mut Ctx<'a>, value: &'a Node, ptr: &str, scope: Scope<'a>) {
    if value.as_seq().is_some() {
        cx.out.extend(super::schema::check_steps(value, ptr));
        check_list(cx, value, ptr, scope);
    }
}

fn check_step<'a>(cx: &mut Ctx<'a>, step: &'a Node, ptr: &str, scope: Scope<'a>) {
    match &step.kind {
        Kind::Str(name) if !template::is_templated(name) => bare(cx, name, step, ptr, scope),
        // A legacy 2.0-beta step (`- type: shell` with `command:` beside it): CircleCI still
        // runs it; the schema checks its keys.
        Kind::Map(map) if catalogue::legacy_step_type(map).is_some() => {}
        // A step has one key; the schema reports extra keys, which are usually the step's own
        // settings indented one level too little, so only the first key names the step.
        Kind::Map(map) => {
            if let Some(entry) = map.entries.first() {
                keyed(
                    cx,
                    entry,
                    &format!("{ptr}/{}", pointer_token(&entry.key)),
                    scope,
                );
            }
        }
        _ => {}
    }
}

/// `- name`: a command without arguments or a built-in step.
fn bare<'a>(cx: &mut Ctx<'a>, name: &str, step: &'a Node, ptr: &str, scope: Scope<'a>) {
    if invoke(cx, name, step.span, None, ptr, scope) {
        return;
    }
    if let Some((_, keys)) = STEPS_NEEDING_KEYS.iter().find(|(n, _)| *n == name) {
        cx.push(
            Diagnostic::error(step.span, format!("`{name}` needs {keys}"))
                .with_hint(format!(
                    "write it as a map: `- {name}:` with {keys} under it"
                ))
                .with_pointer(ptr),
        );
    }
}

/// `- name: value`: a command with arguments, a built-in step with its keys, or a 2.1 form.
fn keyed<'a>(cx: &mut Ctx<'a>, entry: &'a Entry, ptr: &str, scope: Scope<'a>) {
    let value = &entry.value;
    match entry.key.as_str() {
        "when" | "unless" => return conditional(cx, entry, ptr, scope),
        "steps" => return check_list(cx, value, ptr, scope),
        _ => {}
    }
    if invoke(cx, &entry.key, entry.key_span, Some(value), ptr, scope) {
        return;
    }
    if let (Some(map), "run" | "deploy" | "shell") = (value.as_map(), entry.key.as_str()) {
        check_reruns(cx, map, ptr);
    }
}

/// Resolves a command (commands shadow built-in steps) and checks its arguments. Returns
/// whether the name was handled; `false` means it is a known built-in step.
fn invoke<'a>(
    cx: &mut Ctx<'a>,
    name: &str,
    span: Span,
    value: Option<&'a Node>,
    ptr: &str,
    scope: Scope<'a>,
) -> bool {
    match cx.model.lookup(scope.ns, ElementKind::Command, name) {
        Lookup::Found(def) => {
            let invocation = Invocation {
                target: def,
                args: value.and_then(Node::as_map),
                ptr: ptr.to_string(),
                at: span,
                skip: &[],
                matrix: None,
            };
            arguments::check(cx, &invocation, scope);
        }
        Lookup::MissingOrb(_) => {}
        Lookup::NoSuchOrb => {
            resolve::report(
                cx,
                Missing::orb(ElementKind::Command, name, span, ptr),
                scope,
            );
        }
        Lookup::NotFound if name.contains('/') => {
            resolve::report(
                cx,
                Missing::def(ElementKind::Command, name, span, ptr),
                scope,
            );
        }
        Lookup::NotFound if is_built_in(cx, name) => return false,
        Lookup::NotFound => unknown(cx, name, span, ptr, scope),
    }
    true
}

fn is_built_in(cx: &Ctx<'_>, name: &str) -> bool {
    if cx.v21 {
        catalogue::is_built_in(name)
    } else {
        catalogue::built_in_2_0(name).is_some()
    }
}

fn unknown(cx: &mut Ctx<'_>, name: &str, span: Span, ptr: &str, scope: Scope<'_>) {
    let d = if cx.model.ns(scope.ns).jobs.contains_key(name) {
        Diagnostic::error(span, format!("`{name}` is a job, not a step or a command")).with_hint(
            "jobs run from a workflow's `jobs:` list; to share steps, define a command under `commands:`",
        )
    } else {
        let mut names: Vec<String> = catalogue::BUILT_IN_STEPS
            .iter()
            .map(|s| (*s).to_string())
            .collect();
        if suggest::suggesting() {
            names.extend(cx.model.visible_names(scope.ns, ElementKind::Command));
        }
        let mut message = format!("unknown step `{name}`");
        if let Some(best) = did_you_mean(name, names.iter().map(String::as_str)) {
            message.push_str(&format!("; did you mean `{best}`?"));
        }
        Diagnostic::error(span, message).with_hint(
            "a step is a built-in step (`run`, `checkout`, `save_cache` ...) or a command defined under `commands:`",
        )
    };
    cx.push(d.with_pointer(ptr));
}

fn conditional<'a>(cx: &mut Ctx<'a>, entry: &'a Entry, ptr: &str, scope: Scope<'a>) {
    if !cx.v21 {
        cx.push(
            Diagnostic::error(
                entry.key_span,
                format!("`{}` steps need `version: 2.1`", entry.key),
            )
            .with_hint("change the config's version to 2.1")
            .with_pointer(ptr),
        );
    }
    if let Some(condition) = entry.value.get("condition") {
        super::logic::check(cx, condition, &format!("{ptr}/condition"));
    }
    if let Some(steps) = entry.value.get("steps") {
        check_list(cx, steps, &format!("{ptr}/steps"), scope);
    }
}

/// `auto_rerun_delay` needs `max_auto_reruns` and is at most 10 minutes.
fn check_reruns(cx: &mut Ctx<'_>, run: &Map, ptr: &str) {
    let Some(delay) = run.entry("auto_rerun_delay") else {
        return;
    };
    let here = format!("{ptr}/auto_rerun_delay");
    if !run.contains_key("max_auto_reruns") {
        cx.push(
            Diagnostic::error(
                delay.key_span,
                "`auto_rerun_delay` is set but `max_auto_reruns` is not",
            )
            .with_hint("add `max_auto_reruns` (1 to 5); the delay is the wait between reruns")
            .with_pointer(&here),
        );
    }
    let Some(text) = delay.value.as_str() else {
        return;
    };
    let Some(caps) = DELAY.captures(text) else {
        return;
    };
    let amount: u64 = caps[1].parse().unwrap_or(u64::MAX);
    let seconds = if &caps[2] == "m" {
        amount.saturating_mul(60)
    } else {
        amount
    };
    if seconds > 600 {
        cx.push(
            Diagnostic::error(
                delay.value.span,
                format!("`auto_rerun_delay` is at most 10 minutes, not `{text}`"),
            )
            .with_hint("use a delay of 10m (600s) or less")
            .with_pointer(&here),
        );
    }
}
