//! The `<< ... >>` template syntax of 2.1 strings, parsed into a small tree: literal text,
//! tags (a reference or an expression), and the legacy mustache sections
//! `<<# parameters.x >>...<</ parameters.x >>` / `<<^ parameters.x >>...<</ parameters.x >>`.
//! `\<<` is a literal `<<`.
//!
//! Parsing only; what a tag means is decided by `subst`. `validate` reads templates with the
//! same scanner ([`tags`]), so both agree on what is well formed.

use std::ops::Range;

/// One piece of a template.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Piece {
    Text(String),
    /// The trimmed content of `<< content >>`.
    Tag(String),
    /// `<<# name >>body<</ name >>` (or `<<^` when `inverted`).
    Section {
        inverted: bool,
        name: String,
        body: Vec<Piece>,
    },
}

/// How deeply `<<# >>` sections may nest. Rendering recurses once per level, so deeper input
/// is refused instead of exhausting the stack; real configs nest one or two.
pub(crate) const MAX_SECTION_DEPTH: usize = 100;

/// Why a string is not a well-formed template, and which bytes of it are at fault.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct TemplateError {
    pub problem: Problem,
    pub at: Range<usize>,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Problem {
    Unclosed,
    UnclosedSection(String),
    StrayClose(String),
    MismatchedClose { open: String, close: String },
    TooDeep,
}

impl TemplateError {
    pub fn message(&self) -> String {
        match &self.problem {
            Problem::Unclosed => {
                "Unclosed '<<' tag ('<<' must be escaped as '\\<<' in config v2.1+)".to_string()
            }
            Problem::UnclosedSection(name) => {
                format!("section <<# {name} >> is never closed with <</ {name} >>")
            }
            Problem::StrayClose(name) => {
                format!("<</ {name} >> closes a section that was never opened")
            }
            Problem::MismatchedClose { open, close } => {
                format!("section <<# {open} >> is closed by <</ {close} >>")
            }
            Problem::TooDeep => {
                format!("sections are nested more than {MAX_SECTION_DEPTH} levels deep")
            }
        }
    }
}

/// What a tag does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TagKind {
    /// `<< x >>`: replaced by a value.
    Value,
    /// `<<# x >>` / `<<^ x >>`: opens a section decided by `x`.
    Open { inverted: bool },
    /// `<</ x >>`: closes the section named `x`; `x` is only compared, never evaluated.
    Close,
}

/// One tag of a template: its kind, its trimmed content (without the `#`, `^` or `/`), and the
/// bytes `<< ... >>` it spans in the string.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Tag {
    pub kind: TagKind,
    pub content: String,
    pub range: Range<usize>,
}

/// What a name inside `<< >>` refers to, by its prefix: the one reading of a reference, for the
/// compiler's substitution and `validate`'s scope checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RefKind {
    /// `parameters.x`: a parameter of the enclosing job, command or executor.
    Parameter,
    /// `pipeline.parameters.x`: a top-level pipeline parameter.
    PipelineParameter,
    /// Any other name: a built-in pipeline value such as `pipeline.git.branch` (the name is
    /// kept whole).
    PipelineValue,
    /// `matrix.x`: a matrix parameter of a workflow job entry.
    Matrix,
}

impl RefKind {
    /// The kind of `name` and the name without its `parameters.` / `pipeline.parameters.` /
    /// `matrix.` prefix (a pipeline value keeps its whole name).
    pub(crate) fn of(name: &str) -> (RefKind, &str) {
        [
            ("parameters.", RefKind::Parameter),
            ("pipeline.parameters.", RefKind::PipelineParameter),
            ("matrix.", RefKind::Matrix),
        ]
        .into_iter()
        .find_map(|(prefix, kind)| Some((kind, name.strip_prefix(prefix)?)))
        .unwrap_or((RefKind::PipelineValue, name))
    }
}

/// Whether `s` needs template processing at all (the fast path for most strings).
pub(crate) fn has_template(s: &str) -> bool {
    s.contains("<<")
}

