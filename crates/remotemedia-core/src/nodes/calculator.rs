//! `Calculator`: arithmetic with Python's rules.
//!
//! int ∘ int stays int (except `divide`, which is true division), a float on either side
//! gives a float, i64 overflow and division by zero are node errors — never a wrapped or
//! silent error value.

use schemars::JsonSchema;
use serde::Deserialize;

use crate::data::Data;
use crate::error::{ErrorKind, NodeError};
use crate::node::{ItemError, Node};
use crate::node_type::NodeType;
use crate::registry::{ParamIssue, Params};

/// An arithmetic operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Operation {
    /// `a + b`
    Add,
    /// `a - b`
    Subtract,
    /// `a * b`
    Multiply,
    /// `a / b` (always a float)
    Divide,
    /// `a ** b`
    Power,
    /// `a % b` (sign of the divisor, as in Python)
    Modulo,
}

/// Names of the operations, in the order documented.
pub const OPERATIONS: [&str; 6] = ["add", "subtract", "multiply", "divide", "power", "modulo"];

impl Operation {
    /// Parses an operation name.
    pub fn from_name(name: &str) -> Option<Operation> {
        Some(match name {
            "add" => Operation::Add,
            "subtract" => Operation::Subtract,
            "multiply" => Operation::Multiply,
            "divide" => Operation::Divide,
            "power" => Operation::Power,
            "modulo" => Operation::Modulo,
            _ => return None,
        })
    }

    /// The operation's name.
    pub fn name(self) -> &'static str {
        match self {
            Operation::Add => "add",
            Operation::Subtract => "subtract",
            Operation::Multiply => "multiply",
            Operation::Divide => "divide",
            Operation::Power => "power",
            Operation::Modulo => "modulo",
        }
    }

    /// Applies the operation to two numbers (ints or floats) with Python's semantics.
    pub fn apply(self, a: &Data, b: &Data) -> Result<Data, NodeError> {
        match (a, b) {
            (Data::Int(x), Data::Int(y)) => self.apply_int(*x, *y),
            (Data::Int(_) | Data::Float(_), Data::Int(_) | Data::Float(_)) => {
                let (x, y) = (a.as_f64().unwrap_or(0.0), b.as_f64().unwrap_or(0.0));
                self.apply_float(x, y).map(Data::Float)
            }
            _ => {
                let bad = if matches!(a, Data::Int(_) | Data::Float(_)) {
                    b
                } else {
                    a
                };
                Err(NodeError::invalid_input(format!(
                    "{} needs numbers, got {}",
                    self.name(),
                    bad.type_name()
                )))
            }
        }
    }

    fn overflow(self, x: impl std::fmt::Display, y: impl std::fmt::Display) -> NodeError {
        NodeError::arithmetic(format!(
            "integer overflow: {} of {x} and {y} does not fit a signed 64-bit int",
            self.name()
        ))
    }

    fn apply_int(self, x: i64, y: i64) -> Result<Data, NodeError> {
        let r = match self {
            Operation::Add => x.checked_add(y),
            Operation::Subtract => x.checked_sub(y),
            Operation::Multiply => x.checked_mul(y),
            Operation::Divide => {
                if y == 0 {
                    return Err(NodeError::arithmetic("division by zero"));
                }
                return Ok(Data::Float(x as f64 / y as f64));
            }
            Operation::Modulo => {
                if y == 0 {
                    return Err(NodeError::arithmetic("integer modulo by zero"));
                }
                if y == -1 {
                    return Ok(Data::Int(0));
                }
                let r = x % y;
                Some(if r != 0 && ((r < 0) != (y < 0)) {
                    r + y
                } else {
                    r
                })
            }
            Operation::Power => {
                if y < 0 {
                    if x == 0 {
                        return Err(NodeError::arithmetic(
                            "0 cannot be raised to a negative power",
                        ));
                    }
                    return self.apply_float(x as f64, y as f64).map(Data::Float);
                }
                match u32::try_from(y) {
                    Ok(e) => x.checked_pow(e),
                    Err(_) => match x {
                        0 | 1 => Some(x),
                        -1 => Some(if y % 2 == 0 { 1 } else { -1 }),
                        _ => None,
                    },
                }
            }
        };
        r.map(Data::Int).ok_or_else(|| self.overflow(x, y))
    }

    fn apply_float(self, x: f64, y: f64) -> Result<f64, NodeError> {
        match self {
            Operation::Add => Ok(x + y),
            Operation::Subtract => Ok(x - y),
            Operation::Multiply => Ok(x * y),
            Operation::Divide => {
                if y == 0.0 {
                    Err(NodeError::arithmetic("float division by zero"))
                } else {
                    Ok(x / y)
                }
            }
            Operation::Modulo => {
                if y == 0.0 {
                    return Err(NodeError::arithmetic("float modulo by zero"));
                }
                let r = x % y;
                Ok(if r != 0.0 && ((r < 0.0) != (y < 0.0)) {
                    r + y
                } else if r == 0.0 {
                    0.0f64.copysign(y)
                } else {
                    r
                })
            }
            Operation::Power => {
                if x == 0.0 && y < 0.0 {
                    return Err(NodeError::arithmetic(
                        "0.0 cannot be raised to a negative power",
                    ));
                }
                if x < 0.0 && y.fract() != 0.0 && y.is_finite() {
                    return Err(NodeError::arithmetic(format!(
                        "{x} ** {y} is a complex number; Calculator works with real numbers"
                    )));
                }
                let r = x.powf(y);
                if r.is_infinite() && x.is_finite() && y.is_finite() {
                    return Err(NodeError::arithmetic(format!(
                        "float overflow: {x} ** {y} is out of range"
                    )));
                }
                Ok(r)
            }
        }
    }
}

