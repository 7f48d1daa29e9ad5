//! Binding an invocation's arguments to the parameters its job, command or executor declares:
//! the one rule of the 2.1 language for unknown arguments (with the closest declared name),
//! missing required ones, the type of each value (`enum` and `env_var_name` included, through
//! [`ParamType::accepts`]) and defaults. The compiler (`process::params`) words what it finds
//! like CircleCI and builds the arguments from it; `validate::arguments` words the same
//! findings with JSON pointers and hints, so the two cannot drift.
//!
//! Pure: no diagnostics, no substitution (values arrive as the caller can know them), no I/O.

use crate::source::Span;
use crate::suggest::did_you_mean;
use crate::yaml::{Entry, Kind, Node};

use super::language::ParamType;
use super::value::float_text;

/// One parameter as declared under `parameters:`.
#[derive(Clone, Debug)]
pub(crate) struct ParamDecl<'n> {
    pub name: &'n str,
    /// The name as written.
    pub span: Span,
    /// The whole declaration (`{type: string, default: x}`).
    pub node: &'n Node,
    /// `None` when the declaration names no valid type: its arguments are bound unchecked,
    /// and the declaration itself is reported where declarations are checked.
    pub ty: Option<ParamType>,
    pub default: Option<&'n Node>,
}

impl<'n> ParamDecl<'n> {
    /// Reads one entry of a `parameters:` map as written.
    pub(crate) fn read(entry: &'n Entry) -> ParamDecl<'n> {
        ParamDecl {
            name: &entry.key,
            span: entry.key_span,
            node: &entry.value,
            ty: ParamType::of(&entry.value),
            default: entry.value.get("default"),
        }
    }

    /// A declaration without a default needs an argument (one that is not even a map declares
    /// nothing to require).
    pub(crate) fn required(&self) -> bool {
        self.node.as_map().is_some() && self.default.is_none()
    }
}

/// The parameters an element declares, in declaration order.
#[derive(Clone, Debug, Default)]
pub(crate) struct Decls<'n> {
    pub list: Vec<ParamDecl<'n>>,
}

impl<'n> Decls<'n> {
    /// Reads the `parameters:` map of an element as written; anything but a map declares none.
    pub(crate) fn read(node: Option<&'n Node>) -> Decls<'n> {
        let Some(map) = node.and_then(Node::as_map) else {
            return Decls::default();
        };
        Decls {
            list: map.entries.iter().map(ParamDecl::read).collect(),
        }
    }

    pub(crate) fn get(&self, name: &str) -> Option<&ParamDecl<'n>> {
        self.list.iter().find(|d| d.name == name)
    }

    pub(crate) fn names(&self) -> Vec<&'n str> {
        self.list.iter().map(|d| d.name).collect()
    }
}

/// One argument as the caller gives it.
#[derive(Clone, Debug)]
pub(crate) struct Given<'g> {
    pub key: &'g str,
    pub span: Span,
    /// The values whose type is checked: the argument's value, or each value of a matrix
    /// parameter. A value known only later (a `<< >>` reference the caller cannot resolve)
    /// is left out.
    pub values: Vec<&'g Node>,
}

/// Whether a value fits a declared type.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Fit {
    Yes,
    No,
    /// A string parameter given an unquoted number that YAML reads as another text (`3.10` is
    /// the number 3.1): CircleCI takes it and passes what YAML read.
    Reread {
        written: String,
        read: String,
    },
}

/// The one type check of an argument (or a default) against its declared type.
pub(crate) fn fit(ty: &ParamType, value: &Node) -> Fit {
    if !ty.accepts(value) {
        return Fit::No;
    }
    match (ty, &value.kind, value.raw.as_deref()) {
        (ParamType::String, Kind::Float(f), Some(raw)) if raw != float_text(*f) => Fit::Reread {
            written: raw.to_string(),
            read: float_text(*f),
        },
        _ => Fit::Yes,
    }
}

/// A scalar as the compiler reads and prints it (an unquoted `3.10` is `3.1`), which is what an
/// enum compares.
pub(crate) fn compiled_text(value: &Node) -> Option<String> {
    super::value::text(value)
}

/// What binding found wrong, or worth a warning. `given` and `value` index the caller's
/// [`Given`] list and its values.
#[derive(Clone, Debug)]
pub(crate) enum Problem<'d, 'n> {
    Unknown {
        given: usize,
        /// The declared name closest to the key, when it looks like a typo of it.
        suggestion: Option<&'n str>,
    },
    Missing {
        decl: &'d ParamDecl<'n>,
    },
    Mismatch {
        given: usize,
        value: usize,
        decl: &'d ParamDecl<'n>,
        ty: &'d ParamType,
    },
    Reread {
        given: usize,
        value: usize,
        decl: &'d ParamDecl<'n>,
        written: String,
        read: String,
    },
}

impl Problem<'_, '_> {
    /// Whether the binding cannot be used (everything but a warning).
    pub(crate) fn is_error(&self) -> bool {
        !matches!(self, Problem::Reread { .. })
    }
}

/// Where a bound parameter's value comes from.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Source<'n> {
    /// The caller's [`Given`] of that index.
    Given(usize),
    Default(&'n Node),
}

