//! Unit tests of `send_requests` and `ack_many` (`shard/batch.rs`), on the
//! driver of `shard/tests.rs`.

use super::*;
use gonets_types::{Accepted, BATCH_MESSAGES_MAX};

/// `n` plain requests of the async kind, payloads `m0`, `m1`, ...
fn batch(n: usize) -> Vec<NewRequest> {
    (0..n)
        .map(|i| NewRequest::new(ASYNC, format!("m{i}")))
        .collect()
}

fn send_requests(rs: Vec<NewRequest>) -> Command {
    Command::SendRequests(rs)
}

fn accepted_many(r: Result<ShardReply, HubError>) -> Vec<Result<Accepted, HubError>> {
    match r {
        Ok(ShardReply::AcceptedMany(results)) => results,
        other => panic!("expected AcceptedMany, got {other:?}"),
    }
}

fn acked_many(r: Result<ShardReply, HubError>) -> Vec<(MessageId, HubError)> {
    match r {
        Ok(ShardReply::AckedMany(refused)) => refused,
        other => panic!("expected AckedMany, got {other:?}"),
    }
}

fn malformed(r: Result<ShardReply, HubError>, says: &str) {
    match r {
        Err(HubError::Malformed(m)) => assert!(m.contains(says), "{m:?} says {says:?}"),
        other => panic!("expected Malformed({says}), got {other:?}"),
    }
}

/// Sends `n` requests one by one and fetches them under `reader`.
fn leased(d: &mut Driver, n: usize, reader: ReaderId) -> Vec<MessageId> {
    let ids: Vec<MessageId> = (0..n).map(|_| d.send_ok("MFC", request(ASYNC))).collect();
    let got = d.fetch("FNS", requests(ASYNC), n as u32, reader);
    assert_eq!(got.len(), n);
    ids
}

#[test]
fn given_a_batch_with_one_oversized_message_when_sent_then_only_its_slot_is_refused_and_the_rest_accepted_once_committed(
) {
    let mut d = Driver::new();
    let mut rs = batch(3);
    rs[1].payload = Bytes::from(vec![0u8; PAYLOAD_MAX + 1]);
    let (token, out) = d.command("MFC", send_requests(rs));
    assert_eq!(reply(&out, token), None, "nothing before the commit");
    assert_eq!(appended(&out).len(), 2, "the two good ones, nothing else");
    let results = accepted_many(reply(&d.commit(), token).expect("one reply"));
    assert_eq!(results.len(), 3);
    assert!(matches!(results[1], Err(HubError::TooLarge { .. })));
    for r in [&results[0], &results[2]] {
        let a = r.as_ref().expect("accepted");
        assert!(!a.duplicate);
        assert!(d.shard.exchange(a.id).is_some());
    }
    let fetched: Vec<MessageId> = d
        .fetch("FNS", requests(ASYNC), 10, 1)
        .iter()
        .map(|m| m.id)
        .collect();
    let ids: Vec<MessageId> = [&results[0], &results[2]]
        .map(|r| r.as_ref().expect("accepted").id)
        .to_vec();
    assert_eq!(fetched, ids, "queued in the batch's order");
}

#[test]
fn given_an_empty_batch_when_sent_then_malformed_and_nothing_stored() {
    let mut d = Driver::new();
    malformed(d.now_reply("MFC", send_requests(vec![])), "empty batch");
    assert_eq!(d.shard.next_offset(), 0);
}

#[test]
fn given_a_batch_over_the_limit_when_sent_then_malformed_and_nothing_stored() {
    let mut d = Driver::new();
    let r = d.now_reply("MFC", send_requests(batch(BATCH_MESSAGES_MAX + 1)));
    malformed(r, "exceeds the limit");
    assert_eq!(d.shard.next_offset(), 0);
}

#[test]
fn given_a_batch_of_mixed_kinds_when_sent_then_malformed_and_nothing_stored() {
    let mut d = Driver::new();
    let mut rs = batch(2);
    rs.push(request(RT));
    malformed(d.now_reply("MFC", send_requests(rs)), "mixes data kinds");
    assert_eq!(d.shard.next_offset(), 0);
}

#[test]
fn given_a_key_repeated_inside_a_batch_when_sent_then_the_second_is_the_first_ones_duplicate() {
    let mut d = Driver::new();
    let earlier = d.send_ok("MFC", keyed(ASYNC, "k-0"));
    let rs = vec![
        keyed(ASYNC, "k-1"),
        keyed(ASYNC, "k-1"),
        keyed(ASYNC, "k-0"),
    ];
    let results = accepted_many(d.committed_reply("MFC", send_requests(rs)));
    let [first, second, third] = [0, 1, 2].map(|i| results[i].clone().expect("accepted"));
    assert!(!first.duplicate);
    assert!(second.duplicate && second.id == first.id, "{second:?}");
    assert!(third.duplicate && third.id == earlier, "{third:?}");
    assert_eq!(
        d.shard.queue_stats(&requests(ASYNC)).depth,
        2,
        "stored once each"
    );
}

#[test]
fn given_a_queue_near_its_bound_when_a_batch_is_sent_then_the_messages_past_it_get_quota_exceeded()
{
    let mut d = Driver::new();
    d.send_ok("MFC", request(ASYNC));
    let results = accepted_many(d.committed_reply("MFC", send_requests(batch(QUEUE_MAX + 1))));
    let refused = results
        .iter()
        .filter(|r| matches!(r, Err(HubError::QuotaExceeded)))
        .count();
    assert_eq!(refused, 2, "{results:?}");
    assert!(results[..QUEUE_MAX - 1].iter().all(Result::is_ok));
    let stats = d.shard.queue_stats(&requests(ASYNC));
    assert_eq!(stats.depth, QUEUE_MAX as u64);
}

