//! What the engine needs from a container engine, as a small trait: containers, execs with
//! streamed output, tar streams in and out, images, and labelled leftovers. `docker.rs` is the
//! Docker Engine API implementation (the only file that imports bollard); `fake.rs` is an
//! in-memory stand-in for fast engine and step tests. No CircleCI semantics here.

mod bounded;
pub mod docker;
pub mod endpoint;
#[cfg(test)]
pub(crate) mod fake;
mod reply;
pub(crate) mod traced;

use std::collections::BTreeMap;
use std::io;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;

/// Label on everything localci creates.
pub const LABEL: &str = "localci";
/// Label holding the run's id.
pub const LABEL_RUN: &str = "localci.run";
/// Label holding the pid of the localci process that created the resource.
pub const LABEL_PID: &str = "localci.pid";

/// The error a failure came from, kept as the `source()` of a [`BackendError`].
pub type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Infrastructure failures (exit 3 territory), never a failed step.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("cannot reach the Docker daemon at {host}: {reason}")]
    Unreachable { host: String, reason: String },
    /// The daemon went away or stopped answering in the middle of the run.
    #[error("lost the connection to the Docker daemon at {host} ({reason})")]
    Lost {
        host: String,
        /// The innermost cause, in words (`connection refused`).
        reason: String,
        #[source]
        source: Cause,
    },
    #[error("{0}")]
    NotFound(String),
    /// The daemon answered a request with an error.
    #[error("{message}")]
    Daemon {
        message: String,
        #[source]
        source: Cause,
    },
    /// A failure around the daemon (a copy task that stopped), described.
    #[error("{0}")]
    Api(String),
    /// A reply over one of localci's caps (a reply read whole, a pull progress line, an output
    /// frame; see `reply.rs`): the daemon, or what answers in its place, sends without end.
    #[error("the Docker daemon at {host} sent {what}; localci stopped reading it")]
    TooLarge {
        host: String,
        /// `a pull progress line over 1 MB`.
        what: String,
        #[source]
        source: Cause,
    },
}

impl BackendError {
    /// The same error again (for every process waiting on one lost connection); its causes
    /// become their words.
    pub fn duplicate(&self) -> BackendError {
        match self {
            BackendError::Unreachable { host, reason } => BackendError::Unreachable {
                host: host.clone(),
                reason: reason.clone(),
            },
            BackendError::Lost { host, reason, .. } => BackendError::Lost {
                host: host.clone(),
                reason: reason.clone(),
                source: reason.clone().into(),
            },
            BackendError::NotFound(what) => BackendError::NotFound(what.clone()),
            BackendError::Daemon { message, .. } => BackendError::Daemon {
                message: message.clone(),
                source: message.clone().into(),
            },
            BackendError::Api(what) => BackendError::Api(what.clone()),
            BackendError::TooLarge { host, what, .. } => BackendError::TooLarge {
                host: host.clone(),
                what: what.clone(),
                source: what.clone().into(),
            },
        }
    }

