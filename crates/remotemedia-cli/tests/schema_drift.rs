//! `schemas/manifest.v1.json` must equal what `remotemedia schema` prints: the manifest
//! types plus the params of every node type the binary registers.
//!
//! After changing the types or a node's params, regenerate it with
//! `REMOTEMEDIA_BLESS=1 cargo test -p remotemedia-cli --test schema_drift`.

use std::process::Command;

use serde_json::Value;

const REGENERATE: &str = "REMOTEMEDIA_BLESS=1 cargo test -p remotemedia-cli --test schema_drift";

fn generated() -> String {
    let o = Command::new(env!("CARGO_BIN_EXE_remotemedia"))
        .arg("schema")
        .output()
        .unwrap();
    assert!(o.status.success());
    String::from_utf8(o.stdout).unwrap()
}

fn checked_in() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../schemas/manifest.v1.json")
}

#[test]
fn checked_in_schema_matches_the_types() {
    let generated = generated();
    if std::env::var_os("REMOTEMEDIA_BLESS").is_some() {
        std::fs::write(checked_in(), &generated).unwrap();
        return;
    }
    let on_disk = std::fs::read_to_string(checked_in())
        .unwrap_or_else(|e| panic!("cannot read the schema ({e}); create it with `{REGENERATE}`"));
    assert!(
        on_disk == generated,
        "schemas/manifest.v1.json is out of date; regenerate it with `{REGENERATE}`"
    );
}

#[test]
fn every_node_type_and_its_params_are_in_the_schema() {
    let schema: Value = serde_json::from_str(&generated()).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_remotemedia"))
        .args(["nodes", "list", "--json"])
        .output()
        .unwrap();
    let docs: Value = serde_json::from_slice(&o.stdout).unwrap();
    let defs = schema["$defs"].as_object().unwrap();
    for doc in docs.as_array().unwrap() {
        let t = doc["node_type"].as_str().unwrap();
        let params = &defs[&format!("{t}.params")];
        for p in doc["params"].as_array().unwrap() {
            let name = p["name"].as_str().unwrap();
            assert!(
                params["properties"].get(name).is_some(),
                "{t}.{name} is not in the schema"
            );
        }
    }
    assert!(defs.contains_key("PythonNode.params"));
}
