//! `process`: the offline 2.1 -> 2.0 compiler, a re-implementation of what
//! `circleci config process` does on CircleCI's servers.
//!
//! Stages, in CircleCI's documented order: pipeline parameters are bound and type-checked
//! (`pipeline_params`), the `orbs:` stanza is substituted and every orb is loaded (`orbs`,
//! `library`), then workflows are compiled (`workflows`): matrices expanded, jobs invoked
//! (`jobs`) with their executors (`executors`) and steps (`steps`), where commands expand,
//! `when`/`unless` are decided (`logic`) and `<< >>` are substituted (`template`, `subst`,
//! `expr`). The output is a 2.0-shaped [`Node`]: no `commands`, `executors`, `orbs` or
//! `parameters`, every job complete, workflows naming concrete jobs.
//!
//! Only `orbs` reads files; nothing here prints.

pub(crate) mod binding;
pub(crate) mod budget;
mod compiler;
mod context;
mod executors;
pub(crate) mod expr;
pub(crate) mod job_groups;
pub(crate) mod job_names;
mod jobs;
pub(crate) mod language;
mod library;
pub(crate) mod logic;
pub(crate) mod matrix;
pub mod orb_pack;
mod orbs;
mod output;
mod params;
mod pipeline;
mod pipeline_params;
pub mod registry;
pub(crate) mod steps;
pub(crate) mod subst;
pub(crate) mod template;
mod value;
mod workflows;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::diagnostic::{self, Diagnostic};
use crate::source::{FileId, Sources, Span};
use crate::yaml::{Entry, Kind, Map, Node};

use compiler::Compiler;
use context::Ctx;
use jobs::Invocation;
use library::{ElementKind, ROOT};
use orbs::{Loader, OrbSources};
use output::{entry, map_node};
use subst::{Scope, subst_str};
use workflows::JobTable;

pub use compiler::{Unavailable, UnavailableKind};
pub use library::OrbResolution;
pub(crate) use orbs::OrbRef;
pub use pipeline::{PipelineValue, PipelineValues};

/// What a compile may use besides the config itself.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// `--pipeline-param key=value`, as text; typed by the declaration.
    pub pipeline_params: Vec<(String, String)>,
    pub pipeline_values: PipelineValues,
    /// `--orb ns/name@version=path.yml`.
    pub orb_files: Vec<(String, PathBuf)>,
    /// Extra folders of `<ns>/<name>@<version>.yml` files, searched after the config's own
    /// `orbs/` folder (typically [`user_orb_dir`]).
    pub orb_dirs: Vec<PathBuf>,
    /// Also compile the jobs that no workflow invokes (under their own names), as long as they
    /// need no arguments. CircleCI drops them; `localci execute <job>` wants to run them.
    pub all_jobs: bool,
    /// Lazy orbs: a registry orb without a local source is an error only for the jobs and
    /// workflows that use it. They are left out of the output and listed in
    /// [`Processed::unavailable`] with the reason; the orb itself is one warning.
    pub lazy_orbs: bool,
    /// The orb registry, asked for registry orbs no file provides (and caching what it gives);
    /// `None` compiles offline.
    pub registry: Option<std::sync::Arc<registry::Registry>>,
}

/// The compiled config.
#[derive(Clone, Debug)]
pub struct Processed {
    /// 2.0-shaped: `version`, `jobs`, `workflows`.
    pub config: Node,
    pub warnings: Vec<Diagnostic>,
    /// How each registry orb reference was resolved, in import order.
    pub orbs: Vec<OrbResolution>,
    /// With [`Options::lazy_orbs`]: the jobs and workflows left out because they need an orb
    /// that has no local source.
    pub unavailable: Vec<Unavailable>,
}

/// The user's orb cache: `$XDG_CACHE_HOME/localci/orbs`, else `$HOME/.cache/localci/orbs`.
pub fn user_orb_dir(env: &BTreeMap<String, String>) -> Option<PathBuf> {
    let base = match env.get("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        Some(x) => PathBuf::from(x),
        None => PathBuf::from(env.get("HOME").filter(|v| !v.is_empty())?).join(".cache"),
    };
    Some(base.join("localci").join("orbs"))
}