/// The outcome of [`bind`]: every problem, and each declared parameter that has a value.
#[derive(Debug)]
pub(crate) struct Binding<'d, 'n> {
    pub problems: Vec<Problem<'d, 'n>>,
    pub bound: Vec<(&'d ParamDecl<'n>, Source<'n>)>,
}

impl Binding<'_, '_> {
    pub(crate) fn failed(&self) -> bool {
        self.problems.iter().any(Problem::is_error)
    }
}

/// Binds `given` to `decls`, finding every problem at once: each unknown key, each value of
/// the wrong type, each required parameter nobody gives.
pub(crate) fn bind<'d, 'n>(decls: &'d Decls<'n>, given: &[Given<'_>]) -> Binding<'d, 'n> {
    let mut problems = Vec::new();
    for (i, g) in given.iter().enumerate() {
        let Some(decl) = decls.get(g.key) else {
            let suggestion = did_you_mean(g.key, decls.names());
            problems.push(Problem::Unknown {
                given: i,
                suggestion,
            });
            continue;
        };
        let Some(ty) = &decl.ty else { continue };
        for (v, value) in g.values.iter().enumerate() {
            match fit(ty, value) {
                Fit::Yes => {}
                Fit::No => problems.push(Problem::Mismatch {
                    given: i,
                    value: v,
                    decl,
                    ty,
                }),
                Fit::Reread { written, read } => problems.push(Problem::Reread {
                    given: i,
                    value: v,
                    decl,
                    written,
                    read,
                }),
            }
        }
    }
    let mut bound = Vec::new();
    for decl in &decls.list {
        match (given.iter().position(|g| g.key == decl.name), decl.default) {
            (Some(i), _) => bound.push((decl, Source::Given(i))),
            (None, Some(default)) => bound.push((decl, Source::Default(default))),
            (None, None) if decl.required() => problems.push(Problem::Missing { decl }),
            (None, None) => {}
        }
    }
    Binding { problems, bound }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::Sources;

    fn parse(text: &str) -> Node {
        let mut sources = Sources::new();
        let file = sources.add(crate::source::Source::new("t.yml", text.to_string()));
        crate::yaml::parse(sources.get(file), file).expect("the test YAML parses")
    }

    fn given<'g>(key: &'g str, value: &'g Node) -> Given<'g> {
        Given {
            key,
            span: value.span,
            values: vec![value],
        }
    }

    const DECLS: &str = "
version: {type: string}
mark: {type: boolean, default: false}
tool: {type: enum, enum: [npm, yarn], default: npm}
";

    #[test]
    fn every_problem_is_found_at_once() {
        let decls_node = parse(DECLS);
        let decls = Decls::read(Some(&decls_node));
        let args = parse("verison: '18'\nmark: 'true'\ntool: pnpm\n");
        let given: Vec<Given> = args
            .as_map()
            .expect("a map")
            .entries
            .iter()
            .map(|e| given(&e.key, &e.value))
            .collect();
        let binding = bind(&decls, &given);
        let kinds: Vec<String> = binding
            .problems
            .iter()
            .map(|p| match p {
                Problem::Unknown { given, suggestion } => {
                    format!("unknown {given} {suggestion:?}")
                }
                Problem::Missing { decl } => format!("missing {}", decl.name),
                Problem::Mismatch { given, decl, .. } => format!("type {given} {}", decl.name),
                Problem::Reread { decl, .. } => format!("reread {}", decl.name),
            })
            .collect();
        assert_eq!(
            kinds,
            [
                "unknown 0 Some(\"version\")",
                "type 1 mark",
                "type 2 tool",
                "missing version"
            ]
        );
        assert!(binding.failed());
    }

    #[test]
    fn defaults_fill_what_is_not_given() {
        let decls_node = parse(DECLS);
        let decls = Decls::read(Some(&decls_node));
        let args = parse("version: '18'\n");
        let entry = &args.as_map().expect("a map").entries[0];
        let binding = bind(&decls, &[given(&entry.key, &entry.value)]);
        assert!(!binding.failed());
        let sources: Vec<(&str, bool)> = binding
            .bound
            .iter()
            .map(|(d, s)| (d.name, matches!(s, Source::Default(_))))
            .collect();
        assert_eq!(
            sources,
            [("version", false), ("mark", true), ("tool", true)]
        );
    }

    #[test]
    fn an_unquoted_float_for_a_string_is_a_warning() {
        let decls_node = parse("python: {type: string}\n");
        let decls = Decls::read(Some(&decls_node));
        let args = parse("python: 3.10\n");
        let entry = &args.as_map().expect("a map").entries[0];
        let binding = bind(&decls, &[given(&entry.key, &entry.value)]);
        assert!(!binding.failed());
        assert!(matches!(
            &binding.problems[..],
            [Problem::Reread { written, read, .. }] if written == "3.10" && read == "3.1"
        ));
    }

    #[test]
    fn a_declaration_without_a_valid_type_binds_unchecked() {
        let decls_node = parse("x: {type: strnig}\ny: plain\n");
        let decls = Decls::read(Some(&decls_node));
        let args = parse("x: [1]\n");
        let entry = &args.as_map().expect("a map").entries[0];
        let binding = bind(&decls, &[given(&entry.key, &entry.value)]);
        assert!(binding.problems.is_empty(), "{:?}", binding.problems);
    }
}
