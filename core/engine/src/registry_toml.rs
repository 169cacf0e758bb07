//! The registry's TOML format (`docs/registry.md`).
//!
//! The text is read into plain serde structs that reject unknown fields,
//! each entry is checked on its own (ids, roles, mode, the 2 s rule, tokens)
//! and mapped to the registry types, and [`Registry::new`] then checks every
//! cross-reference (providers, consumers, duplicate ids, positive limits) and
//! the pinned certificate fingerprints. A kind's formats are compiled here,
//! once ([`crate::format`]).

use crate::format::{Direction, Format};
use crate::registry::{
    DataKind, Mode, Participant, Registry, RegistryError, Roles, Signatures,
    ANSWER_QUEUE_BYTES_MAX_DEFAULT, ANSWER_QUEUE_MESSAGES_MAX_DEFAULT, ASYNC_DEADLINE_MS_DEFAULT,
    PAYLOAD_BYTES_MAX_DEFAULT, QUEUE_BYTES_MAX_DEFAULT, QUEUE_MESSAGES_MAX_DEFAULT,
    REALTIME_DEADLINE_MS_DEFAULT,
};
use crate::registry_keys::{key_ring, KeyEntry};
use gonets_types::ids::{DataKindId, ParticipantId};
use serde::Deserialize;
use std::collections::HashMap;
use std::path::Path;

/// The whole file: `[[participant]]` and `[[data_kind]]` tables, both optional.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RegistryFile {
    #[serde(default)]
    participant: Vec<ParticipantEntry>,
    #[serde(default)]
    data_kind: Vec<DataKindEntry>,
}

/// One `[[participant]]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ParticipantEntry {
    id: String,
    name: String,
    roles: Vec<String>,
    token: Option<String>,
    certificate_sha256: Option<String>,
    answer_queue_messages_max: Option<u32>,
    answer_queue_bytes_max: Option<u64>,
    /// Its signature keys (docs/registry.md "Signature keys").
    #[serde(default)]
    keys: Vec<KeyEntry>,
}

/// One `[[data_kind]]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DataKindEntry {
    id: String,
    provider: String,
    mode: String,
    deadline_ms: Option<u64>,
    payload_bytes_max: Option<u32>,
    queue_messages_max: Option<u32>,
    queue_bytes_max: Option<u64>,
    #[serde(default)]
    consumers: Vec<String>,
    /// `"bytes"` or a table (see [`kind_format`]); absent: `"bytes"`.
    request_format: Option<toml::Value>,
    /// As `request_format`, for data answers.
    answer_format: Option<toml::Value>,
    /// `"required"` or `"optional"` (the default).
    signatures: Option<String>,
    /// Largest attachment of a request, bytes (default 1 GiB; 0: none).
    attachment_bytes_max: Option<u64>,
}

/// Parses and validates a registry from TOML text; a `json_schema_file`
/// is read relative to `dir`.
pub(crate) fn parse(text: &str, dir: &Path) -> Result<Registry, RegistryError> {
    let file: RegistryFile =
        toml::from_str(text).map_err(|e| RegistryError::Toml(e.to_string()))?;

    let mut participants = Vec::with_capacity(file.participant.len());
    let mut token_owners: HashMap<&str, &str> = HashMap::new();
    for (i, p) in file.participant.iter().enumerate() {
        check_id(&format!("participant #{}", i + 1), "id", &p.id)?;
        if let Some(token) = p.token.as_deref() {
            if token.is_empty() {
                return Err(invalid(format!("participant {}: empty token", p.id)));
            }
            if let Some(other) = token_owners.insert(token, &p.id) {
                if other != p.id {
                    return Err(invalid(format!(
                        "participant {}: token already belongs to {other}",
                        p.id
                    )));
                }
            }
        }
        participants.push(Participant {
            id: ParticipantId::new(&p.id),
            name: p.name.clone(),
            roles: roles(&p.id, &p.roles)?,
            token: p.token.clone(),
            // Checked and lowercased by `Registry::new`.
            certificate_sha256: p.certificate_sha256.clone(),
            answer_queue_messages_max: p
                .answer_queue_messages_max
                .unwrap_or(ANSWER_QUEUE_MESSAGES_MAX_DEFAULT),
            answer_queue_bytes_max: p
                .answer_queue_bytes_max
                .unwrap_or(ANSWER_QUEUE_BYTES_MAX_DEFAULT),
            keys: key_ring(&p.id, &p.keys)?,
        });
    }

    let kinds = file
        .data_kind
        .iter()
        .enumerate()
        .map(|(i, k)| data_kind(i, k, dir))
        .collect::<Result<Vec<_>, _>>()?;
    Registry::new(participants, kinds)
}

