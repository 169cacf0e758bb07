//! Judging one step of one shard: what its input lets and makes it do,
//! worked out from the model before the step, and each output checked
//! against that as it comes (records, replies, deliveries, peer messages).

use crate::model::{audited, terminal_kind, MAnswer, MPlace, ShardModel};
use crate::workload::{Expect, Pending, Seen, Slot};

fn same_result(a: &Result<(), HubError>, b: &Result<(), HubError>) -> bool {
    match (a, b) {
        (Ok(()), Ok(())) => true,
        (Err(x), Err(y)) => std::mem::discriminant(x) == std::mem::discriminant(y),
        _ => false,
    }
}
use crate::world::{ensure, Check, CtxInput, StepCtx, World, GRANULARITY_MS};
use bytes::Bytes;
use gonets_engine::record::{AnswerBody, Digest, EventKind, EventRecord, Record, Seal};
use gonets_engine::shard::{
    AckRoute, Command, Delivery, DeliveryBody, Output, Payload, PeerMsg, ReaderId, ShardReply,
    StatusView, Token,
};
use gonets_engine::trust_record::AuditRecord;
use gonets_types::error::HubError;
use gonets_types::ids::{MessageId, ParticipantId, QueueId};
use gonets_types::Receipt;
use std::collections::BTreeSet;

