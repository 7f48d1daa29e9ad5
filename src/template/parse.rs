//! The parser of cache-key templates: text and `{{ ... }}` actions become [`Piece`]s. It knows
//! which functions and operand forms CircleCI's key language has; it evaluates nothing.

use super::TemplateError;
use super::lex::{self, Token, TokenKind};

/// A parsed template: literal text and actions, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Piece {
    Text(String),
    Action(Action),
}

/// One action, with what Go's error messages say about it: where its command starts (a byte
/// offset in the template) and its text as Go prints a node (`checksum "x"`, `.Environment.X`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Action {
    pub pos: usize,
    pub node: String,
    pub command: Command,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Command {
    /// `.Branch`, `.Environment.NAME`: the names of the chain, without dots.
    Field(Vec<String>),
    /// A function with its string arguments; arity is checked when rendering, as Go does.
    Call { func: Func, args: Vec<String> },
    /// A quoted string on its own renders as itself.
    Literal(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Func {
    Checksum,
    Epoch,
    Arch,
}

impl Func {
    fn from_name(name: &str) -> Option<Func> {
        match name {
            "checksum" => Some(Func::Checksum),
            "epoch" => Some(Func::Epoch),
            "arch" => Some(Func::Arch),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Func::Checksum => "checksum",
            Func::Epoch => "epoch",
            Func::Arch => "arch",
        }
    }

    pub fn arity(self) -> usize {
        match self {
            Func::Checksum => 1,
            Func::Epoch | Func::Arch => 0,
        }
    }
}

/// Go's predefined template functions: defined (so not "not defined"), but not evaluated here.
const GO_BUILTINS: &[&str] = &[
    "and", "call", "html", "index", "slice", "js", "len", "not", "or", "print", "printf",
    "println", "urlquery", "eq", "ge", "gt", "le", "lt", "ne",
];

pub(super) const SUPPORTED: &str = "cache keys can use {{ checksum \"FILE\" }}, {{ epoch }}, \
     {{ arch }}, {{ .Branch }}, {{ .Revision }}, {{ .BuildNum }}, {{ .CheckoutKey }} and \
     {{ .Environment.NAME }}";

pub(super) fn parse(text: &str) -> Result<Vec<Piece>, TemplateError> {
    let mut pieces = Vec::new();
    let mut pos = 0;
    let mut trim_left_of_text = false;
    loop {
        let open = text[pos..].find("{{").map(|i| pos + i);
        let mut literal = &text[pos..open.unwrap_or(text.len())];
        if trim_left_of_text {
            literal = literal.trim_start_matches(lex::is_space);
        }
        let Some(open) = open else {
            push_text(&mut pieces, literal);
            return Ok(pieces);
        };
        let trims_left = has_left_trim_marker(&text[open + 2..]);
        if trims_left {
            literal = literal.trim_end_matches(lex::is_space);
        }
        push_text(&mut pieces, literal);
        let body = open + 2 + if trims_left { 2 } else { 0 };
        let action = lex::action(text, body)?;
        if !action.comment {
            pieces.push(Piece::Action(command(text, open, action.tokens)?));
        }
        pos = action.end;
        trim_left_of_text = action.trim_right;
    }
}

fn push_text(pieces: &mut Vec<Piece>, text: &str) {
    if !text.is_empty() {
        pieces.push(Piece::Text(text.to_string()));
    }
}

/// `{{- ` (the marker needs a space after it: `{{-3}}` is the number -3 in Go).
fn has_left_trim_marker(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next() == Some('-') && chars.next().is_some_and(lex::is_space)
}

fn command(text: &str, open: usize, tokens: Vec<Token>) -> Result<Action, TemplateError> {
    let error = |pos: usize, message: String| TemplateError::parse(text, pos, message);
    let Some(first) = tokens.first() else {
        return Err(error(open, "missing value for command".into()));
    };
    if let Some(bad) = tokens.iter().find(|t| is_unsupported(t)) {
        return Err(unsupported(text, bad));
    }
    let pos = first.pos;
    match &first.kind {
        TokenKind::Identifier(name) => call(text, name, &tokens),
        TokenKind::Field(_) => field_chain(text, &tokens),
        TokenKind::Str { value, quoted } if tokens.len() == 1 => Ok(Action {
            pos,
            node: quoted.clone(),
            command: Command::Literal(value.clone()),
        }),
        TokenKind::Str { quoted, .. } => Err(error(
            pos,
            format!("can't give argument to non-function {quoted}"),
        )),
        TokenKind::Dot => Err(error(
            pos,
            "localci does not support printing \".\" in cache keys".into(),
        )
        .with_hint(SUPPORTED)),
        TokenKind::Keyword(_) | TokenKind::Unsupported { .. } => Err(unsupported(text, first)),
    }
}

fn is_unsupported(token: &Token) -> bool {
    matches!(
        token.kind,
        TokenKind::Keyword(_) | TokenKind::Unsupported { .. }
    )
}

/// Keywords, numbers, variables, pipes ...: valid Go, but not part of any cache key we know.
fn unsupported(text: &str, token: &Token) -> TemplateError {
    let what = match &token.kind {
        TokenKind::Keyword(word) => format!("{{{{{word}}}}}"),
        TokenKind::Unsupported { what, text } => format!("{what} ({text})"),
        _ => "this".to_string(),
    };
    let message = format!("localci does not support {what} in cache keys");
    TemplateError::parse(text, token.pos, message).with_hint(SUPPORTED)
}

fn call(text: &str, name: &str, tokens: &[Token]) -> Result<Action, TemplateError> {
    let pos = tokens[0].pos;
    let Some(func) = Func::from_name(name) else {
        let message = if GO_BUILTINS.contains(&name) {
            format!("localci does not support the function {name:?} in cache keys")
        } else {
            format!("function {name:?} not defined")
        };
        return Err(TemplateError::parse(text, pos, message).with_hint(SUPPORTED));
    };
    let mut node = name.to_string();
    let mut args = Vec::new();
    for token in &tokens[1..] {
        let TokenKind::Str { value, quoted } = &token.kind else {
            return Err(TemplateError::parse(
                text,
                token.pos,
                format!("localci only accepts quoted strings as arguments of {name}"),
            )
            .with_hint(format!("write it as {{{{ {name} \"path/to/file\" }}}}")));
        };
        node.push(' ');
        node.push_str(quoted);
        args.push(value.clone());
    }
    Ok(Action {
        pos,
        node,
        command: Command::Call { func, args },
    })
}

/// `.Environment.X` lexes as two adjacent fields; a space between them makes two operands.
fn field_chain(text: &str, tokens: &[Token]) -> Result<Action, TemplateError> {
    let mut names = Vec::new();
    let mut end = tokens[0].pos;
    for token in tokens {
        match &token.kind {
            TokenKind::Field(name) if token.pos == end => {
                end += 1 + name.len();
                names.push(name.clone());
            }
            _ => {
                let chain = &text[tokens[0].pos..end];
                return Err(TemplateError::parse(
                    text,
                    token.pos,
                    format!("{chain} has arguments but cannot be invoked as function"),
                ));
            }
        }
    }
    Ok(Action {
        pos: tokens[0].pos,
        node: text[tokens[0].pos..end].to_string(),
        command: Command::Field(names),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn action(text: &str) -> Action {
        match parse(text).unwrap().as_slice() {
            [Piece::Action(a)] => a.clone(),
            other => panic!("expected one action, got {other:?}"),
        }
    }

    fn error(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    #[test]
    fn text_and_actions_alternate() {
        let pieces = parse("v1-{{ .Branch }}-{{checksum \"a\"}}").unwrap();
        assert_eq!(pieces.len(), 4);
        assert_eq!(pieces[0], Piece::Text("v1-".into()));
        assert_eq!(pieces[2], Piece::Text("-".into()));
    }

    #[test]
    fn actions_record_go_node_text_and_position() {
        let a = action("{{ checksum \"x\" }}");
        assert_eq!((a.pos, a.node.as_str()), (3, "checksum \"x\""));
        let f = action("{{.Environment.HOME}}");
        assert_eq!(
            f.command,
            Command::Field(vec!["Environment".into(), "HOME".into()])
        );
        assert_eq!(f.node, ".Environment.HOME");
    }

    #[test]
    fn trim_markers_eat_whitespace_on_their_side_only() {
        let pieces = parse("a \n {{- .Branch -}} \n b {{ .Revision }} c").unwrap();
        assert_eq!(pieces[0], Piece::Text("a".into()));
        assert_eq!(pieces[2], Piece::Text("b ".into()));
        assert_eq!(pieces[4], Piece::Text(" c".into()));
    }

    #[test]
    fn comments_disappear() {
        assert_eq!(
            parse("a{{/* why */}}b").unwrap(),
            vec![Piece::Text("a".into()), Piece::Text("b".into())]
        );
    }

    #[test]
    fn unknown_functions_fail_like_go() {
        assert_eq!(
            error("v1-{{ parameters.x }}"),
            "template: cacheKey:1: function \"parameters\" not defined"
        );
        assert_eq!(
            error("a\nb{{ nope }}"),
            "template: cacheKey:2: function \"nope\" not defined"
        );
    }

    #[test]
    fn unsupported_go_forms_are_named() {
        assert_eq!(
            error("{{ printf \"%s\" .Branch }}"),
            "template: cacheKey:1: localci does not support the function \"printf\" in cache keys"
        );
        assert_eq!(
            error("{{ if .Branch }}x{{ end }}"),
            "template: cacheKey:1: localci does not support {{if}} in cache keys"
        );
        assert_eq!(
            error("{{ .Branch | checksum }}"),
            "template: cacheKey:1: localci does not support pipelines (|) in cache keys"
        );
        assert_eq!(
            error("{{ 42 }}"),
            "template: cacheKey:1: localci does not support numbers (42) in cache keys"
        );
        assert_eq!(
            error("{{ $x }}"),
            "template: cacheKey:1: localci does not support variables ($x) in cache keys"
        );
        assert_eq!(
            error("{{ . }}"),
            "template: cacheKey:1: localci does not support printing \".\" in cache keys"
        );
    }

    #[test]
    fn malformed_commands() {
        assert_eq!(
            error("{{ }}"),
            "template: cacheKey:1: missing value for command"
        );
        assert_eq!(
            error("{{ checksum .Environment.F }}"),
            "template: cacheKey:1: localci only accepts quoted strings as arguments of checksum"
        );
        assert_eq!(
            error("{{ .Environment .X }}"),
            "template: cacheKey:1: .Environment has arguments but cannot be invoked as function"
        );
        assert_eq!(
            error("{{ \"a\" \"b\" }}"),
            "template: cacheKey:1: can't give argument to non-function \"a\""
        );
    }
}
