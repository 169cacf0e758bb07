//! Unit tests of the byte quota of request queues and the bound of answer
//! queues (ADR 0013), and of `nack_many` (`shard/batch.rs`), on the driver
//! of `shard/tests.rs`.

use super::*;

/// BYTES holds at most 100 payload bytes waiting; SLOW's answers are
/// bounded to 2 messages and 40 payload bytes (split among the shards).
const QUOTA_REGISTRY: &str = r#"
[[participant]]
id = "FNS"
name = "Federal Tax Service"
roles = ["provider"]

[[participant]]
id = "SLOW"
name = "A consumer that stops reading"
roles = ["consumer"]
answer_queue_messages_max = 2
answer_queue_bytes_max = 40

[[participant]]
id = "OPERATOR"
name = "Hub operator"
roles = ["operator"]

[[data_kind]]
id = "urn:test:bytes:1"
provider = "FNS"
mode = "async"
deadline_ms = 1000
payload_bytes_max = 64
queue_bytes_max = 100
consumers = ["SLOW"]

[[data_kind]]
id = "urn:test:rt:1"
provider = "FNS"
mode = "realtime"
deadline_ms = 200
payload_bytes_max = 64
consumers = ["SLOW"]
"#;
const BYTES: &str = "urn:test:bytes:1";

fn quota_driver(config: ShardConfig) -> Driver {
    let registry = Arc::new(Registry::from_toml(QUOTA_REGISTRY).expect("valid"));
    Driver {
        shard: Shard::new(config, registry, 0),
        log: Vec::new(),
        journaled: Vec::new(),
        durable: 0,
        now: T0,
        next_token: 1,
    }
}

fn sized(kind: &str, bytes: usize) -> NewRequest {
    NewRequest::new(kind, vec![b'x'; bytes])
}

fn answer(request_id: MessageId, bytes: usize) -> Command {
    Command::SendResponse {
        request_id,
        payload: Bytes::from(vec![b'a'; bytes]),
        attachments: Vec::new(),
    }
}

// ---- the byte quota of request queues ----

#[test]
fn given_queue_near_its_byte_quota_when_send_request_then_quota_exceeded_and_nothing_stored() {
    let mut d = quota_driver(config(0, 1));
    let first = d.send_ok("SLOW", sized(BYTES, 60));
    d.send_ok("SLOW", sized(BYTES, 30));
    assert_eq!(d.shard.waiting_bytes(&requests(BYTES)), 90);
    let appended_before = d.log.len();
    let r = d.now_reply("SLOW", Command::SendRequest(sized(BYTES, 11)));
    assert_eq!(r, Err(HubError::QuotaExceeded));
    assert_eq!(d.log.len(), appended_before, "nothing written");
    // Up to the bound exactly is fine.
    d.send_ok("SLOW", sized(BYTES, 10));
    assert_eq!(d.shard.waiting_bytes(&requests(BYTES)), 100);
    // The provider's ack frees the request's bytes; nothing accepted was dropped.
    let got = d.fetch("FNS", requests(BYTES), 1, 1);
    assert_eq!(ids(&got), vec![first]);
    d.ack("FNS", requests(BYTES), first, 1);
    assert_eq!(d.shard.waiting_bytes(&requests(BYTES)), 40);
    d.send_ok("SLOW", sized(BYTES, 60));
    assert_eq!(d.shard.queue_stats(&requests(BYTES)).depth, 3);
}

#[test]
fn given_a_batch_crossing_the_byte_quota_when_sent_then_only_the_messages_past_it_are_refused() {
    let mut d = quota_driver(config(0, 1));
    let batch = vec![sized(BYTES, 50), sized(BYTES, 60), sized(BYTES, 50)];
    let results = match d.committed_reply("SLOW", Command::SendRequests(batch)) {
        Ok(ShardReply::AcceptedMany(results)) => results,
        other => panic!("expected AcceptedMany, got {other:?}"),
    };
    assert!(results[0].is_ok() && results[2].is_ok(), "{results:?}");
    assert_eq!(results[1], Err(HubError::QuotaExceeded));
    assert_eq!(d.shard.waiting_bytes(&requests(BYTES)), 100);
}

