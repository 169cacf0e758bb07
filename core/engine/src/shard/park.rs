//! Parked requests (ADR 0010). A durable async request that no reader has
//! taken yet is held by its queue as a 40-byte [`Parked`] entry, not as an
//! [`Exchange`]: everything else about it is in its log record, or follows
//! from it (its kind is the queue's, its time its id's, its history one
//! `Accepted` step). It becomes a full exchange again when a reader takes
//! it, a record or an operation names it, or its deadline passes; nothing a
//! participant sees changes, only what waiting costs.
//!
//! Deadlines: parked entries are in log order, and without an expiry of
//! their own a kind's requests expire in the order they came, so one timer
//! per queue, at the head's deadline, serves them all (`Timer::ParkedHead`).
//! An entry whose deadline is earlier than one parked before it (its own
//! expiry, `NewRequest::expires_in_ms`, or a registry change that shortened
//! the kind's deadline) would wait behind that one: the shard's timer wheel
//! (`wheel.rs`, ADR 0012) watches it instead, and forgets it when it leaves
//! the parked requests.

use super::parked_list::Pos;
use super::queue::{Parked, Queue};
use super::{snapshot, Exchange, Shard, Timer};
use crate::record::EventKind;
use gonets_types::ids::{DataKindId, MessageId, ParticipantId, QueueId};
use std::borrow::Cow;
use std::collections::HashMap;

/// The consumers and providers that parked entries name, numbered once.
/// Bounded by the participants the registry ever held.
#[derive(Debug, Default)]
pub(super) struct Names {
    list: Vec<ParticipantId>,
    index: HashMap<ParticipantId, u32>,
}

impl Names {
    /// The number of `name`, given one if new.
    pub(super) fn number(&mut self, name: &ParticipantId) -> u32 {
        if let Some(n) = self.index.get(name) {
            return *n;
        }
        let n = u32::try_from(self.list.len()).expect("names fit u32");
        self.list.push(name.clone());
        self.index.insert(name.clone(), n);
        n
    }

    /// The name numbered `n`.
    pub(super) fn name(&self, n: u32) -> &ParticipantId {
        &self.list[n as usize]
    }
}

/// A parked request's texts, kept beside its entry only when it has any
/// (its idempotency key is in the key window, as a print).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct ParkedTexts {
    pub(super) transaction: Option<String>,
}

impl Shard {
    /// True when `ex` is a durable async request nobody has taken, answered
    /// or acked: all a parked entry can say about it.
    pub(super) fn parkable(ex: &Exchange) -> bool {
        !ex.call
            && ex.durable
            && ex.payload.is_none()
            && ex.deliveries == 0
            && !ex.acked
            && ex.outcome.is_none()
            && ex.answer_deliveries == 0
            && !ex.answer_acked
            && ex.history.len() == 1
            && ex.time_ms == ex.id.unix_ms()
    }

    /// Puts request `id`'s exchange into its queue at its place: parked
    /// when it can be, else as a member ordered by its record's offset.
    pub(super) fn enqueue_at_place(&mut self, id: MessageId) {
        let ex = &self.exchanges[&id];
        let queue = QueueId::Requests(ex.kind.clone());
        if Self::parkable(ex) {
            let ex = self.release(id).expect("present");
            match self.parked_entry(&ex) {
                Some(entry) => return self.park_exchange(queue, ex, entry),
                // Its names or size do not fit an entry: it stays whole.
                None => self.hold(ex),
            };
        }
        let ex = &self.exchanges[&id];
        let (offset, time_ms, deadline_ms) = (ex.request_offset, ex.time_ms, ex.deadline_ms);
        // A call's deadline timer was armed when it came; replay's
        // end arms those of the exchanges it rebuilt.
        let own_timer = !ex.call && !self.replaying;
        self.queues
            .entry(queue)
            .or_default()
            .push_at(id, offset, time_ms);
        if own_timer {
            self.watch_deadline(id, deadline_ms);
        }
    }

