//! Pipeline execution benchmarks, paired case by case with the pure-Python baseline in
//! `python/benchmarks/benchmark_simple.py` (same manifests, same node semantics, same
//! timing boundaries). `scripts/bench.sh` runs both and writes `BENCHMARKS.md`.
//!
//! Timing boundaries: a manifest is parsed and validated once, outside the timed loop.
//! Each timed iteration then builds the executable plan (`Plan::build`: node instances
//! and fused stages), runs the node lifecycle (initialize, process, finish, cleanup)
//! and executes the input through `executor::run`. The input `Vec<Data>` is built
//! before each iteration and the result is dropped after it (`iter_batched`), outside
//! the timing, exactly like the Python side.
//!
//! Cases:
//! - `simple_100`: PassThrough → Calculator(add 1) → PassThrough, 100 ints;
//! - `complex_100`: 10 nodes alternating PassThrough / Calculator(add 1), 100 ints;
//! - `scaling/{10,100,1000}`: the simple chain at three input sizes;
//! - `graph_construction`: the 10-node pipeline → executable plan;
//! - `floor/{100,1000}`: the simple chain's arithmetic as a hand-written loop, no
//!   framework (the physical floor for `scaling/{100,1000}`);
//! - `fan_out_fan_in_1000`: A → (B, C) → Zip, 1000 ints;
//! - `streaming_session`: 1,000,000 ints through the simple chain in a streaming
//!   session, sent in batches from one thread and received on another.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use serde_json::{json, Value};

use remotemedia_core::executor::{self, start_session, RunOptions, RunResult};
use remotemedia_core::manifest::{self, Format, Pipeline};
use remotemedia_core::plan::Plan;
use remotemedia_core::{Data, Registry};

/// Items in the streaming case.
const STREAM_ITEMS: usize = 1_000_000;
/// Items per `send_batch` call in the streaming case.
const STREAM_BATCH: usize = 1024;

fn node(id: String, node_type: &str, params: Option<Value>) -> Value {
    match params {
        Some(p) => json!({ "id": id, "node_type": node_type, "params": p }),
        None => json!({ "id": id, "node_type": node_type }),
    }
}

fn add_one() -> Option<Value> {
    Some(json!({ "operation": "add", "operand": 1 }))
}

/// Manifest text of a chain of `len` nodes: even positions PassThrough, odd positions
/// Calculator(add 1). `len = 3` is the simple chain, `len = 10` the complex one.
fn chain_manifest(len: usize) -> String {
    let nodes: Vec<Value> = (0..len)
        .map(|i| {
            if i % 2 == 0 {
                node(format!("n{i}"), "PassThrough", None)
            } else {
                node(format!("n{i}"), "Calculator", add_one())
            }
        })
        .collect();
    let connections: Vec<Value> = (1..len)
        .map(|i| json!({ "from": format!("n{}", i - 1), "to": format!("n{i}") }))
        .collect();
    json!({
        "version": "v1",
        "metadata": { "name": format!("chain-{len}") },
        "nodes": nodes,
        "connections": connections,
    })
    .to_string()
}

/// Manifest text of A → (B, C) → Zip: A PassThrough, B Calculator(add 1),
/// C Calculator(multiply 2), Zip pairs B's and C's outputs into `{"b": .., "c": ..}`.
fn fan_manifest() -> String {
    json!({
        "version": "v1",
        "metadata": { "name": "fan-out-fan-in" },
        "nodes": [
            node("a".into(), "PassThrough", None),
            node("b".into(), "Calculator", add_one()),
            node("c".into(), "Calculator", Some(json!({ "operation": "multiply", "operand": 2 }))),
            node("zip".into(), "Zip", None),
        ],
        "connections": [
            { "from": "a", "to": "b" },
            { "from": "a", "to": "c" },
            { "from": "b", "to": "zip" },
            { "from": "c", "to": "zip" },
        ],
    })
    .to_string()
}

fn load(text: &str, registry: &Registry) -> Pipeline {
    manifest::load_str(text, Format::Json, registry).expect("benchmark manifest is valid")
}

fn ints(n: usize) -> Vec<Data> {
    (0..n as i64).map(Data::Int).collect()
}

/// One timed iteration: plan + lifecycle + execution.
fn run_once(pipeline: &Pipeline, registry: &Registry, inputs: Vec<Data>) -> RunResult {
    let plan = Plan::build(pipeline, registry).expect("plan builds");
    executor::run(plan, inputs, &RunOptions::default()).expect("run succeeds")
}

/// The simple chain's arithmetic with no framework: one pass (one Calculator) of a
/// checked add over the same `Data` values, updated in place and handed back. This is
/// the fastest plain loop found for the work (a loop pushing into a new vector is
/// several times slower), so it is the physical floor, not a straw man.
fn floor(mut items: Vec<Data>) -> Result<Vec<Data>, &'static str> {
    for item in items.iter_mut() {
        match item {
            Data::Int(i) => *i = i.checked_add(1).ok_or("integer overflow")?,
            _ => return Err("add needs numbers"),
        }
    }
    Ok(items)
}

