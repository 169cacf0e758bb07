//! The Rust client of the wire protocol: glommio-based, one connection per
//! `Client`, used from one executor (make one per core). Operations keep
//! DESIGN.md §2's names and return the hub's typed errors.
//!
//! Pipelining: any number of operations may be awaited at once on one
//! client; replies are matched by correlation id. A dropped connection is
//! re-established on the next operation; `send_request` always carries an
//! idempotency key (made here when the caller gave none) and re-sends itself
//! on the new connection, so a drop never loses or duplicates a request.
//! Other operations report `Disconnected` and leave the retry to the caller
//! (leases of a dropped connection go back to their queue by themselves).
//!
//! Shard-aware mode ([`ShardAwareClient`]): one connection per shard to the
//! shard's own port, each operation sent to the shard owning its queue or
//! message.
//!
//! Modules: `link` (one live connection), `message` (what is delivered),
//! `shard_aware`.

mod link;
mod message;
mod shard_aware;
mod within;

pub use message::Delivered;
pub use shard_aware::ShardAwareClient;

use bytes::Bytes;
use gonets_proto::header as h;
use gonets_proto::{Limits, Opcode};
use gonets_types::error::HubError;
use gonets_types::ids::{MessageId, QueueId};
use gonets_types::refusal::RefusalCode;
use gonets_types::NewRequest;
use link::Link;
use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
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
        }
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
}

/// A connection to a gonets server (one executor's; not `Send`).
#[derive(Clone)]
pub struct Client {
    inner: Rc<ClientInner>,
}

struct ClientInner {
    config: ClientConfig,
    link: RefCell<Option<Rc<Link>>>,
    /// Serialises reconnects: one at a time, the others wait for it.
    connecting: glommio::sync::Semaphore,
    /// Connections made so far (1 after `connect`).
    connections: Cell<u64>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("addr", &self.inner.config.addr)
            .field("connections", &self.inner.connections.get())
            .finish()
    }
}

impl Client {
    /// Connects, authenticates and negotiates the protocol version.
    pub async fn connect(config: ClientConfig) -> Result<Client, ClientError> {
        let link = Link::open(&config).await?;
        Ok(Client {
            inner: Rc::new(ClientInner {
                config,
                link: RefCell::new(Some(Rc::new(link))),
                connecting: glommio::sync::Semaphore::new(1),
                connections: Cell::new(1),
            }),
        })
    }

    /// The server's hello reply on the current connection.
    pub fn hello(&self) -> Option<h::HelloOk> {
        self.inner.link.borrow().as_ref().map(|l| l.hello.clone())
    }

    /// Connections made so far (more than 1 after reconnects).
    pub fn connections(&self) -> u64 {
        self.inner.connections.get()
    }

    /// Drops the current connection (as a network failure would); the next
    /// operation reconnects. For tests and for clients that rebalance.
    pub fn disconnect(&self) {
        if let Some(link) = self.inner.link.borrow_mut().take() {
            link.close("closed by the client");
        }
    }

    /// The live connection, reconnecting if it dropped.
    async fn link(&self) -> Result<Rc<Link>, ClientError> {
        if let Some(l) = self.inner.link.borrow().as_ref().filter(|l| l.is_open()) {
            return Ok(l.clone());
        }
        let _turn = self
            .inner
            .connecting
            .acquire_permit(1)
            .await
            .map_err(|e| ClientError::Disconnected(e.to_string()))?;
        if let Some(l) = self.inner.link.borrow().as_ref().filter(|l| l.is_open()) {
            return Ok(l.clone());
        }
        let link = Rc::new(Link::open(&self.inner.config).await?);
        self.inner.connections.set(self.inner.connections.get() + 1);
        *self.inner.link.borrow_mut() = Some(link.clone());
        Ok(link)
    }

