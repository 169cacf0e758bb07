//! The tokio adapter (cargo feature `tokio`): the client inside a tokio
//! runtime (multi-thread or current-thread). A [`Client`] is `Send` and
//! `Sync`, and its futures are `Send`: share it across tasks, or spawn its
//! calls with `tokio::spawn`. Needs a tokio runtime with I/O and time
//! enabled (`Runtime::enable_all`).

use crate::runtime::{ConnectionTask, Runtime};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

/// tokio as the client's runtime: `tokio::net::TcpStream`,
/// `tokio::time::sleep`, `tokio::spawn`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Tokio;

impl Runtime for Tokio {
    type Tcp = TokioTcp;

    async fn connect(addr: SocketAddr) -> io::Result<TokioTcp> {
        let tcp = ::tokio::net::TcpStream::connect(addr).await?;
        // Small frames go out at once (the writer batches them itself).
        let _ = tcp.set_nodelay(true);
        Ok(TokioTcp(tcp))
    }

    async fn sleep(duration: Duration) {
        ::tokio::time::sleep(duration).await;
    }

    fn spawn_connection(task: ConnectionTask<TokioTcp>) {
        // Detached (the handle is dropped): the task ends by itself once
        // the link closes.
        drop(::tokio::spawn(task.run()));
    }
}

/// A tokio TCP stream seen through the futures-io traits the client's
/// framing and TLS (futures-rustls) use.
#[derive(Debug)]
pub struct TokioTcp(pub ::tokio::net::TcpStream);

impl futures_lite::io::AsyncRead for TokioTcp {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let mut read = ::tokio::io::ReadBuf::new(buf);
        match ::tokio::io::AsyncRead::poll_read(Pin::new(&mut self.get_mut().0), cx, &mut read) {
            Poll::Ready(Ok(())) => Poll::Ready(Ok(read.filled().len())),
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl futures_lite::io::AsyncWrite for TokioTcp {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        ::tokio::io::AsyncWrite::poll_write(Pin::new(&mut self.get_mut().0), cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ::tokio::io::AsyncWrite::poll_flush(Pin::new(&mut self.get_mut().0), cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ::tokio::io::AsyncWrite::poll_shutdown(Pin::new(&mut self.get_mut().0), cx)
    }
}

/// A client on tokio (see [`crate::Client`]).
pub type Client = crate::Client<Tokio>;
/// A subscription of a tokio client (see [`crate::ClientSubscription`]).
pub type ClientSubscription = crate::ClientSubscription<Tokio>;
/// A shard-aware client on tokio (see [`crate::ShardAwareClient`]).
pub type ShardAwareClient = crate::ShardAwareClient<Tokio>;
