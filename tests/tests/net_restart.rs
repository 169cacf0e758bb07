//! Restarts on the same port (issue 13, item 6): after a SIGKILL or a clean
//! SIGTERM with clients connected and traffic in flight, the connections of
//! the old process linger in the kernel (FIN_WAIT2 while a client keeps its
//! end open, TIME_WAIT after); the next `gonets serve` on the same port must
//! start at once and serve, not fail with `Address already in use` for a
//! minute. A port that another program, or another gonets, really listens
//! on is still refused with a clear message.
//!
//! Needs the `gonets` binary (`cargo build -p gonets --bin gonets`).

use gonets_tests::net::{bounded, run_local, within, Endpoint, ServerOptions, ServerProcess};
use gonets_tests::print_uncaptured;
use gonets_types::NewRequest;
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const EGRUL: &str = "urn:gonets:fns:egrul-extract:1";
/// Bound of one client operation in the traffic loop (the server may be gone).
const TRAFFIC_OP: Duration = Duration::from_secs(5);
/// Bound of one operation against a running server.
const OP: Duration = Duration::from_secs(120);
/// Requests accepted before the stop.
const TRAFFIC_BEFORE_STOP: u64 = 20;
/// Idle raw connections held open across the stop: the server's end of
/// each stays in FIN_WAIT2 as long as the client does not close.
const IDLE_CONNECTIONS: usize = 8;

/// Clients connected to the server with requests in flight, until stopped.
struct Traffic {
    stop: Arc<AtomicBool>,
    accepted: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
    idle: Vec<TcpStream>,
}

impl Traffic {
    /// Connects the idle sockets and starts two senders and a fetching
    /// provider; returns once requests are being accepted.
    fn start(ep: &Endpoint) -> Traffic {
        let idle = (0..IDLE_CONNECTIONS)
            .map(|_| TcpStream::connect(ep.addr).expect("connect an idle socket"))
            .collect();
        let stop = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(AtomicU64::new(0));
        let (started_tx, started_rx) = mpsc::channel();
        let (ep, s, a) = (ep.clone(), stop.clone(), accepted.clone());
        let thread = std::thread::spawn(move || {
            gonets_tests::block_on(traffic(ep, s, a, started_tx));
        });
        started_rx
            .recv_timeout(OP)
            .expect("the traffic's first request accepted");
        // Some more traffic, so that the stop comes in the middle of it.
        let deadline = Instant::now() + OP;
        while accepted.load(Ordering::Relaxed) < TRAFFIC_BEFORE_STOP && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        Traffic {
            stop,
            accepted,
            thread: Some(thread),
            idle,
        }
    }

    /// Stops the clients (bounded by their per-operation wait) and closes the idle sockets.
    fn finish(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().expect("the traffic thread");
        }
        self.idle.clear();
        self.accepted.load(Ordering::Relaxed)
    }
}

