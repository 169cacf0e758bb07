//! glommio's rings post completions cooperatively (IORING_SETUP_COOP_TASKRUN,
//! docs/adr/0029): a completion that arrives while the executor's thread runs
//! no longer interrupts it, and is posted at the thread's next entry into
//! the kernel. Two checks: the flag is on wherever the kernel has it, and a
//! busy executor still sees a completion that arrived while it ran (its
//! preemption timer's interrupt posts it), within a bound.

use std::io::Write;
use std::net::TcpListener;
use std::time::{Duration, Instant};

use futures_lite::AsyncReadExt;
use glommio::{LocalExecutorBuilder, Placement};

/// The shards' preemption timer, ms (`PREEMPT_TIMER_MS` in the hub).
const PREEMPT_TIMER_MS: u64 = 1;
/// How long the busy task keeps the executor's CPU, ms.
const BUSY_MS: u64 = 400;
/// When the peer sends, ms after the busy task began.
const SEND_AFTER_MS: u64 = 50;
/// The longest the byte may wait to be read, ms: about one preemption
/// timer (or one scheduler tick, 4 ms at HZ=250, where the timer fired on
/// another CPU); the rest is room for a loaded CI machine. Far under
/// `BUSY_MS - SEND_AFTER_MS`: a completion left unposted until the busy
/// task ends would fail it.
const READ_BOUND_MS: u64 = 150;

/// (major, minor) of the running kernel, from `uname -r`.
fn kernel_version() -> (u32, u32) {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").expect("osrelease");
    let mut parts = release
        .trim()
        .split(|c: char| !c.is_ascii_digit())
        .filter(|p| !p.is_empty())
        .map(|p| p.parse::<u32>().expect("a number"));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}

#[test]
fn given_a_kernel_with_coop_taskrun_when_an_executor_starts_then_its_rings_use_it() {
    let coop = LocalExecutorBuilder::new(Placement::Unbound)
        .spawn(|| async { glommio::executor().cooperative_task_run() })
        .expect("executor")
        .join()
        .expect("executor thread");
    // COOP_TASKRUN came with Linux 5.19; older kernels refuse it and get a
    // plain ring.
    let expected = kernel_version() >= (5, 19);
    assert_eq!(coop, expected, "kernel {:?}", kernel_version());
}

#[test]
fn given_a_busy_executor_when_a_socket_read_completes_then_the_reader_runs_within_a_bound() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let peer = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().expect("accept");
        std::thread::sleep(Duration::from_millis(SEND_AFTER_MS));
        let sent_at = Instant::now();
        stream.write_all(&[7]).expect("send");
        // Kept open until the reader has read.
        std::thread::sleep(Duration::from_millis(BUSY_MS));
        sent_at
    });
    let read_at = LocalExecutorBuilder::new(Placement::Fixed(0))
        .preempt_timer(Duration::from_millis(PREEMPT_TIMER_MS))
        .spawn(move || async move {
            let mut stream = glommio::net::TcpStream::connect(addr)
                .await
                .expect("connect");
            let reader = glommio::spawn_local(async move {
                let mut byte = [0u8; 1];
                stream.read_exact(&mut byte).await.expect("read");
                assert_eq!(byte[0], 7);
                Instant::now()
            });
            // Pure CPU work with no system call of its own, yielding when
            // glommio asks (bounded: BUSY_MS).
            let start = Instant::now();
            while start.elapsed() < Duration::from_millis(BUSY_MS) {
                std::hint::black_box((0..1_000u64).sum::<u64>());
                glommio::yield_if_needed().await;
            }
            reader.await
        })
        .expect("executor")
        .join()
        .expect("executor thread");
    let sent_at = peer.join().expect("peer");
    let waited = read_at.saturating_duration_since(sent_at);
    assert!(
        waited < Duration::from_millis(READ_BOUND_MS),
        "the byte sent at +{SEND_AFTER_MS} ms was read {waited:?} later, while the executor was busy"
    );
}
