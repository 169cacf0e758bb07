//! Signature schemes behind two small traits, named in the registry by
//! their key type (`algorithm = "ed25519"`). The rules never name a
//! scheme: they hold a [`Verifier`] (a participant's key) or a [`Signer`]
//! (the hub's key) and ask it about a digest. Adding a scheme (GOST R
//! 34.10-2012, docs/adr/0019) is one implementation of each trait and one
//! arm in [`verifier`] and [`Algorithm`].

use base64::Engine as _;
use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use std::sync::Arc;

/// A signature scheme's name as the registry and key files spell it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// Ed25519 (RFC 8032): 32-byte public keys, 64-byte signatures.
    Ed25519,
}

impl Algorithm {
    /// The registry's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Ed25519 => "ed25519",
        }
    }

    /// The algorithm of a registry name.
    pub fn parse(name: &str) -> Result<Algorithm, KeyError> {
        match name {
            "ed25519" => Ok(Algorithm::Ed25519),
            other => Err(KeyError::UnknownAlgorithm(other.to_owned())),
        }
    }
}

/// Why a key could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The registry names a key type no scheme here implements.
    #[error("unknown key algorithm {0:?} (known: ed25519)")]
    UnknownAlgorithm(String),
    /// The key's text is not what its scheme expects.
    #[error("bad {algorithm} key: {reason}")]
    Malformed {
        /// The scheme.
        algorithm: &'static str,
        /// What is wrong.
        reason: String,
    },
}

/// Checks signatures made with one public key.
pub trait Verifier: Send + Sync + std::fmt::Debug {
    /// The scheme.
    fn algorithm(&self) -> Algorithm;
    /// True when `signature` is this key's signature of `message`.
    fn verify(&self, message: &[u8], signature: &[u8]) -> bool;
    /// The public key's bytes (as [`verifier`] reads them, before base64).
    fn public_key_bytes(&self) -> Vec<u8>;
}

/// Signs with one private key.
pub trait Signer: Send + Sync {
    /// The scheme.
    fn algorithm(&self) -> Algorithm;
    /// The signature of `message`.
    fn sign(&self, message: &[u8]) -> Vec<u8>;
    /// The matching public key.
    fn verifier(&self) -> Arc<dyn Verifier>;
}

/// The verifier of a public key given as the registry gives it: its
/// scheme's name and its bytes in standard base64.
pub fn verifier(algorithm: &str, public_key_base64: &str) -> Result<Arc<dyn Verifier>, KeyError> {
    match Algorithm::parse(algorithm)? {
        Algorithm::Ed25519 => Ok(Arc::new(Ed25519Verifier::from_base64(public_key_base64)?)),
    }
}

/// An Ed25519 public key.
#[derive(Clone, Debug)]
pub struct Ed25519Verifier(VerifyingKey);

impl Ed25519Verifier {
    /// From its 32 bytes in standard base64 (a weak key, of small order, is refused).
    pub fn from_base64(text: &str) -> Result<Ed25519Verifier, KeyError> {
        let bad = |reason: String| KeyError::Malformed {
            algorithm: "ed25519",
            reason,
        };
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map_err(|e| bad(format!("not base64: {e}")))?;
        let bytes: [u8; 32] = bytes
            .try_into()
            .map_err(|b: Vec<u8>| bad(format!("{} bytes, not 32", b.len())))?;
        let key = VerifyingKey::from_bytes(&bytes).map_err(|e| bad(e.to_string()))?;
        if key.is_weak() {
            return Err(bad("a weak key (small order)".into()));
        }
        Ok(Ed25519Verifier(key))
    }

    /// The key itself (the bench's batch verification uses it).
    pub fn key(&self) -> &VerifyingKey {
        &self.0
    }
}

impl Verifier for Ed25519Verifier {
    fn algorithm(&self) -> Algorithm {
        Algorithm::Ed25519
    }

    fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        let Ok(signature) = ed25519_dalek::Signature::from_slice(signature) else {
            return false;
        };
        // `verify_strict`: no malleable signatures, no weak keys.
        self.0.verify_strict(message, &signature).is_ok()
    }

    fn public_key_bytes(&self) -> Vec<u8> {
        self.0.to_bytes().to_vec()
    }
}

/// An Ed25519 private key.
pub struct Ed25519Signer(SigningKey);

impl Ed25519Signer {
    /// A fresh key from the operating system's random source.
    pub fn generate() -> Ed25519Signer {
        Ed25519Signer(SigningKey::generate(&mut rand_core::OsRng))
    }

    /// From its 32-byte seed.
    pub fn from_seed(seed: &[u8; 32]) -> Ed25519Signer {
        Ed25519Signer(SigningKey::from_bytes(seed))
    }

    /// Its 32-byte seed (what a key file keeps).
    pub fn seed(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// Its public key in standard base64, as the registry takes it.
    pub fn public_key_base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.0.verifying_key().to_bytes())
    }
}

impl Signer for Ed25519Signer {
    fn algorithm(&self) -> Algorithm {
        Algorithm::Ed25519
    }

    fn sign(&self, message: &[u8]) -> Vec<u8> {
        self.0.sign(message).to_bytes().to_vec()
    }

    fn verifier(&self) -> Arc<dyn Verifier> {
        Arc::new(Ed25519Verifier(self.0.verifying_key()))
    }
}

/// Standard base64 of `bytes` (keys and signatures in text files).
pub fn base64_of(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The bytes of standard base64 text.
pub fn bytes_of_base64(text: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_an_ed25519_key_when_it_signs_then_only_its_message_verifies() {
        let signer = Ed25519Signer::generate();
        let v = verifier("ed25519", &signer.public_key_base64()).unwrap();
        let sig = signer.sign(b"message");
        assert_eq!(sig.len(), 64);
        assert!(v.verify(b"message", &sig));
        assert!(!v.verify(b"messagE", &sig), "another message");
        let mut flipped = sig.clone();
        flipped[10] ^= 1;
        assert!(!v.verify(b"message", &flipped), "one bit changed");
        assert!(!v.verify(b"message", &sig[..63]), "short");
        let other = Ed25519Signer::generate();
        assert!(
            !v.verify(b"message", &other.sign(b"message")),
            "another key"
        );
    }

    #[test]
    fn given_bad_key_texts_when_read_then_each_is_a_typed_error() {
        assert_eq!(
            verifier("gost2012", "AAAA").unwrap_err(),
            KeyError::UnknownAlgorithm("gost2012".into())
        );
        for text in ["not base64!", "AAAA", &base64_of(&[0u8; 33])] {
            assert!(
                matches!(verifier("ed25519", text), Err(KeyError::Malformed { .. })),
                "{text}"
            );
        }
        // The identity point: a weak key.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert!(matches!(
            verifier("ed25519", &base64_of(&identity)),
            Err(KeyError::Malformed { .. })
        ));
    }

    #[test]
    fn given_a_seed_when_a_signer_is_rebuilt_then_it_is_the_same_key() {
        let a = Ed25519Signer::generate();
        let b = Ed25519Signer::from_seed(&a.seed());
        assert_eq!(a.public_key_base64(), b.public_key_base64());
        assert_eq!(a.verifier().public_key_bytes().len(), 32);
    }
}
