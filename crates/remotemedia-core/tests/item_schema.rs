//! `schemas/item.v1.json` describes the JSON forms `data/json.rs` reads and writes: one
//! definition per tag, the fields each tagged form is written with, the dtypes. (Full
//! validation of real output against it is in `python/tests/test_item_schema.py`.)

use std::collections::BTreeSet;

use bytes::Bytes;
use remotemedia_core::data::RESERVED_TAGS;
use remotemedia_core::{AudioBuffer, DType, Data, Tensor};
use serde_json::Value;

fn schema() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../schemas/item.v1.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object().unwrap().keys().cloned().collect()
}

/// The fields the JSON form of `item` has under its tag.
fn written_fields(item: Data, tag: &str) -> BTreeSet<String> {
    let v: Value = serde_json::from_str(&item.to_json_string()).unwrap();
    keys(&v[tag])
}

#[test]
fn every_tag_has_its_definition() {
    let s = schema();
    let defs = &s["$defs"];
    for tag in RESERVED_TAGS {
        let name = if tag == "$map" {
            "escaped_map"
        } else {
            &tag[1..]
        };
        assert_eq!(
            defs[name]["required"],
            serde_json::json!([tag]),
            "definition `{name}` of {tag}"
        );
        let excluded = defs["map"]["not"]["anyOf"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["required"] == serde_json::json!([tag]));
        assert!(excluded, "a plain map whose only key is {tag} is not a map");
    }
}

#[test]
fn tagged_forms_list_the_fields_they_are_written_with() {
    let s = schema();
    let audio = &s["$defs"]["audio"]["properties"]["$audio"];
    let written = written_fields(
        Data::from(AudioBuffer::new(vec![0.0; 2], 8000, 1).with_pts(5)),
        "$audio",
    );
    assert_eq!(keys(&audio["properties"]), written);
    assert!(
        !audio["required"]
            .as_array()
            .unwrap()
            .contains(&Value::from("pts_us")),
        "pts_us is optional on input"
    );
    let tensor = &s["$defs"]["tensor"]["properties"]["$tensor"];
    let t = Tensor::new(vec![1], DType::U8, Bytes::from_static(b"x")).unwrap();
    assert_eq!(
        keys(&tensor["properties"]),
        written_fields(Data::from(t), "$tensor")
    );
    let dtypes: Vec<&str> = tensor["properties"]["dtype"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let ours: Vec<&str> = DType::ALL.iter().map(|d| d.name()).collect();
    assert_eq!(dtypes, ours);
}
