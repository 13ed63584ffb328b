//! The Silero VAD v5 network computed in Rust, on the weights of the model file.
//!
//! The same network as the model's ONNX graph, one rate branch at a time: the input
//! (context and window) reflect-padded by the context length; a short-time Fourier
//! transform as a strided convolution with the model's basis (4 frames), magnitudes;
//! four 3-tap convolutions with ReLU (strides 1, 2, 2, 1); one LSTM cell step on the
//! stream's recurrent state; ReLU, a 1×1 convolution and a sigmoid. Every layer is one
//! matrix product of the layer's weights with the columns of all streams' frames, so a
//! batch of streams reads each weight once. Weights come from the model file's
//! tensors (the `If` branch of each rate in `silero_vad.onnx`), found by their names.

use std::cell::RefCell;
use std::collections::HashMap;

use crate::onnx::Tensor;

/// Output rows are padded to a multiple of this (two AVX vectors).
const ROW_PAD: usize = 16;
/// Hidden size of the LSTM.
const HIDDEN: usize = 128;

/// One matrix product `y = W·x (+ bias)` of a layer: the weights transposed (`k`
/// rows of `o` padded outputs), so each input value scales a run of outputs.
#[derive(Debug)]
struct Dense {
    k: usize,
    o_pad: usize,
    w_t: Vec<f32>,
    bias: Vec<f32>,
}

impl Dense {
    /// From a `[o, k]` row-major matrix (`w[o][k]`).
    fn new(w: &[f32], o: usize, k: usize, bias: Option<&[f32]>) -> Self {
        let o_pad = o.next_multiple_of(ROW_PAD);
        let mut w_t = vec![0.0; k * o_pad];
        for r in 0..o {
            for c in 0..k {
                w_t[c * o_pad + r] = w[r * k + c];
            }
        }
        let mut b = vec![0.0; o_pad];
        if let Some(bias) = bias {
            b[..o].copy_from_slice(bias);
        }
        Dense {
            k,
            o_pad,
            w_t,
            bias: b,
        }
    }

    /// `y[c] = W·x[c] + bias` for each of the `x.len() / k` columns (`y` gets
    /// `o_pad` values per column).
    fn apply(&self, x: &[f32], y: &mut Vec<f32>) {
        let cols = x.len() / self.k;
        y.clear();
        y.resize(cols * self.o_pad, 0.0);
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: the CPU has AVX2 and FMA.
            unsafe { kernel::dense_avx2(self, x, cols, y) };
            return;
        }
        self.apply_plain(x, cols, y);
    }

    fn apply_plain(&self, x: &[f32], cols: usize, y: &mut [f32]) {
        for c in 0..cols {
            let yc = &mut y[c * self.o_pad..(c + 1) * self.o_pad];
            yc.copy_from_slice(&self.bias);
            for (kk, &v) in x[c * self.k..(c + 1) * self.k].iter().enumerate() {
                let row = &self.w_t[kk * self.o_pad..(kk + 1) * self.o_pad];
                for (o, &w) in yc.iter_mut().zip(row) {
                    *o += w * v;
                }
            }
        }
    }
}

/// A 3-tap 1-D convolution with padding 1 and ReLU, as a [`Dense`] on its im2col
/// columns.
#[derive(Debug)]
struct Conv {
    cin: usize,
    stride: usize,
    dense: Dense,
}

impl Conv {
    /// Time steps out for `t_in` in.
    fn t_out(&self, t_in: usize) -> usize {
        (t_in + 2 - 3) / self.stride + 1
    }

    /// `input`: per stream, `t_in` steps of `cin_stride` values (the first `cin` are
    /// channels). Output: per stream, `t_out` steps of `o_pad` values.
    fn apply(
        &self,
        input: &[f32],
        cin_stride: usize,
        t_in: usize,
        cols: &mut Vec<f32>,
        out: &mut Vec<f32>,
    ) {
        let streams = input.len() / (t_in * cin_stride);
        let t_out = self.t_out(t_in);
        cols.clear();
        cols.resize(streams * t_out * self.cin * 3, 0.0);
        for s in 0..streams {
            for t in 0..t_out {
                let col = &mut cols[(s * t_out + t) * self.cin * 3..][..self.cin * 3];
                for kk in 0..3 {
                    let Some(ti) = (t * self.stride + kk)
                        .checked_sub(1)
                        .filter(|&ti| ti < t_in)
                    else {
                        continue;
                    };
                    let src = &input[(s * t_in + ti) * cin_stride..][..self.cin];
                    for (c, &v) in src.iter().enumerate() {
                        col[c * 3 + kk] = v;
                    }
                }
            }
        }
        self.dense.apply(cols, out);
        for v in out.iter_mut() {
            *v = v.max(0.0);
        }
    }
}

