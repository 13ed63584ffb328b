//! Audio for remotemedia: what turns files and raw PCM into [`AudioBuffer`] items and
//! back, and the streaming DSP nodes that work on them.
//!
//! Every node here keeps stream time: an output buffer's `pts_us` is computed from the
//! frames the node has seen since its stream started (see [`stream::StreamClock`]),
//! so times stay exact over hours, whatever the chunk sizes.
//!
//! [`AudioBuffer`]: remotemedia_core::AudioBuffer

pub mod decode;
pub mod input;
pub mod nodes;
pub mod pcm;
pub mod resample;
pub mod stream;
pub mod wav;

use remotemedia_core::Registry;

/// Adds every audio node type to `registry`.
pub fn register(registry: &mut Registry) {
    nodes::register(registry);
}

/// The built-in node types plus the audio ones.
pub fn registry() -> Registry {
    let mut r = Registry::builtin();
    register(&mut r);
    r
}
