//! gonets benchmark tools (see `bench/README.md`): the few helpers the
//! `disk-limits`, `commit-latency` and `recovery-bench` binaries and the
//! criterion bench share.

use glommio::{LocalExecutor, LocalExecutorBuilder, Placement};
use gonets_storage::{Durability, Log, LogConfig, LogError};
use hdrhistogram::Histogram;
use serde_json::{json, Value};
use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::str::FromStr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Command-line flags: `--name value`, `--name=value` or a bare `--name`.
/// Hand-rolled so every tool reports a bad flag as a sentence, never a panic.
#[derive(Debug)]
pub struct Args {
    given: Vec<(String, Option<String>)>,
}

impl Args {
    /// Parses the process arguments; `spec` lists each known flag and whether
    /// it takes a value.
    pub fn parse(spec: &[(&str, bool)]) -> Result<Args, String> {
        Self::parse_from(std::env::args().skip(1), spec)
    }

    pub fn parse_from(
        args: impl IntoIterator<Item = String>,
        spec: &[(&str, bool)],
    ) -> Result<Args, String> {
        let mut given = vec![];
        let mut it = args.into_iter();
        while let Some(arg) = it.next() {
            let Some(body) = arg.strip_prefix("--") else {
                return Err(format!("unexpected argument `{arg}` (flags start with --)"));
            };
            let (name, inline) = match body.split_once('=') {
                Some((n, v)) => (n.to_string(), Some(v.to_string())),
                None => (body.to_string(), None),
            };
            let Some(&(_, takes_value)) = spec.iter().find(|(n, _)| *n == name) else {
                return Err(format!("unknown flag `--{name}`"));
            };
            let value = match (takes_value, inline) {
                (true, Some(v)) => Some(v),
                (true, None) => Some(
                    it.next()
                        .ok_or_else(|| format!("flag `--{name}` needs a value"))?,
                ),
                (false, Some(_)) => return Err(format!("flag `--{name}` takes no value")),
                (false, None) => None,
            };
            given.push((name, value));
        }
        Ok(Args { given })
    }

    /// True when the bare flag was given.
    pub fn flag(&self, name: &str) -> bool {
        self.given.iter().any(|(n, _)| n == name)
    }

    /// The last value given for `name`, as text.
    pub fn text(&self, name: &str) -> Option<&str> {
        self.given
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .and_then(|(_, v)| v.as_deref())
    }

    /// The value of `name` parsed as `T`, or `default` when absent.
    pub fn value<T: FromStr>(&self, name: &str, default: T) -> Result<T, String> {
        match self.text(name) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|_| format!("flag `--{name}`: cannot read `{v}`")),
        }
    }

    /// A positive number (zero, negative and NaN are refused).
    pub fn positive<T: FromStr + PartialOrd + Default>(
        &self,
        name: &str,
        default: T,
    ) -> Result<T, String> {
        let v = self.value(name, default)?;
        // Compared with partial_cmp so NaN (incomparable) is refused too.
        if v.partial_cmp(&T::default()) != Some(std::cmp::Ordering::Greater) {
            return Err(format!("flag `--{name}` must be positive"));
        }
        Ok(v)
    }

    /// A positive number no larger than `max` (which also refuses infinity).
    pub fn bounded<T: FromStr + PartialOrd + Default + std::fmt::Display>(
        &self,
        name: &str,
        default: T,
        max: T,
    ) -> Result<T, String> {
        let v = self.positive(name, default)?;
        if v > max {
            return Err(format!("flag `--{name}` must be at most {max}"));
        }
        Ok(v)
    }

    /// A comma-separated list of positive numbers.
    pub fn list<T: FromStr + PartialOrd + Default>(
        &self,
        name: &str,
        default: Vec<T>,
    ) -> Result<Vec<T>, String> {
        let Some(text) = self.text(name) else {
            return Ok(default);
        };
        let items: Result<Vec<T>, String> = text
            .split(',')
            .map(|s| match s.trim().parse::<T>() {
                Ok(v) if v > T::default() => Ok(v),
                _ => Err(format!("flag `--{name}`: `{s}` is not a positive number")),
            })
            .collect();
        let items = items?;
        if items.is_empty() {
            return Err(format!("flag `--{name}` is empty"));
        }
        Ok(items)
    }

    /// `--durability fdatasync|none`.
    pub fn durability(&self) -> Result<Durability, String> {
        match self.text("durability").unwrap_or("fdatasync") {
            "fdatasync" => Ok(Durability::Fdatasync),
            "none" => Ok(Durability::None),
            other => Err(format!(
                "flag `--durability`: `{other}` is neither `fdatasync` nor `none`"
            )),
        }
    }
}

