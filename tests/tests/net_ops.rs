//! Every operation and every typed error over the wire: a `gonets serve`
//! child process per test, Rust clients connecting with the development
//! certificates it made (docs/protocol.md).
//!
//! Needs the `gonets` binary (`cargo build --release -p gonets --bin gonets`).

use gonets_client::glommio::Client;
use gonets_client::{ClientError, Message};
use gonets_proto::header::{ErrorReply, Fetch};
use gonets_proto::Opcode;
use gonets_server::tls;
use gonets_tests::net::{
    bounded, fetch_n, frame, run_local, within, Mode, RawConn, ServerOptions, ServerProcess,
};
use gonets_types::{Accepted, AnswerBody};
use gonets_types::{
    DeliveryBody, HubError, MessageId, NewRequest, ParticipantId, QueueId, RefusalCode,
};
use std::time::{Duration, Instant};

const EGRUL: &str = "urn:gonets:fns:egrul-extract:1";
const EGRN: &str = "urn:gonets:rosreestr:egrn-extract:1";
const PASSPORT: &str = "urn:gonets:mvd:passport-validity:1";
const SNILS: &str = "urn:gonets:sfr:snils-check:1";
/// Bound of one operation.
const OP: Duration = Duration::from_secs(120);

fn requests(kind: &str) -> QueueId {
    QueueId::Requests(gonets_types::DataKindId::new(kind))
}

fn answers(p: &str) -> QueueId {
    QueueId::Answers(ParticipantId::new(p))
}

/// MFC sends an EGRUL request with `payload`; FNS fetches it (checked to be that request).
async fn send_and_fetch(mfc: &Client, fns: &Client, payload: &'static str) -> (Accepted, Message) {
    let accepted = mfc
        .send_request(NewRequest::new(EGRUL, payload))
        .await
        .expect("send_request");
    let request = fetch_n(fns, &requests(EGRUL), 1, OP).await.remove(0);
    assert_eq!(request.id, accepted.id);
    (accepted, request)
}

/// Expects `r` to be the hub's typed error matching `want`.
fn expect_hub<T: std::fmt::Debug>(
    what: &str,
    r: Result<T, ClientError>,
    want: impl Fn(&HubError) -> bool,
) -> HubError {
    match r {
        Err(ClientError::Hub(e)) if want(&e) => e,
        other => panic!("{what}: expected a typed hub error, got {other:?}"),
    }
}

/// The history's event names.
async fn history(client: &Client, id: MessageId) -> Vec<String> {
    let s = bounded("status", OP, client.status(id))
        .await
        .unwrap_or_else(|e| panic!("status {id}: {e}"));
    s.events.into_iter().map(|e| e.kind.to_string()).collect()
}

