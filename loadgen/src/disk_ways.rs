//! The write ways the storage design weighs (`limits --ways`; formerly
//! `bench`'s `disk-limits`), all through glommio's io_uring, all made
//! durable by `fdatasync`, all into files preallocated with `fallocate`
//! (as segments are): (b) buffered (`BufferedFile`), (c) O_DIRECT
//! (`DmaFile`) into unwritten blocks, and (d) O_DIRECT into blocks already
//! written once (zeros, not timed), which is how the log writes after its
//! background prewrite. For each: the latency of a 4 KiB write +
//! `fdatasync` at fresh positions, then 1 MiB chunks each followed by
//! `fdatasync`. Latency first; no file is removed until the caller drops
//! the directory (deleting hundreds of MiB on a disk mounted with `discard`
//! slows every fdatasync for seconds). Reads are not measured (DMA reads
//! returned EOPNOTSUPP on the development VM).

use hdrhistogram::Histogram;
use serde::Serialize;
use std::path::Path;
use std::time::{Duration, Instant};

/// How much each way writes.
#[derive(Clone, Debug)]
pub struct WaysConfig {
    /// MiB written by each sequential test, in 1 MiB chunks.
    pub mib: u64,
    /// Size of each preallocated file of the sequential test, MiB (on the
    /// development VM files above 128 MiB hit a slow ext4 path).
    pub file_mib: u64,
    /// 4 KiB write + fdatasync iterations per way.
    pub iters: usize,
}

impl Default for WaysConfig {
    fn default() -> Self {
        WaysConfig {
            mib: 256,
            file_mib: 64,
            iters: 2000,
        }
    }
}

/// Latency quantiles, µs (0.1 µs resolution), and the count.
#[derive(Clone, Debug, Serialize)]
pub struct Quantiles {
    /// Operations timed.
    pub count: u64,
    /// Median, µs.
    pub p50_us: f64,
    /// 99th percentile, µs.
    pub p99_us: f64,
    /// 99.9th percentile, µs.
    pub p999_us: f64,
    /// Slowest, µs.
    pub max_us: f64,
    /// Mean, µs.
    pub mean_us: f64,
}

impl Quantiles {
    fn of(h: &Histogram<u64>) -> Quantiles {
        Quantiles {
            count: h.len(),
            p50_us: us(h.value_at_quantile(0.50)),
            p99_us: us(h.value_at_quantile(0.99)),
            p999_us: us(h.value_at_quantile(0.999)),
            max_us: us(h.max()),
            mean_us: (h.mean() / 100.0).round() / 10.0,
        }
    }
}

/// One way's figures.
#[derive(Clone, Debug, Serialize)]
pub struct Way {
    /// 1 MiB write + fdatasync, sequential, MB/s (10^6 bytes).
    pub seq_mb_s: f64,
    /// Each 1 MiB chunk's write + fdatasync.
    pub seq_chunk_write_fdatasync: Quantiles,
    /// One 4 KiB write + fdatasync at a fresh position.
    pub write4k_fdatasync: Quantiles,
}

/// The three ways' figures.
#[derive(Clone, Debug, Serialize)]
pub struct Ways {
    /// MiB written by each sequential test.
    pub seq_mib: u64,
    /// Size of each preallocated file of the sequential test, MiB.
    pub seq_file_mib: u64,
    /// Bytes per sequential write.
    pub chunk_bytes: usize,
    /// 4 KiB iterations timed per way.
    pub iters_4k: usize,
    /// 4 KiB iterations run first, untimed.
    pub warmup_iters_4k: usize,
    /// (b) buffered io_uring.
    pub buffered: Way,
    /// (c) O_DIRECT io_uring into unwritten blocks.
    pub direct: Way,
    /// (d) O_DIRECT io_uring over blocks written once.
    pub overwrite: Way,
}

impl Ways {
    /// A table, one line per way.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "write ways through io_uring ({} MiB sequential in {} MiB files, {} x 4 KiB):\n{:<23} {:>9} | 4 KiB write+fdatasync, µs:\n{:<23} {:>9} | {:>9} {:>9} {:>9} {:>9}",
            self.seq_mib, self.seq_file_mib, self.iters_4k, "", "1 MiB seq", "way", "MB/s", "p50", "p99", "p99.9", "max"
        );
        for (label, w) in [
            ("(b) buffered io_uring", &self.buffered),
            ("(c) O_DIRECT io_uring", &self.direct),
            ("(d) O_DIRECT overwrite", &self.overwrite),
        ] {
            let q = &w.write4k_fdatasync;
            s += &format!(
                "\n{label:<23} {:>9.1} | {:>9.1} {:>9.1} {:>9.1} {:>9.1}",
                w.seq_mb_s, q.p50_us, q.p99_us, q.p999_us, q.max_us
            );
        }
        s
    }
}

