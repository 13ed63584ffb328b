//! The embedded RustPython host (cargo feature `rustpython`).
//!
//! One RustPython interpreter per process, with RustPython's native modules and its
//! frozen pure-Python standard library (`json`, `re`, `dataclasses`, `collections`,
//! `logging`, `asyncio`…), so no CPython installation is needed. The VM is not
//! thread-safe: it lives on a dedicated thread (`rm-rustpython`) that runs every call,
//! as the CPython host does. Nodes run the same driver (`driver.py`) as the other
//! hosts.
//!
//! Values cross directly between [`Data`] and VM objects. Audio and tensors (there is
//! no numpy) become the tagged dicts `{"$audio": {"sample_rate", "channels",
//! "samples"}}` and `{"$tensor": {"shape", "dtype", "data"}}` (little-endian bytes), the
//! forms the process host uses without numpy; a node may return them too.
//!
//! The interpreter ignores `PYTHON*` environment variables and imports no `site`;
//! `python_path` entries are put in front of `sys.path`, so modules from a directory
//! are importable.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use remotemedia_core::{AudioBuffer, DType, Data, DataMap, ErrorKind, NodeError, Tensor};
use rustpython_vm::builtins::{
    PyBaseExceptionRef, PyByteArray, PyBytes, PyDict, PyFloat, PyInt, PyList, PyStr, PyTuple,
};
use rustpython_vm::{
    AsObject, Interpreter, PyObject, PyObjectRef, PyResult, Settings, VirtualMachine,
};

use crate::host::{
    emit_log, output_error, python_error, python_log_level, BatchOutcome, Instance, ItemOutcome,
    LoadError,
};
use crate::spec::{NodeSpec, Origin, Runtime};
use crate::thread::InterpThread;

/// Stack of the interpreter thread: the VM recurses on the native stack.
const STACK_SIZE: usize = 256 << 20;

/// The error for a list, tuple or dict inside `depth` others when that is too deep
/// (also stops self-containing values).
fn check_depth(depth: usize) -> Result<(), ConvertError> {
    remotemedia_core::data::check_container_depth(depth)
        .map_err(|m| ConvertError::new(format!("{m} (or contains itself)")))
}

/// Longest value preview in conversion errors, in characters.
const PREVIEW_CHARS: usize = 60;

struct Host {
    thread: InterpThread,
}

/// The interpreter and its loaded nodes, owned by the interpreter thread.
struct State {
    interp: Interpreter,
    table: Table,
}

/// The driver module and the loaded nodes' driver objects.
struct Table {
    driver: PyObjectRef,
    nodes: HashMap<u64, PyObjectRef>,
    next: u64,
}

thread_local! {
    static STATE: RefCell<Option<State>> = const { RefCell::new(None) };
}

static HOST: OnceLock<Result<Host, String>> = OnceLock::new();

fn unavailable(reason: impl Into<String>) -> LoadError {
    LoadError::Unavailable {
        runtime: Runtime::RustPython,
        reason: reason.into(),
    }
}

fn host() -> Result<&'static Host, LoadError> {
    HOST.get_or_init(start)
        .as_ref()
        .map_err(|r| unavailable(r.clone()))
}

/// Whether the embedded VM starts (starting it if needed).
pub fn available() -> Result<(), String> {
    host().map(|_| ()).map_err(|e| e.to_string())
}

fn start() -> Result<Host, String> {
    let thread = InterpThread::spawn("rm-rustpython", Some(STACK_SIZE), || {
        let state = new_state()?;
        STATE.with(|s| *s.borrow_mut() = Some(state));
        Ok(())
    })?;
    Ok(Host { thread })
}

/// Runs `f` with the VM and the node table; only on the interpreter thread (`None`
/// elsewhere or when the VM did not start).
fn with_vm<R>(f: impl FnOnce(&VirtualMachine, &mut Table) -> R) -> Option<R> {
    STATE.with(|s| {
        let mut guard = s.borrow_mut();
        let State { interp, table } = guard.as_mut()?;
        Some(interp.enter(|vm| f(vm, table)))
    })
}

fn settings() -> Settings {
    let mut s = Settings::default();
    s.install_signal_handlers = false;
    s.import_site = false;
    s.user_site_directory = false;
    s.ignore_environment = true;
    s.write_bytecode = false;
    s.buffered_stdio = false;
    // As in embedded CPython: `sys.argv == ['']`.
    s.argv = vec![String::new()];
    s
}

