//! The simulated clients: consumers that send, call, fetch and ack answers;
//! providers that fetch, subscribe, ack, nack and answer; an operator; and
//! bad operations that must get their typed errors. Every operation's reply
//! is predicted from the model before the shard sees it.

use crate::formats;
use crate::model::{audits, terminal_kind, MPlace, ShardModel};
use crate::signing::{self, SignMode};
use crate::world::{ensure, Check, CtxInput, StepCtx, World};
use bytes::Bytes;
use gonets_engine::record::{
    AnswerBody, AnswerRecord, Digest, EventKind, Record, RequestRecord, Seal, TEXT_BYTES_MAX,
};
use gonets_engine::registry::{Mode, Signatures};
use gonets_engine::shard::{Command, Input, NewRequest, PeerMsg, ReaderId, ShardReply, Token};
use gonets_types::error::HubError;
use gonets_types::ids::{DataKindId, MessageId, ParticipantId, QueueId};
use gonets_types::refusal::RefusalCode;
use rand::Rng;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// What a client does.
#[derive(Clone, Debug)]
pub enum Role {
    /// Sends requests of these kinds and reads its answers.
    Consumer { kinds: Vec<DataKindId> },
    /// Serves these kinds.
    Provider { kinds: Vec<DataKindId> },
    /// Reads histories and queue stats.
    Operator,
}

/// One client session (a participant's connection).
#[derive(Debug)]
pub struct Client {
    pub id: ParticipantId,
    pub role: Role,
    /// The session's reader; a new one after every lost connection.
    pub reader: ReaderId,
    /// Messages this session believes it holds a lease on.
    pub held: BTreeMap<MessageId, QueueId>,
    /// Provider: requests seen and not yet answered.
    pub work: BTreeSet<MessageId>,
    /// Provider: requests answered lately (to answer again, wrongly).
    pub done: VecDeque<MessageId>,
}

/// How a request reached its consumer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Seen {
    /// This answer was handed over.
    Answer(MessageId),
    /// The call was told `DeadlineExceeded`.
    CallExpired,
}

/// What the clients were told; survives crashes, as a client's memory does.
#[derive(Debug, Default)]
pub struct Knowledge {
    /// Requests whose acceptance a consumer received, with their times.
    pub accepted: BTreeMap<MessageId, u64>,
    /// Latest acceptance per (consumer, kind, idempotency key).
    pub keys: BTreeMap<(ParticipantId, DataKindId, String), (MessageId, u64)>,
    /// Answers a provider was told are durable.
    pub answered: BTreeMap<MessageId, AnswerBody>,
    /// Requests acked by a provider (while the ack stands).
    pub provider_acked: BTreeSet<MessageId>,
    /// How each request reached its consumer.
    pub seen: BTreeMap<MessageId, Seen>,
    /// Answer ids acked by their consumer (while the ack stands).
    pub consumer_acked: BTreeSet<MessageId>,
    /// Request and answer ids whose ack was answered `Done`: a crash may
    /// not undo them (every acknowledgement waits for durability).
    pub acks_replied: BTreeSet<MessageId>,
}

/// The predicted reply to an operation.
#[derive(Clone, Debug)]
pub enum Expect {
    /// This typed error, at once.
    Fail(HubError),
    /// `Accepted`, once the request is durable.
    NewRequest,
    /// The call's answer once durable, or `DeadlineExceeded` at the budget.
    NewCall,
    /// The earlier acceptance (at once when that one is durable).
    Duplicate { original: MessageId, durable: bool },
    /// A call repeating a key (docs/protocol.md, "Repeats"): `reply` once
    /// the record at `offset` is durable (at once when it is already).
    CallRepeat {
        original: MessageId,
        reply: RepeatReply,
        offset: u64,
        durable: bool,
    },
    /// Messages at once (some, or none).
    Messages { nonempty: bool },
    /// A long-poll: messages when some come, none when the wait ends.
    Wait,
    /// `Done` at once.
    Done,
    /// `Done` once everything appended so far is durable (at once when it
    /// is already): an ack of a request already acked or answered.
    Settled { durable: bool },
    /// `Done` once the nack's records are durable.
    Nacked,
    /// `Done` once the ack is durable.
    AckRequest,
    /// `send_requests`: one slot per request, once everything appended so
    /// far is durable (`now`: at once, nothing appended and all durable).
    SendMany { slots: Vec<Slot>, now: bool },
    /// `ack_many`: the acks of `acked` in one record, and `refused` in the
    /// reply, once everything appended so far is durable (`now`: at once,
    /// nothing appended and everything durable).
    AckMany {
        acked: Vec<MessageId>,
        refused: Vec<(MessageId, HubError)>,
        now: bool,
    },
    /// `nack_many`: the nacks of `nacked` (in one record for a requests
    /// queue), and `refused` in the reply, once everything appended so far
    /// is durable (`now`: at once; an answer queue's always is).
    NackMany {
        nacked: Vec<MessageId>,
        refused: Vec<(MessageId, HubError)>,
        now: bool,
    },
    /// The request's shard is told, and settles it: `Done` only once the
    /// ack's record is durable there. `again`: the answer is no longer
    /// queued (a repeated ack): `Done` if it is acked, else `NotFound`.
    AckAnswer { again: bool },
    /// `Done` once the answer is durable.
    Answer,
    /// This request's history.
    Status(MessageId),
    /// This queue's counters.
    Stats(QueueId),
    /// A read on a shard whose log failed: it answers at once from memory
    /// (reads go on so that an operator can drain and diagnose), but what
    /// it returns is not modelled past the failure.
    ReadAfterFailure,
}

impl Expect {
    /// The reply comes in the same step.
    pub fn immediate(&self) -> bool {
        matches!(
            self,
            Expect::Fail(_)
                | Expect::Messages { .. }
                | Expect::Done
                | Expect::Settled { durable: true }
                | Expect::Status(_)
                | Expect::Stats(_)
                | Expect::ReadAfterFailure
                | Expect::Duplicate { durable: true, .. }
                | Expect::CallRepeat { durable: true, .. }
                | Expect::AckMany { now: true, .. }
                | Expect::NackMany { now: true, .. }
                | Expect::SendMany { now: true, .. }
        )
    }

    /// The reply waits for the log only: it must come once everything the
    /// operation appended is durable.
    pub fn deferred(&self) -> bool {
        matches!(
            self,
            Expect::NewRequest
                | Expect::AckRequest
                | Expect::Nacked
                | Expect::Settled { durable: false }
                | Expect::Answer
                | Expect::Duplicate { durable: false, .. }
                | Expect::CallRepeat { durable: false, .. }
                | Expect::AckMany { now: false, .. }
                | Expect::NackMany { now: false, .. }
                | Expect::SendMany { now: false, .. }
        )
    }
}

/// What one request of a `send_requests` gets.
#[derive(Clone, Debug)]
pub enum Slot {
    /// Stored: the `k`th request record the batch appends.
    New(usize),
    /// The acceptance of an earlier send.
    Dup(MessageId),
    /// The acceptance of the earlier slot `j` of this batch (same key).
    SameAs(usize),
    /// Refused with this error.
    Fail(HubError),
}

/// What a repeated call gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RepeatReply {
    /// The original's answer.
    Answer,
    /// `DeadlineExceeded`: the original expired.
    Expired,
    /// `Duplicate` naming the original.
    Duplicate,
}

/// An operation waiting for its reply.
#[derive(Debug)]
pub struct Pending {
    pub client: usize,
    pub shard: u16,
    pub caller: ParticipantId,
    /// The command as the model sees it: unsigned (`sign` says how the
    /// shard got it signed).
    pub command: Command,
    /// How the workload signed `command` (`signing.rs`).
    pub sign: SignMode,
    pub expect: Expect,
    pub reader: ReaderId,
    /// Shard time when it was taken.
    pub issued_now: u64,
    /// Log end after its step: once durable there, a deferred reply is due.
    pub release_offset: u64,
    /// The request a send created.
    pub request_id: Option<MessageId>,
    /// The requests a `send_requests` created, in order.
    pub batch_ids: Vec<MessageId>,
    /// The record it appended (request, ack event, answer).
    pub record_offset: Option<u64>,
}

fn same_error(want: &HubError, got: &HubError) -> bool {
    match (want, got) {
        (HubError::AlreadyAnswered(a), HubError::AlreadyAnswered(b)) => a == b,
        (
            HubError::TooLarge {
                size_bytes: a,
                size_bytes_max: b,
            },
            HubError::TooLarge {
                size_bytes: c,
                size_bytes_max: d,
            },
        ) => a == c && b == d,
        (
            HubError::TextTooLarge {
                field: a,
                size_bytes: b,
                ..
            },
            HubError::TextTooLarge {
                field: c,
                size_bytes: d,
                ..
            },
        ) => a == c && b == d,
        (HubError::InvalidFormat { path: a, .. }, HubError::InvalidFormat { path: b, .. }) => {
            a == b
        }
        // Why, when the model knows it (a missing one); any key failure
        // otherwise.
        (HubError::BadSignature(a), HubError::BadSignature(b)) => a.is_empty() || a == b,
        _ => std::mem::discriminant(want) == std::mem::discriminant(got),
    }
}

/// The refusal of a payload that breaks its kind's format at `path` (the
/// validator's reason is not predicted).
fn invalid_format(path: &str) -> HubError {
    HubError::InvalidFormat {
        path: path.to_string(),
        reason: String::new(),
    }
}

/// The refusal of a message without a signature where its kind requires one.
fn missing_signature() -> HubError {
    gonets_trust::SignatureError::Missing.into()
}

