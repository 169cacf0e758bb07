//! The shard-aware client against an in-process hub with per-shard ports:
//! each connection lands on its own shard, and a full exchange works with
//! every operation routed to the owning shard.

use gonets_client::glommio::ShardAwareClient;
use gonets_client::{ClientConfig, ClientSecurity};
use gonets_engine::{Hub, HubConfig};
use gonets_server::config_file::registry_tokens;
use gonets_server::{start_front_ends, Security, ServerSettings};
use gonets_types::{DataKindId, NewRequest, ParticipantId, QueueId};
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

const EGRUL: &str = "urn:gonets:fns:egrul-extract:1";

/// A port free now and the next `n` after it (best effort; retried by the caller).
fn free_port_base(n: u16) -> u16 {
    // Bounded: tries 50 candidate bases.
    for _ in 0..50 {
        let probe = TcpListener::bind("127.0.0.1:0").expect("bind");
        let base = probe.local_addr().expect("addr").port();
        drop(probe);
        if base > 60_000 {
            continue;
        }
        if (0..n).all(|i| TcpListener::bind(("127.0.0.1", base + i)).is_ok()) {
            return base;
        }
    }
    panic!("no run of {n} free ports found");
}

fn security(who: &str) -> ClientSecurity {
    ClientSecurity::DevToken {
        participant: who.into(),
        token: format!("dev-{}", who.to_lowercase()),
    }
}

#[test]
fn given_shard_ports_when_shard_aware_client_exchanges_then_each_connection_is_on_its_shard() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = HubConfig::new(dir.path());
    config.shards = 2;
    let hub = Hub::start(config).expect("hub starts");
    let tokens = Arc::new(registry_tokens(hub.registry()));
    let base = free_port_base(3);
    let mut settings = ServerSettings::new(
        SocketAddr::from(([127, 0, 0, 1], base)),
        Security::DevTokens(tokens),
    );
    settings.shard_port_base = Some(base + 1);
    let front = start_front_ends(&hub, settings).expect("listeners");
    assert_eq!(front.shard_addrs.len(), 2);
    let addr = front.addr;
    let worker = std::thread::spawn(move || {
        glommio::LocalExecutorBuilder::default()
            .make()
            .expect("executor")
            .run(async move {
                let consumer = ShardAwareClient::connect(ClientConfig::new(addr, security("MFC")))
                    .await
                    .expect("consumer connects");
                let provider = ShardAwareClient::connect(ClientConfig::new(addr, security("FNS")))
                    .await
                    .expect("provider connects");
                for shard in 0..2u16 {
                    let q = (0..100)
                        .map(|i| QueueId::Answers(ParticipantId::new(&format!("P{i}"))))
                        .find(|q| q.shard(2) == shard)
                        .expect("a queue on each shard");
                    let hello = consumer.for_queue(&q).hello().expect("hello");
                    assert_eq!(
                        hello.shard, shard,
                        "connection lands on the shard of its port"
                    );
                }
                let accepted = consumer
                    .send_request(NewRequest::new(EGRUL, "INN 7707083893"))
                    .await
                    .expect("accepted");
                let requests = QueueId::Requests(DataKindId::new(EGRUL));
                let got = provider
                    .fetch(&requests, 10, Duration::from_secs(5))
                    .await
                    .expect("fetch");
                assert_eq!(got.len(), 1);
                provider
                    .send_response(got[0].id, "extract")
                    .await
                    .expect("response");
                let answers = QueueId::Answers(ParticipantId::new("MFC"));
                let answer = consumer
                    .fetch(&answers, 10, Duration::from_secs(5))
                    .await
                    .expect("answer")
                    .remove(0);
                assert_eq!(answer.reply_to, Some(accepted.id));
                consumer.ack(&answer).await.expect("ack");
                let status = consumer.status(accepted.id).await.expect("status");
                assert!(status
                    .events
                    .iter()
                    .any(|e| e.kind.as_str() == "answer_acked"));
            });
    });
    worker.join().expect("client thread");
    hub.shutdown().expect("clean shutdown");
}
