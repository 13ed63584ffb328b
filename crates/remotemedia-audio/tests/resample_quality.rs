//! Measured quality of the resampler and the `AudioResample` node: SNR against the
//! analytic signal, stopband attenuation, passband flatness, chunking invariance,
//! stream length, timestamps and channel independence.
//!
//! Signals start and stop abruptly, which is broadband: the filter rings for a few ms
//! at both ends (up to half the filter, 64 ms at `best`), so the measurements skip the
//! first and last 200 ms of the output of 2 s signals.

use std::f64::consts::TAU;

use remotemedia_audio::resample::{Quality, Resampler};

/// Output edges skipped by every measurement, in ms.
const EDGE_MS: f64 = 200.0;

/// `amp * sin(2π f t)` at `rate`, `frames` long, each value on `channels` channels.
fn sine(rate: u32, freq: f64, amp: f64, frames: usize) -> Vec<f32> {
    (0..frames)
        .map(|i| (amp * (TAU * freq * i as f64 / f64::from(rate)).sin()) as f32)
        .collect()
}

/// The whole stream through a resampler in one call.
fn resample(from: u32, to: u32, q: Quality, channels: u16, x: &[f32]) -> Vec<f32> {
    let mut r = Resampler::new(from, to, channels, q).unwrap();
    let mut out = Vec::new();
    r.process(x, &mut out);
    r.flush(&mut out);
    out
}

/// `y` without its first and last [`EDGE_MS`].
fn inner(y: &[f32], rate: u32) -> (usize, &[f32]) {
    let edge = (EDGE_MS * f64::from(rate) / 1000.0) as usize;
    (edge, &y[edge..y.len() - edge])
}

/// SNR (dB) of `y` (at `rate`) against `amp * sin(2π f t)`.
fn snr_db(y: &[f32], rate: u32, freq: f64, amp: f64) -> f64 {
    let (start, y) = inner(y, rate);
    let (mut sig, mut err) = (0.0, 0.0);
    for (k, &v) in y.iter().enumerate() {
        let t = (start + k) as f64 / f64::from(rate);
        let want = amp * (TAU * freq * t).sin();
        sig += want * want;
        err += (f64::from(v) - want).powi(2);
    }
    10.0 * (sig / err).log10()
}

fn rms(y: &[f32]) -> f64 {
    (y.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>() / y.len() as f64).sqrt()
}

/// Amplitude of the `freq` component of `y` (least-squares fit of a sine and a cosine).
fn amplitude(y: &[f32], rate: u32, freq: f64) -> f64 {
    let (start, y) = inner(y, rate);
    let (mut ss, mut sc, mut cc, mut ys, mut yc) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for (k, &v) in y.iter().enumerate() {
        let w = TAU * freq * (start + k) as f64 / f64::from(rate);
        let (s, c) = w.sin_cos();
        let v = f64::from(v);
        ss += s * s;
        sc += s * c;
        cc += c * c;
        ys += v * s;
        yc += v * c;
    }
    let det = ss * cc - sc * sc;
    let a = (ys * cc - yc * sc) / det;
    let b = (yc * ss - ys * sc) / det;
    a.hypot(b)
}

/// Attenuation (dB) of a 12 kHz tone: the output's whole RMS against the input's.
fn stopband_db(from: u32, to: u32, q: Quality) -> f64 {
    let x = sine(from, 12_000.0, 0.5, 2 * from as usize);
    let y = resample(from, to, q, 1, &x);
    20.0 * (rms(inner(&x, from).1) / rms(inner(&y, to).1)).log10()
}

fn sine_snr(from: u32, to: u32, q: Quality) -> f64 {
    let x = sine(from, 1000.0, 0.5, 2 * from as usize);
    let y = resample(from, to, q, 1, &x);
    snr_db(&y, to, 1000.0, 0.5)
}

