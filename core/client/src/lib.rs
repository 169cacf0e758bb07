//! The Rust client of the wire protocol (docs/protocol.md): one connection
//! per [`Client`]; operations keep DESIGN.md §2's names and return the
//! hub's typed errors. Runtime-free: it depends on the vocabulary
//! (gonets-types) and the wire format (gonets-proto) only, never on the
//! engine, storage or an async runtime.
//!
//! # Runtimes
//!
//! [`Client<R>`] runs on any [`Runtime`] `R` (a TCP connect, a timer and a
//! spawn); the connection code works over futures-io streams and TLS is
//! futures-rustls for every runtime. Two adapters, each behind a cargo
//! feature (none is on by default):
//! - `glommio`: `glommio::Client` (= `Client<Glommio>`), for the hub's
//!   own thread-per-core programs (the load generator, `gonets demo`, the
//!   admin commands, the tests). A client belongs to the executor that
//!   connected it (it is neither `Send` nor `Sync`); make one per core.
//! - `tokio`: `tokio::Client` (= `Client<Tokio>`), for tokio programs.
//!   It is `Send` and `Sync` and its futures are `Send`, so it can be
//!   shared between tasks and its calls spawned with `tokio::spawn`. It
//!   needs a runtime with I/O and time enabled.
//!
//! A tokio consumer (`gonets-client = { ..., features = ["tokio"] }`):
//!
//! ```no_run
//! # #[cfg(feature = "tokio")]
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use gonets_client::tokio::Client;
//! use gonets_client::{ClientConfig, ClientSecurity};
//! use gonets_types::{NewRequest, ParticipantId, QueueId};
//! use std::time::Duration;
//!
//! let runtime = tokio::runtime::Builder::new_current_thread()
//!     .enable_all()
//!     .build()?;
//! runtime.block_on(async {
//!     let security = ClientSecurity::DevToken {
//!         participant: "MFC".into(),
//!         token: "dev-mfc".into(),
//!     };
//!     let config = ClientConfig::new("127.0.0.1:7400".parse()?, security);
//!     let mfc = Client::connect(config).await?;
//!     let accepted = mfc
//!         .send_request(NewRequest::new("urn:gonets:fns:egrul-extract:1", "ogrn 1"))
//!         .await?;
//!     println!("accepted {}", accepted.id);
//!     // Later: the answer comes to the consumer's answers queue.
//!     let answers = QueueId::Answers(ParticipantId::new("MFC"));
//!     for answer in mfc.fetch(&answers, 10, Duration::from_secs(5)).await? {
//!         println!("answer to {:?}: {} bytes", answer.reply_to, answer.payload.len());
//!         mfc.ack(&answer).await?;
//!     }
//!     Ok::<(), Box<dyn std::error::Error>>(())
//! })
//! # }
//! # #[cfg(not(feature = "tokio"))]
//! # fn main() {}
//! ```
//!
//! With glommio the same code runs inside an executor
//! (`LocalExecutorBuilder::new(..).spawn(|| async { .. })`) with
//! `gonets_client::glommio::Client`.
//!
//! # Operations: one path
//!
//! Every operation is a vocabulary [`Command`] run by [`Client::execute`]:
//! it goes out through the wire mapping's `gonets_proto::encode_command`
//! and its reply comes back through `gonets_proto::decode_reply` as the
//! [`Reply`] of its [`Command::reply_kind`] (an `ERROR` frame as the hub's
//! typed [`HubError`] in [`ClientError::Hub`]). The client holds no second
//! spelling of any operation: the typed methods are one-line wrappers that
//! build the command and unwrap its reply into the vocabulary's types:
//!
//! | method | command | returns |
//! |---|---|---|
//! | `send_request` | `SendRequest` | [`Accepted`] |
//! | `call` | `Call` | [`Message`] |
//! | `fetch` | `Fetch` | `Vec<Message>` |
//! | `ack`, `nack` | `Ack`, `Nack` | `()` |
//! | `send_response`, `send_refusal` | `SendResponse`, `SendRefusal` | `()` |
//! | `status` | `Status` | [`StatusView`] |
//! | `queue_stats` | `QueueStats` | [`QueueStats`] |
//!
//! Paths of their own, as the protocol has no hub operation for them: the
//! hello (`Client::hello`), `ping`, and a subscription
//! ([`Client::subscribe`] sends the `Subscribe` command through the same
//! mapping, but its pushes need a [`ClientSubscription`]; they decode with
//! `gonets_proto::decode_push`; `add_credits` and `unsubscribe` are
//! connection-level requests).
//!
//! # What is delivered
//!
//! `fetch`, `call` and a subscription's `recv` hand out the vocabulary's
//! [`Message`]; its `reader` field is the lease holder the server sent,
//! which `ack` and `nack` send back.
//!
//! # Pipelining and reconnects
//!
//! Any number of operations may be awaited at once on one client; replies
//! are matched by correlation id. A dropped connection is re-established on
//! the next operation; `send_request` always carries an idempotency key
//! (made here when the caller gave none) and re-sends itself on the new
//! connection, so a drop never loses or duplicates a request. Other
//! operations report `Disconnected` and leave the retry to the caller
//! (leases of a dropped connection go back to their queue by themselves).
//!
//! Shard-aware mode ([`ShardAwareClient`]): one connection per shard to the
//! shard's own port, each command sent to the shard that owns it
//! ([`Command::shard`]: its queue's, or the one its message id names).
//!
//! Modules: `runtime` (the [`Runtime`] trait, the connection task), `link`
//! (one live connection: frames out, frames routed back by correlation
//! id), `shard_aware`, and the adapters `glommio` and `tokio`.

