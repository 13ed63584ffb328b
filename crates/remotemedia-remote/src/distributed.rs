//! Turning a placement into something the local executor can run.
//!
//! Each [`RemoteGroup`] of the placement is collapsed into one node of type
//! [`REMOTE_STAGE_TYPE`] — a [`RemoteStage`] that streams the group's sub-graph to its
//! executor — keeping the id of the group's last node, so sinks keep their names. Every
//! other node runs locally as before; a local node that has compatible executors is
//! wrapped so that, should it fail to initialize for lack of resources
//! ([`ErrorKind::Resource`]), it moves to the first of them. The result is an ordinary
//! [`Pipeline`] and [`Registry`] for [`remotemedia_core::plan::Plan::build`].

use std::collections::HashMap;
use std::sync::Arc;

use remotemedia_core::manifest::{
    validate_manifest, Connection, ManifestV1, Metadata, NodeManifest, Pipeline,
};
use remotemedia_core::placement::{Placement, RemoteGroup, Target};
use remotemedia_core::registry::{NodeDoc, NodeFactory, Params, Prepared};
use remotemedia_core::{
    Data, ErrorKind, Execution, ItemError, Node, NodeContext, NodeError, Registry,
};

use crate::client::Endpoint;
use crate::error::RemoteError;
use crate::stage::{Candidate, GroupSpec, RemoteEvent, RemoteStage, RunReport, StageOptions};

/// Node type of the collapsed remote groups.
pub const REMOTE_STAGE_TYPE: &str = "RemoteStage";

/// A pipeline ready to run with its remote parts.
#[derive(Debug)]
pub struct DistributedPipeline {
    /// The pipeline with every remote group collapsed into a `RemoteStage` node.
    pub pipeline: Pipeline,
    /// The node types to build it with.
    pub registry: Registry,
    /// The remote sub-graphs, by group index.
    pub groups: Vec<Arc<GroupSpec>>,
    /// Where failovers, restarts and fallbacks are recorded during the run.
    pub report: RunReport,
}

