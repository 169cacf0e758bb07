//! One client connection: TLS handshake (or development token), hello and
//! version negotiation, then frames in, each request run as its own task
//! (pipelining, bounded by a per-connection semaphore), replies and pushes
//! out through one writer task.
//!
//! Malformed input gets an error frame with the reason and the connection
//! is closed; the shard and every other connection go on.

use crate::frame_within::read_frame_within;
use crate::settings::{Security, ServerSettings};
use crate::tls;
use crate::writer::{write_loop, Mark, Outgoing, Output};
use futures_lite::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use futures_lite::FutureExt;
use glommio::channels::local_channel::{self, LocalReceiver, LocalSender};
use glommio::net::TcpStream;
use glommio::sync::{Semaphore, StaticPermit};
use gonets_engine::runtime::lanes::{self, Lane};
use gonets_engine::runtime::rt_stages::{self, RtOp, Stage};
use gonets_engine::runtime::within::within;
use gonets_engine::runtime::{HubHandle, Message, Session, Subscription};
use gonets_proto::frame_io::{read_frame, ReadEnd};
use gonets_proto::header::{self as h, ErrorReply};
use gonets_proto::{ErrorCode, Frame, FrameDecoder, HeaderError, Opcode, RequestError};
use gonets_types::error::HubError;
use gonets_types::{Command, Reply};
use std::cell::RefCell;
use std::collections::HashMap;
use std::os::fd::RawFd;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

/// Bytes read from the socket at a time.
const READ_CHUNK_BYTES: usize = 64 * 1024;
/// A delivered message's JSON header, bytes: room reserved per message in a
/// fetch's frame (a typical one is ~350 bytes; a longer one grows the frame once).
const MESSAGE_HEADER_JSON_BYTES: usize = 512;
/// Commands queued for one subscription's task.
const SUBSCRIPTION_COMMANDS_MAX: usize = 16;
/// Subscriptions one connection may hold.
const SUBSCRIPTIONS_PER_CONNECTION_MAX: usize = 256;
/// The server's name in the hello reply.
const SERVER_NAME: &str = concat!("gonets/", env!("CARGO_PKG_VERSION"));

/// A command for a subscription's task, with the correlation id to answer.
enum SubscriptionCommand {
    AddCredits { credits: u32, correlation_id: u64 },
    Unsubscribe { correlation_id: u64 },
}

/// A live subscription of this connection.
struct SubscriptionEntry {
    commands: Rc<LocalSender<SubscriptionCommand>>,
    lease_holder: u64,
}

/// The state request tasks share.
struct Connection {
    session: Session,
    out: Rc<LocalSender<Outgoing>>,
    subscriptions: RefCell<HashMap<u64, SubscriptionEntry>>,
    credits_max: u32,
}

impl Connection {
    async fn send(&self, frame: Vec<u8>) {
        self.send_out(Outgoing::Frame(frame)).await;
    }

    async fn send_out(&self, out: Outgoing) {
        // A closed writer means the connection is gone: nothing to tell.
        let _ = self.out.send(out).await;
    }
}

/// Encodes a reply frame.
fn reply<T: serde::Serialize>(
    request: Opcode,
    correlation_id: u64,
    header: &T,
    body: &[&[u8]],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(128 + body.iter().map(|b| b.len()).sum::<usize>());
    gonets_proto::encode(&mut out, request.reply(), correlation_id, header, body);
    out
}

/// Encodes an error frame.
fn error_frame(correlation_id: u64, e: &ErrorReply) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    gonets_proto::encode_error(&mut out, correlation_id, e);
    out
}

/// Encodes the reply to a connection-level request that only says done
/// (or its error).
fn done(request: Opcode, correlation_id: u64, r: Result<(), HubError>) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    let r = r.map(|()| Reply::Done);
    gonets_proto::encode_reply(&mut out, request, correlation_id, &r);
    out
}

