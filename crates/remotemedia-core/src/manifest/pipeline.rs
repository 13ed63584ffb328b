//! The validated pipeline: what the planner and executor consume.

use crate::graph::Graph;
use crate::registry::Params;

use super::types::{Capabilities, ManifestV1, OnError, RetryPolicy};

/// A node that passed validation.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeSpec {
    /// Unique id.
    pub id: String,
    /// Canonical registered type (aliases resolved).
    pub node_type: String,
    /// Params, validated against the type (empty when absent).
    pub params: Params,
    /// Declared capability requirements.
    pub capabilities: Option<Capabilities>,
    /// Explicit executor (`name:port`).
    pub host: Option<String>,
    /// Retry policy.
    pub retry: Option<RetryPolicy>,
    /// Per-item time limit.
    pub timeout_ms: Option<u64>,
    /// Failure policy.
    pub on_error: OnError,
    /// Whether the node keeps state between items (`stateful: true`).
    pub stateful: bool,
}

/// A manifest that passed every check: ids unique, types known, params valid, acyclic.
#[derive(Clone, Debug, PartialEq)]
pub struct Pipeline {
    /// Pipeline name.
    pub name: String,
    /// Optional description.
    pub description: Option<String>,
    /// Nodes in manifest order.
    pub nodes: Vec<NodeSpec>,
    /// Edges by node index, in manifest order.
    pub edges: Vec<(usize, usize)>,
    /// Adjacency and topological order.
    pub graph: Graph,
    /// The manifest as written (aliases unresolved), for re-serialization.
    pub manifest: ManifestV1,
}

impl Pipeline {
    /// Index of the node with this id.
    pub fn index_of(&self, id: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.id == id)
    }
}
