//! The reference model of one shard: what its durable state must be (a plain
//! fold over the log's records, written independently of `Shard::apply`) and
//! where each message must stand in its queue (predicted by the simulator
//! from the rules in docs/engine.md, not read from the shard).

use crate::workload::{Expect, Slot};
use bytes::Bytes;
use gonets_engine::record::{AnswerBody, EventKind, Record};
use gonets_engine::shard::exchange::Exchange;
use gonets_engine::shard::queue::{Place, QueueStats};
use gonets_engine::shard::snapshot::clock_of;
use gonets_engine::shard::Command;
use gonets_engine::shard::{
    AnswerEnvelope, HistoryEvent, ReaderId, Shard, ShardCounters, StatusView,
};
use gonets_types::error::HubError;
use gonets_types::ids::{DataKindId, MessageId, ParticipantId, QueueId};
use gonets_types::refusal::RefusalCode;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Where a message stands in its queue, as the model predicts it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MPlace {
    /// Waiting to be handed out.
    Ready,
    /// Its delivery was counted in this step; the delivery itself follows.
    Handing,
    /// Leased to a reader until `expires_ms`.
    Leased { reader: ReaderId, expires_ms: u64 },
    /// Given back with a delay.
    Delayed { until_ms: u64 },
}

/// How a request ended, as the log says.
#[derive(Clone, Debug)]
pub struct MOutcome {
    pub answer_id: MessageId,
    pub body: AnswerBody,
    pub time_ms: u64,
    pub offset: u64,
    pub payload: Bytes,
    /// Sent on since the last boot: to the waiting caller, or to the shard
    /// of the consumer's answer queue.
    pub routed: bool,
}

/// One request and its life, as the model keeps it.
#[derive(Clone, Debug)]
pub struct MReq {
    pub id: MessageId,
    pub kind: DataKindId,
    pub consumer: ParticipantId,
    pub provider: ParticipantId,
    pub call: bool,
    pub test: bool,
    pub transaction: Option<String>,
    pub key: Option<String>,
    pub time_ms: u64,
    pub deadline_ms: u64,
    pub payload: Bytes,
    pub offset: u64,
    /// The shard has seen the request record durable (it counted and, for
    /// a plain send, queued it).
    pub released: bool,
    /// A call made in this boot: its caller waits for the answer (the
    /// shard's waiting callers are volatile), so the consumer's answer
    /// bound does not apply to it (ADR 0013).
    pub waiter: bool,
    pub deliveries: u32,
    pub acked: bool,
    pub outcome: Option<MOutcome>,
    pub answer_deliveries: u32,
    pub answer_acked: bool,
    pub history: Vec<HistoryEvent>,
    /// Place in its request queue; `None` when not in it.
    pub place: Option<MPlace>,
    /// Its turn in the queue (FIFO by first enqueue; kept when redelivered).
    pub order: u64,
    /// Offset of the record that finished it (its answer's ack).
    pub finished_at: Option<u64>,
    /// The shard holds it in memory (else its history is the archive's).
    pub in_memory: bool,
    /// Handed to the archive in this boot (`Output::Archive`), not yet
    /// reported durable there.
    pub asked: bool,
    /// Reported durable in the archive in this boot (`Input::Archived`).
    pub archived: bool,
    /// Its eviction fell due before the archive held it: it leaves memory
    /// once the archive reports it durable.
    pub evict_waiting: bool,
}

impl MReq {
    /// Still waiting for its answer.
    pub fn open(&self) -> bool {
        self.outcome.is_none()
    }

    /// Answered and the answer acked: its history is final.
    pub fn finished(&self) -> bool {
        self.outcome.is_some() && self.answer_acked
    }

    /// When it may leave memory (`finished_keep_ms` after it finished, not
    /// before its idempotency window ends); `None` while not finished.
    pub fn evict_due(&self, keep_ms: u64, dedup_window_ms: u64) -> Option<u64> {
        if !self.finished() {
            return None;
        }
        let finished_ms = self.history.last().expect("accepted").time_ms;
        let mut at = finished_ms + keep_ms;
        if self.key.is_some() {
            at = at.max(self.time_ms + dedup_window_ms);
        }
        Some(at)
    }

