//! Resolution of plain scalars to typed values.
//!
//! CircleCI reads configs as YAML 1.1 (SnakeYAML), so `yes`/`no`/`on`/`off` are booleans. Numbers
//! follow the core schema; the raw text is kept by the caller for lossless use later.

use super::node::Kind;

const TRUE: [&str; 9] = [
    "true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON",
];
const FALSE: [&str; 9] = [
    "false", "False", "FALSE", "no", "No", "NO", "off", "Off", "OFF",
];

/// The typed value of a plain (unquoted) scalar.
pub fn resolve_plain(text: &str) -> Kind {
    typed(text).unwrap_or_else(|| Kind::Str(text.to_string()))
}

/// The value of a plain scalar that is not a string (null, a boolean, a number); `None` for a
/// string. Allocates nothing, so the emitter can ask it of every scalar it prints.
pub(crate) fn typed(text: &str) -> Option<Kind> {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Some(Kind::Null),
        t if TRUE.contains(&t) => return Some(Kind::Bool(true)),
        t if FALSE.contains(&t) => return Some(Kind::Bool(false)),
        _ => {}
    }
    // Every other typed scalar starts with a digit, a sign or a dot (numbers, `.inf`, `.nan`).
    if !text.starts_with(|c: char| c.is_ascii_digit() || matches!(c, '-' | '+' | '.')) {
        return None;
    }
    if let Some(i) = parse_int(text) {
        return Some(Kind::Int(i));
    }
    parse_float(text).map(Kind::Float)
}

fn parse_int(text: &str) -> Option<i64> {
    let (neg, digits) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let value = if let Some(hex) = digits.strip_prefix("0x") {
        i64::from_str_radix(hex, 16).ok()?
    } else if let Some(oct) = digits.strip_prefix("0o") {
        i64::from_str_radix(oct, 8).ok()?
    } else if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        digits.parse().ok()?
    } else {
        return None;
    };
    Some(if neg { -value } else { value })
}

fn parse_float(text: &str) -> Option<f64> {
    match text {
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => return Some(f64::INFINITY),
        "-.inf" | "-.Inf" | "-.INF" => return Some(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Some(f64::NAN),
        _ => {}
    }
    let body = text.strip_prefix(['-', '+']).unwrap_or(text);
    let (mantissa, exponent) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], Some(&body[i + 1..])),
        None => (body, None),
    };
    let digits_ok = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let mantissa_ok = (!int.is_empty() || !frac.is_empty()) && digits_ok(int) && digits_ok(frac);
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['-', '+']).unwrap_or(e);
        !e.is_empty() && digits_ok(e)
    });
    if mantissa_ok && exponent_ok && (mantissa.contains('.') || exponent.is_some()) {
        text.parse().ok()
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_1_1_booleans() {
        assert_eq!(resolve_plain("yes"), Kind::Bool(true));
        assert_eq!(resolve_plain("Off"), Kind::Bool(false));
        assert_eq!(resolve_plain("y"), Kind::Str("y".into()));
    }

    #[test]
    fn numbers_and_strings() {
        assert_eq!(resolve_plain("42"), Kind::Int(42));
        assert_eq!(resolve_plain("-0x1F"), Kind::Int(-31));
        assert_eq!(resolve_plain("2.1"), Kind::Float(2.1));
        assert_eq!(resolve_plain("1e3"), Kind::Float(1000.0));
        assert_eq!(resolve_plain("1.2.3"), Kind::Str("1.2.3".into()));
        assert_eq!(resolve_plain("2019-01-01"), Kind::Str("2019-01-01".into()));
        assert_eq!(resolve_plain("."), Kind::Str(".".into()));
        assert_eq!(resolve_plain("~"), Kind::Null);
    }
}
