//! The JSON headers of every frame, one type per opcode. Ids are UUID text,
//! queues are `requests/<data kind>` or `answers/<participant>`, times are
//! hub milliseconds since the Unix epoch. Unknown fields are ignored (a
//! newer peer may add some); missing optional fields take their default.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};

/// The JSON type a request header field must have (docs/protocol.md's tables).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldType {
    /// A JSON string.
    String,
    /// `true` or `false`.
    Bool,
    /// An integer from 0 to 4,294,967,295.
    U32,
    /// An integer from 0 to 18,446,744,073,709,551,615.
    U64,
    /// An array of integers from 0 to 255.
    U8Array,
    /// An array of strings.
    StringArray,
    /// An array of JSON objects (their fields listed apart).
    ObjectArray,
}

impl FieldType {
    /// How the docs and error messages name the type.
    pub fn describe(self) -> &'static str {
        match self {
            FieldType::String => "a string",
            FieldType::Bool => "true or false",
            FieldType::U32 => "an integer from 0 to 4294967295",
            FieldType::U64 => "an integer from 0 to 18446744073709551615",
            FieldType::U8Array => "an array of integers from 0 to 255",
            FieldType::StringArray => "an array of strings",
            FieldType::ObjectArray => "an array of objects",
        }
    }
}

/// One field of a request's JSON header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Field {
    /// The JSON key.
    pub name: &'static str,
    /// Its type.
    pub ty: FieldType,
    /// False when it may be left out (it then takes its default; an
    /// optional string may also be `null`).
    pub required: bool,
}

const fn required(name: &'static str, ty: FieldType) -> Field {
    Field {
        name,
        ty,
        required: true,
    }
}

const fn optional(name: &'static str, ty: FieldType) -> Field {
    Field {
        name,
        ty,
        required: false,
    }
}

/// A request's JSON header whose fields are listed, so that a header that
/// parses as JSON but lacks a field or has one of the wrong type is answered
/// with an error naming the field (`MALFORMED`, not fatal).
pub trait RequestHeader: DeserializeOwned {
    /// Every field the server reads (others are ignored).
    const FIELDS: &'static [Field];
}

/// A string field that may be `null` (taken as empty).
fn null_as_empty<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(Option::<String>::deserialize(d)?.unwrap_or_default())
}

/// `Hello`: the versions the client speaks, and in plain-TCP development
/// mode its participant id and token.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// Protocol versions the client speaks.
    pub versions: Vec<u8>,
    /// Development mode only: who the client claims to be.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub participant: Option<String>,
    /// Development mode only: that participant's token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// Free text naming the client software (logged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
}

/// Reply to `Hello`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HelloOk {
    /// The version chosen.
    pub version: u8,
    /// The participant the connection acts for.
    pub participant: String,
    /// The shard this connection landed on.
    pub shard: u16,
    /// Shards in the hub (queues are placed by a hash modulo this).
    pub shards: u16,
    /// Per-shard ports for shard-aware clients, by shard (empty if none).
    #[serde(default)]
    pub shard_ports: Vec<u16>,
    /// Largest JSON header the server takes, bytes.
    pub header_bytes_max: u32,
    /// Largest body the server takes, bytes.
    pub body_bytes_max: u32,
    /// Server software and version.
    pub server: String,
}

/// `SendRequest` and `Call`; the body is the payload.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendRequest {
    /// Data kind id.
    pub kind: String,
    /// A repeat within the dedup window returns the original acceptance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// Test traffic.
    #[serde(default)]
    pub test: bool,
    /// Links the messages of one service case.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transaction: Option<String>,
    /// Marked as a state secret (refused).
    #[serde(default)]
    pub state_secret: bool,
    /// Its own end of life, ms after acceptance (at least 1, at most the
    /// kind's deadline); absent: the kind's deadline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in_ms: Option<u64>,
    /// The sender's signature over the message's digest, base64
    /// (docs/protocol.md "Signatures and receipts").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
    /// The registered key that made `signature`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature_key_id: Option<String>,
    /// Attachments uploaded before, each by digest and size.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<Attachment>,
}