impl World {
    /// The model's side of the input, before the shard sees it: what the
    /// input itself changes and what the step must then do.
    pub fn before(&mut self, ctx: &mut StepCtx) -> Check {
        let si = ctx.shard as usize;
        let now = ctx.now;
        let deliveries_max = self.config.deliveries_max;
        let m = &mut self.models[si];
        if m.failed.is_some() {
            // A failed shard answers commands with its error and ignores
            // everything else.
            return Ok(());
        }
        match ctx.input.clone() {
            CtxInput::Command { command, .. } => {
                let token = ctx.token.expect("command token");
                let expect = self.pending[&token].expect.clone();
                let m = &mut self.models[si];
                for _ in 0..audited(&command, &expect) {
                    ctx.expect_audits += m.audit.admit(now);
                }
                match (&command, &expect) {
                    (Command::Ack { id, .. }, Expect::AckRequest) => {
                        ctx.expect_events.push((*id, EventKind::Acked, 0));
                        self.know.provider_acked.insert(*id);
                    }
                    (Command::SendRequests(_), Expect::SendMany { slots, .. }) => {
                        for slot in slots {
                            match slot {
                                Slot::Dup(_) | Slot::SameAs(_) => m.counters.duplicates += 1,
                                Slot::Fail(HubError::StateSecret) => {
                                    m.counters.state_secrets_refused += 1
                                }
                                Slot::Fail(HubError::InvalidFormat { .. }) => {
                                    m.counters.requests_invalid_format += 1
                                }
                                Slot::Fail(HubError::BadSignature(_)) => {
                                    m.counters.requests_bad_signature += 1
                                }
                                _ => {}
                            }
                        }
                    }
                    (Command::AckMany { .. }, Expect::AckMany { acked, .. }) => {
                        for id in acked {
                            ctx.expect_events.push((*id, EventKind::Acked, 0));
                            self.know.provider_acked.insert(*id);
                        }
                    }
                    (Command::Ack { id, .. }, Expect::AckAnswer { again: false }) => {
                        let a = m.answers.remove(id).expect("predicted leased");
                        ctx.expect_answer_acked = Some(a.envelope.request_id);
                    }
                    (
                        Command::Nack {
                            queue,
                            id,
                            delay_ms,
                            ..
                        },
                        Expect::Done | Expect::Nacked,
                    ) => match queue {
                        QueueId::Requests(_) => {
                            ctx.expect_events.push((*id, EventKind::Nacked, 0));
                            end_request_lease(m, ctx, *id, *delay_ms, deliveries_max);
                        }
                        QueueId::Answers(_) => {
                            let a = m.answers.get_mut(id).expect("predicted leased");
                            a.place = if *delay_ms == 0 {
                                MPlace::Ready
                            } else {
                                MPlace::Delayed {
                                    until_ms: now + delay_ms,
                                }
                            };
                        }
                    },
                    (
                        Command::NackMany {
                            queue, delay_ms, ..
                        },
                        Expect::NackMany { nacked, .. },
                    ) => {
                        // All the nacks' events (one record) first, then
                        // the leases end (and dead letters follow).
                        for id in nacked {
                            if matches!(queue, QueueId::Requests(_)) {
                                ctx.expect_events.push((*id, EventKind::Nacked, 0));
                            }
                        }
                        for id in nacked {
                            match queue {
                                QueueId::Requests(_) => {
                                    end_request_lease(m, ctx, *id, *delay_ms, deliveries_max)
                                }
                                QueueId::Answers(_) => {
                                    let a = m.answers.get_mut(id).expect("predicted leased");
                                    a.place = if *delay_ms == 0 {
                                        MPlace::Ready
                                    } else {
                                        MPlace::Delayed {
                                            until_ms: now + delay_ms,
                                        }
                                    };
                                }
                            }
                        }
                    }
                    (_, Expect::Duplicate { .. } | Expect::CallRepeat { .. }) => {
                        m.counters.duplicates += 1
                    }
                    (_, Expect::Fail(HubError::StateSecret)) => {
                        m.counters.state_secrets_refused += 1
                    }
                    (
                        Command::SendResponse { .. },
                        Expect::Fail(HubError::InvalidFormat { .. }),
                    ) => m.counters.answers_invalid_format += 1,
                    (
                        Command::SendRequest(_) | Command::Call(_),
                        Expect::Fail(HubError::InvalidFormat { .. }),
                    ) => m.counters.requests_invalid_format += 1,
                    (
                        Command::SendResponse { .. } | Command::SendRefusal { .. },
                        Expect::Fail(HubError::DeadlineExceeded),
                    ) => m.counters.late_answers += 1,
                    // A batch whose one signature fails: each of its requests.
                    (Command::SendRequests(rs), Expect::Fail(HubError::BadSignature(_))) => {
                        m.counters.requests_bad_signature += rs.len() as u64
                    }
                    (
                        Command::SendRequest(_) | Command::Call(_),
                        Expect::Fail(HubError::BadSignature(_)),
                    ) => m.counters.requests_bad_signature += 1,
                    (
                        Command::SendResponse { .. } | Command::SendRefusal { .. },
                        Expect::Fail(HubError::BadSignature(_)),
                    ) => m.counters.answers_bad_signature += 1,
                    _ => {}
                }
            }
            CtxInput::Committed => {
                let d = self.logs[si].durable;
                let m = &mut self.models[si];
                ensure!(d >= m.durable, "commit went backwards");
                m.durable = d;
                // Released (and queued) in log order, as they commit.
                let mut released: Vec<(u64, MessageId)> = Vec::new();
                for r in m.reqs.values_mut() {
                    if !r.released && r.offset < d {
                        r.released = true;
                        m.counters.accepted += 1;
                        if !r.call && r.open() && !r.acked {
                            released.push((r.offset, r.id));
                        }
                    }
                    if let Some(o) = &r.outcome {
                        if !o.routed && o.offset < d {
                            ctx.route_due.insert(r.id);
                        }
                    }
                }
                released.sort_unstable();
                for (_, id) in released {
                    m.enqueue(id);
                }
            }
            CtxInput::Tick => {
                if let Some(keep_ms) = self.config.finished_keep_ms {
                    let before = m.counters.evicted;
                    m.evictions_due(now, keep_ms, self.config.dedup_window_ms);
                    self.stats.evictions += m.counters.evicted - before;
                }
                let due: Vec<MessageId> = m
                    .reqs
                    .values()
                    .filter(|r| match r.place {
                        Some(MPlace::Leased { expires_ms, .. }) => expires_ms <= now,
                        Some(MPlace::Delayed { until_ms }) => until_ms <= now,
                        _ => false,
                    })
                    .map(|r| r.id)
                    .collect();
                for id in due {
                    if let Some(MPlace::Leased { .. }) = m.reqs[&id].place {
                        self.stats.lease_timeouts += 1;
                        end_request_lease(m, ctx, id, 0, deliveries_max);
                    } else {
                        m.reqs.get_mut(&id).unwrap().place = Some(MPlace::Ready);
                        ctx.released.insert(id);
                    }
                }
                for (id, a) in m.answers.iter_mut() {
                    match a.place {
                        MPlace::Leased { expires_ms, .. } if expires_ms <= now => {
                            self.stats.lease_timeouts += 1;
                            a.place = MPlace::Ready;
                            ctx.released.insert(*id);
                        }
                        MPlace::Delayed { until_ms } if until_ms <= now => {
                            a.place = MPlace::Ready;
                            ctx.released.insert(*id);
                        }
                        _ => {}
                    }
                }
            }
            CtxInput::Disconnected(reader) => {
                let held: Vec<MessageId> = m
                    .reqs
                    .values()
                    .filter(|r| matches!(r.place, Some(MPlace::Leased { reader: x, .. }) if x == reader))
                    .map(|r| r.id)
                    .collect();
                for id in held {
                    end_request_lease(m, ctx, id, 0, deliveries_max);
                }
                for (id, a) in m.answers.iter_mut() {
                    if matches!(a.place, MPlace::Leased { reader: x, .. } if x == reader) {
                        a.place = MPlace::Ready;
                        ctx.released.insert(*id);
                    }
                }
            }
            CtxInput::Peer(msg) => match msg {
                PeerMsg::EnqueueAnswer(envelope) => {
                    // Delivery counts go on from what the request's shard recorded.
                    let deliveries = envelope.deliveries;
                    if !m.answers.contains_key(&envelope.id) {
                        m.answers.insert(
                            envelope.id,
                            MAnswer {
                                envelope,
                                place: MPlace::Ready,
                                deliveries,
                                order: m.next_order,
                            },
                        );
                        m.next_order += 1;
                    }
                }
                PeerMsg::AnswerDelivered { request_id, count } => {
                    if let Some(r) = m.reqs.get(&request_id) {
                        if !r.answer_acked && count > r.answer_deliveries {
                            ctx.expect_events
                                .push((request_id, EventKind::AnswerDelivered, count));
                        }
                    }
                }
                PeerMsg::AnswerAcked { request_id, ack } => {
                    if m.reqs.get(&request_id).is_some_and(|r| !r.answer_acked) {
                        ctx.expect_events
                            .push((request_id, EventKind::AnswerAcked, 0));
                    }
                    if let Some(ack) = ack {
                        ctx.settle = Some((ack.token, Ok(())));
                    }
                }
                PeerMsg::AnswerAckAgain {
                    answer_id,
                    consumer,
                    ack,
                } => {
                    // An exchange no longer in memory is not looked up.
                    let acked = m
                        .answer_ids
                        .get(&answer_id)
                        .and_then(|rid| m.reqs.get(rid))
                        .is_some_and(|r| r.in_memory && r.consumer == consumer && r.answer_acked);
                    let result = if acked {
                        Ok(())
                    } else {
                        Err(HubError::NotFound)
                    };
                    ctx.settle = Some((ack.token, result));
                }
                PeerMsg::AnswerAckSettled { .. } => {}
            },
            CtxInput::GiveBack { queue, id, reader } => match queue {
                QueueId::Requests(kind) => {
                    let leased = m.reqs.get(&id).is_some_and(|r| {
                        r.kind == kind
                            && matches!(r.place, Some(MPlace::Leased { reader: x, .. }) if x == reader)
                    });
                    if leased {
                        end_request_lease(m, ctx, id, 0, deliveries_max);
                    }
                }
                QueueId::Answers(to) => {
                    if let Some(a) = m.answers.get_mut(&id).filter(|a| {
                        a.envelope.to == to
                            && matches!(a.place, MPlace::Leased { reader: x, .. } if x == reader)
                    }) {
                        a.place = MPlace::Ready;
                        ctx.released.insert(id);
                    }
                }
            },
            CtxInput::Archived(request_id) => {
                let before = m.counters.evicted;
                m.archived(request_id);
                self.stats.evictions += m.counters.evicted - before;
            }
            CtxInput::CallReplied(request_id) => {
                let r = m.reqs.get(&request_id);
                if r.is_some_and(|r| !r.answer_acked && r.outcome.is_some()) {
                    ctx.expect_events
                        .push((request_id, EventKind::AnswerAcked, 0));
                }
            }
            CtxInput::Journaled => {
                let jd = self.logs[si].journal_durable;
                let m = &mut self.models[si];
                ensure!(jd >= m.journaled, "the journal's commit went backwards");
                m.journaled = jd;
                // Calls' answers not yet durable in the log go on now.
                for r in m.reqs.values() {
                    if let Some(o) = r.outcome.as_ref().filter(|_| r.call) {
                        if !o.routed && o.offset < jd && o.offset >= m.durable {
                            ctx.route_due.insert(r.id);
                            m.counters.answers_routed_by_journal += 1;
                        }
                    }
                }
                self.stats.answers_routed_by_journal += ctx.route_due.len() as u64;
            }
            CtxInput::StorageFailed | CtxInput::Recovered => {}
        }
        Ok(())
    }

