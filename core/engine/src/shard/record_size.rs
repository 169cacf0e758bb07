//! The encoded size of the request and answer records a command would make,
//! so that the shard refuses with `TooLarge` a command whose record the log
//! could not take ([`super::ShardConfig::record_bytes_max`]) before it
//! applies it: the shard assumes every record it emits is appended.
//!
//! Mirrors `Record::encode`; the unit test below keeps the two in step.

use crate::record::TEXT_BYTES_MAX;
use crate::shard::NewRequest;

/// Bytes of a length-prefixed string.
fn text(len: usize) -> usize {
    2 + len
}

/// Bytes of an optional string.
fn opt_text(s: Option<&str>) -> usize {
    s.map_or(2, |s| text(s.len()))
}

/// Bytes of the request record `r` from `consumer` for `provider` would be,
/// with a seal of `seal_bytes` (`record::seal_bytes`; 0 without one);
/// `None` when a text is over its limit (the shard refuses that itself).
pub(crate) fn request_record_bytes(
    r: &NewRequest,
    consumer: &str,
    provider: &str,
    seal_bytes: usize,
) -> Option<usize> {
    let texts = [
        Some(r.kind.as_str()),
        Some(consumer),
        Some(provider),
        r.transaction.as_deref(),
        r.idempotency_key.as_deref(),
    ];
    if texts.iter().flatten().any(|t| t.len() > TEXT_BYTES_MAX) {
        return None;
    }
    Some(
        1 + 16
            + text(r.kind.as_str().len())
            + text(consumer.len())
            + text(provider.len())
            + 8
            + 8
            + 1
            + opt_text(r.transaction.as_deref())
            + opt_text(r.idempotency_key.as_deref())
            + seal_bytes
            + 4
            + r.payload.len(),
    )
}

/// Bytes of an answer record with `payload_len` bytes, for a refusal its
/// reason, and a seal of `seal_bytes` (0 without one); `None` when the
/// reason is over its limit (the shard refuses that itself).
pub(crate) fn answer_record_bytes(
    reason: Option<&str>,
    payload_len: usize,
    seal_bytes: usize,
) -> Option<usize> {
    if reason.is_some_and(|r| r.len() > TEXT_BYTES_MAX) {
        return None;
    }
    Some(1 + 16 + 16 + 1 + reason.map_or(0, |r| text(r.len())) + 8 + seal_bytes + 4 + payload_len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{
        seal_bytes, AnswerBody, AnswerRecord, Digest, Record, RequestRecord, Seal,
    };
    use bytes::Bytes;
    use gonets_types::ids::{DataKindId, MessageId, ParticipantId};
    use gonets_types::refusal::RefusalCode;

    #[test]
    fn given_request_when_sized_then_matches_encoding() {
        let seal = Seal {
            digest: Digest([1; 32]),
            signature: Some(gonets_types::SenderSignature {
                key_id: "k-1".into(),
                bytes: Bytes::from(vec![2; 64]),
            }),
            receipt_signature: None,
            attachments: vec![gonets_types::AttachmentRef {
                digest: Digest([3; 32]),
                size_bytes: 1 << 30,
            }],
        };
        let cases = [
            (None, None, None),
            (Some("t-1"), Some("key-42"), None),
            (None, None, Some(seal)),
        ];
        for (tx, key, seal) in cases {
            let mut r = NewRequest::new("urn:x:y:1", vec![7u8; 123]);
            r.transaction = tx.map(str::to_owned);
            r.idempotency_key = key.map(str::to_owned);
            let record = Record::Request(RequestRecord {
                id: MessageId::new(1, 0, 1),
                kind: DataKindId::new("urn:x:y:1"),
                consumer: ParticipantId::new("MFC"),
                provider: ParticipantId::new("FNS"),
                time_ms: 1,
                deadline_ms: 2,
                test: false,
                call: true,
                transaction: r.transaction.clone(),
                idempotency_key: r.idempotency_key.clone(),
                seal: seal.clone().map(Box::new),
                payload: r.payload.clone(),
            });
            let mut buf = Vec::new();
            record.encode(&mut buf);
            let sealed = seal.as_ref().map_or(0, seal_bytes);
            assert_eq!(
                request_record_bytes(&r, "MFC", "FNS", sealed),
                Some(buf.len())
            );
        }
    }

    #[test]
    fn given_answer_when_sized_then_matches_encoding() {
        let bodies = [
            (AnswerBody::Data, None, 55usize),
            (
                AnswerBody::Refusal {
                    code: RefusalCode::NoData,
                    reason: "nothing on file".into(),
                },
                Some("nothing on file"),
                0,
            ),
        ];
        let seal = Seal {
            digest: Digest([1; 32]),
            signature: None,
            receipt_signature: Some(gonets_types::SenderSignature {
                key_id: "hub".into(),
                bytes: Bytes::from(vec![2; 64]),
            }),
            attachments: Vec::new(),
        };
        for (body, reason, len) in bodies {
            for seal in [None, Some(seal.clone())] {
                let record = Record::Answer(AnswerRecord {
                    id: MessageId::new(1, 0, 1),
                    request_id: MessageId::new(1, 0, 2),
                    body: body.clone(),
                    time_ms: 3,
                    seal: seal.clone().map(Box::new),
                    payload: Bytes::from(vec![1u8; len]),
                });
                let mut buf = Vec::new();
                record.encode(&mut buf);
                let sealed = seal.as_ref().map_or(0, seal_bytes);
                assert_eq!(answer_record_bytes(reason, len, sealed), Some(buf.len()));
            }
        }
    }

    #[test]
    fn given_text_over_limit_when_sized_then_left_to_the_shard() {
        let mut r = NewRequest::new("urn:x:y:1", Bytes::new());
        r.idempotency_key = Some("k".repeat(TEXT_BYTES_MAX + 1));
        assert_eq!(request_record_bytes(&r, "MFC", "FNS", 0), None);
    }
}
