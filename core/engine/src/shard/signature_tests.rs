//! Unit tests of sender signatures and hub receipts at the door (issue 18,
//! docs/adr/0019): a signature that does not hold, or a missing one where
//! the kind requires one, is refused `BadSignature` and nothing of the
//! message is stored; a good one is stored with the digest; receipts
//! verify against the hub's key. On the driver of `shard/tests.rs`.

use super::*;
use gonets_trust::{
    answer_digest, batch_digest, request_digest, sign_digest, verify_batch_receipt, verify_receipt,
    Ed25519Signer, HubKey, Signer,
};
use gonets_types::{AcceptanceReceipt, AttachmentRef, SenderSignature};

const REQUIRED: &str = "urn:test:required:1";
const OPTIONAL: &str = "urn:test:optional:1";
const CALL: &str = "urn:test:call:1";
const OPTIONAL_CALL: &str = "urn:test:optional-call:1";

fn mfc_key() -> Ed25519Signer {
    Ed25519Signer::from_seed(&[1; 32])
}
fn mfc_old_key() -> Ed25519Signer {
    Ed25519Signer::from_seed(&[2; 32])
}
fn mfc_next_key() -> Ed25519Signer {
    Ed25519Signer::from_seed(&[3; 32])
}
fn mvd_key() -> Ed25519Signer {
    Ed25519Signer::from_seed(&[4; 32])
}
fn fns_key() -> Ed25519Signer {
    Ed25519Signer::from_seed(&[5; 32])
}

/// T0 is 2023-11-14T22:13:20Z: `mfc-1` is valid then, `mfc-old` expired
/// at that very instant, `mfc-next` starts the next day.
fn signature_registry() -> String {
    format!(
        r#"
[[participant]]
id = "FNS"
name = "Federal Tax Service"
roles = ["provider"]
keys = [{{ id = "fns-1", algorithm = "ed25519", public_key = "{fns}" }}]

[[participant]]
id = "MFC"
name = "Public-service centre"
roles = ["consumer"]
keys = [
  {{ id = "mfc-1", algorithm = "ed25519", public_key = "{mfc}", valid_from = 2023-01-01T00:00:00Z, valid_until = "2030-01-01T00:00:00Z" }},
  {{ id = "mfc-old", algorithm = "ed25519", public_key = "{old}", valid_until = "2023-11-14T22:13:20Z" }},
  {{ id = "mfc-next", algorithm = "ed25519", public_key = "{next}", valid_from = "2023-11-15T00:00:00Z" }},
]

[[participant]]
id = "MVD"
name = "Ministry of Internal Affairs"
roles = ["consumer"]
keys = [{{ id = "mvd-1", algorithm = "ed25519", public_key = "{mvd}" }}]

[[data_kind]]
id = "{REQUIRED}"
provider = "FNS"
mode = "async"
deadline_ms = 1000
consumers = ["MFC", "MVD"]
signatures = "required"

[[data_kind]]
id = "{OPTIONAL}"
provider = "FNS"
mode = "async"
deadline_ms = 1000
consumers = ["MFC"]
attachment_bytes_max = 1048576

[[data_kind]]
id = "{CALL}"
provider = "FNS"
mode = "realtime"
deadline_ms = 200
consumers = ["MFC"]
signatures = "required"

[[data_kind]]
id = "{OPTIONAL_CALL}"
provider = "FNS"
mode = "realtime"
deadline_ms = 200
consumers = ["MFC"]
"#,
        fns = fns_key().public_key_base64(),
        mfc = mfc_key().public_key_base64(),
        old = mfc_old_key().public_key_base64(),
        next = mfc_next_key().public_key_base64(),
        mvd = mvd_key().public_key_base64(),
    )
}

fn signature_driver(hub_key: Option<Arc<HubKey>>) -> Driver {
    let registry = Registry::from_toml(&signature_registry()).expect("valid");
    let mut shard = Shard::new(config(0, 1), Arc::new(registry), 0);
    shard.set_hub_key(hub_key);
    Driver {
        shard,
        log: Vec::new(),
        journaled: Vec::new(),
        durable: 0,
        now: T0,
        next_token: 1,
    }
}

