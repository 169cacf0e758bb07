//! Audit records of refusals that matter for audit (issue 18, ADR 0020):
//! a state secret, a bad signature, a caller not authorised. Each leaves a
//! durable `Record::Audit` in the shard's log (hub time, participant, data
//! kind, code, the payload's digest and size; never the payload), not only
//! a log line. A flood cannot fill the disk: at most
//! [`AUDIT_RECORDS_PER_SECOND_MAX`] a second are written one by one; the
//! rest are counted and written as one summary record when the next
//! second opens (at the next audited refusal, or at the runtime's
//! [`Shard::audit_flush`]).
//!
//! Also the one way a record that replay does not apply (an audit record,
//! a chain anchor) gets its offset: [`Shard::log_only`].

use super::{Output, Shard};
use crate::record::Record;
use crate::trust_record::{AuditReason, AuditRecord, AuditRefusal};
use gonets_types::error::HubError;
use gonets_types::ids::{DataKindId, ParticipantId};

/// Audit records written one by one in a second of hub time, per shard.
pub const AUDIT_RECORDS_PER_SECOND_MAX: u32 = 64;
/// The rate bound's window, ms.
const AUDIT_WINDOW_MS: u64 = 1_000;

/// The per-shard rate bound's state.
#[derive(Debug, Default)]
pub(crate) struct AuditBound {
    /// Start of the current window, hub ms.
    window_start_ms: u64,
    /// Records written in it.
    written: u32,
    /// Refusals past the bound not yet summarised: (first ms, last ms, count).
    suppressed: Option<(u64, u64, u64)>,
}

/// What the bound says of one audited refusal at `now_ms`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct AuditTurn {
    /// A summary of earlier suppressed refusals to write first.
    pub summary: Option<AuditRecord>,
    /// Write this refusal's own record.
    pub write: bool,
}

impl AuditBound {
    /// Counts one audited refusal at `now_ms`.
    pub(crate) fn admit(&mut self, now_ms: u64) -> AuditTurn {
        let summary = self.roll(now_ms);
        let write = self.written < AUDIT_RECORDS_PER_SECOND_MAX;
        if write {
            self.written += 1;
        } else {
            let s = self.suppressed.get_or_insert((now_ms, now_ms, 0));
            s.1 = now_ms;
            s.2 += 1;
        }
        AuditTurn { summary, write }
    }

    /// Opens a new window when the current one is over; gives the summary
    /// of what the old one suppressed.
    pub(crate) fn roll(&mut self, now_ms: u64) -> Option<AuditRecord> {
        if now_ms < self.window_start_ms.saturating_add(AUDIT_WINDOW_MS) {
            return None;
        }
        self.window_start_ms = now_ms;
        self.written = 0;
        self.suppressed
            .take()
            .map(|(from_ms, to_ms, count)| AuditRecord::Suppressed {
                from_ms,
                to_ms,
                count,
            })
    }
}

/// The audit reason of an error, if it is one that is audited.
pub(crate) fn audit_reason(e: &HubError) -> Option<AuditReason> {
    match e {
        HubError::StateSecret => Some(AuditReason::StateSecret),
        HubError::BadSignature(_) => Some(AuditReason::BadSignature),
        HubError::NotAuthorized(_) => Some(AuditReason::NotAuthorized),
        _ => None,
    }
}

impl Shard {
    /// Leaves an audit record of `e` (if it is audited) refusing
    /// `participant`'s message of `kind` with `payload`. Called where the
    /// refusal arises (the door, the answer path).
    pub(crate) fn audit_refusal(
        &mut self,
        participant: &ParticipantId,
        kind: &DataKindId,
        payload: &[u8],
        e: &HubError,
    ) {
        let Some(reason) = audit_reason(e) else {
            return;
        };
        let turn = self.audit.admit(self.now_ms);
        if let Some(summary) = turn.summary {
            self.push_log_only(Record::Audit(summary));
        }
        if !turn.write {
            return;
        }
        let mut detail = e.to_string();
        if detail.len() > crate::record::TEXT_BYTES_MAX {
            let mut cut = crate::record::TEXT_BYTES_MAX;
            while !detail.is_char_boundary(cut) {
                cut -= 1;
            }
            detail.truncate(cut);
        }
        let refusal = AuditRefusal {
            time_ms: self.now_ms,
            participant: participant.clone(),
            kind: kind.clone(),
            reason,
            detail,
            payload_digest: *gonets_trust::payload_digest(payload).as_bytes(),
            payload_bytes: payload.len() as u64,
        };
        self.push_log_only(Record::Audit(AuditRecord::Refusal(refusal)));
    }

