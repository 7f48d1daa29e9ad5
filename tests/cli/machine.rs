//! `machine:` jobs (issue 10): they run in the local image named by `--machine-image` or the
//! per-user file, as user `circleci` with sudo, in `/home/circleci/project`, with the engine's
//! Docker socket. The image is `localci-test/machine:latest` (`bash tests/images/build.sh
//! machine`): Debian with sudo, the docker CLI and docker-compose, and no `circleci` user, so
//! localci has to create it.

use std::process::Command;
use std::sync::OnceLock;

use crate::execute::{BUSYBOX, Project, docker_lines, docker_ready};

const MACHINE: &str = "localci-test/machine:latest";

/// Whether the machine test image is there; in CI its absence fails the test.
fn machine_ready() -> bool {
    if !docker_ready() {
        return false;
    }
    static READY: OnceLock<bool> = OnceLock::new();
    let ready = *READY.get_or_init(|| {
        Command::new("docker")
            .args(["image", "inspect", MACHINE])
            .output()
            .is_ok_and(|o| o.status.success())
    });
    if !ready {
        let why =
            format!("{MACHINE} is missing; build it with `bash tests/images/build.sh machine`");
        assert!(!std::env::var("CI").is_ok_and(|v| v == "true"), "{why}");
        eprintln!("skipping a machine test: {why}");
    }
    ready
}

/// Removes the image a job built, when the test ends (passed or not).
struct RemoveImage(String);

impl Drop for RemoveImage {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["image", "rm", "-f", &self.0])
            .output();
    }
}

fn machine_config(image: &str, steps: &str) -> String {
    format!(
        "version: 2.1\njobs:\n  build:\n    machine:\n      image: {image}\n    steps:\n{steps}workflows:\n  main:\n    jobs: [build]\n"
    )
}

#[test]
fn a_machine_job_runs_as_circleci_with_sudo_and_the_engines_docker() {
    if !machine_ready() {
        return;
    }
    let built = format!("localci-test/machine-built:{}", std::process::id());
    let _remove = RemoveImage(built.clone());
    let steps = format!(
        r#"      - checkout
      - run: echo "user=$(whoami) dir=$(pwd) home=$HOME"
      - run: sudo -n true && echo "sudo=$(sudo -n whoami)"
      - run: echo "docker_host=${{DOCKER_HOST:-unset}}"
      - run: |
          printf 'FROM {BUSYBOX}\nCMD ["echo", "from the job image"]\n' > Dockerfile
          docker build --network none -t {built} . > build.log
          docker run --rm --network none {built} | sed 's/^/ran: /'
      - run: |
          docker compose version | sed 's/^/compose: /'
"#
    );
    let p = Project::new(&machine_config("ubuntu-2204:2024.01.1", &steps));
    let run = p.execute(&["build", "--machine-image", MACHINE]);
    run.assert_code(0)
        .assert_stdout("(in place of ubuntu-2204:2024.01.1)")
        .assert_stdout("\nuser=circleci dir=/home/circleci/project home=/home/circleci\n")
        .assert_stdout("\nsudo=root\n")
        .assert_stdout("\ndocker_host=unset\n")
        .assert_stdout("\nran: from the job image\n")
        .assert_stdout("\ncompose: docker-compose version 1.")
        .assert_nothing_left();
    assert!(!run.stdout.contains("Warning:"), "{}", run.stdout);
    // The image the job built is the job's (the engine's), not localci's: it is still there.
    assert_eq!(
        docker_lines(&["image", "ls", "-q", &built]).len(),
        1,
        "the job's image"
    );
}

