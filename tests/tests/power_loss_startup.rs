//! Power loss during the first start of `gonets serve` (issue 13, item 8
//! and "every file the server creates is made durable"): the development
//! certificates, the `shard-count` file, the shards' directories and logs.
//!
//! The storage layer's journal, recording process-wide, takes down every
//! create, write, sync, `mkdir`, directory sync, rename and remove of a
//! first start (what `gonets serve` does before it listens: the config's
//! development certificates, the data directory check, `Hub::start`). Then:
//!
//! - when the hub reports ready, every file and directory it made is
//!   durable (the disk a power loss then leaves is the one it sees), and the
//!   journal accounts for every byte on the real disk (nothing written
//!   behind its back);
//! - for every prefix of the journal, disks a power loss at that moment may
//!   leave (synced content, and of the rest any subset: unsynced 512-byte
//!   sectors and unsynced name changes each kept or lost) start again, with
//!   a complete, consistent certificate set (a real TLS handshake) and the
//!   right shard count, never an empty certificate or a mixed set.
//!
//! The same again with the rt journal on (`[commit] rt_journal`, docs/adr/0036):
//! its directories and segments are made durable too.
//!
//! The journal is process-wide, so this file holds one test.

use gonets_engine::{Hub, LogConfig};
use gonets_server::config_file::ConfigFile;
use gonets_server::tls;
use gonets_server::{checks, Security};
use gonets_storage::journal::replay::describe;
use gonets_storage::journal::{self, IoEvent};
use gonets_tests::power_disk::{Disk, Loss};
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

const SHARDS: u16 = 2;
/// The test's note in the journal: the hub reported ready here.
const READY: IoEvent = IoEvent::Acknowledged { end_offset: 1 };
/// Disks built per crash point.
const VARIANTS: usize = 2;
/// A participant of the embedded registry whose client certificate is checked.
const PARTICIPANT: &str = "MFC";

/// Runs what `gonets serve` runs before it listens, on `data_dir`.
fn start(data_dir: &Path, rt_journal: bool) -> Result<(Hub, Security), String> {
    let text = format!(
        "data_dir = {:?}\nshards = {SHARDS}\nsecurity = \"tls\"\n[commit]\nrt_journal = {rt_journal}\n",
        data_dir.display().to_string()
    );
    let file = ConfigFile::parse(&text)?;
    let mut serve = file.resolve().map_err(|e| e.to_string())?;
    checks::data_dir_writable(&serve.hub.data_dir).map_err(|e| e.to_string())?;
    serve.hub.log = LogConfig::small_for_tests();
    let hub = Hub::start(serve.hub).map_err(|e| e.to_string())?;
    Ok((hub, serve.server.security))
}

/// A log's lock file: empty, opened (made if missing) by every open to
/// hold an flock; whether its entry survives a power loss does not matter.
const LOCK_FILE: &str = "LOCK";

/// Every directory and file under `root` (relative path → content; `None`
/// for a directory), lock files aside.
fn tree(root: &Path) -> BTreeMap<PathBuf, Option<Vec<u8>>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.file_name().is_some_and(|n| n == LOCK_FILE) {
                continue;
            }
            let rel = path.strip_prefix(root).unwrap().to_path_buf();
            if path.is_dir() {
                out.insert(rel, None);
                stack.push(path);
            } else {
                out.insert(rel, Some(std::fs::read(&path).unwrap()));
            }
        }
    }
    out
}

/// The differences between two trees, for a message.
fn differences(
    a: &BTreeMap<PathBuf, Option<Vec<u8>>>,
    b: &BTreeMap<PathBuf, Option<Vec<u8>>>,
) -> Vec<String> {
    let describe = |v: Option<&Option<Vec<u8>>>| match v {
        None => "absent".to_string(),
        Some(None) => "a directory".to_string(),
        Some(Some(c)) => format!("a file of {} bytes", c.len()),
    };
    let mut keys: Vec<&PathBuf> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .map(|k| {
            format!(
                "{}: {} / {}",
                k.display(),
                describe(a.get(k)),
                describe(b.get(k))
            )
        })
        .collect()
}

/// A full mutual-TLS handshake in memory between the server's
/// configuration and `PARTICIPANT`'s certificate from `certs_dir`.
fn handshake(security: &Security, certs_dir: &Path) -> Result<(), String> {
    let Security::Tls(server) = security else {
        return Err("the server runs without TLS".into());
    };
    let files = tls::DevCerts::layout(certs_dir, &[PARTICIPANT])
        .client_files(PARTICIPANT)
        .expect("the layout names the participant");
    let client = tls::client_config(&files).map_err(|e| e.to_string())?;
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("a DNS name");
    let mut c = rustls::ClientConnection::new(client, name).map_err(|e| e.to_string())?;
    let mut s = rustls::ServerConnection::new(Arc::clone(server)).map_err(|e| e.to_string())?;
    // Bounded: a TLS 1.3 mutual handshake takes three flights.
    for _ in 0..8 {
        let mut wire = Vec::new();
        c.write_tls(&mut wire).map_err(|e| e.to_string())?;
        s.read_tls(&mut &wire[..]).map_err(|e| e.to_string())?;
        s.process_new_packets()
            .map_err(|e| format!("server: {e}"))?;
        wire.clear();
        s.write_tls(&mut wire).map_err(|e| e.to_string())?;
        c.read_tls(&mut &wire[..]).map_err(|e| e.to_string())?;
        c.process_new_packets()
            .map_err(|e| format!("client: {e}"))?;
        if !c.is_handshaking() && !s.is_handshaking() {
            return Ok(());
        }
    }
    Err("the handshake did not finish".into())
}

