//! rustls configurations for the hub (server) and participants (clients).
//!
//! Both sides use the ring provider explicitly, offer TLS 1.3 and 1.2, and
//! negotiate ALPN [`ALPN_PROTOCOL`]. The server requires a client certificate
//! chaining to the client CA; who the client *is* is decided afterwards by
//! [`super::authenticate`].

use super::{pem, TlsError, ALPN_PROTOCOL};
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, ServerConfig, SupportedProtocolVersion};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The files the hub needs to serve mutual TLS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerTlsFiles {
    /// The server certificate chain (PEM), leaf first.
    pub cert: PathBuf,
    /// The server certificate's private key (PEM).
    pub key: PathBuf,
    /// The CA (PEM) that client certificates must chain to.
    pub client_ca: PathBuf,
}

/// The files a participant needs to connect with mutual TLS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientTlsFiles {
    /// The CA (PEM) that the server certificate must chain to.
    pub ca: PathBuf,
    /// The participant's certificate chain (PEM), leaf first.
    pub cert: PathBuf,
    /// The participant's private key (PEM).
    pub key: PathBuf,
}

/// TLS 1.3 first; 1.2 stays for participants whose stacks lack 1.3.
static VERSIONS: &[&SupportedProtocolVersion] = &[&rustls::version::TLS13, &rustls::version::TLS12];

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A server configuration that requires and verifies client certificates.
pub fn server_config(files: &ServerTlsFiles) -> Result<Arc<ServerConfig>, TlsError> {
    let roots = Arc::new(pem::trust_anchors(&files.client_ca)?);
    let certs = pem::certificates(&files.cert)?;
    let key = pem::private_key(&files.key)?;
    let provider = provider();
    let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider.clone())
        .build()
        .map_err(|e| TlsError::TrustAnchor {
            path: files.client_ca.clone(),
            reason: e.to_string(),
        })?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(VERSIONS)
        .map_err(TlsError::Config)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .map_err(|source| TlsError::CertificateKey {
            cert: files.cert.clone(),
            key: files.key.clone(),
            source,
        })?;
    config.alpn_protocols = vec![ALPN_PROTOCOL.to_vec()];
    Ok(Arc::new(config))
}

/// A client configuration that trusts `files.ca` and presents `files.cert`.
pub fn client_config(files: &ClientTlsFiles) -> Result<Arc<ClientConfig>, TlsError> {
    let certs = pem::certificates(&files.cert)?;
    let key = pem::private_key(&files.key)?;
    let mut config = client_builder(&files.ca)?
        .with_client_auth_cert(certs, key)
        .map_err(|source| TlsError::CertificateKey {
            cert: files.cert.clone(),
            key: files.key.clone(),
            source,
        })?;
    config.alpn_protocols = vec![ALPN_PROTOCOL.to_vec()];
    Ok(Arc::new(config))
}

/// A client configuration that trusts `ca` but presents no certificate (the hub refuses it).
pub fn client_config_without_identity(ca: &Path) -> Result<Arc<ClientConfig>, TlsError> {
    let mut config = client_builder(ca)?.with_no_client_auth();
    config.alpn_protocols = vec![ALPN_PROTOCOL.to_vec()];
    Ok(Arc::new(config))
}

type ClientBuilderWantsIdentity =
    rustls::ConfigBuilder<ClientConfig, rustls::client::WantsClientCert>;

fn client_builder(ca: &Path) -> Result<ClientBuilderWantsIdentity, TlsError> {
    let roots = pem::trust_anchors(ca)?;
    Ok(ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(VERSIONS)
        .map_err(TlsError::Config)?
        .with_root_certificates(roots))
}
