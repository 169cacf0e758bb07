//! Damage in the replayed part of a shard's log, end to end: `gonets serve`
//! refuses to start and names the damage and `gonets repair`; the repair
//! sets the damaged records aside (bytes and a report in `quarantine/`);
//! the next start serves every intact request and none of the lost ones.
//!
//! Needs the `gonets` binary (built with the workspace).

use futures_lite::future::block_on;
use gonets_engine::record::Record;
use gonets_engine::{Hub, HubConfig, LogConfig};
use gonets_tests::net::{
    bounded, free_port, gonets_bin, run_local, wait_output, ServerOptions, ServerProcess,
};
use gonets_types::{DataKindId, NewRequest, QueueId};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

const EGRUL: &str = "urn:gonets:fns:egrul-extract:1";
/// Bound of one operation.
const OP: Duration = Duration::from_secs(120);
/// Requests sent before the kill.
const REQUESTS: usize = 60;
/// How long a refused start may take to exit.
const REFUSAL_WAIT: Duration = Duration::from_secs(120);

/// Size of a record header (docs/storage.md §3).
const RECORD_HEADER_BYTES: usize = 32;

/// A record found in a segment file by its header.
struct Found {
    path: PathBuf,
    position: usize,
    offset: u64,
    size: usize,
}

/// Every record header with an intact CRC in the log's segments.
fn records_in(dir: &Path) -> Vec<Found> {
    let mut found = Vec::new();
    let mut segs: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("list the log")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    segs.sort();
    for path in segs {
        let bytes = std::fs::read(&path).expect("read a segment");
        // Bounded by the file's size.
        for p in 0..bytes.len().saturating_sub(RECORD_HEADER_BYTES) {
            let h = &bytes[p..p + RECORD_HEADER_BYTES];
            if &h[28..32] != b"gnrc" || h[24] != 1 {
                continue;
            }
            let size = u32::from_le_bytes(h[4..8].try_into().unwrap()) as usize;
            if size < RECORD_HEADER_BYTES || p + size > bytes.len() {
                continue;
            }
            let crc = u32::from_le_bytes(h[0..4].try_into().unwrap());
            if crc32c::crc32c(&bytes[p + 4..p + size]) != crc {
                continue;
            }
            let offset = u64::from_le_bytes(h[8..16].try_into().unwrap());
            found.push(Found {
                path: path.clone(),
                position: p,
                offset,
                size,
            });
        }
    }
    found
}

/// The request records of the log by offset, with their payloads.
fn requests_in(dir: &Path) -> BTreeMap<u64, (Found, Vec<u8>)> {
    let mut out = BTreeMap::new();
    for f in records_in(dir) {
        let bytes = std::fs::read(&f.path).unwrap();
        let payload = &bytes[f.position + RECORD_HEADER_BYTES..f.position + f.size];
        if let Ok(Record::Request(r)) = Record::decode(payload) {
            out.insert(f.offset, (f, r.payload.to_vec()));
        }
    }
    out
}

/// The snapshot parts of the log, by offset.
fn snapshot_parts_in(dir: &Path) -> BTreeMap<u64, Found> {
    let mut out = BTreeMap::new();
    for f in records_in(dir) {
        let bytes = std::fs::read(&f.path).unwrap();
        let payload = &bytes[f.position + RECORD_HEADER_BYTES..f.position + f.size];
        if let Ok(Record::SnapshotPart(_)) = Record::decode(payload) {
            out.insert(f.offset, f);
        }
    }
    out
}

/// Flips one byte in the middle of a record's payload.
fn flip_payload_byte(f: &Found) {
    let mut bytes = std::fs::read(&f.path).unwrap();
    let at = f.position + RECORD_HEADER_BYTES + (f.size - RECORD_HEADER_BYTES) / 2;
    bytes[at] ^= 0x5a;
    std::fs::write(&f.path, bytes).unwrap();
}

