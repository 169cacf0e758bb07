//! What trust costs a message: the digest of a 4 KiB request, an Ed25519
//! signature, one verification, a batch verification of 100 (per message),
//! a receipt's signature. `cargo bench -p gonets-trust`.

#![allow(missing_docs)] // criterion_group! makes an undocumented function

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use gonets_trust::{
    request_digest, sign_digest, Ed25519Signer, HubKey, KeyRing, RegisteredKey, Signer,
};
use gonets_types::{DataKindId, Digest, MessageId, NewRequest, ParticipantId, Receipt};

fn bench(c: &mut Criterion) {
    let sender = ParticipantId::new("MFC");
    let request = NewRequest::new("urn:bench", vec![7u8; 4096]);
    c.bench_function("request_digest_4KiB", |b| {
        b.iter(|| request_digest(&sender, &request))
    });
    let signer = Ed25519Signer::generate();
    let digest = request_digest(&sender, &request);
    c.bench_function("ed25519_sign", |b| {
        b.iter(|| sign_digest(&signer, "k1", &digest))
    });
    let ring = KeyRing::new(vec![RegisteredKey {
        key_id: "k1".into(),
        verifier: signer.verifier(),
        valid_from_ms: None,
        valid_until_ms: None,
    }])
    .unwrap();
    let signature = sign_digest(&signer, "k1", &digest);
    c.bench_function("ed25519_verify", |b| {
        b.iter(|| ring.check("MFC", &signature, &digest, 0).unwrap())
    });
    let digests: Vec<Digest> = (0..100u8).map(|i| Digest([i; 32])).collect();
    let sigs: Vec<ed25519_dalek::Signature> = digests
        .iter()
        .map(|d| ed25519_dalek::Signature::from_slice(&signer.sign(d.as_bytes())).unwrap())
        .collect();
    let messages: Vec<&[u8]> = digests.iter().map(|d| &d.0[..]).collect();
    let key = gonets_trust::Ed25519Verifier::from_base64(&signer.public_key_base64()).unwrap();
    let keys = vec![*key.key(); 100];
    let mut group = c.benchmark_group("ed25519_verify_batch");
    group.throughput(Throughput::Elements(100));
    group.bench_function("100", |b| {
        b.iter(|| ed25519_dalek::verify_batch(&messages, &sigs, &keys).unwrap())
    });
    group.finish();
    let hub = HubKey::generate();
    let mut receipt = Receipt {
        message_id: MessageId(1),
        reply_to: None,
        digest,
        sender,
        kind: DataKindId::new("urn:bench"),
        time_ms: 1,
        shard: 0,
        offset: 1,
        key_id: String::new(),
        signature: bytes::Bytes::new(),
        proof: None,
    };
    c.bench_function("receipt_sign", |b| {
        b.iter(|| gonets_trust::sign_receipt(&hub, &mut receipt))
    });
    // One commit's receipts signed as a tree (docs/adr/0023): the cost of
    // the whole group, so a receipt's share is the figure over the count.
    let mut group = c.benchmark_group("receipt_tree_sign");
    for n in [8_u64, 64] {
        let mut receipts: Vec<Receipt> = (0..n)
            .map(|i| Receipt {
                offset: i,
                ..receipt.clone()
            })
            .collect();
        group.bench_function(n.to_string(), |b| {
            b.iter(|| {
                let mut refs: Vec<&mut Receipt> = receipts.iter_mut().collect();
                gonets_trust::sign_receipts(&hub, &mut refs)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
