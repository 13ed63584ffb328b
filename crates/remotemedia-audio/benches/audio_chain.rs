//! Streaming cost per 20 ms frame through a 4-node audio chain, the way a live
//! microphone stream arrives: one frame per call (batches of 1), 48 kHz stereo in,
//! AudioChannels (mono) → AudioResample (16 kHz, high) → AudioGain → AudioLevel.
//!
//! `cargo bench -p remotemedia-audio --bench audio_chain`; the per-frame figure is the
//! median time per iteration divided by `FRAMES`.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use remotemedia_core::executor::{run_pipeline, RunOptions};
use remotemedia_core::manifest::{load_str, Format, Pipeline};
use remotemedia_core::{AudioBuffer, Data, Registry};

/// Frames per iteration: 60 s of audio (the set-up of a run, such as the resampler's filter, is spread over them).
const FRAMES: usize = 3000;
const RATE: u32 = 48_000;
const FRAME: usize = 960; // 20 ms at 48 kHz

const CHAIN: &str = r#"
version: v1
metadata: { name: audio-chain }
nodes:
  - { id: mono, node_type: AudioChannels, params: { channels: 1 } }
  - { id: resample, node_type: AudioResample, params: { target_rate: 16000, quality: high } }
  - { id: gain, node_type: AudioGain, params: { db: -3 } }
  - { id: level, node_type: AudioLevel, params: { interval_ms: 100 } }
connections:
  - { from: mono, to: resample }
  - { from: resample, to: gain }
  - { from: gain, to: level }
"#;

fn frames() -> Vec<Data> {
    (0..FRAMES)
        .map(|k| {
            let samples: Vec<f32> = (0..FRAME * 2)
                .map(|i| {
                    let n = (k * FRAME + i / 2) as f32;
                    0.5 * (std::f32::consts::TAU * 440.0 * n / RATE as f32).sin()
                })
                .collect();
            let pts = (k * 20_000) as i64;
            Data::from(AudioBuffer::new(samples, RATE, 2).with_pts(pts))
        })
        .collect()
}

fn run(pipeline: &Pipeline, registry: &Registry, inputs: Vec<Data>) -> usize {
    let opts = RunOptions {
        batch_size: 1,
        ..RunOptions::default()
    };
    let res = run_pipeline(pipeline, registry, inputs, &opts).expect("the chain runs");
    res.all_items().count()
}

fn benches(c: &mut Criterion) {
    let registry = remotemedia_audio::registry();
    let pipeline = load_str(CHAIN, Format::Yaml, &registry).expect("valid manifest");
    // 60 s of audio in 100 ms level events.
    assert_eq!(run(&pipeline, &registry, frames()), 600);
    let mut g = c.benchmark_group("audio_chain");
    g.throughput(Throughput::Elements(FRAMES as u64));
    g.bench_function("frames_20ms/3000", |b| {
        b.iter_batched(
            frames,
            |inputs| run(&pipeline, &registry, inputs),
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

criterion_group!(audio, benches);
criterion_main!(audio);
