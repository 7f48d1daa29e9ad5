//! `localci execute <job> --watch` against the real daemon: the first run, reruns on a change
//! in the same containers with only the changed files sent, a touched file that sends nothing,
//! a failing rerun that does not end the watch, and Ctrl-C that ends it with the last run's
//! exit code and leaves nothing behind.

use std::io::{BufRead, BufReader};
use std::process::Child;
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant, SystemTime};

use super::execute::{
    BUSYBOX, Proc, Project, containers_left, containers_of, docker_lines, docker_ready,
};

macro_rules! require_docker {
    () => {
        if !docker_ready() {
            return;
        }
    };
}

/// The lines a child prints on stdout, read on a thread, so a test can wait for one.
struct Lines {
    rx: Receiver<String>,
    seen: Vec<String>,
}

impl Lines {
    fn of(child: &mut Child) -> Lines {
        let stdout = child.stdout.take().expect("stdout is piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Lines {
            rx,
            seen: Vec::new(),
        }
    }

    /// Reads until a line for which `wanted` holds; returns the lines read, that one last.
    #[track_caller]
    fn until(&mut self, what: &str, wanted: impl Fn(&str) -> bool) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(90);
        let mut read = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    read.push(line.clone());
                    if wanted(&line) {
                        return read;
                    }
                }
                Err(_) => panic!(
                    "no line {what} came; the output so far:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }
}

/// The step prints each line of message.txt as `message: <line>` and fails when it says
/// `fail`; the command's own text never equals such a line.
fn watched_project() -> Project {
    let yaml = format!(
        "version: 2\njobs:\n  build:\n    docker:\n      - image: {BUSYBOX}\n      - image: {BUSYBOX}\n        command: [sleep, '600']\n    steps:\n      - checkout\n      - run:\n          name: show\n          command: |\n            sed 's/^/message: /' message.txt\n            ! grep -q fail message.txt\n"
    );
    let p = Project::new(&yaml);
    p.write("message.txt", "hello\n");
    p.write("other.txt", "other\n");
    for i in 0..20 {
        p.write(&format!("src/file{i}.txt"), &format!("{i}\n"));
    }
    p.write(".gitignore", "*.log\n");
    p.commit();
    p
}

fn sigint(owner: Proc) {
    // SAFETY: sending SIGINT to our own child process.
    assert_eq!(
        unsafe { libc::kill(owner.pid() as libc::pid_t, libc::SIGINT) },
        0
    );
}

