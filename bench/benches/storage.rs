//! Criterion micro-benchmarks of the storage log (`cargo bench -p gonets-bench
//! --bench storage`). Every benchmark owns one glommio executor and one log;
//! `iter_custom` runs the whole iteration loop inside that executor, so the
//! measured time is the log's, not the executor's start-up.
//!
//! Logs are never trimmed while measuring (removing files disturbs the
//! disk, see `BASE`); a full run writes a few GB, all removed at the end.
//!
//! Throughput benchmarks count one iteration per record (time/iter is the
//! time per record; records/s = 10^9 / ns), with decimal bytes of payload as
//! the throughput so MB/s compares with `gonets-loadgen limits --ways`.

use criterion::measurement::WallTime;
use criterion::{criterion_group, BenchmarkGroup, BenchmarkId, Criterion, Throughput};
use glommio::LocalExecutor;
use gonets_bench::{durability_name, now_ns, WorkDir};
use gonets_storage::{Durability, Log, LogConfig, Slot};
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const SIZES: [usize; 3] = [128, 1024, 4096];
const DURABILITIES: [Durability; 3] = [Durability::Dsync, Durability::Fdatasync, Durability::None];
/// Records per awaited commit in the single-stream shape.
const K: u64 = 64;
/// Producer tasks in the concurrent shape, each awaiting its own commit.
const PRODUCERS: u64 = 32;
/// Size of the log the read benchmark iterates.
const READ_LOG_BYTES: usize = 64 << 20;

/// Segment size: `GONETS_BENCH_SEGMENT_MIB` (set by `storage.sh
/// --segment-mib`), else the production default.
fn segment_bytes() -> u64 {
    std::env::var("GONETS_BENCH_SEGMENT_MIB")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .map_or(LogConfig::default().segment_size_bytes, |mib| mib << 20)
}

/// Where every log of this process goes; removed only when all benchmarks
/// are done: deleting a log of hundreds of MiB on a disk mounted with
/// `discard` slows fdatasync for seconds, which would leak into the
/// benchmarks that follow.
static BASE: OnceLock<PathBuf> = OnceLock::new();
static NEXT: AtomicUsize = AtomicUsize::new(0);

/// One executor and one open log.
struct Fixture {
    ex: LocalExecutor,
    log: Log,
}

impl Fixture {
    fn new(durability: Durability) -> Fixture {
        let base = BASE.get().expect("main sets the base directory");
        let dir = base.join(format!("log-{}", NEXT.fetch_add(1, Ordering::Relaxed)));
        let ex = gonets_bench::executor("bench").expect("executor");
        let config = LogConfig {
            durability,
            segment_size_bytes: segment_bytes(),
            ..LogConfig::default()
        };
        let (log, _) = ex.run(Log::open(dir, config)).expect("open log");
        Fixture { ex, log }
    }

    fn run<F: std::future::Future<Output = Duration>>(&self, f: F) -> Duration {
        self.ex.run(f)
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let log = self.log.clone();
        let _ = self.ex.run(async move { log.close().await });
    }
}

fn configure<'a>(c: &'a mut Criterion, name: &str) -> BenchmarkGroup<'a, WallTime> {
    let mut g = c.benchmark_group(name);
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    g
}

/// One producer streams appends and awaits a commit every K records.
fn stream_k64(c: &mut Criterion) {
    let mut g = configure(c, "append_commit_stream_k64");
    for d in DURABILITIES {
        for size in SIZES {
            let fx = Fixture::new(d);
            let payload = vec![0x61_u8; size];
            g.throughput(Throughput::BytesDecimal(size as u64));
            g.bench_function(BenchmarkId::new(durability_name(d), size), |b| {
                b.iter_custom(|iters| {
                    fx.run(async {
                        let started = Instant::now();
                        for i in 0..iters {
                            let o = fx.log.append(&payload, now_ns(), 0).await.unwrap();
                            if (i + 1) % K == 0 {
                                fx.log.commit(o).await.unwrap();
                            }
                        }
                        fx.log.commit_all().await.unwrap();
                        started.elapsed()
                    })
                })
            });
        }
    }
    g.finish();
}

