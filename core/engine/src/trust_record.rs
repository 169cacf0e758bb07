//! The log's trust records (issue 18, docs/adr/0020-signed-anchors-and-verify.md):
//! signed chain anchors (tag 7) and audit records of refusals (tag 8).
//! Replay applies neither; `gonets verify`, `gonets anchors` and
//! `gonets audit` read them. Kept apart from `record.rs`'s message records.
//!
//! ```text
//! anchor (7): log u8 (0 shard, 1 history) | shard u16 | offset u64 |
//!             chain [32] | time_ms u64 | key_id str | signature bytes
//! audit  (8): 1 | time_ms u64 | participant str | kind str | reason u8 |
//!             detail str | payload digest [32] | payload_bytes u64
//!             2 | from_ms u64 | to_ms u64 | count u64   (refusals not
//!             written one by one: the rate bound's summary)
//! ```

use crate::record::{put_bytes, put_str, put_u64, DecodeError, Reader};
use gonets_trust::{Anchor, AnchoredLog};
use gonets_types::ids::{DataKindId, ParticipantId};

/// True when `payload` is an anchor record (its tag, 7): the history log
/// holds them among its history chunks (whose first byte is 1).
pub fn is_anchor(payload: &[u8]) -> bool {
    payload.first() == Some(&crate::record::TAG_ANCHOR)
}

/// True when `payload` is an audit record (its tag, 8).
pub fn is_audit(payload: &[u8]) -> bool {
    payload.first() == Some(&crate::record::TAG_AUDIT)
}

/// Longest signature an anchor record may carry, bytes (Ed25519: 64).
pub const SIGNATURE_BYTES_MAX: usize = 512;

/// Why a refusal is audited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuditReason {
    /// A message marked as a state secret (R10).
    StateSecret,
    /// A signature missing or not verifying.
    BadSignature,
    /// The caller may not do this.
    NotAuthorized,
}

impl AuditReason {
    /// Its code in the record.
    pub fn to_u8(self) -> u8 {
        match self {
            AuditReason::StateSecret => 1,
            AuditReason::BadSignature => 2,
            AuditReason::NotAuthorized => 3,
        }
    }

    /// The reason of a code.
    pub fn from_u8(code: u8) -> Option<AuditReason> {
        Some(match code {
            1 => AuditReason::StateSecret,
            2 => AuditReason::BadSignature,
            3 => AuditReason::NotAuthorized,
            _ => return None,
        })
    }

    /// Its name: the wire's error code name.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditReason::StateSecret => "STATE_SECRET",
            AuditReason::BadSignature => "BAD_SIGNATURE",
            AuditReason::NotAuthorized => "NOT_AUTHORIZED",
        }
    }
}

/// One audited refusal: who, what, why, and what the message's payload
/// was (its digest and size; never the payload itself).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditRefusal {
    /// Hub time, ms since the Unix epoch.
    pub time_ms: u64,
    /// The caller refused.
    pub participant: ParticipantId,
    /// The data kind it named.
    pub kind: DataKindId,
    /// Why.
    pub reason: AuditReason,
    /// The error's text (bounded by `TEXT_BYTES_MAX`).
    pub detail: String,
    /// BLAKE3 of the payload.
    pub payload_digest: [u8; 32],
    /// The payload's size.
    pub payload_bytes: u64,
}

/// An audit record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuditRecord {
    /// One refusal.
    Refusal(AuditRefusal),
    /// Refusals past the rate bound, counted, not written one by one.
    Suppressed {
        /// Hub time of the first, ms.
        from_ms: u64,
        /// Hub time of the last, ms.
        to_ms: u64,
        /// How many.
        count: u64,
    },
}

