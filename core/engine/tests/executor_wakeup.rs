//! glommio executors wake for their work: none sleeps in `io_uring_enter`
//! with a task ready (docs/adr/0014, tools/glommio-wakeup-repro).
//!
//! Upstream glommio 0.9 parks with a task ready when a latency-ring event
//! preempts it before its first task queue runs; the task then waits until
//! something unrelated wakes the thread (minutes). These executors run
//! with the shards' 1 ms preemption timer and no SIGURG nudge, doing the
//! three kinds of work that showed it: timers, cross-executor channel
//! wake-ups and O_DIRECT write + fdatasync. Each operation in flight longer
//! than its bound fails the test. Against upstream 0.9 this fails in most
//! runs (the reproducer saw an executor stuck about every 10-20 executor
//! seconds); against the patched copy it must never fail.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use glommio::channels::shared_channel;
use glommio::io::DmaFile;
use glommio::{LocalExecutorBuilder, Placement};

/// How long the executors work, ms.
const RUN_MS: u64 = 5_000;
/// A timer or channel round trip in flight longer than this is a lost
/// wake-up, ms: both take about 1 ms; the rest is room for a loaded CI box.
const CPU_BOUND_MS: u64 = 2_000;
/// The same for a 4 KiB write + fdatasync, ms (the VM's disk has taken
/// 0.4 s; a lost wake-up lasts until something else wakes the thread).
const DISK_BOUND_MS: u64 = 10_000;
/// How long an overdue operation is watched again before it counts, ms.
const CONFIRM_MS: u64 = 500;
const TIMER_EXECUTORS: usize = 4;

/// One executor's operation in flight, seen from the test thread.
struct Probe {
    name: &'static str,
    bound_ms: u64,
    /// Start of the operation in flight, µs since the test began; 0 when none.
    since_us: AtomicU64,
    ops: AtomicU64,
    finished: AtomicBool,
}

impl Probe {
    fn new(name: &'static str, bound_ms: u64) -> Arc<Self> {
        Arc::new(Probe {
            name,
            bound_ms,
            since_us: AtomicU64::new(0),
            ops: AtomicU64::new(0),
            finished: AtomicBool::new(false),
        })
    }

    fn begin(&self, epoch: Instant) {
        self.since_us
            .store(epoch.elapsed().as_micros() as u64 + 1, Ordering::SeqCst);
    }

    fn end(&self) {
        self.since_us.store(0, Ordering::SeqCst);
        self.ops.fetch_add(1, Ordering::SeqCst);
    }

    /// How long the operation in flight has been, ms (0 when none).
    fn in_flight_ms(&self, epoch: Instant) -> u64 {
        match self.since_us.load(Ordering::SeqCst) {
            0 => 0,
            since => (epoch.elapsed().as_micros() as u64).saturating_sub(since) / 1_000,
        }
    }
}

fn builder(name: &str) -> LocalExecutorBuilder {
    // As the hub's shards (hub.rs): unpinned here, 1 ms preemption timer.
    LocalExecutorBuilder::new(Placement::Unbound)
        .name(name)
        .preempt_timer(Duration::from_millis(1))
}

fn spawn_timer(probe: Arc<Probe>, stop: Arc<AtomicBool>, epoch: Instant) {
    builder(probe.name)
        .spawn(move || async move {
            while !stop.load(Ordering::Relaxed) {
                probe.begin(epoch);
                glommio::timer::sleep(Duration::from_millis(1)).await;
                probe.end();
            }
            probe.finished.store(true, Ordering::SeqCst);
        })
        .expect("timer executor");
}

fn spawn_channel_pair(probe: Arc<Probe>, stop: Arc<AtomicBool>, epoch: Instant) {
    let (ping_tx, ping_rx) = shared_channel::new_bounded::<u64>(4);
    let (pong_tx, pong_rx) = shared_channel::new_bounded::<u64>(4);
    builder("wakeup-echo")
        .spawn(move || async move {
            let ping_rx = ping_rx.connect().await;
            let pong_tx = pong_tx.connect().await;
            while let Some(n) = ping_rx.recv().await {
                if pong_tx.send(n).await.is_err() {
                    break;
                }
            }
        })
        .expect("echo executor");
    builder(probe.name)
        .spawn(move || async move {
            probe.begin(epoch);
            let ping_tx = ping_tx.connect().await;
            let pong_rx = pong_rx.connect().await;
            probe.end();
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                probe.begin(epoch);
                ping_tx.send(n).await.expect("ping");
                assert_eq!(pong_rx.recv().await, Some(n));
                probe.end();
                // Both executors fall asleep before the next ping.
                glommio::timer::sleep(Duration::from_micros(300)).await;
            }
            // Dropping the sender ends the echo executor.
            probe.finished.store(true, Ordering::SeqCst);
        })
        .expect("channel executor");
}

