//! What a shard writes to its log: requests, answers, history events and
//! snapshot parts, in a compact little-endian binary encoding. Every length
//! read back is bounded by the bytes present before anything is allocated.

use bytes::Bytes;
use gonets_types::ids::{DataKindId, MessageId, ParticipantId};
use gonets_types::refusal::RefusalCode;
use gonets_types::trust::{KEY_ID_BYTES_MAX, SIGNATURE_BYTES_MAX};
use gonets_types::ATTACHMENTS_PER_MESSAGE_MAX;
pub use gonets_types::{AnswerBody, AttachmentRef, Digest, EventKind, SenderSignature};

/// A record of a shard's log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Record {
    /// A request was accepted.
    Request(RequestRecord),
    /// A request was answered: data, a provider's refusal or the hub's own.
    Answer(AnswerRecord),
    /// A step in a message's history.
    Event(EventRecord),
    /// Steps of many exchanges' histories written at once (an `ack_many`):
    /// applied exactly as that many [`Record::Event`]s, in order.
    Events(Vec<EventRecord>),
    /// One part of a state snapshot (an encoded exchange, see `shard::snapshot`).
    SnapshotPart(Bytes),
    /// The end of a snapshot that started at `first_offset`, with its part count.
    SnapshotEnd {
        /// Offset of the snapshot's first record.
        first_offset: u64,
        /// Number of parts.
        parts: u64,
    },
    /// The hub's signature over a log's chain head (tag 7,
    /// `trust_record`); replay ignores it.
    Anchor(gonets_trust::Anchor),
    /// A refusal kept for audit (tag 8, `trust_record`); replay ignores it.
    Audit(crate::trust_record::AuditRecord),
    /// An offset whose record a crash lost before it was durable, filled at
    /// recovery so that the rt records the journal kept return to their own
    /// offsets (tag 10, docs/adr/0036); replay ignores it.
    Lost,
}

/// An accepted request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestRecord {
    /// Hub-assigned id.
    pub id: MessageId,
    /// Its data kind.
    pub kind: DataKindId,
    /// The consumer that sent it.
    pub consumer: ParticipantId,
    /// The provider it goes to.
    pub provider: ParticipantId,
    /// Hub time of acceptance, ms since the Unix epoch.
    pub time_ms: u64,
    /// Absolute deadline, ms since the Unix epoch.
    pub deadline_ms: u64,
    /// Test traffic, kept apart in reports.
    pub test: bool,
    /// Sent with `call` (a realtime caller waits for the answer).
    pub call: bool,
    /// Links the messages of one service case.
    pub transaction: Option<String>,
    /// The consumer's idempotency key.
    pub idempotency_key: Option<String>,
    /// Its digest and the consumer's signature (`None` in records written
    /// before digests were kept, docs/adr/0019); boxed, so a record stays
    /// small whether or not it has one.
    pub seal: Option<Box<Seal>>,
    /// The payload, stored as received.
    pub payload: Bytes,
}

/// What a request or answer record keeps of its authorship
/// (docs/adr/0019): the digest the hub computed at the door, the sender's
/// signature over it when it signed, and for an answer the hub's
/// signature of the answer's receipt when the hub signs, and a request's
/// or a data answer's attachments (docs/adr/0022). Encoded after the record's other fields,
/// before its payload: the digest (32 bytes), a byte of which parts
/// follow (bit 0 the sender's signature, bit 1 the hub's, bit 2
/// attachments), then each signature as its key id (a length-prefixed
/// string) and its bytes (length-prefixed), then the attachments as a
/// count byte and each one's digest (32 bytes) and size (u64).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seal {
    /// The message's digest (`gonets_trust::digest`).
    pub digest: Digest,
    /// The sender's signature over the digest.
    pub signature: Option<SenderSignature>,
    /// The hub's signature over the answer's receipt (its key id and
    /// bytes); never on a request record. Only answers written before
    /// receipts were signed a commit have one (docs/adr/0023): the hub
    /// writes `None` now and signs the receipt when it hands it out.
    pub receipt_signature: Option<SenderSignature>,
    /// The attachments a request or a data answer carries (none on a
    /// refusal).
    pub attachments: Vec<AttachmentRef>,
}

