//! Manifest text → JSON value → validated [`Pipeline`].
//!
//! Stage one parses JSON or YAML into a [`serde_json::Value`]; syntax errors carry the
//! line and column. Stage two walks that value once, top to bottom, and collects every
//! problem it finds: missing, unknown and mistyped fields at every level, the version,
//! node ids and types, params (checked by the node type's factory), hosts,
//! capabilities, retry policies, connections and cycles. Only a document without
//! problems is deserialized into the typed [`ManifestV1`] and turned into a
//! [`Pipeline`], so the serde error messages never reach users.

use std::collections::HashMap;
use std::net::Ipv6Addr;
use std::ops::RangeInclusive;

use serde::Deserialize;
use serde_json::{Map, Value};

use super::types::{
    ManifestV1, ARCHES, GPU_TYPES, MAX_BACKOFF_MS, MAX_RETRIES, MAX_TIMEOUT_MS, SUPPORTED_VERSIONS,
};
use super::{
    Format, ManifestError, ManifestErrors, NodeSpec, Pipeline, ResolvedFactories, SharedNames,
};
use crate::data::literal::{find_big_integer, has_wide_float, Step};
use crate::graph::Graph;
use crate::registry::{closest, json_type_name, quote_list, NodeFactory, Prepared, Registry};

const TOP_FIELDS: [&str; 4] = ["version", "metadata", "nodes", "connections"];
const METADATA_FIELDS: [&str; 4] = ["name", "description", "created_at", "overridable"];
const NODE_FIELDS: [&str; 9] = [
    "id",
    "node_type",
    "params",
    "capabilities",
    "host",
    "retry",
    "timeout_ms",
    "on_error",
    "stateful",
];
const CAPABILITY_FIELDS: [&str; 3] = ["gpu", "cpu", "memory_gb"];
const GPU_FIELDS: [&str; 3] = ["type", "min_memory_gb", "required"];
const CPU_FIELDS: [&str; 2] = ["cores", "arch"];
const RETRY_FIELDS: [&str; 4] = [
    "max_retries",
    "initial_backoff_ms",
    "multiplier",
    "max_backoff_ms",
];
const CONNECTION_FIELDS: [&str; 2] = ["from", "to"];
const ON_ERROR_VALUES: [&str; 2] = ["fail", "skip"];

/// Field names people write by habit, and the field they mean. A hint applies only
/// where its target is a field of the object being checked.
const FIELD_HINTS: [(&str, &str); 8] = [
    ("type", "node_type"),
    ("nodetype", "node_type"),
    ("parameters", "params"),
    ("config", "params"),
    ("source", "from"),
    ("target", "to"),
    ("edges", "connections"),
    ("retries", "max_retries"),
];
const GPU_TYPE_HINTS: [(&str, &str); 3] = [("nvidia", "cuda"), ("amd", "rocm"), ("apple", "metal")];
const ARCH_HINTS: [(&str, &str); 4] = [
    ("amd64", "x86_64"),
    ("x64", "x86_64"),
    ("x86-64", "x86_64"),
    ("arm64", "aarch64"),
];

fn single(path: &str, message: impl Into<String>) -> ManifestErrors {
    ManifestErrors(vec![ManifestError::new(path, message)])
}

/// Parses manifest text into a JSON value. Syntax errors name the line and column;
/// YAML-only constructs JSON cannot hold (tags, non-finite numbers, non-scalar keys)
/// are reported with their path.
pub(super) fn parse_text(text: &str, format: Format) -> Result<Value, ManifestErrors> {
    match format {
        Format::Json => {
            if text.trim().is_empty() {
                return Err(single("$", EMPTY_DOCUMENT));
            }
            let mut de = serde_json::Deserializer::from_str(text);
            let value = serde::de::DeserializeSeed::deserialize(UniqueKeys("$"), &mut de)
                .and_then(|v| de.end().map(|()| v))
                .map_err(|e| single("$", json_syntax_message(&e)))?;
            if has_wide_float(&value) {
                if let Some(big) = find_big_integer(text, fits_64_bits) {
                    return Err(single(&manifest_path(&big.path), too_big(&big.literal)));
                }
            }
            Ok(value)
        }
        Format::Yaml => parse_yaml(text),
    }
}

/// A JSON value whose objects have no key twice (serde_json alone keeps the last one,
/// where YAML refuses the document): the seed is the path of the value, named in the
/// error with the line and column of the repeated key.
struct UniqueKeys<'a>(&'a str);

impl<'de> serde::de::DeserializeSeed<'de> for UniqueKeys<'_> {
    type Value = Value;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for UniqueKeys<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_bool<E>(self, b: bool) -> Result<Value, E> {
        Ok(Value::Bool(b))
    }
    fn visit_i64<E>(self, n: i64) -> Result<Value, E> {
        Ok(Value::from(n))
    }
    fn visit_u64<E>(self, n: u64) -> Result<Value, E> {
        Ok(Value::from(n))
    }
    fn visit_f64<E>(self, n: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(n).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, s: &str) -> Result<Value, E> {
        Ok(Value::String(s.to_string()))
    }
    fn visit_string<E>(self, s: String) -> Result<Value, E> {
        Ok(Value::String(s))
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) =
            seq.next_element_seed(UniqueKeys(&format!("{}[{}]", self.0, items.len())))?
        {
            items.push(item);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                let at = if self.0 == "$" {
                    String::new()
                } else {
                    format!("{}: ", self.0)
                };
                return Err(serde::de::Error::custom(format!(
                    "{at}duplicate key {}",
                    Value::from(key)
                )));
            }
            let value = map.next_value_seed(UniqueKeys(&field_path(self.0, &key)))?;
            out.insert(key, value);
        }
        Ok(Value::Object(out))
    }
}

/// Whether an integer literal fits `i64` or `u64` (params of either kind exist).
fn fits_64_bits(literal: &str) -> bool {
    literal.parse::<i64>().is_ok() || literal.parse::<u64>().is_ok()
}

fn too_big(literal: &str) -> String {
    format!("integer {literal} does not fit a 64-bit int")
}

/// `nodes[1].params.operand`, the path of a manifest error.
fn manifest_path(steps: &[Step]) -> String {
    steps.iter().fold("$".to_string(), |p, step| match step {
        Step::Key(k) => field_path(&p, k),
        Step::Index(i) => format!("{p}[{i}]"),
    })
}

/// serde_yaml_ng reads an integer beyond `u64` but within 128 bits as such, which a
/// JSON value cannot hold: its error then names the path and the literal.
fn yaml_big_integer(e: &serde_yaml_ng::Error) -> Option<ManifestError> {
    let text = e.to_string();
    let (path, rest) = match text.split_once(": invalid type: integer `") {
        Some((path, rest)) => (path, rest),
        None => ("$", text.strip_prefix("invalid type: integer `")?),
    };
    let (literal, tail) = rest.split_once('`')?;
    (tail.starts_with(" as u128") || tail.starts_with(" as i128"))
        .then(|| ManifestError::new(path, too_big(literal)))
}

