//! `gonets repair [DATA_DIR] [--config FILE]`: sets damaged committed records
//! aside (copied to each log's `quarantine/` with a report) so the hub
//! starts and serves everything else. The hub must be stopped.

use gonets_engine::runtime::repair::{repair_data_dir, LogRepair};
use gonets_engine::runtime::HubConfig;
use gonets_server::config_file::ConfigFile;
use std::path::PathBuf;

pub(crate) fn run(
    data_dir: Option<PathBuf>,
    config: Option<PathBuf>,
) -> Result<(), Box<dyn std::error::Error>> {
    crate::serve::init_logs();
    let file = match &config {
        Some(path) => ConfigFile::load(path)?,
        None => ConfigFile::default(),
    };
    // Resolved once, here: the argument against the working directory, the
    // config's against the config file's directory (ConfigFile::load).
    let data_dir = match data_dir {
        Some(d) => {
            std::path::absolute(&d).map_err(|e| format!("data directory {}: {e}", d.display()))?
        }
        None => file.data_dir()?,
    };
    // The segment size must be the one the logs were written with.
    let mut log = HubConfig::new(&data_dir).log;
    if let Some(s) = file.commit.segment_size_bytes {
        log.segment_size_bytes = s;
    }
    println!("gonets repair: {}", data_dir.display());
    let mut damaged_logs = 0usize;
    let done = repair_data_dir(&data_dir, &log, |repair| {
        print_log(repair);
        if !repair.report.damaged.is_empty() {
            damaged_logs += 1;
        }
    })?;
    let lost: u64 = done
        .iter()
        .flat_map(|r| r.report.damaged.iter())
        .map(|c| c.end_offset.saturating_sub(c.first_offset))
        .sum();
    if damaged_logs == 0 {
        println!(
            "checked {} logs: no damage found, nothing to do",
            done.len()
        );
    } else {
        println!(
            "checked {} logs: {damaged_logs} damaged, {lost} records set aside; the hub now \
             starts without them (their bytes and the report are in each log's quarantine/)",
            done.len()
        );
    }
    Ok(())
}

fn print_log(repair: &LogRepair) {
    let (dir, report) = (&repair.dir, &repair.report);
    if report.damaged.is_empty() {
        println!("  {}: intact", dir.display());
        return;
    }
    println!(
        "  {}: {} damaged ranges",
        dir.display(),
        report.damaged.len()
    );
    for c in &report.damaged {
        println!(
            "    offsets {}..{} (segment {}, byte {}): {}",
            c.first_offset, c.end_offset, c.segment_base, c.position, c.what
        );
    }
    if !repair.unverified.is_empty() {
        println!("    still recognisable in the damaged bytes (unverified):");
        for line in &repair.unverified {
            println!("      {line}");
        }
    }
    if let Some(file) = &report.report_file {
        println!("    report: {}", file.display());
    }
}