    /// The parked entry of parkable exchange `ex`, when its names and its
    /// payload's size fit one (in practice always: 2^18 participants,
    /// 64 MiB).
    fn parked_entry(&mut self, ex: &Exchange) -> Option<Parked> {
        let names = (
            self.names.number(&ex.consumer),
            self.names.number(&ex.provider),
        );
        Parked::fits(names, ex.payload_bytes).then(|| {
            Parked::new(
                ex.id,
                ex.request_offset,
                ex.deadline_ms,
                names,
                ex.test,
                ex.keyed,
            )
            .with_payload_bytes(ex.payload_bytes)
        })
    }

    /// Parks exchange `ex` (taken out of the exchanges) as `entry`.
    fn park_exchange(&mut self, queue: QueueId, ex: Exchange, entry: Parked) {
        // Its queue's head timer or the parked wheel watches it from here.
        self.deadlines.cancel(ex.id);
        if let Some(transaction) = ex.transaction {
            let texts = ParkedTexts {
                transaction: Some(transaction),
            };
            self.parked_texts.insert(ex.id, texts);
        }
        self.park_entry(queue, entry);
    }

    /// Adds `entry` at the tail of `queue`'s parked requests and sees that
    /// its deadline is watched.
    pub(super) fn park_entry(&mut self, queue: QueueId, entry: Parked) {
        let q = self.queues.entry(queue.clone()).or_default();
        if q.parked().is_empty() {
            q.parked_deadline_max_ms = 0;
        }
        // Not only the tail's: an earlier deadline may sit between (ADR 0012).
        let in_order = entry.deadline_ms >= q.parked_deadline_max_ms;
        let at_tail = q.park(entry);
        if at_tail {
            q.parked_deadline_max_ms = q.parked_deadline_max_ms.max(entry.deadline_ms);
        }
        if in_order && at_tail {
            // Watched by the head timer (it may have come from the wheel
            // while it committed).
            self.wheel.cancel(entry.id());
        } else {
            self.watch_own_deadline(entry.id(), entry.deadline_ms);
        }
        self.arm_parked_head(&queue);
    }

    /// Request `id`'s deadline is out of its queue's order: the wheel
    /// watches it (O(1), removed when it leaves), or past the wheel's
    /// bound an ordered timer that fires into a check.
    pub(super) fn watch_own_deadline(&mut self, id: MessageId, deadline_ms: u64) {
        // The wheel's time kept near the shard's: its next wake-up is then
        // never a bound years in the past.
        self.wheel.peek_due(self.now_ms);
        if self.wheel.arm(id, deadline_ms).is_err() {
            self.timers.arm(deadline_ms, Timer::Deadline(id));
        }
    }

    /// Arms `queue`'s head timer at its first parked entry's deadline,
    /// unless one at or before it is armed.
    pub(super) fn arm_parked_head(&mut self, queue: &QueueId) {
        let Some(q) = self.queues.get_mut(queue) else {
            return;
        };
        let Some(due_ms) = q.parked().front().map(|p| p.deadline_ms) else {
            return;
        };
        if q.head_timer_ms.is_some_and(|armed| armed <= due_ms) {
            return;
        }
        q.head_timer_ms = Some(due_ms);
        self.timers.arm(
            due_ms,
            Timer::ParkedHead {
                queue: queue.clone(),
                at_ms: due_ms,
            },
        );
    }

    /// `queue`'s head timer armed for `at_ms` fired: every parked request
    /// at the head whose deadline has passed expires.
    pub(super) fn parked_head_due(&mut self, queue: &QueueId, at_ms: u64) {
        let Some(q) = self.queues.get_mut(queue) else {
            return;
        };
        if q.head_timer_ms != Some(at_ms) {
            return; // a later arming replaced it
        }
        q.head_timer_ms = None;
        // Bounded by the parked entries.
        while let Some(id) = self.queues[queue]
            .parked()
            .front()
            .filter(|p| p.deadline_ms <= self.now_ms)
            .map(Parked::id)
        {
            self.unpark(id);
            self.deadline_passed(id);
        }
        self.arm_parked_head(queue);
    }

