//! `AudioLoudness`: EBU R 128 loudness (momentary, short-term, integrated, range) and
//! true peak, as events.

use ebur128::{EbuR128, Mode};
use remotemedia_core::{Data, ErrorKind, Node, NodeError, NodeType};
use schemars::JsonSchema;
use serde::Deserialize;

use super::shared::{event, floats, floor_db, pts_at, to_db, Format};
use crate::input;
use crate::stream::ms_to_frames;

/// Params of `AudioLoudness`.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LoudnessParams {
    /// Emit a `loudness` event every this many milliseconds of audio, 10 to 60000
    /// (100 is the R 128 block step).
    #[serde(default = "default_interval")]
    #[schemars(range(min = 10.0, max = 60_000.0))]
    pub interval_ms: f64,
}

fn default_interval() -> f64 {
    100.0
}

/// Measures loudness after EBU R 128 / ITU-R BS.1770 (channels taken as L, R, C, LFE
/// (not counted), Ls, Rs; mono as a single channel). Levels below -120 (silence,
/// before the first gated block) are reported as -120.
pub struct AudioLoudness {
    interval_ms: f64,
    format: Format,
    origin_us: i64,
    /// Frames measured so far.
    frame: u64,
    interval: u64,
    /// Frames into the current interval.
    into: u64,
    meter: Option<EbuR128>,
    /// Highest true peak per channel (linear) in the current interval.
    peaks: Vec<f64>,
}

impl std::fmt::Debug for AudioLoudness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AudioLoudness")
            .field("interval_ms", &self.interval_ms)
            .field("frame", &self.frame)
            .finish_non_exhaustive()
    }
}

fn meter_error(e: ebur128::Error) -> NodeError {
    NodeError::new(ErrorKind::Other, format!("loudness meter: {e}"))
}

impl AudioLoudness {
    /// The `loudness` event for the interval that ends now.
    fn interval_event(&mut self, rate: u32) -> Result<Data, NodeError> {
        let Some(m) = &self.meter else {
            return Err(NodeError::new(
                ErrorKind::Other,
                "loudness meter not started",
            ));
        };
        let e = event(
            "loudness",
            pts_at(self.origin_us, self.frame, rate),
            [
                (
                    "momentary_lufs",
                    Data::Float(floor_db(m.loudness_momentary().map_err(meter_error)?)),
                ),
                (
                    "short_term_lufs",
                    Data::Float(floor_db(m.loudness_shortterm().map_err(meter_error)?)),
                ),
                (
                    "integrated_lufs",
                    Data::Float(floor_db(m.loudness_global().map_err(meter_error)?)),
                ),
                (
                    "true_peak_dbtp",
                    floats(&self.peaks.iter().map(|&p| to_db(p)).collect::<Vec<_>>()),
                ),
            ],
        );
        self.peaks.iter_mut().for_each(|p| *p = 0.0);
        self.into = 0;
        Ok(e)
    }

    /// Feeds interleaved frames to the meter.
    fn add(&mut self, samples: &[f32]) -> Result<(), NodeError> {
        let Some(m) = &mut self.meter else {
            return Err(NodeError::new(
                ErrorKind::Other,
                "loudness meter not started",
            ));
        };
        m.add_frames_f32(samples).map_err(meter_error)?;
        for (c, p) in self.peaks.iter_mut().enumerate() {
            *p = p.max(m.prev_true_peak(c as u32).map_err(meter_error)?);
        }
        Ok(())
    }
}

