//! hub-workloads: the `rt` and `bulk` workloads of DESIGN.md §4, run in
//! process through the embedding API (`gonets_engine::Hub`, `Session`) with
//! real storage.
//!
//! `rt`: consumers `call` a realtime data kind with 1 KiB requests at an
//! open-loop total rate; providers long-poll, answer with 2 KiB and ack.
//! Latency runs from each request's *scheduled* send time to the caller
//! holding the durable answer (no coordinated omission); the count over the
//! 2 s budget and every error are reported.
//!
//! `bulk`: senders pipeline 4 KiB `send_request`s (each keeps a window in
//! flight); providers fetch in batches and ack. Reports accepted msg/s and
//! MB/s, the time until every request was acked (drain), and the process's
//! peak resident memory.
//!
//! The load generator runs on its own glommio executor, pinned with
//! `--loadgen-core`; the hub's shards are pinned with `--shard-cores`.

use bytes::Bytes;
use glommio::{LocalExecutorBuilder, Placement};
use gonets_bench::{histogram, mb_per_s, record, summary, write_json, Args, WorkDir};
use gonets_engine::{Hub, HubConfig, Registry, Session};
use gonets_types::NewRequest;
use gonets_types::{HubError, QueueId};
use hdrhistogram::Histogram;
use serde_json::{json, Value};
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