mod attachments;
#[cfg(feature = "glommio")]
pub mod glommio;
mod link;
pub mod runtime;
mod shard_aware;
mod signing;
#[cfg(feature = "tokio")]
pub mod tokio;

pub use attachments::AttachmentSource;
pub use gonets_types::Message;
pub use runtime::Runtime;
pub use shard_aware::ShardAwareClient;
pub use signing::SigningKey;

use bytes::Bytes;
use gonets_proto::header as h;
use gonets_proto::{encode_command, BadReply, Limits, Opcode, READER_OF_SESSION};
use gonets_types::error::HubError;
use gonets_types::ids::{MessageId, ParticipantId, QueueId};
use gonets_types::refusal::RefusalCode;
use gonets_types::{
    Accepted, AcceptedMany, AckedMany, AttachmentRef, Command, NewRequest, ProviderNotice,
    QueueStats, Reply, ReplyContent, StatusView,
};
use link::{lock, Link};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Default bound of one operation's wait for its reply, ms (plus a fetch's wait).
pub const REQUEST_TIMEOUT_MS_DEFAULT: u64 = 30_000;
/// Default connection attempts of one `send_request` before it gives up.
pub const RECONNECT_ATTEMPTS_MAX_DEFAULT: u32 = 8;
/// Default pause between connection attempts, ms (doubled each time, up to 2 s).
pub const RECONNECT_BACKOFF_MS_DEFAULT: u64 = 50;

/// How the client proves who it is.
#[derive(Clone)]
pub enum ClientSecurity {
    /// Mutual TLS with this configuration; `server_name` is checked against
    /// the server's certificate.
    Tls {
        /// The rustls configuration (see `gonets_server::tls::client_config`).
        config: Arc<rustls::ClientConfig>,
        /// The name the server certificate must carry (e.g. "localhost").
        server_name: String,
    },
    /// Development mode (plain TCP on loopback): participant and token.
    DevToken {
        /// The participant.
        participant: String,
        /// Its token.
        token: String,
    },
}

impl std::fmt::Debug for ClientSecurity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientSecurity::Tls { server_name, .. } => write!(f, "Tls({server_name})"),
            ClientSecurity::DevToken { participant, .. } => write!(f, "DevToken({participant})"),
        }
    }
}

