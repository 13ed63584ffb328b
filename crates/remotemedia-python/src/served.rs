//! Python nodes an executor serves: the only Python code a client can make it run.
//!
//! An executor reachable over the network must not run code its clients choose. It is
//! told which Python node classes it serves (`remotemedia serve --python-node
//! NAME=module:Class`); a client's `PythonNode` is accepted only when its `module` and
//! `class` name one of them, and everything else that would let the client pick code —
//! inline `source`, `python_path` (files to import), `python` (an executable), a host
//! other than the executor's — is refused at validation, before anything is imported.
//! The class is imported with the executor's own interpreter and path, in the host the
//! executor chose (by default the process host, so one client's node cannot stall or
//! crash another's). A client still gives `init`, the constructor's keyword arguments:
//! they reach only the served class.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use remotemedia_core::registry::ParamIssue;
use remotemedia_core::{ErrorKind, Execution, Node, NodeDoc, NodeError, NodeFactory, Params};
use serde_json::Value;

use crate::node::{PythonNode, PythonNodeFactory};
use crate::spec::{self, NodeSpec, Origin, Runtime};

/// One served class: `NAME=module:Class`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServedClass {
    /// Name it is listed under (`GetCapabilities`, messages).
    pub name: String,
    /// Dotted module name, imported with the executor's path.
    pub module: String,
    /// Class name in that module.
    pub class: String,
}

impl fmt::Display for ServedClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}:{}", self.name, self.module, self.class)
    }
}

impl FromStr for ServedClass {
    type Err = String;

    /// Parses `NAME=module:Class`, or `module:Class` (listed as `Class`).
    fn from_str(text: &str) -> Result<Self, String> {
        let bad = |why: &str| format!("`{text}` is not NAME=module:Class ({why})");
        let (name, target) = match text.split_once('=') {
            Some((n, t)) => (Some(n.trim()), t.trim()),
            None => (None, text.trim()),
        };
        let (module, class) = target
            .split_once(':')
            .ok_or_else(|| bad("no `:` between module and class"))?;
        if module.is_empty() || !module.split('.').all(spec::is_identifier) {
            return Err(bad(&format!("`{module}` is not a dotted module name")));
        }
        if !spec::is_identifier(class) {
            return Err(bad(&format!("`{class}` is not a Python class name")));
        }
        let name = name.unwrap_or(class);
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(bad(&format!(
                "the name `{name}` must be ASCII letters, digits, `_` or `-`"
            )));
        }
        Ok(ServedClass {
            name: name.to_string(),
            module: module.to_string(),
            class: class.to_string(),
        })
    }
}

/// What an executor serves and how it runs it.
#[derive(Clone, Debug, PartialEq)]
pub struct ServedPython {
    /// The classes clients may use.
    pub classes: Vec<ServedClass>,
    /// Directories put in front of `sys.path` before importing a served class.
    pub python_path: Vec<String>,
    /// The host served nodes run in.
    pub runtime: Runtime,
}

impl ServedPython {
    /// Serves `classes` from the interpreter's own path in the process host.
    pub fn new(classes: Vec<ServedClass>) -> Self {
        Self {
            classes,
            python_path: Vec::new(),
            runtime: Runtime::Process,
        }
    }

    /// `NAME=module:Class` of every served class, comma-separated (for messages).
    fn listing(&self) -> String {
        let all: Vec<String> = self.classes.iter().map(|c| c.to_string()).collect();
        all.join(", ")
    }

    /// Every reason these params would make the executor run something it does not
    /// serve. Empty when the params name a served class and nothing else that picks code.
    pub fn check(&self, params: &Params) -> Vec<ParamIssue> {
        let mut issues = Vec::new();
        let chosen_by_executor = |key: &str, what: &str| {
            ParamIssue::new(
                key,
                format!("`{key}` is chosen by the executor, not the client: {what}"),
            )
        };
        if params.contains_key("source") {
            issues.push(ParamIssue::new(
                "source",
                "inline Python source is refused: this executor runs only the Python nodes \
                 it serves (start it with --allow-python-source to accept source)",
            ));
        }
        if params.contains_key("python_path") {
            issues.push(chosen_by_executor(
                "python_path",
                "served classes are imported with the executor's own path",
            ));
        }
        if params.contains_key("python") {
            issues.push(chosen_by_executor(
                "python",
                "served classes run in the executor's own interpreter",
            ));
        }
        let str_of = |k: &str| params.get(k).and_then(Value::as_str);
        if let Some(r) = str_of("runtime") {
            if r != "auto" && r != self.runtime.name() {
                issues.push(ParamIssue::new(
                    "runtime",
                    format!(
                        "this executor runs Python nodes in the {} host; `runtime: {r}` is \
                         not available here (leave it out or use `auto`)",
                        self.runtime
                    ),
                ));
            }
        }
        if let (Some(module), Some(class)) = (str_of("module"), str_of("class")) {
            if self.find(module, class).is_none() {
                issues.push(ParamIssue::new(
                    "class",
                    format!(
                        "`{module}:{class}` is not a Python node this executor serves (it \
                         serves: {})",
                        self.listing()
                    ),
                ));
            }
        }
        issues
    }

    fn base_parse(&self, params: &Params) -> Result<spec::PythonNodeParams, String> {
        remotemedia_core::node_type::parse(params).map_err(|e| e.to_string())
    }

    fn find(&self, module: &str, class: &str) -> Option<&ServedClass> {
        self.classes
            .iter()
            .find(|c| c.module == module && c.class == class)
    }

