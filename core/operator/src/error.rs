//! Why the operator API cannot start.

use std::net::SocketAddr;

/// An operator API start-up failure.
#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    /// Off loopback the API must require an operator's identity (mutual
    /// TLS with an operator certificate), which this version does not do
    /// yet: such an address is refused rather than served open.
    #[error(
        "operator API on {addr}: off loopback it must require an operator certificate (mutual \
         TLS), which this version does not do yet; listen on a loopback address (e.g. \
         127.0.0.1:7480) and reach it through an SSH tunnel or a TLS proxy, or turn it off with \
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
    /// The thread or its runtime could not be made.
    #[error("operator API: cannot start its thread: {0}")]
    Thread(std::io::Error),
}