/// A request's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AnswerRecord {
    /// The answer's own id.
    pub id: MessageId,
    /// The request it answers.
    pub request_id: MessageId,
    /// Data or refusal.
    pub body: AnswerBody,
    /// Hub time, ms.
    pub time_ms: u64,
    /// Its digest, the provider's signature and the hub's receipt
    /// signature (`None` for the hub's own refusals, and in records
    /// written before digests were kept); boxed, as a request's.
    pub seal: Option<Box<Seal>>,
    /// The payload (empty for refusals made by the hub).
    pub payload: Bytes,
}

/// A history step of the exchange of `request_id`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventRecord {
    /// The request the exchange belongs to.
    pub request_id: MessageId,
    /// What happened.
    pub kind: EventKind,
    /// Hub time, ms.
    pub time_ms: u64,
    /// Delivery number where it applies, else 0.
    pub count: u32,
}

/// Why bytes did not decode as a record.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("undecodable record: {0}")]
pub struct DecodeError(pub &'static str);

const TAG_REQUEST: u8 = 1;
const TAG_ANSWER: u8 = 2;
const TAG_EVENT: u8 = 3;
const TAG_SNAPSHOT_PART: u8 = 4;
const TAG_SNAPSHOT_END: u8 = 5;
const TAG_EVENTS: u8 = 6;
/// The chain's anchor record (issue 18, `trust_record`).
pub(crate) const TAG_ANCHOR: u8 = 7;
/// An audit record of a refusal (issue 18, `trust_record`).
pub(crate) const TAG_AUDIT: u8 = 8;
/// An answer with its [`Seal`] (an answer without one keeps tag 2).
const TAG_ANSWER_SEALED: u8 = 9;
/// A lost offset filled at recovery ([`Record::Lost`]).
const TAG_LOST: u8 = 10;

/// True when `payload` is a [`Record::Lost`] fill (its tag, 10).
pub fn is_lost(payload: &[u8]) -> bool {
    payload.first() == Some(&TAG_LOST)
}
/// The request flags' bit saying a [`Seal`] follows the idempotency key.
const REQUEST_FLAG_SEALED: u8 = 4;
/// Every request flag bit: test, call, sealed.
const REQUEST_FLAGS_ALL: u8 = 7;
/// Bytes of one encoded event (id, kind, time, count): bounds the count a
/// `Record::Events` may claim by the bytes present.
pub const EVENT_BYTES: usize = 16 + 1 + 8 + 4;
/// Bytes of a `Record::Events` before its events (tag and count).
pub const EVENTS_HEADER_BYTES: usize = 1 + 4;
/// Longest id, key or reason string a record holds, bytes: the
/// vocabulary's bound, which the wire checks first.
pub use gonets_types::TEXT_BYTES_MAX;

impl Record {
    /// Appends the encoding to `out` (a reused buffer).
    pub fn encode(&self, out: &mut Vec<u8>) {
        let payload = self.encode_head(out);
        out.extend_from_slice(payload);
    }

    /// Appends the encoding to `out` but for a request's or an answer's
    /// payload bytes (their length prefix included), and gives those bytes:
    /// the encoding is `out`'s part, then them. The log copies both straight
    /// into its batch, so a payload is copied once on its way to disk.
    /// Other records are encoded whole (and give no bytes).
    pub fn encode_head<'a>(&'a self, out: &mut Vec<u8>) -> &'a [u8] {
        match self {
            Record::Request(r) => {
                out.push(TAG_REQUEST);
                put_id(out, r.id);
                put_str(out, r.kind.as_str());
                put_str(out, r.consumer.as_str());
                put_str(out, r.provider.as_str());
                put_u64(out, r.time_ms);
                put_u64(out, r.deadline_ms);
                let sealed = if r.seal.is_some() {
                    REQUEST_FLAG_SEALED
                } else {
                    0
                };
                out.push(u8::from(r.test) | (u8::from(r.call) << 1) | sealed);
                put_opt_str(out, r.transaction.as_deref());
                put_opt_str(out, r.idempotency_key.as_deref());
                if let Some(seal) = &r.seal {
                    put_seal(out, seal);
                }
                put_len(out, &r.payload);
                &r.payload
            }
            Record::Answer(a) => {
                out.push(if a.seal.is_some() {
                    TAG_ANSWER_SEALED
                } else {
                    TAG_ANSWER
                });
                put_id(out, a.id);
                put_id(out, a.request_id);
                put_answer_body(out, &a.body);
                put_u64(out, a.time_ms);
                if let Some(seal) = &a.seal {
                    put_seal(out, seal);
                }
                put_len(out, &a.payload);
                &a.payload
            }
            Record::Event(e) => {
                out.push(TAG_EVENT);
                put_event(out, e);
                &[]
            }
            Record::Events(events) => {
                out.push(TAG_EVENTS);
                let count = u32::try_from(events.len()).expect("a batch under 4 G events");
                out.extend_from_slice(&count.to_le_bytes());
                for e in events {
                    put_event(out, e);
                }
                &[]
            }
            Record::SnapshotPart(b) => {
                out.push(TAG_SNAPSHOT_PART);
                put_bytes(out, b);
                &[]
            }
            Record::SnapshotEnd {
                first_offset,
                parts,
            } => {
                out.push(TAG_SNAPSHOT_END);
                put_u64(out, *first_offset);
                put_u64(out, *parts);
                &[]
            }
            Record::Anchor(a) => {
                out.push(TAG_ANCHOR);
                crate::trust_record::put_anchor(out, a);
                &[]
            }
            Record::Audit(a) => {
                out.push(TAG_AUDIT);
                crate::trust_record::put_audit(out, a);
                &[]
            }
            Record::Lost => {
                out.push(TAG_LOST);
                &[]
            }
        }
    }

    /// Decodes a record; payloads are copied out of `bytes`.
    pub fn decode(bytes: &[u8]) -> Result<Record, DecodeError> {
        let mut r = Reader { bytes, at: 0 };
        let record = match r.u8()? {
            TAG_REQUEST => {
                let id = r.id()?;
                let kind = DataKindId::new(r.str()?);
                let consumer = ParticipantId::new(r.str()?);
                let provider = ParticipantId::new(r.str()?);
                let time_ms = r.u64()?;
                let deadline_ms = r.u64()?;
                let flags = r.u8()?;
                if flags > REQUEST_FLAGS_ALL {
                    return Err(DecodeError("request flags"));
                }
                let transaction = r.opt_str()?.map(str::to_owned);
                let idempotency_key = r.opt_str()?.map(str::to_owned);
                let seal = if flags & REQUEST_FLAG_SEALED != 0 {
                    Some(Box::new(r.seal()?))
                } else {
                    None
                };
                let payload = Bytes::copy_from_slice(r.bytes()?);
                Record::Request(RequestRecord {
                    id,
                    kind,
                    consumer,
                    provider,
                    time_ms,
                    deadline_ms,
                    test: flags & 1 != 0,
                    call: flags & 2 != 0,
                    transaction,
                    idempotency_key,
                    seal,
                    payload,
                })
            }
            tag @ (TAG_ANSWER | TAG_ANSWER_SEALED) => {
                let id = r.id()?;
                let request_id = r.id()?;
                let body = r.answer_body()?;
                let time_ms = r.u64()?;
                let seal = if tag == TAG_ANSWER_SEALED {
                    Some(Box::new(r.seal()?))
                } else {
                    None
                };
                let payload = Bytes::copy_from_slice(r.bytes()?);
                Record::Answer(AnswerRecord {
                    id,
                    request_id,
                    body,
                    time_ms,
                    seal,
                    payload,
                })
            }
            TAG_EVENT => Record::Event(r.event()?),
            TAG_EVENTS => {
                let count = r.u32()? as usize;
                // Bounded by the bytes present before anything is allocated.
                if count > (bytes.len() - r.at) / EVENT_BYTES {
                    return Err(DecodeError("event count"));
                }
                let mut events = Vec::with_capacity(count);
                for _ in 0..count {
                    events.push(r.event()?);
                }
                Record::Events(events)
            }
            TAG_SNAPSHOT_PART => Record::SnapshotPart(Bytes::copy_from_slice(r.bytes()?)),
            TAG_SNAPSHOT_END => Record::SnapshotEnd {
                first_offset: r.u64()?,
                parts: r.u64()?,
            },
            TAG_ANCHOR => Record::Anchor(crate::trust_record::read_anchor(&mut r)?),
            TAG_AUDIT => Record::Audit(crate::trust_record::read_audit(&mut r)?),
            TAG_LOST => Record::Lost,
            _ => return Err(DecodeError("record tag")),
        };
        if r.at != bytes.len() {
            return Err(DecodeError("trailing bytes"));
        }
        Ok(record)
    }

    /// Where the payload of the request or answer record in `bytes` is,
    /// read as [`Record::decode`] reads it (the same checks) but without
    /// making the other fields: a delivery needs only the payload, and
    /// slices it out of the log's bytes without copying.
    pub fn payload_span(bytes: &[u8]) -> Result<std::ops::Range<usize>, DecodeError> {
        Ok(Record::delivery_parts(bytes)?.payload)
    }

    /// The payload's place and the [`Seal`] (if the record has one) of the
    /// request or answer record in `bytes`: what a delivery reads back
    /// from the log, the other fields skipped (checked as
    /// [`Record::decode`] checks them).
    pub fn delivery_parts(bytes: &[u8]) -> Result<DeliveryParts, DecodeError> {
        let mut r = Reader { bytes, at: 0 };
        let seal = match r.u8()? {
            TAG_REQUEST => {
                r.id()?;
                for _ in 0..3 {
                    r.str()?; // kind, consumer, provider
                }
                r.u64()?; // time
                r.u64()?; // deadline
                let flags = r.u8()?;
                if flags > REQUEST_FLAGS_ALL {
                    return Err(DecodeError("request flags"));
                }
                r.opt_str()?; // transaction
                r.opt_str()?; // idempotency key
                if flags & REQUEST_FLAG_SEALED != 0 {
                    Some(r.seal()?)
                } else {
                    None
                }
            }
            tag @ (TAG_ANSWER | TAG_ANSWER_SEALED) => {
                r.id()?;
                r.id()?;
                r.answer_body()?;
                r.u64()?; // time
                if tag == TAG_ANSWER_SEALED {
                    Some(r.seal()?)
                } else {
                    None
                }
            }
            _ => return Err(DecodeError("not a request or an answer")),
        };
        let payload_bytes = r.bytes()?.len();
        if !r.done() {
            return Err(DecodeError("trailing bytes"));
        }
        Ok(DeliveryParts {
            payload: r.at - payload_bytes..r.at,
            seal,
        })
    }
}