    /// Its history as `status` shows it, from the log.
    pub fn view(&self) -> StatusView {
        StatusView {
            request_id: self.id,
            answer_id: self.outcome.as_ref().map(|o| o.answer_id),
            kind: self.kind.clone(),
            consumer: self.consumer.clone(),
            provider: self.provider.clone(),
            deadline_ms: self.deadline_ms,
            notice: None,
            events: self.history.clone(),
        }
    }
}

/// An answer in a consumer's answer queue held by this shard (volatile).
#[derive(Clone, Debug)]
pub struct MAnswer {
    pub envelope: AnswerEnvelope,
    pub place: MPlace,
    pub deliveries: u32,
    /// Its turn in the queue.
    pub order: u64,
}

/// The model of one shard.
#[derive(Debug, Default)]
pub struct ShardModel {
    /// Exchanges owned by this shard, by request id.
    pub reqs: BTreeMap<MessageId, MReq>,
    /// Answer id to request id.
    pub answer_ids: HashMap<MessageId, MessageId>,
    /// Answers queued here, by answer id.
    pub answers: BTreeMap<MessageId, MAnswer>,
    /// Idempotency keys: (consumer, kind, key) to the request that used it last.
    pub dedup: HashMap<(ParticipantId, DataKindId, String), MessageId>,
    /// Exclusive end of the durable prefix the shard was told about.
    pub durable: u64,
    /// Every journaled record (a call's) below this offset is durable in
    /// the rt journal, as the shard was told (ADR 0036); 0 without one.
    pub journaled: u64,
    /// Set once the shard was told its storage failed.
    pub failed: Option<HubError>,
    /// What the shard's counters must read.
    pub counters: ShardCounters,
    /// The next turn handed out in a queue.
    pub next_order: u64,
    /// The latest hub time in the durable log (after a rebuild).
    pub latest_ms: u64,
    /// The shard's rate bound on audit records (volatile, as the shard's).
    pub audit: MAudit,
}

/// Audit records a shard writes one by one in a second of hub time
/// (`AUDIT_RECORDS_PER_SECOND_MAX` of `shard/audit.rs`, not exported).
const AUDIT_RECORDS_PER_SECOND_MAX: u32 = 64;

/// The model of a shard's audit rate bound (`shard/audit.rs`, ADR 0020):
/// which audited refusals leave a record, and when a summary of the
/// suppressed ones is owed.
#[derive(Clone, Debug, Default)]
pub struct MAudit {
    /// Start of the current one-second window, hub ms.
    window_start_ms: u64,
    /// Records written in it.
    written: u32,
    /// Refusals past the bound not yet summarised.
    suppressed: bool,
}

impl MAudit {
    /// Counts one audited refusal at `now_ms`: the records it appends (a
    /// summary of the last window's suppressed refusals, then its own).
    pub fn admit(&mut self, now_ms: u64) -> usize {
        let mut appended = 0;
        if now_ms >= self.window_start_ms.saturating_add(1_000) {
            self.window_start_ms = now_ms;
            self.written = 0;
            appended += usize::from(std::mem::take(&mut self.suppressed));
        }
        if self.written < AUDIT_RECORDS_PER_SECOND_MAX {
            self.written += 1;
            appended += 1;
        } else {
            self.suppressed = true;
        }
        appended
    }
}

/// The refusals `command` must get as `expect` says (one, or the slots
/// of a batch) that the shard audits (ADR 0020).
pub fn audited(command: &Command, expect: &Expect) -> usize {
    match (command, expect) {
        // Refused whole before the door: its shape (not audited), or its
        // one signature (one audit record for the batch).
        (Command::SendRequests(_), Expect::Fail(e)) => {
            usize::from(matches!(e, HubError::BadSignature(_)))
        }
        (_, Expect::Fail(e)) => usize::from(audits(command, e)),
        (_, Expect::SendMany { slots, .. }) => slots
            .iter()
            .filter(|s| matches!(s, Slot::Fail(e) if audits(command, e)))
            .count(),
        _ => 0,
    }
}

/// The shard audits refusal `e` of `command`: a state secret, a bad
/// signature or a caller not authorised at the request door; a caller that
/// is not the provider, or a bad signature, on the answer path.
pub fn audits(command: &Command, e: &HubError) -> bool {
    match command {
        Command::SendRequest(_) | Command::Call(_) | Command::SendRequests(_) => matches!(
            e,
            HubError::StateSecret | HubError::BadSignature(_) | HubError::NotAuthorized(_)
        ),
        Command::SendResponse { .. } | Command::SendRefusal { .. } => {
            matches!(e, HubError::NotAuthorized(_) | HubError::BadSignature(_))
        }
        _ => false,
    }
}