/// Serves one accepted TCP connection until it closes.
pub(crate) async fn serve(
    shard: u16,
    tcp: TcpStream,
    handle: HubHandle,
    settings: Arc<ServerSettings>,
) {
    let peer = tcp
        .peer_addr()
        .map_or_else(|_| "?".to_string(), |a| a.to_string());
    match &settings.security {
        Security::Tls(config) => {
            let acceptor = futures_rustls::TlsAcceptor::from(config.clone());
            let stream = match within(settings.hello_timeout_ms, acceptor.accept(tcp)).await {
                Some(Ok(s)) => s,
                Some(Err(e)) => {
                    tracing::info!(shard, %peer, "TLS handshake refused: {e}");
                    return;
                }
                None => {
                    tracing::info!(shard, %peer, "TLS handshake timed out");
                    return;
                }
            };
            let who = tls::peer_identity(stream.get_ref().1)
                .map_err(|e| {
                    tracing::info!(shard, %peer, "client certificate unreadable: {e}");
                    HubError::Unauthenticated
                })
                .and_then(|identity| tls::authenticate(handle.registry(), &identity));
            run(
                shard,
                stream,
                None,
                &peer,
                Credentials::Certificate(who),
                handle,
                settings,
            )
            .await;
        }
        Security::DevTokens(tokens) => {
            let tokens = tokens.clone();
            let fd = std::os::fd::AsRawFd::as_raw_fd(&tcp);
            run(
                shard,
                tcp,
                Some(fd),
                &peer,
                Credentials::Token(tokens),
                handle,
                settings,
            )
            .await;
        }
    }
}

/// How the participant is established.
enum Credentials {
    /// By the client certificate (already checked against the registry).
    Certificate(Result<gonets_types::ids::ParticipantId, HubError>),
    /// By the hello's participant and token (development mode).
    Token(Arc<HashMap<String, String>>),
}

/// Hello, then the frame loop. `fd`: the plain TCP socket under `stream`
/// (frames with many parts are gathered into one `sendmsg` on it), `None`
/// under TLS.
async fn run<S>(
    shard: u16,
    stream: S,
    fd: Option<RawFd>,
    peer: &str,
    credentials: Credentials,
    handle: HubHandle,
    settings: Arc<ServerSettings>,
) where
    S: AsyncRead + AsyncWrite + Unpin + 'static,
{
    let (mut reader, mut writer) = futures_lite::io::split(stream);
    let mut decoder = FrameDecoder::new(settings.limits);
    let mut chunk = vec![0u8; READ_CHUNK_BYTES];
    let mut input = Input {
        reader: &mut reader,
        decoder: &mut decoder,
        chunk: &mut chunk,
        frame_read_timeout_ms: settings.frame_read_timeout_ms,
    };
    let Some(session) = open_session(
        shard,
        peer,
        credentials,
        &handle,
        &settings,
        &mut input,
        &mut writer,
    )
    .await
    else {
        return;
    };
    let output = Output { writer, fd };
    serve_frames(shard, peer, session, &handle, &settings, &mut input, output).await;
}

/// Reads the hello within the hello timeout; a broken or missing one gets
/// its error frame and the connection is closed (`None`).
async fn read_hello<R, W>(
    hello_timeout_ms: u64,
    input: &mut Input<'_, R>,
    writer: &mut W,
) -> Option<Frame>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let first = within(
        hello_timeout_ms,
        read_frame(input.reader, input.decoder, input.chunk),
    )
    .await;
    match first {
        Some(Ok(Some(f))) => Some(f),
        Some(Ok(None)) => None,
        Some(Err(ReadEnd::Frame(e))) => {
            let _ = writer
                .write_all(&error_frame(0, &ErrorReply::from_frame(&e)))
                .await;
            let _ = writer.close().await;
            None
        }
        Some(Err(ReadEnd::Io(_))) => None,
        None => {
            let e = ErrorReply::protocol(
                ErrorCode::HelloRequired,
                "no hello within the hello timeout",
                true,
            );
            let _ = writer.write_all(&error_frame(0, &e)).await;
            let _ = writer.close().await;
            None
        }
    }
}

