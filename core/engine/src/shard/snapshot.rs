//! Snapshot parts: one exchange (without payloads, which stay in the log at
//! the offsets it names) per part, or a run of one queue's parked requests
//! (ADR 0010), so replay after a restart starts at the latest snapshot
//! instead of the log's beginning. A part's first byte says which.

use crate::record::{
    put_answer_body, put_id, put_opt_str, put_str, put_u64, DecodeError, EventKind, Reader, Record,
};
use crate::shard::exchange::{Exchange, Outcome};
use crate::shard::keys::KeyPrint;
use crate::shard::types::HistoryEvent;
use crate::shard::IdMap;
use bytes::Bytes;
use gonets_types::ids::{DataKindId, MessageId, ParticipantId};
use std::collections::HashMap;

/// First byte of a part holding one exchange with its idempotency key's
/// text (written before ADR 0010; still read).
const VERSION: u8 = 1;
/// First byte of a part holding a run of parked requests.
const PARKED_RUN: u8 = 2;
/// First byte of a part holding one exchange (its key is in the key runs).
const EXCHANGE: u8 = 3;
/// First byte of a part holding a run of the idempotency window's keys.
const KEY_RUN: u8 = 4;
/// Most keys one part carries.
pub const KEY_RUN_ENTRIES_MAX: usize = 4096;
/// First byte of a part that stands for an earlier snapshot's part,
/// unchanged since: the log offset of that part follows (ADR 0010).
const REFERENCE: u8 = 5;
/// First byte of the part holding the shard's hub time when it wrote the
/// snapshot (the clock never runs backwards across a restart, even when
/// the latest records before the snapshot belong to histories it left out).
const CLOCK: u8 = 6;
/// First byte of a part holding a run of requests acked and awaiting
/// their answer: a parked run's shape, each entry followed by the times
/// of its delivery and its ack.
const AWAITING_RUN: u8 = 7;
/// Most parked requests one part carries.
pub const PARKED_RUN_ENTRIES_MAX: usize = 4096;
/// First byte of a part that stands for several earlier parts, unchanged
/// since, in order: their count (u32) and log offsets follow. One part for
/// a run of unchanged chunks and key slices, so an unchanged backlog costs
/// a snapshot a few appends, not one per chunk (ADR 0011).
const REFERENCES: u8 = 8;
/// Most offsets one references part carries (64 KiB of them).
pub const REFERENCES_MAX: usize = 8192;
/// Most history steps one exchange may carry in a snapshot.
pub const HISTORY_EVENTS_MAX: usize = 1 << 16;

/// Encodes an exchange as a snapshot part.
pub fn encode_exchange(ex: &Exchange, out: &mut Vec<u8>) {
    out.push(EXCHANGE);
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
            | u8::from(ex.answer_acked) << 3
            | u8::from(ex.keyed) << 4
            | SIZES_FLAG,
    );
    put_opt_str(out, ex.transaction.as_deref());
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
    // The payload sizes (`SIZES_FLAG`) last: parts written before them
    // end with the history.
    out.extend_from_slice(&ex.payload_bytes.to_le_bytes());
    if let Some(o) = &ex.outcome {
        out.extend_from_slice(&o.payload_bytes.to_le_bytes());
    }
}

/// Flag of an exchange part that ends with its payload sizes (the
/// request's, then the answer's if it has one); parts written before the
/// byte quotas lack them and restore with sizes 0 (ADR 0013).
const SIZES_FLAG: u8 = 0x20;
/// Flag of a parked entry followed by its payload size (left out when 0).
const PARKED_SIZE_FLAG: u8 = 4;

/// Decodes a snapshot part holding one exchange; every exchange restored
/// is durable.
pub fn decode_exchange(bytes: &[u8]) -> Result<Exchange, DecodeError> {
    decode_exchange_part(bytes).map(|(ex, _)| ex)
}

