//! A `machine:` job's container, made to behave like CircleCI's machine image where steps
//! notice: they run as user `circleci` (home `/home/circleci`, passwordless `sudo`) and talk to
//! the engine's Docker through its socket, mounted at `/var/run/docker.sock` with the socket's
//! group added to the user.
//!
//! When the image has no `circleci` user, [`provision`] writes one into the created container
//! before it starts (`/etc/passwd`, `/etc/group`, `/etc/shadow`, the home folder), so the
//! container can start as that user; a sudoers rule is always added. No exec runs as root and
//! nothing is installed: an image without `sudo` or the docker CLI gets a warning from
//! [`check`] and runs anyway. Containers and images that the job's own `docker` commands make
//! belong to the job, not to localci (they carry no localci label).

use std::io::Read;

use futures_util::TryStreamExt;

use super::EngineError;
use super::containers::SocketMount;
use crate::backend::{Backend, BackendError, ExecSpec};
use crate::plan::{JobPlan, MACHINE_USER};
use crate::steps::process::collect;

/// The uid (and gid) given to a `circleci` user that localci creates, when free (CircleCI's
/// Linux machine images use 1001).
const FIRST_UID: u32 = 1001;
/// The sudoers rule of the machine user.
const SUDOERS: &str = "circleci ALL=(ALL) NOPASSWD:ALL\n";
const SUDOERS_FILE: &str = "etc/sudoers.d/localci-circleci";

/// Why a machine job cannot run here (exit 3: the environment).
#[derive(Debug, thiserror::Error)]
pub enum MachineError {
    /// The engine is not reached through a local socket that could be shared.
    #[error(
        "machine jobs need the Docker engine's socket to share with the job, but the engine is at {host}"
    )]
    NoSocket { host: String },
    #[error("the machine image {image} has no /etc/passwd; it cannot get a `circleci` user")]
    NoPasswd { image: String },
    #[error("the machine image {image} has an /etc/passwd localci cannot read: {reason}")]
    BadPasswd { image: String, reason: String },
}

impl MachineError {
    pub fn hint(&self) -> String {
        match self {
            MachineError::NoSocket { .. } => "run localci on the machine of the engine (DOCKER_HOST=unix:///var/run/docker.sock), where the socket can be mounted into the job's container; see docs/execute.md, \"Machine jobs\"".into(),
            MachineError::NoPasswd { .. } | MachineError::BadPasswd { .. } => "use a Linux distribution image (Debian, Ubuntu ...) as the machine image".into(),
        }
    }
}

/// The socket of an engine at `host` (`unix:///var/run/docker.sock`), if it is local.
pub fn local_socket(host: &str) -> Option<&str> {
    host.strip_prefix("unix://")
}

/// Refuses a run with machine jobs when the engine's socket cannot be shared with them.
pub fn check_endpoint(host: &str, plans: &[&JobPlan]) -> Result<(), MachineError> {
    if plans.iter().any(|p| p.machine.is_some()) && local_socket(host).is_none() {
        return Err(MachineError::NoSocket {
            host: host.to_string(),
        });
    }
    Ok(())
}

/// One file read from the container, with its owner and mode.
struct Fetched {
    text: String,
    mode: u32,
    uid: u64,
    gid: u64,
}

