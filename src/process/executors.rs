//! Executor invocation (`executor: name` or `executor: {name, <args>}`) and the merge rule:
//! every key the job writes replaces the executor's, except `environment`, which is merged key
//! by key with the job winning.

use crate::diagnostic::Diagnostic;
use crate::yaml::{Kind, Map, Node};

use super::compiler::Compiler;
use super::context::Res;
use super::language::executor_ref;
use super::library::{ElementKind, NsId};
use super::output::environment_map;
use super::params::{Callee, declared, given_args};

impl Compiler<'_> {
    /// The body of the executor that `value` invokes from namespace `ns`, substituted.
    pub fn executor(&mut self, value: &Node, ns: NsId) -> Res<Map> {
        let Some(reference) = executor_ref(value) else {
            let d = match &value.kind {
                Kind::Map(_) => Diagnostic::error(
                    value.span,
                    "Unexpected executor invocation format: a map needs `name: <executor>`",
                )
                .with_hint("executor: {name: my-executor, some-arg: value}"),
                _ => Diagnostic::error(
                    value.span,
                    format!(
                        "Unexpected executor invocation format: expected a name or a map, found a {}",
                        value.type_name()
                    ),
                ),
            };
            return Err(self.ctx.error(d));
        };
        let name = reference.name.to_string();
        let at = reference.name_node.span;
        let given = given_args(reference.args, &["name"]);
        let (ens, element) = self.find(ns, ElementKind::Executor, &name, at)?;
        let Some(def) = element.def.as_map() else {
            return Err(self.ctx.error(
                Diagnostic::error(
                    element.key_span,
                    format!("executor {name} has no definition"),
                )
                .with_label(at, "used here"),
            ));
        };
        let decls = declared(
            &mut self.ctx,
            def.get("parameters"),
            &format!("executor {name}"),
        )?;
        let callee = Callee {
            kind: "executor",
            name: &name,
            at,
        };
        let args = self.bind_args(&decls, &given, &callee, ns, ens)?;
        let body = super::jobs::definition_body(def);
        let body = Node::new(element.def.span, Kind::Map(body));
        self.ctx
            .push(at, format!("in executor `{name}`, used here"));
        let result = self.subst_in(&body, ens, Some(&args));
        self.ctx.pop();
        Ok(result?.as_map().cloned().unwrap_or_default())
    }
}

/// The executor's keys first (as CircleCI prints them), then the job's; a key in both takes the
/// job's value in the executor's position, and `environment` maps are merged.
pub(crate) fn merge(executor: Map, job: Map) -> Map {
    let mut out = executor;
    for e in job.entries {
        if e.key == "environment"
            && let Some(base) = out.get("environment")
        {
            let mut merged = environment_map(base);
            for j in environment_map(&e.value).entries {
                merged.insert(j.key, j.key_span, j.value);
            }
            let span = e.value.span;
            out.insert(e.key, e.key_span, Node::new(span, Kind::Map(merged)));
            continue;
        }
        out.insert(e.key, e.key_span, e.value);
    }
    out
}
