//! `MediaReader`, `MediaWriter`, `PcmDecode` and `PcmEncode` in pipelines.

use std::path::Path;

use remotemedia_core::executor::{run_pipeline, RunOptions};
use remotemedia_core::manifest::{load_str, Format, Pipeline};
use remotemedia_core::Data;

fn load(nodes: &str) -> Pipeline {
    let yaml = format!("version: v1\nmetadata: {{ name: t }}\nnodes:\n{nodes}");
    load_str(&yaml, Format::Yaml, &remotemedia_audio::registry()).unwrap_or_else(|e| panic!("{e}"))
}

fn write_wav(path: &Path, rate: u32, channels: u16, frames: usize) -> Vec<i16> {
    let spec = hound::WavSpec {
        channels,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    let samples: Vec<i16> = (0..frames * usize::from(channels))
        .map(|i| ((i as i64 * 7919) % 65_536 - 32_768) as i16)
        .collect();
    for &s in &samples {
        w.write_sample(s).unwrap();
    }
    w.finalize().unwrap();
    samples
}

#[test]
fn reader_to_writer_is_bit_identical_and_reports_what_it_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("in.wav");
    let dst = dir.path().join("out.wav");
    let want = write_wav(&src, 16_000, 2, 16_123);
    let p = load(&format!(
        "  - {{ id: read, node_type: MediaReaderNode, params: {{ path: '{}', chunk_ms: 10 }} }}\n  - {{ id: write, node_type: MediaWriter, params: {{ path: '{}' }} }}\nconnections:\n  - {{ from: read, to: write }}\n",
        src.display(),
        dst.display()
    ));
    let r = run_pipeline(
        &p,
        &remotemedia_audio::registry(),
        vec![],
        &RunOptions::default(),
    )
    .unwrap_or_else(|f| panic!("{f}"));
    let out = r.sink("write").unwrap();
    assert_eq!(out.len(), 1);
    let m = out[0].as_map().unwrap();
    assert_eq!(m["type"], Data::text("written"));
    assert_eq!(m["frames"], Data::Int(16_123));
    assert_eq!(m["duration_ms"], Data::Float(1007.6875));
    assert_eq!(
        m["pts_us"],
        Data::Int(remotemedia_core::frames_to_us(16_123, 16_000))
    );
    let got: Vec<i16> = hound::WavReader::open(&dst)
        .unwrap()
        .samples::<i16>()
        .map(Result::unwrap)
        .collect();
    assert_eq!(got, want);
    // Same header too: hound writes the canonical 44-byte one for 16-bit PCM.
    assert_eq!(std::fs::read(&dst).unwrap(), std::fs::read(&src).unwrap());
}

#[test]
fn a_missing_file_fails_at_initialize_naming_it() {
    let p = load(
        "  - { id: read, node_type: MediaReader, params: { path: /nonexistent/speech.wav } }\n",
    );
    let f = run_pipeline(
        &p,
        &remotemedia_audio::registry(),
        vec![],
        &RunOptions::default(),
    )
    .unwrap_err();
    let text = f.to_string();
    assert!(
        text.contains("cannot open /nonexistent/speech.wav"),
        "{text}"
    );
}

#[test]
fn the_writer_rejects_another_format_and_keeps_the_file_valid() {
    let dir = tempfile::tempdir().unwrap();
    let dst = dir.path().join("out.wav");
    let p = load(&format!(
        "  - {{ id: write, node_type: MediaWriter, params: {{ path: '{}', format: f32 }} }}\n",
        dst.display()
    ));
    let a = remotemedia_core::AudioBuffer::new(vec![0.25f32; 100], 8_000, 1);
    let b = remotemedia_core::AudioBuffer::new(vec![0.5f32; 100], 16_000, 1).with_pts(12_500);
    let f = run_pipeline(
        &p,
        &remotemedia_audio::registry(),
        vec![Data::from(a), Data::from(b), Data::Int(1)],
        &RunOptions::default(),
    )
    .unwrap_err();
    let text = f.to_string();
    assert!(text.contains("write"), "{text}");
    assert!(
        text.contains("changed format from 8000 Hz, 1 ch to 16000 Hz, 1 ch"),
        "{text}"
    );
    let mut r = hound::WavReader::open(&dst).unwrap();
    assert_eq!(r.spec().sample_format, hound::SampleFormat::Float);
    let got: Vec<f32> = r.samples::<f32>().map(Result::unwrap).collect();
    assert_eq!(got, vec![0.25f32; 100]);

    // A non-audio item is named as such.
    let p = load(&format!(
        "  - {{ id: write, node_type: MediaWriter, params: {{ path: '{}' }} }}\n",
        dst.display()
    ));
    let f = run_pipeline(
        &p,
        &remotemedia_audio::registry(),
        vec![Data::text("hi")],
        &RunOptions::default(),
    )
    .unwrap_err();
    assert!(f.to_string().contains("expected audio, got a text"), "{f}");
}

