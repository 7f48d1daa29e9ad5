//! What `process` would compile, counted without compiling it: a job without a definition that
//! gets run, a matrix with more instances than the compiler expands, commands nested deeper
//! than it follows, and a config whose expansion exceeds its budget (forty commands each
//! calling the next twice). The limits are the compiler's own, so `validate` and `process`
//! reject the same configs.
//!
//! Counting never expands anything: a command is counted once for each distinct set of sizes
//! of its `steps` arguments, so the count stays cheap however much the config would expand.
//! Both branches of a `when`/`unless` are counted, since conditions are only decided later.

use std::collections::{HashMap, HashSet};

use super::ctx::Ctx;
use super::entries::{self, JobEntry};
use super::model::{Def, ElementKind, Lookup, Model, NsId, ROOT};
use super::params::ParamType;
use super::template::{self, RefKind};
use crate::diagnostic::Diagnostic;
use crate::process::budget::MAX_EXPANSION;
use crate::process::matrix::{self, MAX_INSTANCES};
use crate::process::steps::MAX_DEPTH;
use crate::source::Span;
use crate::yaml::{Kind, Map, Node, pointer_token};

pub(crate) fn check(cx: &mut Ctx<'_>) {
    if !cx.v21 {
        return;
    }
    let model = cx.model;
    let mut run = Run {
        counter: Counter {
            model,
            memo: HashMap::new(),
            active: Vec::new(),
        },
        total: 0,
        found: Vec::new(),
        undefined: HashSet::new(),
        too_deep: HashSet::new(),
    };
    // Counting stops at the first time the budget runs out; that has been reported.
    let _ = match workflow_entries(model) {
        None => default_jobs(model).into_iter().try_for_each(|def| {
            let cost = run.job_cost(def, None, def.entry.key_span, &def.ptr);
            run.spend(cost, def.entry.key_span, &def.ptr)
        }),
        Some(workflows) => workflows
            .iter()
            .flatten()
            .try_for_each(|entry| run.entry(entry)),
    };
    cx.out.extend(run.found);
}

/// The job entries of every workflow (the `version` key is not a workflow); `None` when no
/// workflow is declared.
fn workflow_entries<'a>(model: &'a Model<'a>) -> Option<Vec<Vec<JobEntry<'a>>>> {
    let workflows = model.root.get("workflows").and_then(Node::as_map)?;
    let declared: Vec<_> = workflows
        .entries
        .iter()
        .filter(|e| e.key != "version")
        .collect();
    if declared.is_empty() {
        return None;
    }
    let lists = declared.into_iter().filter_map(|e| {
        let list = e.value.get("jobs")?.as_seq()?;
        let ptr = format!("/workflows/{}/jobs", pointer_token(&e.key));
        Some(entries::parse(list, &ptr))
    });
    Some(lists.collect())
}

/// Without workflows the compiler runs `build`, or else every job that needs no arguments.
fn default_jobs<'a>(model: &'a Model<'a>) -> Vec<&'a Def<'a>> {
    let jobs = &model.ns(ROOT).jobs;
    if let Some(build) = jobs.get("build") {
        return vec![build];
    }
    jobs.values()
        .filter(|def| {
            def.params().is_none_or(|p| {
                p.entries
                    .iter()
                    .all(|d| d.value.as_map().is_none_or(|m| m.contains_key("default")))
            })
        })
        .collect()
}

/// One validation's tally across all workflows.
struct Run<'a> {
    counter: Counter<'a>,
    /// Budget units spent so far, as the compiler counts them.
    total: u64,
    found: Vec<Diagnostic>,
    /// Jobs without a definition that were reported already (by pointer).
    undefined: HashSet<&'a str>,
    /// Invocations reported already as nested too deeply.
    too_deep: HashSet<Span>,
}

/// The budget ran out; that has been reported.
struct OverBudget;

impl<'a> Run<'a> {
    fn entry(&mut self, entry: &JobEntry<'a>) -> Result<(), OverBudget> {
        let instances = entry.matrix.map_or(1, |params| {
            matrix::instances(
                params
                    .entries
                    .iter()
                    .map(|e| e.value.as_seq().map_or(1, <[Node]>::len)),
            )
        });
        let matrix = entry.settings.and_then(|s| s.get("matrix"));
        if let Some(node) = matrix.filter(|_| instances > MAX_INSTANCES) {
            let ptr = format!("{}/matrix/parameters", entry.body_ptr);
            self.found
                .push(matrix::too_many(node, instances).with_pointer(ptr));
            return Ok(());
        }
        if entry.approval {
            return Ok(());
        }
        let Lookup::Found(def) = self.counter.model.lookup(ROOT, ElementKind::Job, entry.job)
        else {
            return Ok(());
        };
        let cost = self.job_cost(def, entry.settings, entry.job_span, &entry.ptr);
        // One unit for each instance of the entry, then the compiled job.
        let cost = cost.saturating_add(1).saturating_mul(instances);
        self.spend(cost, entry.job_span, &entry.ptr)
    }

