//! The auditor's commands (docs/adr/0020-signed-anchors-and-verify.md):
//!
//! - `gonets verify DATA_DIR [--anchors FILE] [--hub-key FILE]`: checks
//!   every log of a stopped hub's data directory, and the exported anchors,
//!   then the rt journals kept (docs/adr/0036).
//!   Exit status 0 verified, 1 a break, 2 usage or I/O error.
//! - `gonets anchors DATA_DIR`: every anchor in the logs, one JSON line each.
//! - `gonets audit DATA_DIR`: every audit record, one JSON line each.
//! - `gonets verify-receipt FILE|- --hub-key FILE`: checks a receipt.

use gonets_engine::runtime::verify::{
    list_trust_records, verify_data_dir, ListError, LogReport, TrustRecord, Verdict,
};
use gonets_engine::runtime::verify_journal::{verify_rt_journals, JournalWalk};
use gonets_trust::{Anchor, HubPublicKey};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Exit status of a usage or I/O error.
const EXIT_USAGE: u8 = 2;
/// Least time between two progress lines on stderr.
const PROGRESS_EVERY: Duration = Duration::from_secs(2);

fn usage_error(e: impl std::fmt::Display) -> ExitCode {
    eprintln!("gonets: error: {e}");
    ExitCode::from(EXIT_USAGE)
}

/// `gonets verify`.
pub(crate) fn verify(data_dir: &Path, anchors: Option<&Path>, hub_key: Option<&Path>) -> ExitCode {
    let key_path = hub_key.map_or_else(|| data_dir.join("hub.pub"), Path::to_path_buf);
    let key = match HubPublicKey::load(&key_path) {
        Ok(k) => k,
        Err(e) => return usage_error(format!("hub public key: {e} (give it with --hub-key)")),
    };
    let exported = match anchors.map(read_anchors).transpose() {
        Ok(a) => a,
        Err(e) => return usage_error(e),
    };
    let started = Instant::now();
    let mut shown = Instant::now();
    let mut progress = |line: &str| {
        if shown.elapsed() >= PROGRESS_EVERY {
            eprintln!("{line} ({} s)", started.elapsed().as_secs());
            shown = Instant::now();
        }
    };
    println!(
        "gonets verify: {} (hub key {})",
        data_dir.display(),
        key.key_id
    );
    let verdict = match verify_data_dir(data_dir, &key, exported.as_deref(), &mut progress) {
        Ok(v) => v,
        Err(e) => return usage_error(e),
    };
    match &verdict {
        Verdict::Broken { at, logs } => {
            for r in logs {
                print_log(r);
            }
            println!("BREAK: {at}");
            println!("the data directory does NOT verify: the first break is above");
        }
        Verdict::Verified {
            logs,
            exported_checked,
            exported_unreachable,
        } => print_verified(logs, *exported_checked, *exported_unreachable),
    }
    if verdict.exit_code() != 0 {
        return ExitCode::from(verdict.exit_code());
    }
    match verify_rt_journals(data_dir, &mut progress) {
        Ok(walk) => print_journals(&walk),
        Err(e) => usage_error(e),
    }
}

/// The rt journals' walk (docs/adr/0036), after the logs verified.
fn print_journals(walk: &JournalWalk) -> ExitCode {
    for j in &walk.journals {
        let s = &j.summary;
        println!(
            "  shard {} rt journal: {} segments, {} batches, {} records, offsets {}..{} \
             (copies of calls' records; no anchors)",
            j.shard, s.segments, s.batches, s.records, s.first_offset, s.next_offset
        );
    }
    match &walk.broken {
        Some(b) => {
            println!("BREAK: {b}");
            println!(
                "the rt journal does NOT verify (the logs above did): a call's record past \
                 the break that the shard log lacks may be lost at the next start"
            );
            ExitCode::from(1)
        }
        None => ExitCode::SUCCESS,
    }
}

fn print_log(r: &LogReport) {
    let s = &r.summary;
    print!(
        "  shard {} {} log: {} segments, {} batches, {} records, offsets {}..{}, {} in-log anchors checked",
        r.shard,
        r.log.as_str(),
        s.segments,
        s.batches,
        s.records,
        s.first_offset,
        s.next_offset,
        r.anchors_checked
    );
    if r.anchors_unreachable > 0 {
        print!(
            " ({} more before the oldest segment)",
            r.anchors_unreachable
        );
    }
    match r.last_anchored {
        Some(o) => print!(", last anchored offset {o}"),
        None => print!(", no anchor"),
    }
    if r.audit_records > 0 {
        print!(", {} audit records", r.audit_records);
    }
    if r.lost_records > 0 {
        // ADR 0036: gaps a start filled where the rt journal held later records.
        print!(
            ", {} lost offsets (filled at a start from the rt journal)",
            r.lost_records
        );
    }
    println!();
}

