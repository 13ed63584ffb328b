//! Python node benchmarks: the seed's chains with every node a Python class, per host,
//! against the same classes called in a plain Python loop.
//!
//! Timing boundaries: classes are loaded and workers started once, outside the timed
//! loop (a pure-Python program also constructs its node objects once). Pipeline cases
//! run in one streaming session per case: each timed iteration sends 100 ints and
//! receives the 100 outputs. The Python-loop baselines construct the same node objects
//! once and time one call of a `Loop` node whose `process` runs the items through them
//! in a `for` loop, in the same interpreter (so it pays one host call per 100 items).
//!
//! Cases:
//! - `chain/{simple,complex}/{cpython,process,rustpython}`: PassThrough →
//!   Calculator(add 1) → PassThrough (simple) or 10 alternating nodes (complex), every
//!   node a Python class in that host; 100 ints per iteration;
//! - `python_loop/{simple,complex}/{cpython,rustpython}`: the same classes in a Python
//!   loop inside that interpreter (the cpython loop is also the process host's baseline);
//! - `mixed/simple_100`: native PassThrough → native Calculator(add 1) → Python
//!   Calculator(add 1, cpython) → native PassThrough; its baseline is
//!   `python_loop/mixed/cpython`, the same four steps as Python classes in a loop;
//! - `process_throughput/{1,2}`: 100,000 small ints through one Python node (add 1) in
//!   the process host with 1 or 2 workers, batches of 1024 (items/s);
//! - `rustpython_overhead/{host,direct}`: 1,000 calls of a method through the
//!   rustpython host (`Instance::run` on one batch, with value conversion and the
//!   driver) against the same method called in the same VM directly, in a Rust loop.
//!
//! Run: `cargo bench -p remotemedia-python --features rustpython --bench python_nodes`.

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use serde_json::{json, Value};

use remotemedia_core::executor::{start_session, RunOptions};
use remotemedia_core::manifest::{self, Format, Pipeline};
use remotemedia_core::plan::Plan;
use remotemedia_core::{Data, Registry};
use remotemedia_python::Runtime;

/// The node classes, in the SDK's `Node` shape, and the plain-loop baseline.
const NODES: &str = r#"
class PassThrough:
    def process(self, data):
        return data


class Calculator:
    def __init__(self, operation="add", operand=1):
        self.operation = operation
        self.operand = operand

    def process(self, data):
        if self.operation == "add":
            return data + self.operand
        if self.operation == "multiply":
            return data * self.operand
        raise ValueError("unknown operation " + self.operation)


class Loop:
    """Runs `items` through a chain of the classes above in a plain loop."""

    def __init__(self, chain, items=100):
        self.chain = [PassThrough() if kind == "p" else Calculator("add", 1) for kind in chain]
        self.items = list(range(items))

    def process(self, _):
        chain = self.chain
        out = []
        for x in self.items:
            for node in chain:
                x = node.process(x)
            out.append(x)
        return out[-1]


class Add:
    def process(self, x):
        return x + 1
"#;

const ITEMS: usize = 100;

fn python(id: String, class: &str, rt: Runtime, init: Value, extra: Value) -> Value {
    let mut params = json!({"class": class, "source": NODES, "runtime": rt.name(), "init": init});
    if let (Value::Object(p), Value::Object(e)) = (&mut params, extra) {
        p.extend(e);
    }
    json!({"id": id, "node_type": "PythonNode", "params": params})
}

fn chain(nodes: Vec<Value>) -> String {
    let connections: Vec<Value> = nodes
        .windows(2)
        .map(|w| json!({"from": w[0]["id"], "to": w[1]["id"]}))
        .collect();
    json!({"version": "v1", "metadata": {"name": "bench"}, "nodes": nodes, "connections": connections})
        .to_string()
}

/// `len` alternating PassThrough / Calculator(add 1) Python nodes in host `rt`.
fn python_chain(len: usize, rt: Runtime) -> String {
    chain(
        (0..len)
            .map(|i| {
                let (class, init) = if i % 2 == 0 {
                    ("PassThrough", json!({}))
                } else {
                    ("Calculator", json!({"operation": "add", "operand": 1}))
                };
                python(format!("n{i}"), class, rt, init, json!({}))
            })
            .collect(),
    )
}

