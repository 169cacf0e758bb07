//! Unit tests of the shard's rules (one per rule and typed error).
//!
//! A small driver plays the runtime: it keeps the log the shard appends to,
//! says when records are durable, moves the hub clock and loops peer messages
//! addressed to this shard straight back in (with one shard, as most tests
//! use, that is every peer message). Deadlines, leases and windows are a few
//! hundred milliseconds so each test reads as a timeline.

use super::*;
use crate::record::{AnswerBody, EventKind, Record};
use crate::shard::queue::QueueStats;
use gonets_types::ids::{DataKindId, MessageId, ParticipantId, QueueId};
use gonets_types::refusal::RefusalCode;

/// Hub time at the start of every test (a real epoch time, so UUIDv7 ids
/// carry a plausible timestamp).
const T0: u64 = 1_700_000_000_000;
const ASYNC: &str = "urn:test:async:1";
const RT: &str = "urn:test:rt:1";
/// An async kind with a deep queue (parked requests by the thousand).
const BULK: &str = "urn:test:bulk:1";
const ASYNC_DEADLINE_MS: u64 = 1_000;
const RT_DEADLINE_MS: u64 = 200;
const PAYLOAD_MAX: usize = 64;
const QUEUE_MAX: usize = 4;
const LEASE_MS: u64 = 100;
const DELIVERIES_MAX: u32 = 3;
const DEDUP_MS: u64 = 500;
const WAIT_MAX_MS: u64 = 1_000;

/// FNS serves the async kind, MVD the realtime one; MFC and SFR may request
/// the async kind, only MFC the realtime one; MVD is a consumer but not of
/// the async kind; OPERATOR is neither consumer nor provider.
const REGISTRY: &str = r#"
[[participant]]
id = "FNS"
name = "Federal Tax Service"
roles = ["provider", "consumer"]

[[participant]]
id = "MVD"
name = "Ministry of Internal Affairs"
roles = ["provider", "consumer"]

[[participant]]
id = "MFC"
name = "Public-service centre"
roles = ["consumer"]

[[participant]]
id = "SFR"
name = "Social Fund"
roles = ["consumer"]

[[participant]]
id = "OPERATOR"
name = "Hub operator"
roles = ["operator"]

[[data_kind]]
id = "urn:test:async:1"
provider = "FNS"
mode = "async"
deadline_ms = 1000
payload_bytes_max = 64
queue_messages_max = 4
consumers = ["MFC", "SFR"]

[[data_kind]]
id = "urn:test:bulk:1"
provider = "FNS"
mode = "async"
deadline_ms = 1000
payload_bytes_max = 64
queue_messages_max = 100000
consumers = ["MFC"]

[[data_kind]]
id = "urn:test:rt:1"
provider = "MVD"
mode = "realtime"
deadline_ms = 200
payload_bytes_max = 64
consumers = ["MFC"]
"#;

fn registry() -> Arc<Registry> {
    Arc::new(Registry::from_toml(REGISTRY).expect("test registry is valid"))
}

fn config(shard: u16, shard_count: u16) -> ShardConfig {
    ShardConfig {
        lease_timeout_ms: LEASE_MS,
        deliveries_max: DELIVERIES_MAX,
        dedup_window_ms: DEDUP_MS,
        fetch_max: 16,
        wait_ms_max: WAIT_MAX_MS,
        ..ShardConfig::new(shard, shard_count)
    }
}

fn p(id: &str) -> ParticipantId {
    ParticipantId::new(id)
}

fn requests(kind: &str) -> QueueId {
    QueueId::Requests(DataKindId::new(kind))
}

fn answers(consumer: &str) -> QueueId {
    QueueId::Answers(p(consumer))
}

fn request(kind: &str) -> NewRequest {
    NewRequest::new(kind, &b"payload"[..])
}

fn keyed(kind: &str, key: &str) -> NewRequest {
    NewRequest {
        idempotency_key: Some(key.into()),
        ..request(kind)
    }
}

/// The runtime, minus I/O.
struct Driver {
    shard: Shard,
    /// Every record the shard appended, with its offset.
    log: Vec<(u64, Record)>,
    /// The offsets of those it asked to journal too (ADR 0036).
    journaled: Vec<u64>,
    /// Exclusive end of what the driver has reported durable.
    durable: u64,
    now: u64,
    next_token: Token,
}

impl Driver {
    /// Shard 0 of 1: it owns every queue.
    fn new() -> Driver {
        Driver::with_config(config(0, 1))
    }

    fn with_config(config: ShardConfig) -> Driver {
        Driver {
            shard: Shard::new(config, registry(), 0),
            log: Vec::new(),
            journaled: Vec::new(),
            durable: 0,
            now: T0,
            next_token: 1,
        }
    }

    /// Steps one input at the driver's clock. Returns every output, with
    /// those of the peer messages it looped back, in order.
    fn step(&mut self, input: Input) -> Vec<Output> {
        let mut out = Vec::new();
        self.shard.step(self.now, input, &mut out);
        self.absorb(out)
    }

    /// Does what the runtime does with outputs: records appends (checking
    /// their offsets are dense) and feeds peer messages for this shard back in.
    fn absorb(&mut self, out: Vec<Output>) -> Vec<Output> {
        let mut all = Vec::new();
        for o in out {
            match &o {
                Output::Append {
                    offset,
                    record,
                    journal,
                } => {
                    let expected = self.log.last().map_or(self.durable, |(o, _)| o + 1);
                    assert_eq!(*offset, expected, "appends are dense");
                    self.log.push((*offset, record.clone()));
                    if *journal {
                        self.journaled.push(*offset);
                    }
                    all.push(o);
                }
                Output::ToShard { shard, msg } if *shard == self.shard.id() => {
                    let msg = msg.clone();
                    all.push(o);
                    all.extend(self.step(Input::Peer(msg)));
                }
                _ => all.push(o),
            }
        }
        all
    }

    fn command(&mut self, caller: &str, command: Command) -> (Token, Vec<Output>) {
        let token = self.next_token;
        self.next_token += 1;
        let out = self.step(Input::Command {
            token,
            caller: p(caller),
            command,
        });
        (token, out)
    }

    /// Runs a command that must be answered at once.
    fn now_reply(&mut self, caller: &str, command: Command) -> Result<ShardReply, HubError> {
        let (token, out) = self.command(caller, command);
        reply(&out, token).unwrap_or_else(|| panic!("no immediate reply: {out:?}"))
    }

    /// Runs a command, commits, and returns its reply.
    fn committed_reply(&mut self, caller: &str, command: Command) -> Result<ShardReply, HubError> {
        let (token, mut out) = self.command(caller, command);
        out.extend(self.commit());
        reply(&out, token).unwrap_or_else(|| panic!("no reply after commit: {out:?}"))
    }

    /// Reports every appended record durable.
    fn commit(&mut self) -> Vec<Output> {
        self.commit_to(self.shard.next_offset())
    }

    fn commit_to(&mut self, durable_offset: u64) -> Vec<Output> {
        self.durable = self.durable.max(durable_offset);
        self.step(Input::Committed { durable_offset })
    }

    /// Moves the clock to `at` and fires due timers.
    fn tick_at(&mut self, at: u64) -> Vec<Output> {
        self.now = at;
        self.step(Input::Tick)
    }

    /// Moves the clock without firing anything.
    fn set_time(&mut self, at: u64) {
        self.now = at;
    }

    // ---- operations with the expected success ----

    /// Sends, commits, and returns the new request's id.
    fn send_ok(&mut self, caller: &str, r: NewRequest) -> MessageId {
        match self.committed_reply(caller, Command::SendRequest(r)) {
            Ok(ShardReply::Accepted {
                id,
                duplicate: false,
                ..
            }) => id,
            other => panic!("expected a fresh acceptance, got {other:?}"),
        }
    }

    fn fetch(&mut self, caller: &str, queue: QueueId, max: u32, reader: ReaderId) -> Vec<Delivery> {
        let command = Command::Fetch {
            queue,
            max,
            wait_ms: 0,
            reader,
        };
        match self.now_reply(caller, command) {
            Ok(ShardReply::Messages(m)) => m,
            other => panic!("expected messages, got {other:?}"),
        }
    }

    fn ack(&mut self, caller: &str, queue: QueueId, id: MessageId, reader: ReaderId) {
        let r = self.committed_reply(caller, Command::Ack { queue, id, reader });
        assert_eq!(r, Ok(ShardReply::Done));
    }

    fn respond(&mut self, caller: &str, request_id: MessageId) {
        let command = Command::SendResponse {
            request_id,
            payload: Bytes::from_static(b"answer"),
            attachments: Vec::new(),
        };
        assert_eq!(self.committed_reply(caller, command), Ok(ShardReply::Done));
    }

    fn status(&mut self, caller: &str, id: MessageId) -> Result<StatusView, HubError> {
        self.now_reply(caller, Command::Status { id })
            .map(|r| match r {
                ShardReply::Status(s) => s,
                other => panic!("expected a status, got {other:?}"),
            })
    }

    fn history(&mut self, id: MessageId) -> Vec<(EventKind, u64, u32)> {
        let view = self
            .status("OPERATOR", id)
            .expect("operator reads any history");
        view.events
            .iter()
            .map(|e| (e.kind, e.time_ms, e.count))
            .collect()
    }

    fn event_kinds(&mut self, id: MessageId) -> Vec<EventKind> {
        self.history(id).into_iter().map(|(k, _, _)| k).collect()
    }

    fn exchange_outcome_is_none(&self, id: MessageId) -> bool {
        self.shard.exchange(id).expect("exchange").outcome.is_none()
    }

    /// A fresh shard that replays the durable part of this log and recovers
    /// at this driver's clock: a restart after a crash.
    fn restart(&self) -> (Driver, Vec<Output>) {
        self.restart_from(0)
    }

    /// As `restart`, replaying from `first_offset` (a snapshot's start).
    fn restart_from(&self, first_offset: u64) -> (Driver, Vec<Output>) {
        let registry = self.shard.registry().clone();
        let mut shard = Shard::new(self.shard.config().clone(), registry, first_offset);
        for (offset, record) in &self.log {
            if *offset >= first_offset && *offset < self.durable {
                shard
                    .replay_resolving(*offset, record.clone(), |at| {
                        let found = self.log.iter().find(|(o, _)| *o == at);
                        found
                            .map(|(_, r)| r.clone())
                            .ok_or_else(|| format!("no record at {at}"))
                    })
                    .expect("replays, its references resolved");
            }
        }
        let mut out = Vec::new();
        shard.recovered(self.now, &mut out);
        let mut d = Driver {
            shard,
            log: self
                .log
                .iter()
                .filter(|(o, _)| *o < self.durable)
                .cloned()
                .collect(),
            journaled: Vec::new(),
            durable: self.durable,
            now: self.now,
            next_token: self.next_token,
        };
        let out = d.absorb(out);
        (d, out)
    }
}

// ---- reading outputs ----

fn reply(out: &[Output], token: Token) -> Option<Result<ShardReply, HubError>> {
    let mut found = out.iter().filter_map(|o| match o {
        Output::Reply { token: t, result } if *t == token => Some(result.clone()),
        _ => None,
    });
    let first = found.next();
    assert!(found.next().is_none(), "token {token} answered twice");
    first
}

fn delivered(out: &[Output]) -> Vec<(ReaderId, Delivery)> {
    out.iter()
        .filter_map(|o| match o {
            Output::Deliver { reader, delivery } => Some((*reader, delivery.clone())),
            _ => None,
        })
        .collect()
}

fn enqueued_answers(out: &[Output]) -> Vec<(u16, AnswerEnvelope)> {
    out.iter()
        .filter_map(|o| match o {
            Output::ToShard {
                shard,
                msg: PeerMsg::EnqueueAnswer(e),
            } => Some((*shard, e.clone())),
            _ => None,
        })
        .collect()
}

fn appended(out: &[Output]) -> Vec<Record> {
    out.iter()
        .filter_map(|o| match o {
            Output::Append { record, .. } => Some(record.clone()),
            _ => None,
        })
        .collect()
}

fn ids(deliveries: &[Delivery]) -> Vec<MessageId> {
    deliveries.iter().map(|d| d.id).collect()
}

fn refusal_code(d: &Delivery) -> Option<RefusalCode> {
    match &d.body {
        DeliveryBody::Answer(AnswerBody::Refusal { code, .. }) => Some(*code),
        _ => None,
    }
}

// ---- send_request: who may send what ----

#[test]
fn given_unknown_participant_when_send_request_then_unauthenticated() {
    let mut d = Driver::new();
    let r = d.now_reply("NOBODY", Command::SendRequest(request(ASYNC)));
    assert_eq!(r, Err(HubError::Unauthenticated));
    assert!(d.log.is_empty(), "nothing is written for a refused send");
}

#[test]
fn given_participant_without_consumer_role_when_send_request_then_not_authorized() {
    let mut d = Driver::new();
    let r = d.now_reply("OPERATOR", Command::SendRequest(request(ASYNC)));
    assert!(matches!(r, Err(HubError::NotAuthorized(_))), "{r:?}");
    super::audit::assert_only_audited(&d.log, crate::trust_record::AuditReason::NotAuthorized);
}

#[test]
fn given_consumer_not_allowed_for_kind_when_send_request_then_not_authorized() {
    let mut d = Driver::new();
    let r = d.now_reply("MVD", Command::SendRequest(request(ASYNC)));
    assert!(matches!(r, Err(HubError::NotAuthorized(_))), "{r:?}");
    super::audit::assert_only_audited(&d.log, crate::trust_record::AuditReason::NotAuthorized);
}

#[test]
fn given_unknown_kind_when_send_request_then_unknown_data_kind() {
    let mut d = Driver::new();
    let r = d.now_reply("MFC", Command::SendRequest(request("urn:test:nope:1")));
    assert_eq!(r, Err(HubError::UnknownDataKind("urn:test:nope:1".into())));
}

#[test]
fn given_state_secret_when_send_request_then_state_secret_refused_and_counted() {
    let mut d = Driver::new();
    let secret = NewRequest {
        state_secret: true,
        ..request(ASYNC)
    };
    let r = d.now_reply("MFC", Command::SendRequest(secret));
    assert_eq!(r, Err(HubError::StateSecret));
    assert_eq!(d.shard.counters().state_secrets_refused, 1);
    // Never stored: only its audit record (digest and size, no payload).
    super::audit::assert_only_audited(&d.log, crate::trust_record::AuditReason::StateSecret);
}

#[test]
fn given_payload_over_kind_limit_when_send_request_then_too_large() {
    let mut d = Driver::new();
    let big = NewRequest::new(ASYNC, vec![0u8; PAYLOAD_MAX + 1]);
    let r = d.now_reply("MFC", Command::SendRequest(big));
    assert_eq!(
        r,
        Err(HubError::TooLarge {
            size_bytes: PAYLOAD_MAX as u64 + 1,
            size_bytes_max: PAYLOAD_MAX as u64,
        })
    );
    // Exactly at the limit is fine.
    d.send_ok("MFC", NewRequest::new(ASYNC, vec![0u8; PAYLOAD_MAX]));
}

#[test]
fn given_request_record_over_log_limit_when_send_request_then_too_large_and_nothing_stored() {
    // The log takes records of at most 100 bytes: a 64-byte payload is
    // within the kind's limit but its record is not.
    let mut d = Driver::with_config(ShardConfig {
        record_bytes_max: 133,
        ..config(0, 1)
    });
    let big = NewRequest::new(ASYNC, vec![0u8; PAYLOAD_MAX]);
    // Its seal: the digest and a byte saying it is unsigned.
    let bytes = record_size::request_record_bytes(&big, "MFC", "FNS", 33).unwrap();
    assert!(bytes > 133);
    let r = d.now_reply("MFC", Command::SendRequest(big));
    assert_eq!(
        r,
        Err(HubError::TooLarge {
            size_bytes: PAYLOAD_MAX as u64,
            size_bytes_max: (PAYLOAD_MAX - (bytes - 133)) as u64,
        })
    );
    assert!(
        d.log.is_empty(),
        "a record the log cannot take is never emitted"
    );
    // The payload the error names as the largest fits.
    let fits = NewRequest::new(ASYNC, vec![0u8; PAYLOAD_MAX - (bytes - 133)]);
    d.send_ok("MFC", fits);
}

