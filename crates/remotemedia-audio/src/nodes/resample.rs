//! `AudioResample` (also `AudioResampleNode`): converts a stream of audio to another
//! sample rate with [`crate::resample::Resampler`]; `FastResampleNode` is the same node
//! under its older name and params (`source_rate`, `channels`, `quality` in any letter
//! case).
//!
//! The input rate and channel count come from the first item, and the whole stream must
//! keep them. Output time lines up with input time: the first output starts at the first
//! input's `pts_us`, later ones follow from the frames emitted (see
//! [`crate::stream::StreamClock`]), and the end of the stream flushes the filter's tail,
//! so the output is `ceil(frames * target / source)` frames long. Audio already at the
//! target rate passes through unchanged. Measured quality per level: see
//! [`crate::resample`].

use remotemedia_core::registry::{quote_list, ParamIssue};
use remotemedia_core::{AudioBuffer, Data, Node, NodeError, NodeType};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::input;
use crate::resample::{Quality, Resampler};
use crate::stream::StreamClock;

/// Params of `AudioResample`.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ResampleParams {
    /// Output sample rate in Hz.
    #[schemars(range(min = 1, max = 768_000))]
    pub target_rate: u32,
    /// Filter quality and delay (audio held back after each 20 ms chunk, 48 kHz or
    /// 44.1 kHz to 16 kHz): `low` (under 2 ms; the fastest for integer ratios such as 48 → 16 kHz; flat to 0.1 dB up to 0.7 ×
    /// the new Nyquist frequency, 70 dB stopband, ≥ 75 dB SNR), `medium` (8–20 ms),
    /// `high` (5 ms; flat to 0.1 dB up to 0.9 × the new Nyquist frequency, ≥ 90 dB
    /// stopband and SNR) or `best` (20–190 ms; longest filter, double precision).
    #[serde(default)]
    pub quality: Quality,
}

/// Params of `FastResampleNode`, the older name of `AudioResample`.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FastResampleParams {
    /// Output sample rate in Hz.
    #[schemars(range(min = 1, max = 768_000))]
    pub target_rate: u32,
    /// Sample rate the input must have, in Hz (default: whatever the first item has).
    #[schemars(range(min = 1, max = 768_000))]
    pub source_rate: Option<u32>,
    /// Channels the input must have (default: whatever the first item has).
    #[schemars(range(min = 1, max = 8))]
    pub channels: Option<u16>,
    /// Filter quality: `low`, `medium`, `high` (default) or `best`, in any letter case.
    pub quality: Option<String>,
}

/// The stream's format and the resampler for it, from the first item on.
#[derive(Debug)]
struct Stream {
    rate: u32,
    channels: u16,
    /// `None` when the input is already at the target rate.
    resampler: Option<Resampler>,
    clock: StreamClock,
}

/// Resamples a stream of audio to `target_rate` (see the module docs).
#[derive(Debug)]
pub struct AudioResample {
    target: u32,
    quality: Quality,
    /// Rate the input must have (`FastResampleNode`'s `source_rate`).
    source_rate: Option<u32>,
    /// Channels the input must have (`FastResampleNode`'s `channels`).
    channels: Option<u16>,
    stream: Option<Stream>,
}

impl AudioResample {
    /// A node resampling to `target` Hz at `quality`.
    pub fn new(target: u32, quality: Quality) -> Self {
        AudioResample {
            target,
            quality,
            source_rate: None,
            channels: None,
            stream: None,
        }
    }

    /// The stream state, made from the first item (checked against `source_rate` and
    /// `channels` when given), or checked against it for later items.
    fn stream_for(&mut self, buf: &AudioBuffer) -> Result<&mut Stream, NodeError> {
        if let Some(s) = &self.stream {
            input::require_same_format(buf, s.rate, s.channels)?;
        } else {
            if let Some(rate) = self.source_rate {
                if buf.sample_rate != rate {
                    return Err(NodeError::invalid_input(format!(
                        "source_rate is {rate} Hz but the input is at {} Hz: \
                         set source_rate to {} or leave it out",
                        buf.sample_rate, buf.sample_rate
                    )));
                }
            }
            if let Some(channels) = self.channels {
                if buf.channels != channels {
                    return Err(NodeError::invalid_input(format!(
                        "channels is {channels} but the input has {}: \
                         set channels to {} or leave it out",
                        buf.channels, buf.channels
                    )));
                }
            }
            let resampler = if buf.sample_rate == self.target {
                None
            } else {
                let r = Resampler::new(buf.sample_rate, self.target, buf.channels, self.quality)
                    .map_err(|e| NodeError::invalid_input(e.to_string()))?;
                Some(r)
            };
            let mut clock = StreamClock::new();
            clock.start_at(buf);
            self.stream = Some(Stream {
                rate: buf.sample_rate,
                channels: buf.channels,
                resampler,
                clock,
            });
        }
        Ok(self.stream.as_mut().expect("the stream was just set"))
    }
}