/// A float of `value` that YAML `text` wrote as an integer literal too large for 128
/// bits (which serde_yaml_ng reads as the nearest float, as it does `1e40`). The parsed
/// value cannot tell the two apart, so the text is searched for a plain integer token
/// of that value; only floats of at least 2^63 are looked for.
fn yaml_wide_literal(value: &Value, path: &str, text: &str) -> Option<ManifestError> {
    match value {
        Value::Number(n) if n.is_f64() => {
            let f = n.as_f64()?;
            if f.abs() < 9_223_372_036_854_775_808.0 {
                return None;
            }
            let bytes = text.as_bytes();
            let mut i = 0;
            while i < bytes.len() {
                let start = i;
                if matches!(bytes[i], b'-' | b'+') {
                    i += 1;
                }
                let digits = i;
                while i < bytes.len() && bytes[i].is_ascii_digit() {
                    i += 1;
                }
                let word = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_');
                let alone = (start == 0 || !word(bytes[start - 1]))
                    && (i == bytes.len() || !word(bytes[i]));
                if i - digits >= 19 && alone {
                    let literal = &text[start..i];
                    if !fits_64_bits(literal) && literal.parse::<f64>().ok() == Some(f) {
                        return Some(ManifestError::new(path, too_big(literal)));
                    }
                }
                i = i.max(start + 1);
            }
            None
        }
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| yaml_wide_literal(v, &format!("{path}[{i}]"), text)),
        Value::Object(map) => map
            .iter()
            .find_map(|(k, v)| yaml_wide_literal(v, &field_path(path, k), text)),
        _ => None,
    }
}

const EMPTY_DOCUMENT: &str =
    "the manifest is empty; expected an object with `version`, `metadata` and `nodes`";

fn json_syntax_message(e: &serde_json::Error) -> String {
    let full = e.to_string();
    if e.line() == 0 {
        return format!("invalid JSON: {full}");
    }
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    let bare = full.strip_suffix(&suffix).unwrap_or(&full);
    format!(
        "line {}, column {}: invalid JSON: {bare}",
        e.line(),
        e.column()
    )
}

fn parse_yaml(text: &str) -> Result<Value, ManifestErrors> {
    let mut yaml: serde_yaml_ng::Value = serde_yaml_ng::from_str(text).map_err(|e| {
        ManifestErrors(vec![yaml_big_integer(&e)
            .unwrap_or_else(|| ManifestError::new("$", yaml_syntax_message(&e)))])
    })?;
    yaml.apply_merge()
        .map_err(|e| single("$", yaml_syntax_message(&e)))?;
    let mut errors = Vec::new();
    let value = yaml_to_json(&yaml, "$", &mut errors);
    if errors.is_empty() && has_wide_float(&value) {
        errors.extend(yaml_wide_literal(&value, "$", text));
    }
    if errors.is_empty() {
        Ok(value)
    } else {
        Err(ManifestErrors(errors))
    }
}

fn yaml_syntax_message(e: &serde_yaml_ng::Error) -> String {
    let full = e.to_string();
    match e.location() {
        Some(loc) => {
            let mark = format!(" at line {} column {}", loc.line(), loc.column());
            let bare = full.replacen(&mark, "", 1);
            format!(
                "line {}, column {}: invalid YAML: {}",
                loc.line(),
                loc.column(),
                comma_before_column(&bare)
            )
        }
        None => format!("invalid YAML: {}", comma_before_column(&full)),
    }
}

/// `line 3 column 5` → `line 3, column 5`, so every position reads the same way.
fn comma_before_column(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("line ") {
        let (head, tail) = rest.split_at(at + "line ".len());
        out.push_str(head);
        let digits = tail.bytes().take_while(u8::is_ascii_digit).count();
        if digits > 0 && tail[digits..].starts_with(" column ") {
            out.push_str(&tail[..digits]);
            out.push(',');
            rest = &tail[digits..];
        } else {
            rest = tail;
        }
    }
    out.push_str(rest);
    out
}

fn yaml_to_json(v: &serde_yaml_ng::Value, path: &str, errors: &mut Vec<ManifestError>) -> Value {
    use serde_yaml_ng::Value as Y;
    match v {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(*b),
        Y::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                let f = n.as_f64().unwrap_or(f64::NAN);
                match serde_json::Number::from_f64(f) {
                    Some(n) => Value::Number(n),
                    None => {
                        errors.push(ManifestError::new(
                            path,
                            format!("expected a finite number, found {n}"),
                        ));
                        Value::Null
                    }
                }
            }
        }
        Y::String(s) => Value::String(s.clone()),
        Y::Sequence(items) => Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, item)| yaml_to_json(item, &format!("{path}[{i}]"), errors))
                .collect(),
        ),
        Y::Mapping(mapping) => {
            let mut map = Map::new();
            for (k, item) in mapping {
                let key = match k {
                    Y::String(s) => s.clone(),
                    Y::Number(n) => n.to_string(),
                    Y::Bool(b) => b.to_string(),
                    other => {
                        let found = match other {
                            Y::Null => "null",
                            Y::Sequence(_) => "a sequence",
                            Y::Mapping(_) => "a mapping",
                            _ => "a tagged value",
                        };
                        errors.push(ManifestError::new(
                            path,
                            format!("mapping keys must be strings, found {found}"),
                        ));
                        continue;
                    }
                };
                let value = yaml_to_json(item, &field_path(path, &key), errors);
                map.insert(key, value);
            }
            Value::Object(map)
        }
        Y::Tagged(tagged) => {
            errors.push(ManifestError::new(
                path,
                format!("YAML tags are not supported (found `{}`)", tagged.tag),
            ));
            Value::Null
        }
    }
}

/// Validates a parsed manifest document, reporting every problem in document order.
pub fn validate_value(value: &Value, registry: &Registry) -> Result<Pipeline, ManifestErrors> {
    let prepared = check(value, registry, &[])?;
    // Deserialize from the borrowed document: no copy of the whole tree.
    let manifest = ManifestV1::deserialize(value)
        .map_err(|e| single("$", format!("manifest does not match the v1 types: {e}")))?;
    build(manifest, registry, prepared)
}

/// Validates a manifest already in its typed form (for example one built in code),
/// with the same checks and messages as [`validate_value`].
pub fn validate_manifest(m: &ManifestV1, registry: &Registry) -> Result<Pipeline, ManifestErrors> {
    let value = serde_json::to_value(m)
        .map_err(|e| single("$", format!("cannot represent the manifest as JSON: {e}")))?;
    let prepared = check(&value, registry, &non_finite_floats(m))?;
    build(m.clone(), registry, prepared)
}

