//! `localci execute` against the real Docker daemon, with the local test images only
//! (`bash tests/images/build.sh`). Each test runs in its own temporary git repository; a guard
//! removes every container the run's process created (set LOCALCI_KEEP_TEST_CONTAINERS=1 to
//! keep them), and no other: processes are told apart by pid and start time, so a later process
//! with a reused pid is not mistaken for ours. Without Docker these tests fail in CI (`CI=true`) and are skipped elsewhere.

use std::cell::RefCell;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub(crate) const BUSYBOX: &str = "localci-test/busybox:latest";
pub(crate) const DEBIAN: &str = "localci-test/debian:bookworm";
const PRESERVE: &str = "localci-test/preserve:latest";

/// Whether Docker and the test images are usable. In CI their absence fails the test.
pub(crate) fn docker_ready() -> bool {
    static READY: OnceLock<Result<(), String>> = OnceLock::new();
    let ready = READY.get_or_init(|| {
        let out = Command::new("docker")
            .args(["image", "inspect", "--format", "{{.Id}}", BUSYBOX, DEBIAN, PRESERVE])
            .output()
            .map_err(|e| format!("cannot run `docker`: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "Docker or the test images are not available ({}); build them with `bash tests/images/build.sh`",
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    });
    match ready {
        Ok(()) => true,
        Err(why) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("Docker tests must run in CI: {why}")
        }
        Err(why) => {
            eprintln!("skipping a Docker test: {why}");
            false
        }
    }
}

macro_rules! require_docker {
    () => {
        if !docker_ready() {
            return;
        }
    };
}

/// A process, told apart from a later one with the same pid by its start time (Linux).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Proc {
    pub(crate) pid: u32,
    started: Option<u64>,
}

impl Proc {
    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    /// Must be called before the child is reaped.
    pub(crate) fn of(child: &Child) -> Proc {
        let pid = child.id();
        Proc {
            pid,
            started: start_time(pid),
        }
    }
}

/// Field 22 of `/proc/<pid>/stat`, counted after the command name's last `)`.
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(19)?
        .parse()
        .ok()
}

/// Ids of the containers a localci process created (by its pid and start time labels).
pub(crate) fn containers_of(owner: Proc) -> Vec<String> {
    labelled_of(owner, &["ps", "-aq"])
}

/// What `docker <list...>` (`ps -aq`, `network ls -q`, `volume ls -q`) lists of the resources
/// a localci process created.
pub(crate) fn labelled_of(owner: Proc, list: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = list.iter().map(|a| (*a).to_string()).collect();
    args.extend([
        "--filter".to_string(),
        format!("label=localci.pid={}", owner.pid),
    ]);
    if let Some(started) = owner.started {
        args.push("--filter".into());
        args.push(format!("label=localci.started={started}"));
    }
    docker_lines(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

/// The containers a localci process created that are still there once they are all gone, or
/// after 10 s: the engine removes the primary of a job that ran to its end itself
/// (auto-remove), a moment after localci exits (issue 10). After Ctrl-C, check
/// [`containers_of`] at once: those are removed before localci exits.
pub(crate) fn containers_left(owner: Proc) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = containers_of(owner);
        if left.is_empty() || Instant::now() >= deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Removes the containers it names when dropped (for containers a test made itself).
struct RemoveOnDrop(Vec<String>);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if !self.0.is_empty() {
            let _ = Command::new("docker")
                .args(["rm", "-f"])
                .args(&self.0)
                .output();
        }
    }
}

