//! Streams' windows in one model call give each stream what its own calls give.

mod support;

use remotemedia_speech::silero::{window, SileroState};
use support::*;

#[test]
fn a_batched_call_equals_one_call_per_stream() {
    let (Some(clean), Some(model)) = (corpus(), model()) else {
        return;
    };
    let t = truth(clean);
    let w = window(RATE);
    // Eight streams: the corpus at different offsets and noise levels.
    let streams: Vec<Vec<f32>> = (0..8)
        .map(|k| {
            let s = mix(
                clean,
                &t,
                Noise::White,
                30.0 - 3.0 * k as f64,
                100 + k as u64,
            );
            s[k * 3000..k * 3000 + 200 * w].to_vec()
        })
        .collect();
    let mut alone: Vec<SileroState> = (0..8).map(|_| SileroState::new(RATE)).collect();
    let mut together = alone.clone();
    let (mut max_diff, mut decisions_differ) = (0.0f32, 0);
    for f in 0..200 {
        let windows: Vec<&[f32]> = streams.iter().map(|s| &s[f * w..(f + 1) * w]).collect();
        let mut batched = vec![0.0; 8];
        let mut refs: Vec<&mut SileroState> = together.iter_mut().collect();
        model
            .probs_batch(&mut refs, &windows, &mut batched)
            .unwrap();
        for (k, st) in alone.iter_mut().enumerate() {
            let p = model.prob(st, windows[k]).unwrap();
            max_diff = max_diff.max((p - batched[k]).abs());
            decisions_differ += usize::from((p >= 0.5) != (batched[k] >= 0.5));
        }
    }
    eprintln!("8 streams × 200 windows: max probability difference {max_diff:.2e}");
    assert!(max_diff < 1e-4, "{max_diff}");
    assert_eq!(decisions_differ, 0);
    // Bad shapes are errors, not panics.
    let mut st = SileroState::new(RATE);
    assert!(model.prob(&mut st, &[0.0; 100]).is_err());
}
