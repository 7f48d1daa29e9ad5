//! `execute --shell-on-fail` on a real pseudo-terminal against the real daemon: localci runs
//! as the session leader of a new pty (`setsid --ctty`, util-linux) as in a terminal window;
//! the test types into the pty's master side and reads what the terminal shows. It matches
//! each answer by text the typed command line does not contain (`cwd=/...` for
//! `echo "cwd=$(pwd)"`), never by the echo of what was typed.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustix::pty::{OpenptFlags, grantpt, openpt, ptsname, unlockpt};
use rustix::termios::{LocalModes, Winsize, tcgetattr, tcsetwinsize};

use crate::execute::{
    BUSYBOX, DEBIAN, Proc, Project, containers_left, containers_of, docker_ready,
};

/// How long an answer may take (a job's start-up included).
const WAIT: Duration = Duration::from_secs(60);

/// A job whose second step fails in `sub`, after the first put a variable in `$BASH_ENV`.
fn failing_job(image: &str) -> String {
    format!(
        r#"version: 2
jobs:
  failing:
    docker:
      - image: {image}
    environment:
      MY_VAR: from-the-job
    steps:
      - run: echo 'export FROM_BASH_ENV=loaded' >> "$BASH_ENV"
      - run:
          name: Tests
          command: echo "tests fail now"; exit 3
          working_directory: sub
          environment:
            STEP_VAR: from-the-step
      - run:
          name: Never
          command: echo never runs
"#
    )
}

/// localci on a pty of its own, with what the terminal received so far.
struct OnPty {
    master: File,
    screen: Arc<Mutex<Vec<u8>>>,
    child: Child,
    owner: Proc,
}

