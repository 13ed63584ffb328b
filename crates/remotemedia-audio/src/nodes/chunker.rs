//! `AudioChunker` (and `AudioChunkerNode`, its form with `chunk_size`): cuts a stream
//! into chunks of a fixed length, optionally overlapping.

use remotemedia_core::registry::ParamIssue;
use remotemedia_core::{AudioBuffer, Data, Node, NodeError, NodeType};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::shared::Format;
use crate::input;
use crate::stream::{ms_to_frames, StreamClock};

/// Params of `AudioChunker`: exactly one of `chunk_ms` and `chunk_samples`.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChunkerParams {
    /// Chunk length in milliseconds (rounded down to whole frames). Not with
    /// `chunk_samples`.
    #[schemars(range(min = 0.01, max = 3_600_000.0))]
    pub chunk_ms: Option<f64>,
    /// Chunk length in frames (samples per channel). Not with `chunk_ms`.
    #[schemars(range(min = 1))]
    pub chunk_samples: Option<u64>,
    /// Frames (samples per channel) each chunk shares with the one before it, less
    /// than the chunk length: chunk `k` starts at frame
    /// `k * (length - overlap)`.
    #[serde(default)]
    pub overlap: u64,
    /// Zero-pads the last, partial chunk to the full length (else it is emitted
    /// shorter).
    #[serde(default)]
    pub pad_last: bool,
}

/// Params of `AudioChunkerNode`: those of `AudioChunker`, with `chunk_size` as another
/// name of `chunk_samples`. Exactly one of `chunk_ms`, `chunk_samples`, `chunk_size`.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChunkerNodeParams {
    /// Chunk length in frames (samples per channel), as `chunk_samples`.
    #[schemars(range(min = 1))]
    pub chunk_size: Option<u64>,
    /// Chunk length in milliseconds (rounded down to whole frames).
    #[schemars(range(min = 0.01, max = 3_600_000.0))]
    pub chunk_ms: Option<f64>,
    /// Chunk length in frames (samples per channel).
    #[schemars(range(min = 1))]
    pub chunk_samples: Option<u64>,
    /// Frames each chunk shares with the one before it, less than the chunk length
    ///: chunk `k` starts at frame `k * (length - overlap)`.
    #[serde(default)]
    pub overlap: u64,
    /// Zero-pads the last, partial chunk to the full length.
    #[serde(default)]
    pub pad_last: bool,
}

/// The chunk length as given.
#[derive(Clone, Copy, Debug)]
enum Length {
    Ms(f64),
    Frames(u64),
}

/// Cuts audio into chunks of a fixed length, each stamped with its own `pts_us`.
#[derive(Debug)]
pub struct AudioChunker {
    length: Length,
    overlap: u64,
    pad_last: bool,
    format: Format,
    /// Chunk length in frames, once the rate is known.
    size: usize,
    /// Frames not yet passed by a chunk's start (interleaved); `held[0]` is the first
    /// frame of the next chunk.
    held: Vec<f32>,
    /// Frames of `held` that the last chunk emitted already (its overlap).
    emitted: usize,
    /// Time of the next chunk's start (advanced by the hop).
    clock: StreamClock,
}

impl AudioChunker {
    fn new(length: Length, overlap: u64, pad_last: bool) -> Self {
        AudioChunker {
            length,
            overlap,
            pad_last,
            format: Format::default(),
            size: 0,
            held: Vec::new(),
            emitted: 0,
            clock: StreamClock::new(),
        }
    }

    fn chunk(&mut self, frames: usize, rate: u32, channels: u16) -> Data {
        let ch = usize::from(channels);
        let mut samples = self.held[..frames * ch].to_vec();
        if self.pad_last {
            samples.resize(self.size * ch, 0.0);
        }
        let pts = self.clock.next_pts(rate);
        Data::from(AudioBuffer::new(samples, rate, channels).with_pts(pts))
    }
}