#[test]
fn given_requests_answered_expired_or_committing_when_counted_then_only_those_waiting_count() {
    let mut d = quota_driver(config(0, 1));
    let answered = d.send_ok("SLOW", sized(BYTES, 20));
    d.send_ok("SLOW", sized(BYTES, 30));
    // Committing ones count from their record on.
    let (token, _) = d.command("SLOW", Command::SendRequest(sized(BYTES, 40)));
    assert_eq!(d.shard.waiting_bytes(&requests(BYTES)), 90);
    d.commit();
    let _ = token;
    assert_eq!(
        d.committed_reply("FNS", answer(answered, 1)),
        Ok(ShardReply::Done)
    );
    assert_eq!(d.shard.waiting_bytes(&requests(BYTES)), 70, "answered: out");
    d.tick_at(T0 + 1_000);
    d.commit();
    assert_eq!(d.shard.counters().expired, 2);
    assert_eq!(d.shard.waiting_bytes(&requests(BYTES)), 0, "expired: out");
}

#[test]
fn given_waiting_bytes_when_replayed_from_the_log_or_a_snapshot_then_the_same_count() {
    let mut d = quota_driver(config(0, 1));
    let taken = d.send_ok("SLOW", sized(BYTES, 20));
    d.send_ok("SLOW", sized(BYTES, 30));
    d.fetch("FNS", requests(BYTES), 1, 1); // whole now: leased
    let (first, _) = durable_snapshot(&mut d);
    d.send_ok("SLOW", sized(BYTES, 25)); // after the snapshot
    assert_eq!(d.shard.waiting_bytes(&requests(BYTES)), 75);
    for start in [0, first] {
        let (mut r, _) = d.restart_from(start);
        assert_eq!(r.shard.waiting_bytes(&requests(BYTES)), 75, "from {start}");
        let refused = r.now_reply("SLOW", Command::SendRequest(sized(BYTES, 26)));
        assert_eq!(refused, Err(HubError::QuotaExceeded), "from {start}");
        let got = r.fetch("FNS", requests(BYTES), 3, 2);
        assert!(
            ids(&got).contains(&taken),
            "the lease expired with the restart"
        );
        for m in &got {
            r.ack("FNS", requests(BYTES), m.id, 2);
        }
        assert_eq!(r.shard.waiting_bytes(&requests(BYTES)), 0, "from {start}");
    }
}

#[test]
fn given_a_snapshot_part_of_the_shape_before_sizes_when_decoded_then_sizes_are_zero() {
    use crate::shard::snapshot::{decode_exchange, encode_exchange};
    let mut d = quota_driver(config(0, 1));
    let id = d.send_ok("SLOW", sized(BYTES, 20));
    d.fetch("FNS", requests(BYTES), 1, 1);
    let ex = d.shard.exchange(id).expect("whole").into_owned();
    assert_eq!(ex.payload_bytes, 20);
    let mut part = Vec::new();
    encode_exchange(&ex, &mut part);
    assert_eq!(decode_exchange(&part).expect("decodes"), ex);
    // The older shape: no sizes flag, no trailing sizes.
    part.truncate(part.len() - 4);
    let texts: usize = [BYTES, "SLOW", "FNS"].iter().map(|t| 2 + t.len()).sum();
    let flags_at = 1 + 16 + texts + 8 + 8;
    assert_eq!(part[flags_at] & 0x20, 0x20, "the sizes flag");
    part[flags_at] &= !0x20;
    let old = decode_exchange(&part).expect("the older shape decodes");
    assert_eq!(old.payload_bytes, 0);
    assert_eq!((old.id, old.history.len()), (id, ex.history.len()));
}

