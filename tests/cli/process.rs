//! `localci process`, end to end through the real binary:
//! - golden tests: every folder of `tests/process/` (our own configs), compared as text and as
//!   data; `LOCALCI_UPDATE_GOLDEN=1` rewrites the expectations;
//! - ground truth: the real CircleCI compiler's input/output pairs in
//!   `../shared/process-oracle`, compared as data modulo the documented era differences;
//! - every valid 2.1 config of `../shared/conformance` that needs no registry orb compiles to a
//!   2.0-shaped config;
//! - the command-line surface (flags, `-o`, exit codes).

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use serde_json::Value;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `<repo>/../shared/<dir>`; a git worktree one level deeper (`wt/<name>`) looks one level up.
fn shared(dir: &str) -> Option<PathBuf> {
    let candidates = [repo().join("../shared").join(dir), repo().join("../../shared").join(dir)];
    let found = candidates.iter().find(|p| p.is_dir()).cloned();
    if found.is_none() {
        eprintln!("skipped: {} is absent", candidates[0].display());
    }
    found
}

struct Output {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs `localci --color never process <args>` in `dir`, with a private HOME and cache.
fn process(dir: &Path, home: &Path, args: &[String]) -> Output {
    let out = Command::cargo_bin("localci")
        .expect("the localci binary is built for integration tests")
        .current_dir(dir)
        .env("HOME", home)
        .env("XDG_CACHE_HOME", home.join("cache"))
        .args(["--color", "never", "process"])
        .args(args)
        .output()
        .expect("localci runs");
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8(out.stdout).expect("UTF-8 stdout"),
        stderr: String::from_utf8(out.stderr).expect("UTF-8 stderr"),
    }
}

