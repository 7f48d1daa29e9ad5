//! The lexer of one template action (the text between `{{` and `}}`), following Go's
//! `text/template/parse/lex.go` closely enough that the same inputs fail with the same words.
//! It only splits text into tokens; what they mean is decided by the parser.

use super::TemplateError;

/// One token inside an action, with the byte offset of its first character in the template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Token {
    pub pos: usize,
    pub kind: TokenKind,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum TokenKind {
    /// `.Name`: one link of a field chain (`.Environment.X` is two of them).
    Field(String),
    /// A lone `.`.
    Dot,
    Identifier(String),
    /// A keyword of Go templates (`if`, `range`, `end` ...), which cache keys do not support.
    Keyword(String),
    /// A string literal: its value and its text as written (quotes included).
    Str {
        value: String,
        quoted: String,
    },
    /// Anything Go accepts but localci does not evaluate (numbers, `$x`, `|`, `(`, booleans);
    /// kept as written so the error can name it.
    Unsupported {
        what: &'static str,
        text: String,
    },
}

/// The tokens of one action and where the template continues after its closing `}}`.
#[derive(Debug)]
pub(super) struct Action {
    pub tokens: Vec<Token>,
    /// `{{/* ... */}}`: renders nothing.
    pub comment: bool,
    /// Byte offset just after the closing delimiter.
    pub end: usize,
    /// The action ended with ` -}}`: trim the whitespace that follows.
    pub trim_right: bool,
}

const KEYWORDS: &[&str] = &[
    "block", "break", "continue", "define", "else", "end", "if", "range", "nil", "template", "with",
];

pub(super) fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

fn is_alphanumeric(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

/// Lexes the action whose body starts at byte `start` (after `{{` and any `- ` trim marker).
pub(super) fn action(text: &str, start: usize) -> Result<Action, TemplateError> {
    let mut lexer = Lexer {
        text,
        pos: start,
        tokens: Vec::new(),
    };
    if text[start..].starts_with("/*") {
        return lexer.comment();
    }
    loop {
        if let Some((end, trim_right)) = lexer.at_right_delim() {
            return Ok(Action {
                tokens: lexer.tokens,
                comment: false,
                end,
                trim_right,
            });
        }
        lexer.token()?;
    }
}

struct Lexer<'a> {
    text: &'a str,
    pos: usize,
    tokens: Vec<Token>,
}