/// Where and how to connect.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// The server's address (its shared port, or a shard's own port).
    pub addr: SocketAddr,
    /// TLS or development token.
    pub security: ClientSecurity,
    /// Largest frames accepted from the server.
    pub limits: Limits,
    /// Longest wait for a reply, ms (a fetch adds its own wait).
    pub request_timeout_ms: u64,
    /// Connection attempts of one `send_request` before it reports `Disconnected`.
    pub reconnect_attempts_max: u32,
    /// First pause between attempts, ms.
    pub reconnect_backoff_ms: u64,
    /// When set, every send, call, batch and answer is signed with it
    /// ([`ClientConfig::with_signing_key`]).
    pub signing: Option<SigningKey>,
}

impl ClientConfig {
    /// Defaults for `addr` and `security`.
    pub fn new(addr: SocketAddr, security: ClientSecurity) -> ClientConfig {
        ClientConfig {
            addr,
            security,
            limits: Limits {
                header_bytes_max: 64 * 1024 * 1024,
                body_bytes_max: 1024 * 1024 * 1024,
            },
            request_timeout_ms: REQUEST_TIMEOUT_MS_DEFAULT,
            reconnect_attempts_max: RECONNECT_ATTEMPTS_MAX_DEFAULT,
            reconnect_backoff_ms: RECONNECT_BACKOFF_MS_DEFAULT,
            signing: None,
        }
    }

    /// The same configuration, signing every send, call, batch (once) and
    /// answer with the participant's registered key `key_id`
    /// (docs/adr/0019). The sender the digests name is the participant
    /// the hub authenticated the connection as.
    pub fn with_signing_key(
        mut self,
        key_id: &str,
        signer: Arc<dyn gonets_trust::Signer>,
    ) -> ClientConfig {
        self.signing = Some(SigningKey {
            key_id: key_id.to_owned(),
            signer,
        });
        self
    }
}

/// Why a client operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The hub refused the operation (its typed error).
    #[error(transparent)]
    Hub(#[from] HubError),
    /// The server reported a protocol error (stable code name and text).
    #[error("protocol error {code}: {message}")]
    Protocol {
        /// Stable code name.
        code: String,
        /// Text.
        message: String,
    },
    /// The connection dropped before the reply came (or could not be made).
    #[error("disconnected: {0}")]
    Disconnected(String),
    /// No reply within the request timeout.
    #[error("no reply within {0} ms")]
    Timeout(u64),
    /// The TLS handshake failed.
    #[error("TLS: {0}")]
    Tls(String),
    /// The server's reply does not make sense.
    #[error("bad reply: {0}")]
    BadReply(String),
    /// The command cannot run through [`Client::execute`] (the text says
    /// which method runs it).
    #[error("not executable: {0}")]
    NotExecutable(&'static str),
    /// An attachment's bytes could not be read from their source, or
    /// handed to their sink.
    #[error("attachment bytes: {0}")]
    Io(String),
}

impl From<BadReply> for ClientError {
    /// The wire mapping's "the server broke the protocol".
    fn from(BadReply(why): BadReply) -> ClientError {
        ClientError::BadReply(why)
    }
}

/// A connection to a gonets server, on runtime `R` (see the crate docs;
/// `glommio::Client` and `tokio::Client` name the two adapters' clients).
/// Cheap to clone: clones share the connection. `Send` and `Sync` when
/// the runtime type is (`Tokio`, not `Glommio`).
pub struct Client<R: Runtime> {
    inner: Arc<ClientInner<R>>,
}

impl<R: Runtime> Clone for Client<R> {
    fn clone(&self) -> Self {
        Client {
            inner: self.inner.clone(),
        }
    }
}

struct ClientInner<R: Runtime> {
    config: ClientConfig,
    link: Mutex<Option<Arc<Link<R>>>>,
    /// Serialises reconnects: one at a time, the others wait for it.
    connecting: Turnstile,
    /// Connections made so far (1 after `connect`).
    connections: AtomicU64,
}

/// A runtime-free async lock of one holder: a channel of one token.
struct Turnstile {
    give: flume::Sender<()>,
    take: flume::Receiver<()>,
}

/// Holding the turnstile's token; gives it back on drop.
struct Turn<'a>(&'a Turnstile);