    /// The request queue holding `id` parked, and its position there.
    fn parked_place(&self, id: MessageId) -> Option<(&QueueId, Pos)> {
        self.request_queue_place(|queue| queue.parked_position(id))
    }

    /// The first request queue where `find` finds a position, and it.
    pub(super) fn request_queue_place(
        &self,
        find: impl Fn(&Queue) -> Option<Pos>,
    ) -> Option<(&QueueId, Pos)> {
        // Few queues per shard; a binary search in each.
        self.queues
            .iter()
            .filter(|(q, _)| matches!(q, QueueId::Requests(_)))
            .find_map(|(q, queue)| find(queue).map(|i| (q, i)))
    }

    /// Makes parked request `id` a full exchange again; false when it is
    /// not parked. Live, it stays in its queue as a ready member at its
    /// place (nothing a reader sees changes) with its own deadline timer;
    /// in replay, queues are rebuilt from the exchanges once it ends.
    pub(super) fn unpark(&mut self, id: MessageId) -> bool {
        if self.exchanges.contains_key(&id) {
            return false;
        }
        let Some((queue, position)) = self.parked_place(id).map(|(q, i)| (q.clone(), i)) else {
            // Or acked and awaiting its answer.
            return self.unawait(id);
        };
        self.unpark_at(queue, position);
        true
    }

    /// Makes the first parked request of `queue` a full exchange again (a
    /// reader takes it); its id.
    pub(super) fn unpark_front(&mut self, queue: &QueueId) -> MessageId {
        let position = self.queues[queue].parked().front_pos().expect("parked");
        self.unpark_at(queue.clone(), position)
    }

    fn unpark_at(&mut self, queue: QueueId, position: Pos) -> MessageId {
        let entry = self
            .queues
            .get_mut(&queue)
            .expect("found there")
            .unpark_at(position);
        let id = entry.id();
        // Whole again: its own timer (below, or replay's end) watches it.
        self.wheel.cancel(id);
        let QueueId::Requests(kind) = &queue else {
            unreachable!("parked only in request queues")
        };
        let texts = self.parked_texts.remove(&id).unwrap_or_default();
        let ex = self.parked_exchange(kind, &entry, texts);
        let (offset, time_ms, deadline_ms) = (ex.request_offset, ex.time_ms, ex.deadline_ms);
        let previous = self.hold(ex);
        assert!(previous.is_none(), "parked and whole at once");
        if !self.replaying {
            let q = self.queues.get_mut(&queue).expect("found there");
            q.push_at(id, offset, time_ms);
            self.watch_deadline(id, deadline_ms);
        }
        id
    }

    /// The exchange a parked entry of kind `kind` stands for.
    pub(super) fn parked_exchange(
        &self,
        kind: &DataKindId,
        p: &Parked,
        texts: ParkedTexts,
    ) -> Exchange {
        parked_record_exchange(kind, self.parked_record_with(p, texts.transaction))
    }

