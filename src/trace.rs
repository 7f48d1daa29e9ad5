//! `LOCALCI_TRACE=FILE`: a timing trace of one `localci execute`, for finding where the time
//! goes (bench/trivial.sh prints it). Off unless the variable is set; then every request to
//! the container engine (through [`crate::backend::traced`]), every step, and the phases of
//! the command (front end, connect, run, report) append one line to FILE:
//!
//! ```text
//! <start ms> <duration ms> <what> <detail>
//! ```
//!
//! tab-separated, the start counted from the moment `execute` began, written when the span
//! ends (so lines are in the order spans end). Durations are measured, never estimated. A
//! trace that cannot be written is dropped silently: it must not change how the run goes.

use std::io::Write;
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

/// The environment variable naming the trace file (`-` for stderr).
pub const ENV: &str = "LOCALCI_TRACE";

struct Trace {
    origin: Instant,
    out: Mutex<Box<dyn Write + Send>>,
}

static TRACE: OnceLock<Trace> = OnceLock::new();

/// Starts the trace when `value` (the variable's value) names a file; the origin of every
/// start time is now. Later calls change nothing.
pub fn init(value: Option<&str>) {
    let Some(value) = value.filter(|v| !v.is_empty()) else {
        return;
    };
    let out: Box<dyn Write + Send> = if value == "-" {
        Box::new(std::io::stderr())
    } else {
        match std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(value)
        {
            Ok(file) => Box::new(file),
            Err(_) => return,
        }
    };
    let _ = TRACE.set(Trace {
        origin: Instant::now(),
        out: Mutex::new(out),
    });
}

/// Whether spans are recorded.
pub fn enabled() -> bool {
    TRACE.get().is_some()
}

/// Records the span `what` (`detail`) from `start` to now.
pub fn span(what: &str, detail: &str, start: Instant) {
    let Some(trace) = TRACE.get() else {
        return;
    };
    let end = Instant::now();
    let line = format!(
        "{:.3}\t{:.3}\t{what}\t{}\n",
        ms(start.saturating_duration_since(trace.origin)),
        ms(end.saturating_duration_since(start)),
        detail.replace(['\t', '\n'], " "),
    );
    if let Ok(mut out) = trace.out.lock() {
        let _ = out.write_all(line.as_bytes());
    }
}

fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