pub(crate) fn docker_lines(args: &[&str]) -> Vec<String> {
    let out = Command::new("docker")
        .args(args)
        .output()
        .expect("docker runs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect()
}

/// A temporary git repository with a config, and the localci runs made in it.
pub(crate) struct Project {
    dir: tempfile::TempDir,
    cache: tempfile::TempDir,
    /// The localci processes started here, for cleanup.
    procs: RefCell<Vec<Proc>>,
}

pub(crate) struct Run {
    pub(crate) code: i32,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
    pub(crate) owner: Proc,
}

impl Run {
    fn lines(&self) -> Vec<&str> {
        self.stdout.lines().collect()
    }

    #[track_caller]
    pub(crate) fn assert_code(&self, code: i32) -> &Run {
        assert_eq!(
            self.code, code,
            "exit code\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout, self.stderr
        );
        self
    }

    #[track_caller]
    pub(crate) fn assert_stdout(&self, text: &str) -> &Run {
        assert!(
            self.stdout.contains(text),
            "stdout lacks {text:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout,
            self.stderr
        );
        self
    }

    #[track_caller]
    pub(crate) fn assert_stderr(&self, text: &str) -> &Run {
        assert!(
            self.stderr.contains(text),
            "stderr lacks {text:?}\n--- stderr\n{}",
            self.stderr
        );
        self
    }

    #[track_caller]
    pub(crate) fn assert_nothing_left(&self) -> &Run {
        assert_eq!(
            containers_left(self.owner),
            Vec::<String>::new(),
            "containers left behind"
        );
        self
    }
}

impl Project {
    pub(crate) fn new(config: &str) -> Project {
        let project = Project {
            dir: tempfile::tempdir().unwrap(),
            cache: tempfile::tempdir().unwrap(),
            procs: RefCell::new(Vec::new()),
        };
        crate::support::init(project.path(), "main");
        project.write(".circleci/config.yml", config);
        project.commit();
        project
    }

    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The per-user config file its runs read (`$LOCALCI_CONFIG`); absent unless written.
    pub(crate) fn user_config_path(&self) -> PathBuf {
        self.cache.path().join("localci-config.yml")
    }

    /// The cache directory its runs use (`--cache-dir`).
    pub(crate) fn cache_dir(&self) -> &Path {
        self.cache.path()
    }

    pub(crate) fn write(&self, rel: &str, text: &str) -> &Project {
        let path = self.path().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
        self
    }

    pub(crate) fn commit(&self) {
        crate::support::commit_all(self.path(), "commit");
    }

    pub(crate) fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_localci"));
        cmd.current_dir(self.path())
            .arg("execute")
            .args(args)
            .arg("--cache-dir")
            .arg(self.cache.path())
            .env_remove("LOCALCI_CACHE_DIR")
            // Never the user's own per-user file (machine images); see `user_config`.
            .env("LOCALCI_CONFIG", self.user_config_path())
            .env("NO_COLOR", "1");
        cmd
    }

    pub(crate) fn execute(&self, args: &[&str]) -> Run {
        self.execute_with(args, &[])
    }

    pub(crate) fn execute_with(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut cmd = self.command(args);
        cmd.envs(env.iter().copied());
        self.run_command(cmd)
    }

    /// Runs a prepared command (see [`Project::command`]) to its end.
    pub(crate) fn run_command(&self, mut cmd: Command) -> Run {
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let child = cmd.spawn().expect("localci starts");
        let owner = Proc::of(&child);
        self.procs.borrow_mut().push(owner);
        let out = child.wait_with_output().unwrap();
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            owner,
        }
    }

    pub(crate) fn spawn(&self, args: &[&str]) -> (Child, Proc) {
        self.spawn_with(args, &[])
    }

    /// [`Project::spawn`] with more environment variables.
    pub(crate) fn spawn_with(&self, args: &[&str], env: &[(&str, &str)]) -> (Child, Proc) {
        let child = self
            .command(args)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("localci starts");
        let owner = Proc::of(&child);
        self.procs.borrow_mut().push(owner);
        (child, owner)
    }

    /// The records of the runs made here (`.localci/runs/*/run.json`), newest first.
    pub(crate) fn runs(&self) -> Vec<serde_json::Value> {
        let Ok(entries) = std::fs::read_dir(self.path().join(".localci/runs")) else {
            return Vec::new();
        };
        let mut runs: Vec<serde_json::Value> = entries
            .filter_map(Result::ok)
            .filter_map(|e| std::fs::read(e.path().join("run.json")).ok())
            .map(|b| serde_json::from_slice(&b).expect("run.json is JSON"))
            .collect();
        runs.sort_by_key(|r| std::cmp::Reverse((r["started"].as_u64(), r["started_ms"].as_u64())));
        runs
    }

    /// The folders of `job` in every run made here (finished or not).
    pub(crate) fn all_job_dirs(&self, job: &str) -> Vec<PathBuf> {
        let Ok(runs) = std::fs::read_dir(self.path().join(".localci/runs")) else {
            return Vec::new();
        };
        runs.filter_map(Result::ok)
            .map(|r| r.path().join(job))
            .filter(|d| d.is_dir())
            .collect()
    }

    /// The folder of `job` in the newest run (its artifacts and test results).
    pub(crate) fn job_dir(&self, job: &str) -> PathBuf {
        let runs = self.runs();
        let run = runs.first().expect("a run was recorded");
        self.path()
            .join(".localci/runs")
            .join(run["id"].as_str().unwrap())
            .join(job)
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        if std::env::var("LOCALCI_KEEP_TEST_CONTAINERS").is_ok_and(|v| v == "1") {
            return;
        }
        for owner in self.procs.borrow().iter() {
            let ids = containers_of(*owner);
            if !ids.is_empty() {
                let mut args = vec!["rm", "-f"];
                args.extend(ids.iter().map(String::as_str));
                let _ = Command::new("docker").args(&args).output();
            }
        }
    }
}

pub(crate) fn job(name: &str, image: &str, steps: &str) -> String {
    format!("  {name}:\n    docker:\n      - image: {image}\n    steps:\n{steps}")
}

pub(crate) fn config(jobs: &[String]) -> String {
    format!("version: 2\njobs:\n{}", jobs.concat())
}

#[test]
fn exit_codes_for_passing_and_failing_jobs() {
    require_docker!();
    let p = Project::new(&config(&[
        job("good", BUSYBOX, "      - run: echo all good\n"),
        job(
            "bad",
            BUSYBOX,
            "      - run: {name: Break, command: 'echo broken >&2; exit 7'}\n",
        ),
    ]));
    p.execute(&["good"])
        .assert_code(0)
        .assert_stdout("====>> echo all good")
        .assert_stdout("\nall good\n")
        .assert_stdout("Success!")
        .assert_nothing_left();
    p.execute(&["bad"])
        .assert_code(1)
        .assert_stdout("====>> Break")
        .assert_stdout("broken")
        .assert_stdout("Exited with code exit status 7")
        .assert_stdout("Task failed")
        .assert_nothing_left();
}

