//! Conversion between Python values and pipeline [`Data`].
//!
//! It only needs an attached interpreter, whoever started it: the embedded-CPython host
//! uses it for node calls, and the SDK's extension module (`remotemedia-py`) for what a
//! Python program hands the runtime and gets back.
//!
//! | Python | [`Data`] |
//! |---|---|
//! | `None`, `bool`, `int` (must fit `i64`), `float`, `str`, `bytes` | `Null`, `Bool`, `Int`, `Float`, `Text`, `Bytes` |
//! | `bytearray`, `memoryview` | `Bytes` (copied) |
//! | `list`, `tuple` (or a subclass, such as a named tuple) | `List`, `Tuple` (a tuple comes back as a plain tuple) |
//! | `dict` with `str` keys | `Map`, in insertion order |
//! | [`remotemedia.AudioBuffer`](audio_class) | `Audio`, **no copy** for C-contiguous little-endian float32 samples |
//! | `numpy.ndarray` of a supported dtype | `Tensor`, shape and dtype kept, **no copy** for C-contiguous little-endian arrays |
//! | `(1-D float32 ndarray, int sample_rate[, int pts_us])` | `Audio` (mono; a 2-D array in a pair is an error: its layout is ambiguous) |
//! | numpy scalars (`numpy.float32(1.5)`, …) | their Python value (`.item()`) |
//! | `{"$tensor": {"shape", "dtype", "data": bytes}}`, `{"$audio": {"sample_rate", "channels", "samples": bytes, "pts_us"?}}` | `Tensor`, `Audio` (the JSON forms) |
//!
//! In the other direction `Tensor` becomes a read-only numpy array that shares the
//! pipeline's memory (without numpy: the `$tensor` dict form), and `Audio` always
//! becomes an `AudioBuffer` whose `samples` share the pipeline's memory read-only: a
//! numpy array of shape `(frames,)` (mono) or `(frames, channels)`, or without numpy a
//! flat `memoryview` of float32.
//!
//! A numpy array handed to the pipeline without a copy must not be modified while the
//! pipeline runs.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use pyo3::exceptions::{PyOverflowError, PyTypeError, PyValueError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{
    PyBool, PyByteArray, PyBytes, PyDict, PyFloat, PyInt, PyList, PyMemoryView, PyModule, PyString,
    PyTuple,
};

use crate::buffer::{data_buffer, utf8, HeldBuffer};
use remotemedia_core::{AudioBuffer, DType, Data, DataMap, Samples, Tensor};

/// Deepest nesting of lists and dicts accepted from Python (also stops cycles): the
/// runtime's one limit.
pub use remotemedia_core::MAX_DEPTH;

/// The error for a list, tuple or dict inside `depth` others when that is too deep.
fn check_depth(depth: usize) -> Result<(), ConvertError> {
    remotemedia_core::data::check_container_depth(depth)
        .map_err(|m| ConvertError::value_error(format!("{m} (or contains itself)")))
}

/// Longest rendering of an offending value in an error message.
const VALUE_PREVIEW_CHARS: usize = 60;

/// Which Python exception a [`ConvertError`] maps to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConvertErrorKind {
    /// The value's type has no pipeline equivalent (`TypeError`).
    Type,
    /// An integer does not fit a signed 64-bit int (`OverflowError`).
    Overflow,
    /// The type is right but the value is not (`ValueError`).
    Value,
}

/// A Python value that cannot become pipeline data (or the reverse).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConvertError {
    /// Category, deciding the Python exception type.
    pub kind: ConvertErrorKind,
    /// Where inside the value: `$`, `$[2]`, `$["key"][0]`.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl ConvertError {
    fn new(kind: ConvertErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            path: String::new(),
            message: message.into(),
        }
    }

    fn type_error(message: impl Into<String>) -> Self {
        Self::new(ConvertErrorKind::Type, message)
    }

    fn value_error(message: impl Into<String>) -> Self {
        Self::new(ConvertErrorKind::Value, message)
    }

    fn from_pyerr(e: PyErr) -> Self {
        Self::value_error(e.to_string())
    }

    /// Adds a path segment in front (used while unwinding out of nested values).
    fn within(mut self, segment: impl fmt::Display) -> Self {
        self.path = format!("{segment}{}", self.path);
        self
    }

    /// The matching Python exception (`TypeError`, `OverflowError` or `ValueError`).
    pub fn to_pyerr(&self) -> PyErr {
        let msg = self.to_string();
        match self.kind {
            ConvertErrorKind::Type => PyTypeError::new_err(msg),
            ConvertErrorKind::Overflow => PyOverflowError::new_err(msg),
            ConvertErrorKind::Value => PyValueError::new_err(msg),
        }
    }
}

