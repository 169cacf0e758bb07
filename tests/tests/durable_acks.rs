//! Every acknowledgement is durable, over the wire: a `gonets serve` child
//! process acknowledges each kind of settling operation (a provider's ack, a
//! nack, an answer, a refusal, a consumer's ack of an answer), is SIGKILLed
//! right after the replies came, and restarts on the same data directory:
//! everything acknowledged is still so (docs/engine.md §4). Then what a
//! repeated `CALL` (same idempotency key) and a repeated `ACK` get
//! (docs/protocol.md, "Repeats").
//!
//! Each kill test runs the server with a 300 ms group-commit window: a reply
//! sent before its record is durable then always loses the race with the
//! kill (on a fast disk the gap is too short to catch otherwise).
//!
//! Needs the `gonets` binary (`cargo build -p gonets --bin gonets` with
//! the same CARGO_TARGET_DIR and profile, or `GONETS_BIN`).

use gonets_client::glommio::Client;
use gonets_client::{ClientError, Message};
use gonets_engine::Registry;
use gonets_tests::net::{bounded, fetch_n, run_local, ServerOptions, ServerProcess};
use gonets_types::AnswerBody;
use gonets_types::{
    DataKindId, DeliveryBody, HubError, MessageId, NewRequest, ParticipantId, QueueId, RefusalCode,
};
use std::collections::BTreeSet;
use std::time::Duration;

const EGRUL: &str = "urn:gonets:fns:egrul-extract:1";
const PASSPORT: &str = "urn:gonets:mvd:passport-validity:1";
/// Realtime, with the tightest budget of the default registry (1.5 s).
const SNILS: &str = "urn:gonets:sfr:snils-check:1";
/// Bound of one operation.
const OP: Duration = Duration::from_secs(120);
/// Messages of each kind of acknowledgement settled at once before the kill.
const EACH: usize = 8;
/// A long group-commit window: every record waits this long to become
/// durable, so a reply sent before its record is durable loses the race
/// with the kill every time (on a fast disk the gap is otherwise too short
/// to see).
const SLOW_COMMIT: &str = "[commit]\nwindow_us = 300000\n";

fn requests(kind: &str) -> QueueId {
    QueueId::Requests(DataKindId::new(kind))
}

fn answers(p: &str) -> QueueId {
    QueueId::Answers(ParticipantId::new(p))
}

/// A consumer of EGRUL whose answer queue is on the other shard of 2 than
/// EGRUL's request queue: its answer acks cross between shards.
fn cross_shard_consumer() -> String {
    let registry = Registry::embedded_default();
    let kind = registry.kind(&DataKindId::new(EGRUL)).expect("EGRUL");
    let mut consumers: Vec<&ParticipantId> = kind.consumers.iter().collect();
    consumers.sort();
    let request_shard = requests(EGRUL).shard(2);
    consumers
        .into_iter()
        .find(|c| QueueId::Answers((*c).clone()).shard(2) != request_shard)
        .expect("a consumer of EGRUL with its answers on the other shard")
        .to_string()
}

/// Fetches what is there now (a short wait), expecting at most `max`.
async fn fetch_rest(client: &Client, queue: &QueueId) -> Vec<Message> {
    let mut got = Vec::new();
    // Bounded: an empty fetch ends it, and the queues here hold few messages.
    for _ in 0..64 {
        let batch = bounded(
            "fetch",
            OP,
            client.fetch(queue, 64, Duration::from_millis(500)),
        )
        .await
        .unwrap_or_else(|e| panic!("fetch {queue}: {e}"));
        if batch.is_empty() {
            break;
        }
        got.extend(batch);
    }
    got
}

fn event_kinds(s: &gonets_types::StatusView) -> Vec<String> {
    s.events.iter().map(|e| e.kind.to_string()).collect()
}

/// A kind of acknowledgement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Settle {
    /// The provider's `ACK` of a request.
    Ack,
    /// The provider's `NACK` of a request.
    Nack,
    /// The provider's `SEND_RESPONSE`.
    Answer,
    /// The provider's `SEND_REFUSAL`.
    Refusal,
    /// The consumer's `ACK` of an answer (its queue on the other shard).
    AnswerAck,
}

