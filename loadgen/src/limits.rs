//! The machine's own limits, measured in the same run as the benchmarks so
//! every hub figure sits next to the bound it cannot beat on that machine:
//! loopback TCP round trip and bandwidth, durable sequential write
//! bandwidth, one 4 KiB write + `fdatasync`, and memcpy bandwidth.
//!
//! Plain std threads and blocking I/O: this is a yardstick, so it should be
//! the simplest code that reaches the hardware, not the hub's reactor.
//! Units: µs, and decimal MB/GB (10^6/10^9 bytes) per second.

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

/// Seconds per measurement in quick mode.
const QUICK_SECONDS: f64 = 1.5;
/// Seconds per measurement in full mode.
const FULL_SECONDS: f64 = 5.0;
/// Chunk of the sequential disk and TCP bandwidth writes.
const CHUNK: usize = 1 << 20;
/// Bytes between two `fdatasync`s of the sequential write: a group commit.
const SYNC_EVERY: usize = 4 << 20;
/// The small durable write: one block, as a lone commit of the hub writes.
const BLOCK: usize = 4096;
/// Alignment O_DIRECT wants of buffers, offsets and lengths.
const ALIGN: usize = 4096;
/// Largest preallocated file: enough unwritten blocks for seconds of 4 KiB
/// commits, and for seconds of sequential writing before it wraps around.
const MAX_FILE: u64 = 1 << 30;
/// Buffer copied by the memcpy measurement: far past any CPU cache.
const MEMCPY_BYTES: usize = 64 << 20;
/// Untimed round trips before recording: connection and caches settled.
const WARMUP_ROUND_TRIPS: usize = 200;
/// Most threads of the parallel 4 KiB write + `fdatasync` measurement.
pub const PARALLEL_SYNCERS_MAX: usize = 16;
/// Blocks each of those threads writes over (1 MiB).
const PARALLEL_FILE_BLOCKS: u64 = 256;
/// The stream beside which one 4 KiB write + `fdatasync` is timed: writes
/// of this size, each followed by `fdatasync`, as a log commits batches of
/// bulk while the real-time lane holds it to its bound (512 KiB, ADR 0015).
pub const STREAM_WRITE_BYTES: usize = 512 << 10;
/// The stream's file: written once, then overwritten round and round (as
/// the hub's log writes over blocks its prewriter zeroed).
const STREAM_FILE_BYTES: u64 = 64 << 20;
/// Ceiling on iterations of any measurement loop, whatever the clock says.
const MAX_ITERATIONS: u64 = 100_000_000;
/// How long a socket waits for its peer before the measurement fails.
const SOCKET_TIMEOUT: Duration = Duration::from_secs(10);

/// What to measure where.
#[derive(Debug, Clone)]
pub struct LimitsConfig {
    /// A directory on the disk the hub writes its log to.
    pub dir: PathBuf,
    /// About 1.5 s per measurement instead of 5 s.
    pub quick: bool,
    /// Seconds per measurement, overriding `quick` (tests use a fraction).
    pub seconds_each: Option<f64>,
    /// Also measure the storage design's write ways through io_uring
    /// (`--ways`: what `bench/storage.sh` compares the log with).
    pub ways: Option<crate::disk_ways::WaysConfig>,
}

impl LimitsConfig {
    /// Seconds each measurement runs for.
    pub fn seconds(&self) -> f64 {
        self.seconds_each.unwrap_or(if self.quick {
            QUICK_SECONDS
        } else {
            FULL_SECONDS
        })
    }
}

/// The measured limits; every figure carries its unit in its name.
#[derive(Debug, Clone, Serialize)]
pub struct Limits {
    /// Seconds each measurement ran for.
    pub seconds_each: f64,
    /// The directory measured (the disk figures are for its file system).
    pub dir: String,
    /// Mount point of the file system holding `dir`, from /proc/self/mountinfo.
    pub mount_point: Option<String>,
    /// File system type of that mount (ext4, xfs, tmpfs, ...).
    pub fs_type: Option<String>,
    /// Device (mount source) of that mount.
    pub device: Option<String>,

    /// Loopback TCP round trip of 1 byte, median, µs.
    pub rtt_1b_p50_us: f64,
    /// Loopback TCP round trip of 1 byte, 99th percentile, µs.
    pub rtt_1b_p99_us: f64,
    /// Loopback TCP round trip of 1 byte, 99.9th percentile, µs.
    pub rtt_1b_p999_us: f64,
    /// Loopback TCP round trip of 1 byte, slowest, µs.
    pub rtt_1b_max_us: f64,
    /// Loopback TCP round trips of 1 byte per second, one at a time.
    pub rtt_1b_per_s: f64,
    /// Loopback TCP round trip of 1 KiB, median, µs.
    pub rtt_1k_p50_us: f64,
    /// Loopback TCP round trip of 1 KiB, 99th percentile, µs.
    pub rtt_1k_p99_us: f64,
    /// Loopback TCP round trip of 1 KiB, 99.9th percentile, µs.
    pub rtt_1k_p999_us: f64,
    /// Loopback TCP round trip of 1 KiB, slowest, µs.
    pub rtt_1k_max_us: f64,
    /// Loopback TCP round trips of 1 KiB per second, one at a time.
    pub rtt_1k_per_s: f64,
    /// One loopback TCP connection written flat out in 1 MiB writes, GB/s.
    pub tcp_bandwidth_gb_per_s: f64,

