//! Frame decoder tests, including a proptest fuzzer run in CI for a bounded
//! number of cases (`PROPTEST_CASES` raises it).

use super::*;
use proptest::prelude::*;

fn limits() -> Limits {
    Limits {
        header_bytes_max: 1024,
        body_bytes_max: 4096,
    }
}

fn frame_bytes(op: Opcode, id: u64, json: &[u8], body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_frame(&mut out, op, id, json, &[body]);
    out
}

#[test]
fn given_a_frame_split_anywhere_when_decoded_then_the_same_frame_comes_out() {
    let bytes = frame_bytes(Opcode::SendRequest, 42, br#"{"kind":"k"}"#, b"payload");
    for cut in 0..=bytes.len() {
        let mut d = FrameDecoder::new(limits());
        d.extend(&bytes[..cut]);
        let first = d.next_frame().unwrap();
        d.extend(&bytes[cut..]);
        let frame = match first {
            Some(f) => f,
            None => d.next_frame().unwrap().expect("whole frame given"),
        };
        assert_eq!(frame.header.opcode, Opcode::SendRequest);
        assert_eq!(frame.header.correlation_id, 42);
        assert_eq!(&frame.json[..], br#"{"kind":"k"}"#);
        assert_eq!(&frame.body[..], b"payload");
        assert!(d.next_frame().unwrap().is_none());
        d.finish().unwrap();
    }
}

#[test]
fn given_a_large_frame_when_read_in_place_in_uneven_pieces_then_the_same_frames_come_out() {
    let lim = Limits {
        header_bytes_max: 1024,
        body_bytes_max: 1 << 20,
    };
    let body: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let mut stream = frame_bytes(Opcode::SendRequest, 7, br#"{"kind":"k"}"#, &body);
    stream.extend(frame_bytes(Opcode::Ping, 8, b"{}", b"x"));
    let mut d = FrameDecoder::new(lim);
    let (mut at, mut frames, mut direct_reads) = (0, Vec::new(), 0);
    // Bounded by the stream's length: every round takes at least one byte.
    while at < stream.len() {
        let piece = 1 + (at * 7919) % 50_000;
        let end = (at + piece).min(stream.len());
        match d.direct_buffer() {
            Some(place) => {
                let n = place.len().min(end - at);
                place[..n].copy_from_slice(&stream[at..at + n]);
                d.direct_filled(n);
                at += n;
                direct_reads += 1;
            }
            None => {
                d.extend(&stream[at..end]);
                at = end;
            }
        }
        while let Some(f) = d.next_frame().unwrap() {
            frames.push(f);
        }
    }
    assert!(direct_reads > 1, "the large frame was read in place");
    assert_eq!(frames.len(), 2);
    assert_eq!(frames[0].header.correlation_id, 7);
    assert_eq!(&frames[0].json[..], br#"{"kind":"k"}"#);
    assert_eq!(&frames[0].body[..], &body[..]);
    assert_eq!(frames[1].header.opcode, Opcode::Ping);
    assert_eq!(&frames[1].body[..], b"x");
    d.finish().unwrap();
}

#[test]
fn given_an_oversized_body_when_the_fixed_header_arrives_then_refused_before_allocation() {
    let mut header = Vec::new();
    FrameHeader {
        opcode: Opcode::SendRequest,
        flags: 0,
        correlation_id: 1,
        header_bytes: 2,
        body_bytes: u32::MAX,
    }
    .encode(&mut header);
    let mut d = FrameDecoder::new(limits());
    let capacity = d.buffer_mut().capacity();
    d.extend(&header);
    assert_eq!(
        d.next_frame(),
        Err(FrameError::BodyTooLarge {
            body_bytes: u32::MAX,
            body_bytes_max: 4096
        })
    );
    assert!(d.buffer_mut().capacity() <= capacity.max(64 * 1024));
}

#[test]
fn given_an_oversized_header_when_decoded_then_header_too_large() {
    let bytes = frame_bytes(Opcode::Ping, 1, &[b' '; 2000], b"");
    let mut d = FrameDecoder::new(limits());
    d.extend(&bytes);
    assert!(matches!(
        d.next_frame(),
        Err(FrameError::HeaderTooLarge { .. })
    ));
}

#[test]
fn given_bad_magic_version_opcode_or_flags_when_decoded_then_each_has_its_error() {
    let good = frame_bytes(Opcode::Ping, 1, b"{}", b"");
    type Case = (usize, u8, fn(&FrameError) -> bool);
    let cases: [Case; 4] = [
        (0, b'X', |e| matches!(e, FrameError::BadMagic(_))),
        (2, 9, |e| matches!(e, FrameError::UnsupportedVersion(9))),
        (3, 0x7F, |e| matches!(e, FrameError::UnknownOpcode(0x7F))),
        (4, 1, |e| matches!(e, FrameError::UnknownFlags(1))),
    ];
    for (at, value, expect) in cases {
        let mut bytes = good.clone();
        bytes[at] = value;
        let mut d = FrameDecoder::new(limits());
        d.extend(&bytes);
        let e = d.next_frame().unwrap_err();
        assert!(expect(&e), "byte {at} = {value}: got {e:?}");
    }
}

#[test]
fn given_a_stream_cut_inside_a_frame_when_finished_then_truncated() {
    let bytes = frame_bytes(Opcode::Ping, 1, b"{}", b"abc");
    let mut d = FrameDecoder::new(limits());
    d.extend(&bytes[..bytes.len() - 1]);
    assert!(d.next_frame().unwrap().is_none());
    assert!(matches!(d.finish(), Err(FrameError::Truncated { .. })));
}

#[test]
fn given_bad_json_when_parsed_then_malformed_not_a_panic() {
    for bad in [&b""[..], b"{", b"[]", b"{\"kind\":5}", b"\xff\xfe", b"null"] {
        let mut buf = bad.to_vec();
        assert!(matches!(
            parse_header::<header::SendRequest>(&mut buf),
            Err(HubError::Malformed(_))
        ));
    }
    let mut ok = br#"{"kind":"k","unknown_field":[1,2]}"#.to_vec();
    let h: header::SendRequest = parse_header(&mut ok).unwrap();
    assert_eq!(h.kind, "k");
}

#[test]
fn given_headers_of_every_size_and_failures_between_when_parsed_on_one_thread_then_each_reads_alone(
) {
    // The thread's reused simd-json buffers (`from_slice_reused`) must not
    // carry anything from one header to the next: not after a failure, not
    // after a header larger than the thread keeps, not from a longer one.
    let long_kind = "k".repeat(100 << 10);
    let cases: Vec<(Vec<u8>, Option<&str>)> = vec![
        (
            br#"{"kind":"first\u00e9","unknown_field":[1,2]}"#.to_vec(),
            Some("first\u{e9}"),
        ),
        (b"{\"kind\":\"broken".to_vec(), None),
        (br#"{"kind":"k2"}"#.to_vec(), Some("k2")),
        (
            format!(r#"{{"kind":"{long_kind}"}}"#).into_bytes(),
            Some(long_kind.as_str()),
        ),
        (br#"{"kind":"k3"}"#.to_vec(), Some("k3")),
        (b"[]".to_vec(), None),
        (br#"{"kind":"\"quoted\""}"#.to_vec(), Some("\"quoted\"")),
    ];
    for round in 0..3 {
        for (json, want) in &cases {
            let mut buf = json.clone();
            let got = parse_header::<header::SendRequest>(&mut buf).map(|h| h.kind);
            let mut again = json.clone();
            let request = parse_request::<header::SendRequest>(&mut again).map(|h| h.kind);
            match want {
                Some(kind) => {
                    assert_eq!(got.as_deref(), Ok(*kind), "round {round}");
                    assert_eq!(request.as_deref(), Ok(*kind), "round {round}");
                }
                None => {
                    assert!(got.is_err(), "round {round}: {got:?}");
                    assert!(request.is_err(), "round {round}: {request:?}");
                }
            }
        }
    }
}

/// A valid JSON value of `ty`.
fn sample(ty: header::FieldType) -> serde_json::Value {
    use header::FieldType;
    match ty {
        FieldType::String => "s".into(),
        FieldType::Bool => true.into(),
        FieldType::U32 | FieldType::U64 => 7.into(),
        FieldType::U8Array => serde_json::json!([1]),
        FieldType::StringArray => serde_json::json!(["s"]),
        FieldType::ObjectArray => serde_json::json!([]),
    }
}

/// Checks `T::FIELDS` says what serde reads: every field with a sample
/// value parses; a required one left out, or any one of the wrong type, is
/// named; an optional one left out (or a null optional string) parses.
fn check_fields<T: header::RequestHeader + Serialize + Default>() {
    use header::FieldType;
    let name = std::any::type_name::<T>();
    let full: serde_json::Map<String, serde_json::Value> = T::FIELDS
        .iter()
        .map(|f| (f.name.to_string(), sample(f.ty)))
        .collect();
    let parse = |m: &serde_json::Map<String, serde_json::Value>| {
        let mut json = serde_json::to_vec(m).unwrap();
        parse_request::<T>(&mut json).map(|_| ())
    };
    assert_eq!(parse(&full), Ok(()), "{name}: every field given");
    for f in T::FIELDS {
        let mut without = full.clone();
        without.remove(f.name);
        match parse(&without) {
            Ok(()) => assert!(
                !f.required,
                "{name}.{}: required, yet parses without",
                f.name
            ),
            Err(HeaderError::Field { field, .. }) => {
                assert!(
                    f.required,
                    "{name}.{}: optional, yet refused without",
                    f.name
                );
                assert_eq!(field, f.name);
            }
            Err(e) => panic!("{name}.{}: {e}", f.name),
        }
        let mut wrong = full.clone();
        wrong.insert(f.name.into(), serde_json::json!({"x": 1}));
        assert!(
            matches!(parse(&wrong), Err(HeaderError::Field { field, .. }) if field == f.name),
            "{name}.{}: a wrong type is named",
            f.name
        );
        if !f.required && f.ty == FieldType::String {
            let mut null = full.clone();
            null.insert(f.name.into(), serde_json::Value::Null);
            assert_eq!(parse(&null), Ok(()), "{name}.{}: null is absent", f.name);
        }
    }
    // Every field the type writes is listed.
    let written = serde_json::to_value(T::default()).unwrap();
    for key in written.as_object().unwrap().keys() {
        assert!(
            T::FIELDS.iter().any(|f| f.name == key),
            "{name}.{key} is not in FIELDS"
        );
    }
}

#[test]
fn given_every_request_header_when_fields_are_left_out_or_mistyped_then_the_field_list_says_what_serde_reads(
) {
    check_fields::<header::Hello>();
    check_fields::<header::SendRequest>();
    check_fields::<header::Fetch>();
    check_fields::<header::Subscribe>();
    check_fields::<header::AddCredits>();
    check_fields::<header::Unsubscribe>();
    check_fields::<header::Settle>();
    check_fields::<header::SendRequests>();
    check_fields::<header::BatchRequest>();
    check_fields::<header::AckMany>();
    check_fields::<header::NackMany>();
    check_fields::<header::SendResponse>();
    check_fields::<header::SendRefusal>();
    check_fields::<header::Status>();
    check_fields::<header::QueueStats>();
}

#[test]
fn given_a_header_that_is_not_a_json_object_when_parsed_then_unparseable() {
    for bad in [
        &b""[..],
        b"{",
        b"{not json",
        b"[1]",
        b"5",
        b"null",
        b"\xff\xfe",
    ] {
        let mut buf = bad.to_vec();
        let r = parse_request::<header::SendRequest>(&mut buf);
        assert!(
            matches!(r, Err(HeaderError::Unparseable(_))),
            "{:?}: {r:?}",
            String::from_utf8_lossy(bad)
        );
    }
}

#[test]
fn given_numbers_out_of_range_when_parsed_then_the_field_is_named() {
    for (json, field) in [
        (&br#"{"queue":"q","max":4294967296}"#[..], "max"),
        (br#"{"queue":"q","max":-1}"#, "max"),
        (br#"{"queue":"q","max":1,"wait_ms":1.5}"#, "wait_ms"),
        (br#"{"queue":"q","max":"1"}"#, "max"),
    ] {
        let mut buf = json.to_vec();
        let r = parse_request::<header::Fetch>(&mut buf);
        assert!(
            matches!(&r, Err(HeaderError::Field { field: f, .. }) if *f == field),
            "{r:?}"
        );
    }
    let mut hello = br#"{"versions":[1,256]}"#.to_vec();
    let r = parse_request::<header::Hello>(&mut hello);
    assert!(
        matches!(
            r,
            Err(HeaderError::Field {
                field: "versions",
                ..
            })
        ),
        "{r:?}"
    );
}

#[test]
fn given_a_frame_begun_when_asked_then_partial_says_how_far() {
    let bytes = frame_bytes(Opcode::Ping, 1, b"{}", b"abc");
    let mut d = FrameDecoder::new(limits());
    assert_eq!(d.partial(), None);
    d.extend(&bytes[..10]);
    assert!(d.next_frame().unwrap().is_none());
    assert_eq!(d.partial(), Some((10, frame::FIXED_HEADER_BYTES)));
    d.extend(&bytes[10..26]);
    assert!(d.next_frame().unwrap().is_none());
    assert_eq!(d.partial(), Some((26, bytes.len())));
    d.extend(&bytes[26..]);
    assert!(d.next_frame().unwrap().is_some());
    assert_eq!(d.partial(), None);
}

#[test]
fn given_wire_queue_names_when_parsed_then_round_trip_or_malformed() {
    for q in ["requests/urn:x:1", "answers/MFC"] {
        assert_eq!(queue_name(&parse_queue(q).unwrap()), q);
    }
    for bad in ["", "requests/", "answers/", "other/x", "requests"] {
        assert!(parse_queue(bad).is_err(), "{bad}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// Random bytes, fed in random chunks: the decoder returns frames or
    /// one error, never panics, never holds more than the limits allow.
    #[test]
    fn fuzz_random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512),
                                     chunk in 1usize..64,
                                     magic_prefix in any::<bool>()) {
        let mut input = bytes;
        if magic_prefix && input.len() >= 4 {
            // Steer half the cases past the magic and version checks.
            input[0] = b'G'; input[1] = b'N'; input[2] = 1;
        }
        let mut d = FrameDecoder::new(limits());
        'feed: for piece in input.chunks(chunk) {
            d.extend(piece);
            // Bounded: each iteration consumes a frame or stops.
            for _ in 0..input.len() + 1 {
                match d.next_frame() {
                    Ok(Some(f)) => {
                        prop_assert!(f.json.len() <= 1024 && f.body.len() <= 4096);
                        let mut json = f.json.to_vec();
                        let _ = parse_header::<header::SendRequest>(&mut json);
                        let mut json = f.json.to_vec();
                        let _ = parse_request::<header::Settle>(&mut json);
                    }
                    Ok(None) => break,
                    Err(_) => break 'feed,
                }
            }
        }
        let _ = d.finish();
    }

    /// Valid frames, any split: all come out, in order, unchanged.
    #[test]
    fn fuzz_valid_frames_any_split_round_trip(
        frames in proptest::collection::vec((1u8..=14, any::<u64>(),
            proptest::collection::vec(any::<u8>(), 0..64),
            proptest::collection::vec(any::<u8>(), 0..200)), 1..8),
        chunk in 1usize..97) {
        let mut stream = Vec::new();
        for (op, id, json, body) in &frames {
            encode_frame(&mut stream, Opcode::from_u8(*op).unwrap(), *id, json, &[body]);
        }
        let mut d = FrameDecoder::new(limits());
        let mut out = Vec::new();
        for piece in stream.chunks(chunk) {
            d.extend(piece);
            while let Some(f) = d.next_frame().unwrap() {
                out.push(f);
            }
        }
        d.finish().unwrap();
        prop_assert_eq!(out.len(), frames.len());
        for (f, (op, id, json, body)) in out.iter().zip(&frames) {
            prop_assert_eq!(f.header.opcode.to_u8(), *op);
            prop_assert_eq!(f.header.correlation_id, *id);
            prop_assert_eq!(&f.json[..], &json[..]);
            prop_assert_eq!(&f.body[..], &body[..]);
        }
    }
}