/// `r` as `sender` signs it with `signer` under `key_id`.
fn signed_request(sender: &str, key_id: &str, signer: &dyn Signer, r: NewRequest) -> Command {
    let digest = request_digest(&p(sender), &r);
    Command::SendRequest(r).signed(sign_digest(signer, key_id, &digest))
}

fn by_mfc(r: NewRequest) -> Command {
    signed_request("MFC", "mfc-1", &mfc_key(), r)
}

/// The `BadSignature` a command gets at once, with nothing appended but
/// the one audit record of the refusal.
fn refused_unstored(d: &mut Driver, caller: &str, command: Command) -> String {
    let appended_before = d.log.len();
    let r = d.now_reply(caller, command);
    assert_eq!(d.log.len(), appended_before + 1, "one audit record: {r:?}");
    super::audit::assert_only_audited(
        &d.log[appended_before..],
        crate::trust_record::AuditReason::BadSignature,
    );
    match r {
        Err(HubError::BadSignature(why)) => why,
        other => panic!("expected BadSignature, got {other:?}"),
    }
}

fn stored_seal(d: &Driver, id: MessageId) -> Option<Seal> {
    d.log.iter().find_map(|(_, r)| match r {
        Record::Request(q) if q.id == id => q.seal.as_deref().cloned(),
        Record::Answer(a) if a.id == id => a.seal.as_deref().cloned(),
        _ => None,
    })
}

#[test]
fn given_a_required_kind_when_a_request_comes_unsigned_then_bad_signature_and_nothing_stored() {
    let mut d = signature_driver(None);
    let why = refused_unstored(&mut d, "MFC", Command::SendRequest(request(REQUIRED)));
    assert!(why.contains("requires a signature"), "{why}");
    assert_eq!(d.shard.counters().requests_bad_signature, 1);
    d.commit();
    let (r, _) = d.restart();
    assert_eq!(r.shard.queue_stats(&requests(REQUIRED)).depth, 0);
}

#[test]
fn given_each_bad_signature_when_sent_then_bad_signature_naming_why_and_nothing_stored() {
    let mut d = signature_driver(None);
    let r = || request(REQUIRED);
    let other_payload = {
        let digest = request_digest(&p("MFC"), &NewRequest::new(REQUIRED, "another payload"));
        Command::SendRequest(r()).signed(sign_digest(&mfc_key(), "mfc-1", &digest))
    };
    let cases = [
        (
            signed_request("MFC", "mfc-9", &mfc_key(), r()),
            "has no key",
        ),
        (
            signed_request("MFC", "mfc-old", &mfc_old_key(), r()),
            "expired",
        ),
        (
            signed_request("MFC", "mfc-next", &mfc_next_key(), r()),
            "not valid before",
        ),
        // Another participant's key, under its own id: not MFC's.
        (
            signed_request("MFC", "mvd-1", &mvd_key(), r()),
            "MFC has no key \"mvd-1\"",
        ),
        // Another participant's key under MFC's id: does not verify.
        (
            signed_request("MFC", "mfc-1", &mvd_key(), r()),
            "does not match",
        ),
        (other_payload, "does not match"),
    ];
    let n = cases.len() as u64;
    for (command, want) in cases {
        let why = refused_unstored(&mut d, "MFC", command);
        assert!(why.contains(want), "{want}: {why}");
    }
    assert_eq!(d.shard.counters().requests_bad_signature, n);
    assert_eq!(d.shard.counters().accepted, 0);
    // MVD's signature is good for MVD.
    d.send_ok_signed("MVD", signed_request("MVD", "mvd-1", &mvd_key(), r()));
}

