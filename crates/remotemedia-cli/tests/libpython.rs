//! How the binary links CPython, and what it does where the interpreter's standard
//! library is missing: the default build links the build Python's static libpython
//! (when it ships one), so that the binary starts without any libpython; without the
//! standard library only the cpython host is unavailable, with a message naming what
//! to install.
#![cfg(feature = "cpython")]

use std::path::{Path, PathBuf};
use std::process::Command as Std;

use assert_cmd::Command;
use predicates::prelude::*;

mod support;
use support::python_node_manifest;

/// `static`, `shared` or `pyo3-shared` (build.rs, from remotemedia-python).
const LINK: &str = env!("REMOTEMEDIA_LIBPYTHON_LINK");
/// `major.minor` of the CPython linked in.
const VERSION: &str = env!("REMOTEMEDIA_PYTHON_VERSION");

fn repo(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path)
}

fn binary() -> PathBuf {
    assert_cmd::cargo::cargo_bin("remotemedia")
}

fn rm() -> Command {
    let mut c = Command::new(binary());
    for var in ["REMOTEMEDIA_PYTHON_RUNTIME", "PYTHONHOME", "PYTHONPATH"] {
        c.env_remove(var);
    }
    c
}

/// The shared libraries the binary names (`DT_NEEDED`), from `readelf -d`.
fn needed(binary: &Path) -> Vec<String> {
    let out = Std::new("readelf")
        .arg("-d")
        .arg(binary)
        .output()
        .expect("readelf (binutils, which linking needs) is on the PATH");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains("(NEEDED)"))
        .filter_map(|l| Some(l.split_once('[')?.1.trim_end_matches(']').to_string()))
        .collect()
}

#[test]
fn the_binary_names_libpython_only_when_linked_shared() {
    let libs = needed(&binary());
    assert!(libs.iter().any(|l| l.starts_with("libc.so")), "{libs:?}");
    let python: Vec<&String> = libs.iter().filter(|l| l.starts_with("libpython")).collect();
    if LINK == "static" {
        assert!(python.is_empty(), "static build, yet NEEDED {python:?}");
    } else {
        // The fallback (no static library in the build Python): by soname.
        eprintln!("libpython linked {LINK}: the binary needs it at run time");
        assert_eq!(python, [&format!("libpython{VERSION}.so.1.0")], "{libs:?}");
        assert!(
            std::env::var_os("REMOTEMEDIA_REQUIRE_STATIC_LIBPYTHON").is_none(),
            "REMOTEMEDIA_REQUIRE_STATIC_LIBPYTHON is set, but libpython was linked {LINK}"
        );
    }
}

#[test]
fn without_the_standard_library_only_the_cpython_host_is_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    // No Python nodes: runs as ever.
    rm().env("PYTHONHOME", home.path())
        .arg("run")
        .arg(repo("examples/calculator.yaml"))
        .arg("--input")
        .arg(repo("examples/numbers.jsonl"))
        .assert()
        .success();
    // runtime: cpython — exit 2, naming what is missing and what to install.
    let src = "import sys\nclass Node:\n    def process(self, x):\n        return sys.implementation.name\n";
    let message = format!(
        "the cpython host is unavailable: embedded CPython {VERSION} needs its standard \
         library (lib/python{VERSION}/os.py): not found under PYTHONHOME ({}); install \
         Python {VERSION} (Debian/Ubuntu: python{VERSION}) or set PYTHONHOME to a prefix \
         holding it",
        home.path().display()
    );
    rm().env("PYTHONHOME", home.path())
        .arg("run")
        .arg(python_node_manifest(dir.path(), "cpython", src))
        .args(["--input", "-"])
        .write_stdin("1\n")
        .assert()
        .code(2)
        .stdout("")
        .stderr(predicate::str::contains(message.clone()));
    // runtime: auto — RustPython when the binary has it, else the same failure.
    let has_rustpython = rm()
        .arg("run")
        .arg(python_node_manifest(dir.path(), "rustpython", src))
        .args(["--input", "-"])
        .write_stdin("1\n")
        .output()
        .unwrap()
        .status
        .success();
    let auto = rm()
        .env("PYTHONHOME", home.path())
        .arg("run")
        .arg(python_node_manifest(dir.path(), "auto", src))
        .args(["--input", "-"])
        .write_stdin("1\n")
        .assert();
    if has_rustpython {
        auto.success().stdout("\"rustpython\"\n");
    } else {
        auto.code(2)
            .stderr(predicate::str::contains(message))
            .stderr(predicate::str::contains(
                "the rustpython host is unavailable: not compiled in",
            ));
    }
}

