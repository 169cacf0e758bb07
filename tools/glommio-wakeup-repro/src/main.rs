//! Reproducer for a glommio 0.9 executor that sleeps in `io_uring_enter`
//! although the work it waits for is done (docs/adr/0014).
//!
//! Workers, each a glommio executor on its own thread, run operations in a
//! loop and mark each one in flight in a shared `Probe`:
//! - `fsync`: a 4 KiB O_DIRECT write then `fdatasync` (io-wq in the kernel),
//!   and every 64 writes a new file (open, also io-wq);
//! - `channel`: a ping through a glommio shared channel to a second executor
//!   that answers on another (the foreign-wake eventfd path);
//! - `timer`: a 1 ms glommio timer (the latency ring's timeout path).
//!
//! A watchdog thread looks every millisecond. An operation in flight for
//! longer than `--stall-ms` is a stall: the watchdog reads the thread's
//! state and wait channel from /proc, then (unless `--no-nudge`) sends it
//! SIGURG, whose handler does nothing and is installed without SA_RESTART.
//! If the operation finishes within 5 ms of that signal, the work had been
//! done and the executor was asleep without knowing: a *rescued* (lost)
//! wake-up. Spinning threads (`--load`) add CPU pressure.

use std::fs;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use glommio::channels::shared_channel;
use glommio::io::DmaFile;
use glommio::{LocalExecutorBuilder, Placement};

struct Args {
    seconds: u64,
    stall_ms: u64,
    fsync_workers: usize,
    channel_pairs: usize,
    timer_workers: usize,
    load_threads: usize,
    nudge: bool,
    /// Control: at a stall, watch the same 5 ms window without a signal.
    sham: bool,
    dir: PathBuf,
}

fn parse_args() -> Args {
    let mut args = Args {
        seconds: 60,
        stall_ms: 200,
        fsync_workers: 2,
        channel_pairs: 1,
        timer_workers: 1,
        load_threads: 2,
        nudge: true,
        sham: false,
        dir: PathBuf::from("repro-data"),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().expect("flag needs a value");
        match flag.as_str() {
            "--seconds" => args.seconds = value().parse().expect("seconds"),
            "--stall-ms" => args.stall_ms = value().parse().expect("stall-ms"),
            "--fsync" => args.fsync_workers = value().parse().expect("fsync"),
            "--channel" => args.channel_pairs = value().parse().expect("channel"),
            "--timer" => args.timer_workers = value().parse().expect("timer"),
            "--load" => args.load_threads = value().parse().expect("load"),
            "--dir" => args.dir = PathBuf::from(value()),
            "--no-nudge" => args.nudge = false,
            "--sham-nudge" => args.sham = true,
            other => panic!("unknown flag {other}; see README.md"),
        }
    }
    args
}

/// One worker's operation in flight, seen by the watchdog.
struct Probe {
    name: String,
    tid: AtomicI32,
    /// Start of the operation in flight, ns since `EPOCH`; 0 when none.
    since_ns: AtomicU64,
    ops: AtomicU64,
    over_10ms: AtomicU64,
    max_ns: AtomicU64,
    stalls: AtomicU64,
    rescued: AtomicU64,
    rescued_max_ns: AtomicU64,
}

static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();

fn now_ns() -> u64 {
    EPOCH.get_or_init(Instant::now).elapsed().as_nanos() as u64 + 1
}

impl Probe {
    fn new(name: String) -> Arc<Self> {
        Arc::new(Probe {
            name,
            tid: AtomicI32::new(0),
            since_ns: AtomicU64::new(0),
            ops: AtomicU64::new(0),
            over_10ms: AtomicU64::new(0),
            max_ns: AtomicU64::new(0),
            stalls: AtomicU64::new(0),
            rescued: AtomicU64::new(0),
            rescued_max_ns: AtomicU64::new(0),
        })
    }

    fn register_thread(&self) {
        // SAFETY: gettid has no preconditions.
        self.tid.store(unsafe { libc::gettid() }, Ordering::SeqCst);
    }

    fn begin(&self) {
        self.since_ns.store(now_ns(), Ordering::SeqCst);
    }

    fn end(&self) {
        let took = now_ns() - self.since_ns.swap(0, Ordering::SeqCst);
        self.ops.fetch_add(1, Ordering::SeqCst);
        self.max_ns.fetch_max(took, Ordering::SeqCst);
        if took > 10_000_000 {
            self.over_10ms.fetch_add(1, Ordering::SeqCst);
        }
    }
}

fn executor(name: &str) -> LocalExecutorBuilder {
    LocalExecutorBuilder::new(Placement::Unbound)
        .name(name)
        // As gonets' shards: reap completions at least every millisecond.
        .preempt_timer(Duration::from_millis(1))
}

