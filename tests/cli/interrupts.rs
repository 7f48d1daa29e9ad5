//! Issue 9: SIGINT and SIGTERM at every moment of a job leave nothing of the run behind. One
//! two-job workflow exercises 20 moments: before the images are looked for, a pull from the
//! local registry of the pull tests, the primary created, the primary started and running its
//! setup, a service's start, checkout, between two steps, restore_cache, a run step, a
//! background step, a step inside `when`, a step with `no_output_timeout`, an `on_fail` step,
//! save_cache, store_artifacts, store_test_results, persist_to_workspace, the second job up
//! and waiting for the first, the first job's cleanup, and attach_workspace in the second
//! job. Each moment is hit exactly: the run holds there (`LOCALCI_HOLD_AT`,
//! src/engine/hold.rs) and says so, or the step itself prints that it runs; only then does the
//! test send the signal. After each: the exit code (130 for SIGINT, 143 for SIGTERM,
//! src/exit.rs), no container, network or volume of the run, and no temporary file under the
//! repository's `.localci/`, in the cache directory or in the run's `TMPDIR`. The moments run
//! in parallel, each in its own repository and cache dir.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::Mutex;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use super::execute::{self, BUSYBOX, Proc, Project, docker_ready, job, labelled_of};
use super::pull::{Registry, tools};

