//! Planner: validated pipeline → node instances grouped into stages.
//!
//! A stage is a maximal chain of inline nodes fused into one loop: node `n` joins the
//! stage of its upstream node `p` when `p` is `n`'s only input, `n` is `p`'s only
//! output, and both are [`Execution::Inline`]. Every other edge (fan-out, fan-in, a
//! dedicated node such as a foreign interpreter or a node with a time limit) is a
//! stage boundary, crossed by a bounded queue of batches.

use std::sync::Arc;

use crate::error::RunError;
use crate::executor::timeout::TimedNode;
use crate::manifest::{OnError, Pipeline, RetryPolicy};
use crate::node::{Execution, Node, NodeContext};
use crate::registry::Registry;

/// A node instance with what the executor needs to run it.
pub struct PlannedNode {
    /// Index in the manifest.
    pub index: usize,
    /// Lifecycle context (id, type, upstream ids).
    pub ctx: NodeContext,
    /// The instance.
    pub node: Box<dyn Node>,
    /// Retry policy.
    pub retry: Option<RetryPolicy>,
    /// Failure policy.
    pub on_error: OnError,
}

impl std::fmt::Debug for PlannedNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlannedNode")
            .field("id", &self.ctx.node_id)
            .field("type", &self.ctx.node_type)
            .finish()
    }
}

/// Where a stage's output goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// Input `port` of stage `stage`.
    Stage {
        /// Stage index.
        stage: usize,
        /// Port on the stage's head node.
        port: usize,
    },
    /// The run's output for sink number `sink`.
    Sink(usize),
}

/// A fused chain of nodes.
#[derive(Debug)]
pub struct Stage {
    /// Nodes in chain order; the first is the head.
    pub nodes: Vec<PlannedNode>,
    /// Number of input ports of the head (0 for a root: it gets the run's inputs).
    pub input_ports: usize,
    /// Where the tail's outputs go.
    pub targets: Vec<Target>,
}

impl Stage {
    /// Manifest index of the head node.
    pub fn head(&self) -> usize {
        self.nodes[0].index
    }
}

/// An executable plan.
#[derive(Debug)]
pub struct Plan {
    /// Stages in topological order of their heads.
    pub stages: Vec<Stage>,
    /// Stage indices that receive the run's inputs.
    pub roots: Vec<usize>,
    /// Node ids of the sinks, in manifest order (sink `i` of [`Target::Sink`]).
    pub sinks: Vec<String>,
    /// Node ids and types in manifest order, for metrics.
    pub node_names: Vec<(String, String)>,
}

impl Plan {
    /// Instantiates every node and groups them into stages.
    pub fn build(pipeline: &Pipeline, registry: &Registry) -> Result<Plan, RunError> {
        let g = &pipeline.graph;
        let n = pipeline.nodes.len();
        let mut instances: Vec<Option<PlannedNode>> = Vec::with_capacity(n);
        let mut inline = Vec::with_capacity(n);
        for (index, spec) in pipeline.nodes.iter().enumerate() {
            let build_err = |message: String| RunError::Build {
                node_id: spec.id.clone(),
                node_type: spec.node_type.clone(),
                message,
            };
            let factory = registry
                .get(&spec.node_type)
                .ok_or_else(|| build_err("node type is not registered".into()))?;
            let mut node = factory
                .create(&spec.params)
                .map_err(|e| build_err(e.to_string()))?;
            if let Some(ms) = spec.timeout_ms {
                node = Box::new(TimedNode::new(
                    node,
                    Arc::clone(factory),
                    spec.params.clone(),
                    std::time::Duration::from_millis(ms),
                ));
            }
            inline.push(node.execution() == Execution::Inline);
            let inputs = g.preds[index]
                .iter()
                .map(|&p| pipeline.nodes[p].id.clone())
                .collect();
            instances.push(Some(PlannedNode {
                index,
                ctx: NodeContext {
                    node_id: spec.id.clone(),
                    node_type: spec.node_type.clone(),
                    inputs,
                },
                node,
                retry: spec.retry.clone(),
                on_error: spec.on_error,
            }));
        }

        let mut stage_of = vec![usize::MAX; n];
        let mut chains: Vec<Vec<usize>> = Vec::new();
        for &v in &g.topo {
            let fuse_with = match g.preds[v].as_slice() {
                [p] if g.succs[*p].len() == 1 && inline[*p] && inline[v] => Some(stage_of[*p]),
                _ => None,
            };
            match fuse_with {
                Some(s) => {
                    chains[s].push(v);
                    stage_of[v] = s;
                }
                None => {
                    stage_of[v] = chains.len();
                    chains.push(vec![v]);
                }
            }
        }

        let sink_nodes: Vec<usize> = g.sinks().collect();
        let mut stages = Vec::with_capacity(chains.len());
        let mut roots = Vec::new();
        for (si, chain) in chains.iter().enumerate() {
            let head = chain[0];
            let tail = *chain.last().expect("non-empty chain");
            if g.preds[head].is_empty() {
                roots.push(si);
            }
            let targets = if g.succs[tail].is_empty() {
                let sink = sink_nodes
                    .iter()
                    .position(|&s| s == tail)
                    .expect("tail is a sink");
                vec![Target::Sink(sink)]
            } else {
                g.succs[tail]
                    .iter()
                    .map(|&s| Target::Stage {
                        stage: stage_of[s],
                        port: g.preds[s].iter().position(|&p| p == tail).expect("edge"),
                    })
                    .collect()
            };
            stages.push(Stage {
                nodes: chain
                    .iter()
                    .map(|&i| instances[i].take().expect("each node in one stage"))
                    .collect(),
                input_ports: g.preds[head].len(),
                targets,
            });
        }
        Ok(Plan {
            stages,
            roots,
            sinks: sink_nodes
                .iter()
                .map(|&s| pipeline.nodes[s].id.clone())
                .collect(),
            node_names: pipeline
                .nodes
                .iter()
                .map(|s| (s.id.clone(), s.node_type.clone()))
                .collect(),
        })
    }

    /// Stage chains as node ids, for inspection and tests.
    pub fn stage_ids(&self) -> Vec<Vec<&str>> {
        self.stages
            .iter()
            .map(|s| s.nodes.iter().map(|n| n.ctx.node_id.as_str()).collect())
            .collect()
    }
}