// ---- the bound of answer queues ----

/// Sends `n` requests of 1 byte from SLOW and returns their ids.
fn open_requests(d: &mut Driver, n: usize) -> Vec<MessageId> {
    (0..n).map(|_| d.send_ok("SLOW", sized(BYTES, 1))).collect()
}

#[test]
fn given_a_consumer_that_never_reads_when_providers_answer_past_its_bound_then_quota_exceeded_until_it_acks(
) {
    let mut d = quota_driver(config(0, 1));
    let ids = open_requests(&mut d, 4);
    for id in &ids[..2] {
        assert_eq!(
            d.committed_reply("FNS", answer(*id, 10)),
            Ok(ShardReply::Done)
        );
    }
    let outstanding = d.shard.answers_outstanding(&p("SLOW"));
    assert_eq!((outstanding.messages, outstanding.bytes), (2, 20));
    // A third answer is refused before anything is stored; the request
    // stays open for the provider to answer later.
    let appended_before = d.log.len();
    let r = d.now_reply("FNS", answer(ids[2], 10));
    assert_eq!(r, Err(HubError::QuotaExceeded));
    assert_eq!(d.log.len(), appended_before, "nothing written");
    assert!(d.exchange_outcome_is_none(ids[2]));
    // Memory stays bounded: the answer queue holds the two only.
    assert_eq!(d.shard.queued_answers().count(), 2);
    assert_eq!(d.shard.queue_stats(&answers("SLOW")).depth, 2);
    // The consumer takes and acks one: the next answer goes.
    let got = d.fetch("SLOW", answers("SLOW"), 1, 7);
    d.ack("SLOW", answers("SLOW"), got[0].id, 7);
    assert_eq!(d.shard.answers_outstanding(&p("SLOW")).messages, 1);
    assert_eq!(
        d.committed_reply("FNS", answer(ids[2], 10)),
        Ok(ShardReply::Done)
    );
    assert_eq!(d.shard.queued_answers().count(), 2);
}

#[test]
fn given_answers_near_the_byte_bound_when_a_large_answer_comes_then_refused_unless_none_is_outstanding(
) {
    let mut d = quota_driver(config(0, 1));
    let ids = open_requests(&mut d, 3);
    // With nothing outstanding any answer within the kind's size goes,
    // even one over the consumer's bytes (40): the consumer can always
    // make progress.
    assert_eq!(
        d.committed_reply("FNS", answer(ids[0], 64)),
        Ok(ShardReply::Done)
    );
    let r = d.now_reply("FNS", answer(ids[1], 1));
    assert_eq!(r, Err(HubError::QuotaExceeded), "64 + 1 bytes over 40");
    let refusal = Command::SendRefusal {
        request_id: ids[1],
        code: RefusalCode::NoData,
        reason: "none".into(),
    };
    assert_eq!(
        d.now_reply("FNS", refusal),
        Err(HubError::QuotaExceeded),
        "a refusal is an answer too"
    );
    let got = d.fetch("SLOW", answers("SLOW"), 1, 7);
    d.ack("SLOW", answers("SLOW"), got[0].id, 7);
    assert_eq!(d.shard.answers_outstanding(&p("SLOW")).bytes, 0);
    assert_eq!(
        d.committed_reply("FNS", answer(ids[1], 30)),
        Ok(ShardReply::Done)
    );
}

#[test]
fn given_answers_at_the_bound_when_requests_expire_then_the_hub_answers_them_anyway() {
    let mut d = quota_driver(config(0, 1));
    let ids = open_requests(&mut d, 4);
    for id in &ids[..2] {
        assert_eq!(
            d.committed_reply("FNS", answer(*id, 10)),
            Ok(ShardReply::Done)
        );
    }
    // Hub-made answers are bounded by the requests accepted, never refused.
    d.tick_at(T0 + 1_000);
    d.commit();
    assert_eq!(d.shard.counters().expired, 2);
    assert_eq!(d.shard.answers_outstanding(&p("SLOW")).messages, 4);
    assert_eq!(d.shard.queued_answers().count(), 4);
}