/// Gain (dB) of a tone of `freq`.
fn gain_db(from: u32, to: u32, q: Quality, freq: f64) -> f64 {
    let x = sine(from, freq, 0.5, 2 * from as usize);
    let y = resample(from, to, q, 1, &x);
    20.0 * (amplitude(&y, to, freq) / 0.5).log10()
}

const PAIRS: [(u32, u32); 2] = [(48_000, 16_000), (44_100, 16_000)];

/// Output frames held back after each 20 ms input chunk of a stream of `chunks` chunks:
/// the output frames the input so far stands for (`ceil(frames * to / from)`) less
/// those emitted so far.
fn held_back_per_chunk(from: u32, to: u32, q: Quality, chunks: usize) -> Vec<u64> {
    let mut r = Resampler::new(from, to, 1, q).unwrap();
    let chunk = sine(from, 997.0, 0.5, from as usize / 50);
    let (mut fed, mut emitted, mut out) = (0u64, 0u64, Vec::new());
    (0..chunks)
        .map(|_| {
            r.process(&chunk, &mut out);
            fed += chunk.len() as u64;
            emitted += out.len() as u64;
            out.clear();
            r.output_len(fed) - emitted
        })
        .collect()
}

/// The least and most audio held back after a 20 ms chunk over 2 s of them, in ms.
fn held_back_ms(from: u32, to: u32, q: Quality) -> (f64, f64) {
    let held = held_back_per_chunk(from, to, q, 100);
    let ms = |f: u64| f as f64 * 1000.0 / f64::from(to);
    (
        ms(*held.iter().min().unwrap()),
        ms(*held.iter().max().unwrap()),
    )
}

#[test]
fn measured_figures_per_level() {
    // Printed with `--nocapture`: the figures in the module docs of `resample`.
    for (from, to) in PAIRS {
        for q in Quality::ALL {
            let (least, most) = held_back_ms(from, to, q);
            println!(
                "{from} -> {to} {q:>6}: SNR 1 kHz {:.1} dB, 12 kHz attenuation {:.1} dB, gain 7.2 kHz {:+.4} dB, \
                 held back after 20 ms chunks {least:.2}-{most:.2} ms",
                sine_snr(from, to, q),
                stopband_db(from, to, q),
                gain_db(from, to, q, 7_200.0),
            );
        }
    }
}

#[test]
fn high_holds_back_5_ms_after_each_20ms_chunk() {
    // 80 output frames at 16 kHz: the filter delay; every whole 20 ms chunk goes
    // through at once, so nothing else waits.
    for (from, to) in PAIRS {
        let held = held_back_per_chunk(from, to, Quality::High, 150);
        assert!(held.iter().all(|&h| h == 80), "{from} -> {to}: {held:?}");
        assert_eq!(
            Resampler::new(from, to, 1, Quality::High).unwrap().delay(),
            80
        );
    }
    // At 44.1 kHz, chunks that are not whole units (441 frames, 10 ms) leave less than
    // a unit (160 output frames) waiting as well.
    let mut r = Resampler::new(44_100, 16_000, 1, Quality::High).unwrap();
    let (mut fed, mut emitted, mut out) = (0u64, 0u64, Vec::new());
    for _ in 0..50 {
        r.process(&[0.25; 300], &mut out);
        fed += 300;
        emitted += out.len() as u64;
        out.clear();
        let held = r.output_len(fed) - emitted;
        assert!((80..80 + 160).contains(&held), "{held}");
    }
}

#[test]
fn high_reaches_90_db_snr_on_a_1khz_sine() {
    for (from, to) in PAIRS {
        let snr = sine_snr(from, to, Quality::High);
        assert!(snr >= 90.0, "{from} -> {to}: SNR {snr:.1} dB");
    }
}

#[test]
fn high_attenuates_a_tone_above_the_new_nyquist_by_90_db() {
    for (from, to) in PAIRS {
        let att = stopband_db(from, to, Quality::High);
        assert!(att >= 90.0, "{from} -> {to}: 12 kHz attenuated {att:.1} dB");
    }
}