impl fmt::Display for ConvertError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{} (at ${})", self.message, self.path)
        }
    }
}

impl std::error::Error for ConvertError {}

impl From<ConvertError> for PyErr {
    fn from(e: ConvertError) -> PyErr {
        e.to_pyerr()
    }
}

// ---------------------------------------------------------------------------------------
// numpy discovery
// ---------------------------------------------------------------------------------------

/// numpy, imported on first need; `None` when it is not installed.
static NUMPY: PyOnceLock<Option<Py<PyModule>>> = PyOnceLock::new();

/// numpy if it can be imported (the import is attempted once per process).
pub fn numpy(py: Python<'_>) -> Option<&Bound<'_, PyModule>> {
    NUMPY
        .get_or_init(py, || py.import("numpy").ok().map(Bound::unbind))
        .as_ref()
        .map(|m| m.bind(py))
}

/// numpy if some code already imported it (a numpy object can only exist then).
fn numpy_if_loaded(py: Python<'_>) -> Option<Bound<'_, PyModule>> {
    if let Some(m) = NUMPY.get(py) {
        return m.as_ref().map(|m| m.bind(py).clone());
    }
    let modules = py.import("sys").ok()?.getattr("modules").ok()?;
    let m = modules.get_item("numpy").ok()?;
    m.cast_into::<PyModule>().ok()
}

fn is_ndarray(np: &Bound<'_, PyModule>, obj: &Bound<'_, PyAny>) -> bool {
    np.getattr(intern!(np.py(), "ndarray"))
        .and_then(|t| obj.is_instance(&t))
        .unwrap_or(false)
}

// ---------------------------------------------------------------------------------------
// Python → Data
// ---------------------------------------------------------------------------------------

/// Converts a Python value into pipeline data (see the module docs for the mapping).
pub fn py_to_data(obj: &Bound<'_, PyAny>) -> Result<Data, ConvertError> {
    to_data(obj, 0)
}

fn type_name(obj: &Bound<'_, PyAny>) -> String {
    let ty = obj.get_type();
    let module = ty
        .module()
        .map(|m| m.to_string())
        .unwrap_or_else(|_| "builtins".into());
    let name = ty
        .qualname()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".into());
    if module == "builtins" {
        name
    } else {
        format!("{module}.{name}")
    }
}

fn preview(obj: &Bound<'_, PyAny>) -> String {
    let text = obj
        .repr()
        .map(|r| r.to_string())
        .unwrap_or_else(|_| "<unrepresentable>".into());
    if text.chars().count() <= VALUE_PREVIEW_CHARS {
        text
    } else {
        let cut: String = text.chars().take(VALUE_PREVIEW_CHARS).collect();
        format!("{cut}…")
    }
}

fn int_to_data(obj: &Bound<'_, PyAny>) -> Result<Data, ConvertError> {
    obj.extract::<i64>().map(Data::Int).map_err(|_| {
        ConvertError::new(
            ConvertErrorKind::Overflow,
            format!("integer {} does not fit a signed 64-bit int", preview(obj)),
        )
    })
}

fn str_to_data(s: &Bound<'_, PyString>) -> Result<Data, ConvertError> {
    utf8(s).map(Data::text).ok_or_else(|| {
        ConvertError::value_error(format!(
            "str {} is not valid UTF-8 (it holds a lone surrogate)",
            preview(s.as_any())
        ))
    })
}

fn list_to_data<'py>(
    items: impl Iterator<Item = Bound<'py, PyAny>>,
    len: usize,
    depth: usize,
) -> Result<Data, ConvertError> {
    seq_items(items, len, depth).map(Data::list)
}

fn seq_items<'py>(
    items: impl Iterator<Item = Bound<'py, PyAny>>,
    len: usize,
    depth: usize,
) -> Result<Vec<Data>, ConvertError> {
    check_depth(depth)?;
    let mut out = Vec::with_capacity(len);
    for (i, item) in items.enumerate() {
        out.push(to_data(&item, depth + 1).map_err(|e| e.within(format_args!("[{i}]")))?);
    }
    Ok(out)
}

