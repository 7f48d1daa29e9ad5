//! `<< >>` references in a 2.1 config, each checked in its lexical scope: `parameters.x` must
//! be declared by the enclosing job, command or executor (and is never visible in a parameter
//! default); `pipeline.parameters.x` must be a declared pipeline parameter and is not visible
//! inside orbs; `matrix.x` must be a matrix parameter of the workflow entry; any other name
//! must be a pipeline value. Tags must be well formed: closed, with balanced sections, and
//! holding a reference or an expression the compiler can parse.

use std::sync::LazyLock;

use super::ctx::{Ctx, Scope};
use super::model::Def;
use super::suggest::did_you_mean;
use super::template::{self, Malformed, RefKind, Reference};
use crate::diagnostic::Diagnostic;
use crate::process::PipelineValues;
use crate::source::Span;
use crate::yaml::{Kind, Node, pointer_token};

/// The pipeline values `process` knows (their local values do not matter here).
static KNOWN: LazyLock<PipelineValues> = LazyLock::new(PipelineValues::default);

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
    for ns in &model.index.namespaces {
        for def in ns
            .executors
            .values()
            .chain(ns.commands.values())
            .chain(ns.jobs.values())
        {
            definition(cx, def);
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

/// Text that `process` never substitutes (scratch keys): only checked where it is used.
fn is_scratch(scope: Scope<'_>) -> bool {
    scope.owner.is_none() && !scope.workflow && !scope.default
}

/// The parts of a definition that `process` substitutes: everything but `description`, and of
/// `parameters:` only the defaults, which see no parameters.
fn definition<'a>(cx: &mut Ctx<'a>, def: &'a Def<'a>) {
    let Some(map) = def.body().as_map() else {
        return;
    };
    let scope = Scope::of(def);
    for entry in &map.entries {
        let ptr = format!("{}/{}", def.ptr, pointer_token(&entry.key));
        match entry.key.as_str() {
            "description" => {}
            "parameters" => {
                for decl in entry.value.as_map().map_or(&[][..], |m| &m.entries) {
                    if let Some(default) = decl.value.get("default") {
                        let at = format!("{ptr}/{}/default", pointer_token(&decl.key));
                        let scope = Scope {
                            default: true,
                            ..scope
                        };
                        walk(cx, default, &at, scope);
                    }
                }
            }
            _ => walk(cx, &entry.value, &ptr, scope),
        }
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
        Some(s) if !template::is_templated(s) => match template::expression(s) {
            Ok(references) => {
                for reference in references {
                    check(cx, node.span, &reference, ptr, scope);
                }
            }
            Err(why) => cx.push(
                Diagnostic::error(
                    node.span,
                    format!("`{}` is not a valid expression: {why}", template::shown(s)),
                )
                .with_hint(
                    "an expression compares pipeline values and parameters: \
                     pipeline.git.branch == \"main\" and not pipeline.parameters.skip",
                )
                .with_pointer(ptr),
            ),
        },
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
    for problem in &tags.problems {
        let span = cx.inner_span(node, &s[problem.at.clone()]);
        if let Some(d) = malformed(&problem.what, span, scope) {
            cx.push(d.with_pointer(ptr));
        }
    }
    for reference in &tags.references {
        let span = cx.inner_span(node, &s[reference.tag.clone()]);
        check(cx, span, reference, ptr, scope);
    }
}

/// The error for a malformed tag, worded for each kind of mistake.
fn malformed(what: &Malformed, span: Span, scope: Scope<'_>) -> Option<Diagnostic> {
    let d = match what {
        Malformed::Unclosed => Diagnostic::error(
            span,
            "this `<<` opens a parameter tag that is never closed with `>>`",
        )
        .with_hint("in a 2.1 config a literal `<<` (a heredoc, say) is written `\\<<`"),
        // Scratch text is checked where it is used, and only an unclosed `<<` is sure to be a
        // mistake wherever that is.
        _ if is_scratch(scope) => return None,
        Malformed::Sections(message) => Diagnostic::error(span, message.clone())
            .with_hint("close each `<<# name >>` section with `<</ name >>`, innermost first"),
        Malformed::Expression(content, why) => Diagnostic::error(
            span,
            match content.as_str() {
                "" => format!("cannot read `<<>>`: {why}"),
                _ => format!("cannot read `<< {} >>`: {why}", template::shown(content)),
            },
        )
        .with_hint(
            "`<< >>` holds a parameter (parameters.x), a pipeline value (pipeline.git.branch) \
             or an expression; write a literal `<<` as \\<<",
        ),
    };
    Some(d)
}

fn check(cx: &mut Ctx<'_>, span: Span, r: &Reference, ptr: &str, scope: Scope<'_>) {
    let diagnostic = match r.kind {
        RefKind::Parameter => parameter(&r.name, span, scope),
        RefKind::PipelineParameter => pipeline_parameter(cx, &r.name, span, scope),
        RefKind::Matrix => matrix(&r.name, span, scope),
        RefKind::PipelineValue => pipeline_value(&r.name, span, scope),
    };
    if let Some(d) = diagnostic {
        cx.push(d.with_pointer(ptr));
    }
}

/// A name that is neither a parameter nor a matrix value must be one of the pipeline values
/// `process` knows.
fn pipeline_value(name: &str, span: Span, scope: Scope<'_>) -> Option<Diagnostic> {
    if is_scratch(scope) {
        return None;
    }
    if KNOWN.get(name).is_some() {
        return None;
    }
    let known: Vec<&str> = KNOWN.iter().map(|(k, _)| k).collect();
    let mut message = format!("`{name}` is not a pipeline value");
    if let Some(best) = did_you_mean(name, known.iter().copied()) {
        message.push_str(&format!("; did you mean `{best}`?"));
    }
    Some(Diagnostic::error(span, message).with_hint(
        "known are parameters.<name>, pipeline.parameters.<name>, matrix.<name> and the \
         pipeline values pipeline.id, pipeline.number, pipeline.git.branch, pipeline.git.tag, \
         pipeline.git.revision, pipeline.project.git_url, pipeline.trigger_source and others",
    ))
}

fn parameter(name: &str, span: Span, scope: Scope<'_>) -> Option<Diagnostic> {
    if scope.default {
        return Some(
            Diagnostic::error(
                span,
                format!(
                    "`parameters.{name}` is used in a parameter default, which sees no parameters"
                ),
            )
            .with_hint(
                "defaults are read before any argument is bound, so they cannot refer to \
                 parameters (not even other defaults); write the value itself",
            ),
        );
    }
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
    if cx.model.ns(scope.ns).in_orb() {
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
    if is_scratch(scope) {
        return None;
    }
    let Some(params) = scope.matrix else {
        return Some(
            Diagnostic::error(
                span,
                format!("`matrix.{name}` is used where there is no matrix"),
            )
            .with_hint(
                "matrix values exist only in a workflow job entry whose `matrix.parameters` \
                 lists them; inside the job, declare a parameter and use `parameters.<name>`",
            ),
        );
    };
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