    /// The spec a served node runs with: the served class, the client's `init`,
    /// `workers` and `timeout_ms`, and the executor's path, interpreter and host.
    fn spec(&self, params: &Params) -> Result<NodeSpec, String> {
        let issues = self.check(params);
        if let Some(first) = issues.first() {
            return Err(format!("{}: {}", first.path, first.message));
        }
        let typed = self
            .base_parse(params)
            .map_err(|e| format!("invalid params: {e}"))?;
        let mut spec = NodeSpec::from_params(&typed)?;
        let Origin::Module(module) = &spec.origin else {
            return Err("a served Python node names a module".into());
        };
        let served = self.find(module, &spec.class).ok_or("not served")?;
        spec.origin = Origin::Module(served.module.clone());
        spec.class = served.class.clone();
        spec.python_path = self.python_path.clone();
        spec.python = None;
        spec.runtime = Some(self.runtime);
        Ok(spec)
    }
}

/// The `PythonNode` node type of an executor: only [`ServedPython`] classes.
pub struct ServedPythonFactory {
    served: Arc<ServedPython>,
    /// The unrestricted type, for its documentation and param checks.
    base: PythonNodeFactory,
}

impl ServedPythonFactory {
    /// The node type serving `served`.
    pub fn new(served: ServedPython) -> Self {
        Self {
            served: Arc::new(served),
            base: PythonNodeFactory::new(),
        }
    }
}

impl NodeFactory for ServedPythonFactory {
    fn doc(&self) -> &NodeDoc {
        self.base.doc()
    }

    fn validate(&self, params: &Params) -> Vec<ParamIssue> {
        let mut issues = self.base.validate(params);
        issues.extend(self.served.check(params));
        issues
    }

    fn create(&self, params: &Params) -> Result<Box<dyn Node>, NodeError> {
        // Checked again here: whoever builds a node goes through the same gate.
        let spec = self.served.spec(params).map_err(|m| {
            NodeError::new(ErrorKind::Config, format!("refused by this executor: {m}"))
        })?;
        Ok(Box::new(PythonNode::load(&spec)?))
    }

    fn execution(&self, params: &Params) -> Execution {
        // The executor's own choices (its runtime among them) apply, as in `create`.
        self.served
            .spec(params)
            .map_or(Execution::Inline, |s| crate::node::execution_of(&s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(json: &str) -> Params {
        serde_json::from_str(json).unwrap()
    }

    fn served() -> ServedPython {
        ServedPython::new(vec!["upper=my_nodes.text:Upper".parse().unwrap()])
    }

    #[test]
    fn served_class_syntax() {
        let c: ServedClass = "upper=my_nodes.text:Upper".parse().unwrap();
        assert_eq!(
            (c.name.as_str(), c.module.as_str(), c.class.as_str()),
            ("upper", "my_nodes.text", "Upper")
        );
        assert_eq!(c.to_string(), "upper=my_nodes.text:Upper");
        let bare: ServedClass = "m:Cls".parse().unwrap();
        assert_eq!(bare.name, "Cls");
        for (bad, why) in [
            ("upper=my_nodes", "no `:`"),
            ("x=a-b:C", "`a-b` is not a dotted module name"),
            ("x=m:C()", "`C()` is not a Python class name"),
            ("a b=m:C", "the name `a b` must be ASCII"),
        ] {
            let e = bad.parse::<ServedClass>().unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn only_a_served_class_with_nothing_that_picks_code_passes() {
        let s = served();
        assert!(s
            .check(&params(
                r#"{"module": "my_nodes.text", "class": "Upper", "init": {"suffix": "!"},
                    "runtime": "auto", "workers": 2}"#
            ))
            .is_empty());
        let issues = s.check(&params(
            r#"{"module": "subprocess", "class": "Popen", "init": {"args": ["id"]},
                "python_path": ["/tmp"], "python": "/bin/sh", "runtime": "cpython"}"#,
        ));
        let got: Vec<(&str, &str)> = issues
            .iter()
            .map(|i| (i.path.as_str(), i.message.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (
                    "python_path",
                    "`python_path` is chosen by the executor, not the client: served classes \
                     are imported with the executor's own path"
                ),
                (
                    "python",
                    "`python` is chosen by the executor, not the client: served classes run \
                     in the executor's own interpreter"
                ),
                (
                    "runtime",
                    "this executor runs Python nodes in the process host; `runtime: cpython` \
                     is not available here (leave it out or use `auto`)"
                ),
                (
                    "class",
                    "`subprocess:Popen` is not a Python node this executor serves (it serves: \
                     upper=my_nodes.text:Upper)"
                ),
            ]
        );
        let source = s.check(&params(r#"{"source": "import os", "class": "Upper"}"#));
        assert_eq!(source.len(), 1);
        assert!(source[0]
            .message
            .starts_with("inline Python source is refused"));
    }

    #[test]
    fn a_served_spec_uses_the_executors_path_and_host() {
        let mut s = served();
        s.python_path = vec!["/srv/nodes".into()];
        let spec = s
            .spec(&params(
                r#"{"module": "my_nodes.text", "class": "Upper", "init": {"suffix": "!"}}"#,
            ))
            .unwrap();
        assert_eq!(spec.python_path, ["/srv/nodes"]);
        assert_eq!(spec.runtime, Some(Runtime::Process));
        assert_eq!(spec.python, None);
        assert_eq!(spec.init.to_json_string(), r#"{"suffix":"!"}"#);
        // The factory refuses what validation refuses, without loading anything.
        let factory = ServedPythonFactory::new(s);
        let err = factory
            .create(&params(r#"{"module": "os", "class": "system"}"#))
            .err()
            .expect("refused");
        assert_eq!(err.kind, ErrorKind::Config);
        assert!(err
            .message
            .starts_with("refused by this executor: class: `os:system`"));
        assert!(!factory.executes_client_code());
        assert!(PythonNodeFactory::new().executes_client_code());
    }
}