/// Every tag of `s` in order, once the whole template is known to be well formed.
pub(crate) fn tags(s: &str) -> Result<Vec<Tag>, TemplateError> {
    let tokens = scan(s)?;
    build(tokens.clone())?;
    Ok(tokens
        .into_iter()
        .filter_map(|t| match t {
            Token::Text(_) => None,
            Token::Tag(tag) => Some(tag),
        })
        .collect())
}

/// Parses `s` into pieces.
pub(crate) fn parse(s: &str) -> Result<Vec<Piece>, TemplateError> {
    build(scan(s)?)
}

/// An open section while building: (inverted, name, where it was opened, body so far).
type OpenSection = (bool, String, Range<usize>, Vec<Piece>);

fn build(tokens: Vec<Token>) -> Result<Vec<Piece>, TemplateError> {
    let mut stack: Vec<OpenSection> = Vec::new();
    let mut top: Vec<Piece> = Vec::new();
    for token in tokens {
        let piece = match token {
            Token::Text(t) => Piece::Text(t),
            Token::Tag(tag) => match tag.kind {
                TagKind::Value => Piece::Tag(tag.content),
                TagKind::Open { inverted } => {
                    if stack.len() >= MAX_SECTION_DEPTH {
                        return Err(TemplateError {
                            problem: Problem::TooDeep,
                            at: tag.range,
                        });
                    }
                    stack.push((inverted, tag.content, tag.range, Vec::new()));
                    continue;
                }
                TagKind::Close => close(&mut stack, tag)?,
            },
        };
        match stack.last_mut() {
            Some((_, _, _, body)) => push(body, piece),
            None => push(&mut top, piece),
        }
    }
    if let Some((_, name, at, _)) = stack.pop() {
        return Err(TemplateError {
            problem: Problem::UnclosedSection(name),
            at,
        });
    }
    Ok(top)
}

/// Ends the innermost open section with `tag`, which must name it.
fn close(stack: &mut Vec<OpenSection>, tag: Tag) -> Result<Piece, TemplateError> {
    let Some((inverted, name, _, body)) = stack.pop() else {
        return Err(TemplateError {
            problem: Problem::StrayClose(tag.content),
            at: tag.range,
        });
    };
    if name != tag.content {
        return Err(TemplateError {
            problem: Problem::MismatchedClose {
                open: name,
                close: tag.content,
            },
            at: tag.range,
        });
    }
    Ok(Piece::Section {
        inverted,
        name,
        body,
    })
}

/// Appends, merging adjacent text.
fn push(out: &mut Vec<Piece>, piece: Piece) {
    if let (Piece::Text(new), Some(Piece::Text(last))) = (&piece, out.last_mut()) {
        last.push_str(new);
        return;
    }
    out.push(piece);
}

#[derive(Clone)]
enum Token {
    Text(String),
    Tag(Tag),
}

fn scan(s: &str) -> Result<Vec<Token>, TemplateError> {
    let mut tokens = Vec::new();
    let mut text = String::new();
    let mut from = 0;
    while let Some(found) = s[from..].find("<<") {
        let open = from + found;
        if s[from..open].ends_with('\\') {
            text.push_str(&s[from..open - 1]);
            text.push_str("<<");
            from = open + 2;
            continue;
        }
        text.push_str(&s[from..open]);
        let Some(len) = s[open + 2..].find(">>") else {
            return Err(TemplateError {
                problem: Problem::Unclosed,
                at: open..open + 2,
            });
        };
        if !text.is_empty() {
            tokens.push(Token::Text(std::mem::take(&mut text)));
        }
        let end = open + 2 + len + 2;
        tokens.push(Token::Tag(tag(s[open + 2..end - 2].trim(), open..end)));
        from = end;
    }
    text.push_str(&s[from..]);
    if !text.is_empty() {
        tokens.push(Token::Text(text));
    }
    Ok(tokens)
}

