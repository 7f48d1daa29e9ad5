//! CircleCI's expression language (the `expr` library): `pipeline.git.branch == "main" and
//! not (pipeline.trigger.type starts-with "api")`. Used bare in workflow `when`/`unless` and
//! string `filters`, and inside `<< >>` everywhere else.
//!
//! Semantics follow the library: `and`/`or` short-circuit and return an operand; only `false`
//! and undefined are falsy; `==`/`!=` across types are simply unequal; comparisons need
//! integers; `starts-with`/`contains` need strings; `matches` needs a string and a `/pattern/`
//! (RE2 syntax, whole-string match). A variable whose value is unset is "undefined": it makes
//! any comparison undefined and counts as false.
//!
//! Variable lookup is delegated to the caller; this module knows no config.

use regex::Regex;

/// A value inside an expression.
#[derive(Clone, Debug)]
pub(crate) enum Value {
    Undefined,
    Bool(bool),
    Int(i64),
    Str(String),
    Pattern(Regex),
}

impl Value {
    pub fn truthy(&self) -> bool {
        !matches!(self, Value::Bool(false) | Value::Undefined)
    }

    fn equals(&self, other: &Value) -> bool {
        match (self, other) {
            (Value::Bool(a), Value::Bool(b)) => a == b,
            (Value::Int(a), Value::Int(b)) => a == b,
            (Value::Str(a), Value::Str(b)) => a == b,
            (Value::Pattern(a), Value::Pattern(b)) => a.as_str() == b.as_str(),
            _ => false,
        }
    }
}

/// An error with the character position it refers to inside the expression.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ExprError {
    pub message: String,
    pub pos: usize,
}

fn err<T>(pos: usize, message: impl Into<String>) -> Result<T, ExprError> {
    Err(ExprError {
        message: message.into(),
        pos,
    })
}

/// Parses and evaluates `src`. `lookup` resolves a variable name to a value, or explains why it
/// cannot.
pub(crate) fn eval(
    src: &str,
    lookup: &mut dyn FnMut(&str) -> Result<Value, String>,
) -> Result<Value, ExprError> {
    let tokens = scan(src)?;
    let mut parser = Parser { tokens, at: 0 };
    let ast = parser.expression()?;
    if let Some(t) = parser.peek_token() {
        return err(
            t.pos,
            format!(
                "unexpected {} after a complete expression",
                t.kind.describe()
            ),
        );
    }
    evaluate(&ast, lookup)
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    LParen,
    RParen,
    Not,
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
    And,
    Or,
    True,
    False,
    Num(i64),
    Str(String),
    Pattern(String),
    Ident(String),
    /// `starts-with`, `matches`, `contains`
    Builtin(String),
}

impl Tok {
    fn describe(&self) -> String {
        match self {
            Tok::Num(n) => format!("number {n}"),
            Tok::Str(s) => format!("string {s:?}"),
            Tok::Pattern(p) => format!("pattern /{p}/"),
            Tok::Ident(i) | Tok::Builtin(i) => format!("`{i}`"),
            other => format!("`{}`", symbol(other)),
        }
    }
}

fn symbol(t: &Tok) -> &'static str {
    match t {
        Tok::LParen => "(",
        Tok::RParen => ")",
        Tok::Not => "not",
        Tok::Eq => "==",
        Tok::Ne => "!=",
        Tok::Gt => ">",
        Tok::Ge => ">=",
        Tok::Lt => "<",
        Tok::Le => "<=",
        Tok::And => "and",
        Tok::Or => "or",
        Tok::True => "true",
        Tok::False => "false",
        _ => "?",
    }
}

#[derive(Clone, Debug)]
struct Token {
    kind: Tok,
    pos: usize,
}

const MAX_PATTERN_LENGTH: usize = 256;

fn scan(src: &str) -> Result<Vec<Token>, ExprError> {
    let chars: Vec<char> = src.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        i += 1;
        let next = chars.get(i).copied();
        let kind = match c {
            ' ' | '\t' | '\r' | '\n' => continue,
            '(' => Tok::LParen,
            ')' => Tok::RParen,
            '!' if next == Some('=') => {
                i += 1;
                Tok::Ne
            }
            '!' => Tok::Not,
            '=' if next == Some('=') => {
                i += 1;
                Tok::Eq
            }
            '=' => return err(i, "incomplete token, expected \"==\""),
            '>' | '<' => {
                let eq = next == Some('=');
                if eq {
                    i += 1;
                }
                match (c, eq) {
                    ('>', true) => Tok::Ge,
                    ('>', false) => Tok::Gt,
                    (_, true) => Tok::Le,
                    _ => Tok::Lt,
                }
            }
            '"' => Tok::Str(delimited(&chars, &mut i, start, '"', "string")?),
            '/' => {
                let p = delimited(&chars, &mut i, start, '/', "pattern")?;
                if p.chars().count() > MAX_PATTERN_LENGTH {
                    return err(start, "pattern length exceeded, limit is 256 characters");
                }
                Tok::Pattern(p)
            }
            c if c.is_ascii_digit() => {
                while chars.get(i).is_some_and(char::is_ascii_digit) {
                    i += 1;
                }
                let text: String = chars[start..i].iter().collect();
                match text.parse() {
                    Ok(n) => Tok::Num(n),
                    Err(_) => {
                        return err(
                            start,
                            "invalid numeric literal, numbers can range from 0 to 2^63 - 1",
                        );
                    }
                }
            }
            c if c.is_ascii_alphabetic() => {
                let tail = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '?');
                loop {
                    match chars.get(i) {
                        Some(&c) if tail(c) => i += 1,
                        Some('.') if chars.get(i + 1).is_some_and(|&c| tail(c)) => i += 1,
                        _ => break,
                    }
                }
                let word: String = chars[start..i].iter().collect();
                keyword(word)
            }
            other => return err(start, format!("unexpected character {other:?}")),
        };
        tokens.push(Token { kind, pos: start });
    }
    Ok(tokens)
}

