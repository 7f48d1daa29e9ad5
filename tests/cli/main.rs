//! One integration-test binary: each module runs the real `localci` binary in a temp dir.

mod cache;
mod execute;
mod samples;
