//! gonets storage benchmarks (see `bench/README.md`): the few helpers the
//! `commit-latency` and `recovery-bench` binaries and the criterion benches
//! share. Workloads, limits and reports live in the load generator
//! (`gonets-loadgen`); this crate measures the storage log alone.

use glommio::{LocalExecutor, LocalExecutorBuilder, Placement};
use gonets_storage::{Durability, Log, LogConfig, LogError};
use hdrhistogram::Histogram;
use serde_json::{json, Value};
use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The log settings both tools take (`--segment-mib` and friends), parsed
/// by clap: a bad value is refused with a sentence and exit status 2.
#[derive(clap::Args, Debug, Clone)]
pub struct LogFlags {
    /// Segment size of the log, MiB (default: the production size, 64):
    /// segment size changes how ext4 converts the preallocated extents,
    /// which shows in commit latency (see RESULTS.md).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=4095))]
    pub segment_mib: Option<u64>,
    /// Zero writes this far ahead of the log's write position, MiB
    /// (default: the LogConfig default, 32; 0: none).
    #[arg(long)]
    pub prewrite_ahead_mib: Option<u64>,
    /// Size of one zero write, KiB (default: the LogConfig default, 1024).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=8192))]
    pub prewrite_chunk_kib: Option<u64>,
    /// Largest batch, KiB (default: the LogConfig default, 1024).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=65536))]
    pub batch_kib: Option<u64>,
}

impl LogFlags {
    /// The production `LogConfig` with these flags applied.
    pub fn log_config(&self) -> Result<LogConfig, String> {
        let d = LogConfig::default();
        let config = LogConfig {
            segment_size_bytes: self.segment_mib.map_or(d.segment_size_bytes, |m| m << 20),
            prewrite_ahead_bytes: self
                .prewrite_ahead_mib
                .map_or(d.prewrite_ahead_bytes, |m| m << 20),
            prewrite_chunk_bytes: self
                .prewrite_chunk_kib
                .map_or(d.prewrite_chunk_bytes, |k| (k as usize) << 10),
            batch_bytes_max: self
                .batch_kib
                .map_or(d.batch_bytes_max, |k| (k as usize) << 10),
            ..d
        };
        config
            .validate()
            .map_err(|e| format!("flags `--segment-mib`/`--prewrite-*`/`--batch-kib`: {e}"))?;
        Ok(config)
    }

    /// The flags as given, to pass on to a child process.
    pub fn to_args(&self) -> Vec<String> {
        let mut out = vec![];
        let mut push = |name: &str, v: Option<u64>| {
            if let Some(v) = v {
                out.push(format!("--{name}={v}"));
            }
        };
        push("segment-mib", self.segment_mib);
        push("prewrite-ahead-mib", self.prewrite_ahead_mib);
        push("prewrite-chunk-kib", self.prewrite_chunk_kib);
        push("batch-kib", self.batch_kib);
        out
    }
}

/// `--durability`: what a commit waits for.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum DurabilityFlag {
    /// Every commit is fdatasync'd.
    Fdatasync,
    /// Each batch written O_DSYNC: durable when its write returns.
    Dsync,
    /// No fdatasync: survives a process crash only.
    None,
}

impl From<DurabilityFlag> for Durability {
    fn from(d: DurabilityFlag) -> Durability {
        match d {
            DurabilityFlag::Fdatasync => Durability::Fdatasync,
            DurabilityFlag::Dsync => Durability::Dsync,
            DurabilityFlag::None => Durability::None,
        }
    }
}

/// A clap value parser: a finite number above zero, at most `max`.
pub fn positive_at_most(max: f64) -> impl Fn(&str) -> Result<f64, String> + Clone {
    move |s: &str| {
        let v: f64 = s
            .trim()
            .parse()
            .map_err(|_| format!("`{s}` is not a number"))?;
        // Compared so that NaN (incomparable) is refused too.
        if !(v > 0.0 && v <= max) {
            return Err(format!("`{s}` must be above 0 and at most {max}"));
        }
        Ok(v)
    }
}

/// Name of a durability as the tools print it.
pub fn durability_name(d: Durability) -> &'static str {
    match d {
        Durability::Fdatasync => "fdatasync",
        Durability::Dsync => "dsync",
        Durability::None => "none",
    }
}

/// Starts a glommio executor on this thread, with a hint when io_uring or the
/// locked-memory limit refuses it (the usual cause on a fresh machine).
pub fn executor(name: &str) -> Result<LocalExecutor, String> {
    LocalExecutorBuilder::new(Placement::Unbound)
        .name(name)
        .make()
        .map_err(|e| {
            format!(
                "cannot start a glommio executor: {e} \
                 (is io_uring allowed? try `ulimit -l unlimited` as root)"
            )
        })
}

/// A directory for data that is removed when dropped (unless kept).
pub struct WorkDir {
    /// The directory.
    pub path: PathBuf,
    /// Leave it on disk when dropped (`--keep`).
    pub keep: bool,
}

