//! The `PythonNode` parameters: what to load, where to run it.

use std::fmt;
use std::time::Duration;

use remotemedia_core::registry::{ParamIssue, Params};
use remotemedia_core::Data;
use serde_json::Value;

/// Environment variable choosing the host of nodes that do not set `runtime`.
pub const RUNTIME_ENV: &str = "REMOTEMEDIA_PYTHON_RUNTIME";

/// Names accepted by `runtime` and [`RUNTIME_ENV`].
pub const RUNTIME_NAMES: [&str; 4] = ["auto", "cpython", "process", "rustpython"];

/// Which host runs a Python node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Runtime {
    /// Embedded CPython when libpython is usable, else embedded RustPython when compiled
    /// in; a node that fails to load for a compatibility reason is retried in the next.
    Auto,
    /// Embedded CPython (pyo3), on a dedicated interpreter thread.
    CPython,
    /// A pool of CPython worker processes.
    Process,
    /// Embedded RustPython (cargo feature `rustpython`).
    RustPython,
}

impl Runtime {
    /// Parses a runtime name (see [`RUNTIME_NAMES`]).
    pub fn from_name(name: &str) -> Option<Runtime> {
        Some(match name {
            "auto" => Runtime::Auto,
            "cpython" => Runtime::CPython,
            "process" => Runtime::Process,
            "rustpython" => Runtime::RustPython,
            _ => return None,
        })
    }

    /// The runtime's name.
    pub fn name(self) -> &'static str {
        match self {
            Runtime::Auto => "auto",
            Runtime::CPython => "cpython",
            Runtime::Process => "process",
            Runtime::RustPython => "rustpython",
        }
    }

    /// Whether this build includes the host (`auto` and `process` always are).
    pub fn compiled_in(self) -> bool {
        match self {
            Runtime::Auto | Runtime::Process => true,
            Runtime::CPython => cfg!(feature = "cpython"),
            Runtime::RustPython => cfg!(feature = "rustpython"),
        }
    }
}

impl fmt::Display for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Where the node's class comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// An importable module name.
    Module(String),
    /// Inline source code defining the class.
    Source(String),
}

/// A validated `PythonNode` configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeSpec {
    /// Class name.
    pub class: String,
    /// Module or inline source.
    pub origin: Origin,
    /// Constructor keyword arguments (`init`).
    pub init: Data,
    /// Entries put in front of `sys.path` before importing.
    pub python_path: Vec<String>,
    /// The requested runtime (`None`: not set in params).
    pub runtime: Option<Runtime>,
    /// Worker processes for the `process` host (`None`: one).
    pub workers: Option<usize>,
    /// Time limit of one call in the `process` host, after which the worker is killed.
    pub timeout: Option<Duration>,
    /// Interpreter executable for the `process` host.
    pub python: Option<String>,
}

impl NodeSpec {
    /// A node running class `class` from module `module`.
    pub fn module(module: impl Into<String>, class: impl Into<String>) -> Self {
        Self::new(Origin::Module(module.into()), class.into())
    }

    /// A node running class `class` defined by `source`.
    pub fn source(source: impl Into<String>, class: impl Into<String>) -> Self {
        Self::new(Origin::Source(source.into()), class.into())
    }

    fn new(origin: Origin, class: String) -> Self {
        Self {
            class,
            origin,
            init: Data::map(Default::default()),
            python_path: Vec::new(),
            runtime: None,
            workers: None,
            timeout: None,
            python: None,
        }
    }

    /// A short description for messages: ``class `C` from module `m` `` / `` … from `source` ``.
    pub fn describe(&self) -> String {
        match &self.origin {
            Origin::Module(m) => format!("class `{}` from module `{m}`", self.class),
            Origin::Source(_) => format!("class `{}` from inline `source`", self.class),
        }
    }

    /// Parses params that passed [`validate`].
    pub fn from_params(params: &Params) -> Result<NodeSpec, String> {
        let issues = validate(params);
        if let Some(first) = issues.first() {
            return Err(if first.path.is_empty() {
                first.message.clone()
            } else {
                format!("{}: {}", first.path, first.message)
            });
        }
        let s = |k: &str| params.get(k).and_then(Value::as_str).map(str::to_string);
        let origin = match (s("module"), s("source")) {
            (Some(m), _) => Origin::Module(m),
            (None, Some(src)) => Origin::Source(src),
            (None, None) => unreachable!("validated"),
        };
        let init = match params.get("init") {
            Some(v) => Data::from_json(v).map_err(|e| format!("init: {e}"))?,
            None => Data::map(Default::default()),
        };
        let python_path = params
            .get("python_path")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        let workers = match params.get("workers") {
            Some(Value::String(_)) => Some(
                std::thread::available_parallelism()
                    .map(usize::from)
                    .unwrap_or(1),
            ),
            Some(v) => v.as_u64().map(|n| n as usize),
            None => None,
        };
        Ok(NodeSpec {
            class: s("class").unwrap_or_default(),
            origin,
            init,
            python_path,
            runtime: s("runtime").and_then(|r| Runtime::from_name(&r)),
            workers,
            timeout: params
                .get("timeout_ms")
                .and_then(Value::as_u64)
                .map(Duration::from_millis),
            python: s("python"),
        })
    }

