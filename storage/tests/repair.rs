//! `repair`: every damaged range of the whole log copied into quarantine with
//! a report, accepted durably, idempotently; the segments left unchanged.

use gonets_storage::scan::Limits;
use gonets_storage::{repair, Log, LogConfig, ACCEPTED_DAMAGE_FILE, QUARANTINE_DIR};

/// Bounds the batches of these logs stay within.
const LIMITS: Limits = Limits {
    record_size_bytes_max: 16 << 10,
    batch_bytes_max: 16 << 10,
};

mod common;
use common::{batches_of, run, segment_files};

fn config() -> LogConfig {
    LogConfig {
        segment_size_bytes: 64 << 10,
        batch_bytes_max: 16 << 10,
        checkpoint_interval_bytes: u64::MAX,
        ..LogConfig::small_for_tests()
    }
}

#[test]
fn given_damage_in_checkpointed_segment_when_repaired_then_quarantined_accepted_and_idempotent() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let d = dir.clone();
    let total = run(move || async move {
        let (log, _) = Log::open(&d, config()).await.unwrap();
        for i in 0..120u64 {
            let o = log.append(&[i as u8 | 1; 1500], i, 0).await.unwrap();
            log.commit(o).await.unwrap();
        }
        // A clean close: the checkpoint covers every segment, so a normal open
        // would not scan the damaged one.
        log.close().await.unwrap();
        120u64
    });
    let files = segment_files(&dir);
    assert!(files.len() >= 3);
    let victim = files[1].clone();
    let b = batches_of(&victim, LIMITS)[2].clone();
    let mut bytes = std::fs::read(&victim).unwrap();
    bytes[b.start + 100] ^= 0x08;
    std::fs::write(&victim, &bytes).unwrap();

    let d = dir.clone();
    let (first, second, accepted_text_1, accepted_text_2) = run(move || async move {
        let first = repair(&d, config()).await.unwrap();
        let t1 = std::fs::read_to_string(d.join(ACCEPTED_DAMAGE_FILE)).unwrap();
        let second = repair(&d, config()).await.unwrap();
        let t2 = std::fs::read_to_string(d.join(ACCEPTED_DAMAGE_FILE)).unwrap();
        (first, second, t1, t2)
    });
    assert_eq!(first.damaged.len(), 1, "{:?}", first.damaged);
    let c = &first.damaged[0];
    assert_eq!(c.first_offset, b.first_offset);
    assert_eq!(first.quarantine_files.len(), 1);
    assert!(first.quarantine_files[0].starts_with(dir.join(QUARANTINE_DIR)));
    assert!(std::fs::metadata(&first.quarantine_files[0]).unwrap().len() > 0);
    let report = std::fs::read_to_string(first.report_file.as_ref().unwrap()).unwrap();
    assert!(
        report.contains(&format!("offsets [{}, {})", c.first_offset, c.end_offset)),
        "{report}"
    );
    assert_eq!(second.damaged, first.damaged, "idempotent");
    assert_eq!(accepted_text_1, accepted_text_2, "idempotent");
    assert_eq!(std::fs::read(&victim).unwrap(), bytes, "segment unchanged");

    let d = dir.clone();
    run(move || async move {
        let (log, _) = Log::open(&d, config()).await.unwrap();
        let mut unreadable = 0;
        for o in 0..total {
            if let gonets_storage::Slot::Unreadable(c) = log.read(o) {
                assert!(log.is_damage_accepted(&c), "{c:?}");
                unreadable += 1;
            }
        }
        assert!(unreadable >= 1);
        let mut other = c_clone();
        other.first_offset = 0;
        assert!(!log.is_damage_accepted(&other));
        log.close().await.unwrap();
    });
}

fn c_clone() -> gonets_storage::Corruption {
    gonets_storage::Corruption {
        segment_base: 0,
        position: 4096,
        first_offset: 0,
        end_offset: 1,
        what: String::new(),
    }
}