impl Turnstile {
    fn new() -> Turnstile {
        let (give, take) = flume::bounded(1);
        give.try_send(())
            .expect("an empty channel of one takes the token");
        Turnstile { give, take }
    }

    async fn enter(&self) -> Turn<'_> {
        // Both ends live in `self`: the channel cannot disconnect.
        let _ = self.take.recv_async().await;
        Turn(self)
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        let _ = self.0.give.try_send(());
    }
}

impl<R: Runtime> std::fmt::Debug for Client<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("addr", &self.inner.config.addr)
            .field("connections", &self.connections())
            .finish()
    }
}

impl<R: Runtime> Client<R> {
    /// Connects, authenticates and negotiates the protocol version.
    pub async fn connect(config: ClientConfig) -> Result<Client<R>, ClientError> {
        let link = Link::open(&config).await?;
        Ok(Client {
            inner: Arc::new(ClientInner {
                config,
                link: Mutex::new(Some(Arc::new(link))),
                connecting: Turnstile::new(),
                connections: AtomicU64::new(1),
            }),
        })
    }

    /// The server's hello reply on the current connection.
    pub fn hello(&self) -> Option<h::HelloOk> {
        lock(&self.inner.link).as_ref().map(|l| l.hello.clone())
    }

    /// Connections made so far (more than 1 after reconnects).
    pub fn connections(&self) -> u64 {
        self.inner.connections.load(Ordering::Relaxed)
    }

    /// Drops the current connection (as a network failure would); the next
    /// operation reconnects. For tests and for clients that rebalance.
    pub fn disconnect(&self) {
        let link = lock(&self.inner.link).take();
        if let Some(link) = link {
            link.close("closed by the client");
        }
    }

    /// The current connection if it is open.
    fn open_link(&self) -> Option<Arc<Link<R>>> {
        lock(&self.inner.link)
            .as_ref()
            .filter(|l| l.is_open())
            .cloned()
    }

    /// The live connection, reconnecting if it dropped.
    async fn link(&self) -> Result<Arc<Link<R>>, ClientError> {
        if let Some(l) = self.open_link() {
            return Ok(l);
        }
        let _turn = self.inner.connecting.enter().await;
        if let Some(l) = self.open_link() {
            return Ok(l);
        }
        let link = Arc::new(Link::open(&self.inner.config).await?);
        self.inner.connections.fetch_add(1, Ordering::Relaxed);
        *lock(&self.inner.link) = Some(link.clone());
        Ok(link)
    }

    /// Runs one operation: `command` goes out through the wire mapping
    /// ([`gonets_proto::encode_command`]) and its reply comes back through
    /// it ([`gonets_proto::decode_reply`]) as the [`Reply`] of the
    /// command's [`Command::reply_kind`]; an `Error` frame comes back as
    /// the hub's typed error. The typed methods below are thin wrappers.
    ///
    /// A `SendRequest` always carries an idempotency key (made here when
    /// the command has none) and is re-sent on a new connection when the
    /// connection drops, up to `reconnect_attempts_max` times, so a drop
    /// never loses or duplicates it. Any other command reports
    /// `Disconnected`. A `Fetch` waits its own `wait_ms` on top of the
    /// request timeout. A `Subscribe` is refused (`NotExecutable`): its
    /// pushes need the [`ClientSubscription`] of [`Client::subscribe`].
    pub async fn execute(&self, command: Command) -> Result<Reply, ClientError> {
        let (command, resend) = prepared(command)?;
        let command = self.signed(command);
        let mut backoff_ms = self.inner.config.reconnect_backoff_ms;
        let mut attempt = 0;
        // Bounded by reconnect_attempts_max.
        loop {
            attempt += 1;
            match self.execute_once(&command).await {
                Err(ClientError::Disconnected(why)) if resend => {
                    if attempt >= self.inner.config.reconnect_attempts_max {
                        return Err(ClientError::Disconnected(format!(
                            "{why} (after {attempt} attempts)"
                        )));
                    }
                    R::sleep(Duration::from_millis(backoff_ms)).await;
                    backoff_ms = (backoff_ms * 2).min(2000);
                }
                result => return result,
            }
        }
    }

