//! Speed of the Silero VAD, ours (the Rust runtime, and ONNX Runtime in process when
//! installed) against Python running the same model through onnxruntime on the same
//! windows, 1 intra-op and 1 inter-op thread for ONNX Runtime on both sides; then 64
//! streams, one model call per stream and window against one batched call per window of
//! all 64, on each runtime.
//!
//! ```text
//! cargo run --release -p remotemedia-speech --example vad_speed [-- [--json] AUDIO.wav]
//! ```
//!
//! With `--json`, stdout is one JSON object with the figures (for benchmark runners;
//! `python/benchmarks/benchmark_speech.py` collects it) and the text goes to stderr.
//!
//! The audio (mono 16-bit at 16 kHz) defaults to 60 s of generated tone bursts in
//! noise. The Python side is `python/benchmarks/vad_reference.py`, run by the
//! interpreter the model is found with (needs numpy and onnxruntime).

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use remotemedia_core::{AudioBuffer, Data, Node, NodeType};
use remotemedia_speech::silero::{window, Runtime, SileroModel, SileroState};
use remotemedia_speech::vad::{VoiceActivity, VoiceActivityParams};

const RATE: u32 = 16_000;

/// A line of the report: to stdout, or to stderr when stdout carries the JSON.
macro_rules! say {
    ($json:expr, $($t:tt)*) => {
        if $json { eprintln!($($t)*) } else { println!($($t)*) }
    };
}
const REPEAT: usize = 5;

fn generated(seconds: usize) -> Vec<f32> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    (0..seconds * RATE as usize)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let noise = (x >> 40) as f32 / (1u64 << 24) as f32 - 0.5;
            let t = i as f32 / RATE as f32;
            let on = (t % 3.0) < 1.8;
            let tone = if on {
                0.2 * (t * 220.0 * std::f32::consts::TAU).sin()
            } else {
                0.0
            };
            tone + 0.01 * noise
        })
        .collect()
}

fn write_wav16(path: &Path, samples: &[f32]) -> Vec<f32> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: RATE,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    let mut back = Vec::with_capacity(samples.len());
    for &s in samples {
        let v = (s.clamp(-1.0, 1.0) * 32767.0).round() as i16;
        w.write_sample(v).unwrap();
        back.push(f32::from(v) / 32768.0);
    }
    w.finalize().unwrap();
    back
}

fn read_wav(path: &Path) -> Vec<f32> {
    let mut r = hound::WavReader::open(path).unwrap();
    assert_eq!(
        (
            r.spec().channels,
            r.spec().sample_rate,
            r.spec().bits_per_sample
        ),
        (1, RATE, 16)
    );
    r.samples::<i16>()
        .map(|s| f32::from(s.unwrap()) / 32768.0)
        .collect()
}

