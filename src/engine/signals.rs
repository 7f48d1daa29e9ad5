//! Ctrl-C and SIGTERM become a cancelled [`CancellationToken`]; the engine then stops the
//! job and removes its containers. A second signal forces the exit: it removes, with forced
//! removes that take well under a second, the containers of every job still running and the
//! host scratch files of copies in flight (`store::scratch`), then exits 130 (issue 9,
//! finding 8: a double Ctrl-C left containers and a 0-byte `.partial`). A third signal exits
//! at once. The handlers are registered when this is called (at startup), not on first use,
//! so an early Ctrl-C is not lost to the default handler.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures_util::future::join_all;
use tokio_util::sync::CancellationToken;

use super::run_info::RunInfo;
use crate::backend::{Backend, LABEL_RUN};
use crate::exit::Outcome;

/// How long a forced exit waits for the engine to remove containers.
/// A forced remove is fast, but the daemon deletes a large container layer before it answers.
const FORCED_CLEANUP: Duration = Duration::from_secs(10);

/// Registers the handlers; must be called inside the tokio runtime.
pub fn cancel_on_signals() -> std::io::Result<CancellationToken> {
    let token = CancellationToken::new();
    let cancel = token.clone();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut terminate = signal(SignalKind::terminate())?;
        tokio::spawn(async move {
            let mut received = 0;
            loop {
                tokio::select! {
                    _ = interrupt.recv() => {}
                    _ = terminate.recv() => {}
                }
                received += 1;
                on_signal(received, &cancel);
            }
        });
    }
    #[cfg(not(unix))]
    tokio::spawn(async move {
        let mut received = 0;
        while tokio::signal::ctrl_c().await.is_ok() {
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
            std::process::exit(Outcome::Interrupted.code())
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
    std::process::exit(Outcome::Interrupted.code());
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
