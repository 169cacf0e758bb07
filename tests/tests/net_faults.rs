//! Faults over the wire: malformed bytes on raw connections, a client
//! reconnecting in the middle of a pipelined batch, SIGKILL of the server
//! in the middle of traffic (with restarts on the same data directory), and
//! a clean SIGTERM.
//!
//! `GONETS_NET_KILL_CYCLES` sets the kill cycles (default 3);
//! `GONETS_NET_KILL_SEED` replays a run (the seed is printed).
//! Needs the `gonets` binary (`cargo build --release -p gonets --bin gonets`).

use gonets_client::glommio::Client;
use gonets_client::{ClientConfig, ClientError, Message};
use gonets_proto::header::{Empty, Hello};
use gonets_proto::{FrameDecoder, Limits, Opcode};
use gonets_tests::net::{
    bounded, fetch_n, frame, raw_frame, raw_tls_config, round_trip, run_local, within, Endpoint,
    RawConn, RawOutcome, ServerOptions, ServerProcess,
};
use gonets_tests::{env_number, print_uncaptured, seed_from_env};
use gonets_types::{DeliveryBody, HubError, MessageId, NewRequest, ParticipantId, QueueId};
use rand::{rngs::StdRng, Rng, SeedableRng};
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{Read, Write};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

const EGRUL: &str = "urn:gonets:fns:egrul-extract:1";
const OP: Duration = Duration::from_secs(120);
/// How long a raw connection waits for the server's reaction.
const RAW_WAIT: Duration = Duration::from_secs(10);

fn requests() -> QueueId {
    QueueId::Requests(gonets_types::DataKindId::new(EGRUL))
}

fn answers(p: &str) -> QueueId {
    QueueId::Answers(ParticipantId::new(p))
}

// ------------------------------------------------------------ garbage input

/// Checks the server ended the connection with a fatal error frame of `code`.
fn expect_fatal(what: &str, mut out: RawOutcome, code: &str) {
    assert!(
        out.closed,
        "{what}: the server did not close the connection within {RAW_WAIT:?}"
    );
    let errors = out.errors();
    let Some((_, last)) = errors.last() else {
        panic!("{what}: the connection closed without an error frame");
    };
    assert!(
        last.fatal,
        "{what}: the error is not marked fatal: {last:?}"
    );
    assert_eq!(last.code, code, "{what}: {last:?}");
    assert_eq!(
        out.frames.last().map(|f| f.header.opcode),
        Some(Opcode::Error),
        "{what}: the last frame is not the error"
    );
}

fn hello_frame(versions: Vec<u8>) -> Vec<u8> {
    let hello = Hello {
        versions,
        participant: Some("MFC".into()),
        token: Some("dev-mfc".into()),
        client: None,
    };
    frame(Opcode::Hello, 1, &hello, &[])
}

fn ping_frame(id: u64) -> Vec<u8> {
    frame(Opcode::Ping, id, &Empty {}, &[])
}

/// One raw connection: `before_hello` decides whether to say hello first.
fn garbage_case(
    addr: std::net::SocketAddr,
    what: &str,
    hello_first: bool,
    bytes: &[u8],
    then_close: bool,
) -> RawOutcome {
    let mut raw = RawConn::connect(addr);
    if hello_first {
        raw.hello("MFC", "dev-mfc");
    }
    raw.send(bytes);
    if then_close {
        raw.shutdown_write();
    }
    let out = raw.read_until_closed(RAW_WAIT);
    print_uncaptured(&format!(
        "garbage case {what:?}: {} frame(s), closed {}",
        out.frames.len(),
        out.closed
    ));
    out
}

