//! Placement: which machine runs each node, decided before anything runs.
//!
//! Rules, per node, in order:
//!
//! 1. An explicit `host` pins the node to the executor it names (by address or name).
//! 2. Otherwise the node runs locally when the local capabilities satisfy it — so a
//!    plain pipeline needs no executor at all.
//! 3. Otherwise a remote executor whose advertised capabilities satisfy it, chosen by
//!    the [`Policy`].
//! 4. A GPU marked `required: false` that no machine offers: the node runs on a CPU —
//!    locally when possible — with a warning.
//! 5. Nothing fits: a [`PlacementError`] lists every machine considered and why each
//!    was rejected (`gpu-1: needs cuda ≥ 16 GB, has 8 GB`).
//!
//! Contiguous nodes placed on the same executor (a chain: each the only successor of
//! the one before) form one [`RemoteGroup`], which travels as one sub-graph stream.
//! Pure logic over descriptions of the executors; probing them is the caller's job.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use crate::capabilities::{CapabilitySet, Fit};
use crate::manifest::Pipeline;

/// How to choose among remote executors that can all run a node.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Policy {
    /// The first that fits, in configuration order.
    #[default]
    Greedy,
    /// The lowest reported load.
    Balanced,
    /// The lowest measured round-trip time.
    Latency,
    /// The lowest cost per hour (executors without a cost come last).
    Cost,
}

/// Names of the policies, as accepted by [`Policy::from_str`].
pub const POLICIES: [&str; 4] = ["greedy", "balanced", "latency", "cost"];

impl Policy {
    /// The policy's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::Greedy => "greedy",
            Policy::Balanced => "balanced",
            Policy::Latency => "latency",
            Policy::Cost => "cost",
        }
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Policy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "greedy" => Ok(Policy::Greedy),
            "balanced" => Ok(Policy::Balanced),
            "latency" => Ok(Policy::Latency),
            "cost" => Ok(Policy::Cost),
            other => Err(format!(
                "unknown policy `{other}`; expected one of {}",
                crate::registry::quote_list(&POLICIES)
            )),
        }
    }
}

/// A remote executor as the client knows it.
#[derive(Clone, Debug, PartialEq)]
pub struct ExecutorInfo {
    /// Name used in messages and by `host`.
    pub name: String,
    /// `host:port`.
    pub address: String,
    /// Price per hour, from the client's configuration or advertised by the executor.
    pub cost_per_hour: Option<f64>,
    /// What probing it found.
    pub state: ExecutorState,
}

/// The result of probing an executor.
#[derive(Clone, Debug, PartialEq)]
pub enum ExecutorState {
    /// It answered.
    Available(ExecutorStatus),
    /// It did not; the text says why.
    Unreachable(String),
}

/// What an executor that answered advertises.
#[derive(Clone, Debug, PartialEq)]
pub struct ExecutorStatus {
    /// Its capabilities.
    pub capabilities: CapabilitySet,
    /// Node types it can run (canonical names).
    pub node_types: Vec<String>,
    /// Reported load (0 = idle; active streams per stream slot).
    pub load: f64,
    /// Measured round-trip time in microseconds, when measured.
    pub rtt_us: Option<f64>,
}

impl ExecutorInfo {
    fn status(&self) -> Option<&ExecutorStatus> {
        match &self.state {
            ExecutorState::Available(s) => Some(s),
            ExecutorState::Unreachable(_) => None,
        }
    }
}

/// Where a node runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// In this process.
    Local,
    /// On the executor at this index of the executor list.
    Executor(usize),
}

/// The placement of one node.
#[derive(Clone, Debug, PartialEq)]
pub struct NodePlacement {
    /// Node id.
    pub node_id: String,
    /// Where it runs.
    pub target: Target,
    /// Why there.
    pub reason: String,
    /// Something the user should know (a GPU it will run without, a pinned executor
    /// that does not advertise what the node needs).
    pub warning: Option<String>,
    /// Other executors that can run it, best first: where it goes if its executor
    /// fails, or if it fails to start locally for lack of resources.
    pub alternatives: Vec<usize>,
    /// Whether the local machine can run it (possibly on CPU only): the last resort
    /// of a failover.
    pub local_ok: bool,
}

/// Contiguous nodes on one executor: one sub-graph stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteGroup {
    /// Index of the executor.
    pub executor: usize,
    /// Node indices in chain order (each the only successor of the one before).
    pub nodes: Vec<usize>,
}

