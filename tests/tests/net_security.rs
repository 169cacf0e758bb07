//! Who may connect and what a participant may touch, over the wire: mutual
//! TLS (no certificate, a foreign CA), the registry's permissions between
//! participants, and the development-token mode (loopback only).
//!
//! Needs the `gonets` binary (`cargo build --release -p gonets --bin gonets`).

use gonets_client::glommio::Client;
use gonets_client::{ClientConfig, ClientError, ClientSecurity};
use gonets_server::tls;
use gonets_tests::net::{bounded, run_local, ServerOptions, ServerProcess};
use gonets_types::{HubError, NewRequest, ParticipantId, QueueId};
use std::time::Duration;

const EGRUL: &str = "urn:gonets:fns:egrul-extract:1";
const OP: Duration = Duration::from_secs(120);

fn requests(kind: &str) -> QueueId {
    QueueId::Requests(gonets_types::DataKindId::new(kind))
}

/// Expects a refused connection: a TLS failure or a dropped connection.
fn expect_refused_connection(what: &str, r: Result<Client, ClientError>) {
    match r {
        Err(ClientError::Tls(_)) | Err(ClientError::Disconnected(_)) => {}
        other => panic!("{what}: expected a TLS failure or a closed connection, got {other:?}"),
    }
}

fn expect_hub<T: std::fmt::Debug>(
    what: &str,
    r: Result<T, ClientError>,
    want: impl Fn(&HubError) -> bool,
) {
    match r {
        Err(ClientError::Hub(e)) if want(&e) => {}
        other => panic!("{what}: expected a typed hub error, got {other:?}"),
    }
}

#[test]
fn given_a_tls_server_when_a_client_presents_no_certificate_then_the_connection_fails() {
    let server = ServerProcess::start_default();
    let ep = server.endpoint();
    run_local(move || async move {
        let config = tls::client_config_without_identity(&ep.certs_dir.join("ca.pem"))
            .expect("a client configuration without identity");
        let security = ClientSecurity::Tls {
            config,
            server_name: "localhost".into(),
        };
        let r = bounded(
            "connect",
            OP,
            Client::connect(ClientConfig::new(ep.addr, security)),
        )
        .await;
        expect_refused_connection("no client certificate", r);
        // The server goes on serving.
        let mfc = ep.connect("MFC").await;
        bounded("ping", OP, mfc.ping()).await.expect("ping");
    });
}

#[test]
fn given_a_tls_server_when_a_client_certificate_of_another_ca_is_presented_then_it_is_refused() {
    let server = ServerProcess::start_default();
    let other = tempfile::tempdir().expect("tempdir");
    let foreign = tls::make_dev_certs(other.path(), &["MFC"], &["localhost"])
        .expect("a second, unrelated CA");
    let ep = server.endpoint();
    let mfc_foreign = foreign.client("MFC").expect("MFC's files").clone();
    run_local(move || async move {
        // Trusts the real server, presents a certificate the server's CA never signed.
        let files = tls::ClientTlsFiles {
            ca: ep.certs_dir.join("ca.pem"),
            cert: mfc_foreign.cert.clone(),
            key: mfc_foreign.key.clone(),
        };
        let config = tls::client_config(&files).expect("client configuration");
        let security = ClientSecurity::Tls {
            config,
            server_name: "localhost".into(),
        };
        let r = bounded(
            "connect",
            OP,
            Client::connect(ClientConfig::new(ep.addr, security)),
        )
        .await;
        expect_refused_connection("a certificate of another CA", r);
        // A client that trusts only the other CA refuses the server, too.
        let files = tls::ClientTlsFiles {
            ca: other_ca(&mfc_foreign.cert),
            cert: mfc_foreign.cert.clone(),
            key: mfc_foreign.key.clone(),
        };
        let security = ClientSecurity::Tls {
            config: tls::client_config(&files).expect("client configuration"),
            server_name: "localhost".into(),
        };
        let r = bounded(
            "connect",
            OP,
            Client::connect(ClientConfig::new(ep.addr, security)),
        )
        .await;
        expect_refused_connection("a server certificate of another CA", r);
        let mfc = ep.connect("MFC").await;
        bounded("ping", OP, mfc.ping()).await.expect("ping");
    });
    drop(other);
}

/// The `ca.pem` of the development set a client certificate lies in.
fn other_ca(client_cert: &std::path::Path) -> std::path::PathBuf {
    client_cert
        .parent()
        .and_then(|clients| clients.parent())
        .expect("<dir>/clients/<ID>.pem")
        .join("ca.pem")
}