/// Builds the runnable pipeline for `placement`. `endpoints[i]` is how to reach the
/// executor at index `i` of the placement's executor list.
pub fn distribute(
    pipeline: &Pipeline,
    registry: &Registry,
    placement: &Placement,
    endpoints: &[Endpoint],
    options: StageOptions,
) -> Result<DistributedPipeline, RemoteError> {
    let n = pipeline.nodes.len();
    let g = &pipeline.graph;
    let mut group_of: Vec<Option<usize>> = vec![None; n];
    for (k, grp) in placement.groups.iter().enumerate() {
        for &v in &grp.nodes {
            group_of[v] = Some(k);
        }
    }
    let tail_id = |k: usize| -> &str {
        let tail = *placement.groups[k].nodes.last().expect("non-empty group");
        &pipeline.nodes[tail].id
    };
    let manifest_node = |i: usize| -> NodeManifest {
        let mut m = pipeline
            .manifest
            .nodes
            .iter()
            .find(|m| m.id == pipeline.nodes[i].id)
            .cloned()
            .expect("every node is in the manifest");
        m.host = None;
        m
    };

    // The sub-graphs.
    let mut groups = Vec::with_capacity(placement.groups.len());
    for (k, grp) in placement.groups.iter().enumerate() {
        let spec = group_spec(pipeline, placement, endpoints, k, grp, &manifest_node)?;
        tracing::debug!(
            pipeline = %pipeline.name,
            group = k,
            nodes = %spec.label(),
            candidates = ?spec.candidates.iter().map(|c| match c {
                Candidate::Remote(e) => e.name.as_str(),
                Candidate::Local => "local",
            }).collect::<Vec<_>>(),
            stateful = ?spec.stateful_nodes,
            "remote stage: these nodes travel as one stream, failing over in this order"
        );
        groups.push(Arc::new(spec));
    }

    // The collapsed manifest.
    let mut nodes = Vec::with_capacity(n);
    for (i, spec) in pipeline.nodes.iter().enumerate() {
        match group_of[i] {
            None => nodes.push(manifest_node(i)),
            Some(k) if spec.id == tail_id(k) => {
                let mut params = Params::new();
                params.insert("group".into(), (k as u64).into());
                nodes.push(NodeManifest {
                    id: spec.id.clone(),
                    node_type: REMOTE_STAGE_TYPE.into(),
                    params: Some(params),
                    capabilities: None,
                    host: None,
                    retry: None,
                    timeout_ms: None,
                    on_error: None,
                    stateful: None,
                });
            }
            Some(_) => {}
        }
    }
    let mut connections = Vec::new();
    for &(from, to) in &pipeline.edges {
        if group_of[from].is_some() && group_of[from] == group_of[to] {
            continue;
        }
        let id = |v: usize| match group_of[v] {
            Some(k) => tail_id(k).to_string(),
            None => pipeline.nodes[v].id.clone(),
        };
        connections.push(Connection {
            from: id(from),
            to: id(to),
        });
    }
    let manifest = ManifestV1 {
        schema: None,
        version: "v1".into(),
        metadata: pipeline.manifest.metadata.clone(),
        nodes,
        connections,
    };

    // Node types: the local ones (wrapped for fallback where an executor could take
    // over) plus the remote stage.
    let report = RunReport::default();
    let options = Arc::new(options);
    let mut fallbacks = HashMap::new();
    for (i, p) in placement.nodes.iter().enumerate() {
        if p.target != Target::Local || p.alternatives.is_empty() {
            continue;
        }
        let spec = GroupSpec {
            node_ids: vec![p.node_id.clone()],
            stateful_nodes: Vec::new(),
            manifest_json: sub_manifest(pipeline, &[i], &manifest_node)?,
            head_inputs: g.preds[i]
                .iter()
                .map(|&u| pipeline.nodes[u].id.clone())
                .collect(),
            candidates: p
                .alternatives
                .iter()
                .map(|&e| Candidate::Remote(endpoints[e].clone()))
                .collect(),
        };
        fallbacks.insert(p.node_id.clone(), Arc::new(spec));
    }
    let fallbacks = Arc::new(fallbacks);
    let mut local = Registry::new();
    for doc in registry.docs() {
        let Some(factory) = registry.get(doc.node_type) else {
            continue;
        };
        if fallbacks.is_empty() {
            local.register(Arc::clone(factory));
        } else {
            local.register(Arc::new(FallbackFactory {
                inner: Arc::clone(factory),
                fallbacks: Arc::clone(&fallbacks),
                options: Arc::clone(&options),
                report: report.clone(),
            }));
        }
    }
    local.register(Arc::new(RemoteStageFactory::new(
        groups.clone(),
        Arc::clone(&options),
        report.clone(),
    )));
    let collapsed = validate_manifest(&manifest, &local)
        .map_err(|e| RemoteError::Config(format!("cannot build the distributed pipeline:\n{e}")))?;
    Ok(DistributedPipeline {
        pipeline: collapsed,
        registry: local,
        groups,
        report,
    })
}

fn sub_manifest(
    pipeline: &Pipeline,
    chain: &[usize],
    manifest_node: &dyn Fn(usize) -> NodeManifest,
) -> Result<String, RemoteError> {
    let ids: Vec<&str> = chain
        .iter()
        .map(|&v| pipeline.nodes[v].id.as_str())
        .collect();
    let m = ManifestV1 {
        schema: None,
        version: "v1".into(),
        metadata: Metadata {
            name: format!("{}/{}", pipeline.name, ids.join("+")),
            description: None,
            created_at: None,
            overridable: Vec::new(),
        },
        nodes: chain.iter().map(|&v| manifest_node(v)).collect(),
        connections: ids
            .windows(2)
            .map(|w| Connection {
                from: w[0].to_string(),
                to: w[1].to_string(),
            })
            .collect(),
    };
    serde_json::to_string(&m).map_err(|e| RemoteError::Config(e.to_string()))
}

