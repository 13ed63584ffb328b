//! `AudioLevel` (alias `AudioLevelNode`): RMS and peak level per channel, as events.

use remotemedia_core::{Data, Node, NodeError, NodeType};
use schemars::JsonSchema;
use serde::Deserialize;

use super::shared::{event, floats, Format, Levels};
use crate::input;
use crate::stream::{ms_to_frames, StreamClock};

/// Params of `AudioLevel`.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LevelParams {
    /// Measure over spans of this many milliseconds, whatever the input's chunks
    /// (the last span, at end of stream, may be shorter). Default: one event per input
    /// item.
    #[schemars(range(min = 0.1))]
    pub interval_ms: Option<f64>,
}

/// Measures levels; emits events only (not the audio: fan the audio out to this node
/// and to the rest of the pipeline to keep both).
#[derive(Debug)]
pub struct AudioLevel {
    interval_ms: Option<f64>,
    format: Format,
    /// End of the last span emitted (the start of the one being measured).
    clock: StreamClock,
    interval: usize,
    levels: Levels,
}

impl AudioLevel {
    /// Emits the span measured so far, stamped with its end: the stream time at which
    /// its level is known (as a meter shows it, and as `AudioLoudness` stamps its
    /// events), so a live client's latency is measured from when it could have been.
    fn emit(&mut self, rate: u32, out: &mut Vec<Data>) {
        self.clock.skip(self.levels.frames());
        let pts = self.clock.next_pts(rate);
        out.push(event(
            "level",
            pts,
            [
                ("rms_dbfs", floats(&self.levels.rms_db())),
                ("peak_dbfs", floats(&self.levels.peak_db())),
            ],
        ));
        self.levels.reset();
    }
}

impl Node for AudioLevel {
    fn process(&mut self, item: Data, out: &mut Vec<Data>) -> Result<(), NodeError> {
        let buf = input::audio(&item)?;
        let (rate, channels, first) = self.format.check(buf)?;
        if first {
            self.clock.start_at(buf);
            self.levels = Levels::new(channels);
            self.interval = match self.interval_ms {
                Some(ms) => (ms_to_frames(ms, rate) as usize).max(1),
                None => 0,
            };
        }
        if self.interval == 0 {
            self.levels.add(&buf.samples);
            self.emit(rate, out);
            return Ok(());
        }
        let ch = usize::from(channels);
        let mut rest: &[f32] = &buf.samples;
        while !rest.is_empty() {
            let room = self.interval - self.levels.frames() as usize;
            let n = room.min(rest.len() / ch);
            self.levels.add(&rest[..n * ch]);
            rest = &rest[n * ch..];
            if self.levels.frames() as usize == self.interval {
                self.emit(rate, out);
            }
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut Vec<Data>) -> Result<(), NodeError> {
        if let Some((rate, _)) = self.format.get() {
            if self.levels.frames() > 0 {
                self.emit(rate, out);
            }
        }
        Ok(())
    }
}

impl NodeType for AudioLevel {
    const NAME: &'static str = "AudioLevel";
    const ALIASES: &'static [&'static str] = &["AudioLevelNode"];
    const DESCRIPTION: &'static str =
        "Measures RMS and peak level per channel, per input item or per `interval_ms`, and emits \
         them as events (not the audio), each stamped with the end of the span it measured. \
         Levels are in dBFS, -120 for silence and below.";
    const INPUT: &'static str = "audio of one format";
    const OUTPUT: &'static str =
        "events {\"type\": \"level\", \"pts_us\", \"rms_dbfs\": [per channel], \"peak_dbfs\": [per channel]}";
    type Params = LevelParams;

    fn from_params(p: &LevelParams) -> Result<Self, NodeError> {
        Ok(AudioLevel {
            interval_ms: p.interval_ms,
            format: Format::default(),
            clock: StreamClock::new(),
            interval: 0,
            levels: Levels::default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::shared::testing::*;
    use super::*;
    use serde_json::json;

    fn events(out: &[Data]) -> Vec<String> {
        out.iter().map(Data::to_json_string).collect()
    }

    #[test]
    fn levels_per_interval_do_not_depend_on_chunking() {
        // Left: a full-scale sine (RMS -3.01 dB, peak 0 dB); right: silence.
        let mut input = sine(100.0, 1.0, 8000, 2, 8000);
        for f in 0..8000 {
            input[2 * f + 1] = 0.0;
        }
        let p = json!({"interval_ms": 100});
        let whole = run(
            &mut node::<AudioLevel>(p.clone()),
            chunks(&input, 8000, 2, &[8000], 20),
        );
        let parts = run(
            &mut node::<AudioLevel>(p),
            chunks(&input, 8000, 2, &[333, 17], 20),
        );
        assert_eq!(whole.len(), 10);
        assert_eq!(events(&whole), events(&parts));
        let Data::Map(m) = &whole[3] else { panic!() };
        assert_eq!(m["type"], Data::from("level"));
        assert_eq!(m["pts_us"], Data::Int(20 + 400_000));
        let rms = m["rms_dbfs"].as_list().unwrap();
        let Data::Float(l) = rms[0] else { panic!() };
        assert!((l - -3.0103).abs() < 1e-3, "{l}");
        assert_eq!(rms[1], Data::Float(-120.0));
        let Data::Float(p) = m["peak_dbfs"].as_list().unwrap()[0] else {
            panic!()
        };
        assert!(p > -0.01 && p <= 0.0, "{p}");
    }

    #[test]
    fn per_item_events_and_a_short_last_span() {
        let input = vec![0.5f32; 250];
        let out = run(
            &mut node::<AudioLevel>(json!({})),
            chunks(&input, 1000, 1, &[100], 0),
        );
        let pts: Vec<_> = out
            .iter()
            .map(|e| e.as_map().unwrap()["pts_us"].clone())
            .collect();
        assert_eq!(
            pts,
            [Data::Int(100_000), Data::Int(200_000), Data::Int(250_000)]
        );
        let out = run(
            &mut node::<AudioLevel>(json!({"interval_ms": 200})),
            chunks(&input, 1000, 1, &[100], 0),
        );
        assert_eq!(out.len(), 2);
        assert_eq!(out[1].as_map().unwrap()["pts_us"], Data::Int(250_000));
    }

    #[test]
    fn bad_params_and_input() {
        assert_eq!(
            problems::<AudioLevel>(json!({"interval_ms": 0, "passthrough": true})),
            [
                "interval_ms: `interval_ms` must be at least 0.1, found 0",
                "passthrough: unknown param `passthrough`; AudioLevel accepts `interval_ms`"
            ]
        );
        assert!(crate::registry().get("AudioLevelNode").is_some());
        let mut n = node::<AudioLevel>(json!({}));
        assert_eq!(
            n.process(Data::text("a"), &mut Vec::new())
                .unwrap_err()
                .message,
            "expected audio, got a text"
        );
    }
}
