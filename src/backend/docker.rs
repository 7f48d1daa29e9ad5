//! The Docker Engine API behind [`Backend`], through bollard. The only file that imports
//! bollard. Connects once (to the endpoint `endpoint.rs` chooses), negotiates the API
//! version before any clone, and raises the request timeout for tar uploads, which only get
//! their response after the whole body is sent.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use bollard::auth::DockerCredentials;
use bollard::container::LogOutput;
use bollard::errors::Error as DockerError;
use bollard::exec::{CreateExecOptions, ResizeExecOptions, StartExecOptions, StartExecResults};
use bollard::models::{ContainerCreateBody, HostConfig, Mount, MountType};
use bollard::query_parameters::{
    AttachContainerOptionsBuilder, CreateContainerOptionsBuilder, CreateImageOptionsBuilder,
    DownloadFromContainerOptionsBuilder, KillContainerOptionsBuilder, ListContainersOptionsBuilder,
    ListNetworksOptionsBuilder, ListVolumesOptionsBuilder, LogsOptionsBuilder,
    RemoveContainerOptionsBuilder, RemoveVolumeOptionsBuilder, UploadToContainerOptionsBuilder,
};
use bollard::{API_DEFAULT_VERSION, Docker};
use futures_util::stream::{self, BoxStream};
use futures_util::{FutureExt, StreamExt, TryStreamExt};

use super::endpoint::{self, Endpoint};
use super::{
    Attached, Backend, BackendError, ByteStream, ContainerSpec, Credentials, Exec, ExecSpec, Fut,
    ImageInfo, Labelled, Output, PullProgress, ResourceKind, Result, Stream, TtyExec, TtySize,
};

/// bollard's default request timeout (seconds); uploads raise it per call.
const CONNECT_TIMEOUT_SECS: u64 = 120;

/// How long a tar upload may take before the request is abandoned.
const UPLOAD_TIMEOUT: Duration = Duration::from_secs(6 * 3600);

/// A connection to one Docker daemon.
#[derive(Clone)]
pub struct DockerBackend {
    docker: Docker,
    host: Host,
}

/// The daemon's address, and what the transport saw of a reply over a cap (bollard turns the
/// transport's error into text, so it is kept here to say what happened).
#[derive(Clone)]
struct Host {
    name: String,
    tripped: super::bounded::Tripped,
}

impl DockerBackend {
    /// Connects to the endpoint [`endpoint::resolve`] chooses from `env` (`DOCKER_HOST`, the
    /// Docker context, or the default socket) and checks that the daemon answers.
    pub async fn connect(env: BTreeMap<String, String>) -> Result<DockerBackend> {
        let endpoint = endpoint::resolve(&env).map_err(|e| BackendError::Unreachable {
            host: e.subject(),
            reason: e.to_string(),
        })?;
        let unreachable = |reason: String| BackendError::Unreachable {
            host: endpoint.to_string(),
            reason,
        };
        let tripped = super::bounded::Tripped::default();
        let docker = open(&endpoint, &tripped)?;
        let docker = tokio::time::timeout(Duration::from_secs(15), docker.negotiate_version())
            .await
            .map_err(|_| unreachable("no answer within 15s".into()))?
            .map_err(|e| unreachable(reason(&e)))?;
        Ok(DockerBackend {
            docker,
            host: Host {
                name: endpoint.host,
                tripped,
            },
        })
    }
}

