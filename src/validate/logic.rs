//! Logic statements (`when:` conditions of steps and workflows) nested deeper than CircleCI's
//! documented limit of 100: the compiler's one nesting rule (`process::logic::too_deep`),
//! worded with a pointer. Only the nesting is checked here; the shapes are the schema's work.

use super::ctx::Ctx;
use crate::diagnostic::Diagnostic;
use crate::process::logic::{MAX_DEPTH, too_deep};
use crate::yaml::Node;

/// Checks one logic statement (a `condition:` or a workflow's `when:`/`unless:`).
pub(crate) fn check(cx: &mut Ctx<'_>, statement: &Node, ptr: &str) {
    if let Some(span) = too_deep(statement) {
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
