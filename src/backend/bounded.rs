//! A transport for bollard, over a unix socket, plain TCP, TLS or ssh, that bounds what one
//! reply may make localci hold (issue 9: a server sending an endless reply pushed localci to
//! 5 GB). Each request gets its own connection whose reads go through a [`ReplyGuard`]: a reply
//! read whole stops with an error after 16 MB, a pull progress line after 1 MB, an exec output
//! frame after 16 MB (see [`super::reply`]); archives stream uncapped. A TLS connection is a
//! rustls client handshake with the endpoint's client certificate, checked against its CA
//! only; an ssh connection is `ssh ... docker system dial-stdio`, killed when the connection
//! drops. This module speaks HTTP only through hyper and must not buffer a reply itself.

use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::Stdio;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use bollard::BollardRequest;
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use hyper::body::Incoming;
use hyper::header::{HOST, HeaderValue};
use hyper::{Response, Uri};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::task::JoinHandle;

use super::endpoint::TlsFiles;
use super::reply::{ReplyGuard, Shape};

/// Where the daemon listens.
#[derive(Clone)]
pub(crate) enum Address {
    Unix(PathBuf),
    /// `host:port`.
    Tcp(String),
    /// `host:port`, over TLS.
    Tls(Arc<Tls>),
    /// `ssh ... docker system dial-stdio` for each connection.
    Ssh(Arc<Ssh>),
}

/// A daemon behind TLS: its address, the name its certificate must carry, and the client
/// settings (the endpoint's CA as the only root, its client certificate and key).
pub(crate) struct Tls {
    address: String,
    name: ServerName<'static>,
    connector: tokio_rustls::TlsConnector,
}

/// Why a TLS connection could not be set up or made; the text is one sentence.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TlsError {
    #[error("TLS: cannot read {}: {source}", .path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("TLS: {} holds no PEM certificate", .path.display())]
    NoCertificate { path: PathBuf },
    #[error("TLS: {} holds no PEM private key", .path.display())]
    NoKey { path: PathBuf },
    #[error("TLS: {} is not a valid PEM file ({source})", .path.display())]
    Pem {
        path: PathBuf,
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    #[error("TLS: the CA in {} is not usable ({source})", .path.display())]
    Ca {
        path: PathBuf,
        #[source]
        source: rustls::Error,
    },
    #[error("TLS: the client certificate {} and key {} are not usable ({source})", .cert.display(), .key.display())]
    ClientCertificate {
        cert: PathBuf,
        key: PathBuf,
        #[source]
        source: rustls::Error,
    },
    #[error("TLS: `{host}` is not a host name or IP address a certificate can name")]
    ServerName { host: String },
    /// No `#[source]`: bollard passes the transport's io::Error on as its own `source()`,
    /// and the cause underneath would then be shown instead of this sentence.
    #[error("the TLS handshake with {address} failed: {reason}")]
    Handshake { address: String, reason: String },
}

impl Tls {
    /// Reads the endpoint's PEM files for connections to `address` (`host:port`).
    pub(crate) fn new(address: &str, files: &TlsFiles) -> Result<Tls, TlsError> {
        let mut roots = rustls::RootCertStore::empty();
        for ca in certificates(&files.ca)? {
            roots.add(ca).map_err(|source| TlsError::Ca {
                path: files.ca.clone(),
                source,
            })?;
        }
        let chain = certificates(&files.cert)?;
        let key = private_key(&files.key)?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let client_error = |source| TlsError::ClientCertificate {
            cert: files.cert.clone(),
            key: files.key.clone(),
            source,
        };
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(client_error)?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .map_err(client_error)?;
        let host = host_of(address);
        let name = ServerName::try_from(host.to_string()).map_err(|_| TlsError::ServerName {
            host: host.to_string(),
        })?;
        Ok(Tls {
            address: address.to_string(),
            name,
            connector: tokio_rustls::TlsConnector::from(Arc::new(config)),
        })
    }

    async fn connect(&self) -> io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
        let stream = TcpStream::connect(&self.address).await?;
        stream.set_nodelay(true)?;
        self.connector
            .connect(self.name.clone(), stream)
            .await
            .map_err(|source| {
                // tokio-rustls wraps the rustls error (`invalid peer certificate: ...`).
                let reason = match source.get_ref() {
                    Some(inner) => inner.to_string(),
                    None if source.kind() == io::ErrorKind::UnexpectedEof => {
                        "the daemon closed the connection".to_string()
                    }
                    None => source.to_string(),
                };
                io::Error::other(TlsError::Handshake {
                    address: self.address.clone(),
                    reason,
                })
            })
    }
}