fn new_state() -> Result<State, String> {
    let builder = Interpreter::builder(settings());
    let defs = rustpython_stdlib::stdlib_module_defs(&builder.ctx);
    let interp = builder
        .add_native_modules(&defs)
        .add_frozen_modules(rustpython_pylib::FROZEN_STDLIB)
        .build();
    let driver = interp.enter(|vm| setup_driver(vm).map_err(|e| exception_text(vm, &e)))?;
    Ok(State {
        interp,
        table: Table {
            driver,
            nodes: HashMap::new(),
            next: 1,
        },
    })
}

/// `Type: message` of an exception raised outside node code.
fn exception_text(vm: &VirtualMachine, e: &PyBaseExceptionRef) -> String {
    let mut text = String::new();
    let _ = vm.write_exception(&mut text, e);
    format!("cannot set up the node driver: {}", text.trim_end())
}

/// Loads `AudioBuffer` as the module `_remotemedia_audio` and the driver as the module
/// `_remotemedia_driver`. RustPython counts about two
/// against the recursion limit per Python call (CPython: one), so the limit is 2000:
/// a node recurses about as deep as in CPython, and a runaway recursion raises
/// `RecursionError` well before the thread's stack runs out, also in debug builds.
const BOOTSTRAP: &str = "\
import sys, types
sys.setrecursionlimit(2000)
_a = types.ModuleType('_remotemedia_audio')
sys.modules['_remotemedia_audio'] = _a
exec(compile(_AUDIO, '<remotemedia audio>', 'exec'), _a.__dict__)
_m = types.ModuleType('_remotemedia_driver')
sys.modules['_remotemedia_driver'] = _m
exec(compile(_SOURCE, '<remotemedia driver>', 'exec'), _m.__dict__)
";

fn setup_driver(vm: &VirtualMachine) -> PyResult<PyObjectRef> {
    let scope = vm.new_scope_with_builtins();
    scope
        .globals
        .set_item("_SOURCE", vm.ctx.new_str(crate::DRIVER_SOURCE).into(), vm)?;
    scope.globals.set_item(
        "_AUDIO",
        vm.ctx.new_str(crate::AUDIO_BUFFER_SOURCE).into(),
        vm,
    )?;
    vm.run_string(scope, BOOTSTRAP, "<remotemedia bootstrap>".to_string())?;
    let modules = vm.sys_module.get_attr("modules", vm)?;
    let driver = modules.get_item("_remotemedia_driver", vm)?;
    let log = vm.new_function(
        "log_sink",
        |level: i64, logger: String, node: String, message: String| {
            emit_log(level, &logger, &node, &message);
        },
    );
    let err_write = vm.new_function("err_write", |text: String| {
        use std::io::Write;
        let mut e = std::io::stderr().lock();
        let _ = e.write_all(text.as_bytes());
        let _ = e.flush();
    });
    vm.call_method(
        &driver,
        "setup",
        (
            PyObjectRef::from(log),
            PyObjectRef::from(err_write),
            vm.ctx.new_int(python_log_level()),
        ),
    )?;
    Ok(driver)
}

// ------------------------------------------------------------------------- values