/// Float fields of a typed manifest that JSON cannot hold (they serialize as `null`).
fn non_finite_floats(m: &ManifestV1) -> Vec<(String, f64)> {
    let mut found = Vec::new();
    let mut note = |path: String, x: Option<f64>| {
        if let Some(x) = x.filter(|x| !x.is_finite()) {
            found.push((path, x));
        }
    };
    for (i, n) in m.nodes.iter().enumerate() {
        if let Some(c) = &n.capabilities {
            note(format!("nodes[{i}].capabilities.memory_gb"), c.memory_gb);
            if let Some(g) = &c.gpu {
                note(
                    format!("nodes[{i}].capabilities.gpu.min_memory_gb"),
                    g.min_memory_gb,
                );
            }
        }
        if let Some(r) = &n.retry {
            note(format!("nodes[{i}].retry.multiplier"), Some(r.multiplier));
        }
    }
    found
}

/// Runs the walker; `Err` holds every problem found.
/// Checks the whole document; returns, per node, its params in its factory's own
/// form when the factory keeps one (see `NodeFactory::prepare`).
fn check(
    value: &Value,
    registry: &Registry,
    non_finite: &[(String, f64)],
) -> Result<Vec<Option<Prepared>>, ManifestErrors> {
    let mut walker = Walker {
        registry,
        non_finite,
        errors: Vec::new(),
        prepared: Vec::new(),
    };
    walker.document(value);
    if walker.errors.is_empty() {
        Ok(walker.prepared)
    } else {
        Err(ManifestErrors(walker.errors))
    }
}

/// Turns a manifest that passed [`check`] into a [`Pipeline`].
fn build(
    manifest: ManifestV1,
    registry: &Registry,
    mut prepared: Vec<Option<Prepared>>,
) -> Result<Pipeline, ManifestErrors> {
    prepared.resize(manifest.nodes.len(), None);
    let mut nodes = Vec::with_capacity(manifest.nodes.len());
    let mut factories = Vec::with_capacity(manifest.nodes.len());
    let mut index = HashMap::new();
    for (i, n) in manifest.nodes.iter().enumerate() {
        let factory = registry.get(&n.node_type).ok_or_else(|| {
            single(
                &format!("nodes[{i}].node_type"),
                format!("unknown node type `{}`", n.node_type),
            )
        })?;
        index.entry(n.id.as_str()).or_insert(i);
        factories.push(std::sync::Arc::clone(factory));
        nodes.push(NodeSpec {
            id: n.id.clone(),
            node_type: factory.doc().node_type.to_string(),
            params: n.params.clone().unwrap_or_default(),
            capabilities: n.capabilities.clone(),
            host: n.host.clone(),
            retry: n.retry.clone(),
            timeout_ms: n.timeout_ms,
            on_error: n.on_error.unwrap_or_default(),
            stateful: n.stateful.unwrap_or(false),
        });
    }
    let mut edges = Vec::with_capacity(manifest.connections.len());
    for (i, c) in manifest.connections.iter().enumerate() {
        match (index.get(c.from.as_str()), index.get(c.to.as_str())) {
            (Some(&from), Some(&to)) => edges.push((from, to)),
            _ => {
                return Err(single(
                    &format!("connections[{i}]"),
                    format!("connection `{} -> {}` names a missing node", c.from, c.to),
                ))
            }
        }
    }
    let graph = Graph::new(nodes.len(), &edges).map_err(|cycles| {
        let ids: Vec<&str> = nodes.iter().map(|n| n.id.as_str()).collect();
        ManifestErrors(
            cycles
                .iter()
                .map(|c| ManifestError::new("connections", cycle_message(c, &ids)))
                .collect(),
        )
    })?;
    let names = SharedNames::of(&nodes, &graph);
    Ok(Pipeline {
        name: manifest.metadata.name.clone(),
        description: manifest.metadata.description.clone(),
        nodes,
        edges,
        graph,
        manifest,
        names,
        factories: ResolvedFactories {
            generation: registry.generation(),
            factories,
            prepared,
        },
    })
}

/// Nodes of a long cycle shown before the elision.
const CYCLE_HEAD: usize = 5;
/// Nodes of a long cycle shown after the elision.
const CYCLE_TAIL: usize = 3;

/// `the graph has a cycle: a -> b -> c -> a`; a long cycle shows its first and last
/// nodes around `… N more …`, so that the message stays one readable line.
fn cycle_message(cycle: &[usize], ids: &[&str]) -> String {
    let name = |i: &usize| ids.get(*i).copied().unwrap_or("?");
    let mut names: Vec<String> = Vec::new();
    if cycle.len() > CYCLE_HEAD + CYCLE_TAIL + 1 {
        names.extend(cycle[..CYCLE_HEAD].iter().map(|i| name(i).to_string()));
        let hidden = cycle.len() - CYCLE_HEAD - CYCLE_TAIL;
        names.push(format!("… {hidden} more …"));
        names.extend(
            cycle[cycle.len() - CYCLE_TAIL..]
                .iter()
                .map(|i| name(i).to_string()),
        );
    } else {
        names.extend(cycle.iter().map(|i| name(i).to_string()));
    }
    if let Some(first) = cycle.first() {
        names.push(name(first).to_string());
    }
    format!("the graph has a cycle: {}", names.join(" -> "))
}

/// `parent.key`, `key` at the top level, or `parent["odd key"]` for keys that are not
/// plain identifiers.
fn field_path(parent: &str, key: &str) -> String {
    let plain = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    match (parent, plain) {
        ("$", true) => key.to_string(),
        (_, true) => {
            // Built by hand: this runs for every field of every manifest.
            let mut p = String::with_capacity(parent.len() + 1 + key.len());
            p.push_str(parent);
            p.push('.');
            p.push_str(key);
            p
        }
        (_, false) => format!("{parent}[{}]", Value::from(key)),
    }
}

/// Whether `id` matches `^[A-Za-z0-9_-]+$`.
fn is_valid_id(id: &str) -> bool {
    !id.is_empty()
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Checks a `name:port` host; `Err` says what is wrong.
fn check_host(host: &str) -> Result<(), String> {
    if host.contains("://") {
        return Err("remove the URL scheme".into());
    }
    let port = if let Some(rest) = host.strip_prefix('[') {
        let Some((addr, after)) = rest.split_once(']') else {
            return Err("missing `]` after the IPv6 address".into());
        };
        if addr.parse::<Ipv6Addr>().is_err() {
            return Err(format!("`{addr}` is not an IPv6 address"));
        }
        after
            .strip_prefix(':')
            .ok_or_else(|| "missing `:port` after the address".to_string())?
    } else {
        let Some((name, port)) = host.rsplit_once(':') else {
            return Err("missing `:port`".into());
        };
        if name.contains(':') {
            return Err("put IPv6 addresses in brackets, e.g. `[::1]:50051`".into());
        }
        if name.is_empty() {
            return Err("the host name is empty".into());
        }
        if !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
        {
            return Err(format!(
                "host name `{name}` may only contain letters, digits, `.`, `-` and `_`"
            ));
        }
        port
    };
    if port.is_empty() {
        return Err("the port is empty".into());
    }
    if !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("port `{port}` is not a number"));
    }
    match port.parse::<u32>() {
        Ok(p) if (1..=65_535).contains(&p) => Ok(()),
        _ => Err(format!("port {port} is outside 1-65535")),
    }
}