/// The history step an answer body stands for (the rule of docs/engine.md §3).
pub fn terminal_kind(body: &AnswerBody) -> EventKind {
    match body {
        AnswerBody::Data => EventKind::Answered,
        AnswerBody::Refusal {
            code: RefusalCode::DeadlineExceeded,
            ..
        } => EventKind::Expired,
        AnswerBody::Refusal {
            code: RefusalCode::Undeliverable,
            ..
        } => EventKind::DeadLettered,
        AnswerBody::Refusal { .. } => EventKind::Refused,
    }
}

fn is_terminal(kind: EventKind) -> bool {
    matches!(
        kind,
        EventKind::Answered | EventKind::Refused | EventKind::Expired | EventKind::DeadLettered
    )
}

impl ShardModel {
    /// True when a record of a call's exchange at `offset` is durable: in
    /// the log, or in the rt journal, whichever came first (ADR 0036).
    pub fn call_durable(&self, offset: u64) -> bool {
        offset < self.durable || offset < self.journaled
    }

    /// Payload bytes of the requests of `kind` its queue holds (open, not
    /// acked; committing ones included): what its byte quota counts.
    pub fn waiting_bytes(&self, kind: &DataKindId) -> u64 {
        self.reqs
            .values()
            .filter(|r| &r.kind == kind && r.open() && !r.acked)
            .map(|r| r.payload.len() as u64)
            .sum()
    }

    /// The answers this shard made for `consumer` that it has not acked:
    /// their count and payload bytes (ADR 0013).
    pub fn answers_outstanding(&self, consumer: &ParticipantId) -> (u64, u64) {
        self.reqs
            .values()
            .filter(|r| &r.consumer == consumer && !r.answer_acked)
            .filter_map(|r| r.outcome.as_ref())
            .fold((0, 0), |(n, b), o| (n + 1, b + o.payload.len() as u64))
    }

    /// Folds one record into the durable state. `live`: appended now (not
    /// read back after a restart). Queue places are the caller's business.
    pub fn apply(&mut self, offset: u64, record: &Record, live: bool) -> Result<(), String> {
        match record {
            Record::Request(r) => {
                if self.reqs.contains_key(&r.id) {
                    return Err(format!("request id {} used twice", r.id));
                }
                if let Some(key) = &r.idempotency_key {
                    self.dedup
                        .insert((r.consumer.clone(), r.kind.clone(), key.clone()), r.id);
                }
                self.reqs.insert(
                    r.id,
                    MReq {
                        id: r.id,
                        kind: r.kind.clone(),
                        consumer: r.consumer.clone(),
                        provider: r.provider.clone(),
                        call: r.call,
                        test: r.test,
                        transaction: r.transaction.clone(),
                        key: r.idempotency_key.clone(),
                        time_ms: r.time_ms,
                        deadline_ms: r.deadline_ms,
                        payload: r.payload.clone(),
                        offset,
                        released: !live,
                        waiter: r.call && live,
                        deliveries: 0,
                        acked: false,
                        outcome: None,
                        answer_deliveries: 0,
                        answer_acked: false,
                        history: vec![HistoryEvent {
                            kind: EventKind::Accepted,
                            time_ms: r.time_ms,
                            count: 0,
                        }],
                        place: None,
                        order: 0,
                        finished_at: None,
                        in_memory: true,
                        asked: false,
                        archived: false,
                        evict_waiting: false,
                    },
                );
            }
            Record::Answer(a) => {
                let req = self.reqs.get_mut(&a.request_id).ok_or_else(|| {
                    format!("answer {} to unknown request {}", a.id, a.request_id)
                })?;
                if let Some(o) = &req.outcome {
                    return Err(format!(
                        "request {} ends twice: answer {} after {}",
                        a.request_id, a.id, o.answer_id
                    ));
                }
                req.history.push(HistoryEvent {
                    kind: terminal_kind(&a.body),
                    time_ms: a.time_ms,
                    count: 0,
                });
                req.outcome = Some(MOutcome {
                    answer_id: a.id,
                    body: a.body.clone(),
                    time_ms: a.time_ms,
                    offset,
                    payload: a.payload.clone(),
                    routed: false,
                });
                req.place = None;
                if live {
                    match terminal_kind(&a.body) {
                        EventKind::Expired => self.counters.expired += 1,
                        EventKind::DeadLettered => self.counters.dead_lettered += 1,
                        _ => {}
                    }
                }
                self.answer_ids.insert(a.id, a.request_id);
            }
            Record::Event(e) => {
                let req = self
                    .reqs
                    .get_mut(&e.request_id)
                    .ok_or_else(|| format!("event {:?} for unknown request", e.kind))?;
                match e.kind {
                    EventKind::Delivered => {
                        if live && e.count > 1 {
                            self.counters.redeliveries += 1;
                        }
                        req.deliveries = req.deliveries.max(e.count)
                    }
                    EventKind::Acked => {
                        req.acked = true;
                        req.place = None;
                    }
                    EventKind::Nacked => {}
                    EventKind::AnswerDelivered => {
                        req.answer_deliveries = req.answer_deliveries.max(e.count)
                    }
                    EventKind::AnswerAcked => {
                        req.answer_acked = true;
                        if req.outcome.is_some() {
                            req.finished_at = Some(offset);
                        }
                    }
                    other => return Err(format!("{other:?} written as an event record")),
                }
                req.history.push(HistoryEvent {
                    kind: e.kind,
                    time_ms: e.time_ms,
                    count: e.count,
                });
            }
            // A batch of events folds as that many event records.
            Record::Events(es) => {
                for e in es {
                    self.apply(offset, &Record::Event(e.clone()), live)?;
                }
            }
            Record::SnapshotPart(_)
            | Record::SnapshotEnd { .. }
            | Record::Anchor(_)
            | Record::Audit(_)
            | Record::Lost => {}
        }
        Ok(())
    }

