//! Command-line definitions (clap) and dispatch. Each subcommand is a thin module that turns
//! its arguments into library calls and returns an [`Outcome`]; nothing here does the work.

mod cache;
mod compile;
mod completions;
mod execute;
mod list;
mod man;
mod orb;
mod output;
mod plan;
mod process;
mod validate;

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use crate::exit::Outcome;

#[derive(Parser, Debug)]
#[command(
    name = "localci",
    version,
    about = "Run CircleCI configs on your own machine: validate, process 2.1 and execute jobs in Docker, offline.",
    propagate_version = true
)]
pub struct Cli {
    /// When to use colors in human output.
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Check a config: YAML, schema and semantic rules; every problem with file:line:col.
    Validate(validate::Args),
    /// Compile a 2.1 config to 2.0 locally (like `circleci config process`) and print it.
    Process(process::Args),
    /// Run a workflow (as a DAG) or one job of the config in Docker.
    Execute(Box<execute::Args>),
    /// List the workflows, their jobs, requires, filters and contexts.
    List(list::Args),
    /// Show what a workflow run would do for this build, in which order, without Docker.
    Plan(plan::Args),
    /// List, remove and prune the local caches that `save_cache` stores.
    Cache(cache::Args),
    /// Print a shell completion script (bash, zsh, fish, ...) to standard output.
    Completions(completions::Args),
    /// Print the man page (roff) of localci or of one subcommand to standard output.
    Man(man::Args),
    /// Pack an orb from its source folder, or vendor a config's registry orbs.
    Orb(orb::Args),
}

/// What the commands may know about the process they run in. Environment variables are read
/// here, once, so tests control them.
#[derive(Clone, Debug)]
pub struct Context {
    pub cwd: PathBuf,
    /// Colors on stderr.
    pub color: bool,
    pub env: BTreeMap<String, String>,
}

impl Context {
    pub fn from_process(choice: ColorChoice) -> Self {
        let env: BTreeMap<String, String> = std::env::vars().collect();
        let color = match choice {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => std::io::stderr().is_terminal() && !env.contains_key("NO_COLOR"),
        };
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
        Context { cwd, color, env }
    }
}

/// Runs the parsed command line.
pub fn run(cli: Cli) -> Outcome {
    let ctx = Context::from_process(cli.color);
    match cli.command {
        Command::Validate(args) => validate::run(&ctx, &args),
        Command::Process(args) => process::run(&ctx, &args),
        Command::Execute(args) => execute::run(&ctx, &args),
        Command::List(args) => list::run(&ctx, &args),
        Command::Plan(args) => plan::run(&ctx, &args),
        Command::Cache(args) => cache::run(&ctx, &args),
        Command::Completions(args) => completions::run(&args),
        Command::Man(args) => man::run(&args),
        Command::Orb(args) => orb::run(&ctx, &args),
    }
}
