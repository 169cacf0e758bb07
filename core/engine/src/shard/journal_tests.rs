//! Unit tests of the rt journal's part in the shard (docs/adr/0036): which
//! records it asks to journal, and a call's answer routed to its caller
//! once the journal or the log has it, whichever is first, on the driver
//! of `shard/tests.rs`.

use super::*;

fn journaling() -> Driver {
    Driver::with_config(ShardConfig {
        rt_journal: true,
        ..config(0, 1)
    })
}

/// A call from MFC fetched by MVD and answered, nothing committed yet;
/// returns (call token, answer token, request id, the answer's offset).
fn call_answered_uncommitted(d: &mut Driver) -> (Token, Token, MessageId, u64) {
    let (call, _) = d.command("MFC", Command::Call(request(RT)));
    let got = d.fetch("MVD", requests(RT), 1, 5);
    let request_id = got[0].id;
    let (respond, out) = d.command(
        "MVD",
        Command::SendResponse {
            request_id,
            payload: Bytes::from_static(b"valid"),
            attachments: Vec::new(),
        },
    );
    assert_eq!(reply(&out, call), None, "nothing durable yet");
    (call, respond, request_id, d.shard.next_offset() - 1)
}

fn journaled(d: &mut Driver, durable_offset: u64) -> Vec<Output> {
    d.step(Input::Journaled { durable_offset })
}

/// A call answered and its answer routed by the journal, the log behind;
/// returns the request id.
fn routed_by_journal(d: &mut Driver) -> MessageId {
    let (call, _, request_id, answer_offset) = call_answered_uncommitted(d);
    let out = journaled(d, answer_offset + 1);
    assert!(matches!(reply(&out, call), Some(Ok(ShardReply::Answer(_)))));
    request_id
}

#[test]
fn given_journal_off_when_call_answered_then_nothing_is_journaled() {
    let mut d = Driver::new();
    let (call, _, _, _) = call_answered_uncommitted(&mut d);
    let out = d.commit();
    assert!(matches!(reply(&out, call), Some(Ok(ShardReply::Answer(_)))));
    assert!(d.journaled.is_empty(), "{:?}", d.journaled);
}

#[test]
fn given_journal_on_when_call_and_async_send_then_only_the_calls_records_are_journaled() {
    let mut d = journaling();
    let (call, _, request_id, answer_offset) = call_answered_uncommitted(&mut d);
    d.commit();
    d.step(Input::CallReplied {
        request_id,
        taken: true,
    });
    let call_records: Vec<u64> = d.log.iter().map(|(o, _)| *o).collect();
    assert!(call_records.contains(&answer_offset));
    assert_eq!(
        d.journaled, call_records,
        "the call's request, its answer and every event of its history"
    );
    let _ = call;
    let before = d.journaled.len();
    d.send_ok("MFC", request(ASYNC));
    assert_eq!(
        d.journaled.len(),
        before,
        "an async request is not journaled"
    );
}

#[test]
fn given_journal_on_when_answer_journaled_before_commit_then_caller_answered_and_provider_waits_for_the_log(
) {
    let mut d = journaling();
    let (call, respond, request_id, answer_offset) = call_answered_uncommitted(&mut d);
    let out = journaled(&mut d, answer_offset);
    assert_eq!(
        reply(&out, call),
        None,
        "the answer itself is not journaled yet"
    );
    let out = journaled(&mut d, answer_offset + 1);
    let Some(Ok(ShardReply::Answer(answer))) = reply(&out, call) else {
        panic!("the caller gets its answer once the journal has it: {out:?}")
    };
    assert_eq!(answer.reply_to, Some(request_id));
    assert_eq!(answer.payload, Payload::Bytes(Bytes::from_static(b"valid")));
    assert_eq!(
        reply(&out, respond),
        None,
        "the provider's reply rests on the log"
    );
    let out = d.commit();
    assert_eq!(reply(&out, respond), Some(Ok(ShardReply::Done)));
    assert_eq!(reply(&out, call), None, "answered once");
}

