//! What the hub hands back: a delivered [`Message`], an [`Accepted`]
//! receipt, and what a message's body is.

use crate::command::ReaderId;
use crate::ids::{DataKindId, MessageId, ParticipantId, QueueId};
use crate::refusal::RefusalCode;
use crate::trust::{AcceptanceReceipt, Digest, Receipt, SenderSignature};
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
    pub reader: ReaderId,
    /// The message's digest as the hub computed it at the door
    /// (`gonets_trust::digest`); `None` for a message stored before
    /// digests were kept, and for the hub's own refusals.
    pub digest: Option<Digest>,
    /// The sender's signature over [`Message::digest`], when it signed.
    pub signature: Option<SenderSignature>,
    /// For an answer, when the hub signs: its receipt for the answer.
    pub receipt: Option<Box<Receipt>>,
    /// The attachments it carries (read them with `ReadAttachment`).
    pub attachments: Vec<crate::attachment::AttachmentRef>,
}

impl Message {
    /// The lease holder's number: `Session::ack_lease` names it (a network
    /// front end carries it to its client and back instead of the message).
    pub fn lease_holder(&self) -> u64 {
        self.reader
    }
}

/// The hub's acknowledgement of a request: durable (or accepted before).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Accepted {
    /// The request's id.
    pub id: MessageId,
    /// Hub time of acceptance, ms.
    pub time_ms: u64,
    /// True when this repeats an earlier send with the same idempotency key.
    pub duplicate: bool,
    /// The hub's signed receipt, when the hub has a key (none for a
    /// repeat: the original's acceptance carried it).
    pub receipt: Option<AcceptanceReceipt>,
}

/// What a delivered message is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeliveryBody {
    /// A request for data.
    Request,
    /// An answer: data or refusal.
    Answer(AnswerBody),
}

/// What an answer says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AnswerBody {
    /// The data.
    Data,
    /// A refusal with its reason.
    Refusal {
        /// The code.
        code: RefusalCode,
        /// Free-text reason.
        reason: String,
    },
}