#[test]
fn given_answer_record_over_log_limit_when_send_response_or_refusal_then_too_large() {
    let mut d = Driver::with_config(ShardConfig {
        record_bytes_max: 133,
        ..config(0, 1)
    });
    let id = d.send_ok("MFC", request(ASYNC));
    let payload = Bytes::from(vec![0u8; PAYLOAD_MAX]);
    let bytes = record_size::answer_record_bytes(None, PAYLOAD_MAX, 33).unwrap();
    let r = d.now_reply(
        "FNS",
        Command::SendResponse {
            request_id: id,
            payload,
            attachments: Vec::new(),
        },
    );
    assert_eq!(
        r,
        Err(HubError::TooLarge {
            size_bytes: PAYLOAD_MAX as u64,
            size_bytes_max: (PAYLOAD_MAX - (bytes - 133)) as u64,
        })
    );
    let r = d.now_reply(
        "FNS",
        Command::SendRefusal {
            request_id: id,
            code: RefusalCode::NoData,
            reason: "r".repeat(80),
        },
    );
    assert!(matches!(r, Err(HubError::TooLarge { .. })), "{r:?}");
    assert!(d.exchange_outcome_is_none(id));
    d.respond("FNS", id);
}

#[test]
fn given_production_config_then_archive_eviction_and_retention_are_on() {
    let c = ShardConfig::production(1, 4);
    assert_eq!((c.shard, c.shard_count), (1, 4));
    assert!(c.archive_histories && !c.snapshot_finished);
    assert_eq!(c.finished_keep_ms, Some(FINISHED_KEEP_MS_PRODUCTION));
    assert_eq!(c.retention_ms, RETENTION_MS_PRODUCTION);
    assert_eq!(
        c.record_bytes_max,
        gonets_storage::LogConfig::default().payload_bytes_max()
    );
}

#[test]
fn given_kind_queue_owned_by_another_shard_when_send_request_then_malformed() {
    let owner = requests(ASYNC).shard(4);
    let mut d = Driver::with_config(config((owner + 1) % 4, 4));
    let r = d.now_reply("MFC", Command::SendRequest(request(ASYNC)));
    assert!(matches!(r, Err(HubError::Malformed(_))), "{r:?}");
}

// ---- send_request: quota ----

#[test]
fn given_queue_at_bound_when_send_request_then_quota_exceeded() {
    let mut d = Driver::new();
    let sent: Vec<MessageId> = (0..QUEUE_MAX)
        .map(|_| d.send_ok("MFC", request(ASYNC)))
        .collect();
    let appended_before = d.log.len();
    let r = d.now_reply("MFC", Command::SendRequest(request(ASYNC)));
    assert_eq!(r, Err(HubError::QuotaExceeded));
    assert_eq!(d.log.len(), appended_before, "nothing written");
    assert_eq!(
        d.shard.queue_stats(&requests(ASYNC)).depth,
        QUEUE_MAX as u64
    );
    // Draining one makes room again; nothing accepted was dropped.
    let got = d.fetch("FNS", requests(ASYNC), 1, 1);
    assert_eq!(ids(&got), vec![sent[0]]);
    d.ack("FNS", requests(ASYNC), sent[0], 1);
    d.send_ok("MFC", request(ASYNC));
}

#[test]
fn given_sends_pending_commit_that_reach_bound_when_send_request_then_quota_exceeded() {
    // Under group commit many sends arrive between two commits: the ones
    // still committing are headed for the queue and count against its bound.
    let mut d = Driver::new();
    let mut out = Vec::new();
    let mut tokens = Vec::new();
    for _ in 0..=QUEUE_MAX {
        let (token, o) = d.command("MFC", Command::SendRequest(request(ASYNC)));
        tokens.push(token);
        out.extend(o);
    }
    out.extend(d.commit());
    let last = *tokens.last().unwrap();
    assert_eq!(
        reply(&out, last),
        Some(Err(HubError::QuotaExceeded)),
        "queue bound {QUEUE_MAX}; depth after the commit: {}",
        d.shard.queue_stats(&requests(ASYNC)).depth
    );
    assert_eq!(
        d.shard.queue_stats(&requests(ASYNC)).depth,
        QUEUE_MAX as u64
    );
}

// ---- send_request: durability, ids, idempotency ----

#[test]
fn given_request_when_commit_does_not_cover_it_then_no_accepted_reply_yet() {
    let mut d = Driver::new();
    let (first, out) = d.command("MFC", Command::SendRequest(request(ASYNC)));
    assert_eq!(reply(&out, first), None, "no reply before the commit");
    let (second, out) = d.command("MFC", Command::SendRequest(request(ASYNC)));
    assert_eq!(reply(&out, second), None);
    assert_eq!(appended(&out).len(), 1);

    // Durable up to (not including) the second record: only the first is answered.
    let second_offset = d.log.last().unwrap().0;
    let out = d.commit_to(second_offset);
    assert!(matches!(
        reply(&out, first),
        Some(Ok(ShardReply::Accepted { .. }))
    ));
    assert_eq!(reply(&out, second), None);
    assert_eq!(d.shard.counters().accepted, 1);
    // A provider sees only the durable request.
    assert_eq!(d.fetch("FNS", requests(ASYNC), 10, 1).len(), 1);

    let out = d.commit();
    assert!(matches!(
        reply(&out, second),
        Some(Ok(ShardReply::Accepted { .. }))
    ));
    assert_eq!(d.shard.counters().accepted, 2);
}

#[test]
fn given_accepted_request_then_id_is_uuidv7_with_hub_time_and_shard() {
    let mut d = Driver::with_config(config(requests(ASYNC).shard(4), 4));
    d.set_time(T0 + 1234);
    let r = d.committed_reply("MFC", Command::SendRequest(request(ASYNC)));
    let Ok(ShardReply::Accepted {
        id,
        time_ms,
        duplicate,
        ..
    }) = r
    else {
        panic!("{r:?}")
    };
    assert!(!duplicate);
    assert_eq!(time_ms, T0 + 1234, "hub time, not the sender's");
    assert_eq!(id.uuid().get_version_num(), 7);
    assert_eq!(id.unix_ms(), T0 + 1234);
    assert_eq!(id.shard(), d.shard.id(), "the id names its shard");
    let second = d.send_ok("MFC", request(ASYNC));
    assert!(second > id, "ids of one shard grow");
}

#[test]
fn given_idempotency_key_repeated_within_window_when_send_request_then_original_acceptance() {
    let mut d = Driver::new();
    let original = d.send_ok("MFC", keyed(ASYNC, "k-1"));
    let records = d.log.len();
    d.set_time(T0 + DEDUP_MS - 1);
    let r = d.committed_reply("MFC", Command::SendRequest(keyed(ASYNC, "k-1")));
    assert_eq!(
        r,
        Ok(ShardReply::Accepted {
            receipt: None,
            id: original,
            time_ms: T0,
            duplicate: true,
        })
    );
    assert_eq!(d.log.len(), records, "a repeat writes nothing");
    assert_eq!(d.shard.counters().duplicates, 1);
    assert_eq!(d.shard.queue_stats(&requests(ASYNC)).depth, 1);
}

#[test]
fn given_idempotency_key_repeated_after_window_when_send_request_then_new_message() {
    let mut d = Driver::new();
    let original = d.send_ok("MFC", keyed(ASYNC, "k-1"));
    d.tick_at(T0 + DEDUP_MS);
    let again = d.send_ok("MFC", keyed(ASYNC, "k-1"));
    assert_ne!(again, original);
    assert_eq!(d.shard.counters().duplicates, 0);
    // The new acceptance opens a new window for the key.
    d.set_time(T0 + DEDUP_MS + 1);
    let r = d.committed_reply("MFC", Command::SendRequest(keyed(ASYNC, "k-1")));
    assert!(matches!(r, Ok(ShardReply::Accepted { id, duplicate: true, .. }) if id == again));
}

#[test]
fn given_idempotency_key_expired_without_tick_when_send_request_then_new_message() {
    // The window is checked on send too, not only when its timer fires.
    let mut d = Driver::new();
    let original = d.send_ok("MFC", keyed(ASYNC, "k-1"));
    d.set_time(T0 + DEDUP_MS);
    let again = d.send_ok("MFC", keyed(ASYNC, "k-1"));
    assert_ne!(again, original);
}

#[test]
fn given_repeat_of_send_still_committing_when_send_request_then_duplicate_only_after_commit() {
    let mut d = Driver::new();
    let (first, _) = d.command("MFC", Command::SendRequest(keyed(ASYNC, "k-1")));
    let (repeat, out) = d.command("MFC", Command::SendRequest(keyed(ASYNC, "k-1")));
    assert_eq!(reply(&out, repeat), None, "the original is not durable yet");
    let out = d.commit();
    let Some(Ok(ShardReply::Accepted { id, .. })) = reply(&out, first) else {
        panic!("{out:?}")
    };
    assert_eq!(
        reply(&out, repeat),
        Some(Ok(ShardReply::Accepted {
            receipt: None,
            id,
            time_ms: T0,
            duplicate: true,
        }))
    );
}

#[test]
fn given_same_key_from_another_consumer_when_send_request_then_separate_message() {
    let mut d = Driver::new();
    let a = d.send_ok("MFC", keyed(ASYNC, "k-1"));
    let b = d.send_ok("SFR", keyed(ASYNC, "k-1"));
    assert_ne!(a, b, "keys are per consumer");
}

// ---- fetch and subscribe ----

#[test]
fn given_requests_when_fetched_then_fifo_per_queue() {
    let mut d = Driver::new();
    let sent: Vec<MessageId> = (0..3).map(|_| d.send_ok("MFC", request(ASYNC))).collect();
    let got = d.fetch("FNS", requests(ASYNC), 10, 1);
    assert_eq!(ids(&got), sent);
    assert!(got
        .iter()
        .all(|g| g.delivery_count == 1 && g.body == DeliveryBody::Request));
    assert!(got
        .iter()
        .all(|g| g.from == p("MFC") && g.kind.as_str() == ASYNC));
}

#[test]
fn given_more_ready_than_max_when_fetch_then_at_most_max() {
    let mut d = Driver::new();
    let sent: Vec<MessageId> = (0..3).map(|_| d.send_ok("MFC", request(ASYNC))).collect();
    assert_eq!(ids(&d.fetch("FNS", requests(ASYNC), 2, 1)), sent[..2]);
    assert_eq!(ids(&d.fetch("FNS", requests(ASYNC), 2, 1)), sent[2..]);
    assert!(
        d.fetch("FNS", requests(ASYNC), 2, 1).is_empty(),
        "empty is not an error"
    );
}

#[test]
fn given_empty_queue_when_fetch_waits_then_empty_after_wait_ms_via_tick() {
    let mut d = Driver::new();
    let command = Command::Fetch {
        queue: requests(ASYNC),
        max: 5,
        wait_ms: 50,
        reader: 1,
    };
    let (token, out) = d.command("FNS", command);
    assert_eq!(reply(&out, token), None, "a long poll waits");
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::ArmTimer { at_ms } if *at_ms == T0 + 50)),
        "the runtime is asked to wake the shard at the wait's end: {out:?}"
    );
    assert_eq!(reply(&d.tick_at(T0 + 49), token), None);
    let out = d.tick_at(T0 + 50);
    assert_eq!(
        reply(&out, token),
        Some(Ok(ShardReply::Messages(Vec::new())))
    );
    // A request after the wait ended is not handed to the finished fetch.
    let id = d.send_ok("MFC", request(ASYNC));
    assert_eq!(ids(&d.fetch("FNS", requests(ASYNC), 5, 1)), vec![id]);
}

#[test]
fn given_two_waiting_fetches_when_one_request_arrives_then_earliest_waiter_gets_it() {
    let mut d = Driver::new();
    let wait = |reader, wait_ms| Command::Fetch {
        queue: requests(ASYNC),
        max: 5,
        wait_ms,
        reader,
    };
    let (first, _) = d.command("FNS", wait(1, 500));
    let (second, _) = d.command("FNS", wait(2, 50));
    d.command("MFC", Command::SendRequest(request(ASYNC)));
    let out = d.commit();
    assert!(matches!(reply(&out, first), Some(Ok(ShardReply::Messages(m))) if m.len() == 1));
    assert_eq!(reply(&out, second), None);
    let out = d.tick_at(T0 + 50);
    assert_eq!(
        reply(&out, second),
        Some(Ok(ShardReply::Messages(Vec::new())))
    );
}

#[test]
fn given_waiting_fetch_when_request_committed_meanwhile_then_fetch_returns_it() {
    let mut d = Driver::new();
    let command = Command::Fetch {
        queue: requests(ASYNC),
        max: 5,
        wait_ms: 500,
        reader: 1,
    };
    let (token, _) = d.command("FNS", command);
    d.set_time(T0 + 10);
    let (send, out) = d.command("MFC", Command::SendRequest(request(ASYNC)));
    assert_eq!(
        reply(&out, token),
        None,
        "not before the request is durable"
    );
    let out = d.commit();
    let Some(Ok(ShardReply::Accepted { id, .. })) = reply(&out, send) else {
        panic!("{out:?}")
    };
    let Some(Ok(ShardReply::Messages(got))) = reply(&out, token) else {
        panic!("{out:?}")
    };
    assert_eq!(ids(&got), vec![id]);
    // The wait's timer firing later answers nothing twice.
    assert_eq!(reply(&d.tick_at(T0 + 500), token), None);
}

#[test]
fn given_reader_not_owner_when_fetch_then_not_authorized() {
    let mut d = Driver::new();
    let fetch = |queue| Command::Fetch {
        queue,
        max: 1,
        wait_ms: 0,
        reader: 1,
    };
    // A consumer may not read the provider's requests, nor another's answers.
    let r = d.now_reply("MFC", fetch(requests(ASYNC)));
    assert!(matches!(r, Err(HubError::NotAuthorized(_))), "{r:?}");
    let r = d.now_reply("SFR", fetch(answers("MFC")));
    assert!(matches!(r, Err(HubError::NotAuthorized(_))), "{r:?}");
    let r = d.now_reply("FNS", fetch(requests(RT)));
    assert!(matches!(r, Err(HubError::NotAuthorized(_))), "{r:?}");
    let r = d.now_reply("FNS", fetch(requests("urn:test:nope:1")));
    assert!(matches!(r, Err(HubError::UnknownDataKind(_))), "{r:?}");
}

#[test]
fn given_subscription_with_credits_when_requests_arrive_then_pushed_only_while_credits_last() {
    let mut d = Driver::new();
    let subscribe = |credits| Command::Subscribe {
        queue: requests(ASYNC),
        credits,
        reader: 7,
    };
    assert_eq!(d.now_reply("FNS", subscribe(2)), Ok(ShardReply::Done));
    let mut pushed = Vec::new();
    let mut sent = Vec::new();
    for _ in 0..3 {
        let (token, mut out) = d.command("MFC", Command::SendRequest(request(ASYNC)));
        assert!(delivered(&out).is_empty(), "nothing pushed before commit");
        out.extend(d.commit());
        let Some(Ok(ShardReply::Accepted { id, .. })) = reply(&out, token) else {
            panic!("{out:?}")
        };
        sent.push(id);
        pushed.extend(delivered(&out));
    }
    assert_eq!(pushed.len(), 2, "two credits, two pushes");
    assert!(pushed.iter().all(|(reader, _)| *reader == 7));
    let pushed_ids: Vec<MessageId> = pushed.iter().map(|(_, d)| d.id).collect();
    assert_eq!(pushed_ids, sent[..2]);
    // One more credit: the waiting request goes at once.
    let (_, out) = d.command("FNS", subscribe(1));
    let more = delivered(&out);
    assert_eq!(more.len(), 1);
    assert_eq!(more[0].1.id, sent[2]);
    assert_eq!(d.shard.queue_stats(&requests(ASYNC)).in_flight, 3);
}

// ---- leases ----

#[test]
fn given_unacked_delivery_when_lease_times_out_then_delivered_again_with_count_plus_one() {
    let mut d = Driver::new();
    let id = d.send_ok("MFC", request(ASYNC));
    let got = d.fetch("FNS", requests(ASYNC), 1, 1);
    assert_eq!(got[0].delivery_count, 1);
    d.tick_at(T0 + LEASE_MS - 1);
    assert!(
        d.fetch("FNS", requests(ASYNC), 1, 2).is_empty(),
        "still leased"
    );
    d.tick_at(T0 + LEASE_MS);
    let again = d.fetch("FNS", requests(ASYNC), 1, 2);
    assert_eq!(ids(&again), vec![id]);
    assert_eq!(again[0].delivery_count, 2);
    assert_eq!(
        d.history(id)[1..],
        [
            (EventKind::Delivered, T0, 1),
            (EventKind::Delivered, T0 + LEASE_MS, 2)
        ]
    );
}

