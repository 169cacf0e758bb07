//! Receipts signed once per commit (docs/adr/0023): the receipts a shard
//! hands out together become the leaves of one Merkle tree (RFC 9162's
//! shape, BLAKE3 for its hash), the hub signs the tree's head once, and
//! each receipt carries its leaf's audit path ([`ReceiptProof`]). One
//! Ed25519 signature then serves a whole commit's acceptances and answers
//! instead of one each; a holder still checks its receipt alone, offline,
//! with the hub's public key: leaf hash, path up to the root, signature
//! over the head.

use crate::hub_key::HubKey;
use gonets_types::trust::RECEIPT_PATH_LEN_MAX;
use gonets_types::{Digest, Receipt, ReceiptProof};

/// Most receipts one tree takes (a path of [`RECEIPT_PATH_LEN_MAX`]).
pub const RECEIPTS_PER_TREE_MAX: usize = 1 << RECEIPT_PATH_LEN_MAX;

/// Key-derivation context of the tree's hash (leaves and nodes).
const TREE_CONTEXT: &str = "gonets receipt tree v1";
/// Domain separation of the signed tree head.
const HEAD_DOMAIN: &[u8] = b"gonets receipt tree head v1\0";

/// Signs `receipts` with `key`: one alone as before (no proof), two or
/// more as trees of at most [`RECEIPTS_PER_TREE_MAX`], one signature a
/// tree. Sets every receipt's `key_id`, `signature` and `proof`; gives
/// the number of signatures made.
pub fn sign_receipts(key: &HubKey, receipts: &mut [&mut Receipt]) -> usize {
    if let [one] = receipts {
        crate::receipt::sign_receipt(key, one);
        return 1;
    }
    let mut signatures = 0;
    for tree in receipts.chunks_mut(RECEIPTS_PER_TREE_MAX) {
        sign_tree(key, tree);
        signatures += 1;
    }
    signatures
}

/// One tree over `receipts` (2 ..= [`RECEIPTS_PER_TREE_MAX`] of them).
fn sign_tree(key: &HubKey, receipts: &mut [&mut Receipt]) {
    assert!((1..=RECEIPTS_PER_TREE_MAX).contains(&receipts.len()));
    let count = u32::try_from(receipts.len()).expect("bounded above");
    let leaves: Vec<Digest> = receipts
        .iter_mut()
        .map(|r| {
            r.key_id = key.key_id().to_owned();
            leaf_hash(r)
        })
        .collect();
    let mut paths = vec![Vec::new(); leaves.len()];
    let root = subtree(&leaves, &mut paths);
    let signature: bytes::Bytes = key.sign(&head_bytes(count, &root, key.key_id())).into();
    for (index, (r, path)) in receipts.iter_mut().zip(paths).enumerate() {
        debug_assert!(path.len() <= RECEIPT_PATH_LEN_MAX);
        r.signature = signature.clone();
        r.proof = Some(ReceiptProof {
            index: u32::try_from(index).expect("bounded above"),
            count,
            path,
        });
    }
}

/// The root of `leaves` (RFC 9162 §2.1.1), pushing each leaf's sibling
/// at this level onto its path in `paths` (same order as `leaves`).
/// Recursion depth: the path length, at most [`RECEIPT_PATH_LEN_MAX`].
fn subtree(leaves: &[Digest], paths: &mut [Vec<Digest>]) -> Digest {
    debug_assert_eq!(leaves.len(), paths.len());
    if leaves.len() == 1 {
        return leaves[0];
    }
    // The largest power of two below the count.
    let split = 1 << (usize::BITS - 1 - (leaves.len() - 1).leading_zeros());
    let (left_paths, right_paths) = paths.split_at_mut(split);
    let left = subtree(&leaves[..split], left_paths);
    let right = subtree(&leaves[split..], right_paths);
    left_paths.iter_mut().for_each(|p| p.push(right));
    right_paths.iter_mut().for_each(|p| p.push(left));
    node_hash(&left, &right)
}

/// The root `proof` leads to from `receipt`'s leaf (RFC 9162 §2.1.3.2),
/// or `None` when the proof cannot be one of a tree of its count.
pub fn root_of(receipt: &Receipt, proof: &ReceiptProof) -> Option<Digest> {
    let count = usize::try_from(proof.count).ok()?;
    if proof.index >= proof.count || count > RECEIPTS_PER_TREE_MAX {
        return None;
    }
    if proof.path.len() > RECEIPT_PATH_LEN_MAX {
        return None;
    }
    let (mut index, mut last) = (proof.index, proof.count - 1);
    let mut hash = leaf_hash(receipt);
    for sibling in &proof.path {
        if last == 0 {
            return None; // a longer path than the tree is deep
        }
        if index & 1 == 1 || index == last {
            hash = node_hash(sibling, &hash);
            // Bounded: at most 32 shifts of a u32.
            while index & 1 == 0 && index != 0 {
                index >>= 1;
                last >>= 1;
            }
        } else {
            hash = node_hash(&hash, sibling);
        }
        index >>= 1;
        last >>= 1;
    }
    (last == 0).then_some(hash)
}

/// The bytes the hub signs for a tree: a domain tag, the leaf count, the
/// root, the key id (length-prefixed).
pub fn head_bytes(count: u32, root: &Digest, key_id: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEAD_DOMAIN.len() + 4 + 32 + 4 + key_id.len());
    out.extend_from_slice(HEAD_DOMAIN);
    out.extend_from_slice(&count.to_le_bytes());
    out.extend_from_slice(&root.0);
    let len = u32::try_from(key_id.len()).expect("a key id under 4 GiB");
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(key_id.as_bytes());
    out
}

