//! Whole workflows against the real Docker daemon: the DAG, statuses and filters, approvals,
//! parallel nodes, contexts and `--rerun-failed`. Outcomes are read from the run's record
//! (`.localci/runs/<run>/run.json`) and from job output lines (never the echoed commands:
//! the commands print values that the command text does not contain).

use std::process::Command;

use serde_json::Value;

use super::execute::{BUSYBOX, Project, docker_ready};

macro_rules! require_docker {
    () => {
        if !docker_ready() {
            return;
        }
    };
}

/// A 2.1 config with a busybox executor and these jobs and workflows.
fn config(jobs: &str, workflows: &str) -> String {
    format!(
        "version: 2.1\nexecutors:\n  bb:\n    docker: [{{image: {BUSYBOX}}}]\njobs:\n{jobs}workflows:\n{workflows}"
    )
}

/// A job that runs one command.
fn job(name: &str, command: &str) -> String {
    format!("  {name}:\n    executor: bb\n    steps:\n      - run: {command}\n")
}

fn statuses(run: &Value) -> Vec<(String, String)> {
    run["jobs"]
        .as_object()
        .expect("jobs")
        .iter()
        .map(|(k, v)| (k.clone(), v["status"].as_str().unwrap().to_string()))
        .collect()
}

fn status<'a>(run: &'a Value, job: &str) -> &'a str {
    run["jobs"][job]["status"].as_str().unwrap_or("missing")
}

