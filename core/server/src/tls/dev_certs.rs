//! A local development PKI: one CA, one server certificate, one client
//! certificate per participant, written as PEM files in a fixed layout:
//!
//! ```text
//! <dir>/ca.pem  ca.key  server.pem  server.key
//! <dir>/clients/<ID>.pem  <ID>.key
//! ```
//!
//! Every call makes a fresh CA and overwrites all of these files, so a
//! directory is always one consistent set; certificates issued by an earlier
//! call stop being trusted. Client files of participants not named in a later
//! call are left in place (and are then signed by a CA nobody trusts).
//!
//! Each file is written durably (temporary file, sync, rename, directory
//! sync), and `ca.pem` is removed first and written last: after a crash or
//! power loss at any moment a directory holding `ca.pem` holds one whole
//! set, and one without it is incomplete and made afresh by the next start
//! ([`DevCerts::is_complete`]), never a mix of two sets or an empty file.

use super::identity::sha256_hex;
use super::{io_error, ClientTlsFiles, ServerTlsFiles, TlsError};
use gonets_storage::durable_file;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256,
};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// Subject Common Name of the development CA, before its key digest.
const CA_COMMON_NAME: &str = "gonets development CA";
/// Subject Organization of every development certificate.
const ORGANIZATION: &str = "gonets development";
/// Tolerated clock skew between the machines: certificates start this early.
const CLOCK_SKEW: Duration = Duration::from_secs(3600);
/// How long development certificates stay valid.
const VALIDITY: Duration = Duration::from_secs(2 * 365 * 24 * 3600);

/// The files of one participant's client certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientFiles {
    /// The participant id, also the certificate's subject Common Name.
    pub participant: String,
    /// The certificate (PEM).
    pub cert: PathBuf,
    /// Its private key (PEM, mode 0600).
    pub key: PathBuf,
}

/// Where [`make_dev_certs`] wrote everything.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DevCerts {
    /// The directory holding the set.
    pub dir: PathBuf,
    /// The CA certificate (PEM): trusted by the hub for clients and by clients for the hub.
    pub ca_cert: PathBuf,
    /// The CA private key (PEM, mode 0600).
    pub ca_key: PathBuf,
    /// The server certificate (PEM).
    pub server_cert: PathBuf,
    /// The server private key (PEM, mode 0600).
    pub server_key: PathBuf,
    /// One entry per participant, in the order given.
    pub clients: Vec<ClientFiles>,
}

impl DevCerts {
    /// Where a set for `participants` lives under `dir` (the files may not exist).
    pub fn layout(dir: &Path, participants: &[&str]) -> DevCerts {
        let clients_dir = dir.join("clients");
        DevCerts {
            dir: dir.to_path_buf(),
            ca_cert: dir.join("ca.pem"),
            ca_key: dir.join("ca.key"),
            server_cert: dir.join("server.pem"),
            server_key: dir.join("server.key"),
            clients: participants
                .iter()
                .map(|id| ClientFiles {
                    participant: id.to_string(),
                    cert: clients_dir.join(format!("{id}.pem")),
                    key: clients_dir.join(format!("{id}.key")),
                })
                .collect(),
        }
    }

    /// True when every file of the set exists (`ca.pem`, written last,
    /// marks a set whose every other file is durable).
    pub fn is_complete(&self) -> bool {
        [&self.ca_cert, &self.server_cert, &self.server_key]
            .iter()
            .all(|p| p.exists())
            && self
                .clients
                .iter()
                .all(|c| c.cert.exists() && c.key.exists())
    }

    /// The client files of `participant`, if it was issued a certificate.
    pub fn client(&self, participant: &str) -> Option<&ClientFiles> {
        self.clients.iter().find(|c| c.participant == participant)
    }

    /// The files the hub serves with: its certificate, and this CA for clients.
    pub fn server_files(&self) -> ServerTlsFiles {
        ServerTlsFiles {
            cert: self.server_cert.clone(),
            key: self.server_key.clone(),
            client_ca: self.ca_cert.clone(),
        }
    }

    /// The files `participant` connects with, if it was issued a certificate.
    pub fn client_files(&self, participant: &str) -> Option<ClientTlsFiles> {
        self.client(participant).map(|c| ClientTlsFiles {
            ca: self.ca_cert.clone(),
            cert: c.cert.clone(),
            key: c.key.clone(),
        })
    }
}

