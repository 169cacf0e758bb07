//! What a hub is started with: where its logs live, how many shards run on
//! which cores, the registry, the log settings, the shard rules' tunables and
//! the bounds of every channel between threads.

use crate::registry::Registry;
use crate::runtime::start_error::HubStartError;
use crate::shard::{ShardConfig, FINISHED_KEEP_MS_PRODUCTION, RETENTION_MS_PRODUCTION};
use gonets_storage::LogConfig;
use gonets_types::ids::MessageId;
use std::path::PathBuf;
use std::sync::Arc;

/// Default bound of each of a shard's two inbound channels (rt lane with
/// peer messages, bulk lane).
pub const INBOX_CAPACITY_DEFAULT: usize = 4096;
/// Default bytes a shard's log may hold unwritten before the shard stops
/// taking bulk commands until a write ends (ADR 0015): what an rt record
/// may find ahead of it in the log.
pub const BULK_UNWRITTEN_BYTES_MAX_DEFAULT: u64 = 512 << 10;
/// Default of [`HubConfig::unawaited_commit_delay_ms`] (ADR 0025).
pub const UNAWAITED_COMMIT_DELAY_MS_DEFAULT: u64 = 5;
/// Largest [`HubConfig::unawaited_commit_delay_ms`]: what a crash may cut
/// off stays within a blink.
pub const UNAWAITED_COMMIT_DELAY_MS_MAX: u64 = 1000;
/// Default bound of the peer messages one shard keeps for a slow peer before
/// it refuses new client commands with `Unavailable`.
pub const OUTBOX_MESSAGES_MAX_DEFAULT: usize = 65_536;
/// Default most credits a subscription may hold at once (its push buffer).
pub const SUBSCRIPTION_CREDITS_MAX_DEFAULT: u32 = 1024;
/// Default number of appended records between two state snapshots. The
/// shard takes no input while a snapshot's parts are appended, and what a
/// snapshot writes grows with what changed since the last one: beside bulk
/// flat out (~100,000 records a second on the project VM) one every
/// 100,000 records held calls 4–8 ms once a second; four times as often,
/// each hold is a quarter of that and rt's p99.9 beside bulk fell ~20 %
/// for ~5 % more hub CPU at rt 10,000/s alone (ADR 0035).
pub const SNAPSHOT_EVERY_RECORDS_DEFAULT: u64 = 25_000;
/// Default [`HubConfig::anchor_interval_ms`]: a signed anchor of every
/// shard's chain head at least every 10 s while records are written.
pub const ANCHOR_INTERVAL_MS_DEFAULT: u64 = 10_000;
/// Default history-index entries a shard holds before it writes a run.
pub const INDEX_TABLE_ENTRIES_MAX_DEFAULT: usize = crate::runtime::archive::TABLE_ENTRIES_MAX;
/// Default time shutdown waits for shards to settle peer traffic, ms.
pub const DRAIN_TIMEOUT_MS_DEFAULT: u64 = 5_000;
/// Default time `Drop` of a hub that was not shut down waits for its threads, ms.
pub const DROP_WAIT_MS_DEFAULT: u64 = 10_000;

/// The shard rules' tunables, the same for every shard of a hub: the part
/// of [`ShardConfig::production`] an operator may change (serve's config
/// file sets them). The rest of the shard's configuration is production's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardTuning {
    /// How long a delivered message stays leased without an ack, ms.
    pub lease_timeout_ms: u64,
    /// Deliveries without an ack before a request is dead-lettered.
    pub deliveries_max: u32,
    /// How long an idempotency key is remembered, ms.
    pub dedup_window_ms: u64,
    /// Most messages one fetch returns.
    pub fetch_max: u32,
    /// Longest long-poll wait, ms.
    pub wait_ms_max: u64,
    /// How long a finished exchange stays in memory, ms (`None`: for ever,
    /// memory grows with traffic). `status` reads it from the history
    /// archive afterwards (ADR 0005), so this bounds memory, not history.
    pub finished_keep_ms: Option<u64>,
    /// Retention period of the shard logs, ms: a segment is dropped only
    /// once every message in it is at least this old and nothing live or
    /// replay needs it (0: as soon as nothing needs it). Histories are kept
    /// in the history archive regardless.
    pub retention_ms: u64,
    /// A provider is unreachable when requests wait and nobody has read its
    /// kind's queue for this long, ms (0: never;
    /// [`crate::shard::PROVIDER_UNREACHABLE_AFTER_MS_DEFAULT`]).
    pub provider_unreachable_after_ms: u64,
    /// Whether each shard keeps an rt journal (docs/adr/0036): a copy of
    /// every record of a call's exchange in a small log of its own, so a
    /// call's answer goes to its caller once either holds it durably.
    /// Experimental, off by default.
    pub rt_journal: bool,
}

