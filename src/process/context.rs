//! The bookkeeping one compile run shares: collected diagnostics, and the stack of expansion
//! frames ("in command `x` called here") that every error gets as labels, so a problem deep
//! inside an orb still points back at the line of the user's config that led to it.
//!
//! Nothing here knows CircleCI semantics.

use crate::diagnostic::Diagnostic;
use crate::source::Span;

/// Marker: the problem was recorded in [`Ctx`]; the caller skips the element and goes on, so one
/// run reports every independent error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Reported;

pub(crate) type Res<T> = Result<T, Reported>;

/// At most this many caller labels are attached to one error; deeper stacks add nothing a
/// reader can use.
const MAX_LABELS: usize = 6;

#[derive(Default)]
pub(crate) struct Ctx {
    pub errors: Vec<Diagnostic>,
    pub warnings: Vec<Diagnostic>,
    frames: Vec<(Span, String)>,
}

impl Ctx {
    /// Records an error with the current expansion frames as labels.
    pub fn error(&mut self, diag: Diagnostic) -> Reported {
        let diag = self.with_frames(diag);
        self.errors.push(diag);
        Reported
    }

    pub fn warn(&mut self, diag: Diagnostic) {
        let diag = self.with_frames(diag);
        self.warnings.push(diag);
    }

    fn with_frames(&self, mut diag: Diagnostic) -> Diagnostic {
        for (span, label) in self.frames.iter().rev().take(MAX_LABELS) {
            if Some(*span) != diag.span {
                diag.labels.push((*span, label.clone()));
            }
        }
        diag
    }

    /// Enters an expansion frame; every error until the matching [`Ctx::pop`] gets its label.
    pub fn push(&mut self, span: Span, label: String) {
        self.frames.push((span, label));
    }

    pub fn pop(&mut self) {
        self.frames.pop();
    }
}
