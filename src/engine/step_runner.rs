//! The host side of the step runner (src/agent/runner.rs): when the primary's main process
//! is the runner, a job's processes start through it, over the primary's attached stdin and
//! output, instead of one Docker exec each (a fixed 40-70 ms per step on this machine:
//! docs/execute.md, "Speed").
//!
//! [`StepRunnerBackend`] wraps the engine's backend for one job's steps: an exec in the primary
//! as its user goes to the runner, everything else (an exec as root, a terminal, uploads ...)
//! to the engine. What a step sees is an exec's: the same output stream, the same exit code
//! ([`Backend::exec_exit_code`]), killed the same way (its process group, by pid file).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::{FutureExt, StreamExt};
use tokio::sync::{mpsc, oneshot};

use super::containers::StdinHold;
use crate::agent::runner::{EXIT, Frame, HELLO, Request, STDERR, STDOUT};
use crate::backend::{
    Attached, Backend, BackendError, ByteStream, ContainerSpec, Exec, ExecSpec, Fut, ImageInfo,
    Labelled, Output, PullProgress, Result, Stream, TtyExec, TtySize,
};

/// The prefix of the exec ids the runner gives out.
const ID_PREFIX: &str = "localci-runner-";
/// Output frames of one process in flight before the reader waits for its step.
const FRAMES_AHEAD: usize = 16;

/// A process started through the runner, until its exit frame.
struct Running {
    output: mpsc::Sender<Result<(Stream, Bytes)>>,
    exit: oneshot::Sender<i64>,
}

#[derive(Default)]
struct Table {
    running: HashMap<u32, Running>,
    /// Exit codes (or the wait for one) by request id, taken by `exec_exit_code`.
    exits: HashMap<u32, oneshot::Receiver<i64>>,
    /// The runner's output ended or went wrong: no more requests.
    broken: Option<BackendError>,
}

/// A runner in a primary container: its stdin to write requests to, and the processes it
/// runs.
pub(crate) struct StepRunner {
    primary: String,
    input: StdinHold,
    table: Arc<Mutex<Table>>,
    next: AtomicU32,
}

impl StepRunner {
    /// Waits for the runner's first frame in the primary's output (`leftover`: what was read
    /// of it already); `None` when something else came (the runner could not start: the
    /// steps then use execs) or the output ended. The output goes on being read by a task.
    pub(crate) async fn start(
        backend: Arc<dyn Backend>,
        primary: &str,
        input: StdinHold,
        mut output: Output,
        leftover: Vec<u8>,
    ) -> Option<StepRunner> {
        let mut buf = leftover;
        loop {
            match Frame::parse(&buf) {
                Ok(Some((frame, used))) if frame.kind == EXIT && frame.id == HELLO => {
                    buf.drain(..used);
                    break;
                }
                Ok(None) => {}
                Ok(Some(_)) | Err(_) => return None,
            }
            match output.next().await {
                Some(Ok((Stream::Stdout, bytes))) => buf.extend_from_slice(&bytes),
                Some(Ok((Stream::Stderr, _))) => {}
                Some(Err(_)) | None => return None,
            }
        }
        let table = Arc::new(Mutex::new(Table::default()));
        let primary_id = primary.to_string();
        tokio::spawn(read_frames(output, buf, table.clone(), backend, primary_id));
        Some(StepRunner {
            primary: primary.to_string(),
            input,
            table,
            next: AtomicU32::new(HELLO + 1),
        })
    }