/// The hello and its reply: the session of the participant it establishes,
/// or `None` once the connection is refused (or gone).
async fn open_session<R, W>(
    shard: u16,
    peer: &str,
    credentials: Credentials,
    handle: &HubHandle,
    settings: &ServerSettings,
    input: &mut Input<'_, R>,
    writer: &mut W,
) -> Option<Session>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let hello_frame = read_hello(settings.hello_timeout_ms, input, writer).await?;
    let correlation_id = hello_frame.header.correlation_id;
    let session = match hello(hello_frame, credentials, handle) {
        Ok(s) => s,
        Err(e) => {
            tracing::info!(shard, %peer, "hello refused: {}", e.message);
            let _ = writer.write_all(&error_frame(correlation_id, &e)).await;
            let _ = writer.close().await;
            return None;
        }
    };
    let ok = h::HelloOk {
        version: gonets_proto::frame::VERSION,
        participant: session.participant().to_string(),
        shard,
        shards: handle.shard_count(),
        shard_ports: (0..handle.shard_count())
            .filter_map(|s| settings.shard_port(s))
            .collect(),
        header_bytes_max: settings.limits.header_bytes_max,
        body_bytes_max: settings.limits.body_bytes_max,
        server: SERVER_NAME.into(),
    };
    if writer
        .write_all(&reply(Opcode::Hello, correlation_id, &ok, &[]))
        .await
        .is_err()
    {
        return None;
    }
    let _ = writer.flush().await;
    tracing::debug!(shard, %peer, participant = %session.participant(), "connected");
    Some(session)
}

/// After the hello: runs the frame loop with its writer task until the
/// client stops or a fatal error (sent before closing), then ends the
/// connection's subscriptions and writer.
async fn serve_frames<R, W>(
    shard: u16,
    peer: &str,
    session: Session,
    handle: &HubHandle,
    settings: &ServerSettings,
    input: &mut Input<'_, R>,
    output: Output<W>,
) where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin + 'static,
{
    let (out, outgoing) = local_channel::new_bounded(settings.write_queue_frames_max);
    let rt = session.clone();
    let writer_task =
        glommio::spawn_local(write_loop(output, outgoing, move || rt.rt_calls_recent()));
    let conn = Rc::new(Connection {
        session,
        out: Rc::new(out),
        subscriptions: RefCell::new(HashMap::new()),
        credits_max: handle.subscription_credits_max(),
    });
    let permits = Rc::new(Semaphore::new(settings.in_flight_per_connection_max as u64));
    let end = frame_loop(&conn, &permits, input).await;
    if let Some(Fatal {
        correlation_id,
        reply,
    }) = end
    {
        tracing::info!(
            shard,
            %peer,
            correlation_id,
            code = reply.code.as_str(),
            "closing connection: {}",
            reply.message
        );
        conn.send(error_frame(correlation_id, &reply)).await;
    }
    // Ends the subscription tasks (their command channels close).
    conn.subscriptions.borrow_mut().clear();
    let _ = conn.out.send(Outgoing::Close).await;
    writer_task.await;
}

/// Checks the hello; the session of the participant it establishes.
fn hello(
    frame: Frame,
    credentials: Credentials,
    handle: &HubHandle,
) -> Result<Session, Box<ErrorReply>> {
    hello_unboxed(frame, credentials, handle).map_err(Box::new)
}

#[allow(clippy::result_large_err)] // boxed by `hello`, its only caller
fn hello_unboxed(
    mut frame: Frame,
    credentials: Credentials,
    handle: &HubHandle,
) -> Result<Session, ErrorReply> {
    if frame.header.opcode != Opcode::Hello {
        return Err(ErrorReply::protocol(
            ErrorCode::HelloRequired,
            "the first frame must be a hello",
            true,
        ));
    }
    // Nothing works before a hello: every fault in it is fatal.
    let hello: h::Hello = gonets_proto::parse_request(&mut frame.json).map_err(|e| {
        let mut reply = ErrorReply::from_header(&e);
        reply.fatal = true;
        reply
    })?;
    if !hello.versions.contains(&gonets_proto::frame::VERSION) {
        return Err(ErrorReply::protocol(
            ErrorCode::UnsupportedVersion,
            format!(
                "no common protocol version: client speaks {:?}, server speaks {}",
                hello.versions,
                gonets_proto::frame::VERSION
            ),
            true,
        ));
    }
    let unauthenticated = |why: &str| {
        let mut e = ErrorReply::from_hub(&HubError::Unauthenticated);
        e.message = format!("unauthenticated: {why}");
        e.fatal = true;
        e
    };
    let participant = match credentials {
        Credentials::Certificate(Ok(p)) => {
            if let Some(claimed) = &hello.participant {
                if claimed != p.as_str() {
                    return Err(unauthenticated(
                        "the hello names another participant than the certificate",
                    ));
                }
            }
            p.to_string()
        }
        Credentials::Certificate(Err(_)) => {
            return Err(unauthenticated(
                "the client certificate names no registered participant",
            ))
        }
        Credentials::Token(tokens) => {
            let (Some(p), Some(t)) = (&hello.participant, &hello.token) else {
                return Err(unauthenticated(
                    "development mode: the hello must carry participant and token",
                ));
            };
            match tokens.get(p) {
                Some(expected) if constant_time_eq(expected.as_bytes(), t.as_bytes()) => p.clone(),
                _ => return Err(unauthenticated("unknown participant or wrong token")),
            }
        }
    };
    handle.session(&participant).map_err(|e| {
        let mut reply = ErrorReply::from_hub(&e);
        reply.fatal = true;
        reply
    })
}

