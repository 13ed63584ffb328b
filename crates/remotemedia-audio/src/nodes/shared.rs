//! What several audio nodes share: levels in dBFS with a finite floor, the format a
//! stream started with, event maps, and running tests' chunked input.

use std::sync::Arc;

use remotemedia_core::{AudioBuffer, Data, DataMap, NodeError};

use crate::input;

/// The lowest level reported, in dB: silence (a level of 0) and anything quieter is
/// reported as this instead of `-inf`, so events stay valid JSON.
pub const FLOOR_DB: f64 = -120.0;

/// `20 log10(linear)`, never below [`FLOOR_DB`] (also for 0 and NaN).
pub fn to_db(linear: f64) -> f64 {
    if linear > 0.0 {
        (20.0 * linear.log10()).max(FLOOR_DB)
    } else {
        FLOOR_DB
    }
}

/// A level in dB as a linear amplitude.
pub fn from_db(db: f64) -> f64 {
    10f64.powf(db / 20.0)
}

/// A loudness or level that may be `-inf` or NaN, kept at [`FLOOR_DB`] or above.
pub fn floor_db(db: f64) -> f64 {
    if db.is_nan() {
        FLOOR_DB
    } else {
        db.max(FLOOR_DB)
    }
}

/// Running per-channel sums for RMS and peak over a span of frames.
#[derive(Clone, Debug, Default)]
pub struct Levels {
    sum_sq: Vec<f64>,
    peak: Vec<f64>,
    frames: u64,
}

impl Levels {
    /// Empty sums for `channels` channels.
    pub fn new(channels: u16) -> Self {
        let n = usize::from(channels);
        Levels {
            sum_sq: vec![0.0; n],
            peak: vec![0.0; n],
            frames: 0,
        }
    }

    /// Adds interleaved frames.
    pub fn add(&mut self, samples: &[f32]) {
        let n = self.sum_sq.len();
        for frame in samples.chunks_exact(n) {
            for (c, &s) in frame.iter().enumerate() {
                let s = f64::from(s);
                self.sum_sq[c] += s * s;
                self.peak[c] = self.peak[c].max(s.abs());
            }
            self.frames += 1;
        }
    }

    /// Frames added since the last reset.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// RMS per channel in dBFS (floored).
    pub fn rms_db(&self) -> Vec<f64> {
        let f = self.frames.max(1) as f64;
        self.sum_sq.iter().map(|s| to_db((s / f).sqrt())).collect()
    }

    /// Peak per channel in dBFS (floored).
    pub fn peak_db(&self) -> Vec<f64> {
        self.peak.iter().map(|&p| to_db(p)).collect()
    }

    /// Starts a new span.
    pub fn reset(&mut self) {
        self.sum_sq.iter_mut().for_each(|s| *s = 0.0);
        self.peak.iter_mut().for_each(|s| *s = 0.0);
        self.frames = 0;
    }
}

/// The format of a stream, fixed by its first buffer.
#[derive(Clone, Copy, Debug, Default)]
pub struct Format {
    first: Option<(u32, u16)>,
}

impl Format {
    /// `buf`'s rate and channels, and whether it is the stream's first buffer (where a
    /// node sets up what depends on the format); fails when they differ from the first
    /// buffer's.
    pub fn check(&mut self, buf: &AudioBuffer) -> Result<(u32, u16, bool), NodeError> {
        match self.first {
            Some((rate, channels)) => {
                input::require_same_format(buf, rate, channels)?;
                Ok((rate, channels, false))
            }
            None => {
                if buf.channels == 0 || buf.sample_rate == 0 {
                    return Err(NodeError::invalid_input(format!(
                        "expected audio with at least one channel and a sample rate, got {} Hz, {} ch",
                        buf.sample_rate, buf.channels
                    )));
                }
                self.first = Some((buf.sample_rate, buf.channels));
                Ok((buf.sample_rate, buf.channels, true))
            }
        }
    }

    /// The format, once a buffer has been seen.
    pub fn get(&self) -> Option<(u32, u16)> {
        self.first
    }
}

