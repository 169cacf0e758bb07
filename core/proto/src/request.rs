//! The wire mapping of requests, in one place: a request frame (opcode,
//! JSON header, payload) decodes into the vocabulary's [`Command`]
//! ([`decode_command`], the server's side), and a command encodes into its
//! request frame ([`encode_command`], a client's side).
//!
//! Hello, Ping, AddCredits and Unsubscribe are connection-level (no hub
//! operation): the server reads their headers itself with
//! [`request_header`].

use crate::attachment_wire as aw;
use crate::header::{self as h, ErrorReply, RequestHeader};
use crate::trust_wire::{base64_of, sender_signature};
use crate::{parse_id, parse_queue, parse_refusal, parse_request, queue_name, HeaderError, Opcode};
use bytes::Bytes;
use gonets_types::{
    check_batch_len, Command, DataKindId, HubError, MessageId, NewRequest, QueueId, ReaderId,
    SenderSignature, TEXT_BYTES_MAX,
};

/// The reader a decoded `Fetch` or `Subscribe` names: none (no reader is
/// 0). The session that runs the command puts its own (a fetch) or the
/// subscription's (a subscribe); a client cannot pick a reader.
pub const READER_OF_SESSION: ReaderId = 0;

/// Why a request frame does not decode into a [`Command`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RequestError {
    /// The JSON header is empty, not JSON, or not a JSON object: the peer
    /// does not speak the protocol. A fatal `BAD_HEADER` under the request's
    /// correlation id, then the connection closes.
    BadHeader(HeaderError),
    /// A field is missing or of the wrong type, a queue, id or code does not
    /// parse, or a text is over its limit: the request is answered with this
    /// error (`MALFORMED` or `TOO_LARGE`) and the connection goes on.
    Refused(Box<ErrorReply>),
}

impl RequestError {
    /// True when the connection ends after the error frame.
    pub fn is_fatal(&self) -> bool {
        matches!(self, RequestError::BadHeader(_))
    }

    /// The error frame's header.
    pub fn reply(&self) -> ErrorReply {
        match self {
            RequestError::BadHeader(e) => ErrorReply::from_header(e),
            RequestError::Refused(reply) => (**reply).clone(),
        }
    }
}

impl From<HeaderError> for RequestError {
    fn from(e: HeaderError) -> RequestError {
        match e {
            HeaderError::Unparseable(_) => RequestError::BadHeader(e),
            e => RequestError::Refused(Box::new(ErrorReply::from_header(&e))),
        }
    }
}

impl From<HubError> for RequestError {
    fn from(e: HubError) -> RequestError {
        RequestError::Refused(Box::new(ErrorReply::from_hub(&e)))
    }
}

/// A request's JSON header of type `T`: `BadHeader` when it is not a JSON
/// object, `Refused` (`MALFORMED`) when a field is missing or ill-typed.
pub fn request_header<T: RequestHeader>(json: &mut [u8]) -> Result<T, RequestError> {
    Ok(parse_request(json)?)
}

