//! A `VoiceActivity` whose model or runtime is missing or corrupt makes the manifest
//! invalid: `remotemedia run` and `remotemedia validate` exit 1 with the path and how to
//! install it, before any input is read, and nothing panics. `engine: energy` needs
//! neither file.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use support::{write, BIN};

const SILERO: &str =
    "version: v1\nmetadata: { name: vad }\nnodes:\n  - { id: vad, node_type: VoiceActivity, params: { output: events } }\n";
const ALIAS: &str =
    "version: v1\nmetadata: { name: vad }\nnodes:\n  - { id: vad, node_type: SileroVADNode, params: { sampling_rate: 16000 } }\n";
const ENERGY: &str =
    "version: v1\nmetadata: { name: vad }\nnodes:\n  - { id: vad, node_type: VoiceActivity, params: { engine: energy } }\n";

fn cli(args: &[&str], manifest: &Path, model: &Path, lib: &Path) -> Output {
    Command::new(BIN)
        .args(args)
        .arg(manifest)
        .env("REMOTEMEDIA_VAD_MODEL", model)
        .env("REMOTEMEDIA_ORT_LIB", lib)
        // Nothing to read: a run that got past loading would end at once.
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
}

/// `run` and `validate` of `manifest` both exit 1 with every one of `want` in stderr.
fn assert_invalid(manifest: &Path, model: &Path, lib: &Path, want: &[&str]) {
    for args in [&["validate"][..], &["run"][..]] {
        let out = cli(args, manifest, model, lib);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        for w in want {
            assert!(stderr.contains(w), "{args:?}: no `{w}` in {stderr}");
        }
    }
}

/// The file `script` prints, run by the interpreter the speech crate asks, if it
/// exists.
fn python_file(script: &str) -> Option<PathBuf> {
    let py = std::env::var("REMOTEMEDIA_VAD_PYTHON").unwrap_or_else(|_| "python3".into());
    let out = Command::new(py).args(["-c", script]).output().ok()?;
    let p = PathBuf::from(String::from_utf8(out.stdout).ok()?.trim());
    (out.status.success() && p.is_file()).then_some(p)
}

/// The ONNX Runtime library of the `onnxruntime` package, if installed.
fn runtime_library() -> Option<PathBuf> {
    python_file(
        "import importlib.util, glob, os; s = importlib.util.find_spec('onnxruntime'); \
         print(sorted(glob.glob(os.path.join(os.path.dirname(s.origin), 'capi', 'libonnxruntime.*')))[-1])",
    )
}

/// The model file of the `silero-vad` package, if installed.
fn model_file() -> Option<PathBuf> {
    python_file(
        "import importlib.util, os; s = importlib.util.find_spec('silero_vad'); \
         print(os.path.join(list(s.submodule_search_locations)[0], 'data', 'silero_vad.onnx'))",
    )
}

/// Fails when the speech files are required (`REMOTEMEDIA_REQUIRE_SPEECH=1`), else
/// says why the test does nothing.
fn missing(why: &str) {
    if std::env::var("REMOTEMEDIA_REQUIRE_SPEECH").as_deref() == Ok("1") {
        panic!("{why} (REMOTEMEDIA_REQUIRE_SPEECH=1)");
    }
    eprintln!("skipped: {why}");
}

#[test]
fn a_missing_model_is_an_invalid_manifest_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = write(dir.path(), "vad.yaml", SILERO);
    let alias = write(dir.path(), "alias.yaml", ALIAS);
    let model = dir.path().join("nonexistent").join("silero_vad.onnx");
    // Any file as the library: the model is read first.
    let lib = write(dir.path(), "libonnxruntime.so", "");
    let want = [
        format!("cannot load {}", model.display()),
        "cannot read the Silero VAD model".to_string(),
        "pip install".to_string(),
        "engine: energy".to_string(),
    ];
    let want: Vec<&str> = want.iter().map(String::as_str).collect();
    assert_invalid(&manifest, &model, &lib, &want);
    assert_invalid(&alias, &model, &lib, &want);
    // The energy engine needs no model.
    let energy = write(dir.path(), "energy.yaml", ENERGY);
    for args in [&["validate"][..], &["run"][..]] {
        let out = cli(args, &energy, &model, &lib);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn a_broken_runtime_library_is_an_invalid_manifest_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = write(dir.path(), "vad.yaml", SILERO);
    let model = write(dir.path(), "silero_vad.onnx", "not a model");
    let lib = write(dir.path(), "libonnxruntime.so", "not a shared library");
    let want = format!("cannot load {}: cannot load ONNX Runtime", lib.display());
    assert_invalid(&manifest, &model, &lib, &[&want]);
}

#[test]
fn a_corrupt_model_is_an_invalid_manifest_naming_the_path() {
    let Some(lib) = runtime_library() else {
        missing("ONNX Runtime (the `onnxruntime` PyPI package) is not installed");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let manifest = write(dir.path(), "vad.yaml", SILERO);
    let model = write(dir.path(), "silero_vad.onnx", "garbage, not an ONNX file");
    let want = format!(
        "cannot load {}: not a valid Silero VAD model",
        model.display()
    );
    assert_invalid(
        &manifest,
        &model,
        &lib,
        &[&want, "pip install --force-reinstall silero-vad"],
    );
}

#[test]
fn the_rust_runtime_needs_no_onnx_runtime() {
    let Some(model) = model_file() else {
        missing("the Silero VAD model (the `silero-vad` PyPI package) is not installed");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // Half a second of a 16 kHz tone, as raw s16le.
    let pcm: Vec<u8> = (0..8_000)
        .flat_map(|i| (((i as f64 * 0.2).sin() * 8_000.0) as i16).to_le_bytes())
        .collect();
    let input = dir.path().join("tone.s16");
    std::fs::write(&input, pcm).unwrap();
    let run = |manifest: &Path, args: &[&str]| {
        Command::new(BIN)
            .args(args)
            .arg(manifest)
            .env("REMOTEMEDIA_VAD_MODEL", &model)
            .env_remove("REMOTEMEDIA_ORT_LIB")
            // No interpreter to find ONNX Runtime with.
            .env("REMOTEMEDIA_VAD_PYTHON", dir.path().join("no-python"))
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    };
    let manifest = write(dir.path(), "vad.yaml", SILERO);
    let input_arg = input.to_str().unwrap();
    let out = run(
        &manifest,
        &[
            "run",
            "--input",
            input_arg,
            "--input-format",
            "s16le:16000:1",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // ONNX Runtime asked for by name: the manifest is invalid, saying what is missing.
    let ort = write(
        dir.path(),
        "ort.yaml",
        "version: v1\nmetadata: { name: vad }\nnodes:\n  - { id: vad, node_type: VoiceActivity, params: { engine: silero_onnxruntime } }\n",
    );
    let out = run(&ort, &["validate"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("cannot find ONNX Runtime: ONNX Runtime is not installed")
            && stderr.contains("pip install onnxruntime"),
        "{stderr}"
    );
}
