//! The wire mapping of operations: request frames into commands
//! (`request`), replies into frames (`reply`).

use super::*;
use bytes::Bytes;
use gonets_types::{
    Accepted, Command, DeliveryBody, EventKind, HistoryEvent, Message, NewRequest, QueueStats,
    Reply,
};
use header as h;

const KIND: &str = "urn:gonets:fns:egrul-extract:1";

fn id() -> MessageId {
    MessageId::new(1_700_000_000_000, 1, 7)
}

fn json<T: Serialize>(header: &T) -> Vec<u8> {
    serde_json::to_vec(header).unwrap()
}

fn decode(op: Opcode, json: &[u8], body: &'static [u8]) -> Result<Command, RequestError> {
    let mut json = json.to_vec();
    decode_command(op, &mut json, Bytes::from_static(body))
}

fn requests() -> QueueId {
    QueueId::Requests(DataKindId::new(KIND))
}

#[test]
fn given_every_operation_when_its_request_frame_is_decoded_then_its_command_comes_out() {
    let send = h::SendRequest {
        kind: KIND.into(),
        idempotency_key: Some("k-1".into()),
        test: true,
        transaction: Some("case-9".into()),
        state_secret: false,
    };
    let request = NewRequest {
        idempotency_key: Some("k-1".into()),
        test: true,
        transaction: Some("case-9".into()),
        ..NewRequest::new(KIND, "payload")
    };
    let queue = format!("requests/{KIND}");
    let settle = h::Settle {
        queue: queue.clone(),
        id: id().to_string(),
        lease: 42,
        delay_ms: 250,
    };
    let cases: Vec<(Opcode, Vec<u8>, Command)> = vec![
        (
            Opcode::SendRequest,
            json(&send),
            Command::SendRequest(request.clone()),
        ),
        (Opcode::Call, json(&send), Command::Call(request)),
        (
            Opcode::Fetch,
            json(&h::Fetch {
                queue: queue.clone(),
                max: 8,
                wait_ms: 100,
            }),
            Command::Fetch {
                queue: requests(),
                max: 8,
                wait_ms: 100,
                reader: READER_OF_SESSION,
            },
        ),
        (
            Opcode::Subscribe,
            json(&h::Subscribe {
                queue: queue.clone(),
                credits: 3,
            }),
            Command::Subscribe {
                queue: requests(),
                credits: 3,
                reader: READER_OF_SESSION,
            },
        ),
        (
            Opcode::Ack,
            json(&settle),
            Command::Ack {
                queue: requests(),
                id: id(),
                reader: 42,
            },
        ),
        (
            Opcode::Nack,
            json(&settle),
            Command::Nack {
                queue: requests(),
                id: id(),
                reader: 42,
                delay_ms: 250,
            },
        ),
        (
            Opcode::SendResponse,
            json(&h::SendResponse {
                request_id: id().to_string(),
            }),
            Command::SendResponse {
                request_id: id(),
                payload: Bytes::from_static(b"payload"),
            },
        ),
        (
            Opcode::SendRefusal,
            json(&h::SendRefusal {
                request_id: id().to_string(),
                code: "NO_DATA".into(),
                reason: "none".into(),
            }),
            Command::SendRefusal {
                request_id: id(),
                code: RefusalCode::NoData,
                reason: "none".into(),
            },
        ),
        (
            Opcode::Status,
            json(&h::Status {
                id: id().to_string(),
            }),
            Command::Status { id: id() },
        ),
        (
            Opcode::QueueStats,
            json(&h::QueueStats { queue }),
            Command::QueueStats { queue: requests() },
        ),
    ];
    for (op, header, command) in cases {
        assert_eq!(decode(op, &header, b"payload"), Ok(command), "{op:?}");
    }
}

