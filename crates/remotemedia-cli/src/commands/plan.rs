//! `remotemedia plan MANIFEST [--json]`: where each node would run and why.
//!
//! The placement itself (executors from flags, environment, `remotemedia.toml` and
//! nodes' `host`, probed; this machine detected) is `remotemedia_runtime::place`, which
//! `remotemedia run` and the Python SDK use too; this module shows it and the stages.

use remotemedia_core::manifest::Pipeline;
use remotemedia_core::placement::{ExecutorInfo, ExecutorState, Placement, Target};
use remotemedia_core::plan::Plan;
use remotemedia_core::{Execution, Registry};
use remotemedia_remote::client::Endpoint;
use remotemedia_remote::discovery::Pool;
use remotemedia_remote::{distribute, StageOptions, REMOTE_STAGE_TYPE};
use remotemedia_runtime::{place, ExecutorSources, Placed, NO_EXECUTORS_HINT};
use serde_json::{json, Value};

use crate::cli::{PlanArgs, RemoteArgs};
use crate::{EXIT_INVALID, EXIT_RUN_FAILED};

/// The executor sources `--executor`, `--executor-ca`, `--dns-server`, `--policy`,
/// `--config` and `--token-file` name.
pub fn sources(args: &RemoteArgs) -> ExecutorSources {
    ExecutorSources {
        executors: args.executors.clone(),
        executor_ca: args.executor_ca.clone(),
        dns_server: args.dns_server.clone(),
        policy: Some(args.policy.clone()),
        config: args.config.clone(),
        token_file: args.token_file.clone(),
    }
}

/// How a stage of the run is scheduled, as `plan` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Runs {
    /// Fused into one loop on the shared compute threads.
    Inline,
    /// On a thread of its own (a Python worker pool, a node with a time limit).
    Dedicated,
    /// Streamed to this executor as one sub-graph.
    Remote(String),
}

/// One stage of the run: its nodes in chain order and how it runs.
#[derive(Debug, Clone)]
pub struct StageView {
    /// Node ids, in chain order.
    pub nodes: Vec<String>,
    /// How the stage is scheduled.
    pub runs: Runs,
    /// Whether its head is a source.
    pub source: bool,
}

/// The stages the run of `pipeline` with `placement` would have, worked out the way
/// the run builds them (remote groups collapsed, then fused) but without building any
/// node, so nothing is loaded or connected.
pub fn stages(
    pipeline: &Pipeline,
    registry: &Registry,
    placed: &Placed,
    placement: &Placement,
) -> Result<Vec<StageView>, String> {
    let (run_pipeline, run_registry);
    let (p, r) = if placement.is_all_local() {
        (pipeline, registry)
    } else {
        let options = StageOptions {
            local_registry: registry.clone(),
            ..StageOptions::default()
        };
        let d = distribute(pipeline, registry, placement, &placed.endpoints, options)
            .map_err(|e| e.to_string())?;
        (run_pipeline, run_registry) = (d.pipeline, d.registry);
        (&run_pipeline, &run_registry)
    };
    let layout = Plan::layout(p, r).map_err(|e| e.to_string())?;
    let group_of = |v: usize| -> Option<usize> {
        let node = &p.nodes[v];
        (node.node_type == REMOTE_STAGE_TYPE)
            .then(|| node.params.get("group").and_then(|g| g.as_u64()))
            .flatten()
            .and_then(|k| usize::try_from(k).ok())
            .filter(|&k| k < placement.groups.len())
    };
    Ok(layout
        .iter()
        .map(|stage| {
            let mut runs = match stage.execution {
                Execution::Inline => Runs::Inline,
                Execution::Dedicated => Runs::Dedicated,
            };
            let mut nodes = Vec::new();
            for &v in &stage.nodes {
                match group_of(v) {
                    Some(k) => {
                        let group = &placement.groups[k];
                        runs = Runs::Remote(placed.executors[group.executor].name.clone());
                        nodes.extend(group.nodes.iter().map(|&u| pipeline.nodes[u].id.clone()));
                    }
                    None => nodes.push(p.nodes[v].id.clone()),
                }
            }
            StageView {
                nodes,
                runs,
                source: stage.source,
            }
        })
        .collect())
}

