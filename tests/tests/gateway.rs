//! The HTTP/JSON gateway of `gonets serve` (docs/gateway.md), black box: a
//! server child process with the gateway on a free loopback port; every
//! operation over plain HTTP/1.1 with development tokens (HTTP Basic), the
//! typed problems, mutual TLS, the Python example, and schemathesis
//! against the served OpenAPI contract (PyPI's `schemathesis`, installed
//! by `.ci/run` into `.ci/venv`; `GONETS_SCHEMATHESIS` names it).
//!
//! Needs the `gonets` binary (`cargo build --release -p gonets --bin gonets`).

use gonets_tests::net::{raw_tls_config, wait_output, Mode, ServerOptions, ServerProcess};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

const EGRUL: &str = "urn:gonets:fns:egrul-extract:1";
/// Realtime, served by FNS, which MFC may call.
const INN: &str = "urn:gonets:fns:inn-by-passport:1";
/// Bound of one HTTP exchange (a long-poll or a call included).
const HTTP_WAIT: Duration = Duration::from_secs(30);

/// One HTTP response: status, head and body.
struct Http {
    status: u16,
    head: String,
    body: String,
}

impl Http {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} {:?}", self.status, self.body))
    }

    fn header(&self, name: &str) -> Option<String> {
        let prefix = format!("{}: ", name.to_ascii_lowercase());
        self.head.lines().find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix(&prefix)
                .map(|v| v.trim().to_string())
        })
    }

    /// The problem's stable code, checking the problem's shape on the way.
    fn problem_code(&self) -> String {
        assert_eq!(
            self.header("content-type").as_deref(),
            Some("application/problem+json"),
            "{} {}",
            self.status,
            self.body
        );
        let p = self.json();
        assert_eq!(p["status"], self.status, "{p}");
        let code = p["code"].as_str().expect("a code").to_string();
        assert_eq!(p["type"], format!("urn:gonets:error:{code}"), "{p}");
        code
    }
}

/// Basic credentials of a participant's development token.
fn basic(participant: &str) -> String {
    let text = format!("{participant}:dev-{}", participant.to_lowercase());
    format!("Basic {}", base64(text.as_bytes()))
}

fn base64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn base64_decode(text: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .unwrap_or_else(|e| panic!("not base64 ({e}): {text:?}"))
}

