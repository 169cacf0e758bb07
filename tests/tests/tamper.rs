//! A history that cannot be rewritten unnoticed (issue 18, ADR 0020), end
//! to end: a hub with a key and a short anchor interval takes requests
//! (and refusals that leave audit records), the auditor exports the
//! anchors (`gonets anchors`), the hub stops. Then, on copies of the data
//! directory:
//!
//! - untouched: `gonets verify --anchors` exits 0; without `--anchors` it
//!   exits 0 but says authenticity is not proven;
//! - an attacker with disk access rewrites one request's payload and
//!   recomputes that record's CRC, its batch's marker (sector CRCs,
//!   chain), every later batch's chain and the segment headers' chain,
//!   with storage's own framing functions: the in-log anchors after it
//!   give the break away;
//! - the same attacker also neutralises every in-log anchor (each becomes
//!   a snapshot part of the same length, CRCs and chains recomputed):
//!   `gonets verify` without `--anchors` finds nothing and says it cannot
//!   prove authenticity; with the exported anchors it reports the break at
//!   that shard, in a range holding the rewritten offset (exit 1);
//! - one flipped byte without recomputation is reported as damage.
//!
//! Needs the `gonets` binary (built with the workspace).

use futures_lite::future::block_on;
use gonets_engine::record::Record;
use gonets_engine::{Hub, HubConfig, LogConfig};
use gonets_storage::frame::{self, Parsed, RecordKind, HEADER_SIZE_BYTES};
use gonets_storage::marker;
use gonets_storage::scan::{self, BatchAt, Limits};
use gonets_storage::segment::{SegmentHeader, SEGMENT_HEADER_BYTES};
use gonets_tests::net::{gonets_bin, wait_output};
use gonets_types::{HubError, NewRequest};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

const EGRUL: &str = "urn:gonets:fns:egrul-extract:1";
/// Requests sent, in groups with a pause between (several anchors).
const GROUPS: usize = 4;
const PER_GROUP: usize = 10;
/// The anchor interval of the hub under test, ms.
const ANCHOR_INTERVAL_MS: u64 = 40;
/// Most time one `gonets` command may take.
const COMMAND_WAIT: Duration = Duration::from_secs(120);

fn payload(i: usize) -> Vec<u8> {
    format!("ogrn {i:013}").into_bytes()
}

