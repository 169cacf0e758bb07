//! The bench's payload formats (`--format`): `bytes`, the bulk kinds
//! unchecked and every payload the same filler, or `json-schema`, the bulk
//! kinds checked against [`AGENCY_RECORD_SCHEMA`] and every payload a valid
//! agency record of exactly the requested size. The two runs side by side
//! give the door's validation cost per message (issue 18,
//! docs/adr/0018-formats-checked-at-the-door.md).

use bytes::Bytes;
use gonets_engine::format::Format;
use serde_json::{json, Value};

/// A realistic request of an agency: ids, names, dates, a nested address,
/// an array of items, enums and patterns, `additionalProperties: false` at
/// every level. No single quotes (it goes into a TOML `'''` string).
pub const AGENCY_RECORD_SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "$id": "urn:gonets:loadgen:agency-record:1",
  "title": "A request for an agency record (gonets-loadgen bench kind)",
  "type": "object",
  "additionalProperties": false,
  "required": ["record_id", "agency", "purpose", "requested_at", "subject", "items", "note"],
  "properties": {
    "record_id": {"type": "string", "pattern": "^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$"},
    "agency": {"enum": ["FNS", "MVD", "SFR", "ROSREESTR", "MFC"]},
    "purpose": {"enum": ["benefit", "registration", "tax", "pension", "licence"]},
    "requested_at": {"type": "string", "format": "date-time"},
    "subject": {
      "type": "object",
      "additionalProperties": false,
      "required": ["inn", "snils", "last_name", "first_name", "birth_date", "address"],
      "properties": {
        "inn": {"type": "string", "pattern": "^[0-9]{12}$"},
        "snils": {"type": "string", "pattern": "^[0-9]{3}-[0-9]{3}-[0-9]{3} [0-9]{2}$"},
        "last_name": {"type": "string", "minLength": 1, "maxLength": 64},
        "first_name": {"type": "string", "minLength": 1, "maxLength": 64},
        "middle_name": {"type": "string", "maxLength": 64},
        "birth_date": {"type": "string", "format": "date"},
        "address": {
          "type": "object",
          "additionalProperties": false,
          "required": ["region_code", "postcode", "city", "street", "house"],
          "properties": {
            "region_code": {"type": "string", "pattern": "^[0-9]{2}$"},
            "postcode": {"type": "string", "pattern": "^[0-9]{6}$"},
            "city": {"type": "string", "minLength": 1, "maxLength": 128},
            "street": {"type": "string", "minLength": 1, "maxLength": 128},
            "house": {"type": "string", "pattern": "^[0-9]{1,4}[a-z]?$"},
            "flat": {"type": "integer", "minimum": 1, "maximum": 9999}
          }
        }
      }
    },
    "items": {
      "type": "array",
      "minItems": 1,
      "maxItems": 100000,
      "items": {
        "type": "object",
        "additionalProperties": false,
        "required": ["line", "code", "title", "quantity", "amount", "currency", "issued_on"],
        "properties": {
          "line": {"type": "integer", "minimum": 1},
          "code": {"type": "string", "pattern": "^[A-Z]{3}-[0-9]{4}$"},
          "title": {"type": "string", "minLength": 1, "maxLength": 256},
          "quantity": {"type": "integer", "minimum": 1, "maximum": 1000},
          "amount": {"type": "number", "minimum": 0},
          "currency": {"enum": ["RUB"]},
          "issued_on": {"type": "string", "format": "date"}
        }
      }
    },
    "note": {"type": "string", "maxLength": 1024}
  }
}"#;

/// Distinct documents a run cycles through (so that no two neighbouring
/// requests are the same bytes).
pub const DOCUMENTS_PER_RUN: usize = 64;

/// What the bulk kinds' requests must be, and so what the bulk senders send.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PayloadFormat {
    /// No format: filler bytes (`b` repeated), nothing checked.
    #[default]
    Bytes,
    /// [`AGENCY_RECORD_SCHEMA`], checked at the door; valid agency records.
    JsonSchema,
}

impl PayloadFormat {
    /// Parses `--format bytes|json-schema`.
    pub fn parse(name: &str) -> Result<PayloadFormat, String> {
        match name {
            "bytes" => Ok(PayloadFormat::Bytes),
            "json-schema" => Ok(PayloadFormat::JsonSchema),
            other => Err(format!("--format {other:?}: expected bytes or json-schema")),
        }
    }

