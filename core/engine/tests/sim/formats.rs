//! The formats of the simulated registry (issue 18, docs/adr/0018): the
//! kinds of `world::REGISTRY` that declare a JSON Schema all use one of
//! the two below, the workload makes payloads that match them or break
//! them in known ways, and the model reads a payload off those shapes,
//! without the validator, to predict the shard's `InvalidFormat` and its
//! path. `given_the_sim_formats_when_payloads_checked_then_model_and_validator_agree`
//! (sim.rs) holds the two readings together.

use rand::Rng;

/// Every `request_format` schema of the simulated registry (as written there).
pub const REQUEST_SCHEMA: &str = r#"{"type": "object", "required": ["t"], "additionalProperties": false, "properties": {"t": {"type": "string", "pattern": "^req-[0-9a-f]{8}$"}}}"#;
/// Every `answer_format` schema of the simulated registry (as written there).
pub const ANSWER_SCHEMA: &str = r#"{"type": "object", "required": ["a"], "properties": {"a": {"type": "integer", "minimum": 0}}}"#;

/// A request payload for a kind with [`REQUEST_SCHEMA`]: four in five
/// match it; the rest break its type, its pattern, a required or an
/// additional property, or are not JSON.
pub fn request_payload(w: &mut impl Rng) -> Vec<u8> {
    let tag = w.gen::<u32>();
    match w.gen_range(0..100) {
        0..=79 => format!(r#"{{"t":"req-{tag:08x}"}}"#),
        80..=83 => format!(r#"{{"t":{}}}"#, tag % 1000),
        84..=87 => format!(r#"{{"t":"req-{tag:08x}!"}}"#),
        88..=91 => "{}".to_string(),
        92..=95 => format!(r#"{{"t":"req-{tag:08x}","x":1}}"#),
        _ => format!("req-{tag:08x}"),
    }
    .into_bytes()
}

/// A data answer payload for a kind with [`ANSWER_SCHEMA`]: three in four
/// match it; the rest break its minimum or its type, or are not JSON.
pub fn answer_payload(w: &mut impl Rng) -> Vec<u8> {
    let n = w.gen_range(0..1000u32);
    match w.gen_range(0..100) {
        0..=74 => format!(r#"{{"a":{n}}}"#),
        75..=82 => format!(r#"{{"a":-{}}}"#, n + 1),
        83..=90 => format!(r#"{{"a":"{n}"}}"#),
        _ => format!("answer {n}"),
    }
    .into_bytes()
}

/// The path of the `InvalidFormat` a request payload of a kind with
/// [`REQUEST_SCHEMA`] gets, `None` when it matches: read off the shapes
/// [`request_payload`] makes (any other payload is refused at the root).
pub fn request_refusal(payload: &[u8]) -> Option<&'static str> {
    let Some(value) = member(payload, r#"{"t":"#) else {
        return Some("");
    };
    if let Some(tag) = value
        .strip_prefix("\"req-")
        .and_then(|r| r.strip_suffix('"'))
    {
        let hex = tag.len() == 8 && tag.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        return if hex { None } else { Some("/t") };
    }
    if natural(value) {
        return Some("/t");
    }
    Some("")
}

/// The path of the `InvalidFormat` a data answer of a kind with
/// [`ANSWER_SCHEMA`] gets, `None` when it matches (as [`request_refusal`]).
pub fn answer_refusal(payload: &[u8]) -> Option<&'static str> {
    let Some(value) = member(payload, r#"{"a":"#) else {
        return Some("");
    };
    if natural(value) {
        return None;
    }
    let quoted = value.len() >= 2 && value.starts_with('"') && value.ends_with('"');
    if value.strip_prefix('-').is_some_and(natural) || quoted {
        return Some("/a");
    }
    Some("")
}

/// The value text of a one-member object `{"<key>":<value>}` that begins
/// with `prefix`, if `payload` is that.
fn member<'a>(payload: &'a [u8], prefix: &str) -> Option<&'a str> {
    std::str::from_utf8(payload)
        .ok()?
        .strip_prefix(prefix)?
        .strip_suffix('}')
}

/// A JSON natural number: digits, no leading zero.
fn natural(text: &str) -> bool {
    !text.is_empty()
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text.len() == 1 || !text.starts_with('0'))
}
