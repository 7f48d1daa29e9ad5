//! Run output: steps and the engine emit [`Event`]s into a channel; ONE reporter task consumes
//! them and writes text, so lines are never interleaved mid-line. Nothing else prints run
//! output.

mod event;
mod lines;
mod terminal;

use std::io::Write;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

pub use event::{Event, Events, StepStatus, Stream};
pub use lines::LineSplitter;
pub use terminal::Terminal;

/// Starts the reporter task writing to `out`. Drop every sender, then await the handle to be
/// sure everything was written.
pub fn spawn<W: Write + Send + 'static>(
    out: W,
    color: bool,
) -> (mpsc::UnboundedSender<Event>, JoinHandle<W>) {
    let (tx, mut rx) = mpsc::unbounded_channel::<Event>();
    let handle = tokio::spawn(async move {
        let mut terminal = Terminal::new(out, color);
        while let Some(event) = rx.recv().await {
            terminal.handle(&event);
        }
        terminal.into_inner()
    });
    (tx, handle)
}
