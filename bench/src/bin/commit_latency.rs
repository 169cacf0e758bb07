//! commit-latency: open-loop commit latency of the log at fixed offered loads.
//!
//! A scheduler task appends record i at `start + i / rate` and never waits for
//! earlier commits; each record's commit is awaited in its own task. Latency
//! runs from the *scheduled* time to the commit resolving, so a stall of the
//! log or of the generator is charged to every record it delays (no
//! coordinated omission). A run whose generator issued any record more than
//! `--max-lag-ms` late is marked invalid: its offered load was not the one
//! asked for.
//!
//! `--max` adds a flat-out closed-loop run (many producers, each awaiting its
//! own commit): the log's sustained append+commit throughput.
//!
//! `--paced R` adds a paced closed-loop run: one producer appends, awaits the
//! commit, then sleeps until its next slot (R per second). No timer is armed
//! while a commit is in flight, so it shows the log's own commit time at low
//! load, the way the raw 4 KiB write+fdatasync figure is taken.

use gonets_bench::{
    durability_name, histogram, mb_per_s, record, run_producers, summary, summary_line, write_json,
    Args, WorkDir,
};
use gonets_storage::{Log, LogConfig, LogError};
use hdrhistogram::Histogram;
use serde_json::{json, Value};
use std::cell::{Cell, RefCell};
use std::path::Path;
use std::rc::Rc;
use std::time::{Duration, Instant};

const USAGE: &str =
    "usage: commit-latency [--rates R,R,..] [--seconds S] [--warmup S] [--size BYTES]
                      [--durability fdatasync|none] [--max-lag-ms MS] [--max]
                      [--producers N] [--per-commit K] [--segment-mib M]
                      [--prewrite-ahead-mib M] [--prewrite-chunk-kib K] [--batch-kib K]
                      [--dir DIR] [--json FILE]
  --rates        offered loads in records/s (default 1000,10000,50000)
  --seconds      measured seconds per load (default 5)
  --warmup       seconds run before measuring, per load (default 1)
  --size         payload bytes per record (default 1024)
  --durability   what a commit waits for (default fdatasync)
  --max-lag-ms   generator lateness that marks a run invalid (default 5)
  --paced R      also run one producer at R commits/s, closed loop (see above)
  --max          also run flat out: N producers, each appending K records then
                 awaiting the commit of its last (default N=32, K=256:
                 8192 records in flight, enough to fill every batch buffer)
  --segment-mib  segment size of the log, MiB (default 64, the production size)
  --prewrite-ahead-mib  zero writes this far ahead of the log's write position
                 (default: the LogConfig default, 32; 0: none)
  --prewrite-chunk-kib  size of one zero write (default: the LogConfig default, 1024)
  --batch-kib    largest batch (default: the LogConfig default, 1024)
  --dir          where the logs go (default: the system temp dir)
  --json         also write the results as a JSON object to FILE";

struct OpenLoop {
    rate: f64,
    measured: u64,
    achieved: f64,
    hist: Histogram<u64>,
    /// From the append call to the commit: the log's own time, without the
    /// generator's lateness (comparable with the closed-loop raw figures).
    service: Histogram<u64>,
    max_lag: Duration,
    busy: u64,
}

