//! Mutual TLS for the network layer: development certificates, rustls
//! configurations, and who a peer is (`docs/security.md`).
//!
//! Every connection is mutual TLS: the server presents a certificate signed by
//! the hub's CA, and each participant presents a client certificate whose
//! subject Common Name is its participant id. [`authenticate`] maps a verified
//! peer certificate to a registered participant, optionally pinned by the
//! certificate's SHA-256 fingerprint. The crypto provider is always ring,
//! installed per configuration, so nothing depends on a process-wide default.

mod config;
mod dev_certs;
mod identity;
mod pem;

#[cfg(test)]
mod tests;

pub use config::{
    client_config, client_config_without_identity, server_config, ClientTlsFiles, ServerTlsFiles,
};
pub use dev_certs::{make_dev_certs, ClientFiles, DevCerts};
pub use identity::{authenticate, identity_of_der, peer_identity, PeerIdentity};

use std::path::{Path, PathBuf};

/// The ALPN protocol id both sides negotiate.
pub const ALPN_PROTOCOL: &[u8] = b"gonets/1";

/// Why certificates could not be made or loaded, or a peer not identified.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file or directory could not be read, written or created.
    #[error("cannot {action} {}: {source}; check the path and its permissions", path.display())]
    Io {
        /// What was being done (`read`, `write`, `create directory`, ...).
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A PEM file is malformed or holds nothing of the expected kind.
    #[error(
        "{} holds no usable {expected}: {reason}; point to a PEM file with a \
         `-----BEGIN {expected}-----` block (`make_dev_certs` writes them)",
        path.display()
    )]
    Pem {
        /// The file.
        path: PathBuf,
        /// What it should hold (`CERTIFICATE`, `PRIVATE KEY`).
        expected: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A participant id or server name cannot go into a certificate or file name.
    #[error("cannot issue a certificate for {name:?}: {reason}")]
    InvalidName {
        /// The id or name given.
        name: String,
        /// Why it is refused and what to use instead.
        reason: String,
    },
    /// Generating a key or signing a certificate failed.
    #[error("cannot generate {what}: {source}")]
    Generate {
        /// What was being generated.
        what: String,
        /// The cause.
        source: rcgen::Error,
    },
    /// The CA file cannot serve as a trust anchor.
    #[error(
        "CA certificate {} is not a usable trust anchor: {reason}; \
         use the `ca.pem` written by `make_dev_certs` or your CA's certificate",
        path.display()
    )]
    TrustAnchor {
        /// The CA file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// rustls refused the certificate and key (a mismatched pair, an unsupported key).
    #[error(
        "certificate {} and key {} cannot be used together: {source}; \
         check that the key is the one issued with the certificate",
        cert.display(),
        key.display()
    )]
    CertificateKey {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// The cause.
        source: rustls::Error,
    },
    /// rustls refused a configuration gonets built (a bug, not a file problem).
    #[error("cannot build the rustls configuration: {0}; this is a gonets bug, please report it")]
    Config(rustls::Error),
    /// The peer presented no certificate, so it cannot be identified.
    #[error("the peer presented no certificate; connect with a client certificate (mutual TLS)")]
    NoPeerCertificate,
    /// A certificate could not be parsed as X.509.
    #[error("the peer certificate is not valid X.509: {0}")]
    BadCertificate(String),
    /// A certificate has no usable subject Common Name.
    #[error(
        "the peer certificate has no usable subject Common Name: {0}; \
         issue it with CN = the participant id"
    )]
    NoCommonName(String),
}

/// A [`TlsError::Io`] for `path`.
fn io_error<'a>(
    action: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> TlsError + 'a {
    move |source| TlsError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}
