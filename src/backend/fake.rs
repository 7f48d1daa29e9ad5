//! An in-memory [`Backend`] for fast engine and step tests. Containers are records; files
//! uploaded to any container land in one shared in-memory file system; execs are answered by
//! a handler, by default a tiny "shell" that understands localci's helper scripts and a few
//! commands in step scripts (`echo`, `echo ... >&2`, `exit N`, `sleep S`, `printenv NAME`,
//! `hang`). Test-only.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::{self, BoxStream};
use futures_util::{FutureExt, StreamExt};
use tokio::sync::Notify;

use super::{
    Attached, Backend, BackendError, ByteStream, ContainerSpec, Credentials, Exec, ExecSpec, Fut,
    ImageInfo, LABEL, Labelled, PullProgress, ResourceKind, Result, Stream, TtyExec, TtySize,
};

/// A container the fake created.
#[derive(Clone, Debug)]
pub struct FakeContainer {
    pub spec: ContainerSpec,
    pub running: bool,
}

/// One exec the engine asked for.
#[derive(Clone, Debug)]
pub struct ExecCall {
    pub container: String,
    pub spec: ExecSpec,
}

impl ExecCall {
    /// The helper name (`localci-step`, `localci-setup` ...) of a `sh -c SCRIPT NAME ...` call.
    pub fn helper(&self) -> Option<&str> {
        self.spec.cmd.get(3).map(String::as_str)
    }

    /// The script of a `localci-step` call.
    pub fn step_script(&self) -> Option<&str> {
        (self.helper() == Some("localci-step")).then(|| self.spec.cmd[6].as_str())
    }

    pub fn env(&self, key: &str) -> Option<&str> {
        self.spec
            .env
            .iter()
            .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
    }
}

/// What an exec prints and how it ends.
#[derive(Clone, Debug, Default)]
pub struct Reply {
    pub output: Vec<(Stream, String)>,
    pub exit_code: i64,
    pub delay: Duration,
    /// Never ends on its own (until killed).
    pub hang: bool,
}

type Handler = Box<dyn Fn(&ExecCall, &State) -> Option<Reply> + Send + Sync>;

#[derive(Default)]
pub struct State {
    pub images: BTreeMap<String, ImageInfo>,
    pub pullable: BTreeSet<String>,
    pub pulled: Vec<String>,
    pub containers: BTreeMap<String, FakeContainer>,
    /// The spec of every container made, in order (they stay when the container goes).
    pub created_specs: Vec<ContainerSpec>,
    /// The mode of the folder of each mounted file when its container was made.
    pub mount_folder_modes: Vec<u32>,
    pub removed: Vec<String>,
    /// Containers killed (`kill_container`), in order.
    pub killed: Vec<String>,
    /// Containers whose attached stdin localci closed (or dropped), in order.
    pub stdin_closed: Vec<String>,
    pub execs: Vec<ExecCall>,
    pub uploads: Vec<(String, String, Vec<u8>)>,
    /// The shared file system: absolute path -> content (directories are implied).
    pub files: BTreeMap<String, Vec<u8>>,
    /// Other labelled resources (leftovers of "earlier runs").
    pub others: Vec<Labelled>,
    exit_codes: HashMap<String, i64>,
    next: u64,
    /// The container stops when an exec of this helper (`localci-step` ...) arrives, as when
    /// a preserved entrypoint exits.
    pub stop_on: Option<String>,
    /// How long the "daemon" takes to make a container; the container appears after this
    /// even if the caller stopped waiting for the answer, as with a real daemon.
    pub create_delay: Duration,
    /// Create requests fail with this, though the "daemon" still makes the container (a lost
    /// answer).
    pub create_error: Option<String>,
    /// The "engine" sees the host's files: mounted files are read from the host.
    pub shares_files: bool,
    /// The "engine" refuses mounts of host files (as one that cannot see them does).
    pub refuses_mounts: bool,
    /// The primary image has no `tar`: the setup cannot unpack a staged checkout.
    pub no_tar: bool,
    /// What the setup reports.
    pub uid: u64,
    pub home: String,
    /// Containers whose processes the "OOM killer" has killed.
    pub oom_killed: BTreeSet<String>,
    /// Terminal execs (interactive shells) asked for, with the size they started with.
    pub tty_execs: Vec<(ExecCall, TtySize)>,
    /// Resizes of terminal execs: (exec id, size).
    pub resizes: Vec<(String, TtySize)>,
}

