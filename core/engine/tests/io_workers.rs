//! Where the kernel's io-wq workers of a shard run (`HubConfig::io_worker_cores`,
//! docs/adr/0024). A binary of its own: it reads every thread of the
//! process, so no other test's hub may share it.

use futures_lite::future::block_on;
use gonets_engine::{Hub, HubConfig, HubStartError, LogConfig};
use gonets_types::NewRequest;
use std::path::Path;

/// An async data kind of the embedded registry: FNS serves it to MVD, SFR, ROSREESTR, MFC.
const EGRUL: &str = "urn:gonets:fns:egrul-extract:1";

fn config(dir: &Path) -> HubConfig {
    let mut c = HubConfig::new(dir);
    c.shards = 1;
    c.log = LogConfig::small_for_tests();
    c
}

/// `(name, Cpus_allowed_list)` of every thread of this process.
fn threads() -> Vec<(String, String)> {
    let tasks = std::fs::read_dir("/proc/self/task").expect("/proc/self/task");
    let mut out = Vec::new();
    for task in tasks.flatten() {
        // A thread may end between the listing and the reads.
        let (Ok(name), Ok(status)) = (
            std::fs::read_to_string(task.path().join("comm")),
            std::fs::read_to_string(task.path().join("status")),
        ) else {
            continue;
        };
        let cpus = status
            .lines()
            .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
            .unwrap_or("")
            .trim()
            .to_string();
        out.push((name.trim().to_string(), cpus));
    }
    out
}

#[test]
fn given_io_worker_cores_when_requests_commit_then_io_workers_run_only_there() {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let (shard_core, worker_core) = (0, cores - 1);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut c = config(dir.path());
    c.pin_cores = Some(vec![shard_core]);
    c.io_worker_cores = Some(vec![worker_core]);
    let hub = Hub::start(c).expect("hub starts");
    let session = hub.session("MFC").expect("session");
    // Each acceptance waits for an fdatasync, which io_uring runs on an io-wq worker.
    for i in 0..8 {
        block_on(session.send_request(NewRequest::new(EGRUL, format!("passport {i}"))))
            .expect("accepted");
    }
    let workers: Vec<(String, String)> = threads()
        .into_iter()
        .filter(|(name, _)| name.starts_with("iou-wrk"))
        .collect();
    assert!(
        !workers.is_empty(),
        "an fdatasync ran, so a worker exists: {:?}",
        threads()
    );
    for (name, cpus) in &workers {
        assert_eq!(cpus, &worker_core.to_string(), "{name} runs on {cpus}");
    }
    hub.shutdown().expect("clean shutdown");
}

#[test]
fn given_io_worker_core_the_machine_lacks_when_started_then_typed_error_names_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut c = config(dir.path());
    c.io_worker_cores = Some(vec![1000]);
    let err = Hub::start(c).expect_err("no core 1000");
    assert!(
        matches!(err, HubStartError::IoWorkers { shard: 0, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("io_worker_cores"), "{err}");
}

#[test]
fn given_empty_io_worker_cores_when_started_then_config_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut c = config(dir.path());
    c.io_worker_cores = Some(Vec::new());
    let err = Hub::start(c).expect_err("empty list");
    assert!(matches!(err, HubStartError::Config(_)), "{err:?}");
    assert!(err.to_string().contains("io_worker_cores"), "{err}");
}