    /// Exchange `id`, whole or made from its parked entry (read-only).
    pub(super) fn exchange_view(&self, id: MessageId) -> Option<Cow<'_, Exchange>> {
        if let Some(ex) = self.exchanges.get(&id) {
            return Some(Cow::Borrowed(ex));
        }
        let Some((queue, i)) = self.parked_place(id) else {
            return self.awaiting_view(id).map(Cow::Owned);
        };
        let QueueId::Requests(kind) = queue else {
            unreachable!("parked only in request queues")
        };
        let p = self.queues[queue].parked().get(i);
        let texts = self.parked_texts.get(&id).cloned().unwrap_or_default();
        Some(Cow::Owned(self.parked_exchange(kind, p, texts)))
    }

    /// Every parked request as the exchange it stands for (read-only).
    pub(super) fn parked_exchanges(&self) -> impl Iterator<Item = Exchange> + '_ {
        self.queues.iter().flat_map(move |(queue, q)| {
            let kind = match queue {
                QueueId::Requests(kind) => Some(kind),
                QueueId::Answers(_) => None,
            };
            q.parked().iter().filter_map(move |p| {
                let texts = self.parked_texts.get(&p.id()).cloned().unwrap_or_default();
                kind.map(|k| self.parked_exchange(k, p, texts))
            })
        })
    }

    /// The lowest offset a parked request needs (its record), if any.
    pub(super) fn parked_floor(&self) -> Option<u64> {
        self.queues
            .values()
            .filter_map(|q| q.parked().front().map(|p| p.offset))
            .min()
    }

    /// After replay, once every request is parked again (those put back
    /// between others included): each queue's parked requests get their
    /// head timer, and those out of deadline order a wheel entry; the
    /// others leave the wheel. One pass over the parked requests.
    pub(super) fn watch_parked_deadlines(&mut self) {
        let mut queues: Vec<QueueId> = self.queues.keys().cloned().collect();
        queues.sort_unstable();
        self.wheel.peek_due(self.now_ms);
        for queue in queues {
            let mut latest_ms = 0;
            // Disjoint fields: the queue is read while the timers change.
            for p in self.queues[&queue].parked().iter() {
                let id = p.id();
                if p.deadline_ms >= latest_ms {
                    self.wheel.cancel(id);
                } else if self.wheel.arm(id, p.deadline_ms).is_err() {
                    self.timers.arm(p.deadline_ms, Timer::Deadline(id));
                }
                latest_ms = latest_ms.max(p.deadline_ms);
            }
            self.queues
                .get_mut(&queue)
                .expect("listed")
                .parked_deadline_max_ms = latest_ms;
            self.arm_parked_head(&queue);
        }
    }
}

impl Shard {
    /// A parked entry as a snapshot carries it (the tests' way to check a
    /// run against [`snapshot::encode_parked_run`]).
    #[cfg(test)]
    pub(super) fn parked_record(&self, p: &Parked) -> snapshot::ParkedRecord {
        let texts = self.parked_texts.get(&p.id());
        self.parked_record_with(p, texts.and_then(|t| t.transaction.clone()))
    }

    /// A parked entry as a snapshot's run carries it, borrowed (`acked`:
    /// when an awaiting one was delivered and acked).
    pub(super) fn run_entry(
        &self,
        p: &Parked,
        acked: Option<(u64, u64)>,
    ) -> snapshot::RunEntry<'_> {
        let texts = self.parked_texts.get(&p.id());
        snapshot::RunEntry {
            id: p.id(),
            offset: p.offset,
            deadline_ms: p.deadline_ms,
            names: (p.consumer(), p.provider()),
            test: p.test(),
            keyed: p.keyed(),
            payload_bytes: p.payload_bytes(),
            transaction: texts.and_then(|t| t.transaction.as_deref()),
            acked,
        }
    }

    /// A parked entry with its transaction code as a snapshot carries it.
    fn parked_record_with(
        &self,
        p: &Parked,
        transaction: Option<String>,
    ) -> snapshot::ParkedRecord {
        snapshot::ParkedRecord {
            id: p.id(),
            offset: p.offset,
            deadline_ms: p.deadline_ms,
            consumer: self.names.name(p.consumer()).clone(),
            provider: self.names.name(p.provider()).clone(),
            test: p.test(),
            transaction,
            keyed: p.keyed(),
            acked: None,
            payload_bytes: p.payload_bytes(),
        }
    }

    /// Replay of a snapshot's run of parked requests: back into their
    /// queue as they were (deadlines are watched once replay ends), their
    /// payloads counted against its byte quota.
    pub(super) fn restore_parked(&mut self, run: snapshot::ParkedRun) {
        let queue = QueueId::Requests(run.kind.clone());
        for e in run.entries {
            let time_ms = e.id.unix_ms();
            self.replayed_ms = self.replayed_ms.max(time_ms);
            self.id_sequence = self.id_sequence.max(e.id.0 as u64 & 0xffff_ffff);
            let names = (
                self.names.number(&e.consumer),
                self.names.number(&e.provider),
            );
            let acked = e.acked;
            if !Parked::fits(names, e.payload_bytes) {
                // Whole, as before parking (or holding for its answer):
                // replay's end queues it.
                let mut ex = parked_record_exchange(&run.kind, e);
                match acked {
                    Some((delivered_ms, acked_ms)) => {
                        (ex.deliveries, ex.acked) = (1, true);
                        ex.record(EventKind::Delivered, delivered_ms, 1);
                        ex.record(EventKind::Acked, acked_ms, 0);
                    }
                    None => self.count_waiting(&queue, ex.payload_bytes, true),
                }
                self.hold(ex);
                continue;
            }
            let entry = Parked::new(e.id, e.offset, e.deadline_ms, names, e.test, e.keyed)
                .with_payload_bytes(e.payload_bytes);
            if let Some(transaction) = e.transaction {
                let texts = ParkedTexts {
                    transaction: Some(transaction),
                };
                self.parked_texts.insert(e.id, texts);
            }
            if let Some(times) = acked {
                // Acked: no longer counted against the queue's quota.
                self.restore_awaiting(&run.kind, entry, times);
                continue;
            }
            self.count_waiting(&queue, e.payload_bytes, true);
            self.queues.entry(queue.clone()).or_default().park(entry);
        }
    }
}

