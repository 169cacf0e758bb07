//! Where a real-time exchange spends its time inside the hub: each stage
//! of a call and of its answer, timed where it happens and counted in
//! power-of-two microsecond buckets per executor (a thread local: nothing
//! is shared between shards), read with the shard's stats and exported as
//! `gonets_rt_stage_seconds{op, stage}`.
//!
//! An operation's stages, in order (issue 16: which hop of an rt call
//! waits beside bulk):
//!
//! - [`Stage::Spawn`]: its frame decoded by the connection → its operation
//!   task runs (the wait in its lane's task queue).
//! - [`Stage::Inbox`]: handed to the shard's inbox → stepped by the driver.
//! - [`Stage::Shard`]: stepped → its reply sent by the driver. For a call,
//!   the delivery to the provider, the provider's turn, the answer's way
//!   in and the answer's commit; for an answer, its commit.
//! - [`Stage::Out`]: the reply taken by the operation task → its frame
//!   written to the socket.
//! - [`Stage::Hub`]: the whole stay, frame decoded → reply written.
//!
//! The means add up (their sums are exact): `hub − spawn − inbox − shard
//! − out` is the reply's hop from the driver to the operation task.

use gonets_storage::commit_stats::Log2Histogram;
use gonets_types::Command;
use std::cell::RefCell;
use std::time::Instant;

/// The real-time operations timed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RtOp {
    /// A `call` (signed or not).
    Call,
    /// A `send_response` (signed or not): the answer to a call or request.
    Answer,
}

impl RtOp {
    /// Both, in the order [`read`] reports them.
    pub const ALL: [RtOp; 2] = [RtOp::Call, RtOp::Answer];

    /// The operation timed for `command`, if any.
    pub fn of(command: &Command) -> Option<RtOp> {
        match command.unsigned() {
            Command::Call(_) => Some(RtOp::Call),
            Command::SendResponse { .. } => Some(RtOp::Answer),
            _ => None,
        }
    }

    /// The metric's `op` label.
    pub fn name(self) -> &'static str {
        match self {
            RtOp::Call => "call",
            RtOp::Answer => "answer",
        }
    }
}

/// One stage of an operation's stay in the hub (see the module's list).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Frame decoded → operation task runs.
    Spawn,
    /// Handed to the shard's inbox → stepped by the driver.
    Inbox,
    /// Stepped → reply sent by the driver.
    Shard,
    /// Reply taken by the operation task → frame written.
    Out,
    /// Frame decoded → reply written.
    Hub,
}

impl Stage {
    /// Every stage, in the order [`read`] reports them.
    pub const ALL: [Stage; STAGE_COUNT] = [
        Stage::Spawn,
        Stage::Inbox,
        Stage::Shard,
        Stage::Out,
        Stage::Hub,
    ];

    /// The metric's `stage` label.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Spawn => "spawn",
            Stage::Inbox => "inbox",
            Stage::Shard => "shard",
            Stage::Out => "out",
            Stage::Hub => "hub",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

const STAGE_COUNT: usize = 5;
const OP_COUNT: usize = 2;

type Table = [[Log2Histogram; STAGE_COUNT]; OP_COUNT];

thread_local! {
    /// This executor's histograms, µs, since it started.
    static STAGES: RefCell<Table> = RefCell::new(Default::default());
}

/// Counts `op`'s `stage` as having taken from `since` until now.
pub fn note(op: RtOp, stage: Stage, since: Instant) {
    let took_us = u64::try_from(since.elapsed().as_micros()).unwrap_or(u64::MAX);
    STAGES.with(|t| t.borrow_mut()[op as usize][stage.index()].note(took_us));
}

/// This executor's histograms (µs) of every operation's every stage, in
/// [`RtOp::ALL`] × [`Stage::ALL`] order.
pub fn read() -> Vec<(RtOp, Stage, Log2Histogram)> {
    STAGES.with(|t| {
        let t = t.borrow();
        let mut out = Vec::with_capacity(OP_COUNT * STAGE_COUNT);
        for op in RtOp::ALL {
            for stage in Stage::ALL {
                out.push((op, stage, t[op as usize][stage.index()]));
            }
        }
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use gonets_types::ids::MessageId;
    use std::time::Duration;

    #[test]
    fn given_stages_noted_when_read_then_each_counts_in_its_own_cell() {
        let ago = Instant::now() - Duration::from_millis(3);
        note(RtOp::Call, Stage::Inbox, ago);
        note(RtOp::Call, Stage::Inbox, Instant::now());
        note(RtOp::Answer, Stage::Hub, ago);
        let read = read();
        assert_eq!(read.len(), OP_COUNT * STAGE_COUNT);
        let count = |op, stage| {
            read.iter()
                .find(|(o, s, _)| *o == op && *s == stage)
                .map(|(_, _, h)| h.count())
                .unwrap()
        };
        assert_eq!(count(RtOp::Call, Stage::Inbox), 2);
        assert_eq!(count(RtOp::Answer, Stage::Hub), 1);
        assert_eq!(count(RtOp::Call, Stage::Hub), 0);
        let inbox = read
            .iter()
            .find(|(o, s, _)| *o == RtOp::Call && *s == Stage::Inbox)
            .unwrap()
            .2;
        assert!(inbox.sum() >= 3_000, "3 ms ago is at least 3,000 µs");
    }

    #[test]
    fn given_commands_when_classified_then_only_calls_and_answers_are_timed() {
        let id = MessageId::new(1, 0, 1);
        let answer = Command::SendResponse {
            request_id: id,
            payload: Default::default(),
            attachments: Vec::new(),
        };
        assert_eq!(RtOp::of(&answer), Some(RtOp::Answer));
        assert_eq!(RtOp::of(&Command::Status { id }), None);
    }
}