fn main() {
    let model = SileroModel::shared().unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("in.wav");
    let json = std::env::args().any(|a| a == "--json");
    let samples = match std::env::args().skip(1).find(|a| a != "--json") {
        Some(p) => {
            std::fs::copy(&p, &wav).unwrap();
            read_wav(&wav)
        }
        None => write_wav16(&wav, &generated(60)),
    };
    let w = window(RATE);
    let windows: Vec<Vec<f32>> = samples
        .chunks(w)
        .map(|c| {
            let mut v = c.to_vec();
            v.resize(w, 0.0);
            v
        })
        .collect();
    let n = windows.len();
    say!(
        json,
        "audio: {:.1} s, {n} windows of {w} samples",
        samples.len() as f64 / f64::from(RATE)
    );

    // Ours: the model alone, on each runtime (ONNX Runtime when it is installed).
    let runtimes: Vec<Runtime> = std::iter::once(Runtime::Native)
        .chain(
            model
                .check_onnxruntime()
                .is_ok()
                .then_some(Runtime::OnnxRuntime),
        )
        .collect();
    let run_model = |rt: Runtime| {
        let mut st = SileroState::new(RATE);
        for win in &windows {
            model.prob_on(rt, &mut st, win).unwrap();
        }
    };
    let per_window: Vec<f64> = runtimes
        .iter()
        .map(|&rt| {
            run_model(rt);
            let t = Instant::now();
            (0..REPEAT).for_each(|_| run_model(rt));
            t.elapsed().as_secs_f64() / (REPEAT * n) as f64 * 1e6
        })
        .collect();
    let ours = per_window[0];
    let ours_ort = per_window.get(1).copied();

    // Ours: the whole node (re-framing, decisions, events).
    let p: VoiceActivityParams = serde_yaml_ng::from_str("{}").unwrap();
    let chunks: Vec<Data> = samples
        .chunks(w)
        .enumerate()
        .map(|(k, c)| {
            Data::from(
                AudioBuffer::new(c.to_vec(), RATE, 1)
                    .with_pts(remotemedia_core::frames_to_us((k * w) as u64, RATE)),
            )
        })
        .collect();
    let run_node = || {
        let mut node = VoiceActivity::from_params(&p).unwrap();
        let mut out = Vec::new();
        for c in &chunks {
            node.process(c.clone(), &mut out).unwrap();
        }
        node.finish(&mut out).unwrap();
    };
    run_node();
    let t = Instant::now();
    (0..REPEAT).for_each(|_| run_node());
    let node = t.elapsed().as_secs_f64() / (REPEAT * n) as f64 * 1e6;

    // Python: the same windows through onnxruntime.
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../python/benchmarks/vad_reference.py");
    let py = remotemedia_speech::locate::python();
    let out = Command::new(&py)
        .arg(&script)
        .arg(&wav)
        .arg("--model")
        .arg(model.model_path())
        .args(["--bench", &REPEAT.to_string()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let python = v["us_per_window"].as_f64().unwrap();
    let theirs: Vec<f64> = v["probs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    let mut st = SileroState::new(RATE);
    let max_diff = windows
        .iter()
        .zip(&theirs)
        .map(|(win, &p)| {
            (f64::from(model.prob_on(Runtime::Native, &mut st, win).unwrap()) - p).abs()
        })
        .fold(0.0, f64::max);

    let window_us = w as f64 / f64::from(RATE) * 1e6;
    say!(
        json,
        "one stream, µs per {w}-sample window (real-time factor):"
    );
    say!(
        json,
        "  remotemedia model call   {ours:8.1} ({:.4})   Rust runtime",
        ours / window_us
    );
    if let Some(o) = ours_ort {
        say!(
            json,
            "  remotemedia model call   {o:8.1} ({:.4})   ONNX Runtime in process",
            o / window_us
        );
    }
    say!(
        json,
        "  remotemedia node         {node:8.1} ({:.4})",
        node / window_us
    );
    say!(json,
        "  python onnxruntime {:<5} {python:8.1} ({:.4})   ours is {:.2}x faster; max probability difference {max_diff:.1e}",
        v["onnxruntime"].as_str().unwrap_or("?"),
        python / window_us,
        python / ours
    );

    // 64 streams: 64 calls per window step against one call of 64, on each runtime.
    let streams = 64;
    let steps = n.min(300);
    let stream_windows = |s: usize, f: usize| -> &[f32] { &windows[(f + s * 7) % n] };
    let many = |rt: Runtime| {
        let mut alone: Vec<SileroState> = (0..streams).map(|_| SileroState::new(RATE)).collect();
        let mut alone_probs = vec![0.0f32; streams * steps];
        let t = Instant::now();
        for f in 0..steps {
            for (s, st) in alone.iter_mut().enumerate() {
                alone_probs[f * streams + s] = model.prob_on(rt, st, stream_windows(s, f)).unwrap();
            }
        }
        let unbatched = (streams * steps) as f64 / t.elapsed().as_secs_f64();
        let mut together: Vec<SileroState> = (0..streams).map(|_| SileroState::new(RATE)).collect();
        let mut batched_probs = vec![0.0f32; streams * steps];
        let t = Instant::now();
        for f in 0..steps {
            let wins: Vec<&[f32]> = (0..streams).map(|s| stream_windows(s, f)).collect();
            let mut refs: Vec<&mut SileroState> = together.iter_mut().collect();
            model
                .probs_batch_on(
                    rt,
                    &mut refs,
                    &wins,
                    &mut batched_probs[f * streams..(f + 1) * streams],
                )
                .unwrap();
        }
        let batched = (streams * steps) as f64 / t.elapsed().as_secs_f64();
        let diff = alone_probs
            .iter()
            .zip(&batched_probs)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        (unbatched, batched, diff)
    };
    say!(
        json,
        "{streams} streams × {steps} windows, one thread, windows per second:"
    );
    let (unbatched, batched, diff) = many(Runtime::Native);
    say!(
        json,
        "  Rust runtime, one call per stream          {unbatched:10.0}"
    );
    say!(
        json,
        "  Rust runtime, one call for all streams     {batched:10.0}   {:.2}x; max probability difference {diff:.1e}",
        batched / unbatched
    );
    let ort_many = ours_ort.map(|_| many(Runtime::OnnxRuntime));
    if let Some((u, b, d)) = ort_many {
        say!(
            json,
            "  ONNX Runtime, one call per stream          {u:10.0}"
        );
        say!(
            json,
            "  ONNX Runtime, one call for all streams     {b:10.0}   {:.2}x; max probability difference {d:.1e}",
            b / u
        );
        say!(
            json,
            "  Rust runtime batched against ONNX Runtime one call per stream: {:.2}x",
            batched / u
        );
    }
    if json {
        let report = serde_json::json!({
            "audio_s": samples.len() as f64 / f64::from(RATE),
            "window_samples": w,
            "us_per_window": {
                "remotemedia_model": ours,
                "remotemedia_model_onnxruntime": ours_ort,
                "remotemedia_node": node,
                "python_onnxruntime": python,
            },
            "python_onnxruntime_version": v["onnxruntime"],
            "speedup_vs_python": python / ours,
            "max_probability_difference": max_diff,
            "streams": streams,
            "windows_per_s": { "unbatched": unbatched, "batched": batched },
            "batched_speedup": batched / unbatched,
            "batched_max_probability_difference": diff,
            "onnxruntime_windows_per_s": ort_many.map(|(u, b, _)| serde_json::json!({ "unbatched": u, "batched": b })),
            "onnxruntime_batched_speedup": ort_many.map(|(u, b, _)| b / u),
            "batched_vs_onnxruntime_unbatched": ort_many.map(|(u, _, _)| batched / u),
        });
        println!("{report}");
    }
}
