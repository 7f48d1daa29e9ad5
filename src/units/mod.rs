//! Quantities as people read and write them: byte sizes (`12.3 MiB`) and durations, both the
//! Go forms CircleCI uses (`10m`, `1h15m0s`) and the ages of the `cache` commands (`7d`, `2w`).
//! Pure text <-> number conversions; no I/O, nothing CircleCI-specific beyond the formats.

mod bytes;
mod duration;

pub use bytes::format_bytes;
pub use duration::{format_age, format_go, format_span, parse_age, parse_go};
