//! `localci execute` against Docker endpoints other than the default socket: a second
//! `dockerd` listening on tcp://127.0.0.1 (plain, and TLS with client certificates), reached
//! through `DOCKER_HOST`, `DOCKER_CONTEXT` and the config's `currentContext`; `ssh://` through
//! an sshd on 127.0.0.1:2222 of a namespace of its own; the errors for an endpoint that does
//! not answer or a context that does not exist; and replies without end over TLS (a rustls
//! server in the test) and ssh (a fake `ssh` on PATH), cut off with bounded memory.
//!
//! The second daemon runs in a network namespace of its own (`unshare --net`), with its own
//! socket, data root, exec root, pidfile, containerd namespace and cgroup parent: started in
//! the host namespace with `--bridge none` it would delete the main daemon's `docker0`. localci
//! runs inside the same namespace (`nsenter --net`). The image comes from the main daemon
//! (`docker save | docker load`) under a name only the second daemon has, so a passing job
//! proves which daemon ran it. Needs root, `dockerd`, `unshare`/`nsenter` (util-linux), `ip`
//! (iproute2), for TLS `openssl`, and for ssh `sshd` and `ssh-keygen` (openssh-server); without
//! them these tests fail in CI and are skipped elsewhere.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::execute::{BUSYBOX, Project, config, docker_ready, job};

/// The image name only the second daemon has.
const ONLY_THERE: &str = "localci-endpoint-test/only-there:1";
const PLAIN_PORT: u16 = 2375;
const TLS_PORT: u16 = 2376;

