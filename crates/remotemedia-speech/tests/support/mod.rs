//! Shared by the speech tests: the generated speech corpus, noise, frame metrics, and
//! whether the model (and the tools that make the corpus) are installed.
//!
//! When something a test needs is missing, the test prints why and returns, unless
//! `REMOTEMEDIA_REQUIRE_SPEECH=1` (set by `.ci/run`), in which case it fails.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};

use remotemedia_core::{AudioBuffer, Data, Node, NodeType};
use remotemedia_speech::silero::SileroModel;
use remotemedia_speech::vad::{VoiceActivity, VoiceActivityParams};

/// Rate of the corpus.
pub const RATE: u32 = 16_000;
/// Frame of the metrics: 32 ms.
pub const FRAME: usize = 512;

/// Either fails (when required) or says why the test does nothing.
pub fn missing(what: &str) {
    if std::env::var("REMOTEMEDIA_REQUIRE_SPEECH").as_deref() == Ok("1") {
        panic!("{what} (REMOTEMEDIA_REQUIRE_SPEECH=1)");
    }
    eprintln!("skipped: {what}");
}

/// The shared model, or `None` (after [`missing`]) when it is not installed.
pub fn model() -> Option<Arc<SileroModel>> {
    match SileroModel::shared() {
        Ok(m) => Some(m),
        Err(e) => {
            missing(&format!("the Silero VAD model is not available: {e}"));
            None
        }
    }
}

fn tool(name: &str) -> bool {
    Command::new(name)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Sentences of the corpus, each followed by the silence (seconds) after it.
const SENTENCES: [(&str, f64); 12] = [
    ("The quick brown fox jumps over the lazy dog.", 0.3),
    (
        "Please call Stella and ask her to bring these things with her from the store.",
        1.2,
    ),
    (
        "Six spoons of fresh snow peas, five thick slabs of blue cheese.",
        0.5,
    ),
    (
        "We also need a small plastic snake and a big toy frog for the kids.",
        2.0,
    ),
    ("She can scoop these things into three red bags.", 0.8),
    (
        "And we will go meet her Wednesday at the train station.",
        0.4,
    ),
    (
        "When the sunlight strikes raindrops in the air, they act as a prism.",
        1.5,
    ),
    (
        "The rainbow is a division of white light into many beautiful colors.",
        0.6,
    ),
    (
        "These take the shape of a long round arch, with its path high above.",
        1.0,
    ),
    (
        "Throughout the centuries people have explained the rainbow in various ways.",
        0.3,
    ),
    (
        "Some have accepted it as a miracle without physical explanation.",
        0.7,
    ),
    (
        "To the Hebrews it was a token that there would be no more universal floods.",
        0.5,
    ),
];

/// Leading silence of the corpus, seconds.
const LEAD_S: f64 = 0.5;

/// Reads a mono 16-bit or float WAV as f32.
pub fn read_wav(path: &Path) -> (Vec<f32>, u32) {
    let mut r = hound::WavReader::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let spec = r.spec();
    assert_eq!(spec.channels, 1, "{}", path.display());
    let samples = match spec.sample_format {
        hound::SampleFormat::Float => r.samples::<f32>().map(Result::unwrap).collect(),
        hound::SampleFormat::Int => {
            let scale = (1u64 << (spec.bits_per_sample - 1)) as f32;
            r.samples::<i32>()
                .map(|s| s.unwrap() as f32 / scale)
                .collect()
        }
    };
    (samples, spec.sample_rate)
}

/// Writes mono 16-bit PCM (what both sides of the agreement test read).
pub fn write_wav16(path: &Path, samples: &[f32], rate: u32) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for &s in samples {
        w.write_sample((s.clamp(-1.0, 1.0) * 32767.0).round() as i16)
            .unwrap();
    }
    w.finalize().unwrap();
}

/// The clean corpus at 16 kHz (about 45 s), made once per test process with
/// `espeak-ng` and `sox` in a temporary directory; `None` (after [`missing`]) when a
/// tool is missing. Each sentence is trimmed of espeak's own leading and trailing
/// silence, then followed by its silence.
pub fn corpus() -> Option<&'static [f32]> {
    static CORPUS: OnceLock<Option<Vec<f32>>> = OnceLock::new();
    CORPUS
        .get_or_init(|| {
            for t in ["espeak-ng", "sox"] {
                if !tool(t) {
                    missing(&format!(
                        "`{t}` is not installed (apt-get install espeak-ng sox)"
                    ));
                    return None;
                }
            }
            let dir = tempfile::tempdir().unwrap();
            let mut out = vec![0.0f32; (LEAD_S * f64::from(RATE)) as usize];
            for (k, (text, silence)) in SENTENCES.iter().enumerate() {
                let raw = dir.path().join(format!("s{k}.wav"));
                let wav = dir.path().join(format!("s{k}_16k.wav"));
                let ok = Command::new("espeak-ng")
                    .args(["-v", "en-us", "-s", "150", "-w"])
                    .arg(&raw)
                    .arg(text)
                    .status()
                    .unwrap()
                    .success();
                assert!(ok, "espeak-ng failed");
                let ok = Command::new("sox")
                    .arg(&raw)
                    .args(["-r", "16000", "-b", "16", "-c", "1"])
                    .arg(&wav)
                    .status()
                    .unwrap()
                    .success();
                assert!(ok, "sox failed");
                let (s, rate) = read_wav(&wav);
                assert_eq!(rate, RATE);
                let first = s.iter().position(|v| v.abs() > 1e-3).unwrap_or(0);
                let last = s.iter().rposition(|v| v.abs() > 1e-3).map_or(0, |i| i + 1);
                out.extend_from_slice(&s[first..last]);
                out.extend(std::iter::repeat_n(
                    0.0,
                    (silence * f64::from(RATE)) as usize,
                ));
            }
            Some(out)
        })
        .as_deref()
}

