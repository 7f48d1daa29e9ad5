//! The CircleCI orb registry, asked last for a registry orb that has no local source (after
//! `--orb`, the config's `orbs/` folder and the user cache). It is asked with the GraphQL query
//! `circleci orb source` sends (`orbVersion(orbVersionRef:)`: the orb's resolved `version` and
//! its `source`), and what it answers is written to the user cache by exact version, so the next
//! run needs no network.
//!
//! The network is optional: when the registry cannot be reached within [`CONNECT_TIMEOUT`]
//! (no route, no DNS, refused), the fetch fails silently and the orb stays missing (lazy orbs
//! then make it an error only for the jobs that use it); the registry is not asked again in the
//! same run. A registry that answers but cannot give the orb (not found, too slow, too large, a
//! bad reply) is a warning naming the orb and the reason.
//!
//! This is the only module of `process` that uses the network. Each fetch runs on its own thread
//! with its own small runtime (the commands that compile may already be inside one), and the
//! caller never waits longer than the timeouts, even for a resolver that hangs.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Uri;
use hyper::header::{ACCEPT, CONTENT_LENGTH, CONTENT_TYPE, HOST, USER_AGENT};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use super::orbs::OrbRef;
use crate::source::{Source, Sources};
use crate::store::safe_path::SafeDir;

/// The registry `circleci orb source` asks by default.
pub(crate) const DEFAULT_URL: &str = "https://circleci.com/graphql-unstable";

/// Overrides [`DEFAULT_URL`] (a CircleCI server install, or a test's local server).
pub(crate) const URL_VAR: &str = "LOCALCI_ORB_REGISTRY";

/// Set to `1` (or `true`, `yes`) to never ask the registry, like `--offline`.
pub(crate) const OFFLINE_VAR: &str = "LOCALCI_OFFLINE";

/// How long finding and connecting to the registry may take (DNS included): beyond it, the
/// network counts as unreachable and the run goes on offline, silently.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_millis(2500);

/// How long one fetch may take once connected (TLS, request and the whole reply).
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// The largest reply read. Published orbs are tens of kilobytes; the biggest are under 1 MB.
pub(crate) const REPLY_LIMIT: usize = 4 * 1024 * 1024;

/// The query `circleci orb source` sends: the version a reference resolves to, and its source.
const QUERY: &str = "query($orbVersionRef: String!) {
  orbVersion(orbVersionRef: $orbVersionRef) {
    id
    version
    orb { id }
    source
  }
}";

/// Where the registry is and how long it may take.
#[derive(Debug)]
pub struct Registry {
    endpoint: Endpoint,
    /// The user cache (`~/.cache/localci/orbs`) fetched orbs are written to.
    cache: PathBuf,
    connect_timeout: Duration,
    request_timeout: Duration,
    limit: usize,
    /// Set once the registry was unreachable or too slow: the rest of the run stays offline.
    down: AtomicBool,
}

#[derive(Clone, Debug)]
struct Endpoint {
    /// As the user wrote it, for messages.
    url: String,
    https: bool,
    host: String,
    port: u16,
    /// `host[:port]`, for the Host header.
    authority: String,
    path: String,
}

/// `LOCALCI_ORB_REGISTRY` is not a URL localci can use.
#[derive(Debug, thiserror::Error)]
#[error("{URL_VAR}={value} is not a usable registry URL: {why}")]
pub(crate) struct BadUrl {
    value: String,
    why: &'static str,
}

/// One orb the registry gave, saved in the cache.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Fetched {
    /// The exact reference, `circleci/node@5.2.0`.
    pub(crate) resolved: String,
    /// The cache file it was written to.
    pub(crate) path: PathBuf,
}