/// What a delivery reads of a request or answer record
/// ([`Record::delivery_parts`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeliveryParts {
    /// Where the payload is in the record's bytes.
    pub payload: std::ops::Range<usize>,
    /// The record's seal, if it has one.
    pub seal: Option<Seal>,
}

/// Appends a seal (see [`Seal`]).
fn put_seal(out: &mut Vec<u8>, seal: &Seal) {
    out.extend_from_slice(seal.digest.as_bytes());
    let present = u8::from(seal.signature.is_some())
        | (u8::from(seal.receipt_signature.is_some()) << 1)
        | (u8::from(!seal.attachments.is_empty()) << 2);
    out.push(present);
    for s in [&seal.signature, &seal.receipt_signature]
        .into_iter()
        .flatten()
    {
        put_str(out, &s.key_id);
        put_bytes(out, &s.bytes);
    }
    if !seal.attachments.is_empty() {
        assert!(seal.attachments.len() <= ATTACHMENTS_PER_MESSAGE_MAX);
        out.push(seal.attachments.len() as u8);
        for a in &seal.attachments {
            out.extend_from_slice(a.digest.as_bytes());
            put_u64(out, a.size_bytes);
        }
    }
}

/// Bytes a seal takes in a record (see [`put_seal`]).
pub(crate) fn seal_bytes(seal: &Seal) -> usize {
    let signature = |s: &SenderSignature| 2 + s.key_id.len() + 4 + s.bytes.len();
    let attachments = match seal.attachments.len() {
        0 => 0,
        n => 1 + n * 40,
    };
    32 + 1
        + seal.signature.as_ref().map_or(0, signature)
        + seal.receipt_signature.as_ref().map_or(0, signature)
        + attachments
}

