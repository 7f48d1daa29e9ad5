//! The flags that shape a 2.1 compile, shared by `process` and `execute`: pipeline parameters
//! and values, branch or tag, and local sources for registry orbs.

use std::path::{Path, PathBuf};

use super::Context;
use crate::diagnostic::Diagnostic;
use crate::git::RepoInfo;
use crate::process::{self, Options, PipelineValues};

#[derive(clap::Args, Debug, Default, Clone)]
pub struct CompileArgs {
    /// Set a pipeline parameter (repeatable); the value is read as the declared type.
    #[arg(long = "pipeline-param", value_name = "KEY=VALUE", value_parser = key_value)]
    pub pipeline_params: Vec<(String, String)>,

    /// Override a pipeline value such as git.revision or number (repeatable).
    #[arg(long = "pipeline-value", value_name = "KEY=VALUE", value_parser = key_value)]
    pub pipeline_values: Vec<(String, String)>,

    /// Run as a build of this branch (`pipeline.git.branch`, CIRCLE_BRANCH, {{ .Branch }})
    /// [default: the repository's current branch]
    #[arg(long, value_name = "BRANCH", conflicts_with = "tag")]
    pub branch: Option<String>,

    /// Run as a build of this tag (`pipeline.git.tag`, CIRCLE_TAG; the branch is then empty).
    #[arg(long, value_name = "TAG")]
    pub tag: Option<String>,

    /// Use a local file as the source of a registry orb (repeatable).
    #[arg(long = "orb", value_name = "NS/NAME@VERSION=FILE", value_parser = key_value)]
    pub orbs: Vec<(String, String)>,
}

fn key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => Err(format!("expected KEY=VALUE, got {s:?}")),
    }
}

/// The folder that holds the config file (the start of the search for its repository).
pub fn config_dir(ctx: &Context, config: &Path) -> PathBuf {
    ctx.cwd
        .join(config)
        .parent()
        .map_or_else(|| ctx.cwd.clone(), Path::to_path_buf)
}

impl CompileArgs {
    /// The repository facts with `--branch`/`--tag` applied: a tag build has no branch.
    pub fn repo(&self, dir: &Path) -> RepoInfo {
        let mut repo = RepoInfo::discover(dir);
        if let Some(tag) = &self.tag {
            repo.tag = Some(tag.clone());
            repo.branch = None;
        } else if let Some(branch) = &self.branch {
            repo.branch = Some(branch.clone());
            repo.tag = None;
        }
        repo
    }

    /// Compile options for the config at `config` (relative to the working directory).
    pub fn options(&self, ctx: &Context, config: &Path) -> Result<Options, Vec<Diagnostic>> {
        let mut values = PipelineValues::from_repo(&RepoInfo::discover(&config_dir(ctx, config)));
        if let Some(tag) = &self.tag {
            values.set_tag(tag);
        }
        if let Some(branch) = &self.branch {
            values.set_branch(branch);
        }
        let errors: Vec<Diagnostic> = self
            .pipeline_values
            .iter()
            .filter_map(|(k, v)| {
                values
                    .set(k, v)
                    .err()
                    .map(|e| Diagnostic::bare(format!("--pipeline-value {k}={v}: {e}")))
            })
            .collect();
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Options {
            pipeline_params: self.pipeline_params.clone(),
            pipeline_values: values,
            orb_files: self
                .orbs
                .iter()
                .map(|(k, v)| (k.clone(), ctx.cwd.join(v)))
                .collect::<Vec<(String, PathBuf)>>(),
            orb_dirs: process::user_orb_dir(&ctx.env).into_iter().collect(),
            all_jobs: false,
            lazy_orbs: false,
        })
    }
}

impl CompileArgs {
    /// The front end's options for the config `config` (`-c`), from these flags.
    pub fn front_options(
        &self,
        ctx: &Context,
        config: Option<PathBuf>,
        all_jobs: bool,
    ) -> crate::frontend::FrontOptions {
        crate::frontend::FrontOptions {
            config,
            cwd: ctx.cwd.clone(),
            env: ctx.env.clone(),
            branch: self.branch.clone(),
            tag: self.tag.clone(),
            pipeline_params: self.pipeline_params.clone(),
            pipeline_values: self.pipeline_values.clone(),
            orb_files: self
                .orbs
                .iter()
                .map(|(k, v)| (k.clone(), PathBuf::from(v)))
                .collect(),
            all_jobs,
            compiled_only: false,
        }
    }
}

/// Runs the front end; a config that does not get through is reported (every diagnostic,
/// with its source) and becomes exit 2.
pub(super) fn front_or_report(
    ctx: &Context,
    options: &crate::frontend::FrontOptions,
) -> Result<crate::frontend::Front, crate::exit::Outcome> {
    crate::frontend::compile(options).map_err(|failure| {
        super::output::stderr(&crate::diagnostic::render_human(
            &failure.sources,
            &failure.diagnostics,
            ctx.color,
        ));
        crate::exit::Outcome::Invalid
    })
}
