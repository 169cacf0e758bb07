//! A full disk under a running `gonets serve` (issue 13, item 13): the data
//! directory lies on a small tmpfs; requests fill it until a segment roll
//! finds it full and uses the log's reserve. From then on new requests
//! (send and call) are refused with `STORAGE_FULL` before anything is
//! stored, while fetch, ack, answer, status and queue stats go on (draining
//! is how an operator frees a disk). Once space is freed (the tmpfs grows)
//! new requests are accepted again without a restart, and nothing accepted
//! before was lost.
//!
//! Needs root (a tmpfs mount) and the `gonets` binary
//! (`cargo build -p gonets --bin gonets`).

use gonets_client::glommio::Client;
use gonets_client::ClientError;
use gonets_tests::net::{
    bounded, fetch_n, run_local, Endpoint, Mode, ServerOptions, ServerProcess,
};
use gonets_tests::TmpfsMount;
use gonets_types::{HubError, MessageId, NewRequest, ParticipantId, QueueId};
use std::time::{Duration, Instant};

const EGRUL: &str = "urn:gonets:fns:egrul-extract:1";
const PASSPORT: &str = "urn:gonets:mvd:passport-validity:1";
/// Bound of one operation.
const OP: Duration = Duration::from_secs(120);
/// Segment size of the server's logs: small, so a few requests fill the tmpfs.
const SEGMENT_BYTES: u64 = 2 << 20;
/// The tmpfs: two logs (requests, histories), each one segment and one
/// reserve of one segment (8 MiB), and room for one more segment (3 MiB).
const TMPFS_SIZE: &str = "11m";
/// Payload of one filling request.
const PAYLOAD_BYTES: usize = 256 << 10;
/// Bound on requests sent while the disk fills (11 MiB holds far fewer).
const FILL_REQUESTS_MAX: usize = 200;
/// How long new requests may stay refused after space is freed (the log
/// retries its reserve every second by default).
const SPACE_BACK_WAIT: Duration = Duration::from_secs(60);

fn requests(kind: &str) -> QueueId {
    QueueId::Requests(gonets_types::DataKindId::new(kind))
}

fn answers(p: &str) -> QueueId {
    QueueId::Answers(ParticipantId::new(p))
}

/// A one-shard dev-token server whose data directory is a tmpfs of `size`.
fn server_on_tmpfs(size: &str) -> (TmpfsMount, ServerProcess) {
    let tmpfs = TmpfsMount::new(size).unwrap_or_else(|e| {
        panic!("the disk-full test needs a small tmpfs and could not mount one: {e}")
    });
    let mut server = ServerProcess::start(ServerOptions {
        shards: 1,
        mode: Mode::DevToken,
        sections: format!("[commit]\nsegment_size_bytes = {SEGMENT_BYTES}\n"),
        ..ServerOptions::default()
    });
    // The harness puts the data directory in its own temporary directory:
    // stop, and start again with the data directory on the tmpfs (fresh).
    server.terminate();
    let data = server.data_dir();
    std::fs::remove_dir_all(&data).expect("remove the first data directory");
    std::os::unix::fs::symlink(tmpfs.path(), &data).expect("link the data directory to the tmpfs");
    server.restart();
    (tmpfs, server)
}

fn is_storage_full<T: std::fmt::Debug>(r: &Result<T, ClientError>) -> bool {
    matches!(r, Err(ClientError::Hub(HubError::StorageFull)))
}

/// Sends big requests until one is refused with `STORAGE_FULL`; the ids accepted before.
async fn fill(mfc: &Client, server_log: impl Fn() -> String) -> Vec<MessageId> {
    let mut accepted = Vec::new();
    for i in 0..FILL_REQUESTS_MAX {
        let payload = vec![b'a' + (i % 26) as u8; PAYLOAD_BYTES];
        let r = bounded(
            "send while filling",
            OP,
            mfc.send_request(NewRequest::new(EGRUL, payload)),
        )
        .await;
        match r {
            Ok(a) => accepted.push(a.id),
            Err(ClientError::Hub(HubError::StorageFull)) => return accepted,
            Err(e) => panic!(
                "request {i} while the disk fills: {e}, expected acceptance or STORAGE_FULL\n{}",
                server_log()
            ),
        }
    }
    panic!(
        "{FILL_REQUESTS_MAX} requests of {PAYLOAD_BYTES} bytes fit on a {TMPFS_SIZE} tmpfs: the disk never filled"
    );
}

