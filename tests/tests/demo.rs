//! `gonets demo` and `gonets serve` as a newcomer and an operator run them:
//! from a working directory of their own, with a RELATIVE data directory,
//! long enough that every shard writes a history-index run. They must print
//! no `ERROR` or `WARN` line (a relative data directory once reached
//! glommio's directory open and made every history-index job fail, with an
//! error line per pass flooding the terminal).
//!
//! Needs the `gonets` binary (built with the workspace).

use gonets_tests::net::{
    bounded, fetch_n, gonets_bin, run_local, wait_output, Endpoint, ServerOptions, ServerProcess,
};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long the demo may take, start and report included.
const DEMO_WAIT: Duration = Duration::from_secs(180);
/// Shards of both runs: the demo's two kinds and the serve test's two kinds
/// land on different shards of two (queues are placed by a hash of the kind).
const SHARDS: u16 = 2;
/// Index entries a shard holds before it writes a run: two per finished
/// exchange, so a few exchanges per shard make a run due.
const INDEX_TABLE_ENTRIES_MAX: usize = 8;
/// Exchanges per kind in the serve test (each finished one is two entries).
const EXCHANGES_PER_KIND: usize = 12;
/// How long the index runs may take to appear once the exchanges finished.
const RUNS_WAIT: Duration = Duration::from_secs(60);
/// Async kinds of the embedded registry whose queues lie on shards 1 and 0
/// of two, with their providers.
const KINDS: [(&str, &str); 2] = [
    ("urn:gonets:fns:egrul-extract:1", "FNS"),
    ("urn:gonets:rosreestr:egrn-extract:1", "ROSREESTR"),
];

/// The lines of `text` a log level marks as an error or a warning (tracing's
/// `ERROR`/`WARN`, or the CLI's `error:`).
fn bad_lines(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|l| l.contains("ERROR") || l.contains(" WARN ") || l.contains("error:"))
        .collect()
}

/// Index-run files (`run-*.idx`) of shard `shard` under `data_dir`.
fn index_runs(data_dir: &Path, shard: u16) -> usize {
    let dir = data_dir
        .join(format!("shard-{shard}"))
        .join("history-index");
    std::fs::read_dir(dir).map_or(0, |entries| {
        entries
            .filter_map(Result::ok)
            .filter(|e| {
                let name = e.file_name().to_string_lossy().to_string();
                name.starts_with("run-") && name.ends_with(".idx")
            })
            .count()
    })
}

/// Shards of `data_dir` without an index run.
fn shards_without_runs(data_dir: &Path) -> Vec<u16> {
    (0..SHARDS)
        .filter(|s| index_runs(data_dir, *s) == 0)
        .collect()
}

#[test]
fn given_a_fresh_directory_when_the_demo_runs_with_its_relative_default_then_every_shard_indexes_and_no_error_or_warning(
) {
    let cwd = tempfile::tempdir().unwrap();
    let child = Command::new(gonets_bin())
        .args(["demo", "--seconds", "3"])
        .args(["--shards", &SHARDS.to_string()])
        .args([
            "--index-table-entries-max",
            &INDEX_TABLE_ENTRIES_MAX.to_string(),
        ])
        .env_remove("RUST_LOG")
        .current_dir(cwd.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn gonets demo");
    let out = wait_output(child, DEMO_WAIT, "gonets demo");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the demo failed:\n{text}");
    let bad = bad_lines(&text);
    assert!(
        bad.is_empty(),
        "the demo printed error or warning lines:\n{}",
        bad.join("\n")
    );
    let data_dir = cwd.path().join("gonets-demo");
    assert!(
        data_dir.is_dir(),
        "the demo kept its data under the relative default"
    );
    assert_eq!(
        shards_without_runs(&data_dir),
        Vec::<u16>::new(),
        "every shard wrote an index run:\n{text}"
    );
}

/// `n` finished exchanges of `kind` (MFC asks, `provider` answers, MFC acks).
async fn exchanges(ep: &Endpoint, kind: &str, provider: &str, n: usize) {
    const STEP: Duration = Duration::from_secs(120);
    let mfc = ep.connect("MFC").await;
    let prov = ep.connect(provider).await;
    for i in 0..n {
        let request = gonets_types::NewRequest::new(kind, format!("relative {i}"));
        bounded("send", STEP, mfc.send_request(request))
            .await
            .expect("send_request");
    }
    let requests = gonets_types::QueueId::Requests(gonets_types::DataKindId::new(kind));
    for r in fetch_n(&prov, &requests, n, STEP).await {
        bounded("answer", STEP, prov.send_response(r.id, "answer"))
            .await
            .expect("send_response");
    }
    let answers = gonets_types::QueueId::Answers(gonets_types::ParticipantId::new("MFC"));
    for a in fetch_n(&mfc, &answers, n, STEP).await {
        bounded("ack", STEP, mfc.ack(&a)).await.expect("ack");
    }
}

#[test]
fn given_a_config_with_a_relative_data_dir_when_serve_runs_from_another_directory_then_every_shard_indexes_and_no_error_or_warning(
) {
    let mut server = ServerProcess::start(ServerOptions {
        shards: SHARDS,
        relative_paths: true,
        sections: format!("[archive]\nindex_table_entries_max = {INDEX_TABLE_ENTRIES_MAX}\n"),
        ..ServerOptions::default()
    });
    let ep = server.endpoint();
    for (kind, provider) in KINDS {
        let ep = ep.clone();
        run_local(move || async move { exchanges(&ep, kind, provider, EXCHANGES_PER_KIND).await });
    }
    let data_dir = server.data_dir();
    let deadline = Instant::now() + RUNS_WAIT;
    while !shards_without_runs(&data_dir).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    server.terminate();
    let log = server.log();
    assert_eq!(
        shards_without_runs(&data_dir),
        Vec::<u16>::new(),
        "every shard wrote an index run within {RUNS_WAIT:?}:\n{log}"
    );
    let bad = bad_lines(&log);
    assert!(
        bad.is_empty(),
        "the server logged errors or warnings:\n{}\n---- log ----\n{log}",
        bad.join("\n")
    );
}