#[test]
fn invalid_configs_and_usage_exit_2_without_docker() {
    let p = Project::new(&config(&[
        job("build", BUSYBOX, "      - checkout\n"),
        "  mac:\n    machine: {image: ubuntu-2204:current}\n    steps: [checkout]\n".to_string(),
    ]));
    p.execute(&["deploy"])
        .assert_code(2)
        .assert_stderr("no job named `deploy` in the config")
        .assert_stderr("the jobs are: build, mac");
    p.execute(&["mac"])
        .assert_code(2)
        .assert_stderr("is a machine job (image `ubuntu-2204:current`)")
        .assert_stderr("--machine-image");
    p.execute(&["build", "-e", "1BAD=x"])
        .assert_code(2)
        .assert_stderr("\"1BAD\" is not a variable name");
    p.execute(&["build", "-e", "LOCALCI_SURELY_UNSET_VAR"])
        .assert_code(2)
        .assert_stderr("is not set in your environment");
    p.write(
        ".circleci/config.yml",
        "version: 2\njobs:\n  build:\n    docker: [{image: x}]\n    steps:\n      - frobnicate\n",
    );
    // The validator or the config reader reports it; either way with the step's position.
    p.execute(&["build"])
        .assert_code(2)
        .assert_stderr("frobnicate")
        .assert_stderr("config.yml:6:");
}

#[test]
fn an_unreachable_daemon_exits_3() {
    let p = Project::new(&config(&[job("build", BUSYBOX, "      - run: echo hi\n")]));
    p.execute_with(&["build"], &[("DOCKER_HOST", "unix:///nonexistent.sock")])
        .assert_code(3)
        .assert_stderr("cannot reach the Docker daemon at unix:///nonexistent.sock")
        .assert_stderr("DOCKER_HOST");
}

#[test]
fn a_missing_image_exits_3_and_image_map_replaces_it() {
    require_docker!();
    let p = Project::new(&config(&[job(
        "build",
        "localci-test/no-such-image:1",
        "      - run: echo mapped\n",
    )]));
    p.execute(&["build"])
        .assert_code(3)
        .assert_stderr("cannot use image localci-test/no-such-image:1")
        .assert_stderr("--image-map localci-test/no-such-image:1=")
        .assert_nothing_left();
    let map = format!("localci-test/no-such-image:1={BUSYBOX}");
    p.execute(&["build", "--image-map", &map])
        .assert_code(0)
        .assert_stdout(&format!(
            "Using local image {BUSYBOX} (in place of localci-test/no-such-image:1)"
        ))
        .assert_stdout("\nmapped\n");
}

#[test]
fn environment_precedence() {
    require_docker!();
    let steps = r#"      - run:
          name: show
          command: |
            for v in FROM_FILE FROM_E FROM_CALLER BOTH CIRCLE_BRANCH CIRCLE_JOB CI CIRCLECI \
                     CIRCLE_WORKING_DIRECTORY CIRCLE_NODE_INDEX CIRCLE_NODE_TOTAL VERSION \
                     STEP_WINS IMAGE_ENV; do
              eval "echo $v=\${$v-unset}"
            done
            echo 'export FROM_BASH_ENV=carried' >> "$BASH_ENV"
          environment:
            STEP_WINS: step
      - run: echo "FROM_BASH_ENV=$FROM_BASH_ENV SHELL_ENV=$([ "$CIRCLE_SHELL_ENV" = "$BASH_ENV" ] && echo same)"
"#;
    let yaml = format!(
        "version: 2\njobs:\n  build:\n    docker:\n      - image: {DEBIAN}\n        environment: {{IMAGE_ENV: image, STEP_WINS: image}}\n    environment:\n      VERSION: 1.10\n      STEP_WINS: job\n      CIRCLE_BRANCH: from-job\n    steps:\n{steps}"
    );
    let p = Project::new(&yaml);
    // Values of 4 characters or more would be masked (project variables are secrets).
    p.write("vars.env", "FROM_FILE=fil\nBOTH=fil\n");
    let run = p.execute_with(
        &[
            "build",
            "--env-file",
            "vars.env",
            "-e",
            "FROM_E=e",
            "-e",
            "BOTH=e",
            "-e",
            "FROM_CALLER",
            "--node-index",
            "1",
            "--node-total",
            "3",
        ],
        &[("FROM_CALLER", "cal")],
    );
    run.assert_code(0);
    for expected in [
        "FROM_FILE=fil",
        "FROM_E=e",
        "FROM_CALLER=cal",
        "BOTH=e",
        "CIRCLE_BRANCH=from-job",
        "CIRCLE_JOB=build",
        "CI=true",
        "CIRCLECI=true",
        "CIRCLE_WORKING_DIRECTORY=~/project",
        "CIRCLE_NODE_INDEX=1",
        "CIRCLE_NODE_TOTAL=3",
        "VERSION=1.10",
        "STEP_WINS=step",
        "IMAGE_ENV=image",
        "FROM_BASH_ENV=carried SHELL_ENV=same",
    ] {
        assert!(
            run.lines().contains(&expected),
            "missing line {expected:?} in\n{}",
            run.stdout
        );
    }
    // A project variable does not beat a built-in, and --branch changes the built-in.
    let run = p.execute(&["build", "-e", "CIRCLE_JOB=nope", "--branch", "feature/x"]);
    run.assert_code(0)
        .assert_stdout("CIRCLE_JOB=build\n")
        .assert_stdout("CIRCLE_BRANCH=from-job\n");
}