/// Why a fetch gave no orb.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FetchError {
    /// The registry could not be reached (no network, no DNS, refused, no connection in time).
    /// Not worth a warning: offline is a normal way to run.
    #[error("the registry cannot be reached: {0}")]
    Unreachable(String),
    /// An earlier fetch of this run found the registry unreachable or too slow.
    #[error("the registry was not reachable earlier in this run")]
    Skipped,
    #[error("{0} is not an orb reference the registry can resolve")]
    BadReference(String),
    #[error("the TLS connection failed: {0}")]
    Tls(#[source] std::io::Error),
    #[error("the connection failed: {0}")]
    Connection(#[source] hyper::Error),
    #[error("the registry did not answer within {} s", .0.as_secs())]
    Timeout(Duration),
    #[error("the reply is larger than {} MB; localci stopped reading it", .0 / (1024 * 1024))]
    TooLarge(usize),
    #[error("the registry answered HTTP {0}")]
    Status(u16),
    #[error("the reply is not what the orb query returns: {0}")]
    Reply(String),
    #[error("the registry says: {0}")]
    Registry(String),
    #[error("the registry has no such orb version")]
    NotFound,
    #[error("the registry answered version `{got}`, which does not match `{asked}`")]
    WrongVersion { asked: String, got: String },
    #[error("the orb's source is not a YAML map: {0}")]
    NotAnOrb(String),
    #[error("cannot save it in the cache as {}: {source}", path.display())]
    Cache {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl FetchError {
    /// Whether the failure is only "offline", which lazy orbs already report.
    pub(crate) fn is_silent(&self) -> bool {
        matches!(self, FetchError::Unreachable(_) | FetchError::Skipped)
    }
}

impl Registry {
    /// The registry the environment names (`LOCALCI_ORB_REGISTRY`, else CircleCI's), caching
    /// into `cache`; `None` when `LOCALCI_OFFLINE` turns the network off.
    pub(crate) fn from_env(
        env: &BTreeMap<String, String>,
        cache: PathBuf,
    ) -> Result<Option<Registry>, BadUrl> {
        let offline = env.get(OFFLINE_VAR).is_some_and(|v| {
            matches!(v.trim().to_ascii_lowercase().as_str(), "1" | "true" | "yes")
        });
        if offline {
            return Ok(None);
        }
        let url = env
            .get(URL_VAR)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
            .unwrap_or(DEFAULT_URL);
        Registry::new(url, cache).map(Some)
    }

    /// The registry at `url` (the GraphQL endpoint), caching into `cache`.
    pub(crate) fn new(url: &str, cache: PathBuf) -> Result<Registry, BadUrl> {
        Ok(Registry {
            endpoint: Endpoint::parse(url)?,
            cache,
            connect_timeout: CONNECT_TIMEOUT,
            request_timeout: REQUEST_TIMEOUT,
            limit: REPLY_LIMIT,
            down: AtomicBool::new(false),
        })
    }

    /// The GraphQL endpoint, as configured.
    pub(crate) fn url(&self) -> &str {
        &self.endpoint.url
    }

    /// Sets both timeouts (tests use short ones).
    #[cfg(test)]
    pub(crate) fn with_timeouts(mut self, connect: Duration, request: Duration) -> Self {
        self.connect_timeout = connect;
        self.request_timeout = request;
        self
    }

    /// Asks the registry for `reference` (`ns/name@version`, where the version may be partial
    /// or `volatile`: the registry resolves it) and saves the answer in the cache as
    /// `<ns>/<name>@<resolved version>.yml`.
    pub(crate) fn fetch(&self, reference: &str) -> Result<Fetched, FetchError> {
        let wanted = OrbRef::parse(reference)
            .filter(|r| [&r.ns, &r.name].iter().all(|p| p.chars().any(|c| c != '.')))
            .ok_or_else(|| FetchError::BadReference(reference.to_string()))?;
        if self.down.load(Ordering::Relaxed) {
            return Err(FetchError::Skipped);
        }
        let reply = self.exchange(reference).inspect_err(|e| {
            if e.is_silent() || matches!(e, FetchError::Timeout(_)) {
                self.down.store(true, Ordering::Relaxed);
            }
        })?;
        let (version, source) = answer(&reply)?;
        let exact = OrbRef {
            version: version.clone(),
            ..wanted.clone()
        };
        let fits = if wanted.version.starts_with("dev:") {
            version == wanted.version
        } else {
            semver(&version) && wanted.accepts(&exact)
        };
        if !fits {
            return Err(FetchError::WrongVersion {
                asked: reference.to_string(),
                got: version,
            });
        }
        let resolved = format!("{}/{}@{}", exact.ns, exact.name, exact.version);
        check_orb(&resolved, &source)?;
        let path = save(&self.cache, &exact, &source)?;
        Ok(Fetched { resolved, path })
    }

    /// Sends the query on a thread of its own and waits at most for the timeouts.
    fn exchange(&self, reference: &str) -> Result<Vec<u8>, FetchError> {
        let body = serde_json::json!({
            "query": QUERY,
            "variables": { "orbVersionRef": reference },
        })
        .to_string();
        let endpoint = self.endpoint.clone();
        let (connect, request, limit) = (self.connect_timeout, self.request_timeout, self.limit);
        let (tx, rx) = mpsc::channel();
        let spawned = std::thread::Builder::new()
            .name("orb-registry".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = tx.send(Err(FetchError::Unreachable(format!(
                            "cannot start the network runtime: {e}"
                        ))));
                        return;
                    }
                };
                let result = runtime.block_on(send(&endpoint, body, connect, request, limit));
                // A resolver thread stuck in the system's DNS is left behind, not waited for.
                runtime.shutdown_background();
                let _ = tx.send(result);
            });
        if let Err(e) = spawned {
            return Err(FetchError::Unreachable(format!(
                "cannot start a thread: {e}"
            )));
        }
        // The runtime's own timeouts end the fetch; this only guards against one that cannot
        // fire (a resolver blocking the thread).
        let guard = connect + request + Duration::from_millis(500);
        rx.recv_timeout(guard)
            .unwrap_or(Err(FetchError::Timeout(request)))
    }
}