#[test]
fn given_shards_when_a_consumer_bound_is_split_then_each_shard_holds_its_share() {
    // Of 2 messages and 40 bytes over 2 shards, each holds 1 and 20.
    let owner = requests(BYTES).shard(2);
    let mut d = quota_driver(config(owner, 2));
    let ids = open_requests(&mut d, 2);
    let (token, _) = d.command("FNS", answer(ids[0], 10));
    d.commit();
    let _ = token;
    assert_eq!(d.shard.answers_outstanding(&p("SLOW")).messages, 1);
    assert_eq!(
        d.now_reply("FNS", answer(ids[1], 1)),
        Err(HubError::QuotaExceeded)
    );
}

#[test]
fn given_answers_outstanding_when_replayed_then_the_bound_holds_after_the_restart() {
    let mut d = quota_driver(config(0, 1));
    let ids = open_requests(&mut d, 3);
    for id in &ids[..2] {
        assert_eq!(
            d.committed_reply("FNS", answer(*id, 10)),
            Ok(ShardReply::Done)
        );
    }
    let (first, _) = durable_snapshot(&mut d);
    for start in [0, first] {
        let (mut r, _) = d.restart_from(start);
        let out = r.shard.answers_outstanding(&p("SLOW"));
        assert_eq!((out.messages, out.bytes), (2, 20), "from {start}");
        assert_eq!(
            r.now_reply("FNS", answer(ids[2], 1)),
            Err(HubError::QuotaExceeded),
            "from {start}"
        );
    }
}

#[test]
fn given_a_call_waiting_for_its_answer_when_the_consumer_is_at_its_bound_then_the_answer_goes_to_the_caller(
) {
    let mut d = quota_driver(config(0, 1));
    let ids = open_requests(&mut d, 2);
    for id in &ids {
        assert_eq!(
            d.committed_reply("FNS", answer(*id, 10)),
            Ok(ShardReply::Done)
        );
    }
    let (call, _) = d.command("SLOW", Command::Call(sized("urn:test:rt:1", 1)));
    d.commit();
    let got = d.fetch("FNS", requests("urn:test:rt:1"), 1, 1);
    let (token, mut out) = d.command("FNS", answer(got[0].id, 10));
    out.extend(d.commit());
    assert_eq!(reply(&out, token), Some(Ok(ShardReply::Done)));
    assert!(matches!(reply(&out, call), Some(Ok(ShardReply::Answer(_)))));
}

// ---- nack_many ----

fn nack_many(ids: Vec<MessageId>, reader: ReaderId, delay_ms: u64) -> Command {
    Command::NackMany {
        queue: requests(ASYNC),
        ids,
        reader,
        delay_ms,
    }
}

fn refused_ids(r: Result<ShardReply, HubError>) -> Vec<(MessageId, HubError)> {
    match r {
        Ok(ShardReply::AckedMany(refused)) => refused,
        other => panic!("expected AckedMany, got {other:?}"),
    }
}

