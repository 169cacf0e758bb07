//! Provider monitoring, failure notices and SLA reports (issue 17, items
//! 3–4; docs/operations.md), black box: `gonets serve` with the operator
//! API and short monitor bounds, traffic from Rust clients, then one
//! provider stops. Through the API: its kind turns unreachable, a notice
//! reaches the operator's event stream (`/events`) and the waiting
//! consumer (`status`), the requests it sent are kept and delivered when
//! the provider comes back, and the SLA report counts what was sent —
//! from `/sla` and, after a restart, from `gonets report sla`.
//!
//! Needs the `gonets` binary (`cargo build --release -p gonets --bin gonets`).

use futures_lite::future;
use gonets_tests::net::{
    fetch_n, gonets_bin, promtool_check_metrics, run_local, wait_output, ServerOptions,
    ServerProcess,
};
use gonets_types::{DataKindId, MessageId, NewRequest, ParticipantId, QueueId, RefusalCode};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const EGRUL: &str = "urn:gonets:fns:egrul-extract:1";
const PASSPORT: &str = "urn:gonets:mvd:passport-validity:1";
/// Short bounds, so that the test runs in seconds: a provider is
/// unreachable after 1 s without a read while requests wait.
const MONITOR: &str =
    "[monitor]\nprovider_unreachable_after_ms = 1000\ninterval_ms = 100\nsla_flush_ms = 200\n";
/// Bound of anything the test waits for (generous: a loaded 2-core CI machine).
const WAIT: Duration = Duration::from_secs(60);

fn requests(kind: &str) -> QueueId {
    QueueId::Requests(DataKindId::new(kind))
}

/// GET `path` (`Connection: close`): status and body.
fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect_timeout(&addr, WAIT).expect("connect to the API");
    stream.set_read_timeout(Some(WAIT)).unwrap();
    let head = format!("GET {path} HTTP/1.1\r\nHost: gonets\r\nConnection: close\r\n\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).expect("read the response");
    let (head, body) = text.split_once("\r\n\r\n").expect("a head and a body");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status");
    (status, body.to_string())
}

fn get_json(addr: SocketAddr, path: &str) -> Value {
    let (status, body) = get(addr, path);
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {body}"))
}

/// Polls `read` until `done` holds for what it returns; panics with the
/// last value after [`WAIT`].
fn wait_for(what: &str, mut read: impl FnMut() -> Value, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + WAIT;
    // Bounded by the deadline.
    loop {
        let value = read();
        if done(&value) {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "{what} within {WAIT:?}; last: {value}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The `/events` stream, read on its own thread: each event's `data:` JSON.
fn event_stream(addr: SocketAddr) -> mpsc::Receiver<Value> {
    let mut stream = TcpStream::connect_timeout(&addr, WAIT).expect("connect to /events");
    stream
        .write_all(b"GET /events HTTP/1.1\r\nHost: gonets\r\n\r\n")
        .unwrap();
    let (sender, events) = mpsc::channel();
    std::thread::spawn(move || {
        // Ends when the server closes the stream or the test drops the receiver.
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { return };
            if let Some(data) = line.strip_prefix("data: ") {
                let event = serde_json::from_str(data).expect("an event's data is JSON");
                if sender.send(event).is_err() {
                    return;
                }
            }
        }
    });
    events
}

/// The next event of `kind` about `data_kind` (others are skipped).
fn next_event(events: &mpsc::Receiver<Value>, kind: &str, data_kind: &str) -> Value {
    let deadline = Instant::now() + WAIT;
    // Bounded by the deadline.
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let event = events
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("no {kind} event for {data_kind} within {WAIT:?}"));
        if event["type"] == kind && event["kind"] == data_kind {
            return event;
        }
    }
}

fn provider_row(providers: &Value, kind: &str) -> Value {
    providers["providers"]
        .as_array()
        .expect("a list")
        .iter()
        .find(|r| r["kind"] == kind)
        .unwrap_or_else(|| panic!("no row for {kind} in {providers}"))
        .clone()
}

fn sla_row(report: &Value, kind: &str) -> Value {
    report["kinds"]
        .as_array()
        .expect("a list")
        .iter()
        .find(|r| r["kind"] == kind)
        .cloned()
        .unwrap_or(Value::Null)
}

/// What the traffic sent: the EGRUL requests left waiting, and whether
/// the real-time call was answered within its 2 s budget (on a loaded
/// machine it may not be; the report then counts it otherwise).
struct Sent {
    waiting: Vec<MessageId>,
    call_answered: bool,
}

