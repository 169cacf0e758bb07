//! Real mutual-TLS handshakes over loopback TCP on glommio, plus the
//! dev-certificate layout and the authentication rule.

use super::*;
use futures_lite::{AsyncReadExt, AsyncWriteExt, FutureExt};
use futures_rustls::{TlsAcceptor, TlsConnector};
use glommio::net::{TcpListener, TcpStream};
use glommio::LocalExecutorBuilder;
use gonets_engine::registry::{Registry, RegistryError};
use gonets_types::error::HubError;
use gonets_types::ids::ParticipantId;
use rustls::{ClientConfig, ServerConfig};
use rustls_pki_types::ServerName;
use std::future::Future;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::time::Duration;
use x509_parser::extensions::GeneralName;

/// Bound on every wait: a broken handshake fails the test instead of hanging it.
const WAIT: Duration = Duration::from_secs(10);
const REQUEST_BYTES: usize = 70_000;
const RESPONSE_BYTES: usize = 50_000;

fn dev_certs(dir: &tempfile::TempDir) -> DevCerts {
    make_dev_certs(dir.path(), &["MFC", "FNS"], &["localhost", "127.0.0.1"]).unwrap()
}

/// Runs `test` to completion on a fresh glommio executor on this thread.
fn on_glommio<T>(test: impl Future<Output = T>) -> T {
    LocalExecutorBuilder::default()
        .make()
        .expect("a glommio executor starts (if not, run `ulimit -l unlimited` first)")
        .run(test)
}

/// `fut`, or a panic naming `what` once [`WAIT`] has passed.
async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    let expired = async {
        glommio::timer::sleep(WAIT).await;
        panic!("{what} did not finish within {WAIT:?}")
    };
    fut.or(expired).await
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ seed)
        .collect()
}

/// What the server side saw: the peer, the ALPN protocol, the request bytes.
struct Served {
    identity: PeerIdentity,
    alpn: Option<Vec<u8>>,
    request: Vec<u8>,
}

/// One connection: the server accepts and answers, the client sends and reads.
/// Returns each side's outcome; neither side's failure stops the other.
async fn exchange(
    server: Arc<ServerConfig>,
    client: Arc<ClientConfig>,
) -> (io::Result<Served>, io::Result<Vec<u8>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let served = glommio::spawn_local(async move {
        let tcp = listener.accept().await.map_err(io::Error::from)?;
        let mut tls = TlsAcceptor::from(server).accept(tcp).await?;
        let (_, conn) = tls.get_ref();
        let identity = peer_identity(conn).map_err(io::Error::other)?;
        let alpn = conn.alpn_protocol().map(<[u8]>::to_vec);
        let mut request = vec![0; REQUEST_BYTES];
        tls.read_exact(&mut request).await?;
        tls.write_all(&pattern(RESPONSE_BYTES, 0x5a)).await?;
        tls.flush().await?;
        tls.close().await?;
        Ok(Served {
            identity,
            alpn,
            request,
        })
    });
    let answered = glommio::spawn_local(async move {
        let tcp = TcpStream::connect(addr).await.map_err(io::Error::from)?;
        let name = ServerName::try_from("localhost").unwrap();
        let mut tls = TlsConnector::from(client).connect(name, tcp).await?;
        tls.write_all(&pattern(REQUEST_BYTES, 0xa5)).await?;
        tls.flush().await?;
        let mut response = vec![0; RESPONSE_BYTES];
        tls.read_exact(&mut response).await?;
        Ok(response)
    });
    let served = within("the server side", served).await;
    let answered = within("the client side", answered).await;
    (served, answered)
}

#[test]
fn given_dev_client_cert_when_handshake_then_identity_is_participant_and_bytes_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dev_certs(&dir);
    let server = server_config(&certs.server_files()).unwrap();
    let client = client_config(&certs.client_files("MFC").unwrap()).unwrap();

    let (served, answered) = on_glommio(exchange(server, client));

    let served = served.expect("the server side succeeds");
    assert_eq!(served.identity.common_name, "MFC");
    let leaf = &pem::certificates(&certs.client("MFC").unwrap().cert).unwrap()[0];
    assert_eq!(served.identity, identity_of_der(leaf.as_ref()).unwrap());
    assert_eq!(served.alpn.as_deref(), Some(ALPN_PROTOCOL));
    assert!(served.request == pattern(REQUEST_BYTES, 0xa5));
    let response = answered.expect("the client side succeeds");
    assert!(response == pattern(RESPONSE_BYTES, 0x5a));
    let registry = Registry::embedded_default();
    assert_eq!(
        authenticate(&registry, &served.identity),
        Ok(ParticipantId::new("MFC"))
    );
}

