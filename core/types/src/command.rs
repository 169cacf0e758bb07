//! What a participant asks of the hub: one [`Command`] per operation.

use crate::attachment::{AttachmentRef, UploadId};
use crate::ids::{DataKindId, MessageId, QueueId};
use crate::refusal::RefusalCode;
use crate::trust::Digest;
use crate::trust::SenderSignature;
use bytes::Bytes;

/// A reader (a client session); leases and subscriptions belong to it.
pub type ReaderId = u64;

/// Longest text field of an operation (idempotency key, transaction code,
/// refusal reason), bytes: the log's bound, checked on the wire before the
/// request reaches the hub.
pub const TEXT_BYTES_MAX: usize = 4096;

/// Most messages one batched operation (`send_requests`, `ack_many`,
/// `nack_many`)
/// carries. 512 so that a batch whose every message has a client-made
/// idempotency key (a 36-character UUID) keeps its JSON header well under
/// the server's default 64 KiB header bound.
pub const BATCH_MESSAGES_MAX: usize = 512;

/// Why a batch as a whole is refused (nothing of it is applied). On the
/// wire it is `MALFORMED`, with this text.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    /// No message in the batch.
    #[error("an empty batch")]
    Empty,
    /// More messages than [`BATCH_MESSAGES_MAX`].
    #[error("a batch of {count} messages exceeds the limit of {count_max}")]
    TooMany {
        /// Messages sent.
        count: usize,
        /// The limit.
        count_max: usize,
    },
    /// A `send_requests` whose messages are not all of one data kind.
    #[error("a batch mixes data kinds {first} and {other}")]
    MixedKinds {
        /// The first message's kind.
        first: DataKindId,
        /// Another message's kind.
        other: DataKindId,
    },
}

impl From<BatchError> for crate::HubError {
    fn from(e: BatchError) -> crate::HubError {
        crate::HubError::Malformed(e.to_string())
    }
}

/// Checks a batch's length: not empty, at most [`BATCH_MESSAGES_MAX`].
pub fn check_batch_len(count: usize) -> Result<(), BatchError> {
    match count {
        0 => Err(BatchError::Empty),
        n if n > BATCH_MESSAGES_MAX => Err(BatchError::TooMany {
            count: n,
            count_max: BATCH_MESSAGES_MAX,
        }),
        _ => Ok(()),
    }
}

/// Checks a `send_requests` batch: its length, and one data kind throughout
/// (the batch goes to that kind's queue's shard).
pub fn check_send_batch(requests: &[NewRequest]) -> Result<(), BatchError> {
    check_batch_len(requests.len())?;
    let first = &requests[0].kind;
    match requests.iter().find(|r| r.kind != *first) {
        Some(other) => Err(BatchError::MixedKinds {
            first: first.clone(),
            other: other.kind.clone(),
        }),
        None => Ok(()),
    }
}

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
    /// Its own end of life (SMEV 3's `EndOfLife`), ms after the hub
    /// accepts it: unanswered by then, the hub refuses it
    /// `DeadlineExceeded`, as at its kind's deadline. At least 1 and at
    /// most the kind's deadline ([`check_expiry`]); `None`: the kind's
    /// deadline. Relative, so a sender needs no clock agreement with the hub.
    pub expires_in_ms: Option<u64>,
    /// Attachments uploaded before (docs/adr/0022), covered by the
    /// request's digest; at most `ATTACHMENTS_PER_MESSAGE_MAX`.
    pub attachments: Vec<AttachmentRef>,
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
            expires_in_ms: None,
            attachments: Vec::new(),
        }
    }

    /// The same request with its own end of life, `expires_in` after the
    /// hub accepts it (whole milliseconds, rounded down).
    pub fn expiring_in(mut self, expires_in: std::time::Duration) -> NewRequest {
        let ms = u64::try_from(expires_in.as_millis()).unwrap_or(u64::MAX);
        self.expires_in_ms = Some(ms);
        self
    }
}

/// Why a request's own expiry is refused (nothing is stored). On the wire
/// it is `MALFORMED`, with this text.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ExpiryError {
    /// An expiry of 0 ms: expired before it could be accepted.
    #[error("expires_in_ms must be at least 1")]
    Zero,
    /// Later than the data kind's deadline, which bounds every request of it.
    #[error(
        "expires_in_ms {expires_in_ms} exceeds data kind {kind}'s deadline of {deadline_ms} ms"
    )]
    BeyondDeadline {
        /// The request's kind.
        kind: DataKindId,
        /// The expiry asked for, ms.
        expires_in_ms: u64,
        /// The kind's deadline, ms.
        deadline_ms: u64,
    },
}

