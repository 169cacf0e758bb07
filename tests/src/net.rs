//! Harness of the black-box network tests (`tests/tests/net_*.rs`): a
//! `gonets serve` child process on a free loopback port with its own data
//! directory, clients that connect as a participant with the development
//! certificates the server made, and a raw socket for malformed input.
//!
//! Every wait here is bounded; a failure reports the server's log.

use gonets_client::glommio::Client;
use gonets_client::{ClientConfig, ClientSecurity};
use gonets_proto::header::{ErrorReply, Hello};
use gonets_proto::{Frame, FrameDecoder, Limits, Opcode};
use gonets_server::tls;
use std::fs::{File, OpenOptions};
use std::future::Future;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Overrides where the `gonets` binary is.
pub const BIN_ENV: &str = "GONETS_BIN";
/// How long a server has to print `gonets listening on` by default: a
/// fresh data directory is made durable with fsyncs, which a VM whose disk
/// other jobs hammer has been seen to stall for a minute.
pub const READY_WAIT_DEFAULT_S: u64 = 120;
/// Overrides [`READY_WAIT_DEFAULT_S`] (seconds).
pub const READY_WAIT_ENV: &str = "GONETS_NET_READY_WAIT_S";
/// The clients' reply timeout: generous, as durable replies wait on fsyncs.
pub const CLIENT_REQUEST_TIMEOUT_MS: u64 = 120_000;
/// A start slower than this is reported (it still passes).
const SLOW_START: Duration = Duration::from_secs(10);

/// How long a server has to print `gonets listening on`.
pub fn ready_wait() -> Duration {
    Duration::from_secs(crate::env_number(READY_WAIT_ENV).unwrap_or(READY_WAIT_DEFAULT_S))
}
/// How long a SIGTERMed server has to exit (it commits and snapshots first).
pub const STOP_WAIT: Duration = Duration::from_secs(120);
/// What the server prints once it serves.
const READY_LINE: &str = "gonets listening on ";
/// Start attempts (a free port can be taken by someone else meanwhile).
const START_ATTEMPTS: usize = 5;

/// The `gonets` binary: `$GONETS_BIN`, else next to the test executable
/// (`<target>/<profile>/deps/<test>-<hash>` → `<target>/<profile>/gonets`).
pub fn gonets_bin() -> PathBuf {
    if let Some(p) = std::env::var_os(BIN_ENV) {
        let p = PathBuf::from(p);
        assert!(
            p.is_file(),
            "{BIN_ENV}={} is not a file; unset it or point it at the gonets binary",
            p.display()
        );
        return p;
    }
    let exe = std::env::current_exe().expect("the test executable's path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| {
            if deps.file_name().is_some_and(|n| n == "deps") {
                deps.parent()
            } else {
                Some(deps)
            }
        })
        .expect("the test executable lies in <target>/<profile>/deps");
    let bin = profile_dir.join("gonets");
    assert!(
        bin.is_file(),
        "the gonets binary is missing at {}: build it first with \
         `cargo build --release -p gonets --bin gonets` (with the same \
         CARGO_TARGET_DIR and profile as the tests; `cargo test --workspace` builds it too), \
         or set {BIN_ENV}",
        bin.display()
    );
    bin
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind a probe listener on loopback")
        .port()
}

/// How the server authenticates participants.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Mutual TLS with the development certificates made under the data directory.
    Tls,
    /// Mutual TLS with these files (`[tls]` section).
    TlsFiles(tls::ServerTlsFiles),
    /// `security = "dev-token"`: plain TCP, registry tokens.
    DevToken,
}

