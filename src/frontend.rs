//! The front end every command that needs a typed config goes through, in one order:
//! find and load the file -> parse YAML (spans) -> process (2.1 -> 2.0, CircleCI's own
//! errors first) -> validate (what compiles but is still wrong) -> the typed [`Config`]. Git is
//! discovered once here and `--branch`/`--tag` applied once, for pipeline values, filters and
//! `CIRCLE_*` alike. Registry orbs come from one source order for every command (`--orb`, the
//! config's `orbs/` folder, the user cache, then the orb registry when the network allows).
//! Synchronous, Docker-free; prints nothing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::config::Config;
use crate::diagnostic::Diagnostic;
use crate::git::RepoInfo;
use crate::plan::BuildRef;
use crate::process::registry::{self, Registry};
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
    /// Ask the CircleCI orb registry (as `env` configures it: `LOCALCI_ORB_REGISTRY`,
    /// `LOCALCI_OFFLINE`) for registry orbs no local file provides. Off by default: a caller
    /// opts in to the network.
    pub orb_registry: bool,
}

/// A config that went through every stage.
pub struct Front {
    pub sources: Sources,
    pub path: PathBuf,
    /// The repository that holds the config, with `--branch`/`--tag` applied.
    pub repo: RepoInfo,
    /// The compiler's output for a 2.1 config (its orbs, its 2.0 YAML).
    pub processed: Option<Processed>,
    /// The 2.0-shaped config the typed model was read from; a null node with
    /// [`FrontOptions::compiled_only`] (the compiled YAML is then `processed.config`).
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
    let (path, file, node) = read(options, sources).map_err(|d| vec![d])?;
    let repo = repository(options, &path);
    let mut warnings = Vec::new();
    // The compiler reports what it cannot compile in CircleCI's own words; the validator then
    // catches what compiles but is still wrong (a requires cycle, a bad resource class ...).
    // The validator runs first all the same, before the compiled config exists: the two never
    // hold their copies of a large config at once (issue 9).
    let errors: Vec<Diagnostic> =
        crate::validate::validate(sources, file, &node, &crate::validate::Options::default())
            .into_iter()
            .filter(Diagnostic::is_error)
            .collect();
    let processed = if options.compiled_only || crate::config::is_version_2_1(&node) {
        let compile = compile_options(options, &repo)?;
        let processed = process::process(sources, file, &node, &compile)?;
        warnings.extend(processed.warnings.iter().cloned());
        Some(processed)
    } else {
        None
    };
    if !errors.is_empty() {
        return Err(errors);
    }
    if options.compiled_only {
        // `process` prints `processed.config`; a second copy would double the memory that a
        // config of tens of thousands of jobs takes (issue 9).
        let empty = Node::null(node.span);
        return Ok((path, repo, processed, empty, Config::default(), warnings));
    }
    let compiled = processed.as_ref().map_or(&node, |p| &p.config).clone();
    let config = crate::config::parse(&compiled)?;
    Ok((path, repo, processed, compiled, config, warnings))
}

/// The compiler's options for the config at `config`: the same orb sources (`--orb`, the
/// config's `orbs/` folder, the user cache, the registry) and pipeline values every command
/// uses.
pub fn process_options(
    options: &FrontOptions,
    config: &Path,
) -> Result<process::Options, Vec<Diagnostic>> {
    compile_options(options, &repository(options, config))
}

/// `localci validate`: every problem of the config, warnings included, with the sources they
/// point into. Registry orbs come from where `process` finds them; one that has no source is
/// one warning, and everything else is checked.
pub fn check(
    options: &FrontOptions,
    validate: &crate::validate::Options,
) -> (Sources, Vec<Diagnostic>) {
    let mut sources = Sources::new();
    let diagnostics = checked(options, validate, &mut sources);
    (sources, diagnostics)
}

fn checked(
    options: &FrontOptions,
    validate: &crate::validate::Options,
    sources: &mut Sources,
) -> Vec<Diagnostic> {
    let (path, file, node) = match read(options, sources) {
        Ok(read) => read,
        Err(d) => return vec![d],
    };
    let compile = match process_options(options, &path) {
        Ok(compile) => compile,
        Err(diags) => return diags,
    };
    let mut diags = crate::validate::validate_compiled(sources, file, &node, validate, &compile);
    crate::diagnostic::sort(&mut diags);
    diags
}

/// Why `localci orb vendor` saved nothing.
pub enum VendorFailure {
    /// The config does not compile (an orb without a source anywhere is one of its errors).
    Invalid(Failure),
    /// An orb could not be written under the config's `orbs/` folder.
    Write {
        sources: Sources,
        error: process::VendorError,
    },
}

/// `localci orb vendor`: saves every registry orb the config uses (from `--orb` files, the
/// user cache or the registry) under the config's `orbs/` folder.
pub fn vendor(options: &FrontOptions) -> Result<Vec<process::Vendored>, VendorFailure> {
    let mut sources = Sources::new();
    let failed = |sources, diagnostics| {
        VendorFailure::Invalid(Failure {
            sources,
            diagnostics,
        })
    };
    let (path, file, node) = match read(options, &mut sources) {
        Ok(read) => read,
        Err(d) => return Err(failed(sources, vec![d])),
    };
    let compile = match process_options(options, &path) {
        Ok(compile) => compile,
        Err(diags) => return Err(failed(sources, diags)),
    };
    match process::vendor(&mut sources, file, &node, &compile) {
        Ok(saved) => Ok(saved),
        Err(process::VendorError::Invalid(diags)) => Err(failed(sources, diags)),
        Err(error) => Err(VendorFailure::Write { sources, error }),
    }
}

/// Finds, loads and parses the config.
fn read(
    options: &FrontOptions,
    sources: &mut Sources,
) -> Result<(PathBuf, crate::source::FileId, Node), Diagnostic> {
    let path = crate::load::find_config(options.config.as_deref(), &options.cwd)?;
    let file = crate::load::load(sources, &path)?;
    let node = crate::yaml::parse(sources.get(file), file)?;
    Ok((path, file, node))
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
    let cache = process::user_orb_dir(&options.env);
    let registry = match (&cache, options.orb_registry) {
        (Some(dir), true) => Registry::from_env(&options.env, dir.clone())
            .map_err(|e| {
                vec![Diagnostic::bare(e.to_string()).with_hint(format!(
                    "set {} to the GraphQL endpoint, e.g. {}, or unset it",
                    registry::URL_VAR,
                    registry::DEFAULT_URL
                ))]
            })?
            .map(Arc::new),
        // Without a cache folder (no HOME) a fetched orb has nowhere to go.
        _ => None,
    };
    Ok(process::Options {
        pipeline_params: options.pipeline_params.clone(),
        pipeline_values: values,
        orb_files: options
            .orb_files
            .iter()
            .map(|(k, v)| (k.clone(), options.cwd.join(v)))
            .collect(),
        orb_dirs: cache.into_iter().collect(),
        all_jobs: options.all_jobs,
        // A run needs only the orbs its jobs use: a missing orb is an error for those alone.
        lazy_orbs: options.all_jobs,
        registry,
    })
}
