//! JSON Schema of manifest v1, generated from the serde types in [`super::types`].
//!
//! The generated schema is checked in as `schemas/manifest.v1.json`; a test fails when
//! the checked-in copy drifts from the types.

use super::types::ManifestV1;

/// The JSON Schema (draft 2020-12) of a v1 manifest, generated from [`ManifestV1`].
///
/// Editors and other tools can use it for completion and structural checks; the
/// loader's own validation ([`super::load_str`]) is stricter (node types, params,
/// connections, cycles).
pub fn json_schema() -> serde_json::Value {
    schemars::schema_for!(ManifestV1).to_value()
}
