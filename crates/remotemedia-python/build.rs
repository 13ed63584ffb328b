//! How binaries embedding CPython link libpython.
//!
//! With the `cpython` feature the build interpreter's path becomes the default for
//! worker processes (`REMOTEMEDIA_BUILD_PYTHON`). With `embed` as well (the CLI, this
//! crate's tests; never the SDK's extension module, whose host process has the
//! interpreter), this script links libpython into every binary that depends on this
//! crate. pyo3 leaves linking to it when `PYO3_BUILD_EXTENSION_MODULE` is set (the
//! workspace's `.cargo/config.toml` sets it):
//!
//! - **static** — the build Python ships `LIBPL/LIBRARY` (e.g. `libpython3.11.a`, or
//!   Debian's position-independent `libpython3.11-pic.a` next to it): the whole
//!   archive goes into each binary, whose Python C API symbols are exported (a
//!   dynamic symbol list) for the C extension modules the interpreter loads (the
//!   standard library's `lib-dynload`, numpy); the binary needs no libpython at run
//!   time, only the standard library;
//! - **shared** — no static library (or `REMOTEMEDIA_LIBPYTHON=shared`): libpython by
//!   soname, with the build Python's library directory as run path.
//!
//! Without `PYO3_BUILD_EXTENSION_MODULE` (a build outside the workspace's cargo
//! configuration) pyo3 links the shared library itself: mode **pyo3-shared**, and
//! only the run path is added.
//!
//! Link arguments apply to this crate's own tests and benches; dependents' build
//! scripts read `DEP_REMOTEMEDIA_PYTHON_LINK`, `_DYNAMIC_LIST` and `_LIBPYTHON_DIR`
//! (the run path) for their binaries, `_VERSION` and `_BUILD_PYTHON` for their tests.
//! The build Python's prefix is the first place the embedded interpreter looks for its
//! standard library (`REMOTEMEDIA_BUILD_PYTHON_PREFIX`), the mode is what
//! `REMOTEMEDIA_LIBPYTHON_LINK` tells the code (`host` for the extension module).

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    #[cfg(feature = "cpython")]
    cpython::main();
}

#[cfg(feature = "cpython")]
mod cpython {
    use std::path::Path;
    use std::process::Command;

    /// What the build Python's `sysconfig` says about its libraries.
    struct Sysconfig {
        libpl: String,
        library: String,
        libs: Vec<String>,
        prefix: String,
    }

