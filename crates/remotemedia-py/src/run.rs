//! Running a manifest from Python: validation, input conversion, execution with the GIL
//! released, and a plain-dict report of the outcome for the SDK to turn into results or
//! exceptions.

use std::collections::HashMap;
use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use remotemedia_core::executor::{run_pipeline, RunFailure, RunOptions, RunResult};
use remotemedia_core::manifest::{self, Format, ManifestErrors, Pipeline};
use remotemedia_core::{Data, PipelineNodeError, Registry, RunError};
use remotemedia_runtime::{prepare, ExecutorSources, PrepareError, Runnable};

use crate::callback::{ErrorStash, PyCallbackFactory};
use crate::convert::{data_to_py, py_to_data};

/// The CLI's registry (every built-in node type, audio, speech, `PythonNode`), plus
/// `PythonCallback` over `hosts` when given.
pub fn registry_with_hosts(
    hosts: Option<HashMap<String, Py<PyAny>>>,
    errors: &ErrorStash,
) -> Registry {
    let mut registry = remotemedia_runtime::registry();
    if let Some(hosts) = hosts {
        registry.register(Arc::new(PyCallbackFactory::new(hosts, errors.clone())));
    }
    registry
}

fn manifest_errors<'py>(py: Python<'py>, errors: &ManifestErrors) -> PyResult<Bound<'py, PyList>> {
    let list = PyList::empty(py);
    for e in &errors.0 {
        let d = PyDict::new(py);
        d.set_item("path", &e.path)?;
        d.set_item("message", &e.message)?;
        list.append(d)?;
    }
    Ok(list)
}

fn node_error_dict<'py>(
    py: Python<'py>,
    e: &PipelineNodeError,
    stash: &ErrorStash,
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("type", "node")?;
    d.set_item("node_id", &e.node_id)?;
    d.set_item("node_type", &e.node_type)?;
    d.set_item("phase", e.phase.to_string())?;
    d.set_item("kind", e.kind.as_str())?;
    d.set_item("message", &e.message)?;
    d.set_item("input_preview", e.input_preview.as_deref())?;
    d.set_item("traceback", e.traceback.as_deref())?;
    d.set_item("attempts", e.attempts)?;
    d.set_item("cause", stash.take(&e.node_id))?;
    Ok(d)
}

fn outputs_list<'py>(py: Python<'py>, result: &RunResult) -> PyResult<Bound<'py, PyList>> {
    let list = PyList::empty(py);
    for item in result.all_items() {
        list.append(data_to_py(py, item)?)?;
    }
    Ok(list)
}

/// Whether a report carries the run's metrics (converting them costs more than a small
/// run: cached pipelines' runs leave them out).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Metrics {
    Include,
    Leave,
}

pub(crate) fn report<'py>(
    py: Python<'py>,
    result: &RunResult,
    stash: &ErrorStash,
    warnings: &[String],
    metrics: Metrics,
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("warnings", warnings)?;
    d.set_item("outputs", outputs_list(py, result)?)?;
    let cleanup = PyList::empty(py);
    for e in &result.cleanup_errors {
        cleanup.append(node_error_dict(py, e, stash)?)?;
    }
    d.set_item("cleanup_errors", cleanup)?;
    let skipped = PyList::empty(py);
    for e in &result.skipped {
        skipped.append(node_error_dict(py, e, stash)?)?;
    }
    d.set_item("skipped", skipped)?;
    let metrics = (metrics == Metrics::Include)
        .then(|| serde_json::to_value(&result.metrics).ok())
        .flatten()
        .and_then(|v| Data::from_json(&v).ok());
    match metrics {
        Some(m) => d.set_item("metrics", data_to_py(py, &m)?)?,
        None => d.set_item("metrics", py.None())?,
    }
    d.set_item("error", py.None())?;
    Ok(d)
}

pub(crate) fn failure_report<'py>(
    py: Python<'py>,
    failure: &RunFailure,
    stash: &ErrorStash,
    warnings: &[String],
    metrics: Metrics,
) -> PyResult<Bound<'py, PyDict>> {
    let d = report(py, &failure.partial, stash, warnings, metrics)?;
    let error = match &failure.error {
        RunError::Node(e) => node_error_dict(py, e, stash)?,
        RunError::Build {
            node_id,
            node_type,
            message,
        } => {
            let e = PyDict::new(py);
            e.set_item("type", "build")?;
            e.set_item("node_id", node_id)?;
            e.set_item("node_type", node_type)?;
            e.set_item("message", message)?;
            e
        }
        other => {
            let e = PyDict::new(py);
            e.set_item("type", "runtime")?;
            e.set_item("message", other.to_string())?;
            e
        }
    };
    d.set_item("error", error)?;
    Ok(d)
}

pub(crate) fn error_only<'py>(
    py: Python<'py>,
    error: Bound<'py, PyDict>,
    warnings: &[String],
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("warnings", warnings)?;
    d.set_item("outputs", PyList::empty(py))?;
    d.set_item("cleanup_errors", PyList::empty(py))?;
    d.set_item("skipped", PyList::empty(py))?;
    d.set_item("metrics", py.None())?;
    d.set_item("error", error)?;
    Ok(d)
}

