//! Python's buffer protocol and UTF-8 access, for every CPython the SDK's wheel serves.
//!
//! The SDK ships one stable-ABI (abi3) extension for CPython 3.9 and later. Three calls
//! the conversions need joined the stable ABI only later — the buffer protocol
//! (`PyObject_GetBuffer`, `PyBuffer_*`, `Py_buffer`, the `bf_getbuffer` type slot) in
//! 3.11, `PyUnicode_AsUTF8AndSize` in 3.10 — so pyo3 leaves them out of an abi3-py39
//! build. Each has had the same signature and `Py_buffer` the same layout since
//! CPython 3.3, and every 3.9+ interpreter exports them, so they are declared here
//! when pyo3 does not provide them. Without them, every array or `bytes` handed to
//! the pipeline, and every `str`, would be copied once more.
//!
//! - [`HeldBuffer`]: a buffer exported by a Python object, held (its memory valid and
//!   pinned) until dropped; it can own [`Bytes`] that point into it.
//! - [`data_buffer`]: a `remotemedia._remotemedia.DataBuffer` object exporting pipeline
//!   memory read-only, so numpy arrays and memoryviews share it without a copy. A type
//!   made with `PyType_FromSpec` and a `Py_bf_getbuffer` slot (supported since 3.9).
//! - [`utf8`]: a `str`'s UTF-8 without a copy.

use std::ffi::{c_char, c_int, c_void, CStr};
use std::ptr::NonNull;

use bytes::Bytes;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyString, PyType};

#[cfg(all(Py_LIMITED_API, not(Py_3_11)))]
use declared::{
    PyBUF_FULL_RO, PyBUF_WRITABLE, PyBuffer_FillInfo, PyBuffer_IsContiguous, PyBuffer_Release,
    PyObject_GetBuffer, Py_buffer,
};
#[cfg(any(not(Py_LIMITED_API), Py_3_11))]
use pyo3::ffi::{
    PyBUF_FULL_RO, PyBUF_WRITABLE, PyBuffer_FillInfo, PyBuffer_IsContiguous, PyBuffer_Release,
    PyObject_GetBuffer, Py_buffer,
};

/// The buffer protocol as CPython ≥ 3.3 defines it (`Include/pybuffer.h`), for abi3
/// builds older than 3.11, where pyo3 does not declare it.
#[cfg(all(Py_LIMITED_API, not(Py_3_11)))]
#[allow(
    non_camel_case_types,
    non_snake_case,
    non_upper_case_globals,
    missing_docs
)]
mod declared {
    use std::ffi::{c_char, c_int, c_void};

    use pyo3::ffi::{PyObject, Py_ssize_t};

    #[repr(C)]
    pub struct Py_buffer {
        pub buf: *mut c_void,
        pub obj: *mut PyObject,
        pub len: Py_ssize_t,
        pub itemsize: Py_ssize_t,
        pub readonly: c_int,
        pub ndim: c_int,
        pub format: *mut c_char,
        pub shape: *mut Py_ssize_t,
        pub strides: *mut Py_ssize_t,
        pub suboffsets: *mut Py_ssize_t,
        pub internal: *mut c_void,
    }

    pub const PyBUF_WRITABLE: c_int = 0x0001;
    const PyBUF_FORMAT: c_int = 0x0004;
    const PyBUF_ND: c_int = 0x0008;
    const PyBUF_STRIDES: c_int = 0x0010 | PyBUF_ND;
    const PyBUF_INDIRECT: c_int = 0x0100 | PyBUF_STRIDES;
    pub const PyBUF_FULL_RO: c_int = PyBUF_INDIRECT | PyBUF_FORMAT;

    extern "C" {
        pub fn PyObject_GetBuffer(obj: *mut PyObject, view: *mut Py_buffer, flags: c_int) -> c_int;
        pub fn PyBuffer_Release(view: *mut Py_buffer);
        pub fn PyBuffer_IsContiguous(view: *const Py_buffer, fort: c_char) -> c_int;
        pub fn PyBuffer_FillInfo(
            view: *mut Py_buffer,
            obj: *mut PyObject,
            buf: *mut c_void,
            len: Py_ssize_t,
            readonly: c_int,
            flags: c_int,
        ) -> c_int;
    }
}

