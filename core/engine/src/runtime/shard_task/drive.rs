//! The driver's two halves (ADR 0032): one task per lane, taking turns on
//! the one shard.
//!
//! - The **rt half** runs in the rt lane (`Latency::Matters`): it settles
//!   local events (commits, the timer, a failed log), reads the control
//!   channel and the rt inbox (calls, answers, an rt provider's acks, peer
//!   messages), and owns the shutdown.
//! - The **bulk half** runs in the bulk lane: it steps the bulk inbox
//!   (async requests, batches, a bulk drain's acks) while the log has room
//!   for bulk (ADR 0015's bound), and ends its turn as soon as rt work
//!   waits.
//!
//! Both step the same `ShardTask` through a local lock taken for one turn
//! at a time; neither waits for input while holding it. Before this, one
//! driver in the rt lane stepped bulk too, so glommio could not put a call
//! ahead of a bulk turn: the rt lane held ~63 % of a full core beside bulk.

use super::{Inbound, ShardTask, Wake, CONTROLS_PER_TURN_MAX, INPUTS_PER_TURN_MAX};
use crate::runtime::alarm::Alarm;
use crate::runtime::anchors::Anchorer;
use crate::runtime::committer::Commits;
use crate::runtime::holds::{self, Hold};
use crate::runtime::lanes::{self, Lane};
use crate::runtime::mesh::Control;
use crate::runtime::signal::LocalSignal;
use futures_lite::future;
use glommio::sync::{RwLock, RwLockWriteGuard};
use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// The shard, shared by the driver's halves.
type Shared = Rc<RwLock<ShardTask>>;

/// What the halves wait on without holding the shard: clones of the
/// task's channels and wake-ups.
struct Waits {
    inbox: flume::Receiver<Inbound>,
    bulk: flume::Receiver<Inbound>,
    control: flume::Receiver<Control>,
    commits: Rc<Commits>,
    history_commits: Rc<Commits>,
    /// The rt journal's committer (ADR 0036), when there is one.
    journal_commits: Option<Rc<Commits>>,
    anchors: Option<Rc<Anchorer>>,
    alarm: Rc<Alarm>,
}

/// Between the halves: the rt half wakes the bulk half when the log has
/// room for bulk again, and stops it at shutdown.
#[derive(Default)]
struct BulkGate {
    /// Raised for room or for the stop.
    wake: LocalSignal,
    /// The bulk half waits for the log to have room.
    waits_for_room: Cell<bool>,
    /// The rt half is shutting the shard down.
    stop: Cell<bool>,
}

/// How an rt turn ended.
enum RtTurn {
    /// It read input: look again after a yield.
    Worked,
    /// Nothing to read: wait. While draining, look again after this many ms.
    Idle { poll_ms: Option<u64> },
    /// Shut down now.
    Stop,
}

impl ShardTask {
    /// Runs both halves until shutdown; returns the log's close result.
    pub(super) async fn drive(self) -> Result<(), String> {
        let waits = Rc::new(Waits::of(&self));
        let gate = Rc::new(BulkGate::default());
        let shared: Shared = Rc::new(RwLock::new(self));
        let bulk = lanes::spawn(
            Lane::Bulk,
            drive_bulk(shared.clone(), waits.clone(), gate.clone()),
        );
        drive_rt(&shared, &waits, &gate).await;
        gate.stop.set(true);
        gate.wake.raise();
        bulk.await;
        // The channels' clones go before the shard's `Inlet` empties them.
        drop(waits);
        let Ok(lock) = Rc::try_unwrap(shared) else {
            unreachable!("the bulk half ended, and with it its hold on the shard");
        };
        let task = lock
            .into_inner()
            .unwrap_or_else(|_| unreachable!("the shard's lock is never closed"));
        task.shutdown().await
    }