fn spawn_fsync_worker(probe: Arc<Probe>, dir: PathBuf, stop: Arc<AtomicBool>) {
    let name = probe.name.clone();
    executor(&name)
        .spawn(move || async move {
            probe.register_thread();
            let mut generation = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let path = dir.join(format!("{name}-{}", generation % 4));
                generation += 1;
                probe.begin();
                let file = DmaFile::create(&path).await.expect("create");
                probe.end();
                for i in 0..64u64 {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let mut buf = file.alloc_dma_buffer(4096);
                    buf.as_bytes_mut().fill(i as u8);
                    probe.begin();
                    file.write_at(buf, i * 4096).await.expect("write");
                    file.fdatasync().await.expect("fdatasync");
                    probe.end();
                }
                file.close().await.expect("close");
            }
        })
        .expect("fsync executor");
}

fn spawn_channel_pair(probe: Arc<Probe>, stop: Arc<AtomicBool>) {
    let (ping_tx, ping_rx) = shared_channel::new_bounded::<u64>(16);
    let (pong_tx, pong_rx) = shared_channel::new_bounded::<u64>(16);
    let name = probe.name.clone();
    let stop_echo = stop.clone();
    executor(&format!("{name}-echo"))
        .spawn(move || async move {
            let ping_rx = ping_rx.connect().await;
            let pong_tx = pong_tx.connect().await;
            while let Some(n) = ping_rx.recv().await {
                if pong_tx.send(n).await.is_err() || stop_echo.load(Ordering::Relaxed) {
                    break;
                }
            }
        })
        .expect("echo executor");
    executor(&name)
        .spawn(move || async move {
            probe.register_thread();
            // Connecting waits for the peer executor: an operation too.
            probe.begin();
            let ping_tx = ping_tx.connect().await;
            let pong_rx = pong_rx.connect().await;
            probe.end();
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                probe.begin();
                ping_tx.send(n).await.expect("ping");
                let back = pong_rx.recv().await.expect("pong");
                probe.end();
                assert_eq!(back, n);
                // Let both executors fall asleep before the next ping.
                glommio::timer::sleep(Duration::from_micros(200 + (n % 7) * 150)).await;
            }
        })
        .expect("channel executor");
}

fn spawn_timer_worker(probe: Arc<Probe>, stop: Arc<AtomicBool>) {
    let name = probe.name.clone();
    executor(&name)
        .spawn(move || async move {
            probe.register_thread();
            while !stop.load(Ordering::Relaxed) {
                probe.begin();
                glommio::timer::sleep(Duration::from_millis(1)).await;
                probe.end();
            }
        })
        .expect("timer executor");
}

extern "C" fn on_nudge(_: libc::c_int) {}

fn install_nudge_handler() {
    // SAFETY: a handler that does nothing, without SA_RESTART, so that a
    // blocking io_uring_enter returns EINTR.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_nudge as *const () as usize;
        libc::sigemptyset(&mut action.sa_mask);
        libc::sigaction(libc::SIGURG, &action, std::ptr::null_mut());
    }
}

fn thread_state(tid: i32) -> (String, String) {
    let stat = fs::read_to_string(format!("/proc/self/task/{tid}/stat")).unwrap_or_default();
    let state = stat
        .rsplit(')')
        .next()
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or("?")
        .to_string();
    let wchan = fs::read_to_string(format!("/proc/self/task/{tid}/wchan")).unwrap_or_default();
    (state, wchan)
}

/// Prints the kernel's view of every io_uring in the process (with one
/// executor: main, poll and latency ring, in the order glommio makes them).
fn print_rings() {
    let Ok(fds) = fs::read_dir("/proc/self/fd") else {
        return;
    };
    let mut rings: Vec<u32> = fds
        .flatten()
        .filter(|fd| {
            fs::read_link(fd.path())
                .map(|target| target.to_string_lossy().contains("io_uring"))
                .unwrap_or(false)
        })
        .filter_map(|fd| fd.file_name().to_str()?.parse().ok())
        .collect();
    rings.sort_unstable();
    for fd in rings {
        let info = fs::read_to_string(format!("/proc/self/fdinfo/{fd}")).unwrap_or_default();
        let wanted = ["SqHead", "SqTail", "CqHead", "CqTail", "  op="];
        let lines: Vec<&str> = info
            .lines()
            .filter(|l| wanted.iter().any(|w| l.starts_with(w)))
            .map(str::trim)
            .collect();
        println!("  ring fd {fd}: {}", lines.join(" "));
    }
}

