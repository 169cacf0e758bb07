//! The TOML configuration of `gonets serve` (docs/operations.md lists every
//! key). Every key has a default; with no file at all the server runs on
//! loopback with the embedded demo registry and development certificates
//! made under the data directory.
//!
//! Relative paths in a file (`data_dir`, `registry`, `[tls]`) are relative
//! to the file's own directory, so that a file means the same whatever
//! directory the server starts in (a service manager's is often `/`); the
//! defaults, written in no file, are relative to the working directory.
//! Every path is made absolute once, here, before anything opens it
//! (glommio opens directories relative to no working directory).

use crate::settings::{Security, ServerSettings};
use crate::tls;
use crate::ServerError;
use gonets_engine::registry::Registry;
use gonets_engine::runtime::HubConfig;
use gonets_proto::Limits;
use gonets_storage::{DsyncWrites, Durability};
use serde::Deserialize;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Default shared listen address.
pub const LISTEN_DEFAULT: &str = "127.0.0.1:7400";
/// Default data directory (relative to the working directory).
pub const DATA_DIR_DEFAULT: &str = "gonets-data";
/// The hub key's file name in the data directory when `hub_key` names none.
pub const HUB_KEY_FILE: &str = "hub.key";

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
    /// CPUs the kernel's io-wq workers (every `fdatasync`) run on (default:
    /// those of the shard that started them; docs/adr/0024).
    pub io_worker_cores: Option<Vec<usize>>,
    /// Log each shard task queue run that goes this many ms over its
    /// budget, with its stack, and count it per lane (default: off;
    /// docs/adr/0031).
    pub stall_report_ms: Option<u64>,
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
    /// The history archive.
    #[serde(default)]
    pub archive: ArchiveSection,
    /// Provider monitoring, operator events and SLA collection.
    #[serde(default)]
    pub monitor: MonitorSection,
    /// The attachment store (docs/operations.md, "Attachments").
    #[serde(default)]
    pub attachments: AttachmentsSection,
    /// The operator API's address (default `127.0.0.1:7480`), or `"none"`
    /// for no operator API; read by `gonets serve` (crate `gonets-operator`).
    pub operator_listen: Option<String>,
    /// The HTTP/JSON gateway's address (e.g. `127.0.0.1:7481`), or
    /// `"none"` (the default): read by `gonets serve` (crate
    /// `gonets-gateway`, docs/gateway.md).
    pub gateway_listen: Option<String>,
    /// CPUs the HTTP gateway's thread is pinned to (default: unpinned, or
    /// a hardware profile's operator cores).
    pub gateway_cores: Option<Vec<usize>>,
    /// The hub's signing key file (receipts, chain anchors); made, with
    /// its `.pub` beside it, when missing. Default: `hub.key` in the data
    /// directory (a development key: in production keep it off the data disk).
    pub hub_key: Option<PathBuf>,
    /// Most time between two signed anchors of a shard's chain head while
    /// records are written, ms (default 10,000; 0: only after snapshots).
    pub anchor_interval_ms: Option<u64>,
}

/// `[attachments]` (docs/operations.md, "Attachments").
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttachmentsSection {
    /// How fast uploaded chunks are written, MiB a second (0: unpaced).
    pub write_mib_per_s: Option<u64>,
    /// How fast while real-time calls come, MiB a second (0: no pace of
    /// its own).
    pub beside_rt_write_mib_per_s: Option<u64>,
}

/// `[monitor]` (docs/operations.md, "Provider monitoring"). The operator
/// API's monitor reads all but `provider_unreachable_after_ms`, which the
/// shards apply (their `status` notices use it too).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MonitorSection {
    /// A provider is unreachable when requests wait and nobody has read
    /// its kind's queue for this long, ms (0: never; default 60 000).
    pub provider_unreachable_after_ms: Option<u64>,
    /// A deadline is at risk past this share of it, percent (default 80).
    pub deadline_risk_percent: Option<u8>,
    /// How often the monitor asks the shards, ms (default 1 000).
    pub interval_ms: Option<u64>,
    /// How often the SLA counts are written to disk, ms (default 10 000).
    pub sla_flush_ms: Option<u64>,
}

