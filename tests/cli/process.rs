//! `localci process`, end to end through the real binary:
//! - golden tests: every folder of `tests/process/` (our own configs), compared as text and as
//!   data; `LOCALCI_UPDATE_GOLDEN=1` rewrites the expectations;
//! - ground truth: the real CircleCI compiler's input/output pairs in
//!   `../shared/process-oracle`, compared as data modulo the documented era differences;
//! - every valid 2.1 config of `../shared/conformance` that needs no registry orb compiles to a
//!   2.0-shaped config that `localci validate --strict` accepts;
//! - the command-line surface (flags, `-o`, exit codes).

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use serde_json::Value;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `<repo>/../shared/<dir>`; a git worktree one level deeper (`wt/<name>`) looks one level up.
fn shared(dir: &str) -> Option<PathBuf> {
    let candidates = [
        repo().join("../shared").join(dir),
        repo().join("../../shared").join(dir),
    ];
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
            failures.push(format!(
                "{}: {why}",
                case.file_name().unwrap().to_string_lossy()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "golden cases failed:\n{}",
        failures.join("\n\n")
    );
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
    let stderr = out
        .stderr
        .replace(&tmp.path().display().to_string(), "$TMP");
    let expected_error = case.join("expected_error.txt");
    if expected_error.exists() || (update && out.code != 0) {
        if update {
            std::fs::write(&expected_error, &stderr).unwrap();
            return Ok(());
        }
        let want = std::fs::read_to_string(&expected_error).unwrap();
        if out.code != 2 {
            return Err(format!(
                "expected exit 2, got {}; stderr:\n{stderr}",
                out.code
            ));
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
    let want =
        std::fs::read_to_string(&expected).map_err(|e| format!("{}: {e}", expected.display()))?;
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
                let Some(env) = job.get_mut("environment") else {
                    continue;
                };
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
    let Some(orbs) = input.get("orbs").and_then(Value::as_object) else {
        return Vec::new();
    };
    orbs.iter()
        .filter_map(|(alias, r)| {
            let r = r.as_str()?;
            let (path, _) = r.split_once('@')?;
            let (ns, name) = path.split_once('/')?;
            let provided = std::fs::read_dir(case.join("orbs").join(ns))
                .map(|entries| {
                    entries.flatten().any(|e| {
                        e.file_name()
                            .to_string_lossy()
                            .starts_with(&format!("{name}@"))
                    })
                })
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
            v.get("name")
                .and_then(Value::as_str)
                .unwrap_or(k)
                .to_string()
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
    let Some(root) = shared("process-oracle") else {
        return;
    };
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
    assert!(
        failures.is_empty(),
        "oracle pairs failed:\n{}",
        failures.join("\n\n")
    );
}

fn oracle_case(case: &Path, name: &str) -> Result<Verdict, String> {
    let home = tempfile::tempdir().unwrap();
    let input_path = case.join("input.yml");
    let args = vec!["-c".to_string(), input_path.display().to_string()];
    let out = process(case, home.path(), &args);
    if let Ok(want) = std::fs::read_to_string(case.join("expected_error.txt")) {
        // CircleCI: "Error: Error calling upload: Missing required argument(s): file-spec, target".
        let core = want
            .trim()
            .rsplit(": Error calling ")
            .next()
            .unwrap_or(&want);
        let (callee, message) = core.split_once(": ").unwrap_or(("", core));
        if out.code != 2 || !out.stderr.contains(message) || !out.stderr.contains(callee) {
            return Err(format!(
                "expected exit 2 with {message:?} about {callee:?}, got {}:\n{}",
                out.code, out.stderr
            ));
        }
        return Ok(Verdict::Equal);
    }
    let expected = normalise(data(
        &std::fs::read_to_string(case.join("expected.yml")).unwrap(),
        "expected.yml",
    ));
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
            verdict = Verdict::Partial(
                "the entry removed by a branch filter at compile time is not compared".into(),
            );
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
        .map(|jobs| {
            jobs.iter()
                .filter(|(_, j)| mentions_alias(j, &missing))
                .map(|(k, _)| k.clone())
                .collect()
        })
        .unwrap_or_default();
    let mut dropped = jobs_using.clone();
    if let Some(wfs) = input.get("workflows").and_then(Value::as_object) {
        for wf in wfs.values() {
            for e in wf
                .get("jobs")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let job = match e {
                    Value::Object(m) => m.keys().next().cloned().unwrap_or_default(),
                    other => other.as_str().unwrap_or_default().to_string(),
                };
                if jobs_using.contains(&job)
                    || missing.iter().any(|a| job.starts_with(&format!("{a}/")))
                {
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
    std::fs::write(
        tmp.path().join("input.yml"),
        serde_json::to_string_pretty(&reduced).unwrap(),
    )
    .unwrap();
    let args = vec!["-c".to_string(), "input.yml".to_string()];
    let out = process(tmp.path(), home.path(), &args);
    if out.code != 0 {
        return Err(format!("the reduced config fails: {}", out.stderr));
    }
    let got = normalise(data(&out.stdout, "output"));
    let expected = without_jobs(expected, &dropped);
    if got != expected {
        return Err(format!(
            "output (without {dropped:?}) differs as data:\n{}",
            out.stdout
        ));
    }
    Ok(Verdict::Partial(format!(
        "orb source missing for {missing:?}; compared all but {dropped:?}"
    )))
}

// ---------------------------------------------------------------------------------------------
// Conformance configs

/// Step names a 2.0 config may contain.
const BUILTIN_STEPS: &[&str] = &[
    "run",
    "checkout",
    "setup_remote_docker",
    "save_cache",
    "restore_cache",
    "deploy",
    "store_artifacts",
    "store_test_results",
    "persist_to_workspace",
    "attach_workspace",
    "add_ssh_keys",
    "install_signing_bundle",
];

#[test]
fn conformance_configs_compile_to_2_0() {
    let Some(root) = shared("conformance") else {
        return;
    };
    let mut checked = 0;
    let mut failures = Vec::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(root.join("valid"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let src = localci::source::Source::new(file.display().to_string(), text);
        let Ok(node) = localci::yaml::parse(&src, localci::source::FileId(0)) else {
            continue;
        };
        let config = node.to_json();
        let is_21 = node.get("version").and_then(|v| v.scalar_text()).as_deref() == Some("2.1");
        let registry = config
            .get("orbs")
            .and_then(Value::as_object)
            .is_some_and(|orbs| orbs.values().any(Value::is_string));
        if !is_21 || registry {
            continue;
        }
        checked += 1;
        let home = tempfile::tempdir().unwrap();
        let out = process(
            home.path(),
            home.path(),
            &["-c".to_string(), file.display().to_string()],
        );
        let name = file.file_name().unwrap().to_string_lossy().to_string();
        if out.code != 0 {
            failures.push(format!("{name}: exit {}\n{}", out.code, out.stderr));
            continue;
        }
        if let Err(why) = check_2_0_shape(&data(&out.stdout, &name)) {
            failures.push(format!("{name}: {why}\n{}", out.stdout));
        }
        if let Err(why) = revalidates(home.path(), &out.stdout) {
            failures.push(format!(
                "{name}: the output does not validate:\n{why}\n{}",
                out.stdout
            ));
        }
    }
    assert!(
        checked >= 40,
        "only {checked} conformance configs were checked"
    );
    assert!(
        failures.is_empty(),
        "{} configs failed:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

/// `localci validate --strict` accepts the compiled output without any diagnostic.
fn revalidates(dir: &Path, compiled: &str) -> Result<(), String> {
    let file = dir.join("processed.yml");
    std::fs::write(&file, compiled).unwrap();
    let out = Command::cargo_bin("localci")
        .expect("the localci binary is built for integration tests")
        .args(["--color", "never", "validate", "--strict", "-c"])
        .arg(&file)
        .output()
        .expect("localci runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.success() && stderr.trim().is_empty() {
        Ok(())
    } else {
        Err(stderr.into_owned())
    }
}

/// A compiled config: `version: 2`, complete jobs with only built-in steps, workflows naming
/// those jobs (or approvals) and requiring entries of the same workflow.
fn check_2_0_shape(out: &Value) -> Result<(), String> {
    let top = out.as_object().ok_or("not a map")?;
    if let Some(k) = top
        .keys()
        .find(|k| !["version", "jobs", "workflows"].contains(&k.as_str()))
    {
        return Err(format!("unexpected top-level key {k}"));
    }
    if top.get("version") != Some(&Value::from(2)) {
        return Err("version is not 2".into());
    }
    let jobs = top
        .get("jobs")
        .and_then(Value::as_object)
        .ok_or("no jobs map")?;
    for (name, job) in jobs {
        let job = job.as_object().ok_or(format!("job {name} is not a map"))?;
        if let Some(k) = job
            .keys()
            .find(|k| ["parameters", "executor"].contains(&k.as_str()))
        {
            return Err(format!("job {name} still has {k}"));
        }
        for step in job
            .get("steps")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let step_name = match step {
                Value::String(s) => s.clone(),
                Value::Object(m) if m.len() == 1 => m.keys().next().cloned().unwrap_or_default(),
                other => return Err(format!("job {name} has a step {other}")),
            };
            if !BUILTIN_STEPS.contains(&step_name.as_str()) {
                return Err(format!(
                    "job {name} has a step {step_name} that is not built in"
                ));
            }
        }
    }
    let workflows = top
        .get("workflows")
        .and_then(Value::as_object)
        .ok_or("no workflows")?;
    if workflows.get("version") != Some(&Value::from(2)) {
        return Err("workflows.version is not 2".into());
    }
    for (wf, body) in workflows.iter().filter(|(k, _)| *k != "version") {
        let entries = body
            .get("jobs")
            .and_then(Value::as_array)
            .ok_or(format!("workflow {wf} has no jobs"))?;
        let names: Vec<String> = entries.iter().map(entry_name).collect();
        for entry in entries {
            let name = entry_name(entry);
            let options = entry
                .as_object()
                .and_then(|m| m.values().next())
                .cloned()
                .unwrap_or(Value::Null);
            let approval = options.get("type").and_then(Value::as_str) == Some("approval");
            if !approval && !jobs.contains_key(&name) {
                return Err(format!(
                    "workflow {wf} names {name}, which is not a compiled job"
                ));
            }
            for req in options
                .get("requires")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let target = entry_name(req);
                if !names.contains(&target) {
                    return Err(format!("{name} requires {target}, not an entry of {wf}"));
                }
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Command line

fn write(dir: &Path, rel: &str, text: &str) {
    let path = dir.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

const SHOW_VALUES: &str = "version: 2.1
jobs:
  build:
    docker: [{image: cimg/base:stable}]
    steps:
      - run: echo branch=<< pipeline.git.branch >> tag=<< pipeline.git.tag >> rev=<< pipeline.git.revision >>
";

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[test]
fn finds_the_config_and_its_orbs_folder() {
    let tmp = tempfile::tempdir().unwrap();
    write(
        tmp.path(),
        ".circleci/config.yml",
        "version: 2.1\norbs:\n  hi: acme/hi@1.0.0\nworkflows:\n  main:\n    jobs: [hi/hello]\n",
    );
    write(
        tmp.path(),
        ".circleci/orbs/acme/hi@1.0.0.yml",
        "jobs:\n  hello:\n    docker: [{image: busybox}]\n    steps: [{run: echo hi}]\n",
    );
    let sub = tmp.path().join("src");
    std::fs::create_dir_all(&sub).unwrap();
    let out = process(&sub, tmp.path(), &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout
            .starts_with("# Orb 'acme/hi@1.0.0' resolved to 'acme/hi@1.0.0'\n")
    );
    assert!(out.stdout.contains("  hi/hello:\n"), "{}", out.stdout);
}

#[test]
fn orbs_come_from_the_user_cache() {
    let tmp = tempfile::tempdir().unwrap();
    write(
        tmp.path(),
        "config.yml",
        "version: 2.1\norbs:\n  hi: acme/hi@2\nworkflows:\n  main:\n    jobs: [hi/hello]\n",
    );
    write(
        tmp.path(),
        "cache/localci/orbs/acme/hi@2.4.1.yml",
        "jobs:\n  hello:\n    docker: [{image: busybox}]\n    steps: [{run: echo cached}]\n",
    );
    let out = process(tmp.path(), tmp.path(), &args(&["-c", "config.yml"]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.contains("resolved to 'acme/hi@2.4.1'"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("echo cached"));
}

#[test]
fn branch_tag_and_pipeline_values_from_flags() {
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), "config.yml", SHOW_VALUES);
    let out = process(
        tmp.path(),
        tmp.path(),
        &args(&[
            "-c",
            "config.yml",
            "--tag",
            "v1.2.0",
            "--pipeline-value",
            "git.revision=abc123",
        ]),
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.contains("echo branch= tag=v1.2.0 rev=abc123"),
        "{}",
        out.stdout
    );
    let out = process(
        tmp.path(),
        tmp.path(),
        &args(&["-c", "config.yml", "--branch", "dev"]),
    );
    assert!(
        out.stdout.contains("echo branch=dev tag= rev="),
        "{}",
        out.stdout
    );
}

#[test]
fn pipeline_values_come_from_the_git_repository() {
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), "repo/.circleci/config.yml", SHOW_VALUES);
    let repo = tmp.path().join("repo");
    crate::support::init(&repo, "trunk");
    crate::support::commit_all(&repo, "x");
    let out = process(&repo, tmp.path(), &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let line = out.stdout.lines().find(|l| l.contains("branch=")).unwrap();
    assert!(line.contains("branch=trunk tag= rev="), "{line}");
    assert_eq!(line.split("rev=").nth(1).map(str::len), Some(40), "{line}");
}

#[test]
fn output_file_and_exit_codes() {
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), "config.yml", SHOW_VALUES);
    let out = process(
        tmp.path(),
        tmp.path(),
        &args(&["-c", "config.yml", "-o", "out.yml"]),
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.is_empty());
    let written = std::fs::read_to_string(tmp.path().join("out.yml")).unwrap();
    assert!(
        written.starts_with("version: 2\njobs:\n  build:\n"),
        "{written}"
    );

    let missing = process(tmp.path(), tmp.path(), &args(&["-c", "nope.yml"]));
    assert_eq!(missing.code, 2);
    assert!(
        missing.stderr.contains("cannot read nope.yml"),
        "{}",
        missing.stderr
    );

    let bad_flag = process(
        tmp.path(),
        tmp.path(),
        &args(&["-c", "config.yml", "--pipeline-param", "novalue"]),
    );
    assert_eq!(bad_flag.code, 2);
    assert!(
        bad_flag.stderr.contains("expected KEY=VALUE"),
        "{}",
        bad_flag.stderr
    );

    let bad_value = process(
        tmp.path(),
        tmp.path(),
        &args(&["-c", "config.yml", "--pipeline-value", "number=many"]),
    );
    assert_eq!(bad_value.code, 2);
    assert!(
        bad_value.stderr.contains("pipeline.number is a number"),
        "{}",
        bad_value.stderr
    );
}

// ---------------------------------------------------------------------------------------------
// Hostile configs: small files that multiply or nest without end

/// A job whose one step is `command`, run by a workflow.
fn one_step_job(step: &str) -> String {
    format!(
        "version: 2.1\njobs:\n  build:\n    docker: [{{image: cimg/base:stable}}]\n    steps:\n      - {step}\nworkflows:\n  main:\n    jobs: [build]\n"
    )
}

/// `levels` commands, each running the next one twice: 2^levels steps.
fn doubling_commands(levels: usize) -> String {
    let mut config = String::from("version: 2.1\ncommands:\n");
    for i in 0..levels {
        config.push_str(&format!(
            "  fan-{i}:\n    steps: [fan-{n}, fan-{n}]\n",
            n = i + 1
        ));
    }
    config.push_str(&format!("  fan-{levels}:\n    steps: [checkout]\n"));
    config + "jobs:\n  build:\n    docker: [{image: cimg/base:stable}]\n    steps: [fan-0]\n"
}

/// Eight matrix parameters of ten values each: 10^8 jobs.
fn huge_matrix() -> String {
    let mut config = String::from("version: 2.1\njobs:\n  build:\n    parameters:\n");
    for p in 0..8 {
        config.push_str(&format!("      p{p}: {{type: integer, default: 0}}\n"));
    }
    config.push_str("    docker: [{image: cimg/base:stable}]\n    steps: [checkout]\n");
    config.push_str("workflows:\n  main:\n    jobs:\n      - build:\n          matrix:\n            parameters:\n");
    for p in 0..8 {
        config.push_str(&format!(
            "              p{p}: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]\n"
        ));
    }
    config
}

/// See: review repros 5, 6 and 9 — each of these hung eating memory, or aborted with a stack
/// overflow (exit 134). Both `validate` and `process` must refuse them with a located error
/// (exit 2), quickly.
#[test]
fn hostile_configs_are_refused_quickly() {
    let cases = [
        (
            "40,000 nots",
            one_step_job(&format!("run: echo << {}true >>", "not ".repeat(40_000))),
        ),
        (
            "100,000 parentheses",
            one_step_job(&format!("run: echo << {} >>", "(".repeat(100_000))),
        ),
        ("2^40 steps", doubling_commands(40)),
        ("10^8 matrix jobs", huge_matrix()),
    ];
    let tmp = tempfile::tempdir().unwrap();
    for (what, config) in cases {
        write(tmp.path(), "config.yml", &config);
        for command in ["validate", "process"] {
            let started = std::time::Instant::now();
            let out = Command::cargo_bin("localci")
                .unwrap()
                .current_dir(tmp.path())
                .env("HOME", tmp.path())
                .args(["--color", "never", command, "-c", "config.yml"])
                // Far above the time it takes even in a debug build; a regression hangs.
                .timeout(std::time::Duration::from_secs(60))
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{command} on {what}:\n{stderr}");
            assert!(
                stderr.starts_with("error: "),
                "{command} on {what}:\n{stderr}"
            );
            assert!(
                stderr.contains("config.yml:"),
                "{command} on {what}:\n{stderr}"
            );
            eprintln!("{command} refused {what} in {:?}", started.elapsed());
        }
    }
}

/// `levels` commands, each passing its parameter on to the next one in a bigger form:
/// `grow` turns `<< parameters.v >>` into the next argument.
fn growing_argument(levels: usize, ty: &str, grow: &str) -> String {
    let mut config = String::from(
        "version: 2.1\nexecutors:\n  e:\n    docker: [{image: cimg/base:stable}]\ncommands:\n",
    );
    for i in 0..levels {
        config.push_str(&format!(
            "  c{i}:\n    parameters: {{v: {{type: {ty}}}}}\n    steps:\n      - c{n}: {{v: {grow}}}\n",
            n = i + 1
        ));
    }
    config.push_str(&format!(
        "  c{levels}:\n    parameters: {{v: {{type: {ty}}}}}\n    steps: [{{run: {{command: echo, environment: {{X: \"<< parameters.v >>\"}}}}}}]\n"
    ));
    config + "jobs:\n  build:\n    docker: [{image: cimg/base:stable}]\n    steps: [{c0: {v: e}}]\n"
}

/// Values that grow at every call: a string embedding its parameter twice doubles (2^40
/// bytes after 40 calls), an executor map wrapped in deeper maps nests without end (the walks
/// over values recurse). `process` refuses both with an error instead of eating memory or
/// overflowing the stack.
#[test]
fn process_refuses_values_that_grow_without_end() {
    let deep = format!(
        "{}<< parameters.v >>{}",
        "{k: ".repeat(200),
        "}".repeat(200)
    );
    let cases = [
        (
            growing_argument(40, "string", "\"<< parameters.v >><< parameters.v >>\""),
            "longer than 8 MiB",
        ),
        (
            growing_argument(90, "executor", &format!("{{name: e, x: {deep}}}")),
            "nests more than 256 levels deep",
        ),
    ];
    let tmp = tempfile::tempdir().unwrap();
    for (config, expected) in cases {
        write(tmp.path(), "config.yml", &config);
        let out = process(tmp.path(), tmp.path(), &args(&["-c", "config.yml"]));
        assert_eq!(out.code, 2, "{}", out.stderr);
        assert!(out.stderr.contains(expected), "{}", out.stderr);
    }
}

// ---------------------------------------------------------------------------------------------
// `localci orb pack` and `localci orb vendor` (see: issue 8, "Orbs that never block")

/// Runs `localci --color never <args>` in `dir` with a private HOME.
fn localci(dir: &Path, home: &Path, args: &[&str]) -> Output {
    let out = Command::cargo_bin("localci")
        .expect("the localci binary is built for integration tests")
        .current_dir(dir)
        .env("HOME", home)
        .env_remove("XDG_CACHE_HOME")
        .args(["--color", "never"])
        .args(args)
        .output()
        .expect("localci runs");
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8(out.stdout).expect("UTF-8 stdout"),
        stderr: String::from_utf8(out.stderr).expect("UTF-8 stderr"),
    }
}

#[test]
fn orb_pack_builds_an_orb_the_compiler_uses() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    write(
        root,
        "greet-orb/src/@orb.yml",
        "version: 2.1\ndescription: Greets\n",
    );
    write(
        root,
        "greet-orb/src/commands/hello.yml",
        "parameters:\n  to: {type: string, default: world}\nsteps:\n  - run:\n      environment: {TO: << parameters.to >>}\n      command: <<include(scripts/hello.sh)>>\n",
    );
    write(
        root,
        "greet-orb/src/scripts/hello.sh",
        "echo \"hello $TO\"\n",
    );
    write(
        root,
        "greet-orb/src/jobs/greet.yml",
        "docker: [{image: cimg/base:stable}]\nsteps: [hello]\n",
    );
    let packed = localci(
        root,
        root,
        &[
            "orb",
            "pack",
            "greet-orb/src",
            "-o",
            "project/.circleci/orbs/acme/greet@1.0.0.yml",
        ],
    );
    assert_eq!(packed.code, 0, "{}", packed.stderr);
    write(
        root,
        "project/.circleci/config.yml",
        "version: 2.1\norbs:\n  greet: acme/greet@1.0.0\nworkflows:\n  main:\n    jobs: [greet/greet]\n",
    );
    let out = localci(&root.join("project"), root, &["process"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout
            .contains("command: |\n            echo \"hello $TO\"\n")
            || out.stdout.contains("command: echo \"hello $TO\"\n"),
        "{}",
        out.stdout
    );

    let missing = localci(root, root, &["orb", "pack", "nowhere"]);
    assert_eq!(missing.code, 2, "{}", missing.stderr);
    assert!(missing.stderr.contains("@orb.yml"), "{}", missing.stderr);
}

#[test]
fn orb_vendor_saves_the_config_orbs_for_offline_use() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let home = root.join("home");
    write(
        root,
        "project/.circleci/config.yml",
        "version: 2.1\norbs:\n  hi: acme/hi@2\nworkflows:\n  main:\n    jobs: [hi/hello]\n",
    );
    write(
        &home,
        ".cache/localci/orbs/acme/hi@2.4.1.yml",
        "jobs:\n  hello:\n    docker: [{image: busybox}]\n    steps: [{run: echo cached}]\n",
    );
    let project = root.join("project");
    let vendored = localci(&project, &home, &["orb", "vendor"]);
    assert_eq!(vendored.code, 0, "{}", vendored.stderr);
    assert!(
        vendored.stderr.starts_with("saved acme/hi@2.4.1 as ")
            && vendored
                .stderr
                .trim_end()
                .ends_with(".circleci/orbs/acme/hi@2.4.1.yml"),
        "{}",
        vendored.stderr
    );
    assert!(project.join(".circleci/orbs/acme/hi@2.4.1.yml").is_file());
    // Offline from now on: no user cache at all.
    let empty_home = root.join("empty");
    let out = localci(&project, &empty_home, &["process"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("echo cached"), "{}", out.stdout);
    let again = localci(&project, &empty_home, &["orb", "vendor"]);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(
        again.stderr.contains("nothing to vendor"),
        "{}",
        again.stderr
    );

    write(
        root,
        "other/.circleci/config.yml",
        "version: 2.1\norbs:\n  x: acme/nowhere@1.0.0\nworkflows:\n  main:\n    jobs: [x/job]\n",
    );
    let missing = localci(&root.join("other"), &empty_home, &["orb", "vendor"]);
    assert_eq!(missing.code, 2, "{}", missing.stderr);
    assert!(
        missing.stderr.contains("acme/nowhere@1.0.0"),
        "{}",
        missing.stderr
    );
}