#[test]
fn given_header_faults_when_decoded_then_only_a_header_that_is_no_json_object_is_fatal() {
    let not_json = decode(Opcode::Fetch, b"[1,2", b"").unwrap_err();
    assert!(not_json.is_fatal());
    assert_eq!(not_json.reply().code, "BAD_HEADER");
    assert!(not_json.reply().fatal);

    let missing = decode(Opcode::Fetch, br#"{"queue":"requests/k"}"#, b"").unwrap_err();
    assert!(!missing.is_fatal());
    assert_eq!(missing.reply().code, "MALFORMED");
    assert_eq!(missing.reply().details.field.as_deref(), Some("max"));

    let bad_queue = decode(Opcode::Fetch, br#"{"queue":"nowhere","max":1}"#, b"").unwrap_err();
    assert_eq!(
        (bad_queue.reply().code.as_str(), bad_queue.reply().fatal),
        ("MALFORMED", false)
    );

    // Texts are checked before anything else: the bad id is not reported.
    let long = json(&h::SendRefusal {
        request_id: "not an id".into(),
        code: "NO_DATA".into(),
        reason: "r".repeat(gonets_types::TEXT_BYTES_MAX + 1),
    });
    let too_large = decode(Opcode::SendRefusal, &long, b"").unwrap_err().reply();
    assert_eq!(too_large.code, "TOO_LARGE");
    assert_eq!(too_large.details.field.as_deref(), Some("reason"));

    for op in [
        Opcode::Hello,
        Opcode::Ping,
        Opcode::AddCredits,
        Opcode::Push,
    ] {
        let e = decode(op, b"{}", b"").unwrap_err();
        assert_eq!(
            (e.reply().code.as_str(), e.is_fatal()),
            ("MALFORMED", false),
            "{op:?}"
        );
    }
}

/// The one frame `bytes` holds.
fn frame(bytes: &[u8]) -> Frame {
    let mut d = FrameDecoder::new(Limits {
        header_bytes_max: 1 << 16,
        body_bytes_max: 1 << 16,
    });
    d.extend(bytes);
    let f = d.next_frame().unwrap().expect("a whole frame");
    d.finish().unwrap();
    f
}

fn reply_frame(request: Opcode, result: Result<Reply, HubError>) -> Frame {
    let mut out = Vec::new();
    encode_reply(&mut out, request, 77, &result);
    let f = frame(&out);
    assert_eq!(f.header.correlation_id, 77);
    f
}

fn message(payload: &'static [u8]) -> Message {
    Message {
        queue: requests(),
        id: id(),
        reply_to: None,
        kind: DataKindId::new(KIND),
        from: ParticipantId::new("MVD"),
        body: DeliveryBody::Request,
        time_ms: 5,
        deadline_ms: 9,
        delivery_count: 1,
        test: false,
        transaction: None,
        payload: Bytes::from_static(payload),
        reader: 3,
    }
}

#[test]
fn given_every_reply_when_encoded_then_its_frame_reads_back_as_the_reply_header_of_its_opcode() {
    let accepted = Accepted {
        id: id(),
        time_ms: 5,
        duplicate: true,
    };
    let mut f = reply_frame(Opcode::SendRequest, Ok(Reply::Accepted(accepted)));
    assert_eq!(f.header.opcode, Opcode::SendRequest.reply());
    let a: h::Accepted = parse_header(&mut f.json).unwrap();
    assert_eq!(
        a,
        h::Accepted {
            id: id().to_string(),
            time_ms: 5,
            duplicate: true
        }
    );

    let two = vec![message(b"one"), message(b"three")];
    let mut f = reply_frame(Opcode::Fetch, Ok(Reply::Messages(two.clone())));
    let m: h::Messages = parse_header(&mut f.json).unwrap();
    assert_eq!(
        m.messages,
        two.iter().map(message_header).collect::<Vec<_>>()
    );
    assert_eq!(&f.body[..], b"onethree");

    let mut f = reply_frame(Opcode::Call, Ok(Reply::Message(message(b"answer"))));
    assert_eq!(f.header.opcode, Opcode::Call.reply());
    let m: h::Messages = parse_header(&mut f.json).unwrap();
    assert_eq!((m.messages.len(), &f.body[..]), (1, &b"answer"[..]));

    let f = reply_frame(Opcode::Nack, Ok(Reply::Done));
    assert_eq!(
        (f.header.opcode, &f.json[..]),
        (Opcode::Nack.reply(), &b"{}"[..])
    );

    let view = StatusView {
        request_id: id(),
        answer_id: None,
        kind: DataKindId::new(KIND),
        consumer: ParticipantId::new("MVD"),
        provider: ParticipantId::new("FNS"),
        deadline_ms: 9,
        events: vec![HistoryEvent {
            kind: EventKind::Accepted,
            time_ms: 5,
            count: 0,
        }],
    };
    let mut f = reply_frame(Opcode::Status, Ok(Reply::Status(view.clone())));
    let s: h::StatusReply = parse_header(&mut f.json).unwrap();
    assert_eq!(s, status_reply(&view));

    let stats = QueueStats {
        depth: 4,
        in_flight: 1,
        oldest_age_ms: 30,
    };
    let mut f = reply_frame(Opcode::QueueStats, Ok(Reply::Stats(stats)));
    let s: h::QueueStatsReply = parse_header(&mut f.json).unwrap();
    assert_eq!((s.depth, s.in_flight, s.oldest_age_ms), (4, 1, 30));

    let mut f = reply_frame(Opcode::Ack, Err(HubError::NotFound));
    assert_eq!(f.header.opcode, Opcode::Error);
    let e: h::ErrorReply = parse_header(&mut f.json).unwrap();
    assert_eq!(e.to_hub(), Some(HubError::NotFound));
}
