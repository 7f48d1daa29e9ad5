//! `localci validate` end to end: the public conformance suite, one fixture per rule with its
//! exact diagnostic as a snapshot, inputs that are not configs at all, and this repository's
//! own `.circleci/config.yml`.

use std::path::{Path, PathBuf};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The result of one run of the real binary.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    /// Exit code and both streams, as a snapshot shows them.
    fn transcript(&self) -> String {
        format!(
            "exit: {}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }

    fn error_lines(&self) -> Vec<&str> {
        self.stderr
            .lines()
            .filter(|l| l.starts_with("error"))
            .collect()
    }
}

/// Runs `localci` with arguments in a directory (the repository root unless told otherwise).
struct Localci {
    dir: PathBuf,
    args: Vec<String>,
}

impl Localci {
    fn new() -> Self {
        Localci {
            dir: PathBuf::from(ROOT),
            args: vec!["--color".into(), "never".into()],
        }
    }

    fn in_dir(mut self, dir: &Path) -> Self {
        self.dir = dir.to_path_buf();
        self
    }

    fn args(mut self, args: &[&str]) -> Self {
        self.args.extend(args.iter().map(|a| (*a).to_string()));
        self
    }

    fn run(self) -> Run {
        let output = assert_cmd::Command::new(env!("CARGO_BIN_EXE_localci"))
            .args(&self.args)
            .current_dir(&self.dir)
            .env_remove("NO_COLOR")
            .output()
            .expect("localci runs");
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

fn validate_fixture(file: &str, extra: &[&str]) -> Run {
    let path = format!("tests/fixtures/validate/{file}");
    Localci::new()
        .args(&["validate", "-c", &path])
        .args(extra)
        .run()
}

/// `shared/<name>` next to the repository, or next to a parent folder (a git worktree lives
/// one level deeper than the main checkout).
fn shared(name: &str) -> Option<PathBuf> {
    Path::new(ROOT)
        .ancestors()
        .skip(1)
        .map(|dir| dir.join("shared").join(name))
        .find(|dir| dir.is_dir())
}

macro_rules! snapshot {
    ($name:expr, $value:expr) => {
        insta::with_settings!({snapshot_path => "../snapshots", prepend_module_to_snapshot => false}, {
            insta::assert_snapshot!($name, $value);
        })
    };
}

/// One test per rule: the fixture's human output is the snapshot.
macro_rules! rule {
    ($($test:ident => $file:literal,)*) => {$(
        #[test]
        fn $test() {
            let run = validate_fixture($file, &[]);
            snapshot!(concat!("validate-", $file), run.transcript());
        }
    )*};
}

rule! {
    rule_unknown_step => "unknown-step.yml",
    rule_unknown_key => "unknown-key.yml",
    rule_misspelled_required_key => "misspelled-required-key.yml",
    rule_missing_executor => "missing-executor.yml",
    rule_two_executor_types => "two-executor-types.yml",
    rule_restore_cache_without_key => "restore-cache-without-key.yml",
    rule_undefined_job => "undefined-job.yml",
    rule_undefined_requires => "undefined-requires.yml",
    rule_requires_cycle => "requires-cycle.yml",
    rule_duplicate_job_name => "duplicate-job-name.yml",
    rule_approval_type => "approval-type.yml",
    rule_requires_status => "requires-status.yml",
    rule_v21_feature_in_v20 => "v21-feature-in-v20.yml",
    rule_v20_workflows_without_version => "v20-workflows-without-version.yml",
    rule_job_used_as_step => "job-used-as-step.yml",
    rule_undefined_executor => "undefined-executor.yml",
    rule_undefined_orb => "undefined-orb.yml",
    rule_undefined_parameter => "undefined-parameter.yml",
    rule_parameter_scope => "parameter-scope.yml",
    rule_pipeline_parameter_in_orb => "pipeline-parameter-in-orb.yml",
    rule_undefined_pipeline_parameter => "undefined-pipeline-parameter.yml",
    rule_missing_argument => "missing-argument.yml",
    rule_unknown_argument => "unknown-argument.yml",
    rule_argument_type => "argument-type.yml",
    rule_argument_enum => "argument-enum.yml",
    rule_argument_type_pipeline => "argument-type-pipeline.yml",
    rule_rerun_delay_format => "rerun-delay-format.yml",
    rule_rerun_delay_max => "rerun-delay-max.yml",
    rule_rerun_delay_without_max => "rerun-delay-without-max.yml",
    rule_max_auto_reruns => "max-auto-reruns.yml",
    rule_resource_class_unknown => "resource-class-unknown.yml",
    rule_resource_class_mismatch => "resource-class-mismatch.yml",
    rule_job_name => "job-name.yml",
    rule_bad_version => "bad-version.yml",
    rule_missing_version => "missing-version.yml",
    rule_registry_orb => "registry-orb.yml",
    rule_orb_version => "orb-version.yml",
    rule_unclosed_tag => "unclosed-tag.yml",
    rule_matrix_unknown_parameter => "matrix-unknown-parameter.yml",
    rule_yaml_syntax => "yaml-syntax.yml",
    rule_yaml_tab => "yaml-tab.yml",
    rule_duplicate_key => "duplicate-key.yml",
    rule_enum_default => "enum-default.yml",
    rule_checkout_method => "checkout-method.yml",
    rule_step_with_two_keys => "step-with-two-keys.yml",
    rule_valid => "valid.yml",
    rule_processed_orb_job_names => "processed-orb-job-names.yml",
    rule_command_recursion => "command-recursion.yml",
    rule_job_name_case => "job-name-case.yml",
    // See: review of the 2.1 compiler — configs `validate` accepted and `process` rejected.
    rule_job_without_definition => "job-without-definition.yml",
    rule_steps_argument_shape => "steps-argument-shape.yml",
    rule_malformed_tag => "malformed-tag.yml",
    rule_unknown_pipeline_value => "unknown-pipeline-value.yml",
    rule_parameter_default_scope => "parameter-default-scope.yml",
    rule_matrix_too_large => "matrix-too-large.yml",
    rule_expansion_budget => "expansion-budget.yml",
    rule_commands_too_deep => "commands-too-deep.yml",
    rule_logic_too_deep => "logic-too-deep.yml",
    // See: issue 8 — CircleCI warns about these and runs the config.
    rule_resource_class_custom => "resource-class-custom.yml",
    rule_extraneous_job_key => "extraneous-job-key.yml",
    rule_string_doubling => "string-doubling.yml",
    // See: issue 8 — one binding rule: validate reports an executor argument of the wrong
    // type with the other problems, as the compiler finds it.
    rule_executor_argument_type => "executor-argument-type.yml",
    // See: issue 8 — a default fits its type by the compiler's rule (an unquoted 3.10 is 3.1).
    rule_parameter_default_type => "parameter-default-type.yml",
    rule_job_name_numbering => "job-name-numbering.yml",
    rule_float_argument => "float-argument.yml",
}

/// See: issue 8. Configs CircleCI runs: `validate` accepts them without an error, `process`
/// compiles them, and the compiled config validates again (`execute` reads that one).
#[test]
fn accepts_what_circleci_runs() {
    for file in [
        "legacy-steps.yml",
        "environment-forms.yml",
        "resource-class-custom.yml",
        "pipeline-values-new.yml",
        "workflow-job-keys.yml",
        "extraneous-job-key.yml",
    ] {
        let path = format!("tests/fixtures/validate/{file}");
        let validate = Localci::new().args(&["validate", "-c", &path]).run();
        assert_eq!(
            validate.code,
            0,
            "validate {file}:\n{}",
            validate.transcript()
        );
        assert!(
            validate.error_lines().is_empty(),
            "{}",
            validate.transcript()
        );
        let dir = tempfile::tempdir().expect("a temp dir");
        let out = dir.path().join("processed.yml");
        let out = out.to_str().expect("a UTF-8 temp path");
        let process = Localci::new()
            .args(&["process", "-c", &path, "-o", out])
            .run();
        assert_eq!(process.code, 0, "process {file}:\n{}", process.transcript());
        let again = Localci::new().args(&["validate", "-c", out]).run();
        assert_eq!(again.code, 0, "processed {file}:\n{}", again.transcript());
    }
}

/// See: issue 8. A misspelled job key is a warning with a suggestion; `--strict` fails it.
#[test]
fn strict_turns_extraneous_job_keys_into_errors() {
    let strict = validate_fixture("extraneous-job-key.yml", &["--strict"]);
    assert_eq!(strict.code, 2, "{}", strict.transcript());
    assert_eq!(
        strict.error_lines(),
        vec![
            "error: extraneous key `working_dir` in job `build`: CircleCI ignores it; did you mean `working_directory`?"
        ],
        "{}",
        strict.transcript()
    );
}

/// See: review of the 2.1 compiler. Every config `process` rejects for these reasons is also
/// invalid to `validate` (the rule snapshots above show the messages): the two commands agree.
#[test]
fn validate_rejects_what_process_rejects() {
    for file in [
        "job-without-definition.yml",
        "steps-argument-shape.yml",
        "executor-argument-type.yml",
        "parameter-default-type.yml",
        "job-name-numbering.yml",
        "malformed-tag.yml",
        "unknown-pipeline-value.yml",
        "parameter-default-scope.yml",
        "matrix-too-large.yml",
        "expansion-budget.yml",
        "commands-too-deep.yml",
        "logic-too-deep.yml",
        "string-doubling.yml",
    ] {
        let path = format!("tests/fixtures/validate/{file}");
        let validate = Localci::new().args(&["validate", "-c", &path]).run();
        let process = Localci::new().args(&["process", "-c", &path]).run();
        assert_eq!(
            validate.code,
            2,
            "validate {file}:\n{}",
            validate.transcript()
        );
        assert_eq!(process.code, 2, "process {file}:\n{}", process.transcript());
    }
}

/// Machine-readable output: every field editors rely on.
macro_rules! json {
    ($($test:ident => $file:literal,)*) => {$(
        #[test]
        fn $test() {
            let run = validate_fixture($file, &["--format", "json"]);
            snapshot!(concat!("validate-json-", $file), run.transcript());
        }
    )*};
}

json! {
    json_unknown_step => "unknown-step.yml",
    json_missing_argument => "missing-argument.yml",
    json_registry_orb => "registry-orb.yml",
    json_valid => "valid.yml",
}

#[test]
fn strict_turns_orb_warnings_into_errors() {
    let lenient = validate_fixture("registry-orb.yml", &[]);
    assert_eq!(lenient.code, 0, "{}", lenient.transcript());
    let strict = validate_fixture("registry-orb.yml", &["--strict"]);
    assert_eq!(strict.code, 2, "{}", strict.transcript());
    assert!(
        strict.stderr.starts_with("error: orb `node`"),
        "{}",
        strict.transcript()
    );
}

#[test]
fn every_problem_at_once_sorted_by_position() {
    let run = validate_fixture("argument-type.yml", &["--format", "json"]);
    let report: serde_json::Value = serde_json::from_str(&run.stdout).expect("JSON output");
    let lines: Vec<u64> = report["diagnostics"]
        .as_array()
        .expect("a diagnostics list")
        .iter()
        .map(|d| d["line"].as_u64().expect("a line"))
        .collect();
    assert_eq!(lines, vec![21, 22]);
}

#[test]
fn validates_own_config() {
    let run = Localci::new().args(&["validate", "--strict"]).run();
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert_eq!(run.stdout, "config is valid\n");
}

/// See: issue 2, "Conformance". The suite is read in place, never copied.
#[test]
fn conformance_suite() {
    let Some(suite) = shared("conformance") else {
        eprintln!(
            "skipping conformance_suite: no shared/conformance folder next to the repository"
        );
        return;
    };
    let output = std::process::Command::new("bash")
        .arg(suite.join("check.sh"))
        .arg(env!("CARGO_BIN_EXE_localci"))
        .output()
        .expect("bash runs check.sh");
    let report = String::from_utf8_lossy(&output.stdout);
    let failures: Vec<&str> = report.lines().filter(|l| l.starts_with("FAIL")).collect();
    assert!(
        failures.is_empty() && output.status.success(),
        "conformance failures:\n{}\n{}",
        failures.join("\n"),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(report.contains("133 passed, 0 failed"), "{report}");
}

/// Bad input: one error line, exit 2, never a panic.
fn assert_one_error(run: &Run, expected: &str) {
    assert_eq!(run.code, 2, "{}", run.transcript());
    assert!(!run.stderr.contains("panicked"), "{}", run.transcript());
    let errors = run.error_lines();
    assert_eq!(errors.len(), 1, "{}", run.transcript());
    assert!(errors[0].contains(expected), "{}", run.transcript());
}

fn config_in_temp(contents: &[u8]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("a temp dir");
    std::fs::write(dir.path().join("config.yml"), contents).expect("write the config");
    dir
}

fn validate_in(dir: &Path, config: &str) -> Run {
    Localci::new()
        .in_dir(dir)
        .args(&["validate", "-c", config])
        .run()
}

#[test]
fn empty_file() {
    let dir = config_in_temp(b"");
    assert_one_error(
        &validate_in(dir.path(), "config.yml"),
        "the config is empty",
    );
}

#[test]
fn binary_file() {
    let dir = config_in_temp(b"\x7fELF\x02\x01\x01\x00\x00\xff\xfe");
    assert_one_error(
        &validate_in(dir.path(), "config.yml"),
        "config.yml is not a text file",
    );
}

#[test]
fn yaml_bomb() {
    let mut bomb =
        String::from("version: 2.1\na0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for level in 1..10 {
        let prev = format!("*a{}", level - 1);
        let items = [prev.as_str(); 9].join(", ");
        bomb.push_str(&format!("a{level}: &a{level} [{items}]\n"));
    }
    let dir = config_in_temp(bomb.as_bytes());
    assert_one_error(
        &validate_in(dir.path(), "config.yml"),
        "aliases expand the YAML beyond",
    );
}

#[test]
fn five_megabyte_config() {
    let mut config = String::from("version: 2.1\njobs:\n");
    let mut n = 0;
    while config.len() < 5 * 1024 * 1024 {
        config.push_str(&format!(
            "  job-{n}:\n    docker:\n      - image: cimg/base:stable\n    steps:\n      - checkout\n      - run:\n          name: Step {n}\n          command: make target-{n}\n"
        ));
        n += 1;
    }
    config.push_str(
        "  last:\n    docker:\n      - image: cimg/base:stable\n    steps:\n      - chekout\n",
    );
    let last_line = config.lines().count();
    let dir = config_in_temp(config.as_bytes());
    let run = validate_in(dir.path(), "config.yml");
    assert_one_error(&run, "unknown step `chekout`; did you mean `checkout`?");
    assert!(
        run.stderr.contains(&format!("config.yml:{last_line}:9")),
        "{}",
        run.transcript()
    );
}

#[test]
fn missing_file() {
    let dir = tempfile::tempdir().expect("a temp dir");
    assert_one_error(
        &validate_in(dir.path(), "nope.yml"),
        "cannot read nope.yml: no such file",
    );
}

#[test]
fn directory() {
    let dir = tempfile::tempdir().expect("a temp dir");
    std::fs::create_dir(dir.path().join("ci")).expect("mkdir");
    assert_one_error(&validate_in(dir.path(), "ci"), "ci is a directory");
}

#[test]
fn no_config_found() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let run = Localci::new().in_dir(dir.path()).args(&["validate"]).run();
    assert_one_error(&run, "no .circleci/config.yml in");
}

#[test]
fn bad_input_as_json_has_no_position() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let run = Localci::new()
        .in_dir(dir.path())
        .args(&["validate", "--format", "json", "-c", "nope.yml"])
        .run();
    assert_eq!(run.code, 2);
    let report: serde_json::Value = serde_json::from_str(&run.stdout).expect("JSON output");
    assert_eq!(report["valid"], false);
    assert_eq!(report["diagnostics"][0]["line"], serde_json::Value::Null);
    assert_eq!(report["diagnostics"][0]["severity"], "error");
}

/// Every config the repository and `../shared/` hold: our fixtures and golden cases, the
/// conformance suite and the CircleCI compiler's inputs.
fn every_config() -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut add_dir = |dir: &Path, pick: &dyn Fn(&Path) -> Option<PathBuf>| {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        let mut found: Vec<PathBuf> = entries.flatten().filter_map(|e| pick(&e.path())).collect();
        found.sort();
        files.extend(found);
    };
    let file = |p: &Path| p.is_file().then(|| p.to_path_buf());
    // Every compiler case, with and without an `args` file (both commands then read the
    // config with its defaults), and its expected output: processed output re-validates.
    let case = |p: &Path| Some(p.join("config.yml")).filter(|c| c.is_file());
    let input = |p: &Path| Some(p.join("input.yml")).filter(|i| i.is_file());
    let output = |p: &Path| Some(p.join("expected.yml")).filter(|e| e.is_file());
    add_dir(&Path::new(ROOT).join("tests/fixtures/validate"), &file);
    add_dir(&Path::new(ROOT).join("tests/process"), &case);
    add_dir(&Path::new(ROOT).join("tests/process"), &output);
    // The shared suites are read in place when they are there (as the suites above do).
    if let Some(suite) = shared("conformance") {
        add_dir(&suite.join("valid"), &file);
        add_dir(&suite.join("invalid"), &file);
    }
    if let Some(oracle) = shared("process-oracle") {
        add_dir(&oracle, &input);
        add_dir(&oracle, &output);
    }
    files
}

/// `process` failed only because registry orbs have no local source (which `validate`
/// reports as a warning by design).
fn only_missing_orbs(run: &Run) -> bool {
    let errors = run.error_lines();
    !errors.is_empty()
        && errors
            .iter()
            .all(|l| l.contains("cannot be resolved offline"))
}

/// See: issue 8, "the 2.1 language is written twice". `validate` and `process` agree on every
/// config we have: `process` accepts a config exactly when `validate` finds no error in it,
/// except that a registry orb without a local source is an error to `process` only.
#[test]
fn validate_and_process_agree() {
    let home = tempfile::tempdir().expect("a temp dir");
    let mut disagreements = Vec::new();
    let configs = every_config();
    let least = if shared("conformance").is_some() {
        300
    } else {
        120
    };
    assert!(configs.len() > least, "the fixtures are missing");
    for config in &configs {
        let path = config.display().to_string();
        let run = |command: &str| {
            let output = assert_cmd::Command::new(env!("CARGO_BIN_EXE_localci"))
                .args(["--color", "never", command, "-c", &path])
                .current_dir(ROOT)
                .env("HOME", home.path())
                .env("XDG_CACHE_HOME", home.path().join("cache"))
                .output()
                .expect("localci runs");
            Run {
                code: output.status.code().unwrap_or(-1),
                stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            }
        };
        let (validate, process) = (run("validate"), run("process"));
        let agree = match (validate.code, process.code) {
            (0, 0) | (2, 2) => true,
            (0, 2) => only_missing_orbs(&process),
            _ => false,
        };
        if !agree {
            disagreements.push(format!(
                "{path}\n  validate: {}\n  process: {}",
                validate.transcript().replace('\n', "\n    "),
                process.transcript().replace('\n', "\n    ")
            ));
        }
    }
    assert!(
        disagreements.is_empty(),
        "{} of {} configs:\n{}",
        disagreements.len(),
        configs.len(),
        disagreements.join("\n")
    );
}

/// See: issue 8, "Orbs that never block". An orb saved under `.circleci/orbs/` is read and
/// checked (no warning; a wrong argument to its command is an error), and a registry orb
/// without a local source is one warning while everything else is still checked.
#[test]
fn local_orbs_are_checked_and_missing_ones_warn_once() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let write = |rel: &str, text: &str| {
        let path = dir.path().join(rel);
        std::fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    };
    write(
        ".circleci/orbs/acme/tools@1.0.0.yml",
        "commands:\n  greet:\n    parameters:\n      to: {type: string}\n    steps:\n      - run: echo hi << parameters.to >>\n",
    );
    let config = "version: 2.1\norbs:\n  tools: acme/tools@1.0.0\n  heroku: circleci/heroku@1.0.1\njobs:\n  build:\n    docker: [{image: cimg/base:stable}]\n    steps:\n      - tools/greet: {to: you}\n  deploy:\n    docker: [{image: cimg/base:stable}]\n    steps:\n      - heroku/deploy-via-git\nworkflows:\n  main:\n    jobs: [build, deploy]\n";
    write(".circleci/config.yml", config);
    let home = dir.path().join("home");
    let run = |args: &[&str]| {
        let output = assert_cmd::Command::new(env!("CARGO_BIN_EXE_localci"))
            .args(["--color", "never"])
            .args(args)
            .current_dir(dir.path())
            .env("HOME", &home)
            .env_remove("XDG_CACHE_HOME")
            .output()
            .expect("localci runs");
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    };
    let ok = run(&["validate"]);
    assert_eq!(ok.code, 0, "{}", ok.transcript());
    let warnings: Vec<&str> = ok
        .stderr
        .lines()
        .filter(|l| l.starts_with("warning"))
        .collect();
    assert_eq!(warnings.len(), 1, "{}", ok.transcript());
    assert!(warnings[0].contains("orb `heroku`"), "{}", ok.transcript());

    write(
        ".circleci/config.yml",
        &config.replace("{to: you}", "{too: you}"),
    );
    let bad = run(&["validate"]);
    assert_eq!(bad.code, 2, "{}", bad.transcript());
    assert!(
        bad.error_lines().iter().any(|l| l.contains("too")),
        "{}",
        bad.transcript()
    );
}