/// The operation of a request frame: its opcode, its JSON header (parsed
/// in place: simd-json rewrites the buffer) and its body (the payload of
/// `SendRequest`, `Call` and `SendResponse`, ignored otherwise).
///
/// `Ack` and `Nack` name their reader by the `lease` of the header (the
/// front end checks the lease is its connection's); `Fetch` and `Subscribe`
/// name [`READER_OF_SESSION`]. Text fields are checked against
/// [`TEXT_BYTES_MAX`] before anything else about the request.
pub fn decode_command(
    opcode: Opcode,
    json: &mut [u8],
    body: Bytes,
) -> Result<Command, RequestError> {
    Ok(match opcode {
        Opcode::SendRequest | Opcode::Call => {
            let r: h::SendRequest = request_header(json)?;
            let signature =
                sender_signature(r.signature.as_deref(), r.signature_key_id.as_deref())?;
            let r = new_request(r, body)?;
            let command = if opcode == Opcode::Call {
                Command::Call(r)
            } else {
                Command::SendRequest(r)
            };
            signed(command, signature)
        }
        Opcode::SendRequests => {
            let r: h::SendRequests = request_header(json)?;
            let signature =
                sender_signature(r.signature.as_deref(), r.signature_key_id.as_deref())?;
            signed(Command::SendRequests(new_requests(r, body)?), signature)
        }
        Opcode::AckMany => {
            let r: h::AckMany = request_header(json)?;
            Command::AckMany {
                queue: parse_queue(&r.queue)?,
                ids: batch_ids(&r.ids)?,
                reader: r.lease,
            }
        }
        Opcode::NackMany => {
            let r: h::NackMany = request_header(json)?;
            Command::NackMany {
                queue: parse_queue(&r.queue)?,
                ids: batch_ids(&r.ids)?,
                reader: r.lease,
                delay_ms: r.delay_ms,
            }
        }
        Opcode::Fetch => {
            let r: h::Fetch = request_header(json)?;
            Command::Fetch {
                queue: parse_queue(&r.queue)?,
                max: r.max,
                wait_ms: r.wait_ms,
                reader: READER_OF_SESSION,
            }
        }
        Opcode::Subscribe => {
            let r: h::Subscribe = request_header(json)?;
            Command::Subscribe {
                queue: parse_queue(&r.queue)?,
                credits: r.credits,
                reader: READER_OF_SESSION,
            }
        }
        Opcode::Ack | Opcode::Nack => settle(opcode, request_header(json)?)?,
        Opcode::SendResponse => {
            let r: h::SendResponse = request_header(json)?;
            let signature =
                sender_signature(r.signature.as_deref(), r.signature_key_id.as_deref())?;
            let command = Command::SendResponse {
                request_id: parse_id(&r.request_id)?,
                payload: body,
                attachments: aw::refs_of(&r.attachments)?,
            };
            signed(command, signature)
        }
        Opcode::SendRefusal => {
            let r: h::SendRefusal = request_header(json)?;
            texts_fit(&[("reason", Some(&r.reason))])?;
            let signature =
                sender_signature(r.signature.as_deref(), r.signature_key_id.as_deref())?;
            let command = Command::SendRefusal {
                request_id: parse_id(&r.request_id)?,
                code: parse_refusal(&r.code)?,
                reason: r.reason,
            };
            signed(command, signature)
        }
        Opcode::Status => Command::Status {
            id: parse_id(&request_header::<h::Status>(json)?.id)?,
        },
        Opcode::UploadBegin => aw::upload_begin(request_header(json)?),
        Opcode::UploadChunk => aw::upload_chunk(request_header(json)?, body)?,
        Opcode::UploadStatus => Command::UploadStatus {
            upload: aw::parse_upload(&request_header::<h::UploadStatus>(json)?.upload)?,
        },
        Opcode::UploadFinish => {
            let r: h::UploadFinish = request_header(json)?;
            Command::UploadFinish {
                upload: aw::parse_upload(&r.upload)?,
                digest: aw::parse_digest(&r.digest)?,
            }
        }
        Opcode::ReadAttachment => aw::read_attachment(request_header(json)?)?,
        Opcode::QueueStats => Command::QueueStats {
            queue: parse_queue(&request_header::<h::QueueStats>(json)?.queue)?,
        },
        Opcode::Hello
        | Opcode::Ping
        | Opcode::AddCredits
        | Opcode::Unsubscribe
        | Opcode::Reply(_)
        | Opcode::Push
        | Opcode::Error => {
            return Err(RequestError::from(HubError::Malformed(format!(
                "opcode 0x{:02x} is not an operation on the hub",
                opcode.to_u8()
            ))))
        }
    })
}

/// `command`, wrapped with its sender's `signature` when it has one.
fn signed(command: Command, signature: Option<SenderSignature>) -> Command {
    match signature {
        Some(s) => command.signed(s),
        None => command,
    }
}