fn stage_json(s: &StageView) -> Value {
    let (runs, executor) = match &s.runs {
        Runs::Inline => ("inline", None),
        Runs::Dedicated => ("dedicated", None),
        Runs::Remote(e) => ("remote", Some(e)),
    };
    json!({"nodes": s.nodes, "runs": runs, "executor": executor, "source": s.source})
}

fn stage_text(s: &StageView) -> String {
    let how = match &s.runs {
        Runs::Inline if s.nodes.len() > 1 => "fused into one loop, on the compute threads".into(),
        Runs::Inline => "on the compute threads".into(),
        Runs::Dedicated => "on a thread of its own".into(),
        Runs::Remote(e) => format!("on {e}, streamed as one sub-graph"),
    };
    if s.source {
        format!("source, {how}")
    } else {
        how
    }
}

fn executor_json(e: &ExecutorInfo, endpoint: &Endpoint) -> Value {
    let mut v = json!({
        "name": e.name,
        "address": e.address,
        "tls": endpoint.tls.is_some(),
        "cost_per_hour": e.cost_per_hour,
    });
    match &e.state {
        ExecutorState::Available(s) => {
            v["reachable"] = json!(true);
            v["capabilities"] = serde_json::to_value(&s.capabilities).unwrap_or_default();
            v["node_types"] = json!(s.node_types);
            v["load"] = json!(s.load);
            v["rtt_us"] = json!(s.rtt_us);
        }
        ExecutorState::Unreachable(why) => {
            v["reachable"] = json!(false);
            v["reason"] = json!(why);
        }
    }
    v
}

fn unix_secs(t: std::time::SystemTime) -> f64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn pool_json(p: &Pool) -> Value {
    json!({
        "pool": p.name,
        "url": p.url,
        "record_type": p.record_type,
        "server": p.server,
        "resolved_at_unix": unix_secs(p.resolved_at),
        "record_ttl_s": p.record_ttl,
        "ttl_s": p.ttl.as_secs(),
        "addresses": p.addresses.iter().map(|a| json!({
            "executor": p.executor_name(a),
            "address": a,
        })).collect::<Vec<_>>(),
    })
}

fn target_name(t: Target, executors: &[ExecutorInfo]) -> String {
    match t {
        Target::Local => "local".into(),
        Target::Executor(i) => executors[i].name.clone(),
    }
}

/// The placement as JSON (`remotemedia plan --json`).
pub fn placed_json(pipeline: &Pipeline, placed: &Placed, stages: &[StageView]) -> Value {
    let executors: Vec<Value> = placed
        .executors
        .iter()
        .zip(&placed.endpoints)
        .map(|(e, endpoint)| executor_json(e, endpoint))
        .collect();
    let mut body = json!({
        "pipeline": pipeline.name,
        "local": {
            "capabilities": placed.local.set,
            "source": placed.local.source,
        },
        "executors": executors,
        "discovery": placed.pools.iter().map(pool_json).collect::<Vec<_>>(),
    });
    match &placed.placement {
        Ok(p) => {
            body["policy"] = json!(p.policy.as_str());
            body["nodes"] = p
                .nodes
                .iter()
                .map(|n| {
                    let mut v = json!({
                        "id": n.node_id,
                        "placement": target_name(n.target, &placed.executors),
                        "reason": n.reason,
                    });
                    if let Target::Executor(i) = n.target {
                        v["address"] = json!(placed.executors[i].address);
                    }
                    if let Some(w) = &n.warning {
                        v["warning"] = json!(w);
                    }
                    v
                })
                .collect();
            body["groups"] = p
                .groups
                .iter()
                .map(|g| {
                    json!({
                        "executor": placed.executors[g.executor].name,
                        "nodes": g.nodes.iter().map(|&v| &pipeline.nodes[v].id).collect::<Vec<_>>(),
                    })
                })
                .collect();
            body["stages"] = stages.iter().map(stage_json).collect();
            body["error"] = Value::Null;
        }
        Err(e) => {
            body["nodes"] = json!([]);
            body["groups"] = json!([]);
            body["stages"] = json!([]);
            body["error"] = json!({
                "message": e.to_string(),
                "nodes": e.nodes.iter().map(|n| json!({
                    "id": n.node_id,
                    "rejections": n.rejections.iter().map(|r| json!({
                        "candidate": r.candidate, "reason": r.reason,
                    })).collect::<Vec<_>>(),
                })).collect::<Vec<_>>(),
            });
        }
    }
    body
}