    /// What the step had to do, checked once its outputs are in.
    pub fn after(&mut self, ctx: &mut StepCtx) -> Check {
        let s = ctx.shard;
        let si = s as usize;
        ensure!(
            // A failed shard's reads lease from memory, unmodelled.
            ctx.handing.is_empty() || self.models[si].failed.is_some(),
            "deliveries counted but never handed out: {:?}",
            ctx.handing
        );
        ensure!(
            ctx.expect_events.is_empty(),
            "events missing from the log: {:?}",
            ctx.expect_events
        );
        ensure!(
            ctx.expect_answer_acked.is_none(),
            "the consumer's ack of the answer to {:?} was not sent to its shard",
            ctx.expect_answer_acked
        );
        if let Some((token, result)) = ctx.settle.take() {
            // Settled once everything this step appended is durable.
            let log_end = self.logs[si].records.len() as u64;
            self.settling.insert(token, (s, log_end, result));
        }
        if let CtxInput::StorageFailed = ctx.input {
            ensure!(
                !self.settling.values().any(|(shard, _, _)| *shard == s),
                "answer acks left unsettled on failed shard {s}"
            );
            let failed = self.shards[si].failed().cloned();
            ensure!(
                failed.is_some(),
                "shard {s} did not fail on a storage failure"
            );
            self.models[si].failed = failed;
            let left: Vec<&Pending> = self.pending.values().filter(|p| p.shard == s).collect();
            ensure!(
                left.is_empty(),
                "operations left waiting on failed shard {s}: {:?}",
                left.iter().map(|p| &p.command).collect::<Vec<_>>()
            );
            self.subs.retain(|(q, _), _| q.shard(self.n) != s);
            return Ok(());
        }
        if let Some(token) = ctx.token {
            if let Some(p) = self.pending.get_mut(&token) {
                ensure!(
                    !p.expect.immediate(),
                    "no immediate reply to {:?}, expected {:?}",
                    p.command,
                    p.expect
                );
                p.release_offset = self.logs[si].records.len() as u64;
                p.record_offset = ctx.command_record;
                p.batch_ids = ctx.batch_new.iter().map(|(id, _)| *id).collect();
                if let Some((id, offset)) = ctx.new_request {
                    p.request_id = Some(id);
                    p.record_offset = Some(offset);
                    if matches!(p.command, Command::Call(_)) {
                        self.call_waiting.insert(id, token);
                    }
                }
            }
        }
        let m = &self.models[si];
        if m.failed.is_some() {
            return Ok(());
        }
        ensure!(
            ctx.expect_audits == 0,
            "{} audit records missing after {:?}",
            ctx.expect_audits,
            ctx.input
        );
        for id in &ctx.must_end {
            ensure!(
                !m.reqs[id].open(),
                "request {id} used up its deliveries but was not dead-lettered"
            );
        }
        if matches!(ctx.input, CtxInput::Committed | CtxInput::Recovered) {
            // A history is handed to the archive once the record that
            // finished it is durable, and again after every restart.
            if let Some(r) = m.reqs.values().find(|r| {
                r.in_memory
                    && r.finished_at.is_some_and(|o| o < m.durable)
                    && !r.asked
                    && !r.archived
            }) {
                return Err(format!(
                    "finished history of {} is durable but was not handed to the archive ({:?})",
                    r.id, ctx.input
                ));
            }
        }
        for id in &ctx.route_due {
            let o = m.reqs[id].outcome.as_ref().expect("ended");
            ensure!(
                o.routed,
                "durable answer {} to {id} was not sent on ({:?})",
                o.answer_id,
                ctx.input
            );
        }
        match &ctx.input {
            CtxInput::Tick => {
                if let Some(r) = m
                    .reqs
                    .values()
                    .find(|r| r.open() && r.deadline_ms <= ctx.now)
                {
                    return Err(format!(
                        "request {} outlived its deadline {} at a tick at {}",
                        r.id, r.deadline_ms, ctx.now
                    ));
                }
                if let Some(id) = self.call_waiting.keys().find(|id| {
                    id.shard() == s && m.reqs.get(id).is_some_and(|r| r.deadline_ms <= ctx.now)
                }) {
                    return Err(format!("call {id} still waits at a tick past its deadline"));
                }
                if let Some((t, w)) = self.waits.iter().find(|(_, w)| w.0 == s && w.3 <= ctx.now) {
                    return Err(format!(
                        "long-poll {t} on {} not answered at the end of its wait {}",
                        w.1, w.3
                    ));
                }
            }
            CtxInput::Committed => {
                let durable = m.durable;
                if let Some(p) = self
                    .pending
                    .values()
                    .find(|p| p.shard == s && p.expect.deferred() && p.release_offset <= durable)
                {
                    return Err(format!(
                        "reply to {:?} withheld although everything before it is durable",
                        p.command
                    ));
                }
                if let Some((t, _)) = self
                    .settling
                    .iter()
                    .find(|(_, (shard, end, _))| *shard == s && *end <= durable)
                {
                    return Err(format!(
                        "answer ack {t} not settled although its record is durable"
                    ));
                }
            }
            CtxInput::Disconnected(reader) => {
                if let Some((t, _)) = self.waits.iter().find(|(_, w)| w.0 == s && w.2 == *reader) {
                    return Err(format!("long-poll {t} of a gone reader not answered"));
                }
            }
            _ => {}
        }
        // Nothing ready may sit in a queue while a reader waits for it.
        let waiting: BTreeSet<&QueueId> = self
            .waits
            .values()
            .filter(|w| w.0 == s)
            .map(|w| &w.1)
            .chain(
                self.subs
                    .iter()
                    .filter(|((q, _), c)| **c > 0 && q.shard(self.n) == s)
                    .map(|((q, _), _)| q),
            )
            .collect();
        if !waiting.is_empty() {
            let ready = m
                .reqs
                .values()
                .filter(|r| r.place == Some(MPlace::Ready))
                .map(|r| QueueId::Requests(r.kind.clone()))
                .chain(
                    m.answers
                        .values()
                        .filter(|a| a.place == MPlace::Ready)
                        .map(|a| QueueId::Answers(a.envelope.to.clone())),
                )
                .find(|q| waiting.contains(q));
            if let Some(q) = ready {
                return Err(format!(
                    "queue {q} has ready messages while a reader waits on it (long-poll or credits)"
                ));
            }
        }
        Ok(())
    }

