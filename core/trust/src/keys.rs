//! A participant's registered keys and the one check of a sender's
//! signature: the key it names must be the sender's, valid at the hub's
//! time, and the signature must verify over the message's digest.

use crate::scheme::Verifier;
use gonets_types::{Digest, HubError, SenderSignature};
use std::sync::Arc;

/// One of a participant's public keys, with its validity period (for
/// rotation: a new key is registered before the old one's end).
#[derive(Clone, Debug)]
pub struct RegisteredKey {
    /// The id a signature names it by; unique among the participant's keys.
    pub key_id: String,
    /// The key.
    pub verifier: Arc<dyn Verifier>,
    /// Not valid before this hub time, ms since the Unix epoch.
    pub valid_from_ms: Option<u64>,
    /// Not valid from this hub time on, ms since the Unix epoch.
    pub valid_until_ms: Option<u64>,
}

/// Why a signature was refused (on the wire `BAD_SIGNATURE` with this text;
/// the text names the key id, never the signature's bytes).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The data kind requires a signature and the message has none.
    #[error("the data kind requires a signature; none was sent")]
    Missing,
    /// The sender has no key of that id (another participant's key, or none).
    #[error("{sender} has no key {key_id:?}")]
    UnknownKey {
        /// The sender.
        sender: String,
        /// The key id named.
        key_id: String,
    },
    /// The key's validity has not begun.
    #[error("key {key_id:?} is not valid before {valid_from_ms} ms")]
    NotYetValid {
        /// The key.
        key_id: String,
        /// Its start.
        valid_from_ms: u64,
    },
    /// The key's validity has ended.
    #[error("key {key_id:?} expired at {valid_until_ms} ms")]
    Expired {
        /// The key.
        key_id: String,
        /// Its end.
        valid_until_ms: u64,
    },
    /// The signature does not verify over this message's digest.
    #[error("the signature by key {key_id:?} does not match the message")]
    Invalid {
        /// The key.
        key_id: String,
    },
}

impl From<SignatureError> for HubError {
    fn from(e: SignatureError) -> HubError {
        HubError::BadSignature(e.to_string())
    }
}

/// A participant's keys.
#[derive(Clone, Debug, Default)]
pub struct KeyRing {
    keys: Vec<RegisteredKey>,
}

/// Most keys one participant may register (a rotation needs two; a bound
/// keeps the check's scan short).
pub const KEYS_PER_PARTICIPANT_MAX: usize = 16;

impl KeyRing {
    /// A ring of `keys`: ids unique and non-empty, at most
    /// [`KEYS_PER_PARTICIPANT_MAX`], each period non-empty.
    pub fn new(keys: Vec<RegisteredKey>) -> Result<KeyRing, String> {
        if keys.len() > KEYS_PER_PARTICIPANT_MAX {
            return Err(format!(
                "{} keys; at most {KEYS_PER_PARTICIPANT_MAX}",
                keys.len()
            ));
        }
        for (i, k) in keys.iter().enumerate() {
            if k.key_id.is_empty() || k.key_id.len() > gonets_types::trust::KEY_ID_BYTES_MAX {
                return Err(format!("key id {:?}: 1 to 64 bytes", k.key_id));
            }
            if keys[..i].iter().any(|o| o.key_id == k.key_id) {
                return Err(format!("key id {:?} twice", k.key_id));
            }
            if let (Some(from), Some(until)) = (k.valid_from_ms, k.valid_until_ms) {
                if from >= until {
                    return Err(format!(
                        "key {:?}: valid_from is not before valid_until",
                        k.key_id
                    ));
                }
            }
        }
        Ok(KeyRing { keys })
    }

    /// No keys.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The keys.
    pub fn keys(&self) -> &[RegisteredKey] {
        &self.keys
    }

