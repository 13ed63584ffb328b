//! `VoiceActivity` (aliases `VADNode`, `SileroVADNode` with its own parameter names):
//! where someone is speaking, as events, one audio item per utterance, or the audio
//! itself gated to speech.

use std::sync::Arc;

use remotemedia_audio::input;
use remotemedia_audio::stream::{ms_to_frames, StreamClock};
use remotemedia_core::registry::ParamIssue;
use remotemedia_core::{frames_to_us, AudioBuffer, Data, DataMap, Node, NodeError, NodeType};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::energy::EnergyState;
use crate::segmenter::{Event, Rules, Segmenter};
use crate::silero::{self, Runtime, SileroModel, SileroState};
use crate::SpeechError;

/// The detector.
#[derive(Clone, Copy, Debug, Default, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Engine {
    /// The Silero VAD v5 neural model (MIT licence) of the `silero-vad` PyPI package
    /// (`pip install silero-vad`; `REMOTEMEDIA_VAD_MODEL` names the file instead),
    /// computed in Rust on the file's weights. Mono at 8000 or 16000 Hz.
    #[default]
    Silero,
    /// The same model run by the ONNX Runtime library of the `onnxruntime` PyPI package
    /// (`pip install onnxruntime`; `REMOTEMEDIA_ORT_LIB` names the library instead):
    /// the same probabilities within float rounding, slower.
    #[serde(rename = "silero_onnxruntime")]
    SileroOnnxRuntime,
    /// Frame level against the stream's noise floor: no model, no library. Mono at
    /// any rate, 32 ms frames.
    Energy,
}

/// What the node emits.
#[derive(Clone, Copy, Debug, Default, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Output {
    /// `{"type": "speech_start", "pts_us", "decided_at_us"}` and `{"type":
    /// "speech_end", "pts_us", "duration_ms", "decided_at_us"}` maps: `pts_us` where
    /// the speech starts or ends, `decided_at_us` the stream time of the input that
    /// decided it (`min_speech_ms` / `min_silence_ms` later).
    #[default]
    Events,
    /// One audio item per utterance (padding included), stamped with the `pts_us` of
    /// its first frame.
    Segments,
    /// The audio itself, only while speech is on (plus padding).
    Gate,
}

/// Params of `VoiceActivity`.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VoiceActivityParams {
    /// `silero` (the neural model), `silero_onnxruntime` (the same model on ONNX
    /// Runtime) or `energy` (a dependency-free fallback).
    #[serde(default)]
    pub engine: Engine,
    /// A frame with a speech probability at or above this is speech.
    #[serde(default = "default_threshold")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub threshold: f64,
    /// A frame below this probability is silence (default: `threshold` − 0.15, at
    /// least 0.01); between the two a frame changes nothing.
    #[serde(default)]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub neg_threshold: Option<f64>,
    /// Speech must last this long (ms) before an utterance starts.
    #[serde(default = "default_min_speech")]
    #[schemars(range(min = 0.0))]
    pub min_speech_ms: f64,
    /// Silence must last this long (ms) before an utterance ends.
    #[serde(default = "default_min_silence")]
    #[schemars(range(min = 0.0))]
    pub min_silence_ms: f64,
    /// Audio (ms) added before and after each utterance.
    #[serde(default = "default_pad")]
    #[schemars(range(min = 0.0))]
    pub speech_pad_ms: f64,
    /// `events`, `segments` or `gate`.
    #[serde(default)]
    pub output: Output,
}

fn default_threshold() -> f64 {
    0.5
}
fn default_min_speech() -> f64 {
    250.0
}
fn default_min_silence() -> f64 {
    100.0
}
fn default_pad() -> f64 {
    30.0
}

/// `threshold` − 0.15, at least 0.01 (as the `silero-vad` package does).
fn default_neg(threshold: f64) -> f64 {
    (threshold - 0.15).max(0.01)
}

fn check_thresholds(written: &Map<String, Value>) -> Vec<ParamIssue> {
    let threshold = written
        .get("threshold")
        .and_then(Value::as_f64)
        .unwrap_or(default_threshold());
    match written.get("neg_threshold").and_then(Value::as_f64) {
        Some(neg) if neg > threshold => vec![ParamIssue::new(
            "neg_threshold",
            format!("`neg_threshold` ({neg}) must not be above `threshold` ({threshold})"),
        )],
        _ => Vec::new(),
    }
}