fn dict_to_data(d: &Bound<'_, PyDict>, depth: usize) -> Result<Data, ConvertError> {
    check_depth(depth)?;
    if d.len() == 1 {
        if let Some(tagged) = tagged_dict(d)? {
            return Ok(tagged);
        }
    }
    let mut map = DataMap::with_capacity(d.len());
    for (k, v) in d.iter() {
        let key = k.cast::<PyString>().map_err(|_| {
            ConvertError::type_error(format!(
                "dict key {} of type {} is not a str; pipeline maps need str keys",
                preview(&k),
                type_name(&k)
            ))
        })?;
        let key =
            utf8(key).ok_or_else(|| ConvertError::value_error("dict key is not valid UTF-8"))?;
        let value = to_data(&v, depth + 1).map_err(|e| e.within(format_args!("[{key:?}]")))?;
        map.insert(key.to_string(), value);
    }
    Ok(Data::map(map))
}

fn to_data(obj: &Bound<'_, PyAny>, depth: usize) -> Result<Data, ConvertError> {
    // Containers check their own depth; this stops other recursion (wrappers).
    check_depth(depth.saturating_sub(1))?;
    // Exact built-in types first: the common case, and cheap checks; ints first of all
    // (the most common value), read without the general extraction's error handling.
    if obj.is_exact_instance_of::<PyInt>() {
        let mut overflow = 0;
        // SAFETY: `obj` is a live exact int, for which this call cannot fail: a value out
        // of range sets `overflow` instead of an exception.
        let v = unsafe { pyo3::ffi::PyLong_AsLongLongAndOverflow(obj.as_ptr(), &mut overflow) };
        if overflow == 0 {
            return Ok(Data::Int(v));
        }
        return int_to_data(obj);
    }
    if obj.is_none() {
        return Ok(Data::Null);
    }
    if let Ok(b) = obj.cast_exact::<PyBool>() {
        return Ok(Data::Bool(b.is_true()));
    }
    if let Ok(f) = obj.cast_exact::<PyFloat>() {
        return Ok(Data::Float(f.value()));
    }
    if let Ok(s) = obj.cast_exact::<PyString>() {
        return str_to_data(s);
    }
    if let Ok(b) = obj.cast_exact::<PyBytes>() {
        return Ok(Data::Bytes(Bytes::copy_from_slice(b.as_bytes())));
    }
    if let Ok(l) = obj.cast_exact::<PyList>() {
        return list_to_data(l.iter(), l.len(), depth);
    }
    if let Ok(t) = obj.cast_exact::<PyTuple>() {
        return tuple_to_data(t, depth);
    }
    if let Ok(d) = obj.cast_exact::<PyDict>() {
        return dict_to_data(d, depth);
    }
    let py = obj.py();
    if audio_class(py)
        .and_then(|c| obj.is_instance(c))
        .map_err(ConvertError::from_pyerr)?
    {
        return audio_buffer_to_data(obj);
    }
    // numpy values.
    if let Some(np) = numpy_if_loaded(py) {
        if is_ndarray(&np, obj) {
            return ndarray_to_tensor(&np, obj).map(Data::from);
        }
        let generic = np.getattr(intern!(py, "generic")).ok();
        if generic.is_some_and(|g| obj.is_instance(&g).unwrap_or(false)) {
            let item = obj
                .call_method0(intern!(py, "item"))
                .map_err(ConvertError::from_pyerr)?;
            if !item.is(obj) {
                return to_data(&item, depth + 1);
            }
        }
    }
    // Subclasses of the built-in types (IntEnum, OrderedDict, str enums, …).
    if obj.is_instance_of::<PyInt>() {
        return int_to_data(obj);
    }
    if let Ok(f) = obj.cast::<PyFloat>() {
        return Ok(Data::Float(f.value()));
    }
    if let Ok(s) = obj.cast::<PyString>() {
        return str_to_data(s);
    }
    if let Ok(b) = obj.cast::<PyBytes>() {
        return Ok(Data::Bytes(Bytes::copy_from_slice(b.as_bytes())));
    }
    if let Ok(b) = obj.cast::<PyByteArray>() {
        return Ok(Data::Bytes(Bytes::from(b.to_vec())));
    }
    if obj.is_instance_of::<PyMemoryView>() {
        let raw = obj
            .call_method0(intern!(py, "tobytes"))
            .map_err(ConvertError::from_pyerr)?;
        let raw = raw
            .cast::<PyBytes>()
            .map_err(|_| ConvertError::value_error("memoryview.tobytes() did not return bytes"))?;
        return Ok(Data::Bytes(Bytes::copy_from_slice(raw.as_bytes())));
    }
    if let Ok(l) = obj.cast::<PyList>() {
        return list_to_data(l.iter(), l.len(), depth);
    }
    if let Ok(t) = obj.cast::<PyTuple>() {
        return tuple_to_data(t, depth);
    }
    if let Ok(d) = obj.cast::<PyDict>() {
        return dict_to_data(d, depth);
    }
    Err(ConvertError::type_error(format!(
        "cannot convert {} of type {} to pipeline data; supported: None, bool, int, float, str, \
         bytes, list, tuple, dict with str keys, numpy arrays",
        preview(obj),
        type_name(obj)
    )))
}