    /// What to do about an [`BackendError::Unreachable`] daemon, by the kind of endpoint.
    pub fn unreachable_hint(host: &str) -> &'static str {
        if host.starts_with("ssh://") {
            "check that `ssh` logs in to that host without a prompt (a key in the agent or ~/.ssh, the host in known_hosts) and that `docker system dial-stdio` runs there"
        } else if host.contains(", TLS)") {
            "check DOCKER_CERT_PATH (ca.pem, cert.pem, key.pem): the daemon's certificate must be signed by ca.pem and name the host, and the daemon must accept cert.pem"
        } else {
            "start Docker, or point DOCKER_HOST (or `docker context use`) at a running engine (unix:///path/to/docker.sock or tcp://host:2375)"
        }
    }

    /// A [`BackendError::Lost`] for `host`, worded from the innermost cause of `source`.
    pub fn lost(host: &str, source: impl Into<Cause>) -> BackendError {
        let source = source.into();
        let mut inner: &(dyn std::error::Error + 'static) = source.as_ref();
        while let Some(next) = inner.source() {
            inner = next;
        }
        let text = inner.to_string();
        let reason = if text.contains("os error 2") || text.contains("No such file") {
            "its socket is gone".to_string()
        } else if text.contains("os error 111") || text.contains("refused") {
            "connection refused".to_string()
        } else if text.contains("Timeout") || text.contains("timed out") {
            "no answer in time".to_string()
        } else if text.is_empty()
            || text.contains("SendRequest")
            || text.contains("IncompleteMessage")
        {
            "the connection closed".to_string()
        } else {
            text
        };
        BackendError::Lost {
            host: host.to_string(),
            reason,
            source,
        }
    }

    /// The [`BackendError::Lost`] inside `e`'s chain of causes, if any (a lost daemon seen
    /// through an io::Error of a tar stream), as a new error.
    pub fn lost_in(e: &(dyn std::error::Error + 'static)) -> Option<BackendError> {
        let mut next = Some(e);
        while let Some(err) = next {
            if let Some(BackendError::Lost { host, reason, .. }) = err.downcast_ref() {
                return Some(BackendError::Lost {
                    host: host.clone(),
                    reason: reason.clone(),
                    source: reason.clone().into(),
                });
            }
            next = match err.downcast_ref::<io::Error>().and_then(io::Error::get_ref) {
                Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
                None => err.source(),
            };
        }
        None
    }
}

pub type Result<T> = std::result::Result<T, BackendError>;
/// A future a backend returns.
pub type Fut<'a, T> = BoxFuture<'a, Result<T>>;
/// A tar (or any byte) stream.
pub type ByteStream = BoxStream<'static, io::Result<Bytes>>;

/// What the engine reads from an image.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ImageInfo {
    pub labels: BTreeMap<String, String>,
    pub user: Option<String>,
}

/// Registry credentials for a pull.
#[derive(Clone, Debug, PartialEq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

/// One progress report of a pull.
#[derive(Clone, Debug, PartialEq)]
pub struct PullProgress {
    /// The layer id, when the report is about one layer.
    pub layer: Option<String>,
    pub status: String,
    pub current: Option<u64>,
    pub total: Option<u64>,
}

/// A container to create.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ContainerSpec {
    pub name: Option<String>,
    pub image: String,
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    /// `KEY=VALUE` entries.
    pub env: Vec<String>,
    pub user: Option<String>,
    pub labels: BTreeMap<String, String>,
    /// `container:<id>` to join another container's network namespace.
    pub network_mode: Option<String>,
    /// `host:ip` entries.
    pub extra_hosts: Vec<String>,
    /// `host-path:container-path` (only the Docker socket, with `--docker-socket`).
    pub binds: Vec<String>,
    /// Host files mounted read-only (the engine refuses a source that does not exist on its
    /// machine, instead of making an empty folder there): see [`FileMount`].
    pub file_mounts: Vec<FileMount>,
    pub group_add: Vec<String>,
    /// Run a tiny init as PID 1 so signals and zombies are handled.
    pub init: bool,
    /// The engine removes the container itself once it has stopped (`docker run --rm`).
    pub auto_remove: bool,
    /// Its stdin is open for one attached client and closed when that client goes (`docker
    /// run -i`, with the engine's `StdinOnce`): see [`Backend::attach`].
    pub stdin_once: bool,
    pub limits: crate::engine::Limits,
}

/// A host file seen read-only in the container at `target`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FileMount {
    pub source: std::path::PathBuf,
    pub target: String,
}

/// A process to start in a running container.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ExecSpec {
    pub cmd: Vec<String>,
    /// `KEY=VALUE` entries.
    pub env: Vec<String>,
    pub user: Option<String>,
    pub working_dir: Option<String>,
}

/// Which stream a chunk of output came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    Stdout,
    Stderr,
}

/// What a process writes, chunk by chunk, each with the stream it came from.
pub type Output = BoxStream<'static, Result<(Stream, Bytes)>>;

/// A started exec: its output until the process ends, then ask for its exit code.
pub struct Exec {
    pub id: String,
    pub output: Output,
}

/// The size of a terminal, in characters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TtySize {
    pub rows: u16,
    pub cols: u16,
}

/// A started process on a terminal (`docker exec -it`): what it writes to its terminal, and
/// the terminal's input. Ask [`Backend::exec_exit_code`] once `output` ends.
pub struct TtyExec {
    pub id: String,
    pub output: BoxStream<'static, Result<Bytes>>,
    pub input: std::pin::Pin<Box<dyn tokio::io::AsyncWrite + Send>>,
}

