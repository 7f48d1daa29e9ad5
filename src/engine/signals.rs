//! Ctrl-C and SIGTERM become a cancelled [`CancellationToken`]; the engine then stops the
//! job and removes its containers. A second signal forces the exit: it removes, with forced
//! removes that take well under a second, the containers of every job still running and the
//! host scratch files of copies in flight (`store::scratch`), then exits 130 (issue 9,
//! finding 8: a double Ctrl-C left containers and a 0-byte `.partial`). A third signal exits
//! at once. The handlers are registered when this is called (at startup), not on first use,
//! so an early Ctrl-C is not lost to the default handler.
//!
//! The exit code says which signal came first: 130 for SIGINT, 143 for SIGTERM (128 + the
//! signal's number, as a shell reports a process a signal stopped).

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use futures_util::future::join_all;
use tokio_util::sync::CancellationToken;

use super::run_info::RunInfo;
use crate::backend::{Backend, LABEL_RUN};
use crate::exit::Outcome;

/// How long a forced exit waits for the engine to remove containers.
/// A forced remove is fast, but the daemon deletes a large container layer before it answers.
const FORCED_CLEANUP: Duration = Duration::from_secs(10);

/// Which signal came first: 0 none yet, else [`SIGINT`] or [`SIGTERM`].
static FIRST: AtomicU8 = AtomicU8::new(0);
const SIGINT: u8 = 2;
const SIGTERM: u8 = 15;

/// Cancelled at the first signal: what [`super::hold`] waits for.
static SIGNALLED: OnceLock<CancellationToken> = OnceLock::new();

/// The outcome of a run that a signal stopped: [`Outcome::Terminated`] when SIGTERM came
/// first, else [`Outcome::Interrupted`].
pub fn interrupted() -> Outcome {
    if FIRST.load(Ordering::SeqCst) == SIGTERM {
        Outcome::Terminated
    } else {
        Outcome::Interrupted
    }
}

/// The token a signal cancels, when the handlers are registered.
pub(crate) fn signalled() -> Option<&'static CancellationToken> {
    SIGNALLED.get()
}

/// Registers the handlers; must be called inside the tokio runtime.
pub fn cancel_on_signals() -> std::io::Result<CancellationToken> {
    let token = SIGNALLED.get_or_init(CancellationToken::new).clone();
    let cancel = token.clone();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut terminate = signal(SignalKind::terminate())?;
        tokio::spawn(async move {
            let mut received = 0;
            loop {
                let which = tokio::select! {
                    _ = interrupt.recv() => SIGINT,
                    _ = terminate.recv() => SIGTERM,
                };
                let _ = FIRST.compare_exchange(0, which, Ordering::SeqCst, Ordering::SeqCst);
                received += 1;
                on_signal(received, &cancel);
            }
        });
    }
    #[cfg(not(unix))]
    tokio::spawn(async move {
        let mut received = 0;
        while tokio::signal::ctrl_c().await.is_ok() {
            let _ = FIRST.compare_exchange(0, SIGINT, Ordering::SeqCst, Ordering::SeqCst);
            received += 1;
            on_signal(received, &cancel);
        }
    });
    Ok(token)
}

fn on_signal(received: u32, cancel: &CancellationToken) {
    match received {
        1 => cancel.cancel(),
        2 => {
            eprintln!("localci: interrupted again; removing the containers and exiting");
            tokio::spawn(forced_exit());
        }
        _ => {
            super::shell::restore_host_terminal();
            std::process::exit(interrupted().code())
        }
    }
}

async fn forced_exit() {
    crate::store::scratch::remove_all();
    let runs: Vec<Running> = running().clone();
    let removals = runs
        .iter()
        .map(|r| remove_run(r.backend.as_ref(), &r.run_id));
    let _ = tokio::time::timeout(FORCED_CLEANUP, join_all(removals)).await;
    crate::store::scratch::remove_all();
    super::shell::restore_host_terminal();
    std::process::exit(interrupted().code());
}

/// Everything labelled with the run's id, removed at once (forced removes, in parallel), and
/// again until none is listed: a remove that the engine's own cleanup started already answers
/// "in progress", and the container must be gone before the process ends.
async fn remove_run(backend: &dyn Backend, run_id: &str) {
    loop {
        let Ok(found) = backend.list_labelled(LABEL_RUN).await else {
            return;
        };
        let mine: Vec<_> = found
            .iter()
            .filter(|r| r.labels.get(LABEL_RUN).map(String::as_str) == Some(run_id))
            .collect();
        if mine.is_empty() {
            return;
        }
        join_all(mine.into_iter().map(|r| backend.remove(r))).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[derive(Clone)]
struct Running {
    key: u64,
    backend: Arc<dyn Backend>,
    run_id: String,
}

static RUNNING: Mutex<Vec<Running>> = Mutex::new(Vec::new());

fn running() -> std::sync::MutexGuard<'static, Vec<Running>> {
    RUNNING.lock().unwrap_or_else(PoisonError::into_inner)
}

/// While it lives, a forced exit removes the run's containers.
pub struct ForcedExitCleanup(u64);

/// Registers a run whose containers a forced exit must remove; keep the guard for the run.
pub fn remove_on_forced_exit(backend: Arc<dyn Backend>, run: &RunInfo) -> ForcedExitCleanup {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let key = NEXT.fetch_add(1, Ordering::Relaxed);
    running().push(Running {
        key,
        backend,
        run_id: run.id.clone(),
    });
    ForcedExitCleanup(key)
}

impl Drop for ForcedExitCleanup {
    fn drop(&mut self) {
        running().retain(|r| r.key != self.0);
    }
}
