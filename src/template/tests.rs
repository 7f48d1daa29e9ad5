use std::collections::{BTreeMap, HashMap};
use std::io::Write as _;

use super::*;

fn ctx() -> TemplateContext {
    TemplateContext {
        branch: "main".into(),
        revision: "0123abcd".into(),
        build_num: "42".into(),
        checkout_key: "ssh-rsa AAAA".into(),
        environment: BTreeMap::from([
            ("CACHE_VERSION".into(), "v3".into()),
            ("CIRCLE_JOB".into(), "build".into()),
        ]),
        epoch: 1_700_000_000,
        arch: "linux-amd64-6_62".into(),
    }
}

fn render(text: &str) -> Result<String, String> {
    render_with(text, &HashMap::new())
}

fn render_with(
    text: &str,
    sums: &HashMap<String, Result<String, String>>,
) -> Result<String, String> {
    Template::parse(text)
        .and_then(|t| t.render(&ctx(), sums))
        .map_err(|e| e.to_string())
}

fn sums(pairs: &[(&str, Result<&str, &str>)]) -> HashMap<String, Result<String, String>> {
    pairs
        .iter()
        .map(|(f, r)| (f.to_string(), r.map(str::to_string).map_err(str::to_string)))
        .collect()
}

#[test]
fn checksum_is_base64_of_sha256() {
    // Same as `printf abc | openssl dgst -sha256 -binary | base64`.
    assert_eq!(
        checksum(b"abc"),
        "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0="
    );
    assert_eq!(
        checksum(b""),
        "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
    );
}

#[test]
fn checksummer_streams_to_the_same_value() {
    let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let mut summer = Checksummer::new();
    for chunk in data.chunks(777) {
        summer.write_all(chunk).unwrap();
    }
    assert_eq!(summer.finish(), checksum(&data));
}

#[test]
fn every_field_renders() {
    assert_eq!(
        render("{{ .Branch }}/{{ .Revision }}/{{ .BuildNum }}/{{ .CheckoutKey }}").unwrap(),
        "main/0123abcd/42/ssh-rsa AAAA"
    );
    assert_eq!(render("{{.Environment.CACHE_VERSION}}").unwrap(), "v3");
    assert_eq!(
        render("{{ .Environment }}").unwrap(),
        "map[CACHE_VERSION:v3 CIRCLE_JOB:build]"
    );
}

#[test]
fn functions_render() {
    assert_eq!(render("{{ epoch }}").unwrap(), "1700000000");
    assert_eq!(render("{{arch}}").unwrap(), "linux-amd64-6_62");
    let s = sums(&[(
        "package-lock.json",
        Ok("aWt1SBJau3sI1Ix2iCYSsQvxk8WUCz3k1FaUSTDBdBo="),
    )]);
    assert_eq!(
        render_with("v1-npm-{{ checksum \"package-lock.json\" }}", &s).unwrap(),
        "v1-npm-aWt1SBJau3sI1Ix2iCYSsQvxk8WUCz3k1FaUSTDBdBo="
    );
    assert_eq!(
        render_with("{{checksum `package-lock.json`}}", &s).unwrap(),
        "aWt1SBJau3sI1Ix2iCYSsQvxk8WUCz3k1FaUSTDBdBo="
    );
}

#[test]
fn literal_text_and_strings_pass_through() {
    assert_eq!(render("v1-deps").unwrap(), "v1-deps");
    assert_eq!(render("{{ \"a\\tb\" }}").unwrap(), "a\tb");
    assert_eq!(render("a}}b").unwrap(), "a}}b");
    assert_eq!(render("").unwrap(), "");
}

#[test]
fn whitespace_inside_braces_is_optional_and_trim_markers_work() {
    assert_eq!(
        render("{{.Branch}}").unwrap(),
        render("{{   .Branch\t}}").unwrap()
    );
    assert_eq!(render("a  {{- .Branch -}}  b").unwrap(), "amainb");
    assert_eq!(render("a\n{{- .Branch }}\nb").unwrap(), "amain\nb");
    assert_eq!(render("v1-{{/* bump to reset */}}x").unwrap(), "v1-x");
}

#[test]
fn a_missing_environment_key_is_no_value_like_go() {
    assert_eq!(render("{{ .Environment.NOPE }}").unwrap(), "<no value>");
    assert_eq!(render("{{ .Environment.NOPE.X }}").unwrap(), "<no value>");
}