    /// Whether the disk measurements got O_DIRECT (else buffered writes).
    pub disk_o_direct: bool,
    /// Sequential 1 MiB writes into a preallocated file with `fdatasync`
    /// every 4 MiB, MB/s: the bound for a durable log.
    pub disk_seq_fdatasync_mb_per_s: f64,
    /// One 4 KiB write + `fdatasync` into fallocated (unwritten) blocks,
    /// median, µs: the yardstick for a lone commit.
    pub write4k_fdatasync_p50_us: f64,
    /// Same, 99th percentile, µs.
    pub write4k_fdatasync_p99_us: f64,
    /// Same, 99.9th percentile, µs.
    pub write4k_fdatasync_p999_us: f64,
    /// Same, slowest, µs.
    pub write4k_fdatasync_max_us: f64,
    /// Same, operations per second, one at a time.
    pub write4k_fdatasync_per_s: f64,
    /// One 4 KiB write + `fdatasync` over blocks already written (no extent
    /// conversion to journal, what the hub's prewriter buys), median, µs.
    pub write4k_written_fdatasync_p50_us: f64,
    /// Same over written blocks, 99th percentile, µs.
    pub write4k_written_fdatasync_p99_us: f64,
    /// Same over written blocks, 99.9th percentile, µs.
    pub write4k_written_fdatasync_p999_us: f64,
    /// Same over written blocks, slowest, µs.
    pub write4k_written_fdatasync_max_us: f64,
    /// Same over written blocks, operations per second.
    pub write4k_written_fdatasync_per_s: f64,
    /// Threads writing 4 KiB + `fdatasync` at once, each to its own file
    /// over written blocks: one per core, at most [`PARALLEL_SYNCERS_MAX`]
    /// (as a hub's shards do, one log each).
    pub write4k_parallel_threads: usize,
    /// Those threads' 4 KiB writes + `fdatasync`, all together, per
    /// second: against `write4k_written_fdatasync_per_s`, how far the
    /// disk's flushes scale with shards.
    pub write4k_parallel_fdatasync_per_s: f64,
    /// One of those writes + `fdatasync`, median, µs.
    pub write4k_parallel_fdatasync_p50_us: f64,
    /// One of those writes + `fdatasync`, 99.9th percentile, µs.
    pub write4k_parallel_fdatasync_p999_us: f64,
    /// One 4 KiB write + `fdatasync` over written blocks while another
    /// thread writes [`STREAM_WRITE_BYTES`] + `fdatasync` flat out to
    /// another file, median, µs: the floor under a durable rt commit while
    /// bulk streams into the disk (issue 16's mixed; the device's flush
    /// also carries the stream's bytes).
    pub write4k_beside_stream_fdatasync_p50_us: f64,
    /// Same, 99th percentile, µs.
    pub write4k_beside_stream_fdatasync_p99_us: f64,
    /// Same, 99.9th percentile, µs.
    pub write4k_beside_stream_fdatasync_p999_us: f64,
    /// Same, slowest, µs.
    pub write4k_beside_stream_fdatasync_max_us: f64,
    /// What the stream wrote meanwhile, durable, MB/s.
    pub stream_beside_4k_mb_per_s: f64,

    /// Copies of a 64 MiB buffer, bytes copied per second, GB/s.
    pub memcpy_gb_per_s: f64,

    /// The write ways through io_uring, when asked for (`--ways`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ways: Option<crate::disk_ways::Ways>,
}

/// Measures the machine's limits, one measurement after another, each
/// announced through `progress` as it starts.
pub fn measure(cfg: &LimitsConfig, progress: &mut dyn FnMut(&str)) -> Result<Limits, String> {
    let secs = cfg.seconds();
    if !(secs.is_finite() && secs > 0.0 && secs <= 600.0) {
        return Err(format!(
            "limits: seconds per measurement must be in (0, 600], got {secs}"
        ));
    }
    let each = Duration::from_secs_f64(secs);
    let dir = &cfg.dir;
    check_writable(dir)?;
    let mount = mount_of(dir);
    // The ways first, their files kept until every measurement is done:
    // removing files disturbs fdatasync for seconds on a `discard` mount.
    let ways_dir = WaysDir::new(dir, cfg.ways.is_some())?;
    let ways = match (&cfg.ways, &ways_dir) {
        (Some(w), Some(d)) => {
            progress(&format!(
                "measuring the write ways through io_uring in {} ({} MiB sequential, {} x 4 KiB each)...",
                d.path.display(),
                w.mib,
                w.iters
            ));
            Some(crate::disk_ways::measure(&d.path, w)?)
        }
        _ => None,
    };
    let net = Network::measure(secs, progress)?;
    let disk = Disk::measure(dir, secs, progress)?;
    progress(&format!("measuring memcpy bandwidth ({secs} s)..."));
    let memcpy = memcpy_bandwidth(each);
    let mut limits = Limits::of(secs, dir, mount, &net, &disk, memcpy);
    limits.ways = ways;
    Ok(limits)
}

/// The loopback figures.
struct Network {
    rtt1: Quantiles,
    rtt1k: Quantiles,
    /// Bytes per second.
    tcp_bw: f64,
}

impl Network {
    /// Round trips of 1 B and 1 KiB, then bandwidth, `secs` each.
    fn measure(secs: f64, progress: &mut dyn FnMut(&str)) -> Result<Network, String> {
        let each = Duration::from_secs_f64(secs);
        progress(&format!(
            "measuring loopback TCP round trip, 1 B ({secs} s)..."
        ));
        let rtt1 = tcp_round_trip(1, each)?;
        progress(&format!(
            "measuring loopback TCP round trip, 1 KiB ({secs} s)..."
        ));
        let rtt1k = tcp_round_trip(1024, each)?;
        progress(&format!("measuring loopback TCP bandwidth ({secs} s)..."));
        let tcp_bw = tcp_bandwidth(each)?;
        Ok(Network {
            rtt1,
            rtt1k,
            tcp_bw,
        })
    }
}

/// The disk figures.
struct Disk {
    /// Sequential write with fdatasync, bytes per second.
    seq_bytes_per_s: f64,
    seq_direct: bool,
    /// 4 KiB write + fdatasync, to a fresh block and to a written one.
    w4: Quantiles,
    w4_written: Quantiles,
    w4_direct: bool,
    /// The same from `parallel_threads` threads at once.
    w4_parallel: Quantiles,
    parallel_threads: usize,
    /// One 4 KiB write + fdatasync beside a stream, and the stream's bytes/s.
    w4_beside_stream: Quantiles,
    stream_bytes_per_s: f64,
}

