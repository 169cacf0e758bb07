//! One live connection of a client: the hello, a reader task that routes
//! replies by correlation id and pushes by subscription, a writer task.

use crate::within::within;
use crate::{ClientConfig, ClientError, ClientSecurity};
use futures_lite::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use glommio::channels::local_channel::{self, LocalReceiver, LocalSender};
use glommio::net::TcpStream;
use glommio::Task;
use gonets_proto::frame_io::{read_frame, ReadEnd};
use gonets_proto::header::{self as h, ErrorReply};
use gonets_proto::{Frame, FrameDecoder, Opcode};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

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

type ReplySender = LocalSender<Result<Frame, ClientError>>;

/// What the reader task and the askers share.
struct Routes {
    pending: RefCell<HashMap<u64, ReplySender>>,
    pushes: RefCell<HashMap<u64, ReplySender>>,
    open: Cell<bool>,
    why_closed: RefCell<String>,
}

impl Routes {
    /// Marks the link closed and fails everything waiting on it.
    fn fail_all(&self, why: &str) {
        if !self.open.replace(false) {
            return;
        }
        *self.why_closed.borrow_mut() = why.to_string();
        for (_, tx) in self.pending.borrow_mut().drain() {
            let _ = tx.try_send(Err(ClientError::Disconnected(why.to_string())));
        }
        for (_, tx) in self.pushes.borrow_mut().drain() {
            let _ = tx.try_send(Err(ClientError::Disconnected(why.to_string())));
        }
    }
}

/// A connection.
pub(super) struct Link {
    /// The server's hello reply.
    pub(super) hello: h::HelloOk,
    out: LocalSender<Vec<u8>>,
    routes: Rc<Routes>,
    next_id: Cell<u64>,
    tasks: RefCell<Vec<Task<()>>>,
}

/// The client error an error frame stands for.
fn error_of(frame: &mut Frame) -> ClientError {
    match gonets_proto::parse_header::<ErrorReply>(&mut frame.json) {
        Ok(e) => match e.to_hub() {
            Some(hub) => ClientError::Hub(hub),
            None => ClientError::Protocol {
                code: e.code,
                message: e.message,
            },
        },
        Err(e) => ClientError::BadReply(format!("unreadable error frame: {e}")),
    }
}

impl Link {
    /// Connects, says hello and starts the reader and writer.
    pub(super) async fn open(config: &ClientConfig) -> Result<Link, ClientError> {
        let tcp = within(CONNECT_TIMEOUT_MS, TcpStream::connect(config.addr))
            .await
            .ok_or_else(|| {
                ClientError::Disconnected(format!("connecting to {} timed out", config.addr))
            })?
            .map_err(|e| {
                ClientError::Disconnected(format!("cannot connect to {}: {e}", config.addr))
            })?;
        let _ = tcp.set_nodelay(true);
        match &config.security {
            ClientSecurity::Tls {
                config: tls,
                server_name,
            } => {
                let name = rustls_pki_types::ServerName::try_from(server_name.clone())
                    .map_err(|e| ClientError::Tls(format!("server name {server_name:?}: {e}")))?;
                let connector = futures_rustls::TlsConnector::from(tls.clone());
                let stream = within(CONNECT_TIMEOUT_MS, connector.connect(name, tcp))
                    .await
                    .ok_or_else(|| ClientError::Tls("handshake timed out".into()))?
                    .map_err(|e| ClientError::Tls(e.to_string()))?;
                Link::start(stream, config, None).await
            }
            ClientSecurity::DevToken { participant, token } => {
                Link::start(tcp, config, Some((participant.clone(), token.clone()))).await
            }
        }
    }