impl Node for AudioChunker {
    fn process(&mut self, item: Data, out: &mut Vec<Data>) -> Result<(), NodeError> {
        let buf = input::audio(&item)?;
        let (rate, channels, _) = self.format.check(buf)?;
        // Set up at the first item (again after a failed set-up: the size stays 0).
        if self.size == 0 {
            self.clock.start_at(buf);
            self.size = match self.length {
                Length::Frames(n) => n as usize,
                Length::Ms(ms) => ms_to_frames(ms, rate) as usize,
            };
            if let (0, Length::Ms(ms)) = (self.size, self.length) {
                return Err(NodeError::invalid_input(format!(
                    "`chunk_ms` ({ms}) is shorter than one frame at {rate} Hz"
                )));
            }
        }
        if self.overlap as usize >= self.size {
            return Err(NodeError::invalid_input(format!(
                "`overlap` ({}) must be less than the chunk length ({} frames at {rate} Hz)",
                self.overlap, self.size
            )));
        }
        let ch = usize::from(channels);
        self.held.extend_from_slice(&buf.samples);
        let hop = self.size - self.overlap as usize;
        while self.held.len() / ch >= self.size {
            let chunk = self.chunk(self.size, rate, channels);
            out.push(chunk);
            self.held.drain(..hop * ch);
            self.clock.skip(hop as u64);
            self.emitted = self.size - hop;
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut Vec<Data>) -> Result<(), NodeError> {
        let Some((rate, channels)) = self.format.get() else {
            return Ok(());
        };
        let frames = self.held.len() / usize::from(channels);
        // A last chunk only when it carries frames no chunk has carried yet.
        if frames > self.emitted {
            let chunk = self.chunk(frames, rate, channels);
            out.push(chunk);
        }
        self.held.clear();
        Ok(())
    }
}

/// The length issues of chunker params as written: exactly one length, overlap
/// shorter than a chunk given in frames.
fn check_lengths(written: &Map<String, Value>, names: &[&str]) -> Vec<ParamIssue> {
    let given: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| written.get(*n).is_some_and(|v| !v.is_null()))
        .collect();
    let list = names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(if names.len() == 2 { " or " } else { ", " });
    let mut issues = Vec::new();
    match given.len() {
        0 => issues.push(ParamIssue::new(
            "",
            format!("give the chunk length: {list}"),
        )),
        1 => {}
        _ => issues.push(ParamIssue::new(
            "",
            format!(
                "give only one chunk length, found {}",
                given
                    .iter()
                    .map(|n| format!("`{n}`"))
                    .collect::<Vec<_>>()
                    .join(" and ")
            ),
        )),
    }
    let frames = names
        .iter()
        .filter(|n| **n != "chunk_ms")
        .find_map(|n| written.get(*n).and_then(Value::as_u64));
    if let (Some(size), Some(overlap)) = (frames, written.get("overlap").and_then(Value::as_u64)) {
        if overlap >= size {
            issues.push(ParamIssue::new(
                "overlap",
                format!("`overlap` ({overlap}) must be less than the chunk length ({size})"),
            ));
        }
    }
    issues
}

fn length(ms: Option<f64>, frames: Option<u64>) -> Result<Length, NodeError> {
    match (ms, frames) {
        (Some(ms), None) => Ok(Length::Ms(ms)),
        (None, Some(n)) => Ok(Length::Frames(n)),
        _ => Err(NodeError::invalid_input("give exactly one chunk length")),
    }
}

impl NodeType for AudioChunker {
    const NAME: &'static str = "AudioChunker";
    const DESCRIPTION: &'static str =
        "Cuts audio into chunks of `chunk_ms` or `chunk_samples` frames, optionally overlapping \
         by `overlap` frames; the last chunk is emitted short or zero-padded (`pad_last`).";
    const INPUT: &'static str = "audio of one format, in chunks of any length";
    const OUTPUT: &'static str = "audio chunks of the set length, each with its own `pts_us`";
    type Params = ChunkerParams;

    fn check(written: &Map<String, Value>) -> Vec<ParamIssue> {
        check_lengths(written, &["chunk_ms", "chunk_samples"])
    }

    fn from_params(p: &ChunkerParams) -> Result<Self, NodeError> {
        Ok(AudioChunker::new(
            length(p.chunk_ms, p.chunk_samples)?,
            p.overlap,
            p.pad_last,
        ))
    }
}

/// `AudioChunker` under the name other pipelines use, with `chunk_size` accepted.
#[derive(Debug)]
pub struct AudioChunkerNode(AudioChunker);

impl Node for AudioChunkerNode {
    fn process(&mut self, item: Data, out: &mut Vec<Data>) -> Result<(), NodeError> {
        self.0.process(item, out)
    }

    fn finish(&mut self, out: &mut Vec<Data>) -> Result<(), NodeError> {
        self.0.finish(out)
    }
}

impl NodeType for AudioChunkerNode {
    const NAME: &'static str = "AudioChunkerNode";
    const DESCRIPTION: &'static str =
        "AudioChunker, also taking `chunk_size` (frames) as the chunk length.";
    const INPUT: &'static str = AudioChunker::INPUT;
    const OUTPUT: &'static str = AudioChunker::OUTPUT;
    type Params = ChunkerNodeParams;

    fn check(written: &Map<String, Value>) -> Vec<ParamIssue> {
        check_lengths(written, &["chunk_size", "chunk_ms", "chunk_samples"])
    }

