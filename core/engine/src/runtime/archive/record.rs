//! The history log's records: one finished exchange's history (a
//! `StatusView`), split into chunks when it is larger than one log record.
//!
//! Chunk payload: version, request id, optional answer id, chunk index,
//! chunk count, then length-prefixed bytes of the encoded view. Every chunk
//! names both ids so replay can index a history from its last chunk alone;
//! the chunks of one history take consecutive offsets (one writer appends
//! them in one go), so the first chunk is `last offset - (count - 1)`.

use crate::record::{put_bytes, put_id, put_str, put_u64, DecodeError, EventKind, Reader};
use crate::shard::snapshot::HISTORY_EVENTS_MAX;
use crate::shard::{HistoryEvent, StatusView};
use gonets_types::ids::{DataKindId, MessageId, ParticipantId};

const CHUNK_VERSION: u8 = 1;
const VIEW_VERSION: u8 = 1;
/// Bytes of a chunk's payload besides the view's own bytes.
pub(crate) const CHUNK_OVERHEAD_BYTES: usize = 1 + 16 + 1 + 16 + 2 + 2 + 4;
/// Most chunks one history may take.
pub(crate) const CHUNKS_MAX: usize = u16::MAX as usize;

/// The head of one chunk, as replay needs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ChunkHead {
    /// The exchange's request.
    pub request_id: MessageId,
    /// Its answer.
    pub answer_id: Option<MessageId>,
    /// This chunk's place, from 0.
    pub index: u16,
    /// Chunks of the history.
    pub count: u16,
}

/// Encodes `view` (its events at most `HISTORY_EVENTS_MAX`).
pub(crate) fn encode_view(view: &StatusView, out: &mut Vec<u8>) {
    out.push(VIEW_VERSION);
    put_id(out, view.request_id);
    match view.answer_id {
        None => out.push(0),
        Some(a) => {
            out.push(1);
            put_id(out, a);
        }
    }
    put_str(out, view.kind.as_str());
    put_str(out, view.consumer.as_str());
    put_str(out, view.provider.as_str());
    put_u64(out, view.deadline_ms);
    assert!(view.events.len() <= HISTORY_EVENTS_MAX);
    out.extend_from_slice(&(view.events.len() as u32).to_le_bytes());
    for e in &view.events {
        out.push(e.kind.to_u8());
        put_u64(out, e.time_ms);
        out.extend_from_slice(&e.count.to_le_bytes());
    }
}

/// Decodes a view; garbage is a typed error, never a panic.
pub(crate) fn decode_view(bytes: &[u8]) -> Result<StatusView, DecodeError> {
    let mut r = Reader { bytes, at: 0 };
    if r.u8()? != VIEW_VERSION {
        return Err(DecodeError("history view version"));
    }
    let request_id = r.id()?;
    let answer_id = match r.u8()? {
        0 => None,
        1 => Some(r.id()?),
        _ => return Err(DecodeError("answer id tag")),
    };
    let kind = DataKindId::new(r.str()?);
    let consumer = ParticipantId::new(r.str()?);
    let provider = ParticipantId::new(r.str()?);
    let deadline_ms = r.u64()?;
    let n = r.u32()? as usize;
    if n > HISTORY_EVENTS_MAX || n > bytes.len() {
        return Err(DecodeError("history length"));
    }
    let mut events = Vec::with_capacity(n);
    for _ in 0..n {
        events.push(HistoryEvent {
            kind: EventKind::from_u8(r.u8()?).ok_or(DecodeError("event kind"))?,
            time_ms: r.u64()?,
            count: r.u32()?,
        });
    }
    if !r.done() {
        return Err(DecodeError("trailing bytes"));
    }
    Ok(StatusView {
        request_id,
        answer_id,
        kind,
        consumer,
        provider,
        deadline_ms,
        notice: None,
        events,
    })
}

