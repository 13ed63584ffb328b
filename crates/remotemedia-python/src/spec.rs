//! The `PythonNode` parameters: what to load, where to run it.

use std::fmt;
use std::time::Duration;

use remotemedia_core::registry::{ParamIssue, Params};
use remotemedia_core::Data;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

/// Environment variable choosing the host of nodes that do not set `runtime`.
pub const RUNTIME_ENV: &str = "REMOTEMEDIA_PYTHON_RUNTIME";

/// Names accepted by `runtime` and [`RUNTIME_ENV`].
pub const RUNTIME_NAMES: [&str; 4] = ["auto", "cpython", "process", "rustpython"];

/// Which host runs a Python node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
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

    /// The spec of checked params (see [`check`]).
    pub fn from_params(p: &PythonNodeParams) -> Result<NodeSpec, String> {
        let origin = match (&p.module, &p.source) {
            (Some(m), _) => Origin::Module(m.clone()),
            (None, Some(src)) => Origin::Source(src.clone()),
            (None, None) => return Err("missing `module` or `source`".into()),
        };
        let init =
            Data::from_json(&Value::Object(p.init.clone())).map_err(|e| format!("init: {e}"))?;
        let workers = p.workers.map(|w| match w {
            Workers::Auto(_) => std::thread::available_parallelism()
                .map(usize::from)
                .unwrap_or(1),
            Workers::Count(n) => n as usize,
        });
        Ok(NodeSpec {
            class: p.class.clone(),
            origin,
            init,
            python_path: p.python_path.clone(),
            runtime: p.runtime,
            workers,
            timeout: p.timeout_ms.map(Duration::from_millis),
            python: p.python.clone(),
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

/// Params of `PythonNode`.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PythonNodeParams {
    /// Name of the node class.
    pub class: String,
    /// Importable module defining the class (or give `source`).
    pub module: Option<String>,
    /// Inline Python code defining the class (or give `module`).
    pub source: Option<String>,
    /// Keyword arguments of the constructor.
    #[serde(default)]
    pub init: serde_json::Map<String, Value>,
    /// Directories put in front of sys.path before importing.
    #[serde(default)]
    pub python_path: Vec<String>,
    /// Host: embedded CPython, worker processes, embedded RustPython, or auto (CPython,
    /// else RustPython). Default: REMOTEMEDIA_PYTHON_RUNTIME, else auto.
    pub runtime: Option<Runtime>,
    /// Process host: worker processes, 1 to 256 or "auto" (the CPU count; default 1).
    /// Each worker holds its own instance.
    pub workers: Option<Workers>,
    /// Process host: a call running longer than this many milliseconds is killed (the
    /// worker is replaced and the item fails with kind `timeout`).
    #[schemars(range(min = 1))]
    pub timeout_ms: Option<u64>,
    /// Process host: interpreter executable of the workers. Default: REMOTEMEDIA_PYTHON,
    /// the active virtualenv's python, else python3.
    pub python: Option<String>,
}

/// How many worker processes: a count or `"auto"`.
#[derive(Clone, Copy, Debug, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Workers {
    /// `"auto"`: the CPU count.
    Auto(AutoWord),
    /// This many.
    Count(#[schemars(range(min = 1, max = 256))] u32),
}

/// The word `auto`.
#[derive(Clone, Copy, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AutoWord {
    /// `auto`.
    Auto,
}

/// The `PythonNode` rules beyond each param's type, on the params as written: `module`
/// xor `source`, identifiers, `init` keys and values, and that the requested runtime is
/// compiled in.
pub fn check(params: &Params) -> Vec<ParamIssue> {
    let mut issues = Vec::new();
    let str_of = |k: &str| params.get(k).and_then(Value::as_str);
    let given = |k: &str| params.get(k).filter(|v| !v.is_null());
    match (given("module"), given("source")) {
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
    // A node without `runtime` takes the environment's choice: a bad one is a
    // configuration error now, not a failure once the run has started.
    if given("runtime").is_none() {
        if let Ok(v) = std::env::var(RUNTIME_ENV) {
            if !v.trim().is_empty() && Runtime::from_name(v.trim()).is_none() {
                issues.push(ParamIssue::new(
                    "",
                    format!(
                        "{RUNTIME_ENV}={v:?} (the host of nodes that do not set `runtime`) is \
                         not a Python runtime; expected one of {}",
                        RUNTIME_NAMES.join(", ")
                    ),
                ));
            }
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
    use remotemedia_core::node_type::TypedFactory;
    use remotemedia_core::NodeFactory;

    use super::*;
    use crate::PythonNode;

    fn params(json: &str) -> Params {
        serde_json::from_str(json).unwrap()
    }

    fn issues(json: &str) -> Vec<(String, String)> {
        TypedFactory::<PythonNode>::new()
            .validate(&params(json))
            .into_iter()
            .map(|i| (i.path, i.message))
            .collect()
    }

    #[test]
    fn module_xor_source() {
        let both = issues(r#"{"class": "A", "module": "m", "source": "x"}"#);
        assert_eq!(both[0].1, "give either `module` or `source`, not both");
        let none = issues(r#"{"class": "A"}"#);
        assert!(none[0].1.starts_with("missing `module` or `source`"));
        assert!(issues(r#"{"class": "A", "module": "pkg.mod"}"#).is_empty());
    }

    #[test]
    fn names_workers_and_timeouts_are_checked() {
        let bad = issues(
            r#"{"class": "1A", "module": "a-b", "workers": 0, "timeout_ms": 0,
                "init": {"not valid": 1}, "python_path": [3], "runtime": "jython"}"#,
        );
        let paths: Vec<&str> = bad.iter().map(|i| i.0.as_str()).collect();
        assert_eq!(
            paths,
            [
                "workers",
                "timeout_ms",
                "python_path[0]",
                "runtime",
                "module",
                "class",
                "init.not valid",
            ],
            "{bad:?}"
        );
        assert_eq!(bad[0].1, "`workers` must be between 1 and 256, found 0");
        assert_eq!(bad[1].1, "`timeout_ms` must be at least 1, found 0");
        assert!(bad[3]
            .1
            .starts_with("invalid value \"jython\"; expected one of `auto`"));
        assert!(issues(r#"{"class": "A", "module": "m", "workers": "auto"}"#).is_empty());
        let word = issues(r#"{"class": "A", "module": "m", "workers": "many"}"#);
        assert_eq!(word[0].1, "invalid value \"many\"; expected one of `auto`");
    }

    #[test]
    fn spec_from_params() {
        let p = params(
            r#"{"class": "A", "source": "class A: pass", "init": {"k": [1]},
                "runtime": "process", "workers": 2, "timeout_ms": 50}"#,
        );
        let typed = TypedFactory::<PythonNode>::new().parse(&p).unwrap();
        let spec = NodeSpec::from_params(&typed).unwrap();
        assert_eq!(spec.origin, Origin::Source("class A: pass".into()));
        assert_eq!(spec.runtime, Some(Runtime::Process));
        assert_eq!(spec.workers, Some(2));
        assert_eq!(spec.timeout, Some(Duration::from_millis(50)));
        assert_eq!(spec.init.to_json_string(), r#"{"k":[1]}"#);
    }
}
