//! `--embedded`: the load generator starts its own hub, a `gonets serve`
//! child process (found next to the loadgen binary, or `$GONETS_BIN`) on a
//! free loopback port with the loadgen registry, its own data directory and
//! its shards pinned where asked. A child process, not an in-process hub,
//! so that the hub's CPU and memory are its own and `recovery` can kill it
//! with SIGKILL like a crash.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Overrides where the `gonets` binary is.
pub const BIN_ENV: &str = "GONETS_BIN";
/// What `gonets serve` prints once it serves.
const READY_LINE: &str = "gonets listening on ";
/// How long a start may take (a fresh data directory is fsynced; a busy
/// disk has been seen to stall for a minute).
pub const START_WAIT: Duration = Duration::from_secs(120);
/// Starts tried with fresh ports when one was taken meanwhile.
const START_ATTEMPTS_MAX: u32 = 5;
/// What `gonets serve` says when a port it was given is taken.
const PORT_TAKEN: &str = "Address already in use";

/// How to start the hub.
#[derive(Clone, Debug)]
pub struct HubSpec {
    /// Its data directory (made; kept only if `keep`).
    pub data_dir: PathBuf,
    /// Shards.
    pub shards: u16,
    /// Pin shard i to cores[i] (empty: unpinned).
    pub cores: Vec<usize>,
    /// `tls` or `plain` (dev tokens).
    pub security: String,
    /// Registry text.
    pub registry: String,
    /// Extra config sections (`[commit]` etc.), TOML.
    pub sections: String,
    /// Keep the data directory afterwards.
    pub keep: bool,
    /// Run the HTTP gateway on a free loopback port (`rt --via http`).
    pub gateway: bool,
    /// Pin the gateway's thread to these cores (empty: unpinned).
    pub gateway_cores: Vec<usize>,
    /// Where the kernel's io-wq workers run (empty: the shard's cores).
    pub io_worker_cores: Vec<usize>,
    /// Stall reports past this many ms over budget (`stall_report_ms`).
    pub stall_report_ms: Option<u64>,
}

/// A running `gonets serve` child.
pub struct EmbeddedHub {
    spec: HubSpec,
    child: Option<Child>,
    addr: SocketAddr,
    shard_port_base: u16,
    /// The hub's operator API (loopback), read for its commit counters.
    operator: SocketAddr,
    /// The HTTP gateway (loopback), when the spec asks for it.
    gateway: Option<SocketAddr>,
    log: PathBuf,
}

/// The `gonets` binary: `$GONETS_BIN`, else next to this executable.
pub fn gonets_bin() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os(BIN_ENV) {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe().map_err(|e| format!("own path: {e}"))?;
    let mut dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    // Test executables live one level down, in deps/.
    for _ in 0..2 {
        let candidate = dir.join("gonets");
        if candidate.is_file() {
            return Ok(candidate);
        }
        dir = match dir.parent() {
            Some(d) => d.to_path_buf(),
            None => break,
        };
    }
    Err(format!(
        "cannot find the gonets binary next to {} (build it: cargo build --release --bin gonets, or set {BIN_ENV})",
        exe.display()
    ))
}

/// A loopback port nobody listens on now.
pub fn free_port() -> Result<u16, String> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("no free port: {e}"))?;
    Ok(l.local_addr().map_err(|e| e.to_string())?.port())
}

