//! The front end every command that needs a typed config goes through, in one order:
//! find and load the file -> parse YAML (spans) -> process (2.1 -> 2.0, CircleCI's own
//! errors first) -> validate (what compiles but is still wrong) -> the typed [`Config`]. Git is
//! discovered once here and `--branch`/`--tag` applied once, for pipeline values, filters and
//! `CIRCLE_*` alike. Synchronous, Docker-free; prints nothing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::config::Config;
use crate::diagnostic::Diagnostic;
use crate::git::RepoInfo;
use crate::plan::BuildRef;
use crate::process::{self, PipelineValues, Processed};
use crate::source::Sources;
use crate::yaml::Node;

/// What the command line says about the config and the build (not clap's arguments).
#[derive(Clone, Debug, Default)]
pub struct FrontOptions {
    /// `-c FILE`; the repository's `.circleci/config.yml` when `None`.
    pub config: Option<PathBuf>,
    /// The directory localci runs in; relative paths are relative to it.
    pub cwd: PathBuf,
    pub env: BTreeMap<String, String>,
    /// `--branch`: a build of this branch (clears a tag).
    pub branch: Option<String>,
    /// `--tag`: a build of this tag (a tag build has no branch).
    pub tag: Option<String>,
    pub pipeline_params: Vec<(String, String)>,
    pub pipeline_values: Vec<(String, String)>,
    /// `--orb ns/name@version=FILE`.
    pub orb_files: Vec<(String, PathBuf)>,
    /// Also compile jobs no workflow invokes (what `execute <job>` may run).
    pub all_jobs: bool,
    /// Stop after the compiler (`localci process`): 2.0 configs go through it too, and no
    /// typed model is built ([`Front::config`] is empty).
    pub compiled_only: bool,
}

/// A config that went through every stage.
pub struct Front {
    pub sources: Sources,
    pub path: PathBuf,
    /// The repository that holds the config, with `--branch`/`--tag` applied.
    pub repo: RepoInfo,
    /// The compiler's output for a 2.1 config (its orbs, its 2.0 YAML).
    pub processed: Option<Processed>,
    /// The 2.0-shaped config the typed model was read from.
    pub node: Node,
    pub config: Config,
    /// Warnings of every stage, to show.
    pub warnings: Vec<Diagnostic>,
}

impl Front {
    /// Why `name` (a job, or a workflow) was left out of the compiled config: it needs a
    /// registry orb that cannot be resolved offline.
    pub fn unavailable(&self, name: &str, workflow: bool) -> Option<&Diagnostic> {
        use crate::process::UnavailableKind;
        let kind = if workflow {
            UnavailableKind::Workflow
        } else {
            UnavailableKind::Job
        };
        self.processed
            .as_ref()?
            .unavailable
            .iter()
            .find(|u| u.name == name && u.kind == kind)
            .map(|u| &u.why)
    }

    /// The build the config runs as: the branch or the tag.
    pub fn build(&self) -> BuildRef {
        BuildRef {
            branch: self.repo.branch.clone(),
            tag: self.repo.tag.clone(),
        }
    }
}

/// Diagnostics that stop the front end, with the sources they point into.
pub struct Failure {
    pub sources: Sources,
    pub diagnostics: Vec<Diagnostic>,
}

/// Runs every stage; all problems of the stage that failed are reported, not just the first.
pub fn compile(options: &FrontOptions) -> Result<Front, Failure> {
    let mut sources = Sources::new();
    match stages(options, &mut sources) {
        Ok((path, repo, processed, node, config, warnings)) => Ok(Front {
            sources,
            path,
            repo,
            processed,
            node,
            config,
            warnings,
        }),
        Err(diagnostics) => Err(Failure {
            sources,
            diagnostics,
        }),
    }
}

type Stages = (
    PathBuf,
    RepoInfo,
    Option<Processed>,
    Node,
    Config,
    Vec<Diagnostic>,
);

fn stages(options: &FrontOptions, sources: &mut Sources) -> Result<Stages, Vec<Diagnostic>> {
    let path =
        crate::load::find_config(options.config.as_deref(), &options.cwd).map_err(|d| vec![d])?;
    let file = crate::load::load(sources, &path).map_err(|d| vec![d])?;
    let node = crate::yaml::parse(sources.get(file), file).map_err(|d| vec![d])?;
    let repo = repository(options, &path);
    let mut warnings = Vec::new();
    let processed = if options.compiled_only || crate::config::is_version_2_1(&node) {
        let compile = compile_options(options, &repo)?;
        let processed = process::process(sources, file, &node, &compile)?;
        warnings.extend(processed.warnings.iter().cloned());
        Some(processed)
    } else {
        None
    };
    // The compiler reports what it cannot compile in CircleCI's own words; the validator then
    // catches what compiles but is still wrong (a requires cycle, a bad resource class ...).
    let errors: Vec<Diagnostic> =
        crate::validate::validate(sources, file, &node, &crate::validate::Options::default())
            .into_iter()
            .filter(Diagnostic::is_error)
            .collect();
    if !errors.is_empty() {
        return Err(errors);
    }
    let compiled = processed.as_ref().map_or(&node, |p| &p.config).clone();
    let config = if options.compiled_only {
        crate::config::Config::default()
    } else {
        crate::config::parse(&compiled)?
    };
    Ok((path, repo, processed, compiled, config, warnings))
}

/// The repository that holds the config (wherever localci runs from), with `--branch` or
/// `--tag` applied: a tag build has no branch, a branch build no tag.
fn repository(options: &FrontOptions, config: &Path) -> RepoInfo {
    let dir = options
        .cwd
        .join(config)
        .parent()
        .map_or_else(|| options.cwd.clone(), Path::to_path_buf);
    let mut repo = RepoInfo::discover(&dir);
    if let Some(tag) = &options.tag {
        repo.tag = Some(tag.clone());
        repo.branch = None;
    } else if let Some(branch) = &options.branch {
        repo.branch = Some(branch.clone());
        repo.tag = None;
    }
    repo
}

/// The compiler's options: pipeline values from the repository (already branch/tag-adjusted),
/// then `--pipeline-value` overrides.
fn compile_options(
    options: &FrontOptions,
    repo: &RepoInfo,
) -> Result<process::Options, Vec<Diagnostic>> {
    let mut values = PipelineValues::from_repo(repo);
    if let Some(tag) = &repo.tag {
        values.set_tag(tag);
    } else if let Some(branch) = &repo.branch {
        values.set_branch(branch);
    }
    let errors: Vec<Diagnostic> = options
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
    Ok(process::Options {
        pipeline_params: options.pipeline_params.clone(),
        pipeline_values: values,
        orb_files: options
            .orb_files
            .iter()
            .map(|(k, v)| (k.clone(), options.cwd.join(v)))
            .collect(),
        orb_dirs: process::user_orb_dir(&options.env).into_iter().collect(),
        all_jobs: options.all_jobs,
        // A run needs only the orbs its jobs use: a missing orb is an error for those alone.
        lazy_orbs: options.all_jobs,
    })
}