/// Default pace of the attachment store's chunk writes, bytes a second.
pub const ATTACHMENT_WRITE_BYTES_PER_S_DEFAULT: u64 = 0;

/// Default pace of the attachment store's chunk writes while real-time
/// calls come, bytes a second: 8 MiB/s, a 1 GiB upload in a little over
/// two minutes. Every byte the store writes waits in front of the next rt
/// commit's device flush, so rt p99 beside an upload grows with the pace
/// (bench/RESULTS.md: 1.39 × the p99 alone at 8 MiB/s against 1.56 × at
/// 16; "Issue 19: the uploader off the rt generator's turn" has today's
/// runs, which over 512 MiB stayed within 1.2 × at both paces and over
/// 1 GiB did not, at either, in some runs).
pub const ATTACHMENT_BESIDE_RT_WRITE_BYTES_PER_S_DEFAULT: u64 = 8 << 20;

/// Default retention period of the shard logs: production's, 7 days.
pub const RETENTION_MS_DEFAULT: u64 = RETENTION_MS_PRODUCTION;

/// Default time a finished exchange's history stays in memory: production's,
/// 10 minutes.
pub const FINISHED_KEEP_MS_DEFAULT: u64 = FINISHED_KEEP_MS_PRODUCTION;

impl Default for ShardTuning {
    /// Production's tunables ([`ShardConfig::production`]).
    fn default() -> Self {
        ShardTuning::from(&ShardConfig::production(0, 1))
    }
}

impl From<&ShardConfig> for ShardTuning {
    /// The tunables of a shard configuration.
    fn from(c: &ShardConfig) -> Self {
        ShardTuning {
            lease_timeout_ms: c.lease_timeout_ms,
            deliveries_max: c.deliveries_max,
            dedup_window_ms: c.dedup_window_ms,
            fetch_max: c.fetch_max,
            wait_ms_max: c.wait_ms_max,
            finished_keep_ms: c.finished_keep_ms,
            retention_ms: c.retention_ms,
            provider_unreachable_after_ms: c.provider_unreachable_after_ms,
            rt_journal: c.rt_journal,
        }
    }
}

impl ShardTuning {
    /// The configuration of shard `shard` of `shard_count`: production's with
    /// these tunables, this boot's nonce and the record size limit of `log`.
    pub(crate) fn shard_config(
        &self,
        shard: u16,
        shard_count: u16,
        boot_nonce: u32,
        log: &LogConfig,
    ) -> ShardConfig {
        ShardConfig {
            lease_timeout_ms: self.lease_timeout_ms,
            deliveries_max: self.deliveries_max,
            dedup_window_ms: self.dedup_window_ms,
            fetch_max: self.fetch_max,
            wait_ms_max: self.wait_ms_max,
            finished_keep_ms: self.finished_keep_ms,
            retention_ms: self.retention_ms,
            provider_unreachable_after_ms: self.provider_unreachable_after_ms,
            rt_journal: self.rt_journal,
            boot_nonce,
            record_bytes_max: log.payload_bytes_max(),
            ..ShardConfig::production(shard, shard_count)
        }
    }
}

