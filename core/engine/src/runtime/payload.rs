//! Payloads the shard left in its log (`Payload::AtOffset`), read back
//! before they leave the shard's thread: from the tail cache as a shared
//! slice of its batch, from a segment's map as a copy (the maps are
//! single-threaded; a session or a peer shard cannot read them).

use crate::record::Record;
use crate::shard::Payload;
use bytes::Bytes;
use gonets_storage::{Log, Slot};
use gonets_types::error::HubError;

/// The bytes of `payload`: as they are, or read from `log` at the offset.
pub(crate) fn resolve(log: &Log, payload: Payload) -> Result<Bytes, HubError> {
    let offset = match payload {
        Payload::Bytes(b) => return Ok(b),
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
    match Record::payload_span(record.payload()) {
        Ok(span) => Ok(record.payload_slice(span)),
        Err(e) => Err(unreadable(offset, &e.to_string())),
    }
}

fn unreadable(offset: u64, what: &str) -> HubError {
    HubError::Unavailable(format!(
        "payload at log offset {offset} cannot be read: {what}"
    ))
}
