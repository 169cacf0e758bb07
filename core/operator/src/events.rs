//! Failure notices to the operator (R13): what changed since the monitor
//! last looked — a provider turned unreachable or recovered, a kind's
//! deadline came at risk or cleared, a shard's storage failed, filled or
//! got room again — as events on `/events` (server-sent events) and as
//! log lines. [`Watcher`] is the pure rule; [`EventFeed`] hands events to
//! the streams and keeps the latest for a stream that connects later.

use crate::providers::ProviderRow;
use gonets_engine::runtime::stats::ShardStats;
use serde_json::{json, Value};
use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use tokio::sync::broadcast;

/// Events kept for streams that connect later (each gets these first).
pub(crate) const EVENTS_KEPT_MAX: usize = 256;
/// Events a slow stream may fall behind before it misses some.
const EVENTS_BEHIND_MAX: usize = 1024;

/// One notice.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum EventKind {
    ProviderUnreachable { since_ms: u64 },
    ProviderRecovered,
    DeadlineAtRisk,
    DeadlineCleared,
    StorageFailed,
    StorageFull,
    StorageRoom,
}

impl EventKind {
    fn name(&self) -> &'static str {
        match self {
            EventKind::ProviderUnreachable { .. } => "provider_unreachable",
            EventKind::ProviderRecovered => "provider_recovered",
            EventKind::DeadlineAtRisk => "deadline_at_risk",
            EventKind::DeadlineCleared => "deadline_cleared",
            EventKind::StorageFailed => "storage_failed",
            EventKind::StorageFull => "storage_full",
            EventKind::StorageRoom => "storage_room",
        }
    }
}

/// What an event is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Subject {
    Kind(ProviderRow),
    Shard(u16),
}

/// An event, numbered in the order the monitor saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Event {
    pub(crate) id: u64,
    pub(crate) time_ms: u64,
    pub(crate) kind: EventKind,
    pub(crate) subject: Subject,
}

impl Event {
    /// Its JSON, as the `data:` of its server-sent event.
    pub(crate) fn json(&self) -> Value {
        let mut v = json!({ "id": self.id, "type": self.kind.name(), "time_ms": self.time_ms });
        match &self.subject {
            Subject::Kind(r) => {
                v["kind"] = json!(r.kind);
                v["provider"] = json!(r.provider);
                v["depth"] = json!(r.depth);
                v["oldest_age_ms"] = json!(r.oldest_age_ms);
                v["deadline_ms"] = json!(r.deadline_ms);
                v["last_read_ms"] = json!(r.last_read_ms);
            }
            Subject::Shard(s) => v["shard"] = json!(s),
        }
        if let EventKind::ProviderUnreachable { since_ms } = self.kind {
            v["since_ms"] = json!(since_ms);
        }
        v
    }

    /// Its server-sent event: `id`, `event` (its type) and one `data` line.
    pub(crate) fn sse(&self) -> String {
        format!(
            "id: {}\nevent: {}\ndata: {}\n\n",
            self.id,
            self.kind.name(),
            self.json()
        )
    }

    /// The log line of this event.
    fn log(&self) {
        let data = self.json();
        match self.kind {
            EventKind::ProviderRecovered | EventKind::DeadlineCleared | EventKind::StorageRoom => {
                tracing::info!(event = self.kind.name(), %data, "operator notice")
            }
            _ => tracing::warn!(event = self.kind.name(), %data, "operator notice"),
        }
    }
}

/// A shard's storage as the watcher sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct StorageState {
    pub(crate) shard: u16,
    /// Its log failed (it takes no more writes).
    pub(crate) failed: bool,
    /// A log used its disk reserve (new requests are refused `STORAGE_FULL`).
    pub(crate) full: bool,
}

impl StorageState {
    pub(crate) fn of(stats: &ShardStats) -> StorageState {
        StorageState {
            shard: stats.shard,
            failed: stats.log_failed,
            full: stats.space_low,
        }
    }
}

/// What the monitor saw last time, to tell what changed.
#[derive(Debug, Default)]
pub(crate) struct Watcher {
    unreachable: BTreeMap<String, bool>,
    at_risk: BTreeMap<String, bool>,
    failed: BTreeMap<u16, bool>,
    full: BTreeMap<u16, bool>,
}

/// Sets `map[key]` to `now`; true when it changed (a first look at a key
/// counts as a change only when `now` is true: all is well at start).
fn flip<K: Ord>(map: &mut BTreeMap<K, bool>, key: K, now: bool) -> bool {
    map.insert(key, now).unwrap_or(false) != now
}