/// Microseconds, rounded to 0.1 µs.
fn us(ns: u64) -> f64 {
    (ns as f64 / 100.0).round() / 10.0
}

/// A latency histogram in nanoseconds, 1 ns to 100 s, 3 significant digits.
fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 100_000_000_000, 3).expect("valid histogram bounds")
}

fn record(h: &mut Histogram<u64>, d: Duration) {
    h.saturating_record(d.as_nanos().min(u64::MAX as u128) as u64);
}

/// MB/s with MB = 10^6 bytes, as disk vendors and `dd` count.
fn mb_per_s(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / d.as_secs_f64() / 1e6
}

/// Measures the three ways in `dir` (which the caller removes afterwards),
/// on a glommio executor started on this thread.
pub fn measure(dir: &Path, cfg: &WaysConfig) -> Result<Ways, String> {
    if cfg.mib == 0 || cfg.file_mib == 0 || cfg.iters == 0 {
        return Err("limits: --ways-mib, --ways-file-mib and --ways-iters must be positive".into());
    }
    let ex = glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .name("limits-ways")
        .make()
        .map_err(|e| {
            format!(
                "limits: cannot start a glommio executor: {e} \
                 (is io_uring allowed? try `ulimit -l unlimited` as root)"
            )
        })?;
    let [buffered, direct, overwrite] =
        ex.run(measure_all(dir, cfg.mib, cfg.file_mib, cfg.iters))?;
    let way = |r: WayResult| Way {
        seq_mb_s: (mb_per_s(r.seq_bytes, r.seq_time) * 10.0).round() / 10.0,
        seq_chunk_write_fdatasync: Quantiles::of(&r.seq_chunks),
        write4k_fdatasync: Quantiles::of(&r.lat4k),
    };
    Ok(Ways {
        seq_mib: cfg.mib,
        seq_file_mib: cfg.file_mib,
        chunk_bytes: CHUNK,
        iters_4k: cfg.iters,
        warmup_iters_4k: WARMUP_ITERS,
        buffered: way(buffered),
        direct: way(direct),
        overwrite: way(overwrite),
    })
}

const CHUNK: usize = 1 << 20;
const BLOCK: usize = 4096;
/// Iterations run before the 4 KiB latency test records, so the first
/// journal commit of a new file does not count as the disk's tail.
const WARMUP_ITERS: usize = 50;

#[derive(Clone, Copy)]
enum WayKind {
    Buffered,
    Direct,
    /// O_DIRECT into blocks already written once (zeros, untimed), as the
    /// log writes after its background prewrite: no extent conversion.
    Overwrite,
}

impl WayKind {
    fn name(self) -> &'static str {
        match self {
            WayKind::Buffered => "buffered",
            WayKind::Direct => "direct",
            WayKind::Overwrite => "overwrite",
        }
    }
}

/// Either kind of glommio file, so each test is written once.
enum File {
    Buffered(glommio::io::BufferedFile),
    Direct(glommio::io::DmaFile),
}

impl File {
    async fn create(way: WayKind, path: &Path, size: u64) -> Result<File, String> {
        let mut o = glommio::io::OpenOptions::new();
        o.create(true).truncate(true).write(true).read(true);
        let err = |e: glommio::GlommioError<()>| format!("{}: {e}", path.display());
        let f = match way {
            WayKind::Buffered => File::Buffered(o.buffered_open(path).await.map_err(err)?),
            WayKind::Direct | WayKind::Overwrite => {
                File::Direct(o.dma_open(path).await.map_err(err)?)
            }
        };
        let r = match &f {
            File::Buffered(b) => b.pre_allocate(size, false).await,
            File::Direct(d) => d.pre_allocate(size, false).await,
        };
        r.map_err(|e| format!("preallocate {}: {e}", path.display()))?;
        if let (WayKind::Overwrite, File::Direct(d)) = (way, &f) {
            let mut pos = 0;
            while pos < size {
                let len = (CHUNK as u64).min(size - pos) as usize;
                let mut buf = d.alloc_dma_buffer(len);
                buf.as_bytes_mut().fill(0);
                d.write_at(buf, pos)
                    .await
                    .map_err(|e| format!("zero {}: {e}", path.display()))?;
                pos += len as u64;
            }
            d.fdatasync()
                .await
                .map_err(|e| format!("fdatasync {}: {e}", path.display()))?;
        }
        Ok(f)
    }

