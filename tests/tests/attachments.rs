//! Large attachments over the native protocol (issue 19 item 4, ADR 0022),
//! against a `gonets serve` child process with the demo registry (every
//! kind takes attachments up to 1 GiB): an upload survives a dropped
//! connection and a kill -9 of the hub in the middle, goes on from the
//! bytes the hub holds durable, and reaches the provider by reference
//! with its digest checked; every bad chunk, wrong digest, over-limit,
//! stranger and unknown upload gets its typed error, and nothing of a
//! refused upload becomes readable. A provider's answer carries
//! attachments the same way, to the request's consumer alone, on the
//! asynchronous path and on a real-time call.
//!
//! Needs the `gonets` binary (`cargo build -p gonets --bin gonets`).

use gonets_client::glommio::Client;
use gonets_client::ClientError;
use gonets_tests::net::{bounded, fetch_n, run_local, ServerProcess};
use gonets_types::{
    AttachmentRef, Command, DataKindId, Digest, HubError, NewRequest, ParticipantId, QueueId,
    UploadState,
};
use std::time::Duration;

const EGRUL: &str = "urn:gonets:fns:egrul-extract:1";
/// A real-time kind (2 s), provided by MVD.
const PASSPORT: &str = "urn:gonets:mvd:passport-validity:1";
/// Bound of one operation (a chunk is synced before its reply).
const OP: Duration = Duration::from_secs(120);
const MIB: usize = 1 << 20;

/// `len` bytes that differ at every offset (a misplaced chunk shows).
fn data(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[i % 4] ^ (i >> 20) as u8)
        .collect()
}

fn digest_of(bytes: &[u8]) -> Digest {
    Digest(*blake3::hash(bytes).as_bytes())
}

fn kind() -> DataKindId {
    DataKindId::new(EGRUL)
}

fn hub_error<T: std::fmt::Debug>(what: &str, r: Result<T, ClientError>) -> HubError {
    match r {
        Err(ClientError::Hub(e)) => e,
        other => panic!("{what}: expected the hub's typed error, got {other:?}"),
    }
}

#[test]
fn given_an_upload_cut_by_a_dropped_connection_and_a_hub_kill_when_resumed_then_the_provider_reads_it_whole_and_verified(
) {
    let mut server = ServerProcess::start_default();
    let ep = server.endpoint();
    let bytes = data(24 * MIB + 12_345);
    let upload = {
        let (ep, bytes) = (ep.clone(), bytes.clone());
        run_local(move || async move {
            let mfc = ep.connect("MFC").await;
            let begun = bounded("begin", OP, mfc.upload_begin(&kind(), bytes.len() as u64)).await;
            let state = begun.expect("begin");
            assert_eq!(
                (state.durable_bytes, state.size_bytes),
                (0, bytes.len() as u64)
            );
            let mut at = 0usize;
            // Ten chunks of 1 MiB, then the connection drops.
            for _ in 0..10 {
                let chunk = bytes::Bytes::copy_from_slice(&bytes[at..at + MIB]);
                let s = bounded(
                    "chunk",
                    OP,
                    mfc.upload_chunk(state.upload, at as u64, chunk),
                )
                .await;
                at += MIB;
                assert_eq!(s.expect("chunk").durable_bytes, at as u64);
            }
            mfc.disconnect();
            state.upload
        })
    };
    // The hub dies with the upload half done; every acknowledged chunk is
    // durable.
    server.kill9();
    server.restart();
    let ep = server.endpoint();
    let (reference, read_back) = run_local(move || async move {
        let mfc = ep.connect("MFC").await;
        let state: UploadState = bounded("status", OP, mfc.upload_status(upload))
            .await
            .expect("status after the restart");
        assert_eq!(
            state.durable_bytes,
            10 * MIB as u64,
            "the acknowledged chunks"
        );
        let reference = bounded("rest", OP, mfc.upload_rest(state, &bytes[..], MIB as u32))
            .await
            .expect("the rest of the upload");
        assert_eq!(reference.digest, digest_of(&bytes));
        assert_eq!(reference.size_bytes, bytes.len() as u64);
        let mut request = NewRequest::new(EGRUL, "the case file is attached");
        request.attachments = vec![reference];
        bounded("send", OP, mfc.send_request(request))
            .await
            .expect("a request carrying the attachment");
        let fns = ep.connect("FNS").await;
        let got = fetch_n(&fns, &QueueId::Requests(kind()), 1, OP).await;
        assert_eq!(got[0].attachments, vec![reference]);
        let mut read_back = Vec::with_capacity(bytes.len());
        bounded(
            "read",
            OP,
            fns.read_attachment_to(&reference, |piece| {
                read_back.extend_from_slice(piece);
                Ok(())
            }),
        )
        .await
        .expect("the provider reads it, digest checked");
        assert!(read_back == bytes, "the bytes read back are the bytes sent");
        // Nobody else may read it.
        let mvd = ep.connect("MVD").await;
        let e = hub_error(
            "a stranger's read",
            mvd.read_attachment(reference.digest, 0, 1024).await,
        );
        assert_eq!(e, HubError::NotFound);
        (reference, read_back.len())
    });
    assert_eq!(read_back as u64, reference.size_bytes);
}

