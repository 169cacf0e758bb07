//! What one shard tells the operator when asked ([`HubHandle::shard_stats`]):
//! a copy of its plain per-shard counters, its queues' stats and its logs'
//! stats, made on the shard's own thread in reply to a control message.
//! Nothing here is shared between threads while the shard runs: the reply
//! is a snapshot, so reading it needs no lock (the hot-path rule).
//!
//! [`HubHandle::shard_stats`]: crate::runtime::HubHandle::shard_stats

use crate::shard::provider::ReadWatch;
use crate::shard::sla::KindSla;
use crate::shard::{Held, ShardCounters};
use gonets_storage::LogStats;
use gonets_types::error::HubError;
use gonets_types::ids::{DataKindId, QueueId};
use gonets_types::{QueueStats, ReplyKind};

/// Reply kinds, in [`REPLY_KINDS`] order.
const REPLY_KIND_COUNT: usize = 8;
/// Every reply kind a shard sends, with its stable metric name.
pub const REPLY_KINDS: [(ReplyKind, &str); REPLY_KIND_COUNT] = [
    (ReplyKind::Accepted, "accepted"),
    (ReplyKind::Message, "message"),
    (ReplyKind::Messages, "messages"),
    (ReplyKind::Done, "done"),
    (ReplyKind::Status, "status"),
    (ReplyKind::Stats, "stats"),
    (ReplyKind::AcceptedMany, "accepted_many"),
    (ReplyKind::AckedMany, "acked_many"),
];

/// Error codes a hub error is counted under, in index order: the wire's
/// stable names (`gonets_proto::ErrorCode::name`; a test in `tests/`
/// checks that they agree).
pub const ERROR_CODE_COUNT: usize = 19;
/// The wire names of the hub's error codes, by counting index.
pub const ERROR_CODES: [&str; ERROR_CODE_COUNT] = [
    "UNAUTHENTICATED",
    "NOT_AUTHORIZED",
    "UNKNOWN_DATA_KIND",
    "INVALID_FORMAT",
    "TOO_LARGE",
    "STATE_SECRET",
    "QUOTA_EXCEEDED",
    "STORAGE_FULL",
    "DEADLINE_EXCEEDED",
    "ALREADY_ANSWERED",
    "DUPLICATE",
    "NOT_FOUND",
    "MALFORMED",
    "UNAVAILABLE",
    "BAD_SIGNATURE",
    "BAD_CHUNK",
    "WRONG_DIGEST",
    "UPLOAD_OFFSET",
    "UNKNOWN_UPLOAD",
];

/// The counting index of a hub error's code (see [`ERROR_CODES`]).
pub fn error_code_index(e: &HubError) -> usize {
    match e {
        HubError::Unauthenticated => 0,
        HubError::NotAuthorized(_) => 1,
        HubError::UnknownDataKind(_) => 2,
        HubError::InvalidFormat { .. } => 3,
        HubError::TooLarge { .. } | HubError::TextTooLarge { .. } => 4,
        HubError::StateSecret => 5,
        HubError::QuotaExceeded => 6,
        HubError::StorageFull => 7,
        HubError::DeadlineExceeded => 8,
        HubError::AlreadyAnswered(_) => 9,
        HubError::Duplicate { .. } => 10,
        HubError::NotFound => 11,
        HubError::Malformed(_) => 12,
        HubError::Unavailable(_) => 13,
        HubError::BadSignature(_) => 14,
        HubError::BadChunk(_) => 15,
        HubError::WrongDigest(_) => 16,
        HubError::UploadOffset { .. } => 17,
        HubError::UnknownUpload => 18,
    }
}

fn reply_kind_index(kind: ReplyKind) -> usize {
    REPLY_KINDS
        .iter()
        .position(|(k, _)| *k == kind)
        .expect("every reply kind is listed")
}

/// Replies a shard sent since it started, by operation reply kind and
/// outcome: plain numbers in a fixed array, bumped without allocating.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReplyCounts {
    ok: [u64; REPLY_KIND_COUNT],
    refused: [[u64; ERROR_CODE_COUNT]; REPLY_KIND_COUNT],
}

impl ReplyCounts {
    /// Counts one reply of `kind`: a success, or a refusal with `error`.
    pub fn note(&mut self, kind: ReplyKind, error: Option<&HubError>) {
        let k = reply_kind_index(kind);
        match error {
            None => self.ok[k] += 1,
            Some(e) => self.refused[k][error_code_index(e)] += 1,
        }
    }

    /// Successful replies of `kind`.
    pub fn ok(&self, kind: ReplyKind) -> u64 {
        self.ok[reply_kind_index(kind)]
    }

    /// Replies of `kind` refused with the code at `code_index` of [`ERROR_CODES`].
    pub fn refused(&self, kind: ReplyKind, code_index: usize) -> u64 {
        self.refused[reply_kind_index(kind)][code_index]
    }
}

/// One queue's stats as its shard holds them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueEntry {
    /// The queue.
    pub queue: QueueId,
    /// Depth, in flight, oldest age.
    pub stats: QueueStats,
    /// Payload bytes of the requests it holds (its byte quota's count; 0
    /// for answer queues).
    pub waiting_bytes: u64,
    /// Its readers, last read, and (a request queue) whether its provider
    /// is unreachable.
    pub watch: ReadWatch,
}