impl Node for AudioResample {
    fn process(&mut self, item: Data, out: &mut Vec<Data>) -> Result<(), NodeError> {
        let buf = input::audio(&item)?;
        let target = self.target;
        let s = self.stream_for(buf)?;
        let Some(r) = &mut s.resampler else {
            out.push(item);
            return Ok(());
        };
        let ratio_frames = r.output_len(buf.frames() as u64) as usize + r.block_in();
        let mut samples = Vec::with_capacity(ratio_frames * usize::from(s.channels));
        r.process(&buf.samples, &mut samples);
        if !samples.is_empty() {
            out.push(Data::from(s.clock.stamp(samples, target, s.channels)));
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut Vec<Data>) -> Result<(), NodeError> {
        let Some(mut s) = self.stream.take() else {
            return Ok(());
        };
        if let Some(r) = &mut s.resampler {
            let mut samples = Vec::new();
            r.flush(&mut samples);
            if !samples.is_empty() {
                out.push(Data::from(s.clock.stamp(samples, self.target, s.channels)));
            }
        }
        Ok(())
    }
}

impl NodeType for AudioResample {
    const NAME: &'static str = "AudioResample";
    const ALIASES: &'static [&'static str] = &["AudioResampleNode"];
    const DESCRIPTION: &'static str =
        "Converts audio to `target_rate` (FFT-based, latency compensated: output time lines up \
         with input time and the end of the stream flushes the filter's tail). Audio already at \
         the target rate passes through unchanged. `FastResampleNode` is the same node with \
         `source_rate`, `channels` and `quality` in any letter case.";
    const INPUT: &'static str = "audio, 1 to 8 channels, one rate and channel count per stream";
    const OUTPUT: &'static str = "the audio at `target_rate`, same channels, with its `pts_us`";
    type Params = ResampleParams;

    fn from_params(p: &ResampleParams) -> Result<Self, NodeError> {
        Ok(AudioResample::new(p.target_rate, p.quality))
    }
}

/// `AudioResample` under its older name, with the params that name had.
#[derive(Debug)]
pub struct FastResampleNode(AudioResample);

impl Node for FastResampleNode {
    fn process(&mut self, item: Data, out: &mut Vec<Data>) -> Result<(), NodeError> {
        self.0.process(item, out)
    }

    fn finish(&mut self, out: &mut Vec<Data>) -> Result<(), NodeError> {
        self.0.finish(out)
    }
}

/// The issue of a `quality` written in a way no level is called.
fn quality_issue(written: &Map<String, Value>) -> Option<ParamIssue> {
    let s = written.get("quality")?.as_str()?;
    if Quality::from_name_ignoring_case(s).is_some() {
        return None;
    }
    let names: Vec<&str> = Quality::ALL.iter().map(|q| q.name()).collect();
    Some(ParamIssue::new(
        "quality",
        format!(
            "invalid value \"{s}\"; expected one of {} (in any letter case)",
            quote_list(&names)
        ),
    ))
}

impl NodeType for FastResampleNode {
    const NAME: &'static str = "FastResampleNode";
    const DESCRIPTION: &'static str =
        "The older name of AudioResample: the same node, which also takes `source_rate` and \
         `channels` (checked against the input) and `quality` in any letter case.";
    const INPUT: &'static str =
        "audio at `source_rate` with `channels` channels (when given), one format per stream";
    const OUTPUT: &'static str = "the audio at `target_rate`, same channels, with its `pts_us`";
    type Params = FastResampleParams;

    fn check(written: &Map<String, Value>) -> Vec<ParamIssue> {
        quality_issue(written).into_iter().collect()
    }

