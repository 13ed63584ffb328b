//! `remotemedia run` with audio in and out: files and stdin recognised by content, raw
//! PCM, WAV and raw output, errors with the position reached, `--realtime`.

mod support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Instant;

use support::{write, BIN};

const PASS: &str =
    "version: v1\nmetadata: { name: p }\nnodes:\n  - { id: pass, node_type: PassThrough }\n";

fn run(dir: &Path, args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(BIN)
        .current_dir(dir)
        .arg("run")
        .args(args)
        .arg("--no-progress")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(bytes) = stdin {
        let mut w = child.stdin.take().unwrap();
        let bytes = bytes.to_vec();
        std::thread::spawn(move || {
            let _ = w.write_all(&bytes);
        });
    }
    child.wait_with_output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn ok(o: &Output) {
    assert!(o.status.success(), "exit {:?}: {}", o.status, stderr(o));
}

/// A 16-bit WAV of a deterministic signal; its samples.
fn wav16(path: &Path, rate: u32, channels: u16, frames: usize) -> Vec<i16> {
    let spec = hound::WavSpec {
        channels,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    let mut x = 12_345u32;
    let samples: Vec<i16> = (0..frames * usize::from(channels))
        .map(|_| {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            (x >> 16) as i16
        })
        .collect();
    for &s in &samples {
        w.write_sample(s).unwrap();
    }
    w.finalize().unwrap();
    samples
}

fn read16(path: &Path) -> (hound::WavSpec, Vec<i16>) {
    let mut r = hound::WavReader::open(path)
        .unwrap_or_else(|e| panic!("{} is not a valid WAV: {e}", path.display()));
    let spec = r.spec();
    (spec, r.samples::<i16>().map(Result::unwrap).collect())
}

/// The JSON Lines outputs.
fn lines(o: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn tool(name: &str, args: &[&str], dir: &Path) {
    let out = Command::new(name)
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("`{name}` is needed: apt-get install sox libsox-fmt-all flac lame vorbis-tools ({e})")
        });
    assert!(
        out.status.success(),
        "{name} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_wav_through_pass_through_comes_out_bit_identical() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let m = write(d, "m.yaml", PASS);
    for (rate, channels) in [(16_000, 1), (44_100, 2)] {
        wav16(&d.join("in.wav"), rate, channels, 33_333);
        let o = run(
            d,
            &[
                m.to_str().unwrap(),
                "--input",
                "in.wav",
                "--output",
                "out.wav",
            ],
            None,
        );
        ok(&o);
        assert!(o.stdout.is_empty());
        // The whole file, header included.
        assert_eq!(
            std::fs::read(d.join("out.wav")).unwrap(),
            std::fs::read(d.join("in.wav")).unwrap(),
            "{rate} Hz, {channels} ch"
        );
    }
}

#[test]
fn audio_comes_as_chunks_with_their_times_and_stdin_is_recognised_by_content() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let m = write(d, "m.yaml", PASS);
    let want = wav16(&d.join("in.wav"), 8_000, 2, 8_100);
    // A misleading name: the content decides.
    std::fs::copy(d.join("in.wav"), d.join("in.jsonl")).unwrap();
    let o = run(
        d,
        &[
            m.to_str().unwrap(),
            "--input",
            "in.jsonl",
            "--chunk-ms",
            "100",
        ],
        None,
    );
    ok(&o);
    let items = lines(&o);
    assert_eq!(items.len(), 11);
    for (k, item) in items.iter().enumerate() {
        let a = &item["$audio"];
        assert_eq!(a["sample_rate"], 8_000);
        assert_eq!(a["channels"], 2);
        assert_eq!(a["pts_us"], 100_000 * k as i64);
    }
    // Stdin: audio by its magic bytes, into a WAV.
    let bytes = std::fs::read(d.join("in.wav")).unwrap();
    let o = run(
        d,
        &[m.to_str().unwrap(), "--input", "-", "--output", "out.wav"],
        Some(&bytes),
    );
    ok(&o);
    assert_eq!(read16(&d.join("out.wav")).1, want);
    // And JSON Lines on stdin still work.
    let o = run(
        d,
        &[m.to_str().unwrap(), "--input", "-"],
        Some(b"{\"a\": 1}\nfalse\n"),
    );
    ok(&o);
    assert_eq!(String::from_utf8_lossy(&o.stdout), "{\"a\":1}\nfalse\n");
}

#[test]
fn flac_mp3_and_vorbis_inputs_decode() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let m = write(d, "m.yaml", PASS);
    let want = wav16(&d.join("src.wav"), 44_100, 2, 22_050);
    tool("flac", &["-s", "-f", "-o", "a.flac", "src.wav"], d);
    tool("lame", &["--quiet", "src.wav", "a.mp3"], d);
    tool("oggenc", &["--quiet", "-o", "a.ogg", "src.wav"], d);
    // FLAC is lossless: the same samples come out.
    let o = run(
        d,
        &[
            m.to_str().unwrap(),
            "--input",
            "a.flac",
            "--output",
            "f.wav",
        ],
        None,
    );
    ok(&o);
    assert_eq!(read16(&d.join("f.wav")).1, want);
    for f in ["a.mp3", "a.ogg"] {
        let o = run(
            d,
            &[m.to_str().unwrap(), "--input", f, "--output", "l.wav"],
            None,
        );
        ok(&o);
        let (spec, got) = read16(&d.join("l.wav"));
        assert_eq!((spec.sample_rate, spec.channels), (44_100, 2), "{f}");
        // Gapless: the encoder's delay and padding are trimmed.
        assert_eq!(got.len(), want.len(), "{f}");
    }
}