    /// `command` signed when the configuration has a signing key (after
    /// `prepared`: the idempotency key it adds is signed too). Signed once,
    /// so a resend after a reconnect carries the same signature.
    fn signed(&self, command: Command) -> Command {
        let Some(key) = &self.inner.config.signing else {
            return command;
        };
        match self.hello() {
            Some(hello) => signing::signed(command, &ParticipantId::new(&hello.participant), key),
            // Connected clients always have a hello.
            None => command,
        }
    }

    /// One request, one reply, on the current connection.
    async fn execute_once(&self, command: &Command) -> Result<Reply, ClientError> {
        let extra_wait_ms = match command {
            Command::Fetch { wait_ms, .. } => *wait_ms,
            _ => 0,
        };
        let link = self.link().await?;
        let encode = |out: &mut Vec<u8>, id| {
            encode_command(out, id, command);
        };
        let timeout_ms = self
            .inner
            .config
            .request_timeout_ms
            .saturating_add(extra_wait_ms);
        let mut frame = link.ask(encode, timeout_ms).await?;
        link::reply_of(command.reply_kind(), &mut frame)
    }

    /// [`Client::execute`] of a command whose reply is a `T`.
    async fn run<T: ReplyContent>(&self, command: Command) -> Result<T, ClientError> {
        expect_kind::<T>(&command);
        let reply = self.execute(command).await?;
        // `decode_reply` answers the kind it is asked for.
        Ok(T::from_reply(reply)
            .unwrap_or_else(|other| unreachable!("a {other:?} reply for {:?}", T::KIND)))
    }

    /// Sends a request; `Accepted` once durable. Survives reconnects
    /// without duplicates (idempotency key, see [`Client::execute`]). Its
    /// own end of life, earlier than its kind's deadline:
    /// `NewRequest::expiring_in` (docs/protocol.md, "Per-request expiry").
    pub async fn send_request(&self, request: NewRequest) -> Result<Accepted, ClientError> {
        self.run(Command::SendRequest(request)).await
    }

    /// The realtime path: the answer within the data kind's budget.
    pub async fn call(&self, request: NewRequest) -> Result<Message, ClientError> {
        self.run(Command::Call(request)).await
    }

    /// Long-poll: up to `max` messages of `queue`, waiting up to `wait` for the first.
    pub async fn fetch(
        &self,
        queue: &QueueId,
        max: u32,
        wait: Duration,
    ) -> Result<Vec<Message>, ClientError> {
        self.run(commands::fetch(queue, max, wait)).await
    }

    /// Push delivery of `queue` with `credits` messages in flight. Ends
    /// with the connection (no resubscribe on reconnect).
    pub async fn subscribe(
        &self,
        queue: &QueueId,
        credits: u32,
    ) -> Result<ClientSubscription<R>, ClientError> {
        let link = self.link().await?;
        let command = Command::Subscribe {
            queue: queue.clone(),
            credits,
            // Not sent: the server's session picks the reader.
            reader: READER_OF_SESSION,
        };
        let (id, pushes) = link
            .subscribe(&command, self.inner.config.request_timeout_ms)
            .await?;
        Ok(ClientSubscription {
            client: self.clone(),
            link,
            id,
            pushes,
        })
    }

    /// Ends a lease: the message is done. `m.reader` names the lease holder.
    pub async fn ack(&self, m: &Message) -> Result<(), ClientError> {
        self.run(commands::ack(m)).await
    }

    /// Ends a lease: deliver again after `delay`.
    pub async fn nack(&self, m: &Message, delay: Duration) -> Result<(), ClientError> {
        self.run(commands::nack(m, delay)).await
    }

