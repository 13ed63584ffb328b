//! Streaming sample-rate conversion of interleaved `f32` audio, 1 to 8 channels, any
//! pair of rates.
//!
//! Three engines, all exact linear filters for a fixed ratio (so the result does not
//! depend on how the input is cut into chunks):
//!
//! - `high` (the default) applies one fixed Kaiser-windowed sinc filter (110 dB design
//!   stopband from the lower Nyquist frequency on, passband to 0.91 of it, about 10 ms
//!   long) by FFT overlap-save, with the rate change done in the frequency domain, on
//!   whatever whole units of input have arrived: a unit is `from / gcd(from, to)` frames
//!   (3 at 48 kHz → 16 kHz, 441 at 44.1 kHz → 16 kHz). Each call's input goes through in
//!   an FFT just long enough for it, large calls in long blocks; only the filter delay
//!   and less than a unit are held back.
//! - `low` is a short filter (72 dB design stopband, passband to 0.8 of the lower
//!   Nyquist frequency). Between rates with an integer ratio (48 → 16 kHz, 16 → 48 kHz,
//!   32 → 16 kHz, …) it runs in the time domain, split into polyphase rows so that only
//!   output frames are computed, with a transition band that straddles the Nyquist
//!   frequency (72 dB down from 1.2 × it, as `scipy.signal.resample_poly` and most fast
//!   resamplers do: what lies just above it folds into the top of the transition band,
//!   never into the passband). Other rate pairs take the overlap-save engine with the
//!   short filter, stopband from the Nyquist frequency on. It holds back the least
//!   audio; it is the fastest level between rates with an integer ratio and as fast
//!   as `high` between others.
//! - `medium` and `best` use rubato's synchronous FFT resampler (`rubato::Fft`): each
//!   block of input is transformed, multiplied with the spectrum of a filter as long as
//!   the block, cut or zero-extended to the output rate and transformed back, with
//!   overlap-add between blocks. Output only comes a whole block at a time.
//!
//! Output time lines up with input time: the filter's delay is trimmed from the start
//! of the output (the time-domain engine centres output frame 0 on input frame 0), and
//! [`Resampler::flush`] pushes the last input through the filter, so a stream of `n`
//! input frames gives exactly `ceil(n * to / from)` output frames — the output frames
//! whose time falls inside the input.
//!
//! # Quality levels
//!
//! Measured by `tests/resample_quality.rs` (`measured_figures_per_level`, 2 s signals,
//! 200 ms skipped at both ends): SNR of a 1 kHz sine against the analytic sine,
//! attenuation of a 12 kHz tone (above the new Nyquist frequency; the output's whole
//! RMS against the input's), the gain at 7.2 kHz (0.9 × the new Nyquist frequency) and
//! the delay: the audio held back after each 20 ms input chunk of a live stream (output
//! the input so far stands for, less the output emitted so far; least–most over 2 s).
//! 48 kHz → 16 kHz, then 44.1 kHz → 16 kHz:
//!
//! | level    | filter / block (slow side)  | SNR 1 kHz        | 12 kHz attenuation | gain at 7.2 kHz      | delay (20 ms chunks)     |
//! |----------|-----------------------------|------------------|--------------------|----------------------|--------------------------|
//! | `low`    | 1.5 ms filter, any block    | 85.2 / 90.8 dB   | 100 / 145 dB       | −0.65 / −6.0 dB      | 0.75 / 1.5 ms            |
//! | `medium` | 256-frame blocks            | 135.2 / 122.8 dB | 236 / 145 dB       | −0.0001 / −0.0000 dB | 8–20 / 10 ms             |
//! | `high`   | 10 ms filter, any block     | 144.5 / 136.2 dB | 231 / 145 dB       | ±0.0000 dB           | 5 / 5 ms                 |
//! | `best`   | 2048-frame blocks, f64      | 153.1 / 152.1 dB | 230 / 159 dB       | ±0.0000 dB           | 20–188 / 20–190 ms       |
//!
//! `low` is flat to 0.1 dB up to 0.7 × the new Nyquist frequency (5.6 kHz at 16 kHz) on
//! both pairs, and at least 70 dB down in its stopband. `high`'s 5 ms is its filter
//! delay (80 output frames at 16 kHz for both rate pairs); chunks that are not whole
//! units add less than a unit (at 44.1 kHz up to 10 ms). The block levels' blocks are
//! whole multiples of the smallest block of the rate pair (160 output frames for
//! 44.1 kHz → 16 kHz). The `f32` levels stop near 120–145 dB SNR (the precision of the
//! FFTs); attenuations above ~140 dB are at the noise floor of the measurement. A rate
//! pair with a small common divisor (44.1 kHz → 44.101 kHz) has long units and blocks
//! whatever the level: more input is held back between calls, never less quality.