fn mixed() -> String {
    chain(vec![
        json!({"id": "a", "node_type": "PassThrough"}),
        json!({"id": "b", "node_type": "Calculator", "params": {"operation": "add", "operand": 1}}),
        python(
            "c".into(),
            "Calculator",
            Runtime::CPython,
            json!({"operation": "add", "operand": 1}),
            json!({}),
        ),
        json!({"id": "d", "node_type": "PassThrough"}),
    ])
}

fn load(text: &str, registry: &Registry) -> Pipeline {
    manifest::load_str(text, Format::Json, registry).expect("benchmark manifest is valid")
}

fn ints(n: usize) -> Vec<Data> {
    (0..n as i64).map(Data::Int).collect()
}

/// A running session on `pipeline`: `round` sends a batch and waits for its outputs.
struct Running {
    sender: remotemedia_core::executor::SessionSender,
    receiver: Option<remotemedia_core::executor::SessionReceiver>,
}

impl Running {
    fn start(pipeline: &Pipeline, registry: &Registry) -> Running {
        let plan = Plan::build(pipeline, registry).expect("plan builds");
        let options = RunOptions {
            force_threads: true,
            ..RunOptions::default()
        };
        let (sender, receiver) = start_session(plan, &options)
            .expect("session starts")
            .into_split();
        Running {
            sender,
            receiver: Some(receiver),
        }
    }

    /// Sends `items` and returns the last output once all have come back.
    fn round(&mut self, items: Vec<Data>) -> Data {
        let n = items.len();
        self.sender
            .send_batch(items)
            .expect("session accepts input");
        let mut got = 0;
        let mut last = Data::Null;
        while got < n {
            let Some((_, batch)) = self.receiver.as_mut().expect("receiver").recv_batch() else {
                panic!("the session ended early: {}", self.end_error());
            };
            got += batch.len();
            if let Some(d) = batch.into_iter().last() {
                last = d;
            }
        }
        last
    }

    /// Why a session that stopped producing outputs ended (consumes the receiver).
    fn end_error(&mut self) -> String {
        match self.receiver.take().expect("receiver").finish() {
            Ok(r) => format!("no error; {} outputs in all", r.metrics.items_out),
            Err(f) => f.error.to_string(),
        }
    }

    fn finish(self) {
        self.sender.close();
        let receiver = self.receiver.expect("receiver");
        receiver.finish().expect("session succeeds");
    }
}

fn hosts() -> Vec<Runtime> {
    [Runtime::CPython, Runtime::Process, Runtime::RustPython]
        .into_iter()
        .filter(|r| r.compiled_in())
        .collect()
}

fn loop_node(rt: Runtime, chain: &str) -> String {
    self::chain(vec![python(
        "loop".into(),
        "Loop",
        rt,
        json!({"chain": chain, "items": ITEMS}),
        json!({}),
    )])
}