    pub fn on_output(&mut self, ctx: &mut StepCtx, o: Output) -> Check {
        if self.trace {
            eprintln!("    -> {o:?}");
        }
        self.check_receipts(&o)?;
        self.mix(&[ctx.shard as u8]);
        self.mix(&ctx.now.to_le_bytes());
        match &o {
            Output::Append { record, .. } => {
                let mut buf = Vec::new();
                record.encode(&mut buf);
                self.mix(&buf);
            }
            Output::Reply { token, .. } => self.mix(&token.to_le_bytes()),
            Output::Deliver { reader, delivery } => {
                self.mix(&reader.to_le_bytes());
                self.mix(&delivery.id.0.to_le_bytes());
            }
            Output::ToShard { shard, .. } => self.mix(&shard.to_le_bytes()),
            Output::ArmTimer { at_ms } => self.mix(&at_ms.to_le_bytes()),
            Output::Archive { history } => self.mix(&history.request_id.0.to_le_bytes()),
            Output::StatusFromArchive { token, .. } => self.mix(&token.to_le_bytes()),
        }
        match o {
            Output::Append {
                offset,
                record,
                journal,
            } => {
                let want = self.opts.rt_journal && self.is_call_record(ctx.shard, &record);
                ensure!(
                    journal == want,
                    "record {offset} asked for the rt journal: {journal}, a call's with the journal on: {want}"
                );
                if journal {
                    self.logs[ctx.shard as usize].journaled.push(offset);
                }
                self.on_append(ctx, offset, record)
            }
            Output::Reply { token, result } => self.on_reply(ctx, token, result),
            Output::Deliver { reader, delivery } => {
                let credits = self.subs.get_mut(&(delivery.queue.clone(), reader));
                match credits {
                    Some(c) if *c > 0 => *c -= 1,
                    _ => {
                        return Err(format!(
                            "pushed {} to reader {reader} without a subscription with credits",
                            delivery.id
                        ))
                    }
                }
                self.on_delivery(ctx, reader, &delivery)
            }
            Output::ToShard { shard, msg } => self.on_to_shard(ctx, shard, msg),
            Output::ArmTimer { at_ms } => {
                let t = &mut self.timer_at[ctx.shard as usize];
                *t = Some(t.map_or(at_ms, |x| x.min(at_ms)));
                Ok(())
            }
            Output::Archive { history } => self.on_archive(ctx, history),
            Output::StatusFromArchive {
                token,
                id,
                caller,
                operator,
            } => {
                let s = ctx.shard;
                let si = s as usize;
                let m = &self.models[si];
                if m.failed.is_none() {
                    let rid = m.answer_ids.get(&id).copied().unwrap_or(id);
                    ensure!(
                        !m.reqs.get(&rid).is_some_and(|r| r.in_memory),
                        "status of {id} sent to the archive while shard {s} holds it"
                    );
                }
                let is_operator = self
                    .registry
                    .participant(&caller)
                    .is_some_and(|p| p.roles.operator);
                ensure!(
                    id.shard() == s
                        && operator == is_operator
                        && self.pending.get(&token).is_some_and(|p| p.caller == caller),
                    "status of {id} sent to the archive for {caller} (operator {operator}) by shard {s}"
                );
                // The runtime answers it from the archive, at once.
                let result = self.archives[si].status(id, &caller, operator);
                self.stats.archive_statuses += 1;
                self.on_reply(ctx, token, result)
            }
        }
    }

    /// The shard hands a finished history to its archive: only once the
    /// record that finished it is durable, once at a time, exactly as the
    /// log tells it (and as the archive holds it, if it does already).
    fn on_archive(&mut self, ctx: &mut StepCtx, history: StatusView) -> Check {
        let si = ctx.shard as usize;
        let id = history.request_id;
        let m = &mut self.models[si];
        let durable = m.durable;
        let r = m
            .reqs
            .get_mut(&id)
            .ok_or_else(|| format!("archive of {id}, which the log lacks"))?;
        ensure!(
            r.in_memory && r.finished() && !r.asked && !r.archived,
            "archive of {id} asked while in memory {}, finished {}, asked {}, archived {}",
            r.in_memory,
            r.finished(),
            r.asked,
            r.archived
        );
        ensure!(
            r.finished_at.is_some_and(|o| o < durable),
            "archive of {id} asked before the record that finished it (at {:?}) is durable ({durable})",
            r.finished_at
        );
        ensure!(
            history == r.view(),
            "archive of {id} asked with history {history:?}, the log says {:?}",
            r.view()
        );
        r.asked = true;
        m.counters.archive_asked += 1;
        self.stats.archive_asks += 1;
        if matches!(ctx.input, CtxInput::Recovered) {
            self.stats.archive_reasks += 1;
        }
        let held = self.archives[si].held.get(&id);
        ensure!(
            held.is_none_or(|h| *h == history),
            "archive of {id} asked with history {history:?}; the archive holds {held:?}"
        );
        // The archive answers a repeat at once, without a second copy.
        let durable = held.is_some();
        self.archives[si].writes.push_back((history, durable));
        Ok(())
    }

