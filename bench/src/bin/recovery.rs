//! recovery-bench: how long the log takes to open again.
//!
//! Builds a log of `--gib` GiB of 4 KiB records and closes it (close writes a
//! checkpoint), then times (1) a reopen after that clean close, and (2) a
//! reopen after an unclean stop: a child process (this binary, re-executed)
//! appends `--unclean-mib` more and exits without closing, as a crash would
//! leave it. The periodic checkpoint (every `checkpoint_interval_bytes`,
//! default 64 MiB) bounds what (2) must scan; the default 60 MiB sits just
//! below one interval, near the worst case. It also times a sequential read
//! of the whole log through `iter_from(0)`, first pass cold (the records were
//! written with O_DIRECT, so none are in the page cache), second pass warm.

use clap::Parser;
use glommio::LocalExecutor;
use gonets_bench::{mb_per_s, positive_at_most, write_json, LogFlags, WorkDir};
use gonets_storage::{Log, LogConfig, RecoveryReport, Slot};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

/// How long the log takes to open again: after a clean close, after an
/// unclean stop (cold and page cache warm), and a sequential read.
#[derive(Parser, Debug)]
#[command(name = "recovery-bench", version, args_override_self = true)]
struct Flags {
    /// Size of the log to build, GiB, fractions allowed.
    #[arg(long, default_value_t = 1.0, value_parser = positive_at_most(1024.0))]
    gib: f64,
    /// MiB appended by the child that stops without closing.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=1 << 20))]
    unclean_mib: u64,
    #[command(flatten)]
    log: LogFlags,
    /// Where the log goes (default: the system temp dir).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Leave the log on disk.
    #[arg(long)]
    keep: bool,
    /// Also write the results as a JSON object to FILE.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Internal: run as the child that appends and exits without closing.
    #[arg(long, hide = true)]
    child_unclean: Option<PathBuf>,
}

const RECORD: usize = 4096;

/// Appends `bytes` of records durably with concurrent producers (so building
/// 1 GiB takes seconds, not minutes), returning the time it took.
async fn fill(log: &Log, bytes: u64) -> Result<Duration, String> {
    let payload = Rc::new(vec![0x42_u8; RECORD]);
    let records = bytes.div_ceil(RECORD as u64);
    let started = Instant::now();
    // 16 producers x 16 records: up to 1 MiB waits in the open batch.
    let per_task = records.div_ceil(16);
    let mut tasks = vec![];
    for t in 0..16 {
        let (log, payload) = (log.clone(), payload.clone());
        let n = per_task.min(records.saturating_sub(t * per_task));
        tasks.push(glommio::spawn_local(async move {
            let mut left = n;
            while left > 0 {
                let mut last = 0;
                for _ in 0..left.min(16) {
                    last = log.append(&payload, gonets_bench::now_ns(), 0).await?;
                }
                left -= left.min(16);
                log.commit(last).await?;
            }
            Ok::<(), gonets_storage::LogError>(())
        }));
    }
    for t in tasks {
        t.await.map_err(|e| format!("append: {e}"))?;
    }
    Ok(started.elapsed())
}

/// Opens the log, returning the wall time of `Log::open` and its report.
async fn reopen(dir: &Path, config: &LogConfig) -> Result<(Log, Duration, RecoveryReport), String> {
    let started = Instant::now();
    let (log, report) = Log::open(dir, config.clone())
        .await
        .map_err(|e| format!("reopen: {e}"))?;
    Ok((log, started.elapsed(), report))
}

/// One pass of `iter_from(0)`: (payload bytes, time). Every slot must be present.
fn read_all(log: &Log) -> Result<(u64, Duration), String> {
    let started = Instant::now();
    let mut bytes = 0u64;
    for slot in log.iter_from(0) {
        match slot {
            Slot::Present(r) => bytes += std::hint::black_box(r.payload()).len() as u64,
            other => return Err(format!("read: unexpected slot {other:?}")),
        }
    }
    Ok((bytes, started.elapsed()))
}

