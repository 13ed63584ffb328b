//! Decides how binaries embedding CPython link libpython, with the feature `embed` on
//! (hosts that start an interpreter; the extension module built by maturin never links
//! libpython and leaves this feature off).
//!
//! pyo3 leaves linking to this build script when `PYO3_BUILD_EXTENSION_MODULE` is set
//! (the workspace's `.cargo/config.toml` sets it). Then:
//!
//! - **static** — the build Python ships `LIBPL/LIBRARY` (e.g. `libpython3.11.a`,
//!   or Debian's position-independent `libpython3.11-pic.a` next to it):
//!   the whole archive is linked into each binary, whose Python C API symbols are
//!   exported for the C extension modules (stdlib `lib-dynload`, numpy) it loads;
//!   the binary needs no libpython at run time, only the standard library.
//! - **shared** — no static library (or `REMOTEMEDIA_LIBPYTHON=shared`): libpython
//!   by soname, with the build Python's library directory as run path.
//!
//! Without `PYO3_BUILD_EXTENSION_MODULE` (a build outside the workspace's cargo
//! configuration) pyo3 links the shared library itself: mode **pyo3-shared**.
//!
//! The choice reaches `remotemedia-python`'s build script as `DEP_REMOTEMEDIA_PY_*`;
//! this crate's own unit tests link it through `OUT_DIR/libpython.rs`.

use std::path::{Path, PathBuf};
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

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=PYO3_BUILD_EXTENSION_MODULE");
    println!("cargo:rerun-if-env-changed=REMOTEMEDIA_LIBPYTHON");
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let link_file = out_dir.join("libpython.rs");
    if std::env::var_os("CARGO_FEATURE_EMBED").is_none() {
        write(&link_file, "");
        return;
    }
    let config = pyo3_build_config::get();
    let prefix_from = |s: &Option<Sysconfig>| s.as_ref().map(|s| s.prefix.clone());
    let sysconfig = config
        .executable()
        .map(query)
        .transpose()
        .unwrap_or_else(|e| {
            println!("cargo:warning=libpython: {e}; linking the shared library");
            None
        });
    if let Some(prefix) = prefix_from(&sysconfig) {
        println!("cargo:PREFIX={prefix}");
    }
    if std::env::var_os("PYO3_BUILD_EXTENSION_MODULE").is_none() {
        // pyo3 emits `-lpythonX.Y` and its search path itself.
        write(&link_file, "");
        println!("cargo:LINK=pyo3-shared");
        if let Some(dir) = config.lib_dir() {
            println!("cargo:LIB_DIR={dir}");
        }
        return;
    }
    let request = std::env::var("REMOTEMEDIA_LIBPYTHON").unwrap_or_default();
    if !matches!(request.as_str(), "" | "static" | "shared") {
        panic!("REMOTEMEDIA_LIBPYTHON={request:?}: expected `static`, `shared` or unset");
    }
    // Debian's `libpythonX.Y.a` is not position-independent (binaries are PIE) and
    // ships next to `libpythonX.Y-pic.a`, which is: that one first.
    let archive = sysconfig.as_ref().and_then(|s| {
        let name = static_name(&s.library)?;
        [format!("{name}-pic"), name.to_owned()]
            .into_iter()
            .find(|n| Path::new(&s.libpl).join(format!("lib{n}.a")).is_file())
            .map(|n| (n, s))
    });
    match (archive, request.as_str()) {
        (Some((name, s)), "" | "static") => {
            let libs: String = s
                .libs
                .iter()
                .map(|l| format!("#[link(name = \"{l}\")]\n"))
                .collect();
            write(
                &link_file,
                &format!(
                    "#[link(name = \"{name}\", kind = \"static\", modifiers = \"+whole-archive,-bundle\")]\n\
                     {libs}extern \"C\" {{}}\n"
                ),
            );
            println!("cargo:rustc-link-search=native={}", s.libpl);
            println!("cargo:LINK=static");
            println!("cargo:LIB_NAME={name}");
            println!("cargo:LIB_DIR={}", s.libpl);
            println!("cargo:SYSLIBS={}", s.libs.join(" "));
        }
        (None, "static") => panic!(
            "REMOTEMEDIA_LIBPYTHON=static, but the build Python ({}) has no static library \
             (sysconfig LIBPL/LIBRARY: {})",
            config.executable().unwrap_or("unknown"),
            sysconfig
                .as_ref()
                .map(|s| format!("{}/{}", s.libpl, s.library))
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
                    sysconfig
                        .as_ref()
                        .map(|s| format!("{}/{}", s.libpl, s.library))
                        .unwrap_or_else(|| "sysconfig LIBPL/LIBRARY".into())
                )
            };
            println!(
                "cargo:warning=libpython: linking lib{name}.so by soname ({why}); \
                 the binaries need that library at run time"
            );
            write(
                &link_file,
                &format!("#[link(name = \"{name}\")]\nextern \"C\" {{}}\n"),
            );
            println!("cargo:LINK=shared");
            println!("cargo:LIB_NAME={name}");
            if let Some(dir) = config.lib_dir() {
                println!("cargo:rustc-link-search=native={dir}");
                println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
                println!("cargo:LIB_DIR={dir}");
            }
        }
    }
}

fn write(path: &Path, text: &str) {
    // Unchanged contents keep the file's time, so nothing recompiles needlessly.
    if std::fs::read_to_string(path).ok().as_deref() != Some(text) {
        std::fs::write(path, text).expect("OUT_DIR is writable");
    }
}
