//! The embedded CPython host (cargo feature `cpython`).
//!
//! One interpreter per process, initialized on first use on a dedicated thread
//! (`rm-cpython`), which is the only thread that ever holds the GIL on behalf of
//! pipeline nodes: stages hand it batches and wait for the results, so no pipeline
//! thread ever blocks on the GIL. Values cross with [`crate::convert`] (numpy
//! arrays ↔ tensor/audio without copies where possible).
//!
//! The interpreter is configured like the `python3` program (environment variables such
//! as `PYTHONPATH` apply) but installs no signal handlers. When `VIRTUAL_ENV` names a
//! virtualenv of the same Python version, its packages are importable.

#[cfg(not(Py_LIMITED_API))]
use std::ffi::CStr;
use std::ffi::CString;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use crate::convert::{data_to_py, py_to_data};
use pyo3::ffi;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{
    PyBool, PyBytes, PyCFunction, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple,
};
use remotemedia_core::{Data, ErrorKind, MemberRun, NodeError};

use crate::host::{
    emit_log, output_error, python_error, python_log_level, BatchOutcome, GroupHandle, GroupRun,
    Instance, ItemOutcome, LoadError,
};
use crate::spec::{NodeSpec, Origin, Runtime};
use crate::thread::InterpThread;

/// The shared driver code, run as the module `_remotemedia_driver`.
pub(crate) const DRIVER: &str = crate::DRIVER_SOURCE;

struct Interp {
    thread: InterpThread,
    driver: Arc<Py<PyAny>>,
}

static INTERP: OnceLock<Result<Interp, String>> = OnceLock::new();

fn unavailable(reason: impl Into<String>) -> LoadError {
    LoadError::Unavailable {
        runtime: Runtime::CPython,
        reason: reason.into(),
    }
}

fn interp() -> Result<&'static Interp, LoadError> {
    INTERP
        .get_or_init(start)
        .as_ref()
        .map_err(|r| unavailable(r.clone()))
}

/// Whether the embedded interpreter starts (starting it if needed).
pub fn available() -> Result<(), String> {
    interp().map(|_| ()).map_err(|e| e.to_string())
}

fn start() -> Result<Interp, String> {
    let slot: Arc<OnceLock<Py<PyAny>>> = Arc::new(OnceLock::new());
    let inner = Arc::clone(&slot);
    let thread = InterpThread::spawn("rm-cpython", None, move || {
        init_python()?;
        let driver = Python::attach(setup_driver)?;
        let _ = inner.set(driver);
        Ok(())
    })?;
    let driver = Arc::try_unwrap(slot)
        .ok()
        .and_then(OnceLock::into_inner)
        .ok_or("the interpreter thread did not hand over the driver")?;
    Ok(Interp {
        thread,
        driver: Arc::new(driver),
    })
}

/// `major.minor` of the linked interpreter (`"3.11"`).
#[cfg(not(Py_LIMITED_API))]
fn python_version() -> String {
    // SAFETY: Py_GetVersion may be called before initialization; it returns a static
    // NUL-terminated string.
    let version = unsafe { CStr::from_ptr(ffi::Py_GetVersion()) }.to_string_lossy();
    let mut parts = version.split(|c: char| !c.is_ascii_digit());
    let major = parts.next().unwrap_or_default();
    let minor = parts.next().unwrap_or_default();
    format!("{major}.{minor}")
}

/// How this build links libpython: `static` (in the binary), `shared` or
/// `pyo3-shared` (by soname, the binary needs `libpythonX.Y.so` at run time).
pub const LIBPYTHON_LINK: &str = env!("REMOTEMEDIA_LIBPYTHON_LINK");

/// The prefix of the Python the binary was built against (empty when unknown).
#[cfg(not(Py_LIMITED_API))]
const BUILD_PREFIX: &str = env!("REMOTEMEDIA_BUILD_PYTHON_PREFIX");

