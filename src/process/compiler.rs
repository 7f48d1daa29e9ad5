//! The state of one 2.1 compile after orbs are loaded: the element library, the pipeline's
//! values and parameters, diagnostics, and the stack of commands being expanded (to detect
//! recursion). The expansion stages (`steps`, `executors`, `jobs`, `workflows`) are methods on
//! [`Compiler`], each in its own file.

use crate::diagnostic::Diagnostic;
use crate::source::Span;
use crate::yaml::Node;

use super::budget::{self, Budget, Exceeded};
use super::context::{Ctx, Reported, Res};
use super::language::executor_ref;
use super::library::{ElementKind, Library, Lookup, NsId};
use super::params::{Args, Callee, Decls, ParamType, bind};
use super::pipeline::PipelineValues;
use super::subst::{Scope, subst};

pub(crate) struct Compiler<'a> {
    pub ctx: Ctx,
    pub lib: Library<'a>,
    pub pipeline: &'a PipelineValues,
    pub pipeline_params: Vec<(String, Node)>,
    /// Commands being expanded, innermost last: (namespace, name in it).
    pub calls: Vec<(NsId, String)>,
    pub budget: Budget,
    /// Lazy orbs: a job or workflow that needs an orb without a local source is set aside as
    /// [`Unavailable`] instead of failing the compile.
    pub lazy: bool,
    pub unavailable: Vec<Unavailable>,
    /// The "defined jobs: ..." hints made so far.
    pub defined: Vec<(NsId, ElementKind, String)>,
}

/// How many names a "defined ...:" hint lists.
const LISTED: usize = 50;

/// A job or workflow the compile set aside because it needs an orb that has no local source.
#[derive(Clone, Debug)]
pub struct Unavailable {
    /// The job's final name, or the workflow's name.
    pub name: String,
    pub kind: UnavailableKind,
    /// An error at the invocation that says which orb is missing and how to provide it.
    pub why: Diagnostic,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnavailableKind {
    Job,
    Workflow,
}

impl<'a> Compiler<'a> {
    /// Runs `compile` for the job or workflow `name` (invoked at `at`). When it fails only
    /// because it needs orbs that could not be resolved (no error recorded, a missing orb
    /// used), it is recorded as unavailable; in lazy mode that is not a failure of the run.
    pub fn guard<T>(
        &mut self,
        kind: UnavailableKind,
        name: &str,
        at: Span,
        compile: impl FnOnce(&mut Self) -> Res<T>,
    ) -> Res<T> {
        let errors = self.ctx.errors.len();
        let before = self.lib.missing_uses();
        let result = compile(self);
        if result.is_ok() || self.ctx.errors.len() != errors {
            return result;
        }
        let orbs = self.lib.missing_used_since(&before);
        if !orbs.is_empty()
            && !self
                .unavailable
                .iter()
                .any(|u| u.name == name && u.kind == kind)
        {
            let noun = match kind {
                UnavailableKind::Job => "job",
                UnavailableKind::Workflow => "workflow",
            };
            let why = Diagnostic::error(
                at,
                format!(
                    "{noun} {name} needs orb {}, which has no local source",
                    orbs.join(", ")
                ),
            )
            .with_hint(
                "save the orb with `localci orb vendor`, or pass --orb <ref>=path/to/orb.yml",
            );
            self.unavailable.push(Unavailable {
                name: name.to_string(),
                kind,
                why,
            });
        }
        result
    }

    /// Spends one unit of the expansion budget at `at` (and the text of `produced`, a step
    /// going into the output). The first refusal is reported there; later ones only stop.
    pub fn spend(&mut self, at: Span, produced: Option<&Node>) -> Res<()> {
        let message = match self.budget.charge(produced) {
            Ok(()) => return Ok(()),
            Err(Exceeded::Again) => return Err(Reported),
            Err(Exceeded::Units) => format!(
                "the config expands to more than {} jobs, command calls and steps",
                budget::MAX_EXPANSION
            ),
            Err(Exceeded::Text) => format!(
                "the expanded steps hold more than {} MiB of text",
                budget::MAX_TEXT >> 20
            ),
        };
        Err(self.ctx.error(Diagnostic::error(at, message).with_hint(
            "expansion stopped here. Commands that call other commands several times multiply \
             at every level, and so do matrix values; no real config comes near this limit",
        )))
    }