/// The field the user probably meant by `key`, among `fields`.
fn suggest_field<'a>(key: &str, fields: &[&'a str]) -> Option<&'a str> {
    let lower = key.to_ascii_lowercase();
    FIELD_HINTS
        .iter()
        .find(|(from, to)| *from == lower && fields.contains(to))
        .and_then(|(_, to)| fields.iter().copied().find(|f| f == to))
        .or_else(|| closest(key, fields.iter().copied()))
}

/// The value the user probably meant by `word`, among `choices`.
fn suggest_choice<'a>(
    word: &str,
    choices: &[&'a str],
    hints: &[(&str, &'a str)],
) -> Option<&'a str> {
    let lower = word.to_ascii_lowercase();
    hints
        .iter()
        .find(|(from, _)| *from == lower)
        .map(|(_, to)| *to)
        .or_else(|| {
            // Values are short words, where the general rule would offer `arm` for
            // `sparc`: only suggest near-misses (a typo or two, or a case change).
            closest(word, choices.iter().copied()).filter(|best| {
                let d = strsim::damerau_levenshtein(&lower, &best.to_ascii_lowercase());
                d <= (best.len() / 3).max(1)
            })
        })
}

/// A float field's lower bound.
#[derive(Clone, Copy)]
enum Min {
    Zero,
    One,
}

/// Node ids gathered before the walk, so connections can be checked wherever they
/// appear in the document.
struct NodeIds<'v> {
    /// Id of each node (`None` when missing or not a string), by index.
    ids: Vec<Option<&'v str>>,
    /// First index of each id.
    first: HashMap<&'v str, usize>,
    /// Whether some id is used twice.
    has_duplicates: bool,
    /// Whether `nodes` is a non-empty array, i.e. connection ends can be checked.
    usable: bool,
    /// Node type of each node as written (`None` when missing or not a string).
    types: Vec<Option<&'v str>>,
}

impl<'v> NodeIds<'v> {
    fn gather(doc: &'v Map<String, Value>) -> Self {
        let nodes = doc.get("nodes").and_then(Value::as_array);
        let ids: Vec<Option<&str>> = nodes
            .map(|nodes| {
                nodes
                    .iter()
                    .map(|n| n.get("id").and_then(Value::as_str))
                    .collect()
            })
            .unwrap_or_default();
        let types: Vec<Option<&str>> = nodes
            .map(|nodes| {
                nodes
                    .iter()
                    .map(|n| n.get("node_type").and_then(Value::as_str))
                    .collect()
            })
            .unwrap_or_default();
        let mut first = HashMap::new();
        let mut has_duplicates = false;
        for (i, id) in ids.iter().enumerate() {
            if let Some(id) = id {
                if first.contains_key(id) {
                    has_duplicates = true;
                } else {
                    first.insert(*id, i);
                }
            }
        }
        Self {
            usable: !ids.is_empty(),
            ids,
            first,
            has_duplicates,
            types,
        }
    }

    /// Ids in manifest order, for suggestions.
    fn known(&self) -> impl Iterator<Item = &'v str> + '_ {
        self.ids.iter().flatten().copied()
    }
}

struct Walker<'a> {
    registry: &'a Registry,
    non_finite: &'a [(String, f64)],
    errors: Vec<ManifestError>,
    /// Per node index, its prepared params (see [`check`]).
    prepared: Vec<Option<Prepared>>,
}

