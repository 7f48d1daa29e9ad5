//! Logic statements (`when:` conditions of steps and workflows): `and`, `or`, `not`, `equal`,
//! `matches`, and plain values judged by truthiness (the string "false" is truthy).
//!
//! Evaluated after substitution, on plain data; the nesting limit is CircleCI's (100).

use regex::Regex;

use crate::diagnostic::Diagnostic;
use crate::yaml::{Kind, Node};

use super::context::{Ctx, Res};
use super::value::{same, truthy};

/// CircleCI's documented limit; `validate` checks the same.
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
    eval_at(ctx, node, 0)
}

fn eval_at(ctx: &mut Ctx, node: &Node, depth: usize) -> Res<bool> {
    if depth > MAX_DEPTH {
        return Err(ctx.error(Diagnostic::error(
            node.span,
            "logic statements are nested more than 100 levels deep",
        )));
    }
    let Some((op, arg)) = operator(node) else {
        return Ok(truthy(node));
    };
    match op {
        "not" => Ok(!eval_at(ctx, arg, depth + 1)?),
        "and" | "or" => {
            let items = list(ctx, op, arg)?;
            let mut result = op == "and" && !items.is_empty();
            for item in items {
                let v = eval_at(ctx, item, depth + 1)?;
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
}
