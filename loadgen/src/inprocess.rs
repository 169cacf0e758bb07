//! `--in-process`: the `rt` and `bulk` workloads of DESIGN.md §4 with the
//! hub inside this process, driven through the embedding API
//! (`gonets_engine::Hub`, `Session`) with real storage: no network, no
//! protocol, so the engine's own figures (what `bench/engine.sh` sets
//! beside the log's commit latency). Formerly `bench`'s `hub-workloads`.
//!
//! `rt`: consumers `call` a realtime data kind at an open-loop total rate;
//! providers long-poll, answer and ack. Latency runs from each request's
//! *scheduled* send time to the caller holding the durable answer (no
//! coordinated omission); calls with no reply after 10 s are reported
//! (`unfinished`), never dropped.
//!
//! `bulk`: `senders × window` tasks each send one request at a time (the
//! same number in flight as `senders` pipelines of depth `window`);
//! providers fetch in batches and ack. Reports accepted msg/s and MB/s,
//! the time until every request was acked (drain), and the process's peak
//! resident memory (the hub's, as it runs here).
//!
//! The generator runs on one glommio executor (pinned to the first of
//! `--cores`, if given); the hub's shards are pinned with `--hub-cores`.

use crate::agency_record::PayloadFormat;
use crate::gonets::workloads::Run;
use crate::params::{BulkParams, RtParams};
use crate::process;
use crate::record::Recorder;
use crate::result::{HubCost, Phase, RunResult};
use bytes::Bytes;
use glommio::{LocalExecutorBuilder, Placement};
use gonets_engine::{Hub, HubConfig, Registry, Session};
use gonets_storage::Durability;
use gonets_types::{DataKindId, HubError, NewRequest, QueueId};
use serde_json::json;
use std::cell::{Cell, RefCell};
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

const RT_KIND: &str = "urn:gonets:bench:rt:1";
const BULK_KIND: &str = "urn:gonets:bench:bulk:1";
/// A call with no reply this long after the last send is a hang, reported.
const RT_HANG_AFTER: Duration = Duration::from_secs(10);

/// The in-process registry (one consumer, one provider, one kind per
/// workload), so the figures depend neither on the demo registry nor on
/// the network registry of the other workloads. The bulk kind comes last:
/// [`PayloadFormat::request_format_line`], appended, applies to it.
const REGISTRY: &str = r#"
[[participant]]
id = "BENCH-CONSUMER"
name = "bench consumer"
roles = ["consumer"]

[[participant]]
id = "BENCH-PROVIDER"
name = "bench provider"
roles = ["provider"]

[[data_kind]]
id = "urn:gonets:bench:rt:1"
provider = "BENCH-PROVIDER"
mode = "realtime"
deadline_ms = 2000
payload_bytes_max = 4096
consumers = ["BENCH-CONSUMER"]

[[data_kind]]
id = "urn:gonets:bench:bulk:1"
provider = "BENCH-PROVIDER"
mode = "async"
payload_bytes_max = 8192
queue_messages_max = 100000000
queue_bytes_max = 819200000000
consumers = ["BENCH-CONSUMER"]
"#;

/// The in-process hub and the generator's place.
#[derive(Clone, Debug)]
pub struct InProcessSpec {
    /// The hub's data directory (replaced; removed afterwards unless `keep`).
    pub data_dir: PathBuf,
    /// Shards of the hub.
    pub shards: u16,
    /// Pin shard i to `hub_cores[i]` (empty: unpinned).
    pub hub_cores: Vec<usize>,
    /// The generator's core (None: unpinned).
    pub generator_core: Option<usize>,
    /// What a commit waits for.
    pub durability: Durability,
    /// Records between state snapshots (None: the hub's default).
    pub snapshot_every_records: Option<u64>,
    /// Keep the data directory afterwards.
    pub keep: bool,
}

/// Parses `--durability fdatasync|dsync|none`.
pub fn durability(name: &str) -> Result<Durability, String> {
    match name {
        "fdatasync" => Ok(Durability::Fdatasync),
        "dsync" => Ok(Durability::Dsync),
        "none" => Ok(Durability::None),
        other => Err(format!(
            "--durability {other:?}: expected fdatasync, dsync or none"
        )),
    }
}

/// How a durability is named in a run's setup.
pub fn durability_name(d: Durability) -> &'static str {
    match d {
        Durability::Fdatasync => "fdatasync group commit",
        Durability::Dsync => "O_DSYNC batch writes",
        Durability::None => "none (survives a process crash only)",
    }
}