#[test]
fn given_raw_connections_when_they_send_garbage_then_each_gets_a_fatal_error_and_the_server_still_serves(
) {
    let seed = seed_from_env("GONETS_NET_GARBAGE_SEED");
    print_uncaptured(&format!("garbage seed {seed} (GONETS_NET_GARBAGE_SEED)"));
    let mut rng = StdRng::seed_from_u64(seed);
    // Dev-token mode: the framing code is the one TLS connections use, without the handshake.
    let server = ServerProcess::start(ServerOptions {
        sections: "[limits]\nhello_timeout_ms = 1000\n".into(),
        ..ServerOptions::dev_token()
    });
    let addr = server.addr();

    let mut random: Vec<u8> = (0..4096).map(|_| rng.gen()).collect();
    random[0] = b'X'; // never the magic by chance
    let hello = hello_frame(vec![1]);
    let mut huge = raw_frame(Opcode::SendRequest.to_u8(), 5, b"", b"");
    huge[20..24].copy_from_slice(&0xFFFF_FF00u32.to_le_bytes());
    let mut huge_header = raw_frame(Opcode::Ping.to_u8(), 5, b"", b"");
    huge_header[16..20].copy_from_slice(&(1u32 << 30).to_le_bytes());
    let mut flags = ping_frame(5);
    flags[4] = 1;
    let mut version2 = hello.clone();
    version2[2] = 2;
    let ping = ping_frame(9);

    // Before the hello.
    let cases_before: Vec<(&str, Vec<u8>, bool, &str)> = vec![
        ("random bytes", random.clone(), false, "BAD_FRAME"),
        ("a truncated hello", hello[..30].to_vec(), true, "BAD_FRAME"),
        (
            "a truncated fixed header",
            hello[..10].to_vec(),
            true,
            "BAD_FRAME",
        ),
        (
            "a ping before the hello",
            ping.clone(),
            false,
            "HELLO_REQUIRED",
        ),
        (
            "a hello with only version 9",
            hello_frame(vec![9]),
            false,
            "UNSUPPORTED_VERSION",
        ),
        (
            "a frame of protocol version 2",
            version2,
            false,
            "UNSUPPORTED_VERSION",
        ),
        (
            "a hello whose JSON does not parse",
            raw_frame(Opcode::Hello.to_u8(), 1, b"{\"versions\":[1", b""),
            false,
            "BAD_HEADER",
        ),
        (
            "silence past the hello timeout",
            Vec::new(),
            false,
            "HELLO_REQUIRED",
        ),
    ];
    for (what, bytes, close, code) in cases_before {
        let out = garbage_case(addr, what, false, &bytes, close);
        expect_fatal(what, out, code);
    }

    // After a good hello.
    let mut truncated_request = frame(
        Opcode::SendRequest,
        3,
        &gonets_proto::header::SendRequest {
            kind: EGRUL.into(),
            ..Default::default()
        },
        &[b"payload"],
    );
    truncated_request.truncate(truncated_request.len() - 3);
    let cases_after: Vec<(&str, Vec<u8>, bool, &str)> = vec![
        ("random bytes after the hello", random, false, "BAD_FRAME"),
        ("a body of 4 GiB announced", huge, false, "BAD_FRAME"),
        (
            "a JSON header of 1 GiB announced",
            huge_header,
            false,
            "BAD_FRAME",
        ),
        (
            "an unknown opcode",
            raw_frame(0x42, 4, b"{}", b""),
            false,
            "BAD_FRAME",
        ),
        (
            "a server opcode (push) from the client",
            raw_frame(0xC0, 4, b"{}", b""),
            false,
            "BAD_FRAME",
        ),
        ("unknown flags", flags, false, "BAD_FRAME"),
        (
            "a request whose JSON header does not parse",
            raw_frame(Opcode::SendRequest.to_u8(), 6, b"{not json", b"x"),
            false,
            "BAD_HEADER",
        ),
        (
            "a request whose JSON header is not an object",
            raw_frame(Opcode::SendRequest.to_u8(), 6, b"[1]", b"x"),
            false,
            "BAD_HEADER",
        ),
        (
            "an empty JSON header",
            raw_frame(Opcode::Fetch.to_u8(), 6, b"", b""),
            false,
            "BAD_HEADER",
        ),
        ("a truncated request", truncated_request, true, "BAD_FRAME"),
    ];
    for (what, bytes, close, code) in cases_after {
        let mut out = garbage_case(addr, what, true, &bytes, close);
        let errors = out.errors();
        match (code, errors.last()) {
            ("BAD_FRAME", Some((id, _))) => assert_eq!(
                *id, 0,
                "{what}: a broken stream's error has correlation id 0"
            ),
            ("BAD_HEADER", Some((id, _))) => assert_eq!(
                *id, 6,
                "{what}: a bad header's error has its request's correlation id"
            ),
            _ => {}
        }
        expect_fatal(what, out, code);
    }

    // A ping pipelined before garbage.
    let mut bytes = ping_frame(21);
    bytes.extend_from_slice(&raw_frame(0x42, 22, b"{}", b""));
    // (The ping's reply may or may not make it out before the fatal close.)
    let out = garbage_case(addr, "a ping, then garbage", true, &bytes, false);
    expect_fatal("a ping, then garbage", out, "BAD_FRAME");

    let ep = server.endpoint();
    run_local(move || async move { round_trip(&ep, "after garbage").await });
}