impl Disk {
    /// Sequential write, then 4 KiB write + fdatasync, in `dir`, `secs` each.
    fn measure(dir: &Path, secs: f64, progress: &mut dyn FnMut(&str)) -> Result<Disk, String> {
        let each = Duration::from_secs_f64(secs);
        progress(&format!(
            "measuring disk sequential write, fdatasync every 4 MiB, in {} ({secs} s)...",
            dir.display()
        ));
        let (seq_bytes_per_s, seq_direct) = disk_sequential(dir, each)?;
        progress(&format!(
            "measuring 4 KiB write + fdatasync latency ({secs} s + {secs} s)..."
        ));
        let (w4, w4_written, w4_direct) = write4k(dir, each)?;
        let parallel_threads = thread::available_parallelism()
            .map_or(2, |n| n.get())
            .clamp(2, PARALLEL_SYNCERS_MAX);
        progress(&format!(
            "measuring 4 KiB write + fdatasync from {parallel_threads} threads at once ({secs} s)..."
        ));
        let w4_parallel = write4k_parallel(dir, each, parallel_threads)?;
        progress(&format!(
            "measuring 4 KiB write + fdatasync beside a stream of {} KiB writes + fdatasync ({secs} s)...",
            STREAM_WRITE_BYTES >> 10
        ));
        let (w4_beside_stream, stream_bytes_per_s) = write4k_beside_stream(dir, each)?;
        Ok(Disk {
            w4_beside_stream,
            stream_bytes_per_s,
            w4_parallel,
            parallel_threads,
            seq_bytes_per_s,
            seq_direct,
            w4,
            w4_written,
            w4_direct,
        })
    }
}

/// The directory of the ways' files, removed when dropped.
struct WaysDir {
    path: PathBuf,
}

impl WaysDir {
    fn new(dir: &Path, wanted: bool) -> Result<Option<WaysDir>, String> {
        if !wanted {
            return Ok(None);
        }
        let path = dir.join(format!(".gonets-limits-{}-ways", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path)
            .map_err(|e| format!("limits: cannot create {}: {e}", path.display()))?;
        Ok(Some(WaysDir { path }))
    }
}

impl Drop for WaysDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

impl Limits {
    /// The figures as limits.json names them (without the ways).
    fn of(
        secs: f64,
        dir: &Path,
        mount: Option<Mount>,
        net: &Network,
        disk: &Disk,
        memcpy: f64,
    ) -> Limits {
        let (rtt1, rtt1k, w4, w4_written) = (&net.rtt1, &net.rtt1k, &disk.w4, &disk.w4_written);
        Limits {
            seconds_each: secs,
            dir: dir.display().to_string(),
            mount_point: mount.as_ref().map(|m| m.mount_point.clone()),
            fs_type: mount.as_ref().map(|m| m.fs_type.clone()),
            device: mount.as_ref().map(|m| m.device.clone()),
            rtt_1b_p50_us: rtt1.p50_us,
            rtt_1b_p99_us: rtt1.p99_us,
            rtt_1b_p999_us: rtt1.p999_us,
            rtt_1b_max_us: rtt1.max_us,
            rtt_1b_per_s: rtt1.per_s,
            rtt_1k_p50_us: rtt1k.p50_us,
            rtt_1k_p99_us: rtt1k.p99_us,
            rtt_1k_p999_us: rtt1k.p999_us,
            rtt_1k_max_us: rtt1k.max_us,
            rtt_1k_per_s: rtt1k.per_s,
            tcp_bandwidth_gb_per_s: net.tcp_bw / 1e9,
            disk_o_direct: disk.seq_direct && disk.w4_direct,
            disk_seq_fdatasync_mb_per_s: disk.seq_bytes_per_s / 1e6,
            write4k_fdatasync_p50_us: w4.p50_us,
            write4k_fdatasync_p99_us: w4.p99_us,
            write4k_fdatasync_p999_us: w4.p999_us,
            write4k_fdatasync_max_us: w4.max_us,
            write4k_fdatasync_per_s: w4.per_s,
            write4k_written_fdatasync_p50_us: w4_written.p50_us,
            write4k_written_fdatasync_p99_us: w4_written.p99_us,
            write4k_written_fdatasync_p999_us: w4_written.p999_us,
            write4k_written_fdatasync_max_us: w4_written.max_us,
            write4k_written_fdatasync_per_s: w4_written.per_s,
            write4k_parallel_threads: disk.parallel_threads,
            write4k_parallel_fdatasync_per_s: disk.w4_parallel.per_s,
            write4k_parallel_fdatasync_p50_us: disk.w4_parallel.p50_us,
            write4k_parallel_fdatasync_p999_us: disk.w4_parallel.p999_us,
            write4k_beside_stream_fdatasync_p50_us: disk.w4_beside_stream.p50_us,
            write4k_beside_stream_fdatasync_p99_us: disk.w4_beside_stream.p99_us,
            write4k_beside_stream_fdatasync_p999_us: disk.w4_beside_stream.p999_us,
            write4k_beside_stream_fdatasync_max_us: disk.w4_beside_stream.max_us,
            stream_beside_4k_mb_per_s: disk.stream_bytes_per_s / 1e6,
            memcpy_gb_per_s: memcpy / 1e9,
            ways: None,
        }
    }

