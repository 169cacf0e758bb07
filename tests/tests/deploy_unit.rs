//! deploy/gonets.service passes `systemd-analyze verify` (with its
//! `ExecStart` pointed at the built `gonets`, since verify checks that the
//! binary exists), also with the `CPUAffinity=` line `gonets hw check`
//! prints for the checked-in 2-core profile; deploy/gonets-alerts.yml
//! passes `promtool check rules`. Without `systemd-analyze` or `promtool`
//! a test says so and passes, except under `GONETS_CI` (`.ci/run` installs
//! them).
//!
//! Needs the `gonets` binary (`cargo build --release -p gonets --bin gonets`).

use gonets_tests::net::{gonets_bin, wait_output};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Bound of one `systemd-analyze verify` or `gonets hw check`.
const TOOL_WAIT: Duration = Duration::from_secs(60);
const UNIT: &str = include_str!("../../deploy/gonets.service");
/// The binary the checked-in unit runs.
const INSTALLED_BIN: &str = "/usr/local/bin/gonets";

fn have_systemd_analyze() -> bool {
    Command::new("systemd-analyze")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Runs `cmd` (bounded); its exit status and its stdout and stderr together.
fn run(cmd: &mut Command, what: &str) -> (bool, String) {
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {what}: {e}"));
    let out = wait_output(child, TOOL_WAIT, what);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Verifies `unit` as `dir/gonets.service`; panics with verify's output on
/// a failure or on any complaint about the unit (verify exits 0 on unknown keys).
fn verify(dir: &Path, unit: &str) {
    let path = dir.join("gonets.service");
    std::fs::write(&path, unit).unwrap();
    let (ok, text) = run(
        Command::new("systemd-analyze").arg("verify").arg(&path),
        "systemd-analyze verify",
    );
    let complaints: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("gonets.service"))
        .collect();
    assert!(
        ok && complaints.is_empty(),
        "systemd-analyze verify refused the unit:\n{text}\n---- unit ----\n{unit}"
    );
}

/// The `CPUAffinity=` line `gonets hw check` prints for hw-profiles/vm-2core.toml.
fn affinity_line() -> String {
    let profile = Path::new(env!("CARGO_MANIFEST_DIR")).join("../hw-profiles/vm-2core.toml");
    let (ok, text) = run(
        Command::new(gonets_bin())
            .arg("hw")
            .arg("check")
            .arg(&profile),
        "gonets hw check",
    );
    assert!(ok, "gonets hw check failed:\n{text}");
    text.lines()
        .find(|l| l.starts_with("CPUAffinity="))
        .unwrap_or_else(|| panic!("no CPUAffinity= line in:\n{text}"))
        .to_string()
}

#[test]
fn given_the_systemd_unit_when_verified_then_systemd_accepts_it_with_and_without_cpu_affinity() {
    if !have_systemd_analyze() {
        assert!(
            std::env::var_os("GONETS_CI").is_none(),
            "GONETS_CI is set but systemd-analyze is missing: .ci/run installs it (package systemd)"
        );
        gonets_tests::print_uncaptured(
            "skipped: systemd-analyze is not installed (Debian package systemd); \
             deploy/gonets.service was not verified",
        );
        return;
    }
    assert!(
        UNIT.contains(INSTALLED_BIN),
        "the unit runs {INSTALLED_BIN}"
    );
    let bin = gonets_bin().display().to_string();
    let unit = UNIT.replace(INSTALLED_BIN, &bin);
    let dir = tempfile::tempdir().unwrap();
    verify(dir.path(), &unit);
    let line = affinity_line();
    assert!(
        unit.contains("#CPUAffinity="),
        "the unit has a CPUAffinity= line to fill in"
    );
    let pinned = unit.replacen("#CPUAffinity=1-15,17", &line, 1);
    assert!(pinned.contains(&format!("\n{line}\n")), "{pinned}");
    verify(dir.path(), &pinned);
}

#[test]
fn given_the_alert_rules_when_checked_by_promtool_then_every_rule_is_valid() {
    let have = Command::new("promtool")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !have {
        assert!(
            std::env::var_os("GONETS_CI").is_none(),
            "GONETS_CI is set but promtool is missing: .ci/run installs it (package prometheus)"
        );
        gonets_tests::print_uncaptured(
            "skipped: promtool is not installed (Debian package prometheus); \
             deploy/gonets-alerts.yml was not checked",
        );
        return;
    }
    let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/gonets-alerts.yml");
    let (ok, text) = run(
        Command::new("promtool")
            .arg("check")
            .arg("rules")
            .arg(&rules),
        "promtool check rules",
    );
    assert!(
        ok && text.contains("SUCCESS"),
        "promtool refused the rules:\n{text}"
    );
}
