//! Unit tests of per-message expiry (`NewRequest::expires_in_ms`) and the
//! timer wheel that watches deadlines out of their queue's order (ADR
//! 0012), on the driver of `shard/tests.rs`.

use super::*;

/// A request of `kind` that ends `expires_in_ms` after acceptance.
fn expiring(kind: &str, expires_in_ms: u64) -> NewRequest {
    NewRequest {
        expires_in_ms: Some(expires_in_ms),
        ..request(kind)
    }
}

fn expired(d: &Driver) -> u64 {
    d.shard.counters().expired
}

#[test]
fn given_request_with_short_expiry_behind_head_when_time_passes_then_it_expires_first() {
    let mut d = Driver::new();
    let head = d.send_ok("MFC", request(BULK));
    d.set_time(T0 + 10);
    let short = d.send_ok("MFC", expiring(BULK, 100));
    assert_eq!(d.shard.held().parked, 2);
    assert_eq!(
        d.shard.held().wheel,
        1,
        "watched by the wheel, not the head"
    );
    assert_eq!(d.status("MFC", short).unwrap().deadline_ms, T0 + 110);
    d.tick_at(T0 + 109);
    assert_eq!(expired(&d), 0, "never before its expiry");
    let out = d.tick_at(T0 + 110);
    assert_eq!(expired(&d), 1);
    assert!(!d.exchange_outcome_is_none(short));
    assert!(
        d.exchange_outcome_is_none(head),
        "the head waits for its own"
    );
    assert_eq!(d.shard.held().wheel, 0, "nothing stale stays");
    // As the kind's deadline does it: recorded, answered to the consumer.
    let refusal = appended(&out);
    assert!(matches!(
        &refusal[..],
        [Record::Answer(a)] if a.request_id == short
            && matches!(a.body, AnswerBody::Refusal { code: RefusalCode::DeadlineExceeded, .. })
    ));
    d.commit();
    let got = d.fetch("MFC", answers("MFC"), 1, 9);
    assert_eq!(refusal_code(&got[0]), Some(RefusalCode::DeadlineExceeded));
    assert!(d
        .history(short)
        .contains(&(EventKind::Expired, T0 + 110, 0)));
    assert_eq!(ids(&d.fetch("FNS", requests(BULK), 5, 1)), vec![head]);
}

#[test]
fn given_expiries_out_of_order_behind_a_long_head_when_time_passes_then_each_expires_at_its_own() {
    // 1000 (the kind's), then 100, then 200: the third is later than the
    // tail before it, yet earlier than the head.
    let mut d = Driver::new();
    let head = d.send_ok("MFC", request(BULK));
    let a = d.send_ok("MFC", expiring(BULK, 100));
    let b = d.send_ok("MFC", expiring(BULK, 200));
    let c = d.send_ok("MFC", expiring(BULK, 300));
    d.tick_at(T0 + 100);
    assert_eq!(expired(&d), 1);
    assert!(!d.exchange_outcome_is_none(a));
    d.tick_at(T0 + 200);
    assert!(!d.exchange_outcome_is_none(b), "not held behind the head");
    d.tick_at(T0 + 300);
    assert!(!d.exchange_outcome_is_none(c));
    assert!(d.exchange_outcome_is_none(head));
    d.tick_at(T0 + ASYNC_DEADLINE_MS);
    assert_eq!(expired(&d), 4);
    assert_eq!(d.shard.held().parked, 0);
    assert_eq!(d.shard.held().wheel, 0);
}

#[test]
fn given_many_requests_with_mixed_expiries_when_time_passes_then_none_early_none_late() {
    let mut d = Driver::new();
    let mut deadlines: Vec<(u64, MessageId)> = Vec::new();
    for i in 0..2_000u64 {
        d.set_time(T0 + i / 10);
        // Every third one its own expiry, 1 ms to the kind's deadline.
        let r = match i % 3 {
            0 => expiring(BULK, 1 + (i * 7_919) % ASYNC_DEADLINE_MS),
            _ => request(BULK),
        };
        let id = d.send_ok("MFC", r);
        let view = d.status("MFC", id).unwrap();
        deadlines.push((view.deadline_ms, id));
    }
    assert!(d.shard.held().wheel > 0);
    assert!(d.shard.held().timers < 10, "no ordered timer per request");
    // Tick every 7 ms from the last send (the shard's clock never goes
    // back): each expires at the first tick at or after its deadline.
    let mut at = T0 + 199;
    while d.shard.held().parked > 0 {
        at += 7;
        d.tick_at(at);
        for (deadline_ms, id) in &deadlines {
            let ended = !d.exchange_outcome_is_none(*id);
            assert_eq!(ended, *deadline_ms <= at, "{id} at {at}, due {deadline_ms}");
        }
        assert!(at < T0 + 2 * ASYNC_DEADLINE_MS, "bounded");
    }
    assert_eq!(expired(&d), 2_000);
    assert_eq!(d.shard.held().wheel, 0);
}