/// An event map: `{"type": kind, "pts_us": pts, ...fields}`.
pub fn event(
    kind: &str,
    pts_us: i64,
    fields: impl IntoIterator<Item = (&'static str, Data)>,
) -> Data {
    let mut m = DataMap::new();
    m.insert("type".into(), Data::from(kind));
    m.insert("pts_us".into(), Data::Int(pts_us));
    for (k, v) in fields {
        m.insert(k.into(), v);
    }
    Data::Map(Arc::new(m))
}

/// A list of floats as data.
pub fn floats(values: &[f64]) -> Data {
    Data::from(values.iter().map(|&v| Data::Float(v)).collect::<Vec<_>>())
}

/// Milliseconds that `frames` last at `rate` (not rounded).
pub fn frames_to_ms(frames: u64, rate: u32) -> f64 {
    frames as f64 * 1000.0 / f64::from(rate)
}

/// Time of frame `frame` of a stream that started at `origin_us`: from the frame count,
/// as [`crate::stream::StreamClock`] computes it.
pub fn pts_at(origin_us: i64, frame: u64, rate: u32) -> i64 {
    origin_us + remotemedia_core::frames_to_us(frame, rate)
}

/// An edge of a run found by [`Runs`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Edge {
    /// A run reached its minimum length; it started at this frame.
    Start(u64),
    /// A reported run ended before this frame; it was this many frames long.
    End(u64, u64),
}

/// Runs of consecutive frames that meet a condition (silence, clipping), reported once
/// they last at least `min` frames, with sample-accurate edges.
#[derive(Clone, Copy, Debug, Default)]
pub struct Runs {
    min: u64,
    /// First frame of the current run, and whether it has been reported.
    start: Option<(u64, bool)>,
}

impl Runs {
    /// Runs of at least `min` frames (at least 1).
    pub fn new(min: u64) -> Self {
        Runs {
            min: min.max(1),
            start: None,
        }
    }

    /// Frame `frame` meets the condition (`on`) or not; the edge it makes, if any.
    pub fn feed(&mut self, frame: u64, on: bool) -> Option<Edge> {
        match (on, self.start) {
            (true, None) => {
                self.start = Some((frame, false));
                if self.min == 1 {
                    self.start = Some((frame, true));
                    return Some(Edge::Start(frame));
                }
                None
            }
            (true, Some((s, false))) if frame + 1 - s >= self.min => {
                self.start = Some((s, true));
                Some(Edge::Start(s))
            }
            (false, Some((s, reported))) => {
                self.start = None;
                reported.then_some(Edge::End(frame, frame - s))
            }
            _ => None,
        }
    }

    /// Ends a reported run at end of stream (`frame`: the frame after the last).
    pub fn close(&mut self, frame: u64) -> Option<Edge> {
        self.feed(frame, false)
    }
}

#[cfg(test)]
pub(crate) mod testing {
    //! Driving a node by hand: whole input against chunked input.

    use remotemedia_core::{AudioBuffer, Data, Node, NodeType, Params};

    /// A node of type `T` from params written as JSON (validated as a manifest would be).
    pub fn node<T: NodeType>(params: serde_json::Value) -> T {
        let issues = problems::<T>(params.clone());
        assert!(issues.is_empty(), "{issues:?}");
        let p: T::Params = serde_json::from_value(params).unwrap();
        T::from_params(&p).unwrap()
    }

    /// The load-time messages for `params`, as `path: message`.
    pub fn problems<T: NodeType>(params: serde_json::Value) -> Vec<String> {
        let r = crate::registry();
        let params: Params = serde_json::from_value(params).unwrap();
        r.get(T::NAME)
            .unwrap()
            .validate(&params)
            .into_iter()
            .map(|i| format!("{}: {}", i.path, i.message))
            .collect()
    }

    /// Interleaved `samples` cut into buffers of `sizes` frames (cycled), from `pts_us`.
    pub fn chunks(
        samples: &[f32],
        rate: u32,
        channels: u16,
        sizes: &[usize],
        pts_us: i64,
    ) -> Vec<Data> {
        let ch = usize::from(channels);
        let mut out = Vec::new();
        let mut at = 0;
        let mut k = 0;
        while at < samples.len() / ch {
            let n = sizes[k % sizes.len()].min(samples.len() / ch - at);
            let buf = AudioBuffer::new(samples[at * ch..(at + n) * ch].to_vec(), rate, channels)
                .with_pts(pts_us + remotemedia_core::frames_to_us(at as u64, rate));
            out.push(Data::from(buf));
            at += n;
            k += 1;
        }
        out
    }