/// Converts an item to a VM object.
pub fn data_to_object(vm: &VirtualMachine, d: &Data) -> PyObjectRef {
    match d {
        Data::Null => vm.ctx.none(),
        Data::Bool(b) => vm.ctx.new_bool(*b).into(),
        Data::Int(i) => vm.ctx.new_int(*i).into(),
        Data::Float(f) => vm.ctx.new_float(*f).into(),
        Data::Text(s) => vm.ctx.new_str(&**s).into(),
        Data::Bytes(b) => vm.ctx.new_bytes(b.to_vec()).into(),
        Data::List(items) => vm
            .ctx
            .new_list(items.iter().map(|x| data_to_object(vm, x)).collect())
            .into(),
        Data::Tuple(items) => vm
            .ctx
            .new_tuple(items.iter().map(|x| data_to_object(vm, x)).collect())
            .into(),
        Data::Map(map) => {
            let dict = vm.ctx.new_dict();
            for (k, v) in map.iter() {
                let _ = dict.set_item(k.as_str(), data_to_object(vm, v), vm);
            }
            dict.into()
        }
        Data::Audio(a) => audio_to_object(vm, a).unwrap_or_else(|_| {
            // Only when `_remotemedia_audio` failed to load, which stops the host first.
            tagged(
                vm,
                "$audio",
                [
                    ("sample_rate", vm.ctx.new_int(a.sample_rate).into()),
                    ("channels", vm.ctx.new_int(a.channels).into()),
                    ("pts_us", vm.ctx.new_int(a.pts_us).into()),
                    (
                        "samples",
                        vm.ctx.new_bytes(a.samples.to_le_bytes().to_vec()).into(),
                    ),
                ],
            )
        }),
        Data::Tensor(t) => {
            let shape = t.shape.iter().map(|&n| vm.ctx.new_int(n).into()).collect();
            tagged(
                vm,
                "$tensor",
                [
                    ("shape", vm.ctx.new_list(shape).into()),
                    ("dtype", vm.ctx.new_str(t.dtype.name()).into()),
                    ("data", vm.ctx.new_bytes(t.data.to_vec()).into()),
                ],
            )
        }
    }
}

/// The `_remotemedia_audio` module the bootstrap loaded.
fn audio_module(vm: &VirtualMachine) -> PyResult<PyObjectRef> {
    vm.sys_module
        .get_attr("modules", vm)?
        .get_item(crate::AUDIO_MODULE, vm)
}

/// Audio as an `AudioBuffer` (its samples a read-only `memoryview`: no numpy here).
fn audio_to_object(vm: &VirtualMachine, a: &AudioBuffer) -> PyResult<PyObjectRef> {
    let module = audio_module(vm)?;
    let raw: PyObjectRef = vm.ctx.new_bytes(a.samples.to_le_bytes().to_vec()).into();
    vm.call_method(
        &module,
        "_from_runtime",
        (
            raw,
            vm.ctx.new_int(a.sample_rate),
            vm.ctx.new_int(a.channels),
            vm.ctx.new_int(a.pts_us),
        ),
    )
}

/// An `AudioBuffer` → audio; `None` for any other object.
fn audio_from_object(vm: &VirtualMachine, obj: &PyObject) -> Result<Option<Data>, ConvertError> {
    let Ok(module) = audio_module(vm) else {
        return Ok(None);
    };
    let Ok(class) = module.get_attr("AudioBuffer", vm) else {
        return Ok(None);
    };
    if !obj.is_instance(&class, vm).unwrap_or(false) {
        return Ok(None);
    }
    let failed = |e: PyBaseExceptionRef| {
        let message = e
            .as_object()
            .str(vm)
            .ok()
            .and_then(|s| s.to_str().map(str::to_string))
            .unwrap_or_default();
        ConvertError::new(message)
    };
    let parts = vm
        .call_method(&module, "_to_runtime", (obj.to_owned(),))
        .map_err(failed)?;
    let parts = parts
        .downcast_ref::<PyTuple>()
        .filter(|t| t.len() == 4)
        .ok_or_else(|| ConvertError::new("AudioBuffer: _to_runtime did not give 4 values"))?;
    let int = |i: usize| {
        parts.as_slice()[i]
            .downcast_ref::<PyInt>()
            .and_then(|v| i64::try_from(v.as_bigint()).ok())
            .ok_or_else(|| ConvertError::new("AudioBuffer: a field is not an int"))
    };
    let sample_rate = u32::try_from(int(0)?)
        .map_err(|_| ConvertError::new("AudioBuffer: sample_rate is out of range"))?;
    let channels = u16::try_from(int(1)?)
        .map_err(|_| ConvertError::new("AudioBuffer: channels is out of range"))?;
    let pts_us = int(2)?;
    let bytes = vm
        .call_method(&parts.as_slice()[3], "tobytes", ())
        .map_err(failed)?;
    let bytes = bytes
        .downcast_ref::<PyBytes>()
        .ok_or_else(|| ConvertError::new("AudioBuffer: samples did not give bytes"))?;
    let samples =
        remotemedia_core::Samples::from_le_bytes(Bytes::copy_from_slice(bytes.as_bytes()));
    Ok(Some(Data::Audio(Arc::new(
        AudioBuffer::new(samples, sample_rate, channels).with_pts(pts_us),
    ))))
}

