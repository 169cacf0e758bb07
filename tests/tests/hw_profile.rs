//! Hardware profiles, black box (docs/operations.md, "Hardware
//! profiles"): `gonets hw detect` runs on this machine and writes a
//! profile; `gonets serve --profile` starts a hub with it (the placement
//! and the profile show in the operator API's `/info`) and stops cleanly on SIGTERM; a
//! bad profile (an unknown key, a core this machine lacks) is refused
//! with a message naming the problem, exit status 1, no panic.
//!
//! Needs the `gonets` binary (`cargo build --release -p gonets --bin gonets`).

use gonets_tests::net::{free_port, gonets_bin, ready_wait, wait_output, STOP_WAIT};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Bound of `gonets hw detect` (its fdatasync samples take at most 1 s here).
const DETECT_WAIT: Duration = Duration::from_secs(60);
/// Bound of a refused start.
const REFUSAL_WAIT: Duration = Duration::from_secs(30);
/// Bound of one HTTP exchange.
const HTTP_WAIT: Duration = Duration::from_secs(30);

/// Runs `gonets hw detect` into `dir/profile.toml`; returns the profile's path.
fn detect(dir: &Path) -> std::path::PathBuf {
    let out = dir.join("profile.toml");
    let child = Command::new(gonets_bin())
        .args([
            "hw",
            "detect",
            "--samples",
            "50",
            "--time-budget-ms",
            "1000",
        ])
        .arg("--data-dir")
        .arg(dir.join("data"))
        .arg("--out")
        .arg(&out)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn gonets hw detect");
    let output = wait_output(child, DETECT_WAIT, "gonets hw detect");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "hw detect failed: {stderr}");
    assert!(stderr.contains("CPUAffinity="), "{stderr}");
    out
}

/// A dev-token config on free ports with no shard count (the profile's applies).
fn write_config(dir: &Path, operator_port: u16) -> std::path::PathBuf {
    let path = dir.join("gonets.toml");
    let text = format!(
        "data_dir = \"data\"\nlisten = \"127.0.0.1:{}\"\nsecurity = \"dev-token\"\n\
         operator_listen = \"127.0.0.1:{operator_port}\"\n",
        free_port()
    );
    std::fs::write(&path, text).expect("write the config");
    path
}

fn serve(config: &Path, profile: &Path, log: &Path) -> Child {
    let log_file = std::fs::File::create(log).expect("create the log");
    Command::new(gonets_bin())
        .arg("serve")
        .arg("--config")
        .arg(config)
        .arg("--profile")
        .arg(profile)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::from(log_file.try_clone().unwrap()))
        .stderr(Stdio::from(log_file))
        .spawn()
        .expect("spawn gonets serve")
}