#[test]
fn given_a_consumer_and_a_provider_when_a_request_goes_through_every_step_then_each_operation_answers_over_the_wire(
) {
    let server = ServerProcess::start_default();
    let ep = server.endpoint();
    run_local(move || async move {
        let mfc = ep.connect("MFC").await;
        let fns = ep.connect("FNS").await;

        bounded("ping", OP, mfc.ping()).await.expect("ping");
        let hello = mfc.hello().expect("a hello reply");
        assert_eq!(hello.participant, "MFC");
        assert_eq!(hello.shards, 2);
        assert_eq!(hello.version, 1);

        // send_request, and a repeat with the same idempotency key.
        let mut r = NewRequest::new(EGRUL, "ogrn 1027700132195");
        r.idempotency_key = Some("case-42".into());
        r.transaction = Some("tx-42".into());
        let accepted = bounded("send", OP, mfc.send_request(r.clone()))
            .await
            .expect("send_request");
        assert!(!accepted.duplicate);
        let again = bounded("send again", OP, mfc.send_request(r))
            .await
            .expect("send_request again");
        assert_eq!(again.id, accepted.id, "a repeat names the original request");
        assert!(again.duplicate, "a repeat says it is one");
        let id: MessageId = accepted.id;

        // queue_stats by the provider, then fetch.
        let st = fns.queue_stats(&requests(EGRUL)).await.expect("stats");
        assert_eq!((st.depth, st.in_flight), (1, 0), "one request queued");
        let got = fetch_n(&fns, &requests(EGRUL), 1, OP).await;
        let req = &got[0];
        assert_eq!(req.id, id);
        assert_eq!(req.body, DeliveryBody::Request);
        assert_eq!(req.from.as_str(), "MFC");
        assert_eq!(req.kind.as_str(), EGRUL);
        assert_eq!(req.delivery_count, 1);
        assert_eq!(req.transaction.as_deref(), Some("tx-42"));
        assert_eq!(&req.payload[..], b"ogrn 1027700132195");
        assert!(
            req.deadline_ms > req.time_ms,
            "an async request has a deadline"
        );
        let st = fns.queue_stats(&requests(EGRUL)).await.expect("stats");
        assert_eq!((st.depth, st.in_flight), (1, 1), "the request is leased");

        // send_response; the consumer fetches the answer and acks it.
        bounded("answer", OP, fns.send_response(id, "extract: OOO Romashka"))
            .await
            .expect("send_response");
        let st = fns.queue_stats(&requests(EGRUL)).await.expect("stats");
        assert_eq!(st.depth, 0, "an answered request leaves its queue");
        let got = fetch_n(&mfc, &answers("MFC"), 1, OP).await;
        let answer = &got[0];
        assert_eq!(answer.reply_to, Some(id));
        assert_eq!(answer.body, DeliveryBody::Answer(AnswerBody::Data));
        assert_eq!(answer.from.as_str(), "FNS");
        assert_eq!(answer.kind.as_str(), EGRUL);
        assert_eq!(answer.delivery_count, 1);
        assert_eq!(&answer.payload[..], b"extract: OOO Romashka");
        let st = mfc.queue_stats(&answers("MFC")).await.expect("stats");
        assert_eq!((st.depth, st.in_flight), (1, 1));
        bounded("ack", OP, mfc.ack(answer)).await.expect("ack");
        let st = mfc.queue_stats(&answers("MFC")).await.expect("stats");
        assert_eq!((st.depth, st.in_flight), (0, 0), "the acked answer is gone");

        // status: the whole history, for the consumer and the provider, by
        // the request's id and by the answer's.
        let deadline = Instant::now() + OP;
        let events = loop {
            let events = history(&mfc, id).await;
            if events.iter().any(|e| e == "answer_acked") || Instant::now() > deadline {
                break events;
            }
            glommio::timer::sleep(Duration::from_millis(20)).await;
        };
        let want = [
            "accepted",
            "delivered",
            "answered",
            "answer_delivered",
            "answer_acked",
        ];
        let mut at = 0;
        for e in &events {
            if at < want.len() && e == want[at] {
                at += 1;
            }
        }
        assert_eq!(
            at,
            want.len(),
            "history {events:?} lacks {want:?} in this order"
        );
        let s = fns
            .status(id)
            .await
            .expect("the provider reads the history");
        assert_eq!(s.request_id, id);
        assert_eq!(s.answer_id, Some(answer.id));
        assert_eq!((s.consumer.as_str(), s.provider.as_str()), ("MFC", "FNS"));
        assert_eq!(s.kind.as_str(), EGRUL);
        let by_answer = mfc.status(answer.id).await.expect("status by answer id");
        assert_eq!(by_answer.request_id, id);
        let operator = ep.connect("OPERATOR").await;
        operator
            .status(id)
            .await
            .expect("an operator reads any history");
        let st = operator
            .queue_stats(&requests(EGRUL))
            .await
            .expect("an operator reads any queue's stats");
        assert_eq!(st.depth, 0);
        bounded("ping", OP, fns.ping()).await.expect("ping");
    });
}

#[test]
fn given_a_fetched_request_when_nacked_with_a_delay_then_it_comes_back_after_the_delay_with_delivery_count_2(
) {
    let server = ServerProcess::start_default();
    let ep = server.endpoint();
    run_local(move || async move {
        let mfc = ep.connect("MFC").await;
        let fns = ep.connect("FNS").await;
        let (_, first) = send_and_fetch(&mfc, &fns, "nack me").await;
        assert_eq!(first.delivery_count, 1);
        let delay = Duration::from_millis(700);
        let nacked_at = Instant::now();
        bounded("nack", OP, fns.nack(&first, delay))
            .await
            .expect("nack");
        let again = fetch_n(&fns, &requests(EGRUL), 1, OP).await.remove(0);
        let waited = nacked_at.elapsed();
        assert_eq!(again.id, first.id, "the same request comes back");
        assert_eq!(again.delivery_count, 2);
        assert!(
            waited + Duration::from_millis(50) >= delay,
            "redelivered after {waited:?}, before the nack's delay of {delay:?}"
        );
        let events = history(&fns, first.id).await;
        assert!(events.iter().any(|e| e == "nacked"), "history {events:?}");
        bounded("ack", OP, fns.ack(&again)).await.expect("ack");
        let st = fns.queue_stats(&requests(EGRUL)).await.expect("stats");
        assert_eq!((st.depth, st.in_flight), (0, 0), "acked: gone");
        // Acking again is harmless; acking with a lease never given is not.
        fns.ack(&again).await.expect("a repeated ack is harmless");
        let mut forged = again.clone();
        forged.reader = forged.reader.wrapping_add(1_000_000);
        expect_hub("ack with a foreign lease", fns.ack(&forged).await, |e| {
            *e == HubError::NotFound
        });
    });
}

