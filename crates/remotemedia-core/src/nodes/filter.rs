//! `Filter`: keeps items matching one comparison.

use serde_json::Value;

use crate::data::Data;
use crate::error::NodeError;
use crate::node::{ItemError, Node};
use crate::registry::{
    check_documented_params, NodeDoc, NodeFactory, ParamDoc, ParamIssue, ParamType, Params,
};

const COMPARISONS: [&str; 6] = ["gt", "gte", "lt", "lte", "eq", "ne"];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cmp {
    Gt,
    Gte,
    Lt,
    Lte,
    Eq,
    Ne,
}

/// Keeps items for which `item <op> value` holds (optionally `item[field] <op> value`).
#[derive(Debug)]
pub struct Filter {
    cmp: Cmp,
    value: Data,
    field: Option<String>,
}

impl Filter {
    fn keep(&self, item: &Data) -> Result<bool, NodeError> {
        let subject = match &self.field {
            None => item,
            Some(f) => match item.as_map().and_then(|m| m.get(f)) {
                Some(v) => v,
                None => {
                    return Err(NodeError::invalid_input(format!(
                        "expected a map with field `{f}`, got {}",
                        item.type_name()
                    )))
                }
            },
        };
        match self.cmp {
            Cmp::Eq => Ok(equal(subject, &self.value)),
            Cmp::Ne => Ok(!equal(subject, &self.value)),
            ordering => {
                let (Some(a), Some(b)) = (subject.as_f64(), self.value.as_f64()) else {
                    return Err(NodeError::invalid_input(format!(
                        "cannot order {} against a number",
                        subject.type_name()
                    )));
                };
                Ok(match ordering {
                    Cmp::Gt => a > b,
                    Cmp::Gte => a >= b,
                    Cmp::Lt => a < b,
                    _ => a <= b,
                })
            }
        }
    }
}

fn equal(a: &Data, b: &Data) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

impl Node for Filter {
    fn process(&mut self, item: Data, out: &mut Vec<Data>) -> Result<(), NodeError> {
        if self.keep(&item)? {
            out.push(item);
        }
        Ok(())
    }

    /// Keeps the matching items of the batch in place (no per-item moves).
    fn process_batch(
        &mut self,
        _port: usize,
        items: &mut Vec<Data>,
        out: &mut Vec<Data>,
    ) -> Result<(), ItemError> {
        let mut kept = 0;
        for k in 0..items.len() {
            match self.keep(&items[k]) {
                Ok(true) => {
                    items.swap(kept, k);
                    kept += 1;
                }
                Ok(false) => {}
                Err(error) => {
                    let mut rest = items.split_off(k);
                    let item = rest.remove(0);
                    items.truncate(kept);
                    out.append(items);
                    *items = rest;
                    return Err(ItemError { item, error });
                }
            }
        }
        items.truncate(kept);
        super::emit_all(items, out);
        Ok(())
    }
}

pub(crate) struct FilterFactory {
    doc: NodeDoc,
}

fn cmp_doc(name: &'static str, description: &'static str, ty: ParamType) -> ParamDoc {
    ParamDoc {
        name,
        ty,
        required: false,
        choices: &[],
        default: None,
        description,
    }
}

impl FilterFactory {
    pub(crate) fn new() -> Self {
        Self {
            doc: NodeDoc {
                node_type: "Filter",
                aliases: &["FilterNode"],
                description:
                    "Keeps the items that satisfy exactly one comparison, e.g. {\"gt\": 10}.",
                input: "a number (or any value for eq/ne), or a map when `field` is set",
                output: "the items that match, unchanged",
                params: vec![
                    cmp_doc(
                        "gt",
                        "keep items greater than this number",
                        ParamType::Number,
                    ),
                    cmp_doc(
                        "gte",
                        "keep items greater than or equal to this number",
                        ParamType::Number,
                    ),
                    cmp_doc("lt", "keep items less than this number", ParamType::Number),
                    cmp_doc(
                        "lte",
                        "keep items less than or equal to this number",
                        ParamType::Number,
                    ),
                    cmp_doc("eq", "keep items equal to this value", ParamType::Any),
                    cmp_doc("ne", "keep items not equal to this value", ParamType::Any),
                    cmp_doc(
                        "field",
                        "compare this key of map items instead of the item",
                        ParamType::String,
                    ),
                ],
            },
        }
    }
}