/// An attachment a message references (`UploadFinish`'s reply too).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    /// BLAKE3 of its bytes, 64 hex digits.
    pub digest: String,
    /// Its length, bytes.
    pub size_bytes: u64,
}

/// `UploadBegin`: an attachment of `size_bytes` for requests of `kind`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadBegin {
    /// Data kind id.
    pub kind: String,
    /// The attachment's whole size, bytes.
    pub size_bytes: u64,
}

/// `UploadChunk`; the body is the chunk.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadChunk {
    /// The upload's id (a UUID).
    pub upload: String,
    /// Where the chunk starts in the attachment, bytes.
    pub offset: u64,
    /// CRC-32C (Castagnoli) of the body.
    pub crc32c: u32,
}

/// `UploadStatus`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadStatus {
    /// The upload's id.
    pub upload: String,
}

/// `UploadFinish`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadFinish {
    /// The upload's id.
    pub upload: String,
    /// BLAKE3 of the whole attachment, 64 hex digits.
    pub digest: String,
}

/// Reply to `UploadBegin`, `UploadChunk` and `UploadStatus`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadReply {
    /// The upload's id.
    pub upload: String,
    /// The attachment's whole size, bytes.
    pub size_bytes: u64,
    /// Bytes durable at the hub.
    pub durable_bytes: u64,
}

/// `ReadAttachment`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadAttachment {
    /// BLAKE3 of the attachment, 64 hex digits.
    pub digest: String,
    /// Where to start, bytes.
    #[serde(default)]
    pub offset: u64,
    /// Most bytes to return.
    pub bytes_max: u32,
}

/// Reply to `ReadAttachment`; the body holds the bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachmentBytes {
    /// The attachment's whole size, bytes.
    pub size_bytes: u64,
    /// Where the body starts in it.
    pub offset: u64,
}

/// Reply to `SendRequest`: durable.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Accepted {
    /// The request's id.
    pub id: String,
    /// Hub time of acceptance, ms.
    pub time_ms: u64,
    /// True when this repeats an earlier send with the same idempotency key.
    #[serde(default)]
    pub duplicate: bool,
    /// The hub's signed receipt, when the hub signs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receipt: Option<crate::trust_wire::ReceiptHeader>,
}

/// `SendRequests`: many requests of one data kind; the body holds their
/// payloads back to back, in order (each `payload_bytes` long).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendRequests {
    /// Data kind id, of every request of the batch.
    pub kind: String,
    /// The requests, in order.
    pub messages: Vec<BatchRequest>,
    /// The batch's one signature, over the batch digest of its requests'
    /// digests, base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
    /// The registered key that made `signature`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature_key_id: Option<String>,
}

/// One request of a `SendRequests` (its kind is the batch's).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchRequest {
    /// Length of its payload in the body, bytes.
    pub payload_bytes: u32,
    /// A repeat within the dedup window returns the original acceptance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// Test traffic.
    #[serde(default, skip_serializing_if = "is_false")]
    pub test: bool,
    /// Links the messages of one service case.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transaction: Option<String>,
    /// Marked as a state secret (refused).
    #[serde(default, skip_serializing_if = "is_false")]
    pub state_secret: bool,
    /// Its own end of life, ms after acceptance (as `SendRequest`'s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in_ms: Option<u64>,
}

/// Serde's skip test for a flag left out when false.
fn is_false(b: &bool) -> bool {
    !*b
}

/// Reply to `SendRequests`: one result per request, in order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AcceptedMany {
    /// The results.
    pub results: Vec<BatchResult>,
    /// The hub's one receipt for the batch's accepted requests, when the
    /// hub signs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_receipt: Option<crate::trust_wire::BatchReceiptHeader>,
}

/// One request's result in `AcceptedMany`: its acceptance (`id`,
/// `time_ms`, `duplicate`) or its `error`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchResult {
    /// The request's id (absent with `error`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Hub time of acceptance, ms.
    #[serde(default)]
    pub time_ms: u64,
    /// True when this repeats an earlier send with the same idempotency key.
    #[serde(default, skip_serializing_if = "is_false")]
    pub duplicate: bool,
    /// Why this request was refused (as an `Error` frame's header says it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorReply>,
}