use std::fmt;

mod filter;
mod overlap_save;
mod polyphase;

use filter::Design;
use overlap_save::OverlapSave;
use polyphase::{Polyphase, Ratio};
use rubato::audioadapter_buffers::direct::SequentialSlice;
use rubato::{Fft, FixedSync, Resampler as _, WindowFunction};
use schemars::JsonSchema;
use serde::Deserialize;

/// Most channels a [`Resampler`] takes.
pub const MAX_CHANNELS: u16 = 8;

/// Highest sample rate a [`Resampler`] takes, in or out (the rates audio hardware uses
/// end at 768 kHz). Input rates come from the items, which a client chooses: the filter
/// grows with the rates, so they are bounded.
pub const MAX_RATE: u32 = 768_000;

/// Largest ratio between the two rates. The filter's length grows with it: at 256× the
/// worst rate pair (coprime rates near the limits) takes about 265 MB at `best`, the
/// usual ones a few MB; at 768 kHz → 1 Hz it would take 4.9 GB.
pub const MAX_RATIO: u32 = 256;

/// How much work the resampler puts into its anti-aliasing filter (see the module
/// docs for the measured figures of each level).
#[derive(Clone, Copy, Debug, Default, Deserialize, JsonSchema, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Quality {
    /// A short filter: the least delay (under 2 ms), the fastest between rates with an
    /// integer ratio; flat to 0.1 dB up to 0.7 × the new Nyquist frequency, 70 dB
    /// stopband.
    Low,
    /// rubato's FFT resampler in 256-frame blocks.
    Medium,
    /// Flat to 0.1 dB up to 0.9 × the new Nyquist frequency, ≥ 90 dB stopband, 5 ms
    /// delay (a fixed filter applied to whatever input has arrived).
    #[default]
    High,
    /// The longest filter, computed in double precision.
    Best,
}

impl Quality {
    /// Every level, from fastest to best.
    pub const ALL: [Quality; 4] = [Quality::Low, Quality::Medium, Quality::High, Quality::Best];

    /// The level's name as written in manifests.
    pub fn name(self) -> &'static str {
        match self {
            Quality::Low => "low",
            Quality::Medium => "medium",
            Quality::High => "high",
            Quality::Best => "best",
        }
    }

    /// The level called `name`, in any letter case.
    pub fn from_name_ignoring_case(name: &str) -> Option<Quality> {
        Quality::ALL
            .into_iter()
            .find(|q| q.name().eq_ignore_ascii_case(name))
    }

    /// Target block length on the slower side of the conversion, in frames (rubato's
    /// levels; `low` and `high` have no fixed block).
    fn block(self) -> usize {
        match self {
            Quality::Best => 2048,
            _ => 256,
        }
    }
}