fn tagged<const N: usize>(
    vm: &VirtualMachine,
    tag: &str,
    fields: [(&str, PyObjectRef); N],
) -> PyObjectRef {
    let inner = vm.ctx.new_dict();
    for (k, v) in fields {
        let _ = inner.set_item(k, v, vm);
    }
    let outer = vm.ctx.new_dict();
    let _ = outer.set_item(tag, inner.into(), vm);
    outer.into()
}

/// Why a VM object has no pipeline equivalent.
#[derive(Debug)]
struct ConvertError {
    message: String,
    path: String,
}

impl ConvertError {
    fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            path: String::new(),
        }
    }

    fn within(mut self, step: String) -> Self {
        self.path = step + &self.path;
        self
    }
}

impl std::fmt::Display for ConvertError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)?;
        if !self.path.is_empty() {
            write!(f, " (at ${})", self.path)?;
        }
        Ok(())
    }
}

fn preview(vm: &VirtualMachine, obj: &PyObject) -> String {
    let text = obj
        .repr(vm)
        .ok()
        .and_then(|r| r.to_str().map(str::to_string))
        .unwrap_or_else(|| "<unrepresentable>".into());
    if text.chars().count() <= PREVIEW_CHARS {
        text
    } else {
        let cut: String = text.chars().take(PREVIEW_CHARS).collect();
        format!("{cut}…")
    }
}

fn type_name(vm: &VirtualMachine, obj: &PyObject) -> String {
    let class = obj.class();
    let name = class.name().to_string();
    let module = class
        .as_object()
        .get_attr("__module__", vm)
        .ok()
        .and_then(|m| {
            m.downcast_ref::<PyStr>()
                .and_then(|s| s.to_str().map(str::to_string))
        });
    match module {
        Some(m) if m != "builtins" => format!("{m}.{name}"),
        _ => name,
    }
}

/// Converts a VM object to an item.
fn object_to_data(vm: &VirtualMachine, obj: &PyObject, depth: usize) -> Result<Data, ConvertError> {
    // Exact ints first: the most common value, and a cheap check.
    if obj.class().is(vm.ctx.types.int_type) {
        if let Some(v) = obj
            .downcast_ref::<PyInt>()
            .and_then(|i| i64::try_from(i.as_bigint()).ok())
        {
            return Ok(Data::Int(v));
        }
    }
    if vm.is_none(obj) {
        return Ok(Data::Null);
    }
    if obj.class().is(vm.ctx.types.bool_type) {
        return Ok(Data::Bool(obj.is(&vm.ctx.true_value)));
    }
    if let Some(i) = obj.downcast_ref::<PyInt>() {
        return i64::try_from(i.as_bigint()).map(Data::Int).map_err(|_| {
            ConvertError::new(format!(
                "integer {} does not fit a signed 64-bit int",
                preview(vm, obj)
            ))
        });
    }
    if let Some(f) = obj.downcast_ref::<PyFloat>() {
        return Ok(Data::Float(f.to_f64()));
    }
    if let Some(s) = obj.downcast_ref::<PyStr>() {
        return s.to_str().map(Data::text).ok_or_else(|| {
            ConvertError::new(format!(
                "str {} is not valid UTF-8 (it holds a lone surrogate)",
                preview(vm, obj)
            ))
        });
    }
    if let Some(b) = obj.downcast_ref::<PyBytes>() {
        return Ok(Data::Bytes(Bytes::copy_from_slice(b.as_bytes())));
    }
    if let Some(b) = obj.downcast_ref::<PyByteArray>() {
        return Ok(Data::Bytes(Bytes::copy_from_slice(&b.borrow_buf())));
    }
    if let Some(l) = obj.downcast_ref::<PyList>() {
        let items: Vec<PyObjectRef> = l.borrow_vec().to_vec();
        return seq_to_data(vm, &items, depth);
    }
    if let Some(t) = obj.downcast_ref::<PyTuple>() {
        return seq_to_data(vm, t.as_slice(), depth).map(|l| match l {
            Data::List(items) => Data::Tuple(items),
            other => other,
        });
    }
    if let Some(d) = obj.downcast_ref::<PyDict>() {
        return dict_to_data(vm, d.items_vec(), depth);
    }
    if let Some(audio) = audio_from_object(vm, obj)? {
        return Ok(audio);
    }
    Err(ConvertError::new(format!(
        "cannot convert {} of type {} to pipeline data; supported: None, bool, int, float, \
         str, bytes, list, tuple, dict with str keys",
        preview(vm, obj),
        type_name(vm, obj)
    )))
}

