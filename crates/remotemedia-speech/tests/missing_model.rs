//! A manifest whose ONNX Runtime library is broken is invalid: it fails to load, naming
//! the file (a test binary of its own: the model's lookup is kept per process).

use remotemedia_core::executor::{run_pipeline, RunOptions};
use remotemedia_core::manifest::{load_str, Format};

#[test]
fn a_manifest_with_a_broken_runtime_fails_to_load() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("silero_vad.onnx");
    std::fs::write(&model, b"not a model").unwrap();
    // A library file that is not one.
    let lib = dir.path().join("libonnxruntime.so");
    std::fs::write(&lib, b"not a shared library").unwrap();
    // SAFETY: the only test of this binary that reads the environment.
    unsafe {
        std::env::set_var("REMOTEMEDIA_VAD_MODEL", &model);
        std::env::set_var("REMOTEMEDIA_ORT_LIB", &lib);
    }
    let r = remotemedia_speech::registry();
    let yaml =
        "version: v1\nmetadata: { name: t }\nnodes:\n  - { id: vad, node_type: VoiceActivity }\n";
    let e = load_str(yaml, Format::Yaml, &r).unwrap_err().to_string();
    eprintln!("{e}");
    assert!(
        e.contains(&format!(
            "cannot load {}: cannot load ONNX Runtime",
            lib.display()
        )),
        "{e}"
    );
    // The energy engine needs neither file.
    let yaml = "version: v1\nmetadata: { name: t }\nnodes:\n  - { id: vad, node_type: VoiceActivity, params: { engine: energy } }\n";
    let p = load_str(yaml, Format::Yaml, &r).unwrap();
    run_pipeline(&p, &r, Vec::new(), &RunOptions::default()).unwrap();
}
