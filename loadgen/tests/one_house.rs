//! What the load generator took over from `bench/`'s own tools (issue 14
//! item 6): rt and bulk with the hub in this process (`--in-process`, was
//! `hub-workloads`) and the storage report (`report --storage`, was
//! `storage-summary`). Short runs, no speed asserted.

use serde_json::{json, Value};
use std::path::Path;
use std::process::{Command, Output};

fn loadgen(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gonets-loadgen"))
        .args(args)
        .output()
        .expect("run gonets-loadgen")
}

fn read(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).expect("valid JSON")
}

fn phase<'a>(v: &'a Value, name: &str) -> &'a Value {
    v["phases"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["name"] == name))
        .unwrap_or_else(|| panic!("no phase {name} in {v}"))
}

#[test]
fn given_in_process_hub_when_rt_runs_then_every_call_is_answered_in_the_one_schema() {
    let dir = tempfile::tempdir().unwrap();
    let json_path = dir.path().join("rt.json");
    let data = dir.path().join("hub");
    let out = loadgen(&[
        "rt",
        "--in-process",
        "--rate",
        "200",
        "--duration",
        "1",
        "--warmup",
        "0.5",
        "--lag-max-ms",
        "2000",
        "--data-dir",
        data.to_str().unwrap(),
        "--json",
        json_path.to_str().unwrap(),
    ]);
    let code = out.status.code();
    assert!(
        code == Some(0) || code == Some(3),
        "exit {code:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = read(&json_path);
    assert_eq!(v["schema"], "gonets-loadgen/1");
    assert_eq!(v["setup"]["hub"], "in-process");
    let p = phase(&v, "rt");
    assert_eq!(p["errors"], json!({}), "{p}");
    assert_eq!(p["ok"], 200, "every measured call answered: {p}");
    assert_eq!(p["latency"]["over_2s"], 0);
    assert!(p["hub"]["peak_rss_bytes"].as_u64().unwrap() > 0);
    assert!(!data.exists(), "the data directory is removed afterwards");
}

#[test]
fn given_in_process_hub_when_bulk_runs_then_all_accepted_and_drained() {
    let dir = tempfile::tempdir().unwrap();
    let json_path = dir.path().join("bulk.json");
    let data = dir.path().join("hub");
    let out = loadgen(&[
        "bulk",
        "--in-process",
        "--messages",
        "2000",
        "--message-bytes",
        "1024",
        "--senders",
        "2",
        "--window",
        "8",
        "--data-dir",
        data.to_str().unwrap(),
        "--json",
        json_path.to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = read(&json_path);
    let p = phase(&v, "bulk");
    assert_eq!(p["ok"], 2000, "{p}");
    assert_eq!(p["extra"]["drained"], 2000, "{p}");
    assert!(p["mb_per_s"].as_f64().unwrap() > 0.0);
}

#[test]
fn given_in_process_when_workload_is_not_rt_or_bulk_or_a_target_is_given_then_clear_error() {
    let out = loadgen(&["mixed", "--in-process"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("rt and bulk only"));
    let out = loadgen(&["rt", "--in-process", "--embedded"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("one of --in-process"));
    let out = loadgen(&["rt", "--in-process", "--durability", "maybe"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("fdatasync, dsync or none"));
}

/// One run of `bench/storage.sh`'s layout, figures made up.
fn write_storage_run(dir: &Path, seq_d: f64, flat_mb: f64, clean_ms: f64) {
    let run = dir.join("run-1");
    std::fs::create_dir_all(&run).unwrap();
    let way = |seq: f64, p99: f64| json!({"seq_mb_s": seq, "write4k_fdatasync": {"p50_us": 100.0, "p99_us": p99, "p999_us": p99, "max_us": p99}});
    let limits = json!({
        "memcpy_gb_per_s": 5.0,
        "ways": {"buffered": way(300.0, 400.0), "direct": way(400.0, 500.0), "overwrite": way(seq_d, 200.0)},
    });
    let commit = json!({
        "segment_mib": 64, "size_bytes": 1024,
        "open_loop": [{"offered_per_s": 1000.0, "valid": true, "latency": {"p99_us": 350.0}, "service": {"p99_us": 260.0}}],
        "paced": {"rate_per_s": 1000.0, "service": {"p99_us": 250.0}},
        "max": {"producers": 32, "per_commit": 256, "payload_mb_s": flat_mb, "records_per_s": 100000.0},
    });
    let recovery = json!({"gib": 1.0, "clean": {"open_ms": clean_ms, "bytes_scanned": 0}});
    for (name, v) in [
        ("limits", limits),
        ("commit-latency", commit),
        ("recovery-bench", recovery),
    ] {
        std::fs::write(run.join(format!("{name}.json")), v.to_string()).unwrap();
    }
    std::fs::write(dir.join("machine.txt"), "cores: 2\n").unwrap();
    std::fs::write(dir.join("commands.txt"), "commit-latency --max\n").unwrap();
}

#[test]
fn given_storage_runs_when_reported_then_each_target_is_judged_against_its_limit() {
    let dir = tempfile::tempdir().unwrap();
    write_storage_run(dir.path(), 1000.0, 800.0, 50.0);
    let out_path = dir.path().join("storage.json");
    let out = loadgen(&[
        "report",
        "--storage",
        "--results",
        dir.path().to_str().unwrap(),
        "--json",
        out_path.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = read(&out_path);
    let m = &v["medians"];
    assert_eq!(m["raw_overwrite_seq_mb_s"], 1000.0);
    assert_eq!(m["raw_overwrite_4k_p99_us"], 200.0);
    assert_eq!(m["p99_low_load_target_us"], 250.0);
    assert_eq!(m["memcpy_gb_s"], 5.0);
    let met: Vec<&Value> = v["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| &t["met"])
        .collect();
    // (i) 800 / 1000 >= 0.70; (ii) 250 / 200 <= 1.5; (iii) 50 ms < 1 s.
    assert_eq!(met, [&json!(true), &json!(true), &json!(true)], "{v}");
    assert_eq!(v["commands"], json!(["commit-latency --max"]));
    assert!(stdout.contains("(d) O_DIRECT overwrite"), "{stdout}");
}

#[test]
fn given_storage_runs_below_target_when_reported_then_missed() {
    let dir = tempfile::tempdir().unwrap();
    write_storage_run(dir.path(), 1000.0, 500.0, 1500.0);
    let out_path = dir.path().join("storage.json");
    let out = loadgen(&[
        "report",
        "--storage",
        "--results",
        dir.path().to_str().unwrap(),
        "--json",
        out_path.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0));
    let v = read(&out_path);
    assert_eq!(v["targets"][0]["met"], false, "500 / 1000 < 0.70");
    assert_eq!(v["targets"][2]["met"], false, "1.5 s is not under 1 s");
    assert!(String::from_utf8_lossy(&out.stdout).contains("MISSED"));
}

#[test]
fn given_empty_results_when_storage_report_then_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = loadgen(&[
        "report",
        "--storage",
        "--results",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no run-* folders"));
}
