//! Expansion of a step list into plain 2.0 steps: command invocations are replaced by their
//! (substituted) steps, `when`/`unless` are decided, `- steps:` splices are flattened, and
//! `run: <string>` becomes `run: {command: <string>}` like CircleCI's output.
//!
//! Steps that were already expanded (the values of `steps` parameters) are wrapped in a private
//! marker so they are spliced as they are: a command name in them belongs to the caller.

use crate::config::step as catalogue;
use crate::diagnostic::Diagnostic;
use crate::source::Span;
use crate::yaml::{Entry, Kind, Map, Node};

use super::compiler::Compiler;
use super::context::{Reported, Res};
use super::library::{Element, ElementKind, Lookup, NsId};
use super::logic;
use super::params::{Callee, declared, given_args};

/// Key of the wrapper around an already-expanded step. It cannot be written in YAML by accident
/// (it starts with a NUL character), and it never reaches the output.
const EXPANDED: &str = "\u{0}expanded";

/// Commands nested deeper than this are reported as runaway recursion (`validate` checks the
/// same limit).
pub(crate) const MAX_DEPTH: usize = 100;

/// Wraps expanded steps as the value of a `steps` parameter.
pub(crate) fn expanded(span: Span, steps: Vec<Node>) -> Node {
    let items = steps
        .into_iter()
        .map(|s| {
            let span = s.span;
            let entry = Entry {
                key: EXPANDED.to_string(),
                key_span: span,
                value: s,
            };
            Node::new(span, Kind::Map(Map::from_entries(vec![entry])))
        })
        .collect();
    Node::new(span, Kind::Seq(items))
}

/// The first place under `node` where a `steps` parameter's value ended up outside a step list
/// (e.g. `environment: {X: << parameters.steps >>}`), which cannot be compiled.
pub(crate) fn stray_steps(node: &Node) -> Option<&Node> {
    match &node.kind {
        Kind::Seq(_)
            if is_expanded_list(node) && !node.as_seq().is_some_and(<[Node]>::is_empty) =>
        {
            Some(node)
        }
        Kind::Seq(items) => items.iter().find_map(stray_steps),
        Kind::Map(m) => m.entries.iter().find_map(|e| stray_steps(&e.value)),
        _ => None,
    }
}

/// Whether `node` is the value of a `steps` parameter (a list of expanded steps).
pub(crate) fn is_expanded_list(node: &Node) -> bool {
    node.as_seq().is_some_and(|items| {
        items.iter().all(|i| {
            i.as_map()
                .is_some_and(|m| m.len() == 1 && m.entries[0].key == EXPANDED)
        })
    })
}