/// `[archive]`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArchiveSection {
    /// History-index entries (two per finished exchange) a shard holds in
    /// memory before it writes them as an index run.
    pub index_table_entries_max: Option<usize>,
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
    /// Largest batch one write and `fdatasync` carries, bytes (a multiple
    /// of 4096): bigger batches take more messages per sync under load;
    /// a real-time answer appended behind a full one waits for all of it.
    pub batch_bytes_max: Option<usize>,
    /// Bytes of bulk a shard's log may hold unwritten while real-time
    /// commands come (ADR 0015; default 512 KiB): what an rt record may
    /// find ahead of it. Smaller: a shorter rt wait beside bulk, less bulk.
    pub bulk_unwritten_bytes_max: Option<u64>,
    /// Most time a record nobody awaits (a call's request before its
    /// answer, delivery events) waits for a commit, ms (ADR 0025; default
    /// 5, at most 1000; 0: every turn commits what it appended).
    pub unawaited_delay_ms: Option<u64>,
    /// Whether each shard keeps an rt journal (docs/adr/0036; default
    /// off): a call's answer is durable, and goes to its caller, without
    /// waiting for the bulk bytes written before it.
    pub rt_journal: Option<bool>,
    /// How a batch is made durable (ADR 0027): `dsync` (the default: the
    /// segment written through an `O_DSYNC` descriptor, one I/O a commit) or
    /// `fdatasync` (a write, then an `fdatasync` that overlaps the next
    /// write). Both survive power loss.
    pub sync: Option<String>,
    /// With `sync = "dsync"`, where each batch write is submitted (ADR
    /// 0028): `auto` (the default: through an io-wq worker while real-time
    /// calls and bulk both keep the shard busy, else from the shard's
    /// thread), `worker` (always through a worker) or `inline` (always from
    /// the shard's thread; a device with FUA needs no flush to wait for).
    pub dsync_writes: Option<String>,
    /// How far ahead of the write position each log's active segment is
    /// overwritten with zeros in idle time while commits come sparsely,
    /// bytes (ADR 0001, 0037; default 32 MiB; 0: never). A batch then lands
    /// on written blocks (no extent conversion), at the price of writing
    /// every block twice.
    pub prewrite_ahead_bytes: Option<u64>,
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
    /// `operator_listen` as the file gives it (an address or `none`).
    pub operator_listen: Option<String>,
    /// `gateway_listen` as the file gives it (an address or `none`).
    pub gateway_listen: Option<String>,
    /// `gateway_cores` as the file gives it.
    pub gateway_cores: Option<Vec<usize>>,
    /// `[monitor]`, for the operator API's monitor.
    pub monitor: MonitorSection,
    /// Cores the shards are pinned to (`cores`), for the operator's `/info`.
    pub pinned_cores: Option<Vec<usize>>,
}

