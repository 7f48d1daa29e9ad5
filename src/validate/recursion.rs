//! Commands that call themselves, directly or through other commands: CircleCI expands
//! commands in place, so such a command never finishes expanding.

use std::collections::HashMap;

use super::ctx::Ctx;
use super::cycles::{may_cycle, shortest_cycle};
use super::model::{Def, ElementKind, Lookup};
use crate::diagnostic::Diagnostic;
use crate::yaml::{Kind, Node};

pub(crate) fn check(cx: &mut Ctx<'_>) {
    let model = cx.model;
    let commands: Vec<&Def<'_>> = model
        .index
        .namespaces
        .iter()
        .flat_map(|ns| ns.commands.values())
        .collect();
    // Position by address: a search of the list for every call was quadratic (issue 9).
    let positions: HashMap<*const Def<'_>, usize> = commands
        .iter()
        .enumerate()
        .map(|(i, &def)| (std::ptr::from_ref(def), i))
        .collect();
    let edges: Vec<Vec<usize>> = commands
        .iter()
        .map(|def| {
            let mut calls = Vec::new();
            if let Some(steps) = def.body().get("steps") {
                called(cx, def, steps, &positions, &mut calls);
            }
            calls.sort_unstable();
            calls.dedup();
            calls
        })
        .collect();
    let candidates = may_cycle(&edges);
    for (i, def) in commands.iter().enumerate() {
        if !candidates[i] {
            continue;
        }
        let Some(cycle) = shortest_cycle(&edges, i) else {
            continue;
        };
        let path: Vec<&str> = cycle.iter().map(|&j| commands[j].name).collect();
        cx.push(
            Diagnostic::error(
                def.entry.key_span,
                format!("command `{}` calls itself: {}", def.name, path.join(" -> ")),
            )
            .with_hint(
                "a command is expanded in place, so a cycle of calls never ends; break the cycle",
            )
            .with_pointer(&def.ptr),
        );
    }
}

/// The commands a list of steps invokes (through `when`/`unless` and `steps` too).
fn called(
    cx: &Ctx<'_>,
    def: &Def<'_>,
    steps: &Node,
    commands: &HashMap<*const Def<'_>, usize>,
    out: &mut Vec<usize>,
) {
    let items: &[Node] = match &steps.kind {
        Kind::Seq(items) => items,
        Kind::Map(_) => std::slice::from_ref(steps),
        _ => return,
    };
    for step in items {
        let (name, value) = match &step.kind {
            Kind::Str(name) => (name.as_str(), None),
            Kind::Map(map) => match map.entries.first() {
                Some(e) => (e.key.as_str(), Some(&e.value)),
                None => continue,
            },
            _ => continue,
        };
        match (name, value) {
            ("when" | "unless", Some(v)) => {
                if let Some(inner) = v.get("steps") {
                    called(cx, def, inner, commands, out);
                }
            }
            ("steps", Some(v)) => called(cx, def, v, commands, out),
            _ => {
                if let Lookup::Found(target) = cx.model.lookup(def.ns, ElementKind::Command, name) {
                    out.extend(commands.get(&std::ptr::from_ref(target)));
                }
            }
        }
    }
}