/// Waits (bounded) for `gonets listening on`; panics with the log if the child exits first.
fn wait_listening(child: &mut Child, log: &Path) {
    let deadline = Instant::now() + ready_wait();
    // Bounded by the deadline.
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.contains("gonets listening on ") {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("gonets serve exited with {status:?} before serving:\n{text}");
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!(
                "gonets serve did not listen within {:?}:\n{text}",
                ready_wait()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn get_json(addr: SocketAddr, path: &str) -> Value {
    let mut stream = TcpStream::connect_timeout(&addr, HTTP_WAIT).expect("connect to the API");
    stream.set_read_timeout(Some(HTTP_WAIT)).unwrap();
    let head = format!("GET {path} HTTP/1.1\r\nHost: gonets\r\nConnection: close\r\n\r\n");
    stream.write_all(head.as_bytes()).expect("send the request");
    let mut text = String::new();
    stream.read_to_string(&mut text).expect("read the response");
    let (_, body) = text.split_once("\r\n\r\n").expect("a head and a body");
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

/// SIGTERM, then a bounded wait; panics unless the exit is 0.
fn terminate(mut child: Child, log: &Path) {
    // SAFETY: kill(2) on our own child's pid.
    let rc = unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    assert_eq!(rc, 0, "SIGTERM: {}", std::io::Error::last_os_error());
    let deadline = Instant::now() + STOP_WAIT;
    // Bounded by the deadline.
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait for serve") {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("no exit within {STOP_WAIT:?} of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let text = std::fs::read_to_string(log).unwrap_or_default();
    assert!(status.success(), "exit {status:?} after SIGTERM:\n{text}");
}

/// The `shard_cores` of a profile's text.
fn shard_cores(profile_text: &str) -> Vec<u64> {
    let value: toml::Value = toml::from_str(profile_text).expect("the profile is TOML");
    value["placement"]["shard_cores"]
        .as_array()
        .expect("placement.shard_cores")
        .iter()
        .map(|c| c.as_integer().expect("a core number") as u64)
        .collect()
}

#[test]
fn given_this_machine_when_detected_then_its_profile_starts_a_hub_with_that_placement() {
    let dir = tempfile::tempdir().unwrap();
    let profile = detect(dir.path());
    let text = std::fs::read_to_string(&profile).unwrap();
    for section in [
        "[machine.disk]",
        "fdatasync_p99_us",
        "[placement]",
        "[commit]",
        "[memory]",
    ] {
        assert!(text.contains(section), "{section} missing:\n{text}");
    }
    let cores = shard_cores(&text);
    let operator_port = free_port();
    let config = write_config(dir.path(), operator_port);
    let log = dir.path().join("serve.log");
    let mut child = serve(&config, &profile, &log);
    wait_listening(&mut child, &log);

    let api = SocketAddr::from(([127, 0, 0, 1], operator_port));
    let info = get_json(api, "/info");
    assert_eq!(info["shards"].as_u64(), Some(cores.len() as u64), "{info}");
    let pinned: Vec<u64> = info["cores"]["pinned"]
        .as_array()
        .unwrap_or_else(|| panic!("no pinned cores in {info}"))
        .iter()
        .filter_map(Value::as_u64)
        .collect();
    assert_eq!(pinned, cores, "{info}");
    let path = info["profile"]["path"].as_str().unwrap_or_default();
    assert!(path.ends_with("profile.toml"), "{info}");
    assert!(info["profile"]["name"].is_string(), "{info}");
    let log_text = std::fs::read_to_string(&log).unwrap();
    assert!(log_text.contains("hardware profile"), "{log_text}");
    terminate(child, &log);
}

/// `gonets serve --profile` with `profile_text` fails at once; returns its stderr.
fn refused(profile_text: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("bad.toml");
    std::fs::write(&profile, profile_text).unwrap();
    let config = write_config(dir.path(), free_port());
    let child = Command::new(gonets_bin())
        .arg("serve")
        .arg("--config")
        .arg(&config)
        .arg("--profile")
        .arg(&profile)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn gonets serve");
    let output = wait_output(child, REFUSAL_WAIT, "gonets serve with a bad profile");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        stderr.contains("bad.toml"),
        "the message names the file: {stderr}"
    );
    assert!(
        !dir.path().join("data").exists(),
        "nothing was started: {stderr}"
    );
    stderr
}

/// The checked-in profile of the 2-core VM, with `from` replaced by `to`.
fn vm_profile_with(from: &str, to: &str) -> String {
    let text = include_str!("../../hw-profiles/vm-2core.toml");
    assert!(
        text.contains(from),
        "{from:?} is not in hw-profiles/vm-2core.toml"
    );
    text.replace(from, to)
}

#[test]
fn given_a_profile_with_an_unknown_key_when_served_then_refused_naming_the_key() {
    let text = vm_profile_with("[memory]\n", "[memory]\nbudget_gigabytes = 8\n");
    let stderr = refused(&text);
    assert!(
        stderr.contains("unknown field `budget_gigabytes`"),
        "{stderr}"
    );
}

#[test]
fn given_a_profile_naming_a_core_this_machine_lacks_when_served_then_refused_naming_it() {
    let text = vm_profile_with("shard_cores = [0, 1]", "shard_cores = [0, 60000]");
    let stderr = refused(&text);
    assert!(
        stderr.contains("placement.shard_cores names CPU 60000"),
        "{stderr}"
    );
}
