//! The rt and bulk lanes of a hub (ADR 0015): bulk commands wait in their
//! own inbox while the log holds more unwritten bytes than the bound, and
//! still every one is served; calls beside them are answered.

use futures_lite::future::block_on;
use gonets_engine::{Hub, HubConfig, LogConfig};
use gonets_types::{DataKindId, NewRequest, QueueId};
use std::time::{Duration, Instant};

/// An async data kind of the embedded registry: FNS serves it to MFC.
const EGRUL: &str = "urn:gonets:fns:egrul-extract:1";
/// A realtime data kind of the embedded registry: FNS serves it to MFC.
const INN: &str = "urn:gonets:fns:inn-by-passport:1";
const BATCHES: usize = 40;
const BATCH_REQUESTS: usize = 8;
const CALLS: usize = 20;
/// Long enough for the whole test on a loaded machine.
const WAIT: Duration = Duration::from_secs(30);

#[test]
fn given_one_byte_bulk_bound_when_batches_and_calls_run_together_then_all_served() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = HubConfig::new(dir.path());
    config.shards = 2;
    config.log = LogConfig::small_for_tests();
    // Every bulk command waits for the log to be fully written first.
    config.bulk_unwritten_bytes_max = 1;
    let hub = Hub::start(config).expect("hub starts");
    let provider = hub.session("FNS").expect("provider");
    let inn = QueueId::Requests(DataKindId::new(INN));
    // A credit per call: the provider never has to grant more.
    let mut sub = block_on(provider.subscribe(inn, CALLS as u32)).expect("subscribe");
    let answering = std::thread::spawn(move || {
        for _ in 0..CALLS {
            let request = block_on(sub.recv()).expect("pushed request");
            block_on(provider.send_response(request.id, "INN 770123456789")).expect("response");
        }
    });
    let sender = hub.session("MFC").expect("bulk sender");
    let (sent_tx, sent) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut accepted = 0;
        for _ in 0..BATCHES {
            let batch = (0..BATCH_REQUESTS)
                .map(|_| NewRequest::new(EGRUL, vec![b'b'; 2048]))
                .collect();
            let got = block_on(sender.send_requests(batch)).expect("batch accepted");
            accepted += got.iter().filter(|r| r.is_ok()).count();
        }
        let _ = sent_tx.send(accepted);
    });
    let caller = hub.session("MFC").expect("caller");
    let started = Instant::now();
    for _ in 0..CALLS {
        block_on(caller.call(NewRequest::new(INN, "passport 4510 123456"))).expect("answer");
    }
    answering.join().expect("provider thread");
    // Bounded: bulk held back for good (a bound that never lets a command
    // in) fails here rather than hanging.
    let accepted = sent
        .recv_timeout(WAIT)
        .expect("every batch answered in time");
    assert_eq!(accepted, BATCHES * BATCH_REQUESTS);
    assert!(started.elapsed() < WAIT, "served within {WAIT:?}");
    hub.shutdown().expect("clean shutdown");
}