#[test]
fn a_copy_of_the_binary_elsewhere_finds_the_standard_library() {
    // Moved away from its build tree, with no environment beyond PATH: the build
    // Python's prefix (else /usr, /usr/local) provides the standard library.
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("remotemedia");
    std::fs::copy(binary(), &copy).unwrap();
    let src = "import math, json, _struct, select\n\
               class Node:\n    def process(self, x):\n        \
               return [math.isqrt(x), json.dumps({'k': x}), _struct.calcsize('<q'), hasattr(select, 'select')]\n";
    Command::new(&copy)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .arg("run")
        .arg(python_node_manifest(dir.path(), "cpython", src))
        .args(["--input", "-"])
        .write_stdin("16\n")
        .assert()
        .success()
        .stdout("[4,\"{\\\"k\\\": 16}\",8,true]\n");
}

/// A Python of the build's version that imports numpy: its `sys.prefix`, and whether
/// that is a virtualenv (to name as `VIRTUAL_ENV`).
fn python_with_numpy() -> Option<(PathBuf, bool)> {
    let candidates = [
        option_env!("REMOTEMEDIA_BUILD_PYTHON").map(PathBuf::from),
        std::env::var_os("REMOTEMEDIA_VAD_PYTHON").map(PathBuf::from),
    ];
    let script = format!(
        "import sys, numpy\nassert '%d.%d' % sys.version_info[:2] == '{VERSION}'\n\
         print(sys.prefix); print(sys.prefix != sys.base_prefix)"
    );
    candidates.into_iter().flatten().find_map(|python| {
        let out = Std::new(&python).args(["-c", &script]).output().ok()?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let mut lines = text.lines();
        let prefix = PathBuf::from(lines.next()?);
        (out.status.success()).then(|| (prefix, lines.next() == Some("True")))
    })
}

#[test]
fn c_extension_modules_load_in_the_embedded_interpreter() {
    let dir = tempfile::tempdir().unwrap();
    let src = "import math, json, _struct, select, _socket, _decimal\n\
               class Node:\n    def process(self, x):\n        \
               return [math.sqrt(x), _struct.pack('<h', x).hex(), str(_decimal.Decimal(x) / 8)]\n";
    rm().arg("run")
        .arg(python_node_manifest(dir.path(), "cpython", src))
        .args(["--input", "-"])
        .write_stdin("4\n")
        .assert()
        .success()
        .stdout("[2.0,\"0400\",\"0.5\"]\n");
    let Some((prefix, venv)) = python_with_numpy() else {
        eprintln!(
            "numpy: not importable by the build Python or REMOTEMEDIA_VAD_PYTHON; not tested"
        );
        return;
    };
    let src = "import numpy\nclass Node:\n    def process(self, x):\n        \
               return round(float(numpy.linalg.det(numpy.eye(3) * x)), 9)\n";
    let mut cmd = rm();
    if venv {
        cmd.env("VIRTUAL_ENV", &prefix);
    }
    cmd.arg("run")
        .arg(python_node_manifest(dir.path(), "cpython", src))
        .args(["--input", "-"])
        .write_stdin("2\n")
        .assert()
        .success()
        .stdout("8.0\n");
}
