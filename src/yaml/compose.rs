//! Builds a [`Node`] tree from saphyr-parser events: spans on every node, anchors and aliases
//! (a redefined anchor wins for later aliases), `<<` merge keys in every form CircleCI accepts
//! (one mapping, a list, several `<<` keys in one mapping; explicit keys win, earlier sources win),
//! and a budget on the bytes the tree takes (every alias copy counted) so a YAML bomb or a huge
//! generated file is an error, not an out-of-memory (issue 9: a 1 MB anchored scalar behind four
//! levels of `[*x, *x, ...]` aborted the process; a node count alone does not see the bytes).

use std::collections::{HashMap, HashSet};

use saphyr_parser::{Event, Parser, ScalarStyle, ScanError, StrInput};

use super::node::{Entry, Kind, Map, Node};
use super::scalar;
use crate::diagnostic::Diagnostic;
use crate::source::{Cursor, FileId, Source, Span};

/// How many bytes the composed tree may take, estimated as it grows: every node, every string
/// and every copy an alias or an anchor makes. A large real config takes a few megabytes.
pub(crate) const TREE_BUDGET: usize = 64 * 1024 * 1024;
/// How deeply collections may nest.
const MAX_DEPTH: usize = 256;

type Spanned<'a> = (Event<'a>, saphyr_parser::Span);

/// Parses the first YAML document of `source`. An empty document is a `Null` node.
pub fn compose(source: &Source, file: FileId) -> Result<Node, Diagnostic> {
    let mut composer = Composer {
        parser: Parser::new_from_str(source.text()),
        source,
        file,
        anchors: HashMap::new(),
        budget: TREE_BUDGET,
        cursor: Cursor::default(),
    };
    composer.document()
}

struct Composer<'a> {
    parser: Parser<'a, StrInput<'a>>,
    source: &'a Source,
    file: FileId,
    /// Anchored nodes with their weight in bytes.
    anchors: HashMap<usize, (Node, usize)>,
    /// Bytes the tree may still grow by.
    budget: usize,
    cursor: Cursor,
}

/// The estimated bytes of one node besides its children (a mapping key counts as a node).
/// Text counts four times: validation and compilation copy a value about that often (a 30 MB
/// scalar took 200 MB in `process`).
fn node_weight(text: &str) -> usize {
    std::mem::size_of::<Node>() + 4 * text.len()
}

/// One key/value pair before merge resolution.
struct Pair {
    key: String,
    key_span: Span,
    merge: bool,
    value: Node,
}

impl<'a> Composer<'a> {
    fn document(&mut self) -> Result<Node, Diagnostic> {
        loop {
            let (event, span) = self.next()?;
            match event {
                Event::StreamStart | Event::DocumentStart(_) | Event::Nothing => {}
                Event::StreamEnd | Event::DocumentEnd => {
                    return Ok(Node::null(self.span(&span)));
                }
                other => return Ok(self.node(other, span, 0)?.0),
            }
        }
    }

