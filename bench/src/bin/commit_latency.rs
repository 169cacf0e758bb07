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

use clap::Parser;
use glommio::LocalExecutor;
use gonets_bench::{
    durability_name, histogram, mb_per_s, positive_at_most, record, run_producers, summary,
    summary_line, write_json, DurabilityFlag, LogFlags, WorkDir,
};
use gonets_storage::{Durability, Log, LogConfig, LogError};
use hdrhistogram::Histogram;
use serde_json::{json, Value};
use std::cell::{Cell, RefCell};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Open-loop commit latency of the log at fixed offered loads, and (with
/// `--max`, `--paced R`) flat-out and paced closed-loop runs.
#[derive(Parser, Debug)]
#[command(name = "commit-latency", version, args_override_self = true)]
struct Flags {
    /// Offered loads, records/s, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1000,10000,50000",
          value_parser = positive_at_most(10_000_000.0))]
    rates: Vec<f64>,
    /// Measured seconds per load.
    #[arg(long, default_value_t = 5.0, value_parser = positive_at_most(600.0))]
    seconds: f64,
    /// Seconds run before measuring, per load (0..=600).
    #[arg(long, default_value_t = 1.0, value_parser = warmup_seconds)]
    warmup: f64,
    /// Payload bytes per record.
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u64).range(1..))]
    size: u64,
    /// What a commit waits for.
    #[arg(long, value_enum, default_value = "dsync")]
    durability: DurabilityFlag,
    /// Generator lateness that marks a load invalid, ms.
    #[arg(long, default_value_t = 5.0, value_parser = positive_at_most(60_000.0))]
    max_lag_ms: f64,
    /// Also run one producer at R commits/s, closed loop: no timer is armed
    /// while a commit is in flight, as in the raw 4 KiB write+fdatasync loop.
    #[arg(long, value_parser = positive_at_most(100_000.0))]
    paced: Option<f64>,
    /// Also run flat out: --producers tasks, each appending --per-commit
    /// records then awaiting the commit of its last (32 x 256 = 8192
    /// records in flight, enough to fill every batch buffer).
    #[arg(long)]
    max: bool,
    /// --max: producer tasks.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    producers: u64,
    /// --max: records each producer appends per awaited commit.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    per_commit: u64,
    #[command(flatten)]
    log: LogFlags,
    /// Where the logs go (default: the system temp dir).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Also write the results as a JSON object to FILE.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// `--warmup`: seconds in 0..=600 (zero allowed).
fn warmup_seconds(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a number"))?;
    if !(0.0..=600.0).contains(&v) {
        return Err(format!("`{s}` must lie in 0..=600"));
    }
    Ok(v)
}

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
    let tally = Tally::default();
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
        let offset = append_or_wait(&log, &payload, &mut busy).await?;
        tally.commit_later(&log, offset, sched, issued, i >= warm_n);
        i += 1;
        since_yield += 1;
        // When catching up, let the commit tasks register and the flusher run.
        if since_yield >= 32 {
            glommio::executor().yield_now().await;
            since_yield = 0;
        }
    }
    tally.wait_all(&log, total).await?;
    let measured = total - warm_n;
    let first = sched_of(warm_n);
    let window = tally.last_done.get().map_or(Duration::ZERO, |t| t - first);
    let h = tally.hist.borrow().clone();
    let svc = tally.service.borrow().clone();
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

/// Appends one record now if a batch buffer is free, else waits for one
/// (counted in `busy`).
async fn append_or_wait(log: &Log, payload: &[u8], busy: &mut u64) -> Result<u64, String> {
    // Busy means every batch buffer is taken: the log pushes back, and
    // the wait is charged to the records' latency from their schedule.
    match log.try_append(payload, gonets_bench::now_ns(), 0) {
        Ok(o) => Ok(o),
        Err(LogError::Busy) => {
            *busy += 1;
            log.append(payload, gonets_bench::now_ns(), 0)
                .await
                .map_err(|e| format!("append: {e}"))
        }
        Err(e) => Err(format!("append: {e}")),
    }
}

/// What the commit tasks of an open-loop run report into.
#[derive(Clone)]
struct Tally {
    /// From the schedule to the commit.
    hist: Rc<RefCell<Histogram<u64>>>,
    /// From the append call to the commit.
    service: Rc<RefCell<Histogram<u64>>>,
    /// Commit tasks ended.
    done: Rc<Cell<u64>>,
    /// When the last measured commit resolved.
    last_done: Rc<Cell<Option<Instant>>>,
    failed: Rc<RefCell<Option<String>>>,
}

impl Default for Tally {
    fn default() -> Self {
        Tally {
            hist: Rc::new(RefCell::new(histogram())),
            service: Rc::new(RefCell::new(histogram())),
            done: Rc::new(Cell::new(0)),
            last_done: Rc::new(Cell::new(None)),
            failed: Rc::new(RefCell::new(None)),
        }
    }
}

impl Tally {
    /// Awaits the commit of `offset` in a task of its own; a `measured`
    /// record's times are recorded from `sched` and from `issued`.
    fn commit_later(
        &self,
        log: &Log,
        offset: u64,
        sched: Instant,
        issued: Instant,
        measured: bool,
    ) {
        let (log, tally) = (log.clone(), self.clone());
        glommio::spawn_local(async move {
            let r = log.commit(offset).await;
            let t = Instant::now();
            match r {
                Ok(()) if measured => {
                    record(&mut tally.hist.borrow_mut(), t - sched);
                    record(&mut tally.service.borrow_mut(), t - issued);
                    tally.last_done.set(Some(t));
                }
                Ok(()) => {}
                Err(e) => *tally.failed.borrow_mut() = Some(format!("commit: {e}")),
            }
            tally.done.set(tally.done.get() + 1);
        })
        .detach();
    }