/// Where the standard library of CPython `version` is, as the home to configure:
/// `Ok(None)` when `PYTHONHOME` is set and holds it (the interpreter reads it), else
/// the first of the build Python's prefix, `/usr` and `/usr/local` with
/// `lib/pythonX.Y/os.py`. `Err` names the places searched and what to install.
#[cfg(not(Py_LIMITED_API))]
pub(crate) fn python_home(
    version: &str,
    pythonhome: Option<&std::ffi::OsStr>,
    build_prefix: &str,
) -> Result<Option<std::path::PathBuf>, String> {
    use std::path::{Path, PathBuf};
    let landmark = format!("lib/python{version}/os.py");
    let (places, found): (Vec<String>, Option<PathBuf>) = match pythonhome.filter(|h| !h.is_empty())
    {
        Some(home) => {
            // `PREFIX:EXEC_PREFIX` is allowed; the library is under the first.
            let home = home.to_string_lossy();
            let prefix = home.split(':').next().unwrap_or_default();
            if Path::new(prefix).join(&landmark).is_file() {
                return Ok(None);
            }
            (vec![format!("PYTHONHOME ({home})")], None)
        }
        None => {
            let candidates: Vec<&str> = [build_prefix, "/usr", "/usr/local"]
                .into_iter()
                .filter(|p| !p.is_empty())
                .collect();
            let found = candidates
                .iter()
                .map(PathBuf::from)
                .find(|p| p.join(&landmark).is_file());
            (candidates.iter().map(|p| p.to_string()).collect(), found)
        }
    };
    match found {
        Some(home) => Ok(Some(home)),
        None => Err(format!(
            "embedded CPython {version} needs its standard library ({landmark}): not found \
             under {}; install Python {version} (Debian/Ubuntu: python{version}) or set \
             PYTHONHOME to a prefix holding it",
            places.join(", ")
        )),
    }
}

/// `$VIRTUAL_ENV/bin/python` when it is a virtualenv of this libpython's version.
#[cfg(not(Py_LIMITED_API))]
fn venv_python() -> Option<CString> {
    let venv = std::env::var_os("VIRTUAL_ENV")?;
    let venv = std::path::PathBuf::from(venv);
    let version = python_version();
    if !venv.join(format!("lib/python{version}")).is_dir() {
        return None;
    }
    let exe = venv.join("bin/python");
    if !exe.exists() {
        return None;
    }
    CString::new(exe.to_string_lossy().into_owned()).ok()
}

#[cfg(not(Py_LIMITED_API))]
fn status_message(status: ffi::PyStatus) -> String {
    if status.err_msg.is_null() {
        format!("initialization failed (exit code {})", status.exitcode)
    } else {
        // SAFETY: a non-null `err_msg` is a static NUL-terminated string.
        let msg = unsafe { CStr::from_ptr(status.err_msg) }.to_string_lossy();
        format!("initialization failed: {msg}")
    }
}

/// Replaces `os._exit` in the interpreter this host starts itself.
#[cfg(not(Py_LIMITED_API))]
const REFUSE_EXIT: &std::ffi::CStr = c"import os as _os

def _remotemedia_refuse_exit(code=0, /):
    raise RuntimeError(
        f'os._exit({code!r}) would end the whole remotemedia process: a PythonNode in the '
        'embedded interpreter (runtime: cpython) cannot exit it, so the node fails instead '
        '(runtime: process runs a node in a worker process of its own)')

_os._exit = _remotemedia_refuse_exit
del _os, _remotemedia_refuse_exit
";

/// Initializes CPython on this thread (unless something else already did), reporting
/// failure instead of aborting the process, then releases the GIL.
fn init_python() -> Result<(), String> {
    // SAFETY: Py_IsInitialized may be called at any time.
    if unsafe { ffi::Py_IsInitialized() } != 0 {
        return Ok(());
    }
    start_interpreter()
}

/// Built for the stable ABI (the SDK's abi3 extension module): the host only runs
/// inside the Python program that loaded it, whose interpreter is always there.
#[cfg(Py_LIMITED_API)]
fn start_interpreter() -> Result<(), String> {
    Err(
        "this build of the cpython host (for the stable ABI) runs only inside a Python \
         program and cannot start an interpreter of its own"
            .into(),
    )
}

