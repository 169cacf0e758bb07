//! What a participant asks of the hub: one [`Command`] per operation.

use crate::ids::{DataKindId, MessageId, QueueId};
use crate::refusal::RefusalCode;
use bytes::Bytes;

/// A reader (a client session); leases and subscriptions belong to it.
pub type ReaderId = u64;

/// Longest text field of an operation (idempotency key, transaction code,
/// refusal reason), bytes: the log's bound, checked on the wire before the
/// request reaches the hub.
pub const TEXT_BYTES_MAX: usize = 4096;

/// The fields of a request to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewRequest {
    /// The data kind.
    pub kind: DataKindId,
    /// The payload.
    pub payload: Bytes,
    /// A repeat within the dedup window returns the original acceptance.
    pub idempotency_key: Option<String>,
    /// Test traffic.
    pub test: bool,
    /// Links the messages of one service case.
    pub transaction: Option<String>,
    /// Marked as a state secret by the sender: refused (R10).
    pub state_secret: bool,
}

impl NewRequest {
    /// A plain request of `kind` with `payload`.
    pub fn new(kind: &str, payload: impl Into<Bytes>) -> NewRequest {
        NewRequest {
            kind: DataKindId::new(kind),
            payload: payload.into(),
            idempotency_key: None,
            test: false,
            transaction: None,
            state_secret: false,
        }
    }
}

/// An operation from a participant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// `send_request`: answered `Accepted` once durable.
    SendRequest(NewRequest),
    /// `call`: the realtime path; answered with the answer or `DeadlineExceeded`.
    Call(NewRequest),
    /// Long-poll: up to `max` messages, waiting up to `wait_ms` for the first.
    Fetch {
        /// The queue.
        queue: QueueId,
        /// Most messages to return.
        max: u32,
        /// Longest wait for a message, ms (0 = do not wait).
        wait_ms: u64,
        /// The reader the leases go to.
        reader: ReaderId,
    },
    /// Push delivery with credit-based flow control (adds credits if subscribed).
    Subscribe {
        /// The queue.
        queue: QueueId,
        /// Messages the reader can take now.
        credits: u32,
        /// The reader.
        reader: ReaderId,
    },
    /// Ends a lease: done.
    Ack {
        /// The queue the message was delivered from.
        queue: QueueId,
        /// The message.
        id: MessageId,
        /// The reader holding the lease.
        reader: ReaderId,
    },
    /// Ends a lease: deliver again after `delay_ms`.
    Nack {
        /// The queue.
        queue: QueueId,
        /// The message.
        id: MessageId,
        /// The reader holding the lease.
        reader: ReaderId,
        /// Delay before it is ready again, ms.
        delay_ms: u64,
    },
    /// The provider's data answer.
    SendResponse {
        /// The request answered.
        request_id: MessageId,
        /// The data.
        payload: Bytes,
    },
    /// The provider's refusal.
    SendRefusal {
        /// The request refused.
        request_id: MessageId,
        /// Why.
        code: RefusalCode,
        /// Free-text reason.
        reason: String,
    },
    /// A message's history.
    Status {
        /// A request's or an answer's id.
        id: MessageId,
    },
    /// A queue's depth, in-flight count and oldest age.
    QueueStats {
        /// The queue.
        queue: QueueId,
    },
}

impl Command {
    /// The reply a successful `self` gets: the one pairing of operations
    /// and [`Reply`](crate::Reply) variants (`Session::execute` and its
    /// typed wrappers both follow it).
    pub fn reply_kind(&self) -> ReplyKind {
        match self {
            Command::SendRequest(_) => ReplyKind::Accepted,
            Command::Call(_) => ReplyKind::Message,
            Command::Fetch { .. } => ReplyKind::Messages,
            Command::Subscribe { .. }
            | Command::Ack { .. }
            | Command::Nack { .. }
            | Command::SendResponse { .. }
            | Command::SendRefusal { .. } => ReplyKind::Done,
            Command::Status { .. } => ReplyKind::Status,
            Command::QueueStats { .. } => ReplyKind::Stats,
        }
    }
}

/// Which variant of [`Reply`](crate::Reply) a reply is (or an operation gets).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReplyKind {
    /// [`Reply::Accepted`](crate::Reply::Accepted).
    Accepted,
    /// [`Reply::Message`](crate::Reply::Message).
    Message,
    /// [`Reply::Messages`](crate::Reply::Messages).
    Messages,
    /// [`Reply::Done`](crate::Reply::Done).
    Done,
    /// [`Reply::Status`](crate::Reply::Status).
    Status,
    /// [`Reply::Stats`](crate::Reply::Stats).
    Stats,
}