/// A config for `gonets serve`/`gonets repair` on `data_dir` (1 shard, plain dev tokens).
fn write_config(dir: &Path, data_dir: &Path) -> PathBuf {
    let path = dir.join("repair-test.toml");
    let text = format!(
        "data_dir = {:?}\nshards = 1\nlisten = \"127.0.0.1:{}\"\nsecurity = \"dev-token\"\n\
         operator_listen = \"none\"\n",
        data_dir.display().to_string(),
        free_port()
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// Runs `gonets serve` expecting it to refuse to start; its output.
fn refused_start(config: &Path) -> String {
    let child = Command::new(gonets_bin())
        .args(["serve", "--config"])
        .arg(config)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn gonets serve");
    let out = wait_output(child, REFUSAL_WAIT, "gonets serve on a damaged log");
    assert!(!out.status.success(), "a start on a damaged log must fail");
    String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr)
}

#[test]
fn given_damage_in_the_replayed_log_when_started_then_refused_and_after_repair_every_intact_request_is_served(
) {
    let mut server = ServerProcess::start(ServerOptions {
        shards: 1,
        ..ServerOptions::dev_token()
    });
    let ep = server.endpoint();
    let sent: Vec<(gonets_types::MessageId, Vec<u8>)> = run_local(move || async move {
        let mfc = ep.connect("MFC").await;
        let mut sent = Vec::new();
        for i in 0..REQUESTS {
            let payload = format!("ogrn {i:013}").into_bytes();
            let a = bounded(
                "send",
                OP,
                mfc.send_request(NewRequest::new(EGRUL, payload.clone())),
            )
            .await
            .expect("accepted");
            sent.push((a.id, payload));
        }
        sent
    });
    // A crash: no shutdown snapshot, so the requests are in the replayed part.
    server.kill9();
    let log_dir = server.data_dir().join("shard-0");
    let on_disk = requests_in(&log_dir);
    assert_eq!(
        on_disk.len(),
        REQUESTS,
        "every accepted request is in the log"
    );
    let (victim, (found, victim_payload)) = on_disk.iter().nth(REQUESTS / 2).unwrap();
    flip_payload_byte(found);

    let config = write_config(server.dir(), &server.data_dir());
    let refusal = refused_start(&config);
    assert!(
        refusal.contains("gonets repair") && refusal.contains("damaged"),
        "the refusal names the damage and the command to run:\n{refusal}"
    );

    let repair = Command::new(gonets_bin())
        .arg("repair")
        .arg(server.data_dir())
        .arg("--config")
        .arg(&config)
        .output()
        .expect("run gonets repair");
    let said = String::from_utf8_lossy(&repair.stdout).to_string()
        + &String::from_utf8_lossy(&repair.stderr);
    assert!(repair.status.success(), "gonets repair failed:\n{said}");
    assert!(
        said.contains(&format!("{victim}")),
        "the report names offset {victim}:\n{said}"
    );
    let quarantine = log_dir.join("quarantine");
    assert!(
        std::fs::read_dir(&quarantine)
            .map(|d| d.count())
            .unwrap_or(0)
            > 0,
        "the damaged bytes and the report are in {}",
        quarantine.display()
    );

    assert!(
        quarantine.join("lost-ids.txt").is_file(),
        "the ids still recognisable in the damaged bytes are listed"
    );

    server.restart();
    let ep = server.endpoint();
    let fetched: Vec<Vec<u8>> = run_local(move || async move {
        let fns = ep.connect("FNS").await;
        let queue = gonets_types::QueueId::Requests(gonets_types::DataKindId::new(EGRUL));
        let mut got = Vec::new();
        // Bounded: stops at the first empty long-poll, or at REQUESTS.
        while got.len() < REQUESTS {
            let batch = bounded(
                "fetch",
                OP,
                fns.fetch(&queue, 64, Duration::from_millis(500)),
            )
            .await
            .expect("fetch");
            if batch.is_empty() {
                break;
            }
            got.extend(batch.into_iter().map(|m| m.payload.to_vec()));
        }
        got
    });
    let lost: Vec<&Vec<u8>> = sent
        .iter()
        .map(|(_, p)| p)
        .filter(|p| !fetched.contains(p))
        .collect();
    assert!(
        lost.contains(&victim_payload),
        "the damaged request is not served as if intact"
    );
    assert!(
        fetched.iter().all(|p| sent.iter().any(|(_, s)| s == p)),
        "nothing but sent payloads is served"
    );
    // Only the damaged batch may be lost: each request was its own commit,
    // so at most the requests sharing its batch.
    assert!(
        lost.len() <= 2,
        "{} intact requests were not served after the repair: {lost:?}",
        lost.len()
    );
}

#[test]
fn given_a_damaged_snapshot_when_the_log_still_holds_every_record_then_the_state_is_rebuilt_and_nothing_is_lost(
) {
    let dir = tempfile::tempdir().unwrap();
    let config = || {
        let mut c = HubConfig::new(dir.path());
        c.shards = 1;
        c.log = LogConfig::small_for_tests();
        c
    };
    let hub = Hub::start(config()).expect("hub starts");
    let mfc = hub.session("MFC").unwrap();
    let mut sent = Vec::new();
    for i in 0..REQUESTS {
        let payload = format!("inn {i:010}").into_bytes();
        block_on(mfc.send_request(NewRequest::new(EGRUL, payload.clone()))).expect("accepted");
        sent.push(payload);
    }
    // A clean stop writes a snapshot of the 60 waiting requests and marks
    // it: its clock, then the waiting requests parked in one run (ADR 0011).
    hub.shutdown().expect("clean stop");
    let log_dir = dir.path().join("shard-0");
    let parts = snapshot_parts_in(&log_dir);
    assert!(
        parts.len() >= 2,
        "the stop wrote a snapshot of the waiting requests: {} parts, {} records",
        parts.len(),
        records_in(&log_dir).len()
    );
    let (_, last_snapshot_part) = parts.iter().next_back().unwrap();
    flip_payload_byte(last_snapshot_part);

    // The snapshot fails its check: never trusted, rebuilt from the records.
    let hub = Hub::start(config()).expect("a damaged snapshot is rebuilt, not fatal");
    let fns = hub.session("FNS").unwrap();
    let queue = QueueId::Requests(DataKindId::new(EGRUL));
    let mut got = Vec::new();
    // Bounded: stops at the first empty long-poll, or at REQUESTS.
    while got.len() < REQUESTS {
        let batch =
            block_on(fns.fetch(queue.clone(), 64, Duration::from_millis(500))).expect("fetch");
        if batch.is_empty() {
            break;
        }
        got.extend(batch.into_iter().map(|m| m.payload.to_vec()));
    }
    got.sort();
    sent.sort();
    assert_eq!(
        got, sent,
        "every waiting request survives a damaged snapshot"
    );
    hub.shutdown().expect("clean stop");
}