#[test]
fn given_tls12_only_client_when_handshake_then_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dev_certs(&dir);
    let server = server_config(&certs.server_files()).unwrap();
    let files = certs.client_files("FNS").unwrap();
    let mut client =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_protocol_versions(&[&rustls::version::TLS12])
            .unwrap()
            .with_root_certificates(pem::trust_anchors(&files.ca).unwrap())
            .with_client_auth_cert(
                pem::certificates(&files.cert).unwrap(),
                pem::private_key(&files.key).unwrap(),
            )
            .unwrap();
    client.alpn_protocols = vec![ALPN_PROTOCOL.to_vec()];

    let (served, answered) = on_glommio(exchange(server, Arc::new(client)));

    assert_eq!(served.unwrap().identity.common_name, "FNS");
    answered.unwrap();
}

#[test]
fn given_no_client_certificate_when_handshake_then_server_refuses_and_client_sees_error() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dev_certs(&dir);
    let server = server_config(&certs.server_files()).unwrap();
    let client = client_config_without_identity(&certs.ca_cert).unwrap();

    let (served, answered) = on_glommio(exchange(server, client));

    let refused = served.err().expect("the server refuses the handshake");
    assert!(
        refused.to_string().contains("certificate"),
        "server: {refused}"
    );
    let seen = answered.expect_err("the client sees the refusal on its first read or write");
    assert!(seen.to_string().contains("Certificate"), "client: {seen}");
}

#[test]
fn given_client_cert_from_other_ca_when_handshake_then_refused() {
    let hub_dir = tempfile::tempdir().unwrap();
    let hub = dev_certs(&hub_dir);
    let rogue_dir = tempfile::tempdir().unwrap();
    let rogue = dev_certs(&rogue_dir);
    let server = server_config(&hub.server_files()).unwrap();
    let mut files = rogue.client_files("MFC").unwrap();
    // It trusts the real hub, but its own certificate is from another CA.
    files.ca = hub.ca_cert.clone();
    let client = client_config(&files).unwrap();

    let (served, answered) = on_glommio(exchange(server, client));

    let refused = served.err().expect("the server refuses the handshake");
    assert!(
        refused.to_string().contains("UnknownIssuer"),
        "server: {refused}"
    );
    let seen = answered.expect_err("the client sees the refusal");
    assert!(seen.to_string().contains("alert"), "client: {seen}");
}

#[test]
fn given_server_from_other_ca_when_handshake_then_client_refuses() {
    let hub_dir = tempfile::tempdir().unwrap();
    let hub = dev_certs(&hub_dir);
    let rogue_dir = tempfile::tempdir().unwrap();
    let rogue = dev_certs(&rogue_dir);
    let server = server_config(&rogue.server_files()).unwrap();
    let client = client_config(&hub.client_files("MFC").unwrap()).unwrap();

    let (served, answered) = on_glommio(exchange(server, client));

    assert!(served.is_err(), "the server sees the client abort");
    let seen = answered.expect_err("the client refuses the server");
    assert!(seen.to_string().contains("UnknownIssuer"), "client: {seen}");
}

