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

/// A stage as [`Plan::layout`] sees it: which nodes run in one loop, and how.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StageLayout {
    /// Manifest indices of its nodes, in chain order; the first is the head.
    pub nodes: Vec<usize>,
    /// How the head is scheduled: [`Execution::Inline`] stages share the compute
    /// threads, [`Execution::Dedicated`] ones run on threads of their own.
    pub execution: Execution,
    /// Whether the head is a source (the stage pulls its items from it).
    pub source: bool,
}

/// The grouping of nodes into stages, given how each node is scheduled: the one rule
/// behind both [`Plan::build`] and [`Plan::layout`].
struct Fusion {
    /// Node indices of each stage, in topological order of their heads.
    stages: Vec<Vec<usize>>,
    /// Stage index of each node.
    stage_of: Vec<usize>,
    /// Stages that receive the run's inputs.
    roots: Vec<usize>,
}

impl Fusion {
    fn of(pipeline: &Pipeline, execution: &[Execution], source: &[bool]) -> Fusion {
        let g = &pipeline.graph;
        let n = pipeline.nodes.len();
        let mut stage_of = vec![usize::MAX; n];
        let mut stages: Vec<Vec<usize>> = Vec::with_capacity(n);
        let mut roots = Vec::new();
        for &v in &g.topo {
            // Fuse into the only upstream node's stage when that node has no other
            // output and both run inline; the upstream node is then its stage's tail.
            let fuse_with = match g.preds[v].as_slice() {
                [p] if g.succs[*p].len() == 1
                    && execution[v] == Execution::Inline
                    && stages[stage_of[*p]]
                        .last()
                        .is_some_and(|&t| execution[t] == Execution::Inline) =>
                {
                    Some(stage_of[*p])
                }
                _ => None,
            };
            if tracing::enabled!(tracing::Level::DEBUG) {
                log_fusion(
                    pipeline, &stages, &stage_of, v, execution, source, fuse_with,
                );
            }
            match fuse_with {
                Some(s) => {
                    stage_of[v] = s;
                    stages[s].push(v);
                }
                None => {
                    stage_of[v] = stages.len();
                    // Sources make their own input; the run's inputs go elsewhere.
                    if g.preds[v].is_empty() && !source[v] {
                        roots.push(stages.len());
                    }
                    stages.push(vec![v]);
                }
            }
        }
        Fusion {
            stages,
            stage_of,
            roots,
        }
    }
}

impl Plan {
    /// Instantiates every node, in topological order, and groups them into stages.
    pub fn build(pipeline: &Pipeline, registry: &Registry) -> Result<Plan, RunError> {
        let g = &pipeline.graph;
        let n = pipeline.nodes.len();
        let mut planned: Vec<Option<PlannedNode>> = (0..n).map(|_| None).collect();
        for &v in &g.topo {
            planned[v] = Some(plan_node(pipeline, registry, v)?);
        }
        let execution: Vec<Execution> = planned
            .iter()
            .map(|p| p.as_ref().expect("every node planned").node.execution())
            .collect();
        let source: Vec<bool> = planned
            .iter()
            .map(|p| p.as_ref().expect("every node planned").source)
            .collect();
        let fusion = Fusion::of(pipeline, &execution, &source);

        let is_sink = |i: usize| g.succs[i].is_empty();
        let sinks: Vec<String> = (0..n)
            .filter(|&i| is_sink(i))
            .map(|i| pipeline.nodes[i].id.clone())
            .collect();
        let stages = fusion
            .stages
            .iter()
            .map(|members| {
                let head = members[0];
                let tail = *members.last().expect("non-empty stage");
                let targets = if is_sink(tail) {
                    vec![Target::Sink((0..tail).filter(|&i| is_sink(i)).count())]
                } else {
                    g.succs[tail]
                        .iter()
                        .map(|&s| Target::Stage {
                            stage: fusion.stage_of[s],
                            port: g.preds[s].iter().position(|&p| p == tail).expect("edge"),
                        })
                        .collect()
                };
                Stage {
                    nodes: members
                        .iter()
                        .map(|&v| planned[v].take().expect("a node is in one stage"))
                        .collect(),
                    input_ports: g.preds[head].len(),
                    targets,
                }
            })
            .collect();
        let plan = Plan {
            stages,
            roots: fusion.roots,
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

    /// The stages [`Plan::build`] would make, from what each node type declares
    /// ([`crate::NodeFactory::execution`], a `timeout_ms`) instead of from built nodes:
    /// nothing is instantiated and no model is loaded. For `remotemedia plan`.
    pub fn layout(pipeline: &Pipeline, registry: &Registry) -> Result<Vec<StageLayout>, RunError> {
        let n = pipeline.nodes.len();
        let mut execution = Vec::with_capacity(n);
        let mut source = Vec::with_capacity(n);
        for spec in &pipeline.nodes {
            let factory = registry
                .get(&spec.node_type)
                .ok_or_else(|| RunError::Build {
                    node_id: spec.id.clone(),
                    node_type: spec.node_type.clone(),
                    message: "node type is not registered".into(),
                })?;
            execution.push(if spec.timeout_ms.is_some() {
                TimedNode::EXECUTION
            } else {
                factory.execution(&spec.params)
            });
            source.push(factory.is_source());
        }
        let fusion = Fusion::of(pipeline, &execution, &source);
        Ok(fusion
            .stages
            .into_iter()
            .map(|nodes| StageLayout {
                execution: execution[nodes[0]],
                source: source[nodes[0]],
                nodes,
            })
            .collect())
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
    stages: &[Vec<usize>],
    stage_of: &[usize],
    v: usize,
    execution: &[Execution],
    source: &[bool],
    fuse_with: Option<usize>,
) {
    let g = &pipeline.graph;
    let node = pipeline.nodes[v].id.as_str();
    let dedicated = execution[v] == Execution::Dedicated;
    if let Some(s) = fuse_with {
        let upstream = stages[s]
            .last()
            .map_or("", |&t| pipeline.nodes[t].id.as_str());
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
        [] if source[v] => "a source: it pulls its own items".to_string(),
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
        execution = if dedicated { "dedicated" } else { "inline" },
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
    // What `Plan::layout` shows must be what runs.
    debug_assert!(
        spec.timeout_ms.is_some() || factory.execution(&spec.params) == node.execution(),
        "{}: its factory declares {:?} execution, its node says {:?}",
        spec.node_type,
        factory.execution(&spec.params),
        node.execution()
    );
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