impl fmt::Display for Quality {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a [`Resampler`] could not be made.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ResampleError {
    /// A rate of zero.
    #[error("sample rates must be above 0 Hz, got {from} Hz to {to} Hz")]
    ZeroRate {
        /// Input rate.
        from: u32,
        /// Output rate.
        to: u32,
    },
    /// A rate above [`MAX_RATE`], or rates more than [`MAX_RATIO`] apart.
    #[error(
        "cannot resample {from} Hz to {to} Hz: rates up to {MAX_RATE} Hz and at most \
         {MAX_RATIO}× apart are supported"
    )]
    OutOfRange {
        /// Input rate.
        from: u32,
        /// Output rate.
        to: u32,
    },
    /// No channels or more than [`MAX_CHANNELS`].
    #[error("expected 1 to {MAX_CHANNELS} channels, got {0}")]
    Channels(u16),
    /// rubato refused the configuration.
    #[error("cannot resample {from} Hz to {to} Hz: {message}")]
    Engine {
        /// Input rate.
        from: u32,
        /// Output rate.
        to: u32,
        /// rubato's message.
        message: String,
    },
}

/// A streaming resampler of interleaved `f32` audio from one rate to another.
///
/// Feed it chunks of any size with [`Resampler::process`]; end the stream with
/// [`Resampler::flush`], after which it is ready for a new stream. Output is
/// appended to the caller's vector, so a caller that reuses its vector allocates
/// nothing per chunk.
pub struct Resampler {
    from: u32,
    to: u32,
    channels: usize,
    engine: Engine,
    /// Input frames of the current stream.
    frames_in: u64,
    /// Output frames emitted for the current stream.
    frames_out: u64,
    /// Output frames still to drop (the filter delay) at the start of the stream.
    to_trim: usize,
    /// The filter delay, in output frames.
    delay: usize,
    /// Input not yet making up a whole block (interleaved, fewer than a block's frames).
    pending: Vec<f32>,
}

impl fmt::Debug for Resampler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Resampler")
            .field("from", &self.from)
            .field("to", &self.to)
            .field("channels", &self.channels)
            .field("block_in", &self.block_in())
            .field("delay", &self.delay)
            .finish_non_exhaustive()
    }
}

/// The FFT resampler in the precision of the quality level, with its block buffers.
enum Engine {
    /// Same rate: samples are copied.
    Copy,
    F32(Block<f32>),
    F64(Block<f64>),
    /// `high`, and `low` between rates without an integer ratio: a fixed filter by FFT
    /// overlap-save on whatever whole units arrived.
    Ols(OverlapSave),
    /// `low` between rates with an integer ratio: a short filter in the time domain.
    Fir(Polyphase),
}

/// `high`'s filter.
const HIGH: Design = Design {
    attenuation_db: 110.0,
    passband: 0.91,
};

/// `low`'s filter: flat to 0.8 of the lower Nyquist frequency, 72 dB down from 1.2 of it
/// (integer ratios, time domain) or from it (other ratios, overlap-save).
const LOW: Design = Design {
    attenuation_db: 72.0,
    passband: 0.8,
};

/// One precision's resampler, with an input and an output block (interleaved).
struct Block<T> {
    fft: Fft<T>,
    frames_in: usize,
    frames_out: usize,
    input: Vec<T>,
    output: Vec<T>,
}

/// The conversions between `f32` samples and the engine's precision.
trait Precision: rubato::Sample {
    fn widen(x: f32) -> Self;
    fn narrow(self) -> f32;
}

impl Precision for f32 {
    fn widen(x: f32) -> Self {
        x
    }
    fn narrow(self) -> f32 {
        self
    }
}

impl Precision for f64 {
    fn widen(x: f32) -> Self {
        f64::from(x)
    }
    fn narrow(self) -> f32 {
        self as f32
    }
}

