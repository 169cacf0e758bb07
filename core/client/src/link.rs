//! One live connection of a client: the hello, then a background task
//! (see [`ConnectionTask`]) whose reader routes replies by correlation id
//! and pushes by subscription, and whose writer batches queued frames.
//! Runtime-free: the runtime `R` connects, sleeps and spawns.

use crate::runtime::{within, ConnectionTask, Runtime, Transport};
use crate::{ClientConfig, ClientError, ClientSecurity};
use futures_lite::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use futures_lite::FutureExt;
use gonets_proto::frame_io::{read_frame, ReadEnd};
use gonets_proto::header::{self as h, ErrorReply};
use gonets_proto::{decode_reply, encode_command, Frame, FrameDecoder, Opcode};
use gonets_types::{Command, Reply, ReplyKind};
use std::collections::HashMap;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// Bytes read from the socket at a time.
const READ_CHUNK_BYTES: usize = 64 * 1024;
/// Frames queued for the writer before senders wait.
const WRITE_QUEUE_FRAMES_MAX: usize = 4096;
/// Pushed frames buffered per subscription (the server's credits bound them).
const PUSH_BUFFER_FRAMES_MAX: usize = 65_536;
/// Bytes the writer gathers into one write.
const WRITE_BATCH_BYTES_MAX: usize = 256 * 1024;
/// Time to connect and say hello, ms.
const CONNECT_TIMEOUT_MS: u64 = 10_000;

type ReplySender = flume::Sender<Result<Frame, ClientError>>;
type ReplyReceiver = flume::Receiver<Result<Frame, ClientError>>;

/// Locks `m`; a poisoned lock (a panic elsewhere while held) still
/// guards consistent maps, as every critical section here is one step.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Who waits for what on one connection.
struct RouteState {
    open: bool,
    why_closed: String,
    pending: HashMap<u64, ReplySender>,
    pushes: HashMap<u64, ReplySender>,
    /// Dropped on close: the connection task sees it and ends.
    stop: Option<flume::Sender<()>>,
}

/// What the connection task and the askers share.
pub(crate) struct Routes {
    state: Mutex<RouteState>,
}

impl Routes {
    /// Open routes; `stop` is dropped when the link closes.
    fn new(stop: flume::Sender<()>) -> Routes {
        Routes {
            state: Mutex::new(RouteState {
                open: true,
                why_closed: String::new(),
                pending: HashMap::new(),
                pushes: HashMap::new(),
                stop: Some(stop),
            }),
        }
    }

    /// Marks the link closed, fails everything waiting on it and stops
    /// the connection task.
    fn fail_all(&self, why: &str) {
        let mut guard = lock(&self.state);
        let s = &mut *guard;
        if !s.open {
            return;
        }
        s.open = false;
        s.why_closed = why.to_string();
        s.stop = None;
        for (_, tx) in s.pending.drain().chain(s.pushes.drain()) {
            let _ = tx.try_send(Err(ClientError::Disconnected(why.to_string())));
        }
    }

    /// Registers a reply route, unless the link closed (checked under
    /// the same lock, so a close either sees the route or refuses it).
    fn insert(&self, push: bool, id: u64, tx: ReplySender) -> Result<(), ClientError> {
        let mut guard = lock(&self.state);
        let s = &mut *guard;
        if !s.open {
            return Err(ClientError::Disconnected(s.why_closed.clone()));
        }
        let map = if push { &mut s.pushes } else { &mut s.pending };
        map.insert(id, tx);
        Ok(())
    }

    fn remove(&self, push: bool, id: u64) -> Option<ReplySender> {
        let mut s = lock(&self.state);
        let map = if push { &mut s.pushes } else { &mut s.pending };
        map.remove(&id)
    }
}

