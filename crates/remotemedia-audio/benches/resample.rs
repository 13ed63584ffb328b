//! Resampling 10 minutes of 48 kHz mono to 16 kHz, per quality level, in 20 ms chunks
//! (the streaming path) and in one call.

use std::f64::consts::TAU;
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use remotemedia_audio::resample::{Quality, Resampler};

const FROM: u32 = 48_000;
const TO: u32 = 16_000;
const SECONDS: usize = 600;

/// A sum of sines and a little deterministic noise.
fn signal() -> Vec<f32> {
    let mut noise = 0x9e37_79b9_7f4a_7c15u64;
    (0..SECONDS * FROM as usize)
        .map(|i| {
            let t = i as f64 / f64::from(FROM);
            noise ^= noise << 13;
            noise ^= noise >> 7;
            noise ^= noise << 17;
            let n = (noise >> 11) as f64 / (1u64 << 53) as f64 - 0.5;
            (0.3 * (TAU * 440.0 * t).sin()
                + 0.2 * (TAU * 1_000.0 * t).sin()
                + 0.1 * (TAU * 12_000.0 * t).sin()
                + 0.01 * n) as f32
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let x = signal();
    let mut group = c.benchmark_group("resample_48k_to_16k_10min");
    group.sample_size(10);
    group.throughput(Throughput::Elements(x.len() as u64));
    let mut out = Vec::with_capacity(x.len() / 3 + 4096);
    for q in Quality::ALL {
        group.bench_with_input(BenchmarkId::new("one_call", q.name()), &q, |b, &q| {
            let mut r = Resampler::new(FROM, TO, 1, q).unwrap();
            b.iter(|| {
                out.clear();
                r.process(black_box(&x), &mut out);
                r.flush(&mut out);
                black_box(out.len())
            })
        });
        group.bench_with_input(BenchmarkId::new("chunks_20ms", q.name()), &q, |b, &q| {
            let mut r = Resampler::new(FROM, TO, 1, q).unwrap();
            b.iter(|| {
                out.clear();
                for c in x.chunks(FROM as usize / 50) {
                    r.process(black_box(c), &mut out);
                }
                r.flush(&mut out);
                black_box(out.len())
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