    /// A few human lines, one per measurement.
    pub fn summary(&self) -> String {
        let fs = match (&self.fs_type, &self.device, &self.mount_point) {
            (Some(t), Some(d), Some(m)) => format!("{t} on {d} at {m}"),
            _ => "file system unknown".to_string(),
        };
        let mode = if self.disk_o_direct {
            "O_DIRECT"
        } else {
            "buffered"
        };
        [
            format!(
                "loopback TCP round trip 1 B:   p50 {:.1} µs, p99 {:.1}, p99.9 {:.1}, max {:.0} ({:.0}/s)",
                self.rtt_1b_p50_us, self.rtt_1b_p99_us, self.rtt_1b_p999_us, self.rtt_1b_max_us,
                self.rtt_1b_per_s
            ),
            format!(
                "loopback TCP round trip 1 KiB: p50 {:.1} µs, p99 {:.1}, p99.9 {:.1}, max {:.0} ({:.0}/s)",
                self.rtt_1k_p50_us, self.rtt_1k_p99_us, self.rtt_1k_p999_us, self.rtt_1k_max_us,
                self.rtt_1k_per_s
            ),
            format!("loopback TCP bandwidth, one connection: {:.2} GB/s", self.tcp_bandwidth_gb_per_s),
            format!("disk {} ({fs}), {mode}:", self.dir),
            format!(
                "  sequential 1 MiB writes, fdatasync every 4 MiB: {:.0} MB/s",
                self.disk_seq_fdatasync_mb_per_s
            ),
            format!(
                "  4 KiB write + fdatasync, fallocated blocks: p50 {:.0} µs, p99 {:.0}, p99.9 {:.0}, max {:.0} ({:.0}/s)",
                self.write4k_fdatasync_p50_us, self.write4k_fdatasync_p99_us,
                self.write4k_fdatasync_p999_us, self.write4k_fdatasync_max_us,
                self.write4k_fdatasync_per_s
            ),
            format!(
                "  4 KiB write + fdatasync, written blocks:    p50 {:.0} µs, p99 {:.0}, p99.9 {:.0}, max {:.0} ({:.0}/s)",
                self.write4k_written_fdatasync_p50_us, self.write4k_written_fdatasync_p99_us,
                self.write4k_written_fdatasync_p999_us, self.write4k_written_fdatasync_max_us,
                self.write4k_written_fdatasync_per_s
            ),
            format!(
                "  4 KiB write + fdatasync, {} threads at once: {:.0}/s together, one p50 {:.0} µs, p99.9 {:.0}",
                self.write4k_parallel_threads, self.write4k_parallel_fdatasync_per_s,
                self.write4k_parallel_fdatasync_p50_us, self.write4k_parallel_fdatasync_p999_us
            ),
            format!(
                "  4 KiB write + fdatasync beside a stream of {} KiB writes + fdatasync ({:.0} MB/s): p50 {:.0} µs, p99 {:.0}, p99.9 {:.0}, max {:.0}",
                STREAM_WRITE_BYTES >> 10, self.stream_beside_4k_mb_per_s,
                self.write4k_beside_stream_fdatasync_p50_us, self.write4k_beside_stream_fdatasync_p99_us,
                self.write4k_beside_stream_fdatasync_p999_us, self.write4k_beside_stream_fdatasync_max_us
            ),
            format!("memcpy of 64 MiB: {:.1} GB/s", self.memcpy_gb_per_s),
            format!("({} s per measurement)", self.seconds_each),
        ]
        .into_iter()
        .chain(self.ways.as_ref().map(|w| w.summary()))
        .collect::<Vec<_>>()
        .join("\n")
    }
}

/// Latency quantiles of one measurement, µs, and its rate.
struct Quantiles {
    p50_us: f64,
    p99_us: f64,
    p999_us: f64,
    max_us: f64,
    per_s: f64,
}

/// Histogram in nanoseconds: loopback round trips are tens of µs, so µs
/// buckets would round away the figure being measured.
fn ns_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("constant histogram bounds are valid")
}

fn record_ns(h: &mut Histogram<u64>, d: Duration) {
    // Saturating: an op slower than the bound is still counted, at the bound.
    h.saturating_record(d.as_nanos().min(u64::MAX as u128) as u64);
}

fn quantiles(h: &Histogram<u64>, elapsed: Duration) -> Result<Quantiles, String> {
    if h.is_empty() {
        return Err("limits: a measurement completed no operation".to_string());
    }
    let us = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    Ok(Quantiles {
        p50_us: us(0.5),
        p99_us: us(0.99),
        p999_us: us(0.999),
        max_us: h.max() as f64 / 1000.0,
        per_s: h.len() as f64 / elapsed.as_secs_f64(),
    })
}

fn check_writable(dir: &Path) -> Result<(), String> {
    if !dir.is_dir() {
        return Err(format!("limits: {} is not a directory", dir.display()));
    }
    let probe = TempFile::create(dir, "probe", false)
        .map_err(|e| format!("limits: directory {} not writable: {e}", dir.display()))?;
    probe
        .file
        .write_all_at(b"x", 0)
        .map_err(|e| format!("limits: directory {} not writable: {e}", dir.display()))?;
    Ok(())
}

/// A file of ours in the measured directory, removed however we leave.
struct TempFile {
    file: File,
    path: PathBuf,
    direct: bool,
}

impl TempFile {
    /// Creates a fresh file, with O_DIRECT when asked and the file system
    /// takes it (tmpfs, for one, refuses it at open).
    fn create(dir: &Path, what: &str, direct: bool) -> std::io::Result<TempFile> {
        let path = dir.join(format!(".gonets-limits-{}-{what}.tmp", std::process::id()));
        let open = |flags: i32| {
            OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .custom_flags(flags)
                .open(&path)
        };
        if direct {
            match open(libc::O_DIRECT) {
                Ok(file) => {
                    return Ok(TempFile {
                        file,
                        path,
                        direct: true,
                    })
                }
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {}
                Err(e) => return Err(e),
            }
        }
        let file = open(0)?;
        Ok(TempFile {
            file,
            path,
            direct: false,
        })
    }

    /// Drops O_DIRECT after a write refused it (some file systems accept the
    /// flag at open and fail the I/O).
    fn reopen_buffered(&mut self) -> std::io::Result<()> {
        self.file = OpenOptions::new().read(true).write(true).open(&self.path)?;
        self.direct = false;
        Ok(())
    }

