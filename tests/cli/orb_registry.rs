//! Registry orbs fetched from the orb registry (see: issue 8, "Orbs that never block"), against a
//! fake registry on 127.0.0.1 that answers the `circleci orb source` query and checks it. The
//! real network is never used: `.cargo/config.toml` sets LOCALCI_OFFLINE=1 for every test, and
//! these tests lift it only with LOCALCI_ORB_REGISTRY pointing at their own server.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::execute::{Project, docker_ready};

/// The orb the fake registry serves.
const ORB: &str = "version: 2.1
description: Greets, from the registry
commands:
  hello:
    parameters:
      to: {type: string, default: world}
    steps:
      - run:
          name: Say hello
          command: echo \"hello, << parameters.to >>, from the registry orb\"
jobs:
  greet:
    docker:
      - image: localci-test/busybox:latest
    steps:
      - hello: {to: tester}
";

/// A registry that answers each connection with the next reply and records what it was asked.
struct FakeRegistry {
    url: String,
    asked: Arc<Mutex<Vec<String>>>,
    thread: Option<JoinHandle<()>>,
}

enum Reply {
    /// The orb, as this exact version.
    Orb(&'static str),
    NotFound,
    /// A body far larger than any orb.
    Huge,
}

impl FakeRegistry {
    fn start(replies: Vec<Reply>) -> FakeRegistry {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/graphql-unstable", listener.local_addr().unwrap());
        let asked = Arc::new(Mutex::new(Vec::new()));
        let log = asked.clone();
        let thread = std::thread::spawn(move || {
            for reply in replies {
                let (stream, _) = listener.accept().unwrap();
                answer(stream, &reply, &log);
            }
        });
        FakeRegistry {
            url,
            asked,
            thread: Some(thread),
        }
    }

    /// Waits until every reply was given (the server is gone afterwards).
    fn finish(&mut self) -> Vec<String> {
        self.thread.take().unwrap().join().unwrap();
        self.asked.lock().unwrap().clone()
    }
}

/// Reads one request, checks that it is the orb source query, and answers it.
fn answer(mut stream: impl Read + Write, reply: &Reply, log: &Mutex<Vec<String>>) {
    let mut reader = BufReader::new(&mut stream);
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    assert_eq!(line, "POST /graphql-unstable HTTP/1.1\r\n");
    let mut length = 0;
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).unwrap();
        if header == "\r\n" {
            break;
        }
        if let Some(v) = header.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().unwrap();
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).unwrap();
    drop(reader);
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let query: Vec<&str> = body["query"].as_str().unwrap().split_whitespace().collect();
    assert_eq!(
        query.join(" "),
        "query($orbVersionRef: String!) { orbVersion(orbVersionRef: $orbVersionRef) { id version orb { id } source } }"
    );
    let reference = body["variables"]["orbVersionRef"].as_str().unwrap();
    log.lock().unwrap().push(reference.to_string());
    let json = match reply {
        Reply::Orb(version) => serde_json::json!({"data": {"orbVersion": {
            "id": "0d6c2a8e-1111-4222-8333-444455556666",
            "version": version,
            "orb": {"id": "7f1e9b3c-1111-4222-8333-444455556666"},
            "source": ORB,
        }}})
        .to_string(),
        Reply::NotFound => r#"{"data": {"orbVersion": null}}"#.to_string(),
        Reply::Huge => format!(
            r#"{{"data": {{"orbVersion": {{"id": "x", "version": "1.0.0", "source": "{}"}}}}}}"#,
            "a".repeat(5 * 1024 * 1024)
        ),
    };
    let _ = write!(
        stream,
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{json}",
        json.len()
    )
    .and_then(|()| stream.flush());
}

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
    took: Duration,
}

/// `localci --color never <args>` in `dir` with a private HOME (the orb cache is under it),
/// asking the registry at `registry` (or the default one, offline, when `None`).
fn localci(dir: &Path, home: &Path, registry: Option<&str>, args: &[&str]) -> Out {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_localci"));
    cmd.current_dir(dir)
        .env("HOME", home)
        .env_remove("XDG_CACHE_HOME")
        .args(["--color", "never"])
        .args(args);
    if let Some(url) = registry {
        cmd.env_remove("LOCALCI_OFFLINE")
            .env("LOCALCI_ORB_REGISTRY", url);
    }
    let started = Instant::now();
    let out = cmd.output().expect("localci runs");
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
        took: started.elapsed(),
    }
}