impl From<ExpiryError> for crate::HubError {
    fn from(e: ExpiryError) -> crate::HubError {
        crate::HubError::Malformed(e.to_string())
    }
}

/// How long after acceptance request `r` of a kind whose deadline is
/// `deadline_ms` ends unanswered: its own expiry, at least 1 ms and never
/// later than the kind's deadline, else the kind's deadline.
pub fn check_expiry(r: &NewRequest, deadline_ms: u64) -> Result<u64, ExpiryError> {
    match r.expires_in_ms {
        None => Ok(deadline_ms),
        Some(0) => Err(ExpiryError::Zero),
        Some(ms) if ms > deadline_ms => Err(ExpiryError::BeyondDeadline {
            kind: r.kind.clone(),
            expires_in_ms: ms,
            deadline_ms,
        }),
        Some(ms) => Ok(ms),
    }
}

/// An operation from a participant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// `send_request`: answered `Accepted` once durable.
    SendRequest(NewRequest),
    /// `send_requests`: many requests of one data kind in one operation
    /// ([`check_send_batch`]); answered `AcceptedMany`, one result per
    /// request in order, once every accepted one is durable.
    SendRequests(Vec<NewRequest>),
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
    /// `ack_many`: ends the leases of many messages of one requests queue
    /// at once ([`check_batch_len`]); answered `AckedMany` (the ids not
    /// acked, with why) once the acks are durable.
    AckMany {
        /// The queue the messages were delivered from.
        queue: QueueId,
        /// The messages.
        ids: Vec<MessageId>,
        /// The reader holding the leases.
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
    /// `nack_many`: ends the leases of many messages of one queue at once
    /// ([`check_batch_len`]), each delivered again after `delay_ms`;
    /// answered `AckedMany` (the ids not nacked, with why) once the nacks
    /// (one record for a requests queue) are durable.
    NackMany {
        /// The queue the messages were delivered from.
        queue: QueueId,
        /// The messages.
        ids: Vec<MessageId>,
        /// The reader holding the leases.
        reader: ReaderId,
        /// Delay before they are ready again, ms.
        delay_ms: u64,
    },
    /// The provider's data answer.
    SendResponse {
        /// The request answered.
        request_id: MessageId,
        /// The data.
        payload: Bytes,
        /// Attachments the provider uploaded before (docs/adr/0022), covered
        /// by the answer's digest; the request's consumer may read them. At
        /// most `ATTACHMENTS_PER_MESSAGE_MAX`.
        attachments: Vec<AttachmentRef>,
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
    /// Starts a chunked upload of one attachment of `size_bytes` for
    /// requests of `kind` (at most its `attachment_bytes_max`); answered
    /// `Upload` with the hub's new upload id.
    UploadBegin {
        /// The data kind whose requests will carry it.
        kind: DataKindId,
        /// The attachment's whole size, bytes.
        size_bytes: u64,
    },
    /// One chunk of an upload at `offset` (its durable end, or a resend
    /// of a chunk already durable), with the sender's CRC-32C of `bytes`;
    /// answered `Upload` once the chunk is durable.
    UploadChunk {
        /// The upload.
        upload: UploadId,
        /// Where the chunk starts in the attachment.
        offset: u64,
        /// CRC-32C (Castagnoli) of `bytes`.
        crc32c: u32,
        /// At most `CHUNK_BYTES_MAX` bytes.
        bytes: Bytes,
    },
    /// Where an upload stands (after a dropped connection).
    UploadStatus {
        /// The upload.
        upload: UploadId,
    },
    /// Ends an upload whose bytes are all durable: the hub checks their
    /// BLAKE3 against `digest` and answers `Attachment` with the
    /// reference a request carries.
    UploadFinish {
        /// The upload.
        upload: UploadId,
        /// BLAKE3 of the whole attachment, as the sender computed it.
        digest: Digest,
    },
    /// Reads up to `bytes_max` bytes of attachment `digest` from `offset`:
    /// for its uploader and the provider of a request that carries it.
    ReadAttachment {
        /// The attachment.
        digest: Digest,
        /// Where to start, bytes.
        offset: u64,
        /// Most bytes to return (at most `CHUNK_BYTES_MAX`).
        bytes_max: u32,
    },
    /// `command` with its sender's signature (docs/adr/0019): over the
    /// request's digest (`SendRequest`, `Call`), the answer's
    /// (`SendResponse`, `SendRefusal`), or, for `SendRequests`, over the
    /// batch's digest of its requests' digests, checked once for the whole
    /// batch. Any other command, or a signed one wrapped again, is refused
    /// `Malformed` ([`Command::check_signed`]).
    Signed {
        /// The sender's signature.
        signature: SenderSignature,
        /// The command signed.
        command: Box<Command>,
    },
}

/// Why a [`Command::Signed`] is refused whole: it wraps a command that
/// carries no signature. On the wire it is `MALFORMED`, with this text.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("only sends, calls and answers carry a signature")]
pub struct NotSignable;

impl From<NotSignable> for crate::HubError {
    fn from(e: NotSignable) -> crate::HubError {
        crate::HubError::Malformed(e.to_string())
    }
}

impl Command {
    /// `self` signed by its sender with `signature`.
    pub fn signed(self, signature: SenderSignature) -> Command {
        Command::Signed {
            signature,
            command: Box::new(self),
        }
    }

    /// The command a [`Command::Signed`] wraps (itself for any other).
    pub fn unsigned(&self) -> &Command {
        match self {
            Command::Signed { command, .. } => command,
            other => other,
        }
    }

    /// True for the commands a signature may wrap: sends, calls, batches
    /// and answers.
    pub fn is_signable(&self) -> bool {
        matches!(
            self,
            Command::SendRequest(_)
                | Command::SendRequests(_)
                | Command::Call(_)
                | Command::SendResponse { .. }
                | Command::SendRefusal { .. }
        )
    }

    /// A [`Command::Signed`] must wrap a signable command; any other
    /// command passes.
    pub fn check_signed(&self) -> Result<(), NotSignable> {
        match self {
            Command::Signed { command, .. } if !command.is_signable() => Err(NotSignable),
            _ => Ok(()),
        }
    }

    /// The shard that owns `self` among `shard_count`: that of its queue
    /// (a send's or call's is its kind's requests queue), or the one its
    /// message id names; `None` for an id that no shard of `shard_count`
    /// made (the hub answers it `NotFound`).
    pub fn shard(&self, shard_count: u16) -> Option<u16> {
        let of_id = |id: &MessageId| Some(id.shard()).filter(|s| *s < shard_count);
        match self {
            Command::SendRequest(r) | Command::Call(r) => {
                Some(QueueId::Requests(r.kind.clone()).shard(shard_count))
            }
            // A batch goes where its first request's kind does (a mixed
            // batch is refused there, whole).
            Command::SendRequests(rs) => match rs.first() {
                Some(r) => Some(QueueId::Requests(r.kind.clone()).shard(shard_count)),
                None => Some(0), // empty: refused by the shard it reaches
            },
            Command::Fetch { queue, .. }
            | Command::Subscribe { queue, .. }
            | Command::Ack { queue, .. }
            | Command::AckMany { queue, .. }
            | Command::Nack { queue, .. }
            | Command::NackMany { queue, .. }
            | Command::QueueStats { queue } => Some(queue.shard(shard_count)),
            Command::SendResponse { request_id, .. } | Command::SendRefusal { request_id, .. } => {
                of_id(request_id)
            }
            Command::Status { id } => of_id(id),
            Command::Signed { command, .. } => command.shard(shard_count),
            // Attachments are served apart from the shards (docs/adr/0022):
            // any connection will do; these spread them.
            Command::UploadBegin { kind, .. } => {
                Some(QueueId::Requests(kind.clone()).shard(shard_count))
            }
            Command::UploadChunk { upload, .. }
            | Command::UploadStatus { upload }
            | Command::UploadFinish { upload, .. } => {
                Some((upload.0 % u128::from(shard_count.max(1))) as u16)
            }
            Command::ReadAttachment { digest, .. } => {
                Some(u16::from_le_bytes([digest.0[0], digest.0[1]]) % shard_count.max(1))
            }
        }
    }

    /// The reply a successful `self` gets: the one pairing of operations
    /// and [`Reply`](crate::Reply) variants (`Session::execute` and its
    /// typed wrappers both follow it).
    pub fn reply_kind(&self) -> ReplyKind {
        match self {
            Command::SendRequest(_) => ReplyKind::Accepted,
            Command::SendRequests(_) => ReplyKind::AcceptedMany,
            Command::AckMany { .. } | Command::NackMany { .. } => ReplyKind::AckedMany,
            Command::Call(_) => ReplyKind::Message,
            Command::Fetch { .. } => ReplyKind::Messages,
            Command::Subscribe { .. }
            | Command::Ack { .. }
            | Command::Nack { .. }
            | Command::SendResponse { .. }
            | Command::SendRefusal { .. } => ReplyKind::Done,
            Command::Status { .. } => ReplyKind::Status,
            Command::QueueStats { .. } => ReplyKind::Stats,
            Command::Signed { command, .. } => command.reply_kind(),
            Command::UploadBegin { .. }
            | Command::UploadChunk { .. }
            | Command::UploadStatus { .. } => ReplyKind::Upload,
            Command::UploadFinish { .. } => ReplyKind::Attachment,
            Command::ReadAttachment { .. } => ReplyKind::AttachmentBytes,
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
    /// [`Reply::AcceptedMany`](crate::Reply::AcceptedMany).
    AcceptedMany,
    /// [`Reply::AckedMany`](crate::Reply::AckedMany).
    AckedMany,
    /// [`Reply::Upload`](crate::Reply::Upload).
    Upload,
    /// [`Reply::Attachment`](crate::Reply::Attachment).
    Attachment,
    /// [`Reply::AttachmentBytes`](crate::Reply::AttachmentBytes).
    AttachmentBytes,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::ParticipantId;

    #[test]
    fn given_expiries_when_checked_then_zero_and_past_the_deadline_are_refused() {
        let r = NewRequest::new("k", "p");
        assert_eq!(check_expiry(&r, 1_000), Ok(1_000), "none: the kind's");
        let r = r.expiring_in(std::time::Duration::from_millis(250));
        assert_eq!(r.expires_in_ms, Some(250));
        assert_eq!(check_expiry(&r, 1_000), Ok(250));
        assert_eq!(check_expiry(&r, 250), Ok(250), "the deadline itself");
        let e = check_expiry(&r, 249).unwrap_err();
        assert_eq!(
            e,
            ExpiryError::BeyondDeadline {
                kind: DataKindId::new("k"),
                expires_in_ms: 250,
                deadline_ms: 249
            }
        );
        assert!(
            matches!(crate::HubError::from(e), crate::HubError::Malformed(m) if m.contains("exceeds"))
        );
        let zero = NewRequest {
            expires_in_ms: Some(0),
            ..r
        };
        assert_eq!(check_expiry(&zero, 1_000), Err(ExpiryError::Zero));
    }

    #[test]
    fn given_batches_when_checked_then_empty_too_long_and_mixed_ones_are_refused_whole() {
        let one = || NewRequest::new("urn:k:1", "x");
        assert_eq!(check_send_batch(&[]), Err(BatchError::Empty));
        assert_eq!(check_send_batch(&[one(), one()]), Ok(()));
        let long = vec![one(); BATCH_MESSAGES_MAX + 1];
        assert!(matches!(
            check_send_batch(&long),
            Err(BatchError::TooMany { count, .. }) if count == BATCH_MESSAGES_MAX + 1
        ));
        let mixed = [one(), NewRequest::new("urn:k:2", "y")];
        assert!(matches!(
            check_send_batch(&mixed),
            Err(BatchError::MixedKinds { ref other, .. }) if other.as_str() == "urn:k:2"
        ));
        assert_eq!(check_batch_len(BATCH_MESSAGES_MAX), Ok(()));
        let e: crate::HubError = BatchError::Empty.into();
        assert_eq!(e, crate::HubError::Malformed("an empty batch".into()));
        let batch = Command::SendRequests(vec![one()]);
        assert_eq!(
            batch.shard(4),
            Some(QueueId::Requests(DataKindId::new("urn:k:1")).shard(4)),
            "a batch goes to its kind's shard"
        );
        assert_eq!(batch.reply_kind(), ReplyKind::AcceptedMany);
    }

    #[test]
    fn given_commands_when_their_shard_is_asked_then_it_is_their_queues_or_their_ids() {
        let shards = 4;
        let requests = QueueId::Requests(DataKindId::new("urn:k:1"));
        let answers = QueueId::Answers(ParticipantId::new("MFC"));
        let send = Command::SendRequest(NewRequest::new("urn:k:1", "x"));
        assert_eq!(send.shard(shards), Some(requests.shard(shards)));
        let call = Command::Call(NewRequest::new("urn:k:1", "x"));
        assert_eq!(call.shard(shards), Some(requests.shard(shards)));
        let stats = Command::QueueStats {
            queue: answers.clone(),
        };
        assert_eq!(stats.shard(shards), Some(answers.shard(shards)));
        let ack = Command::Ack {
            queue: answers.clone(),
            id: MessageId::new(1, 3, 1),
            reader: 1,
        };
        assert_eq!(
            ack.shard(shards),
            Some(answers.shard(shards)),
            "its queue's"
        );
        let status = Command::Status {
            id: MessageId::new(1, 3, 1),
        };
        assert_eq!(status.shard(shards), Some(3));
        let response = Command::SendResponse {
            request_id: MessageId::new(1, 3, 1),
            payload: Bytes::new(),
            attachments: Vec::new(),
        };
        assert_eq!(response.shard(shards), Some(3));
        let foreign = Command::SendRefusal {
            request_id: MessageId::new(1, 4, 1),
            code: RefusalCode::NoData,
            reason: String::new(),
        };
        assert_eq!(foreign.shard(shards), None, "an id of no shard here");
    }
}
