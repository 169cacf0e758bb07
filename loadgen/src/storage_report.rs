//! The storage report (`gonets-loadgen report --storage`; formerly
//! `bench`'s `storage-summary`): the last step of `bench/storage.sh`. Reads
//! every run's `limits.json` (from `limits --ways`), `commit-latency.json`
//! and `recovery-bench.json` (and the criterion estimates written since the
//! script started), takes medians across runs, prints each figure beside
//! its raw limit with the ratio and the target, and writes everything to one
//! JSON file.

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What to summarise.
#[derive(Clone, Debug)]
pub struct StorageReport {
    /// Holds `run-*/{limits,commit-latency,recovery-bench}.json`,
    /// `machine.txt` and `commands.txt` (written by `bench/storage.sh`).
    pub runs_dir: PathBuf,
    /// criterion's output folder (`target/criterion`), if any.
    pub criterion_dir: Option<PathBuf>,
    /// Only criterion estimates written after this (seconds since the epoch).
    pub since_unix_s: u64,
    /// Where the combined JSON goes.
    pub out: Option<PathBuf>,
}

/// Targets of the storage design (see bench/README.md).
const THROUGHPUT_RATIO_MIN: f64 = 0.70;
const P99_RATIO_MAX: f64 = 1.5;
const CLEAN_REOPEN_MS_MAX: f64 = 1000.0;

fn read_json(path: &Path) -> Result<Value, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{} is not JSON: {e}", path.display()))
}

/// `v` at a dotted path (`a.b.0.c`), as a number.
fn num(v: &Value, path: &str) -> Option<f64> {
    let mut cur = v;
    for key in path.split('.') {
        cur = match key.parse::<usize>() {
            Ok(i) => cur.get(i)?,
            Err(_) => cur.get(key)?,
        };
    }
    cur.as_f64()
}

/// Median; with an even count, the mean of the two middle values.
fn median(mut xs: Vec<f64>) -> Option<f64> {
    xs.retain(|x| x.is_finite());
    if xs.is_empty() {
        return None;
    }
    xs.sort_by(|a, b| a.total_cmp(b));
    let n = xs.len();
    Some(if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    })
}

/// The figure at `path` in every run of `tool`, and its median.
fn across(runs: &[Value], tool: &str, path: &str) -> (Vec<f64>, Option<f64>) {
    let xs: Vec<f64> = runs.iter().filter_map(|r| num(&r[tool], path)).collect();
    let m = median(xs.clone());
    (xs, m)
}

fn fmt(x: Option<f64>) -> String {
    x.map_or("n/a".into(), |v| format!("{v:.1}"))
}

fn fmt_all(xs: &[f64]) -> String {
    let parts: Vec<String> = xs.iter().map(|x| format!("{x:.1}")).collect();
    parts.join(", ")
}

/// Criterion benchmarks measured since `since`: id -> median ns/iter and throughput.
fn criterion(dir: &Path, since: SystemTime) -> Vec<Value> {
    let mut found = vec![];
    let mut stack = vec![dir.to_path_buf()];
    // Bounded by the size of the criterion folder.
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.ends_with("new/estimates.json") {
                found.push(p);
            }
        }
    }
    let mut out = vec![];
    for est_path in found {
        let fresh = std::fs::metadata(&est_path)
            .and_then(|m| m.modified())
            .is_ok_and(|t| t >= since);
        let bench_path = est_path.with_file_name("benchmark.json");
        let (Ok(est), Ok(bench), true) = (read_json(&est_path), read_json(&bench_path), fresh)
        else {
            continue;
        };
        let Some(ns) = num(&est, "median.point_estimate") else {
            continue;
        };
        let bytes = num(&bench, "throughput.BytesDecimal").or(num(&bench, "throughput.Bytes"));
        let mut v = json!({
            "id": bench["full_id"].as_str().unwrap_or("?"),
            "median_ns_per_iter": (ns * 10.0).round() / 10.0,
            "iters_per_s": (1e9 / ns).round(),
        });
        if let Some(b) = bytes {
            v["mb_s"] = json!((b / ns * 1e3 * 10.0).round() / 10.0);
        }
        out.push(v);
    }
    out.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    out
}