/// Arithmetic node; see the module docs.
#[derive(Debug, Clone)]
pub struct Calculator {
    configured: Option<(Operation, Data)>,
}

impl Calculator {
    /// A calculator applying `operation` with `operand` to numeric items.
    pub fn new(operation: Operation, operand: Data) -> Self {
        Self {
            configured: Some((operation, operand)),
        }
    }

    /// A calculator that only accepts `{"operation", "args"}` map items.
    pub fn unconfigured() -> Self {
        Self { configured: None }
    }

    fn compute(&self, item: &Data) -> Result<Data, NodeError> {
        match item {
            Data::Int(_) | Data::Float(_) => match &self.configured {
                Some((op, operand)) => op.apply(item, operand),
                None => Err(NodeError::new(
                    ErrorKind::Config,
                    "received a number but this Calculator has no `operation`/`operand` params; \
                     configure them or send {\"operation\": ..., \"args\": [a, b]}",
                )),
            },
            Data::Map(m) => {
                let op_name = m.get("operation").and_then(Data::as_str).ok_or_else(|| {
                    NodeError::invalid_input("map input needs a string field `operation`")
                })?;
                let op = Operation::from_name(op_name).ok_or_else(|| {
                    NodeError::invalid_input(format!(
                        "unknown operation \"{op_name}\"; expected one of {}",
                        OPERATIONS.join(", ")
                    ))
                })?;
                let args = m.get("args").and_then(Data::as_list).ok_or_else(|| {
                    NodeError::invalid_input("map input needs a list field `args` of two numbers")
                })?;
                if args.len() != 2 {
                    return Err(NodeError::invalid_input(format!(
                        "`args` must hold exactly two numbers, got {}",
                        args.len()
                    )));
                }
                let result = op.apply(&args[0], &args[1])?;
                let mut out = (**m).clone();
                out.insert("result".into(), result);
                Ok(Data::map(out))
            }
            other => Err(NodeError::invalid_input(format!(
                "Calculator accepts a number or {{\"operation\", \"args\"}} map, got {}",
                other.type_name()
            ))),
        }
    }
}

impl Node for Calculator {
    fn process(&mut self, item: Data, out: &mut Vec<Data>) -> Result<(), NodeError> {
        out.push(self.compute(&item)?);
        Ok(())
    }

