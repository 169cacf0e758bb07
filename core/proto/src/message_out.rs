//! A delivered message's wire header, serialised from the message itself
//! (and, the same way, a single send's `Accepted` and the receipts both
//! carry).
//!
//! Why not [`header::MessageHeader`](crate::header::MessageHeader): that
//! owned form takes six `String`s a message (queue, id, kind, sender, body,
//! transaction) only to be serialised and dropped, on the hub's hottest
//! reply path (fetch, call, push). This borrows the message's fields and
//! writes ids and queue names through their `Display`, straight into the
//! frame. The JSON is the same, field for field and in the same order, as
//! `MessageHeader`'s; `mapping_tests.rs` checks it byte for byte against
//! the owned header built by `message_header` (kept for tests only).

use base64::display::Base64Display;
use base64::engine::general_purpose::STANDARD;
use gonets_types::{AnswerBody, DeliveryBody, Message, Receipt, ReceiptProof};
use serde::ser::{SerializeStruct, Serializer};
use serde::Serialize;

/// The header of one message, borrowed (see the module comment).
pub(crate) struct MessageOut<'a>(pub(crate) &'a Message);

/// The header of a messages reply (`header::Messages`), borrowed.
pub(crate) struct MessagesOut<'a>(pub(crate) &'a [Message]);

/// Any `Display` as a JSON string, written without an intermediate `String`.
struct Shown<T>(T);

impl<T: std::fmt::Display> Serialize for Shown<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

impl Serialize for MessagesOut<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("Messages", 1)?;
        st.serialize_field("messages", &Seq(self.0))?;
        st.end()
    }
}

struct Seq<'a>(&'a [Message]);

impl Serialize for Seq<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // Bounded by the reply's messages.
        s.collect_seq(self.0.iter().map(MessageOut))
    }
}

impl Serialize for MessageOut<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let m = self.0;
        let (body, refusal) = match &m.body {
            DeliveryBody::Request => ("request", None),
            DeliveryBody::Answer(AnswerBody::Data) => ("data", None),
            DeliveryBody::Answer(AnswerBody::Refusal { code, reason }) => {
                ("refusal", Some((code.as_str(), reason.as_str())))
            }
        };
        let payload_bytes =
            u32::try_from(m.payload.len()).expect("payloads are bounded by the registry");
        let mut st = s.serialize_struct("MessageHeader", 20)?;
        st.serialize_field("queue", &Shown(&m.queue))?;
        st.serialize_field("id", &Shown(m.id))?;
        if let Some(r) = m.reply_to {
            st.serialize_field("reply_to", &Shown(r))?;
        }
        st.serialize_field("kind", m.kind.as_str())?;
        st.serialize_field("from", m.from.as_str())?;
        st.serialize_field("body", body)?;
        if let Some((code, reason)) = refusal {
            st.serialize_field("refusal_code", code)?;
            st.serialize_field("refusal_reason", reason)?;
        }
        st.serialize_field("time_ms", &m.time_ms)?;
        st.serialize_field("deadline_ms", &m.deadline_ms)?;
        st.serialize_field("delivery_count", &m.delivery_count)?;
        st.serialize_field("test", &m.test)?;
        if let Some(t) = &m.transaction {
            st.serialize_field("transaction", t.as_str())?;
        }
        st.serialize_field("lease", &m.lease_holder())?;
        st.serialize_field("payload_bytes", &payload_bytes)?;
        if let Some(d) = &m.digest {
            st.serialize_field("digest", &Shown(d))?;
        }
        if let Some(sig) = &m.signature {
            st.serialize_field("signature", &crate::trust_wire::base64_of(&sig.bytes))?;
            st.serialize_field("signature_key_id", sig.key_id.as_str())?;
        }
        if let Some(r) = &m.receipt {
            st.serialize_field("receipt", &ReceiptOut(r))?;
        }
        if !m.attachments.is_empty() {
            let refs = crate::attachment_wire::ref_headers(&m.attachments);
            st.serialize_field("attachments", &refs)?;
        }
        st.end()
    }
}

/// A single send's reply header (`header::Accepted`), borrowed: the same
/// fields in the same order (`mapping_tests.rs` checks the bytes).
pub(crate) struct AcceptedOut<'a>(pub(crate) &'a gonets_types::Accepted);

impl Serialize for AcceptedOut<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let a = self.0;
        let mut st = s.serialize_struct("Accepted", 4)?;
        st.serialize_field("id", &Shown(a.id))?;
        st.serialize_field("time_ms", &a.time_ms)?;
        st.serialize_field("duplicate", &a.duplicate)?;
        // A single send is never in a batch: only its own receipt is written.
        if let Some(gonets_types::AcceptanceReceipt::One(r)) = &a.receipt {
            st.serialize_field("receipt", &ReceiptOut(r))?;
        }
        st.end()
    }
}

/// A receipt's header (`trust_wire::ReceiptHeader`), borrowed: the same
/// fields in the same order, ids, digests and the signature written
/// through `Display` rather than built as `String`s (an rt answer carries
/// one; `mapping_tests.rs` checks the bytes against the owned header).
struct ReceiptOut<'a>(&'a Receipt);

impl Serialize for ReceiptOut<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let r = self.0;
        let mut st = s.serialize_struct("ReceiptHeader", 11)?;
        st.serialize_field("message_id", &Shown(r.message_id))?;
        if let Some(id) = r.reply_to {
            st.serialize_field("reply_to", &Shown(id))?;
        }
        st.serialize_field("digest", &Shown(&r.digest))?;
        st.serialize_field("sender", r.sender.as_str())?;
        st.serialize_field("kind", r.kind.as_str())?;
        st.serialize_field("time_ms", &r.time_ms)?;
        st.serialize_field("shard", &r.shard)?;
        st.serialize_field("offset", &r.offset)?;
        st.serialize_field("key_id", r.key_id.as_str())?;
        let signature = Base64Display::new(&r.signature, &STANDARD);
        st.serialize_field("signature", &Shown(signature))?;
        if let Some(p) = &r.proof {
            st.serialize_field("proof", &ProofOut(p))?;
        }
        st.end()
    }
}

/// A receipt's proof (`trust_wire::ProofHeader`), borrowed.
struct ProofOut<'a>(&'a ReceiptProof);

impl Serialize for ProofOut<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("ProofHeader", 3)?;
        st.serialize_field("index", &self.0.index)?;
        st.serialize_field("count", &self.0.count)?;
        st.serialize_field("path", &Hashes(&self.0.path))?;
        st.end()
    }
}

/// Digests as a sequence of hex strings.
struct Hashes<'a>(&'a [gonets_types::Digest]);

impl Serialize for Hashes<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // Bounded by the proof's path (RECEIPT_PATH_LEN_MAX).
        s.collect_seq(self.0.iter().map(Shown))
    }
}
