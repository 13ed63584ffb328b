//! Speech for remotemedia: voice activity detection with the Silero VAD neural model
//! (or a dependency-free energy detector), as the `VoiceActivity` node.
//!
//! The model is never downloaded at run time: it comes with the `silero-vad` PyPI
//! package, and is computed in Rust on the weights of its file (`native`, reading them
//! with `onnx`) or run on the ONNX Runtime library of the `onnxruntime` PyPI package
//! (`pip install onnxruntime silero-vad`; see [`locate`] for how they are found and
//! `MODELS.md` for versions and licences). Its weights are loaded once per process and
//! shared by every node and stream ([`silero::SileroModel::shared`]); a stream keeps
//! only its recurrent state.

pub mod energy;
pub mod locate;
mod native;
mod onnx;
pub mod segmenter;
pub mod silero;
pub mod vad;

use std::path::PathBuf;

use remotemedia_core::{ErrorKind, NodeError, Registry};

/// Why the speech engine could not be loaded or run.
#[derive(Clone, Debug, thiserror::Error)]
pub enum SpeechError {
    /// A file the engine needs was not found.
    #[error("cannot find {what}: {detail}")]
    NotFound {
        /// What is missing.
        what: &'static str,
        /// Where it was looked for and how to install it.
        detail: String,
    },
    /// A file was found but could not be loaded.
    #[error("cannot load {}: {detail}", path.display())]
    Load {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        detail: String,
    },
    /// An inference call failed.
    #[error("Silero VAD inference failed: {0}")]
    Run(String),
}

impl From<SpeechError> for NodeError {
    fn from(e: SpeechError) -> Self {
        let kind = match e {
            SpeechError::Run(_) => ErrorKind::Other,
            _ => ErrorKind::Resource,
        };
        NodeError::new(kind, e.to_string())
    }
}

/// Adds the speech node types (`VoiceActivity` with its aliases, `SileroVADNode`).
pub fn register(registry: &mut Registry) {
    registry.add::<vad::VoiceActivity>();
    registry.add::<vad::SileroVad>();
}

/// The built-in node types plus the audio and speech ones.
pub fn registry() -> Registry {
    let mut r = remotemedia_audio::registry();
    register(&mut r);
    r
}
