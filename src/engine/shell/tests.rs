//! `--shell-on-fail` against the in-memory backend and a terminal made of channels: what
//! the shell runs with, the conversation, resizes, the handoff with the reporter, Ctrl-C.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::*;
use crate::backend::fake::FakeBackend;
use crate::engine::{EngineOptions, NodeOutcome, bash_env_path, run_job};
use crate::plan::{JobPlan, Plan, PlanOptions};
use crate::report::Event;
use crate::source::{Source, Sources};

fn plan_for(steps: &str, shell: Option<&str>) -> JobPlan {
    let shell = shell
        .map(|s| format!("    shell: {s}\n"))
        .unwrap_or_default();
    let yaml = format!(
        "version: 2\njobs:\n  build:\n    docker: [{{image: img}}]\n{shell}    environment: {{FROM_JOB: j}}\n    steps:\n{steps}"
    );
    let mut sources = Sources::new();
    let id = sources.add(Source::new("t.yml", yaml));
    let node = crate::yaml::parse(sources.get(id), id).expect("valid YAML");
    let config = crate::config::parse(&node).expect("valid config");
    let options = PlanOptions {
        node_total: 1,
        bash_env: bash_env_path(1),
        ..PlanOptions::default()
    };
    match crate::plan::plan(&config, "build", &options).expect("plans") {
        Plan::Run(p) => *p,
        Plan::Nothing(why) => panic!("{why}"),
    }
}

/// What the terminal shows, as bytes.
#[derive(Clone, Default)]
struct Screen(Arc<Mutex<Vec<u8>>>);

