//! The gateway's thread: a current-thread tokio runtime that accepts
//! HTTP/1.1 connections (over mutual TLS, or plain on loopback with
//! development tokens) and runs each request's operation on the caller's
//! session, until stopped. The shards are reached by message (a
//! `Session`'s channels), never by a shared lock (docs/adr/0021).

use crate::body::{json_response, Body};
use crate::problem::Problem;
use crate::routes::{self, Op};
use crate::settings::{
    self, GatewayAuth, GatewaySettings, BODY_READ_TIMEOUT_MS, CONNECTIONS_MAX,
    HEADER_READ_TIMEOUT_MS,
};
use crate::stream::Streams;
use crate::{ops, request, GatewayError};
use bytes::Bytes;
use gonets_engine::{HubHandle, Session};
use gonets_types::HubError;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::CONTENT_LENGTH;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;
use tokio::sync::{oneshot, Semaphore};
use tokio_rustls::TlsAcceptor;

/// The gateway's socket, bound (before the hub starts) but not yet served.
#[derive(Debug)]
pub struct GatewayServer {
    listener: TcpListener,
    settings: GatewaySettings,
}

/// A running gateway; stops when dropped.
#[derive(Debug)]
pub struct RunningGateway {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

/// What every request's handler shares.
struct Context {
    hub: HubHandle,
    auth: GatewayAuth,
    body_bytes_max: usize,
    /// One session per participant that has called, for the gateway's
    /// life: a `fetch`'s leases belong to it, so a later `ack` (another
    /// HTTP request) ends them. Bounded by the registry's participants.
    /// Held only on the gateway's own thread, never across an await.
    sessions: Mutex<HashMap<String, Session>>,
    /// The open event streams (`GET …/stream`), by lease.
    streams: Arc<Streams>,
}

impl Context {
    fn session(&self, participant: &str) -> Result<Session, Problem> {
        let mut sessions = self.sessions.lock().expect("a session lookup never panics");
        if let Some(s) = sessions.get(participant) {
            return Ok(s.clone());
        }
        let session = self.hub.session(participant)?;
        sessions.insert(participant.to_owned(), session.clone());
        Ok(session)
    }
}

impl GatewayServer {
    /// Binds `settings.listen`: development tokens off loopback, or a
    /// taken port, are refused here.
    pub fn bind(settings: GatewaySettings) -> Result<GatewayServer, GatewayError> {
        let tls = matches!(settings.auth, GatewayAuth::Tls { .. });
        let listener = settings::bind(settings.listen, tls)?;
        Ok(GatewayServer { listener, settings })
    }

    /// The bound address (the port chosen, if 0 was asked).
    pub fn addr(&self) -> SocketAddr {
        self.listener.local_addr().unwrap_or(self.settings.listen)
    }

    /// Serves the gateway for `hub` on its own thread, off the shards' cores.
    pub fn start(self, hub: HubHandle) -> Result<RunningGateway, GatewayError> {
        let addr = self.addr();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(GatewayError::Thread)?;
        let acceptor = match &self.settings.auth {
            GatewayAuth::Tls { config, .. } => {
                Some(TlsAcceptor::from(GatewayAuth::http_config(config)))
            }
            GatewayAuth::DevTokens(_) => None,
        };
        let context = Arc::new(Context {
            hub,
            auth: self.settings.auth,
            body_bytes_max: self.settings.body_bytes_max,
            sessions: Mutex::new(HashMap::new()),
            streams: Arc::default(),
        });
        let (stop, stopped) = oneshot::channel();
        let listener = self.listener;
        let cores = self.settings.cores;
        // The thread pins itself first and says how that went: a pin that
        // fails stops the start, as a bad address does.
        let (pinned_tx, pinned_rx) = std::sync::mpsc::sync_channel(1);
        let thread = std::thread::Builder::new()
            .name("gonets-gateway".into())
            .spawn(move || {
                let pinned = match cores.is_empty() {
                    true => Ok(()),
                    false => gonets_engine::runtime::placement::pin_current_thread(&cores),
                };
                let ok = pinned.is_ok();
                let _ = pinned_tx.send(pinned);
                if ok {
                    runtime.block_on(accept_loop(listener, context, acceptor, stopped));
                }
            })
            .map_err(GatewayError::Thread)?;
        match pinned_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                let _ = thread.join();
                return Err(e.into());
            }
            Err(_) => {
                let _ = thread.join();
                return Err(GatewayError::Thread(std::io::Error::other(
                    "the gateway's thread ended before it started",
                )));
            }
        }
        Ok(RunningGateway {
            addr,
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl RunningGateway {
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
                tracing::error!("the HTTP gateway's thread panicked");
            }
        }
    }
}