/// With the `silero` engine (written or by default), whether the model and the
/// runtime load: a missing or corrupt file is then a load-time error of the manifest,
/// naming the path and how to install it. They load once per process (the result is
/// kept, and the nodes built later share the same model); `energy` needs neither.
fn check_model(written: &Map<String, Value>) -> Vec<ParamIssue> {
    // An engine that does not parse is reported by the params' own check.
    let engine = match written.get("engine") {
        None => Engine::default(),
        Some(v) => match Engine::deserialize(v) {
            Ok(e) => e,
            Err(_) => return Vec::new(),
        },
    };
    match Detector::new(engine) {
        Ok(_) => Vec::new(),
        Err(e) => vec![ParamIssue::new(
            "engine",
            format!("{e}; or use `engine: energy`, which needs no model"),
        )],
    }
}

/// The node's engine: the shared model and what computes it, or none.
enum Detector {
    Silero(Arc<SileroModel>, Runtime),
    Energy,
}

impl Detector {
    /// The detector of `engine`, loading the shared model (and ONNX Runtime when the
    /// engine asks for it).
    fn new(engine: Engine) -> Result<Self, SpeechError> {
        Ok(match engine {
            Engine::Silero => {
                let model = SileroModel::shared()?;
                let runtime = model.runtime();
                Detector::Silero(model, runtime)
            }
            Engine::SileroOnnxRuntime => {
                let model = SileroModel::shared()?;
                model.check_onnxruntime()?;
                Detector::Silero(model, Runtime::OnnxRuntime)
            }
            Engine::Energy => Detector::Energy,
        })
    }
}

/// The engine of one stream, with what it keeps.
enum Scorer {
    Silero(Arc<SileroModel>, Runtime, SileroState),
    Energy(EnergyState),
}

/// Where someone is speaking: re-frames the input to the engine's frames, scores each
/// frame, and turns the scores into utterances (see [`crate::segmenter`]).
pub struct VoiceActivity {
    detector: Detector,
    output: Output,
    threshold: f32,
    neg_threshold: f32,
    min_speech_ms: f64,
    min_silence_ms: f64,
    pad_ms: f64,
    /// The rate the input must have (`SileroVADNode`'s `sampling_rate`).
    required_rate: Option<u32>,
    /// Set by the first audio.
    stream: Option<Stream>,
}

/// One stream's state, from its first audio on.
struct Stream {
    rate: u32,
    /// Samples per engine frame.
    frame: usize,
    scorer: Scorer,
    /// The last, partial frame, padded.
    window: Vec<f32>,
    origin_us: i64,
    segmenter: Segmenter,
    /// Samples `[buf_start, buf_start + buf.len())`: those an utterance may still
    /// include, then those not yet scored.
    buf: Vec<f32>,
    buf_start: u64,
    /// Stamps output audio; its position is the next sample to emit (gate, segments).
    clock: StreamClock,
}

impl std::fmt::Debug for VoiceActivity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VoiceActivity")
            .field("output", &self.output)
            .field("threshold", &self.threshold)
            .finish()
    }
}

impl VoiceActivity {
    fn new(p: &VoiceActivityParams, required_rate: Option<u32>) -> Result<Self, NodeError> {
        Ok(Self {
            detector: Detector::new(p.engine)?,
            output: p.output,
            threshold: p.threshold as f32,
            neg_threshold: p.neg_threshold.unwrap_or(default_neg(p.threshold)) as f32,
            min_speech_ms: p.min_speech_ms,
            min_silence_ms: p.min_silence_ms,
            pad_ms: p.speech_pad_ms,
            required_rate,
            stream: None,
        })
    }