impl Node for AudioLoudness {
    fn process(&mut self, item: Data, out: &mut Vec<Data>) -> Result<(), NodeError> {
        let buf = input::audio(&item)?;
        let (rate, channels, first) = self.format.check(buf)?;
        if first {
            self.origin_us = buf.pts_us;
            self.interval = ms_to_frames(self.interval_ms, rate).max(1);
            let mode = Mode::M | Mode::S | Mode::I | Mode::LRA | Mode::TRUE_PEAK;
            self.meter = Some(EbuR128::new(u32::from(channels), rate, mode).map_err(meter_error)?);
            self.peaks = vec![0.0; usize::from(channels)];
        }
        let ch = usize::from(channels);
        let mut rest: &[f32] = &buf.samples;
        while !rest.is_empty() {
            let n = ((self.interval - self.into) as usize).min(rest.len() / ch);
            self.add(&rest[..n * ch])?;
            rest = &rest[n * ch..];
            self.frame += n as u64;
            self.into += n as u64;
            if self.into == self.interval {
                out.push(self.interval_event(rate)?);
            }
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut Vec<Data>) -> Result<(), NodeError> {
        let Some((rate, channels)) = self.format.get() else {
            return Ok(());
        };
        if self.into > 0 {
            out.push(self.interval_event(rate)?);
        }
        let Some(m) = &self.meter else {
            return Ok(());
        };
        let mut peaks = Vec::with_capacity(usize::from(channels));
        for c in 0..u32::from(channels) {
            peaks.push(to_db(m.true_peak(c).map_err(meter_error)?));
        }
        out.push(event(
            "loudness_summary",
            pts_at(self.origin_us, self.frame, rate),
            [
                (
                    "integrated_lufs",
                    Data::Float(floor_db(m.loudness_global().map_err(meter_error)?)),
                ),
                (
                    "loudness_range_lu",
                    Data::Float(m.loudness_range().map_err(meter_error)?.max(0.0)),
                ),
                ("true_peak_dbtp", floats(&peaks)),
            ],
        ));
        Ok(())
    }
}

impl NodeType for AudioLoudness {
    const NAME: &'static str = "AudioLoudness";
    const DESCRIPTION: &'static str =
        "EBU R 128 loudness: every `interval_ms` a `loudness` event with momentary, short-term \
         and integrated loudness (LUFS) and the interval's true peak per channel (dBTP); at end \
         of stream a `loudness_summary` with integrated loudness, loudness range (LU) and true \
         peak per channel. The events' `pts_us` is the time just after the last frame measured.";
    const INPUT: &'static str = "audio of one format";
    const OUTPUT: &'static str = "events {\"type\": \"loudness\", \"pts_us\", \"momentary_lufs\", \
         \"short_term_lufs\", \"integrated_lufs\", \"true_peak_dbtp\": [per channel]} and, at the \
         end, {\"type\": \"loudness_summary\", \"pts_us\", \"integrated_lufs\", \
         \"loudness_range_lu\", \"true_peak_dbtp\": [per channel]}";
    type Params = LoudnessParams;

