//! The validated pipeline: what the planner and executor consume.

use std::sync::Arc;

use crate::graph::Graph;
use crate::registry::{NodeFactory, Params, Prepared, Registry};

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
    /// Per node, its names as shared strings, so that every plan built from this
    /// pipeline shares them instead of copying (checked against `nodes` before use).
    pub(crate) names: Vec<SharedNames>,
    /// The factories the nodes' types resolved to during validation.
    pub(crate) factories: ResolvedFactories,
}

/// Per node, the factory its type resolved to in the registry a pipeline was validated
/// with, so that planning against the same registry looks nothing up again.
#[derive(Clone, Default)]
pub(crate) struct ResolvedFactories {
    /// [`Registry::generation`] of that registry.
    ///
    /// [`Registry::generation`]: crate::registry::Registry
    pub(crate) generation: u64,
    pub(crate) factories: Vec<Arc<dyn NodeFactory>>,
    /// Per node, its params as its factory prepared them at validation, if it did.
    pub(crate) prepared: Vec<Option<Prepared>>,
}

impl ResolvedFactories {
    /// Node `index`'s factory, if `registry` is the one the pipeline was validated with.
    pub(crate) fn get(
        &self,
        registry: &Registry,
        index: usize,
    ) -> Option<(&Arc<dyn NodeFactory>, Option<&Prepared>)> {
        if self.generation != registry.generation() {
            return None;
        }
        let factory = self.factories.get(index)?;
        Some((factory, self.prepared.get(index).and_then(Option::as_ref)))
    }
}

impl std::fmt::Debug for ResolvedFactories {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResolvedFactories")
            .field("generation", &self.generation)
            .field("nodes", &self.factories.len())
            .finish()
    }
}

impl PartialEq for ResolvedFactories {
    /// A cache: it never makes two pipelines differ.
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

/// A node's id, type and upstream ids as shared strings (see [`NodeContext`]).
///
/// [`NodeContext`]: crate::node::NodeContext
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct SharedNames {
    pub(crate) id: Arc<str>,
    pub(crate) node_type: Arc<str>,
    pub(crate) inputs: Arc<[Arc<str>]>,
}

impl SharedNames {
    /// Names of every node of a validated node list and graph.
    pub(crate) fn of(nodes: &[NodeSpec], graph: &Graph) -> Vec<SharedNames> {
        let ids: Vec<Arc<str>> = nodes.iter().map(|n| Arc::from(n.id.as_str())).collect();
        nodes
            .iter()
            .enumerate()
            .map(|(i, n)| SharedNames {
                id: Arc::clone(&ids[i]),
                node_type: Arc::from(n.node_type.as_str()),
                inputs: graph.preds[i]
                    .iter()
                    .map(|&p| Arc::clone(&ids[p]))
                    .collect(),
            })
            .collect()
    }
}

impl Pipeline {
    /// Index of the node with this id.
    pub fn index_of(&self, id: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.id == id)
    }
}
