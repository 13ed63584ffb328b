//! Node params checked against the JSON Schema of their Rust struct.
//!
//! A node type's params are a struct deriving `serde::Deserialize` and
//! `schemars::JsonSchema` (see [`crate::NodeType`]); its doc comments, types, defaults
//! and ranges become the schema. [`check`] walks the manifest's params against that
//! schema and reports **every** problem at once, in the messages users know from the
//! rest of manifest validation — serde's derive would stop at the first. [`docs`] turns
//! the same schema into the [`ParamDoc`]s of `remotemedia nodes info`.
//!
//! The walker understands what schemars emits for param structs: `type` (one or a
//! list), `enum` and `oneOf`/`anyOf` of `const` strings (unit enums), `anyOf` with
//! `null` (options), other `anyOf`/`oneOf` (untagged enums), `$ref` into `$defs`,
//! `minimum`/`maximum` and integer `format`s, `items` of arrays and `properties` of
//! nested objects.

use serde_json::{Map, Value};

use crate::registry::{closest, json_type_name, quote_list, ParamDoc, ParamIssue, ParamType};

/// Every problem with `params` against `schema` (the schema of a params struct), in the
/// order of the params, then missing required ones. `node_type` names the type in
/// messages about unknown params.
pub fn check(schema: &Value, node_type: &str, params: &Map<String, Value>) -> Vec<ParamIssue> {
    let walker = Walker { root: schema };
    let mut issues = Vec::new();
    let props = properties(schema);
    for (key, value) in params {
        match props.and_then(|p| p.get(key)) {
            Some(prop) => walker.value(key, key, prop, value, &mut issues),
            None => issues.push(ParamIssue::new(
                key.clone(),
                unknown_message(key, node_type, props),
            )),
        }
    }
    for name in required(schema) {
        if !params.contains_key(name) {
            issues.push(ParamIssue::new(
                name,
                format!("missing required param `{name}`"),
            ));
        }
    }
    issues
}

fn unknown_message(key: &str, node_type: &str, props: Option<&Map<String, Value>>) -> String {
    let names: Vec<&str> = props
        .map(|p| p.keys().map(String::as_str).collect())
        .unwrap_or_default();
    if names.is_empty() {
        return format!("unknown param `{key}`; {node_type} takes no params");
    }
    match closest(key, names.iter().copied()) {
        Some(best) => format!("unknown param `{key}`; did you mean `{best}`?"),
        None => format!(
            "unknown param `{key}`; {node_type} accepts {}",
            quote_list(&names)
        ),
    }
}

fn properties(schema: &Value) -> Option<&Map<String, Value>> {
    schema.get("properties").and_then(Value::as_object)
}

fn required(schema: &Value) -> impl Iterator<Item = &str> {
    schema
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
}

/// Walks values against sub-schemas, resolving `$ref`s in the root's `$defs`.
struct Walker<'a> {
    root: &'a Value,
}

