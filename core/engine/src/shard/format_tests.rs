//! Unit tests of the formats checked at the door (issue 18, docs/adr/0018):
//! a request or a data answer that breaks its kind's format is refused
//! `InvalidFormat` and nothing of it is stored, on the driver of
//! `shard/tests.rs`.

use super::*;

/// JSON asks for a JSON object with a 10-digit `inn` and answers in any
/// bytes; FREE takes any bytes as requests and answers with a JSON array
/// of strings; CALL is realtime and asks for a JSON object.
const FORMAT_REGISTRY: &str = r#"
[[participant]]
id = "FNS"
name = "Federal Tax Service"
roles = ["provider"]

[[participant]]
id = "MFC"
name = "Public-service centre"
roles = ["consumer"]

[[participant]]
id = "OPERATOR"
name = "Hub operator"
roles = ["operator"]

[[data_kind]]
id = "urn:test:json:1"
provider = "FNS"
mode = "async"
deadline_ms = 1000
payload_bytes_max = 256
consumers = ["MFC"]
request_format = { json_schema = '''
{
  "type": "object",
  "required": ["inn"],
  "additionalProperties": false,
  "properties": {
    "inn": {"type": "string", "pattern": "^[0-9]{10}$"},
    "names": {"type": "array", "items": {"type": "string", "maxLength": 4}}
  }
}''' }

[[data_kind]]
id = "urn:test:free:1"
provider = "FNS"
mode = "async"
deadline_ms = 1000
payload_bytes_max = 256
consumers = ["MFC"]
request_format = "bytes"
answer_format = { json_schema = '{"type": "array", "items": {"type": "string"}}' }

[[data_kind]]
id = "urn:test:call:1"
provider = "FNS"
mode = "realtime"
deadline_ms = 200
payload_bytes_max = 256
consumers = ["MFC"]
request_format = { json_schema = '{"type": "object"}' }
"#;
const JSON: &str = "urn:test:json:1";
const FREE: &str = "urn:test:free:1";
const CALL: &str = "urn:test:call:1";
const VALID: &str = r#"{"inn": "7707083893", "names": ["Anna"]}"#;

fn format_driver() -> Driver {
    let registry = Arc::new(Registry::from_toml(FORMAT_REGISTRY).expect("valid"));
    Driver {
        shard: Shard::new(config(0, 1), registry, 0),
        log: Vec::new(),
        journaled: Vec::new(),
        durable: 0,
        now: T0,
        next_token: 1,
    }
}

fn with_payload(kind: &str, payload: &str) -> NewRequest {
    NewRequest::new(kind, payload.to_string())
}

fn data_answer(request_id: MessageId, payload: &str) -> Command {
    Command::SendResponse {
        request_id,
        payload: Bytes::from(payload.to_string()),
        attachments: Vec::new(),
    }
}

/// The `InvalidFormat` a command gets at once, with nothing appended.
fn refused_unstored(d: &mut Driver, caller: &str, command: Command) -> (String, String) {
    let appended_before = d.log.len();
    let r = d.now_reply(caller, command);
    assert_eq!(d.log.len(), appended_before, "nothing appended: {r:?}");
    match r {
        Err(HubError::InvalidFormat { path, reason }) => (path, reason),
        other => panic!("expected InvalidFormat, got {other:?}"),
    }
}

fn at_door_invalid_format(d: &Driver, kind: &str) -> u64 {
    let code = HubError::InvalidFormat {
        path: String::new(),
        reason: String::new(),
    };
    let index = crate::runtime::stats::error_code_index(&code);
    d.shard
        .sla()
        .kinds()
        .find(|(k, _)| k.as_str() == kind)
        .map_or(0, |(_, c)| c.live.refused_at_door[index])
}