/// The attached streams of a container ([`Backend::attach`]): what its main process writes,
/// and its stdin when the container was created with [`ContainerSpec::stdin_once`].
pub struct Attached {
    pub output: Output,
    pub input: std::pin::Pin<Box<dyn tokio::io::AsyncWrite + Send>>,
}

/// Kinds of resources localci labels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResourceKind {
    Container,
    Network,
    Volume,
}

/// A labelled resource found on the engine.
#[derive(Clone, Debug, PartialEq)]
pub struct Labelled {
    pub kind: ResourceKind,
    pub id: String,
    pub labels: BTreeMap<String, String>,
}

/// The container engine, as the engine and steps use it.
pub trait Backend: Send + Sync {
    /// A short description of where the engine is (`unix:///var/run/docker.sock`).
    fn host(&self) -> String;
    /// Whether the engine sees this machine's files, so a host file can be mounted into a
    /// container ([`ContainerSpec::file_mounts`]) instead of uploaded.
    fn shares_files(&self) -> bool;
    /// `None` when the image is not present locally.
    fn inspect_image(&self, image: &str) -> Fut<'_, Option<ImageInfo>>;
    /// Pulls an image; the stream ends when the pull is complete.
    fn pull_image(
        &self,
        image: &str,
        credentials: Option<Credentials>,
    ) -> BoxStream<'static, Result<PullProgress>>;
    /// Creates a container and returns its id.
    fn create_container(&self, spec: ContainerSpec) -> Fut<'_, String>;
    fn start_container(&self, id: &str) -> Fut<'_, ()>;
    /// Attaches to a created (not yet started) container's main process: its output from the
    /// start on, and its stdin. Closing the input closes a [`ContainerSpec::stdin_once`]
    /// container's stdin, as does the end of the connection (localci's exit, even a crash).
    fn attach(&self, id: &str) -> Fut<'_, Attached>;
    fn container_running(&self, id: &str) -> Fut<'_, bool>;
    /// The exit code of a container that has stopped; `None` while it runs.
    fn container_exit_code(&self, id: &str) -> Fut<'_, Option<i64>>;
    /// The last `lines` lines a container printed (stdout and stderr), at most 64 KiB.
    fn logs_tail(&self, id: &str, lines: usize) -> Fut<'_, Vec<String>>;
    /// Whether the kernel's OOM killer has killed a process in the container.
    fn oom_killed(&self, id: &str) -> Fut<'_, bool>;
    /// Kills and removes a container with its anonymous volumes.
    fn remove_container(&self, id: &str) -> Fut<'_, ()>;
    /// Kills a container (SIGKILL) and returns once it has stopped; one created with
    /// `auto_remove` is then removed by the engine, without waiting for it. A container that
    /// is gone or not running counts as killed.
    fn kill_container(&self, id: &str) -> Fut<'_, ()>;
    /// Starts a process and attaches to its output.
    fn exec(&self, container: &str, spec: ExecSpec) -> Fut<'_, Exec>;
    /// Starts a process on a terminal of `size` with its input attached (an interactive shell).
    fn exec_tty(&self, container: &str, spec: ExecSpec, size: TtySize) -> Fut<'_, TtyExec>;
    /// Resizes the terminal of a running [`Backend::exec_tty`] process.
    fn resize_tty(&self, exec_id: &str, size: TtySize) -> Fut<'_, ()>;
    /// The exit code of a finished exec.
    fn exec_exit_code(&self, exec_id: &str) -> Fut<'_, i64>;
    /// Extracts a tar stream into `dir`, which must exist.
    fn upload(&self, container: &str, dir: &str, tar: ByteStream) -> Fut<'_, ()>;
    /// A tar stream of `path` (a file or a directory, under its base name).
    /// [`BackendError::NotFound`] when the path does not exist.
    fn download(&self, container: &str, path: &str) -> Fut<'_, ByteStream>;
    /// Everything carrying `label` (any value).
    fn list_labelled(&self, label: &str) -> Fut<'_, Vec<Labelled>>;
    fn remove(&self, resource: &Labelled) -> Fut<'_, ()>;
}