/// Streams `batches` through a session on `pipeline`: this thread builds the plan and
/// starts the session, a scoped thread sends, this thread receives and counts.
///
/// The chain emits one output per input, so the receiver stops after `expected`
/// outputs and then ends the session with `finish` (the receiver keeps the session's
/// input open until `finish`, so waiting for `recv_batch` to return `None` first would
/// wait forever).
fn stream_once(pipeline: &Pipeline, registry: &Registry, batches: Vec<Vec<Data>>) -> usize {
    let expected: usize = batches.iter().map(Vec::len).sum();
    let plan = Plan::build(pipeline, registry).expect("plan builds");
    let session = start_session(plan, &RunOptions::default()).expect("session starts");
    let (sender, mut receiver) = session.into_split();
    let received = std::thread::scope(|s| {
        s.spawn(move || {
            for batch in batches {
                sender.send_batch(batch).expect("session accepts input");
            }
            sender.close();
        });
        let mut received = 0;
        while received < expected {
            match receiver.recv_batch() {
                Some((_, batch)) => received += batch.len(),
                None => break,
            }
        }
        received
    });
    let rest = receiver.finish().expect("session succeeds");
    received + rest.all_items().count()
}

fn stream_batches(n: usize) -> Vec<Vec<Data>> {
    let mut items = ints(n).into_iter();
    let mut batches = Vec::with_capacity(n.div_ceil(STREAM_BATCH));
    loop {
        let batch: Vec<Data> = items.by_ref().take(STREAM_BATCH).collect();
        if batch.is_empty() {
            return batches;
        }
        batches.push(batch);
    }
}

/// Checks every case's output once, so a benchmark can never time a broken run.
fn check_outputs(registry: &Registry, simple: &Pipeline, complex: &Pipeline, fan: &Pipeline) {
    let expect = |r: &RunResult, n: usize, add: i64| {
        let got: Vec<Data> = r.all_items().cloned().collect();
        let want: Vec<Data> = (0..n as i64).map(|i| Data::Int(i + add)).collect();
        assert_eq!(got, want);
    };
    expect(&run_once(simple, registry, ints(100)), 100, 1);
    expect(&run_once(complex, registry, ints(100)), 100, 5);
    assert_eq!(floor(ints(100)).unwrap(), ints(101)[1..].to_vec());
    let r = run_once(fan, registry, ints(1000));
    let got: Vec<String> = r.all_items().map(|d| d.to_json_string()).collect();
    let want: Vec<String> = (0..1000)
        .map(|i| format!(r#"{{"b":{},"c":{}}}"#, i + 1, i * 2))
        .collect();
    assert_eq!(got, want);
    assert_eq!(
        stream_once(simple, registry, stream_batches(10_000)),
        10_000
    );
}

fn benches(c: &mut Criterion) {
    let registry = Registry::builtin();
    let simple = load(&chain_manifest(3), &registry);
    let complex = load(&chain_manifest(10), &registry);
    let fan = load(&fan_manifest(), &registry);
    check_outputs(&registry, &simple, &complex, &fan);

    c.bench_function("simple_100", |b| {
        b.iter_batched(
            || ints(100),
            |inputs| run_once(&simple, &registry, inputs),
            BatchSize::PerIteration,
        )
    });

    c.bench_function("complex_100", |b| {
        b.iter_batched(
            || ints(100),
            |inputs| run_once(&complex, &registry, inputs),
            BatchSize::PerIteration,
        )
    });

    let mut scaling = c.benchmark_group("scaling");
    for n in [10usize, 100, 1000] {
        scaling.throughput(Throughput::Elements(n as u64));
        scaling.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, &n| {
            b.iter_batched(
                || ints(n),
                |inputs| run_once(&simple, &registry, inputs),
                BatchSize::PerIteration,
            )
        });
    }
    scaling.finish();

    c.bench_function("graph_construction", |b| {
        b.iter_with_large_drop(|| Plan::build(black_box(&complex), &registry).expect("plan builds"))
    });

    let mut floor_group = c.benchmark_group("floor");
    for n in [100usize, 1000] {
        floor_group.throughput(Throughput::Elements(n as u64));
        floor_group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, &n| {
            b.iter_batched(
                || ints(n),
                |inputs| floor(black_box(inputs)).expect("no overflow"),
                BatchSize::PerIteration,
            )
        });
    }
    floor_group.finish();

    c.bench_function("fan_out_fan_in_1000", |b| {
        b.iter_batched(
            || ints(1000),
            |inputs| run_once(&fan, &registry, inputs),
            BatchSize::PerIteration,
        )
    });

    let mut streaming = c.benchmark_group("streaming_session");
    streaming.sample_size(10);
    streaming.throughput(Throughput::Elements(STREAM_ITEMS as u64));
    streaming.bench_function(BenchmarkId::from_parameter(STREAM_ITEMS), |b| {
        b.iter_batched(
            || stream_batches(STREAM_ITEMS),
            |batches| {
                let n = stream_once(&simple, &registry, batches);
                assert_eq!(n, STREAM_ITEMS);
                n
            },
            BatchSize::PerIteration,
        )
    });
    streaming.finish();
}

criterion_group!(pipeline_execution, benches);
criterion_main!(pipeline_execution);
