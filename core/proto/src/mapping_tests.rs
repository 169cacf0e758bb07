//! The wire mapping of operations: request frames into commands
//! (`request`), replies into frames (`reply`).

use super::*;
use bytes::Bytes;
use gonets_types::{
    AcceptanceReceipt, Accepted, AnswerBody, Command, DeliveryBody, EventKind, HistoryEvent,
    Message, NewRequest, QueueStats, Reply,
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
        signature: None,
        signature_key_id: None,
        kind: KIND.into(),
        idempotency_key: Some("k-1".into()),
        test: true,
        transaction: Some("case-9".into()),
        state_secret: false,
        expires_in_ms: Some(1_500),
        attachments: vec![h::Attachment {
            digest: "ab".repeat(32),
            size_bytes: 1 << 30,
        }],
    };
    let request = NewRequest {
        idempotency_key: Some("k-1".into()),
        test: true,
        transaction: Some("case-9".into()),
        expires_in_ms: Some(1_500),
        attachments: vec![gonets_types::AttachmentRef {
            digest: gonets_types::Digest([0xab; 32]),
            size_bytes: 1 << 30,
        }],
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
                signature: None,
                signature_key_id: None,
                request_id: id().to_string(),
                attachments: Vec::new(),
            }),
            Command::SendResponse {
                request_id: id(),
                payload: Bytes::from_static(b"payload"),
                attachments: Vec::new(),
            },
        ),
        (
            Opcode::SendRefusal,
            json(&h::SendRefusal {
                signature: None,
                signature_key_id: None,
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
            Opcode::NackMany,
            json(&h::NackMany {
                queue: queue.clone(),
                ids: vec![id().to_string()],
                lease: 42,
                delay_ms: 250,
            }),
            Command::NackMany {
                queue: requests(),
                ids: vec![id()],
                reader: 42,
                delay_ms: 250,
            },
        ),
        (
            Opcode::NackMany,
            format!(r#"{{"queue":"{queue}","ids":["{}"],"lease":42}}"#, id()).into_bytes(),
            Command::NackMany {
                queue: requests(),
                ids: vec![id()],
                reader: 42,
                delay_ms: 0,
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
        signature: None,
        signature_key_id: None,
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
        digest: None,
        receipt: None,
        signature: None,
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
        attachments: Vec::new(),
    }
}

#[test]
fn given_every_reply_when_encoded_then_its_frame_reads_back_as_the_reply_header_of_its_opcode() {
    let accepted = Accepted {
        receipt: None,
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
            receipt: None,
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
        notice: None,
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

mod round_trip {
    use super::*;
    use gonets_types::{AnswerBody, ReplyKind};
    use proptest::prelude::*;

    fn text() -> impl Strategy<Value = String> {
        "[a-z0-9:.-]{1,24}"
    }

    fn queue() -> impl Strategy<Value = QueueId> {
        prop_oneof![
            text().prop_map(|k| QueueId::Requests(DataKindId::new(&k))),
            text().prop_map(|p| QueueId::Answers(ParticipantId::new(&p))),
        ]
    }

    fn message_id() -> impl Strategy<Value = MessageId> {
        (any::<u32>(), 0..=MessageId::SHARD_MAX, any::<u64>())
            .prop_map(|(ms, shard, seq)| MessageId::new(u64::from(ms), shard, seq))
    }

    fn payload() -> impl Strategy<Value = Bytes> {
        proptest::collection::vec(any::<u8>(), 0..64).prop_map(Bytes::from)
    }

    fn new_request() -> impl Strategy<Value = NewRequest> {
        let texts = (
            text(),
            proptest::option::of(text()),
            proptest::option::of(text()),
        );
        let flags = (
            any::<bool>(),
            any::<bool>(),
            proptest::option::of(any::<u64>()),
        );
        (texts, payload(), flags, attachments()).prop_map(
            |(
                (kind, key, transaction),
                payload,
                (test, state_secret, expires_in_ms),
                attachments,
            )| {
                NewRequest {
                    kind: DataKindId::new(&kind),
                    payload,
                    idempotency_key: key,
                    test,
                    transaction,
                    state_secret,
                    expires_in_ms,
                    attachments,
                }
            },
        )
    }

    /// Up to 3 attachment references, each its own digest, none empty.
    fn attachments() -> impl Strategy<Value = Vec<gonets_types::AttachmentRef>> {
        (
            any::<[u8; 32]>(),
            proptest::collection::vec(1..=u64::MAX, 0..=3),
        )
            .prop_map(|(seed, sizes)| {
                sizes
                    .into_iter()
                    .enumerate()
                    .map(|(i, size_bytes)| {
                        let mut digest = seed;
                        digest[0] = i as u8;
                        gonets_types::AttachmentRef {
                            digest: gonets_types::Digest(digest),
                            size_bytes,
                        }
                    })
                    .collect()
            })
    }

    fn refusal_code() -> impl Strategy<Value = RefusalCode> {
        proptest::sample::select(RefusalCode::ALL.to_vec())
    }

    fn signature() -> impl Strategy<Value = gonets_types::SenderSignature> {
        (
            "[!-~]{1,64}",
            proptest::collection::vec(any::<u8>(), 1..=256),
        )
            .prop_map(|(key_id, bytes)| gonets_types::SenderSignature {
                key_id,
                bytes: bytes.into(),
            })
    }

    fn receipt() -> impl Strategy<Value = gonets_types::Receipt> {
        let ids = (message_id(), proptest::option::of(message_id()));
        let numbers = (any::<u64>(), any::<u16>(), any::<u64>());
        (
            ids,
            any::<[u8; 32]>(),
            (text(), text()),
            numbers,
            signature(),
        )
            .prop_map(
                |((id, reply_to), digest, (sender, kind), (time_ms, shard, offset), s)| {
                    gonets_types::Receipt {
                        message_id: id,
                        reply_to,
                        digest: gonets_types::Digest(digest),
                        sender: ParticipantId::new(&sender),
                        kind: DataKindId::new(&kind),
                        time_ms,
                        shard,
                        offset,
                        key_id: s.key_id,
                        signature: s.bytes,
                        proof: shard.is_multiple_of(2).then(|| gonets_types::ReceiptProof {
                            index: (offset % 8) as u32,
                            count: 8,
                            path: vec![gonets_types::Digest(digest); 3],
                        }),
                    }
                },
            )
    }

    /// A signable command, signed.
    fn signed_command() -> impl Strategy<Value = Command> {
        let signable = prop_oneof![
            new_request().prop_map(Command::SendRequest),
            new_request().prop_map(Command::Call),
            proptest::collection::vec(new_request(), 1..4).prop_map(|rs| {
                let kind = rs[0].kind.clone();
                Command::SendRequests(
                    rs.into_iter()
                        .map(|r| NewRequest {
                            kind: kind.clone(),
                            // A batch's requests carry no attachments.
                            attachments: Vec::new(),
                            ..r
                        })
                        .collect(),
                )
            }),
            (message_id(), payload()).prop_map(|(request_id, payload)| {
                Command::SendResponse {
                    request_id,
                    payload,
                    attachments: Vec::new(),
                }
            }),
            (message_id(), refusal_code(), "[ -~]{0,40}").prop_map(|(request_id, code, reason)| {
                Command::SendRefusal {
                    request_id,
                    code,
                    reason,
                }
            }),
        ];
        (signable, signature()).prop_map(|(c, s)| c.signed(s))
    }

    fn command() -> impl Strategy<Value = Command> {
        let reader = READER_OF_SESSION;
        prop_oneof![
            signed_command(),
            new_request().prop_map(Command::SendRequest),
            new_request().prop_map(Command::Call),
            (queue(), any::<u32>(), any::<u64>()).prop_map(move |(queue, max, wait_ms)| {
                Command::Fetch {
                    queue,
                    max,
                    wait_ms,
                    reader,
                }
            }),
            (queue(), any::<u32>()).prop_map(move |(queue, credits)| Command::Subscribe {
                queue,
                credits,
                reader
            }),
            (queue(), message_id(), any::<u64>()).prop_map(|(queue, id, reader)| Command::Ack {
                queue,
                id,
                reader
            }),
            (queue(), message_id(), any::<u64>(), any::<u64>()).prop_map(
                |(queue, id, reader, delay_ms)| Command::Nack {
                    queue,
                    id,
                    reader,
                    delay_ms
                }
            ),
            (message_id(), payload(), attachments()).prop_map(
                |(request_id, payload, attachments)| Command::SendResponse {
                    request_id,
                    payload,
                    attachments,
                }
            ),
            (message_id(), refusal_code(), "[ -~]{0,40}").prop_map(|(request_id, code, reason)| {
                Command::SendRefusal {
                    request_id,
                    code,
                    reason,
                }
            }),
            (text(), proptest::collection::vec(new_request(), 1..6)).prop_map(|(kind, rs)| {
                // One kind throughout, as `check_send_batch` asks.
                let kind = DataKindId::new(&kind);
                Command::SendRequests(
                    rs.into_iter()
                        .map(|r| NewRequest {
                            kind: kind.clone(),
                            attachments: Vec::new(),
                            ..r
                        })
                        .collect(),
                )
            }),
            (
                queue(),
                proptest::collection::vec(message_id(), 1..6),
                any::<u64>()
            )
                .prop_map(|(queue, ids, reader)| Command::AckMany {
                    queue,
                    ids,
                    reader
                }),
            (
                queue(),
                proptest::collection::vec(message_id(), 1..6),
                any::<u64>(),
                any::<u64>()
            )
                .prop_map(|(queue, ids, reader, delay_ms)| Command::NackMany {
                    queue,
                    ids,
                    reader,
                    delay_ms
                }),
            message_id().prop_map(|id| Command::Status { id }),
            queue().prop_map(|queue| Command::QueueStats { queue }),
            (text(), any::<u64>()).prop_map(|(kind, size_bytes)| Command::UploadBegin {
                kind: DataKindId::new(&kind),
                size_bytes
            }),
            (any::<u128>(), any::<u64>(), any::<u32>(), payload()).prop_map(
                |(id, offset, crc32c, bytes)| Command::UploadChunk {
                    upload: gonets_types::UploadId(id),
                    offset,
                    crc32c,
                    bytes
                }
            ),
            any::<u128>().prop_map(|id| Command::UploadStatus {
                upload: gonets_types::UploadId(id)
            }),
            (any::<u128>(), any::<[u8; 32]>()).prop_map(|(id, d)| Command::UploadFinish {
                upload: gonets_types::UploadId(id),
                digest: gonets_types::Digest(d)
            }),
            (
                any::<[u8; 32]>(),
                any::<u64>(),
                1..=gonets_types::CHUNK_BYTES_MAX
            )
                .prop_map(|(d, offset, bytes_max)| Command::ReadAttachment {
                    digest: gonets_types::Digest(d),
                    offset,
                    bytes_max
                }),
        ]
    }

    fn message() -> impl Strategy<Value = Message> {
        let body = prop_oneof![
            Just(DeliveryBody::Request),
            Just(DeliveryBody::Answer(AnswerBody::Data)),
            (refusal_code(), "[ -~]{0,40}").prop_map(|(code, reason)| {
                DeliveryBody::Answer(AnswerBody::Refusal { code, reason })
            }),
        ];
        let ids = (queue(), message_id(), proptest::option::of(message_id()));
        let names = (text(), text(), proptest::option::of(text()));
        let numbers = (
            any::<u64>(),
            any::<u64>(),
            any::<u32>(),
            any::<u64>(),
            any::<bool>(),
        );
        let trust = (
            proptest::option::of(any::<[u8; 32]>()),
            proptest::option::of(signature()),
            proptest::option::of(receipt()),
            attachments(),
        );
        (ids, names, body, numbers, (payload(), trust)).prop_map(
            |((queue, id, reply_to), (kind, from, transaction), body, n, (payload, trust))| {
                Message {
                    digest: trust.0.map(gonets_types::Digest),
                    signature: trust.1,
                    receipt: trust.2.map(Box::new),
                    queue,
                    id,
                    reply_to,
                    kind: DataKindId::new(&kind),
                    from: ParticipantId::new(&from),
                    body,
                    time_ms: n.0,
                    deadline_ms: n.1,
                    delivery_count: n.2,
                    test: n.4,
                    transaction,
                    payload,
                    reader: n.3,
                    attachments: trust.3,
                }
            },
        )
    }

    fn reply() -> impl Strategy<Value = Reply> {
        let event = (1u8..=10, any::<u64>(), any::<u32>()).prop_map(|(k, time_ms, count)| {
            let kind = EventKind::from_u8(k).expect("1 to 10 are event kinds");
            HistoryEvent {
                kind,
                time_ms,
                count,
            }
        });
        let view = (
            message_id(),
            proptest::option::of(message_id()),
            (text(), text(), text()),
        )
            .prop_flat_map(move |(request_id, answer_id, (kind, consumer, provider))| {
                let notice = proptest::option::of((
                    any::<u64>(),
                    proptest::option::of(any::<u64>()),
                    any::<u64>(),
                ));
                (
                    any::<u64>(),
                    proptest::collection::vec(event.clone(), 0..5),
                    notice,
                )
                    .prop_map(move |(deadline_ms, events, notice)| StatusView {
                        request_id,
                        answer_id,
                        kind: DataKindId::new(&kind),
                        consumer: ParticipantId::new(&consumer),
                        provider: ParticipantId::new(&provider),
                        deadline_ms,
                        events,
                        notice: notice.map(|(since_ms, last_read_ms, waiting)| {
                            gonets_types::ProviderNotice {
                                provider: ParticipantId::new(&provider),
                                unreachable_since_ms: since_ms,
                                last_read_ms,
                                waiting,
                            }
                        }),
                    })
            });
        prop_oneof![
            (
                message_id(),
                any::<u64>(),
                any::<bool>(),
                proptest::option::of(receipt())
            )
                .prop_map(|(id, time_ms, duplicate, receipt)| {
                    Reply::Accepted(Accepted {
                        receipt: receipt.map(|r| AcceptanceReceipt::One(Box::new(r))),
                        id,
                        time_ms,
                        duplicate,
                    })
                }),
            message().prop_map(Reply::Message),
            proptest::collection::vec(message(), 0..4).prop_map(Reply::Messages),
            (any::<u128>(), any::<u64>(), any::<u64>()).prop_map(
                |(id, size_bytes, durable_bytes)| {
                    Reply::Upload(gonets_types::UploadState {
                        upload: gonets_types::UploadId(id),
                        size_bytes,
                        durable_bytes,
                    })
                }
            ),
            (any::<[u8; 32]>(), 1..=u64::MAX).prop_map(|(d, size_bytes)| {
                Reply::Attachment(gonets_types::AttachmentRef {
                    digest: gonets_types::Digest(d),
                    size_bytes,
                })
            }),
            (any::<u64>(), any::<u64>(), payload()).prop_map(|(size_bytes, offset, bytes)| {
                Reply::AttachmentBytes(gonets_types::AttachmentBytes {
                    size_bytes,
                    offset,
                    bytes,
                })
            }),
            Just(Reply::Done),
            view.prop_map(Reply::Status),
            proptest::collection::vec(batch_result(), 0..5).prop_map(Reply::AcceptedMany),
            (proptest::collection::vec(batch_result(), 1..5), receipt())
                .prop_map(|(results, r)| Reply::AcceptedMany(with_batch_receipt(results, r))),
            proptest::collection::vec((message_id(), hub_error()), 0..5).prop_map(Reply::AckedMany),
            (any::<u64>(), any::<u64>(), any::<u64>()).prop_map(|(depth, in_flight, age)| {
                Reply::Stats(QueueStats {
                    depth,
                    in_flight,
                    oldest_age_ms: age,
                })
            }),
        ]
    }

    /// Errors a slot of a batch's reply may hold.
    fn hub_error() -> impl Strategy<Value = HubError> {
        prop_oneof![
            Just(HubError::NotFound),
            Just(HubError::QuotaExceeded),
            Just(HubError::StateSecret),
            (any::<u64>(), any::<u64>()).prop_map(|(size_bytes, size_bytes_max)| {
                HubError::TooLarge {
                    size_bytes,
                    size_bytes_max,
                }
            }),
            message_id().prop_map(|original| HubError::Duplicate { original }),
        ]
    }

    /// One slot of a `send_requests` reply.
    fn batch_result() -> impl Strategy<Value = Result<Accepted, HubError>> {
        prop_oneof![
            (message_id(), any::<u64>(), any::<bool>()).prop_map(|(id, time_ms, duplicate)| {
                Ok(Accepted {
                    receipt: None,
                    id,
                    time_ms,
                    duplicate,
                })
            }),
            hub_error().prop_map(Err),
        ]
    }

    /// `results` with one batch receipt naming each accepted, non-repeat
    /// slot (as the hub makes them), built from `r`'s common fields.
    fn with_batch_receipt(
        mut results: Vec<Result<Accepted, HubError>>,
        r: gonets_types::Receipt,
    ) -> Vec<Result<Accepted, HubError>> {
        let entries = results
            .iter()
            .flatten()
            .filter(|a| !a.duplicate)
            .enumerate()
            .map(|(i, a)| gonets_types::trust::BatchReceiptEntry {
                message_id: a.id,
                digest: r.digest,
                offset: r.offset.wrapping_add(i as u64),
            })
            .collect::<Vec<_>>();
        if entries.is_empty() {
            return results;
        }
        let batch = std::sync::Arc::new(gonets_types::BatchReceipt {
            sender: r.sender,
            kind: r.kind,
            time_ms: r.time_ms,
            shard: r.shard,
            entries,
            key_id: r.key_id,
            signature: r.signature,
        });
        for a in results.iter_mut().flatten().filter(|a| !a.duplicate) {
            a.receipt = Some(AcceptanceReceipt::Batch(batch.clone()));
        }
        results
    }

    /// The request opcode of a reply kind (any opcode whose reply it is).
    fn request_of(kind: ReplyKind) -> Opcode {
        match kind {
            ReplyKind::Accepted => Opcode::SendRequest,
            ReplyKind::Message => Opcode::Call,
            ReplyKind::Messages => Opcode::Fetch,
            ReplyKind::Done => Opcode::Ack,
            ReplyKind::Status => Opcode::Status,
            ReplyKind::Stats => Opcode::QueueStats,
            ReplyKind::AcceptedMany => Opcode::SendRequests,
            ReplyKind::AckedMany => Opcode::AckMany,
            ReplyKind::Upload => Opcode::UploadStatus,
            ReplyKind::Attachment => Opcode::UploadFinish,
            ReplyKind::AttachmentBytes => Opcode::ReadAttachment,
        }
    }

    proptest! {
        /// Whatever a client encodes, the server decodes into the same command.
        #[test]
        fn given_any_command_when_encoded_and_decoded_then_the_same_command(
            command in command(), correlation_id in any::<u64>()
        ) {
            let mut out = Vec::new();
            let op = encode_command(&mut out, correlation_id, &command);
            let mut f = frame(&out);
            prop_assert_eq!(
                (f.header.opcode, f.header.correlation_id),
                (op, correlation_id)
            );
            prop_assert_eq!(decode_command(op, &mut f.json, f.body.clone()), Ok(command));
        }

        /// The borrowed message header the hub writes is byte for byte the
        /// JSON of the owned `MessageHeader` (`message_out.rs`).
        #[test]
        fn given_any_message_when_its_header_is_written_borrowed_then_the_same_json_as_owned(
            m in message()
        ) {
            let owned = serde_json::to_vec(&message_header(&m)).unwrap();
            let borrowed = serde_json::to_vec(&crate::message_out::MessageOut(&m)).unwrap();
            prop_assert_eq!(String::from_utf8(borrowed).unwrap(), String::from_utf8(owned).unwrap());
        }

        /// A single send's reply, written borrowed, is byte for byte the
        /// JSON of the owned `header::Accepted`.
        #[test]
        fn given_any_acceptance_when_written_borrowed_then_the_same_json_as_owned(
            id in message_id(), time_ms in any::<u64>(), duplicate in any::<bool>(),
            receipt in proptest::option::of(receipt())
        ) {
            let owned = h::Accepted {
                id: id.to_text(),
                time_ms,
                duplicate,
                receipt: receipt.as_ref().map(crate::trust_wire::receipt_header),
            };
            let a = Accepted {
                id,
                time_ms,
                duplicate,
                receipt: receipt.map(|r| AcceptanceReceipt::One(Box::new(r))),
            };
            let borrowed = serde_json::to_string(&crate::message_out::AcceptedOut(&a)).unwrap();
            prop_assert_eq!(borrowed, serde_json::to_string(&owned).unwrap());
        }

        /// Whatever the server encodes, a client decodes into the same reply.
        #[test]
        fn given_any_reply_when_encoded_and_decoded_then_the_same_reply(reply in reply()) {
            let kind = reply.kind();
            let mut out = Vec::new();
            encode_reply(&mut out, request_of(kind), 9, &Ok(reply.clone()));
            let mut f = frame(&out);
            prop_assert_eq!(f.header.opcode, request_of(kind).reply());
            prop_assert_eq!(decode_reply(kind, &mut f), Ok(Ok(reply)));
        }

        /// The head and the payloads, sent back to back, are the whole frame's bytes.
        #[test]
        fn given_any_reply_when_encoded_by_its_head_then_head_and_payloads_are_the_frame(
            reply in reply()
        ) {
            let kind = reply.kind();
            let mut whole = Vec::new();
            encode_reply(&mut whole, request_of(kind), 9, &Ok(reply.clone()));
            let mut parts = Vec::new();
            let payloads = encode_reply_head(&mut parts, request_of(kind), 9, &Ok(reply));
            for p in &payloads {
                parts.extend_from_slice(p);
            }
            prop_assert_eq!(parts, whole);
        }
    }

    #[test]
    fn given_an_error_reply_when_decoded_then_its_hub_error_comes_back() {
        let mut out = Vec::new();
        let e = HubError::AlreadyAnswered(id());
        encode_reply(&mut out, Opcode::SendResponse, 9, &Err(e.clone()));
        let reply = decode_reply(ReplyKind::Done, &mut frame(&out)).unwrap();
        assert_eq!(reply.map_err(|r| r.to_hub()), Err(Some(e)));
    }

    #[test]
    fn given_a_pushed_message_when_decoded_then_it_comes_back_equal() {
        let m = super::message(b"pushed");
        let mut out = Vec::new();
        encode_push(&mut out, 5, &m);
        let mut f = frame(&out);
        assert_eq!(
            (f.header.opcode, f.header.correlation_id),
            (Opcode::Push, 5)
        );
        assert_eq!(decode_push(&mut f), Ok(m));
    }
}

#[test]
fn given_bad_batches_when_decoded_then_each_is_refused_malformed_and_not_fatal() {
    let one = h::BatchRequest {
        payload_bytes: 3,
        ..h::BatchRequest::default()
    };
    let batch = |messages: Vec<h::BatchRequest>| {
        json(&h::SendRequests {
            signature: None,
            signature_key_id: None,
            kind: KIND.into(),
            messages,
        })
    };
    let malformed = |e: RequestError| {
        assert!(!e.is_fatal(), "{e:?}");
        let reply = e.reply();
        assert_eq!(reply.code, "MALFORMED", "{reply:?}");
        reply.message
    };
    let empty = decode(Opcode::SendRequests, &batch(vec![]), b"").unwrap_err();
    assert!(malformed(empty).contains("empty batch"));
    let many = vec![one.clone(); gonets_types::BATCH_MESSAGES_MAX + 1];
    let too_many = decode(Opcode::SendRequests, &batch(many), b"").unwrap_err();
    assert!(malformed(too_many).contains("exceeds the limit"));
    let short_body = decode(Opcode::SendRequests, &batch(vec![one.clone(), one]), b"abc");
    assert!(malformed(short_body.unwrap_err()).contains("add up to 6 bytes"));
    let no_ids = json(&h::AckMany {
        queue: format!("requests/{KIND}"),
        ids: vec![],
        lease: 1,
    });
    let no_ids = decode(Opcode::AckMany, &no_ids, b"").unwrap_err();
    assert!(malformed(no_ids).contains("empty batch"));
    let bad_id = json(&h::AckMany {
        queue: format!("requests/{KIND}"),
        ids: vec![id().to_string(), "not-an-id".into()],
        lease: 1,
    });
    malformed(decode(Opcode::AckMany, &bad_id, b"").unwrap_err());
    let nack_many = |ids: Vec<String>| {
        json(&h::NackMany {
            queue: format!("requests/{KIND}"),
            ids,
            lease: 1,
            delay_ms: 5,
        })
    };
    let no_ids = decode(Opcode::NackMany, &nack_many(vec![]), b"").unwrap_err();
    assert!(malformed(no_ids).contains("empty batch"));
    let many = vec![id().to_string(); gonets_types::BATCH_MESSAGES_MAX + 1];
    let too_many = decode(Opcode::NackMany, &nack_many(many), b"").unwrap_err();
    assert!(malformed(too_many).contains("exceeds the limit"));
}

#[test]
fn given_a_batch_frame_when_decoded_then_each_payload_is_its_slice_of_the_body() {
    let messages = vec![
        h::BatchRequest {
            payload_bytes: 2,
            idempotency_key: Some("k-1".into()),
            ..h::BatchRequest::default()
        },
        h::BatchRequest {
            payload_bytes: 0,
            test: true,
            ..h::BatchRequest::default()
        },
        h::BatchRequest {
            payload_bytes: 3,
            ..h::BatchRequest::default()
        },
    ];
    let header = json(&h::SendRequests {
        signature: None,
        signature_key_id: None,
        kind: KIND.into(),
        messages,
    });
    let Ok(Command::SendRequests(rs)) = decode(Opcode::SendRequests, &header, b"abcde") else {
        panic!("a valid batch");
    };
    let payloads: Vec<&[u8]> = rs.iter().map(|r| &r.payload[..]).collect();
    assert_eq!(payloads, [&b"ab"[..], b"", b"cde"]);
    assert_eq!(rs[0].idempotency_key.as_deref(), Some("k-1"));
    assert!(rs[1].test && !rs[0].test);
    assert!(rs.iter().all(|r| r.kind == DataKindId::new(KIND)));
}

/// The wire header of a delivered message as the owned struct clients
/// decode into. Tests only: the hub writes the same JSON from the message
/// itself (`message_out.rs`), and the tests hold the two equal.
fn message_header(m: &Message) -> h::MessageHeader {
    let (body, refusal_code, refusal_reason) = match &m.body {
        DeliveryBody::Request => ("request", None, None),
        DeliveryBody::Answer(AnswerBody::Data) => ("data", None, None),
        DeliveryBody::Answer(AnswerBody::Refusal { code, reason }) => (
            "refusal",
            Some(code.as_str().to_string()),
            Some(reason.clone()),
        ),
    };
    h::MessageHeader {
        digest: m.digest.map(|d| d.to_hex()),
        signature: m
            .signature
            .as_ref()
            .map(|s| crate::trust_wire::base64_of(&s.bytes)),
        signature_key_id: m.signature.as_ref().map(|s| s.key_id.clone()),
        receipt: m.receipt.as_deref().map(crate::trust_wire::receipt_header),
        queue: crate::queue_name(&m.queue),
        id: m.id.to_text(),
        reply_to: m.reply_to.map(MessageId::to_text),
        kind: m.kind.to_string(),
        from: m.from.to_string(),
        body: body.into(),
        refusal_code,
        refusal_reason,
        time_ms: m.time_ms,
        deadline_ms: m.deadline_ms,
        delivery_count: m.delivery_count,
        test: m.test,
        transaction: m.transaction.clone(),
        lease: m.lease_holder(),
        payload_bytes: u32::try_from(m.payload.len())
            .expect("payloads are bounded by the registry"),
        attachments: crate::attachment_wire::ref_headers(&m.attachments),
    }
}

#[test]
fn given_bad_signature_fields_when_decoded_then_each_is_refused_malformed_and_not_fatal() {
    let send = |signature: Option<String>, key: Option<&str>| {
        json(&h::SendRequest {
            kind: KIND.into(),
            signature,
            signature_key_id: key.map(str::to_owned),
            ..h::SendRequest::default()
        })
    };
    let b64 = |n: usize| crate::trust_wire::base64_of(&vec![7u8; n]);
    let cases = [
        (send(Some(b64(64)), None), "go together"),
        (send(None, Some("k1")), "go together"),
        (send(Some("not base64!".into()), Some("k1")), "not base64"),
        (send(Some(b64(257)), Some("k1")), "signature of 257 bytes"),
        (send(Some(b64(400)), Some("k1")), "not base64"),
        (
            send(Some(String::new()), Some("k1")),
            "signature of 0 bytes",
        ),
        (send(Some(b64(64)), Some("")), "key id of 0 bytes"),
        (
            send(Some(b64(64)), Some(&"k".repeat(65))),
            "key id of 65 bytes",
        ),
    ];
    for (header, why) in cases {
        let e = decode(Opcode::SendRequest, &header, b"p").unwrap_err();
        assert!(!e.is_fatal(), "{e:?}");
        let reply = e.reply();
        assert_eq!(reply.code, "MALFORMED", "{reply:?}");
        assert!(reply.message.contains(why), "{why}: {}", reply.message);
    }
    let good = decode(Opcode::SendRequest, &send(Some(b64(64)), Some("k1")), b"p").unwrap();
    match good {
        Command::Signed { signature, command } => {
            assert_eq!(signature.key_id, "k1");
            assert_eq!(&signature.bytes[..], &[7u8; 64][..]);
            assert!(matches!(*command, Command::SendRequest(_)));
        }
        other => panic!("{other:?}"),
    }
    let refusal = json(&h::SendRefusal {
        request_id: id().to_text(),
        code: "NO_DATA".into(),
        signature: Some(b64(64)),
        ..h::SendRefusal::default()
    });
    let e = decode(Opcode::SendRefusal, &refusal, b"").unwrap_err();
    assert_eq!(e.reply().code, "MALFORMED");
}

#[test]
fn given_a_reply_with_a_bad_digest_or_receipt_when_decoded_then_a_bad_reply_not_a_panic() {
    let mut m = message(b"x");
    m.digest = Some(gonets_types::Digest([1; 32]));
    let mut header = message_header(&m);
    header.digest = Some("zz".into());
    let mut f = frame(&{
        let mut out = Vec::new();
        encode(&mut out, Opcode::Push, 1, &header, &[&b"x"[..]]);
        out
    });
    assert!(decode_push(&mut f).is_err());
    let accepted = h::Accepted {
        id: id().to_text(),
        time_ms: 1,
        duplicate: false,
        receipt: Some(crate::trust_wire::ReceiptHeader {
            message_id: id().to_text(),
            digest: "00".repeat(32),
            signature: "%%%".into(),
            ..Default::default()
        }),
    };
    let mut out = Vec::new();
    encode(&mut out, Opcode::SendRequest.reply(), 2, &accepted, &[]);
    let mut f = frame(&out);
    assert!(decode_reply(gonets_types::ReplyKind::Accepted, &mut f).is_err());
}