/// Looks at one probe; returns the op number it last handled.
fn watch(probe: &Probe, stall_ns: u64, args: &Args, handled_op: u64) -> u64 {
    let since = probe.since_ns.load(Ordering::SeqCst);
    let ops = probe.ops.load(Ordering::SeqCst);
    if since == 0 || ops == handled_op || now_ns().saturating_sub(since) < stall_ns {
        return handled_op;
    }
    let tid = probe.tid.load(Ordering::SeqCst);
    let (state, wchan) = thread_state(tid);
    let age_ms = (now_ns() - since) as f64 / 1e6;
    probe.stalls.fetch_add(1, Ordering::SeqCst);
    if !args.nudge {
        println!(
            "STALL {} in flight {age_ms:.1} ms, thread {state} in {wchan}",
            probe.name
        );
        print_rings();
        return ops;
    }
    if !args.sham {
        // SAFETY: tgkill to a thread of this process.
        unsafe { libc::syscall(libc::SYS_tgkill, libc::getpid(), tid, libc::SIGURG) };
    }
    let nudged = Instant::now();
    while nudged.elapsed() < Duration::from_millis(5) {
        if probe.ops.load(Ordering::SeqCst) != ops {
            probe.rescued.fetch_add(1, Ordering::SeqCst);
            probe
                .rescued_max_ns
                .fetch_max((age_ms * 1e6) as u64, Ordering::SeqCst);
            println!(
                "RESCUED {}: in flight {age_ms:.1} ms, thread {state} in {wchan}; done {} us after one SIGURG",
                probe.name,
                nudged.elapsed().as_micros()
            );
            return ops;
        }
        std::hint::spin_loop();
    }
    println!(
        "SLOW {}: in flight {age_ms:.1} ms, thread {state} in {wchan}; a SIGURG did not finish it",
        probe.name
    );
    ops
}

fn main() {
    let args = parse_args();
    install_nudge_handler();
    now_ns();
    fs::create_dir_all(&args.dir).expect("data dir");
    let stop = Arc::new(AtomicBool::new(false));
    let mut probes = Vec::new();
    for i in 0..args.fsync_workers {
        let probe = Probe::new(format!("fsync{i}"));
        spawn_fsync_worker(probe.clone(), args.dir.clone(), stop.clone());
        probes.push(probe);
    }
    for i in 0..args.channel_pairs {
        let probe = Probe::new(format!("channel{i}"));
        spawn_channel_pair(probe.clone(), stop.clone());
        probes.push(probe);
    }
    for i in 0..args.timer_workers {
        let probe = Probe::new(format!("timer{i}"));
        spawn_timer_worker(probe.clone(), stop.clone());
        probes.push(probe);
    }
    for _ in 0..args.load_threads {
        let stop = stop.clone();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                std::hint::spin_loop();
            }
        });
    }
    let stall_ns = args.stall_ms * 1_000_000;
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let mut handled = vec![u64::MAX; probes.len()];
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
        for (probe, handled_op) in probes.iter().zip(handled.iter_mut()) {
            *handled_op = watch(probe, stall_ns, &args, *handled_op);
        }
    }
    stop.store(true, Ordering::SeqCst);
    report(&args, &probes);
    let _ = fs::remove_dir_all(&args.dir);
    // The executors may be asleep for good (--no-nudge): do not join them.
    std::process::exit(0);
}

fn report(args: &Args, probes: &[Arc<Probe>]) {
    println!(
        "{} s, stall bound {} ms, {} spinning threads, nudge {}",
        args.seconds,
        args.stall_ms,
        args.load_threads,
        match (args.nudge, args.sham) {
            (false, _) => "off",
            (true, false) => "on",
            (true, true) => "sham (no signal: a RESCUED line is chance)",
        }
    );
    let mut rescued_total = 0;
    let mut stuck_total = 0;
    for p in probes {
        let since = p.since_ns.load(Ordering::SeqCst);
        let age_ms = (now_ns() - since) as f64 / 1e6;
        if since != 0 && age_ms > args.stall_ms as f64 {
            stuck_total += 1;
            let (state, wchan) = thread_state(p.tid.load(Ordering::SeqCst));
            println!(
                "STUCK {}: in flight {age_ms:.0} ms at the end, thread {state} in {wchan}",
                p.name
            );
        }
        let rescued = p.rescued.load(Ordering::SeqCst);
        rescued_total += rescued;
        println!(
            "{:10} ops {:>9}  >10ms {:>6}  max {:>9.1} ms  stalls {:>3}  rescued {:>3} (longest {:.1} ms)",
            p.name,
            p.ops.load(Ordering::SeqCst),
            p.over_10ms.load(Ordering::SeqCst),
            p.max_ns.load(Ordering::SeqCst) as f64 / 1e6,
            p.stalls.load(Ordering::SeqCst),
            rescued,
            p.rescued_max_ns.load(Ordering::SeqCst) as f64 / 1e6,
        );
    }
    println!("lost wake-ups rescued: {rescued_total}; operations stuck at the end: {stuck_total}");
}
