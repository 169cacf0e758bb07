//! Formats of data kinds (DESIGN.md R8): what a request's or an answer's
//! payload must be before the hub takes it.
//!
//! A kind's request format and answer format are each either
//! [`Format::Bytes`] (anything, unchecked: the default) or a JSON Schema,
//! compiled once when the registry loads ([`Format::json_schema`]) and then
//! shared read-only by every shard (an `Arc`, no lock: checking needs
//! nothing but `&self`). The shard's door calls [`Format::check`] before a
//! record is appended (docs/adr/0018-formats-checked-at-the-door.md).
//!
//! The validator is set for a hub, not for a browser: no `$ref` is ever
//! fetched (over the network or from files: a schema is one document),
//! `pattern`s use the linear-time `regex` engine (a pattern cannot make a
//! shard's core backtrack for seconds; look-arounds and back-references
//! are refused at load), and `format` keywords are asserted (a misspelt or
//! unknown format name is a load error, not a silent pass).

use gonets_types::error::HubError;
use jsonschema::{PatternOptions, Validator};
use std::fmt;
use std::sync::Arc;

/// Longest `path` an `InvalidFormat` carries, bytes: a JSON pointer longer
/// than this is cut (at a character boundary) and ends in `…`.
pub const INVALID_FORMAT_PATH_BYTES_MAX: usize = 1024;
/// Longest `reason` an `InvalidFormat` carries, bytes, cut as the path is.
/// The validator's messages name the rule broken, never the payload's
/// values ([`jsonschema::ValidationError::masked`]): an error may be
/// logged, and a payload may hold personal data.
pub const INVALID_FORMAT_REASON_BYTES_MAX: usize = 512;

/// What a payload must be.
#[derive(Clone, Debug, Default)]
pub enum Format {
    /// Any bytes: nothing is checked.
    #[default]
    Bytes,
    /// A JSON document that a JSON Schema accepts.
    JsonSchema(Arc<JsonSchema>),
}

/// Which of a kind's two formats: its requests' or its answers'.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Consumers' requests (`request_format`).
    Request,
    /// Providers' data answers (`answer_format`).
    Answer,
}

impl fmt::Display for Direction {
    /// `request` or `answer`, as the registry's keys begin.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Direction::Request => "request",
            Direction::Answer => "answer",
        })
    }
}

/// A compiled JSON Schema (read-only once built).
pub struct JsonSchema {
    validator: Validator,
}

impl fmt::Debug for JsonSchema {
    /// The draft only: a compiled schema's tree would swamp a registry's
    /// debug output.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JsonSchema")
            .field("draft", &self.validator.draft())
            .finish_non_exhaustive()
    }
}

/// Why a schema could not be compiled.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    /// The schema's text is not JSON.
    #[error("the JSON Schema is not JSON: {0}")]
    NotJson(String),
    /// The JSON is not a schema the validator takes (a bad keyword value,
    /// an unknown `format`, a `pattern` the regex engine refuses, a `$ref`
    /// outside the document).
    #[error("the JSON Schema does not compile: {0}")]
    Schema(String),
}

impl Format {
    /// Compiles the JSON Schema in `text` (draft from its `$schema`,
    /// 2020-12 without one).
    pub fn json_schema(text: &str) -> Result<Format, FormatError> {
        let schema: serde_json::Value =
            serde_json::from_str(text).map_err(|e| FormatError::NotJson(e.to_string()))?;
        let validator = jsonschema::options()
            .offline()
            .with_pattern_options(PatternOptions::regex())
            .should_validate_formats(true)
            .should_ignore_unknown_formats(false)
            .build(&schema)
            .map_err(|e| FormatError::Schema(e.to_string()))?;
        Ok(Format::JsonSchema(Arc::new(JsonSchema { validator })))
    }

    /// True for [`Format::Bytes`]: nothing to check.
    pub fn is_bytes(&self) -> bool {
        matches!(self, Format::Bytes)
    }

    /// Checks `payload`: `Ok` for any bytes under [`Format::Bytes`]; under
    /// a schema, `InvalidFormat` when it is not JSON (path `""`, the
    /// document) or breaks the schema (`path`: the JSON pointer of the
    /// first error in the payload; `reason`: the rule it breaks).
    pub fn check(&self, payload: &[u8]) -> Result<(), HubError> {
        match self {
            Format::Bytes => Ok(()),
            Format::JsonSchema(schema) => schema.check(payload),
        }
    }
}

impl JsonSchema {
    fn check(&self, payload: &[u8]) -> Result<(), HubError> {
        // serde_json bounds nesting (128 levels), so neither parsing nor
        // validating a hostile document can exhaust the shard's stack.
        let document: serde_json::Value = serde_json::from_slice(payload)
            .map_err(|e| invalid_format("", &format!("not JSON: {e}")))?;
        match self.validator.validate(&document) {
            Ok(()) => Ok(()),
            Err(e) => Err(invalid_format(
                e.instance_path().as_str(),
                &e.masked().to_string(),
            )),
        }
    }
}

/// `InvalidFormat` with `path` and `reason` within their bounds.
fn invalid_format(path: &str, reason: &str) -> HubError {
    HubError::InvalidFormat {
        path: bounded(path, INVALID_FORMAT_PATH_BYTES_MAX),
        reason: bounded(reason, INVALID_FORMAT_REASON_BYTES_MAX),
    }
}

