//! Snapshot parts: one exchange (without payloads, which stay in the log at
//! the offsets it names) per part, so replay after a restart starts at the
//! latest snapshot instead of the log's beginning.

use crate::record::{
    put_answer_body, put_id, put_opt_str, put_str, put_u64, DecodeError, EventKind, Reader,
};
use crate::shard::exchange::{Exchange, Outcome};
use crate::shard::types::HistoryEvent;
use gonets_types::ids::{DataKindId, ParticipantId};

const VERSION: u8 = 1;
/// Most history steps one exchange may carry in a snapshot.
pub const HISTORY_EVENTS_MAX: usize = 1 << 16;

/// Encodes an exchange as a snapshot part.
pub fn encode_exchange(ex: &Exchange, out: &mut Vec<u8>) {
    out.push(VERSION);
    put_id(out, ex.id);
    put_str(out, ex.kind.as_str());
    put_str(out, ex.consumer.as_str());
    put_str(out, ex.provider.as_str());
    put_u64(out, ex.time_ms);
    put_u64(out, ex.deadline_ms);
    out.push(
        u8::from(ex.test)
            | u8::from(ex.call) << 1
            | u8::from(ex.acked) << 2
            | u8::from(ex.answer_acked) << 3,
    );
    put_opt_str(out, ex.transaction.as_deref());
    put_opt_str(out, ex.idempotency_key.as_deref());
    put_u64(out, ex.request_offset);
    out.extend_from_slice(&ex.deliveries.to_le_bytes());
    out.extend_from_slice(&ex.answer_deliveries.to_le_bytes());
    match &ex.outcome {
        None => out.push(0),
        Some(o) => {
            out.push(1);
            put_id(out, o.answer_id);
            put_answer_body(out, &o.body);
            put_u64(out, o.time_ms);
            put_u64(out, o.answer_offset);
        }
    }
    assert!(ex.history.len() <= HISTORY_EVENTS_MAX);
    out.extend_from_slice(&(ex.history.len() as u32).to_le_bytes());
    for e in &ex.history {
        out.push(e.kind.to_u8());
        put_u64(out, e.time_ms);
        out.extend_from_slice(&e.count.to_le_bytes());
    }
}

/// Decodes a snapshot part; every exchange restored is durable.
pub fn decode_exchange(bytes: &[u8]) -> Result<Exchange, DecodeError> {
    let mut r = Reader { bytes, at: 0 };
    if r.u8()? != VERSION {
        return Err(DecodeError("snapshot version"));
    }
    let id = r.id()?;
    let kind = DataKindId::new(r.str()?);
    let consumer = ParticipantId::new(r.str()?);
    let provider = ParticipantId::new(r.str()?);
    let time_ms = r.u64()?;
    let deadline_ms = r.u64()?;
    let flags = r.u8()?;
    let transaction = r.opt_str()?.map(str::to_owned);
    let idempotency_key = r.opt_str()?.map(str::to_owned);
    let request_offset = r.u64()?;
    let deliveries = r.u32()?;
    let answer_deliveries = r.u32()?;
    let outcome = match r.u8()? {
        0 => None,
        1 => {
            let answer_id = r.id()?;
            let body = r.answer_body()?;
            Some(Outcome {
                answer_id,
                body,
                time_ms: r.u64()?,
                answer_offset: r.u64()?,
                durable: true,
                payload: None,
            })
        }
        _ => return Err(DecodeError("outcome tag")),
    };
    let n = r.u32()? as usize;
    if n > HISTORY_EVENTS_MAX || n > bytes.len() {
        return Err(DecodeError("history length"));
    }
    let mut history = Vec::with_capacity(n);
    for _ in 0..n {
        history.push(HistoryEvent {
            kind: EventKind::from_u8(r.u8()?).ok_or(DecodeError("event kind"))?,
            time_ms: r.u64()?,
            count: r.u32()?,
        });
    }
    if !r.done() {
        return Err(DecodeError("trailing bytes"));
    }
    Ok(Exchange {
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
        request_offset,
        durable: true,
        payload: None,
        deliveries,
        acked: flags & 4 != 0,
        outcome,
        answer_deliveries,
        answer_acked: flags & 8 != 0,
        history,
    })
}
