//! Where the gateway listens, how it knows who calls, and its bounds.

use crate::GatewayError;
use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

/// The address the docs suggest (the gateway is off unless configured).
pub const GATEWAY_LISTEN_SUGGESTED: &str = "127.0.0.1:7481";
/// Most HTTP connections served at once; more are closed at accept.
pub(crate) const CONNECTIONS_MAX: usize = 1024;
/// How long one connection may take to send a request head, ms; hyper
/// also starts this clock when a kept-alive connection goes idle, so it
/// is the idle timeout too (docs/gateway.md "Bounds").
pub(crate) const HEADER_READ_TIMEOUT_MS: u64 = 10_000;
/// How long a request body may take to arrive whole, ms (a client that
/// trickles it is answered 408 and its connection closed).
pub(crate) const BODY_READ_TIMEOUT_MS: u64 = 60_000;
/// The longest long-poll a `fetch` may ask for, ms.
pub const FETCH_WAIT_MS_MAX: u64 = 30_000;
/// Messages a `fetch` returns when it does not say (`max`).
pub const FETCH_MAX_DEFAULT: u32 = 10;
/// The largest request body read when the settings do not say, bytes.
pub const BODY_BYTES_MAX_DEFAULT: usize = 16 * 1024 * 1024;

/// `gateway_listen` (config key or `--gateway-listen`): an address, or
/// `none` (any case) to run without the gateway.
pub fn parse_listen(text: &str) -> Result<Option<SocketAddr>, GatewayError> {
    if text.eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    text.parse()
        .map(Some)
        .map_err(|_| GatewayError::BadListen(text.to_string()))
}

/// Decides who a verified client certificate (its leaf, DER) is: the
/// participant's id, or why it is refused.
pub type IdentifyClient = dyn Fn(&[u8]) -> Result<String, String> + Send + Sync;

/// How callers prove who they are: the native port's two ways.
#[derive(Clone)]
pub enum GatewayAuth {
    /// Mutual TLS: the native port's server configuration (it requires and
    /// verifies client certificates; the gateway offers ALPN `http/1.1` on
    /// a copy) and the native rule from certificate to participant.
    Tls {
        /// The native port's TLS configuration.
        config: Arc<rustls::ServerConfig>,
        /// Certificate to participant.
        identify: Arc<IdentifyClient>,
    },
    /// Development only, loopback only: HTTP Basic credentials, the
    /// participant as the user and its registry token as the password
    /// (participant → token).
    DevTokens(Arc<HashMap<String, String>>),
}

impl std::fmt::Debug for GatewayAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GatewayAuth::Tls { .. } => f.write_str("Tls"),
            GatewayAuth::DevTokens(t) => write!(f, "DevTokens({} participants)", t.len()),
        }
    }
}

impl GatewayAuth {
    /// The TLS configuration the gateway serves with: ALPN `http/1.1`.
    pub(crate) fn http_config(config: &rustls::ServerConfig) -> Arc<rustls::ServerConfig> {
        let mut config = config.clone();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(config)
    }
}

/// What the gateway runs with.
#[derive(Clone, Debug)]
pub struct GatewaySettings {
    /// Where it listens; off loopback only with [`GatewayAuth::Tls`].
    pub listen: SocketAddr,
    /// How callers are identified.
    pub auth: GatewayAuth,
    /// The largest request body it reads, bytes (a larger one is refused
    /// `TOO_LARGE` before it is read whole).
    pub body_bytes_max: usize,
    /// CPUs its thread is pinned to (`gateway_cores`); empty: it keeps
    /// the mask of the thread that starts it.
    pub cores: Vec<usize>,
}

/// Binds the gateway's socket (before the hub starts, so a taken port or
/// development tokens off loopback stop the start-up at once).
pub(crate) fn bind(addr: SocketAddr, tls: bool) -> Result<TcpListener, GatewayError> {
    if !addr.ip().is_loopback() && !tls {
        return Err(GatewayError::NotLoopback { addr });
    }
    let listener = TcpListener::bind(addr).map_err(|source| GatewayError::Bind { addr, source })?;
    listener
        .set_nonblocking(true)
        .map_err(|source| GatewayError::Bind { addr, source })?;
    Ok(listener)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_none_or_an_address_when_parsed_then_off_or_that_address() {
        assert_eq!(parse_listen("None").unwrap(), None);
        let addr = parse_listen(GATEWAY_LISTEN_SUGGESTED).unwrap();
        assert_eq!(addr, Some(GATEWAY_LISTEN_SUGGESTED.parse().unwrap()));
        let e = parse_listen("localhost:1").unwrap_err();
        assert!(e.to_string().contains("\"localhost:1\""), "{e}");
    }

    #[test]
    fn given_dev_tokens_off_loopback_when_bound_then_refused_before_binding() {
        let e = bind("0.0.0.0:0".parse().unwrap(), false).unwrap_err();
        assert!(matches!(e, GatewayError::NotLoopback { .. }), "{e}");
        assert!(e.to_string().contains("mutual TLS"), "{e}");
    }
}
