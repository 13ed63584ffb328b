//! One module per subcommand.

pub mod capabilities;
pub mod connect;
pub mod nodes;
pub mod plan;
pub mod run;
pub mod serve;
pub mod validate;

use remotemedia_core::Registry;

/// The node types this binary knows: the built-ins, the audio nodes and `PythonNode`.
pub fn registry() -> Registry {
    let mut registry = Registry::builtin();
    remotemedia_audio::register(&mut registry);
    remotemedia_speech::register(&mut registry);
    remotemedia_python::register(&mut registry);
    registry
}
