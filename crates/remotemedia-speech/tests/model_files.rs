//! A missing or corrupt model or runtime library is an error at load time (or, for
//! ONNX Runtime, which only some callers need, when it is first asked for) that names
//! the file, never a panic.

mod support;

use remotemedia_speech::locate::locate;
use remotemedia_speech::silero::{Runtime, SileroModel, SileroState};

#[test]
fn missing_and_corrupt_files_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let nowhere = dir.path().join("nowhere").join("silero_vad.onnx");
    let no_lib = dir.path().join("libonnxruntime.so.1.32.0");
    let e = SileroModel::load(Some(&no_lib), &nowhere, "test")
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with(&format!(
            "cannot load {}: cannot read the Silero VAD model",
            nowhere.display()
        )) && e.contains("pip install onnxruntime silero-vad"),
        "{e}"
    );
    let Ok(found) = locate() else {
        support::missing("the Silero VAD model is not installed");
        return;
    };
    let Some(lib) = found.ort_lib.as_deref() else {
        support::missing("ONNX Runtime is not installed");
        return;
    };
    // A file that is no model: neither runtime can run it.
    let corrupt = dir.path().join("silero_vad.onnx");
    std::fs::write(&corrupt, b"not a model at all").unwrap();
    let e = SileroModel::load(Some(lib), &corrupt, "test")
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with(&format!(
            "cannot load {}: not a valid Silero VAD model",
            corrupt.display()
        )),
        "{e}"
    );
    let e = SileroModel::load(None, &corrupt, "test")
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with(&format!(
            "cannot load {}: not a Silero VAD v5 model for the Rust runtime (not an ONNX model: ",
            corrupt.display()
        )) && e.contains("and ONNX Runtime is not installed; install them with `pip install onnxruntime silero-vad`"),
        "{e}"
    );
    // The model runs in Rust without ONNX Runtime; asking for ONNX Runtime then says
    // what is missing.
    let w = [0.01f32; 512];
    for lib in [None, Some(no_lib.as_path())] {
        let m = SileroModel::load(lib, &found.model, "test").unwrap();
        assert_eq!(m.runtime(), Runtime::Native);
        let mut st = SileroState::new(16_000);
        m.prob(&mut st, &w).unwrap();
        let e = m.check_onnxruntime().unwrap_err().to_string();
        let want = match lib {
            None => "cannot find ONNX Runtime: ONNX Runtime is not installed; install them with"
                .to_string(),
            Some(l) => format!(
                "cannot find ONNX Runtime: cannot load {}: the ONNX Runtime library does not exist",
                l.display()
            ),
        };
        assert!(e.starts_with(&want), "{e}");
        let e = m
            .prob_on(Runtime::OnnxRuntime, &mut st, &w)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with(&want), "{e}");
        assert_eq!(m.sessions(), 0);
    }
    // The runtime loads once per process; models load as often as asked.
    let a = SileroModel::load(Some(lib), &found.model, "a").unwrap();
    let b = SileroModel::load(Some(lib), &found.model, "b").unwrap();
    let mut sa = SileroState::new(16_000);
    let mut sb = sa.clone();
    assert_eq!(a.prob(&mut sa, &w).unwrap(), b.prob(&mut sb, &w).unwrap());
    assert_eq!(sa, sb);
    assert_eq!(a.sessions(), 0, "the Rust runtime needs no session");
    a.check_onnxruntime().unwrap();
    assert_eq!(a.sessions(), 1);
}