    /// One request, one reply, on the current connection.
    async fn ask<T: serde::Serialize>(
        &self,
        op: Opcode,
        header: &T,
        body: &[&[u8]],
        extra_wait_ms: u64,
    ) -> Result<gonets_proto::Frame, ClientError> {
        let link = self.link().await?;
        link.ask(
            op,
            header,
            body,
            self.inner.config.request_timeout_ms + extra_wait_ms,
        )
        .await
    }

    /// Sends a request; `Accepted` once durable. Survives reconnects
    /// without duplicates (idempotency key).
    pub async fn send_request(&self, mut request: NewRequest) -> Result<h::Accepted, ClientError> {
        let key = request
            .idempotency_key
            .get_or_insert_with(|| uuid::Uuid::now_v7().to_string())
            .clone();
        let header = h::SendRequest {
            kind: request.kind.to_string(),
            idempotency_key: Some(key),
            test: request.test,
            transaction: request.transaction.clone(),
            state_secret: request.state_secret,
        };
        let mut backoff_ms = self.inner.config.reconnect_backoff_ms;
        let mut attempt = 0;
        // Bounded by reconnect_attempts_max.
        loop {
            attempt += 1;
            match self
                .ask(Opcode::SendRequest, &header, &[&request.payload], 0)
                .await
            {
                Ok(mut f) => return parse(&mut f),
                Err(ClientError::Disconnected(why)) => {
                    if attempt >= self.inner.config.reconnect_attempts_max {
                        return Err(ClientError::Disconnected(format!(
                            "{why} (after {attempt} attempts)"
                        )));
                    }
                    glommio::timer::sleep(Duration::from_millis(backoff_ms)).await;
                    backoff_ms = (backoff_ms * 2).min(2000);
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The realtime path: the answer within the data kind's budget.
    pub async fn call(&self, request: NewRequest) -> Result<Delivered, ClientError> {
        let header = h::SendRequest {
            kind: request.kind.to_string(),
            idempotency_key: request.idempotency_key.clone(),
            test: request.test,
            transaction: request.transaction.clone(),
            state_secret: request.state_secret,
        };
        let mut f = self
            .ask(Opcode::Call, &header, &[&request.payload], 0)
            .await?;
        let mut messages = Delivered::from_frame(&mut f)?;
        if messages.len() != 1 {
            return Err(ClientError::BadReply(format!(
                "a call's reply carries {} messages",
                messages.len()
            )));
        }
        Ok(messages.remove(0))
    }

    /// Long-poll: up to `max` messages of `queue`, waiting up to `wait` for the first.
    pub async fn fetch(
        &self,
        queue: &QueueId,
        max: u32,
        wait: Duration,
    ) -> Result<Vec<Delivered>, ClientError> {
        let wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX);
        let header = h::Fetch {
            queue: gonets_proto::queue_name(queue),
            max,
            wait_ms,
        };
        let mut f = self.ask(Opcode::Fetch, &header, &[], wait_ms).await?;
        Delivered::from_frame(&mut f)
    }

    /// Push delivery of `queue` with `credits` messages in flight. Ends
    /// with the connection (no resubscribe on reconnect).
    pub async fn subscribe(
        &self,
        queue: &QueueId,
        credits: u32,
    ) -> Result<ClientSubscription, ClientError> {
        let link = self.link().await?;
        let header = h::Subscribe {
            queue: gonets_proto::queue_name(queue),
            credits,
        };
        let (id, pushes) = link
            .subscribe(&header, self.inner.config.request_timeout_ms)
            .await?;
        Ok(ClientSubscription {
            client: self.clone(),
            link,
            id,
            pushes,
        })
    }

    /// Ends a lease: the message is done.
    pub async fn ack(&self, m: &Delivered) -> Result<(), ClientError> {
        let header = h::Settle {
            queue: gonets_proto::queue_name(&m.queue),
            id: m.id.to_string(),
            lease: m.lease,
            delay_ms: 0,
        };
        self.ask(Opcode::Ack, &header, &[], 0).await.map(drop)
    }

    /// Ends a lease: deliver again after `delay`.
    pub async fn nack(&self, m: &Delivered, delay: Duration) -> Result<(), ClientError> {
        let header = h::Settle {
            queue: gonets_proto::queue_name(&m.queue),
            id: m.id.to_string(),
            lease: m.lease,
            delay_ms: u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
        };
        self.ask(Opcode::Nack, &header, &[], 0).await.map(drop)
    }

    /// The provider's data answer; returns once durable.
    pub async fn send_response(
        &self,
        request_id: MessageId,
        payload: impl Into<Bytes>,
    ) -> Result<(), ClientError> {
        let header = h::SendResponse {
            request_id: request_id.to_string(),
        };
        let payload = payload.into();
        self.ask(Opcode::SendResponse, &header, &[&payload], 0)
            .await
            .map(drop)
    }

    /// The provider's refusal; returns once durable.
    pub async fn send_refusal(
        &self,
        request_id: MessageId,
        code: RefusalCode,
        reason: &str,
    ) -> Result<(), ClientError> {
        let header = h::SendRefusal {
            request_id: request_id.to_string(),
            code: code.as_str().into(),
            reason: reason.into(),
        };
        self.ask(Opcode::SendRefusal, &header, &[], 0)
            .await
            .map(drop)
    }

    /// A message's history.
    pub async fn status(&self, id: MessageId) -> Result<h::StatusReply, ClientError> {
        let header = h::Status { id: id.to_string() };
        parse(&mut self.ask(Opcode::Status, &header, &[], 0).await?)
    }

    /// A queue's depth, in-flight count and oldest age.
    pub async fn queue_stats(&self, queue: &QueueId) -> Result<h::QueueStatsReply, ClientError> {
        let header = h::QueueStats {
            queue: gonets_proto::queue_name(queue),
        };
        parse(&mut self.ask(Opcode::QueueStats, &header, &[], 0).await?)
    }

    /// A round trip.
    pub async fn ping(&self) -> Result<(), ClientError> {
        self.ask(Opcode::Ping, &h::Empty {}, &[], 0).await.map(drop)
    }

    /// Closes the connection.
    pub fn close(self) {
        self.disconnect();
    }
}

/// Parses a reply's JSON header.
fn parse<T: serde::de::DeserializeOwned>(f: &mut gonets_proto::Frame) -> Result<T, ClientError> {
    gonets_proto::parse_header(&mut f.json).map_err(|e| ClientError::BadReply(e.to_string()))
}

/// Messages of one queue pushed as credits allow (see [`Client::subscribe`]).
pub struct ClientSubscription {
    client: Client,
    link: Rc<Link>,
    id: u64,
    pushes:
        glommio::channels::local_channel::LocalReceiver<Result<gonets_proto::Frame, ClientError>>,
}

impl ClientSubscription {
    /// The next pushed message; `Disconnected` once the connection dropped.
    pub async fn recv(&mut self) -> Result<Delivered, ClientError> {
        match self.pushes.recv().await {
            Some(Ok(mut f)) => {
                let header: h::MessageHeader = parse(&mut f)?;
                Delivered::from_header(header, f.body)
            }
            Some(Err(e)) => Err(e),
            None => Err(ClientError::Disconnected("the connection closed".into())),
        }
    }

    /// Allows `credits` more messages in flight.
    pub async fn add_credits(&self, credits: u32) -> Result<(), ClientError> {
        let header = h::AddCredits {
            subscription: self.id,
            credits,
        };
        self.link
            .ask(
                Opcode::AddCredits,
                &header,
                &[],
                self.client.inner.config.request_timeout_ms,
            )
            .await
            .map(drop)
    }

    /// Ends the subscription; its unacked messages go back to the queue.
    pub async fn unsubscribe(self) -> Result<(), ClientError> {
        let header = h::Unsubscribe {
            subscription: self.id,
        };
        self.link.end_subscription(self.id);
        self.link
            .ask(
                Opcode::Unsubscribe,
                &header,
                &[],
                self.client.inner.config.request_timeout_ms,
            )
            .await
            .map(drop)
    }
}