fn seq_to_data(
    vm: &VirtualMachine,
    items: &[PyObjectRef],
    depth: usize,
) -> Result<Data, ConvertError> {
    check_depth(depth)?;
    let mut out = Vec::with_capacity(items.len());
    for (i, x) in items.iter().enumerate() {
        out.push(object_to_data(vm, x, depth + 1).map_err(|e| e.within(format!("[{i}]")))?);
    }
    Ok(Data::list(out))
}

fn dict_to_data(
    vm: &VirtualMachine,
    items: Vec<(PyObjectRef, PyObjectRef)>,
    depth: usize,
) -> Result<Data, ConvertError> {
    check_depth(depth)?;
    let mut map = DataMap::with_capacity(items.len());
    for (k, v) in items {
        let key = match k.downcast_ref::<PyStr>() {
            Some(s) => s
                .to_str()
                .ok_or_else(|| ConvertError::new("dict key is not valid UTF-8"))?
                .to_string(),
            None => {
                return Err(ConvertError::new(format!(
                    "dict key {} of type {} is not a str; pipeline maps need str keys",
                    preview(vm, &k),
                    type_name(vm, &k)
                )))
            }
        };
        let value =
            object_to_data(vm, &v, depth + 1).map_err(|e| e.within(format!("[{key:?}]")))?;
        map.insert(key, value);
    }
    if map.len() == 1 {
        if let Some((tag, inner)) = map.first() {
            if tag == "$audio" || tag == "$tensor" {
                return from_tagged(tag, inner);
            }
        }
    }
    Ok(Data::map(map))
}

/// Decodes the `$audio` / `$tensor` tagged forms.
fn from_tagged(tag: &str, inner: &Data) -> Result<Data, ConvertError> {
    let Data::Map(m) = inner else {
        return Err(ConvertError::new(format!(
            "a dict whose only key is {tag:?} is the {} form and needs a dict value",
            &tag[1..]
        )));
    };
    let field = |k: &str| {
        m.get(k)
            .ok_or_else(|| ConvertError::new(format!("{tag} needs a field `{k}`")))
    };
    let int = |k: &str| match field(k)? {
        Data::Int(i) => Ok(*i),
        _ => Err(ConvertError::new(format!("{tag}.{k} must be an int"))),
    };
    let raw = |k: &str| match field(k)? {
        Data::Bytes(b) => Ok(b.clone()),
        _ => Err(ConvertError::new(format!("{tag}.{k} must be bytes"))),
    };
    if tag == "$audio" {
        let sample_rate = u32::try_from(int("sample_rate")?)
            .map_err(|_| ConvertError::new("$audio.sample_rate is out of range"))?;
        let channels = u16::try_from(int("channels")?)
            .ok()
            .filter(|&c| c > 0)
            .ok_or_else(|| ConvertError::new("$audio.channels must be 1..65535"))?;
        let bytes = raw("samples")?;
        if !bytes.len().is_multiple_of(4 * channels as usize) {
            return Err(ConvertError::new(
                "$audio.samples do not split into f32 frames of the channels",
            ));
        }
        let samples: Vec<f32> = bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let pts_us = match m.get("pts_us") {
            None | Some(Data::Null) => 0,
            Some(Data::Int(p)) => *p,
            Some(_) => return Err(ConvertError::new("$audio.pts_us must be an int")),
        };
        return Ok(Data::Audio(Arc::new(
            AudioBuffer::new(samples, sample_rate, channels).with_pts(pts_us),
        )));
    }
    let shape = match field("shape")? {
        Data::List(dims) => dims
            .iter()
            .map(|d| match d {
                Data::Int(n) if *n >= 0 => Ok(*n as usize),
                _ => Err(ConvertError::new(
                    "$tensor.shape must be a list of non-negative ints",
                )),
            })
            .collect::<Result<Vec<_>, _>>()?,
        _ => return Err(ConvertError::new("$tensor.shape must be a list")),
    };
    let name = match field("dtype")? {
        Data::Text(t) => t.clone(),
        _ => return Err(ConvertError::new("$tensor.dtype must be a str")),
    };
    let dtype = DType::from_name(&name)
        .ok_or_else(|| ConvertError::new(format!("unknown dtype `{name}`")))?;
    let t = Tensor::new(shape, dtype, raw("data")?)
        .map_err(|e| ConvertError::new(format!("invalid $tensor: {e}")))?;
    Ok(Data::Tensor(Arc::new(t)))
}

