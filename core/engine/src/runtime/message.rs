//! What sessions get back: a delivered message with its payload bytes and
//! an acceptance (the vocabulary's types), built from the shard's deliveries.

use crate::shard::{Delivery, ReaderId};
use bytes::Bytes;
pub use gonets_types::{Accepted, Message};

/// Builds the public message from a shard's delivery and its payload bytes
/// (its seal and receipt already read back with the payload).
pub(crate) fn message_from_delivery(d: Delivery, payload: Bytes, reader: ReaderId) -> Message {
    let (digest, signature, attachments) = match d.seal {
        Some(seal) => {
            let seal = *seal;
            (Some(seal.digest), seal.signature, seal.attachments)
        }
        None => (None, None, Vec::new()),
    };
    // The shard signs every receipt it hands out (docs/adr/0023).
    assert!(
        d.receipt.as_ref().is_none_or(|r| !r.signature.is_empty()),
        "an unsigned receipt left shard {}",
        d.id.shard()
    );
    Message {
        queue: d.queue,
        id: d.id,
        reply_to: d.reply_to,
        kind: d.kind,
        from: d.from,
        body: d.body,
        time_ms: d.time_ms,
        deadline_ms: d.deadline_ms,
        delivery_count: d.delivery_count,
        test: d.test,
        transaction: d.transaction,
        payload,
        reader,
        digest,
        signature,
        receipt: d.receipt,
        attachments,
    }
}