/// Sends one request with `Connection: close` and reads the whole response.
fn exchange(
    stream: &mut dyn ReadWrite,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> Http {
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: gonets\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).expect("send the head");
    stream.write_all(body).expect("send the body");
    let mut raw = Vec::new();
    // A TLS server may end the session without close_notify after the body.
    if let Err(e) = stream.read_to_end(&mut raw) {
        assert!(!raw.is_empty(), "read the response: {e}");
    }
    let text = String::from_utf8(raw).expect("a UTF-8 response");
    let (head, body) = text.split_once("\r\n\r\n").expect("a head and a body");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status");
    Http {
        status,
        head: head.to_string(),
        body: body.to_string(),
    }
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

/// `method path` as `who` (development token; `None`: no credentials).
fn http(
    addr: SocketAddr,
    who: Option<&str>,
    method: &str,
    path: &str,
    extra: &[(&str, &str)],
    body: &[u8],
) -> Http {
    let mut stream = TcpStream::connect_timeout(&addr, HTTP_WAIT).expect("connect to the gateway");
    stream.set_read_timeout(Some(HTTP_WAIT)).unwrap();
    let mut headers: Vec<(&str, String)> = extra.iter().map(|(n, v)| (*n, v.to_string())).collect();
    if let Some(who) = who {
        headers.push(("Authorization", basic(who)));
    }
    exchange(&mut stream, method, path, &headers, body)
}

fn gateway_server(mode: Mode) -> ServerProcess {
    ServerProcess::start(ServerOptions {
        mode,
        gateway: true,
        ..ServerOptions::default()
    })
}

#[test]
fn given_gateway_cores_when_serve_starts_then_the_gateway_thread_runs_only_there_and_a_bad_core_stops_the_start(
) {
    let mut server = ServerProcess::start(ServerOptions {
        mode: Mode::DevToken,
        gateway: true,
        gateway_cores: vec![0],
        ..ServerOptions::default()
    });
    let pid = server.pid().expect("running");
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("its threads");
    let gateway = tasks
        .flatten()
        .find(|t| {
            std::fs::read_to_string(t.path().join("comm"))
                .is_ok_and(|c| c.trim() == "gonets-gateway")
        })
        .expect("a thread named gonets-gateway");
    let status = std::fs::read_to_string(gateway.path().join("status")).unwrap();
    let allowed = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .expect("Cpus_allowed_list");
    assert_eq!(allowed.trim(), "0", "{status}");
    let r = http(
        server.gateway_addr(),
        Some("MFC"),
        "GET",
        "/v1/openapi.json",
        &[],
        b"",
    );
    assert_eq!(r.status, 200, "the pinned gateway serves");
    server.terminate();

    // A core no machine here has: serve says which setting, and stops.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("gonets.toml");
    let text = format!(
        "data_dir = {:?}\nlisten = \"127.0.0.1:0\"\nsecurity = \"dev-token\"\n\
         operator_listen = \"none\"\ngateway_listen = \"127.0.0.1:0\"\ngateway_cores = [1000]\n",
        dir.path().join("data").display().to_string()
    );
    std::fs::write(&config, text).unwrap();
    let child = std::process::Command::new(gonets_tests::net::gonets_bin())
        .args(["serve", "--config"])
        .arg(&config)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let out = wait_output(
        child,
        Duration::from_secs(60),
        "serve with a bad gateway core",
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains("gateway_cores") && err.contains("1000"),
        "{err}"
    );
}

/// Fetches one message from `queue` as `who`, waiting up to 5 s.
fn fetch_one(addr: SocketAddr, who: &str, queue: &str) -> Value {
    let path = format!("/v1/queues/{queue}/messages?max=1&wait_ms=5000");
    let r = http(addr, Some(who), "GET", &path, &[], b"");
    assert_eq!(r.status, 200, "{}", r.body);
    let messages = r.json()["messages"].as_array().expect("messages").clone();
    assert_eq!(messages.len(), 1, "{}", r.body);
    messages[0].clone()
}

#[test]
fn given_the_gateway_when_a_request_goes_through_then_send_fetch_answer_ack_and_status_work() {
    let server = gateway_server(Mode::DevToken);
    let g = server.gateway_addr();
    let send = format!("/v1/kinds/{EGRUL}/requests");
    let key = [
        ("Idempotency-Key", "http-1"),
        ("Gonets-Transaction", "tx-7"),
    ];
    let sent = http(g, Some("MFC"), "POST", &send, &key, b"{\"inn\":\"1\"}");
    assert_eq!(sent.status, 202, "{}", sent.body);
    let accepted = sent.json();
    let id = accepted["id"].as_str().unwrap().to_string();
    assert_eq!(accepted["duplicate"], false);
    // The hub signs: the receipt names the message and its digest.
    let receipt = &accepted["receipt"]["receipt"];
    assert_eq!(receipt["message_id"], id.as_str(), "{accepted}");
    assert_eq!(receipt["sender"], "MFC");
    // A repeat with the same key answers the original.
    let again = http(g, Some("MFC"), "POST", &send, &key, b"{\"inn\":\"1\"}").json();
    assert_eq!(
        (again["id"].as_str(), again["duplicate"].as_bool()),
        (Some(id.as_str()), Some(true))
    );

    let request = fetch_one(g, "FNS", &format!("requests/{EGRUL}"));
    assert_eq!(request["id"], id.as_str());
    assert_eq!(request["type"], "request");
    assert_eq!(request["transaction"], "tx-7");
    assert_eq!(
        base64_decode(request["payload_base64"].as_str().unwrap()),
        b"{\"inn\":\"1\"}"
    );
    assert_eq!(request["digest"], receipt["digest"]);
    let answer_path = format!("/v1/requests/{id}/response");
    let answered = http(
        g,
        Some("FNS"),
        "POST",
        &answer_path,
        &[],
        b"{\"name\":\"x\"}",
    );
    assert_eq!(
        (answered.status, answered.json()["done"].as_bool()),
        (200, Some(true))
    );
    // A second answer to the same request is a conflict.
    let twice = http(g, Some("FNS"), "POST", &answer_path, &[], b"{}");
    assert_eq!(
        (twice.status, twice.problem_code()),
        (409, "ALREADY_ANSWERED".into())
    );
    let ack = format!("/v1/queues/requests/{EGRUL}/messages/{id}/ack");
    assert_eq!(http(g, Some("FNS"), "POST", &ack, &[], b"").status, 200);

    let answer = fetch_one(g, "MFC", "answers/MFC");
    assert_eq!(
        (answer["type"].as_str(), answer["reply_to"].as_str()),
        (Some("response"), Some(id.as_str()))
    );
    assert_eq!(
        answer["receipt"]["reply_to"],
        id.as_str(),
        "the hub's receipt of the answer"
    );
    let answer_id = answer["id"].as_str().unwrap();
    let ack = format!("/v1/queues/answers/MFC/messages/{answer_id}/ack");
    assert_eq!(http(g, Some("MFC"), "POST", &ack, &[], b"").status, 200);

    let status = http(
        g,
        Some("MFC"),
        "GET",
        &format!("/v1/messages/{id}/status"),
        &[],
        b"",
    );
    let events: Vec<String> = status.json()["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        events,
        [
            "accepted",
            "delivered",
            "answered",
            "answer_delivered",
            "answer_acked"
        ]
    );
    let stats = http(
        g,
        Some("FNS"),
        "GET",
        &format!("/v1/queues/requests/{EGRUL}/stats"),
        &[],
        b"",
    );
    assert_eq!(
        (stats.status, stats.json()["depth"].as_u64()),
        (200, Some(0)),
        "{}",
        stats.body
    );

    // A batch: one result a request, and the batch's one receipt beside them.
    let batch = br#"{"requests":[{"payload_base64":"YQ=="},{"payload_base64":"Yg==","idempotency_key":"b-2"},{"payload_base64":"Yw=="}]}"#;
    let path = format!("/v1/kinds/{EGRUL}/requests/batch");
    let sent = http(g, Some("MFC"), "POST", &path, &[], batch);
    assert_eq!(sent.status, 200, "{}", sent.body);
    let reply = sent.json();
    let results = reply["results"].as_array().unwrap();
    assert_eq!(results.len(), 3, "{reply}");
    assert!(
        results.iter().all(|r| r["accepted"]["receipt"].is_null()),
        "{reply}"
    );
    let entries = reply["receipt"]["entries"]
        .as_array()
        .expect("the batch receipt");
    assert_eq!(entries.len(), 3, "{reply}");
    assert_eq!(entries[1]["message_id"], results[1]["accepted"]["id"]);
    let stats = format!("/v1/queues/requests/{EGRUL}/stats");
    let depth = http(g, Some("FNS"), "GET", &stats, &[], b"");
    assert_eq!(depth.json()["depth"], 3, "{}", depth.body);
}

#[test]
fn given_an_attachment_uploaded_over_http_when_a_request_carries_it_then_the_provider_streams_it_back(
) {
    let server = gateway_server(Mode::DevToken);
    let g = server.gateway_addr();
    // Text, so the test's little client can hold the response as a string.
    let data: Vec<u8> = (0..(5 << 20) + 777)
        .map(|i: usize| b"gonets attachment "[i % 18] ^ (((i >> 16) % 2) as u8))
        .collect();
    let begin = format!("/v1/kinds/{EGRUL}/attachments");
    let size = format!("{{\"size_bytes\": {}}}", data.len());
    let begun = http(g, Some("MFC"), "POST", &begin, &[], size.as_bytes());
    assert_eq!(begun.status, 201, "{}", begun.body);
    let upload = begun.json()["upload"].as_str().unwrap().to_string();
    let chunk_at = |offset: usize, end: usize, crc: Option<u32>| {
        let bytes = &data[offset..end];
        let crc = format!("{:08x}", crc.unwrap_or_else(|| crc32c::crc32c(bytes)));
        let path = format!("/v1/uploads/{upload}/chunks?offset={offset}");
        http(
            g,
            Some("MFC"),
            "POST",
            &path,
            &[("Gonets-Chunk-Crc32c", &crc)],
            bytes,
        )
    };
    let first = chunk_at(0, 4 << 20, None);
    assert_eq!(first.status, 200, "{}", first.body);
    assert_eq!(first.json()["durable_bytes"], 4 << 20);
    // A bad CRC stores nothing; a gap says where to go on from.
    let bad = chunk_at(4 << 20, data.len(), Some(7));
    assert_eq!((bad.status, bad.problem_code()), (422, "BAD_CHUNK".into()));
    let gap = chunk_at(5 << 20, data.len(), None);
    assert_eq!(
        (gap.status, gap.problem_code()),
        (409, "UPLOAD_OFFSET".into())
    );
    assert_eq!(gap.json()["durable_bytes"], 4 << 20);
    let status = http(
        g,
        Some("MFC"),
        "GET",
        &format!("/v1/uploads/{upload}"),
        &[],
        b"",
    );
    assert_eq!(status.json()["durable_bytes"], 4 << 20, "{}", status.body);
    assert_eq!(chunk_at(4 << 20, data.len(), None).status, 200);
    let digest = blake3::hash(&data).to_hex().to_string();
    let finish = format!("/v1/uploads/{upload}/finish");
    let body = format!("{{\"digest\": \"{digest}\"}}");
    let finished = http(g, Some("MFC"), "POST", &finish, &[], body.as_bytes());
    assert_eq!(finished.status, 200, "{}", finished.body);
    assert_eq!(finished.json()["digest"], digest.as_str());

    let send = format!("/v1/kinds/{EGRUL}/requests");
    let reference = format!("{digest}:{}", data.len());
    let sent = http(
        g,
        Some("MFC"),
        "POST",
        &send,
        &[("Gonets-Attachments", &reference)],
        b"{}",
    );
    assert_eq!(sent.status, 202, "{}", sent.body);
    let request = fetch_one(g, "FNS", &format!("requests/{EGRUL}"));
    assert_eq!(
        request["attachments"][0]["digest"],
        digest.as_str(),
        "{request}"
    );
    assert_eq!(request["attachments"][0]["size_bytes"], data.len());
    let read = http(
        g,
        Some("FNS"),
        "GET",
        &format!("/v1/attachments/{digest}"),
        &[],
        b"",
    );
    assert_eq!(read.status, 200, "{}", read.head);
    assert_eq!(read.header("content-length"), Some(data.len().to_string()));
    assert!(
        read.body.as_bytes() == data,
        "the bytes streamed back are the bytes sent"
    );
    let rest = format!("/v1/attachments/{digest}?offset={}", 5 << 20);
    let tail = http(g, Some("FNS"), "GET", &rest, &[], b"");
    assert!(tail.body.as_bytes() == &data[5 << 20..]);
    // A stranger cannot read it; a digest nobody sent is not found.
    let mvd = http(
        g,
        Some("MVD"),
        "GET",
        &format!("/v1/attachments/{digest}"),
        &[],
        b"",
    );
    assert_eq!((mvd.status, mvd.problem_code()), (404, "NOT_FOUND".into()));
    let wrong = format!("{}:{}", "0".repeat(64), data.len());
    let orphan = http(
        g,
        Some("MFC"),
        "POST",
        &send,
        &[("Gonets-Attachments", &wrong)],
        b"{}",
    );
    assert_eq!(
        (orphan.status, orphan.problem_code()),
        (404, "NOT_FOUND".into())
    );
    // The provider answers with an attachment of its own; attaching the
    // consumer's upload is refused.
    let respond = format!("/v1/requests/{}/response", request["id"].as_str().unwrap());
    let answer = |attachments: &str| {
        let header = [("Gonets-Attachments", attachments)];
        http(g, Some("FNS"), "POST", &respond, &header, b"{}")
    };
    let theirs = answer(&reference);
    assert_eq!(
        (theirs.status, theirs.problem_code()),
        (404, "NOT_FOUND".into())
    );
    let extract = b"the extract, signed".to_vec();
    let own = upload_whole(g, "FNS", &extract);
    assert_eq!(answer(&own).status, 200);
    let got = fetch_one(g, "MFC", "answers/MFC");
    let own_digest = own.split(':').next().unwrap();
    assert_eq!(got["attachments"][0]["digest"], own_digest, "{got}");
    let path = format!("/v1/attachments/{own_digest}");
    let read = http(g, Some("MFC"), "GET", &path, &[], b"");
    assert!(read.body.as_bytes() == extract, "{}", read.head);
}

/// `who` uploads `bytes` (at most one chunk) for EGRUL over HTTP; its
/// `DIGEST:SIZE`.
fn upload_whole(g: SocketAddr, who: &str, bytes: &[u8]) -> String {
    let begin = format!("/v1/kinds/{EGRUL}/attachments");
    let size = format!("{{\"size_bytes\": {}}}", bytes.len());
    let begun = http(g, Some(who), "POST", &begin, &[], size.as_bytes());
    assert_eq!(begun.status, 201, "{}", begun.body);
    let upload = begun.json()["upload"].as_str().unwrap().to_string();
    let crc = format!("{:08x}", crc32c::crc32c(bytes));
    let path = format!("/v1/uploads/{upload}/chunks?offset=0");
    let chunk = http(
        g,
        Some(who),
        "POST",
        &path,
        &[("Gonets-Chunk-Crc32c", &crc)],
        bytes,
    );
    assert_eq!(chunk.status, 200, "{}", chunk.body);
    let digest = blake3::hash(bytes).to_hex().to_string();
    let finish = format!("/v1/uploads/{upload}/finish");
    let body = format!("{{\"digest\": \"{digest}\"}}");
    let finished = http(g, Some(who), "POST", &finish, &[], body.as_bytes());
    assert_eq!(finished.status, 200, "{}", finished.body);
    format!("{digest}:{}", bytes.len())
}

#[test]
fn given_a_realtime_call_when_the_provider_answers_over_http_then_the_caller_gets_it() {
    let server = gateway_server(Mode::DevToken);
    let g = server.gateway_addr();
    let provider = std::thread::spawn(move || {
        let request = fetch_one(g, "FNS", &format!("requests/{INN}"));
        let id = request["id"].as_str().unwrap().to_string();
        let path = format!("/v1/requests/{id}/response");
        assert_eq!(
            http(g, Some("FNS"), "POST", &path, &[], b"{\"inn\":\"770\"}").status,
            200
        );
    });
    let call = http(
        g,
        Some("MFC"),
        "POST",
        &format!("/v1/kinds/{INN}/call"),
        &[],
        b"{\"p\":1}",
    );
    provider.join().expect("the provider thread");
    assert_eq!(call.status, 200, "{}", call.body);
    assert_eq!(
        base64_decode(call.json()["payload_base64"].as_str().unwrap()),
        b"{\"inn\":\"770\"}"
    );
    // Nobody answers this one: 504 with the stable code, within the kind's budget.
    let started = std::time::Instant::now();
    let late = http(
        g,
        Some("MFC"),
        "POST",
        &format!("/v1/kinds/{INN}/call"),
        &[],
        b"{}",
    );
    assert_eq!(
        (late.status, late.problem_code()),
        (504, "DEADLINE_EXCEEDED".into())
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn given_bad_input_when_sent_then_each_gets_its_status_and_a_problem_with_the_stable_code() {
    let server = gateway_server(Mode::DevToken);
    let g = server.gateway_addr();
    let send = format!("/v1/kinds/{EGRUL}/requests");
    let cases: Vec<(Http, u16, &str)> = vec![
        (
            http(g, None, "POST", &send, &[], b"x"),
            401,
            "UNAUTHENTICATED",
        ),
        (
            http(
                g,
                Some("MFC"),
                "POST",
                "/v1/kinds/urn:nope/requests",
                &[],
                b"x",
            ),
            404,
            "UNKNOWN_DATA_KIND",
        ),
        (
            http(g, Some("OPERATOR"), "POST", &send, &[], b"x"),
            403,
            "NOT_AUTHORIZED",
        ),
        (
            http(
                g,
                Some("MFC"),
                "GET",
                "/v1/messages/not-a-uuid/status",
                &[],
                b"",
            ),
            400,
            "MALFORMED",
        ),
        (
            http(g, Some("MFC"), "GET", &send, &[], b""),
            405,
            "MALFORMED",
        ),
        (
            http(g, Some("MFC"), "GET", "/v2/anything", &[], b""),
            404,
            "NOT_FOUND",
        ),
        (
            http(
                g,
                Some("MFC"),
                "POST",
                &send,
                &[("Gonets-State-Secret", "true")],
                b"x",
            ),
            403,
            "STATE_SECRET",
        ),
        (
            http(
                g,
                Some("MFC"),
                "POST",
                &send,
                &[("Gonets-Test", "maybe")],
                b"x",
            ),
            400,
            "MALFORMED",
        ),
        (
            http(
                g,
                Some("MFC"),
                "GET",
                "/v1/queues/answers/MFC/messages?max=0",
                &[],
                b"",
            ),
            400,
            "MALFORMED",
        ),
        (
            http(
                g,
                Some("MFC"),
                "GET",
                "/v1/queues/answers/FNS/messages",
                &[],
                b"",
            ),
            403,
            "NOT_AUTHORIZED",
        ),
        (
            http(
                g,
                Some("MFC"),
                "POST",
                &send,
                &[("Gonets-Signature", "k:!!")],
                b"x",
            ),
            400,
            "MALFORMED",
        ),
        (
            http(
                g,
                Some("FNS"),
                "POST",
                "/v1/requests/01a23d17-75f7-7001-933b-b6ea00000001/refusal",
                &[],
                b"{\"code\":\"NOPE\",\"reason\":\"r\"}",
            ),
            400,
            "MALFORMED",
        ),
    ];
    for (i, (r, status, code)) in cases.iter().enumerate() {
        assert_eq!(
            (r.status, r.problem_code().as_str()),
            (*status, *code),
            "case {i}: {}",
            r.body
        );
    }
    assert!(cases[0]
        .0
        .header("www-authenticate")
        .unwrap()
        .starts_with("basic"));
    assert_eq!(cases[4].0.header("allow").as_deref(), Some("post"));
    // A body larger than the gateway reads is refused by its declared length.
    let mut stream = TcpStream::connect_timeout(&g, HTTP_WAIT).unwrap();
    stream.set_read_timeout(Some(HTTP_WAIT)).unwrap();
    let head = format!(
        "POST {send} HTTP/1.1\r\nHost: g\r\nConnection: close\r\nAuthorization: {}\r\nContent-Length: 4000000000\r\n\r\n",
        basic("MFC")
    );
    stream.write_all(head.as_bytes()).unwrap();
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw);
    assert!(
        text.starts_with("HTTP/1.1 413") && text.contains("TOO_LARGE"),
        "{text}"
    );
    // Nothing of it was stored: FNS's queue is empty.
    let stats = http(
        g,
        Some("FNS"),
        "GET",
        &format!("/v1/queues/requests/{EGRUL}/stats"),
        &[],
        b"",
    );
    assert_eq!(stats.json()["depth"], 0, "{}", stats.body);
}

#[test]
fn given_mutual_tls_when_a_participant_sends_then_its_certificate_names_it() {
    let server = gateway_server(Mode::Tls);
    let mut config = (*raw_tls_config(&server.certs_dir(), "MFC")).clone();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let tcp = TcpStream::connect_timeout(&server.gateway_addr(), HTTP_WAIT).unwrap();
    tcp.set_read_timeout(Some(HTTP_WAIT)).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let path = format!("/v1/kinds/{EGRUL}/requests");
    let r = exchange(&mut tls, "POST", &path, &[], b"{}");
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(r.json()["receipt"]["receipt"]["sender"], "MFC");
    // Plain HTTP to a TLS gateway gets no answer that serves it.
    let plain = std::panic::catch_unwind(|| {
        http(
            server.gateway_addr(),
            Some("MFC"),
            "POST",
            &path,
            &[],
            b"{}",
        )
    });
    assert!(plain.map_or(true, |r| r.status != 202));
}

#[test]
fn given_the_python_example_when_run_against_a_hub_then_it_sends_fetches_and_answers() {
    let Some(python) = python() else {
        return;
    };
    let server = gateway_server(Mode::DevToken);
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/http/gonets_http.py");
    let child = Command::new(python)
        .arg(&script)
        .env(
            "GONETS_GATEWAY",
            format!("http://{}", server.gateway_addr()),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the Python example");
    let out = wait_output(child, Duration::from_secs(120), "the Python example");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("MFC got response {\"name\": \"PAO Sberbank\"}"),
        "{stdout}"
    );
    assert!(stdout.contains("'answer_acked'"), "{stdout}");
}

/// `python3`, or `None` (skipped) outside CI; in CI (`GONETS_CI`) it must be there.
fn python() -> Option<PathBuf> {
    tool("python3", "GONETS_PYTHON")
}

fn tool(name: &str, env: &str) -> Option<PathBuf> {
    let path = std::env::var_os(env)
        .map(PathBuf::from)
        .unwrap_or_else(|| name.into());
    let found = Command::new(&path)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    match (found, std::env::var_os("GONETS_CI").is_some()) {
        (true, _) => Some(path),
        (false, true) => panic!("{name} is missing ({env} or PATH); .ci/run installs it"),
        (false, false) => {
            eprintln!("skipped: {name} not found ({env} or PATH)");
            None
        }
    }
}

#[test]
fn given_the_served_contract_when_schemathesis_runs_every_check_then_none_fails() {
    let Some(st) = tool("schemathesis", "GONETS_SCHEMATHESIS") else {
        return;
    };
    let server = gateway_server(Mode::DevToken);
    let url = format!("http://{}/v1/openapi.json", server.gateway_addr());
    for who in ["MFC", "FNS"] {
        let child = Command::new(&st)
            .args([
                "run",
                &url,
                "--checks",
                "all",
                "--max-examples",
                "25",
                "--seed",
                "1",
            ])
            // `stream` answers an endless event stream when its inputs are
            // good, which no request timeout can tell from a hang: its
            // refusals and its events are checked by the stream test.
            .args(["--exclude-operation-id", "stream"])
            .args(["--request-timeout", "10", "--header"])
            .arg(format!("Authorization: {}", basic(who)))
            // Its report directory (.schemathesis/) goes to the server's temporary one.
            .current_dir(server.dir())
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run schemathesis");
        let out = wait_output(child, Duration::from_secs(600), "schemathesis");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "schemathesis as {who} found failures:\n{stdout}\n{}\n---- server log ----\n{}",
            String::from_utf8_lossy(&out.stderr),
            server.log()
        );
        assert!(stdout.contains("passed"), "{stdout}");
    }
}

/// An open event stream: the raw connection and what it has sent so far.
struct EventStream {
    stream: TcpStream,
    seen: String,
}

impl EventStream {
    /// `GET path` as `who`; the response head must say 200 and SSE.
    fn open(addr: SocketAddr, who: &str, path: &str) -> EventStream {
        let mut stream = TcpStream::connect_timeout(&addr, HTTP_WAIT).expect("connect");
        stream.set_read_timeout(Some(HTTP_WAIT)).unwrap();
        let head = format!(
            "GET {path} HTTP/1.1\r\nHost: gonets\r\nAuthorization: {}\r\nAccept: text/event-stream\r\n\r\n",
            basic(who)
        );
        stream.write_all(head.as_bytes()).expect("send the head");
        let mut s = EventStream {
            stream,
            seen: String::new(),
        };
        s.read_until(|seen| seen.contains("\r\n\r\n"));
        assert!(s.seen.starts_with("HTTP/1.1 200"), "{}", s.seen);
        assert!(s.seen.contains("text/event-stream"), "{}", s.seen);
        s
    }

    /// Reads until `done` holds of what was seen (bounded by the read timeout).
    fn read_until(&mut self, done: impl Fn(&str) -> bool) {
        let mut buf = [0u8; 4096];
        // Bounded: each read waits at most the read timeout.
        while !done(&self.seen) {
            let n = self.stream.read(&mut buf).expect("read the stream");
            assert!(n > 0, "the stream ended: {}", self.seen);
            self.seen
                .push_str(std::str::from_utf8(&buf[..n]).expect("UTF-8"));
        }
    }

    /// The data of every `event` of this name seen so far, parsed.
    fn events(&self, event: &str) -> Vec<Value> {
        let tag = format!("event: {event}\ndata: ");
        self.seen
            .match_indices(&tag)
            .map(|(at, _)| {
                let line = self.seen[at + tag.len()..].lines().next().unwrap();
                serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"))
            })
            .collect()
    }

    /// Waits for the `n`th `event: message`.
    fn messages(&mut self, n: usize) -> Vec<Value> {
        self.read_until(|seen| seen.matches("event: message\n").count() >= n);
        self.events("message")
    }
}

#[test]
fn given_a_stream_with_two_credits_when_messages_wait_then_two_are_pushed_an_ack_brings_the_next_and_a_closed_stream_gives_the_rest_back(
) {
    let server = gateway_server(Mode::DevToken);
    let g = server.gateway_addr();
    let send = format!("/v1/kinds/{EGRUL}/requests");
    for i in 0..3 {
        let body = format!("{{\"n\": {i}}}");
        let sent = http(g, Some("MFC"), "POST", &send, &[], body.as_bytes());
        assert_eq!(sent.status, 202, "{}", sent.body);
    }
    let queue = format!("/v1/queues/requests/{EGRUL}");
    let mut stream = EventStream::open(g, "FNS", &format!("{queue}/stream?credits=2"));
    let first_two = stream.messages(2);
    let lease = stream.events("open")[0]["lease"]
        .as_u64()
        .expect("the lease");
    assert_eq!(stream.events("open")[0]["credits"], 2);
    assert_eq!(first_two[0]["lease"], lease);
    assert_eq!(first_two[0]["type"], "request");
    // The window is full: the third waits until one is settled.
    stream
        .stream
        .set_read_timeout(Some(Duration::from_millis(1500)))
        .unwrap();
    let mut buf = [0u8; 512];
    let quiet = stream.stream.read(&mut buf);
    assert!(quiet.is_err(), "nothing pushed past the window: {quiet:?}");
    stream.stream.set_read_timeout(Some(HTTP_WAIT)).unwrap();
    // Only the stream's own participant may name its lease.
    let id = first_two[0]["id"].as_str().unwrap();
    let ack = format!("{queue}/messages/{id}/ack?lease={lease}");
    let stranger = http(g, Some("MFC"), "POST", &ack, &[], b"");
    assert_eq!(stranger.problem_code(), "NOT_FOUND");
    let other = format!("{queue}/messages/{id}/ack?lease={}", lease + 1000);
    assert_eq!(http(g, Some("FNS"), "POST", &other, &[], b"").status, 404);
    assert_eq!(http(g, Some("FNS"), "POST", &ack, &[], b"").status, 200);
    let all = stream.messages(3);
    let third = all[2]["id"].as_str().unwrap().to_string();
    assert!(all[..2].iter().all(|m| m["id"] != third.as_str()));
    // add_credits: past the window they change nothing; bad ones are refused.
    let credits = |l: u64, n: &str| format!("{queue}/stream/{l}/credits?credits={n}");
    assert_eq!(
        http(g, Some("FNS"), "POST", &credits(lease, "5"), &[], b"").status,
        200
    );
    let unknown = http(
        g,
        Some("FNS"),
        "POST",
        &credits(lease + 1000, "1"),
        &[],
        b"",
    );
    assert_eq!(unknown.problem_code(), "NOT_FOUND");
    let zero = http(g, Some("FNS"), "POST", &credits(lease, "0"), &[], b"");
    assert_eq!(zero.problem_code(), "MALFORMED");
    // A stream of a queue the caller may not read, and a bad window.
    let refused = http(g, Some("MFC"), "GET", &format!("{queue}/stream"), &[], b"");
    assert_eq!(refused.problem_code(), "NOT_AUTHORIZED");
    let bad = http(
        g,
        Some("FNS"),
        "GET",
        &format!("{queue}/stream?credits=0"),
        &[],
        b"",
    );
    assert_eq!(bad.problem_code(), "MALFORMED");
    // The client goes with two messages unsettled: both come back.
    drop(stream);
    let again = fetch_one(g, "FNS", &format!("requests/{EGRUL}"));
    assert_eq!(again["delivery_count"], 2, "{again}");
}
