//! The timings file localci gives the in-container agent for `--split-by=timings`:
//! `$LOCALCI_AGENT_DIR/timings.tsv`, one test case a line, `file<TAB>classname<TAB>name<TAB>seconds`
//! (a field may be empty; tabs and line breaks inside a field are written as spaces).
//!
//! The host writes it (`row`), the agent reads it (`parse`): one definition so both sides agree.
//! Std only, no I/O: shared by the agent binary and the library.

/// One test case's duration from an earlier run.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Timing {
    pub(crate) file: String,
    pub(crate) class: String,
    pub(crate) name: String,
    pub(crate) seconds: f64,
}

/// The lines of a timings file that can be read; others (a damaged or foreign file) are
/// skipped, since timings only steer the split, never its correctness.
pub(crate) fn parse(text: &str) -> Vec<Timing> {
    text.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<Timing> {
    let mut fields = line.split('\t');
    let (file, class, name, seconds) = (
        fields.next()?,
        fields.next()?,
        fields.next()?,
        fields.next()?,
    );
    let seconds: f64 = seconds.trim().parse().ok()?;
    if fields.next().is_some() || !seconds.is_finite() || seconds < 0.0 {
        return None;
    }
    Some(Timing {
        file: file.to_string(),
        class: class.to_string(),
        name: name.to_string(),
        seconds,
    })
}

/// One line of the file, with its line break.
pub(crate) fn row(file: &str, class: &str, name: &str, seconds: f64) -> String {
    let clean = |s: &str| s.replace(['\t', '\n', '\r'], " ");
    format!(
        "{}\t{}\t{}\t{seconds}\n",
        clean(file),
        clean(class),
        clean(name)
    )
}