impl Lexer<'_> {
    fn rest(&self) -> &str {
        &self.text[self.pos..]
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    /// `}}` or ` -}}` at the current position: the offset after it and whether it trims.
    fn at_right_delim(&self) -> Option<(usize, bool)> {
        let rest = self.rest();
        let mut chars = rest.chars();
        if let (Some(space), Some('-')) = (chars.next(), chars.next())
            && is_space(space)
            && rest[space.len_utf8() + 1..].starts_with("}}")
        {
            return Some((self.pos + space.len_utf8() + 3, true));
        }
        rest.starts_with("}}").then_some((self.pos + 2, false))
    }

    fn error_here(&self, message: String) -> TemplateError {
        TemplateError::parse(self.text, self.pos, message)
    }

    fn comment(mut self) -> Result<Action, TemplateError> {
        let Some(close) = self.rest().find("*/") else {
            return Err(self.error_here("unclosed comment".into()));
        };
        self.pos += close + 2;
        match self.at_right_delim() {
            Some((end, trim_right)) => Ok(Action {
                tokens: Vec::new(),
                comment: true,
                end,
                trim_right,
            }),
            None => Err(self.error_here("comment ends before closing delimiter".into())),
        }
    }

    fn push(&mut self, pos: usize, kind: TokenKind) {
        self.tokens.push(Token { pos, kind });
    }

    fn token(&mut self) -> Result<(), TemplateError> {
        let start = self.pos;
        let Some(c) = self.peek() else {
            return Err(self.error_here("unclosed action".into()));
        };
        match c {
            c if is_space(c) => self.pos += c.len_utf8(),
            '"' => self.quoted(start)?,
            '`' => self.raw_quoted(start)?,
            '.' => self.field_or_dot(start)?,
            '$' => {
                self.pos += 1;
                let name = self.alphanumerics();
                self.terminated()?;
                let text = format!("${name}");
                self.push(start, unsupported("variables", text));
            }
            '|' => self.single(start, "pipelines", "|"),
            '(' | ')' => self.single(start, "parenthesized pipelines", &c.to_string()),
            '=' => self.single(start, "assignments", "="),
            ':' if self.rest().starts_with(":=") => {
                self.pos += 1;
                self.single(start, "variable declarations", ":=");
            }
            c if c.is_ascii_digit() || c == '+' || c == '-' => self.number(start),
            c if is_alphanumeric(c) => self.identifier(start)?,
            other => {
                return Err(self.error_here(format!("unexpected {} in command", quote_char(other))));
            }
        }
        Ok(())
    }

    fn single(&mut self, start: usize, what: &'static str, text: &str) {
        self.pos += 1;
        self.push(start, unsupported(what, text.to_string()));
    }

    fn alphanumerics(&mut self) -> String {
        let len = self
            .rest()
            .find(|c: char| !is_alphanumeric(c))
            .unwrap_or(self.rest().len());
        let word = self.rest()[..len].to_string();
        self.pos += len;
        word
    }

    /// Go requires a word to end at a space, a delimiter or punctuation: `.X-Y` is a bad character.
    fn terminated(&self) -> Result<(), TemplateError> {
        match self.peek() {
            None => Ok(()),
            Some(c) if is_space(c) || ".,|:()".contains(c) => Ok(()),
            Some(_) if self.at_right_delim().is_some() => Ok(()),
            Some(c) => Err(self.error_here(format!("bad character {}", go_rune(c)))),
        }
    }

    fn field_or_dot(&mut self, start: usize) -> Result<(), TemplateError> {
        self.pos += 1;
        if self.peek().is_none_or(|c| !is_alphanumeric(c)) {
            self.terminated()?;
            self.push(start, TokenKind::Dot);
            return Ok(());
        }
        let name = self.alphanumerics();
        self.terminated()?;
        self.push(start, TokenKind::Field(name));
        Ok(())
    }

    fn identifier(&mut self, start: usize) -> Result<(), TemplateError> {
        let word = self.alphanumerics();
        self.terminated()?;
        let kind = if KEYWORDS.contains(&word.as_str()) {
            TokenKind::Keyword(word)
        } else if word == "true" || word == "false" {
            unsupported("boolean constants", word)
        } else {
            TokenKind::Identifier(word)
        };
        self.push(start, kind);
        Ok(())
    }

    fn number(&mut self, start: usize) {
        self.pos += 1;
        let len = self
            .rest()
            .find(|c: char| !(c.is_ascii_alphanumeric() || "._+-".contains(c)))
            .unwrap_or(self.rest().len());
        self.pos += len;
        let text = self.text[start..self.pos].to_string();
        self.push(start, unsupported("numbers", text));
    }

    fn quoted(&mut self, start: usize) -> Result<(), TemplateError> {
        let body = &self.rest()[1..];
        let mut escaped = false;
        let mut close = None;
        for (i, c) in body.char_indices() {
            match c {
                '\n' => break,
                '\\' if !escaped => escaped = true,
                '"' if !escaped => {
                    close = Some(i);
                    break;
                }
                _ => escaped = false,
            }
        }
        let Some(close) = close else {
            return Err(self.error_here("unterminated quoted string".into()));
        };
        let quoted = self.rest()[..close + 2].to_string();
        let value = unquote(&quoted[1..quoted.len() - 1])
            .ok_or_else(|| self.error_here("invalid syntax".into()))?;
        self.pos += quoted.len();
        self.push(start, TokenKind::Str { value, quoted });
        Ok(())
    }

    fn raw_quoted(&mut self, start: usize) -> Result<(), TemplateError> {
        let Some(close) = self.rest()[1..].find('`') else {
            return Err(self.error_here("unterminated raw quoted string".into()));
        };
        let quoted = self.rest()[..close + 2].to_string();
        let value = quoted[1..quoted.len() - 1].replace('\r', "");
        self.pos += quoted.len();
        self.push(start, TokenKind::Str { value, quoted });
        Ok(())
    }
}

fn unsupported(what: &'static str, text: String) -> TokenKind {
    TokenKind::Unsupported { what, text }
}

/// Go's `%q` of a rune, as in `unexpected "}" in command`.
fn quote_char(c: char) -> String {
    format!("{:?}", c.to_string())
}

/// Go's `%#U` of a rune, as in `bad character U+002D '-'`.
fn go_rune(c: char) -> String {
    format!("U+{:04X} '{c}'", u32::from(c))
}