#[test]
fn given_two_participants_when_one_touches_the_others_queue_answer_or_history_then_it_is_refused() {
    let server = ServerProcess::start_default();
    let ep = server.endpoint();
    run_local(move || async move {
        let mfc = ep.connect("MFC").await;
        let mvd = ep.connect("MVD").await;
        let sfr = ep.connect("SFR").await;
        let fns = ep.connect("FNS").await;
        let a = mfc
            .send_request(NewRequest::new(EGRUL, "ogrn 1"))
            .await
            .expect("send_request");
        let id: gonets_types::MessageId = a.id;

        // MVD reads MFC's answers.
        let mfc_answers = QueueId::Answers(ParticipantId::new("MFC"));
        expect_hub(
            "MVD fetches answers/MFC",
            mvd.fetch(&mfc_answers, 10, Duration::ZERO).await,
            |e| matches!(e, HubError::NotAuthorized(_)),
        );
        expect_hub(
            "MVD subscribes to answers/MFC",
            mvd.subscribe(&mfc_answers, 1).await.map(|_| ()),
            |e| matches!(e, HubError::NotAuthorized(_)),
        );
        // SFR (a provider, but not of this kind) reads or answers FNS's request.
        expect_hub(
            "SFR fetches FNS's requests",
            sfr.fetch(&requests(EGRUL), 10, Duration::ZERO).await,
            |e| matches!(e, HubError::NotAuthorized(_)),
        );
        expect_hub(
            "SFR answers a request addressed to FNS",
            sfr.send_response(id, "forged extract").await,
            |e| matches!(e, HubError::NotAuthorized(_)),
        );
        expect_hub(
            "SFR refuses a request addressed to FNS",
            sfr.send_refusal(id, gonets_types::RefusalCode::NoData, "forged")
                .await,
            |e| matches!(e, HubError::NotAuthorized(_)),
        );
        // SFR reads MFC's history: refused, as if it did not exist.
        expect_hub("SFR reads MFC's history", sfr.status(id).await, |e| {
            matches!(e, HubError::NotFound | HubError::NotAuthorized(_))
        });

        // Nothing of this touched the exchange: FNS gets it first-hand, MFC the answer.
        let got = bounded(
            "fetch",
            OP,
            fns.fetch(&requests(EGRUL), 10, Duration::from_secs(5)),
        )
        .await
        .expect("fetch");
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].id, id);
        assert_eq!(got[0].delivery_count, 1);
        fns.send_response(id, "the real extract")
            .await
            .expect("answer");
        let answer = bounded(
            "fetch",
            OP,
            mfc.fetch(&mfc_answers, 10, Duration::from_secs(5)),
        )
        .await
        .expect("fetch");
        assert_eq!(answer.len(), 1);
        assert_eq!(&answer[0].payload[..], b"the real extract");
        // The answer's lease is MFC's: MVD cannot settle it even with its id and lease.
        expect_hub("MVD acks MFC's answer", mvd.ack(&answer[0]).await, |e| {
            matches!(e, HubError::NotFound | HubError::NotAuthorized(_))
        });
        mfc.ack(&answer[0]).await.expect("MFC acks its answer");
    });
}

#[test]
fn given_dev_token_mode_when_listening_beyond_loopback_then_serve_exits_nonzero_naming_loopback() {
    let (status, log) = ServerProcess::expect_start_failure(ServerOptions {
        listen_ip: "0.0.0.0".into(),
        ..ServerOptions::dev_token()
    });
    assert!(
        !status.success(),
        "gonets serve started in dev-token mode on 0.0.0.0\n{log}"
    );
    assert!(
        log.contains("loopback"),
        "the refusal does not mention loopback:\n{log}"
    );
    assert!(
        !log.contains("gonets listening on"),
        "it listened before failing:\n{log}"
    );
}

#[test]
fn given_dev_token_mode_on_loopback_when_clients_connect_then_the_registry_token_works_and_a_wrong_one_is_refused(
) {
    let server = ServerProcess::start(ServerOptions::dev_token());
    let ep = server.endpoint();
    run_local(move || async move {
        let mfc = ep.connect("MFC").await;
        let fns = ep.connect("FNS").await;
        assert_eq!(mfc.hello().expect("hello").participant, "MFC");
        let a = mfc
            .send_request(NewRequest::new(EGRUL, "plain tcp"))
            .await
            .expect("send_request");
        let got = bounded(
            "fetch",
            OP,
            fns.fetch(&requests(EGRUL), 10, Duration::from_secs(5)),
        )
        .await
        .expect("fetch");
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].id, a.id);

        let wrong = |participant: &str, token: &str| {
            ClientConfig::new(
                ep.addr,
                ClientSecurity::DevToken {
                    participant: participant.into(),
                    token: token.into(),
                },
            )
        };
        for (p, t, what) in [
            ("MFC", "dev-fns", "another participant's token"),
            ("MFC", "", "an empty token"),
            ("GHOST", "dev-ghost", "an unregistered participant"),
        ] {
            let r = bounded("connect", OP, Client::connect(wrong(p, t))).await;
            expect_hub(what, r, |e| *e == HubError::Unauthenticated);
        }
        bounded("ping", OP, mfc.ping()).await.expect("ping");
    });
}