    /// Sends many requests of one data kind in one frame (at most
    /// [`gonets_types::BATCH_MESSAGES_MAX`]); one result per request, in
    /// order, once every accepted one is durable. Each request carries an
    /// idempotency key (made here when it has none), so the batch is re-sent
    /// after a dropped connection without duplicates, as `send_request` is.
    pub async fn send_requests(
        &self,
        requests: Vec<NewRequest>,
    ) -> Result<AcceptedMany, ClientError> {
        self.run(Command::SendRequests(requests)).await
    }

    /// Ends the leases of many messages of one requests queue, fetched
    /// under one lease holder, in one frame; once durable, the ids that
    /// were not acked, with why (empty: all done).
    pub async fn ack_many(&self, messages: &[Message]) -> Result<AckedMany, ClientError> {
        self.run(commands::ack_many(messages)?).await
    }

    /// Ends the leases of many messages of one queue, fetched under one
    /// lease holder, in one frame (one log record for a requests queue):
    /// each is delivered again after `delay`. Once durable, the ids that
    /// were not nacked, with why (empty: all done).
    pub async fn nack_many(
        &self,
        messages: &[Message],
        delay: Duration,
    ) -> Result<AckedMany, ClientError> {
        self.run(commands::nack_many(messages, delay)?).await
    }

    /// The provider's data answer; returns once durable.
    pub async fn send_response(
        &self,
        request_id: MessageId,
        payload: impl Into<Bytes>,
    ) -> Result<(), ClientError> {
        self.send_response_attached(request_id, payload, Vec::new())
            .await
    }

    /// The provider's data answer carrying attachments it uploaded before
    /// ([`Client::upload_attachment`]); the request's consumer may read
    /// them. Returns once durable.
    pub async fn send_response_attached(
        &self,
        request_id: MessageId,
        payload: impl Into<Bytes>,
        attachments: Vec<AttachmentRef>,
    ) -> Result<(), ClientError> {
        self.run(Command::SendResponse {
            request_id,
            payload: payload.into(),
            attachments,
        })
        .await
    }

    /// The provider's refusal; returns once durable.
    pub async fn send_refusal(
        &self,
        request_id: MessageId,
        code: RefusalCode,
        reason: &str,
    ) -> Result<(), ClientError> {
        self.run(commands::refusal(request_id, code, reason)).await
    }

    /// A message's history (by its request's or its answer's id).
    pub async fn status(&self, id: MessageId) -> Result<StatusView, ClientError> {
        self.run(Command::Status { id }).await
    }

    /// The notice a waiting request carries, if any: its provider is
    /// unreachable (docs/protocol.md, "Notices"). The request is kept and
    /// delivered if the provider comes back before its deadline.
    pub async fn notice(&self, id: MessageId) -> Result<Option<ProviderNotice>, ClientError> {
        Ok(self.status(id).await?.notice)
    }

    /// A queue's depth, in-flight count and oldest age.
    pub async fn queue_stats(&self, queue: &QueueId) -> Result<QueueStats, ClientError> {
        let queue = queue.clone();
        self.run(Command::QueueStats { queue }).await
    }

    /// A round trip (connection-level: no operation on the hub).
    pub async fn ping(&self) -> Result<(), ClientError> {
        let link = self.link().await?;
        link.connection_request(
            Opcode::Ping,
            &h::Empty {},
            self.inner.config.request_timeout_ms,
        )
        .await
    }

    /// Closes the connection.
    pub fn close(self) {
        self.disconnect();
    }
}