#[test]
fn given_a_schema_kind_when_the_request_is_not_json_then_invalid_format_at_the_root() {
    let mut d = format_driver();
    let request = Command::SendRequest(with_payload(JSON, "INN 7707083893"));
    let (path, reason) = refused_unstored(&mut d, "MFC", request);
    assert_eq!(path, "");
    assert!(reason.starts_with("not JSON"), "{reason}");
    assert_eq!(d.shard.counters().requests_invalid_format, 1);
    assert_eq!(at_door_invalid_format(&d, JSON), 1);
}

#[test]
fn given_a_schema_kind_when_the_request_breaks_it_then_invalid_format_names_the_place() {
    let mut d = format_driver();
    for (payload, want_path) in [
        (r#"{"inn": "123"}"#, "/inn"),
        (
            r#"{"inn": "7707083893", "names": ["Anna", "Maximilian"]}"#,
            "/names/1",
        ),
        (r#"{"names": []}"#, ""),
        (r#"{"inn": "7707083893", "extra": true}"#, ""),
    ] {
        let request = Command::SendRequest(with_payload(JSON, payload));
        let (path, reason) = refused_unstored(&mut d, "MFC", request);
        assert_eq!(path, want_path, "{payload}: {reason}");
        assert!(
            !reason.is_empty() && !reason.contains("Maximilian"),
            "{reason}"
        );
    }
    assert_eq!(d.shard.counters().requests_invalid_format, 4);
    assert_eq!(d.shard.counters().accepted, 0);
}

#[test]
fn given_a_schema_kind_when_the_request_matches_then_accepted_and_delivered_as_sent() {
    let mut d = format_driver();
    let id = d.send_ok("MFC", with_payload(JSON, VALID));
    let got = d.fetch("FNS", requests(JSON), 1, 1);
    assert_eq!(ids(&got), vec![id]);
    let stored = d.log.iter().find_map(|(_, r)| match r {
        Record::Request(q) if q.id == id => Some(q.payload.clone()),
        _ => None,
    });
    assert_eq!(
        stored.as_deref(),
        Some(VALID.as_bytes()),
        "stored as received"
    );
    assert_eq!(d.shard.counters().requests_invalid_format, 0);
}

#[test]
fn given_a_bytes_kind_when_anything_is_sent_then_accepted() {
    let mut d = format_driver();
    for payload in ["", "not json", "{\"inn\": ", "\u{0}\u{7f}"] {
        d.send_ok("MFC", with_payload(FREE, payload));
    }
    assert_eq!(d.shard.queue_stats(&requests(FREE)).depth, 4);
}

#[test]
fn given_a_refused_request_when_the_shard_restarts_then_it_was_never_stored() {
    let mut d = format_driver();
    let kept = d.send_ok("MFC", with_payload(JSON, VALID));
    refused_unstored(
        &mut d,
        "MFC",
        Command::SendRequest(with_payload(JSON, "[]")),
    );
    d.commit();
    let requests_in_log = |d: &Driver| {
        d.log
            .iter()
            .filter(|(_, r)| matches!(r, Record::Request(_)))
            .count()
    };
    assert_eq!(requests_in_log(&d), 1);
    let (mut r, _) = d.restart();
    assert_eq!(requests_in_log(&r), 1);
    let got = r.fetch("FNS", requests(JSON), 10, 1);
    assert_eq!(ids(&got), vec![kept], "only the valid one is deliverable");
}

#[test]
fn given_formats_per_direction_when_answered_then_only_the_answer_format_applies() {
    let mut d = format_driver();
    // JSON: requests checked, answers any bytes.
    let json = d.send_ok("MFC", with_payload(JSON, VALID));
    assert_eq!(
        d.committed_reply("FNS", data_answer(json, "not json")),
        Ok(ShardReply::Done)
    );
    // FREE: requests any bytes, answers checked.
    let free = d.send_ok("MFC", with_payload(FREE, "not json either"));
    let (path, _) = refused_unstored(&mut d, "FNS", data_answer(free, "[\"a\", 2]"));
    assert_eq!(path, "/1");
    let (path, reason) = refused_unstored(&mut d, "FNS", data_answer(free, "nope"));
    assert_eq!(path, "");
    assert!(reason.starts_with("not JSON"), "{reason}");
    assert_eq!(d.shard.counters().answers_invalid_format, 2);
    assert_eq!(d.shard.counters().requests_invalid_format, 0);
    assert!(
        d.exchange_outcome_is_none(free),
        "still open after refusals"
    );
    // A refusal has no payload, so no format; a valid answer ends it.
    assert_eq!(
        d.committed_reply("FNS", data_answer(free, "[\"a\", \"b\"]")),
        Ok(ShardReply::Done)
    );
    assert_eq!(
        *d.event_kinds(free).last().expect("events"),
        EventKind::Answered
    );
}

#[test]
fn given_an_answer_format_when_the_provider_refuses_then_the_refusal_is_not_checked() {
    let mut d = format_driver();
    let free = d.send_ok("MFC", with_payload(FREE, "x"));
    let refusal = Command::SendRefusal {
        request_id: free,
        code: RefusalCode::NoData,
        reason: "no such taxpayer".into(),
    };
    assert_eq!(d.committed_reply("FNS", refusal), Ok(ShardReply::Done));
}

#[test]
fn given_a_realtime_kind_with_a_schema_when_called_with_a_bad_payload_then_refused_before_delivery()
{
    let mut d = format_driver();
    let waiting = Command::Fetch {
        queue: requests(CALL),
        max: 1,
        wait_ms: 100,
        reader: 1,
    };
    let (fetch, _) = d.command("FNS", waiting);
    let (path, _) = refused_unstored(&mut d, "MFC", Command::Call(with_payload(CALL, "[1]")));
    assert_eq!(path, "");
    let (call, out) = d.command("MFC", Command::Call(with_payload(CALL, "{}")));
    assert_eq!(reply(&out, call), None, "a valid call waits for its answer");
    let Some(Ok(ShardReply::Messages(got))) = reply(&out, fetch) else {
        panic!("the waiting provider gets the valid call only: {out:?}")
    };
    assert_eq!(got.len(), 1);
}

#[test]
fn given_a_batch_with_one_bad_message_when_sent_then_only_its_slot_is_refused() {
    let mut d = format_driver();
    let batch = vec![
        with_payload(JSON, VALID),
        with_payload(JSON, r#"{"inn": 7707083893}"#),
        with_payload(JSON, VALID),
    ];
    let results = match d.committed_reply("MFC", Command::SendRequests(batch)) {
        Ok(ShardReply::AcceptedMany(results)) => results,
        other => panic!("expected AcceptedMany, got {other:?}"),
    };
    assert!(results[0].is_ok() && results[2].is_ok(), "{results:?}");
    assert!(
        matches!(&results[1], Err(HubError::InvalidFormat { path, .. }) if path == "/inn"),
        "{results:?}"
    );
    let requests_in_log = d
        .log
        .iter()
        .filter(|(_, r)| matches!(r, Record::Request(_)))
        .count();
    assert_eq!(requests_in_log, 2, "the bad one is not stored");
    assert_eq!(d.shard.queue_stats(&requests(JSON)).depth, 2);
    assert_eq!(d.shard.counters().requests_invalid_format, 1);
    assert_eq!(at_door_invalid_format(&d, JSON), 1);
}

#[test]
fn given_a_request_refused_by_a_cheaper_rule_when_it_also_breaks_the_format_then_the_cheap_refusal_wins(
) {
    let mut d = format_driver();
    let big = "x".repeat(300);
    let r = d.now_reply("MFC", Command::SendRequest(with_payload(JSON, &big)));
    assert!(matches!(r, Err(HubError::TooLarge { .. })), "{r:?}");
    assert_eq!(d.shard.counters().requests_invalid_format, 0);
}
