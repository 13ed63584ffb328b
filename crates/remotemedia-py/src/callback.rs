//! Python objects as pipeline nodes: the `PythonCallback` node type.
//!
//! A run registers a [`PyCallbackFactory`] holding one *host* object per Python node,
//! keyed by a handle; the manifest refers to it with `params: {"handle": "<key>"}`. The
//! host drives the user's node and normalizes what it returns, so this side stays small.
//! A host has these methods (the Python SDK's `remotemedia._host.NodeHost` implements
//! them):
//!
//! - `initialize()`, `cleanup()`: the node's lifecycle, each called once per run;
//! - `process(item) -> list`: the outputs for one input item;
//! - `flush() -> list`: outputs buffered until the end of the stream;
//! - `describe_error(exc) -> (kind, message, traceback)`: how a raised exception is
//!   reported (`kind` is an [`ErrorKind`] name such as `"python"` or `"invalid_input"`);
//! - optionally `batched` (a bool attribute) and `process_many(items) -> (outputs, exc)`:
//!   when `batched` is true, a batch of items is handed over in one call (one trip to
//!   the event loop for `async` nodes). `outputs` holds one list per item processed
//!   successfully, in order; `exc` is the exception raised by the next item, or `None`.
//!
//! Every call attaches to the interpreter; the node runs on a dedicated stage thread
//! ([`Execution::Dedicated`]), so Rust stages keep running while it holds the GIL.
//! Exceptions become [`NodeError`]s, and the exception object itself is kept in an
//! [`ErrorStash`] under the node id so the caller can chain it as the `__cause__` of the
//! error it raises.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use pyo3::exceptions::PyTypeError;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::PyList;
use remotemedia_core::registry::ParamIssue;
use remotemedia_core::{
    Data, ErrorKind, Execution, ItemError, Node, NodeContext, NodeDoc, NodeError, NodeFactory,
    Params,
};

use crate::convert::{data_to_py, py_to_data};

/// Registered type name of Python nodes.
pub const PYTHON_CALLBACK_TYPE: &str = "PythonCallback";

/// Exceptions raised by Python nodes during a run, by node id (the latest per node).
#[derive(Clone, Default)]
pub struct ErrorStash(Arc<Mutex<HashMap<String, Py<PyAny>>>>);

impl ErrorStash {
    /// An empty stash.
    pub fn new() -> Self {
        Self::default()
    }

    fn put(&self, node_id: &str, exc: Py<PyAny>) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.insert(node_id.to_string(), exc);
    }

    /// Takes the exception recorded for `node_id`.
    pub fn take(&self, node_id: &str) -> Option<Py<PyAny>> {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(node_id)
    }
}

/// Params of a `PythonCallback` node.
#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // read by the factory from the params as written
struct CallbackParams {
    /// Key of the Python host object registered for the run.
    handle: String,
}

/// Factory of [`PyCallbackNode`]s for one run: host objects by handle.
pub struct PyCallbackFactory {
    doc: std::sync::Arc<NodeDoc>,
    hosts: HashMap<String, Arc<Py<PyAny>>>,
    errors: ErrorStash,
}

impl PyCallbackFactory {
    /// A factory over `hosts` (handle → host object), recording exceptions in `errors`.
    pub fn new(hosts: HashMap<String, Py<PyAny>>, errors: ErrorStash) -> Self {
        Self {
            doc: NodeDoc::with_params::<CallbackParams>(
                PYTHON_CALLBACK_TYPE,
                &[],
                "A Python object registered for this run, called back from the pipeline \
                 (Python SDK nodes).",
                "any item",
                "whatever the Python node emits",
            ),
            hosts: hosts.into_iter().map(|(k, v)| (k, Arc::new(v))).collect(),
            errors,
        }
    }

    fn handle<'a>(&self, params: &'a Params) -> Option<&'a str> {
        params.get("handle").and_then(|v| v.as_str())
    }
}

/// How callback nodes are scheduled: on a thread of their own, since a call holds
/// the GIL.
const CALLBACK_EXECUTION: Execution = Execution::Dedicated;

impl NodeFactory for PyCallbackFactory {
    fn doc(&self) -> &NodeDoc {
        &self.doc
    }

    fn execution(&self, _params: &Params) -> Execution {
        CALLBACK_EXECUTION
    }