/// One log's stats with the settings needed to read them.
#[derive(Clone, Debug)]
pub struct LogReport {
    /// The log's own counters.
    pub stats: LogStats,
    /// Its segment size, bytes: `stats.segments` of them are on disk.
    pub segment_size_bytes: u64,
    /// True when each batch write is made durable (by an `fdatasync`, or
    /// written `O_DSYNC`).
    pub syncs: bool,
}

impl LogReport {
    /// Bytes of its segment files on disk (preallocated, so whole segments).
    pub fn disk_bytes(&self) -> u64 {
        self.stats.segments as u64 * self.segment_size_bytes
    }

    /// Group commits (batch writes) since open.
    pub fn commits(&self) -> u64 {
        self.stats.written.batches
    }

    /// Syncs that made a batch durable since open: `fdatasync` calls, or
    /// `O_DSYNC` batch writes (each is its own sync).
    pub fn fdatasyncs(&self) -> u64 {
        if self.syncs {
            self.stats.written.batches
        } else {
            0
        }
    }
}

/// A shard's answer to the operator: a copy of what it counts and holds now.
#[derive(Clone, Debug)]
pub struct ShardStats {
    /// The shard.
    pub shard: u16,
    /// The shard rules' counters.
    pub counters: ShardCounters,
    /// What it holds in memory.
    pub held: Held,
    /// Replies sent, by kind and outcome.
    pub replies: ReplyCounts,
    /// Every queue it owns that has ever held a message since start.
    pub queues: Vec<QueueEntry>,
    /// Service-level counts by data kind, running totals since the shard
    /// started (the operator API keeps them in time buckets).
    pub sla: Vec<(DataKindId, KindSla)>,
    /// The shard's message log.
    pub log: LogReport,
    /// Its history archive's log.
    pub history_log: LogReport,
    /// Its rt journal's log (`[commit] rt_journal`, ADR 0036), when it
    /// keeps one.
    pub rt_journal_log: Option<LogReport>,
    /// Its log failed: it takes no more writes.
    pub log_failed: bool,
    /// It refuses new commands (shutdown began).
    pub draining: bool,
    /// A log used its disk reserve: new requests are refused `STORAGE_FULL`.
    pub space_low: bool,
    /// Time since the last snapshot (the state checkpoint restart replays
    /// from) became durable, ms; None when none has since start.
    pub snapshot_age_ms: Option<u64>,
    /// Records appended since the last snapshot began (what a restart
    /// replays beyond it).
    pub records_since_snapshot: u64,
    /// What each lane's task queue has had of the shard's executor since
    /// start (ADR 0015): CPU time and runs.
    pub lanes: Vec<(
        crate::runtime::lanes::Lane,
        crate::runtime::lanes::LaneUsage,
    )>,
    /// Where the real-time operations whose frames this shard's executor
    /// read (or whose steps it took) spent their time, µs, since start
    /// (`rt_stages`).
    pub rt_stages: Vec<(
        crate::runtime::rt_stages::RtOp,
        crate::runtime::rt_stages::Stage,
        gonets_storage::commit_stats::Log2Histogram,
    )>,
    /// How long the shard was held at a time, µs, since start: each turn
    /// of the driver's halves and each snapshot (`holds`).
    pub holds: Vec<(
        crate::runtime::holds::Hold,
        gonets_storage::commit_stats::Log2Histogram,
    )>,
}

impl ShardStats {
    /// Replayed, serving, and taking new requests.
    pub fn serving(&self) -> bool {
        !self.log_failed && !self.draining
    }

    /// Its logs by the name the metrics give them: `messages`, `history`
    /// and, when it keeps one, `rt_journal`.
    pub fn logs(&self) -> impl Iterator<Item = (&'static str, &LogReport)> {
        [("messages", &self.log), ("history", &self.history_log)]
            .into_iter()
            .chain(self.rt_journal_log.as_ref().map(|j| ("rt_journal", j)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_replies_when_noted_then_each_kind_and_code_counts_apart() {
        let mut counts = ReplyCounts::default();
        counts.note(ReplyKind::Accepted, None);
        counts.note(ReplyKind::Accepted, None);
        counts.note(ReplyKind::Accepted, Some(&HubError::QuotaExceeded));
        counts.note(ReplyKind::Status, Some(&HubError::NotFound));
        assert_eq!(counts.ok(ReplyKind::Accepted), 2);
        assert_eq!(counts.refused(ReplyKind::Accepted, 6), 1);
        assert_eq!(ERROR_CODES[6], "QUOTA_EXCEEDED");
        assert_eq!(counts.refused(ReplyKind::Status, 11), 1);
        assert_eq!(counts.ok(ReplyKind::Status), 0);
    }

    #[test]
    fn given_every_reply_kind_when_indexed_then_indexes_are_distinct() {
        let mut seen: Vec<usize> = REPLY_KINDS
            .iter()
            .map(|(k, _)| reply_kind_index(*k))
            .collect();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), REPLY_KIND_COUNT);
    }
}
