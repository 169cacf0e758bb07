//! A shard whose log fails, in an embedded hub (issue 13, items 7 and 13).
//!
//! - A failed `fdatasync` (fail point `storage::fdatasync`) in a running
//!   hub: what waits (a pending request, a long-polling fetch) is answered
//!   `Unavailable`, the hub reports the failed shard and its cause, and
//!   [`Hub::exit_after_failure`] (what `gonets serve` calls) ends the process
//!   with exit status 74; a restart recovers every acknowledged request. The
//!   failing hub runs in a child process (this test binary run again), as a
//!   fail point and an exit are process-wide.
//! - A full disk with no reserve left (`reserve_segments = 0` on a small
//!   tmpfs): new writes get `StorageFull`, but fetch, status and queue stats
//!   go on, and the hub does not stop.

use futures_lite::future::block_on;
use gonets_engine::runtime::EXIT_LOG_FAILED;
use gonets_engine::{Hub, HubConfig, LogConfig};
use gonets_tests::net::wait_output;
use gonets_tests::TmpfsMount;
use gonets_types::{DataKindId, HubError, MessageId, NewRequest, ParticipantId, QueueId};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const EGRUL: &str = "urn:gonets:fns:egrul-extract:1";
/// Set in the child process: the data directory it runs the failing hub on.
const CHILD_ENV: &str = "GONETS_LOG_FAILURE_CHILD";
/// The test the child runs (this file's first test).
const FAILING_TEST: &str =
    "given_a_running_hub_when_a_shard_log_fsync_fails_then_what_waits_gets_unavailable_the_process_exits_74_and_a_restart_recovers_every_acknowledged_request";
/// Requests acknowledged before the fault.
const ACCEPTED_BEFORE: usize = 20;
/// How long the child may run.
const CHILD_WAIT: Duration = Duration::from_secs(120);
/// Bound of a wait inside a test.
const WAIT: Duration = Duration::from_secs(60);
/// File the child lists the acknowledged request ids in.
const ACCEPTED_FILE: &str = "accepted.txt";

fn requests() -> QueueId {
    QueueId::Requests(DataKindId::new(EGRUL))
}

fn answers(p: &str) -> QueueId {
    QueueId::Answers(ParticipantId::new(p))
}

fn hub_config(dir: &Path) -> HubConfig {
    let mut c = HubConfig::new(dir.join("data"));
    c.shards = 1;
    c.log = LogConfig::small_for_tests();
    c
}

fn is_unavailable<T: std::fmt::Debug>(r: &Result<T, HubError>) -> bool {
    matches!(r, Err(HubError::Unavailable(_)))
}

/// The child: a hub whose log's fdatasync starts failing; checks what the
/// clients and the hub see, then stops the way `gonets serve` does.
fn child(dir: &Path) -> ! {
    let hub = Hub::start(hub_config(dir)).expect("start the hub");
    let mfc = hub.session("MFC").expect("a consumer session");
    let mut ids = Vec::new();
    for i in 0..ACCEPTED_BEFORE {
        let a = block_on(mfc.send_request(NewRequest::new(EGRUL, format!("req-{i}"))))
            .expect("a request before the fault");
        ids.push(a.id.to_string());
    }
    std::fs::write(dir.join(ACCEPTED_FILE), ids.join("\n")).expect("write the accepted ids");
    // One poll puts the long poll in the shard's inbox, ahead of the request
    // below: the shard parks it before the fault, whatever the timing.
    let mut waiter = Box::pin(mfc.fetch(answers("MFC"), 1, WAIT));
    assert!(
        block_on(futures_lite::future::poll_once(waiter.as_mut())).is_none(),
        "the long poll answered at once"
    );
    fail::cfg("storage::fdatasync", "return").expect("arm the fail point");
    let pending = block_on(mfc.send_request(NewRequest::new(EGRUL, "during the fault")));
    assert!(
        is_unavailable(&pending),
        "the request whose sync failed: {pending:?}"
    );
    let waited = block_on(waiter);
    assert!(
        is_unavailable(&waited),
        "the long poll waiting at the fault: {waited:?}"
    );
    let failure = hub
        .wait_failure(WAIT)
        .expect("the hub reports the failed shard");
    assert_eq!(failure.shard, 0);
    assert!(
        failure.cause.contains("Sync"),
        "the cause names the failed fdatasync: {failure:?}"
    );
    let after = block_on(mfc.send_request(NewRequest::new(EGRUL, "after the fault")));
    assert!(
        is_unavailable(&after),
        "a request after the fault: {after:?}"
    );
    hub.exit_after_failure(&failure)
}

