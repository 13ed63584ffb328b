//! Where the Silero VAD model and the ONNX Runtime library come from.
//!
//! Nothing is downloaded at run time. Both files come from Python packages a registry
//! serves, installed with `pip install onnxruntime silero-vad` (the model file is
//! `silero_vad/data/silero_vad.onnx`, the library `onnxruntime/capi/libonnxruntime.so.*`).
//! Only the model is required: the Rust runtime computes it from the file's weights,
//! and ONNX Runtime is only needed to run it there (`engine: silero_onnxruntime`) or
//! to run a file whose weights are not laid out as Silero VAD v5's.
//!
//! 1. `REMOTEMEDIA_VAD_MODEL` (path of the `.onnx` file) and `REMOTEMEDIA_ORT_LIB`
//!    (path of the ONNX Runtime shared library) win when set;
//! 2. otherwise the packages are looked up, once per process, in the site-packages of
//!    the Python interpreter named by `REMOTEMEDIA_VAD_PYTHON`, else `REMOTEMEDIA_PYTHON`
//!    (the interpreter of Python nodes), else the active virtualenv's (`VIRTUAL_ENV`),
//!    else `python3` on `PATH`. The interpreter is only asked where the
//!    packages are (`importlib.util.find_spec`): neither package is imported.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde::Deserialize;

use crate::SpeechError;

/// What to install when a file is missing.
pub const INSTALL_HINT: &str = "install them with `pip install onnxruntime silero-vad` \
     (or set REMOTEMEDIA_VAD_MODEL and REMOTEMEDIA_ORT_LIB)";

/// Where each file was found, and how.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Located {
    /// The Silero VAD `.onnx` file.
    pub model: PathBuf,
    /// The ONNX Runtime shared library (`None`: not installed).
    pub ort_lib: Option<PathBuf>,
    /// How they were found, in words (shown in errors and docs).
    pub origin: String,
}

/// The interpreter's answer.
#[derive(Debug, Deserialize)]
struct PyAnswer {
    silero_vad: Option<String>,
    silero_vad_version: Option<String>,
    onnxruntime: Option<String>,
    onnxruntime_version: Option<String>,
}

const PY_SCRIPT: &str = r#"
import importlib.util, importlib.metadata, json
def where(mod):
    try:
        s = importlib.util.find_spec(mod)
    except Exception:
        return None
    if s is None or not s.submodule_search_locations:
        return None
    return list(s.submodule_search_locations)[0]
def version(dist):
    try:
        return importlib.metadata.version(dist)
    except Exception:
        return None
print(json.dumps({"silero_vad": where("silero_vad"), "silero_vad_version": version("silero-vad"),
                  "onnxruntime": where("onnxruntime"), "onnxruntime_version": version("onnxruntime")}))
"#;

/// The Python interpreter the packages are looked up in.
pub fn python() -> PathBuf {
    for var in ["REMOTEMEDIA_VAD_PYTHON", "REMOTEMEDIA_PYTHON"] {
        if let Some(p) = std::env::var_os(var).filter(|p| !p.is_empty()) {
            return PathBuf::from(p);
        }
    }
    if let Some(venv) = std::env::var_os("VIRTUAL_ENV").filter(|p| !p.is_empty()) {
        let p = Path::new(&venv).join("bin").join("python");
        if p.exists() {
            return p;
        }
    }
    PathBuf::from("python3")
}

/// The ONNX Runtime library file inside an `onnxruntime` package directory.
fn ort_lib_in(package: &Path) -> Option<PathBuf> {
    let capi = package.join("capi");
    let mut found: Vec<PathBuf> = std::fs::read_dir(&capi)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                n.starts_with("libonnxruntime.so")
                    || (n.starts_with("libonnxruntime.") && n.ends_with(".dylib"))
                    || n == "onnxruntime.dll"
            })
        })
        .collect();
    // The versioned name (`libonnxruntime.so.1.32.0`) sorts after the bare one.
    found.sort();
    found.pop()
}

