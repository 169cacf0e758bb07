//! The sans-IO shard: the queue and lifecycle rules of gonets as a plain
//! state machine. It takes inputs (an operation arrived, a commit finished,
//! the clock moved, a reader left, a peer shard wrote) and returns outputs
//! (append these records, answer this caller, deliver this message, tell that
//! shard, wake me then). It does no I/O and reads no clock: the caller passes
//! `now_ms` with every step, so the same inputs always give the same outputs.
//!
//! Every durable change is made by emitting a log record and applying it
//! (`apply`), the same code replay runs; volatile state (queues, leases,
//! waits, subscriptions) is rebuilt after replay, with every lease expired.

mod audit;
mod awaiting;
mod batch;
pub mod exchange;
mod exchange_table;
pub mod keys;
mod park;
pub mod parked_list;
pub mod provider;
pub mod queue;
mod record_size;
mod signing;
pub mod sla;
pub mod snapshot;
pub mod snapshot_writer;
#[cfg(test)]
mod tests;
pub mod timers;
pub mod types;
pub mod wheel;

pub(crate) use signing::answer_receipt;
use signing::Signing;

use crate::record::{
    AnswerBody, AnswerRecord, EventKind, EventRecord, Record, RequestRecord, Seal,
};
use crate::registry::{Mode, Registry};
use bytes::Bytes;
use exchange::{Exchange, Outcome};
use exchange_table::ExchangeTable;
use gonets_types::error::HubError;
use gonets_types::ids::{MessageId, ParticipantId, QueueId};
use gonets_types::refusal::RefusalCode;
use gonets_types::{AttachmentRef, Digest, ProviderNotice};
use queue::{Place, Queue};
use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use timers::{Timer, Timers};
pub use types::*;

/// A map keyed by ids the hub made (message ids, tokens) or by BLAKE3
/// prints: foldhash, several times cheaper than the default SipHash on the
/// per-message path. Clients do not choose these keys, so SipHash's
/// resistance to crafted collisions buys nothing here.
pub type IdMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;
/// An [`IdMap`] for the shard's largest tables (millions of entries at rt
/// rates): when it grows, the move into the bigger table is spread over the
/// inserts that follow instead of done at once (`griddle`). A whole rehash
/// of the exchange table's 2 M ids stalled the shard 5–13 ms at rt
/// 10,000/s on the project VM (ADR 0030).
pub type SpreadIdMap<K, V> = griddle::HashMap<K, V, foldhash::fast::RandomState>;
/// A set of hub-made ids that grows as [`SpreadIdMap`] does.
pub type SpreadIdSet<K> = griddle::HashSet<K, foldhash::fast::RandomState>;
/// A set of hub-made ids, hashed as [`IdMap`].
pub type IdSet<K> = HashSet<K, foldhash::fast::RandomState>;
/// A map keyed by queues or participants: names from the operator's
/// registry (a queue a client names that the registry lacks is refused
/// before any lookup), looked up several times per message. foldhash, as
/// [`IdMap`]: SipHash of the name was 2–3 % of the hub's CPU in the bulk
/// benchmark.
pub type NameMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// Tunables of a shard's rules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardConfig {
    /// This shard's number.
    pub shard: u16,
    /// Shards in the hub.
    pub shard_count: u16,
    /// How long a delivered message stays leased without an ack, ms.
    pub lease_timeout_ms: u64,
    /// Deliveries without an ack before a request is dead-lettered.
    pub deliveries_max: u32,
    /// How long an idempotency key is remembered, ms.
    pub dedup_window_ms: u64,
    /// Most messages one fetch returns.
    pub fetch_max: u32,
    /// Longest long-poll wait, ms.
    pub wait_ms_max: u64,
    /// Random bits mixed into message ids so ids never repeat across restarts.
    pub boot_nonce: u32,
    /// How long a finished exchange (answer acked) stays in memory for
    /// `status`, ms; `None` keeps it for ever. Never less than its
    /// idempotency window, so a repeat always finds the original.
    pub finished_keep_ms: Option<u64>,
    /// Whether snapshots carry finished exchanges without an idempotency key
    /// (their history then survives a restart; snapshots grow with recent traffic).
    pub snapshot_finished: bool,
    /// Whether finished exchanges go to the history archive (ADR 0005): the
    /// shard asks for it with `Output::Archive` once the exchange's last
    /// record is durable, keeps it in memory (and in snapshots) until
    /// `Input::Archived`, and sends `status` of ids it no longer holds to the
    /// archive (`Output::StatusFromArchive`).
    pub archive_histories: bool,
    /// Retention period, ms: a log segment goes only once every message in it
    /// is at least this old (and nothing live needs it); 0: no period.
    pub retention_ms: u64,
    /// The largest record the log takes, bytes (the log's record size
    /// limit): a send or an answer whose record would be larger is refused
    /// with `TooLarge` before anything is applied.
    pub record_bytes_max: usize,
    /// A provider is unreachable when requests wait in its kind's queue and
    /// nobody has read it for this long, ms ([`provider::unreachable_since`];
    /// 0: never). `status` of a waiting request then carries a notice.
    pub provider_unreachable_after_ms: u64,
    /// Whether the records of calls (requests sent with `call`, their
    /// answers and events) are also written to the shard's rt journal
    /// (`Output::Append::journal`), so that a call's answer goes to its
    /// caller once its record is durable there or in the log, whichever
    /// is first (`Input::Journaled`, docs/adr/0036).
    pub rt_journal: bool,
}

/// Default of [`ShardConfig::provider_unreachable_after_ms`]: a minute
/// without a read while requests wait (a provider that long-polls or
/// subscribes reads far more often; one that polls now and then should
/// poll within it).
pub const PROVIDER_UNREACHABLE_AFTER_MS_DEFAULT: u64 = 60_000;

/// How long a finished exchange's history stays in memory in production:
/// 10 minutes (`status` reads the archive afterwards).
pub const FINISHED_KEEP_MS_PRODUCTION: u64 = 10 * 60 * 1000;
/// Retention period of the shard logs in production: 7 days.
pub const RETENTION_MS_PRODUCTION: u64 = 7 * 24 * 3600 * 1000;

impl ShardConfig {
    /// What a hub runs by default, for shard `shard` of `shard_count`:
    /// finished histories go to the archive and leave memory after
    /// [`FINISHED_KEEP_MS_PRODUCTION`], snapshots hold live state only, logs
    /// keep [`RETENTION_MS_PRODUCTION`], records are bounded by the default
    /// log's record size. The hub ([`crate::HubConfig`]) and the simulator
    /// both start from this; the simulator shrinks its times per seed.
    pub fn production(shard: u16, shard_count: u16) -> ShardConfig {
        ShardConfig {
            finished_keep_ms: Some(FINISHED_KEEP_MS_PRODUCTION),
            // Snapshots hold live state only: at 10,000 exchanges/s ten
            // minutes of finished histories would be millions of parts.
            snapshot_finished: false,
            // Finished histories go to the archive before they leave memory.
            archive_histories: true,
            retention_ms: RETENTION_MS_PRODUCTION,
            ..ShardConfig::new(shard, shard_count)
        }
    }

    /// The rules alone, for shard `shard` of `shard_count`: no archive,
    /// finished exchanges kept in memory and in snapshots for ever, no
    /// retention period. Unit tests that look at one rule at a time start
    /// here; a hub runs [`ShardConfig::production`].
    pub fn new(shard: u16, shard_count: u16) -> ShardConfig {
        assert!(shard < shard_count && shard_count <= MessageId::SHARD_MAX + 1);
        ShardConfig {
            shard,
            shard_count,
            lease_timeout_ms: 30_000,
            deliveries_max: 5,
            dedup_window_ms: 24 * 3600 * 1000,
            fetch_max: 1024,
            wait_ms_max: 60_000,
            boot_nonce: 0,
            finished_keep_ms: None,
            snapshot_finished: true,
            archive_histories: false,
            retention_ms: 0,
            record_bytes_max: gonets_storage::LogConfig::default().payload_bytes_max(),
            provider_unreachable_after_ms: PROVIDER_UNREACHABLE_AFTER_MS_DEFAULT,
            rt_journal: false,
        }
    }
}

/// Counters of what the shard did, for monitoring and tests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ShardCounters {
    /// Requests accepted (durable).
    pub accepted: u64,
    /// Sends answered with an earlier acceptance.
    pub duplicates: u64,
    /// Answers that came after the request had expired.
    pub late_answers: u64,
    /// Requests expired.
    pub expired: u64,
    /// Requests dead-lettered.
    pub dead_lettered: u64,
    /// Deliveries of a request after its first (its earlier lease ended
    /// without an ack: nack, lease expiry, reader gone).
    pub redeliveries: u64,
    /// Requests refused as state secrets.
    pub state_secrets_refused: u64,
    /// Requests refused `InvalidFormat` (their kind's `request_format`).
    pub requests_invalid_format: u64,
    /// Data answers refused `InvalidFormat` (their kind's `answer_format`).
    pub answers_invalid_format: u64,
    /// Requests refused `BadSignature` (missing where required, unknown
    /// or out-of-date key, a signature that does not verify; each request
    /// of a batch whose one signature fails).
    pub requests_bad_signature: u64,
    /// Answers refused `BadSignature`.
    pub answers_bad_signature: u64,
    /// Finished exchanges removed from memory after `finished_keep_ms`.
    pub evicted: u64,
    /// Histories handed to the archive (`Output::Archive`).
    pub archive_asked: u64,
    /// Histories the archive reported durable (`Input::Archived`).
    pub archived: u64,
    /// Receipts of requests and answers the shard handed out signed (a
    /// batch's receipt and answers read back from the log not counted).
    pub receipts_signed: u64,
    /// The hub signatures that signed them: one a step's tree
    /// (docs/adr/0023), so `receipts_signed / receipt_signatures` is how
    /// many receipts one signature served.
    pub receipt_signatures: u64,
    /// Calls' answers routed by the rt journal before the log made them
    /// durable (docs/adr/0036).
    pub answers_routed_by_journal: u64,
}

/// How many of each thing a shard holds in memory ([`Shard::held`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Held {
    /// Full exchanges (taken, answered, committing, or finished and kept).
    pub exchanges: usize,
    /// Parked requests (no reader has taken them).
    pub parked: usize,
    /// Requests acked and awaiting their answer, as 56-byte entries.
    pub awaiting: usize,
    /// Parked requests with a transaction code or an idempotency key.
    pub parked_texts: usize,
    /// Armed ordered timers (stale ones included until they fire): nack
    /// delays, long-poll waits, evictions, head timers, and what the
    /// wheels refused past their bound.
    pub timers: usize,
    /// Async requests committing, watched for their deadline.
    pub committing_deadlines: usize,
    /// Requests whose deadline is out of their queue's order, in the
    /// timer wheel (ADR 0012).
    pub wheel: usize,
    /// Deadlines of whole requests (taken, in a call, answered), in their
    /// own timer wheel until the exchange leaves memory or parks.
    pub deadline_wheel: usize,
    /// Leases not yet acked, nacked or ended, in their timer wheel.
    pub lease_wheel: usize,
    /// Outputs and steps waiting for a commit.
    pub deferred: usize,
    /// Idempotency keys remembered.
    pub dedup_keys: usize,
}

/// Most (offset, time) samples kept for the retention period; when full,
/// every other old one is dropped, which only keeps segments longer.
pub const RETENTION_SAMPLES_MAX: usize = 1024;

/// A fetch waiting for messages.
#[derive(Debug)]
struct FetchWait {
    queue: QueueId,
    reader: ReaderId,
    max: u32,
}

/// A reader subscribed to a queue with credits.
#[derive(Debug)]
struct Subscription {
    reader: ReaderId,
    credits: u32,
}

/// The shard's timer stores, as `tick` takes from them.
#[derive(Clone, Copy, Debug)]
enum TimerSource {
    Ordered,
    Parked,
    Deadlines,
    Leases,
}

/// An answer in a consumer's answer queue on this shard (volatile: rebuilt
/// from the request shards' logs after a restart).
#[derive(Debug)]
struct AnswerEntry {
    envelope: AnswerEnvelope,
    deliveries: u32,
}

/// What a provider's answer carries: data with its payload and
/// attachments, or a refusal (no payload, no attachments).
#[derive(Debug)]
struct AnswerContent {
    body: AnswerBody,
    payload: Bytes,
    attachments: Vec<AttachmentRef>,
}

impl AnswerContent {
    fn data(payload: Bytes, attachments: Vec<AttachmentRef>) -> AnswerContent {
        AnswerContent {
            body: AnswerBody::Data,
            payload,
            attachments,
        }
    }
}

/// What a checked new request is accepted on: its kind's terms at the
/// time it came.
#[derive(Debug)]
struct RequestTerms {
    queue: QueueId,
    provider: ParticipantId,
    deadline_ms: u64,
    queue_messages_max: u32,
    queue_bytes_max: u64,
    /// Its digest and signature, stored with it.
    seal: Seal,
}

/// A consumer's answers that one request shard made and the consumer has
/// not acked yet (ADR 0013): what its answer queue may hold from here.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Outstanding {
    /// Answers.
    pub messages: u32,
    /// Their payload bytes.
    pub bytes: u64,
}

/// Something to do once the log is durable up to an offset.
// Most deferred entries are replies, so boxing the large variant would
// allocate for nearly every one.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
enum Deferred {
    Out(Output),
    RequestDurable(MessageId),
    AnswerDurable(MessageId),
    /// The record that finished this exchange is durable: archive it.
    Finished(MessageId),
}

