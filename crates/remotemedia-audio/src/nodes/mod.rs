//! The audio node types, one module each.

mod accumulator;
mod channels;
mod chunker;
mod clipping;
mod gain;
mod level;
mod limiter;
mod loudness;
mod media;
mod pcm;
mod resample;
mod shared;
mod silence;
mod tone;

use remotemedia_core::Registry;

pub use accumulator::{AccumulatorParams, AudioAccumulator};
pub use channels::{AudioChannels, ChannelsParams};
pub use chunker::{AudioChunker, AudioChunkerNode, ChunkerNodeParams, ChunkerParams};
pub use clipping::{ClippingDetector, ClippingParams};
pub use gain::{AudioGain, GainParams};
pub use level::{AudioLevel, LevelParams};
pub use limiter::{AudioLimiter, LimiterParams};
pub use loudness::{AudioLoudness, LoudnessParams};
pub use media::{MediaReader, MediaReaderParams, MediaWriter, MediaWriterParams};
pub use pcm::{PcmDecode, PcmDecodeParams, PcmEncode, PcmEncodeParams};
pub use resample::{AudioResample, FastResampleNode, FastResampleParams, ResampleParams};
pub use silence::{SilenceDetector, SilenceParams};
pub use tone::{ToneGenerator, ToneParams, Waveform};

/// Registers every audio node type.
pub fn register(registry: &mut Registry) {
    registry.add::<ToneGenerator>();
    registry.add::<AudioResample>();
    registry.add::<FastResampleNode>();
    registry.add::<AudioGain>();
    registry.add::<AudioChannels>();
    registry.add::<AudioLimiter>();
    registry.add::<AudioChunker>();
    registry.add::<AudioChunkerNode>();
    registry.add::<AudioAccumulator>();
    registry.add::<AudioLevel>();
    registry.add::<SilenceDetector>();
    registry.add::<ClippingDetector>();
    registry.add::<AudioLoudness>();
    registry.add::<MediaReader>();
    registry.add::<MediaWriter>();
    registry.add::<PcmDecode>();
    registry.add::<PcmEncode>();
}
