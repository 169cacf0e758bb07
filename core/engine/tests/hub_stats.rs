//! The operator's view of a running hub: `HubHandle::shard_stats` asks
//! each shard by message for a copy of its counters and queue stats.

use futures_lite::future::block_on;
use gonets_engine::{Hub, HubConfig, LogConfig};
use gonets_types::{DataKindId, HubError, NewRequest, QueueId, ReplyKind};

/// An async data kind of the embedded registry: FNS serves it to MFC.
const EGRUL: &str = "urn:gonets:fns:egrul-extract:1";

fn start(dir: &std::path::Path, shards: u16) -> Hub {
    let mut c = HubConfig::new(dir);
    c.shards = shards;
    c.log = LogConfig::small_for_tests();
    Hub::start(c).expect("hub starts")
}

#[test]
fn given_requests_sent_when_every_shard_is_asked_then_its_copy_counts_them() {
    let dir = tempfile::tempdir().unwrap();
    let hub = start(dir.path(), 2);
    let consumer = hub.session("MFC").unwrap();
    for _ in 0..3 {
        block_on(consumer.send_request(NewRequest::new(EGRUL, "x"))).unwrap();
    }
    let refused = block_on(consumer.send_request(NewRequest::new("urn:none", "x")));
    assert!(refused.is_err(), "an unknown kind is refused");
    let handle = hub.handle();
    let all: Vec<_> = (0..2)
        .map(|s| block_on(handle.shard_stats(s)).expect("a running shard answers"))
        .collect();
    assert_eq!(all.iter().map(|s| s.shard).collect::<Vec<_>>(), [0, 1]);
    assert!(all.iter().all(|s| s.serving()));
    let accepted: u64 = all.iter().map(|s| s.counters.accepted).sum();
    assert_eq!(accepted, 3);
    let ok: u64 = all.iter().map(|s| s.replies.ok(ReplyKind::Accepted)).sum();
    assert_eq!(ok, 3);
    let queue = QueueId::Requests(DataKindId::new(EGRUL));
    let entry = all
        .iter()
        .flat_map(|s| s.queues.iter())
        .find(|q| q.queue == queue)
        .expect("the kind's queue is listed");
    assert_eq!(entry.stats.depth, 3);
    assert_eq!(entry.waiting_bytes, 3);
    assert!(all.iter().map(|s| s.log.commits()).sum::<u64>() >= 1);
    assert!(all.iter().all(|s| s.log.disk_bytes() > 0));
    hub.shutdown().unwrap();
}

#[test]
fn given_a_shard_the_hub_lacks_when_asked_then_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let hub = start(dir.path(), 1);
    let got = block_on(hub.handle().shard_stats(7));
    assert!(matches!(got, Err(HubError::NotFound)), "{got:?}");
    hub.shutdown().unwrap();
}