/// A client for the endpoint. Each transport is chosen here, not by bollard's
/// `connect_with_host`, which would read `DOCKER_TLS_VERIFY` from the process environment.
/// Unix sockets, plain TCP, TLS and ssh all go through [`bounded`](super::bounded), which caps
/// every reply (see [`reply`](super::reply)).
fn open(endpoint: &Endpoint, tripped: &super::bounded::Tripped) -> Result<Docker> {
    use super::bounded::{Address, Ssh, Tls};
    let unreachable = |reason: String| BackendError::Unreachable {
        host: endpoint.to_string(),
        reason,
    };
    let host = endpoint.host.as_str();
    let (scheme, rest) = host.split_once("://").unwrap_or(("", host));
    let (address, client_addr) = match (scheme, &endpoint.tls) {
        // `tcp://`, `http://` or `https://` with the endpoint's certificates.
        (_, Some(files)) if scheme != "ssh" && scheme != "unix" => {
            let address = rest.trim_end_matches('/');
            let tls = Tls::new(address, files).map_err(|e| unreachable(e.to_string()))?;
            (
                Address::Tls(std::sync::Arc::new(tls)),
                format!("https://{address}"),
            )
        }
        ("tcp" | "http", _) => {
            let address = rest.trim_end_matches('/');
            (
                Address::Tcp(address.to_string()),
                format!("http://{address}"),
            )
        }
        // `ssh [-l user] [-p port] -- host docker system dial-stdio`, as the docker CLI runs.
        ("ssh", _) => {
            let ssh = Ssh::new(rest).map_err(|e| unreachable(e.to_string()))?;
            (
                Address::Ssh(std::sync::Arc::new(ssh)),
                "http://docker".to_string(),
            )
        }
        ("unix", _) => (Address::Unix(rest.into()), "http://docker".to_string()),
        // npipe:// (Windows) keeps bollard's own transport.
        _ => {
            return Docker::connect_with_host(host).map_err(|e| unreachable(reason(&e)));
        }
    };
    Docker::connect_with_custom_transport(
        super::bounded::transport(address, tripped.clone()),
        Some(client_addr),
        CONNECT_TIMEOUT_SECS,
        API_DEFAULT_VERSION,
    )
    .map_err(|e| unreachable(reason(&e)))
}

/// A short reason for a connection failure, without Rust debug output: the innermost cause.
fn reason(e: &DockerError) -> String {
    if let DockerError::SocketNotFoundError(_) = e {
        return "the socket does not exist".into();
    }
    // hyper wraps the cause ("client error (Connect)"); the io or TLS error underneath says
    // what happened.
    let mut innermost: &dyn std::error::Error = e;
    while let Some(source) = innermost.source() {
        if let Some(io) = source.downcast_ref::<std::io::Error>() {
            return io_reason(io);
        }
        innermost = source;
    }
    let text = innermost.to_string();
    if text.contains("No such file") || text.contains("os error 2") {
        "the socket does not exist".into()
    } else if text.contains("Connection refused") || text.contains("os error 111") {
        "connection refused".into()
    } else {
        text
    }
}

fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "the socket does not exist".into(),
        std::io::ErrorKind::ConnectionRefused => "connection refused".into(),
        std::io::ErrorKind::PermissionDenied => {
            "permission denied (is your user in the `docker` group?)".into()
        }
        _ => match e.get_ref() {
            // A TLS failure arrives as an io error around the rustls error.
            Some(inner) => inner.to_string(),
            None => e.to_string(),
        },
    }
}

/// What a failed request means: a missing object, a refusal by the daemon, or a lost daemon
/// (the connection broke, timed out, or the reply was unreadable).
fn fail(daemon: &Host, e: DockerError) -> BackendError {
    let host = daemon.name.as_str();
    match e {
        DockerError::DockerResponseServerError {
            status_code: 404,
            message,
        } => BackendError::NotFound(message),
        DockerError::DockerResponseServerError { ref message, .. } => BackendError::Daemon {
            message: message.clone(),
            source: Box::new(e),
        },
        DockerError::DockerStreamError { ref error } => BackendError::Daemon {
            message: error.clone(),
            source: Box::new(e),
        },
        DockerError::HyperLegacyError { .. }
        | DockerError::HyperResponseError { .. }
        | DockerError::IOError { .. }
        | DockerError::HttpClientError { .. }
        | DockerError::RequestTimeoutError
        | DockerError::JsonDataError { .. }
        | DockerError::JsonSerdeError { .. } => {
            // A connection the transport cut (a reply over a cap) is no lost daemon.
            match super::reply::too_large_in(&e).or_else(|| daemon.tripped.what()) {
                Some(what) => BackendError::TooLarge {
                    host: host.to_string(),
                    what,
                    source: Box::new(e),
                },
                None => BackendError::lost(host, e),
            }
        }
        other => BackendError::Daemon {
            message: other.to_string(),
            source: Box::new(other),
        },
    }
}

impl DockerBackend {
    fn fail(&self, e: DockerError) -> BackendError {
        fail(&self.host, e)
    }

    /// A container's state (running, exit code, OOM-killed) from one inspect.
    async fn state(&self, id: &str) -> Result<bollard::models::ContainerState> {
        let info = self
            .docker
            .inspect_container(id, None)
            .await
            .map_err(|e| self.fail(e))?;
        Ok(info.state.unwrap_or_default())
    }
}