fn print_verified(logs: &[LogReport], exported: Option<usize>, unreachable: usize) {
    for r in logs {
        print_log(r);
    }
    let records: u64 = logs.iter().map(|r| r.summary.records).sum();
    println!(
        "verified {} logs, {records} records: every record CRC, every commit marker, the hash chain \
         across batches and segments, every in-log anchor's signature and chain",
        logs.len()
    );
    match exported {
        Some(n) => {
            println!(
                "{n} exported anchors match the logs ({unreachable} more name offsets retention \
                 dropped): the records up to each log's last anchored offset are the ones the hub \
                 signed; records after it are checked for consistency only"
            );
        }
        None => println!(
            "AUTHENTICITY NOT PROVEN: no exported anchors were given (--anchors FILE). The logs \
             are internally consistent, but whoever can write the disk can rewrite records, \
             recompute the chain and drop or neutralise the in-log anchors; only anchors kept \
             away from this disk (`gonets anchors`, the operator API's /anchors) prove the \
             history was not rewritten."
        ),
    }
}

/// Reads an anchors file: one JSON line each, blank lines skipped.
fn read_anchors(path: &Path) -> Result<Vec<Anchor>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let a = Anchor::from_json_line(line)
            .map_err(|e| format!("{} line {}: {e}", path.display(), i + 1))?;
        out.push(a);
    }
    Ok(out)
}

/// `gonets anchors` (`audit` false) and `gonets audit` (true).
pub(crate) fn list(data_dir: &Path, audit: bool) -> ExitCode {
    let mut each = |r: TrustRecord| match r {
        TrustRecord::Anchor(a) if !audit => println!("{}", a.to_json_line()),
        TrustRecord::Audit(shard, offset, a) if audit => {
            println!("{}", a.to_json_line(shard, offset))
        }
        _ => {}
    };
    match list_trust_records(data_dir, &mut each) {
        Ok(()) => ExitCode::SUCCESS,
        Err(ListError::Unreadable(e)) => usage_error(e),
        Err(e @ ListError::Break { .. }) => {
            eprintln!("gonets: a log does not verify, listing stopped there: {e}");
            ExitCode::from(1)
        }
    }
}

/// `gonets verify-receipt`.
pub(crate) fn verify_receipt(file: &Path, hub_key: &Path) -> ExitCode {
    let key = match HubPublicKey::load(hub_key) {
        Ok(k) => k,
        Err(e) => return usage_error(format!("hub public key: {e}")),
    };
    let mut text = String::new();
    let read = if file == Path::new("-") {
        std::io::stdin().read_to_string(&mut text).map(|_| ())
    } else {
        std::fs::read_to_string(file).map(|t| text = t)
    };
    if let Err(e) = read {
        return usage_error(format!("{}: {e}", file.display()));
    }
    let receipt = match gonets_trust::receipt_from_json(text.trim()) {
        Ok(r) => r,
        Err(e) => {
            println!("NOT VALID: {e}");
            return ExitCode::from(1);
        }
    };
    match gonets_trust::verify_receipt(&receipt, &key) {
        Ok(()) => {
            println!("OK: the hub ({}) signed this receipt", key.key_id);
            println!("  message_id {}", receipt.message_id);
            if let Some(r) = receipt.reply_to {
                println!("  reply_to   {r}");
            }
            println!("  digest     {}", receipt.digest.to_hex());
            println!("  sender     {}", receipt.sender);
            println!("  kind       {}", receipt.kind);
            println!("  time_ms    {}", receipt.time_ms);
            println!("  shard      {} offset {}", receipt.shard, receipt.offset);
            if let Some(p) = &receipt.proof {
                println!(
                    "  signed     in a tree: leaf {} of {} (docs/adr/0023)",
                    p.index + 1,
                    p.count
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            println!("NOT VALID: {e}");
            ExitCode::from(1)
        }
    }
}

/// The data directory argument made absolute (for messages).
pub(crate) fn absolute(dir: PathBuf) -> PathBuf {
    std::path::absolute(&dir).unwrap_or(dir)
}
