//! Python bindings for remotemedia: the `remotemedia._remotemedia` extension module.
//!
//! Glue only. [`convert`] maps Python values to pipeline data and back, [`callback`]
//! lets Python objects act as pipeline nodes, [`run`] validates and runs a manifest with
//! the GIL released. Everything else lives in `remotemedia-core`; the Python SDK
//! (`python/remotemedia`) builds manifests and turns reports into results or exceptions.
#![warn(missing_docs)]

pub mod callback;
pub mod run;
pub mod stream;

/// Python ⇄ pipeline data conversions, shared with the embedded-CPython node host.
pub use remotemedia_python::convert;

use std::collections::HashMap;

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use remotemedia_core::executor::RunOptions;
use remotemedia_runtime::ExecutorSources;

/// `PythonCallback` handles → host objects, from the dict the SDK passes.
fn hosts_of(
    python_nodes: Option<&Bound<'_, PyDict>>,
) -> PyResult<Option<HashMap<String, Py<PyAny>>>> {
    let Some(d) = python_nodes else {
        return Ok(None);
    };
    let mut map = HashMap::with_capacity(d.len());
    for (k, v) in d.iter() {
        map.insert(k.extract::<String>()?, v.unbind());
    }
    Ok(Some(map))
}

/// Where nodes may run, from the keyword arguments `executors`, `policy`, `config`,
/// `token_file`, `executor_ca` and `dns_server` (the CLI's `--executor`, `--policy`,
/// `--config`, `--token-file`, `--executor-ca`, `--dns-server`); any other is a
/// `TypeError` naming it.
pub(crate) fn placement(kwargs: Option<&Bound<'_, PyDict>>) -> PyResult<ExecutorSources> {
    let mut sources = ExecutorSources::default();
    let Some(kwargs) = kwargs else {
        return Ok(sources);
    };
    for (key, value) in kwargs.iter() {
        let key: String = key.extract()?;
        if value.is_none() {
            continue;
        }
        match key.as_str() {
            "executors" => sources.executors = value.extract()?,
            "policy" => sources.policy = Some(value.extract()?),
            "config" => sources.config = Some(value.extract()?),
            "token_file" => sources.token_file = Some(value.extract()?),
            "executor_ca" => sources.executor_ca = Some(value.extract()?),
            "dns_server" => sources.dns_server = Some(value.extract()?),
            other => {
                return Err(PyTypeError::new_err(format!(
                    "unexpected keyword argument `{other}`; expected executors, policy, config, \
                     token_file, executor_ca or dns_server"
                )))
            }
        }
    }
    Ok(sources)
}

/// Run options from the SDK's `batch_size` (at least 1).
fn run_options(batch_size: Option<usize>) -> RunOptions {
    let mut options = RunOptions::default();
    if let Some(b) = batch_size {
        options.batch_size = b.max(1);
    }
    options
}

/// Runs a manifest (JSON or YAML text) over `inputs` in the Rust core, placed like the
/// CLI places it (keyword arguments: see [`placement`]).
///
/// `python_nodes` maps `PythonCallback` handles to host objects. Returns a report dict
/// (see [`run::run_manifest`]); failures are reported in it, not raised.
#[pyfunction]
#[pyo3(name = "run_manifest", signature = (manifest, inputs, python_nodes=None, batch_size=None, **placement_args))]
fn py_run_manifest<'py>(
    py: Python<'py>,
    manifest: &str,
    inputs: &Bound<'py, PyAny>,
    python_nodes: Option<&Bound<'py, PyDict>>,
    batch_size: Option<usize>,
    placement_args: Option<&Bound<'py, PyDict>>,
) -> PyResult<Bound<'py, PyDict>> {
    let hosts = hosts_of(python_nodes)?;
    let sources = placement(placement_args)?;
    run::run_manifest(
        py,
        manifest,
        inputs,
        hosts,
        &run_options(batch_size),
        &sources,
    )
}

