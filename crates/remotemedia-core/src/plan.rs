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
use crate::executor::NodeState;
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
    /// Whether the node is a source (see [`crate::NodeFactory::is_source`]): it heads
    /// its stage, which pulls from it instead of receiving the run's inputs.
    pub source: bool,
    /// Counters and lifecycle flags while the plan runs.
    pub(crate) state: NodeState,
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

    /// True when the head is a source: the stage pulls its items from it.
    pub fn is_source(&self) -> bool {
        self.nodes[0].source
    }
}

/// An executable plan.
#[derive(Debug)]
pub struct Plan {
    /// Stages in topological order of their heads.
    pub stages: Vec<Stage>,
    /// Stage indices that receive the run's inputs (stages without inputs, but for
    /// those headed by a source).
    pub roots: Vec<usize>,
    /// Node ids of the sinks, in manifest order (sink `i` of [`Target::Sink`]).
    pub sinks: Vec<String>,
    /// The pipeline's name (`metadata.name`), for the logs of its runs.
    pub pipeline: String,
}

impl Plan {
    /// Instantiates every node, in topological order, and groups them into stages.
    pub fn build(pipeline: &Pipeline, registry: &Registry) -> Result<Plan, RunError> {
        let g = &pipeline.graph;
        let n = pipeline.nodes.len();
        // Stage of each node; on the stack for the usual small pipelines.
        let mut stage_of_buf = [usize::MAX; 32];
        let mut stage_of_heap = Vec::new();
        let stage_of: &mut [usize] = if n <= stage_of_buf.len() {
            &mut stage_of_buf[..n]
        } else {
            stage_of_heap.resize(n, usize::MAX);
            &mut stage_of_heap
        };
        // Along a chain (one output feeding a node with one input) nodes may fuse.
        let chain_len = |mut v: usize| {
            let mut len = 1;
            while let [s] = g.succs[v].as_slice() {
                if g.preds[*s].len() != 1 {
                    break;
                }
                v = *s;
                len += 1;
            }
            len
        };

        let mut stages: Vec<Stage> = Vec::with_capacity(n);
        let mut roots = Vec::new();
        for &v in &g.topo {
            let planned = plan_node(pipeline, registry, v)?;
            // Fuse into the only upstream node's stage when that node has no other
            // output and both run inline; the upstream node is then its stage's tail.
            let fuse_with = match g.preds[v].as_slice() {
                [p] if g.succs[*p].len() == 1
                    && planned.node.execution() == Execution::Inline
                    && stages[stage_of[*p]]
                        .nodes
                        .last()
                        .is_some_and(|t| t.node.execution() == Execution::Inline) =>
                {
                    Some(stage_of[*p])
                }
                _ => None,
            };
            if tracing::enabled!(tracing::Level::DEBUG) {
                log_fusion(pipeline, &stages, stage_of, v, &planned, fuse_with);
            }
            match fuse_with {
                Some(s) => {
                    stage_of[v] = s;
                    stages[s].nodes.push(planned);
                }
                None => {
                    stage_of[v] = stages.len();
                    // Sources make their own input; the run's inputs go elsewhere.
                    if g.preds[v].is_empty() && !planned.source {
                        roots.push(stages.len());
                    }
                    let mut nodes = Vec::with_capacity(chain_len(v));
                    nodes.push(planned);
                    stages.push(Stage {
                        nodes,
                        input_ports: g.preds[v].len(),
                        targets: Vec::new(),
                    });
                }
            }
        }

        let is_sink = |i: usize| g.succs[i].is_empty();
        let sinks: Vec<String> = (0..n)
            .filter(|&i| is_sink(i))
            .map(|i| pipeline.nodes[i].id.clone())
            .collect();
        for stage in &mut stages {
            let tail = stage.nodes.last().expect("non-empty stage").index;
            stage.targets = if is_sink(tail) {
                vec![Target::Sink((0..tail).filter(|&i| is_sink(i)).count())]
            } else {
                g.succs[tail]
                    .iter()
                    .map(|&s| Target::Stage {
                        stage: stage_of[s],
                        port: g.preds[s].iter().position(|&p| p == tail).expect("edge"),
                    })
                    .collect()
            };
        }
        let plan = Plan {
            stages,
            roots,
            sinks,
            pipeline: pipeline.name.clone(),
        };
        tracing::info!(
            pipeline = %plan.pipeline,
            stages = plan.stages.len(),
            nodes = n,
            fused = %StageList(&plan),
            "plan built"
        );
        Ok(plan)
    }

    /// Stage chains as node ids, for inspection and tests.
    pub fn stage_ids(&self) -> Vec<Vec<&str>> {
        self.stages
            .iter()
            .map(|s| s.nodes.iter().map(|n| &*n.ctx.node_id).collect())
            .collect()
    }

    /// True when some stage is headed by a source.
    pub fn has_sources(&self) -> bool {
        self.stages.iter().any(Stage::is_source)
    }

    /// Number of nodes in the plan.
    pub fn node_count(&self) -> usize {
        self.stages.iter().map(|s| s.nodes.len()).sum()
    }

