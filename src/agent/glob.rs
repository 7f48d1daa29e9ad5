//! `circleci tests glob`: CircleCI's glob patterns, matched against the file system.
//!
//! The rules are those of "Use the CircleCI CLI to split tests", section "Glob test files":
//! `*` and `?` never cross a `/`, `**` as a whole path segment matches any number of folders
//! (zero included), `[abc]`/`[a-z]`/`[!a]` match one character, `{a,b}` matches any of its
//! alternatives. Results are files only (folders are not tests), sorted and without duplicates.
//! Paths keep the form of the pattern (relative patterns give paths relative to the current
//! folder, `./x` keeps its `./`).
//!
//! Shared by the in-container agent (`agent/main.rs`, std only) and the library's tests: no
//! crate imports here. It must not follow symlinked folders during `**` (a link to `..` would
//! never end) and must bound brace expansion (a pattern is user input).

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

/// At most this many patterns after brace expansion, so `{a,b}{a,b}...` cannot exhaust memory.
const MAX_ALTERNATIVES: usize = 4096;
/// `**` descends at most this deep.
const MAX_DEPTH: usize = 256;

/// A pattern that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PatternError {
    pub(crate) pattern: String,
    pub(crate) reason: &'static str,
}

impl fmt::Display for PatternError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid glob pattern {:?}: {}",
            self.pattern, self.reason
        )
    }
}

/// Every file matching any of `patterns`, sorted, each once. Folders that cannot be read are
/// skipped, as a shell's glob does.
pub(crate) fn glob(patterns: &[String], cwd: &Path) -> Result<Vec<String>, PatternError> {
    let mut found = Vec::new();
    for pattern in patterns {
        for alternative in expand_braces(pattern)? {
            let segments = compile(&alternative).map_err(|reason| PatternError {
                pattern: pattern.clone(),
                reason,
            })?;
            walk(cwd, &segments, &mut found);
        }
    }
    found.sort();
    found.dedup();
    Ok(found)
}

/// One `/`-separated part of a pattern.
#[derive(Debug, Clone, PartialEq)]
enum Segment {
    /// Text without wildcards; the empty literal stands for the root of an absolute pattern.
    Literal(String),
    /// `**`: zero or more folders.
    AnyDepth,
    Wild(Vec<Token>),
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Char(char),
    AnyChar,
    Star,
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

fn compile(pattern: &str) -> Result<Vec<Segment>, &'static str> {
    if pattern.is_empty() {
        return Err("the pattern is empty");
    }
    let mut segments: Vec<Segment> = pattern
        .split('/')
        .map(parse_segment)
        .collect::<Result<_, _>>()?;
    // `**/**` is `**`; walking each would repeat the same paths once per way to split them.
    segments.dedup_by(|b, a| *a == Segment::AnyDepth && *b == Segment::AnyDepth);
    Ok(segments)
}

fn parse_segment(text: &str) -> Result<Segment, &'static str> {
    if text == "**" {
        return Ok(Segment::AnyDepth);
    }
    let tokens = tokenize(text)?;
    if tokens.iter().all(|t| matches!(t, Token::Char(_))) {
        let literal = tokens
            .iter()
            .map(|t| match t {
                Token::Char(c) => *c,
                _ => unreachable!("checked above: all tokens are characters"),
            })
            .collect();
        return Ok(Segment::Literal(literal));
    }
    Ok(Segment::Wild(tokens))
}

fn tokenize(text: &str) -> Result<Vec<Token>, &'static str> {
    let mut chars = text.chars().peekable();
    let mut tokens = Vec::new();
    while let Some(c) = chars.next() {
        let token = match c {
            '\\' => Token::Char(chars.next().ok_or("it ends with a lone `\\`")?),
            '?' => Token::AnyChar,
            // `**` inside a segment (`a**b`) cannot cross folders: it is a `*`.
            '*' if tokens.last() == Some(&Token::Star) => continue,
            '*' => Token::Star,
            '[' => class(&mut chars)?,
            other => Token::Char(other),
        };
        tokens.push(token);
    }
    Ok(tokens)
}

/// The rest of a `[...]` class, after its `[`.
fn class(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Result<Token, &'static str> {
    let negated = matches!(chars.peek(), Some('!' | '^'));
    if negated {
        chars.next();
    }
    let mut ranges = Vec::new();
    let mut first = true;
    loop {
        let c = chars.next().ok_or("a `[` is not closed by `]`")?;
        if c == ']' && !first {
            break;
        }
        first = false;
        let low = if c == '\\' {
            chars.next().ok_or("a `[` is not closed by `]`")?
        } else {
            c
        };
        let mut high = low;
        if chars.peek() == Some(&'-') {
            chars.next();
            match chars.next().ok_or("a `[` is not closed by `]`")? {
                ']' => {
                    ranges.push((low, low));
                    ranges.push(('-', '-'));
                    break;
                }
                '\\' => high = chars.next().ok_or("a `[` is not closed by `]`")?,
                end => high = end,
            }
            if high < low {
                return Err("a `[a-z]` range ends before it starts");
            }
        }
        ranges.push((low, high));
    }
    Ok(Token::Class { negated, ranges })
}

/// Wildcard matching with one backtrack point per `*` (linear in practice, never exponential).
fn match_tokens(tokens: &[Token], name: &[char]) -> bool {
    let (mut t, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        match tokens.get(t) {
            Some(Token::Star) => {
                star = Some((t, n));
                t += 1;
            }
            Some(token) if one(token, name[n]) => {
                t += 1;
                n += 1;
            }
            _ => match star {
                Some((st, sn)) => {
                    star = Some((st, sn + 1));
                    t = st + 1;
                    n = sn + 1;
                }
                None => return false,
            },
        }
    }
    tokens[t..].iter().all(|t| *t == Token::Star)
}