/// The cgroup v1 file that counts OOM kills (`oom_kill N`, Linux 4.13 and later).
const OOM_CONTROL_V1: &str = "/sys/fs/cgroup/memory/memory.oom_control";

/// A process's output frames as `(stream, bytes)` (stdin echoes count as stdout).
fn demux(
    host: Host,
    output: impl futures_util::Stream<Item = std::result::Result<LogOutput, DockerError>>
    + Send
    + 'static,
) -> Output {
    output
        .map(move |chunk| match chunk.map_err(|e| fail(&host, e))? {
            LogOutput::StdErr { message } => Ok((Stream::Stderr, message)),
            LogOutput::StdOut { message }
            | LogOutput::Console { message }
            | LogOutput::StdIn { message } => Ok((Stream::Stdout, message)),
        })
        .boxed()
}

/// The `oom_kill N` count in cgroup memory files (0 when absent).
fn oom_kills(text: &str) -> u64 {
    text.lines()
        .filter_map(|l| l.strip_prefix("oom_kill "))
        .filter_map(|n| n.trim().parse::<u64>().ok())
        .sum()
}

/// `repo[:tag]` or `repo@digest` into the `fromImage`/`tag` pair the API wants.
fn split_reference(image: &str) -> (String, Option<String>) {
    if image.contains('@') {
        return (image.to_string(), None);
    }
    let last_slash = image.rfind('/').map_or(0, |i| i + 1);
    match image[last_slash..].rfind(':') {
        Some(i) => (
            image[..last_slash + i].to_string(),
            Some(image[last_slash + i + 1..].to_string()),
        ),
        None => (image.to_string(), Some("latest".to_string())),
    }
}

fn selinux_enforcing() -> bool {
    std::fs::read("/sys/fs/selinux/enforce").is_ok_and(|v| v.starts_with(b"1"))
}

/// A read-only bind mount of a host file; the engine refuses it when the file does not exist
/// on its machine (`Binds` would make an empty folder there instead).
fn file_mount(mount: super::FileMount) -> Mount {
    Mount {
        target: Some(mount.target),
        source: Some(mount.source.to_string_lossy().into_owned()),
        typ: Some(MountType::BIND),
        read_only: Some(true),
        ..Mount::default()
    }
}

fn label_filter(label: &str) -> HashMap<String, Vec<String>> {
    HashMap::from([("label".to_string(), vec![label.to_string()])])
}

fn sorted(labels: Option<HashMap<String, String>>) -> BTreeMap<String, String> {
    labels.unwrap_or_default().into_iter().collect()
}

impl Backend for DockerBackend {
    fn host(&self) -> String {
        self.host.name.clone()
    }

    /// An engine behind a local socket runs on this machine (or, as Docker Desktop's, in a VM
    /// that shares the user's folders: a mount of a file it cannot see is refused, and the
    /// engine uploads instead). Not under SELinux enforcing, where a mount that is not
    /// relabelled cannot be read in the container.
    fn shares_files(&self) -> bool {
        self.host.name.starts_with("unix://") && !selinux_enforcing()
    }

