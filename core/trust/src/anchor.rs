//! Chain anchors: the hub's signature over a shard's hash-chain value at a
//! point of its log. An anchor kept outside the data directory (exported
//! to an auditor) proves the log up to that point was not rewritten since:
//! whoever can write the disk can recompute the chain, not the signature.

use crate::hub_key::{HubKey, HubPublicKey};
use crate::scheme::{base64_of, bytes_of_base64};
use bytes::Bytes;

/// Which of a shard's two logs an anchor is about. Each signs under its
/// own domain string, so an anchor of one can never pass for the other's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AnchoredLog {
    /// The shard's log (`shard-N/`).
    Shard,
    /// The shard's history log (`shard-N/history/`, the archive).
    History,
}

impl AnchoredLog {
    /// Its name in the JSON line form.
    pub fn as_str(self) -> &'static str {
        match self {
            AnchoredLog::Shard => "shard",
            AnchoredLog::History => "history",
        }
    }

    fn domain(self) -> &'static [u8] {
        match self {
            AnchoredLog::Shard => ANCHOR_DOMAIN,
            AnchoredLog::History => HISTORY_ANCHOR_DOMAIN,
        }
    }
}

/// The hub's signed statement "shard `shard`'s log `log` has the chain
/// value `chain` after every record before log offset `offset`, at hub
/// time `time_ms`".
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Anchor {
    /// The log: the shard's own or its history log.
    pub log: AnchoredLog,
    /// The shard.
    pub shard: u16,
    /// The log offset the chain value is taken at: every record before it
    /// (a batch boundary) is covered.
    pub offset: u64,
    /// The chain value there (storage's commit-marker chain).
    pub chain: [u8; 32],
    /// Hub time of signing, ms since the Unix epoch.
    pub time_ms: u64,
    /// The hub key that signed it.
    pub key_id: String,
    /// The signature over [`Anchor::signed_bytes`].
    pub signature: Bytes,
}

const ANCHOR_DOMAIN: &[u8] = b"gonets anchor v1\0";
const HISTORY_ANCHOR_DOMAIN: &[u8] = b"gonets history anchor v1\0";

impl Anchor {
    /// The exact bytes the hub signs.
    pub fn signed_bytes(&self) -> Vec<u8> {
        let domain = self.log.domain();
        let mut out = Vec::with_capacity(domain.len() + 2 + 8 + 32 + 8 + 4 + self.key_id.len());
        out.extend_from_slice(domain);
        out.extend_from_slice(&self.shard.to_le_bytes());
        out.extend_from_slice(&self.offset.to_le_bytes());
        out.extend_from_slice(&self.chain);
        out.extend_from_slice(&self.time_ms.to_le_bytes());
        let len = u32::try_from(self.key_id.len()).expect("a short key id");
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(self.key_id.as_bytes());
        out
    }

    /// A signed anchor of a shard's log.
    pub fn signed(key: &HubKey, shard: u16, offset: u64, chain: [u8; 32], time_ms: u64) -> Anchor {
        Anchor::signed_for(key, AnchoredLog::Shard, shard, offset, chain, time_ms)
    }

    /// A signed anchor of `log` of `shard`.
    pub fn signed_for(
        key: &HubKey,
        log: AnchoredLog,
        shard: u16,
        offset: u64,
        chain: [u8; 32],
        time_ms: u64,
    ) -> Anchor {
        let mut a = Anchor {
            log,
            shard,
            offset,
            chain,
            time_ms,
            key_id: key.key_id().to_owned(),
            signature: Bytes::new(),
        };
        a.signature = key.sign(&a.signed_bytes()).into();
        a
    }

    /// True when the hub key `key` signed exactly this anchor.
    pub fn verifies(&self, key: &HubPublicKey) -> bool {
        self.key_id == key.key_id && key.verifier.verify(&self.signed_bytes(), &self.signature)
    }

    /// One line of JSON (an export file holds one anchor a line).
    pub fn to_json_line(&self) -> String {
        serde_json::json!({
            "log": self.log.as_str(),
            "shard": self.shard,
            "offset": self.offset,
            "chain": gonets_types::trust::hex_of(&self.chain),
            "time_ms": self.time_ms,
            "key_id": self.key_id,
            "signature": base64_of(&self.signature),
        })
        .to_string()
    }

    /// Reads [`Anchor::to_json_line`]'s text (`log` absent: the shard's log).
    pub fn from_json_line(line: &str) -> Result<Anchor, String> {
        let v: serde_json::Value = serde_json::from_str(line).map_err(|e| e.to_string())?;
        let u = |name: &str| {
            v.get(name)
                .and_then(|x| x.as_u64())
                .ok_or(format!("no {name}"))
        };
        let s = |name: &str| {
            v.get(name)
                .and_then(|x| x.as_str())
                .ok_or(format!("no {name}"))
        };
        let chain = gonets_types::trust::bytes_of_hex(s("chain")?)
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .ok_or("chain: not 64 hex digits")?;
        let log = match v.get("log").and_then(|x| x.as_str()) {
            None | Some("shard") => AnchoredLog::Shard,
            Some("history") => AnchoredLog::History,
            Some(other) => return Err(format!("log: {other}: not shard or history")),
        };
        Ok(Anchor {
            log,
            shard: u16::try_from(u("shard")?).map_err(|_| "shard out of range")?,
            offset: u("offset")?,
            chain,
            time_ms: u("time_ms")?,
            key_id: s("key_id")?.to_owned(),
            signature: bytes_of_base64(s("signature")?)
                .ok_or("signature: not base64")?
                .into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_an_anchor_when_signed_then_it_verifies_through_its_text_and_not_when_changed() {
        let key = HubKey::generate();
        let a = Anchor::signed(&key, 1, 4096, [9; 32], 1_700_000_000_000);
        assert!(a.verifies(&key.public()));
        let back = Anchor::from_json_line(&a.to_json_line()).unwrap();
        assert_eq!(back, a);
        let moved = Anchor {
            offset: 4097,
            ..a.clone()
        };
        assert!(!moved.verifies(&key.public()));
        let rechained = Anchor {
            chain: [8; 32],
            ..a.clone()
        };
        assert!(!rechained.verifies(&key.public()));
        assert!(!a.verifies(&HubKey::generate().public()));
        let other_log = Anchor {
            log: AnchoredLog::History,
            ..a.clone()
        };
        assert!(!other_log.verifies(&key.public()));
        let h = Anchor::signed_for(&key, AnchoredLog::History, 1, 4096, [9; 32], 1);
        assert!(h.verifies(&key.public()));
        assert_eq!(Anchor::from_json_line(&h.to_json_line()).unwrap(), h);
        assert!(Anchor::from_json_line("{}").is_err());
    }
}
