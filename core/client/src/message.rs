//! A message as the client receives it (fetched, pushed, or a call's answer).

use crate::ClientError;
use bytes::Bytes;
use gonets_proto::{header as h, Frame};
use gonets_types::ids::{DataKindId, MessageId, ParticipantId, QueueId};
use gonets_types::AnswerBody;
use gonets_types::DeliveryBody;

/// A delivered message with its payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivered {
    /// The queue it came from.
    pub queue: QueueId,
    /// Its id.
    pub id: MessageId,
    /// For answers: the request answered.
    pub reply_to: Option<MessageId>,
    /// Data kind.
    pub kind: DataKindId,
    /// The sender (`HUB` for the hub's own refusals).
    pub from: ParticipantId,
    /// A request, or an answer's body (data or refusal).
    pub body: DeliveryBody,
    /// Hub time, ms.
    pub time_ms: u64,
    /// A request's absolute deadline, ms.
    pub deadline_ms: u64,
    /// 1 on first delivery.
    pub delivery_count: u32,
    /// Test traffic.
    pub test: bool,
    /// Transaction code.
    pub transaction: Option<String>,
    /// The lease holder (ack and nack send it back).
    pub lease: u64,
    /// The payload.
    pub payload: Bytes,
}

fn bad(e: impl std::fmt::Display) -> ClientError {
    ClientError::BadReply(e.to_string())
}

impl Delivered {
    /// The messages of a `Fetch` or `Call` reply (or the error it carries).
    pub(crate) fn from_frame(f: &mut Frame) -> Result<Vec<Delivered>, ClientError> {
        let messages: h::Messages = gonets_proto::parse_header(&mut f.json).map_err(bad)?;
        let mut body = f.body.clone();
        let mut out = Vec::with_capacity(messages.messages.len());
        for m in messages.messages {
            let n = m.payload_bytes as usize;
            if n > body.len() {
                return Err(bad("payload lengths exceed the body"));
            }
            let payload = body.split_to(n);
            out.push(Delivered::from_header(m, payload)?);
        }
        if !body.is_empty() {
            return Err(bad("bytes left over after the payloads"));
        }
        Ok(out)
    }

    /// A message from its wire header and payload.
    pub(crate) fn from_header(
        m: h::MessageHeader,
        payload: Bytes,
    ) -> Result<Delivered, ClientError> {
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
        Ok(Delivered {
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
            lease: m.lease,
            payload,
        })
    }
}
