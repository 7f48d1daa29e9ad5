//! Logic statements (`when:` conditions of steps and workflows) nested deeper than CircleCI's
//! documented limit of 100, which the compiler refuses (`process::logic`). Only the nesting is
//! checked here; the shapes are the schema's work.

use super::ctx::Ctx;
use crate::diagnostic::Diagnostic;
use crate::process::logic::MAX_DEPTH;
use crate::source::Span;
use crate::yaml::{Kind, Node};

/// Checks one logic statement (a `condition:` or a workflow's `when:`/`unless:`).
pub(crate) fn check(cx: &mut Ctx<'_>, statement: &Node, ptr: &str) {
    if let Some(span) = too_deep(statement, 0) {
        cx.push(
            Diagnostic::error(
                span,
                format!("logic statements are nested more than {MAX_DEPTH} levels deep"),
            )
            .with_hint("combine conditions side by side in one `and: [...]` or `or: [...]`")
            .with_pointer(ptr),
        );
    }
}

/// The first statement below the limit, counting operators as the compiler does.
fn too_deep(node: &Node, depth: usize) -> Option<Span> {
    if depth > MAX_DEPTH {
        return Some(node.span);
    }
    let map = node.as_map()?;
    let [entry] = map.entries.as_slice() else {
        return None;
    };
    match (entry.key.as_str(), &entry.value.kind) {
        ("not", _) => too_deep(&entry.value, depth + 1),
        ("and" | "or", Kind::Seq(items)) => items.iter().find_map(|i| too_deep(i, depth + 1)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::{FileId, Source};

    fn nots(n: usize) -> Node {
        let text = format!("c: {}true{}\n", "{not: ".repeat(n), "}".repeat(n));
        let src = Source::new("t.yml", text);
        crate::yaml::parse(&src, FileId(0))
            .unwrap()
            .get("c")
            .unwrap()
            .clone()
    }

    #[test]
    fn a_hundred_levels_are_allowed() {
        assert_eq!(too_deep(&nots(100), 0), None);
        assert!(too_deep(&nots(101), 0).is_some());
    }
}