#[cfg(all(Py_LIMITED_API, not(Py_3_10)))]
extern "C" {
    fn PyUnicode_AsUTF8AndSize(
        unicode: *mut ffi::PyObject,
        size: *mut ffi::Py_ssize_t,
    ) -> *const c_char;
}

/// A `str`'s UTF-8, borrowed from the string object (CPython caches it there); `None`
/// when it holds a lone surrogate, which has no UTF-8.
pub fn utf8<'a>(s: &'a Bound<'_, PyString>) -> Option<&'a str> {
    #[cfg(any(not(Py_LIMITED_API), Py_3_10))]
    {
        s.to_str().ok()
    }
    #[cfg(all(Py_LIMITED_API, not(Py_3_10)))]
    {
        let mut size: ffi::Py_ssize_t = 0;
        // SAFETY: `s` is a str (typed); the returned UTF-8 lives as long as the string
        // object, which the borrow of `s` keeps alive.
        let data = unsafe { PyUnicode_AsUTF8AndSize(s.as_ptr(), &mut size) };
        if data.is_null() {
            // The UnicodeEncodeError of a lone surrogate: the caller reports it.
            drop(PyErr::take(s.py()));
            return None;
        }
        // SAFETY: CPython hands out `size` bytes of valid UTF-8 at `data`.
        Some(unsafe {
            std::str::from_utf8_unchecked(std::slice::from_raw_parts(
                data as *const u8,
                size as usize,
            ))
        })
    }
}

/// A buffer exported by a Python object, held until dropped.
///
/// While it is held the exporter keeps the memory valid and does not move it (a numpy
/// array cannot be resized, a `bytearray` refuses to grow), so [`Bytes`] can point into
/// it ([`HeldBuffer::into_bytes`]).
pub struct HeldBuffer {
    // Boxed: the interpreter is handed this address and gets the same one back at release.
    view: Box<Py_buffer>,
}

// SAFETY: the view is only read after it is filled, and released with the interpreter
// attached (`Drop`); exporters' memory is not tied to a thread.
unsafe impl Send for HeldBuffer {}
// SAFETY: as above; `&HeldBuffer` only reads the filled view.
unsafe impl Sync for HeldBuffer {}

impl HeldBuffer {
    /// Asks `obj` for a read-only buffer (any layout: check [`is_c_contiguous`](Self::is_c_contiguous)).
    pub fn get(obj: &Bound<'_, PyAny>) -> PyResult<Self> {
        // SAFETY: an all-zero `Py_buffer` is the empty value (null pointers, zero sizes).
        let mut view: Box<Py_buffer> = Box::new(unsafe { std::mem::zeroed() });
        // SAFETY: `obj` is a live object and `view` a writable `Py_buffer`.
        let rc = unsafe { PyObject_GetBuffer(obj.as_ptr(), &mut *view, PyBUF_FULL_RO) };
        if rc == -1 {
            return Err(PyErr::fetch(obj.py()));
        }
        Ok(Self { view })
    }

    /// Length in bytes.
    pub fn len_bytes(&self) -> usize {
        self.view.len as usize
    }

    /// Size of one item in bytes.
    pub fn item_size(&self) -> usize {
        self.view.itemsize as usize
    }

    /// The struct-module format of an item (`"B"` when the exporter gives none).
    pub fn format(&self) -> &CStr {
        if self.view.format.is_null() {
            c"B"
        } else {
            // SAFETY: a non-null format is a NUL-terminated string owned by the export.
            unsafe { CStr::from_ptr(self.view.format) }
        }
    }

    /// Whether the memory is one C-ordered block.
    pub fn is_c_contiguous(&self) -> bool {
        // SAFETY: the view is filled and held.
        unsafe { PyBuffer_IsContiguous(&*self.view, b'C' as c_char) == 1 }
    }