const USAGE: &str = "usage: hub-workloads rt|bulk [flags]
  common:
  --shards N          shards of the hub (default 1)
  --shard-cores L     pin shard i to core L[i], e.g. 1 or 0,1 (default: unpinned)
  --loadgen-core C    pin the load generator (default: unpinned)
  --durability D      fdatasync|none (default fdatasync)
  --dir DIR           where the data directory goes (default: temp dir)
  --json FILE         also write the results as JSON
  --snapshot-every N  records between state snapshots (default: the hub's)
  rt:
  --rate R            requests/s offered in total (default 10000)
  --seconds S         measured seconds (default 10)
  --warmup S          seconds before measuring (default 2)
  --consumers C       consumer sessions (default 4)
  --providers P       provider long-poll loops (default 4)
  bulk:
  --count N           requests (default 200000)
  --senders S         sender tasks (default 8)
  --window W          requests each sender keeps in flight (default 64)
  --providers P       provider fetch loops (default 2)";

const RT_KIND: &str = "urn:gonets:bench:rt:1";
const BULK_KIND: &str = "urn:gonets:bench:bulk:1";

/// The bench's own registry, so the figures do not depend on the demo one.
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
consumers = ["BENCH-CONSUMER"]
"#;

fn main() {
    if let Err(e) = run() {
        eprintln!("hub-workloads: {e}");
        std::process::exit(2);
    }
}

fn run() -> Result<(), String> {
    let mut argv: Vec<String> = std::env::args().skip(1).collect();
    if argv.is_empty() || argv[0] == "-h" || argv[0] == "--help" {
        println!("{USAGE}");
        return Ok(());
    }
    let workload = argv.remove(0);
    let spec = [
        ("shards", true),
        ("shard-cores", true),
        ("loadgen-core", true),
        ("durability", true),
        ("dir", true),
        ("json", true),
        ("snapshot-every", true),
        ("rate", true),
        ("seconds", true),
        ("warmup", true),
        ("consumers", true),
        ("providers", true),
        ("count", true),
        ("senders", true),
        ("window", true),
    ];
    let args = Args::parse_from(argv, &spec).map_err(|e| format!("{e}\n{USAGE}"))?;
    let shards: u16 = args.positive("shards", 1)?;
    let shard_cores: Option<Vec<usize>> = match args.text("shard-cores") {
        None => None,
        Some(_) => Some(args.list("shard-cores", vec![])?),
    };
    let loadgen_core: Option<usize> = match args.text("loadgen-core") {
        None => None,
        Some(_) => Some(args.value("loadgen-core", 0)?),
    };
    let work = WorkDir::new(args.text("dir"), "gonets-hub-workloads")?;
    let mut config = HubConfig::new(work.sub("data"));
    config.shards = shards;
    config.pin_cores = shard_cores.clone();
    config.registry =
        Arc::new(Registry::from_toml(REGISTRY).map_err(|e| format!("bench registry: {e}"))?);
    config.log.durability = args.durability()?;
    if args.text("snapshot-every").is_some() {
        config.snapshot_every_records = args.positive("snapshot-every", 1)?;
    }
    let durability = args.text("durability").unwrap_or("fdatasync").to_string();
    let hub = Hub::start(config).map_err(|e| format!("cannot start the hub: {e}"))?;
    let consumer = hub.session("BENCH-CONSUMER").map_err(|e| e.to_string())?;
    let provider = hub.session("BENCH-PROVIDER").map_err(|e| e.to_string())?;

    let placement = match loadgen_core {
        Some(c) => Placement::Fixed(c),
        None => Placement::Unbound,
    };
    // As in the hub's shards: look at I/O and timers at least every ms.
    let builder = LocalExecutorBuilder::new(placement)
        .name("loadgen")
        .preempt_timer(Duration::from_millis(1));
    let mut result = match workload.as_str() {
        "rt" => {
            let rate: f64 = args.positive("rate", 10_000.0)?;
            let seconds: f64 = args.positive("seconds", 10.0)?;
            let warmup: f64 = args.value("warmup", 2.0)?;
            let consumers: usize = args.positive("consumers", 4)?;
            let providers: usize = args.positive("providers", 4)?;
            let handle = builder
                .spawn(move || {
                    rt(
                        consumer, provider, rate, seconds, warmup, consumers, providers,
                    )
                })
                .map_err(|e| format!("cannot start the load generator: {e}"))?;
            handle
                .join()
                .map_err(|e| format!("load generator: {e:?}"))??
        }
        "bulk" => {
            let count: u64 = args.positive("count", 200_000)?;
            let senders: usize = args.positive("senders", 8)?;
            let window: usize = args.positive("window", 64)?;
            let providers: usize = args.positive("providers", 2)?;
            let handle = builder
                .spawn(move || bulk(consumer, provider, count, senders, window, providers))
                .map_err(|e| format!("cannot start the load generator: {e}"))?;
            handle
                .join()
                .map_err(|e| format!("load generator: {e:?}"))??
        }
        other => return Err(format!("unknown workload `{other}`\n{USAGE}")),
    };
    hub.shutdown().map_err(|e| format!("shutdown: {e}"))?;
    result["workload"] = json!(workload);
    result["shards"] = json!(shards);
    result["shard_cores"] = json!(shard_cores);
    result["loadgen_core"] = json!(loadgen_core);
    result["durability"] = json!(durability);
    result["machine"] = machine();
    result["command"] = json!(std::env::args().collect::<Vec<_>>().join(" "));
    write_json(args.text("json"), &result)?;
    // A reader that closed the pipe early (`| head`) is not an error of the run.
    use std::io::Write;
    let _ = writeln!(
        std::io::stdout(),
        "{}",
        serde_json::to_string(&result).expect("JSON values serialize")
    );
    Ok(())
}

/// Cores and CPU model, so every figure carries the machine it came from.
fn machine() -> Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|r| r.trim_start_matches([' ', '\t', ':']))
        })
        .unwrap_or("unknown")
        .to_string();
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    json!({ "cores": cores, "cpu": model })
}

/// A `/proc/self/status` field in KiB (0 if absent).
fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Peak resident set size of this process, KiB (VmHWM).
fn peak_rss_kib() -> u64 {
    status_kib("VmHWM:")
}

fn error_name(e: &HubError) -> String {
    let text = format!("{e:?}");
    text.split(['(', ' ', '{'])
        .next()
        .unwrap_or("error")
        .to_string()
}

