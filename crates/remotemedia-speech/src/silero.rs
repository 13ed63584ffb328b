//! The Silero VAD model, run through ONNX Runtime: one model per process, shared by
//! every stream; a stream keeps only its [`SileroState`].
//!
//! The calling convention is the one of the `silero-vad` package's ONNX wrapper: each
//! call takes `input` (`[batch, context + window]` f32: the last `context` samples of
//! the previous window, then `window` new samples), `state` (`[2, batch, 128]` f32,
//! the recurrent state, zeros at the start of a stream) and `sr` (an int64 scalar,
//! 8000 or 16000), and returns `output` (`[batch, 1]`, the speech probability of the
//! window) and `stateN` (the next state). At 16 kHz the window is 512 samples and the
//! context 64; at 8 kHz 256 and 32.
//!
//! Streams' windows can go through one call together (batch > 1, each row with its
//! own state): [`SileroModel::probs_batch`].
//!
//! Two runtimes compute it ([`Runtime`]): by default the network in Rust on the weights
//! read from the model file ([`crate::native`]), with ONNX Runtime as the other one
//! (the same results within float rounding; used when the file's weights are not laid
//! out as in Silero VAD v5, and on request).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, OnceLock};

use ort::environment::Environment;
use ort::session::Session;
use ort::value::TensorRef;

use crate::locate::{locate, INSTALL_HINT};
use crate::native::SileroNet;
use crate::{onnx, SpeechError};

/// Size of the recurrent state of one stream (`2 × 128` floats).
pub const STATE_LEN: usize = 2 * 128;

/// Window (new samples per call) at `rate`: 512 at 16 kHz, 256 at 8 kHz.
pub fn window(rate: u32) -> usize {
    if rate == 8_000 {
        256
    } else {
        512
    }
}

/// Context (samples of the previous window repeated at the start of the next) at `rate`:
/// 64 at 16 kHz, 32 at 8 kHz.
pub fn context(rate: u32) -> usize {
    if rate == 8_000 {
        32
    } else {
        64
    }
}

/// Rates the model supports.
pub const RATES: [u32; 2] = [8_000, 16_000];

/// What one stream keeps between windows.
#[derive(Clone, Debug, PartialEq)]
pub struct SileroState {
    rate: u32,
    state: Vec<f32>,
    context: Vec<f32>,
}

impl SileroState {
    /// The state at the start of a stream at `rate` (8000 or 16000).
    pub fn new(rate: u32) -> Self {
        Self {
            rate,
            state: vec![0.0; STATE_LEN],
            context: vec![0.0; context(rate)],
        }
    }

    /// The stream's rate.
    pub fn rate(&self) -> u32 {
        self.rate
    }

    /// Back to the start of a stream.
    pub fn reset(&mut self) {
        self.state.fill(0.0);
        self.context.fill(0.0);
    }
}

/// What computes the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Runtime {
    /// The network in Rust ([`crate::native`]) on the file's weights, in the calling
    /// thread.
    Native,
    /// ONNX Runtime sessions on the file.
    OnnxRuntime,
}

/// The Silero VAD model of this process: its network in Rust on the weights of the
/// file, and (when asked for, or when the file's weights are not laid out as Silero VAD
/// v5's) ONNX Runtime sessions on the file, lent to one caller at a time: at most as
/// many sessions as cores (each call uses one thread: 1 intra-op and 1 inter-op
/// thread), created when callers are waiting, whatever the number of streams.
pub struct SileroModel {
    /// The 16 kHz and the 8 kHz branch in Rust, or why the file's weights are not
    /// Silero VAD v5's.
    native: Result<[SileroNet; 2], String>,
    model_bytes: Vec<u8>,
    model_path: PathBuf,
    /// The ONNX Runtime library, or why there is none.
    ort_lib: Result<PathBuf, String>,
    origin: String,
    /// ONNX Runtime, started by its first use.
    ort: OnceLock<Result<Ort, SpeechError>>,
    max_sessions: usize,
}

/// ONNX Runtime's part of the model: its environment and the idle sessions.
struct Ort {
    env: &'static Environment,
    idle: Mutex<Pool>,
    returned: Condvar,
}

struct Pool {
    idle: Vec<Session>,
    created: usize,
}

impl std::fmt::Debug for SileroModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SileroModel")
            .field("model_path", &self.model_path)
            .field("origin", &self.origin)
            .field("runtime", &self.runtime())
            .finish()
    }
}