    /// The name `--format` takes (and the result's setup records).
    pub fn name(self) -> &'static str {
        match self {
            PayloadFormat::Bytes => "bytes",
            PayloadFormat::JsonSchema => "json-schema",
        }
    }

    /// The registry line a bulk kind carries in this format (empty for
    /// `bytes`, the registry's default).
    pub fn request_format_line(self) -> String {
        match self {
            PayloadFormat::Bytes => String::new(),
            PayloadFormat::JsonSchema => {
                format!("request_format = {{ json_schema = '''{AGENCY_RECORD_SCHEMA}''' }}\n")
            }
        }
    }

    /// The payloads of `bytes` bytes each that bulk senders cycle through:
    /// one filler, or [`DOCUMENTS_PER_RUN`] agency records, each checked
    /// here against the schema the hub will check (a mismatch would
    /// measure refusals, not acceptances).
    pub fn payloads(self, bytes: usize) -> Result<Vec<Bytes>, String> {
        match self {
            PayloadFormat::Bytes => Ok(vec![Bytes::from(vec![b'b'; bytes])]),
            PayloadFormat::JsonSchema => {
                let schema = Format::json_schema(AGENCY_RECORD_SCHEMA)
                    .map_err(|e| format!("the agency record schema: {e}"))?;
                (0..DOCUMENTS_PER_RUN as u64)
                    .map(|seed| {
                        let doc = document(bytes, seed)?;
                        schema
                            .check(&doc)
                            .map_err(|e| format!("agency record {seed} breaks its schema: {e}"))?;
                        Ok(Bytes::from(doc))
                    })
                    .collect()
            }
        }
    }
}

/// An agency record of exactly `bytes` bytes (compact JSON) matching
/// [`AGENCY_RECORD_SCHEMA`], its values drawn from `seed`: as many items
/// as fit, the rest of the size in its note. Too small a size for one
/// item is an error naming the least.
pub fn document(bytes: usize, seed: u64) -> Result<Vec<u8>, String> {
    let mut draw = Draw(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let head = record(&mut draw);
    let mut items = vec![item(&mut draw, 1)];
    let mut len = serialized(&with(&head, &items, "")).len();
    if len > bytes {
        return Err(format!(
            "--format json-schema needs --message-bytes of at least {len} (one agency record)"
        ));
    }
    // Each further item adds a comma and itself (compact JSON).
    loop {
        let next = item(&mut draw, items.len() as u64 + 1);
        let more = 1 + serialized(&next).len();
        if len + more > bytes {
            break;
        }
        len += more;
        items.push(next);
    }
    let note = filler(bytes - len);
    let out = serialized(&with(&head, &items, &note));
    assert_eq!(out.len(), bytes, "an agency record of the exact size");
    Ok(out)
}

/// A small deterministic generator (splitmix64): no dependency, the same
/// documents on every machine.
struct Draw(u64);

impl Draw {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<'a>(&mut self, of: &[&'a str]) -> &'a str {
        of[self.below(of.len() as u64) as usize]
    }

    fn digits(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| char::from(b'0' + self.below(10) as u8))
            .collect()
    }
}

/// Everything of a record but its items and note.
fn record(d: &mut Draw) -> Value {
    let id = format!(
        "{:08x}-{:04x}-7{:03x}-{}{:03x}-{:012x}",
        d.next() as u32,
        d.below(1 << 16),
        d.below(1 << 12),
        d.pick(&["8", "9", "a", "b"]),
        d.below(1 << 12),
        d.next() & 0xffff_ffff_ffff
    );
    json!({
        "record_id": id,
        "agency": d.pick(&["FNS", "MVD", "SFR", "ROSREESTR", "MFC"]),
        "purpose": d.pick(&["benefit", "registration", "tax", "pension", "licence"]),
        "requested_at": format!("2026-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            1 + d.below(12), 1 + d.below(28), d.below(24), d.below(60), d.below(60)),
        "subject": {
            "inn": d.digits(12),
            "snils": format!("{}-{}-{} {}", d.digits(3), d.digits(3), d.digits(3), d.digits(2)),
            "last_name": d.pick(&["Ivanova", "Petrov", "Sidorova", "Kuznetsov", "Smirnova"]),
            "first_name": d.pick(&["Anna", "Ivan", "Maria", "Sergei", "Olga"]),
            "middle_name": d.pick(&["Sergeevna", "Ivanovich", "Petrovna", "Olegovich"]),
            "birth_date": format!("19{:02}-{:02}-{:02}", 40 + d.below(60), 1 + d.below(12), 1 + d.below(28)),
            "address": {
                "region_code": d.digits(2),
                "postcode": d.digits(6),
                "city": d.pick(&["Moskva", "Kazan", "Tver", "Omsk", "Vologda"]),
                "street": d.pick(&["Lenina", "Mira", "Sadovaya", "Tsentralnaya"]),
                "house": format!("{}{}", 1 + d.below(200), d.pick(&["", "a", "b"])),
                "flat": 1 + d.below(300)
            }
        }
    })
}

/// Item number `line` of a record.
fn item(d: &mut Draw, line: u64) -> Value {
    json!({
        "line": line,
        "code": format!("{}-{}", d.pick(&["EGR", "NDF", "PEN", "KAD", "LIC"]), d.digits(4)),
        "title": d.pick(&[
            "Extract from the register of legal entities",
            "Certificate of income and tax withheld",
            "Statement of the pension account",
            "Cadastral passport of the property",
        ]),
        "quantity": 1 + d.below(20),
        "amount": (d.below(10_000_000) as f64) / 100.0,
        "currency": "RUB",
        "issued_on": format!("2026-{:02}-{:02}", 1 + d.below(12), 1 + d.below(28)),
    })
}

/// The record `head` with `items` and `note`.
fn with(head: &Value, items: &[Value], note: &str) -> Value {
    let mut v = head.clone();
    let object = v.as_object_mut().expect("a record is an object");
    object.insert("items".into(), Value::Array(items.to_vec()));
    object.insert("note".into(), Value::String(note.into()));
    v
}

fn serialized(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).expect("a JSON value serializes")
}

