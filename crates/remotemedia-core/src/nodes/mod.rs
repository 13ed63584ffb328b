//! Built-in node types.

mod calculator;
mod echo;
mod filter;
mod passthrough;
mod zip;

use crate::registry::Registry;

pub use calculator::{Calculator, CalculatorParams, Operation};
pub use echo::Echo;
pub use filter::{Filter, FilterParams};
pub use passthrough::PassThrough;
pub use zip::{Zip, ZipParams};

/// Registers every built-in node type.
pub fn register_builtins(registry: &mut Registry) {
    registry.add::<PassThrough>();
    registry.add::<Calculator>();
    registry.add::<Echo>();
    registry.add::<Zip>();
    registry.add::<Filter>();
}

pub(crate) use crate::node::{emit_all, fail_at};