fn tuple_to_data(t: &Bound<'_, PyTuple>, depth: usize) -> Result<Data, ConvertError> {
    let len = t.len();
    if len == 2 || len == 3 {
        if let Some(audio) = audio_tuple(t)? {
            return Ok(audio);
        }
    }
    seq_items(t.iter(), len, depth).map(Data::tuple)
}

/// `(1-D float32 array, int sample_rate[, int pts_us])` → mono audio; `None` for a
/// tuple of another shape (an ordinary list). A 2-D array in such a pair is an error:
/// whether it is `(frames, channels)` or `(channels, frames)` cannot be told, so the
/// caller is sent to `AudioBuffer`, which says.
fn audio_tuple(t: &Bound<'_, PyTuple>) -> Result<Option<Data>, ConvertError> {
    let py = t.py();
    let Some(np) = numpy_if_loaded(py) else {
        return Ok(None);
    };
    let (Ok(arr), Ok(rate)) = (t.get_item(0), t.get_item(1)) else {
        return Ok(None);
    };
    if !rate.is_exact_instance_of::<PyInt>() || !is_ndarray(&np, &arr) {
        return Ok(None);
    }
    let pts_us = if t.len() == 3 {
        match t.get_item(2) {
            Ok(pts) if pts.is_exact_instance_of::<PyInt>() => match pts.extract::<i64>() {
                Ok(pts) => pts,
                Err(_) => return Ok(None),
            },
            _ => return Ok(None),
        }
    } else {
        0
    };
    let Ok(sample_rate) = rate.extract::<u32>() else {
        return Ok(None);
    };
    let is_f32 = arr
        .getattr(intern!(py, "dtype"))
        .and_then(|d| d.getattr(intern!(py, "name")))
        .and_then(|n| n.extract::<String>())
        .is_ok_and(|n| n == "float32");
    let ndim = arr
        .getattr(intern!(py, "ndim"))
        .and_then(|n| n.extract::<usize>())
        .unwrap_or(0);
    if sample_rate == 0 || !is_f32 {
        return Ok(None);
    }
    match ndim {
        1 => {
            let samples = ndarray_samples(&np, &arr)?;
            Ok(Some(Data::from(
                AudioBuffer::new(samples, sample_rate, 1).with_pts(pts_us),
            )))
        }
        2 => Err(ConvertError::value_error(
            "a (samples, sample_rate) pair holds mono audio (a 1-D array); for several \
             channels use remotemedia.AudioBuffer(samples of shape (frames, channels), \
             sample_rate, channels)",
        )),
        _ => Ok(None),
    }
}

