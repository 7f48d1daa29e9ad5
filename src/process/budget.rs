//! Limits on how much one compile may produce, so a small config that multiplies (forty
//! commands each calling the next twice is 2^40 steps; eight matrix parameters of ten values
//! are 10^8 jobs) is a clear error within a second instead of a hang that eats all memory. The
//! YAML composer's alias budget does the same for YAML bombs.
//!
//! Every limit is far above what real configs reach. `validate` reads the same numbers so both
//! commands reject the same configs. Pure bookkeeping: callers decide where to report.

use crate::yaml::{Kind, Node};

/// Units of expansion work one compile may spend: each job instance, compiled job, command
/// call and produced step costs one. The largest real configs spend a few tens of thousands.
pub(crate) const MAX_EXPANSION: usize = 1_000_000;

/// Text (string bytes, keys included) the produced steps may hold in total.
pub(crate) const MAX_TEXT: usize = 128 << 20;

/// The longest string substitution may build (`<< parameters.s >><< parameters.s >>` passed
/// down through commands doubles at every level).
pub(crate) const MAX_STRING: usize = 8 << 20;

/// How deeply a parameter's value may nest. Executor-typed values are maps that a command can
/// wrap in another map before passing them on, level after level; past the YAML composer's own
/// depth limit the recursive walks over values would exhaust the stack.
pub(crate) const MAX_VALUE_DEPTH: usize = 256;

/// What a compile has spent so far.
#[derive(Debug, Default)]
pub(crate) struct Budget {
    units: usize,
    text: usize,
    exhausted: bool,
}

/// Why a charge was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Exceeded {
    /// The first refusal: the caller reports it.
    Units,
    Text,
    /// Refused before: already reported, the caller only stops.
    Again,
}

impl Budget {
    /// Spends one unit, plus the text of `produced` (a step that goes into the output).
    pub fn charge(&mut self, produced: Option<&Node>) -> Result<(), Exceeded> {
        if self.exhausted {
            return Err(Exceeded::Again);
        }
        self.units += 1;
        if self.units > MAX_EXPANSION {
            self.exhausted = true;
            return Err(Exceeded::Units);
        }
        if let Some(node) = produced {
            self.text = self.text.saturating_add(text_size(node));
            if self.text > MAX_TEXT {
                self.exhausted = true;
                return Err(Exceeded::Text);
            }
        }
        Ok(())
    }
}

/// The bytes of every string and key under `node`. Values are depth-limited before they get
/// here ([`deeper_than`]), so the recursion is bounded.
fn text_size(node: &Node) -> usize {
    match &node.kind {
        Kind::Str(s) => s.len(),
        Kind::Seq(items) => items.iter().map(text_size).sum(),
        Kind::Map(m) => m
            .entries
            .iter()
            .map(|e| e.key.len() + text_size(&e.value))
            .sum(),
        _ => 0,
    }
}

/// Whether `node` nests more than `limit` levels of lists and maps; never looks deeper than
/// that, however deep the value is.
pub(crate) fn deeper_than(node: &Node, limit: usize) -> bool {
    match &node.kind {
        Kind::Seq(_) | Kind::Map(_) if limit == 0 => true,
        Kind::Seq(items) => items.iter().any(|i| deeper_than(i, limit - 1)),
        Kind::Map(m) => m.entries.iter().any(|e| deeper_than(&e.value, limit - 1)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::Span;

    fn nested(levels: usize) -> Node {
        let mut node = Node::string(Span::default(), "x");
        for _ in 0..levels {
            node = Node::new(Span::default(), Kind::Seq(vec![node]));
        }
        node
    }

    #[test]
    fn the_budget_refuses_once_then_stays_shut() {
        let mut b = Budget::default();
        for _ in 0..MAX_EXPANSION {
            b.charge(None).unwrap();
        }
        assert_eq!(b.charge(None), Err(Exceeded::Units));
        assert_eq!(b.charge(None), Err(Exceeded::Again));
    }

    #[test]
    fn text_counts_too() {
        let mut b = Budget::default();
        let big = Node::string(Span::default(), "x".repeat(MAX_STRING));
        for _ in 0..(MAX_TEXT / MAX_STRING) {
            b.charge(Some(&big)).unwrap();
        }
        assert_eq!(b.charge(Some(&big)), Err(Exceeded::Text));
    }

    #[test]
    fn depth_is_measured_without_walking_further() {
        assert!(!deeper_than(&nested(3), 3));
        assert!(deeper_than(&nested(4), 3));
        assert!(deeper_than(&nested(2_000), MAX_VALUE_DEPTH));
    }
}
