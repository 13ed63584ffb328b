//! The audio node types, one module each.

mod media;
mod pcm;
mod tone;

use remotemedia_core::Registry;

pub use media::{MediaReader, MediaReaderParams, MediaWriter, MediaWriterParams};
pub use pcm::{PcmDecode, PcmDecodeParams, PcmEncode, PcmEncodeParams};
pub use tone::{ToneGenerator, ToneParams, Waveform};

/// Registers every audio node type.
pub fn register(registry: &mut Registry) {
    registry.add::<ToneGenerator>();
    registry.add::<MediaReader>();
    registry.add::<MediaWriter>();
    registry.add::<PcmDecode>();
    registry.add::<PcmEncode>();
}