fn keyword(word: String) -> Tok {
    match word.as_str() {
        "and" | "AND" => Tok::And,
        "or" | "OR" => Tok::Or,
        "not" | "NOT" => Tok::Not,
        "true" | "TRUE" => Tok::True,
        "false" | "FALSE" => Tok::False,
        "starts-with" | "matches" | "contains" => Tok::Builtin(word),
        _ => Tok::Ident(word),
    }
}

/// Reads up to the closing `close`; `\close` and (in strings) `\\` are escapes.
fn delimited(
    chars: &[char],
    i: &mut usize,
    start: usize,
    close: char,
    what: &str,
) -> Result<String, ExprError> {
    let mut out = String::new();
    while let Some(&c) = chars.get(*i) {
        if c == close {
            *i += 1;
            return Ok(out);
        }
        let next = chars.get(*i + 1).copied();
        if c == '\\' && (next == Some(close) || (close == '"' && next == Some('\\'))) {
            out.push(next.expect("checked above"));
            *i += 2;
            continue;
        }
        out.push(c);
        *i += 1;
    }
    err(start, format!("unterminated {what} starting here"))
}

#[derive(Debug)]
enum Ast {
    Lit(Value),
    Var(String, usize),
    Not(Box<Ast>),
    And(Box<Ast>, Box<Ast>),
    Or(Box<Ast>, Box<Ast>),
    Binary(Tok, usize, Box<Ast>, Box<Ast>),
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
}

impl Parser {
    fn peek_token(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn peek(&self) -> Option<&Tok> {
        self.peek_token().map(|t| &t.kind)
    }

    fn end_pos(&self) -> usize {
        self.tokens.last().map_or(0, |t| t.pos + 1)
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.at).cloned();
        self.at += 1;
        t
    }

