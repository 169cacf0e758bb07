//! The hub's own signing key: it signs receipts and chain anchors.
//!
//! Two small text files, `name = value` per line (`#` comments):
//!
//! ```text
//! hub.key (0600)             hub.pub
//! algorithm = ed25519        algorithm = ed25519
//! key_id = hub-1f2e...       key_id = hub-1f2e...
//! seed = <base64, 32 bytes>  public_key = <base64, 32 bytes>
//! ```
//!
//! The key id is `hub-` and the first 8 bytes (hex) of the public key's
//! BLAKE3 digest, so two hub keys are never confused. `gonets serve`
//! makes a development key under its data directory when the
//! configuration names none, as it makes development certificates.

use crate::scheme::{
    base64_of, bytes_of_base64, verifier, Algorithm, Ed25519Signer, Signer, Verifier,
};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Why a hub key file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum HubKeyError {
    /// Reading or writing the file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The file's content is not a key.
    #[error("{path}: {reason}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// The hub's signing key.
pub struct HubKey {
    key_id: String,
    signer: Box<dyn Signer>,
}

impl std::fmt::Debug for HubKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubKey")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

/// The hub's public key: what a receipt's or an anchor's reader holds.
#[derive(Clone, Debug)]
pub struct HubPublicKey {
    /// Its id (receipts and anchors name it).
    pub key_id: String,
    /// The key.
    pub verifier: Arc<dyn Verifier>,
}

/// The key id of a public key: `hub-` and 16 hex digits of its BLAKE3.
pub fn hub_key_id(public_key: &[u8]) -> String {
    let h = blake3::hash(public_key);
    format!("hub-{}", gonets_types::trust::hex_of(&h.as_bytes()[..8]))
}

impl HubKey {
    /// A fresh Ed25519 key (not written anywhere).
    pub fn generate() -> HubKey {
        let signer = Ed25519Signer::generate();
        let key_id = hub_key_id(&signer.verifier().public_key_bytes());
        HubKey {
            key_id,
            signer: Box::new(signer),
        }
    }

    /// The Ed25519 key of a 32-byte seed: the same key every time, for
    /// deterministic simulators and tests (a real hub's key is
    /// [`HubKey::generate`]d and kept in its file).
    pub fn from_seed(seed: &[u8; 32]) -> HubKey {
        let signer = Ed25519Signer::from_seed(seed);
        let key_id = hub_key_id(&signer.verifier().public_key_bytes());
        HubKey {
            key_id,
            signer: Box::new(signer),
        }
    }

    /// Its id.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// Signs `message`.
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        self.signer.sign(message)
    }

    /// Its public half.
    pub fn public(&self) -> HubPublicKey {
        HubPublicKey {
            key_id: self.key_id.clone(),
            verifier: self.signer.verifier(),
        }
    }

    /// Reads a key file (`hub.key`).
    pub fn load(path: &Path) -> Result<HubKey, HubKeyError> {
        let fields = read_fields(path)?;
        let bad = |reason: &str| HubKeyError::Malformed {
            path: path.into(),
            reason: reason.into(),
        };
        Algorithm::parse(field(&fields, "algorithm").ok_or_else(|| bad("no algorithm"))?)
            .map_err(|e| bad(&e.to_string()))?;
        let seed = field(&fields, "seed")
            .and_then(bytes_of_base64)
            .ok_or_else(|| bad("no base64 seed"))?;
        let seed: [u8; 32] = seed
            .try_into()
            .map_err(|_| bad("a seed of other than 32 bytes"))?;
        let signer = Ed25519Signer::from_seed(&seed);
        let key_id = hub_key_id(&signer.verifier().public_key_bytes());
        if field(&fields, "key_id") != Some(key_id.as_str()) {
            return Err(bad("key_id does not match the key"));
        }
        Ok(HubKey {
            key_id,
            signer: Box::new(signer),
        })
    }

    /// A fresh key and the text of its key file (`hub.key`: secret, to be
    /// written with mode 0600). Writing it durably is the caller's (the
    /// server's `hub_key_file`, through its durable files).
    pub fn generate_with_file_text() -> (HubKey, String) {
        let signer = Ed25519Signer::generate();
        let key_id = hub_key_id(&signer.verifier().public_key_bytes());
        let text = format!(
            "# gonets hub signing key: secret, keep it 0600\nalgorithm = ed25519\nkey_id = {key_id}\nseed = {}\n",
            base64_of(&signer.seed())
        );
        let key = HubKey {
            key_id,
            signer: Box::new(signer),
        };
        (key, text)
    }
}