#[test]
fn high_is_flat_to_a_tenth_of_a_db_up_to_0_9_nyquist() {
    for (from, to) in PAIRS {
        for f in [100.0, 1_000.0, 3_000.0, 5_000.0, 6_500.0, 7_000.0, 7_200.0] {
            let g = gain_db(from, to, Quality::High, f);
            assert!(g.abs() <= 0.1, "{from} -> {to}: gain at {f} Hz {g:+.4} dB");
        }
    }
}

#[test]
fn chunks_of_20ms_give_the_output_of_one_call() {
    for (from, to) in PAIRS {
        for q in Quality::ALL {
            let x = sine(from, 997.0, 0.5, 2 * from as usize);
            let whole = resample(from, to, q, 1, &x);
            let mut r = Resampler::new(from, to, 1, q).unwrap();
            let mut chunked = Vec::new();
            for c in x.chunks(from as usize / 50) {
                r.process(c, &mut chunked);
            }
            r.flush(&mut chunked);
            assert_eq!(whole.len(), chunked.len());
            let worst = whole
                .iter()
                .zip(&chunked)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            assert!(worst <= 1e-5, "{from} -> {to} {q}: differs by {worst}");
        }
    }
}

#[test]
fn a_long_stream_in_odd_chunks_is_the_rate_ratio_long() {
    for ((from, to), q) in PAIRS
        .into_iter()
        .chain([(16_000, 48_000)])
        .flat_map(|p| [(p, Quality::High), (p, Quality::Low)])
    {
        let mut r = Resampler::new(from, to, 1, q).unwrap();
        let chunk = vec![0.1f32; 1_237];
        let total = 60 * from as usize + 17;
        let (mut fed, mut out, mut got) = (0usize, Vec::new(), 0u64);
        while fed < total {
            let n = chunk.len().min(total - fed);
            r.process(&chunk[..n], &mut out);
            fed += n;
            got += out.len() as u64;
            out.clear();
        }
        r.flush(&mut out);
        got += out.len() as u64;
        let exact = total as f64 * f64::from(to) / f64::from(from);
        assert!(
            (got as f64 - exact).abs() <= 1.0,
            "{from} -> {to} {q}: {got} frames for {exact}"
        );
    }
}

#[test]
fn stereo_channels_stay_independent() {
    let (from, to) = (44_100, 16_000);
    let left = sine(from, 1000.0, 0.5, 2 * from as usize);
    let right = sine(from, 3000.0, 0.25, 2 * from as usize);
    let x: Vec<f32> = left
        .iter()
        .zip(&right)
        .flat_map(|(&l, &r)| [l, r])
        .collect();
    let y = resample(from, to, Quality::High, 2, &x);
    let (yl, yr): (Vec<f32>, Vec<f32>) = y.chunks(2).map(|f| (f[0], f[1])).unzip();
    assert_eq!(yl, resample(from, to, Quality::High, 1, &left));
    assert_eq!(yr, resample(from, to, Quality::High, 1, &right));
    assert!(amplitude(&yl, to, 3000.0) < 1e-5);
    assert!(amplitude(&yr, to, 1000.0) < 1e-5);
}

