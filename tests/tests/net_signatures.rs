//! Sender signatures and hub receipts over the wire (issue 18, docs/adr/0019):
//! a `gonets serve` child process (which always has a hub key, so it signs
//! receipts) with the demo registry, MFC's and FNS's keys added and the
//! EGRUL kind requiring signatures. Every bad signature gets
//! `BAD_SIGNATURE` and nothing of it is stored, across a restart too; a
//! good one reaches the provider with its digest and signature, and the
//! receipts verify against the hub's public key.
//!
//! Needs the `gonets` binary (`cargo build -p gonets --bin gonets`, the
//! tests' profile).

use gonets_client::ClientError;
use gonets_tests::net::{bounded, fetch_n, run_local, Endpoint, ServerOptions, ServerProcess};
use gonets_trust::{
    batch_digest, request_digest, sign_digest, verify_batch_receipt, verify_receipt, Ed25519Signer,
    HubPublicKey, Signer,
};
use gonets_types::{
    AcceptanceReceipt, Command, DataKindId, HubError, NewRequest, ParticipantId, QueueId, Reply,
};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

const EGRUL: &str = "urn:gonets:fns:egrul-extract:1";
/// Bound of one operation.
const OP: Duration = Duration::from_secs(120);

fn mfc_key() -> Arc<Ed25519Signer> {
    Arc::new(Ed25519Signer::from_seed(&[1; 32]))
}
fn mfc_old_key() -> Arc<Ed25519Signer> {
    Arc::new(Ed25519Signer::from_seed(&[2; 32]))
}
fn mfc_next_key() -> Arc<Ed25519Signer> {
    Arc::new(Ed25519Signer::from_seed(&[3; 32]))
}
fn fns_key() -> Arc<Ed25519Signer> {
    Arc::new(Ed25519Signer::from_seed(&[4; 32]))
}

/// The demo registry with MFC's keys (`mfc-1` valid now, `mfc-old`
/// expired, `mfc-next` not valid before 2099), FNS's key and EGRUL
/// requiring signatures, written into `dir`; returns its path.
fn registry_in(dir: &Path) -> PathBuf {
    let text = include_str!("../../core/engine/registry.default.toml");
    let key = |id: &str, signer: &Ed25519Signer, validity: &str| {
        format!(
            "{{ id = \"{id}\", algorithm = \"ed25519\", public_key = \"{}\"{validity} }}",
            signer.public_key_base64()
        )
    };
    let mfc_keys = format!(
        "keys = [{}, {}, {}]\n",
        key("mfc-1", &mfc_key(), ""),
        key(
            "mfc-old",
            &mfc_old_key(),
            ", valid_until = 2020-01-01T00:00:00Z"
        ),
        key(
            "mfc-next",
            &mfc_next_key(),
            ", valid_from = \"2099-01-01T00:00:00Z\""
        ),
    );
    let fns_keys = format!("keys = [{}]\n", key("fns-1", &fns_key(), ""));
    let egrul = format!("id = \"{EGRUL}\"\n");
    let text = text
        .replace("id = \"MFC\"\n", &format!("id = \"MFC\"\n{mfc_keys}"))
        .replace("id = \"FNS\"\n", &format!("id = \"FNS\"\n{fns_keys}"))
        .replace(&egrul, &format!("{egrul}signatures = \"required\"\n"));
    assert!(text.contains("mfc-next") && text.contains("fns-1") && text.contains("required"));
    let path = dir.join("registry.toml");
    std::fs::write(&path, text).expect("write the registry");
    path
}

fn start(dir: &Path) -> ServerProcess {
    ServerProcess::start(ServerOptions {
        registry: Some(registry_in(dir)),
        ..ServerOptions::default()
    })
}

/// The hub's public key, from the file `serve` writes beside its key.
fn hub_public(server: &ServerProcess) -> HubPublicKey {
    HubPublicKey::load(&server.data_dir().join("hub.pub")).expect("the hub's public key")
}

fn requests() -> QueueId {
    QueueId::Requests(DataKindId::new(EGRUL))
}

async fn connect_signing(
    ep: &Endpoint,
    who: &str,
    key_id: &str,
    key: Arc<dyn Signer>,
) -> gonets_client::glommio::Client {
    ep.connect_with(ep.client_config(who).with_signing_key(key_id, key))
        .await
}

