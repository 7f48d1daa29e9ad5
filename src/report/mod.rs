//! Run output: steps and the engine emit [`Event`]s into a channel; ONE reporter task consumes
//! them and writes text, so lines are never interleaved mid-line. Nothing else prints run
//! output.

mod event;
mod lines;
pub mod mask;
mod pull_bars;
mod terminal;

use std::io::{BufWriter, Write};

use tokio::task::JoinHandle;

pub use event::{Event, Events, Receiver, Sink, StepStatus, Stream, channel};
pub use lines::LineSplitter;
pub use terminal::Terminal;

/// Starts the reporter task writing to `out`; `pull_progress` draws pulls layer by layer on
/// stderr (give it only when stderr is a terminal). Drop every sink, then await the handle to
/// be sure everything was written.
pub fn spawn<W: Write + Send + 'static>(
    out: W,
    color: bool,
    pull_progress: bool,
) -> (Sink, JoinHandle<()>) {
    let (sink, mut rx) = channel();
    let handle = tokio::spawn(async move {
        let mut terminal = Terminal::new(BufWriter::with_capacity(64 * 1024, out), color);
        if pull_progress {
            terminal = terminal.show_pulls();
        }
        while let Some(event) = rx.recv().await {
            terminal.handle(&event);
            // Flush when caught up: a live view without a write per line under load.
            if rx.is_empty() {
                terminal.flush();
            }
        }
        terminal.finish();
    });
    (sink, handle)
}
