//! The reporters from the outside: the live view drawn on a real terminal (a pty from
//! `script`, bsdutils; its transcript replayed on an emulated screen with `vt100` to see what
//! a person would see) and never on a pipe, and `execute --json` against the real daemon,
//! every line valid against `schema/events.schema.json`.
//!
//! The live-view tests run this test binary again, as a child that feeds synthetic events of a
//! two-job run into the reporter (`live_view_child`): the workflow scheduler is not needed to
//! see what the reporter draws.

use std::io::IsTerminal;
use std::process::{Command, Stdio};
use std::time::Duration;

use localci::report::{Event, JobRef, JobRow, JobStatus, ReporterKind, Sink, StepStatus, Stream};
use serde_json::Value;

use crate::execute::{BUSYBOX, Project, config, docker_ready, job};

/// Set for the child run: only then does `live_view_child` feed the reporter, the events of
/// a two-job run (`multi`) or of one job that pulls its image (`single`).
const CHILD: &str = "LOCALCI_TEST_LIVE_VIEW_CHILD";

/// Lines each job prints in a burst, both jobs at once, while the live block is drawn.
const BURST: usize = 200;

/// The log lines the child's run prints for `job` (stripped of color), in order.
fn expected_log(job: &str) -> Vec<String> {
    let mut log = match job {
        "a" => vec!["a | ====>> compile".to_string(), "a |   make all".into()],
        _ => vec!["b | ====>> lint".to_string()],
    };
    log.extend((0..BURST).map(|i| format!("{job} | {}", burst_line(job, i))));
    log.push(match job {
        "a" => "a | compiled 1 of 1".into(),
        _ => "b | lint clean".into(),
    });
    log
}

fn burst_line(job: &str, i: usize) -> String {
    format!("{job} burst {i} {}", "=".repeat(i % 50 + 1))
}

#[test]
#[ignore = "a helper: the live_view tests run it under a pty or with pipes"]
fn live_view_child() {
    let Ok(scenario) = std::env::var(CHILD) else {
        return;
    };
    let multi_job = scenario == "multi";
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    // The test harness has printed `test ... ` without a newline: the run starts a line.
    println!();
    runtime.block_on(async {
        let tty = std::io::stderr().is_terminal();
        let kind = ReporterKind::Terminal {
            color: tty,
            live: tty,
            multi_job,
        };
        let (sink, reporter) = localci::report::spawn(std::io::stdout(), kind);
        if multi_job {
            feed(&sink).await;
        } else {
            feed_one_job(&sink).await;
        }
        drop(sink);
        reporter.await.unwrap();
    });
}

/// Two jobs running at once, slow enough for the live view to draw between events.
async fn feed(sink: &Sink) {
    let (a, b) = (JobRef::new("a", None), JobRef::new("b", None));
    let pause = || tokio::time::sleep(Duration::from_millis(300));
    sink.send(Event::RunStarted {
        run: "r1".into(),
        workflow: Some("ci".into()),
        jobs: vec!["a".into(), "b".into()],
    });
    for (job, name) in [(&a, "compile"), (&b, "lint")] {
        sink.send(Event::JobStarted { job: job.clone() });
        if name == "lint" {
            pull(sink, &b).await;
        }
        sink.send(Event::StepStarted {
            job: job.clone(),
            step: 1,
            name: name.into(),
            header: if name == "compile" {
                vec!["make all".into()]
            } else {
                vec![]
            },
            background: false,
        });
    }
    pause().await;
    for i in 0..BURST {
        sink.send(output(&a, &burst_line("a", i)));
        sink.send(output(&b, &burst_line("b", i)));
    }
    pause().await;
    sink.send(output(&a, "compiled 1 of 1"));
    pause().await;
    sink.send(output(&b, "lint clean"));
    pause().await;
    for job in [&a, &b] {
        sink.send(Event::StepFinished {
            job: job.clone(),
            step: 1,
            status: StepStatus::Passed { exit_code: Some(0) },
            duration: Duration::from_secs(1),
        });
        sink.send(Event::JobFinished {
            job: job.clone(),
            passed: true,
            failure: None,
            duration: Duration::from_secs(1),
        });
    }
    sink.send(Event::RunFinished {
        rows: ["a", "b"].map(row).to_vec(),
        wall: Duration::from_secs(1),
        job_time: Duration::from_secs(2),
    });
}