fn benches(c: &mut Criterion) {
    let registry = remotemedia_python::registry();

    // Chains of Python nodes, per host, and the plain Python loop.
    for (name, len, pattern) in [("simple", 3, "pcp"), ("complex", 10, "pcpcpcpcpc")] {
        let adds = (len / 2) as i64;
        let mut group = c.benchmark_group(format!("chain/{name}"));
        group.throughput(Throughput::Elements(ITEMS as u64));
        for rt in hosts() {
            let p = load(&python_chain(len, rt), &registry);
            let mut s = Running::start(&p, &registry);
            assert_eq!(s.round(ints(ITEMS)), Data::Int(ITEMS as i64 - 1 + adds));
            group.bench_function(BenchmarkId::from_parameter(rt), |b| {
                b.iter_batched(|| ints(ITEMS), |i| s.round(i), BatchSize::SmallInput)
            });
            s.finish();
        }
        group.finish();
        let mut group = c.benchmark_group(format!("python_loop/{name}"));
        group.throughput(Throughput::Elements(ITEMS as u64));
        for rt in hosts().into_iter().filter(|r| *r != Runtime::Process) {
            let p = load(&loop_node(rt, pattern), &registry);
            let mut s = Running::start(&p, &registry);
            assert_eq!(
                s.round(vec![Data::Null]),
                Data::Int(ITEMS as i64 - 1 + adds)
            );
            group.bench_function(BenchmarkId::from_parameter(rt), |b| {
                b.iter(|| s.round(vec![Data::Null]))
            });
            s.finish();
        }
        group.finish();
    }

    // Native nodes around one Python node, against the all-Python loop.
    if Runtime::CPython.compiled_in() {
        let mut group = c.benchmark_group("mixed");
        group.throughput(Throughput::Elements(ITEMS as u64));
        let p = load(&mixed(), &registry);
        let mut s = Running::start(&p, &registry);
        assert_eq!(s.round(ints(ITEMS)), Data::Int(ITEMS as i64 + 1));
        group.bench_function("simple_100", |b| {
            b.iter_batched(|| ints(ITEMS), |i| s.round(i), BatchSize::SmallInput)
        });
        s.finish();
        group.finish();
        let mut group = c.benchmark_group("python_loop/mixed");
        group.throughput(Throughput::Elements(ITEMS as u64));
        let p = load(&loop_node(Runtime::CPython, "pccp"), &registry);
        let mut s = Running::start(&p, &registry);
        assert_eq!(s.round(vec![Data::Null]), Data::Int(ITEMS as i64 + 1));
        group.bench_function("cpython", |b| b.iter(|| s.round(vec![Data::Null])));
        s.finish();
        group.finish();
    }

    // Throughput of the process host with batching.
    const STREAM: usize = 100_000;
    const BATCH: usize = 1024;
    let mut group = c.benchmark_group("process_throughput");
    group.sample_size(10);
    group.throughput(Throughput::Elements(STREAM as u64));
    for workers in [1usize, 2] {
        let text = chain(vec![python(
            "add".into(),
            "Add",
            Runtime::Process,
            json!({}),
            json!({"workers": workers}),
        )]);
        let p = load(&text, &registry);
        let mut s = Running::start(&p, &registry);
        let batches =
            || -> Vec<Vec<Data>> { ints(STREAM).chunks(BATCH).map(<[Data]>::to_vec).collect() };
        group.bench_function(BenchmarkId::from_parameter(workers), |b| {
            b.iter_batched(
                batches,
                |batches| {
                    let mut last = Data::Null;
                    for batch in batches {
                        last = s.round(batch);
                    }
                    assert_eq!(last, Data::Int(STREAM as i64));
                },
                BatchSize::PerIteration,
            )
        });
        s.finish();
    }
    group.finish();

    #[cfg(feature = "rustpython")]
    rustpython_overhead(c);
}

/// The rustpython host against direct calls in the same VM.
#[cfg(feature = "rustpython")]
fn rustpython_overhead(c: &mut Criterion) {
    use remotemedia_python::NodeSpec;
    use std::time::Duration;

    const CALLS: usize = 1000;
    let mut group = c.benchmark_group("rustpython_overhead");
    group.throughput(Throughput::Elements(CALLS as u64));
    let mut spec = NodeSpec::source(NODES, "Add");
    spec.runtime = Some(Runtime::RustPython);
    let mut node = remotemedia_python::load(&spec).expect("node loads");
    node.initialize("add").expect("initializes");
    let items = ints(CALLS);
    assert_eq!(
        node.run(&items).outputs.last(),
        Some(&Data::Int(CALLS as i64))
    );
    group.bench_function("host", |b| b.iter(|| node.run(&items)));
    group.bench_function("direct", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                total += remotemedia_python::rustpython::direct_call_loop(
                    NODES, "Add", "process", &items,
                )
                .expect("direct calls run");
            }
            total
        })
    });
    node.cleanup().expect("cleans up");
    group.finish();
}

criterion_group!(python_nodes, benches);
criterion_main!(python_nodes);
