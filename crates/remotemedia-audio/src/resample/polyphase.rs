//! The `low` engine for integer ratios (48 kHz → 16 kHz, 16 kHz → 48 kHz, …): a short
//! Kaiser-windowed sinc filter applied in the time domain, split into polyphase rows so
//! that only the output frames are computed.
//!
//! - Down by `D`: output frame `j` is `Σ_k h[k]·x[jD + k − c]` (the filter centred on
//!   input frame `jD`). Split by `k mod D`, that is `D` short convolutions of the input's
//!   phases `x[mD + p]`, summed.
//! - Up by `U`: output frame `iU + r` is `U·Σ_t h[tU + o_r]·x[i + t − d_r]`: for each of
//!   the `U` output phases one short convolution of the input itself.
//!
//! The transition band straddles the lower Nyquist frequency (flat to `passband` of it,
//! fully attenuated from `2 − passband` of it), as fast resamplers such as
//! `scipy.signal.resample_poly` do: what lies just above the Nyquist frequency folds
//! into the top of the transition band, never into the passband. That halves the filter
//! for the same passband, which is what makes this the fast level.
//!
//! Every output frame is the same dot product whatever the chunks were: blocks are
//! computed in whole vectors from buffers padded with zeros, so the output of 20 ms
//! chunks is bit-identical to the output of one call. The kernel uses AVX-512 or AVX2
//! with FMA where the CPU has them, plain arithmetic otherwise.

use super::filter::{kaiser_beta, kaiser_length, kaiser_sinc, Design};

/// Output frames computed per kernel call (the kernel works in multiples of this).
const STEP: usize = 64;
/// Steps (of `a` input frames each) per block: bounds the block buffers (a few tens of
/// KiB per row) so that they stay in cache between filling and filtering.
const BLOCK_STEPS: usize = 2048;

/// Which way the rate changes, by how much.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Ratio {
    /// `from = D · to`.
    Down(usize),
    /// `to = U · from`.
    Up(usize),
}

impl Ratio {
    /// The integer ratio between `from` and `to`, if there is one.
    pub(super) fn of(from: u32, to: u32) -> Option<Ratio> {
        if from > to && from.is_multiple_of(to) {
            Some(Ratio::Down((from / to) as usize))
        } else if to > from && to.is_multiple_of(from) {
            Some(Ratio::Up((to / from) as usize))
        } else {
            None
        }
    }

    /// Input frames per step of the resampler (`D` down, 1 up).
    fn frames_in(self) -> usize {
        match self {
            Ratio::Down(d) => d,
            Ratio::Up(_) => 1,
        }
    }

    /// Output frames per step (1 down, `U` up).
    fn frames_out(self) -> usize {
        match self {
            Ratio::Down(_) => 1,
            Ratio::Up(u) => u,
        }
    }
}

/// The instruction set the kernel runs on, chosen once per resampler.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Isa {
    Plain,
    #[cfg(target_arch = "x86_64")]
    Avx2,
    #[cfg(target_arch = "x86_64")]
    Avx512,
}

impl Isa {
    fn detect() -> Isa {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                return Isa::Avx512;
            }
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                return Isa::Avx2;
            }
        }
        Isa::Plain
    }
}

/// Deinterleaves the frames of `src` (`ch` channels) into `d` phase rows of `len`
/// samples each, channel `c`: frame `m·d + p` goes to row `p` at `at + m`, while the rows
/// have room. Returns the index the rows were filled to (`at` plus the whole groups of
/// `d` frames used; a group cut short by the end of `src` fills only its first phases,
/// the caller clears from the returned index on).
fn split_phases(
    src: &[f32],
    d: usize,
    ch: usize,
    c: usize,
    rows: &mut [f32],
    len: usize,
    at: usize,
) -> usize {
    let room = len - at;
    let groups = (src.len() / ch).div_ceil(d).min(room);
    let whole = (src.len() / (ch * d)).min(groups);
    // The common case gets a loop the compiler can keep in registers and vectorize.
    macro_rules! mono {
        ($d:literal) => {{
            let outs = split_rows::<$d>(rows, len, at, whole);
            for (m, g) in src.chunks_exact($d).take(whole).enumerate() {
                for p in 0..$d {
                    outs[p][m] = g[p];
                }
            }
        }};
    }
    match (ch, d) {
        (1, 2) => mono!(2),
        (1, 3) => mono!(3),
        (1, 4) => mono!(4),
        _ => {
            for (m, g) in src.chunks_exact(ch * d).take(whole).enumerate() {
                for p in 0..d {
                    rows[p * len + at + m] = g[p * ch + c];
                }
            }
        }
    }
    if groups > whole {
        // The last, partial group.
        let g = &src[whole * ch * d..];
        for (p, frame) in g.chunks_exact(ch).enumerate() {
            rows[p * len + at + whole] = frame[c];
        }
        for p in g.len() / ch..d {
            rows[p * len + at + whole] = 0.0;
        }
        return at + whole + 1;
    }
    at + whole
}

