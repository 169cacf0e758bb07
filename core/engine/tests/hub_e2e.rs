//! End-to-end tests of the embedded hub: real glommio shards and logs in
//! temporary directories, driven through sessions from plain threads.

use bytes::Bytes;
use futures_lite::future::block_on;
use gonets_engine::record::{AnswerBody, EventKind};
use gonets_engine::{Hub, HubConfig, HubStartError, LogConfig, Registry, Session};
use gonets_types::{
    Command, DeliveryBody, HubError, Message, MessageId, NewRequest, ParticipantId, QueueId,
    RefusalCode, Reply, StatusView,
};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// An async data kind of the embedded registry: FNS serves it to MVD, SFR, ROSREESTR, MFC.
const EGRUL: &str = "urn:gonets:fns:egrul-extract:1";
/// A realtime data kind of the embedded registry: FNS serves it to SFR and MFC.
const INN: &str = "urn:gonets:fns:inn-by-passport:1";
/// Long enough for any single operation on a loaded machine.
const WAIT: Duration = Duration::from_secs(5);

fn config(dir: &Path, shards: u16) -> HubConfig {
    let mut c = HubConfig::new(dir);
    c.shards = shards;
    c.log = LogConfig::small_for_tests();
    c
}

fn start(dir: &Path, shards: u16) -> Hub {
    Hub::start(config(dir, shards)).expect("hub starts")
}

fn requests(kind: &str) -> QueueId {
    QueueId::Requests(gonets_types::DataKindId::new(kind))
}

fn answers(participant: &str) -> QueueId {
    QueueId::Answers(ParticipantId::new(participant))
}

/// Fetches from `queue` until one message arrives (bounded by `WAIT`).
fn fetch_one(session: &Session, queue: &QueueId) -> Message {
    let mut got = block_on(session.fetch(queue.clone(), 1, WAIT)).expect("fetch");
    assert_eq!(got.len(), 1, "one message within {WAIT:?} from {queue}");
    got.pop().expect("one")
}

/// Reads a history until it holds `kind` (steps reported by a peer shard come a moment later).
fn status_with(session: &Session, id: MessageId, kind: EventKind) -> StatusView {
    let until = Instant::now() + WAIT;
    loop {
        let s = block_on(session.status(id)).expect("status");
        if s.events.iter().any(|e| e.kind == kind) || Instant::now() > until {
            return s;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn kinds_of(s: &StatusView) -> Vec<EventKind> {
    s.events.iter().map(|e| e.kind).collect()
}

/// The whole asynchronous exchange: request, provider fetch, response,
/// consumer fetch, ack; checks the history at the end.
fn request_answer_ack(hub: &Hub, kind: &str, consumer: &str, provider: &str) {
    let c = hub.session(consumer).expect("consumer session");
    let p = hub.session(provider).expect("provider session");
    let accepted = block_on(c.send_request(NewRequest::new(kind, "passport 4510 123456")))
        .expect("request accepted");
    assert!(!accepted.duplicate);
    assert_eq!(
        accepted.id.shard(),
        requests(kind).shard(hub.shard_count()),
        "the request id names its queue's shard"
    );

    let request = fetch_one(&p, &requests(kind));
    assert_eq!(request.id, accepted.id);
    assert_eq!(request.body, DeliveryBody::Request);
    assert_eq!(request.from.as_str(), consumer);
    assert_eq!(request.delivery_count, 1);
    assert_eq!(request.payload, Bytes::from_static(b"passport 4510 123456"));

    block_on(p.send_response(request.id, "extract: OOO Romashka")).expect("response");
    let answer = fetch_one(&c, &answers(consumer));
    assert_eq!(answer.reply_to, Some(accepted.id));
    assert_eq!(answer.body, DeliveryBody::Answer(AnswerBody::Data));
    assert_eq!(answer.from.as_str(), provider);
    assert_eq!(answer.payload, Bytes::from_static(b"extract: OOO Romashka"));
    block_on(c.ack(&answer)).expect("ack");

    let status = status_with(&c, accepted.id, EventKind::AnswerAcked);
    assert_eq!(status.answer_id, Some(answer.id));
    let kinds = kinds_of(&status);
    for k in [
        EventKind::Accepted,
        EventKind::Delivered,
        EventKind::Answered,
        EventKind::AnswerDelivered,
        EventKind::AnswerAcked,
    ] {
        assert!(kinds.contains(&k), "{k:?} in {kinds:?}");
    }
    let stats = block_on(c.queue_stats(answers(consumer))).expect("stats");
    assert_eq!((stats.depth, stats.in_flight), (0, 0));
}

/// A (async kind, consumer) pair of the embedded registry whose request and
/// answer queues sit on different shards of `shards`.
fn cross_shard_pair(registry: &Registry, shards: u16) -> (String, String) {
    let mut kinds: Vec<_> = registry
        .kinds()
        .filter(|k| k.mode == gonets_engine::registry::Mode::Async)
        .collect();
    kinds.sort_by(|a, b| a.id.cmp(&b.id));
    for k in kinds {
        let mut consumers: Vec<_> = k.consumers.iter().collect();
        consumers.sort();
        for c in consumers {
            let rq = QueueId::Requests(k.id.clone()).shard(shards);
            let aq = QueueId::Answers(c.clone()).shard(shards);
            if rq != aq {
                return (k.id.to_string(), c.to_string());
            }
        }
    }
    panic!("no async kind and consumer on different shards of {shards}");
}

/// Sessions are shared between threads; a hub moves to the thread that stops it.
#[test]
fn given_api_types_when_checked_then_send_and_sync_where_promised() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<Session>();
    send_sync::<Message>();
    send::<gonets_engine::Subscription>();
    send::<Hub>();
}

#[test]
fn given_pin_to_missing_core_when_started_then_executor_error_names_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut c = config(dir.path(), 1);
    c.pin_cores = Some(vec![100_000]);
    let err = Hub::start(c).expect_err("no such core");
    assert!(matches!(err, HubStartError::Executor { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("pinned to core 100000") && text.contains("RLIMIT_MEMLOCK"),
        "{text}"
    );
}

#[test]
fn given_one_shard_when_request_answered_then_consumer_fetches_answer_and_acks() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hub = start(dir.path(), 1);
    request_answer_ack(&hub, EGRUL, "MFC", "FNS");
    hub.shutdown().expect("clean shutdown");
}

#[test]
fn given_request_on_other_shard_when_answered_then_consumer_gets_response() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hub = start(dir.path(), 2);
    let (kind, consumer) = cross_shard_pair(hub.registry(), 2);
    let provider = hub
        .registry()
        .kind(&gonets_types::DataKindId::new(&kind))
        .expect("kind")
        .provider
        .to_string();
    request_answer_ack(&hub, &kind, &consumer, &provider);
    hub.shutdown().expect("clean shutdown");
}

#[test]
fn given_pinned_shard_when_request_answered_then_works() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut c = config(dir.path(), 1);
    c.pin_cores = Some(vec![0]);
    let hub = Hub::start(c).expect("pinned hub starts");
    request_answer_ack(&hub, EGRUL, "SFR", "FNS");
    hub.shutdown().expect("clean shutdown");
}

