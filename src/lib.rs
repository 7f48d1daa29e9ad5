//! localci: run CircleCI configs on your own machine.
//!
//! Data flows one way through stages named as verbs, each a module with one output type:
//!
//! ```text
//! load -> yaml (parse, spans) -> validate (schema + semantics) -> process (2.1 -> 2.0)
//!      -> plan (jobs / workflow DAG) -> engine (tokio) -> steps -> backend (bollard)
//!                                                   \-> events -> report (terminal / json)
//! ```
//!
//! Everything before the engine is synchronous, pure and Docker-free. `diagnostic` is the one
//! error type for config problems; `exit` maps outcomes to exit codes.

mod agent;
pub mod backend;
pub mod cli;
pub mod config;
pub mod diagnostic;
pub mod engine;
pub mod exit;
pub mod frontend;
pub mod git;
pub mod launch;
pub mod load;
pub mod plan;
pub mod process;
pub mod report;
pub mod source;
pub mod steps;
pub mod store;
pub(crate) mod suggest;
pub mod template;
#[cfg(test)]
mod test_support;
pub(crate) mod trace;
pub mod units;
pub mod validate;
pub mod yaml;
