//! Prints a [`Node`] tree as block-style YAML that reads back to the same data.
//!
//! Strings that a YAML 1.1 reader would take for another type (`yes`, `1.10`, `~`) or that hold
//! syntax characters are quoted; multi-line strings become literal blocks when that is lossless.

//! Everything is written into one output string; nothing is allocated per scalar (a compiled
//! config of tens of thousands of jobs has millions of them, issue 9).

use std::fmt::Write;

use super::node::{Kind, Node};
use super::scalar;

/// The YAML text of `node`, ending with a newline.
pub fn emit(node: &Node) -> String {
    let mut out = String::new();
    match &node.kind {
        Kind::Map(m) if !m.is_empty() => write_map(&mut out, node, 0),
        Kind::Seq(s) if !s.is_empty() => write_seq(&mut out, node, 0),
        _ => {
            write_scalar(&mut out, node, 0);
            out.push('\n');
        }
    }
    out
}

fn indent(out: &mut String, n: usize) {
    out.extend(std::iter::repeat_n(' ', n));
}

fn write_map(out: &mut String, node: &Node, level: usize) {
    let Kind::Map(map) = &node.kind else { return };
    for (i, e) in map.entries.iter().enumerate() {
        if i > 0 {
            indent(out, level);
        }
        plain_or_quoted(out, &e.key);
        out.push(':');
        write_value(out, &e.value, level + 2, false);
    }
}

fn write_seq(out: &mut String, node: &Node, level: usize) {
    let Kind::Seq(items) = &node.kind else { return };
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            indent(out, level);
        }
        out.push('-');
        write_value(out, item, level + 2, true);
    }
}

/// Writes what follows `key:` or `-`: a scalar on the same line, or a nested block.
fn write_value(out: &mut String, value: &Node, level: usize, in_seq: bool) {
    match &value.kind {
        Kind::Map(m) if !m.is_empty() => {
            if in_seq {
                out.push(' ');
            } else {
                out.push('\n');
                indent(out, level);
            }
            write_map(out, value, level);
        }
        Kind::Seq(s) if !s.is_empty() => {
            // Sequences inside a mapping are indented like their key's children.
            if in_seq {
                out.push(' ');
            } else {
                out.push('\n');
                indent(out, level);
            }
            write_seq(out, value, level);
        }
        _ => {
            out.push(' ');
            write_scalar(out, value, level);
            out.push('\n');
        }
    }
}

fn write_scalar(out: &mut String, node: &Node, level: usize) {
    match &node.kind {
        Kind::Null => out.push_str("null"),
        Kind::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Kind::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Kind::Float(f) => float(out, *f),
        Kind::Str(s) => string(out, s, level),
        Kind::Seq(_) => out.push_str("[]"),
        Kind::Map(_) => out.push_str("{}"),
    }
}

fn float(out: &mut String, f: f64) {
    if f.is_nan() {
        out.push_str(".nan");
    } else if f.is_infinite() {
        out.push_str(if f > 0.0 { ".inf" } else { "-.inf" });
    } else {
        let start = out.len();
        let _ = write!(out, "{f}");
        if !out[start..].contains(['.', 'e', 'E']) {
            out.push_str(".0");
        }
    }
}

fn string(out: &mut String, s: &str, level: usize) {
    if s.contains('\n') && block_safe(s) {
        out.push('|');
        if !s.ends_with('\n') {
            out.push('-');
        }
        let body = s.strip_suffix('\n').unwrap_or(s);
        for line in body.split('\n') {
            out.push('\n');
            if !line.is_empty() {
                indent(out, level);
                out.push_str(line);
            }
        }
        return;
    }
    plain_or_quoted(out, s);
}

/// A literal block keeps the text exactly when it has no leading blank lines or indentation on
/// the first line, no trailing spaces, no carriage returns, and at most one final newline.
fn block_safe(s: &str) -> bool {
    let first = s.split('\n').next().unwrap_or("");
    !s.starts_with(['\n', ' ', '\t'])
        && !first.is_empty()
        && !s.ends_with("\n\n")
        && !s.contains('\r')
        && !s.split('\n').any(|l| l.ends_with([' ', '\t']))
        && !s.chars().any(|c| c.is_control() && c != '\n' && c != '\t')
}

fn plain_or_quoted(out: &mut String, s: &str) {
    if is_plain_safe(s) {
        out.push_str(s);
    } else {
        quote(out, s);
    }
}

fn is_plain_safe(s: &str) -> bool {
    if s.is_empty() || scalar::typed(s).is_some() {
        return false;
    }
    let first = s.chars().next().unwrap_or(' ');
    if "-?:,[]{}#&*!|>'\"%@`".contains(first) {
        return false;
    }
    if s.starts_with(' ') || s.ends_with(' ') || s.ends_with(':') {
        return false;
    }
    !s.contains(": ")
        && !s.contains(" #")
        && !s
            .chars()
            .any(|c| c.is_control() || matches!(c, '\u{feff}' | '\u{85}' | '\u{2028}' | '\u{2029}'))
        && !s.contains(['{', '}', '[', ']', ','])
}

fn quote(out: &mut String, s: &str) {
    out.reserve(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}
