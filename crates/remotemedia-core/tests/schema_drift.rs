//! `schemas/manifest.v1.json` must equal the schema generated from the manifest types.
//!
//! After changing the types, regenerate it with
//! `REMOTEMEDIA_BLESS=1 cargo test -p remotemedia-core --test schema_drift`.

use std::fs;
use std::path::PathBuf;

use remotemedia_core::manifest::json_schema;

const REGENERATE: &str = "REMOTEMEDIA_BLESS=1 cargo test -p remotemedia-core --test schema_drift";

fn checked_in_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join("schemas")
        .join("manifest.v1.json")
}

fn generated_text() -> String {
    let mut text =
        serde_json::to_string_pretty(&json_schema()).expect("a JSON value always serializes");
    text.push('\n');
    text
}

#[test]
fn checked_in_schema_matches_the_types() {
    let path = checked_in_path();
    let generated = generated_text();
    if std::env::var("REMOTEMEDIA_BLESS").is_ok_and(|v| v == "1") {
        fs::create_dir_all(path.parent().expect("schema path has a parent"))
            .expect("create schemas/");
        fs::write(&path, &generated)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        return;
    }
    let checked_in = fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!("cannot read schemas/manifest.v1.json ({e}); create it with `{REGENERATE}`")
    });
    assert!(
        checked_in == generated,
        "schemas/manifest.v1.json is out of date with the manifest types; \
         regenerate it with `{REGENERATE}` and commit the result"
    );
}

#[test]
fn schema_describes_the_top_level_fields() {
    let schema = json_schema();
    let properties = schema["properties"]
        .as_object()
        .expect("the schema has top-level properties");
    let names: Vec<&str> = properties.keys().map(String::as_str).collect();
    assert_eq!(names, ["version", "metadata", "nodes", "connections"]);
    let required: Vec<&str> = schema["required"]
        .as_array()
        .expect("the schema lists required fields")
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert_eq!(required, ["version", "metadata", "nodes"]);
    assert_eq!(
        schema["additionalProperties"],
        serde_json::Value::Bool(false)
    );
}