/// The refusal of a signature that does not hold (its reason, a key the
/// sender lacks or one that does not match, is not predicted).
fn bad_signature() -> HubError {
    HubError::BadSignature(String::new())
}

/// What the door says of a message signed as `sign` by `caller` under
/// `rule`: a missing signature where required, or one that does not hold.
fn signature_refusal(
    rule: Signatures,
    caller: &ParticipantId,
    sign: SignMode,
    at: SignatureCheck,
) -> Option<HubError> {
    match at {
        SignatureCheck::Missing if rule == Signatures::Required && !sign.signed() => {
            Some(missing_signature())
        }
        SignatureCheck::Holds if sign.carries() && !signing::holds(caller, sign) => {
            Some(bad_signature())
        }
        _ => None,
    }
}

/// The two places of the door's signature rule (docs/adr/0019): whether
/// one is there, right after the cheap rules it needs no digest for, and
/// whether it holds, after every other cheap rule.
#[derive(Clone, Copy, PartialEq, Eq)]
enum SignatureCheck {
    Missing,
    Holds,
}

/// The refusal of a text field over its bound, named as on the wire.
fn text_too_large(field: &str, size_bytes: usize) -> HubError {
    HubError::TextTooLarge {
        field: field.to_string(),
        size_bytes: size_bytes as u64,
        size_bytes_max: TEXT_BYTES_MAX as u64,
    }
}

/// Bytes a record takes in the log, encoded as the log stores it.
fn encoded_len(record: Record) -> usize {
    let mut buf = Vec::new();
    record.encode(&mut buf);
    buf.len()
}

/// The refusal of a record over the log's limit: the payload, and the
/// largest one that would have fitted.
fn record_too_large(payload_len: usize, record_bytes: usize, max: usize) -> HubError {
    HubError::TooLarge {
        size_bytes: payload_len as u64,
        size_bytes_max: payload_len.saturating_sub(record_bytes - max) as u64,
    }
}

const PROVIDER_CODES: [RefusalCode; 4] = [
    RefusalCode::AccessDenied,
    RefusalCode::NoData,
    RefusalCode::UnknownRequestDescription,
    RefusalCode::Failure,
];

impl World {
    // ---- predictions: the rules of docs/engine.md §3, read off the model ----

    fn may_read(&self, s: u16, caller: &ParticipantId, queue: &QueueId) -> Result<(), HubError> {
        let allowed = match queue {
            QueueId::Requests(k) => {
                let kind = self
                    .registry
                    .kind(k)
                    .ok_or_else(|| HubError::UnknownDataKind(k.to_string()))?;
                &kind.provider == caller
            }
            QueueId::Answers(p) => p == caller,
        };
        if !allowed {
            return Err(HubError::NotAuthorized(String::new()));
        }
        if queue.shard(self.n) != s {
            return Err(HubError::Malformed(String::new()));
        }
        Ok(())
    }

    fn predict_answer(
        &self,
        s: u16,
        caller: &ParticipantId,
        request_id: MessageId,
        body: &AnswerBody,
        payload: &[u8],
        sign: SignMode,
    ) -> Expect {
        let payload_len = payload.len();
        let m = &self.models[s as usize];
        if request_id.shard() != s {
            return Expect::Fail(HubError::NotFound);
        }
        // One that left memory is the archive's: nothing more happens to it.
        let Some(r) = m.reqs.get(&request_id).filter(|r| r.in_memory) else {
            return Expect::Fail(HubError::NotFound);
        };
        if &r.provider != caller {
            return Expect::Fail(HubError::NotAuthorized(String::new()));
        }
        if !r.released && !r.call {
            return Expect::Fail(HubError::NotFound);
        }
        if let Some(o) = &r.outcome {
            return Expect::Fail(if terminal_kind(&o.body) == EventKind::Expired {
                HubError::DeadlineExceeded
            } else {
                HubError::AlreadyAnswered(request_id)
            });
        }
        let kind = self.registry.kind(&r.kind).unwrap();
        let limit = u64::from(kind.payload_bytes_max);
        if payload_len as u64 > limit {
            return Expect::Fail(HubError::TooLarge {
                size_bytes: payload_len as u64,
                size_bytes_max: limit,
            });
        }
        let bytes = self.answer_record_len(body, payload_len, sign);
        let max = self.config.record_bytes_max;
        if bytes > max {
            return Expect::Fail(record_too_large(payload_len, bytes, max));
        }
        // Both signature rules at one place for an answer, before its
        // format (`answer_fits`): the digest is taken there anyway.
        for at in [SignatureCheck::Missing, SignatureCheck::Holds] {
            if let Some(e) = signature_refusal(kind.signatures, caller, sign, at) {
                return Expect::Fail(e);
            }
        }
        // Data only: a refusal carries no payload, so no format.
        if matches!(body, AnswerBody::Data) && !kind.answer_format.is_bytes() {
            if let Some(path) = formats::answer_refusal(payload) {
                return Expect::Fail(invalid_format(path));
            }
        }
        if !r.waiter && self.answer_queue_full(m, &r.consumer, payload_len) {
            return Expect::Fail(HubError::QuotaExceeded);
        }
        Expect::Answer
    }

    /// True when one more answer of `payload_len` bytes from the shard of
    /// model `m` would pass its share of `consumer`'s answer bounds while
    /// others are outstanding (ADR 0013).
    fn answer_queue_full(
        &self,
        m: &ShardModel,
        consumer: &ParticipantId,
        payload_len: usize,
    ) -> bool {
        let Some(p) = self.registry.participant(consumer) else {
            return false;
        };
        let (n, bytes) = m.answers_outstanding(consumer);
        let shards = u64::from(self.n);
        n > 0
            && (n + 1 > u64::from(p.answer_queue_messages_max).div_ceil(shards)
                || bytes + payload_len as u64 > p.answer_queue_bytes_max.div_ceil(shards))
    }

    /// Bytes of the answer record `body` with `payload_len` bytes, signed
    /// as `sign`, would be.
    fn answer_record_len(&self, body: &AnswerBody, payload_len: usize, sign: SignMode) -> usize {
        let unsigned = encoded_len(Record::Answer(AnswerRecord {
            id: MessageId::new(self.now, 0, 1),
            request_id: MessageId::new(self.now, 0, 2),
            body: body.clone(),
            time_ms: self.now,
            // Every answer a participant sends is stored with its digest
            // (the simulated hub has no key: no receipt signature).
            seal: Some(Box::new(unsigned_seal())),
            payload: Bytes::from(vec![0u8; payload_len]),
        }));
        unsigned + seal_signature_bytes(sign)
    }

    /// Bytes of the request record of `r` from `consumer`, signed as
    /// `sign`, would be.
    fn request_record_len(
        &self,
        r: &NewRequest,
        consumer: &ParticipantId,
        call: bool,
        sign: SignMode,
    ) -> usize {
        let kind = self.registry.kind(&r.kind).expect("known kind");
        let unsigned = encoded_len(Record::Request(RequestRecord {
            id: MessageId::new(self.now, 0, 1),
            kind: r.kind.clone(),
            consumer: consumer.clone(),
            provider: kind.provider.clone(),
            time_ms: self.now,
            deadline_ms: self.now + kind.deadline_ms,
            test: r.test,
            call,
            transaction: r.transaction.clone(),
            idempotency_key: r.idempotency_key.clone(),
            seal: Some(Box::new(unsigned_seal())),
            payload: r.payload.clone(),
        }));
        unsigned + seal_signature_bytes(sign)
    }

    /// What a `send_requests` gets (`shard/batch.rs`): the whole batch
    /// refused, or each request as a `send_request` would be, after the
    /// ones before it in the batch (their keys, their room in the queue).
    fn predict_send_many(
        &self,
        s: u16,
        caller: &ParticipantId,
        rs: &[NewRequest],
        sign: SignMode,
        now: u64,
    ) -> Expect {
        let m = &self.models[s as usize];
        if let Some(e) = &m.failed {
            return Expect::Fail(e.clone());
        }
        if self.registry.participant(caller).is_none() {
            return Expect::Fail(HubError::Unauthenticated);
        }
        if gonets_types::check_send_batch(rs).is_err() {
            return Expect::Fail(HubError::Malformed(String::new()));
        }
        // The batch's one signature, checked once before any request:
        // one that does not hold refuses the whole batch.
        if sign.carries() && !signing::holds(caller, sign) {
            return Expect::Fail(bad_signature());
        }
        // Each request is then signed by the batch's signature, or not.
        let slot_sign = if sign.signed() {
            SignMode::Covered
        } else {
            SignMode::Unsigned
        };
        let mut slots: Vec<Slot> = Vec::new();
        let (mut new, mut new_bytes) = (0, 0);
        for (i, r) in rs.iter().enumerate() {
            let single = self.predict(s, caller, &Command::SendRequest(r.clone()), slot_sign, now);
            let earlier = r.idempotency_key.as_ref().and_then(|key| {
                (0..i).find(|j| {
                    rs[*j].idempotency_key.as_ref() == Some(key)
                        && matches!(slots[*j], Slot::New(_) | Slot::SameAs(_))
                })
            });
            let slot = match single {
                Expect::Fail(e) if e != HubError::QuotaExceeded => Slot::Fail(e),
                _ if earlier.is_some() => Slot::SameAs(earlier.expect("some")),
                Expect::Duplicate { original, .. } => Slot::Dup(original),
                _ if self.full_after(s, r, new, new_bytes) => Slot::Fail(HubError::QuotaExceeded),
                _ => {
                    new += 1;
                    new_bytes += r.payload.len() as u64;
                    Slot::New(new - 1)
                }
            };
            slots.push(slot);
        }
        // An audited refusal in a slot appends its record (unless the rate
        // bound holds it back): the reply then waits for it too.
        let mut audit = m.audit.clone();
        let appends: usize = slots
            .iter()
            .filter(|slot| matches!(slot, Slot::Fail(e) if audits(&Command::SendRequests(Vec::new()), e)))
            .map(|_| audit.admit(now))
            .sum();
        let log_end = self.logs[s as usize].records.len() as u64;
        let now = new == 0 && appends == 0 && log_end <= m.durable;
        Expect::SendMany { slots, now }
    }