    /// Substitutes `node` in the scope of an element of namespace `ns`.
    pub fn subst_in(&mut self, node: &Node, ns: NsId, params: Option<&Args>) -> Res<Node> {
        let scope = Scope {
            params,
            pipeline_params: (!self.lib.is_orb(ns)).then_some(self.pipeline_params.as_slice()),
            pipeline: self.pipeline,
            matrix: None,
        };
        subst(&mut self.ctx, node, &scope)
    }

    /// Looks an element up and turns "not there" into CircleCI's error.
    pub fn find(
        &mut self,
        ns: NsId,
        kind: ElementKind,
        name: &str,
        at: Span,
    ) -> Res<(NsId, super::library::Element<'a>)> {
        match self.lib.find(ns, kind, name, at) {
            Lookup::Found(found) => Ok(found),
            Lookup::MissingOrb(_) => Err(super::context::Reported),
            Lookup::NotFound | Lookup::NoSuchOrb => Err(self.not_found(ns, kind, name, at)),
        }
    }

    /// The hint that lists what is defined: made once per namespace and kind, and at most
    /// [`LISTED`] names long (a config of tens of thousands of jobs that names each one wrong
    /// made a list of all of them for every error: gigabytes, issue 9).
    fn defined(&mut self, ns: NsId, kind: ElementKind) -> String {
        if let Some((_, _, hint)) = self.defined.iter().find(|(n, k, _)| *n == ns && *k == kind) {
            return hint.clone();
        }
        let noun = kind.noun();
        let mut known: Vec<&String> = match kind {
            ElementKind::Command => self.lib.ns(ns).commands.keys().collect(),
            ElementKind::Job => self.lib.ns(ns).jobs.keys().collect(),
            ElementKind::Executor => self.lib.ns(ns).executors.keys().collect(),
        };
        known.sort();
        let hint = match known.len() {
            0 => format!("no {noun}s are defined here"),
            n if n <= LISTED => {
                let list: Vec<&str> = known.iter().map(|s| s.as_str()).collect();
                format!("defined {noun}s: {}", list.join(", "))
            }
            n => {
                let list: Vec<&str> = known[..LISTED].iter().map(|s| s.as_str()).collect();
                format!("defined {noun}s: {} ... ({n} in all)", list.join(", "))
            }
        };
        self.defined.push((ns, kind, hint.clone()));
        hint
    }

    pub fn not_found(
        &mut self,
        ns: NsId,
        kind: ElementKind,
        name: &str,
        at: Span,
    ) -> super::context::Reported {
        let noun = kind.noun();
        let hint = match self.lib.unknown_alias(ns, name) {
            Some(alias) => format!("`{alias}` is not an orb imported under `orbs:`"),
            None => self.defined(ns, kind),
        };
        self.ctx.error(
            Diagnostic::error(
                at,
                format!("Cannot find a definition for {noun} named {name}"),
            )
            .with_hint(hint),
        )
    }

    /// Binds an invocation's arguments, then prepares them for use in the callee: defaults are
    /// substituted in the declaring namespace, and `steps` arguments are expanded where they
    /// were written (the caller's commands are not the callee's).
    pub fn bind_args(
        &mut self,
        decls: &Decls,
        given: &[(String, Span, Node)],
        callee: &Callee,
        caller: NsId,
        declaring: NsId,
    ) -> Res<Args> {
        let mut args = bind(&mut self.ctx, decls, given, callee)?;
        let mut failed = false;
        for arg in &mut args.list {
            arg.origin = if arg.from_default { declaring } else { caller };
            if arg.from_default {
                match self.subst_in(&arg.value, declaring, None) {
                    Ok(v) => arg.value = v,
                    Err(_) => failed = true,
                }
            }
            if arg.ty == ParamType::Executor && self.check_executor_arg(arg).is_err() {
                failed = true;
            }
            if arg.ty == ParamType::Steps {
                let mut out = Vec::new();
                match self.expand_steps(&arg.value, arg.origin, &mut out) {
                    Ok(()) => arg.value = super::steps::expanded(arg.value.span, out),
                    Err(_) => failed = true,
                }
            }
        }
        if failed {
            Err(super::context::Reported)
        } else {
            Ok(args)
        }
    }

    /// An executor-typed argument must name an executor that exists where the value was
    /// written, whether or not the callee ever uses it (CircleCI's argument validation, and
    /// what `validate` reports).
    fn check_executor_arg(&mut self, arg: &super::params::Arg) -> Res<()> {
        let Some(reference) = executor_ref(&arg.value) else {
            return Ok(());
        };
        let at = reference.name_node.span;
        self.find(arg.origin, ElementKind::Executor, reference.name, at)
            .map(|_| ())
    }
}