impl<'a> Walker<'a> {
    fn resolve(&self, schema: &'a Value) -> &'a Value {
        let mut s = schema;
        // A reference to a reference is followed a few times, never forever.
        for _ in 0..8 {
            let Some(r) = s.get("$ref").and_then(Value::as_str) else {
                break;
            };
            let Some(name) = r.strip_prefix("#/$defs/") else {
                break;
            };
            match self.root.get("$defs").and_then(|d| d.get(name)) {
                Some(def) => s = def,
                None => break,
            }
        }
        s
    }

    /// Checks `value` (the param or element at `path`, named `key` in messages).
    fn value(
        &self,
        path: &str,
        key: &str,
        schema: &'a Value,
        value: &Value,
        issues: &mut Vec<ParamIssue>,
    ) {
        let schema = self.resolve(schema);
        if let Some(choices) = string_choices(self, schema) {
            match value.as_str() {
                Some(s) if choices.contains(&s) => {}
                Some(s) => issues.push(ParamIssue::new(
                    path,
                    format!(
                        "invalid value \"{s}\"; expected one of {}",
                        quote_list(&choices)
                    ),
                )),
                None if value.is_null() && allows_null(self, schema) => {}
                None => issues.push(ParamIssue::new(
                    path,
                    format!("expected a string, found {}", json_type_name(value)),
                )),
            }
            return;
        }
        if let Some(alternatives) = schema
            .get("anyOf")
            .or_else(|| schema.get("oneOf"))
            .and_then(Value::as_array)
        {
            self.alternatives(path, key, alternatives, value, issues);
            return;
        }
        if let Some(types) = types_of(schema) {
            if !types.iter().any(|t| type_accepts(t, value)) {
                let names: Vec<&str> = types
                    .iter()
                    .filter(|t| **t != "null")
                    .map(|t| type_name(t))
                    .collect();
                issues.push(ParamIssue::new(
                    path,
                    format!(
                        "expected {}, found {}",
                        names.join(" or "),
                        json_type_name(value)
                    ),
                ));
                return;
            }
        }
        if let Some(n) = value.as_number() {
            if let Some(message) = range_problem(key, schema, n) {
                issues.push(ParamIssue::new(path, message));
            }
        }
        match value {
            Value::Array(items) => {
                if let Some(item_schema) = schema.get("items") {
                    for (i, item) in items.iter().enumerate() {
                        self.value(&format!("{path}[{i}]"), key, item_schema, item, issues);
                    }
                }
            }
            Value::Object(obj) => {
                if let Some(props) = properties(schema) {
                    for (k, v) in obj {
                        let p = format!("{path}.{k}");
                        match props.get(k) {
                            Some(prop) => self.value(&p, k, prop, v, issues),
                            None if schema.get("additionalProperties")
                                == Some(&Value::Bool(false)) =>
                            {
                                issues.push(ParamIssue::new(
                                    p,
                                    format!(
                                        "unknown field `{k}`; expected one of {}",
                                        quote_list(
                                            &props.keys().map(String::as_str).collect::<Vec<_>>()
                                        )
                                    ),
                                ))
                            }
                            None => {}
                        }
                    }
                    for name in required(schema) {
                        if !obj.contains_key(name) {
                            issues.push(ParamIssue::new(
                                path,
                                format!("missing required field `{name}`"),
                            ));
                        }
                    }
                }
            }
            _ => {}
        }
    }

    /// A value that must match one of several schemas (an option, an untagged enum).
    fn alternatives(
        &self,
        path: &str,
        key: &str,
        alternatives: &'a [Value],
        value: &Value,
        issues: &mut Vec<ParamIssue>,
    ) {
        let mut tried = Vec::new();
        for alt in alternatives {
            let mut found = Vec::new();
            self.value(path, key, alt, value, &mut found);
            if found.is_empty() {
                return;
            }
            let alt = self.resolve(alt);
            if is_null_schema(alt) {
                continue;
            }
            tried.push((alt, found));
        }
        // One real alternative (an option), or only one of the right JSON type: its
        // own message is the clearest.
        let of_kind: Vec<usize> = (0..tried.len())
            .filter(|&i| accepts_kind(self, tried[i].0, value))
            .collect();
        if tried.len() == 1 || of_kind.len() == 1 {
            let k = if tried.len() == 1 { 0 } else { of_kind[0] };
            issues.append(&mut tried.swap_remove(k).1);
            return;
        }
        let expected: Vec<String> = tried.iter().map(|(alt, _)| describe(self, alt)).collect();
        issues.push(ParamIssue::new(
            path,
            format!(
                "expected {}, found {}",
                expected.join(" or "),
                json_type_name(value)
            ),
        ));
    }
}

/// Whether `schema` takes values of `value`'s JSON type at all.
fn accepts_kind(walker: &Walker<'_>, schema: &Value, value: &Value) -> bool {
    if string_choices(walker, schema).is_some() {
        return value.is_string();
    }
    match types_of(schema) {
        Some(ts) => ts.iter().any(|t| type_accepts(t, value)),
        None => true,
    }
}

fn is_null_schema(schema: &Value) -> bool {
    schema.get("type").and_then(Value::as_str) == Some("null")
}

/// The strings a unit enum accepts (`enum`, or `oneOf`/`anyOf` of `const`s, possibly
/// with `null` for an option).
fn string_choices<'a>(walker: &Walker<'a>, schema: &'a Value) -> Option<Vec<&'a str>> {
    if let Some(e) = schema.get("enum").and_then(Value::as_array) {
        return e.iter().map(Value::as_str).collect();
    }
    let alts = schema
        .get("oneOf")
        .or_else(|| schema.get("anyOf"))
        .and_then(Value::as_array)?;
    let mut out = Vec::new();
    let mut any = false;
    for alt in alts {
        let alt = walker.resolve(alt);
        if is_null_schema(alt) {
            continue;
        }
        if let Some(c) = alt.get("const").and_then(Value::as_str) {
            out.push(c);
            any = true;
        } else if let Some(inner) = string_choices(walker, alt) {
            out.extend(inner);
            any = true;
        } else {
            return None;
        }
    }
    any.then_some(out)
}

fn allows_null(walker: &Walker<'_>, schema: &Value) -> bool {
    schema
        .get("anyOf")
        .or_else(|| schema.get("oneOf"))
        .and_then(Value::as_array)
        .is_some_and(|alts| alts.iter().any(|a| is_null_schema(walker.resolve(a))))
}

fn types_of(schema: &Value) -> Option<Vec<&str>> {
    match schema.get("type")? {
        Value::String(t) => Some(vec![t.as_str()]),
        Value::Array(ts) => Some(ts.iter().filter_map(Value::as_str).collect()),
        _ => None,
    }
}

fn type_accepts(t: &str, v: &Value) -> bool {
    match t {
        "string" => v.is_string(),
        "integer" => v.is_i64() || v.is_u64(),
        "number" => v.is_number(),
        "boolean" => v.is_boolean(),
        "object" => v.is_object(),
        "array" => v.is_array(),
        "null" => v.is_null(),
        _ => true,
    }
}

fn type_name(t: &str) -> &'static str {
    match t {
        "string" => "a string",
        "integer" => "an integer",
        "number" => "a number",
        "boolean" => "a boolean",
        "object" => "an object",
        "array" => "an array",
        "null" => "null",
        _ => "a value",
    }
}