    /// The model after a restart: the durable prefix folded from offset 0
    /// (whatever snapshot the shard replays from), every open request that
    /// the provider did not ack queued again, every lease gone; in memory
    /// only the exchanges in `in_memory` (what the replay restored).
    pub fn rebuild(
        durable_log: &[Record],
        in_memory: &BTreeSet<MessageId>,
    ) -> Result<ShardModel, String> {
        let mut m = ShardModel::default();
        for (offset, record) in durable_log.iter().enumerate() {
            m.apply(offset as u64, record, false)
                .map_err(|e| format!("rebuilding the model at offset {offset}: {e}"))?;
            let time_ms = match record {
                Record::Request(r) => r.time_ms,
                Record::Answer(a) => a.time_ms,
                Record::Event(e) => e.time_ms,
                Record::Events(es) => es.iter().map(|e| e.time_ms).max().unwrap_or(0),
                // A snapshot's clock part holds the shard's time then.
                Record::SnapshotPart(b) => clock_of(b).unwrap_or(0),
                Record::SnapshotEnd { .. }
                | Record::Anchor(_)
                | Record::Audit(_)
                | Record::Lost => 0,
            };
            m.latest_ms = m.latest_ms.max(time_ms);
        }
        // Queued again in log order.
        let mut queued: Vec<(u64, MessageId)> = m
            .reqs
            .values()
            .filter(|r| r.open() && !r.acked)
            .map(|r| (r.offset, r.id))
            .collect();
        queued.sort_unstable();
        for (_, id) in queued {
            m.enqueue(id);
        }
        for req in m.reqs.values_mut() {
            req.in_memory = in_memory.contains(&req.id);
            // Only answers not yet acked are sent on again after a restart.
            if let Some(o) = &mut req.outcome {
                o.routed = req.answer_acked;
            }
        }
        m.durable = durable_log.len() as u64;
        if let Some(id) = in_memory.iter().find(|id| !m.reqs.contains_key(id)) {
            return Err(format!("replay restored {id}, which the log lacks"));
        }
        Ok(m)
    }

    /// The shard lets `id` go from memory (its history is the archive's).
    pub fn evict(&mut self, id: MessageId) {
        let r = self.reqs.get_mut(&id).expect("known");
        assert!(r.in_memory && r.finished() && r.archived);
        r.in_memory = false;
        r.evict_waiting = false;
        self.counters.evicted += 1;
    }