/// Appends a little-endian u64.
pub(crate) fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

/// Appends one event's fields (see `Reader::event`).
fn put_event(out: &mut Vec<u8>, e: &EventRecord) {
    put_id(out, e.request_id);
    out.push(e.kind.to_u8());
    put_u64(out, e.time_ms);
    out.extend_from_slice(&e.count.to_le_bytes());
}

/// Appends a message id.
pub(crate) fn put_id(out: &mut Vec<u8>, id: MessageId) {
    out.extend_from_slice(&id.0.to_le_bytes());
}

/// Appends a length-prefixed string.
pub(crate) fn put_str(out: &mut Vec<u8>, s: &str) {
    assert!(s.len() <= TEXT_BYTES_MAX, "text longer than TEXT_BYTES_MAX");
    out.extend_from_slice(&(s.len() as u16).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// Appends an optional string (0xffff length = none).
pub(crate) fn put_opt_str(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => put_str(out, s),
        None => out.extend_from_slice(&u16::MAX.to_le_bytes()),
    }
}

/// Appends an answer's body: 0 for data, else the refusal code and reason.
pub(crate) fn put_answer_body(out: &mut Vec<u8>, body: &AnswerBody) {
    match body {
        AnswerBody::Data => out.push(0),
        AnswerBody::Refusal { code, reason } => {
            out.push(code.to_u8());
            put_str(out, reason);
        }
    }
}

/// Appends length-prefixed bytes.
pub(crate) fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_len(out, b);
    out.extend_from_slice(b);
}