    /// Every record must be the consequence of the step's input (invariant
    /// 5 and the model's fold), and ids are never reused.
    pub fn on_append(&mut self, ctx: &mut StepCtx, offset: u64, record: Record) -> Check {
        let s = ctx.shard;
        let si = s as usize;
        let end = self.logs[si].records.len() as u64;
        ensure!(
            offset == end,
            "append at offset {offset}, the log ends at {end}"
        );
        let now = ctx.now;
        let request;
        match &record {
            Record::Request(r) => {
                let (caller, n) = match &ctx.input {
                    CtxInput::Command {
                        caller,
                        command: Command::SendRequest(n) | Command::Call(n),
                    } => {
                        ensure!(
                            ctx.new_request.is_none(),
                            "two request records for one send"
                        );
                        (caller, n)
                    }
                    CtxInput::Command {
                        caller,
                        command: Command::SendRequests(ns),
                    } => {
                        // The kth record is the kth request the model stores.
                        let token = ctx.token.expect("command token");
                        let Expect::SendMany { slots, .. } = &self.pending[&token].expect else {
                            return Err(format!("request record {} for a refused batch", r.id));
                        };
                        let k = ctx.batch_new.len();
                        let i = slots
                            .iter()
                            .position(|s| matches!(s, Slot::New(j) if *j == k))
                            .ok_or_else(|| format!("request record {} beyond the batch's", r.id))?;
                        ctx.batch_new.push((r.id, offset));
                        (caller, &ns[i])
                    }
                    _ => return Err(format!("request record {} without a send", r.id)),
                };
                let call = matches!(
                    &ctx.input,
                    CtxInput::Command {
                        command: Command::Call(_),
                        ..
                    }
                );
                // A request of a batch is stored without the batch's
                // signature; one sent alone with its own.
                let batch = !matches!(
                    &ctx.input,
                    CtxInput::Command {
                        command: Command::SendRequest(_) | Command::Call(_),
                        ..
                    }
                );
                let sign = self.pending[&ctx.token.expect("command token")].sign;
                let digest = gonets_trust::request_digest(caller, n);
                check_seal(r.seal.as_deref(), digest, sign.carries() && !batch)
                    .map_err(|e| format!("request record {}: {e}", r.id))?;
                let kind = self.registry.kind(&r.kind).expect("validated kind");
                ensure!(
                    &r.consumer == caller
                        && r.kind == n.kind
                        && r.payload == n.payload
                        && r.idempotency_key == n.idempotency_key
                        && r.transaction == n.transaction
                        && r.test == n.test
                        && r.call == call
                        && r.provider == kind.provider
                        && r.time_ms == now
                        && r.deadline_ms == now + n.expires_in_ms.unwrap_or(kind.deadline_ms)
                        && r.id.shard() == s,
                    "request record {r:?} does not match the send {n:?} by {caller} at {now}"
                );
                ensure!(
                    self.ids.insert(r.id),
                    "message id {} handed out twice",
                    r.id
                );
                if !matches!(
                    &ctx.input,
                    CtxInput::Command {
                        command: Command::SendRequests(_),
                        ..
                    }
                ) {
                    ctx.new_request = Some((r.id, offset));
                }
                request = Some(r.id);
                self.stats.accepted += 1;
            }
            Record::Answer(a) => {
                let m = &self.models[si];
                let req = m.reqs.get(&a.request_id).ok_or_else(|| {
                    format!("answer {} to unknown request {}", a.id, a.request_id)
                })?;
                ensure!(
                    self.ids.insert(a.id),
                    "message id {} handed out twice",
                    a.id
                );
                ensure!(a.id.shard() == s, "answer id {} names another shard", a.id);
                ensure!(a.time_ms == now, "answer time {} at {now}", a.time_ms);
                match terminal_kind(&a.body) {
                    EventKind::Expired => {
                        ensure!(
                            matches!(ctx.input, CtxInput::Tick) && req.deadline_ms <= now,
                            "request {} expired at {now} before its deadline {} ({:?})",
                            req.id,
                            req.deadline_ms,
                            ctx.input
                        );
                        self.stats.expired += 1;
                        // Ahead of an older request of its queue still
                        // waiting for its own deadline: its own expiry.
                        if m.reqs.values().any(|o| {
                            o.kind == req.kind && o.open() && o.id < req.id && o.deadline_ms > now
                        }) {
                            self.stats.expired_out_of_order += 1;
                        }
                    }
                    EventKind::DeadLettered => {
                        ensure!(
                            ctx.released.contains(&req.id)
                                && req.deliveries >= self.config.deliveries_max,
                            "request {} dead-lettered after {} deliveries without its lease ending ({:?})",
                            req.id,
                            req.deliveries,
                            ctx.input
                        );
                        self.stats.dead_lettered += 1;
                    }
                    _ => {
                        let by_provider = match &ctx.input {
                            CtxInput::Command {
                                caller,
                                command:
                                    Command::SendResponse {
                                        request_id,
                                        payload,
                                        ..
                                    },
                            } => {
                                caller == &req.provider
                                    && *request_id == req.id
                                    && a.body == AnswerBody::Data
                                    && a.payload == *payload
                            }
                            CtxInput::Command {
                                caller,
                                command:
                                    Command::SendRefusal {
                                        request_id,
                                        code,
                                        reason,
                                    },
                            } => {
                                caller == &req.provider
                                    && *request_id == req.id
                                    && a.body
                                        == AnswerBody::Refusal {
                                            code: *code,
                                            reason: reason.clone(),
                                        }
                                    && a.payload.is_empty()
                            }
                            _ => false,
                        };
                        ensure!(
                            by_provider,
                            "answer {a:?} not made by its provider's command ({:?})",
                            ctx.input
                        );
                        let sign = self.pending[&ctx.token.expect("command token")].sign;
                        // The simulated providers attach nothing.
                        let digest = gonets_trust::answer_digest(
                            &req.provider,
                            req.id,
                            &a.body,
                            &a.payload,
                            &[],
                        );
                        check_seal(a.seal.as_deref(), digest, sign.carries())
                            .map_err(|e| format!("answer {}: {e}", a.id))?;
                        ctx.command_record = Some(offset);
                        self.stats.answers += 1;
                    }
                }
                self.check_deadline(req.deadline_ms, a.time_ms)
                    .map_err(|e| format!("answer {} to {}: {e}", a.id, req.id))?;
                request = Some(a.request_id);
            }
            Record::Event(e) => {
                let m = &self.models[si];
                ensure!(
                    m.reqs.contains_key(&e.request_id),
                    "event {e:?} for an unknown request"
                );
                ensure!(e.time_ms == now, "event time {} at {now}", e.time_ms);
                match e.kind {
                    EventKind::Delivered => check_delivered(m, ctx, e)?,
                    kind => {
                        let at = ctx
                            .expect_events
                            .iter()
                            .position(|x| *x == (e.request_id, kind, e.count))
                            .ok_or_else(|| {
                                format!("event {e:?} not called for by {:?}", ctx.input)
                            })?;
                        ctx.expect_events.remove(at);
                        if kind == EventKind::Acked {
                            ctx.command_record = Some(offset);
                        }
                    }
                }
                request = Some(e.request_id);
            }
            Record::SnapshotPart(_) | Record::SnapshotEnd { .. } => {
                return Err("the shard appended a snapshot record by itself".into())
            }
            Record::Anchor(_) => return Err("the shard appended an anchor by itself".into()),
            Record::Lost => return Err("the shard appended a lost-offset fill by itself".into()),
            // An audit record of a refusal (ADR 0020): not state, but
            // only where the model's door and rate bound call for one.
            Record::Audit(audit) => {
                ensure!(
                    ctx.expect_audits > 0,
                    "audit record {record:?} not called for by {:?}",
                    ctx.input
                );
                ctx.expect_audits -= 1;
                // A refusal's record names its sender, at hub time; a
                // summary's span is the shard's to say.
                if let (AuditRecord::Refusal(r), CtxInput::Command { caller, .. }) =
                    (audit, &ctx.input)
                {
                    ensure!(
                        &r.participant == caller && r.time_ms == now,
                        "audit record {r:?} of {caller}'s command at {now}"
                    );
                }
                self.logs[si].records.push(record);
                return Ok(());
            }
            Record::Events(es) if es.iter().all(|e| e.kind == EventKind::Delivered) => {
                // A fetch of several: each delivery checked, and folded,
                // in turn (the next one's FIFO check sees the one before).
                // (One alone only where the log's record bound cut it so.)
                ensure!(!es.is_empty(), "an empty events record");
                for e in es {
                    ensure!(e.time_ms == now, "event time {} at {now}", e.time_ms);
                    check_delivered(&self.models[si], ctx, e)?;
                    let m = &mut self.models[si];
                    m.apply(offset, &Record::Event(e.clone()), true)?;
                    m.reqs.get_mut(&e.request_id).unwrap().place = Some(MPlace::Handing);
                    self.dirty.insert(e.request_id);
                }
                self.logs[si].records.push(record);
                return Ok(());
            }
            Record::Events(es) => {
                // Otherwise only `ack_many` and `nack_many` write one: each
                // event one of their acks or nacks.
                ensure!(!es.is_empty(), "an empty events record");
                for e in es {
                    ensure!(
                        e.time_ms == now
                            && matches!(e.kind, EventKind::Acked | EventKind::Nacked)
                            && e.count == 0,
                        "event {e:?} in an events record at {now}"
                    );
                    let at = ctx
                        .expect_events
                        .iter()
                        .position(|x| *x == (e.request_id, e.kind, e.count))
                        .ok_or_else(|| format!("event {e:?} not called for by {:?}", ctx.input))?;
                    ctx.expect_events.remove(at);
                    self.dirty.insert(e.request_id);
                }
                ctx.command_record = Some(offset);
                request = None;
            }
        }
        let m = &mut self.models[si];
        m.apply(offset, &record, true)?;
        match &record {
            // A call's request is handed over while it commits.
            Record::Request(r) if r.call => m.enqueue(r.id),
            Record::Event(e) if e.kind == EventKind::Delivered => {
                m.reqs.get_mut(&e.request_id).unwrap().place = Some(MPlace::Handing);
            }
            _ => {}
        }
        if let Some(id) = request {
            self.dirty.insert(id);
        }
        self.logs[si].records.push(record);
        Ok(())
    }

