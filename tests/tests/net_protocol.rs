//! The protocol's rules as a client written from docs/protocol.md alone
//! sees them, over raw sockets to a `gonets serve` child process: which
//! header faults are fatal and which are answered, the correlation id of
//! errors, the text limits and their errors, and the frame-read timeout.
//!
//! Needs the `gonets` binary (`cargo build --release -p gonets --bin gonets`).

use gonets_proto::header::{Empty, ErrorReply, SendRefusal, SendRequest};
use gonets_proto::{Frame, Opcode};
use gonets_tests::net::{
    frame, raw_frame, round_trip, run_local, RawConn, ServerOptions, ServerProcess,
};
use gonets_tests::print_uncaptured;
use gonets_types::MessageId;
use std::time::{Duration, Instant};

const EGRUL: &str = "urn:gonets:fns:egrul-extract:1";
const OP: Duration = Duration::from_secs(120);
/// How long a raw connection waits for the server's reaction.
const RAW_WAIT: Duration = Duration::from_secs(20);
/// The longest text (key, transaction, reason) the hub takes, bytes.
const TEXT_BYTES_MAX: usize = 4096;

fn error_of(mut f: Frame) -> (u64, ErrorReply) {
    assert_eq!(f.header.opcode, Opcode::Error, "not an error frame: {f:?}");
    let e: ErrorReply = gonets_proto::parse_header(&mut f.json).expect("an error header");
    (f.header.correlation_id, e)
}

/// Pings on `raw` and expects the reply: the connection still serves.
fn expect_alive(raw: &mut RawConn, id: u64, what: &str) {
    raw.send(&frame(Opcode::Ping, id, &Empty {}, &[]));
    let f = raw
        .next_frame(RAW_WAIT)
        .unwrap_or_else(|| panic!("{what}: no ping reply: the connection was closed"));
    assert_eq!(f.header.opcode, Opcode::Ping.reply(), "{what}: {f:?}");
    assert_eq!(f.header.correlation_id, id, "{what}");
}

fn mfc(server: &ServerProcess) -> RawConn {
    let mut raw = RawConn::connect(server.addr());
    raw.hello("MFC", "dev-mfc");
    raw
}

#[test]
fn given_a_request_whose_json_header_does_not_parse_when_sent_then_the_fatal_bad_header_carries_its_correlation_id(
) {
    let server = ServerProcess::start(ServerOptions::dev_token());
    let cases: [(&str, u8, &[u8]); 4] = [
        ("a send_request", Opcode::SendRequest.to_u8(), b"{not json"),
        ("a fetch", Opcode::Fetch.to_u8(), b"{\"queue\":"),
        ("an add_credits", Opcode::AddCredits.to_u8(), b"{]"),
        ("a JSON number", Opcode::Status.to_u8(), b"5"),
    ];
    for (n, (what, op, json)) in cases.into_iter().enumerate() {
        let id = 7_000 + n as u64;
        let mut raw = mfc(&server);
        raw.send(&raw_frame(op, id, json, b""));
        let mut out = raw.read_until_closed(RAW_WAIT);
        assert!(out.closed, "{what}: the connection stays open");
        let errors = out.errors();
        let (got_id, e) = errors.last().expect("an error frame");
        assert_eq!(e.code, "BAD_HEADER", "{what}: {e:?}");
        assert!(e.fatal, "{what}: {e:?}");
        assert_eq!(
            *got_id, id,
            "{what}: the error names the request whose header failed"
        );
    }
}

