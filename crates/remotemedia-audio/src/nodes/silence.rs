//! `SilenceDetector`: events where the audio stays below a level for long enough.

use remotemedia_core::{Data, Node, NodeError, NodeType};
use schemars::JsonSchema;
use serde::Deserialize;

use super::shared::{event, frames_to_ms, from_db, pts_at, Edge, Format, Runs};
use crate::input;
use crate::stream::ms_to_frames;

/// Params of `SilenceDetector`.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SilenceParams {
    /// A frame is silent when every channel's sample magnitude is below this level,
    /// in dBFS, -120 to 0.
    #[serde(default = "default_threshold")]
    #[schemars(range(min = -120.0, max = 0.0))]
    pub threshold_db: f64,
    /// Shortest silence reported, in ms.
    #[serde(default = "default_min_duration")]
    #[schemars(range(min = 0.0))]
    pub min_duration_ms: f64,
}

fn default_threshold() -> f64 {
    -50.0
}
fn default_min_duration() -> f64 {
    500.0
}

/// Finds silences, with sample-accurate start and end times.
#[derive(Debug)]
pub struct SilenceDetector {
    params: SilenceParams,
    threshold: f32,
    format: Format,
    origin_us: i64,
    /// Frames seen.
    frame: u64,
    runs: Runs,
}

impl SilenceDetector {
    fn push(&self, edge: Edge, rate: u32, out: &mut Vec<Data>) {
        out.push(match edge {
            Edge::Start(f) => event("silence_start", pts_at(self.origin_us, f, rate), []),
            Edge::End(f, len) => event(
                "silence_end",
                pts_at(self.origin_us, f, rate),
                [("duration_ms", Data::Float(frames_to_ms(len, rate)))],
            ),
        });
    }
}

impl Node for SilenceDetector {
    fn process(&mut self, item: Data, out: &mut Vec<Data>) -> Result<(), NodeError> {
        let buf = input::audio(&item)?;
        let (rate, channels, first) = self.format.check(buf)?;
        if first {
            self.origin_us = buf.pts_us;
            self.runs = Runs::new(ms_to_frames(self.params.min_duration_ms, rate));
        }
        for frame in buf.samples.chunks_exact(usize::from(channels)) {
            let silent = frame.iter().all(|s| s.abs() < self.threshold);
            if let Some(edge) = self.runs.feed(self.frame, silent) {
                self.push(edge, rate, out);
            }
            self.frame += 1;
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut Vec<Data>) -> Result<(), NodeError> {
        if let Some((rate, _)) = self.format.get() {
            if let Some(edge) = self.runs.close(self.frame) {
                self.push(edge, rate, out);
            }
        }
        Ok(())
    }
}

impl NodeType for SilenceDetector {
    const NAME: &'static str = "SilenceDetector";
    const DESCRIPTION: &'static str =
        "Emits `silence_start` and `silence_end` events where every channel stays below \
         `threshold_db` for at least `min_duration_ms`, with sample-accurate times; a silence \
         still open at end of stream is ended there.";
    const INPUT: &'static str = "audio of one format";
    const OUTPUT: &'static str =
        "events {\"type\": \"silence_start\", \"pts_us\"} and {\"type\": \"silence_end\", \"pts_us\", \"duration_ms\"}";
    type Params = SilenceParams;

    fn from_params(p: &SilenceParams) -> Result<Self, NodeError> {
        Ok(SilenceDetector {
            threshold: from_db(p.threshold_db) as f32,
            params: p.clone(),
            format: Format::default(),
            origin_us: 0,
            frame: 0,
            runs: Runs::default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::shared::testing::*;
    use super::*;
    use serde_json::json;

    #[test]
    fn silences_have_sample_accurate_times_whatever_the_chunks() {
        // 16 kHz mono: 0.3 s tone, 0.7001 s silence, 0.2 s tone, 0.1 s silence (too
        // short), 0.6 s silence at the end (open at end of stream).
        let rate = 16_000;
        // A square wave: no sample of it is near zero.
        let tone = |n| {
            (0..n)
                .map(|k| if k % 20 < 10 { 0.25 } else { -0.25 })
                .collect::<Vec<f32>>()
        };
        let mut input = tone(4800);
        input.extend(vec![0.0; 11_201]);
        input.extend(tone(3200));
        input.extend(vec![0.0; 1600]);
        input.extend(tone(160));
        input.extend(vec![0.001; 9600]); // -60 dBFS: below -50
        let p = json!({"threshold_db": -50, "min_duration_ms": 500});
        let want = [
            r#"{"type":"silence_start","pts_us":1300000}"#.to_string(),
            r#"{"type":"silence_end","pts_us":2000062,"duration_ms":700.0625}"#.to_string(),
            r#"{"type":"silence_start","pts_us":2310062}"#.to_string(),
            r#"{"type":"silence_end","pts_us":2910062,"duration_ms":600.0}"#.to_string(),
        ];
        for sizes in [&[input.len()][..], &[333], &[1, 4799, 7]] {
            let out = run(
                &mut node::<SilenceDetector>(p.clone()),
                chunks(&input, rate, 1, sizes, 1_000_000),
            );
            let got: Vec<String> = out.iter().map(Data::to_json_string).collect();
            assert_eq!(got, want);
        }
    }

    #[test]
    fn every_channel_must_be_quiet() {
        let mut input = vec![0.0f32; 2 * 2000];
        for f in 0..2000 {
            input[2 * f + 1] = if f < 1000 { 0.5 } else { 0.0 };
        }
        let out = run(
            &mut node::<SilenceDetector>(json!({"min_duration_ms": 100})),
            chunks(&input, 1000, 2, &[256], 0),
        );
        let got: Vec<String> = out.iter().map(Data::to_json_string).collect();
        assert_eq!(
            got,
            [
                r#"{"type":"silence_start","pts_us":1000000}"#,
                r#"{"type":"silence_end","pts_us":2000000,"duration_ms":1000.0}"#
            ]
        );
    }

    #[test]
    fn bad_params_and_input() {
        assert_eq!(
            problems::<SilenceDetector>(json!({"threshold_db": 3, "min_duration_ms": -1})),
            [
                "threshold_db: `threshold_db` must be between -120 and 0, found 3",
                "min_duration_ms: `min_duration_ms` must be at least 0, found -1"
            ]
        );
        let mut n = node::<SilenceDetector>(json!({}));
        assert_eq!(
            n.process(Data::Int(0), &mut Vec::new())
                .unwrap_err()
                .message,
            "expected audio, got an int"
        );
    }
}
