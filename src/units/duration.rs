//! Durations in the two written forms localci meets, read by one tokenizer of
//! `<number><unit>` groups:
//! - Go's `time.Duration` notation, used by CircleCI's config and agent: `10m`, `1.25h`,
//!   `1h30m`, `500ms` are read, `10m0s`, `1h15m0s`, `2.5s` printed.
//! - Ages, for the `cache` commands: whole numbers with `s`, `m`, `h`, `d` and `w`
//!   (`7d`, `12h`, `1d12h`, `2w`), which Go lacks.

use std::time::Duration;

/// Age units, largest first, in seconds.
const AGE_UNITS: &[(&str, u64)] = &[
    ("w", 7 * 24 * 3600),
    ("d", 24 * 3600),
    ("h", 3600),
    ("m", 60),
    ("s", 1),
];

/// Splits `1h30m` into `[("1", "h"), ("30", "m")]`: a number (digits and dots), then the unit
/// (everything up to the next number). `None` when a number or a unit is missing.
fn groups(text: &str) -> Option<Vec<(&str, &str)>> {
    let is_number = |c: char| c.is_ascii_digit() || c == '.';
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    let mut found = Vec::new();
    while !rest.is_empty() {
        let (number, after) = rest.split_at(rest.find(|c| !is_number(c)).unwrap_or(rest.len()));
        let (unit, next) = after.split_at(after.find(is_number).unwrap_or(after.len()));
        if number.is_empty() || unit.is_empty() {
            return None;
        }
        found.push((number, unit));
        rest = next;
    }
    Some(found)
}

/// Parses a Go-style duration: one or more `<decimal><unit>` groups, units `h`, `m`, `s`, `ms`.
pub fn parse_go(text: &str) -> Option<Duration> {
    let mut total = 0f64;
    for (number, unit) in groups(text)? {
        let seconds = match unit {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 0.001,
            _ => return None,
        };
        total += number.parse::<f64>().ok()? * seconds;
    }
    Duration::try_from_secs_f64(total).ok()
}

/// Formats like Go's `time.Duration.String()`, to millisecond precision.
pub fn format_go(d: Duration) -> String {
    let millis = d.as_millis();
    if millis == 0 {
        return "0s".to_string();
    }
    if millis < 1000 {
        return format!("{millis}ms");
    }
    let hours = millis / 3_600_000;
    let minutes = (millis / 60_000) % 60;
    let secs = (millis / 1000) % 60;
    let frac = millis % 1000;
    let mut seconds = secs.to_string();
    if frac > 0 {
        seconds = format!("{secs}.{frac:03}")
            .trim_end_matches('0')
            .to_string();
    }
    match (hours, minutes) {
        (0, 0) => format!("{seconds}s"),
        (0, m) => format!("{m}m{seconds}s"),
        (h, m) => format!("{h}h{m}m{seconds}s"),
    }
}

/// Parses an age: one or more `<whole number><unit>` groups, units `s`, `m`, `h`, `d`, `w`.
pub fn parse_age(text: &str) -> Result<Duration, String> {
    let invalid = || {
        format!(
            "invalid duration {text:?}: write a number and a unit (s, m, h, d or w), such as 7d, 12h or 30m"
        )
    };
    let mut total: u64 = 0;
    for (number, unit) in groups(text).ok_or_else(invalid)? {
        let (_, size) = AGE_UNITS
            .iter()
            .find(|(u, _)| *u == unit)
            .ok_or_else(invalid)?;
        let count: u64 = number.parse().map_err(|_| invalid())?;
        total = count
            .checked_mul(*size)
            .and_then(|s| total.checked_add(s))
            .ok_or_else(invalid)?;
    }
    Ok(Duration::from_secs(total))
}

/// The largest whole unit of an age: `45s`, `12m`, `3h`, `5d`, `2w`.
pub fn format_age(age: Duration) -> String {
    let secs = age.as_secs();
    let (unit, size) = AGE_UNITS
        .iter()
        .find(|(_, size)| secs >= *size)
        .copied()
        .unwrap_or(("s", 1));
    format!("{}{unit}", secs / size)
}

/// An age in the form [`parse_age`] reads, without weeks: `7d`, `1d12h`, `30m`, `0s`.
pub fn format_span(duration: Duration) -> String {
    let mut secs = duration.as_secs();
    let mut out = String::new();
    for &(unit, size) in &AGE_UNITS[1..] {
        if secs >= size {
            out.push_str(&format!("{}{unit}", secs / size));
            secs %= size;
        }
    }
    if out.is_empty() {
        "0s".to_string()
    } else {
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_parse_circleci_forms() {
        assert_eq!(parse_go("10m"), Some(Duration::from_secs(600)));
        assert_eq!(parse_go("1.25h"), Some(Duration::from_secs(4500)));
        assert_eq!(parse_go("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_go(" 2s "), Some(Duration::from_secs(2)));
        assert_eq!(parse_go("500ms"), Some(Duration::from_millis(500)));
        for bad in ["10", "10x", "", "h", "1.2.3s", "1d", "-1s", "1e3s"] {
            assert_eq!(parse_go(bad), None, "{bad}");
        }
    }

    #[test]
    fn go_durations_format_like_go() {
        assert_eq!(format_go(Duration::from_secs(600)), "10m0s");
        assert_eq!(format_go(Duration::from_secs(4500)), "1h15m0s");
        assert_eq!(format_go(Duration::from_millis(2500)), "2.5s");
        assert_eq!(format_go(Duration::from_secs(3)), "3s");
        assert_eq!(format_go(Duration::from_millis(20)), "20ms");
        assert_eq!(format_go(Duration::ZERO), "0s");
    }

    #[test]
    fn ages_parse_single_and_combined_units() {
        assert_eq!(parse_age("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert_eq!(parse_age("12h"), Ok(Duration::from_secs(12 * 3600)));
        assert_eq!(parse_age("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_age("2w"), Ok(Duration::from_secs(14 * 86_400)));
        assert_eq!(parse_age("1d12h"), Ok(Duration::from_secs(36 * 3600)));
        assert_eq!(parse_age("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn ages_reject_what_is_not_an_age() {
        for bad in [
            "",
            "7",
            "d",
            "7x",
            "-1d",
            "1.5h",
            "500ms",
            "7d 1h",
            "99999999999999999999d",
            "999999999999999w",
        ] {
            let err = parse_age(bad).unwrap_err();
            assert!(err.starts_with("invalid duration"), "{bad}: {err}");
        }
    }

    #[test]
    fn spans_print_as_they_parse() {
        for text in ["7d", "1d12h", "30m", "0s", "14d", "1h1m1s"] {
            assert_eq!(format_span(parse_age(text).unwrap()), text);
        }
        assert_eq!(format_span(parse_age("1w").unwrap()), "7d");
    }

    #[test]
    fn ages_use_the_largest_whole_unit() {
        assert_eq!(format_age(Duration::from_secs(0)), "0s");
        assert_eq!(format_age(Duration::from_secs(59)), "59s");
        assert_eq!(format_age(Duration::from_secs(3599)), "59m");
        assert_eq!(format_age(Duration::from_secs(3 * 3600 + 5)), "3h");
        assert_eq!(format_age(Duration::from_secs(6 * 86_400)), "6d");
        assert_eq!(format_age(Duration::from_secs(15 * 86_400)), "2w");
    }
}
