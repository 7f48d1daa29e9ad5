//! `--shell-on-fail`: right after the first step of a job that fails, an interactive shell on
//! a real terminal in the primary container, with the step's environment, working directory
//! and shell (bash with `$BASH_ENV` loaded after the user's own `~/.bashrc`, else the shell
//! with `-i`). The reporter lends the terminal (report/handoff.rs) while the host terminal is
//! in raw mode, so every key (Ctrl-C too) goes to the shell; it is restored when the shell
//! ends, on Ctrl-C/SIGTERM, on a panic (a guard) and on a forced exit. One shell at a time:
//! another job of a workflow that fails meanwhile waits for its turn, and the other jobs'
//! lines wait until the shell is over. When the shell ends, the job goes on as CircleCI's
//! rules say after a failure (`when: on_fail` and `always` steps) and ends as failed.

use std::io::{self, IsTerminal, Write};
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, watch};

use crate::backend::{BackendError, ExecSpec, Result, TtySize};
use crate::config::{Step, StepKind};
use crate::report::Event;
use crate::steps::{self, StepContext, tarball};

/// How the engine gets the host terminal when a shell opens.
#[derive(Clone)]
pub struct ShellOnFail {
    open: Arc<dyn Fn() -> io::Result<HostTerminal> + Send + Sync>,
}

impl ShellOnFail {
    /// Shells on the terminal of this process (its standard input).
    pub fn on_this_terminal() -> ShellOnFail {
        ShellOnFail {
            open: Arc::new(HostTerminal::open),
        }
    }

    /// Shells on a terminal that `open` makes (for tests).
    #[cfg(test)]
    pub(crate) fn with(
        open: impl Fn() -> io::Result<HostTerminal> + Send + Sync + 'static,
    ) -> Self {
        ShellOnFail {
            open: Arc::new(open),
        }
    }
}

impl std::fmt::Debug for ShellOnFail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ShellOnFail")
    }
}

/// Whether `--shell-on-fail` can work here: the keys come from standard input, which must
/// be a terminal.
pub fn usable() -> bool {
    io::stdin().is_terminal()
}

/// The host side of a shell: what is typed, where the shell's output goes, the terminal's
/// size as it changes, and its `TERM`. Dropping it gives the terminal back as it was.
pub struct HostTerminal {
    pub(crate) input: mpsc::Receiver<Bytes>,
    pub(crate) output: Box<dyn Write + Send>,
    pub(crate) sizes: watch::Receiver<TtySize>,
    pub(crate) term: String,
    /// Restores the terminal and stops the reader when dropped.
    _restore: Option<Box<dyn Send>>,
}

impl HostTerminal {
    /// A terminal made of channels (tests).
    #[cfg(test)]
    pub(crate) fn from_parts(
        input: mpsc::Receiver<Bytes>,
        output: Box<dyn Write + Send>,
        sizes: watch::Receiver<TtySize>,
    ) -> HostTerminal {
        HostTerminal {
            input,
            output,
            sizes,
            term: "xterm".into(),
            _restore: None,
        }
    }

    /// This process's terminal in raw mode: keys from standard input, output to standard
    /// output (or standard error when only that one is a terminal), SIGWINCH followed.
    fn open() -> io::Result<HostTerminal> {
        use rustix::termios::{OptionalActions, tcgetattr, tcsetattr};
        let stdin = io::stdin();
        let saved = tcgetattr(&stdin)?;
        let size = size_of(&stdin).unwrap_or(TtySize { rows: 24, cols: 80 });
        let mut raw = saved.clone();
        raw.make_raw();
        *SAVED.lock().unwrap_or_else(PoisonError::into_inner) = Some(saved);
        // From here on, whatever happens puts the terminal back.
        let mut restore = Restore::default();
        tcsetattr(&stdin, OptionalActions::Drain, &raw)?;
        let (size_tx, sizes) = watch::channel(size);
        let (keys_tx, input) = mpsc::channel(64);
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        restore.stop = Some(stop.clone());
        restore.reader = Some(
            std::thread::Builder::new()
                .name("localci-shell-keys".into())
                .spawn(move || read_keys(&keys_tx, &stop))?,
        );
        restore.resizes = Some(tokio::spawn(follow_size(size_tx)));
        let output: Box<dyn Write + Send> =
            if !io::stdout().is_terminal() && io::stderr().is_terminal() {
                Box::new(io::stderr())
            } else {
                Box::new(io::stdout())
            };
        Ok(HostTerminal {
            input,
            output,
            sizes,
            term: std::env::var("TERM")
                .ok()
                .filter(|t| !t.is_empty() && t != "dumb")
                .unwrap_or_else(|| "xterm".into()),
            _restore: Some(Box::new(restore)),
        })
    }
}

/// The terminal settings before raw mode, while a shell runs.
static SAVED: Mutex<Option<rustix::termios::Termios>> = Mutex::new(None);

/// Puts the terminal back as it was before a shell (a forced exit calls it too).
pub(crate) fn restore_host_terminal() {
    let saved = SAVED.lock().unwrap_or_else(PoisonError::into_inner).take();
    if let Some(saved) = saved {
        let _ =
            rustix::termios::tcsetattr(io::stdin(), rustix::termios::OptionalActions::Now, &saved);
    }
}