    /// The memory as bytes; `None` unless C-contiguous.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        if !self.is_c_contiguous() {
            return None;
        }
        if self.view.len == 0 || self.view.buf.is_null() {
            return Some(&[]);
        }
        // SAFETY: the buffer is held for the lifetime of the borrow, C-contiguous and
        // `len` bytes long.
        Some(unsafe { std::slice::from_raw_parts(self.view.buf as *const u8, self.len_bytes()) })
    }

    /// [`Bytes`] over the memory without a copy, holding the export until the last
    /// clone is dropped; `None` unless C-contiguous.
    pub fn into_bytes(self) -> Option<Bytes> {
        if !self.is_c_contiguous() {
            return None;
        }
        if self.len_bytes() == 0 {
            return Some(Bytes::new());
        }
        Some(Bytes::from_owner(self))
    }
}

impl AsRef<[u8]> for HeldBuffer {
    fn as_ref(&self) -> &[u8] {
        // Only C-contiguous buffers are turned into `Bytes` (`into_bytes`).
        self.as_bytes().unwrap_or_default()
    }
}

impl Drop for HeldBuffer {
    fn drop(&mut self) {
        // Pipeline threads drop `Bytes` without the interpreter attached.
        Python::attach(|_| {
            // SAFETY: the view was filled by `PyObject_GetBuffer` and is released once.
            unsafe { PyBuffer_Release(&mut *self.view) }
        });
    }
}

/// The layout of a `DataBuffer` object: the object header, then the memory it exports.
#[repr(C)]
struct DataBufferObject {
    ob_base: ffi::PyObject,
    /// `Box<Bytes>` made by [`data_buffer`]; never null once the object is handed out.
    data: *mut Bytes,
}

const DATA_BUFFER_DOC: &CStr =
    c"Read-only buffer over pipeline memory; the base of arrays that come out of the core.";