/// How the test knows the run is at the moment.
#[derive(Clone, Copy)]
enum Reach {
    /// `LOCALCI_HOLD_AT=<name>`; the run says `Holding at <name> ...`.
    Hold(&'static str),
    /// A file of that name in the repository makes a step print the line and wait.
    Step(&'static str, &'static str),
}

#[derive(Clone, Copy)]
struct Moment {
    name: &'static str,
    reach: Reach,
    /// A full run first, so that there is a cache to restore.
    seed: bool,
}

const fn hold(name: &'static str) -> Moment {
    Moment {
        name,
        reach: Reach::Hold(name),
        seed: false,
    }
}

const fn step(name: &'static str, file: &'static str, line: &'static str) -> Moment {
    Moment {
        name,
        reach: Reach::Step(file, line),
        seed: false,
    }
}

const MOMENTS: [Moment; 20] = [
    hold("images"),
    hold("pull"),
    hold("create"),
    hold("start"),
    hold("service"),
    hold("checkout"),
    hold("between_steps"),
    Moment {
        name: "restore_cache",
        reach: Reach::Hold("restore_cache"),
        seed: true,
    },
    step("run", "hold-run", "run step 2 holding"),
    step("background run", "hold-background", "background step 2 up"),
    step("when step", "hold-when", "when step 2 holding"),
    step(
        "no_output_timeout run",
        "hold-timeout",
        "timed step 2 holding",
    ),
    step("on_fail run", "hold-on_fail", "on_fail step 2 holding"),
    hold("save_cache"),
    hold("store_artifacts"),
    hold("store_test_results"),
    hold("persist_to_workspace"),
    hold("waiting"),
    hold("cleanup"),
    hold("attach_workspace"),
];

/// The workflow `all` (first -> second) and the job `pull` (of `pulled`). Step output is
/// told from the echoed command by `$((1+1))`, which only the shell turns into `2`. What is
/// copied holds 1 MB of random bytes: more than one chunk, so a copy holds half-way.
fn config(pulled: &str) -> String {
    format!(
        r#"version: 2.1
jobs:
  first:
    docker:
      - image: {BUSYBOX}
      - image: {BUSYBOX}
        name: svc
        command: ["sleep", "600"]
    steps:
      - checkout
      - run: if [ -e hold-first ]; then sleep 600; fi
      - restore_cache:
          keys: [v1-deps-]
      - run: mkdir -p deps out/results && echo dep > deps/a && dd if=/dev/urandom of=deps/big bs=1024 count=1024 2>/dev/null && cp deps/big out/ && cp deps/big out/results/ && echo '<testsuite name="t" tests="1"><testcase name="c"/></testsuite>' > out/results/r.xml
      - run:
          background: true
          command: if [ -e hold-background ]; then touch /tmp/bg-up; sleep 600; fi
      - run: if [ -e hold-background ]; then while [ ! -e /tmp/bg-up ]; do sleep 0.05; done; echo "background step $((1+1)) up"; sleep 600; fi
      - run: if [ -e hold-run ]; then echo "run step $((1+1)) holding"; sleep 600; fi
      - when:
          condition: true
          steps:
            - run: if [ -e hold-when ]; then echo "when step $((1+1)) holding"; sleep 600; fi
      - run:
          no_output_timeout: 10m
          command: if [ -e hold-timeout ]; then echo "timed step $((1+1)) holding"; sleep 600; fi
      - run: if [ -e hold-on_fail ]; then exit 3; fi
      - run:
          when: on_fail
          command: echo "on_fail step $((1+1)) holding"; sleep 600
      - save_cache:
          key: v1-deps-{{{{ .Revision }}}}
          paths: [deps]
      - store_artifacts:
          path: out
      - store_test_results:
          path: out/results
      - persist_to_workspace:
          root: .
          paths: [deps]
  second:
    docker:
      - image: {BUSYBOX}
    steps:
      - attach_workspace:
          at: .
      - run: cat deps/a
  pull:
    docker:
      - image: {pulled}
    steps:
      - run: echo pulled
workflows:
  all:
    jobs:
      - first
      - second:
          requires: [first]
"#
    )
}

/// A repository for one moment: the config, a tree of 300 files to check out, the marker file.
fn project(moment: Moment, pulled: &str) -> Project {
    let p = Project::new(&config(pulled));
    let block = "0123456789abcdef".repeat(512);
    for i in 0..300 {
        p.write(&format!("tree/{:02}/{i}.txt", i % 10), &block);
    }
    if let Reach::Step(file, _) = moment.reach {
        p.write(file, "");
    }
    // The second job waits only while the first runs: it must not be done before the
    // second is up (its steps take milliseconds).
    if moment.name == "waiting" {
        p.write("hold-first", "");
    }
    p.commit();
    p
}

/// Names a run may leave only while it runs: staging folders, `.partial` cache entries and
/// workspace layers, temporary records, tempfile's `.tmp*`.
fn is_temporary(name: &str) -> bool {
    name.starts_with(".localci-copy-")
        || name.starts_with(".tmp")
        || name.ends_with(".partial")
        || name.ends_with(".tmp")
}

fn temporary_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&path) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if is_temporary(&entry.file_name().to_string_lossy()) {
                found.push(path.clone());
            }
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(path);
            }
        }
    }
    found
}

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|items| {
            items
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Waits for the child's end (at most `limit`); its exit code, `None` when it did not end.
fn wait_exit(child: &mut Child, limit: Duration) -> Option<Option<i32>> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status.code());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// Runs one moment with one signal; what went wrong, if anything.
fn interrupt(moment: Moment, signal: libc::c_int, pulled: &str) -> Result<String, String> {
    let p = project(moment, pulled);
    let args: &[&str] = if moment.name == "pull" {
        &["pull"]
    } else {
        &["--workflow", "all"]
    };
    if moment.seed {
        let seed = p.execute(args);
        if seed.code != 0 {
            return Err(format!(
                "the seed run failed:\n{}{}",
                seed.stdout, seed.stderr
            ));
        }
    }
    let cache_before = entries(p.cache_dir());
    let tmp = tempfile::tempdir().unwrap();
    let mut env = vec![("TMPDIR", tmp.path().to_str().unwrap())];
    let wanted = match moment.reach {
        Reach::Hold(name) => {
            env.push(("LOCALCI_HOLD_AT", name));
            format!("Holding at {name} until a signal comes")
        }
        Reach::Step(_, line) => line.to_string(),
    };
    let (mut child, owner) = p.spawn_with(args, &env);
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut stderr = child.stderr.take().unwrap();
    let errors = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let mut seen = String::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    let reached = loop {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) => {
                seen.push_str(&line);
                seen.push('\n');
                if line.contains(&wanted) {
                    break true;
                }
            }
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break false,
        }
    };
    if !reached {
        let _ = child.kill();
        let _ = child.wait();
        return Err(format!(
            "never reached ({wanted:?}):\n{seen}{}",
            errors.join().unwrap()
        ));
    }
    // SAFETY: signalling our own child process.
    assert_eq!(unsafe { libc::kill(owner.pid() as libc::pid_t, signal) }, 0);
    let sent = Instant::now();
    let code = wait_exit(&mut child, Duration::from_secs(60));
    let took = sent.elapsed();
    if code.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    seen.extend(rx.try_iter().map(|l| l + "\n"));
    let stderr = errors.join().unwrap();
    let expected = 128 + signal;
    let mut problems = Vec::new();
    match code {
        None => problems.push("did not end within 60 s of the signal".to_string()),
        Some(code) if code != Some(expected) => {
            problems.push(format!("exit code {code:?}, not {expected}"));
        }
        Some(_) => {}
    }
    problems.extend(left_behind(owner, &p, tmp.path()));
    if moment.name == "save_cache" && entries(p.cache_dir()) != cache_before {
        problems.push(format!(
            "the interrupted save_cache changed the cache dir: {:?}",
            entries(p.cache_dir())
        ));
    }
    if problems.is_empty() {
        Ok(format!("{:.1} s", took.as_secs_f64()))
    } else {
        Err(format!(
            "{}\n--- stdout\n{seen}--- stderr\n{stderr}",
            problems.join("\n")
        ))
    }
}