fn report_json(wall: Duration, r: &RecoveryReport) -> Value {
    json!({
        "open_ms": (wall.as_secs_f64() * 1e6).round() / 1e3,
        "report_elapsed_ms": (r.elapsed.as_secs_f64() * 1e6).round() / 1e3,
        "from_checkpoint": r.from_checkpoint,
        "bytes_scanned": r.bytes_scanned,
        "records_scanned": r.records_scanned,
        "batches_scanned": r.batches_scanned,
        "segments": r.segments,
        "next_offset": r.next_offset,
        "torn_tail": r.torn_tail.is_some(),
        "corruptions": r.corruptions.len(),
    })
}

fn child(dir: &Path, mib: u64, config: LogConfig) -> Result<(), String> {
    let ex = gonets_bench::executor("recovery-child")?;
    ex.run(async {
        let (log, _) = Log::open(dir, config)
            .await
            .map_err(|e| format!("child open: {e}"))?;
        fill(&log, mib << 20).await?;
        // Everything is committed; leave without close (no final checkpoint).
        std::process::exit(0)
    })
}

/// Runs this binary as a child that appends `mib` MiB and exits without
/// closing, with the same log flags.
fn unclean_stop(dir: &Path, mib: u64, log: &LogFlags) -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find own binary: {e}"))?;
    let status = std::process::Command::new(exe)
        .arg("--child-unclean")
        .arg(dir)
        .arg("--unclean-mib")
        .arg(mib.to_string())
        .args(log.to_args())
        .status()
        .map_err(|e| format!("cannot start the child: {e}"))?;
    if !status.success() {
        return Err(format!("the child that stops uncleanly failed: {status}"));
    }
    Ok(())
}

/// Reads every file of `dir` through the page cache.
fn read_files(dir: &Path) -> Result<(), String> {
    use std::io::Read;
    let err = |e: std::io::Error| format!("warming {}: {e}", dir.display());
    let mut buf = vec![0u8; 1 << 20];
    for entry in std::fs::read_dir(dir).map_err(err)? {
        let mut f = std::fs::File::open(entry.map_err(err)?.path()).map_err(err)?;
        while f.read(&mut buf).map_err(err)? > 0 {}
    }
    Ok(())
}

fn run() -> Result<(), String> {
    let f = Flags::parse();
    let unclean_mib = f.unclean_mib;
    let config = f.log.log_config()?;
    if let Some(dir) = &f.child_unclean {
        return child(dir, unclean_mib, config);
    }
    let gib = f.gib;
    let mut work = WorkDir::new(f.dir.as_deref(), "gonets-recovery")?;
    work.keep = f.keep;
    let dir = work.sub("log");
    let bytes = (gib * (1u64 << 30) as f64) as u64;
    let ex = gonets_bench::executor("recovery-bench")?;
    println!(
        "recovery bench: {gib} GiB of {RECORD} B records in {}",
        dir.display()
    );
    let built = build_and_read(&ex, &dir, &config, bytes)?;
    built.print(bytes);
    let unclean = unclean_reopens(&ex, &dir, &config, unclean_mib, &f.log)?;

    let read_json = |(b, d): (u64, Duration)| json!({ "bytes": b, "seconds": d.as_secs_f64(), "mb_s": (mb_per_s(b, d) * 10.0).round() / 10.0 });
    let (build, clean) = (built.build, &built.clean);
    let value = json!({
        "tool": "recovery-bench",
        "gib": gib,
        "record_bytes": RECORD,
        "segment_mib": config.segment_size_bytes >> 20,
        "build_seconds": build.as_secs_f64(),
        "build_mb_s": (mb_per_s(bytes, build) * 10.0).round() / 10.0,
        "clean": report_json(clean.0, &clean.1),
        "unclean_mib": unclean_mib,
        "unclean_cold": report_json(unclean[0].0, &unclean[0].1),
        "unclean_warm": report_json(unclean[1].0, &unclean[1].1),
        "read_cold": read_json(built.read_cold),
        "read_warm": read_json(built.read_warm),
    });
    write_json(f.json.as_deref(), &value)
}