    fn from_params(p: &LoudnessParams) -> Result<Self, NodeError> {
        Ok(AudioLoudness {
            interval_ms: p.interval_ms,
            format: Format::default(),
            origin_us: 0,
            frame: 0,
            interval: 0,
            into: 0,
            meter: None,
            peaks: Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::shared::testing::*;
    use super::*;
    use serde_json::json;

    const RATE: u32 = 48_000;

    /// Stereo 1 kHz sine at 48 kHz: `(level in dBFS, seconds)` segments one after the
    /// other.
    fn segments(parts: &[(f64, f64)]) -> Vec<f32> {
        let mut v = Vec::new();
        for &(db, secs) in parts {
            let frames = (secs * f64::from(RATE)).round() as usize;
            v.extend(sine(1000.0, 10f64.powf(db / 20.0), RATE, 2, frames));
        }
        v
    }

    /// Events for `input` cut into `sizes`, with the summary's integrated loudness and
    /// loudness range.
    fn summary(input: &[f32], sizes: &[usize]) -> (Vec<Data>, f64, f64) {
        let out = run(
            &mut node::<AudioLoudness>(json!({"interval_ms": 1000})),
            chunks(input, RATE, 2, sizes, 0),
        );
        let m = out.last().unwrap().as_map().unwrap().clone();
        assert_eq!(m["type"], Data::from("loudness_summary"));
        let (Data::Float(i), Data::Float(lra)) = (&m["integrated_lufs"], &m["loudness_range_lu"])
        else {
            panic!()
        };
        (out, *i, *lra)
    }

    fn near(got: f64, want: f64, tol: f64) {
        assert!(
            (got - want).abs() <= tol,
            "{got} is not within {tol} of {want}"
        );
    }

    #[test]
    fn ebu_tech_3341_cases_1_to_5() {
        // Case 1 and 2: a constant sine; momentary and short-term agree too.
        for db in [-23.0, -33.0] {
            let input = segments(&[(db, 20.0)]);
            let (out, i, _) = summary(&input, &[RATE as usize]);
            near(i, db, 0.1);
            let last = out[out.len() - 2].as_map().unwrap();
            for k in ["momentary_lufs", "short_term_lufs"] {
                let Data::Float(v) = last[k] else { panic!() };
                near(v, db, 0.1);
            }
        }
        // Cases 3, 4 and 5: the gates keep quiet parts out.
        let low = |parts: &[(f64, f64)]| summary(&segments(parts), &[RATE as usize]);
        near(
            low(&[(-36.0, 10.0), (-23.0, 60.0), (-36.0, 10.0)]).1,
            -23.0,
            0.1,
        );
        near(
            low(&[
                (-72.0, 10.0),
                (-36.0, 10.0),
                (-23.0, 60.0),
                (-36.0, 10.0),
                (-72.0, 10.0),
            ])
            .1,
            -23.0,
            0.1,
        );
        near(
            low(&[(-26.0, 20.0), (-20.0, 20.1), (-26.0, 20.0)]).1,
            -23.0,
            0.1,
        );
    }

    #[test]
    fn ebu_tech_3342_loudness_range() {
        // Cases 1 and 2 of Tech 3342: -20 then -30 dBFS (10 LU), -20 then -15 (5 LU).
        let low = |parts: &[(f64, f64)]| summary(&segments(parts), &[RATE as usize]);
        near(low(&[(-20.0, 20.0), (-30.0, 20.0)]).2, 10.0, 1.0);
        near(low(&[(-20.0, 20.0), (-15.0, 20.0)]).2, 5.0, 1.0);
    }

    #[test]
    fn events_do_not_depend_on_chunking_and_true_peak_is_there() {
        let input = segments(&[(-23.0, 1.0), (-6.0, 0.55)]);
        let (a, _, _) = summary(&input, &[input.len() / 2]);
        let (b, _, _) = summary(&input, &[4_801, 333]);
        let ja: Vec<String> = a.iter().map(Data::to_json_string).collect();
        let jb: Vec<String> = b.iter().map(Data::to_json_string).collect();
        assert_eq!(ja, jb);
        // One event per second and a short last one, at the end of each span.
        let pts: Vec<_> = a
            .iter()
            .map(|e| e.as_map().unwrap()["pts_us"].clone())
            .collect();
        assert_eq!(
            pts,
            [
                Data::Int(1_000_000),
                Data::Int(1_550_000),
                Data::Int(1_550_000)
            ]
        );
        let tp = a[2].as_map().unwrap()["true_peak_dbtp"]
            .as_list()
            .unwrap()
            .to_vec();
        for p in tp {
            let Data::Float(p) = p else { panic!() };
            near(p, -6.0, 0.2);
        }
    }

    #[test]
    fn silence_is_floored_not_infinite() {
        let input = vec![0.0f32; 2 * 4800];
        let out = run(
            &mut node::<AudioLoudness>(json!({})),
            chunks(&input, RATE, 2, &[4800], 0),
        );
        let text: Vec<String> = out.iter().map(Data::to_json_string).collect();
        assert_eq!(
            text.last().unwrap(),
            r#"{"type":"loudness_summary","pts_us":100000,"integrated_lufs":-120.0,"loudness_range_lu":0.0,"true_peak_dbtp":[-120.0,-120.0]}"#
        );
    }

    #[test]
    fn bad_params_and_input() {
        assert_eq!(
            problems::<AudioLoudness>(json!({"interval_ms": 5})),
            ["interval_ms: `interval_ms` must be between 10 and 60000, found 5"]
        );
        let mut n = node::<AudioLoudness>(json!({}));
        assert_eq!(
            n.process(Data::Int(0), &mut Vec::new())
                .unwrap_err()
                .message,
            "expected audio, got an int"
        );
    }
}