    /// The archive reported `id` durable (`Input::Archived`).
    pub fn archived(&mut self, id: MessageId) {
        let Some(r) = self.reqs.get_mut(&id).filter(|r| r.asked) else {
            return; // not asked in this boot: the shard ignores it
        };
        r.asked = false;
        self.counters.archived += 1;
        if !r.in_memory {
            return;
        }
        r.archived = true;
        if r.evict_waiting {
            self.evict(id);
        }
    }

    /// The eviction timers due at `now_ms` fire (`keep_ms`: the shard's
    /// `finished_keep_ms`).
    pub fn evictions_due(&mut self, now_ms: u64, keep_ms: u64, dedup_window_ms: u64) {
        let due: Vec<MessageId> = self
            .reqs
            .values()
            .filter(|r| r.in_memory && !r.evict_waiting)
            .filter(|r| {
                r.evict_due(keep_ms, dedup_window_ms)
                    .is_some_and(|at| at <= now_ms)
            })
            .map(|r| r.id)
            .collect();
        for id in due {
            if self.reqs[&id].archived {
                self.evict(id);
            } else {
                self.reqs.get_mut(&id).unwrap().evict_waiting = true;
            }
        }
    }

    /// Puts a request into its queue at its place: a queue hands out its
    /// ready requests in log order (ADR 0010), whenever each joined it.
    pub fn enqueue(&mut self, id: MessageId) {
        let r = self.reqs.get_mut(&id).expect("request");
        r.place = Some(MPlace::Ready);
        r.order = r.offset;
    }

    /// The turn of the first message of `queue` that was ready before this
    /// step (those in `released` came back during it: how they interleave
    /// with the deliveries of the step depends on its inner order).
    pub fn first_ready(&self, queue: &QueueId, released: &BTreeSet<MessageId>) -> Option<u64> {
        match queue {
            QueueId::Requests(kind) => self
                .reqs
                .values()
                .filter(|r| &r.kind == kind && r.place == Some(MPlace::Ready))
                .filter(|r| !released.contains(&r.id))
                .map(|r| r.order)
                .min(),
            QueueId::Answers(to) => self
                .answers
                .iter()
                .filter(|(_, a)| &a.envelope.to == to && a.place == MPlace::Ready)
                .filter(|(id, _)| !released.contains(id))
                .map(|(_, a)| a.order)
                .min(),
        }
    }