/// What the server runs with.
#[derive(Clone, Debug)]
pub struct ServerOptions {
    /// Shards.
    pub shards: u16,
    /// Security.
    pub mode: Mode,
    /// The IP to listen on.
    pub listen_ip: String,
    /// A registry file (default: embedded).
    pub registry: Option<PathBuf>,
    /// Extra TOML sections appended to the config (e.g. `[limits]`).
    pub sections: String,
    /// Run as an operator who writes relative paths: the config says
    /// `data_dir = "data"` (relative to the config file) and the server
    /// starts from a fresh working directory with `--config ../gonets.toml`.
    pub relative_paths: bool,
    /// Run the operator API on a free loopback port
    /// ([`ServerProcess::operator_addr`]); off otherwise
    /// (`operator_listen = "none"`), so that servers run in parallel never
    /// compete for its default port.
    pub operator: bool,
    /// The IP the operator API listens on (loopback by default; off
    /// loopback it serves HTTPS to operator certificates only).
    pub operator_ip: String,
    /// Run the HTTP gateway on a free loopback port
    /// ([`ServerProcess::gateway_addr`]); off otherwise (its default).
    pub gateway: bool,
    /// Pin the gateway's thread to these CPUs (`gateway_cores`; empty:
    /// not set).
    pub gateway_cores: Vec<usize>,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            shards: 2,
            mode: Mode::Tls,
            listen_ip: "127.0.0.1".into(),
            registry: None,
            sections: String::new(),
            relative_paths: false,
            operator: false,
            operator_ip: "127.0.0.1".into(),
            gateway: false,
            gateway_cores: Vec::new(),
        }
    }
}

impl ServerOptions {
    /// Defaults with `security = "dev-token"`.
    pub fn dev_token() -> ServerOptions {
        ServerOptions {
            mode: Mode::DevToken,
            ..ServerOptions::default()
        }
    }
}

/// Where a server is and how to reach it; `Send`, for client threads.
#[derive(Clone, Debug)]
pub struct Endpoint {
    /// The shared listen address.
    pub addr: SocketAddr,
    /// The development certificates (`ca.pem`, `clients/<ID>.pem`).
    pub certs_dir: PathBuf,
    /// True for a dev-token server.
    pub dev_token: bool,
}

impl Endpoint {
    /// Client TLS files of `participant` from the certificate directory.
    pub fn client_files(&self, participant: &str) -> tls::ClientTlsFiles {
        client_files(&self.certs_dir, participant)
    }

    /// A client configuration for `participant` (TLS, or its registry token
    /// `dev-<id in lower case>` on a dev-token server).
    pub fn client_config(&self, participant: &str) -> ClientConfig {
        let security = if self.dev_token {
            ClientSecurity::DevToken {
                participant: participant.into(),
                token: format!("dev-{}", participant.to_lowercase()),
            }
        } else {
            let config = tls::client_config(&self.client_files(participant))
                .unwrap_or_else(|e| panic!("client TLS configuration of {participant}: {e}"));
            ClientSecurity::Tls {
                config,
                server_name: "localhost".into(),
            }
        };
        let mut config = ClientConfig::new(self.addr, security);
        config.request_timeout_ms = CLIENT_REQUEST_TIMEOUT_MS;
        config
    }

    /// Connects as `participant` (panics after a bounded wait or on error).
    pub async fn connect(&self, participant: &str) -> Client {
        self.connect_with(self.client_config(participant)).await
    }

    /// Connects with `config` (panics after a bounded wait or on error).
    pub async fn connect_with(&self, config: ClientConfig) -> Client {
        match within(Duration::from_secs(30), Client::connect(config)).await {
            Some(Ok(c)) => c,
            Some(Err(e)) => panic!("connect to {}: {e}", self.addr),
            None => panic!("connect to {} took over 30 s", self.addr),
        }
    }
}

/// The client TLS files of `participant` in a development certificate directory.
pub fn client_files(certs_dir: &Path, participant: &str) -> tls::ClientTlsFiles {
    tls::DevCerts::layout(certs_dir, &[participant])
        .client_files(participant)
        .expect("the layout names the participant")
}

/// A `gonets serve` child process; killed on drop.
pub struct ServerProcess {
    dir: tempfile::TempDir,
    options: ServerOptions,
    child: Option<Child>,
    addr: SocketAddr,
    starts: usize,
    /// The operator API's port, when `options.operator`.
    operator_port: Option<u16>,
    /// The HTTP gateway's port, when `options.gateway`.
    gateway_port: Option<u16>,
}

