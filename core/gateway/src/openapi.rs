//! The OpenAPI 3.1 document, generated from the route table
//! ([`crate::ROUTES`]) and the views' field names: served at
//! `/v1/openapi.json`, printed by `gonets openapi`, and kept in
//! `docs/gateway/openapi.json` (a test fails when the two differ).

use crate::request::{
    ATTACHMENTS, CHUNK_CRC32C, EXPIRES_IN_MS, EXPIRES_IN_MS_MAX, IDEMPOTENCY_KEY, SIGNATURE,
    STATE_SECRET, TEST, TRANSACTION,
};
use crate::stream::{LEASE_MAX, STREAM_CREDITS_DEFAULT, STREAM_CREDITS_MAX};

/// Standard base64 with padding (what the gateway reads and writes).
const BASE64_PATTERN: &str = "^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$";
use crate::routes::{Op, Route, ROUTES};
use crate::settings::{FETCH_MAX_DEFAULT, FETCH_WAIT_MS_MAX};
use gonets_types::{RefusalCode, BATCH_MESSAGES_MAX};
use serde_json::{json, Map, Value};

/// The whole document.
pub fn document() -> Value {
    let mut paths = Map::new();
    for route in ROUTES {
        let entry = paths
            .entry(route.path.to_owned())
            .or_insert_with(|| json!({}));
        entry[route.method.to_lowercase()] = operation(route);
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "gonets HTTP gateway",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Every operation of the gonets hub over HTTP/JSON (docs/gateway.md). \
                Errors are RFC 9457 problems with the native protocol's stable code.",
        },
        "paths": paths,
        "components": { "schemas": schemas(), "securitySchemes": security_schemes() },
        "security": [{ "basic": [] }, { "mutual_tls": [] }],
    })
}

fn operation(route: &Route) -> Value {
    let mut op = json!({
        "operationId": route.operation_id,
        "summary": route.summary,
        "parameters": parameters(route),
        "responses": responses(route.op),
    });
    if let Some(body) = request_body(route.op) {
        op["requestBody"] = body;
    }
    if route.op == Op::OpenApi {
        op["security"] = json!([]);
    }
    op
}

fn path_param(name: &str, schema: Value, description: &str) -> Value {
    json!({ "name": name, "in": "path", "required": true, "schema": schema, "description": description })
}

fn query_param(name: &str, schema: Value, description: &str) -> Value {
    json!({ "name": name, "in": "query", "required": false, "schema": schema, "description": description })
}

fn header_param(name: &str, schema: Value, description: &str) -> Value {
    json!({ "name": name, "in": "header", "required": false, "schema": schema, "description": description })
}

fn parameters(route: &Route) -> Vec<Value> {
    let mut out = Vec::new();
    let text = json!({ "type": "string", "minLength": 1 });
    if route.path.contains("{kind}") {
        out.push(path_param("kind", text.clone(), "The data kind's id"));
    }
    if route.path.contains("{queue_type}") {
        let types = json!({ "type": "string", "enum": ["requests", "answers"] });
        out.push(path_param(
            "queue_type",
            types,
            "requests (a provider's) or answers (a consumer's)",
        ));
        out.push(path_param(
            "owner",
            text.clone(),
            "The data kind (requests) or the participant (answers)",
        ));
    }
    if route.path.contains("{lease}") {
        let lease = json!({ "type": "integer", "minimum": 0, "maximum": LEASE_MAX });
        out.push(path_param(
            "lease",
            lease,
            "The stream's lease holder number (its open event gives it)",
        ));
    }
    if route.path.contains("{upload}") {
        let uuid = json!({ "type": "string", "format": "uuid" });
        out.push(path_param(
            "upload",
            uuid,
            "An upload id (from upload_begin)",
        ));
    }
    if route.path.contains("{digest}") {
        let digest = json!({ "type": "string", "pattern": "^[0-9a-fA-F]{64}$" });
        out.push(path_param(
            "digest",
            digest,
            "The attachment's BLAKE3 digest, 64 hex digits",
        ));
    }
    if route.path.contains("{id}") {
        let uuid = json!({ "type": "string", "format": "uuid" });
        out.push(path_param(
            "id",
            uuid,
            "A message id (a UUIDv7 the hub gave)",
        ));
    }
    match route.op {
        Op::SendRequest | Op::Call => out.extend(send_headers()),
        Op::SendResponse => out.extend([attachments_header(), signature_header()]),
        Op::SendRequests | Op::SendRefusal => out.push(signature_header()),
        Op::Fetch => {
            let max = json!({ "type": "integer", "minimum": 1, "maximum": BATCH_MESSAGES_MAX, "default": FETCH_MAX_DEFAULT });
            out.push(query_param("max", max, "Most messages to return"));
            let wait = json!({ "type": "integer", "minimum": 0, "maximum": FETCH_WAIT_MS_MAX, "default": 0 });
            out.push(query_param(
                "wait_ms",
                wait,
                "Longest wait for the first message, ms",
            ));
        }
        Op::UploadChunk => {
            let offset = json!({ "type": "integer", "minimum": 0, "maximum": crate::attachments::OFFSET_MAX });
            let mut p = query_param(
                "offset",
                offset,
                "Where the chunk starts: the upload's durable_bytes",
            );
            p["required"] = json!(true);
            out.push(p);
            let crc = json!({ "type": "string", "pattern": "^[0-9a-fA-F]{1,8}$" });
            let mut h = header_param(
                CHUNK_CRC32C,
                crc,
                "The chunk's CRC-32C (Castagnoli), in hex (up to 8 digits)",
            );
            h["required"] = json!(true);
            out.push(h);
        }
        Op::ReadAttachment => {
            let offset = json!({ "type": "integer", "minimum": 0, "maximum": crate::attachments::OFFSET_MAX, "default": 0 });
            out.push(query_param(
                "offset",
                offset,
                "Where to start reading, bytes",
            ));
        }
        Op::Nack => {
            let delay = json!({ "type": "integer", "minimum": 0, "maximum": crate::request::NACK_DELAY_MS_MAX, "default": 0 });
            out.push(query_param(
                "delay_ms",
                delay,
                "Delay before it is delivered again, ms",
            ));
            out.push(lease_param());
        }
        Op::Ack => out.push(lease_param()),
        Op::Stream | Op::StreamCredits => {
            let (default, what) = match route.op {
                Op::Stream => (
                    STREAM_CREDITS_DEFAULT,
                    "The window: most messages pushed and not yet settled",
                ),
                _ => (1, "Credits to give back (the window bounds them)"),
            };
            let credits = json!({ "type": "integer", "minimum": 1, "maximum": STREAM_CREDITS_MAX, "default": default });
            out.push(query_param("credits", credits, what));
        }
        _ => {}
    }
    out
}

