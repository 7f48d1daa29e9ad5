//! Which Docker Engine endpoint localci talks to, decided as the docker CLI decides it
//! (docs.docker.com, "docker context use"): `DOCKER_HOST` first (TLS from `DOCKER_TLS_VERIFY`
//! and `DOCKER_CERT_PATH` for tcp), else the context that `DOCKER_CONTEXT` names, else the
//! config's `currentContext` (what `docker context use`, Docker Desktop and colima write), else
//! the platform's default socket.
//!
//! Pure apart from reading the Docker client folder (`DOCKER_CONFIG`, or `~/.docker`): it
//! connects to nothing and imports no bollard (`docker.rs` connects). Every environment
//! variable comes from the map the caller passes in.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest, Sha256};

/// Where the daemon listens when nothing says otherwise.
#[cfg(unix)]
pub(crate) const DEFAULT_HOST: &str = "unix:///var/run/docker.sock";
#[cfg(windows)]
pub(crate) const DEFAULT_HOST: &str = "npipe:////./pipe/docker_engine";

/// The name docker uses for "no context: `DOCKER_HOST` or the default socket".
const DEFAULT_CONTEXT: &str = "default";
/// `config.json` and a context's `meta.json` are a few hundred bytes; anything far larger is
/// not a Docker client file and is not read into memory.
const MAX_FILE: u64 = 1 << 20;

/// A Docker Engine endpoint and why it was chosen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// The URL as the docker CLI writes it (`unix:///var/run/docker.sock`, `tcp://host:2376`,
    /// `ssh://user@host`).
    pub host: String,
    /// Client certificate, key and CA for a TLS connection (tcp only).
    pub tls: Option<TlsFiles>,
    pub origin: Origin,
}

/// The three PEM files of a TLS connection to the daemon.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// What chose the endpoint, for messages ("tcp://... (from DOCKER_HOST)").
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    DockerHost,
    /// A context named by `DOCKER_CONTEXT`.
    ContextEnv(String),
    /// The config's `currentContext` (`docker context use`).
    ContextCurrent(String),
    Default,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::DockerHost => write!(f, "from DOCKER_HOST"),
            Origin::ContextEnv(name) => write!(f, "Docker context `{name}` from DOCKER_CONTEXT"),
            Origin::ContextCurrent(name) => {
                write!(f, "Docker context `{name}` from `docker context use`")
            }
            Origin::Default => write!(f, "the default; DOCKER_HOST is not set"),
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tls = if self.tls.is_some() { ", TLS" } else { "" };
        write!(f, "{} ({}{tls})", self.host, self.origin)
    }
}

/// Why no endpoint could be chosen. The message is the reason; [`EndpointError::subject`] says
/// which setting it is about, so that the two read "cannot reach the Docker daemon at
/// <subject>: <reason>".
#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    #[error("the scheme is not supported (use unix://, tcp://, http://, https:// or ssh://)")]
    UnsupportedScheme { host: String },
    #[error("the context does not exist ({} is missing; `docker context ls` lists them)", .meta.display())]
    NoContext { origin: String, meta: PathBuf },
    #[error("{} has no Docker endpoint", .meta.display())]
    NoDockerEndpoint { name: String, meta: PathBuf },
    #[error(
        "the context sets SkipTLSVerify, which localci does not support: give it the daemon's CA (docker context update --docker \"host=...,ca=...,cert=...,key=...\")"
    )]
    SkipTlsVerify { name: String },
    #[error(
        "DOCKER_TLS is set without DOCKER_TLS_VERIFY: localci only connects over TLS with verification; set DOCKER_TLS_VERIFY=1 and DOCKER_CERT_PATH"
    )]
    TlsWithoutVerify { host: String },
    #[error("TLS: {} is missing (DOCKER_CERT_PATH names the folder holding ca.pem, cert.pem and key.pem)", .path.display())]
    MissingCertificate { host: String, path: PathBuf },
    #[error("cannot read {}: {source}", .path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is larger than {MAX_FILE} bytes; it is not a Docker client file", .path.display())]
    TooLarge { path: PathBuf },
    #[error("{} is not valid JSON: {source}", .path.display())]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

impl EndpointError {
    /// The setting the error is about: `DOCKER_HOST=...`, a context, or the client config.
    pub fn subject(&self) -> String {
        match self {
            EndpointError::UnsupportedScheme { host }
            | EndpointError::TlsWithoutVerify { host } => {
                format!("DOCKER_HOST={host}")
            }
            EndpointError::MissingCertificate { host, .. } => host.clone(),
            EndpointError::NoContext { origin, .. } => origin.clone(),
            EndpointError::NoDockerEndpoint { name, .. }
            | EndpointError::SkipTlsVerify { name } => {
                format!("Docker context `{name}`")
            }
            EndpointError::Read { .. }
            | EndpointError::TooLarge { .. }
            | EndpointError::Json { .. } => "the endpoint of the Docker client config".to_string(),
        }
    }
}