/// `command` as it goes out, and whether it is re-sent after a drop: a
/// `SendRequest` gets an idempotency key when it has none (and is re-sent:
/// the key makes a repeat harmless); a `Subscribe` is refused (see
/// [`Client::execute`]).
fn prepared(mut command: Command) -> Result<(Command, bool), ClientError> {
    let resend = match &mut command {
        Command::SendRequest(r) => {
            r.idempotency_key
                .get_or_insert_with(|| uuid::Uuid::now_v7().to_string());
            true
        }
        Command::SendRequests(rs) => {
            // The wire carries the kind once: a mixed batch never leaves.
            gonets_types::check_send_batch(rs).map_err(|e| ClientError::Hub(e.into()))?;
            for r in rs.iter_mut() {
                r.idempotency_key
                    .get_or_insert_with(|| uuid::Uuid::now_v7().to_string());
            }
            true
        }
        Command::Subscribe { .. } => {
            return Err(ClientError::NotExecutable(
                "subscribe with Client::subscribe: its pushes need a ClientSubscription",
            ))
        }
        _ => false,
    };
    Ok((command, resend))
}

/// The commands of the typed methods whose arguments are not the
/// command's fields as they are (shared with [`ShardAwareClient`]).
mod commands {
    use super::*;
    use gonets_types::ReaderId;

    /// Whole milliseconds of `d`, saturated.
    fn ms(d: Duration) -> u64 {
        u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
    }

    pub(crate) fn fetch(queue: &QueueId, max: u32, wait: Duration) -> Command {
        Command::Fetch {
            queue: queue.clone(),
            max,
            wait_ms: ms(wait),
            // Not sent: the server's session picks the reader.
            reader: READER_OF_SESSION,
        }
    }

    /// The lease holder the server sent (`m.reader`) goes back.
    pub(crate) fn ack(m: &Message) -> Command {
        Command::Ack {
            queue: m.queue.clone(),
            id: m.id,
            reader: m.reader,
        }
    }

    /// One `AckMany` of `messages`: one queue and one lease holder (that
    /// of the first), else refused here; an empty list is refused here as
    /// the hub would refuse an empty batch.
    pub(crate) fn ack_many(messages: &[Message]) -> Result<Command, ClientError> {
        let (queue, ids, reader) = one_lease("ack_many", messages)?;
        Ok(Command::AckMany { queue, ids, reader })
    }

    /// One `NackMany` of `messages`, checked as [`ack_many`] checks them.
    pub(crate) fn nack_many(messages: &[Message], delay: Duration) -> Result<Command, ClientError> {
        let (queue, ids, reader) = one_lease("nack_many", messages)?;
        Ok(Command::NackMany {
            queue,
            ids,
            reader,
            delay_ms: ms(delay),
        })
    }

    /// The queue, ids and lease holder of a batch settling `messages`,
    /// which must share one queue and one lease holder (that of the first).
    fn one_lease(
        operation: &str,
        messages: &[Message],
    ) -> Result<(QueueId, Vec<MessageId>, ReaderId), ClientError> {
        let Some(first) = messages.first() else {
            return Err(ClientError::Hub(gonets_types::BatchError::Empty.into()));
        };
        if let Some(m) = messages
            .iter()
            .find(|m| m.queue != first.queue || m.reader != first.reader)
        {
            return Err(ClientError::Hub(HubError::Malformed(format!(
                "{operation} takes messages of one queue and one lease holder; {} is from {} \
                 under lease {}",
                m.id, m.queue, m.reader
            ))));
        }
        let ids = messages.iter().map(|m| m.id).collect();
        Ok((first.queue.clone(), ids, first.reader))
    }

    pub(crate) fn nack(m: &Message, delay: Duration) -> Command {
        Command::Nack {
            queue: m.queue.clone(),
            id: m.id,
            reader: m.reader,
            delay_ms: ms(delay),
        }
    }

    pub(crate) fn refusal(request_id: MessageId, code: RefusalCode, reason: &str) -> Command {
        Command::SendRefusal {
            request_id,
            code,
            reason: reason.into(),
        }
    }
}

/// Asserts that `command` is answered with a `T`: the typed methods
/// pair each command with its reply's type, as `Command::reply_kind` does.
fn expect_kind<T: ReplyContent>(command: &Command) {
    assert_eq!(
        T::KIND,
        command.reply_kind(),
        "an operation awaited as the wrong reply: {command:?}"
    );
}