/// Runs `gonets ARGS`; (exit status, stdout, stderr).
fn gonets(args: &[&str]) -> (i32, String, String) {
    let child = Command::new(gonets_bin())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn gonets");
    let out = wait_output(child, COMMAND_WAIT, "gonets");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn s(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 path")
}

/// Runs the hub: requests, a state secret and a foreign answer refused
/// (audit records); while it runs, `gonets verify` is refused.
fn run_hub(data_dir: &Path, key: Arc<gonets_trust::HubKey>) {
    // As `gonets serve` does: the public half beside the data.
    std::fs::create_dir_all(data_dir).unwrap();
    key.public().write(&data_dir.join("hub.pub")).unwrap();
    let mut config = HubConfig::new(data_dir);
    config.shards = 1;
    config.log = LogConfig::small_for_tests();
    config.hub_key = Some(key);
    config.anchor_interval_ms = ANCHOR_INTERVAL_MS;
    let hub = Hub::start(config).expect("hub starts");
    let mfc = hub.session("MFC").expect("session");
    let mut first = None;
    for g in 0..GROUPS {
        for i in 0..PER_GROUP {
            let r = NewRequest::new(EGRUL, payload(g * PER_GROUP + i));
            let a = block_on(mfc.send_request(r)).expect("accepted");
            first.get_or_insert(a.id);
        }
        if g == 0 {
            answer_all(&hub, PER_GROUP);
        }
        std::thread::sleep(Duration::from_millis(ANCHOR_INTERVAL_MS * 4));
    }
    let mut secret = NewRequest::new(EGRUL, "classified");
    secret.state_secret = true;
    let refused = block_on(mfc.send_request(secret));
    assert!(matches!(refused, Err(HubError::StateSecret)), "{refused:?}");
    let foreign = block_on(mfc.send_response(first.expect("sent"), "not mine"));
    assert!(
        matches!(foreign, Err(HubError::NotAuthorized(_))),
        "{foreign:?}"
    );
    let (code, _, err) = gonets(&["verify", s(data_dir)]);
    assert_eq!(code, 2, "verify of a running hub's data is refused: {err}");
    assert!(err.contains("stop the hub"), "{err}");
    hub.shutdown().expect("clean stop");
}

/// FNS answers `n` requests and MFC acks the answers: finished
/// exchanges, so the history log holds histories (and its own anchors).
fn answer_all(hub: &Hub, n: usize) {
    use gonets_types::{ParticipantId, QueueId};
    let fns = hub.session("FNS").expect("provider");
    let mfc = hub.session("MFC").expect("consumer");
    let requests = QueueId::Requests(gonets_types::DataKindId::new(EGRUL));
    let answers = QueueId::Answers(ParticipantId::new("MFC"));
    let (mut answered, mut acked) = (0, 0);
    let deadline = std::time::Instant::now() + COMMAND_WAIT;
    while (answered < n || acked < n) && std::time::Instant::now() < deadline {
        let wait = Duration::from_millis(100);
        for m in block_on(fns.fetch(requests.clone(), 64, wait)).expect("fetch requests") {
            block_on(fns.ack(&m)).expect("ack the request");
            block_on(fns.send_response(m.id, "extract")).expect("answer");
            answered += 1;
        }
        for m in block_on(mfc.fetch(answers.clone(), 64, wait)).expect("fetch answers") {
            block_on(mfc.ack(&m)).expect("ack the answer");
            acked += 1;
        }
    }
    assert_eq!((answered, acked), (n, n), "every exchange finished");
}

/// Starts a hub (with its key) on `data_dir` again: FNS fetches `open`
/// requests; then a clean stop.
fn restart_and_fetch(data_dir: &Path, key: Arc<gonets_trust::HubKey>, open: usize) {
    let mut config = HubConfig::new(data_dir);
    config.shards = 1;
    config.log = LogConfig::small_for_tests();
    config.hub_key = Some(key);
    config.anchor_interval_ms = ANCHOR_INTERVAL_MS;
    let hub = Hub::start(config).expect("hub starts again");
    let fns = hub.session("FNS").expect("provider");
    let requests = gonets_types::QueueId::Requests(gonets_types::DataKindId::new(EGRUL));
    let mut got = 0;
    let deadline = std::time::Instant::now() + COMMAND_WAIT;
    while got < open && std::time::Instant::now() < deadline {
        let wait = Duration::from_millis(100);
        got += block_on(fns.fetch(requests.clone(), 64, wait))
            .expect("fetch")
            .len();
    }
    assert_eq!(got, open, "every open request served after the restart");
    hub.shutdown().expect("clean stop");
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

/// The segment files of a log, in order.
fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut segs: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    segs.sort();
    segs
}

/// What the attacker does to one record's payload (same length).
type Edit<'a> = &'a dyn Fn(u64, &mut [u8]) -> bool;

/// The attacker: walks the log batch by batch, applies `edit` to record
/// payloads, and reseals everything after the first edit: record CRCs,
/// every batch's marker (sector CRCs, chain) and each segment header's
/// chain, with storage's own functions. Gives the edited offsets.
fn rewrite_log(dir: &Path, edit: Edit<'_>) -> Vec<u64> {
    let mut chain = None;
    let mut edited = Vec::new();
    for path in segments(dir) {
        let mut seg = std::fs::read(&path).unwrap();
        let header = SegmentHeader::decode(&seg[..SEGMENT_HEADER_BYTES]).expect("header");
        let prev = *chain.get_or_insert(header.prev_chain);
        SegmentHeader {
            prev_chain: prev,
            ..header.clone()
        }
        .encode(&mut seg[..SEGMENT_HEADER_BYTES]);
        let limits = Limits {
            record_size_bytes_max: seg.len(),
            batch_bytes_max: seg.len(),
        };
        let mut pos = SEGMENT_HEADER_BYTES;
        let mut expected = header.base_offset;
        let mut prev_chain = prev;
        while let BatchAt::Valid(b) = scan::batch_at(&seg, pos, expected, None, limits) {
            let mut p = b.start;
            let mut offset = b.first_offset;
            while p < b.marker_start {
                let Parsed::Record(h) = frame::parse(&seg, p, seg.len()) else {
                    panic!("a valid batch's record")
                };
                let size = h.size_bytes as usize;
                let body = &mut seg[p + HEADER_SIZE_BYTES..p + size];
                if edit(offset, body) {
                    edited.push(offset);
                }
                let len = h.payload_len();
                frame::seal_in_place(
                    &mut seg[p..],
                    len,
                    offset,
                    h.timestamp_ns,
                    RecordKind::Data,
                    h.flags,
                );
                p += size;
                offset += 1;
            }
            let Parsed::Record(m) = frame::parse(&seg, b.marker_start, seg.len()) else {
                panic!("a valid batch's marker")
            };
            let records_len = b.marker_start - b.start;
            let (_, new_chain) = marker::write_marker(
                &mut seg[b.start..],
                records_len,
                b.first_offset,
                b.record_count,
                &prev_chain,
                m.timestamp_ns,
            );
            prev_chain = new_chain;
            expected = b.next_offset();
            pos = b.end;
        }
        chain = Some(prev_chain);
        std::fs::write(&path, &seg).unwrap();
    }
    edited
}

/// Rewrites the request with payload `payload(victim)` to say something else.
fn rewrite_request(victim: usize) -> impl Fn(u64, &mut [u8]) -> bool {
    move |_, body: &mut [u8]| {
        let Ok(Record::Request(r)) = Record::decode(body) else {
            return false;
        };
        if r.payload.as_ref() != payload(victim).as_slice() {
            return false;
        }
        let at = body.len() - r.payload.len();
        body[at..].copy_from_slice(format!("ogrn {:013}", 9_999_999).as_bytes());
        true
    }
}

/// Turns an anchor record into a snapshot part of the same length.
fn neutralise_anchor(_: u64, body: &mut [u8]) -> bool {
    if body.first() != Some(&7) {
        return false;
    }
    body.fill(0);
    body[0] = 4; // a snapshot part: tag, u32 length, bytes
    let len = (body.len() - 5) as u32;
    body[1..5].copy_from_slice(&len.to_le_bytes());
    true
}

/// The offsets of a BREAK line's "offsets A..B" range.
fn rewritten_range(stdout: &str) -> (u64, u64) {
    let line = stdout
        .lines()
        .find(|l| l.starts_with("BREAK:"))
        .unwrap_or_else(|| panic!("a BREAK line in {stdout}"));
    let tail = line
        .split("lie in offsets ")
        .nth(1)
        .unwrap_or_else(|| panic!("a rewritten range in {line}"));
    let range = tail.trim_end_matches(')');
    let (a, b) = range.split_once("..").unwrap();
    (a.parse().unwrap(), b.parse().unwrap())
}

#[test]
fn given_a_rewritten_history_when_verified_with_exported_anchors_then_the_break_is_found() {
    let root = tempfile::tempdir().unwrap();
    let original = root.path().join("data");
    let key = Arc::new(gonets_trust::HubKey::generate());
    // The auditor keeps the public key away from the data disk.
    let pub_key = root.path().join("auditor-hub.pub");
    key.public().write(&pub_key).unwrap();
    run_hub(&original, key.clone());

    let (code, anchors, err) = gonets(&["anchors", s(&original)]);
    assert_eq!(code, 0, "{err}");
    let anchor_lines = anchors.lines().count();
    assert!(
        anchors.contains("\"log\":\"history\""),
        "the history log anchored: {anchors}"
    );
    assert!(anchor_lines >= 3, "several anchors: {anchors}");
    let exported = root.path().join("anchors.jsonl");
    std::fs::write(&exported, &anchors).unwrap();
    let (code, audit, err) = gonets(&["audit", s(&original)]);
    assert_eq!(code, 0, "{err}");
    assert!(audit.contains("\"code\":\"STATE_SECRET\""), "{audit}");
    assert!(audit.contains("\"code\":\"NOT_AUTHORIZED\""), "{audit}");
    assert!(!audit.contains("classified"), "never the payload: {audit}");

    // Untouched.
    let key_arg = ["--hub-key", s(&pub_key)];
    let (code, out, err) = gonets(
        &[
            &["verify", s(&original), "--anchors", s(&exported)][..],
            &key_arg,
        ]
        .concat(),
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("exported anchors match the logs"), "{out}");
    assert!(out.contains("2 audit records"), "{out}");
    let (code, out, _) = gonets(&[&["verify", s(&original)][..], &key_arg].concat());
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("AUTHENTICITY NOT PROVEN"), "{out}");

    // A restart replays past anchor and audit records, serves every open
    // request, and the anchors exported before still match the grown log.
    let restarted = root.path().join("restarted");
    copy_dir(&original, &restarted);
    restart_and_fetch(&restarted, key, (GROUPS - 1) * PER_GROUP);
    let (code, out, err) = gonets(
        &[
            &["verify", s(&restarted), "--anchors", s(&exported)][..],
            &key_arg,
        ]
        .concat(),
    );
    assert_eq!(code, 0, "{out}{err}");
    // The restart's last anchor covers its last record (the shutdown's).
    let ends_anchored = out.lines().any(|l| {
        l.contains("shard 0 shard log")
            && l.split("offsets 0..")
                .nth(1)
                .and_then(|t| t.split(',').next())
                .map(|end| {
                    l.contains(&format!(
                        "last anchored offset {}",
                        end.parse::<u64>().unwrap() - 1
                    ))
                })
                == Some(true)
    });
    assert!(ends_anchored, "{out}");

    // Rewritten, recomputed, in-log anchors left: they give it away.
    let victim = GROUPS * PER_GROUP / 2;
    let left = root.path().join("left");
    copy_dir(&original, &left);
    let edited = rewrite_log(&left.join("shard-0"), &rewrite_request(victim));
    assert_eq!(edited.len(), 1, "one request rewritten");
    let (code, out, _) = gonets(&[&["verify", s(&left)][..], &key_arg].concat());
    assert_eq!(code, 1, "{out}");
    let (from, to) = rewritten_range(&out);
    assert!(from <= edited[0] && edited[0] < to, "{out}");

    // Rewritten, and every in-log anchor neutralised (both logs).
    let attacked = root.path().join("attacked");
    copy_dir(&original, &attacked);
    let edited = rewrite_log(&attacked.join("shard-0"), &rewrite_request(victim));
    assert_eq!(edited.len(), 1);
    let neutralised = rewrite_log(&attacked.join("shard-0"), &neutralise_anchor);
    let gone = neutralised.len()
        + rewrite_log(&attacked.join("shard-0/history"), &neutralise_anchor).len();
    assert!(gone >= anchor_lines, "every anchor neutralised");
    // The first record the attacker changed: the victim or an anchor.
    let first_changed = neutralised
        .iter()
        .copied()
        .chain([edited[0]])
        .min()
        .unwrap();
    let (code, out, _) = gonets(&[&["verify", s(&attacked)][..], &key_arg].concat());
    assert_eq!(code, 0, "nothing inside the disk tells: {out}");
    assert!(out.contains("AUTHENTICITY NOT PROVEN"), "{out}");
    let (code, out, _) = gonets(
        &[
            &["verify", s(&attacked), "--anchors", s(&exported)][..],
            &key_arg,
        ]
        .concat(),
    );
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("BREAK: shard 0 shard log"), "{out}");
    let (from, to) = rewritten_range(&out);
    assert!(from <= first_changed && first_changed < to, "{out}");

    // One flipped byte, nothing recomputed: damage.
    let flipped = root.path().join("flipped");
    copy_dir(&original, &flipped);
    let seg = &segments(&flipped.join("shard-0"))[0];
    let mut bytes = std::fs::read(seg).unwrap();
    let at = bytes
        .windows(18)
        .position(|w| w == payload(victim).as_slice())
        .expect("the payload");
    bytes[at + 5] ^= 0x01;
    std::fs::write(seg, &bytes).unwrap();
    let (code, out, _) = gonets(&[&["verify", s(&flipped)][..], &key_arg].concat());
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("record fails its check (BadCrc)"), "{out}");

    // A key that did not sign the anchors: usage is fine, the anchors break.
    let other = root.path().join("other.pub");
    gonets_trust::HubKey::generate()
        .public()
        .write(&other)
        .unwrap();
    let (code, out, _) = gonets(&["verify", s(&original), "--hub-key", s(&other)]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("does not verify with hub key"), "{out}");
}