#[test]
fn given_a_subscription_when_requests_arrive_then_they_are_pushed_within_credits_and_unsubscribe_gives_back_the_unacked(
) {
    let server = ServerProcess::start_default();
    let ep = server.endpoint();
    run_local(move || async move {
        let mfc = ep.connect("MFC").await;
        let fns = ep.connect("FNS").await;
        let mut sub = bounded("subscribe", OP, fns.subscribe(&requests(EGRUL), 2))
            .await
            .expect("subscribe");
        let mut sent = Vec::new();
        for i in 0..5 {
            let a = mfc
                .send_request(NewRequest::new(EGRUL, format!("sub {i}")))
                .await
                .expect("send_request");
            sent.push(a.id);
        }
        let mut pushed = Vec::new();
        for _ in 0..2 {
            pushed.push(bounded("push", OP, sub.recv()).await.expect("a push"));
        }
        assert!(
            within(Duration::from_millis(500), sub.recv())
                .await
                .is_none(),
            "a third push came with 2 credits"
        );
        bounded("add_credits", OP, sub.add_credits(3))
            .await
            .expect("add_credits");
        for _ in 0..3 {
            pushed.push(bounded("push", OP, sub.recv()).await.expect("a push"));
        }
        let ids: Vec<MessageId> = pushed.iter().map(|m| m.id).collect();
        assert_eq!(ids, sent, "pushed in order, each once");
        assert!(pushed.iter().all(|m| m.delivery_count == 1));
        // Ack all but the last; unsubscribe gives the last back.
        for m in &pushed[..4] {
            bounded("ack", OP, fns.ack(m)).await.expect("ack a push");
        }
        bounded("unsubscribe", OP, sub.unsubscribe())
            .await
            .expect("unsubscribe");
        let back = fetch_n(&fns, &requests(EGRUL), 1, OP).await.remove(0);
        assert_eq!(back.id, pushed[4].id, "the unacked push goes back");
        assert_eq!(back.delivery_count, 2);
        // After unsubscribing, new requests go to fetch, not to the old subscription.
        send_and_fetch(&mfc, &fns, "after").await;
    });
}

#[test]
fn given_a_request_when_the_provider_refuses_it_then_the_consumer_sees_the_refusal_code() {
    let server = ServerProcess::start_default();
    let ep = server.endpoint();
    run_local(move || async move {
        let mfc = ep.connect("MFC").await;
        let fns = ep.connect("FNS").await;
        let a = mfc
            .send_request(NewRequest::new(EGRUL, "ogrn 0000000000000"))
            .await
            .expect("send_request");
        let req = fetch_n(&fns, &requests(EGRUL), 1, OP).await.remove(0);
        bounded(
            "refuse",
            OP,
            fns.send_refusal(req.id, RefusalCode::NoData, "no such legal entity"),
        )
        .await
        .expect("send_refusal");
        let answer = fetch_n(&mfc, &answers("MFC"), 1, OP).await.remove(0);
        assert_eq!(answer.reply_to, Some(a.id));
        assert_eq!(
            answer.body,
            DeliveryBody::Answer(AnswerBody::Refusal {
                code: RefusalCode::NoData,
                reason: "no such legal entity".into()
            })
        );
        assert_eq!(answer.from.as_str(), "FNS");
        mfc.ack(&answer).await.expect("ack the refusal");
        let events = history(&mfc, req.id).await;
        assert!(events.iter().any(|e| e == "refused"), "history {events:?}");
        // Codes only the hub gives are refused to providers.
        let (_, req) = send_and_fetch(&mfc, &fns, "second").await;
        expect_hub(
            "a hub-only refusal code",
            fns.send_refusal(req.id, RefusalCode::Undeliverable, "x")
                .await,
            |e| matches!(e, HubError::Malformed(_)),
        );
    });
}

