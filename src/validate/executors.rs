//! `executor:` references (`name`, `{name: x, arg: v}`, `orb/name`) and their arguments.

use super::arguments::{self, Invocation};
use super::ctx::{Ctx, Scope};
use super::model::{ElementKind, Lookup};
use super::resolve::{self, Missing};
use super::template;
use crate::yaml::{Kind, Node};

/// Checks the value of an `executor:` key (or of an executor-typed argument) in `scope`.
pub(crate) fn check_ref<'a>(cx: &mut Ctx<'a>, value: &'a Node, ptr: &str, scope: Scope<'a>) {
    match &value.kind {
        Kind::Str(name) if !template::is_templated(name) => {
            call(cx, name, value, None, ptr.to_string(), ptr, scope);
        }
        Kind::Map(map) => {
            let Some(name_node) = map.get("name") else {
                return;
            };
            let Some(name) = name_node.as_str() else {
                return;
            };
            if template::is_templated(name) {
                return;
            }
            call(
                cx,
                name,
                name_node,
                Some(map),
                ptr.to_string(),
                &format!("{ptr}/name"),
                scope,
            );
        }
        _ => {}
    }
}

fn call<'a>(
    cx: &mut Ctx<'a>,
    name: &str,
    at: &'a Node,
    args: Option<&'a crate::yaml::Map>,
    args_ptr: String,
    name_ptr: &str,
    scope: Scope<'a>,
) {
    match cx.model.lookup(scope.ns, ElementKind::Executor, name) {
        Lookup::Found(def) => {
            let invocation = Invocation {
                target: def,
                args,
                ptr: args_ptr,
                at: at.span,
                skip: &["name"],
                matrix: None,
            };
            arguments::check(cx, &invocation, scope);
        }
        Lookup::MissingOrb(_) => {}
        Lookup::NoSuchOrb => resolve::report(
            cx,
            Missing::orb(ElementKind::Executor, name, at.span, name_ptr),
            scope,
        ),
        Lookup::NotFound => resolve::report(
            cx,
            Missing::def(ElementKind::Executor, name, at.span, name_ptr),
            scope,
        ),
    }
}
