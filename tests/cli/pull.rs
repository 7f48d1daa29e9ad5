//! `localci execute` pulling images from a real registry: Debian's `docker-registry` (the Go
//! "distribution" registry) runs as a process on 127.0.0.1 with a fresh storage folder per
//! test, optionally behind htpasswd (bcrypt) auth. The Docker daemon treats 127.0.0.0/8
//! registries as insecure, so push and pull go over plain HTTP with no network at all. A
//! guard removes the pushed tags and the containers using them, and stops the registry.
//! Without the registry, `htpasswd` (apache2-utils) or `script` (bsdutils) these tests fail in
//! CI (`CI=true`) and are skipped elsewhere; `LOCALCI_TEST_REGISTRY` names another binary.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use regex::Regex;

use crate::execute::{BUSYBOX, Project, Run, config, docker_ready, job};

/// The programs these tests run besides Docker.
pub(crate) struct Tools {
    registry: PathBuf,
    htpasswd: PathBuf,
    script: PathBuf,
}

fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// The tools, or `None` (test skipped) outside CI; in CI their absence fails the test.
pub(crate) fn tools() -> Option<Tools> {
    if !docker_ready() {
        return None;
    }
    let registry = match std::env::var_os("LOCALCI_TEST_REGISTRY") {
        Some(p) => Some(PathBuf::from(p)).filter(|p| p.is_file()),
        None => on_path("docker-registry").or_else(|| on_path("registry")),
    };
    let (htpasswd, script) = (on_path("htpasswd"), on_path("script"));
    if let (Some(registry), Some(htpasswd), Some(script)) = (&registry, &htpasswd, &script) {
        return Some(Tools {
            registry: registry.clone(),
            htpasswd: htpasswd.clone(),
            script: script.clone(),
        });
    }
    let missing: Vec<&str> = [
        (registry.is_none(), "docker-registry"),
        (htpasswd.is_none(), "htpasswd (apache2-utils)"),
        (script.is_none(), "script (bsdutils)"),
    ]
    .into_iter()
    .filter_map(|(absent, name)| absent.then_some(name))
    .collect();
    let why = format!(
        "{} not found; install with `apt-get install docker-registry apache2-utils bsdutils`",
        missing.join(", ")
    );
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("registry tests must run in CI: {why}");
    }
    eprintln!("skipping a registry test: {why}");
    None
}

macro_rules! require_tools {
    () => {
        match tools() {
            Some(tools) => tools,
            None => return,
        }
    };
}

#[track_caller]
fn docker(args: &[&str]) -> String {
    let out = Command::new("docker").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "docker {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn image_present(image: &str) -> bool {
    Command::new("docker")
        .args(["image", "inspect", image])
        .output()
        .unwrap()
        .status
        .success()
}

/// A registry process on 127.0.0.1 with its own storage, config and Docker client config.
pub(crate) struct Registry {
    process: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
    /// `user:password` when the registry wants them.
    login: Option<(String, String)>,
    /// Every name pushed, to untag (and so delete) at the end.
    pushed: Vec<String>,
}