    /// Reserves `len` bytes as the hub reserves a segment: unwritten extents.
    fn fallocate(&self, len: u64) -> Result<(), String> {
        // SAFETY: fallocate only reads its integer arguments; the fd is open.
        let rc = unsafe { libc::fallocate(self.file.as_raw_fd(), 0, 0, len as libc::off_t) };
        if rc == 0 {
            return Ok(());
        }
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::EOPNOTSUPP) {
            // No preallocation on this file system: a sized sparse file
            // is the nearest equivalent.
            return self
                .file
                .set_len(len)
                .map_err(|e| format!("limits: sizing {}: {e}", self.path.display()));
        }
        Err(format!(
            "limits: fallocate {} bytes in {}: {e}",
            len,
            self.path.display()
        ))
    }

    /// Writes `buf` at `offset`, falling back to buffered I/O once if
    /// O_DIRECT turns out to be refused.
    fn write_at(&mut self, buf: &[u8], offset: u64) -> Result<(), String> {
        match self.file.write_all_at(buf, offset) {
            Ok(()) => Ok(()),
            Err(e) if self.direct && e.raw_os_error() == Some(libc::EINVAL) => {
                self.reopen_buffered()
                    .map_err(|e| format!("limits: reopening {}: {e}", self.path.display()))?;
                self.file
                    .write_all_at(buf, offset)
                    .map_err(|e| format!("limits: writing {}: {e}", self.path.display()))
            }
            Err(e) => Err(format!("limits: writing {}: {e}", self.path.display())),
        }
    }

    fn sync(&self) -> Result<(), String> {
        // sync_data is fdatasync on Linux.
        self.file
            .sync_data()
            .map_err(|e| format!("limits: fdatasync {}: {e}", self.path.display()))
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A buffer of `len` bytes aligned for O_DIRECT, filled with non-zero
/// pseudo-random bytes so no layer can shortcut zeros. Returns the backing
/// Vec and the offset of the aligned slice in it.
fn aligned_buffer(len: usize) -> (Vec<u8>, usize) {
    assert!(
        len / ALIGN * ALIGN == len,
        "O_DIRECT length {len} not a multiple of {ALIGN}"
    );
    let mut v = vec![0u8; len + ALIGN];
    let off = v.as_ptr().align_offset(ALIGN);
    assert!(off < ALIGN, "cannot align a byte buffer to {ALIGN}");
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for b in &mut v[off..off + len] {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = (x as u8) | 1;
    }
    (v, off)
}

/// Size of a preallocated file: up to `MAX_FILE`, and at most a quarter of
/// the space left, so measuring never fills the hub's disk.
fn file_size(dir: &Path, want: u64) -> Result<u64, String> {
    let free = free_bytes(dir).unwrap_or(u64::MAX);
    let size = want.min(MAX_FILE).min(free / 4) / CHUNK as u64 * CHUNK as u64;
    if size < SYNC_EVERY as u64 {
        return Err(format!(
            "limits: too little free space in {} ({free} bytes) to measure the disk",
            dir.display()
        ));
    }
    Ok(size)
}

fn free_bytes(dir: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs is plain old data, zeroed is a valid value.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: c is a valid NUL-terminated path, st a valid out pointer.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return None;
    }
    Some(st.f_bavail as u64 * st.f_frsize as u64)
}

/// One client, one echo server thread, `size` bytes each way per round trip.
fn tcp_round_trip(size: usize, each: Duration) -> Result<Quantiles, String> {
    assert!(size > 0);
    let listener =
        TcpListener::bind("127.0.0.1:0").map_err(|e| format!("limits: bind loopback: {e}"))?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("limits: loopback address: {e}"))?;
    let server = thread::spawn(move || -> Result<(), String> {
        let (mut s, _) = listener.accept().map_err(|e| format!("accept: {e}"))?;
        s.set_nodelay(true).map_err(|e| format!("nodelay: {e}"))?;
        s.set_read_timeout(Some(SOCKET_TIMEOUT))
            .map_err(|e| format!("timeout: {e}"))?;
        let mut buf = vec![0u8; size];
        // Ends at the client's EOF, or at the read timeout if it vanished.
        for _ in 0..MAX_ITERATIONS {
            match s.read_exact(&mut buf) {
                Ok(()) => s.write_all(&buf).map_err(|e| format!("echo write: {e}"))?,
                Err(e) if e.kind() == ErrorKind::UnexpectedEof => return Ok(()),
                Err(e) => return Err(format!("echo read: {e}")),
            }
        }
        Ok(())
    });
    let client = || -> Result<Quantiles, String> {
        let mut c = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
        c.set_nodelay(true).map_err(|e| format!("nodelay: {e}"))?;
        c.set_read_timeout(Some(SOCKET_TIMEOUT))
            .map_err(|e| format!("timeout: {e}"))?;
        let out = vec![0x5au8; size];
        let mut back = vec![0u8; size];
        let mut once = |c: &mut TcpStream| -> Result<(), String> {
            c.write_all(&out).map_err(|e| format!("write: {e}"))?;
            c.read_exact(&mut back).map_err(|e| format!("read: {e}"))
        };
        for _ in 0..WARMUP_ROUND_TRIPS {
            once(&mut c)?;
        }
        let mut h = ns_histogram();
        let start = Instant::now();
        for _ in 0..MAX_ITERATIONS {
            let t = Instant::now();
            once(&mut c)?;
            record_ns(&mut h, t.elapsed());
            if start.elapsed() >= each {
                break;
            }
        }
        let elapsed = start.elapsed();
        assert_eq!(back, out, "echo returned different bytes");
        c.shutdown(Shutdown::Write)
            .map_err(|e| format!("shutdown: {e}"))?;
        quantiles(&h, elapsed)
    };
    let result = client();
    if result.is_err() {
        unblock_accept(addr);
    }
    let served = join(server);
    // A client error closes the socket, so the server has ended; the
    // client's error is the one that says what went wrong.
    let q = result.map_err(|e| format!("limits: loopback round trip of {size} B: {e}"))?;
    served.map_err(|e| format!("limits: loopback echo server: {e}"))?;
    Ok(q)
}