#[test]
fn given_each_bad_upload_when_sent_then_its_typed_error_and_nothing_of_it_readable() {
    let server = ServerProcess::start_default();
    let ep = server.endpoint();
    run_local(move || async move {
        let mfc = ep.connect("MFC").await;
        let bytes = data(3 * MIB);
        let state = mfc
            .upload_begin(&kind(), bytes.len() as u64)
            .await
            .expect("begin");
        // A chunk whose CRC does not match: nothing of it is stored.
        let chunk = bytes::Bytes::copy_from_slice(&bytes[..MIB]);
        let e = hub_error(
            "bad crc",
            mfc.execute(Command::UploadChunk {
                upload: state.upload,
                offset: 0,
                crc32c: crc32c::crc32c(&chunk) ^ 1,
                bytes: chunk.clone(),
            })
            .await,
        );
        assert!(matches!(e, HubError::BadChunk(_)), "{e:?}");
        let s = mfc.upload_status(state.upload).await.expect("status");
        assert_eq!(s.durable_bytes, 0, "a bad chunk stores nothing");
        // A chunk past the durable end: where to go on from.
        let e = hub_error(
            "gap",
            mfc.upload_chunk(state.upload, MIB as u64, chunk.clone())
                .await,
        );
        assert_eq!(e, HubError::UploadOffset { durable_bytes: 0 });
        // Finish before every byte is there.
        let e = hub_error(
            "early finish",
            mfc.upload_finish(state.upload, digest_of(&bytes)).await,
        );
        assert_eq!(e, HubError::UploadOffset { durable_bytes: 0 });
        // Every byte, then the wrong digest: the upload is gone, whole.
        for at in (0..bytes.len()).step_by(MIB) {
            let c = bytes::Bytes::copy_from_slice(&bytes[at..at + MIB]);
            mfc.upload_chunk(state.upload, at as u64, c)
                .await
                .expect("chunk");
        }
        let e = hub_error(
            "wrong digest",
            mfc.upload_finish(state.upload, Digest([9; 32])).await,
        );
        assert!(matches!(e, HubError::WrongDigest(_)), "{e:?}");
        let e = hub_error("after", mfc.upload_status(state.upload).await);
        assert_eq!(e, HubError::UnknownUpload);
        let e = hub_error("read", mfc.read_attachment(digest_of(&bytes), 0, 16).await);
        assert_eq!(e, HubError::NotFound, "nothing half-stored is visible");
        // Over the kind's limit (1 GiB by default), and empty.
        let e = hub_error("too large", mfc.upload_begin(&kind(), (1 << 30) + 1).await);
        assert!(
            matches!(e, HubError::TooLarge { size_bytes_max, .. } if size_bytes_max == 1 << 30),
            "{e:?}"
        );
        let e = hub_error("empty", mfc.upload_begin(&kind(), 0).await);
        assert!(matches!(e, HubError::Malformed(_)), "{e:?}");
        // Another participant's upload is unknown to it.
        let other = mfc.upload_begin(&kind(), 10).await.expect("begin");
        let mvd = ep.connect("MVD").await;
        let e = hub_error("not mine", mvd.upload_status(other.upload).await);
        assert_eq!(e, HubError::UnknownUpload);
        // A kind the participant neither requests nor provides takes no
        // upload.
        let e = hub_error(
            "not a consumer",
            mvd.upload_begin(&DataKindId::new("urn:gonets:fns:inn-by-passport:1"), 10)
                .await,
        );
        assert!(matches!(e, HubError::NotAuthorized(_)), "{e:?}");
        // A request naming an attachment its sender never uploaded.
        let mut r = NewRequest::new(EGRUL, "x");
        r.attachments = vec![AttachmentRef {
            digest: Digest([7; 32]),
            size_bytes: 10,
        }];
        let e = hub_error("not uploaded", mfc.send_request(r).await);
        assert_eq!(e, HubError::NotFound);
    });
}