/// `lease` of an ack or a nack: a stream's, for a message it pushed.
fn lease_param() -> Value {
    let lease = json!({ "type": "integer", "minimum": 0, "maximum": LEASE_MAX });
    query_param(
        "lease",
        lease,
        "The stream that pushed the message (its lease); absent: a fetch's",
    )
}

fn signature_header() -> Value {
    // A key id, then a 64-byte signature (Ed25519; GOST R 34.10-2012 256
    // is as long) in base64: every value this pattern takes is parsed.
    let sig =
        json!({ "type": "string", "pattern": "^$|^[A-Za-z0-9._-]{1,64}:[A-Za-z0-9+/]{86}==$" });
    header_param(
        SIGNATURE,
        sig,
        "The sender's signature, KEY_ID:BASE64 (docs/security.md); empty: none",
    )
}

fn send_headers() -> Vec<Value> {
    let flag = json!({ "type": "string", "enum": ["true", "false"] });
    let text = json!({ "type": "string", "minLength": 1, "maxLength": 256 });
    vec![
        header_param(
            IDEMPOTENCY_KEY,
            text.clone(),
            "A repeat with the same key answers the original",
        ),
        header_param(TEST, flag.clone(), "true marks a test message"),
        header_param(TRANSACTION, text, "The sender's transaction code"),
        header_param(
            EXPIRES_IN_MS,
            json!({ "type": "integer", "minimum": 1, "maximum": EXPIRES_IN_MS_MAX }),
            "The request expires this many ms after acceptance",
        ),
        header_param(
            STATE_SECRET,
            flag,
            "true declares state-secret content (refused)",
        ),
        attachments_header(),
        signature_header(),
    ]
}

/// `Gonets-Attachments` on a request or a data answer.
fn attachments_header() -> Value {
    header_param(
        ATTACHMENTS,
        json!({ "type": "string", "pattern": "^$|^[0-9a-fA-F]{64}:[1-9][0-9]{0,18}(,[0-9a-fA-F]{64}:[1-9][0-9]{0,18}){0,15}$" }),
        "Attachments uploaded before, DIGEST:SIZE each, comma separated (upload_finish gives them)",
    )
}

fn request_body(op: Op) -> Option<Value> {
    let payload = json!({
        "required": true,
        "description": "The payload, as is",
        "content": {
            "application/octet-stream": { "schema": { "type": "string", "format": "binary" } },
            "application/json": { "schema": {} },
        },
    });
    let json_of = |name: &str| json!({ "required": true, "content": { "application/json": { "schema": schema_ref(name) } } });
    match op {
        Op::SendRequest | Op::Call | Op::SendResponse => Some(payload),
        Op::SendRequests => Some(json_of("Batch")),
        Op::SendRefusal => Some(json_of("Refusal")),
        Op::UploadBegin => Some(json_of("UploadBegin")),
        Op::UploadFinish => Some(json_of("UploadFinish")),
        Op::UploadChunk => Some(json!({
            "required": true,
            "description": "The chunk's bytes, at most 4 MiB",
            "content": { "application/octet-stream": { "schema": { "type": "string", "format": "binary" } } },
        })),
        _ => None,
    }
}

