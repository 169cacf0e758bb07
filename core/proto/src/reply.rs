//! The wire mapping of replies, in one place: an operation's result, a
//! `Result<Reply, HubError>`, encodes into its reply frame (the request's
//! opcode with the reply bit, and the reply's header and payloads) or into
//! an `Error` frame ([`encode_reply`], the server's side); a reply frame
//! decodes back into the `Reply` ([`decode_reply`], a client's side).

use crate::frame::Frame;
use crate::header::{self as h, ErrorReply};
use crate::trust_wire::{batch_receipt_header, batch_receipt_of, receipt_of};
use crate::{
    encode, encode_head, parse_header, parse_id, parse_queue, parse_refusal, status_reply, Opcode,
};
use bytes::Bytes;
use gonets_types::{
    AcceptanceReceipt, Accepted, AcceptedMany, AckedMany, AnswerBody, DataKindId, DeliveryBody,
    EventKind, HistoryEvent, HubError, Message, MessageId, ParticipantId, ProviderNotice,
    QueueStats, Reply, ReplyKind, StatusView,
};

/// Appends the frame answering request `correlation_id` of opcode
/// `request` with `result`.
pub fn encode_reply(
    out: &mut Vec<u8>,
    request: Opcode,
    correlation_id: u64,
    result: &Result<Reply, HubError>,
) {
    let reply = match result {
        Ok(reply) => reply,
        Err(e) => return encode_error(out, correlation_id, &ErrorReply::from_hub(e)),
    };
    let op = request.reply();
    match reply {
        Reply::Accepted(a) => {
            // Borrowed: a single send's reply, one a message on the bulk
            // path, builds no `String`s (the JSON is `h::Accepted`'s).
            let header = crate::message_out::AcceptedOut(a);
            encode(out, op, correlation_id, &header, &[]);
        }
        Reply::Message(m) => encode_messages(out, op, correlation_id, std::slice::from_ref(m)),
        Reply::Messages(ms) => encode_messages(out, op, correlation_id, ms),
        Reply::Done => encode(out, op, correlation_id, &h::Empty {}, &[]),
        Reply::Status(s) => encode(out, op, correlation_id, &status_reply(s), &[]),
        Reply::Stats(s) => {
            let header = h::QueueStatsReply {
                depth: s.depth,
                in_flight: s.in_flight,
                oldest_age_ms: s.oldest_age_ms,
            };
            encode(out, op, correlation_id, &header, &[]);
        }
        Reply::AcceptedMany(results) => {
            encode(out, op, correlation_id, &accepted_many_header(results), &[])
        }
        Reply::AckedMany(refused) => {
            let header = h::AckedMany {
                refused: refused
                    .iter()
                    .map(|(id, e)| h::AckRefused {
                        id: id.to_text(),
                        error: ErrorReply::from_hub(e),
                    })
                    .collect(),
            };
            encode(out, op, correlation_id, &header, &[]);
        }
        Reply::Upload(state) => {
            let header = crate::attachment_wire::upload_header(state);
            encode(out, op, correlation_id, &header, &[]);
        }
        Reply::Attachment(r) => {
            let header = crate::attachment_wire::ref_header(r);
            encode(out, op, correlation_id, &header, &[]);
        }
        Reply::AttachmentBytes(b) => {
            let header = h::AttachmentBytes {
                size_bytes: b.size_bytes,
                offset: b.offset,
            };
            encode(out, op, correlation_id, &header, &[&b.bytes]);
        }
    }
}

/// [`encode_reply`] without the message payloads of a `Message` or
/// `Messages` reply: appends the frame's headers (announcing the payloads'
/// length) and returns the payloads to send right after them, in order
/// (empty for any other reply, whose frame `out` then holds whole). Sent
/// back to back, the head and the payloads are the same bytes as
/// [`encode_reply`]'s frame.
pub fn encode_reply_head(
    out: &mut Vec<u8>,
    request: Opcode,
    correlation_id: u64,
    result: &Result<Reply, HubError>,
) -> Vec<Bytes> {
    let messages = match result {
        Ok(Reply::Message(m)) => std::slice::from_ref(m),
        Ok(Reply::Messages(ms)) => &ms[..],
        _ => {
            encode_reply(out, request, correlation_id, result);
            return Vec::new();
        }
    };
    encode_messages_head(out, request.reply(), correlation_id, messages);
    messages.iter().map(|m| m.payload.clone()).collect()
}

