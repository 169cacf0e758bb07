//! Property test against a simple in-memory model: any sequence of appends,
//! commits, clean reopens, crashes and retention reads back exactly what was
//! committed (and never anything that was not appended).

use glommio::{LocalExecutorBuilder, Placement};
use gonets_storage::{Log, LogConfig, Slot};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    Append { len: usize, fill: u8 },
    Commit,
    Reopen,
    Crash,
    Retain { keep_last: u64 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        10 => (0usize..6000, any::<u8>()).prop_map(|(len, fill)| Op::Append { len, fill }),
        4 => Just(Op::Commit),
        1 => Just(Op::Reopen),
        1 => Just(Op::Crash),
        1 => (0u64..200).prop_map(|keep_last| Op::Retain { keep_last }),
    ]
}

fn payload(len: usize, fill: u8, offset: u64) -> Vec<u8> {
    let mut p = vec![fill; len];
    let tag = offset.to_le_bytes();
    let n = len.min(8);
    p[..n].copy_from_slice(&tag[..n]);
    p
}

fn config() -> LogConfig {
    LogConfig {
        segment_size_bytes: 64 << 10,
        batch_bytes_max: 16 << 10,
        ..LogConfig::small_for_tests()
    }
}

fn check(ops: Vec<Op>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    LocalExecutorBuilder::new(Placement::Unbound)
        .make()
        .unwrap()
        .run(async move {
            // appended[i] = payload of offset start + i; committed_end: all below are acknowledged.
            let mut appended: Vec<Vec<u8>> = vec![];
            let mut committed_end = 0u64;
            let mut start = 0u64;
            let (mut log, _) = Log::open(&path, config()).await.unwrap();
            for op in ops {
                match op {
                    Op::Append { len, fill } => {
                        let offset = start + appended.len() as u64;
                        let p = payload(len, fill, offset);
                        assert_eq!(log.append(&p, offset, 0).await.unwrap(), offset);
                        appended.push(p);
                    }
                    Op::Commit => {
                        log.commit_all().await.unwrap();
                        committed_end = start + appended.len() as u64;
                    }
                    Op::Reopen => {
                        log.close().await.unwrap();
                        let (l, report) = Log::open(&path, config()).await.unwrap();
                        assert!(report.corruptions.is_empty());
                        assert_eq!(
                            report.next_offset,
                            start + appended.len() as u64,
                            "close commits everything"
                        );
                        committed_end = report.next_offset;
                        log = l;
                    }
                    Op::Crash => {
                        log.abandon().await;
                        let (l, report) = Log::open(&path, config()).await.unwrap();
                        assert!(report.corruptions.is_empty(), "{:?}", report.corruptions);
                        let end = report.next_offset;
                        assert!(
                            end >= committed_end,
                            "lost acknowledged records: {end} < {committed_end}"
                        );
                        assert!(
                            end <= start + appended.len() as u64,
                            "records that were never appended"
                        );
                        appended.truncate((end - start) as usize);
                        committed_end = end;
                        log = l;
                    }
                    Op::Retain { keep_last } => {
                        let upto = committed_end.saturating_sub(keep_last);
                        log.retain_from(upto).await.unwrap();
                        let new_start = log.stats().start_offset;
                        assert!(new_start <= upto.max(start));
                        appended.drain(..(new_start - start) as usize);
                        start = new_start;
                    }
                }
                // Every durable record reads back exactly; nothing beyond it.
                let durable = log.stats().durable_offset;
                assert!(durable >= committed_end);
                for (i, slot) in log.iter_from(start).enumerate() {
                    let Slot::Present(r) = slot else {
                        panic!("offset {}: {slot:?}", start + i as u64)
                    };
                    assert_eq!(r.payload(), &appended[i][..], "offset {}", r.offset());
                }
                assert!(matches!(log.read(durable), Slot::Empty));
                if start > 0 {
                    assert!(matches!(log.read(start - 1), Slot::Gone));
                }
            }
            log.close().await.unwrap();
        });
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn given_any_op_sequence_when_read_back_then_matches_model(ops in proptest::collection::vec(op(), 1..60)) {
        check(ops);
    }
}