#[test]
fn checkout_sends_tracked_and_untracked_files_but_not_ignored_ones() {
    require_docker!();
    let steps = r#"      - checkout
      - checkout: {path: copy}
      - run: |
          ls -A
          test ! -e build/out.o && echo "ignored file absent"
          test ! -e copy/build/out.o && echo "ignored file absent in path"
          cat src/main.txt untracked.txt copy/src/main.txt
          stat -c 'owner=%U' src/main.txt
          git log --format='log=%s'
          git status --porcelain --untracked-files=all | sed 's/^/status=/'
          readlink link.txt | sed 's/^/link=/'
"#;
    let yaml = format!(
        "version: 2\njobs:\n  build:\n    docker:\n      - image: {DEBIAN}\n        user: circleci\n    steps:\n{steps}"
    );
    let p = Project::new(&yaml);
    p.write(".gitignore", "build/\n")
        .write("src/main.txt", "tracked\n")
        .write("build/old.o", "x");
    std::os::unix::fs::symlink("src/main.txt", p.path().join("link.txt")).unwrap();
    p.commit();
    p.write("untracked.txt", "untracked\n")
        .write("build/out.o", "ignored\n");
    let run = p.execute(&["build"]);
    run.assert_code(0)
        .assert_stdout("ignored file absent\n")
        .assert_stdout("ignored file absent in path\n")
        .assert_stdout("tracked\nuntracked\ntracked\n")
        .assert_stdout("owner=circleci\n")
        .assert_stdout("log=commit\n")
        .assert_stdout("status=?? untracked.txt\n")
        .assert_stdout("link=src/main.txt\n")
        .assert_nothing_left();
    assert!(
        !run.stdout.contains("status= M"),
        "the copy must match the index:\n{}",
        run.stdout
    );
}

// Issue 10 (speed): on a local engine the steps run through localci's runner in the primary
// (no exec per step), the repository comes as a mounted tar that the setup unpacks, and an
// image without `tar` gets the repository uploaded instead, with the same files.
#[test]
fn steps_run_through_the_runner_and_checkout_works_without_tar() {
    require_docker!();
    let image = format!("localci-test/notar:{}", std::process::id());
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("Dockerfile"),
        format!("FROM {DEBIAN}\nRUN rm /usr/bin/tar\n"),
    )
    .unwrap();
    let built = Command::new("docker")
        .args(["build", "-q", "-t", &image])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    // The step's shell is the wrapper's child; the wrapper is the runner's.
    let steps = r#"      - checkout
      - run: |
          wrapper=$(cut -d' ' -f4 /proc/$PPID/stat)
          tr '\0' ' ' < /proc/$wrapper/cmdline | sed 's/^/parent=/'; echo
          cat src/main.txt
          command -v tar >/dev/null || echo "no tar here"
          stat -c 'mode=%a %n' src/run.sh src/main.txt
          readlink src/link | sed 's/^/link=/'
      - run: echo "to the container's log" > /proc/1/fd/1; echo "after $((40+2))"
      - run: circleci tests glob "src/*.txt" | sed 's/^/glob=/'
      - run: cp /bin/true /usr/local/bin/circleci && echo "program $((1+1)) replaced"
      - run: test $(( $(date +%s) - $(stat -c %Y src/main.txt) )) -lt 3600 && echo "checked out $((1+1)) now"
"#;
    // Not root: the program is uploaded to /usr/local/bin, the runner still runs the steps.
    let nonroot = format!(
        "  nonroot:\n    docker:\n      - image: {DEBIAN}\n        user: circleci\n    steps:\n      - checkout\n      - run: circleci tests glob \"src/*.txt\" | sed 's/^/glob=/'; stat -c 'agent=%U' /usr/local/bin/circleci\n"
    );
    let p = Project::new(&config(&[
        job("plain", BUSYBOX, steps),
        job("notar", &image, steps),
        nonroot,
    ]));
    p.write("src/main.txt", "tracked\n")
        .write("src/run.sh", "echo run\n");
    use std::os::unix::fs::PermissionsExt;
    let script = p.path().join("src/run.sh");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(
        p.path().join("src/main.txt"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    std::os::unix::fs::symlink("main.txt", p.path().join("src/link")).unwrap();
    p.commit();
    // A file last changed long ago gets the checkout's time, as with a clone.
    let old = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000_000);
    std::fs::File::options()
        .write(true)
        .open(p.path().join("src/main.txt"))
        .unwrap()
        .set_modified(old)
        .unwrap();
    let plain = p.execute(&["plain"]);
    plain
        .assert_code(0)
        .assert_stdout(".agent __localci-runner \n")
        .assert_stdout("tracked\n")
        .assert_nothing_left();
    let notar = p.execute(&["notar"]);
    let _ = Command::new("docker").args(["rmi", "-f", &image]).output();
    notar
        .assert_code(0)
        .assert_stdout("no tar here\n")
        .assert_stdout(".agent __localci-runner \n")
        .assert_stdout("tracked\n")
        .assert_nothing_left();
    for run in [&plain, &notar] {
        run.assert_stdout("after 42\n")
            .assert_stdout("glob=src/main.txt\n")
            .assert_stdout("program 2 replaced\n")
            .assert_stdout("checked out 2 now\n");
        assert!(
            run.stdout.contains("parent=/tmp/.localci-"),
            "{}",
            run.stdout
        );
        run.assert_stdout("mode=755 src/run.sh\nmode=644 src/main.txt\nlink=main.txt\n");
        let copied = |out: &str| {
            out.lines()
                .find(|l| l.starts_with("Copied "))
                .map(str::to_string)
        };
        assert!(copied(&run.stdout).is_some(), "{}", run.stdout);
    }
    p.execute(&["nonroot"])
        .assert_code(0)
        .assert_stdout("glob=src/main.txt\n")
        .assert_stdout("agent=root\n")
        .assert_nothing_left();
    let line = |out: &str| {
        out.lines()
            .find(|l| l.starts_with("Copied "))
            .unwrap()
            .to_string()
    };
    assert_eq!(line(&plain.stdout), line(&notar.stdout));
}

