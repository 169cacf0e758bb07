//! Who a verified peer is: its certificate's Common Name and fingerprint,
//! and the rule that maps them to a registered participant.

use super::TlsError;
use gonets_engine::registry::Registry;
use gonets_types::error::HubError;
use gonets_types::ids::ParticipantId;
use sha2::{Digest, Sha256};
use std::fmt::Write;

/// What a peer's leaf certificate says about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerIdentity {
    /// The subject Common Name: by the hub's rule, the participant id.
    pub common_name: String,
    /// SHA-256 of the leaf certificate's DER, 64 lowercase hex digits.
    pub fingerprint_sha256: String,
}

/// The identity of the client on a server connection whose handshake completed.
pub fn peer_identity(conn: &rustls::ServerConnection) -> Result<PeerIdentity, TlsError> {
    // rustls puts the leaf first and has already verified the chain.
    match conn.peer_certificates().and_then(|chain| chain.first()) {
        Some(leaf) => identity_of_der(leaf.as_ref()),
        None => Err(TlsError::NoPeerCertificate),
    }
}

/// The identity in one DER-encoded X.509 certificate.
pub fn identity_of_der(der: &[u8]) -> Result<PeerIdentity, TlsError> {
    let (rest, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| TlsError::BadCertificate(e.to_string()))?;
    if !rest.is_empty() {
        return Err(TlsError::BadCertificate(format!(
            "{} bytes after the certificate",
            rest.len()
        )));
    }
    let mut names = cert.subject().iter_common_name();
    let common_name = match (names.next(), names.next()) {
        (Some(cn), None) => cn
            .as_str()
            .map_err(|e| TlsError::NoCommonName(format!("the Common Name is not text ({e})")))?,
        (None, _) => return Err(TlsError::NoCommonName("the subject has none".into())),
        // Two CNs would make the participant ambiguous.
        (Some(_), Some(_)) => {
            return Err(TlsError::NoCommonName(
                "the subject has more than one".into(),
            ))
        }
    };
    if common_name.is_empty() {
        return Err(TlsError::NoCommonName("it is empty".into()));
    }
    Ok(PeerIdentity {
        common_name: common_name.to_string(),
        fingerprint_sha256: sha256_hex(der),
    })
}

/// The participant a verified peer is: the registered participant named by
/// the certificate's Common Name, whose pinned fingerprint (if any) matches.
pub fn authenticate(
    registry: &Registry,
    identity: &PeerIdentity,
) -> Result<ParticipantId, HubError> {
    let Some(participant) = registry.participant_by_name(&identity.common_name) else {
        tracing::info!(
            common_name = %identity.common_name,
            "refused a client certificate: no such participant in the registry"
        );
        return Err(HubError::Unauthenticated);
    };
    if let Some(pinned) = participant.certificate_sha256.as_deref() {
        // Fingerprints are public, so a plain comparison leaks nothing secret.
        if pinned != identity.fingerprint_sha256 {
            tracing::info!(
                participant = %participant.id,
                fingerprint = %identity.fingerprint_sha256,
                "refused a client certificate: it is not the one pinned in the registry"
            );
            return Err(HubError::Unauthenticated);
        }
    }
    Ok(participant.id.clone())
}

/// SHA-256 of `bytes`, lowercase hex.
pub(super) fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut hex = String::with_capacity(2 * digest.len());
    for byte in digest.iter() {
        // Writing to a String cannot fail.
        let _ = write!(hex, "{byte:02x}");
    }
    hex
}
