//! The one integration-test binary: each module drives the real `localci` binary.

mod cache;
mod completions;
mod endpoints;
mod execute;
mod process;
mod pull;
mod samples;
mod validate;