/// The network of one rate.
#[derive(Debug)]
pub(crate) struct SileroNet {
    /// FFT length of the STFT (256 at 16 kHz, 128 at 8 kHz); the hop is half of it.
    n_fft: usize,
    /// Context samples (64 / 32), also the reflect padding.
    context: usize,
    /// New samples per window (512 / 256).
    window: usize,
    /// Frequency bins (`n_fft / 2 + 1`).
    bins: usize,
    stft: Dense,
    convs: [Conv; 4],
    /// The LSTM cell: `[x; h]` (256) → gates `i, f, g, o` (512), both biases summed.
    lstm: Dense,
    out_w: Vec<f32>,
    out_b: f32,
}

/// Buffers of one call, kept per thread.
#[derive(Default)]
struct Scratch {
    /// One stream's context, window and reflect padding.
    padded: Vec<f32>,
    frames: Vec<f32>,
    a: Vec<f32>,
    b: Vec<f32>,
    cols: Vec<f32>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::default();
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

impl SileroNet {
    /// The branch whose tensors end with the layer names below and whose STFT basis
    /// has `2 * (n_fft / 2 + 1)` rows of `n_fft`, from a model's tensors.
    pub(crate) fn from_tensors(
        tensors: &HashMap<String, Tensor>,
        n_fft: usize,
    ) -> Result<Self, String> {
        let bins = n_fft / 2 + 1;
        // The prefix of this branch: the name of its STFT basis less the layer name.
        let basis = "stft.forward_basis_buffer";
        let prefix = tensors
            .iter()
            .filter(|(name, t)| name.ends_with(basis) && t.dims == [2 * bins, 1, n_fft])
            .map(|(name, _)| &name[..name.len() - basis.len()])
            .min()
            .ok_or_else(|| format!("no STFT basis of {} × {n_fft} ({basis})", 2 * bins))?;
        let get = |layer: &str, dims: &[usize]| -> Result<&[f32], String> {
            let name = format!("{prefix}{layer}");
            let t = tensors
                .get(&name)
                .ok_or_else(|| format!("no tensor {name}"))?;
            if t.dims != dims {
                return Err(format!(
                    "tensor {name} has the shape {:?}, expected {dims:?}",
                    t.dims
                ));
            }
            Ok(&t.data)
        };
        let stft = Dense::new(get(basis, &[2 * bins, 1, n_fft])?, 2 * bins, n_fft, None);
        let shapes = [(bins, 128, 1), (128, 64, 2), (64, 64, 2), (64, 128, 1)];
        let mut convs = Vec::new();
        for (i, (cin, cout, stride)) in shapes.into_iter().enumerate() {
            let w = get(&format!("encoder.{i}.reparam_conv.weight"), &[cout, cin, 3])?;
            let b = get(&format!("encoder.{i}.reparam_conv.bias"), &[cout])?;
            convs.push(Conv {
                cin,
                stride,
                dense: Dense::new(w, cout, cin * 3, Some(b)),
            });
        }
        let w_ih = get("decoder.rnn.weight_ih", &[4 * HIDDEN, HIDDEN])?;
        let w_hh = get("decoder.rnn.weight_hh", &[4 * HIDDEN, HIDDEN])?;
        let b_ih = get("decoder.rnn.bias_ih", &[4 * HIDDEN])?;
        let b_hh = get("decoder.rnn.bias_hh", &[4 * HIDDEN])?;
        let mut w = vec![0.0; 4 * HIDDEN * 2 * HIDDEN];
        for r in 0..4 * HIDDEN {
            w[r * 2 * HIDDEN..][..HIDDEN].copy_from_slice(&w_ih[r * HIDDEN..][..HIDDEN]);
            w[r * 2 * HIDDEN + HIDDEN..][..HIDDEN].copy_from_slice(&w_hh[r * HIDDEN..][..HIDDEN]);
        }
        let bias: Vec<f32> = b_ih.iter().zip(b_hh).map(|(a, b)| a + b).collect();
        let lstm = Dense::new(&w, 4 * HIDDEN, 2 * HIDDEN, Some(&bias));
        let out_w = get("decoder.decoder.2.weight", &[1, HIDDEN, 1])?.to_vec();
        let out_b = get("decoder.decoder.2.bias", &[1])?[0];
        let convs: [Conv; 4] = convs.try_into().expect("four layers");
        Ok(SileroNet {
            n_fft,
            context: n_fft / 4,
            window: n_fft * 2,
            bins,
            stft,
            convs,
            lstm,
            out_w,
            out_b,
        })
    }