/// Decodes an exchange part, with its key's print when the part is of the
/// older shape that carried the key's text.
fn decode_exchange_part(bytes: &[u8]) -> Result<(Exchange, Option<KeyPrint>), DecodeError> {
    let mut r = Reader { bytes, at: 0 };
    let legacy = match r.u8()? {
        VERSION => true,
        EXCHANGE => false,
        _ => return Err(DecodeError("snapshot version")),
    };
    let id = r.id()?;
    let kind = DataKindId::new(r.str()?);
    let consumer = ParticipantId::new(r.str()?);
    let provider = ParticipantId::new(r.str()?);
    let time_ms = r.u64()?;
    let deadline_ms = r.u64()?;
    let flags = r.u8()?;
    let transaction = r.opt_str()?.map(str::to_owned);
    let print = match legacy {
        true => r.opt_str()?.map(|key| KeyPrint::of(&consumer, &kind, key)),
        false => None,
    };
    if flags > 0x3f || (legacy && flags & (0x10 | SIZES_FLAG) != 0) {
        return Err(DecodeError("exchange flags"));
    }
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
                routed: false,
                payload: None,
                seal: None,
                payload_bytes: 0,
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
    let mut outcome = outcome;
    let mut payload_bytes = 0;
    if flags & SIZES_FLAG != 0 {
        payload_bytes = r.u32()?;
        if let Some(o) = outcome.as_mut() {
            o.payload_bytes = r.u32()?;
        }
    }
    if !r.done() {
        return Err(DecodeError("trailing bytes"));
    }
    let ex = Exchange {
        test: flags & 1 != 0,
        call: flags & 2 != 0,
        transaction,
        keyed: print.is_some() || flags & 0x10 != 0,
        request_offset,
        durable: true,
        payload: None,
        seal: None,
        payload_bytes,
        deliveries,
        acked: flags & 4 != 0,
        outcome,
        answer_deliveries,
        answer_acked: flags & 8 != 0,
        history,
        ..Exchange::accepted(id, kind, consumer, provider, time_ms, deadline_ms)
    };
    Ok((ex, print))
}

/// A parked request as a snapshot carries it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParkedRecord {
    /// The request's id (its time is the id's).
    pub id: MessageId,
    /// Offset of its record.
    pub offset: u64,
    /// Absolute deadline, ms.
    pub deadline_ms: u64,
    /// The consumer.
    pub consumer: ParticipantId,
    /// The provider.
    pub provider: ParticipantId,
    /// Test traffic.
    pub test: bool,
    /// Transaction code.
    pub transaction: Option<String>,
    /// It came with an idempotency key.
    pub keyed: bool,
    /// For a request acked and awaiting its answer: when it was delivered
    /// and acked (hub time ms); `None` for a parked one.
    pub acked: Option<(u64, u64)>,
    /// Size of its payload, bytes (0 in runs written before sizes were kept).
    pub payload_bytes: u32,
}

/// Parked (or awaiting) requests of one kind's queue, in log order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParkedRun {
    /// The data kind (its requests queue).
    pub kind: DataKindId,
    /// At most [`PARKED_RUN_ENTRIES_MAX`], offsets ascending.
    pub entries: Vec<ParkedRecord>,
}

/// A decoded snapshot part.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Part {
    /// One exchange, and its key's print if the part carried the key's
    /// text (the older shape).
    Exchange(Box<Exchange>, Option<KeyPrint>),
    /// A run of parked requests, or of requests awaiting their answer.
    Parked(ParkedRun),
    /// A run of the idempotency window's keys and the messages they named.
    Keys(Vec<(KeyPrint, MessageId)>),
    /// The shard's hub time when it wrote the snapshot, ms.
    Clock(u64),
}

/// The part holding the shard's hub time.
pub fn encode_clock(now_ms: u64, out: &mut Vec<u8>) {
    out.push(CLOCK);
    put_u64(out, now_ms);
}

/// The hub time a clock part holds; `None` for any other part.
pub fn clock_of(bytes: &[u8]) -> Option<u64> {
    match decode_part(bytes) {
        Ok(Part::Clock(now_ms)) if bytes.first() == Some(&CLOCK) => Some(now_ms),
        _ => None,
    }
}

/// A part standing for the part at `offset` of an earlier snapshot (the
/// shape written before the references part; still read).
pub fn encode_reference(offset: u64, out: &mut Vec<u8>) {
    out.push(REFERENCE);
    put_u64(out, offset);
}