/// Providers: long-poll, answer each request with 2 KiB, ack; until `stop`.
fn spawn_providers(
    provider: &Session,
    queue: QueueId,
    loops: usize,
    answer: Option<Bytes>,
    stop: Rc<Cell<bool>>,
    handled: Rc<Cell<u64>>,
) {
    for _ in 0..loops {
        let provider = provider.clone();
        let queue = queue.clone();
        let stop = stop.clone();
        let handled = handled.clone();
        let answer = answer.clone();
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
                    let provider = provider.clone();
                    let handled = handled.clone();
                    let answer = answer.clone();
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

async fn rt(
    consumer: Session,
    provider: Session,
    rate: f64,
    seconds: f64,
    warmup: f64,
    consumers: usize,
    providers: usize,
) -> Result<Value, String> {
    let stop = Rc::new(Cell::new(false));
    let handled = Rc::new(Cell::new(0u64));
    spawn_providers(
        &provider,
        QueueId::Requests(gonets_types::DataKindId::new(RT_KIND)),
        providers,
        Some(Bytes::from(vec![b'a'; 2048])),
        stop.clone(),
        handled.clone(),
    );
    let sessions: Vec<Session> = (0..consumers).map(|_| consumer.clone()).collect();
    let payload = Bytes::from(vec![b'q'; 1024]);
    let hist = Rc::new(RefCell::new(histogram()));
    let errors: Rc<RefCell<BTreeMap<String, u64>>> = Rc::default();
    let over_budget = Rc::new(Cell::new(0u64));
    let answered = Rc::new(Cell::new(0u64));
    let in_flight = Rc::new(Cell::new(0u64));
    let interval = Duration::from_secs_f64(1.0 / rate);
    let total = ((warmup + seconds) * rate) as u64;
    let warm_count = (warmup * rate) as u64;
    let start = Instant::now() + Duration::from_millis(50);
    let mut max_lag = Duration::ZERO;
    for i in 0..total {
        let scheduled = start + interval.mul_f64(i as f64);
        let now = Instant::now();
        if scheduled > now {
            glommio::timer::sleep(scheduled - now).await;
        } else {
            max_lag = max_lag.max(now - scheduled);
        }
        let session = sessions[i as usize % sessions.len()].clone();
        let req = NewRequest::new(RT_KIND, payload.clone());
        let hist = hist.clone();
        let errors = errors.clone();
        let over_budget = over_budget.clone();
        let answered = answered.clone();
        let in_flight = in_flight.clone();
        let measured = i >= warm_count;
        in_flight.set(in_flight.get() + 1);
        glommio::spawn_local(async move {
            let r = session.call(req).await;
            let latency = scheduled.elapsed();
            in_flight.set(in_flight.get() - 1);
            if !measured {
                return;
            }
            match r {
                // A call's answer is handed over as acked: nothing to ack.
                Ok(_answer) => {
                    answered.set(answered.get() + 1);
                    record(&mut hist.borrow_mut(), latency);
                    if std::env::var_os("GONETS_BENCH_TRACE").is_some()
                        && latency > Duration::from_millis(10)
                    {
                        eprintln!(
                            "slow: scheduled +{:.3} s, latency {:.1} ms",
                            (scheduled - start).as_secs_f64(),
                            latency.as_secs_f64() * 1e3
                        );
                    }
                    if latency > Duration::from_secs(2) {
                        over_budget.set(over_budget.get() + 1);
                    }
                }
                Err(e) => {
                    *errors.borrow_mut().entry(error_name(&e)).or_default() += 1;
                    if matches!(e, HubError::DeadlineExceeded) {
                        over_budget.set(over_budget.get() + 1);
                    }
                }
            }
        })
        .detach();
    }
    let sent_at = Instant::now();
    // Bounded: every call ends by its 2 s budget.
    while in_flight.get() > 0 && sent_at.elapsed() < Duration::from_secs(10) {
        glommio::timer::sleep(Duration::from_millis(10)).await;
    }
    // Calls with no reply at all after 10 s: a hang, reported, never hidden.
    let unfinished = in_flight.get();
    stop.set(true);
    glommio::timer::sleep(Duration::from_millis(100)).await;
    let hist: Histogram<u64> = hist.borrow().clone();
    let measured = total - warm_count;
    let achieved =
        measured as f64 / (sent_at - (start + interval.mul_f64(warm_count as f64))).as_secs_f64();
    let errors = errors.borrow().clone();
    let p9999 = hist.value_at_quantile(0.9999) as f64 / 1000.0;
    let mut lat = summary(&hist);
    lat["p9999_us"] = json!((p9999 * 10.0).round() / 10.0);
    println!(
        "rt: offered {rate:.0}/s for {seconds} s (achieved {achieved:.0}/s), answered {}, no reply after 10 s {unfinished}, over 2 s {}, errors {:?}, generator lag max {:.1} ms",
        answered.get(),
        over_budget.get(),
        errors,
        max_lag.as_secs_f64() * 1000.0
    );
    println!(
        "rt: end-to-end µs p50 {} p99 {} p99.9 {} p99.99 {} max {}",
        lat["p50_us"], lat["p99_us"], lat["p999_us"], lat["p9999_us"], lat["max_us"]
    );
    Ok(json!({
        "offered_per_s": rate,
        "achieved_per_s": achieved,
        "measured": measured,
        "answered": answered.get(),
        "unfinished": unfinished,
        "over_budget": over_budget.get(),
        "errors": errors,
        "generator_lag_max_ms": max_lag.as_secs_f64() * 1000.0,
        "latency": lat,
        "peak_rss_kib": peak_rss_kib(),
    }))
}

async fn bulk(
    consumer: Session,
    provider: Session,
    count: u64,
    senders: usize,
    window: usize,
    providers: usize,
) -> Result<Value, String> {
    let stop = Rc::new(Cell::new(false));
    let handled = Rc::new(Cell::new(0u64));
    spawn_providers(
        &provider,
        QueueId::Requests(gonets_types::DataKindId::new(BULK_KIND)),
        providers,
        None,
        stop.clone(),
        handled.clone(),
    );
    let payload = Bytes::from(vec![b'b'; 4096]);
    let next = Rc::new(Cell::new(0u64));
    let accepted = Rc::new(Cell::new(0u64));
    let errors: Rc<RefCell<BTreeMap<String, u64>>> = Rc::default();
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..senders * window {
        let consumer = consumer.clone();
        let payload = payload.clone();
        let next = next.clone();
        let accepted = accepted.clone();
        let errors = errors.clone();
        // senders × window tasks, each sending one request at a time: the
        // same number in flight as `senders` pipelines of depth `window`.
        tasks.push(glommio::spawn_local(async move {
            loop {
                let i = next.get();
                if i >= count {
                    return;
                }
                next.set(i + 1);
                match consumer
                    .send_request(NewRequest::new(BULK_KIND, payload.clone()))
                    .await
                {
                    Ok(_) => accepted.set(accepted.get() + 1),
                    Err(e) => *errors.borrow_mut().entry(error_name(&e)).or_default() += 1,
                }
            }
        }));
    }
    let mut last_report = Instant::now();
    for t in tasks {
        t.await;
        if last_report.elapsed() > Duration::from_secs(2) {
            eprintln!("bulk: accepted {} of {count}", accepted.get());
            last_report = Instant::now();
        }
    }
    let accept_time = start.elapsed();
    // Bounded: the drain ends when every accepted request is acked, or after 120 s.
    while handled.get() < accepted.get() && start.elapsed() < Duration::from_secs(120) {
        glommio::timer::sleep(Duration::from_millis(5)).await;
    }
    let drain_time = start.elapsed();
    stop.set(true);
    glommio::timer::sleep(Duration::from_millis(100)).await;
    let n = accepted.get();
    let msgs = n as f64 / accept_time.as_secs_f64();
    let mb = mb_per_s(n * 4096, accept_time);
    // Resident memory now, split: anonymous (heap) and file-backed
    // (segment pages mapped for reads), so the peak can be read right.
    let (anon_kib, file_kib) = (status_kib("RssAnon:"), status_kib("RssFile:"));
    println!(
        "bulk: {n} of {count} accepted in {:.2} s: {msgs:.0} msg/s, {mb:.1} MB/s of payload; drained (acked {}) in {:.2} s; errors {:?}; peak RSS {} MiB (at the end: heap {} MiB, mapped files {} MiB)",
        accept_time.as_secs_f64(),
        handled.get(),
        drain_time.as_secs_f64(),
        errors.borrow(),
        peak_rss_kib() / 1024,
        anon_kib / 1024,
        file_kib / 1024
    );
    Ok(json!({
        "count": count,
        "accepted": n,
        "acked": handled.get(),
        "accept_seconds": accept_time.as_secs_f64(),
        "accepted_msg_per_s": msgs,
        "accepted_mb_per_s": mb,
        "drain_seconds": drain_time.as_secs_f64(),
        "rss_anon_kib_end": anon_kib,
        "rss_file_kib_end": file_kib,
        "errors": *errors.borrow(),
        "peak_rss_kib": peak_rss_kib(),
    }))
}
