//! The client from a tokio program: a `gonets serve` child process (mutual
//! TLS with its development certificates), driven through
//! `gonets_client::tokio::Client` on a multi-thread tokio runtime, with the
//! provider's work spawned by `tokio::spawn` (so the client and its futures
//! must be `Send`).
//!
//! Needs the `gonets` binary (`cargo build --release -p gonets --bin gonets`).

use gonets_client::tokio::Client;
use gonets_client::{ClientError, Message};
use gonets_tests::net::{Endpoint, ServerProcess};
use gonets_types::{AnswerBody, DeliveryBody, HubError, NewRequest, ParticipantId, QueueId};
use std::future::Future;
use std::time::Duration;

const EGRUL: &str = "urn:gonets:fns:egrul-extract:1";
const PASSPORT: &str = "urn:gonets:mvd:passport-validity:1";
/// Bound of one operation (durable replies wait on fsyncs of a loaded disk).
const OP: Duration = Duration::from_secs(120);

fn requests(kind: &str) -> QueueId {
    QueueId::Requests(gonets_types::DataKindId::new(kind))
}

fn answers(p: &str) -> QueueId {
    QueueId::Answers(ParticipantId::new(p))
}

/// Runs `f` on a fresh two-thread tokio runtime.
fn run_tokio<F: Future<Output = ()>>(f: F) {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
        .block_on(f)
}

/// Runs `f` for at most [`OP`]; panics naming `what` after that.
async fn bounded<T>(what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(OP, f)
        .await
        .unwrap_or_else(|_| panic!("{what}: no result within {OP:?}"))
}

/// Connects as `participant` with the server's development certificates.
async fn connect(ep: &Endpoint, participant: &str) -> Client {
    bounded("connect", Client::connect(ep.client_config(participant)))
        .await
        .unwrap_or_else(|e| panic!("connect as {participant}: {e}"))
}

/// Fetches one message of `queue`, long-polling 300 ms at a time.
async fn fetch_one(client: &Client, queue: &QueueId) -> Message {
    bounded("fetch", async {
        // Bounded by `bounded`.
        loop {
            let mut got = client
                .fetch(queue, 1, Duration::from_millis(300))
                .await
                .unwrap_or_else(|e| panic!("fetch {queue}: {e}"));
            if let Some(m) = got.pop() {
                return m;
            }
        }
    })
    .await
}

#[test]
fn given_a_tokio_program_when_a_request_is_sent_fetched_answered_and_the_answer_acked_then_each_step_answers_over_the_wire(
) {
    let server = ServerProcess::start_default();
    let ep = server.endpoint();
    run_tokio(async move {
        let mfc = connect(&ep, "MFC").await;
        let fns = connect(&ep, "FNS").await;
        bounded("ping", mfc.ping()).await.expect("ping");
        assert_eq!(mfc.hello().expect("a hello reply").participant, "MFC");

        let accepted = bounded("send", mfc.send_request(NewRequest::new(EGRUL, "ogrn 1")))
            .await
            .expect("send_request");
        // The provider's side runs as a spawned task: the client is `Send`.
        let provider = tokio::spawn(async move {
            let request = fetch_one(&fns, &requests(EGRUL)).await;
            assert_eq!(request.body, DeliveryBody::Request);
            assert_eq!(request.from.as_str(), "MFC");
            assert_eq!(&request.payload[..], b"ogrn 1");
            fns.send_response(request.id, "extract: OOO Romashka")
                .await
                .expect("send_response");
            request.id
        });
        let request_id = bounded("provider", provider)
            .await
            .expect("the provider task");
        assert_eq!(request_id, accepted.id);

        let answer = fetch_one(&mfc, &answers("MFC")).await;
        assert_eq!(answer.reply_to, Some(request_id));
        assert_eq!(answer.body, DeliveryBody::Answer(AnswerBody::Data));
        assert_eq!(answer.from.as_str(), "FNS");
        assert_eq!(&answer.payload[..], b"extract: OOO Romashka");
        bounded("ack", mfc.ack(&answer)).await.expect("ack");
        let st = bounded("stats", mfc.queue_stats(&answers("MFC")))
            .await
            .expect("queue_stats");
        assert_eq!((st.depth, st.in_flight), (0, 0), "the acked answer is gone");
    });
}

#[test]
fn given_a_tokio_program_when_it_calls_a_realtime_kind_whose_provider_subscribed_then_the_call_returns_the_answer(
) {
    let server = ServerProcess::start_default();
    let ep = server.endpoint();
    run_tokio(async move {
        let mfc = connect(&ep, "MFC").await;
        let mvd = connect(&ep, "MVD").await;
        let mut sub = bounded("subscribe", mvd.subscribe(&requests(PASSPORT), 4))
            .await
            .expect("subscribe");
        let provider = tokio::spawn(async move {
            let r = bounded("push", sub.recv()).await.expect("a push");
            let answer = format!("VALID {}", String::from_utf8_lossy(&r.payload));
            mvd.send_response(r.id, answer).await.expect("answer");
        });
        let answer = bounded("call", mfc.call(NewRequest::new(PASSPORT, "4510 000001")))
            .await
            .expect("a call answered in time");
        assert_eq!(answer.body, DeliveryBody::Answer(AnswerBody::Data));
        assert_eq!(&answer.payload[..], b"VALID 4510 000001");
        assert_eq!(answer.from.as_str(), "MVD");
        assert!(answer.reply_to.is_some());
        bounded("provider", provider)
            .await
            .expect("the provider task");
    });
}

#[test]
fn given_a_tokio_program_when_it_sends_a_request_of_an_unknown_data_kind_then_it_gets_the_typed_hub_error(
) {
    let server = ServerProcess::start_default();
    let ep = server.endpoint();
    run_tokio(async move {
        let mfc = connect(&ep, "MFC").await;
        let kind = "urn:gonets:nobody:nothing:1";
        match bounded("send", mfc.send_request(NewRequest::new(kind, "x"))).await {
            Err(ClientError::Hub(HubError::UnknownDataKind(k))) => {
                assert!(k.contains(kind), "{k}")
            }
            other => panic!("expected UnknownDataKind, got {other:?}"),
        }
        // The connection still serves after a typed error.
        bounded("ping", mfc.ping()).await.expect("ping");
        assert_eq!(mfc.connections(), 1, "no reconnect was needed");
    });
}

#[test]
fn given_a_tokio_client_whose_connection_dropped_when_it_sends_a_request_then_it_reconnects_and_the_request_is_accepted_once(
) {
    let server = ServerProcess::start_default();
    let ep = server.endpoint();
    run_tokio(async move {
        let mfc = connect(&ep, "MFC").await;
        let fns = connect(&ep, "FNS").await;
        mfc.disconnect();
        let mut r = NewRequest::new(EGRUL, "after the drop");
        r.idempotency_key = Some("tokio-reconnect-1".into());
        let first = bounded("send", mfc.send_request(r.clone()))
            .await
            .expect("send_request reconnects");
        assert_eq!(mfc.connections(), 2, "one reconnect");
        let again = bounded("send again", mfc.send_request(r))
            .await
            .expect("send_request again");
        assert_eq!(again.id, first.id);
        assert!(again.duplicate, "the same key is one request");
        let st = bounded("stats", fns.queue_stats(&requests(EGRUL)))
            .await
            .expect("queue_stats");
        assert_eq!(st.depth, 1, "accepted once");
    });
}