#[test]
fn checkout_refuses_a_non_empty_folder_that_is_not_a_repository() {
    require_docker!();
    let p = Project::new(&config(&[job(
        "build",
        BUSYBOX,
        "      - run: mkdir -p ~/project && touch ~/project/file\n      - checkout\n",
    )]));
    p.execute(&["build"])
        .assert_code(1)
        .assert_stdout("is not empty and not a git repository")
        .assert_nothing_left();
}

#[test]
fn when_background_and_reruns() {
    require_docker!();
    let steps = r#"      - run:
          name: server
          background: true
          command: echo serving; sleep 0.3; echo giving up; exit 9
      - run: sleep 1
      - run:
          name: flaky
          command: n=$(cat /tmp/count 2>/dev/null || echo 0); n=$((n+1)); echo $n > /tmp/count; echo "try $n"; [ $n -ge 3 ]
          max_auto_reruns: 3
          auto_rerun_delay: 1s
      - run: {name: fails, command: exit 4}
      - run: {name: skipped-after-failure, command: echo should-not-run}
      - run: {name: cleanup, command: echo on-fail-ran, when: on_fail}
      - run: {name: always, command: echo always-ran, when: always}
"#;
    let p = Project::new(&config(&[job("build", BUSYBOX, steps)]));
    let run = p.execute(&["build"]);
    run.assert_code(1)
        .assert_stdout("[server] serving")
        .assert_stdout("[server] giving up")
        .assert_stdout("background step \"server\" failed")
        .assert_stdout("try 1\n")
        .assert_stdout("Rerunning the step (attempt 2 of 4) after 1s")
        .assert_stdout("try 3\n")
        .assert_stdout("====>> skipped-after-failure (skipped: an earlier step failed)")
        .assert_stdout("on-fail-ran\n")
        .assert_stdout("always-ran\n")
        .assert_stdout("step \"fails\" exited with code 4")
        .assert_nothing_left();
    assert!(!run.stdout.contains("should-not-run\n"));
    assert!(!run.stdout.contains("try 4"));
}

#[test]
fn no_output_timeout_stops_a_silent_step() {
    require_docker!();
    // The second step closes its output and goes on running: silence all the same.
    let steps = "      - run: {name: silent, command: 'echo start; sleep 30', no_output_timeout: 1s}\n      - run: {name: closed, command: 'exec >/dev/null 2>&1; sleep 31', no_output_timeout: 1s, when: always}\n      - run: {command: 'ps | grep -c \"[s]leep 3[01]\" || true', when: on_fail}\n";
    let p = Project::new(&config(&[job("build", BUSYBOX, steps)]));
    let started = Instant::now();
    let run = p.execute(&["build"]);
    run.assert_code(1)
        .assert_stdout("start\n")
        .assert_stdout("Too long with no output (exceeded 1s): context deadline exceeded")
        .assert_stdout("---> \"closed\" failed in 1")
        .assert_nothing_left();
    assert!(
        run.stdout.contains("\n0\n"),
        "the silent step's processes were killed:\n{}",
        run.stdout
    );
    assert!(started.elapsed() < Duration::from_secs(20));
}

#[test]
fn a_service_answers_on_localhost_and_on_its_name() {
    require_docker!();
    let yaml = format!(
        r#"version: 2
jobs:
  build:
    docker:
      - image: {BUSYBOX}
      - image: {BUSYBOX}
        name: pingsvc
        command: ["sh", "-c", "while true; do echo pong | nc -l -p 7777; done"]
    steps:
      - run: |
          for host in localhost pingsvc; do
            out=""
            i=0
            while [ $i -lt 100 ] && [ -z "$out" ]; do
              out=$(nc $host 7777 </dev/null 2>/dev/null || true)
              i=$((i+1)); [ -n "$out" ] || sleep 0.1
            done
            echo "$host says $out"
          done
"#
    );
    let p = Project::new(&yaml);
    p.execute(&["build"])
        .assert_code(0)
        .assert_stdout("localhost says pong\n")
        .assert_stdout("pingsvc says pong\n")
        .assert_nothing_left();
}

#[test]
fn preserve_entrypoint_label_runs_the_image_entrypoint() {
    require_docker!();
    let p = Project::new(&config(&[
        job(
            "preserved",
            PRESERVE,
            "      - run: cat /tmp/localci-entrypoint-ran\n",
        ),
        job(
            "replaced",
            BUSYBOX,
            "      - run: tr '\\0' ' ' < /proc/1/cmdline; echo\n",
        ),
    ]));
    p.execute(&["preserved"])
        .assert_code(0)
        .assert_stdout("entrypoint ran:")
        .assert_nothing_left();
    // A preserved entrypoint that ends ends the job, as on CircleCI.
    let stops = format!(
        "version: 2\njobs:\n  stops:\n    docker:\n      - image: {PRESERVE}\n        command: [\"true\"]\n    steps:\n      - run: echo never\n"
    );
    p.write(".circleci/config.yml", &stops);
    p.execute(&["stops"])
        .assert_code(1)
        .assert_stdout("the primary container stopped")
        .assert_nothing_left();
    p.write(
        ".circleci/config.yml",
        &config(&[job(
            "replaced",
            BUSYBOX,
            "      - run: tr '\\0' ' ' < /proc/1/cmdline; echo\n",
        )]),
    );
    // Without the label, the image's entrypoint gives way to localci's keep-alive loop.
    p.execute(&["replaced"])
        .assert_code(0)
        .assert_stdout("while read -r _; do :; done")
        .assert_nothing_left();
}

