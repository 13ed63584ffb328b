//! The DSP and analysis nodes in manifests: run through the executor, validated at load
//! time, and documented for `remotemedia nodes info`.

use remotemedia_core::executor::{run_pipeline, RunOptions};
use remotemedia_core::manifest::{load_str, Format};
use remotemedia_core::Data;

fn load(nodes: &str, connections: &str) -> remotemedia_core::manifest::Pipeline {
    let yaml =
        format!("version: v1\nmetadata: {{ name: t }}\nnodes:\n{nodes}connections:\n{connections}");
    load_str(&yaml, Format::Yaml, &remotemedia_audio::registry()).unwrap_or_else(|e| panic!("{e}"))
}

fn errors(nodes: &str) -> Vec<String> {
    let yaml = format!("version: v1\nmetadata: {{ name: t }}\nnodes:\n{nodes}");
    let e = load_str(&yaml, Format::Yaml, &remotemedia_audio::registry()).unwrap_err();
    e.0.iter().map(ToString::to_string).collect()
}

#[test]
fn a_generated_tone_through_the_chain() {
    // A stereo 48 kHz sine at -23 dBFS peak, 20 ms chunks; to mono, +6 dB, limited at
    // -1 dBFS, cut into 1024-frame chunks; levels and loudness measured on the side.
    let nodes = "  - { id: tone, node_type: ToneGenerator, params: { sample_rate: 48000, channels: 2, frequency_hz: 1000, amplitude: 0.0707946, duration_ms: 3000, chunk_ms: 20 } }
  - { id: mono, node_type: AudioChannels, params: { channels: 1 } }
  - { id: gain, node_type: AudioGain, params: { db: 6 } }
  - { id: limit, node_type: AudioLimiter, params: { threshold_db: -1 } }
  - { id: chunk, node_type: AudioChunkerNode, params: { chunk_size: 1024 } }
  - { id: level, node_type: AudioLevelNode, params: { interval_ms: 500 } }
  - { id: loud, node_type: AudioLoudness, params: { interval_ms: 1000 } }
";
    let conns = "  - { from: tone, to: mono }
  - { from: tone, to: loud }
  - { from: mono, to: gain }
  - { from: gain, to: limit }
  - { from: limit, to: chunk }
  - { from: limit, to: level }
";
    let p = load(nodes, conns);
    let r = remotemedia_audio::registry();
    let res = run_pipeline(&p, &r, Vec::new(), &RunOptions::default()).unwrap();

    let chunks = res.sink("chunk").unwrap();
    assert_eq!(chunks.len(), 141); // 144000 frames: 140 of 1024 and one of 640
    let mut frames = 0u64;
    for c in chunks {
        let Data::Audio(a) = c else { panic!() };
        assert_eq!((a.channels, a.sample_rate), (1, 48_000));
        assert_eq!(a.pts_us, remotemedia_core::frames_to_us(frames, 48_000));
        frames += a.frames() as u64;
        // -23 dBFS + 6 dB is below the limiter's threshold: nothing is limited.
        assert!(a
            .samples
            .iter()
            .all(|s| s.abs() <= 0.0707946 * 1.9953 + 1e-6));
    }
    assert_eq!(frames, 144_000);

    let levels = res.sink("level").unwrap();
    assert_eq!(levels.len(), 6);
    for (k, e) in levels.iter().enumerate() {
        let m = e.as_map().unwrap();
        assert_eq!(m["pts_us"], Data::Int(500_000 * (k as i64 + 1)));
        let Data::Float(peak) = m["peak_dbfs"].as_list().unwrap()[0] else {
            panic!()
        };
        assert!((peak - -17.0).abs() < 0.05, "{peak}");
    }

    let loud = res.sink("loud").unwrap();
    let summary = loud.last().unwrap().as_map().unwrap();
    assert_eq!(summary["type"], Data::from("loudness_summary"));
    assert_eq!(summary["pts_us"], Data::Int(3_000_000));
    let Data::Float(i) = summary["integrated_lufs"] else {
        panic!()
    };
    assert!((i - -23.0).abs() < 0.1, "{i}");
}