#[test]
fn given_a_key_near_its_validity_ends_when_signed_then_the_hub_time_decides() {
    let mut d = signature_driver(None);
    d.set_time(T0 - 1);
    let old = || signed_request("MFC", "mfc-old", &mfc_old_key(), request(REQUIRED));
    d.send_ok_signed("MFC", old());
    d.set_time(T0);
    refused_unstored(&mut d, "MFC", old());
    // 2023-11-15T00:00:00Z
    d.set_time(1_700_006_400_000);
    d.send_ok_signed(
        "MFC",
        signed_request("MFC", "mfc-next", &mfc_next_key(), request(REQUIRED)),
    );
}

#[test]
fn given_a_good_signature_when_sent_then_stored_with_its_digest_and_it_verifies() {
    let mut d = signature_driver(None);
    let r = NewRequest::new(REQUIRED, "passport 4510 000000");
    let id = d.send_ok_signed("MFC", by_mfc(r.clone()));
    let seal = stored_seal(&d, id).expect("sealed");
    assert_eq!(seal.digest, request_digest(&p("MFC"), &r));
    let signature = seal.signature.expect("signed");
    assert_eq!(signature.key_id, "mfc-1");
    let ring = &d.shard.registry().participant(&p("MFC")).unwrap().keys;
    assert_eq!(ring.check("MFC", &signature, &seal.digest, T0), Ok(()));
    assert!(seal.receipt_signature.is_none());
}

#[test]
fn given_an_optional_kind_when_unsigned_then_accepted_with_a_digest_and_a_bad_signature_still_refused(
) {
    let mut d = signature_driver(None);
    let r = request(OPTIONAL);
    let id = d.send_ok("MFC", r.clone());
    let seal = stored_seal(&d, id).expect("every request has a digest");
    assert_eq!(seal.digest, request_digest(&p("MFC"), &r));
    assert!(seal.signature.is_none());
    let bad = signed_request("MFC", "mfc-1", &mvd_key(), request(OPTIONAL));
    refused_unstored(&mut d, "MFC", bad);
}

#[test]
fn given_a_signed_call_when_answered_signed_then_the_caller_gets_digest_signature_and_receipt() {
    let hub = Arc::new(HubKey::generate());
    let mut d = signature_driver(Some(hub.clone()));
    let r = request(CALL);
    let digest = request_digest(&p("MFC"), &r);
    let call = Command::Call(r).signed(sign_digest(&mfc_key(), "mfc-1", &digest));
    let (call_token, _) = d.command("MFC", call);
    let got = d.fetch("FNS", requests(CALL), 1, 1);
    assert_eq!(got.len(), 1);
    let seal = got[0].seal.as_deref().expect("in memory while it commits");
    assert_eq!(seal.digest, digest);
    assert_eq!(seal.signature.as_ref().unwrap().key_id, "mfc-1");
    let id = got[0].id;
    // Unsigned, the answer of a required kind is refused.
    let unsigned = Command::SendResponse {
        request_id: id,
        payload: Bytes::from_static(b"data"),
        attachments: Vec::new(),
    };
    let why = refused_unstored(&mut d, "FNS", unsigned.clone());
    assert!(why.contains("requires"), "{why}");
    assert_eq!(d.shard.counters().answers_bad_signature, 1);
    let answer_digest = answer_digest(&p("FNS"), id, &AnswerBody::Data, b"data", &[]);
    let answer = unsigned.signed(sign_digest(&fns_key(), "fns-1", &answer_digest));
    let (_, mut out) = d.command("FNS", answer);
    out.extend(d.commit());
    let delivered = match reply(&out, call_token) {
        Some(Ok(ShardReply::Answer(a))) => a,
        other => panic!("{other:?}"),
    };
    let seal = delivered.seal.as_deref().expect("the answer's seal");
    assert_eq!(seal.digest, answer_digest);
    assert_eq!(seal.signature.as_ref().unwrap().key_id, "fns-1");
    let receipt = delivered.receipt.as_deref().expect("the hub signs");
    assert_eq!(
        (receipt.message_id, receipt.reply_to, receipt.digest),
        (delivered.id, Some(id), answer_digest)
    );
    assert_eq!(receipt.sender, p("FNS"));
    assert_eq!(verify_receipt(receipt, &hub.public()), Ok(()));
    let mut changed = receipt.clone();
    changed.digest.0[0] ^= 1;
    assert!(verify_receipt(&changed, &hub.public()).is_err());
    // Alone in its commit, the receipt was signed alone; the record keeps
    // no hub signature (docs/adr/0023), and a delivery read from the log
    // signs the same receipt again: Ed25519 is deterministic.
    assert!(receipt.proof.is_none());
    let stored = stored_seal(&d, delivered.id).expect("sealed");
    assert!(stored.receipt_signature.is_none());
    let facts = (delivered.id, id, p("FNS"), DataKindId::new(CALL));
    let no_key = answer_receipt(
        &stored,
        None,
        facts.0,
        facts.1,
        &facts.2,
        &facts.3,
        delivered.time_ms,
        receipt.offset,
    );
    assert!(no_key.is_none(), "without a key, no receipt");
    let mut rebuilt = answer_receipt(
        &stored,
        Some(&hub),
        delivered.id,
        id,
        &p("FNS"),
        &DataKindId::new(CALL),
        delivered.time_ms,
        receipt.offset,
    )
    .expect("made in the hub key's name");
    assert!(
        rebuilt.signature.is_empty(),
        "unsigned until a reader signs it"
    );
    gonets_trust::sign_receipt(&hub, &mut rebuilt);
    assert_eq!(*rebuilt, *receipt);
}