#[test]
fn given_unacked_delivery_when_reader_disconnects_then_delivered_again_with_count_plus_one() {
    let mut d = Driver::new();
    let id = d.send_ok("MFC", request(ASYNC));
    d.fetch("FNS", requests(ASYNC), 1, 1);
    d.step(Input::Disconnected { reader: 1 });
    let again = d.fetch("FNS", requests(ASYNC), 1, 2);
    assert_eq!(ids(&again), vec![id]);
    assert_eq!(again[0].delivery_count, 2);
}

#[test]
fn given_leased_request_when_given_back_then_delivered_again_and_no_record() {
    let mut d = Driver::new();
    let id = d.send_ok("MFC", request(ASYNC));
    d.fetch("FNS", requests(ASYNC), 1, 1);
    let records = d.log.len();
    // The runtime could not hand the delivery over: no provider nacked.
    let out = d.step(Input::GiveBack {
        queue: requests(ASYNC),
        id,
        reader: 1,
    });
    assert!(
        out.iter().all(|o| !matches!(o, Output::Reply { .. })),
        "{out:?}"
    );
    assert_eq!(d.log.len(), records, "a give-back is no history step");
    let again = d.fetch("FNS", requests(ASYNC), 1, 2);
    assert_eq!(ids(&again), vec![id]);
    assert_eq!(again[0].delivery_count, 2);
    assert!(!d.event_kinds(id).contains(&EventKind::Nacked));
}

#[test]
fn given_lease_of_another_reader_when_given_back_then_it_stands() {
    let mut d = Driver::new();
    let id = d.send_ok("MFC", request(ASYNC));
    d.fetch("FNS", requests(ASYNC), 1, 1);
    d.step(Input::GiveBack {
        queue: requests(ASYNC),
        id,
        reader: 2,
    });
    assert!(d.fetch("FNS", requests(ASYNC), 1, 2).is_empty());
    d.ack("FNS", requests(ASYNC), id, 1);
}

#[test]
fn given_last_delivery_when_given_back_then_dead_lettered() {
    let mut d = Driver::new();
    let id = d.send_ok("MFC", request(ASYNC));
    for reader in 1..=u64::from(DELIVERIES_MAX) {
        assert_eq!(ids(&d.fetch("FNS", requests(ASYNC), 1, reader)), vec![id]);
        d.step(Input::GiveBack {
            queue: requests(ASYNC),
            id,
            reader,
        });
    }
    d.commit();
    assert!(d.event_kinds(id).contains(&EventKind::DeadLettered));
}

#[test]
fn given_waiting_fetch_when_reader_disconnects_then_unavailable() {
    let mut d = Driver::new();
    let command = Command::Fetch {
        queue: requests(ASYNC),
        max: 1,
        wait_ms: 500,
        reader: 1,
    };
    let (token, _) = d.command("FNS", command);
    let out = d.step(Input::Disconnected { reader: 1 });
    assert!(matches!(
        reply(&out, token),
        Some(Err(HubError::Unavailable(_)))
    ));
    // The departed reader's wait does not swallow a later request.
    let id = d.send_ok("MFC", request(ASYNC));
    assert_eq!(ids(&d.fetch("FNS", requests(ASYNC), 1, 2)), vec![id]);
}

#[test]
fn given_subscribed_reader_when_it_disconnects_then_nothing_more_pushed_to_it() {
    let mut d = Driver::new();
    let subscribe = Command::Subscribe {
        queue: requests(ASYNC),
        credits: 5,
        reader: 7,
    };
    d.now_reply("FNS", subscribe).unwrap();
    d.step(Input::Disconnected { reader: 7 });
    let (_, mut out) = d.command("MFC", Command::SendRequest(request(ASYNC)));
    out.extend(d.commit());
    assert!(delivered(&out).is_empty(), "{out:?}");
}

#[test]
fn given_request_never_acked_when_deliveries_max_reached_then_dead_lettered_and_consumer_refused_undeliverable(
) {
    let mut d = Driver::new();
    let id = d.send_ok("MFC", request(ASYNC));
    let mut t = T0;
    for n in 1..=DELIVERIES_MAX {
        let got = d.fetch("FNS", requests(ASYNC), 1, 1);
        assert_eq!(got[0].delivery_count, n);
        t += LEASE_MS;
        d.tick_at(t);
    }
    assert!(
        d.fetch("FNS", requests(ASYNC), 1, 1).is_empty(),
        "not delivered again"
    );
    assert_eq!(d.shard.counters().dead_lettered, 1);
    assert_eq!(d.shard.queue_stats(&requests(ASYNC)).depth, 0);
    let out = d.commit();
    let routed = enqueued_answers(&out);
    assert_eq!(routed.len(), 1);
    let answer = d.fetch("MFC", answers("MFC"), 1, 9);
    assert_eq!(answer[0].reply_to, Some(id));
    assert_eq!(refusal_code(&answer[0]), Some(RefusalCode::Undeliverable));
    assert_eq!(answer[0].from, p("HUB"));
    assert!(d.event_kinds(id).contains(&EventKind::DeadLettered));
    // The provider can no longer answer it.
    let r = d.now_reply(
        "FNS",
        Command::SendResponse {
            request_id: id,
            payload: Bytes::new(),
            attachments: Vec::new(),
        },
    );
    assert_eq!(r, Err(HubError::AlreadyAnswered(id)));
}

#[test]
fn given_ack_when_lease_held_then_done_after_commit_and_never_redelivered() {
    let mut d = Driver::new();
    let id = d.send_ok("MFC", request(ASYNC));
    d.fetch("FNS", requests(ASYNC), 1, 1);
    let (token, out) = d.command(
        "FNS",
        Command::Ack {
            queue: requests(ASYNC),
            id,
            reader: 1,
        },
    );
    assert_eq!(reply(&out, token), None, "the ack is answered once durable");
    assert_eq!(reply(&d.commit(), token), Some(Ok(ShardReply::Done)));
    d.tick_at(T0 + 10 * LEASE_MS);
    assert!(d.fetch("FNS", requests(ASYNC), 1, 1).is_empty());
    assert_eq!(d.shard.queue_stats(&requests(ASYNC)).depth, 0);
    // Acking again is harmless.
    d.ack("FNS", requests(ASYNC), id, 1);
}

#[test]
fn given_ack_by_reader_without_lease_when_ack_then_not_found() {
    let mut d = Driver::new();
    let id = d.send_ok("MFC", request(ASYNC));
    let ack = |id, reader| Command::Ack {
        queue: requests(ASYNC),
        id,
        reader,
    };
    // Ready, not leased.
    assert_eq!(d.now_reply("FNS", ack(id, 1)), Err(HubError::NotFound));
    d.fetch("FNS", requests(ASYNC), 1, 1);
    assert_eq!(d.now_reply("FNS", ack(id, 2)), Err(HubError::NotFound));
    let unknown = MessageId::new(T0, 0, 999);
    assert_eq!(d.now_reply("FNS", ack(unknown, 1)), Err(HubError::NotFound));
    // After the lease ran out and went to another reader, the first reader's ack is stale.
    d.tick_at(T0 + LEASE_MS);
    d.fetch("FNS", requests(ASYNC), 1, 2);
    assert_eq!(d.now_reply("FNS", ack(id, 1)), Err(HubError::NotFound));
    d.ack("FNS", requests(ASYNC), id, 2);
}

#[test]
fn given_nack_with_delay_when_delay_not_elapsed_then_not_redelivered_until_it_does() {
    let mut d = Driver::new();
    let id = d.send_ok("MFC", request(ASYNC));
    d.fetch("FNS", requests(ASYNC), 1, 1);
    let nack = Command::Nack {
        queue: requests(ASYNC),
        id,
        reader: 1,
        delay_ms: 50,
    };
    assert_eq!(d.committed_reply("FNS", nack), Ok(ShardReply::Done));
    assert_eq!(d.shard.queue_stats(&requests(ASYNC)).in_flight, 0);
    d.tick_at(T0 + 49);
    assert!(d.fetch("FNS", requests(ASYNC), 1, 1).is_empty());
    d.tick_at(T0 + 50);
    let again = d.fetch("FNS", requests(ASYNC), 1, 1);
    assert_eq!(ids(&again), vec![id]);
    assert_eq!(again[0].delivery_count, 2);
    assert!(d.event_kinds(id).contains(&EventKind::Nacked));
}

#[test]
fn given_nack_without_delay_when_fetched_then_redelivered_at_once_in_fifo_place() {
    let mut d = Driver::new();
    let a = d.send_ok("MFC", request(ASYNC));
    let b = d.send_ok("MFC", request(ASYNC));
    d.fetch("FNS", requests(ASYNC), 1, 1);
    let nack = Command::Nack {
        queue: requests(ASYNC),
        id: a,
        reader: 1,
        delay_ms: 0,
    };
    d.committed_reply("FNS", nack).unwrap();
    assert_eq!(ids(&d.fetch("FNS", requests(ASYNC), 2, 1)), vec![a, b]);
}

#[test]
fn given_stale_lease_timer_when_message_leased_again_then_new_lease_runs_its_full_time() {
    let mut d = Driver::new();
    let id = d.send_ok("MFC", request(ASYNC));
    d.fetch("FNS", requests(ASYNC), 1, 1);
    d.set_time(T0 + LEASE_MS / 2);
    let nack = Command::Nack {
        queue: requests(ASYNC),
        id,
        reader: 1,
        delay_ms: 0,
    };
    d.committed_reply("FNS", nack).unwrap();
    d.fetch("FNS", requests(ASYNC), 1, 2);
    // The first lease's timer fires into the second lease: it must not end it.
    d.tick_at(T0 + LEASE_MS);
    assert_eq!(d.shard.queue_stats(&requests(ASYNC)).in_flight, 1);
    d.ack("FNS", requests(ASYNC), id, 2);
}

#[test]
fn given_unacked_answer_when_lease_times_out_then_answer_delivered_again_and_counted() {
    let mut d = Driver::new();
    let id = d.send_ok("MFC", request(ASYNC));
    d.respond("FNS", id);
    let first = d.fetch("MFC", answers("MFC"), 1, 9);
    assert_eq!(first[0].delivery_count, 1);
    d.tick_at(T0 + LEASE_MS);
    let again = d.fetch("MFC", answers("MFC"), 1, 9);
    assert_eq!(again[0].id, first[0].id);
    assert_eq!(again[0].delivery_count, 2);
    let history = d.history(id);
    assert!(history.contains(&(EventKind::AnswerDelivered, T0 + LEASE_MS, 2)));
}

// ---- answers ----

#[test]
fn given_participant_other_than_provider_when_send_response_then_not_authorized() {
    let mut d = Driver::new();
    let id = d.send_ok("MFC", request(ASYNC));
    for caller in ["MFC", "MVD"] {
        let r = d.now_reply(
            caller,
            Command::SendResponse {
                request_id: id,
                payload: Bytes::new(),
                attachments: Vec::new(),
            },
        );
        assert!(
            matches!(r, Err(HubError::NotAuthorized(_))),
            "{caller}: {r:?}"
        );
    }
    let r = d.now_reply(
        "MVD",
        Command::SendRefusal {
            request_id: id,
            code: RefusalCode::NoData,
            reason: "none".into(),
        },
    );
    assert!(matches!(r, Err(HubError::NotAuthorized(_))), "{r:?}");
}

#[test]
fn given_answered_request_when_answered_again_then_already_answered() {
    let mut d = Driver::new();
    let id = d.send_ok("MFC", request(ASYNC));
    d.respond("FNS", id);
    let again = |d: &mut Driver, command| d.now_reply("FNS", command);
    let r = again(
        &mut d,
        Command::SendResponse {
            request_id: id,
            payload: Bytes::new(),
            attachments: Vec::new(),
        },
    );
    assert_eq!(r, Err(HubError::AlreadyAnswered(id)));
    let r = again(
        &mut d,
        Command::SendRefusal {
            request_id: id,
            code: RefusalCode::NoData,
            reason: String::new(),
        },
    );
    assert_eq!(r, Err(HubError::AlreadyAnswered(id)));
}

#[test]
fn given_answer_still_committing_when_answered_again_then_already_answered() {
    let mut d = Driver::new();
    let id = d.send_ok("MFC", request(ASYNC));
    let response = || Command::SendResponse {
        request_id: id,
        payload: Bytes::new(),
        attachments: Vec::new(),
    };
    let (first, _) = d.command("FNS", response());
    assert_eq!(
        d.now_reply("FNS", response()),
        Err(HubError::AlreadyAnswered(id))
    );
    assert_eq!(reply(&d.commit(), first), Some(Ok(ShardReply::Done)));
}

#[test]
fn given_hub_only_refusal_code_when_send_refusal_then_malformed() {
    let mut d = Driver::new();
    let id = d.send_ok("MFC", request(ASYNC));
    for code in [RefusalCode::DeadlineExceeded, RefusalCode::Undeliverable] {
        let r = d.now_reply(
            "FNS",
            Command::SendRefusal {
                request_id: id,
                code,
                reason: "pretending to be the hub".into(),
            },
        );
        assert!(matches!(r, Err(HubError::Malformed(_))), "{code:?}: {r:?}");
    }
    assert!(d.exchange_outcome_is_none(id));
}

#[test]
fn given_refusal_reason_over_text_limit_when_send_refusal_then_too_large() {
    let mut d = Driver::new();
    let id = d.send_ok("MFC", request(ASYNC));
    let r = d.now_reply(
        "FNS",
        Command::SendRefusal {
            request_id: id,
            code: RefusalCode::Failure,
            reason: "x".repeat(crate::record::TEXT_BYTES_MAX + 1),
        },
    );
    assert!(
        matches!(&r, Err(HubError::TextTooLarge { field, .. }) if field == "reason"),
        "{r:?}"
    );
    let text = r.unwrap_err().to_string();
    assert!(text.starts_with("reason of 4097 bytes"), "{text}");
}

#[test]
fn given_key_or_transaction_over_text_limit_when_send_request_then_too_large_names_the_field() {
    let mut d = Driver::new();
    let long = "k".repeat(crate::record::TEXT_BYTES_MAX + 1);
    let mut keyed = request(ASYNC);
    keyed.idempotency_key = Some(long.clone());
    let mut transacted = request(ASYNC);
    transacted.transaction = Some(long);
    for (r, want) in [(keyed, "idempotency_key"), (transacted, "transaction")] {
        let r = d.now_reply("MFC", Command::SendRequest(r));
        assert!(
            matches!(&r, Err(HubError::TextTooLarge { field, .. }) if field == want),
            "{r:?}"
        );
    }
    assert!(d.log.is_empty(), "nothing refused is stored");
}

#[test]
fn given_response_over_kind_limit_when_send_response_then_too_large() {
    let mut d = Driver::new();
    let id = d.send_ok("MFC", request(ASYNC));
    let r = d.now_reply(
        "FNS",
        Command::SendResponse {
            request_id: id,
            payload: Bytes::from(vec![0u8; PAYLOAD_MAX + 1]),
            attachments: Vec::new(),
        },
    );
    assert!(matches!(r, Err(HubError::TooLarge { .. })), "{r:?}");
    assert!(d.exchange_outcome_is_none(id));
}

#[test]
fn given_unknown_request_when_send_response_then_not_found() {
    let mut d = Driver::new();
    let r = d.now_reply(
        "FNS",
        Command::SendResponse {
            request_id: MessageId::new(T0, 0, 42),
            payload: Bytes::new(),
            attachments: Vec::new(),
        },
    );
    assert_eq!(r, Err(HubError::NotFound));
}

#[test]
fn given_response_when_committed_then_routed_to_consumer_answer_queue_shard() {
    let count = 4;
    let here = requests(ASYNC).shard(count);
    let mut d = Driver::with_config(config(here, count));
    let id = d.send_ok("MFC", request(ASYNC));
    let (token, out) = d.command(
        "FNS",
        Command::SendResponse {
            request_id: id,
            payload: Bytes::from_static(b"answer"),
            attachments: Vec::new(),
        },
    );
    assert_eq!(reply(&out, token), None);
    assert!(
        enqueued_answers(&out).is_empty(),
        "not before the answer is durable"
    );
    let out = d.commit();
    assert_eq!(reply(&out, token), Some(Ok(ShardReply::Done)));
    let routed = enqueued_answers(&out);
    assert_eq!(routed.len(), 1);
    let (shard, envelope) = &routed[0];
    assert_eq!(*shard, answers("MFC").shard(count));
    assert_eq!(envelope.request_id, id);
    assert_eq!(envelope.to, p("MFC"));
    assert_eq!(envelope.from, p("FNS"));
    assert_eq!(envelope.body, AnswerBody::Data);
    assert_eq!(
        envelope.id.shard(),
        here,
        "the answer id names the request's shard"
    );
    assert_eq!(
        envelope.payload,
        Payload::Bytes(Bytes::from_static(b"answer"))
    );
    assert!(d.event_kinds(id).contains(&EventKind::Answered));
}

