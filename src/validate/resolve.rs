//! The errors for names that resolve to nothing: an undefined job, command or executor, or an
//! `alias/name` whose orb alias is not declared; each with a "did you mean".

use super::ctx::{Ctx, Scope};
use super::model::ElementKind;
use super::suggest::{self, did_you_mean};
use crate::diagnostic::Diagnostic;
use crate::source::Span;

/// A name that could not be resolved, and where it was written.
pub(crate) struct Missing<'n> {
    pub kind: ElementKind,
    pub name: &'n str,
    pub span: Span,
    pub ptr: &'n str,
    /// The orb alias is the missing part.
    pub no_orb: bool,
}

impl<'n> Missing<'n> {
    pub(crate) fn def(kind: ElementKind, name: &'n str, span: Span, ptr: &'n str) -> Self {
        Missing {
            kind,
            name,
            span,
            ptr,
            no_orb: false,
        }
    }

    pub(crate) fn orb(kind: ElementKind, name: &'n str, span: Span, ptr: &'n str) -> Self {
        Missing {
            no_orb: true,
            ..Missing::def(kind, name, span, ptr)
        }
    }
}

pub(crate) fn report(cx: &mut Ctx<'_>, missing: Missing<'_>, scope: Scope<'_>) {
    let diagnostic = if missing.no_orb {
        no_orb(cx, &missing, scope)
    } else {
        undefined(cx, &missing, scope)
    };
    cx.push(diagnostic.with_pointer(missing.ptr));
}

fn undefined(cx: &Ctx<'_>, missing: &Missing<'_>, scope: Scope<'_>) -> Diagnostic {
    let noun = missing.kind.noun();
    let names = if suggest::suggesting() {
        cx.model.visible_names(scope.ns, missing.kind)
    } else {
        Vec::new()
    };
    let mut message = format!("{noun} `{}` is not defined", missing.name);
    if let Some(best) = did_you_mean(missing.name, names.iter().map(String::as_str)) {
        message.push_str(&format!("; did you mean `{best}`?"));
    }
    let section = missing.kind.section();
    let hint = match missing.name.split_once('/') {
        Some((alias, rest)) => {
            format!("the inline orb `{alias}` has no {noun} `{rest}` under `{section}:`")
        }
        None if cx.model.ns(scope.ns).in_orb() => {
            format!(
                "define it under the orb's `{section}:`, or use `alias/name` for an orb's {noun}"
            )
        }
        None => format!(
            "define it under the top-level `{section}:`, or use `alias/name` for an orb's {noun}"
        ),
    };
    Diagnostic::error(missing.span, message).with_hint(hint)
}

fn no_orb(cx: &Ctx<'_>, missing: &Missing<'_>, scope: Scope<'_>) -> Diagnostic {
    let alias = missing
        .name
        .split_once('/')
        .map_or(missing.name, |(a, _)| a);
    let ns = cx.model.ns(scope.ns);
    let aliases: Vec<&str> = ns.imports.keys().map(String::as_str).collect();
    let mut message = format!(
        "`{}` names the orb `{alias}`, but no orb `{alias}` is declared",
        missing.name
    );
    if let Some(best) = did_you_mean(alias, aliases.iter().copied()) {
        message.push_str(&format!("; did you mean `{best}`?"));
    }
    let place = if ns.in_orb() {
        "the orb's `orbs:`"
    } else {
        "`orbs:`"
    };
    let hint = format!("declare it under {place}, for example `{alias}: namespace/{alias}@1.0`");
    Diagnostic::error(missing.span, message).with_hint(hint)
}