#[test]
fn given_realtime_kind_when_called_and_provider_answers_then_caller_gets_answer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hub = start(dir.path(), 2);
    let provider = hub.session("FNS").expect("provider");
    let mut sub = block_on(provider.subscribe(requests(INN), 4)).expect("subscribe");
    let answering = std::thread::spawn(move || {
        let request = block_on(sub.recv()).expect("pushed request");
        assert_eq!(request.payload, Bytes::from_static(b"passport 4510 123456"));
        block_on(provider.send_response(request.id, "INN 770123456789")).expect("response");
        request.id
    });
    let consumer = hub.session("MFC").expect("consumer");
    let started = Instant::now();
    let answer =
        block_on(consumer.call(NewRequest::new(INN, "passport 4510 123456"))).expect("answer");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "within the 2 s budget"
    );
    let request_id = answering.join().expect("provider thread");
    assert_eq!(answer.reply_to, Some(request_id));
    assert_eq!(answer.body, DeliveryBody::Answer(AnswerBody::Data));
    assert_eq!(answer.payload, Bytes::from_static(b"INN 770123456789"));
    let status = status_with(&consumer, request_id, EventKind::AnswerAcked);
    assert!(kinds_of(&status).contains(&EventKind::Answered));
    hub.shutdown().expect("clean shutdown");
}

/// Calls durable on shard 0 so far (`counters.accepted` counts a call's
/// request once its record is durable).
fn durable_requests(hub: &Hub) -> u64 {
    block_on(hub.handle().shard_stats(0))
        .expect("the shard answers")
        .counters
        .accepted
}

#[test]
fn given_a_call_nobody_answers_yet_when_the_unawaited_delay_passes_then_its_request_is_durable() {
    // ADR 0025: nobody awaits a call's request alone, so it waits for its
    // answer's commit, but never longer than the delay.
    let dir = tempfile::tempdir().expect("tempdir");
    let mut c = config(dir.path(), 1);
    c.unawaited_commit_delay_ms = 500;
    let hub = Hub::start(c).expect("hub starts");
    let provider = hub.session("FNS").expect("provider");
    let mut sub = block_on(provider.subscribe(requests(INN), 4)).expect("subscribe");
    let consumer = hub.session("MFC").expect("consumer");
    let calling = std::thread::spawn(move || block_on(consumer.call(NewRequest::new(INN, "p"))));
    let request = block_on(sub.recv()).expect("the request is handed over while it waits");
    let handed_over = Instant::now();
    assert_eq!(
        durable_requests(&hub),
        0,
        "not committed at once: nothing awaits it"
    );
    // One look, past the 500 ms delay and before the call's deadline (2 s),
    // which would wake the shard and commit too. Not a polling loop: each
    // look wakes the shard, which would commit a due record without the
    // delay's own alarm, the thing checked here.
    std::thread::sleep(Duration::from_millis(1_200).saturating_sub(handed_over.elapsed()));
    assert_eq!(
        durable_requests(&hub),
        1,
        "durable once the delay passed, without an answer"
    );
    // The budget (2 s) may have run out on a slow machine: either outcome
    // is the call's own; the request's durability is what is checked.
    let _ = block_on(provider.send_response(request.id, "late or not"));
    let _ = calling.join().expect("caller thread");
    hub.shutdown().expect("clean shutdown");
}

/// The embedded registry with a realtime kind whose budget is 300 ms.
fn short_deadline_registry() -> Registry {
    Registry::from_toml(
        r#"
[[participant]]
id = "FNS"
name = "Federal Tax Service"
roles = ["provider"]

[[participant]]
id = "MFC"
name = "Multifunctional Centre"
roles = ["consumer"]

[[data_kind]]
id = "urn:test:fns:quick:1"
provider = "FNS"
mode = "realtime"
deadline_ms = 300
consumers = ["MFC"]
"#,
    )
    .expect("test registry")
}