impl Walker<'_> {
    fn error(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.errors.push(ManifestError::new(path, message));
    }

    fn type_error(&mut self, path: &str, ctx: &str, expected: &str, found: &Value) {
        self.error(
            path,
            format!("{ctx}expected {expected}, found {}", json_type_name(found)),
        );
    }

    /// Reports each of `required` missing from `obj`.
    fn require(&mut self, path: &str, ctx: &str, obj: &Map<String, Value>, required: &[&str]) {
        for field in required {
            if !obj.contains_key(*field) {
                self.error(
                    field_path(path, field),
                    format!("{ctx}missing required field `{field}`"),
                );
            }
        }
    }

    fn unknown_field(&mut self, path: &str, ctx: &str, key: &str, fields: &[&str]) {
        let message = match suggest_field(key, fields) {
            Some(best) => format!("{ctx}unknown field `{key}`; did you mean `{best}`?"),
            None => format!(
                "{ctx}unknown field `{key}`; expected one of {}",
                quote_list(fields)
            ),
        };
        self.error(field_path(path, key), message);
    }

    fn object<'v>(
        &mut self,
        path: &str,
        ctx: &str,
        v: &'v Value,
    ) -> Option<&'v Map<String, Value>> {
        let obj = v.as_object();
        if obj.is_none() {
            self.type_error(path, ctx, "an object", v);
        }
        obj
    }

    fn string<'v>(&mut self, path: &str, ctx: &str, v: &'v Value) -> Option<&'v str> {
        let s = v.as_str();
        if s.is_none() {
            self.type_error(path, ctx, "a string", v);
        }
        s
    }

    fn optional_string(&mut self, path: &str, ctx: &str, v: &Value) {
        if !v.is_null() {
            self.string(path, ctx, v);
        }
    }

    /// A float field; `optional` fields may be `null`.
    fn number(&mut self, path: &str, ctx: &str, key: &str, v: &Value, min: Min, optional: bool) {
        if let Some((_, x)) = self.non_finite.iter().find(|(p, _)| p == path) {
            self.error(
                path,
                format!("{ctx}`{key}` must be a finite number, found {x}"),
            );
            return;
        }
        if optional && v.is_null() {
            return;
        }
        let Some(x) = v.as_f64() else {
            self.type_error(path, ctx, "a number", v);
            return;
        };
        match min {
            Min::Zero if x < 0.0 => self.error(
                path,
                format!("{ctx}`{key}` must be a non-negative number, found {v}"),
            ),
            Min::One if x < 1.0 => self.error(
                path,
                format!("{ctx}`{key}` must be at least 1.0, found {v}"),
            ),
            _ => {}
        }
    }

    /// An unsigned integer field within `range`; `optional` fields may be `null`.
    fn integer(
        &mut self,
        path: &str,
        ctx: &str,
        key: &str,
        v: &Value,
        range: RangeInclusive<u64>,
        optional: bool,
    ) {
        if optional && v.is_null() {
            return;
        }
        if !v.is_number() {
            self.type_error(path, ctx, "an integer", v);
            return;
        }
        let (min, max) = (*range.start(), *range.end());
        let rule = if min == 0 {
            "a non-negative integer".to_string()
        } else {
            format!("an integer of at least {min}")
        };
        match v.as_u64() {
            Some(n) if n > max => self.error(
                path,
                format!("{ctx}`{key}` must be at most {max}, found {v}"),
            ),
            Some(n) if n >= min => {}
            _ => self.error(path, format!("{ctx}`{key}` must be {rule}, found {v}")),
        }
    }

    /// A string from a fixed set; `what` names it in the message.
    fn choice(
        &mut self,
        path: &str,
        ctx: &str,
        what: &str,
        v: &Value,
        choices: &[&str],
        hints: &[(&str, &str)],
    ) {
        let Some(s) = self.string(path, ctx, v) else {
            return;
        };
        if choices.contains(&s) {
            return;
        }
        let listed = quote_list(choices);
        let message = match suggest_choice(s, choices, hints) {
            Some(best) => format!(
                "{ctx}unknown {what} `{s}`; did you mean `{best}`? (expected one of {listed})"
            ),
            None => format!("{ctx}unknown {what} `{s}`; expected one of {listed}"),
        };
        self.error(path, message);
    }

    fn document(&mut self, v: &Value) {
        let Some(doc) = v.as_object() else {
            let message = if v.is_null() {
                EMPTY_DOCUMENT.to_string()
            } else {
                format!(
                    "expected an object with `version`, `metadata` and `nodes`, found {}",
                    json_type_name(v)
                )
            };
            self.error("$", message);
            return;
        };
        self.require("$", "", doc, &["version", "metadata", "nodes"]);
        let ids = NodeIds::gather(doc);
        for (key, value) in doc {
            match key.as_str() {
                "version" => self.version(value),
                "metadata" => self.metadata(value, &ids),
                "nodes" => self.nodes(value, &ids),
                "connections" => self.connections(value, &ids),
                // For editors (which schema the file follows); not read.
                "$schema" if !value.is_string() => self.error(
                    "$schema",
                    format!(
                        "expected the path or URL of a JSON Schema, found {}",
                        json_type_name(value)
                    ),
                ),
                "$schema" => {}
                _ => self.unknown_field("$", "", key, &TOP_FIELDS),
            }
        }
    }

    fn version(&mut self, v: &Value) {
        let supported = quote_list(&SUPPORTED_VERSIONS);
        match v.as_str() {
            Some(s) if SUPPORTED_VERSIONS.contains(&s) => {}
            Some(s) => self.error(
                "version",
                format!("unsupported version `{s}`; this runtime supports {supported}"),
            ),
            None => self.error(
                "version",
                format!(
                    "expected a version string ({supported}), found {}",
                    json_type_name(v)
                ),
            ),
        }
    }

    fn metadata(&mut self, v: &Value, ids: &NodeIds<'_>) {
        let path = "metadata";
        let Some(obj) = self.object(path, "", v) else {
            return;
        };
        self.require(path, "", obj, &["name"]);
        for (key, value) in obj {
            let p = field_path(path, key);
            match key.as_str() {
                "name" => {
                    self.string(&p, "", value);
                }
                "description" | "created_at" => self.optional_string(&p, "", value),
                "overridable" => self.overridable(&p, value, ids),
                _ => self.unknown_field(path, "", key, &METADATA_FIELDS),
            }
        }
    }

    /// `metadata.overridable`: `node_id.param` names a client may set per session, each
    /// an existing node and a param its type declares.
    fn overridable(&mut self, path: &str, v: &Value, ids: &NodeIds<'_>) {
        if v.is_null() {
            return;
        }
        let Some(list) = v.as_array() else {
            self.type_error(path, "", "a list of `node_id.param` strings", v);
            return;
        };
        for (i, entry) in list.iter().enumerate() {
            let p = format!("{path}[{i}]");
            let Some(text) = self.string(&p, "", entry) else {
                continue;
            };
            let Some((id, param)) = text
                .split_once('.')
                .filter(|(a, b)| !a.is_empty() && !b.is_empty())
            else {
                self.error(
                    &p,
                    format!("`{text}` is not `node_id.param` (e.g. `vad.threshold`)"),
                );
                continue;
            };
            if !ids.usable {
                continue;
            }
            let Some(&index) = ids.first.get(id) else {
                let message = match closest(id, ids.first.keys().copied()) {
                    Some(best) => format!("no node has id `{id}`; did you mean `{best}`?"),
                    None => format!("no node has id `{id}`"),
                };
                self.error(&p, message);
                continue;
            };
            let Some(factory) = ids.types[index].and_then(|t| self.registry.get(t)) else {
                continue;
            };
            let doc = factory.doc();
            if !doc.params.iter().any(|d| d.name == param) {
                let names: Vec<&str> = doc.params.iter().map(|d| d.name.as_str()).collect();
                let message = match closest(param, names.iter().copied()) {
                    Some(best) => format!(
                        "node `{id}` ({}) has no param `{param}`; did you mean `{best}`?",
                        doc.node_type
                    ),
                    None if names.is_empty() => {
                        format!("node `{id}` ({}) takes no params", doc.node_type)
                    }
                    None => format!(
                        "node `{id}` ({}) has no param `{param}`; its params are {}",
                        doc.node_type,
                        quote_list(&names)
                    ),
                };
                self.error(&p, message);
            }
        }
    }

    fn nodes(&mut self, v: &Value, ids: &NodeIds<'_>) {
        let Some(nodes) = v.as_array() else {
            self.type_error("nodes", "", "an array of nodes", v);
            return;
        };
        if nodes.is_empty() {
            self.error("nodes", "the pipeline has no nodes; add at least one");
            return;
        }
        for (i, node) in nodes.iter().enumerate() {
            self.node(i, node, ids);
        }
    }

    fn node(&mut self, i: usize, v: &Value, ids: &NodeIds<'_>) {
        let path = format!("nodes[{i}]");
        let Some(obj) = self.object(&path, "", v) else {
            return;
        };
        let id = obj
            .get("id")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty());
        let ctx = id.map(|id| format!("node `{id}`: ")).unwrap_or_default();
        let factory = obj
            .get("node_type")
            .and_then(Value::as_str)
            .and_then(|t| self.registry.get(t))
            .cloned();
        self.require(&path, &ctx, obj, &["id", "node_type"]);
        for (key, value) in obj {
            let p = field_path(&path, key);
            match key.as_str() {
                "id" => self.node_id(&p, i, value, ids),
                "node_type" => self.node_type(&p, &ctx, value),
                "params" => match value {
                    Value::Null => self.params(i, &p, id, factory.as_deref(), &Map::new()),
                    Value::Object(params) => self.params(i, &p, id, factory.as_deref(), params),
                    other => self.type_error(&p, &ctx, "an object", other),
                },
                "capabilities" => self.capabilities(&p, &ctx, value),
                "host" => {
                    if let Some(host) = value.as_str() {
                        if let Err(reason) = check_host(host) {
                            self.error(
                                &p,
                                format!(
                                    "{ctx}invalid host `{host}`: {reason}; expected `name:port`"
                                ),
                            );
                        }
                    } else if !value.is_null() {
                        self.type_error(&p, &ctx, "a string `name:port`", value);
                    }
                }
                "retry" => self.retry(&p, &ctx, value),
                "timeout_ms" => {
                    self.integer(&p, &ctx, "timeout_ms", value, 1..=MAX_TIMEOUT_MS, true)
                }
                "on_error" => {
                    if !value.is_null() {
                        self.choice(&p, &ctx, "on_error value", value, &ON_ERROR_VALUES, &[]);
                    }
                }
                "stateful" => {
                    if !value.is_null() && !value.is_boolean() {
                        self.type_error(&p, &ctx, "a boolean", value);
                    }
                }
                _ => self.unknown_field(&path, &ctx, key, &NODE_FIELDS),
            }
        }
        if !obj.contains_key("params") {
            let p = field_path(&path, "params");
            self.params(i, &p, id, factory.as_deref(), &Map::new());
        }
    }

    fn node_id(&mut self, path: &str, i: usize, v: &Value, ids: &NodeIds<'_>) {
        let Some(id) = self.string(path, "", v) else {
            return;
        };
        if id.is_empty() {
            self.error(path, "node id must not be empty");
        } else if !is_valid_id(id) {
            self.error(
                path,
                format!("invalid node id `{id}`: use only ASCII letters and digits, `_` and `-`"),
            );
        }
        if let Some(&first) = ids.first.get(id) {
            if first != i {
                self.error(
                    path,
                    format!("duplicate node id `{id}`: nodes[{first}] and nodes[{i}] both use it"),
                );
            }
        }
    }

    fn node_type(&mut self, path: &str, ctx: &str, v: &Value) {
        let Some(name) = self.string(path, ctx, v) else {
            return;
        };
        if self.registry.get(name).is_some() {
            return;
        }
        let message = match self.registry.closest_type(name) {
            Some(best) => format!("{ctx}unknown node type `{name}`; did you mean `{best}`?"),
            None => {
                let known: Vec<&str> = self.registry.types().collect();
                if known.is_empty() {
                    format!("{ctx}unknown node type `{name}`; no node types are registered")
                } else {
                    format!(
                        "{ctx}unknown node type `{name}`; known types: {}",
                        quote_list(&known)
                    )
                }
            }
        };
        self.error(path, message);
    }

    /// Checks params with the node type's factory (nothing to check when the type is
    /// unknown: that is reported on `node_type`).
    fn params(
        &mut self,
        index: usize,
        path: &str,
        id: Option<&str>,
        factory: Option<&dyn NodeFactory>,
        params: &Map<String, Value>,
    ) {
        let Some(factory) = factory else {
            return;
        };
        let issues = match factory.prepare(params) {
            Ok(prepared) => {
                if self.prepared.len() <= index {
                    self.prepared.resize(index + 1, None);
                }
                self.prepared[index] = prepared;
                return;
            }
            Err(issues) => issues,
        };
        let node_type = factory.doc().node_type;
        let ctx = match id {
            Some(id) => format!("node `{id}` ({node_type}): "),
            None => format!("{node_type}: "),
        };
        for issue in issues {
            let p = if issue.path.is_empty() {
                path.to_string()
            } else {
                format!("{path}.{}", issue.path)
            };
            self.error(p, format!("{ctx}{}", issue.message));
        }
    }

    fn capabilities(&mut self, path: &str, ctx: &str, v: &Value) {
        if v.is_null() {
            return;
        }
        let Some(obj) = self.object(path, ctx, v) else {
            return;
        };
        for (key, value) in obj {
            let p = field_path(path, key);
            match key.as_str() {
                "gpu" => self.gpu(&p, ctx, value),
                "cpu" => self.cpu(&p, ctx, value),
                "memory_gb" => self.number(&p, ctx, "memory_gb", value, Min::Zero, true),
                _ => self.unknown_field(path, ctx, key, &CAPABILITY_FIELDS),
            }
        }
    }

    fn gpu(&mut self, path: &str, ctx: &str, v: &Value) {
        if v.is_null() {
            return;
        }
        let Some(obj) = self.object(path, ctx, v) else {
            return;
        };
        self.require(path, ctx, obj, &["type"]);
        for (key, value) in obj {
            let p = field_path(path, key);
            match key.as_str() {
                "type" => self.choice(&p, ctx, "GPU type", value, &GPU_TYPES, &GPU_TYPE_HINTS),
                "min_memory_gb" => self.number(&p, ctx, "min_memory_gb", value, Min::Zero, true),
                "required" => {
                    if !value.is_null() && !value.is_boolean() {
                        self.type_error(&p, ctx, "a boolean", value);
                    }
                }
                _ => self.unknown_field(path, ctx, key, &GPU_FIELDS),
            }
        }
    }

    fn cpu(&mut self, path: &str, ctx: &str, v: &Value) {
        if v.is_null() {
            return;
        }
        let Some(obj) = self.object(path, ctx, v) else {
            return;
        };
        for (key, value) in obj {
            let p = field_path(path, key);
            match key.as_str() {
                "cores" => self.integer(&p, ctx, "cores", value, 1..=u32::MAX.into(), true),
                "arch" => {
                    if !value.is_null() {
                        self.choice(&p, ctx, "architecture", value, &ARCHES, &ARCH_HINTS);
                    }
                }
                _ => self.unknown_field(path, ctx, key, &CPU_FIELDS),
            }
        }
    }

    fn retry(&mut self, path: &str, ctx: &str, v: &Value) {
        if v.is_null() {
            return;
        }
        let Some(obj) = self.object(path, ctx, v) else {
            return;
        };
        self.require(path, ctx, obj, &["max_retries"]);
        for (key, value) in obj {
            let p = field_path(path, key);
            match key.as_str() {
                "max_retries" => {
                    self.integer(&p, ctx, "max_retries", value, 0..=MAX_RETRIES, false)
                }
                "initial_backoff_ms" | "max_backoff_ms" => {
                    self.integer(&p, ctx, key, value, 0..=MAX_BACKOFF_MS, false)
                }
                "multiplier" => self.number(&p, ctx, "multiplier", value, Min::One, false),
                _ => self.unknown_field(path, ctx, key, &RETRY_FIELDS),
            }
        }
    }

    fn connections(&mut self, v: &Value, ids: &NodeIds<'_>) {
        // `connections:` left empty (null) means none, as does leaving it out.
        if v.is_null() {
            return;
        }
        let Some(connections) = v.as_array() else {
            self.type_error("connections", "", "an array of connections", v);
            return;
        };
        let before = self.errors.len();
        // Self-loops and duplicates are reported but leave the edge list well formed.
        let mut tolerated = 0;
        let mut edges = Vec::new();
        let mut seen: HashMap<(usize, usize), usize> = HashMap::new();
        for (i, c) in connections.iter().enumerate() {
            let path = format!("connections[{i}]");
            let Some(obj) = self.object(&path, "", c) else {
                continue;
            };
            let from = obj.get("from").and_then(Value::as_str);
            let to = obj.get("to").and_then(Value::as_str);
            let ctx = match (from, to) {
                (Some(f), Some(t)) => format!("connection `{f} -> {t}`: "),
                (Some(f), None) => format!("connection from `{f}`: "),
                (None, Some(t)) => format!("connection to `{t}`: "),
                (None, None) => String::new(),
            };
            self.require(&path, &ctx, obj, &["from", "to"]);
            let mut ends = [None, None];
            for (key, value) in obj {
                let p = field_path(&path, key);
                let end = match key.as_str() {
                    "from" => 0,
                    "to" => 1,
                    _ => {
                        self.unknown_field(&path, &ctx, key, &CONNECTION_FIELDS);
                        continue;
                    }
                };
                let Some(id) = self.string(&p, &ctx, value) else {
                    continue;
                };
                if !ids.usable {
                    continue;
                }
                match ids.first.get(id) {
                    Some(&index) => ends[end] = Some(index),
                    None => {
                        let role = if end == 0 { "source" } else { "target" };
                        let hint = closest(id, ids.known())
                            .map(|best| format!("; did you mean `{best}`?"))
                            .unwrap_or_default();
                        self.error(p, format!("{ctx}{role} node `{id}` does not exist{hint}"));
                    }
                }
            }
            if let Some(t) = ends[1] {
                let source = ids.types.get(t).copied().flatten().and_then(|ty| {
                    let factory = self.registry.get(ty)?;
                    factory.is_source().then(|| factory.doc().node_type)
                });
                if let Some(ty) = source {
                    let id = ids.ids[t].unwrap_or("?");
                    self.error(
                        &path,
                        format!(
                            "{ctx}`{id}` is a source ({ty}): it makes its own items and takes no input"
                        ),
                    );
                    tolerated += 1;
                }
            }
            if let [Some(f), Some(t)] = ends {
                if f == t {
                    self.error(&path, format!("{ctx}a node cannot connect to itself"));
                    tolerated += 1;
                } else if let Some(&earlier) = seen.get(&(f, t)) {
                    self.error(
                        &path,
                        format!("{ctx}duplicate connection (same as connections[{earlier}])"),
                    );
                    tolerated += 1;
                } else {
                    seen.insert((f, t), i);
                    edges.push((f, t));
                }
            }
        }
        // Cycles are only meaningful on a well-formed edge list: skip the check when a
        // connection is broken or an id is ambiguous (both are reported already).
        // Self-loops never reach `edges`; they have their own message, and other cycles
        // are still reported next to them.
        if self.errors.len() - tolerated > before || !ids.usable || ids.has_duplicates {
            return;
        }
        if let Err(cycles) = Graph::new(ids.ids.len(), &edges) {
            let names: Vec<&str> = ids.ids.iter().map(|id| id.unwrap_or("?")).collect();
            for cycle in cycles {
                self.error("connections", cycle_message(&cycle, &names));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn errors(v: Value) -> Vec<String> {
        match validate_value(&v, &Registry::builtin()) {
            Ok(_) => Vec::new(),
            Err(e) => e.0.iter().map(ToString::to_string).collect(),
        }
    }

    fn manifest(nodes: Value, connections: Value) -> Value {
        json!({
            "version": "v1",
            "metadata": {"name": "t"},
            "nodes": nodes,
            "connections": connections,
        })
    }

    fn chain(ids: &[&str]) -> Value {
        Value::Array(
            ids.iter()
                .map(|id| json!({"id": id, "node_type": "PassThrough"}))
                .collect(),
        )
    }

    #[test]
    fn hosts() {
        for ok in [
            "localhost:50051",
            "gpu-1.example.com:443",
            "box_2:1",
            "10.0.0.7:65535",
            "[::1]:8080",
            "[2001:db8::42]:50051",
        ] {
            assert_eq!(check_host(ok), Ok(()), "{ok}");
        }
        let cases = [
            ("gpu-box", "missing `:port`"),
            (":50051", "the host name is empty"),
            ("gpu-box:", "the port is empty"),
            ("gpu-box:0", "port 0 is outside 1-65535"),
            ("gpu-box:65536", "port 65536 is outside 1-65535"),
            ("gpu-box:99999999999", "port 99999999999 is outside 1-65535"),
            ("gpu-box:http", "port `http` is not a number"),
            ("gpu-box:-1", "port `-1` is not a number"),
            (
                "gpu box:80",
                "host name `gpu box` may only contain letters, digits, `.`, `-` and `_`",
            ),
            (
                "::1:80",
                "put IPv6 addresses in brackets, e.g. `[::1]:50051`",
            ),
            ("[::1]", "missing `:port` after the address"),
            ("[::1:80", "missing `]` after the IPv6 address"),
            ("[gpu-box]:80", "`gpu-box` is not an IPv6 address"),
            ("http://gpu-box:80", "remove the URL scheme"),
        ];
        for (host, reason) in cases {
            assert_eq!(check_host(host), Err(reason.to_string()), "{host}");
        }
    }

    #[test]
    fn host_error_names_the_node() {
        let v = manifest(
            json!([{"id": "a", "node_type": "Echo", "host": "gpu-box:0"}]),
            json!([]),
        );
        assert_eq!(
            errors(v),
            [
                "nodes[0].host: node `a`: invalid host `gpu-box:0`: port 0 is outside 1-65535; expected `name:port`"
            ]
        );
    }

    #[test]
    fn a_long_cycle_shows_its_ends() {
        let ids: Vec<String> = (0..10_000).map(|i| format!("n{i}")).collect();
        let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        let cycle: Vec<usize> = (0..10_000).collect();
        assert_eq!(
            cycle_message(&cycle, &refs),
            "the graph has a cycle: n0 -> n1 -> n2 -> n3 -> n4 -> … 9992 more … -> n9997 -> \
             n9998 -> n9999 -> n0"
        );
        // Nine nodes are shown whole: eliding one would say no less.
        assert_eq!(
            cycle_message(&cycle[..9], &refs),
            "the graph has a cycle: n0 -> n1 -> n2 -> n3 -> n4 -> n5 -> n6 -> n7 -> n8 -> n0"
        );
    }

    #[test]
    fn cycle_text() {
        let v = manifest(
            chain(&["a", "b", "c", "d"]),
            json!([
                {"from": "a", "to": "b"},
                {"from": "b", "to": "c"},
                {"from": "c", "to": "a"},
                {"from": "c", "to": "d"},
            ]),
        );
        assert_eq!(
            errors(v),
            ["connections: the graph has a cycle: a -> b -> c -> a"]
        );
        let v = manifest(
            chain(&["a", "b", "x", "y"]),
            json!([
                {"from": "a", "to": "b"},
                {"from": "b", "to": "a"},
                {"from": "y", "to": "x"},
                {"from": "x", "to": "y"},
            ]),
        );
        assert_eq!(
            errors(v),
            [
                "connections: the graph has a cycle: a -> b -> a",
                "connections: the graph has a cycle: x -> y -> x",
            ]
        );
    }

    #[test]
    fn a_self_loop_does_not_hide_another_cycle() {
        let v = manifest(
            chain(&["a", "b", "c"]),
            json!([{"from": "a", "to": "a"}, {"from": "b", "to": "c"}, {"from": "c", "to": "b"},
                   {"from": "b", "to": "c"}]),
        );
        assert_eq!(
            errors(v),
            [
                "connections[0]: connection `a -> a`: a node cannot connect to itself",
                "connections[3]: connection `b -> c`: duplicate connection (same as connections[1])",
                "connections: the graph has a cycle: b -> c -> b",
            ]
        );
    }

    #[test]
    fn empty_connections_mean_none() {
        for empty in [json!(null), json!([])] {
            assert_eq!(errors(manifest(chain(&["a"]), empty)), Vec::<String>::new());
        }
    }

    #[test]
    fn self_loop_is_not_also_a_cycle() {
        let v = manifest(chain(&["a"]), json!([{"from": "a", "to": "a"}]));
        assert_eq!(
            errors(v),
            ["connections[0]: connection `a -> a`: a node cannot connect to itself"]
        );
    }

    #[test]
    fn cycle_check_skipped_when_connections_are_broken() {
        let v = manifest(
            chain(&["a", "b"]),
            json!([{"from": "a", "to": "b"}, {"from": "b", "to": "a"}, {"from": "a", "to": "zz"}]),
        );
        assert_eq!(
            errors(v),
            ["connections[2].to: connection `a -> zz`: target node `zz` does not exist"]
        );
    }

    #[test]
    fn closest_name_suggestions() {
        assert_eq!(suggest_field("node_typ", &NODE_FIELDS), Some("node_type"));
        assert_eq!(suggest_field("type", &NODE_FIELDS), Some("node_type"));
        assert_eq!(suggest_field("type", &GPU_FIELDS), Some("type"));
        assert_eq!(suggest_field("target", &CONNECTION_FIELDS), Some("to"));
        assert_eq!(suggest_field("colour", &NODE_FIELDS), None);
        assert_eq!(
            suggest_choice("arm64", &ARCHES, &ARCH_HINTS),
            Some("aarch64")
        );
        assert_eq!(
            suggest_choice("CUDA", &GPU_TYPES, &GPU_TYPE_HINTS),
            Some("cuda")
        );
        assert_eq!(suggest_choice("tpu", &GPU_TYPES, &GPU_TYPE_HINTS), None);
        assert_eq!(
            suggest_choice("vulcan", &GPU_TYPES, &GPU_TYPE_HINTS),
            Some("vulkan")
        );
        assert_eq!(suggest_choice("sparc", &ARCHES, &ARCH_HINTS), None);
        assert_eq!(suggest_choice("skipp", &ON_ERROR_VALUES, &[]), Some("skip"));

        let v = manifest(
            json!([
                {"id": "source", "node_type": "Calculater", "params": {"operation": "add", "operand": 1}},
                {"id": "sink", "node_typ": "Echo"},
            ]),
            json!([{"from": "sourse", "to": "sink"}]),
        );
        assert_eq!(
            errors(v),
            [
                "nodes[0].node_type: node `source`: unknown node type `Calculater`; did you mean `Calculator`?",
                "nodes[1].node_type: node `sink`: missing required field `node_type`",
                "nodes[1].node_typ: node `sink`: unknown field `node_typ`; did you mean `node_type`?",
                "connections[0].from: connection `sourse -> sink`: source node `sourse` does not exist; did you mean `source`?",
            ]
        );
    }

    #[test]
    fn unknown_type_without_a_close_name_lists_known_types() {
        let v = manifest(json!([{"id": "a", "node_type": "Whisper"}]), json!([]));
        assert_eq!(
            errors(v),
            ["nodes[0].node_type: node `a`: unknown node type `Whisper`; known types: `Calculator`, `Echo`, `Filter`, `PassThrough`, `Zip`"]
        );
    }

    #[test]
    fn odd_keys_are_quoted_in_paths() {
        assert_eq!(field_path("$", "nodes"), "nodes");
        assert_eq!(field_path("nodes[0]", "host"), "nodes[0].host");
        assert_eq!(field_path("$", "my key"), "$[\"my key\"]");
        assert_eq!(field_path("metadata", ""), "metadata[\"\"]");
    }

    #[test]
    fn positions_read_the_same_way() {
        assert_eq!(
            comma_before_column("x at line 3 column 5, y at line 1 column 1"),
            "x at line 3, column 5, y at line 1, column 1"
        );
        assert_eq!(comma_before_column("inline 4 columns"), "inline 4 columns");
    }

    #[test]
    fn typed_manifest_with_non_finite_floats() {
        let v = manifest(
            json!([{"id": "a", "node_type": "Echo", "capabilities": {"memory_gb": 1.0}}]),
            json!([]),
        );
        let mut m: ManifestV1 = serde_json::from_value(v).unwrap();
        m.nodes[0].capabilities.as_mut().unwrap().memory_gb = Some(f64::INFINITY);
        let e = validate_manifest(&m, &Registry::builtin()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "nodes[0].capabilities.memory_gb: node `a`: `memory_gb` must be a finite number, found inf"
        );
    }

    #[test]
    fn typed_and_value_validation_agree() {
        let v = manifest(chain(&["a", "b"]), json!([{"from": "a", "to": "b"}]));
        let r = Registry::builtin();
        let from_value = validate_value(&v, &r).unwrap();
        let from_typed = validate_manifest(&from_value.manifest, &r).unwrap();
        assert_eq!(from_value, from_typed);
        assert_eq!(from_value.edges, vec![(0, 1)]);
        assert_eq!(from_value.nodes[1].node_type, "PassThrough");
    }

    #[test]
    fn yaml_positions_and_values() {
        let e = parse_text(
            "version: v1\nnodes:\n  - id: a\n   node_type: Echo\n",
            Format::Yaml,
        )
        .unwrap_err();
        let text = e.to_string();
        assert!(text.starts_with("$: line 4, column "), "{text}");
        let e = parse_text("{\"version\": \"v1\",\n  \"nodes\": [,]}", Format::Json).unwrap_err();
        assert_eq!(
            e.to_string(),
            "$: line 2, column 13: invalid JSON: expected value"
        );
        let e = parse_text("a: .inf\nb: !Custom 1\n", Format::Yaml).unwrap_err();
        assert_eq!(
            e.to_string(),
            "a: expected a finite number, found .inf\nb: YAML tags are not supported (found `!Custom`)"
        );
        let v = parse_text(
            "base: &b {x: 1}\nmerged:\n  <<: *b\n  y: 2\n1: one\n",
            Format::Yaml,
        )
        .unwrap();
        assert_eq!(
            v,
            json!({"base": {"x": 1}, "merged": {"x": 1, "y": 2}, "1": "one"})
        );
    }
}