    fn inspect_image(&self, image: &str) -> Fut<'_, Option<ImageInfo>> {
        let image = image.to_string();
        async move {
            match self.docker.inspect_image(&image).await {
                Ok(info) => {
                    let config = info.config.unwrap_or_default();
                    Ok(Some(ImageInfo {
                        labels: sorted(config.labels),
                        user: config.user.filter(|u| !u.is_empty()),
                    }))
                }
                Err(e) => match self.fail(e) {
                    BackendError::NotFound(_) => Ok(None),
                    other => Err(other),
                },
            }
        }
        .boxed()
    }

    fn pull_image(
        &self,
        image: &str,
        credentials: Option<Credentials>,
    ) -> BoxStream<'static, Result<PullProgress>> {
        let (from, tag) = split_reference(image);
        let mut options = CreateImageOptionsBuilder::default().from_image(&from);
        if let Some(tag) = &tag {
            options = options.tag(tag);
        }
        let credentials = credentials.map(|c| DockerCredentials {
            username: Some(c.username),
            password: Some(c.password),
            ..DockerCredentials::default()
        });
        let host = self.host.clone();
        self.docker
            .create_image(Some(options.build()), None, credentials)
            .map(move |item| {
                let info = item.map_err(|e| fail(&host, e))?;
                if let Some(detail) = info.error_detail {
                    return Err(BackendError::Api(detail.message.unwrap_or_default()));
                }
                let detail = info.progress_detail.unwrap_or_default();
                let status = info.status.unwrap_or_default();
                // `<tag>: Pulling from <repo>` carries the tag in `id`: it is not a layer.
                let layer = info.id.filter(|_| !status.starts_with("Pulling from"));
                Ok(PullProgress {
                    layer,
                    status,
                    current: detail.current.and_then(|c| u64::try_from(c).ok()),
                    total: detail.total.and_then(|t| u64::try_from(t).ok()),
                })
            })
            .boxed()
    }

    fn create_container(&self, spec: ContainerSpec) -> Fut<'_, String> {
        async move {
            let options = spec
                .name
                .as_deref()
                .map(|n| CreateContainerOptionsBuilder::default().name(n).build());
            let non_empty = |v: Vec<String>| (!v.is_empty()).then_some(v);
            let mounts: Vec<Mount> = spec.file_mounts.into_iter().map(file_mount).collect();
            let body = ContainerCreateBody {
                image: Some(spec.image),
                entrypoint: spec.entrypoint,
                cmd: spec.cmd,
                env: non_empty(spec.env),
                user: spec.user,
                labels: Some(spec.labels.into_iter().collect()),
                open_stdin: spec.stdin_once.then_some(true),
                stdin_once: spec.stdin_once.then_some(true),
                attach_stdin: spec.stdin_once.then_some(true),
                host_config: Some(HostConfig {
                    init: spec.init.then_some(true),
                    auto_remove: spec.auto_remove.then_some(true),
                    network_mode: spec.network_mode,
                    extra_hosts: non_empty(spec.extra_hosts),
                    binds: non_empty(spec.binds),
                    mounts: (!mounts.is_empty()).then_some(mounts),
                    group_add: non_empty(spec.group_add),
                    memory: spec.limits.memory,
                    // No swap on top of the memory limit: a step over it is killed, as on
                    // CircleCI, instead of slowing the machine down.
                    memory_swap: spec.limits.memory,
                    nano_cpus: spec.limits.nano_cpus,
                    pids_limit: spec.limits.pids,
                    ..HostConfig::default()
                }),
                ..ContainerCreateBody::default()
            };
            let created = self
                .docker
                .create_container(options, body)
                .await
                .map_err(|e| self.fail(e))?;
            Ok(created.id)
        }
        .boxed()
    }

    fn start_container(&self, id: &str) -> Fut<'_, ()> {
        let id = id.to_string();
        async move {
            self.docker
                .start_container(&id, None)
                .await
                .map_err(|e| self.fail(e))
        }
        .boxed()
    }

    fn attach(&self, id: &str) -> Fut<'_, Attached> {
        let id = id.to_string();
        async move {
            let options = AttachContainerOptionsBuilder::default()
                .stdin(true)
                .stdout(true)
                .stderr(true)
                .stream(true)
                .build();
            let attached = self
                .docker
                .attach_container(&id, Some(options))
                .await
                .map_err(|e| self.fail(e))?;
            Ok(Attached {
                output: demux(self.host.clone(), attached.output),
                input: attached.input,
            })
        }
        .boxed()
    }

    fn container_running(&self, id: &str) -> Fut<'_, bool> {
        let id = id.to_string();
        async move { Ok(self.state(&id).await?.running.unwrap_or(false)) }.boxed()
    }

    fn container_exit_code(&self, id: &str) -> Fut<'_, Option<i64>> {
        let id = id.to_string();
        async move {
            let state = self.state(&id).await?;
            Ok(match state.running {
                Some(true) => None,
                _ => state.exit_code,
            })
        }
        .boxed()
    }

    fn logs_tail(&self, id: &str, lines: usize) -> Fut<'_, Vec<String>> {
        /// A service that prints one endless line must not grow our memory.
        const MAX_BYTES: usize = 64 << 10;
        let id = id.to_string();
        async move {
            let options = LogsOptionsBuilder::default()
                .stdout(true)
                .stderr(true)
                .tail(&lines.to_string())
                .build();
            let mut stream = self.docker.logs(&id, Some(options));
            let mut bytes = Vec::new();
            while let Some(chunk) = stream.next().await {
                bytes.extend_from_slice(&chunk.map_err(|e| self.fail(e))?.into_bytes());
                if bytes.len() > MAX_BYTES {
                    bytes.drain(..bytes.len() - MAX_BYTES);
                }
            }
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<String> = text.lines().map(str::to_string).collect();
            Ok(all[all.len().saturating_sub(lines)..].to_vec())
        }
        .boxed()
    }

    fn oom_killed(&self, id: &str) -> Fut<'_, bool> {
        let id = id.to_string();
        async move {
            if self.state(&id).await?.oom_killed.unwrap_or(false) {
                return Ok(true);
            }
            // Docker 20.10 sets OOMKilled only when the container's own process was killed;
            // the kernel counts every kill in the cgroup (v2 `memory.events`, v1
            // `memory.oom_control`).
            let exec = self
                .exec(
                    &id,
                    ExecSpec {
                        cmd: ["cat", "/sys/fs/cgroup/memory.events", OOM_CONTROL_V1]
                            .map(String::from)
                            .to_vec(),
                        ..ExecSpec::default()
                    },
                )
                .await?;
            let mut text = Vec::new();
            let mut output = exec.output;
            while let Some((stream, chunk)) = output.next().await.transpose()? {
                if stream == Stream::Stdout && text.len() < 64 * 1024 {
                    text.extend_from_slice(&chunk);
                }
            }
            Ok(oom_kills(&String::from_utf8_lossy(&text)) > 0)
        }
        .boxed()
    }

    fn remove_container(&self, id: &str) -> Fut<'_, ()> {
        let id = id.to_string();
        async move {
            let options = RemoveContainerOptionsBuilder::default()
                .force(true)
                .v(true)
                .build();
            match self.docker.remove_container(&id, Some(options)).await {
                Ok(()) => Ok(()),
                Err(e) => match self.fail(e) {
                    BackendError::NotFound(_) => Ok(()),
                    other => Err(other),
                },
            }
        }
        .boxed()
    }

    fn kill_container(&self, id: &str) -> Fut<'_, ()> {
        let id = id.to_string();
        async move {
            let options = KillContainerOptionsBuilder::default()
                .signal("KILL")
                .build();
            match self.docker.kill_container(&id, Some(options)).await {
                Ok(()) => Ok(()),
                // 409: not running (it stopped, or its removal is under way).
                Err(DockerError::DockerResponseServerError {
                    status_code: 409, ..
                }) => Ok(()),
                Err(e) => match self.fail(e) {
                    BackendError::NotFound(_) => Ok(()),
                    other => Err(other),
                },
            }
        }
        .boxed()
    }

    fn exec(&self, container: &str, spec: ExecSpec) -> Fut<'_, Exec> {
        let container = container.to_string();
        async move {
            let created = self
                .docker
                .create_exec(
                    &container,
                    CreateExecOptions {
                        cmd: Some(spec.cmd),
                        env: Some(spec.env),
                        user: spec.user,
                        working_dir: spec.working_dir,
                        attach_stdout: Some(true),
                        attach_stderr: Some(true),
                        tty: Some(false),
                        ..CreateExecOptions::default()
                    },
                )
                .await
                .map_err(|e| self.fail(e))?;
            let started = self
                .docker
                .start_exec(&created.id, Some(StartExecOptions::default()))
                .await
                .map_err(|e| self.fail(e))?;
            let StartExecResults::Attached { output, .. } = started else {
                return Err(BackendError::Api("the exec started detached".into()));
            };
            Ok(Exec {
                id: created.id,
                output: demux(self.host.clone(), output),
            })
        }
        .boxed()
    }

    fn exec_tty(&self, container: &str, spec: ExecSpec, size: TtySize) -> Fut<'_, TtyExec> {
        let container = container.to_string();
        async move {
            let created = self
                .docker
                .create_exec(
                    &container,
                    CreateExecOptions {
                        cmd: Some(spec.cmd),
                        env: Some(spec.env),
                        user: spec.user,
                        working_dir: spec.working_dir,
                        attach_stdin: Some(true),
                        attach_stdout: Some(true),
                        attach_stderr: Some(true),
                        tty: Some(true),
                        ..CreateExecOptions::default()
                    },
                )
                .await
                .map_err(|e| self.fail(e))?;
            let started = self
                .docker
                .start_exec(
                    &created.id,
                    Some(StartExecOptions {
                        tty: true,
                        ..StartExecOptions::default()
                    }),
                )
                .await
                .map_err(|e| self.fail(e))?;
            let StartExecResults::Attached { output, input } = started else {
                return Err(BackendError::Api("the exec started detached".into()));
            };
            // As `docker exec -it` does: the size right after the start (API 1.41 has no size
            // at creation), tried again while the daemon has not set the terminal up yet.
            for attempt in 0..10 {
                match self.resize_tty(&created.id, size).await {
                    Ok(()) => break,
                    Err(e @ BackendError::Lost { .. }) => return Err(e),
                    Err(_) if attempt < 9 => tokio::time::sleep(Duration::from_millis(10)).await,
                    // A shell of the default size (80x24) is still a shell.
                    Err(_) => {}
                }
            }
            let host = self.host.clone();
            let output = output
                .map(move |chunk| match chunk.map_err(|e| fail(&host, e))? {
                    LogOutput::StdErr { message }
                    | LogOutput::StdOut { message }
                    | LogOutput::Console { message }
                    | LogOutput::StdIn { message } => Ok(message),
                })
                .boxed();
            Ok(TtyExec {
                id: created.id,
                output,
                input,
            })
        }
        .boxed()
    }

    fn resize_tty(&self, exec_id: &str, size: TtySize) -> Fut<'_, ()> {
        let exec_id = exec_id.to_string();
        async move {
            self.docker
                .resize_exec(
                    &exec_id,
                    ResizeExecOptions {
                        height: size.rows,
                        width: size.cols,
                    },
                )
                .await
                .map_err(|e| self.fail(e))
        }
        .boxed()
    }

    fn exec_exit_code(&self, exec_id: &str) -> Fut<'_, i64> {
        let exec_id = exec_id.to_string();
        async move {
            // The output can end a moment before the daemon marks the exec as finished (or
            // long before, when the process closed its output and kept running).
            let mut pause = Duration::from_millis(2);
            loop {
                let info = self
                    .docker
                    .inspect_exec(&exec_id)
                    .await
                    .map_err(|e| self.fail(e))?;
                if info.running != Some(true) {
                    return Ok(info.exit_code.unwrap_or(-1));
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(100));
            }
        }
        .boxed()
    }

    fn upload(&self, container: &str, dir: &str, tar: ByteStream) -> Fut<'_, ()> {
        let container = container.to_string();
        let options = UploadToContainerOptionsBuilder::default().path(dir).build();
        async move {
            self.docker
                .clone()
                .with_timeout(UPLOAD_TIMEOUT)
                .upload_to_container(&container, Some(options), bollard::body_try_stream(tar))
                .await
                .map_err(|e| self.fail(e))
        }
        .boxed()
    }

    fn download(&self, container: &str, path: &str) -> Fut<'_, ByteStream> {
        let options = DownloadFromContainerOptionsBuilder::default()
            .path(path)
            .build();
        let mut body = self
            .docker
            .clone()
            .with_timeout(UPLOAD_TIMEOUT)
            .download_from_container(container, Some(options))
            .boxed();
        async move {
            // A missing path arrives as the first item of the stream.
            let first = match body.next().await {
                None => return Ok(stream::empty().boxed()),
                Some(first) => first.map_err(|e| self.fail(e))?,
            };
            // The error stays a `BackendError` inside the io::Error, so that a step copying the
            // stream can tell a lost daemon from a broken archive.
            let host = self.host.clone();
            let rest = body.map_err(move |e| std::io::Error::other(fail(&host, e)));
            Ok(stream::once(async move { Ok(first) }).chain(rest).boxed())
        }
        .boxed()
    }

    fn list_labelled(&self, label: &str) -> Fut<'_, Vec<Labelled>> {
        let filters = label_filter(label);
        async move {
            // Three requests at once.
            let (containers, networks, volumes) = tokio::join!(
                self.docker.list_containers(Some(
                    ListContainersOptionsBuilder::default()
                        .all(true)
                        .filters(&filters)
                        .build(),
                )),
                self.docker.list_networks(Some(
                    ListNetworksOptionsBuilder::default()
                        .filters(&filters)
                        .build(),
                )),
                self.docker.list_volumes(Some(
                    ListVolumesOptionsBuilder::default()
                        .filters(&filters)
                        .build(),
                )),
            );
            let containers = containers.map_err(|e| self.fail(e))?;
            let networks = networks.map_err(|e| self.fail(e))?;
            let volumes = volumes.map_err(|e| self.fail(e))?;
            let mut found: Vec<Labelled> = containers
                .into_iter()
                .filter_map(|c| {
                    Some(Labelled {
                        kind: ResourceKind::Container,
                        id: c.id?,
                        labels: sorted(c.labels),
                    })
                })
                .collect();
            found.extend(networks.into_iter().filter_map(|n| {
                Some(Labelled {
                    kind: ResourceKind::Network,
                    id: n.id?,
                    labels: sorted(n.labels),
                })
            }));
            found.extend(
                volumes
                    .volumes
                    .unwrap_or_default()
                    .into_iter()
                    .map(|v| Labelled {
                        kind: ResourceKind::Volume,
                        id: v.name,
                        labels: v.labels.into_iter().collect(),
                    }),
            );
            Ok(found)
        }
        .boxed()
    }

    fn remove(&self, resource: &Labelled) -> Fut<'_, ()> {
        let resource = resource.clone();
        async move {
            let result = match resource.kind {
                ResourceKind::Container => return self.remove_container(&resource.id).await,
                ResourceKind::Network => self.docker.remove_network(&resource.id).await,
                ResourceKind::Volume => {
                    let options = RemoveVolumeOptionsBuilder::default().force(true).build();
                    self.docker.remove_volume(&resource.id, Some(options)).await
                }
            };
            match result.map_err(|e| self.fail(e)) {
                Ok(()) | Err(BackendError::NotFound(_)) => Ok(()),
                Err(other) => Err(other),
            }
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oom_kills_are_counted_in_both_cgroup_versions() {
        assert_eq!(
            oom_kills("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n"),
            2
        );
        assert_eq!(oom_kills("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n"), 1);
        assert_eq!(oom_kills("oom_kill_disable 0\n"), 0);
    }

    #[test]
    fn references_split_into_repo_and_tag() {
        assert_eq!(
            split_reference("cimg/python:3.12"),
            ("cimg/python".into(), Some("3.12".into()))
        );
        assert_eq!(
            split_reference("localhost:5000/app"),
            ("localhost:5000/app".into(), Some("latest".into()))
        );
        assert_eq!(
            split_reference("redis@sha256:abc"),
            ("redis@sha256:abc".into(), None)
        );
    }

    /// A fake daemon on 127.0.0.1: `/version` answers, `/images/create` sends a progress line
    /// that never ends (chunked, as the daemon streams), exec start a frame that says 4 GB.
    fn endless_daemon() -> String {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
        let address = listener.local_addr().expect("an address").to_string();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                std::thread::spawn(move || {
                    let mut head = Vec::new();
                    let mut byte = [0u8; 1];
                    while !head.ends_with(b"\r\n\r\n")
                        && stream.read(&mut byte).is_ok_and(|n| n == 1)
                    {
                        head.push(byte[0]);
                    }
                    let head = String::from_utf8_lossy(&head).into_owned();
                    if head.contains("/images/create") {
                        let start = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
                        let _ = stream.write_all(start.as_bytes());
                        let _ = stream.write_all(b"c\r\n{\"status\":\"x\r\n");
                        let chunk = format!("8000\r\n{}\r\n", "x".repeat(0x8000));
                        while stream.write_all(chunk.as_bytes()).is_ok() {}
                    } else {
                        let body =
                            r#"{"ApiVersion":"1.41","Version":"20.10.0","MinAPIVersion":"1.12"}"#;
                        let reply = format!(
                            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nApi-Version: 1.41\r\nContent-Length: {}\r\n\r\n{body}",
                            body.len()
                        );
                        let _ = stream.write_all(reply.as_bytes());
                    }
                });
            }
        });
        address
    }

    // See: issue 9 (streamed replies and tcp hosts were not byte-capped).
    #[tokio::test]
    async fn an_endless_pull_progress_line_over_tcp_is_a_backend_error() {
        let address = endless_daemon();
        let env = BTreeMap::from([("DOCKER_HOST".to_string(), format!("tcp://{address}"))]);
        let backend = DockerBackend::connect(env)
            .await
            .expect("the fake daemon answers");
        let mut pull = backend.pull_image("example/endless:1", None);
        let e = loop {
            match pull.next().await {
                Some(Ok(_)) => {}
                Some(Err(e)) => break e,
                None => panic!("the endless line ended"),
            }
        };
        assert!(matches!(e, BackendError::TooLarge { .. }), "{e:?}");
        assert_eq!(
            e.to_string(),
            format!(
                "the Docker daemon at tcp://{address} sent a line of a streamed reply over 1 MB; localci stopped reading it"
            )
        );
    }
}