/// A reopen: the wall time of `Log::open` and its report.
type Reopen = (Duration, RecoveryReport);

/// The log built, reopened after a clean close, and read twice.
struct Built {
    build: Duration,
    clean: Reopen,
    /// (payload bytes, time) of the first and the second full read.
    read_cold: (u64, Duration),
    read_warm: (u64, Duration),
}

impl Built {
    /// The build, the clean reopen and the reads, a line each.
    fn print(&self, bytes: u64) {
        println!(
            "built {:.0} MiB durably in {:.2} s ({:.1} MB/s)",
            bytes as f64 / (1 << 20) as f64,
            self.build.as_secs_f64(),
            mb_per_s(bytes, self.build)
        );
        print_reopen("reopen after clean close", &self.clean);
        for (what, (b, d)) in [("cold", self.read_cold), ("warm", self.read_warm)] {
            println!(
                "sequential read ({what}): {:.0} MiB in {:.2} s, {:.1} MB/s",
                b as f64 / (1 << 20) as f64,
                d.as_secs_f64(),
                mb_per_s(b, d)
            );
        }
    }
}

/// Builds a log of `bytes` in `dir`, closes it, reopens it (timed) and
/// reads it all twice.
fn build_and_read(
    ex: &LocalExecutor,
    dir: &Path,
    config: &LogConfig,
    bytes: u64,
) -> Result<Built, String> {
    ex.run(async {
        let (log, _) = Log::open(dir, config.clone())
            .await
            .map_err(|e| format!("open: {e}"))?;
        let build = fill(&log, bytes).await?;
        log.close().await.map_err(|e| format!("close: {e}"))?;
        let (log, wall, report) = reopen(dir, config).await?;
        let read_cold = read_all(&log)?;
        let read_warm = read_all(&log)?;
        log.close().await.map_err(|e| format!("close: {e}"))?;
        Ok::<_, String>(Built {
            build,
            clean: (wall, report),
            read_cold,
            read_warm,
        })
    })
}

/// One reopen, as a line.
fn print_reopen(what: &str, (wall, r): &Reopen) {
    println!(
        "{what}: open {:.1} ms (recovery {:.1} ms), scanned {} bytes ({} records), \
         from checkpoint: {}, {} segments",
        wall.as_secs_f64() * 1e3,
        r.elapsed.as_secs_f64() * 1e3,
        r.bytes_scanned,
        r.records_scanned,
        r.from_checkpoint,
        r.segments
    )
}

/// Two unclean stops, each followed by a timed reopen: cold, then warm.
///
/// The unclean stop happens in another process: the lock, the maps and the
/// flusher of this one are gone, as after a crash.
/// Twice: cold, as after a crash (O_DIRECT left nothing in the page cache),
/// then with the segments read into the page cache first, which separates
/// the scan's CPU cost from its disk reads.
fn unclean_reopens(
    ex: &LocalExecutor,
    dir: &Path,
    config: &LogConfig,
    unclean_mib: u64,
    log_flags: &LogFlags,
) -> Result<Vec<Reopen>, String> {
    let mut unclean = vec![];
    for warm in [false, true] {
        unclean_stop(dir, unclean_mib, log_flags)?;
        if warm {
            read_files(dir)?;
        }
        let r = ex.run(async {
            let (log, wall, report) = reopen(dir, config).await?;
            log.close().await.map_err(|e| format!("close: {e}"))?;
            Ok::<_, String>((wall, report))
        })?;
        let cache = if warm { "page cache warm" } else { "cold" };
        print_reopen(
            &format!("reopen after unclean stop, {unclean_mib} MiB past the checkpoint, {cache}"),
            &r,
        );
        unclean.push(r);
    }
    Ok(unclean)
}

fn main() {
    if let Err(e) = run() {
        eprintln!("recovery-bench: {e}");
        std::process::exit(2);
    }
}
