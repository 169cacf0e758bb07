//! Reactor stall reports (docs/adr/0031): a task queue that runs past its
//! budget by more than the threshold without yielding is logged at `warn`
//! with its stack and counted in its lane's totals; one that yields is not.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use glommio::{LocalExecutorBuilder, Placement};
use gonets_engine::runtime::lanes::{self, Lane};
use gonets_engine::runtime::stall_report::StallReport;

/// The report's threshold over the budget, ms: well past what a loaded CI
/// machine takes the thread away for (wall time counts).
const THRESHOLD_MS: u64 = 50;
/// How long the test's tasks keep the CPU, ms: far past budget + threshold.
const BUSY_MS: u64 = 400;

/// Log lines written, shared with the subscriber.
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Lines {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Computes for `BUSY_MS`, yielding to glommio when it asks or never.
async fn busy(yielding: bool) {
    let start = Instant::now();
    // Bounded: BUSY_MS.
    while start.elapsed() < Duration::from_millis(BUSY_MS) {
        std::hint::black_box((0..1_000u64).sum::<u64>());
        if yielding {
            glommio::yield_if_needed().await;
        }
    }
}

/// Runs a task in the rt lane that computes with or without yielding; the
/// rt lane's stall count and the log's stall lines.
fn run(yielding: bool) -> (u64, String) {
    let lines = Lines::default();
    let writer = lines.clone();
    let stalls = LocalExecutorBuilder::new(Placement::Unbound)
        .preempt_timer(Duration::from_millis(1))
        .detect_stalls(Some(Box::new(StallReport::new(0, THRESHOLD_MS))))
        .spawn(move || async move {
            let subscriber = tracing_subscriber::fmt()
                .with_ansi(false)
                .with_max_level(tracing::Level::WARN)
                .with_writer(move || writer.clone())
                .finish();
            let _logs = tracing::subscriber::set_default(subscriber);
            lanes::open_on_this_executor();
            lanes::spawn(Lane::Rt, busy(yielding)).await;
            // Lets the queue's run end (the report comes as it ends).
            glommio::yield_if_needed().await;
            lanes::spawn(Lane::Rt, async {}).await;
            let usage = lanes::usage();
            let rt = usage.iter().find(|(l, _)| *l == Lane::Rt).expect("rt lane");
            rt.1.stalls
        })
        .expect("executor")
        .join()
        .expect("executor thread");
    let text = String::from_utf8_lossy(&lines.0.lock().unwrap()).into_owned();
    (stalls, text)
}

#[test]
fn given_a_task_that_never_yields_when_it_runs_past_the_threshold_then_reported_and_counted() {
    let (stalls, log) = run(false);
    assert!(stalls >= 1, "rt stalls {stalls}; log: {log}");
    let line = log
        .lines()
        .find(|l| l.contains("reactor stall"))
        .unwrap_or_else(|| panic!("no stall line in: {log}"));
    assert!(
        line.contains("WARN") && line.contains("queue=\"gonets-rt\""),
        "{line}"
    );
}

#[test]
fn given_a_task_that_yields_when_it_computes_as_long_then_no_stall() {
    let (stalls, log) = run(true);
    assert_eq!(stalls, 0, "log: {log}");
    assert!(!log.contains("reactor stall"), "{log}");
}
