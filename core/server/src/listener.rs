//! Accept loops on every shard's executor: a connection is served by the
//! shard whose core accepted it (the kernel spreads SO_REUSEPORT
//! connections; shard-aware clients pick the owning shard's own port).

use crate::connection;
use crate::settings::ServerSettings;
use crate::ServerError;
use glommio::net::TcpListener;
use gonets_engine::runtime::{Hub, HubHandle, LocalTask};
use std::cell::Cell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

/// How long start-up waits for every shard to bind its listeners.
const BIND_WAIT: Duration = Duration::from_secs(10);
/// Pending connections each listener queues (glommio's own bind uses the same).
const LISTEN_BACKLOG: i32 = 1024;

/// The running listeners.
#[derive(Debug, Clone)]
pub struct FrontEnds {
    /// The shared address (every shard accepts on it).
    pub addr: SocketAddr,
    /// Each shard's own address, by shard (empty without a shard port base).
    pub shard_addrs: Vec<SocketAddr>,
}

/// Checks that no other socket listens on `addr` and resolves port 0 to a
/// free port. The probe binds with SO_REUSEADDR but without SO_REUSEPORT:
/// Linux then refuses it next to any listener (another gonets included,
/// which SO_REUSEPORT would silently share the port with) but not next to
/// the connections an earlier run of this server left lingering
/// (TIME_WAIT, FIN_WAIT2, after a kill or a stop with clients connected),
/// since [`listen`] sets SO_REUSEADDR on the listeners those came from.
fn check_port_free(addr: SocketAddr) -> Result<SocketAddr, ServerError> {
    // std sets SO_REUSEADDR (and nothing else) before it binds.
    let probe = std::net::TcpListener::bind(addr).map_err(|e| ServerError::Listen {
        addr,
        reason: format!("{e} (is another gonets or another program using the port?)"),
    })?;
    probe.local_addr().map_err(|e| ServerError::Listen {
        addr,
        reason: e.to_string(),
    })
}

/// A listener on `addr` with SO_REUSEPORT (every shard binds the shared
/// port) and SO_REUSEADDR (its connections, inheriting the flag, do not
/// block the next start's probe while they linger after this process).
fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    use std::os::unix::io::{FromRawFd, IntoRawFd};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    // SAFETY: the descriptor is a bound, listening TCP socket that
    // `into_raw_fd` hands over; the glommio listener becomes its only owner.
    Ok(unsafe { TcpListener::from_raw_fd(socket.into_raw_fd()) })
}

/// Starts the listeners on every shard of `hub`; returns once all are bound.
pub fn start_front_ends(hub: &Hub, mut settings: ServerSettings) -> Result<FrontEnds, ServerError> {
    settings.validate().map_err(ServerError::Config)?;
    // Port 0: take a free port first so every shard binds the same one.
    settings.listen = check_port_free(settings.listen)?;
    let shards = hub.shard_count();
    for shard in 0..shards {
        if let Some(port) = settings.shard_port(shard) {
            check_port_free(SocketAddr::new(settings.listen.ip(), port))?;
        }
    }
    let settings = Arc::new(settings);
    let (bound_tx, bound_rx) =
        flume::bounded::<Result<(u16, Option<SocketAddr>), ServerError>>(usize::from(shards));
    let for_shards = settings.clone();
    hub.spawn_on_shards(move |shard, handle| -> LocalTask {
        let settings = for_shards.clone();
        let bound = bound_tx.clone();
        Box::pin(async move {
            let report = bind_and_accept(shard, handle, settings);
            match report {
                Ok(own) => {
                    let _ = bound.send(Ok((shard, own)));
                }
                Err(e) => {
                    let _ = bound.send(Err(e));
                }
            }
        })
    })?;
    let mut shard_addrs = vec![None; usize::from(shards)];
    for _ in 0..shards {
        match bound_rx.recv_timeout(BIND_WAIT) {
            Ok(Ok((shard, own))) => shard_addrs[usize::from(shard)] = own,
            Ok(Err(e)) => return Err(e),
            Err(_) => {
                return Err(ServerError::Check(
                    "a shard did not bind its listener within 10 s".into(),
                ))
            }
        }
    }
    Ok(FrontEnds {
        addr: settings.listen,
        shard_addrs: shard_addrs.into_iter().flatten().collect(),
    })
}

/// On the shard's thread: binds the shared and the shard's own listener and
/// spawns their accept loops. Returns the shard's own address.
fn bind_and_accept(
    shard: u16,
    handle: HubHandle,
    settings: Arc<ServerSettings>,
) -> Result<Option<SocketAddr>, ServerError> {
    let bind = |addr: SocketAddr| {
        listen(addr).map_err(|e| ServerError::Listen {
            addr,
            reason: e.to_string(),
        })
    };
    let shared = bind(settings.listen)?;
    let own = match settings.shard_port(shard) {
        Some(port) => Some(bind(SocketAddr::new(settings.listen.ip(), port))?),
        None => None,
    };
    let own_addr = own.as_ref().and_then(|l| l.local_addr().ok());
    let open = Rc::new(Cell::new(0usize));
    for listener in std::iter::once(shared).chain(own) {
        let (handle, settings, open) = (handle.clone(), settings.clone(), open.clone());
        glommio::spawn_local(accept_loop(shard, listener, handle, settings, open)).detach();
    }
    Ok(own_addr)
}

async fn accept_loop(
    shard: u16,
    listener: TcpListener,
    handle: HubHandle,
    settings: Arc<ServerSettings>,
    open: Rc<Cell<usize>>,
) {
    // Runs until the shard's executor stops (shutdown drops this task).
    loop {
        let stream = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(shard, "accept failed: {e}");
                glommio::timer::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        if handle.stopping() {
            continue; // shutting down: the connection closes at once
        }
        if open.get() >= settings.connections_per_shard_max {
            tracing::warn!(
                shard,
                "connection refused: {} connections open (connections_per_shard_max)",
                open.get()
            );
            continue;
        }
        let _ = stream.set_nodelay(true);
        open.set(open.get() + 1);
        let (handle, settings, open) = (handle.clone(), settings.clone(), open.clone());
        glommio::spawn_local(async move {
            connection::serve(shard, stream, handle, settings).await;
            open.set(open.get() - 1);
        })
        .detach();
    }
}