    /// Checks the first buffer and sets the stream up for its format.
    fn start(&mut self, buf: &AudioBuffer) -> Result<(), NodeError> {
        input::require_channels(buf, 1)?;
        let rate = buf.sample_rate;
        if let Some(want) = self.required_rate {
            input::require_rate(buf, want)?;
        }
        let (frame, scorer) = match &self.detector {
            Detector::Silero(model, runtime) => {
                if !silero::RATES.contains(&rate) {
                    return Err(NodeError::invalid_input(format!(
                        "expected audio at 8000 or 16000 Hz (what the Silero model takes), got {rate} Hz: \
                         put AudioResample (target_rate: 16000) before this node"
                    )));
                }
                (
                    silero::window(rate),
                    Scorer::Silero(Arc::clone(model), *runtime, SileroState::new(rate)),
                )
            }
            Detector::Energy => {
                if rate == 0 {
                    return Err(NodeError::invalid_input(
                        "expected audio with a sample rate, got 0 Hz",
                    ));
                }
                let frame = (ms_to_frames(32.0, rate) as usize).max(1);
                (frame, Scorer::Energy(EnergyState::new(rate, frame)))
            }
        };
        let rules = Rules {
            threshold: self.threshold,
            neg_threshold: self.neg_threshold,
            min_speech: ms_to_frames(self.min_speech_ms, rate),
            min_silence: ms_to_frames(self.min_silence_ms, rate),
            pad: ms_to_frames(self.pad_ms, rate),
        };
        let mut clock = StreamClock::new();
        clock.start_at(buf);
        self.stream = Some(Stream {
            rate,
            frame,
            scorer,
            window: vec![0.0; frame],
            origin_us: buf.pts_us,
            segmenter: Segmenter::new(rules),
            buf: Vec::new(),
            buf_start: 0,
            clock,
        });
        Ok(())
    }

    /// Scores and decides every whole frame in the buffer (and, at the end of the
    /// stream, the last partial one, padded with zeros as the reference does).
    fn run_frames(&mut self, last: bool, out: &mut Vec<Data>) -> Result<(), NodeError> {
        let Some(st) = self.stream.as_mut() else {
            return Ok(());
        };
        loop {
            let at = (st.segmenter.pos() - st.buf_start) as usize;
            let avail = st.buf.len() - at;
            if avail == 0 || (avail < st.frame && !last) {
                break;
            }
            let n = avail.min(st.frame);
            let frame: &[f32] = if n == st.frame {
                &st.buf[at..at + n]
            } else {
                // The last, partial frame: zeros after it.
                st.window[..n].copy_from_slice(&st.buf[at..at + n]);
                st.window[n..].fill(0.0);
                &st.window
            };
            let prob = match &mut st.scorer {
                Scorer::Silero(model, runtime, state) => model.prob_on(*runtime, state, frame)?,
                Scorer::Energy(state) => state.score(&frame[..n]),
            };
            let event = st.segmenter.push(prob, n as u64);
            emit(st, self.output, event, out);
        }
        if self.output == Output::Gate {
            if let Some(until) = st.segmenter.speech_until() {
                gate_to(st, until, out);
            }
        }
        Ok(())
    }
}

/// The output of one decision, and the audio no longer needed dropped.
fn emit(st: &mut Stream, output: Output, event: Option<Event>, out: &mut Vec<Data>) {
    let time = |frames: u64| st.origin_us + frames_to_us(frames, st.rate);
    // The input that decided the event: everything scored so far.
    let decided = time(st.segmenter.pos());
    match (output, event) {
        (Output::Events, Some(Event::Start(at))) => {
            let mut m = DataMap::new();
            m.insert("type".into(), Data::from("speech_start"));
            m.insert("pts_us".into(), Data::Int(time(at)));
            m.insert("decided_at_us".into(), Data::Int(decided));
            out.push(Data::map(m));
        }
        (Output::Events, Some(Event::End { start, end })) => {
            let mut m = DataMap::new();
            m.insert("type".into(), Data::from("speech_end"));
            m.insert("pts_us".into(), Data::Int(time(end)));
            m.insert(
                "duration_ms".into(),
                Data::Float(frames_to_us(end - start, st.rate) as f64 / 1000.0),
            );
            m.insert("decided_at_us".into(), Data::Int(decided));
            out.push(Data::map(m));
        }
        (Output::Segments, Some(Event::End { start, end })) => {
            let audio = slice(st, start, end);
            push_audio(st, start, audio, out);
        }
        // The gate's audio goes out once per input (at the end of `run_frames`), and at each end.
        (Output::Gate, Some(Event::Start(at))) => st.clock.skip(at - st.clock.frames()),
        (Output::Gate, Some(Event::End { end, .. })) => gate_to(st, end, out),
        _ => {}
    }
    // Drop what no output needs any more: events need no audio; segments what an
    // open or future utterance may include; the gate that, less what it emitted.
    let keep = match output {
        Output::Events => st.segmenter.pos(),
        Output::Segments => st.segmenter.keep_from(),
        Output::Gate if st.segmenter.in_speech() => st.segmenter.keep_from().max(st.clock.frames()),
        Output::Gate => st.segmenter.keep_from(),
    };
    let keep = keep.min(st.segmenter.pos());
    if keep > st.buf_start {
        st.buf.drain(..(keep - st.buf_start) as usize);
        st.buf_start = keep;
    }
}

