//! Built-in node types.

mod calculator;
mod echo;
mod filter;
mod passthrough;
mod zip;

use std::sync::Arc;

use crate::registry::Registry;

pub use calculator::{Calculator, Operation};
pub use echo::Echo;
pub use filter::Filter;
pub use passthrough::PassThrough;
pub use zip::Zip;

/// Registers every built-in node type.
pub fn register_builtins(registry: &mut Registry) {
    registry.register(Arc::new(passthrough::PassThroughFactory::new()));
    registry.register(Arc::new(calculator::CalculatorFactory::new()));
    registry.register(Arc::new(echo::EchoFactory::new()));
    registry.register(Arc::new(zip::ZipFactory::new()));
    registry.register(Arc::new(filter::FilterFactory::new()));
}
