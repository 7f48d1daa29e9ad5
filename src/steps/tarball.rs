//! Tar streams built on the host and streamed to the engine without buffering: a blocking
//! task writes the archive into one end of an in-memory pipe, the upload reads the other.
//! Entries carry the container user's uid/gid, so files belong to that user.

use std::fs;
use std::io;
use std::path::Path;

use futures_util::StreamExt;
use tokio::io::DuplexStream;
use tokio::task::JoinHandle;
use tokio_util::io::{ReaderStream, SyncIoBridge};

use crate::backend::ByteStream;

/// The pipe's buffer: large enough that the writer rarely waits for the reader.
const PIPE_BYTES: usize = 1 << 20;
/// Chunk size of the stream sent to the engine.
const CHUNK_BYTES: usize = 256 * 1024;

pub type Builder = tar::Builder<SyncIoBridge<DuplexStream>>;

/// Runs `write` on a blocking thread with a tar builder; returns the archive as a stream and
/// the writer's result (await it after the stream was consumed: a failed writer ends the
/// stream early).
pub fn spawn_writer<T, F>(write: F) -> (ByteStream, JoinHandle<io::Result<T>>)
where
    T: Send + 'static,
    F: FnOnce(&mut Builder) -> io::Result<T> + Send + 'static,
{
    let (reader, writer) = tokio::io::duplex(PIPE_BYTES);
    let bridge = SyncIoBridge::new(writer);
    let handle = tokio::task::spawn_blocking(move || {
        let mut builder = tar::Builder::new(bridge);
        builder.follow_symlinks(false);
        let result = write(&mut builder)?;
        let mut bridge = builder.into_inner()?;
        io::Write::flush(&mut bridge)?;
        bridge.shutdown()?;
        Ok(result)
    });
    let stream = ReaderStream::with_capacity(reader, CHUNK_BYTES).boxed();
    (stream, handle)
}

/// A one-file archive, in memory (for small files such as long step scripts).
pub fn single_file(name: &str, bytes: &[u8], uid: u64, gid: u64) -> io::Result<ByteStream> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(bytes.len() as u64);
    header.set_mode(0o644);
    header.set_uid(uid);
    header.set_gid(gid);
    header.set_mtime(now());
    builder.append_data(&mut header, name, bytes)?;
    let data = builder.into_inner()?;
    Ok(futures_util::stream::once(async move { Ok(bytes::Bytes::from(data)) }).boxed())
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Appends one host path (file, symlink or directory entry, not its contents) as `name`,
/// owned by `uid:gid`. Returns the bytes of file content added.
pub fn append_path(
    builder: &mut Builder,
    source: &Path,
    name: &Path,
    meta: &fs::Metadata,
    owner: (u64, u64),
) -> io::Result<u64> {
    let mut header = tar::Header::new_gnu();
    header.set_metadata_in_mode(meta, tar::HeaderMode::Complete);
    header.set_uid(owner.0);
    header.set_gid(owner.1);
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

/// Streams a blocking reader (a cache entry) with backpressure; a read error becomes an error
/// item, so the upload fails instead of sending a silently truncated archive.
pub fn reader_stream<R: io::Read + Send + 'static>(mut reader: R) -> ByteStream {
    let (tx, rx) = tokio::sync::mpsc::channel::<io::Result<bytes::Bytes>>(4);
    tokio::task::spawn_blocking(move || {
        let mut buf = vec![0u8; CHUNK_BYTES];
        loop {
            match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    if tx
                        .blocking_send(Ok(bytes::Bytes::copy_from_slice(&buf[..n])))
                        .is_err()
                    {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    break;
                }
            }
        }
    });
    tokio_stream_from(rx)
}

fn tokio_stream_from(mut rx: tokio::sync::mpsc::Receiver<io::Result<bytes::Bytes>>) -> ByteStream {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)).boxed()
}

/// A blocking reader over a byte stream from the engine (use it inside `spawn_blocking`).
pub fn blocking_reader(
    stream: ByteStream,
) -> SyncIoBridge<tokio_util::io::StreamReader<ByteStream, bytes::Bytes>> {
    SyncIoBridge::new(tokio_util::io::StreamReader::new(stream))
}