#[test]
fn given_a_data_answer_with_attachments_when_accepted_then_its_digest_and_seal_carry_them_and_bad_ones_store_nothing(
) {
    let mut d = signature_driver(Some(Arc::new(HubKey::generate())));
    let id = d.send_ok("MFC", request(OPTIONAL));
    let got = d.fetch("FNS", requests(OPTIONAL), 1, 1);
    assert_eq!(got[0].id, id);
    let att = |b: u8, size_bytes| AttachmentRef {
        digest: Digest([b; 32]),
        size_bytes,
    };
    let answer = |attachments| Command::SendResponse {
        request_id: id,
        payload: Bytes::from_static(b"data"),
        attachments,
    };
    let over = vec![att(1, (1 << 20) + 1)];
    let too_many: Vec<_> = (0..17).map(|b| att(b, 1)).collect();
    for (refs, what) in [(over, "over the kind's limit"), (too_many, "17 of them")] {
        let before = d.log.len();
        let r = d.now_reply("FNS", answer(refs));
        assert_eq!(d.log.len(), before, "{what}: nothing stored, {r:?}");
        assert!(
            matches!(
                r,
                Err(HubError::TooLarge {
                    size_bytes_max: 1_048_576,
                    ..
                } | HubError::Malformed(_))
            ),
            "{what}: {r:?}"
        );
    }
    let refs = vec![att(1, 1 << 20), att(2, 5)];
    assert_eq!(
        d.committed_reply("FNS", answer(refs.clone())),
        Ok(ShardReply::Done)
    );
    let delivered = d.fetch("MFC", answers("MFC"), 1, 2);
    let seal = delivered[0].seal.as_deref().expect("in memory");
    assert_eq!(seal.attachments, refs, "delivered with the answer");
    let digest = answer_digest(&p("FNS"), id, &AnswerBody::Data, b"data", &refs);
    assert_eq!(seal.digest, digest, "the digest covers them");
    assert_ne!(
        digest,
        answer_digest(&p("FNS"), id, &AnswerBody::Data, b"data", &[])
    );
    let stored = stored_seal(&d, delivered[0].id).expect("sealed");
    assert_eq!(stored.attachments, refs, "kept in the answer's record");
}