/// A short description of what a schema accepts, for "expected … or …".
fn describe(walker: &Walker<'_>, schema: &Value) -> String {
    let schema = walker.resolve(schema);
    if let Some(c) = schema.get("const") {
        return c.to_string();
    }
    if let Some(choices) = string_choices(walker, schema) {
        return format!("one of {}", quote_list(&choices));
    }
    match types_of(schema) {
        Some(ts) => ts
            .iter()
            .filter(|t| **t != "null")
            .map(|t| type_name(t))
            .collect::<Vec<_>>()
            .join(" or "),
        None => "a value".into(),
    }
}

/// Bounds of a number: `minimum`/`maximum`, and those implied by an integer `format`.
fn bounds(schema: &Value) -> (Option<f64>, Option<f64>) {
    let (mut lo, mut hi) = (
        schema.get("minimum").and_then(Value::as_f64),
        schema.get("maximum").and_then(Value::as_f64),
    );
    let implied = match schema.get("format").and_then(Value::as_str) {
        Some("uint8") => Some((0.0, u8::MAX as f64)),
        Some("uint16") => Some((0.0, u16::MAX as f64)),
        Some("uint32") => Some((0.0, u32::MAX as f64)),
        Some("uint64" | "uint") => Some((0.0, u64::MAX as f64)),
        Some("int8") => Some((i8::MIN as f64, i8::MAX as f64)),
        Some("int16") => Some((i16::MIN as f64, i16::MAX as f64)),
        Some("int32") => Some((i32::MIN as f64, i32::MAX as f64)),
        Some("int64" | "int") => Some((i64::MIN as f64, i64::MAX as f64)),
        _ => None,
    };
    if let Some((a, b)) = implied {
        lo = Some(lo.map_or(a, |l| l.max(a)));
        hi = Some(hi.map_or(b, |h| h.min(b)));
    }
    (lo, hi)
}