/// Where the interpreter `py` has the packages.
fn ask(py: &Path) -> Result<PyAnswer, SpeechError> {
    let out = Command::new(py)
        .arg("-c")
        .arg(PY_SCRIPT)
        .output()
        .map_err(|e| SpeechError::NotFound {
            what: "the Silero VAD model",
            detail: format!(
                "could not run {} to find it: {e}; {INSTALL_HINT}",
                py.display()
            ),
        })?;
    serde_json::from_slice(&out.stdout).map_err(|_| SpeechError::NotFound {
        what: "the Silero VAD model",
        detail: format!(
            "{} did not say where its packages are ({}); {INSTALL_HINT}",
            py.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ),
    })
}

fn locate_uncached() -> Result<Located, SpeechError> {
    let env_model = std::env::var_os("REMOTEMEDIA_VAD_MODEL").filter(|p| !p.is_empty());
    let env_lib = std::env::var_os("REMOTEMEDIA_ORT_LIB").filter(|p| !p.is_empty());
    if let (Some(m), Some(l)) = (&env_model, &env_lib) {
        return Ok(Located {
            model: PathBuf::from(m),
            ort_lib: Some(PathBuf::from(l)),
            origin: "REMOTEMEDIA_VAD_MODEL and REMOTEMEDIA_ORT_LIB".to_string(),
        });
    }
    let py = python();
    let answer = ask(&py);
    let answer = match (answer, &env_model, &env_lib) {
        (Ok(a), _, _) => a,
        // The model is named, the interpreter only had the (optional) runtime to say.
        (Err(_), Some(m), None) => {
            return Ok(Located {
                model: PathBuf::from(m),
                ort_lib: None,
                origin: "REMOTEMEDIA_VAD_MODEL (onnxruntime not found)".to_string(),
            })
        }
        (Err(e), _, _) => return Err(e),
    };
    let model = match env_model {
        Some(m) => PathBuf::from(m),
        None => {
            let dir = answer.silero_vad.ok_or_else(|| SpeechError::NotFound {
                what: "the Silero VAD model",
                detail: format!(
                    "the package `silero-vad` is not installed for {}; {INSTALL_HINT}",
                    py.display()
                ),
            })?;
            Path::new(&dir).join("data").join("silero_vad.onnx")
        }
    };
    // The library is optional: without it, only the Rust runtime runs the model.
    let ort_lib = match env_lib {
        Some(l) => Some(PathBuf::from(l)),
        None => answer
            .onnxruntime
            .as_deref()
            .and_then(|dir| ort_lib_in(Path::new(dir))),
    };
    let v = |v: Option<String>| v.unwrap_or_else(|| "?".to_string());
    let origin = match &ort_lib {
        Some(_) => format!(
            "PyPI packages silero-vad {} and onnxruntime {} of {}",
            v(answer.silero_vad_version),
            v(answer.onnxruntime_version),
            py.display()
        ),
        None => format!(
            "PyPI package silero-vad {} of {} (onnxruntime not installed)",
            v(answer.silero_vad_version),
            py.display()
        ),
    };
    Ok(Located {
        model,
        ort_lib,
        origin,
    })
}

/// Finds the model and the library (once per process; the answer is kept).
pub fn locate() -> Result<&'static Located, SpeechError> {
    static FOUND: OnceLock<Result<Located, SpeechError>> = OnceLock::new();
    FOUND
        .get_or_init(locate_uncached)
        .as_ref()
        .map_err(Clone::clone)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_versioned_library_is_picked() {
        let dir = tempfile::tempdir().unwrap();
        let capi = dir.path().join("capi");
        std::fs::create_dir(&capi).unwrap();
        assert_eq!(ort_lib_in(dir.path()), None);
        for n in [
            "libonnxruntime_providers_shared.so",
            "libonnxruntime.so.1.32.0",
            "__init__.py",
        ] {
            std::fs::write(capi.join(n), b"").unwrap();
        }
        assert_eq!(
            ort_lib_in(dir.path()),
            Some(capi.join("libonnxruntime.so.1.32.0"))
        );
    }
}