/// Sends requests from two MFC connections and fetches them as FNS, every
/// operation bounded and its errors ignored (the server dies under it).
async fn traffic(
    ep: Endpoint,
    stop: Arc<AtomicBool>,
    accepted: Arc<AtomicU64>,
    started: mpsc::Sender<()>,
) {
    let senders = [ep.connect("MFC").await, ep.connect("MFC").await];
    let fns = ep.connect("FNS").await;
    let queue = gonets_types::QueueId::Requests(gonets_types::DataKindId::new(EGRUL));
    let mut i = 0u64;
    while !stop.load(Ordering::Relaxed) {
        // Both senders' requests are in flight together.
        let [a, b] = &senders;
        let request = |n: u64| NewRequest::new(EGRUL, format!("in flight {n}"));
        let (ra, rb) = futures_lite::future::zip(
            within(TRAFFIC_OP, a.send_request(request(i))),
            within(TRAFFIC_OP, b.send_request(request(i + 1))),
        )
        .await;
        i += 2;
        for r in [ra, rb] {
            if let Some(Ok(_)) = r {
                accepted.fetch_add(1, Ordering::Relaxed);
                let _ = started.send(());
            }
        }
        let fetch = fns.fetch(&queue, 4, Duration::from_millis(5));
        if within(TRAFFIC_OP, fetch).await.is_none_or(|r| r.is_err()) {
            glommio::timer::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// A request accepted by the server at `ep` and fetched by its provider.
fn serves(ep: Endpoint) {
    run_local(move || async move {
        let mfc = ep.connect("MFC").await;
        let sent = NewRequest::new(EGRUL, "after the restart".to_string());
        let a = bounded("send", OP, mfc.send_request(sent))
            .await
            .expect("send_request after the restart");
        let status = bounded("status", OP, mfc.status(a.id))
            .await
            .expect("status of the request sent after the restart");
        assert_eq!(status.answer_id, None);
    });
}

/// Stops the server with `stop` under traffic and at once (within
/// milliseconds of the old process's exit) restarts it on the same port.
fn restart_under_traffic(what: &str, stop: impl FnOnce(&mut ServerProcess)) {
    let mut server = ServerProcess::start_default();
    let port = server.addr().port();
    let traffic = Traffic::start(&server.endpoint());
    stop(&mut server);
    let stopped = Instant::now();
    let left = lingering_connections(port);
    assert!(
        left > 0,
        "{what}: no connection of the old process lingers on port {port}: the test proves nothing"
    );
    // `restart` panics with the server's log when the port is refused.
    server.restart();
    let ready_after = stopped.elapsed();
    assert_eq!(
        server.addr().port(),
        port,
        "{what}: restarted on another port"
    );
    serves(server.endpoint());
    let accepted = traffic.finish();
    print_uncaptured(&format!(
        "{what}: {accepted} requests accepted under traffic; {left} connections of the old \
         process lingered; restarted on port {port}, serving {ready_after:?} after the stop"
    ));
}

/// Sockets on local port `port` that are not listening (the connections a
/// stopped server leaves: FIN_WAIT2, TIME_WAIT, ...), from `/proc/net/tcp`.
fn lingering_connections(port: u16) -> usize {
    const LISTEN: &str = "0A";
    let table = std::fs::read_to_string("/proc/net/tcp").expect("read /proc/net/tcp");
    // Each line: `sl local_address rem_address st ...`, addresses as HEXIP:HEXPORT.
    table
        .lines()
        .skip(1)
        .filter(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let local_port = fields
                .get(1)
                .and_then(|a| a.rsplit(':').next())
                .and_then(|p| u16::from_str_radix(p, 16).ok());
            local_port == Some(port) && fields.get(3) != Some(&LISTEN)
        })
        .count()
}

#[test]
fn given_clients_connected_with_traffic_when_the_server_is_killed_then_a_restart_on_the_same_port_serves(
) {
    restart_under_traffic("SIGKILL", |server| server.kill9());
}

#[test]
fn given_clients_connected_with_traffic_when_the_server_is_sigtermed_then_a_restart_on_the_same_port_serves(
) {
    restart_under_traffic("SIGTERM", |server| {
        server.terminate();
    });
}

#[test]
fn given_another_program_listening_on_the_port_when_gonets_starts_then_it_refuses_with_a_clear_message(
) {
    let other = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = other.local_addr().expect("address").port();
    let (status, log) = ServerProcess::expect_start_failure_on(ServerOptions::default(), port);
    assert!(!status.success(), "{log}");
    assert!(
        log.contains(&format!("cannot listen on 127.0.0.1:{port}"))
            && log.contains("Address already in use")
            && log.contains("another program"),
        "the refusal names the address and the cause:\n{log}"
    );
    drop(other);
}

#[test]
fn given_a_running_gonets_on_the_port_when_a_second_starts_then_it_refuses_and_the_first_still_serves(
) {
    let first = ServerProcess::start_default();
    let port = first.addr().port();
    let (status, log) = ServerProcess::expect_start_failure_on(ServerOptions::default(), port);
    assert!(!status.success(), "{log}");
    assert!(
        log.contains(&format!("cannot listen on 127.0.0.1:{port}"))
            && log.contains("another gonets"),
        "the refusal names the address and the cause:\n{log}"
    );
    serves(first.endpoint());
}
