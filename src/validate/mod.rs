//! Validation of a parsed config: the JSON Schema in `schema/` (structure, types, allowed keys
//! and values) plus the semantic checks a schema cannot express (names that must resolve,
//! lexical parameter scopes, arguments, `requires` graphs, version rules, resource classes).
//!
//! [`validate`] is pure: no I/O, no Docker, no network; what depends on a registry orb is one
//! warning per orb. [`validate_compiled`] adds what the compiler finds (with spans) to a config
//! that passes every check here, so `validate` and `process` agree; the compiler reads orb files
//! and, when the caller's options name one, asks the orb registry (`process::registry`).

mod arguments;
mod ctx;
mod cycles;
mod definitions;
mod entries;
mod executors;
mod logic;
mod model;
mod orbs;
mod params;
mod recursion;
mod references;
mod resolve;
mod resource_class;
mod schema;
mod schema_keys;
mod schema_text;
mod schema_words;
mod steps;
use crate::suggest;
mod template;
mod version;
mod workflows;

use crate::diagnostic::{Diagnostic, Severity};
use crate::source::{FileId, Sources};
use crate::yaml::Node;

use ctx::Ctx;
use model::Model;
use version::Version;

/// Knobs of one validation run.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Warnings become errors.
    pub strict: bool,
    /// Registry orb references (as written, `circleci/node@5.2`) that have a local source:
    /// the compiler checks what uses them, so they get no "cannot be fetched" warning.
    pub local_orbs: Vec<String>,
}

/// [`validate`], then, when that finds no error in a 2.1 config, the errors of the compiler
/// run with `compile` (lazily: a registry orb without a local source stays one warning). A
/// rule that only the compiler knows (an expansion that outgrows its budget, say) is thus
/// reported by `validate` exactly as `process` reports it.
pub fn validate_compiled(
    sources: &mut Sources,
    file: FileId,
    node: &Node,
    options: &Options,
    compile: &crate::process::Options,
) -> Vec<Diagnostic> {
    let compile = crate::process::Options {
        lazy_orbs: true,
        ..compile.clone()
    };
    let (compiled, orbs) = crate::process::process_reporting_orbs(sources, file, node, &compile);
    // Only the compiler's errors are needed: the compiled config goes before the checks below
    // build their own copies (a config of tens of thousands of jobs, issue 9).
    let compiled = compiled.err();
    let mut options = options.clone();
    options
        .local_orbs
        .extend(orbs.resolved.iter().map(|o| o.reference.clone()));
    let mut out = validate(sources, file, node, &options);
    // Why the registry did not give an orb: next to the orb's one "cannot be fetched" warning.
    out.extend(orbs.fetch_warnings.into_iter().map(|mut d| {
        if options.strict {
            d.severity = Severity::Error;
        }
        d
    }));
    // Once the checks here pass, what the compiler finds: its limits (expansion budget, matrix
    // size, nesting depth), and any rule only it knows. Before that, its findings would repeat
    // the errors above in other words.
    if out.iter().any(Diagnostic::is_error) || Version::of(node) != Version::V21 {
        return out;
    }
    if let Some(found) = compiled {
        out.extend(found.into_iter().filter(Diagnostic::is_error));
    }
    out
}

/// Every problem in the config, unsorted.
pub fn validate(
    sources: &Sources,
    file: FileId,
    node: &Node,
    options: &Options,
) -> Vec<Diagnostic> {
    if node.is_null() {
        return vec![
            Diagnostic::error(node.span, "the config is empty")
                .with_hint("start it with `version: 2.1`"),
        ];
    }
    let mut out = schema::check(node);
    if node.as_map().is_none() {
        return out;
    }
    // Workflows are checked as the compiler reads them: with their job groups expanded.
    let expanded = crate::process::job_groups::expand(node);
    let node = expanded.as_ref().unwrap_or(node);
    let model = Model::build(node);
    let version = Version::of(node);
    let mut cx = Ctx {
        model: &model,
        text: sources.get(file).text(),
        file,
        v21: version != Version::V20,
        out: Vec::new(),
    };
    suggest::reset_budget();
    semantics(&mut cx, version, options);
    out.append(&mut cx.out);
    if options.strict {
        for d in &mut out {
            d.severity = Severity::Error;
        }
    }
    out
}

fn semantics(cx: &mut Ctx<'_>, version: Version, options: &Options) {
    version::check(cx, version);
    params::check_pipeline(cx);
    orbs::check_references(cx);
    definitions::check_all(cx);
    recursion::check(cx);
    workflows::check_all(cx);
    references::check_all(cx);
    // Last: only now is it known which registry orbs something refers into.
    orbs::offline_warnings(cx, options);
}
