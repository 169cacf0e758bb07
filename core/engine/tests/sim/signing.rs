//! Signatures in the simulation (issue 18, docs/adr/0019): every
//! participant of `world::REGISTRY` has a key, two kinds require
//! signatures, and the workload signs what it sends well, badly or not at
//! all; the model predicts each `BadSignature` and its place in the door's
//! order. The command the model and the judge see stays unsigned (the
//! wrapper is put on only for the shard), with the way it was signed
//! beside it ([`SignMode`]).

use gonets_trust::{answer_digest, batch_digest, request_digest, sign_digest, Ed25519Signer};
use gonets_types::{AnswerBody, Command, ParticipantId, SenderSignature};
use rand::Rng;

/// The id of every participant's key in the simulated registry.
pub const KEY_ID: &str = "sim-1";

/// The participants of `world::REGISTRY` with a key (all but the operator).
pub const KEYED: [&str; 4] = ["MFC", "SFR", "FNS", "MVD"];

/// How a command was signed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignMode {
    /// No signature.
    Unsigned,
    /// Its sender's signature over its digest.
    Good,
    /// A signature that does not hold: another participant's key under
    /// the sender's key id, or a key id the sender does not have.
    Bad,
    /// A request of a batch whose one good signature covers it: signed,
    /// but stored without a signature of its own.
    Covered,
}

impl SignMode {
    /// The message counts as signed (a kind that requires it lets it in).
    pub fn signed(self) -> bool {
        self != SignMode::Unsigned
    }

    /// Its record carries a signature (the size rules count it).
    pub fn carries(self) -> bool {
        matches!(self, SignMode::Good | SignMode::Bad)
    }
}

/// A signature `caller` made as `mode` holds at the door: a good one by
/// a participant with a key (the operator has none, so even its "good"
/// one names a key it lacks).
pub fn holds(caller: &ParticipantId, mode: SignMode) -> bool {
    mode == SignMode::Good && KEYED.contains(&caller.as_str())
}

/// Participant `id`'s key (derived from its id).
pub fn key(id: &str) -> Ed25519Signer {
    let seed = gonets_trust::payload_digest(format!("gonets sim key {id}").as_bytes());
    Ed25519Signer::from_seed(seed.as_bytes())
}

/// `text` with `@KEY_<ID>@` replaced by each participant's public key.
pub fn with_keys(text: &str) -> String {
    let mut out = text.to_string();
    for id in KEYED {
        out = out.replace(&format!("@KEY_{id}@"), &key(id).public_key_base64());
    }
    out
}

/// How to sign a signable command of a kind that `required`: mostly well
/// where a kind requires it, mostly not at all where it does not, and
/// now and then badly or not at all where it matters.
pub fn pick(w: &mut impl Rng, required: bool) -> SignMode {
    let roll = w.gen_range(0..100);
    match (required, roll) {
        (true, 0..=79) | (false, 0..=4) => SignMode::Good,
        (true, 80..=89) | (false, 5..=7) => SignMode::Bad,
        _ => SignMode::Unsigned,
    }
}

/// `command` from `caller` as the shard gets it, signed as `mode` says.
pub fn signed(caller: &ParticipantId, command: &Command, mode: SignMode) -> Command {
    if !mode.carries() {
        return command.clone();
    }
    let digest = match command {
        Command::SendRequest(r) | Command::Call(r) => request_digest(caller, r),
        Command::SendRequests(rs) => {
            let digests: Vec<_> = rs.iter().map(|r| request_digest(caller, r)).collect();
            batch_digest(&digests)
        }
        Command::SendResponse {
            request_id,
            payload,
            attachments,
        } => answer_digest(caller, *request_id, &AnswerBody::Data, payload, attachments),
        Command::SendRefusal {
            request_id,
            code,
            reason,
        } => {
            let body = AnswerBody::Refusal {
                code: *code,
                reason: reason.clone(),
            };
            answer_digest(caller, *request_id, &body, &[], &[])
        }
        _ => return command.clone(),
    };
    let signature = match mode {
        SignMode::Good => sign_digest(&key(caller.as_str()), KEY_ID, &digest),
        // Another participant's key: "does not match".
        _ if digest.as_bytes()[0] % 2 == 0 => sign_digest(&key("OTHER"), KEY_ID, &digest),
        // A key the sender lacks: "has no key".
        _ => sign_digest(&key(caller.as_str()), "sim-9", &digest),
    };
    command.clone().signed(signature)
}

/// Bytes a signature of the simulation's keys adds to a record's seal.
pub fn signature_bytes() -> usize {
    let s = SenderSignature {
        key_id: KEY_ID.into(),
        bytes: vec![0; 64].into(),
    };
    2 + s.key_id.len() + 4 + s.bytes.len()
}