impl OnPty {
    fn start(project: &Project, args: &[&str]) -> OnPty {
        let master: OwnedFd = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY).unwrap();
        grantpt(&master).unwrap();
        unlockpt(&master).unwrap();
        resize(&master, 30, 100);
        let name = ptsname(&master, Vec::new()).unwrap();
        let slave = File::options()
            .read(true)
            .write(true)
            .open(name.to_str().unwrap())
            .unwrap();
        // The command the project would run, under `setsid --ctty` so that the pty is its
        // controlling terminal (SIGWINCH, raw mode as in a terminal window).
        let inner = project.command(args);
        let mut cmd = Command::new("setsid");
        cmd.arg("--ctty")
            .arg("--wait")
            .arg(inner.get_program())
            .args(inner.get_args())
            .current_dir(project.path())
            .env("TERM", "xterm")
            .stdin(slave.try_clone().unwrap())
            .stdout(slave.try_clone().unwrap())
            .stderr(slave);
        for (key, value) in inner.get_envs() {
            match value {
                Some(value) => cmd.env(key, value),
                None => cmd.env_remove(key),
            };
        }
        let child = cmd
            .spawn()
            .expect("`setsid` (Debian package util-linux) starts localci on the pty");
        let owner = Proc::of(&child);
        drop(cmd);
        let master = File::from(master);
        let screen = Arc::new(Mutex::new(Vec::new()));
        let mut reader = master.try_clone().unwrap();
        let seen = screen.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            // Ends with EIO once no process has the pty open any more.
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                seen.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        OnPty {
            master,
            screen,
            child,
            owner,
        }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.screen.lock().unwrap()).into_owned()
    }

    /// Waits until the terminal shows `text` after byte `from`; returns where it ends.
    #[track_caller]
    fn shows_after(&self, from: usize, text: &str) -> usize {
        let deadline = Instant::now() + WAIT;
        loop {
            let screen = self.text();
            if let Some(at) = screen.get(from..).and_then(|s| s.find(text)) {
                return from + at + text.len();
            }
            assert!(
                Instant::now() < deadline,
                "the terminal never showed {text:?}; it shows:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    #[track_caller]
    fn shows(&self, text: &str) -> usize {
        self.shows_after(0, text)
    }

    fn types(&mut self, keys: &str) {
        self.master.write_all(keys.as_bytes()).unwrap();
        self.master.flush().unwrap();
    }

    /// Types a command line and waits for `answer` after what the terminal showed so far.
    #[track_caller]
    fn ask(&mut self, line: &str, answer: &str) -> usize {
        let from = self.screen.lock().unwrap().len();
        self.types(&format!("{line}\r"));
        self.shows_after(from, answer)
    }

    /// Waits for localci to exit (at most [`WAIT`]); its exit code.
    fn exit_code(&mut self) -> i32 {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code().unwrap_or(-1);
            }
            assert!(
                Instant::now() < deadline,
                "localci did not exit; the terminal shows:\n{}",
                self.text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for OnPty {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let left = containers_of(self.owner);
        if !left.is_empty() {
            let _ = Command::new("docker")
                .args(["rm", "-f"])
                .args(&left)
                .output();
        }
    }
}

/// Whether the terminal is in its normal (cooked) mode: line editing, echo, Ctrl-C as a
/// signal. (Linux keeps one set of settings for both sides of a pty.)
fn cooked(master: &impl rustix::fd::AsFd) -> bool {
    let modes = tcgetattr(master).unwrap().local_modes;
    modes.contains(LocalModes::ICANON | LocalModes::ECHO | LocalModes::ISIG)
}

fn resize(master: &impl rustix::fd::AsFd, rows: u16, cols: u16) {
    tcsetwinsize(
        master,
        Winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        },
    )
    .unwrap();
}

const BANNER: &str = "Step \"Tests\" failed; opening a shell in the primary container (exit the shell to end the job)";

/// The part both images share: banner, directory, variables of the job and the step,
/// Ctrl-C to the shell, `exit`, then exit code 1 and nothing left.
fn debug_a_failure(image: &str, shell: &str) -> (Project, OnPty) {
    let project = Project::new(&failing_job(image));
    let mut pty = OnPty::start(&project, &["failing", "--shell-on-fail"]);
    let banner = pty.shows(BANNER);
    assert!(
        pty.text()[..banner].contains("tests fail now"),
        "the step's output comes before the shell"
    );
    let said = pty.shows(&format!("--shell-on-fail: {shell} in /root/project/sub, "));
    assert!(said < banner, "the shell's details come before the banner");
    pty.ask(r#"echo "cwd=$(pwd)""#, "cwd=/root/project/sub\r\n");
    // localci's own terminal is raw while the shell runs.
    let modes = tcgetattr(&pty.master).unwrap().local_modes;
    assert!(!modes.intersects(LocalModes::ICANON | LocalModes::ECHO | LocalModes::ISIG));
    pty.ask(r#"echo "job=$MY_VAR""#, "job=from-the-job\r\n");
    pty.ask(r#"echo "step=$STEP_VAR""#, "step=from-the-step\r\n");
    pty.ask(r#"echo "circle=$CIRCLE_JOB""#, "circle=failing\r\n");
    // Ctrl-C goes to the shell (raw mode): it stops `sleep`, localci goes on.
    pty.types("sleep 30\r");
    std::thread::sleep(Duration::from_millis(500));
    let before = Instant::now();
    pty.types("\x03");
    pty.ask(r#"echo "alive=$((40+2))""#, "alive=42\r\n");
    assert!(
        before.elapsed() < Duration::from_secs(20),
        "Ctrl-C reached sleep"
    );
    (project, pty)
}

/// After `exit`: the job ends as failed, the later step is skipped, nothing is left.
fn exit_and_check(mut pty: OnPty) {
    let from = pty.screen.lock().unwrap().len();
    pty.types("exit\r");
    pty.shows_after(from, "Shell closed (exit code 0); the job ends as failed");
    assert_eq!(pty.exit_code(), 1, "{}", pty.text());
    assert!(cooked(&pty.master), "the terminal is restored");
    let screen = pty.text();
    assert!(screen.contains("Task failed"), "{screen}");
    assert!(!screen.contains("\r\nnever runs"), "{screen}");
    assert_eq!(
        containers_left(pty.owner),
        Vec::<String>::new(),
        "containers left"
    );
}

#[test]
fn a_shell_opens_in_busybox_after_the_failed_step() {
    if !docker_ready() {
        return;
    }
    let (_project, pty) = debug_a_failure(BUSYBOX, "/bin/sh");
    exit_and_check(pty);
}

#[test]
fn a_bash_shell_in_debian_has_bash_env_and_follows_the_terminal_size() {
    if !docker_ready() {
        return;
    }
    let (_project, mut pty) = debug_a_failure(DEBIAN, "/bin/bash");
    pty.ask(r#"echo "bash_env=$FROM_BASH_ENV""#, "bash_env=loaded\r\n");
    pty.ask(r#"echo "size=$(stty size)""#, "size=30 100\r\n");
    resize(&pty.master, 41, 132);
    std::thread::sleep(Duration::from_millis(300));
    pty.ask(r#"echo "size=$(stty size)""#, "size=41 132\r\n");
    // The user's normal prompt (Debian's ~/.bashrc), not bash's bare `bash-5.2#`.
    let screen = pty.text();
    assert!(!screen.contains("bash-5"), "{screen}");
    exit_and_check(pty);
}

#[test]
fn with_keep_the_containers_stay_after_the_shell() {
    if !docker_ready() {
        return;
    }
    let project = Project::new(&failing_job(BUSYBOX));
    let mut pty = OnPty::start(&project, &["failing", "--shell-on-fail", "--keep"]);
    pty.shows(BANNER);
    pty.ask(
        r#"touch /tmp/made-in-the-shell; echo "made=$?""#,
        "made=0\r\n",
    );
    pty.types("exit\r");
    pty.shows("Kept the containers (--keep)");
    assert_eq!(pty.exit_code(), 1, "{}", pty.text());
    let kept = containers_of(pty.owner);
    assert_eq!(kept.len(), 1, "{}", pty.text());
    let out = Command::new("docker")
        .args(["exec", &kept[0], "ls", "/tmp/made-in-the-shell"])
        .output()
        .unwrap();
    assert!(out.status.success(), "the kept container is the shell's");
    // OnPty's drop removes them.
}

#[test]
fn sigterm_during_the_shell_restores_the_terminal_and_removes_everything() {
    if !docker_ready() {
        return;
    }
    let project = Project::new(&failing_job(BUSYBOX));
    let mut pty = OnPty::start(&project, &["failing", "--shell-on-fail"]);
    pty.shows(BANNER);
    pty.ask(r#"echo "cwd=$(pwd)""#, "cwd=/root/project/sub\r\n");
    assert!(!cooked(&pty.master));
    let pid = pty.owner.pid() as libc::pid_t;
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    assert_eq!(pty.exit_code(), 143, "{}", pty.text());
    assert!(cooked(&pty.master), "the terminal is restored");
    pty.shows("Shell closed; the job ends as failed");
    assert_eq!(
        containers_left(pty.owner),
        Vec::<String>::new(),
        "containers left"
    );
}

#[test]
fn in_a_workflow_the_other_jobs_lines_wait_until_the_shell_ends() {
    if !docker_ready() {
        return;
    }
    let config = format!(
        "version: 2.1\njobs:\n  failing:\n    docker: [{{image: {BUSYBOX}}}]\n    steps:\n      - run: {{name: Tests, command: 'sleep 1; exit 3'}}\n  other:\n    docker: [{{image: {BUSYBOX}}}]\n    steps:\n      - run: sleep 3; echo \"other=$((6*7))\"\nworkflows:\n  ci:\n    jobs: [failing, other]\n"
    );
    let project = Project::new(&config);
    let mut pty = OnPty::start(
        &project,
        &["--workflow", "ci", "-j", "2", "--shell-on-fail"],
    );
    let banner = pty.shows(BANNER);
    pty.ask(r#"echo "in=$(pwd)""#, "in=/root/project\r\n");
    // `other` prints its line about 2 s after the shell opened: it waits.
    std::thread::sleep(Duration::from_secs(5));
    pty.ask(r#"echo "still=$((1+1))""#, "still=2\r\n");
    assert!(!pty.text().contains("other=42"), "{}", pty.text());
    let from = pty.screen.lock().unwrap().len();
    pty.types("exit\r");
    let closed = pty.shows_after(from, "Shell closed (exit code 0); the job ends as failed");
    // The closing banner first, then what waited.
    let shown = pty.shows_after(closed, "other=42\r\n");
    assert!(shown > banner);
    assert_eq!(pty.exit_code(), 1, "{}", pty.text());
    assert!(cooked(&pty.master));
    assert_eq!(
        containers_left(pty.owner),
        Vec::<String>::new(),
        "containers left"
    );
}

#[test]
fn shell_on_fail_without_a_terminal_is_a_usage_error() {
    let project = Project::new(&failing_job(BUSYBOX));
    let mut cmd = project.command(&["failing", "--shell-on-fail"]);
    cmd.stdin(Stdio::null());
    let run = project.run_command(cmd);
    run.assert_code(2)
        .assert_stderr("--shell-on-fail needs a terminal, and standard input is not one");
    assert!(run.stdout.is_empty(), "nothing started: {}", run.stdout);
    run.assert_nothing_left();
}

#[test]
fn shell_on_fail_and_json_exclude_each_other() {
    let project = Project::new(&failing_job(BUSYBOX));
    let mut cmd = project.command(&["failing", "--shell-on-fail", "--json"]);
    cmd.stdin(Stdio::null());
    project
        .run_command(cmd)
        .assert_code(2)
        .assert_stderr("cannot be used with");
}
