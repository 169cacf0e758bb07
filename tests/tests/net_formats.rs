//! Formats checked at the door, over the wire (issue 18, docs/adr/0018): a
//! `gonets serve` child process with the demo registry whose EGRUL kind
//! declares a request schema (a file beside the registry) and an answer
//! schema (inline). A payload that breaks them gets `INVALID_FORMAT` with
//! `details.path` and `details.reason`, nothing of it stored, across a
//! restart too; a schema that does not compile stops the start.
//!
//! Needs the `gonets` binary (`cargo build --release -p gonets --bin gonets`).

use gonets_proto::header::{ErrorReply, SendRequest};
use gonets_proto::Opcode;
use gonets_tests::net::{
    bounded, fetch_n, frame, run_local, RawConn, ServerOptions, ServerProcess,
};
use gonets_types::{HubError, NewRequest, ParticipantId, QueueId};
use std::path::{Path, PathBuf};
use std::time::Duration;

const EGRUL: &str = "urn:gonets:fns:egrul-extract:1";
/// Bound of one operation.
const OP: Duration = Duration::from_secs(120);
/// An extract request: a 10-digit INN, nothing else.
const REQUEST_SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "required": ["inn"],
  "additionalProperties": false,
  "properties": {"inn": {"type": "string", "pattern": "^[0-9]{10}$"}}
}"#;
const VALID: &str = r#"{"inn": "7707083893"}"#;

/// The demo registry with EGRUL's formats: `request` and `answer` (TOML
/// lines after its `id`), written into `dir` with the request schema
/// file; returns the registry's path.
fn registry_with(dir: &Path, formats: &str) -> PathBuf {
    let text = include_str!("../../core/engine/registry.default.toml");
    let egrul = format!("id = \"{EGRUL}\"\n");
    assert!(text.contains(&egrul));
    std::fs::create_dir_all(dir.join("schemas")).expect("schemas dir");
    std::fs::write(dir.join("schemas/egrul-request.json"), REQUEST_SCHEMA).expect("schema");
    let path = dir.join("registry.toml");
    std::fs::write(&path, text.replace(&egrul, &format!("{egrul}{formats}\n")))
        .expect("write the registry");
    path
}

fn formats() -> &'static str {
    "request_format = { json_schema_file = \"schemas/egrul-request.json\" }\n\
     answer_format = { json_schema = '{\"type\": \"object\", \"required\": [\"extract\"]}' }"
}

fn invalid_format(
    what: &str,
    r: Result<impl std::fmt::Debug, gonets_client::ClientError>,
) -> (String, String) {
    match r {
        Err(gonets_client::ClientError::Hub(HubError::InvalidFormat { path, reason })) => {
            (path, reason)
        }
        other => panic!("{what}: expected INVALID_FORMAT, got {other:?}"),
    }
}

fn requests() -> QueueId {
    QueueId::Requests(gonets_types::DataKindId::new(EGRUL))
}