    fn next(&mut self) -> Result<Spanned<'a>, Diagnostic> {
        match self.parser.next() {
            Some(Ok(ev)) => Ok(ev),
            Some(Err(e)) => Err(self.scan_error(&e)),
            None => Err(Diagnostic::error(
                self.end_span(),
                "unexpected end of the YAML document",
            )),
        }
    }

    fn scan_error(&self, e: &ScanError) -> Diagnostic {
        let m = e.marker();
        let mut at = self.source.offset_of(m.line(), m.col());
        let info = e.info();
        // saphyr marks where a scalar began or the column after a tab; the tab itself is the
        // useful place: the first one on the marked line, else the next one after the mark.
        if info.contains("tab") {
            let text = self.source.text();
            let (line_start, line_end) = self.source.line_range(at, at);
            at = text[line_start..line_end]
                .find('\t')
                .map(|i| line_start + i)
                .or_else(|| text[at..].find('\t').map(|i| at + i))
                .unwrap_or(at);
        }
        let hint = if info.contains("tab") {
            "YAML indentation must use spaces, not tabs"
        } else {
            "fix the YAML syntax at this position"
        };
        Diagnostic::error(
            Span::new(self.file, at, at),
            format!("invalid YAML: {info}"),
        )
        .with_hint(hint)
    }

    fn end_span(&self) -> Span {
        let len = self.source.text().len();
        Span::new(self.file, len, len)
    }

    fn span(&mut self, s: &saphyr_parser::Span) -> Span {
        let start = self
            .source
            .offset_at(&mut self.cursor, s.start.line(), s.start.col());
        let end = self
            .source
            .offset_at(&mut self.cursor, s.end.line(), s.end.col());
        Span::new(self.file, start, end)
    }

    /// Takes `weight` bytes from the budget, or says why the document is too large.
    fn charge(&mut self, span: Span, weight: usize, alias: bool) -> Result<(), Diagnostic> {
        if let Some(left) = self.budget.checked_sub(weight) {
            self.budget = left;
            return Ok(());
        }
        let mb = TREE_BUDGET / (1024 * 1024);
        Err(if alias {
            Diagnostic::error(
                span,
                format!("aliases expand the YAML beyond localci's {mb} MB budget for values (a YAML bomb?)"),
            )
            .with_hint("each `*alias` copies its anchor; reduce aliases that refer to other aliases or to large values")
        } else {
            Diagnostic::error(
                span,
                format!("the YAML exceeds localci's {mb} MB budget for values; localci stops reading here"),
            )
            .with_hint("a CircleCI config is usually a few hundred kilobytes (text counts four times, as it is copied while compiling); remove generated or pasted data")
        })
    }

    /// Composes one node; returns it with its weight in bytes (for the budget).
    fn node(
        &mut self,
        event: Event<'a>,
        raw_span: saphyr_parser::Span,
        depth: usize,
    ) -> Result<(Node, usize), Diagnostic> {
        let span = self.span(&raw_span);
        if depth > MAX_DEPTH {
            return Err(Diagnostic::error(
                span,
                format!("the YAML nests more than {MAX_DEPTH} levels deep"),
            ));
        }
        let (node, size, anchor) = match event {
            Event::Scalar(text, style, anchor, tag) => {
                let weight = node_weight(&text);
                self.charge(span, weight, false)?;
                let node = scalar_node(
                    span,
                    &text,
                    style,
                    tag.as_deref().map(|t| t.suffix.as_str()),
                );
                (node, weight, anchor)
            }
            Event::SequenceStart(anchor, _) => {
                let mut items = Vec::new();
                let mut size = node_weight("");
                self.charge(span, size, false)?;
                let mut end = span.end;
                loop {
                    let (ev, s) = self.next()?;
                    if matches!(ev, Event::SequenceEnd) {
                        end = end.max(self.span(&s).end);
                        break;
                    }
                    let (item, n) = self.node(ev, s, depth + 1)?;
                    size += n;
                    end = end.max(item.span.end);
                    items.push(item);
                }
                let span = Span { end, ..span };
                // A list grows by doubling, from four items: most lists are shorter.
                items.shrink_to_fit();
                (Node::new(span, Kind::Seq(items)), size, anchor)
            }
            Event::MappingStart(anchor, _) => {
                let (map, size, end) = self.mapping(span, depth)?;
                (
                    Node::new(Span { end, ..span }, Kind::Map(map)),
                    size,
                    anchor,
                )
            }
            Event::Alias(id) => {
                let Some(&(_, size)) = self.anchors.get(&id) else {
                    return Err(
                        Diagnostic::error(span, "alias to an unknown anchor").with_hint(
                            "define the anchor (`&name`) before the alias (`*name`) that uses it",
                        ),
                    );
                };
                self.charge(span, size, true)?;
                return Ok((self.anchors[&id].0.clone(), size));
            }
            _ => {
                return Err(Diagnostic::error(span, "unexpected YAML structure"));
            }
        };
        if anchor != 0 {
            // The anchor keeps its own copy of the node, for its aliases.
            self.charge(span, size, true)?;
            self.anchors.insert(anchor, (node.clone(), size));
        }
        Ok((node, size))
    }

    fn mapping(&mut self, span: Span, depth: usize) -> Result<(Map, usize, u32), Diagnostic> {
        let mut pairs = Vec::new();
        let mut size = node_weight("");
        self.charge(span, size, false)?;
        let mut end = span.end;
        loop {
            let (ev, s) = self.next()?;
            if matches!(ev, Event::MappingEnd) {
                end = end.max(self.span(&s).end);
                break;
            }
            let merge = matches!(&ev, Event::Scalar(t, ScalarStyle::Plain, _, None) if t == "<<");
            let (key, n) = self.node(ev, s, depth + 1)?;
            size += n;
            let key_span = key.span;
            let Some(key_text) = key.into_scalar_text() else {
                return Err(Diagnostic::error(
                    key_span,
                    "a mapping key must be a plain value, not a list or map",
                ));
            };
            let (ev, s) = self.next()?;
            let (value, n) = self.node(ev, s, depth + 1)?;
            size += n;
            end = end.max(value.span.end);
            pairs.push(Pair {
                key: key_text,
                key_span,
                merge,
                value,
            });
        }
        Ok((resolve_merges(pairs)?, size, end))
    }
}