/// The error dict of a pipeline that cannot be made runnable: `"config"` for a wrong
/// executor configuration, `"placement"` when some node has no place or its remote
/// stage cannot be set up. `message` is the CLI's, hint line included.
fn prepare_error<'py>(py: Python<'py>, e: &PrepareError) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    let kind = match e {
        PrepareError::Config(_) => "config",
        PrepareError::Unplaceable { .. } | PrepareError::Distribute(_) => "placement",
    };
    d.set_item("type", kind)?;
    let message = match e.hint() {
        Some(hint) => format!("{e}\n{hint}"),
        None => e.to_string(),
    };
    d.set_item("message", message)?;
    Ok(d)
}

/// Validates `manifest` (JSON or YAML text), places it like the CLI does (executors
/// from `sources`, `REMOTEMEDIA_EXECUTORS`, `remotemedia.toml`, nodes' `host`) and runs
/// `inputs` through it.
///
/// `hosts` maps `PythonCallback` handles to host objects (see [`crate::callback`]). The
/// GIL is released while the pipeline is placed and runs. Returns a dict with
/// `outputs`, `error` (`None` on success), `cleanup_errors`, `skipped`, `metrics` and
/// `warnings`; `error["type"]` is `"manifest"`, `"input"`, `"config"`, `"placement"`,
/// `"node"`, `"build"` or `"runtime"`.
pub fn run_manifest<'py>(
    py: Python<'py>,
    manifest_text: &str,
    inputs: &Bound<'py, PyAny>,
    hosts: Option<HashMap<String, Py<PyAny>>>,
    options: &RunOptions,
    sources: &ExecutorSources,
) -> PyResult<Bound<'py, PyDict>> {
    let stash = ErrorStash::new();
    let (pipeline, registry) = match load(py, manifest_text, hosts, &stash)? {
        Ok(loaded) => loaded,
        Err(report) => return Ok(report),
    };
    let items = match convert_inputs(py, inputs)? {
        Ok(items) => items,
        Err(report) => return Ok(report),
    };
    run_placed(
        py,
        &pipeline,
        &registry,
        items,
        options,
        sources,
        &stash,
        Metrics::Include,
    )
}

/// The input items as pipeline data; `Err` is the report naming the first that cannot
/// be.
fn convert_inputs<'py>(
    py: Python<'py>,
    inputs: &Bound<'py, PyAny>,
) -> PyResult<Result<Vec<Data>, Bound<'py, PyDict>>> {
    let mut items = Vec::with_capacity(inputs.len().unwrap_or(0));
    for (index, value) in inputs.try_iter()?.enumerate() {
        match py_to_data(&value?) {
            Ok(d) => items.push(d),
            Err(err) => return Ok(Err(error_only(py, input_error(py, index, err)?, &[])?)),
        }
    }
    Ok(Ok(items))
}

/// Places `pipeline` when something asks for it (else runs it as it is), runs `items`
/// through it with the GIL released and reports the outcome.
#[allow(clippy::too_many_arguments)]
fn run_placed<'py>(
    py: Python<'py>,
    pipeline: &Pipeline,
    registry: &Registry,
    items: Vec<Data>,
    options: &RunOptions,
    sources: &ExecutorSources,
    stash: &ErrorStash,
    metrics: Metrics,
) -> PyResult<Bound<'py, PyDict>> {
    let mut warnings = Vec::new();
    let placed = if remotemedia_runtime::needs_placement(pipeline, sources) {
        match place(
            py,
            pipeline.clone(),
            registry.clone(),
            sources,
            &mut warnings,
        )? {
            Ok(r) => Some(r),
            Err(report) => return Ok(report),
        }
    } else {
        None
    };
    let (pipeline, registry) = match &placed {
        Some(r) => (&r.pipeline, &r.registry),
        None => (pipeline, registry),
    };
    let outcome = py.detach(|| run_pipeline(pipeline, registry, items, options).map_err(Box::new));
    if let Some(r) = &placed {
        remote_warnings(r, &mut warnings);
    }
    match outcome {
        Ok(result) => report(py, &result, stash, &warnings, metrics),
        Err(failure) => failure_report(py, &failure, stash, &warnings, metrics),
    }
}

/// Validates `manifest_text` against the CLI's node types plus `PythonCallback` over
/// `hosts`; `Err` is the report of a manifest that is not valid.
pub(crate) fn load<'py>(
    py: Python<'py>,
    manifest_text: &str,
    hosts: Option<HashMap<String, Py<PyAny>>>,
    stash: &ErrorStash,
) -> PyResult<Result<(Pipeline, Registry), Bound<'py, PyDict>>> {
    let registry = registry_with_hosts(hosts, stash);
    let format = Format::detect(None, manifest_text);
    match manifest::load_str(manifest_text, format, &registry) {
        Ok(p) => Ok(Ok((p, registry))),
        Err(errors) => {
            let e = PyDict::new(py);
            e.set_item("type", "manifest")?;
            e.set_item("errors", manifest_errors(py, &errors)?)?;
            Ok(Err(error_only(py, e, &[])?))
        }
    }
}