/// The process's ONNX Runtime environment (there can be only one), loaded from
/// `ort_lib` by the first call.
fn environment(ort_lib: &Path) -> Result<&'static Environment, SpeechError> {
    static ENV: OnceLock<Result<Environment, SpeechError>> = OnceLock::new();
    ENV.get_or_init(|| {
        ort::init_from(ort_lib)
            .map_err(|e| {
                ort_err(
                    ort_lib,
                    "cannot load ONNX Runtime (reinstall it with \
                     `pip install --force-reinstall onnxruntime`)",
                    e,
                )
            })?
            .with_name("remotemedia-speech")
            .build()
            .map_err(|e| ort_err(ort_lib, "cannot start ONNX Runtime", e))
    })
    .as_ref()
    .map_err(Clone::clone)
}

fn ort_err(path: &Path, what: &str, e: impl std::fmt::Display) -> SpeechError {
    SpeechError::Load {
        path: path.to_path_buf(),
        detail: format!("{what}: {e}"),
    }
}

impl SileroModel {
    /// The model of this process, loaded on first use from where [`locate`] finds it.
    pub fn shared() -> Result<Arc<SileroModel>, SpeechError> {
        static MODEL: OnceLock<Result<Arc<SileroModel>, SpeechError>> = OnceLock::new();
        MODEL
            .get_or_init(|| {
                let found = locate()?;
                SileroModel::load(found.ort_lib.as_deref(), &found.model, &found.origin)
                    .map(Arc::new)
            })
            .clone()
    }

    /// Loads the model from `model`: its network in Rust, with ONNX Runtime from
    /// `ort_lib` (`None`: not installed) started when first needed. When the file's
    /// weights are not Silero VAD v5's, ONNX Runtime must run it: it starts now and one
    /// session is built, so that a corrupt file is an error here. `origin` says where
    /// the files came from. The runtime loads once per process: a later call with
    /// another library uses the first one. Each call loads the weights again:
    /// [`SileroModel::shared`] is the model to use.
    pub fn load(
        ort_lib: Option<&Path>,
        model: &Path,
        origin: &str,
    ) -> Result<SileroModel, SpeechError> {
        let ort_lib = match ort_lib {
            None => Err(format!("ONNX Runtime is not installed; {INSTALL_HINT}")),
            Some(lib) if !lib.is_file() => Err(SpeechError::Load {
                path: lib.to_path_buf(),
                detail: format!("the ONNX Runtime library does not exist; {INSTALL_HINT}"),
            }
            .to_string()),
            Some(lib) => Ok(lib.to_path_buf()),
        };
        let model_bytes = std::fs::read(model).map_err(|e| SpeechError::Load {
            path: model.to_path_buf(),
            detail: format!("cannot read the Silero VAD model ({e}); {INSTALL_HINT}"),
        })?;
        let native = onnx::float_tensors(&model_bytes).and_then(|t| {
            Ok([
                SileroNet::from_tensors(&t, 256)?,
                SileroNet::from_tensors(&t, 128)?,
            ])
        });
        let this = SileroModel {
            native,
            model_bytes,
            model_path: model.to_path_buf(),
            ort_lib,
            origin: origin.to_string(),
            ort: OnceLock::new(),
            max_sessions: std::thread::available_parallelism().map_or(1, |n| n.get()),
        };
        if let Err(why) = &this.native {
            this.ort().map_err(|e| match e {
                // Neither runtime can run the file: say why for both.
                SpeechError::NotFound { detail, .. } => SpeechError::Load {
                    path: model.to_path_buf(),
                    detail: format!(
                        "not a Silero VAD v5 model for the Rust runtime ({why}), and {detail}"
                    ),
                },
                e => e,
            })?;
        }
        Ok(this)
    }

