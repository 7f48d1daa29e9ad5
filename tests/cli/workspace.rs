//! Workspaces against the real Docker daemon: persist in one job, attach in the jobs after it
//! (a whole workflow run), and what a single job does with the two steps.

use crate::execute::{BUSYBOX, Project, config, docker_ready, job};

#[test]
fn a_single_job_whose_workflow_never_ran_stops_with_a_hint() {
    if !docker_ready() {
        return;
    }
    let yaml = format!(
        "version: 2\njobs:\n{}{}workflows:\n  version: 2\n  ci:\n    jobs:\n      - build\n      - deploy: {{requires: [build]}}\n",
        job("build", BUSYBOX, "      - run: echo built\n"),
        job(
            "deploy",
            BUSYBOX,
            "      - attach_workspace: {at: /tmp/ws}\n      - run: echo never-runs\n"
        ),
    );
    let p = Project::new(&yaml);
    p.execute(&["deploy"])
        .assert_code(2)
        .assert_stderr("workflow `ci` has not run here yet")
        .assert_stderr("localci execute --workflow ci");
}

#[test]
fn a_job_without_upstream_jobs_attaches_an_empty_workspace() {
    if !docker_ready() {
        return;
    }
    let steps = "      - attach_workspace: {at: /tmp/ws}\n      - run: ls /tmp/ws && echo \"attached-$((1+1))\"\n";
    let p = Project::new(&config(&[job("deploy", BUSYBOX, steps)]));
    p.execute(&["deploy"])
        .assert_code(0)
        .assert_stdout("No upstream jobs")
        .assert_stdout("attached-2")
        .assert_nothing_left();
}

/// A 2.0 config with workflow `ci` from the job definitions and workflow entries given.
fn workflow(jobs: &[String], entries: &str) -> String {
    format!(
        "version: 2\njobs:\n{}workflows:\n  version: 2\n  ci:\n    jobs:\n{entries}",
        jobs.concat()
    )
}

#[test]
fn layers_flow_down_the_workflow_and_a_single_job_reuses_the_latest_run() {
    if !docker_ready() {
        return;
    }
    let jobs = [
        job(
            "build",
            BUSYBOX,
            "      - run: mkdir -p dist/sub && echo one > dist/a.txt && echo two > dist/sub/b.txt && echo skip > dist/c.log\n      - persist_to_workspace: {root: dist, paths: ['*.txt', sub]}\n",
        ),
        job(
            "extra",
            BUSYBOX,
            "      - attach_workspace: {at: /ws}\n      - run: mkdir -p out && echo three > out/extra.txt\n      - persist_to_workspace: {root: out, paths: [extra.txt]}\n",
        ),
        job(
            "deploy",
            BUSYBOX,
            "      - attach_workspace: {at: /ws}\n      - run: echo \"got-$(cat /ws/a.txt)-$(cat /ws/sub/b.txt)-$(cat /ws/extra.txt)\"; test ! -e /ws/c.log\n",
        ),
    ];
    let entries =
        "      - build\n      - extra: {requires: [build]}\n      - deploy: {requires: [extra]}\n";
    let p = Project::new(&workflow(&jobs, entries));
    p.execute(&["--workflow", "ci"])
        .assert_code(0)
        .assert_stdout("got-one-two-three")
        .assert_nothing_left();
    let first = p.runs()[0]["id"].as_str().unwrap().to_string();
    // deploy alone attaches what the latest workflow run stored, and says which run.
    p.execute(&["deploy"])
        .assert_code(0)
        .assert_stdout("got-one-two-three")
        .assert_stdout(&first);
}

#[test]
fn two_unordered_jobs_writing_the_same_file_is_a_conflict() {
    if !docker_ready() {
        return;
    }
    let writer = |name: &str| {
        job(
            name,
            BUSYBOX,
            &format!(
                "      - run: mkdir -p w && echo {name} > w/same.txt\n      - persist_to_workspace: {{root: w, paths: [same.txt]}}\n"
            ),
        )
    };
    let jobs = [
        writer("left"),
        writer("right"),
        job(
            "join",
            BUSYBOX,
            "      - attach_workspace: {at: /ws}\n      - run: echo never-joined\n",
        ),
    ];
    let entries = "      - left\n      - right\n      - join: {requires: [left, right]}\n";
    let p = Project::new(&workflow(&jobs, entries));
    let run = p.execute(&["--workflow", "ci"]);
    run.assert_code(1)
        .assert_stdout("same.txt")
        .assert_nothing_left();
    assert!(!run.stdout.lines().any(|l| l.ends_with("| never-joined")));
    assert_eq!(p.runs()[0]["jobs"]["join"]["status"], "failed");
}