/// Gate: emits the utterance's audio not emitted yet, up to `to`.
fn gate_to(st: &mut Stream, to: u64, out: &mut Vec<Data>) {
    let from = st.clock.frames();
    if to > from {
        let audio = slice(st, from, to);
        push_audio(st, from, audio, out);
    }
}

/// Samples `[from, to)` of the stream (all still in the buffer).
fn slice(st: &Stream, from: u64, to: u64) -> Vec<f32> {
    let a = (from - st.buf_start) as usize;
    let b = (to - st.buf_start) as usize;
    st.buf[a..b].to_vec()
}

/// `samples` starting at stream position `at`, stamped by the output clock.
fn push_audio(st: &mut Stream, at: u64, samples: Vec<f32>, out: &mut Vec<Data>) {
    st.clock.skip(at - st.clock.frames());
    out.push(Data::from(st.clock.stamp(samples, st.rate, 1)));
}

impl Node for VoiceActivity {
    fn process(&mut self, item: Data, out: &mut Vec<Data>) -> Result<(), NodeError> {
        let buf = input::audio(&item)?;
        match &self.stream {
            None => self.start(buf)?,
            Some(st) => input::require_same_format(buf, st.rate, 1)?,
        }
        if let Some(st) = self.stream.as_mut() {
            st.buf.extend_from_slice(&buf.samples);
        }
        self.run_frames(false, out)
    }

    fn finish(&mut self, out: &mut Vec<Data>) -> Result<(), NodeError> {
        self.run_frames(true, out)?;
        if let Some(st) = self.stream.as_mut() {
            let event = st.segmenter.finish();
            emit(st, self.output, event, out);
        }
        Ok(())
    }
}

const DESCRIPTION: &str = "Voice activity detection: where someone is speaking, as \
     `speech_start` / `speech_end` events, one audio item per utterance, or the audio gated \
     to speech. Engine `silero` computes the Silero VAD v5 model (MIT licence) shipped in the \
     `silero-vad` PyPI package, in Rust on the weights of its `silero_vad.onnx`; engine \
     `silero_onnxruntime` runs the same file on the ONNX Runtime library of the `onnxruntime` \
     PyPI package (the same probabilities within float rounding). The files are found in the \
     site-packages of `python3` (or of `REMOTEMEDIA_VAD_PYTHON`, `REMOTEMEDIA_PYTHON` or the \
     active virtualenv) or named by `REMOTEMEDIA_VAD_MODEL` / `REMOTEMEDIA_ORT_LIB`; nothing \
     is downloaded (install: `pip install onnxruntime silero-vad`). The model loads once per \
     process and is shared by every stream; each stream keeps only its recurrent state. \
     Engine `energy` needs neither.";

const INPUT: &str = "mono audio, any chunk size (silero: 8000 or 16000 Hz; energy: any rate)";
const OUTPUT: &str = "events: maps `{type: speech_start, pts_us, decided_at_us}` / `{type: \
     speech_end, pts_us, duration_ms, decided_at_us}`; segments: one audio item per utterance; gate: the audio while speech is on";

impl NodeType for VoiceActivity {
    const NAME: &'static str = "VoiceActivity";
    const ALIASES: &'static [&'static str] = &["VADNode"];
    const DESCRIPTION: &'static str = DESCRIPTION;
    const INPUT: &'static str = INPUT;
    const OUTPUT: &'static str = OUTPUT;
    type Params = VoiceActivityParams;

    fn check(written: &Map<String, Value>) -> Vec<ParamIssue> {
        let mut issues = check_thresholds(written);
        issues.extend(check_model(written));
        issues
    }

    fn from_params(p: &VoiceActivityParams) -> Result<Self, NodeError> {
        VoiceActivity::new(p, None)
    }
}