#[test]
fn given_leased_requests_when_nack_many_then_one_record_and_each_is_delivered_again_after_the_delay(
) {
    let mut d = Driver::new();
    let ids: Vec<MessageId> = (0..3).map(|_| d.send_ok("MFC", request(ASYNC))).collect();
    assert_eq!(d.fetch("FNS", requests(ASYNC), 3, 1).len(), 3);
    let stranger = MessageId::new(T0, 0, 999_999);
    let batch = vec![ids[0], ids[1], ids[1], stranger, ids[2]];
    let (token, out) = d.command("FNS", nack_many(batch, 1, 50));
    assert_eq!(reply(&out, token), None, "nothing before the commit");
    let records = appended(&out);
    assert_eq!(records.len(), 1, "one record: {records:?}");
    assert!(matches!(&records[0], Record::Events(es) if es.len() == 3
        && es.iter().all(|e| e.kind == EventKind::Nacked)));
    let refused = refused_ids(reply(&d.commit(), token).expect("reply once durable"));
    assert_eq!(
        refused,
        vec![(ids[1], HubError::NotFound), (stranger, HubError::NotFound)],
        "a repeat in the batch and an unknown id"
    );
    assert!(d.fetch("FNS", requests(ASYNC), 3, 1).is_empty(), "delayed");
    d.tick_at(T0 + 50);
    let again = d.fetch("FNS", requests(ASYNC), 3, 1);
    assert_eq!(super::ids(&again), ids, "in their places");
    assert!(again.iter().all(|m| m.delivery_count == 2));
    for id in &ids {
        assert_eq!(
            d.event_kinds(*id),
            vec![
                EventKind::Accepted,
                EventKind::Delivered,
                EventKind::Nacked,
                EventKind::Delivered
            ]
        );
    }
    // Replay applies the record as the three nacks it stands for.
    d.commit();
    let (r, _) = d.restart();
    for id in &ids {
        assert_eq!(r.shard.exchange(*id).expect("open").history.len(), 4);
    }
}

#[test]
fn given_a_request_on_its_last_delivery_when_nack_many_then_nacked_then_dead_lettered() {
    let mut d = Driver::new();
    let id = d.send_ok("MFC", request(ASYNC));
    for _ in 0..DELIVERIES_MAX {
        assert_eq!(d.fetch("FNS", requests(ASYNC), 1, 1).len(), 1);
        let r = d.committed_reply("FNS", nack_many(vec![id], 1, 0));
        assert_eq!(refused_ids(r), vec![]);
    }
    let kinds = d.event_kinds(id);
    assert_eq!(
        &kinds[kinds.len() - 2..],
        &[EventKind::Nacked, EventKind::DeadLettered]
    );
    assert_eq!(d.shard.counters().dead_lettered, 1);
}

#[test]
fn given_answers_leased_when_nack_many_then_done_at_once_and_nothing_recorded() {
    let mut d = Driver::new();
    let ids: Vec<MessageId> = (0..2).map(|_| d.send_ok("MFC", request(ASYNC))).collect();
    for id in &ids {
        d.respond("FNS", *id);
    }
    let got = d.fetch("MFC", answers("MFC"), 2, 3);
    assert_eq!(got.len(), 2);
    let before = d.log.len();
    let command = Command::NackMany {
        queue: answers("MFC"),
        ids: super::ids(&got),
        reader: 3,
        delay_ms: 0,
    };
    assert_eq!(refused_ids(d.now_reply("MFC", command)), vec![]);
    assert_eq!(d.log.len(), before, "an answer queue records nothing");
    let again = d.fetch("MFC", answers("MFC"), 2, 3);
    assert_eq!(super::ids(&again), super::ids(&got), "ready again at once");
    assert!(again.iter().all(|m| m.delivery_count == 2));
}

#[test]
fn given_bad_batches_when_nack_many_then_refused_whole() {
    let mut d = Driver::new();
    let r = d.now_reply("FNS", nack_many(vec![], 1, 0));
    assert!(matches!(r, Err(HubError::Malformed(m)) if m.contains("empty batch")));
    let long = vec![MessageId::new(T0, 0, 1); gonets_types::BATCH_MESSAGES_MAX + 1];
    let r = d.now_reply("FNS", nack_many(long, 1, 0));
    assert!(matches!(r, Err(HubError::Malformed(m)) if m.contains("exceeds the limit")));
    let r = d.now_reply("MFC", nack_many(vec![MessageId::new(T0, 0, 1)], 1, 0));
    assert!(matches!(r, Err(HubError::NotAuthorized(_))), "{r:?}");
}