fn schema_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn responses(op: Op) -> Value {
    let (status, schema, description) = match op {
        Op::SendRequest => ("202", "Accepted", "Accepted, durable"),
        Op::SendRequests => ("200", "AcceptedMany", "One result per request, in order"),
        Op::Call => ("200", "Message", "The answer (a response or a refusal)"),
        Op::Fetch => (
            "200",
            "Messages",
            "Messages leased to the caller (none after wait_ms)",
        ),
        Op::Ack | Op::Nack | Op::SendResponse | Op::SendRefusal => ("200", "Done", "Done, durable"),
        Op::StreamCredits => ("200", "Done", "Given to the stream"),
        Op::Stream => {
            return json!({
                "200": { "description": "Server-sent events: open (lease, credits), then message (a Message with its lease), error (a Problem) and keep-alive comments", "content": {
                    "text/event-stream": { "schema": { "type": "string" } } } },
                "default": {
                    "description": "A typed error: RFC 9457 problem with the stable code",
                    "content": { "application/problem+json": { "schema": schema_ref("Problem") } },
                },
            })
        }
        Op::Status => ("200", "Status", "The request's history"),
        Op::QueueStats => ("200", "QueueStats", "The queue's figures"),
        Op::OpenApi => ("200", "OpenApi", "This document"),
        Op::UploadBegin => ("201", "Upload", "The upload, begun"),
        Op::UploadChunk => ("200", "Upload", "The chunk is durable"),
        Op::UploadStatus => ("200", "Upload", "Where the upload stands"),
        Op::UploadFinish => ("200", "AttachmentRef", "The attachment, checked and kept"),
        Op::ReadAttachment => {
            return json!({
                "200": { "description": "The attachment's bytes from offset", "content": {
                    "application/octet-stream": { "schema": { "type": "string", "format": "binary" } } } },
                "default": {
                    "description": "A typed error: RFC 9457 problem with the stable code",
                    "content": { "application/problem+json": { "schema": schema_ref("Problem") } },
                },
            })
        }
    };
    json!({
        status: { "description": description, "content": { "application/json": { "schema": schema_ref(schema) } } },
        "default": {
            "description": "A typed error: RFC 9457 problem with the stable code",
            "content": { "application/problem+json": { "schema": schema_ref("Problem") } },
        },
    })
}

fn security_schemes() -> Value {
    json!({
        "basic": { "type": "http", "scheme": "basic", "description": "Development mode (loopback only): the participant id and its registry token" },
        "mutual_tls": { "type": "mutualTLS", "description": "The client certificate names the participant, as on the native port" },
    })
}

fn nullable(t: &str) -> Value {
    json!({ "type": [t, "null"] })
}

