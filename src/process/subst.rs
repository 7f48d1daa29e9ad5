//! Substitution of `<< ... >>` in one element's body, in that element's lexical scope.
//!
//! A string that is exactly one tag takes the referenced value with its type (an integer for
//! `parallelism`, a list for `steps`, a map for an executor); a tag embedded in a longer string
//! is rendered as text. Values that were substituted in are never scanned again, so an argument
//! carrying a literal `<<` (written `\<<` by the caller) stays literal.

use crate::diagnostic::Diagnostic;
use crate::source::Span;
use crate::yaml::{Entry, Kind, Map, Node};

use super::budget::{MAX_STRING, MAX_VALUE_DEPTH, deeper_than};
use super::context::{Ctx, Reported, Res};
use super::expr::{self, Value};
use super::params::Args;
use super::pipeline::{PipelineValue, PipelineValues};
use super::template::{self, Piece, RefKind};
use super::value;

/// What `<< >>` can see at one place of the config.
#[derive(Clone, Copy)]
pub(crate) struct Scope<'a> {
    /// The element's own parameters (`parameters.x`); `None` outside jobs, commands, executors.
    pub params: Option<&'a Args>,
    /// `pipeline.parameters.x`; `None` inside orbs, which cannot see them.
    pub pipeline_params: Option<&'a [(String, Node)]>,
    pub pipeline: &'a PipelineValues,
    /// `matrix.x`, in workflow job entries with a matrix.
    pub matrix: Option<&'a [(String, Node)]>,
}

/// A substituted copy of `node`. Every problem in it is recorded before failing.
pub(crate) fn subst(ctx: &mut Ctx, node: &Node, scope: &Scope) -> Res<Node> {
    walk(ctx, node, scope, false)
}

/// Substitutes one string value (or returns other nodes unchanged).
pub(crate) fn subst_str(ctx: &mut Ctx, node: &Node, scope: &Scope) -> Res<Node> {
    match &node.kind {
        Kind::Str(s) if template::has_template(s) => string(ctx, node, s, scope, false),
        _ => Ok(node.clone()),
    }
}

fn walk(ctx: &mut Ctx, node: &Node, scope: &Scope, env: bool) -> Res<Node> {
    match &node.kind {
        Kind::Str(s) if template::has_template(s) => string(ctx, node, s, scope, env),
        Kind::Seq(items) => {
            let mut failed = false;
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                match walk(ctx, item, scope, false) {
                    Ok(n) => out.push(n),
                    Err(Reported) => failed = true,
                }
            }
            if failed {
                Err(Reported)
            } else {
                Ok(Node {
                    kind: Kind::Seq(out),
                    ..shell(node)
                })
            }
        }
        Kind::Map(map) => {
            let mut failed = false;
            // Of the exact size: a substituted copy is made of every map a compile reads.
            let mut out = Map::from_entries(Vec::with_capacity(map.entries.len()));
            for e in &map.entries {
                let key = if template::has_template(&e.key) {
                    let key_node = Node::string(e.key_span, e.key.clone());
                    match text_of(ctx, &key_node, &e.key, scope) {
                        Ok(k) => k,
                        Err(Reported) => {
                            failed = true;
                            continue;
                        }
                    }
                } else {
                    e.key.clone()
                };
                let result = if e.key == "environment" && e.value.as_map().is_some() {
                    env_map(ctx, &e.value, scope)
                } else {
                    walk(ctx, &e.value, scope, false)
                };
                match result {
                    Ok(value) => out.entries.push(Entry {
                        key,
                        key_span: e.key_span,
                        value,
                    }),
                    Err(Reported) => failed = true,
                }
            }
            if failed {
                Err(Reported)
            } else {
                Ok(Node {
                    kind: Kind::Map(out),
                    ..shell(node)
                })
            }
        }
        _ => Ok(node.clone()),
    }
}