/// Starts a streaming session of a manifest (see [`stream::start_stream`]): returns
/// `{"session": StreamSession}`, or a run report whose `error` says why it cannot start.
#[pyfunction]
#[pyo3(name = "start_stream", signature = (manifest, python_nodes=None, batch_size=None, **placement_args))]
fn py_start_stream<'py>(
    py: Python<'py>,
    manifest: &str,
    python_nodes: Option<&Bound<'py, PyDict>>,
    batch_size: Option<usize>,
    placement_args: Option<&Bound<'py, PyDict>>,
) -> PyResult<Bound<'py, PyDict>> {
    let hosts = hosts_of(python_nodes)?;
    let sources = placement(placement_args)?;
    stream::start_stream(py, manifest, hosts, run_options(batch_size), &sources)
}

/// Validates a manifest once for [`py_run_prepared`] (see [`run::prepare_manifest`]).
#[pyfunction]
#[pyo3(name = "prepare_manifest")]
fn py_prepare_manifest<'py>(py: Python<'py>, manifest: &str) -> PyResult<Bound<'py, PyDict>> {
    run::prepare_manifest(py, manifest)
}

/// Runs inputs through a prepared manifest (see [`run::run_prepared`]); the keyword
/// arguments are [`py_run_manifest`]'s.
#[pyfunction]
#[pyo3(name = "run_prepared", signature = (prepared, inputs, batch_size=None, **placement_args))]
fn py_run_prepared<'py>(
    py: Python<'py>,
    prepared: &Bound<'py, run::PreparedManifest>,
    inputs: &Bound<'py, PyAny>,
    batch_size: Option<usize>,
    placement_args: Option<&Bound<'py, PyDict>>,
) -> PyResult<Bound<'py, PyDict>> {
    let sources = placement(placement_args)?;
    run::run_prepared(
        py,
        prepared.get(),
        inputs,
        &run_options(batch_size),
        &sources,
    )
}

/// Validates a manifest against the CLI's node types; returns a list of
/// `{"path", "message"}` dicts, empty when the manifest is valid.
#[pyfunction]
#[pyo3(name = "validate_manifest")]
fn py_validate_manifest<'py>(py: Python<'py>, manifest: &str) -> PyResult<Bound<'py, PyList>> {
    run::validate_manifest(py, manifest)
}

/// Canonical names of the node types (the CLI's), sorted.
#[pyfunction]
fn node_types() -> Vec<String> {
    remotemedia_runtime::registry()
        .types()
        .map(str::to_string)
        .collect()
}

/// Converts a value into pipeline data and back (what crossing into the core does).
#[pyfunction]
fn roundtrip<'py>(py: Python<'py>, value: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let data = convert::py_to_data(value)?;
    convert::data_to_py(py, &data)
}

/// The `remotemedia._remotemedia` module.
#[pymodule(gil_used = true)]
#[pyo3(name = "_remotemedia")]
fn remotemedia_ext(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    // Worker processes of `PythonNode`s (`runtime: process`) run this program's
    // interpreter unless told otherwise.
    let executable: String = m.py().import("sys")?.getattr("executable")?.extract()?;
    remotemedia_python::process::set_embedding_python(&executable);
    m.add("PYTHON_CALLBACK_TYPE", callback::PYTHON_CALLBACK_TYPE)?;
    m.add(
        "DataBuffer",
        remotemedia_python::buffer::data_buffer_type(m.py())?,
    )?;
    m.add_class::<stream::StreamSession>()?;
    m.add_function(wrap_pyfunction!(py_run_manifest, m)?)?;
    m.add_function(wrap_pyfunction!(py_start_stream, m)?)?;
    m.add_class::<run::PreparedManifest>()?;
    m.add_function(wrap_pyfunction!(py_prepare_manifest, m)?)?;
    m.add_function(wrap_pyfunction!(py_run_prepared, m)?)?;
    m.add_function(wrap_pyfunction!(py_validate_manifest, m)?)?;
    m.add_function(wrap_pyfunction!(node_types, m)?)?;
    m.add_function(wrap_pyfunction!(roundtrip, m)?)?;
    Ok(())
}
