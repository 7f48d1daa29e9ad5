//! Writing command output. A closed pipe (`localci process | head -1`) is a normal way for a
//! reader to stop, not a crash: write errors end the output quietly instead of panicking
//! as `print!` does.

use std::io::Write;

/// Writes `text` to standard output; returns false when the reader is gone.
pub(crate) fn stdout(text: &str) -> bool {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .is_ok()
}

/// Writes `text` to standard error, ignoring a closed stream.
pub(crate) fn stderr(text: &str) {
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(text.as_bytes()).and_then(|()| err.flush());
}

/// `println!` for command output.
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::cli::output::stdout(&format!("{}\n", format_args!($($arg)*)))
    };
}

/// `eprintln!` for command output.
macro_rules! errln {
    ($($arg:tt)*) => {
        $crate::cli::output::stderr(&format!("{}\n", format_args!($($arg)*)))
    };
}

pub(crate) use {errln, outln};
