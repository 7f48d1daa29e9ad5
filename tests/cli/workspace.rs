//! Workspaces against the real Docker daemon. Whole workflow runs (persist in one job, attach
//! in the next) need the scheduler; until then, what a single job does with the two steps.

use crate::execute::{BUSYBOX, Project, config, docker_ready, job};

#[test]
fn a_single_job_without_a_workflow_run_fails_attach_with_a_hint() {
    if !docker_ready() {
        return;
    }
    let steps = "      - attach_workspace: {at: /tmp/ws}\n      - run: echo never-runs\n";
    let p = Project::new(&config(&[job("deploy", BUSYBOX, steps)]));
    let run = p.execute(&["deploy"]);
    run.assert_code(1)
        .assert_stdout("attach_workspace: this job has no workspace")
        .assert_stdout("Run the workflow: localci execute --workflow <name>")
        .assert_nothing_left();
    assert!(
        !run.stdout.lines().any(|l| l.trim() == "never-runs"),
        "the steps after a failed attach are skipped"
    );
}