/// A scalar's node. The text is copied, not moved: the parser's own strings have spare
/// capacity, which a config of millions of scalars would keep (issue 9).
fn scalar_node(span: Span, text: &str, style: ScalarStyle, tag: Option<&str>) -> Node {
    if style != ScalarStyle::Plain || tag == Some("str") {
        return Node::string(span, text);
    }
    match scalar::typed(text) {
        Some(kind) => Node {
            span,
            kind,
            raw: Some(text.into()),
        },
        None => Node::string(span, text),
    }
}

/// Applies `<<` merge keys: explicit keys win over merged ones; among merge sources the first
/// one that defines a key wins. Explicit duplicate keys are an error.
fn resolve_merges(pairs: Vec<Pair>) -> Result<Map, Diagnostic> {
    if let Some((first, again)) = duplicate(&pairs) {
        return Err(Diagnostic::error(
            again.key_span,
            format!("duplicate key `{}` in this mapping", again.key),
        )
        .with_label(first, "first defined here")
        .with_hint(
            "remove one of the two entries; YAML does not allow a key twice in one mapping",
        ));
    }
    if !pairs.iter().any(|p| p.merge) {
        // Nearly every mapping: no hashing, no copies of its keys. A new vector of the exact
        // length, as `collect` would keep the pairs' larger buffer.
        let mut entries = Vec::with_capacity(pairs.len());
        entries.extend(pairs.into_iter().map(|p| Entry {
            key: p.key,
            key_span: p.key_span,
            value: p.value,
        }));
        return Ok(Map::from_entries(entries));
    }
    let explicit: HashSet<&str> = pairs
        .iter()
        .filter(|p| !p.merge)
        .map(|p| p.key.as_str())
        .collect();
    let explicit: HashSet<String> = explicit.into_iter().map(str::to_string).collect();
    let mut seen = HashSet::new();
    let mut entries = Vec::with_capacity(pairs.len());
    for pair in pairs {
        if !pair.merge {
            entries.push(Entry {
                key: pair.key,
                key_span: pair.key_span,
                value: pair.value,
            });
            continue;
        }
        for source in merge_sources(&pair.value)? {
            for e in &source.entries {
                if !explicit.contains(&e.key) && seen.insert(e.key.clone()) {
                    entries.push(e.clone());
                }
            }
        }
    }
    Ok(Map::from_entries(entries))
}

/// The first explicit key written twice: where it was first written, and the pair that repeats it.
fn duplicate(pairs: &[Pair]) -> Option<(Span, &Pair)> {
    /// Up to this many keys, comparing each with those before it is faster than hashing.
    const LINEAR: usize = 16;
    let explicit = || pairs.iter().filter(|p| !p.merge);
    if pairs.len() <= LINEAR {
        return explicit().enumerate().find_map(|(i, p)| {
            explicit()
                .take(i)
                .find(|q| q.key == p.key)
                .map(|q| (q.key_span, p))
        });
    }
    let mut first: HashMap<&str, Span> = HashMap::with_capacity(pairs.len());
    explicit().find_map(|p| first.insert(&p.key, p.key_span).map(|span| (span, p)))
}

fn merge_sources(value: &Node) -> Result<Vec<&Map>, Diagnostic> {
    let bad = |span| {
        Diagnostic::error(
            span,
            "the merge key `<<` needs a mapping or a list of mappings",
        )
        .with_hint("write `<<: *anchor` or `<<: [*a, *b]` where each anchor names a mapping")
    };
    match &value.kind {
        Kind::Map(m) => Ok(vec![m]),
        Kind::Seq(items) => items
            .iter()
            .map(|i| i.as_map().ok_or_else(|| bad(i.span)))
            .collect(),
        _ => Err(bad(value.span)),
    }
}