pub struct FakeBackend {
    state: Arc<Mutex<State>>,
    handler: Handler,
    kill: Arc<Notify>,
}

impl FakeBackend {
    /// A backend with the given local images and the default shell.
    pub fn new(images: &[&str]) -> FakeBackend {
        FakeBackend::with_handler(images, |_, _| None)
    }

    /// `handler` answers execs first; `None` falls back to the default shell.
    pub fn with_handler(
        images: &[&str],
        handler: impl Fn(&ExecCall, &State) -> Option<Reply> + Send + Sync + 'static,
    ) -> FakeBackend {
        let state = State {
            images: images
                .iter()
                .map(|i| (i.to_string(), ImageInfo::default()))
                .collect(),
            home: "/root".into(),
            ..State::default()
        };
        FakeBackend {
            state: Arc::new(Mutex::new(state)),
            handler: Box::new(handler),
            kill: Arc::new(Notify::new()),
        }
    }

    pub fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .expect("tests do not panic while holding it")
    }

    fn reply(&self, call: &ExecCall) -> Reply {
        let state = self.state();
        if let Some(reply) = (self.handler)(call, &state) {
            return reply;
        }
        default_reply(call, &state)
    }
}

impl FakeBackend {
    /// What the checkout's `localci-unpack` helper does with the staged repository (a mounted
    /// tar): unpacks it into the target, or fails without `tar`.
    fn unpack_staged(&self, call: &ExecCall) -> Reply {
        let (Some(tar), Some(dir)) = (call.spec.cmd.get(4), call.spec.cmd.get(5)) else {
            return Reply::default();
        };
        let mut state = self.state();
        let source = state.containers.get(&call.container).and_then(|c| {
            c.spec
                .file_mounts
                .iter()
                .find(|m| &m.target == tar)
                .map(|m| m.source.clone())
        });
        match source.and_then(|s| std::fs::read(s).ok()) {
            Some(data) if !state.no_tar => {
                let files = tar_files(&data, dir).unwrap_or_default();
                state.files.extend(files);
                Reply::default()
            }
            _ => Reply {
                output: vec![(Stream::Stderr, "sh: tar: not found\n".into())],
                exit_code: 127,
                ..Reply::default()
            },
        }
    }
}

/// The regular files of a tar, named under `dir`.
fn tar_files(data: &[u8], dir: &str) -> std::io::Result<Vec<(String, Vec<u8>)>> {
    let mut archive = tar::Archive::new(data);
    let mut files = Vec::new();
    for entry in archive.entries()? {
        let mut entry = entry?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let path = entry.path()?;
        let full = format!("{}/{}", dir.trim_end_matches('/'), path.to_string_lossy());
        let mut content = Vec::new();
        entry.read_to_end(&mut content)?;
        files.push((full, content));
    }
    Ok(files)
}

fn out(text: &str) -> Reply {
    Reply {
        output: vec![(Stream::Stdout, text.to_string())],
        ..Reply::default()
    }
}

/// The default shell: localci's helpers, and a few commands in step scripts.
fn default_reply(call: &ExecCall, state: &State) -> Reply {
    match call.helper() {
        Some("localci-setup") => {
            let wd = call.spec.cmd[4].replacen('~', &state.home, 1);
            let mut report = format!(
                "uid={}\ngid={}\nhome={}\nwd={wd}\nshell=/bin/sh\n",
                state.uid, state.uid, state.home
            );
            // A root setup copies the mounted program into place.
            if state.uid == 0 && call.spec.cmd.get(8).is_some_and(|a| !a.is_empty()) {
                report.push_str("agent_installed=1\n");
            }
            // The check of a first checkout's target (relative paths only).
            match call.spec.cmd.get(7).map(String::as_str) {
                None | Some("") => {}
                Some(path) => {
                    let dir = match path {
                        "." => wd.clone(),
                        path => format!("{wd}/{path}"),
                    };
                    report.push_str(&format!(
                        "checkout_exit=0\ncheckout_dir={dir}\ncheckout_out=fresh\n"
                    ));
                }
            }
            out(&report)
        }
        Some("localci-step") => run_script(call.step_script().unwrap_or_default(), call),
        _ => Reply::default(),
    }
}

