//! The wire protocol (docs/protocol.md): length-prefixed binary frames,
//! each a fixed 24-byte header, a JSON header parsed with simd-json, and the
//! payload bytes as received.
//!
//! Modules: `frame` (the fixed header, limits, the incremental decoder),
//! `opcode`, `header` (the JSON header of every opcode), `error_code`
//! (stable codes of every typed error), `request` (a request frame into the
//! vocabulary's `Command`), `reply` (a `Result<Reply, HubError>` into its
//! reply frame), and here the conversions between the vocabulary's types
//! and their wire form.

pub mod attachment_wire;
pub mod error_code;
pub mod frame;
pub mod frame_io;
pub mod header;
mod message_out;
pub mod opcode;
pub mod reply;
pub mod request;
pub mod trust_wire;

pub use error_code::ErrorCode;
pub use frame::{encode_frame, Frame, FrameDecoder, FrameError, FrameHeader, Limits};
pub use opcode::Opcode;
pub use reply::{
    decode_push, decode_reply, encode_error, encode_push, encode_reply, encode_reply_head,
    message_from_header, status_view, BadReply,
};
pub use request::{
    decode_command, encode_command, request_header, RequestError, READER_OF_SESSION,
};

use gonets_types::error::HubError;
use gonets_types::ids::{DataKindId, MessageId, ParticipantId, QueueId};
use gonets_types::refusal::RefusalCode;
use gonets_types::StatusView;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Parses a JSON header in place with simd-json (it rewrites the buffer).
pub fn parse_header<T: DeserializeOwned>(json: &mut [u8]) -> Result<T, HubError> {
    if json.is_empty() {
        return Err(HubError::Malformed("empty JSON header".into()));
    }
    from_slice_reused(json).map_err(|e| HubError::Malformed(format!("bad JSON header: {e}")))
}

/// Parses `json` in place with simd-json and scratch buffers this thread
/// reuses: `simd_json::serde::from_slice` allocates four of them a header
/// (its input copy, structural indexes, string and stack buffers).
fn from_slice_reused<T: DeserializeOwned>(json: &mut [u8]) -> simd_json::Result<T> {
    let len_bytes = json.len();
    SCRATCH.with(|scratch| match scratch.try_borrow_mut() {
        Ok(mut buffers) => {
            let parsed = simd_json::serde::from_slice_with_buffers(json, &mut buffers);
            if len_bytes > ORIGINAL_KEPT_BYTES_MAX {
                // One large header does not pin its size on the thread.
                *buffers = simd_json::Buffers::default();
            }
            parsed
        }
        // Only if a parse ever nests in another: buffers of its own.
        Err(_) => simd_json::serde::from_slice(json),
    })
}

/// Why a request's JSON header was not taken.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// Empty, not JSON, or not a JSON object: the peer does not speak the
    /// protocol (a fatal `BAD_HEADER`).
    #[error("bad JSON header: {0}")]
    Unparseable(String),
    /// A JSON object, but a field is missing or has the wrong type
    /// (`MALFORMED`, the connection goes on).
    #[error("field `{field}` {reason}")]
    Field {
        /// The field's JSON key.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A JSON object whose fields all check out, yet it does not read as
    /// this header (`MALFORMED`, the connection goes on).
    #[error("bad JSON header: {0}")]
    Invalid(String),
}

/// Parses a request's JSON header: with simd-json, and when that fails,
/// finds out why (unparseable, or which field is missing or of the wrong type).
pub fn parse_request<T: header::RequestHeader>(json: &mut [u8]) -> Result<T, HeaderError> {
    if json.is_empty() {
        return Err(HeaderError::Unparseable("empty JSON header".into()));
    }
    // simd-json rewrites the buffer in place: keep the bytes to explain a
    // failure (a JSON header is at most `header_bytes_max` and usually tiny),
    // in a buffer this thread reuses rather than a new one per request.
    ORIGINAL.with(|original| {
        let mut original = original.borrow_mut();
        original.clear();
        original.extend_from_slice(json);
        let parsed = from_slice_reused(json).map_err(|e| explain::<T>(&original, &e.to_string()));
        if original.capacity() > ORIGINAL_KEPT_BYTES_MAX {
            // One large header does not pin its size on the thread.
            *original = Vec::new();
        }
        parsed
    })
}

/// Largest copy of a header a thread keeps between requests, bytes.
const ORIGINAL_KEPT_BYTES_MAX: usize = 64 << 10;