impl ConfigFile {
    /// Reads and parses `path`; its relative paths are taken relative to
    /// the file's directory (and made absolute).
    pub fn load(path: &Path) -> Result<ConfigFile, ServerError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ServerError::Config(format!("cannot read {}: {e}", path.display())))?;
        let file = ConfigFile::parse(&text)
            .map_err(|e| ServerError::Config(format!("{}: {e}", path.display())))?;
        let base = absolute(path)?
            .parent()
            .map(Path::to_path_buf)
            .ok_or_else(|| ServerError::Config(format!("{} has no directory", path.display())))?;
        Ok(file.relative_to(&base))
    }

    /// The file with its relative paths joined to `base`.
    fn relative_to(mut self, base: &Path) -> ConfigFile {
        let rebase = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        self.data_dir.iter_mut().for_each(rebase);
        self.registry.iter_mut().for_each(rebase);
        self.hub_key.iter_mut().for_each(rebase);
        if let Some(t) = &mut self.tls {
            [&mut t.cert, &mut t.key, &mut t.client_ca]
                .into_iter()
                .for_each(rebase);
        }
        self
    }

    /// The data directory, absolute: the file's, else [`DATA_DIR_DEFAULT`]
    /// in the working directory.
    pub fn data_dir(&self) -> Result<PathBuf, ServerError> {
        match &self.data_dir {
            Some(d) => absolute(d),
            None => absolute(Path::new(DATA_DIR_DEFAULT)),
        }
    }

    /// Parses TOML text.
    pub fn parse(text: &str) -> Result<ConfigFile, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    /// Builds the hub and front-end settings; without `[tls]` or
    /// `[dev_tokens]`, makes development certificates under the data directory.
    pub fn resolve(self) -> Result<ServeConfig, ServerError> {
        let data_dir = self.data_dir()?;
        let hub = self.hub_config(&data_dir)?;
        let pinned_cores = hub.pin_cores.clone();
        let listen = match self.listen {
            Some(a) => a,
            None => LISTEN_DEFAULT.parse().expect("the default address parses"),
        };
        let (security, dev_certs) = security(
            self.security.as_deref().unwrap_or("tls"),
            self.tls,
            &data_dir,
            &hub.registry,
        )?;
        let mut server = ServerSettings::new(listen, security);
        server.shard_port_base = self.shard_port_base;
        self.limits.apply_to(&mut server);
        server.validate().map_err(ServerError::Config)?;
        Ok(ServeConfig {
            hub,
            server,
            dev_certs,
            operator_listen: self.operator_listen,
            gateway_listen: self.gateway_listen,
            gateway_cores: self.gateway_cores,
            monitor: self.monitor,
            pinned_cores,
        })
    }

    /// The hub's settings: shards, cores, the registry (read from its file
    /// here), commit, retention and archive.
    fn hub_config(&self, data_dir: &Path) -> Result<HubConfig, ServerError> {
        let mut hub = HubConfig::new(data_dir);
        if let Some(n) = self.shards {
            hub.shards = n;
        }
        if let Some(n) = self.archive.index_table_entries_max {
            hub.index_table_entries_max = n;
        }
        hub.pin_cores = self.cores.clone();
        hub.io_worker_cores = self.io_worker_cores.clone();
        hub.stall_report_ms = self.stall_report_ms;
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
        if let Some(b) = self.commit.batch_bytes_max {
            hub.log.batch_bytes_max = b;
        }
        if let Some(sync) = &self.commit.sync {
            hub.log.durability = commit_sync(sync)?;
        }
        if let Some(writes) = &self.commit.dsync_writes {
            hub.log.dsync_writes = dsync_writes(writes)?;
        }
        if let Some(b) = self.commit.prewrite_ahead_bytes {
            hub.log.prewrite_ahead_bytes = b;
        }
        if let Some(b) = self.commit.bulk_unwritten_bytes_max {
            if b < 4096 {
                return Err(ServerError::Config(format!(
                    "[commit] bulk_unwritten_bytes_max = {b}: at least 4096 (one page of bulk a turn)"
                )));
            }
            hub.bulk_unwritten_bytes_max = b;
        }
        if let Some(ms) = self.commit.unawaited_delay_ms {
            hub.unawaited_commit_delay_ms = ms;
        }
        if let Some(on) = self.commit.rt_journal {
            hub.shard.rt_journal = on;
        }
        if let Some(k) = self.retention.finished_keep_ms {
            hub.shard.finished_keep_ms = Some(k);
        }
        if let Some(r) = self.retention.retention_ms {
            hub.shard.retention_ms = r;
        }
        if let Some(ms) = self.monitor.provider_unreachable_after_ms {
            hub.shard.provider_unreachable_after_ms = ms;
        }
        if let Some(mib) = self.attachments.write_mib_per_s {
            hub.attachment_write_bytes_per_s = mib.saturating_mul(1 << 20);
        }
        if let Some(mib) = self.attachments.beside_rt_write_mib_per_s {
            hub.attachment_beside_rt_write_bytes_per_s = mib.saturating_mul(1 << 20);
        }
        hub.hub_key = Some(self.hub_key(data_dir)?);
        if let Some(ms) = self.anchor_interval_ms {
            hub.anchor_interval_ms = ms;
        }
        Ok(hub)
    }
}

