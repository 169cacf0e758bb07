//! One request's life on its shard: the request, its delivery state, its
//! answer and its history. Built only by applying log records, live or in
//! replay, so both paths give the same state.

use crate::record::{AnswerBody, EventKind, Seal};
use crate::shard::types::HistoryEvent;
use bytes::Bytes;
use gonets_types::ids::{DataKindId, MessageId, ParticipantId};
use gonets_types::refusal::RefusalCode;

/// A request and everything that happened to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exchange {
    /// The request's id.
    pub id: MessageId,
    /// Data kind.
    pub kind: DataKindId,
    /// The consumer that sent it.
    pub consumer: ParticipantId,
    /// The provider it went to.
    pub provider: ParticipantId,
    /// Hub time of acceptance, ms.
    pub time_ms: u64,
    /// Absolute deadline, ms.
    pub deadline_ms: u64,
    /// Test traffic.
    pub test: bool,
    /// Sent with `call`.
    pub call: bool,
    /// Transaction code.
    pub transaction: Option<String>,
    /// It came with an idempotency key (the key itself is in its record
    /// and, as a print, in the shard's key window).
    pub keyed: bool,
    /// Offset of the request record.
    pub request_offset: u64,
    /// The request record is durable.
    pub durable: bool,
    /// Payload kept in memory until the record is durable (then read from the log).
    pub payload: Option<Bytes>,
    /// The request's seal (digest, signature), kept with `payload`.
    pub seal: Option<Box<Seal>>,
    /// Size of the request's payload, bytes (its queue's byte quota counts
    /// it while it waits; 0 when restored from a snapshot written before
    /// sizes were kept).
    pub payload_bytes: u32,
    /// Deliveries to the provider so far.
    pub deliveries: u32,
    /// The provider acked it.
    pub acked: bool,
    /// The answer, once there is one.
    pub outcome: Option<Outcome>,
    /// Deliveries of the answer to the consumer so far.
    pub answer_deliveries: u32,
    /// The consumer acked the answer: the exchange is finished.
    pub answer_acked: bool,
    /// The history, oldest first.
    pub history: Vec<HistoryEvent>,
}

/// How a request ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// The answer's id.
    pub answer_id: MessageId,
    /// Data or refusal.
    pub body: AnswerBody,
    /// Hub time, ms.
    pub time_ms: u64,
    /// Offset of the answer record.
    pub answer_offset: u64,
    /// The answer record is durable.
    pub durable: bool,
    /// Routed to its consumer before its record was durable in the log:
    /// by the rt journal (docs/adr/0036); `payload` and `seal` stay until
    /// the log has it.
    pub routed: bool,
    /// Payload until the answer has been routed.
    pub payload: Option<Bytes>,
    /// The answer's seal, kept with `payload`.
    pub seal: Option<Box<Seal>>,
    /// Size of the answer's payload, bytes (the consumer's answer bound
    /// counts it until the consumer acks it; 0 when restored from a
    /// snapshot written before sizes were kept).
    pub payload_bytes: u32,
}

impl Outcome {
    /// The history step this outcome stands for.
    pub fn event_kind(&self) -> EventKind {
        match &self.body {
            AnswerBody::Data => EventKind::Answered,
            AnswerBody::Refusal {
                code: RefusalCode::DeadlineExceeded,
                ..
            } => EventKind::Expired,
            AnswerBody::Refusal {
                code: RefusalCode::Undeliverable,
                ..
            } => EventKind::DeadLettered,
            AnswerBody::Refusal { .. } => EventKind::Refused,
        }
    }

    /// True when the hub itself made this answer (expiry, dead letter).
    pub fn by_hub(&self) -> bool {
        matches!(&self.body, AnswerBody::Refusal { code, .. } if code.is_hub_only())
    }
}

impl Exchange {
    /// Request `id` of `kind` from `consumer` to `provider`, accepted at
    /// `time_ms` with its `deadline_ms`, before anything else: not durable,
    /// not delivered, no answer, no history.
    pub fn accepted(
        id: MessageId,
        kind: DataKindId,
        consumer: ParticipantId,
        provider: ParticipantId,
        time_ms: u64,
        deadline_ms: u64,
    ) -> Exchange {
        Exchange {
            id,
            kind,
            consumer,
            provider,
            time_ms,
            deadline_ms,
            test: false,
            call: false,
            transaction: None,
            keyed: false,
            request_offset: 0,
            durable: false,
            payload: None,
            seal: None,
            payload_bytes: 0,
            deliveries: 0,
            acked: false,
            outcome: None,
            answer_deliveries: 0,
            answer_acked: false,
            history: Vec::new(),
        }
    }

    /// True when the request still waits in (or is leased from) its queue.
    pub fn in_request_queue(&self) -> bool {
        self.outcome.is_none() && !self.acked
    }

    /// True once the consumer has its answer and acked it.
    pub fn finished(&self) -> bool {
        self.outcome.is_some() && self.answer_acked
    }

    /// The oldest log offset this exchange still needs (payloads not yet
    /// handed over), if any.
    pub fn needed_offset(&self) -> Option<u64> {
        match &self.outcome {
            None => Some(self.request_offset),
            Some(o) if !self.answer_acked => Some(o.answer_offset),
            Some(_) => None,
        }
    }

    /// Adds a history step.
    pub fn record(&mut self, kind: EventKind, time_ms: u64, count: u32) {
        self.history.push(HistoryEvent {
            kind,
            time_ms,
            count,
        });
    }
}