/// Starts on a crash disk and checks what the start made of it.
fn restart_and_check(data_dir: &Path, what: &str, rt_journal: bool) {
    let (hub, security) = start(data_dir, rt_journal)
        .unwrap_or_else(|e| panic!("{what}: the next start failed: {e}"));
    let certs = data_dir.join("dev-certs");
    handshake(&security, &certs)
        .unwrap_or_else(|e| panic!("{what}: the certificates in use do not fit together: {e}"));
    let count = std::fs::read_to_string(data_dir.join("shard-count")).unwrap();
    assert_eq!(count, format!("{SHARDS}\n"), "{what}: shard-count");
    for s in 0..SHARDS {
        let journal = data_dir.join(format!("shard-{s}")).join("rt-journal");
        assert_eq!(
            journal.is_dir(),
            rt_journal,
            "{what}: {}",
            journal.display()
        );
    }
    hub.shutdown()
        .unwrap_or_else(|e| panic!("{what}: shutdown: {e}"));
}

/// Records the journal of a first start (and its clean stop).
fn record_first_start(root: &Path, rt_journal: bool) -> Vec<IoEvent> {
    std::fs::create_dir_all(root).unwrap();
    journal::start_process();
    let started = start(&root.join("data"), rt_journal);
    journal::record(|| READY);
    let (hub, _) = started.unwrap_or_else(|e| {
        journal::take_process();
        panic!("the first start failed: {e}")
    });
    hub.shutdown().expect("shutdown");
    journal::take_process()
}

#[test]
fn given_power_loss_at_every_step_of_the_first_start_when_started_again_then_it_serves_with_whole_files(
) {
    for rt_journal in [false, true] {
        first_start_cut_at_every_step(rt_journal);
    }
}

/// The first start recorded, checked when ready, and cut at every step.
fn first_start_cut_at_every_step(rt_journal: bool) {
    let tmp = tempfile::tempdir().unwrap();
    let live = tmp.path().join("live");
    let events = record_first_start(&live, rt_journal);
    let ready = events
        .iter()
        .position(|e| matches!(e, IoEvent::Acknowledged { end_offset: 1 }))
        .expect("the ready note");
    let count = |f: fn(&IoEvent) -> bool| events[..ready].iter().filter(|e| f(e)).count();
    let (dirs, files) = (
        count(|e| matches!(e, IoEvent::CreateDir { .. })),
        count(|e| matches!(e, IoEvent::Create { .. })),
    );
    assert!(
        dirs >= 4 && files >= 10,
        "the start journaled only {dirs} directories and {files} files"
    );

    // Everything the journal says is on the real disk, and nothing else.
    let mut disk = Disk::new(&live);
    for e in &events {
        disk.apply(e);
    }
    let seen = tmp.path().join("seen");
    disk.materialize(&seen, &mut Loss::Nothing);
    let diff = differences(&tree(&live), &tree(&seen));
    assert!(diff.is_empty(), "real disk / journal: {diff:#?}");

    // At ready, a power loss keeps everything.
    let mut disk = Disk::new(&live);
    for e in &events[..ready] {
        disk.apply(e);
    }
    let (now, durable) = (tmp.path().join("now"), tmp.path().join("durable"));
    disk.materialize(&now, &mut Loss::Nothing);
    disk.materialize(&durable, &mut Loss::Everything);
    let diff = differences(&tree(&now), &tree(&durable));
    assert!(
        diff.is_empty(),
        "not durable when ready (seen / after power loss): {diff:#?}"
    );

    // A power loss at every step before ready.
    let mut rng = StdRng::seed_from_u64(0x5eed_57a7);
    let mut disk = Disk::new(&live);
    let mut points = 0;
    for (k, e) in events[..ready].iter().enumerate() {
        disk.apply(e);
        for variant in 0..VARIANTS {
            let dir = tmp.path().join(format!("crash-{k}-{variant}"));
            disk.materialize(&dir, &mut Loss::Random(&mut rng));
            let what = format!("crash point {k}/{variant} after {}", describe(e));
            restart_and_check(&dir.join("data"), &what, rt_journal);
            std::fs::remove_dir_all(&dir).unwrap();
            points += 1;
        }
    }
    gonets_tests::print_uncaptured(&format!(
        "start-up power loss (rt journal {rt_journal}): {ready} journaled steps ({dirs} \
         directories, {files} files), {points} crash disks, each started again with whole files"
    ));
}