impl ConfigFile {
    /// The hub's signing key: `hub_key`'s file, else `hub.key` in the data
    /// directory; made there when missing (and said so in the log).
    fn hub_key(&self, data_dir: &Path) -> Result<Arc<gonets_trust::HubKey>, ServerError> {
        let path = match &self.hub_key {
            Some(p) => absolute(p)?,
            None => data_dir.join(HUB_KEY_FILE),
        };
        let (key, made) = crate::hub_key_file::load_or_make(&path)
            .map_err(|e| ServerError::Config(format!("hub key: {e}")))?;
        let public = gonets_trust::hub_key::public_path_of(&path);
        if made {
            tracing::info!(key_id = key.key_id(), path = %path.display(), public = %public.display(), "made a hub signing key");
        } else {
            tracing::info!(key_id = key.key_id(), path = %path.display(), "hub signing key");
        }
        Ok(Arc::new(key))
    }
}

impl LimitsSection {
    /// Sets the front end's limits the section gives (the rest keep their
    /// defaults).
    fn apply_to(&self, server: &mut ServerSettings) {
        let defaults = Limits::default();
        server.limits = Limits {
            header_bytes_max: self.header_bytes_max.unwrap_or(defaults.header_bytes_max),
            body_bytes_max: self.body_bytes_max.unwrap_or(defaults.body_bytes_max),
        };
        if let Some(n) = self.in_flight_per_connection_max {
            server.in_flight_per_connection_max = n;
        }
        if let Some(n) = self.connections_per_shard_max {
            server.connections_per_shard_max = n;
        }
        if let Some(ms) = self.hello_timeout_ms {
            server.hello_timeout_ms = ms;
        }
        if let Some(ms) = self.frame_read_timeout_ms {
            server.frame_read_timeout_ms = ms;
        }
    }
}

/// How connections are secured (`security`, `[tls]`): the given TLS files,
/// registry tokens (`dev-token`), or development certificates made under
/// the data directory (then also where they are).
fn security(
    mode: &str,
    files: Option<TlsSection>,
    data_dir: &Path,
    registry: &Registry,
) -> Result<(Security, Option<PathBuf>), ServerError> {
    match (mode, files) {
        ("dev-token", Some(_)) => Err(ServerError::Config(
            "security = \"dev-token\" takes no [tls] section".into(),
        )),
        ("dev-token", None) => Ok((
            Security::DevTokens(Arc::new(registry_tokens(registry))),
            None,
        )),
        ("tls", Some(t)) => Ok((
            Security::Tls(tls::server_config(&tls::ServerTlsFiles {
                cert: t.cert,
                key: t.key,
                client_ca: t.client_ca,
            })?),
            None,
        )),
        (other, _) if other != "tls" => Err(ServerError::Config(format!(
            "security = {other:?}: expected \"tls\" or \"dev-token\""
        ))),
        _ => {
            let dir = data_dir.join("dev-certs");
            let certs = ensure_dev_certs(&dir, registry)?;
            let security = Security::Tls(tls::server_config(&certs.server_files())?);
            Ok((security, Some(dir)))
        }
    }
}

