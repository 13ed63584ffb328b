//! The `high` engine: one fixed Kaiser-windowed sinc filter applied by FFT overlap-save,
//! with the rate change done in the frequency domain (the filtered spectrum cut or
//! zero-extended to the output rate before the inverse transform).
//!
//! The filter's length does not depend on the block: each call works on whatever whole
//! units of input have arrived (a unit is `from / gcd` frames, the shortest stretch
//! that maps to a whole number of output frames), in an FFT just long enough for them
//! plus the filter's history, up to a long block for large calls. So only the filter
//! delay (about half the filter) and less than one unit are ever held back, and large
//! calls still run in long, cheap blocks. Every block computes the same linear filter,
//! so the output does not depend on how the input is cut (up to rounding and the
//! filter's stopband leakage, far below 1e-5).

use std::sync::Arc;

use realfft::num_complex::Complex;
use realfft::{ComplexToReal, RealFftPlanner, RealToComplex};

use super::filter::{kaiser_beta, kaiser_length, kaiser_sinc, Design};

/// Long blocks are at least this many times the filter's history.
const LONG_BLOCK_FACTOR: usize = 8;
/// Long blocks hold at least this many frames on the slow side.
const LONG_BLOCK_FRAMES: usize = 1024;
/// Long blocks hold at most this many frames on the fast side, unless the filter's
/// history needs more.
const MAX_LONG_BLOCK: usize = 1 << 17;

/// An FFT size in units (`k` units: `k * a` input frames, `k * b` output frames), its
/// transforms and the filter's spectrum at that size.
struct Plan {
    units: usize,
    fft: Arc<dyn RealToComplex<f32>>,
    ifft: Arc<dyn ComplexToReal<f32>>,
    /// The filter's spectrum on the bins that are kept, scaled by `1 / fft length`.
    filter: Vec<Complex<f32>>,
}

/// The overlap-save resampler of one stream (see the module docs).
pub(super) struct OverlapSave {
    /// Input frames per unit.
    a: usize,
    /// Output frames per unit.
    b: usize,
    channels: usize,
    taps: Vec<f64>,
    /// History kept before each block, in units (covers the filter length).
    hist_units: usize,
    /// The filter delay in output frames.
    delay: usize,
    planner: RealFftPlanner<f32>,
    /// Plans made so far, shortest first; the last one is the long block.
    plans: Vec<Plan>,
    long_units: usize,
    /// The last `hist_units * a` input frames of each channel, channel after channel.
    history: Vec<f32>,
    time: Vec<f32>,
    spectrum: Vec<Complex<f32>>,
    out_spectrum: Vec<Complex<f32>>,
    out_time: Vec<f32>,
    scratch: Vec<Complex<f32>>,
}

impl OverlapSave {
    /// A resampler from `from` to `to` Hz (reduced to `a` to `b` by their gcd).
    ///
    /// The stopband of `design` starts at the lower Nyquist frequency: nothing aliases
    /// back into the passband.
    pub(super) fn new(
        from: u32,
        to: u32,
        a: usize,
        b: usize,
        channels: usize,
        design: Design,
    ) -> Self {
        let (from_f, to_f) = (f64::from(from), f64::from(to));
        let nyquist = from_f.min(to_f) / 2.0;
        let (pass, stop) = (design.passband * nyquist, nyquist);
        // Kaiser's design formulas, at the input rate.
        let beta = kaiser_beta(design.attenuation_db);
        let width = std::f64::consts::TAU * (stop - pass) / from_f;
        let length = kaiser_length(design.attenuation_db, width);
        // The centre of the filter falls on an output frame: then the delay is a
        // whole number of output frames, trimmed from the output. An even number: then
        // 20 ms chunks at 16 kHz stay whole microseconds long.
        let delay = ((length - 1.0) / 2.0 * b as f64 / a as f64).ceil() as usize;
        let delay = delay.next_multiple_of(2);
        let centre = delay as f64 * a as f64 / b as f64;
        let n_taps = (2.0 * centre).floor() as usize + 1;
        let cutoff = (pass + stop) / 2.0 / from_f; // cycles per input frame
        let taps = kaiser_sinc(n_taps, centre, cutoff, beta);
        let hist_units = (n_taps - 1).div_ceil(a).max(1);
        // The long block: several times the history, and on the fast side at most
        // MAX_LONG_BLOCK frames unless the history alone needs more.
        let shortest = (hist_units + 1).next_power_of_two();
        let mut long_units = (LONG_BLOCK_FACTOR * hist_units)
            .max(LONG_BLOCK_FRAMES.div_ceil(a.min(b)))
            .next_power_of_two();
        while long_units > shortest && long_units * a.max(b) > MAX_LONG_BLOCK {
            long_units /= 2;
        }
        let mut s = OverlapSave {
            a,
            b,
            channels,
            taps,
            hist_units,
            delay,
            planner: RealFftPlanner::new(),
            plans: Vec::new(),
            long_units,
            history: vec![0.0; hist_units * a * channels],
            time: Vec::new(),
            spectrum: Vec::new(),
            out_spectrum: Vec::new(),
            out_time: Vec::new(),
            scratch: Vec::new(),
        };
        s.plan_index(long_units);
        s
    }