#[test]
fn given_expiry_over_the_kinds_deadline_or_zero_when_sent_then_malformed_and_nothing_stored() {
    let mut d = Driver::new();
    let over = d.now_reply(
        "MFC",
        Command::SendRequest(expiring(ASYNC, ASYNC_DEADLINE_MS + 1)),
    );
    let Err(HubError::Malformed(reason)) = over else {
        panic!("expected malformed, got {over:?}");
    };
    assert!(reason.contains("exceeds data kind"), "{reason}");
    let zero = d.now_reply("MFC", Command::SendRequest(expiring(ASYNC, 0)));
    assert!(matches!(zero, Err(HubError::Malformed(_))), "{zero:?}");
    let call = d.now_reply("MFC", Command::Call(expiring(RT, RT_DEADLINE_MS + 1)));
    assert!(matches!(call, Err(HubError::Malformed(_))), "{call:?}");
    assert!(d.log.is_empty(), "refused before anything is stored");
    // The kind's deadline itself is allowed.
    let id = d.send_ok("MFC", expiring(ASYNC, ASYNC_DEADLINE_MS));
    assert_eq!(
        d.status("MFC", id).unwrap().deadline_ms,
        T0 + ASYNC_DEADLINE_MS
    );
}

#[test]
fn given_a_batch_with_one_expiry_over_the_deadline_when_sent_then_only_its_slot_is_refused() {
    let mut d = Driver::new();
    let batch = vec![
        expiring(BULK, 50),
        expiring(BULK, ASYNC_DEADLINE_MS + 1),
        request(BULK),
    ];
    let results = match d.committed_reply("MFC", Command::SendRequests(batch)) {
        Ok(ShardReply::AcceptedMany(results)) => results,
        other => panic!("expected AcceptedMany, got {other:?}"),
    };
    assert!(matches!(results[1], Err(HubError::Malformed(_))));
    let first = results[0].as_ref().expect("accepted").id;
    let last = results[2].as_ref().expect("accepted").id;
    d.tick_at(T0 + 50);
    assert!(!d.exchange_outcome_is_none(first));
    assert!(d.exchange_outcome_is_none(last));
}

#[test]
fn given_call_with_own_expiry_when_unanswered_then_caller_hears_deadline_exceeded_at_it() {
    let mut d = Driver::new();
    let (call, mut out) = d.command("MFC", Command::Call(expiring(RT, 50)));
    out.extend(d.commit());
    assert_eq!(reply(&out, call), None);
    assert_eq!(reply(&d.tick_at(T0 + 49), call), None);
    let out = d.tick_at(T0 + 50);
    assert_eq!(reply(&out, call), Some(Err(HubError::DeadlineExceeded)));
}

#[test]
fn given_short_expiry_still_committing_behind_a_longer_one_when_due_then_it_expires_uncommitted() {
    let mut d = Driver::new();
    d.command("MFC", Command::SendRequest(request(BULK)));
    let (_, out) = d.command("MFC", Command::SendRequest(expiring(BULK, 30)));
    let Some(Record::Request(r)) = appended(&out).into_iter().next() else {
        panic!("a request record: {out:?}");
    };
    assert_eq!(
        r.deadline_ms,
        T0 + 30,
        "the record holds the effective deadline"
    );
    assert_eq!(d.shard.held().committing_deadlines, 1);
    assert_eq!(d.shard.held().wheel, 1);
    d.tick_at(T0 + 30);
    assert_eq!(expired(&d), 1);
    d.commit();
    assert_eq!(d.shard.held().parked, 1, "only the other one waits");
    assert_eq!(d.shard.held().wheel, 0);
}

#[test]
fn given_short_expiry_taken_by_a_reader_when_due_then_its_own_timer_ends_it_and_wheel_is_empty() {
    let mut d = Driver::new();
    d.send_ok("MFC", request(BULK));
    let short = d.send_ok("MFC", expiring(BULK, 100));
    let got = d.fetch("FNS", requests(BULK), 2, 1);
    assert_eq!(got.len(), 2);
    assert_eq!(d.shard.held().wheel, 0, "taken: cancelled at once");
    d.tick_at(T0 + 100);
    assert!(!d.exchange_outcome_is_none(short));
    assert_eq!(expired(&d), 1);
}

#[test]
fn given_short_expiry_behind_head_when_restarted_from_the_log_then_it_still_expires_on_time() {
    let mut d = Driver::new();
    let head = d.send_ok("MFC", request(BULK));
    let short = d.send_ok("MFC", expiring(BULK, 100));
    let (mut r, _) = d.restart();
    assert_eq!(r.shard.held().parked, 2);
    assert_eq!(r.shard.held().wheel, 1, "the wheel is restored");
    assert_eq!(r.status("MFC", short).unwrap().deadline_ms, T0 + 100);
    r.tick_at(T0 + 99);
    assert_eq!(expired(&r), 0);
    r.tick_at(T0 + 100);
    assert!(!r.exchange_outcome_is_none(short));
    assert!(r.exchange_outcome_is_none(head));
}

