//! The end of the demo's report (issue 18): the hub's signed receipt of one
//! request, checked against the hub's public key, and one `gonets verify`
//! of the demo's own data directory against the anchors the hub signed
//! while it ran (what an auditor fetches from the operator API).

use super::Failure;
use gonets_engine::runtime::verify::{verify_data_dir, Verdict};
use gonets_trust::{receipt_to_json, verify_receipt, Anchor, HubKey, HubPublicKey};
use gonets_types::Receipt;
use std::path::Path;
use std::sync::Arc;

/// The demo hub's anchor interval, ms: short, so a run of seconds has
/// anchors to export.
pub(super) const ANCHOR_INTERVAL_MS: u64 = 1_000;

/// The demo hub's signing key, made in its data directory (`hub.key`,
/// `hub.pub`), as `gonets serve` makes one by default.
pub(super) fn hub_key(dir: &Path) -> Result<Arc<HubKey>, Failure> {
    let (key, _) = gonets_server::hub_key_file::load_or_make(&dir.join("hub.key"))?;
    Ok(Arc::new(key))
}

/// Prints the receipt and the verification; an error when either fails.
pub(super) fn report(
    dir: &Path,
    key: &HubPublicKey,
    receipt: Option<&Receipt>,
    anchors: &[Anchor],
) -> Result<(), Failure> {
    let receipt = receipt.ok_or("the hub signed no receipt for the first bulk request")?;
    verify_receipt(receipt, key).map_err(|e| format!("the demo's receipt: {e}"))?;
    let receipt_file = dir.join("receipt.json");
    std::fs::write(&receipt_file, receipt_to_json(receipt) + "\n")?;
    // Receipts handed out together share one signature (docs/adr/0023).
    let together = match &receipt.proof {
        Some(p) => format!(
            " (one signature for the {} receipts of its commit)",
            p.count
        ),
        None => String::new(),
    };
    println!(
        "receipt: request {} from {} accepted at hub time {} ms, shard {} offset {}, digest {}, \
         signed by hub key {}{together}: verified (check it yourself: gonets verify-receipt {} --hub-key {})",
        receipt.message_id,
        receipt.sender,
        receipt.time_ms,
        receipt.shard,
        receipt.offset,
        &receipt.digest.to_hex()[..16],
        receipt.key_id,
        receipt_file.display(),
        dir.join("hub.pub").display()
    );
    let anchors_file = dir.join("anchors.jsonl");
    let lines: String = anchors.iter().map(|a| a.to_json_line() + "\n").collect();
    std::fs::write(&anchors_file, lines)?;
    let verdict = verify_data_dir(dir, key, Some(anchors), &mut |_| {})
        .map_err(|e| format!("verifying the demo's data: {e}"))?;
    let Verdict::Verified {
        logs,
        exported_checked,
        ..
    } = verdict
    else {
        let Verdict::Broken { at, .. } = verdict else {
            unreachable!("a verdict is verified or broken")
        };
        return Err(format!("the demo's own data does not verify: {at}").into());
    };
    let records: u64 = logs.iter().map(|l| l.summary.records).sum();
    let in_log: u64 = logs.iter().map(|l| l.anchors_checked).sum();
    println!(
        "gonets verify {} --anchors {}: {} logs, {records} records, {in_log} in-log and {} \
         exported anchors: every CRC, commit marker, the hash chain and the hub's signatures check out",
        dir.display(),
        anchors_file.display(),
        logs.len(),
        exported_checked.unwrap_or(0)
    );
    Ok(())
}
