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

/// How deeply an expression may nest: parentheses, `not`s and operators each add a level.
/// The parser and the evaluator recurse once per level, so deeper input is refused with an
/// error instead of exhausting the stack. No real expression comes near it.
pub(crate) const MAX_DEPTH: usize = 100;

/// A parsed expression, ready to be evaluated (or inspected, as `validate` does).
#[derive(Debug)]
pub(crate) struct Expr {
    ast: Ast,
}

/// Parses `src`, reporting the first syntax error.
pub(crate) fn parse(src: &str) -> Result<Expr, ExprError> {
    let tokens = scan(src)?;
    let mut parser = Parser {
        tokens,
        at: 0,
        nesting: 0,
    };
    let (ast, _) = parser.expression()?;
    if let Some(t) = parser.peek_token() {
        return err(
            t.pos,
            format!(
                "unexpected {} after a complete expression",
                t.kind.describe()
            ),
        );
    }
    Ok(Expr { ast })
}

/// Parses and evaluates `src`. `lookup` resolves a variable name to a value, or explains why it
/// cannot.
pub(crate) fn eval(
    src: &str,
    lookup: &mut dyn FnMut(&str) -> Result<Value, String>,
) -> Result<Value, ExprError> {
    parse(src)?.eval(lookup)
}

impl Expr {
    pub fn eval(
        &self,
        lookup: &mut dyn FnMut(&str) -> Result<Value, String>,
    ) -> Result<Value, ExprError> {
        evaluate(&self.ast, lookup)
    }

    /// Every variable the expression reads, with its character position, in source order.
    pub fn variables(&self) -> Vec<(&str, usize)> {
        let mut out = Vec::new();
        variables(&self.ast, &mut out);
        out
    }
}

fn variables<'a>(ast: &'a Ast, out: &mut Vec<(&'a str, usize)>) {
    match ast {
        Ast::Lit(_) => {}
        Ast::Var(name, pos) => out.push((name, *pos)),
        Ast::Not(inner) => variables(inner, out),
        Ast::And(items) | Ast::Or(items) => items.iter().for_each(|i| variables(i, out)),
        Ast::Binary(_, _, l, r) => {
            variables(l, out);
            variables(r, out);
        }
    }
}

fn too_deep<T>(pos: usize) -> Result<T, ExprError> {
    err(
        pos,
        format!(
            "expression nests too deeply (more than {MAX_DEPTH} levels of parentheses, `not` and operators)"
        ),
    )
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
    /// `a and b and c`: a flat list, so long chains add no depth.
    And(Vec<Ast>),
    Or(Vec<Ast>),
    Binary(Tok, usize, Box<Ast>, Box<Ast>),
}

/// A parsed node and its height (the evaluator's recursion depth below it).
type Parsed = (Ast, usize);

struct Parser {
    tokens: Vec<Token>,
    at: usize,
    /// How many `unary` calls are active: the parser's own recursion depth.
    nesting: usize,
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

    /// `height` is checked against [`MAX_DEPTH`] for every node built.
    fn node(&self, pos: usize, height: usize, ast: Ast) -> Result<Parsed, ExprError> {
        if height > MAX_DEPTH {
            return too_deep(pos);
        }
        Ok((ast, height))
    }

    fn pos(&self) -> usize {
        self.peek_token().map_or(self.end_pos(), |t| t.pos)
    }

    fn expression(&mut self) -> Result<Parsed, ExprError> {
        self.chain(&Tok::Or, Self::and, Ast::Or)
    }

    fn and(&mut self) -> Result<Parsed, ExprError> {
        self.chain(&Tok::And, Self::equality, Ast::And)
    }

    /// `operand (op operand)*` for `and`/`or`, as one flat node.
    fn chain(
        &mut self,
        op: &Tok,
        operand: fn(&mut Self) -> Result<Parsed, ExprError>,
        make: fn(Vec<Ast>) -> Ast,
    ) -> Result<Parsed, ExprError> {
        let pos = self.pos();
        let (first, mut height) = operand(self)?;
        if self.peek() != Some(op) {
            return Ok((first, height));
        }
        let mut items = vec![first];
        while self.peek() == Some(op) {
            self.at += 1;
            let (item, h) = operand(self)?;
            height = height.max(h);
            items.push(item);
        }
        self.node(pos, height + 1, make(items))
    }

