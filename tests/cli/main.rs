//! The one integration-test binary: each module drives the real `localci` binary.

mod cache;
mod execute;
mod process;
mod pull;
mod report;
mod samples;
mod validate;