/// The `i`th (0-based) `[[data_kind]]` entry, checked on its own, its
/// formats compiled (a `json_schema_file` read relative to `dir`).
fn data_kind(i: usize, k: &DataKindEntry, dir: &Path) -> Result<DataKind, RegistryError> {
    check_id(&format!("data kind #{}", i + 1), "id", &k.id)?;
    let entry = format!("kind {}", k.id);
    check_id(&entry, "provider", &k.provider)?;
    for c in &k.consumers {
        check_id(&entry, "consumer", c)?;
    }
    let mode = match k.mode.as_str() {
        "async" => Mode::Async,
        "realtime" => Mode::Realtime,
        other => {
            return Err(invalid(format!(
                "{entry}: unknown mode {other:?} (expected \"async\" or \"realtime\")"
            )))
        }
    };
    let deadline_ms = match (mode, k.deadline_ms) {
        (Mode::Realtime, Some(ms)) if ms > REALTIME_DEADLINE_MS_DEFAULT => {
            return Err(invalid(format!(
                "{entry}: realtime deadline_ms {ms} exceeds {REALTIME_DEADLINE_MS_DEFAULT} \
                 (the 2 s rule, Rules 963 §10)"
            )))
        }
        (_, Some(ms)) => ms,
        (Mode::Async, None) => ASYNC_DEADLINE_MS_DEFAULT,
        (Mode::Realtime, None) => REALTIME_DEADLINE_MS_DEFAULT,
    };
    let signatures = match k.signatures.as_deref() {
        None | Some("optional") => Signatures::Optional,
        Some("required") => Signatures::Required,
        Some(other) => {
            return Err(invalid(format!(
                "{entry}: unknown signatures {other:?} (expected \"required\" or \"optional\")"
            )))
        }
    };
    Ok(DataKind {
        id: DataKindId::new(&k.id),
        provider: ParticipantId::new(&k.provider),
        mode,
        deadline_ms,
        payload_bytes_max: k.payload_bytes_max.unwrap_or(PAYLOAD_BYTES_MAX_DEFAULT),
        consumers: k.consumers.iter().map(|c| ParticipantId::new(c)).collect(),
        queue_messages_max: k.queue_messages_max.unwrap_or(QUEUE_MESSAGES_MAX_DEFAULT),
        queue_bytes_max: k.queue_bytes_max.unwrap_or(QUEUE_BYTES_MAX_DEFAULT),
        request_format: kind_format(&k.id, Direction::Request, k.request_format.as_ref(), dir)?,
        answer_format: kind_format(&k.id, Direction::Answer, k.answer_format.as_ref(), dir)?,
        signatures,
        attachment_bytes_max: k
            .attachment_bytes_max
            .unwrap_or(gonets_types::ATTACHMENT_BYTES_MAX_DEFAULT),
    })
}

/// A kind's `request_format` or `answer_format`: absent or `"bytes"`
/// (no check), `{ json_schema = "<JSON text>" }` or `{ json_schema_file =
/// "<path>" }` (relative to `dir`), compiled here once.
fn kind_format(
    kind: &str,
    direction: Direction,
    value: Option<&toml::Value>,
    dir: &Path,
) -> Result<Format, RegistryError> {
    let refused = |reason: String| RegistryError::Format {
        kind: kind.to_string(),
        direction,
        reason,
    };
    let table = match value {
        None => return Ok(Format::Bytes),
        Some(toml::Value::String(name)) if name == "bytes" => return Ok(Format::Bytes),
        Some(toml::Value::Table(table)) if table.len() == 1 => table,
        Some(other) => {
            return Err(refused(format!(
                "{other} is not a format (expected \"bytes\", {{ json_schema = \"...\" }} \
                 or {{ json_schema_file = \"...\" }})"
            )))
        }
    };
    let (key, value) = table.iter().next().expect("one entry");
    let Some(text) = value.as_str() else {
        return Err(refused(format!("{key} must be a string")));
    };
    let schema = match key.as_str() {
        "json_schema" => text.to_string(),
        "json_schema_file" => {
            let path = dir.join(text);
            std::fs::read_to_string(&path)
                .map_err(|e| refused(format!("cannot read {}: {e}", path.display())))?
        }
        other => {
            return Err(refused(format!(
                "unknown key {other:?} (expected json_schema or json_schema_file)"
            )))
        }
    };
    Format::json_schema(&schema).map_err(|e| refused(e.to_string()))
}

fn invalid(message: String) -> RegistryError {
    RegistryError::Invalid(message)
}