// ------------------------------------------------------------------------- nodes

/// `(kind, message, traceback)` of an exception, through the driver.
fn describe(vm: &VirtualMachine, driver: &PyObject, exc: PyObjectRef) -> NodeError {
    let fallback = |exc: &PyObject| {
        NodeError::new(
            ErrorKind::Python,
            exc.str(vm)
                .ok()
                .and_then(|s| s.to_str().map(str::to_string))
                .unwrap_or_else(|| "an exception that cannot be shown".into()),
        )
    };
    let described = vm
        .call_method(driver, "describe", (exc.clone(),))
        .ok()
        .and_then(|t| {
            let t = t.downcast_ref::<PyTuple>()?;
            let s = |i: usize| {
                t.as_slice()
                    .get(i)
                    .and_then(|x| x.downcast_ref::<PyStr>())
                    .and_then(|x| x.to_str().map(str::to_string))
            };
            Some((s(0)?, s(1)?, s(2)?))
        });
    match described {
        Some((kind, message, tb)) => python_error(&kind, message, tb),
        None => fallback(&exc),
    }
}

/// Loads a node in the embedded VM.
pub fn load(spec: &NodeSpec) -> Result<Box<dyn Instance>, LoadError> {
    let host = host()?;
    let spec = spec.clone();
    let id = host
        .thread
        .call(move || with_vm(|vm, state| load_in(vm, state, &spec)))
        .flatten()
        .ok_or_else(|| unavailable("the interpreter thread failed"))??;
    Ok(Box::new(RustPythonInstance { id }))
}

fn load_in(vm: &VirtualMachine, state: &mut Table, spec: &NodeSpec) -> Result<u64, LoadError> {
    let node_error = |message: String, traceback: Option<String>, compat: bool| LoadError::Node {
        runtime: Runtime::RustPython,
        message,
        traceback,
        compat,
    };
    let kwargs = data_to_object(vm, &spec.init);
    let text = |s: &str| PyObjectRef::from(vm.ctx.new_str(s));
    let (module, source) = match &spec.origin {
        Origin::Module(m) => (text(m), vm.ctx.none()),
        Origin::Source(s) => (vm.ctx.none(), text(s)),
    };
    let path = vm
        .ctx
        .new_list(spec.python_path.iter().map(|p| text(p)).collect());
    let args = vec![
        text(&spec.class),
        module,
        source,
        text(&spec.class),
        kwargs,
        path.into(),
    ];
    let driver = state.driver.clone();
    let load = driver
        .get_attr("load", vm)
        .map_err(|e| node_error(exception_text(vm, &e), None, false))?;
    match load.call(args, vm) {
        Ok(obj) => {
            let id = state.next;
            state.next += 1;
            state.nodes.insert(id, obj);
            Ok(id)
        }
        Err(e) => {
            let exc: PyObjectRef = e.into();
            let compat = vm
                .call_method(&driver, "is_compat_error", (exc.clone(),))
                .map(|b| b.is(&vm.ctx.true_value))
                .unwrap_or(false);
            let d = describe(vm, &driver, exc);
            Err(node_error(d.message, d.traceback, compat))
        }
    }
}

/// A node instance in the embedded VM (a handle to its driver object there).
struct RustPythonInstance {
    id: u64,
}

impl RustPythonInstance {
    /// Runs `f` on the interpreter thread with the VM, the shared driver and this
    /// node's driver object.
    fn call<R: Send + 'static>(
        &self,
        f: impl FnOnce(&VirtualMachine, &PyObject, &PyObject) -> R + Send + 'static,
    ) -> Result<R, NodeError> {
        let host = host().map_err(|e| e.to_node_error())?;
        let id = self.id;
        host.thread
            .call(move || {
                with_vm(|vm, state| {
                    let node = state.nodes.get(&id)?.clone();
                    let driver = state.driver.clone();
                    Some(f(vm, &driver, &node))
                })
                .flatten()
            })
            .flatten()
            .ok_or_else(|| NodeError::new(ErrorKind::Panic, "the RustPython call panicked"))
    }
}