/// The host of `host:port` (`[::1]:2376` gives `::1`).
fn host_of(address: &str) -> &str {
    if let Some(rest) = address.strip_prefix('[') {
        return rest.split(']').next().unwrap_or_default();
    }
    address.rsplit_once(':').map_or(address, |(host, _)| host)
}

fn read_pem(path: &Path) -> Result<Vec<u8>, TlsError> {
    // A PEM file of a few certificates is kilobytes; anything far larger is not one.
    const MAX_PEM: u64 = 1 << 20;
    let read_error = |source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    };
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(
        &mut std::io::Read::take(std::fs::File::open(path).map_err(read_error)?, MAX_PEM + 1),
        &mut bytes,
    )
    .map_err(read_error)?;
    if bytes.len() as u64 > MAX_PEM {
        return Err(read_error(io::Error::other(format!(
            "it is larger than {MAX_PEM} bytes"
        ))));
    }
    Ok(bytes)
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read_pem(path)?;
    let found = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsError::Pem {
            path: path.to_path_buf(),
            source,
        })?;
    if found.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_path_buf(),
        });
    }
    Ok(found)
}

fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = read_pem(path)?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|source| match source {
        rustls::pki_types::pem::Error::NoItemsFound => TlsError::NoKey {
            path: path.to_path_buf(),
        },
        source => TlsError::Pem {
            path: path.to_path_buf(),
            source,
        },
    })
}

/// A daemon reached through `ssh [-l user] [-p port] -- host docker system dial-stdio`, as the
/// docker CLI reaches one; the user's `ssh` with its keys and `~/.ssh/config`.
#[derive(Debug)]
pub(crate) struct Ssh {
    user: Option<String>,
    host: String,
    port: Option<String>,
}

/// Why an ssh connection failed; the text is one sentence.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SshError {
    #[error("`{destination}` is not an ssh destination (ssh://[user@]host[:port])")]
    Destination { destination: String },
    /// No `#[source]`, as for [`TlsError::Handshake`].
    #[error("cannot run ssh: {reason}")]
    Spawn { reason: String },
    /// `detail` is what ssh printed on stderr (its own words: `Permission denied`,
    /// `Could not resolve hostname`), else its exit status if it has one yet.
    #[error("ssh {host} docker system dial-stdio ended without a reply: {detail}")]
    Ended { host: String, detail: String },
}

/// What is kept of ssh's own error output, for the message when it fails.
const SSH_STDERR_LIMIT: usize = 4096;

impl Ssh {
    /// `[user@]host[:port]`, the part of `ssh://` URL after the scheme.
    pub(crate) fn new(destination: &str) -> Result<Ssh, SshError> {
        let bad = || SshError::Destination {
            destination: destination.to_string(),
        };
        let authority = destination.trim_end_matches('/');
        if authority.is_empty() || authority.contains('/') {
            return Err(bad());
        }
        let (user, host) = match authority.rsplit_once('@') {
            Some((user, host)) => (Some(user.to_string()), host),
            None => (None, authority),
        };
        let (host, port) = if let Some(rest) = host.strip_prefix('[') {
            let (inside, after) = rest.split_once(']').ok_or_else(bad)?;
            match after.strip_prefix(':') {
                Some(port) => (inside, Some(port)),
                None if after.is_empty() => (inside, None),
                None => return Err(bad()),
            }
        } else {
            match host.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (host, None),
            }
        };
        let port_ok = port.is_none_or(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
        if host.is_empty() || !port_ok || user.as_deref() == Some("") {
            return Err(bad());
        }
        Ok(Ssh {
            user,
            host: host.to_string(),
            port: port.map(str::to_string),
        })
    }

    /// The arguments after `ssh`. `--` ends the options, so a host cannot be read as one.
    fn args(&self) -> Vec<String> {
        let mut args: Vec<String> = ["-o", "BatchMode=yes", "-o", "ConnectTimeout=30", "-T"]
            .map(String::from)
            .to_vec();
        if let Some(user) = &self.user {
            args.extend(["-l".to_string(), user.clone()]);
        }
        if let Some(port) = &self.port {
            args.extend(["-p".to_string(), port.clone()]);
        }
        args.extend(["--", &self.host, "docker", "system", "dial-stdio"].map(str::to_string));
        args
    }