/// Starts the embedded interpreter: its home found, signals left to the runtime, the
/// `os._exit` guard installed.
#[cfg(not(Py_LIMITED_API))]
fn start_interpreter() -> Result<(), String> {
    // SAFETY: plain calls into the C API in the documented order: a config is
    // initialized, filled, used once and cleared; the thread state created by
    // initialization is released so that other attaches can take the GIL.
    unsafe {
        let mut config = std::mem::MaybeUninit::<ffi::PyConfig>::zeroed();
        ffi::PyConfig_InitPythonConfig(config.as_mut_ptr());
        let config = config.as_mut_ptr();
        (*config).install_signal_handlers = 0;
        (*config).parse_argv = 0;
        let version = python_version();
        let home = match python_home(
            &version,
            std::env::var_os("PYTHONHOME").as_deref(),
            BUILD_PREFIX,
        ) {
            Ok(home) => home,
            Err(e) => {
                ffi::PyConfig_Clear(config);
                return Err(e);
            }
        };
        tracing::debug!(
            version = %version,
            libpython = LIBPYTHON_LINK,
            home = %home.as_deref().map_or("(PYTHONHOME)".into(), |h| h.display().to_string()),
            "starting the embedded CPython"
        );
        if let Some(home) = home {
            let home = CString::new(home.to_string_lossy().into_owned())
                .map_err(|_| "the Python home contains a NUL byte".to_string());
            let status = match home {
                Ok(home) => {
                    ffi::PyConfig_SetBytesString(config, &mut (*config).home, home.as_ptr())
                }
                Err(e) => {
                    ffi::PyConfig_Clear(config);
                    return Err(e);
                }
            };
            if ffi::PyStatus_Exception(status) != 0 {
                ffi::PyConfig_Clear(config);
                return Err(status_message(status));
            }
        }
        if let Some(exe) = venv_python() {
            let status =
                ffi::PyConfig_SetBytesString(config, &mut (*config).program_name, exe.as_ptr());
            if ffi::PyStatus_Exception(status) != 0 {
                ffi::PyConfig_Clear(config);
                return Err(status_message(status));
            }
        }
        let status = ffi::Py_InitializeFromConfig(config);
        ffi::PyConfig_Clear(config);
        if ffi::PyStatus_Exception(status) != 0 {
            return Err(status_message(status));
        }
        // This interpreter is ours (not the one of a Python program embedding us):
        // `os._exit` in a node would end the whole process, silently and with the
        // code meant for bad input; it fails the node instead.
        if ffi::PyRun_SimpleString(REFUSE_EXIT.as_ptr()) != 0 {
            ffi::PyEval_SaveThread();
            return Err("cannot set up the embedded interpreter (os._exit guard)".into());
        }
        ffi::PyEval_SaveThread();
    }
    Ok(())
}

fn setup_driver(py: Python<'_>) -> Result<Py<PyAny>, String> {
    let fail = |e: PyErr| format!("cannot set up the node driver: {e}");
    let code = CString::new(DRIVER).map_err(|e| e.to_string())?;
    let module = pyo3::types::PyModule::from_code(
        py,
        &code,
        c"<remotemedia driver>",
        c"_remotemedia_driver",
    )
    .map_err(fail)?;
    let log = PyCFunction::new_closure(
        py,
        None,
        None,
        |args: &Bound<'_, PyTuple>, _kw: Option<&Bound<'_, PyDict>>| -> PyResult<()> {
            let (level, logger, node, message): (i64, String, String, String) = args.extract()?;
            emit_log(level, &logger, &node, &message);
            Ok(())
        },
    )
    .map_err(fail)?;
    let err_write = PyCFunction::new_closure(
        py,
        None,
        None,
        |args: &Bound<'_, PyTuple>, _kw: Option<&Bound<'_, PyDict>>| -> PyResult<()> {
            let (text,): (String,) = args.extract()?;
            use std::io::Write;
            let mut e = std::io::stderr().lock();
            let _ = e.write_all(text.as_bytes());
            let _ = e.flush();
            Ok(())
        },
    )
    .map_err(fail)?;
    module
        .call_method1("setup", (log, err_write, python_log_level()))
        .map_err(fail)?;
    Ok(module.into_any().unbind())
}

/// `(kind, message, traceback)` of an exception, through the driver.
fn describe(py: Python<'_>, exc: &Bound<'_, PyAny>) -> NodeError {
    let driver = match INTERP.get() {
        Some(Ok(i)) => i.driver.bind(py).clone(),
        _ => return NodeError::new(ErrorKind::Python, exc.to_string()),
    };
    match driver
        .call_method1(intern!(py, "describe"), (exc,))
        .and_then(|d| d.extract::<(String, String, String)>())
    {
        Ok((kind, message, tb)) => python_error(&kind, message, tb),
        Err(_) => NodeError::new(ErrorKind::Python, exc.to_string()),
    }
}