/// Whether a value converts directly (no generator or awaitable to drive).
fn is_plain(vm: &VirtualMachine, v: &PyObject) -> bool {
    let t = v.class();
    let types = &vm.ctx.types;
    t.is(types.int_type)
        || t.is(types.float_type)
        || t.is(types.str_type)
        || t.is(types.bool_type)
        || t.is(types.list_type)
        || t.is(types.dict_type)
        || t.is(types.tuple_type)
        || t.is(types.bytes_type)
}

fn convert_list(vm: &VirtualMachine, list: &PyObject) -> ItemOutcome {
    let Some(list) = list.downcast_ref::<PyList>() else {
        return ItemOutcome::Err(output_error("the driver returned no list"));
    };
    let items: Vec<PyObjectRef> = list.borrow_vec().to_vec();
    let mut outs = Vec::with_capacity(items.len());
    for x in &items {
        match object_to_data(vm, x, 0) {
            Ok(d) => outs.push(d),
            Err(e) => return ItemOutcome::Err(output_error(e)),
        }
    }
    ItemOutcome::Ok(outs)
}

/// One `process` result: converted directly when it is a plain value, else expanded
/// by the driver (generators, awaitables).
fn push_result(
    vm: &VirtualMachine,
    driver: &PyObject,
    node: &PyObject,
    r: &PyObjectRef,
    outcome: &mut BatchOutcome,
) {
    if vm.is_none(r) {
        outcome.push_none();
    } else if is_plain(vm, r) {
        match object_to_data(vm, r, 0) {
            Ok(d) => outcome.push_one(d),
            Err(e) => outcome.push(ItemOutcome::Err(output_error(e))),
        }
    } else {
        match vm.call_method(node, "expand", (r.clone(),)) {
            Ok(list) => outcome.push(convert_list(vm, &list)),
            Err(e) => outcome.push(ItemOutcome::Err(describe(vm, driver, e.into()))),
        }
    }
}

/// A plain `process` method (not a generator or coroutine function): the item loop
/// runs here, in Rust, inside the driver's print attribution (`_attribute`/`_restore`), instead
/// of as interpreted Python, which RustPython runs much slower.
fn run_plain(
    vm: &VirtualMachine,
    driver: &PyObject,
    node: &PyObject,
    items: &[Data],
    outcome: &mut BatchOutcome,
) -> PyResult<()> {
    let process = node.get_attr("process", vm)?;
    let node_id = node.get_attr("node_id", vm)?;
    let saved = vm.call_method(driver, "_attribute", (node_id,))?;
    for d in items {
        match process.call((data_to_object(vm, d),), vm) {
            Ok(r) => push_result(vm, driver, node, &r, outcome),
            Err(e) => {
                outcome.push(ItemOutcome::Err(describe(vm, driver, e.into())));
                break;
            }
        }
    }
    vm.call_method(driver, "_restore", (saved,))?;
    Ok(())
}

fn run_batch(
    vm: &VirtualMachine,
    driver: &PyObject,
    node: &PyObject,
    items: &[Data],
) -> BatchOutcome {
    let mut outcome = BatchOutcome {
        outputs: Vec::with_capacity(items.len()),
        ..Default::default()
    };
    let plain = node
        .get_attr("kind", vm)
        .ok()
        .and_then(|k| k.downcast_ref::<PyInt>().map(|i| i.as_bigint().clone()))
        .is_some_and(|k| k == 0u32.into());
    if plain {
        if let Err(e) = run_plain(vm, driver, node, items, &mut outcome) {
            outcome.push(ItemOutcome::Err(describe(vm, driver, e.into())));
        }
        return outcome;
    }
    let values: Vec<PyObjectRef> = items.iter().map(|d| data_to_object(vm, d)).collect();
    let reply = vm.call_method(node, "batch", (vm.ctx.new_list(values),));
    let reply = match reply {
        Ok(r) => r,
        Err(e) => {
            outcome.push(ItemOutcome::Err(describe(vm, driver, e.into())));
            return outcome;
        }
    };
    let parts = reply
        .downcast_ref::<PyTuple>()
        .map(|t| t.as_slice().to_vec())
        .unwrap_or_default();
    let [results, nested, exc] = parts.as_slice() else {
        outcome.push(ItemOutcome::Err(output_error(
            "the driver returned no (results, nested, exception) triple",
        )));
        return outcome;
    };
    let nested = nested.is(&vm.ctx.true_value);
    let results: Vec<PyObjectRef> = results
        .downcast_ref::<PyList>()
        .map(|l| l.borrow_vec().to_vec())
        .unwrap_or_default();
    for r in &results {
        if nested {
            outcome.push(convert_list(vm, r));
        } else {
            push_result(vm, driver, node, r, &mut outcome);
        }
    }
    if !vm.is_none(exc) {
        outcome.push(ItemOutcome::Err(describe(vm, driver, exc.clone())));
    }
    outcome
}

