//! Tests of JUnit summaries on reports written the way pytest, jest-junit and surefire write them.

use std::fs;

use super::*;

/// What `pytest --junitxml` writes (pytest 8, `junit_family=xunit2`).
const PYTEST: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<testsuites name="pytest tests"><testsuite name="pytest" errors="1" failures="1" skipped="1" tests="5" time="0.412" timestamp="2026-01-10T10:00:00.000000+00:00" hostname="runner"><testcase classname="tests.test_app" name="test_index" time="0.010" /><testcase classname="tests.test_app" name="test_health[json]" time="0.004" /><testcase classname="tests.test_app" name="test_create" time="0.021"><failure message="assert 500 == 201">def test_create(client):
&gt;       assert resp.status_code == 201
E       assert 500 == 201

tests/test_app.py:31: AssertionError</failure></testcase><testcase classname="tests.test_db" name="test_migrate" time="0.000"><error message="failed on setup with &quot;sqlite3.OperationalError: no such table&quot;">fixture error</error></testcase><testcase classname="tests.test_db" name="test_slow" time="0.000"><skipped type="pytest.skip" message="needs postgres">tests/test_db.py:12: needs postgres</skipped></testcase></testsuite></testsuites>
"#;

/// What `jest-junit` writes: one `<testsuite>` per test file, class names are describe blocks.
const JEST: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<testsuites name="jest tests" tests="4" failures="1" errors="0" time="1.234">
  <testsuite name="src/sum.test.js" errors="0" failures="0" skipped="1" timestamp="2026-01-10T10:00:00" time="0.5" tests="2">
    <testcase classname="sum adds 1 + 2 to equal 3" name="sum adds 1 + 2 to equal 3" time="0.003">
    </testcase>
    <testcase classname="sum handles big numbers" name="sum handles big numbers" time="0">
      <skipped/>
    </testcase>
  </testsuite>
  <testsuite name="src/api.test.js" errors="0" failures="1" skipped="0" timestamp="2026-01-10T10:00:01" time="0.7" tests="2">
    <testcase classname="api returns users" name="api returns users" time="0.1">
    </testcase>
    <testcase classname="api rejects bad tokens" name="api rejects bad tokens" time="0.2">
      <failure>Error: expect(received).toBe(expected) // Object.is equality

Expected: 401
Received: 200
    at Object.&lt;anonymous&gt; (src/api.test.js:20:5)</failure>
    </testcase>
  </testsuite>
</testsuites>
"#;

/// What Maven surefire writes: a bare `<testsuite>` root with properties, flaky reruns.
const SUREFIRE: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<testsuite xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:noNamespaceSchemaLocation="https://maven.apache.org/surefire/maven-surefire-plugin/xsd/surefire-test-report-3.0.xsd" version="3.0" name="com.acme.OrderServiceTest" time="0.532" tests="4" errors="0" skipped="1" failures="1">
  <properties>
    <property name="java.version" value="21.0.2"/>
    <property name="os.name" value="Linux"/>
  </properties>
  <testcase name="createsOrder" classname="com.acme.OrderServiceTest" time="0.102"/>
  <testcase name="retriesPayment" classname="com.acme.OrderServiceTest" time="0.201">
    <flakyFailure message="timeout" type="java.net.SocketTimeoutException">
      <stackTrace>java.net.SocketTimeoutException: timeout</stackTrace>
    </flakyFailure>
  </testcase>
  <testcase name="rejectsEmptyCart" classname="com.acme.OrderServiceTest" time="0.011">
    <failure message="expected: &lt;400&gt; but was: &lt;200&gt;" type="org.opentest4j.AssertionFailedError"><![CDATA[org.opentest4j.AssertionFailedError: expected: <400> but was: <200>
	at com.acme.OrderServiceTest.rejectsEmptyCart(OrderServiceTest.java:42)]]></failure>
    <system-out><![CDATA[POST /orders -> 200]]></system-out>
  </testcase>
  <testcase name="exportsCsv" classname="com.acme.OrderServiceTest" time="0">
    <skipped message="@Disabled"/>
  </testcase>
</testsuite>
"#;

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(&path, text).unwrap();
    path
}

fn one(text: &str) -> TestSummary {
    let dir = tempfile::tempdir().unwrap();
    summarize(&write(dir.path(), "report.xml", text)).unwrap()
}