    /// What compiling one invocation of `def` costs; the problems found on the way are
    /// reported (and then it costs nothing more).
    fn job_cost(
        &mut self,
        def: &'a Def<'a>,
        settings: Option<&'a Map>,
        at: Span,
        ptr: &str,
    ) -> u64 {
        if def.body().is_null() {
            if self.undefined.insert(&def.ptr) {
                self.found.push(undefined(def, at, ptr));
            }
            return 0;
        }
        match self.counter.job(def, settings) {
            Ok(count) => count.cost.saturating_add(1),
            Err(Stop::Budget) => u64::MAX,
            Err(Stop::TooDeep(span)) => {
                if self.too_deep.insert(span) {
                    self.found.push(too_deep(span, at).with_pointer(ptr));
                }
                0
            }
        }
    }

    fn spend(&mut self, cost: u64, at: Span, ptr: &str) -> Result<(), OverBudget> {
        self.total = self.total.saturating_add(cost);
        if self.total <= MAX_EXPANSION as u64 {
            return Ok(());
        }
        self.found.push(
            Diagnostic::error(
                at,
                format!(
                    "the config expands to more than {MAX_EXPANSION} jobs, command calls and steps"
                ),
            )
            .with_hint(
                "`process` would stop here. Commands that call other commands several times \
                 multiply at every level, and so do matrix values; no real config comes near \
                 this limit",
            )
            .with_pointer(ptr),
        );
        Err(OverBudget)
    }
}

/// As the compiler words it when it compiles the job.
fn undefined(def: &Def<'_>, at: Span, ptr: &str) -> Diagnostic {
    Diagnostic::error(
        def.entry.key_span,
        format!("job `{}` has no definition", def.name),
    )
    .with_label(at, "run here")
    .with_hint("a job needs an executor (docker, machine, macos or executor) and steps")
    .with_pointer(ptr)
}

fn too_deep(span: Span, job: Span) -> Diagnostic {
    Diagnostic::error(
        span,
        format!("commands are nested more than {MAX_DEPTH} levels deep"),
    )
    .with_label(job, "in the job run here")
    .with_hint("a chain of commands calling commands this long never ends well; flatten it")
}

/// What expanding some steps costs.
#[derive(Clone, Copy, Debug, Default)]
struct Count {
    /// Units of the compiler's budget: command calls and produced steps.
    cost: u64,
    /// Steps it produces (what a `steps` parameter holding them splices in).
    produced: u64,
    /// How many levels of commands nest inside.
    height: usize,
}

impl Count {
    fn add(&mut self, other: Count) {
        self.cost = self.cost.saturating_add(other.cost);
        self.produced = self.produced.saturating_add(other.produced);
        self.height = self.height.max(other.height);
    }
}

/// Why counting stopped.
enum Stop {
    Budget,
    /// The invocation at which commands nest deeper than the compiler follows.
    TooDeep(Span),
}

/// Sizes (in produced steps) of a command's `steps` arguments, by parameter.
type Sizes = Vec<(String, u64)>;

struct Counter<'a> {
    model: &'a Model<'a>,
    /// A command's body, by its pointer and the sizes of its `steps` arguments.
    memo: HashMap<(&'a str, Sizes), Count>,
    /// Commands being counted: a cycle counts as nothing (it is reported elsewhere).
    active: Vec<&'a str>,
}

impl<'a> Counter<'a> {
    /// One compiled job: its `pre-steps`/`post-steps`, its `steps` arguments and its steps.
    fn job(&mut self, def: &'a Def<'a>, settings: Option<&'a Map>) -> Result<Count, Stop> {
        let mut total = Count::default();
        for key in ["pre-steps", "post-steps"] {
            if let Some(list) = settings.and_then(|s| s.get(key)) {
                total.add(self.list(list, ROOT, &Sizes::new(), 0)?);
            }
        }
        let (args, sizes) = self.arguments(def, settings, ROOT, &Sizes::new(), 0)?;
        total.add(args);
        if let Some(steps) = def.body().get("steps") {
            total.add(self.list(steps, def.ns, &sizes, 0)?);
        }
        Ok(total)
    }

