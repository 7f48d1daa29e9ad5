//! Materialising one job invocation: bind the job's arguments, substitute its body, resolve
//! and merge its executor, expand its steps and wrap them with `pre-steps`/`post-steps`.

use crate::diagnostic::Diagnostic;
use crate::source::Span;
use crate::yaml::{Kind, Map, Node};

use super::compiler::Compiler;
use super::context::Res;
use super::executors::merge;
use super::library::{ElementKind, NsId, ROOT};
use super::output::finish_job;
use super::params::{Args, Callee, ParamType, declared};
use super::steps::stray_steps;
use super::template::{self, Piece, RefKind};

/// Keys of a job definition that do not belong in the compiled job.
/// Keys of a job or executor definition that describe it rather than belong to what it makes.
const DEFINITION_ONLY: &[&str] = &["parameters", "description"];

/// A job or executor definition without its `parameters` and `description`.
pub(crate) fn definition_body(def: &Map) -> Map {
    Map::from_entries(
        def.entries
            .iter()
            .filter(|e| !DEFINITION_ONLY.contains(&e.key.as_str()))
            .cloned()
            .collect(),
    )
}

/// One job invocation from a workflow, with its arguments already substituted.
pub(crate) struct Invocation<'a> {
    /// The job as written (`build`, `orb/job`).
    pub job: &'a str,
    pub at: Span,
    pub args: Vec<(String, Span, Node)>,
    /// Expanded `pre-steps` / `post-steps`.
    pub pre: Vec<Node>,
    pub post: Vec<Node>,
}

impl Compiler<'_> {
    /// The compiled job.
    pub fn job(&mut self, inv: &Invocation) -> Res<Map> {
        self.spend(inv.at, None)?;
        let (jns, element) = self.find(ROOT, ElementKind::Job, inv.job, inv.at)?;
        let name = inv.job;
        let Some(def) = element.def.as_map() else {
            return Err(self.ctx.error(
                Diagnostic::error(element.key_span, format!("job {name} has no definition"))
                    .with_label(inv.at, "invoked here")
                    .with_hint(
                        "a job needs an executor (docker, machine, macos or executor) and steps",
                    ),
            ));
        };
        let decls = declared(&mut self.ctx, def.get("parameters"), &format!("job {name}"))?;
        let callee = Callee {
            kind: "job",
            name,
            at: inv.at,
        };
        let args = self.bind_args(&decls, &inv.args, &callee, ROOT, jns)?;
        self.ctx
            .push(inv.at, format!("in job `{name}`, invoked here"));
        let result = self.job_body(inv, def, element.def.span, jns, &args);
        self.ctx.pop();
        result
    }

    fn job_body(
        &mut self,
        inv: &Invocation,
        def: &Map,
        span: Span,
        jns: NsId,
        args: &Args,
    ) -> Res<Map> {
        let body = definition_body(def);
        let body = self.subst_in(&Node::new(span, Kind::Map(body)), jns, Some(args))?;
        let mut job = body.as_map().cloned().unwrap_or_default();
        if let Some(exec) = job.remove("executor") {
            let exec_ns = executor_namespace(def.get("executor"), args).unwrap_or(jns);
            let executor = self.executor(&exec.value, exec_ns)?;
            job = merge(executor, job);
        }
        let mut steps = inv.pre.clone();
        if let Some(own) = job.get("steps").cloned() {
            self.expand_steps(&own, jns, &mut steps)?;
        }
        steps.extend(inv.post.iter().cloned());
        if job.contains_key("steps") || !steps.is_empty() {
            let at = job.entry("steps").map_or(span, |e| e.key_span);
            let value_span = job.get("steps").map_or(span, |s| s.span);
            job.insert("steps", at, Node::new(value_span, Kind::Seq(steps)));
        }
        let stray = job
            .entries
            .iter()
            .find_map(|e| stray_steps(&e.value))
            .map(|n| n.span);
        if let Some(at) = stray {
            return Err(self.ctx.error(
                Diagnostic::error(at, "a `steps` parameter is used where no steps can go")
                    .with_hint("splice it into a step list with `- steps: << parameters.x >>`"),
            ));
        }
        finish_job(&mut job);
        Ok(job)
    }
}

/// When the job's `executor` is exactly `<< parameters.x >>` of an executor parameter, the
/// executor name belongs to whoever wrote the argument: an orb job given `executor: my-exec`
/// by the config must find the config's executor.
fn executor_namespace(raw: Option<&Node>, args: &Args) -> Option<NsId> {
    let text = raw?.as_str()?;
    let pieces = template::parse(text).ok()?;
    let [Piece::Tag(content)] = pieces.as_slice() else {
        return None;
    };
    let (RefKind::Parameter, name) = RefKind::of(content) else {
        return None;
    };
    let arg = args.get(name)?;
    (arg.ty == ParamType::Executor).then_some(arg.origin)
}
