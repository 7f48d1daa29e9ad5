//! A [`Backend`] that times every request of the one it wraps into the run's timing trace
//! (`LOCALCI_TRACE`, see [`crate::trace`]). An exec is traced twice: `exec-start` (create and
//! start) and `exec` (the whole round trip, from the create request until its exit code is
//! known); its detail is the helper's name (`localci-step`, `localci-setup` ...).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures_util::FutureExt;
use futures_util::stream::BoxStream;

use super::{
    Attached, Backend, ByteStream, ContainerSpec, Credentials, Exec, ExecSpec, Fut, ImageInfo,
    Labelled, PullProgress, Result, TtyExec, TtySize,
};
use crate::trace;

pub struct Traced {
    inner: Arc<dyn Backend>,
    /// Execs under way: id -> (when the create request went out, the helper's name).
    execs: Mutex<HashMap<String, (Instant, String)>>,
}

/// `backend`, traced when the trace is on.
pub fn wrap(backend: Arc<dyn Backend>) -> Arc<dyn Backend> {
    if !trace::enabled() {
        return backend;
    }
    Arc::new(Traced {
        inner: backend,
        execs: Mutex::new(HashMap::new()),
    })
}

/// Runs `call`, then records it as `what` (`detail`).
fn timed<'a, T: Send + 'a>(what: &'static str, detail: String, call: Fut<'a, T>) -> Fut<'a, T> {
    async move {
        let start = Instant::now();
        let result = call.await;
        let detail = match &result {
            Ok(_) => detail,
            Err(e) => format!("{detail} (failed: {e})"),
        };
        trace::span(what, &detail, start);
        result
    }
    .boxed()
}

fn short(id: &str) -> &str {
    &id[..id.len().min(12)]
}

/// What an exec runs, in a few words: the helper's name of `sh -c SCRIPT NAME ...`, else
/// the command.
fn exec_name(spec: &ExecSpec) -> String {
    match spec.cmd.as_slice() {
        [_, c, _, name, ..] if c == "-c" => name.clone(),
        cmd => cmd.first().cloned().unwrap_or_default(),
    }
}

impl Backend for Traced {
    fn host(&self) -> String {
        self.inner.host()
    }

    fn shares_files(&self) -> bool {
        self.inner.shares_files()
    }

    fn inspect_image(&self, image: &str) -> Fut<'_, Option<ImageInfo>> {
        timed(
            "inspect-image",
            image.to_string(),
            self.inner.inspect_image(image),
        )
    }

    fn pull_image(
        &self,
        image: &str,
        credentials: Option<Credentials>,
    ) -> BoxStream<'static, Result<PullProgress>> {
        self.inner.pull_image(image, credentials)
    }

    fn create_container(&self, spec: ContainerSpec) -> Fut<'_, String> {
        let detail = spec.name.clone().unwrap_or_default();
        timed("create", detail, self.inner.create_container(spec))
    }

    fn start_container(&self, id: &str) -> Fut<'_, ()> {
        timed("start", short(id).into(), self.inner.start_container(id))
    }

    fn attach(&self, id: &str) -> Fut<'_, Attached> {
        timed("attach", short(id).into(), self.inner.attach(id))
    }

    fn container_running(&self, id: &str) -> Fut<'_, bool> {
        timed(
            "inspect",
            short(id).into(),
            self.inner.container_running(id),
        )
    }

    fn container_exit_code(&self, id: &str) -> Fut<'_, Option<i64>> {
        timed(
            "inspect",
            short(id).into(),
            self.inner.container_exit_code(id),
        )
    }

    fn logs_tail(&self, id: &str, lines: usize) -> Fut<'_, Vec<String>> {
        timed("logs", short(id).into(), self.inner.logs_tail(id, lines))
    }

    fn oom_killed(&self, id: &str) -> Fut<'_, bool> {
        timed("oom-check", short(id).into(), self.inner.oom_killed(id))
    }

    fn remove_container(&self, id: &str) -> Fut<'_, ()> {
        timed("remove", short(id).into(), self.inner.remove_container(id))
    }

    fn kill_container(&self, id: &str) -> Fut<'_, ()> {
        timed("kill", short(id).into(), self.inner.kill_container(id))
    }

    fn exec_tty(&self, container: &str, spec: ExecSpec, size: TtySize) -> Fut<'_, TtyExec> {
        let name = exec_name(&spec);
        timed("exec-tty", name, self.inner.exec_tty(container, spec, size))
    }

    fn resize_tty(&self, exec_id: &str, size: TtySize) -> Fut<'_, ()> {
        timed(
            "resize",
            short(exec_id).into(),
            self.inner.resize_tty(exec_id, size),
        )
    }

    fn exec(&self, container: &str, spec: ExecSpec) -> Fut<'_, Exec> {
        let name = exec_name(&spec);
        let call = self.inner.exec(container, spec);
        async move {
            let start = Instant::now();
            let result = call.await;
            match &result {
                Ok(exec) => {
                    trace::span("exec-start", &name, start);
                    self.execs
                        .lock()
                        .expect("no task panics holding it")
                        .insert(exec.id.clone(), (start, name));
                }
                Err(e) => trace::span("exec-start", &format!("{name} (failed: {e})"), start),
            }
            result
        }
        .boxed()
    }

    fn exec_exit_code(&self, exec_id: &str) -> Fut<'_, i64> {
        let call = self.inner.exec_exit_code(exec_id);
        let exec_id = exec_id.to_string();
        async move {
            let asked = Instant::now();
            let result = call.await;
            trace::span("exec-exit-code", &exec_id[..exec_id.len().min(12)], asked);
            let begun = self
                .execs
                .lock()
                .expect("no task panics holding it")
                .remove(&exec_id);
            if let Some((start, name)) = begun {
                let detail = match &result {
                    Ok(code) => format!("{name} exit {code}"),
                    Err(e) => format!("{name} (failed: {e})"),
                };
                trace::span("exec", &detail, start);
            }
            result
        }
        .boxed()
    }

    fn upload(&self, container: &str, dir: &str, tar: ByteStream) -> Fut<'_, ()> {
        timed(
            "upload",
            format!("{} {dir}", short(container)),
            self.inner.upload(container, dir, tar),
        )
    }

    fn download(&self, container: &str, path: &str) -> Fut<'_, ByteStream> {
        timed(
            "download",
            format!("{} {path}", short(container)),
            self.inner.download(container, path),
        )
    }

    fn list_labelled(&self, label: &str) -> Fut<'_, Vec<Labelled>> {
        timed("list", label.to_string(), self.inner.list_labelled(label))
    }

    fn remove(&self, resource: &Labelled) -> Fut<'_, ()> {
        timed(
            "remove",
            short(&resource.id).into(),
            self.inner.remove(resource),
        )
    }
}