/// Ground truth per 32 ms frame, from the clean speech's energy envelope: a frame is
/// speech when its level is above -50 dBFS; gaps of non-speech shorter than 250 ms
/// (pauses between words) are filled.
pub fn truth(clean: &[f32]) -> Vec<bool> {
    let mut t: Vec<bool> = clean
        .chunks(FRAME)
        .map(|f| {
            let p = f.iter().map(|&s| f64::from(s) * f64::from(s)).sum::<f64>() / f.len() as f64;
            10.0 * p.max(1e-12).log10() > -50.0
        })
        .collect();
    let max_gap = (0.25 * f64::from(RATE) / FRAME as f64) as usize; // 7 frames
    let mut k = 0;
    while k < t.len() {
        if t[k] {
            k += 1;
            continue;
        }
        let end = (k..t.len()).find(|&j| t[j]).unwrap_or(t.len());
        if k > 0 && end < t.len() && end - k <= max_gap {
            t[k..end].fill(true);
        }
        k = end;
    }
    t
}

/// xorshift64* in [0, 1).
pub struct Rng(u64);

impl Rng {
    /// A generator with `seed`.
    pub fn new(seed: u64) -> Self {
        Rng(seed.max(1))
    }
    /// The next value in [0, 1).
    pub fn unit(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }
    /// A standard normal value (Box–Muller).
    pub fn normal(&mut self) -> f64 {
        let u = self.unit().max(1e-300);
        let v = self.unit();
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
}

/// Kind of noise.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Noise {
    /// Flat spectrum.
    White,
    /// 1/f spectrum (Paul Kellet's filter on white noise).
    Pink,
}

/// `n` samples of unit-variance noise.
pub fn noise(kind: Noise, n: usize, seed: u64) -> Vec<f64> {
    let mut rng = Rng::new(seed);
    let mut b = [0.0f64; 7];
    let mut v: Vec<f64> = (0..n)
        .map(|_| {
            let w = rng.normal();
            match kind {
                Noise::White => w,
                Noise::Pink => {
                    b[0] = 0.99886 * b[0] + w * 0.0555179;
                    b[1] = 0.99332 * b[1] + w * 0.0750759;
                    b[2] = 0.96900 * b[2] + w * 0.1538520;
                    b[3] = 0.86650 * b[3] + w * 0.3104856;
                    b[4] = 0.55000 * b[4] + w * 0.5329522;
                    b[5] = -0.7616 * b[5] - w * 0.0168980;
                    let p = b[0] + b[1] + b[2] + b[3] + b[4] + b[5] + b[6] + w * 0.5362;
                    b[6] = w * 0.115926;
                    p
                }
            }
        })
        .collect();
    let rms = (v.iter().map(|x| x * x).sum::<f64>() / n as f64).sqrt();
    v.iter_mut().for_each(|x| *x /= rms);
    v
}

/// `clean` plus noise at `snr_db` below the speech's power (measured over its speech
/// frames).
pub fn mix(clean: &[f32], truth: &[bool], kind: Noise, snr_db: f64, seed: u64) -> Vec<f32> {
    let (mut p, mut n) = (0.0f64, 0usize);
    for (f, &t) in clean.chunks(FRAME).zip(truth) {
        if t {
            p += f.iter().map(|&s| f64::from(s) * f64::from(s)).sum::<f64>();
            n += f.len();
        }
    }
    let speech_power = p / n.max(1) as f64;
    let gain = (speech_power / 10f64.powf(snr_db / 10.0)).sqrt();
    let z = noise(kind, clean.len(), seed);
    clean
        .iter()
        .zip(z)
        .map(|(&s, z)| (f64::from(s) + gain * z) as f32)
        .collect()
}

/// Runs a `VoiceActivity` built from `params` (YAML flow mapping) over `samples` (at
/// 16 kHz) in chunks of `chunk` samples and returns its outputs.
pub fn run_node(params: &str, samples: &[f32], chunk: usize, pts_us: i64) -> Vec<Data> {
    run_node_at(params, samples, RATE, chunk, pts_us)
}

