//! The `<< ... >>` template tags of 2.1 configs, as far as validation needs them: which
//! parameters, pipeline parameters, pipeline values and matrix values a string refers to,
//! where, and what is malformed. Strings are read by the compiler's own template scanner and
//! expression parser (`process::template`, `process::expr`), so `validate` and `process`
//! agree on what a tag is and which tags are wrong.
//!
//! This reads strings only; it never substitutes anything (that is `process`'s work).

use std::ops::Range;

use crate::process::expr;
use crate::process::subst::is_reference;
pub(crate) use crate::process::template::RefKind;
use crate::process::template::{self as scanner, Problem as Structure, TagKind};

/// One name used inside a tag, with the byte range of the whole tag in the string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Reference {
    pub kind: RefKind,
    pub name: String,
    pub tag: Range<usize>,
}

/// Why a string's tags cannot be processed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Malformed {
    /// A `<<` never closed by `>>`.
    Unclosed,
    /// Sections that do not pair up, or nest too deeply.
    Sections(String),
    /// A tag whose content is not an expression: (the content, why).
    Expression(String, String),
}

/// A malformed part of a string, and the bytes it covers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Problem {
    pub what: Malformed,
    pub at: Range<usize>,
}

/// A string's tags: the names they use and what is malformed in them.
#[derive(Debug, Default)]
pub(crate) struct Tags {
    pub references: Vec<Reference>,
    pub problems: Vec<Problem>,
}

/// Every tag in `s`. `\<<` is an escaped literal `<<`, not a tag.
pub(crate) fn scan(s: &str) -> Tags {
    let mut tags = Tags::default();
    let found = match scanner::tags(s) {
        Ok(found) => found,
        Err(e) => {
            let what = match e.problem {
                Structure::Unclosed => Malformed::Unclosed,
                _ => Malformed::Sections(e.message()),
            };
            tags.problems.push(Problem { what, at: e.at });
            return tags;
        }
    };
    // A closing tag's name is only compared with the opening one, never looked up.
    for tag in found.iter().filter(|t| t.kind != TagKind::Close) {
        match names(&tag.content) {
            Ok(names) => tags
                .references
                .extend(names.iter().map(|name| reference(name, tag.range.clone()))),
            Err(why) => tags.problems.push(Problem {
                what: Malformed::Expression(tag.content.clone(), why),
                at: tag.range.clone(),
            }),
        }
    }
    tags
}

/// The names a tag's content reads, as `process` decides it: a plain dotted name is a
/// reference, anything else an expression.
fn names(content: &str) -> Result<Vec<String>, String> {
    if is_reference(content) {
        return Ok(vec![content.to_string()]);
    }
    let parsed = expr::parse(content).map_err(|e| e.message)?;
    Ok(parsed
        .variables()
        .into_iter()
        .map(|(name, _)| name.to_string())
        .collect())
}

/// A reference to `name` (prefix and all) in the tag at `tag`.
fn reference(name: &str, tag: Range<usize>) -> Reference {
    let (kind, name) = RefKind::of(name);
    Reference {
        kind,
        name: name.to_string(),
        tag,
    }
}

/// Whether `s` holds a `<<` that is not escaped: its value is only known after processing.
pub(crate) fn is_templated(s: &str) -> bool {
    s.match_indices("<<")
        .any(|(i, _)| i == 0 || s.as_bytes()[i - 1] != b'\\')
}

/// The names used by a bare expression (a workflow `when: pipeline.git.branch == "main"`), or
/// why it is not one.
pub(crate) fn expression(s: &str) -> Result<Vec<Reference>, String> {
    let parsed = expr::parse(s).map_err(|e| e.message)?;
    Ok(parsed
        .variables()
        .into_iter()
        .map(|(name, _)| reference(name, 0..s.len()))
        .collect())
}

/// The reference when `s` is exactly one tag naming one value (`<< pipeline.parameters.x >>`):
/// such a value is replaced by the typed value, not by text.
pub(crate) fn whole(s: &str) -> Option<Reference> {
    let tags = scanner::tags(s).ok()?;
    let [tag] = tags.as_slice() else {
        return None;
    };
    let whole_string = tag.kind == TagKind::Value && tag.range == (0..s.len());
    (whole_string && is_reference(&tag.content)).then(|| reference(&tag.content, tag.range.clone()))
}

/// Text of a tag for a message: long expressions are cut short.
pub(crate) fn shown(s: &str) -> String {
    scanner::abbreviate(s, 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(s: &str) -> Vec<(RefKind, String)> {
        scan(s)
            .references
            .into_iter()
            .map(|r| (r.kind, r.name))
            .collect()
    }

    fn owned(list: &[(RefKind, &str)]) -> Vec<(RefKind, String)> {
        list.iter().map(|(k, n)| (*k, (*n).to_string())).collect()
    }

    #[test]
    fn finds_every_kind() {
        assert_eq!(
            kinds("echo << parameters.to >> <<pipeline.parameters.x-y>> << pipeline.git.branch >>"),
            owned(&[
                (RefKind::Parameter, "to"),
                (RefKind::PipelineParameter, "x-y"),
                (RefKind::PipelineValue, "pipeline.git.branch"),
            ])
        );
        assert_eq!(
            kinds("build-<< matrix.os >>"),
            owned(&[(RefKind::Matrix, "os")])
        );
    }

    #[test]
    fn reads_expressions_and_sections() {
        assert_eq!(
            kinds(r#"<< pipeline.git.branch == "main" and parameters.n or 1 >>"#),
            owned(&[
                (RefKind::PipelineValue, "pipeline.git.branch"),
                (RefKind::Parameter, "n")
            ])
        );
        assert_eq!(
            kinds("ls <<# parameters.all >> -a <</ parameters.all >>"),
            owned(&[(RefKind::Parameter, "all")])
        );
        assert!(
            kinds(r#"<< "parameters.x" >>"#).is_empty(),
            "a string literal"
        );
    }

    #[test]
    fn escaped_and_unclosed() {
        assert!(scan(r"cat \<<EOF").references.is_empty());
        assert!(scan(r"cat \<<EOF").problems.is_empty());
        let problems = scan("cat <<EOF").problems;
        assert_eq!(
            problems,
            vec![Problem {
                what: Malformed::Unclosed,
                at: 4..6
            }]
        );
    }

    /// See: review repro 3 — validate accepted tags that the compiler rejects.
    #[test]
    fn malformed_tags_are_problems() {
        for bad in [
            "<<par[ameters.x>>",
            "<< parameters.x + >>",
            "<<>>",
            r#"<< "a >>"#,
        ] {
            let problems = scan(bad).problems;
            assert!(
                matches!(
                    problems.as_slice(),
                    [Problem {
                        what: Malformed::Expression(..),
                        ..
                    }]
                ),
                "{bad}: {problems:?}"
            );
        }
        let sections = scan("<<# parameters.a >>x").problems;
        assert!(matches!(sections[0].what, Malformed::Sections(_)));
    }

    #[test]
    fn whole_values() {
        let r = whole("<< pipeline.parameters.flag >>").expect("a whole reference");
        assert_eq!(
            (r.kind, r.name.as_str(), r.tag),
            (RefKind::PipelineParameter, "flag", 0..30)
        );
        assert!(
            whole(" << pipeline.parameters.flag >>").is_none(),
            "text around the tag makes a string, as in process"
        );
        assert!(whole("x << parameters.a >>").is_none());
        assert!(whole("<< parameters.a >>-<< parameters.b >>").is_none());
        assert!(whole(r#"<< pipeline.git.branch == "main" >>"#).is_none());
    }
}