#[test]
fn given_a_state_secret_in_a_batch_when_sent_then_its_slot_is_refused_and_the_others_accepted() {
    let mut d = Driver::new();
    let mut rs = batch(2);
    rs[0].state_secret = true;
    let results = accepted_many(d.committed_reply("MFC", send_requests(rs)));
    assert_eq!(results[0], Err(HubError::StateSecret));
    assert!(results[1].is_ok());
}

#[test]
fn given_ack_many_with_an_unknown_and_a_foreign_id_when_applied_then_those_are_refused_and_the_rest_acked_in_one_record(
) {
    let mut d = Driver::new();
    let mine = leased(&mut d, 2, 1);
    let theirs = leased(&mut d, 1, 2)[0];
    let unknown = MessageId::new(T0, 0, 999);
    let ids = vec![mine[0], unknown, theirs, mine[1], mine[0]];
    let (token, out) = d.command(
        "FNS",
        Command::AckMany {
            queue: requests(ASYNC),
            ids,
            reader: 1,
        },
    );
    assert_eq!(reply(&out, token), None, "Done waits for the record");
    let records = appended(&out);
    let [Record::Events(events)] = &records[..] else {
        panic!("one events record: {records:?}");
    };
    let acked: Vec<MessageId> = events.iter().map(|e| e.request_id).collect();
    assert_eq!(acked, mine, "each acked once, in order");
    let refused = acked_many(reply(&d.commit(), token).expect("replied"));
    assert_eq!(
        refused,
        vec![(unknown, HubError::NotFound), (theirs, HubError::NotFound)]
    );
    assert!(d.event_kinds(mine[0]).contains(&EventKind::Acked));
    assert_eq!(d.shard.queue_stats(&requests(ASYNC)).in_flight, 1, "theirs");
}

#[test]
fn given_ack_many_of_an_answers_queue_or_empty_when_applied_then_malformed() {
    let mut d = Driver::new();
    let ack = |queue, ids| Command::AckMany {
        queue,
        ids,
        reader: 1,
    };
    let id = MessageId::new(T0, 0, 1);
    malformed(
        d.now_reply("MFC", ack(answers("MFC"), vec![id])),
        "requests queue",
    );
    malformed(
        d.now_reply("FNS", ack(requests(ASYNC), vec![])),
        "empty batch",
    );
    assert_eq!(d.shard.next_offset(), 0);
}

#[test]
fn given_a_batch_ack_record_when_replayed_then_the_state_is_the_live_one() {
    let mut d = Driver::new();
    let ids = leased(&mut d, 3, 1);
    let ack = Command::AckMany {
        queue: requests(ASYNC),
        ids: ids[..2].to_vec(),
        reader: 1,
    };
    assert_eq!(acked_many(d.committed_reply("FNS", ack)), vec![]);
    let (mut again, _) = d.restart();
    for id in &ids {
        let live = d.shard.exchange(*id).expect("live").acked;
        let replayed = again.shard.exchange(*id).expect("replayed").acked;
        assert_eq!(live, replayed, "{id}");
        assert_eq!(d.history(*id), again.history(*id), "{id}");
    }
    // The unacked one waits again (its lease died with the process).
    let stats = again.shard.queue_stats(&requests(ASYNC));
    assert_eq!((stats.depth, stats.in_flight), (1, 0));
}

#[test]
fn given_a_crash_before_the_batch_commit_when_restarted_then_no_message_of_it_exists_and_no_accepted_went_out(
) {
    let mut d = Driver::new();
    let (token, out) = d.command("MFC", send_requests(batch(3)));
    assert_eq!(reply(&out, token), None);
    assert_eq!(appended(&out).len(), 3);
    // The process dies here: nothing of the batch was reported durable.
    let (again, out) = d.restart();
    assert!(reply(&out, token).is_none());
    assert_eq!(again.shard.exchanges().count(), 0);
    assert_eq!(again.shard.queue_stats(&requests(ASYNC)).depth, 0);
}

#[test]
fn given_a_log_record_bound_smaller_than_the_batch_when_ack_many_then_the_acks_are_split_into_records_that_fit(
) {
    // Three events fit in 120 bytes, four do not; a request record (with
    // its 33-byte seal) does.
    let bound = 120;
    assert_eq!(
        (bound - crate::record::EVENTS_HEADER_BYTES) / crate::record::EVENT_BYTES,
        3
    );
    let mut d = Driver::with_config(ShardConfig {
        record_bytes_max: bound,
        ..config(0, 1)
    });
    // Requests whose records fit that bound: empty payloads.
    let ids: Vec<MessageId> = (0..4)
        .map(|_| d.send_ok("MFC", NewRequest::new(ASYNC, Bytes::new())))
        .collect();
    let got = d.fetch("FNS", requests(ASYNC), 4, 1);
    assert_eq!(got.len(), 4);
    let ack = Command::AckMany {
        queue: requests(ASYNC),
        ids: ids.clone(),
        reader: 1,
    };
    let (token, out) = d.command("FNS", ack);
    let sizes: Vec<usize> = appended(&out)
        .iter()
        .map(|r| {
            let mut buf = Vec::new();
            r.encode(&mut buf);
            assert!(matches!(r, Record::Events(_)), "{r:?}");
            buf.len()
        })
        .collect();
    assert_eq!(sizes.len(), 2, "two records: {sizes:?}");
    assert!(
        sizes.iter().all(|n| *n <= bound),
        "{sizes:?} within {bound}"
    );
    assert_eq!(
        acked_many(reply(&d.commit(), token).expect("reply")),
        vec![]
    );
}
