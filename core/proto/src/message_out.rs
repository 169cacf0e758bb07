//! A delivered message's wire header, serialised from the message itself.
//!
//! Why not [`header::MessageHeader`](crate::header::MessageHeader): that
//! owned form takes six `String`s a message (queue, id, kind, sender, body,
//! transaction) only to be serialised and dropped, on the hub's hottest
//! reply path (fetch, call, push). This borrows the message's fields and
//! writes ids and queue names through their `Display`, straight into the
//! frame. The JSON is the same, field for field and in the same order, as
//! `MessageHeader`'s; `mapping_tests.rs` checks it byte for byte against
//! the owned header built by `message_header` (kept for tests only).

use gonets_types::{AnswerBody, DeliveryBody, Message};
use serde::ser::{SerializeSeq, SerializeStruct, Serializer};
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
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        // Bounded by the reply's messages.
        for m in self.0 {
            seq.serialize_element(&MessageOut(m))?;
        }
        seq.end()
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
            st.serialize_field("receipt", &crate::trust_wire::receipt_header(r))?;
        }
        if !m.attachments.is_empty() {
            let refs = crate::attachment_wire::ref_headers(&m.attachments);
            st.serialize_field("attachments", &refs)?;
        }
        st.end()
    }
}
