//! Chain anchors (docs/adr/0020-signed-anchors-and-verify.md): every
//! shard signs its two logs' chain heads (the durable offset, a batch
//! boundary, and the chain value there) with the hub key, after each
//! snapshot and every `anchor_interval_ms` while records were written,
//! and the driver appends each anchor to its shard's log (`Record::Anchor`)
//! and, as a copy kept for ever, to the history log.
//!
//! Signing runs on the background lane (ADR 0015), never on the rt path:
//! the task reads the heads, signs, and hands the anchors to the driver,
//! which appends them between turns (an append is a copy into the open
//! batch). Without a hub key there is no task and no anchor.

use crate::runtime::clock::HubClock;
use crate::runtime::lanes::{self, Lane};
use crate::runtime::signal::LocalSignal;
use gonets_storage::Log;
use gonets_trust::{Anchor, AnchoredLog, HubKey};
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Anchors the hub keeps in memory for the operator API (`/anchors`),
/// across shards; the oldest go first. At the default interval and 64
/// shards, about 3 hours.
pub const ANCHORS_KEPT_MAX: usize = 65_536;

/// The anchors signed since the hub started, newest last, for the
/// operator API (the logs hold every one; `gonets anchors` reads them).
#[derive(Debug, Default)]
pub struct AnchorBook {
    kept: Mutex<VecDeque<Anchor>>,
}

impl AnchorBook {
    fn add(&self, anchor: Anchor) {
        let mut kept = self.kept.lock().expect("anchor book lock");
        if kept.len() == ANCHORS_KEPT_MAX {
            kept.pop_front();
        }
        kept.push_back(anchor);
    }

    /// The anchors signed at or after `since_ms`, oldest first.
    pub fn since(&self, since_ms: u64) -> Vec<Anchor> {
        let kept = self.kept.lock().expect("anchor book lock");
        kept.iter()
            .filter(|a| a.time_ms >= since_ms)
            .cloned()
            .collect()
    }
}

/// One log's anchoring state: what the last anchor covered and which
/// records since are the anchorer's own (they alone never make an anchor
/// due, or an idle hub would anchor its own anchors for ever).
#[derive(Debug, Default)]
struct LogMark {
    anchored_to: Cell<u64>,
    own: RefCell<Vec<u64>>,
}

impl LogMark {
    /// True when records other than our own anchors lie below `head`
    /// since the last anchor.
    fn due(&self, head: u64) -> bool {
        let from = self.anchored_to.get();
        if head <= from {
            return false;
        }
        let own = self
            .own
            .borrow()
            .iter()
            .filter(|&&o| o >= from && o < head)
            .count() as u64;
        head - from > own
    }

    fn anchored(&self, head: u64) {
        self.anchored_to.set(head);
        self.own.borrow_mut().retain(|&o| o >= head);
    }
}

/// What a shard's driver and its anchor task share.
pub(crate) struct Anchorer {
    key: Arc<HubKey>,
    shard: u16,
    /// The shard's log and its history log.
    logs: (Log, Log),
    book: Arc<AnchorBook>,
    clock: RefCell<HubClock>,
    /// Signed anchors the driver has yet to append.
    signed: RefCell<VecDeque<Anchor>>,
    /// Raised when `signed` gained one: wakes the driver.
    pub(crate) wake_driver: LocalSignal,
    /// Raised after a snapshot (a checkpoint): anchor now.
    due_now: LocalSignal,
    stopped: Cell<bool>,
    shard_log: LogMark,
    history_log: LogMark,
}

impl Anchorer {
    /// Starts the anchor task of shard `shard` on the background lane
    /// (`interval_ms` 0: only after snapshots); `None` without a key.
    pub(crate) fn start(
        key: Option<Arc<HubKey>>,
        shard: u16,
        interval_ms: u64,
        logs: (Log, Log),
        book: Arc<AnchorBook>,
    ) -> Option<Rc<Anchorer>> {
        let anchorer = Rc::new(Anchorer {
            key: key?,
            shard,
            logs,
            book,
            clock: RefCell::new(HubClock::default()),
            signed: RefCell::new(VecDeque::new()),
            wake_driver: LocalSignal::default(),
            due_now: LocalSignal::default(),
            stopped: Cell::new(false),
            shard_log: LogMark::default(),
            history_log: LogMark::default(),
        });
        lanes::spawn(Lane::Background, run(anchorer.clone(), interval_ms)).detach();
        Some(anchorer)
    }

