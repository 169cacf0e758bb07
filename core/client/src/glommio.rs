//! The glommio adapter (cargo feature `glommio`): the client on a
//! thread-per-core glommio executor. A [`Client`] belongs to the executor
//! that connected it (its connection task runs there); make one per core.

use crate::runtime::{ConnectionTask, Runtime};
use std::io;
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::time::Duration;

/// glommio as the client's runtime: `glommio::net::TcpStream`,
/// `glommio::timer::sleep`, `glommio::spawn_local`. Neither `Send` nor
/// `Sync`, and so neither is a `Client<Glommio>`: it stays on the executor
/// that connected it.
#[derive(Clone, Copy, Debug, Default)]
pub struct Glommio {
    _local: PhantomData<*const ()>,
}

impl Runtime for Glommio {
    type Tcp = ::glommio::net::TcpStream;

    async fn connect(addr: SocketAddr) -> io::Result<Self::Tcp> {
        let tcp = ::glommio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| io::Error::other(e.to_string()))?;
        // Small frames go out at once (the writer batches them itself).
        let _ = tcp.set_nodelay(true);
        Ok(tcp)
    }

    async fn sleep(duration: Duration) {
        ::glommio::timer::sleep(duration).await;
    }

    fn spawn_connection(task: ConnectionTask<Self::Tcp>) {
        // Detached: the task ends by itself once the link closes.
        ::glommio::spawn_local(task.run()).detach();
    }
}

/// A client on glommio (see [`crate::Client`]).
pub type Client = crate::Client<Glommio>;
/// A subscription of a glommio client (see [`crate::ClientSubscription`]).
pub type ClientSubscription = crate::ClientSubscription<Glommio>;
/// A shard-aware client on glommio (see [`crate::ShardAwareClient`]).
pub type ShardAwareClient = crate::ShardAwareClient<Glommio>;