/// Places `pipeline` like the CLI does, the GIL released while executors are asked;
/// `Err` is the report of a pipeline that cannot be placed. Warnings go to `warnings`.
pub(crate) fn place<'py>(
    py: Python<'py>,
    pipeline: Pipeline,
    registry: Registry,
    sources: &ExecutorSources,
    warnings: &mut Vec<String>,
) -> PyResult<Result<Runnable, Bound<'py, PyDict>>> {
    match py.detach(|| prepare(pipeline, registry, sources, &mut |w| warnings.push(w))) {
        Ok(r) => Ok(Ok(r)),
        Err(e) => Ok(Err(error_only(py, prepare_error(py, &e)?, warnings)?)),
    }
}

/// What happened on executors, told as the CLI tells it: failovers, fallbacks, items
/// skipped and cleanups that failed there.
pub(crate) fn remote_warnings(runnable: &Runnable, warnings: &mut Vec<String>) {
    if let Some(remote) = &runnable.remote {
        let r = remote.snapshot();
        warnings.extend(r.events.iter().map(|e| e.to_string()));
        warnings.extend(r.skipped.iter().map(|e| format!("skipped item: {e}")));
        warnings.extend(r.cleanup_errors.iter().map(|e| e.to_string()));
    }
}

/// The error dict of input item `index`, which cannot become pipeline data: no node
/// is to blame (none has seen it), the value's type and path are in the message.
pub(crate) fn input_error<'py>(
    py: Python<'py>,
    index: usize,
    err: crate::convert::ConvertError,
) -> PyResult<Bound<'py, PyDict>> {
    let e = PyDict::new(py);
    e.set_item("type", "input")?;
    e.set_item("index", index)?;
    e.set_item("kind", "invalid_input")?;
    e.set_item(
        "message",
        format!("input item {index} cannot enter the pipeline: {err}"),
    )?;
    e.set_item("cause", err.to_pyerr().into_value(py))?;
    Ok(e)
}

/// A manifest validated once, to run many times (the SDK keeps one per `Pipeline` until
/// the pipeline changes): runs skip parsing, validating and building the registry.
#[pyclass(name = "PreparedManifest", module = "remotemedia._remotemedia", frozen)]
pub struct PreparedManifest {
    pipeline: Pipeline,
    registry: Registry,
}

#[pymethods]
impl PreparedManifest {
    /// Whether a run with these placement arguments (see [`crate::placement`]) asks
    /// executors first: a caller on an event loop runs such a run on a worker thread.
    #[pyo3(signature = (**placement_args))]
    fn needs_placement(&self, placement_args: Option<&Bound<'_, PyDict>>) -> PyResult<bool> {
        let sources = crate::placement(placement_args)?;
        Ok(remotemedia_runtime::needs_placement(
            &self.pipeline,
            &sources,
        ))
    }
}

/// Validates `manifest_text` for [`run_prepared`]: `{"prepared": PreparedManifest}`, or
/// the report of a manifest that is not valid. No `PythonCallback` nodes (their hosts
/// belong to one run).
pub fn prepare_manifest<'py>(py: Python<'py>, manifest_text: &str) -> PyResult<Bound<'py, PyDict>> {
    let stash = ErrorStash::new();
    match load(py, manifest_text, None, &stash)? {
        Ok((pipeline, registry)) => {
            let d = PyDict::new(py);
            d.set_item(
                "prepared",
                Py::new(py, PreparedManifest { pipeline, registry })?,
            )?;
            Ok(d)
        }
        Err(report) => Ok(report),
    }
}

/// Runs `inputs` through a [`PreparedManifest`], placed like [`run_manifest`] (the
/// placement step is skipped only when nothing asks for it). The report has no
/// `metrics`.
pub fn run_prepared<'py>(
    py: Python<'py>,
    prepared: &PreparedManifest,
    inputs: &Bound<'py, PyAny>,
    options: &RunOptions,
    sources: &ExecutorSources,
) -> PyResult<Bound<'py, PyDict>> {
    let items = match convert_inputs(py, inputs)? {
        Ok(items) => items,
        Err(report) => return Ok(report),
    };
    let (pipeline, registry) = (&prepared.pipeline, &prepared.registry);
    let stash = ErrorStash::new();
    run_placed(
        py,
        pipeline,
        registry,
        items,
        options,
        sources,
        &stash,
        Metrics::Leave,
    )
}

/// Validates `manifest` against the CLI's node types; returns every problem found.
pub fn validate_manifest<'py>(
    py: Python<'py>,
    manifest_text: &str,
) -> PyResult<Bound<'py, PyList>> {
    let registry = remotemedia_runtime::registry();
    let format = Format::detect(None, manifest_text);
    match manifest::load_str(manifest_text, format, &registry) {
        Ok(_) => Ok(PyList::empty(py)),
        Err(errors) => manifest_errors(py, &errors),
    }
}