/// Reads a raw TLS stream until it ends (or `RAW_WAIT` passes).
fn tls_read_until_closed(
    stream: &mut rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream>,
) -> RawOutcome {
    let deadline = Instant::now() + RAW_WAIT;
    let mut decoder = FrameDecoder::new(Limits {
        header_bytes_max: 1 << 26,
        body_bytes_max: 1 << 30,
    });
    let mut out = RawOutcome::default();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        while let Ok(Some(f)) = decoder.next_frame() {
            out.frames.push(f);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return out;
        }
        stream
            .sock
            .set_read_timeout(Some(left))
            .expect("set a read timeout");
        match stream.read(&mut chunk) {
            Ok(0) => {
                out.closed = true;
                return out;
            }
            Ok(n) => decoder.extend(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return out
            }
            Err(_) => {
                out.closed = true;
                return out;
            }
        }
    }
}

#[test]
fn given_tls_connections_when_they_send_garbage_after_the_handshake_then_each_gets_a_fatal_error_and_the_server_still_serves(
) {
    let server = ServerProcess::start_default();
    let ep = server.endpoint();
    let config = raw_tls_config(&ep.certs_dir, "MFC");
    let hello = {
        let h = Hello {
            versions: vec![1],
            ..Default::default()
        };
        frame(Opcode::Hello, 1, &h, &[])
    };
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "random bytes",
            b"XXXX not a gonets frame at all, not at all".to_vec(),
            "BAD_FRAME",
        ),
        ("a ping before the hello", ping_frame(3), "HELLO_REQUIRED"),
        (
            "an unknown opcode after the hello",
            {
                let mut b = hello.clone();
                b.extend_from_slice(&raw_frame(0x42, 4, b"{}", b""));
                b
            },
            "BAD_FRAME",
        ),
        (
            "bad JSON after the hello",
            {
                let mut b = hello.clone();
                b.extend_from_slice(&raw_frame(Opcode::Status.to_u8(), 4, b"{\"id\":", b""));
                b
            },
            "BAD_HEADER",
        ),
    ];
    for (what, bytes, code) in cases {
        let tcp = std::net::TcpStream::connect_timeout(&ep.addr, RAW_WAIT).expect("connect");
        tcp.set_write_timeout(Some(RAW_WAIT))
            .expect("write timeout");
        let name = rustls::pki_types::ServerName::try_from("localhost").expect("a server name");
        let conn = rustls::ClientConnection::new(config.clone(), name).expect("a TLS client");
        let mut stream = rustls::StreamOwned::new(conn, tcp);
        stream.write_all(&bytes).expect("write over TLS");
        stream.flush().expect("flush");
        let out = tls_read_until_closed(&mut stream);
        print_uncaptured(&format!(
            "TLS garbage case {what:?}: {} frame(s), closed {}",
            out.frames.len(),
            out.closed
        ));
        expect_fatal(what, out, code);
    }
    run_local(move || async move { round_trip(&ep, "after TLS garbage").await });
}

// --------------------------------------------------- reconnect mid-batch

