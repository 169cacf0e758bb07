//! The registry: participants, data kinds and who may request what (R1, R6, R8).
//!
//! Loaded from TOML at start; an embedded default (a few demo agencies and
//! data kinds, `core/engine/registry.default.toml`) is used when none is given.
//! Immutable once loaded: shards share it read-only behind an `Arc` (the
//! kinds' compiled JSON Schemas with it, [`crate::format`]).

use crate::format::{Direction, Format};
use gonets_types::ids::{DataKindId, ParticipantId};
use std::collections::{HashMap, HashSet};
use std::path::Path;

/// Whether a data kind is answered within the async deadline or in real time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Store-and-forward; answer within the deadline (default 48 h).
    Async,
    /// Request to response within the budget (default 2 s), end to end.
    Realtime,
}

/// What a participant may do.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Roles {
    /// May send requests.
    pub consumer: bool,
    /// May serve data kinds.
    pub provider: bool,
    /// May read any message's history and any queue's stats.
    pub operator: bool,
}

/// An information system connected to the hub.
#[derive(Clone, Debug)]
pub struct Participant {
    /// Mnemonic id, e.g. `FNS`.
    pub id: ParticipantId,
    /// Human-readable name.
    pub name: String,
    /// What it may do.
    pub roles: Roles,
    /// Development token (the network layer authenticates with it or mTLS).
    pub token: Option<String>,
    /// Pinned client certificate: SHA-256 of its DER, 64 lowercase hex digits.
    /// When set, mTLS accepts only this certificate for the participant.
    pub certificate_sha256: Option<String>,
    /// Most answers to this consumer outstanding (answered, not yet acked
    /// by it) before providers' answers are refused `QuotaExceeded`
    /// (ADR 0013: each shard holds its share). Hub-made answers (expiry,
    /// dead letter) are never refused.
    pub answer_queue_messages_max: u32,
    /// Most payload bytes of answers to this consumer outstanding, as
    /// [`Participant::answer_queue_messages_max`] counts them.
    pub answer_queue_bytes_max: u64,
    /// Its registered signature keys: what its signatures are checked
    /// against (empty: it cannot sign, so a kind that requires signatures
    /// refuses everything it sends).
    pub keys: gonets_trust::KeyRing,
}

/// Whether a data kind's messages must be signed by their sender.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Signatures {
    /// A signature that is present is checked; a missing one is accepted.
    #[default]
    Optional,
    /// Requests and answers without a signature are refused `BadSignature`.
    Required,
}

/// A kind of data ("вид сведений") and the rules for requesting it.
#[derive(Clone, Debug)]
pub struct DataKind {
    /// URN of the kind.
    pub id: DataKindId,
    /// The participant that serves it.
    pub provider: ParticipantId,
    /// Async or realtime.
    pub mode: Mode,
    /// Time from acceptance to the answer, ms (48 h async, 2 s realtime by default).
    pub deadline_ms: u64,
    /// Largest request payload accepted, bytes.
    pub payload_bytes_max: u32,
    /// Consumers allowed to request it.
    pub consumers: HashSet<ParticipantId>,
    /// Most messages waiting in its request queue before `QuotaExceeded`.
    pub queue_messages_max: u32,
    /// Most payload bytes of the requests waiting in its request queue
    /// (not yet acked or answered) before `QuotaExceeded`; at least
    /// `payload_bytes_max`.
    pub queue_bytes_max: u64,
    /// What its requests' payloads must be (`InvalidFormat` otherwise).
    pub request_format: Format,
    /// What its data answers' payloads must be (`InvalidFormat` otherwise;
    /// a refusal carries no payload).
    pub answer_format: Format,
    /// Whether its requests and its providers' answers must be signed.
    pub signatures: Signatures,
    /// Largest attachment a request of it may carry, bytes (ADR 0022;
    /// 0: none may).
    pub attachment_bytes_max: u64,
}

