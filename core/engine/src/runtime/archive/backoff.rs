//! Retry policy of a background job that fails (the history index job): wait
//! longer after each failure of a streak, bounded, and report the streak in
//! a handful of lines instead of one per pass.

use std::time::{Duration, Instant};

/// First wait after a failure, ms.
pub(crate) const BACKOFF_MIN_MS: u64 = 100;
/// Longest wait between two attempts, ms.
pub(crate) const BACKOFF_MAX_MS: u64 = 30_000;

/// What to log about a failure, so that a streak is reported once, then at
/// each doubling of its length (2, 4, 8, ... failures), not at every attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FailureNote {
    /// The first failure of a streak: report it (ERROR).
    First { retry_in_ms: u64 },
    /// The streak's length doubled: one line says it goes on.
    StillFailing { failures: u32, retry_in_ms: u64 },
    /// Nothing to log.
    Quiet,
}

/// Exponential back-off between attempts of one job: `min_ms` after the
/// first failure, doubling up to `max_ms`; a success ends the streak.
#[derive(Clone, Debug)]
pub(crate) struct Backoff {
    min_ms: u64,
    max_ms: u64,
    /// Failures in the current streak (0: the last attempt worked).
    failures: u32,
    /// Wait after the latest failure, ms.
    delay_ms: u64,
    /// No attempt before this instant.
    retry_at: Option<Instant>,
}

impl Backoff {
    /// A policy waiting `min_ms` after a first failure, at most `max_ms`.
    pub(crate) fn new(min_ms: u64, max_ms: u64) -> Backoff {
        assert!(min_ms > 0 && min_ms <= max_ms, "0 < min_ms <= max_ms");
        Backoff {
            min_ms,
            max_ms,
            failures: 0,
            delay_ms: 0,
            retry_at: None,
        }
    }

    /// True when an attempt may start at `now`.
    pub(crate) fn may_run(&self, now: Instant) -> bool {
        self.retry_at.is_none_or(|at| now >= at)
    }

    /// Records a failed attempt at `now`; returns what to log about it.
    pub(crate) fn failed(&mut self, now: Instant) -> FailureNote {
        self.failures = self.failures.saturating_add(1);
        self.delay_ms = if self.failures == 1 {
            self.min_ms
        } else {
            self.delay_ms.saturating_mul(2).min(self.max_ms)
        };
        self.retry_at = Some(now + Duration::from_millis(self.delay_ms));
        let retry_in_ms = self.delay_ms;
        match self.failures {
            1 => FailureNote::First { retry_in_ms },
            n if n.is_power_of_two() => FailureNote::StillFailing {
                failures: n,
                retry_in_ms,
            },
            _ => FailureNote::Quiet,
        }
    }

    /// Records a successful attempt; returns the length of the streak it
    /// ends (`Some`: report the recovery once), `None` if none ran.
    pub(crate) fn succeeded(&mut self) -> Option<u32> {
        let ended = std::mem::take(&mut self.failures);
        self.delay_ms = 0;
        self.retry_at = None;
        (ended > 0).then_some(ended)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn given_no_failure_when_asked_then_it_may_run_and_a_success_reports_nothing() {
        let mut b = Backoff::new(BACKOFF_MIN_MS, BACKOFF_MAX_MS);
        assert!(b.may_run(Instant::now()));
        assert_eq!(b.succeeded(), None);
    }

    #[test]
    fn given_failures_when_they_repeat_then_the_wait_doubles_from_min_up_to_max() {
        let mut b = Backoff::new(100, 1_000);
        let t0 = Instant::now();
        let mut waits = Vec::new();
        for _ in 0..7 {
            b.failed(t0);
            waits.push(b.delay_ms);
        }
        assert_eq!(waits, vec![100, 200, 400, 800, 1_000, 1_000, 1_000]);
        assert!(!b.may_run(t0 + ms(999)), "not before the wait is over");
        assert!(b.may_run(t0 + ms(1_000)));
    }

    #[test]
    fn given_a_failure_when_the_wait_is_not_over_then_no_attempt_runs() {
        let mut b = Backoff::new(100, 30_000);
        let t0 = Instant::now();
        assert_eq!(b.failed(t0), FailureNote::First { retry_in_ms: 100 });
        assert!(!b.may_run(t0 + ms(99)));
        assert!(b.may_run(t0 + ms(100)));
    }

    #[test]
    fn given_a_long_streak_when_it_fails_then_only_the_first_and_each_doubling_are_noted() {
        let mut b = Backoff::new(BACKOFF_MIN_MS, BACKOFF_MAX_MS);
        let t0 = Instant::now();
        let noted: Vec<u32> = (1..=1_000u32)
            .filter(|_| b.failed(t0) != FailureNote::Quiet)
            .collect();
        assert_eq!(noted, vec![1, 2, 4, 8, 16, 32, 64, 128, 256, 512]);
        assert_eq!(
            b.failed(t0),
            FailureNote::Quiet,
            "failure 1001 is not a doubling"
        );
    }

    #[test]
    fn given_a_streak_when_an_attempt_succeeds_then_the_recovery_is_reported_once_and_the_wait_resets(
    ) {
        let mut b = Backoff::new(100, 30_000);
        let t0 = Instant::now();
        b.failed(t0);
        b.failed(t0);
        b.failed(t0);
        assert_eq!(b.succeeded(), Some(3));
        assert_eq!(b.succeeded(), None, "reported once");
        assert!(b.may_run(t0));
        assert_eq!(b.failed(t0), FailureNote::First { retry_in_ms: 100 });
    }
}