impl Drop for RunningGateway {
    fn drop(&mut self) {
        self.stop_now();
    }
}

/// Accepts connections until `stopped` fires; at most [`CONNECTIONS_MAX`] at once.
async fn accept_loop(
    listener: TcpListener,
    context: Arc<Context>,
    acceptor: Option<TlsAcceptor>,
    mut stopped: oneshot::Receiver<()>,
) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, "HTTP gateway: cannot serve its socket");
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
                tracing::warn!(error = %e, "HTTP gateway: accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::warn!(%peer, "HTTP gateway: {CONNECTIONS_MAX} connections open; closing a new one");
            continue;
        };
        let _ = stream.set_nodelay(true);
        let context = context.clone();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            match acceptor {
                None => serve_connection(stream, context, None).await,
                Some(acceptor) => serve_tls(stream, peer, acceptor, context).await,
            }
            drop(slot);
        });
    }
}

/// The TLS handshake (bounded), the participant of the verified client
/// certificate, then HTTP. A certificate that names no participant gets
/// 401 to every request.
async fn serve_tls(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    acceptor: TlsAcceptor,
    context: Arc<Context>,
) {
    let handshake = tokio::time::timeout(
        Duration::from_millis(HEADER_READ_TIMEOUT_MS),
        acceptor.accept(stream),
    );
    let stream = match handshake.await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::info!(%peer, error = %e, "HTTP gateway: TLS handshake refused");
            return;
        }
        Err(_) => {
            tracing::info!(%peer, "HTTP gateway: TLS handshake timed out");
            return;
        }
    };
    let GatewayAuth::Tls { identify, .. } = &context.auth else {
        unreachable!("TLS is served only with TLS settings");
    };
    let leaf = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first());
    let participant = match leaf.map(|cert| identify(cert.as_ref())) {
        Some(Ok(p)) => Some(Arc::<str>::from(p)),
        Some(Err(why)) => {
            tracing::info!(%peer, reason = %why, "HTTP gateway: refused a client certificate");
            None
        }
        None => None,
    };
    serve_connection(stream, context, participant).await;
}

/// Serves one HTTP/1.1 connection (keep-alive) until the peer closes it.
async fn serve_connection<S>(stream: S, context: Arc<Context>, participant: Option<Arc<str>>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |request: Request<Incoming>| {
        let context = context.clone();
        let participant = participant.clone();
        async move {
            let response = match handle(&context, participant.as_deref(), request).await {
                Ok(r) => r,
                Err(problem) => problem.into_response(),
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
        tracing::debug!(error = %e, "HTTP gateway: connection ended with an error");
    }
}

/// One request: its route, the contract (no caller needed), or the
/// caller's participant, its body (bounded) and its operation.
async fn handle(
    context: &Context,
    tls_participant: Option<&str>,
    request: Request<Incoming>,
) -> Result<Response<Body>, Problem> {
    let matched = routes::find(request.method().as_str(), request.uri().path())?;
    if matched.route.op == Op::OpenApi {
        return Ok(json_response(StatusCode::OK, &crate::openapi::document()));
    }
    let participant = request::identify(&context.auth, tls_participant, request.headers())?;
    let session = context.session(&participant)?;
    let (parts, body) = request.into_parts();
    let reading = read_body(&parts.headers, body, context.body_bytes_max);
    let body = tokio::time::timeout(Duration::from_millis(BODY_READ_TIMEOUT_MS), reading)
        .await
        .map_err(|_| Problem::body_timeout(BODY_READ_TIMEOUT_MS))??;
    let caller = ops::Caller {
        participant: &participant,
        session: &session,
        streams: &context.streams,
    };
    ops::run(&caller, &matched, &parts, body).await
}

/// The whole body, refused `TOO_LARGE` past `size_bytes_max` (by its
/// declared length before reading, or as it arrives).
async fn read_body(
    headers: &hyper::HeaderMap,
    body: Incoming,
    size_bytes_max: usize,
) -> Result<Bytes, Problem> {
    let too_large = |size_bytes: u64| {
        Problem::from(HubError::TooLarge {
            size_bytes,
            size_bytes_max: size_bytes_max as u64,
        })
    };
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(n) = declared.filter(|n| *n > size_bytes_max as u64) {
        return Err(too_large(n));
    }
    match Limited::new(body, size_bytes_max).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            Err(too_large(size_bytes_max as u64 + 1))
        }
        Err(e) => Err(Problem::malformed(format!(
            "the body could not be read: {e}"
        ))),
    }
}