impl Watcher {
    /// The changes between the last look and `rows`/`stats`, in a fixed order.
    pub(crate) fn observe(
        &mut self,
        rows: &[ProviderRow],
        storage: &[StorageState],
    ) -> Vec<(EventKind, Subject)> {
        let mut changes = Vec::new();
        for r in rows {
            let unreachable = r.unreachable_since_ms.is_some();
            if flip(&mut self.unreachable, r.kind.clone(), unreachable) {
                let kind = match r.unreachable_since_ms {
                    Some(since_ms) => EventKind::ProviderUnreachable { since_ms },
                    None => EventKind::ProviderRecovered,
                };
                changes.push((kind, Subject::Kind(r.clone())));
            }
            if flip(&mut self.at_risk, r.kind.clone(), r.deadline_at_risk) {
                let kind = if r.deadline_at_risk {
                    EventKind::DeadlineAtRisk
                } else {
                    EventKind::DeadlineCleared
                };
                changes.push((kind, Subject::Kind(r.clone())));
            }
        }
        for s in storage {
            if flip(&mut self.failed, s.shard, s.failed) && s.failed {
                changes.push((EventKind::StorageFailed, Subject::Shard(s.shard)));
            }
            if flip(&mut self.full, s.shard, s.full) {
                let kind = if s.full {
                    EventKind::StorageFull
                } else {
                    EventKind::StorageRoom
                };
                changes.push((kind, Subject::Shard(s.shard)));
            }
        }
        changes
    }
}

/// Where events go: to every `/events` stream, and the latest kept.
#[derive(Debug)]
pub(crate) struct EventFeed {
    sender: broadcast::Sender<Event>,
    // Only the operator thread's tasks touch it, never a shard.
    kept: Mutex<(u64, VecDeque<Event>)>,
}

impl EventFeed {
    pub(crate) fn new() -> EventFeed {
        EventFeed {
            sender: broadcast::channel(EVENTS_BEHIND_MAX).0,
            kept: Mutex::new((0, VecDeque::new())),
        }
    }

    /// Numbers, logs, keeps and sends one event.
    pub(crate) fn publish(&self, time_ms: u64, kind: EventKind, subject: Subject) {
        let mut kept = self.kept.lock().expect("no panics while held");
        kept.0 += 1;
        let event = Event {
            id: kept.0,
            time_ms,
            kind,
            subject,
        };
        event.log();
        if kept.1.len() == EVENTS_KEPT_MAX {
            kept.1.pop_front();
        }
        kept.1.push_back(event.clone());
        // Sent while held: a new stream sees each event once, kept or live.
        let _ = self.sender.send(event); // no stream listening is fine
    }

    /// The kept events and a receiver of the later ones.
    pub(crate) fn subscribe(&self) -> (Vec<Event>, broadcast::Receiver<Event>) {
        let kept = self.kept.lock().expect("no panics while held");
        (kept.1.iter().cloned().collect(), self.sender.subscribe())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(unreachable_since_ms: Option<u64>, deadline_at_risk: bool) -> ProviderRow {
        ProviderRow {
            kind: "urn:k".into(),
            provider: "FNS".into(),
            realtime: false,
            deadline_ms: 10_000,
            readers: 0,
            last_read_ms: None,
            depth: 1,
            in_flight: 0,
            oldest_age_ms: 1,
            unreachable_since_ms,
            deadline_at_risk,
        }
    }

    fn names(changes: &[(EventKind, Subject)]) -> Vec<&'static str> {
        changes.iter().map(|(k, _)| k.name()).collect()
    }

    #[test]
    fn given_a_provider_that_goes_silent_and_comes_back_when_watched_then_one_event_each_way() {
        let mut w = Watcher::default();
        assert!(
            w.observe(&[row(None, false)], &[]).is_empty(),
            "all well at start"
        );
        assert_eq!(
            names(&w.observe(&[row(Some(5), false)], &[])),
            ["provider_unreachable"]
        );
        assert!(
            w.observe(&[row(Some(5), false)], &[]).is_empty(),
            "once per change"
        );
        assert_eq!(
            names(&w.observe(&[row(None, true)], &[])),
            ["provider_recovered", "deadline_at_risk"]
        );
        assert_eq!(
            names(&w.observe(&[row(None, false)], &[])),
            ["deadline_cleared"]
        );
    }

    #[test]
    fn given_a_shard_whose_disk_fills_and_then_whose_log_fails_when_watched_then_full_room_and_failed(
    ) {
        let state = |failed, full| StorageState {
            shard: 1,
            failed,
            full,
        };
        let mut w = Watcher::default();
        assert!(w.observe(&[], &[state(false, false)]).is_empty());
        assert_eq!(
            names(&w.observe(&[], &[state(false, true)])),
            ["storage_full"]
        );
        assert_eq!(
            names(&w.observe(&[], &[state(false, false)])),
            ["storage_room"]
        );
        let failed = w.observe(&[], &[state(true, false)]);
        assert_eq!(names(&failed), ["storage_failed"]);
        assert_eq!(failed[0].1, Subject::Shard(1));
        assert!(w.observe(&[], &[state(true, false)]).is_empty(), "once");
    }

    #[test]
    fn given_events_when_published_then_a_late_stream_gets_the_kept_ones_and_then_new_ones() {
        let feed = EventFeed::new();
        feed.publish(1, EventKind::StorageFull, Subject::Shard(0));
        let (kept, mut live) = feed.subscribe();
        assert_eq!(kept.len(), 1);
        assert!(kept[0]
            .sse()
            .starts_with("id: 1\nevent: storage_full\ndata: {"));
        feed.publish(2, EventKind::StorageRoom, Subject::Shard(0));
        let next = live.try_recv().unwrap();
        assert_eq!((next.id, next.json()["shard"].as_u64()), (2, Some(0)));
    }
}