/// One connection written flat out in 1 MiB writes; bytes/s as received.
fn tcp_bandwidth(each: Duration) -> Result<f64, String> {
    let listener =
        TcpListener::bind("127.0.0.1:0").map_err(|e| format!("limits: bind loopback: {e}"))?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("limits: loopback address: {e}"))?;
    let server = thread::spawn(move || -> Result<u64, String> {
        let (mut s, _) = listener.accept().map_err(|e| format!("accept: {e}"))?;
        s.set_read_timeout(Some(SOCKET_TIMEOUT))
            .map_err(|e| format!("timeout: {e}"))?;
        let mut buf = vec![0u8; CHUNK];
        let mut total = 0u64;
        // Ends at the client's EOF; each read takes at least one byte.
        for _ in 0..u64::MAX {
            match s.read(&mut buf) {
                Ok(0) => return Ok(total),
                Ok(n) => total += n as u64,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("read: {e}")),
            }
        }
        Ok(total)
    });
    let client = || -> Result<(u64, Instant), String> {
        let mut c = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
        c.set_write_timeout(Some(SOCKET_TIMEOUT))
            .map_err(|e| format!("timeout: {e}"))?;
        let (buf, off) = aligned_buffer(CHUNK);
        let chunk = &buf[off..off + CHUNK];
        let start = Instant::now();
        let mut sent = 0u64;
        for _ in 0..MAX_ITERATIONS {
            c.write_all(chunk).map_err(|e| format!("write: {e}"))?;
            sent += CHUNK as u64;
            if start.elapsed() >= each {
                break;
            }
        }
        c.shutdown(Shutdown::Write)
            .map_err(|e| format!("shutdown: {e}"))?;
        Ok((sent, start))
    };
    let result = client();
    if result.is_err() {
        unblock_accept(addr);
    }
    let received = join(server);
    let (sent, start) = result.map_err(|e| format!("limits: loopback bandwidth: {e}"))?;
    // Timed to the server's EOF, so bytes still in socket buffers count only
    // once they have crossed.
    let elapsed = start.elapsed();
    let received = received.map_err(|e| format!("limits: loopback bandwidth server: {e}"))?;
    assert_eq!(received, sent, "loopback lost bytes");
    Ok(received as f64 / elapsed.as_secs_f64())
}

/// A client that failed before connecting would leave its server blocked
/// in `accept` forever: one throwaway connection ends it (it reads EOF).
fn unblock_accept(addr: std::net::SocketAddr) {
    let _ = TcpStream::connect_timeout(&addr, SOCKET_TIMEOUT);
}

fn join<T>(h: thread::JoinHandle<Result<T, String>>) -> Result<T, String> {
    h.join().map_err(|_| "thread panicked".to_string())?
}

/// Sequential 1 MiB writes into a preallocated file, `fdatasync` every
/// 4 MiB; bytes/s and whether O_DIRECT held. Past the file's end it wraps
/// onto written blocks rather than grow past the space budget.
fn disk_sequential(dir: &Path, each: Duration) -> Result<(f64, bool), String> {
    // A fast NVMe does ~3 GB/s: size for that many seconds, capped.
    let size = file_size(dir, (each.as_secs_f64() * 3e9) as u64)?;
    let mut f = TempFile::create(dir, "seq", true)
        .map_err(|e| format!("limits: creating a file in {}: {e}", dir.display()))?;
    f.fallocate(size)?;
    let (buf, off) = aligned_buffer(CHUNK);
    let chunk = &buf[off..off + CHUNK];
    let mut offset = 0u64;
    let mut written = 0u64;
    let mut unsynced = 0usize;
    let start = Instant::now();
    for _ in 0..MAX_ITERATIONS {
        f.write_at(chunk, offset)?;
        written += CHUNK as u64;
        unsynced += CHUNK;
        offset = (offset + CHUNK as u64) % size;
        if unsynced == SYNC_EVERY {
            f.sync()?;
            unsynced = 0;
            if start.elapsed() >= each {
                break;
            }
        }
    }
    // Every byte counted must be covered by an fdatasync, however the loop
    // ended.
    if unsynced > 0 {
        f.sync()?;
    }
    let elapsed = start.elapsed();
    Ok((written as f64 / elapsed.as_secs_f64(), f.direct))
}

/// 4 KiB write + `fdatasync`, one at a time at sequential offsets: first
/// into fallocated blocks (as the hub's first write into its segment), then
/// over the blocks that pass wrote (as after the hub's prewriter).
fn write4k(dir: &Path, each: Duration) -> Result<(Quantiles, Quantiles, bool), String> {
    // A fast NVMe does ~50k durable 4 KiB writes/s: size for that, capped.
    let size = file_size(dir, (each.as_secs_f64() * 50_000.0) as u64 * BLOCK as u64)?;
    let blocks = size / BLOCK as u64;
    let mut f = TempFile::create(dir, "4k", true)
        .map_err(|e| format!("limits: creating a file in {}: {e}", dir.display()))?;
    f.fallocate(size)?;
    let (buf, off) = aligned_buffer(BLOCK);
    let block = &buf[off..off + BLOCK];

    let mut fresh = ns_histogram();
    let start = Instant::now();
    // Stops at the deadline or when out of fallocated blocks to write into.
    for i in 0..blocks {
        let t = Instant::now();
        f.write_at(block, i * BLOCK as u64)?;
        f.sync()?;
        record_ns(&mut fresh, t.elapsed());
        if start.elapsed() >= each {
            break;
        }
    }
    let fresh_q = quantiles(&fresh, start.elapsed())?;
    let written = fresh.len().max(1);

    let start = Instant::now();
    let over = overwrite_and_sync(&mut f, block, written, each)?;
    let over_q = quantiles(&over, start.elapsed())?;
    Ok((fresh_q, over_q, f.direct))
}

/// 4 KiB writes of `block` over the first `blocks` blocks of `f`, round and
/// round, each followed by `fdatasync`, for `each`: their latencies.
fn overwrite_and_sync(
    f: &mut TempFile,
    block: &[u8],
    blocks: u64,
    each: Duration,
) -> Result<Histogram<u64>, String> {
    assert!(blocks > 0 && block.len() == BLOCK);
    let mut h = ns_histogram();
    let start = Instant::now();
    for i in 0..MAX_ITERATIONS {
        let t = Instant::now();
        f.write_at(block, (i % blocks) * BLOCK as u64)?;
        f.sync()?;
        record_ns(&mut h, t.elapsed());
        if start.elapsed() >= each {
            break;
        }
    }
    Ok(h)
}