impl Endpoint {
    fn parse(url: &str) -> Result<Endpoint, BadUrl> {
        let bad = |why| BadUrl {
            value: url.to_string(),
            why,
        };
        let uri: Uri = url
            .parse()
            .map_err(|_| bad("write it as https://host/graphql-unstable"))?;
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(bad("it must start with https:// or http://")),
        };
        let host = uri
            .host()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| bad("it has no host"))?;
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let authority = uri.authority().map_or(host, |a| a.as_str()).to_string();
        let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_string();
        Ok(Endpoint {
            url: url.to_string(),
            https,
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string(),
            port,
            authority,
            path,
        })
    }
}

/// Connects (within `connect`), then sends the query and reads the reply (within `request`).
async fn send(
    endpoint: &Endpoint,
    body: String,
    connect: Duration,
    request: Duration,
    limit: usize,
) -> Result<Vec<u8>, FetchError> {
    let stream = tokio::time::timeout(connect, open(&endpoint.host, endpoint.port))
        .await
        .map_err(|_| {
            FetchError::Unreachable(format!("no connection within {} ms", connect.as_millis()))
        })?
        .map_err(|e| FetchError::Unreachable(e.to_string()))?;
    let exchange = async {
        if endpoint.https {
            let tls = tls(&endpoint.host, stream).await?;
            post(endpoint, tls, body, limit).await
        } else {
            post(endpoint, stream, body, limit).await
        }
    };
    tokio::time::timeout(request, exchange)
        .await
        .map_err(|_| FetchError::Timeout(request))?
}

/// The first address of `host` that accepts a connection.
async fn open(host: &str, port: u16) -> std::io::Result<TcpStream> {
    let mut last = None;
    for addr in tokio::net::lookup_host((host, port)).await? {
        match TcpStream::connect(addr).await {
            Ok(stream) => return Ok(stream),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other(format!("{host} has no address"))))
}

/// TLS over `stream`, checked against the host's root certificates.
async fn tls(
    host: &str,
    stream: TcpStream,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, FetchError> {
    let roots = rustls_native_certs::load_native_certs();
    let mut store = rustls::RootCertStore::empty();
    store.add_parsable_certificates(roots.certs);
    if store.is_empty() {
        return Err(FetchError::Tls(std::io::Error::other(
            "no root certificates found on this host (install ca-certificates, or set SSL_CERT_FILE)",
        )));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| FetchError::Tls(std::io::Error::other(e)))?
        .with_root_certificates(store)
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from(host.to_string())
        .map_err(|e| FetchError::Tls(std::io::Error::other(e)))?;
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, stream)
        .await
        .map_err(FetchError::Tls)
}

/// POSTs the query on `io` and reads at most `limit` bytes of the reply.
async fn post<S>(
    endpoint: &Endpoint,
    io: S,
    body: String,
    limit: usize,
) -> Result<Vec<u8>, FetchError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(FetchError::Connection)?;
    tokio::spawn(connection);
    let request = hyper::Request::post(endpoint.path.as_str())
        .header(HOST, endpoint.authority.as_str())
        .header(CONTENT_TYPE, "application/json")
        .header(ACCEPT, "application/json")
        .header(USER_AGENT, concat!("localci/", env!("CARGO_PKG_VERSION")))
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| FetchError::Reply(e.to_string()))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(FetchError::Connection)?;
    let status = response.status();
    let declared = response
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(FetchError::TooLarge(limit));
    }
    let mut body = response.into_body();
    let mut out = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(FetchError::Connection)?;
        if let Ok(data) = frame.into_data() {
            if out.len() + data.len() > limit {
                return Err(FetchError::TooLarge(limit));
            }
            out.extend_from_slice(&data);
        }
    }
    if !status.is_success() {
        return Err(FetchError::Status(status.as_u16()));
    }
    Ok(out)
}