/// `who` uploads `bytes` for `kind` in 1 MiB chunks; the reference.
async fn upload(who: &Client, kind: &str, bytes: &[u8]) -> AttachmentRef {
    let state = bounded(
        "begin",
        OP,
        who.upload_begin(&DataKindId::new(kind), bytes.len() as u64),
    )
    .await
    .expect("begin");
    bounded("upload", OP, who.upload_rest(state, bytes, MIB as u32))
        .await
        .expect("the upload")
}

/// `who` reads `reference` whole, its digest checked by the client.
async fn read_whole(who: &Client, reference: &AttachmentRef) -> Vec<u8> {
    let mut out = Vec::new();
    bounded(
        "read",
        OP,
        who.read_attachment_to(reference, |piece| {
            out.extend_from_slice(piece);
            Ok(())
        }),
    )
    .await
    .expect("a read, digest checked");
    out
}

#[test]
fn given_an_answer_carrying_an_attachment_when_the_consumer_fetches_it_then_it_reads_it_and_nobody_else_does(
) {
    let server = ServerProcess::start_default();
    let ep = server.endpoint();
    run_local(move || async move {
        let (mfc, fns, mvd) = (
            ep.connect("MFC").await,
            ep.connect("FNS").await,
            ep.connect("MVD").await,
        );
        let sent = mfc
            .send_request(NewRequest::new(EGRUL, "OGRN 1027700132195"))
            .await
            .expect("a request");
        let got = fetch_n(&fns, &QueueId::Requests(kind()), 1, OP).await;
        let extract = data(3 * MIB + 17);
        let reference = upload(&fns, EGRUL, &extract).await;
        // The consumer may not answer, nor may anyone attach another's upload.
        let e = hub_error(
            "the consumer answers",
            mfc.send_response_attached(sent.id, "x", vec![reference])
                .await,
        );
        assert!(matches!(e, HubError::NotAuthorized(_)), "{e:?}");
        let mfc_own = upload(&mfc, EGRUL, b"the consumer's own bytes").await;
        let e = hub_error(
            "another's upload",
            fns.send_response_attached(got[0].id, "x", vec![mfc_own])
                .await,
        );
        assert_eq!(e, HubError::NotFound);
        fns.send_response_attached(got[0].id, "the extract is attached", vec![reference])
            .await
            .expect("an answer carrying the attachment");
        fns.ack(&got[0]).await.expect("ack");
        let answers = QueueId::Answers(ParticipantId::new("MFC"));
        let answer = fetch_n(&mfc, &answers, 1, OP).await.remove(0);
        assert_eq!(answer.reply_to, Some(sent.id));
        assert_eq!(answer.attachments, vec![reference]);
        assert!(read_whole(&mfc, &reference).await == extract);
        let e = hub_error(
            "a stranger's read",
            mvd.read_attachment(reference.digest, 0, 16).await,
        );
        assert_eq!(e, HubError::NotFound);
    });
}

#[test]
fn given_a_realtime_call_when_its_answer_carries_an_attachment_then_the_caller_gets_the_reference_and_reads_it(
) {
    let server = ServerProcess::start_default();
    let ep = server.endpoint();
    run_local(move || async move {
        let (mfc, mvd) = (ep.connect("MFC").await, ep.connect("MVD").await);
        // Uploaded before the call: a 2 s budget is for answering, not uploading.
        let scan = data(MIB + 5);
        let reference = upload(&mvd, PASSPORT, &scan).await;
        let mut sub = mvd
            .subscribe(&QueueId::Requests(DataKindId::new(PASSPORT)), 1)
            .await
            .expect("subscribe");
        let provider = glommio::spawn_local(async move {
            let r = bounded("push", OP, sub.recv()).await.expect("a push");
            mvd.send_response_attached(r.id, "VALID", vec![reference])
                .await
                .expect("an answer carrying the scan");
        });
        let answer = bounded(
            "call",
            OP,
            mfc.call(NewRequest::new(PASSPORT, "4510 000001")),
        )
        .await
        .expect("a call answered in time");
        assert_eq!(&answer.payload[..], b"VALID");
        assert_eq!(answer.attachments, vec![reference]);
        assert!(answer.digest.is_some());
        provider.await;
        assert!(read_whole(&mfc, &reference).await == scan);
    });
}