impl<T: Precision> Block<T> {
    fn new(
        from: u32,
        to: u32,
        channels: usize,
        quality: Quality,
    ) -> Result<(Self, usize), ResampleError> {
        let (from_us, to_us) = (from as usize, to as usize);
        let gcd = gcd(from_us, to_us);
        let (min_in, min_out) = (from_us / gcd, to_us / gcd);
        // Blocks of a whole, even number of minimal blocks: then half a block (the
        // filter delay) is a whole number of frames on both sides.
        let units = quality.block().div_ceil(min_in.min(min_out));
        let units = units.max(2).next_multiple_of(2);
        let frames_in = units * min_in;
        let frames_out = units * min_out;
        let fft = Fft::<T>::new_custom(
            from_us,
            to_us,
            frames_in,
            1,
            channels,
            WindowFunction::BlackmanHarris2,
            FixedSync::Both,
        )
        .map_err(|e| ResampleError::Engine {
            from,
            to,
            message: e.to_string(),
        })?;
        debug_assert_eq!(fft.input_frames_next(), frames_in);
        debug_assert_eq!(fft.output_frames_next(), frames_out);
        let delay = fft.output_delay();
        Ok((
            Block {
                fft,
                frames_in,
                frames_out,
                input: vec![T::zero(); frames_in * channels],
                output: vec![T::zero(); frames_out * channels],
            },
            delay,
        ))
    }

    /// Resamples one block of input (`frames_in` frames, interleaved); zeros stand in
    /// for what `samples` lacks. The output is in `self.output`, channel after channel.
    fn run(&mut self, samples: &[f32], channels: usize) {
        // The blocks are kept channel after channel, so that rubato copies them whole.
        let n = self.frames_in;
        if channels == 1 {
            for (d, &s) in self.input.iter_mut().zip(samples) {
                *d = T::widen(s);
            }
        } else {
            for (f, frame) in samples.chunks_exact(channels).enumerate() {
                for (c, &s) in frame.iter().enumerate() {
                    self.input[c * n + f] = T::widen(s);
                }
            }
        }
        let got = samples.len() / channels;
        if got < n {
            for c in 0..channels {
                self.input[c * n + got..(c + 1) * n].fill(T::zero());
            }
        }
        let input = SequentialSlice::new(&self.input[..], channels, n)
            .expect("the input block holds frames_in frames");
        let mut output = SequentialSlice::new_mut(&mut self.output[..], channels, self.frames_out)
            .expect("the output block holds frames_out frames");
        self.fft
            .process_into_buffer(&input, &mut output, None)
            .expect("blocks are sized for the resampler");
    }

    /// Appends the output block from frame `skip` on to `out`, interleaved.
    fn emit(&self, skip: usize, channels: usize, out: &mut Vec<f32>) {
        let m = self.frames_out;
        if channels == 1 {
            out.extend(self.output[skip..].iter().map(|&x| x.narrow()));
        } else {
            out.extend(
                (skip..m).flat_map(|f| (0..channels).map(move |c| self.output[c * m + f].narrow())),
            );
        }
    }
}

impl Resampler {
    /// A resampler from `from` Hz to `to` Hz of `channels` interleaved channels.
    pub fn new(from: u32, to: u32, channels: u16, quality: Quality) -> Result<Self, ResampleError> {
        if from == 0 || to == 0 {
            return Err(ResampleError::ZeroRate { from, to });
        }
        let (lo, hi) = (from.min(to), from.max(to));
        if hi > MAX_RATE || hi / lo > MAX_RATIO || (hi / lo == MAX_RATIO && hi % lo != 0) {
            return Err(ResampleError::OutOfRange { from, to });
        }
        if channels == 0 || channels > MAX_CHANNELS {
            return Err(ResampleError::Channels(channels));
        }
        let ch = usize::from(channels);
        let ols = |design| {
            let g = gcd(from as usize, to as usize);
            let o = OverlapSave::new(from, to, from as usize / g, to as usize / g, ch, design);
            let d = o.delay();
            (Engine::Ols(o), d)
        };
        let (engine, delay) = match quality {
            _ if from == to => (Engine::Copy, 0),
            Quality::High => ols(HIGH),
            Quality::Low => match Ratio::of(from, to) {
                Some(ratio) => {
                    let p = Polyphase::new(from, to, ratio, ch, LOW);
                    let d = p.delay();
                    (Engine::Fir(p), d)
                }
                None => ols(LOW),
            },
            Quality::Best => {
                let (b, d) = Block::<f64>::new(from, to, ch, quality)?;
                (Engine::F64(b), d)
            }
            Quality::Medium => {
                let (b, d) = Block::<f32>::new(from, to, ch, quality)?;
                (Engine::F32(b), d)
            }
        };
        // The time-domain engine centres its first output frame on the first input
        // frame: it has no delay to trim.
        let to_trim = if matches!(engine, Engine::Fir(_)) {
            0
        } else {
            delay
        };
        let mut r = Resampler {
            from,
            to,
            channels: ch,
            engine,
            frames_in: 0,
            frames_out: 0,
            to_trim,
            delay,
            pending: Vec::new(),
        };
        r.pending.reserve(r.block_in() * ch);
        Ok(r)
    }

