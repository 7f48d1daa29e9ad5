//! The final shape of values in CircleCI's output: environment maps (a `KEY=VALUE` list becomes
//! a map; numbers keep the text they were written with, so `1.10` stays `1.10`), and the
//! top-level document (`version: 2`, `jobs`, `workflows` with `version: 2`).

use crate::source::Span;
use crate::yaml::{Entry, Kind, Map, Node};

/// An `environment` value as a map. A list of `KEY=VALUE` strings (or of one-key maps) is
/// converted; anything else yields an empty map.
pub(crate) fn environment_map(node: &Node) -> Map {
    match &node.kind {
        Kind::Map(m) => m.clone(),
        Kind::Seq(items) => {
            let mut out = Map::default();
            for item in items {
                match &item.kind {
                    Kind::Str(s) => {
                        let (k, v) = s.split_once('=').unwrap_or((s, ""));
                        out.insert(k, item.span, Node::string(item.span, v));
                    }
                    Kind::Map(m) => {
                        for e in &m.entries {
                            out.insert(e.key.clone(), e.key_span, e.value.clone());
                        }
                    }
                    _ => {}
                }
            }
            out
        }
        _ => Map::default(),
    }
}

/// Normalises every `environment` inside a job: the job's, each docker image's, each step's.
pub(crate) fn finish_job(job: &mut Map) {
    for e in &mut job.entries {
        match e.key.as_str() {
            "environment" => finish_env(&mut e.value),
            "docker" => {
                if let Kind::Seq(images) = &mut e.value.kind {
                    for image in images {
                        if let Some(env) = image.as_map_mut().and_then(|m| m.get_mut("environment"))
                        {
                            finish_env(env);
                        }
                    }
                }
            }
            "steps" => {
                if let Kind::Seq(steps) = &mut e.value.kind {
                    for step in steps {
                        finish_step(step);
                    }
                }
            }
            _ => {}
        }
    }
    shrink_map(job);
}

/// Gives back the spare room of every list and map in a compiled job: they grew by doubling
/// from four items, and a compiled config of tens of thousands of jobs is held whole until it
/// is printed (issue 9: a third of the memory of a 27,600-job config was spare room).
fn shrink_map(map: &mut Map) {
    map.entries.shrink_to_fit();
    for e in &mut map.entries {
        shrink(&mut e.value);
    }
}

pub(crate) fn shrink(node: &mut Node) {
    match &mut node.kind {
        Kind::Seq(items) => {
            items.shrink_to_fit();
            items.iter_mut().for_each(shrink);
        }
        Kind::Map(map) => shrink_map(map),
        _ => {}
    }
}

fn finish_step(step: &mut Node) {
    let Some(map) = step.as_map_mut() else { return };
    for e in &mut map.entries {
        if let Some(env) = e.value.as_map_mut().and_then(|m| m.get_mut("environment")) {
            finish_env(env);
        }
    }
}

fn finish_env(env: &mut Node) {
    if !matches!(env.kind, Kind::Map(_) | Kind::Seq(_)) {
        return;
    }
    let mut map = environment_map(env);
    for e in &mut map.entries {
        keep_written_text(&mut e.value);
    }
    env.kind = Kind::Map(map);
}

/// A number whose canonical form differs from what was written (`1.10`, `0755`, `1e3`) becomes
/// the written text: an environment variable is text, and `1.1` would be a different value.
fn keep_written_text(value: &mut Node) {
    let canonical = match &value.kind {
        Kind::Int(i) => i.to_string(),
        Kind::Float(f) => f.to_string(),
        _ => return,
    };
    if let Some(raw) = value.raw.take() {
        if *raw != *canonical {
            value.kind = Kind::Str(raw.to_string());
        } else {
            value.raw = Some(raw);
        }
    }
}

/// `key: value` entry.
pub(crate) fn entry(key: &str, span: Span, value: Node) -> Entry {
    Entry {
        key: key.to_string(),
        key_span: span,
        value,
    }
}

pub(crate) fn map_node(span: Span, entries: Vec<Entry>) -> Node {
    Node::new(span, Kind::Map(Map::from_entries(entries)))
}
