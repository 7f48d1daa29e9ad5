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
        crate::support::init(&repo.root(), "main");
        crate::support::commit_all(&repo.root(), "sample project");
        repo
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("project")
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
    fn assert_hides(&self, needle: &str) -> &Run {
        assert!(
            !self.text.contains(needle),
            "did not expect `{needle}` in the output:\n{}",
            self.text
        );
        self
    }
}

// What each README quotes is checked against what localci prints: every section headed
// "What `localci execute ARGS` shows" (optionally "(exit code N)") runs that command in a fresh
// copy of the sample, once per fenced block of the section (so a second block is a second
// run, e.g. a cache hit), and the block's lines must appear in the output, in order. Lines
// that differ between runs are matched loosely: container ids, durations, sizes and counts
// of copied files, how many attempts a wait for a service took, the README's `/tmp/<sample>`
// folder, and the length of pytest's `===` rules. `[...]` lines stand for lines
// left out. See: issue 10 (the READMEs quoted lines the tool no longer printed).

/// One section of a README: the command it runs, its exit code and the blocks it quotes.
struct Section {
    args: Vec<String>,
    code: i32,
    blocks: Vec<Vec<String>>,
}

fn readme_sections(readme: &str) -> Vec<Section> {
    let heading =
        regex::Regex::new(r"^## What `localci execute ([^`]+)` shows(?: \(exit code (\d+)\))?\s*$")
            .unwrap();
    let mut sections: Vec<Section> = Vec::new();
    let mut block: Option<Vec<String>> = None;
    let mut in_section = false;
    for line in readme.lines() {
        if let Some(lines) = block.as_mut() {
            if line.starts_with("```") {
                let lines = block.take().unwrap();
                sections.last_mut().unwrap().blocks.push(lines);
            } else {
                lines.push(line.to_string());
            }
        } else if let Some(c) = heading.captures(line) {
            sections.push(Section {
                args: shlex::split(&c[1]).expect("the heading's command is shell words"),
                code: c.get(2).map_or(0, |m| m.as_str().parse().unwrap()),
                blocks: Vec::new(),
            });
            in_section = true;
        } else if line.starts_with("## ") {
            in_section = false;
        } else if in_section && line.starts_with("```") {
            block = Some(Vec::new());
        }
    }
    sections
}

/// A quoted line as a whole-line pattern, with the parts that vary between runs loosened.
fn line_pattern(line: &str, sample: &str, root: &Path) -> regex::Regex {
    let varying = regex::Regex::new(&format!(
        r"(?P<path>/tmp/{})|(?P<run><run>)|(?P<id>\b[0-9a-f]{{12}}\b)|(?P<size>\b\d+(?:\.\d+)? (?:B|KiB|MiB|GiB)\b)|(?P<dur>\b(?:\d+h)?(?:\d+m)?\d+(?:\.\d+)?(?:ms|µs|s|m|h)\b)|(?P<files>\b\d+ files\b)|(?P<attempts>\b\d+ attempt\(s\))|(?P<rule>={{3,}}|-{{3,}})",
        regex::escape(sample)
    ))
    .unwrap();
    let mut pattern = String::from("^");
    let mut last = 0;
    for c in varying.captures_iter(line) {
        let m = c.get(0).unwrap();
        pattern.push_str(&regex::escape(&line[last..m.start()]));
        pattern.push_str(&if c.name("path").is_some() {
            regex::escape(&root.display().to_string())
        } else if c.name("run").is_some() {
            "[0-9a-f-]{36}".to_string()
        } else if c.name("id").is_some() {
            "[0-9a-f]{12}".to_string()
        } else if c.name("size").is_some() {
            r"\d+(?:\.\d+)? (?:B|KiB|MiB|GiB)".to_string()
        } else if c.name("dur").is_some() {
            r"(?:\d+h)?(?:\d+m)?\d+(?:\.\d+)?(?:ms|µs|s|m|h)".to_string()
        } else if c.name("files").is_some() {
            r"\d+ files".to_string()
        } else if c.name("attempts").is_some() {
            r"\d+ attempt\(s\)".to_string()
        } else {
            // pytest centres its summaries in rules that grow as the duration shrinks.
            format!("{}+", regex::escape(&m.as_str()[..1]))
        });
        last = m.end();
    }
    pattern.push_str(&regex::escape(&line[last..]));
    pattern.push('$');
    regex::Regex::new(&pattern).unwrap()
}

/// `[...]`, `[... the command ...]`: lines the README leaves out.
fn is_elision(line: &str) -> bool {
    line.trim_start().starts_with("[...")
}

/// Checks that the block's lines appear in `output` in order; says which one is missing.
fn assert_quoted(block: &[String], output: &str, sample: &str, root: &Path, what: &str) {
    let out: Vec<&str> = output.lines().map(str::trim_end).collect();
    let mut at = 0;
    for line in block.iter().filter(|l| !is_elision(l)) {
        let pattern = line_pattern(line.trim_end(), sample, root);
        match out[at..].iter().position(|o| pattern.is_match(o)) {
            Some(i) => at += i + 1,
            None => panic!(
                "{what}: the README quotes\n  {line}\nbut localci printed no such line (after the lines matched so far) in:\n{output}"
            ),
        }
    }
}