fn spawn_fsync(probe: Arc<Probe>, stop: Arc<AtomicBool>, epoch: Instant, dir: &std::path::Path) {
    let path = dir.join("wakeup-fsync");
    builder(probe.name)
        .spawn(move || async move {
            let file = DmaFile::create(&path).await.expect("create");
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let mut buf = file.alloc_dma_buffer(4096);
                buf.as_bytes_mut().fill(i as u8);
                probe.begin(epoch);
                file.write_at(buf, (i % 64) * 4096).await.expect("write");
                file.fdatasync().await.expect("fdatasync");
                probe.end();
                i += 1;
            }
            file.close().await.expect("close");
            probe.finished.store(true, Ordering::SeqCst);
        })
        .expect("fsync executor");
}

/// The first operation found in flight past its bound and still in flight
/// `CONFIRM_MS` later, as a message. The second look tells a lost wake-up
/// (it stays) from a pause of the whole machine, which this shared VM has
/// shown (every thread of a process idle 14 s at once): after such a pause
/// the operation finishes at once.
fn overdue(probes: &[Arc<Probe>], epoch: Instant) -> Option<String> {
    let (probe, ms) = probes.iter().find_map(|p| {
        let ms = p.in_flight_ms(epoch);
        (ms > p.bound_ms).then_some((p, ms))
    })?;
    let (since, ops) = (
        probe.since_us.load(Ordering::SeqCst),
        probe.ops.load(Ordering::SeqCst),
    );
    std::thread::sleep(Duration::from_millis(CONFIRM_MS));
    let still =
        probe.since_us.load(Ordering::SeqCst) == since && probe.ops.load(Ordering::SeqCst) == ops;
    still.then(|| {
        format!(
            "executor {} slept with its work ready: one operation in flight {ms} ms \
             (bound {} ms), and {CONFIRM_MS} ms later still, after {ops} done",
            probe.name, probe.bound_ms
        )
    })
}

#[test]
fn given_executors_with_timers_channels_and_fdatasync_when_they_run_then_none_sleeps_with_work_ready(
) {
    let dir = tempfile::tempdir().expect("tempdir");
    let epoch = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let names = [
        "wakeup-timer-0",
        "wakeup-timer-1",
        "wakeup-timer-2",
        "wakeup-timer-3",
    ];
    let mut probes = Vec::new();
    for name in names.into_iter().take(TIMER_EXECUTORS) {
        let probe = Probe::new(name, CPU_BOUND_MS);
        spawn_timer(probe.clone(), stop.clone(), epoch);
        probes.push(probe);
    }
    let channel = Probe::new("wakeup-channel", CPU_BOUND_MS);
    spawn_channel_pair(channel.clone(), stop.clone(), epoch);
    probes.push(channel);
    let fsync = Probe::new("wakeup-fsync", DISK_BOUND_MS);
    spawn_fsync(fsync.clone(), stop.clone(), epoch, dir.path());
    probes.push(fsync);

    let mut failure = None;
    while failure.is_none() && epoch.elapsed() < Duration::from_millis(RUN_MS) {
        std::thread::sleep(Duration::from_millis(5));
        failure = overdue(&probes, epoch);
    }
    stop.store(true, Ordering::SeqCst);
    // A stuck executor never finishes: wait for each within its bound.
    let stopped = Instant::now();
    while failure.is_none() && probes.iter().any(|p| !p.finished.load(Ordering::SeqCst)) {
        std::thread::sleep(Duration::from_millis(5));
        failure = overdue(&probes, epoch);
        assert!(
            stopped.elapsed() < Duration::from_millis(2 * DISK_BOUND_MS),
            "an executor neither finished nor showed an operation in flight"
        );
    }
    // Executors stuck for good are left behind: the process ends with the test.
    if let Some(failure) = failure {
        panic!("{failure}");
    }
    for p in &probes {
        assert!(p.ops.load(Ordering::SeqCst) > 0, "{} did no work", p.name);
    }
}