    /// True when `r`'s queue on shard `s` has no room once `more` requests
    /// of `more_bytes` (earlier in its batch) are added (as `predict`
    /// counts the bounds).
    fn full_after(&self, s: u16, r: &NewRequest, more: usize, more_bytes: u64) -> bool {
        let m = &self.models[s as usize];
        let kind = self.registry.kind(&r.kind).expect("checked kind");
        let queue = QueueId::Requests(r.kind.clone());
        let committing = m
            .reqs
            .values()
            .filter(|q| q.kind == r.kind && !q.released && !q.call)
            .count();
        m.places(&queue).count() + committing + more >= kind.queue_messages_max as usize
            || m.waiting_bytes(&r.kind) + more_bytes + r.payload.len() as u64 > kind.queue_bytes_max
    }

    /// What an `ack_many` gets (`shard/batch.rs`): the whole batch refused,
    /// or each id acked, repeated (acked or answered before, or earlier in
    /// the list) or refused `NotFound`.
    fn predict_ack_many(
        &self,
        s: u16,
        caller: &ParticipantId,
        queue: &QueueId,
        ids: &[MessageId],
        reader: ReaderId,
    ) -> Expect {
        let m = &self.models[s as usize];
        if ids.is_empty() || ids.len() > gonets_types::BATCH_MESSAGES_MAX {
            return Expect::Fail(HubError::Malformed(String::new()));
        }
        if let Err(e) = self.may_read(s, caller, queue) {
            return Expect::Fail(e);
        }
        let QueueId::Requests(k) = queue else {
            return Expect::Fail(HubError::Malformed(String::new()));
        };
        let (mut acked, mut refused) = (Vec::new(), Vec::new());
        for id in ids {
            let repeat = acked.contains(id)
                || m.reqs
                    .get(id)
                    .is_some_and(|r| r.in_memory && &r.kind == k && (r.acked || !r.open()));
            match m.place(queue, *id) {
                _ if acked.contains(id) => {}
                Some(MPlace::Leased { reader: r, .. }) if r == reader => acked.push(*id),
                Some(_) => refused.push((*id, HubError::NotFound)),
                None if repeat => {}
                None => refused.push((*id, HubError::NotFound)),
            }
        }
        let log_end = self.logs[s as usize].records.len() as u64;
        let now = acked.is_empty() && log_end <= m.durable;
        Expect::AckMany {
            acked,
            refused,
            now,
        }
    }

    /// What a `nack_many` gets (`shard/batch.rs`): the whole batch refused,
    /// or each id nacked when leased to `reader` (and not earlier in the
    /// list), else refused `NotFound`.
    fn predict_nack_many(
        &self,
        s: u16,
        caller: &ParticipantId,
        queue: &QueueId,
        ids: &[MessageId],
        reader: ReaderId,
    ) -> Expect {
        let m = &self.models[s as usize];
        if ids.is_empty() || ids.len() > gonets_types::BATCH_MESSAGES_MAX {
            return Expect::Fail(HubError::Malformed(String::new()));
        }
        if let Err(e) = self.may_read(s, caller, queue) {
            return Expect::Fail(e);
        }
        let (mut nacked, mut refused) = (Vec::new(), Vec::new());
        for id in ids {
            match m.place(queue, *id) {
                Some(MPlace::Leased { reader: r, .. }) if r == reader && !nacked.contains(id) => {
                    nacked.push(*id)
                }
                _ => refused.push((*id, HubError::NotFound)),
            }
        }
        let log_end = self.logs[s as usize].records.len() as u64;
        let now =
            matches!(queue, QueueId::Answers(_)) || (nacked.is_empty() && log_end <= m.durable);
        Expect::NackMany {
            nacked,
            refused,
            now,
        }
    }

    /// What a call repeating the key of `original` gets.
    fn predict_call_repeat(&self, s: u16, original: MessageId) -> Expect {
        let m = &self.models[s as usize];
        let r = &m.reqs[&original];
        let (reply, offset) = match &r.outcome {
            Some(o) if r.call => {
                // Whether the answer's payload may be gone is the shard's
                // own retention floor (the log may not have dropped it yet).
                let shard = &self.shards[s as usize];
                let in_memory = shard
                    .exchange(original)
                    .is_some_and(|ex| ex.outcome.as_ref().is_some_and(|o| o.payload.is_some()));
                if terminal_kind(&o.body) == EventKind::Expired {
                    (RepeatReply::Expired, o.offset)
                } else if !in_memory && o.offset < shard.kept_floor() {
                    (RepeatReply::Duplicate, o.offset)
                } else {
                    (RepeatReply::Answer, o.offset)
                }
            }
            _ => (RepeatReply::Duplicate, r.offset),
        };
        Expect::CallRepeat {
            original,
            reply,
            offset,
            durable: offset < m.durable,
        }
    }

