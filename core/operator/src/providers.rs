//! Provider monitoring (R9): one row per data kind with its provider,
//! built from the shards' copies and the registry; the rules of "deadline
//! at risk"; and the JSON of `/providers`. Pure functions.

use gonets_engine::registry::Mode;
use gonets_engine::runtime::stats::{QueueEntry, ShardStats};
use gonets_engine::Registry;
use gonets_types::ids::QueueId;
use serde_json::{json, Value};
use std::collections::HashMap;

/// One data kind and its provider, now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ProviderRow {
    pub(crate) kind: String,
    pub(crate) provider: String,
    pub(crate) realtime: bool,
    pub(crate) deadline_ms: u64,
    /// Readers connected to the kind's queue (subscriptions, waiting fetches).
    pub(crate) readers: u32,
    /// The latest fetch, subscribe or credit, hub time ms.
    pub(crate) last_read_ms: Option<u64>,
    pub(crate) depth: u64,
    pub(crate) in_flight: u64,
    pub(crate) oldest_age_ms: u64,
    /// Since when the provider is unreachable (the shard's rule).
    pub(crate) unreachable_since_ms: Option<u64>,
    /// The oldest request waited past the risk share of the kind's deadline.
    pub(crate) deadline_at_risk: bool,
}

/// Whether a queue whose oldest request is `oldest_age_ms` old puts a
/// deadline of `deadline_ms` at risk: past `risk_percent` % of it.
pub(crate) fn deadline_at_risk(oldest_age_ms: u64, deadline_ms: u64, risk_percent: u8) -> bool {
    assert!(risk_percent <= 100, "a percentage, not {risk_percent}");
    let bound_ms = u128::from(deadline_ms) * u128::from(risk_percent) / 100;
    oldest_age_ms > 0 && u128::from(oldest_age_ms) >= bound_ms
}

/// A row for every data kind of the registry, sorted by kind.
pub(crate) fn rows(
    registry: &Registry,
    stats: &[ShardStats],
    risk_percent: u8,
) -> Vec<ProviderRow> {
    let entries: HashMap<&QueueId, &QueueEntry> = stats
        .iter()
        .flat_map(|s| s.queues.iter())
        .map(|q| (&q.queue, q))
        .collect();
    let mut rows: Vec<ProviderRow> = registry
        .kinds()
        .map(|k| {
            let entry = entries.get(&QueueId::Requests(k.id.clone()));
            let (stats, watch) = entry.map(|e| (e.stats, e.watch)).unwrap_or_default();
            ProviderRow {
                kind: k.id.to_string(),
                provider: k.provider.to_string(),
                realtime: k.mode == Mode::Realtime,
                deadline_ms: k.deadline_ms,
                readers: watch.readers,
                last_read_ms: watch.last_read_ms,
                depth: stats.depth,
                in_flight: stats.in_flight,
                oldest_age_ms: stats.oldest_age_ms,
                unreachable_since_ms: watch.unreachable_since_ms,
                deadline_at_risk: stats.depth > 0
                    && deadline_at_risk(stats.oldest_age_ms, k.deadline_ms, risk_percent),
            }
        })
        .collect();
    rows.sort_by(|a, b| a.kind.cmp(&b.kind));
    rows
}

/// The row's state as `/providers` and the events name it.
pub(crate) fn state(row: &ProviderRow) -> &'static str {
    if row.unreachable_since_ms.is_some() {
        "unreachable"
    } else {
        "reachable"
    }
}

/// `/providers`: every kind's row.
pub(crate) fn json(rows: &[ProviderRow]) -> Value {
    let list: Vec<Value> = rows
        .iter()
        .map(|r| {
            json!({
                "kind": r.kind,
                "provider": r.provider,
                "mode": if r.realtime { "realtime" } else { "async" },
                "state": state(r),
                "unreachable_since_ms": r.unreachable_since_ms,
                "readers": r.readers,
                "last_read_ms": r.last_read_ms,
                "depth": r.depth,
                "in_flight": r.in_flight,
                "oldest_age_ms": r.oldest_age_ms,
                "deadline_ms": r.deadline_ms,
                "deadline_at_risk": r.deadline_at_risk,
            })
        })
        .collect();
    json!({ "providers": list })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_an_age_past_the_share_of_the_deadline_when_checked_then_at_risk() {
        assert!(deadline_at_risk(1_600, 2_000, 80));
        assert!(!deadline_at_risk(1_599, 2_000, 80));
        assert!(
            !deadline_at_risk(0, 2_000, 0),
            "an empty queue is never at risk"
        );
        assert!(deadline_at_risk(172_800_000, 172_800_000, 100));
    }
}
