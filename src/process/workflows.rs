//! Workflows: `when`/`unless` decided at compile time, job entries expanded (matrix, repeated
//! invocations named `-1`, `-2`...), expression `filters` decided, `requires` rewritten to the
//! concrete names, and every invoked job materialised once under its final name.

use std::collections::HashMap;

use crate::diagnostic::Diagnostic;
use crate::source::Span;
use crate::yaml::{Entry, Kind, Map, Node};

use super::compiler::{Compiler, UnavailableKind};
use super::context::{Reported, Res};
use super::job_names::{Unnamed, duplicates, final_names};
use super::jobs::Invocation;
use super::language::JOB_ENTRY_KEYS;
use super::library::{ElementKind, Lookup, ROOT};
use super::logic;
use super::matrix::{self, Combination};
use super::output::{entry, map_node};
use super::params::given_args;
use super::subst::{Scope, condition, subst};
use super::template::{self, Piece};
use super::value::same;

/// Entry keys that stay in the compiled workflow.
const KEPT: &[&str] = &["requires", "context", "filters", "type", "serial-group"];

/// The compiled jobs, in first-use order.
#[derive(Default)]
pub(crate) struct JobTable {
    pub jobs: Map,
}

/// One job entry of a workflow after matrix expansion.
struct Instance {
    /// The job as written (`build`, `orb/job`).
    job: String,
    at: Span,
    body: Map,
    explicit: Option<String>,
    base: String,
    /// A matrix's alias (by default the job's name).
    alias: Option<String>,
    name: String,
    dropped: bool,
    approval: bool,
}

