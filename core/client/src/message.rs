//! A message as the client receives it (fetched, pushed, or a call's
//! answer) is the vocabulary's [`Message`]: its `reader` field carries the
//! lease holder the server sent, which `ack` and `nack` send back.

use crate::ClientError;
use bytes::Bytes;
use gonets_proto::{header as h, Frame};
use gonets_types::ids::{DataKindId, ParticipantId};
use gonets_types::{AnswerBody, DeliveryBody, Message};

fn bad(e: impl std::fmt::Display) -> ClientError {
    ClientError::BadReply(e.to_string())
}

/// The messages of a `Fetch` or `Call` reply.
pub(crate) fn messages_of(f: &mut Frame) -> Result<Vec<Message>, ClientError> {
    let messages: h::Messages = gonets_proto::parse_header(&mut f.json).map_err(bad)?;
    let mut body = f.body.clone();
    let mut out = Vec::with_capacity(messages.messages.len());
    for m in messages.messages {
        let n = m.payload_bytes as usize;
        if n > body.len() {
            return Err(bad("payload lengths exceed the body"));
        }
        let payload = body.split_to(n);
        out.push(message_of(m, payload)?);
    }
    if !body.is_empty() {
        return Err(bad("bytes left over after the payloads"));
    }
    Ok(out)
}

/// A message from its wire header and payload.
pub(crate) fn message_of(m: h::MessageHeader, payload: Bytes) -> Result<Message, ClientError> {
    let body = match m.body.as_str() {
        "request" => DeliveryBody::Request,
        "data" => DeliveryBody::Answer(AnswerBody::Data),
        "refusal" => DeliveryBody::Answer(AnswerBody::Refusal {
            code: gonets_proto::parse_refusal(m.refusal_code.as_deref().unwrap_or(""))
                .map_err(bad)?,
            reason: m.refusal_reason.unwrap_or_default(),
        }),
        other => return Err(bad(format!("unknown message body {other:?}"))),
    };
    if payload.len() != m.payload_bytes as usize {
        return Err(bad("payload length differs from the header's"));
    }
    Ok(Message {
        queue: gonets_proto::parse_queue(&m.queue).map_err(bad)?,
        id: gonets_proto::parse_id(&m.id).map_err(bad)?,
        reply_to: m
            .reply_to
            .as_deref()
            .map(gonets_proto::parse_id)
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
        // The lease holder: ack and nack name it.
        reader: m.lease,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use gonets_types::ids::{MessageId, QueueId};

    #[test]
    fn given_a_wire_message_header_when_converted_then_the_lease_holder_lands_in_reader() {
        let id = MessageId::new(1_700_000_000_000, 1, 42);
        let header = h::MessageHeader {
            queue: "answers/MFC".into(),
            id: id.to_string(),
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
        let m = message_of(header, Bytes::from_static(b"abc")).expect("a valid message");
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
        let r = message_of(header, Bytes::from_static(b"abc"));
        assert!(matches!(r, Err(ClientError::BadReply(_))), "{r:?}");
    }
}