/// Interleaves `u` output phases (phase `r` at `acc[r·padded..]`) into `dst`: frame
/// `i·u + r` is phase `r`'s `i`th value.
fn interleave_phases(acc: &[f32], padded: usize, u: usize, dst: &mut [f32]) {
    macro_rules! phases {
        ($u:literal) => {{
            let rows: [&[f32]; $u] = std::array::from_fn(|r| &acc[r * padded..(r + 1) * padded]);
            for (i, frame) in dst.chunks_exact_mut($u).enumerate() {
                for r in 0..$u {
                    frame[r] = rows[r][i];
                }
            }
        }};
    }
    match u {
        2 => phases!(2),
        3 => phases!(3),
        4 => phases!(4),
        _ => {
            for (i, frame) in dst.chunks_exact_mut(u).enumerate() {
                for (r, d) in frame.iter_mut().enumerate() {
                    *d = acc[r * padded + i];
                }
            }
        }
    }
}

/// The `D` rows of `len` samples in `rows`, each from sample `at`, `count` long.
fn split_rows<const D: usize>(
    rows: &mut [f32],
    len: usize,
    at: usize,
    count: usize,
) -> [&mut [f32]; D] {
    let mut rest = rows;
    std::array::from_fn(|_| {
        let (row, tail) = std::mem::take(&mut rest).split_at_mut(len);
        rest = tail;
        &mut row[at..at + count]
    })
}

/// The rows of a sum of dot products: row `p` has the taps `taps[p·per..(p+1)·per]` and
/// the samples from `x[p·stride..]` (its first output's).
#[derive(Clone, Copy)]
struct Rows<'a> {
    taps: &'a [f32],
    per: usize,
    x: &'a [f32],
    stride: usize,
    count: usize,
}

impl<'a> Rows<'a> {
    fn row(&self, p: usize) -> (&'a [f32], &'a [f32]) {
        (
            &self.taps[p * self.per..(p + 1) * self.per],
            &self.x[p * self.stride..],
        )
    }
}

/// The polyphase resampler of one stream (see the module docs).
pub(super) struct Polyphase {
    ratio: Ratio,
    channels: usize,
    /// The rows' taps, `per` each: the `D` input phases down, the `U` output phases up.
    taps: Vec<f32>,
    per: usize,
    /// Up: where each output phase's samples start in the stream, past a step's first.
    offsets: Vec<usize>,
    /// Frames of the padded stream one step reads, from its first.
    window: usize,
    /// Zeros before the stream: the filter reaches back that far from the first output.
    lead: usize,
    /// The filter delay in output frames.
    delay: usize,
    /// Per channel, the padded stream from the next step's first frame on.
    history: Vec<Vec<f32>>,
    /// Block buffers: the rows' samples, and the outputs of one row set.
    rows: Vec<f32>,
    acc: Vec<f32>,
    /// Up, mono: one block's output frames in order.
    interleaved: Vec<f32>,
    isa: Isa,
}

/// The filter split into rows, and where they sit in the stream.
struct Phases {
    /// Taps of each row, `per` each (zero-padded), row after row.
    taps: Vec<f32>,
    per: usize,
    /// Up: where each output phase's samples start, past a step's first frame.
    offsets: Vec<usize>,
    /// Zeros before the stream.
    lead: usize,
    /// The filter delay in output frames.
    delay: usize,
}