fn group_spec(
    pipeline: &Pipeline,
    placement: &Placement,
    endpoints: &[Endpoint],
    k: usize,
    grp: &RemoteGroup,
    manifest_node: &dyn Fn(usize) -> NodeManifest,
) -> Result<GroupSpec, RemoteError> {
    let g = &pipeline.graph;
    let head = grp.nodes[0];
    let endpoint = endpoints.get(grp.executor).ok_or_else(|| {
        RemoteError::Config(format!(
            "group {k}: no endpoint for executor {}",
            grp.executor
        ))
    })?;
    // Executors able to take every node of the group, in the head's order of preference.
    let alternatives: Vec<usize> = placement.nodes[head]
        .alternatives
        .iter()
        .copied()
        .filter(|e| {
            grp.nodes
                .iter()
                .all(|&v| placement.nodes[v].alternatives.contains(e))
        })
        .collect();
    let mut candidates = vec![Candidate::Remote(endpoint.clone())];
    candidates.extend(
        alternatives
            .iter()
            .filter_map(|&e| endpoints.get(e).cloned().map(Candidate::Remote)),
    );
    if grp.nodes.iter().all(|&v| placement.nodes[v].local_ok) {
        candidates.push(Candidate::Local);
    }
    // Upstream ids as the collapsed graph names them.
    let collapsed_id = |u: usize| -> String {
        placement
            .groups
            .iter()
            .find(|o| o.nodes.contains(&u))
            .map(|o| {
                pipeline.nodes[*o.nodes.last().expect("non-empty")]
                    .id
                    .clone()
            })
            .unwrap_or_else(|| pipeline.nodes[u].id.clone())
    };
    Ok(GroupSpec {
        node_ids: grp
            .nodes
            .iter()
            .map(|&v| pipeline.nodes[v].id.clone())
            .collect(),
        stateful_nodes: grp
            .nodes
            .iter()
            .filter(|&&v| pipeline.nodes[v].stateful)
            .map(|&v| pipeline.nodes[v].id.clone())
            .collect(),
        manifest_json: sub_manifest(pipeline, &grp.nodes, manifest_node)?,
        head_inputs: g.preds[head].iter().map(|&u| collapsed_id(u)).collect(),
        candidates,
    })
}

/// Builds [`RemoteStage`]s for the groups of one distributed pipeline.
struct RemoteStageFactory {
    doc: std::sync::Arc<NodeDoc>,
    groups: Vec<Arc<GroupSpec>>,
    options: Arc<StageOptions>,
    report: RunReport,
}

impl RemoteStageFactory {
    fn new(groups: Vec<Arc<GroupSpec>>, options: Arc<StageOptions>, report: RunReport) -> Self {
        Self {
            doc: NodeDoc::with_params::<RemoteStageParams>(
                REMOTE_STAGE_TYPE,
                &[],
                "A sub-graph placed on a remote executor (built by the planner).",
                "what the sub-graph's first node accepts",
                "what its last node emits",
            ),
            groups,
            options,
            report,
        }
    }
}

/// Params of a `RemoteStage` node (written by the planner, never by users).
#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // read from the params as written
struct RemoteStageParams {
    /// Index of the placed group.
    group: u64,
}

impl NodeFactory for RemoteStageFactory {
    fn doc(&self) -> &NodeDoc {
        &self.doc
    }

    fn validate(&self, params: &Params) -> Vec<remotemedia_core::ParamIssue> {
        self.doc.check(params)
    }

    fn create(&self, params: &Params) -> Result<Box<dyn Node>, NodeError> {
        let k = params
            .get("group")
            .and_then(|v| v.as_u64())
            .and_then(|k| usize::try_from(k).ok())
            .filter(|&k| k < self.groups.len())
            .ok_or_else(|| NodeError::new(ErrorKind::Config, "no such remote group"))?;
        Ok(Box::new(RemoteStage::new(
            Arc::clone(&self.groups[k]),
            Arc::clone(&self.options),
            self.report.clone(),
        )))
    }

    fn execution(&self, _params: &Params) -> Execution {
        RemoteStage::EXECUTION
    }
}