/// `path` made absolute against the working directory (no file is read).
fn absolute(path: &Path) -> Result<PathBuf, ServerError> {
    std::path::absolute(path)
        .map_err(|e| ServerError::Config(format!("path {}: {e}", path.display())))
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

/// `[commit] sync`: the durability it names; only the ones that survive a
/// power loss.
fn commit_sync(name: &str) -> Result<Durability, ServerError> {
    match name {
        "fdatasync" => Ok(Durability::Fdatasync),
        "dsync" => Ok(Durability::Dsync),
        other => Err(ServerError::Config(format!(
            "[commit] sync = {other:?}: expected \"fdatasync\" or \"dsync\""
        ))),
    }
}

/// `[commit] dsync_writes`: where dsync batch writes are submitted.
fn dsync_writes(name: &str) -> Result<DsyncWrites, ServerError> {
    DsyncWrites::from_name(name).ok_or_else(|| {
        ServerError::Config(format!(
            "[commit] dsync_writes = {name:?}: expected \"auto\", \"worker\" or \"inline\""
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_commit_sync_when_resolved_then_the_log_takes_it_and_an_unsafe_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let default = ConfigFile::parse("")
            .unwrap()
            .hub_config(dir.path())
            .unwrap();
        assert_eq!(default.log.durability, Durability::Dsync);
        let file = ConfigFile::parse("[commit]\nsync = \"fdatasync\"\n").unwrap();
        let hub = file.hub_config(dir.path()).unwrap();
        assert_eq!(hub.log.durability, Durability::Fdatasync);
        let file = ConfigFile::parse("[commit]\nsync = \"dsync\"\n").unwrap();
        assert_eq!(
            file.hub_config(dir.path()).unwrap().log.durability,
            Durability::Dsync
        );
        for bad in ["none", "fsync", ""] {
            let file = ConfigFile::parse(&format!("[commit]\nsync = {bad:?}\n")).unwrap();
            let Err(ServerError::Config(why)) = file.hub_config(dir.path()) else {
                panic!("sync = {bad:?} was taken");
            };
            assert!(
                why.contains("[commit] sync") && why.contains("dsync"),
                "{why}"
            );
        }
    }

    #[test]
    fn given_dsync_writes_when_resolved_then_the_log_takes_them_and_defaults_to_auto() {
        let dir = tempfile::tempdir().unwrap();
        let hub = |text: &str| ConfigFile::parse(text).unwrap().hub_config(dir.path());
        let writes = |text: &str| hub(text).unwrap().log.dsync_writes;
        assert_eq!(writes(""), DsyncWrites::WhileContended, "ADR 0028");
        for (name, want) in [
            ("auto", DsyncWrites::WhileContended),
            ("worker", DsyncWrites::Worker),
            ("inline", DsyncWrites::Inline),
        ] {
            assert_eq!(
                writes(&format!("[commit]\ndsync_writes = {name:?}\n")),
                want
            );
        }
        let Err(ServerError::Config(why)) = hub("[commit]\ndsync_writes = \"sometimes\"\n") else {
            panic!("an unknown placement was taken");
        };
        assert!(
            why.contains("[commit] dsync_writes") && why.contains("inline"),
            "{why}"
        );
    }

    #[test]
    fn given_prewrite_ahead_when_resolved_then_the_log_takes_it_and_zero_turns_it_off() {
        let dir = tempfile::tempdir().unwrap();
        let ahead = |text: &str| {
            let file = ConfigFile::parse(text).unwrap();
            file.hub_config(dir.path())
                .unwrap()
                .log
                .prewrite_ahead_bytes
        };
        assert_eq!(ahead(""), 32 << 20, "ADR 0001's default");
        assert_eq!(ahead("[commit]\nprewrite_ahead_bytes = 0\n"), 0);
    }

    #[test]
    fn given_a_bulk_unwritten_bound_when_resolved_then_the_hub_takes_it_and_a_tiny_one_is_refused()
    {
        let dir = tempfile::tempdir().unwrap();
        let file = ConfigFile::parse("[commit]\nbulk_unwritten_bytes_max = 131072\n").unwrap();
        let hub = file.hub_config(dir.path()).unwrap();
        assert_eq!(hub.bulk_unwritten_bytes_max, 131_072);
        let file = ConfigFile::parse("[commit]\nbulk_unwritten_bytes_max = 100\n").unwrap();
        let Err(ServerError::Config(why)) = file.hub_config(dir.path()) else {
            panic!("a bound under a page is refused")
        };
        assert!(why.contains("bulk_unwritten_bytes_max"), "{why}");
        let default = ConfigFile::parse("")
            .unwrap()
            .hub_config(dir.path())
            .unwrap();
        assert_eq!(
            default.bulk_unwritten_bytes_max,
            gonets_engine::runtime::config::BULK_UNWRITTEN_BYTES_MAX_DEFAULT
        );
    }

    #[test]
    fn given_an_unawaited_delay_when_resolved_then_the_hub_takes_it_and_5_ms_is_the_default() {
        let dir = tempfile::tempdir().unwrap();
        let file = ConfigFile::parse("[commit]\nunawaited_delay_ms = 0\n").unwrap();
        let hub = file.hub_config(dir.path()).unwrap();
        assert_eq!(hub.unawaited_commit_delay_ms, 0);
        let default = ConfigFile::parse("")
            .unwrap()
            .hub_config(dir.path())
            .unwrap();
        assert_eq!(default.unawaited_commit_delay_ms, 5);
    }

    #[test]
    fn given_attachment_paces_when_resolved_then_the_hub_takes_them_in_bytes_and_16_mib_beside_rt_is_the_default(
    ) {
        let dir = tempfile::tempdir().unwrap();
        let file = ConfigFile::parse(
            "[attachments]\nwrite_mib_per_s = 64\nbeside_rt_write_mib_per_s = 0\n",
        )
        .unwrap();
        let hub = file.hub_config(dir.path()).unwrap();
        assert_eq!(hub.attachment_write_bytes_per_s, 64 << 20);
        assert_eq!(hub.attachment_beside_rt_write_bytes_per_s, 0);
        let default = ConfigFile::parse("")
            .unwrap()
            .hub_config(dir.path())
            .unwrap();
        assert_eq!(default.attachment_write_bytes_per_s, 0);
        assert_eq!(default.attachment_beside_rt_write_bytes_per_s, 8 << 20);
        assert!(ConfigFile::parse("[attachments]\nbeside_rt_write_mbps = 8\n").is_err());
    }

    #[test]
    fn given_stall_report_ms_when_resolved_then_the_hub_takes_it_and_off_is_the_default() {
        let dir = tempfile::tempdir().unwrap();
        let file = ConfigFile::parse("stall_report_ms = 5\n").unwrap();
        let hub = file.hub_config(dir.path()).unwrap();
        assert_eq!(hub.stall_report_ms, Some(5));
        let default = ConfigFile::parse("")
            .unwrap()
            .hub_config(dir.path())
            .unwrap();
        assert_eq!(default.stall_report_ms, None);
    }

    #[test]
    fn given_io_worker_cores_when_resolved_then_the_hub_takes_them_and_none_is_the_default() {
        let dir = tempfile::tempdir().unwrap();
        let file = ConfigFile::parse("cores = [1]\nio_worker_cores = [0]\n").unwrap();
        let hub = file.hub_config(dir.path()).unwrap();
        assert_eq!(hub.io_worker_cores, Some(vec![0]));
        let default = ConfigFile::parse("")
            .unwrap()
            .hub_config(dir.path())
            .unwrap();
        assert_eq!(default.io_worker_cores, None);
    }

    #[test]
    fn given_a_file_with_relative_paths_when_loaded_then_they_are_absolute_under_its_directory() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gonets.toml");
        std::fs::write(
            &path,
            "data_dir = \"data\"\nregistry = \"conf/registry.toml\"\n\
             [tls]\ncert = \"s.pem\"\nkey = \"/etc/k.pem\"\nclient_ca = \"../ca.pem\"\n\
             [archive]\nindex_table_entries_max = 64\n",
        )
        .unwrap();
        let file = ConfigFile::load(&path).unwrap();
        assert_eq!(file.data_dir().unwrap(), dir.path().join("data"));
        assert_eq!(file.registry, Some(dir.path().join("conf/registry.toml")));
        let tls = file.tls.as_ref().unwrap();
        assert_eq!(tls.cert, dir.path().join("s.pem"));
        assert_eq!(tls.key, PathBuf::from("/etc/k.pem"), "absolute paths stay");
        assert_eq!(tls.client_ca, dir.path().join("../ca.pem"));
        assert_eq!(file.archive.index_table_entries_max, Some(64));
    }

    #[test]
    fn given_no_data_dir_when_resolved_then_the_default_is_absolute_in_the_working_directory() {
        let file = ConfigFile::default();
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(file.data_dir().unwrap(), cwd.join(DATA_DIR_DEFAULT));
    }
}
