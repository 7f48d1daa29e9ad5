//! `<< >>` references in a 2.1 config, each checked in its lexical scope: `parameters.x` must
//! be declared by the enclosing job, command or executor; `pipeline.parameters.x` must be a
//! declared pipeline parameter and is not visible inside orbs; `matrix.x` must be a matrix
//! parameter of the workflow entry. A `<<` that is never closed is an error too.

use super::ctx::{Ctx, Scope};
use super::suggest::did_you_mean;
use super::template::{self, RefKind, Reference};
use crate::diagnostic::Diagnostic;
use crate::source::Span;
use crate::yaml::{Kind, Node, pointer_token};

/// Top-level keys whose references are checked elsewhere or never substituted.
const HANDLED: [&str; 7] = [
    "version",
    "jobs",
    "commands",
    "executors",
    "orbs",
    "workflows",
    "parameters",
];

pub(crate) fn check_all<'a>(cx: &mut Ctx<'a>) {
    if !cx.v21 {
        return;
    }
    let model = cx.model;
    for ns in &model.namespaces {
        for def in ns
            .executors
            .values()
            .chain(ns.commands.values())
            .chain(ns.jobs.values())
        {
            walk(cx, def.body(), &def.ptr, Scope::of(def));
        }
    }
    for orb in &model.remote {
        walk(cx, &orb.entry.value, &orb.ptr, scratch());
    }
    let Some(root) = model.root.as_map() else {
        return;
    };
    for entry in root
        .entries
        .iter()
        .filter(|e| !HANDLED.contains(&e.key.as_str()))
    {
        walk(
            cx,
            &entry.value,
            &format!("/{}", pointer_token(&entry.key)),
            scratch(),
        );
    }
    if let Some(workflows) = root.get("workflows").and_then(Node::as_map) {
        for wf in workflows.entries.iter().filter(|e| e.key != "version") {
            workflow(
                cx,
                &wf.value,
                &format!("/workflows/{}", pointer_token(&wf.key)),
            );
        }
    }
}

/// Outside every definition (scratch keys holding anchors): parameters are not checked here
/// but where the anchors are used.
fn scratch() -> Scope<'static> {
    Scope {
        workflow: false,
        ..Scope::workflow()
    }
}

fn workflow<'a>(cx: &mut Ctx<'a>, wf: &'a Node, ptr: &str) {
    let Some(map) = wf.as_map() else { return };
    for entry in &map.entries {
        let here = format!("{ptr}/{}", pointer_token(&entry.key));
        match entry.key.as_str() {
            "when" | "unless" => expression(cx, &entry.value, &here, Scope::workflow()),
            "jobs" => {
                for (i, item) in entry.value.as_seq().unwrap_or_default().iter().enumerate() {
                    job_entry(cx, item, &format!("{here}/{i}"));
                }
            }
            _ => walk(cx, &entry.value, &here, Scope::workflow()),
        }
    }
}

fn job_entry<'a>(cx: &mut Ctx<'a>, item: &'a Node, ptr: &str) {
    let Some(map) = item.as_map() else {
        return walk(cx, item, ptr, Scope::workflow());
    };
    for entry in &map.entries {
        let here = format!("{ptr}/{}", pointer_token(&entry.key));
        let Some(settings) = entry.value.as_map() else {
            continue;
        };
        let matrix = settings
            .get("matrix")
            .and_then(|m| m.get("parameters"))
            .and_then(Node::as_map);
        let scope = Scope {
            matrix,
            ..Scope::workflow()
        };
        for setting in &settings.entries {
            let at = format!("{here}/{}", pointer_token(&setting.key));
            if setting.key == "filters" {
                expression(cx, &setting.value, &at, scope);
            } else {
                walk(cx, &setting.value, &at, scope);
            }
        }
    }
}

/// A value that may be a bare expression (workflow `when`, string `filters`).
fn expression<'a>(cx: &mut Ctx<'a>, node: &'a Node, ptr: &str, scope: Scope<'a>) {
    match node.as_str() {
        Some(s) if !template::is_templated(s) => {
            for reference in template::expression(s) {
                check(cx, node.span, &reference, ptr, scope);
            }
        }
        _ => walk(cx, node, ptr, scope),
    }
}

