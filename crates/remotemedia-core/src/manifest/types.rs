//! Manifest v1 as written by users (the serde "raw" stage). These types also generate
//! `schemas/manifest.v1.json`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Manifest versions this build understands.
pub const SUPPORTED_VERSIONS: [&str; 1] = ["v1"];

/// A pipeline manifest, version 1.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "remotemedia pipeline manifest v1")]
pub struct ManifestV1 {
    /// The JSON Schema this file follows (e.g. a path or URL of
    /// `schemas/manifest.v1.json`), for editors; the runtime does not read it.
    #[serde(rename = "$schema", default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    /// Manifest format version; `"v1"`.
    pub version: String,
    /// Pipeline name and description.
    pub metadata: Metadata,
    /// The nodes of the graph (at least one).
    pub nodes: Vec<NodeManifest>,
    /// Edges `from` → `to` between node ids; every item `from` emits reaches `to`
    /// (left out, empty or null: none).
    #[serde(default, deserialize_with = "null_as_empty")]
    #[schemars(with = "Option<Vec<Connection>>")]
    pub connections: Vec<Connection>,
}

/// A list that may be written as `null` (an empty YAML key).
fn null_as_empty<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Vec<T>, D::Error> {
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

/// Descriptive metadata.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Metadata {
    /// Pipeline name.
    pub name: String,
    /// What the pipeline does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Creation time (free text, usually RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    /// Params a live-session client may set when it starts a session, as
    /// `node_id.param` (e.g. `vad.threshold`); no other param can be changed by a
    /// client (left out, empty or null: none).
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "Vec::is_empty"
    )]
    #[schemars(with = "Option<Vec<String>>")]
    pub overridable: Vec<String>,
}

/// One node of the graph.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NodeManifest {
    /// Unique id, matching `^[A-Za-z0-9_-]+$`.
    #[schemars(regex(pattern = r"^[A-Za-z0-9_-]+$"))]
    pub id: String,
    /// Registered node type (`remotemedia nodes list`).
    pub node_type: String,
    /// Parameters of the node type (`remotemedia nodes info TYPE`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<Map<String, Value>>,
    /// What the node needs to run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<Capabilities>,
    /// Executor to run on, as `name:port`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Retry failed items with exponential backoff.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryPolicy>,
    /// Per-item time limit in milliseconds (at most one hour).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 3_600_000))]
    pub timeout_ms: Option<u64>,
    /// What a failed item does to the run: `fail` (default) stops it, `skip` records
    /// the error and goes on with the next item.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_error: Option<OnError>,
    /// `true` when the node keeps state between items (a counter, a model context).
    /// Such a node cannot be moved between executors mid-stream without losing that
    /// state: on failover its state restarts and the run reports it (default `false`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stateful: Option<bool>,
}

/// Edge between two nodes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Connection {
    /// Upstream node id.
    pub from: String,
    /// Downstream node id.
    pub to: String,
}

/// What a node needs from the machine it runs on.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Capabilities {
    /// GPU requirement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu: Option<GpuRequirement>,
    /// CPU requirement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<CpuRequirement>,
    /// Memory in GB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0))]
    pub memory_gb: Option<f64>,
}

/// GPU requirement.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GpuRequirement {
    /// GPU API / vendor family.
    #[serde(rename = "type")]
    pub gpu_type: GpuType,
    /// Minimum GPU memory in GB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0))]
    pub min_memory_gb: Option<f64>,
    /// `false`: run on CPU when no GPU is available (default `true`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required: Option<bool>,
}

/// GPU API / vendor family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum GpuType {
    /// NVIDIA CUDA.
    Cuda,
    /// AMD ROCm.
    Rocm,
    /// Apple Metal.
    Metal,
    /// Vulkan compute.
    Vulkan,
    /// Any GPU.
    Any,
}

/// Names of [`GpuType`] values.
pub const GPU_TYPES: [&str; 5] = ["cuda", "rocm", "metal", "vulkan", "any"];

/// CPU requirement.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CpuRequirement {
    /// Minimum number of cores.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub cores: Option<u32>,
    /// Required architecture.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arch: Option<Arch>,
}

/// CPU architecture.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Arch {
    /// 64-bit x86.
    #[serde(rename = "x86_64")]
    X86_64,
    /// 64-bit ARM.
    Aarch64,
    /// 32-bit ARM.
    Arm,
    /// Any architecture.
    Any,
}

/// Names of [`Arch`] values.
pub const ARCHES: [&str; 4] = ["x86_64", "aarch64", "arm", "any"];

/// Most retries a policy may ask for.
pub const MAX_RETRIES: u64 = 100;
/// Longest back-off a policy may ask for, in milliseconds (ten minutes).
pub const MAX_BACKOFF_MS: u64 = 600_000;
/// Longest per-item time limit, in milliseconds (one hour).
pub const MAX_TIMEOUT_MS: u64 = 3_600_000;

/// Per-item retry with exponential backoff. Counts and waits are bounded (see
/// [`MAX_RETRIES`], [`MAX_BACKOFF_MS`]) so that no manifest holds a run, or an
/// executor's slot, for days.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RetryPolicy {
    /// Retries after the first attempt (0 = no retry, at most 100).
    #[schemars(range(max = 100))]
    pub max_retries: u32,
    /// Wait before the first retry, in milliseconds (default 100, at most 600000).
    #[serde(default = "default_initial_backoff_ms")]
    #[schemars(range(max = 600_000))]
    pub initial_backoff_ms: u64,
    /// Factor applied to the wait after each retry (default 2.0, at least 1.0).
    #[serde(default = "default_multiplier")]
    #[schemars(range(min = 1.0))]
    pub multiplier: f64,
    /// Longest wait between retries, in milliseconds (default 10000, at most 600000).
    #[serde(default = "default_max_backoff_ms")]
    #[schemars(range(max = 600_000))]
    pub max_backoff_ms: u64,
}

fn default_initial_backoff_ms() -> u64 {
    100
}
fn default_multiplier() -> f64 {
    2.0
}
fn default_max_backoff_ms() -> u64 {
    10_000
}

impl RetryPolicy {
    /// The wait before retry number `retry` (1-based).
    pub fn backoff(&self, retry: u32) -> std::time::Duration {
        let factor = self
            .multiplier
            .max(1.0)
            .powi(retry.saturating_sub(1) as i32);
        let ms = (self.initial_backoff_ms as f64 * factor).min(self.max_backoff_ms as f64);
        std::time::Duration::from_micros((ms * 1000.0) as u64)
    }
}

/// What a failed item does to the run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OnError {
    /// Stop the run with the error (default).
    #[default]
    Fail,
    /// Record the error and continue with the next item.
    Skip,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_caps() {
        let p = RetryPolicy {
            max_retries: 5,
            initial_backoff_ms: 10,
            multiplier: 3.0,
            max_backoff_ms: 50,
        };
        assert_eq!(p.backoff(1).as_millis(), 10);
        assert_eq!(p.backoff(2).as_millis(), 30);
        assert_eq!(p.backoff(3).as_millis(), 50);
    }
}