/// The stop signal of a connection task: completes once the routes
/// dropped their sender (the link closed).
pub(crate) struct Stop(Pin<Box<flume::r#async::RecvFut<'static, ()>>>);

impl Stop {
    pub(crate) fn new(rx: flume::Receiver<()>) -> Stop {
        Stop(Box::pin(rx.into_recv_async()))
    }

    /// Runs `f` unless the connection stops first (`None` then).
    async fn unless<T>(&mut self, f: impl Future<Output = T>) -> Option<T> {
        let stop = &mut self.0;
        async { Some(f.await) }
            .or(async {
                let _ = stop.await;
                None
            })
            .await
    }
}

/// A connection.
pub(crate) struct Link<R> {
    /// The server's hello reply.
    pub(crate) hello: h::HelloOk,
    out: flume::Sender<Vec<u8>>,
    routes: Arc<Routes>,
    next_id: AtomicU64,
    /// `Send`/`Sync` only where the runtime is: a glommio link stays on
    /// its executor (its connection task and wakers live there).
    runtime: PhantomData<R>,
}

/// The client error of an `Error` frame's header: the hub's typed error
/// when its code names one, else the protocol error.
pub(crate) fn error_from(e: ErrorReply) -> ClientError {
    match e.to_hub() {
        Some(hub) => ClientError::Hub(hub),
        None => ClientError::Protocol {
            code: e.code,
            message: e.message,
        },
    }
}

/// The client error an error frame stands for.
fn error_of(frame: &mut Frame) -> ClientError {
    match gonets_proto::parse_header::<ErrorReply>(&mut frame.json) {
        Ok(e) => error_from(e),
        Err(e) => ClientError::BadReply(format!("unreadable error frame: {e}")),
    }
}

/// The reply of kind `kind` that `frame` (a reply or an `Error` frame)
/// carries, through the wire mapping ([`decode_reply`]).
pub(crate) fn reply_of(kind: ReplyKind, frame: &mut Frame) -> Result<Reply, ClientError> {
    match decode_reply(kind, frame) {
        Ok(Ok(reply)) => Ok(reply),
        Ok(Err(e)) => Err(error_from(e)),
        Err(bad) => Err(ClientError::from(bad)),
    }
}

impl<R: Runtime> Link<R> {
    /// Connects, says hello and starts the connection task.
    pub(crate) async fn open(config: &ClientConfig) -> Result<Link<R>, ClientError> {
        let tcp = within::<R, _>(CONNECT_TIMEOUT_MS, R::connect(config.addr))
            .await
            .ok_or_else(|| {
                ClientError::Disconnected(format!("connecting to {} timed out", config.addr))
            })?
            .map_err(|e| {
                ClientError::Disconnected(format!("cannot connect to {}: {e}", config.addr))
            })?;
        match &config.security {
            ClientSecurity::Tls {
                config: tls,
                server_name,
            } => {
                let name = rustls_pki_types::ServerName::try_from(server_name.clone())
                    .map_err(|e| ClientError::Tls(format!("server name {server_name:?}: {e}")))?;
                let connector = futures_rustls::TlsConnector::from(tls.clone());
                let stream = within::<R, _>(CONNECT_TIMEOUT_MS, connector.connect(name, tcp))
                    .await
                    .ok_or_else(|| ClientError::Tls("handshake timed out".into()))?
                    .map_err(|e| ClientError::Tls(e.to_string()))?;
                Link::start(Transport::Tls(Box::new(stream)), config, None).await
            }
            ClientSecurity::DevToken { participant, token } => {
                let token = Some((participant.clone(), token.clone()));
                Link::start(Transport::Plain(tcp), config, token).await
            }
        }
    }

    async fn start(
        mut stream: Transport<R::Tcp>,
        config: &ClientConfig,
        token: Option<(String, String)>,
    ) -> Result<Link<R>, ClientError> {
        let mut decoder = FrameDecoder::new(config.limits);
        let mut chunk = vec![0u8; READ_CHUNK_BYTES];
        let hello = hello::<R, _>(&mut stream, &mut decoder, &mut chunk, token).await?;
        let (reader, writer) = futures_lite::io::split(stream);
        let (stop_tx, stop_rx) = flume::bounded(1);
        let routes = Arc::new(Routes::new(stop_tx));
        let (out, outgoing) = flume::bounded(WRITE_QUEUE_FRAMES_MAX);
        R::spawn_connection(ConnectionTask {
            reader,
            writer,
            decoder,
            chunk,
            outgoing,
            routes: routes.clone(),
            stop: stop_rx,
        });
        Ok(Link {
            hello,
            out,
            routes,
            next_id: AtomicU64::new(2),
            runtime: PhantomData,
        })
    }
}

/// Says hello on a fresh stream (correlation id 1): the server's reply.
async fn hello<R: Runtime, S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    decoder: &mut FrameDecoder,
    chunk: &mut [u8],
    token: Option<(String, String)>,
) -> Result<h::HelloOk, ClientError> {
    let (participant, token) = token.unzip();
    let hello = h::Hello {
        versions: vec![gonets_proto::frame::VERSION],
        participant,
        token,
        client: Some(concat!("gonets-client/", env!("CARGO_PKG_VERSION")).into()),
    };
    let mut frame = Vec::new();
    gonets_proto::encode(&mut frame, Opcode::Hello, 1, &hello, &[]);
    let io = |e: std::io::Error| ClientError::Disconnected(format!("hello: {e}"));
    stream.write_all(&frame).await.map_err(io)?;
    stream.flush().await.map_err(io)?;
    let reply = within::<R, _>(CONNECT_TIMEOUT_MS, read_frame(stream, decoder, chunk))
        .await
        .ok_or_else(|| ClientError::Disconnected("no hello reply in time".into()))?;
    let mut reply = match reply {
        Ok(Some(f)) => f,
        Ok(None) => {
            return Err(ClientError::Disconnected(
                "the server closed the connection during hello".into(),
            ))
        }
        Err(e) => return Err(ClientError::Disconnected(format!("hello reply: {e}"))),
    };
    match reply.header.opcode {
        Opcode::Error => Err(error_of(&mut reply)),
        op if op == Opcode::Hello.reply() => gonets_proto::parse_header(&mut reply.json)
            .map_err(|e| ClientError::BadReply(e.to_string())),
        op => Err(ClientError::BadReply(format!(
            "hello answered with opcode 0x{:02x}",
            op.to_u8()
        ))),
    }
}

