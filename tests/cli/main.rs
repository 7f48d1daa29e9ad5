//! The one integration-test binary: each area of localci has its own module here, and every
//! test runs the real `localci` binary.

mod samples;