/// Starts dockerd in the namespace, loads the busybox image, then waits to be told to stop.
/// `$1` is the work folder, `$2` the port, `$3` the cgroup parent, `$4` "tls" or "plain".
const DAEMON_SCRIPT: &str = r#"set -eu
D=$1 PORT=$2 CG=$3 MODE=$4
PID=
stop() {
    if [ -n "$PID" ]; then kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; fi
    for c in /sys/fs/cgroup/*/"$CG" /sys/fs/cgroup/"$CG"; do rmdir "$c" 2>/dev/null || true; done
}
trap 'stop; exit 0' TERM INT
trap stop EXIT
ip link set lo up
# The host's /etc/docker/daemon.json sets the main daemon's data root and storage driver.
echo '{}' >"$D/daemon.json"
TLS=
if [ "$MODE" = tls ]; then
    TLS="--tlsverify --tlscacert $D/certs/ca.pem --tlscert $D/certs/server-cert.pem --tlskey $D/certs/server-key.pem"
fi
# shellcheck disable=SC2086
dockerd --config-file "$D/daemon.json" --host "tcp://127.0.0.1:$PORT" --host "unix://$D/docker.sock" \
    --data-root "$D/data" --exec-root "$D/exec" --pidfile "$D/docker.pid" --cgroup-parent "$CG" \
    --containerd-namespace "$CG" --containerd-plugins-namespace "$CG-plugins" \
    --bridge none --iptables=false --ip6tables=false --ip-masq=false --storage-driver vfs \
    $TLS >"$D/dockerd.log" 2>&1 &
PID=$!
for _ in $(seq 1 150); do
    docker -H "unix://$D/docker.sock" version >/dev/null 2>&1 && break
    sleep 0.2
done
docker save "$IMAGE" | docker -H "unix://$D/docker.sock" load >/dev/null
docker -H "unix://$D/docker.sock" tag "$IMAGE" "$ONLY_THERE"
touch "$D/ready"
while :; do sleep 1; done
"#;

/// Makes a CA, a server certificate for 127.0.0.1 and a client certificate in `$1`.
const CERTS_SCRIPT: &str = r#"set -eu
cd "$1"
o() { openssl "$@" 2>/dev/null; }
o req -x509 -newkey rsa:2048 -nodes -keyout ca-key.pem -out ca.pem -days 1 -subj /CN=localci-test-ca
o req -newkey rsa:2048 -nodes -keyout server-key.pem -out server.csr -subj /CN=127.0.0.1
printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >server.ext
o x509 -req -in server.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -out server-cert.pem -days 1 -extfile server.ext
o req -newkey rsa:2048 -nodes -keyout key.pem -out client.csr -subj /CN=localci-client
printf 'extendedKeyUsage=clientAuth\n' >client.ext
o x509 -req -in client.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -out cert.pem -days 1 -extfile client.ext
"#;

fn on_path(name: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(name).is_file()))
}

/// Whether a second daemon can run here; in CI its absence fails the test.
fn second_daemon_possible(tools: &[&str]) -> bool {
    if !docker_ready() {
        return false;
    }
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    let missing: Vec<&str> = tools.iter().copied().filter(|t| !on_path(t)).collect();
    if root && missing.is_empty() {
        return true;
    }
    let why = if root {
        format!("{} not found", missing.join(", "))
    } else {
        "a second dockerd needs root".to_string()
    };
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "the endpoint tests must run in CI: {why}"
    );
    eprintln!("skipping an endpoint test: {why}");
    false
}

/// A dockerd in its own network namespace; stopped and its folder removed when dropped.
struct SecondDaemon {
    script: Child,
    dir: tempfile::TempDir,
    port: u16,
}

impl SecondDaemon {
    fn start(tls: bool) -> SecondDaemon {
        static STARTED: AtomicUsize = AtomicUsize::new(0);
        let dir = tempfile::tempdir().unwrap();
        let n = STARTED.fetch_add(1, Ordering::SeqCst);
        let cgroup = format!("localci-endpoint-test-{}-{n}", std::process::id());
        if tls {
            let certs = dir.path().join("certs");
            std::fs::create_dir(&certs).unwrap();
            let ok = Command::new("bash")
                .args(["-c", CERTS_SCRIPT, "certs"])
                .arg(&certs)
                .status()
                .unwrap()
                .success();
            assert!(ok, "openssl could not make the test certificates");
        }
        let port = if tls { TLS_PORT } else { PLAIN_PORT };
        let script = Command::new("unshare")
            .args(["--net", "bash", "-c", DAEMON_SCRIPT, "daemon"])
            .arg(dir.path())
            .arg(port.to_string())
            .arg(&cgroup)
            .arg(if tls { "tls" } else { "plain" })
            .env("IMAGE", BUSYBOX)
            .env("ONLY_THERE", ONLY_THERE)
            .stdin(Stdio::null())
            .spawn()
            .expect("unshare starts");
        let daemon = SecondDaemon { script, dir, port };
        daemon.wait_ready();
        daemon
    }

    fn wait_ready(&self) {
        let started = Instant::now();
        while !self.dir.path().join("ready").exists() {
            assert!(
                started.elapsed() < Duration::from_secs(90),
                "the second dockerd did not start; its log:\n{}",
                std::fs::read_to_string(self.dir.path().join("dockerd.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn certs(&self) -> PathBuf {
        self.dir.path().join("certs")
    }

    fn host(&self) -> String {
        format!("tcp://127.0.0.1:{}", self.port)
    }

    /// `command` run inside the daemon's network namespace.
    fn inside(&self, command: &Command) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net=/proc/{}/ns/net", self.script.id()))
            .arg("--")
            .arg(command.get_program())
            .args(command.get_args());
        if let Some(dir) = command.get_current_dir() {
            cmd.current_dir(dir);
        }
        for (key, value) in command.get_envs() {
            match value {
                Some(value) => cmd.env(key, value),
                None => cmd.env_remove(key),
            };
        }
        cmd
    }

    /// Labelled containers left on the second daemon, once there are none or after 10 s (the
    /// daemon removes a finished job's primary itself, a moment after localci exits).
    fn leftovers(&self) -> String {
        let socket = format!("unix://{}", self.dir.path().join("docker.sock").display());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let out = Command::new("docker")
                .args(["-H", &socket, "ps", "-aq", "--filter", "label=localci"])
                .output()
                .unwrap();
            let left = String::from_utf8_lossy(&out.stdout).trim().to_string();
            if left.is_empty() || std::time::Instant::now() >= deadline {
                return left;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
}

impl Drop for SecondDaemon {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg(self.script.id().to_string())
            .status();
        let _ = self.script.wait();
    }
}

/// What one run printed and how it ended.
struct Outcome {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Outcome {
    #[track_caller]
    fn assert_passed_there(&self) -> &Outcome {
        assert_eq!(
            self.code, 0,
            "stdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        // The step's output line, not its echoed command (`echo "ran on $((40+2))"`).
        assert!(
            self.stdout.lines().any(|l| l == "ran on 42"),
            "no `ran on 42` line:\n{}",
            self.stdout
        );
        self
    }

    #[track_caller]
    fn assert_environment_error(&self, text: &str) -> &Outcome {
        assert_eq!(
            self.code, 3,
            "stdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        assert!(
            self.stderr.contains(text),
            "stderr lacks {text:?}:\n{}",
            self.stderr
        );
        // See: issue 10 (runtime errors ended with the validate footer `1 error, 0 warnings`).
        assert!(!self.stderr.contains("0 warnings"), "{}", self.stderr);
        self
    }
}

fn run(mut cmd: Command) -> Outcome {
    let out = cmd.output().expect("localci runs");
    Outcome {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn project() -> Project {
    Project::new(&config(&[job(
        "there",
        ONLY_THERE,
        "      - run: echo \"ran on $((40+2))\"\n",
    )]))
}

/// `localci execute there` with no Docker settings of the caller's, then `env`.
fn execute(project: &Project, env: &[(&str, &Path)]) -> Command {
    let mut cmd = project.command(&["there"]);
    for var in [
        "DOCKER_HOST",
        "DOCKER_CONTEXT",
        "DOCKER_CONFIG",
        "DOCKER_TLS_VERIFY",
        "DOCKER_CERT_PATH",
        "DOCKER_TLS",
    ] {
        cmd.env_remove(var);
    }
    cmd.envs(env.iter().map(|(k, v)| (*k, v.as_os_str())));
    cmd
}

/// A Docker client folder whose context `name` points at `host`, current if `current`.
fn client_config(name: &str, host: &str, current: bool) -> tempfile::TempDir {
    use sha2::Digest as _;
    let dir = tempfile::tempdir().unwrap();
    let id: String = sha2::Sha256::digest(name.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let meta = dir.path().join("contexts/meta").join(id);
    std::fs::create_dir_all(&meta).unwrap();
    std::fs::write(
        meta.join("meta.json"),
        format!(
            r#"{{"Name":"{name}","Metadata":{{}},"Endpoints":{{"docker":{{"Host":"{host}","SkipTLSVerify":false}}}}}}"#
        ),
    )
    .unwrap();
    let config = if current {
        format!(r#"{{"auths":{{}},"currentContext":"{name}"}}"#)
    } else {
        "{}".to_string()
    };
    std::fs::write(dir.path().join("config.json"), config).unwrap();
    dir
}

#[test]
fn a_daemon_on_tcp_is_reached_through_docker_host_and_contexts() {
    if !second_daemon_possible(&["dockerd", "unshare", "nsenter", "ip"]) {
        return;
    }
    let daemon = SecondDaemon::start(false);
    let p = project();
    let host = daemon.host();
    let host_path = Path::new(&host);
    run(daemon.inside(&execute(&p, &[("DOCKER_HOST", host_path)]))).assert_passed_there();

    // `docker context use second`, as Docker Desktop and colima leave it: HOME/.docker.
    let home = tempfile::tempdir().unwrap();
    let dot_docker = client_config("second", &host, true);
    std::fs::rename(dot_docker.path(), home.path().join(".docker")).unwrap();
    let out = run(daemon.inside(&execute(&p, &[("HOME", home.path())])));
    out.assert_passed_there();

    // DOCKER_CONTEXT names a context that is not the current one.
    let config = client_config("second", &host, false);
    let out = run(daemon.inside(&execute(
        &p,
        &[
            ("DOCKER_CONFIG", config.path()),
            ("DOCKER_CONTEXT", Path::new("second")),
        ],
    )));
    out.assert_passed_there();
    assert_eq!(
        daemon.leftovers(),
        "",
        "containers left on the second daemon"
    );
}

#[test]
fn a_daemon_with_tls_is_reached_with_docker_tls_verify() {
    if !second_daemon_possible(&["dockerd", "unshare", "nsenter", "ip", "openssl"]) {
        return;
    }
    let daemon = SecondDaemon::start(true);
    let p = project();
    let host = daemon.host();
    let certs = daemon.certs();
    run(daemon.inside(&execute(
        &p,
        &[
            ("DOCKER_HOST", Path::new(&host)),
            ("DOCKER_TLS_VERIFY", Path::new("1")),
            ("DOCKER_CERT_PATH", &certs),
        ],
    )))
    .assert_passed_there();
    // Plain HTTP to a TLS port: the daemon answers 400, and the error names the endpoint.
    run(daemon.inside(&execute(&p, &[("DOCKER_HOST", Path::new(&host))])))
        .assert_environment_error(&format!(
            "cannot reach the Docker daemon at {host} (from DOCKER_HOST)"
        ));
    assert_eq!(
        daemon.leftovers(),
        "",
        "containers left on the second daemon"
    );
}

#[test]
fn an_endpoint_that_does_not_answer_is_named_in_the_error() {
    let p = project();
    // Port 1 on loopback: nothing listens there, so the connection is refused at once.
    run(execute(&p, &[("DOCKER_HOST", Path::new("tcp://127.0.0.1:1"))])).assert_environment_error(
        "cannot reach the Docker daemon at tcp://127.0.0.1:1 (from DOCKER_HOST): connection refused",
    );
    let config = client_config("elsewhere", "unix:///nonexistent/docker.sock", true);
    run(execute(&p, &[("DOCKER_CONFIG", config.path())])).assert_environment_error(
        "cannot reach the Docker daemon at unix:///nonexistent/docker.sock (Docker context `elsewhere` from `docker context use`): the socket does not exist",
    );
    let out = run(execute(
        &p,
        &[
            ("DOCKER_CONFIG", config.path()),
            ("DOCKER_CONTEXT", Path::new("nope")),
        ],
    ));
    out.assert_environment_error(
        "cannot reach the Docker daemon at Docker context `nope` from DOCKER_CONTEXT: the context does not exist",
    );
}

/// Starts sshd on 127.0.0.1:2222 in the namespace (`$1` is the work folder), then waits.
const SSHD_SCRIPT: &str = r#"set -eu
D=$1
ip link set lo up
mkdir -p /run/sshd
/usr/sbin/sshd -D -e -f "$D/sshd_config" >"$D/sshd.log" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null || true; wait $PID 2>/dev/null || true; exit 0' TERM INT
# Port 2222 is 08AE in /proc/net/tcp, which shows this namespace's sockets.
for _ in $(seq 1 100); do
    grep -q ':08AE 00000000:0000 0A' /proc/net/tcp && break
    sleep 0.1
done
touch "$D/ready"
while :; do sleep 1; done
"#;

/// An sshd in its own network namespace that lets root in with a key of the test's own.
/// localci runs the `ssh` client (and, on the server, `docker system dial-stdio`); a wrapper
/// first on PATH gives it the key and a known-hosts file in the test's folder, so nothing in
/// the user's `~/.ssh` is read or written.
struct SshServer {
    script: Child,
    dir: tempfile::TempDir,
}

impl SshServer {
    fn start() -> SshServer {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for key in ["hostkey", "userkey"] {
            let ok = Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(d.join(key))
                .status()
                .unwrap()
                .success();
            assert!(ok, "ssh-keygen failed");
        }
        std::fs::copy(d.join("userkey.pub"), d.join("authorized_keys")).unwrap();
        std::fs::write(
            d.join("sshd_config"),
            format!(
                "Port 2222\nListenAddress 127.0.0.1\nHostKey {0}/hostkey\nPermitRootLogin prohibit-password\nAuthorizedKeysFile {0}/authorized_keys\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\nPidFile {0}/sshd.pid\n",
                d.display()
            ),
        )
        .unwrap();
        std::fs::create_dir(d.join("bin")).unwrap();
        let wrapper = d.join("bin/ssh");
        std::fs::write(
            &wrapper,
            format!(
                "#!/bin/sh\nexec {1} -i {0}/userkey -o IdentitiesOnly=yes -o UserKnownHostsFile={0}/known_hosts -o StrictHostKeyChecking=accept-new -F /dev/null \"$@\"\n",
                d.display(),
                real_ssh().display()
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
        let script = Command::new("unshare")
            .args(["--net", "bash", "-c", SSHD_SCRIPT, "sshd"])
            .arg(d)
            .stdin(Stdio::null())
            .spawn()
            .expect("unshare starts");
        let server = SshServer { script, dir };
        let started = Instant::now();
        while !server.dir.path().join("ready").exists() {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "sshd did not start; its log:\n{}",
                std::fs::read_to_string(server.dir.path().join("sshd.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        server
    }

    /// `command` inside the namespace, with the ssh wrapper first on PATH and a HOME of its own
    /// (nothing of the user's `~/.ssh` is read).
    fn inside(&self, command: &Command) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net=/proc/{}/ns/net", self.script.id()))
            .arg("--")
            .arg(command.get_program())
            .args(command.get_args());
        if let Some(dir) = command.get_current_dir() {
            cmd.current_dir(dir);
        }
        for (key, value) in command.get_envs() {
            match value {
                Some(value) => cmd.env(key, value),
                None => cmd.env_remove(key),
            };
        }
        let path = std::env::var("PATH").unwrap_or_default();
        let bin = self.dir.path().join("bin");
        cmd.env("PATH", format!("{}:{path}", bin.display()))
            .env("HOME", self.dir.path());
        cmd
    }
}

/// The `ssh` client the wrapper runs (the wrapper itself is first on PATH).
fn real_ssh() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("ssh"))
        .find(|p| p.is_file())
        .expect("checked by second_daemon_possible")
}

impl Drop for SshServer {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg(self.script.id().to_string())
            .status();
        let _ = self.script.wait();
    }
}

#[test]
fn a_daemon_over_ssh_is_reached_with_an_ssh_docker_host() {
    if !second_daemon_possible(&["sshd", "ssh", "ssh-keygen", "unshare", "nsenter", "ip"]) {
        return;
    }
    let server = SshServer::start();
    // Over ssh, `docker system dial-stdio` reaches this machine's own daemon, which has the
    // busybox image under its usual name. The port in the URL is given to `ssh -p`.
    let p = Project::new(&config(&[job(
        "there",
        BUSYBOX,
        "      - run: echo \"ran on $((40+2))\"\n",
    )]));
    let out = run(server.inside(&execute(
        &p,
        &[("DOCKER_HOST", Path::new("ssh://root@127.0.0.1:2222"))],
    )));
    out.assert_passed_there();
    assert!(
        out.stdout
            .contains("Using local image localci-test/busybox:latest"),
        "{}",
        out.stdout
    );
}

/// localci under `/usr/bin/time`: what it printed, and its peak memory in KB.
fn run_timed(cmd: &Command) -> (Outcome, i64) {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("time.txt");
    let mut timed = Command::new("/usr/bin/time");
    timed
        .arg("-f")
        .arg("%M")
        .arg("-o")
        .arg(&report)
        .arg(cmd.get_program())
        .args(cmd.get_args());
    if let Some(dir) = cmd.get_current_dir() {
        timed.current_dir(dir);
    }
    for (key, value) in cmd.get_envs() {
        match value {
            Some(value) => timed.env(key, value),
            None => timed.env_remove(key),
        };
    }
    let out = run(timed);
    let rss_kb = std::fs::read_to_string(&report)
        .expect("time wrote its report")
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .expect("a peak memory figure");
    (out, rss_kb)
}

/// What localci may hold while a reply is cut off (the cap is 16 MB).
const MAX_RSS_KB: i64 = 256 * 1024;

/// The `/version` reply of a daemon that speaks API 1.41.
const VERSION_REPLY: &str = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nApi-Version: 1.41\r\nContent-Length: 64\r\n\r\n{\"ApiVersion\":\"1.41\",\"Version\":\"20.10.0\",\"MinAPIVersion\":\"1.12\"}";

/// What the fake TLS daemon answers without end.
#[derive(Clone, Copy)]
enum Endless {
    /// Every request, `/version` too.
    Everything,
    /// Every request but `/version`, which answers as a daemon does.
    AfterVersion,
}

/// A "daemon" on 127.0.0.1 behind TLS that wants a client certificate from the CA in `certs`
/// and answers with a reply that never ends; its port.
fn endless_tls_daemon(certs: &Path, endless: Endless) -> u16 {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use std::io::{Read as _, Write as _};
    let chain = vec![CertificateDer::from_pem_file(certs.join("server-cert.pem")).unwrap()];
    let key = PrivateKeyDer::from_pem_file(certs.join("server-key.pem")).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(certs.join("ca.pem")).unwrap())
        .unwrap();
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let clients = rustls::server::WebPkiClientVerifier::builder_with_provider(
        std::sync::Arc::new(roots),
        provider.clone(),
    )
    .build()
    .unwrap();
    let config = std::sync::Arc::new(
        rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(clients)
            .with_single_cert(chain, key)
            .unwrap(),
    );
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for tcp in listener.incoming() {
            let Ok(tcp) = tcp else { return };
            let config = config.clone();
            std::thread::spawn(move || {
                let tls = rustls::ServerConnection::new(config).unwrap();
                let mut stream = rustls::StreamOwned::new(tls, tcp);
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).is_ok_and(|n| n == 1) {
                    head.push(byte[0]);
                }
                let head = String::from_utf8_lossy(&head).into_owned();
                let first = head.lines().next().unwrap_or_default();
                if matches!(endless, Endless::AfterVersion) && first.contains("/version ") {
                    let _ = stream.write_all(VERSION_REPLY.as_bytes());
                    let _ = stream.flush();
                    return;
                }
                let start = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nApi-Version: 1.41\r\n\r\n[\"";
                if stream.write_all(start.as_bytes()).is_err() {
                    return;
                }
                let chunk = vec![b'x'; 64 * 1024];
                while stream.write_all(&chunk).is_ok() {}
            });
        }
    });
    port
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate, made with `openssl`.
fn test_certificates() -> tempfile::TempDir {
    let certs = tempfile::tempdir().unwrap();
    let ok = Command::new("bash")
        .args(["-c", CERTS_SCRIPT, "certs"])
        .arg(certs.path())
        .status()
        .unwrap()
        .success();
    assert!(ok, "openssl could not make the test certificates");
    certs
}

fn openssl_possible() -> bool {
    if on_path("openssl") {
        return true;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "the TLS tests must run in CI: openssl not found"
    );
    eprintln!("skipping a TLS test: openssl not found");
    false
}

// See: issue 9, finding 6 (TLS hosts used bollard's transport, whose replies were not capped).
#[test]
fn an_endless_reply_over_tls_is_cut_off() {
    if !openssl_possible() {
        return;
    }
    let certs = test_certificates();
    let p = project();
    let tls_env = |host: &str, certs: &Path| -> Command {
        execute(
            &p,
            &[
                ("DOCKER_HOST", Path::new(host)),
                ("DOCKER_TLS_VERIFY", Path::new("1")),
                ("DOCKER_CERT_PATH", certs),
            ],
        )
    };

    // The first request (`/version`) never ends.
    let host = format!(
        "tcp://127.0.0.1:{}",
        endless_tls_daemon(certs.path(), Endless::Everything)
    );
    let (out, rss_kb) = run_timed(&tls_env(&host, certs.path()));
    out.assert_environment_error(&format!(
        "cannot reach the Docker daemon at {host} (from DOCKER_HOST, TLS): a reply from the daemon exceeded 16 MB; localci stopped reading it"
    ));
    assert!(rss_kb < MAX_RSS_KB, "peak memory {} MB", rss_kb / 1024);

    // `/version` answers; the next request's reply never ends.
    let host = format!(
        "tcp://127.0.0.1:{}",
        endless_tls_daemon(certs.path(), Endless::AfterVersion)
    );
    let (out, rss_kb) = run_timed(&tls_env(&host, certs.path()));
    out.assert_environment_error(&format!(
        "the Docker daemon at {host} sent a reply over 16 MB; localci stopped reading it"
    ));
    assert!(rss_kb < MAX_RSS_KB, "peak memory {} MB", rss_kb / 1024);

    // A daemon whose certificate another CA signed (of the same name): the handshake fails,
    // in one sentence.
    let other = test_certificates();
    let address = host.trim_start_matches("tcp://");
    run(tls_env(&host, other.path()))
        .assert_environment_error(&format!(
            "cannot reach the Docker daemon at {host} (from DOCKER_HOST, TLS): the TLS handshake with {address} failed: invalid peer certificate: BadSignature"
        ))
        // The hint is about certificates, not about starting Docker.
        .assert_environment_error("help: check DOCKER_CERT_PATH (ca.pem, cert.pem, key.pem)");

    // A ca.pem that holds no certificate: said before anything is sent.
    let broken = tempfile::tempdir().unwrap();
    for file in ["cert.pem", "key.pem"] {
        std::fs::copy(certs.path().join(file), broken.path().join(file)).unwrap();
    }
    std::fs::write(broken.path().join("ca.pem"), "not a certificate\n").unwrap();
    run(tls_env(&host, broken.path())).assert_environment_error(&format!(
        "cannot reach the Docker daemon at {host} (from DOCKER_HOST, TLS): TLS: {} holds no PEM certificate",
        broken.path().join("ca.pem").display()
    ));
}

/// A fake `ssh` first on PATH: it logs its pid and arguments, reads the request line, then
/// answers `/version` as a daemon does and stays (as `docker system dial-stdio` does until its
/// connection ends), and answers anything else with a reply that never ends. `FAIL` set, it
/// says why on stderr and exits 255, as ssh does when it cannot log in.
const FAKE_SSH: &str = r#"#!/bin/sh
echo "$$ $*" >>"$SSH_LOG"
IFS= read -r request
if [ -n "${FAIL:-}" ]; then
    echo "me@box: Permission denied (publickey)." >&2
    exit 255
fi
case "$request" in
*"/version "*)
    printf '%s' "$VERSION_REPLY"
    exec sleep 300
    ;;
esac
printf 'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nApi-Version: 1.41\r\n\r\n["'
exec yes x
"#;

/// Whether process `pid` still runs (a zombie waiting for its parent does not).
fn running(pid: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z'))
    })
}

// See: issue 9, finding 6 (ssh hosts used bollard's transport, whose replies were not capped).
#[test]
fn an_endless_reply_over_ssh_is_cut_off_and_every_ssh_ends() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    std::fs::write(bin.join("ssh"), FAKE_SSH).unwrap();
    std::fs::set_permissions(bin.join("ssh"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let log = dir.path().join("ssh.log");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let p = project();
    let host = "ssh://me@box:2222";
    let mut cmd = execute(&p, &[("DOCKER_HOST", Path::new(host))]);
    cmd.env("PATH", &path)
        .env("SSH_LOG", &log)
        .env("VERSION_REPLY", VERSION_REPLY);
    let (out, rss_kb) = run_timed(&cmd);
    out.assert_environment_error(&format!(
        "the Docker daemon at {host} sent a reply over 16 MB; localci stopped reading it"
    ));
    assert!(rss_kb < MAX_RSS_KB, "peak memory {} MB", rss_kb / 1024);
    let log = std::fs::read_to_string(&log).unwrap();
    let calls: Vec<(&str, &str)> = log.lines().filter_map(|l| l.split_once(' ')).collect();
    assert!(calls.len() >= 2, "one ssh per request:\n{log}");
    for (pid, args) in &calls {
        assert_eq!(
            *args,
            "-o BatchMode=yes -o ConnectTimeout=30 -T -l me -p 2222 -- box docker system dial-stdio"
        );
        // The one that answered `/version` stays until its connection is dropped.
        let deadline = Instant::now() + Duration::from_secs(5);
        while running(pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(!running(pid), "ssh {pid} still runs:\n{log}");
    }

    // ssh that cannot log in: its own words, in one sentence.
    let mut cmd = execute(&p, &[("DOCKER_HOST", Path::new(host))]);
    cmd.env("PATH", &path)
        .env("SSH_LOG", dir.path().join("failed.log"))
        .env("FAIL", "1");
    run(cmd)
        .assert_environment_error(&format!(
            "cannot reach the Docker daemon at {host} (from DOCKER_HOST): ssh box docker system dial-stdio ended without a reply: me@box: Permission denied (publickey)."
        ))
        .assert_environment_error("help: check that `ssh` logs in to that host without a prompt");
}
