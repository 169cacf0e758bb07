//! Where the operator API listens, what it reports about the hub, and the
//! rule that keeps it on loopback.

use crate::monitor::MonitorSettings;
use crate::OperatorError;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::Arc;

/// The default address: loopback only.
pub const OPERATOR_LISTEN_DEFAULT: &str = "127.0.0.1:7480";

/// Most HTTP connections served at once; more are closed at accept.
pub(crate) const CONNECTIONS_MAX: usize = 64;
/// How long the API waits for one shard's stats, ms.
pub(crate) const SHARD_WAIT_MS: u64 = 2_000;
/// How long one HTTP connection may take to send its request head, ms.
pub(crate) const HEADER_READ_TIMEOUT_MS: u64 = 10_000;

/// `operator_listen` (config key or `--operator-listen`): an address, or
/// `none` (any case) to run without the operator API.
pub fn parse_listen(text: &str) -> Result<Option<SocketAddr>, OperatorError> {
    if text.eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    text.parse()
        .map(Some)
        .map_err(|_| OperatorError::BadListen(text.to_string()))
}

/// Decides whether a verified client certificate (its leaf, DER) is an
/// operator's: the participant's id, or why not.
pub type AuthorizeOperator = dyn Fn(&[u8]) -> Result<String, String> + Send + Sync;

/// Mutual TLS for the API off loopback: the server's configuration (it
/// requires and verifies client certificates) and the operator check.
#[derive(Clone)]
pub struct OperatorTls {
    /// The native port's server configuration; the API offers ALPN
    /// `http/1.1` on a copy of it.
    pub config: Arc<rustls::ServerConfig>,
    /// The operator check of a verified leaf certificate.
    pub authorize: Arc<AuthorizeOperator>,
}

impl std::fmt::Debug for OperatorTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OperatorTls")
    }
}

impl OperatorTls {
    /// The configuration the API serves with: ALPN `http/1.1` instead of
    /// the native protocol's.
    pub(crate) fn http_config(&self) -> Arc<rustls::ServerConfig> {
        let mut config = (*self.config).clone();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(config)
    }
}

/// What the operator API runs with.
#[derive(Clone, Debug)]
pub struct OperatorSettings {
    /// Where it listens. On loopback it serves plain HTTP; elsewhere only
    /// HTTPS to operators with a client certificate (`tls`), and without
    /// `tls` such an address is refused ([`OperatorError::NotLoopback`]).
    pub listen: SocketAddr,
    /// What `/info` reports.
    pub info: HubInfo,
    /// Mutual TLS, for an address off loopback (`None` in development mode).
    pub tls: Option<OperatorTls>,
    /// Provider monitoring, events and SLA collection.
    pub monitor: MonitorSettings,
}

impl OperatorSettings {
    /// The TLS the listener uses: only off loopback.
    pub(crate) fn tls_in_use(&self) -> Option<&OperatorTls> {
        self.tls
            .as_ref()
            .filter(|_| !self.listen.ip().is_loopback())
    }
}

/// The hub's fixed facts, as `/info` reports them.
#[derive(Clone, Debug)]
pub struct HubInfo {
    /// The gonets version.
    pub version: String,
    /// The data directory (absolute).
    pub data_dir: PathBuf,
    /// Cores the shards are pinned to, by shard (`None`: unpinned).
    pub pinned_cores: Option<Vec<usize>>,
    /// The hardware profile `serve` runs with: its name and file (`None`: none).
    pub profile: Option<ProfileInfo>,
}

/// The hardware profile a hub runs with, as `/info` reports it.
#[derive(Clone, Debug)]
pub struct ProfileInfo {
    /// The profile's `name`.
    pub name: String,
    /// The file it was read from.
    pub path: PathBuf,
}

/// Binds the API's socket (before the hub starts, so a taken port, or an
/// address off loopback without mutual TLS, stops the start-up at once).
pub(crate) fn bind(addr: SocketAddr, tls: bool) -> Result<TcpListener, OperatorError> {
    if !addr.ip().is_loopback() && !tls {
        return Err(OperatorError::NotLoopback { addr });
    }
    let listener =
        TcpListener::bind(addr).map_err(|source| OperatorError::Bind { addr, source })?;
    listener
        .set_nonblocking(true)
        .map_err(|source| OperatorError::Bind { addr, source })?;
    Ok(listener)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_none_when_parsed_then_no_listener() {
        assert_eq!(parse_listen("none").unwrap(), None);
        assert_eq!(parse_listen("NONE").unwrap(), None);
    }

    #[test]
    fn given_an_address_when_parsed_then_it_is_kept() {
        let addr = parse_listen("127.0.0.1:7480").unwrap();
        assert_eq!(addr, Some(OPERATOR_LISTEN_DEFAULT.parse().unwrap()));
    }

    #[test]
    fn given_garbage_when_parsed_then_refused_with_the_text() {
        let e = parse_listen("localhost").unwrap_err();
        assert!(e.to_string().contains("\"localhost\""), "{e}");
    }

    #[test]
    fn given_an_address_off_loopback_when_bound_then_refused_before_binding() {
        let e = bind("0.0.0.0:0".parse().unwrap(), false).unwrap_err();
        assert!(matches!(e, OperatorError::NotLoopback { .. }), "{e}");
        assert!(e.to_string().contains("operator certificate"), "{e}");
    }
}
