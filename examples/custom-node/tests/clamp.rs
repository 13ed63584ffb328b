//! Unit tests of `Clamp`: processing, batches, errors and param validation.

use custom_node::{Clamp, ClampParams};
use remotemedia_core::{Data, ErrorKind, Node, NodeType, Params};

fn clamp(min: f64, max: f64, decimals: Option<u8>) -> Clamp {
    Clamp::from_params(&ClampParams { min, max, decimals }).unwrap()
}

#[test]
fn clamps_numbers_and_keeps_ints_ints() {
    let mut node = clamp(0.0, 10.0, None);
    let mut out = Vec::new();
    for item in [Data::Int(-3), Data::Int(4), Data::Int(12), Data::Float(2.5)] {
        node.process(item, &mut out).unwrap();
    }
    assert_eq!(
        out,
        [Data::Int(0), Data::Int(4), Data::Int(10), Data::Float(2.5)]
    );
    // A fractional bound cannot be an int.
    let mut out = Vec::new();
    clamp(0.0, 9.5, None)
        .process(Data::Int(12), &mut out)
        .unwrap();
    assert_eq!(out, [Data::Float(9.5)]);
}

#[test]
fn rounds_floats_to_decimals() {
    let mut node = clamp(0.0, 1.0, Some(2));
    let mut out = Vec::new();
    for item in [Data::Float(0.3333), Data::Float(0.125), Data::Int(1)] {
        node.process(item, &mut out).unwrap();
    }
    assert_eq!(out, [Data::Float(0.33), Data::Float(0.13), Data::Int(1)]);
}

#[test]
fn a_non_number_is_an_invalid_input() {
    let mut node = clamp(0.0, 1.0, None);
    let e = node
        .process(Data::text("loud"), &mut Vec::new())
        .unwrap_err();
    assert_eq!(
        (e.kind, e.message.as_str()),
        (ErrorKind::InvalidInput, "expected a number, got text")
    );
    let e = node
        .process(Data::Float(f64::NAN), &mut Vec::new())
        .unwrap_err();
    assert_eq!(e.message, "expected a number, got NaN");
}

#[test]
fn a_batch_equals_items_one_by_one() {
    let items = vec![
        Data::Float(0.25),
        Data::Int(7),
        Data::text("x"),
        Data::Float(-1.0),
        Data::Float(f64::NAN),
        Data::Int(-2),
    ];
    let mut one = clamp(0.0, 1.0, Some(1));
    let (mut want, mut want_failed) = (Vec::new(), Vec::new());
    for item in &items {
        if let Err(e) = one.process(item.clone(), &mut want) {
            // As JSON: NaN is not equal to itself.
            want_failed.push((item.to_json_string(), e.message));
        }
    }
    let mut batch = clamp(0.0, 1.0, Some(1));
    // `out` may already hold outputs of an earlier node: they must stay first.
    let (mut rest, mut got, mut got_failed) = (items.clone(), vec![Data::Null], Vec::new());
    while let Err(e) = batch.process_batch(0, &mut rest, &mut got) {
        got_failed.push((e.item.to_json_string(), e.error.message));
    }
    assert!(rest.is_empty());
    assert_eq!(got.remove(0), Data::Null);
    assert_eq!(got_failed.len(), 2);
    assert_eq!((got, got_failed), (want, want_failed));
}

#[test]
fn a_failed_batch_keeps_earlier_outputs_and_later_items() {
    let mut node = clamp(0.0, 1.0, None);
    let mut items = vec![Data::Int(5), Data::text("x"), Data::Int(-5)];
    let mut out = Vec::new();
    let e = node.process_batch(0, &mut items, &mut out).unwrap_err();
    assert_eq!(e.item, Data::text("x"));
    assert_eq!(out, [Data::Int(1)]);
    assert_eq!(items, [Data::Int(-5)]);
}

/// The messages validation gives for `params`, as `path: message`.
fn problems(params: serde_json::Value) -> Vec<String> {
    let registry = custom_node::registry();
    let params: Params = serde_json::from_value(params).unwrap();
    registry
        .get("Clamp")
        .unwrap()
        .validate(&params)
        .into_iter()
        .map(|i| format!("{}: {}", i.path, i.message))
        .collect::<Vec<_>>()
}

#[test]
fn params_are_validated_with_every_problem_at_once() {
    use serde_json::json;
    assert!(problems(json!({"min": 0, "max": 1, "decimals": 2})).is_empty());
    assert_eq!(
        problems(json!({"min": 0, "max": 1, "decimal": 2})),
        ["decimal: unknown param `decimal`; did you mean `decimals`?"]
    );
    assert_eq!(
        problems(json!({"min": "zero", "max": 1})),
        ["min: expected a number, found a string"]
    );
    assert_eq!(
        problems(json!({"min": 0})),
        ["max: missing required param `max`"]
    );
    assert_eq!(
        problems(json!({"min": 0, "max": 1, "decimals": 20})),
        ["decimals: `decimals` must be between 0 and 12, found 20"]
    );
    assert_eq!(
        problems(json!({"min": 5, "max": 1})),
        [": `min` (5) is greater than `max` (1)"]
    );
    assert_eq!(
        problems(json!({"min": 5, "max": 1.5, "decimals": -1, "round": true})),
        [
            "decimals: `decimals` must be between 0 and 12, found -1",
            "round: unknown param `round`; Clamp accepts `min`, `max`, `decimals`",
            ": `min` (5) is greater than `max` (1.5)",
        ]
    );
}
