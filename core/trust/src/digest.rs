//! What a signature covers: the digest of a message's signed fields.
//!
//! Every digest is BLAKE3 in key-derivation mode with its own context
//! string, so a request's digest can never be taken for an answer's or a
//! batch's. Fields are fed in a fixed order, little-endian, texts as a u32
//! length then the bytes, optional fields as a tag byte (0 none, 1 some)
//! then the value. The payload enters as its own BLAKE3 digest, so a
//! verifier that holds only the digest and the fields can check it.
//!
//! | message | fields, in order |
//! |---|---|
//! | request | sender, data kind, payload digest, idempotency key?, expires_in_ms?, test, transaction?, then only when it has attachments: their count (u32) and each one's digest and size (u64) |
//! | answer  | sender, request id (u128), body (0 data, or 1 then the refusal code's wire name and the reason), payload digest, then only when it has attachments: as a request's |
//! | batch   | count (u32), then each message's digest |
//!
//! The hub computes the digest of every request and answer it accepts,
//! whether or not it is signed; it is stored with the message, carried on
//! delivery and named in the hub's receipt.

use gonets_types::ids::{MessageId, ParticipantId};
use gonets_types::{AnswerBody, AttachmentRef, Digest, NewRequest};

const REQUEST_CONTEXT: &str = "gonets 2026-12 request digest v1";
const ANSWER_CONTEXT: &str = "gonets 2026-12 answer digest v1";
const BATCH_CONTEXT: &str = "gonets 2026-12 batch digest v1";

/// BLAKE3 of a payload's bytes.
pub fn payload_digest(payload: &[u8]) -> Digest {
    Digest(*blake3::hash(payload).as_bytes())
}

/// The digest of request `r` from `sender` (see the module's table).
pub fn request_digest(sender: &ParticipantId, r: &NewRequest) -> Digest {
    let mut h = blake3::Hasher::new_derive_key(REQUEST_CONTEXT);
    text(&mut h, sender.as_str());
    text(&mut h, r.kind.as_str());
    h.update(payload_digest(&r.payload).as_bytes());
    opt_text(&mut h, r.idempotency_key.as_deref());
    match r.expires_in_ms {
        Some(ms) => h.update(&[1]).update(&ms.to_le_bytes()),
        None => h.update(&[0]),
    };
    h.update(&[u8::from(r.test)]);
    opt_text(&mut h, r.transaction.as_deref());
    attachments(&mut h, &r.attachments);
    Digest(*h.finalize().as_bytes())
}

/// Feeds a message's attachments, only when there are some: a message
/// without attachments keeps the digest it had before attachments existed
/// (docs/adr/0022), so the signatures of earlier clients still verify.
fn attachments(h: &mut blake3::Hasher, refs: &[AttachmentRef]) {
    if refs.is_empty() {
        return;
    }
    let count = u32::try_from(refs.len()).expect("at most 16 attachments");
    h.update(&count.to_le_bytes());
    for a in refs {
        h.update(a.digest.as_bytes());
        h.update(&a.size_bytes.to_le_bytes());
    }
}

/// The digest of `sender`'s answer to `request_id` (see the module's
/// table); a refusal carries no attachments.
pub fn answer_digest(
    sender: &ParticipantId,
    request_id: MessageId,
    body: &AnswerBody,
    payload: &[u8],
    refs: &[AttachmentRef],
) -> Digest {
    let mut h = blake3::Hasher::new_derive_key(ANSWER_CONTEXT);
    text(&mut h, sender.as_str());
    h.update(&request_id.0.to_le_bytes());
    match body {
        AnswerBody::Data => {
            h.update(&[0]);
        }
        AnswerBody::Refusal { code, reason } => {
            h.update(&[1]);
            text(&mut h, code.as_str());
            text(&mut h, reason);
        }
    }
    h.update(payload_digest(payload).as_bytes());
    attachments(&mut h, refs);
    Digest(*h.finalize().as_bytes())
}

/// The digest of a batch: what one signature over many messages signs.
pub fn batch_digest(digests: &[Digest]) -> Digest {
    let mut h = blake3::Hasher::new_derive_key(BATCH_CONTEXT);
    let count = u32::try_from(digests.len()).expect("a batch under 4 G messages");
    h.update(&count.to_le_bytes());
    for d in digests {
        h.update(d.as_bytes());
    }
    Digest(*h.finalize().as_bytes())
}

fn text(h: &mut blake3::Hasher, s: &str) {
    let len = u32::try_from(s.len()).expect("a text under 4 GiB");
    h.update(&len.to_le_bytes());
    h.update(s.as_bytes());
}