#[test]
fn keep_leaves_the_containers_and_says_how_to_enter() {
    require_docker!();
    let p = Project::new(&config(&[job(
        "build",
        BUSYBOX,
        "      - run: echo kept\n",
    )]));
    let run = p.execute(&["build", "--keep"]);
    run.assert_code(0)
        .assert_stdout("docker exec -it -w /root/project ");
    let kept = containers_of(run.owner);
    assert_eq!(kept.len(), 1, "the primary container is kept");
    let running = docker_lines(&["inspect", "--format", "{{.State.Running}}", &kept[0]]);
    assert_eq!(running, vec!["true"]);
    // A later run does not treat kept containers as leftovers.
    p.execute(&["build"]).assert_code(0);
    assert_eq!(containers_of(run.owner), kept);
}

/// The labels localci writes to place a resource's creator: this machine, this boot, this pid
/// namespace, and the process's pid and start time.
fn owner_labels(pid: u32, started: u64) -> Vec<String> {
    let read = |path: &str| std::fs::read_to_string(path).unwrap().trim().to_string();
    let pidns = std::fs::read_link("/proc/self/ns/pid").unwrap();
    let pidns = pidns.to_string_lossy();
    let pidns = pidns.trim_start_matches("pid:[").trim_end_matches(']');
    vec![
        "localci=1".to_string(),
        format!("localci.pid={pid}"),
        format!("localci.started={started}"),
        format!("localci.host={}", read("/proc/sys/kernel/hostname")),
        format!("localci.boot={}", read("/proc/sys/kernel/random/boot_id")),
        format!("localci.pidns={pidns}"),
    ]
}

/// Creates a container (never started) with these labels, as a run's leftover; `guard`
/// removes it at the end of the test.
fn leftover(labels: &[String], guard: &mut RemoveOnDrop) -> String {
    let mut args = vec!["create".to_string()];
    for label in labels {
        args.extend(["--label".to_string(), label.clone()]);
    }
    args.extend([BUSYBOX.to_string(), "true".to_string()]);
    let created = docker_lines(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(created.len(), 1, "docker create {args:?}");
    guard.0.push(created[0].clone());
    created[0].clone()
}

fn exists(container: &str) -> bool {
    !docker_lines(&["ps", "-aq", "--filter", &format!("id={container}")]).is_empty()
}

#[test]
fn leftovers_of_dead_runs_are_removed_at_start() {
    require_docker!();
    let mut dead = Command::new("true").spawn().unwrap();
    let dead_proc = Proc::of(&dead);
    dead.wait().unwrap();
    let mut guard = RemoveOnDrop(Vec::new());
    let labels = owner_labels(dead_proc.pid, dead_proc.started.unwrap());
    let stale = leftover(&labels, &mut guard);
    let p = Project::new(&config(&[job("build", BUSYBOX, "      - run: echo hi\n")]));
    // Any localci run on this host removes it (another test's run may come first), so the
    // message is not asserted; that it is gone after this run is.
    p.execute(&["build"]).assert_code(0);
    assert!(!exists(&stale));
}

// See: review finding 2 (running containers of a live localci were removed by another run).
#[test]
fn leftovers_of_live_runs_are_kept_and_reused_pids_are_not_mistaken_for_them() {
    require_docker!();
    let mut sleeper = Command::new("sleep").arg("60").spawn().unwrap();
    let live = Proc::of(&sleeper);
    let started = live.started.unwrap();
    let mut guard = RemoveOnDrop(Vec::new());
    let alive = leftover(&owner_labels(live.pid, started), &mut guard);
    // Made by an earlier process with the same pid: it started at another time.
    let reused = leftover(
        &owner_labels(live.pid, started.saturating_sub(1)),
        &mut guard,
    );
    // Made in another pid namespace: its pid says nothing here.
    let elsewhere: Vec<String> = owner_labels(live.pid, started.saturating_sub(1))
        .into_iter()
        .map(|l| {
            if l.starts_with("localci.pidns=") {
                "localci.pidns=1".to_string()
            } else {
                l
            }
        })
        .collect();
    let elsewhere = leftover(&elsewhere, &mut guard);
    let p = Project::new(&config(&[job("build", BUSYBOX, "      - run: echo hi\n")]));
    p.execute(&["build"]).assert_code(0);
    sleeper.kill().unwrap();
    sleeper.wait().unwrap();
    assert!(
        exists(&alive),
        "the container of a live process was removed"
    );
    assert!(
        exists(&elsewhere),
        "a container of another pid namespace was removed"
    );
    assert!(!exists(&reused), "a reused pid was taken for the creator");
}

#[test]
fn a_running_job_survives_another_run_starting() {
    require_docker!();
    let p = Project::new(&config(&[
        job(
            "long",
            BUSYBOX,
            "      - run: echo started; sleep 3; echo finished\n",
        ),
        job("quick", BUSYBOX, "      - run: echo hi\n"),
    ]));
    let (mut child, owner) = p.spawn(&["long"]);
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert!(
        lines.by_ref().any(|l| l.unwrap() == "started"),
        "the long step never started"
    );
    let quick = p.execute(&["quick"]);
    quick.assert_code(0);
    assert_eq!(containers_of(owner).len(), 1);
    quick.assert_nothing_left();
    let rest: Vec<String> = lines.map(|l| l.unwrap()).collect();
    assert_eq!(child.wait().unwrap().code(), Some(0), "{rest:?}");
    assert!(rest.iter().any(|l| l == "finished"), "{rest:?}");
    assert!(containers_left(owner).is_empty());
}

// See: review finding 1 (Ctrl-C 50-70 ms after the start left a `Created` container: a create
// request was dropped half-way and cleanup looked before the daemon had made it).
#[test]
fn an_early_ctrl_c_leaves_no_container() {
    require_docker!();
    use std::os::unix::process::ExitStatusExt as _;
    let yaml = format!(
        "version: 2\njobs:\n  build:\n    docker:\n      - image: {BUSYBOX}\n      - image: {BUSYBOX}\n        command: [sleep, '300']\n    steps:\n      - run: sleep 5\n"
    );
    let p = Project::new(&yaml);
    for delay in (20..=150).step_by(10).chain([200, 300]) {
        let (child, owner) = p.spawn(&["build"]);
        std::thread::sleep(Duration::from_millis(delay));
        // SAFETY: sending SIGINT to our own child process.
        assert_eq!(
            unsafe { libc::kill(owner.pid as libc::pid_t, libc::SIGINT) },
            0
        );
        let out = child.wait_with_output().unwrap();
        let status = out.status;
        // 130: interrupted; 0: it had finished; killed by SIGINT: it had not yet installed
        // its handler, so it had not reached Docker either.
        assert!(
            matches!(status.code(), Some(130 | 0)) || status.signal() == Some(libc::SIGINT),
            "SIGINT after {delay} ms: {status:?}\n--- stdout\n{}\n--- stderr\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        // A create request the daemon was still working on would have landed by now.
        std::thread::sleep(Duration::from_millis(500));
        assert_eq!(
            containers_of(owner),
            Vec::<String>::new(),
            "SIGINT after {delay} ms left containers behind"
        );
    }
}

#[test]
fn ctrl_c_during_a_step_removes_everything_and_exits_130() {
    require_docker!();
    let yaml = format!(
        "version: 2\njobs:\n  build:\n    docker:\n      - image: {BUSYBOX}\n      - image: {BUSYBOX}\n        command: [sleep, '300']\n    steps:\n      - run: {{name: long, command: 'echo started; sleep 300'}}\n      - run: {{name: always, command: echo never, when: always}}\n"
    );
    let p = Project::new(&yaml);
    let (mut child, owner) = p.spawn(&["build"]);
    let pid = owner.pid;
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let mut seen = String::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        seen.push_str(&line);
        seen.push('\n');
        if line == "started" {
            break;
        }
    }
    assert!(seen.contains("started"), "the step never started:\n{seen}");
    assert_eq!(containers_of(owner).len(), 2);
    // SAFETY: sending SIGINT to our own child process.
    assert_eq!(unsafe { libc::kill(pid as libc::pid_t, libc::SIGINT) }, 0);
    let rest: Vec<String> = lines.map(|l| l.unwrap()).collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "localci did not stop after Ctrl-C"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(130));
    assert!(
        !rest.iter().any(|l| l == "never"),
        "always steps do not run after Ctrl-C"
    );
    assert_eq!(containers_of(owner), Vec::<String>::new());
}