#[test]
fn given_provider_refusal_when_committed_then_consumer_fetches_refusal() {
    let mut d = Driver::new();
    let id = d.send_ok("MFC", request(ASYNC));
    let r = d.committed_reply(
        "FNS",
        Command::SendRefusal {
            request_id: id,
            code: RefusalCode::NoData,
            reason: "no such company".into(),
        },
    );
    assert_eq!(r, Ok(ShardReply::Done));
    let got = d.fetch("MFC", answers("MFC"), 1, 9);
    assert_eq!(got[0].reply_to, Some(id));
    assert_eq!(
        got[0].body,
        DeliveryBody::Answer(AnswerBody::Refusal {
            code: RefusalCode::NoData,
            reason: "no such company".into(),
        })
    );
    assert!(d.event_kinds(id).contains(&EventKind::Refused));
}

// ---- deadlines ----

#[test]
fn given_async_request_unanswered_when_deadline_passes_then_consumer_refused_deadline_exceeded() {
    let mut d = Driver::new();
    let id = d.send_ok("MFC", request(ASYNC));
    d.fetch("FNS", requests(ASYNC), 1, 1);
    d.ack("FNS", requests(ASYNC), id, 1);
    assert!(enqueued_answers(&d.tick_at(T0 + ASYNC_DEADLINE_MS - 1)).is_empty());
    let out = d.tick_at(T0 + ASYNC_DEADLINE_MS);
    assert_eq!(d.shard.counters().expired, 1);
    assert!(
        enqueued_answers(&out).is_empty(),
        "the refusal is durable first"
    );
    let out = d.commit();
    let routed = enqueued_answers(&out);
    assert_eq!(routed.len(), 1);
    let got = d.fetch("MFC", answers("MFC"), 1, 9);
    assert_eq!(refusal_code(&got[0]), Some(RefusalCode::DeadlineExceeded));
    assert_eq!(got[0].from, p("HUB"));
    assert!(d
        .history(id)
        .contains(&(EventKind::Expired, T0 + ASYNC_DEADLINE_MS, 0)));
}

// ---- parked requests (ADR 0010) ----

#[test]
fn given_many_waiting_requests_when_committed_then_each_is_only_a_parked_entry() {
    let mut d = Driver::new();
    for _ in 0..1_000 {
        d.command("MFC", Command::SendRequest(request(BULK)));
    }
    d.commit();
    let held = d.shard.held();
    assert_eq!(held.parked, 1_000);
    assert_eq!(held.exchanges, 0, "no full exchange for a waiting request");
    assert_eq!(held.committing_deadlines, 0);
    assert_eq!(held.deferred, 0);
    assert!(
        held.timers <= 2,
        "one head timer per queue, not one per request: {held:?}"
    );
    assert_eq!(d.shard.queue_stats(&requests(BULK)).depth, 1_000);
}

#[test]
fn given_parked_requests_when_deadlines_pass_then_they_expire_in_order_from_the_head() {
    let mut d = Driver::new();
    let first = d.send_ok("MFC", request(ASYNC));
    d.set_time(T0 + 10);
    let second = d.send_ok("MFC", request(ASYNC));
    d.set_time(T0 + 20);
    let third = d.send_ok("MFC", request(ASYNC));
    d.tick_at(T0 + ASYNC_DEADLINE_MS + 10);
    assert_eq!(d.shard.counters().expired, 2);
    assert!(!d.exchange_outcome_is_none(first) && !d.exchange_outcome_is_none(second));
    assert!(d.exchange_outcome_is_none(third));
    assert_eq!(d.shard.queue_stats(&requests(ASYNC)).depth, 1);
    d.tick_at(T0 + ASYNC_DEADLINE_MS + 19);
    assert_eq!(d.shard.counters().expired, 2, "not before its deadline");
    d.tick_at(T0 + ASYNC_DEADLINE_MS + 20);
    assert_eq!(d.shard.counters().expired, 3);
    assert_eq!(d.shard.held().parked, 0);
}

#[test]
fn given_parked_and_redelivered_requests_when_fetched_then_log_order_holds() {
    let mut d = Driver::new();
    let a = d.send_ok("MFC", request(ASYNC));
    let b = d.send_ok("MFC", request(ASYNC));
    let c = d.send_ok("MFC", request(ASYNC));
    assert_eq!(ids(&d.fetch("FNS", requests(ASYNC), 1, 1)), vec![a]);
    d.committed_reply("FNS", nack_cmd(requests(ASYNC), a, 1))
        .unwrap();
    assert_eq!(
        d.shard.held().parked,
        2,
        "a is a member again, b and c parked"
    );
    let got = d.fetch("FNS", requests(ASYNC), 3, 1);
    assert_eq!(ids(&got), vec![a, b, c]);
    assert_eq!(got[0].delivery_count, 2);
    assert_eq!(got[1].delivery_count, 1);
}

#[test]
fn given_parked_request_when_status_asked_then_accepted_shows_and_it_stays_parked() {
    let mut d = Driver::new();
    let id = d.send_ok("MFC", request(ASYNC));
    let view = d.status("MFC", id).unwrap();
    assert_eq!(view.events.len(), 1);
    assert_eq!(view.events[0].kind, EventKind::Accepted);
    assert_eq!(view.consumer, p("MFC"));
    assert_eq!(d.status("FNS", id).unwrap(), view);
    assert_eq!(d.shard.held().parked, 1);
}

#[test]
fn given_parked_request_with_key_and_transaction_when_repeated_and_taken_then_both_survive() {
    let mut d = Driver::new();
    let r = NewRequest {
        transaction: Some("T-7".into()),
        test: true,
        ..keyed(ASYNC, "k-parked")
    };
    let id = d.send_ok("MFC", r.clone());
    assert_eq!(d.shard.held().parked_texts, 1);
    let again = d.committed_reply("MFC", Command::SendRequest(r));
    assert!(
        matches!(again, Ok(ShardReply::Accepted { id: got, duplicate: true, .. }) if got == id)
    );
    let got = d.fetch("FNS", requests(ASYNC), 1, 1);
    assert_eq!(got[0].transaction.as_deref(), Some("T-7"));
    assert!(got[0].test);
    assert_eq!(got[0].from, p("MFC"));
    let ex = d.shard.exchange(id).unwrap();
    assert!(ex.keyed);
    assert_eq!(d.shard.held().parked_texts, 0);
}

#[test]
fn given_parked_requests_when_snapshot_replayed_then_they_wait_in_order_and_still_expire() {
    let mut d = Driver::new();
    let sent: Vec<MessageId> = (0..5_000)
        .map(|_| d.send_ok("MFC", request(BULK)))
        .collect();
    let first = d.shard.next_offset();
    let records = d.shard.snapshot(first);
    assert_eq!(
        records.len(),
        4,
        "the clock, 5,000 parked in runs of 4,096, then the end: {}",
        records.len()
    );
    for (i, record) in records.into_iter().enumerate() {
        d.log.push((first + i as u64, record));
    }
    d.commit();
    d.shard.snapshot_durable(first);
    let (mut r, _) = d.restart_from(first);
    assert_eq!(r.shard.held().parked, 5_000);
    assert_eq!(r.shard.held().exchanges, 0);
    let got = r.fetch("FNS", requests(BULK), 3, 1);
    assert_eq!(ids(&got), sent[..3].to_vec());
    r.tick_at(T0 + ASYNC_DEADLINE_MS);
    // The three taken ones by their own timers, the rest from the head.
    assert_eq!(r.shard.counters().expired, 5_000);
    assert_eq!(r.shard.held().parked, 0);
}

/// Appends a snapshot to the driver's log and makes it durable; returns
/// its first offset and its parts.
fn durable_snapshot(d: &mut Driver) -> (u64, Vec<Record>) {
    let first = d.shard.next_offset();
    let records = d.shard.snapshot(first);
    for (i, record) in records.iter().enumerate() {
        d.log.push((first + i as u64, record.clone()));
    }
    d.commit();
    d.shard.snapshot_durable(first);
    (first, records)
}

/// (reference parts, earlier parts they stand for) among `records`.
fn references(records: &[Record]) -> (usize, usize) {
    let refs: Vec<Vec<u64>> = records
        .iter()
        .filter_map(|r| match r {
            Record::SnapshotPart(b) => crate::shard::snapshot::references_of(b),
            _ => None,
        })
        .collect();
    (refs.len(), refs.iter().map(Vec::len).sum())
}

#[test]
fn given_unchanged_parked_chunks_when_snapshot_again_then_referred_to_not_rewritten() {
    let mut d = Driver::new();
    let sent: Vec<MessageId> = (0..5_000)
        .map(|_| d.send_ok("MFC", request(BULK)))
        .collect();
    let (_, first) = durable_snapshot(&mut d);
    assert_eq!(
        references(&first),
        (0, 0),
        "the first snapshot writes everything"
    );
    let (_, second) = durable_snapshot(&mut d);
    assert_eq!(
        references(&second),
        (1, 2),
        "both chunks unchanged, one part refers to both: {second:?}"
    );
    let bytes = |rs: &[Record]| -> usize {
        rs.iter()
            .map(|r| match r {
                Record::SnapshotPart(b) => b.len(),
                _ => 0,
            })
            .sum()
    };
    assert!(bytes(&second) < 100, "{} bytes", bytes(&second));
    // One more parked request changes the last chunk only.
    let later = d.send_ok("MFC", request(BULK));
    let (start, third) = durable_snapshot(&mut d);
    assert_eq!(references(&third), (1, 1));
    assert!(
        d.shard.retention_floor() <= d.log[4_096].0,
        "referred parts are kept"
    );
    let (mut r, _) = d.restart_from(start);
    assert_eq!(r.shard.held().parked, 5_001);
    let got = r.fetch("FNS", requests(BULK), 16, 1);
    assert_eq!(ids(&got), sent[..16].to_vec());
    assert!(r.shard.exchange(later).is_some());
}

#[test]
fn given_many_keys_when_snapshot_twice_then_the_frozen_slice_is_referred_to_and_keys_survive_restart(
) {
    let mut d = Driver::with_config(ShardConfig {
        dedup_window_ms: 24 * 3_600_000,
        ..config(0, 1)
    });
    let n = crate::shard::keys::SNAPSHOT_FREEZE_KEYS_MIN + 10;
    for k in 0..n {
        d.command("MFC", Command::SendRequest(keyed(BULK, &format!("k-{k}"))));
    }
    d.commit();
    let (_, first) = durable_snapshot(&mut d);
    assert_eq!(references(&first), (0, 0));
    let (start, second) = durable_snapshot(&mut d);
    // The parked chunks and the frozen key slice, all referred to by one part.
    let key_parts = n.div_ceil(crate::shard::snapshot::KEY_RUN_ENTRIES_MAX);
    let parked_chunks = n.div_ceil(crate::shard::parked_list::CHUNK_ENTRIES);
    assert_eq!(references(&second), (1, key_parts + parked_chunks));
    let (mut r, _) = d.restart_from(start);
    assert_eq!(r.shard.held().dedup_keys, n);
    let again = r.committed_reply("MFC", Command::SendRequest(keyed(BULK, "k-7")));
    assert!(matches!(
        again,
        Ok(ShardReply::Accepted {
            duplicate: true,
            ..
        })
    ));
}

/// Key-run parts written (not referred to) among `records`.
fn key_parts_written(records: &[Record]) -> usize {
    records
        .iter()
        .filter(|r| match r {
            Record::SnapshotPart(b) => matches!(
                crate::shard::snapshot::decode_part(b),
                Ok(crate::shard::snapshot::Part::Keys(_))
            ),
            _ => false,
        })
        .count()
}

#[test]
fn given_two_written_key_slices_when_merged_then_the_next_snapshot_refers_to_them_and_keys_survive_restart(
) {
    use crate::shard::keys::{MERGE_STEP_KEYS, WINDOW_SLICES};
    let window_ms = 24 * 3_600_000;
    let mut d = Driver::with_config(ShardConfig {
        dedup_window_ms: window_ms,
        ..config(0, 1)
    });
    let send = |d: &mut Driver, key: String| {
        d.command("MFC", Command::SendRequest(keyed(BULK, &key)));
    };
    // Two slices closed by time (a slice is a 24th of the window), each
    // written by the snapshot after it; the second snapshot starts their merge.
    let n: usize = 20_000;
    for slice in ["a", "b"] {
        for k in 0..n {
            send(&mut d, format!("{slice}-{k}"));
        }
        d.now += window_ms / WINDOW_SLICES;
        send(&mut d, format!("{slice}-closer"));
        d.commit();
        durable_snapshot(&mut d);
    }
    assert_eq!(d.shard.keys.frozen_count(), 2);
    // The slices hold a's keys, then a's closer and b's.
    let steps = (2 * n + 1).div_ceil(MERGE_STEP_KEYS);
    for k in 0..steps {
        send(&mut d, format!("c-{k}"));
    }
    assert_eq!(d.shard.keys.frozen_count(), 1, "merged");
    d.commit();
    let (start, third) = durable_snapshot(&mut d);
    assert_eq!(
        key_parts_written(&third),
        1,
        "only the open slice's keys are written; the merged slice is referred to"
    );
    let (mut r, _) = d.restart_from(start);
    assert_eq!(r.shard.held().dedup_keys, 2 * n + 2 + steps);
    for key in ["a-7", "b-7", "c-7", "b-closer"] {
        let again = r.committed_reply("MFC", Command::SendRequest(keyed(BULK, key)));
        assert!(
            matches!(
                again,
                Ok(ShardReply::Accepted {
                    duplicate: true,
                    ..
                })
            ),
            "{key}: {again:?}"
        );
    }
}

#[test]
fn given_small_record_bound_when_snapshot_then_every_part_fits_and_replays_the_same() {
    let mut d = Driver::with_config(ShardConfig {
        record_bytes_max: 4_096,
        ..config(0, 1)
    });
    let n = 5_000;
    for k in 0..n {
        d.command(
            "MFC",
            Command::SendRequest(keyed(BULK, &format!("key-{k}"))),
        );
    }
    d.commit();
    let (start, parts) = durable_snapshot(&mut d);
    for r in &parts {
        let mut bytes = Vec::new();
        r.encode(&mut bytes);
        assert!(bytes.len() <= 4_096, "a part of {} bytes", bytes.len());
    }
    let (r, _) = d.restart_from(start);
    assert_eq!(r.shard.held().parked, n);
    assert_eq!(r.shard.held().dedup_keys, n);
}

#[test]
fn given_reference_parts_when_resolved_then_only_earlier_content_parts_pass() {
    use crate::shard::snapshot::{
        encode_reference, encode_references, resolve_references, Resolved,
    };
    let content = Record::SnapshotPart(Bytes::from_static(&[2, 0]));
    let parts = |r: Result<Resolved, String>| match r {
        Ok(Resolved::Parts(p)) => Ok(p),
        other => Err(format!("{other:?}")),
    };
    let mut single = Vec::new();
    encode_reference(3, &mut single);
    let mut many = Vec::new();
    encode_references(&[3, 5, 4], &mut many);
    for bytes in [single, many] {
        let n = if bytes.len() == 9 { 1 } else { 3 };
        let reference = Record::SnapshotPart(Bytes::from(bytes));
        let got = parts(resolve_references(9, reference.clone(), |_| {
            Ok(content.clone())
        }));
        assert_eq!(got.map(|p| p.len()), Ok(n));
        assert!(resolve_references(3, reference.clone(), |_| Ok(content.clone())).is_err());
        assert!(resolve_references(9, reference.clone(), |_| Ok(reference.clone())).is_err());
        let event = Record::SnapshotEnd {
            first_offset: 0,
            parts: 0,
        };
        assert!(resolve_references(9, reference.clone(), |_| Ok(event.clone())).is_err());
        assert!(resolve_references(9, reference, |_| Err("damaged".into())).is_err());
    }
    assert!(matches!(
        resolve_references(9, content.clone(), |_| unreachable!()),
        Ok(Resolved::Itself(r)) if r == content
    ));
}