/// `AckMany`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AckMany {
    /// The requests queue the messages came from.
    pub queue: String,
    /// The messages.
    pub ids: Vec<String>,
    /// The lease holder from their `MessageHeader`s.
    pub lease: u64,
}

/// `NackMany`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NackMany {
    /// The queue the messages came from.
    pub queue: String,
    /// The messages.
    pub ids: Vec<String>,
    /// The lease holder from their `MessageHeader`s.
    pub lease: u64,
    /// Delay before they are delivered again, ms.
    #[serde(default)]
    pub delay_ms: u64,
}

/// Reply to `AckMany` and `NackMany`: the ids not acked (nacked), with why
/// (empty: all done).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AckedMany {
    /// The ids refused, in the batch's order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refused: Vec<AckRefused>,
}

/// One id `AckMany` did not ack.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AckRefused {
    /// The message.
    pub id: String,
    /// Why (`NOT_FOUND`: not leased to the lease holder, or unknown).
    pub error: ErrorReply,
}

/// `Fetch`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fetch {
    /// The queue.
    pub queue: String,
    /// Most messages to return.
    pub max: u32,
    /// Longest wait for the first message, ms.
    #[serde(default)]
    pub wait_ms: u64,
}

/// Reply to `Fetch`: the body holds the payloads back to back, in order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Messages {
    /// The messages.
    pub messages: Vec<MessageHeader>,
}

/// A delivered message (in `Messages`, a `Call` reply or a `Push`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageHeader {
    /// The queue it came from.
    pub queue: String,
    /// Its id.
    pub id: String,
    /// For answers: the request answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
    /// Data kind.
    pub kind: String,
    /// The sender (`HUB` for the hub's own refusals).
    pub from: String,
    /// `request`, `data` or `refusal`.
    pub body: String,
    /// For refusals: the code (`NO_DATA`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refusal_code: Option<String>,
    /// For refusals: the reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refusal_reason: Option<String>,
    /// Hub time, ms.
    pub time_ms: u64,
    /// A request's absolute deadline, ms (0 for answers).
    #[serde(default)]
    pub deadline_ms: u64,
    /// 1 on first delivery.
    pub delivery_count: u32,
    /// Test traffic.
    #[serde(default)]
    pub test: bool,
    /// Transaction code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transaction: Option<String>,
    /// The lease holder: `Ack`/`Nack` send it back.
    pub lease: u64,
    /// Length of this message's payload in the body, bytes.
    pub payload_bytes: u32,
    /// The message's digest as the hub computed it, 64 hex digits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// The sender's signature over the digest, base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
    /// The key that made `signature`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature_key_id: Option<String>,
    /// For an answer: the hub's receipt for it, when the hub signs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receipt: Option<crate::trust_wire::ReceiptHeader>,
    /// The attachments it carries.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<Attachment>,
}

/// `Subscribe`: pushes come as `Push` frames with this request's correlation id.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscribe {
    /// The queue.
    pub queue: String,
    /// Messages allowed in flight.
    pub credits: u32,
}

/// Reply to `Subscribe`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscribed {
    /// The subscription's number (the subscribe's correlation id).
    pub subscription: u64,
    /// Most credits it may hold at once.
    pub credits_max: u32,
}

/// `AddCredits`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddCredits {
    /// The subscription.
    pub subscription: u64,
    /// Credits to add.
    pub credits: u32,
}

/// `Unsubscribe`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unsubscribe {
    /// The subscription.
    pub subscription: u64,
}

/// `Ack` and `Nack`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settle {
    /// The queue the message came from.
    pub queue: String,
    /// The message.
    pub id: String,
    /// The lease holder from its `MessageHeader`.
    pub lease: u64,
    /// `Nack` only: delay before it is delivered again, ms.
    #[serde(default)]
    pub delay_ms: u64,
}

/// `SendResponse`; the body is the answer's payload.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendResponse {
    /// The request answered.
    pub request_id: String,
    /// The sender's signature over the message's digest, base64
    /// (docs/protocol.md "Signatures and receipts").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
    /// The registered key that made `signature`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature_key_id: Option<String>,
    /// Attachments the provider uploaded before, each by digest and size.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<Attachment>,
}