/// Compiles `config` (parsed from `file`). Orb files that are read are added to `sources`.
/// On failure, every error (and warning) found, sorted.
pub fn process(
    sources: &mut Sources,
    file: FileId,
    config: &Node,
    options: &Options,
) -> Result<Processed, Vec<Diagnostic>> {
    process_reporting_orbs(sources, file, config, options).0
}

/// What a compile learned about registry orbs, whether or not the config compiled.
#[derive(Clone, Debug, Default)]
pub struct OrbReport {
    /// How each registry orb reference was resolved, in import order.
    pub resolved: Vec<OrbResolution>,
    /// The registry answered without an orb it was asked for (one warning each, with the
    /// reason); also among the compile's warnings.
    pub fetch_warnings: Vec<Diagnostic>,
}

/// [`process`], and what it learned about registry orbs even when the config does not compile
/// (`validate` reports both).
pub fn process_reporting_orbs(
    sources: &mut Sources,
    file: FileId,
    config: &Node,
    options: &Options,
) -> (Result<Processed, Vec<Diagnostic>>, OrbReport) {
    let mut ctx = Ctx::default();
    let expanded = job_groups::expand(config);
    let config = expanded.as_ref().unwrap_or(config);
    let outcome = match version(&mut ctx, config) {
        Some(Version::V20) => Some(pass_through(&mut ctx, config)),
        Some(Version::V21) => compile(&mut ctx, sources, file, config, options),
        None => None,
    };
    let report = outcome
        .as_ref()
        .map(|o| OrbReport {
            resolved: o.orbs.clone(),
            fetch_warnings: o.fetch_warnings.clone(),
        })
        .unwrap_or_default();
    let unavailable = outcome
        .as_ref()
        .map(|o| o.unavailable.clone())
        .unwrap_or_default();
    let Ctx {
        mut errors,
        mut warnings,
        ..
    } = ctx;
    diagnostic::sort(&mut warnings);
    let result = match outcome {
        Some(Output { config, orbs, .. }) if errors.is_empty() => Ok(Processed {
            config,
            warnings,
            orbs,
            unavailable,
        }),
        _ => {
            errors.append(&mut warnings);
            diagnostic::sort(&mut errors);
            Err(errors)
        }
    };
    (result, report)
}

enum Version {
    V20,
    V21,
}

fn version(ctx: &mut Ctx, config: &Node) -> Option<Version> {
    if config.as_map().is_none() {
        ctx.error(Diagnostic::error(
            config.span,
            "a config is a YAML map starting with `version: 2.1`",
        ));
        return None;
    }
    let Some(v) = config.get("version") else {
        ctx.error(
            Diagnostic::error(config.span.head(), "the config has no `version`")
                .with_hint("start it with `version: 2.1`"),
        );
        return None;
    };
    match v.scalar_text().as_deref() {
        Some("2" | "2.0") => Some(Version::V20),
        Some("2.1") => Some(Version::V21),
        _ => {
            ctx.error(
                Diagnostic::error(v.span, "`version` must be 2, 2.0 or 2.1")
                    .with_hint("use `version: 2.1` for orbs, commands, executors and parameters"),
            );
            None
        }
    }
}

struct Output {
    config: Node,
    orbs: Vec<OrbResolution>,
    fetch_warnings: Vec<Diagnostic>,
    unavailable: Vec<Unavailable>,
}

/// A 2.0 config is not template-processed: its jobs and workflows are kept as written.
fn pass_through(ctx: &mut Ctx, config: &Node) -> Output {
    for key in ["orbs", "commands", "executors", "parameters"] {
        if let Some(e) = config.as_map().and_then(|m| m.entry(key)) {
            ctx.error(
                Diagnostic::error(e.key_span, format!("`{key}` needs `version: 2.1`"))
                    .with_hint("change the first line to `version: 2.1`"),
            );
        }
    }
    let span = config.span;
    let jobs = config
        .get("jobs")
        .cloned()
        .unwrap_or_else(|| map_node(span, Vec::new()));
    let mut workflows = Map::default();
    if let Some(m) = config.get("workflows").and_then(Node::as_map) {
        for e in m.entries.iter().filter(|e| e.key != "version") {
            workflows.entries.push(e.clone());
        }
    }
    let has_build = jobs.get("build").is_some();
    Output {
        config: document(span, jobs, workflows, has_build),
        orbs: Vec::new(),
        fetch_warnings: Vec::new(),
        unavailable: Vec::new(),
    }
}