#[test]
fn given_a_malformed_references_part_when_read_then_no_offsets_and_it_does_not_decode() {
    use crate::shard::snapshot::{decode_part, encode_references, references_of};
    let mut good = Vec::new();
    encode_references(&[1, 2], &mut good);
    assert_eq!(references_of(&good), Some(vec![1, 2]));
    // A count that does not match the offsets that follow, or zero.
    let mut short = good.clone();
    short.pop();
    let mut zero = good.clone();
    zero[1..5].copy_from_slice(&0u32.to_le_bytes());
    for bad in [short, zero] {
        assert_eq!(references_of(&bad), None);
        assert!(decode_part(&bad).is_err());
    }
}

/// Every parked and awaiting chunk of the shard's request queues encoded
/// from the records replay decodes (`ParkedRecord`s, names as text) through
/// `encode_parked_run`: what a snapshot's runs from the shard's borrowed
/// entries (`Shard::run_entry`, names as numbers) must equal.
fn runs_by_records(shard: &Shard) -> Vec<Vec<u8>> {
    use crate::shard::snapshot::{encode_parked_run, ParkedRecord, ParkedRun};
    let mut runs = Vec::new();
    for (queue, q) in shard.queues.iter() {
        let QueueId::Requests(kind) = queue else {
            continue;
        };
        let mut push = |entries: Vec<ParkedRecord>| {
            if entries.is_empty() {
                return;
            }
            let mut bytes = Vec::new();
            let run = ParkedRun {
                kind: kind.clone(),
                entries,
            };
            encode_parked_run(&run, &mut bytes);
            runs.push(bytes);
        };
        for i in 0..q.parked().chunk_count() {
            push(
                q.parked()
                    .chunk(i)
                    .0
                    .iter()
                    .map(|p| shard.parked_record(p))
                    .collect(),
            );
        }
        for i in 0..q.awaiting().chunk_count() {
            let record = |a: &crate::shard::queue::Awaiting| ParkedRecord {
                acked: Some((a.delivered_ms, a.acked_ms)),
                ..shard.parked_record(&a.parked)
            };
            push(q.awaiting().chunk(i).0.iter().map(record).collect());
        }
    }
    runs.sort();
    runs
}

#[test]
fn given_parked_and_awaiting_requests_of_several_names_when_snapshot_then_runs_are_the_bytes_of_their_records(
) {
    let mut d = Driver::new();
    // Two consumers, transactions, test traffic, keys: every field a run
    // entry carries, and a name table of more than one consumer.
    for (i, consumer) in ["MFC", "SFR", "SFR", "MFC"].into_iter().enumerate() {
        let r = NewRequest {
            transaction: (i % 2 == 0).then(|| format!("T-{i}")),
            test: i == 1,
            ..keyed(ASYNC, &format!("k-{i}"))
        };
        d.send_ok(consumer, r);
    }
    let bulk: Vec<MessageId> = (0..5_000)
        .map(|i| {
            let r = NewRequest {
                transaction: (i % 3 == 0).then(|| format!("B-{i}")),
                test: i % 7 == 0,
                ..request(BULK)
            };
            d.send_ok("MFC", r)
        })
        .collect();
    // Some taken and acked: awaiting their answers (a chunk of their own).
    let taken = d.fetch("FNS", requests(BULK), 16, 1);
    assert_eq!(ids(&taken), bulk[..16].to_vec());
    for t in &taken[..10] {
        d.ack("FNS", requests(BULK), t.id, 1);
    }
    let expected = runs_by_records(&d.shard);
    assert!(
        expected.len() >= 4,
        "ASYNC parked, BULK parked in two chunks, BULK awaiting"
    );
    let first = d.shard.next_offset();
    let mut got: Vec<Vec<u8>> = d
        .shard
        .snapshot(first)
        .into_iter()
        .filter_map(|r| match r {
            Record::SnapshotPart(b)
                if matches!(
                    crate::shard::snapshot::decode_part(&b),
                    Ok(crate::shard::snapshot::Part::Parked(_))
                ) =>
            {
                Some(b.to_vec())
            }
            _ => None,
        })
        .collect();
    got.sort();
    assert_eq!(got.len(), expected.len(), "runs written");
    for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
        let first_difference = g.iter().zip(e).position(|(a, b)| a != b);
        assert!(
            g == e,
            "run {i}: {} bytes against {} from its records, first difference at byte {first_difference:?}",
            g.len(),
            e.len()
        );
    }
}