#[test]
fn the_node_in_a_pipeline_keeps_time_and_quality() {
    use remotemedia_core::executor::{run_pipeline, RunOptions};
    use remotemedia_core::manifest::{load_str, Format};
    use remotemedia_core::Data;

    let registry = remotemedia_audio::registry();
    let yaml = "version: v1\nmetadata: { name: t }\nnodes:\n  \
        - { id: tone, node_type: ToneGenerator, params: { sample_rate: 44100, frequency_hz: 1000, amplitude: 0.5, duration_ms: 2000, chunk_ms: 20 } }\n  \
        - { id: rs, node_type: AudioResample, params: { target_rate: 16000 } }\n\
        connections:\n  - { from: tone, to: rs }\n";
    let p = load_str(yaml, Format::Yaml, &registry).unwrap_or_else(|e| panic!("{e}"));
    let res = run_pipeline(&p, &registry, Vec::new(), &RunOptions::default()).unwrap();
    let items = res.sink("rs").unwrap();
    let (mut next, mut all) = (0i64, Vec::new());
    for item in items {
        let Data::Audio(a) = item else {
            panic!("not audio")
        };
        assert_eq!(a.sample_rate, 16_000);
        // Each chunk starts where the one before it ended (times from frame counts).
        assert_eq!(a.pts_us, next);
        next = a.end_pts_us();
        all.extend_from_slice(&a.samples);
    }
    assert_eq!(all.len(), 32_000);
    assert_eq!(next, 2_000_000);
    let snr = snr_db(&all, 16_000, 1000.0, 0.5);
    assert!(snr >= 90.0, "SNR {snr:.1} dB");
}

/// Attenuation (dB) of a tone of `freq` above the new Nyquist frequency.
fn attenuation_db(from: u32, to: u32, q: Quality, freq: f64) -> f64 {
    -gain_db(from, to, q, freq)
}

#[test]
fn low_is_flat_to_a_tenth_of_a_db_up_to_0_7_nyquist() {
    for (from, to) in PAIRS {
        for f in [100.0, 1_000.0, 3_000.0, 5_000.0, 5_600.0] {
            let g = gain_db(from, to, Quality::Low, f);
            assert!(g.abs() <= 0.1, "{from} -> {to}: gain at {f} Hz {g:+.4} dB");
        }
    }
}

#[test]
fn low_reaches_75_db_snr_on_a_1khz_sine() {
    for (from, to) in PAIRS.into_iter().chain([(16_000, 48_000), (8_000, 16_000)]) {
        let snr = sine_snr(from, to, Quality::Low);
        assert!(snr >= 75.0, "{from} -> {to}: SNR {snr:.1} dB");
    }
}

#[test]
fn low_attenuates_70_db_from_its_stopband_on() {
    // An integer ratio: the stopband starts at 1.2 × the new Nyquist frequency (9.6 kHz).
    for f in [9_700.0, 12_000.0, 16_000.0, 23_000.0] {
        let att = attenuation_db(48_000, 16_000, Quality::Low, f);
        assert!(att >= 70.0, "48000 -> 16000: {f} Hz attenuated {att:.1} dB");
    }
    // Other ratios: from the new Nyquist frequency itself (8 kHz).
    for f in [8_100.0, 9_000.0, 12_000.0, 20_000.0] {
        let att = attenuation_db(44_100, 16_000, Quality::Low, f);
        assert!(att >= 70.0, "44100 -> 16000: {f} Hz attenuated {att:.1} dB");
    }
}

#[test]
fn low_upsampling_leaves_no_image_past_its_stopband() {
    // A 5 kHz tone at 16 kHz has its first image at 11 kHz: past 1.2 × 8 kHz.
    let (from, to) = (16_000, 48_000);
    let x = sine(from, 5_000.0, 0.5, 2 * from as usize);
    let y = resample(from, to, Quality::Low, 1, &x);
    let tone = 20.0 * (amplitude(&y, to, 5_000.0) / 0.5).log10();
    let image = 20.0 * (amplitude(&y, to, 11_000.0) / 0.5).log10();
    assert!(tone.abs() <= 0.1, "tone {tone:+.3} dB");
    assert!(image <= -70.0, "image at 11 kHz {image:.1} dB");
}

#[test]
fn low_holds_back_under_2_ms_after_each_20ms_chunk() {
    for (from, to) in PAIRS {
        let (least, most) = held_back_ms(from, to, Quality::Low);
        assert!(most < 2.0, "{from} -> {to}: {least:.2}-{most:.2} ms");
    }
}
