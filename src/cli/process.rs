//! `localci process`: compile a 2.1 config to 2.0 offline and print it, like
//! `circleci config process`.

use std::path::{Path, PathBuf};

use super::Context;
use crate::diagnostic::{self, Diagnostic};
use crate::exit::Outcome;
use crate::git::RepoInfo;
use crate::process::{self, Options, PipelineValues, Processed};
use crate::source::Sources;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The config file [default: .circleci/config.yml of the current repository]
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Set a pipeline parameter (repeatable); the value is read as the declared type.
    #[arg(long = "pipeline-param", value_name = "KEY=VALUE", value_parser = key_value)]
    pub pipeline_params: Vec<(String, String)>,

    /// Override a pipeline value such as git.revision or number (repeatable).
    #[arg(long = "pipeline-value", value_name = "KEY=VALUE", value_parser = key_value)]
    pub pipeline_values: Vec<(String, String)>,

    /// Compile as a build of this branch (`pipeline.git.branch`).
    #[arg(long, value_name = "BRANCH")]
    pub branch: Option<String>,

    /// Compile as a build of this tag (`pipeline.git.tag`; the branch is then empty).
    #[arg(long, value_name = "TAG")]
    pub tag: Option<String>,

    /// Use a local file as the source of a registry orb (repeatable).
    #[arg(long = "orb", value_name = "NS/NAME@VERSION=FILE", value_parser = key_value)]
    pub orbs: Vec<(String, String)>,

    /// Write the compiled config to FILE instead of standard output.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
}

fn key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => Err(format!("expected KEY=VALUE, got {s:?}")),
    }
}

pub fn run(ctx: &Context, args: &Args) -> Outcome {
    let mut sources = Sources::new();
    match compile(ctx, args, &mut sources) {
        Ok(processed) => {
            eprint!(
                "{}",
                diagnostic::render_human(&sources, &processed.warnings, ctx.color)
            );
            match write(args, &processed) {
                Ok(()) => Outcome::Success,
                Err(d) => {
                    eprint!("{}", diagnostic::render_human(&sources, &[d], ctx.color));
                    Outcome::Environment
                }
            }
        }
        Err(diags) => {
            eprint!("{}", diagnostic::render_human(&sources, &diags, ctx.color));
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
    let options = options(ctx, args, &path)?;
    process::process(sources, file, &node, &options)
}

fn options(ctx: &Context, args: &Args, config: &Path) -> Result<Options, Vec<Diagnostic>> {
    let dir = ctx
        .cwd
        .join(config)
        .parent()
        .map_or_else(|| ctx.cwd.clone(), Path::to_path_buf);
    let mut values = PipelineValues::from_repo(&RepoInfo::discover(&dir));
    if let Some(tag) = &args.tag {
        values.set_tag(tag);
    }
    if let Some(branch) = &args.branch {
        values.set_branch(branch);
    }
    let mut errors = Vec::new();
    for (k, v) in &args.pipeline_values {
        if let Err(e) = values.set(k, v) {
            errors.push(Diagnostic::bare(format!("--pipeline-value {k}={v}: {e}")));
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Options {
        pipeline_params: args.pipeline_params.clone(),
        pipeline_values: values,
        orb_files: args
            .orbs
            .iter()
            .map(|(k, v)| (k.clone(), ctx.cwd.join(v)))
            .collect(),
        orb_dirs: process::user_orb_dir(&ctx.env).into_iter().collect(),
        all_jobs: false,
    })
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
            print!("{text}");
            Ok(())
        }
        Some(path) => std::fs::write(path, text).map_err(|e| {
            Diagnostic::bare(format!("cannot write {}: {e}", path.display()))
                .with_hint("check that the folder exists and is writable")
        }),
    }
}