#[test]
fn raw_pcm_in_from_stdin_and_out_to_stdout() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let m = write(d, "m.yaml", PASS);
    let samples: Vec<i16> = (0..16_001)
        .map(|i| ((i * 37) % 60_000 - 30_000) as i16)
        .collect();
    let raw: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
    let o = run(
        d,
        &[
            m.to_str().unwrap(),
            "--input",
            "-",
            "--input-format",
            "s16le:16000:1",
            "--output",
            "o.wav",
        ],
        Some(&raw),
    );
    ok(&o);
    let (spec, got) = read16(&d.join("o.wav"));
    assert_eq!((spec.sample_rate, spec.channels), (16_000, 1));
    assert_eq!(got, samples);
    // Raw out to stdout, same bytes; μ-law in, the G.711 levels out.
    let o = run(
        d,
        &[
            m.to_str().unwrap(),
            "--input",
            "-",
            "--input-format",
            "s16le:16000:1",
            "--output-format",
            "s16le",
        ],
        Some(&raw),
    );
    ok(&o);
    assert_eq!(o.stdout, raw);
    let o = run(
        d,
        &[
            m.to_str().unwrap(),
            "--input",
            "-",
            "--input-format",
            "mulaw:8000:1",
            "--output-format",
            "s16le",
        ],
        Some(&[0xff, 0x80, 0x00, 0xef]),
    );
    ok(&o);
    let got: Vec<i16> = o
        .stdout
        .chunks(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect();
    assert_eq!(got, [0, 32124, -32124, 132]);
    // A bad spec says what is expected.
    let o = run(
        d,
        &[
            m.to_str().unwrap(),
            "--input",
            "-",
            "--input-format",
            "s16le:16k:1",
        ],
        Some(b""),
    );
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o).trim(),
        "error: --input-format: sample rate must be a whole number of Hz from 1 to 768000, got `16k`"
    );
}