    /// Input rate in Hz.
    pub fn from_rate(&self) -> u32 {
        self.from
    }

    /// Output rate in Hz.
    pub fn to_rate(&self) -> u32 {
        self.to
    }

    /// Channels per frame.
    pub fn channels(&self) -> u16 {
        self.channels as u16
    }

    /// Input frames the resampler works on at a time (1 when the rates are equal; a
    /// unit of `from / gcd(from, to)` frames on the overlap-save engine; the ratio
    /// down, 1 up, on the time-domain one; rubato's block at `medium` and `best`): up to
    /// one block less one frame is held back between calls, on top of the filter delay.
    pub fn block_in(&self) -> usize {
        match &self.engine {
            Engine::Copy => 1,
            Engine::F32(b) => b.frames_in,
            Engine::F64(b) => b.frames_in,
            Engine::Ols(o) => o.unit_in(),
            Engine::Fir(p) => p.step_in(),
        }
    }

    /// The filter delay in output frames (trimmed from the output, so it never shows
    /// in it).
    pub fn delay(&self) -> usize {
        self.delay
    }

    /// Output frames a whole stream of `frames` input frames gives:
    /// `ceil(frames * to / from)`.
    pub fn output_len(&self, frames: u64) -> u64 {
        let n = u128::from(frames) * u128::from(self.to);
        n.div_ceil(u128::from(self.from)) as u64
    }

    /// Resamples `input` (interleaved, a whole number of frames) and appends what is
    /// ready to `out`. The last incomplete block stays inside until more input comes
    /// or [`Resampler::flush`].
    ///
    /// # Panics
    ///
    /// When `input` is not a whole number of frames.
    pub fn process(&mut self, input: &[f32], out: &mut Vec<f32>) {
        let ch = self.channels;
        assert_eq!(input.len() % ch, 0, "input must be whole frames");
        self.frames_in += (input.len() / ch) as u64;
        if let Engine::Copy = self.engine {
            out.extend_from_slice(input);
            self.frames_out += (input.len() / ch) as u64;
            return;
        }
        if let Engine::Ols(_) = self.engine {
            self.process_units(input, out);
            return;
        }
        if let Engine::Fir(p) = &mut self.engine {
            self.frames_out += p.process(input, out) as u64;
            return;
        }
        let block = self.block_in() * ch;
        let mut rest = input;
        if !self.pending.is_empty() {
            let take = (block - self.pending.len()).min(rest.len());
            self.pending.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.pending.len() < block {
                return;
            }
            let pending = std::mem::take(&mut self.pending);
            self.run_block(&pending, out);
            self.pending = pending;
            self.pending.clear();
        }
        let mut blocks = rest.chunks_exact(block);
        for b in blocks.by_ref() {
            self.run_block(b, out);
        }
        self.pending.extend_from_slice(blocks.remainder());
    }

