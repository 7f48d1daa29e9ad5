//! The projects under `sample-projects/` run as their READMEs say: every config validates, and
//! (with Docker and the local `localci-test/*` images) `localci execute` of their jobs passes or
//! fails as documented. Each sample is copied into its own temporary git repository first, as a
//! user would start from it, so `checkout` sends that project and not the whole localci tree.
//!
//! Docker tests skip with a message when the daemon or the images are missing, except under
//! `CI=true`, where a missing image is a failure: CI builds them (`tests/images/build.sh`).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command as StdCommand;
use std::time::Duration;

use assert_cmd::Command;

const BUSYBOX_IMAGE: &str = "localci-test/busybox:latest";
const PYTHON_IMAGE: &str = "localci-test/python:3";
const PYTHON_IMAGE_MAP: &str = "cimg/python:3.12=localci-test/python:3";
/// A job that hangs must not hang the test suite.
const JOB_TIMEOUT: Duration = Duration::from_secs(600);

fn samples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("sample-projects")
}

fn localci() -> Command {
    Command::new(env!("CARGO_BIN_EXE_localci"))
}

/// Every `sample-projects/<name>/.circleci/config.yml`, sorted by name.
fn sample_configs() -> Vec<PathBuf> {
    let mut configs: Vec<PathBuf> = fs::read_dir(samples_dir())
        .expect("sample-projects/ is part of the repository")
        .map(|entry| entry.unwrap().path().join(".circleci/config.yml"))
        .filter(|config| config.is_file())
        .collect();
    configs.sort();
    configs
}

#[test]
fn every_sample_config_validates() {
    let configs = sample_configs();
    assert!(
        configs.len() >= 2,
        "expected at least the flask-service and busybox-basics samples, found {configs:?}"
    );
    for config in configs {
        let output = localci()
            .arg("validate")
            .arg("--config")
            .arg(&config)
            .arg("--color=never")
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "`localci validate --config {}` exited with {:?}\nstdout:\n{}\nstderr:\n{}",
            config.display(),
            output.status.code(),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
        );
    }
}

#[test]
fn every_sample_config_processes_and_the_output_revalidates() {
    let dir = tempfile::tempdir().unwrap();
    let mut configs = sample_configs();
    configs.push(Path::new(env!("CARGO_MANIFEST_DIR")).join(".circleci/config.yml"));
    for config in configs {
        let processed = dir.path().join("processed.yml");
        let output = localci()
            .args(["--color=never", "process", "--config"])
            .arg(&config)
            .arg("-o")
            .arg(&processed)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "`localci process --config {}` failed:\n{}",
            config.display(),
            String::from_utf8_lossy(&output.stderr),
        );
        let output = localci()
            .args(["--color=never", "validate", "--strict", "--config"])
            .arg(&processed)
            .output()
            .unwrap();
        assert!(
            output.status.success() && output.stderr.is_empty(),
            "the processed form of {} does not re-validate:\n{}",
            config.display(),
            String::from_utf8_lossy(&output.stderr),
        );
    }
}

/// True when Docker answers and has every image. Otherwise prints why and returns false, or
/// panics under `CI=true`, where a skipped Docker test would hide a broken setup.
fn docker_with_images(images: &[&str]) -> bool {
    let missing: Vec<&str> = images
        .iter()
        .copied()
        .filter(|image| !image_present(image))
        .collect();
    if missing.is_empty() {
        return true;
    }
    let why = format!(
        "Docker or the image(s) {} are not available; build them with `bash tests/images/build.sh`",
        missing.join(", ")
    );
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "CI=true: {why}"
    );
    eprintln!("skipping: {why}");
    false
}

fn image_present(image: &str) -> bool {
    StdCommand::new("docker")
        .args(["image", "inspect", "--format", "{{.Id}}", image])
        .output()
        .is_ok_and(|output| output.status.success())
}

/// A sample copied into a fresh git repository with one commit, plus a cache dir of its own.
struct SampleRepo {
    dir: tempfile::TempDir,
}

/// Build and test outputs of a previous local run are not part of a fresh project.
const NOT_COPIED: &[&str] = &[
    ".venv",
    "test-results",
    ".localci",
    "__pycache__",
    ".pytest_cache",
];

impl SampleRepo {
    fn new(sample: &str) -> SampleRepo {
        let dir = tempfile::tempdir().unwrap();
        copy_tree(&samples_dir().join(sample), &dir.path().join("project"));
        let repo = SampleRepo { dir };
        repo.git(&["init", "-q", "-b", "main"]);
        repo.git(&["add", "-A"]);
        repo.git(&[
            "-c",
            "user.name=localci tests",
            "-c",
            "user.email=tests@localci.invalid",
            "-c",
            "commit.gpgsign=false",
            "commit",
            "-q",
            "-m",
            "sample project",
        ]);
        repo
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("project")
    }

    fn git(&self, args: &[&str]) {
        let status = StdCommand::new("git")
            .args(args)
            .current_dir(self.root())
            .status()
            .expect("git is installed");
        assert!(status.success(), "git {args:?} failed");
    }

    /// `localci execute <job> <extra...> --cache-dir <tmp>/cache` in the project.
    fn execute(&self, job: &str, extra: &[&str]) -> Run {
        let output = localci()
            .current_dir(self.root())
            .args(["--color=never", "execute", job])
            .args(extra)
            .arg("--cache-dir")
            .arg(self.dir.path().join("cache"))
            .timeout(JOB_TIMEOUT)
            .output()
            .unwrap();
        Run {
            code: output.status.code(),
            text: format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ),
        }
    }
}

fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        if NOT_COPIED.iter().any(|skip| name == *skip) {
            continue;
        }
        let (source, target) = (entry.path(), to.join(&name));
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&source, &target);
        } else {
            // fs::copy keeps the permissions, so hello.sh stays executable.
            fs::copy(&source, &target).unwrap();
        }
    }
}

/// What one `localci execute` printed (stdout then stderr) and how it exited.
struct Run {
    code: Option<i32>,
    text: String,
}

impl Run {
    fn assert_code(&self, expected: i32) -> &Run {
        assert_eq!(
            self.code,
            Some(expected),
            "unexpected exit code; output:\n{}",
            self.text
        );
        self
    }

    fn assert_shows(&self, needle: &str) -> &Run {
        assert!(
            self.text.contains(needle),
            "expected `{needle}` in the output:\n{}",
            self.text
        );
        self
    }

    fn assert_matches(&self, pattern: &str) -> &Run {
        let regex = regex::Regex::new(pattern).unwrap();
        assert!(
            regex.is_match(&self.text),
            "expected a match of `{pattern}` in the output:\n{}",
            self.text
        );
        self
    }

    fn assert_hides(&self, needle: &str) -> &Run {
        assert!(
            !self.text.contains(needle),
            "did not expect `{needle}` in the output:\n{}",
            self.text
        );
        self
    }
}

// The expected lines below are what the steps print with variables expanded, so they cannot
// match the command text that a step header may echo.

#[test]
fn busybox_build_job_passes() {
    if !docker_with_images(&[BUSYBOX_IMAGE]) {
        return;
    }
    let repo = SampleRepo::new("busybox-basics");
    // `-e` stands in for project variables: below the job's `environment`.
    repo.execute(
        "build",
        &["-e", "PROJECT_TOKEN=abc123", "-e", "GREETING=from-cli"],
    )
    .assert_code(0)
    .assert_shows("hello from ./hello.sh, running as root in /root/project")
    .assert_shows("LEVEL=step (step beats job beats image)")
    .assert_shows("GREETING=hello (from the job)")
    .assert_shows("FROM_IMAGE=yes (from the image entry)")
    .assert_shows("CIRCLE_JOB=build CI=true CIRCLECI=true")
    // Project variables are masked like CircleCI masks them (issue 9, finding 4).
    .assert_shows("PROJECT_TOKEN=******** (-e and --env-file")
    .assert_hides("abc123")
    .assert_shows("LEVEL=inline (set in the command itself wins)")
    .assert_shows("ONLY_HERE='' cwd=/root/project")
    .assert_shows("/bin/sh is busybox, BASH_VERSION=''")
    .assert_shows("always step ran in job build")
    .assert_hides("on_fail step ran in job build");
}

#[test]
fn busybox_failing_job_exits_1_and_runs_on_fail_steps() {
    if !docker_with_images(&[BUSYBOX_IMAGE]) {
        return;
    }
    let repo = SampleRepo::new("busybox-basics");
    repo.execute("failing", &[])
        .assert_code(1)
        .assert_shows("failing on purpose in job failing")
        .assert_hides("skipped step ran in job failing")
        .assert_shows("on_fail step ran in job failing")
        .assert_shows("always step ran in job failing");
}

#[test]
fn flask_build_job_passes_and_hits_its_cache_the_second_time() {
    if !docker_with_images(&[PYTHON_IMAGE]) {
        return;
    }
    let repo = SampleRepo::new("flask-service");
    let map = ["--image-map", PYTHON_IMAGE_MAP];
    repo.execute("build", &map)
        .assert_code(0)
        .assert_shows("No cache is found for key: v1-pip-")
        .assert_shows("no cached .venv in /root/project: fresh install")
        .assert_shows("rated at 10.00/10")
        .assert_shows("5 passed")
        .assert_shows("Stored cache v1-pip-")
        .assert_shows("Test results: 5 passed, 0 failed");
    let stored = std::fs::read_dir(repo.root().join(".localci/runs"))
        .map(|runs| {
            runs.filter_map(Result::ok)
                .any(|r| r.path().join("build").is_dir())
        })
        .unwrap_or(false);
    assert!(
        stored,
        "store_artifacts copied nothing to .localci/runs/<run>/build"
    );
    repo.execute("build", &map)
        .assert_code(0)
        .assert_shows("Found a cache created")
        .assert_shows("using the cached .venv (python3")
        .assert_shows("5 passed")
        .assert_shows("Skipping cache generation, cache already exists for key: v1-pip-");
}

#[test]
fn flask_service_job_reaches_its_service_on_localhost() {
    if !docker_with_images(&[PYTHON_IMAGE]) {
        return;
    }
    let repo = SampleRepo::new("flask-service");
    repo.execute("service", &["--image-map", PYTHON_IMAGE_MAP])
        .assert_code(0)
        .assert_matches(r"service answered on localhost:8000 after \d+ attempt")
        .assert_matches(r"\d+ bytes from http://files:8000/");
}

#[test]
fn flask_failing_job_exits_1() {
    if !docker_with_images(&[PYTHON_IMAGE]) {
        return;
    }
    let repo = SampleRepo::new("flask-service");
    repo.execute("failing", &["--image-map", PYTHON_IMAGE_MAP])
        .assert_code(1)
        .assert_shows("1 failed, 1 passed")
        .assert_shows("failed: demo_failures.test_known_bug::test_greeting_is_localised")
        .assert_shows("on_fail step ran in job failing")
        .assert_hides("skipped step ran in job failing");
}
