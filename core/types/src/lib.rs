//! The gonets vocabulary, at the bottom of every layer: ids, typed errors,
//! refusal codes, and one [`Command`], one [`Reply`] and one [`Message`]
//! that the engine, the wire protocol, the server and the clients all speak.
//!
//! Nothing here does I/O; the crate depends on no runtime.

pub mod attachment;
pub mod command;
pub mod error;
pub mod history;
pub mod ids;
pub mod message;
pub mod refusal;
pub mod reply;
pub mod trust;

pub use attachment::{
    check_attachment_refs, AttachmentBytes, AttachmentRef, UploadId, UploadState,
    ATTACHMENTS_PER_MESSAGE_MAX, ATTACHMENT_BYTES_MAX_DEFAULT, CHUNK_BYTES_MAX,
};
pub use command::{
    check_batch_len, check_expiry, check_send_batch, BatchError, Command, ExpiryError, NewRequest,
    NotSignable, ReaderId, ReplyKind, BATCH_MESSAGES_MAX, TEXT_BYTES_MAX,
};
pub use error::HubError;
pub use history::{EventKind, HistoryEvent, ProviderNotice, QueueStats, StatusView};
pub use ids::{DataKindId, MessageId, ParticipantId, QueueId};
pub use message::{Accepted, AnswerBody, DeliveryBody, Message};
pub use refusal::RefusalCode;
pub use reply::{AcceptedMany, AckedMany, Reply, ReplyContent};
pub use trust::{AcceptanceReceipt, BatchReceipt, Digest, Receipt, ReceiptProof, SenderSignature};