#[test]
fn given_dev_certs_when_made_then_layout_names_and_key_modes_hold() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dev_certs(&dir);
    let root = dir.path();
    assert_eq!(certs.ca_cert, root.join("ca.pem"));
    assert_eq!(certs.ca_key, root.join("ca.key"));
    assert_eq!(certs.server_cert, root.join("server.pem"));
    assert_eq!(certs.server_key, root.join("server.key"));
    let mfc = certs.client("MFC").unwrap();
    assert_eq!(mfc.cert, root.join("clients/MFC.pem"));
    assert_eq!(mfc.key, root.join("clients/MFC.key"));
    assert!(certs.client("MVD").is_none());

    for key in [&certs.ca_key, &certs.server_key, &mfc.key] {
        let mode = std::fs::metadata(key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", key.display());
    }
    for id in ["MFC", "FNS"] {
        let leaf = &pem::certificates(&certs.client(id).unwrap().cert).unwrap()[0];
        assert_eq!(identity_of_der(leaf.as_ref()).unwrap().common_name, id);
    }
    let server = &pem::certificates(&certs.server_cert).unwrap()[0];
    let (_, parsed) = x509_parser::parse_x509_certificate(server.as_ref()).unwrap();
    let sans = parsed.subject_alternative_name().unwrap().unwrap().value;
    assert_eq!(
        sans.general_names,
        [
            GeneralName::DNSName("localhost"),
            GeneralName::IPAddress(&[127, 0, 0, 1])
        ]
    );
}

#[test]
fn given_existing_set_when_made_again_then_overwritten_with_fresh_ca_and_private_keys() {
    let dir = tempfile::tempdir().unwrap();
    let first = dev_certs(&dir);
    let old_ca = std::fs::read(&first.ca_cert).unwrap();
    let old_mfc =
        identity_of_der(pem::certificates(&first.client("MFC").unwrap().cert).unwrap()[0].as_ref())
            .unwrap();
    std::fs::set_permissions(&first.ca_key, std::fs::Permissions::from_mode(0o644)).unwrap();

    let second = dev_certs(&dir);

    assert_eq!(first, second, "same layout");
    assert_ne!(std::fs::read(&second.ca_cert).unwrap(), old_ca);
    let new_mfc = identity_of_der(
        pem::certificates(&second.client("MFC").unwrap().cert).unwrap()[0].as_ref(),
    )
    .unwrap();
    assert_ne!(new_mfc.fingerprint_sha256, old_mfc.fingerprint_sha256);
    let mode = std::fs::metadata(&second.ca_key)
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600, "an overwritten key is private again");
    // The new set is consistent: every certificate matches its key and CA.
    server_config(&second.server_files()).unwrap();
    client_config(&second.client_files("FNS").unwrap()).unwrap();
}

#[test]
fn given_bad_participant_or_server_name_when_making_dev_certs_then_invalid_name() {
    let dir = tempfile::tempdir().unwrap();
    for participants in [
        &["../MFC"][..],
        &[""],
        &["M FC"],
        &[".hidden"],
        &["MFC", "MFC"],
    ] {
        let err = make_dev_certs(dir.path(), participants, &["localhost"]).unwrap_err();
        assert!(
            matches!(err, TlsError::InvalidName { .. }),
            "{participants:?}: {err}"
        );
    }
    let err = make_dev_certs(dir.path(), &["MFC"], &[]).unwrap_err();
    assert!(err.to_string().contains("no server name"), "{err}");
    assert!(
        !dir.path().join("clients").exists(),
        "nothing written on refusal"
    );
}

#[test]
fn given_missing_or_mismatched_files_when_building_configs_then_error_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dev_certs(&dir);

    let mut files = certs.server_files();
    files.cert = dir.path().join("absent.pem");
    let err = server_config(&files).unwrap_err();
    assert!(matches!(err, TlsError::Io { .. }), "{err}");
    assert!(err.to_string().contains("absent.pem"), "{err}");

    let mut files = certs.server_files();
    files.client_ca = certs.server_key.clone();
    let err = server_config(&files).unwrap_err();
    assert!(matches!(err, TlsError::Pem { .. }), "{err}");
    assert!(err.to_string().contains("server.key"), "{err}");

    let mut files = certs.client_files("MFC").unwrap();
    files.key = certs.client("FNS").unwrap().key.clone();
    let err = client_config(&files).unwrap_err();
    assert!(matches!(err, TlsError::CertificateKey { .. }), "{err}");
    assert!(err.to_string().contains("FNS.key"), "{err}");

    let mut files = certs.client_files("MFC").unwrap();
    files.key = certs.ca_cert.clone();
    let err = client_config(&files).unwrap_err();
    assert!(err.to_string().contains("PRIVATE KEY"), "{err}");
}

