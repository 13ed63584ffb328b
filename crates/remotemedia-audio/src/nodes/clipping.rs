//! `ClippingDetector`: events where samples reach full scale, and counts of them.

use remotemedia_core::{Data, Node, NodeError, NodeType};
use schemars::JsonSchema;
use serde::Deserialize;

use super::shared::{event, frames_to_ms, pts_at, Edge, Format, Runs};
use crate::input;

/// Params of `ClippingDetector`.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClippingParams {
    /// A sample clips when its magnitude is at least this, as a linear fraction of full
    /// scale, 0.01 to 1.
    #[serde(default = "default_threshold")]
    #[schemars(range(min = 0.01, max = 1.0))]
    pub threshold: f64,
    /// Consecutive frames (in any channel) that must clip for a clipping event
    ///. Counts include every clipped sample, also of shorter runs.
    #[serde(default = "default_min_samples")]
    #[schemars(range(min = 1))]
    pub min_samples: u64,
}

fn default_threshold() -> f64 {
    0.999
}
fn default_min_samples() -> u64 {
    1
}

/// Finds runs of clipped frames (any channel at or above `threshold`).
#[derive(Debug)]
pub struct ClippingDetector {
    threshold: f32,
    format: Format,
    origin_us: i64,
    frame: u64,
    runs: Runs,
    /// Clipped samples per channel.
    clipped: Vec<u64>,
    /// Clipping events so far.
    events: u64,
}

impl ClippingDetector {
    fn push(&mut self, edge: Edge, rate: u32, out: &mut Vec<Data>) {
        out.push(match edge {
            Edge::Start(f) => {
                self.events += 1;
                event("clipping_start", pts_at(self.origin_us, f, rate), [])
            }
            Edge::End(f, len) => event(
                "clipping_end",
                pts_at(self.origin_us, f, rate),
                [
                    ("duration_ms", Data::Float(frames_to_ms(len, rate))),
                    ("frames", Data::Int(len as i64)),
                ],
            ),
        });
    }
}

impl Node for ClippingDetector {
    fn process(&mut self, item: Data, out: &mut Vec<Data>) -> Result<(), NodeError> {
        let buf = input::audio(&item)?;
        let (rate, channels, first) = self.format.check(buf)?;
        if first {
            self.origin_us = buf.pts_us;
            self.clipped = vec![0; usize::from(channels)];
        }
        for frame in buf.samples.chunks_exact(usize::from(channels)) {
            let mut any = false;
            for (c, s) in frame.iter().enumerate() {
                if s.abs() >= self.threshold {
                    self.clipped[c] += 1;
                    any = true;
                }
            }
            if let Some(edge) = self.runs.feed(self.frame, any) {
                self.push(edge, rate, out);
            }
            self.frame += 1;
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut Vec<Data>) -> Result<(), NodeError> {
        let Some((rate, _)) = self.format.get() else {
            return Ok(());
        };
        if let Some(edge) = self.runs.close(self.frame) {
            self.push(edge, rate, out);
        }
        let counts = self
            .clipped
            .iter()
            .map(|&n| Data::Int(n as i64))
            .collect::<Vec<_>>();
        out.push(event(
            "clipping_summary",
            pts_at(self.origin_us, self.frame, rate),
            [
                ("events", Data::Int(self.events as i64)),
                ("clipped_samples", Data::from(counts)),
            ],
        ));
        Ok(())
    }
}

impl NodeType for ClippingDetector {
    const NAME: &'static str = "ClippingDetector";
    const DESCRIPTION: &'static str =
        "Emits `clipping_start` and `clipping_end` events around runs of at least `min_samples` \
         frames with a sample at or above `threshold` (linear full scale), and at end of stream a \
         `clipping_summary` with the number of events and of clipped samples per channel.";
    const INPUT: &'static str = "audio of one format";
    const OUTPUT: &'static str = "events {\"type\": \"clipping_start\", \"pts_us\"}, \
         {\"type\": \"clipping_end\", \"pts_us\", \"duration_ms\", \"frames\"} and, at the end, \
         {\"type\": \"clipping_summary\", \"pts_us\", \"events\", \"clipped_samples\": [per channel]}";
    type Params = ClippingParams;

    fn from_params(p: &ClippingParams) -> Result<Self, NodeError> {
        Ok(ClippingDetector {
            threshold: p.threshold as f32,
            format: Format::default(),
            origin_us: 0,
            frame: 0,
            runs: Runs::new(p.min_samples),
            clipped: Vec::new(),
            events: 0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::shared::testing::*;
    use super::*;
    use serde_json::json;

    #[test]
    fn runs_and_counts_whatever_the_chunks() {
        // 1 kHz stereo. Left clips at frames 10..13 (3 frames), right at 20 (1 frame),
        // both at 30..35 and the right again from 98 to the end.
        let mut input = vec![0.1f32; 2 * 100];
        for f in 10..13 {
            input[2 * f] = 1.0;
        }
        input[2 * 20 + 1] = -1.0;
        for f in 30..35 {
            input[2 * f] = 1.0;
            input[2 * f + 1] = -0.9995;
        }
        input[2 * 98 + 1] = 1.0;
        input[2 * 99 + 1] = 1.0;
        let want = [
            r#"{"type":"clipping_start","pts_us":10000}"#,
            r#"{"type":"clipping_end","pts_us":13000,"duration_ms":3.0,"frames":3}"#,
            r#"{"type":"clipping_start","pts_us":30000}"#,
            r#"{"type":"clipping_end","pts_us":35000,"duration_ms":5.0,"frames":5}"#,
            r#"{"type":"clipping_start","pts_us":98000}"#,
            r#"{"type":"clipping_end","pts_us":100000,"duration_ms":2.0,"frames":2}"#,
            r#"{"type":"clipping_summary","pts_us":100000,"events":3,"clipped_samples":[8,8]}"#,
        ];
        for sizes in [&[100][..], &[3], &[11, 1]] {
            let out = run(
                &mut node::<ClippingDetector>(json!({"min_samples": 2})),
                chunks(&input, 1000, 2, sizes, 0),
            );
            let got: Vec<String> = out.iter().map(Data::to_json_string).collect();
            assert_eq!(got, want);
        }
        let out = run(
            &mut node::<ClippingDetector>(json!({})),
            chunks(&input, 1000, 2, &[7], 0),
        );
        assert_eq!(out.len(), 9);
    }

    #[test]
    fn bad_params_and_input() {
        assert_eq!(
            problems::<ClippingDetector>(json!({"threshold": 1.5, "min_samples": 0})),
            [
                "threshold: `threshold` must be between 0.01 and 1, found 1.5",
                "min_samples: `min_samples` must be at least 1, found 0"
            ]
        );
        let mut n = node::<ClippingDetector>(json!({}));
        assert_eq!(
            n.process(Data::Int(0), &mut Vec::new())
                .unwrap_err()
                .message,
            "expected audio, got an int"
        );
    }
}
