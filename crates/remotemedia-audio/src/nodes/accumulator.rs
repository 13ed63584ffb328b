//! `AudioAccumulator` (alias `AudioBufferAccumulatorNode`): joins small chunks into
//! buffers between a minimum and a maximum length.

use remotemedia_core::registry::ParamIssue;
use remotemedia_core::{Data, Node, NodeError, NodeType};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::shared::Format;
use crate::input;
use crate::stream::{ms_to_frames, StreamClock};

/// Params of `AudioAccumulator`.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AccumulatorParams {
    /// A buffer is emitted as soon as it holds at least this many milliseconds
    /// (at most `max_ms`).
    #[serde(default = "default_min")]
    #[schemars(range(min = 0.01))]
    pub min_ms: f64,
    /// No buffer is longer than this: input that would make it longer
    /// is split.
    #[serde(default = "default_max")]
    #[schemars(range(min = 0.01))]
    pub max_ms: f64,
}

fn default_min() -> f64 {
    1000.0
}
fn default_max() -> f64 {
    30_000.0
}

/// Joins audio into buffers of `min_ms` to `max_ms`; `finish` emits the rest.
#[derive(Debug)]
pub struct AudioAccumulator {
    params: AccumulatorParams,
    format: Format,
    clock: StreamClock,
    min: usize,
    max: usize,
    held: Vec<f32>,
}

impl Node for AudioAccumulator {
    fn process(&mut self, item: Data, out: &mut Vec<Data>) -> Result<(), NodeError> {
        let buf = input::audio(&item)?;
        let (rate, channels, first) = self.format.check(buf)?;
        if first {
            self.clock.start_at(buf);
            self.min = (ms_to_frames(self.params.min_ms, rate) as usize).max(1);
            self.max = (ms_to_frames(self.params.max_ms, rate) as usize).max(self.min);
        }
        let ch = usize::from(channels);
        self.held.extend_from_slice(&buf.samples);
        while self.held.len() / ch >= self.min {
            let take = (self.held.len() / ch).min(self.max);
            let rest = self.held.split_off(take * ch);
            let samples = std::mem::replace(&mut self.held, rest);
            out.push(Data::from(self.clock.stamp(samples, rate, channels)));
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut Vec<Data>) -> Result<(), NodeError> {
        if let Some((rate, channels)) = self.format.get() {
            if !self.held.is_empty() {
                let samples = std::mem::take(&mut self.held);
                out.push(Data::from(self.clock.stamp(samples, rate, channels)));
            }
        }
        Ok(())
    }
}

impl NodeType for AudioAccumulator {
    const NAME: &'static str = "AudioAccumulator";
    const ALIASES: &'static [&'static str] = &["AudioBufferAccumulatorNode"];
    const DESCRIPTION: &'static str =
        "Joins audio chunks into buffers: emits once at least `min_ms` are held, never more \
         than `max_ms` at once; the rest at end of stream.";
    const INPUT: &'static str = "audio of one format";
    const OUTPUT: &'static str =
        "audio buffers of `min_ms` to `max_ms` (the last may be shorter), stamped continuously";
    type Params = AccumulatorParams;

    fn check(written: &Map<String, Value>) -> Vec<ParamIssue> {
        let min = written
            .get("min_ms")
            .and_then(Value::as_f64)
            .unwrap_or(default_min());
        let max = written
            .get("max_ms")
            .and_then(Value::as_f64)
            .unwrap_or(default_max());
        if min > max {
            return vec![ParamIssue::new(
                "",
                format!("`min_ms` ({min}) is greater than `max_ms` ({max})"),
            )];
        }
        Vec::new()
    }

    fn from_params(p: &AccumulatorParams) -> Result<Self, NodeError> {
        Ok(AudioAccumulator {
            params: p.clone(),
            format: Format::default(),
            clock: StreamClock::new(),
            min: 0,
            max: 0,
            held: Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::shared::testing::*;
    use super::*;
    use serde_json::json;

    #[test]
    fn buffers_are_between_min_and_max_and_continuous() {
        let input: Vec<f32> = (0..2 * 1000).map(|k| k as f32).collect();
        // 1 kHz: min 100 frames, max 150.
        let p = json!({"min_ms": 100, "max_ms": 150});
        let out = run(
            &mut node::<AudioAccumulator>(p.clone()),
            chunks(&input, 1000, 2, &[30, 70, 320], 5),
        );
        let (s, spans) = joined(&out);
        assert_eq!(s, input);
        // 30, +70: 100 (emitted); +320: 150, 150, 20 held; +30, +70: 120 (emitted); …; 60 at the end.
        let lens: Vec<usize> = spans.iter().map(|s| s.1).collect();
        assert_eq!(lens, [100, 150, 150, 120, 150, 150, 120, 60]);
        assert!(lens[..lens.len() - 1]
            .iter()
            .all(|&n| (100..=150).contains(&n)));
        assert_continuous(&out);
        assert_eq!(spans[0].0, 5);
        assert_eq!(spans[1].0, 5 + 100_000);
        let whole = run(
            &mut node::<AudioAccumulator>(p),
            chunks(&input, 1000, 2, &[1000], 5),
        );
        assert_eq!(
            joined(&whole).1.iter().map(|s| s.1).collect::<Vec<_>>(),
            [150, 150, 150, 150, 150, 150, 100]
        );
    }

    #[test]
    fn bad_params_and_the_alias() {
        assert_eq!(
            problems::<AudioAccumulator>(json!({"min_ms": 500, "max_ms": 100})),
            [": `min_ms` (500) is greater than `max_ms` (100)"]
        );
        assert_eq!(
            problems::<AudioAccumulator>(json!({"min_ms": 0})),
            ["min_ms: `min_ms` must be at least 0.01, found 0"]
        );
        assert!(crate::registry()
            .get("AudioBufferAccumulatorNode")
            .is_some());
        let mut a = node::<AudioAccumulator>(json!({}));
        assert_eq!(
            a.process(Data::Bool(true), &mut Vec::new())
                .unwrap_err()
                .message,
            "expected audio, got a bool"
        );
    }
}
