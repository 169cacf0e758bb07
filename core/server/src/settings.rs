//! What the front end runs with (built from the config file or by an embedder).

use gonets_proto::Limits;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

/// Default bound of requests in flight on one connection (pipelining depth);
/// the reader stops reading when it is reached.
pub const IN_FLIGHT_PER_CONNECTION_MAX_DEFAULT: usize = 1024;
/// Default bound of open connections per shard.
pub const CONNECTIONS_PER_SHARD_MAX_DEFAULT: usize = 4096;
/// Default time a new connection has for its TLS handshake and hello, ms.
pub const HELLO_TIMEOUT_MS_DEFAULT: u64 = 10_000;
/// Default time a client has to send a whole frame once its first byte
/// came, ms (a connection that starts a frame and stalls is closed).
pub const FRAME_READ_TIMEOUT_MS_DEFAULT: u64 = 30_000;
/// Default bound of reply frames queued for one connection's writer.
pub const WRITE_QUEUE_FRAMES_MAX_DEFAULT: usize = 4096;

/// How connections prove who they are.
#[derive(Clone)]
pub enum Security {
    /// Mutual TLS: the client certificate names the participant.
    Tls(Arc<rustls::ServerConfig>),
    /// Development only, loopback only: plain TCP, the hello names the
    /// participant and its token (participant → token).
    DevTokens(Arc<HashMap<String, String>>),
}

impl std::fmt::Debug for Security {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Security::Tls(_) => f.write_str("Tls"),
            Security::DevTokens(t) => write!(f, "DevTokens({} participants)", t.len()),
        }
    }
}

/// Everything the listeners and connections need.
#[derive(Clone, Debug)]
pub struct ServerSettings {
    /// The shared address every shard listens on (SO_REUSEPORT).
    pub listen: SocketAddr,
    /// If set, shard `i` also listens on this port + `i` (shard-aware clients).
    pub shard_port_base: Option<u16>,
    /// TLS or development tokens.
    pub security: Security,
    /// Frame limits, checked before allocation.
    pub limits: Limits,
    /// Requests in flight per connection before the reader waits.
    pub in_flight_per_connection_max: usize,
    /// Open connections per shard; more are closed at once with an error.
    pub connections_per_shard_max: usize,
    /// Time for the TLS handshake and the hello, ms.
    pub hello_timeout_ms: u64,
    /// Time from the first byte of a frame to its last after the hello, ms;
    /// past it the connection is closed with a fatal `BAD_FRAME`. (The wait
    /// between frames is not bounded: an idle connection stays open.)
    pub frame_read_timeout_ms: u64,
    /// Reply frames queued per connection before request tasks wait.
    pub write_queue_frames_max: usize,
}

impl ServerSettings {
    /// Settings with the defaults for everything but address and security.
    pub fn new(listen: SocketAddr, security: Security) -> ServerSettings {
        ServerSettings {
            listen,
            shard_port_base: None,
            security,
            limits: Limits::default(),
            in_flight_per_connection_max: IN_FLIGHT_PER_CONNECTION_MAX_DEFAULT,
            connections_per_shard_max: CONNECTIONS_PER_SHARD_MAX_DEFAULT,
            hello_timeout_ms: HELLO_TIMEOUT_MS_DEFAULT,
            frame_read_timeout_ms: FRAME_READ_TIMEOUT_MS_DEFAULT,
            write_queue_frames_max: WRITE_QUEUE_FRAMES_MAX_DEFAULT,
        }
    }

    /// Checks the rules no configuration may break; the error says which.
    pub fn validate(&self) -> Result<(), String> {
        if matches!(self.security, Security::DevTokens(_)) && !self.listen.ip().is_loopback() {
            return Err(format!(
                "development token mode (plain TCP) is allowed only on loopback, not on {}; \
                 configure TLS ([tls] cert, key, client_ca) to listen elsewhere",
                self.listen
            ));
        }
        if self.in_flight_per_connection_max == 0
            || self.connections_per_shard_max == 0
            || self.write_queue_frames_max == 0
        {
            return Err(
                "in_flight_per_connection_max, connections_per_shard_max and \
                        write_queue_frames_max must be positive"
                    .into(),
            );
        }
        if self.hello_timeout_ms == 0 || self.frame_read_timeout_ms == 0 {
            return Err(
                "limits: hello_timeout_ms and frame_read_timeout_ms must be positive".into(),
            );
        }
        if self.limits.body_bytes_max == 0 || self.limits.header_bytes_max < 64 {
            return Err(
                "limits: body_bytes_max must be positive and header_bytes_max at least 64".into(),
            );
        }
        Ok(())
    }

    /// The port of shard `shard`'s own listener, if any.
    pub fn shard_port(&self, shard: u16) -> Option<u16> {
        self.shard_port_base.map(|b| b.saturating_add(shard))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev() -> ServerSettings {
        let listen = "127.0.0.1:7400".parse().expect("an address");
        ServerSettings::new(listen, Security::DevTokens(Arc::new(HashMap::new())))
    }

    #[test]
    fn given_defaults_when_validated_then_the_frame_read_timeout_is_30_s() {
        let s = dev();
        assert_eq!(s.frame_read_timeout_ms, 30_000);
        assert_eq!(s.validate(), Ok(()));
    }

    #[test]
    fn given_a_zero_frame_read_timeout_when_validated_then_refused_naming_it() {
        let mut s = dev();
        s.frame_read_timeout_ms = 0;
        let e = s.validate().expect_err("0 ms is refused");
        assert!(e.contains("frame_read_timeout_ms"), "{e}");
    }
}
