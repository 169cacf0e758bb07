//! The batched hot path's rules: `send_requests` (many requests of one data
//! kind in one operation), `ack_many` and `nack_many` (many acks or nacks
//! in one operation and one log record). Each message goes through the single-message steps of
//! `mod.rs`; what is batched is the reply (one, once every record of the
//! batch is durable) and, for acks, the record.

use super::{
    EventKind, EventRecord, HubError, MessageId, NewRequest, ParticipantId, Place, QueueId,
    ReaderId, Record, Shard, ShardReply, Signing, Token,
};
use crate::record::{EVENTS_HEADER_BYTES, EVENT_BYTES};
use gonets_types::trust::BatchReceiptEntry;
use gonets_types::{check_batch_len, check_send_batch, Accepted, Digest, SenderSignature};

impl Shard {
    /// `send_requests`: a batch refused as a whole (empty, too long, mixed
    /// kinds, a batch signature that does not hold) stores nothing;
    /// otherwise each request is checked and stored on its own (a refused
    /// one gets its error in its slot, the others go on), and the one reply
    /// comes once every record appended so far (the batch's, and any
    /// original a duplicate repeats) is durable. A batch `signature` is
    /// over the batch digest of its requests' digests, checked once here
    /// (docs/adr/0019); the hub's receipt, when it has a key, is one for
    /// the batch, signed once.
    pub(super) fn send_requests(
        &mut self,
        token: Token,
        caller: &ParticipantId,
        requests: Vec<NewRequest>,
        signature: Option<&SenderSignature>,
    ) -> Result<Option<ShardReply>, HubError> {
        check_send_batch(&requests)?;
        // Hashing is cheap next to the rest of the door (BLAKE3 of each
        // payload); the batch's digest needs every one of them.
        let digests: Vec<Digest> = requests
            .iter()
            .map(|r| gonets_trust::request_digest(caller, r))
            .collect();
        if let Some(s) = signature {
            let batch = gonets_trust::batch_digest(&digests);
            if let Err(e) = self.check_by_keys(caller, s, &batch) {
                self.counters.requests_bad_signature += requests.len() as u64;
                // One audit record for the batch (its payloads are many;
                // the record names the kind and the reason).
                let kind = requests[0].kind.clone();
                return Err(self.audited(caller, &kind, &[], e));
            }
        }
        let kind = requests[0].kind.clone();
        let signed = signature.is_some();
        let mut entries = Vec::new();
        let mut results: Vec<_> = requests
            .into_iter()
            .zip(digests)
            .map(|(r, digest)| {
                let signing = Signing::InBatch { digest, signed };
                let (accepted, offset) = self.batch_request(caller, r, signing)?;
                if let Some(offset) = offset {
                    entries.push(BatchReceiptEntry {
                        message_id: accepted.id,
                        digest,
                        offset,
                    });
                }
                Ok(accepted)
            })
            .collect();
        self.batch_receipt(caller, &kind, &mut results, entries);
        self.reply_after_appended(token, Ok(ShardReply::AcceptedMany(results)));
        Ok(None)
    }

    /// One request of a batch, as `send_request` takes it (no `call`): its
    /// acceptance, to be confirmed with the batch's, and its record's
    /// offset (`None` for a repeat), or why it is refused.
    fn batch_request(
        &mut self,
        caller: &ParticipantId,
        r: NewRequest,
        signing: Signing<'_>,
    ) -> Result<(Accepted, Option<u64>), HubError> {
        let terms = self.door(caller, &r, false, signing)?;
        if let Some(original) = self.repeat_of(caller, &r) {
            // An earlier send (maybe earlier in this very batch): its
            // acceptance, durable no later than the batch's reply.
            let accepted = Accepted {
                id: original,
                time_ms: self
                    .exchange_view(original)
                    .map_or(original.unix_ms(), |ex| ex.time_ms),
                duplicate: true,
                receipt: None,
            };
            return Ok((accepted, None));
        }
        let queue = terms.queue.clone();
        let (id, offset) = self.store_request(caller, r, false, terms)?;
        self.committing_request(queue, id, offset);
        let accepted = Accepted {
            id,
            time_ms: self.now_ms,
            duplicate: false,
            receipt: None,
        };
        Ok((accepted, Some(offset)))
    }

    /// `ack_many` of a requests queue: every lease of `reader` among `ids`
    /// ends, and their acks are ONE record (`Record::Events`, which replay
    /// applies as that many single acks; split only where the log's record
    /// bound is smaller than the batch); `Done`-like reply (no refused
    /// ids) once it is durable. An id acked before (or twice in the batch)
    /// is fine, as a repeated `ack` is; one not leased to `reader` or
    /// unknown is refused in the reply, and the others go on.
    /// Appends `events` as one record, or as few as the log's record bound
    /// allows (a single event always fits: it is what a lone `ack` writes);
    /// a lone event as the single-event record. With the rt journal on,
    /// calls' events and the others go in records of their own, in their
    /// order (each run of one sort a record): a journaled record must name
    /// calls' exchanges only, or a crash's fold would bring back another
    /// exchange's event without the records before it that the log lost
    /// (docs/adr/0036).
    pub(super) fn emit_events(&mut self, events: Vec<EventRecord>) {
        if !self.config.rt_journal {
            return self.emit_event_records(events);
        }
        let call = |e: &EventRecord| self.exchanges.get(&e.request_id).is_some_and(|ex| ex.call);
        let runs: Vec<Vec<EventRecord>> = events
            .chunk_by(|a, b| call(a) == call(b))
            .map(<[EventRecord]>::to_vec)
            .collect();
        // Bounded by the batch's events.
        for run in runs {
            self.emit_event_records(run);
        }
    }