/// 4 KiB write + `fdatasync` from `threads` threads at once, each over the
/// written blocks of its own file, for `each`: every operation's latency,
/// and their rate all together.
fn write4k_parallel(dir: &Path, each: Duration, threads: usize) -> Result<Quantiles, String> {
    assert!((1..=PARALLEL_SYNCERS_MAX).contains(&threads));
    let start = Instant::now();
    let workers: Vec<_> = (0..threads)
        .map(|i| {
            let dir = dir.to_path_buf();
            thread::spawn(move || write4k_written_file(&dir, &format!("4k-parallel-{i}"), each))
        })
        .collect();
    let mut all = ns_histogram();
    for w in workers {
        let h = join(w)?;
        all.add(&h)
            .map_err(|e| format!("limits: merging histograms: {e}"))?;
    }
    quantiles(&all, start.elapsed())
}

/// One 4 KiB write + `fdatasync` at a time over written blocks, for
/// `each`, while a second thread writes [`STREAM_WRITE_BYTES`] +
/// `fdatasync` flat out to a file of its own: the 4 KiB latencies, and the
/// stream's durable bytes per second.
fn write4k_beside_stream(dir: &Path, each: Duration) -> Result<(Quantiles, f64), String> {
    let stop = Arc::new(AtomicBool::new(false));
    let stream = {
        let (dir, stop) = (dir.to_path_buf(), stop.clone());
        thread::spawn(move || stream_until(&dir, &stop))
    };
    // The stream's file is written once before it streams: let it start.
    thread::sleep(Duration::from_millis(200));
    let start = Instant::now();
    let measured = write4k_written_file(dir, "4k-beside-stream", each);
    let elapsed = start.elapsed();
    stop.store(true, Ordering::Relaxed);
    let streamed = join(stream);
    let h = measured?;
    let (bytes, stream_elapsed) = streamed?;
    Ok((
        quantiles(&h, elapsed)?,
        bytes as f64 / stream_elapsed.as_secs_f64(),
    ))
}

/// The stream of [`write4k_beside_stream`]: its file written once, then
/// [`STREAM_WRITE_BYTES`] writes + `fdatasync` over it round and round
/// until `stop`; the bytes made durable and the time they took.
fn stream_until(dir: &Path, stop: &AtomicBool) -> Result<(u64, Duration), String> {
    let mut f = TempFile::create(dir, "stream", true)
        .map_err(|e| format!("limits: creating a file in {}: {e}", dir.display()))?;
    f.fallocate(STREAM_FILE_BYTES)?;
    let (buf, off) = aligned_buffer(STREAM_WRITE_BYTES);
    let chunk = &buf[off..off + STREAM_WRITE_BYTES];
    let chunks = STREAM_FILE_BYTES / STREAM_WRITE_BYTES as u64;
    for c in 0..chunks {
        f.write_at(chunk, c * STREAM_WRITE_BYTES as u64)?;
    }
    f.sync()?;
    let start = Instant::now();
    let mut bytes = 0u64;
    // Bounded by `stop` (set once the 4 KiB writes are done) and, should
    // that thread be gone, by MAX_ITERATIONS.
    for i in 0..MAX_ITERATIONS {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        f.write_at(chunk, (i % chunks) * STREAM_WRITE_BYTES as u64)?;
        f.sync()?;
        bytes += STREAM_WRITE_BYTES as u64;
    }
    Ok((bytes, start.elapsed()))
}

/// A file `name` written once over `PARALLEL_FILE_BLOCKS` blocks, then 4
/// KiB writes + `fdatasync` over them for `each`: their latencies.
fn write4k_written_file(dir: &Path, name: &str, each: Duration) -> Result<Histogram<u64>, String> {
    let mut f = TempFile::create(dir, name, true)
        .map_err(|e| format!("limits: creating a file in {}: {e}", dir.display()))?;
    let size = PARALLEL_FILE_BLOCKS * BLOCK as u64;
    f.fallocate(size)?;
    let (buf, off) = aligned_buffer(BLOCK);
    let block = &buf[off..off + BLOCK];
    for b in 0..PARALLEL_FILE_BLOCKS {
        f.write_at(block, b * BLOCK as u64)?;
    }
    f.sync()?;
    overwrite_and_sync(&mut f, block, PARALLEL_FILE_BLOCKS, each)
}

/// Bytes per second copied by `copy_from_slice` of a 64 MiB buffer.
fn memcpy_bandwidth(each: Duration) -> f64 {
    let (src, off) = aligned_buffer(MEMCPY_BYTES);
    let src = &src[off..off + MEMCPY_BYTES];
    let mut dst = vec![0u8; MEMCPY_BYTES];
    // Untimed first copy: faults the destination's pages in.
    dst.copy_from_slice(src);
    let start = Instant::now();
    let mut copies = 0u64;
    for _ in 0..MAX_ITERATIONS {
        dst.copy_from_slice(std::hint::black_box(src));
        std::hint::black_box(&mut dst);
        copies += 1;
        if start.elapsed() >= each {
            break;
        }
    }
    assert_eq!(dst[..64], src[..64]);
    (copies * MEMCPY_BYTES as u64) as f64 / start.elapsed().as_secs_f64()
}

/// The mount a path lives on.
struct Mount {
    mount_point: String,
    fs_type: String,
    device: String,
}

/// The mount of /proc/self/mountinfo with the longest mount point that is
/// an ancestor of `dir` (the last one listed wins a tie: it is on top).
fn mount_of(dir: &Path) -> Option<Mount> {
    let dir = dir.canonicalize().ok()?;
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    parse_mount(&info, &dir)
}

fn parse_mount(info: &str, dir: &Path) -> Option<Mount> {
    let mut best: Option<Mount> = None;
    for line in info.lines() {
        // id parent major:minor root mount-point options [optional...] - type source super
        let fields: Vec<&str> = line.split(' ').collect();
        let Some(dash) = fields.iter().position(|f| *f == "-") else {
            continue;
        };
        let (Some(mp), Some(fs_type), Some(device)) =
            (fields.get(4), fields.get(dash + 1), fields.get(dash + 2))
        else {
            continue;
        };
        let mp = unescape_octal(mp);
        if !dir.starts_with(&mp) {
            continue;
        }
        if best
            .as_ref()
            .is_some_and(|b| b.mount_point.len() > mp.len())
        {
            continue;
        }
        best = Some(Mount {
            mount_point: mp,
            fs_type: fs_type.to_string(),
            device: unescape_octal(device),
        });
    }
    best
}

