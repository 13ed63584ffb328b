//! The audio node types, one module each.

mod resample;
mod tone;

use remotemedia_core::Registry;

pub use resample::{AudioResample, FastResampleNode, FastResampleParams, ResampleParams};
pub use tone::{ToneGenerator, ToneParams, Waveform};

/// Registers every audio node type.
pub fn register(registry: &mut Registry) {
    registry.add::<ToneGenerator>();
    registry.add::<AudioResample>();
    registry.add::<FastResampleNode>();
}
