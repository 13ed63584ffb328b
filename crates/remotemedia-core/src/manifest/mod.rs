//! Manifest v1: text (JSON or YAML) → raw serde types → validated [`Pipeline`].
//!
//! Validation reports every problem in one pass; see [`ManifestErrors`].

mod pipeline;
mod schema;
pub mod types;
mod validate;

use std::fmt;
use std::path::Path;

use serde::Serialize;

pub use pipeline::{NodeSpec, Pipeline};
pub(crate) use pipeline::{ResolvedFactories, SharedNames};
pub use schema::{json_schema, json_schema_for};
pub use types::{
    Arch, Capabilities, Connection, CpuRequirement, GpuRequirement, GpuType, ManifestV1, Metadata,
    NodeManifest, OnError, RetryPolicy, SUPPORTED_VERSIONS,
};
pub use validate::{validate_manifest, validate_value};

use crate::registry::Registry;

/// Text format of a manifest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// JSON.
    Json,
    /// YAML (a superset of JSON).
    Yaml,
}

impl Format {
    /// Picks the format from a file extension (`.json`, `.yaml`, `.yml`), or from the
    /// content when the extension says nothing: text starting with `{` is JSON.
    pub fn detect(path: Option<&Path>, text: &str) -> Format {
        match path
            .and_then(|p| p.extension())
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("json") => Format::Json,
            Some("yaml") | Some("yml") => Format::Yaml,
            _ => {
                if text.trim_start().starts_with('{') {
                    Format::Json
                } else {
                    Format::Yaml
                }
            }
        }
    }
}

/// One problem in a manifest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ManifestError {
    /// Where: `nodes[1].params.operation`, `connections[0].to`, or `$` for the whole file.
    pub path: String,
    /// What is wrong, naming the node or connection involved.
    pub message: String,
}

impl ManifestError {
    /// Creates an error.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Every problem found in a manifest, in document order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(transparent)]
pub struct ManifestErrors(pub Vec<ManifestError>);

impl fmt::Display for ManifestErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// Parses and validates manifest text.
pub fn load_str(
    text: &str,
    format: Format,
    registry: &Registry,
) -> Result<Pipeline, ManifestErrors> {
    let value = validate::parse_text(strip_bom(text), format)?;
    validate_value(&value, registry)
}

/// Reads, parses and validates a manifest file (format from the extension or content).
pub fn load_file(path: &Path, registry: &Registry) -> Result<Pipeline, ManifestErrors> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ManifestErrors(vec![ManifestError::new(
            "$",
            format!("cannot read {}: {e}", path.display()),
        )])
    })?;
    let text = strip_bom(&text);
    load_str(text, Format::detect(Some(path), text), registry)
}

/// Text without the UTF-8 byte-order mark some editors put in front.
fn strip_bom(text: &str) -> &str {
    text.strip_prefix('\u{feff}').unwrap_or(text)
}
