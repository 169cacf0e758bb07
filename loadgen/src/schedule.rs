//! The open-loop schedule: operation `i` is due at `i / rate` after the
//! start, whatever happened to the operations before it. Latency is taken
//! from that due time, never from the moment the generator got round to
//! sending, so a slow hub cannot hide its queueing behind a slow generator
//! (no coordinated omission). The pacer tracks how far behind its own
//! schedule the generator started each measured operation; past a bound the
//! run is invalid.
//!
//! Time here is an offset from the run's start, so tests can drive the
//! same code with a virtual clock.

use std::ops::Range;
use std::time::Duration;

/// A fixed-rate schedule over a warm-up and a measured window.
#[derive(Clone, Copy, Debug)]
pub struct OpenLoop {
    rate_per_s: f64,
    warmup: Duration,
    measured: Duration,
}

impl OpenLoop {
    /// `rate_per_s` operations a second for `warmup + measured`.
    pub fn new(rate_per_s: f64, warmup: Duration, measured: Duration) -> OpenLoop {
        assert!(
            rate_per_s > 0.0 && rate_per_s.is_finite(),
            "a positive rate"
        );
        assert!(!measured.is_zero(), "a measured window");
        OpenLoop {
            rate_per_s,
            warmup,
            measured,
        }
    }

    /// The rate this schedule offers.
    pub fn rate_per_s(&self) -> f64 {
        self.rate_per_s
    }

    /// When operation `i` is due.
    pub fn due_at(&self, i: u64) -> Duration {
        Duration::from_secs_f64(i as f64 / self.rate_per_s)
    }

    /// Operations due at or before `elapsed` (never past the end).
    pub fn due_by(&self, elapsed: Duration) -> u64 {
        let by_time = (elapsed.as_secs_f64() * self.rate_per_s).floor() as u64 + 1;
        by_time.min(self.total())
    }

    /// Operations the whole schedule holds.
    pub fn total(&self) -> u64 {
        ((self.warmup + self.measured).as_secs_f64() * self.rate_per_s).ceil() as u64
    }

    /// Whether operation `i` falls in the measured window.
    pub fn is_measured(&self, i: u64) -> bool {
        self.due_at(i) >= self.warmup
    }

    /// Where the measured window starts.
    pub fn measure_from(&self) -> Duration {
        self.warmup
    }

    /// Where the schedule ends.
    pub fn end(&self) -> Duration {
        self.warmup + self.measured
    }

    /// The measured window's length.
    pub fn measured(&self) -> Duration {
        self.measured
    }
}

/// Hands out due operations and keeps the generator's lag.
#[derive(Debug)]
pub struct Pacer {
    schedule: OpenLoop,
    next: u64,
    lag_max: Duration,
}

impl Pacer {
    /// A pacer at the start of `schedule`.
    pub fn new(schedule: OpenLoop) -> Pacer {
        Pacer {
            schedule,
            next: 0,
            lag_max: Duration::ZERO,
        }
    }

    /// The schedule paced.
    pub fn schedule(&self) -> &OpenLoop {
        &self.schedule
    }

    /// The operations to start now, at `elapsed`; notes how late the
    /// measured ones among them are.
    pub fn due(&mut self, elapsed: Duration) -> Range<u64> {
        let first = self.next;
        let last = self.schedule.due_by(elapsed).max(first);
        // The earliest of them is the latest relative to its due time.
        if first < last && self.schedule.is_measured(first) {
            let late = elapsed.saturating_sub(self.schedule.due_at(first));
            self.lag_max = self.lag_max.max(late);
        }
        self.next = last;
        first..last
    }

    /// Whether every operation has been handed out.
    pub fn finished(&self) -> bool {
        self.next >= self.schedule.total()
    }

    /// The most a measured operation started behind its due time.
    pub fn lag_max(&self) -> Duration {
        self.lag_max
    }