struct Target {
    name: String,
    value: Option<f64>,
    limit: Option<f64>,
    ratio: Option<f64>,
    goal: String,
    met: Option<bool>,
}

/// The raw limits of the ways, medians across runs.
struct Raw {
    /// The fastest way's 1 MiB write+fdatasync MB/s, and its name.
    best_seq: Option<(f64, &'static str)>,
    seq: [Option<f64>; 3],
    /// 4 KiB write+fdatasync p99 of (b), (c), (d), µs.
    p99: [Option<f64>; 3],
    memcpy: Option<f64>,
}

/// The log's own figures, medians across runs.
struct LogFigures {
    max_mb: Option<f64>,
    max_rps: Option<f64>,
    /// Paced closed-loop p99 (or the open-loop service p99), its kind, its rate.
    p99_low: (Option<f64>, &'static str, f64),
    p99_open_svc: Option<f64>,
    p99_low_sched: Option<f64>,
}

/// Recovery figures, medians across runs.
struct Recovery {
    gib: Option<f64>,
    clean_ms: Option<f64>,
    uc_ms: Option<f64>,
    uw_ms: Option<f64>,
    read_cold: Option<f64>,
    read_warm: Option<f64>,
}

const WAYS: [&str; 3] = ["buffered", "direct", "overwrite"];

/// Every `run-*` folder of `dir`: its `limits.json` (the ways, and memcpy),
/// `commit-latency.json` and `recovery-bench.json`, by tool.
fn read_runs(dir: &Path) -> Result<Vec<Value>, String> {
    let mut run_dirs: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("cannot list {}: {e}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.is_dir()
                && p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("run-"))
        })
        .collect();
    run_dirs.sort();
    let mut runs = vec![];
    for d in &run_dirs {
        let mut run = json!({});
        let limits = d.join("limits.json");
        if limits.exists() {
            let l = read_json(&limits)?;
            let mut ways = l["ways"].clone();
            if ways.is_object() {
                ways["memcpy_gb_s"] = l["memcpy_gb_per_s"].clone();
                run["ways"] = ways;
            }
        }
        for tool in ["commit-latency", "recovery-bench"] {
            let p = d.join(format!("{tool}.json"));
            if p.exists() {
                run[tool] = read_json(&p)?;
            }
        }
        runs.push(run);
    }
    if runs.is_empty() {
        return Err(format!("no run-* folders in {}", dir.display()));
    }
    Ok(runs)
}

fn raw_limits(runs: &[Value]) -> Raw {
    let seq_all = WAYS.map(|w| across(runs, "ways", &format!("{w}.seq_mb_s")));
    let seq = [seq_all[0].1, seq_all[1].1, seq_all[2].1];
    let raw =
        |way: &str, q: &str| across(runs, "ways", &format!("{way}.write4k_fdatasync.{q}_us")).1;
    let (_, memcpy) = across(runs, "ways", "memcpy_gb_s");
    // The fastest of the ways a log could write (the "faster raw way").
    let best_seq = seq
        .into_iter()
        .zip(["(b) buffered", "(c) O_DIRECT", "(d) O_DIRECT overwrite"])
        .filter_map(|(v, name)| v.map(|v| (v, name)))
        .max_by(|a, b| a.0.total_cmp(&b.0));

    println!("== raw disk limits (medians of {} runs)", runs.len());
    println!(
        "{:<34} {:>14} {:>14} {:>14}",
        "", "(b) buffered", "(c) O_DIRECT", "(d) overwrite"
    );
    let row = |name: &str, [b, c, d]: [Option<f64>; 3]| {
        println!("{name:<34} {:>14} {:>14} {:>14}", fmt(b), fmt(c), fmt(d));
    };
    row("1 MiB write+fdatasync, MB/s", seq);
    println!(
        "{:<34} {:>14} {:>14} {:>14}",
        "  (each run)",
        fmt_all(&seq_all[0].0),
        fmt_all(&seq_all[1].0),
        fmt_all(&seq_all[2].0)
    );
    for q in ["p50", "p99", "p999", "max"] {
        row(
            &format!("4 KiB write+fdatasync {q}, µs"),
            WAYS.map(|w| raw(w, q)),
        );
    }
    println!(
        "memcpy: {} GB/s",
        memcpy.map_or("n/a".into(), |m| format!("{m:.2}"))
    );
    Raw {
        best_seq,
        seq,
        p99: WAYS.map(|w| raw(w, "p99")),
        memcpy,
    }
}

