//! A reader that reads its source on a background thread, a few chunks ahead, so that
//! decompressing a cache overlaps with whatever consumes it (unpacking, uploading to Docker),
//! as the two processes of `zstd -dc | tar -x` do. Memory is bounded by `depth` chunks.

use std::io::{self, Read};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread;

const CHUNK: usize = 256 * 1024;
const DEPTH: usize = 4;

enum Message {
    Data(Vec<u8>),
    Failed(io::Error),
    End,
}

/// The consuming end; see [`read_ahead`].
pub struct ReadAhead {
    chunks: Receiver<Message>,
    current: Vec<u8>,
    pos: usize,
    done: bool,
}

/// Reads `source` on a new thread, at most 4 chunks of 256 KiB ahead of the caller. Errors of
/// `source` come out of `read` in order; a thread that dies early is an error, never an early end.
pub fn read_ahead(source: impl Read + Send + 'static) -> io::Result<ReadAhead> {
    let (tx, rx) = sync_channel(DEPTH);
    thread::Builder::new()
        .name("localci-read-ahead".into())
        .spawn(move || pump(source, &tx))?;
    Ok(ReadAhead {
        chunks: rx,
        current: Vec::new(),
        pos: 0,
        done: false,
    })
}

fn pump(mut source: impl Read, tx: &SyncSender<Message>) {
    loop {
        let mut chunk = vec![0u8; CHUNK];
        let (n, failure) = read_some(&mut source, &mut chunk);
        chunk.truncate(n);
        let mut messages = Vec::with_capacity(2);
        if n > 0 {
            messages.push(Message::Data(chunk));
        }
        match failure {
            Some(e) => messages.push(Message::Failed(e)),
            None if n == 0 => messages.push(Message::End),
            None => {}
        }
        for message in messages {
            let last = !matches!(message, Message::Data(_));
            // A send error means the reader was dropped: nobody wants the rest.
            if tx.send(message).is_err() || last {
                return;
            }
        }
    }
}

/// Fills `buf` as far as the source allows, retrying interrupts. Returns what was read before
/// an error together with the error, so no byte is lost.
fn read_some(source: &mut impl Read, buf: &mut [u8]) -> (usize, Option<io::Error>) {
    let mut filled = 0;
    while filled < buf.len() {
        match source.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return (filled, Some(e)),
        }
    }
    (filled, None)
}

impl Read for ReadAhead {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.current.len() {
            if self.done {
                return Ok(0);
            }
            match self.chunks.recv() {
                Ok(Message::Data(chunk)) => {
                    self.current = chunk;
                    self.pos = 0;
                }
                Ok(Message::End) => self.done = true,
                Ok(Message::Failed(e)) => {
                    self.done = true;
                    return Err(e);
                }
                Err(_) => {
                    self.done = true;
                    return Err(io::Error::other(
                        "the read-ahead thread stopped before the end",
                    ));
                }
            }
        }
        let n = buf.len().min(self.current.len() - self.pos);
        buf[..n].copy_from_slice(&self.current[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passes_everything_through_in_order() {
        let data: Vec<u8> = (0..CHUNK * 3 + 17).map(|i| (i % 253) as u8).collect();
        let mut out = Vec::new();
        read_ahead(io::Cursor::new(data.clone()))
            .unwrap()
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, data);
    }

    struct FailsAfter(usize);

    impl Read for FailsAfter {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.0 == 0 {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "damaged"));
            }
            let n = buf.len().min(self.0);
            buf[..n].fill(1);
            self.0 -= n;
            Ok(n)
        }
    }

    #[test]
    fn errors_arrive_after_the_data_before_them() {
        let mut reader = read_ahead(FailsAfter(1000)).unwrap();
        let mut out = Vec::new();
        let err = reader.read_to_end(&mut out).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert_eq!(out.len(), 1000);
    }

    struct Panics;

    impl Read for Panics {
        fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
            panic!("source bug");
        }
    }

    #[test]
    fn a_dead_thread_is_an_error_not_an_end() {
        let err = read_ahead(Panics)
            .unwrap()
            .read_to_end(&mut Vec::new())
            .unwrap_err();
        assert!(err.to_string().contains("stopped before the end"));
    }
}
