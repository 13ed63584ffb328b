//! Records where libpython lives (rpath), as found by `remotemedia-python` when its
//! `cpython` feature is on, so that the binary finds the interpreter it was built
//! against without `LD_LIBRARY_PATH`.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=DEP_REMOTEMEDIA_PYTHON_LIBPYTHON_DIR");
    let unix = std::env::var("CARGO_CFG_UNIX").is_ok();
    if let Ok(dir) = std::env::var("DEP_REMOTEMEDIA_PYTHON_LIBPYTHON_DIR") {
        if unix && !dir.is_empty() {
            println!("cargo:rustc-link-arg-bins=-Wl,-rpath,{dir}");
        }
    }
}
