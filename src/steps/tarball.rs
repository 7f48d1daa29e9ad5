//! Tar streams built on the host and streamed to the engine without buffering: a blocking
//! task writes the archive into fixed-size chunks that go, a few at a time, to the upload
//! body. Entries carry the container user's uid/gid, so files belong to that user.

use std::fs;
use std::io::{self, Write};
use std::path::Path;

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::io::SyncIoBridge;
use tokio_util::sync::CancellationToken;

use crate::backend::ByteStream;

/// Chunk size of the streams sent to the engine: large chunks mean few HTTP chunk frames,
/// few socket writes and few wake-ups of the upload task.
const CHUNK_BYTES: usize = 256 * 1024;
/// Chunks in flight between a blocking producer and the upload: bounds memory (1 MiB) while
/// letting the producer read ahead of the engine.
const CHUNKS_AHEAD: usize = 4;

pub type Builder = tar::Builder<ChunkWriter>;

/// Uploads `tar` into `container` at `/` while `writer` produces it: both results, or `None`
/// when `cancel` fired first (dropping the upload stops the writer at its next chunk).
pub(crate) async fn upload_while_written<T>(
    backend: &dyn crate::backend::Backend,
    container: &str,
    tar: ByteStream,
    writer: JoinHandle<io::Result<T>>,
    cancel: &CancellationToken,
) -> Option<(crate::backend::Result<()>, io::Result<T>)> {
    let upload = backend.upload(container, "/", tar);
    let uploaded = tokio::select! {
        () = cancel.cancelled() => return None,
        uploaded = upload => uploaded,
    };
    let written = writer
        .await
        .map_err(|e| io::Error::other(e.to_string()))
        .and_then(|r| r);
    Some((uploaded, written))
}

/// Runs `write` on a blocking thread with a tar builder; returns the archive as a stream and
/// the writer's result (await it after the stream was consumed). A writer that fails ends the
/// stream with that error, so the engine never takes a truncated archive for a whole one.
pub fn spawn_writer<T, F>(write: F) -> (ByteStream, JoinHandle<io::Result<T>>)
where
    T: Send + 'static,
    F: FnOnce(&mut Builder) -> io::Result<T> + Send + 'static,
{
    let (tx, rx) = mpsc::channel(CHUNKS_AHEAD);
    let handle = tokio::task::spawn_blocking(move || {
        let mut builder = tar::Builder::new(ChunkWriter::new(tx.clone()));
        builder.follow_symlinks(false);
        let written = write(&mut builder).and_then(|result| {
            builder.into_inner()?.flush()?;
            Ok(result)
        });
        if let Err(e) = &written {
            // The receiver may be gone already (the upload failed first); nothing to tell then.
            let _ = tx.blocking_send(Err(io::Error::new(e.kind(), e.to_string())));
        }
        written
    });
    (stream_from(rx), handle)
}

/// The error of a [`ChunkWriter`] whose stream was dropped: the upload ended (failed) first,
/// and its error is the one to report.
#[derive(Debug)]
struct EngineStopped;

impl std::fmt::Display for EngineStopped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the engine stopped reading the archive")
    }
}

impl std::error::Error for EngineStopped {}

/// Whether `e` only says that the upload stopped reading (see [`EngineStopped`]).
pub fn is_engine_stopped(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<EngineStopped>())
}

/// The blocking end of a chunked stream: cuts what it receives into `CHUNK_BYTES` chunks and
/// hands each to the async side, waiting when `CHUNKS_AHEAD` chunks are not consumed yet.
/// `flush` sends the partial chunk.
pub struct ChunkWriter {
    tx: mpsc::Sender<io::Result<Bytes>>,
    buf: BytesMut,
}

impl ChunkWriter {
    fn new(tx: mpsc::Sender<io::Result<Bytes>>) -> Self {
        ChunkWriter {
            tx,
            buf: BytesMut::with_capacity(CHUNK_BYTES),
        }
    }

    fn send(&mut self) -> io::Result<()> {
        let chunk = std::mem::replace(&mut self.buf, BytesMut::with_capacity(CHUNK_BYTES));
        self.tx
            .blocking_send(Ok(chunk.freeze()))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, EngineStopped))
    }
}

impl Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(CHUNK_BYTES - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == CHUNK_BYTES {
            self.send()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        self.send()
    }
}

/// A one-file archive, in memory (for small files such as long step scripts).
pub fn single_file(name: &str, bytes: &[u8], uid: u64, gid: u64) -> io::Result<ByteStream> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(bytes.len() as u64);
    header.set_mode(0o644);
    header.set_uid(uid);
    header.set_gid(gid);
    header.set_mtime(crate::engine::now_unix());
    builder.append_data(&mut header, name, bytes)?;
    let data = builder.into_inner()?;
    Ok(futures_util::stream::once(async move { Ok(bytes::Bytes::from(data)) }).boxed())
}