    /// Messages of `queue` held here, with their places.
    pub fn places<'a>(
        &'a self,
        queue: &'a QueueId,
    ) -> Box<dyn Iterator<Item = (MessageId, MPlace)> + 'a> {
        match queue {
            QueueId::Requests(kind) => Box::new(
                self.reqs
                    .values()
                    .filter(move |r| &r.kind == kind)
                    .filter_map(|r| r.place.map(|p| (r.id, p))),
            ),
            QueueId::Answers(to) => Box::new(
                self.answers
                    .iter()
                    .filter(move |(_, a)| &a.envelope.to == to)
                    .map(|(id, a)| (*id, a.place)),
            ),
        }
    }

    /// The model's place of `id` in `queue`.
    pub fn place(&self, queue: &QueueId, id: MessageId) -> Option<MPlace> {
        match queue {
            QueueId::Requests(kind) => self
                .reqs
                .get(&id)
                .filter(|r| &r.kind == kind)
                .and_then(|r| r.place),
            QueueId::Answers(to) => self
                .answers
                .get(&id)
                .filter(|a| &a.envelope.to == to)
                .map(|a| a.place),
        }
    }

    /// Every queue's counts, as `queue_stats` must report them at `now_ms`:
    /// depth, in flight, age of the oldest message (from its acceptance, or
    /// for an answer from the answer).
    pub fn queue_stats(&self, now_ms: u64) -> BTreeMap<QueueId, QueueStats> {
        let mut stats: BTreeMap<QueueId, QueueStats> = BTreeMap::new();
        let members = self
            .reqs
            .values()
            .filter_map(|r| {
                r.place
                    .map(|p| (QueueId::Requests(r.kind.clone()), p, r.time_ms))
            })
            .chain(self.answers.values().map(|a| {
                (
                    QueueId::Answers(a.envelope.to.clone()),
                    a.place,
                    a.envelope.time_ms,
                )
            }));
        for (q, p, time_ms) in members {
            let e = stats.entry(q).or_default();
            e.depth += 1;
            if matches!(p, MPlace::Leased { .. } | MPlace::Handing) {
                e.in_flight += 1;
            }
            e.oldest_age_ms = e.oldest_age_ms.max(now_ms.saturating_sub(time_ms));
        }
        stats
    }

    /// Compares the shard with the model: everything when `deep` is `None`,
    /// else what may have changed (the exchanges in `deep`, those in a queue
    /// or still open, every queue's counts, the counters).
    pub fn compare(
        &self,
        shard: &Shard,
        queues: &[QueueId],
        deep: Option<&BTreeSet<MessageId>>,
    ) -> Result<(), String> {
        let count = shard.exchanges().count();
        let held = self.reqs.values().filter(|r| r.in_memory).count();
        if count != held {
            let ids: BTreeSet<MessageId> = shard.exchanges().map(|e| e.id).collect();
            let extra: Vec<_> = ids
                .iter()
                .filter(|i| !self.reqs.get(i).is_some_and(|r| r.in_memory))
                .collect();
            let missing: Vec<_> = self
                .reqs
                .values()
                .filter(|r| r.in_memory && !ids.contains(&r.id))
                .map(|r| r.id)
                .collect();
            return Err(format!(
                "shard {} holds {count} exchanges, the model {held} (extra {extra:?}, missing {missing:?})",
                shard.id(),
            ));
        }
        for r in self.reqs.values() {
            if !r.in_memory {
                // Left memory: the archive holds its history (checked by the world).
                continue;
            }
            let touched = deep.is_none_or(|d| d.contains(&r.id));
            if !touched && r.place.is_none() && !r.open() {
                // Ended, out of its queue, and no record touched it: nothing
                // may change it. The periodic deep sweep still looks.
                continue;
            }
            let ex = shard
                .exchange(r.id)
                .ok_or_else(|| format!("exchange {} missing on shard {}", r.id, shard.id()))?;
            compare_exchange(r, &ex)?;
            // A request the model has out of its queue but the shard has in
            // it shows in the queue's depth, compared below; one ready in
            // both and untouched is left to the deep sweep.
            if r.place.is_some() && (touched || r.place != Some(MPlace::Ready)) {
                let place = shard.queue_place(&QueueId::Requests(r.kind.clone()), r.id);
                if !same_place(r.place, place) {
                    return Err(format!(
                        "request {} stands {place:?} in its queue, the model says {:?}",
                        r.id, r.place
                    ));
                }
            }
            if touched {
                if ex.history != r.history {
                    return Err(format!(
                        "history of {} is {:?}, the log says {:?}",
                        r.id, ex.history, r.history
                    ));
                }
                check_history(&ex)?;
            }
        }
        let queued = shard.queued_answers().count();
        if queued != self.answers.len() {
            return Err(format!(
                "shard {} queues {queued} answers, the model {}",
                shard.id(),
                self.answers.len()
            ));
        }
        for (id, a) in &self.answers {
            let place = shard.queue_place(&QueueId::Answers(a.envelope.to.clone()), *id);
            if !same_place(Some(a.place), place) {
                return Err(format!(
                    "answer {id} stands {place:?} in its queue, the model says {:?}",
                    a.place
                ));
            }
        }
        let stats = self.queue_stats(shard.now_ms());
        for q in queues {
            let got = shard.queue_stats(q);
            let want = stats.get(q).copied().unwrap_or_default();
            if got != want {
                return Err(format!("queue {q}: {got:?}, the model says {want:?}"));
            }
        }
        // Receipts signed are the judge's to check, one by one
        // (`check_receipts`); the model does not count them.
        let got = &gonets_engine::shard::ShardCounters {
            receipts_signed: 0,
            receipt_signatures: 0,
            ..shard.counters().clone()
        };
        if got != &self.counters {
            return Err(format!(
                "counters {:?}, the model says {:?}",
                shard.counters(),
                self.counters
            ));
        }
        let c = shard.counters();
        if c.receipt_signatures > c.receipts_signed {
            return Err(format!("more receipt signatures than receipts: {c:?}"));
        }
        Ok(())
    }
}

fn same_place(model: Option<MPlace>, shard: Option<Place>) -> bool {
    match (model, shard) {
        (None, None) => true,
        (Some(MPlace::Ready), Some(Place::Ready)) => true,
        (Some(MPlace::Leased { reader, expires_ms }), Some(Place::Leased(l))) => {
            l.reader == reader && l.expires_ms == expires_ms
        }
        (Some(MPlace::Delayed { .. }), Some(Place::Delayed { .. })) => true,
        _ => false,
    }
}