/// A step script, then what localci's step wrapper does when the script ran
/// `circleci-agent step halt`: it writes its token (argument 7 of the wrapper) on stderr.
fn run_script(script: &str, call: &ExecCall) -> Reply {
    let mut reply = run_lines(script, call);
    let halts = script
        .lines()
        .any(|l| l.trim() == "circleci-agent step halt");
    if halts
        && !reply.hang
        && let Some(token) = call.spec.cmd.get(10)
    {
        reply.output.push((Stream::Stderr, format!("{token}\n")));
    }
    reply
}

fn run_lines(script: &str, call: &ExecCall) -> Reply {
    let mut reply = Reply::default();
    for line in script.lines().map(str::trim) {
        if let Some(text) = line.strip_prefix("echo ") {
            match text.strip_suffix(" >&2") {
                Some(err) => reply.output.push((Stream::Stderr, format!("{err}\n"))),
                None => reply.output.push((Stream::Stdout, format!("{text}\n"))),
            }
        } else if let Some(name) = line.strip_prefix("printenv ") {
            let value = call.env(name).unwrap_or_default();
            reply.output.push((Stream::Stdout, format!("{value}\n")));
        } else if let Some(secs) = line.strip_prefix("sleep ") {
            reply.delay += Duration::from_secs_f64(secs.parse().unwrap_or(0.0));
        } else if line == "hang" {
            reply.hang = true;
            return reply;
        } else if let Some(code) = line.strip_prefix("exit ") {
            reply.exit_code = code.parse().unwrap_or(1);
            return reply;
        }
    }
    reply
}

impl Backend for FakeBackend {
    fn host(&self) -> String {
        "fake://".into()
    }

    fn shares_files(&self) -> bool {
        self.state().shares_files
    }

