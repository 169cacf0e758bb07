//! The glommio runtime around the sans-IO shard, and the in-process
//! embedding API.
//!
//! [`Hub::start`] runs one glommio executor thread per shard; each owns its
//! shard's state machine, log, timer and reply channels (shared nothing but
//! the immutable registry and the channels). A [`Session`] sends operations
//! to the shard owning the queue or message and awaits the reply; shards
//! hand each other answers and delivery notices through bounded channels.
//!
//! Modules, one job each: `config` (what a hub starts with), `start_error`,
//! `hub` (threads, start and stop), `shard_task` (the per-shard driver),
//! `recovery` (replay from the snapshot mark), `committer` (group-commit
//! waiter), `outbox` (peer messages without blocking), `mesh` (the
//! channels), `payload` (payloads read back from the log), `repair` (setting damaged
//! records aside, `gonets repair`), `session` (the client
//! handle), `message` (what sessions get), `archive` (finished histories
//! for ever, ADR 0005), `clock`, `signal`, `stats` (what a shard
//! tells the operator), `lanes` (the task queues: rt before bulk before
//! background, ADR 0015), `rt_stages` (where an rt exchange's time goes in
//! the hub), `anchors` (signed chain anchors, ADR 0020),
//! `verify` (the read-only check of a data directory, `gonets verify`).

mod alarm;
pub mod anchors;
mod archive;
pub mod attachments;
mod clock;
mod committer;
pub mod config;
pub mod holds;
mod hub;
pub mod lanes;
mod mesh;
mod message;
mod outbox;
mod payload;
pub mod placement;
mod recovery;
pub mod repair;
pub mod rt_journal;
pub mod rt_recent;
pub mod rt_stages;
mod session;
mod shard_task;
mod signal;
pub mod stall_report;
mod start_error;
pub mod stats;
#[cfg(test)]
mod test_executor;
#[cfg(test)]
mod test_logs;
pub mod verify;
pub mod verify_journal;
pub mod within;

pub use config::{HubConfig, ShardTuning};
pub use hub::{Hub, HubHandle, ShardFailure, EXIT_LOG_FAILED};
pub use mesh::LocalTask;
pub use message::{Accepted, Message};
pub use session::{Session, Subscription};
pub use start_error::HubStartError;
