//! Loaded source files and the spans that point into them.
//!
//! A [`Sources`] registry owns every file the run has read (the config, orb files) so that a
//! [`Span`] can stay small (`file` + byte range) and still be rendered as `file:line:col`.
//! No parsing happens here; only line indexing.

use std::path::{Path, PathBuf};

/// Index of a file inside [`Sources`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct FileId(pub u32);

/// A byte range in one source file. `start == end` marks a position.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct Span {
    pub file: FileId,
    pub start: u32,
    pub end: u32,
}

impl Span {
    pub fn new(file: FileId, start: usize, end: usize) -> Self {
        let clamp = |v: usize| u32::try_from(v).unwrap_or(u32::MAX);
        Span {
            file,
            start: clamp(start),
            end: clamp(end.max(start)),
        }
    }

    /// A zero-width span at the start of this one.
    pub fn head(self) -> Self {
        Span {
            end: self.start,
            ..self
        }
    }
}

/// A 1-based line and a 1-based column counted in characters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct LineCol {
    pub line: usize,
    pub column: usize,
}

/// One loaded file: its display path, its text and the byte offset of every line start.
#[derive(Debug)]
pub struct Source {
    path: PathBuf,
    text: String,
    line_starts: Vec<usize>,
}

impl Source {
    pub fn new(path: impl Into<PathBuf>, text: String) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Source {
            path: path.into(),
            text,
            line_starts,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    /// Byte offset of a 1-based `line` and a 0-based character column (saphyr's markers).
    pub fn offset_of(&self, line: usize, char_col: usize) -> usize {
        let Some(&start) = self.line_starts.get(line.saturating_sub(1)) else {
            return self.text.len();
        };
        let rest = &self.text[start..];
        rest.char_indices()
            .nth(char_col)
            .map_or(self.text.len(), |(i, _)| start + i)
    }

    /// 1-based line and character column of a byte offset.
    pub fn line_col(&self, offset: usize) -> LineCol {
        let offset = offset.min(self.text.len());
        let line = self.line_starts.partition_point(|&s| s <= offset);
        let start = self.line_starts[line - 1];
        let column = self
            .text
            .get(start..offset)
            .map_or(1, |s| s.chars().count() + 1);
        LineCol { line, column }
    }

    /// Byte range of the whole lines covering `start..end`, without the final newline.
    pub fn line_range(&self, start: usize, end: usize) -> (usize, usize) {
        let first = self.line_col(start).line;
        let last = self.line_col(end.max(start)).line;
        let from = self.line_starts[first - 1];
        let to = self
            .line_starts
            .get(last)
            .map_or(self.text.len(), |&s| s - 1);
        let to = if self.text[from..to].ends_with('\r') {
            to - 1
        } else {
            to
        };
        (from, to.max(from))
    }
}

/// Every file read during one run.
#[derive(Debug, Default)]
pub struct Sources {
    files: Vec<Source>,
}

impl Sources {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(&mut self, source: Source) -> FileId {
        self.files.push(source);
        FileId(u32::try_from(self.files.len() - 1).expect("fewer than 4 billion files"))
    }

    pub fn get(&self, id: FileId) -> &Source {
        &self.files[id.0 as usize]
    }

    /// `path:line:col` of the start of a span.
    pub fn location(&self, span: Span) -> String {
        let src = self.get(span.file);
        let lc = src.line_col(span.start as usize);
        format!("{}:{}:{}", src.path().display(), lc.line, lc.column)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_characters() {
        let src = Source::new("x.yml", "a: é\nbé: ö\n".to_string());
        let off = src.offset_of(2, 4);
        assert_eq!(&src.text()[off..], "ö\n");
        assert_eq!(src.line_col(off), LineCol { line: 2, column: 5 });
    }

    #[test]
    fn line_range_strips_crlf() {
        let src = Source::new("x.yml", "a: 1\r\nb: 2\r\n".to_string());
        let (from, to) = src.line_range(7, 8);
        assert_eq!(&src.text()[from..to], "b: 2");
    }
}