    fn equality(&mut self) -> Result<Parsed, ExprError> {
        let (mut left, mut height) = self.comparison()?;
        while let Some(Tok::Eq | Tok::Ne | Tok::Builtin(_)) = self.peek() {
            let op = self.next().expect("peeked");
            let (right, h) = self.comparison()?;
            let ast = Ast::Binary(op.kind, op.pos, Box::new(left), Box::new(right));
            (left, height) = self.node(op.pos, height.max(h) + 1, ast)?;
        }
        Ok((left, height))
    }

    fn comparison(&mut self) -> Result<Parsed, ExprError> {
        let (mut left, mut height) = self.unary()?;
        while let Some(Tok::Gt | Tok::Ge | Tok::Lt | Tok::Le) = self.peek() {
            let op = self.next().expect("peeked");
            let (right, h) = self.unary()?;
            let ast = Ast::Binary(op.kind, op.pos, Box::new(left), Box::new(right));
            (left, height) = self.node(op.pos, height.max(h) + 1, ast)?;
        }
        Ok((left, height))
    }

    /// Every nested `not` and `(` passes through here, so this is where recursion is bounded.
    fn unary(&mut self) -> Result<Parsed, ExprError> {
        if self.nesting >= MAX_DEPTH {
            return too_deep(self.pos());
        }
        self.nesting += 1;
        let result = self.unary_inner();
        self.nesting -= 1;
        result
    }

    fn unary_inner(&mut self) -> Result<Parsed, ExprError> {
        if self.peek() == Some(&Tok::Not) {
            let pos = self.pos();
            self.at += 1;
            let (inner, height) = self.unary()?;
            return self.node(pos, height + 1, Ast::Not(Box::new(inner)));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Parsed, ExprError> {
        let end = self.end_pos();
        let Some(t) = self.next() else {
            return err(end, "expected an expression");
        };
        let lit = |v| Ok((Ast::Lit(v), 0));
        match t.kind {
            Tok::True => lit(Value::Bool(true)),
            Tok::False => lit(Value::Bool(false)),
            Tok::Num(n) => lit(Value::Int(n)),
            Tok::Str(s) => lit(Value::Str(s)),
            Tok::Pattern(p) => match Regex::new(&format!("^(?:{p})$")) {
                Ok(re) => lit(Value::Pattern(re)),
                Err(_) => err(t.pos, format!("syntax error in pattern /{p}/")),
            },
            Tok::Ident(name) => Ok((Ast::Var(name, t.pos), 0)),
            Tok::LParen => {
                let inner = self.expression()?;
                match self.next() {
                    Some(Token {
                        kind: Tok::RParen, ..
                    }) => Ok(inner),
                    _ => err(t.pos, "this ( is never closed"),
                }
            }
            other => err(
                t.pos,
                format!("expected an expression, found {}", other.describe()),
            ),
        }
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
        // Short-circuit, returning the operand that decided: the first falsy one (`and`) or
        // truthy one (`or`), else the last.
        Ast::And(items) | Ast::Or(items) => {
            let stop_when = matches!(ast, Ast::Or(_));
            let mut last = Value::Undefined;
            for item in items {
                last = evaluate(item, lookup)?;
                if last.truthy() == stop_when {
                    break;
                }
            }
            last
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

    /// See: review repro 9 — 40,000 `not`s or 100,000 `(` overflowed the stack (exit 134).
    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let nots = format!("{}true", "not ".repeat(40_000));
        assert!(run(&nots).unwrap_err().message.contains("nests too deeply"));
        let parens = "(".repeat(100_000);
        assert!(
            run(&parens)
                .unwrap_err()
                .message
                .contains("nests too deeply")
        );
        let compare = vec!["1"; 5_000].join(" == ");
        assert!(
            run(&compare)
                .unwrap_err()
                .message
                .contains("nests too deeply")
        );
        let within = format!("{}true{}", "(not ".repeat(49), ")".repeat(49));
        assert!(!truth(&within), "49 nots of true");
    }

    #[test]
    fn long_and_or_chains_are_flat() {
        let ors = vec!["false"; 10_000].join(" or ") + " or 7";
        assert!(matches!(run(&ors), Ok(Value::Int(7))));
        let ands = vec!["1"; 10_000].join(" and ");
        assert!(matches!(run(&ands), Ok(Value::Int(1))));
    }

    #[test]
    fn variables_are_listed_in_order() {
        let e = parse(r#"pipeline.git.branch == "x" or not (parameters.a and matrix.os)"#).unwrap();
        let names: Vec<&str> = e.variables().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["pipeline.git.branch", "parameters.a", "matrix.os"]);
    }
}