async fn open_loop(
    path: &Path,
    config: LogConfig,
    rate: f64,
    seconds: f64,
    warmup: f64,
    size: usize,
) -> Result<OpenLoop, String> {
    let (log, _) = Log::open(path, config)
        .await
        .map_err(|e| format!("open log: {e}"))?;
    let payload = vec![0xab_u8; size];
    let interval_ns = 1e9 / rate;
    let warm_n = (rate * warmup) as u64;
    let total = warm_n + ((rate * seconds) as u64).max(1);
    let hist = Rc::new(RefCell::new(histogram()));
    let service = Rc::new(RefCell::new(histogram()));
    let done = Rc::new(Cell::new(0u64));
    let last_done = Rc::new(Cell::new(None::<Instant>));
    let failed = Rc::new(RefCell::new(None::<String>));
    let start = Instant::now() + Duration::from_millis(5);
    let sched_of = |i: u64| start + Duration::from_nanos((i as f64 * interval_ns) as u64);
    let (mut max_lag, mut busy, mut since_yield) = (Duration::ZERO, 0u64, 0u32);
    let mut i = 0u64;
    while i < total {
        let sched = sched_of(i);
        let now = Instant::now();
        if now < sched {
            glommio::timer::sleep(sched - now).await;
            since_yield = 0;
            continue;
        }
        if i >= warm_n {
            max_lag = max_lag.max(now - sched);
        }
        let issued = Instant::now();
        // Busy means every batch buffer is taken: the log pushes back, and
        // the wait is charged to the records' latency from their schedule.
        let offset = match log.try_append(&payload, gonets_bench::now_ns(), 0) {
            Ok(o) => o,
            Err(LogError::Busy) => {
                busy += 1;
                log.append(&payload, gonets_bench::now_ns(), 0)
                    .await
                    .map_err(|e| format!("append: {e}"))?
            }
            Err(e) => return Err(format!("append: {e}")),
        };
        let (log2, hist, service, done, last_done, failed) = (
            log.clone(),
            hist.clone(),
            service.clone(),
            done.clone(),
            last_done.clone(),
            failed.clone(),
        );
        let measured = i >= warm_n;
        glommio::spawn_local(async move {
            let r = log2.commit(offset).await;
            let t = Instant::now();
            match r {
                Ok(()) if measured => {
                    record(&mut hist.borrow_mut(), t - sched);
                    record(&mut service.borrow_mut(), t - issued);
                    last_done.set(Some(t));
                }
                Ok(()) => {}
                Err(e) => *failed.borrow_mut() = Some(format!("commit: {e}")),
            }
            done.set(done.get() + 1);
        })
        .detach();
        i += 1;
        since_yield += 1;
        // When catching up, let the commit tasks register and the flusher run.
        if since_yield >= 32 {
            glommio::executor().yield_now().await;
            since_yield = 0;
        }
    }
    log.commit_all().await.map_err(|e| format!("commit: {e}"))?;
    // Bounded: every commit task ends once the commit_all above resolved.
    while done.get() < total && failed.borrow().is_none() {
        glommio::timer::sleep(Duration::from_micros(100)).await;
    }
    log.close().await.map_err(|e| format!("close: {e}"))?;
    if let Some(e) = failed.borrow_mut().take() {
        return Err(e);
    }
    let measured = total - warm_n;
    let first = sched_of(warm_n);
    let window = last_done.get().map_or(Duration::ZERO, |t| t - first);
    let h = hist.borrow().clone();
    let svc = service.borrow().clone();
    Ok(OpenLoop {
        rate,
        measured,
        achieved: measured as f64 / window.as_secs_f64().max(1e-9),
        hist: h,
        service: svc,
        max_lag,
        busy,
    })
}

