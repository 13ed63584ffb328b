//! Python nodes inside the remotemedia runtime.
//!
//! The `PythonNode` node type runs an existing Python class — anything with a
//! `process(data)` method, plain, `async`, generator or async generator, with optional
//! `initialize()`, `cleanup()` and `flush()` hooks — from a plain manifest:
//!
//! ```yaml
//! - id: upper
//!   node_type: PythonNode
//!   params: { module: my_nodes, class: Upper, init: { suffix: "!" }, runtime: auto }
//! ```
//!
//! Three hosts behave the same way behind one interface ([`host::Instance`]):
//!
//! - **cpython** ([`Runtime::CPython`], cargo feature `cpython`, on by default): the
//!   machine's libpython embedded through pyo3, called on one dedicated interpreter
//!   thread;
//! - **process** ([`Runtime::Process`]): CPython worker processes speaking a framed
//!   binary protocol over pipes — isolation, parallelism past the GIL, crash and hang
//!   containment;
//! - **rustpython** ([`Runtime::RustPython`], cargo feature `rustpython`): the RustPython
//!   VM with its frozen standard library, no CPython needed;
//! - **auto**: cpython when it starts, else rustpython when compiled in; a node that
//!   fails to load for a compatibility reason (missing module, unsupported feature) is
//!   retried in the next host.
//!
//! All hosts share one driver (`driver.py`) that loads the class and drives its
//! methods, so output rules, error reports, `logging` forwarding (to `tracing`, target
//! `remotemedia::python`) and `print` capture (to stderr as `[node id] line`) are the
//! same everywhere. [`register`] adds the node type to a [`Registry`].
#![warn(missing_docs)]

#[cfg(feature = "cpython")]
pub mod cpython;
pub mod host;
pub mod node;
pub mod process;
pub mod spec;
mod thread;
pub mod wire;

use std::sync::Arc;

use remotemedia_core::Registry;

pub use host::{BatchOutcome, Instance, ItemOutcome, LoadError};
pub use node::{load, PythonNode, PythonNodeFactory, PYTHON_NODE_TYPE};
pub use spec::{NodeSpec, Origin, Runtime, RUNTIME_ENV};

/// The driver shared by every host (Python source).
pub const DRIVER_SOURCE: &str = include_str!("driver.py");

/// Registers the `PythonNode` node type.
pub fn register(registry: &mut Registry) {
    registry.register(Arc::new(PythonNodeFactory::new()));
}

/// A registry with the built-in node types and `PythonNode`.
pub fn registry() -> Registry {
    let mut r = Registry::builtin();
    register(&mut r);
    r
}

/// The hosts usable in this process, in `auto` order, with why the others are not.
pub fn available_runtimes() -> Vec<(Runtime, Result<(), String>)> {
    let cpython = {
        #[cfg(feature = "cpython")]
        {
            cpython::available()
        }
        #[cfg(not(feature = "cpython"))]
        {
            Err("not compiled in (cargo feature `cpython`)".to_string())
        }
    };
    let rustpython = {
        #[cfg(feature = "rustpython")]
        {
            Ok(())
        }
        #[cfg(not(feature = "rustpython"))]
        {
            Err("not compiled in (cargo feature `rustpython`)".to_string())
        }
    };
    vec![
        (Runtime::CPython, cpython),
        (Runtime::RustPython, rustpython),
        (Runtime::Process, process::available()),
    ]
}
