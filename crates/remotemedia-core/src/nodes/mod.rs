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

/// Hands a fully processed batch to `out`: moves the vector itself when `out` is
/// empty (no per-item moves), appends otherwise. Leaves `items` empty.
#[inline]
pub(crate) fn emit_all(items: &mut Vec<crate::Data>, out: &mut Vec<crate::Data>) {
    if out.is_empty() {
        std::mem::swap(items, out);
    } else {
        out.append(items);
    }
}

/// Splits a batch processed in place at the item `k` that failed: items `..k` (already
/// processed) go to `out`, items after `k` stay in `items`, and item `k` is returned
/// with `error`.
pub(crate) fn fail_at(
    items: &mut Vec<crate::Data>,
    k: usize,
    out: &mut Vec<crate::Data>,
    error: crate::NodeError,
) -> crate::ItemError {
    let rest = items.split_off(k + 1);
    let item = items.pop().expect("the failed item is in the batch");
    out.append(items);
    *items = rest;
    crate::ItemError { item, error }
}