#[test]
fn given_request_headers_missing_a_field_or_with_one_of_the_wrong_type_when_sent_then_malformed_names_the_field_and_the_connection_goes_on(
) {
    let server = ServerProcess::start(ServerOptions::dev_token());
    let id = MessageId::new(1_700_000_000_000, 0, 1).to_string();
    let queue = format!("requests/{EGRUL}");
    let cases: Vec<(Opcode, String, &str)> = vec![
        (Opcode::SendRequest, "{}".into(), "kind"),
        (Opcode::SendRequest, r#"{"kind":5}"#.into(), "kind"),
        (
            Opcode::SendRequest,
            format!(r#"{{"kind":"{EGRUL}","test":"yes"}}"#),
            "test",
        ),
        (
            Opcode::Call,
            format!(r#"{{"kind":"{EGRUL}","idempotency_key":7}}"#),
            "idempotency_key",
        ),
        (Opcode::Fetch, format!(r#"{{"queue":"{queue}"}}"#), "max"),
        (
            Opcode::Fetch,
            format!(r#"{{"queue":"{queue}","max":-1}}"#),
            "max",
        ),
        (
            Opcode::Fetch,
            format!(r#"{{"queue":"{queue}","max":4294967296}}"#),
            "max",
        ),
        (
            Opcode::Fetch,
            format!(r#"{{"queue":"{queue}","max":1,"wait_ms":1.5}}"#),
            "wait_ms",
        ),
        (Opcode::Subscribe, r#"{"credits":1}"#.into(), "queue"),
        (
            Opcode::Ack,
            format!(r#"{{"queue":"{queue}","id":"{id}","lease":"7"}}"#),
            "lease",
        ),
        (
            Opcode::Nack,
            format!(r#"{{"queue":"{queue}","id":"{id}"}}"#),
            "lease",
        ),
        (
            Opcode::AddCredits,
            r#"{"subscription":1}"#.into(),
            "credits",
        ),
        (
            Opcode::Unsubscribe,
            r#"{"subscription":null}"#.into(),
            "subscription",
        ),
        (
            Opcode::SendResponse,
            r#"{"request_id":["x"]}"#.into(),
            "request_id",
        ),
        (
            Opcode::SendRefusal,
            format!(r#"{{"request_id":"{id}","code":7}}"#),
            "code",
        ),
        (Opcode::Status, "{}".into(), "id"),
        (Opcode::QueueStats, r#"{"queue":null}"#.into(), "queue"),
    ];
    let mut raw = mfc(&server);
    for (n, (op, json, field)) in cases.into_iter().enumerate() {
        let what = format!("{op:?} {json}");
        let cid = 100 + n as u64 * 2;
        raw.send(&raw_frame(op.to_u8(), cid, json.as_bytes(), b""));
        let f = raw
            .next_frame(RAW_WAIT)
            .unwrap_or_else(|| panic!("{what}: no answer (the connection was closed?)"));
        let (got_id, e) = error_of(f);
        assert_eq!(got_id, cid, "{what}");
        assert_eq!(e.code, "MALFORMED", "{what}: {e:?}");
        assert!(!e.fatal, "{what}: a bad field is not fatal: {e:?}");
        assert_eq!(e.details.field.as_deref(), Some(field), "{what}: {e:?}");
        assert!(e.message.contains(&format!("`{field}`")), "{what}: {e:?}");
        expect_alive(&mut raw, cid + 1, &what);
    }
}

#[test]
fn given_a_key_transaction_or_reason_over_4096_bytes_when_sent_then_too_large_names_the_field() {
    let server = ServerProcess::start(ServerOptions::dev_token());
    let long = "x".repeat(TEXT_BYTES_MAX + 1);
    let key = SendRequest {
        kind: EGRUL.into(),
        idempotency_key: Some(long.clone()),
        ..SendRequest::default()
    };
    let transaction = SendRequest {
        kind: EGRUL.into(),
        transaction: Some(long.clone()),
        ..SendRequest::default()
    };
    let reason = SendRefusal {
        signature: None,
        signature_key_id: None,
        request_id: MessageId::new(1_700_000_000_000, 0, 1).to_string(),
        code: "NO_DATA".into(),
        reason: long.clone(),
    };
    let cases = [
        (
            "idempotency_key",
            frame(Opcode::SendRequest, 11, &key, &[b"{}"]),
        ),
        (
            "transaction",
            frame(Opcode::SendRequest, 12, &transaction, &[b"{}"]),
        ),
        ("reason", frame(Opcode::SendRefusal, 13, &reason, &[])),
    ];
    let mut raw = mfc(&server);
    for (n, (field, bytes)) in cases.into_iter().enumerate() {
        raw.send(&bytes);
        let f = raw
            .next_frame(RAW_WAIT)
            .unwrap_or_else(|| panic!("{field}: no answer"));
        let (id, e) = error_of(f);
        assert_eq!(id, 11 + n as u64, "{field}");
        assert_eq!(e.code, "TOO_LARGE", "{field}: {e:?}");
        assert!(!e.fatal, "{field}: {e:?}");
        assert_eq!(e.details.field.as_deref(), Some(field), "{e:?}");
        assert!(e.message.starts_with(field), "{field}: {e:?}");
        assert!(!e.message.contains("payload"), "{field}: {e:?}");
        assert_eq!(e.details.size_bytes, Some(TEXT_BYTES_MAX as u64 + 1));
        assert_eq!(e.details.size_bytes_max, Some(TEXT_BYTES_MAX as u64));
    }
    // Exactly at the limit is taken.
    let at_limit = SendRequest {
        kind: EGRUL.into(),
        idempotency_key: Some("k".repeat(TEXT_BYTES_MAX)),
        ..SendRequest::default()
    };
    raw.send(&frame(Opcode::SendRequest, 20, &at_limit, &[b"{}"]));
    let f = raw.next_frame(OP).expect("an answer");
    assert_eq!(f.header.opcode, Opcode::SendRequest.reply(), "{f:?}");
}

// ------------------------------------------------------ frame-read timeout

/// Checks a stalled connection was closed with the frame-read timeout's error.
fn expect_timed_out(what: &str, raw: &mut RawConn, started: Instant, timeout: Duration) {
    let mut out = raw.read_until_closed(RAW_WAIT);
    let waited = started.elapsed();
    print_uncaptured(&format!("{what}: closed {} after {waited:?}", out.closed));
    assert!(out.closed, "{what}: still open after {waited:?}");
    assert!(
        waited >= timeout.mul_f64(0.9),
        "{what}: closed after {waited:?}, before the timeout"
    );
    let errors = out.errors();
    let (id, e) = errors.last().expect("an error frame before the close");
    assert_eq!(e.code, "BAD_FRAME", "{what}: {e:?}");
    assert!(e.fatal, "{what}: {e:?}");
    assert_eq!(
        *id, 0,
        "{what}: a broken stream's error has correlation id 0"
    );
    assert!(e.message.contains("not completed within"), "{what}: {e:?}");
}

#[test]
fn given_connections_stalled_inside_a_frame_when_the_frame_read_timeout_passes_then_they_are_closed_and_others_are_served(
) {
    let timeout = Duration::from_millis(1500);
    let server = ServerProcess::start(ServerOptions {
        sections: format!(
            "[limits]\nframe_read_timeout_ms = {}\n",
            timeout.as_millis()
        ),
        ..ServerOptions::dev_token()
    });
    // A: a fixed header announcing a 16 MiB body, then 10 bytes of it.
    let mut big = raw_frame(Opcode::SendRequest.to_u8(), 5, br#"{"kind":"k"}"#, b"");
    big[20..24].copy_from_slice(&(16u32 * 1024 * 1024).to_le_bytes());
    big.extend_from_slice(&[0u8; 10]);
    // B: 10 bytes of a fixed header.
    let ping = frame(Opcode::Ping, 6, &Empty {}, &[]);
    let mut a = mfc(&server);
    let mut b = mfc(&server);
    let mut idle = mfc(&server);
    let started = Instant::now();
    a.send(&big);
    b.send(&ping[..10]);

    // A valid client on other connections is served meanwhile.
    let ep = server.endpoint();
    run_local(move || async move { round_trip(&ep, "during the stall").await });

    expect_timed_out("16 MiB announced, 10 bytes sent", &mut a, started, timeout);
    expect_timed_out("a fixed header cut short", &mut b, started, timeout);
    // An idle connection (no frame begun) is not timed out.
    std::thread::sleep(timeout.saturating_sub(started.elapsed()));
    expect_alive(
        &mut idle,
        9,
        "an idle connection past the frame-read timeout",
    );
    assert!(
        server.log().contains("not completed within"),
        "the server logs why it closed:\n{}",
        server.log()
    );
    let ep = server.endpoint();
    run_local(move || async move { round_trip(&ep, "after the stall").await });
}