/// One shard's state machine.
pub struct Shard {
    config: ShardConfig,
    registry: Arc<Registry>,
    /// The hub's receipt key (`set_hub_key`); `None`: no receipts.
    hub_key: Option<Arc<gonets_trust::HubKey>>,
    now_ms: u64,
    next_offset: u64,
    durable_offset: u64,
    id_sequence: u64,
    // In pages that never move (exchange_table.rs): held inline in the
    // map, every rehash moved all 320-byte exchanges into fresh pages
    // (11-34 ms stalls at rt 10,000/s, bench/RESULTS.md, 2026-12-04).
    exchanges: ExchangeTable,
    answer_index: SpreadIdMap<MessageId, MessageId>,
    queues: NameMap<QueueId, Queue>,
    answers: IdMap<MessageId, AnswerEntry>,
    /// The idempotency window: keys as prints, in time slices.
    keys: keys::KeyWindow,
    timers: Timers,
    armed_ms: Option<u64>,
    deferred: VecDeque<(u64, Deferred)>,
    /// Calls' answers the rt journal may route before the log has made
    /// them durable (ADR 0036), by their records' offsets, in order.
    deferred_journal: VecDeque<(u64, MessageId)>,
    /// The highest offset an awaited deferral waits on (a reply, an
    /// answer to route, an async request to hand over): what the runtime
    /// must commit now. Records past it are awaited by nobody (a call's
    /// request before its answer, delivery events) and may wait for a
    /// later commit (`ShardTask::end_turn`, ADR 0025).
    awaited_last: Option<u64>,
    waits: IdMap<Token, FetchWait>,
    waits_by_queue: NameMap<QueueId, VecDeque<Token>>,
    subscriptions: NameMap<QueueId, Vec<Subscription>>,
    call_waiters: IdMap<MessageId, Token>,
    /// Consumers' acks of answers waiting for the request's shard to make
    /// them durable (`PeerMsg::AnswerAckSettled`). Sorted: a storage
    /// failure answers them in a fixed order.
    answer_acks: BTreeSet<Token>,
    failed: Option<HubError>,
    counters: ShardCounters,
    /// The rate bound of audit records (`audit`).
    audit: audit::AuditBound,
    /// Service-level counts by data kind (live steps only, never replay).
    sla: sla::SlaBook,
    /// The latest fetch, subscribe or credit per queue, hub time ms: the
    /// provider-unreachable rule's "last read".
    last_read_ms: NameMap<QueueId, u64>,
    /// Accepted requests still committing, per queue: they count against the
    /// queue's bound before they join it.
    committing: NameMap<QueueId, u32>,
    /// Payload bytes of the requests each queue holds (open, not acked;
    /// committing ones included), for its byte quota. Kept by `apply`, so
    /// replay gives the same.
    waiting_bytes: NameMap<QueueId, u64>,
    /// Per consumer, the answers made here and not yet acked by it: what
    /// its answer queue may hold from this shard (ADR 0013).
    answers_out: NameMap<ParticipantId, Outstanding>,
    snapshot_start: u64,
    /// The oldest offset the state of the latest durable snapshot still
    /// reads payloads from (at most its start): what a restart may need.
    snapshot_floor: u64,
    /// Snapshots written but not yet durable: (first offset, their floor).
    snapshots_pending: Vec<(u64, u64)>,
    /// Replay is still inside the snapshot it started from.
    replay_base: bool,
    /// The latest hub time in the replayed log.
    replayed_ms: u64,
    /// Finished exchanges handed to the archive, not yet reported durable.
    archiving: IdSet<MessageId>,
    /// Finished exchanges the archive holds durably, still in memory.
    archived: SpreadIdSet<MessageId>,
    /// Exchanges whose eviction fell due while their archive write ran.
    evict_when_archived: IdSet<MessageId>,
    /// Exchanges held that a snapshot must carry (`Shard::settled` is
    /// false), in id order: a snapshot walks these, not the finished ones
    /// kept in memory for `status` (at 2,000 calls a second for 10 minutes,
    /// over a million), so its cost follows what is open.
    unsettled: BTreeSet<MessageId>,
    /// (offset, hub time ms): every message below the offset is at most that
    /// old. Oldest first, at most `RETENTION_SAMPLES_MAX`.
    age_samples: VecDeque<(u64, u64)>,
    /// Names the parked requests point to.
    names: park::Names,
    /// Transaction codes and idempotency keys of parked requests that have them.
    parked_texts: IdMap<MessageId, park::ParkedTexts>,
    /// Replay runs (`replay` was called, `recovered` not yet).
    replaying: bool,
    /// The lowest earlier part a snapshot replay read referred to (the one
    /// it started from, or a later one it passed over).
    replay_refers_from: u64,
    /// Async requests still committing, with their deadlines, in
    /// acceptance order (bounded by the commits in flight).
    committing_deadlines: VecDeque<(u64, MessageId)>,
    /// When the committing head timer that counts is due.
    committing_head_ms: Option<u64>,
    /// The latest deadline pushed on `committing_deadlines` since it was
    /// last empty: an earlier one goes to the wheel.
    committing_deadline_max_ms: u64,
    /// Deadlines of requests parked or committing out of their queue's
    /// order (their own expiry): O(1) to arm and cancel (ADR 0012).
    wheel: wheel::Wheel,
    /// Deadlines of whole requests (taken, answered, awaiting their
    /// ack): cancelled when the exchange leaves memory or parks, so the
    /// timers follow what is in flight, not what passed through.
    deadlines: wheel::Wheel,
    /// Lease ends, by message id (a later lease of it replaces the
    /// earlier): cancelled at ack, nack and eviction.
    leases: wheel::Wheel,
    out: Vec<Output>,
}

impl Shard {
    /// A shard whose log's next record will get `next_offset` (all of it durable).
    pub fn new(config: ShardConfig, registry: Arc<Registry>, next_offset: u64) -> Shard {
        Shard {
            keys: keys::KeyWindow::new(config.dedup_window_ms),
            config,
            registry,
            hub_key: None,
            now_ms: 0,
            next_offset,
            durable_offset: next_offset,
            id_sequence: 0,
            exchanges: ExchangeTable::default(),
            answer_index: SpreadIdMap::default(),
            queues: NameMap::default(),
            answers: IdMap::default(),
            timers: Timers::default(),
            armed_ms: None,
            deferred: VecDeque::new(),
            deferred_journal: VecDeque::new(),
            awaited_last: None,
            waits: IdMap::default(),
            waits_by_queue: NameMap::default(),
            subscriptions: NameMap::default(),
            call_waiters: IdMap::default(),
            answer_acks: BTreeSet::new(),
            failed: None,
            counters: ShardCounters::default(),
            audit: audit::AuditBound::default(),
            sla: sla::SlaBook::default(),
            last_read_ms: NameMap::default(),
            committing: NameMap::default(),
            waiting_bytes: NameMap::default(),
            answers_out: NameMap::default(),
            snapshot_start: 0,
            snapshot_floor: 0,
            snapshots_pending: Vec::new(),
            replay_base: true,
            replayed_ms: 0,
            archiving: IdSet::default(),
            archived: SpreadIdSet::default(),
            evict_when_archived: IdSet::default(),
            unsettled: BTreeSet::new(),
            age_samples: VecDeque::new(),
            names: park::Names::default(),
            parked_texts: IdMap::default(),
            replaying: false,
            replay_refers_from: u64::MAX,
            committing_deadlines: VecDeque::new(),
            committing_head_ms: None,
            committing_deadline_max_ms: 0,
            wheel: wheel::Wheel::new(wheel::WHEEL_ENTRIES_MAX),
            deadlines: wheel::Wheel::new(wheel::WHEEL_ENTRIES_MAX),
            leases: wheel::Wheel::new(wheel::WHEEL_ENTRIES_MAX),
            out: Vec::new(),
        }
    }

    /// This shard's number.
    pub fn id(&self) -> u16 {
        self.config.shard
    }

    /// The rules' tunables.
    pub fn config(&self) -> &ShardConfig {
        &self.config
    }

    /// The registry in force.
    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// Counters.
    pub fn counters(&self) -> &ShardCounters {
        &self.counters
    }

    /// Offset the next appended record gets.
    pub fn next_offset(&self) -> u64 {
        self.next_offset
    }

    /// Hub time of the last step, ms.
    pub fn now_ms(&self) -> u64 {
        self.now_ms
    }

