//! The JSON bodies of the API's answers, built from the shards' copies.

use crate::settings::HubInfo;
use gonets_engine::runtime::stats::{LogReport, ShardStats};
use gonets_engine::Registry;
use gonets_types::ids::QueueId;
use gonets_types::{QueueStats, StatusView};
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// `/ready`: each shard's state; ready when every shard answered and serves.
pub(crate) fn readiness(stats: &[ShardStats], stopping: bool) -> (bool, Value) {
    let ready = !stopping && stats.iter().all(ShardStats::serving);
    let shards: Vec<Value> = stats
        .iter()
        .map(|s| {
            json!({
                "shard": s.shard,
                "serving": s.serving(),
                "log_failed": s.log_failed,
                "draining": s.draining,
                "space_low": s.space_low,
            })
        })
        .collect();
    let status = if ready { "ready" } else { "not_ready" };
    (ready, json!({ "status": status, "shards": shards }))
}

/// One queue's row of `/queues`.
struct QueueRow {
    shard: u16,
    stats: QueueStats,
    waiting_bytes: u64,
}

/// `/queues`: every queue a shard holds, and every queue the registry
/// implies (a kind's requests, a participant's answers) with zeros where
/// no shard has held a message of it yet; sorted by name.
pub(crate) fn queues(registry: &Registry, stats: &[ShardStats]) -> Value {
    let shard_count = stats.len() as u16;
    let mut rows: BTreeMap<String, (QueueId, QueueRow)> = BTreeMap::new();
    let implied = registry
        .kinds()
        .map(|k| QueueId::Requests(k.id.clone()))
        .chain(
            registry
                .participants()
                .map(|p| QueueId::Answers(p.id.clone())),
        );
    for queue in implied {
        let row = QueueRow {
            shard: queue.shard(shard_count),
            stats: QueueStats::default(),
            waiting_bytes: 0,
        };
        rows.insert(queue.to_string(), (queue, row));
    }
    for s in stats {
        for q in &s.queues {
            let row = QueueRow {
                shard: s.shard,
                stats: q.stats,
                waiting_bytes: q.waiting_bytes,
            };
            rows.insert(q.queue.to_string(), (q.queue.clone(), row));
        }
    }
    let list: Vec<Value> = rows
        .into_iter()
        .map(|(name, (queue, row))| queue_json(name, &queue, &row))
        .collect();
    json!({ "queues": list })
}

fn queue_json(name: String, queue: &QueueId, row: &QueueRow) -> Value {
    let (kind, owner) = match queue {
        QueueId::Requests(k) => ("requests", k.to_string()),
        QueueId::Answers(p) => ("answers", p.to_string()),
    };
    json!({
        "queue": name,
        "type": kind,
        "owner": owner,
        "shard": row.shard,
        "depth": row.stats.depth,
        "in_flight": row.stats.in_flight,
        "oldest_age_ms": row.stats.oldest_age_ms,
        "waiting_bytes": row.waiting_bytes,
    })
}

/// `/messages/{id}`: the exchange's history, oldest step first.
pub(crate) fn message(view: &StatusView) -> Value {
    let events: Vec<Value> = view
        .events
        .iter()
        .map(|e| json!({ "event": e.kind.as_str(), "time_ms": e.time_ms, "count": e.count }))
        .collect();
    json!({
        "request_id": view.request_id.to_string(),
        "answer_id": view.answer_id.map(|id| id.to_string()),
        "kind": view.kind.to_string(),
        "consumer": view.consumer.to_string(),
        "provider": view.provider.to_string(),
        "deadline_ms": view.deadline_ms,
        "events": events,
    })
}

/// `/info`: version, shards, cores, data directory, each shard's log sizes
/// and its receipts signed with the signatures that signed them.
pub(crate) fn info(info: &HubInfo, stats: &[ShardStats]) -> Value {
    let available = std::thread::available_parallelism().map_or(0, |n| n.get());
    let logs: Vec<Value> = stats
        .iter()
        .map(|s| {
            json!({
                "shard": s.shard,
                "messages": log_json(&s.log),
                "history": log_json(&s.history_log),
                "receipts": {
                    "signed": s.counters.receipts_signed,
                    "signatures": s.counters.receipt_signatures,
                },
            })
        })
        .collect();
    json!({
        "version": info.version,
        "shards": stats.len(),
        "cores": { "available": available, "pinned": info.pinned_cores },
        "data_dir": info.data_dir.display().to_string(),
        "profile": info.profile.as_ref().map(|p| json!({
            "name": p.name,
            "path": p.path.display().to_string(),
        })),
        "logs": logs,
    })
}

fn log_json(log: &LogReport) -> Value {
    json!({
        "segments": log.stats.segments,
        "segment_size_bytes": log.segment_size_bytes,
        "disk_bytes": log.disk_bytes(),
        "bytes_written": log.stats.bytes_written(),
        "commits": log.commits(),
        "fdatasyncs": log.fdatasyncs(),
        "space_low": log.stats.space_low,
    })
}