/// The placement of every node.
#[derive(Clone, Debug, PartialEq)]
pub struct Placement {
    /// The policy used.
    pub policy: Policy,
    /// Per node, in manifest order.
    pub nodes: Vec<NodePlacement>,
    /// Remote groups, in topological order of their heads.
    pub groups: Vec<RemoteGroup>,
}

impl Placement {
    /// True when every node runs locally.
    pub fn is_all_local(&self) -> bool {
        self.groups.is_empty()
    }

    /// Warnings of every node, prefixed with its id.
    pub fn warnings(&self) -> impl Iterator<Item = String> + '_ {
        self.nodes.iter().filter_map(|n| {
            n.warning
                .as_ref()
                .map(|w| format!("node `{}`: {w}", n.node_id))
        })
    }
}

/// A machine considered for a node and why it was rejected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    /// `local` or the executor's name.
    pub candidate: String,
    /// Why it cannot run the node.
    pub reason: String,
}

/// A node that fits nowhere.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unplaceable {
    /// Node id.
    pub node_id: String,
    /// Every machine considered.
    pub rejections: Vec<Rejection>,
}

/// Nodes that could not be placed, each with every machine considered.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct PlacementError {
    /// The nodes, in manifest order.
    pub nodes: Vec<Unplaceable>,
}

impl fmt::Display for PlacementError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, n) in self.nodes.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "node `{}` cannot be placed; considered:", n.node_id)?;
            for r in &n.rejections {
                write!(f, "\n  {}: {}", r.candidate, r.reason)?;
            }
        }
        Ok(())
    }
}

/// The executor a node's `host` names: one whose address is `host`, or whose name is
/// `host` or `host` without its `:port`.
pub fn executor_for_host(host: &str, executors: &[ExecutorInfo]) -> Option<usize> {
    executors
        .iter()
        .position(|e| e.address == host)
        .or_else(|| executors.iter().position(|e| e.name == host))
        .or_else(|| {
            let name = host.rsplit_once(':').map_or(host, |(n, _)| n);
            executors.iter().position(|e| e.name == name)
        })
}

/// Orders executor indices best first by `policy`; ties keep configuration order.
pub fn rank(candidates: &[usize], executors: &[ExecutorInfo], policy: Policy) -> Vec<usize> {
    let mut ranked = candidates.to_vec();
    let key = |i: usize| -> Option<f64> {
        let e = &executors[i];
        match policy {
            Policy::Greedy => Some(0.0),
            Policy::Balanced => e.status().map(|s| s.load),
            Policy::Latency => e.status().and_then(|s| s.rtt_us),
            Policy::Cost => e.cost_per_hour,
        }
    };
    ranked.sort_by(|&a, &b| match (key(a), key(b)) {
        (Some(x), Some(y)) => x.total_cmp(&y),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    });
    ranked
}

fn policy_reason(policy: Policy, chosen: &ExecutorInfo, of: usize) -> String {
    let status = chosen.status();
    match policy {
        Policy::Greedy => "first executor that fits (greedy)".to_string(),
        Policy::Balanced => format!(
            "lowest load {:.2} of {of} that fit (balanced)",
            status.map_or(0.0, |s| s.load)
        ),
        Policy::Latency => match status.and_then(|s| s.rtt_us) {
            Some(us) => format!("lowest round-trip {us:.0} µs of {of} that fit (latency)"),
            None => format!("no round-trip measured; first of {of} that fit (latency)"),
        },
        Policy::Cost => match chosen.cost_per_hour {
            Some(c) => format!("cheapest at {c}/h of {of} that fit (cost)"),
            None => format!("no cost known; first of {of} that fit (cost)"),
        },
    }
}

