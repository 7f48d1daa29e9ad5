//! Ages as users write and read them: `7d`, `12h`, `30m`, `1d12h` (for
//! `localci cache prune --older-than`) and the short age column of `localci cache ls`.

use std::time::Duration;

const UNITS: &[(char, u64)] = &[
    ('w', 7 * 24 * 3600),
    ('d', 24 * 3600),
    ('h', 3600),
    ('m', 60),
    ('s', 1),
];

/// Parses one or more `<number><unit>` groups, units `s`, `m`, `h`, `d` and `w`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let invalid = || {
        format!(
            "invalid duration {text:?}: write a number and a unit (s, m, h, d or w), such as 7d, 12h or 30m"
        )
    };
    let mut total: u64 = 0;
    let mut digits = String::new();
    for c in text.trim().chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let (_, seconds) = UNITS.iter().find(|(u, _)| *u == c).ok_or_else(invalid)?;
        let count: u64 = digits.parse().map_err(|_| invalid())?;
        total = count
            .checked_mul(*seconds)
            .and_then(|s| total.checked_add(s))
            .ok_or_else(invalid)?;
        digits.clear();
    }
    if !digits.is_empty() || text.trim().is_empty() {
        return Err(invalid());
    }
    Ok(Duration::from_secs(total))
}

/// The largest whole unit of an age: `45s`, `12m`, `3h`, `5d`, `2w`.
pub fn format_age(age: Duration) -> String {
    let secs = age.as_secs();
    let (unit, size) = UNITS
        .iter()
        .find(|(_, size)| secs >= *size)
        .copied()
        .unwrap_or(('s', 1));
    format!("{}{unit}", secs / size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_single_and_combined_units() {
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert_eq!(parse_duration("12h"), Ok(Duration::from_secs(12 * 3600)));
        assert_eq!(parse_duration("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_duration("2w"), Ok(Duration::from_secs(14 * 86_400)));
        assert_eq!(parse_duration("1d12h"), Ok(Duration::from_secs(36 * 3600)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn rejects_what_is_not_a_duration() {
        for bad in ["", "7", "d", "7x", "-1d", "1.5h", "99999999999999999999d"] {
            let err = parse_duration(bad).unwrap_err();
            assert!(err.starts_with("invalid duration"), "{bad}: {err}");
        }
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
