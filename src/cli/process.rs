//! `localci process`: compile a 2.1 config to 2.0 locally and print it, like
//! `circleci config process`, through the front end (load -> yaml -> process -> validate).

use std::path::PathBuf;

use super::Context;
use super::compile::CompileArgs;
use super::output;
use crate::diagnostic::{self, Diagnostic};
use crate::exit::Outcome;
use crate::process::Processed;

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
    let mut options = args.compile.front_options(ctx, args.config.clone(), false);
    options.compiled_only = true;
    let front = match super::compile::front_or_report(ctx, &options) {
        Ok(front) => front,
        Err(outcome) => return outcome,
    };
    let processed = front
        .processed
        .as_ref()
        .expect("compiled_only runs the compiler on every config");
    output::stderr(&diagnostic::render_human(
        &front.sources,
        &processed.warnings,
        ctx.color,
    ));
    match write(args, processed) {
        Ok(()) => Outcome::Success,
        Err(d) => {
            output::stderr(&diagnostic::render_human(&front.sources, &[d], ctx.color));
            Outcome::Environment
        }
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