fn run() -> Result<(), String> {
    let spec = [
        ("rates", true),
        ("seconds", true),
        ("warmup", true),
        ("size", true),
        ("durability", true),
        ("max-lag-ms", true),
        ("max", false),
        ("paced", true),
        ("producers", true),
        ("per-commit", true),
        ("segment-mib", true),
        ("prewrite-ahead-mib", true),
        ("prewrite-chunk-kib", true),
        ("batch-kib", true),
        ("dir", true),
        ("json", true),
    ];
    let usage = |e: String| format!("{e}\n{USAGE}");
    let args = Args::parse(&spec).map_err(usage)?;
    let rates: Vec<f64> = args
        .list("rates", vec![1000.0, 10_000.0, 50_000.0])
        .map_err(usage)?;
    if rates.iter().any(|r| !(1.0..=10_000_000.0).contains(r)) {
        return Err(usage("`--rates` must lie in 1..=10000000 records/s".into()));
    }
    let seconds: f64 = args.bounded("seconds", 5.0, 600.0).map_err(usage)?;
    let warmup: f64 = args.value("warmup", 1.0).map_err(usage)?;
    if !(0.0..=600.0).contains(&warmup) || seconds > 600.0 {
        return Err(usage(
            "`--warmup` and `--seconds` must lie in 0..=600".into(),
        ));
    }
    let size: usize = args.positive("size", 1024).map_err(usage)?;
    let durability = args.durability().map_err(usage)?;
    let max_lag_ms: f64 = args.bounded("max-lag-ms", 5.0, 60_000.0).map_err(usage)?;
    let producers: usize = args.bounded("producers", 32, 100_000).map_err(usage)?;
    let per_commit: usize = args.bounded("per-commit", 256, 1_000_000).map_err(usage)?;
    let config = LogConfig {
        durability,
        ..gonets_bench::log_config(&args).map_err(usage)?
    };
    if size > config.payload_bytes_max() {
        return Err(usage(format!(
            "`--size` {size} exceeds the largest payload, {}",
            config.payload_bytes_max()
        )));
    }
    // Every log stays until the end (the work directory's drop): deleting
    // hundreds of MiB slows fdatasync for seconds on a disk mounted with
    // `discard`, which would leak into the next load's figures.
    let work = WorkDir::new(args.text("dir"), "gonets-commit-latency")?;
    let ex = gonets_bench::executor("commit-latency")?;

    let d = durability_name(durability);
    println!(
        "open-loop commit latency, {size} B records, durability {d}, log in {}",
        work.path.display()
    );
    println!(
        "{:>10} {:>10} | {:>9} {:>9} {:>9} {:>9} | {:>8} {:>6} | {:>9} {:>9} valid",
        "offered/s",
        "achieved/s",
        "p50 µs",
        "p99 µs",
        "p99.9 µs",
        "max µs",
        "lag ms",
        "busy",
        "svc p50",
        "svc p99"
    );
    println!("(latency from each record's scheduled time; svc: from its append call)");
    let mut runs = vec![];
    for (n, &rate) in rates.iter().enumerate() {
        let path = work.sub(&format!("rate-{n}"));
        let r = ex.run(open_loop(
            &path,
            config.clone(),
            rate,
            seconds,
            warmup,
            size,
        ))?;
        let lag_ms = r.max_lag.as_secs_f64() * 1e3;
        let valid = lag_ms <= max_lag_ms;
        println!(
            "{:>10.0} {:>10.0} | {} | {:>8.2} {:>6} | {:>9.1} {:>9.1} {}",
            r.rate,
            r.achieved,
            summary_line(&r.hist),
            lag_ms,
            r.busy,
            r.service.value_at_quantile(0.5) as f64 / 1e3,
            r.service.value_at_quantile(0.99) as f64 / 1e3,
            if valid {
                "yes"
            } else {
                "NO: generator fell behind"
            }
        );
        runs.push(json!({
            "offered_per_s": r.rate,
            "achieved_per_s": r.achieved.round(),
            "records": r.measured,
            "latency": summary(&r.hist),
            "service": summary(&r.service),
            "max_generator_lag_ms": (lag_ms * 1000.0).round() / 1000.0,
            "busy_appends": r.busy,
            "valid": valid,
        }));
    }

    let mut paced = Value::Null;
    if let Some(rate) = args.text("paced") {
        let rate: f64 = rate
            .parse()
            .ok()
            .filter(|r: &f64| *r > 0.0 && *r <= 100_000.0)
            .ok_or_else(|| usage("flag `--paced` must be a rate in (0, 100000]".into()))?;
        let path = work.sub("paced");
        let count = ((rate * seconds) as u64).max(1);
        let warm = (rate * warmup) as u64;
        let h = ex.run(async {
            let (log, _) = Log::open(&path, config.clone())
                .await
                .map_err(|e| format!("open log: {e}"))?;
            let payload = vec![0xab_u8; size];
            let mut h = histogram();
            let start = Instant::now();
            // Bounded: warm + count commits, each awaited.
            for i in 0..warm + count {
                let t = Instant::now();
                let o = log
                    .append(&payload, gonets_bench::now_ns(), 0)
                    .await
                    .map_err(|e| format!("append: {e}"))?;
                log.commit(o).await.map_err(|e| format!("commit: {e}"))?;
                if i >= warm {
                    record(&mut h, t.elapsed());
                }
                let next = start + Duration::from_secs_f64((i + 1) as f64 / rate);
                let now = Instant::now();
                if next > now {
                    glommio::timer::sleep(next - now).await;
                }
            }
            log.close().await.map_err(|e| format!("close: {e}"))?;
            Ok::<_, String>(h)
        })?;
        println!(
            "paced closed loop, {rate:.0}/s, one producer: append..commit µs p50 p99 p99.9 max: {}",
            summary_line(&h)
        );
        paced = json!({ "rate_per_s": rate, "commits": count, "service": summary(&h) });
    }

    let mut max = Value::Null;
    if args.flag("max") {
        let path = work.sub("max");
        let (records, hist) = ex.run(async {
            let (log, _) = Log::open(&path, config.clone())
                .await
                .map_err(|e| format!("open log: {e}"))?;
            let begin = Instant::now();
            let from = begin + Duration::from_secs_f64(warmup);
            let until = from + Duration::from_secs_f64(seconds);
            let payload = Rc::new(vec![0xab_u8; size]);
            let r = run_producers(&log, producers, per_commit, payload, from, until).await;
            let r = r.map_err(|e| format!("producers: {e}"))?;
            log.close().await.map_err(|e| format!("close: {e}"))?;
            Ok::<_, String>(r)
        })?;
        let window = Duration::from_secs_f64(seconds);
        let per_s = records as f64 / seconds;
        let mbs = mb_per_s(records * size as u64, window);
        println!(
            "flat out: {producers} producers x {per_commit} records per commit: \
             {per_s:.0} records/s, {mbs:.1} MB/s of payload; \
             group append..commit µs p50 p99 p99.9 max: {}",
            summary_line(&hist)
        );
        max = json!({
            "producers": producers,
            "per_commit": per_commit,
            "records": records,
            "records_per_s": per_s.round(),
            "payload_mb_s": (mbs * 10.0).round() / 10.0,
            "group_latency": summary(&hist),
        });
    }

    let value = json!({
        "tool": "commit-latency",
        "size_bytes": size,
        "durability": d,
        "segment_mib": config.segment_size_bytes >> 20,
        "prewrite_ahead_mib": config.prewrite_ahead_bytes >> 20,
        "prewrite_chunk_kib": config.prewrite_chunk_bytes >> 10,
        "seconds": seconds,
        "warmup_seconds": warmup,
        "max_lag_ms": max_lag_ms,
        "open_loop": runs,
        "paced": paced,
        "max": max,
    });
    write_json(args.text("json"), &value)
}

fn main() {
    if let Err(e) = run() {
        eprintln!("commit-latency: {e}");
        std::process::exit(2);
    }
}
