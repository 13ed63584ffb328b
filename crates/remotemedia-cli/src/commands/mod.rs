//! One module per subcommand.

pub mod nodes;
pub mod run;
pub mod validate;

use remotemedia_core::Registry;

/// The node types this binary knows.
pub fn registry() -> Registry {
    Registry::builtin()
}
