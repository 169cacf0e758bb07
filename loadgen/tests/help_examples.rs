//! Every scenario file the `--help` examples name exists (relative to the
//! workspace root, where the examples are run from) and holds flags the
//! load generator accepts.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The workspace root: the examples' paths are relative to it.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("loadgen lies in the workspace")
        .to_path_buf()
}

/// The paths after `--scenario` in `text`.
fn scenario_paths(text: &str) -> Vec<String> {
    let words: Vec<&str> = text.split_whitespace().collect();
    words
        .windows(2)
        .filter(|w| w[0] == "--scenario" && !w[1].starts_with('<'))
        .map(|w| w[1].to_string())
        .collect()
}

#[test]
fn given_the_help_examples_when_they_name_scenario_files_then_each_exists_and_its_flags_parse() {
    let bin = env!("CARGO_BIN_EXE_gonets-loadgen");
    let out = Command::new(bin)
        .arg("--help")
        .output()
        .expect("run --help");
    assert!(out.status.success(), "--help exits 0");
    let help = String::from_utf8_lossy(&out.stdout);
    let paths = scenario_paths(&help);
    assert!(!paths.is_empty(), "the help names a scenario file:\n{help}");
    for p in paths {
        let file = root().join(&p);
        let text = std::fs::read_to_string(&file)
            .unwrap_or_else(|e| panic!("--help names {p}, which cannot be read: {e}"));
        gonets_loadgen::scenario::scenario_flags(&text)
            .unwrap_or_else(|e| panic!("--help names {p}, which does not parse: {e}"));
        // Clap refuses a flag it does not know before it reaches `--help`.
        let check = Command::new(bin)
            .args(["--scenario", &p, "--help"])
            .current_dir(root())
            .output()
            .expect("run --scenario FILE --help");
        assert!(
            check.status.success(),
            "{p}: the load generator refuses its flags:\n{}",
            String::from_utf8_lossy(&check.stderr)
        );
    }
}
