//! With the `cpython` feature: records where libpython lives (rpath) so that test, bench
//! and example binaries load the interpreter they were built against without any
//! `LD_LIBRARY_PATH`, passes that directory on to dependent crates' build scripts (as
//! `DEP_REMOTEMEDIA_PYTHON_LIBPYTHON_DIR`, for their binaries), and passes the build
//! interpreter's path on as a default for the worker processes.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    #[cfg(feature = "cpython")]
    {
        pyo3_build_config::add_libpython_rpath_link_args();
        let config = pyo3_build_config::get();
        if let Some(exe) = config.executable() {
            println!("cargo:rustc-env=REMOTEMEDIA_BUILD_PYTHON={exe}");
        }
        if let Some(dir) = config.lib_dir() {
            println!("cargo:LIBPYTHON_DIR={dir}");
        }
    }
}
