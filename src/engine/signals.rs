//! Ctrl-C and SIGTERM become a cancelled [`CancellationToken`]; the engine then stops the
//! job and removes its containers. A second signal exits at once. The handlers are
//! registered when this is called (at startup), not on first use, so an early Ctrl-C is not
//! lost to the default handler.

use tokio_util::sync::CancellationToken;

use crate::exit::Outcome;

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
                if received == 1 {
                    cancel.cancel();
                } else {
                    eprintln!("localci: interrupted again; exiting without cleanup");
                    std::process::exit(Outcome::Interrupted.code());
                }
            }
        });
    }
    #[cfg(not(unix))]
    tokio::spawn(async move {
        let mut received = 0;
        while tokio::signal::ctrl_c().await.is_ok() {
            received += 1;
            if received == 1 {
                cancel.cancel();
            } else {
                std::process::exit(Outcome::Interrupted.code());
            }
        }
    });
    Ok(token)
}
