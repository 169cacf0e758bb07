//! `gonets report sla`: the SLA report over a period, read from the SLA
//! files of a data directory (docs/operations.md, "SLA reports").
//!
//! It reads the data directory rather than asking the operator API: the
//! files are the durable record, so the report works with the hub stopped,
//! on a copy of a data directory, and needs no client certificate; a
//! running hub's last `sla_flush_ms` of counts is what it may miss (`/sla`
//! includes them).

use gonets_operator::{parse_time_ms, report_json, report_table, sum_data_dir, PERIOD_MS_DEFAULT};
use gonets_server::config_file::ConfigFile;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

/// What `gonets report sla` was given.
pub(crate) struct SlaArgs {
    pub(crate) from: Option<String>,
    pub(crate) to: Option<String>,
    pub(crate) data_dir: Option<PathBuf>,
    pub(crate) config: Option<PathBuf>,
    pub(crate) json: bool,
}

fn time_arg(flag: &str, text: &str) -> Result<u64, String> {
    parse_time_ms(text).ok_or_else(|| {
        format!(
            "--{flag} {text:?}: expected Unix ms or UTC like 2026-12-02T13:00:00Z or 2026-12-02"
        )
    })
}

pub(crate) fn sla(args: SlaArgs) -> Result<(), Box<dyn std::error::Error>> {
    let data_dir = match args.data_dir {
        Some(d) => {
            std::path::absolute(&d).map_err(|e| format!("data directory {}: {e}", d.display()))?
        }
        None => match &args.config {
            Some(path) => ConfigFile::load(path)?.data_dir()?,
            None => ConfigFile::default().data_dir()?,
        },
    };
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let to = args
        .to
        .as_deref()
        .map(|t| time_arg("to", t))
        .transpose()?
        .unwrap_or(now_ms);
    let from = match args.from.as_deref() {
        Some(t) => time_arg("from", t)?,
        None => to.saturating_sub(PERIOD_MS_DEFAULT),
    };
    if from >= to {
        return Err("--from must be before --to".into());
    }
    let kinds = sum_data_dir(&data_dir, from, to)?;
    if args.json {
        println!("{}", report_json(&kinds, from, to));
    } else {
        print!("{}", report_table(&kinds, from, to));
    }
    Ok(())
}