#[test]
fn given_a_kind_with_formats_when_payloads_break_them_then_invalid_format_with_path_and_nothing_stored(
) {
    let dir = tempfile::tempdir().expect("tempdir");
    let registry = registry_with(dir.path(), formats());
    let mut server = ServerProcess::start(ServerOptions {
        registry: Some(registry),
        ..ServerOptions::default()
    });
    let ep = server.endpoint();
    let kept = run_local(move || async move {
        let mfc = ep.connect("MFC").await;
        let fns = ep.connect("FNS").await;
        let (path, reason) = invalid_format(
            "plain text",
            mfc.send_request(NewRequest::new(EGRUL, "INN 7707083893"))
                .await,
        );
        assert_eq!(path, "");
        assert!(reason.starts_with("not JSON"), "{reason}");
        let (path, reason) = invalid_format(
            "a short INN",
            mfc.send_request(NewRequest::new(EGRUL, r#"{"inn": "77"}"#))
                .await,
        );
        assert_eq!(path, "/inn");
        assert!(reason.contains("does not match"), "{reason}");
        // A batch with one bad message: only its slot is refused.
        let batch = vec![
            NewRequest::new(EGRUL, VALID),
            NewRequest::new(EGRUL, r#"{"inn": "7707083893", "name": "x"}"#),
        ];
        let results = bounded("send_requests", OP, mfc.send_requests(batch))
            .await
            .expect("a batch reply");
        let kept = results[0].as_ref().expect("the valid one is accepted").id;
        assert!(
            matches!(&results[1], Err(HubError::InvalidFormat { path, reason })
                if path.is_empty() && reason.contains("Additional properties")),
            "{results:?}"
        );
        // Only the valid request reached the provider.
        let got = fetch_n(&fns, &requests(), 1, OP).await.remove(0);
        assert_eq!(got.id, kept);
        let none = fns
            .fetch(&requests(), 10, Duration::from_millis(300))
            .await
            .expect("fetch");
        assert!(none.is_empty(), "nothing refused was stored: {none:?}");
        // The answer format is its own: the request's schema does not apply.
        let (path, _) = invalid_format(
            "an answer without its extract",
            fns.send_response(got.id, VALID).await,
        );
        assert_eq!(path, "");
        fns.send_response(got.id, r#"{"extract": "..."}"#)
            .await
            .expect("a valid answer");
        kept
    });
    // Nothing refused comes back after a restart either.
    server.terminate();
    server.restart();
    let ep = server.endpoint();
    run_local(move || async move {
        let mfc = ep.connect("MFC").await;
        let answers = QueueId::Answers(ParticipantId::new("MFC"));
        let answer = fetch_n(&mfc, &answers, 1, OP).await.remove(0);
        assert_eq!(answer.reply_to, Some(kept));
        let fns = ep.connect("FNS").await;
        let none = fns
            .fetch(&requests(), 10, Duration::from_millis(300))
            .await
            .expect("fetch");
        assert!(none.is_empty(), "{none:?}");
    });
    drop(dir);
}

#[test]
fn given_a_payload_breaking_the_format_when_sent_raw_then_the_error_frame_carries_path_and_reason()
{
    let dir = tempfile::tempdir().expect("tempdir");
    let registry = registry_with(dir.path(), formats());
    let server = ServerProcess::start(ServerOptions {
        registry: Some(registry),
        ..ServerOptions::dev_token()
    });
    let mut raw = RawConn::connect(server.addr());
    raw.hello("MFC", "dev-mfc");
    let send = SendRequest {
        kind: EGRUL.into(),
        ..SendRequest::default()
    };
    raw.send(&frame(
        Opcode::SendRequest,
        7,
        &send,
        &[br#"{"inn": 7707083893}"#],
    ));
    let mut f = raw.next_frame(OP).expect("an answer");
    assert_eq!(f.header.opcode, Opcode::Error, "{f:?}");
    assert_eq!(f.header.correlation_id, 7);
    let e: ErrorReply = gonets_proto::parse_header(&mut f.json).expect("an error header");
    assert_eq!(
        (e.code.as_str(), e.code_num),
        ("INVALID_FORMAT", 4),
        "{e:?}"
    );
    assert!(!e.fatal, "{e:?}");
    assert_eq!(e.details.path.as_deref(), Some("/inn"), "{e:?}");
    let reason = e.details.reason.as_deref().expect("a reason");
    assert!(reason.contains("not of type"), "{e:?}");
    assert!(
        !reason.contains("7707083893"),
        "the payload is not echoed: {e:?}"
    );
    // The connection goes on.
    raw.send(&frame(Opcode::SendRequest, 8, &send, &[VALID.as_bytes()]));
    let f = raw.next_frame(OP).expect("an answer");
    assert_eq!(f.header.opcode, Opcode::SendRequest.reply(), "{f:?}");
    drop(dir);
}

#[test]
fn given_a_schema_that_does_not_compile_when_the_hub_starts_then_it_refuses_naming_the_kind() {
    let dir = tempfile::tempdir().expect("tempdir");
    let registry = registry_with(
        dir.path(),
        "answer_format = { json_schema = '{\"type\": \"objekt\"}' }",
    );
    let (status, log) = ServerProcess::expect_start_failure(ServerOptions {
        registry: Some(registry),
        ..ServerOptions::default()
    });
    assert!(!status.success(), "{log}");
    assert!(
        log.contains(&format!("kind {EGRUL}: answer_format:")) && log.contains("does not compile"),
        "{log}"
    );
    drop(dir);
}