impl Phases {
    /// Down by `d`: the filter (`length` taps wanted at the input rate) centred on an
    /// input frame of each output, so the delay is whole output frames (an even number,
    /// so that 20 ms chunks at 16 kHz stay whole microseconds long); row `p` holds the
    /// taps of input phase `p`.
    fn down(d: usize, length: f64, cutoff: f64, design: Design) -> Phases {
        let delay = ((length - 1.0) / 2.0 / d as f64).ceil() as usize;
        let delay = delay.next_multiple_of(2).max(2);
        let centre = delay * d;
        let h = taps(2 * centre + 1, centre, cutoff, design);
        let per = h.len().div_ceil(d);
        let mut taps = vec![0.0f32; d * per];
        for (k, &v) in h.iter().enumerate() {
            taps[(k % d) * per + k / d] = v as f32;
        }
        Phases {
            taps,
            per,
            offsets: Vec::new(),
            lead: centre,
            delay,
        }
    }

    /// Up by `u`: the filter (`length` taps wanted at the output rate) centred on output
    /// frame `c`; row `r` holds `U·h[t·U + o_r]`, on input frames `i + t − d_r` for
    /// output frame `i·U + r`, where `c − r = d_r·U + o_r`.
    fn up(u: usize, length: f64, cutoff: f64, design: Design) -> Phases {
        let centre = (((length - 1.0) / 2.0).ceil() as usize).next_multiple_of(2);
        let centre = centre.max(u);
        let h = taps(2 * centre + 1, centre, cutoff, design);
        let per = h.len().div_ceil(u) + 1;
        let mut taps = vec![0.0f32; u * per];
        let d: Vec<usize> = (0..u).map(|r| (centre - r) / u).collect();
        let lead = d[0];
        let mut offsets = Vec::with_capacity(u);
        for r in 0..u {
            let o = (centre - r) % u;
            for t in 0..per {
                if let Some(&v) = h.get(t * u + o) {
                    taps[r * per + t] = (v * u as f64) as f32;
                }
            }
            offsets.push(lead - d[r]);
        }
        Phases {
            taps,
            per,
            offsets,
            lead,
            delay: centre,
        }
    }
}

/// The filter's taps at the fast rate. The window is the design's: the taps that
/// rounding the length up adds narrow the transition band (a wider passband) rather
/// than deepen the stopband.
fn taps(n_taps: usize, centre: usize, cutoff: f64, design: Design) -> Vec<f64> {
    kaiser_sinc(
        n_taps,
        centre as f64,
        cutoff,
        kaiser_beta(design.attenuation_db),
    )
}

impl Polyphase {
    /// A resampler for `ratio` (between `from` and `to` Hz) of `channels` channels.
    pub(super) fn new(from: u32, to: u32, ratio: Ratio, channels: usize, design: Design) -> Self {
        let fast = f64::from(from.max(to));
        let nyquist = f64::from(from.min(to)) / 2.0;
        // The transition band: from `passband` to `2 − passband` of the Nyquist frequency.
        let width = std::f64::consts::TAU * 2.0 * (1.0 - design.passband) * nyquist / fast;
        let length = kaiser_length(design.attenuation_db, width);
        let cutoff = nyquist / fast; // cycles per frame at the fast rate
        let Phases {
            taps,
            per,
            offsets,
            lead,
            delay,
        } = match ratio {
            Ratio::Down(d) => Phases::down(d, length, cutoff, design),
            Ratio::Up(u) => Phases::up(u, length, cutoff, design),
        };
        let window = match ratio {
            Ratio::Down(d) => d * per,
            Ratio::Up(_) => offsets.iter().max().copied().unwrap_or(0) + per,
        };
        Polyphase {
            ratio,
            channels,
            taps,
            per,
            offsets,
            window,
            lead,
            delay,
            history: vec![vec![0.0; lead]; channels],
            rows: Vec::new(),
            acc: Vec::new(),
            interleaved: Vec::new(),
            isa: Isa::detect(),
        }
    }

    /// The filter delay in output frames (never emitted: output frame 0 is centred on
    /// input frame 0).
    pub(super) fn delay(&self) -> usize {
        self.delay
    }