    /// The reply shard `s` must give `caller` for `command` at `now`.
    /// `command` is the unsigned command; `sign` how the shard gets it signed.
    pub fn predict(
        &self,
        s: u16,
        caller: &ParticipantId,
        command: &Command,
        sign: SignMode,
        now: u64,
    ) -> Expect {
        let m = &self.models[s as usize];
        if let Some(e) = &m.failed {
            return match command {
                Command::Status { .. } | Command::QueueStats { .. } | Command::Fetch { .. } => {
                    Expect::ReadAfterFailure
                }
                _ => Expect::Fail(e.clone()),
            };
        }
        let Some(p) = self.registry.participant(caller) else {
            return Expect::Fail(HubError::Unauthenticated);
        };
        let fail = Expect::Fail;
        match command {
            Command::SendRequest(r) | Command::Call(r) => {
                let call = matches!(command, Command::Call(_));
                if r.state_secret {
                    return fail(HubError::StateSecret);
                }
                if !p.roles.consumer {
                    return fail(HubError::NotAuthorized(String::new()));
                }
                let Some(kind) = self.registry.kind(&r.kind) else {
                    return fail(HubError::UnknownDataKind(String::new()));
                };
                if !kind.consumers.contains(caller) {
                    return fail(HubError::NotAuthorized(String::new()));
                }
                if call && kind.mode != Mode::Realtime {
                    return fail(HubError::Malformed(String::new()));
                }
                let max = u64::from(kind.payload_bytes_max);
                if r.payload.len() as u64 > max {
                    return fail(HubError::TooLarge {
                        size_bytes: r.payload.len() as u64,
                        size_bytes_max: max,
                    });
                }
                let texts = [
                    ("idempotency_key", &r.idempotency_key),
                    ("transaction", &r.transaction),
                ];
                for (field, text) in texts {
                    if let Some(t) = text.as_ref().filter(|t| t.len() > TEXT_BYTES_MAX) {
                        return fail(text_too_large(field, t.len()));
                    }
                }
                // A missing signature right after the rules above (no
                // digest or key needed to know it).
                let rule = kind.signatures;
                if let Some(e) = signature_refusal(rule, caller, sign, SignatureCheck::Missing) {
                    return fail(e);
                }
                let bytes = self.request_record_len(r, caller, call, sign);
                let max = self.config.record_bytes_max;
                if bytes > max {
                    return fail(record_too_large(r.payload.len(), bytes, max));
                }
                let queue = QueueId::Requests(r.kind.clone());
                if queue.shard(self.n) != s {
                    return fail(HubError::Malformed(String::new()));
                }
                // Its own expiry: at least 1 ms, never past the kind's deadline.
                if r.expires_in_ms
                    .is_some_and(|ms| ms == 0 || ms > kind.deadline_ms)
                {
                    return fail(HubError::Malformed(String::new()));
                }
                // Its own signature after every other cheap rule, before
                // the format (docs/adr/0019).
                if let Some(e) = signature_refusal(rule, caller, sign, SignatureCheck::Holds) {
                    return fail(e);
                }
                // Its format, last of the door's checks (before a repeat
                // is looked for).
                if !kind.request_format.is_bytes() {
                    if let Some(path) = formats::request_refusal(&r.payload) {
                        return fail(invalid_format(path));
                    }
                }
                if let Some(key) = &r.idempotency_key {
                    let k = (caller.clone(), r.kind.clone(), key.clone());
                    if let Some(original) = m.dedup.get(&k) {
                        let ex = &m.reqs[original];
                        if now < ex.time_ms + self.config.dedup_window_ms && call {
                            return self.predict_call_repeat(s, *original);
                        }
                        if now < ex.time_ms + self.config.dedup_window_ms {
                            return Expect::Duplicate {
                                original: *original,
                                durable: ex.offset < m.durable,
                            };
                        }
                    }
                }
                // Requests still committing count against the bound too.
                let committing = m
                    .reqs
                    .values()
                    .filter(|q| q.kind == r.kind && !q.released && !q.call)
                    .count();
                if m.places(&queue).count() + committing >= kind.queue_messages_max as usize {
                    return fail(HubError::QuotaExceeded);
                }
                if m.waiting_bytes(&r.kind) + r.payload.len() as u64 > kind.queue_bytes_max {
                    return fail(HubError::QuotaExceeded);
                }
                if call {
                    Expect::NewCall
                } else {
                    Expect::NewRequest
                }
            }
            Command::Fetch { queue, wait_ms, .. } => {
                if let Err(e) = self.may_read(s, caller, queue) {
                    return fail(e);
                }
                let ready = m.places(queue).any(|(_, p)| p == MPlace::Ready);
                if ready || *wait_ms == 0 {
                    Expect::Messages { nonempty: ready }
                } else {
                    Expect::Wait
                }
            }
            Command::SendRequests(rs) => self.predict_send_many(s, caller, rs, sign, now),
            Command::AckMany { queue, ids, reader } => {
                self.predict_ack_many(s, caller, queue, ids, *reader)
            }
            Command::NackMany {
                queue, ids, reader, ..
            } => self.predict_nack_many(s, caller, queue, ids, *reader),
            Command::Subscribe { queue, .. } => match self.may_read(s, caller, queue) {
                Err(e) => fail(e),
                Ok(()) => Expect::Done,
            },
            Command::Ack { queue, id, reader } => {
                if let Err(e) = self.may_read(s, caller, queue) {
                    return fail(e);
                }
                match m.place(queue, *id) {
                    Some(MPlace::Leased { reader: r, .. }) if r == *reader => match queue {
                        QueueId::Requests(_) => Expect::AckRequest,
                        QueueId::Answers(_) => Expect::AckAnswer { again: false },
                    },
                    Some(_) => fail(HubError::NotFound),
                    None => match queue {
                        QueueId::Requests(k)
                            if m.reqs.get(id).is_some_and(|r| {
                                r.in_memory && &r.kind == k && (r.acked || !r.open())
                            }) =>
                        {
                            let log_end = self.logs[s as usize].records.len() as u64;
                            Expect::Settled {
                                durable: log_end <= m.durable,
                            }
                        }
                        QueueId::Answers(_) if id.shard() < self.n => {
                            Expect::AckAnswer { again: true }
                        }
                        _ => fail(HubError::NotFound),
                    },
                }
            }
            Command::Nack {
                queue, id, reader, ..
            } => {
                if let Err(e) = self.may_read(s, caller, queue) {
                    return fail(e);
                }
                match m.place(queue, *id) {
                    Some(MPlace::Leased { reader: r, .. }) if r == *reader => match queue {
                        QueueId::Requests(_) => Expect::Nacked,
                        QueueId::Answers(_) => Expect::Done,
                    },
                    _ => fail(HubError::NotFound),
                }
            }
            Command::SendResponse {
                request_id,
                payload,
                ..
            } => self.predict_answer(s, caller, *request_id, &AnswerBody::Data, payload, sign),
            Command::SendRefusal {
                request_id,
                code,
                reason,
            } => {
                if code.is_hub_only() {
                    return fail(HubError::Malformed(String::new()));
                }
                if reason.len() > TEXT_BYTES_MAX {
                    return fail(text_too_large("reason", reason.len()));
                }
                let body = AnswerBody::Refusal {
                    code: *code,
                    reason: reason.clone(),
                };
                self.predict_answer(s, caller, *request_id, &body, &[], sign)
            }
            Command::Status { id } => {
                if id.shard() != s {
                    return fail(HubError::NotFound);
                }
                let rid = m.answer_ids.get(id).copied().unwrap_or(*id);
                match m.reqs.get(&rid) {
                    Some(r)
                        if p.roles.operator || &r.consumer == caller || &r.provider == caller =>
                    {
                        Expect::Status(rid)
                    }
                    _ => fail(HubError::NotFound),
                }
            }
            // The model sees commands unsigned (`issue_to` wraps them for
            // the shard); a wrapper inside is not signable.
            Command::Signed { .. } => fail(HubError::Malformed(String::new())),
            // Served by sessions from the attachment store, never a shard.
            Command::UploadBegin { .. }
            | Command::UploadChunk { .. }
            | Command::UploadStatus { .. }
            | Command::UploadFinish { .. }
            | Command::ReadAttachment { .. } => fail(HubError::Malformed(String::new())),
            Command::QueueStats { queue } => {
                let allowed = if p.roles.operator {
                    if queue.shard(self.n) == s {
                        Ok(())
                    } else {
                        Err(HubError::Malformed(String::new()))
                    }
                } else {
                    self.may_read(s, caller, queue)
                };
                match allowed {
                    Ok(()) => Expect::Stats(queue.clone()),
                    Err(e) => fail(e),
                }
            }
        }
    }

    // ---- operations ----

    /// Counts a refusal `QuotaExceeded` of `command` on shard `si` that a
    /// byte quota or an answer bound made (ADR 0013).
    fn count_quota_refusal(&mut self, si: usize, command: &Command) {
        match command {
            Command::SendRequest(r) | Command::Call(r) => {
                let max = self.registry.kind(&r.kind).expect("known").queue_bytes_max;
                let waiting = self.models[si].waiting_bytes(&r.kind);
                if waiting + r.payload.len() as u64 > max {
                    self.stats.byte_quota_refusals += 1;
                }
            }
            Command::SendResponse { .. } | Command::SendRefusal { .. } => {
                self.stats.answer_quota_refusals += 1;
            }
            _ => {}
        }
    }

    /// Counts the payloads `command` must have refused `InvalidFormat`
    /// (one, or the slots of a batch), requests and answers apart.
    fn count_format_refusals(&mut self, command: &Command, expect: &Expect) {
        let invalid = |e: &HubError| matches!(e, HubError::InvalidFormat { .. });
        match (command, expect) {
            (Command::SendResponse { .. }, Expect::Fail(e)) if invalid(e) => {
                self.stats.answer_format_refusals += 1
            }
            (_, Expect::Fail(e)) if invalid(e) => self.stats.request_format_refusals += 1,
            (_, Expect::SendMany { slots, .. }) => {
                let refused = slots
                    .iter()
                    .filter(|s| matches!(s, Slot::Fail(e) if invalid(e)))
                    .count();
                self.stats.request_format_refusals += refused as u64;
            }
            _ => {}
        }
    }

    /// Counts the messages `command` must have refused `BadSignature` (one,
    /// every request of a batch refused whole, or the slots of a batch),
    /// requests and answers apart.
    fn count_signature_refusals(&mut self, command: &Command, expect: &Expect) {
        let bad = |e: &HubError| matches!(e, HubError::BadSignature(_));
        let refused = match expect {
            Expect::Fail(e) if bad(e) => 1,
            Expect::SendMany { slots, .. } => slots
                .iter()
                .filter(|s| matches!(s, Slot::Fail(e) if bad(e)))
                .count(),
            _ => 0,
        } as u64;
        match command {
            Command::SendResponse { .. } | Command::SendRefusal { .. } => {
                self.stats.answer_signature_refusals += refused
            }
            Command::SendRequests(rs) if matches!(expect, Expect::Fail(_)) => {
                self.stats.request_signature_refusals += refused * rs.len() as u64
            }
            _ => self.stats.request_signature_refusals += refused,
        }
    }

    /// How the workload signs `command` (`signing::pick`): a signable
    /// command as its data kind asks, anything else not at all.
    fn pick_sign_mode(&mut self, command: &Command) -> SignMode {
        let kind = match command {
            Command::SendRequest(r) | Command::Call(r) => Some(r.kind.clone()),
            Command::SendRequests(rs) => rs.first().map(|r| r.kind.clone()),
            Command::SendResponse { request_id, .. } | Command::SendRefusal { request_id, .. } => {
                self.models
                    .get(usize::from(request_id.shard()))
                    .and_then(|m| m.reqs.get(request_id))
                    .map(|r| r.kind.clone())
            }
            _ => return SignMode::Unsigned,
        };
        let required = kind
            .and_then(|k| self.registry.kind(&k))
            .is_some_and(|k| k.signatures == Signatures::Required);
        signing::pick(&mut self.rng.workload, required)
    }

    /// The shard an operation goes to, as the runtime routes it.
    pub fn route(&self, command: &Command) -> u16 {
        // The shard rule that ships (`Command::shard`, used by the session
        // and the clients); every id the workload names is one a simulated
        // shard made.
        command
            .shard(self.n)
            .expect("the workload names only ids its shards made")
    }