/// Encodes one chunk carrying `bytes` into `out` (cleared first).
pub(crate) fn encode_chunk(head: ChunkHead, bytes: &[u8], out: &mut Vec<u8>) {
    assert!(head.index < head.count);
    out.clear();
    out.push(CHUNK_VERSION);
    put_id(out, head.request_id);
    match head.answer_id {
        None => {
            out.push(0);
            out.extend_from_slice(&[0; 16]);
        }
        Some(a) => {
            out.push(1);
            put_id(out, a);
        }
    }
    out.extend_from_slice(&head.index.to_le_bytes());
    out.extend_from_slice(&head.count.to_le_bytes());
    put_bytes(out, bytes);
}

/// Decodes a chunk: its head and its share of the view's bytes.
pub(crate) fn decode_chunk(payload: &[u8]) -> Result<(ChunkHead, &[u8]), DecodeError> {
    let mut r = Reader {
        bytes: payload,
        at: 0,
    };
    if r.u8()? != CHUNK_VERSION {
        return Err(DecodeError("history chunk version"));
    }
    let request_id = r.id()?;
    let tag = r.u8()?;
    let answer = r.id()?;
    let answer_id = match tag {
        0 => None,
        1 => Some(answer),
        _ => return Err(DecodeError("answer id tag")),
    };
    let index = u16::from_le_bytes([r.u8()?, r.u8()?]);
    let count = u16::from_le_bytes([r.u8()?, r.u8()?]);
    if count == 0 || index >= count {
        return Err(DecodeError("chunk index"));
    }
    let bytes = r.bytes()?;
    if !r.done() {
        return Err(DecodeError("trailing bytes"));
    }
    Ok((
        ChunkHead {
            request_id,
            answer_id,
            index,
            count,
        },
        bytes,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(events: usize) -> StatusView {
        StatusView {
            request_id: MessageId::new(1_700_000_000_000, 1, 7),
            answer_id: Some(MessageId::new(1_700_000_000_005, 1, 8)),
            kind: DataKindId::new("urn:test:async:1"),
            consumer: ParticipantId::new("MFC"),
            provider: ParticipantId::new("FNS"),
            deadline_ms: 1_700_000_001_000,
            notice: None,
            events: (0..events)
                .map(|i| HistoryEvent {
                    kind: EventKind::Delivered,
                    time_ms: 1_700_000_000_000 + i as u64,
                    count: i as u32,
                })
                .collect(),
        }
    }

    #[test]
    fn given_view_when_encoded_and_decoded_then_same() {
        let v = view(6);
        let mut buf = Vec::new();
        encode_view(&v, &mut buf);
        assert_eq!(decode_view(&buf), Ok(v));
    }

    #[test]
    fn given_truncated_or_garbage_view_when_decoded_then_typed_error() {
        let mut buf = Vec::new();
        encode_view(&view(3), &mut buf);
        for cut in 0..buf.len() {
            assert!(decode_view(&buf[..cut]).is_err(), "cut at {cut}");
        }
        assert!(decode_view(&[0xff; 64]).is_err());
    }

    #[test]
    fn given_chunk_when_encoded_and_decoded_then_same_head_and_bytes() {
        let head = ChunkHead {
            request_id: MessageId(1),
            answer_id: None,
            index: 1,
            count: 3,
        };
        let mut buf = Vec::new();
        encode_chunk(head, b"abc", &mut buf);
        assert_eq!(buf.len(), CHUNK_OVERHEAD_BYTES + 3);
        let (h, bytes) = decode_chunk(&buf).unwrap();
        assert_eq!((h, bytes), (head, &b"abc"[..]));
        for cut in 0..buf.len() {
            assert!(decode_chunk(&buf[..cut]).is_err(), "cut at {cut}");
        }
        let index_at = 1 + 16 + 1 + 16;
        buf[index_at] = 3; // index 3 of 3 chunks
        assert!(decode_chunk(&buf).is_err());
    }
}