impl DataKind {
    /// Its format for requests or for answers.
    pub fn format(&self, direction: Direction) -> &Format {
        match direction {
            Direction::Request => &self.request_format,
            Direction::Answer => &self.answer_format,
        }
    }
}

/// Default async deadline: 48 hours (Rules 963 §10).
pub const ASYNC_DEADLINE_MS_DEFAULT: u64 = 48 * 3600 * 1000;
/// Default realtime budget: 2 seconds (Rules 963 §10).
pub const REALTIME_DEADLINE_MS_DEFAULT: u64 = 2000;
/// Default largest request payload: 1 MiB.
pub const PAYLOAD_BYTES_MAX_DEFAULT: u32 = 1 << 20;
/// Default queue bound.
pub const QUEUE_MESSAGES_MAX_DEFAULT: u32 = 1_000_000;
/// Default bound of a request queue's waiting payload bytes: 64 GiB (the
/// log holds them on disk; 10 M requests of 4 KiB fit).
pub const QUEUE_BYTES_MAX_DEFAULT: u64 = 64 << 30;
/// Default bound of a consumer's outstanding answers (messages).
pub const ANSWER_QUEUE_MESSAGES_MAX_DEFAULT: u32 = 100_000;
/// Default bound of a consumer's outstanding answers' payload bytes: 1 GiB
/// (answer queues hold their payloads in memory, ADR 0003).
pub const ANSWER_QUEUE_BYTES_MAX_DEFAULT: u64 = 1 << 30;

/// The loaded registry.
#[derive(Clone, Debug, Default)]
pub struct Registry {
    participants: HashMap<ParticipantId, Participant>,
    kinds: HashMap<DataKindId, DataKind>,
}

/// Why a registry could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The file could not be read.
    #[error("cannot read registry {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The TOML does not parse or has wrong types.
    #[error("registry is not valid TOML: {0}")]
    Toml(String),
    /// The TOML parses but breaks a rule (unknown provider, duplicate id, ...).
    #[error("registry is invalid: {0}")]
    Invalid(String),
    /// A data kind's request or answer format cannot be loaded: not
    /// `"bytes"` or a schema table, a schema file that cannot be read, a
    /// schema that is not JSON or does not compile.
    #[error("registry is invalid: kind {kind}: {direction}_format: {reason}")]
    Format {
        /// The kind's id.
        kind: String,
        /// Its request format or its answer format.
        direction: Direction,
        /// What is wrong.
        reason: String,
    },
}

/// A pinned certificate fingerprint: 64 hex digits in either case, kept lowercase.
fn certificate_sha256(participant: &ParticipantId, text: &str) -> Result<String, RegistryError> {
    if text.len() != 64 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(RegistryError::Invalid(format!(
            "participant {participant}: certificate_sha256 {text:?} must be 64 hex digits \
             (the SHA-256 of the certificate's DER, without colons, e.g. \
             `openssl x509 -in cert.pem -outform der | sha256sum`)"
        )));
    }
    Ok(text.to_ascii_lowercase())
}

/// A kind's deadline, size and queue bounds: positive, and a queue's byte
/// bound no smaller than its largest request.
fn check_limits(k: &DataKind) -> Result<(), RegistryError> {
    if k.deadline_ms == 0
        || k.payload_bytes_max == 0
        || k.queue_messages_max == 0
        || k.queue_bytes_max == 0
    {
        return Err(RegistryError::Invalid(format!(
            "kind {}: deadline, size and queue bounds must be positive",
            k.id
        )));
    }
    if k.queue_bytes_max < u64::from(k.payload_bytes_max) {
        // Its largest request could never be accepted.
        return Err(RegistryError::Invalid(format!(
            "kind {}: queue_bytes_max {} is below payload_bytes_max {}",
            k.id, k.queue_bytes_max, k.payload_bytes_max
        )));
    }
    Ok(())
}