#[test]
fn given_realtime_kind_when_nobody_answers_then_call_fails_deadline_exceeded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut c = config(dir.path(), 2);
    c.registry = Arc::new(short_deadline_registry());
    let hub = Hub::start(c).expect("hub starts");
    let consumer = hub.session("MFC").expect("consumer");
    let started = Instant::now();
    let result = block_on(consumer.call(NewRequest::new("urn:test:fns:quick:1", "ping")));
    let elapsed = started.elapsed();
    assert_eq!(result.err(), Some(HubError::DeadlineExceeded));
    assert!(
        elapsed >= Duration::from_millis(290),
        "not before the budget: {elapsed:?}"
    );
    assert!(
        elapsed < Duration::from_millis(2000),
        "about the budget: {elapsed:?}"
    );
    // A late answer is refused and the history says the request expired.
    let provider = hub.session("FNS").expect("provider");
    let stats = block_on(provider.queue_stats(requests("urn:test:fns:quick:1"))).expect("stats");
    assert_eq!(stats.depth, 0, "the expired request left its queue");
    hub.shutdown().expect("clean shutdown");
}

#[test]
fn given_leased_request_when_session_dropped_then_redelivered() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hub = start(dir.path(), 2);
    let consumer = hub.session("MFC").expect("consumer");
    let accepted =
        block_on(consumer.send_request(NewRequest::new(EGRUL, "r-1"))).expect("accepted");
    let first = hub.session("FNS").expect("provider 1");
    let clone = first.clone();
    let leased = fetch_one(&first, &requests(EGRUL));
    assert_eq!(leased.id, accepted.id);
    drop(first);
    // A clone still holds the session: the lease stays.
    let second = hub.session("FNS").expect("provider 2");
    let none =
        block_on(second.fetch(requests(EGRUL), 1, Duration::from_millis(100))).expect("fetch");
    assert!(none.is_empty(), "still leased while a clone lives");
    drop(clone);
    let again = fetch_one(&second, &requests(EGRUL));
    assert_eq!(again.id, accepted.id);
    assert_eq!(again.delivery_count, 2);
    // The first session's lease is gone: acking with its message fails.
    assert_eq!(
        block_on(second.ack(&leased)).err(),
        Some(HubError::NotFound)
    );
    block_on(second.ack(&again)).expect("ack");
    hub.shutdown().expect("clean shutdown");
}

#[test]
fn given_long_poll_dropped_when_request_arrives_then_lease_given_back_without_a_nack() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hub = start(dir.path(), 2);
    let consumer = hub.session("MFC").expect("consumer");
    let provider = hub.session("FNS").expect("provider");
    // A long poll whose caller stops waiting: the shard still holds the wait.
    let waiting = provider.fetch(requests(EGRUL), 1, WAIT);
    assert!(block_on(futures_lite::future::poll_once(waiting)).is_none());
    let accepted =
        block_on(consumer.send_request(NewRequest::new(EGRUL, "r-1"))).expect("accepted");
    // Its delivery reached nobody: the runtime gave the lease back to the
    // shard (`Input::GiveBack`), and the message comes again.
    let again = fetch_one(&provider, &requests(EGRUL));
    assert_eq!(again.id, accepted.id);
    assert_eq!(again.delivery_count, 2);
    block_on(provider.ack(&again)).expect("ack");
    // The provider never nacked it: the history says so.
    let s = status_with(&consumer, accepted.id, EventKind::Acked);
    assert_eq!(
        kinds_of(&s),
        vec![
            EventKind::Accepted,
            EventKind::Delivered,
            EventKind::Delivered,
            EventKind::Acked
        ]
    );
    hub.shutdown().expect("clean shutdown");
}

#[test]
fn given_answered_request_when_status_read_then_visible_to_parties_and_operator_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hub = start(dir.path(), 2);
    let consumer = hub.session("MFC").expect("consumer");
    let provider = hub.session("FNS").expect("provider");
    let accepted = block_on(consumer.send_request(NewRequest::new(EGRUL, "r"))).expect("accepted");
    let request = fetch_one(&provider, &requests(EGRUL));
    block_on(provider.send_refusal(request.id, RefusalCode::NoData, "no such company"))
        .expect("refusal");
    let answer = fetch_one(&consumer, &answers("MFC"));
    assert_eq!(
        answer.body,
        DeliveryBody::Answer(AnswerBody::Refusal {
            code: RefusalCode::NoData,
            reason: "no such company".into()
        })
    );
    for who in ["MFC", "FNS", "OPERATOR"] {
        let s = block_on(hub.session(who).expect("session").status(accepted.id))
            .unwrap_or_else(|e| panic!("{who} reads the history: {e}"));
        assert_eq!(s.request_id, accepted.id);
        assert!(kinds_of(&s).contains(&EventKind::Refused), "{who}: {s:?}");
    }
    // The answer's id leads to the same history.
    let by_answer = block_on(consumer.status(answer.id)).expect("status by answer id");
    assert_eq!(by_answer.request_id, accepted.id);
    let stranger = hub.session("MVD").expect("another participant");
    assert_eq!(
        block_on(stranger.status(accepted.id)).err(),
        Some(HubError::NotFound)
    );
    assert_eq!(
        block_on(stranger.fetch(answers("MFC"), 1, Duration::ZERO))
            .err()
            .map(|e| matches!(e, HubError::NotAuthorized(_))),
        Some(true)
    );
    hub.shutdown().expect("clean shutdown");
}

