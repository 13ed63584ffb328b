//! `AudioLimiter`: a peak limiter that keeps every sample at or below a threshold.

use std::collections::VecDeque;

use remotemedia_core::{Data, Node, NodeError, NodeType};
use schemars::JsonSchema;
use serde::Deserialize;

use super::shared::{from_db, Format};
use crate::input;
use crate::stream::{ms_to_frames, StreamClock};

/// Params of `AudioLimiter`.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LimiterParams {
    /// Highest output level in dBFS, -60 to 0: no output sample's magnitude
    /// exceeds it.
    #[serde(default = "default_threshold")]
    #[schemars(range(min = -60.0, max = 0.0))]
    pub threshold_db: f64,
    /// Time for the gain to recover (to about 63%) after a peak, in ms, 1 to 5000
    ///.
    #[serde(default = "default_release")]
    #[schemars(range(min = 1.0, max = 5000.0))]
    pub release_ms: f64,
    /// Look-ahead in ms, 0 to 20. With look-ahead the gain ramps down over
    /// that time before a peak instead of dropping at it; the output is delayed by as
    /// much (its `pts_us` stays that of the input frames it carries, and `finish`
    /// emits the last frames).
    #[serde(default)]
    #[schemars(range(min = 0.0, max = 20.0))]
    pub lookahead_ms: f64,
}

fn default_threshold() -> f64 {
    -1.0
}
fn default_release() -> f64 {
    50.0
}

/// A linked (one gain for all channels) peak limiter with instant attack, optional
/// look-ahead and exponential release. Chunking does not change its output.
#[derive(Debug)]
pub struct AudioLimiter {
    params: LimiterParams,
    threshold: f64,
    format: Format,
    clock: StreamClock,
    /// Look-ahead in frames, once the rate is known.
    lookahead: usize,
    /// Release coefficient per frame.
    release: f64,
    /// Current gain.
    gain: f64,
    /// Frames held for the look-ahead (interleaved) and the gain each one needs.
    held: VecDeque<f32>,
    needed: VecDeque<f64>,
}

impl AudioLimiter {
    /// Emits the oldest held frame into `samples`.
    fn emit_one(&mut self, channels: usize, samples: &mut Vec<f32>) {
        // The lowest gain that reaches each upcoming peak's need by a linear ramp over
        // the look-ahead: a peak `d` frames ahead allows `need + (1 - need) d / (L + 1)`.
        let l = self.lookahead as f64 + 1.0;
        let mut target = 1.0f64;
        for (d, &need) in self.needed.iter().enumerate() {
            target = target.min(need + (1.0 - need) * d as f64 / l);
        }
        self.gain = if target < self.gain {
            target
        } else {
            target + (self.gain - target) * self.release
        };
        let thr = self.threshold;
        for _ in 0..channels {
            let s = self.held.pop_front().unwrap_or(0.0);
            samples.push((f64::from(s) * self.gain).clamp(-thr, thr) as f32);
        }
        self.needed.pop_front();
    }
}

impl Node for AudioLimiter {
    fn process(&mut self, item: Data, out: &mut Vec<Data>) -> Result<(), NodeError> {
        let buf = input::audio(&item)?;
        let (rate, channels, first) = self.format.check(buf)?;
        if first {
            self.clock.start_at(buf);
            self.lookahead = ms_to_frames(self.params.lookahead_ms, rate) as usize;
            let release_frames = self.params.release_ms * f64::from(rate) / 1000.0;
            self.release = (-1.0 / release_frames.max(1.0)).exp();
        }
        let ch = usize::from(channels);
        let mut samples = Vec::with_capacity(buf.samples.len());
        for frame in buf.samples.chunks_exact(ch) {
            let peak = frame.iter().fold(0.0f64, |m, &s| m.max(f64::from(s).abs()));
            self.needed.push_back(if peak > self.threshold {
                self.threshold / peak
            } else {
                1.0
            });
            self.held.extend(frame.iter().copied());
            if self.needed.len() > self.lookahead {
                self.emit_one(ch, &mut samples);
            }
        }
        if !samples.is_empty() {
            out.push(Data::from(self.clock.stamp(samples, rate, channels)));
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut Vec<Data>) -> Result<(), NodeError> {
        let Some((rate, channels)) = self.format.get() else {
            return Ok(());
        };
        let ch = usize::from(channels);
        let mut samples = Vec::with_capacity(self.held.len());
        while !self.needed.is_empty() {
            self.emit_one(ch, &mut samples);
        }
        if !samples.is_empty() {
            out.push(Data::from(self.clock.stamp(samples, rate, channels)));
        }
        Ok(())
    }
}

impl NodeType for AudioLimiter {
    const NAME: &'static str = "AudioLimiter";
    const DESCRIPTION: &'static str =
        "Clipping protection: a peak limiter whose output never exceeds `threshold_db`, with \
         instant attack (or a ramp over `lookahead_ms`) and exponential release.";
    const INPUT: &'static str = "audio of one format";
    const OUTPUT: &'static str =
        "the limited audio, stamped from the input's time (delayed by the look-ahead, if any)";
    type Params = LimiterParams;