    /// Checks `signature` by `sender` over `digest` at hub time `now_ms`.
    pub fn check(
        &self,
        sender: &str,
        signature: &SenderSignature,
        digest: &Digest,
        now_ms: u64,
    ) -> Result<(), SignatureError> {
        let key_id = &signature.key_id;
        let key = self
            .keys
            .iter()
            .find(|k| k.key_id == *key_id)
            .ok_or_else(|| SignatureError::UnknownKey {
                sender: sender.to_owned(),
                key_id: key_id.clone(),
            })?;
        if let Some(from) = key.valid_from_ms.filter(|from| now_ms < *from) {
            return Err(SignatureError::NotYetValid {
                key_id: key_id.clone(),
                valid_from_ms: from,
            });
        }
        if let Some(until) = key.valid_until_ms.filter(|until| now_ms >= *until) {
            return Err(SignatureError::Expired {
                key_id: key_id.clone(),
                valid_until_ms: until,
            });
        }
        if !key.verifier.verify(digest.as_bytes(), &signature.bytes) {
            return Err(SignatureError::Invalid {
                key_id: key_id.clone(),
            });
        }
        Ok(())
    }
}

/// A sender's signature of `digest` with `signer` under `key_id`: what a
/// client attaches to a message (or, over a batch's digest, to a batch).
pub fn sign_digest(signer: &dyn crate::Signer, key_id: &str, digest: &Digest) -> SenderSignature {
    SenderSignature {
        key_id: key_id.to_owned(),
        bytes: signer.sign(digest.as_bytes()).into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheme::{Ed25519Signer, Signer};

    fn key(
        id: &str,
        signer: &Ed25519Signer,
        from: Option<u64>,
        until: Option<u64>,
    ) -> RegisteredKey {
        RegisteredKey {
            key_id: id.into(),
            verifier: signer.verifier(),
            valid_from_ms: from,
            valid_until_ms: until,
        }
    }

    #[test]
    fn given_a_ring_when_signatures_are_checked_then_each_refusal_is_typed() {
        let old = Ed25519Signer::generate();
        let new = Ed25519Signer::generate();
        let ring = KeyRing::new(vec![
            key("k1", &old, None, Some(1_000)),
            key("k2", &new, Some(900), None),
        ])
        .unwrap();
        let d = Digest([5; 32]);
        let by_old = sign_digest(&old, "k1", &d);
        let by_new = sign_digest(&new, "k2", &d);
        assert_eq!(ring.check("MFC", &by_old, &d, 500), Ok(()));
        assert_eq!(ring.check("MFC", &by_new, &d, 950), Ok(()), "overlap");
        assert!(matches!(
            ring.check("MFC", &by_old, &d, 1_000),
            Err(SignatureError::Expired {
                valid_until_ms: 1_000,
                ..
            })
        ));
        assert!(matches!(
            ring.check("MFC", &by_new, &d, 899),
            Err(SignatureError::NotYetValid {
                valid_from_ms: 900,
                ..
            })
        ));
        let unknown = sign_digest(&new, "k9", &d);
        assert!(matches!(
            ring.check("MFC", &unknown, &d, 950),
            Err(SignatureError::UnknownKey { .. })
        ));
        let other_digest = Digest([6; 32]);
        assert!(matches!(
            ring.check("MFC", &by_new, &other_digest, 950),
            Err(SignatureError::Invalid { .. })
        ));
        let wrong_key = sign_digest(&old, "k2", &d);
        assert!(matches!(
            ring.check("MFC", &wrong_key, &d, 950),
            Err(SignatureError::Invalid { .. })
        ));
        let e: HubError = SignatureError::Missing.into();
        assert!(matches!(e, HubError::BadSignature(_)));
    }

    #[test]
    fn given_bad_rings_when_built_then_they_are_refused() {
        let s = Ed25519Signer::generate();
        assert!(KeyRing::new(vec![key("k", &s, None, None), key("k", &s, None, None)]).is_err());
        assert!(KeyRing::new(vec![key("", &s, None, None)]).is_err());
        assert!(KeyRing::new(vec![key("k", &s, Some(5), Some(5))]).is_err());
        let many = (0..=KEYS_PER_PARTICIPANT_MAX)
            .map(|i| key(&format!("k{i}"), &s, None, None))
            .collect();
        assert!(KeyRing::new(many).is_err());
        assert!(KeyRing::default().is_empty());
    }
}