/// Sends EACH requests, brings them to where `how` applies, settles them
/// all at once that way and SIGKILLs the server (`pid`) the moment the last
/// reply (each one `Done`) came. Returns the requests' ids.
async fn settle_then_kill(
    ep: gonets_tests::net::Endpoint,
    consumer: String,
    how: Settle,
    pid: u32,
) -> Vec<MessageId> {
    let cons = ep.connect(&consumer).await;
    let fns = ep.connect("FNS").await;
    let mut ids = Vec::new();
    for i in 0..EACH {
        let a = cons
            .send_request(NewRequest::new(EGRUL, format!("durable-{i}")))
            .await
            .expect("send_request");
        ids.push(a.id);
    }
    let got = fetch_n(&fns, &requests(EGRUL), EACH, OP).await;
    let mut tasks = Vec::new();
    if how == Settle::AnswerAck {
        for m in &got {
            fns.send_response(m.id, "data").await.expect("answer");
        }
        for m in fetch_n(&cons, &answers(&consumer), EACH, OP).await {
            let c = cons.clone();
            tasks.push(glommio::spawn_local(async move { c.ack(&m).await }));
        }
    }
    for m in got.into_iter().filter(|_| how != Settle::AnswerAck) {
        let c = fns.clone();
        tasks.push(glommio::spawn_local(async move {
            match how {
                Settle::Ack => c.ack(&m).await,
                Settle::Nack => c.nack(&m, Duration::ZERO).await,
                Settle::Answer => c.send_response(m.id, "answer").await,
                Settle::Refusal => c.send_refusal(m.id, RefusalCode::NoData, "none").await,
                Settle::AnswerAck => unreachable!(),
            }
        }));
    }
    for (i, t) in tasks.into_iter().enumerate() {
        bounded("a settling reply", OP, t)
            .await
            .unwrap_or_else(|e| panic!("{how:?} {i}: {e}"));
    }
    // At once: a reply sent before its record is durable loses the race.
    // SAFETY: kill(2) on the test's own child process.
    let rc = unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
    assert_eq!(rc, 0, "SIGKILL: {}", std::io::Error::last_os_error());
    ids
}

/// After the restart: every request is still settled the way `how` did.
async fn check_settled(
    ep: gonets_tests::net::Endpoint,
    consumer: String,
    how: Settle,
    ids: Vec<MessageId>,
) {
    let cons = ep.connect(&consumer).await;
    let fns = ep.connect("FNS").await;
    let event = match how {
        Settle::Ack => "acked",
        Settle::Nack => "nacked",
        Settle::Answer => "answered",
        Settle::Refusal => "refused",
        Settle::AnswerAck => "answer_acked",
    };
    for id in &ids {
        let s = bounded("status", OP, cons.status(*id))
            .await
            .unwrap_or_else(|e| panic!("status of {id} after the restart: {e}"));
        let history = event_kinds(&s);
        assert!(
            history.contains(&event.to_string()),
            "the acknowledged {how:?} of {id} was lost by the kill: {history:?}"
        );
    }
    // Only nacked requests come back to the provider.
    let back: BTreeSet<MessageId> = fetch_rest(&fns, &requests(EGRUL))
        .await
        .iter()
        .map(|m| m.id)
        .collect();
    let want: BTreeSet<MessageId> = match how {
        Settle::Nack => ids.iter().copied().collect(),
        _ => BTreeSet::new(),
    };
    assert_eq!(
        back, want,
        "requests delivered to the provider after the restart"
    );
    // Answers come to the consumer unless it acked them.
    let back: BTreeSet<MessageId> = fetch_rest(&cons, &answers(&consumer))
        .await
        .iter()
        .map(|m| m.reply_to.expect("an answer"))
        .collect();
    let want: BTreeSet<MessageId> = match how {
        Settle::Answer | Settle::Refusal => ids.iter().copied().collect(),
        _ => BTreeSet::new(),
    };
    assert_eq!(
        back, want,
        "answers delivered to the consumer after the restart"
    );
}

/// Settles EACH requests `how`, SIGKILLs the hub right after the replies,
/// restarts it and checks they all stay settled.
fn kill_right_after(how: Settle) {
    let consumer = cross_shard_consumer();
    let mut server = ServerProcess::start(ServerOptions {
        sections: SLOW_COMMIT.into(),
        ..ServerOptions::default()
    });
    let (ep, c) = (server.endpoint(), consumer.clone());
    let pid = server.pid().expect("the server runs");
    let ids = run_local(move || settle_then_kill(ep, c, how, pid));
    server.kill9(); // reaps it
    server.restart();
    let ep = server.endpoint();
    run_local(move || check_settled(ep, consumer, how, ids));
}

#[test]
fn given_request_acks_when_the_hub_is_killed_right_after_the_replies_then_not_delivered_again() {
    kill_right_after(Settle::Ack);
}

#[test]
fn given_nacks_when_the_hub_is_killed_right_after_the_replies_then_the_nacks_are_kept() {
    kill_right_after(Settle::Nack);
}

#[test]
fn given_answers_when_the_hub_is_killed_right_after_the_replies_then_the_answers_are_there() {
    kill_right_after(Settle::Answer);
}

#[test]
fn given_refusals_when_the_hub_is_killed_right_after_the_replies_then_the_refusals_are_there() {
    kill_right_after(Settle::Refusal);
}

#[test]
fn given_answer_acks_when_the_hub_is_killed_right_after_the_replies_then_not_delivered_again() {
    kill_right_after(Settle::AnswerAck);
}

// ---- a repeated CALL ----

fn keyed(kind: &str, key: &str, payload: &str) -> NewRequest {
    let mut r = NewRequest::new(kind, payload.to_string());
    r.idempotency_key = Some(key.into());
    r
}

fn hub_error(r: Result<Message, ClientError>) -> HubError {
    match r {
        Err(ClientError::Hub(e)) => e,
        other => panic!("expected a hub error, got {other:?}"),
    }
}