    /// Sends `command` from client `c` (as `caller`) to shard `s`.
    pub fn issue_to(&mut self, c: usize, caller: ParticipantId, s: u16, command: Command) -> Check {
        let si = s as usize;
        let now = self.shards[si].now_ms().max(self.now - self.skew);
        let sign = self.pick_sign_mode(&command);
        let expect = self.predict(s, &caller, &command, sign, now);
        if let Expect::Fail(HubError::TooLarge { size_bytes_max, .. }) = &expect {
            let kind_max = match &command {
                Command::SendRequest(r) | Command::Call(r) => self.registry.kind(&r.kind),
                Command::SendResponse { request_id, .. }
                | Command::SendRefusal { request_id, .. } => self.models[si]
                    .reqs
                    .get(request_id)
                    .and_then(|r| self.registry.kind(&r.kind)),
                _ => None,
            }
            .map(|k| u64::from(k.payload_bytes_max));
            if kind_max.is_some_and(|k| *size_bytes_max < k) {
                self.stats.records_too_large += 1;
            }
        }
        if matches!(expect, Expect::Fail(HubError::QuotaExceeded)) {
            self.count_quota_refusal(si, &command);
        }
        self.count_format_refusals(&command, &expect);
        self.count_signature_refusals(&command, &expect);
        let token = self.next_token;
        self.next_token += 1;
        let reader = match &command {
            Command::Fetch { reader, .. }
            | Command::Subscribe { reader, .. }
            | Command::Ack { reader, .. }
            | Command::Nack { reader, .. }
            | Command::NackMany { reader, .. } => *reader,
            _ => self.clients[c].reader,
        };
        match (&command, &expect) {
            (Command::Fetch { queue, wait_ms, .. }, Expect::Wait) => {
                let until = now + (*wait_ms).min(self.config.wait_ms_max);
                self.waits.insert(token, (s, queue.clone(), reader, until));
            }
            (Command::Subscribe { queue, credits, .. }, Expect::Done) => {
                // Credits count before the step: pushes may come in it.
                let c = self.subs.entry((queue.clone(), reader)).or_default();
                *c = c.saturating_add(*credits);
            }
            _ => {}
        }
        self.pending.insert(
            token,
            Pending {
                client: c,
                shard: s,
                caller: caller.clone(),
                command: command.clone(),
                sign,
                expect,
                reader,
                issued_now: now,
                release_offset: 0,
                request_id: None,
                batch_ids: Vec::new(),
                record_offset: None,
            },
        );
        self.feed(
            s,
            Input::Command {
                token,
                caller: caller.clone(),
                // Signed for the shard only: the model and the judge see
                // the command as it was and `sign` beside it.
                command: signing::signed(&caller, &command, sign),
            },
            CtxInput::Command { caller, command },
            Some(token),
        )
    }

    /// Sends `command` from client `c`, routed as the runtime would.
    pub fn issue(&mut self, c: usize, command: Command) -> Check {
        let s = self.route(&command);
        let caller = self.clients[c].id.clone();
        self.issue_to(c, caller, s, command)
    }

    fn pick<T: Clone>(&mut self, items: &[T]) -> Option<T> {
        if items.is_empty() {
            None
        } else {
            Some(items[self.rng.workload.gen_range(0..items.len())].clone())
        }
    }

    fn pick_held(&mut self, c: usize) -> Option<(MessageId, QueueId)> {
        let n = self.clients[c].held.len();
        if n == 0 {
            return None;
        }
        let i = self.rng.workload.gen_range(0..n);
        self.clients[c]
            .held
            .iter()
            .nth(i)
            .map(|(id, q)| (*id, q.clone()))
    }

    /// Some request the hub holds or held (ids the clients might know).
    fn pick_request(&mut self) -> Option<MessageId> {
        let s = self.rng.workload.gen_range(0..self.n as usize);
        let n = self.models[s].reqs.len();
        if n == 0 {
            return None;
        }
        let i = self.rng.workload.gen_range(0..n);
        self.models[s].reqs.keys().nth(i).copied()
    }

    fn new_request(&mut self, kind: &DataKindId) -> NewRequest {
        let w = &mut self.rng.workload;
        let max = self.registry.kind(kind).unwrap().payload_bytes_max.min(40) as usize;
        let len = w.gen_range(0..=max);
        let tag = w.gen::<u32>();
        let mut payload = format!("req-{tag:08x}-").into_bytes();
        payload.resize(len.max(payload.len()), b'.');
        payload.truncate(len);
        if !self.registry.kind(kind).unwrap().request_format.is_bytes() {
            payload = formats::request_payload(w);
        }
        let mut r = NewRequest::new(kind.as_str(), payload);
        if w.gen_range(0..100) < 30 {
            // A small pool of keys: repeats (retries) happen.
            r.idempotency_key = Some(format!("key-{}", w.gen_range(0..4)));
        }
        r.test = w.gen_ratio(1, 10);
        if w.gen_ratio(1, 5) {
            r.transaction = Some(format!("T-{}", w.gen_range(0..5)));
        }
        // Its own end of life (ADR 0012) on a quarter of the sends: mostly
        // within the kind's deadline (often far below it, so that it ends
        // before requests ahead of it), sometimes 0 or past the deadline.
        if w.gen_ratio(1, 4) {
            let deadline_ms = self.registry.kind(kind).unwrap().deadline_ms;
            r.expires_in_ms = Some(match w.gen_range(0..100) {
                0..=3 => 0,
                4..=9 => deadline_ms + w.gen_range(1..=1_000),
                10..=59 => w.gen_range(1..=deadline_ms.min(1_500)),
                _ => w.gen_range(1..=deadline_ms),
            });
        }
        r
    }

    fn fetch_command(&mut self, queue: QueueId, reader: ReaderId) -> Command {
        let w = &mut self.rng.workload;
        let max = w.gen_range(1..=4);
        let wait_ms = if w.gen_bool(0.5) {
            0
        } else {
            w.gen_range(1..=1_500)
        };
        Command::Fetch {
            queue,
            max,
            wait_ms,
            reader,
        }
    }

    fn answer_command(&mut self, request_id: MessageId) -> Command {
        let checked = self
            .models
            .get(usize::from(request_id.shard()))
            .and_then(|m| m.reqs.get(&request_id))
            .and_then(|r| self.registry.kind(&r.kind))
            .is_some_and(|k| !k.answer_format.is_bytes());
        let w = &mut self.rng.workload;
        if w.gen_range(0..100) < 70 {
            let len = w.gen_range(0..=32);
            let mut payload = format!("answer-to-{request_id}").into_bytes();
            payload.truncate(len);
            if checked {
                payload = formats::answer_payload(w);
            }
            Command::SendResponse {
                request_id,
                payload: Bytes::from(payload),
                attachments: Vec::new(),
            }
        } else {
            let code = PROVIDER_CODES[w.gen_range(0..PROVIDER_CODES.len())];
            Command::SendRefusal {
                request_id,
                code,
                reason: format!("refused ({})", w.gen_range(0..100)),
            }
        }
    }

    /// One random operation of one random client.
    pub fn act(&mut self) -> Check {
        let c = self.rng.workload.gen_range(0..self.clients.len());
        if self.rng.workload.gen_range(0..100) < 6 {
            return self.bad_op(c);
        }
        match self.clients[c].role.clone() {
            Role::Consumer { kinds } => self.consumer_act(c, &kinds),
            Role::Provider { kinds } => self.provider_act(c, &kinds),
            Role::Operator => self.operator_act(c),
        }
    }

    fn consumer_act(&mut self, c: usize, kinds: &[DataKindId]) -> Check {
        let me = self.clients[c].id.clone();
        let reader = self.clients[c].reader;
        let own = QueueId::Answers(me.clone());
        let roll = self.rng.workload.gen_range(0..100);
        match roll {
            0..=37 => {
                let kind = self.pick(kinds).expect("a consumer has kinds");
                let realtime = self.registry.kind(&kind).unwrap().mode == Mode::Realtime;
                if !realtime && roll <= 4 {
                    let n = self.rng.workload.gen_range(1..=4);
                    let rs = (0..n).map(|_| self.new_request(&kind)).collect();
                    return self.issue(c, Command::SendRequests(rs));
                }
                let mut r = self.new_request(&kind);
                if realtime && roll >= 25 {
                    // Some calls carry a key from the small pool: repeats
                    // get the original's outcome (docs/protocol.md, "Repeats").
                    if roll % 2 == 0 {
                        r.idempotency_key = None;
                    }
                    self.issue(c, Command::Call(r))
                } else {
                    self.issue(c, Command::SendRequest(r))
                }
            }
            38..=57 => {
                let cmd = self.fetch_command(own, reader);
                self.issue(c, cmd)
            }
            58..=61 => {
                let credits = self.rng.workload.gen_range(1..=3);
                self.issue(
                    c,
                    Command::Subscribe {
                        queue: own,
                        credits,
                        reader,
                    },
                )
            }
            62..=83 => {
                let Some((id, queue)) = self.pick_held(c) else {
                    return Ok(());
                };
                self.clients[c].held.remove(&id);
                if roll <= 79 {
                    self.issue(c, Command::Ack { queue, id, reader })
                } else {
                    let delay_ms = if self.rng.workload.gen_bool(0.5) {
                        0
                    } else {
                        self.rng.workload.gen_range(1..=500)
                    };
                    if roll == 83 {
                        return self.nack_many(c, id, queue, delay_ms);
                    }
                    self.issue(
                        c,
                        Command::Nack {
                            queue,
                            id,
                            reader,
                            delay_ms,
                        },
                    )
                }
            }
            84..=86 => self.forget_or_give_back(c),
            87..=93 => {
                let known: Vec<MessageId> = self.know.seen.keys().rev().take(8).copied().collect();
                match self.pick(&known) {
                    Some(id) => self.issue(c, Command::Status { id }),
                    None => Ok(()),
                }
            }
            _ => self.issue(c, Command::QueueStats { queue: own }),
        }
    }

    /// An `ack_many` of everything client `c` holds from `queue` (`first`
    /// among it), sometimes with `first` twice or an id never leased.
    fn ack_many(&mut self, c: usize, first: MessageId, queue: QueueId) -> Check {
        let reader = self.clients[c].reader;
        let mut ids: Vec<MessageId> = self.clients[c]
            .held
            .iter()
            .filter(|(_, q)| **q == queue)
            .map(|(id, _)| *id)
            .collect();
        for id in &ids {
            self.clients[c].held.remove(id);
        }
        match self.rng.workload.gen_range(0..4) {
            0 => ids.push(first),
            1 => ids.push(MessageId::new(
                self.now,
                0,
                self.rng.workload.gen::<u32>() as u64,
            )),
            _ => {}
        }
        self.issue(c, Command::AckMany { queue, ids, reader })
    }