/// `env` marks the values of an `environment` map: there a boolean that replaces a whole value
/// becomes `1`/`0`, which is what a CircleCI job sees (circleci-docs#5304).
fn env_map(ctx: &mut Ctx, value: &Node, scope: &Scope) -> Res<Node> {
    let Some(map) = value.as_map() else {
        return walk(ctx, value, scope, false);
    };
    let mut failed = false;
    let mut out = Map::default();
    for e in &map.entries {
        let key_node = Node::string(e.key_span, e.key.clone());
        let key = match subst_str(ctx, &key_node, scope) {
            Ok(k) => k.scalar_text().unwrap_or_default(),
            Err(Reported) => {
                failed = true;
                continue;
            }
        };
        match walk(ctx, &e.value, scope, true) {
            Ok(v) => out.entries.push(Entry {
                key,
                key_span: e.key_span,
                value: v,
            }),
            Err(Reported) => failed = true,
        }
    }
    if failed {
        Err(Reported)
    } else {
        Ok(Node {
            kind: Kind::Map(out),
            ..shell(value)
        })
    }
}

/// `node` without its children, to take new ones: cloning it whole only to drop its kind
/// copied every subtree once per level it is nested in (issue 9).
fn shell(node: &Node) -> Node {
    Node {
        span: node.span,
        kind: Kind::Null,
        raw: node.raw.clone(),
    }
}

fn string(ctx: &mut Ctx, node: &Node, s: &str, scope: &Scope, env: bool) -> Res<Node> {
    let pieces = parse(ctx, node.span, s)?;
    if let [Piece::Tag(content)] = pieces.as_slice() {
        let mut value = whole(ctx, node.span, content, scope)?;
        if env && let Kind::Bool(b) = value.kind {
            value = Node::string(node.span, if b { "1" } else { "0" });
        }
        return Ok(value);
    }
    let text = render(ctx, node.span, &pieces, scope)?;
    Ok(Node::string(node.span, text))
}

/// The text of `s` with every tag rendered.
pub(crate) fn text_of(ctx: &mut Ctx, node: &Node, s: &str, scope: &Scope) -> Res<String> {
    let pieces = parse(ctx, node.span, s)?;
    render(ctx, node.span, &pieces, scope)
}

fn parse(ctx: &mut Ctx, span: Span, s: &str) -> Res<Vec<Piece>> {
    template::parse(s).map_err(|e| {
        ctx.error(Diagnostic::error(span, e.message()).with_hint(
            "in a 2.1 config `<<` starts a parameter or expression; write a literal one as \\<<",
        ))
    })
}

fn render(ctx: &mut Ctx, span: Span, pieces: &[Piece], scope: &Scope) -> Res<String> {
    let mut out = String::new();
    for piece in pieces {
        match piece {
            Piece::Text(t) => out.push_str(t),
            Piece::Tag(content) => {
                let value = whole(ctx, span, content, scope)?;
                match value::text(&value) {
                    Some(t) => out.push_str(&t),
                    None => {
                        return Err(ctx.error(
                            Diagnostic::error(
                                span,
                                format!(
                                    "<< {content} >> is {} and cannot be embedded in a string",
                                    value.type_name()
                                ),
                            )
                            .with_hint("use the reference as the whole value instead"),
                        ));
                    }
                }
            }
            Piece::Section {
                inverted,
                name,
                body,
            } => {
                let value = whole(ctx, span, name, scope)?;
                if value::truthy(&value) != *inverted {
                    out.push_str(&render(ctx, span, body, scope)?);
                }
            }
        }
        if out.len() > MAX_STRING {
            return Err(ctx.error(
                Diagnostic::error(
                    span,
                    format!(
                        "substitution makes this string longer than {} MiB",
                        MAX_STRING >> 20
                    ),
                )
                .with_hint(
                    "a parameter embedded several times and passed down through commands \
                     doubles at every level",
                ),
            ));
        }
    }
    Ok(out)
}