/// The class audio comes to Python as, `remotemedia.AudioBuffer`: the class of the
/// module `_remotemedia_audio` when something (the SDK) already loaded it, else the
/// same source loaded here under that name. One class per interpreter either way.
pub fn audio_class(py: Python<'_>) -> PyResult<&Bound<'_, PyAny>> {
    static CLASS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    CLASS
        .get_or_try_init(py, || {
            let modules = py.import("sys")?.getattr("modules")?;
            let module = match modules.get_item(crate::AUDIO_MODULE) {
                Ok(m) => m,
                Err(_) => {
                    let m = PyModule::new(py, crate::AUDIO_MODULE)?;
                    modules.set_item(crate::AUDIO_MODULE, &m)?;
                    let code = std::ffi::CString::new(crate::AUDIO_BUFFER_SOURCE)
                        .expect("the audio module source has no NUL byte");
                    let globals = m.dict();
                    globals.set_item("__builtins__", py.import("builtins")?)?;
                    if let Err(e) = py.run(&code, Some(&globals), None) {
                        let _ = modules.del_item(crate::AUDIO_MODULE);
                        return Err(e);
                    }
                    m.into_any()
                }
            };
            Ok(module.getattr("AudioBuffer")?.unbind())
        })
        .map(|c| c.bind(py))
}

/// An `AudioBuffer` → audio, its samples shared when they are C-contiguous
/// little-endian float32 (what numpy makes by default, and what comes out of a pipeline).
fn audio_buffer_to_data(obj: &Bound<'_, PyAny>) -> Result<Data, ConvertError> {
    let py = obj.py();
    let bad = |m: &str| ConvertError::value_error(format!("AudioBuffer: {m}"));
    let attr = |name: &str| obj.getattr(name).map_err(ConvertError::from_pyerr);
    let sample_rate = attr("sample_rate")?
        .extract::<u32>()
        .ok()
        .filter(|r| *r > 0)
        .ok_or_else(|| bad("sample_rate must be a positive int that fits 32 bits"))?;
    let channels = attr("channels")?
        .extract::<u16>()
        .ok()
        .filter(|c| *c > 0)
        .ok_or_else(|| bad("channels must be an int between 1 and 65535"))?;
    let pts_us = attr("pts_us")?
        .extract::<i64>()
        .map_err(|_| bad("pts_us must be an int (microseconds) that fits 64 bits"))?;
    let samples = attr("samples")?;
    let samples = match numpy_if_loaded(py) {
        Some(np) if is_ndarray(&np, &samples) => ndarray_samples(&np, &samples)?,
        _ => buffer_samples(&samples)?,
    };
    if !samples.len().is_multiple_of(usize::from(channels)) {
        return Err(bad(&format!(
            "{} interleaved samples cannot be split into {channels} channels",
            samples.len()
        )));
    }
    Ok(Data::from(
        AudioBuffer::new(samples, sample_rate, channels).with_pts(pts_us),
    ))
}

/// The samples of a float32 array, without a copy when it is C-contiguous and
/// little-endian (any layout is made so first: `(frames, channels)` C order is
/// interleaved).
fn ndarray_samples(
    np: &Bound<'_, PyModule>,
    arr: &Bound<'_, PyAny>,
) -> Result<Samples, ConvertError> {
    let py = arr.py();
    let e = ConvertError::from_pyerr;
    let contiguous = np
        .call_method1(intern!(py, "ascontiguousarray"), (arr, intern!(py, "<f4")))
        .map_err(e)?;
    shared_samples(HeldBuffer::get(&contiguous).map_err(e)?)
}

/// The samples of a buffer of float32 (a `memoryview`, `array.array('f')`), shared.
fn buffer_samples(obj: &Bound<'_, PyAny>) -> Result<Samples, ConvertError> {
    let buf = HeldBuffer::get(obj).map_err(|_| {
        ConvertError::type_error(format!(
            "AudioBuffer samples must be a float32 numpy array or buffer, not {}",
            type_name(obj)
        ))
    })?;
    let format = buf.format().to_str().unwrap_or_default();
    let float32 = buf.item_size() == 4 && matches!(format, "f" | "<f" | "=f");
    let raw_bytes = buf.item_size() == 1 && matches!(format, "B" | "b" | "c");
    if !(float32 || raw_bytes) || !buf.is_c_contiguous() {
        return Err(ConvertError::type_error(format!(
            "AudioBuffer samples must be contiguous float32 values, got a buffer of format \
             {format:?} and item size {}",
            buf.item_size()
        )));
    }
    shared_samples(buf)
}

/// Samples over a held, C-contiguous buffer's memory (copied only when unaligned).
fn shared_samples(buf: HeldBuffer) -> Result<Samples, ConvertError> {
    if !buf.len_bytes().is_multiple_of(4) {
        return Err(ConvertError::value_error(format!(
            "AudioBuffer samples: {} bytes is not a whole number of float32 values",
            buf.len_bytes()
        )));
    }
    if buf.len_bytes() == 0 {
        return Ok(Samples::default());
    }
    let bytes = buf.into_bytes().ok_or_else(|| {
        ConvertError::value_error("AudioBuffer samples must be a contiguous buffer")
    })?;
    Ok(Samples::from_le_bytes(bytes))
}

const SUPPORTED_DTYPES: &str = "uint8, int8, uint16, int16, uint32, int32, uint64, int64, \
                                float16, float32, float64, bool";

fn ndarray_to_tensor(
    np: &Bound<'_, PyModule>,
    obj: &Bound<'_, PyAny>,
) -> Result<Tensor, ConvertError> {
    let py = obj.py();
    let e = ConvertError::from_pyerr;
    let dtype = obj.getattr(intern!(py, "dtype")).map_err(e)?;
    let name: String = dtype
        .getattr(intern!(py, "name"))
        .and_then(|n| n.extract())
        .map_err(e)?;
    let Some(dt) = DType::from_name(&name) else {
        return Err(ConvertError::type_error(format!(
            "numpy arrays of dtype {name} have no pipeline equivalent; supported dtypes: \
             {SUPPORTED_DTYPES}"
        )));
    };
    let shape: Vec<usize> = obj
        .getattr(intern!(py, "shape"))
        .and_then(|s| s.extract())
        .map_err(e)?;
    let byteorder: String = dtype
        .getattr(intern!(py, "byteorder"))
        .and_then(|b| b.extract())
        .map_err(e)?;
    let big_endian = byteorder == ">" || (byteorder == "=" && cfg!(target_endian = "big"));
    let mut arr = obj.clone();
    if big_endian {
        let le = dtype
            .call_method1(intern!(py, "newbyteorder"), (intern!(py, "<"),))
            .map_err(e)?;
        arr = arr.call_method1(intern!(py, "astype"), (le,)).map_err(e)?;
    }
    // 0-d arrays may export no shape; flatten to one dimension (the shape is kept above).
    if shape.is_empty() {
        arr = arr.call_method1(intern!(py, "reshape"), (1,)).map_err(e)?;
    }
    let mut buf = HeldBuffer::get(&arr).map_err(e)?;
    if !buf.is_c_contiguous() {
        arr = np
            .call_method1(intern!(py, "ascontiguousarray"), (arr,))
            .map_err(e)?;
        buf = HeldBuffer::get(&arr).map_err(e)?;
    }
    let data = buf
        .into_bytes()
        .ok_or_else(|| ConvertError::value_error("numpy.ascontiguousarray gave a strided array"))?;
    Tensor::new(shape, dt, data).map_err(|err| ConvertError::value_error(err.to_string()))
}

/// Reads a bytes-like value (`bytes`, `bytearray`, `memoryview`, anything exporting a
/// contiguous buffer) into [`Bytes`].
fn bytes_like(obj: &Bound<'_, PyAny>, what: &str) -> Result<Bytes, ConvertError> {
    if let Ok(b) = obj.cast::<PyBytes>() {
        return Ok(Bytes::copy_from_slice(b.as_bytes()));
    }
    let buf = HeldBuffer::get(obj).map_err(|_| {
        ConvertError::type_error(format!("{what} must be bytes-like, got {}", type_name(obj)))
    })?;
    let bytes = buf
        .as_bytes()
        .ok_or_else(|| ConvertError::value_error(format!("{what} must be a contiguous buffer")))?;
    Ok(Bytes::copy_from_slice(bytes))
}

fn field<'py>(
    d: &Bound<'py, PyDict>,
    key: &str,
    tag: &str,
) -> Result<Bound<'py, PyAny>, ConvertError> {
    d.get_item(key)
        .ok()
        .flatten()
        .ok_or_else(|| ConvertError::value_error(format!("{tag} needs a field `{key}`")))
}

