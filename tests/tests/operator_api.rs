//! The operator API of `gonets serve` (docs/operations.md, "Operator
//! API"), black box: a server child process with the API on a free
//! loopback port, a little traffic, then every endpoint read over plain
//! HTTP/1.1; `/metrics` checked with `promtool check metrics` (Debian's
//! `prometheus` package, installed by `.ci/run`); the OpenAPI file checked
//! against the served routes.
//!
//! Needs the `gonets` binary (`cargo build --release -p gonets --bin gonets`).

use gonets_engine::runtime::stats::{error_code_index, ERROR_CODES};
use gonets_proto::ErrorCode;
use gonets_tests::net::{
    free_port, gonets_bin, promtool_check_metrics, raw_tls_config, run_local, wait_output,
    ServerOptions, ServerProcess,
};
use gonets_types::{HubError, MessageId, NewRequest};
use serde_json::Value;
use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

const EGRUL: &str = "urn:gonets:fns:egrul-extract:1";
/// Bound of one HTTP exchange.
const HTTP_WAIT: Duration = Duration::from_secs(30);

/// One HTTP response: status, `Content-Type`, body.
struct Http {
    status: u16,
    content_type: String,
    body: String,
}

impl Http {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }
}

/// Sends `method path` with `Connection: close` and reads the whole response.
fn request(addr: SocketAddr, method: &str, path: &str) -> Http {
    let mut stream = TcpStream::connect_timeout(&addr, HTTP_WAIT).expect("connect to the API");
    stream.set_read_timeout(Some(HTTP_WAIT)).unwrap();
    let head = format!("{method} {path} HTTP/1.1\r\nHost: gonets\r\nConnection: close\r\n\r\n");
    stream.write_all(head.as_bytes()).expect("send the request");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read the response");
    parse_response(raw)
}

/// Status, `Content-Type` and body of a whole HTTP/1.1 response.
fn parse_response(raw: Vec<u8>) -> Http {
    let text = String::from_utf8(raw).expect("a UTF-8 response");
    let (head, body) = text.split_once("\r\n\r\n").expect("a head and a body");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status");
    let content_type = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-type: ")
                .map(str::to_string)
        })
        .unwrap_or_default();
    Http {
        status,
        content_type,
        body: body.to_string(),
    }
}

/// The head of a response whose body streams (`/events`).
fn stream_head(addr: SocketAddr, path: &str) -> String {
    let mut stream = TcpStream::connect_timeout(&addr, HTTP_WAIT).expect("connect to the API");
    stream.set_read_timeout(Some(HTTP_WAIT)).unwrap();
    let head = format!("GET {path} HTTP/1.1\r\nHost: gonets\r\n\r\n");
    stream.write_all(head.as_bytes()).expect("send the request");
    let mut raw = Vec::new();
    let mut byte = [0u8; 1];
    // Bounded by the read timeout and the head's end.
    while !raw.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).expect("read the head");
        raw.push(byte[0]);
    }
    String::from_utf8(raw).expect("a UTF-8 head")
}

fn get(addr: SocketAddr, path: &str) -> Http {
    request(addr, "GET", path)
}

/// A server with the operator API, and the ids of 3 requests MFC sent
/// (one more send, to an unknown kind, was refused).
fn server_with_traffic() -> (ServerProcess, Vec<MessageId>) {
    let server = ServerProcess::start(ServerOptions {
        operator: true,
        ..ServerOptions::dev_token()
    });
    let ep = server.endpoint();
    let ids = run_local(move || async move {
        let mfc = ep.connect("MFC").await;
        let mut ids = Vec::new();
        for i in 0..3 {
            let accepted = mfc
                .send_request(NewRequest::new(EGRUL, format!("request {i}")))
                .await
                .expect("send_request");
            ids.push(accepted.id);
        }
        let refused = mfc.send_request(NewRequest::new("urn:none", "x")).await;
        assert!(refused.is_err(), "an unknown kind is refused");
        ids
    });
    (server, ids)
}