impl Write for Screen {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Screen {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    /// Waits until the screen shows `text` (at most 5 s).
    async fn shows(&self, text: &str) {
        for _ in 0..500 {
            if self.text().contains(text) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the screen never showed {text:?}: {:?}", self.text());
    }
}

/// The test's side of the terminal: keys, size, screen.
struct Person {
    keys: mpsc::Sender<Bytes>,
    size: watch::Sender<TtySize>,
    screen: Screen,
    opened: Arc<std::sync::atomic::AtomicU32>,
}

impl Person {
    async fn types(&self, text: &str) {
        self.keys
            .send(Bytes::from(text.to_string()))
            .await
            .expect("the shell reads keys");
    }
}

/// A `--shell-on-fail` that hands out one terminal made of channels.
fn terminal() -> (ShellOnFail, Person) {
    let (keys, input) = mpsc::channel(16);
    let (size, sizes) = watch::channel(TtySize { rows: 30, cols: 90 });
    let screen = Screen::default();
    let host = Mutex::new(Some(HostTerminal::from_parts(
        input,
        Box::new(screen.clone()),
        sizes,
    )));
    let opened = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let count = opened.clone();
    let shell = ShellOnFail::with(move || {
        count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        host.lock()
            .unwrap()
            .take()
            .ok_or_else(|| io::Error::other("one terminal only"))
    });
    (
        shell,
        Person {
            keys,
            size,
            screen,
            opened,
        },
    )
}

struct Ran {
    outcome: NodeOutcome,
    events: Vec<Event>,
}

impl Ran {
    fn position(&self, what: impl Fn(&Event) -> bool) -> usize {
        self.events
            .iter()
            .position(what)
            .unwrap_or_else(|| panic!("no such event in {:#?}", self.events))
    }
}

/// Runs the job with `shell`, a reporter that lends the terminal as the real one does, and
/// `person` at the keyboard.
async fn run(
    backend: &Arc<FakeBackend>,
    plan: JobPlan,
    shell: ShellOnFail,
    cancel: CancellationToken,
    person: impl Future<Output = ()> + Send + 'static,
) -> Ran {
    let (sink, mut rx) = crate::report::channel();
    let reporter = tokio::spawn(async move {
        let mut events = Vec::new();
        while let Some(event) = rx.recv().await {
            let lent = match &event {
                Event::ShellOpened { job, handoff, .. } => Some((job.clone(), handoff.clone())),
                _ => None,
            };
            events.push(event);
            if let Some((job, handoff)) = lent {
                let exit_code = handoff.lend().await;
                events.push(Event::ShellClosed { job, exit_code });
            }
        }
        events
    });
    let typing = tokio::spawn(person);
    let options = EngineOptions {
        shell_on_fail: Some(shell),
        ..EngineOptions::default()
    };
    let outcome = run_job(backend.clone(), plan, options, sink, cancel)
        .await
        .expect("no infrastructure failure");
    typing.await.expect("the person typed");
    let events = reporter.await.unwrap();
    Ran { outcome, events }
}

#[tokio::test]
async fn the_shell_opens_after_the_failed_step_with_its_directory_and_environment() {
    let backend = Arc::new(FakeBackend::new(&["img"]));
    let plan = plan_for(
        "      - run: echo one\n      - run:\n          command: exit 3\n          working_directory: sub\n          environment: {STEP_VAR: s}\n      - run: echo skipped\n      - run:\n          command: echo after\n          when: on_fail\n",
        None,
    );
    let (shell, keyboard) = terminal();
    let ran = run(
        &backend,
        plan,
        shell,
        CancellationToken::new(),
        async move {
            keyboard.screen.shows("$ ").await;
            keyboard.types("pwd\r").await;
            keyboard.screen.shows("\r\n/root/project/sub\r\n").await;
            keyboard.types("echo $STEP_VAR\r").await;
            keyboard.screen.shows("\r\ns\r\n").await;
            keyboard.types("echo $FROM_JOB\r").await;
            keyboard.screen.shows("\r\nj\r\n").await;
            keyboard.size.send_replace(TtySize {
                rows: 50,
                cols: 120,
            });
            keyboard.types("exit 7\r").await;
        },
    )
    .await;
    assert_eq!(ran.outcome, NodeOutcome::Failed);
    let opened = ran.position(|e| matches!(e, Event::ShellOpened { step: 1, .. }));
    let closed = ran.position(|e| {
        matches!(
            e,
            Event::ShellClosed {
                exit_code: Some(7),
                ..
            }
        )
    });
    let failed_step = ran.position(|e| matches!(e, Event::StepFinished { step: 1, .. }));
    let on_fail = ran.position(|e| matches!(e, Event::StepStarted { step: 3, .. }));
    assert!(failed_step < opened && opened < closed && closed < on_fail);
    assert!(
        ran.events
            .iter()
            .any(|e| matches!(e, Event::StepSkipped { step: 2, .. }))
    );
    let state = backend.state();
    let [(call, started)] = &state.tty_execs[..] else {
        panic!("one shell: {:?}", state.tty_execs);
    };
    assert_eq!(call.spec.cmd, ["/bin/sh", "-i"]);
    assert_eq!(call.spec.working_dir.as_deref(), Some("/root/project/sub"));
    assert_eq!(call.env("STEP_VAR"), Some("s"));
    assert_eq!(call.env("CIRCLE_JOB"), Some("build"));
    assert_eq!(call.env("TERM"), Some("xterm"));
    assert_eq!(*started, TtySize { rows: 30, cols: 90 });
    assert!(
        state.resizes.iter().any(|(_, s)| *s
            == TtySize {
                rows: 50,
                cols: 120
            }),
        "{:?}",
        state.resizes
    );
    assert!(state.containers.is_empty(), "everything is removed");
}

#[tokio::test]
async fn bash_reads_the_users_bashrc_then_bash_env_and_one_failure_opens_one_shell() {
    let backend = Arc::new(FakeBackend::new(&["img"]));
    // The on_fail step fails too: still one shell, after the first failure.
    let plan = plan_for(
        "      - run: exit 1\n      - run:\n          command: exit 2\n          when: on_fail\n",
        Some("/bin/bash -eo pipefail"),
    );
    let (shell, person) = terminal();
    let opened = person.opened.clone();
    let ran = run(
        &backend,
        plan,
        shell,
        CancellationToken::new(),
        async move {
            person.screen.shows("$ ").await;
            person.types("exit\r").await;
        },
    )
    .await;
    assert_eq!(ran.outcome, NodeOutcome::Failed);
    assert_eq!(opened.load(std::sync::atomic::Ordering::SeqCst), 1);
    let state = backend.state();
    let (call, _) = &state.tty_execs[0];
    let rc = call.spec.cmd[2].clone();
    assert_eq!(
        call.spec.cmd,
        ["/bin/bash", "--rcfile", rc.as_str(), "-i"],
        "an interactive bash, not `-eo pipefail`"
    );
    let uploaded = String::from_utf8(state.files[&rc].clone()).unwrap();
    assert!(uploaded.contains(". ~/.bashrc"), "{uploaded}");
    assert!(uploaded.contains(r#". "$BASH_ENV""#), "{uploaded}");
    assert_eq!(call.env("BASH_ENV"), Some(bash_env_path(1).as_str()));
}

#[tokio::test]
async fn ctrl_c_from_outside_ends_the_shell_and_the_job() {
    let backend = Arc::new(FakeBackend::new(&["img"]));
    let plan = plan_for(
        "      - run: exit 1\n      - run:\n          command: echo after\n          when: always\n",
        None,
    );
    let (shell, person) = terminal();
    let cancel = CancellationToken::new();
    let interrupt = cancel.clone();
    let ran = run(&backend, plan, shell, cancel, async move {
        person.screen.shows("$ ").await;
        interrupt.cancel();
    })
    .await;
    assert_eq!(ran.outcome, NodeOutcome::Interrupted);
    assert!(
        !ran.events
            .iter()
            .any(|e| matches!(e, Event::StepStarted { step: 1, .. })),
        "no step after an interrupted shell"
    );
    ran.position(|e| {
        matches!(
            e,
            Event::ShellClosed {
                exit_code: None,
                ..
            }
        )
    });
    assert!(backend.state().containers.is_empty());
}

#[tokio::test]
async fn a_terminal_that_cannot_be_had_leaves_the_job_failed_with_a_warning() {
    let backend = Arc::new(FakeBackend::new(&["img"]));
    let plan = plan_for("      - run: exit 1\n", None);
    let shell = ShellOnFail::with(|| Err(io::Error::other("not a terminal")));
    let ran = run(&backend, plan, shell, CancellationToken::new(), async {}).await;
    assert_eq!(ran.outcome, NodeOutcome::Failed);
    assert!(
        ran.events
            .iter()
            .any(|e| matches!(e, Event::Warning { text, .. } if text.contains("not a terminal")))
    );
    assert!(backend.state().tty_execs.is_empty());
}

#[tokio::test]
async fn a_passing_job_opens_no_shell() {
    let backend = Arc::new(FakeBackend::new(&["img"]));
    let plan = plan_for("      - run: echo fine\n", None);
    let (shell, person) = terminal();
    let ran = run(&backend, plan, shell, CancellationToken::new(), async {}).await;
    assert_eq!(ran.outcome, NodeOutcome::Passed);
    assert_eq!(person.opened.load(std::sync::atomic::Ordering::SeqCst), 0);
    assert!(backend.state().tty_execs.is_empty());
}

#[test]
fn a_run_steps_own_shell_is_used_when_it_is_a_shell() {
    assert!(is_shell("/bin/bash") && is_shell("sh") && is_shell("/usr/bin/zsh"));
    assert!(!is_shell("/usr/bin/python3") && !is_shell("node"));
}