    async fn start<S>(
        mut stream: S,
        config: &ClientConfig,
        token: Option<(String, String)>,
    ) -> Result<Link, ClientError>
    where
        S: AsyncRead + AsyncWrite + Unpin + 'static,
    {
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
        let mut decoder = FrameDecoder::new(config.limits);
        let mut chunk = vec![0u8; READ_CHUNK_BYTES];
        let reply = within(
            CONNECT_TIMEOUT_MS,
            read_frame(&mut stream, &mut decoder, &mut chunk),
        )
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
        let hello_ok: h::HelloOk = match reply.header.opcode {
            Opcode::Error => return Err(error_of(&mut reply)),
            op if op == Opcode::Hello.reply() => gonets_proto::parse_header(&mut reply.json)
                .map_err(|e| ClientError::BadReply(e.to_string()))?,
            op => {
                return Err(ClientError::BadReply(format!(
                    "hello answered with opcode 0x{:02x}",
                    op.to_u8()
                )))
            }
        };
        let (reader, writer) = futures_lite::io::split(stream);
        let routes = Rc::new(Routes {
            pending: RefCell::new(HashMap::new()),
            pushes: RefCell::new(HashMap::new()),
            open: Cell::new(true),
            why_closed: RefCell::new(String::new()),
        });
        let (out, outgoing) = local_channel::new_bounded(WRITE_QUEUE_FRAMES_MAX);
        let read_task = glommio::spawn_local(read_loop(reader, decoder, chunk, routes.clone()));
        let write_task = glommio::spawn_local(write_loop(writer, outgoing, routes.clone()));
        Ok(Link {
            hello: hello_ok,
            out,
            routes,
            next_id: Cell::new(2),
            tasks: RefCell::new(vec![read_task, write_task]),
        })
    }

    /// True until the connection dropped.
    pub(super) fn is_open(&self) -> bool {
        self.routes.open.get()
    }

    /// Closes the connection; everything waiting gets `Disconnected`.
    pub(super) fn close(&self, why: &str) {
        self.routes.fail_all(why);
        // Dropping the tasks cancels them and closes the socket.
        self.tasks.borrow_mut().clear();
    }

    fn disconnected(&self) -> ClientError {
        ClientError::Disconnected(self.routes.why_closed.borrow().clone())
    }

    fn next_id(&self) -> u64 {
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        id
    }

    /// Sends a request and waits up to `timeout_ms` for its reply.
    pub(super) async fn ask<T: serde::Serialize>(
        &self,
        op: Opcode,
        header: &T,
        body: &[&[u8]],
        timeout_ms: u64,
    ) -> Result<Frame, ClientError> {
        let id = self.next_id();
        let (tx, rx) = local_channel::new_bounded(1);
        self.send(op, id, header, body, tx).await?;
        self.wait(id, rx, timeout_ms).await
    }

    async fn send<T: serde::Serialize>(
        &self,
        op: Opcode,
        id: u64,
        header: &T,
        body: &[&[u8]],
        tx: ReplySender,
    ) -> Result<(), ClientError> {
        if !self.is_open() {
            return Err(self.disconnected());
        }
        self.routes.pending.borrow_mut().insert(id, tx);
        let mut frame = Vec::with_capacity(128 + body.iter().map(|b| b.len()).sum::<usize>());
        gonets_proto::encode(&mut frame, op, id, header, body);
        if self.out.send(frame).await.is_err() {
            self.routes.pending.borrow_mut().remove(&id);
            return Err(self.disconnected());
        }
        Ok(())
    }

    async fn wait(
        &self,
        id: u64,
        rx: LocalReceiver<Result<Frame, ClientError>>,
        timeout_ms: u64,
    ) -> Result<Frame, ClientError> {
        match within(timeout_ms, rx.recv()).await {
            Some(Some(r)) => r,
            Some(None) => Err(self.disconnected()),
            None => {
                self.routes.pending.borrow_mut().remove(&id);
                Err(ClientError::Timeout(timeout_ms))
            }
        }
    }

