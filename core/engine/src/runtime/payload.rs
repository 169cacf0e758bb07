//! Payloads the shard left in its log (`Payload::AtOffset`), read back
//! before they leave the shard's thread: from the tail cache as a shared
//! slice of its batch, from a segment's map as a copy (the maps are
//! single-threaded; a session or a peer shard cannot read them).

use crate::record::{Record, Seal};
use crate::shard::{answer_receipt, AnswerEnvelope, Delivery, Payload};
use bytes::Bytes;
use gonets_storage::{Log, Slot};
use gonets_trust::HubKey;
use gonets_types::error::HubError;

/// The payload bytes of `d`, its seal and (for an answer) its receipt read
/// from `log` with them when the shard left them there; `d`'s payload is
/// taken. An answer's receipt the shard did not make is the record's, or
/// signed now with `hub_key` (docs/adr/0023).
pub(crate) fn resolve_delivery(
    log: &Log,
    hub_key: Option<&HubKey>,
    d: &mut Delivery,
) -> Result<Bytes, HubError> {
    let payload = std::mem::replace(&mut d.payload, Payload::Bytes(Bytes::new()));
    let (bytes, read) = resolve_sealed(log, payload)?;
    if let Some((offset, seal)) = read {
        if let (Some(request_id), None) = (d.reply_to, &d.receipt) {
            let receipt = answer_receipt(
                &seal, hub_key, d.id, request_id, &d.from, &d.kind, d.time_ms, offset,
            );
            d.receipt = signed_alone(receipt, hub_key);
        }
        d.seal = Some(Box::new(seal));
    }
    Ok(bytes)
}

/// An answer leaving for its consumer's shard: its payload, seal and
/// receipt in memory (read from `log` when the shard left them there; the
/// receipt as [`resolve_delivery`] makes it).
pub(crate) fn resolve_envelope(
    log: &Log,
    hub_key: Option<&HubKey>,
    e: &mut AnswerEnvelope,
) -> Result<(), HubError> {
    let payload = std::mem::replace(&mut e.payload, Payload::Bytes(Bytes::new()));
    let (bytes, read) = resolve_sealed(log, payload)?;
    e.payload = Payload::Bytes(bytes);
    if let Some((offset, seal)) = read {
        if e.receipt.is_none() {
            let (id, request_id) = (e.id, e.request_id);
            let receipt = answer_receipt(
                &seal, hub_key, id, request_id, &e.from, &e.kind, e.time_ms, offset,
            );
            e.receipt = signed_alone(receipt, hub_key);
        }
        e.seal = Some(Box::new(seal));
    }
    Ok(())
}

/// An answer's receipt read back from the log, signed now and alone when
/// its record holds no hub signature (docs/adr/0023): its fields all come
/// from the record, so it is the same bytes at every such delivery.
fn signed_alone(
    receipt: Option<Box<gonets_types::Receipt>>,
    hub_key: Option<&HubKey>,
) -> Option<Box<gonets_types::Receipt>> {
    let mut receipt = receipt?;
    if let (true, Some(key)) = (receipt.signature.is_empty(), hub_key) {
        gonets_trust::sign_receipt(key, &mut receipt);
    }
    Some(receipt)
}

/// The bytes of `payload`, and when read from `log` its record's offset
/// and seal (if the record has one).
fn resolve_sealed(log: &Log, payload: Payload) -> Result<(Bytes, Option<(u64, Seal)>), HubError> {
    let offset = match payload {
        Payload::Bytes(b) => return Ok((b, None)),
        Payload::AtOffset(o) => o,
    };
    let record = match log.read(offset) {
        Slot::Present(r) => r,
        Slot::Empty => return Err(unreadable(offset, "not durable in the log")),
        Slot::Gone => return Err(unreadable(offset, "dropped by retention")),
        Slot::Unreadable(c) => return Err(unreadable(offset, &c.what)),
    };
    // Only the payload is made: a slice of the tail cache's batch, or a
    // copy out of the map.
    match Record::delivery_parts(record.payload()) {
        Ok(parts) => {
            let seal = parts.seal.map(|seal| (offset, seal));
            Ok((record.payload_slice(parts.payload), seal))
        }
        Err(e) => Err(unreadable(offset, &e.to_string())),
    }
}

fn unreadable(offset: u64, what: &str) -> HubError {
    HubError::Unavailable(format!(
        "payload at log offset {offset} cannot be read: {what}"
    ))
}
