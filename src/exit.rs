//! The one place where outcomes become process exit codes.

/// Why a command ended, as far as the exit code is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Everything passed.
    Success,
    /// A job (or a step in it) failed.
    JobFailed,
    /// The config is invalid, or the command line is.
    Invalid,
    /// The environment is not usable: Docker unreachable, an image missing.
    Environment,
    /// Interrupted by Ctrl-C (SIGINT): 128 + 2, as a shell reports it.
    Interrupted,
    /// Stopped by SIGTERM (`kill`, `docker stop`, a CI runner's timeout): 128 + 15.
    Terminated,
}

impl Outcome {
    pub fn code(self) -> i32 {
        match self {
            Outcome::Success => 0,
            Outcome::JobFailed => 1,
            Outcome::Invalid => 2,
            Outcome::Environment => 3,
            Outcome::Interrupted => 130,
            Outcome::Terminated => 143,
        }
    }
}