    /// True when every node is [`Execution::Inline`]: a finite run of such a plan needs
    /// no thread and no queue.
    pub fn is_all_inline(&self) -> bool {
        self.stages
            .iter()
            .flat_map(|s| &s.nodes)
            .all(|n| n.node.execution() == Execution::Inline)
    }

    /// Node ids and types in manifest order.
    pub fn node_names(&self) -> Vec<(Arc<str>, Arc<str>)> {
        let mut names = vec![(Arc::from(""), Arc::from("")); self.node_count()];
        for n in self.stages.iter().flat_map(|s| &s.nodes) {
            names[n.index] = (n.ctx.node_id.clone(), n.ctx.node_type.clone());
        }
        names
    }
}

/// `[a+b] [c]`: the plan's stages, each its fused chain.
struct StageList<'a>(&'a Plan);

impl std::fmt::Display for StageList<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, s) in self.0.stages.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "[{}]", crate::executor::NodeList(&s.nodes))?;
        }
        Ok(())
    }
}

/// Logs (at `debug`) why node `v` joins its upstream node's stage or starts one.
fn log_fusion(
    pipeline: &Pipeline,
    stages: &[Stage],
    stage_of: &[usize],
    v: usize,
    planned: &PlannedNode,
    fuse_with: Option<usize>,
) {
    let g = &pipeline.graph;
    let node = &*planned.ctx.node_id;
    let dedicated = planned.node.execution() == Execution::Dedicated;
    let execution = if dedicated { "dedicated" } else { "inline" };
    if let Some(s) = fuse_with {
        let upstream = stages[s].nodes.last().map_or("", |t| &*t.ctx.node_id);
        tracing::debug!(
            pipeline = %pipeline.name,
            node,
            stage = s,
            upstream,
            "fused: runs in its upstream node's loop (its only input, that node's only output, both inline)"
        );
        return;
    }
    let preds = &g.preds[v];
    let reason = match preds.as_slice() {
        [] if planned.source => "a source: it pulls its own items".to_string(),
        [] => "a root: it takes the run's input".to_string(),
        [_] if dedicated => {
            "dedicated (foreign runtime, blocking calls or timeout_ms): its stage runs on the dedicated pool".to_string()
        }
        [p] if g.succs[*p].len() > 1 => format!(
            "its upstream node `{}` fans out to {} nodes",
            pipeline.nodes[*p].id,
            g.succs[*p].len()
        ),
        [p] => format!(
            "its upstream node `{}` is dedicated, in stage {}",
            pipeline.nodes[*p].id, stage_of[*p]
        ),
        many => format!("fan-in of {} inputs", many.len()),
    };
    tracing::debug!(
        pipeline = %pipeline.name,
        node,
        stage = stages.len(),
        execution,
        reason = %reason,
        "new stage"
    );
}

/// Instantiates node `index` of `pipeline` with its context and policies.
fn plan_node(
    pipeline: &Pipeline,
    registry: &Registry,
    index: usize,
) -> Result<PlannedNode, RunError> {
    let spec = &pipeline.nodes[index];
    let build_err = |message: String| RunError::Build {
        node_id: spec.id.clone(),
        node_type: spec.node_type.clone(),
        message,
    };
    let preds = &pipeline.graph.preds[index];
    // The pipeline's shared names, unless its public fields were changed since.
    let names = pipeline.names.get(index).filter(|s| {
        *s.id == *spec.id
            && *s.node_type == *spec.node_type
            && s.inputs.len() == preds.len()
            && s.inputs
                .iter()
                .zip(preds)
                .all(|(a, &p)| **a == *pipeline.nodes[p].id)
    });
    // With unchanged names and the registry it was validated with, the pipeline knows
    // its factories already.
    let cached = names.and_then(|_| pipeline.factories.get(registry, index));
    let (factory, prepared) = match cached {
        Some(found) => found,
        None => (
            registry
                .get(&spec.node_type)
                .ok_or_else(|| build_err("node type is not registered".into()))?,
            None,
        ),
    };
    let mut node = match prepared {
        Some(p) => factory.create_prepared(p, &spec.params),
        None => factory.create(&spec.params),
    }
    .map_err(|e| build_err(e.to_string()))?;
    if let Some(ms) = spec.timeout_ms {
        node = Box::new(TimedNode::new(
            node,
            Arc::clone(factory),
            spec.params.clone(),
            std::time::Duration::from_millis(ms),
        ));
    }
    let ctx = match names {
        Some(s) => NodeContext {
            node_id: Arc::clone(&s.id),
            node_type: Arc::clone(&s.node_type),
            inputs: Arc::clone(&s.inputs),
        },
        None => NodeContext {
            node_id: spec.id.as_str().into(),
            node_type: spec.node_type.as_str().into(),
            inputs: preds
                .iter()
                .map(|&p| Arc::from(pipeline.nodes[p].id.as_str()))
                .collect(),
        },
    };
    Ok(PlannedNode {
        index,
        ctx,
        node,
        retry: spec.retry.clone(),
        on_error: spec.on_error,
        source: factory.is_source(),
        state: NodeState::default(),
    })
}
