//! One module per subcommand.

pub mod capabilities;
pub mod connect;
pub mod nodes;
pub mod plan;
pub mod run;
pub mod serve;
pub mod validate;

use std::path::Path;

use remotemedia_core::manifest::{self, ManifestErrors, Pipeline};
use remotemedia_core::Registry;

/// Loads and validates a manifest file; relative paths in it (a `PythonNode`'s
/// `python_path`, `python`) are taken from the manifest's directory.
pub fn load_manifest(path: &Path, registry: &Registry) -> Result<Pipeline, ManifestErrors> {
    let mut pipeline = manifest::load_file(path, registry)?;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let base = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    if remotemedia_python::resolve_relative_paths(&mut pipeline, &base) {
        pipeline = manifest::validate_manifest(&pipeline.manifest, registry)?;
    }
    Ok(pipeline)
}

/// The node types this binary knows: the built-ins, the audio nodes and `PythonNode`
/// (the same registry the Python SDK runs manifests with).
pub fn registry() -> Registry {
    remotemedia_runtime::registry()
}