/// Gives the created (not yet started) container `id` a `circleci` user when its image has
/// none, with `socket`'s group, and a passwordless sudo rule.
pub async fn provision(
    backend: &dyn Backend,
    id: &str,
    image: &str,
    socket: Option<&SocketMount>,
) -> Result<(), EngineError> {
    let passwd =
        fetch(backend, id, "/etc/passwd")
            .await?
            .ok_or_else(|| MachineError::NoPasswd {
                image: image.to_string(),
            })?;
    let group = fetch(backend, id, "/etc/group").await?;
    let mut files = vec![TarFile {
        path: SUDOERS_FILE.into(),
        content: SUDOERS.into(),
        mode: 0o440,
        uid: 0,
        gid: 0,
    }];
    let added = add_user(
        &passwd.text,
        group.as_ref().map_or("", |g| &g.text),
        socket.and_then(|s| s.gid),
    )
    .map_err(|reason| MachineError::BadPasswd {
        image: image.to_string(),
        reason,
    })?;
    if let Some(added) = added {
        let shadow = fetch(backend, id, "/etc/shadow").await?;
        files.push(TarFile::like(&passwd, "etc/passwd", added.passwd));
        let group_meta = group.unwrap_or(Fetched {
            text: String::new(),
            mode: 0o644,
            uid: 0,
            gid: 0,
        });
        files.push(TarFile::like(&group_meta, "etc/group", added.group));
        if let Some(shadow) = shadow {
            let line = format!("{MACHINE_USER}:!:{}:0:99999:7:::\n", days_since_epoch());
            let text = with_line(&shadow.text, &line);
            files.push(TarFile::like(&shadow, "etc/shadow", text));
        }
        files.push(TarFile {
            path: "home/circleci/".into(),
            content: String::new(),
            mode: 0o755,
            uid: added.uid.into(),
            gid: added.gid.into(),
        });
    }
    let tar = tar_of(&files)
        .map_err(|e| EngineError::Setup(format!("cannot pack the machine user's files: {e}")))?;
    let stream = futures_util::stream::once(async move { Ok(bytes::Bytes::from(tar)) });
    backend.upload(id, "/", Box::pin(stream)).await?;
    Ok(())
}

/// Warnings about what the machine image lacks, seen from a step's point of view.
pub async fn check(backend: &dyn Backend, primary: &str, image: &str) -> Vec<String> {
    const CHECK: &str = "if ! command -v sudo >/dev/null 2>&1; then echo nosudo; \
        elif ! sudo -n true >/dev/null 2>&1; then echo sudofails; fi; \
        command -v docker >/dev/null 2>&1 || echo nodocker";
    let spec = ExecSpec {
        cmd: vec!["/bin/sh".into(), "-c".into(), CHECK.into()],
        ..ExecSpec::default()
    };
    let Ok(out) = collect(backend, primary, spec).await else {
        return Vec::new();
    };
    out.stdout
        .lines()
        .filter_map(|line| match line.trim() {
            "nosudo" => Some(format!(
                "the machine image {image} has no sudo: steps that use sudo fail (CircleCI's machine images have it; install the sudo package in the image)"
            )),
            "sudofails" => Some(format!(
                "`sudo -n true` fails for user circleci in the machine image {image}: steps that use sudo fail (does /etc/sudoers include /etc/sudoers.d?)"
            )),
            "nodocker" => Some(format!(
                "the machine image {image} has no docker CLI: steps that run docker fail (install docker.io or docker-ce-cli in the image)"
            )),
            _ => None,
        })
        .collect()
}

