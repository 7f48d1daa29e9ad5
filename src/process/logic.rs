//! Logic statements (`when:` conditions of steps and workflows): `and`, `or`, `not`, `equal`,
//! `matches`, and plain values judged by truthiness (the string "false" is truthy).
//!
//! Evaluated after substitution, on plain data; the nesting limit is CircleCI's (100).

use regex::Regex;

use crate::diagnostic::Diagnostic;
use crate::source::Span;
use crate::yaml::{Kind, Node};

use super::context::{Ctx, Res};
use super::value::{same, truthy};

/// CircleCI's documented limit of nested logic statements.
pub(crate) const MAX_DEPTH: usize = 100;

/// The truth of a (substituted) logic statement.
pub(crate) fn eval(ctx: &mut Ctx, node: &Node) -> Res<bool> {
    // A `steps` parameter used as a condition is a list, judged by whether it is empty (the
    // artifactory orb's `condition: << parameters.build-steps >>`); a list written as the
    // condition itself is a mistake.
    if matches!(node.kind, Kind::Seq(_)) && !super::steps::is_expanded_list(node) {
        return Err(ctx.error(
            Diagnostic::error(
                node.span,
                "a condition must be a logic statement, not a list",
            )
            .with_hint("combine several conditions with `and: [...]` or `or: [...]`"),
        ));
    }
    if let Some(span) = too_deep(node) {
        return Err(ctx.error(Diagnostic::error(
            span,
            format!("logic statements are nested more than {MAX_DEPTH} levels deep"),
        )));
    }
    eval_at(ctx, node)
}

/// The first statement nested deeper than [`MAX_DEPTH`], counting `not`, `and` and `or` levels:
/// the one nesting rule, checked on the whole statement before it is evaluated (so an operand
/// that `and`/`or` never reaches counts too), and what `validate` reports.
pub(crate) fn too_deep(node: &Node) -> Option<Span> {
    too_deep_at(node, 0)
}

fn too_deep_at(node: &Node, depth: usize) -> Option<Span> {
    if depth > MAX_DEPTH {
        return Some(node.span);
    }
    match operator(node)? {
        ("not", arg) => too_deep_at(arg, depth + 1),
        (
            "and" | "or",
            Node {
                kind: Kind::Seq(items),
                ..
            },
        ) => items.iter().find_map(|i| too_deep_at(i, depth + 1)),
        _ => None,
    }
}

/// Evaluates a statement that [`too_deep`] passed.
fn eval_at(ctx: &mut Ctx, node: &Node) -> Res<bool> {
    let Some((op, arg)) = operator(node) else {
        return Ok(truthy(node));
    };
    match op {
        "not" => Ok(!eval_at(ctx, arg)?),
        "and" | "or" => {
            let items = list(ctx, op, arg)?;
            let mut result = op == "and" && !items.is_empty();
            for item in items {
                let v = eval_at(ctx, item)?;
                if op == "and" && !v {
                    return Ok(false);
                }
                if op == "or" && v {
                    result = true;
                }
            }
            Ok(result)
        }
        "equal" => {
            let items = list(ctx, op, arg)?;
            Ok(!items.is_empty() && items.windows(2).all(|w| same(&w[0], &w[1])))
        }
        _ => matches(ctx, arg),
    }
}

/// `{and: [...]}` and friends: a one-key map whose key is an operator.
fn operator(node: &Node) -> Option<(&str, &Node)> {
    let map = node.as_map()?;
    let [entry] = map.entries.as_slice() else {
        return None;
    };
    matches!(
        entry.key.as_str(),
        "and" | "or" | "not" | "equal" | "matches"
    )
    .then_some((entry.key.as_str(), &entry.value))
}

fn list<'n>(ctx: &mut Ctx, op: &str, arg: &'n Node) -> Res<&'n [Node]> {
    match &arg.kind {
        Kind::Seq(items) => Ok(items),
        _ => Err(ctx.error(Diagnostic::error(
            arg.span,
            format!("`{op}` takes a list of values, not a {}", arg.type_name()),
        ))),
    }
}

fn matches(ctx: &mut Ctx, arg: &Node) -> Res<bool> {
    let field = |key| arg.get(key).and_then(Node::scalar_text);
    let (Some(pattern), Some(value)) = (field("pattern"), field("value")) else {
        return Err(ctx.error(
            Diagnostic::error(arg.span, "`matches` needs a `pattern` and a `value`")
                .with_hint("matches: { pattern: \"^main$\", value: << pipeline.git.branch >> }"),
        ));
    };
    match Regex::new(&format!("^(?:{pattern})$")) {
        Ok(re) => Ok(re.is_match(&value)),
        Err(e) => Err(ctx.error(Diagnostic::error(
            arg.get("pattern").map_or(arg.span, |p| p.span),
            format!("invalid regular expression {pattern:?}: {e}"),
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::{FileId, Source};

    fn truth(yaml: &str) -> bool {
        let src = Source::new("t.yml", yaml.to_string());
        let node = crate::yaml::parse(&src, FileId(0)).unwrap();
        eval(&mut Ctx::default(), node.get("c").unwrap()).unwrap()
    }

    #[test]
    fn statements() {
        assert!(truth("c: \"false\""));
        assert!(!truth("c: false"));
        assert!(truth("c: {and: [true, yes, 1]}"));
        assert!(!truth("c: {and: []}"));
        assert!(truth("c: {or: [false, {not: false}]}"));
        assert!(truth("c: {equal: [main, main, main]}"));
        assert!(!truth("c: {equal: [1, \"1\"]}"));
        assert!(truth("c: {matches: {pattern: \"v[0-9]+\", value: v12}}"));
        assert!(!truth("c: {matches: {pattern: \"v[0-9]\", value: v12}}"));
    }

    fn nots(n: usize) -> Node {
        let text = format!("c: {}true{}\n", "{not: ".repeat(n), "}".repeat(n));
        let src = Source::new("t.yml", text);
        let node = crate::yaml::parse(&src, FileId(0)).unwrap();
        node.get("c").unwrap().clone()
    }

    #[test]
    fn a_hundred_levels_are_allowed() {
        assert_eq!(too_deep(&nots(100)), None);
        assert!(too_deep(&nots(101)).is_some());
    }

    /// See: issue 8. The limit holds for an operand that evaluation never reaches, as
    /// `validate` reports it.
    #[test]
    fn a_deep_operand_after_a_false_one_is_still_too_deep() {
        let text = format!(
            "c: {{and: [false, {}true{}]}}\n",
            "{not: ".repeat(100),
            "}".repeat(100)
        );
        let src = Source::new("t.yml", text);
        let node = crate::yaml::parse(&src, FileId(0)).unwrap();
        let mut ctx = Ctx::default();
        assert!(eval(&mut ctx, node.get("c").unwrap()).is_err());
        assert_eq!(ctx.errors.len(), 1);
    }
}
