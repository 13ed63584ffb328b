//! The network in Rust and ONNX Runtime compute the same model: the same probabilities
//! (within float rounding) and the same decisions, window after window with the
//! recurrent state carried, at both rates, one stream and a batch.

mod support;

use remotemedia_speech::silero::{window, Runtime, SileroModel, SileroState};
use support::*;

/// Runs `streams` (one window each per call) on both runtimes; the largest probability
/// difference and how many windows are decided differently at 0.5.
fn compare(model: &SileroModel, rate: u32, streams: &[Vec<f32>], windows: usize) -> (f32, usize) {
    let w = window(rate);
    let mut native: Vec<SileroState> = streams.iter().map(|_| SileroState::new(rate)).collect();
    let mut ort = native.clone();
    let (mut worst, mut differ) = (0.0f32, 0);
    for f in 0..windows {
        let wins: Vec<&[f32]> = streams.iter().map(|s| &s[f * w..(f + 1) * w]).collect();
        let (mut a, mut b) = (vec![0.0; streams.len()], vec![0.0; streams.len()]);
        let mut refs: Vec<&mut SileroState> = native.iter_mut().collect();
        model
            .probs_batch_on(Runtime::Native, &mut refs, &wins, &mut a)
            .unwrap();
        let mut refs: Vec<&mut SileroState> = ort.iter_mut().collect();
        model
            .probs_batch_on(Runtime::OnnxRuntime, &mut refs, &wins, &mut b)
            .unwrap();
        for (p, q) in a.iter().zip(&b) {
            worst = worst.max((p - q).abs());
            differ += usize::from((*p >= 0.5) != (*q >= 0.5));
        }
    }
    (worst, differ)
}

#[test]
fn rust_and_onnx_runtime_give_the_same_probabilities() {
    let (Some(clean), Some(model)) = (corpus(), model()) else {
        return;
    };
    assert_eq!(
        model.runtime(),
        Runtime::Native,
        "{:?}",
        model.native_unavailable()
    );
    let t = truth(clean);
    let noisy = mix(clean, &t, Noise::Pink, 10.0, 5);
    // 16 kHz: one stream, then a batch of five at different offsets.
    let windows = (noisy.len() / window(RATE)).min(600);
    let (worst, differ) = compare(&model, RATE, std::slice::from_ref(&noisy), windows);
    eprintln!("16 kHz, {windows} windows: max difference {worst:.2e}, {differ} decisions differ");
    assert!(worst < 1e-4, "{worst}");
    assert_eq!(differ, 0);
    let batch: Vec<Vec<f32>> = (0..5).map(|k| noisy[k * 7001..].to_vec()).collect();
    let (worst, differ) = compare(&model, RATE, &batch, 200);
    assert!(worst < 1e-4 && differ == 0, "batch: {worst}, {differ}");
    // 8 kHz: every other sample of the (band-limited) corpus.
    let low: Vec<f32> = noisy.chunks_exact(2).map(|p| 0.5 * (p[0] + p[1])).collect();
    let windows = (low.len() / window(8_000)).min(600);
    let (worst, differ) = compare(&model, 8_000, &[low], windows);
    eprintln!("8 kHz, {windows} windows: max difference {worst:.2e}, {differ} decisions differ");
    assert!(worst < 1e-4, "{worst}");
    assert_eq!(differ, 0);
}
