//! Unit tests of what the shard tells the monitor: the SLA counts by kind
//! (live steps only, never replay), the last read of a queue, and the
//! provider-unreachable notice on `status`, on the driver of
//! `shard/tests.rs`.

use super::*;
use crate::shard::sla::refusal_index;

const UNREACHABLE_AFTER_MS: u64 = 300;

fn watched() -> Driver {
    Driver::with_config(ShardConfig {
        provider_unreachable_after_ms: UNREACHABLE_AFTER_MS,
        ..config(0, 1)
    })
}

fn tally(d: &Driver, kind: &str, test: bool) -> sla::SlaTally {
    let (_, counts) = d
        .shard
        .sla()
        .kinds()
        .find(|(k, _)| k.as_str() == kind)
        .unwrap_or_else(|| panic!("{kind} counted"));
    if test {
        counts.test.clone()
    } else {
        counts.live.clone()
    }
}

#[test]
fn given_answers_refusals_and_expiry_when_counted_then_each_kind_and_class_has_its_columns() {
    let mut d = watched();
    let answered = d.send_ok("MFC", request(ASYNC));
    let refused = d.send_ok("MFC", request(ASYNC));
    let expires = d.send_ok("MFC", request(ASYNC));
    let test = d.send_ok(
        "MFC",
        NewRequest {
            test: true,
            ..request(ASYNC)
        },
    );
    d.set_time(T0 + 40);
    d.respond("FNS", answered);
    let refusal = Command::SendRefusal {
        request_id: refused,
        code: RefusalCode::NoData,
        reason: "none".into(),
    };
    assert_eq!(d.committed_reply("FNS", refusal), Ok(ShardReply::Done));
    d.respond("FNS", test);
    d.tick_at(T0 + ASYNC_DEADLINE_MS + 1);
    d.commit();
    let live = tally(&d, ASYNC, false);
    assert_eq!(live.requests, 3);
    assert_eq!(live.answered_in_time, 2);
    assert_eq!(live.refused[refusal_index(RefusalCode::NoData)], 1);
    assert_eq!(live.expired, 1, "{expires} expired");
    assert_eq!(live.answer_times.total(), 2);
    assert_eq!(live.within_realtime_budget, 2);
    let test = tally(&d, ASYNC, true);
    assert_eq!((test.requests, test.answered_in_time), (1, 1));
    // A late answer counts late, and replay counts nothing again.
    let late = d.now_reply(
        "FNS",
        Command::SendResponse {
            request_id: expires,
            payload: Bytes::new(),
            attachments: Vec::new(),
        },
    );
    assert_eq!(late, Err(HubError::DeadlineExceeded));
    assert_eq!(tally(&d, ASYNC, false).answered_late, 1);
    let (again, _) = d.restart();
    assert_eq!(
        again.shard.sla().kinds().count(),
        0,
        "replay counts nothing"
    );
}

#[test]
fn given_waiting_requests_when_the_provider_reads_nothing_for_the_bound_then_status_carries_a_notice(
) {
    let mut d = watched();
    d.fetch("FNS", requests(ASYNC), 1, 7);
    let id = d.send_ok("MFC", request(ASYNC));
    d.set_time(T0 + UNREACHABLE_AFTER_MS - 1);
    assert_eq!(d.status("MFC", id).unwrap().notice, None);
    let watch = d
        .shard
        .read_watch(&requests(ASYNC), T0 + UNREACHABLE_AFTER_MS - 1);
    assert_eq!(watch.last_read_ms, Some(T0));
    assert_eq!(watch.unreachable_since_ms, None);

    d.set_time(T0 + UNREACHABLE_AFTER_MS + 50);
    let notice = d.status("MFC", id).unwrap().notice.expect("a notice");
    assert_eq!(notice.provider, p("FNS"));
    assert_eq!(notice.unreachable_since_ms, T0 + UNREACHABLE_AFTER_MS);
    assert_eq!((notice.last_read_ms, notice.waiting), (Some(T0), 1));

    // The provider comes back: the request was kept and is delivered.
    let got = d.fetch("FNS", requests(ASYNC), 1, 7);
    assert_eq!(ids(&got), [id]);
    assert_eq!(d.status("MFC", id).unwrap().notice, None);
}

#[test]
fn given_a_subscription_and_a_waiting_fetch_when_watched_then_both_count_as_readers() {
    let mut d = watched();
    let subscribe = Command::Subscribe {
        queue: requests(ASYNC),
        credits: 0,
        reader: 1,
    };
    assert_eq!(d.now_reply("FNS", subscribe), Ok(ShardReply::Done));
    let (_, _) = d.command(
        "FNS",
        Command::Fetch {
            queue: requests(ASYNC),
            max: 1,
            wait_ms: 500,
            reader: 2,
        },
    );
    let watch = d.shard.read_watch(&requests(ASYNC), T0);
    assert_eq!((watch.readers, watch.last_read_ms), (2, Some(T0)));
}

#[test]
fn given_a_provider_holding_its_only_request_when_the_bound_passes_then_it_is_still_reachable() {
    let mut d = watched();
    let id = d.send_ok("MFC", request(ASYNC));
    assert_eq!(ids(&d.fetch("FNS", requests(ASYNC), 1, 7)), [id]);
    let watch = d
        .shard
        .read_watch(&requests(ASYNC), T0 + UNREACHABLE_AFTER_MS + 1);
    assert_eq!(watch.unreachable_since_ms, None, "leased: nothing waits");
    // Its lease ends unacked: the request waits again, from its arrival,
    // and the provider's silence counts from its last read.
    d.tick_at(T0 + LEASE_MS);
    let at = T0 + UNREACHABLE_AFTER_MS;
    let watch = d.shard.read_watch(&requests(ASYNC), at);
    assert_eq!(watch.unreachable_since_ms, Some(T0 + UNREACHABLE_AFTER_MS));
}