fn project(config: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join(".circleci")).unwrap();
    std::fs::write(dir.path().join(".circleci/config.yml"), config).unwrap();
    dir
}

/// A port on 127.0.0.1 where nothing listens: connecting is refused at once.
fn closed_url() -> String {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    format!("http://127.0.0.1:{port}/graphql-unstable")
}

fn cached(home: &Path, file: &str) -> PathBuf {
    home.join(".cache/localci/orbs/acme").join(file)
}

const USES_HI: &str = "version: 2.1
orbs:
  hi: acme/hi@1.2
jobs:
  build:
    docker: [{image: localci-test/busybox:latest}]
    steps:
      - hi/hello
workflows:
  main:
    jobs: [build]
";

#[test]
fn a_fetched_orb_is_cached_by_exact_version_and_the_next_run_is_offline() {
    let dir = project(USES_HI);
    let home = tempfile::tempdir().unwrap();
    let mut registry = FakeRegistry::start(vec![Reply::Orb("1.2.5")]);
    let first = localci(dir.path(), home.path(), Some(&registry.url), &["process"]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert!(
        first
            .stdout
            .contains("# Orb 'acme/hi@1.2' resolved to 'acme/hi@1.2.5'"),
        "{}",
        first.stdout
    );
    assert!(
        first.stdout.contains("hello, world, from the registry orb"),
        "{}",
        first.stdout
    );
    assert_eq!(registry.finish(), ["acme/hi@1.2"]);
    assert_eq!(
        std::fs::read_to_string(cached(home.path(), "hi@1.2.5.yml")).unwrap(),
        ORB
    );

    // The registry is gone: the cache answers, for every command, and nothing is asked.
    let again = localci(dir.path(), home.path(), Some(&registry.url), &["process"]);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(again.stdout, first.stdout);
    let valid = localci(dir.path(), home.path(), None, &["validate"]);
    assert_eq!(valid.code, 0, "{}", valid.stderr);
    assert_eq!(valid.stderr, "", "no orb warning once it is cached");
    assert_eq!(valid.stdout.trim(), "config is valid");
}

#[test]
fn validate_checks_what_a_config_uses_from_a_registry_orb() {
    let config = USES_HI.replace("- hi/hello\n", "- hi/hello: {too: tester}\n");
    let dir = project(&config);
    let home = tempfile::tempdir().unwrap();
    let mut registry = FakeRegistry::start(vec![Reply::Orb("1.2.5")]);
    let out = localci(dir.path(), home.path(), Some(&registry.url), &["validate"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("too"), "{}", out.stderr);
    assert!(!out.stderr.contains("cannot be fetched"), "{}", out.stderr);
    assert_eq!(registry.finish(), ["acme/hi@1.2"]);
}

#[test]
fn an_orb_the_registry_does_not_have_is_a_warning_and_only_its_users_fail() {
    let config = "version: 2.1
orbs:
  gone: acme/gone@1.0.0
jobs:
  build:
    docker: [{image: localci-test/busybox:latest}]
    steps: [{run: echo built}]
workflows:
  main:
    jobs: [build, gone/deploy]
";
    let dir = project(config);
    let home = tempfile::tempdir().unwrap();
    let mut registry = FakeRegistry::start(vec![Reply::NotFound, Reply::Huge]);
    let url = registry.url.clone();
    let out = localci(dir.path(), home.path(), Some(&url), &["validate"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let warning = format!(
        "orb `gone` (acme/gone@1.0.0) could not be fetched from {url}: the registry has no such orb version"
    );
    assert!(out.stderr.contains(&warning), "{}", out.stderr);
    assert!(out.stdout.contains("config is valid"), "{}", out.stdout);

    // `process` needs every orb: the oversized answer is named, and the orb is missing.
    let huge = localci(dir.path(), home.path(), Some(&url), &["process"]);
    assert_eq!(huge.code, 2, "{}", huge.stderr);
    assert!(
        huge.stderr.contains("the reply is larger than 4 MB"),
        "{}",
        huge.stderr
    );
    assert_eq!(registry.finish(), ["acme/gone@1.0.0", "acme/gone@1.0.0"]);
    assert!(!home.path().join(".cache/localci/orbs/acme").exists());
}

#[test]
fn an_unreachable_registry_is_silent_and_fast() {
    let config = USES_HI.replace("acme/hi@1.2", "acme/hi@1.2.5");
    let dir = project(&config);
    let home = tempfile::tempdir().unwrap();
    let unreachable = localci(dir.path(), home.path(), Some(&closed_url()), &["validate"]);
    let offline = localci(dir.path(), home.path(), None, &["validate"]);
    for out in [&unreachable, &offline] {
        assert_eq!(out.code, 0, "{}", out.stderr);
        // The one lazy-orb warning, and nothing about the registry.
        assert_eq!(out.stderr.matches("warning:").count(), 1, "{}", out.stderr);
        assert!(out.stderr.contains("acme/hi@1.2.5"), "{}", out.stderr);
        assert!(!out.stderr.contains("fetched from"), "{}", out.stderr);
        assert!(out.took < Duration::from_secs(2), "took {:?}", out.took);
    }
    assert_eq!(unreachable.stderr, offline.stderr);
}

#[test]
fn offline_never_asks_the_registry() {
    let dir = project(USES_HI);
    let home = tempfile::tempdir().unwrap();
    let registry = FakeRegistry::start(vec![Reply::Orb("1.2.5")]);
    let out = localci(
        dir.path(),
        home.path(),
        Some(&registry.url),
        &["process", "--offline"],
    );
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("acme/hi@1.2"), "{}", out.stderr);
    assert!(registry.asked.lock().unwrap().is_empty());
    assert!(!home.path().join(".cache/localci").exists());
}

#[test]
fn orb_vendor_fetches_from_the_registry_into_the_project() {
    let dir = project(USES_HI);
    let home = tempfile::tempdir().unwrap();
    let mut registry = FakeRegistry::start(vec![Reply::Orb("1.2.5")]);
    let out = localci(
        dir.path(),
        home.path(),
        Some(&registry.url),
        &["orb", "vendor"],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr.contains("saved acme/hi@1.2.5 as"),
        "{}",
        out.stderr
    );
    assert_eq!(registry.finish(), ["acme/hi@1.2"]);
    let vendored = dir.path().join(".circleci/orbs/acme/hi@1.2.5.yml");
    assert_eq!(std::fs::read_to_string(&vendored).unwrap(), ORB);

    // The project now compiles with no cache and no registry.
    let empty_home = tempfile::tempdir().unwrap();
    let out = localci(dir.path(), empty_home.path(), None, &["process"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout
            .contains("# Orb 'acme/hi@1.2' resolved to 'acme/hi@1.2.5'"),
        "{}",
        out.stdout
    );
}

#[test]
fn execute_runs_a_job_from_a_registry_orb() {
    if !docker_ready() {
        return;
    }
    let project = Project::new(
        "version: 2.1\norbs:\n  hi: acme/hi@1.2.5\nworkflows:\n  main:\n    jobs: [hi/greet]\n",
    );
    let home = tempfile::tempdir().unwrap();
    let mut registry = FakeRegistry::start(vec![Reply::Orb("1.2.5")]);
    let mut cmd = project.command(&["hi/greet"]);
    cmd.env("HOME", home.path())
        .env_remove("XDG_CACHE_HOME")
        .env_remove("LOCALCI_OFFLINE")
        .env("LOCALCI_ORB_REGISTRY", &registry.url);
    let run = project.run_command(cmd);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout.lines().any(|l| l
            .trim_end()
            .ends_with("hello, tester, from the registry orb")
            && !l.contains("echo")),
        "{}",
        run.stdout
    );
    run.assert_nothing_left();
    assert_eq!(registry.finish(), ["acme/hi@1.2.5"]);
    assert!(cached(home.path(), "hi@1.2.5.yml").is_file());
}

#[test]
fn tests_run_offline_unless_they_name_a_local_registry() {
    // `.cargo/config.toml` keeps every localci that `cargo test` starts away from the real
    // registry; without it, a test config with an orb missing would go to circleci.com.
    assert_eq!(std::env::var("LOCALCI_OFFLINE").as_deref(), Ok("1"));
}

// ---------------------------------------------------------------------------------------------
// HTTPS, as the real registry is asked: a local CA made with openssl, trusted through
// SSL_CERT_FILE, and a rustls server on 127.0.0.1.

/// A CA, and a certificate for `localhost` it signed: (CA file, server certificate, server key).
fn certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .current_dir(dir)
            .args(args)
            .output()
            .expect("openssl runs (.ci/run installs it)");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    openssl(
        &[
            &["req", "-x509"][..],
            &ec,
            &[
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                "/CN=localci test CA",
            ],
        ]
        .concat(),
    );
    openssl(
        &[
            &["req"][..],
            &ec,
            &[
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
                "-subj",
                "/CN=localhost",
            ],
        ]
        .concat(),
    );
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "server.ext",
    ]);
    (
        dir.join("ca.pem"),
        dir.join("server.pem"),
        dir.join("server.key"),
    )
}