fn print_text(pipeline: &Pipeline, placed: &Placed, stages: &[StageView]) {
    println!(
        "local: {} ({})",
        placed.local.set.summary(),
        placed.local.source
    );
    for p in &placed.pools {
        println!(
            "discovered {} at {} ({} via {}, resolved at unix {:.3}, record TTL {} s, valid {} s): {}",
            p.name,
            p.url,
            p.record_type,
            p.server,
            unix_secs(p.resolved_at),
            p.record_ttl,
            p.ttl.as_secs(),
            if p.addresses.is_empty() {
                "no addresses".to_string()
            } else {
                p.addresses.join(", ")
            }
        );
    }
    if !placed.executors.is_empty() {
        println!("executors:");
        for (e, endpoint) in placed.executors.iter().zip(&placed.endpoints) {
            let url = endpoint.url();
            match &e.state {
                ExecutorState::Available(s) => {
                    let rtt = s
                        .rtt_us
                        .map_or(String::new(), |r| format!(", rtt {r:.0} µs"));
                    let cost = e
                        .cost_per_hour
                        .map_or(String::new(), |c| format!(", {c}/h"));
                    println!(
                        "  {} ({url}): {}, load {:.2}{rtt}{cost}",
                        e.name,
                        s.capabilities.summary(),
                        s.load
                    );
                }
                ExecutorState::Unreachable(why) => {
                    println!("  {} ({url}): unreachable: {why}", e.name);
                }
            }
        }
    }
    let Ok(p) = &placed.placement else {
        return;
    };
    println!("placement ({} policy):", p.policy);
    let width = pipeline.nodes.iter().map(|n| n.id.len()).max().unwrap_or(0);
    let targets: Vec<String> = p
        .nodes
        .iter()
        .map(|n| target_name(n.target, &placed.executors))
        .collect();
    let twidth = targets.iter().map(String::len).max().unwrap_or(0);
    for (n, t) in p.nodes.iter().zip(&targets) {
        println!("  {:width$}  {:twidth$}  {}", n.node_id, t, n.reason);
    }
    for g in &p.groups {
        let ids: Vec<&str> = g
            .nodes
            .iter()
            .map(|&v| pipeline.nodes[v].id.as_str())
            .collect();
        println!(
            "sub-graph on {}: {}",
            placed.executors[g.executor].name,
            ids.join(" → ")
        );
    }
    println!("stages:");
    let chains: Vec<String> = stages.iter().map(|s| s.nodes.join(" → ")).collect();
    let cwidth = chains.iter().map(|c| c.chars().count()).max().unwrap_or(0);
    for (k, (s, chain)) in stages.iter().zip(&chains).enumerate() {
        let pad = cwidth - chain.chars().count();
        println!("  {}. {chain}{:pad$}  {}", k + 1, "", stage_text(s));
    }
}

/// Prints the placement; exit 0 when every node has a place, 2 when some has none.
pub fn run(args: PlanArgs) -> anyhow::Result<u8> {
    let registry = super::registry();
    let pipeline = match super::load_manifest(&args.manifest, &registry) {
        Ok(p) => p,
        Err(errors) => {
            for e in &errors.0 {
                eprintln!("{e}");
            }
            eprintln!("error: {} is not a valid manifest", args.manifest.display());
            return Ok(EXIT_INVALID);
        }
    };
    let placed = match place(&pipeline, &sources(&args.remote)) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(EXIT_INVALID);
        }
    };
    for w in &placed.warnings {
        crate::warn(w);
    }
    let stages = match &placed.placement {
        Ok(p) => match stages(&pipeline, &registry, &placed, p) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: {e}");
                return Ok(EXIT_RUN_FAILED);
            }
        },
        Err(_) => Vec::new(),
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&placed_json(&pipeline, &placed, &stages))?
        );
    } else {
        print_text(&pipeline, &placed, &stages);
    }
    match &placed.placement {
        Ok(p) => {
            for w in p.warnings() {
                crate::warn(w);
            }
            Ok(0)
        }
        Err(e) => {
            eprintln!("error: {e}");
            if placed.executors.is_empty() {
                eprintln!("{NO_EXECUTORS_HINT}");
            }
            Ok(EXIT_RUN_FAILED)
        }
    }
}
