//! Why the gateway could not start.

use std::net::SocketAddr;

/// A gateway start-up failure.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// Development tokens travel in clear: off loopback the gateway needs
    /// mutual TLS (`security = "tls"`).
    #[error(
        "HTTP gateway on {addr}: off loopback it requires mutual TLS, and the server runs \
         with development tokens (plain HTTP); listen on a loopback address (e.g. \
         127.0.0.1:7481), use security = \"tls\", or turn it off with gateway_listen = \"none\""
    )]
    NotLoopback {
        /// The address asked for.
        addr: SocketAddr,
    },
    /// The address is taken or may not be bound.
    #[error("HTTP gateway: cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// `gateway_listen` is neither an address nor `none`.
    #[error("gateway_listen = {0:?}: expected an address such as 127.0.0.1:7481, or \"none\"")]
    BadListen(String),
    /// The thread or its runtime could not be made.
    #[error("HTTP gateway: cannot start its thread: {0}")]
    Thread(std::io::Error),
    /// Its thread could not be pinned to `gateway_cores`.
    #[error("HTTP gateway: gateway_cores: {0}")]
    Pin(#[from] gonets_engine::runtime::placement::PinError),
}