fn opt_text(h: &mut blake3::Hasher, s: Option<&str>) {
    match s {
        Some(s) => {
            h.update(&[1]);
            text(h, s);
        }
        None => {
            h.update(&[0]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gonets_types::RefusalCode;

    fn attachment(b: u8, size_bytes: u64) -> AttachmentRef {
        AttachmentRef {
            digest: Digest([b; 32]),
            size_bytes,
        }
    }

    fn request() -> NewRequest {
        let mut r = NewRequest::new("urn:k", "payload");
        r.idempotency_key = Some("key-1".into());
        r.transaction = Some("tx".into());
        r
    }

    #[test]
    fn given_a_request_when_any_signed_field_changes_then_its_digest_changes() {
        let mfc = ParticipantId::new("MFC");
        let base = request_digest(&mfc, &request());
        assert_eq!(base, request_digest(&mfc, &request()), "deterministic");
        let mut changed: Vec<NewRequest> = Vec::new();
        let mut r = request();
        r.kind = gonets_types::DataKindId::new("urn:l");
        changed.push(r);
        let mut r = request();
        r.payload = "payloaD".into();
        changed.push(r);
        let mut r = request();
        r.idempotency_key = None;
        changed.push(r);
        let mut r = request();
        r.expires_in_ms = Some(5);
        changed.push(r);
        let mut r = request();
        r.test = true;
        changed.push(r);
        let mut r = request();
        r.transaction = Some("tx2".into());
        changed.push(r);
        let mut r = request();
        r.attachments = vec![attachment(1, 10)];
        changed.push(r);
        let mut r = request();
        r.attachments = vec![attachment(1, 11)];
        changed.push(r);
        let mut r = request();
        r.attachments = vec![attachment(2, 10)];
        changed.push(r);
        let mut r = request();
        r.attachments = vec![attachment(1, 10), attachment(2, 10)];
        changed.push(r);
        for (i, r) in changed.iter().enumerate() {
            for other in &changed[..i] {
                assert_ne!(request_digest(&mfc, r), request_digest(&mfc, other));
            }
        }
        for r in &changed {
            assert_ne!(request_digest(&mfc, r), base, "{r:?}");
        }
        assert_ne!(request_digest(&ParticipantId::new("MVD"), &request()), base);
    }

    #[test]
    fn given_texts_when_split_differently_then_digests_differ() {
        // Length prefixes: "ab"+"c" is not "a"+"bc".
        let mut r1 = NewRequest::new("ab", "");
        r1.transaction = Some("c".into());
        let mut r2 = NewRequest::new("a", "");
        r2.transaction = Some("bc".into());
        let s = ParticipantId::new("S");
        assert_ne!(request_digest(&s, &r1), request_digest(&s, &r2));
    }

    #[test]
    fn given_answers_when_body_or_request_differ_then_digests_differ() {
        let fns = ParticipantId::new("FNS");
        let id = MessageId(42);
        let data = answer_digest(&fns, id, &AnswerBody::Data, b"x", &[]);
        assert_ne!(
            data,
            answer_digest(&fns, MessageId(43), &AnswerBody::Data, b"x", &[])
        );
        assert_ne!(data, answer_digest(&fns, id, &AnswerBody::Data, b"y", &[]));
        let refusal = AnswerBody::Refusal {
            code: RefusalCode::NoData,
            reason: "none".into(),
        };
        assert_ne!(data, answer_digest(&fns, id, &refusal, b"x", &[]));
        let other_reason = AnswerBody::Refusal {
            code: RefusalCode::NoData,
            reason: "nothing".into(),
        };
        assert_ne!(
            answer_digest(&fns, id, &refusal, b"", &[]),
            answer_digest(&fns, id, &other_reason, b"", &[])
        );
        let one = [attachment(1, 10)];
        assert_ne!(data, answer_digest(&fns, id, &AnswerBody::Data, b"x", &one));
        assert_ne!(
            answer_digest(&fns, id, &AnswerBody::Data, b"x", &one),
            answer_digest(&fns, id, &AnswerBody::Data, b"x", &[attachment(1, 11)]),
            "an attachment's size is covered"
        );
    }

    #[test]
    fn given_batches_when_order_or_count_differ_then_digests_differ() {
        let a = Digest([1; 32]);
        let b = Digest([2; 32]);
        assert_ne!(batch_digest(&[a, b]), batch_digest(&[b, a]));
        assert_ne!(batch_digest(&[a]), batch_digest(&[a, a]));
        assert_ne!(batch_digest(&[a]), a, "a batch of one is not its message");
    }
}
