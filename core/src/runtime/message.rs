//! What sessions get back: a delivered message with its payload bytes, an
//! acceptance, and the replies the shard task sends over a session's reply
//! channel.

use crate::ids::{DataKindId, MessageId, ParticipantId, QueueId};
use crate::shard::queue::QueueStats;
use crate::shard::{Delivery, DeliveryBody, ReaderId, StatusView};
use bytes::Bytes;

/// A message handed to a session under a lease (or a `call`'s answer).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// The queue it came from.
    pub queue: QueueId,
    /// The message id.
    pub id: MessageId,
    /// For answers: the request answered.
    pub reply_to: Option<MessageId>,
    /// Its data kind.
    pub kind: DataKindId,
    /// The sender (`HUB` for the hub's own refusals).
    pub from: ParticipantId,
    /// A request, or an answer's body (data or refusal).
    pub body: DeliveryBody,
    /// Hub time of the message, ms.
    pub time_ms: u64,
    /// Absolute deadline of a request, ms (0 for answers).
    pub deadline_ms: u64,
    /// 1 on first delivery.
    pub delivery_count: u32,
    /// Test traffic.
    pub test: bool,
    /// Transaction code.
    pub transaction: Option<String>,
    /// The payload.
    pub payload: Bytes,
    /// The reader holding the lease: `ack` and `nack` must name it.
    pub(crate) reader: ReaderId,
}

impl Message {
    /// The lease holder's number: `Session::ack_lease` names it (a network
    /// front end carries it to its client and back instead of the message).
    pub fn lease_holder(&self) -> u64 {
        self.reader
    }

    /// Builds the public message from a shard's delivery and its payload bytes.
    pub(crate) fn from_delivery(d: Delivery, payload: Bytes, reader: ReaderId) -> Message {
        Message {
            queue: d.queue,
            id: d.id,
            reply_to: d.reply_to,
            kind: d.kind,
            from: d.from,
            body: d.body,
            time_ms: d.time_ms,
            deadline_ms: d.deadline_ms,
            delivery_count: d.delivery_count,
            test: d.test,
            transaction: d.transaction,
            payload,
            reader,
        }
    }
}

/// The hub's acknowledgement of a request: durable (or accepted before).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Accepted {
    /// The request's id.
    pub id: MessageId,
    /// Hub time of acceptance, ms.
    pub time_ms: u64,
    /// True when this repeats an earlier send with the same idempotency key.
    pub duplicate: bool,
}

/// A successful reply as it crosses back to a session (payloads resolved).
#[derive(Debug)]
pub(crate) enum Response {
    /// `send_request` (and `call`'s acceptance is never sent alone).
    Accepted(Accepted),
    /// A `call`'s answer.
    Message(Message),
    /// Fetched messages.
    Messages(Vec<Message>),
    /// Done.
    Done,
    /// A history.
    Status(StatusView),
    /// Queue counters.
    Stats(QueueStats),
}