impl Compiler<'_> {
    /// Substitutes workflow-level text: pipeline values and parameters, and matrix values.
    fn subst_wf(&mut self, node: &Node, matrix: Option<&Combination>) -> Res<Node> {
        let scope = Scope {
            params: None,
            pipeline_params: Some(&self.pipeline_params),
            pipeline: self.pipeline,
            matrix: matrix.map(Vec::as_slice),
        };
        subst(&mut self.ctx, node, &scope)
    }

    /// Evaluates a bare expression at workflow level.
    fn expression(&mut self, node: &Node, src: &str) -> Res<bool> {
        let scope = Scope {
            params: None,
            pipeline_params: Some(&self.pipeline_params),
            pipeline: self.pipeline,
            matrix: None,
        };
        condition(&mut self.ctx, node, src, &scope)
    }

    fn subst_body(&mut self, body: &Map, matrix: Option<&Combination>) -> Res<Map> {
        let node = Node::new(Span::default(), Kind::Map(body.clone()));
        Ok(self
            .subst_wf(&node, matrix)?
            .as_map()
            .cloned()
            .unwrap_or_default())
    }

    /// Compiles one workflow; `None` when its `when`/`unless` rules it out.
    pub fn workflow(
        &mut self,
        name: &str,
        key_span: Span,
        wf: &Node,
        table: &mut JobTable,
    ) -> Res<Option<Node>> {
        let Some(map) = wf.as_map() else {
            return Err(self.ctx.error(Diagnostic::error(
                wf.span,
                format!("workflow {name} must be a map with `jobs:`"),
            )));
        };
        if let Some(when) = map.get("when")
            && !self.workflow_condition(when)?
        {
            return Ok(None);
        }
        if let Some(unless) = map.get("unless")
            && self.workflow_condition(unless)?
        {
            return Ok(None);
        }
        let Some(items) = map.get("jobs").and_then(Node::as_seq) else {
            return Err(self.ctx.error(Diagnostic::error(
                key_span,
                format!("workflow {name} has no `jobs:` list"),
            )));
        };
        self.ctx.push(key_span, format!("in workflow `{name}`"));
        let result = self.workflow_jobs(name, items, table);
        self.ctx.pop();
        let mut jobs = Some(result?);
        let mut out = Map::default();
        for e in &map.entries {
            match e.key.as_str() {
                "when" | "unless" => {}
                "jobs" => out.entries.push(entry(
                    "jobs",
                    e.key_span,
                    Node::new(e.value.span, Kind::Seq(jobs.take().unwrap_or_default())),
                )),
                _ => {
                    let value = self.subst_wf(&e.value, None)?;
                    out.entries.push(Entry {
                        key: e.key.clone(),
                        key_span: e.key_span,
                        value,
                    });
                }
            }
        }
        Ok(Some(Node::new(wf.span, Kind::Map(out))))
    }

    /// A workflow `when`/`unless`: a logic statement, or (as a bare string) an expression.
    fn workflow_condition(&mut self, raw: &Node) -> Res<bool> {
        if let Kind::Str(s) = &raw.kind {
            let whole_tag = matches!(template::parse(s).as_deref(), Ok([Piece::Tag(_)]));
            if !whole_tag {
                let text = self.subst_wf(raw, None)?;
                let src = text.as_str().unwrap_or_default().to_string();
                return self.expression(raw, &src);
            }
        }
        let value = self.subst_wf(raw, None)?;
        logic::eval(&mut self.ctx, &value)
    }

    fn workflow_jobs(&mut self, wf: &str, items: &[Node], table: &mut JobTable) -> Res<Vec<Node>> {
        let mut instances = Vec::new();
        let mut failed = false;
        for item in items {
            failed |= self.instances(item, &mut instances).is_err();
        }
        if failed {
            return Err(Reported);
        }
        self.name_instances(wf, &mut instances)?;
        self.apply_expression_filters(&mut instances)?;
        let mut global: HashMap<usize, String> = HashMap::new();
        for (i, inst) in instances.iter().enumerate() {
            if inst.dropped {
                continue;
            }
            if inst.approval {
                global.insert(i, inst.name.clone());
                continue;
            }
            let (name, at) = (inst.name.clone(), inst.at);
            match self.guard(UnavailableKind::Job, &name, at, |c| {
                c.materialise(inst, table)
            }) {
                Ok(n) => {
                    global.insert(i, n);
                }
                Err(Reported) => failed = true,
            }
        }
        if failed {
            return Err(Reported);
        }
        let requires = self.requires(wf, &mut instances, &global)?;
        Ok(instances
            .iter()
            .enumerate()
            .filter(|(_, inst)| !inst.dropped)
            .map(|(i, inst)| output_entry(inst, &global[&i], requires.get(&i)))
            .collect())
    }

    /// The instances of one job entry (several for a matrix).
    fn instances(&mut self, item: &Node, out: &mut Vec<Instance>) -> Res<()> {
        let (job, at, body) = match &item.kind {
            Kind::Str(job) => (job.clone(), item.span, Map::default()),
            Kind::Map(m) if m.len() == 1 => {
                let e = &m.entries[0];
                let body = match &e.value.kind {
                    Kind::Map(b) => b.clone(),
                    Kind::Null => Map::default(),
                    _ => {
                        return Err(self.ctx.error(Diagnostic::error(
                            e.value.span,
                            format!("the options of job {} must be a map", e.key),
                        )));
                    }
                };
                (e.key.clone(), e.key_span, body)
            }
            _ => {
                return Err(self.ctx.error(
                    Diagnostic::error(
                        item.span,
                        "a workflow job entry is a job name or a one-key map `job: {options}`",
                    )
                    .with_hint("- build\n- test:\n    requires: [build]"),
                ));
            }
        };
        let approval = body
            .get("type")
            .and_then(Node::as_str)
            .is_some_and(|t| t == "approval" || t == "no-op");
        let Some(matrix_node) = body.get("matrix").cloned() else {
            self.spend(at, None)?;
            let body = self.subst_body(&body, None)?;
            out.push(instance(job, at, body, None, None, approval));
            return Ok(());
        };
        let matrix_node = self.subst_wf(&matrix_node, None)?;
        let matrix = matrix::expand(&mut self.ctx, &matrix_node)?;
        let alias = Some(matrix.alias.clone().unwrap_or_else(|| job.clone()));
        let mut rest = body.clone();
        rest.remove("matrix");
        for combination in &matrix.combinations {
            self.spend(at, None)?;
            let mut inst_body = self.subst_body(&rest, Some(combination))?;
            for (k, v) in combination {
                if !inst_body.contains_key(k) {
                    // Point argument errors at the matrix parameter's name, once for all instances.
                    let key_span = matrix_node
                        .get("parameters")
                        .and_then(Node::as_map)
                        .and_then(|m| m.entry(k))
                        .map_or(v.span, |e| e.key_span);
                    inst_body.entries.push(entry(k, key_span, v.clone()));
                }
            }
            let generated = self.generated(&job, combination)?;
            out.push(instance(
                job.clone(),
                at,
                inst_body,
                Some(generated),
                alias.clone(),
                approval,
            ));
        }
        Ok(())
    }

    fn generated(&mut self, job: &str, combination: &Combination) -> Res<String> {
        matrix::generated_name(&mut self.ctx, job, combination)
    }

    /// Final names: `name:` when given, else the job (or matrix) name; unnamed repeats become
    /// `job-1`, `job-2`, ... (configuration reference, workflows > jobs > name).
    fn name_instances(&mut self, wf: &str, instances: &mut [Instance]) -> Res<()> {
        let unnamed: Vec<Unnamed> = instances
            .iter()
            .map(|inst| Unnamed {
                base: inst.base.clone(),
                explicit: inst.explicit.is_some(),
            })
            .collect();
        let names = final_names(&unnamed);
        let repeats = duplicates(&names);
        for (inst, name) in instances.iter_mut().zip(names) {
            inst.name = name;
        }
        for &(later, first) in &repeats {
            let inst = &instances[later];
            self.ctx.error(
                Diagnostic::error(
                    inst.at,
                    format!("workflow {wf} has two jobs named {}", inst.name),
                )
                .with_label(instances[first].at, "the other one")
                .with_hint("give one of them a different `name:`"),
            );
        }
        if repeats.is_empty() {
            Ok(())
        } else {
            Err(Reported)
        }
    }

    /// A string `filters` is an expression, decided now; a false one drops the entry.
    fn apply_expression_filters(&mut self, instances: &mut [Instance]) -> Res<()> {
        let mut failed = false;
        for inst in instances.iter_mut() {
            let Some(filter) = inst.body.get("filters").cloned() else {
                continue;
            };
            let keep = match &filter.kind {
                Kind::Str(src) => match self.expression(&filter, src) {
                    Ok(v) => v,
                    Err(Reported) => {
                        failed = true;
                        continue;
                    }
                },
                Kind::Bool(b) => *b,
                _ => continue,
            };
            inst.body.remove("filters");
            inst.dropped = !keep;
        }
        if failed { Err(Reported) } else { Ok(()) }
    }

    /// Compiles the job of one instance; returns its name in the jobs table.
    fn materialise(&mut self, inst: &Instance, table: &mut JobTable) -> Res<String> {
        let job_ref = self
            .override_target(inst)?
            .unwrap_or_else(|| inst.job.clone());
        let mut pre = Vec::new();
        let mut post = Vec::new();
        if let Some(steps) = inst.body.get("pre-steps") {
            self.expand_steps(steps, ROOT, &mut pre)?;
        }
        if let Some(steps) = inst.body.get("post-steps") {
            self.expand_steps(steps, ROOT, &mut post)?;
        }
        let invocation = Invocation {
            job: &job_ref,
            at: inst.at,
            args: given_args(Some(&inst.body), &JOB_ENTRY_KEYS),
            pre,
            post,
        };
        let job = self.job(&invocation)?;
        let job = Node::new(inst.at, Kind::Map(job));
        let mut name = inst.name.clone();
        let mut n = 1;
        loop {
            match table.jobs.get(&name) {
                None => {
                    table.jobs.insert(name.clone(), inst.at, job);
                    break;
                }
                Some(existing) if same(existing, &job) => break,
                Some(_) => {
                    n += 1;
                    name = format!("{}-{n}", inst.name);
                }
            }
        }
        if name != inst.name {
            self.ctx.warn(
                Diagnostic::warning(inst.at, format!("another workflow has a different job named {}; this one is compiled as {name}", inst.name))
                    .with_hint("give the invocations distinct `name:`s"),
            );
        }
        Ok(name)
    }

    /// `override-with: orb/job` replaces the job when that orb job exists.
    fn override_target(&mut self, inst: &Instance) -> Res<Option<String>> {
        let Some(target) = inst.body.get("override-with") else {
            return Ok(None);
        };
        let Some(name) = target.as_str() else {
            return Err(self.ctx.error(Diagnostic::error(
                target.span,
                "`override-with` names an orb job (`orb/job`)",
            )));
        };
        match self.lib.find(ROOT, ElementKind::Job, name, target.span) {
            Lookup::Found(_) => Ok(Some(name.to_string())),
            Lookup::NotFound | Lookup::NoSuchOrb => Ok(None),
            Lookup::MissingOrb(_) => Err(Reported),
        }
    }

    /// The rewritten `requires` of every instance, by index.
    fn requires(
        &mut self,
        wf: &str,
        instances: &mut [Instance],
        global: &HashMap<usize, String>,
    ) -> Res<HashMap<usize, Node>> {
        let mut out = HashMap::new();
        let mut failed = false;
        let index = Targets::of(instances);
        loop {
            let mut newly_dropped = false;
            out.clear();
            for i in 0..instances.len() {
                if instances[i].dropped {
                    continue;
                }
                let Some(req) = instances[i].body.get("requires").cloned() else {
                    continue;
                };
                match self.rewrite_requires(wf, i, &req, instances, global, &index) {
                    Ok((node, had, kept)) => {
                        if had > 0 && kept == 0 {
                            instances[i].dropped = true;
                            newly_dropped = true;
                        } else {
                            out.insert(i, node);
                        }
                    }
                    Err(Reported) => failed = true,
                }
            }
            if failed {
                return Err(Reported);
            }
            if !newly_dropped {
                return Ok(out);
            }
        }
    }

    /// Returns the new list, how many names it had, and how many targets survive.
    fn rewrite_requires(
        &mut self,
        wf: &str,
        me: usize,
        req: &Node,
        instances: &[Instance],
        global: &HashMap<usize, String>,
        index: &Targets,
    ) -> Res<(Node, usize, usize)> {
        let items: Vec<Node> = match &req.kind {
            Kind::Seq(items) => items.clone(),
            Kind::Str(_) => vec![req.clone()],
            _ => {
                return Err(self.ctx.error(Diagnostic::error(
                    req.span,
                    "`requires` is a list of job names",
                )));
            }
        };
        let mut out = Vec::new();
        let (mut had, mut kept) = (0, 0);
        for item in &items {
            let (name, status) = match &item.kind {
                Kind::Str(s) => (s.clone(), None),
                Kind::Map(m) if m.len() == 1 => (m.entries[0].key.clone(), Some(&m.entries[0])),
                _ => {
                    return Err(self.ctx.error(Diagnostic::error(
                        item.span,
                        "a `requires` item is a job name or `name: status`",
                    )));
                }
            };
            had += 1;
            let targets = self.targets(wf, me, &name, item.span, instances, index)?;
            for &t in targets.iter().filter(|t| !instances[**t].dropped) {
                kept += 1;
                let target = global[&t].clone();
                out.push(match status {
                    None => Node::string(item.span, target),
                    Some(e) => map_node(
                        item.span,
                        vec![Entry {
                            key: target,
                            key_span: e.key_span,
                            value: e.value.clone(),
                        }],
                    ),
                });
            }
        }
        Ok((Node::new(req.span, Kind::Seq(out)), had, kept))
    }

    /// The instances a `requires` name stands for: the entry of that name, else the matrix (or
    /// the unnamed repeats of a job) it names.
    fn targets<'t>(
        &mut self,
        wf: &str,
        me: usize,
        name: &str,
        at: Span,
        instances: &[Instance],
        index: &'t Targets,
    ) -> Res<&'t [usize]> {
        let exact = Targets::find(&index.exact, instances, name, |i| Some(i.name.as_str()));
        if !exact.is_empty() {
            return Ok(exact);
        }
        let group = Targets::find(&index.group, instances, name, group_key);
        if group.is_empty() {
            return Err(self.ctx.error(
                Diagnostic::error(
                    at,
                    format!(
                        "Job '{}' requires '{name}', which is the name of 0 other jobs in workflow '{wf}'",
                        instances[me].name
                    ),
                )
                .with_hint("requires names a job entry of the same workflow (its `name:`, or a matrix alias)"),
            ));
        }
        Ok(group)
    }
}

