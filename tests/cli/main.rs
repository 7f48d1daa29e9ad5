//! The integration tests: one test binary that runs the real `localci`, one module per command.

mod validate;