/// `{"$tensor": {...}}` / `{"$audio": {...}}` → tensor / audio; `None` for other dicts.
fn tagged_dict(d: &Bound<'_, PyDict>) -> Result<Option<Data>, ConvertError> {
    let Some((key, inner)) = d.iter().next() else {
        return Ok(None);
    };
    let Ok(key) = key.cast::<PyString>() else {
        return Ok(None);
    };
    let tag = utf8(key).unwrap_or_default();
    if tag != "$tensor" && tag != "$audio" {
        return Ok(None);
    }
    let wrap = |e: ConvertError| e.within(format_args!("[{tag:?}]"));
    let inner = inner.cast::<PyDict>().map_err(|_| {
        wrap(ConvertError::type_error(format!(
            "a dict whose only key is {tag:?} is the {} form and needs a dict value",
            &tag[1..]
        )))
    })?;
    let bad = |m: String| wrap(ConvertError::value_error(m));
    if tag == "$tensor" {
        let shape: Vec<usize> = field(inner, "shape", tag)
            .map_err(wrap)?
            .extract()
            .map_err(|_| bad("`shape` must be a list of non-negative ints".into()))?;
        let dtype: String = field(inner, "dtype", tag)
            .map_err(wrap)?
            .extract()
            .map_err(|_| bad("`dtype` must be a str".into()))?;
        let dt = DType::from_name(&dtype).ok_or_else(|| {
            bad(format!(
                "unknown dtype `{dtype}`; expected one of {SUPPORTED_DTYPES}"
            ))
        })?;
        let data = bytes_like(&field(inner, "data", tag).map_err(wrap)?, "`data`").map_err(wrap)?;
        let t = Tensor::new(shape, dt, data).map_err(|e| bad(e.to_string()))?;
        Ok(Some(Data::from(t)))
    } else {
        let sample_rate: u32 = field(inner, "sample_rate", tag)
            .map_err(wrap)?
            .extract()
            .map_err(|_| bad("`sample_rate` must be an int that fits u32".into()))?;
        let channels: u16 = field(inner, "channels", tag)
            .map_err(wrap)?
            .extract()
            .map_err(|_| bad("`channels` must be an int between 1 and 65535".into()))?;
        if channels == 0 {
            return Err(bad("`channels` must be between 1 and 65535".into()));
        }
        let pts_us: i64 = match inner.get_item("pts_us").map_err(ConvertError::from_pyerr)? {
            Some(v) if !v.is_none() => v
                .extract()
                .map_err(|_| bad("`pts_us` must be an int (microseconds)".into()))?,
            _ => 0,
        };
        let raw =
            bytes_like(&field(inner, "samples", tag).map_err(wrap)?, "`samples`").map_err(wrap)?;
        if !raw.len().is_multiple_of(4) {
            return Err(bad(
                "`samples` byte length is not a multiple of 4 (float32 little-endian)".into(),
            ));
        }
        let samples = Samples::from_le_bytes(raw);
        if !samples.len().is_multiple_of(channels as usize) {
            return Err(bad(format!(
                "{} samples cannot be split into {channels} channels",
                samples.len()
            )));
        }
        Ok(Some(Data::from(
            AudioBuffer::new(samples, sample_rate, channels).with_pts(pts_us),
        )))
    }
}