fn tag(content: &str, range: Range<usize>) -> Tag {
    let (kind, content) = if let Some(name) = content.strip_prefix('#') {
        (TagKind::Open { inverted: false }, name)
    } else if let Some(name) = content.strip_prefix('^') {
        (TagKind::Open { inverted: true }, name)
    } else if let Some(name) = content.strip_prefix('/') {
        (TagKind::Close, name)
    } else {
        (TagKind::Value, content)
    };
    Tag {
        kind,
        content: content.trim().to_string(),
        range,
    }
}

/// `s` for a message: at most `max` characters, the rest elided. A 100 KB expression in an
/// error message helps no one.
pub(crate) fn abbreviate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        None => s.to_string(),
        Some((cut, _)) => format!("{}…", &s[..cut]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_read_by_their_prefix() {
        assert_eq!(RefKind::of("parameters.x"), (RefKind::Parameter, "x"));
        assert_eq!(
            RefKind::of("pipeline.parameters.deploy"),
            (RefKind::PipelineParameter, "deploy")
        );
        assert_eq!(RefKind::of("matrix.os"), (RefKind::Matrix, "os"));
        assert_eq!(
            RefKind::of("pipeline.git.branch"),
            (RefKind::PipelineValue, "pipeline.git.branch")
        );
    }

    fn text(s: &str) -> Piece {
        Piece::Text(s.into())
    }

    #[test]
    fn whole_and_embedded_tags() {
        assert_eq!(
            parse("<<parameters.x>>").unwrap(),
            vec![Piece::Tag("parameters.x".into())]
        );
        assert_eq!(
            parse("echo << parameters.x >>!").unwrap(),
            vec![text("echo "), Piece::Tag("parameters.x".into()), text("!")]
        );
    }

    #[test]
    fn escaped_tags_are_text() {
        assert_eq!(parse("cat \\<<EOF").unwrap(), vec![text("cat <<EOF")]);
        assert_eq!(parse("a \\<< b >> c").unwrap(), vec![text("a << b >> c")]);
    }

    #[test]
    fn unclosed_tags_are_errors() {
        let e = parse("cat <<EOF").unwrap_err();
        assert_eq!((e.problem, e.at), (Problem::Unclosed, 4..6));
    }

    #[test]
    fn sections_nest() {
        let parsed =
            parse("ls <<# parameters.all >>-a <<parameters.x>><</ parameters.all >>").unwrap();
        assert_eq!(
            parsed,
            vec![
                text("ls "),
                Piece::Section {
                    inverted: false,
                    name: "parameters.all".into(),
                    body: vec![text("-a "), Piece::Tag("parameters.x".into())],
                }
            ]
        );
        assert!(matches!(
            parse("<<^ a >>x<</ b >>").map_err(|e| e.problem),
            Err(Problem::MismatchedClose { .. })
        ));
    }

    #[test]
    fn tags_have_their_byte_ranges() {
        let found = tags("a <<# p.x >>b<< p.y >><</ p.x >>").unwrap();
        let summary: Vec<(TagKind, &str, Range<usize>)> = found
            .iter()
            .map(|t| (t.kind, t.content.as_str(), t.range.clone()))
            .collect();
        assert_eq!(
            summary,
            vec![
                (TagKind::Open { inverted: false }, "p.x", 2..12),
                (TagKind::Value, "p.y", 13..22),
                (TagKind::Close, "p.x", 22..32),
            ]
        );
    }

    /// Rendering recurses per section level; 100,000 nested sections must be an error.
    #[test]
    fn deeply_nested_sections_are_an_error() {
        let deep = "<<# a >>".repeat(100_000);
        assert_eq!(parse(&deep).unwrap_err().problem, Problem::TooDeep);
        let fine = format!("{}x{}", "<<# a >>".repeat(10), "<</ a >>".repeat(10));
        assert!(parse(&fine).is_ok());
    }

    #[test]
    fn abbreviation_keeps_short_text() {
        assert_eq!(abbreviate("abc", 5), "abc");
        assert_eq!(abbreviate("abcdef", 3), "abc…");
    }
}
