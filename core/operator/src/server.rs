//! The operator API's thread: a current-thread tokio runtime that accepts
//! HTTP/1.1 connections on the bound socket and answers them through
//! [`crate::routes`], until stopped.

use crate::events::EventFeed;
use crate::monitor::{self, FlushRequest};
use crate::reply::ApiError;
use crate::routes::{self, Context};
use crate::settings::{
    self, AuthorizeOperator, OperatorSettings, CONNECTIONS_MAX, HEADER_READ_TIMEOUT_MS,
};
use crate::sla_store::SlaStore;
use crate::OperatorError;
use gonets_engine::HubHandle;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio_rustls::TlsAcceptor;

/// The API's socket, bound (before the hub starts) but not yet served.
#[derive(Debug)]
pub struct OperatorServer {
    listener: TcpListener,
    settings: OperatorSettings,
}

/// A running operator API; stops when dropped.
#[derive(Debug)]
pub struct RunningOperator {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    flushes: mpsc::Sender<FlushRequest>,
}

/// How long [`RunningOperator::flush_sla`] waits for the monitor, ms.
const FLUSH_WAIT_MS: u64 = 5_000;

impl OperatorServer {
    /// Binds `settings.listen`: refused off loopback, or when the port is taken.
    pub fn bind(settings: OperatorSettings) -> Result<OperatorServer, OperatorError> {
        let listener = settings::bind(settings.listen, settings.tls.is_some())?;
        Ok(OperatorServer { listener, settings })
    }

    /// The bound address (the port chosen, if 0 was asked).
    pub fn addr(&self) -> SocketAddr {
        self.listener.local_addr().unwrap_or(self.settings.listen)
    }

    /// Serves the API for `hub` on its own thread, off the shards' cores.
    pub fn start(self, hub: HubHandle) -> Result<RunningOperator, OperatorError> {
        let addr = self.addr();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(OperatorError::Thread)?;
        let operator = hub
            .registry()
            .participants()
            .find(|p| p.roles.operator)
            .and_then(|p| hub.session(p.id.as_str()).ok());
        let tls = self
            .settings
            .tls_in_use()
            .map(|t| (TlsAcceptor::from(t.http_config()), t.authorize.clone()));
        let sla = Mutex::new(SlaStore::new(&self.settings.info.data_dir));
        let context = Arc::new(Context {
            hub,
            info: self.settings.info,
            operator,
            monitor: self.settings.monitor,
            events: EventFeed::new(),
            sla,
        });
        let (stop, stopped) = oneshot::channel();
        let (flushes, flush_asks) = mpsc::channel(1);
        let listener = self.listener;
        let thread = std::thread::Builder::new()
            .name("gonets-operator".into())
            .spawn(move || {
                runtime.block_on(async move {
                    tokio::spawn(monitor::run(context.clone(), flush_asks));
                    accept_loop(listener, context.clone(), tls, stopped).await;
                    // What the monitor counted and has not written yet.
                    monitor::flush(&context).await;
                })
            })
            .map_err(OperatorError::Thread)?;
        Ok(RunningOperator {
            addr,
            stop: Some(stop),
            thread: Some(thread),
            flushes,
        })
    }
}

impl RunningOperator {
    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Has the monitor look at the shards now and write the SLA counts
    /// (before the hub stops, so that a clean stop loses none); waits at
    /// most [`FLUSH_WAIT_MS`].
    pub fn flush_sla(&self) {
        let (done, finished) = std::sync::mpsc::sync_channel(1);
        if self.flushes.try_send(done).is_err() {
            return; // one is already asked for, or the monitor stopped
        }
        if finished
            .recv_timeout(Duration::from_millis(FLUSH_WAIT_MS))
            .is_err()
        {
            tracing::warn!("the SLA counts were not written within {FLUSH_WAIT_MS} ms");
        }
    }

    /// Stops accepting, ends the connections in flight, joins the thread.
    pub fn stop(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::error!("the operator API's thread panicked");
            }
        }
    }
}

impl Drop for RunningOperator {
    fn drop(&mut self) {
        self.stop_now();
    }
}

/// The TLS side of a listener off loopback: the handshake, then the operator check.
type TlsSide = (TlsAcceptor, Arc<AuthorizeOperator>);

/// Accepts connections until `stopped` fires; at most [`CONNECTIONS_MAX`] at once.
async fn accept_loop(
    listener: TcpListener,
    context: Arc<Context>,
    tls: Option<TlsSide>,
    mut stopped: oneshot::Receiver<()>,
) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, "operator API: cannot serve its socket");
            return;
        }
    };
    let slots = Arc::new(Semaphore::new(CONNECTIONS_MAX));
    // Runs until stopped; each pass accepts one connection.
    loop {
        let accepted = tokio::select! {
            _ = &mut stopped => return,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "operator API: accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::warn!(%peer, "operator API: {CONNECTIONS_MAX} connections open; closing a new one");
            continue;
        };
        let context = context.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            match tls {
                None => serve_connection(stream, context, None).await,
                Some((acceptor, authorize)) => {
                    serve_tls(stream, peer, acceptor, &*authorize, context).await
                }
            }
            drop(slot);
        });
    }
}

/// The TLS handshake (bounded), the operator check of the verified client
/// certificate, then HTTP: a client that is not an operator gets 403 to
/// every request.
async fn serve_tls(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    acceptor: TlsAcceptor,
    authorize: &AuthorizeOperator,
    context: Arc<Context>,
) {
    let handshake = tokio::time::timeout(
        Duration::from_millis(HEADER_READ_TIMEOUT_MS),
        acceptor.accept(stream),
    );
    let stream = match handshake.await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::info!(%peer, error = %e, "operator API: TLS handshake refused");
            return;
        }
        Err(_) => {
            tracing::info!(%peer, "operator API: TLS handshake timed out");
            return;
        }
    };
    let leaf = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first());
    let refusal = match leaf.map(|cert| authorize(cert.as_ref())) {
        Some(Ok(_operator)) => None,
        Some(Err(why)) => Some(why),
        None => Some("no client certificate".to_string()),
    };
    if let Some(why) = &refusal {
        tracing::info!(%peer, reason = %why, "operator API: refused a client that is not an operator");
    }
    serve_connection(stream, context, refusal).await;
}

/// Serves one HTTP/1.1 connection (keep-alive) until the peer closes it;
/// with `refusal`, every request gets 403 with it.
async fn serve_connection<S>(stream: S, context: Arc<Context>, refusal: Option<String>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
        let context = context.clone();
        let refusal = refusal.clone();
        async move {
            let response = match refusal {
                Some(why) => ApiError::forbidden(why).into_response(),
                None => {
                    let uri = request.uri();
                    routes::handle(&context, request.method(), uri.path(), uri.query()).await
                }
            };
            Ok::<_, Infallible>(response)
        }
    });
    let served = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_millis(HEADER_READ_TIMEOUT_MS))
        .serve_connection(TokioIo::new(stream), service)
        .await;
    if let Err(e) = served {
        tracing::debug!(error = %e, "operator API: connection ended with an error");
    }
}