/// The wire header of a `send_requests` reply.
fn accepted_many_header(results: &AcceptedMany) -> h::AcceptedMany {
    let result = |r: &Result<Accepted, HubError>| match r {
        Ok(a) => h::BatchResult {
            id: Some(a.id.to_text()),
            time_ms: a.time_ms,
            duplicate: a.duplicate,
            error: None,
        },
        Err(e) => h::BatchResult {
            error: Some(ErrorReply::from_hub(e)),
            ..h::BatchResult::default()
        },
    };
    // One receipt for the batch, written once (every accepted result of
    // the batch shares it).
    let batch_receipt = results.iter().find_map(|r| match r {
        Ok(Accepted {
            receipt: Some(AcceptanceReceipt::Batch(b)),
            ..
        }) => Some(batch_receipt_header(b)),
        _ => None,
    });
    h::AcceptedMany {
        results: results.iter().map(result).collect(),
        batch_receipt,
    }
}

/// A `send_requests` reply from its wire header: the batch's receipt, if
/// any, on each accepted request it names.
fn accepted_many(r: h::AcceptedMany) -> Result<AcceptedMany, BadReply> {
    let batch = r
        .batch_receipt
        .as_ref()
        .map(batch_receipt_of)
        .transpose()
        .map_err(bad)?
        .map(std::sync::Arc::new);
    let receipt_of = |id: MessageId| {
        let b = batch.as_ref().filter(|b| b.entry(id).is_some())?;
        Some(AcceptanceReceipt::Batch(std::sync::Arc::clone(b)))
    };
    r.results
        .into_iter()
        .map(|r| match (r.id, r.error) {
            (Some(id), None) => {
                let id = parse_id(&id).map_err(bad)?;
                Ok(Ok(Accepted {
                    id,
                    time_ms: r.time_ms,
                    duplicate: r.duplicate,
                    receipt: receipt_of(id).filter(|_| !r.duplicate),
                }))
            }
            (None, Some(e)) => Ok(Err(hub_error(&e)?)),
            _ => Err(bad("a batch result holds an id or an error")),
        })
        .collect()
}

/// An `ack_many` reply from its wire header.
fn acked_many(r: h::AckedMany) -> Result<AckedMany, BadReply> {
    r.refused
        .into_iter()
        .map(|r| Ok((parse_id(&r.id).map_err(bad)?, hub_error(&r.error)?)))
        .collect()
}

/// The hub's error an error header names (a slot of a batch's reply).
fn hub_error(e: &ErrorReply) -> Result<HubError, BadReply> {
    e.to_hub()
        .ok_or_else(|| bad(format!("{} is not a hub error", e.code)))
}

/// Appends an `Error` frame for request `correlation_id` (0: the connection).
pub fn encode_error(out: &mut Vec<u8>, correlation_id: u64, e: &ErrorReply) {
    encode(out, Opcode::Error, correlation_id, e, &[]);
}

/// Appends a `Push` frame: `m`, pushed to subscription `subscription` (the
/// subscribe's correlation id).
pub fn encode_push(out: &mut Vec<u8>, subscription: u64, m: &Message) {
    encode(
        out,
        Opcode::Push,
        subscription,
        &crate::message_out::MessageOut(m),
        &[&m.payload],
    );
}

/// Messages as a reply (`Fetch`, `Call`): their headers, and their payloads
/// back to back in the body, in order.
fn encode_messages(out: &mut Vec<u8>, op: Opcode, correlation_id: u64, messages: &[Message]) {
    let body_bytes = encode_messages_head(out, op, correlation_id, messages);
    // One growth at most, to the exact size (see `encode`).
    out.reserve(body_bytes);
    for m in messages {
        out.extend_from_slice(&m.payload);
    }
}

/// The head of a messages reply (its headers, announcing the payloads back
/// to back); the payloads' length.
fn encode_messages_head(
    out: &mut Vec<u8>,
    op: Opcode,
    correlation_id: u64,
    messages: &[Message],
) -> usize {
    let headers = crate::message_out::MessagesOut(messages);
    let body_bytes = messages.iter().map(|m| m.payload.len()).sum();
    encode_head(out, op, correlation_id, &headers, body_bytes);
    body_bytes
}

/// A reply frame that does not read as the reply the protocol promises
/// (the client's side: the server broke the protocol).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("bad reply: {0}")]
pub struct BadReply(pub String);

fn bad(e: impl std::fmt::Display) -> BadReply {
    BadReply(e.to_string())
}