/// The ids of an `ACK_MANY` or `NACK_MANY`: within the batch bound, each
/// one an id.
fn batch_ids(ids: &[String]) -> Result<Vec<MessageId>, RequestError> {
    check_batch_len(ids.len()).map_err(HubError::from)?;
    Ok(ids
        .iter()
        .map(|id| parse_id(id))
        .collect::<Result<_, _>>()?)
}

/// `Ack` or `Nack` (`opcode`) of a `Settle` header.
fn settle(opcode: Opcode, r: h::Settle) -> Result<Command, RequestError> {
    let queue = parse_queue(&r.queue)?;
    let id = parse_id(&r.id)?;
    Ok(if opcode == Opcode::Ack {
        Command::Ack {
            queue,
            id,
            reader: r.lease,
        }
    } else {
        Command::Nack {
            queue,
            id,
            reader: r.lease,
            delay_ms: r.delay_ms,
        }
    })
}

/// `TOO_LARGE` naming the first text field longer than [`TEXT_BYTES_MAX`].
fn texts_fit(fields: &[(&str, Option<&str>)]) -> Result<(), RequestError> {
    match fields
        .iter()
        .find_map(|(name, t)| t.filter(|t| t.len() > TEXT_BYTES_MAX).map(|t| (name, t)))
    {
        Some((name, t)) => Err(RequestError::Refused(Box::new(
            ErrorReply::field_too_large(name, t.len(), TEXT_BYTES_MAX),
        ))),
        None => Ok(()),
    }
}

/// The request of a `SendRequest` or `Call` header and its payload.
fn new_request(r: h::SendRequest, payload: Bytes) -> Result<NewRequest, RequestError> {
    texts_fit(&[
        ("idempotency_key", r.idempotency_key.as_deref()),
        ("transaction", r.transaction.as_deref()),
    ])?;
    Ok(NewRequest {
        kind: DataKindId::new(&r.kind),
        payload,
        attachments: aw::refs_of(&r.attachments)?,
        idempotency_key: r.idempotency_key,
        test: r.test,
        transaction: r.transaction,
        state_secret: r.state_secret,
        expires_in_ms: r.expires_in_ms,
    })
}

/// The requests of a `SendRequests` header, their payloads cut from `body`
/// (zero-copy slices of the frame): the batch's length is checked first,
/// and the payload lengths must add up to the body's.
fn new_requests(r: h::SendRequests, body: Bytes) -> Result<Vec<NewRequest>, RequestError> {
    check_batch_len(r.messages.len()).map_err(HubError::from)?;
    let total_bytes: u64 = r.messages.iter().map(|m| u64::from(m.payload_bytes)).sum();
    if total_bytes != body.len() as u64 {
        return Err(RequestError::from(HubError::Malformed(format!(
            "the payload lengths add up to {total_bytes} bytes; the body has {}",
            body.len()
        ))));
    }
    let kind = DataKindId::new(&r.kind);
    let mut at = 0;
    let mut requests = Vec::with_capacity(r.messages.len());
    for m in r.messages {
        texts_fit(&[
            ("idempotency_key", m.idempotency_key.as_deref()),
            ("transaction", m.transaction.as_deref()),
        ])?;
        let end = at + m.payload_bytes as usize;
        requests.push(NewRequest {
            kind: kind.clone(),
            payload: body.slice(at..end),
            idempotency_key: m.idempotency_key,
            test: m.test,
            transaction: m.transaction,
            state_secret: m.state_secret,
            expires_in_ms: m.expires_in_ms,
            // A batch's requests carry no attachments (docs/protocol.md).
            attachments: Vec::new(),
        });
        at = end;
    }
    Ok(requests)
}

/// The client's side of the same mapping: appends the request frame of
/// `command` under `correlation_id` and returns its opcode. The reader of
/// an `Ack` or `Nack` goes out as its `lease`; that of a `Fetch` or
/// `Subscribe` does not go out (the server's session picks it).
pub fn encode_command(out: &mut Vec<u8>, correlation_id: u64, command: &Command) -> Opcode {
    match command {
        Command::Signed { signature, command } => {
            encode_signed(out, correlation_id, command, Some(signature))
        }
        command => encode_signed(out, correlation_id, command, None),
    }
}