#[test]
fn given_a_realtime_kind_when_the_provider_answers_within_the_budget_then_the_call_returns_the_answer(
) {
    let server = ServerProcess::start_default();
    let ep = server.endpoint();
    run_local(move || async move {
        let mfc = ep.connect("MFC").await;
        let mvd = ep.connect("MVD").await;
        let mut sub = mvd
            .subscribe(&requests(PASSPORT), 8)
            .await
            .expect("subscribe");
        let provider = glommio::spawn_local(async move {
            for _ in 0..3 {
                let r = bounded("push", OP, sub.recv()).await.expect("a push");
                let answer = format!("VALID {}", String::from_utf8_lossy(&r.payload));
                mvd.send_response(r.id, answer).await.expect("answer");
            }
        });
        for i in 0..3 {
            let started = Instant::now();
            let answer = bounded(
                "call",
                OP,
                mfc.call(NewRequest::new(PASSPORT, format!("4510 00000{i}"))),
            )
            .await
            .expect("a call answered in time");
            assert_eq!(answer.body, DeliveryBody::Answer(AnswerBody::Data));
            assert_eq!(
                &answer.payload[..],
                format!("VALID 4510 00000{i}").as_bytes()
            );
            assert_eq!(answer.from.as_str(), "MVD");
            assert!(answer.reply_to.is_some());
            assert!(
                started.elapsed() < Duration::from_secs(6),
                "call took {:?}",
                started.elapsed()
            );
        }
        bounded("provider", OP, provider).await;
    });
}

#[test]
fn given_a_realtime_call_no_provider_answers_when_the_budget_passes_then_deadline_exceeded_and_a_late_answer_is_refused(
) {
    let server = ServerProcess::start_default();
    let ep = server.endpoint();
    run_local(move || async move {
        let mfc = ep.connect("MFC").await;
        let mvd = ep.connect("MVD").await;
        let started = Instant::now();
        let call = glommio::spawn_local(async move {
            let r = mfc
                .call(NewRequest::new(PASSPORT, "4510 999999"))
                .await
                .map(|d| d.id);
            (r, started.elapsed())
        });
        // The provider takes the request and sits on it.
        let req = fetch_n(&mvd, &requests(PASSPORT), 1, OP).await.remove(0);
        let (r, took) = bounded("call", OP, call).await;
        expect_hub("an unanswered call", r, |e| {
            *e == HubError::DeadlineExceeded
        });
        assert!(
            took >= Duration::from_millis(1900) && took <= Duration::from_secs(6),
            "DeadlineExceeded after {took:?}, expected about the 2 s budget"
        );
        expect_hub(
            "a late answer",
            mvd.send_response(req.id, "VALID").await,
            |e| *e == HubError::DeadlineExceeded,
        );
        let events = history(&mvd, req.id).await;
        assert!(events.iter().any(|e| e == "expired"), "history {events:?}");
    });
}

