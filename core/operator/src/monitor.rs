//! The monitor: a task on the operator thread that asks every shard for
//! its copy each `interval_ms`, turns what changed into operator events
//! ([`crate::events`]), adds what the shards counted since its last look
//! to the SLA buckets ([`crate::sla_store`]) and writes them every
//! `sla_flush_ms`. The shards only answer a control message: nothing runs
//! on their hot path.

use crate::events::{StorageState, Watcher};
use crate::gather::every_shard;
use crate::providers;
use crate::routes::Context;
use crate::sla_store::{self, KindCounts};
use gonets_engine::registry::Mode;
use gonets_engine::runtime::stats::ShardStats;
use gonets_engine::shard::sla::KindSla;
use gonets_types::ids::DataKindId;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc;

/// How the monitor runs (`[monitor]` in serve's config file).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MonitorSettings {
    /// How often it asks the shards, ms.
    pub interval_ms: u64,
    /// A kind's deadline is at risk when its oldest waiting request is
    /// this share of the deadline old, percent (1 to 100).
    pub deadline_risk_percent: u8,
    /// How often the SLA buckets it changed are written to disk, ms.
    pub sla_flush_ms: u64,
}

/// Default [`MonitorSettings::interval_ms`]: once a second.
pub const MONITOR_INTERVAL_MS_DEFAULT: u64 = 1_000;
/// Default [`MonitorSettings::deadline_risk_percent`]: 80 % of the deadline.
pub const DEADLINE_RISK_PERCENT_DEFAULT: u8 = 80;
/// Default [`MonitorSettings::sla_flush_ms`]: every 10 s (what a crash may lose).
pub const SLA_FLUSH_MS_DEFAULT: u64 = 10_000;

impl Default for MonitorSettings {
    fn default() -> Self {
        MonitorSettings {
            interval_ms: MONITOR_INTERVAL_MS_DEFAULT,
            deadline_risk_percent: DEADLINE_RISK_PERCENT_DEFAULT,
            sla_flush_ms: SLA_FLUSH_MS_DEFAULT,
        }
    }
}

impl MonitorSettings {
    /// Refuses settings the monitor cannot run with.
    pub fn validate(&self) -> Result<(), String> {
        if self.interval_ms == 0 || self.sla_flush_ms == 0 {
            return Err("[monitor] interval_ms and sla_flush_ms must be above 0".into());
        }
        if !(1..=100).contains(&self.deadline_risk_percent) {
            return Err(format!(
                "[monitor] deadline_risk_percent = {}: expected 1 to 100",
                self.deadline_risk_percent
            ));
        }
        Ok(())
    }
}

/// A request to look now and write the SLA files; answered when done.
pub(crate) type FlushRequest = std::sync::mpsc::SyncSender<()>;

/// The wall clock, Unix ms (the SLA buckets are wall-clock minutes).
pub(crate) fn unix_now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Runs until the operator thread's runtime stops.
pub(crate) async fn run(ctx: Arc<Context>, mut flushes: mpsc::Receiver<FlushRequest>) {
    let mut tick = tokio::time::interval(Duration::from_millis(ctx.monitor.interval_ms));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut watcher = Watcher::default();
    let mut seen = SeenCounts::default();
    let mut flushed_ms = unix_now_ms();
    // Runs for the life of the operator thread; each pass is one look.
    loop {
        let asked = tokio::select! {
            _ = tick.tick() => None,
            asked = flushes.recv() => match asked {
                Some(done) => Some(done),
                None => return,
            },
        };
        look(&ctx, &mut watcher, &mut seen).await;
        let now_ms = unix_now_ms();
        if asked.is_some() || now_ms.saturating_sub(flushed_ms) >= ctx.monitor.sla_flush_ms {
            flush(&ctx).await;
            flushed_ms = now_ms;
        }
        if let Some(done) = asked {
            let _ = done.try_send(()); // the asker may have given up
        }
    }
}

/// One look: events for what changed, SLA counts for what was counted.
async fn look(ctx: &Context, watcher: &mut Watcher, seen: &mut SeenCounts) {
    let stats = match every_shard(&ctx.hub).await {
        Ok(s) => s,
        Err(e) => {
            tracing::debug!(error = ?e, "monitor: the shards did not all answer; next look later");
            return;
        }
    };
    let now_ms = unix_now_ms();
    let rows = providers::rows(
        ctx.hub.registry(),
        &stats,
        ctx.monitor.deadline_risk_percent,
    );
    let storage: Vec<StorageState> = stats.iter().map(StorageState::of).collect();
    for (kind, subject) in watcher.observe(&rows, &storage) {
        ctx.events.publish(now_ms, kind, subject);
    }
    let mut store = ctx.sla.lock().expect("no panics while held");
    for (kind, counts) in seen.since_last(&stats, ctx) {
        store.add(now_ms, kind.as_str(), &counts);
    }
}

/// Writes the changed SLA hours, off the runtime's thread.
pub(crate) async fn flush(ctx: &Context) {
    let files = ctx.sla.lock().expect("no panics while held").take_dirty();
    if files.is_empty() {
        return;
    }
    let written = tokio::task::spawn_blocking(move || sla_store::write_files(&files)).await;
    match written {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::error!(error = %e, "SLA store: cannot write its files"),
        Err(e) => tracing::error!(error = %e, "SLA store: the writer failed"),
    }
}

/// Each shard's running SLA totals as of the last look.
#[derive(Default)]
struct SeenCounts {
    last: HashMap<(u16, DataKindId), KindSla>,
}

impl SeenCounts {
    /// What each kind counted since the last look, all shards together.
    fn since_last(&mut self, stats: &[ShardStats], ctx: &Context) -> Vec<(DataKindId, KindCounts)> {
        let mut out: HashMap<DataKindId, KindCounts> = HashMap::new();
        for s in stats {
            for (kind, now) in &s.sla {
                let key = (s.shard, kind.clone());
                let (live, test) = match self.last.get(&key) {
                    Some(before) => (now.live.since(&before.live), now.test.since(&before.test)),
                    None => (now.live.clone(), now.test.clone()),
                };
                self.last.insert(key, now.clone());
                if live.is_empty() && test.is_empty() {
                    continue;
                }
                let realtime = ctx
                    .hub
                    .registry()
                    .kind(kind)
                    .is_some_and(|k| k.mode == Mode::Realtime);
                let entry = out.entry(kind.clone()).or_default();
                entry.provider = now.provider.to_string();
                entry.realtime = realtime;
                entry.live.add(&live);
                entry.test.add(&test);
            }
        }
        let mut list: Vec<_> = out.into_iter().collect();
        list.sort_by(|a, b| a.0.cmp(&b.0));
        list
    }
}