#[test]
fn given_unanswered_request_when_hub_restarted_then_it_is_delivered_and_answered() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (open_id, answered_id) = {
        let hub = start(dir.path(), 2);
        let consumer = hub.session("MFC").expect("consumer");
        let provider = hub.session("FNS").expect("provider");
        let mut key = NewRequest::new(EGRUL, "open one");
        key.idempotency_key = Some("case-1".into());
        let open = block_on(consumer.send_request(key)).expect("accepted");
        let answered = block_on(consumer.send_request(NewRequest::new(EGRUL, "answered one")))
            .expect("accepted");
        let got = block_on(provider.fetch(requests(EGRUL), 10, WAIT)).expect("fetch");
        assert_eq!(got.len(), 2);
        let a = got
            .iter()
            .find(|m| m.id == answered.id)
            .expect("second request");
        block_on(provider.send_response(a.id, "answer before restart")).expect("response");
        drop((consumer, provider));
        hub.shutdown().expect("clean shutdown");
        (open.id, answered.id)
    };
    let hub = start(dir.path(), 2);
    let consumer = hub.session("MFC").expect("consumer");
    let provider = hub.session("FNS").expect("provider");
    // The idempotency key survives the restart.
    let mut again = NewRequest::new(EGRUL, "open one");
    again.idempotency_key = Some("case-1".into());
    let repeat = block_on(consumer.send_request(again)).expect("repeat");
    assert_eq!((repeat.id, repeat.duplicate), (open_id, true));
    // The answer given before the restart is still waiting for the consumer.
    let answer = fetch_one(&consumer, &answers("MFC"));
    assert_eq!(answer.reply_to, Some(answered_id));
    assert_eq!(answer.payload, Bytes::from_static(b"answer before restart"));
    block_on(consumer.ack(&answer)).expect("ack");
    // The open request is delivered again, with its payload read from the log.
    let request = fetch_one(&provider, &requests(EGRUL));
    assert_eq!(request.id, open_id);
    assert_eq!(request.payload, Bytes::from_static(b"open one"));
    block_on(provider.send_response(open_id, "answer after restart")).expect("response");
    let answer = fetch_one(&consumer, &answers("MFC"));
    assert_eq!(answer.reply_to, Some(open_id));
    block_on(consumer.ack(&answer)).expect("ack");
    hub.shutdown().expect("clean shutdown");
}

/// The snapshot mark in shard `shard`'s checkpoint (bytes 64..72, docs/storage.md §5).
fn checkpoint_mark(dir: &Path, shard: u16) -> u64 {
    let bytes = std::fs::read(dir.join(format!("shard-{shard}")).join("checkpoint"))
        .expect("checkpoint file");
    u64::from_le_bytes(bytes[64..72].try_into().expect("8 bytes"))
}

#[test]
fn given_frequent_snapshots_when_restarted_then_replay_from_mark_keeps_everything() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut c = config(dir.path(), 1);
    c.snapshot_every_records = 16;
    let (open, answered) = {
        let hub = Hub::start(c.clone()).expect("hub starts");
        let consumer = hub.session("MFC").expect("consumer");
        let provider = hub.session("FNS").expect("provider");
        let mut ids = Vec::new();
        for i in 0..40 {
            let a = block_on(consumer.send_request(NewRequest::new(EGRUL, format!("r-{i}"))))
                .expect("accepted");
            ids.push(a.id);
        }
        let got = block_on(provider.fetch(requests(EGRUL), 40, WAIT)).expect("fetch");
        assert_eq!(got.len(), 40);
        for m in got.iter().step_by(2) {
            block_on(provider.send_response(m.id, format!("answer {}", m.id))).expect("answer");
        }
        let answered: Vec<MessageId> = got.iter().step_by(2).map(|m| m.id).collect();
        let open: Vec<MessageId> = got.iter().skip(1).step_by(2).map(|m| m.id).collect();
        hub.shutdown().expect("clean shutdown");
        (open, answered)
    };
    assert!(
        checkpoint_mark(dir.path(), 0) > 0,
        "a snapshot mark was checkpointed"
    );
    let hub = Hub::start(c).expect("hub restarts");
    let consumer = hub.session("MFC").expect("consumer");
    let provider = hub.session("FNS").expect("provider");
    let mut got_requests = block_on(provider.fetch(requests(EGRUL), 100, WAIT)).expect("fetch");
    got_requests.sort_by_key(|m| m.id);
    let mut want = open.clone();
    want.sort();
    assert_eq!(got_requests.iter().map(|m| m.id).collect::<Vec<_>>(), want);
    for m in &got_requests {
        assert_eq!(m.delivery_count, 2, "delivered once before the restart");
    }
    let mut got_answers = block_on(consumer.fetch(answers("MFC"), 100, WAIT)).expect("fetch");
    let until = Instant::now() + WAIT;
    while got_answers.len() < answered.len() && Instant::now() < until {
        got_answers.extend(block_on(consumer.fetch(answers("MFC"), 100, WAIT)).expect("fetch"));
    }
    let mut replied: Vec<MessageId> = got_answers.iter().filter_map(|m| m.reply_to).collect();
    replied.sort();
    let mut want = answered.clone();
    want.sort();
    assert_eq!(replied, want);
    for m in &got_answers {
        let request = m.reply_to.expect("answer");
        assert_eq!(m.payload, Bytes::from(format!("answer {request}")));
    }
    hub.shutdown().expect("clean shutdown");
}