    /// Subscribes: the subscription's number and the channel of its pushes.
    pub(super) async fn subscribe(
        &self,
        header: &h::Subscribe,
        timeout_ms: u64,
    ) -> Result<(u64, LocalReceiver<Result<Frame, ClientError>>), ClientError> {
        let id = self.next_id();
        let (push_tx, push_rx) = local_channel::new_bounded(PUSH_BUFFER_FRAMES_MAX);
        // Registered before the request: pushes may follow the reply at once.
        self.routes.pushes.borrow_mut().insert(id, push_tx);
        let (tx, rx) = local_channel::new_bounded(1);
        let sent = self.send(Opcode::Subscribe, id, header, &[], tx).await;
        let reply = match sent {
            Ok(()) => self.wait(id, rx, timeout_ms).await,
            Err(e) => Err(e),
        };
        match reply {
            Ok(_) => Ok((id, push_rx)),
            Err(e) => {
                self.routes.pushes.borrow_mut().remove(&id);
                Err(e)
            }
        }
    }

    /// Stops routing pushes of subscription `id`.
    pub(super) fn end_subscription(&self, id: u64) {
        self.routes.pushes.borrow_mut().remove(&id);
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.close("the client dropped the connection");
    }
}

async fn read_loop<R: AsyncRead + Unpin>(
    mut reader: R,
    mut decoder: FrameDecoder,
    mut chunk: Vec<u8>,
    routes: Rc<Routes>,
) {
    // Runs until the connection ends.
    loop {
        let mut frame = match read_frame(&mut reader, &mut decoder, &mut chunk).await {
            Ok(Some(f)) => f,
            Ok(None) => {
                routes.fail_all("the server closed the connection");
                return;
            }
            Err(ReadEnd::Io(e)) => {
                routes.fail_all(&format!("read failed: {e}"));
                return;
            }
            Err(ReadEnd::Frame(e)) => {
                routes.fail_all(&format!("the server sent a bad frame: {e}"));
                return;
            }
        };
        let id = frame.header.correlation_id;
        match frame.header.opcode {
            Opcode::Push => {
                let full = routes
                    .pushes
                    .borrow()
                    .get(&id)
                    .map(|tx| tx.try_send(Ok(frame)).is_err());
                if full == Some(true) {
                    routes.fail_all("a subscription received more pushes than its buffer holds");
                    return;
                }
            }
            Opcode::Error if id == 0 => {
                let e = error_of(&mut frame);
                routes.fail_all(&format!("the server closed the connection: {e}"));
                return;
            }
            Opcode::Error => {
                let e = error_of(&mut frame);
                if let Some(tx) = routes.pending.borrow_mut().remove(&id) {
                    let _ = tx.try_send(Err(e));
                } else if let Some(tx) = routes.pushes.borrow_mut().remove(&id) {
                    // A subscription ended by the server (e.g. hub shutting down).
                    let _ = tx.try_send(Err(e));
                }
            }
            Opcode::Reply(_) => {
                if let Some(tx) = routes.pending.borrow_mut().remove(&id) {
                    let _ = tx.try_send(Ok(frame));
                }
            }
            op => {
                routes.fail_all(&format!(
                    "the server sent a request opcode 0x{:02x}",
                    op.to_u8()
                ));
                return;
            }
        }
    }
}

async fn write_loop<W: AsyncWrite + Unpin>(
    mut writer: W,
    outgoing: LocalReceiver<Vec<u8>>,
    routes: Rc<Routes>,
) {
    let mut batch: Vec<u8> = Vec::with_capacity(WRITE_BATCH_BYTES_MAX);
    while let Some(first) = outgoing.recv().await {
        batch.extend_from_slice(&first);
        while batch.len() < WRITE_BATCH_BYTES_MAX {
            match futures_lite::future::poll_once(outgoing.recv()).await {
                Some(Some(f)) => batch.extend_from_slice(&f),
                _ => break,
            }
        }
        if let Err(e) = async {
            writer.write_all(&batch).await?;
            writer.flush().await
        }
        .await
        {
            routes.fail_all(&format!("write failed: {e}"));
            return;
        }
        batch.clear();
    }
}