thread_local! {
    /// simd-json's scratch buffers (see `from_slice_reused`).
    static SCRATCH: std::cell::RefCell<simd_json::Buffers> =
        std::cell::RefCell::new(simd_json::Buffers::default());
    /// The header being parsed, as received (see `parse_request`).
    static ORIGINAL: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Why `json` does not read as a `T` (`simd_error` is simd-json's reason).
fn explain<T: header::RequestHeader>(json: &[u8], simd_error: &str) -> HeaderError {
    use header::FieldType;
    let value: serde_json::Value = match serde_json::from_slice(json) {
        Ok(v) => v,
        Err(_) => return HeaderError::Unparseable(simd_error.to_string()),
    };
    let Some(object) = value.as_object() else {
        return HeaderError::Unparseable("the JSON header is not an object".into());
    };
    // Bounded by the header's field list.
    for f in T::FIELDS {
        let v = match object.get(f.name) {
            None if f.required => {
                return HeaderError::Field {
                    field: f.name,
                    reason: "is required".into(),
                }
            }
            None => continue,
            Some(serde_json::Value::Null) if !f.required && f.ty == FieldType::String => continue,
            Some(v) => v,
        };
        let fits = match f.ty {
            FieldType::String => v.is_string(),
            FieldType::Bool => v.is_boolean(),
            FieldType::U32 => v.as_u64().is_some_and(|n| u32::try_from(n).is_ok()),
            FieldType::U64 => v.as_u64().is_some(),
            FieldType::U8Array => v.as_array().is_some_and(|a| {
                a.iter()
                    .all(|x| x.as_u64().is_some_and(|n| u8::try_from(n).is_ok()))
            }),
            FieldType::StringArray => v
                .as_array()
                .is_some_and(|a| a.iter().all(|x| x.is_string())),
            FieldType::ObjectArray => v
                .as_array()
                .is_some_and(|a| a.iter().all(|x| x.is_object())),
        };
        if !fits {
            return HeaderError::Field {
                field: f.name,
                reason: format!("must be {}, not {}", f.ty.describe(), json_kind(v)),
            };
        }
    }
    HeaderError::Invalid(simd_error.to_string())
}

/// A JSON value named briefly for an error (numbers as they are, never a
/// long string echoed back).
fn json_kind(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => "null".into(),
        serde_json::Value::Bool(b) => b.to_string(),
        serde_json::Value::Number(n) => n.to_string(),
        serde_json::Value::String(_) => "a string".into(),
        serde_json::Value::Array(_) => "an array".into(),
        serde_json::Value::Object(_) => "an object".into(),
    }
}

/// Appends a frame with `header` serialised as its JSON header.
pub fn encode<T: Serialize>(
    out: &mut Vec<u8>,
    opcode: Opcode,
    correlation_id: u64,
    header: &T,
    body: &[&[u8]],
) {
    let body_bytes = body.iter().map(|b| b.len()).sum();
    encode_head(out, opcode, correlation_id, header, body_bytes);
    // One growth at most, to the exact size: growing by doubling while the
    // payloads go in would copy them again (a fetch's frame is ~430 KB).
    out.reserve(body_bytes);
    for b in body {
        out.extend_from_slice(b);
    }
}

/// Appends a frame's fixed header and JSON header announcing a body of
/// `body_bytes`, without the body: the caller sends the body's bytes right
/// after these (a fetch's payloads straight from where they are, with no
/// copy into the frame).
pub fn encode_head<T: Serialize>(
    out: &mut Vec<u8>,
    opcode: Opcode,
    correlation_id: u64,
    header: &T,
    body_bytes: usize,
) {
    let start = out.len();
    // The fixed header goes first with its lengths still zero; the JSON is
    // serialised straight after it into `out` (no buffer per frame), then
    // the lengths are filled in.
    FrameHeader {
        opcode,
        flags: 0,
        correlation_id,
        header_bytes: 0,
        body_bytes: 0,
    }
    .encode(out);
    let json_start = out.len();
    // Serialising plain structs of strings and numbers cannot fail.
    serde_json::to_writer(&mut *out, header).expect("wire headers always serialise");
    let json_bytes = out.len() - json_start;
    FrameHeader::set_lengths(&mut out[start..], json_bytes, body_bytes);
}

/// The wire name of a queue: `requests/<kind>` or `answers/<participant>`.
pub fn queue_name(q: &QueueId) -> String {
    q.to_text()
}

/// The queue of a wire name.
pub fn parse_queue(s: &str) -> Result<QueueId, HubError> {
    if let Some(kind) = s.strip_prefix("requests/").filter(|k| !k.is_empty()) {
        Ok(QueueId::Requests(DataKindId::new(kind)))
    } else if let Some(p) = s.strip_prefix("answers/").filter(|p| !p.is_empty()) {
        Ok(QueueId::Answers(ParticipantId::new(p)))
    } else {
        Err(HubError::Malformed(format!(
            "queue {s:?} is neither requests/<data kind> nor answers/<participant>"
        )))
    }
}

/// The message id of a wire string.
pub fn parse_id(s: &str) -> Result<MessageId, HubError> {
    s.parse()
        .map_err(|_| HubError::Malformed(format!("{s:?} is not a message id (UUID)")))
}

/// The refusal code of a wire name.
pub fn parse_refusal(s: &str) -> Result<RefusalCode, HubError> {
    RefusalCode::ALL
        .into_iter()
        .find(|c| c.as_str() == s)
        .ok_or_else(|| HubError::Malformed(format!("unknown refusal code {s:?}")))
}

/// The wire form of a history.
pub fn status_reply(s: &StatusView) -> header::StatusReply {
    header::StatusReply {
        request_id: s.request_id.to_text(),
        answer_id: s.answer_id.map(MessageId::to_text),
        kind: s.kind.to_string(),
        consumer: s.consumer.to_string(),
        provider: s.provider.to_string(),
        deadline_ms: s.deadline_ms,
        events: s
            .events
            .iter()
            .map(|e| header::Event {
                kind: e.kind.as_str().into(),
                time_ms: e.time_ms,
                count: e.count,
            })
            .collect(),
        notice: s.notice.as_ref().map(|n| header::Notice {
            notice_type: header::NOTICE_PROVIDER_UNREACHABLE.into(),
            provider: n.provider.to_string(),
            unreachable_since_ms: n.unreachable_since_ms,
            last_read_ms: n.last_read_ms,
            waiting: n.waiting,
        }),
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod mapping_tests;