/// The escapes of Go's `strconv.Unquote` for double-quoted strings; `None` when invalid.
fn unquote(body: &str) -> Option<String> {
    let mut out = String::with_capacity(body.len());
    let mut chars = body.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let simple = match chars.next()? {
            'a' => '\x07',
            'b' => '\x08',
            'f' => '\x0c',
            'n' => '\n',
            'r' => '\r',
            't' => '\t',
            'v' => '\x0b',
            '\\' => '\\',
            '"' => '"',
            'x' => hex_escape(&mut chars, 2)?,
            'u' => hex_escape(&mut chars, 4)?,
            'U' => hex_escape(&mut chars, 8)?,
            d @ '0'..='7' => octal_escape(d, &mut chars)?,
            _ => return None,
        };
        out.push(simple);
    }
    Some(out)
}

fn hex_escape(chars: &mut impl Iterator<Item = char>, digits: usize) -> Option<char> {
    let text: String = chars.take(digits).collect();
    if text.len() != digits {
        return None;
    }
    char::from_u32(u32::from_str_radix(&text, 16).ok()?)
}

fn octal_escape(first: char, chars: &mut impl Iterator<Item = char>) -> Option<char> {
    let mut text = String::from(first);
    text.extend(chars.take(2));
    let value = u32::from_str_radix(&text, 8)
        .ok()
        .filter(|_| text.len() == 3)?;
    (value <= 255).then(|| char::from_u32(value)).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> Vec<TokenKind> {
        action(text, 2)
            .unwrap()
            .tokens
            .into_iter()
            .map(|t| t.kind)
            .collect()
    }

    #[test]
    fn splits_fields_identifiers_and_strings() {
        assert_eq!(
            kinds("{{ checksum \"a\\tb\" .Environment.X }}"),
            vec![
                TokenKind::Identifier("checksum".into()),
                TokenKind::Str {
                    value: "a\tb".into(),
                    quoted: "\"a\\tb\"".into()
                },
                TokenKind::Field("Environment".into()),
                TokenKind::Field("X".into()),
            ]
        );
        assert_eq!(
            kinds("{{`raw\\n`}}"),
            vec![TokenKind::Str {
                value: "raw\\n".into(),
                quoted: "`raw\\n`".into()
            }]
        );
    }

    #[test]
    fn finds_the_right_delimiter_with_and_without_trim_marker() {
        let plain = action("{{.Branch}}x", 2).unwrap();
        assert_eq!((plain.end, plain.trim_right), (11, false));
        let trimmed = action("{{ .Branch -}} x", 2).unwrap();
        assert_eq!((trimmed.end, trimmed.trim_right), (14, true));
        // `-}}` without a space before it is not a trim marker in Go.
        assert_eq!(
            action("{{ .Branch-}}", 2).unwrap_err().to_string(),
            "template: cacheKey:1: bad character U+002D '-'"
        );
    }

    #[test]
    fn comments_render_nothing_and_must_touch_the_delimiter() {
        let c = action("{{/* note */}}", 2).unwrap();
        assert!(c.comment);
        let err = action("{{/* note */ .Branch }}", 2).unwrap_err();
        assert_eq!(
            err.to_string(),
            "template: cacheKey:1: comment ends before closing delimiter"
        );
    }

    #[test]
    fn go_lexer_errors() {
        let msg = |t: &str| action(t, 2).unwrap_err().to_string();
        assert_eq!(msg("{{ .Branch"), "template: cacheKey:1: unclosed action");
        assert_eq!(
            msg("{{ \"abc }}"),
            "template: cacheKey:1: unterminated quoted string"
        );
        assert_eq!(
            msg("{{ `abc }}"),
            "template: cacheKey:1: unterminated raw quoted string"
        );
        assert_eq!(
            msg("{{ .Environment.MY-VAR }}"),
            "template: cacheKey:1: bad character U+002D '-'"
        );
        assert_eq!(msg("{{ \"\\q\" }}"), "template: cacheKey:1: invalid syntax");
        assert_eq!(
            msg("{{ # }}"),
            "template: cacheKey:1: unexpected \"#\" in command"
        );
    }

    #[test]
    fn unquote_handles_go_escapes() {
        assert_eq!(unquote(r#"\x41\u00e9\101\\\""#).as_deref(), Some("AéA\\\""));
        assert_eq!(unquote(r"\400"), None);
        assert_eq!(unquote(r"\x4"), None);
    }
}