fn describe_err(py: Python<'_>, err: PyErr) -> NodeError {
    let exc = err.into_value(py).into_any();
    describe(py, exc.bind(py))
}

/// Loads a node in the embedded interpreter.
pub fn load(spec: &NodeSpec) -> Result<Box<dyn Instance>, LoadError> {
    let interp = interp()?;
    let spec = spec.clone();
    let driver = Arc::clone(&interp.driver);
    let loaded = interp
        .thread
        .call(move || Python::attach(|py| load_in(py, driver.bind(py), &spec)))
        .ok_or_else(|| unavailable("the interpreter thread panicked"))??;
    Ok(Box::new(CPythonInstance {
        driver: Arc::new(loaded),
    }))
}

fn load_in(
    py: Python<'_>,
    driver: &Bound<'_, PyAny>,
    spec: &NodeSpec,
) -> Result<Py<PyAny>, LoadError> {
    let node_error = |message: String, traceback: Option<String>, compat: bool| LoadError::Node {
        runtime: Runtime::CPython,
        message,
        traceback,
        compat,
    };
    let kwargs =
        data_to_py(py, &spec.init).map_err(|e| node_error(format!("init: {e}"), None, false))?;
    let (module, source) = match &spec.origin {
        Origin::Module(m) => (Some(m.as_str()), None),
        Origin::Source(s) => (None, Some(s.as_str())),
    };
    let result = driver.call_method1(
        intern!(py, "load"),
        (
            spec.class.as_str(),
            module,
            source,
            spec.class.as_str(),
            kwargs,
            spec.python_path.clone(),
        ),
    );
    match result {
        Ok(d) => Ok(d.unbind()),
        Err(e) => {
            let exc = e.into_value(py).into_any();
            let exc = exc.bind(py);
            let compat = driver
                .call_method1(intern!(py, "is_compat_error"), (exc,))
                .and_then(|b| b.extract::<bool>())
                .unwrap_or(false);
            let described = describe(py, exc);
            Err(node_error(described.message, described.traceback, compat))
        }
    }
}

/// A node instance in the embedded interpreter.
struct CPythonInstance {
    driver: Arc<Py<PyAny>>,
}

impl CPythonInstance {
    fn call<R: Send + 'static>(
        &self,
        f: impl FnOnce(Python<'_>, &Bound<'_, PyAny>) -> R + Send + 'static,
    ) -> Result<R, NodeError> {
        let interp = interp().map_err(|e| e.to_node_error())?;
        let driver = Arc::clone(&self.driver);
        interp
            .thread
            .call(move || Python::attach(|py| f(py, driver.bind(py))))
            .ok_or_else(|| NodeError::new(ErrorKind::Panic, "the Python call panicked"))
    }
}

/// Whether a value converts directly (no generator or awaitable to drive).
fn is_plain(v: &Bound<'_, PyAny>) -> bool {
    v.is_exact_instance_of::<PyInt>()
        || v.is_exact_instance_of::<PyFloat>()
        || v.is_exact_instance_of::<PyString>()
        || v.is_exact_instance_of::<PyBool>()
        || v.is_exact_instance_of::<PyList>()
        || v.is_exact_instance_of::<PyDict>()
        || v.is_exact_instance_of::<PyTuple>()
        || v.is_exact_instance_of::<PyBytes>()
}

fn convert_list(list: &Bound<'_, PyAny>) -> ItemOutcome {
    let list = match list.cast::<PyList>() {
        Ok(l) => l,
        Err(_) => return ItemOutcome::Err(output_error("the driver returned no list")),
    };
    let mut outs = Vec::with_capacity(list.len());
    for x in list.iter() {
        match py_to_data(&x) {
            Ok(d) => outs.push(d),
            Err(e) => return ItemOutcome::Err(output_error(e)),
        }
    }
    ItemOutcome::Ok(outs)
}

