//! The one integration-test binary: each module drives the real `localci` binary.

mod agent;
mod cache;
mod completions;
mod endpoints;
mod execute;
#[path = "../../fuzz/harness.rs"]
mod fuzz;
mod harden_host;
mod harden_input;
mod interrupts;
mod machine;
mod orb_registry;
mod process;
mod pull;
mod report;
mod samples;
mod shell;
mod support;
mod validate;
mod watch;
mod workflow;
mod workspace;