    /// The exchange of a request, if this shard has it (made from its
    /// parked entry when no reader has taken it yet).
    pub fn exchange(&self, id: MessageId) -> Option<Cow<'_, Exchange>> {
        self.exchange_view(id)
    }

    /// Every exchange on this shard, parked requests made whole.
    pub fn exchanges(&self) -> impl Iterator<Item = Cow<'_, Exchange>> {
        self.exchanges
            .values()
            .map(Cow::Borrowed)
            .chain(self.parked_exchanges().map(Cow::Owned))
            .chain(self.awaiting_exchanges().map(Cow::Owned))
    }

    /// Requests parked in this shard's queues (no reader has taken them).
    pub fn parked_count(&self) -> usize {
        self.queues.values().map(|q| q.parked().len()).sum()
    }

    /// How many of each thing the shard holds in memory (tests, monitoring).
    pub fn held(&self) -> Held {
        Held {
            exchanges: self.exchanges.len(),
            parked: self.parked_count(),
            awaiting: self.awaiting_count(),
            parked_texts: self.parked_texts.len(),
            timers: self.timers.len(),
            committing_deadlines: self.committing_deadlines.len(),
            wheel: self.wheel.len(),
            deadline_wheel: self.deadlines.len(),
            lease_wheel: self.leases.len(),
            deferred: self.deferred.len(),
            dedup_keys: self.keys.len(),
        }
    }

    /// Payload bytes of the requests `queue` holds (waiting, leased or
    /// committing; not acked, not answered): what its byte quota counts.
    pub fn waiting_bytes(&self, queue: &QueueId) -> u64 {
        self.waiting_bytes.get(queue).copied().unwrap_or(0)
    }

    /// The answers this shard made for `consumer` that it has not acked
    /// yet: what its answer bound counts here (ADR 0013).
    pub fn answers_outstanding(&self, consumer: &ParticipantId) -> Outstanding {
        self.answers_out.get(consumer).copied().unwrap_or_default()
    }

    /// Answers waiting in (or leased from) answer queues owned by this shard.
    pub fn queued_answers(&self) -> impl Iterator<Item = &AnswerEnvelope> {
        self.answers.values().map(|a| &a.envelope)
    }

    /// Stats of a queue owned by this shard.
    pub fn queue_stats(&self, queue: &QueueId) -> queue::QueueStats {
        self.queues
            .get(queue)
            .map(|q| q.stats(self.now_ms))
            .unwrap_or_default()
    }

    /// Every queue this shard holds, with its stats at `now_ms` and its
    /// waiting bytes: for the operator (read on request, off the hot path).
    pub fn queues_stats(
        &self,
        now_ms: u64,
    ) -> impl Iterator<Item = (&QueueId, queue::QueueStats, u64)> + '_ {
        self.queues
            .iter()
            .map(move |(id, q)| (id, q.stats(now_ms), self.waiting_bytes(id)))
    }

    /// The service-level counts by data kind: running totals since the
    /// shard started (live steps only; replay counts nothing).
    pub fn sla(&self) -> &sla::SlaBook {
        &self.sla
    }

    /// What the provider-unreachable rule sees of `queue` at `now_ms`: its
    /// readers connected now, its last read, and since when its provider
    /// is unreachable (read on request, off the hot path).
    pub fn read_watch(&self, queue: &QueueId, now_ms: u64) -> provider::ReadWatch {
        let subscribed = self.subscriptions.get(queue).map_or(0, Vec::len);
        let fetching = self.waits_by_queue.get(queue).map_or(0, |tokens| {
            tokens.iter().filter(|t| self.waits.contains_key(t)).count()
        });
        let last_read_ms = self.last_read_ms.get(queue).copied();
        let state = provider::ReadState {
            oldest_waiting_ms: self.queues.get(queue).and_then(Queue::oldest_waiting_ms),
            last_read_ms,
        };
        provider::ReadWatch {
            readers: u32::try_from(subscribed + fetching).unwrap_or(u32::MAX),
            last_read_ms,
            unreachable_since_ms: provider::unreachable_since(
                now_ms,
                state,
                self.config.provider_unreachable_after_ms,
            ),
        }
    }

    /// Where a message stands in a queue owned by this shard (`None`: not in
    /// it). Read-only; for tests and the simulator.
    pub fn queue_place(&self, queue: &QueueId, id: MessageId) -> Option<Place> {
        self.queues.get(queue).and_then(|q| q.place(id))
    }

    /// Exclusive end of the log prefix this shard knows to be durable.
    pub fn durable_offset(&self) -> u64 {
        self.durable_offset
    }

    /// The highest offset something waits on to be durable: a reply, an
    /// answer to route on, an async request to hand to its provider. The
    /// runtime commits through it at once; records appended past it (a
    /// call's request before its answer, delivery events, audit records)
    /// are awaited by nobody and may ride a later commit (ADR 0025).
    pub fn awaited_last(&self) -> Option<u64> {
        self.awaited_last
    }

    /// Why the shard refuses work, if it does.
    pub fn failed(&self) -> Option<&HubError> {
        self.failed.as_ref()
    }

    /// The lowest offset the log must keep: the latest durable snapshot's
    /// start, or a payload its state still hands over, whichever is older.
    /// Taken from the snapshot's state, not the live one: an ack or an answer
    /// not yet durable frees nothing, since a crash may undo it.
    ///
    /// With a retention period (`retention_ms`), also no higher than the
    /// newest offset below which every message is older than the period.
    pub fn retention_floor(&self) -> u64 {
        if self.config.retention_ms == 0 {
            return self.snapshot_floor;
        }
        self.snapshot_floor.min(self.aged_floor())
    }

    /// The lowest offset the log is sure to hold still: retention never
    /// drops above the floor of the latest durable snapshot. (Today's
    /// `retention_floor` may be lower, e.g. just after a restart, when no
    /// age is known yet, while the log was cut higher before it.)
    pub fn kept_floor(&self) -> u64 {
        self.snapshot_floor
    }

    /// The highest offset below which every message is at least
    /// `retention_ms` old (0 when none is known to be).
    fn aged_floor(&self) -> u64 {
        let cutoff_ms = self.now_ms.saturating_sub(self.config.retention_ms);
        self.age_samples
            .iter()
            .take_while(|(_, t)| *t <= cutoff_ms)
            .map(|(o, _)| *o)
            .last()
            .unwrap_or(0)
    }

    /// Notes that every message below `offset` is at most `time_ms` old.
    fn sample_age(&mut self, offset: u64, time_ms: u64) {
        if self.config.retention_ms == 0 {
            return;
        }
        // Samples older than the newest one already past the period are
        // never the answer again.
        let cutoff_ms = self.now_ms.saturating_sub(self.config.retention_ms);
        while self.age_samples.len() >= 2 && self.age_samples[1].1 <= cutoff_ms {
            self.age_samples.pop_front();
        }
        if self.age_samples.len() >= RETENTION_SAMPLES_MAX {
            // Coarser samples only keep segments longer (the safe side).
            let kept: VecDeque<(u64, u64)> = self
                .age_samples
                .iter()
                .enumerate()
                .filter(|(i, _)| i % 2 == 1)
                .map(|(_, s)| *s)
                .collect();
            self.age_samples = kept;
        }
        assert!(self.age_samples.len() < RETENTION_SAMPLES_MAX);
        if self
            .age_samples
            .back()
            .is_none_or(|(o, t)| *o <= offset && *t <= time_ms)
        {
            self.age_samples.push_back((offset, time_ms));
        }
    }

    /// Finished exchanges handed to the archive and not yet reported durable.
    pub fn archiving_count(&self) -> usize {
        self.archiving.len()
    }

    /// The oldest payload offset the current state needs, at most `start`.
    fn needs_floor(&self, start: u64) -> u64 {
        // A settled exchange is finished: it needs no offset.
        self.unsettled
            .iter()
            .filter_map(|id| self.exchanges[id].needed_offset())
            .chain(self.parked_floor())
            .chain(self.awaiting_floor())
            .fold(start, u64::min)
    }

    /// Takes one input at hub time `now_ms`; appends the outputs to `out`.
    pub fn step(&mut self, now_ms: u64, input: Input, out: &mut Vec<Output>) {
        // The hub clock never runs backwards inside a shard: a wall-clock
        // step back is absorbed (timers fire late, never early).
        self.now_ms = self.now_ms.max(now_ms);
        if self.failed.is_some() && !matches!(input, Input::Command { .. }) {
            // A failed log takes no more records: timers, peers and
            // disconnects would all append. Commands get the typed error,
            // and so does an ack another shard waits on.
            if let Input::Peer(msg) = input {
                self.refuse_peer(msg);
            }
            self.sign_receipts();
            out.append(&mut self.out);
            return;
        }
        match input {
            Input::Command {
                token,
                caller,
                command,
            } => self.command(token, caller, command),
            Input::Committed { durable_offset } => self.committed(durable_offset),
            Input::Journaled { durable_offset } => self.journaled(durable_offset),
            Input::StorageFailed { full } => self.storage_failed(full),
            Input::Tick => self.tick(),
            Input::Disconnected { reader } => self.disconnected(reader),
            Input::GiveBack { queue, id, reader } => self.give_back(&queue, id, reader),
            Input::CallReplied { request_id, taken } => self.call_replied(request_id, taken),
            Input::Archived { request_id } => self.archived(request_id),
            Input::Peer(msg) => self.peer(msg),
        }
        self.arm();
        self.sign_receipts();
        out.append(&mut self.out);
    }

    // ---- replay ----

    /// Applies a durable record read back from the log at `offset` (replay).
    pub fn replay(&mut self, offset: u64, record: Record) -> Result<(), HubError> {
        self.replay_at(offset)?;
        match record {
            Record::SnapshotPart(bytes) => self.replay_part(offset, &bytes)?,
            Record::SnapshotEnd { first_offset, .. } => {
                self.replay_base = false;
                // Everything replayed so far is durable: its needs, and the
                // earlier parts the snapshot referred to, are the floor.
                self.snapshot_start = first_offset;
                self.snapshot_floor = self.needs_floor(first_offset).min(self.replay_refers_from);
            }
            // Kept for audit, or an offset a crash lost (ADR 0036): not state.
            Record::Anchor(_) | Record::Audit(_) | Record::Lost => {}
            record => {
                self.replay_base = false;
                let time_ms = match &record {
                    Record::Request(r) => r.time_ms,
                    Record::Answer(a) => a.time_ms,
                    Record::Event(e) => e.time_ms,
                    Record::Events(es) => es.iter().map(|e| e.time_ms).max().unwrap_or(0),
                    _ => 0,
                };
                self.replayed_ms = self.replayed_ms.max(time_ms);
                self.apply(offset, &record, true)
            }
        }
        Ok(())
    }

    /// Replays the record at `offset` as it is in the log: a reference
    /// part is resolved with `read` (the record at an earlier offset) and
    /// the parts it stands for applied in its place, in order
    /// (`snapshot::resolve_references`). The one way replay takes records.
    pub fn replay_resolving(
        &mut self,
        offset: u64,
        record: Record,
        read: impl FnMut(u64) -> Result<Record, String>,
    ) -> Result<(), String> {
        if let Record::SnapshotPart(bytes) = &record {
            for target in snapshot::references_of(bytes).unwrap_or_default() {
                self.replayed_reference(target);
            }
        }
        let failed = |e: HubError| e.to_string();
        match snapshot::resolve_references(offset, record, read)? {
            snapshot::Resolved::Itself(record) => self.replay(offset, record).map_err(failed),
            snapshot::Resolved::Parts(parts) => {
                self.replay_at(offset).map_err(failed)?;
                // Bounded: a references part names at most REFERENCES_MAX.
                for bytes in parts {
                    self.replay_part(offset, &bytes).map_err(failed)?;
                }
                Ok(())
            }
        }
    }

    /// Replay has reached `offset`; refused if it went backwards.
    fn replay_at(&mut self, offset: u64) -> Result<(), HubError> {
        assert!(self.deferred.is_empty(), "replay only before live traffic");
        self.replaying = true;
        if offset < self.next_offset {
            return Err(HubError::Unavailable(format!(
                "replay went backwards at offset {offset}"
            )));
        }
        self.next_offset = offset + 1;
        self.durable_offset = self.next_offset;
        Ok(())
    }

    /// Applies one snapshot part's content (replay, at `offset`).
    fn replay_part(&mut self, offset: u64, bytes: &[u8]) -> Result<(), HubError> {
        // Only the snapshot replay starts from builds state. A later one
        // (whole, or cut short by a crash) repeats what the records before
        // it built already, and restoring a cut one would reset the
        // idempotency keys of the exchanges it lacks.
        if !self.replay_base {
            // Its state is older than what replay built; its clock is not.
            if let Some(now_ms) = snapshot::clock_of(bytes) {
                self.replayed_ms = self.replayed_ms.max(now_ms);
            }
            return Ok(());
        }
        let unavailable = |e| HubError::Unavailable(format!("snapshot at {offset}: {e}"));
        match snapshot::decode_part(bytes).map_err(unavailable)? {
            snapshot::Part::Exchange(ex, print) => {
                let latest = ex.history.iter().map(|e| e.time_ms).max();
                self.replayed_ms = self.replayed_ms.max(latest.unwrap_or(ex.time_ms));
                if let Some(print) = print {
                    // A snapshot from before the key window had its own parts.
                    self.keys.insert(print, ex.id, ex.time_ms);
                }
                self.restore_exchange(*ex);
            }
            snapshot::Part::Parked(run) => self.restore_parked(run),
            snapshot::Part::Clock(now_ms) => {
                self.replayed_ms = self.replayed_ms.max(now_ms);
            }
            snapshot::Part::Keys(keys) => {
                for (print, id) in keys {
                    self.replayed_ms = self.replayed_ms.max(id.unix_ms());
                    self.keys.insert(print, id, id.unix_ms());
                }
            }
        }
        Ok(())
    }

    /// Replay is about to apply, at a reference part, the earlier part at
    /// `target` it stands for (`snapshot::resolve_references`): that part
    /// must outlive the snapshot replay started from, and a later snapshot
    /// replay passes over too (replay from an older one): the latter is
    /// the floor's once replay ends, and the next restart's start.
    pub fn replayed_reference(&mut self, target: u64) {
        self.replay_refers_from = self.replay_refers_from.min(target);
    }

    /// Replay skipped the log's last records up to `next_offset` (damage
    /// the operator accepted with `gonets repair`): new records go after them.
    pub fn replay_skipped(&mut self, next_offset: u64) {
        assert!(self.deferred.is_empty(), "replay only before live traffic");
        assert!(next_offset >= self.next_offset, "replay never goes back");
        self.next_offset = next_offset;
        self.durable_offset = next_offset;
    }

    /// Ends replay: rebuilds queues (every lease expired), timers and the
    /// delivery of answers not yet acked, at hub time `now_ms`.
    pub fn recovered(&mut self, now_ms: u64, out: &mut Vec<Output>) {
        // The hub clock does not run backwards across a restart either: a
        // wall clock behind the log (not yet synced after a reboot) is
        // absorbed like any step back.
        self.now_ms = self.now_ms.max(now_ms).max(self.replayed_ms);
        let mut pending: Vec<(u64, MessageId)> = Vec::new();
        let mut answers: Vec<MessageId> = Vec::new();
        let mut finished: Vec<MessageId> = Vec::new();
        // In id order: timers due at the same time fire in the order armed,
        // and hash order differs from run to run.
        let mut ids: Vec<MessageId> = self.exchanges.keys().copied().collect();
        ids.sort_unstable();
        for id in ids {
            let ex = &self.exchanges[&id];
            if ex.outcome.is_none() && !Self::parkable(ex) {
                // A parkable one is parked by `requeue`: its queue's head
                // timer watches its deadline.
                let deadline_ms = ex.deadline_ms;
                self.watch_deadline(id, deadline_ms);
            }
            let ex = &self.exchanges[&id];
            if ex.in_request_queue() {
                pending.push((ex.request_offset, ex.id));
            }
            if ex.outcome.is_some() && !ex.answer_acked {
                answers.push(ex.id);
            }
            if ex.finished() {
                finished.push(ex.id);
            }
        }
        // Every request parked again first (a replayed one may go back
        // between those restored from the snapshot), then one pass
        // watches their deadlines: head timers and the wheel.
        self.requeue(pending);
        self.watch_parked_deadlines();
        self.watch_awaiting_deadlines();
        self.replaying = false;
        answers.sort_unstable();
        for id in answers {
            self.route_answer(id);
        }
        // Whether the archive already holds them is the archive's to know:
        // it answers a repeat at once, without a second copy.
        for id in finished {
            self.ask_archive(id);
        }
        // Every message replayed was written before this restart.
        let (next, now) = (self.next_offset, self.now_ms);
        self.sample_age(next, now);
        let queues: Vec<QueueId> = self.queues.keys().cloned().collect();
        for q in queues {
            self.pump(&q);
        }
        self.arm();
        self.sign_receipts();
        out.append(&mut self.out);
    }

    /// After replay: the requests still waiting go back into their queues
    /// in log order, except those whose last allowed delivery was leased when
    /// the node stopped (dead-lettered now, as a live disconnect would).
    fn requeue(&mut self, mut pending: Vec<(u64, MessageId)>) {
        pending.sort_unstable();
        for (_, id) in pending {
            let ex = &self.exchanges[&id];
            if ex.deliveries >= self.config.deliveries_max {
                if ex.deadline_ms <= self.now_ms {
                    // Past its deadline: it expires at the first tick (its
                    // timer is due), as it would have before the crash; a
                    // caller may already have been told so.
                    continue;
                }
                // Its last allowed delivery was leased when the node stopped:
                // the lease counts as expired, as a live disconnect would.
                self.counters.dead_lettered += 1;
                let reason = format!(
                    "not acknowledged after {} deliveries",
                    self.config.deliveries_max
                );
                self.hub_answer(id, RefusalCode::Undeliverable, reason);
                continue;
            }
            self.enqueue_at_place(id);
        }
    }

    /// The whole snapshot starting at `first_offset` (the offset its first
    /// part will get), every part at once: for tests and tools; the runtime
    /// writes one part at a time ([`Shard::snapshot_begin`]).
    pub fn snapshot(&mut self, first_offset: u64) -> Vec<Record> {
        let mut cursor = self.snapshot_begin(first_offset);
        let mut records = Vec::new();
        // Bounded: the cursor ends after its `SnapshotEnd`.
        while let Some(record) = self.snapshot_next(&mut cursor) {
            records.push(record);
        }
        records
    }

    /// The exchanges a snapshot carries whole, in id order.
    /// Holds `ex` in memory; the exchange it replaced, if any.
    fn hold(&mut self, ex: Exchange) -> Option<Exchange> {
        if !self.settled(&ex) {
            self.unsettled.insert(ex.id);
        }
        self.exchanges.insert(ex.id, ex)
    }

    /// Takes exchange `id` out of memory.
    fn release(&mut self, id: MessageId) -> Option<Exchange> {
        self.unsettled.remove(&id);
        self.exchanges.remove(&id)
    }

    /// Leaves `id` out of the exchanges a snapshot walks once it is settled.
    fn settle(&mut self, id: MessageId) {
        if self.exchanges.get(&id).is_some_and(|ex| self.settled(ex)) {
            self.unsettled.remove(&id);
        }
    }

    /// True when a restart does not need `ex` from a snapshot: finished,
    /// no idempotency key, and (when archiving) durable in the archive.
    /// A finished exchange matters to a restart only through its key;
    /// without one it is history, and writing every recent history into
    /// every snapshot would make snapshots grow with traffic. One not yet
    /// durable in the archive stays: the snapshot is then the only place a
    /// restart finds its history.
    fn settled(&self, ex: &Exchange) -> bool {
        !self.config.snapshot_finished
            && ex.finished()
            && !ex.keyed
            && (!self.config.archive_histories || self.archived.contains(&ex.id))
    }

    fn snapshot_exchange_ids(&self) -> Vec<MessageId> {
        let ids: Vec<MessageId> = self
            .unsettled
            .iter()
            .copied()
            .filter(|id| !self.settled(&self.exchanges[id]))
            .collect();
        // Every exchange a snapshot needs is in `unsettled` (checked against
        // a walk of all of them in debug builds).
        debug_assert_eq!(ids, self.snapshot_exchange_ids_walked());
        ids
    }

    /// The exchanges a snapshot carries, by a walk of every one held.
    fn snapshot_exchange_ids_walked(&self) -> Vec<MessageId> {
        let mut ids: Vec<MessageId> = self
            .exchanges
            .values()
            .filter(|ex| !self.settled(ex))
            .map(|ex| ex.id)
            .collect();
        ids.sort_unstable();
        ids
    }

    /// The snapshot's last record was given: the state it wrote is all
    /// durable once it is, so what that state needs (and every earlier part
    /// it refers to) is what a restart from here needs.
    fn snapshot_ended(&mut self, first_offset: u64, refers_from: u64) {
        let floor = self.needs_floor(first_offset).min(refers_from);
        self.snapshots_pending.push((first_offset, floor));
        // Every message below the snapshot was written by now.
        let now = self.now_ms;
        self.sample_age(first_offset, now);
    }

    /// Records that the snapshot starting at `first_offset` is durable: replay
    /// may start there and older segments may go.
    pub fn snapshot_durable(&mut self, first_offset: u64) {
        assert!(first_offset <= self.durable_offset);
        self.snapshot_start = self.snapshot_start.max(first_offset);
        if let Some(&(_, floor)) = self
            .snapshots_pending
            .iter()
            .find(|(first, _)| *first == first_offset)
        {
            self.snapshot_floor = self.snapshot_floor.max(floor);
        }
        self.snapshots_pending
            .retain(|(first, _)| *first > first_offset);
    }

    fn restore_exchange(&mut self, ex: Exchange) {
        if let Some(o) = &ex.outcome {
            self.answer_index.insert(o.answer_id, ex.id);
            if !ex.answer_acked {
                self.count_answer(&ex.consumer, o.payload_bytes, true);
            }
        }
        if ex.in_request_queue() {
            let queue = QueueId::Requests(ex.kind.clone());
            self.count_waiting(&queue, ex.payload_bytes, true);
        }
        self.id_sequence = self.id_sequence.max(ex.id.0 as u64 & 0xffff_ffff);
        let finished_ms = ex
            .finished()
            .then(|| ex.history.last().map_or(ex.time_ms, |e| e.time_ms));
        let id = ex.id;
        self.hold(ex);
        if let Some(finished_ms) = finished_ms {
            self.arm_eviction(id, finished_ms);
            self.settle(id);
        }
    }

    /// Arms the removal from memory of an exchange finished at `finished_ms`.
    fn arm_eviction(&mut self, id: MessageId, finished_ms: u64) {
        let Some(keep_ms) = self.config.finished_keep_ms else {
            return;
        };
        let ex = &self.exchanges[&id];
        let mut at_ms = finished_ms.saturating_add(keep_ms);
        if ex.keyed {
            // A repeat of its key within the window finds it whole.
            at_ms = at_ms.max(ex.time_ms.saturating_add(self.config.dedup_window_ms));
        }
        self.timers.arm(at_ms, Timer::Evict(id));
    }

    // ---- the durable state: records and their application ----

    fn emit(&mut self, record: Record) -> u64 {
        let offset = self.next_offset;
        self.next_offset += 1;
        // Asked before `apply`: an answer's or event's exchange is there now.
        let journal = self.config.rt_journal && self.is_call_record(&record);
        self.apply(offset, &record, false);
        self.out.push(Output::Append {
            offset,
            record,
            journal,
        });
        offset
    }

    /// True when `record` belongs to a call's exchange: every such record
    /// goes to the rt journal too, so a call's history is whole there
    /// (ADR 0036). With the journal on, an `Events` record names calls'
    /// exchanges only or none of them (`emit_events`).
    fn is_call_record(&self, record: &Record) -> bool {
        let call = |id: &MessageId| self.exchanges.get(id).is_some_and(|ex| ex.call);
        match record {
            Record::Request(r) => r.call,
            Record::Answer(a) => call(&a.request_id),
            Record::Event(e) => call(&e.request_id),
            Record::Events(es) => {
                let calls = es.iter().filter(|e| call(&e.request_id)).count();
                // `emit_events` keeps calls' events in records of their own.
                assert!(
                    !self.config.rt_journal || calls == 0 || calls == es.len(),
                    "an events record mixes calls' exchanges with others"
                );
                calls > 0
            }
            _ => false,
        }
    }

    fn apply(&mut self, offset: u64, record: &Record, durable: bool) {
        match record {
            Record::Request(r) => self.apply_request(offset, r, durable),
            Record::Answer(a) => self.apply_answer(offset, a, durable),
            Record::Event(e) => self.apply_event(offset, e, durable),
            Record::Events(es) => {
                for e in es {
                    self.apply_event(offset, e, durable);
                }
            }
            Record::SnapshotPart(_)
            | Record::SnapshotEnd { .. }
            | Record::Anchor(_)
            | Record::Audit(_)
            | Record::Lost => {
                unreachable!("snapshot, trust and lost records are not applied")
            }
        }
    }

    /// A request record opens its exchange (and its idempotency key).
    fn apply_request(&mut self, offset: u64, r: &RequestRecord, durable: bool) {
        let mut ex = Exchange {
            test: r.test,
            call: r.call,
            transaction: r.transaction.clone(),
            keyed: r.idempotency_key.is_some(),
            request_offset: offset,
            durable,
            payload: (!durable).then(|| r.payload.clone()),
            seal: r.seal.clone().filter(|_| !durable),
            payload_bytes: bytes_u32(r.payload.len()),
            ..Exchange::accepted(
                r.id,
                r.kind.clone(),
                r.consumer.clone(),
                r.provider.clone(),
                r.time_ms,
                r.deadline_ms,
            )
        };
        ex.record(EventKind::Accepted, r.time_ms, 0);
        if let Some(key) = &r.idempotency_key {
            let print = keys::KeyPrint::of(&r.consumer, &r.kind, key);
            self.keys.insert(print, r.id, r.time_ms);
        }
        self.id_sequence = self.id_sequence.max(r.id.0 as u64 & 0xffff_ffff);
        let queue = QueueId::Requests(r.kind.clone());
        self.count_waiting(&queue, ex.payload_bytes, true);
        let previous = self.hold(ex);
        assert!(previous.is_none(), "request id reused");
    }

    /// An answer record ends its exchange (once: the outcome is final).
    fn apply_answer(&mut self, offset: u64, a: &AnswerRecord, durable: bool) {
        self.unpark(a.request_id);
        let Some(ex) = self.exchanges.get_mut(&a.request_id) else {
            return; // dropped by history retention
        };
        assert!(ex.outcome.is_none(), "a request ends exactly once");
        let waited = ex
            .in_request_queue()
            .then(|| QueueId::Requests(ex.kind.clone()));
        let outcome = Outcome {
            answer_id: a.id,
            body: a.body.clone(),
            time_ms: a.time_ms,
            answer_offset: offset,
            durable,
            routed: false,
            payload: (!durable).then(|| a.payload.clone()),
            seal: a.seal.clone().filter(|_| !durable),
            payload_bytes: bytes_u32(a.payload.len()),
        };
        ex.record(outcome.event_kind(), a.time_ms, 0);
        let (consumer, answer_bytes) = (ex.consumer.clone(), outcome.payload_bytes);
        ex.outcome = Some(outcome);
        ex.payload = None;
        ex.seal = None;
        let request_bytes = ex.payload_bytes;
        self.answer_index.insert(a.id, a.request_id);
        if let Some(queue) = waited {
            self.count_waiting(&queue, request_bytes, false);
        }
        self.count_answer(&consumer, answer_bytes, true);
    }

    /// An event record is one step in an exchange's history; the last one
    /// (the answer's ack) arms its eviction and, once durable, its archiving.
    fn apply_event(&mut self, offset: u64, e: &EventRecord, durable: bool) {
        self.unpark(e.request_id);
        let Some(ex) = self.exchanges.get_mut(&e.request_id) else {
            return;
        };
        // The archive copies a finished history once: nothing may
        // change it afterwards (request-side steps end with the
        // answer, answer-side steps with the consumer's ack).
        assert!(!ex.finished(), "a finished history is final");
        // What leaves the byte counts: a request its provider acked, an
        // answer its consumer acked.
        let left_queue = (e.kind == EventKind::Acked && ex.in_request_queue())
            .then(|| (QueueId::Requests(ex.kind.clone()), ex.payload_bytes));
        let answer_acked = match &ex.outcome {
            Some(o) if e.kind == EventKind::AnswerAcked && !ex.answer_acked => {
                Some((ex.consumer.clone(), o.payload_bytes))
            }
            _ => None,
        };
        match e.kind {
            EventKind::Delivered => ex.deliveries = ex.deliveries.max(e.count),
            EventKind::Acked => ex.acked = true,
            EventKind::AnswerDelivered => ex.answer_deliveries = ex.answer_deliveries.max(e.count),
            EventKind::AnswerAcked => ex.answer_acked = true,
            _ => {}
        }
        ex.record(e.kind, e.time_ms, e.count);
        let finished = e.kind == EventKind::AnswerAcked && ex.finished();
        if let Some((queue, bytes)) = left_queue {
            self.count_waiting(&queue, bytes, false);
        }
        if let Some((consumer, bytes)) = answer_acked {
            self.count_answer(&consumer, bytes, false);
        }
        if e.kind == EventKind::Acked {
            self.hold_for_answer(e.request_id);
            return;
        }
        if finished {
            self.arm_eviction(e.request_id, e.time_ms);
            self.settle(e.request_id);
            if !durable && self.config.archive_histories {
                // Archived only once the record that finished it is
                // durable: the archive never holds a history a crash
                // could still undo. (Replay archives in `recovered`.)
                self.defer_unawaited(offset, Deferred::Finished(e.request_id));
            }
        }
    }

    fn event(&mut self, request_id: MessageId, kind: EventKind, count: u32) {
        self.emit(Record::Event(EventRecord {
            request_id,
            kind,
            time_ms: self.now_ms,
            count,
        }));
    }

    /// Counts `bytes` of a request joining (`add`) or leaving `queue`'s
    /// byte quota. Entries stay at 0 (one per request queue: a drained
    /// queue's next request finds its entry).
    fn count_waiting(&mut self, queue: &QueueId, bytes: u32, add: bool) {
        let bytes = u64::from(bytes);
        match self.waiting_bytes.get_mut(queue) {
            Some(n) if add => *n += bytes,
            Some(n) => *n = n.checked_sub(bytes).expect("counted when it came"),
            None if add => {
                self.waiting_bytes.insert(queue.clone(), bytes);
            }
            None => assert_eq!(bytes, 0, "counted when it came"),
        }
    }

    /// Counts an answer of `bytes` to `consumer` made (`add`) or acked.
    /// Entries stay at 0 (one per consumer this shard answered).
    fn count_answer(&mut self, consumer: &ParticipantId, bytes: u32, add: bool) {
        let out = match self.answers_out.get_mut(consumer) {
            Some(out) => out,
            None => self.answers_out.entry(consumer.clone()).or_default(),
        };
        if add {
            out.messages += 1;
            out.bytes += u64::from(bytes);
            return;
        }
        out.messages = out.messages.checked_sub(1).expect("counted when made");
        out.bytes = out
            .bytes
            .checked_sub(u64::from(bytes))
            .expect("counted when made");
        assert!(
            out.messages > 0 || out.bytes == 0,
            "the bytes leave with the answers"
        );
    }

    /// Whether `consumer`'s answer queue may take one more answer of
    /// `bytes` from this shard: its bounds are split evenly among the
    /// shards (no peer message on the path, ADR 0013), and an answer is
    /// refused only while others are outstanding, so any answer within
    /// the kind's size goes once the consumer has acked what it had.
    fn answer_room(&self, consumer: &ParticipantId, bytes: usize) -> Result<(), HubError> {
        let Some(p) = self.registry.participant(consumer) else {
            return Ok(()); // not in today's registry: no bound to apply
        };
        let out = self.answers_outstanding(consumer);
        if out.messages == 0 {
            return Ok(());
        }
        let shards = u64::from(self.config.shard_count);
        let messages_max = u64::from(p.answer_queue_messages_max).div_ceil(shards);
        let bytes_max = p.answer_queue_bytes_max.div_ceil(shards);
        if u64::from(out.messages) + 1 > messages_max || out.bytes + bytes as u64 > bytes_max {
            return Err(HubError::QuotaExceeded);
        }
        Ok(())
    }

    /// Holds `what` until `offset` is durable; the runtime commits through
    /// it at once (`awaited_last`).
    fn defer(&mut self, offset: u64, what: Deferred) {
        let offset = self.defer_unawaited(offset, what);
        assert!(offset < self.next_offset, "awaits a record not appended");
        if self.awaited_last.is_none_or(|a| a < offset) {
            self.awaited_last = Some(offset);
        }
    }

    /// Holds `what` until `offset` is durable, which nobody waits for (a
    /// call's request: its answer's commit carries it; an exchange to
    /// archive): the commit may come later (ADR 0025). Returns the offset
    /// it waits on.
    fn defer_unawaited(&mut self, offset: u64, what: Deferred) -> u64 {
        // The queue stays sorted: an entry for an older offset (a duplicate
        // send of a request still committing) waits behind newer ones, which
        // only delays it; nothing is released before it is durable.
        let offset = self
            .deferred
            .back()
            .map_or(offset, |(back, _)| offset.max(*back));
        self.deferred.push_back((offset, what));
        offset
    }

    fn reply(&mut self, token: Token, result: Result<ShardReply, HubError>) {
        self.out.push(Output::Reply { token, result });
    }

    fn reply_when_durable(
        &mut self,
        offset: u64,
        token: Token,
        result: Result<ShardReply, HubError>,
    ) {
        self.out_when_durable(offset, Output::Reply { token, result });
    }

    /// Replies once every record appended so far is durable: for a reply
    /// that rests on state whose record's offset is not kept.
    fn reply_after_appended(&mut self, token: Token, result: Result<ShardReply, HubError>) {
        self.out_after_appended(Output::Reply { token, result });
    }

    fn out_when_durable(&mut self, offset: u64, output: Output) {
        if offset < self.durable_offset {
            self.out.push(output);
        } else {
            self.defer(offset, Deferred::Out(output));
        }
    }

    fn out_after_appended(&mut self, output: Output) {
        match self.next_offset.checked_sub(1) {
            Some(last) => self.out_when_durable(last, output),
            None => self.out.push(output), // nothing appended, ever
        }
    }

    /// Tells the answer queue's shard how a consumer's answer ack ended; an
    /// `Ok` only once everything appended so far (its record) is durable.
    fn settle_answer_ack(&mut self, ack: AckRoute, result: Result<(), HubError>) {
        let output = Output::ToShard {
            shard: ack.shard,
            msg: PeerMsg::AnswerAckSettled {
                token: ack.token,
                result: result.clone(),
            },
        };
        if result.is_ok() {
            self.out_after_appended(output);
        } else {
            self.out.push(output);
        }
    }

    fn new_id(&mut self) -> MessageId {
        self.id_sequence = (self.id_sequence + 1) & 0xffff_ffff;
        let sequence = (u64::from(self.config.boot_nonce & 0x3fff_ffff) << 32) | self.id_sequence;
        MessageId::new(self.now_ms, self.config.shard, sequence)
    }

    // ---- operations ----

    fn command(&mut self, token: Token, caller: ParticipantId, mut command: Command) {
        if let Some(e) = &self.failed {
            // Reads go on (they are how an operator drains and diagnoses);
            // anything that must be stored is refused.
            match &mut command {
                Command::Status { .. } | Command::QueueStats { .. } => {}
                // Timers no longer run: a long poll would never end. The
                // lease is not recorded; its ack is refused, and the
                // message comes again after a restart.
                Command::Fetch { wait_ms, .. } => *wait_ms = 0,
                _ => {
                    let e = e.clone();
                    return self.reply(token, Err(e));
                }
            }
        }
        if self.registry.participant(&caller).is_none() {
            return self.reply(token, Err(HubError::Unauthenticated));
        }
        let result = match command {
            Command::SendRequest(r) => {
                self.send_request(token, &caller, r, false, Signing::Own(None))
            }
            Command::Call(r) => self.send_request(token, &caller, r, true, Signing::Own(None)),
            Command::SendRequests(rs) => self.send_requests(token, &caller, rs, None),
            Command::Fetch {
                queue,
                max,
                wait_ms,
                reader,
            } => self.fetch(token, &caller, queue, max, wait_ms, reader),
            Command::Subscribe {
                queue,
                credits,
                reader,
            } => self.subscribe(&caller, queue, credits, reader),
            Command::Ack { queue, id, reader } => self.ack(token, &caller, queue, id, reader),
            Command::AckMany { queue, ids, reader } => {
                self.ack_many(token, &caller, queue, ids, reader)
            }
            Command::Nack {
                queue,
                id,
                reader,
                delay_ms,
            } => self.nack(token, &caller, queue, id, reader, delay_ms),
            Command::NackMany {
                queue,
                ids,
                reader,
                delay_ms,
            } => self.nack_many(token, &caller, queue, ids, reader, delay_ms),
            Command::SendResponse {
                request_id,
                payload,
                attachments,
            } => {
                let content = AnswerContent::data(payload, attachments);
                self.data_answer(token, &caller, request_id, content, None)
            }
            Command::SendRefusal {
                request_id,
                code,
                reason,
            } => self.refuse(token, &caller, request_id, code, reason, None),
            Command::Status { id } => self.status(token, &caller, id),
            Command::QueueStats { queue } => self.stats(&caller, queue),
            Command::Signed { signature, command } => {
                self.signed(token, &caller, signature, *command)
            }
            // Sessions serve these from the attachment store (ADR 0022).
            Command::UploadBegin { .. }
            | Command::UploadChunk { .. }
            | Command::UploadStatus { .. }
            | Command::UploadFinish { .. }
            | Command::ReadAttachment { .. } => Err(HubError::Malformed(
                "attachments are served by the attachment store, not a shard".into(),
            )),
        };
        // `None`: the reply comes later (after a commit, a wait or an answer).
        match result {
            Ok(Some(reply)) => self.reply(token, Ok(reply)),
            Ok(None) => {}
            Err(e) => self.reply(token, Err(e)),
        }
    }

    /// A provider's data answer; one that breaks its kind's answer format
    /// is counted.
    fn data_answer(
        &mut self,
        token: Token,
        caller: &ParticipantId,
        request_id: MessageId,
        content: AnswerContent,
        signature: Option<&gonets_types::SenderSignature>,
    ) -> Result<Option<ShardReply>, HubError> {
        let answered = self.answer(token, caller, request_id, content, signature);
        if matches!(answered, Err(HubError::InvalidFormat { .. })) {
            self.counters.answers_invalid_format += 1;
        }
        answered
    }

    /// A provider's refusal: only the provider's own codes, a reason that
    /// fits, then answered like data.
    fn refuse(
        &mut self,
        token: Token,
        caller: &ParticipantId,
        request_id: MessageId,
        code: RefusalCode,
        reason: String,
        signature: Option<&gonets_types::SenderSignature>,
    ) -> Result<Option<ShardReply>, HubError> {
        if code.is_hub_only() {
            return Err(HubError::Malformed(format!(
                "{} is given by the hub only",
                code.as_str()
            )));
        }
        if reason.len() > crate::record::TEXT_BYTES_MAX {
            return Err(text_too_large("reason", reason.len()));
        }
        let content = AnswerContent {
            body: AnswerBody::Refusal { code, reason },
            payload: Bytes::new(),
            attachments: Vec::new(),
        };
        self.answer(token, caller, request_id, content, signature)
    }

    fn owns(&self, queue: &QueueId) -> Result<(), HubError> {
        if queue.shard(self.config.shard_count) == self.config.shard {
            Ok(())
        } else {
            Err(HubError::Malformed(format!(
                "queue {queue} is not on shard {}",
                self.config.shard
            )))
        }
    }

    fn send_request(
        &mut self,
        token: Token,
        caller: &ParticipantId,
        r: NewRequest,
        call: bool,
        signing: Signing<'_>,
    ) -> Result<Option<ShardReply>, HubError> {
        let terms = self.door(caller, &r, call, signing)?;
        if self.answered_as_repeat(token, caller, &r, call) {
            return Ok(None);
        }
        self.accept_request(token, caller, r, call, terms)?;
        Ok(None)
    }

    /// The checks at the door (state secret, then [`Shard::request_terms`]:
    /// rights, sizes, its signature, its kind's request format), a refusal
    /// counted against its data kind when the registry has it. Every
    /// request comes through here, single, called or batched, before
    /// anything of it is stored.
    fn door(
        &mut self,
        caller: &ParticipantId,
        r: &NewRequest,
        call: bool,
        signing: Signing<'_>,
    ) -> Result<RequestTerms, HubError> {
        let checked = if r.state_secret {
            self.counters.state_secrets_refused += 1;
            tracing::warn!(consumer = %caller, kind = %r.kind, "state-secret request refused");
            Err(HubError::StateSecret)
        } else {
            self.request_terms(caller, r, call, signing)
        };
        if let Err(e) = &checked {
            match e {
                HubError::InvalidFormat { .. } => self.counters.requests_invalid_format += 1,
                HubError::BadSignature(_) => self.counters.requests_bad_signature += 1,
                _ => {}
            }
            self.refused_at_door(r, e);
            self.audit_refusal(caller, &r.kind, &r.payload, e);
        }
        checked
    }

    /// Counts a refusal on arrival against `r`'s kind (not for a kind the
    /// registry lacks: garbage must not make new label values).
    fn refused_at_door(&mut self, r: &NewRequest, e: &HubError) {
        if let Some(kind) = self.registry.kind(&r.kind) {
            let provider = kind.provider.clone();
            self.sla.refused_at_door(&r.kind, &provider, r.test, e);
        }
    }

    /// Checks a new request against its kind (who may ask, mode, sizes, the
    /// shard that owns its queue, its signature, its format) and gives the
    /// terms it is accepted on.
    fn request_terms(
        &self,
        caller: &ParticipantId,
        r: &NewRequest,
        call: bool,
        signing: Signing<'_>,
    ) -> Result<RequestTerms, HubError> {
        let participant = self.registry.participant(caller).expect("checked");
        if !participant.roles.consumer {
            return Err(HubError::NotAuthorized(format!(
                "{caller} is not a consumer"
            )));
        }
        let kind = self
            .registry
            .kind(&r.kind)
            .ok_or_else(|| HubError::UnknownDataKind(r.kind.to_string()))?;
        if !kind.consumers.contains(caller) {
            return Err(HubError::NotAuthorized(format!(
                "{caller} may not request {}",
                r.kind
            )));
        }
        if call && kind.mode != Mode::Realtime {
            return Err(HubError::Malformed(format!(
                "call needs a realtime data kind; {} is async",
                r.kind
            )));
        }
        if r.payload.len() as u64 > u64::from(kind.payload_bytes_max) {
            return Err(HubError::TooLarge {
                size_bytes: r.payload.len() as u64,
                size_bytes_max: u64::from(kind.payload_bytes_max),
            });
        }
        let texts = [
            ("idempotency_key", &r.idempotency_key),
            ("transaction", &r.transaction),
        ];
        for (field, text) in texts {
            if let Some(text) = text
                .as_ref()
                .filter(|t| t.len() > crate::record::TEXT_BYTES_MAX)
            {
                return Err(text_too_large(field, text.len()));
            }
        }
        let (signature, signed) = match signing {
            Signing::Own(s) => (s, s.is_some()),
            Signing::InBatch { signed, .. } => (None, signed),
        };
        if !signed && kind.signatures == crate::registry::Signatures::Required {
            // No digest or key is needed to know it is missing.
            return Err(gonets_trust::SignatureError::Missing.into());
        }
        check_attachments(&r.attachments, kind)?;
        let seal = Seal {
            digest: Digest([0; 32]), // set below, once the cheap rules hold
            signature: signature.cloned(),
            receipt_signature: None,
            attachments: r.attachments.clone(),
        };
        let seal_bytes = crate::record::seal_bytes(&seal);
        let record_bytes = record_size::request_record_bytes(
            r,
            caller.as_str(),
            kind.provider.as_str(),
            seal_bytes,
        );
        self.fits_log(r.payload.len(), record_bytes.expect("texts checked"))?;
        let queue = QueueId::Requests(r.kind.clone());
        self.owns(&queue)?;
        // Its own expiry, if any, within the kind's deadline (ADR 0012).
        let expires_in_ms = gonets_types::check_expiry(r, kind.deadline_ms)?;
        // The two dear checks last, the signature first (docs/adr/0019):
        // its cost is one hash of the payload (BLAKE3, about a µs per 4
        // KiB) and one Ed25519 verification (tens of µs, the same for any
        // size), while the schema's grows with the payload; and a message
        // whose author is not proven must not reach the JSON parser.
        let digest = match signing {
            Signing::Own(_) => gonets_trust::request_digest(caller, r),
            Signing::InBatch { digest, .. } => digest,
        };
        if let Some(s) = signature {
            self.check_by_keys(caller, s, &digest)?;
        }
        let seal = Seal { digest, ..seal };
        // The dearest check last: a request any other rule refuses is
        // never parsed (docs/adr/0018).
        kind.request_format.check(&r.payload)?;
        Ok(RequestTerms {
            queue,
            provider: kind.provider.clone(),
            deadline_ms: self.now_ms.saturating_add(expires_in_ms),
            queue_messages_max: kind.queue_messages_max,
            queue_bytes_max: kind.queue_bytes_max,
            seal,
        })
    }

    /// A request repeating an idempotency key seen within the dedup window
    /// is answered from the original (never stored twice): true when it was.
    fn answered_as_repeat(
        &mut self,
        token: Token,
        caller: &ParticipantId,
        r: &NewRequest,
        call: bool,
    ) -> bool {
        let Some(original) = self.repeat_of(caller, r) else {
            return false;
        };
        if call {
            self.call_again(token, original);
            return true;
        }
        let Some((time_ms, offset)) = self
            .exchange_view(original)
            .map(|ex| (ex.time_ms, ex.request_offset))
        else {
            // Kept whole for its window (`arm_eviction`), so never here;
            // were it gone, it was finished: durable, and still a repeat.
            let reply = ShardReply::Accepted {
                id: original,
                time_ms: original.unix_ms(),
                duplicate: true,
                receipt: None,
            };
            self.reply(token, Ok(reply));
            return true;
        };
        let reply = ShardReply::Accepted {
            id: original,
            time_ms,
            duplicate: true,
            receipt: None,
        };
        self.reply_when_durable(offset, token, Ok(reply));
        true
    }

    /// The request `r` repeats within the dedup window (counted), if any.
    fn repeat_of(&mut self, caller: &ParticipantId, r: &NewRequest) -> Option<MessageId> {
        let key = r.idempotency_key.as_ref()?;
        let original = self.keys.get(keys::KeyPrint::of(caller, &r.kind, key))?;
        // The original's time is its id's; its slice may outlive its window.
        let window_end_ms = original
            .unix_ms()
            .saturating_add(self.config.dedup_window_ms);
        if self.now_ms >= window_end_ms {
            return None;
        }
        self.counters.duplicates += 1;
        Some(original)
    }

    /// Stores a checked request and arms its timers; a call is handed to
    /// the provider while it commits, an async request is confirmed
    /// (`Accepted`) once durable.
    fn accept_request(
        &mut self,
        token: Token,
        caller: &ParticipantId,
        r: NewRequest,
        call: bool,
        terms: RequestTerms,
    ) -> Result<(), HubError> {
        let queue = terms.queue.clone();
        let kind = r.kind.clone();
        let seal = terms.seal.clone();
        let (id, offset) = self.store_request(caller, r, call, terms)?;
        if call {
            // The realtime path: hand the request over while it commits; the
            // answer reaches the caller only once durable.
            self.call_waiters.insert(id, token);
            // Nobody waits for the request alone: the answer's commit carries
            // it, or the runtime's bound on unawaited records (ADR 0025).
            self.defer_unawaited(offset, Deferred::RequestDurable(id));
            self.enqueue_request(id);
        } else {
            let time_ms = self.now_ms;
            self.committing_request(queue, id, offset);
            let receipt = self.request_receipt(id, &seal, caller, &kind, offset);
            self.defer(
                offset,
                Deferred::Out(Output::Reply {
                    token,
                    result: Ok(ShardReply::Accepted {
                        id,
                        time_ms,
                        duplicate: false,
                        receipt,
                    }),
                }),
            );
        }
        Ok(())
    }

    /// An accepted async request counts against its queue's bound while it
    /// commits, and joins the queue once durable.
    fn committing_request(&mut self, queue: QueueId, id: MessageId, offset: u64) {
        *self.committing.entry(queue).or_default() += 1;
        self.defer(offset, Deferred::RequestDurable(id));
    }

    /// Appends a checked request's record (within its queue's bound) and
    /// arms its timers: its id and offset.
    fn store_request(
        &mut self,
        caller: &ParticipantId,
        r: NewRequest,
        call: bool,
        terms: RequestTerms,
    ) -> Result<(MessageId, u64), HubError> {
        let RequestTerms {
            queue,
            provider,
            deadline_ms,
            queue_messages_max,
            queue_bytes_max,
            seal,
        } = terms;
        let committing = self.committing.get(&queue).copied().unwrap_or(0) as usize;
        let full = self.queues.get(&queue).map_or(0, Queue::len) + committing
            >= queue_messages_max as usize
            // Committing requests are counted from their record on.
            || self.waiting_bytes(&queue) + r.payload.len() as u64 > queue_bytes_max;
        if full {
            self.refused_at_door(&r, &HubError::QuotaExceeded);
            return Err(HubError::QuotaExceeded);
        }
        let id = self.new_id();
        let offset = self.emit(Record::Request(RequestRecord {
            id,
            kind: r.kind,
            consumer: caller.clone(),
            provider,
            time_ms: self.now_ms,
            deadline_ms,
            test: r.test,
            call,
            transaction: r.transaction,
            idempotency_key: r.idempotency_key,
            seal: Some(Box::new(seal)),
            payload: r.payload,
        }));
        if call {
            self.watch_deadline(id, deadline_ms);
        } else {
            // Watched in acceptance order while it commits, then by its
            // queue once parked there (or by its own timer once taken).
            self.watch_committing(id, deadline_ms);
        }
        Ok((id, offset))
    }

    /// A `call` repeating an earlier one's idempotency key (docs/protocol.md,
    /// "Repeats"): the original answer once it is durable; `DeadlineExceeded`
    /// if the original expired; `Duplicate` (the original's id) while it is
    /// unanswered, when it was not a call, or when its answer's payload may
    /// be gone from the log. Never a second request.
    fn call_again(&mut self, token: Token, original: MessageId) {
        // A parked original is no call: it is answered `Duplicate` below.
        self.unpark(original);
        let Some(ex) = self.exchanges.get(&original) else {
            // Kept whole for its window, so never here; were it gone, it
            // was finished, and its answer may be gone with it.
            return self.reply(token, Err(HubError::Duplicate { original }));
        };
        let duplicate = Err(HubError::Duplicate { original });
        let Some(o) = ex.outcome.as_ref().filter(|_| ex.call) else {
            let offset = ex.request_offset;
            return self.reply_when_durable(offset, token, duplicate);
        };
        let offset = o.answer_offset;
        if o.event_kind() == EventKind::Expired {
            return self.reply_when_durable(offset, token, Err(HubError::DeadlineExceeded));
        }
        // Retention may have dropped the segment that holds it: anything
        // below the floor of the latest durable snapshot may be gone (not
        // only below today's floor, which after a restart starts low).
        if o.payload.is_none() && offset < self.kept_floor() {
            return self.reply_when_durable(offset, token, duplicate);
        }
        let payload = match &o.payload {
            Some(b) => Payload::Bytes(b.clone()),
            None => Payload::AtOffset(offset),
        };
        let seal = o.seal.clone();
        let delivery_count = ex.answer_deliveries.max(1);
        let delivery = self
            .answer_envelope(original, payload, seal)
            .into_delivery(delivery_count);
        self.reply_when_durable(offset, token, Ok(ShardReply::Answer(delivery)));
    }

    fn enqueue_request(&mut self, id: MessageId) {
        let queue = QueueId::Requests(self.exchanges[&id].kind.clone());
        self.enqueue_at_place(id);
        self.pump(&queue);
    }

    fn may_read(&self, caller: &ParticipantId, queue: &QueueId) -> Result<(), HubError> {
        let allowed = match queue {
            QueueId::Requests(kind) => {
                let k = self
                    .registry
                    .kind(kind)
                    .ok_or_else(|| HubError::UnknownDataKind(kind.to_string()))?;
                &k.provider == caller
            }
            QueueId::Answers(p) => p == caller,
        };
        if allowed {
            self.owns(queue)
        } else {
            Err(HubError::NotAuthorized(format!(
                "{caller} may not read {queue}"
            )))
        }
    }

    fn fetch(
        &mut self,
        token: Token,
        caller: &ParticipantId,
        queue: QueueId,
        max: u32,
        wait_ms: u64,
        reader: ReaderId,
    ) -> Result<Option<ShardReply>, HubError> {
        self.may_read(caller, &queue)?;
        self.note_read(&queue);
        let max = max.clamp(1, self.config.fetch_max);
        let ready = self.queues.get(&queue).is_some_and(Queue::has_ready);
        if ready || wait_ms == 0 {
            let batch = self.take(&queue, reader, max);
            return Ok(Some(ShardReply::Messages(batch)));
        }
        let wait_ms = wait_ms.min(self.config.wait_ms_max);
        self.timers
            .arm(self.now_ms.saturating_add(wait_ms), Timer::FetchWait(token));
        self.waits.insert(
            token,
            FetchWait {
                queue: queue.clone(),
                reader,
                max,
            },
        );
        self.waits_by_queue
            .entry(queue)
            .or_default()
            .push_back(token);
        Ok(None)
    }

    fn subscribe(
        &mut self,
        caller: &ParticipantId,
        queue: QueueId,
        credits: u32,
        reader: ReaderId,
    ) -> Result<Option<ShardReply>, HubError> {
        self.may_read(caller, &queue)?;
        self.note_read(&queue);
        let subs = self.subscriptions.entry(queue.clone()).or_default();
        match subs.iter_mut().find(|s| s.reader == reader) {
            Some(s) => s.credits = s.credits.saturating_add(credits),
            None => subs.push(Subscription { reader, credits }),
        }
        self.pump(&queue);
        Ok(Some(ShardReply::Done))
    }

    /// A reader asked `queue` for messages (fetch, subscribe or credits)
    /// now. The queue's entry is made at its first read, then only set.
    fn note_read(&mut self, queue: &QueueId) {
        match self.last_read_ms.get_mut(queue) {
            Some(t) => *t = self.now_ms,
            None => {
                self.last_read_ms.insert(queue.clone(), self.now_ms);
            }
        }
    }

    /// Leases up to `max` ready messages of `queue` to `reader`.
    /// The deliveries of requests are recorded as one record (`Events`)
    /// after the last, not one record each.
    fn take(&mut self, queue: &QueueId, reader: ReaderId, max: u32) -> Vec<Delivery> {
        let mut batch = Vec::new();
        let mut events = Vec::new();
        let expires_ms = self.now_ms.saturating_add(self.config.lease_timeout_ms);
        while batch.len() < max as usize {
            let Some(q) = self.queues.get(queue) else {
                break;
            };
            if q.next_is_parked() {
                self.unpark_front(queue);
            }
            let q = self.queues.get_mut(queue).expect("present");
            let Some((id, lease)) = q.lease_next(reader, expires_ms) else {
                break;
            };
            self.watch_lease(queue, id, lease.generation, expires_ms);
            batch.push(self.delivered(queue, id, &mut events));
        }
        if !events.is_empty() {
            self.emit_events(events);
        }
        batch
    }

    /// Counts a delivery of `id` and describes it; a request's delivered
    /// event joins `events` (appended by the caller).
    fn delivered(
        &mut self,
        queue: &QueueId,
        id: MessageId,
        events: &mut Vec<EventRecord>,
    ) -> Delivery {
        match queue {
            QueueId::Requests(_) => {
                let ex = &self.exchanges[&id];
                let count = ex.deliveries + 1;
                if count > 1 {
                    self.counters.redeliveries += 1;
                }
                events.push(EventRecord {
                    request_id: id,
                    kind: EventKind::Delivered,
                    time_ms: self.now_ms,
                    count,
                });
                Delivery {
                    queue: queue.clone(),
                    id,
                    reply_to: None,
                    kind: ex.kind.clone(),
                    from: ex.consumer.clone(),
                    body: DeliveryBody::Request,
                    time_ms: ex.time_ms,
                    deadline_ms: ex.deadline_ms,
                    delivery_count: count,
                    test: ex.test,
                    transaction: ex.transaction.clone(),
                    payload: match &ex.payload {
                        Some(b) => Payload::Bytes(b.clone()),
                        None => Payload::AtOffset(ex.request_offset),
                    },
                    // With the payload in memory; else read with it.
                    seal: ex.seal.clone(),
                    receipt: None,
                }
            }
            QueueId::Answers(_) => {
                let entry = self.answers.get_mut(&id).expect("queued answer");
                entry.deliveries += 1;
                let delivery = entry.envelope.clone().into_delivery(entry.deliveries);
                let request_id = entry.envelope.request_id;
                self.out.push(Output::ToShard {
                    shard: request_id.shard(),
                    msg: PeerMsg::AnswerDelivered {
                        request_id,
                        count: delivery.delivery_count,
                    },
                });
                delivery
            }
        }
    }

    /// Hands ready messages of `queue` to waiting fetches, then to subscribers.
    fn pump(&mut self, queue: &QueueId) {
        // Bounded: every pass takes at least one message or ends the loop.
        loop {
            if !self.queues.get(queue).is_some_and(Queue::has_ready) {
                return;
            }
            let waiting = self
                .waits_by_queue
                .get_mut(queue)
                .and_then(VecDeque::pop_front);
            if let Some(token) = waiting {
                let Some(w) = self.waits.remove(&token) else {
                    continue; // timed out or disconnected
                };
                let batch = self.take(queue, w.reader, w.max);
                assert!(!batch.is_empty());
                self.reply(token, Ok(ShardReply::Messages(batch)));
                continue;
            }
            let reader = self
                .subscriptions
                .get_mut(queue)
                .and_then(|subs| subs.iter_mut().find(|s| s.credits > 0))
                .map(|s| {
                    s.credits -= 1;
                    s.reader
                });
            let Some(reader) = reader else {
                return;
            };
            let delivery = self.take(queue, reader, 1).pop().expect("ready");
            self.out.push(Output::Deliver { reader, delivery });
        }
    }

    fn ack(
        &mut self,
        token: Token,
        caller: &ParticipantId,
        queue: QueueId,
        id: MessageId,
        reader: ReaderId,
    ) -> Result<Option<ShardReply>, HubError> {
        self.may_read(caller, &queue)?;
        let place = self.queues.get(&queue).and_then(|q| q.place(id));
        match place {
            Some(Place::Leased(l)) if l.reader == reader => {}
            Some(_) => return Err(HubError::NotFound), // not leased to this reader (any more)
            None => return self.ack_again(token, caller, &queue, id),
        }
        self.queues.get_mut(&queue).unwrap().remove(id);
        self.leases.cancel(id);
        match queue {
            QueueId::Requests(_) => {
                self.event(id, EventKind::Acked, 0);
                let offset = self.next_offset - 1;
                self.reply_when_durable(offset, token, Ok(ShardReply::Done));
                Ok(None)
            }
            QueueId::Answers(_) => {
                let entry = self.answers.remove(&id).expect("queued answer");
                let request_id = entry.envelope.request_id;
                // The ack is recorded by the request's shard (ADR 0003): the
                // consumer hears `Done` once that record is durable there.
                let ack = self.await_answer_ack(token);
                self.out.push(Output::ToShard {
                    shard: request_id.shard(),
                    msg: PeerMsg::AnswerAcked {
                        request_id,
                        ack: Some(ack),
                    },
                });
                Ok(None)
            }
        }
    }

    /// An ack of a message no longer in its queue: `Done` when it is
    /// already acked (or, for a request, answered), once that is durable,
    /// so that a retried ack is harmless; otherwise `NotFound`.
    fn ack_again(
        &mut self,
        token: Token,
        caller: &ParticipantId,
        queue: &QueueId,
        id: MessageId,
    ) -> Result<Option<ShardReply>, HubError> {
        match queue {
            QueueId::Requests(_) => {
                let settled = self.exchange_view(id).is_some_and(|ex| {
                    QueueId::Requests(ex.kind.clone()) == *queue && !ex.in_request_queue()
                });
                if !settled {
                    return Err(HubError::NotFound);
                }
                // The record that settled it is at most the last appended.
                self.reply_after_appended(token, Ok(ShardReply::Done));
                Ok(None)
            }
            QueueId::Answers(_) => {
                if id.shard() >= self.config.shard_count {
                    return Err(HubError::NotFound); // no shard here made it
                }
                // Only the answer's request shard knows whether it was acked.
                let ack = self.await_answer_ack(token);
                self.out.push(Output::ToShard {
                    shard: id.shard(),
                    msg: PeerMsg::AnswerAckAgain {
                        answer_id: id,
                        consumer: caller.clone(),
                        ack,
                    },
                });
                Ok(None)
            }
        }
    }

    /// Keeps a consumer's answer ack waiting for the request's shard.
    fn await_answer_ack(&mut self, token: Token) -> AckRoute {
        let fresh = self.answer_acks.insert(token);
        assert!(fresh, "token {token} already waits");
        AckRoute {
            shard: self.config.shard,
            token,
        }
    }

    fn nack(
        &mut self,
        token: Token,
        caller: &ParticipantId,
        queue: QueueId,
        id: MessageId,
        reader: ReaderId,
        delay_ms: u64,
    ) -> Result<Option<ShardReply>, HubError> {
        self.may_read(caller, &queue)?;
        let place = self.queues.get(&queue).and_then(|q| q.place(id));
        if !matches!(place, Some(Place::Leased(l)) if l.reader == reader) {
            return Err(HubError::NotFound);
        }
        let requests = matches!(queue, QueueId::Requests(_));
        if requests {
            self.event(id, EventKind::Nacked, 0);
        }
        self.lease_ended(&queue, id, delay_ms);
        if !requests {
            // An answer queue records nothing: its state is volatile.
            return Ok(Some(ShardReply::Done));
        }
        // The nack's event (and a dead letter it caused) first become durable.
        self.reply_after_appended(token, Ok(ShardReply::Done));
        Ok(None)
    }

    /// A lease ended without an ack: deliver again (after `delay_ms`), or
    /// dead-letter a request that used up its deliveries.
    fn lease_ended(&mut self, queue: &QueueId, id: MessageId, delay_ms: u64) {
        self.leases.cancel(id);
        if self.end_lease(queue, id, delay_ms) {
            self.pump(queue);
        }
    }

    /// Ends a lease as [`Shard::lease_ended`] does, without handing out
    /// what became ready (the caller pumps): true when `id` is ready now.
    fn end_lease(&mut self, queue: &QueueId, id: MessageId, delay_ms: u64) -> bool {
        if let QueueId::Requests(_) = queue {
            if self.exchanges[&id].deliveries >= self.config.deliveries_max {
                self.queues.get_mut(queue).unwrap().remove(id);
                self.counters.dead_lettered += 1;
                let reason = format!(
                    "not acknowledged after {} deliveries",
                    self.config.deliveries_max
                );
                self.hub_answer(id, RefusalCode::Undeliverable, reason);
                return false;
            }
        }
        let q = self.queues.get_mut(queue).unwrap();
        if delay_ms == 0 {
            q.make_ready(id);
            return true;
        }
        let generation = q.delay(id);
        self.timers.arm(
            self.now_ms.saturating_add(delay_ms),
            Timer::Delay {
                queue: queue.clone(),
                id,
                generation,
            },
        );
        false
    }

    fn answer(
        &mut self,
        token: Token,
        caller: &ParticipantId,
        request_id: MessageId,
        content: AnswerContent,
        signature: Option<&gonets_types::SenderSignature>,
    ) -> Result<Option<ShardReply>, HubError> {
        let AnswerContent {
            body,
            payload,
            attachments,
        } = content;
        if request_id.shard() != self.config.shard {
            return Err(HubError::NotFound);
        }
        let Some(ex) = self.exchange_view(request_id) else {
            return Err(HubError::NotFound);
        };
        if &ex.provider != caller {
            let (e, kind) = (
                format!("{caller} is not the provider of {request_id}"),
                ex.kind.clone(),
            );
            drop(ex);
            return Err(self.audited(caller, &kind, &payload, HubError::NotAuthorized(e)));
        }
        if !ex.durable && !ex.call {
            return Err(HubError::NotFound);
        }
        let (kind, provider, test) = (ex.kind.clone(), ex.provider.clone(), ex.test);
        match ex.outcome.as_ref().map(Outcome::event_kind) {
            Some(EventKind::Expired) => {
                drop(ex);
                self.counters.late_answers += 1;
                self.sla.tally(&kind, &provider, test).answered_late += 1;
                return Err(HubError::DeadlineExceeded);
            }
            Some(_) => return Err(HubError::AlreadyAnswered(request_id)),
            None => {}
        }
        let digest = match self.answer_fits(&ex, &body, &payload, &attachments, signature) {
            Ok(digest) => digest,
            Err(e) => {
                if !matches!(e, HubError::BadSignature(_)) {
                    return Err(e);
                }
                // A bad signature matters for audit, as at the door.
                drop(ex);
                self.counters.answers_bad_signature += 1;
                return Err(self.audited(caller, &kind, &payload, e));
            }
        };
        let facts = sla::AnswerFacts {
            accepted_ms: ex.time_ms,
            deadline_ms: ex.deadline_ms,
            answered_ms: self.now_ms,
            refusal: match &body {
                AnswerBody::Data => None,
                AnswerBody::Refusal { code, .. } => Some(*code),
            },
        };
        let queue = QueueId::Requests(kind.clone());
        drop(ex);
        self.sla.answered(&kind, &provider, test, facts);
        // Answered before any reader took it: whole again, then out of its queue.
        self.unpark(request_id);
        if let Some(q) = self.queues.get_mut(&queue) {
            q.remove(request_id);
        }
        let answer_id = self.new_id();
        // The hub's receipt is not stored: it is signed when the answer
        // is handed out, in that step's tree (docs/adr/0023).
        let seal = Seal {
            digest,
            signature: signature.cloned(),
            receipt_signature: None,
            attachments,
        };
        let offset = self.emit(Record::Answer(AnswerRecord {
            id: answer_id,
            request_id,
            body,
            time_ms: self.now_ms,
            seal: Some(Box::new(seal)),
            payload,
        }));
        self.defer_answer(offset, request_id);
        self.defer(
            offset,
            Deferred::Out(Output::Reply {
                token,
                result: Ok(ShardReply::Done),
            }),
        );
        Ok(None)
    }

    /// Checks an answer to open exchange `ex` with `body`, `payload` and
    /// `signature`: within the kind's payload size and the log's record
    /// size (`TooLarge`), signed as its kind requires (`BadSignature`),
    /// data in the kind's answer format (`InvalidFormat`), and within the
    /// consumer's answer bound (`QuotaExceeded`). Gives its digest.
    fn answer_fits(
        &self,
        ex: &Exchange,
        body: &AnswerBody,
        payload: &[u8],
        attachments: &[AttachmentRef],
        signature: Option<&gonets_types::SenderSignature>,
    ) -> Result<Digest, HubError> {
        let kind = self.registry.kind(&ex.kind);
        if let Some(kind) = kind {
            check_attachments(attachments, kind)?;
        }
        let payload_len = payload.len();
        let limit = kind.map_or(u64::MAX, |k| u64::from(k.payload_bytes_max));
        if payload_len as u64 > limit {
            return Err(HubError::TooLarge {
                size_bytes: payload_len as u64,
                size_bytes_max: limit,
            });
        }
        let reason = match body {
            AnswerBody::Data => None,
            AnswerBody::Refusal { reason, .. } => Some(reason.as_str()),
        };
        let seal_bytes = crate::record::seal_bytes(&Seal {
            digest: Digest::default(),
            signature: signature.cloned(),
            receipt_signature: None,
            attachments: attachments.to_vec(),
        });
        let record_bytes = record_size::answer_record_bytes(reason, payload_len, seal_bytes);
        self.fits_log(payload_len, record_bytes.expect("reason checked"))?;
        // As for requests: the signature before the format (docs/adr/0019).
        let digest = gonets_trust::answer_digest(&ex.provider, ex.id, body, payload, attachments);
        if let Some(kind) = kind {
            self.check_signature(&ex.provider, kind, signature, &digest)?;
            if let AnswerBody::Data = body {
                // A refusal carries no payload: only data has a format.
                kind.answer_format.check(payload)?;
            }
        }
        if !self.call_waiters.contains_key(&ex.id) {
            // A waiting caller takes its answer itself: it never waits in
            // the answer queue unless the caller is gone.
            self.answer_room(&ex.consumer, payload_len)?;
        }
        Ok(digest)
    }

    /// Refuses a record of `record_bytes` carrying `payload_len` payload
    /// bytes that the log could not take; the error names the largest
    /// payload that would have fitted.
    fn fits_log(&self, payload_len: usize, record_bytes: usize) -> Result<(), HubError> {
        let max = self.config.record_bytes_max;
        if record_bytes <= max {
            return Ok(());
        }
        Err(HubError::TooLarge {
            size_bytes: payload_len as u64,
            size_bytes_max: payload_len.saturating_sub(record_bytes - max) as u64,
        })
    }

    /// The hub ends a request itself (expiry, dead letter).
    fn hub_answer(&mut self, request_id: MessageId, code: RefusalCode, reason: String) {
        if let Some(ex) = self.exchanges.get(&request_id) {
            let tally = self.sla.tally(&ex.kind, &ex.provider, ex.test);
            match code {
                RefusalCode::DeadlineExceeded => tally.expired += 1,
                other => tally.refused[sla::refusal_index(other)] += 1,
            }
        }
        let answer_id = self.new_id();
        let offset = self.emit(Record::Answer(AnswerRecord {
            id: answer_id,
            request_id,
            body: AnswerBody::Refusal { code, reason },
            time_ms: self.now_ms,
            // The hub's own refusal: no sender's digest, no receipt.
            seal: None,
            payload: Bytes::new(),
        }));
        if code == RefusalCode::DeadlineExceeded {
            if let Some(token) = self.call_waiters.remove(&request_id) {
                // The caller's budget is spent: it hears so now, not after a commit.
                self.reply(token, Err(HubError::DeadlineExceeded));
                self.event(request_id, EventKind::AnswerDelivered, 1);
                self.event(request_id, EventKind::AnswerAcked, 0);
                return;
            }
        }
        self.defer_answer(offset, request_id);
    }

    /// Sends a durable answer on: to a waiting caller, else to the consumer's answer queue.
    fn route_answer(&mut self, request_id: MessageId) {
        let ex = self.exchanges.get_mut(&request_id).expect("exchange");
        let o = ex.outcome.as_mut().expect("answered");
        // Routed by the rt journal before the log has it (ADR 0036): the
        // payload and seal stay until the log does, for a redelivery (a
        // caller gone routes it again, to its answer queue).
        let early = !o.durable;
        o.routed |= early;
        let (payload, seal) = if early {
            (o.payload.clone(), o.seal.clone())
        } else {
            (o.payload.take(), o.seal.take())
        };
        let payload = match payload {
            Some(b) => Payload::Bytes(b),
            None => Payload::AtOffset(o.answer_offset),
        };
        let envelope = self.answer_envelope(request_id, payload, seal);
        if let Some(token) = self.call_waiters.remove(&request_id) {
            let delivery = envelope.into_delivery(1);
            self.reply(token, Ok(ShardReply::Answer(delivery)));
            // Acked only once the runtime reports the caller took the reply
            // (`Input::CallReplied`): a caller gone by then must not lose it.
            self.event(request_id, EventKind::AnswerDelivered, 1);
            return;
        }
        let shard = QueueId::Answers(envelope.to.clone()).shard(self.config.shard_count);
        self.out.push(Output::ToShard {
            shard,
            msg: PeerMsg::EnqueueAnswer(envelope),
        });
    }

    /// The answer to `request_id` as it travels, with `payload` and, when
    /// it is in memory, the answer's `seal` (and the receipt it holds).
    fn answer_envelope(
        &self,
        request_id: MessageId,
        payload: Payload,
        seal: Option<Box<Seal>>,
    ) -> AnswerEnvelope {
        let ex = &self.exchanges[&request_id];
        let o = ex.outcome.as_ref().expect("answered");
        let receipt = seal.as_ref().and_then(|seal| {
            let (id, provider, kind) = (o.answer_id, &ex.provider, &ex.kind);
            answer_receipt(
                seal,
                self.hub_key.as_deref(),
                id,
                request_id,
                provider,
                kind,
                o.time_ms,
                o.answer_offset,
            )
        });
        AnswerEnvelope {
            id: o.answer_id,
            request_id,
            kind: ex.kind.clone(),
            from: if o.by_hub() {
                ParticipantId::new("HUB")
            } else {
                ex.provider.clone()
            },
            to: ex.consumer.clone(),
            body: o.body.clone(),
            time_ms: o.time_ms,
            test: ex.test,
            transaction: ex.transaction.clone(),
            deliveries: ex.answer_deliveries,
            payload,
            seal,
            receipt,
        }
    }

    fn status(
        &mut self,
        token: Token,
        caller: &ParticipantId,
        id: MessageId,
    ) -> Result<Option<ShardReply>, HubError> {
        if id.shard() != self.config.shard {
            return Err(HubError::NotFound);
        }
        let operator = self
            .registry
            .participant(caller)
            .is_some_and(|p| p.roles.operator);
        let request_id = self.answer_index.get(&id).copied().unwrap_or(id);
        if self.exchange_view(request_id).is_none() {
            if !self.config.archive_histories {
                return Err(HubError::NotFound);
            }
            // Not in memory: finished and archived, or never seen here.
            self.out.push(Output::StatusFromArchive {
                token,
                id,
                caller: caller.clone(),
                operator,
            });
            return Ok(None);
        }
        let mut view = self.view(request_id);
        if !view.visible_to(caller, operator) {
            // Not visible: the same answer as for an id that does not exist.
            return Err(HubError::NotFound);
        }
        view.notice = self.provider_notice(&view);
        Ok(Some(ShardReply::Status(view)))
    }

    /// The notice a waiting request's `status` carries while its provider
    /// is unreachable (R13): nothing of the request is dropped; it waits.
    fn provider_notice(&self, view: &StatusView) -> Option<ProviderNotice> {
        let after_ms = self.config.provider_unreachable_after_ms;
        if view.answer_id.is_some() || after_ms == 0 {
            return None;
        }
        let queue = QueueId::Requests(view.kind.clone());
        let last_read_ms = self.last_read_ms.get(&queue).copied();
        if last_read_ms.is_some_and(|t| self.now_ms.saturating_sub(t) < after_ms) {
            return None; // read within the bound: reachable
        }
        let watch = self.read_watch(&queue, self.now_ms);
        Some(ProviderNotice {
            provider: view.provider.clone(),
            unreachable_since_ms: watch.unreachable_since_ms?,
            last_read_ms,
            waiting: self.queues.get(&queue).map_or(0, |q| q.len() as u64),
        })
    }

    fn stats(
        &mut self,
        caller: &ParticipantId,
        queue: QueueId,
    ) -> Result<Option<ShardReply>, HubError> {
        let operator = self
            .registry
            .participant(caller)
            .is_some_and(|p| p.roles.operator);
        if !operator {
            self.may_read(caller, &queue)?;
        } else {
            self.owns(&queue)?;
        }
        Ok(Some(ShardReply::Stats(self.queue_stats(&queue))))
    }

    // ---- other inputs ----

    fn committed(&mut self, durable_offset: u64) {
        assert!(durable_offset <= self.next_offset, "commit beyond appends");
        if durable_offset <= self.durable_offset {
            return;
        }
        self.durable_offset = durable_offset;
        // Bounded by the deferred queue's length.
        while self
            .deferred
            .front()
            .is_some_and(|(o, _)| *o < durable_offset)
        {
            let (_, what) = self.deferred.pop_front().unwrap();
            match what {
                Deferred::Out(o) => self.out.push(o),
                Deferred::RequestDurable(id) => {
                    self.counters.accepted += 1;
                    self.committing_done(id);
                    let Some(ex) = self.exchanges.get_mut(&id) else {
                        continue;
                    };
                    self.sla.tally(&ex.kind, &ex.provider, ex.test).requests += 1;
                    ex.durable = true;
                    ex.payload = None;
                    ex.seal = None;
                    if !ex.call {
                        let queue = QueueId::Requests(ex.kind.clone());
                        let n = self.committing.get_mut(&queue).expect("counted when sent");
                        *n -= 1;
                        if *n == 0 {
                            self.committing.remove(&queue);
                        }
                    }
                    let ex = &self.exchanges[&id];
                    if !ex.call && ex.in_request_queue() {
                        self.enqueue_request(id);
                    }
                }
                Deferred::AnswerDurable(id) => {
                    let ex = self.exchanges.get_mut(&id).expect("exchange");
                    let o = ex.outcome.as_mut().expect("answered");
                    o.durable = true;
                    if o.routed {
                        // The rt journal routed it (ADR 0036); the log now
                        // holds its payload.
                        o.payload = None;
                        o.seal = None;
                    } else {
                        self.route_answer(id);
                    }
                }
                Deferred::Finished(id) => self.ask_archive(id),
            }
        }
    }

    /// Every journaled record below `durable_offset` is durable in the rt
    /// journal: calls' answers among them go to their callers now, before
    /// the log has them (ADR 0036). What rests on the log (dropping the
    /// payload, archiving, the provider's reply) still waits for it.
    fn journaled(&mut self, durable_offset: u64) {
        assert!(self.config.rt_journal, "journaled without a journal");
        assert!(
            durable_offset <= self.next_offset,
            "journaled beyond appends"
        );
        // Bounded by the queue's length; an entry is taken once, so a
        // journal end already heard finds nothing to take.
        while self
            .deferred_journal
            .front()
            .is_some_and(|(o, _)| *o < durable_offset)
        {
            let (_, id) = self.deferred_journal.pop_front().unwrap();
            let Some(o) = self.exchanges.get(&id).and_then(|ex| ex.outcome.as_ref()) else {
                continue;
            };
            if !o.durable && !o.routed {
                self.counters.answers_routed_by_journal += 1;
                self.route_answer(id);
            }
        }
    }

    /// Holds routing the answer to `request_id` (its record at `offset`)
    /// until the record is durable in the log, or, for a call with the rt
    /// journal on, in the journal if that comes first.
    fn defer_answer(&mut self, offset: u64, request_id: MessageId) {
        self.defer(offset, Deferred::AnswerDurable(request_id));
        if self.config.rt_journal && self.exchanges.get(&request_id).is_some_and(|ex| ex.call) {
            debug_assert!(self
                .deferred_journal
                .back()
                .is_none_or(|(o, _)| *o < offset));
            self.deferred_journal.push_back((offset, request_id));
        }
    }

    fn storage_failed(&mut self, full: bool) {
        let error = if full {
            HubError::StorageFull
        } else {
            HubError::Unavailable("storage failed; the shard accepts nothing more".into())
        };
        self.failed = Some(error.clone());
        self.deferred_journal.clear();
        // Nothing not yet durable is acknowledged: every waiting reply fails,
        // here or on the answer queue's shard.
        for (_, what) in std::mem::take(&mut self.deferred) {
            match what {
                Deferred::Out(Output::Reply { token, .. }) => self.reply(token, Err(error.clone())),
                Deferred::Out(Output::ToShard {
                    shard,
                    msg: PeerMsg::AnswerAckSettled { token, .. },
                }) => self.settle_answer_ack(AckRoute { shard, token }, Err(error.clone())),
                _ => {}
            }
        }
        // Sorted: the same inputs give the same outputs, in the same order.
        let mut tokens: Vec<Token> = std::mem::take(&mut self.call_waiters)
            .into_values()
            .chain(std::mem::take(&mut self.waits).into_keys())
            .chain(std::mem::take(&mut self.answer_acks))
            .collect();
        tokens.sort_unstable();
        for token in tokens {
            self.reply(token, Err(error.clone()));
        }
        self.waits_by_queue.clear();
        self.subscriptions.clear();
    }

    fn tick(&mut self) {
        self.armed_ms = None;
        self.keys.drop_passed(self.now_ms);
        // The ordered timers and the wheel in due order (an expiry before
        // a lease's end is not delivered again); bounded by what is armed.
        while let Some(source) = self.next_due_source() {
            let now_ms = self.now_ms;
            match source {
                TimerSource::Ordered => {
                    let (_, timer) = self.timers.pop_due(now_ms).expect("due");
                    self.fire(timer);
                }
                TimerSource::Parked => {
                    let (_, id) = self.wheel.pop_due(now_ms).expect("due");
                    self.deadline_passed(id);
                }
                TimerSource::Deadlines => {
                    let (_, id) = self.deadlines.pop_due(now_ms).expect("due");
                    self.deadline_passed(id);
                }
                TimerSource::Leases => {
                    let (_, id) = self.leases.pop_due(now_ms).expect("due");
                    self.lease_due(id);
                }
            }
        }
    }

    /// Which of the shard's timer stores holds the earliest entry due by
    /// now (ties: ordered timers, parked deadlines, whole deadlines,
    /// leases, so an expiry before a lease's end is not delivered again).
    fn next_due_source(&mut self) -> Option<TimerSource> {
        let now_ms = self.now_ms;
        let candidates = [
            (
                self.timers.next_due_ms().filter(|at| *at <= now_ms),
                TimerSource::Ordered,
            ),
            (self.wheel.peek_due(now_ms), TimerSource::Parked),
            (self.deadlines.peek_due(now_ms), TimerSource::Deadlines),
            (self.leases.peek_due(now_ms), TimerSource::Leases),
        ];
        // `min_by_key` keeps the first of equal keys: the tie order above.
        candidates
            .into_iter()
            .filter_map(|(at, source)| at.map(|at| (at, source)))
            .min_by_key(|(at, _)| *at)
            .map(|(_, source)| source)
    }

    /// Whole request `id`'s deadline, watched by the deadline wheel (O(1),
    /// cancelled when it leaves), or past the wheel's bound by an ordered
    /// timer that fires into a check.
    pub(super) fn watch_deadline(&mut self, id: MessageId, deadline_ms: u64) {
        // The wheel's time kept near the shard's (see `watch_own_deadline`).
        self.deadlines.peek_due(self.now_ms);
        if self.deadlines.arm(id, deadline_ms).is_err() {
            self.timers.arm(deadline_ms, Timer::Deadline(id));
        }
    }

    /// The lease of `id` in `queue` ends at `expires_ms` unless acked.
    fn watch_lease(&mut self, queue: &QueueId, id: MessageId, generation: u64, expires_ms: u64) {
        self.leases.peek_due(self.now_ms);
        if self.leases.arm(id, expires_ms).is_err() {
            let queue = queue.clone();
            let lease = Timer::Lease {
                queue,
                id,
                generation,
            };
            self.timers.arm(expires_ms, lease);
        }
    }

    /// A lease wheel entry of `id` came due: the lease it was armed for
    /// (the latest of `id`'s, which replaced any earlier) ends unless it
    /// ended already.
    fn lease_due(&mut self, id: MessageId) {
        let queue = match (self.answers.get(&id), self.exchanges.get(&id)) {
            (Some(entry), _) => QueueId::Answers(entry.envelope.to.clone()),
            (None, Some(ex)) => QueueId::Requests(ex.kind.clone()),
            (None, None) => return,
        };
        let current = self.queues.get(&queue).and_then(|q| q.place(id));
        if matches!(current, Some(Place::Leased(l)) if l.expires_ms <= self.now_ms) {
            self.lease_ended(&queue, id, 0);
        }
    }

    fn fire(&mut self, timer: Timer) {
        match timer {
            Timer::Deadline(id) => self.deadline_passed(id),
            Timer::Lease {
                queue,
                id,
                generation,
            } => {
                let current = self.queues.get(&queue).and_then(|q| q.place(id));
                if matches!(current, Some(Place::Leased(l)) if l.generation == generation) {
                    self.lease_ended(&queue, id, 0);
                }
            }
            Timer::Delay {
                queue,
                id,
                generation,
            } => {
                let current = self.queues.get(&queue).and_then(|q| q.place(id));
                if current == Some(Place::Delayed { generation }) {
                    self.queues.get_mut(&queue).unwrap().make_ready(id);
                    self.pump(&queue);
                }
            }
            Timer::FetchWait(token) => {
                if let Some(w) = self.waits.remove(&token) {
                    self.forget_wait(&w.queue, token);
                    self.reply(token, Ok(ShardReply::Messages(Vec::new())));
                }
            }
            Timer::Evict(id) => {
                if !self.exchanges.get(&id).is_some_and(|ex| ex.finished()) {
                    return;
                }
                if self.config.archive_histories && !self.archived.contains(&id) {
                    // Its history leaves memory only once the archive holds it.
                    self.evict_when_archived.insert(id);
                    return;
                }
                self.evict(id);
            }
            Timer::ParkedHead { queue, at_ms } => self.parked_head_due(&queue, at_ms),
            Timer::CommittingHead { at_ms } => self.committing_head_due(at_ms),
        }
    }

    /// A request's deadline passed: unanswered, it expires (the hub
    /// refuses it `DeadlineExceeded`); answered but not yet durable, a
    /// waiting caller hears `DeadlineExceeded` now.
    fn deadline_passed(&mut self, id: MessageId) {
        // A parked one whose own timer (out of deadline order) fired.
        self.unpark(id);
        let Some(ex) = self.exchanges.get(&id) else {
            return;
        };
        if ex.outcome.is_some() {
            if let Some(token) = self.call_waiters.remove(&id) {
                // Answered, but not durable within the budget: the
                // caller hears `DeadlineExceeded` now; the answer
                // still reaches the consumer's answer queue once durable.
                self.reply(token, Err(HubError::DeadlineExceeded));
            }
            return;
        }
        let queue = QueueId::Requests(ex.kind.clone());
        if let Some(q) = self.queues.get_mut(&queue) {
            q.remove(id);
        }
        self.counters.expired += 1;
        self.hub_answer(
            id,
            RefusalCode::DeadlineExceeded,
            "no answer by the request's deadline (its own expiry or its data kind's)".into(),
        );
    }

    /// Removes a finished exchange from memory (its history is archived, or
    /// kept nowhere when archiving is off).
    fn evict(&mut self, id: MessageId) {
        let ex = self.release(id).expect("present");
        assert!(ex.finished());
        self.deadlines.cancel(id);
        self.leases.cancel(id);
        self.archived.remove(&id);
        self.evict_when_archived.remove(&id);
        if let Some(o) = &ex.outcome {
            self.answer_index.remove(&o.answer_id);
        }
        self.counters.evicted += 1;
    }

    /// The history of a finished exchange, as `status` shows it.
    fn view(&self, request_id: MessageId) -> StatusView {
        let ex = self.exchange_view(request_id).expect("present");
        StatusView {
            request_id,
            answer_id: ex.outcome.as_ref().map(|o| o.answer_id),
            kind: ex.kind.clone(),
            consumer: ex.consumer.clone(),
            provider: ex.provider.clone(),
            deadline_ms: ex.deadline_ms,
            events: ex.history.to_vec(),
            notice: None,
        }
    }

    /// Hands a finished exchange's history to the archive (once at a time).
    fn ask_archive(&mut self, id: MessageId) {
        if !self.config.archive_histories || self.archived.contains(&id) {
            return;
        }
        let Some(ex) = self.exchanges.get(&id) else {
            return;
        };
        assert!(ex.finished(), "only a finished history is final");
        if !self.archiving.insert(id) {
            return;
        }
        self.counters.archive_asked += 1;
        let history = self.view(id);
        self.out.push(Output::Archive { history });
    }

    /// The archive holds `request_id`'s history durably.
    fn archived(&mut self, request_id: MessageId) {
        if !self.archiving.remove(&request_id) {
            return; // not asked for (or asked before a restart)
        }
        self.counters.archived += 1;
        if !self.exchanges.contains_key(&request_id) {
            return;
        }
        self.archived.insert(request_id);
        self.settle(request_id);
        if self.evict_when_archived.contains(&request_id) {
            self.evict(request_id);
        }
    }

    fn disconnected(&mut self, reader: ReaderId) {
        let mut tokens: Vec<Token> = self
            .waits
            .iter()
            .filter(|(_, w)| w.reader == reader)
            .map(|(t, _)| *t)
            .collect();
        tokens.sort_unstable();
        for token in tokens {
            let w = self.waits.remove(&token).expect("listed");
            self.forget_wait(&w.queue, token);
            self.reply(
                token,
                Err(HubError::Unavailable("reader disconnected".into())),
            );
        }
        for subs in self.subscriptions.values_mut() {
            subs.retain(|s| s.reader != reader);
        }
        let mut queues: Vec<QueueId> = self.queues.keys().cloned().collect();
        queues.sort_unstable();
        for queue in queues {
            let mut ids = self.queues[&queue].leased_to(reader);
            ids.sort_unstable();
            for id in ids {
                self.lease_ended(&queue, id, 0);
            }
        }
    }

    /// The runtime could not hand `reader` the delivery of `id` (the caller
    /// stopped waiting, or its payload could not be read): its lease ends
    /// now, as it would at its timeout, without a record. Nothing happens
    /// when the lease is no longer that reader's.
    fn give_back(&mut self, queue: &QueueId, id: MessageId, reader: ReaderId) {
        let place = self.queues.get(queue).and_then(|q| q.place(id));
        if matches!(place, Some(Place::Leased(l)) if l.reader == reader) {
            self.lease_ended(queue, id, 0);
        }
    }

    /// The runtime handed a call its answer (`taken`), or found the caller
    /// gone: then the answer goes to the consumer's answer queue instead.
    fn call_replied(&mut self, request_id: MessageId, taken: bool) {
        let Some(ex) = self.exchanges.get(&request_id) else {
            return;
        };
        // Routed (by the log or, before it, by the rt journal: ADR 0036).
        if ex.answer_acked || !ex.outcome.as_ref().is_some_and(|o| o.durable || o.routed) {
            return;
        }
        if taken {
            self.event(request_id, EventKind::AnswerAcked, 0);
        } else {
            self.route_answer(request_id);
        }
    }

    fn forget_wait(&mut self, queue: &QueueId, token: Token) {
        if let Some(tokens) = self.waits_by_queue.get_mut(queue) {
            tokens.retain(|t| *t != token);
            if tokens.is_empty() {
                self.waits_by_queue.remove(queue);
            }
        }
    }

    fn peer(&mut self, msg: PeerMsg) {
        match msg {
            PeerMsg::EnqueueAnswer(envelope) => {
                if self.answers.contains_key(&envelope.id) {
                    return; // sent again after a restart
                }
                let queue = QueueId::Answers(envelope.to.clone());
                assert_eq!(queue.shard(self.config.shard_count), self.config.shard);
                let id = envelope.id;
                let answered_ms = envelope.time_ms;
                let deliveries = envelope.deliveries;
                self.answers.insert(
                    id,
                    AnswerEntry {
                        envelope,
                        deliveries,
                    },
                );
                self.queues
                    .entry(queue.clone())
                    .or_default()
                    .push(id, answered_ms);
                self.pump(&queue);
            }
            PeerMsg::AnswerDelivered { request_id, count } => {
                if self.failed.is_some() {
                    return;
                }
                let Some(ex) = self.exchanges.get(&request_id) else {
                    return;
                };
                if !ex.answer_acked && count > ex.answer_deliveries {
                    self.event(request_id, EventKind::AnswerDelivered, count);
                }
            }
            PeerMsg::AnswerAcked { request_id, ack } => self.answer_acked(request_id, ack),
            PeerMsg::AnswerAckAgain {
                answer_id,
                consumer,
                ack,
            } => self.answer_ack_again(answer_id, &consumer, ack),
            PeerMsg::AnswerAckSettled { token, result } => {
                if self.answer_acks.remove(&token) {
                    self.reply(token, result.map(|()| ShardReply::Done));
                }
            }
        }
    }

    /// The consumer acked the answer to `request_id`: record it, and settle
    /// the ack once that record is durable.
    fn answer_acked(&mut self, request_id: MessageId, ack: Option<AckRoute>) {
        // An exchange no longer held was finished (its answer acked) before.
        let unacked = self
            .exchanges
            .get(&request_id)
            .is_some_and(|ex| !ex.answer_acked);
        if unacked {
            self.event(request_id, EventKind::AnswerAcked, 0);
        }
        if let Some(ack) = ack {
            self.settle_answer_ack(ack, Ok(()));
        }
    }

    /// A repeated ack of `answer_id` by `consumer`: `Ok` if that consumer's
    /// answer is acked (once durable), else `NotFound`.
    fn answer_ack_again(&mut self, answer_id: MessageId, consumer: &ParticipantId, ack: AckRoute) {
        let acked = self
            .answer_index
            .get(&answer_id)
            .and_then(|r| self.exchanges.get(r))
            .is_some_and(|ex| &ex.consumer == consumer && ex.answer_acked);
        let result = if acked {
            Ok(())
        } else {
            Err(HubError::NotFound)
        };
        self.settle_answer_ack(ack, result);
    }

    /// A peer message reached a failed shard: an ack waiting on it gets
    /// the failure; the rest is dropped (replay after a restart redoes it).
    fn refuse_peer(&mut self, msg: PeerMsg) {
        let error = self.failed.clone().expect("failed");
        let ack = match msg {
            PeerMsg::AnswerAcked { ack, .. } => ack,
            PeerMsg::AnswerAckAgain { ack, .. } => Some(ack),
            // Its waiting acks were answered when the log failed.
            PeerMsg::EnqueueAnswer(_)
            | PeerMsg::AnswerDelivered { .. }
            | PeerMsg::AnswerAckSettled { .. } => None,
        };
        if let Some(ack) = ack {
            self.settle_answer_ack(ack, Err(error));
        }
    }

    fn arm(&mut self) {
        let next = [
            self.timers.next_due_ms(),
            self.wheel.next_due_ms(),
            self.deadlines.next_due_ms(),
            self.leases.next_due_ms(),
        ]
        .into_iter()
        .flatten()
        .min();
        if let Some(next) = next {
            if self.armed_ms.is_none_or(|armed| next < armed) {
                self.armed_ms = Some(next);
                self.out.push(Output::ArmTimer { at_ms: next });
            }
        }
    }
}