/// Removes the data directory when dropped, unless kept.
struct DataDir {
    path: PathBuf,
    keep: bool,
}

impl Drop for DataDir {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// Runs `workload` (`rt` or `bulk`) against a hub started in this process.
pub fn run(
    spec: &InProcessSpec,
    workload: &str,
    rt: &RtParams,
    bulk: &BulkParams,
) -> Result<Run, String> {
    if workload != "rt" && workload != "bulk" {
        return Err(format!(
            "--in-process runs rt and bulk only, not {workload} (use --embedded)"
        ));
    }
    let path = std::path::absolute(&spec.data_dir)
        .map_err(|e| format!("{}: {e}", spec.data_dir.display()))?;
    let _ = std::fs::remove_dir_all(&path);
    let data = DataDir {
        path,
        keep: spec.keep,
    };
    let hub = start_hub(spec, &data.path, bulk.format)?;
    let io_start = own_io();
    let consumer = hub.session("BENCH-CONSUMER").map_err(|e| e.to_string())?;
    let provider = hub.session("BENCH-PROVIDER").map_err(|e| e.to_string())?;
    let placement = spec
        .generator_core
        .map_or(Placement::Unbound, Placement::Fixed);
    // As in the hub's shards: look at I/O and timers at least every ms.
    let builder = LocalExecutorBuilder::new(placement)
        .name("loadgen")
        .preempt_timer(Duration::from_millis(1));
    let (rt, bulk) = (rt.clone(), bulk.clone());
    let bulk_format = bulk.format;
    if workload == "bulk" {
        // Too small a record fails here, before the generator starts.
        bulk.format.payloads(bulk.message_bytes)?;
    }
    let phase = match workload {
        "rt" => builder
            .spawn(move || run_rt(consumer, provider, rt))
            .map_err(|e| format!("cannot start the load generator: {e}"))?
            .join(),
        _ => builder
            .spawn(move || run_bulk(consumer, provider, bulk))
            .map_err(|e| format!("cannot start the load generator: {e}"))?
            .join(),
    }
    .map_err(|e| format!("load generator: {e:?}"))?;
    hub.shutdown().map_err(|e| format!("shutdown: {e}"))?;
    let io = own_io().zip(io_start).map(|(b, a)| (b.0 - a.0, b.1 - a.1));
    drop(data);
    let (phase, rec) = phase?;
    let mut result = RunResult::new("gonets", workload);
    let setup = &mut result.setup;
    setup.insert("hub".into(), json!("in-process"));
    setup.insert("hub_shards".into(), json!(spec.shards));
    setup.insert("hub_cores".into(), json!(spec.hub_cores));
    setup.insert("generator_core".into(), json!(spec.generator_core));
    setup.insert("durability".into(), json!(durability_name(spec.durability)));
    if workload == "bulk" {
        setup.insert("format".into(), json!(bulk_format.name()));
    }
    if let Some((written, faults)) = io {
        // From the start of the hub to its shutdown (snapshots and close included).
        eprintln!(
            "this process (the hub): {written} bytes written to disk, {faults} major page faults"
        );
        setup.insert("disk_write_bytes".into(), json!(written));
        setup.insert("major_faults".into(), json!(faults));
    }
    let curve = format!("gonets in-process {workload}");
    result.push(phase);
    Ok(Run {
        result,
        curves: vec![(curve, rec)],
    })
}

fn start_hub(
    spec: &InProcessSpec,
    data_dir: &std::path::Path,
    format: PayloadFormat,
) -> Result<Hub, String> {
    let mut config = HubConfig::new(data_dir);
    config.shards = spec.shards;
    config.pin_cores = (!spec.hub_cores.is_empty()).then(|| spec.hub_cores.clone());
    let registry = format!("{REGISTRY}{}", format.request_format_line());
    config.registry =
        Arc::new(Registry::from_toml(&registry).map_err(|e| format!("bench registry: {e}"))?);
    config.log.durability = spec.durability;
    // Measurement knob for the write-amplification figures (docs/storage.md
    // §14): the prewriter's zero writes on or off, without a CLI flag.
    if let Ok(v) = std::env::var("GONETS_BENCH_PREWRITE_AHEAD_BYTES") {
        config.log.prewrite_ahead_bytes = v
            .parse()
            .map_err(|e| format!("GONETS_BENCH_PREWRITE_AHEAD_BYTES {v}: {e}"))?;
    }
    if let Some(n) = spec.snapshot_every_records {
        config.snapshot_every_records = n;
    }
    eprintln!("starting an in-process hub in {} ...", data_dir.display());
    Hub::start(config).map_err(|e| format!("cannot start the hub: {e}"))
}

/// This process's bytes written to disk (`/proc/self/io` `write_bytes`,
/// O_DIRECT included) and major page faults (`/proc/self/stat` field 12).
fn own_io() -> Option<(u64, u64)> {
    let io = std::fs::read_to_string("/proc/self/io").ok()?;
    let written = io
        .lines()
        .find_map(|l| l.strip_prefix("write_bytes:"))?
        .trim()
        .parse()
        .ok()?;
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may hold spaces): state is field 3.
    let after = stat.rsplit_once(')')?.1;
    let faults = after.split_whitespace().nth(9)?.parse().ok()?;
    Some((written, faults))
}

