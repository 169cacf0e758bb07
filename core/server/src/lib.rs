//! The network front end: listeners on every shard's executor (one shared
//! port with SO_REUSEPORT, plus one port per shard for shard-aware
//! clients), the per-connection protocol loop, the `gonets serve` config
//! file and the start-up checks.
//!
//! Modules: `settings` (what the front end runs with), `listener` (accept
//! loops), `connection` (one connection: hello, frames in, replies out),
//! `config_file` (the TOML config of `gonets serve`), `checks` (start-up
//! checks with clear messages), `frame_within` (a frame read with a time
//! bound), `tls` (mutual TLS: configs, identities, development certificates).

pub mod checks;
pub mod config_file;
mod connection;
mod frame_within;
pub mod hub_key_file;
mod listener;
pub mod settings;
pub mod tls;
mod vectored;
mod writer;

pub use listener::{start_front_ends, FrontEnds};
pub use settings::{Security, ServerSettings};

/// Why the server did not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// A start-up check failed.
    #[error("{0}")]
    Check(String),
    /// The configuration is invalid.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {reason}")]
    Listen {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why.
        reason: String,
    },
    /// The hub failed.
    #[error(transparent)]
    Hub(#[from] gonets_types::HubError),
    /// The hub did not start.
    #[error(transparent)]
    HubStart(#[from] gonets_engine::HubStartError),
    /// TLS files could not be loaded.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
}
