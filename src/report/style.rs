//! ANSI styles of the terminal reporter, in one place so that "no color" really means no
//! escape code. It only wraps text; it never decides what is shown.

pub(crate) const BOLD: &str = "\x1b[1m";
pub(crate) const GREEN: &str = "\x1b[32m";
pub(crate) const RED: &str = "\x1b[31m";
pub(crate) const YELLOW: &str = "\x1b[33m";
pub(crate) const DIM: &str = "\x1b[2m";
const RESET: &str = "\x1b[0m";

/// Colors of job prefixes, by the order jobs first appear. Green and red are left out: they
/// mean passed and failed.
const JOB_COLORS: [&str; 8] = [
    "\x1b[36m", "\x1b[35m", "\x1b[34m", "\x1b[33m", "\x1b[96m", "\x1b[95m", "\x1b[94m", "\x1b[93m",
];

/// Paints text when colors are on, else leaves it as it is.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Paint {
    color: bool,
}

impl Paint {
    pub(crate) fn new(color: bool) -> Paint {
        Paint { color }
    }

    pub(crate) fn color(self) -> bool {
        self.color
    }

    pub(crate) fn paint(self, style: &str, text: &str) -> String {
        if self.color {
            format!("{style}{text}{RESET}")
        } else {
            text.to_string()
        }
    }

    /// The color of the `index`-th job (cycling).
    pub(crate) fn job(self, index: usize, text: &str) -> String {
        self.paint(JOB_COLORS[index % JOB_COLORS.len()], text)
    }
}
