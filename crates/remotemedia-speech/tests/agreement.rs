//! The port is faithful: the same model run from Python through onnxruntime
//! (`python/benchmarks/vad_reference.py`, the calling convention of the `silero-vad`
//! package) on the same audio agrees on speech / non-speech for at least 98% of the
//! windows. The Python is the one the model is looked up in (`REMOTEMEDIA_VAD_PYTHON`
//! first, see `remotemedia_speech::locate`); it needs numpy and onnxruntime.

mod support;

use std::path::PathBuf;
use std::process::Command;

use remotemedia_speech::silero::{window, SileroState};
use support::*;

fn python() -> Option<PathBuf> {
    let py = remotemedia_speech::locate::python();
    let ok = Command::new(&py)
        .args(["-c", "import numpy, onnxruntime"])
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        Some(py)
    } else {
        missing(&format!("{} has no numpy and onnxruntime", py.display()));
        None
    }
}

#[test]
fn rust_and_python_agree_frame_by_frame() {
    let (Some(clean), Some(model)) = (corpus(), model()) else {
        return;
    };
    let Some(py) = python() else { return };
    let t = truth(clean);
    let dir = tempfile::tempdir().unwrap();
    for (name, samples) in [
        ("clean", clean.to_vec()),
        ("pink 10 dB", mix(clean, &t, Noise::Pink, 10.0, 5)),
    ] {
        let wav = dir.path().join("in.wav");
        write_wav16(&wav, &samples, RATE);
        // Both sides read the same 16-bit samples.
        let (samples, _) = read_wav(&wav);
        let out = Command::new(&py)
            .arg(reference_script())
            .arg(&wav)
            .arg("--model")
            .arg(model.model_path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let reference: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let theirs: Vec<f32> = reference["probs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect();

        let mut state = SileroState::new(RATE);
        let w = window(RATE);
        let ours: Vec<f32> = samples
            .chunks(w)
            .map(|c| {
                let mut win = c.to_vec();
                win.resize(w, 0.0);
                model.prob(&mut state, &win).unwrap()
            })
            .collect();
        assert_eq!(ours.len(), theirs.len());
        let agree = ours
            .iter()
            .zip(&theirs)
            .filter(|(a, b)| (**a >= 0.5) == (**b >= 0.5))
            .count() as f64
            / ours.len() as f64;
        let max_diff = ours
            .iter()
            .zip(&theirs)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        eprintln!(
            "{name}: {} windows, {:.2}% agree, max probability difference {max_diff:.2e}",
            ours.len(),
            agree * 100.0
        );
        assert!(agree >= 0.98, "{name}: only {:.2}% agree", agree * 100.0);
        assert!(max_diff < 1e-3, "{name}: max difference {max_diff}");
    }
}