    /// Input frames per step: fewer than this past the window wait for more input.
    pub(super) fn step_in(&self) -> usize {
        self.ratio.frames_in()
    }

    /// Clears the history (a new stream starts from silence).
    pub(super) fn reset(&mut self) {
        for h in &mut self.history {
            h.clear();
            h.resize(self.lead, 0.0);
        }
    }

    /// Resamples `input` (interleaved) and appends every output frame it completes to
    /// `out`. Returns the frames appended.
    pub(super) fn process(&mut self, input: &[f32], out: &mut Vec<f32>) -> usize {
        let frames = input.len() / self.channels;
        let total = self.history[0].len() + frames;
        let steps = if total >= self.window {
            (total - self.window) / self.ratio.frames_in() + 1
        } else {
            0
        };
        self.run(input, steps, out);
        self.keep(input, steps);
        steps * self.ratio.frames_out()
    }

    /// Ends the stream: appends `frames` more output frames, computed as if silence
    /// followed the input, and clears the history.
    pub(super) fn finish(&mut self, frames: usize, out: &mut Vec<f32>) {
        if frames > 0 {
            let steps = frames.div_ceil(self.ratio.frames_out());
            let start = out.len();
            self.run(&[], steps, out);
            out.truncate(start + frames * self.channels);
        }
        self.reset();
    }

    /// Appends the output of `steps` steps from the start of the history (the stream
    /// being the history, then `input`, then silence).
    fn run(&mut self, input: &[f32], steps: usize, out: &mut Vec<f32>) {
        let ch = self.channels;
        let mut done = 0;
        while done < steps {
            let n = (steps - done).min(BLOCK_STEPS);
            let padded = n.next_multiple_of(STEP);
            let base = out.len();
            if ch == 1 {
                // Mono: appended whole (no zero-filled output written twice).
                self.block(input, 0, done, padded);
                match self.ratio {
                    Ratio::Down(_) => out.extend_from_slice(&self.acc[..n]),
                    Ratio::Up(u) => {
                        self.interleaved.resize(n * u, 0.0);
                        interleave_phases(&self.acc, padded, u, &mut self.interleaved);
                        out.extend_from_slice(&self.interleaved);
                    }
                }
                done += n;
                continue;
            }
            out.resize(base + n * self.ratio.frames_out() * ch, 0.0);
            for c in 0..ch {
                self.block(input, c, done, padded);
                let dst = &mut out[base..];
                match self.ratio {
                    Ratio::Down(_) => {
                        for (f, &v) in self.acc[..n].iter().enumerate() {
                            dst[f * ch + c] = v;
                        }
                    }
                    Ratio::Up(u) => {
                        for r in 0..u {
                            let acc = &self.acc[r * padded..r * padded + n];
                            for (i, &v) in acc.iter().enumerate() {
                                dst[(i * u + r) * ch + c] = v;
                            }
                        }
                    }
                }
            }
            done += n;
        }
    }