/// The part of `~/.docker/config.json` that matters here.
#[derive(Deserialize, Default)]
struct ClientConfig {
    #[serde(rename = "currentContext", default)]
    current_context: Option<String>,
}

/// `~/.docker/contexts/meta/<sha256(name)>/meta.json`.
#[derive(Deserialize)]
struct ContextMeta {
    #[serde(rename = "Endpoints", default)]
    endpoints: BTreeMap<String, ContextEndpoint>,
}

#[derive(Deserialize)]
struct ContextEndpoint {
    #[serde(rename = "Host", default)]
    host: Option<String>,
    #[serde(rename = "SkipTLSVerify", default)]
    skip_tls_verify: bool,
}

/// Chooses the endpoint from `env` (the process environment) and the Docker client folder.
pub fn resolve(env: &BTreeMap<String, String>) -> Result<Endpoint, EndpointError> {
    let var = |name: &str| env.get(name).filter(|v| !v.is_empty()).cloned();
    if let Some(host) = var("DOCKER_HOST") {
        return from_docker_host(env, &host);
    }
    let dir = config_dir(env);
    let (name, origin) = match var("DOCKER_CONTEXT") {
        Some(name) => (Some(name.clone()), Origin::ContextEnv(name)),
        None => match current_context(dir.as_deref())? {
            Some(name) => (Some(name.clone()), Origin::ContextCurrent(name)),
            None => (None, Origin::Default),
        },
    };
    match (name, dir) {
        (Some(name), Some(dir)) if name != DEFAULT_CONTEXT => from_context(&dir, &name, origin),
        _ => Ok(Endpoint {
            host: DEFAULT_HOST.to_string(),
            tls: None,
            origin: Origin::Default,
        }),
    }
}

/// `DOCKER_CONFIG`, else `~/.docker`; `None` without either.
fn config_dir(env: &BTreeMap<String, String>) -> Option<PathBuf> {
    let var = |name: &str| env.get(name).filter(|v| !v.is_empty());
    var("DOCKER_CONFIG")
        .map(PathBuf::from)
        .or_else(|| var("HOME").map(|home| Path::new(home).join(".docker")))
}

fn from_docker_host(env: &BTreeMap<String, String>, host: &str) -> Result<Endpoint, EndpointError> {
    let host = with_default_port(host, env)?;
    let set = |name: &str| env.get(name).is_some_and(|v| !v.is_empty());
    // The docker CLI: DOCKER_TLS_VERIFY (any non-empty value) turns TLS with verification on;
    // the certificates are in DOCKER_CERT_PATH, else the config folder.
    let wants_tls = set("DOCKER_TLS_VERIFY") || host.starts_with("https://");
    if !wants_tls && set("DOCKER_TLS") {
        return Err(EndpointError::TlsWithoutVerify { host });
    }
    let tls = if wants_tls && !host.starts_with("ssh://") && !host.starts_with("unix://") {
        let dir = env
            .get("DOCKER_CERT_PATH")
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
            .or_else(|| config_dir(env))
            .unwrap_or_default();
        Some(tls_files(&host, &dir)?)
    } else {
        None
    };
    Ok(Endpoint {
        host,
        tls,
        origin: Origin::DockerHost,
    })
}

/// Checks the scheme, and adds docker's default port to a tcp address without one (2375, or
/// 2376 with TLS), as the docker CLI does.
fn with_default_port(host: &str, env: &BTreeMap<String, String>) -> Result<String, EndpointError> {
    let unsupported = || EndpointError::UnsupportedScheme {
        host: host.to_string(),
    };
    let Some((scheme, rest)) = host.split_once("://") else {
        return Err(unsupported());
    };
    match scheme {
        "unix" | "ssh" | "npipe" => Ok(host.to_string()),
        "tcp" | "http" | "https" => {
            let authority = rest.split('/').next().unwrap_or_default();
            if authority.is_empty() {
                return Err(unsupported());
            }
            let has_port = authority.rsplit_once(':').is_some_and(|(_, port)| {
                !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit())
            }) && !authority.ends_with(']');
            if has_port {
                return Ok(host.to_string());
            }
            let tls =
                scheme == "https" || env.get("DOCKER_TLS_VERIFY").is_some_and(|v| !v.is_empty());
            let port = if tls { 2376 } else { 2375 };
            Ok(format!("{scheme}://{authority}:{port}"))
        }
        _ => Err(unsupported()),
    }
}

