//! The shard's one OS timer, kept by a task of its own.
//!
//! The driver used to arm a fresh glommio sleep every time it waited and
//! drop it when a message came first: an io_uring timeout and its cancel per
//! wait, at every message (a tenth of the shard's time at 10,000 calls/s).
//! Here the sleep is armed only when the shard asks for an earlier tick than
//! the one pending, which is rare: new deadlines and leases fall later.

use crate::runtime::signal::LocalSignal;
use futures_lite::future;
use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// When to ring, and the two wake-ups around it.
#[derive(Debug, Default)]
pub(crate) struct Alarm {
    at_ms: Cell<Option<u64>>,
    rearm: LocalSignal,
    stop: Cell<bool>,
    /// Raised when the time set has come.
    pub(crate) rang: LocalSignal,
}

impl Alarm {
    /// Starts the alarm task on the current executor.
    pub(crate) fn start() -> Rc<Alarm> {
        let alarm = Rc::new(Alarm::default());
        glommio::spawn_local(run(alarm.clone())).detach();
        alarm
    }

    /// Rings at `at_ms` (hub time) unless an earlier ring is set.
    pub(crate) fn set(&self, at_ms: u64) {
        if self.at_ms.get().is_none_or(|t| at_ms < t) {
            self.at_ms.set(Some(at_ms));
            self.rearm.raise();
        }
    }

    /// The driver took the tick due at `at_ms` itself (it looked before
    /// the ring came): a ring set for then or earlier is spent. Without
    /// this a later time set meanwhile was refused as "not earlier" and
    /// lost once the spent ring cleared, and the shard slept past it.
    pub(crate) fn spent(&self, at_ms: u64) {
        if self.at_ms.get().is_some_and(|t| t <= at_ms) {
            self.at_ms.set(None);
            self.rearm.raise();
        }
    }

    /// Ends the task.
    pub(crate) fn stop(&self) {
        self.stop.set(true);
        self.rearm.raise();
    }
}

fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

async fn run(alarm: Rc<Alarm>) {
    // Bounded per pass: each either sleeps, rings, or waits for a new time.
    while !alarm.stop.get() {
        let Some(at_ms) = alarm.at_ms.get() else {
            alarm.rearm.wait().await;
            continue;
        };
        let now_ms = wall_ms();
        if at_ms <= now_ms {
            alarm.at_ms.set(None);
            alarm.rang.raise();
            continue;
        }
        let sleep = async {
            glommio::timer::sleep(Duration::from_millis(at_ms - now_ms)).await;
        };
        future::or(sleep, alarm.rearm.wait()).await;
    }
}