/// The error's variant name (`DeadlineExceeded`), the key of the error counts.
fn error_name(e: &HubError) -> String {
    let text = format!("{e:?}");
    text.split(['(', ' ', '{'])
        .next()
        .unwrap_or("error")
        .to_string()
}

/// The memory and CPU of this process, where the hub runs.
fn own_cost(cpu_start_s: Option<f64>, operations: u64) -> HubCost {
    let me = std::process::id();
    let cpu = match (cpu_start_s, process::cpu_s(me)) {
        (Some(a), Some(b)) if operations > 0 => Some((b - a) * 1000.0 / operations as f64),
        _ => None,
    };
    HubCost {
        cpu_s_per_1000: cpu,
        peak_rss_bytes: process::peak_rss_bytes(me),
        // No operator API in process: commit counters are not read here.
        ..HubCost::default()
    }
}

/// Providers: long-poll, answer each request (when `answer` is given), ack;
/// until `stop`. Counts the acked requests in `handled`.
fn spawn_providers(
    provider: &Session,
    queue: QueueId,
    loops: usize,
    answer: Option<Bytes>,
    stop: Rc<Cell<bool>>,
    handled: Rc<Cell<u64>>,
) {
    for _ in 0..loops {
        let (provider, queue, stop) = (provider.clone(), queue.clone(), stop.clone());
        let (handled, answer) = (handled.clone(), answer.clone());
        glommio::spawn_local(async move {
            while !stop.get() {
                let batch = match provider
                    .fetch(queue.clone(), 256, Duration::from_millis(50))
                    .await
                {
                    Ok(b) => b,
                    Err(e) => {
                        eprintln!("provider fetch: {e}");
                        return;
                    }
                };
                for m in batch {
                    let (provider, handled, answer) =
                        (provider.clone(), handled.clone(), answer.clone());
                    // Each message on its own task: answers and acks of a batch
                    // share group commits instead of waiting one by one.
                    glommio::spawn_local(async move {
                        if let Some(answer) = answer {
                            if let Err(e) = provider.send_response(m.id, answer).await {
                                if !matches!(e, HubError::DeadlineExceeded) {
                                    eprintln!("send_response: {e}");
                                }
                            }
                        }
                        if provider.ack(&m).await.is_ok() {
                            handled.set(handled.get() + 1);
                        }
                    })
                    .detach();
                }
            }
        })
        .detach();
    }
}

/// What the rt calls of the measured window counted.
#[derive(Default)]
struct RtCounts {
    rec: RefCell<Recorder>,
    in_flight: Cell<u64>,
}

async fn run_rt(
    consumer: Session,
    provider: Session,
    rt: RtParams,
) -> Result<(Phase, Recorder), String> {
    let stop = Rc::new(Cell::new(false));
    spawn_providers(
        &provider,
        QueueId::Requests(DataKindId::new(RT_KIND)),
        rt.providers,
        Some(Bytes::from(vec![b'a'; rt.answer_bytes])),
        stop.clone(),
        Rc::default(),
    );
    let counts = Rc::new(RtCounts::default());
    let sched = RtSchedule::new(&rt);
    let cpu_start = process::cpu_s(std::process::id());
    let max_lag = issue_calls(&consumer, &rt, &sched, &counts).await;
    let sent_at = Instant::now();
    // Bounded: every call ends by its 2 s budget; a hang shows as unfinished.
    while counts.in_flight.get() > 0 && sent_at.elapsed() < RT_HANG_AFTER {
        glommio::timer::sleep(Duration::from_millis(10)).await;
    }
    let unfinished = counts.in_flight.get();
    stop.set(true);
    glommio::timer::sleep(Duration::from_millis(100)).await;
    let rec = counts.rec.borrow().clone();
    let mut phase = rt_phase(&rt, &rec, &sched, sent_at, unfinished, cpu_start);
    phase.judge_generator(max_lag, rt.lag_max);
    Ok((phase, rec))
}