/// Seconds since the epoch as a job printed them (`date +%s` inside the container).
fn stamp(stdout: &str, label: &str) -> u64 {
    // The echoed command holds `label=$(date +%s)`: only the output line has digits.
    stdout
        .lines()
        .find_map(|l| l.split_once(&format!("{label}="))?.1.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {label}= line in\n{stdout}"))
}

#[test]
fn a_diamond_runs_each_job_after_what_it_requires() {
    require_docker!();
    let jobs = [
        job(
            "a",
            r#"echo "a-start=$(date +%s)"; sleep 1; echo "a-end=$(date +%s)""#,
        ),
        job("b", r#"sleep 2; echo "b-end=$(date +%s)""#),
        job(
            "c",
            r#"echo "c-start=$(date +%s)"; echo "c-end=$(date +%s)""#,
        ),
        job(
            "d",
            r#"echo "d-start=$(date +%s)"; echo "job=$CIRCLE_JOB build=$CIRCLE_BUILD_NUM""#,
        ),
    ]
    .concat();
    let workflows = "  ci:\n    jobs:\n      - a\n      - b: {requires: [a]}\n      - c: {requires: [a]}\n      - d: {requires: [b, c]}\n";
    let p = Project::new(&config(&jobs, workflows));
    let run = p.execute(&["--workflow", "ci", "-j", "4"]);
    run.assert_code(0).assert_nothing_left();
    let out = &run.stdout;
    assert!(stamp(out, "c-start") >= stamp(out, "a-end"));
    assert!(stamp(out, "d-start") >= stamp(out, "b-end"));
    assert!(stamp(out, "d-start") >= stamp(out, "c-end"));
    // c does not wait for b (no stage barrier): it ends before b does.
    assert!(stamp(out, "c-end") < stamp(out, "b-end"), "{out}");
    run.assert_stdout("job=d build=");
    let record = &p.runs()[0];
    assert_eq!(record["workflow"], "ci");
    assert!(statuses(record).iter().all(|(_, s)| s == "success"));
}

#[test]
fn a_failing_branch_does_not_stop_an_independent_one() {
    require_docker!();
    let jobs = [
        job("build", "echo built"),
        job("test", r#"echo "test failing on purpose"; exit 3"#),
        job("deploy", "echo deployed"),
        job("cleanup", r#"echo "cleanup-ran-$((1+1))""#),
        job("lint", r#"sleep 1; echo "lint-ok-$((2+2))""#),
    ]
    .concat();
    let workflows = "  ci:\n    jobs:\n      - build\n      - test: {requires: [build]}\n      - deploy: {requires: [test]}\n      - cleanup: {requires: [{test: [failed, canceled]}]}\n      - lint\n";
    let p = Project::new(&config(&jobs, workflows));
    let run = p.execute(&["--workflow", "ci"]);
    run.assert_code(1)
        .assert_stdout("lint-ok-4")
        .assert_stdout("cleanup-ran-2")
        .assert_nothing_left();
    let record = &p.runs()[0];
    assert_eq!(status(record, "test"), "failed");
    assert_eq!(status(record, "deploy"), "not_run");
    assert_eq!(status(record, "cleanup"), "success");
    assert_eq!(status(record, "lint"), "success");
    assert!(!run.stdout.contains("deployed\n"));
}

#[test]
fn a_tag_build_skips_jobs_without_a_tag_filter() {
    require_docker!();
    let jobs = [
        job("build", r#"echo "build-tag=$CIRCLE_TAG""#),
        job("docs", "echo docs"),
        job("release", r#"echo "release-$((6*7))""#),
    ]
    .concat();
    let workflows = "  ci:\n    jobs:\n      - build: {filters: {tags: {only: /^v.*/}}}\n      - docs\n      - release: {requires: [build], filters: {tags: {only: /^v\\d+$/}, branches: {ignore: /.*/}}}\n";
    let p = Project::new(&config(&jobs, workflows));
    let run = p.execute(&["--tag", "v2"]);
    run.assert_code(0)
        .assert_stdout("build-tag=v2")
        .assert_stdout("release-42");
    let record = &p.runs()[0];
    assert_eq!(status(record, "docs"), "skipped");
    // On a branch, release's `branches: ignore` leaves it out.
    let run = p.execute(&["--branch", "main"]);
    run.assert_code(0);
    let record = &p.runs()[0];
    assert_eq!(status(record, "build"), "success");
    assert_eq!(status(record, "docs"), "success");
    assert_eq!(status(record, "release"), "skipped");
}

#[test]
fn an_approval_holds_its_dependents_until_approved() {
    require_docker!();
    let jobs = [
        job("build", "echo built"),
        job("deploy", r#"echo "deploying-$((40+2))""#),
    ]
    .concat();
    let workflows = "  ci:\n    jobs:\n      - build\n      - hold: {type: approval, requires: [build]}\n      - deploy: {requires: [hold]}\n";
    let p = Project::new(&config(&jobs, workflows));
    let held = p.execute(&[]);
    held.assert_code(0).assert_stdout("--approve hold");
    assert!(!held.stdout.contains("deploying-42"));
    let record = &p.runs()[0];
    assert_eq!(status(record, "hold"), "on_hold");
    assert_eq!(status(record, "deploy"), "on_hold");
    p.execute(&["--approve", "hold"])
        .assert_code(0)
        .assert_stdout("deploying-42");
    let record = &p.runs()[0];
    assert_eq!(status(record, "hold"), "success");
    assert_eq!(status(record, "deploy"), "success");
}

#[test]
fn parallel_nodes_each_get_their_index() {
    require_docker!();
    let jobs = "  split:\n    executor: bb\n    parallelism: 3\n    steps:\n      - run: echo \"node=$CIRCLE_NODE_INDEX/$CIRCLE_NODE_TOTAL\"\n";
    let p = Project::new(&config(jobs, "  ci:\n    jobs: [split]\n"));
    let run = p.execute(&[]);
    run.assert_code(0).assert_nothing_left();
    for n in 0..3 {
        run.assert_stdout(&format!("node={n}/3"));
    }
    // One node of the job alone.
    let one = p.execute(&["split", "--node-index", "1"]);
    one.assert_code(0).assert_stdout("node=1/3");
    assert!(!one.stdout.contains("node=0/3"));
    // A failing node fails the job.
    let failing = "  split:\n    executor: bb\n    parallelism: 2\n    steps:\n      - run: test \"$CIRCLE_NODE_INDEX\" = 0\n";
    let p = Project::new(&config(failing, "  ci:\n    jobs: [split]\n"));
    p.execute(&[]).assert_code(1).assert_nothing_left();
    assert_eq!(status(&p.runs()[0], "split"), "failed");
}

#[test]
fn contexts_are_loaded_and_a_missing_one_stops_the_run_before_docker() {
    require_docker!();
    let jobs = job("deploy", r#"echo "region=$REGION token-length=${#TOKEN}""#);
    let workflows = "  ci:\n    jobs:\n      - deploy: {context: [aws, prod]}\n";
    let p = Project::new(&config(&jobs, workflows));
    let contexts = tempfile::tempdir().unwrap();
    let dir = contexts.path().to_str().unwrap();
    std::fs::write(
        contexts.path().join("aws.env"),
        "REGION=eu-west-1\nTOKEN=abc\n",
    )
    .unwrap();
    p.execute(&["--context-dir", dir])
        .assert_code(2)
        .assert_stderr("uses context `prod`");
    assert!(p.runs().is_empty(), "nothing ran");
    std::fs::write(contexts.path().join("prod.env"), "TOKEN=abcdef\n").unwrap();
    p.execute(&["--context-dir", dir])
        .assert_code(0)
        // Context values are secrets: masked in the output like project variables.
        .assert_stdout("region=******** token-length=6");
}

#[test]
fn rerun_failed_runs_only_what_failed_or_did_not_run() {
    require_docker!();
    let jobs = [
        job("build", r#"echo "build-ran-$((1+0))""#),
        job("test", r#"test -z "$BREAK" && echo "test-passed-$((1+1))""#),
        job("deploy", r#"echo "deploy-ran-$((1+2))""#),
    ]
    .concat();
    let workflows = "  ci:\n    jobs:\n      - build\n      - test: {requires: [build]}\n      - deploy: {requires: [test]}\n";
    let p = Project::new(&config(&jobs, workflows));
    p.execute(&["-e", "BREAK=1"]).assert_code(1);
    let first = p.runs()[0].clone();
    assert_eq!(status(&first, "deploy"), "not_run");
    let rerun = p.execute(&["--rerun-failed"]);
    rerun
        .assert_code(0)
        .assert_stdout("test-passed-2")
        .assert_stdout("deploy-ran-3");
    assert!(!rerun.stdout.contains("build-ran-1"), "{}", rerun.stdout);
    let second = &p.runs()[0];
    assert_eq!(status(second, "build"), "success");
    assert_eq!(second["workspace_id"], first["workspace_id"]);
    assert_ne!(second["id"], first["id"]);
}

#[test]
fn several_workflows_need_a_choice_and_list_and_plan_show_them() {
    let jobs = [job("a", "echo a"), job("b", "echo b")].concat();
    let workflows = "  one:\n    jobs: [a]\n  two:\n    jobs:\n      - a\n      - b: {requires: [a], filters: {branches: {only: main}}}\n";
    let p = Project::new(&config(&jobs, workflows));
    let run = p.execute(&[]);
    run.assert_code(2)
        .assert_stderr("choose one with --workflow")
        .assert_stderr("localci execute --workflow two");
    let localci = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_localci"))
            .current_dir(p.path())
            .args(args)
            .output()
            .unwrap()
    };
    let list = localci(&["list"]);
    let text = String::from_utf8_lossy(&list.stdout);
    assert!(text.contains("workflow two"), "{text}");
    assert!(text.contains("requires a; branches only main"), "{text}");
    let plan = localci(&["plan", "--workflow", "two", "--branch", "dev", "--json"]);
    let plan: Value = serde_json::from_slice(&plan.stdout).unwrap();
    assert_eq!(plan["jobs"][1]["name"], "b");
    assert_eq!(plan["jobs"][1]["skipped"], "branch dev: not in `only`");
    let plan = localci(&["plan", "--workflow", "two"]);
    assert!(String::from_utf8_lossy(&plan.stdout).contains("1  b  after a"));
}

#[test]
fn step_halt_ends_the_job_successfully_after_the_current_step() {
    require_docker!();
    let jobs = "  build:\n    executor: bb\n    steps:\n      - run: echo \"before-$((1+1))\"; circleci-agent step halt\n      - run: echo \"after-$((2+2))\"\n";
    let p = Project::new(&config(jobs, "  ci:\n    jobs: [build]\n"));
    let run = p.execute(&[]);
    run.assert_code(0)
        .assert_stdout("before-2")
        .assert_nothing_left();
    assert!(!run.stdout.contains("after-4"), "{}", run.stdout);
    assert_eq!(status(&p.runs()[0], "build"), "success");
}

/// The test files each node ran, from `ran:<file>` output lines.
fn ran(stdout: &str) -> Vec<String> {
    let mut files: Vec<String> = stdout
        .lines()
        .filter_map(|l| {
            l.split_once("ran:tests/")
                .map(|(_, f)| f.trim().to_string())
        })
        .collect();
    files.sort();
    files
}

#[test]
fn split_nodes_together_run_every_test_exactly_once() {
    require_docker!();
    let steps = r#"      - checkout
      - run: |
          circleci tests glob "tests/*.txt" | circleci tests split --split-by=timings > /tmp/mine
          mkdir -p results
          echo "<testsuite>" > results/junit.xml
          for f in $(cat /tmp/mine); do
            echo "ran:$f"
            echo "<testcase file=\"$f\" classname=\"t\" name=\"$f\" time=\"$(cat $f)\"/>" >> results/junit.xml
          done
          echo "</testsuite>" >> results/junit.xml
      - store_test_results: {path: results}
"#;
    let jobs = format!("  test:\n    executor: bb\n    parallelism: 2\n    steps:\n{steps}");
    let p = Project::new(&config(&jobs, "  ci:\n    jobs: [test]\n"));
    for (i, seconds) in [9, 1, 1, 1, 1, 5, 2].iter().enumerate() {
        p.write(&format!("tests/t{i}.txt"), &seconds.to_string());
    }
    p.commit();
    let all: Vec<String> = (0..7).map(|i| format!("t{i}.txt")).collect();
    // First run: no timings yet, so the split falls back to names.
    let first = p.execute(&[]);
    first.assert_code(0).assert_nothing_left();
    assert_eq!(ran(&first.stdout), all, "{}", first.stdout);
    first.assert_stdout("Falling back to weighting by name");
    // Second run: the stored results give timings; still every test exactly once.
    let second = p.execute(&[]);
    second.assert_code(0);
    assert_eq!(ran(&second.stdout), all, "{}", second.stdout);
    assert!(
        !second.stdout.contains("Falling back"),
        "the timings of the first run were used\n{}",
        second.stdout
    );
}

#[test]
fn a_crashed_service_shows_its_last_lines() {
    require_docker!();
    let jobs = format!(
        "  build:\n    docker:\n      - image: {BUSYBOX}\n      - image: {BUSYBOX}\n        name: db\n        command: [sh, -c, 'echo \"db-says-$((6*7))\"; exit 4']\n    steps:\n      - run: sleep 2\n"
    );
    let p = Project::new(&config(&jobs, "  ci:\n    jobs: [build]\n"));
    p.execute(&[])
        .assert_code(0)
        .assert_stdout("last lines of service db (exited with code 4):")
        .assert_stdout("  db-says-42")
        .assert_nothing_left();
}

#[test]
fn ctrl_c_stops_every_running_job_and_removes_their_containers() {
    require_docker!();
    use std::io::{BufRead, BufReader};
    use std::time::{Duration, Instant};
    let jobs = [
        job("a", r#"echo "started-$((10+1))"; sleep 300"#),
        job("b", r#"echo "started-$((10+2))"; sleep 300"#),
        job("c", "echo never"),
    ]
    .concat();
    let workflows = "  ci:\n    jobs:\n      - a\n      - b\n      - c: {requires: [a, b]}\n";
    let p = Project::new(&config(&jobs, workflows));
    let (mut child, owner) = p.spawn(&["-j", "4"]);
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut started = 0;
    let mut seen = String::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        seen.push_str(&line);
        seen.push('\n');
        if line.ends_with("started-11") || line.ends_with("started-12") {
            started += 1;
            if started == 2 {
                break;
            }
        }
    }
    assert_eq!(started, 2, "both jobs did not start:\n{seen}");
    // a and b run; c (which requires both) is warmed: its container starts and waits.
    assert!(super::execute::containers_of(owner).len() >= 2);
    // SAFETY: sending SIGINT to our own child process.
    assert_eq!(
        unsafe { libc::kill(owner.pid as libc::pid_t, libc::SIGINT) },
        0
    );
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
        !rest
            .iter()
            .any(|l| l.ends_with("never") && !l.contains("echo"))
    );
    assert_eq!(super::execute::containers_of(owner), Vec::<String>::new());
    let record = &p.runs()[0];
    assert_eq!(status_of(record, "a"), "canceled");
    assert_eq!(status_of(record, "c"), "canceled");
}

fn status_of<'a>(run: &'a Value, job: &str) -> &'a str {
    status(run, job)
}
