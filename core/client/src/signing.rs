//! Signing what a session sends (docs/adr/0019): with a
//! [`SigningKey`] in its [`crate::ClientConfig`], every send, call and
//! answer carries its sender's signature over its digest, and a batch one
//! signature over its batch digest.

use gonets_trust::{answer_digest, batch_digest, request_digest, sign_digest, Signer};
use gonets_types::{AnswerBody, Command, ParticipantId};
use std::sync::Arc;

/// A participant's registered key a session signs with.
#[derive(Clone)]
pub struct SigningKey {
    /// The key's id in the registry (`keys = [{ id = ... }]`).
    pub key_id: String,
    /// The private key.
    pub signer: Arc<dyn Signer>,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key itself.
        f.debug_struct("SigningKey")
            .field("key_id", &self.key_id)
            .finish()
    }
}

/// `command` signed with `key` as `sender` sends it; a command that
/// carries no signature (or one already signed) as it is.
pub(crate) fn signed(command: Command, sender: &ParticipantId, key: &SigningKey) -> Command {
    let digest = match &command {
        Command::SendRequest(r) | Command::Call(r) => request_digest(sender, r),
        Command::SendRequests(rs) => {
            let digests: Vec<_> = rs.iter().map(|r| request_digest(sender, r)).collect();
            batch_digest(&digests)
        }
        Command::SendResponse {
            request_id,
            payload,
            attachments,
        } => answer_digest(sender, *request_id, &AnswerBody::Data, payload, attachments),
        Command::SendRefusal {
            request_id,
            code,
            reason,
        } => {
            let body = AnswerBody::Refusal {
                code: *code,
                reason: reason.clone(),
            };
            answer_digest(sender, *request_id, &body, &[], &[])
        }
        _ => return command,
    };
    let signature = sign_digest(key.signer.as_ref(), &key.key_id, &digest);
    command.signed(signature)
}