fn cache_job(name: &str, restore: &[&str], save_key: Option<&str>) -> String {
    let mut steps = String::new();
    if !restore.is_empty() {
        steps.push_str("      - restore_cache:\n          keys:\n");
        for key in restore {
            steps.push_str(&format!("            - {key}\n"));
        }
    }
    steps.push_str("      - run: 'cat ~/.cache/demo/value 2>/dev/null || echo none; mkdir -p ~/.cache/demo; echo \"$VALUE\" > ~/.cache/demo/value'\n");
    if let Some(key) = save_key {
        steps.push_str(&format!(
            "      - save_cache:\n          key: {key}\n          paths: [~/.cache/demo]\n"
        ));
    }
    format!(
        "  {name}:\n    docker:\n      - image: {DEBIAN}\n        user: circleci\n    steps:\n      - checkout\n{steps}"
    )
}

#[test]
fn caches_miss_then_hit_and_keys_are_immutable() {
    require_docker!();
    let key = "'v1-{{ checksum \"lock.txt\" }}'";
    let p = Project::new(&config(&[cache_job("build", &[key], Some(key))]));
    p.write("lock.txt", "deps 1\n");
    p.commit();
    let first = p.execute(&["build", "-e", "VALUE=first"]);
    first
        .assert_code(0)
        .assert_stdout("No cache is found for key: v1-")
        .assert_stdout("\nnone\n")
        .assert_stdout("Stored cache v1-")
        .assert_nothing_left();
    let second = p.execute(&["build", "-e", "VALUE=second"]);
    second
        .assert_code(0)
        .assert_stdout("Found a cache created")
        .assert_stdout("\nfirst\n")
        .assert_stdout("Skipping cache generation, cache already exists for key: v1-");
    let third = p.execute(&["build", "-e", "VALUE=third"]);
    third.assert_code(0).assert_stdout("\nfirst\n");
    // A changed checksum file is a new key: a miss.
    p.write("lock.txt", "deps 2\n");
    p.execute(&["build", "-e", "VALUE=x"])
        .assert_code(0)
        .assert_stdout("\nnone\n");
}