    /// A `nack_many` of `first` and everything else client `c` holds from
    /// `queue`, sometimes with `first` twice or an id never leased.
    fn nack_many(&mut self, c: usize, first: MessageId, queue: QueueId, delay_ms: u64) -> Check {
        let reader = self.clients[c].reader;
        let mut ids: Vec<MessageId> = self.clients[c]
            .held
            .iter()
            .filter(|(_, q)| **q == queue)
            .map(|(id, _)| *id)
            .collect();
        for id in &ids {
            self.clients[c].held.remove(id);
        }
        ids.insert(0, first);
        match self.rng.workload.gen_range(0..4) {
            0 => ids.push(first),
            1 => ids.push(MessageId::new(
                self.now,
                0,
                self.rng.workload.gen::<u32>() as u64,
            )),
            _ => {}
        }
        let command = Command::NackMany {
            queue,
            ids,
            reader,
            delay_ms,
        };
        self.issue(c, command)
    }

    fn provider_act(&mut self, c: usize, kinds: &[DataKindId]) -> Check {
        let reader = self.clients[c].reader;
        let kind = self.pick(kinds).expect("a provider serves kinds");
        let queue = QueueId::Requests(kind);
        let roll = self.rng.workload.gen_range(0..100);
        match roll {
            0..=24 => {
                let cmd = self.fetch_command(queue, reader);
                self.issue(c, cmd)
            }
            25..=28 => {
                let credits = self.rng.workload.gen_range(1..=3);
                self.issue(
                    c,
                    Command::Subscribe {
                        queue,
                        credits,
                        reader,
                    },
                )
            }
            29..=48 => {
                let Some((id, queue)) = self.pick_held(c) else {
                    return Ok(());
                };
                if roll <= 33 {
                    return self.ack_many(c, id, queue);
                }
                self.clients[c].held.remove(&id);
                if roll <= 43 {
                    self.issue(c, Command::Ack { queue, id, reader })
                } else {
                    let delay_ms = if self.rng.workload.gen_bool(0.5) {
                        0
                    } else {
                        self.rng.workload.gen_range(1..=500)
                    };
                    if roll >= 47 {
                        return self.nack_many(c, id, queue, delay_ms);
                    }
                    self.issue(
                        c,
                        Command::Nack {
                            queue,
                            id,
                            reader,
                            delay_ms,
                        },
                    )
                }
            }
            49..=73 => {
                let work: Vec<MessageId> = self.clients[c].work.iter().copied().collect();
                let Some(id) = self.pick(&work) else {
                    return Ok(());
                };
                let cmd = self.answer_command(id);
                self.issue(c, cmd)
            }
            74..=76 => {
                // Answering again: `AlreadyAnswered`, or `DeadlineExceeded`
                // after expiry, or `NotFound` if a crash took the request.
                let done: Vec<MessageId> = self.clients[c].done.iter().copied().collect();
                let Some(id) = self.pick(&done) else {
                    return Ok(());
                };
                let cmd = self.answer_command(id);
                self.issue(c, cmd)
            }
            77..=79 => self.forget_or_give_back(c),
            80..=86 => {
                let work: Vec<MessageId> = self.clients[c].work.iter().copied().collect();
                match self.pick(&work) {
                    Some(id) => self.issue(c, Command::Status { id }),
                    None => Ok(()),
                }
            }
            _ => self.issue(c, Command::QueueStats { queue }),
        }
    }

    /// Forget a lease (it times out and comes back), or have the runtime
    /// give it back at once (the delivery never reached the client).
    fn forget_or_give_back(&mut self, c: usize) -> Check {
        let Some((id, queue)) = self.pick_held(c) else {
            return Ok(());
        };
        match self.rng.workload.gen_range(0..8) {
            0..=3 => {
                self.clients[c].held.remove(&id);
                Ok(())
            }
            4..=6 => self.give_back(c, queue, id, false),
            // A give-back that comes late, for a reader the lease is no
            // longer leased to: the lease stands.
            _ => self.give_back(c, queue, id, true),
        }
    }

    fn operator_act(&mut self, c: usize) -> Check {
        if self.rng.workload.gen_bool(0.5) {
            match self.pick_request() {
                Some(id) => self.issue(c, Command::Status { id }),
                None => Ok(()),
            }
        } else {
            let all: Vec<QueueId> = self.queues.iter().flatten().cloned().collect();
            let queue = self.pick(&all).expect("queues");
            self.issue(c, Command::QueueStats { queue })
        }
    }

    /// An operation that breaks a rule: it must get its typed error.
    fn bad_op(&mut self, c: usize) -> Check {
        let me = self.clients[c].id.clone();
        let reader = self.clients[c].reader;
        let extract = DataKindId::new("urn:sim:fns:extract:1");
        let n = self.n;
        match self.rng.workload.gen_range(0..17) {
            0 => {
                let id = self
                    .pick_request()
                    .unwrap_or(MessageId::new(self.now, 0, 1));
                self.issue_to(
                    c,
                    ParticipantId::new("GHOST"),
                    id.shard(),
                    Command::Status { id },
                )
            }
            1 => {
                let r = NewRequest::new("urn:sim:unknown:1", "x");
                self.issue(c, Command::SendRequest(r))
            }
            2 | 3 => {
                // A kind the sender may not request, or a sender that is no consumer.
                let kinds: Vec<DataKindId> = self.registry.kinds().map(|k| k.id.clone()).collect();
                let mut kinds = kinds;
                kinds.sort();
                let kind = self.pick(&kinds).unwrap();
                let r = self.new_request(&kind);
                let caller = if self.rng.workload.gen_bool(0.5) {
                    ParticipantId::new("MVD")
                } else {
                    me
                };
                let s = QueueId::Requests(kind).shard(n);
                self.issue_to(c, caller, s, Command::SendRequest(r))
            }
            4 => {
                let mut r = self.new_request(&extract);
                r.payload = Bytes::from(vec![b'x'; self.rng.workload.gen_range(49..=80)]);
                self.issue_to(
                    c,
                    ParticipantId::new("MFC"),
                    QueueId::Requests(extract).shard(n),
                    Command::SendRequest(r),
                )
            }
            5 => {
                let mut r = self.new_request(&extract);
                r.state_secret = true;
                self.issue_to(
                    c,
                    ParticipantId::new("MFC"),
                    QueueId::Requests(extract).shard(n),
                    Command::SendRequest(r),
                )
            }
            6 => {
                let r = self.new_request(&extract);
                self.issue_to(
                    c,
                    ParticipantId::new("MFC"),
                    QueueId::Requests(extract).shard(n),
                    Command::Call(r),
                )
            }
            7 => {
                let r = self.new_request(&extract);
                let s = (QueueId::Requests(extract).shard(n) + 1) % n;
                self.issue_to(c, ParticipantId::new("MFC"), s, Command::SendRequest(r))
            }
            8 | 9 => {
                let Some(id) = self.pick_request() else {
                    return Ok(());
                };
                let provider = self.models[id.shard() as usize].reqs[&id].provider.clone();
                let (caller, code) = if self.rng.workload.gen_bool(0.5) {
                    let other = if provider.as_str() == "MVD" {
                        "FNS"
                    } else {
                        "MVD"
                    };
                    (ParticipantId::new(other), RefusalCode::NoData)
                } else {
                    (provider, RefusalCode::DeadlineExceeded)
                };
                let cmd = Command::SendRefusal {
                    request_id: id,
                    code,
                    reason: "bad".into(),
                };
                self.issue_to(c, caller, id.shard(), cmd)
            }
            10 => {
                let queue = if self.rng.workload.gen_bool(0.5) {
                    QueueId::Answers(ParticipantId::new(if me.as_str() == "MFC" {
                        "SFR"
                    } else {
                        "MFC"
                    }))
                } else {
                    QueueId::Requests(DataKindId::new(if me.as_str() == "MVD" {
                        "urn:sim:fns:inn:1"
                    } else {
                        "urn:sim:mvd:archive:1"
                    }))
                };
                let cmd = self.fetch_command(queue, reader);
                self.issue(c, cmd)
            }
            11 => {
                let id = self
                    .pick_request()
                    .unwrap_or(MessageId::new(self.now, 0, 7));
                let queue = match &self.clients[c].role {
                    Role::Provider { kinds } => QueueId::Requests(kinds[0].clone()),
                    _ => QueueId::Answers(me),
                };
                self.issue(c, Command::Ack { queue, id, reader })
            }
            12 => {
                let s = self.rng.workload.gen_range(0..n);
                let id = MessageId::new(self.now, s, self.rng.workload.gen::<u32>() as u64);
                let cmd = self.answer_command(id);
                self.issue_to(c, ParticipantId::new("FNS"), s, cmd)
            }
            13 => {
                let Some(id) = self.pick_request() else {
                    return Ok(());
                };
                self.issue_to(
                    c,
                    ParticipantId::new("MFC"),
                    id.shard(),
                    Command::Status { id },
                )
            }
            14 | 15 => {
                let Some(id) = self.pick_request() else {
                    return Ok(());
                };
                let provider = self.models[id.shard() as usize].reqs[&id].provider.clone();
                let cmd = if self.rng.workload.gen_bool(0.5) {
                    Command::SendRefusal {
                        request_id: id,
                        code: RefusalCode::Failure,
                        reason: "x".repeat(TEXT_BYTES_MAX + 1),
                    }
                } else {
                    Command::SendResponse {
                        request_id: id,
                        payload: Bytes::from(vec![b'y'; 5_000]),
                        attachments: Vec::new(),
                    }
                };
                self.issue_to(c, provider, id.shard(), cmd)
            }
            16 => {
                // A payload the kind allows but the log's records cannot hold.
                let pension = DataKindId::new("urn:sim:sfr:pension:1");
                let mut r = self.new_request(&pension);
                r.payload = Bytes::from(vec![b'p'; self.rng.workload.gen_range(100..=1_000)]);
                self.issue_to(
                    c,
                    ParticipantId::new("MFC"),
                    QueueId::Requests(pension).shard(n),
                    Command::SendRequest(r),
                )
            }
            _ => unreachable!(),
        }
    }