/// The instances of one workflow by the names `requires` may use, so that rewriting the
/// `requires` of tens of thousands of entries is not quadratic (issue 9). Positions only,
/// sorted by name (then position): names are read from the instances when looking up.
struct Targets {
    /// By final name.
    exact: Vec<usize>,
    /// Matrix instances by alias, and entries without a `name:` by job.
    group: Vec<usize>,
}

impl Targets {
    fn of(instances: &[Instance]) -> Targets {
        let mut exact: Vec<usize> = (0..instances.len()).collect();
        exact.sort_by(|&a, &b| instances[a].name.cmp(&instances[b].name));
        let mut group: Vec<usize> = (0..instances.len())
            .filter(|&i| group_key(&instances[i]).is_some())
            .collect();
        group.sort_by(|&a, &b| group_key(&instances[a]).cmp(&group_key(&instances[b])));
        Targets { exact, group }
    }

    /// The positions whose key is `name`, in entry order (the sorts are stable).
    fn find<'t>(
        sorted: &'t [usize],
        instances: &[Instance],
        name: &str,
        key: impl Fn(&Instance) -> Option<&str>,
    ) -> &'t [usize] {
        let from = sorted.partition_point(|&i| key(&instances[i]) < Some(name));
        let to = sorted.partition_point(|&i| key(&instances[i]) <= Some(name));
        &sorted[from..to]
    }
}