/// Compares secrets without an early exit.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The reading side of a connection after its hello.
struct Input<'a, R> {
    reader: &'a mut R,
    decoder: &'a mut FrameDecoder,
    chunk: &'a mut [u8],
    /// From a frame's first byte to its last, ms.
    frame_read_timeout_ms: u64,
}

/// The error that ends a connection, with the correlation id to send it
/// under: the request's when one request's header caused it (`BAD_HEADER`),
/// 0 when the byte stream itself is broken (`BAD_FRAME`).
struct Fatal {
    correlation_id: u64,
    reply: ErrorReply,
}

impl Fatal {
    /// The byte stream is broken: no single request to blame.
    fn stream(reply: ErrorReply) -> Fatal {
        Fatal {
            correlation_id: 0,
            reply,
        }
    }

    /// The JSON header of request `correlation_id` is not a JSON object.
    fn header(correlation_id: u64, e: &HeaderError) -> Box<Fatal> {
        let reply = ErrorReply::from_header(e);
        assert!(
            reply.fatal,
            "only an unparseable header ends the connection"
        );
        Box::new(Fatal {
            correlation_id,
            reply,
        })
    }
}

/// Reads frames and starts their tasks until the stream ends; the fatal
/// error to send, if the input was malformed or a frame stalled.
async fn frame_loop<R: AsyncRead + Unpin>(
    conn: &Rc<Connection>,
    permits: &Rc<Semaphore>,
    input: &mut Input<'_, R>,
) -> Option<Fatal> {
    // Runs as long as the client sends; every frame is bounded by the limits
    // and, once begun, by the frame-read timeout.
    loop {
        let read = read_frame_within(
            input.reader,
            input.decoder,
            input.chunk,
            input.frame_read_timeout_ms,
            || conn.session.rt_calls_recent(),
        )
        .await;
        let frame = match read {
            Ok(Some(f)) => f,
            Ok(None) => return None,
            Err(ReadEnd::Frame(e)) => return Some(Fatal::stream(ErrorReply::from_frame(&e))),
            Err(ReadEnd::Io(_)) => return None,
        };
        let op = frame.header.opcode;
        if !op.is_request() {
            return Some(Fatal::stream(ErrorReply::protocol(
                ErrorCode::BadFrame,
                format!("opcode 0x{:02x} is not a request", op.to_u8()),
                true,
            )));
        }
        // Bounds the requests in flight: the reader waits, the client's
        // pipeline backs up in its socket.
        let Ok(permit) = permits.acquire_static_permit(1).await else {
            return None;
        };
        if let Err(fatal) = start(conn, frame, permit).await {
            return Some(*fatal);
        }
    }
}

/// Starts one request frame's work: connection-level requests here, an
/// operation on the hub as a task of its own that holds `permit` until its
/// reply is queued.
async fn start(
    conn: &Rc<Connection>,
    frame: Frame,
    permit: StaticPermit,
) -> Result<(), Box<Fatal>> {
    let id = frame.header.correlation_id;
    match frame.header.opcode {
        Opcode::AddCredits | Opcode::Unsubscribe => subscription_command(conn, frame).await?,
        Opcode::Ping => conn.send(reply(Opcode::Ping, id, &h::Empty {}, &[])).await,
        Opcode::Hello => {
            let e = HubError::Malformed("hello was already done".into());
            conn.send(error_frame(id, &ErrorReply::from_hub(&e))).await;
        }
        op => {
            let read_at = Instant::now();
            let command = decode(conn, frame)?;
            let conn = conn.clone();
            // A batch runs in the bulk lane, a call or an answer in the rt
            // lane (ADR 0015); a refused frame's reply is small: rt.
            let lane = command.as_ref().map_or(Lane::Rt, |c| conn.session.lane(c));
            let timed = command.as_ref().ok().and_then(RtOp::of);
            lanes::spawn(lane, async move {
                if let Some(op) = timed {
                    rt_stages::note(op, Stage::Spawn, read_at);
                }
                if let Some(out) = operation(&conn, op, id, command).await {
                    let replied_at = Instant::now();
                    conn.send_out(out).await;
                    if let Some(op) = timed {
                        let mark = Mark {
                            op,
                            read_at,
                            replied_at,
                        };
                        conn.send_out(Outgoing::Mark(mark)).await;
                    }
                }
                drop(permit);
            })
            .detach();
        }
    }
    Ok(())
}