impl Compiler<'_> {
    /// Expands `steps` (a list, a single step, or null), written in namespace `ns`.
    pub fn expand_steps(&mut self, steps: &Node, ns: NsId, out: &mut Vec<Node>) -> Res<()> {
        match &steps.kind {
            Kind::Null => Ok(()),
            Kind::Seq(items) => {
                let mut failed = false;
                for step in items {
                    failed |= self.expand_step(step, ns, out).is_err();
                }
                if failed { Err(Reported) } else { Ok(()) }
            }
            Kind::Map(_) => self.expand_step(steps, ns, out),
            _ => Err(self.ctx.error(
                Diagnostic::error(
                    steps.span,
                    format!(
                        "`steps` must be a list of steps, not a {}",
                        steps.type_name()
                    ),
                )
                .with_hint("write each step as a list item: `- checkout`"),
            )),
        }
    }

    fn expand_step(&mut self, step: &Node, ns: NsId, out: &mut Vec<Node>) -> Res<()> {
        match &step.kind {
            Kind::Str(name) => self.call_or_builtin(name, step.span, None, step, ns, out),
            Kind::Map(map) if map.len() == 1 => {
                let e = &map.entries[0];
                match e.key.as_str() {
                    EXPANDED => {
                        self.spend(e.value.span, Some(&e.value))?;
                        out.push(e.value.clone());
                        Ok(())
                    }
                    "when" | "unless" => self.conditional(e.key == "when", e, ns, out),
                    "steps" => self.expand_steps(&e.value, ns, out),
                    name => self.call_or_builtin(name, e.key_span, Some(&e.value), step, ns, out),
                }
            }
            // A legacy 2.0-beta step (`- type: shell` with `command:` beside it): CircleCI
            // still runs it, and `execute` reads it like the `run` it stands for.
            Kind::Map(map) if catalogue::legacy_step_type(map).is_some() => {
                self.spend(step.span, Some(step))?;
                out.push(step.clone());
                Ok(())
            }
            Kind::Map(map) => {
                let keys: Vec<&str> = map.entries.iter().map(|e| e.key.as_str()).collect();
                Err(self.ctx.error(
                    Diagnostic::error(step.span, format!("a step has exactly one key, its name; this one has {}: {}", keys.len(), keys.join(", ")))
                        .with_hint("indent the step's options under its name, e.g. `- run:` then `    command: ...`"),
                ))
            }
            _ => Err(self.ctx.error(Diagnostic::error(
                step.span,
                format!(
                    "a step is a name or a one-key map, not a {}",
                    step.type_name()
                ),
            ))),
        }
    }

    fn call_or_builtin(
        &mut self,
        name: &str,
        at: Span,
        args: Option<&Node>,
        step: &Node,
        ns: NsId,
        out: &mut Vec<Node>,
    ) -> Res<()> {
        match self.lib.find(ns, ElementKind::Command, name, at) {
            Lookup::Found((cns, element)) => self.invoke(name, at, args, element, cns, ns, out),
            Lookup::MissingOrb(_) => Err(Reported),
            Lookup::NotFound if catalogue::is_built_in(name) => {
                let produced = builtin(name, step, args);
                self.spend(at, Some(&produced))?;
                out.push(produced);
                Ok(())
            }
            Lookup::NotFound | Lookup::NoSuchOrb => {
                Err(self.not_found(ns, ElementKind::Command, name, at))
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn invoke(
        &mut self,
        name: &str,
        at: Span,
        args: Option<&Node>,
        element: Element<'_>,
        cns: NsId,
        caller: NsId,
        out: &mut Vec<Node>,
    ) -> Res<()> {
        self.spend(at, None)?;
        let local = name.rsplit('/').next().unwrap_or(name).to_string();
        if let Some(pos) = self
            .calls
            .iter()
            .position(|(ns, n)| *ns == cns && *n == local)
        {
            let mut chain: Vec<&str> = self.calls[pos..].iter().map(|(_, n)| n.as_str()).collect();
            chain.push(&local);
            return Err(self.ctx.error(
                Diagnostic::error(
                    at,
                    format!("Recursive command invocation: {}", chain.join(" -> ")),
                )
                .with_label(element.key_span, "defined here"),
            ));
        }
        if self.calls.len() >= MAX_DEPTH {
            return Err(self.ctx.error(Diagnostic::error(
                at,
                "commands are nested more than 100 levels deep",
            )));
        }
        let def = &element.def;
        let Some(body) = def.as_map() else {
            return Err(self.ctx.error(
                Diagnostic::error(
                    element.key_span,
                    format!("command {name} has no definition (it needs `steps:`)"),
                )
                .with_label(at, "called here"),
            ));
        };
        let given = match args.map(|a| &a.kind) {
            None | Some(Kind::Null) => Vec::new(),
            Some(Kind::Map(m)) => given_args(Some(m), &[]),
            Some(_) => {
                let a = args.expect("matched Some");
                return Err(self.ctx.error(
                    Diagnostic::error(
                        a.span,
                        format!("the arguments of command {name} must be a map of name: value"),
                    )
                    .with_label(element.key_span, "command defined here"),
                ));
            }
        };
        let decls = declared(
            &mut self.ctx,
            body.get("parameters"),
            &format!("command {name}"),
        )?;
        let callee = Callee {
            kind: "command",
            name,
            at,
        };
        let bound = self.bind_args(&decls, &given, &callee, caller, cns)?;
        let Some(steps) = body.get("steps") else {
            return Err(self.ctx.error(Diagnostic::error(
                element.key_span,
                format!("command {name} has no `steps`"),
            )));
        };
        self.ctx
            .push(at, format!("in command `{name}`, called here"));
        self.calls.push((cns, local));
        let result = self
            .subst_in(steps, cns, Some(&bound))
            .and_then(|steps| self.expand_steps(&steps, cns, out));
        self.calls.pop();
        self.ctx.pop();
        result
    }

    fn conditional(&mut self, when: bool, entry: &Entry, ns: NsId, out: &mut Vec<Node>) -> Res<()> {
        let key = &entry.key;
        let body = entry.value.as_map();
        let Some(condition) = body.and_then(|m| m.get("condition")) else {
            return Err(self.ctx.error(
                Diagnostic::error(
                    entry.key_span,
                    format!("a `{key}` step needs `condition:` and `steps:`"),
                )
                .with_hint(format!(
                    "- {key}:\n    condition: << parameters.flag >>\n    steps: [...]"
                )),
            ));
        };
        let holds = logic::eval(&mut self.ctx, condition)?;
        if holds == when {
            let steps = body.and_then(|m| m.get("steps"));
            if let Some(steps) = steps {
                return self.expand_steps(steps, ns, out);
            }
        }
        Ok(())
    }
}

/// A built-in step in CircleCI's output form.
fn builtin(name: &str, step: &Node, args: Option<&Node>) -> Node {
    match (name, args) {
        (
            "run",
            Some(
                cmd @ Node {
                    kind: Kind::Str(_), ..
                },
            ),
        ) => {
            let command = Entry {
                key: "command".into(),
                key_span: cmd.span,
                value: cmd.clone(),
            };
            let inner = Node::new(cmd.span, Kind::Map(Map::from_entries(vec![command])));
            let key_span = step.as_map().map_or(step.span, |m| m.entries[0].key_span);
            let run = Entry {
                key: "run".into(),
                key_span,
                value: inner,
            };
            Node::new(step.span, Kind::Map(Map::from_entries(vec![run])))
        }
        _ => step.clone(),
    }
}
