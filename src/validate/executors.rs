//! `executor:` references (`name`, `{name: x, arg: v}`, `orb/name`) and their arguments.

use super::arguments::{self, Invocation};
use super::ctx::{Ctx, Scope};
use super::model::{ElementKind, Lookup};
use super::resolve::{self, Missing};
use super::template;
use crate::process::language::executor_ref;
use crate::yaml::Node;

/// Checks the value of an `executor:` key (or of an executor-typed argument) in `scope`. Other
/// shapes are the schema's (or the argument type's) to report.
pub(crate) fn check_ref<'a>(cx: &mut Ctx<'a>, value: &'a Node, ptr: &str, scope: Scope<'a>) {
    let Some(reference) = executor_ref(value) else {
        return;
    };
    if template::is_templated(reference.name) {
        return;
    }
    let name_ptr = match reference.args {
        Some(_) => format!("{ptr}/name"),
        None => ptr.to_string(),
    };
    call(
        cx,
        reference.name,
        reference.name_node,
        reference.args,
        ptr.to_string(),
        &name_ptr,
        scope,
    );
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