    /// At the end: consumers take and ack every answer, providers answer
    /// everything they get; no new requests, no faults.
    pub fn drain_act(&mut self, c: usize) -> Check {
        let reader = self.clients[c].reader;
        let held: Vec<(MessageId, QueueId)> = std::mem::take(&mut self.clients[c].held)
            .into_iter()
            .collect();
        match self.clients[c].role.clone() {
            Role::Consumer { .. } => {
                for (id, queue) in held {
                    self.issue(c, Command::Ack { queue, id, reader })?;
                }
                let own = QueueId::Answers(self.clients[c].id.clone());
                self.fetch_if_ready(c, own)
            }
            Role::Provider { kinds } => {
                let work: Vec<MessageId> = self.clients[c].work.iter().copied().collect();
                for id in work {
                    let cmd = self.answer_command(id);
                    self.issue(c, cmd)?;
                }
                for kind in kinds {
                    self.fetch_if_ready(c, QueueId::Requests(kind))?;
                }
                Ok(())
            }
            Role::Operator => Ok(()),
        }
    }

    fn fetch_if_ready(&mut self, c: usize, queue: QueueId) -> Check {
        let s = queue.shard(self.n) as usize;
        if self.models[s].failed.is_some()
            || !self.models[s]
                .places(&queue)
                .any(|(_, p)| p == MPlace::Ready)
        {
            return Ok(());
        }
        let reader = self.clients[c].reader;
        self.issue(
            c,
            Command::Fetch {
                queue,
                max: 8,
                wait_ms: 0,
                reader,
            },
        )
    }

    // ---- replies ----

    /// Judges a reply against its prediction and records what the client learned.
    pub fn on_reply(
        &mut self,
        ctx: &mut StepCtx,
        token: Token,
        result: Result<ShardReply, HubError>,
    ) -> Check {
        let p = self
            .pending
            .remove(&token)
            .ok_or_else(|| format!("reply {result:?} to unknown token {token}"))?;
        let wait = self.waits.remove(&token);
        let s = ctx.shard;
        let si = s as usize;
        ensure!(
            p.shard == s,
            "shard {s} answers an operation sent to shard {}",
            p.shard
        );
        let immediate = ctx.token == Some(token);
        if let CtxInput::StorageFailed = ctx.input {
            // Nothing not yet durable is acknowledged: every wait fails.
            let failed = self.shards[si].failed().cloned();
            ensure!(
                matches!(&result, Err(e) if Some(e) == failed.as_ref()),
                "reply {result:?} to {:?} when the storage failed",
                p.command
            );
            return Ok(());
        }
        let bad = |result: &Result<ShardReply, HubError>| {
            format!(
                "reply {result:?} to {:?} by {} at step {:?}, expected {:?}",
                p.command, p.caller, ctx.input, p.expect
            )
        };
        match (&p.expect, &result) {
            (Expect::Fail(want), Err(got)) => {
                ensure!(immediate && same_error(want, got), "{}", bad(&result));
                self.stats.typed_errors += 1;
                if let Command::SendResponse { request_id, .. }
                | Command::SendRefusal { request_id, .. } = &p.command
                {
                    if matches!(
                        got,
                        HubError::NotFound
                            | HubError::AlreadyAnswered(_)
                            | HubError::DeadlineExceeded
                    ) {
                        let client = &mut self.clients[p.client];
                        client.work.remove(request_id);
                    }
                }
            }
            (
                Expect::NewRequest,
                Ok(ShardReply::Accepted {
                    id,
                    time_ms,
                    duplicate,
                    ..
                }),
            ) => {
                ensure!(
                    !immediate && !duplicate && Some(*id) == p.request_id,
                    "{}",
                    bad(&result)
                );
                self.accepted(&p, *id, *time_ms)?;
            }
            (
                Expect::Duplicate { original, durable },
                Ok(ShardReply::Accepted {
                    id,
                    time_ms,
                    duplicate: true,
                    ..
                }),
            ) => {
                ensure!(id == original && immediate == *durable, "{}", bad(&result));
                self.stats.duplicates += 1;
                self.accepted(&p, *id, *time_ms)?;
            }
            (Expect::NewCall, Ok(ShardReply::Answer(d))) => {
                ensure!(!immediate, "{}", bad(&result));
                let rid = p.request_id.expect("call's request");
                ensure!(
                    d.reply_to == Some(rid)
                        && d.queue == QueueId::Answers(p.caller.clone())
                        && d.delivery_count == 1,
                    "{}",
                    bad(&result)
                );
                let m = &self.models[si];
                ensure!(
                    m.call_durable(m.reqs[&rid].offset),
                    "call {rid} answered before its request is durable"
                );
                self.check_answer(rid, d.id, &d.body, &d.payload)?;
                self.call_answered(ctx, rid, false)?;
                self.see(rid, Seen::Answer(d.id))?;
                self.stats.call_answers += 1;
            }
            (Expect::NewCall, Err(HubError::DeadlineExceeded)) => {
                ensure!(matches!(ctx.input, CtxInput::Tick), "{}", bad(&result));
                let rid = p.request_id.expect("call's request");
                let m = &self.models[si];
                let r = &m.reqs[&rid];
                ensure!(
                    r.deadline_ms <= ctx.now,
                    "call {rid} told it expired at {} before its deadline {}",
                    ctx.now,
                    r.deadline_ms
                );
                self.check_deadline(r.deadline_ms, ctx.now)
                    .map_err(|e| format!("call {rid} expired late: {e}"))?;
                let o = r
                    .outcome
                    .as_ref()
                    .ok_or_else(|| format!("call {rid} told it expired, but it is open"))?;
                if terminal_kind(&o.body) == EventKind::Expired {
                    // It expired now: the error is its answer, handed over.
                    ensure!(o.time_ms == ctx.now, "call {rid} told of an old expiry");
                    self.call_answered(ctx, rid, true)?;
                    self.see(rid, Seen::CallExpired)?;
                } else {
                    // Answered, but not durable within the budget: the
                    // answer goes to the answer queue once durable.
                    ensure!(
                        !m.call_durable(o.offset) && !o.routed,
                        "call {rid} told it expired although its answer {} was durable",
                        o.answer_id
                    );
                    self.call_waiting.remove(&rid);
                }
                self.stats.call_expiries += 1;
            }
            (Expect::ReadAfterFailure, _) => {
                ensure!(
                    immediate && self.models[si].failed.is_some(),
                    "{}",
                    bad(&result)
                );
                self.stats.reads_after_failure += 1;
            }
            (Expect::Messages { nonempty }, Ok(ShardReply::Messages(v))) => {
                ensure!(immediate && v.is_empty() != *nonempty, "{}", bad(&result));
                self.check_batch(ctx, &p, v)?;
            }
            (Expect::Wait, Ok(ShardReply::Messages(v))) => {
                ensure!(!immediate, "{}", bad(&result));
                if v.is_empty() {
                    let until = wait.expect("a wait").3;
                    ensure!(
                        matches!(ctx.input, CtxInput::Tick) && ctx.now >= until,
                        "long-poll answered empty at {} before its wait ends at {until}",
                        ctx.now
                    );
                }
                self.check_batch(ctx, &p, v)?;
            }
            (Expect::Wait, Err(HubError::Unavailable(_))) => {
                ensure!(
                    matches!(ctx.input, CtxInput::Disconnected(r) if r == p.reader),
                    "{}",
                    bad(&result)
                );
            }
            (
                Expect::CallRepeat {
                    original,
                    reply,
                    offset,
                    durable,
                },
                _,
            ) => {
                ensure!(
                    immediate == *durable && *offset < self.models[si].durable,
                    "{} (record at {offset}, durable {})",
                    bad(&result),
                    self.models[si].durable
                );
                match (reply, &result) {
                    (RepeatReply::Duplicate, Err(HubError::Duplicate { original: o })) => {
                        ensure!(o == original, "{}", bad(&result));
                        self.stats.call_repeat_refusals += 1;
                    }
                    (RepeatReply::Expired, Err(HubError::DeadlineExceeded)) => {
                        self.stats.call_repeat_refusals += 1;
                    }
                    (RepeatReply::Answer, Ok(ShardReply::Answer(d))) => {
                        ensure!(
                            d.reply_to == Some(*original)
                                && d.queue == QueueId::Answers(p.caller.clone()),
                            "{}",
                            bad(&result)
                        );
                        self.check_answer(*original, d.id, &d.body, &d.payload)?;
                        self.see(*original, Seen::Answer(d.id))?;
                        self.stats.call_repeat_answers += 1;
                    }
                    _ => return Err(bad(&result)),
                }
                self.stats.duplicates += 1;
            }
            (Expect::Done, Ok(ShardReply::Done)) => ensure!(immediate, "{}", bad(&result)),
            (Expect::Settled { durable }, Ok(ShardReply::Done)) => {
                let durable_now = p.release_offset <= self.models[si].durable;
                ensure!(
                    immediate == *durable && (immediate || durable_now),
                    "{} (log end {}, durable {})",
                    bad(&result),
                    p.release_offset,
                    self.models[si].durable
                );
                if let Command::Ack { id, .. } = &p.command {
                    self.know.acks_replied.insert(*id);
                }
            }
            (
                Expect::AckMany {
                    acked,
                    refused,
                    now,
                },
                Ok(ShardReply::AckedMany(got)),
            ) => {
                let durable_now = p.release_offset <= self.models[si].durable;
                let same = got.len() == refused.len()
                    && got
                        .iter()
                        .zip(refused)
                        .all(|((gi, ge), (wi, we))| gi == wi && same_error(we, ge));
                ensure!(
                    immediate == *now && (immediate || durable_now) && same,
                    "{} (log end {}, durable {})",
                    bad(&result),
                    p.release_offset,
                    self.models[si].durable
                );
                self.know.acks_replied.extend(acked.iter().copied());
                self.stats.acks_many += 1;
            }
            (Expect::NackMany { refused, now, .. }, Ok(ShardReply::AckedMany(got))) => {
                let durable_now = p.release_offset <= self.models[si].durable;
                let same = got.len() == refused.len()
                    && got
                        .iter()
                        .zip(refused)
                        .all(|((gi, ge), (wi, we))| gi == wi && same_error(we, ge));
                ensure!(
                    immediate == *now && (immediate || durable_now) && same,
                    "{} (log end {}, durable {})",
                    bad(&result),
                    p.release_offset,
                    self.models[si].durable
                );
                self.stats.nacks_many += 1;
            }
            (Expect::SendMany { slots, now }, Ok(ShardReply::AcceptedMany(results))) => {
                let durable_now = p.release_offset <= self.models[si].durable;
                ensure!(
                    immediate == *now && (immediate || durable_now) && results.len() == slots.len(),
                    "{}",
                    bad(&result)
                );
                let Command::SendRequests(rs) = &p.command else {
                    unreachable!()
                };
                let mut ids: Vec<Option<MessageId>> = Vec::new();
                for (i, (slot, got)) in slots.iter().zip(results).enumerate() {
                    let want = match slot {
                        Slot::New(k) => p.batch_ids.get(*k).map(|id| (*id, false)),
                        Slot::Dup(original) => Some((*original, true)),
                        Slot::SameAs(j) => ids[*j].map(|id| (id, true)),
                        Slot::Fail(e) => {
                            ensure!(
                                matches!(got, Err(g) if same_error(e, g)),
                                "slot {i}: {}",
                                bad(&result)
                            );
                            self.stats.typed_errors += 1;
                            ids.push(None);
                            continue;
                        }
                    };
                    let Ok(a) = got else {
                        return Err(format!("slot {i}: {}", bad(&result)));
                    };
                    ensure!(
                        want == Some((a.id, a.duplicate)),
                        "slot {i} expected {want:?}: {}",
                        bad(&result)
                    );
                    if a.duplicate {
                        self.stats.duplicates += 1;
                    }
                    self.accepted_request(&p, &rs[i], a.id, a.time_ms)?;
                    ids.push(Some(a.id));
                }
                self.stats.batches_sent += 1;
            }
            (Expect::Nacked, Ok(ShardReply::Done)) => {
                ensure!(
                    !immediate && p.release_offset <= self.models[si].durable,
                    "{} (log end {}, durable {})",
                    bad(&result),
                    p.release_offset,
                    self.models[si].durable
                );
            }
            (Expect::AckAnswer { .. }, _) => {
                // Answered only with what the request's shard settled (the
                // judge checked there that it was durable, or the right error).
                let settled = match &ctx.input {
                    CtxInput::Peer(PeerMsg::AnswerAckSettled {
                        token: t,
                        result: r,
                    }) if *t == token => Some(r.clone()),
                    _ => None,
                };
                let got = result.clone().map(|r| r == ShardReply::Done);
                ensure!(
                    !immediate && settled.is_some_and(|r| r.map(|()| true) == got),
                    "{}",
                    bad(&result)
                );
                if got == Ok(true) {
                    if let Command::Ack { id, .. } = &p.command {
                        self.know.consumer_acked.insert(*id);
                        self.know.acks_replied.insert(*id);
                    }
                }
            }
            (Expect::AckRequest | Expect::Answer, Ok(ShardReply::Done)) => {
                let offset = p.record_offset.expect("the operation's record");
                ensure!(
                    !immediate && offset < self.models[si].durable,
                    "{} (record at {offset}, durable {})",
                    bad(&result),
                    self.models[si].durable
                );
                if let Command::Ack { id, .. } = &p.command {
                    self.know.acks_replied.insert(*id);
                }
                if let Command::SendResponse { request_id, .. }
                | Command::SendRefusal { request_id, .. } = &p.command
                {
                    let o = self.models[si].reqs[request_id].outcome.as_ref();
                    let body = o.expect("answered").body.clone();
                    self.know.answered.insert(*request_id, body);
                    let client = &mut self.clients[p.client];
                    client.work.remove(request_id);
                    client.done.push_back(*request_id);
                    if client.done.len() > 16 {
                        client.done.pop_front();
                    }
                }
            }
            (Expect::Status(rid), Ok(ShardReply::Status(view))) => {
                ensure!(immediate, "{}", bad(&result));
                let r = &self.models[si].reqs[rid];
                ensure!(
                    view.request_id == *rid
                        && view.answer_id == r.outcome.as_ref().map(|o| o.answer_id)
                        && view.kind == r.kind
                        && view.consumer == r.consumer
                        && view.provider == r.provider
                        && view.deadline_ms == r.deadline_ms
                        && view.events == r.history,
                    "status {view:?} of {rid}, the log says {r:?}"
                );
            }
            (Expect::Stats(q), Ok(ShardReply::Stats(st))) => {
                ensure!(immediate, "{}", bad(&result));
                let want = self.models[si]
                    .queue_stats(ctx.now)
                    .get(q)
                    .copied()
                    .unwrap_or_default();
                ensure!(*st == want, "stats {st:?} of {q}, the model says {want:?}");
            }
            _ => return Err(bad(&result)),
        }
        Ok(())
    }