fn bad_signature(what: &str, r: Result<impl std::fmt::Debug, ClientError>) -> String {
    match r {
        Err(ClientError::Hub(HubError::BadSignature(why))) => why,
        other => panic!("{what}: expected BAD_SIGNATURE, got {other:?}"),
    }
}

fn mfc() -> ParticipantId {
    ParticipantId::new("MFC")
}

#[test]
fn given_each_bad_signature_when_sent_then_bad_signature_and_nothing_stored_also_after_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = start(dir.path());
    let ep = server.endpoint();
    run_local(move || async move {
        let plain = ep.connect("MFC").await;
        let why = bad_signature(
            "unsigned",
            plain.send_request(NewRequest::new(EGRUL, "x")).await,
        );
        assert!(why.contains("requires a signature"), "{why}");
        let signing = [
            ("mfc-9", mfc_key() as Arc<dyn Signer>, "has no key"),
            ("mfc-old", mfc_old_key(), "expired"),
            ("mfc-next", mfc_next_key(), "not valid before"),
            // FNS's key under its own id: not MFC's.
            ("fns-1", fns_key(), "MFC has no key \"fns-1\""),
        ];
        for (key_id, key, want) in signing {
            let c = connect_signing(&ep, "MFC", key_id, key).await;
            let why = bad_signature(key_id, c.send_request(NewRequest::new(EGRUL, "x")).await);
            assert!(why.contains(want), "{key_id}: {why}");
        }
        // A good key's signature over another payload.
        let other = request_digest(&mfc(), &NewRequest::new(EGRUL, "another"));
        let forged = Command::SendRequest(NewRequest::new(EGRUL, "x")).signed(sign_digest(
            mfc_key().as_ref(),
            "mfc-1",
            &other,
        ));
        let why = bad_signature("another payload", plain.execute(forged).await);
        assert!(why.contains("does not match"), "{why}");
        // A batch whose one signature covers only part of it.
        let batch: Vec<_> = (0..3)
            .map(|i| NewRequest::new(EGRUL, format!("b{i}")))
            .collect();
        let part: Vec<_> = batch[..2]
            .iter()
            .map(|r| request_digest(&mfc(), r))
            .collect();
        let signature = sign_digest(mfc_key().as_ref(), "mfc-1", &batch_digest(&part));
        let why = bad_signature(
            "a bad batch signature",
            plain
                .execute(Command::SendRequests(batch).signed(signature))
                .await,
        );
        assert!(why.contains("does not match"), "{why}");
        let fns = ep.connect("FNS").await;
        let none = fns
            .fetch(&requests(), 10, Duration::from_millis(300))
            .await
            .expect("fetch");
        assert!(none.is_empty(), "nothing refused was stored: {none:?}");
    });
    server.terminate();
    server.restart();
    let ep = server.endpoint();
    run_local(move || async move {
        let fns = ep.connect("FNS").await;
        let none = fns
            .fetch(&requests(), 10, Duration::from_millis(300))
            .await
            .expect("fetch");
        assert!(none.is_empty(), "{none:?}");
    });
    drop(dir);
}