/// An id (or a reference to one) must be non-empty printable ASCII: no
/// whitespace, no control characters.
fn check_id(entry: &str, field: &str, id: &str) -> Result<(), RegistryError> {
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(invalid(format!(
            "{entry}: {field} {id:?} must be non-empty ASCII without whitespace"
        )));
    }
    Ok(())
}

/// Maps role names to [`Roles`]; at least one role, repeats are harmless.
fn roles(participant: &str, names: &[String]) -> Result<Roles, RegistryError> {
    if names.is_empty() {
        return Err(invalid(format!("participant {participant}: no roles")));
    }
    let mut roles = Roles::default();
    for name in names {
        match name.as_str() {
            "consumer" => roles.consumer = true,
            "provider" => roles.provider = true,
            "operator" => roles.operator = true,
            other => {
                return Err(invalid(format!(
                    "participant {participant}: unknown role {other:?} \
                     (expected \"consumer\", \"provider\" or \"operator\")"
                )))
            }
        }
    }
    Ok(roles)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Signatures;

    const DEFAULT: &str = include_str!("../registry.default.toml");

    /// FNS (provider and consumer) and MFC (consumer only), then `{extra}`.
    fn base(extra: &str) -> String {
        format!(
            r#"
[[participant]]
id = "FNS"
name = "Federal Tax Service"
roles = ["provider", "consumer"]
token = "dev-fns"

[[participant]]
id = "MFC"
name = "Public-service centre"
roles = ["consumer"]

{extra}
"#
        )
    }

    fn parse(text: &str) -> Result<Registry, RegistryError> {
        super::parse(text, Path::new("."))
    }

    fn invalid_message(text: &str) -> String {
        match parse(text) {
            Err(RegistryError::Invalid(m)) => m,
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    fn toml_message(text: &str) -> String {
        match parse(text) {
            Err(RegistryError::Toml(m)) => m,
            other => panic!("expected Toml, got {other:?}"),
        }
    }

    fn format_error(text: &str) -> (String, Direction, String) {
        match parse(text) {
            Err(RegistryError::Format {
                kind,
                direction,
                reason,
            }) => (kind, direction, reason),
            other => panic!("expected Format, got {other:?}"),
        }
    }

    /// A kind of FNS that MFC may request, with `formats` (TOML lines).
    fn kind_with(formats: &str) -> String {
        base(&format!(
            "[[data_kind]]\nid = \"urn:test:1\"\nprovider = \"FNS\"\nmode = \"async\"\n\
             consumers = [\"MFC\"]\n{formats}\n"
        ))
    }

    fn kind<'a>(reg: &'a Registry, id: &str) -> &'a DataKind {
        reg.kind(&DataKindId::new(id)).expect("kind present")
    }

    #[test]
    fn given_embedded_default_when_parsed_then_every_entry_loaded() {
        let reg = parse(DEFAULT).expect("default parses");
        assert!(reg.participants().count() >= 5);
        assert!(reg.kinds().count() >= 4);
        for p in reg.participants() {
            let want = format!("dev-{}", p.id.as_str().to_ascii_lowercase());
            assert_eq!(p.token.as_deref(), Some(want.as_str()), "{}", p.id);
        }

        let egrul = kind(&reg, "urn:gonets:fns:egrul-extract:1");
        assert_eq!(egrul.provider.as_str(), "FNS");
        assert_eq!(egrul.mode, Mode::Async);
        assert_eq!(egrul.deadline_ms, ASYNC_DEADLINE_MS_DEFAULT);
        assert!(egrul.consumers.contains(&ParticipantId::new("MFC")));

        let passport = kind(&reg, "urn:gonets:mvd:passport-validity:1");
        assert_eq!(passport.provider.as_str(), "MVD");
        assert_eq!(passport.mode, Mode::Realtime);
        assert!(passport.deadline_ms <= REALTIME_DEADLINE_MS_DEFAULT);

        let mfc = reg.participant_by_name("MFC").expect("MFC");
        assert_eq!(
            mfc.roles,
            Roles {
                consumer: true,
                ..Roles::default()
            }
        );
        let op = reg.participant_by_name("OPERATOR").expect("OPERATOR");
        assert!(op.roles.operator);
    }

    #[test]
    fn given_embedded_default_when_loaded_through_registry_then_same() {
        let reg = Registry::embedded_default();
        assert_eq!(
            reg.kinds().count(),
            parse(DEFAULT).expect("parses").kinds().count()
        );
    }

    #[test]
    fn given_optional_fields_omitted_when_parsed_then_defaults_applied() {
        let reg = parse(&base(
            r#"
[[data_kind]]
id = "urn:test:async:1"
provider = "FNS"
mode = "async"
consumers = ["MFC"]

[[data_kind]]
id = "urn:test:rt:1"
provider = "FNS"
mode = "realtime"
"#,
        ))
        .expect("parses");
        let a = kind(&reg, "urn:test:async:1");
        assert_eq!(a.mode, Mode::Async);
        assert_eq!(a.deadline_ms, ASYNC_DEADLINE_MS_DEFAULT);
        assert_eq!(a.deadline_ms, 172_800_000);
        assert_eq!(a.payload_bytes_max, PAYLOAD_BYTES_MAX_DEFAULT);
        assert_eq!(a.queue_messages_max, QUEUE_MESSAGES_MAX_DEFAULT);
        assert_eq!(a.queue_bytes_max, QUEUE_BYTES_MAX_DEFAULT);
        assert_eq!(a.consumers.len(), 1);
        let r = kind(&reg, "urn:test:rt:1");
        assert_eq!(r.mode, Mode::Realtime);
        assert_eq!(r.deadline_ms, REALTIME_DEADLINE_MS_DEFAULT);
        assert!(r.consumers.is_empty());
        let mfc = reg.participant_by_name("MFC").expect("MFC");
        assert_eq!(mfc.token, None, "token is optional");
        assert_eq!(
            (mfc.answer_queue_messages_max, mfc.answer_queue_bytes_max),
            (
                ANSWER_QUEUE_MESSAGES_MAX_DEFAULT,
                ANSWER_QUEUE_BYTES_MAX_DEFAULT
            )
        );
    }

    #[test]
    fn given_queue_and_answer_queue_bounds_when_parsed_then_kept_and_checked() {
        let reg = parse(
            r#"
[[participant]]
id = "FNS"
name = "Federal Tax Service"
roles = ["provider", "consumer"]
answer_queue_messages_max = 7
answer_queue_bytes_max = 4096

[[data_kind]]
id = "urn:test:async:1"
provider = "FNS"
mode = "async"
payload_bytes_max = 1000
queue_bytes_max = 5000
"#,
        )
        .expect("parses");
        assert_eq!(kind(&reg, "urn:test:async:1").queue_bytes_max, 5000);
        let fns = reg.participant_by_name("FNS").expect("FNS");
        assert_eq!(
            (fns.answer_queue_messages_max, fns.answer_queue_bytes_max),
            (7, 4096)
        );
        let m = invalid_message(&base(
            "[[data_kind]]\nid = \"urn:test:1\"\nprovider = \"FNS\"\nmode = \"async\"\n\
             payload_bytes_max = 1000\nqueue_bytes_max = 999\n",
        ));
        assert!(
            m.contains("queue_bytes_max 999 is below payload_bytes_max 1000"),
            "{m}"
        );
        for zero in [
            "answer_queue_messages_max = 0",
            "answer_queue_bytes_max = 0",
        ] {
            let m = invalid_message(&format!(
                "[[participant]]\nid = \"MFC\"\nname = \"x\"\nroles = [\"consumer\"]\n{zero}\n"
            ));
            assert!(
                m.contains("MFC") && m.contains("must be positive"),
                "{zero}: {m}"
            );
        }
    }

    #[test]
    fn given_explicit_limits_when_parsed_then_kept() {
        let reg = parse(&base(
            r#"
[[data_kind]]
id = "urn:test:rt:1"
provider = "FNS"
mode = "realtime"
deadline_ms = 2000
payload_bytes_max = 4096
queue_messages_max = 10
consumers = ["MFC", "FNS", "MFC"]
"#,
        ))
        .expect("parses");
        let k = kind(&reg, "urn:test:rt:1");
        assert_eq!(k.deadline_ms, 2000);
        assert_eq!(k.payload_bytes_max, 4096);
        assert_eq!(k.queue_messages_max, 10);
        assert_eq!(k.consumers.len(), 2, "repeated consumers collapse");
    }

    #[test]
    fn given_empty_text_when_parsed_then_empty_registry() {
        let reg = parse("").expect("parses");
        assert_eq!(reg.participants().count(), 0);
        assert_eq!(reg.kinds().count(), 0);
    }

    #[test]
    fn given_broken_toml_when_parsed_then_toml_error_with_position() {
        let m = toml_message("[[participant]]\nid = \"FNS\"\nname = \n");
        assert!(m.contains("line 3"), "{m}");
        assert!(m.contains("column"), "{m}");
    }

    #[test]
    fn given_unknown_field_when_parsed_then_toml_error() {
        let m = toml_message(&base(
            r#"
[[data_kind]]
id = "urn:test:1"
provider = "FNS"
mode = "async"
consumer = ["MFC"]
"#,
        ));
        assert!(m.contains("consumer"), "{m}");
        let m = toml_message("[[agency]]\nid = \"X\"\n");
        assert!(m.contains("agency"), "{m}");
    }

    #[test]
    fn given_missing_or_mistyped_field_when_parsed_then_toml_error() {
        toml_message("[[participant]]\nid = \"FNS\"\nroles = [\"consumer\"]\n");
        for bad in [
            "deadline_ms = \"soon\"",
            "deadline_ms = -1",
            "payload_bytes_max = 5000000000",
        ] {
            let m = toml_message(&base(&format!(
                "[[data_kind]]\nid = \"urn:test:1\"\nprovider = \"FNS\"\nmode = \"async\"\n{bad}\n"
            )));
            assert!(m.contains("line"), "{bad}: {m}");
        }
    }

    #[test]
    fn given_unknown_role_when_parsed_then_invalid_naming_participant() {
        let m = invalid_message(
            "[[participant]]\nid = \"FNS\"\nname = \"x\"\nroles = [\"provider\", \"admin\"]\n",
        );
        assert!(m.contains("FNS") && m.contains("admin"), "{m}");
    }

    #[test]
    fn given_no_roles_when_parsed_then_invalid() {
        let m = invalid_message("[[participant]]\nid = \"FNS\"\nname = \"x\"\nroles = []\n");
        assert!(m.contains("FNS") && m.contains("no roles"), "{m}");
    }

    #[test]
    fn given_unknown_mode_when_parsed_then_invalid_naming_kind() {
        let m = invalid_message(&base(
            "[[data_kind]]\nid = \"urn:test:1\"\nprovider = \"FNS\"\nmode = \"sync\"\n",
        ));
        assert!(m.contains("urn:test:1") && m.contains("sync"), "{m}");
    }

    #[test]
    fn given_bad_participant_id_when_parsed_then_invalid() {
        // As written in TOML: empty, a space, a tab, Cyrillic, DEL.
        for id in [
            r#""""#,
            r#""F NS""#,
            r#""FNS\t""#,
            r#""ФНС""#,
            r#""FNS\u007F""#,
        ] {
            let m = invalid_message(&format!(
                "[[participant]]\nid = {id}\nname = \"x\"\nroles = [\"consumer\"]\n"
            ));
            assert!(m.contains("participant #1"), "{id:?}: {m}");
        }
    }

    #[test]
    fn given_bad_kind_id_or_reference_when_parsed_then_invalid() {
        let m = invalid_message(&base(
            "[[data_kind]]\nid = \"urn:test 1\"\nprovider = \"FNS\"\nmode = \"async\"\n",
        ));
        assert!(m.contains("data kind #1"), "{m}");
        let m = invalid_message(&base(
            "[[data_kind]]\nid = \"urn:test:1\"\nprovider = \"\"\nmode = \"async\"\n",
        ));
        assert!(m.contains("urn:test:1") && m.contains("provider"), "{m}");
        let m = invalid_message(&base(
            "[[data_kind]]\nid = \"urn:test:1\"\nprovider = \"FNS\"\nmode = \"async\"\n\
             consumers = [\" MFC\"]\n",
        ));
        assert!(m.contains("urn:test:1") && m.contains("consumer"), "{m}");
    }

    #[test]
    fn given_realtime_deadline_over_2s_when_parsed_then_invalid() {
        let m = invalid_message(&base(
            "[[data_kind]]\nid = \"urn:test:rt:1\"\nprovider = \"FNS\"\nmode = \"realtime\"\n\
             deadline_ms = 2001\n",
        ));
        assert!(m.contains("urn:test:rt:1") && m.contains("2001"), "{m}");
    }

    #[test]
    fn given_async_deadline_over_2s_when_parsed_then_kept() {
        let reg = parse(&base(
            "[[data_kind]]\nid = \"urn:test:1\"\nprovider = \"FNS\"\nmode = \"async\"\n\
             deadline_ms = 2001\n",
        ))
        .expect("parses");
        assert_eq!(kind(&reg, "urn:test:1").deadline_ms, 2001);
    }

    #[test]
    fn given_unknown_provider_when_parsed_then_invalid() {
        let m = invalid_message(&base(
            "[[data_kind]]\nid = \"urn:test:1\"\nprovider = \"MVD\"\nmode = \"async\"\n",
        ));
        assert!(m.contains("unknown provider MVD"), "{m}");
    }

    #[test]
    fn given_provider_without_provider_role_when_parsed_then_invalid() {
        let m = invalid_message(&base(
            "[[data_kind]]\nid = \"urn:test:1\"\nprovider = \"MFC\"\nmode = \"async\"\n",
        ));
        assert!(m.contains("MFC is not a provider"), "{m}");
    }

    #[test]
    fn given_unknown_consumer_when_parsed_then_invalid() {
        let m = invalid_message(&base(
            "[[data_kind]]\nid = \"urn:test:1\"\nprovider = \"FNS\"\nmode = \"async\"\n\
             consumers = [\"MVD\"]\n",
        ));
        assert!(m.contains("unknown consumer MVD"), "{m}");
    }

    #[test]
    fn given_consumer_without_consumer_role_when_parsed_then_invalid() {
        let m = invalid_message(&base(
            "[[participant]]\nid = \"OPERATOR\"\nname = \"x\"\nroles = [\"operator\"]\n\
             [[data_kind]]\nid = \"urn:test:1\"\nprovider = \"FNS\"\nmode = \"async\"\n\
             consumers = [\"OPERATOR\"]\n",
        ));
        assert!(m.contains("OPERATOR is not a consumer"), "{m}");
    }

    #[test]
    fn given_duplicate_ids_when_parsed_then_invalid() {
        let m = invalid_message(&base(
            "[[participant]]\nid = \"MFC\"\nname = \"again\"\nroles = [\"consumer\"]\n",
        ));
        assert!(m.contains("participant MFC twice"), "{m}");
        let kind = "[[data_kind]]\nid = \"urn:test:1\"\nprovider = \"FNS\"\nmode = \"async\"\n";
        let m = invalid_message(&base(&format!("{kind}{kind}")));
        assert!(m.contains("kind urn:test:1 twice"), "{m}");
    }

    #[test]
    fn given_zero_limit_when_parsed_then_invalid() {
        for zero in [
            "deadline_ms = 0",
            "payload_bytes_max = 0",
            "queue_messages_max = 0",
            "queue_bytes_max = 0",
        ] {
            let m = invalid_message(&base(&format!(
                "[[data_kind]]\nid = \"urn:test:1\"\nprovider = \"FNS\"\nmode = \"async\"\n{zero}\n"
            )));
            assert!(m.contains("must be positive"), "{zero}: {m}");
        }
    }

    #[test]
    fn given_empty_or_shared_token_when_parsed_then_invalid() {
        let m = invalid_message(
            "[[participant]]\nid = \"FNS\"\nname = \"x\"\nroles = [\"consumer\"]\ntoken = \"\"\n",
        );
        assert!(m.contains("FNS") && m.contains("empty token"), "{m}");
        let m = invalid_message(&base(
            "[[participant]]\nid = \"MVD\"\nname = \"x\"\nroles = [\"consumer\"]\n\
             token = \"dev-fns\"\n",
        ));
        assert!(m.contains("MVD") && m.contains("FNS"), "{m}");
    }

    #[test]
    fn given_uppercase_certificate_sha256_when_parsed_then_kept_lowercase() {
        let pin = "AB".repeat(32);
        let reg = parse(&format!(
            "[[participant]]\nid = \"MFC\"\nname = \"x\"\nroles = [\"consumer\"]\n\
             certificate_sha256 = \"{pin}\"\n"
        ))
        .expect("parses");
        let mfc = reg.participant_by_name("MFC").expect("MFC");
        assert_eq!(mfc.certificate_sha256, Some("ab".repeat(32)));
        let fns = parse(&base("")).expect("parses");
        assert_eq!(
            fns.participant_by_name("FNS")
                .expect("FNS")
                .certificate_sha256,
            None,
            "certificate_sha256 is optional"
        );
    }

    #[test]
    fn given_bad_certificate_sha256_when_parsed_then_invalid_naming_participant() {
        let short = "ab".repeat(31);
        let long = "ab".repeat(33);
        let not_hex = format!("{}zz", "ab".repeat(31));
        let colons = ["ab"; 32].join(":");
        for bad in [
            "",
            short.as_str(),
            long.as_str(),
            not_hex.as_str(),
            colons.as_str(),
        ] {
            let m = invalid_message(&format!(
                "[[participant]]\nid = \"MFC\"\nname = \"x\"\nroles = [\"consumer\"]\n\
                 certificate_sha256 = \"{bad}\"\n"
            ));
            assert!(
                m.contains("MFC") && m.contains("certificate_sha256") && m.contains("64 hex"),
                "{bad:?}: {m}"
            );
        }
        let m = toml_message(
            "[[participant]]\nid = \"MFC\"\nname = \"x\"\nroles = [\"consumer\"]\n\
             certificate_sha256 = 42\n",
        );
        assert!(m.contains("certificate_sha256"), "{m}");
    }

    #[test]
    fn given_certificate_sha256_pinned_twice_when_parsed_then_invalid() {
        let pin = "cd".repeat(32);
        let m = invalid_message(&format!(
            "[[participant]]\nid = \"MFC\"\nname = \"x\"\nroles = [\"consumer\"]\n\
             certificate_sha256 = \"{pin}\"\n\
             [[participant]]\nid = \"FNS\"\nname = \"x\"\nroles = [\"consumer\"]\n\
             certificate_sha256 = \"{}\"\n",
            pin.to_ascii_uppercase()
        ));
        assert!(
            m.contains("FNS") && m.contains("already pinned by MFC"),
            "{m}"
        );
    }

    #[test]
    fn given_no_format_or_bytes_when_parsed_then_bytes_both_ways() {
        for formats in ["", "request_format = \"bytes\"\nanswer_format = \"bytes\""] {
            let reg = parse(&kind_with(formats)).expect("parses");
            let k = kind(&reg, "urn:test:1");
            assert!(k.request_format.is_bytes() && k.answer_format.is_bytes());
        }
    }

    #[test]
    fn given_inline_json_schema_when_parsed_then_compiled_for_its_direction_only() {
        let reg = parse(&kind_with(
            "request_format = { json_schema = '''{\"type\": \"object\"}''' }",
        ))
        .expect("parses");
        let k = kind(&reg, "urn:test:1");
        assert!(k.request_format.check(b"{}").is_ok());
        assert!(k.format(Direction::Request).check(b"[]").is_err());
        assert!(k.format(Direction::Answer).is_bytes());
        assert!(k.answer_format.check(b"[]").is_ok());
    }

    #[test]
    fn given_json_schema_file_when_loaded_from_file_then_read_relative_to_the_registry() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("schemas")).expect("mkdir");
        std::fs::write(
            dir.path().join("schemas/answer.json"),
            r#"{"type": "array", "maxItems": 1}"#,
        )
        .expect("schema written");
        let path = dir.path().join("registry.toml");
        let text = kind_with("answer_format = { json_schema_file = \"schemas/answer.json\" }");
        std::fs::write(&path, text).expect("registry written");
        let reg = Registry::from_file(&path).expect("loads");
        let k = kind(&reg, "urn:test:1");
        assert!(k.request_format.is_bytes());
        assert!(k.answer_format.check(b"[1]").is_ok());
        assert!(k.answer_format.check(b"[1, 2]").is_err());

        std::fs::remove_file(dir.path().join("schemas/answer.json")).expect("removed");
        match Registry::from_file(&path) {
            Err(RegistryError::Format {
                kind,
                direction,
                reason,
            }) => {
                assert_eq!(
                    (kind.as_str(), direction),
                    ("urn:test:1", Direction::Answer)
                );
                assert!(reason.contains("cannot read") && reason.contains("answer.json"));
            }
            other => panic!("expected Format, got {other:?}"),
        }
    }

    #[test]
    fn given_schema_that_does_not_compile_when_parsed_then_error_names_kind_and_direction() {
        let cases = [
            (
                "request_format = { json_schema = '''{\"type\": \"objekt\"}''' }",
                Direction::Request,
                "does not compile",
            ),
            (
                "answer_format = { json_schema = '''{\"type\": \"string\", \"format\": \"dat\"}''' }",
                Direction::Answer,
                "dat",
            ),
            (
                "answer_format = { json_schema = '''{type: object}''' }",
                Direction::Answer,
                "not JSON",
            ),
        ];
        for (formats, want_direction, want_reason) in cases {
            let (kind, direction, reason) = format_error(&kind_with(formats));
            assert_eq!(kind, "urn:test:1", "{formats}");
            assert_eq!(direction, want_direction, "{formats}");
            assert!(reason.contains(want_reason), "{formats}: {reason}");
        }
        let shown = parse(&kind_with(cases[0].0))
            .expect_err("refused")
            .to_string();
        assert!(
            shown.contains("kind urn:test:1: request_format: "),
            "{shown}"
        );
    }

    #[test]
    fn given_a_format_that_is_neither_bytes_nor_a_schema_when_parsed_then_format_error() {
        for (formats, want) in [
            ("request_format = \"json\"", "is not a format"),
            ("request_format = 7", "is not a format"),
            ("request_format = {}", "is not a format"),
            (
                "request_format = { json_schema = \"{}\", json_schema_file = \"x.json\" }",
                "is not a format",
            ),
            (
                "request_format = { schema = \"{}\" }",
                "unknown key \"schema\"",
            ),
            ("request_format = { json_schema = 1 }", "must be a string"),
        ] {
            let (kind, direction, reason) = format_error(&kind_with(formats));
            assert_eq!(
                (kind.as_str(), direction),
                ("urn:test:1", Direction::Request)
            );
            assert!(reason.contains(want), "{formats}: {reason}");
        }
    }

    /// A registry whose MFC lists `keys` and whose one kind has `signatures`.
    fn with_keys(keys: &str, signatures: &str) -> String {
        format!(
            r#"
[[participant]]
id = "FNS"
name = "Federal Tax Service"
roles = ["provider"]

[[participant]]
id = "MFC"
name = "Public-service centre"
roles = ["consumer"]
keys = [{keys}]

[[data_kind]]
id = "urn:test:1"
provider = "FNS"
mode = "async"
consumers = ["MFC"]
{signatures}
"#
        )
    }

    fn public_key() -> String {
        gonets_trust::Ed25519Signer::from_seed(&[9; 32]).public_key_base64()
    }

    #[test]
    fn given_keys_and_a_signatures_rule_when_parsed_then_a_key_ring_and_the_rule_are_built() {
        let key = public_key();
        let keys = format!(
            "{{ id = \"mfc-2026\", algorithm = \"ed25519\", public_key = \"{key}\", \
             valid_from = 2026-01-01T00:00:00Z, valid_until = \"2027-01-01T00:00:00Z\" }}, \
             {{ id = \"mfc-open\", algorithm = \"ed25519\", public_key = \"{key}\" }}"
        );
        let reg = parse(&with_keys(&keys, "signatures = \"required\"")).unwrap();
        let ring = &reg.participant_by_name("MFC").unwrap().keys;
        let k = &ring.keys()[0];
        assert_eq!(k.key_id, "mfc-2026");
        assert_eq!(k.valid_from_ms, Some(1_767_225_600_000));
        assert_eq!(k.valid_until_ms, Some(1_798_761_600_000));
        assert_eq!(
            (ring.keys()[1].valid_from_ms, ring.keys()[1].valid_until_ms),
            (None, None)
        );
        assert!(reg.participant_by_name("FNS").unwrap().keys.is_empty());
        assert_eq!(kind(&reg, "urn:test:1").signatures, Signatures::Required);
        let optional = parse(&with_keys("", "")).unwrap();
        assert_eq!(
            kind(&optional, "urn:test:1").signatures,
            Signatures::Optional
        );
        let named = parse(&with_keys("", "signatures = \"optional\"")).unwrap();
        assert_eq!(kind(&named, "urn:test:1").signatures, Signatures::Optional);
    }

    #[test]
    fn given_bad_keys_when_parsed_then_invalid_naming_the_participant_and_the_key() {
        let key = public_key();
        let cases = [
            (format!("{{ id = \"k1\", algorithm = \"gost\", public_key = \"{key}\" }}"), "k1", "gost"),
            ("{ id = \"k1\", algorithm = \"ed25519\", public_key = \"AAAA\" }".to_string(), "k1", "key"),
            (format!("{{ id = \"k2\", algorithm = \"ed25519\", public_key = \"{key}\", valid_from = \"2026-01-01\" }}"), "k2", "valid_from"),
            (format!("{{ id = \"k3\", algorithm = \"ed25519\", public_key = \"{key}\", valid_until = 2026-01-01T00:00:00 }}"), "k3", "valid_until"),
            (format!("{{ id = \"k4\", algorithm = \"ed25519\", public_key = \"{key}\", valid_until = 5 }}"), "k4", "valid_until"),
        ];
        for (keys, key_id, what) in cases {
            let m = invalid_message(&with_keys(&keys, ""));
            assert!(
                m.contains("participant MFC") && m.contains(key_id) && m.contains(what),
                "{m}"
            );
        }
        let twice = format!(
            "{{ id = \"k\", algorithm = \"ed25519\", public_key = \"{key}\" }}, \
             {{ id = \"k\", algorithm = \"ed25519\", public_key = \"{key}\" }}"
        );
        assert!(invalid_message(&with_keys(&twice, "")).contains("twice"));
        let backwards = format!(
            "{{ id = \"k\", algorithm = \"ed25519\", public_key = \"{key}\", \
             valid_from = 2027-01-01T00:00:00Z, valid_until = 2026-01-01T00:00:00Z }}"
        );
        assert!(invalid_message(&with_keys(&backwards, "")).contains("not before"));
        let unknown = format!(
            "{{ id = \"k\", algorithm = \"ed25519\", public_key = \"{key}\", usage = \"sign\" }}"
        );
        assert!(toml_message(&with_keys(&unknown, "")).contains("usage"));
        let m = invalid_message(&with_keys("", "signatures = \"always\""));
        assert!(m.contains("kind urn:test:1") && m.contains("always"), "{m}");
    }
}