/// The resolved version and the source, from the GraphQL reply.
fn answer(reply: &[u8]) -> Result<(String, String), FetchError> {
    let value: serde_json::Value =
        serde_json::from_slice(reply).map_err(|e| FetchError::Reply(format!("not JSON ({e})")))?;
    if let Some(errors) = value.get("errors").and_then(|e| e.as_array())
        && !errors.is_empty()
    {
        let messages: Vec<&str> = errors
            .iter()
            .filter_map(|e| e.get("message").and_then(|m| m.as_str()))
            .collect();
        return Err(FetchError::Registry(if messages.is_empty() {
            "an error without a message".to_string()
        } else {
            messages.join("; ")
        }));
    }
    let data = value
        .get("data")
        .ok_or_else(|| FetchError::Reply("no `data`".to_string()))?;
    let orb = match data.get("orbVersion") {
        None => return Err(FetchError::Reply("no `data.orbVersion`".to_string())),
        Some(serde_json::Value::Null) => return Err(FetchError::NotFound),
        Some(orb) => orb,
    };
    // `circleci orb source` treats an empty id as "no such orb" too.
    if orb
        .get("id")
        .and_then(|i| i.as_str())
        .is_none_or(str::is_empty)
    {
        return Err(FetchError::NotFound);
    }
    let text = |key: &str| {
        orb.get(key)
            .and_then(|v| v.as_str())
            .map(str::to_string)
            .ok_or_else(|| FetchError::Reply(format!("no `{key}` string in `orbVersion`")))
    };
    Ok((text("version")?, text("source")?))
}

fn semver(v: &str) -> bool {
    let parts: Vec<&str> = v.split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
}

/// The source must be an orb (a YAML map) before it is cached: a bad answer is not kept.
fn check_orb(resolved: &str, source: &str) -> Result<(), FetchError> {
    let mut sources = Sources::new();
    let id = sources.add(Source::new(resolved, source.to_string()));
    match crate::yaml::parse(sources.get(id), id) {
        Ok(node) if node.as_map().is_some() => Ok(()),
        Ok(_) => Err(FetchError::NotAnOrb("not a map".to_string())),
        Err(d) => Err(FetchError::NotAnOrb(d.message)),
    }
}

/// Writes `source` as `<cache>/<ns>/<name>@<version>.yml`: to a new temporary file first, then
/// renamed into place, never through a symlink below the cache folder.
fn save(cache: &Path, orb: &OrbRef, source: &str) -> Result<PathBuf, FetchError> {
    let name = format!("{}@{}.yml", orb.name, orb.version);
    let path = cache.join(&orb.ns).join(&name);
    let failed = |source: std::io::Error| FetchError::Cache {
        path: path.clone(),
        source,
    };
    std::fs::create_dir_all(cache).map_err(failed)?;
    let dir = SafeDir::open_anchor(cache)
        .and_then(|root| root.create_dirs(Path::new(&orb.ns)))
        .map_err(failed)?;
    write_atomic(&dir, OsStr::new(&name), source.as_bytes()).map_err(failed)?;
    Ok(path)
}

/// Writes `bytes` as `name` in `dir`: a temporary file that is renamed over `name` once
/// complete, so a reader sees the old file or the new one, never half of one.
pub(crate) fn write_atomic(dir: &SafeDir, name: &OsStr, bytes: &[u8]) -> std::io::Result<()> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let temp = format!(
        ".{}.{}-{}.partial",
        name.to_string_lossy(),
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    let temp = OsStr::new(&temp);
    let written = dir.create_file(temp, 0o644).and_then(|mut file| {
        file.write_all(bytes)?;
        file.sync_all()
    });
    let renamed = written.and_then(|()| dir.rename(temp, dir, name));
    if renamed.is_err() {
        let _ = dir.remove(temp);
    }
    renamed
}

#[cfg(test)]
mod tests;