/// Restores the terminal and stops the key reader and the size follower when dropped,
/// also while a panic unwinds.
#[derive(Default)]
struct Restore {
    stop: Option<Arc<std::sync::atomic::AtomicBool>>,
    reader: Option<std::thread::JoinHandle<()>>,
    resizes: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for Restore {
    fn drop(&mut self) {
        restore_host_terminal();
        if let Some(task) = self.resizes.take() {
            task.abort();
        }
        if let Some(stop) = self.stop.take() {
            stop.store(true, std::sync::atomic::Ordering::SeqCst);
        }
        // The reader sees the flag within one poll interval; it must not read a key meant
        // for whatever comes after the shell.
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}

/// How long the key reader waits for a key before it looks at the stop flag.
const KEY_POLL_MS: i32 = 50;

/// Reads keys from standard input until told to stop or the input ends (then the channel
/// closes).
fn read_keys(keys: &mpsc::Sender<Bytes>, stop: &std::sync::atomic::AtomicBool) {
    use rustix::event::{PollFd, PollFlags, Timespec, poll};
    let stdin = io::stdin();
    let mut buf = [0u8; 4096];
    let wait = Timespec {
        tv_sec: 0,
        tv_nsec: i64::from(KEY_POLL_MS) * 1_000_000,
    };
    while !stop.load(std::sync::atomic::Ordering::SeqCst) {
        let mut fds = [PollFd::new(&stdin, PollFlags::IN)];
        match poll(&mut fds, Some(&wait)) {
            Ok(0) | Err(rustix::io::Errno::INTR) => continue,
            Ok(_) => {}
            Err(_) => return,
        }
        match rustix::io::read(&stdin, &mut buf) {
            Ok(0) => return,
            Ok(n) => {
                if keys
                    .blocking_send(Bytes::copy_from_slice(&buf[..n]))
                    .is_err()
                {
                    return;
                }
            }
            Err(rustix::io::Errno::INTR | rustix::io::Errno::AGAIN) => {}
            Err(_) => return,
        }
    }
}

fn size_of(fd: impl rustix::fd::AsFd) -> Option<TtySize> {
    let size = rustix::termios::tcgetwinsize(fd).ok()?;
    (size.ws_row > 0 && size.ws_col > 0).then_some(TtySize {
        rows: size.ws_row,
        cols: size.ws_col,
    })
}

/// Sends the terminal's new size on every SIGWINCH.
async fn follow_size(sizes: watch::Sender<TtySize>) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut changes) = signal(SignalKind::window_change()) else {
        return;
    };
    while changes.recv().await.is_some() {
        if let Some(size) = size_of(io::stdin()) {
            sizes.send_replace(size);
        }
    }
}

/// How a shell after a failure ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ended {
    /// No shell was asked for (no `--shell-on-fail`).
    NotAsked,
    /// The user left it (or it could not open: the job goes on as failed).
    Closed,
    /// Ctrl-C or SIGTERM (from outside the shell) ended it: the job stops.
    Interrupted,
}

/// One shell at a time: the terminal is one.
static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// With `--shell-on-fail`, opens the shell after step `index` (`step`) failed and returns
/// when it ends.
pub(crate) async fn after_failure(ctx: &StepContext, index: usize, step: &Step) -> Result<Ended> {
    let Some(shell_on_fail) = ctx.settings.shell_on_fail.clone() else {
        return Ok(Ended::NotAsked);
    };
    let _turn = tokio::select! {
        () = ctx.cancel.cancelled() => return Ok(Ended::Interrupted),
        turn = TURN.lock() => turn,
    };
    let command = ShellCommand::of(ctx, step);
    if command.rc_file.is_some() {
        let tar = tarball::single_file(RC_FILE, RC.as_bytes(), ctx.facts.uid, ctx.facts.gid)
            .map_err(|e| BackendError::Api(e.to_string()))?;
        ctx.backend.upload(&ctx.primary, &ctx.run_dir, tar).await?;
    }
    ctx.events.info(format!(
        "--shell-on-fail: {} in {}, with the step's environment{}",
        command.program,
        command.working_dir,
        if command.rc_file.is_some() {
            " and $BASH_ENV"
        } else {
            ""
        }
    ));
    let (handoff, mut lender) = crate::report::handoff();
    ctx.events.send(Event::ShellOpened {
        job: ctx.events.job(),
        step: index,
        name: step.display_name(),
        handoff,
    });
    tokio::select! {
        () = ctx.cancel.cancelled() => return Ok(Ended::Interrupted),
        () = lender.free() => {}
    }
    let host = match (shell_on_fail.open)() {
        Ok(host) => host,
        Err(e) => {
            lender.give_back(None);
            ctx.events.warning(format!(
                "cannot put the terminal in raw mode for the shell: {e}"
            ));
            return Ok(Ended::Closed);
        }
    };
    let ran = converse(ctx, &command, host).await;
    let exit_code = match &ran {
        Ok(Conversation::Exited(code)) => *code,
        _ => None,
    };
    lender.give_back(exit_code);
    match ran {
        Ok(Conversation::Interrupted) => Ok(Ended::Interrupted),
        Ok(Conversation::Exited(_)) => Ok(Ended::Closed),
        Err(e @ BackendError::Lost { .. }) => Err(e),
        Err(e) => {
            ctx.events.warning(format!("the shell failed: {e}"));
            Ok(Ended::Closed)
        }
    }
}