/// The typed value of one tag: a reference, or an expression.
fn whole(ctx: &mut Ctx, span: Span, content: &str, scope: &Scope) -> Res<Node> {
    if is_reference(content) {
        return reference(content, span, scope).map_err(|d| ctx.error(*d));
    }
    let mut lookup = |name: &str| expr_lookup(name, span, scope);
    match expr::eval(content, &mut lookup) {
        Ok(v) => Ok(from_value(v, span)),
        Err(e) => Err(ctx.error(
            Diagnostic::error(
                span,
                format!("in << {} >>: {}", shown(content), e.message),
            )
            .with_hint(
                "`<< >>` holds a parameter (parameters.x), a pipeline value (pipeline.git.branch) \
                 or an expression; write a literal `<<` as \\<<",
            ),
        )),
    }
}

/// `parameters.x`, `pipeline.git.branch`: a dotted name the expression grammar calls an
/// identifier.
pub(crate) fn is_reference(s: &str) -> bool {
    let mut segments = s.split('.');
    let first_ok = s.chars().next().is_some_and(|c| c.is_ascii_alphabetic());
    first_ok
        && segments.all(|seg| {
            !seg.is_empty()
                && seg
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
        })
        && !matches!(
            s,
            "true" | "false" | "TRUE" | "FALSE" | "not" | "and" | "or"
        )
}

/// Resolves a reference in `scope`, with CircleCI's wording when it cannot.
pub(crate) fn reference(name: &str, span: Span, scope: &Scope) -> Result<Node, Box<Diagnostic>> {
    let fail =
        |msg: String, hint: &str| Err(Box::new(Diagnostic::error(span, msg).with_hint(hint)));
    let (kind, short) = RefKind::of(name);
    match kind {
        RefKind::Parameter => match scope.params.and_then(|a| a.get(short)) {
            Some(arg) if deeper_than(&arg.value, MAX_VALUE_DEPTH) => fail(
                format!("the value of {name} nests more than {MAX_VALUE_DEPTH} levels deep"),
                "a value wrapped in another map at every call grows without end; pass it on \
                 as it is",
            ),
            Some(arg) => Ok(Node {
                span,
                ..arg.value.clone()
            }),
            None => fail(
                format!("Arguments referenced without declared parameters: {name}"),
                "declare it under `parameters:` of this job, command or executor; parameters of a \
                 caller are not visible in what it calls",
            ),
        },
        RefKind::PipelineParameter => {
            let Some(params) = scope.pipeline_params else {
                return fail(
                    format!("Unknown variable(s): {name}"),
                    "orbs cannot see pipeline parameters; pass the value as an argument",
                );
            };
            match params.iter().find(|(k, _)| k == short) {
                Some((_, v)) => Ok(Node { span, ..v.clone() }),
                None => fail(
                    format!("Unknown variable(s): {name}"),
                    "declare it under the top-level `parameters:` with a type and a default",
                ),
            }
        }
        RefKind::Matrix => match scope
            .matrix
            .and_then(|m| m.iter().find(|(k, _)| k == short))
        {
            Some((_, v)) => Ok(Node { span, ..v.clone() }),
            None => fail(
                format!("Unknown variable(s): {name}"),
                "matrix values exist only in a workflow job entry whose `matrix.parameters` lists them",
            ),
        },
        RefKind::PipelineValue => match scope.pipeline.get(name) {
            Some(v) => Ok(pipeline_node(v, span)),
            None => fail(
                format!("Unknown variable(s): {name}"),
                "known are parameters.<name>, pipeline.parameters.<name>, matrix.<name> and pipeline \
                 values such as pipeline.git.branch, pipeline.git.tag, pipeline.number",
            ),
        },
    }
}

fn pipeline_node(v: &PipelineValue, span: Span) -> Node {
    let kind = match v {
        PipelineValue::Str(s) => Kind::Str(s.clone()),
        PipelineValue::Int(i) => Kind::Int(*i),
        PipelineValue::Bool(b) => Kind::Bool(*b),
        PipelineValue::Absent => Kind::Str(String::new()),
    };
    Node::new(span, kind)
}

