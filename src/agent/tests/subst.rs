//! `circleci env subst`, with the cases of the CircleCI CLI's own tests and a8m/envsubst's
//! expression table.

use crate::agent::subst::subst;

fn env(name: &str) -> Option<String> {
    match name {
        "ENV_NAME" => Some("world".into()),
        "EMPTY" => Some(String::new()),
        "DEFAULT" => Some("fallback".into()),
        _ => None,
    }
}

fn run(text: &str) -> String {
    subst(text, &env).unwrap()
}

#[test]
fn plain_and_braced_references() {
    assert_eq!(run("Hello $ENV_NAME!"), "Hello world!");
    assert_eq!(run("Hello ${ENV_NAME}s"), "Hello worlds");
    assert_eq!(run(r#"{"foo": "$ENV_NAME"}"#), r#"{"foo": "world"}"#);
    assert_eq!(run("foo=bar"), "foo=bar");
    assert_eq!(run(""), "");
}

#[test]
fn unset_variables_are_empty_and_lone_dollars_stay() {
    assert_eq!(run("[$UNSET][${UNSET}]"), "[][]");
    assert_eq!(run("cost: 5$ or $ 6 or $-"), "cost: 5$ or $ 6 or $-");
    assert_eq!(run("$$ENV_NAME"), "$ENV_NAME", "`$$` escapes");
}

#[test]
fn defaults_and_alternatives() {
    assert_eq!(run("${UNSET-x} ${EMPTY-x} ${ENV_NAME-x}"), "x  world");
    assert_eq!(run("${UNSET:-x} ${EMPTY:-x} ${ENV_NAME:-x}"), "x x world");
    assert_eq!(run("${UNSET=x} ${EMPTY:=x}"), "x x");
    assert_eq!(
        run("${UNSET+x}|${EMPTY+x}|${EMPTY:+x}|${ENV_NAME:+x}"),
        "|x||x"
    );
    assert_eq!(
        run("${UNSET:-$DEFAULT}"),
        "fallback",
        "a default may hold references"
    );
    assert_eq!(run("${UNSET:-${DEFAULT}!}"), "fallback!");
}

#[test]
fn unknown_forms_are_kept_and_unclosed_braces_are_errors() {
    assert_eq!(run("${} ${1a%}"), "${} ${1a%}");
    let error = subst("ok ${ENV_NAME", &env).unwrap_err();
    assert_eq!(error.at, 3);
    assert!(error.to_string().contains("no closing"), "{error}");
}

#[test]
fn multibyte_text_around_references_survives() {
    assert_eq!(run("héllo ${ENV_NAME} — ok"), "héllo world — ok");
}