    /// The runtime to use: `runtime` from params, else [`RUNTIME_ENV`], else `auto`.
    pub fn effective_runtime(&self) -> Result<Runtime, String> {
        if let Some(r) = self.runtime {
            return Ok(r);
        }
        match std::env::var(RUNTIME_ENV) {
            Ok(v) if !v.trim().is_empty() => Runtime::from_name(v.trim()).ok_or_else(|| {
                format!(
                    "{RUNTIME_ENV}={v:?} is not a Python runtime; expected one of {}",
                    RUNTIME_NAMES.join(", ")
                )
            }),
            _ => Ok(Runtime::Auto),
        }
    }
}

/// Checks `PythonNode` params beyond their documented types: `module` xor `source`,
/// identifiers, `init` convertible, `python_path` strings, `workers`, `timeout_ms`, and
/// that the requested runtime is compiled in.
pub fn validate(params: &Params) -> Vec<ParamIssue> {
    let mut issues = Vec::new();
    let str_of = |k: &str| params.get(k).and_then(Value::as_str);
    match (params.get("module"), params.get("source")) {
        (Some(_), Some(_)) => issues.push(ParamIssue::new(
            "source",
            "give either `module` or `source`, not both",
        )),
        (None, None) => issues.push(ParamIssue::new(
            "",
            "missing `module` or `source`: PythonNode needs one of them",
        )),
        _ => {}
    }
    if let Some(m) = str_of("module") {
        if m.is_empty() || !m.split('.').all(is_identifier) {
            issues.push(ParamIssue::new(
                "module",
                format!("`{m}` is not a dotted module name"),
            ));
        }
    }
    if let Some(c) = str_of("class") {
        if !is_identifier(c) {
            issues.push(ParamIssue::new(
                "class",
                format!("`{c}` is not a Python class name"),
            ));
        }
    }
    // A non-object `init` is reported by the type check of the documented params.
    if let Some(init @ Value::Object(map)) = params.get("init") {
        if let Some(bad) = map.keys().find(|k| !is_identifier(k)) {
            issues.push(ParamIssue::new(
                format!("init.{bad}"),
                format!("`{bad}` is not a valid keyword argument name"),
            ));
        } else if let Err(e) = Data::from_json(init) {
            issues.push(ParamIssue::new("init", e.to_string()));
        }
    }
    if let Some(Value::Array(items)) = params.get("python_path") {
        for (i, v) in items.iter().enumerate() {
            if !v.is_string() {
                issues.push(ParamIssue::new(
                    format!("python_path[{i}]"),
                    "expected a string (a directory)",
                ));
            }
        }
    }
    match params.get("workers") {
        Some(Value::String(s)) if s != "auto" => issues.push(ParamIssue::new(
            "workers",
            format!("invalid value \"{s}\"; expected a positive integer or \"auto\""),
        )),
        Some(v @ Value::Number(_)) if v.as_u64().is_none_or(|n| n == 0 || n > 256) => issues.push(
            ParamIssue::new("workers", "expected an integer between 1 and 256"),
        ),
        Some(Value::String(_)) | Some(Value::Number(_)) | None => {}
        Some(_) => issues.push(ParamIssue::new(
            "workers",
            "expected a positive integer or \"auto\"",
        )),
    }
    if let Some(v) = params.get("timeout_ms") {
        if v.is_number() && v.as_u64().is_none_or(|n| n == 0) {
            issues.push(ParamIssue::new("timeout_ms", "expected a positive integer"));
        }
    }
    if let Some(r) = str_of("runtime").and_then(Runtime::from_name) {
        if !r.compiled_in() {
            issues.push(ParamIssue::new(
                "runtime",
                format!(
                    "the {r} host is not part of this build (cargo feature `{}`)",
                    r.name()
                ),
            ));
        }
    }
    issues
}

/// A Python identifier (letters, digits, `_`; not starting with a digit).
pub(crate) fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) if c == '_' || c.is_alphabetic() => {}
        _ => return false,
    }
    chars.all(|c| c == '_' || c.is_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(json: &str) -> Params {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn module_xor_source() {
        let both = validate(&params(r#"{"class": "A", "module": "m", "source": "x"}"#));
        assert_eq!(
            both[0].message,
            "give either `module` or `source`, not both"
        );
        let none = validate(&params(r#"{"class": "A"}"#));
        assert!(none[0].message.starts_with("missing `module` or `source`"));
        assert!(validate(&params(r#"{"class": "A", "module": "pkg.mod"}"#)).is_empty());
    }

    #[test]
    fn names_workers_and_timeouts_are_checked() {
        let bad = validate(&params(
            r#"{"class": "1A", "module": "a-b", "workers": 0, "timeout_ms": 0,
                "init": {"not valid": 1}, "python_path": [3]}"#,
        ));
        let paths: Vec<&str> = bad.iter().map(|i| i.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "module",
                "class",
                "init.not valid",
                "python_path[0]",
                "workers",
                "timeout_ms"
            ]
        );
        let auto = validate(&params(
            r#"{"class": "A", "module": "m", "workers": "auto"}"#,
        ));
        assert!(auto.is_empty());
    }

    #[test]
    fn spec_from_params() {
        let spec = NodeSpec::from_params(&params(
            r#"{"class": "A", "source": "class A: pass", "init": {"k": [1]},
                "runtime": "process", "workers": 2, "timeout_ms": 50}"#,
        ))
        .unwrap();
        assert_eq!(spec.origin, Origin::Source("class A: pass".into()));
        assert_eq!(spec.runtime, Some(Runtime::Process));
        assert_eq!(spec.workers, Some(2));
        assert_eq!(spec.timeout, Some(Duration::from_millis(50)));
        assert_eq!(spec.init.to_json_string(), r#"{"k":[1]}"#);
    }
}