    fn query(python: &str) -> Result<Sysconfig, String> {
        let script = "import sys, sysconfig\n\
                      v = lambda k: str(sysconfig.get_config_var(k) or '')\n\
                      print(v('LIBPL')); print(v('LIBRARY'))\n\
                      print(v('LIBS') + ' ' + v('SYSLIBS') + ' ' + v('MODLIBS'))\n\
                      print(sys.base_prefix)\n";
        let out = Command::new(python)
            .args(["-c", script])
            .output()
            .map_err(|e| format!("cannot run {python}: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "{python} failed to report its sysconfig: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let mut lines = text.lines().map(str::to_owned);
        let mut next = || lines.next().unwrap_or_default();
        let (libpl, library, link_flags, prefix) = (next(), next(), next(), next());
        // The `-l` libraries of the interpreter and of its built-in modules (Debian's
        // static library has zlib and expat compiled in), each once.
        let mut libs: Vec<String> = Vec::new();
        for lib in link_flags
            .split_whitespace()
            .filter_map(|t| t.strip_prefix("-l"))
        {
            if !lib.is_empty() && !libs.iter().any(|l| l == lib) {
                libs.push(lib.to_owned());
            }
        }
        Ok(Sysconfig {
            libpl,
            library,
            libs,
            prefix,
        })
    }

    /// The link name of a static library file (`libpython3.11.a` → `python3.11`).
    fn static_name(library: &str) -> Option<&str> {
        library.strip_prefix("lib")?.strip_suffix(".a")
    }

    pub fn main() {
        println!("cargo:rerun-if-env-changed=PYO3_BUILD_EXTENSION_MODULE");
        println!("cargo:rerun-if-env-changed=REMOTEMEDIA_LIBPYTHON");
        // pyo3's cfgs (`Py_LIMITED_API` for the SDK's abi3 build, version flags).
        pyo3_build_config::use_pyo3_cfgs();
        let config = pyo3_build_config::get();
        if let Some(exe) = config.executable() {
            println!("cargo:rustc-env=REMOTEMEDIA_BUILD_PYTHON={exe}");
            println!("cargo:BUILD_PYTHON={exe}");
        }
        let version = config.version();
        println!("cargo:VERSION={}.{}", version.major, version.minor);
        let embed = std::env::var_os("CARGO_FEATURE_EMBED").is_some();
        let sysconfig = if embed {
            config
                .executable()
                .map(query)
                .transpose()
                .unwrap_or_else(|e| {
                    println!("cargo:warning=libpython: {e}; linking the shared library");
                    None
                })
        } else {
            None
        };
        let prefix = sysconfig.as_ref().map_or("", |s| s.prefix.as_str());
        println!("cargo:rustc-env=REMOTEMEDIA_BUILD_PYTHON_PREFIX={prefix}");
        let link = if !embed {
            // The extension module: the interpreter is its host process's.
            "host"
        } else if std::env::var_os("PYO3_BUILD_EXTENSION_MODULE").is_none() {
            // pyo3 emits `-lpythonX.Y` and its search path itself.
            if let Some(dir) = config.lib_dir() {
                println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
                println!("cargo:LIBPYTHON_DIR={dir}");
            }
            "pyo3-shared"
        } else {
            link(config, sysconfig.as_ref())
        };
        println!("cargo:rustc-env=REMOTEMEDIA_LIBPYTHON_LINK={link}");
        println!("cargo:LINK={link}");
    }

    /// Links libpython (static when there is a usable archive, else shared); returns the
    /// mode.
    fn link(config: &pyo3_build_config::InterpreterConfig, s: Option<&Sysconfig>) -> &'static str {
        let request = std::env::var("REMOTEMEDIA_LIBPYTHON").unwrap_or_default();
        if !matches!(request.as_str(), "" | "static" | "shared") {
            panic!("REMOTEMEDIA_LIBPYTHON={request:?}: expected `static`, `shared` or unset");
        }
        // Debian's `libpythonX.Y.a` is not position-independent (binaries are PIE) and
        // ships next to `libpythonX.Y-pic.a`, which is: that one first.
        let archive = s.and_then(|s| {
            let name = static_name(&s.library)?;
            [format!("{name}-pic"), name.to_owned()]
                .into_iter()
                .find(|n| Path::new(&s.libpl).join(format!("lib{n}.a")).is_file())
                .map(|n| (n, s))
        });
        match (archive, request.as_str()) {
            (Some((name, s)), "" | "static") => {
                println!("cargo:rustc-link-search=native={}", s.libpl);
                println!("cargo:rustc-link-lib=static:+whole-archive,-bundle={name}");
                for lib in &s.libs {
                    println!("cargo:rustc-link-lib=dylib={lib}");
                }
                let out_dir = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
                let list = Path::new(&out_dir).join("python-api.list");
                write(&list, "{\n  Py*;\n  _Py*;\n};\n");
                let list = list.display();
                println!("cargo:rustc-link-arg=-Wl,--dynamic-list={list}");
                println!("cargo:DYNAMIC_LIST={list}");
                "static"
            }
            (None, "static") => panic!(
                "REMOTEMEDIA_LIBPYTHON=static, but the build Python ({}) has no static library \
                 (sysconfig LIBPL/LIBRARY: {})",
                config.executable().unwrap_or("unknown"),
                s.map(|s| format!("{}/{}", s.libpl, s.library))
                    .unwrap_or_else(|| "unknown".into())
            ),
            (archive, _) => {
                let name = config
                    .lib_name()
                    .expect("pyo3 names the Python library to link");
                let why = if archive.is_some() {
                    "REMOTEMEDIA_LIBPYTHON=shared".to_owned()
                } else {
                    format!(
                        "no static library at {}",
                        s.map(|s| format!("{}/{}", s.libpl, s.library))
                            .unwrap_or_else(|| "sysconfig LIBPL/LIBRARY".into())
                    )
                };
                println!(
                    "cargo:warning=libpython: linking lib{name}.so by soname ({why}); \
                     the binaries need that library at run time"
                );
                println!("cargo:rustc-link-lib=dylib={name}");
                if let Some(dir) = config.lib_dir() {
                    println!("cargo:rustc-link-search=native={dir}");
                    println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
                    println!("cargo:LIBPYTHON_DIR={dir}");
                }
                "shared"
            }
        }
    }

    fn write(path: &Path, text: &str) {
        // Unchanged contents keep the file's time, so nothing relinks needlessly.
        if std::fs::read_to_string(path).ok().as_deref() != Some(text) {
            std::fs::write(path, text).expect("OUT_DIR is writable");
        }
    }
}