/// The rc file bash reads instead of `~/.bashrc` (it still reads `/etc/bash.bashrc`): the
/// user's own, then the job's `$BASH_ENV`, as a step's shell would have it.
const RC: &str = r#"# localci --shell-on-fail
if [ -f ~/.bashrc ]; then . ~/.bashrc; fi
if [ -n "$BASH_ENV" ] && [ -f "$BASH_ENV" ]; then . "$BASH_ENV"; fi
"#;
const RC_FILE: &str = "shell-on-fail.bashrc";

/// What runs on the terminal.
#[derive(Debug, PartialEq, Eq)]
struct ShellCommand {
    program: String,
    cmd: Vec<String>,
    working_dir: String,
    env: Vec<String>,
    rc_file: Option<String>,
}

impl ShellCommand {
    /// The failed step's shell, working directory and environment. A `run` step's own shell
    /// when it is a shell (bash, sh ...), else the job's; for any other step, the job's.
    fn of(ctx: &StepContext, step: &Step) -> ShellCommand {
        let (shell, working_dir, env) = match &step.kind {
            StepKind::Run(run) => (
                steps::run::shell(ctx, run),
                ctx.facts
                    .resolve(run.working_directory.as_deref().unwrap_or(".")),
                ctx.step_env(&run.environment),
            ),
            _ => (
                ctx.plan
                    .shell
                    .clone()
                    .unwrap_or_else(|| ctx.facts.default_shell.clone()),
                ctx.facts.working_directory.clone(),
                ctx.step_env(&[]),
            ),
        };
        let program = shlex::split(&shell)
            .and_then(|words| words.into_iter().next())
            .filter(|p| is_shell(p))
            .unwrap_or_else(|| ctx.facts.default_shell.clone());
        let (cmd, rc_file) = if base_name(&program) == "bash" {
            let rc = format!("{}/{RC_FILE}", ctx.run_dir);
            (
                vec![program.clone(), "--rcfile".into(), rc.clone(), "-i".into()],
                Some(rc),
            )
        } else {
            (vec![program.clone(), "-i".into()], None)
        };
        ShellCommand {
            program,
            cmd,
            working_dir,
            env,
            rc_file,
        }
    }
}

fn base_name(program: &str) -> &str {
    program.rsplit('/').next().unwrap_or(program)
}

/// Shells that read commands interactively with `-i`.
fn is_shell(program: &str) -> bool {
    matches!(
        base_name(program),
        "bash" | "sh" | "ash" | "dash" | "zsh" | "ksh" | "mksh"
    )
}

enum Conversation {
    /// The shell ended (its exit code, when the daemon could tell).
    Exited(Option<i64>),
    Interrupted,
}

/// Runs the shell on the terminal until it ends or the run is cancelled.
async fn converse(
    ctx: &StepContext,
    command: &ShellCommand,
    mut host: HostTerminal,
) -> Result<Conversation> {
    let mut env = command.env.clone();
    env.push(format!("TERM={}", host.term));
    let spec = ExecSpec {
        cmd: command.cmd.clone(),
        env,
        user: None,
        working_dir: Some(command.working_dir.clone()),
    };
    let size = *host.sizes.borrow_and_update();
    let exec = ctx.backend.exec_tty(&ctx.primary, spec, size).await?;
    let (mut output, mut input) = (exec.output, exec.input);
    let mut typing = true;
    loop {
        tokio::select! {
            biased;
            () = ctx.cancel.cancelled() => return Ok(Conversation::Interrupted),
            chunk = output.next() => match chunk {
                Some(Ok(bytes)) => {
                    // A terminal that cannot be written to is the user's to see.
                    let _ = host.output.write_all(&bytes);
                    let _ = host.output.flush();
                }
                Some(Err(e)) => return Err(e),
                None => break,
            },
            keys = host.input.recv(), if typing => match keys {
                Some(keys) => {
                    if input.write_all(&keys).await.is_err() {
                        typing = false;
                    }
                }
                // The host's input ended: so does the shell's.
                None => {
                    typing = false;
                    let _ = input.shutdown().await;
                }
            },
            Ok(()) = host.sizes.changed() => {
                let size = *host.sizes.borrow_and_update();
                // A size the daemon did not take leaves the old one; the shell goes on.
                let _ = ctx.backend.resize_tty(&exec.id, size).await;
            }
        }
    }
    drop(host);
    let code = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        ctx.backend.exec_exit_code(&exec.id),
    )
    .await;
    Ok(Conversation::Exited(code.ok().and_then(|c| c.ok())))
}

#[cfg(test)]
mod tests;