#[test]
fn given_a_pipelined_batch_when_the_client_reconnects_midway_then_every_request_is_accepted_once_and_delivered_once(
) {
    const N: usize = 200;
    const DISCONNECT_AFTER: usize = 50;
    let server = ServerProcess::start_default();
    let ep = server.endpoint();
    run_local(move || async move {
        let mfc = ep.connect("MFC").await;
        let fns = ep.connect("FNS").await;
        let accepted = Rc::new(Cell::new(0usize));
        let pending_at_disconnect = Rc::new(Cell::new(None::<usize>));
        let tasks: Vec<_> = (0..N)
            .map(|i| {
                let (mfc, accepted, pending) =
                    (mfc.clone(), accepted.clone(), pending_at_disconnect.clone());
                glommio::spawn_local(async move {
                    let payload = format!("batch {i:04} {}", "x".repeat(512));
                    let r = mfc.send_request(NewRequest::new(EGRUL, payload)).await;
                    if r.is_ok() {
                        accepted.set(accepted.get() + 1);
                        if accepted.get() == DISCONNECT_AFTER {
                            pending.set(Some(N - DISCONNECT_AFTER));
                            mfc.disconnect();
                        }
                    }
                    (i, r)
                })
            })
            .collect();
        let mut results = Vec::with_capacity(N);
        for t in tasks {
            results.push(bounded("a pipelined send", OP, t).await);
        }
        let mut ids = BTreeMap::new();
        let mut duplicates = 0;
        for (i, r) in results {
            let a = r.unwrap_or_else(|e| panic!("request {i} was not accepted: {e}"));
            duplicates += usize::from(a.duplicate);
            let id: MessageId = a.id;
            assert!(
                ids.insert(id, i).is_none(),
                "two requests were accepted as one id {id}"
            );
        }
        assert_eq!(ids.len(), N);
        print_uncaptured(&format!(
            "reconnect mid-batch: {N} accepted, {duplicates} of them as repeats after the \
             reconnect, {} connection(s) made",
            mfc.connections()
        ));
        assert!(
            pending_at_disconnect.get().is_some(),
            "no disconnect happened"
        );
        // The provider sees every request exactly once.
        let got = fetch_n(&fns, &requests(), N, OP).await;
        let more = fns
            .fetch(&requests(), 10, Duration::from_millis(500))
            .await
            .expect("fetch");
        assert!(more.is_empty(), "more than {N} requests: {more:?}");
        let mut seen = BTreeSet::new();
        for m in &got {
            assert!(seen.insert(m.id), "request {} delivered twice", m.id);
            assert!(
                ids.contains_key(&m.id),
                "an unknown request {} was queued",
                m.id
            );
            assert_eq!(m.delivery_count, 1);
            let i = ids[&m.id];
            assert!(
                m.payload.starts_with(format!("batch {i:04} ").as_bytes()),
                "request {i}'s payload differs"
            );
        }
        assert_eq!(seen.len(), N);
    });
}

// ------------------------------------------------------------ SIGKILL

/// What the clients saw over every run of the server.
#[derive(Default)]
struct Ledger {
    next_key: u64,
    /// Idempotency key → the id it was accepted as.
    accepted: BTreeMap<String, MessageId>,
    /// Keys whose send failed (the server died): sent again at the end.
    failed: BTreeSet<String>,
    /// Request → the distinct answer ids delivered for it.
    answers: BTreeMap<MessageId, BTreeSet<MessageId>>,
    answer_deliveries: u64,
    answers_sent: u64,
    violations: Vec<String>,
}

type Shared = Arc<Mutex<Ledger>>;

fn lock(l: &Shared) -> std::sync::MutexGuard<'_, Ledger> {
    l.lock().unwrap_or_else(|e| e.into_inner())
}

fn accept(ledger: &Shared, key: &str, r: &Result<gonets_types::Accepted, ClientError>) {
    let mut l = lock(ledger);
    match r {
        Ok(a) => {
            // An id that does not parse is the client's `BadReply`: a
            // violation below.
            let id: MessageId = a.id;
            if let Some(before) = l.accepted.insert(key.to_string(), id) {
                if before != id {
                    l.violations
                        .push(format!("key {key} accepted as {before} and as {id}"));
                }
            }
            l.failed.remove(key);
        }
        Err(ClientError::Disconnected(_) | ClientError::Timeout(_) | ClientError::Tls(_)) => {
            if !l.accepted.contains_key(key) {
                l.failed.insert(key.to_string());
            }
        }
        Err(e) => l.violations.push(format!("send of {key}: {e}")),
    }
}