#[test]
fn detectors_in_a_manifest() {
    let nodes = "  - { id: tone, node_type: ToneGenerator, params: { waveform: silence, sample_rate: 16000, duration_ms: 1234, chunk_ms: 30 } }
  - { id: silence, node_type: SilenceDetector, params: { min_duration_ms: 200 } }
  - { id: clip, node_type: ClippingDetector }
  - { id: acc, node_type: AudioBufferAccumulatorNode, params: { min_ms: 500, max_ms: 600 } }
";
    let conns = "  - { from: tone, to: silence }
  - { from: tone, to: clip }
  - { from: tone, to: acc }
";
    let p = load(nodes, conns);
    let r = remotemedia_audio::registry();
    let res = run_pipeline(&p, &r, Vec::new(), &RunOptions::default()).unwrap();
    let text = |id: &str| -> Vec<String> {
        res.sink(id)
            .unwrap()
            .iter()
            .map(Data::to_json_string)
            .collect()
    };
    assert_eq!(
        text("silence"),
        [
            r#"{"type":"silence_start","pts_us":0}"#,
            r#"{"type":"silence_end","pts_us":1234000,"duration_ms":1234.0}"#
        ]
    );
    assert_eq!(
        text("clip"),
        [r#"{"type":"clipping_summary","pts_us":1234000,"events":0,"clipped_samples":[0]}"#]
    );
    let spans: Vec<(i64, usize)> = res
        .sink("acc")
        .unwrap()
        .iter()
        .map(|d| match d {
            Data::Audio(a) => (a.pts_us, a.frames()),
            _ => panic!(),
        })
        .collect();
    // 30 ms chunks: 510 ms, 510 ms, then the 214 ms left at the end.
    assert_eq!(spans, [(0, 8160), (510_000, 8160), (1_020_000, 3424)]);
}

#[test]
fn bad_params_are_reported_with_the_node() {
    let text = errors(
        "  - { id: a, node_type: AudioChunker, params: { chunk_ms: 20, chunk_samples: 320 } }
  - { id: b, node_type: AudioChannels, params: { matrix: [[1, 0], [1]] } }
  - { id: c, node_type: AudioLimiter, params: { threshold_db: 3 } }
  - { id: d, node_type: SilenceDetector, params: { threshold: -40 } }
",
    );
    assert_eq!(
        text,
        [
            "nodes[0].params: node `a` (AudioChunker): give only one chunk length, found `chunk_ms` and `chunk_samples`",
            "nodes[1].params.matrix.1: node `b` (AudioChannels): every row of `matrix` must have the same length: row 0 has 2, row 1 has 1",
            "nodes[2].params.threshold_db: node `c` (AudioLimiter): `threshold_db` must be between -60 and 0, found 3",
            "nodes[3].params.threshold: node `d` (SilenceDetector): unknown param `threshold`; did you mean `threshold_db`?",
        ]
    );
}

#[test]
fn every_node_documents_its_params() {
    let r = remotemedia_audio::registry();
    for name in [
        "AudioChannels",
        "AudioGain",
        "AudioLimiter",
        "AudioChunker",
        "AudioChunkerNode",
        "AudioAccumulator",
        "AudioBufferAccumulatorNode",
        "AudioLevel",
        "AudioLevelNode",
        "AudioLoudness",
        "SilenceDetector",
        "ClippingDetector",
    ] {
        let doc = r
            .get(name)
            .unwrap_or_else(|| panic!("{name} not registered"))
            .doc();
        assert!(!doc.params.is_empty(), "{name}");
        for p in &doc.params {
            assert!(
                !p.description.is_empty(),
                "{name}.{} has no description",
                p.name
            );
        }
    }
    let doc = r.get("AudioLimiter").unwrap().doc();
    let names: Vec<&str> = doc.params.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["threshold_db", "release_ms", "lookahead_ms"]);
    assert_eq!(doc.params[0].default.as_deref(), Some("-1.0"));
}
