//! Requests acked by their provider and not yet answered (ADR 0011). An
//! async request delivered once and acked waits for its answer, often until
//! its deadline; as a full [`Exchange`] it cost some 400 bytes and was
//! written whole into every snapshot, so a bulk run that acked millions
//! made memory and snapshots grow with them. Such a request is held by its
//! queue as a 56-byte [`Awaiting`] entry instead (a parked entry plus the
//! times of its delivery and its ack), written to snapshots in runs that a
//! later snapshot refers to while unchanged. It becomes a full exchange
//! again when a record or an operation names it (its answer, `status`, a
//! repeat, its deadline); nothing a participant sees changes.
//!
//! Only the plain shape is held so: history exactly `Accepted`, `Delivered`
//! (the first delivery), `Acked`, durable, no payload in memory, not a
//! call. Anything else stays a full exchange, so the entry always gives
//! back exactly the exchange it stood for.
//!
//! Deadlines: the deadline timer armed when a reader took the request stays
//! armed (timers are not cancelled) and finds the entry when it fires;
//! after a restart each restored entry gets its timer back.

use super::park::ParkedTexts;
use super::parked_list::Pos;
use super::queue::{Awaiting, Parked};
use super::{Exchange, Shard, Timer};
use crate::record::EventKind;
use gonets_types::history::HistoryEvent;
use gonets_types::ids::{DataKindId, MessageId, QueueId};

impl Shard {
    /// True when `ex` is an async request acked after its first delivery
    /// and not answered: all an [`Awaiting`] entry can say about it.
    pub(super) fn awaitable(ex: &Exchange) -> bool {
        let [accepted, delivered, acked] = ex.history.as_slice() else {
            return false;
        };
        !ex.call
            && ex.durable
            && ex.payload.is_none()
            && ex.deliveries == 1
            && ex.acked
            && ex.outcome.is_none()
            && ex.answer_deliveries == 0
            && !ex.answer_acked
            && ex.time_ms == ex.id.unix_ms()
            && *accepted
                == HistoryEvent {
                    kind: EventKind::Accepted,
                    time_ms: ex.time_ms,
                    count: 0,
                }
            && delivered.kind == EventKind::Delivered
            && delivered.count == 1
            && acked.kind == EventKind::Acked
            && acked.count == 0
    }

    /// After an ack (live or in replay): request `id` leaves memory for an
    /// awaiting entry in its queue, when its shape allows.
    pub(super) fn hold_for_answer(&mut self, id: MessageId) {
        let Some(ex) = self.exchanges.get(&id) else {
            return;
        };
        if !Self::awaitable(ex) || self.call_waiters.contains_key(&id) {
            return;
        }
        let names = (
            self.names.number(&ex.consumer),
            self.names.number(&ex.provider),
        );
        if !Parked::fits(names, ex.payload_bytes) {
            return; // stays whole, as one too large to park
        }
        let ex = self.release(id).expect("present");
        let parked = Parked::new(
            id,
            ex.request_offset,
            ex.deadline_ms,
            names,
            ex.test,
            ex.keyed,
        )
        .with_payload_bytes(ex.payload_bytes);
        let entry = Awaiting {
            parked,
            delivered_ms: ex.history[1].time_ms,
            acked_ms: ex.history[2].time_ms,
        };
        if let Some(transaction) = ex.transaction {
            let texts = ParkedTexts {
                transaction: Some(transaction),
            };
            self.parked_texts.insert(id, texts);
        }
        self.queues
            .entry(QueueId::Requests(ex.kind))
            .or_default()
            .hold_awaiting(entry);
    }

    /// The request queue holding `id` as awaiting, and its position there.
    fn awaiting_place(&self, id: MessageId) -> Option<(&QueueId, Pos)> {
        self.request_queue_place(|queue| queue.awaiting_position(id))
    }

