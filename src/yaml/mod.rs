//! YAML with spans. This is the only module that imports the YAML parser crate.
//!
//! [`parse`] turns a loaded [`Source`](crate::source::Source) into a [`Node`] tree with merges
//! and aliases resolved; [`emit`] prints a tree back as YAML.

mod compose;
pub mod emit;
mod node;
mod scalar;

pub use compose::compose as parse;
pub use node::{Entry, Kind, Map, Node, pointer_token};
pub use scalar::resolve_plain;

#[cfg(test)]
mod tests;
