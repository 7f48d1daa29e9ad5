//! Orbs: the form of registry references (`namespace/name@version`), and the one warning per
//! registry orb that says what localci could not check offline (an error with `--strict`).

use std::sync::LazyLock;

use regex::Regex;

use super::ctx::Ctx;
use super::template;
use crate::diagnostic::{Diagnostic, Severity};
use crate::process::OrbRef;

/// An orb version: `X`, `X.Y`, `X.Y.Z` (newest match), `volatile` or `dev:label`.
static VERSION: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(\d+(\.\d+){0,2}|volatile|dev:\S+)$").expect("the orb version pattern compiles")
});

/// Checks the written form of every registry orb reference.
pub(crate) fn check_references(cx: &mut Ctx<'_>) {
    let model = cx.model;
    for orb in &model.remote {
        let Some(text) = orb.entry.value.as_str() else {
            continue;
        };
        // Read as the compiler reads it; the schema reports strings that are not
        // `ns/name@...` at all, and here the version.
        let Some(reference) = OrbRef::parse(text.trim()) else {
            continue;
        };
        let version = reference.version.as_str();
        if VERSION.is_match(version) || template::is_templated(version) {
            continue;
        }
        cx.push(
            Diagnostic::error(orb.entry.value.span, format!("`{version}` is not an orb version"))
                .with_hint("use a version such as `1.2.3`, `1.2` or `1` (newest matching), `volatile`, or `dev:<label>`")
                .with_pointer(&orb.ptr),
        );
    }
}

/// One warning per registry orb without a local source (an error when `strict`).
pub(crate) fn offline_warnings(cx: &mut Ctx<'_>, options: &super::Options) {
    let strict = options.strict;
    let model = cx.model;
    let severity = if strict {
        Severity::Error
    } else {
        Severity::Warning
    };
    for orb in &model.remote {
        let written = orb.entry.value.scalar_text().unwrap_or_default();
        if options.local_orbs.contains(&written) {
            continue;
        }
        let message = if orb.used.get() {
            format!(
                "orb `{}` ({written}) cannot be fetched offline: the jobs, commands and executors used from it are not checked",
                orb.alias
            )
        } else {
            format!("orb `{}` ({written}) is declared but never used", orb.alias)
        };
        let hint = if strict {
            "without `--strict` this is a warning"
        } else {
            "no --orb file, .circleci/orbs/, the orb cache or the reachable orb registry has it; `localci orb vendor` saves orbs for offline use; `--strict` turns this warning into an error"
        };
        cx.push(
            Diagnostic::new(severity, Some(orb.entry.value.span), message)
                .with_hint(hint)
                .with_pointer(&orb.ptr),
        );
    }
}