/// PRODUCERS tasks each append one record and await its commit: the waits
/// of all of them share fdatasyncs (group commit as a server uses it).
fn concurrent(c: &mut Criterion) {
    let mut g = configure(c, "append_commit_concurrent32");
    for d in DURABILITIES {
        for size in SIZES {
            let fx = Fixture::new(d);
            let payload = Rc::new(vec![0x62_u8; size]);
            g.throughput(Throughput::BytesDecimal(size as u64));
            g.bench_function(BenchmarkId::new(durability_name(d), size), |b| {
                b.iter_custom(|iters| {
                    fx.run(async {
                        let started = Instant::now();
                        let tasks: Vec<_> = (0..PRODUCERS.min(iters))
                            .map(|t| {
                                // Split iters as evenly as possible among the tasks.
                                let n = iters / PRODUCERS.min(iters)
                                    + u64::from(t < iters % PRODUCERS.min(iters));
                                let (log, payload) = (fx.log.clone(), payload.clone());
                                glommio::spawn_local(async move {
                                    for _ in 0..n {
                                        let o = log.append(&payload, now_ns(), 0).await.unwrap();
                                        log.commit(o).await.unwrap();
                                    }
                                })
                            })
                            .collect();
                        for t in tasks {
                            t.await;
                        }
                        started.elapsed()
                    })
                })
            });
        }
    }
    g.finish();
}

/// One append, then wait for its commit, one at a time: time/iter is the
/// mean latency of a lone commit.
fn latency(c: &mut Criterion) {
    let mut g = configure(c, "append_commit_latency");
    for d in DURABILITIES {
        for size in SIZES {
            let fx = Fixture::new(d);
            let payload = vec![0x63_u8; size];
            g.bench_function(BenchmarkId::new(durability_name(d), size), |b| {
                b.iter_custom(|iters| {
                    fx.run(async {
                        let started = Instant::now();
                        for _ in 0..iters {
                            let o = fx.log.append(&payload, now_ns(), 0).await.unwrap();
                            fx.log.commit(o).await.unwrap();
                        }
                        started.elapsed()
                    })
                })
            });
        }
    }
    g.finish();
}

/// Sequential reads of a prebuilt log of 1 KiB records through `iter_from(0)`
/// (memory-mapped, every CRC checked); after the warm-up pass the pages are
/// in the page cache, so this is the read path's CPU cost.
fn read_seq(c: &mut Criterion) {
    let mut g = configure(c, "read_seq_iter");
    let fx = Fixture::new(Durability::Fdatasync);
    let payload = vec![0x64_u8; 1024];
    fx.ex.run(async {
        for _ in 0..READ_LOG_BYTES / 1024 {
            fx.log.append(&payload, now_ns(), 0).await.unwrap();
        }
        fx.log.commit_all().await.unwrap();
    });
    g.throughput(Throughput::BytesDecimal(1024));
    g.bench_function("1024", |b| {
        b.iter_custom(|iters| {
            let started = Instant::now();
            let mut left = iters;
            while left > 0 {
                for slot in fx.log.iter_from(0).take(left as usize) {
                    let Slot::Present(r) = slot else {
                        panic!("unexpected {slot:?}")
                    };
                    std::hint::black_box(r.payload());
                    left -= 1;
                }
            }
            started.elapsed()
        })
    });
    g.finish();
}

criterion_group!(benches, stream_k64, concurrent, latency, read_seq);

/// `criterion_main!` plus the work directory (`GONETS_BENCH_DIR`, else the
/// system temp dir), removed after the last benchmark.
fn main() {
    let base = std::env::var_os("GONETS_BENCH_DIR").map(PathBuf::from);
    let work = WorkDir::new(base.as_deref(), "gonets-bench-storage").expect("work dir");
    BASE.set(work.path.clone()).expect("set once");
    benches();
    Criterion::default().configure_from_args().final_summary();
    drop(work);
}