    /// One turn of the rt half.
    async fn rt_turn(&mut self) -> RtTurn {
        self.settle_local().await;
        let mut worked = false;
        for _ in 0..CONTROLS_PER_TURN_MAX {
            match self.inlet.control.try_recv() {
                Ok(c) => {
                    worked = true;
                    if self.control(c).await {
                        return RtTurn::Stop;
                    }
                }
                Err(flume::TryRecvError::Empty) => break,
                Err(flume::TryRecvError::Disconnected) => return RtTurn::Stop,
            }
        }
        for _ in 0..INPUTS_PER_TURN_MAX {
            let Ok(m) = self.inlet.inbox.try_recv() else {
                break;
            };
            worked = true;
            self.rt_seen(&m);
            self.inbound(m).await;
        }
        self.end_turn().await;
        if worked {
            return RtTurn::Worked;
        }
        // Draining: look again every SETTLE_POLL_MS (or at the timer, if sooner).
        let poll_ms = self.drain_done.is_some().then(|| {
            let now_ms = self.clock.now_ms();
            self.timer_at_ms.map_or(super::SETTLE_POLL_MS, |at| {
                at.saturating_sub(now_ms).min(super::SETTLE_POLL_MS)
            })
        });
        RtTurn::Idle { poll_ms }
    }

    /// Handles what ended the rt half's wait; true means shut down now.
    async fn rt_woken(&mut self, wake: Wake) -> bool {
        match wake {
            Wake::RtInbound(m) => {
                self.rt_seen(&m);
                self.inbound(m).await;
                self.end_turn().await;
                false
            }
            Wake::Control(c) => {
                if self.control(c).await {
                    return true;
                }
                self.end_turn().await;
                false
            }
            Wake::ChannelsClosed => true,
            Wake::Local => false,
        }
    }

    /// One turn of the bulk half, from its first message: more of the
    /// bulk inbox while the log has room for bulk and no rt work waits.
    async fn bulk_turn(&mut self, first: Inbound) {
        let unwritten_at_start = self.log.unwritten_bytes();
        self.bulk_seen_at = Some(Instant::now());
        self.inbound(first).await;
        for _ in 1..INPUTS_PER_TURN_MAX {
            if !self.bulk_room(unwritten_at_start) || self.rt_waits() {
                break;
            }
            let Ok(m) = self.inlet.bulk.try_recv() else {
                break;
            };
            self.bulk_seen_at = Some(Instant::now());
            self.inbound(m).await;
        }
        self.end_turn().await;
    }

    /// True when rt work waits for the shard: a message in the rt inbox or
    /// the control channel, or (while calls come) glommio asking the
    /// running task to yield, which it does when the rt lane has work.
    fn rt_waits(&self) -> bool {
        let calls_came = self
            .rt_seen_at
            .is_some_and(|at| at.elapsed() <= Duration::from_millis(super::RT_QUIET_MS));
        let rt_queued = !self.inlet.inbox.is_empty() || !self.inlet.control.is_empty();
        bulk_turn_ends(rt_queued, calls_came, || glommio::executor().need_preempt())
    }

    /// Wakes the bulk half if it waits for room and the log has room now.
    fn open_gate(&self, gate: &BulkGate) {
        if gate.waits_for_room.get() && self.bulk_room(self.log.unwritten_bytes()) {
            gate.wake.raise();
        }
    }
}

/// Whether a bulk turn ends before its next message: rt work is queued in
/// the shard's own channels, or, while calls come, glommio asks the running
/// task to yield (the rt lane has work elsewhere: a call's task, the
/// flusher). Without calls the preemption timer alone (every 1 ms) would
/// cut bulk alone into more, smaller commits for nobody.
fn bulk_turn_ends(rt_queued: bool, calls_came: bool, preempt_asked: impl Fn() -> bool) -> bool {
    rt_queued || (calls_came && preempt_asked())
}

/// Takes the shard for one turn.
async fn lock(shared: &Shared) -> RwLockWriteGuard<'_, ShardTask> {
    shared
        .write()
        .await
        .unwrap_or_else(|_| unreachable!("the shard's lock is never closed"))
}

/// The rt half: returns when the shard is to shut down.
async fn drive_rt(shared: &Shared, waits: &Waits, gate: &BulkGate) {
    // Bounded per pass (the turn's limits); runs until shutdown.
    loop {
        let turn = {
            let mut task = lock(shared).await;
            let held_at = Instant::now();
            let turn = task.rt_turn().await;
            task.open_gate(gate);
            holds::note(Hold::RtTurn, held_at);
            turn
        };
        let poll_ms = match turn {
            RtTurn::Stop => return,
            RtTurn::Worked => {
                future::yield_now().await;
                continue;
            }
            RtTurn::Idle { poll_ms } => poll_ms,
        };
        let wake = waits.rt(poll_ms).await;
        let mut task = lock(shared).await;
        let held_at = Instant::now();
        let stop = task.rt_woken(wake).await;
        task.open_gate(gate);
        holds::note(Hold::RtTurn, held_at);
        if stop {
            return;
        }
    }
}

