//! The patterns of `persist_to_workspace`'s `paths`: Go's `filepath.Glob` rules, relative to
//! `root` (CircleCI's agent is written in Go; semantics file 4.9). One pattern component
//! matches one path component: `*` any run of characters, `?` one character, `[...]` a class
//! (`[^...]` negated, `a-z` ranges), `\` escapes the next character. There is no `**`. A
//! pattern matches an entry when it matches the entry's leading components, so a directory
//! brings everything below it; `.` (no components) matches everything under `root`.
//! Matching only; it reads no files.

use std::fmt;

/// Why a pattern is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    /// Go's `filepath.ErrBadPattern` text.
    #[error("syntax error in pattern")]
    Syntax,
    #[error("`..` would leave the workspace root")]
    OutsideRoot,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    Literal(char),
    AnyChar,
    Star,
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

/// A parsed `paths` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pattern {
    text: String,
    components: Vec<Vec<Token>>,
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Pattern {
    /// Parses a pattern; empty and `.` components are dropped (`./dist/` is `dist`).
    pub fn parse(text: &str) -> Result<Pattern, PatternError> {
        let mut components = Vec::new();
        for part in text.split('/') {
            match part {
                "" | "." => {}
                ".." => return Err(PatternError::OutsideRoot),
                part => components.push(parse_component(part)?),
            }
        }
        Ok(Pattern {
            text: text.to_string(),
            components,
        })
    }

    /// Whether the pattern matches `path` (components of an entry relative to root) or one of
    /// its parents.
    pub fn matches(&self, path: &[&str]) -> bool {
        path.len() >= self.components.len()
            && self
                .components
                .iter()
                .zip(path)
                .all(|(tokens, name)| match_component(tokens, &name.chars().collect::<Vec<_>>()))
    }
}

fn parse_component(part: &str) -> Result<Vec<Token>, PatternError> {
    let chars: Vec<char> = part.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '*' => {
                // Consecutive stars match what one star matches.
                if tokens.last() != Some(&Token::Star) {
                    tokens.push(Token::Star);
                }
                i += 1;
            }
            '?' => {
                tokens.push(Token::AnyChar);
                i += 1;
            }
            '\\' => {
                let c = *chars.get(i + 1).ok_or(PatternError::Syntax)?;
                tokens.push(Token::Literal(c));
                i += 2;
            }
            '[' => {
                let (token, next) = parse_class(&chars, i + 1)?;
                tokens.push(token);
                i = next;
            }
            c => {
                tokens.push(Token::Literal(c));
                i += 1;
            }
        }
    }
    Ok(tokens)
}

/// A class starting after its `[`; returns the token and the index after its `]`. As in Go,
/// the class must hold at least one range, and `-` or `]` where a character is expected is
/// a syntax error unless escaped.
fn parse_class(chars: &[char], mut i: usize) -> Result<(Token, usize), PatternError> {
    let negated = chars.get(i) == Some(&'^');
    if negated {
        i += 1;
    }
    let mut ranges = Vec::new();
    loop {
        match chars.get(i) {
            None => return Err(PatternError::Syntax),
            Some(']') if !ranges.is_empty() => {
                return Ok((Token::Class { negated, ranges }, i + 1));
            }
            _ => {}
        }
        let (low, next) = class_char(chars, i)?;
        i = next;
        let mut high = low;
        if chars.get(i) == Some(&'-') {
            let (h, next) = class_char(chars, i + 1)?;
            high = h;
            i = next;
        }
        ranges.push((low, high));
    }
}

fn class_char(chars: &[char], i: usize) -> Result<(char, usize), PatternError> {
    match chars.get(i) {
        None | Some('-' | ']') => Err(PatternError::Syntax),
        Some('\\') => chars
            .get(i + 1)
            .map(|c| (*c, i + 2))
            .ok_or(PatternError::Syntax),
        Some(c) => Ok((*c, i + 1)),
    }
}

/// Matches one component; a star backtracks to the last star only (enough, since a star
/// never crosses a `/`).
fn match_component(tokens: &[Token], name: &[char]) -> bool {
    let (mut t, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        match tokens.get(t) {
            Some(Token::Star) => {
                star = Some((t, n));
                t += 1;
                continue;
            }
            Some(token) if single(token, name[n]) => {
                t += 1;
                n += 1;
                continue;
            }
            _ => {}
        }
        match star {
            Some((st, sn)) => {
                star = Some((st, sn + 1));
                t = st + 1;
                n = sn + 1;
            }
            None => return false,
        }
    }
    tokens[t..].iter().all(|token| *token == Token::Star)
}

fn single(token: &Token, c: char) -> bool {
    match token {
        Token::Literal(l) => *l == c,
        Token::AnyChar => true,
        Token::Class { negated, ranges } => {
            ranges.iter().any(|(lo, hi)| *lo <= c && c <= *hi) != *negated
        }
        Token::Star => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(pattern: &str, path: &str) -> bool {
        let parts: Vec<&str> = path.split('/').collect();
        Pattern::parse(pattern).unwrap().matches(&parts)
    }

    #[test]
    fn components_match_like_go_filepath_match() {
        for (pattern, name) in [
            ("abc", "abc"),
            ("*", "abc"),
            ("*", ".hidden"),
            ("*c", "abc"),
            ("a*", "a"),
            ("a*b*c*d", "axbxcxd"),
            ("a*/b", "abc/b"),
            ("a?c", "abc"),
            ("a[b-d]e", "ace"),
            ("a[^x]c", "abc"),
            ("[\\]a]", "]"),
            ("[\\-]", "-"),
            ("a\\*b", "a*b"),
            ("[a-c][x-z]", "bz"),
            ("*.tar.gz", "app.tar.gz"),
        ] {
            assert!(matches(pattern, name), "{pattern} should match {name}");
        }
        for (pattern, name) in [
            ("abc", "abd"),
            ("a*", "ba"),
            ("a?c", "ac"),
            ("a[^b]c", "abc"),
            ("a[b-d]e", "aee"),
            ("a\\*b", "axb"),
            ("a*b", "a/b"),
            ("*/b", "a"),
        ] {
            assert!(!matches(pattern, name), "{pattern} should not match {name}");
        }
    }

    #[test]
    fn directories_bring_what_is_below_them() {
        assert!(matches("dist", "dist/js/app.js"));
        assert!(matches("dist/*.js", "dist/app.js"));
        assert!(!matches("dist/*.js", "dist"));
        assert!(matches("*", "any/thing/below"));
        assert!(matches("./dist/", "dist/a"));
    }

    #[test]
    fn dot_matches_everything_under_root() {
        assert!(matches(".", "a"));
        assert!(matches(".", "a/b/c"));
    }

    #[test]
    fn there_is_no_double_star() {
        // `**` is two stars in one component: it matches like `*`.
        assert!(matches("**/c", "b/c"));
        assert!(!matches("**/c", "a/b/c"));
        assert!(matches("a/**", "a/b"));
    }

    #[test]
    fn bad_patterns_are_refused_like_go() {
        for bad in [
            "[", "a[", "[]", "[^]", "a\\", "[a-]", "[-a]", "[]a]", "[a-\\",
        ] {
            assert_eq!(
                Pattern::parse(bad),
                Err(PatternError::Syntax),
                "{bad} is a bad pattern"
            );
        }
        assert_eq!(Pattern::parse("../up"), Err(PatternError::OutsideRoot));
        assert_eq!(Pattern::parse("a/../b"), Err(PatternError::OutsideRoot));
    }
}
