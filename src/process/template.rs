//! The `<< ... >>` template syntax of 2.1 strings, parsed into a small tree: literal text,
//! tags (a reference or an expression), and the legacy mustache sections
//! `<<# parameters.x >>...<</ parameters.x >>` / `<<^ parameters.x >>...<</ parameters.x >>`.
//! `\<<` is a literal `<<`.
//!
//! Parsing only; what a tag means is decided by `subst`.

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

/// Why a string is not a well-formed template.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum TemplateError {
    Unclosed,
    UnclosedSection(String),
    StrayClose(String),
    MismatchedClose { open: String, close: String },
}

impl TemplateError {
    pub fn message(&self) -> String {
        match self {
            TemplateError::Unclosed => {
                "Unclosed '<<' tag ('<<' must be escaped as '\\<<' in config v2.1+)".to_string()
            }
            TemplateError::UnclosedSection(name) => {
                format!("section <<# {name} >> is never closed with <</ {name} >>")
            }
            TemplateError::StrayClose(name) => {
                format!("<</ {name} >> closes a section that was never opened")
            }
            TemplateError::MismatchedClose { open, close } => {
                format!("section <<# {open} >> is closed by <</ {close} >>")
            }
        }
    }
}

/// Whether `s` needs template processing at all (the fast path for most strings).
pub(crate) fn has_template(s: &str) -> bool {
    s.contains("<<")
}

/// Parses `s` into pieces.
pub(crate) fn parse(s: &str) -> Result<Vec<Piece>, TemplateError> {
    let tokens = scan(s)?;
    let mut stack: Vec<(bool, String, Vec<Piece>)> = Vec::new();
    let mut top: Vec<Piece> = Vec::new();
    for token in tokens {
        match token {
            Token::Piece(p) => match stack.last_mut() {
                Some((_, _, body)) => push(body, p),
                None => push(&mut top, p),
            },
            Token::Open { inverted, name } => stack.push((inverted, name, Vec::new())),
            Token::Close(close) => {
                let Some((inverted, name, body)) = stack.pop() else {
                    return Err(TemplateError::StrayClose(close));
                };
                if name != close {
                    return Err(TemplateError::MismatchedClose { open: name, close });
                }
                let section = Piece::Section {
                    inverted,
                    name,
                    body,
                };
                match stack.last_mut() {
                    Some((_, _, b)) => b.push(section),
                    None => top.push(section),
                }
            }
        }
    }
    if let Some((_, name, _)) = stack.pop() {
        return Err(TemplateError::UnclosedSection(name));
    }
    Ok(top)
}

/// Appends, merging adjacent text.
fn push(out: &mut Vec<Piece>, piece: Piece) {
    if let (Piece::Text(new), Some(Piece::Text(last))) = (&piece, out.last_mut()) {
        last.push_str(new);
        return;
    }
    out.push(piece);
}

enum Token {
    Piece(Piece),
    Open { inverted: bool, name: String },
    Close(String),
}

fn scan(s: &str) -> Result<Vec<Token>, TemplateError> {
    let mut tokens = Vec::new();
    let mut text = String::new();
    let mut rest = s;
    while let Some(pos) = rest.find("<<") {
        if rest[..pos].ends_with('\\') {
            text.push_str(&rest[..pos - 1]);
            text.push_str("<<");
            rest = &rest[pos + 2..];
            continue;
        }
        text.push_str(&rest[..pos]);
        let after = &rest[pos + 2..];
        let end = after.find(">>").ok_or(TemplateError::Unclosed)?;
        if !text.is_empty() {
            tokens.push(Token::Piece(Piece::Text(std::mem::take(&mut text))));
        }
        tokens.push(tag(after[..end].trim()));
        rest = &after[end + 2..];
    }
    text.push_str(rest);
    if !text.is_empty() {
        tokens.push(Token::Piece(Piece::Text(text)));
    }
    Ok(tokens)
}

fn tag(content: &str) -> Token {
    if let Some(name) = content.strip_prefix('#') {
        Token::Open {
            inverted: false,
            name: name.trim().to_string(),
        }
    } else if let Some(name) = content.strip_prefix('^') {
        Token::Open {
            inverted: true,
            name: name.trim().to_string(),
        }
    } else if let Some(name) = content.strip_prefix('/') {
        Token::Close(name.trim().to_string())
    } else {
        Token::Piece(Piece::Tag(content.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(parse("cat <<EOF").unwrap_err(), TemplateError::Unclosed);
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
            parse("<<^ a >>x<</ b >>"),
            Err(TemplateError::MismatchedClose { .. })
        ));
    }
}
