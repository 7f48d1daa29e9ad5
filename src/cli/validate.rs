//! `localci validate`: load, parse and validate one config; print every diagnostic.

use std::path::PathBuf;

use clap::ValueEnum;

use super::Context;
use super::compile::CompileArgs;
use super::output::{self, outln};
use crate::diagnostic::{self, Diagnostic};
use crate::exit::Outcome;
use crate::source::Sources;
use crate::validate::{self, Options};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The config file [default: .circleci/config.yml of the current repository]
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,

    /// Treat warnings (such as registry orbs that cannot be fetched offline) as errors.
    #[arg(long)]
    pub strict: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Human,
    Json,
}

pub fn run(ctx: &Context, args: &Args) -> Outcome {
    let mut sources = Sources::new();
    let diags = check(ctx, args, &mut sources);
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

fn check(ctx: &Context, args: &Args, sources: &mut Sources) -> Vec<Diagnostic> {
    let path = match crate::load::find_config(args.config.as_deref(), &ctx.cwd) {
        Ok(path) => path,
        Err(d) => return vec![d],
    };
    let file = match crate::load::load(sources, &path) {
        Ok(file) => file,
        Err(d) => return vec![d],
    };
    let node = match crate::yaml::parse(sources.get(file), file) {
        Ok(node) => node,
        Err(d) => return vec![d],
    };
    // The same orb sources and pipeline values as `process` (no flags: their defaults).
    let compile = match CompileArgs::default().options(ctx, &path) {
        Ok(options) => options,
        Err(diags) => return diags,
    };
    let options = Options {
        strict: args.strict,
        ..Options::default()
    };
    let mut diags = validate::validate_compiled(sources, file, &node, &options, &compile);
    diagnostic::sort(&mut diags);
    diags
}