/// The provider MVD answers the next PASSPORT request with `payload`.
async fn answer_next(mvd: &Client, payload: &'static str) -> MessageId {
    let got = fetch_n(mvd, &requests(PASSPORT), 1, OP).await;
    mvd.send_response(got[0].id, payload).await.expect("answer");
    got[0].id
}

#[test]
fn given_a_repeated_call_key_when_called_again_then_the_original_outcome_never_unavailable() {
    let server = ServerProcess::start_default();
    let ep = server.endpoint();
    run_local(move || async move {
        let mfc = ep.connect("MFC").await;
        let mvd = ep.connect("MVD").await;

        // Answered: a repeat gets the original answer (same ids, same payload).
        let c = mfc.clone();
        let first = glommio::spawn_local(async move { c.call(keyed(PASSPORT, "c1", "a")).await });
        let request_id = answer_next(&mvd, "valid").await;
        let first = bounded("the call", OP, first).await.expect("call answered");
        assert_eq!(first.reply_to, Some(request_id));
        let again = mfc
            .call(keyed(PASSPORT, "c1", "a"))
            .await
            .expect("the repeat");
        assert_eq!((again.id, again.reply_to), (first.id, first.reply_to));
        assert_eq!(again.payload, first.payload);
        assert_eq!(again.body, DeliveryBody::Answer(AnswerBody::Data));

        // Expired: a repeat gets DEADLINE_EXCEEDED.
        let r = mfc.call(keyed(SNILS, "c2", "b")).await;
        assert_eq!(hub_error(r), HubError::DeadlineExceeded);
        let r = mfc.call(keyed(SNILS, "c2", "b")).await;
        assert_eq!(
            hub_error(r),
            HubError::DeadlineExceeded,
            "the repeat of an expired call"
        );

        // Pipelined with one key: one waits for the answer, the other hears
        // DUPLICATE naming the same request.
        let (c1, c2) = (mfc.clone(), mfc.clone());
        let a = glommio::spawn_local(async move { c1.call(keyed(PASSPORT, "c3", "c")).await });
        let b = glommio::spawn_local(async move { c2.call(keyed(PASSPORT, "c3", "c")).await });
        let request_id = answer_next(&mvd, "valid").await;
        let (a, b) = (
            bounded("call a", OP, a).await,
            bounded("call b", OP, b).await,
        );
        let (answer, duplicate) = match (a, b) {
            (Ok(m), other) | (other, Ok(m)) => (m, hub_error(other)),
            (a, b) => panic!("neither pipelined call got the answer: {a:?} {b:?}"),
        };
        assert_eq!(answer.reply_to, Some(request_id));
        assert_eq!(
            duplicate,
            HubError::Duplicate {
                original: request_id
            }
        );
        assert!(
            fetch_rest(&mvd, &requests(PASSPORT)).await.is_empty(),
            "a second request was made"
        );

        // A send_request's key repeated by a call: DUPLICATE with its id.
        let a = mfc
            .send_request(keyed(PASSPORT, "c4", "d"))
            .await
            .expect("send_request");
        let r = mfc.call(keyed(PASSPORT, "c4", "d")).await;
        assert_eq!(hub_error(r), HubError::Duplicate { original: a.id });
    });
}

// ---- a repeated ACK ----

#[test]
fn given_an_acked_message_when_acked_again_then_done_and_an_unheld_one_not_found() {
    let consumer = cross_shard_consumer();
    let server = ServerProcess::start_default();
    let ep = server.endpoint();
    run_local(move || async move {
        let cons = ep.connect(&consumer).await;
        let fns = ep.connect("FNS").await;
        for i in 0..3 {
            cons.send_request(NewRequest::new(EGRUL, format!("again-{i}")))
                .await
                .expect("send_request");
        }
        let got = fetch_n(&fns, &requests(EGRUL), 3, OP).await;
        // A request acked twice: both Done (a retry after a lost reply is harmless).
        fns.ack(&got[0]).await.expect("ack");
        fns.ack(&got[0]).await.expect("the repeated ack");
        // Answered, then acked (a provider's usual order): Done.
        fns.send_response(got[1].id, "data").await.expect("answer");
        fns.ack(&got[1]).await.expect("ack after the answer");
        // Leased, lease given back by a nack, not acked: NOT_FOUND.
        fns.nack(&got[2], Duration::from_secs(60))
            .await
            .expect("nack");
        match fns.ack(&got[2]).await {
            Err(ClientError::Hub(HubError::NotFound)) => {}
            other => panic!("ack of a message no longer held: {other:?}"),
        }
        // An answer acked twice (its queue is on the other shard): Done.
        let answer = fetch_n(&cons, &answers(&consumer), 1, OP).await.remove(0);
        cons.ack(&answer).await.expect("ack of the answer");
        cons.ack(&answer)
            .await
            .expect("the repeated ack of the answer");
        // From another connection the lease is not its own: NOT_FOUND.
        let other = ep.connect(&consumer).await;
        match other.ack(&answer).await {
            Err(ClientError::Hub(HubError::NotFound)) => {}
            other => panic!("ack with another connection's lease: {other:?}"),
        }
    });
}
