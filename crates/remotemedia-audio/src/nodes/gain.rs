//! `AudioGain`: multiplies every sample by a gain given in dB.

use remotemedia_core::{Data, Node, NodeError, NodeType};
use schemars::JsonSchema;
use serde::Deserialize;

use super::shared::from_db;
use crate::input;

/// Params of `AudioGain`.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GainParams {
    /// Gain in dB, -120 to 60 (0: unchanged, -6: about half the amplitude). Samples
    /// are not clipped: put AudioLimiter after a gain that can push them past full scale.
    #[schemars(range(min = -120.0, max = 60.0))]
    pub db: f64,
}

/// Scales audio by a fixed gain.
#[derive(Debug)]
pub struct AudioGain {
    factor: f32,
}

impl Node for AudioGain {
    fn process(&mut self, item: Data, out: &mut Vec<Data>) -> Result<(), NodeError> {
        input::audio(&item)?;
        let Data::Audio(buf) = item else {
            unreachable!("checked to be audio")
        };
        // In place when this node holds the only reference (the usual chain).
        let mut buf = std::sync::Arc::unwrap_or_clone(buf);
        for s in buf.samples_mut() {
            *s *= self.factor;
        }
        out.push(Data::from(buf));
        Ok(())
    }
}

impl NodeType for AudioGain {
    const NAME: &'static str = "AudioGain";
    const DESCRIPTION: &'static str = "Multiplies every sample by a gain given in dB.";
    const INPUT: &'static str = "audio";
    const OUTPUT: &'static str = "the same audio scaled, with the same `pts_us`";
    type Params = GainParams;

    fn from_params(p: &GainParams) -> Result<Self, NodeError> {
        Ok(AudioGain {
            factor: from_db(p.db) as f32,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::shared::testing::*;
    use super::*;
    use serde_json::json;

    #[test]
    fn gain_scales_and_keeps_time() {
        let mut g = node::<AudioGain>(json!({"db": -6.0206}));
        let items = chunks(&[1.0, -0.5, 0.25, 0.0], 8000, 2, &[1], 500);
        let out = run(&mut g, items);
        let (s, spans) = joined(&out);
        for (got, want) in s.iter().zip([0.5, -0.25, 0.125, 0.0]) {
            assert!((got - want).abs() < 1e-5, "{got} vs {want}");
        }
        assert_eq!(spans, [(500, 1), (625, 1)]);
    }

    #[test]
    fn bad_params_and_input() {
        assert_eq!(
            problems::<AudioGain>(json!({"db": 70})),
            ["db: `db` must be between -120 and 60, found 70"]
        );
        assert_eq!(
            problems::<AudioGain>(json!({})),
            ["db: missing required param `db`"]
        );
        let mut g = node::<AudioGain>(json!({"db": 0}));
        let e = g.process(Data::text("x"), &mut Vec::new()).unwrap_err();
        assert_eq!(e.message, "expected audio, got a text");
    }
}
