//! The `<< ... >>` template tags of 2.1 configs, as far as validation needs them: which
//! parameters, pipeline parameters and matrix values a string refers to, and where.
//!
//! This reads strings only; it never substitutes anything (that is `process`'s work).

use std::sync::LazyLock;

use regex::Regex;

/// What a name inside `<< >>` refers to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RefKind {
    /// `parameters.x`: a parameter of the enclosing job, command or executor.
    Parameter,
    /// `pipeline.parameters.x`: a top-level pipeline parameter.
    PipelineParameter,
    /// `pipeline.git.branch` and the other built-in pipeline values.
    PipelineValue,
    /// `matrix.x`: a matrix parameter of a workflow job entry.
    Matrix,
}

/// One name used inside a tag, with the byte range of the whole tag in the string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Reference<'s> {
    pub kind: RefKind,
    pub name: &'s str,
    pub tag: std::ops::Range<usize>,
}

/// A string's tags: the names they use, and the byte offset of a `<<` that is never closed.
#[derive(Debug, Default)]
pub(crate) struct Tags<'s> {
    pub references: Vec<Reference<'s>>,
    pub unclosed: Option<usize>,
}

static NAME: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?:^|[^A-Za-z0-9_.-])(pipeline\.parameters|pipeline|parameters|matrix)\.([A-Za-z0-9_][A-Za-z0-9_.-]*)",
    )
    .expect("the reference pattern compiles")
});

/// Every tag in `s`. `\<<` is an escaped literal `<<`, not a tag.
pub(crate) fn scan(s: &str) -> Tags<'_> {
    let mut tags = Tags::default();
    let mut from = 0;
    while let Some(found) = s[from..].find("<<") {
        let open = from + found;
        if open > 0 && s.as_bytes()[open - 1] == b'\\' {
            from = open + 2;
            continue;
        }
        let Some(len) = s[open + 2..].find(">>") else {
            tags.unclosed = Some(open);
            break;
        };
        let close = open + 2 + len + 2;
        names(&s[open + 2..close - 2], open..close, &mut tags.references);
        from = close;
    }
    tags
}

/// Whether `s` holds a `<<` that is not escaped: its value is only known after processing.
pub(crate) fn is_templated(s: &str) -> bool {
    s.match_indices("<<")
        .any(|(i, _)| i == 0 || s.as_bytes()[i - 1] != b'\\')
}

/// The names used by a bare expression (a workflow `when: pipeline.git.branch == "main"`).
pub(crate) fn expression(s: &str) -> Vec<Reference<'_>> {
    let mut out = Vec::new();
    names(s, 0..s.len(), &mut out);
    out
}

fn names<'s>(body: &'s str, tag: std::ops::Range<usize>, out: &mut Vec<Reference<'s>>) {
    // Legacy mustache sections: `<<# parameters.x >>`, `<<^ ...>>`, `<</ ...>>`.
    let body = body.trim_start_matches(['#', '^', '/']);
    for caps in NAME.captures_iter(body) {
        let kind = match &caps[1] {
            "pipeline.parameters" => RefKind::PipelineParameter,
            "pipeline" => RefKind::PipelineValue,
            "parameters" => RefKind::Parameter,
            _ => RefKind::Matrix,
        };
        let name = caps.get(2).expect("group 2 always matches").as_str();
        out.push(Reference {
            kind,
            name: name.trim_end_matches('.'),
            tag: tag.clone(),
        });
    }
}

/// The reference when `s` is exactly one tag naming one value (`<< pipeline.parameters.x >>`):
/// such a value is replaced by the typed value, not by text.
pub(crate) fn whole(s: &str) -> Option<Reference<'_>> {
    let trimmed = s.trim();
    let inner = trimmed.strip_prefix("<<")?.strip_suffix(">>")?;
    if inner.contains("<<") || inner.contains(">>") {
        return None;
    }
    let name = inner.trim();
    let offset = s.find("<<")?;
    let tags = scan(s);
    let reference = tags.references.into_iter().next()?;
    let written = match reference.kind {
        RefKind::PipelineParameter => format!("pipeline.parameters.{}", reference.name),
        RefKind::PipelineValue => format!("pipeline.{}", reference.name),
        RefKind::Parameter => format!("parameters.{}", reference.name),
        RefKind::Matrix => format!("matrix.{}", reference.name),
    };
    (written == name).then_some(Reference {
        tag: offset..offset + trimmed.len(),
        ..reference
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(s: &str) -> Vec<(RefKind, &str)> {
        scan(s)
            .references
            .into_iter()
            .map(|r| (r.kind, r.name))
            .collect()
    }

    #[test]
    fn finds_every_kind() {
        assert_eq!(
            kinds("echo << parameters.to >> <<pipeline.parameters.x-y>> << pipeline.git.branch >>"),
            vec![
                (RefKind::Parameter, "to"),
                (RefKind::PipelineParameter, "x-y"),
                (RefKind::PipelineValue, "git.branch"),
            ]
        );
        assert_eq!(
            kinds("build-<< matrix.os >>"),
            vec![(RefKind::Matrix, "os")]
        );
    }

    #[test]
    fn reads_expressions_and_sections() {
        assert_eq!(
            kinds(r#"<< pipeline.git.branch == "main" and parameters.n or 1 >>"#),
            vec![
                (RefKind::PipelineValue, "git.branch"),
                (RefKind::Parameter, "n")
            ]
        );
        assert_eq!(
            kinds("ls <<# parameters.all >> -a <</ parameters.all >>"),
            vec![(RefKind::Parameter, "all"), (RefKind::Parameter, "all")]
        );
    }

    #[test]
    fn escaped_and_unclosed() {
        assert!(scan(r"cat \<<EOF").references.is_empty());
        assert_eq!(scan(r"cat \<<EOF").unclosed, None);
        assert_eq!(scan("cat <<EOF").unclosed, Some(4));
    }

    #[test]
    fn whole_values() {
        let r = whole(" << pipeline.parameters.flag >>").expect("a whole reference");
        assert_eq!(
            (r.kind, r.name, r.tag),
            (RefKind::PipelineParameter, "flag", 1..31)
        );
        assert!(whole("x << parameters.a >>").is_none());
        assert!(whole("<< parameters.a >>-<< parameters.b >>").is_none());
        assert!(whole(r#"<< pipeline.git.branch == "main" >>"#).is_none());
    }
}
