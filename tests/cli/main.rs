//! The one integration-test binary: each module drives the real `localci` binary.

mod cache;
mod execute;
#[path = "../../fuzz/harness.rs"]
mod fuzz;
mod harden_input;
mod process;
mod pull;
mod samples;
mod validate;
