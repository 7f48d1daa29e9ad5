//! One diagnostic type for every stage, and its two renderings: human (annotate-snippets, the
//! rustc/cargo style) and JSON (for editors and CI).
//!
//! Stages build [`Diagnostic`]s with spans and structured data; nothing else formats them.
//!
//! Output is bounded whatever the config holds (issue 9): a message, hint or label longer than
//! [`MAX_TEXT`] characters is cut, and at most [`MAX_SHOWN`] diagnostics are printed, so a
//! 30 MB value or a million errors cannot turn into gigabytes on the terminal.

use std::borrow::Cow;
use std::fmt::Write as _;

use annotate_snippets::{AnnotationKind, Group, Level, Renderer, Snippet};
use serde::Serialize;

use crate::source::{Sources, Span};

/// The most characters of one message, hint or label that are printed.
pub const MAX_TEXT: usize = 2000;
/// The most diagnostics one report prints; the counts still cover all of them.
pub const MAX_SHOWN: usize = 200;

/// `text` cut to [`MAX_TEXT`] characters, saying how much was left out.
pub fn clip(text: &str) -> Cow<'_, str> {
    match text.char_indices().nth(MAX_TEXT) {
        None => Cow::Borrowed(text),
        Some((cut, _)) => Cow::Owned(format!(
            "{}... ({} more bytes not shown)",
            &text[..cut],
            text.len() - cut
        )),
    }
}