/// A leaf: 0x00, then the receipt's signed bytes (its `key_id` included).
fn leaf_hash(receipt: &Receipt) -> Digest {
    let mut h = blake3::Hasher::new_derive_key(TREE_CONTEXT);
    h.update(&[0]);
    h.update(&receipt.signed_bytes());
    Digest(*h.finalize().as_bytes())
}

/// An inner node: 0x01, then its two children.
fn node_hash(left: &Digest, right: &Digest) -> Digest {
    let mut h = blake3::Hasher::new_derive_key(TREE_CONTEXT);
    h.update(&[1]);
    h.update(&left.0);
    h.update(&right.0);
    Digest(*h.finalize().as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::receipt::{verify_receipt, ReceiptError};
    use gonets_types::{DataKindId, MessageId, ParticipantId};

    fn receipt(n: u64) -> Receipt {
        Receipt {
            message_id: MessageId::new(1_700_000_000_000, 1, n),
            reply_to: n
                .is_multiple_of(2)
                .then(|| MessageId::new(1_700_000_000_000, 1, n + 1000)),
            digest: Digest([n as u8; 32]),
            sender: ParticipantId::new("MFC"),
            kind: DataKindId::new("urn:k"),
            time_ms: 1_700_000_000_000 + n,
            shard: 1,
            offset: 4096 * n,
            key_id: String::new(),
            signature: bytes::Bytes::new(),
            proof: None,
        }
    }

    fn signed(key: &HubKey, n: u64) -> Vec<Receipt> {
        let mut rs: Vec<Receipt> = (0..n).map(receipt).collect();
        let mut refs: Vec<&mut Receipt> = rs.iter_mut().collect();
        sign_receipts(key, &mut refs);
        rs
    }

    #[test]
    fn given_trees_of_1_to_33_receipts_when_each_is_verified_alone_then_all_hold() {
        let key = HubKey::generate();
        for n in 1..=33 {
            let rs = signed(&key, n);
            for r in &rs {
                assert_eq!(verify_receipt(r, &key.public()), Ok(()), "{n}: {r:?}");
            }
            if n == 1 {
                assert!(rs[0].proof.is_none(), "one receipt is signed alone");
            } else {
                assert!(rs.iter().all(|r| r.signature == rs[0].signature));
                let depth = (n as usize).next_power_of_two().trailing_zeros() as usize;
                assert!(rs
                    .iter()
                    .all(|r| r.proof.as_ref().unwrap().path.len() <= depth));
            }
        }
    }

    #[test]
    fn given_a_tree_receipt_when_a_field_its_proof_or_its_signature_changes_then_it_fails() {
        let key = HubKey::generate();
        let rs = signed(&key, 7);
        let r = &rs[3];
        let bad = |changed: Receipt| {
            assert_eq!(
                verify_receipt(&changed, &key.public()),
                Err(ReceiptError::BadSignature),
                "{changed:?}"
            );
        };
        bad(Receipt {
            offset: r.offset + 1,
            ..r.clone()
        });
        let with_proof = |f: &dyn Fn(&mut ReceiptProof)| {
            let mut p = r.proof.clone().unwrap();
            f(&mut p);
            Receipt {
                proof: Some(p),
                ..r.clone()
            }
        };
        bad(with_proof(&|p| p.index = 4));
        bad(with_proof(&|p| p.index = 99));
        bad(with_proof(&|p| p.count = 8));
        bad(with_proof(&|p| p.path[0].0[0] ^= 1));
        bad(with_proof(&|p| p.path.push(Digest([0; 32]))));
        bad(with_proof(&|p| {
            p.path.pop();
        }));
        bad(Receipt {
            proof: None,
            ..r.clone()
        });
        // Another receipt's proof does not fit this one.
        bad(Receipt {
            proof: rs[4].proof.clone(),
            ..r.clone()
        });
    }

    #[test]
    fn given_a_last_tree_of_one_when_a_step_overflows_a_tree_then_it_still_verifies() {
        // A step of RECEIPTS_PER_TREE_MAX + 1 receipts ends with a tree of
        // one leaf: an empty path, the leaf its own root.
        let key = HubKey::generate();
        let mut r = receipt(3);
        sign_tree(&key, &mut [&mut r]);
        let proof = r.proof.clone().expect("a tree's proof");
        assert_eq!((proof.index, proof.count, proof.path.len()), (0, 1, 0));
        assert_eq!(verify_receipt(&r, &key.public()), Ok(()));
        let mut rs: Vec<Receipt> = (0..3).map(receipt).collect();
        let mut refs: Vec<&mut Receipt> = rs.iter_mut().collect();
        assert_eq!(sign_receipts(&key, &mut refs), 1, "one signature a tree");
    }

    #[test]
    fn given_the_rfc_shape_when_five_leaves_then_the_last_path_is_one_hash_long() {
        // RFC 9162: a tree of 5 is ((01)(23))4: leaf 4's path is the root
        // of the first four, leaf 0's three hashes.
        let key = HubKey::generate();
        let rs = signed(&key, 5);
        assert_eq!(rs[4].proof.as_ref().unwrap().path.len(), 1);
        assert_eq!(rs[0].proof.as_ref().unwrap().path.len(), 3);
    }
}