/// When each rt call is due: every `interval` from `start`, the first
/// `warm_count` unmeasured, `total` in all.
struct RtSchedule {
    start: Instant,
    interval: Duration,
    warm_count: u64,
    total: u64,
}

impl RtSchedule {
    fn new(rt: &RtParams) -> RtSchedule {
        let interval = Duration::from_secs_f64(1.0 / rt.rate_per_s);
        let warm_count = (rt.warmup.as_secs_f64() * rt.rate_per_s) as u64;
        let total = warm_count + (rt.duration.as_secs_f64() * rt.rate_per_s) as u64;
        let start = Instant::now() + Duration::from_millis(50);
        RtSchedule {
            start,
            interval,
            warm_count,
            total,
        }
    }

    /// When call `i` is due.
    fn due_at(&self, i: u64) -> Instant {
        self.start + self.interval.mul_f64(i as f64)
    }
}

/// Makes every call of `sched` as it falls due, each in a detached task
/// over the consumer's sessions in turn; the largest lag of a measured call.
async fn issue_calls(
    consumer: &Session,
    rt: &RtParams,
    sched: &RtSchedule,
    counts: &Rc<RtCounts>,
) -> Duration {
    let sessions: Vec<Session> = (0..rt.consumers).map(|_| consumer.clone()).collect();
    let payload = Bytes::from(vec![b'q'; rt.request_bytes]);
    let mut max_lag = Duration::ZERO;
    for i in 0..sched.total {
        let scheduled = sched.due_at(i);
        let now = Instant::now();
        if scheduled > now {
            glommio::timer::sleep(scheduled - now).await;
        } else if i >= sched.warm_count {
            max_lag = max_lag.max(now - scheduled);
        }
        let session = sessions[i as usize % sessions.len()].clone();
        let req = NewRequest::new(RT_KIND, payload.clone());
        let counts = counts.clone();
        let (measured, answer_bytes) = (i >= sched.warm_count, rt.answer_bytes as u64);
        counts.in_flight.set(counts.in_flight.get() + 1);
        glommio::spawn_local(async move {
            let r = session.call(req).await;
            let latency = scheduled.elapsed();
            counts.in_flight.set(counts.in_flight.get() - 1);
            if measured {
                record_call(&counts, r.map(|_| ()), latency, answer_bytes);
            }
        })
        .detach();
    }
    max_lag
}

/// The rt phase of the measured window (the generator not judged yet).
fn rt_phase(
    rt: &RtParams,
    rec: &Recorder,
    sched: &RtSchedule,
    sent_at: Instant,
    unfinished: u64,
    cpu_start: Option<f64>,
) -> Phase {
    let measured = sched.total - sched.warm_count;
    let mut phase = Phase::new("rt", rt.duration, measured, rec);
    phase.rate_offered = Some(rt.rate_per_s);
    phase.unanswered(unfinished);
    // A call the hub refused for its deadline broke the 2 s rule too.
    let refused_late = rec.errors().get("DeadlineExceeded").copied().unwrap_or(0);
    if let Some(l) = phase.latency.as_mut() {
        l.over_2s += refused_late;
    }
    phase.hub = own_cost(cpu_start, measured);
    let first = sched.due_at(sched.warm_count);
    let achieved = measured as f64 / (sent_at - first).as_secs_f64().max(1e-9);
    phase
        .extra
        .insert("achieved_per_s".into(), json!(achieved.round()));
    phase
}

/// One measured call's outcome: a deadline refusal counts over the 2 s budget.
fn record_call(counts: &RtCounts, r: Result<(), HubError>, latency: Duration, bytes: u64) {
    let mut rec = counts.rec.borrow_mut();
    match r {
        // A call's answer is handed over as acked: nothing to ack.
        Ok(()) => {
            rec.ok(latency, bytes);
            if std::env::var_os("GONETS_BENCH_TRACE").is_some()
                && latency > Duration::from_millis(10)
            {
                eprintln!("slow: latency {:.1} ms", latency.as_secs_f64() * 1e3);
            }
        }
        Err(e) => rec.error(&error_name(&e)),
    }
}