/// Runs every section of the sample's README and checks the lines it quotes; returns each
/// section's runs (output of every block's run) for further checks.
fn check_readme(sample: &str, local_args: &[&str]) -> Vec<(Vec<String>, Vec<Run>)> {
    let readme = fs::read_to_string(samples_dir().join(sample).join("README.md")).unwrap();
    let sections = readme_sections(&readme);
    assert!(
        !sections.is_empty(),
        "{sample}/README.md has no \"What `localci execute ...` shows\" section"
    );
    let mut all = Vec::new();
    for section in sections {
        let repo = SampleRepo::new(sample);
        let (job, rest) = section.args.split_first().expect("a job name");
        let mut args: Vec<&str> = rest.iter().map(String::as_str).collect();
        args.extend_from_slice(local_args);
        let mut runs = Vec::new();
        for (n, block) in section.blocks.iter().enumerate() {
            let run = repo.execute(job, &args);
            let what = format!(
                "{sample}: run {} of `localci execute {}`",
                n + 1,
                section.args.join(" ")
            );
            assert_eq!(
                run.code,
                Some(section.code),
                "{what}: exit code\n{}",
                run.text
            );
            assert_quoted(block, &run.text, sample, &repo.root(), &what);
            runs.push(run);
        }
        all.push((section.args, runs));
    }
    all
}

#[test]
fn the_quoted_lines_match_loosely_only_where_runs_differ() {
    let root = Path::new("/work/x");
    let p = line_pattern(
        "Primary container 202115f15ca0 (img) as uid 0, in 5.785s from /tmp/demo, 30 files (30.3 KiB)",
        "demo",
        root,
    );
    assert!(p.is_match(
        "Primary container 0123456789ab (img) as uid 0, in 1m2.5s from /work/x, 31 files (1 B)"
    ));
    assert!(!p.is_match(
        "Primary container 0123456789ab (img) as uid 1, in 1m2.5s from /work/x, 31 files (1 B)"
    ));
    // How soon a service answers depends on how soon the steps begin.
    let waited = line_pattern("service answered after 1 attempt(s)", "demo", root);
    assert!(waited.is_match("service answered after 2 attempt(s)"));
    let ago = line_pattern("Found one created 59s ago", "demo", root);
    assert!(ago.is_match("Found one created 1m ago"));
    let rule = line_pattern("===== 5 passed in 0.07s =====", "demo", root);
    assert!(rule.is_match("==== 5 passed in 10.07s ===="));
    assert!(!rule.is_match("==== 4 passed in 10.07s ===="));
    let sections = readme_sections(
        "## What `localci execute a -e X=1` shows (exit code 1)\n\n```\nx\n[...]\n```\ntext\n```\ny\n```\n## Other\n```\nz\n```\n",
    );
    assert_eq!(sections.len(), 1);
    assert_eq!(sections[0].args, vec!["a", "-e", "X=1"]);
    assert_eq!(sections[0].code, 1);
    assert_eq!(sections[0].blocks, vec![vec!["x", "[...]"], vec!["y"]]);
}

#[test]
fn busybox_readme_shows_what_localci_prints() {
    if !docker_with_images(&[BUSYBOX_IMAGE]) {
        return;
    }
    for (args, runs) in check_readme("busybox-basics", &[]) {
        // The lines the README does not quote: skipped steps printed nothing of their own.
        let run = &runs[0];
        match args[0].as_str() {
            "build" => run.assert_hides("on_fail step ran in job build"),
            _ => run.assert_hides("skipped step ran in job failing"),
        };
    }
}

#[test]
fn workflow_readme_shows_what_localci_prints() {
    if !docker_with_images(&[BUSYBOX_IMAGE]) {
        return;
    }
    for (args, runs) in check_readme("workflow-demo", &[]) {
        for run in &runs {
            // Both nodes of `test` ran, and between them every test exactly once.
            let mut ran: Vec<&str> = run
                .text
                .lines()
                .filter_map(|l| l.split_once("| test tests/")?.1.strip_suffix(": passed"))
                .collect();
            ran.sort_unstable();
            assert_eq!(
                ran,
                [
                    "test_both_differ.sh",
                    "test_loud_default.sh",
                    "test_loud_name.sh",
                    "test_plain_default.sh",
                    "test_plain_name.sh"
                ],
                "{args:?}: {}",
                run.text
            );
        }
    }
}

#[test]
fn flask_readme_shows_what_localci_prints() {
    if !docker_with_images(&[PYTHON_IMAGE]) {
        return;
    }
    let sections = check_readme("flask-service", &["--image-map", PYTHON_IMAGE_MAP]);
    let jobs: Vec<&str> = sections.iter().map(|(args, _)| args[0].as_str()).collect();
    assert_eq!(
        jobs,
        ["build", "service", "failing"],
        "the README's sections"
    );
    let failing = &sections[2].1[0];
    failing.assert_hides("skipped step ran in job failing");
}
