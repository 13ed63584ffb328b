//! `ToneGenerator`: a source of sine, white noise or silence, for tests, examples and
//! benchmarks.

use remotemedia_core::registry::ParamIssue;
use remotemedia_core::{Data, Node, NodeError, NodeType, Pull};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::stream::{ms_to_frames, StreamClock};

/// What the generator makes.
#[derive(Clone, Copy, Debug, Default, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Waveform {
    /// A sine of `frequency_hz`.
    #[default]
    Sine,
    /// Uniform white noise (deterministic for a given `seed`).
    Noise,
    /// Zeros.
    Silence,
}

/// Params of `ToneGenerator`.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ToneParams {
    /// `sine`, `noise` or `silence`.
    #[serde(default)]
    pub waveform: Waveform,
    /// Frequency of the sine, in Hz (below half the sample rate).
    #[serde(default = "default_frequency")]
    #[schemars(range(min = 0.0))]
    pub frequency_hz: f64,
    /// Peak amplitude, 0 to 1 (full scale).
    #[serde(default = "default_amplitude")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub amplitude: f64,
    /// Frames per second.
    #[serde(default = "default_rate")]
    #[schemars(range(min = 1, max = 768_000))]
    pub sample_rate: u32,
    /// Channels (every channel carries the same signal).
    #[serde(default = "default_channels")]
    #[schemars(range(min = 1, max = 8))]
    pub channels: u16,
    /// Length of the stream in milliseconds.
    #[serde(default = "default_duration")]
    #[schemars(range(min = 0.0))]
    pub duration_ms: f64,
    /// Length of each emitted chunk in milliseconds (the last may be shorter).
    #[serde(default = "default_chunk")]
    #[schemars(range(min = 0.1))]
    pub chunk_ms: f64,
    /// Seed of the noise generator.
    #[serde(default = "default_seed")]
    pub seed: u64,
}

fn default_frequency() -> f64 {
    440.0
}
fn default_amplitude() -> f64 {
    0.5
}
fn default_rate() -> u32 {
    16_000
}
fn default_channels() -> u16 {
    1
}
fn default_duration() -> f64 {
    1000.0
}
fn default_chunk() -> f64 {
    20.0
}
fn default_seed() -> u64 {
    1
}

/// Makes a finite stream of generated audio in chunks, each with its `pts_us`.
#[derive(Debug)]
pub struct ToneGenerator {
    params: ToneParams,
    total: u64,
    chunk: u64,
    clock: StreamClock,
    /// xorshift64* state of the noise.
    noise: u64,
}

impl ToneGenerator {
    fn sample(&mut self, frame: u64) -> f32 {
        let p = &self.params;
        match p.waveform {
            Waveform::Silence => 0.0,
            Waveform::Sine => {
                // The phase from the absolute frame index, in f64: no accumulated error.
                let t = frame as f64 / f64::from(p.sample_rate);
                (p.amplitude * (std::f64::consts::TAU * p.frequency_hz * t).sin()) as f32
            }
            Waveform::Noise => {
                self.noise ^= self.noise >> 12;
                self.noise ^= self.noise << 25;
                self.noise ^= self.noise >> 27;
                let r = self.noise.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11;
                let unit = r as f64 / (1u64 << 53) as f64; // [0, 1)
                (p.amplitude * (2.0 * unit - 1.0)) as f32
            }
        }
    }
}

impl Node for ToneGenerator {
    fn process(&mut self, _item: Data, _out: &mut Vec<Data>) -> Result<(), NodeError> {
        Err(NodeError::invalid_input(
            "ToneGenerator is a source: it takes no input",
        ))
    }

    fn pull(&mut self, max: usize, out: &mut Vec<Data>) -> Result<Pull, NodeError> {
        let channels = usize::from(self.params.channels);
        for _ in 0..max.max(1) {
            let start = self.clock.frames();
            if start >= self.total {
                return Ok(Pull::Done);
            }
            let frames = self.chunk.min(self.total - start);
            let mut samples = Vec::with_capacity(frames as usize * channels);
            for f in start..start + frames {
                let v = self.sample(f);
                samples.extend(std::iter::repeat_n(v, channels));
            }
            let buf = self
                .clock
                .stamp(samples, self.params.sample_rate, self.params.channels);
            out.push(Data::from(buf));
        }
        Ok(if self.clock.frames() >= self.total {
            Pull::Done
        } else {
            Pull::More
        })
    }
}