/// Appends one host path (file, symlink or directory entry, not its contents) as `name`,
/// owned by `uid:gid`, modified at `mtime` (seconds; `None`: as on the host). Returns the
/// bytes of file content added.
pub fn append_path(
    builder: &mut Builder,
    source: &Path,
    name: &Path,
    meta: &fs::Metadata,
    owner: (u64, u64),
    mtime: Option<u64>,
) -> io::Result<u64> {
    let mut header = tar::Header::new_gnu();
    header.set_metadata_in_mode(meta, tar::HeaderMode::Complete);
    header.set_uid(owner.0);
    header.set_gid(owner.1);
    if let Some(mtime) = mtime {
        header.set_mtime(mtime);
    }
    let kind = meta.file_type();
    if kind.is_symlink() {
        let target = fs::read_link(source)?;
        header.set_size(0);
        builder.append_link(&mut header, name, target)?;
        Ok(0)
    } else if kind.is_dir() {
        header.set_size(0);
        builder.append_data(&mut header, name, io::empty())?;
        Ok(0)
    } else if kind.is_file() {
        // `take`: a file that grows while it is read must not overrun its header's size.
        let file = io::Read::take(fs::File::open(source)?, meta.len());
        builder.append_data(&mut header, name, file)?;
        Ok(meta.len())
    } else {
        // Sockets, fifos and devices have no place in a checkout.
        Ok(0)
    }
}

/// Streams a blocking reader (a cache entry) in full chunks, with backpressure; a read error
/// becomes an error item, so the upload fails instead of sending a silently truncated archive.
pub fn reader_stream<R: io::Read + Send + 'static>(mut reader: R) -> ByteStream {
    let (tx, rx) = mpsc::channel(CHUNKS_AHEAD);
    tokio::task::spawn_blocking(move || {
        loop {
            let item = match fill_chunk(&mut reader) {
                Ok(chunk) if chunk.is_empty() => break,
                Ok(chunk) => Ok(chunk),
                Err(e) => Err(e),
            };
            let failed = item.is_err();
            if tx.blocking_send(item).is_err() || failed {
                break;
            }
        }
    });
    stream_from(rx)
}