    /// Invariant 4: an answer (and an expiry in particular) comes no later
    /// than the deadline plus the timer granularity, unless the clock jumped
    /// or the hub was down across the deadline: then within a step after.
    pub fn check_deadline(&self, deadline_ms: u64, at_ms: u64) -> Check {
        if at_ms <= deadline_ms + GRANULARITY_MS {
            return Ok(());
        }
        let excused = self
            .gaps
            .iter()
            .rev()
            .take_while(|b| **b + GRANULARITY_MS >= at_ms)
            .any(|b| *b >= deadline_ms);
        ensure!(
            excused,
            "{} ms past its deadline {deadline_ms} (granularity {GRANULARITY_MS} ms)",
            at_ms - deadline_ms
        );
        Ok(())
    }

    /// A message handed to `reader`: it must be the one the model has just
    /// counted, whole, and not one its reader already acked (invariant 3).
    pub fn on_delivery(&mut self, ctx: &mut StepCtx, reader: ReaderId, d: &Delivery) -> Check {
        let s = ctx.shard;
        let si = s as usize;
        ensure!(
            d.queue.shard(self.n) == s,
            "{} delivered from {} by shard {s}",
            d.id,
            d.queue
        );
        ensure!(
            ctx.handing.remove(&d.id),
            "{} handed out without being counted",
            d.id
        );
        let expires_ms = ctx.now + self.config.lease_timeout_ms;
        match &d.queue {
            QueueId::Requests(kind) => {
                let req = self.models[si].reqs.get(&d.id).expect("counted");
                ensure!(
                    &req.kind == kind
                        && d.kind == req.kind
                        && d.from == req.consumer
                        && d.reply_to.is_none()
                        && d.body == DeliveryBody::Request
                        && d.time_ms == req.time_ms
                        && d.deadline_ms == req.deadline_ms
                        && d.delivery_count == req.deliveries
                        && d.test == req.test
                        && d.transaction == req.transaction,
                    "delivery {d:?} does not match its request {req:?}"
                );
                let expected = req.payload.clone();
                let got = self.resolve(s, &d.payload, d.id)?;
                ensure!(
                    got == expected,
                    "request {} delivered with another payload",
                    d.id
                );
                ensure!(
                    !self.know.provider_acked.contains(&d.id),
                    "request {} delivered again after its ack (invariant 3)",
                    d.id
                );
                if d.delivery_count > 1 {
                    self.stats.redeliveries += 1;
                }
                self.models[si].reqs.get_mut(&d.id).unwrap().place =
                    Some(MPlace::Leased { reader, expires_ms });
                if let Some(c) = self.clients.iter_mut().find(|c| c.reader == reader) {
                    c.held.insert(d.id, d.queue.clone());
                    c.work.insert(d.id);
                } else {
                    return Err(format!(
                        "request {} delivered to gone reader {reader}",
                        d.id
                    ));
                }
            }
            QueueId::Answers(to) => {
                let a = self.models[si].answers.get(&d.id).expect("counted");
                let env = a.envelope.clone();
                ensure!(
                    &env.to == to
                        && d.reply_to == Some(env.request_id)
                        && d.kind == env.kind
                        && d.from == env.from
                        && d.body == DeliveryBody::Answer(env.body.clone())
                        && d.time_ms == env.time_ms
                        && d.delivery_count == a.deliveries
                        && d.test == env.test
                        && d.transaction == env.transaction,
                    "delivery {d:?} does not match its answer {env:?}"
                );
                self.check_answer(env.request_id, d.id, &d.body, &d.payload)?;
                ensure!(
                    !self.know.consumer_acked.contains(&d.id),
                    "answer {} delivered again after the consumer acked it (invariant 3)",
                    d.id
                );
                if d.delivery_count > 1 {
                    self.stats.redeliveries += 1;
                }
                self.see(env.request_id, Seen::Answer(d.id))?;
                self.models[si].answers.get_mut(&d.id).unwrap().place =
                    MPlace::Leased { reader, expires_ms };
                if let Some(c) = self.clients.iter_mut().find(|c| c.reader == reader) {
                    c.held.insert(d.id, d.queue.clone());
                } else {
                    return Err(format!("answer {} delivered to gone reader {reader}", d.id));
                }
            }
        }
        Ok(())
    }

    /// True when `record` belongs to a call's exchange (ADR 0036: the shard
    /// journals every such record). An `Events` record with any of them.
    fn is_call_record(&self, s: u16, record: &Record) -> bool {
        let m = &self.models[s as usize];
        let call = |id: &MessageId| m.reqs.get(id).is_some_and(|r| r.call && r.in_memory);
        match record {
            Record::Request(r) => r.call,
            Record::Answer(a) => call(&a.request_id),
            Record::Event(e) => call(&e.request_id),
            Record::Events(es) => es.iter().any(|e| call(&e.request_id)),
            _ => false,
        }
    }

