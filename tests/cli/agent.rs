//! The in-container agent (`circleci` / `circleci-agent`, docs/agent.md) in real containers:
//! one without any libc (the busybox image) and one with glibc (Debian). The agent is
//! installed with the same archive the engine uploads (`src/agent/archive.rs`, compiled here
//! too) through `docker cp -`, which extracts a tar as the engine's upload does. Containers
//! carry the `localci=1` label and are removed at the end of each test.

use std::collections::BTreeSet;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::execute::{BUSYBOX, docker_ready};

#[allow(
    dead_code,
    reason = "the test uses the archive, not every name in the file"
)]
#[path = "../../src/agent/archive.rs"]
mod archive;
#[allow(dead_code, reason = "the test writes timings; the agent reads them")]
#[path = "../../src/agent/tsv.rs"]
mod tsv;

const DEBIAN: &str = "localci-test/debian:bookworm";
/// The agent `build.rs` built for this package.
const AGENT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/localci-agent"));

/// The tests the containers hold, with sizes that make the filesize split predictable.
const TESTS: [(&str, usize); 6] = [
    ("tests/test_big.py", 9000),
    ("tests/test_mid.py", 4000),
    ("tests/unit/test_a.py", 3000),
    ("tests/unit/test_b.py", 1000),
    ("tests/unit/deep/test_c.py", 500),
    ("tests/unit/deep/test_d.py", 400),
];

/// A started container with the agent installed; removed when dropped.
struct Container {
    id: String,
}

struct Output {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Output {
    fn lines(&self) -> Vec<String> {
        self.stdout.lines().map(str::to_string).collect()
    }
}

impl Container {
    fn with_agent(image: &str) -> Container {
        let out = Command::new("docker")
            .args([
                "create",
                "--label",
                "localci=1",
                "--label",
                "localci.test=agent",
            ])
            .args([image, "sleep", "600"])
            .output()
            .expect("docker runs");
        assert!(
            out.status.success(),
            "docker create: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let container = Container {
            id: String::from_utf8_lossy(&out.stdout).trim().to_string(),
        };
        container.upload(&archive::of(AGENT));
        let started = Command::new("docker")
            .args(["start", &container.id])
            .output()
            .unwrap();
        assert!(
            started.status.success(),
            "{}",
            String::from_utf8_lossy(&started.stderr)
        );
        container.setup();
        container
    }