    fn inspect_image(&self, image: &str) -> Fut<'_, Option<ImageInfo>> {
        let found = self.state().images.get(image).cloned();
        async move { Ok(found) }.boxed()
    }

    fn pull_image(
        &self,
        image: &str,
        _credentials: Option<Credentials>,
    ) -> BoxStream<'static, Result<PullProgress>> {
        let mut state = self.state();
        if state.pullable.contains(image) {
            state.images.insert(image.to_string(), ImageInfo::default());
            state.pulled.push(image.to_string());
            let progress = PullProgress {
                layer: Some("abc".into()),
                status: "Pull complete".into(),
                current: Some(1),
                total: Some(1),
            };
            stream::iter([Ok(progress)]).boxed()
        } else {
            let e = BackendError::Api(format!("pull access denied for {image}"));
            stream::iter([Err(e)]).boxed()
        }
    }

    fn create_container(&self, spec: ContainerSpec) -> Fut<'_, String> {
        let mut state = self.state();
        state.next += 1;
        let id = format!("{:064x}", state.next);
        let (delay, error) = (state.create_delay, state.create_error.clone());
        if state.refuses_mounts && !spec.file_mounts.is_empty() {
            return async {
                let message = "invalid mount config: bind source path does not exist";
                Err(BackendError::Daemon {
                    message: message.into(),
                    source: message.into(),
                })
            }
            .boxed();
        }
        drop(state);
        let shared = self.state.clone();
        let made_id = id.clone();
        let make = move || {
            let container = FakeContainer {
                spec,
                running: false,
            };
            let mut state = shared.lock().expect("tests do not panic while holding it");
            for mount in &container.spec.file_mounts {
                use std::os::unix::fs::PermissionsExt;
                let folder = mount
                    .source
                    .parent()
                    .and_then(|p| std::fs::metadata(p).ok());
                let mode = folder.map_or(0, |m| m.permissions().mode() & 0o777);
                state.mount_folder_modes.push(mode);
            }
            state.created_specs.push(container.spec.clone());
            state.containers.insert(made_id, container);
        };
        let made = if delay.is_zero() {
            make();
            None
        } else {
            // The "daemon" goes on making it even when the caller drops the request.
            Some(tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                make();
            }))
        };
        async move {
            if let Some(e) = error {
                return Err(BackendError::Api(e));
            }
            if let Some(made) = made {
                made.await.expect("the fake's create task does not panic");
            }
            Ok(id)
        }
        .boxed()
    }

    fn start_container(&self, id: &str) -> Fut<'_, ()> {
        let result = match self.state().containers.get_mut(id) {
            Some(c) => {
                c.running = true;
                Ok(())
            }
            None => Err(BackendError::NotFound(format!("no container {id}"))),
        };
        async move { result }.boxed()
    }

    /// The container's command is answered as an exec of it would be (the setup's report), once
    /// the container has started, followed by the setup's end marker; then the output stays
    /// open until the container is removed. Closing the input of a `stdin_once` container
    /// stops it, and the "engine" removes it when it was made with `auto_remove`.
    fn attach(&self, id: &str) -> Fut<'_, Attached> {
        let Some(spec) = self.state().containers.get(id).map(|c| c.spec.clone()) else {
            let e = BackendError::NotFound(format!("no container {id}"));
            return async { Err(e) }.boxed();
        };
        let cmd = spec
            .entrypoint
            .iter()
            .flatten()
            .chain(spec.cmd.iter().flatten())
            .cloned()
            .collect();
        let call = ExecCall {
            container: id.to_string(),
            spec: ExecSpec {
                cmd,
                ..ExecSpec::default()
            },
        };
        let stops = self
            .state()
            .stop_on
            .as_deref()
            .is_some_and(|h| Some(h) == call.helper());
        // Only localci's own command reports the end of a setup.
        let setup = call.helper() == Some("localci-setup");
        let runner = call
            .spec
            .cmd
            .iter()
            .any(|word| word.contains(crate::agent::runner::SUBCOMMAND));
        let reply = self.reply(&call);
        let (shared, id) = (self.state.clone(), id.to_string());
        let (input, mut closed) = tokio::io::duplex(64);
        let (watcher, watched) = (shared.clone(), id.clone());
        tokio::spawn(async move {
            let mut sink = Vec::new();
            let _ = tokio::io::AsyncReadExt::read_to_end(&mut closed, &mut sink).await;
            let mut state = watcher.lock().expect("tests do not panic while holding it");
            let Some(container) = state.containers.get_mut(&watched) else {
                return;
            };
            if !container.spec.stdin_once {
                return;
            }
            container.running = false;
            state.stdin_closed.push(watched.clone());
            if state.containers[&watched].spec.auto_remove {
                state.containers.remove(&watched);
                state.removed.push(watched);
            }
        });
        let kill = self.kill.clone();
        let output = stream::once(async move {
            // The command runs once the container has started.
            loop {
                let running = {
                    let state = shared.lock().expect("tests do not panic while holding it");
                    match state.containers.get(&id) {
                        Some(c) => c.running,
                        None => return (Vec::new(), false),
                    }
                };
                if running {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            if stops {
                let mut state = shared.lock().expect("tests do not panic while holding it");
                if let Some(c) = state.containers.get_mut(&id) {
                    c.running = false;
                }
                return (Vec::new(), false);
            }
            let mut output: Vec<_> = reply
                .output
                .into_iter()
                .map(|(s, text)| Ok((s, Bytes::from(text))))
                .collect();
            if setup {
                output.push(Ok((
                    Stream::Stdout,
                    Bytes::from(format!("localci-setup-exit={}\n", reply.exit_code)),
                )));
                // The fake cannot run the step runner: it fails to start, as a program that
                // does not run in the image would, and the steps use execs.
                if runner {
                    output.push(Ok((
                        Stream::Stdout,
                        Bytes::from_static(b"localci-runner-exit=126\n"),
                    )));
                }
            }
            (output, true)
        })
        .flat_map(move |(output, alive)| {
            let kill = kill.clone();
            // Open while the container lives (a kill or removal wakes this up).
            let open = stream::once(async move {
                if alive {
                    kill.notified().await;
                }
            })
            .filter_map(|()| async { None });
            stream::iter(output).chain(open)
        })
        .boxed();
        async move {
            Ok(Attached {
                output,
                input: Box::pin(input),
            })
        }
        .boxed()
    }

    fn container_running(&self, id: &str) -> Fut<'_, bool> {
        let running = self.state().containers.get(id).is_some_and(|c| c.running);
        async move { Ok(running) }.boxed()
    }

    fn container_exit_code(&self, id: &str) -> Fut<'_, Option<i64>> {
        let running = self.state().containers.get(id).is_some_and(|c| c.running);
        async move { Ok((!running).then_some(0)) }.boxed()
    }

    fn logs_tail(&self, _id: &str, _lines: usize) -> Fut<'_, Vec<String>> {
        async move { Ok(Vec::new()) }.boxed()
    }

    fn oom_killed(&self, id: &str) -> Fut<'_, bool> {
        let killed = self.state().oom_killed.contains(id);
        async move { Ok(killed) }.boxed()
    }

    fn remove_container(&self, id: &str) -> Fut<'_, ()> {
        let mut state = self.state();
        // Like Docker, accept a name as well as an id.
        let id = state
            .containers
            .iter()
            .find(|(_, c)| c.spec.name.as_deref() == Some(id))
            .map_or(id.to_string(), |(found, _)| found.clone());
        let id = id.as_str();
        if state.containers.remove(id).is_some() {
            state.removed.push(id.to_string());
        }
        state.others.retain(|o| o.id != id);
        self.kill.notify_waiters();
        async { Ok(()) }.boxed()
    }

    fn kill_container(&self, id: &str) -> Fut<'_, ()> {
        let mut state = self.state();
        state.killed.push(id.to_string());
        let auto_remove = state.containers.get(id).is_some_and(|c| c.spec.auto_remove);
        if auto_remove {
            // The engine removes it once it has stopped.
            state.containers.remove(id);
            state.removed.push(id.to_string());
        } else if let Some(c) = state.containers.get_mut(id) {
            c.running = false;
        }
        self.kill.notify_waiters();
        async { Ok(()) }.boxed()
    }

    fn exec(&self, container: &str, spec: ExecSpec) -> Fut<'_, Exec> {
        let call = ExecCall {
            container: container.to_string(),
            spec,
        };
        let mut state = self.state();
        if state.stop_on.is_some()
            && state.stop_on.as_deref() == call.helper()
            && let Some(c) = state.containers.get_mut(container)
        {
            c.running = false;
        }
        let running = state.containers.get(container).is_some_and(|c| c.running);
        drop(state);
        if !running {
            return async { Err(BackendError::Api("container is not running".into())) }.boxed();
        }
        let reply = if call.helper() == Some("localci-unpack") {
            self.unpack_staged(&call)
        } else {
            self.reply(&call)
        };
        let killing = call.helper() == Some("localci-kill");
        let mut state = self.state();
        state.execs.push(call);
        state.next += 1;
        let id = format!("exec-{}", state.next);
        state
            .exit_codes
            .insert(id.clone(), if reply.hang { 137 } else { reply.exit_code });
        drop(state);
        if killing {
            self.kill.notify_waiters();
        }
        let kill = self.kill.clone();
        let chunks = stream::iter(
            reply
                .output
                .into_iter()
                .map(|(s, text)| Ok((s, Bytes::from(text)))),
        );
        let ending = async move {
            if reply.hang {
                kill.notified().await;
            } else {
                tokio::time::sleep(reply.delay).await;
            }
        };
        let output = chunks
            .chain(stream::once(ending).filter_map(|()| async { None }))
            .boxed();
        async move { Ok(Exec { id, output }) }.boxed()
    }

    /// A tiny terminal: it echoes what is typed (as a terminal in cooked mode does) and answers
    /// lines: `pwd` (the working directory), `echo $NAME` (the variable), `exit N`.
    fn exec_tty(&self, container: &str, spec: ExecSpec, size: TtySize) -> Fut<'_, TtyExec> {
        let call = ExecCall {
            container: container.to_string(),
            spec,
        };
        let mut state = self.state();
        state.next += 1;
        let id = format!("exec-{}", state.next);
        state.tty_execs.push((call.clone(), size));
        drop(state);
        let (input, mut typed) = tokio::io::duplex(1024);
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Bytes>();
        let (shared, exec_id) = (self.state.clone(), id.clone());
        tokio::spawn(async move {
            use tokio::io::AsyncReadExt;
            let mut line = Vec::new();
            let mut buf = [0u8; 256];
            let _ = tx.send(Bytes::from_static(b"$ "));
            let code = 'read: loop {
                let Ok(n) = typed.read(&mut buf).await else {
                    break 'read 255;
                };
                if n == 0 {
                    break 'read 0;
                }
                for &byte in &buf[..n] {
                    let echo = if byte == b'\r' {
                        b"\r\n".to_vec()
                    } else {
                        vec![byte]
                    };
                    let _ = tx.send(Bytes::from(echo));
                    if byte != b'\r' && byte != b'\n' {
                        line.push(byte);
                        continue;
                    }
                    let text = String::from_utf8_lossy(&line).trim().to_string();
                    line.clear();
                    let answer = if text == "pwd" {
                        call.spec.working_dir.clone().unwrap_or_default()
                    } else if let Some(name) = text.strip_prefix("echo $") {
                        call.env(name).unwrap_or_default().to_string()
                    } else if let Some(code) = text.strip_prefix("exit") {
                        break 'read code.trim().parse().unwrap_or(0);
                    } else {
                        format!("sh: {text}: not found")
                    };
                    let _ = tx.send(Bytes::from(format!("{answer}\r\n$ ")));
                }
            };
            let mut state = shared.lock().expect("tests do not panic while holding it");
            state.exit_codes.insert(exec_id, code);
        });
        let output = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|bytes| (Ok(bytes), rx))
        })
        .boxed();
        async move {
            Ok(TtyExec {
                id,
                output,
                input: Box::pin(input),
            })
        }
        .boxed()
    }

    fn resize_tty(&self, exec_id: &str, size: TtySize) -> Fut<'_, ()> {
        self.state().resizes.push((exec_id.to_string(), size));
        async { Ok(()) }.boxed()
    }

    fn exec_exit_code(&self, exec_id: &str) -> Fut<'_, i64> {
        let code = self.state().exit_codes.get(exec_id).copied().unwrap_or(-1);
        async move { Ok(code) }.boxed()
    }

    fn upload(&self, container: &str, dir: &str, tar: ByteStream) -> Fut<'_, ()> {
        let (container, dir) = (container.to_string(), dir.to_string());
        async move {
            let chunks: Vec<std::io::Result<Bytes>> = tar.collect().await;
            let mut data = Vec::new();
            for chunk in chunks {
                data.extend_from_slice(&chunk.map_err(|e| BackendError::Api(e.to_string()))?);
            }
            let files = tar_files(&data, &dir).map_err(|e| BackendError::Api(e.to_string()))?;
            let mut state = self.state();
            state.files.extend(files);
            state.uploads.push((container, dir, data));
            Ok(())
        }
        .boxed()
    }

    fn download(&self, _container: &str, path: &str) -> Fut<'_, ByteStream> {
        let path = path.trim_end_matches('/').to_string();
        let state = self.state();
        let base = path.rsplit('/').next().unwrap_or_default().to_string();
        let mut builder = tar::Builder::new(Vec::new());
        let mut found = false;
        for (file, content) in &state.files {
            let name = if *file == path {
                base.clone()
            } else if let Some(rest) = file.strip_prefix(&format!("{path}/")) {
                format!("{base}/{rest}")
            } else {
                continue;
            };
            found = true;
            let mut header = tar::Header::new_gnu();
            header.set_size(content.len() as u64);
            header.set_mode(0o644);
            builder
                .append_data(&mut header, name, &content[..])
                .expect("writing to memory");
        }
        drop(state);
        let data = builder.into_inner().expect("writing to memory");
        async move {
            if !found {
                return Err(BackendError::NotFound(format!(
                    "Could not find the file {path}"
                )));
            }
            Ok(stream::once(async move { Ok(Bytes::from(data)) }).boxed())
        }
        .boxed()
    }

    fn list_labelled(&self, label: &str) -> Fut<'_, Vec<Labelled>> {
        let state = self.state();
        let mut found: Vec<Labelled> = state
            .containers
            .iter()
            .filter(|(_, c)| {
                c.spec.labels.contains_key(label)
                    || label == LABEL && c.spec.labels.contains_key(LABEL)
            })
            .map(|(id, c)| Labelled {
                kind: ResourceKind::Container,
                id: id.clone(),
                labels: c.spec.labels.clone(),
            })
            .collect();
        found.extend(
            state
                .others
                .iter()
                .filter(|o| o.labels.contains_key(label))
                .cloned(),
        );
        async move { Ok(found) }.boxed()
    }

    fn remove(&self, resource: &Labelled) -> Fut<'_, ()> {
        self.remove_container(&resource.id)
    }
}