    /// The `steps` arguments of a call of `def` (given in `caller` with `sizes`, or the
    /// defaults): what expanding them costs, and how many steps each holds.
    fn arguments(
        &mut self,
        def: &'a Def<'a>,
        given: Option<&'a Map>,
        caller: NsId,
        sizes: &Sizes,
        depth: usize,
    ) -> Result<(Count, Sizes), Stop> {
        let mut total = Count::default();
        let mut out = Sizes::new();
        for decl in def.params().map_or(&[][..], |p| &p.entries) {
            if ParamType::of(&decl.value) != Some(ParamType::Steps) {
                continue;
            }
            let count = match (
                given.and_then(|g| g.get(&decl.key)),
                decl.value.get("default"),
            ) {
                (Some(value), _) => self.splice(value, caller, sizes, depth)?,
                (None, Some(default)) => self.splice(default, def.ns, &Sizes::new(), depth)?,
                (None, None) => continue,
            };
            total.cost = total.cost.saturating_add(count.cost);
            total.height = total.height.max(count.height);
            out.push((decl.key.clone(), count.produced));
        }
        Ok((total, out))
    }

    /// A list of steps (or one step as a map), `depth` commands deep.
    fn list(
        &mut self,
        steps: &'a Node,
        ns: NsId,
        sizes: &Sizes,
        depth: usize,
    ) -> Result<Count, Stop> {
        let items = match &steps.kind {
            Kind::Seq(items) => items.as_slice(),
            Kind::Map(_) => std::slice::from_ref(steps),
            _ => return Ok(Count::default()),
        };
        let mut total = Count::default();
        for step in items {
            total.add(self.step(step, ns, sizes, depth)?);
            if total.cost > MAX_EXPANSION as u64 {
                return Err(Stop::Budget);
            }
        }
        Ok(total)
    }

    fn step(
        &mut self,
        step: &'a Node,
        ns: NsId,
        sizes: &Sizes,
        depth: usize,
    ) -> Result<Count, Stop> {
        let (name, at, value) = match &step.kind {
            Kind::Str(name) => (name.as_str(), step.span, None),
            Kind::Map(map) => match map.entries.first() {
                Some(e) => (e.key.as_str(), e.key_span, Some(&e.value)),
                None => return Ok(Count::default()),
            },
            _ => return Ok(Count::default()),
        };
        match (name, value) {
            ("when" | "unless", Some(body)) => match body.get("steps") {
                Some(inner) => self.list(inner, ns, sizes, depth),
                None => Ok(Count::default()),
            },
            ("steps", Some(inner)) => self.splice(inner, ns, sizes, depth),
            _ => match self.model.lookup(ns, ElementKind::Command, name) {
                Lookup::Found(def) => self.invoke(def, at, value, ns, sizes, depth),
                _ => Ok(Count {
                    cost: 1,
                    produced: 1,
                    height: 0,
                }),
            },
        }
    }

    /// A spliced list: written out, or a `steps` parameter whose size is known.
    fn splice(
        &mut self,
        value: &'a Node,
        ns: NsId,
        sizes: &Sizes,
        depth: usize,
    ) -> Result<Count, Stop> {
        if let Some(text) = value.as_str() {
            let size = template::whole(text)
                .filter(|r| r.kind == RefKind::Parameter)
                .and_then(|r| sizes.iter().find(|(name, _)| *name == r.name))
                .map_or(0, |(_, n)| *n);
            return Ok(Count {
                cost: size,
                produced: size,
                height: 0,
            });
        }
        self.list(value, ns, sizes, depth)
    }

    /// A command call made `depth` commands deep: its arguments, then its body.
    fn invoke(
        &mut self,
        def: &'a Def<'a>,
        at: Span,
        args: Option<&'a Node>,
        caller: NsId,
        sizes: &Sizes,
        depth: usize,
    ) -> Result<Count, Stop> {
        if depth >= MAX_DEPTH {
            return Err(Stop::TooDeep(at));
        }
        let (mut total, inner) =
            self.arguments(def, args.and_then(Node::as_map), caller, sizes, depth)?;
        total.cost = total.cost.saturating_add(1);
        total.height = total.height.max(1);
        let Some(steps) = def.body().get("steps") else {
            return Ok(total);
        };
        let key = (def.ptr.as_str(), inner);
        let body = match self.memo.get(&key) {
            // Counted before from a shallower place: the depth it needs still has to fit.
            Some(body) if body.height > 0 && depth + body.height >= MAX_DEPTH => {
                return Err(Stop::TooDeep(at));
            }
            Some(body) => *body,
            None if self.active.contains(&key.0) => Count::default(),
            None => {
                self.active.push(key.0);
                let counted = self.list(steps, def.ns, &key.1, depth + 1);
                self.active.pop();
                let body = counted?;
                self.memo.insert(key, body);
                body
            }
        };
        total.cost = total.cost.saturating_add(body.cost);
        total.produced = body.produced;
        total.height = total.height.max(body.height + 1);
        Ok(total)
    }
}