    /// Updates the batch in place: numbers with `add`, `subtract` or `multiply` take a
    /// tight loop, anything else (other operations, maps, errors) the per-item path.
    fn process_batch(
        &mut self,
        _port: usize,
        items: &mut Vec<Data>,
        out: &mut Vec<Data>,
    ) -> Result<(), ItemError> {
        let mut k = 0;
        while k < items.len() {
            k += self.fast_run(&mut items[k..]);
            if k == items.len() {
                break;
            }
            match self.compute(&items[k]) {
                Ok(v) => items[k] = v,
                Err(error) => return Err(super::fail_at(items, k, out, error)),
            }
            k += 1;
        }
        super::emit_all(items, out);
        Ok(())
    }
}

impl Calculator {
    /// Applies a configured `add`, `subtract` or `multiply` in place to the leading
    /// numbers of `items` that it can handle without an error; returns how many it did.
    /// It stops at the first item needing the general path (not a number, integer
    /// overflow, another operation), which then reports exactly as `compute` does.
    fn fast_run(&self, items: &mut [Data]) -> usize {
        match &self.configured {
            Some((Operation::Add, operand)) => {
                numeric_prefix(items, operand, i64::checked_add, |x, y| x + y)
            }
            Some((Operation::Subtract, operand)) => {
                numeric_prefix(items, operand, i64::checked_sub, |x, y| x - y)
            }
            Some((Operation::Multiply, operand)) => {
                numeric_prefix(items, operand, i64::checked_mul, |x, y| x * y)
            }
            _ => 0,
        }
    }
}

/// Updates the leading items of `items` with `int_op` (int with int) or `float_op`
/// (a float operand), as [`Operation::apply`] would for an operation that cannot fail
/// on floats; returns how many items it updated. With an int operand only int items
/// take this loop (it is the hot case and stays as tight as a hand-written one); float
/// items go through the general path.
#[inline(always)]
fn numeric_prefix(
    items: &mut [Data],
    operand: &Data,
    int_op: impl Fn(i64, i64) -> Option<i64>,
    float_op: impl Fn(f64, f64) -> f64,
) -> usize {
    match *operand {
        Data::Int(y) => update_prefix(items, |d| match d {
            Data::Int(x) => match int_op(*x, y) {
                Some(v) => {
                    *x = v;
                    true
                }
                None => false,
            },
            _ => false,
        }),
        Data::Float(y) => update_prefix(items, |d| match *d {
            Data::Int(x) => {
                *d = Data::Float(float_op(x as f64, y));
                true
            }
            Data::Float(x) => {
                *d = Data::Float(float_op(x, y));
                true
            }
            _ => false,
        }),
        _ => 0,
    }
}

/// Applies `f` to items in order until it returns false; returns how many it applied.
/// The position is recovered from the item's address on exit, so the loop itself
/// carries no counter.
#[inline(always)]
fn update_prefix(items: &mut [Data], mut f: impl FnMut(&mut Data) -> bool) -> usize {
    let base = items.as_ptr() as usize;
    for item in items.iter_mut() {
        if !f(item) {
            return (item as *const Data as usize - base) / std::mem::size_of::<Data>();
        }
    }
    items.len()
}

/// Params of [`Calculator`]: both or neither.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CalculatorParams {
    /// Operation applied to numeric items (give with `operand`).
    pub operation: Option<Operation>,
    /// Right-hand side for numeric items (give with `operation`).
    pub operand: Option<serde_json::Number>,
}