#[test]
fn given_a_waiting_fetch_when_nack_many_names_the_newer_first_then_the_oldest_is_handed_out() {
    let mut d = Driver::new();
    let ids: Vec<MessageId> = (0..2).map(|_| d.send_ok("MFC", request(ASYNC))).collect();
    assert_eq!(d.fetch("FNS", requests(ASYNC), 2, 1).len(), 2);
    let wait = Command::Fetch {
        queue: requests(ASYNC),
        max: 1,
        wait_ms: 500,
        reader: 2,
    };
    let (waiting, out) = d.command("FNS", wait);
    assert_eq!(reply(&out, waiting), None, "nothing ready: it waits");
    let (_, out) = d.command("FNS", nack_many(vec![ids[1], ids[0]], 1, 0));
    match reply(&out, waiting) {
        Some(Ok(ShardReply::Messages(got))) => {
            assert_eq!(super::ids(&got), vec![ids[0]], "FIFO across the batch")
        }
        other => panic!("expected the waiting fetch's messages, got {other:?}"),
    }
}

// ---- refusals at the door, counted per data kind (issue 17) ----

fn at_door(d: &Driver, kind: &str, code: &HubError) -> u64 {
    let index = crate::runtime::stats::error_code_index(code);
    d.shard
        .sla()
        .kinds()
        .find(|(k, _)| k.as_str() == kind)
        .map_or(0, |(_, c)| c.live.refused_at_door[index])
}

#[test]
fn given_requests_refused_on_arrival_when_counted_then_their_kind_has_each_code_and_unknown_kinds_none(
) {
    let mut d = quota_driver(config(0, 1));
    d.send_ok("SLOW", sized(BYTES, 60));
    d.send_ok("SLOW", sized(BYTES, 30));
    // Over the byte quota, single and batched; too large for the kind.
    let r = d.now_reply("SLOW", Command::SendRequest(sized(BYTES, 11)));
    assert_eq!(r, Err(HubError::QuotaExceeded));
    let batch = vec![sized(BYTES, 5), sized(BYTES, 20)];
    d.committed_reply("SLOW", Command::SendRequests(batch))
        .expect("a batch reply");
    let too_large = d.now_reply("SLOW", Command::SendRequest(sized(BYTES, 65)));
    assert!(
        matches!(too_large, Err(HubError::TooLarge { .. })),
        "{too_large:?}"
    );
    // A kind the registry lacks makes no entry (no label from garbage).
    let unknown = d.now_reply("SLOW", Command::SendRequest(sized("urn:none", 1)));
    assert!(
        matches!(unknown, Err(HubError::UnknownDataKind(_))),
        "{unknown:?}"
    );
    assert_eq!(at_door(&d, BYTES, &HubError::QuotaExceeded), 2);
    let large = HubError::TooLarge {
        size_bytes: 0,
        size_bytes_max: 0,
    };
    assert_eq!(at_door(&d, BYTES, &large), 1);
    assert!(d.shard.sla().kinds().all(|(k, _)| k.as_str() != "urn:none"));
}

#[test]
fn given_a_nacked_lease_when_delivered_again_then_one_redelivery_is_counted() {
    let mut d = quota_driver(config(0, 1));
    let id = d.send_ok("SLOW", sized(BYTES, 10));
    let got = d.fetch("FNS", requests(BYTES), 1, 1);
    assert_eq!(ids(&got), vec![id]);
    assert_eq!(d.shard.counters().redeliveries, 0);
    let r = d.committed_reply(
        "FNS",
        Command::Nack {
            queue: requests(BYTES),
            id,
            reader: 1,
            delay_ms: 0,
        },
    );
    assert!(r.is_ok(), "{r:?}");
    assert_eq!(
        d.shard.counters().redeliveries,
        0,
        "counted when delivered again"
    );
    let again = d.fetch("FNS", requests(BYTES), 1, 1);
    assert_eq!(ids(&again), vec![id], "delivered again");
    assert_eq!(d.shard.counters().redeliveries, 1);
}
