//! `Filter`: keeps items matching one comparison.

use serde_json::Value;

use schemars::JsonSchema;
use serde::Deserialize;

use crate::data::Data;
use crate::error::{ErrorKind, NodeError};
use crate::node::{ItemError, Node};
use crate::node_type::NodeType;
use crate::registry::{quote_list, ParamIssue, Params};

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

/// Params of [`Filter`]: exactly one comparison, and optionally `field`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FilterParams {
    /// Keep items greater than this number.
    pub gt: Option<f64>,
    /// Keep items greater than or equal to this number.
    pub gte: Option<f64>,
    /// Keep items less than this number.
    pub lt: Option<f64>,
    /// Keep items less than or equal to this number.
    pub lte: Option<f64>,
    /// Keep items equal to this value.
    #[serde(default, deserialize_with = "present")]
    pub eq: Option<Value>,
    /// Keep items not equal to this value.
    #[serde(default, deserialize_with = "present")]
    pub ne: Option<Value>,
    /// Compare this key of map items instead of the item.
    pub field: Option<String>,
}

/// A value that was written, `null` included (for `eq: null`).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

impl NodeType for Filter {
    const NAME: &'static str = "Filter";
    const ALIASES: &'static [&'static str] = &["FilterNode"];
    const DESCRIPTION: &'static str =
        "Keeps the items that satisfy exactly one comparison, e.g. {\"gt\": 10}.";
    const INPUT: &'static str = "a number (or any value for eq/ne), or a map when `field` is set";
    const OUTPUT: &'static str = "the items that match, unchanged";
    type Params = FilterParams;

    fn check(written: &Params) -> Vec<ParamIssue> {
        let given: Vec<&str> = COMPARISONS
            .iter()
            .copied()
            .filter(|c| written.contains_key(*c))
            .collect();
        if given.len() == 1 {
            return Vec::new();
        }
        vec![ParamIssue::new(
            "",
            format!(
                "Filter needs exactly one comparison among {}; found {}",
                quote_list(&COMPARISONS),
                if given.is_empty() {
                    "none".to_string()
                } else {
                    quote_list(&given)
                }
            ),
        )]
    }

    fn from_params(p: &FilterParams) -> Result<Self, NodeError> {
        let number = |x: f64| Data::Float(x);
        let (cmp, value) = match (p.gt, p.gte, p.lt, p.lte, &p.eq, &p.ne) {
            (Some(x), ..) => (Cmp::Gt, number(x)),
            (_, Some(x), ..) => (Cmp::Gte, number(x)),
            (_, _, Some(x), ..) => (Cmp::Lt, number(x)),
            (_, _, _, Some(x), ..) => (Cmp::Lte, number(x)),
            (_, _, _, _, Some(v), _) => (Cmp::Eq, json_data(v)?),
            (.., Some(v)) => (Cmp::Ne, json_data(v)?),
            _ => return Err(NodeError::new(ErrorKind::Config, "no comparison given")),
        };
        Ok(Filter {
            cmp,
            value,
            field: p.field.clone(),
        })
    }
}

fn json_data(v: &Value) -> Result<Data, NodeError> {
    Data::from_json(v).map_err(|e| NodeError::new(ErrorKind::Config, e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn factory() -> crate::node_type::TypedFactory<Filter> {
        crate::node_type::TypedFactory::new()
    }

    fn filter(params: &str) -> Box<dyn Node> {
        use crate::registry::NodeFactory;
        let p: Params = serde_json::from_str(params).unwrap();
        assert!(factory().validate(&p).is_empty());
        factory().create(&p).unwrap()
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
        let issues = crate::registry::NodeFactory::validate(&factory(), &p);
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