impl ServerProcess {
    /// A server in a fresh temporary directory, not started yet.
    fn unlaunched(options: ServerOptions) -> ServerProcess {
        let dir = tempfile::Builder::new()
            .prefix("gonets-net-")
            .tempdir()
            .expect("make a temporary directory");
        ServerProcess {
            dir,
            options,
            child: None,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            starts: 0,
            operator_port: None,
            gateway_port: None,
        }
    }

    /// Starts a server with `options` in a fresh temporary directory.
    pub fn start(options: ServerOptions) -> ServerProcess {
        let mut server = ServerProcess::unlaunched(options);
        server.launch(None);
        server
    }

    /// Starts a default server (TLS, 2 shards).
    pub fn start_default() -> ServerProcess {
        ServerProcess::start(ServerOptions::default())
    }

    /// The temporary directory (the data directory is `data/` in it).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The development certificates (made by the server on its first start).
    pub fn certs_dir(&self) -> PathBuf {
        match &self.options.mode {
            Mode::TlsFiles(f) => f
                .cert
                .parent()
                .expect("the server certificate lies in a directory")
                .to_path_buf(),
            _ => self.data_dir().join("dev-certs"),
        }
    }

    /// The listen address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The operator API's address, to connect to (on loopback even when it
    /// listens on every address; panics unless started with `operator`).
    pub fn operator_addr(&self) -> SocketAddr {
        let port = self
            .operator_port
            .expect("the server was started with ServerOptions::operator");
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    /// The HTTP gateway's address (panics unless started with `gateway`).
    pub fn gateway_addr(&self) -> SocketAddr {
        let port = self
            .gateway_port
            .expect("the server was started with ServerOptions::gateway");
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    /// Where and how to reach the server.
    pub fn endpoint(&self) -> Endpoint {
        Endpoint {
            addr: self.addr,
            certs_dir: self.certs_dir(),
            dev_token: self.options.mode == Mode::DevToken,
        }
    }

    /// The log of every start so far (stdout and stderr).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    fn config_path(&self) -> PathBuf {
        self.dir.path().join("gonets.toml")
    }

    /// True while the child runs.
    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// The process id of the running child.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGKILL, then reap.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait (bounded) for the exit; panics unless it exits 0.
    pub fn terminate(&mut self) -> ExitStatus {
        let mut c = self.child.take().expect("the server runs");
        // SAFETY: kill(2) on our own child's pid.
        let rc = unsafe { libc::kill(c.id() as libc::pid_t, libc::SIGTERM) };
        assert_eq!(rc, 0, "SIGTERM: {}", std::io::Error::last_os_error());
        let deadline = Instant::now() + STOP_WAIT;
        let status = loop {
            match c.try_wait() {
                Ok(Some(s)) => break s,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                Ok(None) => {
                    let _ = c.kill();
                    let _ = c.wait();
                    panic!(
                        "the server did not exit within {STOP_WAIT:?} of SIGTERM\n{}",
                        self.log()
                    );
                }
                Err(e) => panic!("wait for the server: {e}"),
            }
        };
        assert!(
            status.success(),
            "after SIGTERM the server exited with {status:?} (signal {:?})\n{}",
            status.signal(),
            self.log()
        );
        status
    }

    /// Starts the server again on the same data directory and the same
    /// port, at once: a restart must not wait for the connections of the
    /// previous run to time out (panics with the log if it cannot listen).
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "restart of a running server");
        let port = self.addr.port();
        self.launch(Some(port));
    }

    fn write_config(&self, port: u16) {
        // Relative: to the config file's directory, which is `self.dir`.
        let data_dir = if self.options.relative_paths {
            "data".to_string()
        } else {
            self.data_dir().display().to_string()
        };
        let mut text = format!(
            "data_dir = {:?}\nshards = {}\nlisten = \"{}:{port}\"\n",
            data_dir, self.options.shards, self.options.listen_ip,
        );
        match self.operator_port {
            Some(p) => text.push_str(&format!(
                "operator_listen = \"{}:{p}\"\n",
                self.options.operator_ip
            )),
            None => text.push_str("operator_listen = \"none\"\n"),
        }
        if let Some(p) = self.gateway_port {
            text.push_str(&format!("gateway_listen = \"127.0.0.1:{p}\"\n"));
        }
        if !self.options.gateway_cores.is_empty() {
            let cores = &self.options.gateway_cores;
            text.push_str(&format!("gateway_cores = {cores:?}\n"));
        }
        if let Some(r) = &self.options.registry {
            text.push_str(&format!("registry = {:?}\n", r.display().to_string()));
        }
        match &self.options.mode {
            Mode::Tls => text.push_str("security = \"tls\"\n"),
            Mode::DevToken => text.push_str("security = \"dev-token\"\n"),
            Mode::TlsFiles(f) => {
                text.push_str("security = \"tls\"\n");
                text.push_str(&format!(
                    "[tls]\ncert = {:?}\nkey = {:?}\nclient_ca = {:?}\n",
                    f.cert.display().to_string(),
                    f.key.display().to_string(),
                    f.client_ca.display().to_string()
                ));
            }
        }
        text.push_str(&self.options.sections);
        std::fs::write(self.config_path(), text).expect("write the server config");
    }

    /// Runs `gonets serve` once with the config for `port`; returns the child
    /// and the log offset it starts at.
    fn spawn(&mut self, port: u16) -> (Child, u64) {
        self.write_config(port);
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("open the server log");
        self.starts += 1;
        let _ = writeln!(log, "==== start {} on port {port} ====", self.starts);
        let offset = log.metadata().map_or(0, |m| m.len());
        let err = log.try_clone().expect("clone the log handle");
        let mut command = Command::new(gonets_bin());
        command.arg("serve").arg("--config");
        if self.options.relative_paths {
            let cwd = self.dir.path().join("cwd");
            std::fs::create_dir_all(&cwd).expect("make the server's working directory");
            command.arg("../gonets.toml").current_dir(cwd);
        } else {
            command.arg(self.config_path());
        }
        let child = command
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(err))
            .spawn()
            .expect("spawn gonets serve");
        (child, offset)
    }

    /// Starts the child on `port` (a restart: that port only), or on a free
    /// port (a first start: another one when someone took it meanwhile).
    fn launch(&mut self, port: Option<u16>) {
        let mut last = String::new();
        let attempts = if port.is_some() { 1 } else { START_ATTEMPTS };
        for _ in 0..attempts {
            if self.options.operator && (port.is_none() || self.operator_port.is_none()) {
                self.operator_port = Some(free_port());
            }
            if self.options.gateway && (port.is_none() || self.gateway_port.is_none()) {
                self.gateway_port = Some(free_port());
            }
            let (mut child, offset) = self.spawn(port.unwrap_or_else(free_port));
            match wait_ready(&mut child, &self.log_path(), offset) {
                Ok(addr) => {
                    self.addr = addr;
                    self.child = Some(child);
                    return;
                }
                Err(why) => {
                    let stacks = match child.try_wait() {
                        Ok(None) => stacks_of(child.id()),
                        _ => String::new(),
                    };
                    let _ = child.kill();
                    let _ = child.wait();
                    let log = self.log();
                    if port.is_none() && log[offset as usize..].contains("cannot listen") {
                        last = why;
                        continue; // the free port was taken meanwhile: another one
                    }
                    panic!(
                        "gonets serve did not start: {why}\n---- server log ----\n{log}\n{stacks}"
                    );
                }
            }
        }
        panic!(
            "gonets serve did not start in {START_ATTEMPTS} attempts (ports taken?): {last}\n{}",
            self.log()
        );
    }

    /// Runs `gonets serve` expecting it to fail at start-up; its exit status and log.
    pub fn expect_start_failure(options: ServerOptions) -> (ExitStatus, String) {
        ServerProcess::expect_start_failure_on(options, free_port())
    }

    /// As [`ServerProcess::expect_start_failure`], listening on `port`.
    pub fn expect_start_failure_on(options: ServerOptions, port: u16) -> (ExitStatus, String) {
        let mut server = ServerProcess::unlaunched(options);
        let (mut child, _) = server.spawn(port);
        let wait = ready_wait();
        let deadline = Instant::now() + wait;
        let status = loop {
            if let Ok(Some(s)) = child.try_wait() {
                break s;
            }
            if Instant::now() > deadline {
                server.child = Some(child);
                panic!(
                    "gonets serve was expected to fail but runs after {wait:?}\n{}",
                    server.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        (status, server.log())
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// The threads' stacks of a hung process, if gdb is installed (a start-up
/// hang is then diagnosable from the test's output alone).
fn stacks_of(pid: u32) -> String {
    let out = Command::new("timeout")
        .args(["60", "gdb", "-p", &pid.to_string(), "-batch", "-ex"])
        .arg("thread apply all bt")
        .stdin(Stdio::null())
        .output();
    match out {
        Ok(o) if o.status.success() => format!(
            "---- stacks of the hung server (gdb) ----\n{}",
            String::from_utf8_lossy(&o.stdout)
        ),
        _ => "(no stacks: gdb is not installed or could not attach)".into(),
    }
}

/// Waits for the ready line after `offset` in the log; the address it names.
fn wait_ready(child: &mut Child, log: &Path, offset: u64) -> Result<SocketAddr, String> {
    let started = Instant::now();
    let wait = ready_wait();
    let deadline = started + wait;
    loop {
        let mut text = String::new();
        if let Ok(mut f) = File::open(log) {
            let _ = f.read_to_string(&mut text);
        }
        let fresh = text.get(offset as usize..).unwrap_or("");
        if let Some(at) = fresh.find(READY_LINE) {
            let rest = &fresh[at + READY_LINE.len()..];
            if let Some(end) = rest.find('\n') {
                if started.elapsed() > SLOW_START {
                    crate::print_uncaptured(&format!(
                        "warning: gonets serve took {:?} to start (slow disk?)",
                        started.elapsed()
                    ));
                }
                return rest[..end]
                    .trim()
                    .parse()
                    .map_err(|e| format!("bad address in {:?}: {e}", &rest[..end]));
            }
        }
        match child.try_wait() {
            Ok(Some(s)) => return Err(format!("it exited with {s:?} before serving")),
            Ok(None) => {}
            Err(e) => return Err(format!("wait: {e}")),
        }
        if Instant::now() > deadline {
            return Err(format!(
                "no {READY_LINE:?} within {wait:?} ({READY_WAIT_ENV} sets the wait)"
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs `f` for at most `limit` on the current glommio executor; `None` after that.
pub async fn within<T>(limit: Duration, f: impl Future<Output = T>) -> Option<T> {
    let ms = u64::try_from(limit.as_millis()).unwrap_or(u64::MAX);
    gonets_engine::runtime::within::within(ms, f).await
}

/// Runs `f` for at most `limit`; panics naming `what` after that.
pub async fn bounded<T>(what: &str, limit: Duration, f: impl Future<Output = T>) -> T {
    match within(limit, f).await {
        Some(v) => v,
        None => panic!("{what}: no result within {limit:?}"),
    }
}

/// Runs `fut` on a fresh glommio executor on a new thread (so a test's
/// executor never shares a thread with another's); panics propagate.
pub fn run_local<T, F, Fut>(f: F) -> T
where
    T: Send + 'static,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = T> + 'static,
{
    std::thread::spawn(move || crate::block_on(f()))
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e))
}

/// A plain socket speaking raw bytes to a dev-token server (or to the TCP
/// layer of any server), for malformed input.
pub struct RawConn {
    stream: TcpStream,
    decoder: FrameDecoder,
}

/// What a raw connection saw before it closed.
#[derive(Debug, Default)]
pub struct RawOutcome {
    /// Frames received.
    pub frames: Vec<Frame>,
    /// True when the server closed (end of stream or reset) within the wait.
    pub closed: bool,
}

impl RawOutcome {
    /// The error frames' headers, in order.
    pub fn errors(&mut self) -> Vec<(u64, ErrorReply)> {
        self.frames
            .iter_mut()
            .filter(|f| f.header.opcode == Opcode::Error)
            .map(|f| {
                let id = f.header.correlation_id;
                let e: ErrorReply = gonets_proto::parse_header(&mut f.json)
                    .unwrap_or_else(|e| panic!("unreadable error frame: {e}"));
                (id, e)
            })
            .collect()
    }
}

/// Limits for reading whatever a server sends.
fn generous_limits() -> Limits {
    Limits {
        header_bytes_max: 64 * 1024 * 1024,
        body_bytes_max: 1024 * 1024 * 1024,
    }
}

impl RawConn {
    /// Connects to `addr`.
    pub fn connect(addr: SocketAddr) -> RawConn {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
        stream
            .set_write_timeout(Some(Duration::from_secs(10)))
            .expect("set a write timeout");
        let _ = stream.set_nodelay(true);
        RawConn {
            stream,
            decoder: FrameDecoder::new(generous_limits()),
        }
    }

    /// Writes `bytes` (errors ignored: the server may have closed already).
    pub fn send(&mut self, bytes: &[u8]) {
        let _ = self.stream.write_all(bytes);
        let _ = self.stream.flush();
    }

    /// Closes the writing half (the server sees the end of the stream).
    pub fn shutdown_write(&mut self) {
        let _ = self.stream.shutdown(std::net::Shutdown::Write);
    }

    /// Sends a dev-token hello and expects its reply.
    pub fn hello(&mut self, participant: &str, token: &str) {
        let hello = Hello {
            versions: vec![gonets_proto::frame::VERSION],
            participant: Some(participant.into()),
            token: Some(token.into()),
            client: Some("raw-test".into()),
        };
        self.send(&frame(Opcode::Hello, 1, &hello, &[]));
        let f = self
            .next_frame(Duration::from_secs(10))
            .expect("a hello reply");
        assert_eq!(
            f.header.opcode,
            Opcode::Hello.reply(),
            "the hello was not accepted"
        );
    }

    /// The next frame within `limit`; `None` when the stream ended or the wait passed.
    pub fn next_frame(&mut self, limit: Duration) -> Option<Frame> {
        let deadline = Instant::now() + limit;
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            match self.decoder.next_frame() {
                Ok(Some(f)) => return Some(f),
                Ok(None) => {}
                Err(e) => panic!("the server sent a bad frame: {e}"),
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            self.stream
                .set_read_timeout(Some(left))
                .expect("set a read timeout");
            match self.stream.read(&mut chunk) {
                Ok(0) => return None,
                Ok(n) => self.decoder.extend(&chunk[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return None
                }
                Err(_) => return None,
            }
        }
    }

    /// Reads frames until the server closes or `limit` passes.
    pub fn read_until_closed(&mut self, limit: Duration) -> RawOutcome {
        let deadline = Instant::now() + limit;
        let mut out = RawOutcome::default();
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            while let Ok(Some(f)) = self.decoder.next_frame() {
                out.frames.push(f);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return out;
            }
            self.stream
                .set_read_timeout(Some(left))
                .expect("set a read timeout");
            match self.stream.read(&mut chunk) {
                Ok(0) => {
                    out.closed = true;
                    return out;
                }
                Ok(n) => self.decoder.extend(&chunk[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return out
                }
                Err(_) => {
                    out.closed = true; // reset
                    return out;
                }
            }
        }
    }
}

/// Encodes one frame with `header` as its JSON header.
pub fn frame<T: serde::Serialize>(op: Opcode, id: u64, header: &T, body: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    gonets_proto::encode(&mut out, op, id, header, body);
    out
}

/// Encodes one frame from raw JSON header bytes.
pub fn raw_frame(op_byte: u8, id: u64, json: &[u8], body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(24 + json.len() + body.len());
    out.extend_from_slice(b"GN");
    out.push(gonets_proto::frame::VERSION);
    out.push(op_byte);
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&id.to_le_bytes());
    out.extend_from_slice(&(json.len() as u32).to_le_bytes());
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(json);
    out.extend_from_slice(body);
    out
}

/// A rustls client configuration presenting `participant`'s certificate of
/// `certs_dir` (for raw TLS connections).
pub fn raw_tls_config(certs_dir: &Path, participant: &str) -> Arc<rustls::ClientConfig> {
    tls::client_config(&client_files(certs_dir, participant))
        .unwrap_or_else(|e| panic!("TLS configuration of {participant}: {e}"))
}

/// Fetches from `queue` until exactly `n` messages came, each long-poll
/// waiting up to 300 ms, all within `limit` (a test failure past it).
pub async fn fetch_n(
    client: &Client,
    queue: &gonets_types::QueueId,
    n: usize,
    limit: Duration,
) -> Vec<gonets_client::Message> {
    let deadline = Instant::now() + limit;
    let mut got = Vec::new();
    // Bounded by the deadline.
    while got.len() < n {
        assert!(
            Instant::now() < deadline,
            "only {} of {n} messages of {queue} within {limit:?}",
            got.len()
        );
        let max = u32::try_from(n - got.len()).expect("a bounded count");
        let batch = bounded(
            "fetch",
            limit,
            client.fetch(queue, max, Duration::from_millis(300)),
        )
        .await
        .unwrap_or_else(|e| panic!("fetch {queue}: {e}"));
        got.extend(batch);
    }
    assert_eq!(got.len(), n, "fetched more than asked from {queue}");
    got
}

/// Runs `promtool check metrics` on `text` (a `/metrics` body) and fails the
/// test when promtool refuses it. Without promtool the check is skipped,
/// except in CI (`GONETS_CI` or `CI` set; `.ci/run` installs Debian's
/// `prometheus` package), where it must run.
pub fn promtool_check_metrics(text: &str) {
    use std::io::Write;
    const PROMTOOL_WAIT: Duration = Duration::from_secs(30);
    let child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let in_ci = std::env::var_os("GONETS_CI").is_some() || std::env::var_os("CI").is_some();
            assert!(
                !in_ci,
                "promtool is missing in CI (.ci/run installs Debian's prometheus package)"
            );
            eprintln!("promtool not installed: `promtool check metrics` skipped (apt-get install prometheus)");
            return;
        }
        Err(e) => panic!("run promtool: {e}"),
    };
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(text.as_bytes())
        .expect("promtool reads its input");
    let out = wait_output(child, PROMTOOL_WAIT, "promtool check metrics");
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}\n---- metrics ----\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Waits for `child` to exit within `limit` (killed and a test failure
/// past it, naming `what`); its output.
pub fn wait_output(mut child: Child, limit: Duration, what: &str) -> std::process::Output {
    let deadline = Instant::now() + limit;
    // Bounded by the deadline.
    while child.try_wait().expect("wait for the child").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{what} still runs after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("the child's output")
}

/// A full request and answer of the embedded registry's EGRUL kind between
/// two fresh clients (MFC asks, FNS answers), the answer acked: proof that
/// a server still serves.
pub async fn round_trip(ep: &Endpoint, tag: &str) {
    const EGRUL: &str = "urn:gonets:fns:egrul-extract:1";
    /// Bound of each step.
    const STEP: Duration = Duration::from_secs(120);
    let mfc = ep.connect("MFC").await;
    let fns = ep.connect("FNS").await;
    let a = bounded(
        "send",
        STEP,
        mfc.send_request(gonets_types::NewRequest::new(EGRUL, tag.to_string())),
    )
    .await
    .expect("send_request");
    let requests = gonets_types::QueueId::Requests(gonets_types::DataKindId::new(EGRUL));
    let got = fetch_n(&fns, &requests, 1, STEP).await;
    assert_eq!(got[0].id, a.id);
    fns.send_response(got[0].id, format!("answer {tag}"))
        .await
        .expect("send_response");
    let answers = gonets_types::QueueId::Answers(gonets_types::ParticipantId::new("MFC"));
    let answer = fetch_n(&mfc, &answers, 1, STEP).await.remove(0);
    assert_eq!(answer.reply_to, Some(got[0].id));
    assert_eq!(&answer.payload[..], format!("answer {tag}").as_bytes());
    mfc.ack(&answer).await.expect("ack");
}