/// `SendRefusal`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendRefusal {
    /// The request refused.
    pub request_id: String,
    /// `ACCESS_DENIED`, `NO_DATA`, `UNKNOWN_REQUEST_DESCRIPTION` or `FAILURE`.
    pub code: String,
    /// Free text.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub reason: String,
    /// The sender's signature over the message's digest, base64
    /// (docs/protocol.md "Signatures and receipts").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
    /// The registered key that made `signature`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature_key_id: Option<String>,
}

/// `Status`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// A request's or an answer's id.
    pub id: String,
}

/// Reply to `Status`: the history.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusReply {
    /// The request.
    pub request_id: String,
    /// Its answer, once there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer_id: Option<String>,
    /// Data kind.
    pub kind: String,
    /// Consumer.
    pub consumer: String,
    /// Provider.
    pub provider: String,
    /// Absolute deadline, ms.
    pub deadline_ms: u64,
    /// The steps, oldest first.
    pub events: Vec<Event>,
    /// A notice about the request while it waits (docs/protocol.md,
    /// "Notices"); absent when there is none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notice: Option<Notice>,
}

/// The `notice` of a `Status` reply.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notice {
    /// What it says: `provider_unreachable` (the only type so far; a
    /// client ignores a type it does not know).
    #[serde(rename = "type")]
    pub notice_type: String,
    /// The provider.
    pub provider: String,
    /// Since when it counts as unreachable, hub time ms.
    pub unreachable_since_ms: u64,
    /// Its last read of the kind's queue, hub time ms (absent: none since
    /// the hub started).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_read_ms: Option<u64>,
    /// Requests waiting in the kind's queue.
    pub waiting: u64,
}

/// [`Notice::notice_type`] of a provider-unreachable notice.
pub const NOTICE_PROVIDER_UNREACHABLE: &str = "provider_unreachable";

/// One step of a history.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// `accepted`, `delivered`, `acked`, ... (docs/protocol.md lists them).
    pub kind: String,
    /// Hub time, ms.
    pub time_ms: u64,
    /// Delivery number where it applies.
    #[serde(default)]
    pub count: u32,
}

/// `QueueStats`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueStats {
    /// The queue.
    pub queue: String,
}

/// Reply to `QueueStats`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueStatsReply {
    /// Messages in the queue.
    pub depth: u64,
    /// Delivered and not yet acked.
    pub in_flight: u64,
    /// Age of the oldest message, ms.
    pub oldest_age_ms: u64,
}

/// A header with no fields (`Ping`, and the replies that only say done).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Empty {}

use FieldType::{Bool, ObjectArray, StringArray, U8Array, U32, U64};

impl RequestHeader for Hello {
    const FIELDS: &'static [Field] = &[
        required("versions", U8Array),
        optional("participant", FieldType::String),
        optional("token", FieldType::String),
        optional("client", FieldType::String),
    ];
}

impl RequestHeader for SendRequest {
    const FIELDS: &'static [Field] = &[
        required("kind", FieldType::String),
        optional("idempotency_key", FieldType::String),
        optional("test", Bool),
        optional("transaction", FieldType::String),
        optional("state_secret", Bool),
        optional("expires_in_ms", U64),
        optional("signature", FieldType::String),
        optional("signature_key_id", FieldType::String),
        optional("attachments", ObjectArray),
    ];
}

impl RequestHeader for Attachment {
    const FIELDS: &'static [Field] = &[
        required("digest", FieldType::String),
        required("size_bytes", U64),
    ];
}

impl RequestHeader for UploadBegin {
    const FIELDS: &'static [Field] = &[
        required("kind", FieldType::String),
        required("size_bytes", U64),
    ];
}

impl RequestHeader for UploadChunk {
    const FIELDS: &'static [Field] = &[
        required("upload", FieldType::String),
        required("offset", U64),
        required("crc32c", U32),
    ];
}

impl RequestHeader for UploadStatus {
    const FIELDS: &'static [Field] = &[required("upload", FieldType::String)];
}