    /// Commits everything, waits for all `total` commit tasks, closes the
    /// log; the first commit failure, if any.
    async fn wait_all(&self, log: &Log, total: u64) -> Result<(), String> {
        log.commit_all().await.map_err(|e| format!("commit: {e}"))?;
        // Bounded: every commit task ends once the commit_all above resolved.
        while self.done.get() < total && self.failed.borrow().is_none() {
            glommio::timer::sleep(Duration::from_micros(100)).await;
        }
        log.close().await.map_err(|e| format!("close: {e}"))?;
        if let Some(e) = self.failed.borrow_mut().take() {
            return Err(e);
        }
        Ok(())
    }
}

fn run() -> Result<(), String> {
    let f = Flags::parse();
    let durability: Durability = f.durability.into();
    let size = f.size as usize;
    let config = LogConfig {
        durability,
        ..f.log.log_config()?
    };
    if size > config.payload_bytes_max() {
        return Err(format!(
            "`--size` {size} exceeds the largest payload, {}",
            config.payload_bytes_max()
        ));
    }
    // Every log stays until the end (the work directory's drop): deleting
    // hundreds of MiB slows fdatasync for seconds on a disk mounted with
    // `discard`, which would leak into the next load's figures.
    let work = WorkDir::new(f.dir.as_deref(), "gonets-commit-latency")?;
    let ex = gonets_bench::executor("commit-latency")?;
    let d = durability_name(durability);
    println!(
        "open-loop commit latency, {size} B records, durability {d}, log in {}",
        work.path.display()
    );
    let runs = open_loops(&f, &work, &ex, &config)?;
    let paced = match f.paced {
        Some(rate) => paced(&f, rate, &work, &ex, &config)?,
        None => Value::Null,
    };
    let max = if f.max {
        flat_out(&f, &work, &ex, &config)?
    } else {
        Value::Null
    };
    let value = json!({
        "tool": "commit-latency",
        "size_bytes": size,
        "durability": d,
        "segment_mib": config.segment_size_bytes >> 20,
        "prewrite_ahead_mib": config.prewrite_ahead_bytes >> 20,
        "prewrite_chunk_kib": config.prewrite_chunk_bytes >> 10,
        "seconds": f.seconds,
        "warmup_seconds": f.warmup,
        "max_lag_ms": f.max_lag_ms,
        "open_loop": runs,
        "paced": paced,
        "max": max,
    });
    write_json(f.json.as_deref(), &value)
}

/// Every offered load of `--rates`, one log each; the table and the JSON.
fn open_loops(
    f: &Flags,
    work: &WorkDir,
    ex: &LocalExecutor,
    config: &LogConfig,
) -> Result<Vec<Value>, String> {
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
    for (n, &rate) in f.rates.iter().enumerate() {
        let path = work.sub(&format!("rate-{n}"));
        let r = ex.run(open_loop(
            &path,
            config.clone(),
            rate,
            f.seconds,
            f.warmup,
            f.size as usize,
        ))?;
        let lag_ms = r.max_lag.as_secs_f64() * 1e3;
        let valid = lag_ms <= f.max_lag_ms;
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
    Ok(runs)
}

/// One producer at `rate` commits/s, closed loop.
fn paced(
    f: &Flags,
    rate: f64,
    work: &WorkDir,
    ex: &LocalExecutor,
    config: &LogConfig,
) -> Result<Value, String> {
    let path = work.sub("paced");
    let count = ((rate * f.seconds) as u64).max(1);
    let warm = (rate * f.warmup) as u64;
    let size = f.size as usize;
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
    Ok(json!({ "rate_per_s": rate, "commits": count, "service": summary(&h) }))
}

/// `--producers` closed-loop producers flat out: the log's sustained
/// append+commit throughput.
fn flat_out(
    f: &Flags,
    work: &WorkDir,
    ex: &LocalExecutor,
    config: &LogConfig,
) -> Result<Value, String> {
    let path = work.sub("max");
    let (producers, per_commit, size) = (f.producers as usize, f.per_commit as usize, f.size);
    let (records, hist) = ex.run(async {
        let (log, _) = Log::open(&path, config.clone())
            .await
            .map_err(|e| format!("open log: {e}"))?;
        let begin = Instant::now();
        let from = begin + Duration::from_secs_f64(f.warmup);
        let until = from + Duration::from_secs_f64(f.seconds);
        let payload = Rc::new(vec![0xab_u8; size as usize]);
        let r = run_producers(&log, producers, per_commit, payload, from, until).await;
        let r = r.map_err(|e| format!("producers: {e}"))?;
        log.close().await.map_err(|e| format!("close: {e}"))?;
        Ok::<_, String>(r)
    })?;
    let window = Duration::from_secs_f64(f.seconds);
    let per_s = records as f64 / f.seconds;
    let mbs = mb_per_s(records * size, window);
    println!(
        "flat out: {producers} producers x {per_commit} records per commit: \
         {per_s:.0} records/s, {mbs:.1} MB/s of payload; \
         group append..commit µs p50 p99 p99.9 max: {}",
        summary_line(&hist)
    );
    Ok(json!({
        "producers": producers,
        "per_commit": per_commit,
        "records": records,
        "records_per_s": per_s.round(),
        "payload_mb_s": (mbs * 10.0).round() / 10.0,
        "group_latency": summary(&hist),
    }))
}

fn main() {
    if let Err(e) = run() {
        eprintln!("commit-latency: {e}");
        std::process::exit(2);
    }
}
