//! Why the operator API cannot start.

use std::net::SocketAddr;

/// An operator API start-up failure.
#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    /// Off loopback the API requires an operator's identity (mutual TLS
    /// with an operator certificate), which needs `security = "tls"`: in
    /// development mode such an address is refused rather than served open.
    #[error(
        "operator API on {addr}: off loopback it requires an operator certificate (mutual \
         TLS), and the server runs without TLS (development mode); listen on a loopback \
         address (e.g. 127.0.0.1:7480), use security = \"tls\", or turn it off with \
         operator_listen = \"none\""
    )]
    NotLoopback {
        /// The address asked for.
        addr: SocketAddr,
    },
    /// The address is taken or may not be bound.
    #[error("operator API: cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// `operator_listen` is neither an address nor `none`.
    #[error("operator_listen = {0:?}: expected an address such as 127.0.0.1:7480, or \"none\"")]
    BadListen(String),
    /// A `[monitor]` setting the monitor cannot run with.
    #[error("{0}")]
    Config(String),
    /// The thread or its runtime could not be made.
    #[error("operator API: cannot start its thread: {0}")]
    Thread(std::io::Error),
}
