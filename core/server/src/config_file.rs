//! The TOML configuration of `gonets serve` (docs/operations.md lists every
//! key). Every key has a default; with no file at all the server runs on
//! loopback with the embedded demo registry and development certificates
//! made under the data directory.

use crate::settings::{Security, ServerSettings};
use crate::tls;
use crate::ServerError;
use gonets_engine::registry::Registry;
use gonets_engine::runtime::HubConfig;
use gonets_proto::Limits;
use serde::Deserialize;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Default shared listen address.
pub const LISTEN_DEFAULT: &str = "127.0.0.1:7400";
/// Default data directory (relative to the working directory).
pub const DATA_DIR_DEFAULT: &str = "gonets-data";

/// The file's contents.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// Where the shards' logs live.
    pub data_dir: Option<PathBuf>,
    /// Shards (default: one per core). Fixed for the life of a data directory.
    pub shards: Option<u16>,
    /// Pin shard i to cores[i] (default: unpinned).
    pub cores: Option<Vec<usize>>,
    /// Registry file (default: the embedded demo registry).
    pub registry: Option<PathBuf>,
    /// Shared listen address, every shard accepts on it (SO_REUSEPORT).
    pub listen: Option<SocketAddr>,
    /// Shard i also listens on this port + i (shard-aware clients).
    pub shard_port_base: Option<u16>,
    /// `"tls"` (default) or `"dev-token"`: plain TCP, participants
    /// authenticated by their registry tokens, loopback only.
    pub security: Option<String>,
    /// Mutual TLS files (default: development certificates under the data directory).
    pub tls: Option<TlsSection>,
    /// Frame and connection limits.
    #[serde(default)]
    pub limits: LimitsSection,
    /// Group commit.
    #[serde(default)]
    pub commit: CommitSection,
    /// Retention.
    #[serde(default)]
    pub retention: RetentionSection,
}

/// `[tls]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSection {
    /// Server certificate chain (PEM).
    pub cert: PathBuf,
    /// Server private key (PEM).
    pub key: PathBuf,
    /// CA that signs client certificates (PEM).
    pub client_ca: PathBuf,
}

/// `[limits]`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsSection {
    /// Largest JSON header, bytes.
    pub header_bytes_max: Option<u32>,
    /// Largest frame body, bytes.
    pub body_bytes_max: Option<u32>,
    /// Requests in flight per connection.
    pub in_flight_per_connection_max: Option<usize>,
    /// Open connections per shard.
    pub connections_per_shard_max: Option<usize>,
    /// Time for handshake and hello, ms.
    pub hello_timeout_ms: Option<u64>,
    /// Time from a frame's first byte to its last, ms.
    pub frame_read_timeout_ms: Option<u64>,
}

/// `[commit]`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommitSection {
    /// Longest wait to gather a group commit, µs.
    pub window_us: Option<u64>,
    /// Segment file size, bytes.
    pub segment_size_bytes: Option<u64>,
}

/// `[retention]`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionSection {
    /// How long a finished exchange's history stays in memory, ms (it is
    /// archived and readable for ever after).
    pub finished_keep_ms: Option<u64>,
    /// Segments whose messages are all finished are dropped once every
    /// message in them is older than this, ms (0: as soon as nothing needs them).
    pub retention_ms: Option<u64>,
}

/// What `gonets serve` runs: the hub's and the front end's settings.
pub struct ServeConfig {
    /// The hub.
    pub hub: HubConfig,
    /// The front end.
    pub server: ServerSettings,
    /// Where the development certificates are, if they were made.
    pub dev_certs: Option<PathBuf>,
}