// ---------------------------------------------------------------------------------------
// Data → Python
// ---------------------------------------------------------------------------------------

/// Converts pipeline data into a Python value (see the module docs for the mapping).
pub fn data_to_py<'py>(py: Python<'py>, data: &Data) -> PyResult<Bound<'py, PyAny>> {
    Ok(match data {
        Data::Null => py.None().into_bound(py),
        Data::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
        Data::Int(i) => i.into_pyobject(py)?.into_any(),
        Data::Float(f) => PyFloat::new(py, *f).into_any(),
        Data::Text(s) => PyString::new(py, s).into_any(),
        Data::Bytes(b) => PyBytes::new(py, b).into_any(),
        Data::List(items) => {
            let mut out = Vec::with_capacity(items.len());
            for item in items.iter() {
                out.push(data_to_py(py, item)?);
            }
            PyList::new(py, out)?.into_any()
        }
        Data::Tuple(items) => {
            let mut out = Vec::with_capacity(items.len());
            for item in items.iter() {
                out.push(data_to_py(py, item)?);
            }
            PyTuple::new(py, out)?.into_any()
        }
        Data::Map(map) => {
            let d = PyDict::new(py);
            for (k, v) in map.iter() {
                d.set_item(k, data_to_py(py, v)?)?;
            }
            d.into_any()
        }
        Data::Tensor(t) => tensor_to_py(py, t)?,
        Data::Audio(a) => audio_to_py(py, a)?,
    })
}

/// numpy's type string for a dtype, explicitly little-endian.
fn numpy_typestr(dt: DType) -> &'static str {
    match dt {
        DType::U8 => "|u1",
        DType::I8 => "|i1",
        DType::U16 => "<u2",
        DType::I16 => "<i2",
        DType::U32 => "<u4",
        DType::I32 => "<i4",
        DType::U64 => "<u8",
        DType::I64 => "<i8",
        DType::F16 => "<f2",
        DType::F32 => "<f4",
        DType::F64 => "<f8",
        DType::Bool => "|b1",
    }
}