    /// ONNX Runtime with one session checked, started by the first call.
    fn ort(&self) -> Result<&Ort, SpeechError> {
        self.ort
            .get_or_init(|| {
                let lib = self.ort_lib.as_ref().map_err(|why| SpeechError::NotFound {
                    what: "ONNX Runtime",
                    detail: why.clone(),
                })?;
                let ort = Ort {
                    env: environment(lib)?,
                    idle: Mutex::new(Pool {
                        idle: Vec::new(),
                        created: 0,
                    }),
                    returned: Condvar::new(),
                };
                let first = self.new_session(ort.env)?;
                self.check_signature(&first)?;
                let mut pool = ort.pool();
                pool.idle.push(first);
                pool.created = 1;
                drop(pool);
                Ok(ort)
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    /// Where the model file is.
    pub fn model_path(&self) -> &Path {
        &self.model_path
    }

    /// Where the model and the runtime came from, in words.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// What computes [`SileroModel::prob`] and [`SileroModel::probs_batch`]: the Rust
    /// network when the file's weights are Silero VAD v5's, else ONNX Runtime.
    pub fn runtime(&self) -> Runtime {
        if self.native.is_ok() {
            Runtime::Native
        } else {
            Runtime::OnnxRuntime
        }
    }

    /// Why the Rust network is not available for this file (`None` when it is).
    pub fn native_unavailable(&self) -> Option<&str> {
        self.native.as_ref().err().map(String::as_str)
    }

    /// Whether ONNX Runtime can run the model (starting it if it has not started): the
    /// error says why not.
    pub fn check_onnxruntime(&self) -> Result<(), SpeechError> {
        self.ort().map(|_| ())
    }

    /// ONNX Runtime sessions built so far (at most one per core; none before its
    /// first use).
    pub fn sessions(&self) -> usize {
        match self.ort.get() {
            Some(Ok(o)) => o.pool().created,
            _ => 0,
        }
    }

    fn new_session(&self, env: &'static Environment) -> Result<Session, SpeechError> {
        let path = &self.model_path;
        let builder = Session::builder(env).map_err(|e| ort_err(path, "session", e))?;
        builder
            .with_intra_threads(1)
            .map_err(|e| ort_err(path, "session", e))?
            .with_inter_threads(1)
            .map_err(|e| ort_err(path, "session", e))?
            .commit_from_memory(&self.model_bytes)
            .map_err(|e| {
                ort_err(
                    path,
                    "not a valid Silero VAD model (reinstall it with `pip install --force-reinstall silero-vad`)",
                    e,
                )
            })
    }

    fn check_signature(&self, s: &Session) -> Result<(), SpeechError> {
        let names =
            |o: &[ort::value::Outlet]| o.iter().map(|i| i.name().to_string()).collect::<Vec<_>>();
        let (inputs, outputs) = (names(s.inputs()), names(s.outputs()));
        if inputs != ["input", "state", "sr"] || outputs != ["output", "stateN"] {
            return Err(SpeechError::Load {
                path: self.model_path.clone(),
                detail: format!(
                    "not a Silero VAD v5 model: inputs {inputs:?}, outputs {outputs:?} \
                     (expected [\"input\", \"state\", \"sr\"] and [\"output\", \"stateN\"])"
                ),
            });
        }
        Ok(())
    }

    /// Runs `f` with an ONNX Runtime session of the pool (building one if every
    /// session is busy and fewer than the cap exist, else waiting for one).
    fn with_session<R>(
        &self,
        f: impl FnOnce(&mut Session) -> Result<R, SpeechError>,
    ) -> Result<R, SpeechError> {
        let ort = self.ort()?;
        let mut session = {
            let mut pool = ort.pool();
            loop {
                if let Some(s) = pool.idle.pop() {
                    break s;
                }
                if pool.created < self.max_sessions {
                    pool.created += 1;
                    drop(pool);
                    match self.new_session(ort.env) {
                        Ok(s) => break s,
                        Err(e) => {
                            ort.pool().created -= 1;
                            return Err(e);
                        }
                    }
                }
                pool = ort.returned.wait(pool).unwrap_or_else(|e| e.into_inner());
            }
        };
        let r = f(&mut session);
        ort.pool().idle.push(session);
        ort.returned.notify_one();
        r
    }

    /// The speech probability of one window (`window(rate)` samples) of a stream,
    /// advancing its state.
    pub fn prob(&self, state: &mut SileroState, samples: &[f32]) -> Result<f32, SpeechError> {
        self.prob_on(self.runtime(), state, samples)
    }

    /// [`SileroModel::prob`] computed by `runtime`.
    pub fn prob_on(
        &self,
        runtime: Runtime,
        state: &mut SileroState,
        samples: &[f32],
    ) -> Result<f32, SpeechError> {
        let mut out = [0.0f32];
        self.probs_batch_on(runtime, &mut [state], &[samples], &mut out)?;
        Ok(out[0])
    }

    /// The speech probabilities of one window of each of several streams (all at one
    /// rate) in one model call, advancing each stream's state; `probs[i]` is stream
    /// `i`'s. The same as calling [`SileroModel::prob`] per stream.
    pub fn probs_batch(
        &self,
        states: &mut [&mut SileroState],
        windows: &[&[f32]],
        probs: &mut [f32],
    ) -> Result<(), SpeechError> {
        self.probs_batch_on(self.runtime(), states, windows, probs)
    }

    /// [`SileroModel::probs_batch`] computed by `runtime` (the Rust network is an error
    /// when [`SileroModel::native_unavailable`] says why).
    pub fn probs_batch_on(
        &self,
        runtime: Runtime,
        states: &mut [&mut SileroState],
        windows: &[&[f32]],
        probs: &mut [f32],
    ) -> Result<(), SpeechError> {
        let b = states.len();
        if b == 0 {
            return Ok(());
        }
        let rate = states[0].rate;
        let (win, ctx) = (window(rate), context(rate));
        if windows.len() != b
            || probs.len() != b
            || states.iter().any(|s| s.rate != rate)
            || windows.iter().any(|w| w.len() != win)
        {
            return Err(SpeechError::Run(format!(
                "each call takes one window of {win} samples per stream, all at {rate} Hz"
            )));
        }
        match &self.native {
            Ok(nets) if runtime == Runtime::Native => {
                let net = &nets[usize::from(rate == 8_000)];
                let mut streams: Vec<(&[f32], &mut [f32])> = states
                    .iter_mut()
                    .map(|s| {
                        let s = &mut **s;
                        (&s.context[..], &mut s.state[..])
                    })
                    .collect();
                net.run(&mut streams, windows, probs);
            }
            Err(why) if runtime == Runtime::Native => {
                return Err(SpeechError::Run(format!(
                    "the Rust network cannot run {}: {why}",
                    self.model_path.display()
                )));
            }
            _ => self.probs_onnxruntime(states, windows, probs)?,
        }
        for (s, w) in states.iter_mut().zip(windows) {
            s.context.copy_from_slice(&w[win - ctx..]);
        }
        Ok(())
    }

    /// [`SileroModel::probs_batch_on`] by ONNX Runtime, the shapes checked; the
    /// streams' contexts are left to the caller to advance.
    fn probs_onnxruntime(
        &self,
        states: &mut [&mut SileroState],
        windows: &[&[f32]],
        probs: &mut [f32],
    ) -> Result<(), SpeechError> {
        let b = states.len();
        let rate = states[0].rate;
        let (win, ctx) = (window(rate), context(rate));
        let mut input = Vec::with_capacity(b * (ctx + win));
        let mut state = vec![0.0f32; 2 * b * 128];
        for (i, (s, w)) in states.iter().zip(windows).enumerate() {
            input.extend_from_slice(&s.context);
            input.extend_from_slice(w);
            // state is [2, batch, 128]: layer l of stream i at (l * b + i) * 128.
            for l in 0..2 {
                state[(l * b + i) * 128..(l * b + i + 1) * 128]
                    .copy_from_slice(&s.state[l * 128..(l + 1) * 128]);
            }
        }
        let sr = [i64::from(rate)];
        let run = |e: ort::Error| SpeechError::Run(e.to_string());
        self.with_session(|session| {
            let outputs = session
                .run(ort::inputs![
                    "input" => TensorRef::from_array_view(([b, ctx + win], &input[..])).map_err(run)?,
                    "state" => TensorRef::from_array_view(([2, b, 128], &state[..])).map_err(run)?,
                    "sr" => TensorRef::from_array_view(((), &sr[..])).map_err(run)?,
                ])
                .map_err(run)?;
            let (_, p) = outputs["output"].try_extract_tensor::<f32>().map_err(run)?;
            let (_, next) = outputs["stateN"].try_extract_tensor::<f32>().map_err(run)?;
            if p.len() != b || next.len() != 2 * b * 128 {
                return Err(SpeechError::Run(format!(
                    "the model returned {} probabilities and {} state values for {b} streams",
                    p.len(),
                    next.len()
                )));
            }
            probs.copy_from_slice(p);
            for (i, s) in states.iter_mut().enumerate() {
                for l in 0..2 {
                    s.state[l * 128..(l + 1) * 128]
                        .copy_from_slice(&next[(l * b + i) * 128..(l * b + i + 1) * 128]);
                }
            }
            Ok(())
        })
    }
}

impl Ort {
    fn pool(&self) -> std::sync::MutexGuard<'_, Pool> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }
}
