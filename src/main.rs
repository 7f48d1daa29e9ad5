//! The `localci` binary: parse the command line, run it, exit with the outcome's code.

use clap::Parser;
use localci::exit::Outcome;

fn main() {
    let cli = match localci::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // `--help` and `--version` are printed through the same error type.
            let outcome = if e.use_stderr() {
                Outcome::Invalid
            } else {
                Outcome::Success
            };
            let _ = e.print();
            std::process::exit(outcome.code());
        }
    };
    std::process::exit(localci::cli::run(cli).code());
}

/// The allocator: localci's YAML trees make and free millions of small values, which glibc's
/// allocator spends a third of `validate`'s time on for a large config (issue 9, finding 3).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