/// Prints the open-loop table; returns the lowest load's index and rate.
fn open_loop_table(runs: &[Value]) -> Option<(usize, f64)> {
    let segment = num(&runs[0]["commit-latency"], "segment_mib").unwrap_or(0.0);
    println!(
        "\n== log: open-loop commit latency, µs (medians across runs; {segment} MiB segments)"
    );
    let loads = runs[0]["commit-latency"]["open_loop"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    println!(
        "{:>10} {:>10} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}  valid runs",
        "offered/s", "achieved/s", "p50", "p99", "p99.9", "max", "svc p50", "svc p99"
    );
    for i in 0..loads.len() {
        let m = |q: &str| across(runs, "commit-latency", &format!("open_loop.{i}.{q}")).1;
        let valid = runs
            .iter()
            .filter(|r| r["commit-latency"]["open_loop"][i]["valid"] == json!(true))
            .count();
        println!(
            "{:>10} {:>10} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}  {valid}/{}",
            fmt(m("offered_per_s")),
            fmt(m("achieved_per_s")),
            fmt(m("latency.p50_us")),
            fmt(m("latency.p99_us")),
            fmt(m("latency.p999_us")),
            fmt(m("latency.max_us")),
            fmt(m("service.p50_us")),
            fmt(m("service.p99_us")),
            runs.len()
        );
    }
    println!("(latency from each record's scheduled time, so generator lateness counts; svc: from its append call)");
    loads
        .iter()
        .enumerate()
        .min_by(|a, b| {
            num(a.1, "offered_per_s")
                .unwrap_or(f64::MAX)
                .total_cmp(&num(b.1, "offered_per_s").unwrap_or(f64::MAX))
        })
        .map(|(i, v)| (i, num(v, "offered_per_s").unwrap_or(0.0)))
}

fn log_figures(runs: &[Value]) -> LogFigures {
    let lowest = open_loop_table(runs);
    let paced_rate = num(&runs[0]["commit-latency"], "paced.rate_per_s");
    let paced = |q: &str| across(runs, "commit-latency", &format!("paced.service.{q}_us")).1;
    if let Some(rate) = paced_rate {
        println!(
            "paced closed loop at {}/s, one producer, µs: p50 {} p99 {} p99.9 {} max {}",
            fmt(Some(rate)),
            fmt(paced("p50")),
            fmt(paced("p99")),
            fmt(paced("p999")),
            fmt(paced("max"))
        );
    }
    let (max_all, max_mb) = across(runs, "commit-latency", "max.payload_mb_s");
    let (_, max_rps) = across(runs, "commit-latency", "max.records_per_s");
    let size = num(&runs[0]["commit-latency"], "size_bytes").unwrap_or(0.0);
    let producers = num(&runs[0]["commit-latency"], "max.producers").unwrap_or(0.0);
    let per_commit = num(&runs[0]["commit-latency"], "max.per_commit").unwrap_or(0.0);
    println!(
        "flat out ({producers} producers x {per_commit} records per commit, {size} B): {} records/s, {} MB/s (runs: {})",
        fmt(max_rps),
        fmt(max_mb),
        fmt_all(&max_all)
    );
    let low = |field: &str| {
        lowest
            .and_then(|(i, _)| across(runs, "commit-latency", &format!("open_loop.{i}.{field}")).1)
    };
    // The raw p99 is taken closed loop (one write+sync at a time), so the
    // log's is compared the same way: the paced closed-loop run where there
    // is one, else the open-loop service time; the others are printed beside.
    let p99_open_svc = low("service.p99_us");
    let p99_low = match (paced("p99"), paced_rate) {
        (Some(p), Some(r)) => (Some(p), "paced closed loop", r),
        _ => (
            p99_open_svc,
            "open-loop service",
            lowest.map_or(0.0, |l| l.1),
        ),
    };
    LogFigures {
        max_mb,
        max_rps,
        p99_low,
        p99_open_svc,
        p99_low_sched: low("latency.p99_us"),
    }
}

fn recovery(runs: &[Value]) -> Recovery {
    let (clean_all, clean_ms) = across(runs, "recovery-bench", "clean.open_ms");
    let (_, gib) = across(runs, "recovery-bench", "gib");
    let (_, clean_scanned) = across(runs, "recovery-bench", "clean.bytes_scanned");
    let (_, uc_ms) = across(runs, "recovery-bench", "unclean_cold.open_ms");
    let (_, uc_scan) = across(runs, "recovery-bench", "unclean_cold.bytes_scanned");
    let (_, uw_ms) = across(runs, "recovery-bench", "unclean_warm.open_ms");
    let (_, read_cold) = across(runs, "recovery-bench", "read_cold.mb_s");
    let (_, read_warm) = across(runs, "recovery-bench", "read_warm.mb_s");
    let (_, build) = across(runs, "recovery-bench", "build_mb_s");
    let bytes = |x: Option<f64>| x.map_or("n/a".into(), |v| format!("{v:.0}"));
    println!(
        "\n== log: recovery of {} GiB of 4 KiB records (medians)",
        fmt(gib)
    );
    println!(
        "reopen after clean close: {} ms, {} bytes scanned (runs: {})",
        fmt(clean_ms),
        bytes(clean_scanned),
        fmt_all(&clean_all)
    );
    println!(
        "reopen after unclean stop: cold {} ms, page cache warm {} ms, {} bytes scanned",
        fmt(uc_ms),
        fmt(uw_ms),
        bytes(uc_scan)
    );
    println!("sequential read via iter_from(0): cold {} MB/s, warm {} MB/s; build (16 producers) {} MB/s", fmt(read_cold), fmt(read_warm), fmt(build));
    Recovery {
        gib,
        clean_ms,
        uc_ms,
        uw_ms,
        read_cold,
        read_warm,
    }
}

fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    a.zip(b).map(|(a, b)| a / b)
}

