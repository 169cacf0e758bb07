//! What the client needs from an async runtime, and nothing more: a TCP
//! connect, a timer, and a way to run one connection's I/O task. The
//! adapters (`glommio`, `tokio`, each behind its cargo feature) implement
//! it; another runtime (smol, async-std) needs only these three functions.

use crate::link::{read_loop, write_loop, Routes, Stop};
use futures_lite::io::{AsyncRead, AsyncWrite, ReadHalf, WriteHalf};
use futures_lite::FutureExt;
use gonets_proto::FrameDecoder;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

/// An async runtime the client runs on (see the crate docs).
///
/// The returned futures need not be `Send`: a thread-per-core runtime
/// (glommio) returns local ones; a work-stealing runtime (tokio) returns
/// `Send` ones, and the client's futures are then `Send` too. A client is
/// `Send`/`Sync` exactly when the implementing type is, so a runtime whose
/// tasks and wakers are bound to one thread makes its type `!Send`.
pub trait Runtime: 'static {
    /// A connected TCP stream (futures-io traits).
    type Tcp: AsyncRead + AsyncWrite + Unpin + 'static;

    /// Connects to `addr` (with `TCP_NODELAY` set where the runtime can).
    fn connect(addr: SocketAddr) -> impl Future<Output = io::Result<Self::Tcp>>;

    /// Completes after `duration`.
    fn sleep(duration: Duration) -> impl Future<Output = ()>;

    /// Runs one connection's I/O in the background: spawn
    /// [`ConnectionTask::run`]'s future and detach it (it ends by itself
    /// when the connection closes or the client drops it).
    fn spawn_connection(task: ConnectionTask<Self::Tcp>);
}

/// Runs `f` for at most `ms` on runtime `R`; `None` after that.
pub(crate) async fn within<R: Runtime, T>(ms: u64, f: impl Future<Output = T>) -> Option<T> {
    async { Some(f.await) }
        .or(async {
            R::sleep(Duration::from_millis(ms)).await;
            None
        })
        .await
}

/// The byte stream of a connection: plain TCP (development mode) or TLS
/// over it.
pub enum Transport<T> {
    /// Plain TCP.
    Plain(T),
    /// TLS over TCP (boxed: the TLS state is large).
    Tls(Box<futures_rustls::client::TlsStream<T>>),
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncRead for Transport<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Transport::Tls(s) => Pin::new(&mut **s).poll_read(cx, buf),
        }
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Transport<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Transport::Tls(s) => Pin::new(&mut **s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_flush(cx),
            Transport::Tls(s) => Pin::new(&mut **s).poll_flush(cx),
        }
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_close(cx),
            Transport::Tls(s) => Pin::new(&mut **s).poll_close(cx),
        }
    }
}

/// One connection's background I/O: the reader that routes reply frames
/// to their askers by correlation id and pushes to their subscriptions,
/// and the writer that batches queued frames into socket writes. Made by
/// the client; a [`Runtime`] only spawns [`ConnectionTask::run`].
pub struct ConnectionTask<T> {
    pub(crate) reader: ReadHalf<Transport<T>>,
    pub(crate) writer: WriteHalf<Transport<T>>,
    pub(crate) decoder: FrameDecoder,
    pub(crate) chunk: Vec<u8>,
    pub(crate) outgoing: flume::Receiver<Vec<u8>>,
    pub(crate) routes: Arc<Routes>,
    pub(crate) stop: flume::Receiver<()>,
}

impl<T: AsyncRead + AsyncWrite + Unpin + 'static> ConnectionTask<T> {
    /// The task's future: ends once the connection closed (either side)
    /// and both loops stopped. `Send` when `T` is.
    pub fn run(self) -> impl Future<Output = ()> + 'static {
        let read = read_loop(
            self.reader,
            self.decoder,
            self.chunk,
            self.routes.clone(),
            Stop::new(self.stop.clone()),
        );
        let write = write_loop(
            self.writer,
            self.outgoing,
            self.routes,
            Stop::new(self.stop),
        );
        async move {
            futures_lite::future::zip(read, write).await;
        }
    }
}