#[test]
fn given_damaged_parked_run_when_decoded_then_typed_error_not_state() {
    use crate::shard::snapshot::{decode_part, encode_parked_run, ParkedRecord, ParkedRun};
    let entry = |offset: u64| ParkedRecord {
        id: MessageId::new(T0, 0, offset),
        offset,
        deadline_ms: T0 + 5,
        consumer: p("MFC"),
        provider: p("FNS"),
        test: false,
        transaction: None,
        keyed: true,
        acked: None,
        // Left out of the part when 0 (the shape before byte quotas).
        payload_bytes: (offset as u32 - 1) * 100,
    };
    let awaiting = |offset: u64| ParkedRecord {
        acked: Some((T0 + 1, T0 + 2)),
        ..entry(offset)
    };
    for entries in [vec![entry(1), entry(2)], vec![awaiting(1), awaiting(2)]] {
        let run = ParkedRun {
            kind: DataKindId::new(ASYNC),
            entries,
        };
        let mut bytes = Vec::new();
        encode_parked_run(&run, &mut bytes);
        assert_eq!(
            decode_part(&bytes).unwrap(),
            crate::shard::snapshot::Part::Parked(run)
        );
        for cut in [1, bytes.len() / 2, bytes.len() - 1] {
            assert!(decode_part(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut unknown_tag = bytes.clone();
        unknown_tag[0] = 9;
        assert!(decode_part(&unknown_tag).is_err());
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert!(decode_part(&trailing).is_err());
    }
}

#[test]
fn given_queued_request_when_deadline_passes_then_it_leaves_the_request_queue() {
    let mut d = Driver::new();
    d.send_ok("MFC", request(ASYNC));
    d.tick_at(T0 + ASYNC_DEADLINE_MS);
    assert_eq!(d.shard.queue_stats(&requests(ASYNC)).depth, 0);
    assert!(d.fetch("FNS", requests(ASYNC), 1, 1).is_empty());
}

#[test]
fn given_leased_request_when_deadline_passes_then_lease_ends_and_ack_is_harmless() {
    let mut d = Driver::new();
    let id = d.send_ok("MFC", request(ASYNC));
    d.fetch("FNS", requests(ASYNC), 1, 1);
    d.tick_at(T0 + ASYNC_DEADLINE_MS);
    assert_eq!(d.shard.queue_stats(&requests(ASYNC)).in_flight, 0);
    d.ack("FNS", requests(ASYNC), id, 1);
}

#[test]
fn given_expired_request_when_provider_answers_late_then_deadline_exceeded_and_counted() {
    let mut d = Driver::new();
    let id = d.send_ok("MFC", request(ASYNC));
    d.tick_at(T0 + ASYNC_DEADLINE_MS);
    d.commit();
    let r = d.now_reply(
        "FNS",
        Command::SendResponse {
            request_id: id,
            payload: Bytes::new(),
            attachments: Vec::new(),
        },
    );
    assert_eq!(r, Err(HubError::DeadlineExceeded));
    assert_eq!(d.shard.counters().late_answers, 1);
}

#[test]
fn given_answered_request_when_deadline_passes_then_nothing_expires() {
    let mut d = Driver::new();
    let id = d.send_ok("MFC", request(ASYNC));
    d.respond("FNS", id);
    let out = d.tick_at(T0 + ASYNC_DEADLINE_MS);
    assert!(appended(&out).is_empty(), "{out:?}");
    assert_eq!(d.shard.counters().expired, 0);
}

// ---- call (realtime) ----

#[test]
fn given_realtime_call_when_provider_waiting_then_delivered_before_commit_and_answered_after_answer_commit(
) {
    let mut d = Driver::new();
    let wait = Command::Fetch {
        queue: requests(RT),
        max: 1,
        wait_ms: 1_000,
        reader: 5,
    };
    let (fetch, _) = d.command("MVD", wait);
    let (call, out) = d.command("MFC", Command::Call(request(RT)));
    assert_eq!(reply(&out, call), None);
    let Some(Ok(ShardReply::Messages(got))) = reply(&out, fetch) else {
        panic!("the waiting provider gets the request before any commit: {out:?}")
    };
    let request_id = got[0].id;
    assert_eq!(got[0].deadline_ms, T0 + RT_DEADLINE_MS);
    assert_eq!(
        got[0].payload,
        Payload::Bytes(Bytes::from_static(b"payload"))
    );

    d.set_time(T0 + 5);
    let (respond, out) = d.command(
        "MVD",
        Command::SendResponse {
            request_id,
            payload: Bytes::from_static(b"valid"),
            attachments: Vec::new(),
        },
    );
    assert_eq!(reply(&out, call), None, "the answer is not durable yet");
    assert_eq!(reply(&out, respond), None);
    let out = d.commit();
    let Some(Ok(ShardReply::Answer(answer))) = reply(&out, call) else {
        panic!("{out:?}")
    };
    assert_eq!(reply(&out, respond), Some(Ok(ShardReply::Done)));
    assert_eq!(answer.reply_to, Some(request_id));
    assert_eq!(answer.body, DeliveryBody::Answer(AnswerBody::Data));
    assert_eq!(answer.payload, Payload::Bytes(Bytes::from_static(b"valid")));
    assert!(
        enqueued_answers(&out).is_empty(),
        "a call's answer skips the answer queue"
    );
    assert!(d.fetch("MFC", answers("MFC"), 1, 9).is_empty());
    // Its deadline passing later changes nothing.
    d.tick_at(T0 + RT_DEADLINE_MS);
    assert_eq!(d.shard.counters().expired, 0);
}

#[test]
fn given_realtime_call_when_handed_over_then_only_its_answer_awaits_a_commit() {
    let mut d = Driver::new();
    assert_eq!(d.shard.awaited_last(), None);
    let (_, out) = d.command("MFC", Command::Call(request(RT)));
    assert_eq!(appended(&out).len(), 1, "{out:?}");
    assert_eq!(
        d.shard.awaited_last(),
        None,
        "nobody waits for a call's request alone: its answer's commit carries it"
    );
    let got = d.fetch("MVD", requests(RT), 1, 5);
    let request_id = got[0].id;
    respond_valid(&mut d, request_id);
    let answer_offset = d.shard.next_offset() - 1;
    assert_eq!(
        d.shard.awaited_last(),
        Some(answer_offset),
        "the caller waits for the answer (and the request before it)"
    );
    d.commit();
    d.step(Input::CallReplied {
        request_id,
        taken: true,
    });
    assert!(
        d.shard.next_offset() > answer_offset + 1,
        "delivery events appended"
    );
    assert_eq!(
        d.shard.awaited_last(),
        Some(answer_offset),
        "nobody waits for the delivery events"
    );
    // An async request's sender waits for Accepted: awaited at once.
    let (_, out) = d.command("MFC", Command::SendRequest(request(ASYNC)));
    assert_eq!(appended(&out).len(), 1, "{out:?}");
    assert_eq!(d.shard.awaited_last(), Some(d.shard.next_offset() - 1));
}

#[test]
fn given_realtime_call_unanswered_when_deadline_passes_then_caller_gets_deadline_exceeded_at_once()
{
    let mut d = Driver::new();
    let (call, mut out) = d.command("MFC", Command::Call(request(RT)));
    out.extend(d.commit());
    assert_eq!(reply(&out, call), None);
    let got = d.fetch("MVD", requests(RT), 1, 5);
    let request_id = got[0].id;
    assert_eq!(reply(&d.tick_at(T0 + RT_DEADLINE_MS - 1), call), None);
    let out = d.tick_at(T0 + RT_DEADLINE_MS);
    assert_eq!(
        reply(&out, call),
        Some(Err(HubError::DeadlineExceeded)),
        "at the deadline, without waiting for a commit"
    );
    assert_eq!(d.shard.counters().expired, 1);
    assert!(d.event_kinds(request_id).contains(&EventKind::Expired));
    // Nothing is queued for the caller afterwards, and a late answer is refused.
    d.commit();
    assert!(d.fetch("MFC", answers("MFC"), 1, 9).is_empty());
    let r = d.now_reply(
        "MVD",
        Command::SendResponse {
            request_id,
            payload: Bytes::new(),
            attachments: Vec::new(),
        },
    );
    assert_eq!(r, Err(HubError::DeadlineExceeded));
}

/// A call answered and committed; returns (call token, request id, outputs of the answer's commit).
fn answered_call(d: &mut Driver) -> (Token, MessageId, Vec<Output>) {
    let (call, mut out) = d.command("MFC", Command::Call(request(RT)));
    out.extend(d.commit());
    let got = d.fetch("MVD", requests(RT), 1, 5);
    let request_id = got[0].id;
    respond_valid(d, request_id);
    let out = d.commit();
    (call, request_id, out)
}

/// The provider MVD answers `request_id` with data.
fn respond_valid(d: &mut Driver, request_id: MessageId) -> Vec<Output> {
    d.command(
        "MVD",
        Command::SendResponse {
            request_id,
            payload: Bytes::from_static(b"valid"),
            attachments: Vec::new(),
        },
    )
    .1
}

#[test]
fn given_call_answer_taken_by_its_caller_when_reported_then_answer_acked() {
    let mut d = Driver::new();
    let (call, request_id, out) = answered_call(&mut d);
    assert!(matches!(reply(&out, call), Some(Ok(ShardReply::Answer(_)))));
    assert!(
        !d.shard.exchange(request_id).unwrap().answer_acked,
        "not acked before the caller has it"
    );
    d.step(Input::CallReplied {
        request_id,
        taken: true,
    });
    assert!(d.shard.exchange(request_id).unwrap().answer_acked);
    assert!(d.event_kinds(request_id).contains(&EventKind::AnswerAcked));
}

#[test]
fn given_call_caller_gone_when_reported_then_answer_goes_to_answer_queue() {
    let mut d = Driver::new();
    let (_, request_id, _) = answered_call(&mut d);
    let out = d.step(Input::CallReplied {
        request_id,
        taken: false,
    });
    assert_eq!(enqueued_answers(&out).len(), 1, "{out:?}");
    let got = d.fetch("MFC", answers("MFC"), 1, 9);
    assert_eq!(got.len(), 1, "the durable answer is not lost");
    assert_eq!(got[0].reply_to, Some(request_id));
    assert!(!d.shard.exchange(request_id).unwrap().answer_acked);
}

#[test]
fn given_call_answered_but_not_durable_at_deadline_then_caller_gets_deadline_exceeded_and_answer_goes_to_queue(
) {
    let mut d = Driver::new();
    let (call, mut out) = d.command("MFC", Command::Call(request(RT)));
    out.extend(d.commit());
    let got = d.fetch("MVD", requests(RT), 1, 5);
    let request_id = got[0].id;
    d.set_time(T0 + 5);
    let (_, out) = d.command(
        "MVD",
        Command::SendResponse {
            request_id,
            payload: Bytes::from_static(b"late"),
            attachments: Vec::new(),
        },
    );
    assert_eq!(reply(&out, call), None);
    let out = d.tick_at(T0 + RT_DEADLINE_MS);
    assert_eq!(
        reply(&out, call),
        Some(Err(HubError::DeadlineExceeded)),
        "the budget is spent while the answer commits"
    );
    let out = d.commit();
    assert_eq!(reply(&out, call), None, "one reply per call");
    let answers_out = d.fetch("MFC", answers("MFC"), 1, 9);
    assert_eq!(answers_out.len(), 1, "the durable answer is not lost");
    assert_eq!(answers_out[0].reply_to, Some(request_id));
}

#[test]
fn given_async_kind_when_call_then_malformed() {
    let mut d = Driver::new();
    let r = d.now_reply("MFC", Command::Call(request(ASYNC)));
    assert!(matches!(r, Err(HubError::Malformed(_))), "{r:?}");
    assert!(d.log.is_empty());
}

// ---- status ----

/// One whole exchange, one step per millisecond: send at T0, delivered at
/// +1, acked at +2, answered at +3, answer delivered at +4, acked at +5.
fn finished_exchange(d: &mut Driver) -> (MessageId, MessageId) {
    let (id, answer_id, _) = finished_exchange_out(d);
    (id, answer_id)
}

/// As `finished_exchange`, also returning the outputs of the last commit
/// (the one that makes the consumer's ack of the answer durable).
fn finished_exchange_out(d: &mut Driver) -> (MessageId, MessageId, Vec<Output>) {
    let id = d.send_ok("MFC", request(ASYNC));
    d.set_time(T0 + 1);
    d.fetch("FNS", requests(ASYNC), 1, 1);
    d.set_time(T0 + 2);
    d.ack("FNS", requests(ASYNC), id, 1);
    d.set_time(T0 + 3);
    d.respond("FNS", id);
    d.set_time(T0 + 4);
    let answer = d.fetch("MFC", answers("MFC"), 1, 9);
    d.set_time(T0 + 5);
    let answer_id = answer[0].id;
    let (token, _) = d.command(
        "MFC",
        Command::Ack {
            queue: answers("MFC"),
            id: answer_id,
            reader: 9,
        },
    );
    let out = d.commit();
    assert_eq!(reply(&out, token), Some(Ok(ShardReply::Done)));
    (id, answer_id, out)
}

#[test]
fn given_finished_exchange_when_status_then_full_history_with_timestamps() {
    let mut d = Driver::new();
    let (id, answer_id) = finished_exchange(&mut d);
    let expected = vec![
        (EventKind::Accepted, T0, 0),
        (EventKind::Delivered, T0 + 1, 1),
        (EventKind::Acked, T0 + 2, 0),
        (EventKind::Answered, T0 + 3, 0),
        (EventKind::AnswerDelivered, T0 + 4, 1),
        (EventKind::AnswerAcked, T0 + 5, 0),
    ];
    for reader in ["MFC", "FNS", "OPERATOR"] {
        let view = d.status(reader, id).expect(reader);
        assert_eq!(view.request_id, id);
        assert_eq!(view.answer_id, Some(answer_id));
        assert_eq!(view.consumer, p("MFC"));
        assert_eq!(view.provider, p("FNS"));
        assert_eq!(view.deadline_ms, T0 + ASYNC_DEADLINE_MS);
        let events: Vec<_> = view
            .events
            .iter()
            .map(|e| (e.kind, e.time_ms, e.count))
            .collect();
        assert_eq!(events, expected, "{reader}");
    }
    assert!(d.shard.exchange(id).unwrap().finished());
}

#[test]
fn given_finished_keep_when_it_passes_then_exchange_leaves_memory_and_snapshots() {
    let mut d = Driver::with_config(ShardConfig {
        finished_keep_ms: Some(1_000),
        ..config(0, 1)
    });
    let (id, answer_id) = finished_exchange(&mut d);
    d.tick_at(T0 + 5 + 999);
    assert!(d.status("MFC", id).is_ok(), "kept for finished_keep_ms");
    d.tick_at(T0 + 5 + 1_000);
    assert_eq!(d.status("MFC", id), Err(HubError::NotFound));
    assert_eq!(d.status("MFC", answer_id), Err(HubError::NotFound));
    assert_eq!(d.shard.counters().evicted, 1);
    let next = d.shard.next_offset();
    let parts = d.shard.snapshot(next);
    assert_eq!(
        parts.len(),
        2,
        "only the clock and the snapshot's end: nothing live is left"
    );
}

#[test]
fn given_snapshot_of_live_state_only_when_taken_then_finished_unkeyed_exchanges_left_out() {
    let mut d = Driver::with_config(ShardConfig {
        snapshot_finished: false,
        ..config(0, 1)
    });
    let (finished, _) = finished_exchange(&mut d);
    let open = d.send_ok("MFC", request(ASYNC));
    let next = d.shard.next_offset();
    let parts = d.shard.snapshot(next);
    assert_eq!(parts.len(), 3, "the clock, the open exchange and the end");
    let Record::SnapshotPart(bytes) = &parts[1] else {
        panic!("{parts:?}")
    };
    // The open request waits untaken: it is in a run of parked requests.
    let crate::shard::snapshot::Part::Parked(run) =
        crate::shard::snapshot::decode_part(bytes).unwrap()
    else {
        panic!("the open request is parked")
    };
    let ids: Vec<MessageId> = run.entries.iter().map(|e| e.id).collect();
    assert_eq!(ids, vec![open]);
    assert_ne!(open, finished);
}

#[test]
fn given_unfinished_or_keyed_exchange_when_keep_passes_then_it_stays() {
    let mut d = Driver::with_config(ShardConfig {
        finished_keep_ms: Some(10),
        ..config(0, 1)
    });
    let open = d.send_ok("MFC", request(ASYNC));
    d.tick_at(T0 + 100);
    assert!(
        d.status("MFC", open).is_ok(),
        "an open request is never evicted"
    );
    let keyed = d.send_ok("MFC", keyed(ASYNC, "k-1"));
    d.set_time(T0 + 101);
    d.fetch("FNS", requests(ASYNC), 16, 1);
    d.respond("FNS", keyed);
    let answers_got = d.fetch("MFC", answers("MFC"), 16, 9);
    let answer = answers_got
        .iter()
        .find(|m| m.reply_to == Some(keyed))
        .unwrap();
    d.ack("MFC", answers("MFC"), answer.id, 9);
    d.commit();
    d.tick_at(T0 + 101 + 50);
    assert!(
        d.status("MFC", keyed).is_ok(),
        "kept while its idempotency window runs"
    );
    d.tick_at(T0 + 100 + DEDUP_MS);
    assert_eq!(d.status("MFC", keyed), Err(HubError::NotFound));
}

#[test]
fn given_participant_outside_exchange_when_status_then_not_found() {
    let mut d = Driver::new();
    let id = d.send_ok("MFC", request(ASYNC));
    assert_eq!(d.status("SFR", id), Err(HubError::NotFound));
    assert_eq!(d.status("MVD", id), Err(HubError::NotFound));
    assert_eq!(
        d.status("MFC", MessageId::new(T0, 0, 77)),
        Err(HubError::NotFound),
        "an unknown id looks the same as a hidden one"
    );
}

#[test]
fn given_answer_id_when_status_then_history_of_its_request() {
    let mut d = Driver::new();
    let (id, answer_id) = finished_exchange(&mut d);
    let by_request = d.status("MFC", id).unwrap();
    let by_answer = d.status("MFC", answer_id).unwrap();
    assert_eq!(by_answer, by_request);
}

// ---- queue_stats ----

#[test]
fn given_queue_with_lease_when_queue_stats_then_depth_in_flight_oldest_age() {
    let mut d = Driver::new();
    d.send_ok("MFC", request(ASYNC));
    d.set_time(T0 + 10);
    d.send_ok("MFC", request(ASYNC));
    d.set_time(T0 + 20);
    d.send_ok("MFC", request(ASYNC));
    d.fetch("FNS", requests(ASYNC), 1, 1);
    d.set_time(T0 + 50);
    let expected = ShardReply::Stats(QueueStats {
        depth: 3,
        in_flight: 1,
        oldest_age_ms: 50,
    });
    for reader in ["FNS", "OPERATOR"] {
        let r = d.now_reply(
            reader,
            Command::QueueStats {
                queue: requests(ASYNC),
            },
        );
        assert_eq!(r, Ok(expected.clone()), "{reader}");
    }
    let empty = d.now_reply(
        "MFC",
        Command::QueueStats {
            queue: answers("MFC"),
        },
    );
    assert_eq!(empty, Ok(ShardReply::Stats(QueueStats::default())));
}

#[test]
fn given_non_owner_when_queue_stats_then_not_authorized() {
    let mut d = Driver::new();
    let r = d.now_reply(
        "MFC",
        Command::QueueStats {
            queue: requests(ASYNC),
        },
    );
    assert!(matches!(r, Err(HubError::NotAuthorized(_))), "{r:?}");
    let r = d.now_reply(
        "FNS",
        Command::QueueStats {
            queue: answers("MFC"),
        },
    );
    assert!(matches!(r, Err(HubError::NotAuthorized(_))), "{r:?}");
}

#[test]
fn given_request_waiting_across_restart_when_queue_stats_then_oldest_age_counts_from_acceptance() {
    // R9: the age of the oldest message tells the operator a provider is
    // stuck; a restart must not make a message waiting for hours look new.
    let mut d = Driver::new();
    d.send_ok("MFC", request(ASYNC));
    d.set_time(T0 + 300);
    let (mut d, _) = d.restart();
    assert_eq!(
        d.shard.queue_stats(&requests(ASYNC)).oldest_age_ms,
        300,
        "oldest age after a restart"
    );
    d.set_time(T0 + 400);
    let r = d.now_reply(
        "OPERATOR",
        Command::QueueStats {
            queue: requests(ASYNC),
        },
    );
    let Ok(ShardReply::Stats(stats)) = r else {
        panic!("{r:?}")
    };
    assert_eq!(stats.oldest_age_ms, 400);
}

// ---- storage failure ----

#[test]
fn given_pending_replies_when_storage_fails_then_each_fails_and_later_work_unavailable() {
    let mut d = Driver::new();
    let queued = d.send_ok("MFC", request(ASYNC));
    d.fetch("FNS", requests(ASYNC), 1, 1);
    let (ack, _) = d.command(
        "FNS",
        Command::Ack {
            queue: requests(ASYNC),
            id: queued,
            reader: 1,
        },
    );
    let (send, _) = d.command("MFC", Command::SendRequest(request(ASYNC)));
    let (call, _) = d.command("MFC", Command::Call(request(RT)));
    let (wait, _) = d.command(
        "MFC",
        Command::Fetch {
            queue: answers("MFC"),
            max: 1,
            wait_ms: 500,
            reader: 9,
        },
    );
    let out = d.step(Input::StorageFailed { full: false });
    for token in [ack, send, call, wait] {
        assert!(
            matches!(reply(&out, token), Some(Err(HubError::Unavailable(_)))),
            "token {token}: {out:?}"
        );
    }
    assert!(appended(&out).is_empty());
    assert!(d.shard.failed().is_some());

    // Later writes are refused, reads go on; a late commit report releases nothing.
    let r = d.now_reply("MFC", Command::SendRequest(request(ASYNC)));
    assert!(matches!(r, Err(HubError::Unavailable(_))), "{r:?}");
    let r = d.now_reply("OPERATOR", Command::Status { id: queued });
    assert!(matches!(r, Ok(ShardReply::Status(_))), "{r:?}");
    let out = d.commit();
    assert!(
        out.iter().all(|o| !matches!(o, Output::Reply { .. })),
        "{out:?}"
    );
    // Timers append nothing to a failed log.
    let out = d.tick_at(T0 + 10 * ASYNC_DEADLINE_MS);
    assert!(appended(&out).is_empty(), "{out:?}");
}

#[test]
fn given_full_disk_when_storage_fails_then_storage_full() {
    let mut d = Driver::new();
    let (send, _) = d.command("MFC", Command::SendRequest(request(ASYNC)));
    let out = d.step(Input::StorageFailed { full: true });
    assert_eq!(reply(&out, send), Some(Err(HubError::StorageFull)));
    let r = d.now_reply("MFC", Command::SendRequest(request(ASYNC)));
    assert_eq!(r, Err(HubError::StorageFull));
}

// ---- replay ----

#[test]
fn given_log_when_replayed_into_fresh_shard_then_queues_rebuilt_with_leases_expired() {
    let mut d = Driver::new();
    let a = d.send_ok("MFC", request(ASYNC));
    let b = d.send_ok("MFC", request(ASYNC));
    let c = d.send_ok("MFC", request(ASYNC));
    d.fetch("FNS", requests(ASYNC), 1, 1); // a: leased at the crash
    d.fetch("FNS", requests(ASYNC), 1, 1); // b: acked below
    d.ack("FNS", requests(ASYNC), b, 1);
    // Not durable at the crash: forgotten, and never acknowledged to anyone.
    d.command("MFC", Command::SendRequest(request(ASYNC)));
    d.set_time(T0 + 10);

    let (mut r, _) = d.restart();
    let stats = r.shard.queue_stats(&requests(ASYNC));
    assert_eq!((stats.depth, stats.in_flight), (2, 0), "{stats:?}");
    let got = r.fetch("FNS", requests(ASYNC), 10, 2);
    assert_eq!(ids(&got), vec![a, c], "FIFO kept, the acked one gone");
    assert_eq!(got[0].delivery_count, 2, "a's lease ended with the crash");
    assert_eq!(got[1].delivery_count, 1);
    assert_eq!(
        got[0].payload,
        Payload::AtOffset(d.shard.exchange(a).unwrap().request_offset)
    );
    assert_eq!(r.shard.exchanges().count(), 3);
    // New ids do not repeat old ones.
    let new = r.send_ok("MFC", request(ASYNC));
    assert!(![a, b, c].contains(&new));
}

#[test]
fn given_last_allowed_delivery_leased_at_crash_when_recovered_then_dead_lettered_not_delivered_again(
) {
    // A crash ends the lease as a dropped connection does; a live
    // `Disconnected` on the last allowed delivery dead-letters the request,
    // so recovery must not hand it out a (deliveries_max + 1)th time.
    let mut d = Driver::new();
    let id = d.send_ok("MFC", request(ASYNC));
    let mut t = T0;
    for n in 1..DELIVERIES_MAX {
        assert_eq!(d.fetch("FNS", requests(ASYNC), 1, 1)[0].delivery_count, n);
        t += LEASE_MS;
        d.tick_at(t);
    }
    let last = d.fetch("FNS", requests(ASYNC), 1, 1);
    assert_eq!(last[0].delivery_count, DELIVERIES_MAX);
    d.commit();

    let (mut r, _) = d.restart();
    let got = r.fetch("FNS", requests(ASYNC), 1, 2);
    assert!(
        got.is_empty(),
        "delivered again with count {} > deliveries_max {DELIVERIES_MAX}",
        got[0].delivery_count
    );
    assert_eq!(r.shard.counters().dead_lettered, 1);
    r.commit();
    let answer = r.fetch("MFC", answers("MFC"), 1, 9);
    assert_eq!(answer[0].reply_to, Some(id));
    assert_eq!(refusal_code(&answer[0]), Some(RefusalCode::Undeliverable));
}

#[test]
fn given_log_offsets_going_backwards_when_replayed_then_unavailable_not_panic() {
    let mut d = Driver::new();
    d.send_ok("MFC", request(ASYNC));
    d.send_ok("MFC", request(ASYNC));
    let mut fresh = Shard::new(config(0, 1), registry(), 0);
    fresh
        .replay(1, d.log[1].1.clone())
        .expect("a gap is allowed (trimmed log)");
    let r = fresh.replay(0, d.log[0].1.clone());
    assert!(matches!(r, Err(HubError::Unavailable(_))), "{r:?}");
}

#[test]
fn given_log_when_replayed_then_deadlines_still_fire() {
    let mut d = Driver::new();
    let id = d.send_ok("MFC", request(ASYNC));
    let (mut r, out) = d.restart();
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::ArmTimer { at_ms } if *at_ms <= T0 + ASYNC_DEADLINE_MS)),
        "{out:?}"
    );
    r.tick_at(T0 + ASYNC_DEADLINE_MS);
    r.commit();
    let got = r.fetch("MFC", answers("MFC"), 1, 9);
    assert_eq!(got[0].reply_to, Some(id));
    assert_eq!(refusal_code(&got[0]), Some(RefusalCode::DeadlineExceeded));
}

#[test]
fn given_deadline_passed_during_downtime_when_recovered_then_expired_on_first_tick() {
    let mut d = Driver::new();
    let id = d.send_ok("MFC", request(ASYNC));
    d.set_time(T0 + 5 * ASYNC_DEADLINE_MS);
    let (mut r, _) = d.restart();
    r.tick_at(T0 + 5 * ASYNC_DEADLINE_MS);
    assert_eq!(r.shard.counters().expired, 1);
    assert!(r.event_kinds(id).contains(&EventKind::Expired));
}

#[test]
fn given_log_when_replayed_then_idempotency_keys_still_deduplicate() {
    let mut d = Driver::new();
    let original = d.send_ok("MFC", keyed(ASYNC, "k-1"));
    d.set_time(T0 + 10);
    let (mut r, _) = d.restart();
    let reply = r.committed_reply("MFC", Command::SendRequest(keyed(ASYNC, "k-1")));
    assert_eq!(
        reply,
        Ok(ShardReply::Accepted {
            receipt: None,
            id: original,
            time_ms: T0,
            duplicate: true,
        })
    );
    // And the window still ends.
    r.tick_at(T0 + DEDUP_MS);
    assert_ne!(r.send_ok("MFC", keyed(ASYNC, "k-1")), original);
}

