//! `circleci env subst`: replaces environment references in a text, as the CircleCI CLI does
//! (its `env subst` command uses the `a8m/envsubst` Go package): `$VAR`, `${VAR}`, the
//! defaults `${VAR-x}`, `${VAR:-x}`, `${VAR=x}`, `${VAR:=x}`, the alternatives `${VAR+x}`,
//! `${VAR:+x}` (`x` may itself hold references), and `$$` for a literal `$`. An unset
//! variable becomes the empty string; a `$` not followed by a name stays as it is.
//!
//! Shared by the in-container agent and the library's tests: std only, no I/O (the caller
//! passes the environment as a lookup function).

use std::fmt;

/// A `${...}` that is not closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SubstError {
    /// Byte offset of the `$` in the input.
    pub(crate) at: usize,
}

impl fmt::Display for SubstError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the `${{` at byte {} has no closing `}}`; write `$${{` for a literal `${{`",
            self.at
        )
    }
}

/// `text` with every reference replaced by `lookup(name)` (`None`: unset).
pub(crate) fn subst(
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, SubstError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(dollar) = rest.find('$') {
        out.push_str(&rest[..dollar]);
        let offset = text.len() - rest.len() + dollar;
        let after = &rest[dollar + 1..];
        let (replacement, used) =
            reference(after, lookup).map_err(|()| SubstError { at: offset })?;
        out.push_str(&replacement);
        rest = &after[used..];
    }
    out.push_str(rest);
    Ok(out)
}

/// What `$` followed by `after` stands for, and how many bytes of `after` it used.
fn reference(after: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<(String, usize), ()> {
    if after.starts_with('$') {
        return Ok(("$".into(), 1));
    }
    if let Some(inner) = after.strip_prefix('{') {
        let close = closing_brace(inner).ok_or(())?;
        return match braced(&inner[..close], lookup)? {
            Some(value) => Ok((value, close + 2)),
            // Not an expression we know (`${}`, `${1a}`): kept as written.
            None => Ok((format!("${{{}}}", &inner[..close]), close + 2)),
        };
    }
    let len = name_len(after);
    if len == 0 {
        return Ok(("$".into(), 0));
    }
    Ok((lookup(&after[..len]).unwrap_or_default(), len))
}

/// Length of the variable name at the start of `s` (letters, digits, `_`).
fn name_len(s: &str) -> usize {
    s.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(s.len())
}

/// Offset of the `}` closing a `${`, skipping nested `${...}` in a default value.
fn closing_brace(inner: &str) -> Option<usize> {
    let mut depth = 0usize;
    let bytes = inner.as_bytes();
    for (i, b) in bytes.iter().enumerate() {
        match b {
            b'{' if i > 0 && bytes[i - 1] == b'$' => depth += 1,
            b'}' if depth == 0 => return Some(i),
            b'}' => depth -= 1,
            _ => {}
        }
    }
    None
}

/// The value of `${body}`, or `None` when `body` is not a reference.
fn braced(body: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<Option<String>, ()> {
    let len = name_len(body);
    if len == 0 {
        return Ok(None);
    }
    let (name, op) = body.split_at(len);
    let value = lookup(name);
    let set = value.is_some();
    let non_empty = value.as_deref().is_some_and(|v| !v.is_empty());
    let word = |w: &str| subst(w, lookup).map_err(|_| ());
    let result = if op.is_empty() {
        value.unwrap_or_default()
    } else if let Some(w) = op.strip_prefix(":-").or_else(|| op.strip_prefix(":=")) {
        if non_empty {
            value.unwrap_or_default()
        } else {
            word(w)?
        }
    } else if let Some(w) = op.strip_prefix('-').or_else(|| op.strip_prefix('=')) {
        if set {
            value.unwrap_or_default()
        } else {
            word(w)?
        }
    } else if let Some(w) = op.strip_prefix(":+") {
        if non_empty { word(w)? } else { String::new() }
    } else if let Some(w) = op.strip_prefix('+') {
        if set { word(w)? } else { String::new() }
    } else {
        return Ok(None);
    };
    Ok(Some(result))
}