impl Registry {
    pub(crate) fn start(tools: &Tools, login: Option<(&str, &str)>) -> Registry {
        let dir = tempfile::tempdir().unwrap();
        let mut auth = String::new();
        if let Some((user, password)) = login {
            let file = dir.path().join("htpasswd");
            let ok = Command::new(&tools.htpasswd)
                .args(["-Bbc"])
                .arg(&file)
                .args([user, password])
                .output()
                .unwrap()
                .status
                .success();
            assert!(ok, "htpasswd -Bbc failed");
            auth = format!(
                "auth:\n  htpasswd:\n    realm: localci-test\n    path: {}\n",
                file.display()
            );
        }
        let mut registry = Registry {
            process: None,
            port: 0,
            dir,
            login: login.map(|(u, p)| (u.to_string(), p.to_string())),
            pushed: Vec::new(),
        };
        // A free port can be taken between our probe and the registry's bind: retry.
        for _ in 0..5 {
            registry.port = free_port();
            let config = registry.dir.path().join("config.yml");
            std::fs::write(
                &config,
                format!(
                    "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n\
                     storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
                     http:\n  addr: 127.0.0.1:{}\n  secret: localci-test-secret\n{auth}",
                    registry.dir.path().join("storage").display(),
                    registry.port
                ),
            )
            .unwrap();
            let log = std::fs::File::create(registry.dir.path().join("registry.log")).unwrap();
            let child = Command::new(&tools.registry)
                .arg("serve")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .expect("the registry starts");
            registry.process = Some(child);
            if registry.wait_ready() {
                return registry;
            }
            registry.stop();
        }
        panic!("the registry did not start: {}", registry.log());
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// Whether `/v2/` answers (200, or 401 behind auth) before the process exits.
    fn wait_ready(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            let child = self.process.as_mut().expect("started");
            if child.try_wait().unwrap().is_some() {
                return false;
            }
            if let Some(status) = http_status(self.port, "/v2/") {
                return status == 200 || status == 401;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `127.0.0.1:PORT/<path>`.
    fn name(&self, path: &str) -> String {
        format!("{}/{path}", self.address())
    }

    /// `docker` with a client config of its own, so a login never touches the user's.
    fn docker(&self, args: &[&str]) -> String {
        let config = self.dir.path().join("docker-config");
        let mut all = vec!["--config", config.to_str().unwrap()];
        all.extend_from_slice(args);
        docker(&all)
    }

    /// Pushes local image `source` as `<registry>/<path>`, then removes that tag locally, so
    /// only a pull can bring it back. Returns the registry's name for it.
    pub(crate) fn push(&mut self, source: &str, path: &str) -> String {
        let name = self.name(path);
        self.pushed.push(name.clone());
        if let Some((user, password)) = self.login.clone() {
            let config = self.dir.path().join("docker-config");
            let mut login = Command::new("docker")
                .arg("--config")
                .arg(&config)
                .args(["login", "-u", &user, "--password-stdin", &self.address()])
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            login
                .stdin
                .take()
                .unwrap()
                .write_all(password.as_bytes())
                .unwrap();
            let out = login.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "docker login: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        self.docker(&["tag", source, &name]);
        self.docker(&["push", "-q", &name]);
        self.docker(&["rmi", &name]);
        assert!(!image_present(&name), "{name} is still present locally");
        name
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.process.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        // By exact image name: an `ancestor=` filter would also match every other container
        // of the same image id (all of busybox's, in parallel tests too).
        let out = Command::new("docker")
            .args(["ps", "-a", "--format", "{{.ID}} {{.Image}}"])
            .output();
        if let Ok(out) = out {
            for line in String::from_utf8_lossy(&out.stdout).lines() {
                if let Some((id, image)) = line.split_once(' ')
                    && self.pushed.iter().any(|name| name == image)
                {
                    let _ = Command::new("docker").args(["rm", "-f", id]).output();
                }
            }
        }
        for name in &self.pushed {
            // A finished job's container may still be on its way out (the daemon removes it
            // after localci exits); the image goes once it is gone.
            for _ in 0..50 {
                let done = Command::new("docker")
                    .args(["rmi", name])
                    .output()
                    .map_or(true, |o| {
                        o.status.success()
                            || String::from_utf8_lossy(&o.stderr).contains("No such image")
                    });
                if done {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
        }
        self.stop();
    }
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// The status code of a plain HTTP GET, `None` while nothing answers.
fn http_status(port: u16, path: &str) -> Option<u16> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

/// A local image on top of busybox with two layers of fresh random bytes (6 and 4 MiB), so a
/// pull really downloads and extracts them.
fn build_layered(name: &str) {
    let mut build = Command::new("docker")
        .env("DOCKER_BUILDKIT", "0")
        .args([
            "build",
            "-q",
            "--pull=false",
            "--network",
            "none",
            "-t",
            name,
            "-",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let dockerfile = format!(
        "FROM {BUSYBOX}\n\
         RUN dd if=/dev/urandom of=/blob1 bs=1024 count=6144\n\
         RUN dd if=/dev/urandom of=/blob2 bs=1024 count=4096\n"
    );
    build
        .stdin
        .take()
        .unwrap()
        .write_all(dockerfile.as_bytes())
        .unwrap();
    let out = build.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "docker build: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The line after `Pulling image <image>` must be the summary: nothing drawn in between.
#[track_caller]
fn assert_clean_pull(run: &Run, image: &str) {
    let lines: Vec<&str> = run.stdout.lines().collect();
    let at = lines
        .iter()
        .position(|l| *l == format!("Pulling image {image}"))
        .unwrap_or_else(|| panic!("no `Pulling image {image}` line:\n{}", run.stdout));
    assert!(
        lines[at + 1].starts_with(&format!("Pulled {image} in ")),
        "after the pull:\n{}",
        run.stdout
    );
    for text in [&run.stdout, &run.stderr] {
        assert!(
            !text.contains('\u{1b}'),
            "escape codes without a terminal:\n{text}"
        );
        assert!(
            !text.contains("Downloading"),
            "layer progress without a terminal:\n{text}"
        );
        assert!(
            !text.contains("Pull complete"),
            "layer progress without a terminal:\n{text}"
        );
    }
}

#[test]
fn a_missing_image_is_pulled_from_a_registry_and_a_failed_pull_exits_3() {
    let tools = require_tools!();
    let mut registry = Registry::start(&tools, None);
    let image = registry.push(BUSYBOX, "localci-test/busybox:latest");
    let absent = registry.name("localci-test/no-such-image:1");
    let p = Project::new(&config(&[
        job("build", &image, "      - run: echo pulled and ran\n"),
        job("absent", &absent, "      - run: echo never\n"),
    ]));
    let run = p.execute(&["build"]);
    run.assert_code(0)
        .assert_stdout(&format!("Pulling image {image}\n"))
        .assert_stdout("\npulled and ran\n")
        .assert_nothing_left();
    assert_clean_pull(&run, &image);
    assert!(image_present(&image), "the pull left no local {image}");
    // Present now: used as is, no second pull.
    p.execute(&["build"])
        .assert_code(0)
        .assert_stdout(&format!("Using local image {image}\n"));

    p.execute(&["absent"])
        .assert_code(3)
        .assert_stderr(&format!("cannot use image {absent}: "))
        .assert_stderr("manifest unknown")
        // See: issue 10 (an image no registry has is built or mapped, not `docker pull`ed).
        .assert_stderr(&format!(
            "no registry has it; if you build it yourself: docker build -t {absent} <folder>"
        ))
        .assert_stderr(&format!("--image-map {absent}=<local image>"))
        .assert_nothing_left();

    // Offline: nothing listens at the registry's address any more.
    registry.stop();
    p.execute(&["absent"])
        .assert_code(3)
        .assert_stderr(&format!("cannot use image {absent}: "))
        .assert_stderr("connection refused")
        .assert_stderr(&format!(
            "{} cannot be reached;",
            absent.split('/').next().unwrap()
        ))
        .assert_stderr(&format!("--image-map {absent}=<local image>"));
}

#[test]
fn auth_credentials_with_variables_are_honoured() {
    let tools = require_tools!();
    let mut registry = Registry::start(&tools, Some(("ci-puller", "s3cret-pw")));
    let image = registry.push(BUSYBOX, "localci-test/busybox:latest");
    let steps = "      - run: echo pulled with auth\n";
    let with_auth = format!(
        "  private:\n    docker:\n      - image: {image}\n        auth:\n          username: $REG_USER\n          password: ${{REG_PASS}}\n    steps:\n{steps}"
    );
    let p = Project::new(&config(&[with_auth, job("anonymous", &image, steps)]));

    p.execute(&[
        "private",
        "-e",
        "REG_USER=ci-puller",
        "-e",
        "REG_PASS=wrong",
    ])
    .assert_code(3)
    .assert_stderr(&format!("cannot use image {image}: "))
    .assert_stderr("unauthorized")
    .assert_stderr("the registry refused the image's `auth` credentials")
    .assert_stderr(&format!("--image-map {image}=<local image>"))
    .assert_nothing_left();
    p.execute(&["private", "-e", "REG_USER=ci-puller"])
        .assert_code(3)
        .assert_stderr("$REG_PASS used there is not set: give it with -e");
    p.execute(&["anonymous"])
        .assert_code(3)
        .assert_stderr(&format!("cannot use image {image}: "))
        .assert_stderr("the registry wants credentials");
    assert!(!image_present(&image), "a refused pull left {image}");

    let run = p.execute(&[
        "private",
        "-e",
        "REG_USER=ci-puller",
        "-e",
        "REG_PASS=s3cret-pw",
    ]);
    run.assert_code(0)
        .assert_stdout("\npulled with auth\n")
        .assert_nothing_left();
    assert_clean_pull(&run, &image);
}

/// Replays what a terminal shows: printable text with deferred wrapping at `width`, CR, LF,
/// and the cursor moves and line clears indicatif uses (colors are ignored).
struct Screen {
    lines: Vec<Vec<char>>,
    row: usize,
    col: usize,
    width: usize,
}

impl Screen {
    fn new(width: usize) -> Screen {
        Screen {
            lines: vec![Vec::new()],
            row: 0,
            col: 0,
            width,
        }
    }

    fn line(&mut self) -> &mut Vec<char> {
        while self.lines.len() <= self.row {
            self.lines.push(Vec::new());
        }
        &mut self.lines[self.row]
    }

    fn feed(&mut self, text: &str) {
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\r' => self.col = 0,
                '\n' => {
                    self.row += 1;
                    self.col = 0;
                }
                '\u{1b}' if chars.peek() == Some(&'[') => {
                    chars.next();
                    let mut params = String::new();
                    let mut last = ' ';
                    for c in chars.by_ref() {
                        if c.is_ascii_digit() || c == ';' || c == '?' {
                            params.push(c);
                        } else {
                            last = c;
                            break;
                        }
                    }
                    self.control(&params, last);
                }
                c => {
                    if self.col >= self.width {
                        self.row += 1;
                        self.col = 0;
                    }
                    let col = self.col;
                    let line = self.line();
                    if line.len() <= col {
                        line.resize(col + 1, ' ');
                    }
                    line[col] = c;
                    self.col += 1;
                }
            }
        }
    }

    fn control(&mut self, params: &str, command: char) {
        let n = params.parse::<usize>().unwrap_or(1).max(1);
        match command {
            'A' => self.row = self.row.saturating_sub(n),
            'B' => self.row += n,
            'K' => {
                let col = self.col.min(self.width);
                let line = self.line();
                match params {
                    "2" => line.clear(),
                    "1" => line.iter_mut().take(col + 1).for_each(|c| *c = ' '),
                    _ => line.truncate(col),
                }
            }
            _ => {}
        }
        self.col = self.col.min(self.width - 1);
    }

    fn text(&self) -> Vec<String> {
        let mut lines: Vec<String> = self
            .lines
            .iter()
            .map(|l| l.iter().collect::<String>().trim_end().to_string())
            .collect();
        while lines.last().is_some_and(String::is_empty) {
            lines.pop();
        }
        lines
    }
}

#[test]
fn pull_progress_is_one_line_per_layer_on_a_terminal_only() {
    let tools = require_tools!();
    let mut registry = Registry::start(&tools, None);
    let local = format!("localci-test/layered-{}:1", registry.port);
    build_layered(&local);
    let image = registry.push(&local, "localci-test/layered:1");
    docker(&["rmi", &local]);
    let p = Project::new(&config(&[job(
        "build",
        &image,
        "      - run: echo layered\n",
    )]));

    // Without a terminal: no progress at all, the lines untouched.
    let run = p.execute(&["build"]);
    run.assert_code(0).assert_stdout("\nlayered\n");
    assert_clean_pull(&run, &image);

    // On a terminal (a pseudo-terminal from `script`, 120 columns). The image goes once the
    // engine has removed the primary (it does so after localci exits).
    run.assert_nothing_left();
    docker(&["rmi", &image]);
    let cache = tempfile::tempdir().unwrap();
    let line = format!(
        "stty cols 120 rows 50; exec '{}' execute build --cache-dir '{}'",
        env!("CARGO_BIN_EXE_localci"),
        cache.path().display()
    );
    let out = Command::new(&tools.script)
        .args(["-qec", &line, "/dev/null"])
        .current_dir(p.path())
        .env_remove("LOCALCI_CACHE_DIR")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let raw = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(0), "under script:\n{raw}");

    let layer_line = Regex::new(r"^[0-9a-f]{12} \S").unwrap();
    let mut screen = Screen::new(120);
    let mut most_layers = 0;
    let mut seen_statuses = std::collections::BTreeSet::new();
    // Before each redraw (a cursor move up) the previous frame is whole on screen.
    let redraw = Regex::new(r"\x1b\[\d*A").unwrap();
    let mut cuts: Vec<usize> = redraw.find_iter(&raw).map(|m| m.start()).collect();
    cuts.push(raw.len());
    let mut from = 0;
    for cut in cuts {
        screen.feed(&raw[from..cut]);
        from = cut;
        let text = screen.text();
        let Some(at) = text
            .iter()
            .position(|l| *l == format!("Pulling image {image}"))
        else {
            continue;
        };
        let layers: Vec<&String> = text[at + 1..]
            .iter()
            .take_while(|l| layer_line.is_match(l))
            .collect();
        for l in &layers {
            let status = l[13..].split("  ").next().unwrap().trim();
            // A finished layer keeps only its status, no stale bar.
            if ["Already exists", "Pull complete"].contains(&status) {
                assert_eq!(&l[13..], status, "frame:\n{text:#?}");
            }
            seen_statuses.insert(status.to_string());
        }
        let mut ids: Vec<&str> = layers.iter().map(|l| &l[..12]).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), layers.len(), "a layer on two lines:\n{text:#?}");
        most_layers = most_layers.max(layers.len());
    }
    // busybox's layer (already here) and the two new ones, each on its own line.
    assert_eq!(most_layers, 3, "layer lines:\n{raw}");
    for status in ["Already exists", "Downloading", "Pull complete"] {
        assert!(
            seen_statuses.iter().any(|s| s.starts_with(status)),
            "no `{status}` among {seen_statuses:?}"
        );
    }
    assert!(
        Regex::new(r"Downloading +[=> ]+ [0-9.]+ [KM]iB/[46].00 MiB")
            .unwrap()
            .is_match(&raw),
        "no byte bar:\n{raw}"
    );
    // What stays on screen: the same lines as without a terminal, no layer line left.
    let text = screen.text();
    let at = text
        .iter()
        .position(|l| *l == format!("Pulling image {image}"))
        .unwrap_or_else(|| panic!("screen:\n{text:#?}"));
    assert!(
        text[at + 1].starts_with(&format!("Pulled {image} in ")),
        "screen:\n{text:#?}"
    );
    assert!(text.iter().any(|l| l == "layered"), "screen:\n{text:#?}");
    assert!(
        text.last()
            .unwrap()
            .starts_with("Success! Job \"build\" passed"),
        "screen:\n{text:#?}"
    );
    assert!(
        !text.iter().any(|l| layer_line.is_match(l)),
        "a layer line left on screen:\n{text:#?}"
    );
}

/// The checks of [`Screen`] itself, so a wrong replay cannot hide a garbled display.
#[test]
fn the_screen_replays_wrapping_and_redraws() {
    // A line filling the width leaves the cursor on it until the next character.
    let mut s = Screen::new(4);
    s.feed("ab\nabcd\u{1b}[1A\r\u{1b}[2Kxy");
    assert_eq!(s.text(), vec!["xy", "abcd"]);
    let mut s = Screen::new(4);
    s.feed("one\nabcdef\r\u{1b}[1A\u{1b}[2K12\n");
    assert_eq!(s.text(), vec!["one", "12", "ef"]);
}

/// See: issue 10. Every missing image of a job is reported in one error before any container
/// starts, each with its own hint; needs no registry (Docker Hub is not reachable here, and a
/// name that is no reference is never pulled).
#[test]
fn every_missing_image_of_a_job_is_reported_at_once() {
    if !docker_ready() {
        return;
    }
    let two_missing = format!(
        "  two:\n    docker:\n      - image: {BUSYBOX}\n      - image: localci-test/missing-a:1\n      - image: Not/A-Reference\n    steps:\n      - run: echo never\n"
    );
    let p = Project::new(&config(&[two_missing]));
    let run = p.execute(&["two"]);
    run.assert_code(3)
        .assert_stderr("2 images of the run cannot be used:")
        .assert_nothing_left();
    // The renderer indents the lines under `error: `.
    let lines: Vec<&str> = run.stderr.lines().map(str::trim).collect();
    for expected in [
        "localci-test/missing-a:1: it is missing too (not pulled, since the run cannot start)",
        "localci pulls it once the other images are fixed; or run a local image in its place: --image-map localci-test/missing-a:1=<local image>",
        "Not/A-Reference: it is missing, and it is not a valid image reference (repository names are lowercase letters, digits and . _ - separated by /)",
        "fix the image name in the config; or run a local image in its place: --image-map Not/A-Reference=<local image>",
        "help: nothing was started; fix each image as its line says",
    ] {
        assert!(
            lines.contains(&expected),
            "no line {expected:?} in:\n{}",
            run.stderr
        );
    }
    assert!(
        !run.stdout.contains("Pulling image"),
        "nothing is pulled for a job that cannot start:\n{}",
        run.stdout
    );
}
