//! Trust for gonets (issue 18, docs/security.md): what a message's digest
//! covers ([`digest`]), signature schemes behind small traits
//! ([`scheme`], Ed25519 today), a participant's registered keys and the one
//! signature check ([`keys`]), the hub's own key ([`hub_key`]), hub-signed
//! receipts ([`receipt`], signed once a commit: [`receipt_tree`]) and chain anchors ([`anchor`]).
//!
//! Pure computation over bytes: no I/O but reading and writing key files.

pub mod anchor;
pub mod digest;
pub mod hub_key;
pub mod keys;
pub mod receipt;
pub mod receipt_tree;
pub mod scheme;

pub use anchor::{Anchor, AnchoredLog};
pub use digest::{answer_digest, batch_digest, payload_digest, request_digest};
pub use hub_key::{HubKey, HubKeyError, HubPublicKey};
pub use keys::{sign_digest, KeyRing, RegisteredKey, SignatureError};
pub use receipt::{
    receipt_from_json, receipt_to_json, sign_batch_receipt, sign_receipt, verify_batch_receipt,
    verify_receipt, ReceiptError,
};
pub use receipt_tree::sign_receipts;
pub use scheme::{verifier, Algorithm, Ed25519Signer, Ed25519Verifier, KeyError, Signer, Verifier};
