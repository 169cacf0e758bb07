//! The load generator's registry: consumers `LGC1..LGCn`, providers
//! `LGP1..LGPp`, each provider serving one realtime kind and one async
//! kind that every consumer may request. `--embedded` hands it to the hub
//! it starts; against `--target`, start the hub with the output of
//! `gonets-loadgen registry` (docs in loadgen/README.md).

use crate::agency_record::PayloadFormat;

/// Consumer `i` (0-based).
pub fn consumer(i: usize) -> String {
    format!("LGC{}", i + 1)
}

/// Provider `i` (0-based).
pub fn provider(i: usize) -> String {
    format!("LGP{}", i + 1)
}

/// The realtime kind served by provider `i`.
pub fn rt_kind(i: usize) -> String {
    format!("urn:gonets:loadgen:rt-p{}:1", i + 1)
}

/// The async (bulk) kind served by provider `i`.
pub fn bulk_kind(i: usize) -> String {
    format!("urn:gonets:loadgen:bulk-p{}:1", i + 1)
}

/// The id of participant `id`'s signing key in a `--sign` registry.
pub fn key_id(id: &str) -> String {
    format!("{}-1", id.to_lowercase())
}

/// Participant `id`'s signing key in a `--sign` registry: derived from its
/// id (a load generator's, never a real participant's: anyone can make it).
pub fn signing_key(id: &str) -> gonets_trust::Ed25519Signer {
    let seed = gonets_trust::payload_digest(format!("gonets-loadgen key {id}").as_bytes());
    gonets_trust::Ed25519Signer::from_seed(seed.as_bytes())
}

/// The `keys` line of participant `id` with `sign`, else nothing.
fn keys_line(id: &str, sign: bool) -> String {
    if !sign {
        return String::new();
    }
    format!(
        "keys = [{{ id = \"{}\", algorithm = \"ed25519\", public_key = \"{}\" }}]\n",
        key_id(id),
        signing_key(id).public_key_base64()
    )
}

/// The development token of participant `id`.
pub fn token(id: &str) -> String {
    format!("dev-{}", id.to_lowercase())
}

/// The registry text for `consumers` and `providers`, each async queue
/// holding up to `queue_messages_max` requests (of any size up to the
/// kind's largest payload: its byte quota does not bind first), the async
/// (bulk) kinds' requests in `format`. With `sign` every consumer and
/// provider registers a key ([`signing_key`]) and every kind requires
/// signatures (`--sign`).
pub fn registry_toml(
    consumers: usize,
    providers: usize,
    queue_messages_max: u32,
    format: PayloadFormat,
    sign: bool,
) -> String {
    assert!(consumers > 0 && providers > 0, "at least one of each");
    let mut t = String::from("# Made by gonets-loadgen registry.\n");
    for i in 0..consumers {
        let id = consumer(i);
        t += &format!(
            "\n[[participant]]\nid = \"{id}\"\nname = \"load generator consumer {}\"\nroles = [\"consumer\"]\ntoken = \"{}\"\n{}",
            i + 1,
            token(&id),
            keys_line(&id, sign)
        );
    }
    for i in 0..providers {
        let id = provider(i);
        t += &format!(
            "\n[[participant]]\nid = \"{id}\"\nname = \"load generator provider {}\"\nroles = [\"provider\"]\ntoken = \"{}\"\n{}",
            i + 1,
            token(&id),
            keys_line(&id, sign)
        );
    }
    t += "\n[[participant]]\nid = \"LGOP\"\nname = \"load generator operator\"\nroles = [\"operator\"]\ntoken = \"dev-lgop\"\n";
    // The byte quota never binds before the message bound does (the
    // largest payload, 1 MiB by default, times the messages).
    let queue_bytes_max = u64::from(queue_messages_max) << 20;
    let rule = if sign {
        "signatures = \"required\"\n"
    } else {
        ""
    };
    let all: Vec<String> = (0..consumers)
        .map(|i| format!("\"{}\"", consumer(i)))
        .collect();
    for i in 0..providers {
        t += &format!(
            "\n[[data_kind]]\nid = \"{}\"\nprovider = \"{}\"\nmode = \"realtime\"\nconsumers = [{}]\n{rule}",
            rt_kind(i),
            provider(i),
            all.join(", ")
        );
        t += &format!(
            "\n[[data_kind]]\nid = \"{}\"\nprovider = \"{}\"\nmode = \"async\"\nqueue_messages_max = {queue_messages_max}\nqueue_bytes_max = {queue_bytes_max}\nconsumers = [{}]\n{rule}{}",
            bulk_kind(i),
            provider(i),
            all.join(", "),
            format.request_format_line()
        );
    }
    t
}

/// Every participant of the registry for `consumers` and `providers`.
pub fn participants(consumers: usize, providers: usize) -> Vec<String> {
    let mut v: Vec<String> = (0..consumers).map(consumer).collect();
    v.extend((0..providers).map(provider));
    v.push("LGOP".into());
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_counts_when_registry_made_then_the_hub_accepts_it() {
        let text = registry_toml(3, 2, 10_000_000, PayloadFormat::Bytes, false);
        let reg = gonets_engine::Registry::from_toml(&text).expect("a valid registry");
        assert_eq!(reg.participants().count(), 6);
        assert!(text.contains(&rt_kind(1)) && text.contains(&bulk_kind(1)));
        assert!(reg.kinds().all(|k| k.request_format.is_bytes()));
    }

    #[test]
    fn given_json_schema_format_when_registry_made_then_bulk_kinds_check_agency_records() {
        let text = registry_toml(2, 2, 1_000, PayloadFormat::JsonSchema, false);
        let reg = gonets_engine::Registry::from_toml(&text).expect("a valid registry");
        let record = crate::agency_record::document(4096, 7).expect("a record");
        for i in 0..2 {
            let kind = |id: String| {
                reg.kind(&gonets_types::DataKindId::new(&id))
                    .expect("a kind")
                    .clone()
            };
            let (bulk, rt) = (kind(bulk_kind(i)), kind(rt_kind(i)));
            assert!(bulk.request_format.check(&record).is_ok());
            assert!(bulk.request_format.check(b"bbbb").is_err());
            assert!(bulk.answer_format.is_bytes() && rt.request_format.is_bytes());
        }
    }

    #[test]
    fn given_sign_when_registry_made_then_every_kind_requires_signatures_and_each_key_checks() {
        let text = registry_toml(2, 2, 1_000, PayloadFormat::Bytes, true);
        let reg = gonets_engine::Registry::from_toml(&text).expect("a valid registry");
        assert!(reg
            .kinds()
            .all(|k| k.signatures == gonets_engine::registry::Signatures::Required));
        for id in participants(2, 2).iter().filter(|id| *id != "LGOP") {
            let ring = &reg.participant_by_name(id).expect("listed").keys;
            let digest = gonets_types::Digest([7; 32]);
            let signature = gonets_trust::sign_digest(&signing_key(id), &key_id(id), &digest);
            assert_eq!(ring.check(id, &signature, &digest, 0), Ok(()), "{id}");
        }
        let plain = registry_toml(2, 2, 1_000, PayloadFormat::Bytes, false);
        let reg = gonets_engine::Registry::from_toml(&plain).expect("a valid registry");
        assert!(reg.participants().all(|p| p.keys.is_empty()));
    }
}