fn targets(raw: &Raw, log: &LogFigures, rec: &Recovery) -> Vec<Target> {
    let r1 = ratio(log.max_mb, raw.best_seq.map(|b| b.0));
    let (p99_low, how, at) = log.p99_low;
    let r2 = ratio(p99_low, raw.p99[2]);
    vec![
        Target {
            name: format!(
                "(i) 1 KiB append+commit MB/s vs raw 1 MiB seq MB/s, faster way {}",
                raw.best_seq.map_or("n/a", |b| b.1)
            ),
            value: log.max_mb,
            limit: raw.best_seq.map(|b| b.0),
            ratio: r1,
            goal: format!(">= {THROUGHPUT_RATIO_MIN:.2}"),
            met: r1.map(|r| r >= THROUGHPUT_RATIO_MIN),
        },
        Target {
            name: format!(
                "(ii) commit p99 ({how}) at {at}/s (µs) vs raw (d) O_DIRECT overwrite 4 KiB write+fdatasync p99"
            ),
            value: p99_low,
            limit: raw.p99[2],
            ratio: r2,
            goal: format!("<= {P99_RATIO_MAX:.2}"),
            met: r2.map(|r| r <= P99_RATIO_MAX),
        },
        Target {
            name: format!("(iii) reopen of {} GiB after a clean close (ms)", fmt(rec.gib)),
            value: rec.clean_ms,
            limit: None,
            ratio: None,
            goal: format!("< {CLEAN_REOPEN_MS_MAX:.0} ms"),
            met: rec.clean_ms.map(|v| v < CLEAN_REOPEN_MS_MAX),
        },
    ]
}