    fn from_params(p: &LimiterParams) -> Result<Self, NodeError> {
        Ok(AudioLimiter {
            threshold: f64::from(from_db(p.threshold_db) as f32),
            params: p.clone(),
            format: Format::default(),
            clock: StreamClock::new(),
            lookahead: 0,
            release: 0.0,
            gain: 1.0,
            held: VecDeque::new(),
            needed: VecDeque::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::shared::testing::*;
    use super::*;
    use serde_json::json;

    /// A sine that swells from 0.2 to 1.6 and back, stereo, 48 kHz.
    fn swell() -> Vec<f32> {
        let mut s = sine(440.0, 1.0, 48_000, 2, 24_000);
        let n = s.len();
        for (k, v) in s.iter_mut().enumerate() {
            let x = k as f32 / n as f32;
            *v *= 0.2 + 1.4 * (std::f32::consts::PI * x).sin();
        }
        s
    }

    #[test]
    fn output_never_exceeds_the_threshold_and_quiet_parts_pass() {
        for lookahead in [0.0, 5.0] {
            let mut l =
                node::<AudioLimiter>(json!({"threshold_db": -3.0, "lookahead_ms": lookahead}));
            let input = swell();
            let out = run(&mut l, chunks(&input, 48_000, 2, &[480], 0));
            let (s, _) = joined(&out);
            assert_eq!(s.len(), input.len());
            let thr = from_db(-3.0) as f32;
            let peak = s.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            assert!(peak <= thr, "peak {peak} above {thr}");
            assert!(
                peak > thr * 0.99,
                "the limiter should reach the threshold: {peak}"
            );
            // The first 10 ms are quiet (below 0.25): untouched.
            for k in 0..960 {
                assert_eq!(s[k], input[k]);
            }
            assert_continuous(&out);
        }
    }

    #[test]
    fn chunking_does_not_change_the_output() {
        let input = swell();
        for lookahead in [0.0, 2.0] {
            let p = json!({"threshold_db": -6.0, "release_ms": 20, "lookahead_ms": lookahead});
            let whole = run(
                &mut node::<AudioLimiter>(p.clone()),
                chunks(&input, 48_000, 2, &[24_000], 1_000),
            );
            let parts = run(
                &mut node::<AudioLimiter>(p),
                chunks(&input, 48_000, 2, &[7, 333, 1000], 1_000),
            );
            let (a, spans_a) = joined(&whole);
            let (b, spans_b) = joined(&parts);
            assert_eq!(a, b);
            assert_eq!(spans_a[0].0, 1_000);
            assert_eq!(spans_b[0].0, 1_000);
            assert_continuous(&parts);
            assert_eq!(a.len(), input.len());
        }
    }

    #[test]
    fn bad_params_and_input() {
        assert_eq!(
            problems::<AudioLimiter>(json!({"threshold_db": 1, "release": 5})),
            [
                "threshold_db: `threshold_db` must be between -60 and 0, found 1",
                "release: unknown param `release`; did you mean `release_ms`?"
            ]
        );
        let mut l = node::<AudioLimiter>(json!({}));
        assert_eq!(
            l.process(Data::Null, &mut Vec::new()).unwrap_err().message,
            "expected audio, got a null"
        );
    }
}