/// Everything [`crate::Hub::start`] needs.
#[derive(Clone, Debug)]
pub struct HubConfig {
    /// Directory of the shards' logs (`shard-N/` each); created if missing.
    pub data_dir: PathBuf,
    /// Shards (one thread and one log each). Must stay the same across
    /// restarts of one data directory: queues are placed by a hash modulo it.
    pub shards: u16,
    /// `None`: threads float. `Some(cores)`: shard `i` is pinned to `cores[i]`.
    pub pin_cores: Option<Vec<usize>>,
    /// `None`: the kernel's io-wq workers, which run each shard's blocking
    /// disk operations (every `fdatasync`), inherit the shard thread's CPU
    /// mask, so a pinned shard shares its core with them. `Some(cores)`:
    /// they run only on these cores (docs/adr/0024).
    pub io_worker_cores: Option<Vec<usize>>,
    /// `Some(ms)`: a shard executor's task queue that runs past its budget
    /// by more than `ms` without yielding is logged with its stack and
    /// counted per lane (docs/adr/0031). `None` (the default): off, as it
    /// costs a timer per task queue run.
    pub stall_report_ms: Option<u64>,
    /// Participants, data kinds and access rights.
    pub registry: Arc<Registry>,
    /// Settings of every shard's log.
    pub log: LogConfig,
    /// The shard rules' tunables.
    pub shard: ShardTuning,
    /// Appended records between two snapshots of a shard's state (bounds replay after a restart).
    pub snapshot_every_records: u64,
    /// History-index entries (two per finished exchange) a shard holds in
    /// memory before it writes them as an index run (bounds replay of the
    /// history archive after a restart).
    pub index_table_entries_max: usize,
    /// Bound of each of a shard's two inbound channels (rt, bulk); senders
    /// wait when it is full.
    pub inbox_capacity: usize,
    /// Bytes a shard's log may hold appended and not yet durable before the
    /// shard reads no more bulk commands (they wait in the bulk inbox) until
    /// a write ends: bounds how long an rt record waits behind bulk ones.
    /// A turn takes at most half of it, so one write runs while the next
    /// fills.
    pub bulk_unwritten_bytes_max: u64,
    /// Most time a record nobody awaits waits for a commit, ms: a call's
    /// request (its answer's commit carries it), an answer's delivery
    /// events, audit records. Such records ride the next commit something
    /// awaits, so an rt call costs one commit, not three. 0: every turn
    /// commits what it appended. A crash may lose such records younger
    /// than this; none was acknowledged (ADR 0025).
    pub unawaited_commit_delay_ms: u64,
    /// Peer messages a shard holds for one slow peer before it refuses client commands.
    pub outbox_messages_max: usize,
    /// Most credits a subscription may hold at once; also its push buffer's size.
    pub subscription_credits_max: u32,
    /// How fast the attachment store writes uploaded chunks, bytes a
    /// second (0: as fast as the disk takes them; docs/adr/0022).
    pub attachment_write_bytes_per_s: u64,
    /// How fast it writes them while real-time calls come through the
    /// hub, bytes a second (0: no pace of its own; the lower of the two
    /// holds; docs/adr/0022, amendment of 2026-12-05).
    pub attachment_beside_rt_write_bytes_per_s: u64,
    /// Memory each executor registers with io_uring, bytes; `None` sizes it
    /// from the log settings (its batch buffers), which keeps it modest.
    pub io_memory_bytes: Option<usize>,
    /// How long shutdown lets shards settle messages between them, ms.
    pub drain_timeout_ms: u64,
    /// How long dropping a hub that was not shut down waits for its threads, ms.
    pub drop_wait_ms: u64,
    /// The hub's signing key (receipts, chain anchors; docs/security.md):
    /// `None` (the default of an embedded hub) signs nothing. `gonets
    /// serve` always has one (`hub_key` in its file, else a development
    /// key under the data directory).
    pub hub_key: Option<Arc<gonets_trust::HubKey>>,
    /// With a hub key: most time between two signed anchors of a shard's
    /// chain head while records are written, ms; 0: only after snapshots
    /// (docs/adr/0020-signed-anchors-and-verify.md).
    pub anchor_interval_ms: u64,
}

impl HubConfig {
    /// Defaults: one shard per available core, unpinned, the embedded
    /// registry, the default log settings.
    pub fn new(data_dir: impl Into<PathBuf>) -> HubConfig {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let shards_max = usize::from(MessageId::SHARD_MAX) + 1;
        HubConfig {
            data_dir: data_dir.into(),
            shards: cores.clamp(1, shards_max) as u16,
            pin_cores: None,
            io_worker_cores: None,
            stall_report_ms: None,
            registry: Arc::new(Registry::embedded_default()),
            log: LogConfig::default(),
            shard: ShardTuning::default(),
            snapshot_every_records: SNAPSHOT_EVERY_RECORDS_DEFAULT,
            index_table_entries_max: INDEX_TABLE_ENTRIES_MAX_DEFAULT,
            inbox_capacity: INBOX_CAPACITY_DEFAULT,
            bulk_unwritten_bytes_max: BULK_UNWRITTEN_BYTES_MAX_DEFAULT,
            unawaited_commit_delay_ms: UNAWAITED_COMMIT_DELAY_MS_DEFAULT,
            outbox_messages_max: OUTBOX_MESSAGES_MAX_DEFAULT,
            subscription_credits_max: SUBSCRIPTION_CREDITS_MAX_DEFAULT,
            attachment_write_bytes_per_s: ATTACHMENT_WRITE_BYTES_PER_S_DEFAULT,
            attachment_beside_rt_write_bytes_per_s: ATTACHMENT_BESIDE_RT_WRITE_BYTES_PER_S_DEFAULT,
            io_memory_bytes: None,
            drain_timeout_ms: DRAIN_TIMEOUT_MS_DEFAULT,
            drop_wait_ms: DROP_WAIT_MS_DEFAULT,
            hub_key: None,
            anchor_interval_ms: ANCHOR_INTERVAL_MS_DEFAULT,
        }
    }

    /// The io_uring memory each executor registers, bytes.
    pub(crate) fn io_memory_bytes(&self) -> usize {
        // The log's batch buffers and one prewrite chunk are the DMA memory a
        // shard uses; more would only be locked memory nobody touches.
        self.io_memory_bytes.unwrap_or_else(|| {
            self.log
                .batch_bytes_max
                .saturating_mul(self.log.batch_buffers_max)
                .saturating_add(self.log.prewrite_chunk_bytes)
        })
    }