/// The client's side of the same mapping: the reply of a command that gets
/// `kind` ([`Command::reply_kind`](gonets_types::Command::reply_kind)) from
/// its reply frame, or the `ERROR` frame's header.
pub fn decode_reply(
    kind: ReplyKind,
    frame: &mut Frame,
) -> Result<Result<Reply, ErrorReply>, BadReply> {
    match frame.header.opcode {
        Opcode::Error => return Ok(Err(parse_header(&mut frame.json).map_err(bad)?)),
        Opcode::Reply(_) => {}
        other => return Err(bad(format!("{other:?} is not a reply"))),
    }
    let json = &mut frame.json;
    Ok(Ok(match kind {
        ReplyKind::Accepted => {
            let a: h::Accepted = parse_header(json).map_err(bad)?;
            let receipt = a
                .receipt
                .as_ref()
                .map(receipt_of)
                .transpose()
                .map_err(bad)?;
            Reply::Accepted(Accepted {
                id: parse_id(&a.id).map_err(bad)?,
                time_ms: a.time_ms,
                duplicate: a.duplicate,
                receipt: receipt.map(|r| AcceptanceReceipt::One(Box::new(r))),
            })
        }
        ReplyKind::Message => {
            let mut ms = decode_messages(json, frame.body.clone())?;
            match (ms.pop(), ms.is_empty()) {
                (Some(m), true) => Reply::Message(m),
                _ => return Err(bad("a call's reply holds one message")),
            }
        }
        ReplyKind::Messages => Reply::Messages(decode_messages(json, frame.body.clone())?),
        ReplyKind::Done => Reply::Done,
        ReplyKind::Status => Reply::Status(status_view(parse_header(json).map_err(bad)?)?),
        ReplyKind::Stats => {
            let s: h::QueueStatsReply = parse_header(json).map_err(bad)?;
            Reply::Stats(QueueStats {
                depth: s.depth,
                in_flight: s.in_flight,
                oldest_age_ms: s.oldest_age_ms,
            })
        }
        ReplyKind::AcceptedMany => {
            Reply::AcceptedMany(accepted_many(parse_header(json).map_err(bad)?)?)
        }
        ReplyKind::AckedMany => Reply::AckedMany(acked_many(parse_header(json).map_err(bad)?)?),
        ReplyKind::Upload => {
            let r: h::UploadReply = parse_header(json).map_err(bad)?;
            Reply::Upload(crate::attachment_wire::upload_of(&r).map_err(bad)?)
        }
        ReplyKind::Attachment => {
            let r: h::Attachment = parse_header(json).map_err(bad)?;
            let refs = crate::attachment_wire::refs_of(std::slice::from_ref(&r)).map_err(bad)?;
            Reply::Attachment(refs[0])
        }
        ReplyKind::AttachmentBytes => {
            let r: h::AttachmentBytes = parse_header(json).map_err(bad)?;
            let body = frame.body.clone();
            Reply::AttachmentBytes(crate::attachment_wire::attachment_bytes_of(&r, body))
        }
    }))
}

/// The message of a `Push` frame.
pub fn decode_push(frame: &mut Frame) -> Result<Message, BadReply> {
    let header: h::MessageHeader = parse_header(&mut frame.json).map_err(bad)?;
    message_from_header(header, frame.body.clone())
}

/// The messages of a `Fetch` or `Call` reply: their headers, and their
/// payloads back to back in `body`.
fn decode_messages(json: &mut [u8], mut body: Bytes) -> Result<Vec<Message>, BadReply> {
    let messages: h::Messages = parse_header(json).map_err(bad)?;
    let mut out = Vec::with_capacity(messages.messages.len());
    for m in messages.messages {
        let n = m.payload_bytes as usize;
        if n > body.len() {
            return Err(bad("payload lengths exceed the body"));
        }
        let payload = body.split_to(n);
        out.push(message_from_header(m, payload)?);
    }
    if !body.is_empty() {
        return Err(bad("bytes left over after the payloads"));
    }
    Ok(out)
}

