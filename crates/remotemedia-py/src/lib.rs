//! Python bindings for remotemedia: the `remotemedia._remotemedia` extension module.
//!
//! Glue only. [`convert`] maps Python values to pipeline data and back, [`callback`]
//! lets Python objects act as pipeline nodes, [`run`] validates and runs a manifest with
//! the GIL released. Everything else lives in `remotemedia-core`; the Python SDK
//! (`python/remotemedia`) builds manifests and turns reports into results or exceptions.
#![warn(missing_docs)]

// The unit tests start an interpreter, so they link libpython as decided by build.rs.
#[cfg(test)]
include!(concat!(env!("OUT_DIR"), "/libpython.rs"));

pub mod callback;
pub mod convert;
pub mod run;

use std::collections::HashMap;

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use remotemedia_core::executor::RunOptions;

/// Runs a manifest (JSON or YAML text) over `inputs` in the Rust core.
///
/// `python_nodes` maps `PythonCallback` handles to host objects. Returns a report dict
/// (see [`run::run_manifest`]); failures are reported in it, not raised.
#[pyfunction]
#[pyo3(name = "run_manifest", signature = (manifest, inputs, python_nodes=None, batch_size=None))]
fn py_run_manifest<'py>(
    py: Python<'py>,
    manifest: &str,
    inputs: &Bound<'py, PyAny>,
    python_nodes: Option<&Bound<'py, PyDict>>,
    batch_size: Option<usize>,
) -> PyResult<Bound<'py, PyDict>> {
    let hosts = match python_nodes {
        Some(d) => {
            let mut map = HashMap::with_capacity(d.len());
            for (k, v) in d.iter() {
                map.insert(k.extract::<String>()?, v.unbind());
            }
            Some(map)
        }
        None => None,
    };
    let mut options = RunOptions::default();
    if let Some(b) = batch_size {
        options.batch_size = b.max(1);
    }
    run::run_manifest(py, manifest, inputs, hosts, &options)
}

/// Validates a manifest against the built-in node types; returns a list of
/// `{"path", "message"}` dicts, empty when the manifest is valid.
#[pyfunction]
#[pyo3(name = "validate_manifest")]
fn py_validate_manifest<'py>(py: Python<'py>, manifest: &str) -> PyResult<Bound<'py, PyList>> {
    run::validate_manifest(py, manifest)
}

/// Canonical names of the built-in node types, sorted.
#[pyfunction]
fn node_types() -> Vec<String> {
    remotemedia_speech::registry()
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
    m.add("PYTHON_CALLBACK_TYPE", callback::PYTHON_CALLBACK_TYPE)?;
    m.add_class::<convert::DataBuffer>()?;
    m.add_function(wrap_pyfunction!(py_run_manifest, m)?)?;
    m.add_function(wrap_pyfunction!(py_validate_manifest, m)?)?;
    m.add_function(wrap_pyfunction!(node_types, m)?)?;
    m.add_function(wrap_pyfunction!(roundtrip, m)?)?;
    Ok(())
}
