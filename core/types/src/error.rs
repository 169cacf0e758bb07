//! Typed errors of hub operations: never a silent drop.

use crate::ids::MessageId;

/// Why an operation was refused or failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HubError {
    /// The caller is not a registered participant.
    #[error("unauthenticated")]
    Unauthenticated,
    /// The caller may not do this (request this kind, read this queue, answer this request).
    #[error("not authorized: {0}")]
    NotAuthorized(String),
    /// No such data kind in the registry.
    #[error("unknown data kind {0}")]
    UnknownDataKind(String),
    /// The payload breaks the data kind's format.
    #[error("invalid format at {path}: {reason}")]
    InvalidFormat {
        /// Where in the payload.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// The payload exceeds the data kind's maximum size.
    #[error("payload of {size_bytes} bytes exceeds the limit of {size_bytes_max}")]
    TooLarge {
        /// Size sent.
        size_bytes: u64,
        /// Limit.
        size_bytes_max: u64,
    },
    /// A text field (idempotency key, transaction code, refusal reason)
    /// exceeds its bound (4,096 bytes).
    #[error("{field} of {size_bytes} bytes exceeds the limit of {size_bytes_max} bytes")]
    TextTooLarge {
        /// The field, as named on the wire (`idempotency_key`, `transaction`, `reason`).
        field: String,
        /// Size sent.
        size_bytes: u64,
        /// Limit.
        size_bytes_max: u64,
    },
    /// A signature the data kind requires is missing, or does not verify
    /// against one of the sender's keys valid now (unknown key, expired
    /// key, another participant's key, another message's signature).
    #[error("bad signature: {0}")]
    BadSignature(String),
    /// The message is marked as a state secret: never processed (R10).
    #[error("state secrets are not processed")]
    StateSecret,
    /// The queue is at its bound; nothing already accepted was dropped.
    #[error("queue quota exceeded")]
    QuotaExceeded,
    /// The disk is full; nothing already accepted was lost.
    #[error("storage full")]
    StorageFull,
    /// The deadline passed before the answer (realtime call), or the request
    /// already expired (late answer).
    #[error("deadline exceeded")]
    DeadlineExceeded,
    /// The request was already answered or refused.
    #[error("already answered: {0}")]
    AlreadyAnswered(MessageId),
    /// A repeat of an earlier send (reported where a repeat cannot be answered
    /// with the original acceptance).
    #[error("duplicate of {original}")]
    Duplicate {
        /// The original message.
        original: MessageId,
    },
    /// No such message or queue (or not visible to the caller).
    #[error("not found")]
    NotFound,
    /// The operation is malformed (bad arguments, wrong mode).
    #[error("malformed: {0}")]
    Malformed(String),
    /// An upload's chunk does not match its CRC-32C (nothing of it was
    /// stored), or is too large.
    #[error("bad chunk: {0}")]
    BadChunk(String),
    /// A finished upload's bytes do not have the digest the sender named
    /// (the upload is discarded), or a request names an attachment's
    /// digest wrongly.
    #[error("wrong digest: {0}")]
    WrongDigest(String),
    /// An upload chunk not at the upload's durable end, or a finish before
    /// every byte is durable: go on from `durable_bytes`.
    #[error("the upload continues at byte {durable_bytes}")]
    UploadOffset {
        /// Bytes durable at the hub.
        durable_bytes: u64,
    },
    /// No such upload of the caller's (never begun, finished, aborted,
    /// or abandoned and swept).
    #[error("unknown upload")]
    UnknownUpload,
    /// The hub cannot take this now (shutting down, storage poisoned, overloaded); retry later.
    #[error("unavailable: {0}")]
    Unavailable(String),
}