#[test]
fn a_truncated_file_fails_with_the_position_after_writing_what_came_before() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let m = write(d, "m.yaml", PASS);
    let want = wav16(&d.join("full.wav"), 16_000, 1, 32_000);
    let bytes = std::fs::read(d.join("full.wav")).unwrap();
    // 1.234 s of the 2 s: 19744 frames.
    std::fs::write(d.join("speech.wav"), &bytes[..44 + 19_744 * 2]).unwrap();
    let o = run(
        d,
        &[
            m.to_str().unwrap(),
            "--input",
            "speech.wav",
            "--output",
            "out.wav",
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains(
            "error: input speech.wav: the file ends early (truncated) at 1.234 s (frame 19744)"
        ),
        "{err}"
    );
    let (_, got) = read16(&d.join("out.wav"));
    assert_eq!(got, want[..19_744]);
    // JSON Lines out: the chunks before it are printed.
    let o = run(d, &[m.to_str().unwrap(), "--input", "speech.wav"], None);
    assert_eq!(o.status.code(), Some(1));
    let frames: u64 = lines(&o)
        .iter()
        .map(|v| {
            let s = v["$audio"]["samples"].as_str().unwrap();
            (s.len() / 4 * 3 - s.matches('=').count()) as u64 / 4
        })
        .sum();
    assert_eq!(frames, 19_744);
    // A truncated FLAC also names where it stopped.
    tool("flac", &["-s", "-f", "-o", "a.flac", "full.wav"], d);
    let flac = std::fs::read(d.join("a.flac")).unwrap();
    std::fs::write(d.join("cut.flac"), &flac[..flac.len() / 2]).unwrap();
    let o = run(
        d,
        &[
            m.to_str().unwrap(),
            "--input",
            "cut.flac",
            "--output",
            "f.wav",
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains("error: input cut.flac: ") && err.contains(" s (frame "),
        "{err}"
    );
    let (_, got) = read16(&d.join("f.wav"));
    assert!(!got.is_empty() && got[..] == want[..got.len()], "{err}");
}

/// base64 of `bytes` (the JSON form of audio samples).
fn b64(bytes: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::new();
    for c in bytes.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                s.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

fn audio_line(rate: u32, samples: &[f32]) -> String {
    let bytes: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
    format!(
        "{{\"$audio\": {{\"sample_rate\": {rate}, \"channels\": 1, \"samples\": \"{}\"}}}}\n",
        b64(&bytes)
    )
}

#[test]
fn an_item_wav_cannot_hold_fails_naming_the_sink_and_the_file_stays_valid() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let m = write(d, "m.yaml", PASS);
    let first = [0.5f32, -0.25, 0.0, 0.125];
    let input = audio_line(16_000, &first) + &audio_line(22_050, &[0.1; 4]);
    write(d, "in.jsonl", &input);
    let o = run(
        d,
        &[
            m.to_str().unwrap(),
            "--input",
            "in.jsonl",
            "--output",
            "out.wav",
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        stderr(&o).trim(),
        "error: output out.wav: sink `pass` changed format from 16000 Hz, 1 ch to 22050 Hz, 1 ch; a WAV file holds one format"
    );
    let (spec, got) = read16(&d.join("out.wav"));
    assert_eq!(spec.sample_rate, 16_000);
    assert_eq!(got, [16_384, -8_192, 0, 4_096]);

    write(
        d,
        "in2.jsonl",
        &(audio_line(16_000, &first) + "{\"a\": 1}\n"),
    );
    let o = run(
        d,
        &[
            m.to_str().unwrap(),
            "--input",
            "in2.jsonl",
            "--output",
            "out.wav",
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        stderr(&o).trim(),
        "error: output out.wav: sink `pass` emitted a map, not audio; only audio can be written there"
    );
    assert_eq!(read16(&d.join("out.wav")).1, [16_384, -8_192, 0, 4_096]);

    // Audio output needs a single sink.
    let two = write(
        d,
        "two.yaml",
        "version: v1\nmetadata: { name: p }\nnodes:\n  - { id: a, node_type: PassThrough }\n  - { id: b, node_type: PassThrough }\n",
    );
    let o = run(
        d,
        &[
            two.to_str().unwrap(),
            "--input",
            "in.jsonl",
            "--output",
            "x.wav",
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o).trim(),
        "error: --output x.wav writes one sink's audio, but the pipeline has 2 sinks: a, b"
    );
    assert!(!d.join("x.wav").exists());
}

#[test]
fn float_wav_output_keeps_the_samples() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let m = write(d, "m.yaml", PASS);
    let samples = [0.3f32, -0.7, 1.5, 1e-6];
    write(d, "in.jsonl", &audio_line(48_000, &samples));
    let o = run(
        d,
        &[
            m.to_str().unwrap(),
            "--input",
            "in.jsonl",
            "--output",
            "f.wav",
            "--output-format",
            "f32",
        ],
        None,
    );
    ok(&o);
    let mut r = hound::WavReader::open(d.join("f.wav")).unwrap();
    assert_eq!(r.spec().sample_format, hound::SampleFormat::Float);
    let got: Vec<f32> = r.samples::<f32>().map(Result::unwrap).collect();
    assert_eq!(got, samples);
}

#[test]
fn realtime_input_takes_its_own_duration_and_reports_latency() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let m = write(d, "m.yaml", PASS);
    wav16(&d.join("in.wav"), 8_000, 1, 8_000);
    let t0 = Instant::now();
    let o = run(
        d,
        &[
            m.to_str().unwrap(),
            "--input",
            "in.wav",
            "--realtime",
            "--metrics",
            "m.json",
            "--output",
            "o.wav",
        ],
        None,
    );
    let took = t0.elapsed().as_secs_f64();
    ok(&o);
    // The last chunk ends at 1 s of stream time: it cannot be sent before.
    assert!(took >= 0.99, "took {took} s");
    let metrics: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("m.json")).unwrap()).unwrap();
    let l = &metrics["realtime_latency_us"];
    assert_eq!(l["items"], 50, "{metrics}");
    assert!(l["p50"].as_i64().unwrap() >= 0, "{l}");
    assert!(
        l["p99"].as_i64().unwrap() >= l["p50"].as_i64().unwrap(),
        "{l}"
    );
    assert!(
        l["max"].as_i64().unwrap() >= l["p99"].as_i64().unwrap(),
        "{l}"
    );
}

#[test]
fn a_ten_minute_file_streams_through() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let m = write(d, "m.yaml", PASS);
    let path: PathBuf = d.join("long.wav");
    let frames = 10 * 60 * 8_000;
    let want = wav16(&path, 8_000, 1, frames);
    let o = run(
        d,
        &[
            m.to_str().unwrap(),
            "--input",
            "long.wav",
            "--output",
            "out.wav",
        ],
        None,
    );
    ok(&o);
    let (_, got) = read16(&d.join("out.wav"));
    assert_eq!(got.len(), frames);
    assert!(got == want);
}

#[test]
fn input_for_a_pipeline_that_makes_its_own_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let m = write(
        d,
        "tone.yaml",
        "version: v1\nmetadata: { name: t }\nnodes:\n  - { id: tone, node_type: ToneGenerator }\n",
    );
    let lines = write(d, "in.jsonl", "1\n");
    let o = run(
        d,
        &[m.to_str().unwrap(), "--input", lines.to_str().unwrap()],
        None,
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(
            "is not used: the pipeline's only starting nodes are sources (`tone`), which make their own items"
        ),
        "{}",
        stderr(&o)
    );
    assert!(o.stdout.is_empty());
}