    /// The filter delay in output frames.
    pub(super) fn delay(&self) -> usize {
        self.delay
    }

    /// Input frames per unit: less than this is held back between calls.
    pub(super) fn unit_in(&self) -> usize {
        self.a
    }

    /// Output frames per unit.
    pub(super) fn unit_out(&self) -> usize {
        self.b
    }

    /// Clears the history (a new stream starts from silence).
    pub(super) fn reset(&mut self) {
        self.history.fill(0.0);
    }

    /// The index in `plans` of the plan of `units` units, made when missing.
    fn plan_index(&mut self, units: usize) -> usize {
        if let Some(i) = self.plans.iter().position(|p| p.units == units) {
            return i;
        }
        let (n_in, n_out) = (units * self.a, units * self.b);
        let fft = self.planner.plan_fft_forward(n_in);
        let ifft = self.planner.plan_fft_inverse(n_out);
        let mut t = vec![0.0f32; n_in];
        let scale = 1.0 / n_in as f64;
        for (d, &h) in t.iter_mut().zip(&self.taps) {
            *d = (h * scale) as f32;
        }
        let mut spec = fft.make_output_vec();
        fft.process(&mut t, &mut spec)
            .expect("buffers are made by the plan");
        spec.truncate(n_in.min(n_out) / 2 + 1);
        let need = fft.get_scratch_len().max(ifft.get_scratch_len());
        if self.scratch.len() < need {
            self.scratch.resize(need, Complex::default());
        }
        let plan = Plan {
            units,
            fft,
            ifft,
            filter: spec,
        };
        let at = self.plans.partition_point(|p| p.units < units);
        self.plans.insert(at, plan);
        at
    }

    /// Resamples `units` whole units of `input` (interleaved; zeros stand in for what it
    /// lacks) and appends the output frames from the block's frame `skip` on to `out`,
    /// interleaved. Returns the output frames the units make (skipped ones included).
    pub(super) fn process_units(
        &mut self,
        input: &[f32],
        mut units: usize,
        mut skip: usize,
        out: &mut Vec<f32>,
    ) -> usize {
        let (a, ch) = (self.a, self.channels);
        let mut done = 0;
        let mut input = input;
        while units > 0 {
            let fit = self.long_units - self.hist_units;
            let now = units.min(fit);
            let size = (now + self.hist_units)
                .next_power_of_two()
                .min(self.long_units);
            let take = (now * a * ch).min(input.len());
            self.block(&input[..take], now, size, skip, out);
            input = &input[take..];
            let made = now * self.b;
            skip -= skip.min(made);
            done += made;
            units -= now;
        }
        done
    }

    /// One FFT block of `size` units: the history, then `units` units of `input`.
    fn block(&mut self, input: &[f32], units: usize, size: usize, skip: usize, out: &mut Vec<f32>) {
        let (a, b, ch) = (self.a, self.b, self.channels);
        let p = self.plan_index(size);
        let plan = &self.plans[p];
        let (n_in, n_out) = (size * a, size * b);
        let hist = self.hist_units * a;
        let new = units * a;
        let got = input.len() / ch;
        self.time.resize(n_in, 0.0);
        self.spectrum.resize(n_in / 2 + 1, Complex::default());
        self.out_spectrum.resize(n_out / 2 + 1, Complex::default());
        self.out_time.resize(n_out, 0.0);
        // Output frames of this block inside the new units, then those past `skip`.
        let first = self.hist_units * b;
        let valid = units * b;
        let skip = skip.min(valid);
        let start = out.len();
        if ch > 1 {
            out.resize(start + (valid - skip) * ch, 0.0);
        }
        let kept = plan.filter.len();
        for c in 0..ch {
            let h = &mut self.history[c * hist..(c + 1) * hist];
            self.time[..hist].copy_from_slice(h);
            let fresh = &mut self.time[hist..hist + new];
            if ch == 1 {
                fresh[..got].copy_from_slice(&input[..got]);
            } else {
                for (d, frame) in fresh[..got].iter_mut().zip(input.chunks_exact(ch)) {
                    *d = frame[c];
                }
            }
            fresh[got..].fill(0.0);
            self.time[hist + new..].fill(0.0);
            h.copy_from_slice(&self.time[new..new + hist]);
            plan.fft
                .process_with_scratch(&mut self.time, &mut self.spectrum, &mut self.scratch)
                .expect("buffers are sized for the plan");
            for ((o, s), f) in self.out_spectrum[..kept]
                .iter_mut()
                .zip(&self.spectrum[..kept])
                .zip(&plan.filter)
            {
                *o = s * f;
            }
            self.out_spectrum[kept..].fill(Complex::default());
            self.out_spectrum[0].im = 0.0;
            if let Some(last) = self.out_spectrum.last_mut() {
                last.im = 0.0;
            }
            plan.ifft
                .process_with_scratch(
                    &mut self.out_spectrum,
                    &mut self.out_time,
                    &mut self.scratch,
                )
                .expect("buffers are sized for the plan");
            let src = &self.out_time[first + skip..first + valid];
            if ch == 1 {
                out.extend_from_slice(src);
            } else {
                for (f, &v) in src.iter().enumerate() {
                    out[start + f * ch + c] = v;
                }
            }
        }
    }
}