fn print_targets(targets: &[Target], runs: usize, raw: &Raw, log: &LogFigures) {
    println!("\n== targets (medians across {runs} runs)");
    for t in targets {
        let verdict = match t.met {
            Some(true) => "MET",
            Some(false) => "MISSED",
            None => "n/a",
        };
        println!(
            "{}: {} vs {} -> ratio {} (target {}): {verdict}",
            t.name,
            fmt(t.value),
            fmt(t.limit),
            t.ratio.map_or("-".into(), |r| format!("{r:.3}")),
            t.goal
        );
    }
    let p99_low = log.p99_low.0;
    for (what, v, lim) in [
        ("the same p99 vs raw (b) buffered p99", p99_low, raw.p99[0]),
        ("the same p99 vs raw (c) O_DIRECT p99", p99_low, raw.p99[1]),
        (
            "open-loop service p99 vs raw (d) p99",
            log.p99_open_svc,
            raw.p99[2],
        ),
        (
            "open-loop p99 from schedule vs raw (d) p99",
            log.p99_low_sched,
            raw.p99[2],
        ),
    ] {
        if let Some(r) = ratio(v, lim) {
            println!("    ({what}: {} vs {}, ratio {r:.3})", fmt(v), fmt(lim));
        }
    }
}

fn print_criterion(crit: &[Value]) {
    if crit.is_empty() {
        return;
    }
    println!(
        "\n== criterion (median time per iteration; throughput groups: one record per iteration)"
    );
    for c in crit {
        println!(
            "{:<48} {:>12.1} ns {:>12} /s {:>10}",
            c["id"].as_str().unwrap_or("?"),
            c["median_ns_per_iter"].as_f64().unwrap_or(0.0),
            c["iters_per_s"],
            c.get("mb_s").map_or(String::new(), |m| format!("{m} MB/s"))
        );
    }
}

/// Reads the runs, prints every figure beside its limit and the targets,
/// and writes the combined JSON (machine, commands, every run, medians,
/// targets, criterion medians of this invocation) to `out`.
pub fn write(r: &StorageReport) -> Result<Value, String> {
    let since = UNIX_EPOCH + Duration::from_secs(r.since_unix_s);
    let runs = read_runs(&r.runs_dir)?;
    let text = |name: &str| std::fs::read_to_string(r.runs_dir.join(name)).unwrap_or_default();
    let machine = text("machine.txt");
    let commands_text = text("commands.txt");
    let commands: Vec<&str> = commands_text.lines().collect();
    let raw = raw_limits(&runs);
    let log = log_figures(&runs);
    let rec = recovery(&runs);
    let targets = targets(&raw, &log, &rec);
    print_targets(&targets, runs.len(), &raw, &log);
    let crit = r
        .criterion_dir
        .as_deref()
        .map(|d| criterion(d, since))
        .unwrap_or_default();
    print_criterion(&crit);
    let value = json!({
        "machine": machine,
        "commands": commands,
        "runs": runs,
        "medians": {
            "raw_buffered_seq_mb_s": raw.seq[0], "raw_direct_seq_mb_s": raw.seq[1], "raw_overwrite_seq_mb_s": raw.seq[2],
            "raw_buffered_4k_p99_us": raw.p99[0], "raw_direct_4k_p99_us": raw.p99[1], "raw_overwrite_4k_p99_us": raw.p99[2],
            "p99_lowest_load_from_schedule_us": log.p99_low_sched,
            "p99_lowest_load_open_loop_service_us": log.p99_open_svc,
            "memcpy_gb_s": raw.memcpy,
            "max_payload_mb_s": log.max_mb, "max_records_per_s": log.max_rps,
            "p99_low_load_target_us": log.p99_low.0,
            "clean_reopen_ms": rec.clean_ms, "unclean_reopen_cold_ms": rec.uc_ms, "unclean_reopen_warm_ms": rec.uw_ms,
            "read_cold_mb_s": rec.read_cold, "read_warm_mb_s": rec.read_warm,
        },
        "targets": targets.iter().map(|t| json!({
            "name": t.name, "value": t.value, "limit": t.limit, "ratio": t.ratio,
            "goal": t.goal, "met": t.met,
        })).collect::<Vec<_>>(),
        "criterion": crit,
    });
    if let Some(out) = &r.out {
        let text = serde_json::to_string_pretty(&value).expect("JSON values serialize");
        std::fs::write(out, text + "\n")
            .map_err(|e| format!("cannot write {}: {e}", out.display()))?;
    }
    Ok(value)
}