fn left_behind(owner: Proc, p: &Project, tmp: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    for (kind, list) in [
        ("containers", &["ps", "-aq"][..]),
        ("networks", &["network", "ls", "-q"][..]),
        ("volumes", &["volume", "ls", "-q"][..]),
    ] {
        let left = labelled_of(owner, list);
        if !left.is_empty() {
            problems.push(format!("{kind} left: {left:?}"));
        }
    }
    for dir in [p.path().join(".localci"), p.cache_dir().to_path_buf()] {
        let left = temporary_files(&dir);
        if !left.is_empty() {
            problems.push(format!("temporary files left: {left:?}"));
        }
    }
    let left = entries(tmp);
    if !left.is_empty() {
        problems.push(format!("left in TMPDIR: {left:?}"));
    }
    problems
}

// See: issue 9 ("SIGINT and SIGTERM at 20 moments of a job ...; after each: the exit code, and
// nothing of that run left").
#[test]
fn sigint_and_sigterm_at_every_moment_of_a_job_leave_nothing_behind() {
    if !docker_ready() {
        return;
    }
    // The pull moment needs the registry of the pull tests (required in CI, else skipped).
    let mut registry = tools().map(|tools| Registry::start(&tools, None));
    let mut cases: Vec<(Moment, libc::c_int, String)> = Vec::new();
    for signal in [libc::SIGINT, libc::SIGTERM] {
        for moment in MOMENTS {
            let pulled = if moment.name == "pull" {
                let Some(registry) = registry.as_mut() else {
                    continue;
                };
                registry.push(BUSYBOX, &format!("localci-test/interrupt-{signal}:1"))
            } else {
                BUSYBOX.to_string()
            };
            cases.push((moment, signal, pulled));
        }
    }
    let started = Instant::now();
    let total = cases.len();
    let queue = Mutex::new(cases);
    let results = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                loop {
                    let Some((moment, signal, pulled)) = queue.lock().unwrap().pop() else {
                        return;
                    };
                    let result = interrupt(moment, signal, &pulled);
                    let name = if signal == libc::SIGINT {
                        "SIGINT"
                    } else {
                        "SIGTERM"
                    };
                    results
                        .lock()
                        .unwrap()
                        .push((format!("{name} at {}", moment.name), result));
                }
            });
        }
    });
    let results = results.into_inner().unwrap();
    let failed: Vec<String> = results
        .iter()
        .filter_map(|(what, r)| r.as_ref().err().map(|e| format!("== {what}: {e}")))
        .collect();
    for (what, r) in &results {
        if let Ok(took) = r {
            eprintln!("{what}: ended {took} after the signal, nothing left");
        }
    }
    eprintln!(
        "{total} interrupts in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    assert!(failed.is_empty(), "{}", failed.join("\n"));
    assert_eq!(results.len(), total);
}

// Issue 9 ("nothing lost") and issue 10 (the primary's stdin keeps it alive): even when
// localci is killed outright (SIGKILL: no handler, no cleanup), the primary container ends
// with localci's connection and the engine removes it, instead of living on until the next
// run's leftover sweep.
#[test]
fn a_killed_localci_leaves_no_primary_running() {
    if !docker_ready() {
        return;
    }
    let p = Project::new(&execute::config(&[job(
        "build",
        BUSYBOX,
        "      - run: echo \"holding $((1+1))\"; sleep 60\n",
    )]));
    let (mut child, owner) = p.spawn(&["build"]);
    let stdout = child.stdout.take().unwrap();
    let mut seen = String::new();
    for line in BufReader::new(stdout).lines() {
        let Ok(line) = line else { break };
        seen.push_str(&line);
        seen.push('\n');
        if line.trim() == "holding 2" {
            break;
        }
    }
    assert!(seen.contains("holding 2"), "the step never ran:\n{seen}");
    assert_eq!(
        labelled_of(owner, &["ps", "-q"]).len(),
        1,
        "the primary runs"
    );
    child.kill().unwrap();
    child.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut left = labelled_of(owner, &["ps", "-aq"]);
    while !left.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        left = labelled_of(owner, &["ps", "-aq"]);
    }
    assert!(left.is_empty(), "containers left after SIGKILL: {left:?}");
}