/// A request's header or command (`T`), split by what a fault costs:
/// `Ok(Err(reply))` when it is answered with an error and the connection
/// goes on, `Err` when the header is not a JSON object at all (fatal).
#[allow(clippy::type_complexity)] // the two layers are the two kinds of fault
fn split<T>(
    id: u64,
    decoded: Result<T, RequestError>,
) -> Result<Result<T, Box<ErrorReply>>, Box<Fatal>> {
    match decoded {
        Ok(t) => Ok(Ok(t)),
        Err(RequestError::BadHeader(e)) => Err(Fatal::header(id, &e)),
        Err(RequestError::Refused(reply)) => Ok(Err(reply)),
    }
}

/// Decodes a request frame into its command (gonets-proto's one wire
/// mapping). An ack, ack_many, nack or nack_many naming a lease that is neither this
/// connection's session's nor one of its subscriptions' is `NOT_FOUND`.
#[allow(clippy::type_complexity)] // see `split`
fn decode(
    conn: &Connection,
    mut frame: Frame,
) -> Result<Result<Command, Box<ErrorReply>>, Box<Fatal>> {
    let id = frame.header.correlation_id;
    let decoded = gonets_proto::decode_command(frame.header.opcode, &mut frame.json, frame.body);
    Ok(match split(id, decoded)? {
        Ok(
            Command::Ack { reader, .. }
            | Command::AckMany { reader, .. }
            | Command::Nack { reader, .. }
            | Command::NackMany { reader, .. },
        ) if !conn.holds(reader) => Err(Box::new(ErrorReply::from_hub(&HubError::NotFound))),
        other => other,
    })
}

impl Connection {
    /// True if `lease` is this connection's session's or one of its subscriptions'.
    fn holds(&self, lease: u64) -> bool {
        lease == self.session.lease_holder()
            || self
                .subscriptions
                .borrow()
                .values()
                .any(|s| s.lease_holder == lease)
    }
}

/// Runs a decoded request of opcode `request`; what to send back (none
/// for a subscribe, whose task answers itself): a message reply as its
/// head and its payloads, anything else as one frame.
async fn operation(
    conn: &Rc<Connection>,
    request: Opcode,
    id: u64,
    command: Result<Command, Box<ErrorReply>>,
) -> Option<Outgoing> {
    let command = match command {
        Ok(c) => c,
        Err(e) => return Some(Outgoing::Frame(error_frame(id, &e))),
    };
    if let Command::Subscribe { queue, credits, .. } = command {
        return subscribe(conn, id, queue, credits)
            .await
            .map(Outgoing::Frame);
    }
    let result = conn.session.execute(command).await;
    // Room for the messages' JSON headers, so the head is not grown while
    // it is encoded.
    let messages = match &result {
        Ok(Reply::Message(_)) => 1,
        Ok(Reply::Messages(ms)) => ms.len(),
        _ => 0,
    };
    let mut head = Vec::with_capacity(256 + messages * MESSAGE_HEADER_JSON_BYTES);
    let payloads = gonets_proto::encode_reply_head(&mut head, request, id, &result);
    Some(if payloads.is_empty() {
        Outgoing::Frame(head)
    } else {
        Outgoing::Parts(head, payloads)
    })
}