#[test]
fn pytest_report() {
    let s = one(PYTEST);
    assert_eq!((s.passed, s.failed, s.errors, s.skipped), (2, 1, 1, 1));
    assert_eq!(
        s.failures,
        vec!["tests.test_app::test_create", "tests.test_db::test_migrate"]
    );
    assert_eq!(s.files, 1);
    assert!(s.warnings.is_empty());
}

#[test]
fn jest_report_with_several_suites() {
    let s = one(JEST);
    assert_eq!((s.passed, s.failed, s.errors, s.skipped), (2, 1, 0, 1));
    assert_eq!(
        s.failures,
        vec!["api rejects bad tokens::api rejects bad tokens"]
    );
}

#[test]
fn surefire_report_flaky_failures_passed() {
    let s = one(SUREFIRE);
    assert_eq!((s.passed, s.failed, s.errors, s.skipped), (2, 1, 0, 1));
    assert_eq!(
        s.failures,
        vec!["com.acme.OrderServiceTest::rejectsEmptyCart"]
    );
}

#[test]
fn nested_suites_name_classless_failures_after_the_innermost_suite() {
    let s = one(
        r#"<testsuites><testsuite name="outer"><testsuite name="inner">
        <testcase name="a"><failure/></testcase></testsuite>
        <testcase name="b"><error message="boom"/></testcase>
        <testcase name="c"/></testsuite></testsuites>"#,
    );
    assert_eq!((s.passed, s.failed, s.errors), (1, 1, 1));
    assert_eq!(s.failures, vec!["inner::a", "outer::b"]);
}

#[test]
fn directories_are_searched_recursively_for_xml_only() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "pytest/results.xml", PYTEST);
    write(dir.path(), "jest/deep/junit.XML", JEST);
    write(
        dir.path(),
        "surefire/TEST-com.acme.OrderServiceTest.xml",
        SUREFIRE,
    );
    write(dir.path(), "surefire/output.txt", "not xml at all <<<");
    let s = summarize(dir.path()).unwrap();
    assert_eq!(s.files, 3);
    assert_eq!(s.total(), 5 + 4 + 4);
    assert_eq!(s.failed, 3);
    assert!(s.warnings.is_empty(), "{:?}", s.warnings);
}

#[test]
fn bad_and_foreign_files_are_warnings_not_errors() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "good.xml", PYTEST);
    write(
        dir.path(),
        "broken.xml",
        "<testsuite><testcase name=\"x\"></testsuite>",
    );
    write(
        dir.path(),
        "pom.xml",
        "<project><modelVersion>4.0.0</modelVersion></project>",
    );
    write(dir.path(), "empty.xml", "");
    let s = summarize(dir.path()).unwrap();
    assert_eq!(s.files, 1);
    assert_eq!(s.total(), 5, "the broken file's test is not counted");
    assert_eq!(s.warnings.len(), 3, "{:?}", s.warnings);
    assert!(
        s.warnings
            .iter()
            .any(|w| w.contains("broken.xml") && w.contains("invalid XML"))
    );
    assert!(
        s.warnings
            .iter()
            .any(|w| w.contains("pom.xml") && w.contains("not a JUnit report"))
    );
}

#[test]
fn a_missing_path_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    assert!(summarize(&dir.path().join("nope")).is_err());
}

#[test]
fn case_timings_take_the_file_from_the_case_or_its_suite() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "a/cases.xml",
        r#"<testsuites><testsuite name="s" file="tests/suite.py">
        <testcase classname="C" name="t1" time="1.5" file="tests/own.py"/>
        <testcase classname="C" name="t2" time="0.25"><failure/></testcase>
        <testcase classname="D" name="t3" time="oops"/></testsuite></testsuites>"#,
    );
    write(dir.path(), "b/not-junit.xml", "<html/>");
    let timings = case_timings(dir.path()).unwrap();
    let row = |file: &str, class: &str, name: &str, seconds: f64| CaseTiming {
        file: file.into(),
        classname: class.into(),
        name: name.into(),
        seconds,
    };
    assert_eq!(
        timings,
        vec![
            row("tests/own.py", "C", "t1", 1.5),
            row("tests/suite.py", "C", "t2", 0.25),
            row("tests/suite.py", "D", "t3", 0.0),
        ]
    );
}

#[test]
fn case_timings_of_jest_reports_without_file_attributes_have_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let timings = case_timings(&write(dir.path(), "jest.xml", JEST)).unwrap();
    assert_eq!(timings.len(), 4);
    assert!(timings.iter().all(|t| t.file.is_empty()));
    assert_eq!(timings[3].name, "api rejects bad tokens");
    assert_eq!(timings[3].seconds, 0.2);
}