impl NodeFactory for FilterFactory {
    fn doc(&self) -> &NodeDoc {
        &self.doc
    }

    fn validate(&self, params: &Params) -> Vec<ParamIssue> {
        let mut issues = check_documented_params(&self.doc, params);
        let given: Vec<&str> = COMPARISONS
            .iter()
            .copied()
            .filter(|c| params.contains_key(*c))
            .collect();
        if given.len() != 1 {
            issues.push(ParamIssue::new(
                "",
                format!(
                    "Filter needs exactly one comparison among {}; found {}",
                    crate::registry::quote_list(&COMPARISONS),
                    if given.is_empty() {
                        "none".to_string()
                    } else {
                        crate::registry::quote_list(&given)
                    }
                ),
            ));
        }
        issues
    }

    fn create(&self, params: &Params) -> Result<Box<dyn Node>, NodeError> {
        let (name, value) = COMPARISONS
            .iter()
            .find_map(|c| params.get(*c).map(|v| (*c, v)))
            .ok_or_else(|| {
                NodeError::new(crate::error::ErrorKind::Config, "no comparison given")
            })?;
        let cmp = match name {
            "gt" => Cmp::Gt,
            "gte" => Cmp::Gte,
            "lt" => Cmp::Lt,
            "lte" => Cmp::Lte,
            "eq" => Cmp::Eq,
            _ => Cmp::Ne,
        };
        let value = Data::from_json(value)
            .map_err(|e| NodeError::new(crate::error::ErrorKind::Config, e.to_string()))?;
        Ok(Box::new(Filter {
            cmp,
            value,
            field: params
                .get("field")
                .and_then(Value::as_str)
                .map(str::to_string),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(params: &str) -> Box<dyn Node> {
        let p: Params = serde_json::from_str(params).unwrap();
        assert!(FilterFactory::new().validate(&p).is_empty());
        FilterFactory::new().create(&p).unwrap()
    }

    #[test]
    fn keeps_matching_items() {
        let mut f = filter(r#"{"gt": 10}"#);
        let mut out = vec![];
        for i in [5, 11, 10, 20] {
            f.process(Data::Int(i), &mut out).unwrap();
        }
        assert_eq!(out, vec![Data::Int(11), Data::Int(20)]);
        let mut f = filter(r#"{"eq": "x", "field": "k"}"#);
        out.clear();
        f.process(Data::from_json_str(r#"{"k":"x"}"#).unwrap(), &mut out)
            .unwrap();
        f.process(Data::from_json_str(r#"{"k":"y"}"#).unwrap(), &mut out)
            .unwrap();
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn needs_exactly_one_comparison() {
        let p: Params = serde_json::from_str(r#"{"gt": 1, "lt": 5}"#).unwrap();
        let issues = FilterFactory::new().validate(&p);
        assert_eq!(
            issues[0].message,
            "Filter needs exactly one comparison among `gt`, `gte`, `lt`, `lte`, `eq`, `ne`; found `gt`, `lt`"
        );
    }

    #[test]
    fn a_batch_equals_items_one_by_one() {
        let items = vec![
            Data::Int(5),
            Data::Int(11),
            Data::text("x"),
            Data::Float(12.5),
            Data::Int(3),
            Data::Int(20),
        ];
        let mut one = filter(r#"{"gt": 10}"#);
        let (mut want, mut want_failed) = (vec![], vec![]);
        for item in &items {
            if let Err(e) = one.process(item.clone(), &mut want) {
                want_failed.push((item.clone(), e.message));
            }
        }
        let mut batch = filter(r#"{"gt": 10}"#);
        let (mut rest, mut got, mut got_failed) = (items.clone(), vec![], vec![]);
        while let Err(e) = batch.process_batch(0, &mut rest, &mut got) {
            got_failed.push((e.item, e.error.message));
        }
        assert!(rest.is_empty());
        assert_eq!((got, got_failed), (want, want_failed));
    }

    #[test]
    fn non_numeric_is_an_error() {
        let mut f = filter(r#"{"lt": 1}"#);
        let e = f.process(Data::text("a"), &mut vec![]).unwrap_err();
        assert_eq!(e.message, "cannot order text against a number");
    }
}
