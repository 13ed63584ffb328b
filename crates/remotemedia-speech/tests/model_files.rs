//! A missing or corrupt model or runtime library is an error at load time that names
//! the file, never a panic.

mod support;

use remotemedia_speech::locate::locate;
use remotemedia_speech::silero::SileroModel;

#[test]
fn missing_and_corrupt_files_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let nowhere = dir.path().join("nowhere").join("silero_vad.onnx");
    let no_lib = dir.path().join("libonnxruntime.so.1.32.0");
    let e = SileroModel::load(&no_lib, &nowhere, "test")
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with(&format!(
            "cannot load {}: the ONNX Runtime library does not exist",
            no_lib.display()
        )) && e.contains("pip install onnxruntime silero-vad"),
        "{e}"
    );
    let Ok(found) = locate() else {
        support::missing("ONNX Runtime is not installed");
        return;
    };
    let e = SileroModel::load(&found.ort_lib, &nowhere, "test")
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with(&format!(
            "cannot load {}: cannot read the Silero VAD model",
            nowhere.display()
        )),
        "{e}"
    );
    let corrupt = dir.path().join("silero_vad.onnx");
    std::fs::write(&corrupt, b"not a model at all").unwrap();
    let e = SileroModel::load(&found.ort_lib, &corrupt, "test")
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with(&format!(
            "cannot load {}: not a valid Silero VAD model",
            corrupt.display()
        )),
        "{e}"
    );
    // The runtime loads once per process; models load as often as asked.
    let a = SileroModel::load(&found.ort_lib, &found.model, "a").unwrap();
    let b = SileroModel::load(&found.ort_lib, &found.model, "b").unwrap();
    let mut sa = remotemedia_speech::silero::SileroState::new(16_000);
    let mut sb = sa.clone();
    let w = [0.01f32; 512];
    assert_eq!(a.prob(&mut sa, &w).unwrap(), b.prob(&mut sb, &w).unwrap());
    assert_eq!(sa, sb);
}
