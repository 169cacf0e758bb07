//! gonets engine: the sans-IO shard state machine, the registry, the log
//! record format, and the glommio runtime that runs one shard per core
//! behind the embedding API ([`Hub`]).

/// Runs its statements only in builds with the test-only `failpoints`
/// feature: records file steps in the storage layer's power-loss journal.
macro_rules! journal {
    ($($t:tt)*) => {
        #[cfg(feature = "failpoints")]
        {
            $($t)*
        }
    };
}

pub mod client;
pub mod durable_file;
pub mod error;
pub mod ids;
pub mod protocol;
pub mod record;
pub mod refusal;
pub mod registry;
mod registry_toml;
pub mod runtime;
pub mod server;
pub mod shard;
pub mod tls;

pub use error::HubError;
/// The log settings a [`HubConfig`] carries.
pub use gonets_storage::LogConfig;
pub use ids::{DataKindId, MessageId, ParticipantId, QueueId};
pub use refusal::RefusalCode;
pub use registry::Registry;
pub use runtime::{
    Accepted, Hub, HubConfig, HubHandle, HubStartError, LocalTask, Message, Session, ShardTuning,
    Subscription,
};
pub use shard::{DeliveryBody, NewRequest, StatusView};
