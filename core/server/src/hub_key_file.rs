//! The hub's signing key on disk (`hub.key`, 0600, and `hub.pub` beside
//! it): read, or made on a first start through the durable files
//! (`gonets_storage::durable_file`), so that a power loss while it is made
//! leaves no key, or the whole key with its public half — never an empty
//! or cut key file that would stop the next start.

use gonets_storage::durable_file;
use gonets_trust::hub_key::public_path_of;
use gonets_trust::HubKey;
use std::path::Path;

/// Reads the key at `path`, or makes one there; says whether it made it.
/// A key whose `.pub` is missing (a crash between the two writes of an
/// older version, or an operator's slip) gets it written again.
pub fn load_or_make(path: &Path) -> Result<(HubKey, bool), String> {
    let public_path = public_path_of(path);
    let io = |what: &str, p: &Path, e: std::io::Error| format!("{what} {}: {e}", p.display());
    if path.exists() {
        let key = HubKey::load(path).map_err(|e| e.to_string())?;
        if !public_path.exists() {
            let text = key.public().file_text();
            durable_file::write(&public_path, text.as_bytes(), 0o644)
                .map_err(|e| io("write", &public_path, e))?;
        }
        return Ok((key, false));
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        durable_file::create_dir_all(dir).map_err(|e| io("create directory", dir, e))?;
    }
    let (key, secret) = HubKey::generate_with_file_text();
    // The public half first: a crash before the key is written leaves no
    // key (a fresh one is made next time, and replaces this `.pub`).
    let public = key.public().file_text();
    durable_file::write(&public_path, public.as_bytes(), 0o644)
        .map_err(|e| io("write", &public_path, e))?;
    durable_file::write(path, secret.as_bytes(), 0o600).map_err(|e| io("write", path, e))?;
    Ok((key, true))
}

#[cfg(test)]
mod tests {
    use super::*;
    use gonets_trust::HubPublicKey;
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn given_no_key_file_when_loaded_or_made_then_it_is_made_once_private_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/hub.key");
        let (made, fresh) = load_or_make(&path).unwrap();
        assert!(fresh);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let (again, fresh) = load_or_make(&path).unwrap();
        assert!(!fresh);
        assert_eq!(made.key_id(), again.key_id());
        let public = HubPublicKey::load(&public_path_of(&path)).unwrap();
        assert_eq!(public.key_id, made.key_id());
        assert!(public.verifier.verify(b"m", &again.sign(b"m")));
    }

    #[test]
    fn given_a_key_without_its_public_half_when_loaded_then_the_half_is_written_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hub.key");
        let (made, _) = load_or_make(&path).unwrap();
        std::fs::remove_file(public_path_of(&path)).unwrap();
        let (again, fresh) = load_or_make(&path).unwrap();
        assert!(!fresh);
        let public = HubPublicKey::load(&public_path_of(&path)).unwrap();
        assert_eq!(
            (public.key_id.as_str(), again.key_id()),
            (made.key_id(), made.key_id())
        );
    }
}