    fn connect(&self) -> io::Result<SshStream> {
        let mut child = Command::new("ssh")
            .args(self.args())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                let reason = if e.kind() == io::ErrorKind::NotFound {
                    "it is not installed (no `ssh` on PATH)".to_string()
                } else {
                    e.to_string()
                };
                io::Error::other(SshError::Spawn { reason })
            })?;
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err(io::Error::other("ssh started without its pipes"));
        };
        // ssh's own messages, the first few KB, for the error when no reply comes.
        let stderr = tokio::spawn(async move {
            let mut kept = Vec::new();
            let mut stderr = stderr.take(SSH_STDERR_LIMIT as u64);
            let _ = stderr.read_to_end(&mut kept).await;
            let mut rest = stderr.into_inner();
            let mut sink = [0u8; 4096];
            while rest.read(&mut sink).await.is_ok_and(|n| n > 0) {}
            kept
        });
        Ok(SshStream {
            child,
            stdin: Some(stdin),
            stdout,
            stderr: Some(stderr),
            host: self.host.clone(),
            replied: false,
        })
    }
}

/// `ssh ... docker system dial-stdio`: its stdout is read, its stdin written; dropped, the
/// child is killed.
struct SshStream {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: ChildStdout,
    stderr: Option<JoinHandle<Vec<u8>>>,
    host: String,
    /// Whether stdout gave a byte: an end before that is a failed ssh, said with its stderr.
    replied: bool,
}

impl AsyncRead for SshStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        match Pin::new(&mut this.stdout).poll_read(cx, buf) {
            Poll::Ready(Ok(())) if buf.filled().len() > before => {
                this.replied = true;
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Ok(())) if !this.replied => {
                // The end before any reply: ssh failed; its stderr says why.
                let Some(stderr) = this.stderr.as_mut() else {
                    return Poll::Ready(Ok(()));
                };
                let Poll::Ready(kept) = Pin::new(stderr).poll(cx) else {
                    return Poll::Pending;
                };
                this.stderr = None;
                let text = String::from_utf8_lossy(&kept.unwrap_or_default()).into_owned();
                let text = text.lines().map(str::trim).filter(|l| !l.is_empty());
                let mut detail = text.collect::<Vec<_>>().join(" ");
                if detail.is_empty() {
                    // Its stderr is closed; whether it has exited yet is a race.
                    detail = match this.child.try_wait() {
                        Ok(Some(status)) => format!("ssh printed nothing ({status})"),
                        _ => "ssh printed nothing".to_string(),
                    };
                }
                Poll::Ready(Err(io::Error::other(SshError::Ended {
                    host: this.host.clone(),
                    detail,
                })))
            }
            other => other,
        }
    }
}

impl AsyncWrite for SshStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.stdin.as_mut() {
            Some(stdin) => Pin::new(stdin).poll_write(cx, buf),
            None => Poll::Ready(Err(io::ErrorKind::BrokenPipe.into())),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.stdin.as_mut() {
            Some(stdin) => Pin::new(stdin).poll_flush(cx),
            None => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Closing stdin ends the request side; dial-stdio passes the half-close on.
        if let Some(stdin) = self.stdin.as_mut() {
            futures_util::ready!(Pin::new(stdin).poll_shutdown(cx))?;
        }
        self.stdin = None;
        Poll::Ready(Ok(()))
    }
}

/// What the first reply over a cap was (`a line of a streamed reply over 1 MB`), shared by
/// the transport and the backend: bollard passes the transport's read error on as text only.
#[derive(Clone, Debug, Default)]
pub(crate) struct Tripped(Arc<OnceLock<String>>);

impl Tripped {
    pub(crate) fn what(&self) -> Option<String> {
        self.0.get().cloned()
    }
}

/// The request function bollard calls for every request to the daemon at `address`.
pub(crate) fn transport(
    address: Address,
    tripped: Tripped,
) -> impl Fn(BollardRequest) -> BoxFuture<'static, Result<Response<Incoming>, bollard::errors::Error>>
+ Send
+ Sync {
    move |request| send(address.clone(), tripped.clone(), request).boxed()
}

async fn send(
    address: Address,
    tripped: Tripped,
    mut request: BollardRequest,
) -> Result<Response<Incoming>, bollard::errors::Error> {
    let guard = ReplyGuard::new(Shape::of(request.method(), request.uri().path()));
    // One connection per request, in origin form with a Host header (Docker's HTTP server
    // wants one); the connection ends with the reply.
    let origin = request
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .parse::<Uri>()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    *request.uri_mut() = origin;
    let host = match &address {
        Address::Unix(_) | Address::Ssh(_) => HeaderValue::from_static("docker"),
        Address::Tcp(host) => HeaderValue::from_str(host)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?,
        Address::Tls(tls) => HeaderValue::from_str(&tls.address)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?,
    };
    request.headers_mut().insert(HOST, host);
    match address {
        Address::Unix(path) => {
            let stream = UnixStream::connect(&path).await?;
            exchange(stream, guard, tripped, request).await
        }
        Address::Tcp(host) => {
            let stream = TcpStream::connect(&host).await?;
            stream.set_nodelay(true)?;
            exchange(stream, guard, tripped, request).await
        }
        Address::Tls(tls) => {
            let stream = tls.connect().await?;
            exchange(stream, guard, tripped, request).await
        }
        Address::Ssh(ssh) => {
            let stream = ssh.connect()?;
            exchange(stream, guard, tripped, request).await
        }
    }
}