/// An HTTPS registry on 127.0.0.1 answering one connection; its URL names `localhost`.
fn https_registry(cert: &Path, key: &Path, reply: Reply) -> (String, JoinHandle<Vec<String>>) {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let chain = vec![CertificateDer::from_pem_file(cert).unwrap()];
    let key = PrivateKeyDer::from_pem_file(key).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    let config = Arc::new(config);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "https://localhost:{}/graphql-unstable",
        listener.local_addr().unwrap().port()
    );
    let thread = std::thread::spawn(move || {
        let log = Mutex::new(Vec::new());
        let (tcp, _) = listener.accept().unwrap();
        let tls = rustls::ServerConnection::new(config).unwrap();
        let mut stream = rustls::StreamOwned::new(tls, tcp);
        // A client that does not trust the certificate ends the handshake: nothing is asked.
        let mut probe = [0u8; 0];
        if stream.read(&mut probe).is_ok() {
            answer(&mut stream, &reply, &log);
            stream.conn.send_close_notify();
            let _ = stream.flush();
        }
        log.into_inner().unwrap()
    });
    (url, thread)
}

#[test]
fn the_registry_is_asked_over_https_and_its_certificate_is_checked() {
    let certs = tempfile::tempdir().unwrap();
    let (ca, cert, key) = certificates(certs.path());
    let dir = project(USES_HI);
    let home = tempfile::tempdir().unwrap();

    // Trusted through SSL_CERT_FILE (as for any root the host has): fetched and cached.
    let (url, server) = https_registry(&cert, &key, Reply::Orb("1.2.5"));
    let out = localci_env(
        dir.path(),
        home.path(),
        &url,
        &[("SSL_CERT_FILE", ca.as_path())],
        &["process"],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.contains("resolved to 'acme/hi@1.2.5'"),
        "{}",
        out.stdout
    );
    assert_eq!(server.join().unwrap(), ["acme/hi@1.2"]);
    assert!(cached(home.path(), "hi@1.2.5.yml").is_file());

    // A certificate no trusted root signed: a warning that says so, and nothing cached.
    let other_home = tempfile::tempdir().unwrap();
    let untrusted = tempfile::tempdir().unwrap();
    let (other_ca, _, _) = certificates(untrusted.path());
    let (url, server) = https_registry(&cert, &key, Reply::Orb("1.2.5"));
    let out = localci_env(
        dir.path(),
        other_home.path(),
        &url,
        &[("SSL_CERT_FILE", other_ca.as_path())],
        &["validate"],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr.contains(&format!(
            "orb `hi` (acme/hi@1.2) could not be fetched from {url}: the TLS connection failed"
        )),
        "{}",
        out.stderr
    );
    assert!(server.join().unwrap().is_empty());
    assert!(!other_home.path().join(".cache/localci/orbs/acme").exists());
}

/// [`localci`] asking `registry`, with extra environment variables.
fn localci_env(
    dir: &Path,
    home: &Path,
    registry: &str,
    env: &[(&str, &Path)],
    args: &[&str],
) -> Out {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_localci"));
    cmd.current_dir(dir)
        .env("HOME", home)
        .env_remove("XDG_CACHE_HOME")
        .env_remove("LOCALCI_OFFLINE")
        .env("LOCALCI_ORB_REGISTRY", registry)
        .envs(env.iter().copied())
        .args(["--color", "never"])
        .args(args);
    let started = Instant::now();
    let out = cmd.output().expect("localci runs");
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
        took: started.elapsed(),
    }
}