    /// Makes awaiting request `id` a full exchange again; false when it is
    /// not awaiting.
    pub(super) fn unawait(&mut self, id: MessageId) -> bool {
        let Some((queue, position)) = self.awaiting_place(id).map(|(q, i)| (q.clone(), i)) else {
            return false;
        };
        let entry = self
            .queues
            .get_mut(&queue)
            .expect("found there")
            .take_awaiting_at(position);
        let QueueId::Requests(kind) = &queue else {
            unreachable!("awaiting only in request queues")
        };
        let texts = self.parked_texts.remove(&id).unwrap_or_default();
        let ex = self.awaiting_exchange(kind, &entry, texts);
        let previous = self.hold(ex);
        assert!(previous.is_none(), "awaiting and whole at once");
        true
    }

    /// The exchange an awaiting entry of kind `kind` stands for.
    fn awaiting_exchange(&self, kind: &DataKindId, a: &Awaiting, texts: ParkedTexts) -> Exchange {
        let mut ex = self.parked_exchange(kind, &a.parked, texts);
        ex.deliveries = 1;
        ex.acked = true;
        ex.history.reserve_exact(2);
        ex.record(EventKind::Delivered, a.delivered_ms, 1);
        ex.record(EventKind::Acked, a.acked_ms, 0);
        debug_assert!(Self::awaitable(&ex));
        ex
    }

    /// The exchange awaiting request `id` stands for, if it is awaiting.
    pub(super) fn awaiting_view(&self, id: MessageId) -> Option<Exchange> {
        let (queue, i) = self.awaiting_place(id)?;
        let QueueId::Requests(kind) = queue else {
            unreachable!("awaiting only in request queues")
        };
        let a = self.queues[queue].awaiting().get(i);
        let texts = self.parked_texts.get(&id).cloned().unwrap_or_default();
        Some(self.awaiting_exchange(kind, a, texts))
    }

    /// Every awaiting request as the exchange it stands for (read-only).
    pub(super) fn awaiting_exchanges(&self) -> impl Iterator<Item = Exchange> + '_ {
        self.queues.iter().flat_map(move |(queue, q)| {
            let kind = match queue {
                QueueId::Requests(kind) => Some(kind),
                QueueId::Answers(_) => None,
            };
            q.awaiting().iter().filter_map(move |a| {
                let texts = self.parked_texts.get(&a.parked.id()).cloned();
                kind.map(|k| self.awaiting_exchange(k, a, texts.unwrap_or_default()))
            })
        })
    }

    /// Requests awaiting their answer on this shard.
    pub fn awaiting_count(&self) -> usize {
        self.queues.values().map(|q| q.awaiting().len()).sum()
    }

    /// The lowest offset an awaiting request needs (its record), if any.
    pub(super) fn awaiting_floor(&self) -> Option<u64> {
        self.queues
            .values()
            .filter_map(|q| q.awaiting().front().map(|a| a.parked.offset))
            .min()
    }

    /// After replay: each awaiting request gets its deadline timer back,
    /// in id order (timers due at the same time fire in the order armed).
    pub(super) fn watch_awaiting_deadlines(&mut self) {
        let mut due: Vec<(MessageId, u64)> = self
            .queues
            .values()
            .flat_map(|q| q.awaiting().iter())
            .map(|a| (a.parked.id(), a.parked.deadline_ms))
            .collect();
        due.sort_unstable();
        for (id, at_ms) in due {
            self.timers.arm(at_ms, Timer::Deadline(id));
        }
    }

    /// Replay of a snapshot's awaiting entry, back into its queue.
    pub(super) fn restore_awaiting(
        &mut self,
        kind: &DataKindId,
        parked: Parked,
        times: (u64, u64),
    ) {
        let (delivered_ms, acked_ms) = times;
        let entry = Awaiting {
            parked,
            delivered_ms,
            acked_ms,
        };
        self.replayed_ms = self.replayed_ms.max(acked_ms);
        self.queues
            .entry(QueueId::Requests(kind.clone()))
            .or_default()
            .hold_awaiting(entry);
    }
}