/// A part standing for the parts at `offsets` of earlier snapshots, in order.
pub fn encode_references(offsets: &[u64], out: &mut Vec<u8>) {
    assert!(!offsets.is_empty() && offsets.len() <= REFERENCES_MAX);
    out.reserve(5 + 8 * offsets.len());
    out.push(REFERENCES);
    out.extend_from_slice(&(offsets.len() as u32).to_le_bytes());
    for &at in offsets {
        put_u64(out, at);
    }
}

/// The offsets a reference or references part stands for, in order;
/// `None` for any other part (or a references part that is malformed,
/// which replay then refuses as an unknown part).
pub fn references_of(bytes: &[u8]) -> Option<Vec<u64>> {
    let u64_at = |b: &[u8]| u64::from_le_bytes(b.try_into().expect("8 bytes"));
    match bytes {
        [REFERENCE, rest @ ..] if rest.len() == 8 => Some(vec![u64_at(rest)]),
        [REFERENCES, n0, n1, n2, n3, rest @ ..] => {
            let n = u32::from_le_bytes([*n0, *n1, *n2, *n3]) as usize;
            if n == 0 || n > REFERENCES_MAX || rest.len() != 8 * n {
                return None;
            }
            Some(rest.chunks_exact(8).map(u64_at).collect())
        }
        _ => None,
    }
}

/// A record as replay applies it: itself, or — for a reference part —
/// the earlier parts it stands for.
#[derive(Debug)]
pub enum Resolved {
    /// Any record that is not a reference part.
    Itself(Record),
    /// The content of the earlier parts a reference part stands for, in order.
    Parts(Vec<Bytes>),
}

/// Replay's view of `record` at `offset`: a reference part is replaced by
/// the parts it stands for, read with `read`; every other record is itself.
/// Each part read must be an earlier snapshot part holding content (never
/// a reference): anything else is damage, and replay stops on it.
pub fn resolve_references(
    offset: u64,
    record: Record,
    mut read: impl FnMut(u64) -> Result<Record, String>,
) -> Result<Resolved, String> {
    let targets = match &record {
        Record::SnapshotPart(bytes) => references_of(bytes),
        _ => None,
    };
    let Some(targets) = targets else {
        return Ok(Resolved::Itself(record));
    };
    let mut parts = Vec::with_capacity(targets.len());
    for target in targets {
        if target >= offset {
            return Err(format!(
                "snapshot part at {offset} refers forward to {target}"
            ));
        }
        match read(target)? {
            Record::SnapshotPart(b) if references_of(&b).is_none() && !b.is_empty() => {
                parts.push(b)
            }
            _ => {
                return Err(format!(
                    "snapshot part at {offset} refers to {target}, which holds no snapshot part"
                ))
            }
        }
    }
    Ok(Resolved::Parts(parts))
}

/// Decodes a snapshot part of either shape.
pub fn decode_part(bytes: &[u8]) -> Result<Part, DecodeError> {
    match bytes.first() {
        Some(&VERSION | &EXCHANGE) => {
            decode_exchange_part(bytes).map(|(ex, print)| Part::Exchange(Box::new(ex), print))
        }
        Some(&PARKED_RUN | &AWAITING_RUN) => decode_parked_run(bytes).map(Part::Parked),
        Some(&KEY_RUN) => decode_key_run(bytes).map(Part::Keys),
        Some(&REFERENCE | &REFERENCES) => Err(DecodeError("snapshot reference not resolved")),
        Some(&CLOCK) => {
            let mut r = Reader { bytes, at: 1 };
            let now_ms = r.u64()?;
            if !r.done() {
                return Err(DecodeError("trailing bytes"));
            }
            Ok(Part::Clock(now_ms))
        }
        _ => Err(DecodeError("snapshot part tag")),
    }
}

