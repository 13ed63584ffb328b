//! Links the binary for the embedded CPython as `remotemedia-python` decided when its
//! `cpython` feature is on: with libpython linked statically, the Python C API symbols
//! are exported (dynamic symbol list) for the C extension modules the interpreter
//! loads; with libpython shared, its directory is the run path, so the binary finds
//! the interpreter it was built against without `LD_LIBRARY_PATH`.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let unix = std::env::var("CARGO_CFG_UNIX").is_ok();
    for key in [
        "LINK",
        "DYNAMIC_LIST",
        "LIBPYTHON_DIR",
        "VERSION",
        "BUILD_PYTHON",
    ] {
        println!("cargo:rerun-if-env-changed=DEP_REMOTEMEDIA_PYTHON_{key}");
    }
    let dep = |key: &str| {
        std::env::var(format!("DEP_REMOTEMEDIA_PYTHON_{key}"))
            .ok()
            .filter(|v| !v.is_empty())
    };
    // For the tests (tests/libpython.rs): how the binary links libpython, and the
    // interpreter it was built against.
    for (key, env) in [
        ("LINK", "REMOTEMEDIA_LIBPYTHON_LINK"),
        ("VERSION", "REMOTEMEDIA_PYTHON_VERSION"),
        ("BUILD_PYTHON", "REMOTEMEDIA_BUILD_PYTHON"),
    ] {
        if let Some(value) = dep(key) {
            println!("cargo:rustc-env={env}={value}");
        }
    }
    if !unix {
        return;
    }
    if let Some(list) = dep("DYNAMIC_LIST") {
        println!("cargo:rustc-link-arg-bins=-Wl,--dynamic-list={list}");
    }
    if let Some(dir) = dep("LIBPYTHON_DIR") {
        println!("cargo:rustc-link-arg-bins=-Wl,-rpath,{dir}");
    }
}