impl Instance for RustPythonInstance {
    fn runtime(&self) -> Runtime {
        Runtime::RustPython
    }

    fn initialize(&mut self, node_id: &str) -> Result<(), NodeError> {
        let id = node_id.to_string();
        self.call(move |vm, driver, node| {
            node.set_attr("node_id", vm.ctx.new_str(id), vm)
                .and_then(|()| vm.call_method(node, "initialize", ()))
                .map(drop)
                .map_err(|e| describe(vm, driver, e.into()))
        })?
    }

    fn run(&mut self, items: &[Data]) -> BatchOutcome {
        let items = items.to_vec();
        self.call(move |vm, driver, node| run_batch(vm, driver, node, &items))
            .unwrap_or_else(|e| BatchOutcome::from_items([ItemOutcome::Err(e)]))
    }

    fn finish(&mut self) -> Result<Vec<Data>, NodeError> {
        self.call(|vm, driver, node| match vm.call_method(node, "flush", ()) {
            Ok(list) => match convert_list(vm, &list) {
                ItemOutcome::Ok(v) => Ok(v),
                ItemOutcome::Err(e) => Err(e),
            },
            Err(e) => Err(describe(vm, driver, e.into())),
        })?
    }

    fn cleanup(&mut self) -> Result<(), NodeError> {
        self.call(|vm, driver, node| {
            vm.call_method(node, "cleanup", ())
                .map(drop)
                .map_err(|e| describe(vm, driver, e.into()))
        })?
    }
}

impl Drop for RustPythonInstance {
    fn drop(&mut self) {
        if let Ok(host) = host() {
            let id = self.id;
            host.thread.call(move || {
                // The object is released inside the VM, on its thread.
                with_vm(|_, state| drop(state.nodes.remove(&id)))
            });
        }
    }
}

/// Calls `method` of a fresh instance of `class` (defined by `source`, constructed
/// without arguments) once per item of `args`, directly in the embedded VM: the
/// arguments are converted before the clock starts and the results are released
/// unconverted, so no driver and no conversion is timed. The baseline the host's overhead
/// is measured against; returns the time the calls took.
pub fn direct_call_loop(
    source: &str,
    class: &str,
    method: &str,
    args: &[Data],
) -> Result<std::time::Duration, String> {
    let host = host().map_err(|e| e.to_string())?;
    let (source, class, method, args) = (
        source.to_string(),
        class.to_string(),
        method.to_string(),
        args.to_vec(),
    );
    host.thread
        .call(move || {
            with_vm(|vm, _| {
                let fail = |e: PyBaseExceptionRef| {
                    let mut text = String::new();
                    let _ = vm.write_exception(&mut text, &e);
                    text
                };
                let scope = vm.new_scope_with_builtins();
                vm.run_string(scope.clone(), &source, "<direct>".into())
                    .map_err(fail)?;
                let cls = scope
                    .globals
                    .get_item(&*vm.ctx.new_str(class), vm)
                    .map_err(fail)?;
                let obj = cls.call((), vm).map_err(fail)?;
                let name = vm.ctx.new_str(method);
                let bound = obj.get_attr(&*name, vm).map_err(fail)?;
                let args: Vec<PyObjectRef> = args.iter().map(|d| data_to_object(vm, d)).collect();
                let start = std::time::Instant::now();
                for arg in args {
                    // Each result is released as it comes, as a Python loop (and the
                    // host, once it has converted it) does.
                    drop(bound.call((arg,), vm).map_err(fail)?);
                }
                Ok(start.elapsed())
            })
            .unwrap_or_else(|| Err("the RustPython VM is not running".into()))
        })
        .unwrap_or_else(|| Err("the RustPython call panicked".into()))
}