/// Starts a subscription: its task pushes messages with the subscribe's
/// correlation id until it is ended or the connection closes.
async fn subscribe(
    conn: &Rc<Connection>,
    id: u64,
    queue: gonets_types::ids::QueueId,
    credits: u32,
) -> Option<Vec<u8>> {
    if conn.subscriptions.borrow().len() >= SUBSCRIPTIONS_PER_CONNECTION_MAX
        || conn.subscriptions.borrow().contains_key(&id)
    {
        let e = HubError::Malformed(format!(
            "a connection holds at most {SUBSCRIPTIONS_PER_CONNECTION_MAX} subscriptions, each \
             with its own correlation id"
        ));
        return Some(error_frame(id, &ErrorReply::from_hub(&e)));
    }
    let lane = conn.session.lane_of_queue(&queue);
    let subscription = match conn.session.subscribe(queue, credits).await {
        Ok(s) => s,
        Err(e) => return Some(error_frame(id, &ErrorReply::from_hub(&e))),
    };
    let (commands, inbox) = local_channel::new_bounded(SUBSCRIPTION_COMMANDS_MAX);
    conn.subscriptions.borrow_mut().insert(
        id,
        SubscriptionEntry {
            commands: Rc::new(commands),
            lease_holder: subscription.lease_holder(),
        },
    );
    let header = h::Subscribed {
        subscription: id,
        credits_max: conn.credits_max,
    };
    conn.send(reply(Opcode::Subscribe, id, &header, &[])).await;
    // Deliveries to an rt provider are rt work; a bulk drain's are bulk's.
    lanes::spawn(lane, push_loop(conn.clone(), id, subscription, inbox)).detach();
    None
}

/// Pushes a subscription's messages and carries out its commands.
async fn push_loop(
    conn: Rc<Connection>,
    id: u64,
    mut subscription: Subscription,
    commands: LocalReceiver<SubscriptionCommand>,
) {
    enum Event {
        Message(Box<Result<Message, HubError>>),
        Command(Option<SubscriptionCommand>),
    }
    // Runs until unsubscribed, the connection closes or the hub stops.
    loop {
        let event = async { Event::Message(Box::new(subscription.recv().await)) }
            .or(async { Event::Command(commands.recv().await) })
            .await;
        match event {
            Event::Message(r) if r.is_ok() => {
                let Ok(m) = *r else { unreachable!() };
                let mut frame = Vec::with_capacity(256 + m.payload.len());
                gonets_proto::encode_push(&mut frame, id, &m);
                conn.send(frame).await;
            }
            Event::Message(r) => {
                let Err(e) = *r else { unreachable!() };
                conn.send(error_frame(id, &ErrorReply::from_hub(&e))).await;
                break;
            }
            Event::Command(Some(SubscriptionCommand::AddCredits {
                credits,
                correlation_id,
            })) => {
                let r = subscription.add_credits(credits).await;
                conn.send(done(Opcode::AddCredits, correlation_id, r)).await;
            }
            Event::Command(Some(SubscriptionCommand::Unsubscribe { correlation_id })) => {
                drop(subscription);
                conn.send(done(Opcode::Unsubscribe, correlation_id, Ok(())))
                    .await;
                return;
            }
            Event::Command(None) => break,
        }
    }
    conn.subscriptions.borrow_mut().remove(&id);
}

/// `AddCredits` and `Unsubscribe`: handed to the subscription's task.
async fn subscription_command(conn: &Rc<Connection>, mut frame: Frame) -> Result<(), Box<Fatal>> {
    let id = frame.header.correlation_id;
    macro_rules! parse {
        ($t:ty) => {
            match split(id, gonets_proto::request_header::<$t>(&mut frame.json))? {
                Ok(r) => r,
                Err(reply) => {
                    conn.send(error_frame(id, &reply)).await;
                    return Ok(());
                }
            }
        };
    }
    let (commands, command) = if frame.header.opcode == Opcode::AddCredits {
        let r = parse!(h::AddCredits);
        let commands = conn
            .subscriptions
            .borrow()
            .get(&r.subscription)
            .map(|e| e.commands.clone());
        let command = SubscriptionCommand::AddCredits {
            credits: r.credits,
            correlation_id: id,
        };
        (commands, command)
    } else {
        let r = parse!(h::Unsubscribe);
        // Removed at once, so acks naming its lease are refused from here on;
        // its task still gets the command (queued before the channel closes).
        let commands = conn
            .subscriptions
            .borrow_mut()
            .remove(&r.subscription)
            .map(|e| e.commands);
        (
            commands,
            SubscriptionCommand::Unsubscribe { correlation_id: id },
        )
    };
    // The subscription's task answers the command; only a missing one is answered here.
    let delivered = match commands {
        Some(tx) => tx.send(command).await.is_ok(),
        None => false,
    };
    if !delivered {
        conn.send(error_frame(id, &ErrorReply::from_hub(&HubError::NotFound)))
            .await;
    }
    Ok(())
}