#[test]
fn a_missing_checksum_file_fails_with_circleci_wording() {
    // The observed CircleCI message (fourkitchens#86); `checksum` starts at byte 20.
    let s = sums(&[(
        "~/project/composer.lock",
        Err("open /home/circleci/project/composer.lock: no such file or directory"),
    )]);
    assert_eq!(
        render_with(
            "v1-composer-deps-{{ checksum \"~/project/composer.lock\" }}",
            &s
        )
        .unwrap_err(),
        "template: cacheKey:1:20: executing \"cacheKey\" at <checksum \"~/project/composer.lock\">: \
         error calling checksum: open /home/circleci/project/composer.lock: no such file or directory"
    );
    let short = sums(&[("x", Err(&missing_file_message("x")))]);
    assert_eq!(
        render_with("{{ checksum \"x\" }}", &short).unwrap_err(),
        "template: cacheKey:1:3: executing \"cacheKey\" at <checksum \"x\">: \
         error calling checksum: open x: no such file or directory"
    );
}

#[test]
fn positions_count_lines_and_bytes_within_the_line() {
    let s = sums(&[("x", Err(&directory_message("x")))]);
    assert_eq!(
        render_with("a\nbc{{checksum \"x\"}}", &s).unwrap_err(),
        "template: cacheKey:2:4: executing \"cacheKey\" at <checksum \"x\">: \
         error calling checksum: read x: is a directory"
    );
}

#[test]
fn a_checksum_the_caller_did_not_compute_is_an_error_not_a_panic() {
    let err = render("{{ checksum \"y\" }}").unwrap_err();
    assert!(
        err.ends_with("the checksum of \"y\" was not computed"),
        "{err}"
    );
}

#[test]
fn wrong_arity_is_an_execution_error() {
    assert_eq!(
        render("{{ checksum }}").unwrap_err(),
        "template: cacheKey:1:3: executing \"cacheKey\" at <checksum>: \
         wrong number of args for checksum: want 1 got 0"
    );
    assert_eq!(
        render("{{ epoch \"x\" }}").unwrap_err(),
        "template: cacheKey:1:3: executing \"cacheKey\" at <epoch>: \
         wrong number of args for epoch: want 0 got 1"
    );
}

#[test]
fn unknown_fields_are_execution_errors() {
    assert_eq!(
        render("v1-{{ .Foo }}").unwrap_err(),
        "template: cacheKey:1:6: executing \"cacheKey\" at <.Foo>: \
         can't evaluate field Foo in type TemplateContext"
    );
    assert_eq!(
        render("{{ .Branch.Name }}").unwrap_err(),
        "template: cacheKey:1:3: executing \"cacheKey\" at <.Branch.Name>: \
         can't evaluate field Name in type string"
    );
    assert_eq!(
        render("{{ .Environment.CACHE_VERSION.X }}").unwrap_err(),
        "template: cacheKey:1:3: executing \"cacheKey\" at <.Environment.CACHE_VERSION.X>: \
         can't evaluate field X in type string"
    );
}

#[test]
fn unknown_functions_are_parse_errors_with_a_hint() {
    let err = Template::parse("{{ parameters.cache_key }}").unwrap_err();
    assert_eq!(
        err.to_string(),
        "template: cacheKey:1: function \"parameters\" not defined"
    );
    assert!(err.hint().unwrap().contains("checksum"));
}

#[test]
fn keys_longer_than_900_characters_are_rejected() {
    let ok = "k".repeat(MAX_KEY_CHARS);
    assert_eq!(render(&ok).unwrap(), ok);
    let err = render(&format!("{ok}{{{{ .Branch }}}}")).unwrap_err();
    assert_eq!(
        err,
        "cache key is 904 characters long; CircleCI allows at most 900"
    );
}

#[test]
fn checksum_files_are_listed_once_in_order() {
    let t = Template::parse(
        "{{ checksum \"b.lock\" }}-{{ checksum \"a.lock\" }}-{{ checksum \"b.lock\" }}-{{ .Branch }}",
    )
    .unwrap();
    assert_eq!(t.checksum_files(), vec!["b.lock", "a.lock"]);
    assert!(
        Template::parse("v1-{{ epoch }}")
            .unwrap()
            .checksum_files()
            .is_empty()
    );
}

#[test]
fn arch_has_circleci_shape() {
    let cpuinfo = "processor\t: 0\nvendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel\t\t: 62\nmodel name\t: Xeon\n";
    assert_eq!(arch_string("linux", "x86_64", cpuinfo), "linux-amd64-6_62");
    assert_eq!(
        arch_string("linux", "aarch64", "CPU part : 0xd0c\n"),
        "linux-arm64"
    );
    assert!(host_arch().starts_with(std::env::consts::OS));
}