/// The signature fields of a header: the signature in base64, its key.
fn signature_fields(signature: Option<&SenderSignature>) -> (Option<String>, Option<String>) {
    match signature {
        Some(s) => (Some(base64_of(&s.bytes)), Some(s.key_id.clone())),
        None => (None, None),
    }
}

/// [`encode_command`] of an unwrapped `command` and its `signature`.
fn encode_signed(
    out: &mut Vec<u8>,
    correlation_id: u64,
    command: &Command,
    signature: Option<&SenderSignature>,
) -> Opcode {
    let id = correlation_id;
    let (sig, sig_key) = signature_fields(signature);
    // Each arm writes its frame straight into `out` (`crate::encode`).
    match command {
        Command::SendRequest(r) => encode_request(out, Opcode::SendRequest, id, r, signature),
        Command::Call(r) => encode_request(out, Opcode::Call, id, r, signature),
        Command::SendRequests(rs) => encode_requests(out, id, rs, signature),
        Command::AckMany { queue, ids, reader } => {
            let header = h::AckMany {
                queue: queue_name(queue),
                ids: ids.iter().map(MessageId::to_string).collect(),
                lease: *reader,
            };
            encode_as(out, Opcode::AckMany, id, &header, &[])
        }
        Command::NackMany {
            queue,
            ids,
            reader,
            delay_ms,
        } => {
            let header = h::NackMany {
                queue: queue_name(queue),
                ids: ids.iter().map(MessageId::to_string).collect(),
                lease: *reader,
                delay_ms: *delay_ms,
            };
            encode_as(out, Opcode::NackMany, id, &header, &[])
        }
        Command::Fetch {
            queue,
            max,
            wait_ms,
            ..
        } => {
            let (queue, max, wait_ms) = (queue_name(queue), *max, *wait_ms);
            let header = h::Fetch {
                queue,
                max,
                wait_ms,
            };
            encode_as(out, Opcode::Fetch, id, &header, &[])
        }
        Command::Subscribe { queue, credits, .. } => {
            let (queue, credits) = (queue_name(queue), *credits);
            let header = h::Subscribe { queue, credits };
            encode_as(out, Opcode::Subscribe, id, &header, &[])
        }
        Command::Ack {
            queue,
            id: m,
            reader,
        } => encode_settle(out, Opcode::Ack, id, (queue, m, *reader, 0)),
        Command::Nack {
            queue,
            id: m,
            reader,
            delay_ms,
        } => encode_settle(out, Opcode::Nack, id, (queue, m, *reader, *delay_ms)),
        Command::SendResponse {
            request_id,
            payload,
            attachments,
        } => {
            let header = h::SendResponse {
                request_id: request_id.to_string(),
                signature: sig,
                signature_key_id: sig_key,
                attachments: aw::ref_headers(attachments),
            };
            encode_as(out, Opcode::SendResponse, id, &header, payload)
        }
        Command::SendRefusal {
            request_id,
            code,
            reason,
        } => {
            let header = h::SendRefusal {
                request_id: request_id.to_string(),
                code: code.as_str().into(),
                reason: reason.clone(),
                signature: sig,
                signature_key_id: sig_key,
            };
            encode_as(out, Opcode::SendRefusal, id, &header, &[])
        }
        Command::Status { id: m } => {
            let header = h::Status { id: m.to_string() };
            encode_as(out, Opcode::Status, id, &header, &[])
        }
        Command::QueueStats { queue } => {
            let header = h::QueueStats {
                queue: queue_name(queue),
            };
            encode_as(out, Opcode::QueueStats, id, &header, &[])
        }
        Command::UploadBegin { kind, size_bytes } => {
            let header = h::UploadBegin {
                kind: kind.to_string(),
                size_bytes: *size_bytes,
            };
            encode_as(out, Opcode::UploadBegin, id, &header, &[])
        }
        Command::UploadChunk {
            upload,
            offset,
            crc32c,
            bytes,
        } => {
            let header = h::UploadChunk {
                upload: upload.to_string(),
                offset: *offset,
                crc32c: *crc32c,
            };
            encode_as(out, Opcode::UploadChunk, id, &header, bytes)
        }
        Command::UploadStatus { upload } => {
            let header = h::UploadStatus {
                upload: upload.to_string(),
            };
            encode_as(out, Opcode::UploadStatus, id, &header, &[])
        }
        Command::UploadFinish { upload, digest } => {
            let header = h::UploadFinish {
                upload: upload.to_string(),
                digest: digest.to_hex(),
            };
            encode_as(out, Opcode::UploadFinish, id, &header, &[])
        }
        Command::ReadAttachment {
            digest,
            offset,
            bytes_max,
        } => {
            let header = h::ReadAttachment {
                digest: digest.to_hex(),
                offset: *offset,
                bytes_max: *bytes_max,
            };
            encode_as(out, Opcode::ReadAttachment, id, &header, &[])
        }
        // A signature wrapped twice: the inner one goes (the hub refuses
        // the nesting only where it can see it; a client never makes it).
        Command::Signed { signature, command } => {
            encode_signed(out, correlation_id, command, Some(signature))
        }
    }
}

