//! What the semantic checks share during one run: the model, the source text (to point inside
//! scalars), the config version, the diagnostics found so far, and the lexical [`Scope`] a
//! piece of config is checked in.

use crate::diagnostic::Diagnostic;
use crate::source::{FileId, Span};
use crate::yaml::{Map, Node};

use super::model::{Def, Model, NsId, ROOT};

pub(crate) struct Ctx<'a> {
    pub model: &'a Model<'a>,
    pub text: &'a str,
    pub file: FileId,
    /// `version: 2.1`: parameters, commands, executors and orbs exist.
    pub v21: bool,
    pub out: Vec<Diagnostic>,
}

impl<'a> Ctx<'a> {
    pub(crate) fn push(&mut self, diagnostic: Diagnostic) {
        self.out.push(diagnostic);
    }

    /// The span of `needle` inside a scalar's source text (a tag inside a command, say), or
    /// the whole scalar when the text was written differently (escapes, folding).
    pub(crate) fn inner_span(&self, node: &Node, needle: &str) -> Span {
        let (start, end) = (node.span.start as usize, node.span.end as usize);
        self.text
            .get(start..end)
            .and_then(|src| src.find(needle))
            .map_or(node.span, |i| {
                Span::new(self.file, start + i, start + i + needle.len())
            })
    }
}

/// Where a piece of config is checked: which namespace names resolve in, which parameters are
/// visible (those of the enclosing job, command or executor only: scopes are lexical), and
/// which matrix values.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Scope<'a> {
    pub ns: NsId,
    pub owner: Option<&'a Def<'a>>,
    /// A workflow: no parameters, but pipeline parameters and matrix values.
    pub workflow: bool,
    pub matrix: Option<&'a Map>,
    /// A parameter's `default:`: substituted before any argument is bound, so it sees no
    /// parameters (not even its siblings).
    pub default: bool,
}

impl<'a> Scope<'a> {
    pub(crate) fn of(def: &'a Def<'a>) -> Self {
        Scope {
            ns: def.ns,
            owner: Some(def),
            workflow: false,
            matrix: None,
            default: false,
        }
    }

    pub(crate) fn workflow() -> Self {
        Scope {
            ns: ROOT,
            owner: None,
            workflow: true,
            matrix: None,
            default: false,
        }
    }
}
