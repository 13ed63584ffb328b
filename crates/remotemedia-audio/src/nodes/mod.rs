//! The audio node types, one module each.

mod tone;

use remotemedia_core::Registry;

pub use tone::{ToneGenerator, ToneParams, Waveform};

/// Registers every audio node type.
pub fn register(registry: &mut Registry) {
    registry.add::<ToneGenerator>();
}