#[test]
fn the_per_user_file_maps_machine_images_and_the_flag_wins() {
    if !machine_ready() {
        return;
    }
    let steps = "      - run: echo \"user=$(id -un)\"; grep -c '^ID=debian$' /etc/os-release | sed 's/^/debian=/'\n";
    let p = Project::new(&machine_config("ubuntu-2204:current", steps));
    std::fs::write(
        p.user_config_path(),
        format!("machine:\n  images:\n    ubuntu-2204: {MACHINE}\n"),
    )
    .unwrap();
    p.execute(&["build"])
        .assert_code(0)
        .assert_stdout(&format!(
            "Using local image {MACHINE} (in place of ubuntu-2204:current)"
        ))
        .assert_stdout("\nuser=circleci\ndebian=1\n")
        .assert_nothing_left();
    // The flag wins over the file (whose image does not exist: it would have to be pulled).
    std::fs::write(
        p.user_config_path(),
        "machine:\n  images:\n    \"*\": localci-test/no-such-machine:latest\n",
    )
    .unwrap();
    p.execute(&["build", "--machine-image", MACHINE])
        .assert_code(0)
        .assert_stdout(&format!(
            "Using local image {MACHINE} (in place of ubuntu-2204:current)"
        ))
        .assert_nothing_left();
    // A machine job's resource_class is a VM size: `large` is 4 CPUs and 15 GB (--cpus wins:
    // this machine has 2).
    let steps = "      - run: |\n          m=$(cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max)\n          echo \"memory=$m\"\n";
    p.write(
        ".circleci/config.yml",
        &machine_config("ubuntu-2204:current", steps)
            .replace("    steps:", "    resource_class: large\n    steps:"),
    );
    p.execute(&[
        "build",
        "--machine-image",
        MACHINE,
        "--resource-class-limits",
        "--cpus",
        "1",
    ])
    .assert_code(0)
    .assert_stdout(&format!("\nmemory={}\n", 15_u64 << 30))
    .assert_nothing_left();
}

#[test]
fn a_machine_job_without_an_image_exits_2_with_the_hint() {
    let p = Project::new(&machine_config(
        "ubuntu-2204:2024.01.1",
        "      - run: echo never\n",
    ));
    let run = p.execute(&["build"]);
    run.assert_code(2)
        .assert_stderr("job `build` is a machine job (image `ubuntu-2204:2024.01.1`) and no local image is set for it")
        .assert_stderr("--machine-image IMAGE")
        .assert_stderr(&p.user_config_path().display().to_string())
        .assert_stderr("\"ubuntu-2204:2024.01.1\": IMAGE");
    assert!(!run.stdout.contains("never"), "{}", run.stdout);
    // The workflow too, before anything starts.
    p.execute(&[])
        .assert_code(2)
        .assert_stderr("no local image");
    // `machine: true` is CircleCI's default image.
    p.write(
        ".circleci/config.yml",
        "version: 2\njobs:\n  build:\n    machine: true\n    steps: [checkout]\n",
    );
    p.execute(&["build"])
        .assert_code(2)
        .assert_stderr("(image `default`)");
    // A broken per-user file is an error at its line and column.
    std::fs::write(
        p.user_config_path(),
        "machine:\n  images:\n    default: [x]\n",
    )
    .unwrap();
    p.execute(&["build", "--machine-image", MACHINE])
        .assert_code(2)
        .assert_stderr(&format!(
            "{}:3:14: machine image `default` must map to a local image name",
            p.user_config_path().display()
        ));
}

#[test]
fn plan_and_list_say_where_machine_jobs_run() {
    let p = Project::new(&machine_config(
        "ubuntu-2204:2024.01.1",
        "      - checkout\n",
    ));
    let show = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_localci"))
            .current_dir(p.path())
            .args(args)
            .env("LOCALCI_CONFIG", p.user_config_path())
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    let plan = show(&["plan"]);
    assert!(
        plan.contains(
            "  0  build (machine ubuntu-2204:2024.01.1: no local image, give --machine-image)\n"
        ),
        "{plan}"
    );
    std::fs::write(
        p.user_config_path(),
        "machine:\n  images:\n    \"*\": my/machine:latest\n",
    )
    .unwrap();
    let list = show(&["list"]);
    assert!(
        list.contains("  build  machine ubuntu-2204:2024.01.1 runs in my/machine:latest\n"),
        "{list}"
    );
}