    async fn exec(&self, spec: ExecSpec) -> Result<Exec> {
        let id = self.next.fetch_add(1, Ordering::SeqCst);
        let (tx, mut rx) = mpsc::channel(FRAMES_AHEAD);
        let (exit_tx, exit_rx) = oneshot::channel();
        {
            let mut table = lock(&self.table);
            if let Some(why) = &table.broken {
                return Err(why.duplicate());
            }
            table.running.insert(
                id,
                Running {
                    output: tx,
                    exit: exit_tx,
                },
            );
            table.exits.insert(id, exit_rx);
        }
        let request = Request {
            id,
            argv: spec.cmd.into_iter().map(String::into_bytes).collect(),
            env: spec.env.into_iter().map(String::into_bytes).collect(),
            dir: spec.working_dir.unwrap_or_default().into_bytes(),
        };
        if let Err(e) = self.input.write(&request.encode()).await {
            let mut table = lock(&self.table);
            table.running.remove(&id);
            table.exits.remove(&id);
            return Err(BackendError::Api(format!(
                "cannot write to the step runner of the primary container: {e}"
            )));
        }
        let output = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)).boxed();
        Ok(Exec {
            id: format!("{ID_PREFIX}{id}"),
            output,
        })
    }

    async fn exit_code(&self, id: u32) -> Result<i64> {
        let waiting = lock(&self.table).exits.remove(&id);
        let Some(waiting) = waiting else {
            return Err(BackendError::NotFound(format!(
                "no process {ID_PREFIX}{id}"
            )));
        };
        waiting.await.map_err(|_| {
            BackendError::Api("the step runner of the primary container stopped".into())
        })
    }
}

fn lock(table: &Mutex<Table>) -> std::sync::MutexGuard<'_, Table> {
    table
        .lock()
        .expect("no task panics holding the runner's table")
}

/// Reads the runner's frames until its output ends, handing each process its output and
/// exit code. When the output ends, every process still running ends with an
/// error: the engine's when it is gone, else the primary's end (the job says so), else the
/// runner's.
async fn read_frames(
    mut output: Output,
    mut buf: Vec<u8>,
    table: Arc<Mutex<Table>>,
    backend: Arc<dyn Backend>,
    primary: String,
) {
    let error = loop {
        let mut used = 0;
        loop {
            match Frame::parse(&buf[used..]) {
                Ok(Some((frame, n))) => {
                    used += n;
                    deliver(&table, frame).await;
                }
                Ok(None) => break,
                // Another process wrote to the container's output (the container's log, had
                // it run without localci): skipped, up to the next frame.
                Err(_) => used += Frame::resync(&buf[used..]),
            }
        }
        buf.drain(..used);
        match output.next().await {
            Some(Ok((Stream::Stdout, bytes))) => buf.extend_from_slice(&bytes),
            // The runner writes nothing there; its children have their own pipes.
            Some(Ok((Stream::Stderr, _))) => {}
            Some(Err(e)) => break e,
            // The job is over (localci let go of the runner's stdin): nothing to tell.
            None if lock(&table).running.is_empty() => break stopped("its output ended"),
            None => {
                break match backend.container_running(&primary).await {
                    Err(e) => e,
                    Ok(false) => BackendError::NotFound(format!("container {primary} stopped")),
                    Ok(true) => stopped("its output ended"),
                };
            }
        }
    };
    let running: Vec<Running> = {
        let mut table = lock(&table);
        table.broken = Some(error.duplicate());
        table.running.drain().map(|(_, r)| r).collect()
    };
    for process in running {
        let _ = process.output.send(Err(error.duplicate())).await;
    }
}

fn stopped(why: &str) -> BackendError {
    BackendError::Api(format!(
        "the step runner of the primary container stopped ({why})"
    ))
}

async fn deliver(table: &Mutex<Table>, frame: Frame) {
    if frame.kind == EXIT {
        let done = lock(table).running.remove(&frame.id);
        if let Some(done) = done {
            // Dropping the sender ends the process's output.
            let _ = done.exit.send(frame.exit_code());
        }
        return;
    }
    let stream = if frame.kind == STDERR {
        Stream::Stderr
    } else {
        debug_assert_eq!(frame.kind, STDOUT);
        Stream::Stdout
    };
    let sender = lock(table).running.get(&frame.id).map(|r| r.output.clone());
    if let Some(sender) = sender {
        // A step that stopped reading (it timed out) drops its receiver: nothing to do.
        let _ = sender.send(Ok((stream, Bytes::from(frame.data)))).await;
    }
}

/// The engine's backend, with the primary's processes started by its runner.
pub(crate) struct StepRunnerBackend {
    inner: Arc<dyn Backend>,
    runner: StepRunner,
}

impl StepRunnerBackend {
    pub(crate) fn new(inner: Arc<dyn Backend>, runner: StepRunner) -> StepRunnerBackend {
        StepRunnerBackend { inner, runner }
    }