/// Messages of one queue pushed as credits allow (see [`Client::subscribe`]).
pub struct ClientSubscription<R: Runtime> {
    client: Client<R>,
    link: Arc<Link<R>>,
    id: u64,
    pushes: flume::Receiver<Result<gonets_proto::Frame, ClientError>>,
}

impl<R: Runtime> ClientSubscription<R> {
    /// The next pushed message; `Disconnected` once the connection dropped.
    pub async fn recv(&mut self) -> Result<Message, ClientError> {
        match self.pushes.recv_async().await {
            Ok(Ok(mut f)) => gonets_proto::decode_push(&mut f).map_err(ClientError::from),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(ClientError::Disconnected("the connection closed".into())),
        }
    }

    /// Allows `credits` more messages in flight (connection-level: the
    /// subscription is this connection's).
    pub async fn add_credits(&self, credits: u32) -> Result<(), ClientError> {
        let header = h::AddCredits {
            subscription: self.id,
            credits,
        };
        let timeout_ms = self.client.inner.config.request_timeout_ms;
        self.link
            .connection_request(Opcode::AddCredits, &header, timeout_ms)
            .await
    }

    /// Ends the subscription; its unacked messages go back to the queue.
    pub async fn unsubscribe(self) -> Result<(), ClientError> {
        let header = h::Unsubscribe {
            subscription: self.id,
        };
        self.link.end_subscription(self.id);
        let timeout_ms = self.client.inner.config.request_timeout_ms;
        self.link
            .connection_request(Opcode::Unsubscribe, &header, timeout_ms)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gonets_types::ParticipantId;

    #[test]
    fn given_a_send_request_without_a_key_when_prepared_then_it_gets_one_and_is_resent_after_a_drop(
    ) {
        let (command, resend) =
            prepared(Command::SendRequest(NewRequest::new("urn:k:1", "x"))).expect("runs");
        assert!(resend);
        assert!(
            matches!(&command, Command::SendRequest(r) if r.idempotency_key.as_deref().is_some_and(|k| !k.is_empty())),
            "{command:?}"
        );
        let mut keyed = NewRequest::new("urn:k:1", "x");
        keyed.idempotency_key = Some("mine".into());
        let (command, _) = prepared(Command::SendRequest(keyed.clone())).expect("runs");
        assert_eq!(
            command,
            Command::SendRequest(keyed),
            "the caller's key is kept"
        );
    }

    #[test]
    fn given_other_commands_when_prepared_then_they_go_out_as_they_are_and_only_once() {
        let call = Command::Call(NewRequest::new("urn:k:1", "x"));
        let (command, resend) = prepared(call.clone()).expect("runs");
        assert_eq!(command, call, "a call gets no key");
        assert!(!resend);
        let stats = Command::QueueStats {
            queue: QueueId::Answers(ParticipantId::new("MFC")),
        };
        assert!(!prepared(stats).expect("runs").1);
    }

    #[test]
    fn given_a_subscribe_when_executed_then_not_executable_not_a_subscription_without_a_receiver() {
        let subscribe = Command::Subscribe {
            queue: QueueId::Answers(ParticipantId::new("MFC")),
            credits: 1,
            reader: READER_OF_SESSION,
        };
        assert!(matches!(
            prepared(subscribe),
            Err(ClientError::NotExecutable(_))
        ));
    }

    #[test]
    fn given_each_typed_reply_when_paired_then_its_kind_is_the_one_its_command_gets() {
        let m = QueueId::Answers(ParticipantId::new("MFC"));
        let id = MessageId::new(1, 0, 1);
        expect_kind::<Accepted>(&Command::SendRequest(NewRequest::new("urn:k:1", "x")));
        expect_kind::<Message>(&Command::Call(NewRequest::new("urn:k:1", "x")));
        expect_kind::<Vec<Message>>(&commands::fetch(&m, 1, Duration::ZERO));
        expect_kind::<()>(&commands::refusal(id, RefusalCode::NoData, ""));
        expect_kind::<StatusView>(&Command::Status { id });
        expect_kind::<QueueStats>(&Command::QueueStats { queue: m });
    }
}