    /// One window of each stream: `streams[s]` is the stream's context (the last
    /// `context` samples before its window) and its `[h; c]` state (256 values,
    /// replaced by the next one), `windows[s]` its `window` new samples; `probs[s]`
    /// gets its speech probability.
    pub(crate) fn run(
        &self,
        streams: &mut [(&[f32], &mut [f32])],
        windows: &[&[f32]],
        probs: &mut [f32],
    ) {
        SCRATCH.with(|s| self.run_with(&mut s.borrow_mut(), streams, windows, probs))
    }

    fn run_with(
        &self,
        sc: &mut Scratch,
        streams: &mut [(&[f32], &mut [f32])],
        windows: &[&[f32]],
        probs: &mut [f32],
    ) {
        let n = streams.len();
        let (hop, pad) = (self.n_fft / 2, self.context);
        let len = self.context + self.window;
        let frames = (len + pad - self.n_fft) / hop + 1;
        // The STFT's columns: each frame of each stream's context and window,
        // reflect-padded at the end.
        sc.frames.clear();
        for ((context, _), window) in streams.iter().zip(windows) {
            let padded = &mut sc.padded;
            padded.clear();
            padded.extend_from_slice(context);
            padded.extend_from_slice(window);
            for j in 0..pad {
                padded.push(padded[len - 2 - j]);
            }
            for t in 0..frames {
                sc.frames
                    .extend_from_slice(&padded[t * hop..t * hop + self.n_fft]);
            }
        }
        self.stft.apply(&sc.frames, &mut sc.a);
        // Magnitudes, per stream and frame: `bins` values in rows of `bins`.
        let op = self.stft.o_pad;
        sc.b.clear();
        for col in sc.a.chunks_exact(op) {
            let (re, im) = (&col[..self.bins], &col[self.bins..2 * self.bins]);
            sc.b.extend(re.iter().zip(im).map(|(r, i)| (r * r + i * i).sqrt()));
        }
        let (mut t, mut stride) = (frames, self.bins);
        let mut src = std::mem::take(&mut sc.b);
        let mut dst = std::mem::take(&mut sc.a);
        for conv in &self.convs {
            conv.apply(&src, stride, t, &mut sc.cols, &mut dst);
            t = conv.t_out(t);
            stride = conv.dense.o_pad;
            std::mem::swap(&mut src, &mut dst);
        }
        debug_assert_eq!(t, 1, "the encoder ends with one step");
        // The LSTM cell on [x; h] of every stream.
        sc.cols.clear();
        for (s, (_, state)) in streams.iter().enumerate() {
            sc.cols
                .extend_from_slice(&src[s * stride..s * stride + HIDDEN]);
            sc.cols.extend_from_slice(&state[..HIDDEN]);
        }
        self.lstm.apply(&sc.cols, &mut dst);
        let gp = self.lstm.o_pad;
        for s in 0..n {
            let g = &dst[s * gp..s * gp + 4 * HIDDEN];
            let state = &mut *streams[s].1;
            let mut logit = self.out_b;
            for j in 0..HIDDEN {
                let (i, f) = (sigmoid(g[j]), sigmoid(g[HIDDEN + j]));
                let (cell, o) = (g[2 * HIDDEN + j].tanh(), sigmoid(g[3 * HIDDEN + j]));
                let c = f * state[HIDDEN + j] + i * cell;
                let h = o * c.tanh();
                state[HIDDEN + j] = c;
                state[j] = h;
                logit += self.out_w[j] * h.max(0.0);
            }
            probs[s] = sigmoid(logit);
        }
        sc.b = src;
        sc.a = dst;
    }
}

#[cfg(target_arch = "x86_64")]
mod kernel {
    use std::arch::x86_64::*;

    use super::Dense;