    /// Anchors at once (after a snapshot became durable).
    pub(crate) fn checkpointed(&self) {
        self.due_now.raise();
    }

    /// The anchors signed and not yet appended.
    pub(crate) fn take_signed(&self) -> Vec<Anchor> {
        self.signed.borrow_mut().drain(..).collect()
    }

    /// The driver appended one of our anchors at `offset` of `log`.
    pub(crate) fn appended(&self, log: AnchoredLog, offset: u64) {
        self.mark(log).own.borrow_mut().push(offset);
    }

    /// Ends the task (shutdown).
    pub(crate) fn stop(&self) {
        self.stopped.set(true);
        self.due_now.raise();
    }

    fn mark(&self, log: AnchoredLog) -> &LogMark {
        match log {
            AnchoredLog::Shard => &self.shard_log,
            AnchoredLog::History => &self.history_log,
        }
    }

    /// Signs every log head that moved (records other than our anchors
    /// below it since the last anchor) and queues the anchors for the
    /// driver; true when it signed any.
    pub(crate) fn sign_due(&self) -> bool {
        let mut any = false;
        for which in [AnchoredLog::Shard, AnchoredLog::History] {
            let log = match which {
                AnchoredLog::Shard => &self.logs.0,
                AnchoredLog::History => &self.logs.1,
            };
            let (offset, chain) = log.durable_head();
            let mark = self.mark(which);
            if !mark.due(offset) {
                continue;
            }
            mark.anchored(offset);
            let time_ms = self.clock.borrow_mut().now_ms();
            let anchor = Anchor::signed_for(&self.key, which, self.shard, offset, chain, time_ms);
            self.book.add(anchor.clone());
            self.signed.borrow_mut().push_back(anchor);
            any = true;
        }
        any
    }
}

/// The background task: waits for the interval or a checkpoint, signs the
/// heads that moved, wakes the driver to append them.
async fn run(anchorer: Rc<Anchorer>, interval_ms: u64) {
    // Bounded by the shard's life: `stop` ends it.
    loop {
        let checkpoint = anchorer.due_now.wait();
        if interval_ms == 0 {
            checkpoint.await;
        } else {
            let tick = glommio::timer::sleep(Duration::from_millis(interval_ms));
            futures_lite::future::or(checkpoint, async {
                tick.await;
            })
            .await;
        }
        if anchorer.stopped.get() {
            return;
        }
        if anchorer.sign_due() {
            anchorer.wake_driver.raise();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_only_own_anchor_records_since_the_last_anchor_when_asked_then_not_due() {
        let mark = LogMark::default();
        assert!(!mark.due(0), "an empty log");
        assert!(mark.due(5));
        mark.anchored(5);
        assert!(!mark.due(5));
        mark.own.borrow_mut().push(5); // our anchor record at 5
        assert!(!mark.due(6), "only our own record since");
        assert!(mark.due(7), "one more record");
        mark.anchored(7);
        assert!(mark.own.borrow().is_empty());
    }

    #[test]
    fn given_a_full_book_when_added_then_the_oldest_go_and_since_filters() {
        let book = AnchorBook::default();
        let one = Anchor::signed(&HubKey::generate(), 0, 0, [0; 32], 0);
        for i in 0..(ANCHORS_KEPT_MAX as u64 + 2) {
            book.add(Anchor {
                offset: i,
                time_ms: i,
                ..one.clone()
            });
        }
        let all = book.since(0);
        assert_eq!(all.len(), ANCHORS_KEPT_MAX);
        assert_eq!(all[0].offset, 2);
        assert_eq!(book.since(ANCHORS_KEPT_MAX as u64).len(), 2);
    }
}