fn compile(
    ctx: &mut Ctx,
    sources: &mut Sources,
    file: FileId,
    config: &Node,
    options: &Options,
) -> Option<Output> {
    let pipeline_params = pipeline_params::resolve(ctx, config, &options.pipeline_params).ok()?;
    let imports = orbs_stanza(ctx, config, &pipeline_params, &options.pipeline_values);
    let mut dirs = vec![config_dir(sources.get(file).path()).join("orbs")];
    dirs.extend(options.orb_dirs.iter().cloned());
    let searched = dirs.clone();
    let orb_sources = OrbSources {
        files: &options.orb_files,
        dirs,
        registry: options.registry.as_deref(),
    };
    let mut loader = Loader::new(sources, ctx, orb_sources);
    loader.namespace(None, orbs::Body::Config(config), imports.as_ref());
    let lib = std::mem::take(&mut loader.lib);
    let fetch_warnings = std::mem::take(&mut loader.fetch_warnings);
    let mut compiler = Compiler {
        ctx: std::mem::take(ctx),
        lib,
        pipeline: &options.pipeline_values,
        pipeline_params,
        calls: Vec::new(),
        budget: Default::default(),
        lazy: options.lazy_orbs,
        unavailable: Vec::new(),
        defined: Vec::new(),
    };
    let (mut jobs, workflows) = compile_workflows(&mut compiler, config);
    if options.all_jobs {
        compile_unreferenced_jobs(&mut compiler, config, &mut jobs);
    }
    compiler.lib.scan_usages(config);
    compiler
        .lib
        .report_missing(&mut compiler.ctx, &searched, compiler.lazy);
    *ctx = std::mem::take(&mut compiler.ctx);
    let has_build = jobs.contains_key("build");
    let span = config.span;
    let jobs = Node::new(span, Kind::Map(jobs));
    Some(Output {
        config: document(span, jobs, workflows, has_build),
        orbs: compiler.lib.resolved,
        fetch_warnings,
        unavailable: compiler.unavailable,
    })
}

fn config_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// The `orbs:` map with pipeline parameters substituted into the references (an orb version
/// may be a pipeline parameter). Inline orbs are left alone: they cannot see the pipeline.
fn orbs_stanza(
    ctx: &mut Ctx,
    config: &Node,
    params: &[(String, Node)],
    pipeline: &PipelineValues,
) -> Option<Node> {
    let orbs = config.get("orbs")?;
    let Some(map) = orbs.as_map() else {
        return Some(orbs.clone());
    };
    let scope = Scope {
        params: None,
        pipeline_params: Some(params),
        pipeline,
        matrix: None,
    };
    let mut out = Map::default();
    for e in &map.entries {
        let value = if e.value.as_str().is_some() {
            subst_str(ctx, &e.value, &scope).unwrap_or_else(|_| e.value.clone())
        } else {
            e.value.clone()
        };
        out.entries.push(Entry {
            key: e.key.clone(),
            key_span: e.key_span,
            value,
        });
    }
    Some(Node::new(orbs.span, Kind::Map(out)))
}