#[test]
fn given_subscription_when_credits_spent_then_waits_for_more() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hub = start(dir.path(), 2);
    let consumer = hub.session("MFC").expect("consumer");
    let provider = hub.session("FNS").expect("provider");
    let mut sub = block_on(provider.subscribe(requests(EGRUL), 1)).expect("subscribe");
    for i in 0..3 {
        block_on(consumer.send_request(NewRequest::new(EGRUL, format!("r-{i}"))))
            .expect("accepted");
    }
    let first = block_on(sub.recv()).expect("first push");
    assert_eq!(first.payload, Bytes::from_static(b"r-0"));
    std::thread::sleep(Duration::from_millis(50));
    assert!(
        sub.try_recv().expect("open").is_none(),
        "no credit, no push"
    );
    block_on(provider.ack(&first)).expect("ack");
    block_on(sub.add_credits(2)).expect("credits");
    let second = block_on(sub.recv()).expect("second push");
    let third = block_on(sub.recv()).expect("third push");
    assert_eq!(second.payload, Bytes::from_static(b"r-1"));
    assert_eq!(third.payload, Bytes::from_static(b"r-2"));
    // Dropping the subscription gives its unacked messages back.
    drop(sub);
    let mut back = Vec::new();
    let until = Instant::now() + WAIT;
    // A fetch may be woken by the first lease given back before the second.
    while back.len() < 2 && Instant::now() < until {
        back.extend(block_on(provider.fetch(requests(EGRUL), 10, WAIT)).expect("fetch"));
    }
    let mut ids: Vec<MessageId> = back.iter().map(|m| m.id).collect();
    ids.sort();
    let mut want = vec![second.id, third.id];
    want.sort();
    assert_eq!(ids, want);
    assert_eq!(
        block_on(provider.subscribe(requests(EGRUL), 1_000_000))
            .err()
            .map(|e| matches!(e, HubError::Malformed(_))),
        Some(true)
    );
    hub.shutdown().expect("clean shutdown");
}

#[test]
fn given_payload_over_log_record_limit_when_sent_then_too_large() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hub = start(dir.path(), 1);
    let consumer = hub.session("MFC").expect("consumer");
    // Within the kind's 1 MiB but over the 32 KiB batch of the test log.
    let big = vec![b'x'; 40 << 10];
    let err = block_on(consumer.send_request(NewRequest::new(EGRUL, big))).err();
    assert!(matches!(err, Some(HubError::TooLarge { .. })), "{err:?}");
    // The shard is unharmed.
    request_answer_ack(&hub, EGRUL, "MFC", "FNS");
    hub.shutdown().expect("clean shutdown");
}

#[test]
fn given_unknown_participant_when_session_asked_then_unauthenticated() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hub = start(dir.path(), 1);
    assert_eq!(hub.session("NOBODY").err(), Some(HubError::Unauthenticated));
    hub.shutdown().expect("clean shutdown");
}

#[test]
fn given_shut_down_hub_when_session_used_then_unavailable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hub = start(dir.path(), 2);
    let consumer = hub.session("MFC").expect("consumer");
    let provider = hub.session("FNS").expect("provider");
    // A long-poll in flight when the hub stops ends with Unavailable, not a hang.
    let waiting = std::thread::spawn(move || {
        block_on(provider.fetch(requests(EGRUL), 1, Duration::from_secs(30)))
    });
    std::thread::sleep(Duration::from_millis(100));
    let started = Instant::now();
    hub.shutdown().expect("clean shutdown");
    let polled = waiting.join().expect("poller");
    assert!(
        matches!(polled, Err(HubError::Unavailable(_))),
        "{polled:?}"
    );
    let sent = block_on(consumer.send_request(NewRequest::new(EGRUL, "late")));
    assert!(matches!(sent, Err(HubError::Unavailable(_))), "{sent:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn given_hub_dropped_without_shutdown_when_restarted_then_state_kept() {
    let dir = tempfile::tempdir().expect("tempdir");
    let id = {
        let hub = start(dir.path(), 2);
        let consumer = hub.session("MFC").expect("consumer");
        let id = block_on(consumer.send_request(NewRequest::new(EGRUL, "kept")))
            .expect("accepted")
            .id;
        let started = Instant::now();
        drop(hub);
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "drop does not hang"
        );
        let after = block_on(consumer.send_request(NewRequest::new(EGRUL, "late")));
        assert!(matches!(after, Err(HubError::Unavailable(_))), "{after:?}");
        id
    };
    let hub = start(dir.path(), 2);
    let provider = hub.session("FNS").expect("provider");
    assert_eq!(fetch_one(&provider, &requests(EGRUL)).id, id);
    hub.shutdown().expect("clean shutdown");
}

#[test]
fn given_bad_config_when_started_then_typed_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut c = config(dir.path(), 1);
    c.shards = 0;
    assert!(matches!(Hub::start(c), Err(HubStartError::Config(_))));
    let mut c = config(dir.path(), 2);
    c.pin_cores = Some(vec![0]);
    assert!(matches!(Hub::start(c), Err(HubStartError::Config(_))));
    // A data directory keeps the shard count it was made with, either way.
    start(dir.path(), 2).shutdown().expect("clean shutdown");
    let err = Hub::start(config(dir.path(), 1)).err();
    assert!(matches!(err, Some(HubStartError::Config(_))), "{err:?}");
    let err = Hub::start(config(dir.path(), 3)).err();
    assert!(matches!(err, Some(HubStartError::Config(_))), "{err:?}");
    // A second hub on the same directory finds it locked.
    let hub = start(dir.path(), 2);
    let err = Hub::start(config(dir.path(), 2)).err();
    assert!(matches!(err, Some(HubStartError::Log { .. })), "{err:?}");
    hub.shutdown().expect("clean shutdown");
}

