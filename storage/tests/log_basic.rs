//! Append, commit, reopen and read back through the public API.

use glommio::{LocalExecutorBuilder, Placement};
use gonets_storage::{Log, LogConfig, Slot};

fn run<F: std::future::Future<Output = ()> + 'static>(f: impl FnOnce() -> F + Send + 'static) {
    LocalExecutorBuilder::new(Placement::Unbound)
        .make()
        .unwrap()
        .run(f());
}

#[test]
fn given_committed_records_when_reopened_then_all_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    run(move || async move {
        let (log, report) = Log::open(&path, LogConfig::small_for_tests())
            .await
            .unwrap();
        assert_eq!(report.next_offset, 0);
        let mut last = 0;
        for i in 0..2000u64 {
            let payload = vec![(i % 251) as u8; (i as usize * 37) % 3000];
            last = log.append(&payload, i, 0).await.unwrap();
            if i % 7 == 0 {
                log.commit(last).await.unwrap();
            }
        }
        log.commit(last).await.unwrap();
        assert!(log.stats().segments > 1, "small segments must roll");
        for i in 0..2000u64 {
            let Slot::Present(r) = log.read(i) else {
                panic!("offset {i}")
            };
            assert_eq!(r.payload().len(), (i as usize * 37) % 3000);
        }
        log.close().await.unwrap();
        let (log, report) = Log::open(&path, LogConfig::small_for_tests())
            .await
            .unwrap();
        assert!(report.from_checkpoint);
        assert_eq!(report.next_offset, 2000);
        assert_eq!(report.records_scanned, 0);
        let mut n = 0;
        for (i, slot) in log.iter_from(0).enumerate() {
            let Slot::Present(r) = slot else {
                panic!("offset {i}: {slot:?}")
            };
            assert_eq!(r.offset(), i as u64);
            assert_eq!(r.timestamp_ns(), i as u64);
            assert!(r.payload().iter().all(|b| *b == (i % 251) as u8));
            n += 1;
        }
        assert_eq!(n, 2000);
        assert!(matches!(log.read(2000), Slot::Empty));
        let dropped = log.retain_from(1000).await.unwrap();
        assert!(dropped > 0);
        assert!(matches!(log.read(0), Slot::Gone));
        assert!(matches!(log.read(1999), Slot::Present(_)));
        log.close().await.unwrap();
    });
}