/// A message from its wire header and payload (the inverse of what
/// `message_out.rs` writes): its lease comes back as its reader.
pub fn message_from_header(m: h::MessageHeader, payload: Bytes) -> Result<Message, BadReply> {
    let (digest, signature, receipt) = crate::trust_wire::delivered_of(&m).map_err(bad)?;
    let body = match m.body.as_str() {
        "request" => DeliveryBody::Request,
        "data" => DeliveryBody::Answer(AnswerBody::Data),
        "refusal" => DeliveryBody::Answer(AnswerBody::Refusal {
            code: parse_refusal(m.refusal_code.as_deref().unwrap_or("")).map_err(bad)?,
            reason: m.refusal_reason.unwrap_or_default(),
        }),
        other => return Err(bad(format!("unknown message body {other:?}"))),
    };
    if payload.len() != m.payload_bytes as usize {
        return Err(bad("payload length differs from the header's"));
    }
    Ok(Message {
        queue: parse_queue(&m.queue).map_err(bad)?,
        id: parse_id(&m.id).map_err(bad)?,
        reply_to: m
            .reply_to
            .as_deref()
            .map(parse_id)
            .transpose()
            .map_err(bad)?,
        kind: DataKindId::new(&m.kind),
        from: ParticipantId::new(&m.from),
        body,
        time_ms: m.time_ms,
        deadline_ms: m.deadline_ms,
        delivery_count: m.delivery_count,
        test: m.test,
        transaction: m.transaction,
        payload,
        reader: m.lease,
        digest,
        signature,
        receipt,
        attachments: crate::attachment_wire::refs_of(&m.attachments).map_err(bad)?,
    })
}

/// A history from its wire form (the inverse of [`status_reply`]).
pub fn status_view(s: h::StatusReply) -> Result<StatusView, BadReply> {
    let events = s
        .events
        .iter()
        .map(|e| {
            // Bounded by the closed set of event kinds.
            let kind = (1..=u8::MAX)
                .map_while(EventKind::from_u8)
                .find(|k| k.as_str() == e.kind)
                .ok_or_else(|| bad(format!("unknown history event {:?}", e.kind)))?;
            Ok(HistoryEvent {
                kind,
                time_ms: e.time_ms,
                count: e.count,
            })
        })
        .collect::<Result<Vec<_>, BadReply>>()?;
    Ok(StatusView {
        request_id: parse_id(&s.request_id).map_err(bad)?,
        answer_id: s
            .answer_id
            .as_deref()
            .map(parse_id)
            .transpose()
            .map_err(bad)?,
        kind: DataKindId::new(&s.kind),
        consumer: ParticipantId::new(&s.consumer),
        provider: ParticipantId::new(&s.provider),
        deadline_ms: s.deadline_ms,
        events,
        // A notice of a type this client does not know is left out.
        notice: s
            .notice
            .filter(|n| n.notice_type == h::NOTICE_PROVIDER_UNREACHABLE)
            .map(|n| ProviderNotice {
                provider: ParticipantId::new(&n.provider),
                unreachable_since_ms: n.unreachable_since_ms,
                last_read_ms: n.last_read_ms,
                waiting: n.waiting,
            }),
    })
}

#[cfg(test)]
mod tests {
    //! Moved from the client's `message` module (its conversion is this one).
    use super::*;
    use gonets_types::{MessageId, QueueId};

    #[test]
    fn given_a_wire_message_header_when_converted_then_the_lease_holder_lands_in_reader() {
        let id = MessageId::new(1_700_000_000_000, 1, 42);
        let header = h::MessageHeader {
            queue: "answers/MFC".into(),
            id: id.to_text(),
            reply_to: Some(id.to_string()),
            kind: "urn:gonets:fns:egrul-extract:1".into(),
            from: "FNS".into(),
            body: "data".into(),
            time_ms: 5,
            delivery_count: 1,
            lease: 77,
            payload_bytes: 3,
            ..h::MessageHeader::default()
        };
        let m = message_from_header(header, Bytes::from_static(b"abc")).expect("a valid message");
        assert_eq!(m.reader, 77);
        assert_eq!(m.queue, QueueId::Answers(ParticipantId::new("MFC")));
        assert_eq!(m.reply_to, Some(id));
        assert_eq!(m.body, DeliveryBody::Answer(AnswerBody::Data));
        assert_eq!(&m.payload[..], b"abc");
    }

    #[test]
    fn given_a_payload_shorter_than_the_header_says_when_converted_then_bad_reply() {
        let header = h::MessageHeader {
            queue: "answers/MFC".into(),
            id: MessageId::new(1, 0, 1).to_string(),
            body: "request".into(),
            payload_bytes: 4,
            ..h::MessageHeader::default()
        };
        let r = message_from_header(header, Bytes::from_static(b"abc"));
        assert!(matches!(r, Err(BadReply(_))), "{r:?}");
    }
}