// ---- histories for ever: the archive (ADR 0005) ----

/// A finished exchange of EGRUL (MFC asks, FNS answers, MFC acks the
/// answer); returns (request id, answer id) once the history holds the ack.
fn finished_exchange(hub: &Hub, payload: &str) -> (MessageId, MessageId) {
    let c = hub.session("MFC").expect("consumer");
    let p = hub.session("FNS").expect("provider");
    let accepted =
        block_on(c.send_request(NewRequest::new(EGRUL, payload.to_owned()))).expect("accepted");
    let request = fetch_one(&p, &requests(EGRUL));
    assert_eq!(request.id, accepted.id);
    block_on(p.ack(&request)).expect("provider acks");
    block_on(p.send_response(request.id, format!("answer to {payload}"))).expect("response");
    let answer = fetch_one(&c, &answers("MFC"));
    block_on(c.ack(&answer)).expect("consumer acks");
    let s = status_with(&c, accepted.id, EventKind::AnswerAcked);
    assert!(kinds_of(&s).contains(&EventKind::AnswerAcked), "{s:?}");
    (accepted.id, answer.id)
}

/// Reads `id`'s history as each of the exchange's parties and checks it is
/// `want`; a third participant gets `NotFound`.
fn assert_history_for_ever(hub: &Hub, id: MessageId, want: &StatusView) {
    for who in ["MFC", "FNS", "OPERATOR"] {
        let s = block_on(hub.session(who).expect("session").status(id))
            .unwrap_or_else(|e| panic!("{who} reads the history of {id}: {e}"));
        assert_eq!(&s, want, "{who}");
    }
    let stranger = hub.session("MVD").expect("another participant");
    assert_eq!(
        block_on(stranger.status(id)).err(),
        Some(HubError::NotFound)
    );
}

/// Waits until `finished_keep_ms` has surely passed and the shard's timer ran.
fn past_keep(keep_ms: u64) {
    std::thread::sleep(Duration::from_millis(keep_ms * 4 + 100));
}

#[test]
fn given_finished_exchange_when_keep_passes_and_hub_restarts_then_status_reads_full_history_from_archive(
) {
    const KEEP_MS: u64 = 20;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut c = config(dir.path(), 2);
    c.shard.finished_keep_ms = Some(KEEP_MS);
    let (request_id, answer_id, before) = {
        let hub = Hub::start(c.clone()).expect("hub starts");
        let (request_id, answer_id) = finished_exchange(&hub, "r-1");
        let before = block_on(hub.session("OPERATOR").unwrap().status(request_id)).unwrap();
        assert_eq!(before.answer_id, Some(answer_id));
        let kinds = kinds_of(&before);
        assert_eq!(
            kinds,
            vec![
                EventKind::Accepted,
                EventKind::Delivered,
                EventKind::Acked,
                EventKind::Answered,
                EventKind::AnswerDelivered,
                EventKind::AnswerAcked
            ]
        );
        past_keep(KEEP_MS);
        // Out of memory now: served by the archive, the same history.
        assert_history_for_ever(&hub, request_id, &before);
        assert_history_for_ever(&hub, answer_id, &before);
        let unknown = MessageId::new(1_700_000_000_000, request_id.shard(), 12345);
        assert_eq!(
            block_on(hub.session("OPERATOR").unwrap().status(unknown)).err(),
            Some(HubError::NotFound)
        );
        hub.shutdown().expect("clean shutdown");
        (request_id, answer_id, before)
    };
    let hub = Hub::start(c.clone()).expect("hub restarts");
    assert_history_for_ever(&hub, request_id, &before);
    assert_history_for_ever(&hub, answer_id, &before);
    // A second exchange after the restart, then a hub dropped without a
    // shutdown (no final snapshot): both histories are still there.
    let (second, _) = finished_exchange(&hub, "r-2");
    let second_view = block_on(hub.session("OPERATOR").unwrap().status(second)).unwrap();
    past_keep(KEEP_MS);
    drop(hub);
    let hub = Hub::start(c).expect("hub restarts after a drop");
    assert_history_for_ever(&hub, request_id, &before);
    assert_history_for_ever(&hub, second, &second_view);
    hub.shutdown().expect("clean shutdown");
}

fn segment_bases(dir: &Path, shard: u16) -> Vec<u64> {
    let mut bases: Vec<u64> = std::fs::read_dir(dir.join(format!("shard-{shard}")))
        .expect("shard dir")
        .filter_map(|e| {
            let name = e.ok()?.file_name().to_string_lossy().into_owned();
            name.strip_suffix(".seg")?.parse().ok()
        })
        .collect();
    bases.sort_unstable();
    bases
}