impl Registry {
    /// Builds a registry from parts, checking every cross-reference.
    pub fn new(
        participants: Vec<Participant>,
        kinds: Vec<DataKind>,
    ) -> Result<Registry, RegistryError> {
        let mut reg = Registry::default();
        let mut pins: HashMap<String, ParticipantId> = HashMap::new();
        for mut p in participants {
            if let Some(pin) = p.certificate_sha256.take() {
                let pin = certificate_sha256(&p.id, &pin)?;
                // One certificate has one CN, so a pin shared by two
                // participants would lock one of them out for good.
                if let Some(other) = pins.insert(pin.clone(), p.id.clone()) {
                    if other != p.id {
                        return Err(RegistryError::Invalid(format!(
                            "participant {}: certificate_sha256 already pinned by {other}",
                            p.id
                        )));
                    }
                }
                p.certificate_sha256 = Some(pin);
            }
            if p.answer_queue_messages_max == 0 || p.answer_queue_bytes_max == 0 {
                return Err(RegistryError::Invalid(format!(
                    "participant {}: answer queue bounds must be positive",
                    p.id
                )));
            }
            if reg.participants.insert(p.id.clone(), p.clone()).is_some() {
                return Err(RegistryError::Invalid(format!(
                    "participant {} twice",
                    p.id
                )));
            }
        }
        for k in kinds {
            let provider = reg.participants.get(&k.provider).ok_or_else(|| {
                RegistryError::Invalid(format!("kind {}: unknown provider {}", k.id, k.provider))
            })?;
            if !provider.roles.provider {
                return Err(RegistryError::Invalid(format!(
                    "kind {}: {} is not a provider",
                    k.id, k.provider
                )));
            }
            for c in &k.consumers {
                let p = reg.participants.get(c).ok_or_else(|| {
                    RegistryError::Invalid(format!("kind {}: unknown consumer {c}", k.id))
                })?;
                if !p.roles.consumer {
                    return Err(RegistryError::Invalid(format!(
                        "kind {}: {c} is not a consumer",
                        k.id
                    )));
                }
            }
            check_limits(&k)?;
            if reg.kinds.insert(k.id.clone(), k.clone()).is_some() {
                return Err(RegistryError::Invalid(format!("kind {} twice", k.id)));
            }
        }
        Ok(reg)
    }

    /// Loads a registry from a TOML file; a kind's `json_schema_file` is
    /// read relative to the file's directory.
    pub fn from_file(path: &Path) -> Result<Registry, RegistryError> {
        let text = std::fs::read_to_string(path).map_err(|source| RegistryError::Io {
            path: path.display().to_string(),
            source,
        })?;
        let dir = path.parent().unwrap_or(Path::new("."));
        crate::registry_toml::parse(&text, dir)
    }

    /// Parses a registry from TOML text; a kind's `json_schema_file`, if
    /// any, is read relative to the current directory.
    pub fn from_toml(text: &str) -> Result<Registry, RegistryError> {
        crate::registry_toml::parse(text, Path::new("."))
    }

    /// The embedded demo registry.
    pub fn embedded_default() -> Registry {
        Registry::from_toml(include_str!("../registry.default.toml"))
            .expect("the embedded registry is valid")
    }

    /// A participant by id.
    pub fn participant(&self, id: &ParticipantId) -> Option<&Participant> {
        self.participants.get(id)
    }

    /// A participant by id text.
    pub fn participant_by_name(&self, id: &str) -> Option<&Participant> {
        self.participants.get(&ParticipantId::new(id))
    }

    /// A data kind by id.
    pub fn kind(&self, id: &DataKindId) -> Option<&DataKind> {
        self.kinds.get(id)
    }

    /// Every participant.
    pub fn participants(&self) -> impl Iterator<Item = &Participant> {
        self.participants.values()
    }

    /// Every data kind.
    pub fn kinds(&self) -> impl Iterator<Item = &DataKind> {
        self.kinds.values()
    }
}
