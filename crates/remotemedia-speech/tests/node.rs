//! `VoiceActivity` as a node: its three outputs, their times, chunk sizes, bad input
//! and bad params.

mod support;

use remotemedia_core::executor::{run_pipeline, RunOptions};
use remotemedia_core::manifest::{load_str, Format};
use remotemedia_core::{AudioBuffer, Data, Node, NodeType};
use remotemedia_speech::vad::{SileroVad, SileroVadParams, VoiceActivity, VoiceActivityParams};
use support::*;

/// Bursts of a 300 Hz tone (0.3 amplitude): 1.0–2.0 s, 2.5–3.0 s (a 0.5 s gap), 3.05–3.5 s
/// (a 50 ms gap: the same utterance), then silence to 4.5 s; a little noise throughout.
fn bursts() -> Vec<f32> {
    let mut rng = Rng::new(3);
    (0..4 * RATE as usize + RATE as usize / 2)
        .map(|i| {
            let t = i as f64 / f64::from(RATE);
            let on = (1.0..2.0).contains(&t) || (2.5..3.0).contains(&t) || (3.05..3.5).contains(&t);
            let tone = if on {
                0.3 * (std::f64::consts::TAU * 300.0 * t).sin()
            } else {
                0.0
            };
            (tone + 0.001 * (rng.unit() - 0.5)) as f32
        })
        .collect()
}

fn audio(items: &[Data]) -> Vec<&AudioBuffer> {
    items
        .iter()
        .map(|d| match d {
            Data::Audio(a) => &**a,
            other => panic!("expected audio, got {other:?}"),
        })
        .collect()
}

#[test]
fn energy_events_sit_on_the_bursts_whatever_the_chunk_size() {
    let s = bursts();
    let origin = 7_000_000;
    let events = run_node("{ engine: energy }", &s, 320, origin);
    let segs = segments_of(&events);
    // Two utterances; starts 30 ms of padding before the burst (to the 32 ms frame),
    // ends 30 ms after it, the end waiting for 100 ms of silence.
    assert_eq!(segs.len(), 2, "{segs:?}");
    let near = |got: i64, want_s: f64| (got - origin - (want_s * 1e6) as i64).abs() <= 32_000;
    assert!(near(segs[0].0, 0.97) && near(segs[0].1, 2.03), "{segs:?}");
    assert!(near(segs[1].0, 2.47) && near(segs[1].1, 3.53), "{segs:?}");
    let Some(Data::Float(d)) = events[1].as_map().unwrap().get("duration_ms") else {
        panic!("{:?}", events[1])
    };
    assert_eq!(*d, (segs[0].1 - segs[0].0) as f64 / 1000.0);
    for chunk in [1, 100, 512, 4096, s.len()] {
        assert_eq!(
            run_node("{ engine: energy }", &s, chunk, origin),
            events,
            "chunk {chunk}"
        );
    }
}

#[test]
fn segments_and_gate_carry_the_utterances_audio_at_its_times() {
    let s = bursts();
    let origin = 1_000_000;
    let segs = segments_of(&run_node("{ engine: energy }", &s, 320, origin));
    let pos = |us: i64| ((us - origin) as u64 * u64::from(RATE) / 1_000_000) as usize;

    let segments = run_node("{ engine: energy, output: segments }", &s, 333, origin);
    let segments = audio(&segments);
    assert_eq!(segments.len(), segs.len());
    for (b, &(start, end)) in segments.iter().zip(&segs) {
        assert_eq!((b.pts_us, b.end_pts_us()), (start, end));
        assert_eq!((b.sample_rate, b.channels), (RATE, 1));
        assert_eq!(&b.samples[..], &s[pos(start)..pos(end)]);
    }

    // The gate: the same audio, a piece per input while speech is on, none outside it.
    for chunk in [160, 1000, 8000] {
        let gate = run_node("{ engine: energy, output: gate }", &s, chunk, origin);
        let gate = audio(&gate);
        assert!(
            gate.len() > segs.len(),
            "chunk {chunk}: {} pieces",
            gate.len()
        );
        for (k, &(start, end)) in segs.iter().enumerate() {
            let pieces: Vec<&&AudioBuffer> = gate
                .iter()
                .filter(|b| b.pts_us >= start && b.end_pts_us() <= end)
                .collect();
            assert_eq!(pieces.first().unwrap().pts_us, start, "utterance {k}");
            assert_eq!(pieces.last().unwrap().end_pts_us(), end, "utterance {k}");
            for w in pieces.windows(2) {
                assert_eq!(w[0].end_pts_us(), w[1].pts_us, "pieces are contiguous");
            }
            let joined: Vec<f32> = pieces
                .iter()
                .flat_map(|b| b.samples.iter().copied())
                .collect();
            assert_eq!(&joined[..], &s[pos(start)..pos(end)]);
        }
        let total: usize = gate.iter().map(|b| b.samples.len()).sum();
        let want: usize = segs.iter().map(|&(a, b)| pos(b) - pos(a)).sum();
        assert_eq!(total, want, "chunk {chunk}: nothing outside the utterances");
    }
}