impl WorkDir {
    /// `base/name-PID`, created empty; `base` is `--dir` or the system temp dir.
    pub fn new(base: Option<&Path>, name: &str) -> Result<WorkDir, String> {
        let base = base
            .map(Path::to_path_buf)
            .unwrap_or_else(std::env::temp_dir);
        if !base.is_dir() {
            return Err(format!("{} is not a directory", base.display()));
        }
        let path = base.join(format!("{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path)
            .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
        Ok(WorkDir { path, keep: false })
    }

    /// A fresh, empty subdirectory path (not created: `Log::open` creates it).
    pub fn sub(&self, name: &str) -> PathBuf {
        let p = self.path.join(name);
        let _ = std::fs::remove_dir_all(&p);
        p
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// Nanoseconds since the Unix epoch, the timestamp records carry.
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// A latency histogram in nanoseconds, 1 ns to 100 s, 3 significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 100_000_000_000, 3).expect("valid histogram bounds")
}

/// Records a duration, saturating at the histogram's top.
pub fn record(h: &mut Histogram<u64>, d: Duration) {
    h.saturating_record(d.as_nanos().min(u64::MAX as u128) as u64);
}

/// Microseconds, rounded to 0.1 µs for printing and JSON.
fn us(ns: u64) -> f64 {
    (ns as f64 / 100.0).round() / 10.0
}

/// p50/p99/p99.9/max/mean in microseconds, and the count.
pub fn summary(h: &Histogram<u64>) -> Value {
    json!({
        "count": h.len(),
        "p50_us": us(h.value_at_quantile(0.50)),
        "p99_us": us(h.value_at_quantile(0.99)),
        "p999_us": us(h.value_at_quantile(0.999)),
        "max_us": us(h.max()),
        "mean_us": (h.mean() / 100.0).round() / 10.0,
    })
}

/// One table cell group: "p50 / p99 / p99.9 / max" in µs.
pub fn summary_line(h: &Histogram<u64>) -> String {
    format!(
        "{:>9.1} {:>9.1} {:>9.1} {:>9.1}",
        us(h.value_at_quantile(0.50)),
        us(h.value_at_quantile(0.99)),
        us(h.value_at_quantile(0.999)),
        us(h.max())
    )
}

/// Writes `value` as pretty JSON to `path` (when given).
pub fn write_json(path: Option<&Path>, value: &Value) -> Result<(), String> {
    let Some(path) = path else { return Ok(()) };
    let text = serde_json::to_string_pretty(value).expect("JSON values serialize");
    std::fs::write(path, text + "\n").map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// MB/s with MB = 10^6 bytes, as disk vendors and `dd` count.
pub fn mb_per_s(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / d.as_secs_f64() / 1e6
}

/// Closed-loop producers: each appends `per_commit` records, then awaits the
/// commit of its last one, until `deadline`. Many producers each waiting on
/// their own commit is how group commit is meant to be used: the waits of
/// all of them are answered by one fdatasync. Returns the records whose
/// commit resolved inside `measure_from..deadline` (so records/s is that count
/// over the window, exactly) and the histogram of first-append-to-commit time
/// of the groups started in that window.
pub async fn run_producers(
    log: &Log,
    producers: usize,
    per_commit: usize,
    payload: Rc<Vec<u8>>,
    measure_from: Instant,
    deadline: Instant,
) -> Result<(u64, Histogram<u64>), LogError> {
    let counted = Rc::new(Cell::new(0u64));
    let hist = Rc::new(std::cell::RefCell::new(histogram()));
    let mut tasks = Vec::with_capacity(producers);
    for _ in 0..producers {
        let (log, payload, counted, hist) =
            (log.clone(), payload.clone(), counted.clone(), hist.clone());
        tasks.push(glommio::spawn_local(async move {
            while Instant::now() < deadline {
                let started = Instant::now();
                let mut last = 0;
                for _ in 0..per_commit {
                    last = log.append(&payload, now_ns(), 0).await?;
                }
                log.commit(last).await?;
                let ended = Instant::now();
                if ended >= measure_from && ended <= deadline {
                    counted.set(counted.get() + per_commit as u64);
                }
                if started >= measure_from {
                    record(&mut hist.borrow_mut(), ended - started);
                }
            }
            Ok::<(), LogError>(())
        }));
    }
    for t in tasks {
        t.await?;
    }
    let h = hist.borrow().clone();
    Ok((counted.get(), h))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser, Debug)]
    struct Tool {
        #[command(flatten)]
        log: LogFlags,
        #[arg(long, value_enum, default_value = "fdatasync")]
        durability: DurabilityFlag,
        #[arg(long, value_parser = positive_at_most(600.0))]
        seconds: Option<f64>,
    }

    fn parse(args: &[&str]) -> Result<Tool, String> {
        Tool::try_parse_from(std::iter::once("tool").chain(args.iter().copied()))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn given_good_flags_when_parsed_then_values_read() {
        let t = parse(&[
            "--segment-mib",
            "128",
            "--durability=none",
            "--seconds",
            "2.5",
        ])
        .unwrap();
        assert_eq!(t.log.segment_mib, Some(128));
        assert_eq!(t.durability, DurabilityFlag::None);
        assert_eq!(t.seconds, Some(2.5));
        let config = t.log.log_config().unwrap();
        assert_eq!(config.segment_size_bytes, 128 << 20);
        assert_eq!(t.log.to_args(), vec!["--segment-mib=128".to_string()]);
    }

    #[test]
    fn given_bad_flags_when_parsed_then_errors_name_them() {
        assert!(parse(&["--nope"]).unwrap_err().contains("--nope"));
        assert!(parse(&["--segment-mib"]).unwrap_err().contains("value"));
        assert!(parse(&["stray"]).unwrap_err().contains("stray"));
        assert!(parse(&["--segment-mib", "0"]).is_err());
        assert!(parse(&["--segment-mib", "4096"]).is_err());
        assert!(parse(&["--segment-mib", "x"]).is_err());
        assert!(parse(&["--durability", "maybe"]).is_err());
        for bad in ["-3", "0", "NaN", "inf", "601", "x"] {
            assert!(parse(&["--seconds", bad]).is_err(), "{bad}");
        }
    }
}