impl<R: Runtime> Link<R> {
    /// True until the connection dropped.
    pub(crate) fn is_open(&self) -> bool {
        lock(&self.routes.state).open
    }

    /// Closes the connection; everything waiting gets `Disconnected`, and
    /// the connection task ends (closing the socket).
    pub(crate) fn close(&self, why: &str) {
        self.routes.fail_all(why);
    }

    fn disconnected(&self) -> ClientError {
        ClientError::Disconnected(lock(&self.routes.state).why_closed.clone())
    }

    fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Sends the request frame `encode` appends (under the correlation id
    /// it is given) and waits up to `timeout_ms` for the frame answering
    /// it: its reply or its `Error` frame, as received.
    pub(crate) async fn ask(
        &self,
        encode: impl FnOnce(&mut Vec<u8>, u64),
        timeout_ms: u64,
    ) -> Result<Frame, ClientError> {
        let id = self.next_id();
        let (tx, rx) = flume::bounded(1);
        self.send(id, encode, tx).await?;
        self.wait(id, rx, timeout_ms).await
    }

    async fn send(
        &self,
        id: u64,
        encode: impl FnOnce(&mut Vec<u8>, u64),
        tx: ReplySender,
    ) -> Result<(), ClientError> {
        self.routes.insert(false, id, tx)?;
        let mut frame = Vec::with_capacity(128);
        encode(&mut frame, id);
        if self.out.send_async(frame).await.is_err() {
            self.routes.remove(false, id);
            return Err(self.disconnected());
        }
        Ok(())
    }

    async fn wait(
        &self,
        id: u64,
        rx: ReplyReceiver,
        timeout_ms: u64,
    ) -> Result<Frame, ClientError> {
        match within::<R, _>(timeout_ms, rx.recv_async()).await {
            Some(Ok(r)) => r,
            Some(Err(_)) => Err(self.disconnected()),
            None => {
                self.routes.remove(false, id);
                Err(ClientError::Timeout(timeout_ms))
            }
        }
    }

    /// Subscribes (`command` is a [`Command::Subscribe`]): the
    /// subscription's number and the channel of its pushes.
    pub(crate) async fn subscribe(
        &self,
        command: &Command,
        timeout_ms: u64,
    ) -> Result<(u64, ReplyReceiver), ClientError> {
        assert!(
            matches!(command, Command::Subscribe { .. }),
            "a subscription starts with a subscribe: {command:?}"
        );
        let id = self.next_id();
        let (push_tx, push_rx) = flume::bounded(PUSH_BUFFER_FRAMES_MAX);
        // Registered before the request: pushes may follow the reply at once.
        self.routes.insert(true, id, push_tx)?;
        let (tx, rx) = flume::bounded(1);
        let encode = |out: &mut Vec<u8>, id| {
            encode_command(out, id, command);
        };
        let sent = self.send(id, encode, tx).await;
        let reply = match sent {
            Ok(()) => self.wait(id, rx, timeout_ms).await,
            Err(e) => Err(e),
        };
        match reply.and_then(|mut f| reply_of(command.reply_kind(), &mut f)) {
            Ok(_) => Ok((id, push_rx)),
            Err(e) => {
                self.routes.remove(true, id);
                Err(e)
            }
        }
    }

    /// A connection-level request (`Ping`, `AddCredits`, `Unsubscribe`: no
    /// operation on the hub, so no `Command`) and its empty reply.
    pub(crate) async fn connection_request<T: serde::Serialize>(
        &self,
        op: Opcode,
        header: &T,
        timeout_ms: u64,
    ) -> Result<(), ClientError> {
        assert!(
            matches!(op, Opcode::Ping | Opcode::AddCredits | Opcode::Unsubscribe),
            "0x{:02x} is an operation: it goes through the wire mapping",
            op.to_u8()
        );
        let encode = |out: &mut Vec<u8>, id| gonets_proto::encode(out, op, id, header, &[]);
        let mut frame = self.ask(encode, timeout_ms).await?;
        reply_of(ReplyKind::Done, &mut frame).map(drop)
    }

    /// Stops routing pushes of subscription `id`.
    pub(crate) fn end_subscription(&self, id: u64) {
        self.routes.remove(true, id);
    }
}

impl<R> Drop for Link<R> {
    fn drop(&mut self) {
        self.routes.fail_all("the client dropped the connection");
    }
}

/// Reads and routes frames until the connection ends (or is stopped).
pub(crate) async fn read_loop<S: AsyncRead + Unpin>(
    mut reader: S,
    mut decoder: FrameDecoder,
    mut chunk: Vec<u8>,
    routes: Arc<Routes>,
    mut stop: Stop,
) {
    // Runs until the connection ends.
    loop {
        let read = stop
            .unless(read_frame(&mut reader, &mut decoder, &mut chunk))
            .await;
        let frame = match read {
            None => return,
            Some(Ok(Some(f))) => f,
            Some(Ok(None)) => return routes.fail_all("the server closed the connection"),
            Some(Err(ReadEnd::Io(e))) => return routes.fail_all(&format!("read failed: {e}")),
            Some(Err(ReadEnd::Frame(e))) => {
                return routes.fail_all(&format!("the server sent a bad frame: {e}"))
            }
        };
        if let Err(why) = route(&routes, frame) {
            return routes.fail_all(&why);
        }
    }
}

/// Hands one frame to whoever waits for it; `Err` ends the connection.
fn route(routes: &Routes, mut frame: Frame) -> Result<(), String> {
    let id = frame.header.correlation_id;
    match frame.header.opcode {
        Opcode::Push => {
            let s = lock(&routes.state);
            match s.pushes.get(&id).map(|tx| tx.try_send(Ok(frame))) {
                Some(Err(flume::TrySendError::Full(_))) => {
                    return Err("a subscription received more pushes than its buffer holds".into())
                }
                // Its leases go back to the queue with the connection.
                Some(Err(flume::TrySendError::Disconnected(_))) => {
                    return Err("a subscription was dropped without unsubscribing".into())
                }
                Some(Ok(())) | None => {}
            }
        }
        Opcode::Error if id == 0 => {
            let e = error_of(&mut frame);
            return Err(format!("the server closed the connection: {e}"));
        }
        Opcode::Error => {
            if let Some(tx) = routes.remove(false, id) {
                // Read by the asker, through the wire mapping.
                let _ = tx.try_send(Ok(frame));
            } else if let Some(tx) = routes.remove(true, id) {
                let e = error_of(&mut frame);
                // A subscription ended by the server (e.g. hub shutting down).
                let _ = tx.try_send(Err(e));
            }
        }
        Opcode::Reply(_) => {
            if let Some(tx) = routes.remove(false, id) {
                let _ = tx.try_send(Ok(frame));
            }
        }
        op => {
            return Err(format!(
                "the server sent a request opcode 0x{:02x}",
                op.to_u8()
            ))
        }
    }
    Ok(())
}

/// Writes queued frames, gathered into batches, until the link closes.
pub(crate) async fn write_loop<W: AsyncWrite + Unpin>(
    mut writer: W,
    outgoing: flume::Receiver<Vec<u8>>,
    routes: Arc<Routes>,
    mut stop: Stop,
) {
    let mut batch: Vec<u8> = Vec::with_capacity(WRITE_BATCH_BYTES_MAX);
    // Runs until the link closes (stop) or every sender is gone.
    while let Some(Ok(first)) = stop.unless(outgoing.recv_async()).await {
        batch.extend_from_slice(&first);
        while batch.len() < WRITE_BATCH_BYTES_MAX {
            match outgoing.try_recv() {
                Ok(f) => batch.extend_from_slice(&f),
                Err(_) => break,
            }
        }
        let written = stop
            .unless(async {
                writer.write_all(&batch).await?;
                writer.flush().await
            })
            .await;
        match written {
            None => return,
            Some(Ok(())) => batch.clear(),
            Some(Err(e)) => return routes.fail_all(&format!("write failed: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gonets_proto::Limits;

    fn frame(op: Opcode, id: u64) -> Frame {
        let mut bytes = Vec::new();
        gonets_proto::encode(&mut bytes, op, id, &h::Empty {}, &[]);
        let mut decoder = FrameDecoder::new(Limits {
            header_bytes_max: 1024,
            body_bytes_max: 1024,
        });
        decoder.extend(&bytes);
        decoder.next_frame().expect("valid").expect("whole")
    }

    #[test]
    fn given_a_waiting_reply_when_the_link_closes_then_the_waiter_gets_disconnected_and_the_task_is_stopped(
    ) {
        let (stop_tx, stop_rx) = flume::bounded(1);
        let routes = Routes::new(stop_tx);
        let (tx, rx) = flume::bounded(1);
        routes.insert(false, 7, tx).expect("open");
        routes.fail_all("gone");
        assert!(matches!(rx.try_recv(), Ok(Err(ClientError::Disconnected(w))) if w == "gone"));
        assert!(
            stop_rx.is_disconnected(),
            "the connection task is told to stop"
        );
    }

    #[test]
    fn given_a_closed_link_when_a_reply_route_is_registered_then_disconnected_not_a_silent_wait() {
        let (stop_tx, _stop_rx) = flume::bounded(1);
        let routes = Routes::new(stop_tx);
        routes.fail_all("gone");
        let (tx, _rx) = flume::bounded(1);
        assert!(matches!(
            routes.insert(false, 7, tx),
            Err(ClientError::Disconnected(w)) if w == "gone"
        ));
    }

    #[test]
    fn given_replies_and_pushes_when_routed_then_each_reaches_its_own_waiter_by_correlation_id() {
        let (stop_tx, _stop_rx) = flume::bounded(1);
        let routes = Routes::new(stop_tx);
        let (tx3, rx3) = flume::bounded(1);
        let (tx4, rx4) = flume::bounded(1);
        let (push_tx, push_rx) = flume::bounded(2);
        routes.insert(false, 3, tx3).expect("open");
        routes.insert(false, 4, tx4).expect("open");
        routes.insert(true, 5, push_tx).expect("open");
        route(&routes, frame(Opcode::Ping.reply(), 4)).expect("routed");
        route(&routes, frame(Opcode::Push, 5)).expect("routed");
        route(&routes, frame(Opcode::Push, 5)).expect("routed");
        assert_eq!(
            rx4.try_recv()
                .expect("4's reply")
                .expect("ok")
                .header
                .correlation_id,
            4
        );
        assert!(rx3.try_recv().is_err(), "3 still waits");
        assert_eq!(push_rx.len(), 2);
        // A reply with no waiter (timed out) is dropped, not misrouted.
        route(&routes, frame(Opcode::Ping.reply(), 9)).expect("dropped");
        assert!(rx3.try_recv().is_err());
    }

    #[test]
    fn given_an_error_frame_for_a_waiting_request_when_routed_then_the_waiter_reads_the_hubs_typed_error(
    ) {
        let (stop_tx, _stop_rx) = flume::bounded(1);
        let routes = Routes::new(stop_tx);
        let (tx, rx) = flume::bounded(1);
        routes.insert(false, 6, tx).expect("open");
        let mut bytes = Vec::new();
        let e = ErrorReply::from_hub(&gonets_types::HubError::NotFound);
        gonets_proto::encode_error(&mut bytes, 6, &e);
        let mut decoder = FrameDecoder::new(Limits {
            header_bytes_max: 1024,
            body_bytes_max: 1024,
        });
        decoder.extend(&bytes);
        let error = decoder.next_frame().expect("valid").expect("whole");
        route(&routes, error).expect("routed");
        let mut got = rx.try_recv().expect("6's frame").expect("as received");
        assert!(matches!(
            reply_of(ReplyKind::Done, &mut got),
            Err(ClientError::Hub(gonets_types::HubError::NotFound))
        ));
    }

    #[test]
    fn given_a_full_subscription_buffer_when_one_more_push_comes_then_the_connection_ends() {
        let (stop_tx, _stop_rx) = flume::bounded(1);
        let routes = Routes::new(stop_tx);
        let (push_tx, _push_rx) = flume::bounded(1);
        routes.insert(true, 5, push_tx).expect("open");
        route(&routes, frame(Opcode::Push, 5)).expect("fits");
        assert!(route(&routes, frame(Opcode::Push, 5)).is_err());
    }
}