/// YAML text as JSON data (maps compare without regard to key order).
fn data(yaml: &str, what: &str) -> Value {
    let src = localci::source::Source::new(what, yaml.to_string());
    match localci::yaml::parse(&src, localci::source::FileId(0)) {
        Ok(node) => node.to_json(),
        Err(d) => panic!("{what} is not YAML: {}", d.message),
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

fn sorted_dirs(dir: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs
}

// ---------------------------------------------------------------------------------------------
// Golden tests

#[test]
fn golden_cases() {
    let root = repo().join("tests").join("process");
    let update = std::env::var_os("LOCALCI_UPDATE_GOLDEN").is_some();
    let mut failures = Vec::new();
    let cases = sorted_dirs(&root);
    assert!(cases.len() >= 20, "the golden folders are missing");
    for case in &cases {
        if let Err(why) = golden_case(case, update) {
            failures.push(format!("{}: {why}", case.file_name().unwrap().to_string_lossy()));
        }
    }
    assert!(failures.is_empty(), "golden cases failed:\n{}", failures.join("\n\n"));
}

fn golden_case(case: &Path, update: bool) -> Result<(), String> {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("case");
    copy_dir(case, &dir);
    let mut args = vec!["-c".to_string(), "config.yml".to_string()];
    if let Ok(text) = std::fs::read_to_string(case.join("args")) {
        args.extend(text.lines().filter(|l| !l.is_empty()).map(str::to_string));
    }
    let out = process(&dir, tmp.path(), &args);
    // Paths of the private cache folder differ between runs.
    let stderr = out.stderr.replace(&tmp.path().display().to_string(), "$TMP");
    let expected_error = case.join("expected_error.txt");
    if expected_error.exists() || (update && out.code != 0) {
        if update {
            std::fs::write(&expected_error, &stderr).unwrap();
            return Ok(());
        }
        let want = std::fs::read_to_string(&expected_error).unwrap();
        if out.code != 2 {
            return Err(format!("expected exit 2, got {}; stderr:\n{stderr}", out.code));
        }
        return same_text(&want, &stderr, "stderr");
    }
    if out.code != 0 {
        return Err(format!("exit {}; stderr:\n{stderr}", out.code));
    }
    let expected = case.join("expected.yml");
    let expected_stderr = case.join("expected_stderr.txt");
    if update {
        std::fs::write(&expected, &out.stdout).unwrap();
        if stderr.is_empty() {
            let _ = std::fs::remove_file(&expected_stderr);
        } else {
            std::fs::write(&expected_stderr, &stderr).unwrap();
        }
        return Ok(());
    }
    let want = std::fs::read_to_string(&expected).map_err(|e| format!("{}: {e}", expected.display()))?;
    if data(&want, "expected.yml") != data(&out.stdout, "output") {
        return Err(format!("output differs as data:\n{}", out.stdout));
    }
    same_text(&want, &out.stdout, "stdout")?;
    let want_stderr = std::fs::read_to_string(&expected_stderr).unwrap_or_default();
    same_text(&want_stderr, &stderr, "stderr")
}

fn same_text(want: &str, got: &str, what: &str) -> Result<(), String> {
    if want == got {
        return Ok(());
    }
    let first = want
        .lines()
        .zip(got.lines())
        .position(|(a, b)| a != b)
        .unwrap_or_else(|| want.lines().count().min(got.lines().count()));
    Err(format!(
        "{what} differs from line {}:\n--- expected\n{want}\n--- got\n{got}",
        first + 1
    ))
}

// ---------------------------------------------------------------------------------------------
// Ground truth: CircleCI's own compiler

/// The output-format differences between compiler eras that the oracle README lists as
/// equivalent: `version: 2.1` vs `2` at the top, `version: 2` under `workflows` or not, and
/// (2018-11) a job's `environment` printed as a list of one-key maps. Nothing else is changed.
fn normalise(mut v: Value) -> Value {
    if let Some(top) = v.as_object_mut() {
        top.insert("version".into(), Value::from(2));
        if let Some(wf) = top.get_mut("workflows").and_then(Value::as_object_mut) {
            wf.remove("version");
        }
        if let Some(jobs) = top.get_mut("jobs").and_then(Value::as_object_mut) {
            for job in jobs.values_mut() {
                let Some(env) = job.get_mut("environment") else { continue };
                if let Value::Array(items) = env {
                    let mut map = serde_json::Map::new();
                    for item in items.iter() {
                        if let Some(m) = item.as_object() {
                            map.extend(m.clone());
                        }
                    }
                    *env = Value::Object(map);
                }
            }
        }
    }
    v
}

/// Aliases of registry orbs that the pair does not provide a source for.
fn missing_orbs(case: &Path, input: &Value) -> Vec<String> {
    let Some(orbs) = input.get("orbs").and_then(Value::as_object) else { return Vec::new() };
    orbs.iter()
        .filter_map(|(alias, r)| {
            let r = r.as_str()?;
            let (path, _) = r.split_once('@')?;
            let (ns, name) = path.split_once('/')?;
            let provided = std::fs::read_dir(case.join("orbs").join(ns))
                .map(|entries| entries.flatten().any(|e| e.file_name().to_string_lossy().starts_with(&format!("{name}@"))))
                .unwrap_or(false);
            (!provided).then(|| alias.clone())
        })
        .collect()
}

fn mentions_alias(v: &Value, aliases: &[String]) -> bool {
    let hit = |s: &str| aliases.iter().any(|a| s.starts_with(&format!("{a}/")));
    match v {
        Value::String(s) => hit(s),
        Value::Array(items) => items.iter().any(|i| mentions_alias(i, aliases)),
        Value::Object(m) => m.iter().any(|(k, v)| hit(k) || mentions_alias(v, aliases)),
        _ => false,
    }
}

fn entry_name(entry: &Value) -> String {
    match entry {
        Value::String(s) => s.clone(),
        Value::Object(m) => {
            let (k, v) = m.iter().next().expect("one-key entry");
            v.get("name").and_then(Value::as_str).unwrap_or(k).to_string()
        }
        _ => String::new(),
    }
}

/// Removes jobs and their workflow entries (from an input, or from an output where entries are
/// keyed by their final names).
fn without_jobs(mut v: Value, drop: &[String]) -> Value {
    if let Some(jobs) = v.get_mut("jobs").and_then(Value::as_object_mut) {
        jobs.retain(|k, _| !drop.contains(k));
    }
    without_entries(v, drop)
}

/// Removes workflow entries by name.
fn without_entries(mut v: Value, drop: &[String]) -> Value {
    if let Some(wfs) = v.get_mut("workflows").and_then(Value::as_object_mut) {
        for wf in wfs.values_mut() {
            if let Some(Value::Array(entries)) = wf.get_mut("jobs") {
                entries.retain(|e| !drop.contains(&entry_name(e)));
            }
        }
    }
    v
}

enum Verdict {
    Equal,
    Partial(String),
}

#[test]
fn oracle_pairs() {
    let Some(root) = shared("process-oracle") else { return };
    let mut report = Vec::new();
    let mut failures = Vec::new();
    for case in sorted_dirs(&root) {
        let name = case.file_name().unwrap().to_string_lossy().to_string();
        match oracle_case(&case, &name) {
            Ok(Verdict::Equal) => report.push(format!("  equal    {name}")),
            Ok(Verdict::Partial(why)) => report.push(format!("  partial  {name}: {why}")),
            Err(why) => failures.push(format!("{name}: {why}")),
        }
    }
    eprintln!("process-oracle pairs:\n{}", report.join("\n"));
    assert!(failures.is_empty(), "oracle pairs failed:\n{}", failures.join("\n\n"));
}

fn oracle_case(case: &Path, name: &str) -> Result<Verdict, String> {
    let home = tempfile::tempdir().unwrap();
    let input_path = case.join("input.yml");
    let args = vec!["-c".to_string(), input_path.display().to_string()];
    let out = process(case, home.path(), &args);
    if let Ok(want) = std::fs::read_to_string(case.join("expected_error.txt")) {
        // CircleCI: "Error: Error calling upload: Missing required argument(s): file-spec, target".
        let core = want.trim().rsplit(": Error calling ").next().unwrap_or(&want);
        let (callee, message) = core.split_once(": ").unwrap_or(("", core));
        if out.code != 2 || !out.stderr.contains(message) || !out.stderr.contains(callee) {
            return Err(format!("expected exit 2 with {message:?} about {callee:?}, got {}:\n{}", out.code, out.stderr));
        }
        return Ok(Verdict::Equal);
    }
    let expected = normalise(data(&std::fs::read_to_string(case.join("expected.yml")).unwrap(), "expected.yml"));
    let input = data(&std::fs::read_to_string(&input_path).unwrap(), "input.yml");
    let missing = missing_orbs(case, &input);
    if out.code == 0 {
        let mut got = normalise(data(&out.stdout, "output"));
        let mut expected = expected;
        let mut verdict = Verdict::Equal;
        if name == "branch-filter-dropped-repro" {
            // Known gap (oracle README): this compiler evaluated branch filters against the branch
            // it ran on (not master) and left out the entry `only: [master]`. localci keeps
            // filters for the run to decide, so that entry is compared on everything else.
            got = without_entries(got, &["Test with only branch filter".to_string()]);
            expected = without_entries(expected, &["Test with only branch filter".to_string()]);
            verdict = Verdict::Partial("the entry removed by a branch filter at compile time is not compared".into());
        }
        return if got == expected {
            Ok(verdict)
        } else {
            Err(format!("output differs as data:\n{}", out.stdout))
        };
    }
    if missing.is_empty() || !out.stderr.contains("cannot be resolved offline") {
        return Err(format!("exit {}:\n{}", out.code, out.stderr));
    }
    // Known gap (oracle README): the source of a registry orb used here was not found. Compile
    // the config without the jobs that use it, and compare every other job and entry.
    let jobs_using: Vec<String> = input
        .get("jobs")
        .and_then(Value::as_object)
        .map(|jobs| jobs.iter().filter(|(_, j)| mentions_alias(j, &missing)).map(|(k, _)| k.clone()).collect())
        .unwrap_or_default();
    let mut dropped = jobs_using.clone();
    if let Some(wfs) = input.get("workflows").and_then(Value::as_object) {
        for wf in wfs.values() {
            for e in wf.get("jobs").and_then(Value::as_array).into_iter().flatten() {
                let job = match e {
                    Value::Object(m) => m.keys().next().cloned().unwrap_or_default(),
                    other => other.as_str().unwrap_or_default().to_string(),
                };
                if jobs_using.contains(&job) || missing.iter().any(|a| job.starts_with(&format!("{a}/"))) {
                    dropped.push(entry_name(e));
                }
            }
        }
    }
    dropped.sort();
    dropped.dedup();
    let mut reduced = without_jobs(input, &dropped);
    if let Some(orbs) = reduced.get_mut("orbs").and_then(Value::as_object_mut) {
        orbs.retain(|alias, _| !missing.contains(alias));
    }
    let tmp = tempfile::tempdir().unwrap();
    // JSON is YAML: the reduced input is written as JSON.
    std::fs::write(tmp.path().join("input.yml"), serde_json::to_string_pretty(&reduced).unwrap()).unwrap();
    let args = vec!["-c".to_string(), "input.yml".to_string()];
    let out = process(tmp.path(), home.path(), &args);
    if out.code != 0 {
        return Err(format!("the reduced config fails: {}", out.stderr));
    }
    let got = normalise(data(&out.stdout, "output"));
    let expected = without_jobs(expected, &dropped);
    if got != expected {
        return Err(format!("output (without {dropped:?}) differs as data:\n{}", out.stdout));
    }
    Ok(Verdict::Partial(format!(
        "orb source missing for {missing:?}; compared all but {dropped:?}"
    )))
}