/// Reads up to `CHUNK_BYTES` (less only at the end of `reader`). Decoders return a block at a
/// time; full chunks halve the frames sent to the engine.
fn fill_chunk(reader: &mut impl io::Read) -> io::Result<Bytes> {
    let mut chunk = vec![0u8; CHUNK_BYTES];
    let mut filled = 0;
    while filled < CHUNK_BYTES {
        match reader.read(&mut chunk[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    chunk.truncate(filled);
    Ok(Bytes::from(chunk))
}

fn stream_from(mut rx: mpsc::Receiver<io::Result<Bytes>>) -> ByteStream {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)).boxed()
}

/// `stream`, ending with an error as soon as `cancel` fires: a blocking reader of it (an
/// extraction, a cache save) stops at its next read instead of reading to the end, so Ctrl-C
/// takes effect during long copies (issue 9, finding 5).
pub fn cancellable(stream: ByteStream, cancel: CancellationToken) -> ByteStream {
    futures_util::stream::unfold(Some((stream, cancel)), |state| async move {
        let (mut stream, cancel) = state?;
        tokio::select! {
            biased;
            () = cancel.cancelled() => Some((Err(cancelled()), None)),
            item = stream.next() => item.map(|item| (item, Some((stream, cancel)))),
        }
    })
    .boxed()
}

/// The error a cancelled stream ends with. Not `ErrorKind::Interrupted`: readers retry on that
/// and would take the end of the stream that follows for the end of the data.
pub fn cancelled() -> io::Error {
    io::Error::other(Cancelled)
}

#[derive(Debug, thiserror::Error)]
#[error("interrupted (Ctrl-C)")]
struct Cancelled;

/// A blocking reader over a byte stream from the engine (use it inside `spawn_blocking`).
pub fn blocking_reader(
    stream: ByteStream,
) -> SyncIoBridge<tokio_util::io::StreamReader<ByteStream, bytes::Bytes>> {
    SyncIoBridge::new(tokio_util::io::StreamReader::new(stream))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn collect(stream: ByteStream) -> Vec<io::Result<Bytes>> {
        stream.collect().await
    }

    #[tokio::test]
    async fn archives_stream_in_full_chunks_and_read_back() {
        let content: Vec<u8> = (0..600_000u32).map(|i| (i % 251) as u8).collect();
        let expected = content.clone();
        let (stream, writer) = spawn_writer(move |b| {
            let mut header = tar::Header::new_gnu();
            header.set_size(content.len() as u64);
            header.set_mode(0o644);
            b.append_data(&mut header, "big.bin", &content[..])?;
            Ok(7)
        });
        let chunks: Vec<Bytes> = collect(stream)
            .await
            .into_iter()
            .collect::<io::Result<_>>()
            .unwrap();
        assert_eq!(writer.await.unwrap().unwrap(), 7);
        let (last, full) = chunks.split_last().unwrap();
        assert!(full.iter().all(|c| c.len() == CHUNK_BYTES));
        assert!(!last.is_empty() && last.len() <= CHUNK_BYTES);
        let data: Vec<u8> = chunks.concat();
        let mut archive = tar::Archive::new(&data[..]);
        let mut entry = archive.entries().unwrap().next().unwrap().unwrap();
        let mut back = Vec::new();
        io::Read::read_to_end(&mut entry, &mut back).unwrap();
        assert_eq!(back, expected);
    }

    #[tokio::test]
    async fn a_failing_writer_ends_the_stream_with_its_error() {
        let (stream, writer) = spawn_writer(|b| -> io::Result<()> {
            let mut header = tar::Header::new_gnu();
            header.set_size(3);
            b.append_data(&mut header, "a", &b"abc"[..])?;
            Err(io::Error::new(io::ErrorKind::PermissionDenied, "b: denied"))
        });
        let items = collect(stream).await;
        let last = items.last().unwrap().as_ref().unwrap_err();
        assert_eq!(last.kind(), io::ErrorKind::PermissionDenied);
        assert!(last.to_string().contains("b: denied"), "{last}");
        let err = writer.await.unwrap().unwrap_err();
        assert!(!is_engine_stopped(&err));
    }

    #[tokio::test]
    async fn a_writer_whose_stream_is_dropped_says_so() {
        let (stream, writer) = spawn_writer(|b| {
            let mut header = tar::Header::new_gnu();
            header.set_size(8 * CHUNK_BYTES as u64);
            b.append_data(
                &mut header,
                "a",
                io::Read::take(io::repeat(1), 8 * CHUNK_BYTES as u64),
            )
        });
        drop(stream);
        let err = writer.await.unwrap().unwrap_err();
        assert!(is_engine_stopped(&err), "{err}");
    }

    /// Hands out at most `step` bytes per read, like a decoder returning one block at a time,
    /// then fails if `fail` is set.
    struct Dribble {
        left: usize,
        step: usize,
        fail: bool,
    }

    impl io::Read for Dribble {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.left == 0 {
                return if self.fail {
                    Err(io::Error::new(io::ErrorKind::InvalidData, "damaged"))
                } else {
                    Ok(0)
                };
            }
            let n = buf.len().min(self.step).min(self.left);
            buf[..n].fill(7);
            self.left -= n;
            Ok(n)
        }
    }

    #[tokio::test]
    async fn a_cancelled_stream_ends_with_an_error_at_once() {
        let endless = futures_util::stream::repeat_with(|| Ok(Bytes::from_static(b"x"))).boxed();
        let cancel = CancellationToken::new();
        let mut stream = cancellable(endless, cancel.clone());
        assert_eq!(&stream.next().await.unwrap().unwrap()[..], b"x");
        cancel.cancel();
        let err = stream.next().await.unwrap().unwrap_err();
        assert_ne!(
            err.kind(),
            io::ErrorKind::Interrupted,
            "readers retry those"
        );
        assert!(err.get_ref().is_some_and(|e| e.is::<Cancelled>()));
        assert!(stream.next().await.is_none());
    }

    #[tokio::test]
    async fn readers_stream_in_full_chunks() {
        let total = 2 * CHUNK_BYTES + 1000;
        let reader = Dribble {
            left: total,
            step: 100_000,
            fail: false,
        };
        let sizes: Vec<usize> = collect(reader_stream(reader))
            .await
            .into_iter()
            .map(|c| c.unwrap().len())
            .collect();
        assert_eq!(sizes, vec![CHUNK_BYTES, CHUNK_BYTES, 1000]);
    }

    #[tokio::test]
    async fn a_read_error_ends_the_stream_with_it() {
        let reader = Dribble {
            left: CHUNK_BYTES + 10,
            step: CHUNK_BYTES,
            fail: true,
        };
        let items = collect(reader_stream(reader)).await;
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].as_ref().unwrap().len(), CHUNK_BYTES);
        let err = items[1].as_ref().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }
}
