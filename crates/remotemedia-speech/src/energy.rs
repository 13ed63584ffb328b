//! The `energy` engine: a dependency-free detector that scores each frame by how far
//! its level is above the stream's noise floor.
//!
//! The floor follows the quietest frames: it drops at once to a quieter frame and
//! rises by at most [`FLOOR_RISE_DB_PER_S`] while the level stays above it, so that
//! speech does not lift it. A frame's score is `(level − floor) / 8 dB`, clamped to
//! 0–1: the default threshold of 0.5 means 4 dB above the floor (and the default
//! `neg_threshold`, 0.35, 2.8 dB). Frames below
//! [`SILENCE_DBFS`] score 0 whatever the floor.

/// How fast the noise floor may rise, in dB per second.
pub const FLOOR_RISE_DB_PER_S: f64 = 0.5;

/// Frames quieter than this (dBFS) are silence.
pub const SILENCE_DBFS: f64 = -60.0;

/// Range in dB above the floor mapped onto scores 0–1.
const SPAN_DB: f64 = 8.0;

/// The state of one stream.
#[derive(Clone, Debug)]
pub struct EnergyState {
    floor_db: Option<f64>,
    rise_per_frame: f64,
}

impl EnergyState {
    /// A stream with frames of `frame_len` samples at `rate`.
    pub fn new(rate: u32, frame_len: usize) -> Self {
        Self {
            floor_db: None,
            rise_per_frame: FLOOR_RISE_DB_PER_S * frame_len as f64 / f64::from(rate.max(1)),
        }
    }

    /// The score (0–1) of the next frame of the stream.
    pub fn score(&mut self, frame: &[f32]) -> f32 {
        let energy = frame
            .iter()
            .map(|&s| f64::from(s) * f64::from(s))
            .sum::<f64>()
            / frame.len().max(1) as f64;
        let db = 10.0 * energy.max(1e-12).log10();
        let floor = match self.floor_db {
            None => db,
            Some(f) if db < f => db,
            Some(f) => f + self.rise_per_frame.min(db - f),
        };
        self.floor_db = Some(floor);
        if db < SILENCE_DBFS {
            return 0.0;
        }
        ((db - floor) / SPAN_DB).clamp(0.0, 1.0) as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tone_over_quiet_noise_scores_high_and_the_noise_low() {
        let mut s = EnergyState::new(16_000, 512);
        let quiet: Vec<f32> = (0..512)
            .map(|i| if i % 2 == 0 { 0.001 } else { -0.001 })
            .collect();
        let loud: Vec<f32> = (0..512).map(|i| 0.3 * (i as f32 * 0.2).sin()).collect();
        for _ in 0..10 {
            assert_eq!(s.score(&quiet), 0.0);
        }
        // -60 dBFS floor, the tone at about -13.5 dBFS: 46 dB above, clamped to 1.
        assert_eq!(s.score(&loud), 1.0);
        // Two seconds of the tone lift the floor by one dB at most.
        for _ in 0..62 {
            s.score(&loud);
        }
        assert!(s.score(&loud) > 0.99);
        assert_eq!(s.score(&[0.0; 512]), 0.0);
    }
}
