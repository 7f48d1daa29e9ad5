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

/// Bytes per block of the sparse line index.
const BLOCK: usize = 4096;

/// One loaded file: its display path, its text and a sparse line index.
///
/// The index stores the number of line breaks before every 4 KiB block, not every line start:
/// a dense index costs 8 bytes a line, 512 MB for a 64 MB file of empty lines (issue 9). Every
/// lookup scans at most one block, so positions stay cheap on a file that is one long line.
#[derive(Debug)]
pub struct Source {
    path: PathBuf,
    text: String,
    block_lines: Vec<u32>,
    ascii: bool,
}

/// Where [`Source::offset_at`] last stopped: repeated lookups on one long line continue from
/// here instead of counting its characters again from the line start.
#[derive(Clone, Copy, Debug, Default)]
pub struct Cursor {
    line: usize,
    col: usize,
    offset: usize,
}

impl Source {
    pub fn new(path: impl Into<PathBuf>, text: String) -> Self {
        let bytes = text.as_bytes();
        let mut block_lines = Vec::with_capacity(bytes.len() / BLOCK + 1);
        let mut lines = 0usize;
        for block in bytes.chunks(BLOCK) {
            block_lines.push(u32::try_from(lines).unwrap_or(u32::MAX));
            lines += memchr::memchr_iter(b'\n', block).count();
        }
        if block_lines.is_empty() {
            block_lines.push(0);
        }
        Source {
            path: path.into(),
            ascii: text.is_ascii(),
            text,
            block_lines,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    /// 0-based index of the line holding byte `offset`.
    fn line_index(&self, offset: usize) -> usize {
        let offset = offset.min(self.text.len());
        let block = (offset / BLOCK).min(self.block_lines.len() - 1);
        let from = block * BLOCK;
        self.block_lines[block] as usize
            + memchr::memchr_iter(b'\n', &self.text.as_bytes()[from..offset]).count()
    }

    /// Byte offset where the 0-based line `index` starts; `None` past the last line.
    fn line_start(&self, index: usize) -> Option<usize> {
        if index == 0 {
            return Some(0);
        }
        // The `index`-th line break lies in the last block that starts on an earlier line.
        let block = self
            .block_lines
            .partition_point(|&l| (l as usize) < index)
            .saturating_sub(1);
        let from = block * BLOCK;
        let before = self.block_lines[block] as usize;
        memchr::memchr_iter(b'\n', &self.text.as_bytes()[from..])
            .nth(index - before - 1)
            .map(|i| from + i + 1)
    }

    /// Characters in `from..to` (bytes that do not continue a UTF-8 sequence).
    fn chars_between(&self, from: usize, to: usize) -> usize {
        if self.ascii {
            return to - from;
        }
        self.text.as_bytes()[from..to]
            .iter()
            .filter(|&&b| (b & 0xC0) != 0x80)
            .count()
    }

    /// Byte offset of a 1-based `line` and a 0-based character column (saphyr's markers).
    pub fn offset_of(&self, line: usize, char_col: usize) -> usize {
        self.offset_at(&mut Cursor::default(), line, char_col)
    }

    /// [`Source::offset_of`], continuing from `cursor` when it is on the same line.
    pub fn offset_at(&self, cursor: &mut Cursor, line: usize, char_col: usize) -> usize {
        let (start, skip) = if cursor.line == line && line > 0 && char_col >= cursor.col {
            (cursor.offset, char_col - cursor.col)
        } else if let Some(start) = self.line_start_after(cursor, line) {
            (start, char_col)
        } else {
            let Some(start) = self.line_start(line.saturating_sub(1)) else {
                return self.text.len();
            };
            (start, char_col)
        };
        let offset = if self.ascii {
            (start + skip).min(self.text.len())
        } else {
            self.text[start..]
                .char_indices()
                .nth(skip)
                .map_or(self.text.len(), |(i, _)| start + i)
        };
        *cursor = Cursor {
            line,
            col: char_col,
            offset,
        };
        offset
    }

    /// The start of 1-based `line` found from `cursor` when it is a few lines ahead: parser
    /// positions move forward, and a file of short lines would otherwise rescan a block for
    /// every position.
    fn line_start_after(&self, cursor: &Cursor, line: usize) -> Option<usize> {
        let ahead = line
            .checked_sub(cursor.line)
            .filter(|n| (1..=64).contains(n))?;
        if cursor.line == 0 {
            return None;
        }
        memchr::memchr_iter(b'\n', &self.text.as_bytes()[cursor.offset..])
            .nth(ahead - 1)
            .map(|i| cursor.offset + i + 1)
    }

    /// 1-based line and character column of a byte offset.
    pub fn line_col(&self, offset: usize) -> LineCol {
        let offset = offset.min(self.text.len());
        let index = self.line_index(offset);
        let start = self.line_start(index).unwrap_or(0).min(offset);
        LineCol {
            line: index + 1,
            column: self.chars_between(start, offset) + 1,
        }
    }

    /// Byte range of the whole lines covering `start..end`, without the final newline.
    pub fn line_range(&self, start: usize, end: usize) -> (usize, usize) {
        let len = self.text.len();
        let (start, end) = (start.min(len), end.max(start).min(len));
        let from = self.line_start(self.line_index(start)).unwrap_or(0);
        let to = memchr::memchr(b'\n', &self.text.as_bytes()[end..]).map_or(len, |i| end + i);
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

    #[test]
    fn sparse_index_agrees_with_a_dense_one_across_blocks() {
        let text: String = (0..3000)
            .map(|i| format!("{}é{}\n", "x".repeat(i % 13), "y".repeat(i % 7)))
            .collect();
        let src = Source::new("x.yml", text.clone());
        let mut cursor = Cursor::default();
        let mut start = 0;
        for (index, line) in text.split_inclusive('\n').enumerate() {
            assert_eq!(src.line_start(index), Some(start));
            let last = start + line.len() - 1;
            assert_eq!(src.line_col(last).line, index + 1);
            let cols = line.chars().count() - 1;
            assert_eq!(src.offset_at(&mut cursor, index + 1, cols), last);
            assert_eq!(src.line_col(last).column, cols + 1);
            start += line.len();
        }
        assert_eq!(src.line_start(3001), None);
    }

    #[test]
    fn one_long_line_is_indexed_without_line_starts() {
        let text = "a".repeat(3 * BLOCK + 5);
        let src = Source::new("x.yml", text);
        assert_eq!(
            src.line_col(3 * BLOCK + 1),
            LineCol {
                line: 1,
                column: 3 * BLOCK + 2
            }
        );
        assert_eq!(src.line_range(2 * BLOCK, 2 * BLOCK), (0, 3 * BLOCK + 5));
    }
}