#[test]
fn given_good_signatures_when_sent_then_delivered_with_digest_and_signature_and_receipts_verify() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = start(dir.path());
    let hub = hub_public(&server);
    let ep = server.endpoint();
    run_local(move || async move {
        let mfc_client = connect_signing(&ep, "MFC", "mfc-1", mfc_key()).await;
        let fns = connect_signing(&ep, "FNS", "fns-1", fns_key()).await;
        let accepted = bounded(
            "send",
            OP,
            mfc_client.send_request(NewRequest::new(EGRUL, "inn 7707083893")),
        )
        .await
        .expect("a signed request is accepted");
        let Some(AcceptanceReceipt::One(receipt)) = accepted.receipt.clone() else {
            panic!("serve signs receipts: {accepted:?}")
        };
        assert_eq!(receipt.message_id, accepted.id);
        assert_eq!(verify_receipt(&receipt, &hub), Ok(()));
        let mut changed = (*receipt).clone();
        changed.time_ms += 1;
        assert!(verify_receipt(&changed, &hub).is_err(), "one changed byte");
        // The provider gets the digest and the signature, and checks them.
        let got = fetch_n(&fns, &requests(), 1, OP).await.remove(0);
        assert_eq!(got.id, accepted.id);
        assert_eq!(got.digest, Some(receipt.digest));
        let signature = got.signature.clone().expect("signed");
        assert_eq!(signature.key_id, "mfc-1");
        let verifier = mfc_key().verifier();
        assert!(verifier.verify(got.digest.unwrap().as_bytes(), &signature.bytes));
        bounded("answer", OP, fns.send_response(got.id, "extract"))
            .await
            .expect("a signed answer");
        let answers = QueueId::Answers(mfc());
        let answer = fetch_n(&mfc_client, &answers, 1, OP).await.remove(0);
        assert_eq!(
            answer.signature.as_ref().map(|s| s.key_id.as_str()),
            Some("fns-1")
        );
        let answer_receipt = answer
            .receipt
            .clone()
            .expect("the hub's receipt for the answer");
        assert_eq!(
            (
                answer_receipt.message_id,
                answer_receipt.reply_to,
                Some(answer_receipt.digest)
            ),
            (answer.id, Some(accepted.id), answer.digest)
        );
        assert_eq!(answer_receipt.sender, ParticipantId::new("FNS"));
        assert_eq!(verify_receipt(&answer_receipt, &hub), Ok(()));
        // A batch signed once: one receipt for all, verified once.
        let batch: Vec<_> = (0..3)
            .map(|i| NewRequest::new(EGRUL, format!("b{i}")))
            .collect();
        let results = bounded("batch", OP, mfc_client.send_requests(batch))
            .await
            .expect("a batch reply");
        let accepted: Vec<_> = results.into_iter().map(|r| r.expect("accepted")).collect();
        let Some(AcceptanceReceipt::Batch(batch_receipt)) = accepted[0].receipt.clone() else {
            panic!("{accepted:?}")
        };
        assert_eq!(batch_receipt.entries.len(), 3);
        assert!(accepted.iter().all(|a| batch_receipt.entry(a.id).is_some()));
        assert_eq!(verify_batch_receipt(&batch_receipt, &hub), Ok(()));
        let got = fetch_n(&fns, &requests(), 3, OP).await;
        for m in &got {
            let entry = batch_receipt
                .entry(m.id)
                .expect("named in the batch receipt");
            assert_eq!(m.digest, Some(entry.digest));
        }
        // A reply is typed: a raw execute gives the same.
        let status = fns.execute(Command::Status { id: accepted[0].id }).await;
        assert!(matches!(status, Ok(Reply::Status(_))), "{status:?}");
        many_sends_each_with_a_receipt_that_verifies(&mfc_client, &hub).await;
    });
    // The answer MFC fetched but never acked comes again after a restart,
    // read back from the log: its receipt is signed anew and verifies.
    server.terminate();
    server.restart();
    let (ep, hub) = (server.endpoint(), hub_public(&server));
    run_local(move || async move {
        let mfc_client = ep.connect("MFC").await;
        let again = fetch_n(&mfc_client, &QueueId::Answers(mfc()), 1, OP)
            .await
            .remove(0);
        let receipt = again.receipt.expect("a receipt after the restart");
        assert_eq!(receipt.message_id, again.id);
        assert_eq!(verify_receipt(&receipt, &hub), Ok(()));
    });
    server.terminate();
    drop(dir);
}

/// 48 single sends in flight at once: the hub signs the receipts of a
/// commit as one tree (docs/adr/0023); each still verifies alone.
async fn many_sends_each_with_a_receipt_that_verifies(
    client: &gonets_client::glommio::Client,
    hub: &gonets_trust::HubPublicKey,
) {
    let tasks: Vec<_> = (0..48)
        .map(|i| {
            let c = client.clone();
            glommio::spawn_local(async move {
                c.send_request(NewRequest::new(EGRUL, format!("many {i}")))
                    .await
            })
        })
        .collect();
    for t in tasks {
        let accepted = bounded("a send of many", OP, t).await.expect("accepted");
        let Some(AcceptanceReceipt::One(receipt)) = accepted.receipt else {
            panic!("{accepted:?}")
        };
        assert_eq!(receipt.message_id, accepted.id);
        assert_eq!(verify_receipt(&receipt, hub), Ok(()), "{receipt:?}");
        if let Some(proof) = &receipt.proof {
            assert!(proof.index < proof.count && proof.count <= 48, "{proof:?}");
        }
    }
}