#[test]
fn given_a_hub_with_traffic_when_every_endpoint_is_read_then_each_answers_with_json() {
    let (server, ids) = server_with_traffic();
    let api = server.operator_addr();

    let health = get(api, "/health");
    assert_eq!(
        (health.status, health.json()["status"].clone()),
        (200, "live".into())
    );
    assert!(
        health.content_type.starts_with("application/json"),
        "{}",
        health.content_type
    );

    let ready = get(api, "/ready").json();
    assert_eq!(ready["status"], "ready", "{ready}");
    assert_eq!(ready["shards"].as_array().unwrap().len(), 2, "{ready}");

    let queues = get(api, "/queues").json();
    let egrul = queues["queues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["queue"] == format!("requests/{EGRUL}"))
        .unwrap_or_else(|| panic!("no EGRUL queue in {queues}"));
    assert_eq!(egrul["depth"], 3, "{egrul}");
    assert_eq!(egrul["in_flight"], 0, "{egrul}");
    assert!(queues["queues"]
        .as_array()
        .unwrap()
        .iter()
        .any(|q| q["queue"] == "answers/MFC"));

    let history = get(api, &format!("/messages/{}", ids[0]));
    assert_eq!(history.status, 200, "{}", history.body);
    let history = history.json();
    assert_eq!(history["request_id"], ids[0].to_string());
    assert_eq!(history["consumer"], "MFC");
    assert_eq!(history["events"][0]["event"], "accepted", "{history}");

    let info = get(api, "/info").json();
    assert_eq!(info["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(info["shards"], 2);
    assert_eq!(info["data_dir"], server.data_dir().display().to_string());
    assert!(
        info["logs"][0]["messages"]["disk_bytes"].as_u64().unwrap() > 0,
        "{info}"
    );
    assert!(info["cores"]["available"].as_u64().unwrap() >= 1, "{info}");
}

#[test]
fn given_traffic_when_metrics_are_read_then_they_count_it_and_pass_promtool() {
    let (server, _) = server_with_traffic();
    let metrics = get(server.operator_addr(), "/metrics");
    assert_eq!(metrics.status, 200);
    assert!(
        metrics
            .content_type
            .starts_with("text/plain; version=0.0.4"),
        "{}",
        metrics.content_type
    );
    let text = metrics.body;
    let accepted: u64 = samples(&text, "gonets_requests_accepted_total{").sum();
    assert_eq!(accepted, 3, "{text}");
    let refused: u64 = samples(&text, "gonets_replies_total{")
        .zip(lines(&text, "gonets_replies_total{"))
        .filter(|(_, l)| {
            l.contains("reply=\"accepted\"") && l.contains("code=\"UNKNOWN_DATA_KIND\"")
        })
        .map(|(n, _)| n)
        .sum();
    assert_eq!(refused, 1, "{text}");
    let depth: u64 = lines(&text, "gonets_queue_depth_messages{")
        .filter(|l| l.contains(EGRUL))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    assert_eq!(depth, 3, "{text}");
    for family in [
        "gonets_log_commits_total",
        "gonets_log_fdatasyncs_total",
        "gonets_log_disk_bytes",
        "gonets_queue_oldest_age_seconds",
        "gonets_queue_in_flight_messages",
        "gonets_requests_dead_lettered_total",
        "gonets_redeliveries_total",
        "gonets_shard_records_since_snapshot",
        "gonets_log_commit_latency_seconds",
        "gonets_log_commit_batch_bytes",
        "gonets_log_roll_latency_seconds",
        "gonets_shard_lane_busy_seconds_total",
        "gonets_shard_lane_runs_total",
        "process_resident_memory_bytes",
        "gonets_attachment_write_paced_seconds_total",
    ] {
        assert!(
            text.contains(&format!("# TYPE {family} ")),
            "no {family} in\n{text}"
        );
    }
    // The driver runs in the rt lane: a shard that took requests has spent
    // time there.
    let rt_busy: f64 = text
        .lines()
        .filter(|l| {
            l.starts_with("gonets_shard_lane_busy_seconds_total{") && l.contains("lane=\"rt\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(rt_busy > 0.0, "no rt lane time in\n{text}");
    // The three requests were committed: the message log's commit
    // histograms counted at least one batch, each at least a 4 KiB block.
    let commits: u64 = lines(&text, "gonets_log_commit_batch_bytes_count{")
        .filter(|l| l.contains("log=\"messages\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    assert!(commits >= 1, "{text}");
    // (bound, cumulative count) of the message logs' size buckets.
    let buckets: Vec<(f64, u64)> = lines(&text, "gonets_log_commit_batch_bytes_bucket{")
        .filter(|l| l.contains("log=\"messages\""))
        .filter_map(|l| {
            let le = l.split("le=\"").nth(1)?.split('"').next()?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((le, l.rsplit(' ').next()?.parse().ok()?))
        })
        .collect();
    assert!(buckets.len() > 10, "{text}");
    let below_a_block: u64 = buckets
        .iter()
        .filter(|(le, _)| *le < 4096.0)
        .map(|(_, n)| n)
        .sum();
    assert_eq!(below_a_block, 0, "no batch under one block: {text}");
    let bounded: u64 = buckets
        .iter()
        .filter(|(le, _)| *le == 1_048_576.0)
        .map(|(_, n)| n)
        .sum();
    assert_eq!(bounded, commits, "every batch within 1 MiB: {text}");
    promtool_check_metrics(&text);
}

fn lines<'a>(text: &'a str, prefix: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    text.lines().filter(move |l| l.starts_with(prefix))
}

fn samples<'a>(text: &'a str, prefix: &'a str) -> impl Iterator<Item = u64> + 'a {
    lines(text, prefix).map(|l| {
        l.rsplit(' ')
            .next()
            .and_then(|v| v.parse().ok())
            .expect("a value")
    })
}

#[test]
fn given_bad_requests_when_sent_then_each_gets_a_json_error_with_its_status() {
    let (server, _) = server_with_traffic();
    let api = server.operator_addr();
    let unknown_id = MessageId::new(1_700_000_000_000, 1, 424_242).to_string();
    let cases = [
        (
            "GET",
            "/messages/not-a-uuid".to_string(),
            400,
            "bad_request",
        ),
        ("GET", format!("/messages/{unknown_id}"), 404, "not_found"),
        ("GET", "/no/such/path".to_string(), 404, "not_found"),
        ("GET", "/messages/".to_string(), 404, "not_found"),
        ("POST", "/health".to_string(), 405, "method_not_allowed"),
        ("DELETE", "/queues".to_string(), 405, "method_not_allowed"),
    ];
    for (method, path, status, code) in cases {
        let got = request(api, method, &path);
        assert_eq!(got.status, status, "{method} {path}: {}", got.body);
        let body = got.json();
        assert_eq!(body["error"]["status"], status, "{method} {path}: {body}");
        assert_eq!(body["error"]["code"], code, "{method} {path}: {body}");
        assert!(body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
    }
    // A garbled request line is hyper's to refuse; the API still answers next.
    let mut raw = TcpStream::connect(api).unwrap();
    raw.write_all(b"\x00\x01garbage\r\n\r\n").unwrap();
    assert_eq!(get(api, "/health").status, 200);
}

/// The `paths:` of docs/operator-api.yaml (two-space-indented keys).
fn openapi_paths() -> BTreeSet<String> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/operator-api.yaml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let section = text.split_once("\npaths:\n").expect("a paths: section").1;
    section
        .lines()
        .take_while(|l| l.is_empty() || l.starts_with(' '))
        .filter_map(|l| l.strip_prefix("  ")?.strip_suffix(':'))
        .filter(|k| k.starts_with('/'))
        .map(str::to_string)
        .collect()
}

#[test]
fn given_the_openapi_file_when_compared_with_the_routes_then_each_served_path_is_in_it_and_back() {
    let documented = openapi_paths();
    let served: BTreeSet<String> = gonets_operator::ROUTES
        .iter()
        .map(|r| r.to_string())
        .collect();
    assert_eq!(
        documented, served,
        "docs/operator-api.yaml and gonets_operator::ROUTES differ"
    );
    // And the running server serves each documented path (not "no such path").
    let server = ServerProcess::start(ServerOptions {
        operator: true,
        ..ServerOptions::dev_token()
    });
    let some_id = MessageId::new(1_700_000_000_000, 0, 1).to_string();
    for path in &documented {
        if path == "/events" {
            // A stream that does not end: its head only.
            let head = stream_head(server.operator_addr(), path);
            assert!(head.starts_with("HTTP/1.1 200"), "{path}: {head}");
            assert!(
                head.to_ascii_lowercase().contains("text/event-stream"),
                "{head}"
            );
            continue;
        }
        let got = get(server.operator_addr(), &path.replace("{id}", &some_id));
        assert!(
            !got.body.contains("no such path"),
            "{path} is documented but not served: {}",
            got.body
        );
        assert!(
            got.status == 200 || got.status == 404,
            "{path}: {} {}",
            got.status,
            got.body
        );
    }
}

#[test]
fn given_an_operator_address_off_loopback_without_tls_when_serve_starts_then_it_refuses_and_says_why(
) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("gonets.toml");
    let text = format!(
        "data_dir = \"data\"\nshards = 1\nlisten = \"127.0.0.1:{}\"\nsecurity = \"dev-token\"\n",
        free_port()
    );
    std::fs::write(&config, text).unwrap();
    let child = Command::new(gonets_bin())
        .args(["serve", "--operator-listen", "0.0.0.0:0", "--config"])
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn gonets serve");
    let out = wait_output(
        child,
        HTTP_WAIT,
        "gonets serve with the operator API off loopback",
    );
    let log = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        !out.status.success(),
        "served the operator API off loopback:\n{log}"
    );
    assert!(log.contains("operator certificate"), "{log}");
    assert!(
        !dir.path().join("data").join("shard-0").exists(),
        "refused before the hub started"
    );
}

#[test]
fn given_every_hub_error_when_counted_then_its_metric_code_is_the_wire_name() {
    let samples = [
        HubError::Unauthenticated,
        HubError::NotAuthorized("x".into()),
        HubError::UnknownDataKind("x".into()),
        HubError::InvalidFormat {
            path: "/".into(),
            reason: "x".into(),
        },
        HubError::TooLarge {
            size_bytes: 2,
            size_bytes_max: 1,
        },
        HubError::TextTooLarge {
            field: "reason".into(),
            size_bytes: 2,
            size_bytes_max: 1,
        },
        HubError::StateSecret,
        HubError::QuotaExceeded,
        HubError::StorageFull,
        HubError::DeadlineExceeded,
        HubError::AlreadyAnswered(MessageId::new(1, 0, 1)),
        HubError::Duplicate {
            original: MessageId::new(1, 0, 1),
        },
        HubError::NotFound,
        HubError::Malformed("x".into()),
        HubError::Unavailable("x".into()),
    ];
    for e in &samples {
        assert_eq!(
            ERROR_CODES[error_code_index(e)],
            ErrorCode::of(e).name(),
            "{e:?}"
        );
    }
}

/// GET `path` over TLS presenting `participant`'s development certificate.
fn get_tls(server: &ServerProcess, participant: &str, path: &str) -> Http {
    let mut config = (*raw_tls_config(&server.certs_dir(), participant)).clone();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let tcp = TcpStream::connect_timeout(&server.operator_addr(), HTTP_WAIT).unwrap();
    tcp.set_read_timeout(Some(HTTP_WAIT)).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let head = format!("GET {path} HTTP/1.1\r\nHost: gonets\r\nConnection: close\r\n\r\n");
    tls.write_all(head.as_bytes()).expect("send over TLS");
    let mut raw = Vec::new();
    // The server may end the TLS session without close_notify after the body.
    if let Err(e) = tls.read_to_end(&mut raw) {
        assert!(!raw.is_empty(), "read over TLS: {e}");
    }
    parse_response(raw)
}

#[test]
fn given_the_api_off_loopback_when_clients_connect_then_only_operator_certificates_are_served() {
    let server = ServerProcess::start(ServerOptions {
        operator: true,
        operator_ip: "0.0.0.0".into(),
        ..ServerOptions::default()
    });
    let health = get_tls(&server, "OPERATOR", "/health");
    assert_eq!(health.status, 200, "{}", health.body);
    let queues = get_tls(&server, "OPERATOR", "/queues");
    assert!(queues.json()["queues"].is_array());
    let refused = get_tls(&server, "MFC", "/health");
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert_eq!(refused.json()["error"]["code"], "forbidden");
    assert!(refused.body.contains("not an operator"), "{}", refused.body);
    // Plain HTTP to the TLS port gets no HTTP answer.
    let mut plain = TcpStream::connect(server.operator_addr()).unwrap();
    plain.set_read_timeout(Some(HTTP_WAIT)).unwrap();
    plain
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut raw = Vec::new();
    let _ = plain.read_to_end(&mut raw);
    assert!(
        !String::from_utf8_lossy(&raw).contains("live"),
        "served plain HTTP off loopback"
    );
}