/// Undoes mountinfo's `\040`-style escapes of spaces, tabs and newlines.
fn unescape_octal(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match (b[i], octal) {
            (b'\\', Some(d)) => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quick_measure_gives_positive_figures() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = LimitsConfig {
            dir: dir.path().to_path_buf(),
            quick: true,
            seconds_each: Some(0.2),
            ways: None,
        };
        let mut lines = Vec::new();
        let l = measure(&cfg, &mut |s| lines.push(s.to_string())).unwrap();
        assert_eq!(lines.len(), 8, "{lines:?}");
        for (name, v) in [
            ("rtt_1b_p50_us", l.rtt_1b_p50_us),
            ("rtt_1b_max_us", l.rtt_1b_max_us),
            ("rtt_1b_per_s", l.rtt_1b_per_s),
            ("rtt_1k_p999_us", l.rtt_1k_p999_us),
            ("tcp_bandwidth_gb_per_s", l.tcp_bandwidth_gb_per_s),
            ("disk_seq_fdatasync_mb_per_s", l.disk_seq_fdatasync_mb_per_s),
            ("write4k_fdatasync_p50_us", l.write4k_fdatasync_p50_us),
            (
                "write4k_written_fdatasync_per_s",
                l.write4k_written_fdatasync_per_s,
            ),
            ("memcpy_gb_per_s", l.memcpy_gb_per_s),
            (
                "write4k_parallel_fdatasync_per_s",
                l.write4k_parallel_fdatasync_per_s,
            ),
            (
                "write4k_parallel_fdatasync_p50_us",
                l.write4k_parallel_fdatasync_p50_us,
            ),
            (
                "write4k_beside_stream_fdatasync_p999_us",
                l.write4k_beside_stream_fdatasync_p999_us,
            ),
            ("stream_beside_4k_mb_per_s", l.stream_beside_4k_mb_per_s),
        ] {
            assert!(v > 0.0 && v.is_finite(), "{name} = {v}");
        }
        assert!(l.rtt_1b_p50_us <= l.rtt_1b_p99_us && l.rtt_1b_p99_us <= l.rtt_1b_max_us);
        assert!((2..=PARALLEL_SYNCERS_MAX).contains(&l.write4k_parallel_threads));
        assert!(
            l.write4k_beside_stream_fdatasync_p50_us <= l.write4k_beside_stream_fdatasync_p999_us
                && l.write4k_beside_stream_fdatasync_p999_us
                    <= l.write4k_beside_stream_fdatasync_max_us
        );
        // Our files are gone.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        assert!(l.summary().contains("fdatasync"));
        let json = serde_json::to_value(&l).unwrap();
        assert!(json.get("write4k_fdatasync_p50_us").is_some());
        eprintln!("{}", l.summary());
    }

    #[test]
    fn given_ways_when_measured_then_three_ways_are_figured_and_their_files_removed() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = LimitsConfig {
            dir: dir.path().to_path_buf(),
            quick: true,
            seconds_each: Some(0.1),
            ways: Some(crate::disk_ways::WaysConfig {
                mib: 2,
                file_mib: 1,
                iters: 20,
            }),
        };
        let mut lines = Vec::new();
        let l = measure(&cfg, &mut |s| lines.push(s.to_string())).unwrap();
        assert_eq!(lines.len(), 9, "{lines:?}");
        let ways = l.ways.as_ref().expect("ways measured");
        for (name, w) in [
            ("buffered", &ways.buffered),
            ("direct", &ways.direct),
            ("overwrite", &ways.overwrite),
        ] {
            assert!(w.seq_mb_s > 0.0 && w.seq_mb_s.is_finite(), "{name}");
            assert_eq!(w.write4k_fdatasync.count, 20, "{name}");
            assert_eq!(w.seq_chunk_write_fdatasync.count, 2, "{name}");
            assert!(w.write4k_fdatasync.p50_us <= w.write4k_fdatasync.max_us);
        }
        let json = serde_json::to_value(&l).unwrap();
        assert!(json["ways"]["overwrite"]["write4k_fdatasync"]["p99_us"].is_number());
        assert!(l.summary().contains("(d) O_DIRECT overwrite"));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn given_no_ways_when_serialized_then_no_ways_key() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = LimitsConfig {
            dir: dir.path().to_path_buf(),
            quick: true,
            seconds_each: Some(0.05),
            ways: None,
        };
        let l = measure(&cfg, &mut |_| {}).unwrap();
        let json = serde_json::to_value(&l).unwrap();
        assert!(
            json.get("ways").is_none(),
            "bench/run's limits.json keeps its keys"
        );
    }

    #[test]
    fn missing_dir_is_an_error() {
        let cfg = LimitsConfig {
            dir: PathBuf::from("/nonexistent/gonets-limits"),
            quick: true,
            seconds_each: Some(0.1),
            ways: None,
        };
        let e = measure(&cfg, &mut |_| {}).unwrap_err();
        assert!(e.contains("not a directory"), "{e}");
    }

    #[test]
    fn mountinfo_longest_prefix_wins() {
        let info = "27 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n\
                    30 27 0:27 / /mnt/my\\040disk rw,relatime shared:1 - xfs /dev/nvme0n1 rw\n\
                    31 27 0:28 / /mnt/myother rw - tmpfs tmpfs rw\n";
        let m = parse_mount(info, Path::new("/mnt/my disk/log")).unwrap();
        assert_eq!(
            (m.mount_point.as_str(), m.fs_type.as_str()),
            ("/mnt/my disk", "xfs")
        );
        assert_eq!(m.device, "/dev/nvme0n1");
        let m = parse_mount(info, Path::new("/mnt/myo")).unwrap();
        assert_eq!(m.mount_point, "/");
    }
}