    fn check_batch(
        &mut self,
        ctx: &mut StepCtx,
        p: &Pending,
        v: &[gonets_engine::shard::Delivery],
    ) -> Check {
        let Command::Fetch { queue, max, .. } = &p.command else {
            unreachable!()
        };
        ensure!(
            v.len() as u32 <= (*max).clamp(1, self.config.fetch_max),
            "fetch of at most {max} returned {}",
            v.len()
        );
        for d in v {
            ensure!(
                &d.queue == queue,
                "fetch of {queue} returned {} from {}",
                d.id,
                d.queue
            );
            self.on_delivery(ctx, p.reader, d)?;
        }
        Ok(())
    }

    /// A call got its answer (`expired`: the hub's DeadlineExceeded, acked at
    /// once; else the answer itself, acked when the runtime reports the caller
    /// took it, which the world feeds right after this step).
    fn call_answered(&mut self, ctx: &mut StepCtx, rid: MessageId, expired: bool) -> Check {
        let m = &mut self.models[ctx.shard as usize];
        let o = m.reqs.get_mut(&rid).unwrap().outcome.as_mut().unwrap();
        ensure!(!o.routed, "answer to call {rid} sent twice");
        o.routed = true;
        ctx.expect_events.push((rid, EventKind::AnswerDelivered, 1));
        if expired {
            ctx.expect_events.push((rid, EventKind::AnswerAcked, 0));
        } else {
            self.call_replies.push((ctx.shard, rid));
        }
        self.call_waiting.remove(&rid);
        Ok(())
    }

    /// A consumer learned that `id` is accepted: it is durable, and an
    /// idempotency key maps to one request within its window.
    fn accepted(&mut self, p: &Pending, id: MessageId, time_ms: u64) -> Check {
        let (Command::SendRequest(n) | Command::Call(n)) = &p.command else {
            unreachable!()
        };
        self.accepted_request(p, n, id, time_ms)
    }

    /// What the sender of `n` (pending `p`) learns from its acceptance.
    fn accepted_request(
        &mut self,
        p: &Pending,
        n: &NewRequest,
        id: MessageId,
        time_ms: u64,
    ) -> Check {
        let m = &self.models[p.shard as usize];
        let r = m
            .reqs
            .get(&id)
            .ok_or_else(|| format!("accepted {id} unknown to the log"))?;
        ensure!(
            r.offset < m.durable && r.time_ms == time_ms,
            "accepted {id} at {time_ms} before it is durable (offset {}, durable {})",
            r.offset,
            m.durable
        );
        self.know.accepted.insert(id, time_ms);
        if let Some(key) = &n.idempotency_key {
            let k = (p.caller.clone(), n.kind.clone(), key.clone());
            if let Some((earlier, t0)) = self.know.keys.get(&k) {
                ensure!(
                    *earlier == id || p.issued_now >= t0 + self.config.dedup_window_ms,
                    "key {key} of {}: accepted as {earlier} at {t0}, again as {id} at {} within the window",
                    p.caller,
                    p.issued_now
                );
                if time_ms <= *t0 {
                    return Ok(());
                }
            }
            self.know.keys.insert(k, (id, time_ms));
        }
        Ok(())
    }
}

/// Bytes the sender's signature adds to a record's seal: only one it
/// carries itself (a request of a signed batch is stored without one).
fn seal_signature_bytes(sign: SignMode) -> usize {
    if sign.carries() {
        signing::signature_bytes()
    } else {
        0
    }
}

/// The seal of an unsigned message, as the records' sizes count it.
fn unsigned_seal() -> Seal {
    Seal {
        digest: Digest::default(),
        signature: None,
        receipt_signature: None,
        attachments: Vec::new(),
    }
}
