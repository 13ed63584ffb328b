//! A pipeline whose VAD model is missing fails when it is built, naming the file (a
//! test binary of its own: the model's lookup is kept per process).

use remotemedia_core::executor::{run_pipeline, RunOptions};
use remotemedia_core::manifest::{load_str, Format};

#[test]
fn a_pipeline_with_a_missing_model_fails_before_the_first_item() {
    let dir = tempfile::tempdir().unwrap();
    let nowhere = dir.path().join("silero_vad.onnx");
    // SAFETY: the only test of this binary that reads the environment.
    unsafe {
        std::env::set_var("REMOTEMEDIA_VAD_MODEL", &nowhere);
        std::env::set_var("REMOTEMEDIA_ORT_LIB", dir.path().join("libonnxruntime.so"));
    }
    let r = remotemedia_speech::registry();
    let yaml =
        "version: v1\nmetadata: { name: t }\nnodes:\n  - { id: vad, node_type: VoiceActivity }\n";
    let p = load_str(yaml, Format::Yaml, &r).unwrap_or_else(|e| panic!("{e}"));
    let e = run_pipeline(&p, &r, Vec::new(), &RunOptions::default())
        .unwrap_err()
        .to_string();
    eprintln!("{e}");
    assert!(
        e.contains(&dir.path().join("libonnxruntime.so").display().to_string()),
        "{e}"
    );
    assert!(e.contains("pip install onnxruntime silero-vad"), "{e}");
    // The energy engine needs neither file.
    let yaml = "version: v1\nmetadata: { name: t }\nnodes:\n  - { id: vad, node_type: VoiceActivity, params: { engine: energy } }\n";
    let p = load_str(yaml, Format::Yaml, &r).unwrap();
    run_pipeline(&p, &r, Vec::new(), &RunOptions::default()).unwrap();
}