#[test]
fn given_a_running_hub_when_a_shard_log_fsync_fails_then_what_waits_gets_unavailable_the_process_exits_74_and_a_restart_recovers_every_acknowledged_request(
) {
    if let Some(dir) = std::env::var_os(CHILD_ENV) {
        child(Path::new(&dir));
    }
    let dir = tempfile::tempdir().unwrap();
    let c = Command::new(std::env::current_exe().unwrap())
        .args([FAILING_TEST, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the child");
    let out = wait_output(c, CHILD_WAIT, "the child whose log failed");
    assert_eq!(
        out.status.code(),
        Some(EXIT_LOG_FAILED),
        "the child must exit with {EXIT_LOG_FAILED} after its log failed: {:?}\n---- stdout ----\n{}\n---- stderr ----\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let ids: Vec<MessageId> = std::fs::read_to_string(dir.path().join(ACCEPTED_FILE))
        .expect("the child's accepted ids")
        .lines()
        .map(|l| l.parse().expect("a message id"))
        .collect();
    assert_eq!(ids.len(), ACCEPTED_BEFORE);
    recovered(dir.path(), &ids);
}

/// Restarts the hub on the child's data and checks every acknowledged request.
fn recovered(dir: &Path, ids: &[MessageId]) {
    let hub = Hub::start(hub_config(dir)).expect("restart after the log failure");
    let mfc = hub.session("MFC").unwrap();
    let fns = hub.session("FNS").unwrap();
    for id in ids {
        block_on(mfc.status(*id)).unwrap_or_else(|e| panic!("status of acknowledged {id}: {e}"));
    }
    let mut fetched: Vec<MessageId> = Vec::new();
    let deadline = Instant::now() + WAIT;
    while fetched.len() < ids.len() && Instant::now() < deadline {
        let got = block_on(fns.fetch(requests(), 64, Duration::from_millis(200))).unwrap();
        fetched.extend(got.iter().map(|m| m.id));
    }
    for id in ids {
        assert!(
            fetched.contains(id),
            "acknowledged request {id} not delivered after restart"
        );
    }
    hub.shutdown().expect("a clean stop after recovery");
}

/// Sends 16 KiB requests until one is refused; the ids accepted before and the error.
fn fill(mfc: &gonets_engine::Session) -> (Vec<MessageId>, HubError) {
    let mut ids = Vec::new();
    for i in 0..1000 {
        match block_on(mfc.send_request(NewRequest::new(EGRUL, vec![b'x'; 16 << 10]))) {
            Ok(a) => ids.push(a.id),
            Err(e) => return (ids, e),
        }
        assert!(i < 999, "1000 requests of 16 KiB fit on a 768 KiB tmpfs");
    }
    unreachable!()
}

#[test]
fn given_a_full_disk_and_no_reserve_left_when_clients_go_on_then_writes_get_storage_full_and_fetch_status_and_queue_stats_still_answer(
) {
    let tmpfs = TmpfsMount::new("768k")
        .unwrap_or_else(|e| panic!("this test needs a small tmpfs and could not mount one: {e}"));
    let mut config = hub_config(tmpfs.path());
    config.log.reserve_segments = 0;
    let hub = Hub::start(config).expect("start on the tmpfs");
    let mfc = hub.session("MFC").unwrap();
    let fns = hub.session("FNS").unwrap();
    let (ids, full) = fill(&mfc);
    assert!(
        matches!(full, HubError::StorageFull),
        "a full disk answered {full:?}"
    );
    assert!(!ids.is_empty(), "nothing fit before the disk filled");
    let again = block_on(mfc.send_request(NewRequest::new(EGRUL, "more")));
    assert!(matches!(again, Err(HubError::StorageFull)), "{again:?}");

    let stats = block_on(fns.queue_stats(requests())).expect("QUEUE_STATS on a full disk");
    assert!(stats.depth >= ids.len() as u64, "{stats:?}");
    let status = block_on(mfc.status(ids[0])).expect("STATUS on a full disk");
    assert_eq!(status.request_id, ids[0]);
    // A long poll answers at once (timers no longer run on a failed log).
    let started = Instant::now();
    let got = block_on(fns.fetch(requests(), 4, WAIT)).expect("FETCH on a full disk");
    assert!(!got.is_empty(), "the accepted requests are delivered");
    assert!(
        started.elapsed() < WAIT / 2,
        "fetch waited {:?}",
        started.elapsed()
    );
    let ack = block_on(fns.ack(&got[0]));
    assert!(
        matches!(ack, Err(HubError::StorageFull)),
        "an ack cannot be stored: {ack:?}"
    );
    assert_eq!(hub.failure(), None, "a full disk does not stop the hub");
    let _ = hub.shutdown();
    drop(tmpfs);
}
