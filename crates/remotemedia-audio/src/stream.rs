//! Stream time: positions from frame counts, so that `pts_us` never drifts.

use remotemedia_core::{frames_to_us, AudioBuffer};

/// The clock of one output stream: where it started and how many frames it has
/// emitted. A node that re-chunks, resamples or delays audio stamps each output with
/// [`StreamClock::stamp`], which counts frames rather than adding durations.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StreamClock {
    /// `pts_us` of the stream's first frame (taken from the first input).
    origin_us: Option<i64>,
    /// Frames emitted so far.
    frames: u64,
}

impl StreamClock {
    /// A clock that starts at the first input it sees (at 0 until then).
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts the clock at `buf`'s time, unless it has started already.
    pub fn start_at(&mut self, buf: &AudioBuffer) {
        self.origin_us.get_or_insert(buf.pts_us);
    }

    /// The time of the next frame to be emitted, at `rate`.
    pub fn next_pts(&self, rate: u32) -> i64 {
        self.origin_us.unwrap_or(0) + frames_to_us(self.frames, rate)
    }

    /// Frames emitted so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// A buffer of `samples` (interleaved, `channels`) at `rate`, stamped with the time
    /// of the next frame; advances the clock past it.
    pub fn stamp(&mut self, samples: Vec<f32>, rate: u32, channels: u16) -> AudioBuffer {
        let pts = self.next_pts(rate);
        self.frames += (samples.len() / channels.max(1) as usize) as u64;
        AudioBuffer::new(samples, rate, channels).with_pts(pts)
    }

    /// Advances the clock by `frames` without emitting them (dropped or held audio).
    pub fn skip(&mut self, frames: u64) {
        self.frames += frames;
    }
}

/// Frames in `ms` milliseconds at `rate` (rounded down).
pub fn ms_to_frames(ms: f64, rate: u32) -> u64 {
    (ms * f64::from(rate) / 1000.0).floor().max(0.0) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_come_from_frame_counts() {
        let mut c = StreamClock::new();
        c.start_at(&AudioBuffer::new(vec![0.0; 10], 44_100, 1).with_pts(1_000));
        // 441 frames of 44.1 kHz are exactly 10 ms, chunk after chunk.
        let mut last = 0;
        for k in 0..10_000 {
            let b = c.stamp(vec![0.0; 441], 44_100, 1);
            assert_eq!(b.pts_us, 1_000 + 10_000 * k);
            last = b.end_pts_us();
        }
        assert_eq!(last, 1_000 + 100_000_000);
        // 7 frames at 48 kHz do not last a whole number of microseconds: no drift.
        let mut c = StreamClock::new();
        for _ in 0..48_000 / 7 * 7 {
            c.skip(1);
        }
        assert_eq!(c.next_pts(48_000), frames_to_us(48_000 / 7 * 7, 48_000));
        assert_eq!(ms_to_frames(20.0, 16_000), 320);
        assert_eq!(ms_to_frames(20.0, 44_100), 882);
    }
}