/// The name a matrix instance (its alias) or an unnamed entry (its job) answers to as a group.
fn group_key(inst: &Instance) -> Option<&str> {
    match &inst.alias {
        Some(alias) => Some(alias),
        None => inst.explicit.is_none().then_some(inst.job.as_str()),
    }
}

fn instance(
    job: String,
    at: Span,
    body: Map,
    generated: Option<String>,
    alias: Option<String>,
    approval: bool,
) -> Instance {
    let explicit = body.get("name").and_then(Node::as_str).map(str::to_string);
    let base = explicit
        .clone()
        .or(generated)
        .unwrap_or_else(|| job.clone());
    Instance {
        job,
        at,
        body,
        explicit,
        base,
        alias,
        name: String::new(),
        dropped: false,
        approval,
    }
}

/// `- name` or `- name: {requires, filters, context, ...}`.
fn output_entry(inst: &Instance, name: &str, requires: Option<&Node>) -> Node {
    let mut kept = Vec::new();
    for e in &inst.body.entries {
        if !KEPT.contains(&e.key.as_str()) {
            continue;
        }
        let value = if e.key == "requires" {
            match requires {
                Some(r) => r.clone(),
                None => continue,
            }
        } else {
            e.value.clone()
        };
        kept.push(Entry {
            key: e.key.clone(),
            key_span: e.key_span,
            value,
        });
    }
    if kept.is_empty() {
        return Node::string(inst.at, name);
    }
    kept.shrink_to_fit();
    map_node(inst.at, vec![entry(name, inst.at, map_node(inst.at, kept))])
}