#[test]
fn given_garbage_when_identity_of_der_then_bad_certificate() {
    let err = identity_of_der(b"not a certificate").unwrap_err();
    assert!(matches!(err, TlsError::BadCertificate(_)), "{err}");
}

/// A registry where MFC pins `pin` and FNS pins nothing.
fn registry_pinning_mfc(pin: &str) -> Registry {
    Registry::from_toml(&format!(
        r#"
[[participant]]
id = "MFC"
name = "Public-service centre"
roles = ["consumer"]
certificate_sha256 = "{pin}"

[[participant]]
id = "FNS"
name = "Federal Tax Service"
roles = ["provider"]
"#
    ))
    .unwrap()
}

fn identity_of(certs: &DevCerts, participant: &str) -> PeerIdentity {
    let leaf = &pem::certificates(&certs.client(participant).unwrap().cert).unwrap()[0];
    identity_of_der(leaf.as_ref()).unwrap()
}

#[test]
fn given_unknown_common_name_when_authenticate_then_unauthenticated() {
    let dir = tempfile::tempdir().unwrap();
    let certs = make_dev_certs(dir.path(), &["ROGUE"], &["localhost"]).unwrap();
    let registry = Registry::embedded_default();
    assert_eq!(
        authenticate(&registry, &identity_of(&certs, "ROGUE")),
        Err(HubError::Unauthenticated)
    );
}

#[test]
fn given_pinned_fingerprint_mismatch_when_authenticate_then_unauthenticated() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dev_certs(&dir);
    let registry = registry_pinning_mfc(&"0".repeat(64));
    assert_eq!(
        authenticate(&registry, &identity_of(&certs, "MFC")),
        Err(HubError::Unauthenticated)
    );
    // An unpinned participant needs only the CN.
    assert_eq!(
        authenticate(&registry, &identity_of(&certs, "FNS")),
        Ok(ParticipantId::new("FNS"))
    );
}

#[test]
fn given_pinned_fingerprint_match_when_authenticate_then_participant() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dev_certs(&dir);
    let identity = identity_of(&certs, "MFC");
    assert_eq!(identity.fingerprint_sha256.len(), 64);
    // The pin may be written in upper case; the registry lowercases it.
    let registry = registry_pinning_mfc(&identity.fingerprint_sha256.to_ascii_uppercase());
    assert_eq!(
        authenticate(&registry, &identity),
        Ok(ParticipantId::new("MFC"))
    );
}

#[test]
fn given_registry_with_bad_certificate_sha256_when_loaded_then_clear_error() {
    let err = Registry::from_toml(
        "[[participant]]\nid = \"MFC\"\nname = \"x\"\nroles = [\"consumer\"]\n\
         certificate_sha256 = \"abc\"\n",
    )
    .unwrap_err();
    assert!(matches!(err, RegistryError::Invalid(_)), "{err}");
    let m = err.to_string();
    assert!(
        m.contains("MFC") && m.contains("certificate_sha256") && m.contains("64 hex digits"),
        "{m}"
    );
}

#[test]
fn given_a_remake_that_fails_midway_when_checked_then_the_set_is_incomplete_until_made_whole() {
    let dir = tempfile::tempdir().unwrap();
    let first = dev_certs(&dir);
    assert!(first.is_complete());
    // FNS's key cannot be replaced (a directory stands in its place), so a
    // remake stops after it has written part of the new set.
    let fns_key = first.client("FNS").unwrap().key.clone();
    std::fs::remove_file(&fns_key).unwrap();
    std::fs::create_dir(&fns_key).unwrap();
    assert!(make_dev_certs(dir.path(), &["MFC", "FNS"], &["localhost"]).is_err());
    assert!(
        !first.is_complete(),
        "a set mixing two CAs must not pass for complete (the next start remakes it)"
    );
    std::fs::remove_dir(&fns_key).unwrap();
    let second = dev_certs(&dir);
    assert!(second.is_complete());
    server_config(&second.server_files()).unwrap();
    client_config(&second.client_files("FNS").unwrap()).unwrap();
    let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("clients"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
