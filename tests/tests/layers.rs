//! The layers of docs/architecture.md (ADR 0009), checked on the manifests:
//! each crate under `core/` depends only on the crates below it, the wire
//! protocol and the client never see the runtime, the shard or storage, and
//! clap and tracing-subscriber live only in the `gonets` binary. A new
//! arrow fails here before it spreads.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Our crates and the ones of ours each may depend on (normal dependencies).
const ALLOWED: &[(&str, &[&str])] = &[
    ("gonets-types", &[]),
    ("gonets-proto", &["gonets-types"]),
    ("gonets-client", &["gonets-types", "gonets-proto"]),
    ("gonets-storage", &[]),
    ("gonets-engine", &["gonets-types", "gonets-storage"]),
    (
        "gonets-server",
        &[
            "gonets-types",
            "gonets-proto",
            "gonets-engine",
            "gonets-storage",
        ],
    ),
    ("gonets-operator", &["gonets-types", "gonets-engine"]),
];

/// HTTP and metrics crates: the operator API's (crate `gonets-operator`),
/// never the engine's, the server's or the lower layers'.
const HTTP_CRATES: &[&str] = &[
    "hyper",
    "hyper-util",
    "http-body-util",
    "prometheus-client",
    "tokio",
];

/// Crates that no library layer but the binary may pull in.
const BINARY_ONLY: &[&str] = &["clap", "tracing-subscriber"];

/// Runtime and storage crates the client must not reach, even transitively
/// through our own crates.
const CLIENT_FORBIDDEN: &[&str] = &["glommio", "gonets-storage", "gonets-engine"];

fn manifest_dirs() -> BTreeMap<&'static str, &'static str> {
    BTreeMap::from([
        ("gonets-types", "core/types"),
        ("gonets-proto", "core/proto"),
        ("gonets-client", "core/client"),
        ("gonets-engine", "core/engine"),
        ("gonets-server", "core/server"),
        ("gonets-operator", "core/operator"),
        ("gonets", "core/gonets"),
        ("gonets-storage", "storage"),
    ])
}

/// The normal (not dev, not build) dependencies of the crate in `dir` with
/// its default features: an optional dependency counts when a default
/// feature (directly, or through the features it turns on) enables it.
fn dependencies(dir: &str) -> BTreeSet<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let path = root.join(dir).join("Cargo.toml");
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let doc: toml::Table = text
        .parse()
        .unwrap_or_else(|e| panic!("parse {}: {e}", path.display()));
    let enabled = default_features(&doc);
    let mut out = BTreeSet::new();
    if let Some(deps) = doc.get("dependencies").and_then(|d| d.as_table()) {
        for (name, spec) in deps {
            let optional = spec.get("optional").and_then(|o| o.as_bool()) == Some(true);
            if !optional || enabled.contains(name) || enabled.contains(&format!("dep:{name}")) {
                out.insert(name.clone());
            }
        }
    }
    if let Some(targets) = doc.get("target").and_then(|t| t.as_table()) {
        for t in targets.values() {
            if let Some(deps) = t.get("dependencies").and_then(|d| d.as_table()) {
                out.extend(deps.keys().cloned());
            }
        }
    }
    out
}

/// Everything the `default` feature turns on, followed through features.
fn default_features(doc: &toml::Table) -> BTreeSet<String> {
    let features = doc.get("features").and_then(|f| f.as_table());
    let mut on = BTreeSet::new();
    let mut todo = vec!["default".to_string()];
    // Bounded: each feature is expanded once.
    while let Some(f) = todo.pop() {
        if !on.insert(f.clone()) {
            continue;
        }
        let listed = features.and_then(|t| t.get(&f)).and_then(|v| v.as_array());
        for item in listed.into_iter().flatten().filter_map(|v| v.as_str()) {
            todo.push(item.split('/').next().unwrap_or(item).to_string());
        }
    }
    on
}

#[test]
fn given_the_workspace_manifests_when_read_then_each_layer_depends_only_on_the_layers_below() {
    let dirs = manifest_dirs();
    let ours: BTreeSet<&str> = dirs.keys().copied().collect();
    for (krate, allowed) in ALLOWED {
        let deps = dependencies(dirs[krate]);
        for dep in deps.iter().filter(|d| ours.contains(d.as_str())) {
            assert!(
                allowed.contains(&dep.as_str()),
                "{krate} depends on {dep}; it may depend only on {allowed:?} (docs/architecture.md)"
            );
        }
        for dep in BINARY_ONLY {
            assert!(
                !deps.contains(*dep),
                "{krate} depends on {dep}, which lives only in the gonets binary"
            );
        }
        for dep in HTTP_CRATES.iter().filter(|_| *krate != "gonets-operator") {
            assert!(
                !deps.contains(*dep),
                "{krate} depends on {dep}: HTTP lives only in gonets-operator"
            );
        }
    }
}

#[test]
fn given_the_client_when_its_dependencies_are_followed_then_no_runtime_engine_or_storage() {
    let dirs = manifest_dirs();
    let mut seen = BTreeSet::new();
    let mut todo = vec!["gonets-client".to_string()];
    // Bounded: each of our crates is visited once.
    while let Some(krate) = todo.pop() {
        if !seen.insert(krate.clone()) {
            continue;
        }
        let deps = dependencies(dirs[krate.as_str()]);
        for bad in CLIENT_FORBIDDEN {
            assert!(
                !deps.contains(*bad),
                "{krate} (reached from gonets-client) depends on {bad}: the client must run on \
                 any executor"
            );
        }
        todo.extend(deps.into_iter().filter(|d| dirs.contains_key(d.as_str())));
    }
    assert!(seen.contains("gonets-proto") && seen.contains("gonets-types"));
}