impl ConfigFile {
    /// Reads and parses `path`.
    pub fn load(path: &Path) -> Result<ConfigFile, ServerError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ServerError::Config(format!("cannot read {}: {e}", path.display())))?;
        ConfigFile::parse(&text)
            .map_err(|e| ServerError::Config(format!("{}: {e}", path.display())))
    }

    /// Parses TOML text.
    pub fn parse(text: &str) -> Result<ConfigFile, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    /// Builds the hub and front-end settings; without `[tls]` or
    /// `[dev_tokens]`, makes development certificates under the data directory.
    pub fn resolve(self) -> Result<ServeConfig, ServerError> {
        let data_dir = self
            .data_dir
            .unwrap_or_else(|| PathBuf::from(DATA_DIR_DEFAULT));
        let mut hub = HubConfig::new(&data_dir);
        if let Some(n) = self.shards {
            hub.shards = n;
        }
        hub.pin_cores = self.cores;
        let registry = match &self.registry {
            Some(path) => Registry::from_file(path)
                .map_err(|e| ServerError::Config(format!("registry {}: {e}", path.display())))?,
            None => Registry::embedded_default(),
        };
        hub.registry = Arc::new(registry);
        if let Some(w) = self.commit.window_us {
            hub.log.commit_window_us = w;
        }
        if let Some(s) = self.commit.segment_size_bytes {
            hub.log.segment_size_bytes = s;
        }
        if let Some(k) = self.retention.finished_keep_ms {
            hub.shard.finished_keep_ms = Some(k);
        }
        if let Some(r) = self.retention.retention_ms {
            hub.shard.retention_ms = r;
        }
        let listen = match self.listen {
            Some(a) => a,
            None => LISTEN_DEFAULT.parse().expect("the default address parses"),
        };
        let mut dev_certs = None;
        let security = match (self.security.as_deref().unwrap_or("tls"), self.tls) {
            ("dev-token", Some(_)) => {
                return Err(ServerError::Config(
                    "security = \"dev-token\" takes no [tls] section".into(),
                ))
            }
            ("dev-token", None) => Security::DevTokens(Arc::new(registry_tokens(&hub.registry))),
            ("tls", Some(t)) => Security::Tls(tls::server_config(&tls::ServerTlsFiles {
                cert: t.cert,
                key: t.key,
                client_ca: t.client_ca,
            })?),
            (other, _) if other != "tls" => {
                return Err(ServerError::Config(format!(
                    "security = {other:?}: expected \"tls\" or \"dev-token\""
                )))
            }
            _ => {
                let dir = data_dir.join("dev-certs");
                let certs = ensure_dev_certs(&dir, &hub.registry)?;
                dev_certs = Some(dir);
                Security::Tls(tls::server_config(&certs.server_files())?)
            }
        };
        let mut server = ServerSettings::new(listen, security);
        server.shard_port_base = self.shard_port_base;
        let defaults = Limits::default();
        server.limits = Limits {
            header_bytes_max: self
                .limits
                .header_bytes_max
                .unwrap_or(defaults.header_bytes_max),
            body_bytes_max: self
                .limits
                .body_bytes_max
                .unwrap_or(defaults.body_bytes_max),
        };
        if let Some(n) = self.limits.in_flight_per_connection_max {
            server.in_flight_per_connection_max = n;
        }
        if let Some(n) = self.limits.connections_per_shard_max {
            server.connections_per_shard_max = n;
        }
        if let Some(ms) = self.limits.hello_timeout_ms {
            server.hello_timeout_ms = ms;
        }
        if let Some(ms) = self.limits.frame_read_timeout_ms {
            server.frame_read_timeout_ms = ms;
        }
        server.validate().map_err(ServerError::Config)?;
        Ok(ServeConfig {
            hub,
            server,
            dev_certs,
        })
    }
}

/// Participant → development token, from the registry.
pub fn registry_tokens(registry: &Registry) -> HashMap<String, String> {
    registry
        .participants()
        .filter_map(|p| Some((p.id.to_string(), p.token.clone()?)))
        .collect()
}

/// The development certificates in `dir` for every registered participant:
/// reused when a complete set is there (clients keep working across
/// restarts), made afresh otherwise.
pub fn ensure_dev_certs(dir: &Path, registry: &Registry) -> Result<tls::DevCerts, ServerError> {
    let participants: Vec<String> = registry.participants().map(|p| p.id.to_string()).collect();
    let ids: Vec<&str> = participants.iter().map(String::as_str).collect();
    let existing = tls::DevCerts::layout(dir, &ids);
    if existing.is_complete() {
        return Ok(existing);
    }
    Ok(tls::make_dev_certs(dir, &ids, &["localhost", "127.0.0.1"])?)
}