impl RequestHeader for UploadFinish {
    const FIELDS: &'static [Field] = &[
        required("upload", FieldType::String),
        required("digest", FieldType::String),
    ];
}

impl RequestHeader for ReadAttachment {
    const FIELDS: &'static [Field] = &[
        required("digest", FieldType::String),
        optional("offset", U64),
        required("bytes_max", U32),
    ];
}

impl RequestHeader for SendRequests {
    const FIELDS: &'static [Field] = &[
        required("kind", FieldType::String),
        required("messages", ObjectArray),
        optional("signature", FieldType::String),
        optional("signature_key_id", FieldType::String),
    ];
}

impl RequestHeader for BatchRequest {
    const FIELDS: &'static [Field] = &[
        required("payload_bytes", U32),
        optional("idempotency_key", FieldType::String),
        optional("test", Bool),
        optional("transaction", FieldType::String),
        optional("state_secret", Bool),
        optional("expires_in_ms", U64),
    ];
}

impl RequestHeader for AckMany {
    const FIELDS: &'static [Field] = &[
        required("queue", FieldType::String),
        required("ids", StringArray),
        required("lease", U64),
    ];
}

impl RequestHeader for NackMany {
    const FIELDS: &'static [Field] = &[
        required("queue", FieldType::String),
        required("ids", StringArray),
        required("lease", U64),
        optional("delay_ms", U64),
    ];
}

impl RequestHeader for Fetch {
    const FIELDS: &'static [Field] = &[
        required("queue", FieldType::String),
        required("max", U32),
        optional("wait_ms", U64),
    ];
}

impl RequestHeader for Subscribe {
    const FIELDS: &'static [Field] = &[
        required("queue", FieldType::String),
        required("credits", U32),
    ];
}

impl RequestHeader for AddCredits {
    const FIELDS: &'static [Field] = &[required("subscription", U64), required("credits", U32)];
}

impl RequestHeader for Unsubscribe {
    const FIELDS: &'static [Field] = &[required("subscription", U64)];
}

impl RequestHeader for Settle {
    const FIELDS: &'static [Field] = &[
        required("queue", FieldType::String),
        required("id", FieldType::String),
        required("lease", U64),
        optional("delay_ms", U64),
    ];
}

impl RequestHeader for SendResponse {
    const FIELDS: &'static [Field] = &[
        required("request_id", FieldType::String),
        optional("signature", FieldType::String),
        optional("signature_key_id", FieldType::String),
        optional("attachments", ObjectArray),
    ];
}

impl RequestHeader for SendRefusal {
    const FIELDS: &'static [Field] = &[
        required("request_id", FieldType::String),
        required("code", FieldType::String),
        optional("reason", FieldType::String),
        optional("signature", FieldType::String),
        optional("signature_key_id", FieldType::String),
    ];
}

impl RequestHeader for Status {
    const FIELDS: &'static [Field] = &[required("id", FieldType::String)];
}

impl RequestHeader for QueueStats {
    const FIELDS: &'static [Field] = &[required("queue", FieldType::String)];
}

/// `Error`: why the request with the frame's correlation id failed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorReply {
    /// Stable code name (`NOT_AUTHORIZED`, `BAD_FRAME`, ...).
    pub code: String,
    /// Stable code number.
    pub code_num: u16,
    /// Human-readable text.
    pub message: String,
    /// True when the server closes the connection after this frame.
    #[serde(default)]
    pub fatal: bool,
    /// Fields some codes carry.
    #[serde(default)]
    pub details: ErrorDetails,
}

/// The machine-readable parts of an error.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetails {
    /// `TOO_LARGE`: size sent, bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_bytes: Option<u64>,
    /// `TOO_LARGE`: limit, bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_bytes_max: Option<u64>,
    /// `INVALID_FORMAT`: where.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// `INVALID_FORMAT`, `NOT_AUTHORIZED`, `MALFORMED`, ...: the text alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// `ALREADY_ANSWERED`, `DUPLICATE`: the message concerned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `MALFORMED`, `TOO_LARGE`: the request header field at fault, when one is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}