impl EmbeddedHub {
    /// Writes the config and registry and starts the hub; returns once it serves.
    pub fn start(spec: HubSpec) -> Result<EmbeddedHub, String> {
        if spec.data_dir.exists() {
            std::fs::remove_dir_all(&spec.data_dir)
                .map_err(|e| format!("{}: {e}", spec.data_dir.display()))?;
        }
        std::fs::create_dir_all(&spec.data_dir)
            .map_err(|e| format!("{}: {e}", spec.data_dir.display()))?;
        let mut hub = EmbeddedHub {
            gateway: None,
            log: PathBuf::new(),
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            shard_port_base: 0,
            operator: SocketAddr::from(([127, 0, 0, 1], 0)),
            child: None,
            spec,
        };
        hub.log = PathBuf::from(format!("{}.log", hub.spec.data_dir.display()));
        // Bounded by START_ATTEMPTS_MAX: another process may take a port
        // between `free_port` and the hub's bind (tests start hubs side by
        // side); fresh ports then.
        let mut attempt = 1;
        loop {
            hub.pick_ports()?;
            hub.write_config()?;
            // Each attempt's log alone, so an earlier attempt's taken port
            // is not read as this one's.
            let _ = std::fs::remove_file(&hub.log);
            match hub.launch() {
                Ok(_) => return Ok(hub),
                Err(e) if e.contains(PORT_TAKEN) && attempt < START_ATTEMPTS_MAX => {
                    eprintln!("gonets-loadgen: a port was taken before the hub bound it; new ports (attempt {attempt} of {START_ATTEMPTS_MAX})");
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Free loopback ports for the hub's listeners.
    fn pick_ports(&mut self) -> Result<(), String> {
        self.addr = SocketAddr::from(([127, 0, 0, 1], free_port()?));
        self.shard_port_base = free_port()?;
        self.operator = SocketAddr::from(([127, 0, 0, 1], free_port()?));
        if self.spec.gateway {
            self.gateway = Some(SocketAddr::from(([127, 0, 0, 1], free_port()?)));
        }
        Ok(())
    }

    fn config_path(&self) -> PathBuf {
        PathBuf::from(format!("{}.toml", self.spec.data_dir.display()))
    }

    fn write_config(&self) -> Result<(), String> {
        let reg = PathBuf::from(format!("{}.registry.toml", self.spec.data_dir.display()));
        std::fs::write(&reg, &self.spec.registry).map_err(|e| format!("{}: {e}", reg.display()))?;
        let mut text = format!(
            // The operator API on a free port (not 7480, which may be taken):
            // the generator reads the hub's commit counters there.
            "data_dir = {:?}\nshards = {}\nlisten = \"{}\"\nshard_port_base = {}\nregistry = {:?}\nsecurity = \"{}\"\noperator_listen = \"{}\"\n",
            self.spec.data_dir.join("data").display().to_string(),
            self.spec.shards,
            self.addr,
            self.shard_port_base,
            reg.display().to_string(),
            if self.spec.security == "plain" { "dev-token" } else { "tls" },
            self.operator,
        );
        if !self.spec.cores.is_empty() {
            text += &format!("cores = {:?}\n", self.spec.cores);
        }
        if !self.spec.io_worker_cores.is_empty() {
            text += &format!("io_worker_cores = {:?}\n", self.spec.io_worker_cores);
        }
        if let Some(ms) = self.spec.stall_report_ms {
            text += &format!("stall_report_ms = {ms}\n");
        }
        if let Some(g) = self.gateway {
            text += &format!("gateway_listen = \"{g}\"\n");
            if !self.spec.gateway_cores.is_empty() {
                text += &format!("gateway_cores = {:?}\n", self.spec.gateway_cores);
            }
        }
        text += &self.spec.sections;
        std::fs::write(self.config_path(), text).map_err(|e| format!("config: {e}"))
    }

    /// Starts the child and waits for its ready line; the time it took.
    fn launch(&mut self) -> Result<Duration, String> {
        let bin = gonets_bin()?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(|e| format!("{}: {e}", self.log.display()))?;
        let started = Instant::now();
        let mut child = Command::new(&bin)
            .arg("serve")
            .arg("--config")
            .arg(self.config_path())
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
        let stdout = child.stdout.take().expect("stdout was piped");
        let (tx, rx) = std::sync::mpsc::channel();
        // A reader thread so the wait can be bounded; it keeps draining
        // stdout for the life of the child.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if line.starts_with(READY_LINE) {
                    let _ = tx.send(());
                }
            }
        });
        match rx.recv_timeout(START_WAIT) {
            Ok(()) => {
                self.child = Some(child);
                Ok(started.elapsed())
            }
            Err(why) => {
                let _ = child.kill();
                let _ = child.wait();
                let log = std::fs::read_to_string(&self.log).unwrap_or_default();
                let what = match why {
                    std::sync::mpsc::RecvTimeoutError::Timeout => {
                        format!("did not start within {} s", START_WAIT.as_secs())
                    }
                    std::sync::mpsc::RecvTimeoutError::Disconnected => {
                        "exited before it was ready".to_string()
                    }
                };
                Err(format!(
                    "the hub {what}; its log ({}):\n{}",
                    self.log.display(),
                    log.lines()
                        .rev()
                        .take(30)
                        .collect::<Vec<_>>()
                        .into_iter()
                        .rev()
                        .collect::<Vec<_>>()
                        .join("\n")
                ))
            }
        }
    }

    /// The shared address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The HTTP gateway's address, when started with one.
    pub fn gateway_addr(&self) -> Option<SocketAddr> {
        self.gateway
    }

    /// The hub's operator API address (loopback).
    pub fn operator_addr(&self) -> SocketAddr {
        self.operator
    }

    /// The development certificates the hub made.
    pub fn certs_dir(&self) -> PathBuf {
        self.spec.data_dir.join("data").join("dev-certs")
    }

    /// The hub's data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.spec.data_dir.join("data")
    }

    /// The hub's process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGKILL, as a crash.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the hub again on the same data; the time until it served.
    pub fn restart(&mut self) -> Result<Duration, String> {
        assert!(self.child.is_none(), "restart after a kill or stop");
        self.launch()
    }

    /// SIGTERM and wait (the hub drains and snapshots).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: kill(2) on our own child's pid.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(60);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for EmbeddedHub {
    fn drop(&mut self) {
        self.stop();
        if !self.spec.keep {
            let _ = std::fs::remove_dir_all(&self.spec.data_dir);
            let _ = std::fs::remove_file(self.config_path());
            let _ = std::fs::remove_file(format!("{}.registry.toml", self.spec.data_dir.display()));
            let _ = std::fs::remove_file(&self.log);
        }
    }
}

/// Bytes under `dir`, recursively (the log size for `recovery`).
pub fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut total = 0;
    for e in entries.flatten() {
        match e.metadata() {
            Ok(m) if m.is_dir() => total += dir_bytes(&e.path()),
            Ok(m) => total += m.len(),
            Err(_) => {}
        }
    }
    total
}