    fn from_params(p: &ChunkerNodeParams) -> Result<Self, NodeError> {
        let frames = match (p.chunk_size, p.chunk_samples) {
            (Some(_), Some(_)) => {
                return Err(NodeError::invalid_input("give exactly one chunk length"))
            }
            (a, b) => a.or(b),
        };
        Ok(AudioChunkerNode(AudioChunker::new(
            length(p.chunk_ms, frames)?,
            p.overlap,
            p.pad_last,
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::super::shared::testing::*;
    use super::*;
    use serde_json::json;

    fn ramp(frames: usize, channels: u16) -> Vec<f32> {
        (0..frames * usize::from(channels))
            .map(|k| k as f32)
            .collect()
    }

    #[test]
    fn chunks_have_their_length_and_time_whatever_the_input_chunks() {
        let input = ramp(1000, 2);
        let p = json!({"chunk_samples": 160});
        for sizes in [&[1000][..], &[1, 7, 300], &[160]] {
            let out = run(
                &mut node::<AudioChunker>(p.clone()),
                chunks(&input, 16_000, 2, sizes, 40),
            );
            let (s, spans) = joined(&out);
            assert_eq!(s, input);
            let want: Vec<(i64, usize)> = (0..7)
                .map(|k| (40 + 10_000 * k, if k < 6 { 160 } else { 40 }))
                .collect();
            assert_eq!(spans, want);
        }
    }

    #[test]
    fn overlap_and_padding() {
        let input = ramp(11, 1);
        let p = json!({"chunk_samples": 4, "overlap": 1, "pad_last": true});
        let out = run(
            &mut node::<AudioChunker>(p),
            chunks(&input, 1000, 1, &[3], 0),
        );
        let (s, spans) = joined(&out);
        // Starts 0, 3, 6 full; 9 is partial (frames 9 and 10), padded.
        assert_eq!(
            s,
            [0., 1., 2., 3., 3., 4., 5., 6., 6., 7., 8., 9., 9., 10., 0., 0.]
        );
        assert_eq!(spans, [(0, 4), (3000, 4), (6000, 4), (9000, 4)]);
        // Nothing new after the last full chunk: no extra chunk.
        let out = run(
            &mut node::<AudioChunker>(json!({"chunk_samples": 4, "overlap": 2})),
            chunks(&ramp(8, 1), 1000, 1, &[5], 0),
        );
        assert_eq!(joined(&out).1, [(0, 4), (2000, 4), (4000, 4)]);
        // In ms: 10 ms at 8 kHz are 80 frames.
        let out = run(
            &mut node::<AudioChunker>(json!({"chunk_ms": 10})),
            chunks(&ramp(200, 1), 8000, 1, &[33], 0),
        );
        assert_eq!(joined(&out).1, [(0, 80), (10_000, 80), (20_000, 40)]);
    }

    #[test]
    fn the_alias_takes_chunk_size() {
        let r = crate::registry();
        assert!(r.get("AudioChunkerNode").is_some());
        let out = run(
            &mut node::<AudioChunkerNode>(json!({"chunk_size": 3})),
            chunks(&ramp(7, 1), 1000, 1, &[7], 0),
        );
        assert_eq!(joined(&out).1, [(0, 3), (3000, 3), (6000, 1)]);
        assert_eq!(
            problems::<AudioChunkerNode>(json!({"chunk_size": 3, "chunk_samples": 3})),
            [": give only one chunk length, found `chunk_size` and `chunk_samples`"]
        );
    }

    #[test]
    fn bad_params_and_input() {
        assert_eq!(
            problems::<AudioChunker>(json!({})),
            [": give the chunk length: `chunk_ms` or `chunk_samples`"]
        );
        assert_eq!(
            problems::<AudioChunker>(json!({"chunk_ms": 20, "chunk_samples": 320})),
            [": give only one chunk length, found `chunk_ms` and `chunk_samples`"]
        );
        assert_eq!(
            problems::<AudioChunker>(json!({"chunk_samples": 320, "overlap": 320})),
            ["overlap: `overlap` (320) must be less than the chunk length (320)"]
        );
        assert_eq!(
            problems::<AudioChunker>(json!({"chunk_size": 320})),
            ["chunk_size: unknown param `chunk_size`; AudioChunker accepts `chunk_ms`, `chunk_samples`, `overlap`, `pad_last`", ": give the chunk length: `chunk_ms` or `chunk_samples`"]
        );
        let mut c = node::<AudioChunker>(json!({"chunk_ms": 10, "overlap": 100}));
        let e = c
            .process(
                chunks(&[0.0; 4], 8000, 1, &[4], 0).remove(0),
                &mut Vec::new(),
            )
            .unwrap_err();
        assert_eq!(
            e.message,
            "`overlap` (100) must be less than the chunk length (80 frames at 8000 Hz)"
        );
        // And again for the next item, rather than a chunking with a broken overlap.
        let e = c
            .process(
                chunks(&[0.0; 4], 8000, 1, &[4], 0).remove(0),
                &mut Vec::new(),
            )
            .unwrap_err();
        assert!(e.message.starts_with("`overlap` (100)"), "{}", e.message);
        let e = c.process(Data::Float(1.0), &mut Vec::new()).unwrap_err();
        assert_eq!(e.message, "expected audio, got a float");
        let mut c = node::<AudioChunker>(json!({"chunk_ms": 0.05}));
        let e = c
            .process(
                chunks(&[0.0; 4], 8000, 1, &[4], 0).remove(0),
                &mut Vec::new(),
            )
            .unwrap_err();
        assert_eq!(
            e.message,
            "`chunk_ms` (0.05) is shorter than one frame at 8000 Hz"
        );
    }
}
