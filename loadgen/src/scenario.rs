//! Scenario files: a TOML table whose keys are the command-line flags
//! (`rate = 5000`, `embedded = true`, `cores = [0]`, `workload = "rt"`).
//! The file's flags go before the command line's, so the command line wins.

use std::ffi::OsString;

/// `argv` with the flags of its `--scenario FILE` (if any) inserted after
/// the program name (and after the workload, if the command line names one first).
pub fn args_with_scenario(argv: Vec<OsString>) -> Result<Vec<OsString>, String> {
    let mut file = None;
    for (i, a) in argv.iter().enumerate() {
        let s = a.to_string_lossy();
        if s == "--scenario" {
            file = Some(argv.get(i + 1).ok_or("--scenario needs a file")?.clone());
        } else if let Some(f) = s.strip_prefix("--scenario=") {
            file = Some(OsString::from(f));
        }
    }
    let Some(file) = file else {
        return Ok(argv);
    };
    let text = std::fs::read_to_string(&file)
        .map_err(|e| format!("scenario {}: {e}", file.to_string_lossy()))?;
    let flags =
        scenario_flags(&text).map_err(|e| format!("scenario {}: {e}", file.to_string_lossy()))?;
    let mut out = Vec::with_capacity(argv.len() + flags.flags.len() + 1);
    let mut rest = argv.into_iter();
    out.extend(rest.next());
    let mut rest: Vec<OsString> = rest.collect();
    let cli_names_workload = rest
        .first()
        .is_some_and(|a| !a.to_string_lossy().starts_with('-'));
    if cli_names_workload {
        out.push(rest.remove(0));
    } else if let Some(w) = flags.workload {
        out.push(w.into());
    }
    out.extend(flags.flags.into_iter().map(OsString::from));
    out.extend(rest);
    Ok(out)
}

/// A scenario's flags.
#[derive(Debug, PartialEq)]
pub struct ScenarioFlags {
    /// The workload, if the file names one.
    pub workload: Option<String>,
    /// The flags, `--name value` pairs and bare `--switch`es.
    pub flags: Vec<String>,
}

/// Turns scenario TOML into flags.
pub fn scenario_flags(text: &str) -> Result<ScenarioFlags, String> {
    let table: toml::Table = toml::from_str(text).map_err(|e| e.to_string())?;
    let mut out = ScenarioFlags {
        workload: None,
        flags: Vec::new(),
    };
    for (key, value) in table {
        if key == "workload" {
            out.workload = Some(
                value
                    .as_str()
                    .ok_or("workload must be a string")?
                    .to_string(),
            );
            continue;
        }
        if key == "scenario" {
            return Err("a scenario cannot name another scenario".into());
        }
        let flag = format!("--{}", key.replace('_', "-"));
        match value {
            toml::Value::Boolean(true) => out.flags.push(flag),
            toml::Value::Boolean(false) => {}
            toml::Value::String(s) => out.flags.extend([flag, s]),
            toml::Value::Integer(i) => out.flags.extend([flag, i.to_string()]),
            toml::Value::Float(f) => out.flags.extend([flag, f.to_string()]),
            toml::Value::Array(items) => {
                let parts: Result<Vec<String>, String> = items
                    .iter()
                    .map(|v| match v {
                        toml::Value::Integer(i) => Ok(i.to_string()),
                        toml::Value::String(s) => Ok(s.clone()),
                        other => Err(format!("{key}: unsupported array item {other}")),
                    })
                    .collect();
                out.flags.extend([flag, parts?.join(",")]);
            }
            other => return Err(format!("{key}: unsupported value {other}")),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_scenario_when_read_then_keys_become_flags_and_cli_comes_last() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("s.toml");
        std::fs::write(
            &f,
            "workload = \"rt\"\nrate = 2000\nembedded = true\nquick = false\ncores = [0, 1]\nlag_max_ms = 20\nwarmup = 0.5\n",
        )
        .unwrap();
        let argv: Vec<OsString> = [
            "gonets-loadgen",
            "--scenario",
            f.to_str().unwrap(),
            "--rate",
            "9",
        ]
        .iter()
        .map(OsString::from)
        .collect();
        let out: Vec<String> = args_with_scenario(argv)
            .unwrap()
            .into_iter()
            .map(|s| s.into_string().unwrap())
            .collect();
        assert_eq!(out[0], "gonets-loadgen");
        assert_eq!(out[1], "rt");
        let joined = out.join(" ");
        assert!(joined.contains("--rate 2000"));
        assert!(joined.contains("--embedded"));
        assert!(!joined.contains("--quick"));
        assert!(joined.contains("--cores 0,1"));
        assert!(joined.contains("--lag-max-ms 20"));
        assert!(
            joined.ends_with("--rate 9"),
            "the command line comes last: {joined}"
        );
    }

    #[test]
    fn given_bad_scenario_when_read_then_clear_error() {
        assert!(scenario_flags("rate = ").is_err());
        assert!(scenario_flags("x = { a = 1 }")
            .unwrap_err()
            .contains("unsupported"));
    }
}