/// MFC sends 3 live and 1 test EGRUL requests, FNS refuses the first
/// (`NO_DATA`) and answers the rest; MFC calls the real-time PASSPORT kind,
/// MVD answers; then FNS stops (disconnects) and MFC sends 2 more.
fn traffic(server: &ServerProcess) -> Sent {
    let ep = server.endpoint();
    run_local(move || async move {
        let mfc = ep.connect("MFC").await;
        let fns = ep.connect("FNS").await;
        let mvd = ep.connect("MVD").await;
        for i in 0..3 {
            mfc.send_request(NewRequest::new(EGRUL, format!("live {i}")))
                .await
                .expect("send");
        }
        let test = NewRequest {
            test: true,
            ..NewRequest::new(EGRUL, "test")
        };
        mfc.send_request(test).await.expect("send a test request");
        let got = fetch_n(&fns, &requests(EGRUL), 4, WAIT).await;
        fns.send_refusal(got[0].id, RefusalCode::NoData, "no such company")
            .await
            .expect("refuse");
        for m in &got[1..] {
            fns.send_response(m.id, "extract").await.expect("respond");
        }
        let answer_rt = async {
            let m = fetch_n(&mvd, &requests(PASSPORT), 1, WAIT).await.remove(0);
            // Refused DEADLINE_EXCEEDED if the budget ran out meanwhile.
            let _ = mvd.send_response(m.id, "valid").await;
        };
        let call = mfc.call(NewRequest::new(PASSPORT, "4510 123456"));
        let (called, ()) = future::zip(call, answer_rt).await;
        let call_answered = called.is_ok();
        drop(fns); // the provider stops
        let mut waiting = Vec::new();
        for i in 0..2 {
            let accepted = mfc
                .send_request(NewRequest::new(EGRUL, format!("waits {i}")))
                .await
                .expect("send while the provider is away");
            waiting.push(accepted.id);
        }
        Sent {
            waiting,
            call_answered,
        }
    })
}

#[test]
fn given_traffic_when_a_provider_stops_then_it_turns_unreachable_both_sides_are_told_and_the_sla_report_counts_it(
) {
    let mut server = ServerProcess::start(ServerOptions {
        operator: true,
        sections: MONITOR.into(),
        ..ServerOptions::dev_token()
    });
    let api = server.operator_addr();
    let events = event_stream(api);
    let sent = traffic(&server);

    // The provider's state turns unreachable; the other kinds stay reachable.
    let providers = wait_for(
        "EGRUL unreachable on /providers",
        || get_json(api, "/providers"),
        |p| provider_row(p, EGRUL)["state"] == "unreachable",
    );
    let egrul = provider_row(&providers, EGRUL);
    assert_eq!(egrul["provider"], "FNS", "{egrul}");
    assert_eq!(egrul["depth"], 2, "{egrul}");
    assert_eq!(egrul["readers"], 0, "{egrul}");
    assert!(egrul["last_read_ms"].as_u64().is_some(), "{egrul}");
    assert_eq!(provider_row(&providers, PASSPORT)["state"], "reachable");

    // The operator's stream says so.
    let event = next_event(&events, "provider_unreachable", EGRUL);
    assert_eq!(event["provider"], "FNS", "{event}");
    assert!(event["since_ms"].as_u64().is_some(), "{event}");

    // The waiting consumer reads a typed notice on its request.
    let ep = server.endpoint();
    let waiting = sent.waiting.clone();
    let notice = run_local(move || async move {
        let mfc = ep.connect("MFC").await;
        mfc.notice(waiting[0])
            .await
            .expect("status of a waiting request")
    })
    .expect("a notice on a request waiting on an unreachable provider");
    assert_eq!(notice.provider, ParticipantId::new("FNS"));
    assert_eq!(notice.waiting, 2);

    // /metrics shows it too.
    let (_, metrics) = get(api, "/metrics");
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("gonets_provider_unreachable{")
                && l.contains(EGRUL)
                && l.ends_with(" 1")),
        "{metrics}"
    );
    promtool_check_metrics(&metrics);

    // Nothing was dropped: the provider comes back and gets both requests.
    let ep = server.endpoint();
    let fetched: Vec<MessageId> = run_local(move || async move {
        let fns = ep.connect("FNS").await;
        let got = fetch_n(&fns, &requests(EGRUL), 2, WAIT).await;
        for m in &got {
            fns.send_response(m.id, "late but there")
                .await
                .expect("respond");
        }
        got.into_iter().map(|m| m.id).collect()
    });
    assert_eq!(fetched, sent.waiting);
    next_event(&events, "provider_recovered", EGRUL);

    // The SLA report counts what was sent (live and test apart).
    let report = wait_for(
        "/sla counting every answer",
        || get_json(api, "/sla"),
        |r| sla_row(r, EGRUL)["live"]["answered_in_time"] == 5,
    );
    check_sla(&report, sent.call_answered);
    answer_times_in_metrics(api);

    // Durable: after a clean stop and a start, the API and the command
    // read the same counts.
    server.terminate();
    server.restart();
    let answered = sent.call_answered;
    check_sla(&get_json(server.operator_addr(), "/sla"), answered);
    check_sla(&report_command(&server), answered);
}