/// The outputs of one member over a batch, still Python objects.
struct Flat<'py> {
    /// Every output, in order.
    outputs: Bound<'py, PyList>,
    /// Per item processed: where its outputs end in `outputs`, or why it failed.
    /// `None` when every item succeeded with exactly one output (the common case).
    items: Option<Vec<Result<usize, NodeError>>>,
}

impl<'py> Flat<'py> {
    /// Whether every item succeeded.
    fn clean(&self) -> bool {
        self.items
            .as_ref()
            .is_none_or(|items| items.iter().all(Result::is_ok))
    }

    /// Converts the outputs into the outcome of the batch.
    fn into_outcome(self) -> BatchOutcome {
        let mut outcome = BatchOutcome {
            outputs: Vec::with_capacity(self.outputs.len()),
            ..Default::default()
        };
        let Some(items) = self.items else {
            for x in self.outputs.iter() {
                match py_to_data(&x) {
                    Ok(d) => outcome.push_one(d),
                    Err(e) => outcome.push(ItemOutcome::Err(output_error(e))),
                }
            }
            return outcome;
        };
        let mut start = 0;
        for item in items {
            match item {
                Ok(end) => {
                    let outs: Result<Vec<Data>, _> = (start..end)
                        .map(|i| match self.outputs.get_item(i).map(|x| py_to_data(&x)) {
                            Ok(Ok(d)) => Ok(d),
                            Ok(Err(e)) => Err(output_error(e)),
                            Err(e) => Err(output_error(e)),
                        })
                        .collect();
                    outcome.push(match outs {
                        Ok(v) => ItemOutcome::Ok(v),
                        Err(e) => ItemOutcome::Err(e),
                    });
                    start = end;
                }
                Err(e) => outcome.push(ItemOutcome::Err(e)),
            }
        }
        outcome
    }
}

/// Runs the member behind `driver` over `input` (a list of Python values) and flattens
/// its results into one list of outputs, without converting them.
fn flatten<'py>(
    py: Python<'py>,
    driver: &Bound<'py, PyAny>,
    input: &Bound<'py, PyList>,
) -> Flat<'py> {
    let reply = driver
        .call_method1(intern!(py, "batch"), (input,))
        .and_then(|r| r.extract::<(Bound<'py, PyList>, bool, Bound<'py, PyAny>)>());
    let (results, nested, exc) = match reply {
        Ok(r) => r,
        Err(e) => {
            return Flat {
                outputs: PyList::empty(py),
                items: Some(vec![Err(describe_err(py, e))]),
            }
        }
    };
    // The common case: one plain value per item, passed on as the list it came in.
    if !nested && exc.is_none() && results.iter().all(|r| is_plain(&r)) {
        return Flat {
            outputs: results,
            items: None,
        };
    }
    let outputs = PyList::empty(py);
    let mut items = Vec::with_capacity(results.len() + 1);
    for r in results.iter() {
        let added = if nested {
            r.cast::<PyList>()
                .map_err(|_| output_error("the driver returned no list"))
                .and_then(|l| {
                    l.iter()
                        .try_for_each(|x| outputs.append(x))
                        .map_err(output_error)
                })
        } else if r.is_none() {
            Ok(())
        } else if is_plain(&r) {
            outputs.append(r).map_err(output_error)
        } else {
            match driver.call_method1(intern!(py, "expand"), (r,)) {
                Ok(list) => list
                    .try_iter()
                    .and_then(|it| it.into_iter().try_for_each(|x| outputs.append(x?)))
                    .map_err(output_error),
                Err(e) => Err(describe_err(py, e)),
            }
        };
        items.push(added.map(|()| outputs.len()));
    }
    if !exc.is_none() {
        items.push(Err(describe(py, &exc)));
    }
    Flat {
        outputs,
        items: Some(items),
    }
}

/// Converts `items` into a Python list; stops at the first item that cannot become a
/// Python value, returning the list of those before it and that item's error.
fn to_py_list<'py>(py: Python<'py>, items: &[Data]) -> (Bound<'py, PyList>, Option<NodeError>) {
    let mut values = Vec::with_capacity(items.len());
    let mut bad = None;
    for d in items {
        match data_to_py(py, d) {
            Ok(v) => values.push(v),
            Err(e) => {
                bad = Some(NodeError::invalid_input(format!(
                    "the item cannot become a Python value: {e}"
                )));
                break;
            }
        }
    }
    match PyList::new(py, values) {
        Ok(list) => (list, bad),
        Err(e) => (PyList::empty(py), Some(describe_err(py, e))),
    }
}