/// Places every node of `pipeline`: on this machine (`local`) or on one of
/// `executors`, following the module's rules. Fails with every node that fits nowhere.
pub fn place(
    pipeline: &Pipeline,
    local: &CapabilitySet,
    executors: &[ExecutorInfo],
    policy: Policy,
) -> Result<Placement, PlacementError> {
    let mut nodes = Vec::with_capacity(pipeline.nodes.len());
    let mut unplaceable = Vec::new();
    for spec in &pipeline.nodes {
        let req = spec.capabilities.as_ref();
        let local_fit = local.evaluate(req);
        let local_ok = !matches!(local_fit, Fit::No { .. });
        // Every executor's verdict: Ok(fit) or Err(rejection reason).
        let verdicts: Vec<Result<Fit, String>> = executors
            .iter()
            .map(|e| match &e.state {
                ExecutorState::Unreachable(why) => Err(format!("unreachable: {why}")),
                ExecutorState::Available(s) => {
                    if !s.node_types.iter().any(|t| t == &spec.node_type) {
                        Err(format!("does not provide node type `{}`", spec.node_type))
                    } else {
                        match s.capabilities.evaluate(req) {
                            Fit::No { reason } => Err(reason),
                            fit => Ok(fit),
                        }
                    }
                }
            })
            .collect();
        let full: Vec<usize> = (0..executors.len())
            .filter(|&i| matches!(verdicts[i], Ok(Fit::Full)))
            .collect();
        let cpu_only: Vec<usize> = (0..executors.len())
            .filter(|&i| matches!(verdicts[i], Ok(Fit::CpuOnly { .. })))
            .collect();
        let ranked_full = rank(&full, executors, policy);
        let ranked_cpu = rank(&cpu_only, executors, policy);
        let alternatives_without = |chosen: Option<usize>| -> Vec<usize> {
            ranked_full
                .iter()
                .chain(ranked_cpu.iter())
                .copied()
                .filter(|&i| Some(i) != chosen)
                .collect()
        };

        if let Some(host) = &spec.host {
            let Some(i) = executor_for_host(host, executors) else {
                unplaceable.push(Unplaceable {
                    node_id: spec.id.clone(),
                    rejections: vec![Rejection {
                        candidate: host.clone(),
                        reason: "named by `host` but not a known executor".into(),
                    }],
                });
                continue;
            };
            let e = &executors[i];
            let warning = match &verdicts[i] {
                Ok(Fit::Full) => None,
                Ok(Fit::CpuOnly { reason }) => Some(format!(
                    "pinned to `{}`, which lacks the optional GPU ({reason}); runs on its CPU",
                    e.name
                )),
                Err(reason) if e.status().is_some() && !reason.starts_with("does not") => {
                    Some(format!(
                        "pinned to `{}`, which does not advertise what the node needs: {reason}",
                        e.name
                    ))
                }
                Ok(Fit::No { reason }) | Err(reason) => {
                    unplaceable.push(Unplaceable {
                        node_id: spec.id.clone(),
                        rejections: vec![Rejection {
                            candidate: e.name.clone(),
                            reason: format!("named by `host`, but {reason}"),
                        }],
                    });
                    continue;
                }
            };
            nodes.push(NodePlacement {
                node_id: spec.id.clone(),
                target: Target::Executor(i),
                reason: format!("pinned by `host: {host}`"),
                warning,
                alternatives: alternatives_without(Some(i)),
                local_ok,
            });
            continue;
        }

        if local_fit.is_full() {
            let reason = if req.is_none_or(|r| *r == Default::default()) {
                "no capability requirements; local first".to_string()
            } else {
                format!("local capabilities satisfy it ({})", local.summary())
            };
            nodes.push(NodePlacement {
                node_id: spec.id.clone(),
                target: Target::Local,
                reason,
                warning: None,
                alternatives: alternatives_without(None),
                local_ok,
            });
            continue;
        }
        let local_reason = match &local_fit {
            Fit::Full => String::new(),
            Fit::CpuOnly { reason } | Fit::No { reason } => reason.clone(),
        };
        if let Some(&best) = ranked_full.first() {
            nodes.push(NodePlacement {
                node_id: spec.id.clone(),
                target: Target::Executor(best),
                reason: format!(
                    "{}; not local: {local_reason}",
                    policy_reason(policy, &executors[best], ranked_full.len())
                ),
                warning: None,
                alternatives: alternatives_without(Some(best)),
                local_ok,
            });
            continue;
        }
        if let Fit::CpuOnly { reason } = &local_fit {
            nodes.push(NodePlacement {
                node_id: spec.id.clone(),
                target: Target::Local,
                reason: "optional GPU available nowhere; local CPU".into(),
                warning: Some(format!(
                    "the GPU is optional and no machine has one ({reason}); running on the local CPU"
                )),
                alternatives: alternatives_without(None),
                local_ok,
            });
            continue;
        }
        if let Some(&best) = ranked_cpu.first() {
            let why = match &verdicts[best] {
                Ok(Fit::CpuOnly { reason }) => reason.clone(),
                _ => String::new(),
            };
            nodes.push(NodePlacement {
                node_id: spec.id.clone(),
                target: Target::Executor(best),
                reason: format!(
                    "{}; not local: {local_reason}",
                    policy_reason(policy, &executors[best], ranked_cpu.len())
                ),
                warning: Some(format!(
                    "the GPU is optional and no machine that fits has one ({why}); running on the CPU of `{}`",
                    executors[best].name
                )),
                alternatives: alternatives_without(Some(best)),
                local_ok,
            });
            continue;
        }
        let mut rejections = vec![Rejection {
            candidate: "local".into(),
            reason: local_reason,
        }];
        for (e, verdict) in executors.iter().zip(&verdicts) {
            if let Err(reason) = verdict {
                rejections.push(Rejection {
                    candidate: e.name.clone(),
                    reason: reason.clone(),
                });
            }
        }
        unplaceable.push(Unplaceable {
            node_id: spec.id.clone(),
            rejections,
        });
    }
    if !unplaceable.is_empty() {
        let error = PlacementError { nodes: unplaceable };
        tracing::info!(
            pipeline = %pipeline.name,
            %policy,
            unplaceable = error.nodes.len(),
            "placement failed"
        );
        return Err(error);
    }
    let groups = group(pipeline, &nodes);
    let placement = Placement {
        policy,
        nodes,
        groups,
    };
    log_placement(pipeline, executors, &placement);
    Ok(placement)
}