async fn run_bulk(
    consumer: Session,
    provider: Session,
    b: BulkParams,
) -> Result<(Phase, Recorder), String> {
    let stop = Rc::new(Cell::new(false));
    let handled = Rc::new(Cell::new(0u64));
    spawn_providers(
        &provider,
        QueueId::Requests(DataKindId::new(BULK_KIND)),
        b.providers,
        None,
        stop.clone(),
        handled.clone(),
    );
    let rec = Rc::new(RefCell::new(Recorder::new()));
    let cpu_start = process::cpu_s(std::process::id());
    let start = Instant::now();
    let tasks = spawn_senders(&consumer, &b, &rec);
    let mut last_report = Instant::now();
    for t in tasks {
        t.await;
        if last_report.elapsed() > Duration::from_secs(2) {
            eprintln!(
                "bulk: accepted {} of {}",
                rec.borrow().ok_count(),
                b.messages
            );
            last_report = Instant::now();
        }
    }
    let accept_time = start.elapsed();
    let accepted = rec.borrow().ok_count();
    // Bounded: the drain ends when every accepted request is acked, or at the timeout.
    while handled.get() < accepted && start.elapsed() < accept_time + b.drain_timeout {
        glommio::timer::sleep(Duration::from_millis(5)).await;
    }
    let drain_time = start.elapsed();
    stop.set(true);
    glommio::timer::sleep(Duration::from_millis(100)).await;
    let rec = rec.borrow().clone();
    let mut phase = Phase::new("bulk", accept_time, b.messages, &rec);
    phase.hub = own_cost(cpu_start, accepted);
    bulk_extra(&mut phase, accepted, handled.get(), drain_time);
    Ok((phase, rec))
}

/// `senders × window` lanes, each sending the next request number until
/// all `messages` are taken; acceptances and refusals go to `rec`.
fn spawn_senders(
    consumer: &Session,
    b: &BulkParams,
    rec: &Rc<RefCell<Recorder>>,
) -> Vec<glommio::Task<()>> {
    // Checked before the hub started (`run`).
    let payloads: Rc<[Bytes]> = b
        .format
        .payloads(b.message_bytes)
        .unwrap_or_else(|e| panic!("bulk payloads: {e}"))
        .into();
    let next = Rc::new(Cell::new(0u64));
    let mut tasks = Vec::with_capacity(b.senders * b.window);
    for _ in 0..b.senders * b.window {
        let (consumer, payloads, next, rec) = (
            consumer.clone(),
            payloads.clone(),
            next.clone(),
            rec.clone(),
        );
        let count = b.messages;
        tasks.push(glommio::spawn_local(async move {
            // Bounded: each turn takes one of the `count` request numbers.
            loop {
                let i = next.get();
                if i >= count {
                    return;
                }
                next.set(i + 1);
                let payload = payloads[(i % payloads.len() as u64) as usize].clone();
                let r = consumer
                    .send_request(NewRequest::new(BULK_KIND, payload.clone()))
                    .await;
                match r {
                    Ok(_) => rec.borrow_mut().ok_unmeasured(payload.len() as u64),
                    Err(e) => rec.borrow_mut().error(&error_name(&e)),
                }
            }
        }));
    }
    tasks
}

/// The drain and the resident memory at the end, split: anonymous (heap)
/// and file-backed (segment pages mapped for reads), so the peak reads right.
fn bulk_extra(phase: &mut Phase, accepted: u64, acked: u64, drain: Duration) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = |field: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    let drain_s = drain.as_secs_f64();
    let extra = &mut phase.extra;
    extra.insert("accepted".into(), json!(accepted));
    extra.insert("drained".into(), json!(acked));
    extra.insert("drain_s".into(), json!((drain_s * 1000.0).round() / 1000.0));
    extra.insert(
        "drained_per_s".into(),
        json!((acked as f64 / drain_s.max(1e-9)).round()),
    );
    extra.insert("rss_anon_bytes_end".into(), json!(kib("RssAnon:") * 1024));
    extra.insert("rss_file_bytes_end".into(), json!(kib("RssFile:") * 1024));
    if acked < accepted {
        phase.invalidate(format!(
            "the drain did not finish: {acked} of {accepted} accepted requests acked"
        ));
    }
}
