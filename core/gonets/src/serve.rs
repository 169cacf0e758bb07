//! `gonets serve`: start-up checks, the hub, the listeners, and a clean
//! stop on SIGTERM or SIGINT. A shard whose log fails (write, `fdatasync`
//! or roll error) stops the process with exit status 74
//! ([`gonets_engine::runtime::EXIT_LOG_FAILED`], ADR 0008) so that the
//! service manager restarts it and recovery runs.

use gonets_engine::runtime::ShardFailure;
use gonets_engine::{Hub, Registry};
use gonets_gateway::{
    GatewayAuth, GatewayError, GatewayServer, GatewaySettings, BODY_BYTES_MAX_DEFAULT,
};
use gonets_operator::{
    parse_listen, HubInfo, MonitorSettings, OperatorError, OperatorServer, OperatorSettings,
    OperatorTls, ProfileInfo, OPERATOR_LISTEN_DEFAULT,
};
use gonets_server::config_file::MonitorSection;
use gonets_server::config_file::{ConfigFile, ServeConfig};
use gonets_server::{checks, start_front_ends, tls, Security};
use std::path::PathBuf;
use std::sync::Arc;

/// How often the main thread looks for a failed shard while it waits for a signal.
const FAILURE_POLL_MS: i64 = 100;

/// Why the server stops.
enum Stop {
    /// SIGTERM or SIGINT, by name.
    Signal(&'static str),
    /// A shard's log failed.
    Failed(ShardFailure),
}

/// Blocks SIGTERM and SIGINT in this thread (and the threads it starts
/// afterwards), so that `wait_for_stop` can take them synchronously.
fn block_stop_signals() -> libc::sigset_t {
    // SAFETY: plain libc signal-set calls on a set we own.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    }
}

/// Waits for SIGTERM or SIGINT, or for a shard's log to fail.
fn wait_for_stop(set: &libc::sigset_t, hub: &Hub) -> Stop {
    let pause = libc::timespec {
        tv_sec: 0,
        tv_nsec: FAILURE_POLL_MS * 1_000_000,
    };
    // Runs until a signal or a failure; each pass waits at most FAILURE_POLL_MS.
    loop {
        // SAFETY: sigtimedwait on a set of blocked signals we own.
        let signal = unsafe { libc::sigtimedwait(set, std::ptr::null_mut(), &pause) };
        if signal == libc::SIGINT {
            return Stop::Signal("SIGINT");
        }
        if signal == libc::SIGTERM {
            return Stop::Signal("SIGTERM");
        }
        // Otherwise the pause ended (EAGAIN) or a handler ran (EINTR).
        if let Some(failure) = hub.failure() {
            return Stop::Failed(failure);
        }
    }
}

/// Structured logs to stderr; `RUST_LOG` filters (default info).
pub(crate) fn init_logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .try_init();
}

/// The operator API's socket, bound before the hub starts (a taken port or
/// an address off loopback stops the start at once); `None` when turned
/// off. `--operator-listen` wins over the file's `operator_listen`.
fn bind_operator(
    flag: Option<&str>,
    serve: &ServeConfig,
    profile: Option<ProfileInfo>,
) -> Result<Option<OperatorServer>, OperatorError> {
    let text = flag
        .or(serve.operator_listen.as_deref())
        .unwrap_or(OPERATOR_LISTEN_DEFAULT);
    let Some(listen) = parse_listen(text)? else {
        return Ok(None);
    };
    let info = HubInfo {
        version: env!("CARGO_PKG_VERSION").to_string(),
        data_dir: serve.hub.data_dir.clone(),
        pinned_cores: serve.pinned_cores.clone(),
        profile,
    };
    let tls = match &serve.server.security {
        Security::Tls(config) => Some(OperatorTls {
            config: config.clone(),
            authorize: Arc::new(operator_check(serve.hub.registry.clone())),
        }),
        Security::DevTokens(_) => None,
    };
    let monitor = monitor_settings(&serve.monitor)?;
    OperatorServer::bind(OperatorSettings {
        listen,
        info,
        tls,
        monitor,
    })
    .map(Some)
}

/// The HTTP gateway's socket, bound before the hub starts; `None` when
/// off (the default). `--gateway-listen` wins over the file's
/// `gateway_listen`. Its callers prove who they are as on the native
/// port: the client certificate, or development tokens (HTTP Basic).
fn bind_gateway(
    flag: Option<&str>,
    serve: &ServeConfig,
) -> Result<Option<GatewayServer>, GatewayError> {
    let text = flag.or(serve.gateway_listen.as_deref()).unwrap_or("none");
    let Some(listen) = gonets_gateway::parse_listen(text)? else {
        return Ok(None);
    };
    let auth = match &serve.server.security {
        Security::Tls(config) => GatewayAuth::Tls {
            config: config.clone(),
            identify: Arc::new(participant_check(serve.hub.registry.clone())),
        },
        Security::DevTokens(tokens) => GatewayAuth::DevTokens(tokens.clone()),
    };
    // A payload as large as the native port takes, as JSON (base64) too.
    let frame_body = serve.server.limits.body_bytes_max as usize;
    let body_bytes_max = BODY_BYTES_MAX_DEFAULT.max(frame_body / 3 * 4 + 4096);
    GatewayServer::bind(GatewaySettings {
        listen,
        auth,
        body_bytes_max,
        cores: serve.gateway_cores.clone().unwrap_or_default(),
    })
    .map(Some)
}

