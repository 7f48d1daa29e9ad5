//! `localci orb pack <dir>` (one orb YAML from the orb development layout, like
//! `circleci orb pack`) and `localci orb vendor` (save the registry orbs a config uses under
//! `.circleci/orbs/`, through the front end: the orb sources of every command). Argument
//! handling only; the work is in `process` and `frontend`.

use std::path::PathBuf;

use super::Context;
use super::compile::CompileArgs;
use super::output::{self, errln};
use crate::diagnostic::{self, Diagnostic};
use crate::exit::Outcome;
use crate::frontend::VendorFailure;
use crate::process;
use crate::source::Sources;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    pub command: OrbCommand,
}

#[derive(clap::Subcommand, Debug)]
pub enum OrbCommand {
    /// Pack an orb's source folder (@orb.yml, commands/, jobs/, executors/, examples/,
    /// <<include(file)>>) into one orb YAML.
    Pack(PackArgs),
    /// Save every registry orb the config uses (from --orb files, the user cache or the orb
    /// registry) under .circleci/orbs/, so the project compiles offline.
    Vendor(VendorArgs),
}

#[derive(clap::Args, Debug)]
pub struct PackArgs {
    /// The orb's source folder (the one holding @orb.yml), usually `src`.
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,

    /// Write the orb to FILE instead of standard output.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
pub struct VendorArgs {
    /// The config file [default: .circleci/config.yml of the current repository]
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    pub config: Option<PathBuf>,

    #[command(flatten)]
    pub compile: CompileArgs,
}

pub fn run(ctx: &Context, args: &Args) -> Outcome {
    match &args.command {
        OrbCommand::Pack(a) => pack(ctx, a),
        OrbCommand::Vendor(a) => vendor(ctx, a),
    }
}

fn pack(ctx: &Context, args: &PackArgs) -> Outcome {
    let mut sources = Sources::new();
    let orb = match process::orb_pack::pack(&mut sources, &ctx.cwd.join(&args.dir)) {
        Ok(orb) => orb,
        Err(diags) => return report(ctx, &sources, &diags, Outcome::Invalid),
    };
    let text = crate::yaml::emit::emit(&orb);
    match &args.output {
        None => {
            output::stdout(&text);
            Outcome::Success
        }
        // The folder is created: `-o .circleci/orbs/<ns>/<name>@<version>.yml` is the usual
        // destination.
        Some(path) => match write_creating(&ctx.cwd.join(path), &text) {
            Ok(()) => Outcome::Success,
            Err(e) => {
                let d = Diagnostic::bare(format!("cannot write {}: {e}", path.display()))
                    .with_hint("check that the folder exists and is writable");
                report(ctx, &sources, &[d], Outcome::Environment)
            }
        },
    }
}

fn write_creating(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(path, text)
}

fn vendor(ctx: &Context, args: &VendorArgs) -> Outcome {
    let options = args.compile.front_options(ctx, args.config.clone(), false);
    match crate::frontend::vendor(&options) {
        Ok(saved) if saved.is_empty() => {
            errln!("nothing to vendor: every registry orb is already under the config's orbs/");
            Outcome::Success
        }
        Ok(saved) => {
            for v in saved {
                errln!("saved {} as {}", v.orb, v.to.display());
            }
            Outcome::Success
        }
        Err(VendorFailure::Invalid(f)) => report(ctx, &f.sources, &f.diagnostics, Outcome::Invalid),
        Err(VendorFailure::Write { sources, error }) => {
            let text = match std::error::Error::source(&error) {
                Some(cause) => format!("{error}: {cause}"),
                None => error.to_string(),
            };
            let d = Diagnostic::bare(text).with_hint("check that the config's folder is writable");
            report(ctx, &sources, &[d], Outcome::Environment)
        }
    }
}

fn report(ctx: &Context, sources: &Sources, diags: &[Diagnostic], outcome: Outcome) -> Outcome {
    output::stderr(&diagnostic::render_human(sources, diags, ctx.color));
    outcome
}
