//! The shard's inputs and outputs: what the runtime feeds it and what it
//! asks the runtime to do.

use crate::record::{AnswerBody, Record, Seal};
use crate::shard::queue::QueueStats;
use bytes::Bytes;
use gonets_types::error::HubError;
use gonets_types::ids::{DataKindId, MessageId, ParticipantId, QueueId};
pub use gonets_types::{
    Command, DeliveryBody, HistoryEvent, NewRequest, ReaderId, Receipt, StatusView,
};

/// The runtime's handle on a pending operation; its reply carries it back.
pub type Token = u64;
/// A message between shards (crosses once, through a bounded channel).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PeerMsg {
    /// To the owner of the consumer's answer queue: deliver this answer.
    EnqueueAnswer(AnswerEnvelope),
    /// To the request's shard: the answer was handed to the consumer.
    AnswerDelivered {
        /// The request.
        request_id: MessageId,
        /// Delivery number.
        count: u32,
    },
    /// To the request's shard: the consumer acked the answer. With `ack`,
    /// the request's shard answers [`PeerMsg::AnswerAckSettled`] once the
    /// ack record is durable (the consumer's `Done` waits for it).
    AnswerAcked {
        /// The request.
        request_id: MessageId,
        /// Where the consumer's ack waits for its reply.
        ack: Option<AckRoute>,
    },
    /// To the shard that made `answer_id` (its request's shard): a consumer
    /// acks an answer its queue no longer holds (a repeated ack). Answered
    /// with [`PeerMsg::AnswerAckSettled`]: `Ok` once the answer's ack is
    /// durable, `NotFound` when the answer is not acked (or unknown, or not
    /// the consumer's).
    AnswerAckAgain {
        /// The answer acked.
        answer_id: MessageId,
        /// The consumer acking it.
        consumer: ParticipantId,
        /// Where the ack waits for its reply.
        ack: AckRoute,
    },
    /// Back to the answer queue's shard: the ack waiting on `token` is
    /// settled (`Ok`: durable on the request's shard).
    AnswerAckSettled {
        /// The ack's token on the answer queue's shard.
        token: Token,
        /// Its outcome.
        result: Result<(), HubError>,
    },
}

/// Where an operation waits for its reply: a token on a shard.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AckRoute {
    /// The shard holding the operation.
    pub shard: u16,
    /// The operation's token there.
    pub token: Token,
}

/// Where a payload is: in memory, or in the sending shard's log at an offset
/// (the runtime reads it there: zero-copy from the segment map).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Payload {
    /// The bytes.
    Bytes(Bytes),
    /// The record at this offset of the shard's own log holds them.
    AtOffset(u64),
}

/// An answer on its way to the consumer's answer queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AnswerEnvelope {
    /// The answer's id.
    pub id: MessageId,
    /// The request it answers.
    pub request_id: MessageId,
    /// The request's data kind.
    pub kind: DataKindId,
    /// Who answered (the provider, or the hub for its own refusals).
    pub from: ParticipantId,
    /// The consumer it goes to.
    pub to: ParticipantId,
    /// Data or refusal.
    pub body: AnswerBody,
    /// Hub time of the answer, ms.
    pub time_ms: u64,
    /// Test traffic.
    pub test: bool,
    /// Transaction code of the request.
    pub transaction: Option<String>,
    /// Deliveries to the consumer so far (counting continues after a restart).
    pub deliveries: u32,
    /// The payload.
    pub payload: Payload,
    /// Its digest and signatures while the payload is in memory (`None`
    /// with [`Payload::AtOffset`]: the runtime reads them with it).
    pub seal: Option<Box<Seal>>,
    /// The hub's receipt for the answer, when the hub signed one (as
    /// `seal`: the runtime rebuilds it from the record otherwise).
    pub receipt: Option<Box<Receipt>>,
}

impl AnswerEnvelope {
    /// The answer as handed to its consumer, on its `delivery_count`th delivery.
    pub fn into_delivery(self, delivery_count: u32) -> Delivery {
        Delivery {
            queue: QueueId::Answers(self.to),
            id: self.id,
            reply_to: Some(self.request_id),
            kind: self.kind,
            from: self.from,
            body: DeliveryBody::Answer(self.body),
            time_ms: self.time_ms,
            deadline_ms: 0,
            delivery_count,
            test: self.test,
            transaction: self.transaction,
            payload: self.payload,
            seal: self.seal,
            receipt: self.receipt,
        }
    }
}

/// A message handed to a reader under a lease.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// The queue it came from (ack and nack name it).
    pub queue: QueueId,
    /// The message id.
    pub id: MessageId,
    /// For answers: the request answered.
    pub reply_to: Option<MessageId>,
    /// Its data kind.
    pub kind: DataKindId,
    /// The sender.
    pub from: ParticipantId,
    /// Request, or an answer's body.
    pub body: DeliveryBody,
    /// Hub time of the message, ms.
    pub time_ms: u64,
    /// Absolute deadline of the request, ms.
    pub deadline_ms: u64,
    /// 1 on first delivery.
    pub delivery_count: u32,
    /// Test traffic.
    pub test: bool,
    /// Transaction code.
    pub transaction: Option<String>,
    /// The payload.
    pub payload: Payload,
    /// Its digest and its sender's signature, when the shard holds them
    /// (else the runtime reads them from the record, with the payload).
    pub seal: Option<Box<Seal>>,
    /// For an answer: the hub's receipt for it, when the hub signed one.
    pub receipt: Option<Box<Receipt>>,
}