    /// Checks every bound; the error names the broken one.
    pub(crate) fn validate(&self) -> Result<(), HubStartError> {
        let fail = |s: String| Err(HubStartError::Config(s));
        let shards_max = u32::from(MessageId::SHARD_MAX) + 1;
        if self.shards == 0 || u32::from(self.shards) > shards_max {
            return fail(format!(
                "shards is {}; it must be between 1 and {shards_max}",
                self.shards
            ));
        }
        if self.stall_report_ms == Some(0) {
            return fail(
                "stall_report_ms is 0; give the ms over budget worth reporting, or leave it out"
                    .into(),
            );
        }
        if self.io_worker_cores.as_ref().is_some_and(Vec::is_empty) {
            return fail(
                "io_worker_cores is empty; name at least one core, or leave it out".into(),
            );
        }
        if let Some(cores) = &self.pin_cores {
            if cores.len() != usize::from(self.shards) {
                return fail(format!(
                    "pin_cores names {} cores for {} shards; name one per shard",
                    cores.len(),
                    self.shards
                ));
            }
        }
        if let Err(e) = self.log.validate() {
            return fail(e.to_string());
        }
        if self.snapshot_every_records == 0 {
            return fail("snapshot_every_records must be positive".into());
        }
        if self.index_table_entries_max == 0 {
            return fail("index_table_entries_max must be positive".into());
        }
        if self.inbox_capacity == 0 || self.outbox_messages_max == 0 {
            return fail("inbox_capacity and outbox_messages_max must be positive".into());
        }
        if self.bulk_unwritten_bytes_max == 0 {
            return fail("bulk_unwritten_bytes_max must be positive".into());
        }
        if self.unawaited_commit_delay_ms > UNAWAITED_COMMIT_DELAY_MS_MAX {
            return fail(format!(
                "unawaited_commit_delay_ms = {}: at most {UNAWAITED_COMMIT_DELAY_MS_MAX}",
                self.unawaited_commit_delay_ms
            ));
        }
        if self.subscription_credits_max == 0 {
            return fail("subscription_credits_max must be positive".into());
        }
        if self.shard.lease_timeout_ms == 0 || self.shard.deliveries_max == 0 {
            return fail("lease_timeout_ms and deliveries_max must be positive".into());
        }
        if self.shard.fetch_max == 0 {
            return fail("fetch_max must be positive".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_default_tuning_when_shard_config_built_then_it_is_production() {
        let c = ShardTuning::default().shard_config(2, 4, 7, &LogConfig::default());
        let production = ShardConfig {
            boot_nonce: 7,
            ..ShardConfig::production(2, 4)
        };
        assert_eq!(c, production);
        assert_eq!(HubConfig::new("/d").shard, ShardTuning::default());
    }

    #[test]
    fn given_tuning_and_log_when_shard_config_built_then_they_override_production() {
        let tuning = ShardTuning {
            lease_timeout_ms: 1,
            deliveries_max: 2,
            dedup_window_ms: 3,
            fetch_max: 4,
            wait_ms_max: 5,
            finished_keep_ms: None,
            retention_ms: 6,
            provider_unreachable_after_ms: 7,
            rt_journal: true,
        };
        let log = LogConfig::small_for_tests();
        let c = tuning.shard_config(0, 1, 0, &log);
        assert_eq!(ShardTuning::from(&c), tuning);
        assert_eq!(c.record_bytes_max, log.payload_bytes_max());
        // What an operator does not tune is production's.
        assert!(c.archive_histories && !c.snapshot_finished);
    }

    #[test]
    fn given_an_unawaited_delay_over_the_max_when_validated_then_refused() {
        let mut config = HubConfig::new("/d");
        assert_eq!(
            config.unawaited_commit_delay_ms,
            UNAWAITED_COMMIT_DELAY_MS_DEFAULT
        );
        config.unawaited_commit_delay_ms = UNAWAITED_COMMIT_DELAY_MS_MAX;
        assert!(config.validate().is_ok());
        config.unawaited_commit_delay_ms = UNAWAITED_COMMIT_DELAY_MS_MAX + 1;
        let why = config.validate().expect_err("over the max").to_string();
        assert!(why.contains("unawaited_commit_delay_ms"), "{why}");
    }

    #[test]
    fn given_a_zero_stall_report_threshold_when_validated_then_refused() {
        let mut config = HubConfig::new("/d");
        assert_eq!(config.stall_report_ms, None, "off by default");
        config.stall_report_ms = Some(1);
        assert!(config.validate().is_ok());
        config.stall_report_ms = Some(0);
        let why = config.validate().expect_err("zero").to_string();
        assert!(why.contains("stall_report_ms is 0"), "{why}");
    }
}