/// The bulk half: returns once the rt half stops it.
async fn drive_bulk(shared: Shared, waits: Rc<Waits>, gate: Rc<BulkGate>) {
    // Each pass waits for room or a message, or steps one bounded turn.
    loop {
        if gate.stop.get() {
            return;
        }
        let room = {
            let task = lock(&shared).await;
            task.bulk_room(task.log.unwritten_bytes())
        };
        if !room {
            // The rt half opens the gate after the commit that makes room.
            gate.waits_for_room.set(true);
            gate.wake.wait().await;
            gate.waits_for_room.set(false);
            continue;
        }
        let first = future::or(async { Some(waits.bulk.recv_async().await) }, async {
            gate.wake.wait().await;
            None
        })
        .await;
        match first {
            Some(Ok(m)) => {
                let mut task = lock(&shared).await;
                let held_at = Instant::now();
                task.bulk_turn(m).await;
                holds::note(Hold::BulkTurn, held_at);
                drop(task);
                future::yield_now().await;
            }
            // The channel closed: the rt half sees it too and stops us.
            Some(Err(_)) => gate.wake.wait().await,
            None => {}
        }
    }
}

impl Waits {
    fn of(task: &ShardTask) -> Waits {
        Waits {
            inbox: task.inlet.inbox.clone(),
            bulk: task.inlet.bulk.clone(),
            control: task.inlet.control.clone(),
            commits: task.commits.clone(),
            history_commits: task.archive.commits.clone(),
            journal_commits: task.journal.as_ref().map(|j| j.commits.clone()),
            anchors: task.anchors.clone(),
            alarm: task.alarm.clone(),
        }
    }

    /// The rt half's wait: a control message, a commit (or an anchor), an
    /// rt message, the timer or (while draining) the next look.
    async fn rt(&self, poll_ms: Option<u64>) -> Wake {
        let inbox = async {
            match self.inbox.recv_async().await {
                Ok(m) => Wake::RtInbound(m),
                Err(_) => Wake::ChannelsClosed,
            }
        };
        let control = async {
            match self.control.recv_async().await {
                Ok(c) => Wake::Control(c),
                Err(_) => Wake::ChannelsClosed,
            }
        };
        let committed = async {
            let anchored = async {
                match &self.anchors {
                    Some(a) => a.wake_driver.wait().await,
                    None => future::pending().await,
                }
            };
            let journaled = async {
                match &self.journal_commits {
                    Some(j) => j.wake_driver.wait().await,
                    None => future::pending().await,
                }
            };
            future::or(
                future::or(
                    self.commits.wake_driver.wait(),
                    self.history_commits.wake_driver.wait(),
                ),
                future::or(journaled, anchored),
            )
            .await;
            Wake::Local
        };
        let timer = async {
            match poll_ms {
                Some(ms) => glommio::timer::sleep(Duration::from_millis(ms)).await,
                None => self.alarm.rang.wait().await,
            }
            Wake::Local
        };
        // Polled in this order when several are ready.
        future::or(control, future::or(committed, future::or(inbox, timer))).await
    }
}

#[cfg(test)]
mod tests {
    use super::bulk_turn_ends;

    #[test]
    fn given_rt_work_queued_when_a_bulk_turn_asks_then_it_ends() {
        for calls_came in [false, true] {
            assert!(bulk_turn_ends(true, calls_came, || false));
        }
    }

    #[test]
    fn given_calls_coming_when_glommio_asks_to_preempt_then_the_bulk_turn_ends() {
        assert!(bulk_turn_ends(false, true, || true));
        assert!(!bulk_turn_ends(false, true, || false));
    }

    #[test]
    fn given_no_calls_when_glommio_asks_to_preempt_then_bulk_alone_goes_on() {
        assert!(!bulk_turn_ends(false, false, || true));
    }
}