#[test]
fn restore_tries_keys_in_order_as_prefixes_and_takes_the_newest() {
    require_docker!();
    let save = "'v1-{{ .Environment.KEY }}'";
    let p = Project::new(&config(&[
        cache_job("save", &[], Some(save)),
        cache_job(
            "restore",
            &[
                "'v1-{{ .Environment.FIRST }}'",
                "'v1-{{ .Environment.SECOND }}'",
            ],
            None,
        ),
    ]));
    // Short values: project variables of 4 characters or more are secrets, masked in output
    // and hidden behind a digest in keys (which then match only whole).
    for (key, value) in [("ao", "ao"), ("an", "an"), ("bn", "bn")] {
        p.execute(&[
            "save",
            "-e",
            &format!("KEY={key}"),
            "-e",
            &format!("VALUE={value}"),
        ])
        .assert_code(0);
        std::thread::sleep(Duration::from_millis(1100));
    }
    let run = |first: &str, second: &str| {
        p.execute(&[
            "restore",
            "-e",
            &format!("FIRST={first}"),
            "-e",
            &format!("SECOND={second}"),
            "-e",
            "VALUE=x",
        ])
    };
    run("a", "bn").assert_code(0).assert_stdout("\nan\n");
    run("bn", "a").assert_code(0).assert_stdout("\nbn\n");
    run("c", "ao")
        .assert_code(0)
        .assert_stdout("No cache is found for key: v1-c\n")
        .assert_stdout("\nao\n");
    run("c", "d")
        .assert_code(0)
        .assert_stdout("Warning: No cache was restored")
        .assert_stdout("\nnone\n");
}

#[test]
fn artifacts_and_test_results_are_copied_out_and_summarised() {
    require_docker!();
    let steps = r#"      - run: |
          mkdir -p results/unit out/sub
          echo '<testsuite><testcase classname="calc" name="adds"/><testcase classname="calc" name="divides"><failure message="boom"/></testcase><testcase classname="calc" name="later"><skipped/></testcase></testsuite>' > results/unit/junit.xml
          echo report > out/sub/report.txt
          exit 1
      - store_test_results: {path: results}
      - store_artifacts: {path: out, destination: reports}
      - store_artifacts: {path: /nonexistent}
"#;
    let p = Project::new(&config(&[job("build", BUSYBOX, steps)]));
    p.execute(&["build"])
        .assert_code(1)
        .assert_stdout("Test results: 1 passed, 1 failed, 0 errors, 1 skipped (1 file(s))")
        .assert_stdout("failed: calc::divides")
        .assert_stdout("/nonexistent does not exist; nothing was stored")
        .assert_nothing_left();
    let artifacts = p.job_dir("build");
    assert_eq!(
        std::fs::read_to_string(artifacts.join("reports/sub/report.txt")).unwrap(),
        "report\n"
    );
    assert!(artifacts.join("results/unit/junit.xml").is_file());
}

#[test]
fn steps_without_a_local_counterpart_say_what_they_do() {
    require_docker!();
    let steps = r#"      - setup_remote_docker
      - add_ssh_keys: {fingerprints: ["SHA256:abc"]}
      - run: echo "host=${DOCKER_HOST:-none}"; test -S /var/run/docker.sock && echo has-socket || echo no-socket
"#;
    let p = Project::new(&config(&[job("build", BUSYBOX, steps)]));
    p.execute(&["build"])
        .assert_code(0)
        .assert_stdout(
            "Warning: setup_remote_docker: localci does not create a remote Docker engine",
        )
        .assert_stdout("Warning: add_ssh_keys:")
        .assert_stdout("SHA256:abc")
        .assert_stdout("host=none\nno-socket\n")
        .assert_nothing_left();
    p.execute(&["build", "--docker-socket"])
        .assert_code(0)
        .assert_stdout("Using the host's Docker engine")
        .assert_stdout("host=unix:///var/run/docker.sock\nhas-socket\n")
        .assert_nothing_left();
}

#[test]
fn version_2_1_configs_are_compiled_then_run() {
    require_docker!();
    let p = Project::new(&format!(
        r#"version: 2.1
parameters:
  greeting: {{type: string, default: hello}}
executors:
  bb:
    docker: [{{image: {BUSYBOX}}}]
    environment: {{FROM_EXECUTOR: "1.10"}}
commands:
  greet:
    parameters:
      who: {{type: string}}
    steps:
      - run: echo "<< pipeline.parameters.greeting >> << parameters.who >> $FROM_EXECUTOR"
jobs:
  hello:
    executor: bb
    parameters:
      who: {{type: string, default: world}}
    steps:
      - greet: {{who: << parameters.who >>}}
      - run: echo "job=$CIRCLE_JOB"
  lonely:
    executor: bb
    steps:
      - run: echo not in any workflow
workflows:
  main:
    jobs:
      - hello: {{name: hello-you, who: you}}
"#
    ));
    p.execute(&["hello-you", "--pipeline-param", "greeting=hi"])
        .assert_code(0)
        .assert_stdout("\nhi you 1.10\n")
        .assert_stdout("\njob=hello-you\n")
        .assert_nothing_left();
    // A job that no workflow invokes still runs, with its defaults.
    p.execute(&["hello"])
        .assert_code(0)
        .assert_stdout("\nhello world 1.10\n");
    p.execute(&["lonely"]).assert_code(0);
    p.execute(&["hello-you", "--pipeline-param", "nope=1"])
        .assert_code(2)
        .assert_stderr("nope");
}

#[test]
fn the_repository_is_the_one_holding_the_config_not_the_working_directory() {
    require_docker!();
    let p = Project::new(&config(&[job(
        "show",
        BUSYBOX,
        "      - checkout\n      - run: cat marker.txt\n",
    )]));
    p.write("marker.txt", "from the config's repository\n");
    p.commit();
    let elsewhere = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_localci"))
        .current_dir(elsewhere.path())
        .arg("execute")
        .arg("show")
        .arg("-c")
        .arg(p.path().join(".circleci/config.yml"))
        .arg("--cache-dir")
        .arg(p.cache.path())
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("\nfrom the config's repository\n"),
        "{stdout}"
    );
}