/// Writes one frame of `op` and returns `op`.
fn encode_as<T: serde::Serialize>(
    out: &mut Vec<u8>,
    op: Opcode,
    correlation_id: u64,
    header: &T,
    body: &[u8],
) -> Opcode {
    crate::encode(out, op, correlation_id, header, &[body]);
    op
}

/// A `send_request` or `call` frame.
fn encode_request(
    out: &mut Vec<u8>,
    op: Opcode,
    correlation_id: u64,
    r: &NewRequest,
    signature: Option<&SenderSignature>,
) -> Opcode {
    let (signature, signature_key_id) = signature_fields(signature);
    let header = h::SendRequest {
        kind: r.kind.to_string(),
        idempotency_key: r.idempotency_key.clone(),
        test: r.test,
        transaction: r.transaction.clone(),
        state_secret: r.state_secret,
        expires_in_ms: r.expires_in_ms,
        signature,
        signature_key_id,
        attachments: aw::ref_headers(&r.attachments),
    };
    encode_as(out, op, correlation_id, &header, &r.payload)
}

/// A `send_requests` frame: the kind once (the first request's: a client
/// checks a batch is of one kind before it encodes it), each request's
/// fields and payload length, the payloads back to back.
fn encode_requests(
    out: &mut Vec<u8>,
    correlation_id: u64,
    rs: &[NewRequest],
    signature: Option<&SenderSignature>,
) -> Opcode {
    let (signature, signature_key_id) = signature_fields(signature);
    let header = h::SendRequests {
        kind: rs.first().map(|r| r.kind.to_string()).unwrap_or_default(),
        messages: rs
            .iter()
            .map(|r| h::BatchRequest {
                payload_bytes: u32::try_from(r.payload.len()).unwrap_or(u32::MAX),
                idempotency_key: r.idempotency_key.clone(),
                test: r.test,
                transaction: r.transaction.clone(),
                state_secret: r.state_secret,
                expires_in_ms: r.expires_in_ms,
            })
            .collect(),
        signature,
        signature_key_id,
    };
    let bodies: Vec<&[u8]> = rs.iter().map(|r| &r.payload[..]).collect();
    crate::encode(out, Opcode::SendRequests, correlation_id, &header, &bodies);
    Opcode::SendRequests
}

/// An `ack` or `nack` frame: the queue, the message, the lease and a delay.
fn encode_settle(
    out: &mut Vec<u8>,
    op: Opcode,
    correlation_id: u64,
    (queue, id, lease, delay_ms): (&QueueId, &MessageId, u64, u64),
) -> Opcode {
    let header = h::Settle {
        queue: queue_name(queue),
        id: id.to_string(),
        lease,
        delay_ms,
    };
    encode_as(out, op, correlation_id, &header, &[])
}