/// [`run_node`] at `rate`.
pub fn run_node_at(
    params: &str,
    samples: &[f32],
    rate: u32,
    chunk: usize,
    pts_us: i64,
) -> Vec<Data> {
    let p: VoiceActivityParams = serde_yaml_ng::from_str(params).unwrap();
    let mut node = VoiceActivity::from_params(&p).unwrap_or_else(|e| panic!("{e}"));
    let mut out = Vec::new();
    let mut frames = 0u64;
    for c in samples.chunks(chunk) {
        let pts = pts_us + remotemedia_core::frames_to_us(frames, rate);
        frames += c.len() as u64;
        node.process(
            Data::from(AudioBuffer::new(c.to_vec(), rate, 1).with_pts(pts)),
            &mut out,
        )
        .unwrap_or_else(|e| panic!("{e}"));
    }
    node.finish(&mut out).unwrap();
    out
}

/// `samples` at 16 kHz resampled to `rate` by `sox`.
pub fn sox_resample(samples: &[f32], rate: u32) -> Vec<f32> {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.wav"), dir.path().join("b.wav"));
    write_wav16(&a, samples, RATE);
    let ok = Command::new("sox")
        .arg(&a)
        .args(["-r", &rate.to_string()])
        .arg(&b)
        .status()
        .unwrap()
        .success();
    assert!(ok, "sox failed");
    read_wav(&b).0
}

/// Utterances `(start_us, end_us)` from `events` output.
pub fn segments_of(events: &[Data]) -> Vec<(i64, i64)> {
    let mut segs = Vec::new();
    let mut open = None;
    for e in events {
        let m = e.as_map().expect("events are maps");
        let pts = match m.get("pts_us") {
            Some(Data::Int(v)) => *v,
            other => panic!("pts_us: {other:?}"),
        };
        match m.get("type").and_then(Data::as_str) {
            Some("speech_start") => {
                assert!(open.is_none(), "two starts in a row");
                open = Some(pts);
            }
            Some("speech_end") => {
                let s = open.take().expect("an end without a start");
                segs.push((s, pts));
            }
            other => panic!("event type {other:?}"),
        }
    }
    assert!(open.is_none(), "an utterance left open");
    segs
}

/// Per frame: speech when the frame's middle lies in an utterance.
pub fn frames_of(segs: &[(i64, i64)], n: usize) -> Vec<bool> {
    (0..n)
        .map(|k| {
            let mid = remotemedia_core::frames_to_us((k * FRAME + FRAME / 2) as u64, RATE);
            segs.iter().any(|&(s, e)| s <= mid && mid < e)
        })
        .collect()
}

/// Utterances `(start_us, end_us)` of a per-frame truth.
pub fn segments_of_frames(t: &[bool]) -> Vec<(i64, i64)> {
    let us = |k: usize| remotemedia_core::frames_to_us((k * FRAME) as u64, RATE);
    let mut segs = Vec::new();
    let mut k = 0;
    while k < t.len() {
        if t[k] {
            let e = (k..t.len()).find(|&j| !t[j]).unwrap_or(t.len());
            segs.push((us(k), us(e)));
            k = e;
        } else {
            k += 1;
        }
    }
    segs
}

/// Frame scores.
#[derive(Clone, Copy, Debug)]
pub struct Scores {
    /// Of the frames called speech, the share that is.
    pub precision: f64,
    /// Of the speech frames, the share called speech.
    pub recall: f64,
    /// Their harmonic mean.
    pub f1: f64,
    /// Mean distance (ms) of each true utterance's start and end to the first start and
    /// last end of the detected utterances overlapping it (a missed utterance counts
    /// its length).
    pub boundary_ms: f64,
}

/// Scores of `got` against `truth`.
pub fn score(
    truth: &[bool],
    got: &[bool],
    truth_segs: &[(i64, i64)],
    segs: &[(i64, i64)],
) -> Scores {
    let tp = truth.iter().zip(got).filter(|(t, g)| **t && **g).count() as f64;
    let fp = truth.iter().zip(got).filter(|(t, g)| !**t && **g).count() as f64;
    let fneg = truth.iter().zip(got).filter(|(t, g)| **t && !**g).count() as f64;
    let precision = if tp + fp > 0.0 { tp / (tp + fp) } else { 0.0 };
    let recall = if tp + fneg > 0.0 {
        tp / (tp + fneg)
    } else {
        0.0
    };
    let f1 = if precision + recall > 0.0 {
        2.0 * precision * recall / (precision + recall)
    } else {
        0.0
    };
    let mut err = 0.0;
    for &(ts, te) in truth_segs {
        // The detected utterances overlapping this one, taken together.
        let over: Vec<&(i64, i64)> = segs.iter().filter(|&&(s, e)| s < te && ts < e).collect();
        err += match (
            over.iter().map(|x| x.0).min(),
            over.iter().map(|x| x.1).max(),
        ) {
            (Some(s), Some(e)) => ((s - ts).abs() + (e - te).abs()) as f64 / 2000.0,
            _ => (te - ts) as f64 / 1000.0,
        };
    }
    Scores {
        precision,
        recall,
        f1,
        boundary_ms: err / truth_segs.len().max(1) as f64,
    }
}

/// The path of the Python agreement script.
pub fn reference_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../python/benchmarks/vad_reference.py")
}