#[test]
fn given_requests_the_hub_refuses_when_sent_then_each_gets_its_typed_error() {
    let server = ServerProcess::start_default();
    let ep = server.endpoint();
    run_local(move || async move {
        let mfc = ep.connect("MFC").await;
        let mvd = ep.connect("MVD").await;
        let operator = ep.connect("OPERATOR").await;
        let fns = ep.connect("FNS").await;

        // NotAuthorized: reading another's queue, requesting a kind one may not.
        expect_hub(
            "MFC fetches FNS's requests",
            mfc.fetch(&requests(EGRUL), 10, Duration::ZERO).await,
            |e| matches!(e, HubError::NotAuthorized(_)),
        );
        expect_hub(
            "MFC subscribes to FNS's requests",
            mfc.subscribe(&requests(EGRUL), 4).await.map(|_| ()),
            |e| matches!(e, HubError::NotAuthorized(_)),
        );
        expect_hub(
            "MVD requests SNILS checks (not a consumer of the kind)",
            mvd.send_request(NewRequest::new(SNILS, "123-456-789 00"))
                .await,
            |e| matches!(e, HubError::NotAuthorized(_)),
        );
        expect_hub(
            "the operator requests (not a consumer at all)",
            operator.send_request(NewRequest::new(EGRUL, "ogrn")).await,
            |e| matches!(e, HubError::NotAuthorized(_)),
        );
        expect_hub(
            "MFC reads FNS's queue stats",
            mfc.queue_stats(&requests(EGRUL)).await,
            |e| matches!(e, HubError::NotAuthorized(_)),
        );

        // UnknownDataKind.
        let e = expect_hub(
            "an unknown kind",
            mfc.send_request(NewRequest::new("urn:gonets:nobody:nothing:1", "x"))
                .await,
            |e| matches!(e, HubError::UnknownDataKind(_)),
        );
        assert!(e.to_string().contains("urn:gonets:nobody:nothing:1"), "{e}");

        // TooLarge: passport-validity takes at most 4096 bytes.
        let e = expect_hub(
            "a 5000-byte passport check",
            mfc.call(NewRequest::new(PASSPORT, vec![b'9'; 5000])).await,
            |e| matches!(e, HubError::TooLarge { .. }),
        );
        assert_eq!(
            e,
            HubError::TooLarge {
                size_bytes: 5000,
                size_bytes_max: 4096
            }
        );
        expect_hub(
            "a 5000-byte passport request",
            mfc.send_request(NewRequest::new(PASSPORT, vec![b'9'; 5000]))
                .await,
            |e| matches!(e, HubError::TooLarge { .. }),
        );

        // StateSecret.
        let mut secret = NewRequest::new(EGRUL, "top secret");
        secret.state_secret = true;
        expect_hub("a state secret", mfc.send_request(secret).await, |e| {
            *e == HubError::StateSecret
        });

        // NotFound: a history no one has, an answer to nothing.
        let unknown = MessageId::new(1_700_000_000_000, 1, 123_456);
        expect_hub("status of an unknown id", mfc.status(unknown).await, |e| {
            *e == HubError::NotFound
        });
        expect_hub(
            "an answer to an unknown request",
            fns.send_response(unknown, "x").await,
            |e| *e == HubError::NotFound,
        );

        // Malformed: a call of an async kind, a queue name with no participant,
        // too many credits.
        expect_hub(
            "a call of an async kind",
            mfc.call(NewRequest::new(EGRUL, "x")).await,
            |e| matches!(e, HubError::Malformed(_)),
        );
        expect_hub(
            "the queue name \"answers/\"",
            mfc.fetch(&answers(""), 1, Duration::ZERO).await,
            |e| matches!(e, HubError::Malformed(_)),
        );
        expect_hub(
            "a subscription with more credits than its buffer",
            fns.subscribe(&requests(EGRUL), u32::MAX).await.map(|_| ()),
            |e| matches!(e, HubError::Malformed(_)),
        );

        // None of this broke the connections.
        for c in [&mfc, &mvd, &operator, &fns] {
            bounded("ping", OP, c.ping())
                .await
                .expect("ping after errors");
        }
        let a = mfc
            .send_request(NewRequest::new(EGRUL, "still fine"))
            .await
            .expect("a valid request after errors");
        let got = fetch_n(&fns, &requests(EGRUL), 1, OP).await;
        assert_eq!(got[0].id, a.id);
    });
}

#[test]
fn given_a_request_answered_once_when_answered_again_then_already_answered() {
    let server = ServerProcess::start_default();
    let ep = server.endpoint();
    run_local(move || async move {
        let mfc = ep.connect("MFC").await;
        let fns = ep.connect("FNS").await;
        mfc.send_request(NewRequest::new(EGRUL, "once"))
            .await
            .expect("send_request");
        let req = fetch_n(&fns, &requests(EGRUL), 1, OP).await.remove(0);
        fns.send_response(req.id, "first").await.expect("answer");
        let e = expect_hub(
            "a second answer",
            fns.send_response(req.id, "second").await,
            |e| matches!(e, HubError::AlreadyAnswered(_)),
        );
        assert_eq!(e, HubError::AlreadyAnswered(req.id));
        expect_hub(
            "a refusal after the answer",
            fns.send_refusal(req.id, RefusalCode::Failure, "late").await,
            |e| matches!(e, HubError::AlreadyAnswered(_)),
        );
        // The consumer gets the first answer only.
        let answer = fetch_n(&mfc, &answers("MFC"), 1, OP).await.remove(0);
        assert_eq!(&answer.payload[..], b"first");
        mfc.ack(&answer).await.expect("ack");
        let more = mfc
            .fetch(&answers("MFC"), 10, Duration::from_millis(300))
            .await
            .expect("fetch");
        assert!(more.is_empty(), "a second answer was delivered: {more:?}");
    });
}

#[test]
fn given_a_certificate_of_an_unregistered_participant_when_it_connects_then_unauthenticated() {
    // The server trusts a CA that also signed a certificate for GHOST, a
    // participant the registry does not know.
    let certs_dir = tempfile::tempdir().expect("tempdir");
    let ids = ["FNS", "MVD", "SFR", "ROSREESTR", "MFC", "OPERATOR", "GHOST"];
    let certs = tls::make_dev_certs(certs_dir.path(), &ids, &["localhost", "127.0.0.1"])
        .expect("make certificates");
    let server = ServerProcess::start(ServerOptions {
        mode: Mode::TlsFiles(certs.server_files()),
        ..ServerOptions::default()
    });
    let ep = server.endpoint();
    run_local(move || async move {
        let r = bounded("connect", OP, Client::connect(ep.client_config("GHOST"))).await;
        expect_hub("GHOST connects", r, |e| *e == HubError::Unauthenticated);
        let mfc = ep.connect("MFC").await;
        bounded("ping", OP, mfc.ping())
            .await
            .expect("a registered participant with a certificate of the same CA works");
    });
    drop(certs_dir);
}