#[test]
fn silero_on_speech_agrees_across_outputs_and_chunk_sizes() {
    let (Some(clean), Some(_)) = (corpus(), model()) else {
        return;
    };
    let events = run_node("{}", clean, 320, 0);
    let segs = segments_of(&events);
    assert!(segs.len() >= 12, "{segs:?}");
    assert_eq!(run_node("{}", clean, 1234, 0), events);
    let segments = run_node("{ output: segments }", clean, 480, 0);
    let got: Vec<(i64, i64)> = audio(&segments)
        .iter()
        .map(|b| (b.pts_us, b.end_pts_us()))
        .collect();
    assert_eq!(got, segs);
    // The SileroVADNode names mean the same.
    let p: SileroVadParams = serde_yaml_ng::from_str(
        "{ sampling_rate: 16000, min_speech_duration_ms: 250, min_silence_duration_ms: 100, speech_pad_ms: 30 }",
    )
    .unwrap();
    let mut node = SileroVad::from_params(&p).unwrap();
    let mut out = Vec::new();
    let mut frames = 0u64;
    for c in clean.chunks(320) {
        let pts = remotemedia_core::frames_to_us(frames, RATE);
        frames += c.len() as u64;
        node.process(
            Data::from(AudioBuffer::new(c.to_vec(), RATE, 1).with_pts(pts)),
            &mut out,
        )
        .unwrap();
    }
    node.finish(&mut out).unwrap();
    assert_eq!(out, events);
    // Speech at the end of the stream is closed by `finish`.
    let cut = &clean[..clean.len() / 2];
    let half = segments_of(&run_node("{}", cut, 320, 0));
    let end = remotemedia_core::frames_to_us(cut.len() as u64, RATE);
    assert!(half.iter().all(|&(_, e)| e <= end));
}

fn node(params: &str) -> VoiceActivity {
    let p: VoiceActivityParams = serde_yaml_ng::from_str(params).unwrap();
    VoiceActivity::from_params(&p).unwrap()
}

fn first_error(n: &mut VoiceActivity, items: Vec<Data>) -> String {
    let mut out = Vec::new();
    for item in items {
        if let Err(e) = n.process(item, &mut out) {
            return e.message;
        }
    }
    panic!("no error")
}

#[test]
fn wrong_input_says_which_node_to_put_before() {
    let stereo = Data::from(AudioBuffer::new(vec![0.0; 640], 16_000, 2));
    let cd = Data::from(AudioBuffer::new(vec![0.0; 441], 44_100, 1));
    let mono = || Data::from(AudioBuffer::new(vec![0.0; 320], 16_000, 1));
    assert_eq!(
        first_error(&mut node("{ engine: energy }"), vec![stereo.clone()]),
        "expected mono audio, got 2 channels: put AudioChannels (channels: 1) before this node"
    );
    assert_eq!(
        first_error(&mut node("{ engine: energy }"), vec![Data::from("hello")]),
        "expected audio, got a text"
    );
    assert_eq!(
        first_error(&mut node("{ engine: energy }"), vec![mono(), cd.clone()]),
        "the stream changed format from 16000 Hz, 1 ch to 44100 Hz, 1 ch; a stream must keep one format"
    );
    // Energy takes any rate.
    let mut out = Vec::new();
    node("{ engine: energy }")
        .process(cd.clone(), &mut out)
        .unwrap();
    if model().is_some() {
        assert_eq!(
            first_error(&mut node("{}"), vec![cd.clone()]),
            "expected audio at 8000 or 16000 Hz (what the Silero model takes), got 44100 Hz: \
             put AudioResample (target_rate: 16000) before this node"
        );
        let p: SileroVadParams = serde_yaml_ng::from_str("{ sampling_rate: 8000 }").unwrap();
        let mut n = SileroVad::from_params(&p).unwrap();
        let e = n.process(mono(), &mut Vec::new()).unwrap_err();
        assert_eq!(
            e.message,
            "expected audio at 8000 Hz, got 16000 Hz: put AudioResample (target_rate: 8000) before this node"
        );
        // 8 kHz runs (256-sample windows, 32 of context).
        let mut n = node("{ output: gate }");
        n.process(
            Data::from(AudioBuffer::new(vec![0.0; 8000], 8000, 1)),
            &mut out,
        )
        .unwrap();
        n.finish(&mut out).unwrap();
    }
}

