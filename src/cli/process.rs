//! `localci process`: compile a 2.1 config to 2.0 offline and print it, like
//! `circleci config process`.

use std::path::PathBuf;

use super::Context;
use super::compile::CompileArgs;
use super::output;
use crate::diagnostic::{self, Diagnostic};
use crate::exit::Outcome;
use crate::process::{self, Processed};
use crate::source::Sources;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The config file [default: .circleci/config.yml of the current repository]
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    pub config: Option<PathBuf>,

    #[command(flatten)]
    pub compile: CompileArgs,

    /// Write the compiled config to FILE instead of standard output.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
}

pub fn run(ctx: &Context, args: &Args) -> Outcome {
    let mut sources = Sources::new();
    match compile(ctx, args, &mut sources) {
        Ok(processed) => {
            output::stderr(&diagnostic::render_human(
                &sources,
                &processed.warnings,
                ctx.color,
            ));
            match write(args, &processed) {
                Ok(()) => Outcome::Success,
                Err(d) => {
                    output::stderr(&diagnostic::render_human(&sources, &[d], ctx.color));
                    Outcome::Environment
                }
            }
        }
        Err(diags) => {
            output::stderr(&diagnostic::render_human(&sources, &diags, ctx.color));
            Outcome::Invalid
        }
    }
}

fn compile(
    ctx: &Context,
    args: &Args,
    sources: &mut Sources,
) -> Result<Processed, Vec<Diagnostic>> {
    let path = crate::load::find_config(args.config.as_deref(), &ctx.cwd).map_err(|d| vec![d])?;
    let file = crate::load::load(sources, &path).map_err(|d| vec![d])?;
    let node = crate::yaml::parse(sources.get(file), file).map_err(|d| vec![d])?;
    let options = args.compile.options(ctx, &path)?;
    let processed = process::process(sources, file, &node, &options)?;
    // The compiler reports what it cannot compile in CircleCI's own words; the validator then
    // catches what compiles but is still wrong (a requires cycle, a bad resource class ...).
    let invalid: Vec<Diagnostic> =
        crate::validate::validate(sources, file, &node, &crate::validate::Options::default())
            .into_iter()
            .filter(Diagnostic::is_error)
            .collect();
    if invalid.is_empty() {
        Ok(processed)
    } else {
        Err(invalid)
    }
}

/// The compiled YAML, preceded (like CircleCI's output) by how each registry orb resolved.
fn render(processed: &Processed) -> String {
    let mut out = String::new();
    for orb in &processed.orbs {
        out.push_str(&format!(
            "# Orb '{}' resolved to '{}'\n",
            orb.reference, orb.resolved
        ));
    }
    out.push_str(&crate::yaml::emit::emit(&processed.config));
    out
}

fn write(args: &Args, processed: &Processed) -> Result<(), Diagnostic> {
    let text = render(processed);
    match &args.output {
        None => {
            output::stdout(&text);
            Ok(())
        }
        Some(path) => std::fs::write(path, text).map_err(|e| {
            Diagnostic::bare(format!("cannot write {}: {e}", path.display()))
                .with_hint("check that the folder exists and is writable")
        }),
    }
}