fn compare_exchange(r: &MReq, ex: &Exchange) -> Result<(), String> {
    let fields = [
        ("kind", ex.kind == r.kind),
        ("consumer", ex.consumer == r.consumer),
        ("provider", ex.provider == r.provider),
        ("time", ex.time_ms == r.time_ms),
        ("deadline", ex.deadline_ms == r.deadline_ms),
        ("call", ex.call == r.call),
        ("test", ex.test == r.test),
        ("transaction", ex.transaction == r.transaction),
        ("idempotency key", ex.keyed == r.key.is_some()),
        ("request offset", ex.request_offset == r.offset),
        ("durable", ex.durable == r.released),
        ("deliveries", ex.deliveries == r.deliveries),
        ("acked", ex.acked == r.acked),
        (
            "answer deliveries",
            ex.answer_deliveries == r.answer_deliveries,
        ),
        ("answer acked", ex.answer_acked == r.answer_acked),
        ("history length", ex.history.len() == r.history.len()),
    ];
    if let Some((name, _)) = fields.iter().find(|(_, same)| !same) {
        return Err(format!(
            "exchange {}: {name} differs from the model\n  shard: {ex:?}\n  model: {r:?}",
            r.id
        ));
    }
    match (&ex.outcome, &r.outcome) {
        (None, None) => Ok(()),
        (Some(a), Some(b))
            if a.answer_id == b.answer_id
                && a.body == b.body
                && a.time_ms == b.time_ms
                && a.answer_offset == b.offset =>
        {
            Ok(())
        }
        (a, b) => Err(format!(
            "exchange {}: outcome {a:?}, the model says {b:?}",
            r.id
        )),
    }
}

/// Invariant 5: a history tells the same story as the exchange's state.
pub fn check_history(ex: &Exchange) -> Result<(), String> {
    let h = &ex.history;
    let bad = |why: &str| Err(format!("history of {} {why}: {h:?}", ex.id));
    let Some(first) = h.first() else {
        return bad("is empty");
    };
    if first.kind != EventKind::Accepted || first.time_ms != ex.time_ms {
        return bad("does not start with its acceptance");
    }
    let mut last_time = 0;
    let mut terminal: Option<(EventKind, u64)> = None;
    let mut delivered = 0u32;
    let mut acked = false;
    let mut answer_delivered = 0u32;
    let mut answer_acked = false;
    for (i, e) in h.iter().enumerate() {
        if e.time_ms < last_time {
            return bad("goes back in time");
        }
        last_time = e.time_ms;
        if answer_acked {
            return bad("goes on after the answer was acked");
        }
        match e.kind {
            EventKind::Accepted if i > 0 => return bad("has a second acceptance"),
            EventKind::Accepted => {}
            k if is_terminal(k) => {
                if terminal.is_some() {
                    return bad("ends twice");
                }
                terminal = Some((k, e.time_ms));
            }
            EventKind::Delivered | EventKind::Acked | EventKind::Nacked if terminal.is_some() => {
                return bad("has a delivery step after its end")
            }
            EventKind::Delivered => {
                if e.count <= delivered {
                    return bad("counts deliveries backwards");
                }
                delivered = e.count;
            }
            EventKind::Acked => {
                if acked || delivered == 0 {
                    return bad("has an ack without a delivery, or two acks");
                }
                acked = true;
            }
            EventKind::Nacked => {
                if delivered == 0 {
                    return bad("has a nack without a delivery");
                }
            }
            EventKind::AnswerDelivered => {
                if terminal.is_none() || e.count <= answer_delivered {
                    return bad("delivers an answer before the end, or counts backwards");
                }
                answer_delivered = e.count;
            }
            EventKind::AnswerAcked => {
                if answer_delivered == 0 {
                    return bad("acks an answer never delivered");
                }
                answer_acked = true;
            }
            _ => unreachable!(),
        }
    }
    match (&ex.outcome, terminal) {
        (None, None) => {}
        (Some(o), Some((k, t))) if terminal_kind(&o.body) == k && o.time_ms == t => {}
        _ => return bad("disagrees with the outcome"),
    }
    if ex.deliveries != delivered
        || ex.acked != acked
        || ex.answer_deliveries != answer_delivered
        || ex.answer_acked != answer_acked
    {
        return bad("disagrees with the delivery counters");
    }
    Ok(())
}