    /// [`Shard::audit_refusal`] for a refusal returned at once: gives `e` back.
    pub(crate) fn audited(
        &mut self,
        participant: &ParticipantId,
        kind: &DataKindId,
        payload: &[u8],
        e: HubError,
    ) -> HubError {
        self.audit_refusal(participant, kind, payload, &e);
        e
    }

    /// Writes the summary of refusals the rate bound suppressed once their
    /// second is over, at hub time `now_ms` (the runtime calls it at the
    /// end of a turn, so a flood that stops is still summarised).
    pub fn audit_flush(&mut self, now_ms: u64, out: &mut Vec<Output>) {
        self.now_ms = self.now_ms.max(now_ms);
        if let Some(summary) = self.audit.roll(self.now_ms) {
            let (offset, record) = self.log_only(Record::Audit(summary));
            out.push(Output::Append {
                offset,
                record,
                journal: false,
            });
        }
    }

    /// Gives `record`, which replay does not apply (an anchor, an audit
    /// record), the next offset of the log, for the runtime to append.
    pub fn log_only(&mut self, record: Record) -> (u64, Record) {
        assert!(
            matches!(record, Record::Anchor(_) | Record::Audit(_)),
            "only trust records skip apply"
        );
        let offset = self.next_offset;
        self.next_offset += 1;
        (offset, record)
    }

    fn push_log_only(&mut self, record: Record) {
        let (offset, record) = self.log_only(record);
        self.out.push(Output::Append {
            offset,
            record,
            journal: false,
        });
    }
}

/// Test helper: the log holds exactly one audit record, of `reason`, and
/// nothing else (a refused message is never stored; its refusal is).
#[cfg(test)]
pub(crate) fn assert_only_audited(log: &[(u64, Record)], reason: AuditReason) {
    match log {
        [(_, Record::Audit(AuditRecord::Refusal(r)))] => assert_eq!(r.reason, reason, "{log:?}"),
        other => panic!("one audit record of {reason:?}, got {other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_a_flood_when_admitted_then_bounded_a_second_and_the_rest_summarised_once() {
        let mut bound = AuditBound::default();
        let mut written = 0;
        for i in 0..1_000u64 {
            let turn = bound.admit(10_000 + i / 10); // 1,000 refusals in 100 ms
            assert_eq!(turn.summary, None);
            written += u32::from(turn.write);
        }
        assert_eq!(written, AUDIT_RECORDS_PER_SECOND_MAX);
        // Still inside the window: nothing to summarise yet.
        assert_eq!(bound.roll(10_500), None);
        let summary = bound.admit(11_000);
        assert!(summary.write);
        let suppressed = 1_000 - u64::from(AUDIT_RECORDS_PER_SECOND_MAX);
        assert_eq!(
            summary.summary,
            Some(AuditRecord::Suppressed {
                from_ms: 10_000 + u64::from(AUDIT_RECORDS_PER_SECOND_MAX) / 10,
                to_ms: 10_099,
                count: suppressed,
            })
        );
        // Summarised once.
        assert_eq!(bound.roll(20_000), None);
    }

    #[test]
    fn given_errors_when_classified_then_only_audited_ones_have_a_reason() {
        assert_eq!(
            audit_reason(&HubError::StateSecret),
            Some(AuditReason::StateSecret)
        );
        assert_eq!(
            audit_reason(&HubError::NotAuthorized("x".into())),
            Some(AuditReason::NotAuthorized)
        );
        assert_eq!(
            audit_reason(&HubError::BadSignature("x".into())),
            Some(AuditReason::BadSignature)
        );
        assert_eq!(audit_reason(&HubError::QuotaExceeded), None);
    }
}
