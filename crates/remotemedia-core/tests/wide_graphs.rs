//! Graphs of thousands of stages: every item reaches every sink, and the executor's
//! threads stay within its pool sizes whatever the number of stages.
//!
//! One test per file (the thread count is the process's), so nothing else runs beside it.
#![cfg(target_os = "linux")]

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use remotemedia_core::executor::{self, RunOptions, COMPUTE_THREADS, DEDICATED_THREADS};
use remotemedia_core::manifest::{self, Format};
use remotemedia_core::plan::Plan;
use remotemedia_core::{Data, Registry};
use serde_json::{json, Value};

/// `in` fanned out to `n` PassThrough sinks.
fn flat(n: usize) -> String {
    let mut nodes = vec![json!({ "id": "in", "node_type": "PassThrough" })];
    nodes.extend((0..n).map(|i| json!({ "id": format!("n{i}"), "node_type": "PassThrough" })));
    let connections: Vec<Value> = (0..n)
        .map(|i| json!({ "from": "in", "to": format!("n{i}") }))
        .collect();
    manifest_text("flat", nodes, connections)
}

/// A chain of `n` PassThrough nodes, each with a time limit (so each is a stage).
fn timed_chain(n: usize) -> String {
    let nodes = (0..n)
        .map(|i| json!({ "id": format!("n{i}"), "node_type": "PassThrough", "timeout_ms": 10_000 }))
        .collect();
    let connections = (1..n)
        .map(|i| json!({ "from": format!("n{}", i - 1), "to": format!("n{i}") }))
        .collect();
    manifest_text("timed-chain", nodes, connections)
}

fn manifest_text(name: &str, nodes: Vec<Value>, connections: Vec<Value>) -> String {
    json!({ "version": "v1", "metadata": { "name": name }, "nodes": nodes, "connections": connections })
        .to_string()
}

/// Threads of this process, from /proc/self/status.
fn threads() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("a Threads line")
}

/// Runs `text` over `items` ints on threads, sampling the process's thread count
/// while it runs; returns the result and the most threads seen.
fn run_sampled(text: &str, items: i64) -> (executor::RunResult, usize) {
    let registry = Registry::builtin();
    let pipeline = manifest::load_str(text, Format::Json, &registry).expect("valid manifest");
    let plan = Plan::build(&pipeline, &registry).expect("plan");
    let stop = Arc::new(AtomicBool::new(false));
    let most = Arc::new(AtomicUsize::new(threads()));
    let sampler = {
        let (stop, most) = (Arc::clone(&stop), Arc::clone(&most));
        std::thread::spawn(move || {
            while !stop.load(Ordering::Acquire) {
                most.fetch_max(threads(), Ordering::AcqRel);
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        })
    };
    let options = RunOptions {
        force_threads: true,
        batch_size: 4,
        ..RunOptions::default()
    };
    let result = executor::run(plan, (0..items).map(Data::Int).collect(), &options);
    most.fetch_max(threads(), Ordering::AcqRel);
    stop.store(true, Ordering::Release);
    sampler.join().unwrap();
    (
        result.expect("the run succeeds"),
        most.load(Ordering::Acquire),
    )
}

#[test]
fn two_thousand_stages_run_on_a_bounded_number_of_threads() {
    let before = threads();
    // The pools, the timed calls in progress (one per dedicated worker at most; the
    // pool of timed calls keeps idle threads for a while) and the sampler.
    let bound = before + COMPUTE_THREADS + 2 * DEDICATED_THREADS + 4;
    let expected: Vec<Data> = (0..20).map(Data::Int).collect();

    let (flat_result, flat_most) = run_sampled(&flat(2000), 20);
    assert_eq!(flat_result.metrics.stages, 2001);
    assert_eq!(flat_result.outputs.len(), 2000);
    for out in &flat_result.outputs {
        assert_eq!(out.items, expected, "sink {}", out.sink);
    }
    assert!(
        flat_most <= bound,
        "{flat_most} threads for 2001 stages, bound {bound}"
    );

    let (chain_result, chain_most) = run_sampled(&timed_chain(2000), 20);
    assert_eq!(chain_result.metrics.stages, 2000);
    assert_eq!(chain_result.sink("n1999").unwrap(), expected.as_slice());
    let last = chain_result.metrics.node("n1999").unwrap();
    assert_eq!((last.items_in, last.items_out), (20, 20));
    assert!(
        chain_most <= bound,
        "{chain_most} threads for 2000 timed stages, bound {bound}"
    );
}