    fn validate(&self, params: &Params) -> Vec<ParamIssue> {
        let mut issues = self.doc.check(params);
        if let Some(h) = self.handle(params) {
            if !self.hosts.contains_key(h) {
                issues.push(ParamIssue::new(
                    "handle",
                    format!("no Python object is registered under handle `{h}` for this run"),
                ));
            }
        }
        issues
    }

    fn create(&self, params: &Params) -> Result<Box<dyn Node>, NodeError> {
        let handle = self
            .handle(params)
            .ok_or_else(|| NodeError::new(ErrorKind::Config, "missing param `handle`"))?;
        let host = self.hosts.get(handle).ok_or_else(|| {
            NodeError::new(
                ErrorKind::Config,
                format!("no Python object is registered under handle `{handle}`"),
            )
        })?;
        Ok(Box::new(PyCallbackNode {
            host: Arc::clone(host),
            node_id: handle.to_string(),
            errors: self.errors.clone(),
            batched: false,
        }))
    }
}

/// A pipeline node that calls a Python host object (see the module docs).
pub struct PyCallbackNode {
    host: Arc<Py<PyAny>>,
    node_id: String,
    errors: ErrorStash,
    batched: bool,
}

/// Parses an [`ErrorKind`] name; unknown names are [`ErrorKind::Python`].
pub fn error_kind_from_name(name: &str) -> ErrorKind {
    ErrorKind::from_name(name).unwrap_or(ErrorKind::Python)
}

impl PyCallbackNode {
    /// Turns a Python exception into a node error, keeping the exception object.
    fn node_error(&self, py: Python<'_>, err: PyErr) -> NodeError {
        let exc = err.into_value(py).into_any();
        let described = self
            .host
            .bind(py)
            .call_method1(intern!(py, "describe_error"), (exc.bind(py),))
            .and_then(|d| d.extract::<(String, String, String)>());
        let error = match described {
            Ok((kind, message, traceback)) => {
                NodeError::new(error_kind_from_name(&kind), message).with_traceback(traceback)
            }
            Err(_) => {
                let text = exc
                    .bind(py)
                    .str()
                    .map(|s| s.to_string())
                    .unwrap_or_default();
                NodeError::new(ErrorKind::Python, text)
            }
        };
        self.errors.put(&self.node_id, exc);
        error
    }

    fn call_unit(&self, method: &str) -> Result<(), NodeError> {
        Python::attach(|py| {
            self.host
                .bind(py)
                .call_method0(method)
                .map(drop)
                .map_err(|e| self.node_error(py, e))
        })
    }

    /// Converts a host's returned list into data, appending to `out`.
    fn collect(
        &self,
        py: Python<'_>,
        result: PyResult<Bound<'_, PyAny>>,
        out: &mut Vec<Data>,
    ) -> Result<(), NodeError> {
        let result = result.map_err(|e| self.node_error(py, e))?;
        let list = result.cast::<PyList>().map_err(|_| {
            self.node_error(
                py,
                PyTypeError::new_err("node host must return a list of outputs"),
            )
        })?;
        let start = out.len();
        for (i, value) in list.iter().enumerate() {
            match py_to_data(&value) {
                Ok(d) => out.push(d),
                Err(e) => {
                    out.truncate(start);
                    let msg = format!(
                        "output {i} of node `{}` cannot enter the pipeline: {e}",
                        self.node_id
                    );
                    let mut err = e;
                    err.message = msg;
                    err.path.clear();
                    return Err(self.node_error(py, err.to_pyerr()));
                }
            }
        }
        Ok(())
    }

    fn process_with(
        &self,
        py: Python<'_>,
        item: &Data,
        out: &mut Vec<Data>,
    ) -> Result<(), NodeError> {
        let value = data_to_py(py, item).map_err(|e| self.node_error(py, e))?;
        let result = self
            .host
            .bind(py)
            .call_method1(intern!(py, "process"), (value,));
        self.collect(py, result, out)
    }

