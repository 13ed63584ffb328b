//! A node type of its own, `Clamp`, registered next to the built-ins: the worked
//! example of `docs/writing-a-node.md`.
#![warn(missing_docs)]

use remotemedia_core::node::{emit_all, fail_at};
use remotemedia_core::{Data, ItemError, Node, NodeError, NodeType, ParamIssue, Params, Registry};
use schemars::JsonSchema;
use serde::Deserialize;

/// Params of [`Clamp`].
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClampParams {
    /// Smallest number let through (at most `max`); smaller ones become `min`.
    pub min: f64,
    /// Largest number let through; larger ones become `max`.
    pub max: f64,
    /// Round floats to this many decimal places (default: no rounding).
    #[schemars(range(max = 12))]
    pub decimals: Option<u8>,
}

/// Limits numbers to `[min, max]`, optionally rounding floats.
#[derive(Debug)]
pub struct Clamp {
    min: f64,
    max: f64,
    /// `10^decimals`, when rounding.
    scale: Option<f64>,
}

impl Clamp {
    /// The clamped (and rounded) value of one item.
    fn clamp(&self, item: &Data) -> Result<Data, NodeError> {
        let x = match item {
            Data::Int(i) => *i as f64,
            Data::Float(f) if !f.is_nan() => *f,
            Data::Float(_) => return Err(NodeError::invalid_input("expected a number, got NaN")),
            other => {
                return Err(NodeError::invalid_input(format!(
                    "expected a number, got {}",
                    other.type_name()
                )))
            }
        };
        let bound = if x < self.min {
            self.min
        } else if x > self.max {
            self.max
        } else if let Data::Float(f) = item {
            return Ok(Data::Float(self.round(*f)));
        } else {
            return Ok(item.clone());
        };
        // An int clamped to a whole bound stays an int, as it would within the range
        // (up to 2^53, where every whole f64 is exactly an int).
        Ok(match item {
            Data::Int(_) if bound.fract() == 0.0 && bound.abs() <= 2f64.powi(53) => {
                Data::Int(bound as i64)
            }
            _ => Data::Float(self.round(bound)),
        })
    }

    fn round(&self, x: f64) -> f64 {
        match self.scale {
            Some(s) => (x * s).round() / s,
            None => x,
        }
    }
}

impl Node for Clamp {
    fn process(&mut self, item: Data, out: &mut Vec<Data>) -> Result<(), NodeError> {
        out.push(self.clamp(&item)?);
        Ok(())
    }

    /// Clamps the batch in place (no per-item clone or push); the same results as
    /// `process` item by item.
    fn process_batch(
        &mut self,
        _port: usize,
        items: &mut Vec<Data>,
        out: &mut Vec<Data>,
    ) -> Result<(), ItemError> {
        for k in 0..items.len() {
            match self.clamp(&items[k]) {
                Ok(v) => items[k] = v,
                // Items before `k` go to `out`, `k` goes back with its error, the
                // ones after it stay in `items` for the executor.
                Err(error) => return Err(fail_at(items, k, out, error)),
            }
        }
        emit_all(items, out);
        Ok(())
    }
}

impl NodeType for Clamp {
    const NAME: &'static str = "Clamp";
    const DESCRIPTION: &'static str =
        "Limits numbers to [min, max]; optionally rounds floats to `decimals` places.";
    const INPUT: &'static str = "a number";
    const OUTPUT: &'static str =
        "the number within [min, max]; an int stays an int unless clamped to a fractional bound";
    type Params = ClampParams;

    fn check(written: &Params) -> Vec<ParamIssue> {
        // Only numbers are compared: a param of the wrong type is reported by the schema.
        let number = |k: &str| written.get(k).filter(|v| v.is_number());
        match (number("min"), number("max")) {
            (Some(min), Some(max)) if min.as_f64() > max.as_f64() => vec![ParamIssue::new(
                "",
                format!("`min` ({min}) is greater than `max` ({max})"),
            )],
            _ => Vec::new(),
        }
    }

    fn from_params(params: &ClampParams) -> Result<Self, NodeError> {
        Ok(Clamp {
            min: params.min,
            max: params.max,
            scale: params.decimals.map(|d| 10f64.powi(d.into())),
        })
    }
}

/// The built-in node types and `Clamp`.
pub fn registry() -> Registry {
    let mut registry = Registry::builtin();
    registry.add::<Clamp>();
    registry
}