fn one(token: &Token, c: char) -> bool {
    match token {
        Token::Char(want) => *want == c,
        Token::AnyChar => c != '/',
        Token::Star => false,
        Token::Class { negated, ranges } => {
            ranges.iter().any(|(lo, hi)| (*lo..=*hi).contains(&c)) != *negated
        }
    }
}

/// `{a,b}` alternatives, outermost first, nested braces included; `\{` is no brace.
pub(crate) fn expand_braces(pattern: &str) -> Result<Vec<String>, PatternError> {
    let error = |reason| PatternError {
        pattern: pattern.to_string(),
        reason,
    };
    let mut done = Vec::new();
    let mut todo = vec![pattern.to_string()];
    while let Some(p) = todo.pop() {
        match first_brace(&p).map_err(error)? {
            None => done.push(p),
            Some(Brace {
                open,
                close,
                commas,
            }) => {
                let mut cuts = vec![open];
                cuts.extend(commas);
                cuts.push(close);
                for pair in cuts.windows(2) {
                    let alternative = &p[pair[0] + 1..pair[1]];
                    todo.push(format!("{}{alternative}{}", &p[..open], &p[close + 1..]));
                }
            }
        }
        if done.len() + todo.len() > MAX_ALTERNATIVES {
            return Err(error(
                "its `{...}` alternatives expand to too many patterns",
            ));
        }
    }
    done.reverse();
    Ok(done)
}

/// A top-level `{...}`: byte offsets of its `{`, its `}` and its top-level commas.
struct Brace {
    open: usize,
    close: usize,
    commas: Vec<usize>,
}

/// The first top-level `{...}` of a pattern.
fn first_brace(p: &str) -> Result<Option<Brace>, &'static str> {
    let mut open = None;
    let mut depth = 0usize;
    let mut commas = Vec::new();
    let mut escaped = false;
    let mut in_class = false;
    for (i, c) in p.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' => escaped = true,
            '[' if !in_class => in_class = true,
            ']' if in_class => in_class = false,
            _ if in_class => {}
            '{' => {
                if depth == 0 {
                    open = Some(i);
                    commas.clear();
                }
                depth += 1;
            }
            '}' if depth > 0 => {
                depth -= 1;
                if depth == 0 {
                    return Ok(open.map(|open| Brace {
                        open,
                        close: i,
                        commas,
                    }));
                }
            }
            ',' if depth == 1 => commas.push(i),
            _ => {}
        }
    }
    if depth > 0 {
        return Err("a `{` is not closed by `}`");
    }
    Ok(None)
}

/// Matches the segments from `dir` on, pushing the files found (as `shown` paths).
fn walk(cwd: &Path, segments: &[Segment], found: &mut Vec<String>) {
    let (start, shown, rest) = match segments.first() {
        Some(Segment::Literal(root)) if root.is_empty() => {
            (PathBuf::from("/"), "/".to_string(), &segments[1..])
        }
        _ => (cwd.to_path_buf(), String::new(), segments),
    };
    descend(&start, &shown, rest, 0, found);
}

fn descend(dir: &Path, shown: &str, segments: &[Segment], depth: usize, found: &mut Vec<String>) {
    let Some((segment, rest)) = segments.split_first() else {
        if fs::metadata(dir).is_ok_and(|m| m.is_file()) && !shown.is_empty() {
            found.push(shown.to_string());
        }
        return;
    };
    match segment {
        Segment::Literal(name) if name.is_empty() => descend(dir, shown, rest, depth, found),
        Segment::Literal(name) => {
            let path = dir.join(name);
            if fs::symlink_metadata(&path).is_ok() {
                descend(&path, &join(shown, name), rest, depth, found);
            }
        }
        Segment::AnyDepth => {
            // Zero folders, then one more folder (`**` stays); a trailing `**` also matches
            // the files it reaches.
            descend(dir, shown, rest, depth, found);
            if depth >= MAX_DEPTH {
                return;
            }
            for (name, is_real_dir) in entries(dir) {
                let (path, shown) = (dir.join(&name), join(shown, &name));
                if is_real_dir {
                    descend(&path, &shown, segments, depth + 1, found);
                } else if rest.is_empty() {
                    descend(&path, &shown, rest, depth, found);
                }
            }
        }
        Segment::Wild(tokens) => {
            for (name, _) in entries(dir) {
                if match_tokens(tokens, &name.chars().collect::<Vec<_>>()) {
                    descend(&dir.join(&name), &join(shown, &name), rest, depth, found);
                }
            }
        }
    }
}

/// Names in a folder (UTF-8 only: a test list is text), with whether each is a folder that
/// is not a symlink. An unreadable folder has no entries.
fn entries(dir: &Path) -> Vec<(String, bool)> {
    let Ok(read) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names: Vec<(String, bool)> = read
        .filter_map(Result::ok)
        .filter_map(|e| {
            let real_dir = e.file_type().is_ok_and(|t| t.is_dir());
            e.file_name().into_string().ok().map(|n| (n, real_dir))
        })
        .collect();
    names.sort();
    names
}

fn join(shown: &str, name: &str) -> String {
    if shown.is_empty() || shown.ends_with('/') {
        format!("{shown}{name}")
    } else {
        format!("{shown}/{name}")
    }
}
