//! Payloads the shard left in its log (`Payload::AtOffset`), read back and
//! copied out before they leave the shard's thread: the log's maps are
//! single-threaded, a session or a peer shard cannot read them.

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
    match Record::decode(record.payload()) {
        Ok(Record::Request(r)) => Ok(r.payload),
        Ok(Record::Answer(a)) => Ok(a.payload),
        Ok(_) => Err(unreadable(
            offset,
            "the record there is no request or answer",
        )),
        Err(e) => Err(unreadable(offset, &e.to_string())),
    }
}

fn unreadable(offset: u64, what: &str) -> HubError {
    HubError::Unavailable(format!(
        "payload at log offset {offset} cannot be read: {what}"
    ))
}