/// Encodes a run of parked requests as one part, as [`encode_run_of`]
/// does for the shard's own entries (a decoded or hand-made run: replay's
/// tests and tools).
pub fn encode_parked_run(run: &ParkedRun, out: &mut Vec<u8>) {
    // Each distinct name numbered once, as the shard's name table does.
    let mut names: Vec<&str> = Vec::new();
    let mut numbers: HashMap<&str, u32> = HashMap::new();
    for e in &run.entries {
        for name in [e.consumer.as_str(), e.provider.as_str()] {
            numbers.entry(name).or_insert_with(|| {
                names.push(name);
                (names.len() - 1) as u32
            });
        }
    }
    let entries: Vec<RunEntry<'_>> = run
        .entries
        .iter()
        .map(|e| RunEntry {
            id: e.id,
            offset: e.offset,
            deadline_ms: e.deadline_ms,
            names: (numbers[e.consumer.as_str()], numbers[e.provider.as_str()]),
            test: e.test,
            keyed: e.keyed,
            payload_bytes: e.payload_bytes,
            transaction: e.transaction.as_deref(),
            acked: e.acked,
        })
        .collect();
    encode_run_of(&run.kind, &entries, |n| names[n as usize], out);
}

/// A parked (or awaiting) request as the shard holds it, borrowed for
/// [`encode_run_of`]: its names as the shard's name numbers, its texts
/// borrowed, nothing cloned.
#[derive(Clone, Copy, Debug)]
pub struct RunEntry<'a> {
    /// The request's id.
    pub id: MessageId,
    /// Offset of its record.
    pub offset: u64,
    /// Absolute deadline, ms.
    pub deadline_ms: u64,
    /// The consumer's and the provider's numbers in the shard's name table.
    pub names: (u32, u32),
    /// Test traffic.
    pub test: bool,
    /// It came with an idempotency key.
    pub keyed: bool,
    /// Size of its payload, bytes.
    pub payload_bytes: u32,
    /// Transaction code.
    pub transaction: Option<&'a str>,
    /// When it was delivered and acked (an awaiting one).
    pub acked: Option<(u64, u64)>,
}

/// Encodes `entries` of `kind`'s queue as one part: the names it uses
/// once, then 37 bytes per entry plus its payload size (4 bytes, when not
/// 0), its texts, and 16 bytes for an awaiting one's times (a run is all
/// parked or all awaiting). `name` gives the text of a shard name number.
/// No [`ParkedRecord`] is made (two name clones and four hashed name
/// lookups an entry): a snapshot writes a backlog's new runs while the
/// shard takes no input (ADR 0011, 0035), on the real-time lane's path
/// beside bulk.
pub fn encode_run_of<'a>(
    kind: &DataKindId,
    entries: &[RunEntry<'_>],
    name: impl Fn(u32) -> &'a str,
    out: &mut Vec<u8>,
) {
    assert!(!entries.is_empty() && entries.len() <= PARKED_RUN_ENTRIES_MAX);
    let awaiting = entries[0].acked.is_some();
    assert!(entries.iter().all(|e| e.acked.is_some() == awaiting));
    // The run's own numbers, in order of first use (consumer, then provider).
    let mut numbers: IdMap<u32, u16> = IdMap::default();
    let mut names: Vec<u32> = Vec::new();
    for e in entries {
        for n in [e.names.0, e.names.1] {
            numbers.entry(n).or_insert_with(|| {
                names.push(n);
                (names.len() - 1) as u16
            });
        }
    }
    out.push(if awaiting { AWAITING_RUN } else { PARKED_RUN });
    put_str(out, kind.as_str());
    out.extend_from_slice(&(names.len() as u16).to_le_bytes());
    for n in &names {
        put_str(out, name(*n));
    }
    out.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    for e in entries {
        put_id(out, e.id);
        put_u64(out, e.offset);
        put_u64(out, e.deadline_ms);
        out.extend_from_slice(&numbers[&e.names.0].to_le_bytes());
        out.extend_from_slice(&numbers[&e.names.1].to_le_bytes());
        let sized = e.payload_bytes != 0;
        out.push(
            u8::from(e.test) | u8::from(e.keyed) << 1 | if sized { PARKED_SIZE_FLAG } else { 0 },
        );
        if sized {
            out.extend_from_slice(&e.payload_bytes.to_le_bytes());
        }
        put_opt_str(out, e.transaction);
        if let Some((delivered_ms, acked_ms)) = e.acked {
            put_u64(out, delivered_ms);
            put_u64(out, acked_ms);
        }
    }
}