#[test]
fn given_tiny_segments_and_short_retention_when_old_segments_dropped_then_status_still_answers() {
    const KEEP_MS: u64 = 10;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut c = config(dir.path(), 1);
    c.shard.finished_keep_ms = Some(KEEP_MS);
    c.shard.retention_ms = 50;
    c.snapshot_every_records = 16;
    let payload = "x".repeat(12 << 10);
    let hub = Hub::start(c.clone()).expect("hub starts");
    let mut done = Vec::new();
    for i in 0..60 {
        let (id, answer) = finished_exchange(&hub, &format!("{i}-{payload}"));
        let view = block_on(hub.session("OPERATOR").unwrap().status(id)).unwrap();
        done.push((id, answer, view));
    }
    past_keep(KEEP_MS);
    // More traffic after the retention period: snapshots run and drop
    // the segments every finished exchange above lived in.
    std::thread::sleep(Duration::from_millis(100));
    for i in 0..20 {
        finished_exchange(&hub, &format!("late-{i}-{payload}"));
    }
    let bases = segment_bases(dir.path(), 0);
    assert!(
        bases.first().is_some_and(|b| *b > 0),
        "the oldest segments were dropped: {bases:?}"
    );
    for (id, answer, view) in &done {
        assert_history_for_ever(&hub, *id, view);
        assert_history_for_ever(&hub, *answer, view);
    }
    hub.shutdown().expect("clean shutdown");
    let hub = Hub::start(c).expect("hub restarts");
    for (id, answer, view) in &done {
        assert_history_for_ever(&hub, *id, view);
        assert_history_for_ever(&hub, *answer, view);
    }
    hub.shutdown().expect("clean shutdown");
}

/// Runs `command` through `Session::execute`; asserts the reply is the
/// variant the command names.
fn execute(session: &Session, command: Command) -> Reply {
    let kind = command.reply_kind();
    let reply = block_on(session.execute(command)).expect("operation succeeds");
    assert_eq!(reply.kind(), kind, "{reply:?}");
    reply
}

#[test]
fn given_every_operation_when_executed_as_a_command_then_its_reply_is_the_kind_the_command_names() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hub = start(dir.path(), 2);
    let (c, p) = (hub.session("MVD").unwrap(), hub.session("FNS").unwrap());
    let request = NewRequest::new(EGRUL, "passport 4510 123456");
    let Reply::Accepted(accepted) = execute(&c, Command::SendRequest(request)) else {
        unreachable!("checked by `execute`")
    };
    // A fetch leases to the session that runs it, whatever reader it names.
    let fetch = || Command::Fetch {
        queue: requests(EGRUL),
        max: 1,
        wait_ms: WAIT.as_millis() as u64,
        reader: 987_654_321,
    };
    let Reply::Messages(got) = execute(&p, fetch()) else {
        unreachable!()
    };
    assert_eq!(got.len(), 1);
    assert_eq!((got[0].id, got[0].reader), (accepted.id, p.lease_holder()));
    let settle = |nack: bool| {
        let (queue, id, reader) = (requests(EGRUL), accepted.id, p.lease_holder());
        match nack {
            true => Command::Nack {
                queue,
                id,
                reader,
                delay_ms: 0,
            },
            false => Command::Ack { queue, id, reader },
        }
    };
    assert_eq!(execute(&p, settle(true)), Reply::Done);
    let Reply::Messages(again) = execute(&p, fetch()) else {
        unreachable!()
    };
    assert_eq!(again[0].delivery_count, 2);
    assert_eq!(execute(&p, settle(false)), Reply::Done);
    let respond = Command::SendResponse {
        request_id: accepted.id,
        payload: Bytes::from_static(b"extract"),
        attachments: Vec::new(),
    };
    assert_eq!(execute(&p, respond), Reply::Done);
    let Reply::Status(view) = execute(&c, Command::Status { id: accepted.id }) else {
        unreachable!()
    };
    assert_eq!(view.request_id, accepted.id);
    let stats = Command::QueueStats {
        queue: answers("MVD"),
    };
    // The answer reaches MVD's queue a moment later: counters of either.
    assert!(matches!(execute(&c, stats), Reply::Stats(s) if s.depth <= 1));
    let refuse = Command::SendRefusal {
        request_id: accepted.id,
        code: RefusalCode::NoData,
        reason: String::new(),
    };
    assert!(matches!(
        block_on(p.execute(refuse)),
        Err(HubError::AlreadyAnswered(id)) if id == accepted.id
    ));
    let subscribe = Command::Subscribe {
        queue: requests(EGRUL),
        credits: 1,
        reader: 0,
    };
    assert!(matches!(
        block_on(c.execute(subscribe)),
        Err(HubError::Malformed(_))
    ));
    hub.shutdown().expect("clean shutdown");
}

#[test]
fn given_a_realtime_call_when_executed_as_a_command_then_the_reply_is_its_answer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hub = start(dir.path(), 2);
    let provider = hub.session("FNS").expect("provider");
    let answering = std::thread::spawn(move || {
        let request = fetch_one(&provider, &requests(INN));
        block_on(provider.send_response(request.id, "INN 770123456789")).expect("response");
        request.id
    });
    let consumer = hub.session("MFC").expect("consumer");
    let call = Command::Call(NewRequest::new(INN, "passport 4510 123456"));
    let Reply::Message(answer) = execute(&consumer, call) else {
        unreachable!()
    };
    assert_eq!(answer.reply_to, Some(answering.join().expect("provider")));
    assert_eq!(answer.payload, Bytes::from_static(b"INN 770123456789"));
    hub.shutdown().expect("clean shutdown");
}

