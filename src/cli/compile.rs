//! The flags that shape a 2.1 compile, shared by every command that reads a config (`validate`,
//! `process`, `execute`, `list`, `plan`, `orb vendor`): pipeline parameters and values, branch
//! or tag, local sources for registry orbs, and whether the orb registry may be asked.

use std::path::PathBuf;

use super::Context;

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

    /// Never ask the CircleCI orb registry for an orb that has no local source (also:
    /// LOCALCI_OFFLINE=1).
    #[arg(long)]
    pub offline: bool,
}

fn key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => Err(format!("expected KEY=VALUE, got {s:?}")),
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
            orb_registry: !self.offline,
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