/// `n` bytes of plain words (ASCII, nothing JSON escapes).
fn filler(n: usize) -> String {
    const WORDS: &str = "requested for the service case of the applicant ";
    WORDS.chars().cycle().take(n).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_sizes_when_documents_made_then_exact_valid_and_distinct() {
        let schema = Format::json_schema(AGENCY_RECORD_SCHEMA).expect("the schema compiles");
        for bytes in [1024, 2048, 4096, 4097, 65_536] {
            let a = document(bytes, 1).expect("fits");
            let b = document(bytes, 2).expect("fits");
            assert_eq!((a.len(), b.len()), (bytes, bytes));
            assert_ne!(a, b);
            assert_eq!(schema.check(&a), Ok(()), "{}", String::from_utf8_lossy(&a));
            let doc: Value = serde_json::from_slice(&a).expect("JSON");
            assert!(doc["items"].as_array().expect("items").len() >= bytes / 400);
        }
    }

    #[test]
    fn given_too_small_a_size_when_document_made_then_the_least_is_named() {
        let e = document(100, 1).expect_err("too small");
        assert!(e.contains("at least"), "{e}");
    }

    #[test]
    fn given_formats_when_payloads_made_then_bytes_is_one_filler_and_json_schema_a_valid_pool() {
        let filler = PayloadFormat::Bytes.payloads(4096).expect("filler");
        assert_eq!(filler.len(), 1);
        assert_eq!(filler[0].len(), 4096);
        let pool = PayloadFormat::JsonSchema.payloads(4096).expect("records");
        assert_eq!(pool.len(), DOCUMENTS_PER_RUN);
        assert!(pool.iter().all(|p| p.len() == 4096));
        assert_eq!(
            PayloadFormat::parse("json-schema"),
            Ok(PayloadFormat::JsonSchema)
        );
        assert_eq!(
            PayloadFormat::parse(PayloadFormat::Bytes.name()),
            Ok(PayloadFormat::Bytes)
        );
        assert!(PayloadFormat::parse("json").is_err());
    }

    #[test]
    fn given_a_broken_record_when_checked_then_the_schema_refuses_it() {
        // The schema is strict where a realistic one is: a misspelt key, a
        // bad date, an unknown agency are each refused.
        let schema = Format::json_schema(AGENCY_RECORD_SCHEMA).expect("compiles");
        let good: Value = serde_json::from_slice(&document(2048, 3).expect("fits")).expect("JSON");
        for (pointer, value) in [
            ("/agency", json!("GIBDD")),
            ("/subject/birth_date", json!("1990-13-01")),
            ("/subject/address/postcode", json!("1010")),
            ("/items/0/quantity", json!(0)),
        ] {
            let mut bad = good.clone();
            *bad.pointer_mut(pointer).expect("present") = value;
            let r = schema.check(&serialized(&bad));
            assert!(
                matches!(&r, Err(gonets_types::HubError::InvalidFormat { path, .. }) if path == pointer),
                "{pointer}: {r:?}"
            );
        }
    }
}