fn wait_exit(child: &mut Child) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code().unwrap_or(-1);
        }
        assert!(
            Instant::now() < deadline,
            "localci did not stop after Ctrl-C"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Networks and volumes a localci process made (by its pid label).
fn other_resources_of(owner: Proc) -> Vec<String> {
    let filter = format!("label=localci.pid={}", owner.pid());
    let mut left = docker_lines(&["network", "ls", "-q", "--filter", &filter]);
    left.extend(docker_lines(&["volume", "ls", "-q", "--filter", &filter]));
    left
}

fn touch(path: &std::path::Path) {
    let file = std::fs::File::options().write(true).open(path).unwrap();
    file.set_modified(SystemTime::now() + Duration::from_secs(5))
        .unwrap();
}

#[test]
fn watch_reruns_in_the_same_containers_sending_only_what_changed() {
    require_docker!();
    let p = watched_project();
    let (mut child, owner) = p.spawn(&["build", "--watch"]);
    let mut out = Lines::of(&mut child);

    let first = out.until("ending run 1", |l| l.starts_with("Watch: run 1 "));
    assert!(first.iter().any(|l| l == "message: hello"), "{first:#?}");
    assert!(
        first.last().unwrap().starts_with("Watch: run 1 passed in "),
        "{first:#?}"
    );
    let containers = containers_of(owner);
    assert_eq!(containers.len(), 2, "primary and service stay up");

    // One file changed: one file is sent, and the step sees it.
    p.write("message.txt", "changed\n");
    let second = out.until("ending run 2", |l| l.starts_with("Watch: run 2 "));
    assert!(
        second
            .iter()
            .any(|l| l == "====>> Rerun 2: message.txt changed"),
        "{second:#?}"
    );
    let synced: Vec<&String> = second
        .iter()
        .filter(|l| l.starts_with("checkout: synced"))
        .collect();
    assert_eq!(synced.len(), 1, "{second:#?}");
    assert!(
        synced[0].starts_with("checkout: synced 1 file (8 B), 0 removed, "),
        "{}",
        synced[0]
    );
    assert!(
        second.iter().any(|l| l == "message: changed"),
        "{second:#?}"
    );
    assert!(
        second
            .last()
            .unwrap()
            .starts_with("Watch: run 2 passed in "),
        "{second:#?}"
    );
    assert_eq!(containers_of(owner), containers, "the same containers");

    // A touched file whose content is the same reruns the job but sends nothing.
    touch(&p.path().join("other.txt"));
    let third = out.until("ending run 3", |l| l.starts_with("Watch: run 3 "));
    assert!(
        third
            .iter()
            .any(|l| l.starts_with("checkout: synced 0 files (0 B), 0 removed, ")),
        "{third:#?}"
    );
    assert!(third.iter().any(|l| l == "message: changed"), "{third:#?}");

    // An ignored file is no change; a failing run and a removed file do not end the watch.
    p.write("debug.log", "ignored\n");
    std::fs::remove_file(p.path().join("other.txt")).unwrap();
    p.write("message.txt", "fail\n");
    let fourth = out.until("ending run 4", |l| l.starts_with("Watch: run 4 "));
    assert!(
        fourth
            .iter()
            .any(|l| l.starts_with("checkout: synced 1 file (5 B), 1 removed, ")),
        "{fourth:#?}"
    );
    assert!(
        fourth.iter().all(|l| !l.contains("debug.log")),
        "{fourth:#?}"
    );
    assert!(
        fourth
            .last()
            .unwrap()
            .starts_with("Watch: run 4 failed in "),
        "{fourth:#?}"
    );
    assert_eq!(
        containers_of(owner),
        containers,
        "still the same containers"
    );

    // Ctrl-C ends the watch with the last run's result (failed: 1) and removes everything.
    sigint(owner);
    let code = wait_exit(&mut child);
    assert_eq!(code, 1, "output:\n{}", out.seen.join("\n"));
    assert_eq!(containers_left(owner), Vec::<String>::new());
    assert_eq!(other_resources_of(owner), Vec::<String>::new());
}

#[test]
fn watch_json_reports_each_run_and_ctrl_c_after_a_pass_exits_0() {
    require_docker!();
    let p = watched_project();
    let (mut child, owner) = p.spawn(&["build", "--watch", "--json"]);
    let mut out = Lines::of(&mut child);
    let is_result = |run: u64| {
        move |l: &str| {
            let v: serde_json::Value = serde_json::from_str(l).expect("a JSON line");
            v["type"] == "watch_result" && v["run"] == run
        }
    };
    let first = out.until("watch_result 1", is_result(1));
    let result: serde_json::Value = serde_json::from_str(first.last().unwrap()).unwrap();
    assert_eq!(result["passed"], true);
    assert_eq!(result["synced"]["removed"], 0);
    assert!(result["synced"]["files"].as_u64().unwrap() > 20, "{result}");

    p.write("src/file3.txt", "three\n");
    let second = out.until("watch_result 2", is_result(2));
    let rerun: Vec<serde_json::Value> = second
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|v: &serde_json::Value| v["type"] == "watch_rerun")
        .collect();
    assert_eq!(rerun.len(), 1, "{second:#?}");
    assert_eq!(rerun[0]["paths"], serde_json::json!(["src/file3.txt"]));
    let result: serde_json::Value = serde_json::from_str(second.last().unwrap()).unwrap();
    assert_eq!(result["passed"], true);
    assert_eq!(
        result["synced"],
        serde_json::json!({"files": 1, "bytes": 6, "removed": 0,
            "unchanged": result["synced"]["unchanged"].clone()})
    );
    assert!(result["synced"]["unchanged"].as_u64().unwrap() > 20);

    sigint(owner);
    assert_eq!(wait_exit(&mut child), 0);
    assert_eq!(containers_left(owner), Vec::<String>::new());
}

#[test]
fn watch_runs_one_job_not_a_workflow() {
    let yaml = "version: 2.1\njobs:\n  a:\n    docker: [{image: x}]\n    steps: [checkout]\nworkflows:\n  ci:\n    jobs: [a]\n";
    let p = Project::new(yaml);
    p.execute(&["--watch"])
        .assert_code(2)
        .assert_stderr("--watch reruns one job, not a workflow");
    let run = p.execute(&["--watch", "--workflow", "ci"]);
    run.assert_code(2);
}