/// A payload's length as a record's size field: every payload the log
/// holds is far below 4 GiB (its records are at most 64 MiB).
fn bytes_u32(len: usize) -> u32 {
    u32::try_from(len).unwrap_or(u32::MAX)
}

/// A request's attachments against its kind: how many, none empty,
/// none over the kind's `attachment_bytes_max` (ADR 0022). That the
/// sender uploaded them was checked by its session at the attachment store
/// before the request reached the shard.
fn check_attachments(
    refs: &[AttachmentRef],
    kind: &crate::registry::DataKind,
) -> Result<(), HubError> {
    gonets_types::check_attachment_refs(refs).map_err(HubError::Malformed)?;
    match refs
        .iter()
        .find(|a| a.size_bytes > kind.attachment_bytes_max)
    {
        Some(a) => Err(HubError::TooLarge {
            size_bytes: a.size_bytes,
            size_bytes_max: kind.attachment_bytes_max,
        }),
        None => Ok(()),
    }
}

/// A text field over [`crate::record::TEXT_BYTES_MAX`], named as on the wire.
fn text_too_large(field: &str, size_bytes: usize) -> HubError {
    HubError::TextTooLarge {
        field: field.to_string(),
        size_bytes: size_bytes as u64,
        size_bytes_max: crate::record::TEXT_BYTES_MAX as u64,
    }
}
