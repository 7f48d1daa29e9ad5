//! A transport for bollard over a unix socket that bounds how much of one reply is read
//! (issue 9: a server sending an endless reply pushed localci to 5 GB). Each request gets its
//! own connection whose reads stop with an error after [`REPLY_LIMIT`] bytes, except the
//! streaming endpoints whose replies are consumed as they arrive (exec output, archives,
//! pulls). This module speaks HTTP only through hyper; it knows no Docker semantics beyond
//! which paths stream, and must not buffer a reply itself.

use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::task::{Context, Poll};

use bollard::BollardRequest;
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use hyper::body::Incoming;
use hyper::header::{HOST, HeaderValue};
use hyper::{Response, Uri};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::UnixStream;

/// The most bytes read for one reply that bollard reads whole (inspect, list, version ...).
/// The largest real ones (a container list, an image with many labels) are kilobytes.
pub(crate) const REPLY_LIMIT: u64 = 16 * 1024 * 1024;

/// Paths whose replies are streams read piece by piece (exec output, tar archives, pull
/// progress): their size is the job's business, and the readers do not collect them.
fn streams(method: &hyper::Method, path: &str) -> bool {
    let last = path.rsplit('/').next().unwrap_or_default();
    (path.contains("/exec/") && last == "start")
        || (path.contains("/containers/") && last == "archive" && method == hyper::Method::GET)
        || path.ends_with("/images/create")
        || matches!(last, "attach" | "logs" | "load" | "events")
}

/// The request function bollard calls for every request to the daemon at `socket`.
pub(crate) fn transport(
    socket: PathBuf,
) -> impl Fn(BollardRequest) -> BoxFuture<'static, Result<Response<Incoming>, bollard::errors::Error>>
+ Send
+ Sync {
    move |request| send(socket.clone(), request).boxed()
}

async fn send(
    socket: PathBuf,
    mut request: BollardRequest,
) -> Result<Response<Incoming>, bollard::errors::Error> {
    let limit = if streams(request.method(), request.uri().path()) {
        u64::MAX
    } else {
        REPLY_LIMIT
    };
    // One connection per request, in origin form with a Host header (Docker's HTTP server
    // wants one); the connection ends with the reply.
    let origin = request
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .parse::<Uri>()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    *request.uri_mut() = origin;
    request
        .headers_mut()
        .insert(HOST, HeaderValue::from_static("docker"));
    let stream = UnixStream::connect(&socket).await?;
    let io = TokioIo::new(Limited {
        inner: stream,
        left: limit,
    });
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io).await?;
    // Exec and attach switch the connection to a raw stream (101 Switching Protocols).
    tokio::spawn(connection.with_upgrades());
    Ok(sender.send_request(request).await?)
}

/// A stream whose reads fail once `left` bytes have been read.
struct Limited {
    inner: UnixStream,
    left: u64,
}

impl AsyncRead for Limited {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.left == 0 {
            return Poll::Ready(Err(io::Error::other(TooLarge)));
        }
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        let read = (buf.filled().len() - before) as u64;
        self.left = self.left.saturating_sub(read);
        polled
    }
}

impl AsyncWrite for Limited {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The reply was longer than [`REPLY_LIMIT`].
#[derive(Debug, thiserror::Error)]
#[error("the reply exceeded {} MB; localci stopped reading it", REPLY_LIMIT / (1024 * 1024))]
pub(crate) struct TooLarge;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_streaming_endpoints_are_unbounded() {
        let get = hyper::Method::GET;
        let put = hyper::Method::PUT;
        let post = hyper::Method::POST;
        assert!(streams(&post, "/v1.41/exec/abc/start"));
        assert!(streams(&get, "/v1.41/containers/abc/archive"));
        assert!(!streams(&put, "/v1.41/containers/abc/archive"));
        assert!(streams(&post, "/v1.41/images/create"));
        assert!(!streams(&get, "/v1.41/containers/abc/json"));
        assert!(!streams(&get, "/v1.41/exec/abc/json"));
        assert!(!streams(&get, "/version"));
    }
}