fn schemas() -> Value {
    let text = json!({ "type": "string" });
    let int = json!({ "type": "integer", "minimum": 0 });
    let refusal_codes: Vec<&str> = RefusalCode::ALL.iter().map(|c| c.as_str()).collect();
    json!({
        "Problem": {
            "type": "object",
            "required": ["type", "title", "status", "detail", "code"],
            "properties": {
                "type": text, "title": text, "status": { "type": "integer" }, "detail": text,
                "code": text, "path": text, "reason": text, "original": text, "request_id": text,
                "size_bytes": int, "size_bytes_max": int, "durable_bytes": int,
            },
        },
        "Accepted": {
            "type": "object",
            "required": ["id", "time_ms", "duplicate", "receipt"],
            "properties": {
                "id": { "type": "string", "format": "uuid" }, "time_ms": int,
                "duplicate": { "type": "boolean" },
                "receipt": { "type": ["object", "null"], "description": "The hub's signed receipt (gonets verify-receipt)" },
            },
        },
        "AcceptedMany": {
            "type": "object", "required": ["results", "receipt"],
            "properties": {
                "receipt": { "type": ["object", "null"], "description": "The batch's one receipt: its entries are every accepted request" },
                "results": { "type": "array", "items": {
                    "type": "object",
                    "properties": { "accepted": schema_ref("Accepted"), "problem": schema_ref("Problem") },
                } },
            },
        },
        "Message": {
            "type": "object",
            "required": ["id", "type", "queue", "reply_to", "kind", "from", "time_ms", "deadline_ms",
                "delivery_count", "test", "transaction", "payload_base64", "refusal", "digest",
                "signature", "receipt", "attachments"],
            "properties": {
                "id": text, "type": { "type": "string", "enum": ["request", "response", "refusal"] },
                "queue": text, "reply_to": nullable("string"), "kind": text, "from": text,
                "time_ms": int, "deadline_ms": int, "delivery_count": int,
                "test": { "type": "boolean" }, "transaction": nullable("string"),
                "payload_base64": { "type": "string", "contentEncoding": "base64" },
                "refusal": { "type": ["object", "null"], "properties": {
                    "code": { "type": "string", "enum": refusal_codes }, "reason": text } },
                "digest": nullable("string"),
                "signature": { "type": ["object", "null"], "properties": { "key_id": text, "signature": text } },
                "receipt": nullable("object"),
                "attachments": { "type": "array", "items": schema_ref("AttachmentRef") },
            },
        },
        "AttachmentRef": {
            "type": "object", "required": ["digest", "size_bytes"],
            "properties": { "digest": { "type": "string", "pattern": "^[0-9a-f]{64}$" }, "size_bytes": int },
        },
        "Upload": {
            "type": "object", "required": ["upload", "size_bytes", "durable_bytes"],
            "properties": { "upload": { "type": "string", "format": "uuid" }, "size_bytes": int, "durable_bytes": int },
        },
        "UploadBegin": {
            "type": "object", "required": ["size_bytes"],
            "properties": { "size_bytes": { "type": "integer", "minimum": 1, "maximum": crate::attachments::OFFSET_MAX } },
        },
        "UploadFinish": {
            "type": "object", "required": ["digest"],
            "properties": { "digest": { "type": "string", "pattern": "^[0-9a-fA-F]{64}$" } },
        },
        "Messages": {
            "type": "object", "required": ["messages"],
            "properties": { "messages": { "type": "array", "items": schema_ref("Message") } },
        },
        "Done": { "type": "object", "required": ["done"], "properties": { "done": { "const": true } } },
        "Status": {
            "type": "object",
            "required": ["request_id", "answer_id", "kind", "consumer", "provider", "deadline_ms", "events"],
            "properties": {
                "request_id": text, "answer_id": nullable("string"), "kind": text, "consumer": text,
                "provider": text, "deadline_ms": int,
                "events": { "type": "array", "items": { "type": "object",
                    "required": ["event", "time_ms", "count"],
                    "properties": { "event": text, "time_ms": int, "count": int } } },
                "provider_unreachable_since_ms": nullable("integer"),
            },
        },
        "QueueStats": {
            "type": "object", "required": ["queue", "depth", "in_flight", "oldest_age_ms"],
            "properties": { "queue": text, "depth": int, "in_flight": int, "oldest_age_ms": int },
        },
        "Batch": {
            "type": "object", "required": ["requests"],
            "properties": { "requests": { "type": "array", "minItems": 1, "maxItems": BATCH_MESSAGES_MAX,
                "items": { "type": "object", "required": ["payload_base64"], "properties": {
                    "payload_base64": { "type": "string", "contentEncoding": "base64", "pattern": BASE64_PATTERN },
                    "idempotency_key": nullable("string"), "transaction": nullable("string"),
                    "test": { "type": ["boolean", "null"] },
                    "expires_in_ms": { "type": ["integer", "null"], "minimum": 1, "maximum": EXPIRES_IN_MS_MAX },
                } } } },
        },
        "Refusal": {
            "type": "object", "required": ["code", "reason"],
            "properties": { "code": { "type": "string", "enum": refusal_codes }, "reason": text },
        },
        "OpenApi": { "type": "object", "required": ["openapi", "paths"] },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_the_route_table_when_documented_then_every_route_has_its_operation() {
        let doc = document();
        for route in ROUTES {
            let op = &doc["paths"][route.path][route.method.to_lowercase()];
            assert_eq!(op["operationId"], route.operation_id, "{}", route.path);
            let params = op["parameters"].as_array().unwrap();
            for name in route.path.split('/').filter_map(|s| s.strip_prefix('{')) {
                let name = name.trim_end_matches('}');
                assert!(
                    params.iter().any(|p| p["name"] == name),
                    "{} {name}",
                    route.path
                );
            }
        }
    }

    /// `docs/gateway/openapi.json` is this document; `GONETS_BLESS=1`
    /// rewrites it after a deliberate change.
    #[test]
    fn given_the_committed_contract_when_compared_then_it_is_the_generated_one() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../docs/gateway/openapi.json");
        let generated = format!("{}\n", serde_json::to_string_pretty(&document()).unwrap());
        if std::env::var_os("GONETS_BLESS").is_some() {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &generated).unwrap();
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == generated,
            "{} differs from the gateway's generated contract: run `GONETS_BLESS=1 cargo test -p gonets-gateway` and commit it",
            path.display()
        );
    }
}
