//! Checks of a node's audio input, with the messages users see: what arrived, what
//! the node needs, and which node to put before it.

use std::sync::Arc;

use remotemedia_core::{AudioBuffer, Data, NodeError};

/// The item as audio, or an error saying what it is instead.
pub fn audio(item: &Data) -> Result<&Arc<AudioBuffer>, NodeError> {
    match item {
        Data::Audio(a) => Ok(a),
        other => Err(NodeError::invalid_input(format!(
            "expected audio, got {}",
            article(other.type_name())
        ))),
    }
}

/// `a text`, `an int`: the type name with its article.
fn article(name: &str) -> String {
    let vowel = name.starts_with(['a', 'e', 'i', 'o', 'u']);
    format!("{} {name}", if vowel { "an" } else { "a" })
}

/// Fails unless `buf` is at `rate` Hz.
pub fn require_rate(buf: &AudioBuffer, rate: u32) -> Result<(), NodeError> {
    if buf.sample_rate == rate {
        return Ok(());
    }
    Err(NodeError::invalid_input(format!(
        "expected audio at {rate} Hz, got {} Hz: put AudioResample (target_rate: {rate}) before this node",
        buf.sample_rate
    )))
}

/// Fails unless `buf` has `channels` channels.
pub fn require_channels(buf: &AudioBuffer, channels: u16) -> Result<(), NodeError> {
    if buf.channels == channels {
        return Ok(());
    }
    let want = match channels {
        1 => "mono audio".to_string(),
        2 => "stereo audio".to_string(),
        n => format!("audio with {n} channels"),
    };
    Err(NodeError::invalid_input(format!(
        "expected {want}, got {} channel{}: put AudioChannels (channels: {channels}) before this node",
        buf.channels,
        if buf.channels == 1 { "" } else { "s" }
    )))
}

/// Fails when `buf` changes format in the middle of a stream that started as
/// `(rate, channels)`: a node's internal state is only valid for one format.
pub fn require_same_format(buf: &AudioBuffer, rate: u32, channels: u16) -> Result<(), NodeError> {
    if buf.sample_rate == rate && buf.channels == channels {
        return Ok(());
    }
    Err(NodeError::invalid_input(format!(
        "the stream changed format from {rate} Hz, {channels} ch to {} Hz, {} ch; \
         a stream must keep one format",
        buf.sample_rate, buf.channels
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_say_what_came_and_what_to_do() {
        let e = audio(&Data::Int(3)).unwrap_err();
        assert_eq!(e.message, "expected audio, got an int");
        let buf = AudioBuffer::new(vec![0.0; 4], 44_100, 2);
        assert_eq!(
            require_rate(&buf, 16_000).unwrap_err().message,
            "expected audio at 16000 Hz, got 44100 Hz: put AudioResample (target_rate: 16000) before this node"
        );
        assert_eq!(
            require_channels(&buf, 1).unwrap_err().message,
            "expected mono audio, got 2 channels: put AudioChannels (channels: 1) before this node"
        );
        assert!(require_same_format(&buf, 44_100, 2).is_ok());
        assert_eq!(
            require_same_format(&buf, 48_000, 2).unwrap_err().message,
            "the stream changed format from 48000 Hz, 2 ch to 44100 Hz, 2 ch; a stream must keep one format"
        );
    }
}