/// `remotemedia._remotemedia.DataBuffer`, made once per interpreter.
pub fn data_buffer_type(py: Python<'_>) -> PyResult<&Bound<'_, PyType>> {
    static TYPE: PyOnceLock<Py<PyType>> = PyOnceLock::new();
    TYPE.get_or_try_init(py, || {
        // The interpreter copies the slots; the name must stay (a static literal).
        let mut slots = [
            slot(ffi::Py_bf_getbuffer, get_buffer as *mut c_void),
            slot(ffi::Py_tp_dealloc, dealloc as *mut c_void),
            slot(ffi::Py_tp_new, refuse_new as *mut c_void),
            slot(ffi::Py_sq_length, length as *mut c_void),
            slot(ffi::Py_tp_doc, DATA_BUFFER_DOC.as_ptr() as *mut c_void),
            slot(0, std::ptr::null_mut()),
        ];
        let mut spec = ffi::PyType_Spec {
            name: c"remotemedia._remotemedia.DataBuffer".as_ptr(),
            basicsize: std::mem::size_of::<DataBufferObject>() as c_int,
            itemsize: 0,
            flags: ffi::Py_TPFLAGS_DEFAULT as _,
            slots: slots.as_mut_ptr(),
        };
        // SAFETY: a complete spec; a null result has an exception set.
        let tp = unsafe { ffi::PyType_FromSpec(&mut spec) };
        if tp.is_null() {
            return Err(PyErr::fetch(py));
        }
        // SAFETY: a new reference to a type object.
        let tp = unsafe { Bound::from_owned_ptr(py, tp) };
        Ok(tp.cast_into::<PyType>()?.unbind())
    })
    .map(|t| t.bind(py))
}

fn slot(slot: c_int, pfunc: *mut c_void) -> ffi::PyType_Slot {
    ffi::PyType_Slot { slot, pfunc }
}

/// A new `DataBuffer` exporting `data` read-only.
pub fn data_buffer(py: Python<'_>, data: Bytes) -> PyResult<Bound<'_, PyAny>> {
    let tp = data_buffer_type(py)?;
    let tp_ptr = tp.as_type_ptr();
    // SAFETY: every heap type has `tp_alloc` (inherited from `object`); it returns a
    // zeroed object of `basicsize` with its type set, or null with an exception.
    let obj = unsafe {
        let alloc: ffi::allocfunc =
            std::mem::transmute(ffi::PyType_GetSlot(tp_ptr, ffi::Py_tp_alloc));
        alloc(tp_ptr, 0)
    };
    let Some(obj) = NonNull::new(obj) else {
        return Err(PyErr::fetch(py));
    };
    // SAFETY: the object has the `DataBufferObject` layout (our `basicsize`).
    unsafe {
        (*(obj.as_ptr() as *mut DataBufferObject)).data = Box::into_raw(Box::new(data));
        Ok(Bound::from_owned_ptr(py, obj.as_ptr()))
    }
}

/// Whether `obj` is a `DataBuffer`.
pub fn is_data_buffer(obj: &Bound<'_, PyAny>) -> bool {
    data_buffer_type(obj.py()).is_ok_and(|t| obj.is_instance(t).unwrap_or(false))
}

/// The memory of a `DataBuffer` (empty for a null one, which `tp_new` prevents).
///
/// # Safety
/// `obj` is a live `DataBuffer`.
unsafe fn exported(obj: *mut ffi::PyObject) -> &'static [u8] {
    // SAFETY: per the contract; the memory lives as long as the object, which every
    // caller keeps alive for the borrow.
    unsafe {
        let data = (*(obj as *mut DataBufferObject)).data;
        if data.is_null() {
            &[]
        } else {
            (*data).as_ref()
        }
    }
}

unsafe extern "C" fn get_buffer(
    obj: *mut ffi::PyObject,
    view: *mut Py_buffer,
    flags: c_int,
) -> c_int {
    // SAFETY: called by the interpreter with a live DataBuffer and a view to fill; the
    // view's `obj` reference (taken by `PyBuffer_FillInfo`) keeps the memory alive.
    unsafe {
        if flags & PyBUF_WRITABLE == PyBUF_WRITABLE {
            ffi::PyErr_SetString(
                ffi::PyExc_BufferError,
                c"pipeline data is read-only; copy the array to modify it".as_ptr(),
            );
            return -1;
        }
        let bytes = exported(obj);
        PyBuffer_FillInfo(
            view,
            obj,
            bytes.as_ptr() as *mut c_void,
            bytes.len() as ffi::Py_ssize_t,
            1,
            flags,
        )
    }
}

unsafe extern "C" fn length(obj: *mut ffi::PyObject) -> ffi::Py_ssize_t {
    // SAFETY: called by the interpreter with a live DataBuffer.
    unsafe { exported(obj).len() as ffi::Py_ssize_t }
}

unsafe extern "C" fn dealloc(obj: *mut ffi::PyObject) {
    // SAFETY: called once by the interpreter when the last reference goes; a heap
    // type's instance frees itself with its type's `tp_free` and drops its type
    // reference.
    unsafe {
        let data = (*(obj as *mut DataBufferObject)).data;
        if !data.is_null() {
            drop(Box::from_raw(data));
        }
        let tp = ffi::Py_TYPE(obj);
        let free: ffi::freefunc = std::mem::transmute(ffi::PyType_GetSlot(tp, ffi::Py_tp_free));
        free(obj as *mut c_void);
        ffi::Py_DECREF(tp as *mut ffi::PyObject);
    }
}

unsafe extern "C" fn refuse_new(
    _tp: *mut ffi::PyTypeObject,
    _args: *mut ffi::PyObject,
    _kwargs: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    // SAFETY: sets an exception, as a failing `tp_new` must.
    unsafe {
        ffi::PyErr_SetString(
            ffi::PyExc_TypeError,
            c"DataBuffer objects are made by the runtime only (they export its memory)".as_ptr(),
        );
    }
    std::ptr::null_mut()
}
