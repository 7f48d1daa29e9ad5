//! Durations as CircleCI writes them (`10m`, `1.25h`, `30s`, Go's `1h30m`) and as its agent
//! prints them (Go's `time.Duration` format: `10m0s`, `1h15m0s`, `2.5s`). Pure.

use std::time::Duration;

/// Parses a Go-style duration: one or more `<decimal><unit>` pairs, units `h`, `m`, `s`, `ms`.
pub fn parse(text: &str) -> Option<Duration> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    let mut rest = text;
    let mut total = 0f64;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number: f64 = rest[..number_len].parse().ok()?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let seconds = match &rest[..unit_len] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 0.001,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += number * seconds;
    }
    Duration::try_from_secs_f64(total).ok()
}

/// Formats like Go's `time.Duration.String()`, to millisecond precision.
pub fn go_format(d: Duration) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_circleci_forms() {
        assert_eq!(parse("10m"), Some(Duration::from_secs(600)));
        assert_eq!(parse("1.25h"), Some(Duration::from_secs(4500)));
        assert_eq!(parse("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse("2s"), Some(Duration::from_secs(2)));
        assert_eq!(parse("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse("10"), None);
        assert_eq!(parse("10x"), None);
        assert_eq!(parse(""), None);
    }

    #[test]
    fn formats_like_go() {
        assert_eq!(go_format(Duration::from_secs(600)), "10m0s");
        assert_eq!(go_format(Duration::from_secs(4500)), "1h15m0s");
        assert_eq!(go_format(Duration::from_millis(2500)), "2.5s");
        assert_eq!(go_format(Duration::from_secs(3)), "3s");
        assert_eq!(go_format(Duration::from_millis(20)), "20ms");
    }
}