/// Wraps a local node type so that a node failing to initialize for lack of resources
/// moves to a compatible executor.
struct FallbackFactory {
    inner: Arc<dyn NodeFactory>,
    fallbacks: Arc<HashMap<String, Arc<GroupSpec>>>,
    options: Arc<StageOptions>,
    report: RunReport,
}

impl NodeFactory for FallbackFactory {
    fn doc(&self) -> &NodeDoc {
        self.inner.doc()
    }

    fn validate(&self, params: &Params) -> Vec<remotemedia_core::ParamIssue> {
        self.inner.validate(params)
    }

    fn prepare(
        &self,
        params: &Params,
    ) -> Result<Option<Prepared>, Vec<remotemedia_core::ParamIssue>> {
        self.inner.prepare(params)
    }

    fn create(&self, params: &Params) -> Result<Box<dyn Node>, NodeError> {
        Ok(self.wrap(self.inner.create(params)?))
    }

    fn create_prepared(
        &self,
        prepared: &Prepared,
        params: &Params,
    ) -> Result<Box<dyn Node>, NodeError> {
        Ok(self.wrap(self.inner.create_prepared(prepared, params)?))
    }

    fn executes_client_code(&self) -> bool {
        self.inner.executes_client_code()
    }

    fn execution(&self, params: &Params) -> Execution {
        self.inner.execution(params)
    }
}

impl FallbackFactory {
    fn wrap(&self, inner: Box<dyn Node>) -> Box<dyn Node> {
        Box::new(FallbackNode {
            inner,
            remote: None,
            fallbacks: Arc::clone(&self.fallbacks),
            options: Arc::clone(&self.options),
            report: self.report.clone(),
        })
    }
}

/// A local node that may move to an executor at initialize.
struct FallbackNode {
    inner: Box<dyn Node>,
    remote: Option<RemoteStage>,
    fallbacks: Arc<HashMap<String, Arc<GroupSpec>>>,
    options: Arc<StageOptions>,
    report: RunReport,
}

impl FallbackNode {
    fn active(&mut self) -> &mut dyn Node {
        match &mut self.remote {
            Some(r) => r,
            None => self.inner.as_mut(),
        }
    }
}

impl Node for FallbackNode {
    fn initialize(&mut self, ctx: &NodeContext) -> Result<(), NodeError> {
        let err = match self.inner.initialize(ctx) {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        let spec = match self.fallbacks.get(&*ctx.node_id) {
            Some(s) if err.kind == ErrorKind::Resource => Arc::clone(s),
            _ => return Err(err),
        };
        let _ = self.inner.cleanup();
        let mut remote = RemoteStage::new(spec, Arc::clone(&self.options), self.report.clone());
        remote.initialize(ctx).map_err(|e| {
            NodeError::new(
                e.kind,
                format!("{} (it first failed locally: {err})", e.message),
            )
        })?;
        self.report.push(RemoteEvent::Fallback {
            node: ctx.node_id.to_string(),
            to: remote
                .current()
                .map(|c| match c {
                    Candidate::Remote(e) => e.name.clone(),
                    Candidate::Local => "local".into(),
                })
                .unwrap_or_default(),
            reason: err.to_string(),
        });
        self.remote = Some(remote);
        Ok(())
    }

    fn process(&mut self, item: Data, out: &mut Vec<Data>) -> Result<(), NodeError> {
        self.active().process(item, out)
    }

    fn process_from(
        &mut self,
        port: usize,
        item: Data,
        out: &mut Vec<Data>,
    ) -> Result<(), NodeError> {
        self.active().process_from(port, item, out)
    }

    fn process_batch(
        &mut self,
        port: usize,
        items: &mut Vec<Data>,
        out: &mut Vec<Data>,
    ) -> Result<(), ItemError> {
        self.active().process_batch(port, items, out)
    }

    fn finish(&mut self, out: &mut Vec<Data>) -> Result<(), NodeError> {
        self.active().finish(out)
    }

    fn cleanup(&mut self) -> Result<(), NodeError> {
        self.active().cleanup()
    }

    fn execution(&self) -> Execution {
        self.inner.execution()
    }
}
