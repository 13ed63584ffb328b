//! The one way to make a manifest runnable, shared by every front door (the
//! `remotemedia` CLI and the Python SDK's extension module), so that both accept and
//! refuse the same pipelines with the same words.
//!
//! - [`registry`]: every node type this build has — the core's built-ins, audio,
//!   speech and `PythonNode` with the hosts compiled in;
//! - [`executors`]: where executors come from (given ones, `REMOTEMEDIA_EXECUTORS`,
//!   `remotemedia.toml`, DNS discovery, nodes' `host`) and the placement of each node;
//! - [`runnable`]: [`prepare`] turns a validated pipeline into one ready to run,
//!   remote groups replaced by streaming stages that fail over.
#![warn(missing_docs)]

pub mod executors;
pub mod runnable;

use remotemedia_core::Registry;

pub use executors::{needs_placement, place, ExecutorSources, Placed, NO_EXECUTORS_HINT};
pub use runnable::{prepare, PrepareError, Runnable};

/// The node types of this build: the built-ins, the audio and speech nodes and
/// `PythonNode`. Built once per process (describing every type takes a while); each
/// call returns a copy that shares the tables until it changes.
pub fn registry() -> Registry {
    static REGISTRY: std::sync::OnceLock<Registry> = std::sync::OnceLock::new();
    REGISTRY
        .get_or_init(|| {
            let mut registry = Registry::builtin();
            remotemedia_audio::register(&mut registry);
            remotemedia_speech::register(&mut registry);
            remotemedia_python::register(&mut registry);
            registry
        })
        .clone()
}