    /// Extracts a tar at `/`, as the engine's upload does.
    fn upload(&self, tar: &[u8]) {
        let mut cp = Command::new("docker")
            .args(["cp", "-", &format!("{}:/", self.id)])
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        cp.stdin.take().unwrap().write_all(tar).unwrap();
        let out = cp.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "docker cp: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The test files in /work, and a folder for the agent that the circleci user owns.
    fn setup(&self) {
        let mut script =
            String::from("set -e; mkdir -p /agent /work; chown 3434 /agent; cd /work; ");
        for (file, size) in TESTS {
            script.push_str(&format!(
                "mkdir -p /work/$(dirname {file}); head -c {size} /dev/zero > /work/{file}; "
            ));
        }
        script.push_str("echo notes > /work/tests/README.txt");
        let out = self.sh_as("0", "/", &script, &[]);
        assert_eq!(out.code, 0, "setup: {} {}", out.stderr, out.stdout);
    }

    /// Runs a shell script in /work as the circleci user (3434), with extra environment.
    fn sh(&self, script: &str, env: &[(&str, &str)]) -> Output {
        self.sh_as("3434", "/work", script, env)
    }

    fn sh_as(&self, user: &str, dir: &str, script: &str, env: &[(&str, &str)]) -> Output {
        let mut command = Command::new("docker");
        command.args(["exec", "-i", "-u", user, "-w", dir]);
        for (name, value) in env {
            command.args(["-e", &format!("{name}={value}")]);
        }
        let out = command
            .args([&self.id, "sh", "-c", script])
            .stdin(Stdio::null())
            .output()
            .expect("docker runs");
        Output {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Both nodes' shares of the glob, split with these flags; asserts they succeed.
    fn shares(&self, flags: &str, env: &[(&str, &str)]) -> (Vec<String>, Vec<String>, String) {
        let split = |index| {
            let out = self.sh(
                &format!(
                    "circleci tests glob 'tests/**/*.py' | circleci tests split {flags} --total 2 --index {index}"
                ),
                env,
            );
            assert_eq!(out.code, 0, "{flags}: {}", out.stderr);
            out
        };
        let (first, second) = (split(0), split(1));
        assert_eq!(first.stderr, second.stderr, "both nodes say the same");
        (first.lines(), second.lines(), first.stderr)
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["rm", "-f", &self.id]).output();
    }
}

fn all_tests() -> BTreeSet<String> {
    TESTS.iter().map(|(file, _)| file.to_string()).collect()
}

/// The two shares are disjoint and together hold every test.
fn assert_exact_cover(first: &[String], second: &[String]) {
    let a: BTreeSet<String> = first.iter().cloned().collect();
    let b: BTreeSet<String> = second.iter().cloned().collect();
    assert_eq!(
        a.len() + b.len(),
        first.len() + second.len(),
        "a test listed twice"
    );
    assert!(
        a.is_disjoint(&b),
        "a test on both nodes: {first:?} {second:?}"
    );
    assert_eq!(&a | &b, all_tests(), "shares {first:?} {second:?}");
    assert!(!a.is_empty() && !b.is_empty(), "both nodes have work");
}

fn installed_and_globbing(c: &Container) {
    let out = c.sh(
        "stat -c '%a %u' /usr/local/bin/circleci /usr/local/bin/circleci-agent",
        &[],
    );
    assert_eq!(out.lines(), ["755 0", "755 0"], "{}", out.stderr);
    let out = c.sh("circleci tests glob 'tests/**/*.py'", &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.lines(), all_tests().into_iter().collect::<Vec<_>>());
    let out = c.sh(
        "circleci tests glob 'tests/*.{py,txt}' 'tests/unit/test_?.py'",
        &[],
    );
    assert_eq!(
        out.lines(),
        [
            "tests/README.txt",
            "tests/test_big.py",
            "tests/test_mid.py",
            "tests/unit/test_a.py",
            "tests/unit/test_b.py"
        ]
    );
}

fn splitting(c: &Container) {
    let (first, second, notes) = c.shares("", &[]);
    assert_exact_cover(&first, &second);
    assert!(notes.is_empty(), "{notes}");
    // By size the 9000-byte file alone outweighs the rest (8900 bytes).
    let (first, second, _) = c.shares("--split-by=filesize", &[]);
    assert_exact_cover(&first, &second);
    assert_eq!(first, ["tests/test_big.py"]);
    // The node also comes from CIRCLE_NODE_INDEX / CIRCLE_NODE_TOTAL.
    let out = c.sh(
        "circleci tests glob 'tests/**/*.py' | circleci tests split --split-by=filesize",
        &[("CIRCLE_NODE_INDEX", "1"), ("CIRCLE_NODE_TOTAL", "2")],
    );
    assert_eq!(out.lines(), second);
}

fn splitting_by_timings(c: &Container) {
    let agent_dir = [("LOCALCI_AGENT_DIR", "/agent")];
    // No timings yet: CircleCI's message, then the split by name.
    let (first, second, notes) = c.shares("--split-by=timings", &agent_dir);
    assert_exact_cover(&first, &second);
    assert!(
        notes.contains("Falling back to weighting by name"),
        "{notes}"
    );
    // test_d.py is slow here, whatever its size; test_c.py has no timing.
    let mut timings = String::new();
    for (file, seconds) in [
        ("tests/test_big.py", 1.0),
        ("tests/test_mid.py", 1.0),
        ("tests/unit/test_a.py", 2.0),
        ("tests/unit/test_b.py", 1.0),
        ("tests/unit/deep/test_d.py", 60.0),
    ] {
        timings.push_str(&tsv::row(file, "", "test", seconds));
    }
    let out = c.sh(
        &format!("cat > /agent/timings.tsv <<'EOF'\n{timings}EOF"),
        &[],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let (first, second, notes) = c.shares("--split-by=timings", &agent_dir);
    assert_exact_cover(&first, &second);
    assert_eq!(first, ["tests/unit/deep/test_d.py"]);
    assert_eq!(
        notes.trim(),
        "No timing found for \"tests/unit/deep/test_c.py\""
    );
}

fn running(c: &Container) {
    let glob = "circleci tests glob 'tests/**/*.py'";
    let out = c.sh(
        &format!("{glob} | circleci tests run --command 'xargs echo RAN' --index 0 --total 2"),
        &[],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let (first, _, _) = c.shares("", &[]);
    assert_eq!(out.lines(), [format!("RAN {}", first.join(" "))]);
    // The command's exit status is the step's.
    let out = c.sh(
        &format!("{glob} | circleci tests run --command='cat >/dev/null; exit 3'"),
        &[],
    );
    assert_eq!(out.code, 3, "{}", out.stderr);
    // A node without tests does not run the command.
    let out = c.sh(
        "echo only.py | circleci tests run --command 'echo RAN' --index 1 --total 2",
        &[],
    );
    assert_eq!(out.code, 0);
    assert!(
        out.lines()[0].starts_with("There were no tests found"),
        "{}",
        out.stdout
    );
}

fn substituting_halting_and_refusing(c: &Container) {
    let out = c.sh(
        "printf '%s' 'url=$HOST:${PORT:-8080} ${UNSET}.' | circleci env subst",
        &[("HOST", "db")],
    );
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (0, "url=db:8080 ."),
        "{}",
        out.stderr
    );
    let out = c.sh(
        "circleci-agent step halt && test -f /agent/halt && echo halted",
        &[("LOCALCI_AGENT_DIR", "/agent")],
    );
    assert_eq!(out.lines(), ["halted"], "{}", out.stderr);
    let out = c.sh("circleci step halt", &[]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("LOCALCI_AGENT_DIR is not set"),
        "{}",
        out.stderr
    );
    let out = c.sh("circleci config validate", &[]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr
            .starts_with("circleci config: not emulated by localci inside the container"),
        "{}",
        out.stderr
    );
    let out = c.sh("circleci-agent orb pack src", &[]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.starts_with("circleci-agent orb: not emulated"),
        "{}",
        out.stderr
    );
    let out = c.sh("circleci --help", &[]);
    assert_eq!(out.code, 0);
    assert!(
        out.stdout.contains("circleci tests split"),
        "{}",
        out.stdout
    );
}

fn exercise(container: &Container) {
    installed_and_globbing(container);
    splitting(container);
    splitting_by_timings(container);
    running(container);
    substituting_halting_and_refusing(container);
}

#[test]
fn the_agent_works_in_an_image_without_libc() {
    if !docker_ready() {
        return;
    }
    let out = Command::new("docker")
        .args([
            "run",
            "--rm",
            "--label",
            "localci=1",
            BUSYBOX,
            "sh",
            "-c",
            "ls /lib /lib64 /usr/lib 2>/dev/null | grep -c libc",
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "0",
        "the image has no libc"
    );
    exercise(&Container::with_agent(BUSYBOX));
}

#[test]
fn the_agent_works_in_a_glibc_image() {
    if !docker_ready() {
        return;
    }
    let container = Container::with_agent(DEBIAN);
    // Installing over an earlier install (or an image's own `circleci`) replaces it.
    container.upload(&archive::of(AGENT));
    exercise(&container);
}

/// The agent as a host program (it is a static Linux executable), in a temporary folder.
struct HostAgent {
    dir: tempfile::TempDir,
}

impl HostAgent {
    fn new() -> HostAgent {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("circleci");
        std::fs::write(&path, AGENT).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        HostAgent { dir }
    }

    /// Runs a shell script in `cwd` with the agent first on PATH and no CIRCLE_NODE_* set.
    fn sh(&self, cwd: &Path, script: &str) -> Output {
        let path = format!(
            "{}:{}",
            self.dir.path().display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let out = Command::new("sh")
            .args(["-c", script])
            .current_dir(cwd)
            .env("PATH", path)
            .env_remove("CIRCLE_NODE_INDEX")
            .env_remove("CIRCLE_NODE_TOTAL")
            .env_remove("LOCALCI_AGENT_DIR")
            .output()
            .unwrap();
        Output {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

#[test]
fn split_reads_a_list_file_and_shows_counts() {
    let agent = HostAgent::new();
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("list.txt"), "c.py\na.py b.py\n\nd.py\n").unwrap();
    let out = agent.sh(
        work.path(),
        "circleci tests split --total=2 --index=1 --show-counts list.txt",
    );
    assert_eq!(
        (out.code, out.lines()),
        (0, vec!["b.py".to_string(), "d.py".to_string()])
    );
    assert_eq!(out.stderr, "node 1 of 2 (0-based) runs 2 of 4 tests\n");
    let out = agent.sh(work.path(), "circleci tests split missing.txt");
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.starts_with("circleci: reading missing.txt: "),
        "{}",
        out.stderr
    );
}

#[test]
fn usage_errors_exit_1_with_what_to_do() {
    let agent = HostAgent::new();
    let work = tempfile::tempdir().unwrap();
    let out = agent.sh(
        work.path(),
        "echo a | circleci tests split --index 2 --total 2",
    );
    assert_eq!(out.code, 1);
    assert_eq!(
        out.stderr,
        "circleci: node index 2 is out of range: there are 2 nodes (0 to 1) (see `circleci help`)\n"
    );
    let out = agent.sh(work.path(), "circleci tests glob 'tests/[a.py'");
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("invalid glob pattern \"tests/[a.py\""),
        "{}",
        out.stderr
    );
    let out = agent.sh(work.path(), "printf 'x ${A' | circleci env subst");
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("no closing"), "{}", out.stderr);
}

#[test]
fn a_closed_pipe_ends_the_output_quietly() {
    let agent = HostAgent::new();
    let work = tempfile::tempdir().unwrap();
    let out = agent.sh(
        work.path(),
        "seq 1 200000 | circleci tests split | head -n 1",
    );
    assert_eq!(out.lines()[0], "1");
    assert!(out.stderr.is_empty(), "{}", out.stderr);
}

#[test]
fn run_is_verbose_on_request_and_passes_stdin_through() {
    let agent = HostAgent::new();
    let work = tempfile::tempdir().unwrap();
    let out = agent.sh(
        work.path(),
        "printf 'b\\na\\n' | circleci tests run --verbose --command 'while read t; do echo \"got $t\"; done'",
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.lines(), ["got a", "got b"]);
    assert!(
        out.stderr.starts_with("Running `while read t"),
        "{}",
        out.stderr
    );
}

// The form real configs use to learn a node's share, then halt when it is empty.
#[test]
fn run_can_write_the_share_to_a_file_and_skips_nodes_without_tests() {
    let agent = HostAgent::new();
    let work = tempfile::tempdir().unwrap();
    let script = |index: usize| {
        format!(
            "printf 'b.py\\na.py\\nc.py\\n' | circleci tests run --command='>tests.txt xargs echo' \
             --index {index} --total 4; [ -s tests.txt ] && cat tests.txt || echo 'nothing to run'; rm -f tests.txt"
        )
    };
    let out = agent.sh(work.path(), &script(0));
    assert_eq!(out.lines(), ["a.py"], "{}", out.stderr);
    let out = agent.sh(work.path(), &script(3));
    assert_eq!(
        out.lines(),
        [
            "There were no tests found for this node; the command was not run.",
            "nothing to run"
        ]
    );
}