/// A file from the container, `None` when it does not exist.
async fn fetch(
    backend: &dyn Backend,
    id: &str,
    path: &str,
) -> Result<Option<Fetched>, EngineError> {
    let stream = match backend.download(id, path).await {
        Ok(stream) => stream,
        Err(BackendError::NotFound(_)) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let bytes: Vec<u8> = stream
        .map_ok(|chunk| chunk.to_vec())
        .try_concat()
        .await
        .map_err(|e| {
            EngineError::Setup(format!("cannot read {path} of the machine container: {e}"))
        })?;
    read_single(&bytes).map(Some).map_err(|e| {
        EngineError::Setup(format!("cannot read {path} of the machine container: {e}"))
    })
}

/// The first regular file of a tar.
fn read_single(tar_bytes: &[u8]) -> std::io::Result<Fetched> {
    let mut archive = tar::Archive::new(tar_bytes);
    for entry in archive.entries()? {
        let mut entry = entry?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        // A header without an owner (some tar writers leave it blank) means root's file.
        let header = entry.header();
        let (mode, uid, gid) = (
            header.mode().unwrap_or(0o644),
            header.uid().unwrap_or(0),
            header.gid().unwrap_or(0),
        );
        let mut text = String::new();
        entry.read_to_string(&mut text)?;
        return Ok(Fetched {
            text,
            mode,
            uid,
            gid,
        });
    }
    Err(std::io::Error::other("not a regular file"))
}

/// The user files after adding `circleci`.
#[derive(Debug, PartialEq, Eq)]
struct Added {
    passwd: String,
    group: String,
    uid: u32,
    gid: u32,
}

/// `None` when `passwd` has a `circleci` user already; else the files with the user (uid and
/// gid 1001 or the next free ones), its group, and the socket's group `socket_gid` (when the
/// image has no group with that id) with the user in it.
fn add_user(passwd: &str, group: &str, socket_gid: Option<u32>) -> Result<Option<Added>, String> {
    let users = ids(passwd, 2)?;
    if users.iter().any(|(name, _)| name == MACHINE_USER) {
        return Ok(None);
    }
    let groups = ids(group, 2)?;
    let free =
        |taken: &[(String, u32)], from: u32| (from..).find(|id| taken.iter().all(|(_, t)| t != id));
    let uid = free(&users, FIRST_UID).ok_or("no free uid")?;
    let mut gid = free(&groups, uid).ok_or("no free gid")?;
    if Some(gid) == socket_gid {
        gid = free(&groups, gid + 1).ok_or("no free gid")?;
    }
    let passwd = with_line(
        passwd,
        &format!("{MACHINE_USER}:x:{uid}:{gid}:circleci:/home/circleci:/bin/bash\n"),
    );
    let mut group = with_line(group, &format!("{MACHINE_USER}:x:{gid}:\n"));
    if let Some(socket_gid) = socket_gid.filter(|g| *g != 0) {
        group = match groups.iter().find(|(_, id)| *id == socket_gid) {
            Some((name, _)) => add_member(&group, name),
            None => {
                let name = if groups.iter().any(|(n, _)| n == "docker") {
                    "docker-host"
                } else {
                    "docker"
                };
                with_line(&group, &format!("{name}:x:{socket_gid}:{MACHINE_USER}\n"))
            }
        };
    }
    Ok(Some(Added {
        passwd,
        group,
        uid,
        gid,
    }))
}

/// `(name, id)` of each entry of a passwd or group file; `field` is the id's field index.
fn ids(text: &str, field: usize) -> Result<Vec<(String, u32)>, String> {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            let id = fields
                .get(field)
                .and_then(|f| f.parse().ok())
                .ok_or_else(|| format!("the line `{line}` has no numeric id"))?;
            Ok((fields[0].to_string(), id))
        })
        .collect()
}

/// `text` with `line` appended (after a newline when the text lacks its last one).
fn with_line(text: &str, line: &str) -> String {
    let mut out = text.to_string();
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    out.push_str(line);
    out
}