fn walk<'a>(cx: &mut Ctx<'a>, node: &'a Node, ptr: &str, scope: Scope<'a>) {
    match &node.kind {
        Kind::Str(s) => string(cx, node, s, ptr, scope),
        Kind::Seq(items) => {
            for (i, item) in items.iter().enumerate() {
                walk(cx, item, &format!("{ptr}/{i}"), scope);
            }
        }
        Kind::Map(map) => {
            for entry in &map.entries {
                walk(
                    cx,
                    &entry.value,
                    &format!("{ptr}/{}", pointer_token(&entry.key)),
                    scope,
                );
            }
        }
        _ => {}
    }
}

fn string<'a>(cx: &mut Ctx<'a>, node: &'a Node, s: &str, ptr: &str, scope: Scope<'a>) {
    let tags = template::scan(s);
    if let Some(open) = tags.unclosed {
        let span = cx.inner_span(node, &s[open..(open + 2).min(s.len())]);
        cx.push(
            Diagnostic::error(
                span,
                "this `<<` opens a parameter tag that is never closed with `>>`",
            )
            .with_hint("in a 2.1 config a literal `<<` (a heredoc, say) is written `\\<<`")
            .with_pointer(ptr),
        );
    }
    for reference in &tags.references {
        let span = cx.inner_span(node, &s[reference.tag.clone()]);
        check(cx, span, reference, ptr, scope);
    }
}

fn check(cx: &mut Ctx<'_>, span: Span, r: &Reference<'_>, ptr: &str, scope: Scope<'_>) {
    let diagnostic = match r.kind {
        RefKind::Parameter => parameter(r.name, span, scope),
        RefKind::PipelineParameter => pipeline_parameter(cx, r.name, span, scope),
        RefKind::Matrix => matrix(r.name, span, scope),
        RefKind::PipelineValue => None,
    };
    if let Some(d) = diagnostic {
        cx.push(d.with_pointer(ptr));
    }
}

fn parameter(name: &str, span: Span, scope: Scope<'_>) -> Option<Diagnostic> {
    if scope.workflow {
        return Some(
            Diagnostic::error(
                span,
                format!("`parameters.{name}` is used in a workflow, which has no parameters"),
            )
            .with_hint(format!(
                "for a pipeline parameter write `<< pipeline.parameters.{name} >>`"
            )),
        );
    }
    let owner = scope.owner?;
    let declared = owner.params();
    if declared.is_some_and(|p| p.contains_key(name)) {
        return None;
    }
    let names: Vec<&str> = declared
        .map(|p| p.entries.iter().map(|e| e.key.as_str()).collect())
        .unwrap_or_default();
    let mut message = format!(
        "`parameters.{name}` is not a parameter of {}",
        owner.label()
    );
    if let Some(best) = did_you_mean(name, names.iter().copied()) {
        message.push_str(&format!("; did you mean `{best}`?"));
    }
    Some(Diagnostic::error(span, message).with_hint(format!(
        "declare `{name}` under the {}'s `parameters:`; parameters are visible only inside the job, command or executor that declares them",
        owner.kind.noun()
    )))
}

fn pipeline_parameter(
    cx: &Ctx<'_>,
    name: &str,
    span: Span,
    scope: Scope<'_>,
) -> Option<Diagnostic> {
    if cx.model.ns(scope.ns).in_orb {
        return Some(
            Diagnostic::error(span, format!("pipeline parameter `{name}` is used inside an orb"))
                .with_hint("orbs cannot see pipeline parameters; pass the value in as an argument of the orb's job or command"),
        );
    }
    if cx.model.pipeline_param(name).is_some() {
        return None;
    }
    let names: Vec<&str> = cx
        .model
        .pipeline
        .map(|p| p.entries.iter().map(|e| e.key.as_str()).collect())
        .unwrap_or_default();
    let mut message = format!("pipeline parameter `{name}` is not declared");
    if let Some(best) = did_you_mean(name, names.iter().copied()) {
        message.push_str(&format!("; did you mean `{best}`?"));
    }
    Some(Diagnostic::error(span, message).with_hint(format!(
        "declare it under the top-level `parameters:`, e.g. `{name}: {{type: string, default: \"\"}}`"
    )))
}

fn matrix(name: &str, span: Span, scope: Scope<'_>) -> Option<Diagnostic> {
    let params = scope.matrix?;
    if params.contains_key(name) {
        return None;
    }
    let names: Vec<&str> = params.entries.iter().map(|e| e.key.as_str()).collect();
    let mut message = format!("`matrix.{name}` is not a matrix parameter of this job entry");
    if let Some(best) = did_you_mean(name, names.iter().copied()) {
        message.push_str(&format!("; did you mean `{best}`?"));
    }
    Some(
        Diagnostic::error(span, message)
            .with_hint("name a parameter listed under this entry's `matrix.parameters`"),
    )
}
