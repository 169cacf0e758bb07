//! Reactor stall reports (docs/adr/0031): with `stall_report_ms` set, each
//! shard executor's task queue that runs longer than its budget plus that
//! many ms without yielding is logged at `warn` with the functions on the
//! executor's stack at that moment, and counted per lane
//! (`gonets_shard_lane_stalls`). Off by default: glommio then arms a timer
//! for every task queue run, and each report symbolizes a backtrace
//! (milliseconds of the shard's time). A diagnosis tool: it names what held
//! the reactor when the real-time tail grows.

use crate::runtime::lanes;
use glommio::{StallDetection, StallDetectionHandler, TaskQueueHandle};
use std::time::Duration;

/// Frames of our own code a report names, innermost first.
const FRAMES_REPORTED_MAX: usize = 8;

/// The handler of one shard executor.
#[derive(Debug)]
pub struct StallReport {
    shard: u16,
    threshold: Duration,
}

impl StallReport {
    /// Reports stalls of shard `shard`'s queues over their budget by more
    /// than `threshold_ms`.
    pub fn new(shard: u16, threshold_ms: u64) -> StallReport {
        assert!(threshold_ms > 0, "a zero threshold would report every run");
        StallReport {
            shard,
            threshold: Duration::from_millis(threshold_ms),
        }
    }
}

impl StallDetectionHandler for StallReport {
    fn threshold(&self, _queue: TaskQueueHandle, _expected: Duration) -> Option<Duration> {
        Some(self.threshold)
    }

    fn stall(&self, stall: StallDetection<'_>) {
        lanes::note_stall(stall.queue_name());
        let frames = ours(&stall.function_names());
        tracing::warn!(
            shard = self.shard,
            queue = stall.queue_name(),
            over_ms = format!("{:.2}", stall.overage().as_secs_f64() * 1e3),
            budget_ms = stall.budget().as_millis() as u64,
            "reactor stall: {frames}"
        );
    }
}

/// The first frames of the project's own crates (`gonets_*`), innermost
/// first, joined by " < ", with hashes and closure markers dropped; the
/// innermost frame of any crate when none is ours.
fn ours(names: &[String]) -> String {
    let mut out: Vec<String> = names
        .iter()
        .filter(|n| n.contains("gonets_"))
        .map(|n| n.replace("::{{closure}}", ""))
        .take(FRAMES_REPORTED_MAX)
        .collect();
    out.dedup();
    if out.is_empty() {
        return names
            .first()
            .cloned()
            .unwrap_or_else(|| "(no stack)".into());
    }
    out.join(" < ")
}

#[cfg(test)]
mod tests {
    use super::{ours, StallReport};
    use crate::runtime::lanes::{self, Lane};
    use crate::runtime::test_logs::Lines;
    use glommio::{LocalExecutorBuilder, Placement};
    use std::time::{Duration, Instant};

    /// The report's threshold over the budget, ms: well past what a loaded
    /// CI machine takes the thread away for (wall time counts).
    const THRESHOLD_MS: u64 = 50;
    /// How long the test's tasks keep the CPU, ms: far past budget + threshold.
    const BUSY_MS: u64 = 400;

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

    /// Runs a task in the rt lane that computes with or without yielding;
    /// the rt lane's stall count and the log's text.
    fn run(yielding: bool) -> (u64, String) {
        let lines = Lines::default();
        let logs = lines.clone();
        let stalls = LocalExecutorBuilder::new(Placement::Unbound)
            .preempt_timer(Duration::from_millis(1))
            .detect_stalls(Some(Box::new(StallReport::new(0, THRESHOLD_MS))))
            .spawn(move || async move {
                let _logs = logs.capture(tracing::Level::WARN);
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
        (stalls, lines.text())
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

    #[test]
    fn given_a_stack_when_reported_then_our_frames_first_without_closures() {
        let names = [
            "hashbrown::raw::RawTable::reserve_rehash",
            "gonets_engine::shard::exchange_table::ExchangeTable::insert",
            "gonets_engine::shard::Shard::hold::{{closure}}",
            "gonets_engine::shard::Shard::hold",
            "std::rt::lang_start",
        ]
        .map(String::from);
        assert_eq!(
            ours(&names),
            "gonets_engine::shard::exchange_table::ExchangeTable::insert < gonets_engine::shard::Shard::hold"
        );
        assert_eq!(
            ours(&names[..1]),
            "hashbrown::raw::RawTable::reserve_rehash"
        );
        assert_eq!(ours(&[]), "(no stack)");
    }
}