/// Appends the length prefix of `b` (what [`put_bytes`] writes before it).
fn put_len(out: &mut Vec<u8>, b: &[u8]) {
    let len = u32::try_from(b.len()).expect("bytes under 4 GiB");
    out.extend_from_slice(&len.to_le_bytes());
}

/// A bounds-checked cursor over encoded bytes.
pub(crate) struct Reader<'a> {
    /// The bytes.
    pub bytes: &'a [u8],
    /// Position.
    pub at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.at.checked_add(n).ok_or(DecodeError("length"))?;
        let s = self
            .bytes
            .get(self.at..end)
            .ok_or(DecodeError("truncated"))?;
        self.at = end;
        Ok(s)
    }
    /// The next `N` bytes, as an array (the take checked the length).
    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
    /// Reads a byte.
    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }
    /// Reads a u32.
    pub fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    /// Reads a u64.
    pub fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    /// Reads a message id.
    pub fn id(&mut self) -> Result<MessageId, DecodeError> {
        Ok(MessageId(u128::from_le_bytes(self.array()?)))
    }
    /// Reads a string.
    pub fn str(&mut self) -> Result<&'a str, DecodeError> {
        let n = u16::from_le_bytes(self.array()?);
        if usize::from(n) > TEXT_BYTES_MAX {
            return Err(DecodeError("text length"));
        }
        std::str::from_utf8(self.take(usize::from(n))?).map_err(|_| DecodeError("utf-8"))
    }
    /// Reads an optional string.
    pub fn opt_str(&mut self) -> Result<Option<&'a str>, DecodeError> {
        let save = self.at;
        let n = u16::from_le_bytes(self.array()?);
        if n == u16::MAX {
            return Ok(None);
        }
        self.at = save;
        self.str().map(Some)
    }
    /// Reads one event's fields (see `put_event`).
    fn event(&mut self) -> Result<EventRecord, DecodeError> {
        Ok(EventRecord {
            request_id: self.id()?,
            kind: EventKind::from_u8(self.u8()?).ok_or(DecodeError("event kind"))?,
            time_ms: self.u64()?,
            count: self.u32()?,
        })
    }
    /// Reads an answer's body (see `put_answer_body`).
    pub fn answer_body(&mut self) -> Result<AnswerBody, DecodeError> {
        Ok(match self.u8()? {
            0 => AnswerBody::Data,
            c => AnswerBody::Refusal {
                code: RefusalCode::from_u8(c).ok_or(DecodeError("refusal code"))?,
                reason: self.str()?.to_owned(),
            },
        })
    }
    /// Reads a seal (see `put_seal`); signatures within their bounds.
    fn seal(&mut self) -> Result<Seal, DecodeError> {
        let digest = Digest(self.array()?);
        let present = self.u8()?;
        if present > 7 {
            return Err(DecodeError("seal flags"));
        }
        let mut signature = || -> Result<SenderSignature, DecodeError> {
            let key_id = self.str()?;
            let bytes = self.bytes()?;
            if key_id.len() > KEY_ID_BYTES_MAX || bytes.len() > SIGNATURE_BYTES_MAX {
                return Err(DecodeError("signature length"));
            }
            Ok(SenderSignature {
                key_id: key_id.to_owned(),
                bytes: Bytes::copy_from_slice(bytes),
            })
        };
        let sender = if present & 1 != 0 {
            Some(signature()?)
        } else {
            None
        };
        let hub = if present & 2 != 0 {
            Some(signature()?)
        } else {
            None
        };
        let attachments = if present & 4 != 0 {
            self.attachments()?
        } else {
            Vec::new()
        };
        Ok(Seal {
            digest,
            signature: sender,
            receipt_signature: hub,
            attachments,
        })
    }
    /// Reads a seal's attachments (a count, then digest and size each).
    fn attachments(&mut self) -> Result<Vec<AttachmentRef>, DecodeError> {
        let count = usize::from(self.u8()?);
        if count == 0 || count > ATTACHMENTS_PER_MESSAGE_MAX {
            return Err(DecodeError("attachment count"));
        }
        (0..count)
            .map(|_| {
                Ok(AttachmentRef {
                    digest: Digest(self.array()?),
                    size_bytes: self.u64()?,
                })
            })
            .collect()
    }
    /// Reads length-prefixed bytes.
    pub fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let n = self.u32()? as usize;
        self.take(n)
    }
    /// True when every byte was read.
    pub fn done(&self) -> bool {
        self.at == self.bytes.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trust_record::{AuditReason, AuditRecord, AuditRefusal};

    fn request() -> Record {
        Record::Request(RequestRecord {
            id: MessageId::new(5, 1, 2),
            kind: DataKindId::new("urn:k"),
            consumer: ParticipantId::new("MVD"),
            provider: ParticipantId::new("FNS"),
            time_ms: 10,
            deadline_ms: 20,
            test: true,
            call: false,
            transaction: Some("T-1".into()),
            idempotency_key: None,
            seal: None,
            payload: Bytes::from_static(b"hello"),
        })
    }

    fn seal(hub: bool) -> Seal {
        let signature = |id: &str, b: u8| SenderSignature {
            key_id: id.into(),
            bytes: Bytes::from(vec![b; 64]),
        };
        Seal {
            digest: Digest([7; 32]),
            signature: Some(signature("mvd-2026", 1)),
            receipt_signature: hub.then(|| signature("hub-1", 2)),
            // A request's seal with three attachments, an answer's with one.
            attachments: (0..if hub { 1 } else { 3u8 })
                .map(|i| AttachmentRef {
                    digest: Digest([i; 32]),
                    size_bytes: 1 << (10 * u64::from(i)),
                })
                .collect(),
        }
    }

    fn sealed(record: Record, seal: Seal) -> Record {
        match record {
            Record::Request(r) => Record::Request(RequestRecord {
                seal: Some(Box::new(seal)),
                ..r
            }),
            Record::Answer(a) => Record::Answer(AnswerRecord {
                seal: Some(Box::new(seal)),
                ..a
            }),
            other => other,
        }
    }

    fn refusal(payload: Bytes) -> Record {
        Record::Answer(AnswerRecord {
            id: MessageId::new(6, 1, 3),
            request_id: MessageId::new(5, 1, 2),
            body: AnswerBody::Refusal {
                code: RefusalCode::NoData,
                reason: "none".into(),
            },
            time_ms: 11,
            seal: None,
            payload,
        })
    }

    #[test]
    fn given_each_record_when_round_tripped_then_equal() {
        let unsigned = Seal {
            signature: None,
            ..seal(false)
        };
        let records = [
            request(),
            refusal(Bytes::new()),
            sealed(request(), seal(false)),
            sealed(request(), unsigned.clone()),
            sealed(refusal(Bytes::from_static(b"p")), seal(true)),
            sealed(refusal(Bytes::new()), unsigned),
            Record::Event(EventRecord {
                request_id: MessageId::new(5, 1, 2),
                kind: EventKind::AnswerAcked,
                time_ms: 12,
                count: 3,
            }),
            Record::Events(vec![
                EventRecord {
                    request_id: MessageId::new(5, 1, 2),
                    kind: EventKind::Acked,
                    time_ms: 12,
                    count: 0,
                },
                EventRecord {
                    request_id: MessageId::new(5, 1, 3),
                    kind: EventKind::Acked,
                    time_ms: 12,
                    count: 0,
                },
            ]),
            Record::Events(Vec::new()),
            Record::SnapshotPart(Bytes::from_static(b"x")),
            Record::SnapshotEnd {
                first_offset: 9,
                parts: 1,
            },
            Record::Lost,
            anchor(),
            audit(),
            Record::Audit(AuditRecord::Suppressed {
                from_ms: 1,
                to_ms: 2,
                count: 3,
            }),
        ];
        for r in records {
            let mut buf = Vec::new();
            r.encode(&mut buf);
            assert_eq!(Record::decode(&buf).unwrap(), r);
        }
    }

    fn anchor() -> Record {
        let key = gonets_trust::HubKey::generate();
        Record::Anchor(gonets_trust::Anchor::signed(&key, 3, 77, [5; 32], 1_000))
    }

    fn audit() -> Record {
        Record::Audit(AuditRecord::Refusal(AuditRefusal {
            time_ms: 9,
            participant: ParticipantId::new("MVD"),
            kind: DataKindId::new("urn:k"),
            reason: AuditReason::BadSignature,
            detail: "bad signature: no key".into(),
            payload_digest: [7; 32],
            payload_bytes: 12,
        }))
    }

    #[test]
    fn given_truncated_or_garbage_bytes_when_decoded_then_error_not_panic() {
        for r in [request(), anchor(), audit()] {
            let mut buf = Vec::new();
            r.encode(&mut buf);
            for cut in 0..buf.len() {
                assert!(Record::decode(&buf[..cut]).is_err(), "cut at {cut}");
            }
        }
        let mut buf = Vec::new();
        request().encode(&mut buf);
        let mut long = buf.clone();
        long.push(0);
        assert_eq!(Record::decode(&long), Err(DecodeError("trailing bytes")));
        for b in 0..=255u8 {
            let _ = Record::decode(&[b, 0xff, 0xff, 0xff, 0xff]);
        }
    }

    #[test]
    fn given_a_request_or_answer_when_payload_span_then_the_payload_decode_finds() {
        let answer = refusal(Bytes::from_static(b"answer bytes"));
        let sealed_answer = sealed(answer.clone(), seal(true));
        for r in [
            request(),
            answer,
            sealed(request(), seal(false)),
            sealed_answer,
        ] {
            let mut buf = Vec::new();
            r.encode(&mut buf);
            let span = Record::payload_span(&buf).unwrap();
            let payload = match Record::decode(&buf).unwrap() {
                Record::Request(q) => q.payload,
                Record::Answer(a) => a.payload,
                other => panic!("{other:?}"),
            };
            assert_eq!(&buf[span], &payload[..]);
            let record_seal = match Record::decode(&buf).unwrap() {
                Record::Request(q) => q.seal,
                Record::Answer(a) => a.seal,
                other => panic!("{other:?}"),
            };
            assert_eq!(
                Record::delivery_parts(&buf).unwrap().seal,
                record_seal.map(|s| *s)
            );
            for cut in 0..buf.len() {
                assert!(Record::payload_span(&buf[..cut]).is_err(), "cut at {cut}");
            }
            buf.push(0);
            assert_eq!(
                Record::payload_span(&buf),
                Err(DecodeError("trailing bytes"))
            );
        }
        let mut event = Vec::new();
        Record::SnapshotEnd {
            first_offset: 1,
            parts: 1,
        }
        .encode(&mut event);
        assert!(Record::payload_span(&event).is_err());
    }

    #[test]
    fn given_a_record_written_before_seals_when_decoded_then_it_has_none_and_its_bytes_are_unchanged(
    ) {
        // The old encodings are the new ones without a seal: tag 2 and
        // request flags < 4, byte for byte (what a log written before
        // issue 18 holds).
        let mut old = Vec::new();
        request().encode(&mut old);
        assert_eq!(old[0], TAG_REQUEST);
        let flags_at = 1 + 16 + (2 + 5) + (2 + 3) + (2 + 3) + 8 + 8;
        assert_eq!(old[flags_at], 1, "test, not call, not sealed");
        assert!(matches!(Record::decode(&old), Ok(Record::Request(r)) if r.seal.is_none()));
        let mut answer = Vec::new();
        refusal(Bytes::new()).encode(&mut answer);
        assert_eq!(answer[0], TAG_ANSWER);
        let mut bad_flags = Vec::new();
        sealed(request(), seal(false)).encode(&mut bad_flags);
        bad_flags[flags_at] |= 8;
        assert_eq!(
            Record::decode(&bad_flags),
            Err(DecodeError("request flags"))
        );
        let mut sealed_bytes = Vec::new();
        sealed(request(), seal(false)).encode(&mut sealed_bytes);
        for cut in 0..sealed_bytes.len() {
            assert!(
                Record::decode(&sealed_bytes[..cut]).is_err(),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn given_an_events_record_claiming_more_events_than_its_bytes_when_decoded_then_error() {
        let mut buf = vec![TAG_EVENTS];
        buf.extend_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(Record::decode(&buf), Err(DecodeError("event count")));
        let mut events = Vec::new();
        Record::Events(vec![
            EventRecord {
                request_id: MessageId::new(5, 1, 2),
                kind: EventKind::Acked,
                time_ms: 1,
                count: 0,
            };
            3
        ])
        .encode(&mut events);
        for cut in 0..events.len() {
            assert!(Record::decode(&events[..cut]).is_err(), "cut at {cut}");
        }
    }
}