impl AuditRecord {
    /// One JSON line (`gonets audit`).
    pub fn to_json_line(&self, shard: u16, offset: u64) -> String {
        match self {
            AuditRecord::Refusal(r) => serde_json::json!({
                "shard": shard,
                "offset": offset,
                "time_ms": r.time_ms,
                "participant": r.participant.as_str(),
                "kind": r.kind.as_str(),
                "code": r.reason.as_str(),
                "detail": r.detail,
                "payload_digest": gonets_types::trust::hex_of(&r.payload_digest),
                "payload_bytes": r.payload_bytes,
            }),
            AuditRecord::Suppressed {
                from_ms,
                to_ms,
                count,
            } => serde_json::json!({
                "shard": shard,
                "offset": offset,
                "suppressed": count,
                "from_ms": from_ms,
                "to_ms": to_ms,
            }),
        }
        .to_string()
    }
}

/// Appends an anchor's fields (after the tag).
pub(crate) fn put_anchor(out: &mut Vec<u8>, a: &Anchor) {
    out.push(match a.log {
        AnchoredLog::Shard => 0,
        AnchoredLog::History => 1,
    });
    out.extend_from_slice(&a.shard.to_le_bytes());
    put_u64(out, a.offset);
    out.extend_from_slice(&a.chain);
    put_u64(out, a.time_ms);
    put_str(out, &a.key_id);
    assert!(a.signature.len() <= SIGNATURE_BYTES_MAX);
    put_bytes(out, &a.signature);
}

/// Reads [`put_anchor`]'s fields.
pub(crate) fn read_anchor(r: &mut Reader<'_>) -> Result<Anchor, DecodeError> {
    let log = match r.u8()? {
        0 => AnchoredLog::Shard,
        1 => AnchoredLog::History,
        _ => return Err(DecodeError("anchor log")),
    };
    let shard = u16::from_le_bytes([r.u8()?, r.u8()?]);
    let offset = r.u64()?;
    let mut chain = [0u8; 32];
    for b in &mut chain {
        *b = r.u8()?;
    }
    let time_ms = r.u64()?;
    let key_id = r.str()?.to_owned();
    let signature = r.bytes()?;
    if signature.len() > SIGNATURE_BYTES_MAX {
        return Err(DecodeError("signature length"));
    }
    Ok(Anchor {
        log,
        shard,
        offset,
        chain,
        time_ms,
        key_id,
        signature: bytes::Bytes::copy_from_slice(signature),
    })
}

/// Appends an audit record's fields (after the tag).
pub(crate) fn put_audit(out: &mut Vec<u8>, a: &AuditRecord) {
    match a {
        AuditRecord::Refusal(r) => {
            out.push(1);
            put_u64(out, r.time_ms);
            put_str(out, r.participant.as_str());
            put_str(out, r.kind.as_str());
            out.push(r.reason.to_u8());
            put_str(out, &r.detail);
            out.extend_from_slice(&r.payload_digest);
            put_u64(out, r.payload_bytes);
        }
        AuditRecord::Suppressed {
            from_ms,
            to_ms,
            count,
        } => {
            out.push(2);
            put_u64(out, *from_ms);
            put_u64(out, *to_ms);
            put_u64(out, *count);
        }
    }
}

/// Reads [`put_audit`]'s fields.
pub(crate) fn read_audit(r: &mut Reader<'_>) -> Result<AuditRecord, DecodeError> {
    Ok(match r.u8()? {
        1 => {
            let time_ms = r.u64()?;
            let participant = ParticipantId::new(r.str()?);
            let kind = DataKindId::new(r.str()?);
            let reason = AuditReason::from_u8(r.u8()?).ok_or(DecodeError("audit reason"))?;
            let detail = r.str()?.to_owned();
            let mut payload_digest = [0u8; 32];
            for b in &mut payload_digest {
                *b = r.u8()?;
            }
            AuditRecord::Refusal(AuditRefusal {
                time_ms,
                participant,
                kind,
                reason,
                detail,
                payload_digest,
                payload_bytes: r.u64()?,
            })
        }
        2 => AuditRecord::Suppressed {
            from_ms: r.u64()?,
            to_ms: r.u64()?,
            count: r.u64()?,
        },
        _ => return Err(DecodeError("audit record form")),
    })
}