#[test]
fn bad_params_are_load_time_errors() {
    let r = remotemedia_speech::registry();
    let load = |ty: &str, params: &str| {
        let yaml = format!(
            "version: v1\nmetadata: {{ name: t }}\nnodes:\n  - {{ id: v, node_type: {ty}, params: {params} }}\n"
        );
        load_str(&yaml, Format::Yaml, &r)
            .map(|_| ())
            .map_err(|e| e.0.iter().map(ToString::to_string).collect::<Vec<_>>())
    };
    let e = load(
        "VoiceActivity",
        "{ output: words, engine: whisper, threshold: 1.5 }",
    )
    .unwrap_err();
    assert_eq!(e.len(), 3, "{e:#?}");
    assert!(
        e.iter().any(|t| t.contains("`events`, `segments`, `gate`")),
        "{e:#?}"
    );
    assert!(
        e.iter()
            .any(|t| t.contains("`silero`, `silero_onnxruntime`, `energy`")),
        "{e:#?}"
    );
    assert!(e.iter().any(|t| t.contains("threshold")), "{e:#?}");
    let e = load("VADNode", "{ threshold: 0.3, neg_threshold: 0.4 }").unwrap_err();
    assert!(
        e[0].contains("`neg_threshold` (0.4) must not be above `threshold` (0.3)"),
        "{e:#?}"
    );
    let e = load(
        "SileroVADNode",
        "{ sampling_rate: 44100, min_speech_ms: 200, min_speech_duration_ms: 200 }",
    )
    .unwrap_err();
    assert_eq!(e.len(), 2, "{e:#?}");
    assert!(e
        .iter()
        .any(|t| t.contains("`sampling_rate` must be 8000 or 16000, found 44100")));
    assert!(e
        .iter()
        .any(|t| t.contains("are the same parameter: give one")));
    let e = load("VoiceActivity", "{ min_speech_duration_ms: 200 }").unwrap_err();
    assert!(e[0].contains("min_speech_duration_ms"), "{e:#?}");
    assert!(load(
        "SileroVADNode",
        "{ engine: energy, min_silence_duration_ms: 300 }"
    )
    .is_ok());
}

#[test]
fn a_pipeline_runs_the_node() {
    let r = remotemedia_speech::registry();
    let yaml = "version: v1\nmetadata: { name: t }\nnodes:\n  - { id: vad, node_type: VADNode, params: { engine: energy, output: segments } }\n";
    let p = load_str(yaml, Format::Yaml, &r).unwrap_or_else(|e| panic!("{e}"));
    let s = bursts();
    let inputs: Vec<Data> = s
        .chunks(320)
        .enumerate()
        .map(|(k, c)| Data::from(AudioBuffer::new(c.to_vec(), RATE, 1).with_pts(20_000 * k as i64)))
        .collect();
    let res = run_pipeline(&p, &r, inputs, &RunOptions::default()).unwrap();
    let out = audio(res.sink("vad").unwrap());
    let want = segments_of(&run_node("{ engine: energy }", &s, 320, 0));
    let got: Vec<(i64, i64)> = out.iter().map(|b| (b.pts_us, b.end_pts_us())).collect();
    assert_eq!(got, want);
}