fn tls_files(host: &str, dir: &Path) -> Result<TlsFiles, EndpointError> {
    let files = TlsFiles {
        ca: dir.join("ca.pem"),
        cert: dir.join("cert.pem"),
        key: dir.join("key.pem"),
    };
    for path in [&files.ca, &files.cert, &files.key] {
        if !path.is_file() {
            return Err(EndpointError::MissingCertificate {
                host: host.to_string(),
                path: path.clone(),
            });
        }
    }
    Ok(files)
}

fn current_context(dir: Option<&Path>) -> Result<Option<String>, EndpointError> {
    let Some(path) = dir.map(|d| d.join("config.json")) else {
        return Ok(None);
    };
    let Some(text) = read_small(&path)? else {
        return Ok(None);
    };
    let config: ClientConfig =
        serde_json::from_str(&text).map_err(|source| EndpointError::Json { path, source })?;
    Ok(config.current_context.filter(|c| !c.is_empty()))
}

/// A context's folder name: the hex SHA-256 of its name (docker/cli `store.contextdirOf`).
fn context_id(name: &str) -> String {
    Sha256::digest(name.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn from_context(dir: &Path, name: &str, origin: Origin) -> Result<Endpoint, EndpointError> {
    let id = context_id(name);
    let meta_path = dir.join("contexts/meta").join(&id).join("meta.json");
    let Some(text) = read_small(&meta_path)? else {
        return Err(EndpointError::NoContext {
            origin: origin.to_string(),
            meta: meta_path,
        });
    };
    let meta: ContextMeta = serde_json::from_str(&text).map_err(|source| EndpointError::Json {
        path: meta_path.clone(),
        source,
    })?;
    let docker = meta.endpoints.get("docker");
    let Some(host) = docker
        .and_then(|d| d.host.clone())
        .filter(|h| !h.is_empty())
    else {
        return Err(EndpointError::NoDockerEndpoint {
            name: name.to_string(),
            meta: meta_path,
        });
    };
    if docker.is_some_and(|d| d.skip_tls_verify) {
        return Err(EndpointError::SkipTlsVerify {
            name: name.to_string(),
        });
    }
    // `docker context create --docker "host=...,ca=...,cert=...,key=..."` stores the files here.
    let tls_dir = dir.join("contexts/tls").join(&id).join("docker");
    let tls = if tls_dir.is_dir() {
        Some(tls_files(&host, &tls_dir)?)
    } else {
        None
    };
    Ok(Endpoint { host, tls, origin })
}

/// The file's text; `None` when it does not exist.
fn read_small(path: &Path) -> Result<Option<String>, EndpointError> {
    let read_error = |source| EndpointError::Read {
        path: path.to_path_buf(),
        source,
    };
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(read_error(e)),
    };
    let mut text = String::new();
    file.take(MAX_FILE + 1)
        .read_to_string(&mut text)
        .map_err(read_error)?;
    if text.len() as u64 > MAX_FILE {
        return Err(EndpointError::TooLarge {
            path: path.to_path_buf(),
        });
    }
    Ok(Some(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// A Docker client folder with a context `name` whose docker host is `host`.
    fn with_context(dir: &Path, name: &str, host: &str) {
        let meta = dir.join("contexts/meta").join(context_id(name));
        std::fs::create_dir_all(&meta).unwrap();
        std::fs::write(
            meta.join("meta.json"),
            format!(
                r#"{{"Name":"{name}","Metadata":{{"Description":"test"}},"Endpoints":{{"docker":{{"Host":"{host}","SkipTLSVerify":false}}}}}}"#
            ),
        )
        .unwrap();
    }

    fn write_certs(dir: &Path) {
        std::fs::create_dir_all(dir).unwrap();
        for f in ["ca.pem", "cert.pem", "key.pem"] {
            std::fs::write(dir.join(f), "pem").unwrap();
        }
    }

    #[test]
    fn the_context_folder_is_the_sha256_of_the_name() {
        // `printf default | sha256sum`, the folder name docker uses for a context `default`.
        assert_eq!(
            context_id("default"),
            "37a8eec1ce19687d132fe29051dca629d164e2c4958ba141d5f4133a33f0688f"
        );
    }

    #[test]
    fn without_anything_the_default_socket_is_used() {
        let home = tempfile::tempdir().unwrap();
        let e = resolve(&env(&[("HOME", home.path().to_str().unwrap())])).unwrap();
        assert_eq!(e.host, DEFAULT_HOST);
        assert_eq!(e.origin, Origin::Default);
        assert_eq!(resolve(&env(&[])).unwrap().host, DEFAULT_HOST);
    }

    #[test]
    fn docker_host_wins_over_contexts() {
        let home = tempfile::tempdir().unwrap();
        let dir = home.path().join(".docker");
        with_context(&dir, "colima", "unix:///colima.sock");
        std::fs::write(dir.join("config.json"), r#"{"currentContext":"colima"}"#).unwrap();
        let e = resolve(&env(&[
            ("HOME", home.path().to_str().unwrap()),
            ("DOCKER_HOST", "tcp://127.0.0.1:2375"),
            ("DOCKER_CONTEXT", "colima"),
        ]))
        .unwrap();
        assert_eq!(e.host, "tcp://127.0.0.1:2375");
        assert_eq!(e.to_string(), "tcp://127.0.0.1:2375 (from DOCKER_HOST)");
    }

    #[test]
    fn the_current_context_of_the_config_is_used() {
        let home = tempfile::tempdir().unwrap();
        let dir = home.path().join(".docker");
        with_context(
            &dir,
            "colima",
            "unix:///home/me/.colima/default/docker.sock",
        );
        std::fs::write(
            dir.join("config.json"),
            r#"{"auths":{},"currentContext":"colima"}"#,
        )
        .unwrap();
        let e = resolve(&env(&[("HOME", home.path().to_str().unwrap())])).unwrap();
        assert_eq!(e.host, "unix:///home/me/.colima/default/docker.sock");
        assert_eq!(e.origin, Origin::ContextCurrent("colima".into()));
        assert!(e.tls.is_none());
    }

    #[test]
    fn docker_context_wins_over_the_current_context_and_default_means_none() {
        let config = tempfile::tempdir().unwrap();
        with_context(config.path(), "remote", "tcp://10.0.0.2:2376");
        write_certs(
            &config
                .path()
                .join("contexts/tls")
                .join(context_id("remote"))
                .join("docker"),
        );
        std::fs::write(
            config.path().join("config.json"),
            r#"{"currentContext":"missing"}"#,
        )
        .unwrap();
        let base = [("DOCKER_CONFIG", config.path().to_str().unwrap())];
        let e = resolve(&env(&[base[0], ("DOCKER_CONTEXT", "remote")])).unwrap();
        assert_eq!(e.host, "tcp://10.0.0.2:2376");
        assert!(e.tls.is_some(), "the context's TLS files are used");
        let e = resolve(&env(&[base[0], ("DOCKER_CONTEXT", "default")])).unwrap();
        assert_eq!(e.host, DEFAULT_HOST);
        let err = resolve(&env(&base)).unwrap_err();
        assert_eq!(
            err.subject(),
            "Docker context `missing` from `docker context use`"
        );
        assert!(
            err.to_string().starts_with("the context does not exist ("),
            "{err}"
        );
    }

    #[test]
    fn tls_comes_from_docker_cert_path_and_the_port_defaults_like_docker() {
        let certs = tempfile::tempdir().unwrap();
        write_certs(certs.path());
        let e = resolve(&env(&[
            ("DOCKER_HOST", "tcp://docker.example"),
            ("DOCKER_TLS_VERIFY", "1"),
            ("DOCKER_CERT_PATH", certs.path().to_str().unwrap()),
        ]))
        .unwrap();
        assert_eq!(e.host, "tcp://docker.example:2376");
        assert_eq!(e.tls.unwrap().key, certs.path().join("key.pem"));
        let e = resolve(&env(&[("DOCKER_HOST", "tcp://10.1.2.3")])).unwrap();
        assert_eq!(e.host, "tcp://10.1.2.3:2375");
        assert!(e.tls.is_none());
    }

    #[test]
    fn bad_settings_say_what_to_fix() {
        let certs = tempfile::tempdir().unwrap();
        let err = resolve(&env(&[
            ("DOCKER_HOST", "tcp://h:2376"),
            ("DOCKER_TLS_VERIFY", "1"),
            ("DOCKER_CERT_PATH", certs.path().to_str().unwrap()),
        ]))
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("ca.pem is missing (DOCKER_CERT_PATH names"),
            "{err}"
        );
        let err = resolve(&env(&[("DOCKER_HOST", "/var/run/docker.sock")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("the scheme is not supported"), "{err}");
        let err = resolve(&env(&[
            ("DOCKER_HOST", "tcp://h:2376"),
            ("DOCKER_TLS", "1"),
        ]))
        .unwrap_err()
        .to_string();
        assert!(err.contains("set DOCKER_TLS_VERIFY=1"), "{err}");
        // ssh takes a port in the URL (`ssh -p 2222`), as the docker CLI does.
        let e = resolve(&env(&[("DOCKER_HOST", "ssh://me@build-box:2222")])).unwrap();
        assert_eq!(e.host, "ssh://me@build-box:2222");
        assert!(resolve(&env(&[("DOCKER_HOST", "ssh://me@build-box")])).is_ok());
        let config = tempfile::tempdir().unwrap();
        std::fs::write(config.path().join("config.json"), "{not json").unwrap();
        let err = resolve(&env(&[("DOCKER_CONFIG", config.path().to_str().unwrap())]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("config.json is not valid JSON: key must be a string at line 1 column 2"),
            "{err}"
        );
    }
}
