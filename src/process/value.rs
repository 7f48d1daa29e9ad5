//! How compile-time values behave: truthiness in logic statements, equality, the text a value
//! becomes when embedded in a string, and how a value is quoted in an error message.
//!
//! Pure functions over [`Node`]; no scopes, no diagnostics.

use crate::yaml::{Kind, Node};

/// Logic-statement truthiness (configuration reference, "Logic statements"): `false`, null,
/// `0`, NaN, `""` and empty lists or maps are falsy; everything else is truthy, including the
/// *string* `"false"`.
pub(crate) fn truthy(node: &Node) -> bool {
    match &node.kind {
        Kind::Null => false,
        Kind::Bool(b) => *b,
        Kind::Int(i) => *i != 0,
        Kind::Float(f) => *f != 0.0 && !f.is_nan(),
        Kind::Str(s) => !s.is_empty(),
        Kind::Seq(items) => !items.is_empty(),
        Kind::Map(m) => !m.is_empty(),
    }
}

/// Structural equality of data, ignoring where it was written.
pub(crate) fn same(a: &Node, b: &Node) -> bool {
    match (&a.kind, &b.kind) {
        (Kind::Null, Kind::Null) => true,
        (Kind::Bool(x), Kind::Bool(y)) => x == y,
        (Kind::Int(x), Kind::Int(y)) => x == y,
        (Kind::Float(x), Kind::Float(y)) => x == y,
        (Kind::Int(x), Kind::Float(y)) | (Kind::Float(y), Kind::Int(x)) => (*x as f64) == *y,
        (Kind::Str(x), Kind::Str(y)) => x == y,
        (Kind::Seq(x), Kind::Seq(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b))
        }
        (Kind::Map(x), Kind::Map(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => false,
    }
}

/// The text of a scalar embedded in a larger string. Numbers print the way CircleCI's YAML
/// reader holds them (`3.10` was read as the number 3.1); `None` for lists and maps.
pub(crate) fn text(node: &Node) -> Option<String> {
    Some(match &node.kind {
        Kind::Null => String::new(),
        Kind::Bool(b) => b.to_string(),
        Kind::Int(i) => i.to_string(),
        Kind::Float(f) => float_text(*f),
        Kind::Str(s) => s.clone(),
        Kind::Seq(_) | Kind::Map(_) => return None,
    })
}

/// A float as a JVM prints a double (`1000.0`, `3.1`), which is what CircleCI's compiler does.
pub(crate) fn float_text(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    let s = f.to_string();
    if s.contains(['.', 'e', 'E']) {
        s
    } else {
        format!("{s}.0")
    }
}

/// A value as an error message shows it: strings in double quotes, other scalars bare,
/// collections abbreviated.
pub(crate) fn repr(node: &Node) -> String {
    match &node.kind {
        Kind::Str(s) => format!("{s:?}"),
        Kind::Seq(items) => format!("a list of {} item(s)", items.len()),
        Kind::Map(_) => "a map".to_string(),
        Kind::Null => "null".to_string(),
        _ => node.scalar_text().unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::Span;

    fn n(kind: Kind) -> Node {
        Node::new(Span::default(), kind)
    }

    #[test]
    fn the_string_false_is_truthy() {
        assert!(truthy(&n(Kind::Str("false".into()))));
        assert!(!truthy(&n(Kind::Bool(false))));
        assert!(!truthy(&n(Kind::Str(String::new()))));
        assert!(!truthy(&n(Kind::Int(0))));
        assert!(!truthy(&n(Kind::Float(f64::NAN))));
        assert!(!truthy(&n(Kind::Seq(vec![]))));
    }

    #[test]
    fn floats_print_like_the_jvm() {
        assert_eq!(float_text(3.1), "3.1");
        assert_eq!(float_text(1000.0), "1000.0");
    }
}
