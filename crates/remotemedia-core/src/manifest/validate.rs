//! Raw manifest → validated pipeline, collecting every problem.

use serde_json::Value;

use super::types::ManifestV1;
use super::{Format, ManifestError, ManifestErrors, NodeSpec, Pipeline};
use crate::graph::Graph;
use crate::registry::Registry;

pub(super) fn parse_text(text: &str, format: Format) -> Result<Value, ManifestErrors> {
    let parsed = match format {
        Format::Json => serde_json::from_str::<Value>(text).map_err(|e| e.to_string()),
        Format::Yaml => serde_yaml_ng::from_str::<Value>(text).map_err(|e| e.to_string()),
    };
    parsed.map_err(|m| ManifestErrors(vec![ManifestError::new("$", m)]))
}

/// Validates a parsed manifest document.
pub fn validate_value(value: &Value, registry: &Registry) -> Result<Pipeline, ManifestErrors> {
    let manifest: ManifestV1 = serde_json::from_value(value.clone())
        .map_err(|e| ManifestErrors(vec![ManifestError::new("$", e.to_string())]))?;
    validate_manifest(&manifest, registry)
}

/// Validates a manifest already in its typed form.
pub fn validate_manifest(m: &ManifestV1, registry: &Registry) -> Result<Pipeline, ManifestErrors> {
    let mut errors = Vec::new();
    let mut nodes = Vec::new();
    for (i, n) in m.nodes.iter().enumerate() {
        let Some(f) = registry.get(&n.node_type) else {
            errors.push(ManifestError::new(
                format!("nodes[{i}].node_type"),
                "unknown",
            ));
            continue;
        };
        let params = n.params.clone().unwrap_or_default();
        for issue in f.validate(&params) {
            errors.push(ManifestError::new(
                format!("nodes[{i}].params.{}", issue.path),
                issue.message,
            ));
        }
        nodes.push(NodeSpec {
            id: n.id.clone(),
            node_type: f.doc().node_type.to_string(),
            params,
            capabilities: n.capabilities.clone(),
            host: n.host.clone(),
            retry: n.retry.clone(),
            timeout_ms: n.timeout_ms,
            on_error: n.on_error.unwrap_or_default(),
        });
    }
    let mut edges = Vec::new();
    for c in &m.connections {
        let f = nodes.iter().position(|n| n.id == c.from);
        let t = nodes.iter().position(|n| n.id == c.to);
        if let (Some(f), Some(t)) = (f, t) {
            edges.push((f, t));
        } else {
            errors.push(ManifestError::new("connections", "missing node"));
        }
    }
    if !errors.is_empty() {
        return Err(ManifestErrors(errors));
    }
    let graph = Graph::new(nodes.len(), &edges)
        .map_err(|_| ManifestErrors(vec![ManifestError::new("connections", "cycle")]))?;
    Ok(Pipeline {
        name: m.metadata.name.clone(),
        description: m.metadata.description.clone(),
        nodes,
        edges,
        graph,
        manifest: m.clone(),
    })
}
