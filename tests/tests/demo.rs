//! `gonets demo` as a newcomer runs it: from a working directory of its own,
//! with the default relative data directory. It must finish with its report
//! and print no error line (a relative data directory once made every
//! history-index job fail and flood the terminal).
//!
//! Needs the `gonets` binary (built with the workspace).

use gonets_tests::net::{gonets_bin, wait_output};
use std::process::{Command, Stdio};
use std::time::Duration;

/// How long the demo may take, start and report included.
const DEMO_WAIT: Duration = Duration::from_secs(180);

#[test]
fn given_a_fresh_directory_when_the_demo_runs_with_its_relative_default_then_it_reports_and_prints_no_error(
) {
    let cwd = tempfile::tempdir().unwrap();
    let child = Command::new(gonets_bin())
        .args(["demo", "--seconds", "3"])
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
    let errors: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("ERROR") || l.contains("error:"))
        .collect();
    assert!(
        errors.is_empty(),
        "the demo printed error lines:\n{}",
        errors.join("\n")
    );
    assert!(
        cwd.path().join("gonets-demo").is_dir(),
        "the demo kept its data under the relative default"
    );
}