#[test]
fn given_journal_on_when_log_commits_first_then_answer_routed_once() {
    let mut d = journaling();
    let (call, _, _, answer_offset) = call_answered_uncommitted(&mut d);
    let out = d.commit();
    assert!(matches!(reply(&out, call), Some(Ok(ShardReply::Answer(_)))));
    let out = journaled(&mut d, answer_offset + 1);
    assert_eq!(reply(&out, call), None, "answered once: {out:?}");
}

#[test]
fn given_answer_routed_by_journal_when_caller_gone_then_answer_kept_until_the_log_has_it() {
    let mut d = journaling();
    let request_id = routed_by_journal(&mut d);
    // The caller was gone when the reply reached its connection.
    d.step(Input::CallReplied {
        request_id,
        taken: false,
    });
    d.commit();
    let got = d.fetch("MFC", answers("MFC"), 1, 9);
    assert_eq!(got.len(), 1, "the answer waits in its consumer's queue");
    assert_eq!(got[0].reply_to, Some(request_id));
}

#[test]
fn given_journal_on_when_async_request_sent_then_accepted_only_once_the_log_has_it() {
    let mut d = journaling();
    let (send, out) = d.command("MFC", Command::SendRequest(request(ASYNC)));
    assert_eq!(reply(&out, send), None);
    let next = d.shard.next_offset();
    let out = journaled(&mut d, next);
    assert_eq!(reply(&out, send), None, "the journal holds no async record");
    let out = d.commit();
    assert!(matches!(
        reply(&out, send),
        Some(Ok(ShardReply::Accepted { .. }))
    ));
}

#[test]
fn given_answer_routed_by_journal_when_caller_took_it_then_acked_before_the_log_has_it() {
    let mut d = journaling();
    let request_id = routed_by_journal(&mut d);
    d.step(Input::CallReplied {
        request_id,
        taken: true,
    });
    assert!(d.shard.exchange(request_id).unwrap().answer_acked);
    assert!(d.event_kinds(request_id).contains(&EventKind::AnswerAcked));
    let acked_at = d.shard.next_offset() - 1;
    assert_eq!(
        d.journaled.last(),
        Some(&acked_at),
        "its history goes on in the journal"
    );
    d.commit();
    assert!(
        d.fetch("MFC", answers("MFC"), 1, 9).is_empty(),
        "nothing left to deliver"
    );
}

/// Found by the simulator with the journal on: one `ack_many` record that
/// named a call and sends alike was journaled whole, so a crash's fold
/// brought back the sends' acks without their deliveries, which the log
/// had lost. Calls' events now go in records of their own, in order.
#[test]
fn given_journal_on_when_ack_many_mixes_a_call_and_sends_then_each_journaled_record_names_calls_only(
) {
    let mut d = journaling();
    let first = d.send_ok("MFC", request(RT));
    let (_call, _) = d.command("MFC", Command::Call(request(RT)));
    let last = d.send_ok("MFC", request(RT));
    d.commit();
    let got = d.fetch("MVD", requests(RT), 3, 5);
    let ids: Vec<MessageId> = got.iter().map(|m| m.id).collect();
    assert_eq!(ids.len(), 3, "the sends and the call are leased");
    let call_id = *ids
        .iter()
        .find(|id| **id != first && **id != last)
        .expect("the call");
    let logged = d.log.len();
    let (_, out) = d.command(
        "MVD",
        Command::AckMany {
            queue: requests(RT),
            ids: ids.clone(),
            reader: 5,
        },
    );
    assert!(!out.is_empty());
    let names = |r: &Record| -> Vec<MessageId> {
        match r {
            Record::Events(es) => es.iter().map(|e| e.request_id).collect(),
            Record::Event(e) => vec![e.request_id],
            other => panic!("an ack writes events, not {other:?}"),
        }
    };
    let written: Vec<(u64, Vec<MessageId>)> = d.log[logged..]
        .iter()
        .map(|(o, r)| (*o, names(r)))
        .collect();
    let acked: Vec<MessageId> = written.iter().flat_map(|(_, n)| n.clone()).collect();
    assert_eq!(acked, ids, "every ack, in the batch's order");
    for (offset, named) in &written {
        let journaled = d.journaled.contains(offset);
        assert_eq!(
            journaled,
            named == &vec![call_id],
            "record {offset} naming {named:?}: journaled {journaled}"
        );
    }
}