fn run_batch(py: Python<'_>, driver: &Bound<'_, PyAny>, items: &[Data]) -> BatchOutcome {
    let (input, bad_input) = to_py_list(py, items);
    let mut outcome = if input.is_empty() {
        BatchOutcome::default()
    } else {
        flatten(py, driver, &input).into_outcome()
    };
    if let (Some(e), true) = (bad_input, outcome.tail.is_empty()) {
        outcome.push(ItemOutcome::Err(e));
    }
    outcome
}

/// Runs `items` through the members behind `drivers`, in order, passing Python values
/// from one to the next; converts only the first member's inputs and the last outputs.
fn run_group_in(py: Python<'_>, drivers: &[Arc<Py<PyAny>>], items: &[Data]) -> GroupRun {
    let started = Instant::now();
    let (mut input, bad_input) = to_py_list(py, items);
    if bad_input.is_some() {
        // The first member reports the item that cannot enter Python, as when alone.
        let last = run_batch(py, drivers[0].bind(py), items);
        return GroupRun::single(items.len(), last, started);
    }
    let mut stats = Vec::with_capacity(drivers.len());
    for (j, driver) in drivers.iter().enumerate() {
        let started = if j == 0 { started } else { Instant::now() };
        let items_in = input.len() as u64;
        let flat = flatten(py, driver.bind(py), &input);
        if flat.clean() && j + 1 < drivers.len() {
            stats.push(MemberRun {
                items_in,
                items_out: flat.outputs.len() as u64,
                elapsed: started.elapsed(),
            });
            input = flat.outputs;
            continue;
        }
        let last = flat.into_outcome();
        stats.push(MemberRun {
            items_in,
            items_out: last.outputs.len() as u64,
            elapsed: started.elapsed(),
        });
        // A later member that failed resumes on its own inputs, as pipeline values.
        let last_inputs = if j > 0 && !last.tail.is_empty() {
            input
                .iter()
                .map(|x| {
                    py_to_data(&x).unwrap_or_else(|e| {
                        Data::text(format!("<a Python value that cannot leave Python: {e}>"))
                    })
                })
                .collect()
        } else {
            Vec::new()
        };
        return GroupRun {
            stats,
            last,
            last_inputs,
        };
    }
    GroupRun::single(items.len(), BatchOutcome::default(), started)
}

impl Instance for CPythonInstance {
    fn runtime(&self) -> Runtime {
        Runtime::CPython
    }

    fn initialize(&mut self, node_id: &str) -> Result<(), NodeError> {
        let id = node_id.to_string();
        self.call(move |py, d| {
            d.setattr(intern!(py, "node_id"), id)
                .and_then(|_| d.call_method0(intern!(py, "initialize")))
                .map(drop)
                .map_err(|e| describe_err(py, e))
        })?
    }

    fn run(&mut self, items: &[Data]) -> BatchOutcome {
        let items = items.to_vec();
        self.call(move |py, d| run_batch(py, d, &items))
            .unwrap_or_else(|e| BatchOutcome::from_items([ItemOutcome::Err(e)]))
    }

    fn group_key(&self) -> Option<usize> {
        // One interpreter per process: every instance of this host groups.
        Some(std::ptr::addr_of!(INTERP) as usize)
    }

    fn group_handle(&self) -> Option<GroupHandle> {
        Some(Arc::clone(&self.driver) as GroupHandle)
    }

    fn run_group(&mut self, others: &[GroupHandle], items: &[Data]) -> GroupRun {
        let started = Instant::now();
        let mut drivers = Vec::with_capacity(others.len() + 1);
        drivers.push(Arc::clone(&self.driver));
        drivers.extend(
            others
                .iter()
                .map_while(|h| Arc::clone(h).downcast::<Py<PyAny>>().ok()),
        );
        let owned = items.to_vec();
        self.call(move |py, _| run_group_in(py, &drivers, &owned))
            .unwrap_or_else(|e| {
                GroupRun::single(
                    items.len(),
                    BatchOutcome::from_items([ItemOutcome::Err(e)]),
                    started,
                )
            })
    }

