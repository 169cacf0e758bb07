//! gonets engine: the sans-IO shard state machine, the registry, the log
//! record format, and the glommio runtime that runs one shard per core
//! behind the embedding API ([`Hub`]). It speaks the vocabulary of
//! `gonets-types`; the wire protocol, the server and the clients live in
//! their own crates above (docs/architecture.md).

pub mod format;
pub mod record;
pub mod registry;
mod registry_keys;
mod registry_toml;
pub mod runtime;
pub mod shard;
pub mod trust_record;

/// The histogram type of a log's commit stats (`runtime::stats::LogReport`),
/// for readers above the engine (the operator API's `/metrics`).
pub use gonets_storage::commit_stats::Log2Histogram;
/// The log settings a [`HubConfig`] carries.
pub use gonets_storage::LogConfig;
pub use gonets_types::{
    Accepted, Command, DeliveryBody, HubError, Message, NewRequest, Reply, StatusView,
};
pub use registry::Registry;
pub use runtime::{
    Hub, HubConfig, HubHandle, HubStartError, LocalTask, Session, ShardTuning, Subscription,
};