/// `hub.pub` beside `hub.key`.
pub fn public_path_of(key_path: &Path) -> PathBuf {
    key_path.with_extension("pub")
}

impl HubPublicKey {
    /// Reads a public key file (`hub.pub`).
    pub fn load(path: &Path) -> Result<HubPublicKey, HubKeyError> {
        let fields = read_fields(path)?;
        let bad = |reason: String| HubKeyError::Malformed {
            path: path.into(),
            reason,
        };
        let algorithm = field(&fields, "algorithm").ok_or_else(|| bad("no algorithm".into()))?;
        let public = field(&fields, "public_key").ok_or_else(|| bad("no public_key".into()))?;
        let verifier = verifier(algorithm, public).map_err(|e| bad(e.to_string()))?;
        let key_id = hub_key_id(&verifier.public_key_bytes());
        if field(&fields, "key_id") != Some(key_id.as_str()) {
            return Err(bad("key_id does not match the key".into()));
        }
        Ok(HubPublicKey { key_id, verifier })
    }

    /// The text of its file (`hub.pub`).
    pub fn file_text(&self) -> String {
        format!(
            "# gonets hub public key: give it to whoever checks receipts and anchors\nalgorithm = {}\nkey_id = {}\npublic_key = {}\n",
            self.verifier.algorithm().as_str(),
            self.key_id,
            base64_of(&self.verifier.public_key_bytes())
        )
    }

    /// Writes it as `hub.pub` (not durably: for tools and tests; the
    /// server writes its own through its durable files).
    pub fn write(&self, path: &Path) -> Result<(), HubKeyError> {
        std::fs::write(path, self.file_text()).map_err(|source| HubKeyError::Io {
            path: path.into(),
            source,
        })
    }
}

fn read_fields(path: &Path) -> Result<Vec<(String, String)>, HubKeyError> {
    let text = std::fs::read_to_string(path).map_err(|source| HubKeyError::Io {
        path: path.into(),
        source,
    })?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect())
}

fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_key(path: &Path) -> HubKey {
        let (key, text) = HubKey::generate_with_file_text();
        std::fs::write(path, text).unwrap();
        key
    }

    #[test]
    fn given_a_generated_key_file_when_loaded_then_the_same_key_and_its_public_half() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hub.key");
        let made = write_key(&path);
        let again = HubKey::load(&path).unwrap();
        assert_eq!(made.key_id(), again.key_id());
        made.public().write(&public_path_of(&path)).unwrap();
        let public = HubPublicKey::load(&public_path_of(&path)).unwrap();
        assert_eq!(public.key_id, made.key_id());
        assert!(public.verifier.verify(b"m", &again.sign(b"m")));
    }

    #[test]
    fn given_damaged_key_files_when_loaded_then_typed_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hub.key");
        write_key(&path);
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, text.replace("key_id = hub-", "key_id = hub-0")).unwrap();
        let e = HubKey::load(&path).unwrap_err();
        assert!(matches!(e, HubKeyError::Malformed { .. }), "{e}");
        std::fs::write(&path, "algorithm = gost\nseed = AAAA\n").unwrap();
        assert!(matches!(
            HubKey::load(&path),
            Err(HubKeyError::Malformed { .. })
        ));
        let missing = dir.path().join("none.pub");
        assert!(matches!(
            HubPublicKey::load(&missing),
            Err(HubKeyError::Io { .. })
        ));
    }
}
