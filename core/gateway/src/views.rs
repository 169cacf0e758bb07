//! The JSON of every reply: one view per vocabulary type, the same field
//! names as the OpenAPI document's schemas (`crate::openapi`).

use base64::Engine as _;
use gonets_types::{
    AcceptanceReceipt, Accepted, AcceptedMany, AckedMany, AnswerBody, BatchReceipt, DeliveryBody,
    Message, QueueStats, StatusView,
};
use serde_json::{json, Value};

/// Bytes as standard base64 (with padding).
pub(crate) fn base64_of(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// `Accepted`: the id, hub time, whether it repeats an earlier send, and
/// the hub's receipt (when the hub signs).
pub(crate) fn accepted(a: &Accepted) -> Value {
    json!({
        "id": a.id.to_string(),
        "time_ms": a.time_ms,
        "duplicate": a.duplicate,
        "receipt": a.receipt.as_ref().map(acceptance_receipt),
    })
}

/// `send_requests`' results, one per request in order, and the batch's
/// one receipt beside them (each acceptance shares it: written once, not
/// once per request).
pub(crate) fn accepted_many(results: &AcceptedMany) -> Value {
    let mut receipt = Value::Null;
    let results: Vec<Value> = results
        .iter()
        .map(|r| match r {
            Ok(a) => {
                let mut view = accepted(&Accepted {
                    receipt: None,
                    ..a.clone()
                });
                match &a.receipt {
                    Some(AcceptanceReceipt::Batch(b)) if receipt.is_null() => {
                        receipt = batch_receipt(b);
                    }
                    Some(AcceptanceReceipt::Batch(_)) | None => {}
                    Some(one) => view["receipt"] = acceptance_receipt(one),
                }
                json!({ "accepted": view })
            }
            Err(e) => json!({ "problem": crate::problem::Problem::from(e.clone()).to_json() }),
        })
        .collect();
    json!({ "results": results, "receipt": receipt })
}

/// The ids a many-ack did not end, with why.
pub(crate) fn acked_many(left: &AckedMany) -> Value {
    let left: Vec<Value> = left
        .iter()
        .map(|(id, e)| {
            json!({ "id": id.to_string(), "problem": crate::problem::Problem::from(e.clone()).to_json() })
        })
        .collect();
    json!({ "not_done": left })
}

fn acceptance_receipt(r: &AcceptanceReceipt) -> Value {
    match r {
        AcceptanceReceipt::One(r) => json!({
            "form": "one",
            "receipt": receipt_json(gonets_trust::receipt_to_json(r)),
        }),
        AcceptanceReceipt::Batch(b) => json!({ "form": "batch", "receipt": batch_receipt(b) }),
    }
}

/// A receipt as `gonets verify-receipt` reads it (one JSON object).
fn receipt_json(text: String) -> Value {
    serde_json::from_str(&text).expect("receipt_to_json writes JSON")
}

fn batch_receipt(b: &BatchReceipt) -> Value {
    let entries: Vec<Value> = b
        .entries
        .iter()
        .map(|e| {
            json!({
                "message_id": e.message_id.to_string(),
                "digest": e.digest.to_hex(),
                "offset": e.offset,
            })
        })
        .collect();
    json!({
        "sender": b.sender.as_str(),
        "kind": b.kind.as_str(),
        "time_ms": b.time_ms,
        "shard": b.shard,
        "entries": entries,
        "key_id": b.key_id,
        "signature": base64_of(&b.signature),
    })
}

/// A delivered message: its fields, the payload in base64, the refusal
/// (for a refusal), its seal (digest, the sender's signature) and the
/// hub's receipt of an answer.
pub(crate) fn message(m: &Message) -> Value {
    let (kind_of_message, refusal) = match &m.body {
        DeliveryBody::Request => ("request", Value::Null),
        DeliveryBody::Answer(AnswerBody::Data) => ("response", Value::Null),
        DeliveryBody::Answer(AnswerBody::Refusal { code, reason }) => (
            "refusal",
            json!({ "code": code.as_str(), "reason": reason }),
        ),
    };
    json!({
        "id": m.id.to_string(),
        "type": kind_of_message,
        "queue": m.queue.to_string(),
        "reply_to": m.reply_to.map(|id| id.to_string()),
        "kind": m.kind.as_str(),
        "from": m.from.as_str(),
        "time_ms": m.time_ms,
        "deadline_ms": m.deadline_ms,
        "delivery_count": m.delivery_count,
        "test": m.test,
        "transaction": m.transaction,
        "payload_base64": base64_of(&m.payload),
        "refusal": refusal,
        "digest": m.digest.map(|d| d.to_hex()),
        "signature": m.signature.as_ref().map(|s| json!({
            "key_id": s.key_id,
            "signature": base64_of(&s.bytes),
        })),
        "receipt": m.receipt.as_ref().map(|r| receipt_json(gonets_trust::receipt_to_json(r))),
        "attachments": m.attachments.iter().map(attachment).collect::<Vec<_>>(),
    })
}

/// An attachment's reference: what `upload_finish` gives and a request
/// carries (header `Gonets-Attachments: DIGEST:SIZE`).
pub(crate) fn attachment(a: &gonets_types::AttachmentRef) -> Value {
    json!({ "digest": a.digest.to_hex(), "size_bytes": a.size_bytes })
}

/// Where an upload stands.
pub(crate) fn upload(u: &gonets_types::UploadState) -> Value {
    json!({
        "upload": u.upload.to_string(),
        "size_bytes": u.size_bytes,
        "durable_bytes": u.durable_bytes,
    })
}

/// `fetch`'s messages.
pub(crate) fn messages(ms: &[Message]) -> Value {
    json!({ "messages": ms.iter().map(message).collect::<Vec<_>>() })
}

/// `status`: the request's history, event by event.
pub(crate) fn status(v: &StatusView) -> Value {
    let events: Vec<Value> = v
        .events
        .iter()
        .map(|e| json!({ "event": e.kind.as_str(), "time_ms": e.time_ms, "count": e.count }))
        .collect();
    json!({
        "request_id": v.request_id.to_string(),
        "answer_id": v.answer_id.map(|id| id.to_string()),
        "kind": v.kind.as_str(),
        "consumer": v.consumer.as_str(),
        "provider": v.provider.as_str(),
        "deadline_ms": v.deadline_ms,
        "events": events,
        "provider_unreachable_since_ms": v.notice.as_ref().map(|n| n.unreachable_since_ms),
    })
}

/// `queue_stats`.
pub(crate) fn queue_stats(queue: &str, s: &QueueStats) -> Value {
    json!({
        "queue": queue,
        "depth": s.depth,
        "in_flight": s.in_flight,
        "oldest_age_ms": s.oldest_age_ms,
    })
}
