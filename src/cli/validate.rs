//! `localci validate`: load, parse and validate one config through the front end (the same
//! orb sources as `process`); print every diagnostic.

use std::path::PathBuf;

use clap::ValueEnum;

use super::Context;
use super::compile::CompileArgs;
use super::output::{self, outln};
use crate::diagnostic::{self, Diagnostic};
use crate::exit::Outcome;
use crate::validate::Options;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The config file [default: .circleci/config.yml of the current repository]
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,

    /// Treat warnings (such as registry orbs that have no source) as errors.
    #[arg(long)]
    pub strict: bool,

    #[command(flatten)]
    pub compile: CompileArgs,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Human,
    Json,
}

pub fn run(ctx: &Context, args: &Args) -> Outcome {
    let front = args.compile.front_options(ctx, args.config.clone(), false);
    let options = Options {
        strict: args.strict,
        ..Options::default()
    };
    let (sources, diags) = crate::frontend::check(&front, &options);
    let failed = diags.iter().any(Diagnostic::is_error);
    match args.format {
        Format::Json => {
            outln!("{}", diagnostic::render_json(&sources, &diags));
        }
        Format::Human => {
            output::stderr(&diagnostic::render_human(&sources, &diags, ctx.color));
            if !failed {
                outln!("config is valid");
            }
        }
    }
    if failed {
        Outcome::Invalid
    } else {
        Outcome::Success
    }
}