#[test]
fn given_answer_not_acked_when_replayed_then_answer_sent_to_consumer_again() {
    let mut d = Driver::new();
    let id = d.send_ok("MFC", request(ASYNC));
    d.respond("FNS", id);
    let before = d.fetch("MFC", answers("MFC"), 1, 9);
    let (mut r, out) = d.restart();
    let resent = enqueued_answers(&out);
    assert_eq!(resent.len(), 1);
    assert_eq!(
        resent[0].1.id, before[0].id,
        "the same answer, not a new one"
    );
    let after = r.fetch("MFC", answers("MFC"), 1, 9);
    assert_eq!(after[0].id, before[0].id);
    assert_eq!(
        after[0].payload,
        Payload::AtOffset(
            r.shard
                .exchange(id)
                .unwrap()
                .outcome
                .as_ref()
                .unwrap()
                .answer_offset
        )
    );
}

#[test]
fn given_answer_delivered_before_crash_when_delivered_again_then_count_continues_and_history_records_it(
) {
    // A request delivered before a crash comes back with its count + 1
    // (tested above); an answer is a message of a queue too, and its second
    // delivery is neither a "first delivery" nor missing from its history.
    let mut d = Driver::new();
    let id = d.send_ok("MFC", request(ASYNC));
    d.respond("FNS", id);
    d.set_time(T0 + 1);
    assert_eq!(d.fetch("MFC", answers("MFC"), 1, 9)[0].delivery_count, 1);
    d.commit();
    d.set_time(T0 + 2);
    let (mut r, _) = d.restart();
    let again = r.fetch("MFC", answers("MFC"), 1, 9);
    r.commit();
    let delivered: Vec<(u64, u32)> = r
        .history(id)
        .into_iter()
        .filter(|(k, _, _)| *k == EventKind::AnswerDelivered)
        .map(|(_, t, n)| (t, n))
        .collect();
    assert_eq!(
        (again[0].delivery_count, delivered),
        (2, vec![(T0 + 1, 1), (T0 + 2, 2)]),
        "(delivery_count, AnswerDelivered events) after the restart"
    );
}

#[test]
fn given_finished_exchange_when_replayed_then_nothing_sent_again() {
    let mut d = Driver::new();
    let (id, _) = finished_exchange(&mut d);
    let (mut r, out) = d.restart();
    assert!(enqueued_answers(&out).is_empty(), "{out:?}");
    assert!(r.fetch("MFC", answers("MFC"), 1, 9).is_empty());
    assert!(r.shard.exchange(id).unwrap().finished());
}

// ---- snapshot ----

#[test]
fn given_snapshot_when_replayed_into_fresh_shard_then_same_exchanges() {
    let mut d = Driver::new();
    finished_exchange(&mut d);
    let waiting = d.send_ok("MFC", keyed(ASYNC, "k-1"));
    let leased = d.send_ok("SFR", request(ASYNC));
    let refused = d.send_ok("MFC", request(ASYNC));
    d.fetch("FNS", requests(ASYNC), 2, 1);
    d.committed_reply(
        "FNS",
        Command::SendRefusal {
            request_id: refused,
            code: RefusalCode::NoData,
            reason: "none".into(),
        },
    )
    .unwrap();
    let first = d.shard.next_offset();
    let records = d.shard.snapshot(first);
    for (i, record) in records.into_iter().enumerate() {
        d.log.push((first + i as u64, record));
    }
    d.commit();
    d.shard.snapshot_durable(first);
    // Work after the snapshot is replayed from the log's tail.
    let later = d.send_ok("MFC", request(ASYNC));
    d.set_time(T0 + 20);

    let (mut r, _) = d.restart_from(first);
    let mut live: Vec<Exchange> = d.shard.exchanges().map(|e| e.into_owned()).collect();
    let mut restored: Vec<Exchange> = r.shard.exchanges().map(|e| e.into_owned()).collect();
    live.sort_by_key(|e| e.id);
    restored.sort_by_key(|e| e.id);
    assert_eq!(restored, live);
    assert_eq!(r.shard.retention_floor(), d.shard.retention_floor());
    assert_eq!(r.status("MFC", refused), d.status("MFC", refused));

    // The same exchanges behave the same: queue order, dedup, answers.
    let got = r.fetch("FNS", requests(ASYNC), 10, 2);
    assert_eq!(ids(&got), vec![waiting, leased, later]);
    let again = r.committed_reply("MFC", Command::SendRequest(keyed(ASYNC, "k-1")));
    assert!(matches!(again, Ok(ShardReply::Accepted { id, duplicate: true, .. }) if id == waiting));
    let answers_now = r.fetch("MFC", answers("MFC"), 10, 9);
    assert_eq!(answers_now.len(), 1);
    assert_eq!(answers_now[0].reply_to, Some(refused));
}

// ---- flags carried ----

#[test]
fn given_test_flag_and_transaction_when_delivered_then_carried_to_request_and_answer() {
    let mut d = Driver::new();
    let marked = NewRequest {
        test: true,
        transaction: Some("T-42".into()),
        ..request(ASYNC)
    };
    let id = d.send_ok("MFC", marked);
    let got = d.fetch("FNS", requests(ASYNC), 1, 1);
    assert!(got[0].test);
    assert_eq!(got[0].transaction.as_deref(), Some("T-42"));
    let (_, mut out) = d.command(
        "FNS",
        Command::SendResponse {
            request_id: id,
            payload: Bytes::new(),
            attachments: Vec::new(),
        },
    );
    out.extend(d.commit());
    let routed = enqueued_answers(&out);
    assert!(routed[0].1.test);
    assert_eq!(routed[0].1.transaction.as_deref(), Some("T-42"));
    let answer = d.fetch("MFC", answers("MFC"), 1, 9);
    assert!(answer[0].test);
    assert_eq!(answer[0].transaction.as_deref(), Some("T-42"));
    // And plain traffic is not marked.
    let plain = d.send_ok("MFC", request(ASYNC));
    let got = d.fetch("FNS", requests(ASYNC), 1, 1);
    assert_eq!(got[0].id, plain);
    assert!(!got[0].test && got[0].transaction.is_none());
}

// ---- the history archive (ADR 0005) ----

fn archiving(keep_ms: u64) -> ShardConfig {
    ShardConfig {
        finished_keep_ms: Some(keep_ms),
        snapshot_finished: false,
        archive_histories: true,
        ..config(0, 1)
    }
}

fn archive_asks(out: &[Output]) -> Vec<StatusView> {
    out.iter()
        .filter_map(|o| match o {
            Output::Archive { history } => Some(history.clone()),
            _ => None,
        })
        .collect()
}