    /// An answer handed to a consumer is the durable outcome of its request,
    /// with its payload.
    pub fn check_answer(
        &self,
        request_id: MessageId,
        answer_id: MessageId,
        body: &DeliveryBody,
        payload: &Payload,
    ) -> Check {
        let rs = request_id.shard();
        let m = &self.models[rs as usize];
        let req = m
            .reqs
            .get(&request_id)
            .ok_or_else(|| format!("answer {answer_id} to {request_id}, which its shard lacks"))?;
        let o = req
            .outcome
            .as_ref()
            .ok_or_else(|| format!("answer {answer_id} to open request {request_id}"))?;
        ensure!(
            o.answer_id == answer_id && *body == DeliveryBody::Answer(o.body.clone()),
            "answer {answer_id} {body:?} to {request_id}, whose outcome is {} {:?}",
            o.answer_id,
            o.body
        );
        ensure!(
            o.offset < m.durable || req.call && m.call_durable(o.offset),
            "answer {answer_id} handed to the consumer before it was durable"
        );
        let got = self.resolve(rs, payload, answer_id)?;
        ensure!(
            got == o.payload,
            "answer {answer_id} handed out with another payload"
        );
        Ok(())
    }

    /// Invariant 2 as the consumer sees it: one answer id per request (the
    /// same one may come again), or the expiry of its call.
    pub fn see(&mut self, request_id: MessageId, seen: Seen) -> Check {
        match (self.know.seen.get(&request_id), seen) {
            (None, seen) => {
                self.know.seen.insert(request_id, seen);
            }
            (Some(Seen::Answer(a)), Seen::Answer(b)) if *a == b => {}
            (Some(Seen::CallExpired), Seen::Answer(b)) => {
                let m = &self.models[request_id.shard() as usize];
                let o = m.reqs[&request_id].outcome.as_ref().expect("ended");
                ensure!(
                    terminal_kind(&o.body) == EventKind::Expired,
                    "call {request_id} was told it expired, then got answer {b} {:?}",
                    o.body
                );
                self.know.seen.insert(request_id, Seen::Answer(b));
            }
            (Some(before), now) => {
                return Err(format!(
                    "request {request_id} reached its consumer as {before:?}, then as {now:?} (invariant 2)"
                ))
            }
        }
        Ok(())
    }

    pub fn on_to_shard(&mut self, ctx: &mut StepCtx, to: u16, msg: PeerMsg) -> Check {
        let s = ctx.shard;
        let si = s as usize;
        ensure!(to < self.n, "message to shard {to} of {}", self.n);
        match &msg {
            PeerMsg::EnqueueAnswer(env) => {
                let rid = env.request_id;
                ensure!(
                    !self.call_waiting.contains_key(&rid),
                    "the answer to call {rid} went to the answer queue while the caller waits"
                );
                let m = &self.models[si];
                let req = m
                    .reqs
                    .get(&rid)
                    .ok_or_else(|| format!("answer sent on for unknown request {rid}"))?;
                let o = req
                    .outcome
                    .as_ref()
                    .ok_or_else(|| format!("answer sent on for open request {rid}"))?;
                ensure!(
                    o.offset < m.durable || req.call && m.call_durable(o.offset),
                    "answer {} sent on before it is durable",
                    o.answer_id
                );
                ensure!(
                    !o.routed,
                    "answer {} sent on twice in one boot",
                    o.answer_id
                );
                ensure!(
                    !req.answer_acked,
                    "answer {} sent on after its ack",
                    o.answer_id
                );
                let by_hub =
                    matches!(&o.body, AnswerBody::Refusal { code, .. } if code.is_hub_only());
                let from = if by_hub {
                    ParticipantId::new("HUB")
                } else {
                    req.provider.clone()
                };
                ensure!(
                    env.id == o.answer_id
                        && env.kind == req.kind
                        && env.from == from
                        && env.to == req.consumer
                        && env.body == o.body
                        && env.time_ms == o.time_ms
                        && env.test == req.test
                        && env.transaction == req.transaction
                        && env.deliveries == req.answer_deliveries
                        && to == QueueId::Answers(req.consumer.clone()).shard(self.n),
                    "envelope {env:?} to shard {to} does not match {req:?}"
                );
                let expected = o.payload.clone();
                let got = self.resolve(s, &env.payload, env.id)?;
                ensure!(
                    got == expected,
                    "answer {} sent on with another payload",
                    env.id
                );
                self.models[si]
                    .reqs
                    .get_mut(&rid)
                    .unwrap()
                    .outcome
                    .as_mut()
                    .unwrap()
                    .routed = true;
            }
            PeerMsg::AnswerDelivered { request_id, count } => {
                ensure!(
                    to == request_id.shard(),
                    "delivery report to the wrong shard"
                );
                let m = &mut self.models[si];
                let (id, a) = m
                    .answers
                    .iter_mut()
                    .find(|(_, a)| a.envelope.request_id == *request_id)
                    .ok_or_else(|| {
                        format!("delivery of an answer to {request_id} not queued here")
                    })?;
                ensure!(
                    a.place == MPlace::Ready,
                    "answer {id} delivered while {:?}",
                    a.place
                );
                let (id, order, to) = (*id, a.order, a.envelope.to.clone());
                ensure!(
                    m.first_ready(&QueueId::Answers(to), &ctx.released)
                        .is_none_or(|f| order <= f),
                    "answer {id} handed out before an older ready one (FIFO)"
                );
                let a = m.answers.get_mut(&id).unwrap();
                a.deliveries += 1;
                ensure!(
                    *count == a.deliveries,
                    "answer {id} delivery {} reported as {count}",
                    a.deliveries
                );
                a.place = MPlace::Handing;
                ctx.handing.insert(id);
            }
            PeerMsg::AnswerAcked { request_id, ack } => {
                ensure!(to == request_id.shard(), "ack report to the wrong shard");
                ensure!(
                    *ack == ctx.token.map(|token| AckRoute { shard: s, token }),
                    "ack of the answer to {request_id} reported with route {ack:?}"
                );
                ensure!(
                    ctx.expect_answer_acked == Some(*request_id),
                    "ack of the answer to {request_id} reported without the consumer's ack"
                );
                ctx.expect_answer_acked = None;
            }
            PeerMsg::AnswerAckAgain {
                answer_id,
                consumer,
                ack,
            } => {
                let token = ctx.token.expect("sent for a command");
                ensure!(
                    to == answer_id.shard()
                        && *ack == AckRoute { shard: s, token }
                        && matches!(&ctx.input, CtxInput::Command { caller, command: Command::Ack { id, .. } }
                            if caller == consumer && id == answer_id)
                        && matches!(
                            self.pending[&token].expect,
                            Expect::AckAnswer { again: true }
                        ),
                    "repeated ack of answer {answer_id} sent on as {msg:?} to {to}"
                );
            }
            PeerMsg::AnswerAckSettled { token, result } => {
                self.check_settled(ctx, *token, result)?
            }
        }
        self.channels[s as usize * self.n as usize + to as usize].push_back(msg);
        Ok(())
    }

