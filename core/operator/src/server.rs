//! The operator API's thread: a current-thread tokio runtime that accepts
//! HTTP/1.1 connections on the bound socket and answers them through
//! [`crate::routes`], until stopped.

use crate::routes::{self, Context};
use crate::settings::{self, OperatorSettings, CONNECTIONS_MAX, HEADER_READ_TIMEOUT_MS};
use crate::OperatorError;
use gonets_engine::HubHandle;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;
use tokio::sync::{oneshot, Semaphore};

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
}

impl OperatorServer {
    /// Binds `settings.listen`: refused off loopback, or when the port is taken.
    pub fn bind(settings: OperatorSettings) -> Result<OperatorServer, OperatorError> {
        let listener = settings::bind(settings.listen)?;
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
        let context = Arc::new(Context {
            hub,
            info: self.settings.info,
            operator,
        });
        let (stop, stopped) = oneshot::channel();
        let listener = self.listener;
        let thread = std::thread::Builder::new()
            .name("gonets-operator".into())
            .spawn(move || runtime.block_on(accept_loop(listener, context, stopped)))
            .map_err(OperatorError::Thread)?;
        Ok(RunningOperator {
            addr,
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl RunningOperator {
    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
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

/// Accepts connections until `stopped` fires; at most [`CONNECTIONS_MAX`] at once.
async fn accept_loop(
    listener: TcpListener,
    context: Arc<Context>,
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
        tokio::spawn(async move {
            serve_connection(stream, context).await;
            drop(slot);
        });
    }
}

/// Serves one HTTP/1.1 connection (keep-alive) until the peer closes it.
async fn serve_connection(stream: tokio::net::TcpStream, context: Arc<Context>) {
    let service = service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
        let context = context.clone();
        async move {
            let response = routes::handle(&context, request.method(), request.uri().path()).await;
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