#[test]
fn given_a_hub_key_when_a_request_is_accepted_then_its_receipt_verifies_and_one_changed_byte_fails()
{
    let hub = Arc::new(HubKey::generate());
    let mut d = signature_driver(Some(hub.clone()));
    let r = request(OPTIONAL);
    let reply = d.committed_reply("MFC", Command::SendRequest(r.clone()));
    let Ok(ShardReply::Accepted {
        id,
        receipt: Some(receipt),
        ..
    }) = reply
    else {
        panic!("{reply:?}")
    };
    assert_eq!(receipt.message_id, id);
    assert_eq!(receipt.digest, request_digest(&p("MFC"), &r));
    assert_eq!((receipt.shard, receipt.time_ms), (0, T0));
    let offset = d
        .log
        .iter()
        .find(|(_, rec)| matches!(rec, Record::Request(q) if q.id == id));
    assert_eq!(Some(receipt.offset), offset.map(|(o, _)| *o));
    assert_eq!(verify_receipt(&receipt, &hub.public()), Ok(()));
    let mut signature = receipt.signature.to_vec();
    signature[3] ^= 1;
    let forged = gonets_types::Receipt {
        signature: signature.into(),
        ..(*receipt).clone()
    };
    assert!(verify_receipt(&forged, &hub.public()).is_err());
    assert!(receipt.proof.is_none(), "alone in its commit: signed alone");
    // Without a key, no receipt.
    let mut plain = signature_driver(None);
    let reply = plain.committed_reply("MFC", Command::SendRequest(request(OPTIONAL)));
    assert!(matches!(
        reply,
        Ok(ShardReply::Accepted { receipt: None, .. })
    ));
}

#[test]
fn given_requests_and_an_answer_in_one_commit_when_committed_then_one_signature_serves_every_receipt(
) {
    let hub = Arc::new(HubKey::generate());
    let mut d = signature_driver(Some(hub.clone()));
    // A call, taken by its provider and answered: its answer commits with
    // the five requests sent after it.
    let (call_token, _) = d.command("MFC", Command::Call(request(OPTIONAL_CALL)));
    let got = d.fetch("FNS", requests(OPTIONAL_CALL), 1, 1);
    let answer = Command::SendResponse {
        request_id: got[0].id,
        payload: Bytes::from_static(b"data"),
        attachments: Vec::new(),
    };
    d.command("FNS", answer);
    let tokens: Vec<Token> = (0..5)
        .map(|_| d.command("MFC", Command::SendRequest(request(OPTIONAL))).0)
        .collect();
    let before = d.shard.counters().clone();
    let out = d.commit();
    let mut receipts: Vec<gonets_types::Receipt> = tokens
        .iter()
        .map(|t| match reply(&out, *t) {
            Some(Ok(ShardReply::Accepted {
                receipt: Some(r), ..
            })) => *r,
            other => panic!("{other:?}"),
        })
        .collect();
    match reply(&out, call_token) {
        Some(Ok(ShardReply::Answer(a))) => receipts.push(*a.receipt.expect("signed")),
        other => panic!("{other:?}"),
    }
    let after = d.shard.counters();
    assert_eq!(after.receipts_signed - before.receipts_signed, 6);
    assert_eq!(after.receipt_signatures - before.receipt_signatures, 1);
    for r in &receipts {
        assert_eq!(r.proof.as_ref().map(|p| p.count), Some(6), "{r:?}");
        assert_eq!(r.signature, receipts[0].signature, "one signature");
        assert_eq!(verify_receipt(r, &hub.public()), Ok(()));
    }
    let mut changed = receipts[5].clone();
    changed.time_ms += 1;
    assert!(verify_receipt(&changed, &hub.public()).is_err());
}

fn batch(n: usize) -> Vec<NewRequest> {
    (0..n)
        .map(|i| NewRequest::new(REQUIRED, format!("payload {i}")))
        .collect()
}

fn batch_signature(
    sender: &str,
    key_id: &str,
    signer: &dyn Signer,
    rs: &[NewRequest],
) -> SenderSignature {
    let digests: Vec<_> = rs.iter().map(|r| request_digest(&p(sender), r)).collect();
    sign_digest(signer, key_id, &batch_digest(&digests))
}

