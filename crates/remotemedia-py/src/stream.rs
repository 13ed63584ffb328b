//! Streaming from Python through the Rust core: a session whose input a Python
//! producer feeds item by item and whose outputs a consumer takes as they come.
//!
//! [`start_stream`] loads, places and builds the pipeline like a run; the
//! [`StreamSession`] it returns has blocking `send` and `recv` that release the GIL, so
//! the SDK calls them on worker threads (`asyncio.to_thread`) and the event loop is never
//! blocked. The core's queues are bounded: `send` waits while the pipeline is full,
//! which slows a fast producer to the pipeline's pace.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use remotemedia_core::executor::{
    CancelToken, RunOptions, Session, SessionReceiver, SessionSender,
};
use remotemedia_core::plan::Plan;
use remotemedia_core::Data;
use remotemedia_runtime::{ExecutorSources, Runnable};

use crate::callback::ErrorStash;
use crate::convert::{data_to_py, py_to_data};
use crate::run;

/// A running streaming session (see the module docs).
#[pyclass(name = "StreamSession", module = "remotemedia._remotemedia")]
pub struct StreamSession {
    sender: Mutex<Option<SessionSender>>,
    receiver: Mutex<Option<SessionReceiver>>,
    cancel: CancelToken,
    stash: ErrorStash,
    runnable: Runnable,
    warnings: Vec<String>,
    /// Items sent so far: the index an item that cannot be converted is named by.
    sent: AtomicUsize,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Starts a streaming session of `manifest`: returns `{"session": StreamSession}` or,
/// when it cannot start, the report dict of a run (`outputs` empty, `error` set).
pub fn start_stream<'py>(
    py: Python<'py>,
    manifest_text: &str,
    hosts: Option<HashMap<String, Py<PyAny>>>,
    options: RunOptions,
    sources: &ExecutorSources,
) -> PyResult<Bound<'py, PyDict>> {
    let stash = ErrorStash::new();
    let (pipeline, registry) = match run::load(py, manifest_text, hosts, &stash)? {
        Ok(loaded) => loaded,
        Err(report) => return Ok(report),
    };
    let mut warnings = Vec::new();
    let runnable = match run::place(py, pipeline, registry, sources, &mut warnings)? {
        Ok(r) => r,
        Err(report) => return Ok(report),
    };
    let cancel = CancelToken::new();
    let options = RunOptions {
        cancel: cancel.clone(),
        ..options
    };
    let started: Result<Session, _> = py.detach(|| {
        Plan::build(&runnable.pipeline, &runnable.registry)
            .and_then(|plan| plan.start_session(&options))
    });
    let session = match started {
        Ok(s) => s,
        Err(e) => {
            let failure = remotemedia_core::executor::RunFailure {
                error: e,
                partial: Box::default(),
            };
            return run::failure_report(py, &failure, &stash, &warnings, run::Metrics::Include);
        }
    };
    let (sender, receiver) = session.into_split();
    let d = PyDict::new(py);
    let session = StreamSession {
        sender: Mutex::new(Some(sender)),
        receiver: Mutex::new(Some(receiver)),
        cancel,
        stash,
        runnable,
        warnings,
        sent: AtomicUsize::new(0),
    };
    d.set_item("session", Py::new(py, session)?)?;
    Ok(d)
}

#[pymethods]
impl StreamSession {
    /// Sends `items` (a list) into the pipeline, waiting with the GIL released while
    /// it is full. Returns `None`, or the error dict of an item that cannot become
    /// pipeline data (nothing of the list is sent then), or `False` once the session
    /// no longer takes input (a node failed, or it was cancelled).
    fn send<'py>(&self, py: Python<'py>, items: &Bound<'py, PyList>) -> PyResult<Py<PyAny>> {
        let mut batch: Vec<Data> = Vec::with_capacity(items.len());
        let first = self.sent.load(Ordering::Relaxed);
        for (k, value) in items.iter().enumerate() {
            match py_to_data(&value) {
                Ok(d) => batch.push(d),
                Err(err) => {
                    return Ok(run::input_error(py, first + k, err)?.into_any().unbind());
                }
            }
        }
        let n = batch.len();
        // A clone, so that closing or cancelling does not wait for a send held back.
        let sender = lock(&self.sender).clone();
        let ok = py.detach(move || match sender {
            Some(s) => s.send_batch(batch).is_ok(),
            None => false,
        });
        if ok {
            self.sent.fetch_add(n, Ordering::Relaxed);
            Ok(py.None())
        } else {
            Ok(false.into_pyobject(py)?.to_owned().into_any().unbind())
        }
    }

    /// Ends the input: the pipeline finishes what it has, flushes and ends.
    fn close_input(&self, py: Python<'_>) {
        let sender = lock(&self.sender).take();
        py.detach(move || drop(sender));
    }

    /// The next outputs (a list, from one sink), waiting with the GIL released; `None`
    /// at the end of the stream or after a failure ([`StreamSession::finish`] says).
    fn recv<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyList>>> {
        let got = py.detach(|| lock(&self.receiver).as_mut().and_then(|r| r.recv_batch()));
        match got {
            None => Ok(None),
            Some((_, items)) => {
                let list = PyList::empty(py);
                for item in &items {
                    list.append(data_to_py(py, item)?)?;
                }
                Ok(Some(list))
            }
        }
    }

    /// Stops the session: node calls still to come fail as cancelled, input is
    /// refused, and `recv` returns what was already produced, then `None`.
    fn cancel(&self, py: Python<'_>) {
        self.cancel.cancel();
        let sender = lock(&self.sender).take();
        py.detach(move || drop(sender));
    }

    /// Waits for the end of the session and returns its report dict (as a run's:
    /// `outputs` holds what `recv` did not take, `error` what failed).
    fn finish<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let sender = lock(&self.sender).take();
        let receiver = lock(&self.receiver)
            .take()
            .ok_or_else(|| PyRuntimeError::new_err("the stream session was already finished"))?;
        let outcome = py.detach(move || {
            drop(sender);
            receiver.finish().map_err(Box::new)
        });
        // What the placement said was told by `warnings` as the session started; the
        // report adds what happened on executors since.
        let mut warnings = Vec::new();
        run::remote_warnings(&self.runnable, &mut warnings);
        match outcome {
            Ok(result) => run::report(py, &result, &self.stash, &warnings, run::Metrics::Include),
            Err(failure) => {
                run::failure_report(py, &failure, &self.stash, &warnings, run::Metrics::Include)
            }
        }
    }

    /// What the placement said (a token in clear, an optional requirement not met).
    #[getter]
    fn warnings(&self) -> Vec<String> {
        self.warnings.clone()
    }
}