    /// Writes `len` bytes at `pos` and fdatasyncs; only the write and the sync
    /// are timed (preparing the buffer is not the disk's cost).
    async fn write_sync(&self, pos: u64, len: usize) -> Result<Duration, String> {
        let (n, started) = match self {
            File::Buffered(f) => {
                let buf = vec![0x5a_u8; len];
                let started = Instant::now();
                (f.write_at(buf, pos).await, started)
            }
            File::Direct(f) => {
                let mut buf = glommio::allocate_dma_buffer(len);
                buf.as_bytes_mut().fill(0x5a);
                let started = Instant::now();
                (f.write_at(buf, pos).await, started)
            }
        };
        match n {
            Ok(n) if n == len => {}
            Ok(n) => return Err(format!("short write: {n} of {len} bytes")),
            Err(e) => return Err(format!("write: {e}")),
        }
        let r = match self {
            File::Buffered(f) => f.fdatasync().await,
            File::Direct(f) => f.fdatasync().await,
        };
        r.map_err(|e| format!("fdatasync: {e}"))?;
        Ok(started.elapsed())
    }

    async fn close(self) {
        let _ = match self {
            File::Buffered(f) => f.close().await,
            File::Direct(f) => f.close().await,
        };
    }
}

struct WayResult {
    seq_bytes: u64,
    seq_time: Duration,
    seq_chunks: Histogram<u64>,
    lat4k: Histogram<u64>,
}

/// 4 KiB at fresh positions, each made durable, as a lone commit is.
async fn latency(way: WayKind, dir: &Path, iters: usize) -> Result<Histogram<u64>, String> {
    let path = dir.join(format!("lat-{}.dat", way.name()));
    let f = File::create(way, &path, ((iters + WARMUP_ITERS) * BLOCK) as u64).await?;
    let mut lat4k = histogram();
    for i in 0..iters + WARMUP_ITERS {
        let d = f.write_sync((i * BLOCK) as u64, BLOCK).await?;
        if i >= WARMUP_ITERS {
            record(&mut lat4k, d);
        }
    }
    f.close().await;
    Ok(lat4k)
}

/// 1 MiB chunks, each made durable before the next, into preallocated files
/// of `file_mib` MiB (a new file when one is full). Returns time and chunk
/// latencies.
async fn sequential(
    way: WayKind,
    dir: &Path,
    mib: u64,
    file_mib: u64,
) -> Result<(Duration, Histogram<u64>), String> {
    let mut seq_chunks = histogram();
    let mut seq_time = Duration::ZERO;
    let (mut written, mut n) = (0, 0);
    while written < mib {
        let path = dir.join(format!("seq-{}-{n}.dat", way.name()));
        let len = file_mib.min(mib - written);
        let f = File::create(way, &path, len * CHUNK as u64).await?;
        for i in 0..len {
            let d = f.write_sync(i * CHUNK as u64, CHUNK).await?;
            seq_time += d;
            record(&mut seq_chunks, d);
        }
        f.close().await;
        written += len;
        n += 1;
    }
    Ok((seq_time, seq_chunks))
}

/// Latency tests first, then throughput; no file is removed until the end
/// (the work directory's drop): on the development VM (ext4 mounted with
/// `discard`) deleting hundreds of MiB slows every fdatasync for about ten
/// seconds afterwards, which would leak into the next test.
async fn measure_all(
    dir: &Path,
    mib: u64,
    file_mib: u64,
    iters: usize,
) -> Result<[WayResult; 3], String> {
    let ways = [WayKind::Buffered, WayKind::Direct, WayKind::Overwrite];
    let mut lat = vec![];
    for way in ways {
        lat.push(latency(way, dir, iters).await?);
    }
    let mut out = vec![];
    for (way, lat4k) in ways.into_iter().zip(lat) {
        let (seq_time, seq_chunks) = sequential(way, dir, mib, file_mib).await?;
        out.push(WayResult {
            seq_bytes: mib * CHUNK as u64,
            seq_time,
            seq_chunks,
            lat4k,
        });
    }
    let [b, c, d]: [WayResult; 3] = out.try_into().map_err(|_| "three ways".to_string())?;
    Ok([b, c, d])
}