    fn finish(&mut self) -> Result<Vec<Data>, NodeError> {
        self.call(|py, d| match d.call_method0(intern!(py, "flush")) {
            Ok(list) => match convert_list(&list) {
                ItemOutcome::Ok(v) => Ok(v),
                ItemOutcome::Err(e) => Err(e),
            },
            Err(e) => Err(describe_err(py, e)),
        })?
    }

    fn cleanup(&mut self) -> Result<(), NodeError> {
        self.call(|py, d| {
            d.call_method0(intern!(py, "cleanup"))
                .map(drop)
                .map_err(|e| describe_err(py, e))
        })?
    }
}

/// Compiles `source` in the embedded interpreter without running it: `Ok(None)` when
/// it compiles, `Ok(Some(message))` for a syntax error (message, line and column),
/// `Err` when the interpreter is unavailable here.
pub fn syntax_error(source: &str) -> Result<Option<String>, String> {
    let interp = interp().map_err(|e| e.to_string())?;
    let source = source.to_owned();
    interp
        .thread
        .call(move || {
            Python::attach(|py| {
                let compile = py
                    .import(intern!(py, "builtins"))
                    .and_then(|b| b.getattr(intern!(py, "compile")))
                    .map_err(|e| e.to_string())?;
                let Err(e) = compile.call1((source, "<source>", "exec")) else {
                    return Ok(None);
                };
                let exc = e.value(py);
                let attr = |name: &str| {
                    exc.getattr(name)
                        .ok()
                        .filter(|v| !v.is_none())
                        .map(|v| v.to_string())
                };
                let kind = exc
                    .get_type()
                    .name()
                    .map(|n| n.to_string())
                    .unwrap_or_else(|_| "SyntaxError".into());
                let message = attr("msg").unwrap_or_else(|| exc.to_string());
                Ok(Some(match (attr("lineno"), attr("offset")) {
                    (Some(line), Some(col)) => {
                        format!("{kind}: {message} (line {line}, column {col})")
                    }
                    (Some(line), None) => format!("{kind}: {message} (line {line})"),
                    _ => format!("{kind}: {message}"),
                }))
            })
        })
        .ok_or_else(|| "the interpreter thread panicked".to_string())?
}

#[cfg(all(test, not(Py_LIMITED_API)))]
mod tests {
    use super::python_home;
    use std::ffi::OsStr;

    fn prefix_with_stdlib(version: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let lib = dir.path().join(format!("lib/python{version}"));
        std::fs::create_dir_all(&lib).unwrap();
        std::fs::write(lib.join("os.py"), "").unwrap();
        dir
    }

    #[test]
    fn the_build_prefix_comes_first() {
        let build = prefix_with_stdlib("3.99");
        let prefix = build.path().to_str().unwrap();
        assert_eq!(
            python_home("3.99", None, prefix).unwrap().as_deref(),
            Some(build.path())
        );
    }

    #[test]
    fn a_pythonhome_holding_the_library_is_left_to_the_interpreter() {
        let home = prefix_with_stdlib("3.99");
        let exec = tempfile::tempdir().unwrap();
        let value = format!("{}:{}", home.path().display(), exec.path().display());
        assert_eq!(python_home("3.99", Some(OsStr::new(&value)), ""), Ok(None));
    }

    #[test]
    fn a_missing_library_names_the_places_searched_and_what_to_install() {
        let empty = tempfile::tempdir().unwrap();
        let e = python_home("3.99", None, empty.path().to_str().unwrap()).unwrap_err();
        assert_eq!(
            e,
            format!(
                "embedded CPython 3.99 needs its standard library (lib/python3.99/os.py): not \
                 found under {}, /usr, /usr/local; install Python 3.99 (Debian/Ubuntu: \
                 python3.99) or set PYTHONHOME to a prefix holding it",
                empty.path().display()
            )
        );
        // A PYTHONHOME without it is the only place looked at, as for `python3`.
        let build = prefix_with_stdlib("3.99");
        let e = python_home(
            "3.99",
            Some(empty.path().as_os_str()),
            build.path().to_str().unwrap(),
        )
        .unwrap_err();
        assert!(
            e.contains(&format!(
                "not found under PYTHONHOME ({}); install Python 3.99",
                empty.path().display()
            )),
            "{e}"
        );
    }
}