impl NodeType for Calculator {
    const NAME: &'static str = "Calculator";
    const ALIASES: &'static [&'static str] = &["CalculatorNode"];
    const DESCRIPTION: &'static str =
        "Arithmetic with Python's rules: int with int stays int (except divide), float if \
         either side is float; overflow and division by zero are node errors.";
    const INPUT: &'static str =
        "a number (uses the params), or {\"operation\": op, \"args\": [a, b]}";
    const OUTPUT: &'static str = "a number, or the input map with \"result\" added";
    type Params = CalculatorParams;

    fn check(written: &Params) -> Vec<ParamIssue> {
        let given = |k: &str| written.get(k).filter(|v| !v.is_null());
        let mut issues = Vec::new();
        match (given("operation"), given("operand")) {
            (Some(_), None) => issues.push(ParamIssue::new(
                "operand",
                "`operation` is set but `operand` is missing; give both or neither",
            )),
            (None, Some(_)) => issues.push(ParamIssue::new(
                "operation",
                "`operand` is set but `operation` is missing; give both or neither",
            )),
            _ => {}
        }
        if let Some(v) = given("operand") {
            if v.is_u64() && !v.is_i64() {
                issues.push(ParamIssue::new(
                    "operand",
                    format!("{v} does not fit a signed 64-bit int"),
                ));
            }
        }
        issues
    }

    fn from_params(params: &CalculatorParams) -> Result<Self, NodeError> {
        Ok(match (params.operation, &params.operand) {
            (Some(op), Some(operand)) => Calculator::new(op, operand_data(operand)),
            _ => Calculator::unconfigured(),
        })
    }
}