fn range_problem(key: &str, schema: &Value, n: &serde_json::Number) -> Option<String> {
    let (lo, hi) = bounds(schema);
    let v = n.as_f64()?;
    let fmt = |x: f64| {
        if x.fract() == 0.0 && x.abs() < 1e18 {
            format!("{}", x as i128)
        } else {
            format!("{x}")
        }
    };
    let below = lo.is_some_and(|l| v < l);
    // u64 values above 2^53 lose precision as f64: compare them exactly.
    let above = match (hi, n.as_u64()) {
        (Some(h), Some(u)) if h >= 0.0 && h < u64::MAX as f64 => u > h as u64,
        (Some(h), _) => v > h,
        (None, _) => false,
    };
    if !below && !above {
        return None;
    }
    Some(match (lo, hi) {
        (Some(l), Some(h)) if h < i64::MAX as f64 => format!(
            "`{key}` must be between {} and {}, found {n}",
            fmt(l),
            fmt(h)
        ),
        (Some(l), _) if below => format!("`{key}` must be at least {}, found {n}", fmt(l)),
        (_, Some(h)) => format!("`{key}` must be at most {}, found {n}", fmt(h)),
        _ => format!("`{key}` is out of range, found {n}"),
    })
}

/// The documentation of every param in `schema`, in declaration order.
pub fn docs(schema: &Value) -> Vec<ParamDoc> {
    let walker = Walker { root: schema };
    let required: Vec<&str> = required(schema).collect();
    let Some(props) = properties(schema) else {
        return Vec::new();
    };
    props
        .iter()
        .map(|(name, prop)| {
            let resolved = walker.resolve(prop);
            let choices: Vec<String> = string_choices(&walker, resolved)
                .unwrap_or_default()
                .into_iter()
                .map(String::from)
                .collect();
            let ty = if !choices.is_empty() {
                ParamType::String
            } else {
                param_type(&walker, resolved)
            };
            let description = prop
                .get("description")
                .or_else(|| resolved.get("description"))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            ParamDoc {
                name: name.clone(),
                ty,
                required: required.contains(&name.as_str()),
                choices,
                default: prop
                    .get("default")
                    .filter(|d| !d.is_null())
                    .map(Value::to_string),
                description,
                schema: prop.clone(),
            }
        })
        .collect()
}

fn param_type(walker: &Walker<'_>, schema: &Value) -> ParamType {
    let of = |t: &str| match t {
        "string" => Some(ParamType::String),
        "integer" => Some(ParamType::Integer),
        "number" => Some(ParamType::Number),
        "boolean" => Some(ParamType::Boolean),
        "object" => Some(ParamType::Object),
        "array" => Some(ParamType::Array),
        _ => None,
    };
    if let Some(ts) = types_of(schema) {
        let real: Vec<ParamType> = ts.iter().filter_map(|t| of(t)).collect();
        if real.len() == 1 {
            return real[0];
        }
        return ParamType::Any;
    }
    if let Some(alts) = schema.get("anyOf").and_then(Value::as_array) {
        let real: Vec<&Value> = alts
            .iter()
            .map(|a| walker.resolve(a))
            .filter(|a| !is_null_schema(a))
            .collect();
        if real.len() == 1 {
            return param_type(walker, real[0]);
        }
    }
    ParamType::Any
}

#[cfg(test)]
mod tests {
    use schemars::JsonSchema;
    use serde::Deserialize;
    use serde_json::json;

    use super::*;

    /// A shape.
    #[derive(Deserialize, JsonSchema)]
    #[serde(rename_all = "lowercase")]
    #[allow(dead_code)]
    enum Shape {
        /// Round.
        Circle,
        /// Four sides.
        Square,
    }

    #[derive(Deserialize, JsonSchema)]
    #[serde(untagged)]
    #[allow(dead_code)]
    enum Count {
        Auto(Auto),
        N(u32),
    }

