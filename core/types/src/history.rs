//! What `status` and `queue_stats` show: a message's history and a queue's
//! counters.

use crate::ids::{DataKindId, MessageId, ParticipantId};

/// A message's history, as `status` returns it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusView {
    /// The request.
    pub request_id: MessageId,
    /// Its answer, once there is one.
    pub answer_id: Option<MessageId>,
    /// Data kind.
    pub kind: DataKindId,
    /// Consumer.
    pub consumer: ParticipantId,
    /// Provider.
    pub provider: ParticipantId,
    /// Absolute deadline, ms.
    pub deadline_ms: u64,
    /// The steps, oldest first.
    pub events: Vec<HistoryEvent>,
    /// Set while the request waits on a provider that is unreachable
    /// (R13); `None` otherwise, and in archived histories.
    pub notice: Option<ProviderNotice>,
}

/// A notice to the consumer of a waiting request: its provider has read
/// nothing for the hub's bound while requests wait
/// (`provider_unreachable_after_ms`). The request is kept and still
/// delivered if the provider comes back before its deadline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProviderNotice {
    /// The provider.
    pub provider: ParticipantId,
    /// Since when it counts as unreachable, hub time ms.
    pub unreachable_since_ms: u64,
    /// Its last read of the kind's queue, hub time ms (`None`: none since
    /// the hub started).
    pub last_read_ms: Option<u64>,
    /// Requests waiting in the kind's queue.
    pub waiting: u64,
}

impl StatusView {
    /// The visibility rule of `status`: the exchange's consumer, its
    /// provider, or an operator.
    pub fn visible_to(&self, caller: &ParticipantId, operator: bool) -> bool {
        operator || &self.consumer == caller || &self.provider == caller
    }
}

/// One step in a history.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HistoryEvent {
    /// What happened.
    pub kind: EventKind,
    /// When, hub time ms.
    pub time_ms: u64,
    /// Delivery number where it applies.
    pub count: u32,
}

/// A history step kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// Accepted and durable.
    Accepted,
    /// Handed to the provider (count = delivery number).
    Delivered,
    /// Acknowledged by the provider.
    Acked,
    /// Given back by the provider to be delivered again.
    Nacked,
    /// Answered with data.
    Answered,
    /// Refused by the provider.
    Refused,
    /// The answer was handed to the consumer (count = delivery number).
    AnswerDelivered,
    /// The consumer acknowledged the answer: the exchange is finished.
    AnswerAcked,
    /// The deadline passed without an answer.
    Expired,
    /// Too many deliveries without an ack: dead-lettered, refused `Undeliverable`.
    DeadLettered,
}

impl EventKind {
    const ALL: [EventKind; 10] = [
        EventKind::Accepted,
        EventKind::Delivered,
        EventKind::Acked,
        EventKind::Nacked,
        EventKind::Answered,
        EventKind::Refused,
        EventKind::AnswerDelivered,
        EventKind::AnswerAcked,
        EventKind::Expired,
        EventKind::DeadLettered,
    ];

    /// Stable wire number.
    pub fn to_u8(self) -> u8 {
        EventKind::ALL.iter().position(|k| *k == self).unwrap() as u8 + 1
    }

    /// Kind for a wire number.
    pub fn from_u8(v: u8) -> Option<EventKind> {
        EventKind::ALL.get(usize::from(v).checked_sub(1)?).copied()
    }

    /// Stable text name.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Accepted => "accepted",
            EventKind::Delivered => "delivered",
            EventKind::Acked => "acked",
            EventKind::Nacked => "nacked",
            EventKind::Answered => "answered",
            EventKind::Refused => "refused",
            EventKind::AnswerDelivered => "answer_delivered",
            EventKind::AnswerAcked => "answer_acked",
            EventKind::Expired => "expired",
            EventKind::DeadLettered => "dead_lettered",
        }
    }
}

impl std::fmt::Display for EventKind {
    /// Its stable text name (`as_str`), as the wire and the CLI show it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Depth, in-flight count and age of the oldest message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct QueueStats {
    /// Messages in the queue (ready, in flight or delayed).
    pub depth: u64,
    /// Messages handed out and not yet acked.
    pub in_flight: u64,
    /// Age of the oldest message, ms (0 when empty).
    pub oldest_age_ms: u64,
}