/// Checks that nothing new is taken while space is low, and that reads,
/// deliveries, answers and acks go on.
async fn while_space_low(ep: &Endpoint, accepted: &[MessageId]) {
    let mfc = ep.connect("MFC").await;
    let fns = ep.connect("FNS").await;
    let again = mfc.send_request(NewRequest::new(EGRUL, "one more")).await;
    assert!(
        is_storage_full(&again),
        "send while space is low: {again:?}"
    );
    let call = mfc.call(NewRequest::new(PASSPORT, "4510 000001")).await;
    assert!(is_storage_full(&call), "call while space is low: {call:?}");

    let stats = bounded("queue stats", OP, fns.queue_stats(&requests(EGRUL)))
        .await
        .expect("QUEUE_STATS while space is low");
    assert_eq!(
        stats.depth,
        accepted.len() as u64,
        "every accepted request is queued"
    );
    let got = fetch_n(&fns, &requests(EGRUL), 2, OP).await;
    for (i, request) in got.iter().enumerate() {
        assert!(accepted.contains(&request.id), "fetched an unknown request");
        assert_eq!(request.payload.len(), PAYLOAD_BYTES);
        if i == 0 {
            bounded("answer", OP, fns.send_response(request.id, "extract"))
                .await
                .expect("ANSWER while space is low");
        } else {
            bounded("ack", OP, fns.ack(request))
                .await
                .expect("provider ACK while space is low");
        }
    }
    let answer = fetch_n(&mfc, &answers("MFC"), 1, OP).await.remove(0);
    assert_eq!(answer.reply_to, Some(got[0].id));
    bounded("ack answer", OP, mfc.ack(&answer))
        .await
        .expect("ACK of an answer while space is low");
    for id in accepted {
        let s = bounded("status", OP, mfc.status(*id))
            .await
            .unwrap_or_else(|e| panic!("STATUS of {id} while space is low: {e}"));
        assert_eq!(s.request_id, *id);
    }
}

/// Sends a request every 200 ms until one is accepted (bounded).
async fn wait_accepted(mfc: &Client, server_log: impl Fn() -> String) -> MessageId {
    let deadline = Instant::now() + SPACE_BACK_WAIT;
    loop {
        let r = bounded(
            "send after freeing space",
            OP,
            mfc.send_request(NewRequest::new(EGRUL, "after")),
        )
        .await;
        match r {
            Ok(a) => return a.id,
            Err(ClientError::Hub(HubError::StorageFull)) if Instant::now() < deadline => {
                glommio::timer::sleep(Duration::from_millis(200)).await;
            }
            other => panic!(
                "a new request {SPACE_BACK_WAIT:?} after space was freed: {other:?}\n{}",
                server_log()
            ),
        }
    }
}

#[test]
fn given_a_full_disk_when_new_requests_come_then_storage_full_while_fetch_ack_answer_status_and_stats_go_on_and_requests_return_once_space_is_freed(
) {
    let (tmpfs, mut server) = server_on_tmpfs(TMPFS_SIZE);
    let ep = server.endpoint();
    let log_path = server.dir().join("server.log");
    let server_log = move || std::fs::read_to_string(&log_path).unwrap_or_default();
    let accepted = {
        let (ep, server_log) = (ep.clone(), server_log.clone());
        run_local(move || async move {
            let mfc = ep.connect("MFC").await;
            let accepted = fill(&mfc, &server_log).await;
            assert!(
                accepted.len() >= 2,
                "only {} requests fit before STORAGE_FULL\n{}",
                accepted.len(),
                server_log()
            );
            while_space_low(&ep, &accepted).await;
            accepted
        })
    };
    assert!(
        server.is_running(),
        "the server must stay up\n{}",
        server_log()
    );
    let log = server.log();
    assert!(
        log.contains("disk space low"),
        "the server must say at WARN that space is low\n{log}"
    );
    tmpfs.resize("64m").unwrap_or_else(|e| panic!("{e}"));
    {
        let server_log = server_log.clone();
        run_local(move || async move {
            let mfc = ep.connect("MFC").await;
            let id = wait_accepted(&mfc, &server_log).await;
            for id in accepted.iter().chain([&id]) {
                bounded("status", OP, mfc.status(*id))
                    .await
                    .unwrap_or_else(|e| panic!("STATUS of {id} after space returned: {e}"));
            }
        });
    }
    assert!(
        server.log().contains("disk space back"),
        "the server must say that space is back\n{}",
        server.log()
    );
    server.terminate();
}