#[test]
fn pcm_decode_and_encode_round_trip_across_split_frames() {
    let p = load(
        "  - { id: dec, node_type: PcmDecode, params: { format: s16le, sample_rate: 8000, channels: 2 } }\n  - { id: enc, node_type: PcmEncode, params: { format: s16le } }\nconnections:\n  - { from: dec, to: enc }\n",
    );
    let bytes: Vec<u8> = (0..4_000u32).map(|i| (i * 31 % 251) as u8).collect();
    // Pieces of 3, 5, 7 bytes: most end inside a 4-byte frame.
    let mut items = Vec::new();
    let mut at = 0;
    let mut k = 0;
    while at < bytes.len() {
        let n = [3, 5, 7][k % 3];
        let end = (at + n).min(bytes.len());
        items.push(Data::Bytes(bytes[at..end].to_vec().into()));
        at = end;
        k += 1;
    }
    let r = run_pipeline(
        &p,
        &remotemedia_audio::registry(),
        items,
        &RunOptions::default(),
    )
    .unwrap_or_else(|f| panic!("{f}"));
    let mut got = Vec::new();
    for item in r.sink("enc").unwrap() {
        let Data::Bytes(b) = item else {
            panic!("{item:?}")
        };
        got.extend_from_slice(b);
    }
    assert_eq!(got, bytes);

    // Not bytes, or a partial frame left at the end: errors that say so.
    let f = run_pipeline(
        &p,
        &remotemedia_audio::registry(),
        vec![Data::Int(3)],
        &RunOptions::default(),
    )
    .unwrap_err();
    assert!(
        f.to_string()
            .contains("expected bytes of raw s16le:8000:2 PCM, got an int"),
        "{f}"
    );
    let f = run_pipeline(
        &p,
        &remotemedia_audio::registry(),
        vec![Data::Bytes(vec![1u8; 6].into())],
        &RunOptions::default(),
    )
    .unwrap_err();
    assert!(
        f.to_string()
            .contains("the stream ends with 2 bytes that do not make a whole frame"),
        "{f}"
    );
}

#[test]
fn bad_params_are_load_time_errors_listing_the_choices() {
    let yaml = "version: v1\nmetadata: { name: t }\nnodes:\n  - { id: dec, node_type: PcmDecode, params: { format: s24le, sample_rate: 0, channels: 9 } }\n  - { id: w, node_type: MediaWriter, params: { path: a.wav, format: s24 } }\n  - { id: r, node_type: MediaReader, params: { chunk_ms: 10 } }\n";
    let e = load_str(yaml, Format::Yaml, &remotemedia_audio::registry()).unwrap_err();
    let text: Vec<String> = e.0.iter().map(ToString::to_string).collect();
    let all = text.join("\n");
    assert!(
        all.contains("`s16le`, `f32le`, `u8`, `mulaw`, `alaw`"),
        "{all}"
    );
    assert!(all.contains("`s16`, `f32`"), "{all}");
    assert!(all.contains("sample_rate"), "{all}");
    assert!(all.contains("channels"), "{all}");
    assert!(all.contains("path"), "{all}");
}

#[test]
fn a_path_pattern_writes_one_file_per_item() {
    let dir = tempfile::tempdir().unwrap();
    let p = load(&format!(
        "  - {{ id: write, node_type: MediaWriter, params: {{ path: '{}/u-{{index:03}}-{{pts_ms}}.wav' }} }}\n",
        dir.path().display()
    ));
    // Three utterances of different rates and lengths: each file has its own format.
    let items = vec![
        remotemedia_core::AudioBuffer::new(vec![0.25f32; 160], 16_000, 1).with_pts(500_000),
        remotemedia_core::AudioBuffer::new(vec![-0.5f32; 80], 8_000, 2).with_pts(1_250_000),
        remotemedia_core::AudioBuffer::new(vec![0.0f32; 0], 16_000, 1).with_pts(3_000_999),
    ];
    let r = run_pipeline(
        &p,
        &remotemedia_audio::registry(),
        items.into_iter().map(Data::from).collect(),
        &RunOptions::default(),
    )
    .unwrap_or_else(|f| panic!("{f}"));
    let out = r.sink("write").unwrap();
    // One map per file, as it is written, and none at the end.
    assert_eq!(out.len(), 3, "{out:?}");
    let want = [
        ("u-000-500.wav", 160, 16_000, 1, 500_000, 0.25f32),
        ("u-001-1250.wav", 40, 8_000, 2, 1_250_000, -0.5),
        ("u-002-3000.wav", 0, 16_000, 1, 3_000_999, 0.0),
    ];
    for (k, (name, frames, rate, channels, pts, value)) in want.into_iter().enumerate() {
        let m = out[k].as_map().unwrap();
        let path = dir.path().join(name);
        assert_eq!(m["type"], Data::text("written"));
        assert_eq!(m["path"], Data::text(path.display().to_string()));
        assert_eq!(m["index"], Data::Int(k as i64));
        assert_eq!(m["frames"], Data::Int(frames));
        assert_eq!(m["pts_us"], Data::Int(pts));
        let mut rd = hound::WavReader::open(&path).unwrap();
        assert_eq!(rd.spec().sample_rate, rate, "{name}");
        assert_eq!(rd.spec().channels, channels, "{name}");
        let got: Vec<i16> = rd.samples::<i16>().map(Result::unwrap).collect();
        let q = remotemedia_audio::pcm::f32_to_i16(value);
        assert_eq!(
            got,
            vec![q; frames as usize * usize::from(channels)],
            "{name}"
        );
    }
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 3);
}

#[test]
fn an_unknown_placeholder_is_a_load_time_error_listing_the_known_ones() {
    let yaml = "version: v1\nmetadata: { name: t }\nnodes:\n  - { id: w, node_type: MediaWriter, params: { path: 'u-{utterance}.wav' } }\n";
    let e = load_str(yaml, Format::Yaml, &remotemedia_audio::registry()).unwrap_err();
    let all = e.to_string();
    assert!(
        all.contains("unknown placeholder `{utterance}` in `u-{utterance}.wav`; known: {index}"),
        "{all}"
    );
    assert!(all.contains("{pts}") && all.contains("{pts_ms}"), "{all}");
    let yaml = "version: v1\nmetadata: { name: t }\nnodes:\n  - { id: w, node_type: MediaWriter, params: { path: 'u-{index.wav' } }\n";
    let e = load_str(yaml, Format::Yaml, &remotemedia_audio::registry()).unwrap_err();
    assert!(e.to_string().contains("without a closing"), "{e}");
}
