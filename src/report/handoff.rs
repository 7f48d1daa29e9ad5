//! Lending the terminal to an interactive shell (`--shell-on-fail`): the engine sends a
//! [`Handoff`] in [`Event::ShellOpened`](super::Event::ShellOpened); the one reporter writes
//! out what it holds, clears its live block, says the terminal is free, and then reads no
//! event until the engine gives the terminal back with the shell's end, which it shows first
//! ([`Event::ShellClosed`](super::Event::ShellClosed)). Events sent meanwhile (other jobs of a
//! workflow) wait in the channel, in order, and come after it; their output lines slow their
//! producers down as usual.

use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::oneshot;

/// The reporter's end of a handoff (carried in the event).
#[derive(Clone)]
pub struct Handoff(Arc<Ends>);

struct Ends {
    free: Mutex<Option<oneshot::Sender<()>>>,
    back: Mutex<Option<oneshot::Receiver<Option<i64>>>>,
}

/// The engine's end: wait until the terminal is free, then give it back (dropping it gives
/// it back too, so the reporter never waits for a shell that is gone).
pub struct Lender {
    free: oneshot::Receiver<()>,
    back: Option<oneshot::Sender<Option<i64>>>,
}

/// A new handoff: the event's end and the engine's.
pub fn handoff() -> (Handoff, Lender) {
    let (free_tx, free_rx) = oneshot::channel();
    let (back_tx, back_rx) = oneshot::channel();
    let ends = Ends {
        free: Mutex::new(Some(free_tx)),
        back: Mutex::new(Some(back_rx)),
    };
    (
        Handoff(Arc::new(ends)),
        Lender {
            free: free_rx,
            back: Some(back_tx),
        },
    )
}

impl Handoff {
    /// Says that the terminal is free, then waits until it is given back; the shell's exit
    /// code when known. Only the first reporter that gets the event takes part; a copy of it
    /// returns at once.
    pub(crate) async fn lend(&self) -> Option<i64> {
        let back = self
            .0
            .back
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let free = self
            .0
            .free
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(free) = free {
            let _ = free.send(());
        }
        match back {
            Some(back) => back.await.ok().flatten(),
            None => None,
        }
    }
}

impl Lender {
    /// Waits until the reporter has written out everything before the shell and cleared
    /// its live block; also returns when the reporter has gone away.
    pub async fn free(&mut self) {
        let _ = (&mut self.free).await;
    }

    /// The shell is over (with `exit_code`, when known): the reporter says so and goes on.
    pub fn give_back(mut self, exit_code: Option<i64>) {
        if let Some(back) = self.back.take() {
            let _ = back.send(exit_code);
        }
    }
}

impl std::fmt::Debug for Handoff {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Handoff")
    }
}

impl PartialEq for Handoff {
    fn eq(&self, other: &Handoff) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_reporter_waits_until_the_terminal_is_given_back() {
        let (reporter_end, mut lender) = handoff();
        let reporter = tokio::spawn(async move { reporter_end.lend().await });
        lender.free().await;
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert!(
            !reporter.is_finished(),
            "the reporter went on during the shell"
        );
        lender.give_back(Some(4));
        assert_eq!(reporter.await.unwrap(), Some(4));
    }

    /// A writer the test reads while the reporter runs.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Shared {
        fn text(&self) -> String {
            String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
        }
    }

    #[tokio::test]
    async fn the_terminal_reporter_prints_the_banners_and_holds_lines_during_the_shell() {
        use crate::report::{Event, Events, JobRef, ReporterKind};
        let out = Shared::default();
        let kind = ReporterKind::Terminal {
            color: false,
            live: false,
            multi_job: true,
        };
        let (sink, task) = crate::report::spawn(out.clone(), kind);
        let build = Events::new(sink.clone(), JobRef::new("build", None));
        let lint = Events::new(sink, JobRef::new("lint", None));
        build.info("before the shell");
        let (handoff, mut lender) = handoff();
        build.send(Event::ShellOpened {
            job: build.job(),
            step: 2,
            name: "make test\nmake lint".into(),
            handoff,
        });
        lender.free().await;
        lint.info("lint line during the shell");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        // The lint line waited in the channel; the closing banner comes first.
        let during = out.text();
        assert_eq!(
            during,
            "build | before the shell\n\
             build | Step \"make test...\" failed; opening a shell in the primary container (exit the shell to end the job)\n"
        );
        lender.give_back(Some(0));
        drop((build, lint));
        task.await.unwrap();
        let after = out.text();
        assert_eq!(
            &after[during.len()..],
            "build | Shell closed (exit code 0); the job ends as failed\n\
             lint  | lint line during the shell\n"
        );
    }

    #[tokio::test]
    async fn a_dropped_lender_or_reporter_blocks_nobody() {
        let (reporter_end, lender) = handoff();
        drop(lender);
        reporter_end.lend().await;
        let (reporter_end, mut lender) = handoff();
        drop(reporter_end);
        lender.free().await;
    }
}