    /// [`Dense::apply`] on AVX2 with FMA: columns in groups of 4 sharing each weight
    /// load, outputs 16 at a time (8 accumulators); a lone column takes 64 outputs at a
    /// time instead, so its accumulators still hide the FMA latency.
    ///
    /// # Safety
    ///
    /// The CPU must have AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn dense_avx2(d: &Dense, x: &[f32], cols: usize, y: &mut [f32]) {
        let (k, op) = (d.k, d.o_pad);
        assert!(x.len() >= cols * k && y.len() >= cols * op && d.w_t.len() >= k * op);
        let mut c = 0;
        while c + 4 <= cols {
            let mut o = 0;
            while o < op {
                // In bounds: o + 16 <= op (op is a multiple of 16), c + 4 <= cols.
                let w = d.w_t.as_ptr().add(o);
                let xs = [0, 1, 2, 3].map(|j| x.as_ptr().add((c + j) * k));
                let b0 = _mm256_loadu_ps(d.bias.as_ptr().add(o));
                let b1 = _mm256_loadu_ps(d.bias.as_ptr().add(o + 8));
                let mut acc = [[b0, b1]; 4];
                for kk in 0..k {
                    let w0 = _mm256_loadu_ps(w.add(kk * op));
                    let w1 = _mm256_loadu_ps(w.add(kk * op + 8));
                    for j in 0..4 {
                        let v = _mm256_broadcast_ss(&*xs[j].add(kk));
                        acc[j][0] = _mm256_fmadd_ps(w0, v, acc[j][0]);
                        acc[j][1] = _mm256_fmadd_ps(w1, v, acc[j][1]);
                    }
                }
                for (j, a) in acc.iter().enumerate() {
                    let dst = y.as_mut_ptr().add((c + j) * op + o);
                    _mm256_storeu_ps(dst, a[0]);
                    _mm256_storeu_ps(dst.add(8), a[1]);
                }
                o += 16;
            }
            c += 4;
        }
        while c < cols {
            let xc = x.as_ptr().add(c * k);
            let mut o = 0;
            while o < op {
                let n = ((op - o) / 8).min(8);
                let w = d.w_t.as_ptr().add(o);
                let mut acc = [_mm256_setzero_ps(); 8];
                for (i, a) in acc.iter_mut().enumerate().take(n) {
                    *a = _mm256_loadu_ps(d.bias.as_ptr().add(o + 8 * i));
                }
                if n == 8 {
                    for kk in 0..k {
                        let v = _mm256_broadcast_ss(&*xc.add(kk));
                        let row = w.add(kk * op);
                        for (i, a) in acc.iter_mut().enumerate() {
                            *a = _mm256_fmadd_ps(_mm256_loadu_ps(row.add(8 * i)), v, *a);
                        }
                    }
                } else {
                    for kk in 0..k {
                        let v = _mm256_broadcast_ss(&*xc.add(kk));
                        let row = w.add(kk * op);
                        for (i, a) in acc.iter_mut().enumerate().take(n) {
                            *a = _mm256_fmadd_ps(_mm256_loadu_ps(row.add(8 * i)), v, *a);
                        }
                    }
                }
                for (i, a) in acc.iter().enumerate().take(n) {
                    _mm256_storeu_ps(y.as_mut_ptr().add(c * op + o + 8 * i), *a);
                }
                o += 8 * n;
            }
            c += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_vector_kernel_computes_the_plain_product() {
        let (o, k) = (37, 29);
        let w: Vec<f32> = (0..o * k)
            .map(|i| ((i * 7919) % 97) as f32 / 97.0 - 0.5)
            .collect();
        let bias: Vec<f32> = (0..o).map(|i| i as f32 * 0.01).collect();
        let d = Dense::new(&w, o, k, Some(&bias));
        for cols in [1, 3, 4, 9] {
            let x: Vec<f32> = (0..cols * k)
                .map(|i| ((i * 31) % 17) as f32 / 17.0)
                .collect();
            let mut fast = Vec::new();
            d.apply(&x, &mut fast);
            let mut plain = vec![0.0; cols * d.o_pad];
            d.apply_plain(&x, cols, &mut plain);
            for c in 0..cols {
                for r in 0..o {
                    let want: f32 =
                        bias[r] + (0..k).map(|j| w[r * k + j] * x[c * k + j]).sum::<f32>();
                    let (a, b) = (fast[c * d.o_pad + r], plain[c * d.o_pad + r]);
                    assert!(
                        (a - want).abs() < 1e-4 && (b - want).abs() < 1e-4,
                        "{cols} cols, row {r}: {a} {b} {want}"
                    );
                }
            }
        }
    }
}