/// A variable inside an expression. Unset pipeline values (the tag of a branch build) are
/// "undefined", so `pipeline.git.tag or "none"` works as a fallback.
fn expr_lookup(name: &str, span: Span, scope: &Scope) -> Result<Value, String> {
    if scope.pipeline.get(name) == Some(&PipelineValue::Absent) {
        return Ok(Value::Undefined);
    }
    let node = reference(name, span, scope).map_err(|d| d.message)?;
    to_value(name, &node)
}

fn to_value(name: &str, node: &Node) -> Result<Value, String> {
    Ok(match &node.kind {
        Kind::Null => Value::Undefined,
        Kind::Bool(b) => Value::Bool(*b),
        Kind::Int(i) => Value::Int(*i),
        Kind::Float(f) => Value::Str(value::float_text(*f)),
        Kind::Str(s) => Value::Str(s.clone()),
        Kind::Seq(_) | Kind::Map(_) => {
            return Err(format!(
                "{name} is a {} and cannot be used in an expression",
                node.type_name()
            ));
        }
    })
}

fn from_value(v: Value, span: Span) -> Node {
    let kind = match v {
        Value::Undefined => Kind::Null,
        Value::Bool(b) => Kind::Bool(b),
        Value::Int(i) => Kind::Int(i),
        Value::Str(s) => Kind::Str(s),
        Value::Pattern(re) => Kind::Str(re.as_str().to_string()),
    };
    Node::new(span, kind)
}

/// Evaluates a bare expression (workflow `when`, string `filters`) to a truth value.
pub(crate) fn condition(ctx: &mut Ctx, node: &Node, src: &str, scope: &Scope) -> Res<bool> {
    let span = node.span;
    let mut lookup = |name: &str| expr_lookup(name, span, scope);
    expr::eval(src, &mut lookup)
        .map(|v| v.truthy())
        .map_err(|e| {
            ctx.error(Diagnostic::error(
                span,
                format!("in the expression {:?}: {}", shown(src), e.message),
            ))
        })
}

/// An expression as error messages quote it.
fn shown(src: &str) -> String {
    template::abbreviate(src, 60)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::params::{Arg, ParamType};

    fn args() -> Args {
        let arg = |name: &str, ty, kind| Arg {
            name: name.into(),
            ty,
            value: Node::new(Span::default(), kind),
            from_default: false,
            origin: 0,
        };
        Args {
            list: vec![
                arg("n", ParamType::Integer, Kind::Int(3)),
                arg("b", ParamType::Boolean, Kind::Bool(true)),
                arg("s", ParamType::String, Kind::Str("x".into())),
            ],
        }
    }

    fn run(src: &str) -> Res<Node> {
        let pipeline = PipelineValues::default();
        let args = args();
        let scope = Scope {
            params: Some(&args),
            pipeline_params: Some(&[]),
            pipeline: &pipeline,
            matrix: None,
        };
        let mut ctx = Ctx::default();
        subst(&mut ctx, &Node::string(Span::default(), src), &scope)
    }

    #[test]
    fn whole_references_keep_their_type() {
        assert_eq!(run("<< parameters.n >>").unwrap().kind, Kind::Int(3));
        assert_eq!(run("<<parameters.b>>").unwrap().kind, Kind::Bool(true));
        assert_eq!(
            run("n=<< parameters.n >>").unwrap().kind,
            Kind::Str("n=3".into())
        );
    }

    #[test]
    fn sections_and_escapes() {
        let out = run(
            "a<<# parameters.b >> -b<</ parameters.b >><<^ parameters.b >> -c<</ parameters.b >> \\<<EOF",
        );
        assert_eq!(out.unwrap().kind, Kind::Str("a -b <<EOF".into()));
    }

    #[test]
    fn expressions_inside_tags() {
        assert_eq!(
            run("<< parameters.n > 2 and 10 or 1 >>").unwrap().kind,
            Kind::Int(10)
        );
        assert!(run("<< parameters.missing >>").is_err());
        assert!(run("cat <<EOF").is_err());
    }
}