fn tensor_to_py<'py>(py: Python<'py>, t: &Tensor) -> PyResult<Bound<'py, PyAny>> {
    match numpy(py) {
        Some(np) => {
            let view = data_buffer(py, t.data.clone())?;
            let flat =
                np.call_method1(intern!(py, "frombuffer"), (view, numpy_typestr(t.dtype)))?;
            flat.call_method1(intern!(py, "reshape"), (t.shape.clone(),))
        }
        None => {
            let inner = PyDict::new(py);
            inner.set_item("shape", t.shape.clone())?;
            inner.set_item("dtype", t.dtype.name())?;
            inner.set_item("data", PyBytes::new(py, &t.data))?;
            let d = PyDict::new(py);
            d.set_item("$tensor", inner)?;
            Ok(d.into_any())
        }
    }
}

fn audio_to_py<'py>(py: Python<'py>, a: &Arc<AudioBuffer>) -> PyResult<Bound<'py, PyAny>> {
    let view = data_buffer(py, a.samples.to_le_bytes())?;
    let samples = match numpy(py) {
        Some(np) => {
            let flat = np.call_method1(intern!(py, "frombuffer"), (view, intern!(py, "<f4")))?;
            if a.channels == 1 {
                flat
            } else {
                flat.call_method1(intern!(py, "reshape"), ((a.frames(), a.channels as usize),))?
            }
        }
        None => {
            PyMemoryView::from(&view)?.call_method1(intern!(py, "cast"), (intern!(py, "f"),))?
        }
    };
    // Built without running `__init__`: the runtime's audio is valid by construction.
    let class = audio_class(py)?;
    let audio = class.call_method1(intern!(py, "__new__"), (class,))?;
    audio.setattr(intern!(py, "samples"), samples)?;
    audio.setattr(intern!(py, "sample_rate"), a.sample_rate)?;
    audio.setattr(intern!(py, "channels"), a.channels)?;
    audio.setattr(intern!(py, "pts_us"), a.pts_us)?;
    Ok(audio)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_py<R>(f: impl FnOnce(Python<'_>) -> R) -> R {
        Python::initialize();
        Python::attach(f)
    }

    fn eval<'py>(py: Python<'py>, code: &std::ffi::CStr) -> Bound<'py, PyAny> {
        py.eval(code, None, None).expect("valid expression")
    }

    #[test]
    fn native_values_map_onto_data() {
        with_py(|py| {
            let v = eval(
                py,
                c"[None, True, 3, 2.5, 'é', b'\\x00', (1, 2), {'k': [1]}]",
            );
            let d = py_to_data(&v).unwrap();
            assert_eq!(
                d.to_json_string(),
                r#"[null,true,3,2.5,"é",{"$bytes":"AA=="},[1,2],{"k":[1]}]"#
            );
            let back = data_to_py(py, &d).unwrap();
            let expected = eval(
                py,
                c"[None, True, 3, 2.5, 'é', b'\\x00', (1, 2), {'k': [1]}]",
            );
            assert!(back.eq(expected).unwrap());
            let tuple = back.get_item(6).unwrap();
            assert!(tuple.is_exact_instance_of::<PyTuple>(), "{tuple:?}");
        });
    }

    #[test]
    fn errors_name_the_value_and_path() {
        with_py(|py| {
            let e = py_to_data(&eval(py, c"{'a': [0, 2**64]}")).unwrap_err();
            assert_eq!(e.kind, ConvertErrorKind::Overflow);
            assert_eq!(
                e.to_string(),
                "integer 18446744073709551616 does not fit a signed 64-bit int (at $[\"a\"][1])"
            );
            let e = py_to_data(&eval(py, c"{1: 2}")).unwrap_err();
            assert_eq!(e.kind, ConvertErrorKind::Type);
            assert!(e.message.starts_with("dict key 1 of type int is not a str"));
            let e = py_to_data(&eval(py, c"[set()]")).unwrap_err();
            assert_eq!(e.path, "[0]");
            assert!(e.message.contains("of type set"), "{}", e.message);
        });
    }

    #[test]
    fn tensor_dict_form_round_trips_without_numpy_conversion() {
        with_py(|py| {
            let v = eval(
                py,
                c"{'$tensor': {'shape': [2], 'dtype': 'uint16', 'data': b'\\x01\\x00\\x02\\x00'}}",
            );
            let d = py_to_data(&v).unwrap();
            let Data::Tensor(t) = &d else {
                panic!("expected a tensor, got {d:?}")
            };
            assert_eq!((t.shape.clone(), t.dtype), (vec![2], DType::U16));
            assert_eq!(&t.data[..], &[1, 0, 2, 0]);
        });
    }
}