/// `` `a`, `b` or `c` `` for a message.
pub(crate) fn one_of<S: AsRef<str>>(items: &[S]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("`{}`", s.as_ref())).collect();
    match quoted.split_last() {
        None => String::new(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// A problem found in the config (or a file it refers to), with where and what to do.
#[derive(Clone, Debug, PartialEq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub message: String,
    /// The primary location. `None` for problems that belong to no file position.
    pub span: Option<Span>,
    /// Secondary locations with a short label each ("first defined here").
    pub labels: Vec<(Span, String)>,
    pub hint: Option<String>,
    /// JSON pointer into the config document, when the problem is about one value.
    pub pointer: Option<String>,
}

impl Diagnostic {
    pub fn error(span: Span, message: impl Into<String>) -> Self {
        Self::new(Severity::Error, Some(span), message)
    }

    pub fn warning(span: Span, message: impl Into<String>) -> Self {
        Self::new(Severity::Warning, Some(span), message)
    }

    /// An error without a position (a missing file, a usage problem).
    pub fn bare(message: impl Into<String>) -> Self {
        Self::new(Severity::Error, None, message)
    }

    pub fn new(severity: Severity, span: Option<Span>, message: impl Into<String>) -> Self {
        Diagnostic {
            severity,
            message: message.into(),
            span,
            labels: Vec::new(),
            hint: None,
            pointer: None,
        }
    }

    #[must_use]
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    #[must_use]
    pub fn with_label(mut self, span: Span, label: impl Into<String>) -> Self {
        self.labels.push((span, label.into()));
        self
    }

    #[must_use]
    pub fn with_pointer(mut self, pointer: impl Into<String>) -> Self {
        self.pointer = Some(pointer.into());
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// Sorts by file and position, errors before warnings at the same place, and drops exact repeats.
pub fn sort(diags: &mut Vec<Diagnostic>) {
    diags.sort_by(|a, b| {
        let key = |d: &Diagnostic| (d.span.map(|s| (s.file, s.start)), d.severity);
        key(a).cmp(&key(b)).then_with(|| a.message.cmp(&b.message))
    });
    diags.dedup_by(|a, b| a.span == b.span && a.message == b.message && a.severity == b.severity);
}

/// Renders diagnostics for a terminal, with source snippets; `color` adds ANSI styles.
pub fn render_human(sources: &Sources, diags: &[Diagnostic], color: bool) -> String {
    let mut out = String::new();
    for d in diags.iter().take(MAX_SHOWN) {
        out.push_str(&render_one(sources, d, color));
        out.push_str("\n\n");
    }
    if diags.len() > MAX_SHOWN {
        let _ = writeln!(
            out,
            "... and {} more not shown (localci prints the first {MAX_SHOWN})\n",
            diags.len() - MAX_SHOWN
        );
    }
    out.push_str(&summary(diags));
    out
}

/// Renders one problem that is not about the config (Docker lost, a file unreadable): the
/// message and hint only, without the `N errors, M warnings` line of a config report.
pub fn render_message(d: &Diagnostic, color: bool) -> String {
    let mut out = render_one(&Sources::new(), d, color);
    out.push('\n');
    out
}

fn render_one(sources: &Sources, d: &Diagnostic, color: bool) -> String {
    let renderer = if color {
        Renderer::styled()
    } else {
        Renderer::plain()
    };
    let d = &clipped(d);
    let mut fixes = Vec::new();
    let groups = report(sources, d, &mut fixes);
    if d.span.is_some() {
        let mut out = renderer.render(&groups);
        for (shown, real) in fixes {
            out = out.replacen(&shown, &real, 1);
        }
        return out;
    }
    // Without a snippet, groups rendered together are joined by a lone ` |` line.
    let lines: Vec<String> = groups
        .iter()
        .map(|g| renderer.render(std::slice::from_ref(g)))
        .collect();
    lines.join("\n")
}

fn report<'a>(
    sources: &'a Sources,
    d: &'a Diagnostic,
    fixes: &mut Vec<(String, String)>,
) -> Vec<Group<'a>> {
    let level = match d.severity {
        Severity::Error => Level::ERROR,
        Severity::Warning => Level::WARNING,
    };
    let title = level.primary_title(d.message.as_str());
    let mut groups = Vec::new();
    let primary = match d.span {
        Some(span) => {
            let primary = snippet(sources, span, "", AnnotationKind::Primary, fixes);
            let mut group = title.element(primary);
            for (s, label) in &d.labels {
                group = group.element(snippet(sources, *s, label, AnnotationKind::Context, fixes));
            }
            group
        }
        None => Group::with_title(title),
    };
    groups.push(primary);
    if let Some(hint) = &d.hint {
        groups.push(Group::with_title(
            Level::HELP.secondary_title(hint.as_str()),
        ));
    }
    groups
}

/// Lines longer than this are shown as a window around the span (annotate-snippets then
/// trims what it shows to the terminal's width; it would still lay out the whole line).
const MAX_LINE: usize = 2000;
/// Bytes of context kept on each side of the span in such a window.
const WINDOW: usize = 500;

/// A snippet of only the lines the span covers, so a 5 MB file renders as fast as a small one.
/// A long line (a 30 MB scalar) is cut to a window around the span; the renderer then counts
/// columns from the window's start, so the shown location goes into `fixes` with the real one.
fn snippet<'a>(
    sources: &'a Sources,
    span: Span,
    label: &'a str,
    kind: AnnotationKind,
    fixes: &mut Vec<(String, String)>,
) -> Snippet<'a, annotate_snippets::Annotation<'a>> {
    let src = sources.get(span.file);
    let text = src.text();
    let (mut from, mut to) = src.line_range(span.start as usize, span.start as usize);
    let start = (span.start as usize).clamp(from, to);
    let mut end = (span.end as usize).clamp(start, to);
    if to - from > MAX_LINE {
        let (full_from, path) = (from, src.path().display().to_string());
        from = floor_char(text, start.saturating_sub(WINDOW).max(from));
        end = floor_char(text, end.min(start + WINDOW));
        to = floor_char(text, (end + WINDOW).min(to));
        let line = src.line_col(start).line;
        let shown_col = text[from..start].chars().count() + 1;
        if from > full_from {
            fixes.push((format!("{path}:{line}:{shown_col}"), sources.location(span)));
        }
    }
    // Point at the whole value on the first line; a zero-width span marks one character.
    if end == start {
        end = text[start..to]
            .chars()
            .next()
            .map_or(start, |c| start + c.len_utf8());
    }
    let line = src.line_col(from).line;
    let mut annotation = kind.span(start - from..end - from);
    if !label.is_empty() {
        annotation = annotation.label(label);
    }
    Snippet::source(&text[from..to])
        .line_start(line)
        .path(src.path().to_str().unwrap_or("<non-UTF-8 path>"))
        .annotation(annotation)
}