fn snapshot_ids(d: &mut Driver) -> Vec<MessageId> {
    let next = d.shard.next_offset();
    d.shard
        .snapshot(next)
        .iter()
        .filter_map(|r| match r {
            Record::SnapshotPart(b) => match snapshot::decode_part(b).unwrap() {
                snapshot::Part::Exchange(ex, _) => Some(ex.id),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

#[test]
fn given_archiving_when_answer_ack_not_yet_durable_then_no_archive_asked_until_it_is() {
    let mut d = Driver::with_config(archiving(1_000));
    let id = d.send_ok("MFC", request(ASYNC));
    d.fetch("FNS", requests(ASYNC), 1, 1);
    d.respond("FNS", id);
    let answer = d.fetch("MFC", answers("MFC"), 1, 9);
    let (_, out) = d.command(
        "MFC",
        Command::Ack {
            queue: answers("MFC"),
            id: answer[0].id,
            reader: 9,
        },
    );
    assert!(
        archive_asks(&out).is_empty(),
        "the finishing record is not durable yet"
    );
    let out = d.commit();
    let asked = archive_asks(&out);
    assert_eq!(asked.len(), 1);
    assert_eq!(
        asked[0],
        d.status("OPERATOR", id).unwrap(),
        "exactly what status shows"
    );
    assert_eq!(d.shard.archiving_count(), 1);
}

#[test]
fn given_eviction_due_before_archive_durable_when_archived_then_it_leaves_memory_then() {
    let mut d = Driver::with_config(archiving(1_000));
    let (id, answer_id, out) = finished_exchange_out(&mut d);
    assert_eq!(archive_asks(&out).len(), 1);
    d.tick_at(T0 + 5 + 1_000);
    assert!(
        d.shard.exchange(id).is_some(),
        "kept until the archive holds it"
    );
    assert!(d.status("MFC", id).is_ok());
    d.step(Input::Archived { request_id: id });
    assert!(d.shard.exchange(id).is_none(), "evicted once archived");
    assert_eq!(d.shard.counters().evicted, 1);
    assert_eq!(d.shard.counters().archived, 1);
    for asked in [id, answer_id] {
        let (token, out) = d.command("SFR", Command::Status { id: asked });
        assert!(reply(&out, token).is_none(), "the archive answers: {out:?}");
        assert!(
            out.iter().any(|o| matches!(o, Output::StatusFromArchive { token: t, id: i, caller, operator: false }
                if *t == token && *i == asked && caller == &p("SFR"))),
            "{out:?}"
        );
    }
    let (_, out) = d.command("OPERATOR", Command::Status { id });
    assert!(out
        .iter()
        .any(|o| matches!(o, Output::StatusFromArchive { operator: true, .. })));
}

#[test]
fn given_archived_before_eviction_when_keep_passes_then_evicted_at_once() {
    let mut d = Driver::with_config(archiving(1_000));
    let (id, _, _) = finished_exchange_out(&mut d);
    d.step(Input::Archived { request_id: id });
    assert!(
        d.status("MFC", id).is_ok(),
        "still in memory for finished_keep_ms"
    );
    d.tick_at(T0 + 5 + 1_000);
    assert!(d.shard.exchange(id).is_none());
}

#[test]
fn given_finished_not_yet_archived_when_snapshot_then_kept_in_it_until_archived() {
    let mut d = Driver::with_config(archiving(60_000));
    let (id, _, _) = finished_exchange_out(&mut d);
    assert_eq!(
        snapshot_ids(&mut d),
        vec![id],
        "the snapshot is its only copy"
    );
    d.step(Input::Archived { request_id: id });
    assert!(snapshot_ids(&mut d).is_empty(), "the archive holds it now");
}

#[test]
fn given_finished_exchange_in_replayed_log_when_recovered_then_archive_asked_again() {
    let mut d = Driver::with_config(archiving(60_000));
    let (id, answer_id, _) = finished_exchange_out(&mut d);
    let (mut r, out) = d.restart();
    let asked = archive_asks(&out);
    assert_eq!(asked.len(), 1, "{out:?}");
    assert_eq!(asked[0].request_id, id);
    assert_eq!(asked[0].answer_id, Some(answer_id));
    // The archive already held it: it says so at once and nothing else happens.
    let out = r.step(Input::Archived { request_id: id });
    assert!(appended(&out).is_empty());
    assert!(archive_asks(&out).is_empty());
}

#[test]
fn given_archived_unknown_request_when_reported_then_ignored() {
    let mut d = Driver::with_config(archiving(60_000));
    let out = d.step(Input::Archived {
        request_id: MessageId::new(T0, 0, 77),
    });
    assert!(out.is_empty(), "{out:?}");
    assert_eq!(d.shard.counters().archived, 0);
}

#[test]
fn given_archiving_off_when_evicted_then_not_found_as_before() {
    let mut d = Driver::with_config(ShardConfig {
        finished_keep_ms: Some(10),
        ..config(0, 1)
    });
    let (id, _, out) = finished_exchange_out(&mut d);
    assert!(archive_asks(&out).is_empty());
    d.tick_at(T0 + 100);
    assert_eq!(d.status("MFC", id), Err(HubError::NotFound));
}

#[test]
fn given_retention_period_when_messages_younger_then_floor_held_back_until_they_age() {
    const PERIOD_MS: u64 = 10_000;
    let mut d = Driver::with_config(ShardConfig {
        retention_ms: PERIOD_MS,
        ..archiving(1)
    });
    let (id, _, _) = finished_exchange_out(&mut d);
    d.step(Input::Archived { request_id: id });
    d.tick_at(T0 + 10);
    let first = d.shard.next_offset();
    d.shard.snapshot(first);
    d.commit();
    d.shard.snapshot_durable(first);
    assert_eq!(
        d.shard.retention_floor(),
        0,
        "its messages are younger than the period"
    );
    d.tick_at(T0 + 10 + PERIOD_MS);
    let second = d.shard.next_offset();
    d.shard.snapshot(second);
    d.commit();
    d.shard.snapshot_durable(second);
    assert_eq!(
        d.shard.retention_floor(),
        first,
        "below the first snapshot everything is older than the period"
    );
    let mut no_period = Driver::with_config(archiving(1));
    let (id, _, _) = finished_exchange_out(&mut no_period);
    no_period.step(Input::Archived { request_id: id });
    no_period.tick_at(T0 + 10);
    let start = no_period.shard.next_offset();
    no_period.shard.snapshot(start);
    no_period.commit();
    no_period.shard.snapshot_durable(start);
    assert_eq!(
        no_period.shard.retention_floor(),
        start,
        "no period: as soon as nothing needs it"
    );
}

// ---- every acknowledgement waits for durability ----

fn ack_cmd(queue: QueueId, id: MessageId, reader: ReaderId) -> Command {
    Command::Ack { queue, id, reader }
}

fn nack_cmd(queue: QueueId, id: MessageId, reader: ReaderId) -> Command {
    Command::Nack {
        queue,
        id,
        reader,
        delay_ms: 0,
    }
}

/// An async request answered (durable) and its answer leased to reader 9;
/// returns (request id, answer id).
fn leased_answer(d: &mut Driver) -> (MessageId, MessageId) {
    let id = d.send_ok("MFC", request(ASYNC));
    d.fetch("FNS", requests(ASYNC), 1, 1);
    d.respond("FNS", id);
    let answer = d.fetch("MFC", answers("MFC"), 1, 9);
    (id, answer[0].id)
}

#[test]
fn given_answer_ack_when_its_record_not_durable_then_no_done_until_commit() {
    let mut d = Driver::new();
    let (id, answer_id) = leased_answer(&mut d);
    let (token, out) = d.command("MFC", ack_cmd(answers("MFC"), answer_id, 9));
    assert_eq!(reply(&out, token), None, "answered only once durable");
    assert!(appended(&out).iter().any(|r| matches!(r,
        Record::Event(e) if e.request_id == id && e.kind == EventKind::AnswerAcked)));
    assert_eq!(reply(&d.commit(), token), Some(Ok(ShardReply::Done)));
    // A crash after the reply keeps it acked: not delivered again.
    let (mut again, _) = d.restart();
    assert!(again.fetch("MFC", answers("MFC"), 1, 9).is_empty());
    assert!(again.shard.exchange(id).unwrap().answer_acked);
}

#[test]
fn given_answer_queue_on_another_shard_when_acked_then_done_only_after_request_shard_commits() {
    // Find a two-shard layout where MFC's answers and the async kind live apart.
    let answers_shard = answers("MFC").shard(2);
    let request_shard = requests(ASYNC).shard(2);
    assert_ne!(answers_shard, request_shard, "the layout this test needs");
    let mut req = Shard::new(config(request_shard, 2), registry(), 0);
    let mut ans = Shard::new(config(answers_shard, 2), registry(), 0);
    let caller = |c: &str| p(c);
    let mut out = Vec::new();
    let cmd = |token, who: &str, command| Input::Command {
        token,
        caller: caller(who),
        command,
    };
    req.step(
        T0,
        cmd(1, "MFC", Command::SendRequest(request(ASYNC))),
        &mut out,
    );
    req.step(
        T0,
        Input::Committed {
            durable_offset: req.next_offset(),
        },
        &mut out,
    );
    let fetch = Command::Fetch {
        queue: requests(ASYNC),
        max: 1,
        wait_ms: 0,
        reader: 1,
    };
    req.step(T0, cmd(2, "FNS", fetch), &mut out);
    let Some(Ok(ShardReply::Messages(got))) = reply(&out, 2) else {
        panic!("no delivery: {out:?}")
    };
    let id = got[0].id;
    let respond = Command::SendResponse {
        request_id: id,
        payload: Bytes::from_static(b"answer"),
        attachments: Vec::new(),
    };
    req.step(T0, cmd(3, "FNS", respond), &mut out);
    out.clear();
    req.step(
        T0,
        Input::Committed {
            durable_offset: req.next_offset(),
        },
        &mut out,
    );
    let (_, envelope) = enqueued_answers(&out).pop().expect("answer routed");
    ans.step(
        T0,
        Input::Peer(PeerMsg::EnqueueAnswer(envelope.clone())),
        &mut out,
    );
    let fetch = Command::Fetch {
        queue: answers("MFC"),
        max: 1,
        wait_ms: 0,
        reader: 9,
    };
    ans.step(T0, cmd(4, "MFC", fetch), &mut out);
    // The consumer acks on the answer queue's shard: no reply there yet.
    let mut acked = Vec::new();
    ans.step(
        T0,
        cmd(5, "MFC", ack_cmd(answers("MFC"), envelope.id, 9)),
        &mut acked,
    );
    assert_eq!(reply(&acked, 5), None, "not durable anywhere yet");
    let to_request: Vec<PeerMsg> = acked
        .iter()
        .filter_map(|o| match o {
            Output::ToShard { shard, msg } if *shard == request_shard => Some(msg.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(to_request.len(), 1);
    // The request's shard records it, and settles only after the commit.
    let mut recorded = Vec::new();
    req.step(T0, Input::Peer(to_request[0].clone()), &mut recorded);
    assert!(
        !recorded.iter().any(|o| matches!(
            o,
            Output::ToShard {
                msg: PeerMsg::AnswerAckSettled { .. },
                ..
            }
        )),
        "settled before durable: {recorded:?}"
    );
    let mut committed = Vec::new();
    req.step(
        T0,
        Input::Committed {
            durable_offset: req.next_offset(),
        },
        &mut committed,
    );
    let settled: Vec<PeerMsg> = committed
        .iter()
        .filter_map(|o| match o {
            Output::ToShard { shard, msg } if *shard == answers_shard => Some(msg.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        settled,
        vec![PeerMsg::AnswerAckSettled {
            token: 5,
            result: Ok(())
        }]
    );
    let mut done = Vec::new();
    ans.step(T0, Input::Peer(settled[0].clone()), &mut done);
    assert_eq!(reply(&done, 5), Some(Ok(ShardReply::Done)));
}

#[test]
fn given_answer_ack_waiting_when_request_shard_storage_fails_then_ack_fails() {
    let mut d = Driver::new();
    let (_, answer_id) = leased_answer(&mut d);
    let (token, out) = d.command("MFC", ack_cmd(answers("MFC"), answer_id, 9));
    assert_eq!(reply(&out, token), None);
    let out = d.step(Input::StorageFailed { full: false });
    assert!(matches!(
        reply(&out, token),
        Some(Err(HubError::Unavailable(_)))
    ));
}

#[test]
fn given_failed_request_shard_when_answer_ack_arrives_then_settled_with_the_failure() {
    let mut d = Driver::new();
    let (id, _) = leased_answer(&mut d);
    d.step(Input::StorageFailed { full: true });
    let route = AckRoute {
        shard: 1,
        token: 77,
    };
    let mut out = Vec::new();
    d.shard.step(
        T0,
        Input::Peer(PeerMsg::AnswerAcked {
            request_id: id,
            ack: Some(route),
        }),
        &mut out,
    );
    let settled: Vec<&PeerMsg> = out
        .iter()
        .filter_map(|o| match o {
            Output::ToShard { shard: 1, msg } => Some(msg),
            _ => None,
        })
        .collect();
    assert_eq!(
        settled,
        vec![&PeerMsg::AnswerAckSettled {
            token: 77,
            result: Err(HubError::StorageFull)
        }]
    );
}

#[test]
fn given_nack_of_request_when_event_not_durable_then_no_done_until_commit() {
    let mut d = Driver::new();
    let id = d.send_ok("MFC", request(ASYNC));
    d.fetch("FNS", requests(ASYNC), 1, 1);
    let (token, out) = d.command("FNS", nack_cmd(requests(ASYNC), id, 1));
    assert_eq!(reply(&out, token), None, "answered only once durable");
    assert_eq!(reply(&d.commit(), token), Some(Ok(ShardReply::Done)));
    // After a crash the nack is still in the history.
    let (mut again, _) = d.restart();
    assert!(again.event_kinds(id).contains(&EventKind::Nacked));
}

#[test]
fn given_nack_that_dead_letters_when_replied_then_the_refusal_is_durable() {
    let mut d = Driver::new();
    let id = d.send_ok("MFC", request(ASYNC));
    for round in 1..DELIVERIES_MAX {
        d.fetch("FNS", requests(ASYNC), 1, 1);
        d.committed_reply("FNS", nack_cmd(requests(ASYNC), id, 1))
            .unwrap_or_else(|e| panic!("nack {round}: {e}"));
    }
    d.fetch("FNS", requests(ASYNC), 1, 1);
    let (token, out) = d.command("FNS", nack_cmd(requests(ASYNC), id, 1));
    assert_eq!(reply(&out, token), None);
    let out = d.commit();
    assert_eq!(reply(&out, token), Some(Ok(ShardReply::Done)));
    let (again, _) = d.restart();
    assert!(
        !again.exchange_outcome_is_none(id),
        "dead-lettered for good"
    );
}

#[test]
fn given_nack_of_answer_then_done_at_once_as_nothing_is_recorded() {
    let mut d = Driver::new();
    let (_, answer_id) = leased_answer(&mut d);
    let (token, out) = d.command("MFC", nack_cmd(answers("MFC"), answer_id, 9));
    assert_eq!(reply(&out, token), Some(Ok(ShardReply::Done)));
    assert!(appended(&out).is_empty());
}

#[test]
fn given_request_acked_but_not_durable_when_acked_again_then_done_only_after_commit() {
    let mut d = Driver::new();
    let id = d.send_ok("MFC", request(ASYNC));
    d.fetch("FNS", requests(ASYNC), 1, 1);
    let (first, _) = d.command("FNS", ack_cmd(requests(ASYNC), id, 1));
    let (second, out) = d.command("FNS", ack_cmd(requests(ASYNC), id, 2));
    assert_eq!(
        reply(&out, second),
        None,
        "the first ack is not durable yet"
    );
    let out = d.commit();
    assert_eq!(reply(&out, first), Some(Ok(ShardReply::Done)));
    assert_eq!(reply(&out, second), Some(Ok(ShardReply::Done)));
    // Once durable, a repeat answers at once.
    assert_eq!(
        d.now_reply("FNS", ack_cmd(requests(ASYNC), id, 3)),
        Ok(ShardReply::Done)
    );
}

#[test]
fn given_request_of_another_kind_when_acked_on_this_queue_then_not_found() {
    let mut d = Driver::new();
    let (_, call_out) = d.command("MFC", Command::Call(request(RT)));
    drop(call_out);
    d.commit();
    let got = d.fetch("MVD", requests(RT), 1, 5);
    d.committed_reply(
        "MVD",
        Command::SendResponse {
            request_id: got[0].id,
            payload: Bytes::new(),
            attachments: Vec::new(),
        },
    )
    .unwrap();
    // FNS reads the async queue; the realtime request is not on it.
    assert_eq!(
        d.now_reply("FNS", ack_cmd(requests(ASYNC), got[0].id, 1)),
        Err(HubError::NotFound)
    );
}

#[test]
fn given_answer_already_acked_when_acked_again_then_done_and_unacked_one_not_found() {
    let mut d = Driver::new();
    let (_, answer_id) = leased_answer(&mut d);
    assert_eq!(
        d.committed_reply("MFC", ack_cmd(answers("MFC"), answer_id, 9)),
        Ok(ShardReply::Done)
    );
    // A retry (say, from a new connection after a lost reply) is harmless.
    assert_eq!(
        d.committed_reply("MFC", ack_cmd(answers("MFC"), answer_id, 10)),
        Ok(ShardReply::Done)
    );
    // An answer not acked, leased to another reader: not this reader's to ack.
    let (_, other) = leased_answer(&mut d);
    assert_eq!(
        d.committed_reply("MFC", ack_cmd(answers("MFC"), other, 10)),
        Err(HubError::NotFound)
    );
    // An id no shard made, and a request id on the answer queue.
    let stray = MessageId::new(T0, 0, 4242);
    assert_eq!(
        d.committed_reply("MFC", ack_cmd(answers("MFC"), stray, 9)),
        Err(HubError::NotFound)
    );
}

#[test]
fn given_refusal_when_not_durable_then_no_done_until_commit() {
    let mut d = Driver::new();
    let id = d.send_ok("MFC", request(ASYNC));
    d.fetch("FNS", requests(ASYNC), 1, 1);
    let (token, out) = d.command(
        "FNS",
        Command::SendRefusal {
            request_id: id,
            code: RefusalCode::NoData,
            reason: "none".into(),
        },
    );
    assert_eq!(reply(&out, token), None);
    assert_eq!(reply(&d.commit(), token), Some(Ok(ShardReply::Done)));
    let (again, _) = d.restart();
    assert!(!again.exchange_outcome_is_none(id));
}

// ---- a call repeating an idempotency key ----

#[test]
fn given_answered_call_when_repeated_with_its_key_then_the_original_answer() {
    let mut d = Driver::new();
    let (call, mut out) = d.command("MFC", Command::Call(keyed(RT, "k1")));
    out.extend(d.commit());
    let got = d.fetch("MVD", requests(RT), 1, 5);
    let request_id = got[0].id;
    d.command(
        "MVD",
        Command::SendResponse {
            request_id,
            payload: Bytes::from_static(b"valid"),
            attachments: Vec::new(),
        },
    );
    let out = d.commit();
    let Some(Ok(ShardReply::Answer(first))) = reply(&out, call) else {
        panic!("no answer: {out:?}")
    };
    d.step(Input::CallReplied {
        request_id,
        taken: true,
    });
    let (again, out) = d.command("MFC", Command::Call(keyed(RT, "k1")));
    let Some(Ok(ShardReply::Answer(repeat))) = reply(&out, again) else {
        panic!("no answer to the repeat: {out:?}")
    };
    assert_eq!(repeat.id, first.id);
    assert_eq!(repeat.reply_to, Some(request_id));
    assert_eq!(repeat.body, first.body);
    assert_eq!(
        repeat.payload,
        Payload::AtOffset(
            d.shard
                .exchange(request_id)
                .unwrap()
                .outcome
                .as_ref()
                .unwrap()
                .answer_offset
        )
    );
    assert!(appended(&out).is_empty(), "no second request");
    assert_eq!(d.shard.counters().duplicates, 1);
}

#[test]
fn given_call_answered_but_not_durable_when_repeated_then_the_answer_after_commit() {
    let mut d = Driver::new();
    let (_, mut out) = d.command("MFC", Command::Call(keyed(RT, "k1")));
    out.extend(d.commit());
    let got = d.fetch("MVD", requests(RT), 1, 5);
    d.command(
        "MVD",
        Command::SendResponse {
            request_id: got[0].id,
            payload: Bytes::from_static(b"valid"),
            attachments: Vec::new(),
        },
    );
    let (again, out) = d.command("MFC", Command::Call(keyed(RT, "k1")));
    assert_eq!(reply(&out, again), None, "the answer is not durable yet");
    let out = d.commit();
    let Some(Ok(ShardReply::Answer(repeat))) = reply(&out, again) else {
        panic!("no answer to the repeat: {out:?}")
    };
    assert_eq!(repeat.payload, Payload::Bytes(Bytes::from_static(b"valid")));
}

#[test]
fn given_expired_call_when_repeated_with_its_key_then_deadline_exceeded() {
    let mut d = Driver::new();
    let (call, _) = d.command("MFC", Command::Call(keyed(RT, "k1")));
    d.commit();
    let out = d.tick_at(T0 + RT_DEADLINE_MS);
    assert_eq!(reply(&out, call), Some(Err(HubError::DeadlineExceeded)));
    let (again, out) = d.command("MFC", Command::Call(keyed(RT, "k1")));
    assert_eq!(reply(&out, again), None, "the expiry is not durable yet");
    assert_eq!(
        reply(&d.commit(), again),
        Some(Err(HubError::DeadlineExceeded))
    );
}

#[test]
fn given_call_in_flight_when_repeated_with_its_key_then_duplicate_with_original_id() {
    let mut d = Driver::new();
    let (call, out) = d.command("MFC", Command::Call(keyed(RT, "k1")));
    let original = match &appended(&out)[..] {
        [Record::Request(r)] => r.id,
        other => panic!("expected one request record, got {other:?}"),
    };
    // Pipelined: the second comes before the first is durable.
    let (again, out) = d.command("MFC", Command::Call(keyed(RT, "k1")));
    assert_eq!(reply(&out, again), None, "the original is not durable yet");
    assert!(appended(&out).is_empty(), "no second request");
    let out = d.commit();
    assert_eq!(
        reply(&out, again),
        Some(Err(HubError::Duplicate { original }))
    );
    assert_eq!(
        reply(&out, call),
        None,
        "the original still waits for its answer"
    );
}

#[test]
fn given_send_request_when_call_repeats_its_key_then_duplicate_with_original_id() {
    let mut d = Driver::new();
    let original = d.send_ok("MFC", keyed(RT, "k1"));
    assert_eq!(
        d.now_reply("MFC", Command::Call(keyed(RT, "k1"))),
        Err(HubError::Duplicate { original })
    );
}

/// The batched operations' rules (`shard/batch.rs`), on this driver.
#[path = "batch_tests.rs"]
mod batch_tests;

/// Sends `n` bulk requests, takes them in one fetch and acks each:
/// returns their ids.
fn acked_bulk(d: &mut Driver, n: usize) -> Vec<MessageId> {
    let sent: Vec<MessageId> = (0..n).map(|_| d.send_ok("MFC", request(BULK))).collect();
    d.tick_at(T0 + 10);
    let mut got = Vec::new();
    // Bounded: each fetch takes at least one until all are taken.
    while got.len() < n {
        let more = ids(&d.fetch("FNS", requests(BULK), n as u32, 1));
        assert!(!more.is_empty(), "all {n} taken");
        got.extend(more);
    }
    assert!(got == sent, "taken in order");
    d.tick_at(T0 + 20);
    for id in &sent {
        d.ack("FNS", requests(BULK), *id, 1);
    }
    d.commit();
    sent
}

#[test]
fn given_acked_requests_when_held_for_answer_then_compact_and_seen_whole() {
    let mut d = Driver::new();
    let sent = acked_bulk(&mut d, 10);
    let held = d.shard.held();
    assert_eq!((held.awaiting, held.exchanges), (10, 0));
    // Status and the history are those of the full exchange.
    assert_eq!(
        d.history(sent[3]),
        vec![
            (EventKind::Accepted, T0, 0),
            (EventKind::Delivered, T0 + 10, 1),
            (EventKind::Acked, T0 + 20, 0)
        ]
    );
    // A repeated ack is harmless, as before.
    let (_, out) = d.command(
        "FNS",
        Command::Ack {
            queue: requests(BULK),
            id: sent[3],
            reader: 1,
        },
    );
    assert!(out
        .iter()
        .all(|o| !matches!(o, Output::Reply { result: Err(_), .. })));
    // The answer makes it whole again, and it ends as always.
    d.respond("FNS", sent[3]);
    d.commit();
    assert_eq!(d.shard.held().awaiting, 9);
    assert!(!d.exchange_outcome_is_none(sent[3]));
    assert_eq!(
        d.event_kinds(sent[3])[..4],
        [
            EventKind::Accepted,
            EventKind::Delivered,
            EventKind::Acked,
            EventKind::Answered
        ]
    );
}

#[test]
fn given_awaiting_requests_when_snapshot_replayed_then_restored_referred_to_and_still_expire() {
    let mut d = Driver::new();
    let sent = acked_bulk(&mut d, 5_000);
    let (first, records) = durable_snapshot(&mut d);
    assert_eq!(
        records.len(),
        4,
        "the clock, 5,000 awaiting in runs of 4,096, then the end"
    );
    let (mut r, _) = d.restart_from(first);
    assert_eq!(r.shard.held().awaiting, 5_000);
    assert_eq!(r.shard.held().exchanges, 0);
    assert_eq!(r.history(sent[4_999]), d.history(sent[4_999]));
    // Unchanged since: the live shard's next snapshot refers to both runs.
    let (_, again) = durable_snapshot(&mut d);
    assert_eq!(references(&again), (1, 2));
    // The deadline still ends them (each restored entry has its timer).
    r.tick_at(T0 + ASYNC_DEADLINE_MS);
    assert_eq!(r.shard.counters().expired, 5_000);
    assert_eq!(r.shard.held().awaiting, 0);
    assert_eq!(*r.event_kinds(sent[0]).last().unwrap(), EventKind::Expired);
}
#[path = "expiry_tests.rs"]
mod expiry_tests;
#[path = "quota_tests.rs"]
mod quota_tests;

#[path = "monitor_tests.rs"]
mod monitor_tests;

#[path = "format_tests.rs"]
mod format_tests;

#[path = "signature_tests.rs"]
mod signature_tests;

#[path = "journal_tests.rs"]
mod journal_tests;
