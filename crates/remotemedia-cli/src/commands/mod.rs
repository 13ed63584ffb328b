//! One module per subcommand.

pub mod capabilities;
pub mod nodes;
pub mod plan;
pub mod run;
pub mod serve;
pub mod validate;

use remotemedia_core::Registry;

/// The node types this binary knows.
pub fn registry() -> Registry {
    Registry::builtin()
}