    /// Everything `node` emits for `items`, `finish` included.
    pub fn run(node: &mut impl Node, items: Vec<Data>) -> Vec<Data> {
        let mut out = Vec::new();
        for item in items {
            node.process(item, &mut out).unwrap();
        }
        node.finish(&mut out).unwrap();
        out
    }

    /// The audio outputs joined: samples, and each buffer's `(pts_us, frames)`.
    pub fn joined(items: &[Data]) -> (Vec<f32>, Vec<(i64, usize)>) {
        let mut samples = Vec::new();
        let mut spans = Vec::new();
        for item in items {
            let Data::Audio(a) = item else {
                panic!("not audio: {item:?}")
            };
            samples.extend_from_slice(&a.samples);
            spans.push((a.pts_us, a.frames()));
        }
        (samples, spans)
    }

    /// Asserts that buffers follow each other without gap or overlap: each starts at
    /// the first one's time plus the frames before it.
    pub fn assert_continuous(items: &[Data]) {
        let mut origin: Option<i64> = None;
        let mut frames = 0u64;
        for item in items {
            let Data::Audio(a) = item else { continue };
            let o = *origin.get_or_insert(a.pts_us);
            assert_eq!(
                a.pts_us,
                o + remotemedia_core::frames_to_us(frames, a.sample_rate),
                "gap or overlap before a buffer"
            );
            frames += a.frames() as u64;
        }
    }

    /// A sine of `freq` Hz and peak `amp`, `frames` long, the same on every channel.
    pub fn sine(freq: f64, amp: f64, rate: u32, channels: u16, frames: usize) -> Vec<f32> {
        let mut v = Vec::with_capacity(frames * usize::from(channels));
        for f in 0..frames {
            let s = amp * (std::f64::consts::TAU * freq * f as f64 / f64::from(rate)).sin();
            v.extend(std::iter::repeat_n(s as f32, usize::from(channels)));
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_are_finite_and_per_channel() {
        assert_eq!(to_db(0.0), FLOOR_DB);
        assert_eq!(to_db(f64::NAN), FLOOR_DB);
        assert_eq!(floor_db(f64::NEG_INFINITY), FLOOR_DB);
        assert!((to_db(0.5) - -6.0206).abs() < 1e-3);
        let mut l = Levels::new(2);
        l.add(&[0.5, 0.0, -0.5, 0.0]);
        assert_eq!(l.frames(), 2);
        let rms = l.rms_db();
        assert!((rms[0] - -6.0206).abs() < 1e-3);
        assert_eq!(rms[1], FLOOR_DB);
        assert_eq!(l.peak_db()[1], FLOOR_DB);
    }

    #[test]
    fn runs_are_reported_from_their_minimum_length() {
        let mut r = Runs::new(3);
        let on = [true, true, false, true, true, true, true, false, true];
        let edges: Vec<_> = on
            .iter()
            .enumerate()
            .filter_map(|(f, &o)| r.feed(f as u64, o))
            .collect();
        assert_eq!(edges, [Edge::Start(3), Edge::End(7, 4)]);
        assert_eq!(r.close(9), None);
        let mut r = Runs::new(1);
        assert_eq!(r.feed(0, true), Some(Edge::Start(0)));
        assert_eq!(r.close(5), Some(Edge::End(5, 5)));
    }

    #[test]
    fn format_is_fixed_by_the_first_buffer() {
        let mut f = Format::default();
        assert_eq!(
            f.check(&AudioBuffer::new(vec![0.0; 4], 8000, 2)).unwrap(),
            (8000, 2, true)
        );
        assert_eq!(
            f.check(&AudioBuffer::new(vec![0.0; 2], 8000, 2)).unwrap(),
            (8000, 2, false)
        );
        let e = f
            .check(&AudioBuffer::new(vec![0.0; 4], 8000, 1))
            .unwrap_err();
        assert!(e.message.contains("changed format"), "{}", e.message);
    }
}