fn compile_workflows(c: &mut Compiler, config: &Node) -> (Map, Map) {
    let mut table = JobTable::default();
    let mut workflows = Map::default();
    let declared: Vec<Entry> = config
        .get("workflows")
        .and_then(Node::as_map)
        .map(|m| {
            m.entries
                .iter()
                .filter(|e| e.key != "version")
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    if declared.is_empty() {
        default_jobs(c, config, &mut table);
        return (table.jobs, workflows);
    }
    for e in &declared {
        let compiled = c.guard(UnavailableKind::Workflow, &e.key, e.key_span, |c| {
            c.workflow(&e.key, e.key_span, &e.value, &mut table)
        });
        if let Ok(Some(wf)) = compiled {
            workflows.entries.push(Entry {
                key: e.key.clone(),
                key_span: e.key_span,
                value: wf,
            });
        }
    }
    (table.jobs, workflows)
}

/// Without workflows CircleCI runs the job named `build`. Without one either, every job that
/// needs no arguments is compiled, so `localci execute <job>` can still run it.
fn default_jobs(c: &mut Compiler, config: &Node, table: &mut JobTable) {
    let names: Vec<(String, Span)> = match config.get("jobs").and_then(Node::as_map) {
        Some(m) => m
            .entries
            .iter()
            .map(|e| (e.key.clone(), e.key_span))
            .collect(),
        None => Vec::new(),
    };
    let build_only = names.iter().any(|(n, _)| n == "build");
    if !build_only && !names.is_empty() {
        c.ctx.warn(
            Diagnostic::warning(config.span.head(), "the config has no workflows and no job named build, so CircleCI would run nothing")
                .with_hint("jobs without required parameters are compiled anyway; add a workflow to run them on CircleCI"),
        );
    }
    for (name, at) in names {
        if build_only && name != "build" {
            continue;
        }
        if !build_only && needs_arguments(c, &name, at) {
            continue;
        }
        let inv = Invocation {
            job: &name,
            at,
            args: Vec::new(),
            pre: Vec::new(),
            post: Vec::new(),
        };
        if let Ok(job) = c.guard(UnavailableKind::Job, &name, at, |c| c.job(&inv)) {
            table
                .jobs
                .insert(name.clone(), at, Node::new(at, Kind::Map(job)));
        }
    }
}

/// Adds every job of `jobs:` that is not compiled yet and needs no arguments, under its own name.
fn compile_unreferenced_jobs(c: &mut Compiler, config: &Node, jobs: &mut Map) {
    let Some(defined) = config.get("jobs").and_then(Node::as_map) else {
        return;
    };
    for e in &defined.entries {
        if jobs.contains_key(&e.key) || needs_arguments(c, &e.key, e.key_span) {
            continue;
        }
        let inv = Invocation {
            job: &e.key,
            at: e.key_span,
            args: Vec::new(),
            pre: Vec::new(),
            post: Vec::new(),
        };
        if let Ok(job) = c.guard(UnavailableKind::Job, &e.key, e.key_span, |c| c.job(&inv)) {
            jobs.insert(
                e.key.clone(),
                e.key_span,
                Node::new(e.key_span, Kind::Map(job)),
            );
        }
    }
}

fn needs_arguments(c: &mut Compiler, name: &str, at: Span) -> bool {
    let Ok((_, element)) = c.find(ROOT, ElementKind::Job, name, at) else {
        return true;
    };
    let mut scratch = Ctx::default();
    match params::declared(&mut scratch, element.def.get("parameters"), name) {
        Ok(decls) => decls.list.iter().any(|d| d.default.is_none()),
        Err(_) => false,
    }
}

/// `version: 2`, `jobs`, and `workflows` (with `version: 2`, and CircleCI's default
/// `workflow: {jobs: [build]}` when there are none and a `build` job exists).
fn document(span: Span, jobs: Node, mut workflows: Map, has_build: bool) -> Node {
    let two = || Node::new(span, Kind::Int(2));
    if workflows.is_empty() && has_build {
        let list = Node::new(span, Kind::Seq(vec![Node::string(span, "build")]));
        workflows.entries.push(entry(
            "workflow",
            span,
            map_node(span, vec![entry("jobs", span, list)]),
        ));
    }
    let mut top = vec![entry("version", span, two()), entry("jobs", span, jobs)];
    if !workflows.is_empty() {
        let mut wf = vec![entry("version", span, two())];
        wf.extend(workflows.entries);
        top.push(entry("workflows", span, map_node(span, wf)));
    }
    map_node(span, top)
}

#[cfg(test)]
mod lazy_orb_tests {
    use super::*;
    use crate::source::Source;

    const CONFIG: &str = "version: 2.1
orbs:
  heroku: circleci/heroku@1.0.1
jobs:
  build:
    docker: [{image: cimg/base:stable}]
    steps: [checkout]
  deploy:
    docker: [{image: cimg/base:stable}]
    steps: [heroku/deploy-via-git]
workflows:
  main:
    jobs: [build, deploy]
";

    fn compile(lazy_orbs: bool) -> Result<Processed, Vec<Diagnostic>> {
        let mut sources = Sources::new();
        let file = sources.add(Source::new("/nonexistent/config.yml", CONFIG.to_string()));
        let node = crate::yaml::parse(sources.get(file), file).expect("valid YAML");
        let options = Options {
            lazy_orbs,
            ..Options::default()
        };
        process(&mut sources, file, &node, &options)
    }

    /// See: issue 8. `execute build` must not fail for an orb only `deploy` uses.
    #[test]
    fn a_missing_orb_sets_aside_only_what_uses_it() {
        let processed = compile(true).expect("lazy orbs compile");
        let jobs = processed.config.get("jobs").expect("jobs");
        assert!(jobs.get("build").is_some());
        assert!(jobs.get("deploy").is_none());
        let names: Vec<(&str, UnavailableKind)> = processed
            .unavailable
            .iter()
            .map(|u| (u.name.as_str(), u.kind))
            .collect();
        assert_eq!(
            names,
            vec![
                ("deploy", UnavailableKind::Job),
                ("main", UnavailableKind::Workflow)
            ]
        );
        assert!(
            processed.unavailable[0]
                .why
                .message
                .contains("circleci/heroku@1.0.1")
        );
        assert_eq!(processed.warnings.len(), 1, "{:?}", processed.warnings);
    }

    #[test]
    fn without_lazy_orbs_the_compile_fails() {
        let errors = compile(false).expect_err("the orb is missing");
        assert!(errors[0].message.contains("cannot be resolved offline"));
    }
}

/// One orb file `vendor` saved next to the config.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vendored {
    /// The exact reference, `circleci/node@5.2.0`.
    pub orb: String,
    pub from: PathBuf,
    pub to: PathBuf,
}

/// Saves every registry orb the config imports (nested imports too) under the config's own
/// `orbs/` folder as `<ns>/<name>@<version>.yml`, from wherever `options` finds it (`--orb`
/// files, the user cache, the registry), so the project compiles offline from then on. Orbs already there
/// are left alone. The config must compile: an orb with no source anywhere is its error.
pub fn vendor(
    sources: &mut Sources,
    file: FileId,
    config: &Node,
    options: &Options,
) -> Result<Vec<Vendored>, VendorError> {
    let options = Options {
        lazy_orbs: false,
        ..options.clone()
    };
    let processed = process(sources, file, config, &options).map_err(VendorError::Invalid)?;
    let root = config_dir(sources.get(file).path());
    let target = root.join("orbs");
    let mut saved = Vec::new();
    for orb in processed.orbs {
        if orb.path.starts_with(&target) || saved.iter().any(|v: &Vendored| v.orb == orb.resolved) {
            continue;
        }
        let to = target.join(library::file_name(&orb.resolved));
        copy_orb(&root, &orb.path, &to)?;
        saved.push(Vendored {
            orb: orb.resolved,
            from: orb.path,
            to,
        });
    }
    Ok(saved)
}

/// Why [`vendor`] saved nothing more.
#[derive(Debug, thiserror::Error)]
pub enum VendorError {
    /// The config does not compile (an orb without a source is one of these errors).
    #[error("the config does not compile")]
    Invalid(Vec<Diagnostic>),
    #[error("cannot save {} as {}", from.display(), to.display())]
    Write {
        from: PathBuf,
        to: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Copies an orb file under the config's folder `root` (as `to`, below it): created without
/// following a symlink the repository may have planted on the way, and written whole or not at
/// all.
fn copy_orb(root: &Path, from: &Path, to: &Path) -> Result<(), VendorError> {
    let failed = |source| VendorError::Write {
        from: from.to_path_buf(),
        to: to.to_path_buf(),
        source,
    };
    let rel = to.strip_prefix(root).unwrap_or(to);
    let (Some(parent), Some(name)) = (rel.parent(), rel.file_name()) else {
        return Err(failed(std::io::Error::other("not a file path")));
    };
    let text = std::fs::read(from).map_err(failed)?;
    crate::store::safe_path::SafeDir::open_anchor(root)
        .and_then(|dir| dir.create_dirs(parent))
        .and_then(|dir| registry::write_atomic(&dir, name, &text))
        .map_err(failed)
}