/// Params of `SileroVADNode`: those of `VoiceActivity`, plus the names other
/// remotemedia pipelines use for them.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SileroVadParams {
    /// `silero` (the neural model), `silero_onnxruntime` (the same model on ONNX
    /// Runtime) or `energy` (a dependency-free fallback).
    #[serde(default)]
    pub engine: Engine,
    /// The rate the input must have, 8000 or 16000 Hz (default: either).
    #[serde(default)]
    pub sampling_rate: Option<u32>,
    /// A frame with a speech probability at or above this is speech.
    #[serde(default = "default_threshold")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub threshold: f64,
    /// A frame below this probability is silence (default: `threshold` − 0.15, at
    /// least 0.01).
    #[serde(default)]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub neg_threshold: Option<f64>,
    /// Speech must last this long (ms) before an utterance starts (default 250).
    #[serde(default)]
    #[schemars(range(min = 0.0))]
    pub min_speech_duration_ms: Option<f64>,
    /// The same as `min_speech_duration_ms`.
    #[serde(default)]
    #[schemars(range(min = 0.0))]
    pub min_speech_ms: Option<f64>,
    /// Silence must last this long (ms) before an utterance ends (default 100).
    #[serde(default)]
    #[schemars(range(min = 0.0))]
    pub min_silence_duration_ms: Option<f64>,
    /// The same as `min_silence_duration_ms`.
    #[serde(default)]
    #[schemars(range(min = 0.0))]
    pub min_silence_ms: Option<f64>,
    /// Audio (ms) added before and after each utterance.
    #[serde(default = "default_pad")]
    #[schemars(range(min = 0.0))]
    pub speech_pad_ms: f64,
    /// `events`, `segments` or `gate`.
    #[serde(default)]
    pub output: Output,
}

/// `VoiceActivity` under the name and parameter names other remotemedia pipelines use.
#[derive(Debug)]
pub struct SileroVad(VoiceActivity);

impl Node for SileroVad {
    fn process(&mut self, item: Data, out: &mut Vec<Data>) -> Result<(), NodeError> {
        self.0.process(item, out)
    }

    fn finish(&mut self, out: &mut Vec<Data>) -> Result<(), NodeError> {
        self.0.finish(out)
    }
}

impl NodeType for SileroVad {
    const NAME: &'static str = "SileroVADNode";
    const DESCRIPTION: &'static str = DESCRIPTION;
    const INPUT: &'static str = INPUT;
    const OUTPUT: &'static str = OUTPUT;
    type Params = SileroVadParams;

    fn check(written: &Map<String, Value>) -> Vec<ParamIssue> {
        let mut issues = check_thresholds(written);
        for (a, b) in [
            ("min_speech_duration_ms", "min_speech_ms"),
            ("min_silence_duration_ms", "min_silence_ms"),
        ] {
            if written.contains_key(a) && written.contains_key(b) {
                issues.push(ParamIssue::new(
                    b,
                    format!("`{a}` and `{b}` are the same parameter: give one"),
                ));
            }
        }
        if let Some(rate) = written.get("sampling_rate").and_then(Value::as_u64) {
            if rate != 8_000 && rate != 16_000 {
                issues.push(ParamIssue::new(
                    "sampling_rate",
                    format!("`sampling_rate` must be 8000 or 16000, found {rate}"),
                ));
            }
        }
        issues.extend(check_model(written));
        issues
    }

    fn from_params(p: &SileroVadParams) -> Result<Self, NodeError> {
        let params = VoiceActivityParams {
            engine: p.engine,
            threshold: p.threshold,
            neg_threshold: p.neg_threshold,
            min_speech_ms: p
                .min_speech_duration_ms
                .or(p.min_speech_ms)
                .unwrap_or(default_min_speech()),
            min_silence_ms: p
                .min_silence_duration_ms
                .or(p.min_silence_ms)
                .unwrap_or(default_min_silence()),
            speech_pad_ms: p.speech_pad_ms,
            output: p.output,
        };
        VoiceActivity::new(&params, p.sampling_rate).map(SileroVad)
    }
}
