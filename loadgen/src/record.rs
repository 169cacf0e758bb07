//! What one core counted in one phase: a latency histogram (µs), successes,
//! bytes, errors by type, operations not sent. Each core keeps its own
//! recorder; the run merges them at the end (HDR histograms add exactly).

use hdrhistogram::Histogram;
use std::collections::BTreeMap;
use std::time::Duration;

/// Latency histogram bound, µs (120 s: far past any deadline).
pub const LATENCY_US_MAX: u64 = 120_000_000;
/// The realtime budget: an answer slower than this broke the 2 s rule.
pub const BUDGET_US: u64 = 2_000_000;

/// Counts of one phase on one core.
#[derive(Clone, Debug)]
pub struct Recorder {
    latency_us: Histogram<u64>,
    ok: u64,
    bytes: u64,
    errors: BTreeMap<String, u64>,
    not_sent: u64,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder::new()
    }
}

impl Recorder {
    /// An empty recorder.
    pub fn new() -> Recorder {
        Recorder {
            latency_us: Histogram::new_with_bounds(1, LATENCY_US_MAX, 3)
                .expect("constant histogram bounds are valid"),
            ok: 0,
            bytes: 0,
            errors: BTreeMap::new(),
            not_sent: 0,
        }
    }

    /// One success after `latency`, moving `bytes` of payload.
    pub fn ok(&mut self, latency: Duration, bytes: u64) {
        let us = (latency.as_micros() as u64).clamp(1, LATENCY_US_MAX);
        self.latency_us
            .record(us)
            .expect("clamped into the histogram's bounds");
        self.ok += 1;
        self.bytes += bytes;
    }

    /// One success whose latency is not measured (bulk acceptance counts).
    pub fn ok_unmeasured(&mut self, bytes: u64) {
        self.ok += 1;
        self.bytes += bytes;
    }

    /// One failure of type `kind`.
    pub fn error(&mut self, kind: &str) {
        *self.errors.entry(kind.to_string()).or_insert(0) += 1;
    }

    /// One operation the generator could not start (too many in flight).
    pub fn not_sent(&mut self) {
        self.not_sent += 1;
    }

    /// Adds another core's counts.
    pub fn merge(&mut self, other: &Recorder) {
        self.latency_us
            .add(&other.latency_us)
            .expect("same bounds on every core");
        self.ok += other.ok;
        self.bytes += other.bytes;
        for (k, v) in &other.errors {
            *self.errors.entry(k.clone()).or_insert(0) += v;
        }
        self.not_sent += other.not_sent;
    }

    /// The latency histogram, µs.
    pub fn latency_us(&self) -> &Histogram<u64> {
        &self.latency_us
    }

    /// Successes.
    pub fn ok_count(&self) -> u64 {
        self.ok
    }

    /// Payload bytes moved by the successes.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Failures by type.
    pub fn errors(&self) -> &BTreeMap<String, u64> {
        &self.errors
    }

    /// Failures of every type.
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    /// Operations not started.
    pub fn not_sent_count(&self) -> u64 {
        self.not_sent
    }

    /// Latencies over the 2 s budget.
    pub fn over_budget(&self) -> u64 {
        self.latency_us.count_between(BUDGET_US + 1, LATENCY_US_MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_two_cores_when_merged_then_counts_and_quantiles_add_up() {
        let mut a = Recorder::new();
        let mut b = Recorder::new();
        for ms in 1..=50 {
            a.ok(Duration::from_millis(ms), 10);
        }
        for ms in 51..=100 {
            b.ok(Duration::from_millis(ms), 10);
        }
        b.error("Timeout");
        b.error("Timeout");
        a.not_sent();
        a.merge(&b);
        assert_eq!(a.ok_count(), 100);
        assert_eq!(a.bytes(), 1000);
        assert_eq!(a.errors()["Timeout"], 2);
        assert_eq!(a.not_sent_count(), 1);
        let p50 = a.latency_us().value_at_quantile(0.5);
        assert!((49_900..=50_100).contains(&p50), "{p50}");
    }

    #[test]
    fn given_answer_over_two_seconds_when_recorded_then_counted_over_budget() {
        let mut r = Recorder::new();
        r.ok(Duration::from_millis(1999), 0);
        r.ok(Duration::from_millis(2100), 0);
        r.ok(Duration::from_secs(500), 0);
        assert_eq!(r.over_budget(), 2);
        assert_eq!(
            r.latency_us().max(),
            r.latency_us().highest_equivalent(LATENCY_US_MAX)
        );
    }
}
