use super::*;
use crate::source::{Source, Sources};

fn parse_str(text: &str) -> Result<Node, crate::diagnostic::Diagnostic> {
    let mut sources = Sources::new();
    let id = sources.add(Source::new("t.yml", text.to_string()));
    parse(sources.get(id), id)
}

fn json(text: &str) -> serde_json::Value {
    parse_str(text).expect("parses").to_json()
}

fn line_of(text: &str, offset: u32) -> usize {
    Source::new("t.yml", text.to_string())
        .line_col(offset as usize)
        .line
}

#[test]
fn merge_forms_explicit_keys_win_and_earlier_sources_win() {
    let text = "a: &a {x: 1, y: 2}\nb: &b {y: 5, z: 3}\nc:\n  <<: *a\n  <<: *b\n  y: 9\nd:\n  <<: [*a, *b]\n  x: 7\n";
    let v = json(text);
    assert_eq!(v["c"], serde_json::json!({"x": 1, "y": 9, "z": 3}));
    assert_eq!(v["d"], serde_json::json!({"y": 2, "z": 3, "x": 7}));
}

#[test]
fn quoted_merge_key_is_an_ordinary_key() {
    let v = json("a: &a {x: 1}\nb:\n  \"<<\": *a\n");
    assert_eq!(v["b"]["<<"]["x"], 1);
}

#[test]
fn redefined_anchor_wins_for_later_aliases() {
    let v = json("a: &x 1\nb: *x\nc: &x 2\nd: *x\n");
    assert_eq!((v["b"].as_i64(), v["d"].as_i64()), (Some(1), Some(2)));
}

#[test]
fn raw_text_of_plain_scalars_is_kept() {
    let node = parse_str("FOO: 1.10\nBAR: 0x1F\nBAZ: yes\n").unwrap();
    let text = |k: &str| node.get(k).unwrap().scalar_text().unwrap();
    assert_eq!(
        (text("FOO"), text("BAR"), text("BAZ")),
        ("1.10".into(), "0x1F".into(), "yes".into())
    );
    assert_eq!(node.get("BAZ").unwrap().as_bool(), Some(true));
}

#[test]
fn crlf_and_tabs_inside_plain_scalars() {
    let text = "a: 1\r\nb: x\ty\r\nc: 3\r\n";
    let node = parse_str(text).unwrap();
    assert_eq!(node.get("b").unwrap().as_str(), Some("x\ty"));
    assert_eq!(line_of(text, node.get("c").unwrap().span.start), 3);
}

#[test]
fn spans_point_at_values_and_keys() {
    let text = "jobs:\n  build:\n    steps:\n      - chekout\n";
    let node = parse_str(text).unwrap();
    let (step, _) = node.pointer("/jobs/build/steps/0").unwrap();
    let src = Source::new("t.yml", text.to_string());
    let at = src.line_col(step.span.start as usize);
    assert_eq!((at.line, at.column), (4, 9));
    assert_eq!(step.span.end - step.span.start, 7);
    let (_, entry) = node.pointer("/jobs/build").unwrap();
    assert_eq!(src.line_col(entry.unwrap().key_span.start as usize).line, 2);
}

#[test]
fn merged_values_keep_the_span_of_their_definition() {
    let text = "x: &d\n  wd: /tmp\ny:\n  <<: *d\n";
    let node = parse_str(text).unwrap();
    assert_eq!(
        line_of(text, node.pointer("/y/wd").unwrap().0.span.start),
        2
    );
}

#[test]
fn syntax_error_has_a_position() {
    let text = "a:\n\t- b\n";
    let err = parse_str(text).unwrap_err();
    assert!(err.message.starts_with("invalid YAML"), "{}", err.message);
    assert_eq!(line_of(text, err.span.unwrap().start), 2);
}

#[test]
fn duplicate_keys_are_reported_with_both_places() {
    let text = "a: 1\nb: 2\na: 3\n";
    let err = parse_str(text).unwrap_err();
    assert!(err.message.contains("duplicate key `a`"));
    assert_eq!(line_of(text, err.span.unwrap().start), 3);
    assert_eq!(line_of(text, err.labels[0].0.start), 1);
}

#[test]
fn alias_bomb_is_bounded() {
    let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..12 {
        let prev = format!("*a{}", i - 1);
        text.push_str(&format!("a{i}: &a{i} [{}]\n", vec![prev; 10].join(", ")));
    }
    let err = parse_str(&text).unwrap_err();
    assert!(err.message.contains("YAML bomb"), "{}", err.message);
}

#[test]
fn unknown_alias_and_empty_document() {
    assert!(
        parse_str("a: *nope\n")
            .unwrap_err()
            .message
            .contains("unknown anchor")
    );
    assert!(parse_str("").unwrap().is_null());
    assert!(parse_str("# only a comment\n").unwrap().is_null());
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    let text = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
    let err = parse_str(&text).unwrap_err();
    assert!(
        err.message.contains("nest") || err.message.contains("recursion limit"),
        "{}",
        err.message
    );
}

#[test]
fn emit_round_trips_data() {
    let text = "version: 2.1\njobs:\n  build:\n    docker:\n      - image: cimg/base:2024.01\n    environment:\n      A: \"1.10\"\n      B: \"yes\"\n      C: ''\n      D: \"a: b\"\n    steps:\n      - checkout\n      - run:\n          command: |\n            echo hi\n            cat <<EOF\n              x\n            EOF\n      - run: \"  lead\\ntrail  \\n\"\n      - run: [a, b]\n      - -x\n      - \"#c\"\n";
    let node = parse_str(text).unwrap();
    let out = emit::emit(&node);
    let again = parse_str(&out).unwrap_or_else(|e| panic!("{}\n{out}", e.message));
    assert_eq!(node.to_json(), again.to_json(), "{out}");
}

#[test]
fn large_maps_are_indexed_and_stay_right_after_direct_edits() {
    let span = crate::source::Span::default();
    let mut map = Map::default();
    for i in 0..1000 {
        map.insert(format!("k{i}"), span, Node::string(span, i.to_string()));
    }
    map.insert("k10", span, Node::string(span, "ten"));
    assert_eq!(map.len(), 1000);
    assert_eq!(map.get("k10").and_then(Node::as_str), Some("ten"));
    assert_eq!(map.get("k999").and_then(Node::as_str), Some("999"));
    assert!(map.get("k1000").is_none());
    // `entries` is public: a push behind the index's back is still found.
    map.entries.push(Entry {
        key: "late".into(),
        key_span: span,
        value: Node::null(span),
    });
    assert!(map.contains_key("late"));
    assert_eq!(map.remove("k0").map(|e| e.key), Some("k0".into()));
    assert_eq!(map.get("k1").and_then(Node::as_str), Some("1"));
    map.entries[0].key = "renamed".into();
    assert!(map.get("k1").is_none() && map.contains_key("renamed"));
    let copy = map.clone();
    assert_eq!(copy, map);
    assert_eq!(copy.get("k500").and_then(Node::as_str), Some("500"));
}

#[test]
fn a_node_stays_small() {
    // The byte budget counts nodes at this size; a bigger node needs a smaller budget.
    assert!(
        std::mem::size_of::<Node>() <= 88,
        "{}",
        std::mem::size_of::<Node>()
    );
}