    /// Ends the stream: pushes the held input and the filter's tail through, so that
    /// the stream's whole output is exactly [`Resampler::output_len`] frames, appends it
    /// to `out` and makes the resampler ready for a new stream.
    pub fn flush(&mut self, out: &mut Vec<f32>) {
        let want = self.output_len(self.frames_in);
        if let Engine::Fir(p) = &mut self.engine {
            p.finish((want - self.frames_out) as usize, out);
        } else if let Engine::Ols(o) = &mut self.engine {
            let start = out.len();
            let remaining = (want - self.frames_out) as usize;
            if remaining > 0 {
                let units = (remaining + self.to_trim).div_ceil(o.unit_out());
                o.process_units(&self.pending, units, self.to_trim, out);
                out.truncate(start + remaining * self.channels);
            }
        } else if !matches!(self.engine, Engine::Copy) {
            let start = out.len();
            let before = self.frames_out;
            let pending = std::mem::take(&mut self.pending);
            let mut first: &[f32] = &pending;
            while self.frames_out < want {
                self.run_block(first, out);
                first = &[];
            }
            // The last block overshoots: keep only the stream's frames.
            let keep = (want - before) as usize * self.channels;
            out.truncate(start + keep);
            self.pending = pending;
            self.pending.clear();
        }
        self.reset();
    }

    /// Forgets the current stream (its held input and filter state) without output.
    pub fn reset(&mut self) {
        match &mut self.engine {
            Engine::Copy => {}
            Engine::F32(b) => b.fft.reset(),
            Engine::F64(b) => b.fft.reset(),
            Engine::Ols(o) => o.reset(),
            Engine::Fir(p) => p.reset(),
        }
        self.pending.clear();
        self.frames_in = 0;
        self.frames_out = 0;
        self.to_trim = self.delay;
    }

    /// The `high` engine's part of [`Resampler::process`]: whole units go through at
    /// once, less than a unit waits in `pending`.
    fn process_units(&mut self, input: &[f32], out: &mut Vec<f32>) {
        let Engine::Ols(o) = &mut self.engine else {
            unreachable!("only the overlap-save engine works in units")
        };
        let ch = self.channels;
        let unit = o.unit_in() * ch;
        let mut rest = input;
        let mut made = 0;
        let trim = self.to_trim;
        if !self.pending.is_empty() {
            let take = (unit - self.pending.len()).min(rest.len());
            self.pending.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.pending.len() < unit {
                return;
            }
            made += o.process_units(&self.pending, 1, trim, out);
            self.pending.clear();
        }
        let units = rest.len() / unit;
        if units > 0 {
            made += o.process_units(rest, units, trim - trim.min(made), out);
        }
        self.pending.extend_from_slice(&rest[units * unit..]);
        let skipped = trim.min(made);
        self.to_trim -= skipped;
        self.frames_out += (made - skipped) as u64;
    }

    /// Resamples one block (fewer samples are padded with zeros) and appends its output
    /// past the part of the delay still to trim.
    fn run_block(&mut self, samples: &[f32], out: &mut Vec<f32>) {
        let ch = self.channels;
        let produced = match &mut self.engine {
            Engine::Copy | Engine::Ols(_) | Engine::Fir(_) => {
                unreachable!("this engine has no fixed blocks")
            }
            // Mono, a whole block, past the delay: from the caller's samples straight
            // into its output (the same arithmetic, two copies fewer).
            Engine::F32(b) if ch == 1 && samples.len() == b.frames_in && self.to_trim == 0 => {
                let start = out.len();
                out.resize(start + b.frames_out, 0.0);
                let input = SequentialSlice::new(samples, 1, b.frames_in)
                    .expect("a whole block of mono frames");
                let mut output = SequentialSlice::new_mut(&mut out[start..], 1, b.frames_out)
                    .expect("room for a block of output");
                b.fft
                    .process_into_buffer(&input, &mut output, None)
                    .expect("blocks are sized for the resampler");
                b.frames_out
            }
            Engine::F32(b) => {
                b.run(samples, ch);
                let skip = self.to_trim.min(b.frames_out);
                b.emit(skip, ch, out);
                b.frames_out - skip
            }
            Engine::F64(b) => {
                b.run(samples, ch);
                let skip = self.to_trim.min(b.frames_out);
                b.emit(skip, ch, out);
                b.frames_out - skip
            }
        };
        let block_out = match &self.engine {
            Engine::F32(b) => b.frames_out,
            Engine::F64(b) => b.frames_out,
            Engine::Copy | Engine::Ols(_) | Engine::Fir(_) => 0,
        };
        self.to_trim -= self.to_trim.min(block_out);
        self.frames_out += produced as u64;
    }
}