    /// Computes `padded` steps from step `first` of channel `c` into `acc` (up: one
    /// run of `padded` per output phase).
    fn block(&mut self, input: &[f32], c: usize, first: usize, padded: usize) {
        let (a, per) = (self.ratio.frames_in(), self.per);
        let hist = &self.history[c];
        // Fills `dst` with frames `start`, `start + stride`, … of the stream (the history,
        // then the input, then zeros), channel `c`.
        let ch = self.channels;
        let gather = |start: usize, stride: usize, dst: &mut [f32]| {
            let mut k = start;
            let mut i = 0;
            while i < dst.len() && k < hist.len() {
                dst[i] = hist[k];
                i += 1;
                k += stride;
            }
            if i < dst.len() {
                let from_input = k - hist.len();
                if from_input * ch < input.len() {
                    let src = &input[from_input * ch + c..];
                    if stride * ch == 1 {
                        let n = src.len().min(dst.len() - i);
                        dst[i..i + n].copy_from_slice(&src[..n]);
                        i += n;
                    } else {
                        for (d, &s) in dst[i..].iter_mut().zip(src.iter().step_by(stride * ch)) {
                            *d = s;
                            i += 1;
                        }
                    }
                }
                dst[i..].fill(0.0);
            }
        };
        match self.ratio {
            Ratio::Down(d) => {
                let len = padded + per + STEP;
                self.rows.resize(d * len, 0.0);
                // Frames from the history one phase at a time, then from the input all
                // phases in one pass.
                let start = first * a;
                let in_hist = hist.len().saturating_sub(start).div_ceil(d).min(len);
                for p in 0..d {
                    gather(start + p, d, &mut self.rows[p * len..p * len + in_hist]);
                }
                let skip = (start + in_hist * d).saturating_sub(hist.len());
                let src = input.get(skip * ch..).unwrap_or(&[]);
                let filled = split_phases(src, d, ch, c, &mut self.rows, len, in_hist);
                for p in 0..d {
                    self.rows[p * len + filled..(p + 1) * len].fill(0.0);
                }
                self.acc.resize(padded, 0.0);
                let rows = Rows {
                    taps: &self.taps,
                    per,
                    x: &self.rows,
                    stride: len,
                    count: d,
                };
                // The next block's input, read from memory while this one computes.
                let next = (skip + (filled - in_hist) * d) * ch;
                let ahead = input.get(next..).unwrap_or(&[]);
                let ahead = &ahead[..ahead.len().min(padded * d * ch)];
                dot_rows(self.isa, rows, padded, &mut self.acc, ahead);
            }
            Ratio::Up(u) => {
                let len = padded + self.window + STEP;
                self.rows.resize(len, 0.0);
                gather(first, 1, &mut self.rows[..len]);
                self.acc.resize(u * padded, 0.0);
                for r in 0..u {
                    let rows = Rows {
                        taps: &self.taps[r * per..(r + 1) * per],
                        per,
                        x: &self.rows[self.offsets[r]..],
                        stride: 0,
                        count: 1,
                    };
                    let dst = &mut self.acc[r * padded..(r + 1) * padded];
                    dot_rows(self.isa, rows, padded, dst, &[]);
                }
            }
        }
    }

    /// Keeps the stream from step `steps` on as the history.
    fn keep(&mut self, input: &[f32], steps: usize) {
        let ch = self.channels;
        let drop = steps * self.ratio.frames_in();
        for (c, hist) in self.history.iter_mut().enumerate() {
            let from_hist = drop.min(hist.len());
            hist.drain(..from_hist);
            let skip = drop - from_hist;
            hist.extend(input.iter().skip(c).step_by(ch).skip(skip));
        }
    }
}

/// `dst[m] = Σ_rows Σ_t taps[t]·x[m + t]` for `m < n` (`n` a multiple of [`STEP`]).
/// Every output sums in the same order: rows, then taps.
///
/// # Panics
///
/// When a row's samples are shorter than `n + per − 1` or `dst` than `n`.
///
/// `ahead` is memory the caller reads next: it is prefetched while the sums compute.
fn dot_rows(isa: Isa, rows: Rows, n: usize, dst: &mut [f32], ahead: &[f32]) {
    assert_eq!(n % STEP, 0);
    assert!(dst.len() >= n && rows.taps.len() >= rows.count * rows.per);
    for p in 0..rows.count {
        assert!(rows.row(p).1.len() + 1 >= n + rows.per);
    }
    match isa {
        Isa::Plain => dot_rows_plain(rows, n, dst),
        // SAFETY: `detect` found the features; the asserts above bound every access.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => unsafe { kernel::dot_rows_avx2(rows, n, dst, ahead) },
        // SAFETY: as above.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => unsafe { kernel::dot_rows_avx512(rows, n, dst, ahead) },
    }
}

fn dot_rows_plain(rows: Rows, n: usize, dst: &mut [f32]) {
    for (m, d) in dst[..n].iter_mut().enumerate() {
        let mut acc = 0.0f32;
        for p in 0..rows.count {
            let (taps, x) = rows.row(p);
            for (&h, &v) in taps.iter().zip(&x[m..]) {
                acc += h * v;
            }
        }
        *d = acc;
    }
}

#[cfg(target_arch = "x86_64")]
mod kernel {
    use std::arch::x86_64::*;

    use super::{Rows, STEP};