#[test]
fn given_a_queue_at_its_bound_when_one_more_request_comes_then_quota_exceeded() {
    // The demo registry with the EGRN queue bounded at 3 messages.
    let dir = tempfile::tempdir().expect("tempdir");
    let text = include_str!("../../core/engine/registry.default.toml");
    assert!(text.contains("queue_messages_max = 100000"));
    let registry = dir.path().join("registry.toml");
    std::fs::write(
        &registry,
        text.replace("queue_messages_max = 100000", "queue_messages_max = 3"),
    )
    .expect("write the registry");
    let server = ServerProcess::start(ServerOptions {
        registry: Some(registry),
        ..ServerOptions::default()
    });
    let ep = server.endpoint();
    run_local(move || async move {
        let mfc = ep.connect("MFC").await;
        let ros = ep.connect("ROSREESTR").await;
        for i in 0..3 {
            mfc.send_request(NewRequest::new(EGRN, format!("cadastral {i}")))
                .await
                .expect("within the bound");
        }
        expect_hub(
            "a fourth request",
            mfc.send_request(NewRequest::new(EGRN, "cadastral 3")).await,
            |e| *e == HubError::QuotaExceeded,
        );
        // Room again once one is answered.
        let req = fetch_n(&ros, &requests(EGRN), 3, OP).await.remove(0);
        ros.send_response(req.id, "extract").await.expect("answer");
        mfc.send_request(NewRequest::new(EGRN, "cadastral 4"))
            .await
            .expect("room after an answer");
    });
    drop(dir);
}

#[test]
fn given_a_consumer_that_stops_reading_when_answers_pass_its_bound_then_quota_exceeded_until_it_acks(
) {
    // The demo registry, its EGRN queue bounded at 100 payload bytes and
    // MFC's answers at 2 per shard; answers on the wire come back typed.
    let dir = tempfile::tempdir().expect("tempdir");
    let shards = ServerOptions::default().shards;
    let text = include_str!("../../core/engine/registry.default.toml");
    let mfc_token = "token = \"dev-mfc\"\n";
    assert!(text.contains("queue_messages_max = 100000") && text.contains(mfc_token));
    let text = text
        .replace(
            "queue_messages_max = 100000",
            "queue_messages_max = 100000\npayload_bytes_max = 64\nqueue_bytes_max = 100",
        )
        .replace(
            mfc_token,
            &format!("{mfc_token}answer_queue_messages_max = {}\n", 2 * shards),
        );
    let registry = dir.path().join("registry.toml");
    std::fs::write(&registry, text).expect("write the registry");
    let server = ServerProcess::start(ServerOptions {
        registry: Some(registry),
        ..ServerOptions::default()
    });
    let ep = server.endpoint();
    run_local(move || async move {
        let mfc = ep.connect("MFC").await;
        let ros = ep.connect("ROSREESTR").await;
        for i in 0..3 {
            let r = NewRequest::new(EGRN, vec![b'0' + i; 30]);
            mfc.send_request(r).await.expect("within the byte quota");
        }
        expect_hub(
            "a fourth request of 30 bytes over 100",
            mfc.send_request(NewRequest::new(EGRN, vec![b'x'; 30]))
                .await,
            |e| *e == HubError::QuotaExceeded,
        );
        let got = fetch_n(&ros, &requests(EGRN), 3, OP).await;
        for m in &got[..2] {
            ros.send_response(m.id, "extract")
                .await
                .expect("within the bound");
        }
        expect_hub(
            "a third answer to a consumer that does not read",
            ros.send_response(got[2].id, "extract").await,
            |e| *e == HubError::QuotaExceeded,
        );
        // The request stays open; once MFC acks an answer, it goes.
        let answers = QueueId::Answers(ParticipantId::new("MFC"));
        let answer = fetch_n(&mfc, &answers, 1, OP).await.remove(0);
        mfc.ack(&answer).await.expect("ack the answer");
        ros.send_response(got[2].id, "extract")
            .await
            .expect("room after the consumer's ack");
        let rest = fetch_n(&mfc, &answers, 2, OP).await;
        let mut ids: Vec<MessageId> = rest
            .iter()
            .map(|m| m.reply_to.expect("an answer"))
            .collect();
        ids.push(answer.reply_to.expect("an answer"));
        ids.sort();
        let mut sent: Vec<MessageId> = got.iter().map(|m| m.id).collect();
        sent.sort();
        assert_eq!(ids, sent, "every answer reaches the consumer once");
    });
    drop(dir);
}

