//! JSON Schema of manifest v1, generated from the serde types in [`super::types`] and,
//! per node type, from its params struct.
//!
//! The generated schema is checked in as `schemas/manifest.v1.json` (written by
//! `remotemedia schema`); a test fails when the checked-in copy drifts from the types.

use serde_json::{json, Map, Value};

use super::types::ManifestV1;
use crate::registry::Registry;

/// The JSON Schema (draft 2020-12) of a v1 manifest, generated from [`ManifestV1`],
/// with `params` as any object.
///
/// Editors and other tools can use it for completion and structural checks; the
/// loader's own validation ([`super::load_str`]) is stricter (node types, params,
/// connections, cycles). [`json_schema_for`] adds each node type's params.
pub fn json_schema() -> Value {
    schemars::schema_for!(ManifestV1).to_value()
}

/// [`json_schema`] with the params of every node type in `registry`: a node whose
/// `node_type` names the type (or an alias) must have params matching the type's
/// params struct, so an editor completes and checks them.
pub fn json_schema_for(registry: &Registry) -> Value {
    let mut schema = json_schema();
    let mut defs = Map::new();
    let mut rules = Vec::new();
    for doc in registry.docs() {
        let name = doc.node_type;
        let mut params = doc.params_schema.clone();
        // The params struct's own definitions move to the top level, prefixed.
        if let Some(Value::Object(own)) = params.as_object_mut().and_then(|o| o.remove("$defs")) {
            for (k, mut v) in own {
                prefix_refs(&mut v, name);
                defs.insert(format!("{name}.{k}"), v);
            }
        }
        prefix_refs(&mut params, name);
        defs.insert(format!("{name}.params"), params);
        let mut names = vec![Value::from(name)];
        names.extend(doc.aliases.iter().map(|a| Value::from(*a)));
        rules.push(json!({
            "if": {
                "properties": {"node_type": {"enum": names}},
                "required": ["node_type"]
            },
            "then": {
                "properties": {
                    "params": {"anyOf": [{"$ref": format!("#/$defs/{name}.params")}, {"type": "null"}]}
                }
            }
        }));
    }
    if let Some(all) = schema.get_mut("$defs").and_then(Value::as_object_mut) {
        all.extend(defs);
        if let Some(Value::Object(node)) = all.get_mut("NodeManifest") {
            node.insert("allOf".into(), Value::Array(rules));
        }
    }
    schema
}

/// Rewrites `#/$defs/X` references inside a node type's params schema to the prefixed
/// names they get at the top level.
fn prefix_refs(v: &mut Value, node_type: &str) {
    match v {
        Value::Object(obj) => {
            for (k, child) in obj.iter_mut() {
                if k == "$ref" {
                    if let Value::String(r) = child {
                        if let Some(name) = r.strip_prefix("#/$defs/") {
                            *r = format!("#/$defs/{node_type}.{name}");
                        }
                    }
                } else {
                    prefix_refs(child, node_type);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| prefix_refs(i, node_type)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_node_type_has_its_params_with_their_definitions() {
        let registry = Registry::builtin();
        let schema = json_schema_for(&registry);
        let defs = schema["$defs"].as_object().unwrap();
        for t in registry.types() {
            assert!(defs.contains_key(&format!("{t}.params")), "{t}");
        }
        assert_eq!(
            defs["Calculator.params"]["properties"]["operation"]["anyOf"][0]["$ref"],
            "#/$defs/Calculator.Operation"
        );
        assert!(defs.contains_key("Calculator.Operation"));
        let rules = schema["$defs"]["NodeManifest"]["allOf"].as_array().unwrap();
        let calc = rules
            .iter()
            .find(|r| r["if"]["properties"]["node_type"]["enum"][0] == "Calculator")
            .unwrap();
        assert_eq!(
            calc["if"]["properties"]["node_type"]["enum"],
            json!(["Calculator", "CalculatorNode"])
        );
    }
}
