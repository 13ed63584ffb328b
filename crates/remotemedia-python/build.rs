//! With the `cpython` feature: links libpython into every binary that embeds the
//! interpreter, as `remotemedia-py`'s build script decided (`DEP_REMOTEMEDIA_PY_LINK`):
//!
//! - `static`: the whole archive (`rustc-link-lib`, so dependents' binaries get it
//!   too) and a dynamic symbol list exporting the Python C API (`Py*`, `_Py*`) for the
//!   C extension modules the interpreter loads;
//! - `shared`: libpython by soname, with its directory as run path;
//! - `pyo3-shared`: pyo3 linked it; only the run path is added.
//!
//! Link arguments apply to this crate's own tests and benches; dependents' build
//! scripts read `DEP_REMOTEMEDIA_PYTHON_LINK`, `_DYNAMIC_LIST` and `_LIBPYTHON_DIR`
//! (the run path) for theirs, `_VERSION` and `_BUILD_PYTHON` for their tests. The build interpreter's path becomes the default for
//! worker processes (`REMOTEMEDIA_BUILD_PYTHON`), its prefix the first place the
//! embedded interpreter looks for its standard library (`REMOTEMEDIA_BUILD_PYTHON_PREFIX`),
//! the mode what `remotemedia capabilities` reports (`REMOTEMEDIA_LIBPYTHON_LINK`).

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    #[cfg(feature = "cpython")]
    cpython();
}

#[cfg(feature = "cpython")]
fn cpython() {
    let dep = |key: &str| {
        let name = format!("DEP_REMOTEMEDIA_PY_{key}");
        println!("cargo:rerun-if-env-changed={name}");
        std::env::var(name).ok().filter(|v| !v.is_empty())
    };
    let config = pyo3_build_config::get();
    if let Some(exe) = config.executable() {
        println!("cargo:rustc-env=REMOTEMEDIA_BUILD_PYTHON={exe}");
        println!("cargo:BUILD_PYTHON={exe}");
    }
    let version = config.version();
    println!("cargo:VERSION={}.{}", version.major, version.minor);
    let prefix = dep("PREFIX").unwrap_or_default();
    println!("cargo:rustc-env=REMOTEMEDIA_BUILD_PYTHON_PREFIX={prefix}");
    let link = dep("LINK").expect("remotemedia-py (feature `embed`) reports how to link libpython");
    println!("cargo:rustc-env=REMOTEMEDIA_LIBPYTHON_LINK={link}");
    println!("cargo:LINK={link}");
    let lib_dir = dep("LIB_DIR");
    match link.as_str() {
        "static" => {
            let name = dep("LIB_NAME").expect("a static link names the library");
            let dir = lib_dir.expect("a static link names the library's directory");
            println!("cargo:rustc-link-search=native={dir}");
            println!("cargo:rustc-link-lib=static:+whole-archive,-bundle={name}");
            for lib in dep("SYSLIBS").unwrap_or_default().split_whitespace() {
                println!("cargo:rustc-link-lib=dylib={lib}");
            }
            let out_dir = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
            let list = std::path::Path::new(&out_dir).join("python-api.list");
            std::fs::write(&list, "{\n  Py*;\n  _Py*;\n};\n").expect("OUT_DIR is writable");
            let list = list.display();
            println!("cargo:rustc-link-arg=-Wl,--dynamic-list={list}");
            println!("cargo:DYNAMIC_LIST={list}");
        }
        "shared" | "pyo3-shared" => {
            if link == "shared" {
                let name = dep("LIB_NAME").expect("a shared link names the library");
                println!("cargo:rustc-link-lib=dylib={name}");
                if let Some(dir) = &lib_dir {
                    println!("cargo:rustc-link-search=native={dir}");
                }
            }
            if let Some(dir) = lib_dir {
                println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
                println!("cargo:LIBPYTHON_DIR={dir}");
            }
        }
        other => panic!("unknown libpython link mode {other:?} from remotemedia-py"),
    }
}