/// Logs where each node goes and why (`debug`), and a summary (`info`).
fn log_placement(pipeline: &Pipeline, executors: &[ExecutorInfo], placement: &Placement) {
    let name = |t: Target| match t {
        Target::Local => "local",
        Target::Executor(i) => executors[i].name.as_str(),
    };
    if tracing::enabled!(tracing::Level::DEBUG) {
        for e in executors {
            match &e.state {
                ExecutorState::Available(s) => tracing::debug!(
                    executor = %e.name,
                    address = %e.address,
                    load = s.load,
                    rtt_us = s.rtt_us,
                    "executor available"
                ),
                ExecutorState::Unreachable(why) => tracing::debug!(
                    executor = %e.name,
                    address = %e.address,
                    reason = %why,
                    "executor unreachable: no node goes there"
                ),
            }
        }
        for n in &placement.nodes {
            let alternatives: Vec<&str> = n
                .alternatives
                .iter()
                .map(|&i| executors[i].name.as_str())
                .collect();
            tracing::debug!(
                pipeline = %pipeline.name,
                node = %n.node_id,
                target = name(n.target),
                reason = %n.reason,
                alternatives = ?alternatives,
                local_ok = n.local_ok,
                "node placed"
            );
        }
    }
    let groups: Vec<String> = placement
        .groups
        .iter()
        .map(|g| {
            let ids: Vec<&str> = g
                .nodes
                .iter()
                .map(|&v| pipeline.nodes[v].id.as_str())
                .collect();
            format!("{}@{}", ids.join("+"), executors[g.executor].name)
        })
        .collect();
    let local = placement
        .nodes
        .iter()
        .filter(|n| n.target == Target::Local)
        .count();
    tracing::info!(
        pipeline = %pipeline.name,
        policy = %placement.policy,
        local,
        remote = placement.nodes.len() - local,
        groups = ?groups,
        "placement decided"
    );
}