/// A successful reply as the shard gives it: messages as [`Delivery`]s whose
/// payloads may still be in the log. The runtime resolves the payloads and
/// hands the session the vocabulary's typed results (one [`gonets_types::Reply`]
/// variant each).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ShardReply {
    /// The request is durable (or, with `duplicate`, was accepted before).
    Accepted {
        /// Its id.
        id: MessageId,
        /// Hub time of acceptance, ms.
        time_ms: u64,
        /// True when this repeats an earlier send with the same idempotency key.
        duplicate: bool,
        /// The hub's signed receipt, when the hub has a key.
        receipt: Option<Box<Receipt>>,
    },
    /// A `call`'s answer (durable).
    Answer(Delivery),
    /// Fetched messages (empty after the wait).
    Messages(Vec<Delivery>),
    /// Done.
    Done,
    /// A history.
    Status(StatusView),
    /// Queue counters.
    Stats(QueueStats),
    /// `send_requests`: one result per request, in order (durable).
    AcceptedMany(gonets_types::AcceptedMany),
    /// `ack_many`: the ids not acked, with why (empty: all done; durable).
    AckedMany(gonets_types::AckedMany),
}

/// Something the shard needs done from outside.
#[derive(Debug)]
pub enum Input {
    /// A participant's operation.
    Command {
        /// Carried back in the reply.
        token: Token,
        /// The authenticated caller.
        caller: ParticipantId,
        /// The operation.
        command: Command,
    },
    /// Everything below this log offset is durable.
    Committed {
        /// Exclusive end of the durable prefix.
        durable_offset: u64,
    },
    /// Every record appended with `journal` below this offset is durable
    /// in the shard's rt journal (docs/adr/0036).
    Journaled {
        /// Exclusive end: the offset after the last such record.
        durable_offset: u64,
    },
    /// The log failed: nothing more is acknowledged.
    StorageFailed {
        /// True for a full disk.
        full: bool,
    },
    /// The clock moved (fire due timers).
    Tick,
    /// A reader went away: its leases end, its waits and subscriptions are dropped.
    Disconnected {
        /// The reader.
        reader: ReaderId,
    },
    /// The runtime could not hand over a delivery it was given for
    /// `reader` (the caller stopped waiting, its push channel closed, the
    /// payload could not be read): the lease ends now and the message is
    /// delivered again (or dead-lettered once out of deliveries).
    GiveBack {
        /// The queue it came from.
        queue: QueueId,
        /// The message.
        id: MessageId,
        /// The reader it was leased to.
        reader: ReaderId,
    },
    /// A message from another shard (or this one).
    Peer(PeerMsg),
    /// The history archive holds this finished exchange's history durably
    /// (after an [`Output::Archive`]): it may now leave memory.
    Archived {
        /// The exchange's request.
        request_id: MessageId,
    },
    /// A `call`'s answer was handed to its caller (`taken`), or the caller
    /// was gone (`!taken`: the answer goes to the answer queue instead).
    CallReplied {
        /// The call's request.
        request_id: MessageId,
        /// True when the caller received it.
        taken: bool,
    },
}

/// Something the shard asks the runtime to do.
#[derive(Debug)]
pub enum Output {
    /// Append this record; it gets `offset` (the runtime asserts it does).
    Append {
        /// The offset the shard expects.
        offset: u64,
        /// The record.
        record: Record,
        /// Write it to the rt journal too (a call's record with the
        /// journal on, docs/adr/0036).
        journal: bool,
    },
    /// Answer a pending operation.
    Reply {
        /// The operation.
        token: Token,
        /// The result.
        result: Result<ShardReply, HubError>,
    },
    /// Push a message to a subscribed reader.
    Deliver {
        /// The reader.
        reader: ReaderId,
        /// The message.
        delivery: Delivery,
    },
    /// Send to a shard (possibly this one).
    ToShard {
        /// The shard.
        shard: u16,
        /// The message.
        msg: PeerMsg,
    },
    /// Feed a `Tick` at or after this time.
    ArmTimer {
        /// Hub time, ms.
        at_ms: u64,
    },
    /// Write this finished exchange's history to the history archive; once
    /// it is durable there, feed [`Input::Archived`]. Writing one the archive
    /// already holds is harmless (a restart asks again for every finished
    /// exchange it replayed).
    Archive {
        /// The history, exactly as `status` shows it.
        history: StatusView,
    },
    /// Answer `token` from the history archive: the history of `id` (a
    /// request or an answer id) if `caller` may read it, else `NotFound`.
    StatusFromArchive {
        /// The operation.
        token: Token,
        /// The id asked about.
        id: MessageId,
        /// Who asks.
        caller: ParticipantId,
        /// The caller is an operator: it may read any history.
        operator: bool,
    },
}