/// The group file with `circleci` added to the members of group `name`.
fn add_member(group: &str, name: &str) -> String {
    let mut out = String::new();
    for line in group.lines() {
        if line.split(':').next() == Some(name) {
            let sep = if line.ends_with(':') { "" } else { "," };
            out.push_str(&format!("{line}{sep}{MACHINE_USER}\n"));
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

fn days_since_epoch() -> u64 {
    super::now_unix() / 86_400
}

/// A file (or, with a path ending in `/`, a folder) to write into the container.
struct TarFile {
    path: String,
    content: String,
    mode: u32,
    uid: u64,
    gid: u64,
}

impl TarFile {
    /// A new content for a file read from the container, with its owner and mode.
    fn like(original: &Fetched, path: &str, content: String) -> TarFile {
        TarFile {
            path: path.into(),
            content,
            mode: original.mode,
            uid: original.uid,
            gid: original.gid,
        }
    }
}

fn tar_of(files: &[TarFile]) -> std::io::Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    for file in files {
        let mut header = tar::Header::new_gnu();
        header.set_mode(file.mode);
        header.set_uid(file.uid);
        header.set_gid(file.gid);
        header.set_mtime(super::now_unix());
        if file.path.ends_with('/') {
            header.set_entry_type(tar::EntryType::Directory);
            header.set_size(0);
            builder.append_data(&mut header, &file.path, std::io::empty())?;
        } else {
            header.set_size(file.content.len() as u64);
            builder.append_data(&mut header, &file.path, file.content.as_bytes())?;
        }
    }
    builder.into_inner()
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/bash\nubuntu:x:1000:1000::/home/ubuntu:/bin/bash\nother:x:1001:1001::/home/other:/bin/sh";
    const GROUP: &str = "root:x:0:\ndocker:x:999:\nubuntu:x:1000:\nother:x:1001:\n";

    #[test]
    fn an_image_with_circleci_is_left_as_it_is() {
        let passwd =
            "root:x:0:0:root:/root:/bin/bash\ncircleci:x:3434:3434::/home/circleci:/bin/bash\n";
        assert_eq!(add_user(passwd, GROUP, Some(998)).unwrap(), None);
    }

    #[test]
    fn the_user_gets_the_first_free_ids_and_the_sockets_group() {
        let added = add_user(PASSWD, GROUP, Some(998)).unwrap().unwrap();
        assert_eq!((added.uid, added.gid), (1002, 1002));
        assert!(
            added
                .passwd
                .ends_with("/bin/sh\ncircleci:x:1002:1002:circleci:/home/circleci:/bin/bash\n"),
            "{}",
            added.passwd
        );
        // The image has a `docker` group with another id: the socket's gets its own name.
        assert!(
            added
                .group
                .ends_with("circleci:x:1002:\ndocker-host:x:998:circleci\n")
        );
    }

    #[test]
    fn an_existing_group_with_the_sockets_id_gets_the_user_as_member() {
        let added = add_user(PASSWD, GROUP, Some(999)).unwrap().unwrap();
        assert!(
            added.group.contains("\ndocker:x:999:circleci\n"),
            "{}",
            added.group
        );
        let group = "root:x:0:\nsock:x:999:a,b\n";
        let added = add_user(PASSWD, group, Some(999)).unwrap().unwrap();
        assert!(added.group.contains("\nsock:x:999:a,b,circleci\n"));
        // A root-owned socket needs no group: gid 0 is added to the container as it is.
        let added = add_user(PASSWD, "root:x:0:\n", Some(0)).unwrap().unwrap();
        assert_eq!(added.group, "root:x:0:\ncircleci:x:1002:\n");
    }

    #[test]
    fn the_users_gid_never_takes_the_sockets() {
        let added = add_user("root:x:0:0::/root:/bin/sh\n", "root:x:0:\n", Some(1001))
            .unwrap()
            .unwrap();
        assert_eq!((added.uid, added.gid), (1001, 1002));
        assert!(added.group.ends_with("docker:x:1001:circleci\n"));
    }

    #[test]
    fn a_broken_passwd_is_an_error() {
        assert!(add_user("root:x:zero:0::/:/bin/sh\n", "", None).is_err());
    }

    #[test]
    fn files_round_trip_through_tar_with_their_owner() {
        let tar = tar_of(&[TarFile {
            path: "etc/shadow".into(),
            content: "root:*:1:0:::::\n".into(),
            mode: 0o640,
            uid: 0,
            gid: 42,
        }])
        .unwrap();
        let back = read_single(&tar).unwrap();
        assert_eq!(
            (back.text.as_str(), back.mode, back.gid),
            ("root:*:1:0:::::\n", 0o640, 42)
        );
    }

    fn fake_with(files: &[(&str, &str)]) -> crate::backend::fake::FakeBackend {
        let backend = crate::backend::fake::FakeBackend::new(&["img"]);
        backend.state().files.extend(
            files
                .iter()
                .map(|(path, text)| ((*path).to_string(), text.as_bytes().to_vec())),
        );
        backend
    }

    fn file(backend: &crate::backend::fake::FakeBackend, path: &str) -> String {
        String::from_utf8(backend.state().files[path].clone()).unwrap()
    }

    #[tokio::test]
    async fn provisioning_writes_the_user_before_the_container_starts() {
        let backend = fake_with(&[
            ("/etc/passwd", PASSWD),
            ("/etc/group", GROUP),
            ("/etc/shadow", "root:*:19000:0:99999:7:::\n"),
        ]);
        let socket = SocketMount {
            host_path: "/var/run/docker.sock".into(),
            container_path: "/var/run/docker.sock".into(),
            gid: Some(999),
        };
        provision(&backend, "c1", "img", Some(&socket))
            .await
            .unwrap();
        assert!(file(&backend, "/etc/passwd").ends_with(":/home/circleci:/bin/bash\n"));
        assert!(file(&backend, "/etc/group").contains("\ndocker:x:999:circleci\n"));
        assert!(file(&backend, "/etc/shadow").contains("\ncircleci:!:"));
        assert_eq!(
            file(&backend, "/etc/sudoers.d/localci-circleci"),
            "circleci ALL=(ALL) NOPASSWD:ALL\n"
        );
        let uploads = &backend.state().uploads;
        assert_eq!((uploads[0].0.as_str(), uploads[0].1.as_str()), ("c1", "/"));
    }

    #[tokio::test]
    async fn an_image_with_the_user_only_gets_the_sudo_rule() {
        let passwd = "root:x:0:0::/root:/bin/sh\ncircleci:x:3434:3434::/home/circleci:/bin/sh\n";
        let backend = fake_with(&[("/etc/passwd", passwd)]);
        provision(&backend, "c1", "img", None).await.unwrap();
        assert_eq!(file(&backend, "/etc/passwd"), passwd);
        assert!(!backend.state().files.contains_key("/etc/group"));
        assert!(
            backend
                .state()
                .files
                .contains_key("/etc/sudoers.d/localci-circleci")
        );
    }

    #[tokio::test]
    async fn an_image_without_passwd_is_refused() {
        let backend = fake_with(&[]);
        let error = provision(&backend, "c1", "scratchy", None)
            .await
            .unwrap_err();
        assert!(
            matches!(error, EngineError::Machine(MachineError::NoPasswd { ref image }) if image == "scratchy"),
            "{error}"
        );
    }

    fn machine_plan() -> JobPlan {
        use crate::source::{Source, Sources};
        let yaml = "version: 2\njobs:\n  build:\n    machine: true\n    steps: [checkout]\n";
        let mut sources = Sources::new();
        let id = sources.add(Source::new("t.yml", yaml.to_string()));
        let node = crate::yaml::parse(sources.get(id), id).unwrap();
        let config = crate::config::parse(&node).unwrap();
        let options = crate::plan::PlanOptions {
            node_total: 1,
            machine_images: crate::plan::MachineImages {
                every: Some("my/machine".into()),
                ..Default::default()
            },
            ..Default::default()
        };
        match crate::plan::plan(&config, "build", &options).unwrap() {
            crate::plan::Plan::Run(plan) => *plan,
            crate::plan::Plan::Nothing(why) => panic!("{why}"),
        }
    }

    #[test]
    fn a_machine_plan_runs_its_image_as_circleci() {
        let plan = machine_plan();
        assert_eq!(plan.images.len(), 1);
        assert_eq!(plan.images[0].image, "my/machine");
        assert_eq!(plan.images[0].user.as_deref(), Some(MACHINE_USER));
        assert_eq!(plan.machine.as_ref().unwrap().image, "default");
    }

    #[test]
    fn machine_jobs_refuse_an_engine_whose_socket_cannot_be_shared() {
        let plan = machine_plan();
        assert!(check_endpoint("unix:///var/run/docker.sock", &[&plan]).is_ok());
        let error = check_endpoint("tcp://127.0.0.1:2375", &[&plan]).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("the engine is at tcp://127.0.0.1:2375")
        );
        assert!(error.hint().contains("unix://"));
        let docker = JobPlan {
            machine: None,
            ..plan
        };
        assert!(check_endpoint("tcp://127.0.0.1:2375", &[&docker]).is_ok());
    }

    #[test]
    fn only_a_local_socket_can_be_shared() {
        assert_eq!(
            local_socket("unix:///var/run/docker.sock"),
            Some("/var/run/docker.sock")
        );
        assert_eq!(local_socket("tcp://10.0.0.1:2375"), None);
    }
}