    fn emit_event_records(&mut self, mut events: Vec<EventRecord>) {
        if events.is_empty() {
            return;
        }
        if events.len() == 1 {
            let event = events.pop().expect("one");
            self.emit(Record::Event(event));
            return;
        }
        let per_record = (self
            .config
            .record_bytes_max
            .saturating_sub(EVENTS_HEADER_BYTES)
            / EVENT_BYTES)
            .max(1);
        for chunk in events.chunks(per_record) {
            self.emit(Record::Events(chunk.to_vec()));
        }
    }

    pub(super) fn ack_many(
        &mut self,
        token: Token,
        caller: &ParticipantId,
        queue: QueueId,
        ids: Vec<MessageId>,
        reader: ReaderId,
    ) -> Result<Option<ShardReply>, HubError> {
        check_batch_len(ids.len())?;
        self.may_read(caller, &queue)?;
        if matches!(queue, QueueId::Answers(_)) {
            // An answer's ack is recorded by its request's shard, one
            // round trip each (ADR 0003): not batched yet.
            return Err(HubError::Malformed(format!(
                "ack_many takes a requests queue; ack the answers of {queue} one by one"
            )));
        }
        let mut events: Vec<EventRecord> = Vec::with_capacity(ids.len());
        let mut refused = Vec::new();
        for id in ids {
            match self.batch_ack(&queue, id, reader, &events) {
                Ok(true) => events.push(EventRecord {
                    request_id: id,
                    kind: EventKind::Acked,
                    time_ms: self.now_ms,
                    count: 0,
                }),
                Ok(false) => {}
                Err(e) => refused.push((id, e)),
            }
        }
        self.emit_events(events);
        // Repeats rest on records appended earlier: the last one covers all.
        self.reply_after_appended(token, Ok(ShardReply::AckedMany(refused)));
        Ok(None)
    }

    /// One ack of a batch: true when it ends a lease of `reader` (taken out
    /// of the queue here; its event goes into the batch's record), false
    /// for a repeat (acked or answered before, or earlier in `pending`).
    fn batch_ack(
        &mut self,
        queue: &QueueId,
        id: MessageId,
        reader: ReaderId,
        pending: &[EventRecord],
    ) -> Result<bool, HubError> {
        let place = self.queues.get(queue).and_then(|q| q.place(id));
        match place {
            Some(Place::Leased(l)) if l.reader == reader => {
                self.queues.get_mut(queue).expect("placed").remove(id);
                self.leases.cancel(id);
                Ok(true)
            }
            Some(_) => Err(HubError::NotFound), // not leased to this reader (any more)
            None => {
                let settled = self.exchange_view(id).is_some_and(|ex| {
                    QueueId::Requests(ex.kind.clone()) == *queue && !ex.in_request_queue()
                });
                // Linear, but only for ids no longer queued (repeats).
                if settled || pending.iter().any(|e| e.request_id == id) {
                    Ok(false)
                } else {
                    Err(HubError::NotFound)
                }
            }
        }
    }

    /// `nack_many`: every lease of `reader` among `ids` ends and the
    /// message is delivered again after `delay_ms` (or dead-lettered once
    /// out of deliveries), as that many `nack`s would; for a requests
    /// queue their nacked events are ONE record (`Record::Events`) written
    /// before any dead letter they cause, and the reply comes once that is
    /// durable. An answer queue records nothing (its state is volatile):
    /// the reply comes at once. An id not leased to `reader` (unknown,
    /// acked, or earlier in the batch) is refused in the reply; the others
    /// go on.
    pub(super) fn nack_many(
        &mut self,
        token: Token,
        caller: &ParticipantId,
        queue: QueueId,
        ids: Vec<MessageId>,
        reader: ReaderId,
        delay_ms: u64,
    ) -> Result<Option<ShardReply>, HubError> {
        check_batch_len(ids.len())?;
        self.may_read(caller, &queue)?;
        let mut nacked: Vec<MessageId> = Vec::with_capacity(ids.len());
        let mut refused = Vec::new();
        for id in ids {
            let place = self.queues.get(&queue).and_then(|q| q.place(id));
            let leased = matches!(place, Some(Place::Leased(l)) if l.reader == reader);
            // Linear in the batch (at most `BATCH_MESSAGES_MAX`).
            if leased && !nacked.contains(&id) {
                nacked.push(id);
            } else {
                refused.push((id, HubError::NotFound));
            }
        }
        let requests = matches!(queue, QueueId::Requests(_));
        if requests && !nacked.is_empty() {
            let events = nacked
                .iter()
                .map(|id| EventRecord {
                    request_id: *id,
                    kind: EventKind::Nacked,
                    time_ms: self.now_ms,
                    count: 0,
                })
                .collect();
            self.emit_events(events);
        }
        // Every lease ends before any is handed out again: a waiting reader
        // then gets the oldest of them first (FIFO holds across the batch).
        let mut ready = false;
        for id in nacked {
            ready |= self.end_lease(&queue, id, delay_ms);
        }
        if ready {
            self.pump(&queue);
        }
        if !requests {
            return Ok(Some(ShardReply::AckedMany(refused)));
        }
        // The nacks' record (and the dead letters it caused) first become durable.
        self.reply_after_appended(token, Ok(ShardReply::AckedMany(refused)));
        Ok(None)
    }
}