/// `GET path` from the operator API; (status line, body).
fn http_get(addr: std::net::SocketAddr, path: &str) -> (String, String) {
    use std::io::{Read, Write};
    let limit = Duration::from_secs(30);
    let mut stream = std::net::TcpStream::connect_timeout(&addr, limit).expect("connect");
    stream.set_read_timeout(Some(limit)).unwrap();
    let head = format!("GET {path} HTTP/1.1\r\nHost: gonets\r\nConnection: close\r\n\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").expect("a head and a body");
    let status = head.lines().next().unwrap_or_default().to_owned();
    // A chunked body: the JSON lines are the lines that start with `{`.
    let body = body
        .lines()
        .filter(|l| l.starts_with('{'))
        .collect::<Vec<_>>()
        .join("\n");
    (status, body)
}

#[test]
fn given_gonets_serve_with_a_short_interval_when_anchors_are_read_from_the_api_then_verify_accepts_them(
) {
    use gonets_tests::net::{run_local, ServerOptions, ServerProcess};
    let mut server = ServerProcess::start(ServerOptions {
        shards: 1,
        operator: true,
        sections: format!("anchor_interval_ms = {ANCHOR_INTERVAL_MS}\n"),
        ..ServerOptions::dev_token()
    });
    let ep = server.endpoint();
    // Two groups, intervals apart: at least two anchors of the shard's log
    // (an idle hub anchors nothing new, and the history log stays empty
    // without finished exchanges).
    run_local(move || async move {
        let mfc = ep.connect("MFC").await;
        for g in 0..2 {
            for i in 0..PER_GROUP {
                mfc.send_request(NewRequest::new(EGRUL, payload(g * PER_GROUP + i)))
                    .await
                    .expect("accepted");
            }
            glommio::timer::sleep(Duration::from_millis(ANCHOR_INTERVAL_MS * 4)).await;
        }
    });
    let api = server.operator_addr();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let body = loop {
        let (status, body) = http_get(api, "/anchors");
        assert!(status.contains(" 200 "), "{status}");
        if body.lines().count() >= 2 || std::time::Instant::now() > deadline {
            break body;
        }
        std::thread::sleep(Duration::from_millis(ANCHOR_INTERVAL_MS));
    };
    let key = gonets_trust::HubPublicKey::load(&server.data_dir().join("hub.pub")).unwrap();
    let anchors: Vec<gonets_trust::Anchor> = body
        .lines()
        .map(|l| gonets_trust::Anchor::from_json_line(l).expect("an anchor line"))
        .collect();
    assert!(anchors.len() >= 2, "an anchor after each group: {body}");
    assert!(anchors.iter().all(|a| a.verifies(&key)), "{body}");
    let later = anchors.iter().map(|a| a.time_ms).max().unwrap();
    let (_, since) = http_get(api, &format!("/anchors?since_ms={later}"));
    assert!(since.lines().count() >= 1 && since.lines().count() <= anchors.len());
    let (status, _) = http_get(api, "/anchors?since_ms=soon");
    assert!(status.contains(" 400 "), "{status}");
    let exported = server.dir().join("api-anchors.jsonl");
    std::fs::write(&exported, &body).unwrap();
    server.terminate();
    let data = server.data_dir();
    let (code, out, err) = gonets(&["verify", s(&data), "--anchors", s(&exported)]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("exported anchors match the logs"), "{out}");
}