    #[derive(Deserialize, JsonSchema)]
    #[serde(rename_all = "lowercase")]
    #[allow(dead_code)]
    enum Auto {
        Auto,
    }

    /// Params of a test node.
    #[derive(Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct TestParams {
        /// What to draw.
        shape: Shape,
        /// How big, in pixels.
        #[schemars(range(min = 1, max = 100))]
        size: Option<u32>,
        /// Colour name.
        #[serde(default = "black")]
        colour: String,
        /// Whether to fill it.
        #[serde(default)]
        fill: bool,
        /// Tags.
        #[serde(default)]
        tags: Vec<String>,
        /// Copies, or "auto".
        copies: Option<Count>,
        /// Anything.
        extra: Option<serde_json::Value>,
        /// The finish.
        finish: Option<Shape>,
    }

    fn black() -> String {
        "black".into()
    }

    fn issues(params: Value) -> Vec<(String, String)> {
        let schema = serde_json::to_value(schemars::schema_for!(TestParams)).unwrap();
        check(&schema, "Draw", params.as_object().unwrap())
            .into_iter()
            .map(|i| (i.path, i.message))
            .collect()
    }

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn valid_params_have_no_issues() {
        assert_eq!(
            issues(
                json!({"shape": "circle", "size": 100, "colour": "red", "fill": true,
                           "tags": ["a"], "copies": "auto", "extra": [1, {"a": null}],
                           "finish": null})
            ),
            []
        );
        assert_eq!(issues(json!({"shape": "square", "copies": 3})), []);
    }

    #[test]
    fn every_problem_is_reported_at_once_in_param_order() {
        assert_eq!(
            issues(
                json!({"shap": "circle", "size": 0, "colour": 3, "fill": "yes",
                           "tags": ["a", 2], "copies": "many", "finish": "oval"})
            ),
            pairs(&[
                ("shap", "unknown param `shap`; did you mean `shape`?"),
                ("size", "`size` must be between 1 and 100, found 0"),
                ("colour", "expected a string, found an integer"),
                ("fill", "expected a boolean, found a string"),
                ("tags[1]", "expected a string, found an integer"),
                ("copies", "invalid value \"many\"; expected one of `auto`"),
                (
                    "finish",
                    "invalid value \"oval\"; expected one of `circle`, `square`"
                ),
                ("shape", "missing required param `shape`"),
            ])
        );
        assert_eq!(
            issues(
                json!({"shape": 1, "size": 101, "copies": -1, "zzzzzzzz": 1, "extra": 1,
                           "finish": true})
            ),
            pairs(&[
                ("shape", "expected a string, found an integer"),
                ("size", "`size` must be between 1 and 100, found 101"),
                (
                    "copies",
                    "`copies` must be between 0 and 4294967295, found -1"
                ),
                (
                    "zzzzzzzz",
                    "unknown param `zzzzzzzz`; Draw accepts `shape`, `size`, `colour`, `fill`, \
                     `tags`, `copies`, `extra`, `finish`"
                ),
                ("finish", "expected a string, found a boolean"),
            ])
        );
    }

    #[test]
    fn docs_come_from_the_struct() {
        let schema = serde_json::to_value(schemars::schema_for!(TestParams)).unwrap();
        let docs = docs(&schema);
        let names: Vec<&str> = docs.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(
            names,
            ["shape", "size", "colour", "fill", "tags", "copies", "extra", "finish"]
        );
        let shape = &docs[0];
        assert!(shape.required);
        assert_eq!(shape.ty, ParamType::String);
        assert_eq!(shape.choices, ["circle", "square"]);
        assert_eq!(shape.description, "What to draw.");
        assert_eq!(docs[1].ty, ParamType::Integer);
        assert!(!docs[1].required);
        assert_eq!(docs[2].default.as_deref(), Some("\"black\""));
        assert_eq!(docs[3].default.as_deref(), Some("false"));
        assert_eq!(docs[4].ty, ParamType::Array);
        assert_eq!(docs[5].ty, ParamType::Any);
        assert_eq!(docs[7].choices, ["circle", "square"]);
    }
}