/// /metrics holds the answer-time histogram of the five answers in time
/// to EGRUL's live requests (the SLA counts', copied), and promtool takes it.
fn answer_times_in_metrics(api: std::net::SocketAddr) {
    let (_, metrics) = get(api, "/metrics");
    let series = |suffix: &str| {
        metrics
            .lines()
            .find(|l| {
                l.starts_with(&format!("gonets_kind_answer_time_seconds_{suffix}"))
                    && l.contains(EGRUL)
                    && l.contains("traffic=\"live\"")
                    && (suffix != "bucket" || l.contains("le=\"+Inf\""))
            })
            .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
    };
    assert_eq!(series("count"), Some(5.0), "{metrics}");
    assert_eq!(series("bucket"), Some(5.0), "the +Inf bucket: {metrics}");
    assert!(series("sum").is_some_and(|s| s >= 0.0), "{metrics}");
    answer_stages_in_metrics(&metrics);
    shard_holds_in_metrics(&metrics);
    promtool_check_metrics(&metrics);
}

/// The shard's holds are exported for every kind of hold, and the rt
/// half's turns (which stepped the answers) and the bulk half's (which
/// stepped the async sends) were timed.
fn shard_holds_in_metrics(metrics: &str) {
    let total = |hold: &str, suffix: &str| -> Option<f64> {
        let values: Vec<f64> = metrics
            .lines()
            .filter(|l| {
                l.starts_with(&format!("gonets_shard_hold_seconds_{suffix}{{"))
                    && l.contains(&format!("hold=\"{hold}\""))
                    && (suffix != "bucket" || l.contains("le=\"+Inf\""))
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .collect();
        (!values.is_empty()).then(|| values.iter().sum())
    };
    for hold in ["rt_turn", "bulk_turn", "snapshot"] {
        let count = total(hold, "count").unwrap_or_else(|| panic!("no {hold} series: {metrics}"));
        assert_eq!(
            total(hold, "bucket"),
            Some(count),
            "{hold} +Inf bucket: {metrics}"
        );
        assert!(total(hold, "sum").is_some_and(|s| s >= 0.0), "{metrics}");
    }
    assert!(total("rt_turn", "count").unwrap() >= 1.0, "{metrics}");
    assert!(total("bulk_turn", "count").unwrap() >= 1.0, "{metrics}");
}

/// Every answer sent over the native port was timed at each stage of its
/// stay in the hub, once per stage, and its whole stay holds its commit.
fn answer_stages_in_metrics(metrics: &str) {
    let total = |stage: &str, suffix: &str| -> f64 {
        metrics
            .lines()
            .filter(|l| {
                l.starts_with(&format!("gonets_rt_stage_seconds_{suffix}{{"))
                    && l.contains("op=\"answer\"")
                    && l.contains(&format!("stage=\"{stage}\""))
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    let answers = total("hub", "count");
    assert!(answers >= 4.0, "FNS's answers: {metrics}");
    for stage in ["spawn", "inbox", "shard", "out"] {
        assert_eq!(total(stage, "count"), answers, "stage {stage}: {metrics}");
    }
    assert!(
        total("hub", "sum") >= total("shard", "sum"),
        "the whole stay holds the commit: {metrics}"
    );
}

fn check_sla(report: &Value, call_answered: bool) {
    let egrul = sla_row(report, EGRUL);
    assert_eq!(egrul["provider"], "FNS", "{report}");
    assert_eq!(egrul["mode"], "async", "{egrul}");
    let live = &egrul["live"];
    assert_eq!(live["requests"], 5, "{egrul}");
    assert_eq!(live["answered_in_time"], 5, "{egrul}");
    assert_eq!(live["answered_late"], 0, "{egrul}");
    assert_eq!(live["expired"], 0, "{egrul}");
    assert_eq!(live["refused"]["NO_DATA"], 1, "{egrul}");
    assert!(live["answer_time_p99_ms"].as_u64().is_some(), "{egrul}");
    assert_eq!(live["in_time_share"], 1.0, "{egrul}");
    let test = &egrul["test"];
    assert_eq!(
        (test["requests"].clone(), test["answered_in_time"].clone()),
        (1.into(), 1.into()),
        "{egrul}"
    );
    let passport = sla_row(report, PASSPORT);
    assert_eq!(passport["mode"], "realtime", "{report}");
    assert_eq!(passport["live"]["requests"], 1, "{passport}");
    assert!(
        passport["live"].get("within_2s_share").is_some(),
        "{passport}"
    );
    if call_answered {
        assert_eq!(passport["live"]["answered_in_time"], 1, "{passport}");
        assert_eq!(passport["live"]["within_2s_share"], 1.0, "{passport}");
    }
}

/// `gonets report sla --json` on the server's data directory, and its
/// table has a line for EGRUL's live traffic.
fn report_command(server: &ServerProcess) -> Value {
    let run = |extra: &[&str]| {
        let child = Command::new(gonets_bin())
            .args(["report", "sla", "--from", "2020-01-01", "--data-dir"])
            .arg(server.data_dir())
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn gonets report sla");
        let out = wait_output(child, WAIT, "gonets report sla");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("UTF-8")
    };
    let table = run(&[]);
    assert!(
        table
            .lines()
            .any(|l| l.starts_with(&format!("{EGRUL}\tFNS\tlive\t5\t5\t0\t0\tNO_DATA=1\t"))),
        "{table}"
    );
    serde_json::from_str(&run(&["--json"])).expect("JSON")
}
