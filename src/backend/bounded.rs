//! A transport for bollard, over a unix socket or plain TCP, that bounds what one reply may
//! make localci hold (issue 9: a server sending an endless reply pushed localci to 5 GB).
//! Each request gets its own connection whose reads go through a [`ReplyGuard`]: a reply read
//! whole stops with an error after 16 MB, a pull progress line after 1 MB, an exec output
//! frame after 16 MB (see [`super::reply`]); archives stream uncapped. This module speaks HTTP
//! only through hyper and must not buffer a reply itself.

use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use bollard::BollardRequest;
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use hyper::body::Incoming;
use hyper::header::{HOST, HeaderValue};
use hyper::{Response, Uri};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream};

use super::reply::{ReplyGuard, Shape};

/// Where the daemon listens.
#[derive(Clone, Debug)]
pub(crate) enum Address {
    Unix(PathBuf),
    /// `host:port`.
    Tcp(String),
}

/// What the first reply over a cap was (`a line of a streamed reply over 1 MB`), shared by
/// the transport and the backend: bollard passes the transport's read error on as text only.
#[derive(Clone, Debug, Default)]
pub(crate) struct Tripped(Arc<OnceLock<String>>);

impl Tripped {
    pub(crate) fn what(&self) -> Option<String> {
        self.0.get().cloned()
    }
}

/// The request function bollard calls for every request to the daemon at `address`.
pub(crate) fn transport(
    address: Address,
    tripped: Tripped,
) -> impl Fn(BollardRequest) -> BoxFuture<'static, Result<Response<Incoming>, bollard::errors::Error>>
+ Send
+ Sync {
    move |request| send(address.clone(), tripped.clone(), request).boxed()
}

async fn send(
    address: Address,
    tripped: Tripped,
    mut request: BollardRequest,
) -> Result<Response<Incoming>, bollard::errors::Error> {
    let guard = ReplyGuard::new(Shape::of(request.method(), request.uri().path()));
    // One connection per request, in origin form with a Host header (Docker's HTTP server
    // wants one); the connection ends with the reply.
    let origin = request
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .parse::<Uri>()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    *request.uri_mut() = origin;
    let host = match &address {
        Address::Unix(_) => HeaderValue::from_static("docker"),
        Address::Tcp(host) => HeaderValue::from_str(host)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?,
    };
    request.headers_mut().insert(HOST, host);
    match address {
        Address::Unix(path) => {
            let stream = UnixStream::connect(&path).await?;
            exchange(
                Guarded {
                    inner: stream,
                    guard,
                    tripped,
                },
                request,
            )
            .await
        }
        Address::Tcp(host) => {
            let stream = TcpStream::connect(&host).await?;
            stream.set_nodelay(true)?;
            exchange(
                Guarded {
                    inner: stream,
                    guard,
                    tripped,
                },
                request,
            )
            .await
        }
    }
}

async fn exchange<S>(
    io: Guarded<S>,
    request: BollardRequest,
) -> Result<Response<Incoming>, bollard::errors::Error>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await?;
    // Exec and attach switch the connection to a raw stream (101 Switching Protocols).
    tokio::spawn(connection.with_upgrades());
    Ok(sender.send_request(request).await?)
}

/// A connection whose reads fail once the reply passes a cap of its [`ReplyGuard`].
struct Guarded<S> {
    inner: S,
    guard: ReplyGuard,
    tripped: Tripped,
}

impl<S: AsyncRead + Unpin> AsyncRead for Guarded<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            let this = &mut *self;
            if let Err(e) = this.guard.read(&buf.filled()[before..]) {
                if let Some(what) = super::reply::too_large_in(&e) {
                    let _ = this.tripped.0.set(what);
                }
                return Poll::Ready(Err(e));
            }
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Guarded<S> {
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
