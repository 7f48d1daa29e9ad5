//! Pipeline parameters: the top-level `parameters:` of a 2.1 config (types string, boolean,
//! integer, enum; each with a default), overridden by `--pipeline-param key=value`. Values from
//! the command line are text and are read according to the declared type.

use crate::diagnostic::Diagnostic;
use crate::source::Span;
use crate::yaml::{Kind, Node};

use super::context::{Ctx, Reported, Res};
use super::params::{ParamDecl, ParamType, check, declared};
use super::value::repr;

/// The value of every declared pipeline parameter, in declaration order.
pub(crate) fn resolve(
    ctx: &mut Ctx,
    config: &Node,
    given: &[(String, String)],
) -> Res<Vec<(String, Node)>> {
    let decls = declared(ctx, config.get("parameters"), "the pipeline")?;
    let mut failed = false;
    for d in &decls.list {
        if matches!(
            d.ty,
            Some(ParamType::Executor | ParamType::Steps | ParamType::EnvVarName)
        ) {
            ctx.error(
                Diagnostic::error(
                    d.span,
                    format!(
                        "pipeline parameter {} cannot have type {}",
                        d.name,
                        d.ty.as_ref().map_or("", ParamType::name)
                    ),
                )
                .with_hint("pipeline parameters are string, boolean, integer or enum"),
            );
            failed = true;
        }
    }
    for (key, _) in given {
        if decls.get(key).is_none() {
            let declared = decls.names();
            ctx.error(
                Diagnostic::bare(format!("Unexpected argument(s): {key}")).with_hint(
                    if declared.is_empty() {
                        "the config declares no pipeline parameters (top-level `parameters:`)"
                            .to_string()
                    } else {
                        format!("declared pipeline parameters: {}", declared.join(", "))
                    },
                ),
            );
            failed = true;
        }
    }
    let mut out = Vec::new();
    for d in &decls.list {
        let value = match given.iter().rev().find(|(k, _)| *k == d.name) {
            Some((_, text)) => match typed(d, text) {
                Ok(v) => v,
                Err(msg) => {
                    ctx.error(Diagnostic::error(d.span, msg).with_hint(format!(
                        "--pipeline-param {}={text} does not fit the declaration here",
                        d.name
                    )));
                    failed = true;
                    continue;
                }
            },
            None => match d.default {
                Some(v) => v.clone(),
                None => {
                    ctx.error(
                        Diagnostic::error(d.span, format!("Missing required argument(s): pipeline parameter {} has no default", d.name))
                            .with_hint(format!("give it a `default:`, or pass --pipeline-param {}=<value>", d.name)),
                    );
                    failed = true;
                    continue;
                }
            },
        };
        out.push((d.name.to_string(), value));
    }
    if failed { Err(Reported) } else { Ok(out) }
}

/// Reads command-line text as the declared type.
fn typed(decl: &ParamDecl, text: &str) -> Result<Node, String> {
    let span: Span = decl.span;
    let kind = match decl.ty {
        Some(ParamType::Boolean) => match crate::yaml::resolve_plain(text) {
            Kind::Bool(b) => Kind::Bool(b),
            _ => Kind::Str(text.to_string()),
        },
        Some(ParamType::Integer) => match text.trim().parse::<i64>() {
            Ok(i) => Kind::Int(i),
            Err(_) => Kind::Str(text.to_string()),
        },
        _ => Kind::Str(text.to_string()),
    };
    let node = Node::new(span, kind);
    match check(decl, &node) {
        Ok(_) => Ok(node),
        Err(_) => Err(format!(
            "Type error for argument {}: expected type: {}, actual value: {} (type string)",
            decl.name,
            match &decl.ty {
                Some(ParamType::Enum(values)) => format!("enum [{}]", values.join(", ")),
                other => other.as_ref().map_or("", ParamType::name).to_string(),
            },
            repr(&Node::string(span, text))
        )),
    }
}