fn record_answer(ledger: &Shared, m: &Message) {
    let mut l = lock(ledger);
    l.answer_deliveries += 1;
    match (m.reply_to, &m.body) {
        (Some(r), DeliveryBody::Answer(_)) => {
            l.answers.entry(r).or_default().insert(m.id);
        }
        _ => l.violations.push(format!("not an answer: {m:?}")),
    }
}

/// Client settings that give up fast once the server is gone.
fn impatient(ep: &Endpoint, participant: &str) -> ClientConfig {
    let mut c = ep.client_config(participant);
    c.request_timeout_ms = 10_000;
    c.reconnect_attempts_max = 3;
    c.reconnect_backoff_ms = 20;
    c
}

async fn try_connect(ep: &Endpoint, participant: &str) -> Option<Client> {
    within(OP, Client::connect(impatient(ep, participant)))
        .await
        .and_then(Result::ok)
}

/// Answers what the provider fetches (until `stop`).
async fn provider_loop(fns: Client, ledger: Shared, stop: Rc<dyn Fn() -> bool>) {
    while !stop() {
        let batch = match fns.fetch(&requests(), 64, Duration::from_millis(100)).await {
            Ok(b) => b,
            Err(_) => {
                glommio::timer::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let answering: Vec<_> = batch
            .into_iter()
            .map(|m| {
                let fns = fns.clone();
                glommio::spawn_local(async move {
                    let answer = [b"answer to ", &m.payload[..]].concat();
                    fns.send_response(m.id, answer).await
                })
            })
            .collect();
        for t in answering {
            match t.await {
                Ok(()) => lock(&ledger).answers_sent += 1,
                Err(ClientError::Hub(HubError::AlreadyAnswered(_)))
                | Err(ClientError::Disconnected(_))
                | Err(ClientError::Timeout(_)) => {}
                Err(e) => lock(&ledger).violations.push(format!("answer: {e}")),
            }
        }
    }
}

/// Collects and acks MFC's answers (until `stop`).
async fn collector_loop(mfc: Client, ledger: Shared, stop: Rc<dyn Fn() -> bool>) {
    while !stop() {
        let batch = match mfc
            .fetch(&answers("MFC"), 64, Duration::from_millis(100))
            .await
        {
            Ok(b) => b,
            Err(_) => {
                glommio::timer::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        for m in &batch {
            record_answer(&ledger, m);
        }
        let acks: Vec<_> = batch
            .into_iter()
            .map(|m| {
                let mfc = mfc.clone();
                glommio::spawn_local(async move { mfc.ack(&m).await })
            })
            .collect();
        for a in acks {
            match a.await {
                Ok(())
                | Err(ClientError::Disconnected(_))
                | Err(ClientError::Timeout(_))
                | Err(ClientError::Hub(HubError::NotFound)) => {}
                Err(e) => lock(&ledger).violations.push(format!("ack: {e}")),
            }
        }
    }
}

/// Sends requests with fresh keys, `WINDOW` in flight, until `stop` or the first failure.
async fn sender_loop(
    mfc: Client,
    ledger: Shared,
    stop: Rc<dyn Fn() -> bool>,
    started: mpsc::Sender<()>,
) {
    const WINDOW: u64 = 32;
    const SENDS_MAX: u64 = 20_000;
    let window = Rc::new(glommio::sync::Semaphore::new(WINDOW));
    let broken = Rc::new(Cell::new(false));
    let first = Rc::new(RefCell::new(Some(started)));
    let mut sent = 0;
    while !stop() && !broken.get() && sent < SENDS_MAX {
        let Ok(permit) = window.clone().acquire_static_permit(1).await else {
            break;
        };
        sent += 1;
        let key = {
            let mut l = lock(&ledger);
            l.next_key += 1;
            format!("key-{}", l.next_key)
        };
        let (mfc, ledger, broken, first) =
            (mfc.clone(), ledger.clone(), broken.clone(), first.clone());
        glommio::spawn_local(async move {
            let mut r = NewRequest::new(EGRUL, key.clone());
            r.idempotency_key = Some(key.clone());
            let result = mfc.send_request(r).await;
            accept(&ledger, &key, &result);
            match result {
                Ok(_) => {
                    if let Some(tx) = first.borrow_mut().take() {
                        let _ = tx.send(());
                    }
                }
                Err(_) => broken.set(true),
            }
            drop(permit);
        })
        .detach();
    }
    // Every send in flight ends (bounded by the client's attempts and timeouts).
    let _ = within(Duration::from_secs(60), window.acquire(WINDOW)).await;
}

/// One run of traffic against a live server, until `stop` is set (by the
/// killer) and every loop noticed.
fn traffic(ep: Endpoint, ledger: Shared, stop: Arc<AtomicBool>, started: mpsc::Sender<()>) {
    gonets_tests::block_on(async move {
        let (Some(mfc_send), Some(mfc_recv), Some(fns)) = (
            try_connect(&ep, "MFC").await,
            try_connect(&ep, "MFC").await,
            try_connect(&ep, "FNS").await,
        ) else {
            lock(&ledger)
                .violations
                .push("could not connect to a freshly started server".into());
            let _ = started.send(());
            return;
        };
        let flag = stop.clone();
        let stopped: Rc<dyn Fn() -> bool> = Rc::new(move || flag.load(Ordering::SeqCst));
        let p = glommio::spawn_local(provider_loop(fns, ledger.clone(), stopped.clone()));
        let c = glommio::spawn_local(collector_loop(mfc_recv, ledger.clone(), stopped.clone()));
        sender_loop(mfc_send, ledger.clone(), stopped.clone(), started).await;
        // The sender stops at its first failure; the others run until stopped.
        while !stopped() {
            glommio::timer::sleep(Duration::from_millis(10)).await;
        }
        bounded("the provider loop", Duration::from_secs(60), p).await;
        bounded("the collector loop", Duration::from_secs(60), c).await;
    });
}

/// Runs the drain after the last restart: sends failed keys again, answers
/// and collects until every accepted request has its answer.
async fn drain(ep: Endpoint, ledger: Shared) {
    let mfc = ep.connect("MFC").await;
    let fns = ep.connect("FNS").await;
    // Every request the clients know was accepted is still there.
    let unanswered: Vec<MessageId> = {
        let l = lock(&ledger);
        l.accepted
            .values()
            .filter(|id| !l.answers.contains_key(id))
            .copied()
            .collect()
    };
    for id in &unanswered {
        let s = bounded("status", OP, mfc.status(*id))
            .await
            .unwrap_or_else(|e| panic!("accepted request {id} is gone after the restarts: {e}"));
        assert_eq!(s.request_id, *id);
    }
    // Keys whose send failed: sent again, accepted once (maybe as a repeat).
    let failed: Vec<String> = lock(&ledger).failed.iter().cloned().collect();
    for key in &failed {
        let mut r = NewRequest::new(EGRUL, key.clone());
        r.idempotency_key = Some(key.clone());
        let result = bounded("resend", OP, mfc.send_request(r)).await;
        assert!(result.is_ok(), "resend of {key}: {result:?}");
        accept(&ledger, key, &result);
    }
    print_uncaptured(&format!(
        "drain: {} accepted requests had no answer yet, {} failed sends went again",
        unanswered.len(),
        failed.len()
    ));
    let done = Rc::new(Cell::new(false));
    let flag = done.clone();
    let stop: Rc<dyn Fn() -> bool> = Rc::new(move || flag.get());
    let p = glommio::spawn_local(provider_loop(fns, ledger.clone(), stop.clone()));
    let c = glommio::spawn_local(collector_loop(mfc.clone(), ledger.clone(), stop.clone()));
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let missing = {
            let l = lock(&ledger);
            l.accepted
                .values()
                .filter(|id| !l.answers.contains_key(id))
                .count()
        };
        if missing == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{missing} accepted requests still have no answer after 120 s of draining"
        );
        glommio::timer::sleep(Duration::from_millis(50)).await;
    }
    // A little longer: a second answer to anything would show up now.
    glommio::timer::sleep(Duration::from_millis(500)).await;
    done.set(true);
    bounded("the provider loop", OP, p).await;
    bounded("the collector loop", OP, c).await;
    let leftover = mfc
        .fetch(&answers("MFC"), 256, Duration::from_millis(300))
        .await
        .expect("fetch");
    for m in &leftover {
        record_answer(&ledger, m);
    }
}

#[test]
fn given_live_traffic_when_the_server_is_killed_and_restarted_then_every_accepted_request_is_answered_exactly_once(
) {
    let cycles = env_number("GONETS_NET_KILL_CYCLES").unwrap_or(3) as usize;
    let seed = seed_from_env("GONETS_NET_KILL_SEED");
    print_uncaptured(&format!(
        "net kill: seed {seed} (GONETS_NET_KILL_SEED), {cycles} cycles (GONETS_NET_KILL_CYCLES)"
    ));
    let mut rng = StdRng::seed_from_u64(seed);
    let ledger: Shared = Arc::new(Mutex::new(Ledger::default()));
    let mut server = ServerProcess::start_default();
    for cycle in 0..cycles {
        if cycle > 0 {
            server.restart();
        }
        let stop = Arc::new(AtomicBool::new(false));
        let (started_tx, started_rx) = mpsc::channel();
        let (done_tx, done_rx) = mpsc::channel();
        let (ep, l, s) = (server.endpoint(), ledger.clone(), stop.clone());
        let worker = std::thread::spawn(move || {
            traffic(ep, l, s, started_tx);
            let _ = done_tx.send(());
        });
        started_rx
            .recv_timeout(Duration::from_secs(120))
            .unwrap_or_else(|_| {
                panic!(
                    "cycle {cycle}: no request accepted within 120 s\n{}",
                    server.log()
                )
            });
        let after = Duration::from_millis(rng.gen_range(50..1500));
        std::thread::sleep(after);
        let before = lock(&ledger).accepted.len();
        server.kill9();
        stop.store(true, Ordering::SeqCst);
        done_rx
            .recv_timeout(Duration::from_secs(120))
            .unwrap_or_else(|_| panic!("cycle {cycle}: the clients did not stop within 120 s"));
        worker
            .join()
            .unwrap_or_else(|e| std::panic::resume_unwind(e));
        let l = lock(&ledger);
        print_uncaptured(&format!(
            "cycle {cycle}: killed {after:?} into traffic; {before} accepted so far, {} answers \
             sent, {} answer deliveries, {} sends failed",
            l.answers_sent,
            l.answer_deliveries,
            l.failed.len()
        ));
    }
    server.restart();
    let (ep, l) = (server.endpoint(), ledger.clone());
    run_local(move || drain(ep, l));

    let l = lock(&ledger);
    assert!(
        l.violations.is_empty(),
        "violations (seed {seed}):\n{}",
        l.violations.join("\n")
    );
    assert!(l.failed.is_empty(), "keys never accepted: {:?}", l.failed);
    let ids: BTreeSet<MessageId> = l.accepted.values().copied().collect();
    assert_eq!(
        ids.len(),
        l.accepted.len(),
        "two idempotency keys were accepted as one request (seed {seed})"
    );
    let mut twice = Vec::new();
    for (request, answer_ids) in &l.answers {
        assert!(
            ids.contains(request),
            "an answer to a request no client sent: {request} (seed {seed})"
        );
        if answer_ids.len() != 1 {
            twice.push(format!("{request}: {answer_ids:?}"));
        }
    }
    assert!(
        twice.is_empty(),
        "requests answered with different answers (seed {seed}):\n{}",
        twice.join("\n")
    );
    for id in &ids {
        assert!(
            l.answers.contains_key(id),
            "accepted request {id} never got its answer (seed {seed})"
        );
    }
    print_uncaptured(&format!(
        "net kill: {} requests accepted over {cycles} kills, each answered once; {} answer \
         deliveries ({} redelivered)",
        ids.len(),
        l.answer_deliveries,
        l.answer_deliveries.saturating_sub(ids.len() as u64)
    ));
}

// ------------------------------------------------------------ SIGTERM

#[test]
fn given_a_server_with_state_when_sigtermed_then_it_exits_0_and_a_restart_sees_all_state() {
    let mut server = ServerProcess::start_default();
    let ep = server.endpoint();
    // Requests r0..r6: r0..r2 answered (r0, r1 acked by the consumer), r3
    // refused (unacked), r4, r5 fetched and not answered, r6 never fetched.
    let (ids, answer_ids) = run_local(move || async move {
        let mfc = ep.connect("MFC").await;
        let fns = ep.connect("FNS").await;
        let mut ids = Vec::new();
        for i in 0..6 {
            let mut r = NewRequest::new(EGRUL, format!("r{i}"));
            r.idempotency_key = Some(format!("term-{i}"));
            let a = mfc.send_request(r).await.expect("send_request");
            ids.push(a.id);
        }
        let got = fetch_n(&fns, &requests(), 6, OP).await;
        let got: HashMap<MessageId, Message> = got.into_iter().map(|m| (m.id, m)).collect();
        for id in &ids[..3] {
            fns.send_response(*id, "data").await.expect("answer");
        }
        fns.send_refusal(ids[3], gonets_types::RefusalCode::NoData, "none")
            .await
            .expect("refuse");
        assert!(got.contains_key(&ids[4]) && got.contains_key(&ids[5]));
        let mut r = NewRequest::new(EGRUL, "r6");
        r.idempotency_key = Some("term-6".into());
        ids.push(mfc.send_request(r).await.expect("send_request").id);
        let answered = fetch_n(&mfc, &answers("MFC"), 4, OP).await;
        let mut answer_ids = HashMap::new();
        for m in &answered {
            answer_ids.insert(m.reply_to.expect("an answer"), m.id);
            if m.reply_to == Some(ids[0]) || m.reply_to == Some(ids[1]) {
                mfc.ack(m).await.expect("ack");
            }
        }
        assert_eq!(answer_ids.len(), 4);
        (ids, answer_ids)
    });

    // An idle connection that never finished its hello does not hold the stop up.
    let idle = std::net::TcpStream::connect(server.addr()).expect("connect");
    let started = Instant::now();
    server.terminate();
    print_uncaptured(&format!("SIGTERM: exited 0 after {:?}", started.elapsed()));
    assert!(server.log().contains("stopped cleanly"), "{}", server.log());
    drop(idle);

    server.restart();
    let ep = server.endpoint();
    run_local(move || async move {
        let mfc = ep.connect("MFC").await;
        let fns = ep.connect("FNS").await;
        for (i, id) in ids.iter().enumerate() {
            let s = mfc
                .status(*id)
                .await
                .unwrap_or_else(|e| panic!("r{i} is gone after the restart: {e}"));
            let want = answer_ids.get(id).copied();
            assert_eq!(s.answer_id, want, "r{i}'s answer after the restart");
        }
        // Unanswered requests come back to the provider; nothing else does.
        let got = fetch_n(&fns, &requests(), 3, OP).await;
        let more = fns
            .fetch(&requests(), 10, Duration::from_millis(300))
            .await
            .expect("fetch");
        assert!(more.is_empty(), "answered requests came back: {more:?}");
        let got: BTreeSet<MessageId> = got.iter().map(|m| m.id).collect();
        assert_eq!(got, [ids[4], ids[5], ids[6]].into_iter().collect());
        // Unacked answers come back to the consumer, with their ids.
        let back = fetch_n(&mfc, &answers("MFC"), 2, OP).await;
        let more = mfc
            .fetch(&answers("MFC"), 10, Duration::from_millis(300))
            .await
            .expect("fetch");
        assert!(more.is_empty(), "acked answers came back: {more:?}");
        for m in &back {
            let r = m.reply_to.expect("an answer");
            assert!(r == ids[2] || r == ids[3], "unexpected answer to {r}");
            assert_eq!(Some(&m.id), answer_ids.get(&r), "the same answer id");
        }
        // Idempotency keys survive the restart.
        let mut r = NewRequest::new(EGRUL, "r0");
        r.idempotency_key = Some("term-0".into());
        let a = mfc.send_request(r).await.expect("send_request");
        assert!(a.duplicate);
        assert_eq!(a.id, ids[0]);
        // And the restarted hub serves new work.
        round_trip(&ep, "after SIGTERM").await;
    });
}
