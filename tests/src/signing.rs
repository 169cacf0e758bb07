//! Signed traffic for the kill tests (issue 18, docs/adr/0019): the
//! embedded registry with a key for every participant and every kind
//! requiring signatures, each participant's key (derived from its id: test
//! keys, never real ones), and signed commands.

use gonets_engine::Registry;
use gonets_trust::{answer_digest, request_digest, sign_digest, Ed25519Signer, Signer};
use gonets_types::{
    AnswerBody, Command, Message, MessageId, NewRequest, ParticipantId, RefusalCode,
};

/// The id of every participant's one key.
pub const KEY_ID: &str = "test-1";

/// Participant `id`'s key.
pub fn key_of(id: &str) -> Ed25519Signer {
    let seed = gonets_trust::payload_digest(format!("gonets test key {id}").as_bytes());
    Ed25519Signer::from_seed(seed.as_bytes())
}

/// The embedded registry, each participant with its [`key_of`], every
/// data kind with `signatures = "required"`.
pub fn signed_registry() -> Registry {
    let text = include_str!("../../core/engine/registry.default.toml");
    let mut out = String::with_capacity(text.len() * 2);
    let mut section = "";
    // Bounded by the embedded registry's lines.
    for line in text.lines() {
        out.push_str(line);
        out.push('\n');
        if line.starts_with("[[") {
            section = if line == "[[participant]]" {
                "participant"
            } else {
                "data_kind"
            };
            continue;
        }
        let Some(id) = line
            .strip_prefix("id = \"")
            .and_then(|r| r.strip_suffix('"'))
        else {
            continue;
        };
        if section == "participant" {
            out.push_str(&format!(
                "keys = [{{ id = \"{KEY_ID}\", algorithm = \"ed25519\", public_key = \"{}\" }}]\n",
                key_of(id).public_key_base64()
            ));
        } else {
            out.push_str("signatures = \"required\"\n");
        }
    }
    Registry::from_toml(&out).expect("the signed embedded registry is valid")
}

/// `r` as `sender` signs it.
pub fn signed_request(sender: &ParticipantId, r: NewRequest) -> Command {
    let digest = request_digest(sender, &r);
    let signature = sign_digest(&key_of(sender.as_str()), KEY_ID, &digest);
    Command::SendRequest(r).signed(signature)
}

/// `sender`'s data answer to `request_id`, signed.
pub fn signed_response(sender: &ParticipantId, request_id: MessageId, payload: String) -> Command {
    let digest = answer_digest(
        sender,
        request_id,
        &AnswerBody::Data,
        payload.as_bytes(),
        &[],
    );
    let signature = sign_digest(&key_of(sender.as_str()), KEY_ID, &digest);
    Command::SendResponse {
        request_id,
        payload: payload.into(),
        attachments: Vec::new(),
    }
    .signed(signature)
}

/// `sender`'s refusal of `request_id`, signed.
pub fn signed_refusal(
    sender: &ParticipantId,
    request_id: MessageId,
    code: RefusalCode,
    reason: String,
) -> Command {
    let body = AnswerBody::Refusal {
        code,
        reason: reason.clone(),
    };
    let digest = answer_digest(sender, request_id, &body, &[], &[]);
    let signature = sign_digest(&key_of(sender.as_str()), KEY_ID, &digest);
    Command::SendRefusal {
        request_id,
        code,
        reason,
    }
    .signed(signature)
}

/// True when `m` carries its sender's signature over its digest, made
/// with the sender's [`key_of`].
pub fn signed_by_its_sender(m: &Message) -> bool {
    match (&m.digest, &m.signature) {
        (Some(digest), Some(s)) => {
            s.key_id == KEY_ID
                && key_of(m.from.as_str())
                    .verifier()
                    .verify(digest.as_bytes(), &s.bytes)
        }
        _ => false,
    }
}