#[test]
fn given_a_bad_queue_name_on_the_wire_when_fetched_then_malformed_and_the_connection_goes_on() {
    let server = ServerProcess::start(ServerOptions::dev_token());
    let mut raw = RawConn::connect(server.addr());
    raw.hello("FNS", "dev-fns");
    let fetch = Fetch {
        queue: "nonsense".into(),
        max: 1,
        wait_ms: 0,
    };
    raw.send(&frame(Opcode::Fetch, 7, &fetch, &[]));
    let mut f = raw
        .next_frame(Duration::from_secs(10))
        .expect("an answer to the fetch");
    assert_eq!(f.header.opcode, Opcode::Error);
    assert_eq!(f.header.correlation_id, 7);
    let e: ErrorReply = gonets_proto::parse_header(&mut f.json).expect("error header");
    assert_eq!(e.code, "MALFORMED", "{e:?}");
    assert!(!e.fatal, "a bad queue name is not fatal: {e:?}");
    assert_eq!(
        e.to_hub().map(|h| matches!(h, HubError::Malformed(_))),
        Some(true)
    );
    assert!(e.message.contains("nonsense"), "{e:?}");
    // The connection goes on.
    raw.send(&frame(
        Opcode::Ping,
        8,
        &gonets_proto::header::Empty {},
        &[],
    ));
    let f = raw
        .next_frame(Duration::from_secs(10))
        .expect("a ping reply");
    assert_eq!(f.header.opcode, Opcode::Ping.reply());
    assert_eq!(f.header.correlation_id, 8);
}

#[test]
fn given_a_batch_sent_in_one_frame_when_fetched_and_acked_in_one_frame_then_every_id_ends_exactly_once(
) {
    let server = ServerProcess::start_default();
    let ep = server.endpoint();
    run_local(move || async move {
        let mfc = ep.connect("MFC").await;
        let fns = ep.connect("FNS").await;
        let mut batch: Vec<NewRequest> = (0..20)
            .map(|i| NewRequest::new(EGRUL, format!("batch {i}")))
            .collect();
        batch[7].state_secret = true;
        let results = bounded("send_requests", OP, mfc.send_requests(batch))
            .await
            .expect("send_requests");
        assert_eq!(results.len(), 20, "one result per request");
        assert_eq!(results[7], Err(HubError::StateSecret), "its slot only");
        let sent: Vec<MessageId> = results
            .iter()
            .filter_map(|r| r.as_ref().ok())
            .map(|a| a.id)
            .collect();
        assert_eq!(sent.len(), 19);
        let got = fetch_n(&fns, &requests(EGRUL), 19, OP).await;
        let fetched: Vec<MessageId> = got.iter().map(|m| m.id).collect();
        assert_eq!(fetched, sent, "each once, in the batch's order");
        assert_eq!(&got[0].payload[..], b"batch 0");
        assert_eq!(
            &got[8].payload[..],
            b"batch 9",
            "payloads cut at their lengths"
        );
        let refused = bounded("ack_many", OP, fns.ack_many(&got))
            .await
            .expect("ack_many");
        assert_eq!(refused, vec![], "every lease held");
        let st = fns.queue_stats(&requests(EGRUL)).await.expect("stats");
        assert_eq!((st.depth, st.in_flight), (0, 0), "all acked: gone");
        for id in [sent[0], sent[18]] {
            let events = history(&fns, id).await;
            let acked = events.iter().filter(|e| *e == "acked").count();
            assert_eq!(acked, 1, "history {events:?}");
        }
        // Acking again is harmless; a lease never given is refused per id.
        let again = fns.ack_many(&got[..2]).await.expect("a repeated ack_many");
        assert_eq!(again, vec![]);
        let mut forged = got[0].clone();
        forged.reader = forged.reader.wrapping_add(1_000_000);
        expect_hub(
            "ack_many with a foreign lease",
            fns.ack_many(&[forged]).await,
            |e| *e == HubError::NotFound,
        );
        let mixed = vec![NewRequest::new(EGRUL, "a"), NewRequest::new(EGRN, "b")];
        expect_hub(
            "a mixed batch",
            mfc.send_requests(mixed).await,
            |e| matches!(e, HubError::Malformed(m) if m.contains("mixes data kinds")),
        );
        expect_hub(
            "an empty batch",
            mfc.send_requests(vec![]).await,
            |e| matches!(e, HubError::Malformed(m) if m.contains("empty batch")),
        );
    });
}

