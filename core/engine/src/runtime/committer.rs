//! The commit waiter: one task per shard that awaits `log.commit` for the
//! last offset the driver appended and reports how far the log is durable
//! (or that it failed). Wanted offsets coalesce: a later want covers every
//! earlier one, so one outstanding commit serves any number of appends
//! (group commit), and the state it keeps is a few cells, never a queue.
//! The durable end itself is the log's ([`Log::durable_offset`]): read
//! there, never copied.

use crate::runtime::signal::LocalSignal;
use gonets_storage::{Log, LogError};
use std::cell::{Cell, RefCell};
use std::rc::Rc;

/// What the driver and the committer share.
pub(crate) struct Commits {
    /// The log whose durable end this waits on.
    log: Log,
    /// The highest offset the driver wants durable.
    wanted_last: Cell<Option<u64>>,
    /// The log failed: `Some(true)` for a full disk. Never retried.
    failure: Cell<Option<bool>>,
    /// The failure has been reported to the driver.
    failure_taken: Cell<bool>,
    /// What failed, as the log said.
    failure_cause: RefCell<Option<String>>,
    stop: Cell<bool>,
    running: Cell<bool>,
    wake_committer: LocalSignal,
    /// Raised when `durable` moves or the log fails.
    pub(crate) wake_driver: LocalSignal,
}

impl Commits {
    /// Starts the committer task for `log` on the current executor.
    pub(crate) fn start(log: Log) -> Rc<Commits> {
        let commits = Rc::new(Commits {
            log,
            wanted_last: Cell::new(None),
            failure: Cell::new(None),
            failure_taken: Cell::new(false),
            failure_cause: RefCell::new(None),
            stop: Cell::new(false),
            running: Cell::new(true),
            wake_committer: LocalSignal::default(),
            wake_driver: LocalSignal::default(),
        });
        glommio::spawn_local(run(commits.clone())).detach();
        commits
    }

    /// Asks for everything up to and including `last` to be made durable.
    pub(crate) fn want(&self, last: u64) {
        if self.wanted_last.get().is_none_or(|w| w < last) {
            self.wanted_last.set(Some(last));
            if !self.failed() {
                self.log.flush_through(last);
            }
            self.wake_committer.raise();
        }
    }

    /// The highest offset asked for so far (`want`).
    pub(crate) fn wanted_last(&self) -> Option<u64> {
        self.wanted_last.get()
    }

    /// Every offset below this is durable.
    pub(crate) fn durable(&self) -> u64 {
        self.log.durable_offset()
    }

    /// The log's failure, reported once (`Some(full)`).
    pub(crate) fn take_failure(&self) -> Option<bool> {
        if self.failure_taken.get() {
            return None;
        }
        let f = self.failure.get();
        if f.is_some() {
            self.failure_taken.set(true);
        }
        f
    }

    /// What failed, once the log failed.
    pub(crate) fn failure_cause(&self) -> Option<String> {
        self.failure_cause.borrow().clone()
    }

    /// True once the log failed.
    pub(crate) fn failed(&self) -> bool {
        self.failure.get().is_some()
    }

    /// True when everything wanted is durable (or the log failed: nothing more will be).
    pub(crate) fn settled(&self) -> bool {
        self.failed() || self.wanted_last.get().is_none_or(|w| w < self.durable())
    }

    /// Ends the committer once it has nothing to wait for.
    pub(crate) fn stop(&self) {
        self.stop.set(true);
        self.wake_committer.raise();
    }

    /// True while the committer task runs.
    pub(crate) fn running(&self) -> bool {
        self.running.get()
    }
}

impl std::fmt::Debug for Commits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Commits")
            .field("wanted_last", &self.wanted_last.get())
            .field("durable", &self.durable())
            .field("failure", &self.failure.get())
            .finish_non_exhaustive()
    }
}

async fn run(commits: Rc<Commits>) {
    'outer: loop {
        commits.wake_committer.wait().await;
        // Bounded: each pass makes `durable` pass the wanted offset seen, or ends.
        while let Some(last) = commits
            .wanted_last
            .get()
            .filter(|w| *w >= commits.durable())
        {
            match commits.log.commit(last).await {
                Ok(()) => {
                    assert!(
                        commits.durable() > last,
                        "a commit resolved below its offset"
                    );
                    commits.wake_driver.raise();
                }
                Err(e) => {
                    tracing::error!(error = %e, "commit failed; the shard accepts nothing more");
                    *commits.failure_cause.borrow_mut() = Some(e.to_string());
                    commits
                        .failure
                        .set(Some(matches!(e, LogError::StorageFull)));
                    commits.wake_driver.raise();
                    break 'outer;
                }
            }
        }
        if commits.stop.get() {
            break;
        }
    }
    commits.running.set(false);
    commits.wake_driver.raise();
}