#[test]
fn given_a_receipt_when_checked_by_gonets_verify_receipt_then_ok_and_a_changed_one_not_valid() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let key = gonets_trust::HubKey::generate();
    let pub_key = dir.path().join("hub.pub");
    key.public().write(&pub_key).unwrap();
    let mut receipt = gonets_types::Receipt {
        message_id: gonets_types::MessageId::new(1_700_000_000_000, 0, 7),
        reply_to: None,
        digest: gonets_trust::payload_digest(b"ogrn"),
        sender: gonets_types::ParticipantId::new("MFC"),
        kind: gonets_types::DataKindId::new(EGRUL),
        time_ms: 1_700_000_000_000,
        shard: 0,
        offset: 42,
        key_id: String::new(),
        signature: Default::default(),
        proof: None,
    };
    // One of three signed together, as a commit's receipts are.
    let mut tree: Vec<gonets_types::Receipt> = (41..44)
        .map(|offset| gonets_types::Receipt {
            offset,
            ..receipt.clone()
        })
        .collect();
    let mut refs: Vec<&mut gonets_types::Receipt> = tree.iter_mut().collect();
    gonets_trust::sign_receipts(&key, &mut refs);
    let file = dir.path().join("receipt.json");
    std::fs::write(&file, gonets_trust::receipt_to_json(&tree[2])).unwrap();
    let (code, out, err) = gonets(&["verify-receipt", s(&file), "--hub-key", s(&pub_key)]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("offset 43") && out.contains("leaf 3 of 3"),
        "{out}"
    );

    gonets_trust::sign_receipt(&key, &mut receipt);
    std::fs::write(&file, gonets_trust::receipt_to_json(&receipt)).unwrap();
    let (code, out, err) = gonets(&["verify-receipt", s(&file), "--hub-key", s(&pub_key)]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("OK") && out.contains("offset 42"), "{out}");

    receipt.offset = 43; // moved in the log after signing
    let changed = gonets_trust::receipt_to_json(&receipt);
    let mut child = Command::new(gonets_bin())
        .args(["verify-receipt", "-", "--hub-key", s(&pub_key)])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(changed.as_bytes())
        .unwrap();
    let out = wait_output(child, COMMAND_WAIT, "verify-receipt");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("NOT VALID"), "{stdout}");

    std::fs::write(&file, "{}").unwrap();
    let (code, out, _) = gonets(&["verify-receipt", s(&file), "--hub-key", s(&pub_key)]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("NOT VALID: not a receipt"), "{out}");
}