    fn expression(&mut self) -> Result<Ast, ExprError> {
        let mut left = self.and()?;
        while self.peek() == Some(&Tok::Or) {
            self.at += 1;
            left = Ast::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Ast, ExprError> {
        let mut left = self.equality()?;
        while self.peek() == Some(&Tok::And) {
            self.at += 1;
            left = Ast::And(Box::new(left), Box::new(self.equality()?));
        }
        Ok(left)
    }

    fn equality(&mut self) -> Result<Ast, ExprError> {
        let mut left = self.comparison()?;
        while let Some(Tok::Eq | Tok::Ne | Tok::Builtin(_)) = self.peek() {
            let op = self.next().expect("peeked");
            let right = self.comparison()?;
            left = Ast::Binary(op.kind, op.pos, Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn comparison(&mut self) -> Result<Ast, ExprError> {
        let mut left = self.unary()?;
        while let Some(Tok::Gt | Tok::Ge | Tok::Lt | Tok::Le) = self.peek() {
            let op = self.next().expect("peeked");
            let right = self.unary()?;
            left = Ast::Binary(op.kind, op.pos, Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Ast, ExprError> {
        if self.peek() == Some(&Tok::Not) {
            self.at += 1;
            return Ok(Ast::Not(Box::new(self.unary()?)));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Ast, ExprError> {
        let end = self.end_pos();
        let Some(t) = self.next() else {
            return err(end, "expected an expression");
        };
        Ok(match t.kind {
            Tok::True => Ast::Lit(Value::Bool(true)),
            Tok::False => Ast::Lit(Value::Bool(false)),
            Tok::Num(n) => Ast::Lit(Value::Int(n)),
            Tok::Str(s) => Ast::Lit(Value::Str(s)),
            Tok::Pattern(p) => match Regex::new(&format!("^(?:{p})$")) {
                Ok(re) => Ast::Lit(Value::Pattern(re)),
                Err(_) => return err(t.pos, format!("syntax error in pattern /{p}/")),
            },
            Tok::Ident(name) => Ast::Var(name, t.pos),
            Tok::LParen => {
                let inner = self.expression()?;
                match self.next() {
                    Some(Token {
                        kind: Tok::RParen, ..
                    }) => inner,
                    _ => return err(t.pos, "this ( is never closed"),
                }
            }
            other => {
                return err(
                    t.pos,
                    format!("expected an expression, found {}", other.describe()),
                );
            }
        })
    }
}

fn evaluate(
    ast: &Ast,
    lookup: &mut dyn FnMut(&str) -> Result<Value, String>,
) -> Result<Value, ExprError> {
    Ok(match ast {
        Ast::Lit(v) => v.clone(),
        Ast::Var(name, pos) => lookup(name).map_err(|message| ExprError { message, pos: *pos })?,
        Ast::Not(inner) => Value::Bool(!evaluate(inner, lookup)?.truthy()),
        Ast::And(l, r) => {
            let left = evaluate(l, lookup)?;
            if left.truthy() {
                evaluate(r, lookup)?
            } else {
                left
            }
        }
        Ast::Or(l, r) => {
            let left = evaluate(l, lookup)?;
            if left.truthy() {
                left
            } else {
                evaluate(r, lookup)?
            }
        }
        Ast::Binary(op, pos, l, r) => {
            let left = evaluate(l, lookup)?;
            let right = evaluate(r, lookup)?;
            binary(op, *pos, left, right)?
        }
    })
}

fn binary(op: &Tok, pos: usize, left: Value, right: Value) -> Result<Value, ExprError> {
    if matches!(left, Value::Undefined) || matches!(right, Value::Undefined) {
        return Ok(Value::Undefined);
    }
    let numbers = || match (&left, &right) {
        (Value::Int(a), Value::Int(b)) => Ok((*a, *b)),
        _ => err(
            pos,
            format!("expected numeric operands to \"{}\" operator", symbol(op)),
        ),
    };
    Ok(Value::Bool(match op {
        Tok::Eq => left.equals(&right),
        Tok::Ne => !left.equals(&right),
        Tok::Gt => numbers().map(|(a, b)| a > b)?,
        Tok::Ge => numbers().map(|(a, b)| a >= b)?,
        Tok::Lt => numbers().map(|(a, b)| a < b)?,
        Tok::Le => numbers().map(|(a, b)| a <= b)?,
        Tok::Builtin(name) => builtin(name, pos, &left, &right)?,
        _ => return err(pos, "unknown operator"),
    }))
}

fn builtin(name: &str, pos: usize, left: &Value, right: &Value) -> Result<bool, ExprError> {
    if name == "matches" {
        let Value::Pattern(re) = right else {
            return err(
                pos,
                "expected the right operand to \"matches\" operator to be a pattern (/regex/)",
            );
        };
        let Value::Str(s) = left else {
            return err(pos, "expected string operands to \"matches\" operator");
        };
        return Ok(re.is_match(s));
    }
    match (left, right) {
        (Value::Str(a), Value::Str(b)) if name == "starts-with" => Ok(a.starts_with(b.as_str())),
        (Value::Str(a), Value::Str(b)) => Ok(a.contains(b.as_str())),
        _ => err(
            pos,
            format!("expected string operands to \"{name}\" operator"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(src: &str) -> Result<Value, ExprError> {
        eval(src, &mut |name| match name {
            "pipeline.git.branch" => Ok(Value::Str("main".into())),
            "pipeline.number" => Ok(Value::Int(7)),
            "pipeline.git.tag" => Ok(Value::Undefined),
            _ => Err(format!("unknown {name}")),
        })
    }

    fn truth(src: &str) -> bool {
        run(src).unwrap().truthy()
    }

    #[test]
    fn operators_and_precedence() {
        assert!(truth(
            r#"pipeline.git.branch == "main" and pipeline.number > 3"#
        ));
        assert!(!truth(r#"not pipeline.git.branch == "dev""#));
        assert!(truth(r#"not (pipeline.git.branch == "dev")"#));
        assert!(truth(r#"pipeline.git.branch starts-with "ma""#));
        assert!(truth(r#"pipeline.git.branch matches /ma.*/"#));
        assert!(!truth(r#"pipeline.git.branch matches /ma/"#));
        assert!(truth(r#"1 != "1""#));
        assert!(truth("0"), "only false and undefined are falsy");
    }

    #[test]
    fn and_or_return_operands() {
        assert!(matches!(
            run(r#"pipeline.git.branch == "main" and 10 or 1"#),
            Ok(Value::Int(10))
        ));
        assert!(matches!(run(r#"pipeline.git.tag or "none""#), Ok(Value::Str(s)) if s == "none"));
        assert!(matches!(
            run("pipeline.git.tag == pipeline.git.tag"),
            Ok(Value::Undefined)
        ));
    }

    #[test]
    fn errors_have_positions() {
        assert_eq!(run("1 > \"a\"").unwrap_err().pos, 2);
        assert!(run("foo").unwrap_err().message.contains("unknown foo"));
        assert!(run("(1 == 1").is_err());
        assert!(run("1 = 1").is_err());
        assert!(run("\"open").is_err());
        assert!(run("1 == 1 2").is_err());
    }
}