    /// The request's shard settles a consumer's answer ack: with its own
    /// failure, or with what the model says, and an `Ok` only once the
    /// ack's record (everything appended before the settle) is durable.
    fn check_settled(
        &mut self,
        ctx: &mut StepCtx,
        token: Token,
        result: &Result<(), HubError>,
    ) -> Check {
        let s = ctx.shard;
        let si = s as usize;
        if let Some(failed) = self.shards[si].failed() {
            // Refused by a failed shard: waiting here, or arriving after.
            ensure!(
                result.as_ref().err() == Some(failed),
                "answer ack {token} settled {result:?} by failed shard {s}"
            );
            self.settling.remove(&token);
            return Ok(());
        }
        let log_end = self.logs[si].records.len() as u64;
        let durable = self.models[si].durable;
        let (end, want) = match ctx.settle.take() {
            Some((t, want)) if t == token => (log_end, want),
            other => {
                ctx.settle = other;
                let (shard, end, want) = self
                    .settling
                    .remove(&token)
                    .ok_or_else(|| format!("answer ack {token} settled, but none waits"))?;
                ensure!(
                    shard == s,
                    "answer ack {token} settled by shard {s}, not {shard}"
                );
                (end, want)
            }
        };
        ensure!(
            same_result(result, &want),
            "answer ack {token} settled {result:?}, the model says {want:?}"
        );
        ensure!(
            result.is_err() || end <= durable,
            "answer ack {token} settled before its record is durable (log end {end}, durable {durable})"
        );
        Ok(())
    }

    /// The bytes of a payload: in the message, or read from the log of the
    /// shard that owns it, which must still hold that record.
    pub fn resolve(&self, owner: u16, payload: &Payload, id: MessageId) -> Result<Bytes, String> {
        match payload {
            Payload::Bytes(b) => Ok(b.clone()),
            Payload::AtOffset(o) => {
                let log = &self.logs[owner as usize];
                ensure!(
                    *o >= log.retained_from,
                    "payload of {id} at offset {o} of shard {owner} is below the retention floor {}: retention dropped a payload still needed",
                    log.retained_from
                );
                match log.records.get(*o as usize) {
                    Some(Record::Request(r)) if r.id == id => Ok(r.payload.clone()),
                    Some(Record::Answer(a)) if a.id == id => Ok(a.payload.clone()),
                    other => Err(format!(
                        "payload of {id} points at offset {o} of shard {owner}, which holds {other:?}"
                    )),
                }
            }
        }
    }
}

/// A request's lease (or the reader holding it) ended without an ack:
/// deliver again, after `delay_ms`, or dead-letter it once out of deliveries.
fn end_request_lease(
    m: &mut ShardModel,
    ctx: &mut StepCtx,
    id: MessageId,
    delay_ms: u64,
    deliveries_max: u32,
) {
    let r = m.reqs.get_mut(&id).expect("leased request");
    if r.deliveries >= deliveries_max {
        r.place = Some(MPlace::Ready);
        ctx.released.insert(id);
        ctx.must_end.insert(id);
    } else if delay_ms == 0 {
        r.place = Some(MPlace::Ready);
        ctx.released.insert(id);
    } else {
        r.place = Some(MPlace::Delayed {
            until_ms: ctx.now + delay_ms,
        });
    }
}

/// A delivery's record (`Delivered`) is called for: its request is ready,
/// open, the oldest ready one of its queue, and counted one up.
fn check_delivered(m: &ShardModel, ctx: &mut StepCtx, e: &EventRecord) -> Check {
    let req = m
        .reqs
        .get(&e.request_id)
        .ok_or_else(|| format!("event {e:?} for an unknown request"))?;
    ensure!(
        req.place == Some(MPlace::Ready) && req.open(),
        "request {} delivered while {:?} (outcome {:?})",
        req.id,
        req.place,
        req.outcome.as_ref().map(|o| o.answer_id)
    );
    let first = m.first_ready(&QueueId::Requests(req.kind.clone()), &ctx.released);
    ensure!(
        first.is_none_or(|f| req.order <= f),
        "request {} handed out before an older ready one (FIFO)",
        req.id
    );
    ensure!(
        e.count == req.deliveries + 1,
        "delivery {} of {} counted {}",
        req.deliveries + 1,
        req.id,
        e.count
    );
    ctx.handing.insert(req.id);
    Ok(())
}

/// A sender's message is stored with a seal: its digest, and its
/// sender's signature when it `carries` one (no hub receipt signature:
/// the simulated hub has no key).
fn check_seal(seal: Option<&Seal>, digest: Digest, carries: bool) -> Check {
    let seal = seal.ok_or("stored without a seal")?;
    ensure!(
        seal.digest == digest,
        "sealed with digest {:?}",
        seal.digest
    );
    ensure!(
        seal.signature.is_some() == carries && seal.receipt_signature.is_none(),
        "sealed with {:?} and {:?}, the sender's signature expected: {carries}",
        seal.signature,
        seal.receipt_signature
    );
    Ok(())
}

impl World {
    /// Every receipt an output carries is signed by the hub's key (alone
    /// or in its step's tree, docs/adr/0023) and names the message it goes
    /// with; a new acceptance always has one (the simulated hub has a key).
    fn check_receipts(&mut self, o: &Output) -> Check {
        let mut receipts: Vec<(&Receipt, MessageId, Option<MessageId>)> = Vec::new();
        fn answer(d: &Delivery) -> Option<(&Receipt, MessageId, Option<MessageId>)> {
            d.receipt.as_deref().map(|r| (r, d.id, d.reply_to))
        }
        match o {
            Output::Reply {
                result: Ok(reply), ..
            } => match reply {
                ShardReply::Accepted {
                    id,
                    duplicate,
                    receipt,
                    ..
                } => {
                    ensure!(
                        *duplicate || receipt.is_some(),
                        "accepted {id} without a receipt"
                    );
                    receipts.extend(receipt.as_deref().map(|r| (r, *id, None)));
                }
                ShardReply::Answer(d) => receipts.extend(answer(d)),
                ShardReply::Messages(ds) => receipts.extend(ds.iter().filter_map(answer)),
                _ => {}
            },
            Output::Deliver { delivery, .. } => receipts.extend(answer(delivery)),
            Output::ToShard {
                msg: PeerMsg::EnqueueAnswer(e),
                ..
            } => receipts.extend(e.receipt.as_deref().map(|r| (r, e.id, Some(e.request_id)))),
            _ => {}
        }
        for (r, id, reply_to) in receipts {
            ensure!(
                r.message_id == id && r.reply_to == reply_to,
                "receipt of {} (reply to {:?}) on {id}",
                r.message_id,
                r.reply_to
            );
            gonets_trust::verify_receipt(r, &self.hub)
                .map_err(|e| format!("receipt of {id} does not verify: {e}"))?;
            self.stats.receipts_checked += 1;
            self.stats.receipts_in_trees += u64::from(r.proof.is_some());
        }
        Ok(())
    }
}