/// Chains of nodes on the same executor, in topological order.
fn group(pipeline: &Pipeline, nodes: &[NodePlacement]) -> Vec<RemoteGroup> {
    let g = &pipeline.graph;
    let mut group_of = vec![usize::MAX; nodes.len()];
    let mut groups: Vec<RemoteGroup> = Vec::new();
    for &v in &g.topo {
        let Target::Executor(e) = nodes[v].target else {
            continue;
        };
        let join = match g.preds[v].as_slice() {
            [p] if g.succs[*p].len() == 1 && nodes[*p].target == Target::Executor(e) => {
                Some(group_of[*p])
            }
            _ => None,
        };
        match join {
            Some(k) => {
                groups[k].nodes.push(v);
                group_of[v] = k;
            }
            None => {
                group_of[v] = groups.len();
                groups.push(RemoteGroup {
                    executor: e,
                    nodes: vec![v],
                });
            }
        }
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capabilities::GpuInfo;
    use crate::manifest::{load_str, GpuType};
    use crate::registry::Registry;

    fn cpu(cores: u32, memory_gb: f64) -> CapabilitySet {
        CapabilitySet {
            cpu_cores: cores,
            arch: "x86_64".into(),
            memory_total_gb: memory_gb,
            memory_available_gb: None,
            gpus: vec![],
        }
    }

    fn gpu(memory: f64) -> CapabilitySet {
        CapabilitySet {
            gpus: vec![GpuInfo {
                kind: GpuType::Cuda,
                vendor: "NVIDIA".into(),
                model: "test".into(),
                memory_gb: memory,
            }],
            ..cpu(16, 64.0)
        }
    }

    fn exec(
        name: &str,
        caps: CapabilitySet,
        load: f64,
        rtt: f64,
        cost: Option<f64>,
    ) -> ExecutorInfo {
        ExecutorInfo {
            name: name.into(),
            address: format!("{name}:50051"),
            cost_per_hour: cost,
            state: ExecutorState::Available(ExecutorStatus {
                capabilities: caps,
                node_types: Registry::builtin().types().map(String::from).collect(),
                load,
                rtt_us: Some(rtt),
            }),
        }
    }

    fn pipeline(yaml: &str) -> Pipeline {
        load_str(yaml, crate::manifest::Format::Yaml, &Registry::builtin()).expect("valid manifest")
    }

    const GPU_CHAIN: &str = r#"
version: v1
metadata: { name: t }
nodes:
  - { id: pre, node_type: PassThrough }
  - { id: a, node_type: PassThrough, capabilities: { gpu: { type: cuda, min_memory_gb: 16 } } }
  - { id: b, node_type: Calculator, params: { operation: add, operand: 1 }, capabilities: { gpu: { type: cuda } } }
  - { id: post, node_type: PassThrough }
connections:
  - { from: pre, to: a }
  - { from: a, to: b }
  - { from: b, to: post }
"#;

    #[test]
    fn zero_config_runs_locally() {
        let p = pipeline(
            "version: v1\nmetadata: {name: t}\nnodes: [{id: a, node_type: PassThrough}]\n",
        );
        let placed = place(&p, &cpu(2, 4.0), &[], Policy::Greedy).unwrap();
        assert!(placed.is_all_local());
        assert_eq!(
            placed.nodes[0].reason,
            "no capability requirements; local first"
        );
    }

    #[test]
    fn gpu_nodes_go_remote_and_group() {
        let p = pipeline(GPU_CHAIN);
        let execs = [
            exec("small", gpu(8.0), 0.0, 100.0, None),
            exec("big", gpu(24.0), 0.0, 100.0, None),
        ];
        let placed = place(&p, &cpu(4, 16.0), &execs, Policy::Greedy).unwrap();
        let targets: Vec<Target> = placed.nodes.iter().map(|n| n.target).collect();
        assert_eq!(
            targets,
            [
                Target::Local,
                Target::Executor(1),
                Target::Executor(0),
                Target::Local
            ]
        );
        // `a` needs 16 GB: only `big`; `b` fits both, greedy takes the first.
        assert_eq!(placed.groups.len(), 2);
        assert!(placed.nodes[2]
            .reason
            .starts_with("first executor that fits (greedy)"));
        assert!(placed.nodes[2]
            .reason
            .contains("not local: needs a cuda GPU, has none"));
        assert_eq!(placed.nodes[2].alternatives, [1]);
        // Balanced with equal loads keeps order, so pin `b` to `big` by load.
        let execs = [
            exec("small", gpu(8.0), 0.5, 100.0, None),
            exec("big", gpu(24.0), 0.0, 100.0, None),
        ];
        let placed = place(&p, &cpu(4, 16.0), &execs, Policy::Balanced).unwrap();
        assert_eq!(
            placed.groups,
            [RemoteGroup {
                executor: 1,
                nodes: vec![1, 2]
            }]
        );
        assert!(placed.nodes[2].reason.starts_with("lowest load 0.00 of 2"));
    }

    #[test]
    fn each_policy_picks_its_best() {
        let p = pipeline(
            r#"
version: v1
metadata: { name: t }
nodes:
  - { id: g, node_type: PassThrough, capabilities: { gpu: { type: any } } }
"#,
        );
        let execs = [
            exec("first", gpu(16.0), 0.9, 300.0, Some(3.0)),
            exec("idle", gpu(16.0), 0.1, 200.0, None),
            exec("near", gpu(16.0), 0.5, 50.0, Some(2.0)),
            exec("cheap", gpu(16.0), 0.5, 400.0, Some(0.5)),
        ];
        let pick = |policy| match place(&p, &cpu(4, 16.0), &execs, policy).unwrap().nodes[0].target
        {
            Target::Executor(i) => execs[i].name.clone(),
            Target::Local => "local".into(),
        };
        assert_eq!(pick(Policy::Greedy), "first");
        assert_eq!(pick(Policy::Balanced), "idle");
        assert_eq!(pick(Policy::Latency), "near");
        assert_eq!(pick(Policy::Cost), "cheap");
        let placed = place(&p, &cpu(4, 16.0), &execs, Policy::Cost).unwrap();
        assert_eq!(placed.nodes[0].alternatives, [2, 0, 1]);
    }

    #[test]
    fn nothing_fits_lists_every_candidate() {
        let p = pipeline(GPU_CHAIN);
        let mut down = exec("down", gpu(80.0), 0.0, 1.0, None);
        down.state = ExecutorState::Unreachable("connection refused".into());
        let execs = [exec("gpu-1", gpu(8.0), 0.0, 1.0, None), down];
        let err = place(&p, &cpu(4, 16.0), &execs, Policy::Greedy).unwrap_err();
        assert_eq!(
            err.to_string(),
            "node `a` cannot be placed; considered:\n  \
             local: needs cuda ≥ 16 GB, has none\n  \
             gpu-1: needs cuda ≥ 16 GB, has 8 GB\n  \
             down: unreachable: connection refused"
        );
    }

    #[test]
    fn optional_gpu_falls_back_to_local_cpu() {
        let p = pipeline(
            r#"
version: v1
metadata: { name: t }
nodes:
  - { id: g, node_type: PassThrough, capabilities: { gpu: { type: cuda, required: false } } }
"#,
        );
        let execs = [exec("cpu-only", cpu(32, 128.0), 0.0, 1.0, None)];
        let placed = place(&p, &cpu(4, 16.0), &execs, Policy::Greedy).unwrap();
        assert_eq!(placed.nodes[0].target, Target::Local);
        let warning = placed.warnings().next().unwrap();
        assert!(warning.contains("no machine has one"), "{warning}");
        // With a GPU somewhere, that executor wins.
        let execs = [exec("gpu", gpu(8.0), 0.0, 1.0, None)];
        let placed = place(&p, &cpu(4, 16.0), &execs, Policy::Greedy).unwrap();
        assert_eq!(placed.nodes[0].target, Target::Executor(0));
    }

    #[test]
    fn host_pins_by_address_or_name() {
        let yaml = r#"
version: v1
metadata: { name: t }
nodes:
  - { id: a, node_type: PassThrough, host: "cpu-2:50051" }
  - { id: b, node_type: PassThrough, host: "nowhere:1" }
"#;
        let p = pipeline(yaml);
        let execs = [
            exec("cpu-1", cpu(4, 8.0), 0.0, 1.0, None),
            exec("cpu-2", cpu(4, 8.0), 0.0, 1.0, None),
        ];
        let err = place(&p, &cpu(4, 16.0), &execs, Policy::Greedy).unwrap_err();
        assert_eq!(err.nodes.len(), 1);
        assert_eq!(err.nodes[0].node_id, "b");
        assert_eq!(executor_for_host("cpu-2:50051", &execs), Some(1));
        assert_eq!(executor_for_host("cpu-1", &execs), Some(0));
        assert_eq!(executor_for_host("cpu-1:9", &execs), Some(0));
        let p = pipeline(&yaml.replace("nowhere:1", "cpu-1:50051"));
        let placed = place(&p, &cpu(4, 16.0), &execs, Policy::Greedy).unwrap();
        assert_eq!(placed.nodes[0].target, Target::Executor(1));
        assert_eq!(placed.nodes[0].reason, "pinned by `host: cpu-2:50051`");
        assert_eq!(placed.nodes[0].alternatives, [0]);
        assert!(placed.nodes[0].local_ok);
        // Different executors: two groups even though the nodes are connected.
        assert_eq!(placed.groups.len(), 2);
    }

    #[test]
    fn unknown_node_type_rejects_an_executor() {
        let p = pipeline(GPU_CHAIN);
        let mut e = exec("gpu", gpu(24.0), 0.0, 1.0, None);
        if let ExecutorState::Available(s) = &mut e.state {
            s.node_types.retain(|t| t != "Calculator");
        }
        let err = place(&p, &cpu(4, 16.0), &[e], Policy::Greedy).unwrap_err();
        assert_eq!(err.nodes[0].node_id, "b");
        assert_eq!(
            err.nodes[0].rejections[1].reason,
            "does not provide node type `Calculator`"
        );
    }

    #[test]
    fn policy_names_parse() {
        for name in POLICIES {
            assert_eq!(name.parse::<Policy>().unwrap().as_str(), name);
        }
        assert!("fastest".parse::<Policy>().is_err());
    }
}