/// Writes a fresh development CA, server certificate and per-participant client certificates to `dir`.
///
/// `server_names` become the server certificate's SANs (an IP address text
/// becomes an IP SAN); at least one is required. Overwrites an existing set.
pub fn make_dev_certs(
    dir: &Path,
    participants: &[&str],
    server_names: &[&str],
) -> Result<DevCerts, TlsError> {
    check_participants(participants)?;
    let Some(server_cn) = server_names.first() else {
        return Err(TlsError::InvalidName {
            name: String::new(),
            reason: "no server name given; pass at least one, e.g. \"localhost\"".into(),
        });
    };
    let clients_dir = dir.join("clients");
    for d in [dir, &clients_dir] {
        durable_file::create_dir_all(d).map_err(io_error("create directory", d))?;
    }

    let ca_key = new_key("the CA key")?;
    // Two dev CAs with one name would be confused by verifiers (a foreign
    // certificate then fails as a bad signature rather than an unknown
    // issuer), so each name carries a digest of its own key.
    let ca_name = format!(
        "{CA_COMMON_NAME} {}",
        &sha256_hex(ca_key.public_key_raw())[..16]
    );
    let mut ca_params = params(&ca_name, Vec::new(), "the CA certificate")?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca_params
        .self_signed(&ca_key)
        .map_err(generate("the CA certificate"))?;
    let issuer = Issuer::new(ca_params, ca_key);

    let names = server_names.iter().map(|n| n.to_string()).collect();
    let server = issue(
        &issuer,
        server_cn,
        names,
        ExtendedKeyUsagePurpose::ServerAuth,
    )?;

    let set = DevCerts::layout(dir, participants);
    // Until the new set is whole, no `ca.pem` says it is (see the module doc).
    durable_file::remove_file(&set.ca_cert).map_err(io_error("remove", &set.ca_cert))?;
    write_secret(&set.ca_key, &issuer.key().serialize_pem())?;
    write_public(&set.server_cert, &server.cert.pem())?;
    write_secret(&set.server_key, &server.key.serialize_pem())?;
    for files in &set.clients {
        let client = issue(
            &issuer,
            &files.participant,
            Vec::new(),
            ExtendedKeyUsagePurpose::ClientAuth,
        )?;
        write_public(&files.cert, &client.cert.pem())?;
        write_secret(&files.key, &client.key.serialize_pem())?;
    }
    write_public(&set.ca_cert, &ca_cert.pem())?;
    Ok(set)
}

/// A leaf certificate and its key.
struct Issued {
    cert: rcgen::Certificate,
    key: KeyPair,
}

/// Issues a leaf for `common_name`, usable only for `purpose`.
fn issue(
    issuer: &Issuer<'_, KeyPair>,
    common_name: &str,
    subject_alt_names: Vec<String>,
    purpose: ExtendedKeyUsagePurpose,
) -> Result<Issued, TlsError> {
    let what = format!("the certificate for {common_name:?}");
    let key = new_key(&what)?;
    let mut params = params(common_name, subject_alt_names, &what)?;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![purpose];
    params.use_authority_key_identifier_extension = true;
    let cert = params.signed_by(&key, issuer).map_err(generate(&what))?;
    Ok(Issued { cert, key })
}

/// Parameters with the subject, SANs and validity every certificate here shares.
fn params(
    common_name: &str,
    subject_alt_names: Vec<String>,
    what: &str,
) -> Result<CertificateParams, TlsError> {
    let mut params =
        CertificateParams::new(subject_alt_names).map_err(|e| TlsError::InvalidName {
            name: common_name.to_string(),
            reason: format!("{e}; server names must be DNS names or IP addresses"),
        })?;
    let mut subject = DistinguishedName::new();
    subject.push(DnType::CommonName, common_name);
    subject.push(DnType::OrganizationName, ORGANIZATION);
    params.distinguished_name = subject;
    let now = SystemTime::now();
    params.not_before = now.checked_sub(CLOCK_SKEW).unwrap_or(now).into();
    let Some(not_after) = now.checked_add(VALIDITY) else {
        return Err(TlsError::InvalidName {
            name: what.to_string(),
            reason: "the system clock is too far in the future for a validity period".into(),
        });
    };
    params.not_after = not_after.into();
    Ok(params)
}

fn new_key(what: &str) -> Result<KeyPair, TlsError> {
    KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(generate(what))
}

fn generate(what: &str) -> impl FnOnce(rcgen::Error) -> TlsError + '_ {
    move |source| TlsError::Generate {
        what: what.to_string(),
        source,
    }
}

/// Participant ids become file names and Common Names: they must be
/// non-empty printable ASCII (the registry's rule), must not leave
/// `clients/` or hide as dot-files, and must not repeat.
fn check_participants(participants: &[&str]) -> Result<(), TlsError> {
    for (i, id) in participants.iter().enumerate() {
        let refuse = |reason: &str| {
            Err(TlsError::InvalidName {
                name: id.to_string(),
                reason: reason.to_string(),
            })
        };
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_graphic()) {
            return refuse("a participant id must be non-empty ASCII without whitespace");
        }
        if id.contains(['/', '\\']) || id.starts_with('.') {
            return refuse("a participant id must not contain '/' or '\\' nor start with '.'");
        }
        if participants[..i].contains(id) {
            return refuse("participant given twice; list each id once");
        }
    }
    Ok(())
}

fn write_public(path: &Path, text: &str) -> Result<(), TlsError> {
    durable_file::write(path, text.as_bytes(), 0o644).map_err(io_error("write", path))
}

/// Written 0600 from the first byte, so a key is never readable by others.
fn write_secret(path: &Path, text: &str) -> Result<(), TlsError> {
    durable_file::write(path, text.as_bytes(), 0o600).map_err(io_error("write", path))
}