fn operand_data(n: &serde_json::Number) -> Data {
    match n.as_i64() {
        Some(i) => Data::Int(i),
        None => Data::Float(n.as_f64().unwrap_or(f64::NAN)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn calc(op: Operation, a: Data, b: Data) -> Result<Data, NodeError> {
        op.apply(&a, &b)
    }

    #[test]
    fn int_stays_int_except_divide() {
        assert_eq!(
            calc(Operation::Add, 2.into(), 3.into()).unwrap(),
            Data::Int(5)
        );
        assert_eq!(
            calc(Operation::Divide, 6.into(), 3.into()).unwrap(),
            Data::Float(2.0)
        );
        assert_eq!(
            calc(Operation::Add, 2.into(), 0.5.into()).unwrap(),
            Data::Float(2.5)
        );
        assert_eq!(
            calc(Operation::Power, 2.into(), 10.into()).unwrap(),
            Data::Int(1024)
        );
        assert_eq!(
            calc(Operation::Power, 2.into(), (-1).into()).unwrap(),
            Data::Float(0.5)
        );
    }

    #[test]
    fn modulo_follows_python_signs() {
        assert_eq!(
            calc(Operation::Modulo, (-7).into(), 3.into()).unwrap(),
            Data::Int(2)
        );
        assert_eq!(
            calc(Operation::Modulo, 7.into(), (-3).into()).unwrap(),
            Data::Int(-2)
        );
        assert_eq!(
            calc(Operation::Modulo, i64::MIN.into(), (-1).into()).unwrap(),
            Data::Int(0)
        );
        assert_eq!(
            calc(Operation::Modulo, (-7.5).into(), 2.into()).unwrap(),
            Data::Float(0.5)
        );
    }

    #[test]
    fn errors_are_structured() {
        let e = calc(Operation::Divide, 1.into(), 0.into()).unwrap_err();
        assert_eq!(
            (e.kind, e.message.as_str()),
            (ErrorKind::Arithmetic, "division by zero")
        );
        let e = calc(Operation::Add, i64::MAX.into(), 1.into()).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Arithmetic);
        assert!(e.message.starts_with("integer overflow"), "{}", e.message);
        let e = calc(Operation::Power, 10.into(), 100.into()).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Arithmetic);
        let e = calc(Operation::Add, Data::text("a"), 1.into()).unwrap_err();
        assert_eq!(
            (e.kind, e.message.as_str()),
            (ErrorKind::InvalidInput, "add needs numbers, got text")
        );
        let e = calc(Operation::Power, (-8.0).into(), 0.5.into()).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Arithmetic);
    }

    #[test]
    fn map_form_adds_result() {
        let mut c = Calculator::unconfigured();
        let mut out = vec![];
        let item = Data::from_json_str(r#"{"operation":"multiply","args":[6,7]}"#).unwrap();
        c.process(item, &mut out).unwrap();
        assert_eq!(
            out[0].to_json_string(),
            r#"{"operation":"multiply","args":[6,7],"result":42}"#
        );
        let err = c.process(Data::Int(1), &mut out).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Config);
        let bad = Data::from_json_str(r#"{"operation":"sqrt","args":[4,0]}"#).unwrap();
        let err = c.process(bad, &mut out).unwrap_err();
        assert_eq!(
            err.message,
            "unknown operation \"sqrt\"; expected one of add, subtract, multiply, divide, power, modulo"
        );
    }

    #[test]
    fn batch_returns_failed_item_and_keeps_rest() {
        let mut c = Calculator::new(Operation::Divide, Data::Int(0));
        let mut v = vec![Data::Int(1), Data::Int(2)];
        let mut out = vec![];
        let e = c.process_batch(0, &mut v, &mut out).unwrap_err();
        assert_eq!(e.item, Data::Int(1));
        assert_eq!(v, [Data::Int(2)]);
    }

    /// `process_batch` against `process` one item at a time, on the same batch.
    fn per_item(c: &mut Calculator, items: &[Data]) -> (Vec<Data>, Vec<(Data, String)>) {
        let mut out = vec![];
        let mut failed = vec![];
        for item in items {
            if let Err(e) = c.process(item.clone(), &mut out) {
                failed.push((item.clone(), e.message));
            }
        }
        (out, failed)
    }

    fn batched(c: &mut Calculator, items: &[Data]) -> (Vec<Data>, Vec<(Data, String)>) {
        let mut rest = items.to_vec();
        let mut out = vec![Data::text("already here")];
        let mut failed = vec![];
        while let Err(e) = c.process_batch(0, &mut rest, &mut out) {
            failed.push((e.item, e.error.message));
        }
        assert!(rest.is_empty());
        assert_eq!(out.remove(0), Data::text("already here"));
        (out, failed)
    }

    #[test]
    fn batch_in_place_equals_per_item() {
        let items = vec![
            Data::Int(1),
            Data::Float(2.5),
            Data::Int(i64::MAX),
            Data::Int(-4),
            Data::text("x"),
            Data::from_json_str(r#"{"operation":"add","args":[1,2]}"#).unwrap(),
            Data::Int(i64::MIN),
            Data::Int(7),
        ];
        for op in OPERATIONS {
            for operand in [Data::Int(3), Data::Int(-1), Data::Float(0.5), Data::Int(0)] {
                let op = Operation::from_name(op).unwrap();
                let mut a = Calculator::new(op, operand.clone());
                let mut b = Calculator::new(op, operand.clone());
                assert_eq!(
                    batched(&mut a, &items),
                    per_item(&mut b, &items),
                    "{op:?} {operand:?}"
                );
            }
        }
        let mut a = Calculator::unconfigured();
        let mut b = Calculator::unconfigured();
        assert_eq!(batched(&mut a, &items), per_item(&mut b, &items));
    }

    #[test]
    fn batch_failure_keeps_earlier_outputs_and_later_items() {
        let mut c = Calculator::new(Operation::Add, Data::Int(1));
        let mut items = vec![Data::Int(1), Data::Int(i64::MAX), Data::Int(3)];
        let mut out = vec![];
        let e = c.process_batch(0, &mut items, &mut out).unwrap_err();
        assert_eq!(e.item, Data::Int(i64::MAX));
        assert_eq!(out, vec![Data::Int(2)]);
        assert_eq!(items, vec![Data::Int(3)]);
    }

    #[test]
    fn params_validated_at_load() {
        use crate::registry::NodeFactory;
        let f = crate::node_type::TypedFactory::<Calculator>::new();
        let p: Params = serde_json::from_str(r#"{"operation":"sqrt","operand":1}"#).unwrap();
        let issues = f.validate(&p);
        assert_eq!(issues.len(), 1);
        assert_eq!(
            issues[0].message,
            "invalid value \"sqrt\"; expected one of `add`, `subtract`, `multiply`, `divide`, `power`, `modulo`"
        );
        let p: Params = serde_json::from_str(r#"{"operation":"add"}"#).unwrap();
        assert_eq!(f.validate(&p).len(), 1);
        let p: Params = serde_json::from_str(r#"{"operaton":"add","operand":1}"#).unwrap();
        let issues = f.validate(&p);
        assert!(issues
            .iter()
            .any(|i| i.message == "unknown param `operaton`; did you mean `operation`?"));
    }
}