    /// Prefetches a slice a few cache lines at a time, spread over a kernel's steps.
    struct Prefetch {
        at: *const f32,
        end: *const f32,
        lines_per_step: usize,
    }

    impl Prefetch {
        fn new(ahead: &[f32], n: usize) -> Prefetch {
            let lines = ahead.len().div_ceil(16);
            Prefetch {
                at: ahead.as_ptr(),
                end: ahead.as_ptr_range().end,
                lines_per_step: lines.div_ceil((n / STEP).max(1)),
            }
        }

        /// # Safety
        ///
        /// Only prefetches inside the slice given to `new`.
        #[inline(always)]
        unsafe fn next(&mut self) {
            for _ in 0..self.lines_per_step {
                if self.at >= self.end {
                    return;
                }
                _mm_prefetch::<_MM_HINT_T0>(self.at.cast());
                self.at = self.at.wrapping_add(16);
            }
        }
    }

    /// [`super::dot_rows`] on AVX-512: 64 outputs at a time in 4 accumulators, each
    /// tap broadcast once for them.
    ///
    /// # Safety
    ///
    /// The CPU must have AVX-512F; the bounds of [`super::dot_rows`] must hold.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn dot_rows_avx512(rows: Rows, n: usize, dst: &mut [f32], ahead: &[f32]) {
        let mut m = 0;
        let mut fetch = Prefetch::new(ahead, n);
        while m < n {
            fetch.next();
            let mut acc = [_mm512_setzero_ps(); 4];
            for r in 0..rows.count {
                let (taps, x) = rows.row(r);
                // In bounds: the last load ends at m + t + 63 <= n + per - 2 < x.len().
                let p = x.as_ptr().add(m);
                for (t, &h) in taps.iter().enumerate() {
                    let hv = _mm512_set1_ps(h);
                    for (i, a) in acc.iter_mut().enumerate() {
                        *a = _mm512_fmadd_ps(hv, _mm512_loadu_ps(p.add(t + 16 * i)), *a);
                    }
                }
            }
            for (i, a) in acc.iter().enumerate() {
                _mm512_storeu_ps(dst.as_mut_ptr().add(m + 16 * i), *a);
            }
            m += STEP;
        }
    }

    /// [`super::dot_rows`] on AVX2 with FMA: 64 outputs at a time in 8 accumulators.
    ///
    /// # Safety
    ///
    /// The CPU must have AVX2 and FMA; the bounds of [`super::dot_rows`] must hold.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn dot_rows_avx2(rows: Rows, n: usize, dst: &mut [f32], ahead: &[f32]) {
        let mut m = 0;
        let mut fetch = Prefetch::new(ahead, n);
        while m < n {
            fetch.next();
            let mut acc = [_mm256_setzero_ps(); 8];
            for r in 0..rows.count {
                let (taps, x) = rows.row(r);
                // In bounds as in `dot_rows_avx512`.
                let p = x.as_ptr().add(m);
                for (t, &h) in taps.iter().enumerate() {
                    let hv = _mm256_set1_ps(h);
                    for (i, a) in acc.iter_mut().enumerate() {
                        *a = _mm256_fmadd_ps(hv, _mm256_loadu_ps(p.add(t + 8 * i)), *a);
                    }
                }
            }
            for (i, a) in acc.iter().enumerate() {
                _mm256_storeu_ps(dst.as_mut_ptr().add(m + 8 * i), *a);
            }
            m += STEP;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOW: Design = Design {
        attenuation_db: 70.0,
        passband: 0.8,
    };

    /// The module docs' sums, in f64, for `x` as one whole stream (zeros around it).
    fn direct(p: &Polyphase, x: &[f32], frames_out: usize) -> Vec<f64> {
        let at = |k: isize| {
            if k < 0 || k as usize >= x.len() {
                0.0
            } else {
                f64::from(x[k as usize])
            }
        };
        (0..frames_out)
            .map(|j| match p.ratio {
                Ratio::Down(d) => (0..d * p.per)
                    .map(|k| {
                        let h = f64::from(p.taps[(k % d) * p.per + k / d]);
                        h * at((j * d + k) as isize - p.lead as isize)
                    })
                    .sum(),
                Ratio::Up(u) => {
                    let (i, r) = (j / u, j % u);
                    (0..p.per)
                        .map(|t| {
                            let h = f64::from(p.taps[r * p.per + t]);
                            h * at((i + p.offsets[r] + t) as isize - p.lead as isize)
                        })
                        .sum()
                }
            })
            .collect()
    }

    fn noise(n: usize) -> Vec<f32> {
        let mut s = 0x1234_5678u32;
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                (s as f32 / u32::MAX as f32) - 0.5
            })
            .collect()
    }

    #[test]
    fn every_instruction_set_computes_the_sums_of_the_docs() {
        let x = noise(5_000);
        for (from, to) in [
            (48_000, 16_000),
            (32_000, 16_000),
            (16_000, 48_000),
            (8_000, 16_000),
        ] {
            let ratio = Ratio::of(from, to).unwrap();
            let mut isas = vec![Isa::Plain];
            #[cfg(target_arch = "x86_64")]
            {
                if std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
                {
                    isas.push(Isa::Avx2);
                }
                if std::arch::is_x86_feature_detected!("avx512f") {
                    isas.push(Isa::Avx512);
                }
            }
            for isa in isas {
                let mut p = Polyphase::new(from, to, ratio, 1, LOW);
                p.isa = isa;
                let want = x.len() * to as usize / from as usize;
                let mut out = Vec::new();
                let made = p.process(&x, &mut out);
                p.finish(want - made, &mut out);
                assert_eq!(out.len(), want);
                let exact = direct(&Polyphase::new(from, to, ratio, 1, LOW), &x, want);
                let worst = out
                    .iter()
                    .zip(&exact)
                    .map(|(&y, e)| (f64::from(y) - e).abs())
                    .fold(0.0, f64::max);
                assert!(worst < 1e-5, "{from} -> {to} {isa:?}: off by {worst}");
            }
        }
    }

    #[test]
    fn the_output_does_not_depend_on_the_chunks() {
        let x = noise(12_000);
        for (from, to) in [(48_000, 16_000), (16_000, 48_000)] {
            let ratio = Ratio::of(from, to).unwrap();
            let want = x.len() * to as usize / from as usize;
            let mut whole = Vec::new();
            let mut p = Polyphase::new(from, to, ratio, 1, LOW);
            let made = p.process(&x, &mut whole);
            p.finish(want - made, &mut whole);
            for chunk in [1, 7, 320, 961, 4_096] {
                let mut parts = Vec::new();
                let mut made = 0;
                for c in x.chunks(chunk) {
                    made += p.process(c, &mut parts);
                }
                p.finish(want - made, &mut parts);
                assert_eq!(parts, whole, "{from} -> {to} in chunks of {chunk}");
            }
        }
    }

    #[test]
    fn channels_are_filtered_apart() {
        let (l, r) = (noise(3_000), noise(3_100)[100..].to_vec());
        let x: Vec<f32> = l.iter().zip(&r).flat_map(|(&a, &b)| [a, b]).collect();
        for (from, to) in [(48_000, 16_000), (16_000, 48_000)] {
            let ratio = Ratio::of(from, to).unwrap();
            let run = |x: &[f32], ch: usize| {
                let mut p = Polyphase::new(from, to, ratio, ch, LOW);
                let want = x.len() / ch * to as usize / from as usize;
                let mut out = Vec::new();
                let made = p.process(x, &mut out);
                p.finish(want - made, &mut out);
                out
            };
            let both = run(&x, 2);
            let (yl, yr): (Vec<f32>, Vec<f32>) = both.chunks(2).map(|f| (f[0], f[1])).unzip();
            assert_eq!(yl, run(&l, 1));
            assert_eq!(yr, run(&r, 1));
        }
    }

    #[test]
    fn integer_ratios_are_recognised() {
        assert_eq!(Ratio::of(48_000, 16_000), Some(Ratio::Down(3)));
        assert_eq!(Ratio::of(8_000, 48_000), Some(Ratio::Up(6)));
        assert_eq!(Ratio::of(44_100, 16_000), None);
        assert_eq!(Ratio::of(16_000, 16_000), None);
    }
}