#[test]
fn given_a_batch_sent_and_partly_acked_in_one_record_when_the_hub_restarts_then_only_the_unacked_come_again(
) {
    let dir = tempfile::tempdir().expect("tempdir");
    let hub = start(dir.path(), 2);
    let (c, p) = (
        hub.session("MFC").expect("c"),
        hub.session("FNS").expect("p"),
    );
    let batch = (0..10)
        .map(|i| NewRequest::new(EGRUL, format!("batch {i}")))
        .collect();
    let results = block_on(c.send_requests(batch)).expect("send_requests");
    let sent: Vec<MessageId> = results.iter().map(|r| r.as_ref().expect("ok").id).collect();
    let got = block_on(p.fetch(requests(EGRUL), 10, WAIT)).expect("fetch");
    assert_eq!(got.iter().map(|m| m.id).collect::<Vec<_>>(), sent);
    let (acked, kept) = sent.split_at(6);
    let reader = got[0].lease_holder();
    let refused = block_on(p.ack_many(requests(EGRUL), acked.to_vec(), reader)).expect("acks");
    assert_eq!(refused, vec![]);
    drop((c, p));
    hub.shutdown().expect("clean shutdown");

    let hub = start(dir.path(), 2);
    let p = hub.session("FNS").expect("p");
    let again = block_on(p.fetch(requests(EGRUL), 10, WAIT)).expect("fetch again");
    assert_eq!(again.iter().map(|m| m.id).collect::<Vec<_>>(), kept);
    for id in acked {
        let s = block_on(p.status(*id)).expect("status");
        assert!(kinds_of(&s).contains(&EventKind::Acked), "{id}: {s:?}");
    }
    let reader = again[0].lease_holder();
    let ids: Vec<MessageId> = again.iter().map(|m| m.id).collect();
    let command = Command::AckMany {
        queue: requests(EGRUL),
        ids,
        reader,
    };
    assert_eq!(block_on(p.execute(command)), Ok(Reply::AckedMany(vec![])));
    let stats = block_on(p.queue_stats(requests(EGRUL))).expect("stats");
    assert_eq!((stats.depth, stats.in_flight), (0, 0));
    drop(p);
    hub.shutdown().expect("clean shutdown");
}

/// Calls answered on a hub with the rt journal on (docs/adr/0036).
fn calls_answered(hub: &Hub, n: usize) -> Vec<MessageId> {
    let provider = hub.session("FNS").expect("provider");
    // A credit a call: each delivery spends one.
    let credits = u32::try_from(n).expect("a few calls");
    let mut sub = block_on(provider.subscribe(requests(INN), credits)).expect("subscribe");
    let answering = std::thread::spawn(move || {
        (0..n)
            .map(|_| {
                let request = block_on(sub.recv()).expect("pushed request");
                block_on(provider.send_response(request.id, "INN 770123456789")).expect("response");
                request.id
            })
            .collect::<Vec<_>>()
    });
    let consumer = hub.session("MFC").expect("consumer");
    for _ in 0..n {
        let answer = block_on(consumer.call(NewRequest::new(INN, "passport"))).expect("answer");
        assert_eq!(answer.payload, Bytes::from_static(b"INN 770123456789"));
    }
    answering.join().expect("provider thread")
}

#[test]
fn given_rt_journal_when_calls_answered_and_hub_restarted_then_histories_kept_and_journal_folded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut c = config(dir.path(), 1);
    c.shard.rt_journal = true;
    let hub = Hub::start(c.clone()).expect("hub starts");
    let ids = calls_answered(&hub, 20);
    let stats = block_on(hub.handle().shard_stats(0)).expect("the shard answers");
    let routed = stats.counters.answers_routed_by_journal;
    assert!(routed <= 20, "{routed}");
    let journal_log = stats.rt_journal_log.as_ref().expect("its log is reported");
    assert!(
        journal_log.commits() > 0,
        "the journal's commits are counted"
    );
    let journal_segment = gonets_engine::runtime::rt_journal::journal_config(&c.log);
    assert_eq!(
        journal_log.segment_size_bytes, journal_segment.segment_size_bytes,
        "its own segment size"
    );
    let names: Vec<&str> = stats.logs().map(|(name, _)| name).collect();
    assert_eq!(names, ["messages", "history", "rt_journal"]);
    hub.shutdown().expect("clean shutdown");
    let journal = dir.path().join("shard-0").join("rt-journal");
    assert!(journal.exists(), "the journal is kept while it is on");
    // `gonets verify` walks it too.
    let walk = gonets_engine::runtime::verify_journal::verify_rt_journals(dir.path(), &mut |_| {})
        .expect("a data directory");
    assert!(walk.broken.is_none(), "{walk:?}");
    assert_eq!(walk.journals.len(), 1);
    assert!(
        walk.journals[0].summary.records >= 40,
        "each call's request and answer at least: {walk:?}"
    );
    // Restarted with it on, then off: every call's history is still whole,
    // and a journal no longer kept is removed.
    for on in [true, false] {
        c.shard.rt_journal = on;
        let hub = Hub::start(c.clone()).expect("hub restarts");
        let consumer = hub.session("MFC").expect("consumer");
        for id in &ids {
            let status = status_with(&consumer, *id, EventKind::AnswerAcked);
            assert!(kinds_of(&status).contains(&EventKind::Answered));
        }
        let stats = block_on(hub.handle().shard_stats(0)).expect("the shard answers");
        assert_eq!(stats.rt_journal_log.is_some(), on);
        hub.shutdown().expect("clean shutdown");
        assert_eq!(journal.exists(), on);
    }
}