#[test]
fn given_short_expiry_behind_head_when_restored_from_a_snapshot_then_it_still_expires_on_time() {
    let mut d = Driver::new();
    let head = d.send_ok("MFC", request(BULK));
    let short = d.send_ok("MFC", expiring(BULK, 100));
    d.set_time(T0 + 20);
    // One more after the snapshot: replayed from the log, parked after those
    // the snapshot restores, out of order too.
    let (first, _) = durable_snapshot(&mut d);
    let later = d.send_ok("MFC", expiring(BULK, 60));
    let (mut r, _) = d.restart_from(first);
    assert_eq!(r.shard.held().parked, 3);
    assert_eq!(r.shard.held().exchanges, 0);
    assert_eq!(r.shard.held().wheel, 2, "the wheel is restored");
    r.tick_at(T0 + 79);
    assert_eq!(expired(&r), 0);
    r.tick_at(T0 + 80);
    assert!(!r.exchange_outcome_is_none(later));
    r.tick_at(T0 + 100);
    assert!(!r.exchange_outcome_is_none(short));
    assert!(r.exchange_outcome_is_none(head));
    assert_eq!(r.shard.held().wheel, 0);
}

#[test]
fn given_short_expiry_behind_head_when_ticked_only_when_the_shard_asks_then_it_expires_on_time() {
    // The runtime ticks only at the times `Output::ArmTimer` names.
    let mut d = Driver::new();
    let mut out = d.command("MFC", Command::SendRequest(request(BULK))).1;
    out.extend(d.commit());
    out.extend(
        d.command("MFC", Command::SendRequest(expiring(BULK, 300)))
            .1,
    );
    out.extend(d.commit());
    let mut armed: Option<u64> = None;
    // Bounded: a few wakes per level of the wheel.
    for _ in 0..64 {
        for o in &out {
            if let Output::ArmTimer { at_ms } = o {
                armed = Some(armed.map_or(*at_ms, |a| a.min(*at_ms)));
            }
        }
        let Some(at_ms) = armed.take() else {
            break;
        };
        assert!(at_ms <= T0 + 300, "woken after the expiry: {at_ms}");
        out = d.tick_at(at_ms.max(d.now));
        if expired(&d) == 1 {
            break;
        }
    }
    assert_eq!(expired(&d), 1, "expired at {}", d.now);
    assert_eq!(d.now, T0 + 300);
}

#[test]
fn given_requests_taken_and_acked_when_evicted_then_no_timer_stays() {
    let mut d = Driver::with_config(ShardConfig {
        finished_keep_ms: Some(10),
        ..config(0, 1)
    });
    // One fetch takes at most `fetch_max` (16 in the test config).
    let n = 16;
    let sent: Vec<MessageId> = (0..n).map(|_| d.send_ok("MFC", request(BULK))).collect();
    let got = d.fetch("FNS", requests(BULK), n as u32, 1);
    assert_eq!(got.len(), n);
    let held = d.shard.held();
    assert_eq!(
        (held.deadline_wheel, held.lease_wheel),
        (n, n),
        "one each in flight"
    );
    for id in &sent {
        d.ack("FNS", requests(BULK), *id, 1);
    }
    assert_eq!(d.shard.held().lease_wheel, 0, "an ack ends its lease entry");
    for id in &sent {
        d.respond("FNS", *id);
    }
    for answer in d.fetch("MFC", answers("MFC"), n as u32, 9) {
        d.ack("MFC", answers("MFC"), answer.id, 9);
    }
    d.commit();
    d.tick_at(T0 + 20);
    let held = d.shard.held();
    assert_eq!(held.exchanges, 0, "evicted after finished_keep_ms");
    assert_eq!(
        (held.deadline_wheel, held.lease_wheel),
        (0, 0),
        "nothing stale stays armed until the deadline"
    );
    // What stays ordered is per queue (the parked and committing heads'
    // timers), never per message.
    assert!(held.timers <= 2, "ordered timers left: {}", held.timers);
}

#[test]
fn given_lease_nacked_then_taken_again_when_its_first_end_passes_then_only_the_latest_counts() {
    let mut d = Driver::new();
    let id = d.send_ok("MFC", request(BULK));
    assert_eq!(ids(&d.fetch("FNS", requests(BULK), 1, 1)), vec![id]);
    d.set_time(T0 + 50);
    let r = d.committed_reply("FNS", nack_cmd(requests(BULK), id, 1));
    assert_eq!(r, Ok(ShardReply::Done));
    assert_eq!(d.shard.held().lease_wheel, 0, "a nack ends its lease entry");
    assert_eq!(ids(&d.fetch("FNS", requests(BULK), 1, 2)), vec![id]);
    // The first lease would have ended at T0 + LEASE_MS; the second runs
    // to T0 + 50 + LEASE_MS.
    d.tick_at(T0 + LEASE_MS);
    assert!(
        d.fetch("FNS", requests(BULK), 1, 3).is_empty(),
        "still leased"
    );
    d.tick_at(T0 + 50 + LEASE_MS);
    assert_eq!(d.shard.held().lease_wheel, 0);
    assert_eq!(
        ids(&d.fetch("FNS", requests(BULK), 1, 3)),
        vec![id],
        "ready again"
    );
}