    fn from_params(p: &FastResampleParams) -> Result<Self, NodeError> {
        let quality = match &p.quality {
            None => Quality::default(),
            Some(s) => Quality::from_name_ignoring_case(s).ok_or_else(|| {
                NodeError::new(
                    remotemedia_core::ErrorKind::Config,
                    format!("unknown quality `{s}`"),
                )
            })?,
        };
        let mut node = AudioResample::new(p.target_rate, quality);
        node.source_rate = p.source_rate;
        node.channels = p.channels;
        Ok(FastResampleNode(node))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use remotemedia_core::Params;

    fn audio(frames: usize, rate: u32, channels: u16, pts: i64) -> Data {
        let samples: Vec<f32> = (0..frames * usize::from(channels))
            .map(|i| (i as f32 * 0.01).sin() * 0.5)
            .collect();
        Data::from(AudioBuffer::new(samples, rate, channels).with_pts(pts))
    }

    fn problems(node_type: &str, params: Value) -> Vec<String> {
        let registry = crate::registry();
        let params: Params = serde_json::from_value(params).unwrap();
        registry
            .get(node_type)
            .unwrap()
            .validate(&params)
            .into_iter()
            .map(|i| format!("{}: {}", i.path, i.message))
            .collect()
    }

    #[test]
    fn params_are_checked_at_load_time() {
        use serde_json::json;
        assert!(problems("AudioResample", json!({"target_rate": 16000})).is_empty());
        assert!(problems(
            "AudioResampleNode",
            json!({"target_rate": 16000, "quality": "best"})
        )
        .is_empty());
        let p = problems(
            "AudioResample",
            json!({"target_rate": 16000, "quality": "ultra"}),
        );
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(
            p[0].starts_with("quality: ") && p[0].contains("`low`, `medium`, `high`, `best`"),
            "{p:?}"
        );
        // The canonical name keeps the names as they are written.
        assert_eq!(
            problems(
                "AudioResample",
                json!({"target_rate": 16000, "quality": "High"})
            )
            .len(),
            1
        );
        assert_eq!(
            problems("AudioResample", json!({"target_rate": 0})),
            ["target_rate: `target_rate` must be between 1 and 768000, found 0"]
        );
        assert_eq!(
            problems("AudioResample", json!({})),
            ["target_rate: missing required param `target_rate`"]
        );
        let p = problems(
            "AudioResample",
            json!({"target_rate": 16000, "source_rate": 48000}),
        );
        assert!(
            p[0].starts_with("source_rate: unknown param `source_rate`"),
            "{p:?}"
        );

        assert!(problems(
            "FastResampleNode",
            json!({"target_rate": 16000, "source_rate": 48000, "channels": 2, "quality": "High"})
        )
        .is_empty());
        assert_eq!(
            problems("FastResampleNode", json!({"target_rate": 16000, "quality": "ultra"})),
            ["quality: invalid value \"ultra\"; expected one of `low`, `medium`, `high`, `best` (in any letter case)"]
        );
        assert_eq!(
            problems(
                "FastResampleNode",
                json!({"target_rate": 16000, "channels": 9})
            ),
            ["channels: `channels` must be between 1 and 8, found 9"]
        );
    }

    #[test]
    fn both_names_are_documented_with_their_params() {
        let registry = crate::registry();
        let doc = registry.get("AudioResampleNode").unwrap().doc();
        assert_eq!(doc.node_type, "AudioResample");
        let names: Vec<&str> = doc.params.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["target_rate", "quality"]);
        let fast = registry.get("FastResampleNode").unwrap().doc();
        assert_eq!(fast.node_type, "FastResampleNode");
        let names: Vec<&str> = fast.params.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["target_rate", "source_rate", "channels", "quality"]);
    }

    #[test]
    fn same_rate_passes_through_and_other_rates_are_stamped() {
        let mut node = AudioResample::new(16_000, Quality::High);
        let mut out = Vec::new();
        let item = audio(320, 16_000, 1, 5_000);
        node.process(item.clone(), &mut out).unwrap();
        node.finish(&mut out).unwrap();
        assert_eq!(out, [item]);

        let mut node = AudioResample::new(16_000, Quality::Medium);
        let mut out = Vec::new();
        for k in 0..50 {
            node.process(audio(960, 48_000, 2, 1_000 + 20_000 * k), &mut out)
                .unwrap();
        }
        node.finish(&mut out).unwrap();
        let mut next = 1_000;
        let mut frames = 0;
        for item in &out {
            let Data::Audio(a) = item else {
                panic!("not audio")
            };
            assert_eq!((a.sample_rate, a.channels), (16_000, 2));
            assert_eq!(a.pts_us, next);
            next = a.end_pts_us();
            frames += a.frames();
        }
        assert_eq!(frames, 50 * 320);
        assert_eq!(next, 1_000 + 1_000_000);
    }

    #[test]
    fn wrong_input_is_a_node_error() {
        let mut node = AudioResample::new(16_000, Quality::High);
        let mut out = Vec::new();
        assert_eq!(
            node.process(Data::Int(1), &mut out).unwrap_err().message,
            "expected audio, got an int"
        );
        node.process(audio(480, 48_000, 1, 0), &mut out).unwrap();
        assert_eq!(
            node.process(audio(441, 44_100, 1, 10_000), &mut out).unwrap_err().message,
            "the stream changed format from 48000 Hz, 1 ch to 44100 Hz, 1 ch; a stream must keep one format"
        );
        let mut node = AudioResample::new(16_000, Quality::High);
        assert_eq!(
            node.process(audio(10, 48_000, 9, 0), &mut out)
                .unwrap_err()
                .message,
            "expected 1 to 8 channels, got 9"
        );
    }

    #[test]
    fn fast_resample_node_checks_source_rate_and_channels() {
        let params = |v: Value| serde_json::from_value::<FastResampleParams>(v).unwrap();
        let mut node = FastResampleNode::from_params(&params(
            serde_json::json!({"target_rate": 16000, "source_rate": 44100, "quality": "HIGH"}),
        ))
        .unwrap();
        assert_eq!(node.0.quality, Quality::High);
        let mut out = Vec::new();
        assert_eq!(
            node.process(audio(480, 48_000, 1, 0), &mut out).unwrap_err().message,
            "source_rate is 44100 Hz but the input is at 48000 Hz: set source_rate to 48000 or leave it out"
        );
        node.process(audio(441, 44_100, 1, 0), &mut out).unwrap();
        let mut node = FastResampleNode::from_params(&params(
            serde_json::json!({"target_rate": 16000, "channels": 1}),
        ))
        .unwrap();
        assert_eq!(
            node.process(audio(480, 48_000, 2, 0), &mut out)
                .unwrap_err()
                .message,
            "channels is 1 but the input has 2: set channels to 2 or leave it out"
        );
    }
}
