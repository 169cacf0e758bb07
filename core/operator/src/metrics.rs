//! `/metrics`: the shards' copied counters in the Prometheus text
//! exposition format (0.0.4), encoded by `prometheus-client`. A fresh
//! registry per scrape: the values are the shards' own running totals, so
//! nothing accumulates here. docs/operations.md lists every family and
//! what is not counted yet.

use crate::providers::ProviderRow;
use gonets_engine::runtime::stats::{LogReport, ShardStats, ERROR_CODES, REPLY_KINDS};
use gonets_engine::shard::sla::{AnswerTimes, SlaTally};
use gonets_engine::Log2Histogram;
use gonets_types::ids::QueueId;
use gonets_types::RefusalCode;
use prometheus_client::encoding::{prometheus_text, EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

/// The `Content-Type` of the text.
pub(crate) const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

type Labels = Vec<(String, String)>;
type Counters = Family<Labels, Counter>;
type Gauges = Family<Labels, Gauge>;
type FloatGauges = Family<Labels, Gauge<f64, AtomicU64>>;
type FloatCounters = Family<Labels, Counter<f64, AtomicU64>>;

fn shard_label(shard: u16) -> Labels {
    vec![("shard".into(), shard.to_string())]
}

fn with(mut labels: Labels, key: &str, value: impl Into<String>) -> Labels {
    labels.push((key.into(), value.into()));
    labels
}

/// A counter family registered under `name` (`_total` is added).
fn counters(registry: &mut Registry, name: &str, help: &str) -> Counters {
    let family = Counters::default();
    registry.register(name, help, family.clone());
    family
}

fn gauges(registry: &mut Registry, name: &str, help: &str) -> Gauges {
    let family = Gauges::default();
    registry.register(name, help, family.clone());
    family
}

fn float_counters(registry: &mut Registry, name: &str, help: &str) -> FloatCounters {
    let family = FloatCounters::default();
    registry.register(name, help, family.clone());
    family
}

fn float_gauges(registry: &mut Registry, name: &str, help: &str) -> FloatGauges {
    let family = FloatGauges::default();
    registry.register(name, help, family.clone());
    family
}

/// What the metrics read of the hub as a whole, not of a shard.
pub(crate) struct HubWide {
    /// The process's resident memory, where it could be read.
    pub(crate) resident_bytes: Option<u64>,
    /// `HubHandle::attachment_write_paced_seconds`.
    pub(crate) attachment_write_paced_seconds: f64,
}

/// The Prometheus text for every shard's copy, the providers' rows, and
/// the hub-wide figures (resident memory, the attachment store's pace).
pub(crate) fn render(stats: &[ShardStats], providers: &[ProviderRow], hub: &HubWide) -> String {
    let mut registry = Registry::default();
    shard_counters(&mut registry, stats);
    replies(&mut registry, stats);
    queues(&mut registry, stats);
    logs(&mut registry, stats);
    shard_states(&mut registry, stats);
    lane_usage(&mut registry, stats);
    rt_stages(&mut registry, stats);
    shard_holds(&mut registry, stats);
    provider_states(&mut registry, providers);
    sla_counts(&mut registry, stats);
    answer_times(&mut registry, stats);
    let paced: Counter<f64, AtomicU64> = Counter::default();
    paced.inc_by(hub.attachment_write_paced_seconds);
    registry.register(
        "gonets_attachment_write_paced_seconds",
        "Seconds the attachment store waited on its write pace ([attachments] paces)",
        paced,
    );
    if let Some(bytes) = hub.resident_bytes {
        let rss: Gauge = Gauge::default();
        rss.set(i64::try_from(bytes).unwrap_or(i64::MAX));
        registry.register(
            "process_resident_memory_bytes",
            "Resident memory of the gonets process",
            rss,
        );
    }
    let mut text = String::new();
    prometheus_text::encode(&mut text, &registry).expect("writing to a String cannot fail");
    text
}

/// The shard rules' own counters (`ShardCounters`).
fn shard_counters(registry: &mut Registry, stats: &[ShardStats]) {
    type Pick = fn(&ShardStats) -> u64;
    let families: [(&str, &str, Pick); 16] = [
        (
            "gonets_requests_accepted",
            "Requests accepted (durable)",
            |s| s.counters.accepted,
        ),
        (
            "gonets_requests_duplicate",
            "Sends answered with an earlier acceptance",
            |s| s.counters.duplicates,
        ),
        (
            "gonets_answers_late",
            "Answers that came after their request had expired",
            |s| s.counters.late_answers,
        ),
        (
            "gonets_requests_expired",
            "Requests expired before an answer",
            |s| s.counters.expired,
        ),
        (
            "gonets_requests_dead_lettered",
            "Requests dead-lettered after too many deliveries",
            |s| s.counters.dead_lettered,
        ),
        (
            "gonets_redeliveries",
            "Deliveries of a request after its first (an earlier lease ended without an ack)",
            |s| s.counters.redeliveries,
        ),
        (
            "gonets_requests_state_secret_refused",
            "Requests refused as state secrets",
            |s| s.counters.state_secrets_refused,
        ),
        (
            "gonets_requests_invalid_format",
            "Requests refused INVALID_FORMAT (their kind's request format)",
            |s| s.counters.requests_invalid_format,
        ),
        (
            "gonets_answers_invalid_format",
            "Data answers refused INVALID_FORMAT (their kind's answer format)",
            |s| s.counters.answers_invalid_format,
        ),
        (
            "gonets_requests_bad_signature",
            "Requests refused BAD_SIGNATURE (missing where required, unknown or out-of-date key, a signature that does not verify)",
            |s| s.counters.requests_bad_signature,
        ),
        (
            "gonets_answers_bad_signature",
            "Answers refused BAD_SIGNATURE",
            |s| s.counters.answers_bad_signature,
        ),
        (
            "gonets_receipts_signed",
            "Receipts of requests and answers handed out signed by the hub",
            |s| s.counters.receipts_signed,
        ),
        (
            "gonets_receipt_signatures",
            "Hub signatures that signed those receipts: one per tree of a step's receipts (docs/adr/0023)",
            |s| s.counters.receipt_signatures,
        ),
        (
            "gonets_answers_routed_by_journal",
            "Calls' answers routed by the rt journal before the shard log made them durable (docs/adr/0036)",
            |s| s.counters.answers_routed_by_journal,
        ),
        (
            "gonets_histories_archived",
            "Finished histories the archive holds durably",
            |s| s.counters.archived,
        ),
        (
            "gonets_exchanges_evicted",
            "Finished exchanges removed from memory",
            |s| s.counters.evicted,
        ),
    ];
    for (name, help, pick) in families {
        let family = counters(registry, name, help);
        for s in stats {
            family.get_or_create(&shard_label(s.shard)).inc_by(pick(s));
        }
    }
}

/// Replies sent by each shard, by operation reply kind and code (`OK` or a wire error code).
fn replies(registry: &mut Registry, stats: &[ShardStats]) {
    let family = counters(
        registry,
        "gonets_replies",
        "Replies a shard sent, by reply kind and code (OK, or the wire error code)",
    );
    for s in stats {
        for (kind, kind_name) in REPLY_KINDS {
            let labels = with(shard_label(s.shard), "reply", kind_name);
            family
                .get_or_create(&with(labels.clone(), "code", "OK"))
                .inc_by(s.replies.ok(kind));
            for (i, code) in ERROR_CODES.iter().enumerate() {
                let n = s.replies.refused(kind, i);
                if n > 0 {
                    family
                        .get_or_create(&with(labels.clone(), "code", *code))
                        .inc_by(n);
                }
            }
        }
    }
}

fn queue_labels(shard: u16, queue: &QueueId) -> Labels {
    let (kind, owner) = match queue {
        QueueId::Requests(k) => ("requests", k.to_string()),
        QueueId::Answers(p) => ("answers", p.to_string()),
    };
    with(with(shard_label(shard), "queue_type", kind), "owner", owner)
}

/// Each queue's depth, leases, oldest age and waiting bytes (a request
/// queue is one data kind's: `owner` is the kind).
fn queues(registry: &mut Registry, stats: &[ShardStats]) {
    let depth = gauges(
        registry,
        "gonets_queue_depth_messages",
        "Messages in the queue (ready, leased or delayed)",
    );
    let leased = gauges(
        registry,
        "gonets_queue_in_flight_messages",
        "Messages handed to a reader and not acked (leases)",
    );
    let waiting = gauges(
        registry,
        "gonets_queue_waiting_payload_bytes",
        "Payload bytes of the requests the queue holds",
    );
    let oldest = float_gauges(
        registry,
        "gonets_queue_oldest_age_seconds",
        "Age of the oldest message in the queue (0 when empty)",
    );
    for s in stats {
        for q in &s.queues {
            let labels = queue_labels(s.shard, &q.queue);
            depth.get_or_create(&labels).set(saturate(q.stats.depth));
            leased
                .get_or_create(&labels)
                .set(saturate(q.stats.in_flight));
            waiting
                .get_or_create(&labels)
                .set(saturate(q.waiting_bytes));
            oldest
                .get_or_create(&labels)
                .set(q.stats.oldest_age_ms as f64 / 1000.0);
        }
    }
}

/// Both logs of each shard: commits, fdatasyncs, bytes written and on disk.
fn logs(registry: &mut Registry, stats: &[ShardStats]) {
    let commits = counters(
        registry,
        "gonets_log_commits",
        "Group commits (batch writes) since start",
    );
    let syncs = counters(
        registry,
        "gonets_log_fdatasyncs",
        "Syncs that made a batch durable since start: fdatasync calls, or O_DSYNC batch writes ([commit] sync)",
    );
    let written = counters(
        registry,
        "gonets_log_written_bytes",
        "Bytes the log wrote since start (batches, headers, checkpoints, zeros)",
    );
    let disk = gauges(
        registry,
        "gonets_log_disk_bytes",
        "Bytes of the log's segment files on disk",
    );
    let segments = gauges(registry, "gonets_log_segments", "Segment files of the log");
    for s in stats {
        for (name, log) in s.logs() {
            let labels = with(shard_label(s.shard), "log", name);
            let report: &LogReport = log;
            commits.get_or_create(&labels).inc_by(report.commits());
            syncs.get_or_create(&labels).inc_by(report.fdatasyncs());
            written
                .get_or_create(&labels)
                .inc_by(report.stats.bytes_written());
            disk.get_or_create(&labels)
                .set(saturate(report.disk_bytes()));
            segments
                .get_or_create(&labels)
                .set(saturate(report.stats.segments as u64));
        }
    }
    commit_histograms(registry, stats);
}

/// Each log's group commits: latency (write to sync's return) and size;
/// and its rolls to a new segment, which every commit waiting then waits out.
fn commit_histograms(registry: &mut Registry, stats: &[ShardStats]) {
    let mut latency = Histograms::default();
    let mut size = Histograms::default();
    let mut rolls = Histograms::default();
    for s in stats {
        for (name, log) in s.logs() {
            let labels = with(shard_label(s.shard), "log", name);
            let c = &log.stats.commits;
            latency.push_log2(labels.clone(), &c.latency_us, 1e-6);
            size.push_log2(labels.clone(), &c.batch_bytes, 1.0);
            rolls.push_log2(labels, &c.roll_us, 1e-6);
        }
    }
    registry.register(
        "gonets_log_commit_latency_seconds",
        "Group commits: time from a batch's write to its fdatasync's return (power-of-two microsecond buckets)",
        latency,
    );
    registry.register(
        "gonets_log_commit_batch_bytes",
        "Group commits: bytes of each batch write (padded to 4 KiB)",
        size,
    );
    registry.register(
        "gonets_log_roll_latency_seconds",
        "Rolls to a new segment: batches in flight settled, the next segment created, preallocated and synced; no batch is written meanwhile (power-of-two microsecond buckets)",
        rolls,
    );
}

/// Where real-time calls and answers spent their time in the hub, by
/// stage (`gonets_engine::runtime::rt_stages`), per shard executor.
fn rt_stages(registry: &mut Registry, stats: &[ShardStats]) {
    let mut series = Histograms::default();
    for s in stats {
        for (op, stage, h) in &s.rt_stages {
            let labels = with(
                with(shard_label(s.shard), "op", op.name()),
                "stage",
                stage.name(),
            );
            series.push_log2(labels, h, 1e-6);
        }
    }
    registry.register(
        "gonets_rt_stage_seconds",
        "Real-time calls and answers, each stage of their stay in the hub: spawn (frame read to its task running), inbox (handed to the shard to stepped), shard (stepped to reply sent: for a call the provider's turn and the answer's commit, for an answer its commit), out (reply taken to written), hub (frame read to reply written); power-of-two microsecond buckets",
        series,
    );
}

/// How long each shard was held at a time: its driver's turns and its
/// snapshots (`gonets_engine::runtime::holds`).
fn shard_holds(registry: &mut Registry, stats: &[ShardStats]) {
    let mut series = Histograms::default();
    for s in stats {
        for (hold, h) in &s.holds {
            let labels = with(shard_label(s.shard), "hold", hold.name());
            series.push_log2(labels, h, 1e-6);
        }
    }
    registry.register(
        "gonets_shard_hold_seconds",
        "How long the shard was held at a time, nothing else stepping it meanwhile: rt_turn and bulk_turn (a turn of the driver's rt or bulk half, its end and any snapshot included), snapshot (a snapshot's parts made and appended, within a turn); a call arriving meanwhile waits in the inbox; power-of-two microsecond buckets",
        series,
    );
}

/// What each lane's task queue has had of its shard's executor (ADR 0015).
fn lane_usage(registry: &mut Registry, stats: &[ShardStats]) {
    let busy = float_counters(
        registry,
        "gonets_shard_lane_busy_seconds",
        "CPU time the shard's executor ran each lane's task queue (rt, bulk, background, front: the network front ends)",
    );
    let runs = counters(
        registry,
        "gonets_shard_lane_runs",
        "Times the shard's executor picked each lane's task queue to run; busy seconds over runs is the lane's mean run, how long the other lanes wait once it is picked",
    );
    let stalls = counters(
        registry,
        "gonets_shard_lane_stalls",
        "Runs of each lane's task queue that went over their budget by more than stall_report_ms without yielding, each logged with its stack (counted only where stall reports are on; docs/adr/0031)",
    );
    for s in stats {
        for (lane, usage) in &s.lanes {
            let labels = with(shard_label(s.shard), "lane", lane.name());
            busy.get_or_create(&labels).inc_by(usage.busy.as_secs_f64());
            runs.get_or_create(&labels).inc_by(usage.runs);
            stalls.get_or_create(&labels).inc_by(usage.stalls);
        }
    }
}

/// Each shard's state (1 or 0) and what it holds in memory.
fn shard_states(registry: &mut Registry, stats: &[ShardStats]) {
    let serving = gauges(
        registry,
        "gonets_shard_serving",
        "1 while the shard serves (log not failed, not draining)",
    );
    let space_low = gauges(
        registry,
        "gonets_shard_space_low",
        "1 while a log of the shard uses its disk reserve (new requests refused)",
    );
    let held = gauges(
        registry,
        "gonets_shard_held_entries",
        "Entries the shard holds in memory, by what they are",
    );
    let snapshot_age = float_gauges(
        registry,
        "gonets_shard_snapshot_age_seconds",
        "Time since the shard's last snapshot (the checkpoint restart replays from) became durable; absent before the first since start",
    );
    let since_snapshot = gauges(
        registry,
        "gonets_shard_records_since_snapshot",
        "Records the shard appended since its last snapshot began (what a restart replays beyond it)",
    );
    for s in stats {
        let labels = shard_label(s.shard);
        serving.get_or_create(&labels).set(i64::from(s.serving()));
        space_low.get_or_create(&labels).set(i64::from(s.space_low));
        if let Some(age_ms) = s.snapshot_age_ms {
            snapshot_age
                .get_or_create(&labels)
                .set(age_ms as f64 / 1000.0);
        }
        since_snapshot
            .get_or_create(&labels)
            .set(saturate(s.records_since_snapshot));
        let h = &s.held;
        for (what, n) in [
            ("exchanges", h.exchanges),
            ("parked", h.parked),
            ("awaiting", h.awaiting),
            ("timers", h.timers),
            ("dedup_keys", h.dedup_keys),
        ] {
            held.get_or_create(&with(labels.clone(), "what", what))
                .set(saturate(n as u64));
        }
    }
}

fn kind_labels(kind: &str, provider: &str) -> Labels {
    vec![
        ("kind".into(), kind.to_string()),
        ("provider".into(), provider.to_string()),
    ]
}

/// Each data kind's provider: unreachable, readers, last read, deadline at risk.
fn provider_states(registry: &mut Registry, rows: &[ProviderRow]) {
    let unreachable = gauges(
        registry,
        "gonets_provider_unreachable",
        "1 while requests wait and the provider has not read the kind's queue for provider_unreachable_after_ms",
    );
    let readers = gauges(
        registry,
        "gonets_provider_readers",
        "Readers connected to the kind's queue (subscriptions and waiting fetches)",
    );
    let at_risk = gauges(
        registry,
        "gonets_provider_deadline_at_risk",
        "1 while the kind's oldest request is past deadline_risk_percent of its deadline",
    );
    let last_read = float_gauges(
        registry,
        "gonets_provider_last_read_timestamp_seconds",
        "Unix time of the latest fetch, subscribe or credit on the kind's queue (absent: none since start)",
    );
    for r in rows {
        let labels = kind_labels(&r.kind, &r.provider);
        let down = r.unreachable_since_ms.is_some();
        unreachable.get_or_create(&labels).set(i64::from(down));
        readers.get_or_create(&labels).set(i64::from(r.readers));
        at_risk
            .get_or_create(&labels)
            .set(i64::from(r.deadline_at_risk));
        if let Some(ms) = r.last_read_ms {
            last_read.get_or_create(&labels).set(ms as f64 / 1000.0);
        }
    }
}

/// The shards' running SLA counts by kind and traffic class (the durable,
/// time-bucketed report is `/sla`).
fn sla_counts(registry: &mut Registry, stats: &[ShardStats]) {
    let requests = counters(
        registry,
        "gonets_kind_requests",
        "Requests accepted since start, by data kind and traffic (live or test)",
    );
    let outcomes = counters(
        registry,
        "gonets_kind_outcomes",
        "Requests ended since start, by data kind, traffic and outcome (in_time, late, expired)",
    );
    let refusals = counters(
        registry,
        "gonets_kind_refusals",
        "Refusals since start, by data kind, traffic and refusal code",
    );
    let at_door = counters(
        registry,
        "gonets_kind_refused_at_door",
        "Requests the hub refused on arrival (nothing stored), by data kind, traffic and hub error code",
    );
    let budget = counters(
        registry,
        "gonets_kind_answers_by_2s_budget",
        "Answers by data kind, traffic and whether they came within the real-time budget of 2 s of acceptance (budget=within|over)",
    );
    for s in stats {
        for (kind, sla) in &s.sla {
            for (traffic, t) in [("live", &sla.live), ("test", &sla.test)] {
                let labels = with(
                    kind_labels(kind.as_str(), sla.provider.as_str()),
                    "traffic",
                    traffic,
                );
                requests.get_or_create(&labels).inc_by(t.requests);
                count_outcomes(&outcomes, &refusals, &labels, t);
                for (code, n) in ERROR_CODES.iter().zip(t.refused_at_door) {
                    if n > 0 {
                        at_door
                            .get_or_create(&with(labels.clone(), "code", *code))
                            .inc_by(n);
                    }
                }
                let answered = t.answered_in_time + t.answered_late;
                let within = t.within_realtime_budget.min(answered);
                for (side, n) in [("within", within), ("over", answered - within)] {
                    budget
                        .get_or_create(&with(labels.clone(), "budget", side))
                        .inc_by(n);
                }
            }
        }
    }
}

/// Bucket bounds of the answer-time histogram, ms, exclusive: powers of
/// two, each one past an upper bound of the shard's own buckets, so every
/// count is exact (1 ms to about 2 minutes; above, only `+Inf`).
const ANSWER_TIME_LE_MS: [u64; 18] = [
    1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1_024, 2_048, 4_096, 8_192, 16_384, 32_768, 65_536,
    131_072,
];

/// Histogram series already counted elsewhere (a shard's buckets),
/// encoded as they are: per series its labels, each bucket's own count
/// with its upper bound (the last `+Inf`), the sum and the count.
#[derive(Debug, Default)]
struct Histograms(Vec<HistogramSeries>);

/// One series: labels, each bucket's own count with its upper bound, sum.
type HistogramSeries = (Labels, Vec<(f64, u64)>, f64);

impl Histograms {
    /// Adds a power-of-two histogram as one series, its bounds and sum
    /// scaled by `scale` (1e-6 for µs to seconds, 1 for bytes).
    fn push_log2(&mut self, labels: Labels, h: &Log2Histogram, scale: f64) {
        self.0
            .push((labels, log2_buckets(h, scale), h.sum() as f64 * scale));
    }
}

impl EncodeMetric for Histograms {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        for (labels, buckets, sum) in &self.0 {
            let count = buckets.iter().map(|(_, n)| n).sum();
            // The encoder writes the buckets cumulated.
            encoder
                .encode_family(labels)?
                .encode_histogram::<NoLabelSet>(*sum, count, buckets, None)?;
        }
        Ok(())
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

/// An answer-time histogram's buckets, seconds ([`ANSWER_TIME_LE_MS`]).
fn answer_time_buckets(times: &AnswerTimes) -> Vec<(f64, u64)> {
    let mut below = 0;
    let mut buckets: Vec<(f64, u64)> = ANSWER_TIME_LE_MS
        .iter()
        .map(|ms| {
            let cumulative = times.count_below_ms(*ms);
            let own = cumulative - below;
            below = cumulative;
            (*ms as f64 / 1000.0, own)
        })
        .collect();
    buckets.push((f64::INFINITY, times.total() - below));
    buckets
}

/// A power-of-two histogram's buckets, bounds scaled by `scale` (1e-6 for
/// µs to seconds, 1 for bytes).
fn log2_buckets(h: &Log2Histogram, scale: f64) -> Vec<(f64, u64)> {
    h.buckets()
        .map(|(bound, n)| (bound.map_or(f64::INFINITY, |b| b as f64 * scale), n))
        .collect()
}

/// Time from acceptance to answer of the answers in time, per data kind
/// and traffic class, summed over the shards (whole milliseconds).
fn answer_times(registry: &mut Registry, stats: &[ShardStats]) {
    let mut series: Vec<(Labels, AnswerTimes)> = Vec::new();
    for s in stats {
        for (kind, sla) in &s.sla {
            for (traffic, t) in [("live", &sla.live), ("test", &sla.test)] {
                let labels = with(
                    kind_labels(kind.as_str(), sla.provider.as_str()),
                    "traffic",
                    traffic,
                );
                match series.iter_mut().find(|(l, _)| *l == labels) {
                    Some((_, sum)) => sum.add(&t.answer_times),
                    None => series.push((labels, t.answer_times.clone())),
                }
            }
        }
    }
    let series = series
        .into_iter()
        .map(|(labels, t)| (labels, answer_time_buckets(&t), t.sum_ms() as f64 / 1000.0))
        .collect();
    registry.register(
        "gonets_kind_answer_time_seconds",
        "Time from acceptance to answer of the answers in time, by data kind and traffic (whole milliseconds)",
        Histograms(series),
    );
}

fn count_outcomes(outcomes: &Counters, refusals: &Counters, labels: &Labels, t: &SlaTally) {
    for (outcome, n) in [
        ("in_time", t.answered_in_time),
        ("late", t.answered_late),
        ("expired", t.expired),
    ] {
        outcomes
            .get_or_create(&with(labels.clone(), "outcome", outcome))
            .inc_by(n);
    }
    for (code, n) in RefusalCode::ALL.iter().zip(t.refused) {
        if n > 0 {
            refusals
                .get_or_create(&with(labels.clone(), "code", code.as_str()))
                .inc_by(n);
        }
    }
}

fn saturate(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