impl NodeType for ToneGenerator {
    const NAME: &'static str = "ToneGenerator";
    const DESCRIPTION: &'static str =
        "A source of a sine, white noise or silence of a given rate, channel count and length, \
         in chunks of `chunk_ms`.";
    const INPUT: &'static str = "nothing (a source)";
    const OUTPUT: &'static str = "audio chunks with their `pts_us`";
    const SOURCE: bool = true;
    type Params = ToneParams;

    fn check(written: &Map<String, Value>) -> Vec<ParamIssue> {
        let rate = written
            .get("sample_rate")
            .and_then(Value::as_f64)
            .unwrap_or(f64::from(default_rate()));
        let mut issues = Vec::new();
        if let Some(f) = written.get("frequency_hz").and_then(Value::as_f64) {
            if f >= rate / 2.0 {
                issues.push(ParamIssue::new(
                    "frequency_hz",
                    format!(
                        "`frequency_hz` must be below half the sample rate ({} Hz), found {f}",
                        rate / 2.0
                    ),
                ));
            }
        }
        issues
    }

    fn from_params(p: &ToneParams) -> Result<Self, NodeError> {
        let chunk = ms_to_frames(p.chunk_ms, p.sample_rate).max(1);
        Ok(ToneGenerator {
            total: ms_to_frames(p.duration_ms, p.sample_rate),
            chunk,
            clock: StreamClock::new(),
            noise: p.seed.max(1),
            params: p.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use remotemedia_core::executor::{run_pipeline, RunOptions};
    use remotemedia_core::manifest::{load_str, Format};

    fn run(params: &str) -> Vec<Data> {
        let r = crate::registry();
        let yaml = format!(
            "version: v1\nmetadata: {{ name: t }}\nnodes:\n  - {{ id: tone, node_type: ToneGenerator, params: {params} }}\n"
        );
        let p = load_str(&yaml, Format::Yaml, &r).unwrap_or_else(|e| panic!("{e}"));
        let res = run_pipeline(&p, &r, Vec::new(), &RunOptions::default()).unwrap();
        res.sink("tone").unwrap().to_vec()
    }

    #[test]
    fn chunks_are_stamped_and_the_sine_is_exact() {
        let items = run("{ sample_rate: 16000, duration_ms: 1010, chunk_ms: 20, frequency_hz: 1000, amplitude: 0.25 }");
        assert_eq!(items.len(), 51);
        let mut frame = 0u64;
        for (k, item) in items.iter().enumerate() {
            let Data::Audio(a) = item else {
                panic!("not audio")
            };
            assert_eq!(a.pts_us, 20_000 * k as i64);
            assert_eq!(a.frames(), if k < 50 { 320 } else { 160 });
            for &s in a.samples.iter() {
                let want = 0.25 * (std::f64::consts::TAU * 1000.0 * frame as f64 / 16_000.0).sin();
                assert!((f64::from(s) - want).abs() < 1e-7);
                frame += 1;
            }
        }
        assert_eq!(frame, 16_160);
    }

    #[test]
    fn noise_is_deterministic_and_bounded() {
        let a = run("{ waveform: noise, amplitude: 0.5, channels: 2, duration_ms: 100, seed: 7 }");
        let b = run("{ waveform: noise, amplitude: 0.5, channels: 2, duration_ms: 100, seed: 7 }");
        assert_eq!(a, b);
        let Data::Audio(first) = &a[0] else { panic!() };
        assert_eq!(first.channels, 2);
        assert!(first.samples.iter().all(|s| s.abs() <= 0.5));
        let mean: f32 = first.samples.iter().sum::<f32>() / first.samples.len() as f32;
        assert!(mean.abs() < 0.1);
    }

    #[test]
    fn bad_params_are_load_time_errors() {
        let r = crate::registry();
        let yaml = "version: v1\nmetadata: { name: t }\nnodes:\n  - { id: tone, node_type: ToneGenerator, params: { waveform: square, frequency_hz: 9000, channels: 9 } }\n";
        let e = load_str(yaml, Format::Yaml, &r).unwrap_err();
        let text: Vec<String> = e.0.iter().map(ToString::to_string).collect();
        assert_eq!(text.len(), 3, "{text:#?}");
        assert!(
            text[0].contains("waveform") && text[0].contains("`sine`, `noise`, `silence`"),
            "{text:#?}"
        );
        assert!(
            text.iter()
                .any(|t| t.contains("below half the sample rate (8000 Hz), found 9000")),
            "{text:#?}"
        );
        assert!(text.iter().any(|t| t.contains("channels")), "{text:#?}");
    }
}