#[cfg(test)]
mod tests {
    //! The bytes a client sends for each operation, pinned: they are what
    //! the client built by hand before it went through [`encode_command`]
    //! (the server and the network tests are the contract).
    use super::*;
    use crate::encode_frame;
    use gonets_types::{ParticipantId, RefusalCode};

    const KIND: &str = "urn:gonets:fns:egrul-extract:1";

    /// `encode_command` of `command` under correlation id 9, as a frame of
    /// `op` with the JSON header `json` and body `body`.
    fn assert_wire(command: Command, op: Opcode, json: &str, body: &[u8]) {
        let mut got = Vec::new();
        assert_eq!(encode_command(&mut got, 9, &command), op, "{command:?}");
        let mut want = Vec::new();
        encode_frame(&mut want, op, 9, json.as_bytes(), &[body]);
        assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(&want),
            "{command:?}"
        );
        assert_eq!(got, want, "{command:?}");
    }

    #[test]
    fn given_each_client_operation_when_encoded_then_its_frame_is_the_one_the_client_built_by_hand()
    {
        let id = MessageId::new(1_700_000_000_000, 1, 7);
        let ids = id.to_string();
        let answers = QueueId::Answers(ParticipantId::new("MFC"));
        let mut request = NewRequest::new(KIND, "ogrn 1");
        let plain = format!(r#"{{"kind":"{KIND}","test":false,"state_secret":false}}"#);
        assert_wire(
            Command::Call(request.clone()),
            Opcode::Call,
            &plain,
            b"ogrn 1",
        );
        request.idempotency_key = Some("k-1".into());
        request.transaction = Some("t-1".into());
        request.test = true;
        let keyed = format!(
            r#"{{"kind":"{KIND}","idempotency_key":"k-1","test":true,"transaction":"t-1","state_secret":false}}"#
        );
        assert_wire(
            Command::SendRequest(request),
            Opcode::SendRequest,
            &keyed,
            b"ogrn 1",
        );
        let fetch = Command::Fetch {
            queue: answers.clone(),
            max: 10,
            wait_ms: 5000,
            reader: 3,
        };
        let json = r#"{"queue":"answers/MFC","max":10,"wait_ms":5000}"#;
        assert_wire(fetch, Opcode::Fetch, json, b"");
        let subscribe = Command::Subscribe {
            queue: answers.clone(),
            credits: 4,
            reader: READER_OF_SESSION,
        };
        let json = r#"{"queue":"answers/MFC","credits":4}"#;
        assert_wire(subscribe, Opcode::Subscribe, json, b"");
        let (queue, reader) = (answers.clone(), 77);
        let json = format!(r#"{{"queue":"answers/MFC","id":"{ids}","lease":77,"delay_ms":0}}"#);
        assert_wire(Command::Ack { queue, id, reader }, Opcode::Ack, &json, b"");
        let nack = Command::Nack {
            queue: answers.clone(),
            id,
            reader,
            delay_ms: 250,
        };
        let json = format!(r#"{{"queue":"answers/MFC","id":"{ids}","lease":77,"delay_ms":250}}"#);
        assert_wire(nack, Opcode::Nack, &json, b"");
        let response = Command::SendResponse {
            request_id: id,
            payload: Bytes::from_static(b"data"),
            attachments: Vec::new(),
        };
        let json = format!(r#"{{"request_id":"{ids}"}}"#);
        assert_wire(response, Opcode::SendResponse, &json, b"data");
        let refusal = Command::SendRefusal {
            request_id: id,
            code: RefusalCode::NoData,
            reason: "none".into(),
        };
        let json = format!(r#"{{"request_id":"{ids}","code":"NO_DATA","reason":"none"}}"#);
        assert_wire(refusal, Opcode::SendRefusal, &json, b"");
        let json = format!(r#"{{"id":"{ids}"}}"#);
        assert_wire(Command::Status { id }, Opcode::Status, &json, b"");
        let json = r#"{"queue":"answers/MFC"}"#;
        assert_wire(
            Command::QueueStats { queue: answers },
            Opcode::QueueStats,
            json,
            b"",
        );
    }
}