/// A copy of `d` whose texts are cut to [`MAX_TEXT`] characters.
fn clipped(d: &Diagnostic) -> Diagnostic {
    Diagnostic {
        severity: d.severity,
        message: clip(&d.message).into_owned(),
        span: d.span,
        labels: d
            .labels
            .iter()
            .map(|(s, l)| (*s, clip(l).into_owned()))
            .collect(),
        hint: d.hint.as_deref().map(|h| clip(h).into_owned()),
        pointer: d.pointer.as_deref().map(|p| clip(p).into_owned()),
    }
}

/// `N errors, M warnings` and a line break; empty when there is nothing to count.
fn summary(diags: &[Diagnostic]) -> String {
    let errors = diags.iter().filter(|d| d.is_error()).count();
    let warnings = diags.len() - errors;
    let plural = |n: usize, w: &str| format!("{n} {w}{}", if n == 1 { "" } else { "s" });
    // The count sums up what was found in the config; an error about the run (Docker is
    // unreachable, an image is missing, no such job) is not one of those and gets no footer.
    if !diags.iter().any(|d| d.span.is_some()) {
        return String::new();
    }
    format!(
        "{}, {}\n",
        plural(errors, "error"),
        plural(warnings, "warning")
    )
}

/// The nearest char boundary at or before `i`.
fn floor_char(text: &str, mut i: usize) -> usize {
    while !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

#[derive(Serialize)]
struct JsonDiagnostic<'a> {
    file: Option<String>,
    line: Option<usize>,
    column: Option<usize>,
    end_line: Option<usize>,
    end_column: Option<usize>,
    severity: Severity,
    message: &'a str,
    hint: Option<&'a str>,
    pointer: Option<&'a str>,
    related: Vec<JsonRelated<'a>>,
}

#[derive(Serialize)]
struct JsonRelated<'a> {
    file: String,
    line: usize,
    column: usize,
    message: &'a str,
}

#[derive(Serialize)]
struct JsonReport<'a> {
    valid: bool,
    errors: usize,
    warnings: usize,
    diagnostics: Vec<JsonDiagnostic<'a>>,
}

/// Renders diagnostics as one JSON object: `{valid, errors, warnings, diagnostics: [...]}`.
pub fn render_json(sources: &Sources, diags: &[Diagnostic]) -> String {
    let shown: Vec<Diagnostic> = diags.iter().take(MAX_SHOWN).map(clipped).collect();
    let diagnostics = shown
        .iter()
        .map(|d| {
            let (file, start, end) = match d.span {
                Some(s) => {
                    let src = sources.get(s.file);
                    (
                        Some(src.path().display().to_string()),
                        Some(src.line_col(s.start as usize)),
                        Some(src.line_col(s.end as usize)),
                    )
                }
                None => (None, None, None),
            };
            JsonDiagnostic {
                file,
                line: start.map(|p| p.line),
                column: start.map(|p| p.column),
                end_line: end.map(|p| p.line),
                end_column: end.map(|p| p.column),
                severity: d.severity,
                message: &d.message,
                hint: d.hint.as_deref(),
                pointer: d.pointer.as_deref(),
                related: d
                    .labels
                    .iter()
                    .map(|(s, m)| {
                        let src = sources.get(s.file);
                        let p = src.line_col(s.start as usize);
                        JsonRelated {
                            file: src.path().display().to_string(),
                            line: p.line,
                            column: p.column,
                            message: m,
                        }
                    })
                    .collect(),
            }
        })
        .collect();
    let errors = diags.iter().filter(|d| d.is_error()).count();
    let report = JsonReport {
        valid: errors == 0,
        errors,
        warnings: diags.len() - errors,
        diagnostics,
    };
    serde_json::to_string_pretty(&report).expect("diagnostics serialize to JSON")
}