/// The native port's rule for a verified client certificate: its Common
/// Name is a registered participant (with the pinned fingerprint if the
/// registry pins one).
fn participant_check(registry: Arc<Registry>) -> impl Fn(&[u8]) -> Result<String, String> {
    move |der| {
        let identity = tls::identity_of_der(der).map_err(|e| e.to_string())?;
        let id = tls::authenticate(&registry, &identity).map_err(|e| e.to_string())?;
        Ok(id.to_string())
    }
}

/// `[monitor]` over the operator API's defaults.
fn monitor_settings(section: &MonitorSection) -> Result<MonitorSettings, OperatorError> {
    let defaults = MonitorSettings::default();
    let settings = MonitorSettings {
        interval_ms: section.interval_ms.unwrap_or(defaults.interval_ms),
        deadline_risk_percent: section
            .deadline_risk_percent
            .unwrap_or(defaults.deadline_risk_percent),
        sla_flush_ms: section.sla_flush_ms.unwrap_or(defaults.sla_flush_ms),
    };
    settings.validate().map_err(OperatorError::Config)?;
    Ok(settings)
}

/// The operator API's check of a verified client certificate: the native
/// port's rule (its Common Name is a registered participant, with the
/// pinned fingerprint if the registry pins one), and that participant has
/// the `operator` role.
fn operator_check(registry: Arc<Registry>) -> impl Fn(&[u8]) -> Result<String, String> {
    move |der| {
        let identity = tls::identity_of_der(der).map_err(|e| e.to_string())?;
        let id = tls::authenticate(&registry, &identity).map_err(|e| e.to_string())?;
        match registry.participant(&id) {
            Some(p) if p.roles.operator => Ok(id.to_string()),
            _ => Err(format!(
                "{id} is not an operator (the registry gives it no operator role)"
            )),
        }
    }
}

pub(crate) fn run(
    config: Option<PathBuf>,
    operator_listen: Option<String>,
    gateway_listen: Option<String>,
    profile: Option<PathBuf>,
) -> Result<(), Box<dyn std::error::Error>> {
    init_logs();
    crate::heap::keep_freed_memory_or_warn();
    let signals = block_stop_signals();
    let mut file = match &config {
        Some(path) => ConfigFile::load(path)?,
        None => ConfigFile::default(),
    };
    // The profile fills only what the file leaves unset (docs/operations.md).
    let profile = profile
        .map(|path| crate::hw::apply_for_serve(&path, &mut file))
        .transpose()?;
    let serve = file.resolve()?;
    checks::io_uring()?;
    let memlock = checks::locked_memory(64 * 1024 * 1024)?;
    checks::data_dir_writable(&serve.hub.data_dir)?;
    let profile_info = profile.as_ref().map(|p| p.info.clone());
    let operator = bind_operator(operator_listen.as_deref(), &serve, profile_info)?;
    let gateway = bind_gateway(gateway_listen.as_deref(), &serve)?;
    tracing::info!(
        memlock_kib = memlock / 1024,
        data_dir = %serve.hub.data_dir.display(),
        shards = serve.hub.shards,
        "starting: replaying the shards' logs"
    );
    let data_dir = serve.hub.data_dir.clone();
    let hub = Hub::start(serve.hub)?;
    let front = match start_front_ends(&hub, serve.server) {
        Ok(f) => f,
        Err(e) => {
            let _ = hub.shutdown();
            return Err(e.into());
        }
    };
    if let Some(p) = &profile {
        // Before the operator API starts: its thread inherits this one's CPUs.
        crate::hw::before_operator(&p.profile, hub.registry());
    }
    let operator = match operator.map(|o| o.start(hub.handle())).transpose() {
        Ok(o) => o,
        Err(e) => {
            let _ = hub.shutdown();
            return Err(e.into());
        }
    };
    if let Some(o) = &operator {
        tracing::info!(addr = %o.addr(), "operator API listening (health, ready, queues, messages, info, metrics, console)");
    }
    let gateway = match gateway.map(|g| g.start(hub.handle())).transpose() {
        Ok(g) => g,
        Err(e) => {
            let _ = hub.shutdown();
            return Err(e.into());
        }
    };
    if let Some(g) = &gateway {
        tracing::info!(addr = %g.addr(), "HTTP gateway listening (/v1, contract at /v1/openapi.json)");
        println!("gonets HTTP gateway on {}", g.addr());
    }
    tracing::info!(
        addr = %front.addr,
        shard_addrs = ?front.shard_addrs,
        data_dir = %data_dir.display(),
        dev_certs = ?serve.dev_certs,
        "gonets is serving"
    );
    println!("gonets listening on {}", front.addr);
    let signal = match wait_for_stop(&signals, &hub) {
        Stop::Signal(name) => name,
        Stop::Failed(failure) => hub.exit_after_failure(&failure),
    };
    tracing::info!("{signal}: stopping (no new commands, finishing commits, snapshot)");
    if let Some(o) = &operator {
        // While the shards still answer: the SLA counts up to the stop.
        o.flush_sla();
    }
    // Before the hub: no new HTTP operations; leases it held go back.
    drop(gateway);
    hub.shutdown()?;
    // After the hub: while it drained, `/ready` said so.
    drop(operator);
    tracing::info!("stopped cleanly");
    Ok(())
}