/// The exchange a snapshot's parked entry of kind `kind` stands for.
fn parked_record_exchange(kind: &DataKindId, e: snapshot::ParkedRecord) -> Exchange {
    let time_ms = e.id.unix_ms();
    let mut ex = Exchange {
        id: e.id,
        kind: kind.clone(),
        consumer: e.consumer,
        provider: e.provider,
        time_ms,
        deadline_ms: e.deadline_ms,
        test: e.test,
        call: false,
        transaction: e.transaction,
        keyed: e.keyed,
        request_offset: e.offset,
        durable: true,
        payload: None,
        seal: None,
        payload_bytes: e.payload_bytes,
        deliveries: 0,
        acked: false,
        outcome: None,
        answer_deliveries: 0,
        answer_acked: false,
        // Taken at once (delivered), then acked or answered: room for the
        // usual steps, so the history is not regrown on the next one.
        history: Vec::with_capacity(4),
    };
    ex.record(EventKind::Accepted, time_ms, 0);
    ex
}

impl Shard {
    /// An async request is committing: its deadline is watched in
    /// acceptance order until it is durable and parked (or expires first,
    /// when the log is slower than its kind's deadline).
    pub(super) fn watch_committing(&mut self, id: MessageId, deadline_ms: u64) {
        if self.committing_deadlines.is_empty() {
            self.committing_deadline_max_ms = 0;
        }
        if deadline_ms < self.committing_deadline_max_ms {
            // Its own expiry, earlier than one committing before it.
            self.watch_own_deadline(id, deadline_ms);
            return;
        }
        self.committing_deadline_max_ms = deadline_ms;
        self.committing_deadlines.push_back((deadline_ms, id));
        self.arm_committing_head();
    }

    /// Request `id` is durable: its queue watches its deadline from now on.
    pub(super) fn committing_done(&mut self, id: MessageId) {
        if self
            .committing_deadlines
            .front()
            .is_some_and(|(_, f)| *f == id)
        {
            self.committing_deadlines.pop_front();
        }
    }

    fn arm_committing_head(&mut self) {
        let Some(&(due_ms, _)) = self.committing_deadlines.front() else {
            return;
        };
        if self.committing_head_ms.is_some_and(|armed| armed <= due_ms) {
            return;
        }
        self.committing_head_ms = Some(due_ms);
        self.timers
            .arm(due_ms, Timer::CommittingHead { at_ms: due_ms });
    }

    /// The committing head timer armed for `at_ms` fired: requests still
    /// committing past their deadline expire.
    pub(super) fn committing_head_due(&mut self, at_ms: u64) {
        if self.committing_head_ms != Some(at_ms) {
            return; // a later arming replaced it
        }
        self.committing_head_ms = None;
        // Bounded by the requests committing.
        while let Some(&(due_ms, id)) = self.committing_deadlines.front() {
            if due_ms > self.now_ms {
                break;
            }
            self.committing_deadlines.pop_front();
            self.deadline_passed(id);
        }
        self.arm_committing_head();
    }
}