/// The production `LogConfig`, with `--segment-mib` (default: the
/// production size, 64) when given: segment size changes how ext4 converts the
/// preallocated extents, which shows in commit latency (see RESULTS.md).
/// `--prewrite-ahead-mib` and `--prewrite-chunk-kib` (where a tool takes
/// them) set the background zero writes ahead of the log (0 MiB: none).
pub fn log_config(args: &Args) -> Result<LogConfig, String> {
    let defaults = LogConfig::default();
    let mib: u64 = args.bounded("segment-mib", defaults.segment_size_bytes >> 20, 4095)?;
    let ahead_mib: u64 = args.value("prewrite-ahead-mib", defaults.prewrite_ahead_bytes >> 20)?;
    let batch_kib: usize = args.bounded("batch-kib", defaults.batch_bytes_max >> 10, 64 << 10)?;
    let chunk_kib: usize = args.bounded(
        "prewrite-chunk-kib",
        defaults.prewrite_chunk_bytes >> 10,
        8192,
    )?;
    let config = LogConfig {
        segment_size_bytes: mib << 20,
        prewrite_ahead_bytes: ahead_mib << 20,
        prewrite_chunk_bytes: chunk_kib << 10,
        batch_bytes_max: batch_kib << 10,
        ..defaults
    };
    config
        .validate()
        .map_err(|e| format!("flags `--segment-mib`/`--prewrite-*`: {e}"))?;
    Ok(config)
}

/// Name of a durability as the tools print it.
pub fn durability_name(d: Durability) -> &'static str {
    match d {
        Durability::Fdatasync => "fdatasync",
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
    pub path: PathBuf,
    pub keep: bool,
}

impl WorkDir {
    /// `base/name-PID`, created empty; `base` is `--dir` or the system temp dir.
    pub fn new(base: Option<&str>, name: &str) -> Result<WorkDir, String> {
        let base = base.map(PathBuf::from).unwrap_or_else(std::env::temp_dir);
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
pub fn write_json(path: Option<&str>, value: &Value) -> Result<(), String> {
    let Some(path) = path else { return Ok(()) };
    let text = serde_json::to_string_pretty(value).expect("JSON values serialize");
    std::fs::write(Path::new(path), text + "\n").map_err(|e| format!("cannot write {path}: {e}"))
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

    const SPEC: &[(&str, bool)] = &[("mib", true), ("json", true), ("quick", false)];

    fn parse(args: &[&str]) -> Result<Args, String> {
        Args::parse_from(args.iter().map(|s| s.to_string()), SPEC)
    }

    #[test]
    fn given_good_flags_when_parsed_then_values_read() {
        let a = parse(&["--mib", "64", "--json=x.json", "--quick"]).unwrap();
        assert_eq!(a.positive::<u64>("mib", 1).unwrap(), 64);
        assert_eq!(a.text("json"), Some("x.json"));
        assert!(a.flag("quick"));
    }

    #[test]
    fn given_bad_flags_when_parsed_then_errors_name_them() {
        assert!(parse(&["--nope"]).unwrap_err().contains("--nope"));
        assert!(parse(&["--mib"]).unwrap_err().contains("needs a value"));
        assert!(parse(&["--quick=1"]).unwrap_err().contains("no value"));
        assert!(parse(&["stray"]).unwrap_err().contains("stray"));
        let a = parse(&["--mib", "-3"]).unwrap();
        assert!(a.positive::<i64>("mib", 1).is_err());
        let a = parse(&["--mib", "x"]).unwrap();
        assert!(a.positive::<u64>("mib", 1).is_err());
        let a = parse(&["--mib", "1,0"]).unwrap();
        assert!(a.list::<u64>("mib", vec![]).is_err());
    }
}