    /// `process_batch` for hosts that take a whole batch per call (see the module docs).
    /// Items whose outputs were taken are consumed from `items`; the failed item, if
    /// any, is returned and the rest stay in `items`.
    fn process_many(
        &self,
        py: Python<'_>,
        items: &mut std::vec::Drain<'_, Data>,
        out: &mut Vec<Data>,
    ) -> Result<(), ItemError> {
        // Fails the next item of the batch with `error`.
        let fail = |items: &mut std::vec::Drain<'_, Data>, error: NodeError| {
            let item = items.next().unwrap_or_default();
            ItemError { item, error }
        };
        // Items are converted up to the first that cannot be; that one fails after the
        // items before it were processed.
        let mut values = Vec::with_capacity(items.len());
        let mut unconvertible = None;
        for item in items.as_slice() {
            match data_to_py(py, item) {
                Ok(v) => values.push(v),
                Err(e) => {
                    unconvertible = Some(e);
                    break;
                }
            }
        }
        let list = match PyList::new(py, values) {
            Ok(l) => l,
            Err(e) => return Err(fail(items, self.node_error(py, e))),
        };
        let reply = self
            .host
            .bind(py)
            .call_method1(intern!(py, "process_many"), (list,))
            .and_then(|r| r.extract::<(Bound<'_, PyList>, Bound<'_, PyAny>)>());
        let (results, exc) = match reply {
            Ok(r) => r,
            Err(e) => return Err(fail(items, self.node_error(py, e))),
        };
        for outputs in results.iter() {
            // A conversion failure fails the item whose outputs could not be converted.
            if let Err(error) = self.collect(py, Ok(outputs), out) {
                return Err(fail(items, error));
            }
            items.next();
        }
        if !exc.is_none() {
            let err = PyErr::from_value(exc);
            return Err(fail(items, self.node_error(py, err)));
        }
        match unconvertible {
            Some(e) => Err(fail(items, self.node_error(py, e))),
            None => Ok(()),
        }
    }
}

impl Node for PyCallbackNode {
    fn initialize(&mut self, ctx: &NodeContext) -> Result<(), NodeError> {
        self.node_id = ctx.node_id.to_string();
        self.batched = Python::attach(|py| {
            self.host
                .bind(py)
                .getattr_opt(intern!(py, "batched"))
                .ok()
                .flatten()
                .and_then(|b| b.extract::<bool>().ok())
                .unwrap_or(false)
        });
        self.call_unit("initialize")
    }

    fn process(&mut self, item: Data, out: &mut Vec<Data>) -> Result<(), NodeError> {
        Python::attach(|py| self.process_with(py, &item, out))
    }

    fn process_batch(
        &mut self,
        _port: usize,
        items: &mut Vec<Data>,
        out: &mut Vec<Data>,
    ) -> Result<(), ItemError> {
        // One attach for the whole batch instead of one per item.
        Python::attach(|py| {
            let mut drain = items.drain(..);
            let result = if self.batched {
                self.process_many(py, &mut drain, out)
            } else {
                (|| {
                    for item in drain.by_ref() {
                        if let Err(error) = self.process_with(py, &item, out) {
                            return Err(ItemError { item, error });
                        }
                    }
                    Ok(())
                })()
            };
            if result.is_err() {
                let rest: Vec<Data> = drain.collect();
                *items = rest;
            }
            result
        })
    }

    fn finish(&mut self, out: &mut Vec<Data>) -> Result<(), NodeError> {
        Python::attach(|py| {
            let result = self.host.bind(py).call_method0(intern!(py, "flush"));
            self.collect(py, result, out)
        })
    }

    fn cleanup(&mut self) -> Result<(), NodeError> {
        self.call_unit("cleanup")
    }

    fn execution(&self) -> Execution {
        CALLBACK_EXECUTION
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_names_round_trip() {
        for kind in ErrorKind::ALL {
            assert_eq!(error_kind_from_name(kind.as_str()), kind);
        }
        assert_eq!(error_kind_from_name("whatever"), ErrorKind::Python);
    }

    #[test]
    fn factory_checks_handles() {
        let factory = PyCallbackFactory::new(HashMap::new(), ErrorStash::new());
        let params: Params = serde_json::from_str(r#"{"handle": "missing"}"#).unwrap();
        let issues = factory.validate(&params);
        assert_eq!(issues.len(), 1);
        assert!(issues[0].message.contains("`missing`"));
        assert!(factory.create(&params).is_err());
        let none = factory.validate(&Params::new());
        assert_eq!(none[0].message, "missing required param `handle`");
    }
}
