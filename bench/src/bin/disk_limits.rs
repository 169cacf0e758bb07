//! disk-limits: this machine's raw disk limits, measured the ways the
//! storage design compares: (b) buffered writes through io_uring (glommio
//! `BufferedFile`), (c) O_DIRECT writes (glommio `DmaFile`) into blocks
//! preallocated with fallocate, and (d) O_DIRECT writes into blocks already
//! written once (zeros, not timed), which is how the log writes after its
//! background prewrite; each made durable by fdatasync, at increasing
//! positions. Reads are not measured (DMA reads returned EOPNOTSUPP on the
//! development VM).

use gonets_bench::{histogram, mb_per_s, record, summary, summary_line, write_json, Args, WorkDir};
use hdrhistogram::Histogram;
use serde_json::json;
use std::path::Path;
use std::time::{Duration, Instant};

const USAGE: &str =
    "usage: disk-limits [--dir DIR] [--mib N] [--file-mib N] [--iters N] [--json FILE]
  --dir DIR     directory on the disk to measure (default: the system temp dir)
  --mib N       MiB written by each sequential test, in 1 MiB chunks (default 256)
  --file-mib N  size of each preallocated file of the sequential test (default 64;
                on the development VM files above 128 MiB hit a slow ext4 path)
  --iters N     4 KiB write+fdatasync iterations per way (default 2000)
  --json FILE   also write the results as a JSON object to FILE";

const CHUNK: usize = 1 << 20;
const BLOCK: usize = 4096;
/// Iterations run before the 4 KiB latency test records, so the first
/// journal commit of a new file does not count as the disk's tail.
const WARMUP_ITERS: usize = 50;

#[derive(Clone, Copy)]
enum Way {
    Buffered,
    Direct,
    /// O_DIRECT into blocks already written once (zeros, untimed), as the
    /// log writes after its background prewrite: no extent conversion.
    Overwrite,
}

impl Way {
    fn name(self) -> &'static str {
        match self {
            Way::Buffered => "buffered",
            Way::Direct => "direct",
            Way::Overwrite => "overwrite",
        }
    }
}

/// Either kind of glommio file, so each test is written once.
enum File {
    Buffered(glommio::io::BufferedFile),
    Direct(glommio::io::DmaFile),
}

impl File {
    async fn create(way: Way, path: &Path, size: u64) -> Result<File, String> {
        let mut o = glommio::io::OpenOptions::new();
        o.create(true).truncate(true).write(true).read(true);
        let err = |e: glommio::GlommioError<()>| format!("{}: {e}", path.display());
        let f = match way {
            Way::Buffered => File::Buffered(o.buffered_open(path).await.map_err(err)?),
            Way::Direct | Way::Overwrite => File::Direct(o.dma_open(path).await.map_err(err)?),
        };
        let r = match &f {
            File::Buffered(b) => b.pre_allocate(size, false).await,
            File::Direct(d) => d.pre_allocate(size, false).await,
        };
        r.map_err(|e| format!("preallocate {}: {e}", path.display()))?;
        if let (Way::Overwrite, File::Direct(d)) = (way, &f) {
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
async fn latency(way: Way, dir: &Path, iters: usize) -> Result<Histogram<u64>, String> {
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
    way: Way,
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
    let ways = [Way::Buffered, Way::Direct, Way::Overwrite];
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

/// Memory copy bandwidth over buffers larger than the caches: the ceiling for
/// anything that copies payloads into batch buffers.
fn memcpy_gb_s() -> f64 {
    let size = 64 << 20;
    let src = vec![0xa5_u8; size];
    let mut dst = vec![0_u8; size];
    dst.copy_from_slice(&src); // fault the pages in before timing
    let rounds = 16;
    let started = Instant::now();
    for _ in 0..rounds {
        dst.copy_from_slice(std::hint::black_box(&src));
        std::hint::black_box(&mut dst);
    }
    (size * rounds) as f64 / started.elapsed().as_secs_f64() / 1e9
}

fn run() -> Result<(), String> {
    let usage = |e: String| format!("{e}\n{USAGE}");
    let args = Args::parse(&[
        ("dir", true),
        ("mib", true),
        ("file-mib", true),
        ("iters", true),
        ("json", true),
    ])
    .map_err(usage)?;
    let mib: u64 = args.bounded("mib", 256, 1 << 20).map_err(usage)?;
    let file_mib: u64 = args.bounded("file-mib", 64, 1 << 20).map_err(usage)?;
    let iters: usize = args.bounded("iters", 2000, 10_000_000).map_err(usage)?;
    let work = WorkDir::new(args.text("dir"), "gonets-disk-limits")?;
    let dir = work.path.clone();
    let ex = gonets_bench::executor("disk-limits")?;
    let [buffered, direct, overwrite] = ex.run(measure_all(&dir, mib, file_mib, iters))?;
    let memcpy = memcpy_gb_s();

    println!(
        "disk limits in {} ({mib} MiB sequential in {file_mib} MiB files, {iters} x 4 KiB)",
        dir.display()
    );
    println!(
        "{:<23} {:>9} | 4 KiB write+fdatasync, µs:\n{:<23} {:>9} | {:>9} {:>9} {:>9} {:>9}",
        "", "1 MiB seq", "way", "MB/s", "p50", "p99", "p99.9", "max"
    );
    for (label, r) in [
        ("(b) buffered io_uring", &buffered),
        ("(c) O_DIRECT io_uring", &direct),
        ("(d) O_DIRECT overwrite", &overwrite),
    ] {
        println!(
            "{label:<23} {:>9.1} | {}",
            mb_per_s(r.seq_bytes, r.seq_time),
            summary_line(&r.lat4k)
        );
    }
    println!("memcpy: {memcpy:.2} GB/s");

    let way_json = |r: &WayResult| {
        json!({
            "seq_mb_s": (mb_per_s(r.seq_bytes, r.seq_time) * 10.0).round() / 10.0,
            "seq_chunk_write_fdatasync": summary(&r.seq_chunks),
            "write4k_fdatasync": summary(&r.lat4k),
        })
    };
    let value = json!({
        "tool": "disk-limits",
        "dir": dir.display().to_string(),
        "seq_mib": mib,
        "seq_file_mib": file_mib,
        "chunk_bytes": CHUNK,
        "iters_4k": iters,
        "warmup_iters_4k": WARMUP_ITERS,
        "buffered": way_json(&buffered),
        "direct": way_json(&direct),
        "overwrite": way_json(&overwrite),
        "memcpy_gb_s": (memcpy * 100.0).round() / 100.0,
    });
    write_json(args.text("json"), &value)
}

fn main() {
    if let Err(e) = run() {
        eprintln!("disk-limits: {e}");
        std::process::exit(2);
    }
}