fn gcd(mut a: usize, mut b: usize) -> usize {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(rate: u32, freq: f64, frames: usize, channels: usize) -> Vec<f32> {
        (0..frames)
            .flat_map(|i| {
                let v = (std::f64::consts::TAU * freq * i as f64 / f64::from(rate)).sin() * 0.5;
                std::iter::repeat_n(v as f32, channels)
            })
            .collect()
    }

    #[test]
    fn lengths_are_the_rate_ratio() {
        for (from, to) in [
            (48_000, 16_000),
            (44_100, 16_000),
            (16_000, 44_100),
            (8_000, 48_000),
        ] {
            for q in Quality::ALL {
                let mut r = Resampler::new(from, to, 2, q).unwrap();
                let mut out = Vec::new();
                for n in [1usize, 17, 999, 5] {
                    r.process(&sine(from, 440.0, n, 2), &mut out);
                }
                r.flush(&mut out);
                assert_eq!(
                    out.len() / 2,
                    (1022u64 * u64::from(to)).div_ceil(u64::from(from)) as usize
                );
                // Ready for a new stream, empty ones included.
                let mut again = Vec::new();
                r.flush(&mut again);
                assert!(again.is_empty());
            }
        }
    }

    #[test]
    fn far_apart_and_coprime_rates_work_at_high_and_low() {
        let pairs = [
            (44_100, 44_101),
            (96_000, 1_000),
            (1_000, 96_000),
            (768_000, 3_000),
        ];
        for ((from, to), q) in pairs
            .into_iter()
            .flat_map(|p| [(p, Quality::High), (p, Quality::Low)])
        {
            let mut r = Resampler::new(from, to, 1, q).unwrap();
            let mut out = Vec::new();
            for n in [1usize, 5, 11] {
                r.process(&sine(from, 0.1, n, 1), &mut out);
            }
            r.flush(&mut out);
            assert_eq!(
                out.len() as u64,
                (17 * u64::from(to)).div_ceil(u64::from(from)),
                "{from} -> {to} {q}"
            );
        }
    }

    #[test]
    fn same_rate_copies() {
        let mut r = Resampler::new(16_000, 16_000, 1, Quality::High).unwrap();
        let x = sine(16_000, 1000.0, 100, 1);
        let mut out = Vec::new();
        r.process(&x, &mut out);
        r.flush(&mut out);
        assert_eq!(out, x);
    }

    #[test]
    fn bad_configurations_are_errors() {
        assert_eq!(
            Resampler::new(0, 16_000, 1, Quality::High)
                .unwrap_err()
                .to_string(),
            "sample rates must be above 0 Hz, got 0 Hz to 16000 Hz"
        );
        assert_eq!(
            Resampler::new(48_000, 16_000, 9, Quality::High)
                .unwrap_err()
                .to_string(),
            "expected 1 to 8 channels, got 9"
        );
        // The rates come from the client's items: no filter of gigabytes.
        for (from, to) in [(4_000_000_000, 16_000), (768_000, 1), (16_000, 769_000)] {
            assert_eq!(
                Resampler::new(from, to, 1, Quality::High)
                    .unwrap_err()
                    .to_string(),
                format!(
                    "cannot resample {from} Hz to {to} Hz: rates up to 768000 Hz and at most \
                     256× apart are supported"
                )
            );
        }
        assert!(Resampler::new(768_000, 3_000, 1, Quality::Best).is_ok());
        assert!(Resampler::new(768_000, 2_999, 1, Quality::Best).is_err());
        assert_eq!(
            Quality::from_name_ignoring_case("HiGh"),
            Some(Quality::High)
        );
        assert_eq!(Quality::from_name_ignoring_case("ultra"), None);
    }
}