/// `text`, or its longest prefix that fits in `bytes_max` bytes together
/// with a trailing `…`, cut at a character boundary.
fn bounded(text: &str, bytes_max: usize) -> String {
    const ELLIPSIS: &str = "…";
    assert!(bytes_max > ELLIPSIS.len(), "room for the ellipsis");
    if text.len() <= bytes_max {
        return text.to_string();
    }
    let mut end = bytes_max - ELLIPSIS.len();
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let out = format!("{}{ELLIPSIS}", &text[..end]);
    assert!(out.len() <= bytes_max);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const PERSON: &str = r#"{
        "type": "object",
        "required": ["inn", "born"],
        "additionalProperties": false,
        "properties": {
            "inn": {"type": "string", "pattern": "^[0-9]{10}$"},
            "born": {"type": "string", "format": "date"},
            "children": {"type": "array", "items": {"type": "object",
                "properties": {"name": {"type": "string", "maxLength": 8}}}}
        }
    }"#;

    fn person() -> Format {
        Format::json_schema(PERSON).expect("compiles")
    }

    fn refusal(format: &Format, payload: &str) -> (String, String) {
        match format.check(payload.as_bytes()) {
            Err(HubError::InvalidFormat { path, reason }) => (path, reason),
            other => panic!("expected InvalidFormat for {payload}, got {other:?}"),
        }
    }

    #[test]
    fn given_bytes_format_when_anything_checked_then_accepted() {
        for payload in [&b""[..], b"not json", &[0xff, 0x00, 0xfe]] {
            assert_eq!(Format::Bytes.check(payload), Ok(()));
        }
        assert!(Format::default().is_bytes());
    }

    #[test]
    fn given_schema_when_matching_document_checked_then_accepted() {
        let ok = r#"{"inn": "7707083893", "born": "1990-05-17",
                     "children": [{"name": "Anna"}]}"#;
        assert_eq!(person().check(ok.as_bytes()), Ok(()));
        assert!(!person().is_bytes());
    }

    #[test]
    fn given_schema_when_payload_not_json_then_invalid_format_at_the_root() {
        for payload in ["", "INN 7707083893", "{\"inn\": ", "[1, 2,]"] {
            let (path, reason) = refusal(&person(), payload);
            assert_eq!(path, "", "{payload:?}");
            assert!(reason.starts_with("not JSON: "), "{payload:?}: {reason}");
        }
    }

    #[test]
    fn given_schema_when_document_breaks_it_then_path_is_the_first_error_pointer() {
        let cases = [
            (r#"{"inn": "77", "born": "1990-05-17"}"#, "/inn"),
            (r#"{"inn": "7707083893", "born": "1990-02-31"}"#, "/born"),
            (
                r#"{"inn": "7707083893", "born": "1990-05-17",
                    "children": [{"name": "Anna"}, {"name": "Maximilian"}]}"#,
                "/children/1/name",
            ),
            (r#"{"inn": "7707083893"}"#, ""),
            (r#"{"inn": "7707083893", "born": "1990-05-17", "x": 1}"#, ""),
            ("[]", ""),
        ];
        for (payload, want) in cases {
            let (path, reason) = refusal(&person(), payload);
            assert_eq!(path, want, "{payload}: {reason}");
            assert!(!reason.is_empty());
        }
    }

    #[test]
    fn given_a_refused_value_when_reported_then_the_reason_does_not_echo_it() {
        let (_, reason) = refusal(&person(), r#"{"inn": "SECRET-1234", "born": "1990-05-17"}"#);
        assert!(!reason.contains("SECRET"), "{reason}");
    }

    #[test]
    fn given_long_path_or_reason_when_refused_then_cut_within_bounds() {
        let key = "я".repeat(2000);
        let schema = r#"{"additionalProperties": {"type": "integer"}}"#;
        let format = Format::json_schema(schema).expect("compiles");
        let (path, _) = refusal(&format, &format!("{{\"{key}\": \"x\"}}"));
        assert!(
            path.len() <= INVALID_FORMAT_PATH_BYTES_MAX,
            "{}",
            path.len()
        );
        assert!(path.starts_with("/я") && path.ends_with('…'));
        let reason = bounded(&"ы".repeat(1000), INVALID_FORMAT_REASON_BYTES_MAX);
        assert!(reason.len() <= INVALID_FORMAT_REASON_BYTES_MAX);
        assert_eq!(bounded("short", 8), "short");
    }

    #[test]
    fn given_a_schema_with_local_refs_when_checked_then_they_resolve_offline() {
        let schema = r##"{
            "$defs": {"postcode": {"type": "string", "pattern": "^[0-9]{6}$"}},
            "type": "object",
            "properties": {"home": {"$ref": "#/$defs/postcode"}}
        }"##;
        let format = Format::json_schema(schema).expect("a local $ref compiles");
        assert_eq!(format.check(br#"{"home": "101000"}"#), Ok(()));
        let (path, _) = refusal(&format, r#"{"home": "1010"}"#);
        assert_eq!(path, "/home");
    }

    #[test]
    fn given_bad_schemas_when_compiled_then_typed_errors() {
        assert!(matches!(
            Format::json_schema("{type: object}"),
            Err(FormatError::NotJson(_))
        ));
        for schema in [
            r#"{"type": "objekt"}"#,
            r#"{"type": "string", "format": "dat"}"#,
            r#"{"type": "string", "pattern": "(?=lookahead)"}"#,
            r##"{"$ref": "https://example.com/other.json"}"##,
            r#"{"minLength": -1}"#,
        ] {
            let e = Format::json_schema(schema).expect_err(schema);
            assert!(matches!(e, FormatError::Schema(_)), "{schema}: {e:?}");
        }
    }

    #[test]
    fn given_a_compiled_schema_when_shared_then_it_crosses_threads() {
        fn shared<T: Send + Sync>(_: &T) {}
        let format = person();
        shared(&format);
        let clone = format.clone();
        let handle = std::thread::spawn(move || clone.check(br#"{"inn": "1"}"#).is_err());
        assert!(handle.join().expect("joins"));
    }
}
