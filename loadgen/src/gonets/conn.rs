//! Connections to the hub as a participant: one connection to the shared
//! port, or (shard-aware) one per shard with each operation sent to the
//! shard that owns its queue or message.

use gonets_client::glommio::{Client, ShardAwareClient};
use gonets_client::{ClientConfig, ClientError, ClientSecurity};
use gonets_server::tls;
use gonets_types::{MessageId, QueueId};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

/// Where the hub is and how to reach it.
#[derive(Clone, Debug)]
pub struct GonetsTarget {
    /// The hub's shared address.
    pub addr: SocketAddr,
    /// `tls` (development certificates under `certs`) or `plain` (dev tokens).
    pub security: String,
    /// The development certificates' directory.
    pub certs: PathBuf,
    /// One connection per shard, operations routed to their owner.
    pub shard_aware: bool,
    /// The hub's pid, for its CPU and memory (same machine only).
    pub server_pid: Option<u32>,
    /// The hub's operator API (plain HTTP), for its commit counters.
    pub operator: Option<SocketAddr>,
    /// Connections each consumer opens per generator thread (calls spread over them).
    pub connections: usize,
    /// Every participant signs what it sends with its `--sign` registry key.
    pub sign: bool,
    /// rt callers and bulk senders go through the HTTP gateway here
    /// (`--via http`; with the native connections' security); providers
    /// stay on the native port.
    pub gateway: Option<SocketAddr>,
    /// How the hub makes a batch durable, as the run's setup names it.
    pub durability: String,
}

impl GonetsTarget {
    /// The client settings of participant `who`.
    pub fn client_config(&self, who: &str) -> Result<ClientConfig, String> {
        let security = match self.security.as_str() {
            "plain" => ClientSecurity::DevToken {
                participant: who.into(),
                token: crate::registry::token(who),
            },
            "tls" => {
                let files = tls::DevCerts::layout(&self.certs, &[who])
                    .client_files(who)
                    .expect("the layout names the participant");
                ClientSecurity::Tls {
                    config: tls::client_config(&files).map_err(|e| {
                        format!("{who}'s certificate under {}: {e}", self.certs.display())
                    })?,
                    server_name: "localhost".into(),
                }
            }
            other => return Err(format!("--security {other:?}: expected tls or plain")),
        };
        let mut c = ClientConfig::new(self.addr, security);
        // Durable replies wait on fsyncs of a loaded disk: be patient, the
        // latency histogram shows what it cost.
        c.request_timeout_ms = 60_000;
        if self.sign {
            let key = Arc::new(crate::registry::signing_key(who));
            c = c.with_signing_key(&crate::registry::key_id(who), key);
        }
        Ok(c)
    }
}

/// A participant's connection(s).
#[derive(Clone, Debug)]
pub enum Conn {
    /// One connection to the shared port.
    One(Client),
    /// One connection per shard.
    Aware(ShardAwareClient),
}

impl Conn {
    /// Connects as `who`.
    pub async fn connect(target: &GonetsTarget, who: &str) -> Result<Conn, String> {
        let config = target.client_config(who)?;
        let r = if target.shard_aware {
            ShardAwareClient::connect(config).await.map(Conn::Aware)
        } else {
            Client::connect(config).await.map(Conn::One)
        };
        r.map_err(|e| format!("{who} cannot connect to the hub at {}: {e}", target.addr))
    }

    /// Closes the connection(s) now, so the hub sees the participant go
    /// (a socket left open keeps its subscriptions alive on the hub).
    pub fn disconnect(&self) {
        match self {
            Conn::One(c) => c.disconnect(),
            Conn::Aware(a) => a.disconnect(),
        }
    }

    /// The connection that serves `queue`.
    pub fn for_queue(&self, queue: &QueueId) -> &Client {
        match self {
            Conn::One(c) => c,
            Conn::Aware(a) => a.for_queue(queue),
        }
    }

    /// The connection that serves message `id`.
    pub fn for_message(&self, id: MessageId) -> Result<&Client, ClientError> {
        match self {
            Conn::One(c) => Ok(c),
            Conn::Aware(a) => a.for_message(id),
        }
    }
}

/// A stable name for an error's type, for the errors-by-type table.
pub fn error_name(e: &ClientError) -> String {
    match e {
        ClientError::Hub(h) => format!("{:?}", gonets_proto::ErrorCode::of(h)),
        ClientError::Protocol { code, .. } => code.clone(),
        ClientError::Disconnected(_) => "Disconnected".into(),
        ClientError::Timeout(_) => "Timeout".into(),
        ClientError::Tls(_) => "Tls".into(),
        ClientError::BadReply(_) => "BadReply".into(),
        ClientError::NotExecutable(_) => "NotExecutable".into(),
        ClientError::Io(_) => "Io".into(),
    }
}