    /// Whether an exec goes to the runner: one in the primary, as the container's user (the
    /// runner's; an exec as root, the kill of a step, goes to the engine).
    fn takes(&self, container: &str, spec: &ExecSpec) -> bool {
        container == self.runner.primary && spec.user.is_none()
    }
}

impl Backend for StepRunnerBackend {
    fn host(&self) -> String {
        self.inner.host()
    }
    fn shares_files(&self) -> bool {
        self.inner.shares_files()
    }
    fn inspect_image(&self, image: &str) -> Fut<'_, Option<ImageInfo>> {
        self.inner.inspect_image(image)
    }
    fn pull_image(
        &self,
        image: &str,
        credentials: Option<crate::backend::Credentials>,
    ) -> futures_util::stream::BoxStream<'static, Result<PullProgress>> {
        self.inner.pull_image(image, credentials)
    }
    fn create_container(&self, spec: ContainerSpec) -> Fut<'_, String> {
        self.inner.create_container(spec)
    }
    fn start_container(&self, id: &str) -> Fut<'_, ()> {
        self.inner.start_container(id)
    }
    fn attach(&self, id: &str) -> Fut<'_, Attached> {
        self.inner.attach(id)
    }
    fn container_running(&self, id: &str) -> Fut<'_, bool> {
        self.inner.container_running(id)
    }
    fn container_exit_code(&self, id: &str) -> Fut<'_, Option<i64>> {
        self.inner.container_exit_code(id)
    }
    fn logs_tail(&self, id: &str, lines: usize) -> Fut<'_, Vec<String>> {
        self.inner.logs_tail(id, lines)
    }
    fn oom_killed(&self, id: &str) -> Fut<'_, bool> {
        self.inner.oom_killed(id)
    }
    fn remove_container(&self, id: &str) -> Fut<'_, ()> {
        self.inner.remove_container(id)
    }
    fn kill_container(&self, id: &str) -> Fut<'_, ()> {
        self.inner.kill_container(id)
    }
    fn exec(&self, container: &str, spec: ExecSpec) -> Fut<'_, Exec> {
        if self.takes(container, &spec) {
            return self.runner.exec(spec).boxed();
        }
        self.inner.exec(container, spec)
    }
    fn exec_tty(&self, container: &str, spec: ExecSpec, size: TtySize) -> Fut<'_, TtyExec> {
        self.inner.exec_tty(container, spec, size)
    }
    fn resize_tty(&self, exec_id: &str, size: TtySize) -> Fut<'_, ()> {
        self.inner.resize_tty(exec_id, size)
    }
    fn exec_exit_code(&self, exec_id: &str) -> Fut<'_, i64> {
        match exec_id.strip_prefix(ID_PREFIX).and_then(|n| n.parse().ok()) {
            Some(id) => self.runner.exit_code(id).boxed(),
            None => self.inner.exec_exit_code(exec_id),
        }
    }
    fn upload(&self, container: &str, dir: &str, tar: ByteStream) -> Fut<'_, ()> {
        self.inner.upload(container, dir, tar)
    }
    fn download(&self, container: &str, path: &str) -> Fut<'_, ByteStream> {
        self.inner.download(container, path)
    }
    fn list_labelled(&self, label: &str) -> Fut<'_, Vec<Labelled>> {
        self.inner.list_labelled(label)
    }
    fn remove(&self, resource: &Labelled) -> Fut<'_, ()> {
        self.inner.remove(resource)
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::agent::runner::{self, Frame};

    /// A step runner served by the agent's own code in a thread, on this machine.
    async fn served() -> StepRunner {
        let (input, requests) = tokio::io::duplex(1 << 16);
        let (frames_tx, frames_rx) = mpsc::unbounded_channel::<Vec<u8>>();
        let requests = tokio_util::io::SyncIoBridge::new(requests);
        std::thread::spawn(move || {
            let _ = runner::serve(requests, ChannelWriter(frames_tx));
        });
        let output: Output = futures_util::stream::unfold(frames_rx, |mut rx| async move {
            let bytes = rx.recv().await?;
            Some((Ok((Stream::Stdout, Bytes::from(bytes))), rx))
        })
        .boxed();
        let hold = StdinHold::default();
        hold.hold(Box::pin(input));
        let backend: Arc<dyn Backend> = Arc::new(crate::backend::fake::FakeBackend::new(&[]));
        StepRunner::start(backend, "primary", hold, output, Vec::new())
            .await
            .expect("the runner says hello")
    }

    struct ChannelWriter(mpsc::UnboundedSender<Vec<u8>>);

    impl std::io::Write for ChannelWriter {
        fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
            self.0
                .send(data.to_vec())
                .map_err(|_| std::io::ErrorKind::BrokenPipe)?;
            Ok(data.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn sh(script: &str) -> ExecSpec {
        ExecSpec {
            cmd: vec!["/bin/sh".into(), "-c".into(), script.into()],
            ..ExecSpec::default()
        }
    }

    /// Everything a process wrote (stdout, stderr) and its exit code.
    async fn ran(runner: &StepRunner, spec: ExecSpec) -> (String, String, i64) {
        let exec = runner.exec(spec).await.unwrap();
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let mut output = exec.output;
        while let Some(chunk) = output.next().await {
            let (stream, bytes) = chunk.unwrap();
            match stream {
                Stream::Stdout => out.extend_from_slice(&bytes),
                Stream::Stderr => err.extend_from_slice(&bytes),
            }
        }
        let id = exec.id.strip_prefix(ID_PREFIX).unwrap().parse().unwrap();
        let code = runner.exit_code(id).await.unwrap();
        (
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
            code,
        )
    }

    #[tokio::test]
    async fn processes_run_as_execs_would() {
        let runner = served().await;
        // Output on both streams, the exit code, the environment and the working folder.
        let mut spec =
            sh("echo out; echo err >&2; printf 'no newline'; pwd >&2; echo \"$GREETING\"; exit 3");
        spec.env = vec!["GREETING=hello\nworld".into()];
        spec.working_dir = Some("/tmp".into());
        let (out, err, code) = ran(&runner, spec).await;
        assert_eq!(out, "out\nno newlinehello\nworld\n");
        assert_eq!(err, "err\n/tmp\n");
        assert_eq!(code, 3);
        // stdin is empty; the process leads its own group and session (the step wrapper's pid
        // file).
        let (out, _, code) = ran(
            &runner,
            sh("cat; test \"$(cut -d' ' -f5,6 /proc/$$/stat)\" = \"$$ $$\" && echo leader"),
        )
        .await;
        assert_eq!((out.as_str(), code), ("leader\n", 0));
        // A signal's exit code is 128+N, as Docker reports it.
        let (_, _, code) = ran(&runner, sh("kill -KILL $$")).await;
        assert_eq!(code, 137);
        // A program that does not exist: 127 and why.
        let missing = ExecSpec {
            cmd: vec!["/nonexistent/program".into()],
            ..ExecSpec::default()
        };
        let (_, err, code) = ran(&runner, missing).await;
        assert_eq!(code, 127);
        assert!(err.contains("cannot start the process"), "{err}");
    }

    #[tokio::test]
    async fn processes_run_side_by_side_and_a_left_behind_one_does_not_hold_the_step() {
        let runner = served().await;
        let slow = runner.exec(sh("sleep 0.5; echo slow")).await.unwrap();
        let (out, _, code) = ran(&runner, sh("echo fast")).await;
        assert_eq!((out.as_str(), code), ("fast\n", 0));
        let mut output = slow.output;
        let (_, first) = output.next().await.unwrap().unwrap();
        assert_eq!(&first[..], b"slow\n");
        // A background process keeps the pipes open: the output ends 2 s after the exit,
        // as Docker's exec does, not when the background process ends.
        let began = Instant::now();
        let (out, _, code) = ran(&runner, sh("sleep 30 & echo started")).await;
        assert_eq!((out.as_str(), code), ("started\n", 0));
        assert!(
            began.elapsed() < Duration::from_secs(10),
            "{:?}",
            began.elapsed()
        );
        // Then its output is closed: the process left behind cannot write to it any more.
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("wrote");
        let script = format!(
            "(sleep 2.5; echo late; touch '{}') & echo started",
            marker.display()
        );
        let (out, _, _) = ran(&runner, sh(&script)).await;
        assert_eq!(out, "started\n");
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert!(!marker.exists(), "the write after the step's end succeeded");
    }

    // Found by a probe: a step that writes to the container's own output (`echo x >
    // /proc/1/fd/1`, the container log's idiom) put bytes between the runner's frames.
    #[tokio::test]
    async fn bytes_between_frames_are_skipped() {
        let (input, _requests) = tokio::io::duplex(1 << 16);
        let hold = StdinHold::default();
        hold.hold(Box::pin(input));
        let (tx, rx) = mpsc::unbounded_channel::<Vec<u8>>();
        let output: Output = futures_util::stream::unfold(rx, |mut rx| async move {
            let bytes = rx.recv().await?;
            Some((Ok((Stream::Stdout, Bytes::from(bytes))), rx))
        })
        .boxed();
        let mut hello = Vec::new();
        runner::write_frames(&mut hello, &[(EXIT, HELLO, &0i32.to_be_bytes())]).unwrap();
        tx.send(hello).unwrap();
        let backend: Arc<dyn Backend> = Arc::new(crate::backend::fake::FakeBackend::new(&[]));
        let runner = StepRunner::start(backend, "primary", hold, output, Vec::new())
            .await
            .unwrap();
        let exec = runner.exec(sh("true")).await.unwrap();
        let mut stream = Vec::new();
        runner::write_frames(&mut stream, &[(runner::STDOUT, 1, b"first\n")]).unwrap();
        stream.extend_from_slice(b"to-proc1 LCF garbage\n");
        runner::write_frames(
            &mut stream,
            &[
                (runner::STDERR, 1, b"second\n"),
                (EXIT, 1, &4i32.to_be_bytes()),
            ],
        )
        .unwrap();
        // In odd pieces, as the engine's chunks may cut it.
        for piece in stream.chunks(5) {
            tx.send(piece.to_vec()).unwrap();
        }
        let mut got = Vec::new();
        let mut output = exec.output;
        while let Some(chunk) = output.next().await {
            let (stream, bytes) = chunk.unwrap();
            got.push((stream, String::from_utf8(bytes.to_vec()).unwrap()));
        }
        let text: String = got.iter().map(|(_, t)| t.as_str()).collect();
        assert_eq!(text, "first\nsecond\n");
        assert_eq!(runner.exit_code(1).await.unwrap(), 4);
    }

    #[test]
    fn frames_are_read_whole_and_damage_is_noticed() {
        let mut bytes = Vec::new();
        runner::write_frames(
            &mut bytes,
            &[(runner::STDOUT, 7, b"hi"), (EXIT, 7, &3i32.to_be_bytes())],
        )
        .unwrap();
        for cut in 0..14 {
            assert_eq!(Frame::parse(&bytes[..cut]).unwrap(), None, "cut at {cut}");
        }
        let (frame, used) = Frame::parse(&bytes).unwrap().unwrap();
        assert_eq!(
            (frame.kind, frame.id, frame.data.as_slice(), used),
            (runner::STDOUT, 7, &b"hi"[..], 15)
        );
        let (exit, _) = Frame::parse(&bytes[used..]).unwrap().unwrap();
        assert_eq!(exit.exit_code(), 3);
        assert!(Frame::parse(b"localci-runner-exit=126\n").is_err());
        assert!(Frame::parse(b"lo").is_err());
        // After foreign bytes: the next frame, else the tail that may begin one.
        let mut foreign = b"xLCF".to_vec();
        foreign.extend_from_slice(&bytes);
        assert_eq!(Frame::resync(&foreign), 4);
        assert_eq!(Frame::resync(b"hello LC"), 6);
        assert_eq!(Frame::resync(b"hello"), 5);
        assert_eq!(Frame::resync(b"LCF1 not a frame"), 16);
        let request = Request {
            id: 9,
            argv: vec![b"sh".to_vec(), b"-c".to_vec(), b"echo \0 x".to_vec()],
            env: vec![b"A=1".to_vec()],
            dir: Vec::new(),
        };
        let encoded = request.encode();
        assert_eq!(Request::read(&mut &encoded[..]).unwrap(), Some(request));
        assert_eq!(Request::read(&mut &b""[..]).unwrap(), None);
        assert!(Request::read(&mut &encoded[..10]).is_err());
    }
}