    /// Latency of operation `i` completing at `elapsed`: from its due time.
    pub fn latency(&self, i: u64, elapsed: Duration) -> Duration {
        elapsed.saturating_sub(self.schedule.due_at(i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Recorder;

    const MS: Duration = Duration::from_millis(1);

    /// A fake server that serves one request at a time, each in
    /// `service`: its true latency for a request due at `t` is known.
    struct SlowServer {
        service: Duration,
        free_at: Duration,
    }

    impl SlowServer {
        /// When a request sent at `sent` completes.
        fn serve(&mut self, sent: Duration) -> Duration {
            let begin = sent.max(self.free_at);
            self.free_at = begin + self.service;
            self.free_at
        }
    }

    /// Drives the pacer with a virtual clock that ticks every `tick`,
    /// against `server`, recording as the workloads do.
    fn drive(pacer: &mut Pacer, server: &mut SlowServer, tick: Duration) -> Recorder {
        let mut rec = Recorder::new();
        let mut now = Duration::ZERO;
        while !pacer.finished() {
            for i in pacer.due(now) {
                let done = server.serve(now);
                if pacer.schedule().is_measured(i) {
                    rec.ok(pacer.latency(i, done), 0);
                }
            }
            now += tick;
        }
        rec
    }

    #[test]
    fn given_rate_when_paced_then_each_operation_is_due_at_its_slot() {
        let s = OpenLoop::new(1000.0, Duration::ZERO, Duration::from_secs(1));
        assert_eq!(s.total(), 1000);
        assert_eq!(s.due_at(0), Duration::ZERO);
        assert_eq!(s.due_at(500), Duration::from_millis(500));
        let mut p = Pacer::new(s);
        assert_eq!(p.due(Duration::ZERO), 0..1);
        assert_eq!(p.due(Duration::from_micros(2500)), 1..3);
        assert_eq!(p.due(Duration::from_micros(2500)), 3..3, "nothing twice");
        assert_eq!(p.due(Duration::from_secs(5)), 3..1000, "never past the end");
        assert!(p.finished());
    }

    #[test]
    fn given_warmup_when_paced_then_only_later_operations_are_measured() {
        let s = OpenLoop::new(100.0, Duration::from_secs(1), Duration::from_secs(1));
        assert_eq!(s.total(), 200);
        assert!(!s.is_measured(99));
        assert!(s.is_measured(100));
    }

    #[test]
    fn given_server_slower_than_rate_when_measured_then_queueing_is_counted() {
        // 200/s offered, 10 ms each served one at a time: the server holds
        // only 100/s, so the queue grows by 100 requests a second and the
        // true latency of the last request of a 1 s run is about 1 s. A
        // closed-loop measurement (from the actual send) would read 10 ms.
        let s = OpenLoop::new(200.0, Duration::ZERO, Duration::from_secs(1));
        let mut server = SlowServer {
            service: 10 * MS,
            free_at: Duration::ZERO,
        };
        let rec = drive(&mut Pacer::new(s), &mut server, Duration::from_micros(100));
        let h = rec.latency_us();
        assert_eq!(h.len(), 200);
        // Request i is due at 5i ms and completes at 10(i+1) ms.
        let true_max_us = (10 * 200 - 5 * 199) * 1000;
        assert!(
            h.max().abs_diff(true_max_us) <= true_max_us / 500,
            "max {} vs true {true_max_us}",
            h.max()
        );
        let true_median_us = (10 * 101 - 5 * 100) * 1000;
        let p50 = h.value_at_quantile(0.5);
        assert!(
            p50.abs_diff(true_median_us) <= 6_000,
            "p50 {p50} vs {true_median_us}"
        );
    }

    #[test]
    fn given_fast_server_when_measured_then_latency_is_service_time() {
        let s = OpenLoop::new(50.0, Duration::ZERO, Duration::from_secs(1));
        let mut server = SlowServer {
            service: 3 * MS,
            free_at: Duration::ZERO,
        };
        let mut pacer = Pacer::new(s);
        let rec = drive(&mut pacer, &mut server, Duration::from_micros(10));
        let h = rec.latency_us();
        assert!(
            h.min() >= 3000 && h.max() <= 3_020,
            "{}..{}",
            h.min(),
            h.max()
        );
        assert!(
            pacer.lag_max() <= Duration::from_micros(20),
            "lag within a tick: {:?}",
            pacer.lag_max()
        );
    }

    #[test]
    fn given_generator_stall_when_paced_then_lag_is_reported_and_latency_includes_it() {
        // The generator wakes only every 100 ms: each burst's first request
        // was due up to 100 ms earlier and its latency must say so.
        let s = OpenLoop::new(1000.0, Duration::ZERO, Duration::from_secs(1));
        let mut server = SlowServer {
            service: Duration::from_micros(1),
            free_at: Duration::ZERO,
        };
        let mut pacer = Pacer::new(s);
        let rec = drive(&mut pacer, &mut server, 100 * MS);
        assert!(pacer.lag_max() >= 99 * MS, "lag {:?}", pacer.lag_max());
        assert!(rec.latency_us().max() >= 99_000);
    }
}