fn decode_parked_run(bytes: &[u8]) -> Result<ParkedRun, DecodeError> {
    let mut r = Reader { bytes, at: 0 };
    let awaiting = match r.u8()? {
        PARKED_RUN => false,
        AWAITING_RUN => true,
        _ => return Err(DecodeError("snapshot part tag")),
    };
    let kind = DataKindId::new(r.str()?);
    let name_count = u16::from_le_bytes([r.u8()?, r.u8()?]) as usize;
    if name_count > 2 * PARKED_RUN_ENTRIES_MAX {
        return Err(DecodeError("parked run names"));
    }
    let mut names = Vec::with_capacity(name_count);
    for _ in 0..name_count {
        names.push(ParticipantId::new(r.str()?));
    }
    let n = r.u32()? as usize;
    if n == 0 || n > PARKED_RUN_ENTRIES_MAX {
        return Err(DecodeError("parked run length"));
    }
    let name = |i: u16| {
        names
            .get(i as usize)
            .cloned()
            .ok_or(DecodeError("parked run name"))
    };
    let mut entries = Vec::with_capacity(n);
    for _ in 0..n {
        let id = r.id()?;
        let offset = r.u64()?;
        let deadline_ms = r.u64()?;
        let consumer = name(u16::from_le_bytes([r.u8()?, r.u8()?]))?;
        let provider = name(u16::from_le_bytes([r.u8()?, r.u8()?]))?;
        let flags = r.u8()?;
        if flags > 7 {
            return Err(DecodeError("parked flags"));
        }
        let payload_bytes = match flags & PARKED_SIZE_FLAG {
            0 => 0,
            _ => r.u32()?,
        };
        let transaction = r.opt_str()?.map(str::to_owned);
        let acked = if awaiting {
            let delivered_ms = r.u64()?;
            let acked_ms = r.u64()?;
            if delivered_ms < id.unix_ms() || acked_ms < delivered_ms {
                return Err(DecodeError("awaiting times out of order"));
            }
            Some((delivered_ms, acked_ms))
        } else {
            None
        };
        if entries
            .last()
            .is_some_and(|prev: &ParkedRecord| prev.offset >= offset)
        {
            return Err(DecodeError("parked run out of log order"));
        }
        entries.push(ParkedRecord {
            id,
            offset,
            deadline_ms,
            consumer,
            provider,
            test: flags & 1 != 0,
            transaction,
            keyed: flags & 2 != 0,
            acked,
            payload_bytes,
        });
    }
    if !r.done() {
        return Err(DecodeError("trailing bytes"));
    }
    Ok(ParkedRun { kind, entries })
}

/// Encodes a run of the key window's entries as one part: 32 bytes each.
pub fn encode_key_run(keys: &[(KeyPrint, MessageId)], out: &mut Vec<u8>) {
    assert!(!keys.is_empty() && keys.len() <= KEY_RUN_ENTRIES_MAX);
    out.push(KEY_RUN);
    out.extend_from_slice(&(keys.len() as u32).to_le_bytes());
    for (print, id) in keys {
        out.extend_from_slice(&print.0.to_le_bytes());
        put_id(out, *id);
    }
}

fn decode_key_run(bytes: &[u8]) -> Result<Vec<(KeyPrint, MessageId)>, DecodeError> {
    let mut r = Reader { bytes, at: 0 };
    if r.u8()? != KEY_RUN {
        return Err(DecodeError("snapshot part tag"));
    }
    let n = r.u32()? as usize;
    if n == 0 || n > KEY_RUN_ENTRIES_MAX {
        return Err(DecodeError("key run length"));
    }
    let mut keys = Vec::with_capacity(n);
    for _ in 0..n {
        // A print is 16 little-endian bytes, as an id is.
        let print = KeyPrint(r.id()?.0);
        keys.push((print, r.id()?));
    }
    if !r.done() {
        return Err(DecodeError("trailing bytes"));
    }
    Ok(keys)
}
