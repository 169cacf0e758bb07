//! Peer messages on their way to other shards, without ever blocking the
//! reactor.
//!
//! A message goes straight into the peer's inbox with `try_send`. When that
//! inbox is full, it (and every later message to that peer, to keep them in
//! order) waits in this shard's lane for the peer, which one task per peer
//! drains with `send_async`. The shard's own loop never waits on a peer, so
//! two shards with full inboxes cannot deadlock: each keeps reading its own.
//!
//! Bound: while any lane holds `outbox_messages_max` messages or more, the
//! shard refuses new client commands (`Unavailable`, retry later). Every peer
//! message descends from an accepted command or from state the shard already
//! holds (a deadline, a lease, a recovered answer), so with no new commands
//! the lanes only shrink past the bound by what is already in flight.

use crate::runtime::mesh::Inbound;
use crate::runtime::signal::LocalSignal;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;

/// One peer's lane.
struct Lane {
    peer: u16,
    tx: flume::Sender<Inbound>,
    pending: RefCell<VecDeque<Inbound>>,
    /// The drainer holds a message it is sending.
    in_flight: Cell<bool>,
    /// The peer's inbox is gone (the peer stopped): messages are dropped.
    closed: Cell<bool>,
    wake: LocalSignal,
    stop: Cell<bool>,
}

impl Lane {
    fn len(&self) -> usize {
        self.pending.borrow().len() + usize::from(self.in_flight.get())
    }
}

/// What happened to a message sent to a peer.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Sent {
    /// In the peer's inbox.
    Delivered,
    /// Waits in the lane for the peer.
    Queued,
    /// The peer has stopped; the message was dropped.
    PeerGone,
}

/// This shard's lanes to every other shard.
pub(crate) struct Outbox {
    lanes: Vec<Option<Rc<Lane>>>,
    messages_max: usize,
}

impl Outbox {
    /// Lanes from shard `own` to every other shard of `inboxes`; spawns one
    /// drainer task per peer on the current executor.
    pub(crate) fn start(
        own: u16,
        inboxes: &[flume::Sender<Inbound>],
        messages_max: usize,
    ) -> Outbox {
        assert!(messages_max > 0);
        let lanes = inboxes
            .iter()
            .enumerate()
            .map(|(peer, tx)| {
                if peer == usize::from(own) {
                    return None;
                }
                let lane = Rc::new(Lane {
                    peer: peer as u16,
                    tx: tx.clone(),
                    pending: RefCell::new(VecDeque::new()),
                    in_flight: Cell::new(false),
                    closed: Cell::new(false),
                    wake: LocalSignal::default(),
                    stop: Cell::new(false),
                });
                glommio::spawn_local(drain(lane.clone())).detach();
                Some(lane)
            })
            .collect();
        Outbox {
            lanes,
            messages_max,
        }
    }

    /// Sends `msg` to `peer` now, or queues it behind earlier ones.
    pub(crate) fn send(&self, peer: u16, msg: Inbound) -> Sent {
        let lane = self.lanes[usize::from(peer)]
            .as_ref()
            .expect("a shard feeds messages to itself locally");
        if lane.closed.get() {
            return Sent::PeerGone;
        }
        if lane.len() == 0 {
            match lane.tx.try_send(msg) {
                Ok(()) => return Sent::Delivered,
                Err(flume::TrySendError::Disconnected(_)) => {
                    lane.closed.set(true);
                    return Sent::PeerGone;
                }
                Err(flume::TrySendError::Full(msg)) => lane.pending.borrow_mut().push_back(msg),
            }
        } else {
            lane.pending.borrow_mut().push_back(msg);
        }
        lane.wake.raise();
        Sent::Queued
    }

    /// The peer whose lane is at its bound, if any (client commands wait then).
    pub(crate) fn congested_peer(&self) -> Option<(u16, usize)> {
        self.lanes
            .iter()
            .flatten()
            .find(|l| l.len() >= self.messages_max)
            .map(|l| (l.peer, l.len()))
    }

    /// True when no message waits for any peer.
    pub(crate) fn is_empty(&self) -> bool {
        self.lanes.iter().flatten().all(|l| l.len() == 0)
    }

    /// Ends the drainer tasks once their lanes are empty.
    pub(crate) fn stop(&self) {
        for lane in self.lanes.iter().flatten() {
            lane.stop.set(true);
            lane.wake.raise();
        }
    }
}

/// Drains one lane into its peer's inbox, waiting for room as long as needed.
async fn drain(lane: Rc<Lane>) {
    loop {
        lane.wake.wait().await;
        // Bounded by the lane's length: each pass sends or drops one message.
        loop {
            let Some(msg) = lane.pending.borrow_mut().pop_front() else {
                break;
            };
            lane.in_flight.set(true);
            let sent = lane.tx.send_async(msg).await;
            lane.in_flight.set(false);
            if sent.is_err() {
                lane.closed.set(true);
                let dropped = std::mem::take(&mut *lane.pending.borrow_mut()).len() + 1;
                tracing::warn!(
                    peer = lane.peer,
                    dropped,
                    "peer shard stopped; messages to it dropped"
                );
            }
        }
        if lane.stop.get() {
            return;
        }
    }
}