#[test]
fn given_a_batch_signed_once_when_sent_then_each_accepted_with_one_batch_receipt_that_verifies() {
    let hub = Arc::new(HubKey::generate());
    let mut d = signature_driver(Some(hub.clone()));
    let rs = batch(3);
    let signature = batch_signature("MFC", "mfc-1", &mfc_key(), &rs);
    let reply = d.committed_reply("MFC", Command::SendRequests(rs.clone()).signed(signature));
    let Ok(ShardReply::AcceptedMany(results)) = reply else {
        panic!("{reply:?}")
    };
    let accepted: Vec<_> = results.into_iter().map(|r| r.expect("accepted")).collect();
    let Some(AcceptanceReceipt::Batch(receipt)) = accepted[0].receipt.clone() else {
        panic!("{accepted:?}")
    };
    assert_eq!(receipt.entries.len(), 3);
    for (a, r) in accepted.iter().zip(&rs) {
        let entry = receipt.entry(a.id).expect("named");
        assert_eq!(entry.digest, request_digest(&p("MFC"), r));
        assert_eq!(stored_seal(&d, a.id).unwrap().digest, entry.digest);
        assert!(
            matches!(&a.receipt, Some(AcceptanceReceipt::Batch(b)) if Arc::ptr_eq(b, &receipt))
        );
    }
    assert_eq!(verify_batch_receipt(&receipt, &hub.public()), Ok(()));
    let mut changed = (*receipt).clone();
    changed.entries[2].offset += 1;
    assert!(verify_batch_receipt(&changed, &hub.public()).is_err());
}

#[test]
fn given_a_bad_batch_signature_when_sent_then_the_whole_batch_is_refused_and_nothing_stored() {
    let mut d = signature_driver(None);
    let rs = batch(3);
    // Signed over two of the three.
    let short = batch_signature("MFC", "mfc-1", &mfc_key(), &rs[..2]);
    let why = refused_unstored(
        &mut d,
        "MFC",
        Command::SendRequests(rs.clone()).signed(short),
    );
    assert!(why.contains("does not match"), "{why}");
    let expired = batch_signature("MFC", "mfc-old", &mfc_old_key(), &rs);
    refused_unstored(
        &mut d,
        "MFC",
        Command::SendRequests(rs.clone()).signed(expired),
    );
    assert_eq!(d.shard.counters().requests_bad_signature, 6);
    // Unsigned on a required kind: each slot refused, nothing stored.
    let reply = d.committed_reply("MFC", Command::SendRequests(rs));
    let Ok(ShardReply::AcceptedMany(results)) = reply else {
        panic!("{reply:?}")
    };
    assert!(results
        .iter()
        .all(|r| matches!(r, Err(HubError::BadSignature(_)))));
    // Nothing stored; every slot's refusal audited.
    assert!(
        d.log.iter().all(|(_, r)| matches!(
            r,
            Record::Audit(crate::trust_record::AuditRecord::Refusal(a))
                if a.reason == crate::trust_record::AuditReason::BadSignature
        )),
        "{:?}",
        d.log
    );
    assert!(!d.log.is_empty());
}

#[test]
fn given_a_signature_on_a_command_that_takes_none_when_run_then_malformed() {
    let mut d = signature_driver(None);
    let fetch = Command::Fetch {
        queue: requests(OPTIONAL),
        max: 1,
        wait_ms: 0,
        reader: 1,
    };
    let signature = sign_digest(&mfc_key(), "mfc-1", &gonets_types::Digest([0; 32]));
    let r = d.now_reply("MFC", fetch.signed(signature));
    assert!(matches!(r, Err(HubError::Malformed(_))), "{r:?}");
}

impl Driver {
    /// Sends a signed request, commits, and returns its id.
    fn send_ok_signed(&mut self, caller: &str, command: Command) -> MessageId {
        match self.committed_reply(caller, command) {
            Ok(ShardReply::Accepted {
                id,
                duplicate: false,
                ..
            }) => id,
            other => panic!("expected a fresh acceptance, got {other:?}"),
        }
    }
}