#[test]
fn given_fetched_requests_when_nacked_in_one_frame_then_each_comes_again_and_a_foreign_lease_is_refused(
) {
    let server = ServerProcess::start_default();
    let ep = server.endpoint();
    run_local(move || async move {
        let mfc = ep.connect("MFC").await;
        let rosreestr = ep.connect("ROSREESTR").await;
        let batch: Vec<NewRequest> = (0..3)
            .map(|i| NewRequest::new(EGRN, format!("nack {i}")))
            .collect();
        let results = bounded("send_requests", OP, mfc.send_requests(batch))
            .await
            .expect("send_requests");
        let sent: Vec<MessageId> = results.iter().map(|r| r.as_ref().unwrap().id).collect();
        let got = fetch_n(&rosreestr, &requests(EGRN), 3, OP).await;
        let refused = bounded("nack_many", OP, rosreestr.nack_many(&got, Duration::ZERO))
            .await
            .expect("nack_many");
        assert_eq!(refused, vec![], "every lease held");
        let again = fetch_n(&rosreestr, &requests(EGRN), 3, OP).await;
        let ids: Vec<MessageId> = again.iter().map(|m| m.id).collect();
        assert_eq!(ids, sent, "each again, in its place");
        assert!(again.iter().all(|m| m.delivery_count == 2), "{again:?}");
        let events = history(&rosreestr, sent[1]).await;
        assert_eq!(
            events.iter().filter(|e| *e == "nacked").count(),
            1,
            "{events:?}"
        );
        let mut forged = again[0].clone();
        forged.reader = forged.reader.wrapping_add(1_000_000);
        expect_hub(
            "nack_many with a foreign lease",
            rosreestr.nack_many(&[forged], Duration::ZERO).await,
            |e| *e == HubError::NotFound,
        );
        let refused = rosreestr.ack_many(&again).await.expect("ack_many");
        assert_eq!(refused, vec![]);
        // Acked: no lease left to nack, refused per id.
        let stale = rosreestr.nack_many(&again[..1], Duration::ZERO).await;
        assert_eq!(stale.expect("a reply"), vec![(sent[0], HubError::NotFound)]);
    });
}

#[test]
fn given_a_request_with_its_own_expiry_behind_an_older_one_when_it_passes_then_the_consumer_gets_deadline_exceeded_first(
) {
    let server = ServerProcess::start_default();
    let ep = server.endpoint();
    run_local(move || async move {
        let mfc = ep.connect("MFC").await;
        let fns = ep.connect("FNS").await;
        let older = mfc
            .send_request(NewRequest::new(EGRUL, "ogrn 1111111111111"))
            .await
            .expect("send_request");
        let short = mfc
            .send_request(
                NewRequest::new(EGRUL, "ogrn 2222222222222")
                    .expiring_in(Duration::from_millis(300)),
            )
            .await
            .expect("send_request with its own expiry");
        let view = bounded("status", OP, mfc.status(short.id))
            .await
            .expect("status");
        assert_eq!(view.deadline_ms, short.time_ms + 300, "its own, not 48 h");
        // The hub refuses it into the consumer's answer queue, while the
        // older request (the kind's 48 h) waits on ahead of it.
        let answer = fetch_n(&mfc, &answers("MFC"), 1, OP).await.remove(0);
        assert_eq!(answer.reply_to, Some(short.id));
        assert_eq!(answer.from.as_str(), "HUB");
        assert!(
            matches!(
                answer.body,
                DeliveryBody::Answer(AnswerBody::Refusal {
                    code: RefusalCode::DeadlineExceeded,
                    ..
                })
            ),
            "{:?}",
            answer.body
        );
        mfc.ack(&answer).await.expect("ack the refusal");
        let events = history(&mfc, short.id).await;
        assert!(events.iter().any(|e| e == "expired"), "history {events:?}");
        let req = fetch_n(&fns, &requests(EGRUL), 1, OP).await.remove(0);
        assert_eq!(req.id, older.id, "the older one still waits");
        // An expiry past the kind's deadline is refused before anything is stored.
        let e = expect_hub(
            "an expiry past the kind's 48 h",
            mfc.send_request(
                NewRequest::new(EGRUL, "ogrn 3").expiring_in(Duration::from_secs(49 * 3600)),
            )
            .await,
            |e| matches!(e, HubError::Malformed(_)),
        );
        assert!(e.to_string().contains("exceeds data kind"), "{e}");
    });
}