/// Sends `request` over `stream`, whose reads go through `guard`.
async fn exchange<S>(
    stream: S,
    guard: ReplyGuard,
    tripped: Tripped,
    request: BollardRequest,
) -> Result<Response<Incoming>, bollard::errors::Error>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let io = Guarded {
        inner: stream,
        guard,
        tripped,
    };
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await?;
    // Exec and attach switch the connection to a raw stream (101 Switching Protocols).
    tokio::spawn(connection.with_upgrades());
    Ok(sender.send_request(request).await?)
}

/// A connection whose reads fail once the reply passes a cap of its [`ReplyGuard`].
struct Guarded<S> {
    inner: S,
    guard: ReplyGuard,
    tripped: Tripped,
}

impl<S: AsyncRead + Unpin> AsyncRead for Guarded<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            let this = &mut *self;
            if let Err(e) = this.guard.read(&buf.filled()[before..]) {
                if let Some(what) = super::reply::too_large_in(&e) {
                    let _ = this.tripped.0.set(what);
                }
                return Poll::Ready(Err(e));
            }
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Guarded<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ssh_args(destination: &str) -> String {
        Ssh::new(destination)
            .expect("a destination")
            .args()
            .join(" ")
    }

    #[test]
    fn ssh_destinations_become_ssh_arguments() {
        let fixed = "-o BatchMode=yes -o ConnectTimeout=30 -T";
        assert_eq!(
            ssh_args("me@build-box:2222"),
            format!("{fixed} -l me -p 2222 -- build-box docker system dial-stdio")
        );
        assert_eq!(
            ssh_args("build-box"),
            format!("{fixed} -- build-box docker system dial-stdio")
        );
        assert_eq!(
            ssh_args("me@[::1]:22/"),
            format!("{fixed} -l me -p 22 -- ::1 docker system dial-stdio")
        );
        // An option-like host stays a host: it comes after `--`.
        assert_eq!(
            ssh_args("-oProxyCommand=x"),
            format!("{fixed} -- -oProxyCommand=x docker system dial-stdio")
        );
        for bad in ["", "me@", "@host", "host:", "host:22x", "host/path", "[::1"] {
            let err = Ssh::new(bad).expect_err(bad).to_string();
            assert!(err.contains("is not an ssh destination"), "{bad}: {err}");
        }
    }

    #[test]
    fn the_server_name_is_the_host_of_the_address() {
        assert_eq!(host_of("127.0.0.1:2376"), "127.0.0.1");
        assert_eq!(host_of("docker.example:2376"), "docker.example");
        assert_eq!(host_of("[::1]:2376"), "::1");
    }

    #[test]
    fn unusable_tls_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let files = TlsFiles {
            ca: dir.path().join("ca.pem"),
            cert: dir.path().join("cert.pem"),
            key: dir.path().join("key.pem"),
        };
        let error = |files: &TlsFiles| match Tls::new("127.0.0.1:2376", files) {
            Ok(_) => panic!("the files are not usable"),
            Err(e) => e.to_string(),
        };
        assert_eq!(
            error(&files),
            format!(
                "TLS: cannot read {}: No such file or directory (os error 2)",
                files.ca.display()
            )
        );
        std::fs::write(&files.ca, "not a certificate\n").unwrap();
        assert_eq!(
            error(&files),
            format!("TLS: {} holds no PEM certificate", files.ca.display())
        );
        // A PEM block that is cut short.
        std::fs::write(&files.ca, "-----BEGIN CERTIFICATE-----\nAAAA\n").unwrap();
        let e = error(&files);
        assert!(
            e.starts_with(&format!(
                "TLS: {} is not a valid PEM file (",
                files.ca.display()
            )),
            "{e}"
        );
        // A certificate block whose content is no certificate.
        std::fs::write(
            &files.ca,
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let e = error(&files);
        assert!(
            e.starts_with(&format!(
                "TLS: the CA in {} is not usable (",
                files.ca.display()
            )),
            "{e}"
        );
    }
}