/// Job `b` pulls an image with one layer: a line in the live block while it lasts.
async fn pull(sink: &Sink, job: &JobRef) {
    for current in [5, 10] {
        sink.send(Event::LayerProgress {
            job: job.clone(),
            image: "img:1".into(),
            layer: LAYER.into(),
            status: "Downloading".into(),
            current: Some(current),
            total: Some(100),
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    sink.send(Event::PullEnded {
        job: job.clone(),
        image: "img:1".into(),
    });
}

const LAYER: &str = "0b1ecb2a5c22";

/// One job (`localci execute build`) that pulls its image, then prints a line.
async fn feed_one_job(sink: &Sink) {
    let job = JobRef::new("build", None);
    let info = |text: &str| Event::Info {
        job: job.clone(),
        text: text.into(),
    };
    sink.send(info("Pulling image img:1"));
    pull(sink, &job).await;
    sink.send(info("Pulled img:1 in 1s"));
    sink.send(output(&job, "hello"));
    sink.send(Event::JobFinished {
        job: job.clone(),
        passed: true,
        failure: None,
        duration: Duration::from_secs(1),
    });
}

fn output(job: &JobRef, line: &str) -> Event {
    Event::Output {
        job: job.clone(),
        step: 1,
        stream: Stream::Stdout,
        line: line.into(),
    }
}

fn row(job: &str) -> JobRow {
    JobRow {
        job: job.into(),
        status: JobStatus::Success,
        duration: Some(Duration::from_secs(1)),
        tests: None,
    }
}

/// Runs `live_view_child` in a child process built by `wrap`.
fn child(scenario: &str, wrap: impl FnOnce(String) -> Command) -> (String, String) {
    let exe = std::env::current_exe().unwrap();
    let args = "--exact report::live_view_child --ignored --nocapture --test-threads=1";
    let mut cmd = wrap(format!("'{}' {args}", exe.display()));
    let out = cmd
        .env(CHILD, scenario)
        .env("TERM", "xterm-256color")
        .env_remove("NO_COLOR")
        .stdin(Stdio::null())
        .output()
        .expect("the child starts");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stdout}\n{stderr}");
    (stdout, stderr)
}

/// The log lines of `job` as shown, in order.
fn log_of(lines: &[String], job: &str) -> Vec<String> {
    let prefix = format!("{job} | ");
    lines
        .iter()
        .filter(|l| l.starts_with(&prefix) && !l.contains("Success!") && !l.contains("--->"))
        .cloned()
        .collect()
}

/// Terminal size of the pty (set with `stty` in it) and of the emulated screen, which has
/// rows enough never to scroll, so the whole session stays on it.
const COLS: u16 = 100;
const SCREEN_ROWS: u16 = 2000;

/// The screen after the terminal received `bytes`, one string per row.
fn screen(bytes: &str) -> Vec<String> {
    let rows = std::num::NonZeroU16::new(SCREEN_ROWS).unwrap();
    let cols = std::num::NonZeroU16::new(COLS).unwrap();
    let mut parser = vt100::Parser::new(rows, cols, 0);
    parser.process(bytes.as_bytes());
    parser
        .screen()
        .rows(0, COLS)
        .map(|r| r.trim_end().to_string())
        .collect()
}

/// `cmd` run on a pseudo-terminal of [`COLS`] columns.
fn under_a_pty(cmd: String) -> Command {
    let mut script = Command::new("script");
    let sized = format!("stty cols {COLS} rows 40; {cmd}");
    script.args(["-qfec", &sized, "/dev/null"]);
    script
}

/// The layer's line in the live block, while it downloads.
fn layer_line() -> regex::Regex {
    regex::Regex::new(&format!(r"^{LAYER} Downloading +=*> +10 B/100 B$")).unwrap()
}

/// A live line of `job` showing `step` running.
fn live_line(job: &str, step: &str) -> regex::Regex {
    regex::Regex::new(&format!(r"^\S {job}\s+\d+s running: {step}$")).unwrap()
}

#[test]
fn the_live_view_draws_job_lines_on_a_terminal_without_tearing_the_logs() {
    let (transcript, _) = child("multi", under_a_pty);
    // indicatif redraws its block by moving the cursor up and clearing lines.
    assert!(transcript.contains("\x1b[2K"), "{transcript:?}");
    assert!(transcript.contains("\x1b[1A"), "{transcript:?}");

    // While the jobs run, the block is under the last log line: one line per running job
    // with its current step.
    let shown = transcript.find("lint clean").unwrap();
    let redrawn = shown + transcript[shown..].find("running: lint").unwrap();
    let during = screen(&transcript[..redrawn + "running: lint".len()]);
    let last_log = during.iter().position(|r| r == "b | lint clean").unwrap();
    assert!(
        live_line("a", "compile").is_match(&during[last_log + 1]),
        "{during:#?}"
    );
    assert!(
        live_line("b", "lint").is_match(&during[last_log + 2]),
        "{during:#?}"
    );
    // The pull had its layer line in the block while it lasted.
    let drawn = transcript
        .rfind("10 B/100 B")
        .expect("the layer line was drawn");
    let with_layer = screen(&transcript[..drawn + "10 B/100 B".len()]);
    assert!(
        with_layer.iter().any(|r| layer_line().is_match(r)),
        "{with_layer:#?}"
    );

    // Afterwards: every log line whole, in order, and nothing left of the block.
    let after = screen(&transcript);
    assert_eq!(log_of(&after, "a"), expected_log("a"), "{after:#?}");
    assert_eq!(log_of(&after, "b"), expected_log("b"), "{after:#?}");
    assert!(
        !after
            .iter()
            .any(|r| r.contains("running: ") || r.contains(LAYER)),
        "{after:#?}"
    );
    let table = after.iter().position(|r| r == "Workflow \"ci\":").unwrap();
    assert_eq!(
        after[table..table + 5],
        [
            "Workflow \"ci\":",
            "  JOB  STATUS   DURATION  TESTS",
            "  a    success  1s        -",
            "  b    success  1s        -",
            "Workflow took 1s (jobs took 2s in all)",
        ]
    );
}

#[test]
fn a_single_job_on_a_terminal_shows_its_pull_under_the_logs_then_only_the_logs() {
    let (transcript, _) = child("single", under_a_pty);
    let drawn = transcript
        .rfind("10 B/100 B")
        .expect("the layer line was drawn");
    let during = screen(&transcript[..drawn + "10 B/100 B".len()]);
    let pulling = during
        .iter()
        .position(|r| r == "Pulling image img:1")
        .unwrap();
    assert!(layer_line().is_match(&during[pulling + 1]), "{during:#?}");
    // No job line for a single job: its log is the view.
    assert!(
        !during
            .iter()
            .any(|r| r.contains("running:") || r.ends_with(" starting"))
    );
    let after = screen(&transcript);
    let start = after
        .iter()
        .position(|r| r == "Pulling image img:1")
        .unwrap();
    assert_eq!(
        after[start..start + 5],
        [
            "Pulling image img:1",
            "Pulled img:1 in 1s",
            "hello",
            "Success! Job \"build\" passed in 1s",
            "ok"
        ],
        "{after:#?}"
    );
}

#[test]
fn without_a_terminal_there_are_plain_prefixed_lines_and_no_escape_code() {
    let (stdout, stderr) = child("multi", |cmd| {
        let mut sh = Command::new("sh");
        sh.args(["-c", &cmd]);
        sh
    });
    assert!(!stdout.contains('\x1b'), "{stdout:?}");
    assert!(!stderr.contains('\x1b'), "{stderr:?}");
    let lines: Vec<String> = stdout.lines().map(str::to_string).collect();
    assert_eq!(log_of(&lines, "a"), expected_log("a"), "{stdout}");
    assert_eq!(log_of(&lines, "b"), expected_log("b"), "{stdout}");
    assert!(
        !stdout.contains("running: "),
        "no live line on a pipe: {stdout}"
    );
}

#[test]
fn execute_json_prints_only_events_valid_against_the_schema() {
    if !docker_ready() {
        return;
    }
    let p = Project::new(&config(&[job(
        "bad",
        BUSYBOX,
        "      - run: echo hello\n      - run: {name: Break, command: 'echo broken >&2; exit 7'}\n",
    )]));
    let run = p.execute(&["bad", "--json"]);
    run.assert_code(1).assert_nothing_left();
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/schema/events.schema.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let events: Vec<Value> = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?} is not JSON: {e}")))
        .collect();
    for e in &events {
        let errors: Vec<String> = validator.iter_errors(e).map(|x| x.to_string()).collect();
        assert!(errors.is_empty(), "{e}: {errors:?}");
    }
    let has = |kind: &str, field: &str, value: Value| {
        events
            .iter()
            .any(|e| e["type"] == kind && e["job"] == "bad" && e[field] == value)
    };
    assert!(has("output", "line", "hello".into()), "{}", run.stdout);
    assert!(has("output", "stream", "stderr".into()), "{}", run.stdout);
    assert!(
        has("step_finished", "exit_code", 7.into()),
        "{}",
        run.stdout
    );
    assert!(
        has("job_finished", "passed", false.into()),
        "{}",
        run.stdout
    );
    let times: Vec<u64> = events.iter().map(|e| e["time"].as_u64().unwrap()).collect();
    assert!(times.is_sorted(), "{times:?}");
}
