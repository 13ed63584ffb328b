//! The remote hop: one node run on an executor over loopback gRPC, against the same
//! pipeline run locally.
//!
//! - `remote_hop_small_items`: 100,000 integers through `in → work → out`, where `work`
//!   runs locally or on an in-process executor (items/s).
//! - `remote_hop_audio_1mib`: 32 audio buffers of 1 MiB each (bytes/s).
//! - `remote_hop_latency`: one item through a streaming session and back (time per item).
//!
//! Before the Criterion groups, the bench prints p50/p99 of the per-item round trip of
//! both pipelines and the difference (the latency one remote hop adds).
//!
//! `cargo bench -p remotemedia-remote --bench remote_hop`

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput};
use remotemedia_core::capabilities::CapabilitySet;
use remotemedia_core::data::AudioBuffer;
use remotemedia_core::executor::{run_pipeline, start_session, RunOptions};
use remotemedia_core::manifest::{self, Format, Pipeline};
use remotemedia_core::placement::{self, Policy};
use remotemedia_core::plan::Plan;
use remotemedia_core::{Data, Registry};
use remotemedia_remote::client::Endpoint;
use remotemedia_remote::server::{start, RunningServer, ServeConfig};
use remotemedia_remote::{distribute, probe, StageOptions};
use tokio::runtime::Runtime;

const SMALL_ITEMS: usize = 100_000;
const AUDIO_BUFFERS: usize = 32;
const AUDIO_BYTES: usize = 1 << 20;
const LATENCY_SAMPLES: usize = 5_000;

fn manifest(host: Option<&str>) -> String {
    let host = host.map_or(String::new(), |h| format!(r#","host":"{h}""#));
    format!(
        r#"{{"version":"v1","metadata":{{"name":"hop"}},
          "nodes":[{{"id":"in","node_type":"PassThrough"}},
                   {{"id":"work","node_type":"PassThrough"{host}}},
                   {{"id":"out","node_type":"PassThrough"}}],
          "connections":[{{"from":"in","to":"work"}},{{"from":"work","to":"out"}}]}}"#
    )
}

fn options() -> RunOptions {
    RunOptions {
        batch_size: 256,
        channel_capacity: 8,
        force_threads: true,
        ..RunOptions::default()
    }
}

/// A pipeline and the node types to run it with.
struct Runnable {
    pipeline: Pipeline,
    registry: Registry,
}

struct Setup {
    rt: Runtime,
    _server: RunningServer,
    local: Runnable,
    remote: Runnable,
}

fn setup() -> Setup {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let caps = CapabilitySet {
        cpu_cores: 2,
        arch: std::env::consts::ARCH.into(),
        memory_total_gb: 8.0,
        memory_available_gb: None,
        gpus: Vec::new(),
    };
    let server = rt
        .block_on(start(ServeConfig::new(
            caps.clone(),
            Registry::builtin(),
            0,
        )))
        .expect("executor");
    let registry = Registry::builtin();
    let local = Runnable {
        pipeline: manifest::load_str(&manifest(None), Format::Json, &registry).expect("manifest"),
        registry: registry.clone(),
    };
    let pinned =
        manifest::load_str(&manifest(Some("bench:1")), Format::Json, &registry).expect("manifest");
    let endpoint = Endpoint {
        name: "bench".into(),
        address: server.local_addr.to_string(),
        token: None,
        tls: None,
    };
    let info = rt.block_on(probe::probe(&endpoint, None, Duration::from_secs(5)));
    let placed = placement::place(&pinned, &caps, &[info], Policy::Greedy).expect("placement");
    let d = distribute(
        &pinned,
        &registry,
        &placed,
        &[endpoint],
        StageOptions::default(),
    )
    .expect("distribute");
    Setup {
        rt,
        _server: server,
        local,
        remote: Runnable {
            pipeline: d.pipeline,
            registry: d.registry,
        },
    }
}

fn run(r: &Runnable, inputs: Vec<Data>) -> usize {
    let result = run_pipeline(&r.pipeline, &r.registry, inputs, &options()).expect("run");
    result.outputs.iter().map(|s| s.items.len()).sum()
}

fn audio_buffers() -> Vec<Data> {
    let samples: Arc<[f32]> = (0..AUDIO_BYTES / 4)
        .map(|i| (i as f32 * 0.001).sin())
        .collect();
    (0..AUDIO_BUFFERS)
        .map(|_| Data::Audio(Arc::new(AudioBuffer::new(Arc::clone(&samples), 48_000, 1))))
        .collect()
}

/// Per-item round trips through a streaming session: one item in, its output out.
fn round_trips(r: &Runnable, n: usize) -> Vec<Duration> {
    let plan = Plan::build(&r.pipeline, &r.registry).expect("plan");
    let (sender, mut receiver) = start_session(plan, &options())
        .expect("session")
        .into_split();
    // Warm up (connection, first allocations).
    for i in 0..100 {
        sender.send(Data::Int(i)).expect("send");
        receiver.recv_batch().expect("output");
    }
    let mut times = Vec::with_capacity(n);
    for i in 0..n {
        let t = Instant::now();
        sender.send(Data::Int(i as i64)).expect("send");
        let (_, batch) = receiver.recv_batch().expect("output");
        times.push(t.elapsed());
        assert_eq!(batch.len(), 1);
    }
    drop(sender);
    receiver.finish().expect("finish");
    times
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let k = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[k]
}

fn latency_report(s: &Setup) {
    let mut rows = Vec::new();
    for (name, r) in [("local", &s.local), ("remote", &s.remote)] {
        let mut t = round_trips(r, LATENCY_SAMPLES);
        t.sort();
        let (p50, p99) = (percentile(&t, 0.5), percentile(&t, 0.99));
        println!(
            "remote_hop latency {name}: p50 {:.1} µs, p99 {:.1} µs ({LATENCY_SAMPLES} items)",
            p50.as_secs_f64() * 1e6,
            p99.as_secs_f64() * 1e6
        );
        rows.push((p50, p99));
    }
    println!(
        "remote_hop latency added by the hop: p50 {:.1} µs, p99 {:.1} µs",
        (rows[1].0.as_secs_f64() - rows[0].0.as_secs_f64()) * 1e6,
        (rows[1].1.as_secs_f64() - rows[0].1.as_secs_f64()) * 1e6
    );
}

fn benches(c: &mut Criterion, s: &Setup) {
    let small: Vec<Data> = (0..SMALL_ITEMS as i64).map(Data::Int).collect();
    let mut g = c.benchmark_group("remote_hop_small_items");
    g.sample_size(10);
    g.throughput(Throughput::Elements(SMALL_ITEMS as u64));
    for (name, r) in [("local", &s.local), ("remote", &s.remote)] {
        g.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter(|| assert_eq!(run(r, small.clone()), SMALL_ITEMS))
        });
    }
    g.finish();

    let audio = audio_buffers();
    let mut g = c.benchmark_group("remote_hop_audio_1mib");
    g.sample_size(10);
    g.throughput(Throughput::Bytes((AUDIO_BUFFERS * AUDIO_BYTES) as u64));
    for (name, r) in [("local", &s.local), ("remote", &s.remote)] {
        g.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter(|| assert_eq!(run(r, audio.clone()), AUDIO_BUFFERS))
        });
    }
    g.finish();

    let mut g = c.benchmark_group("remote_hop_latency");
    for (name, r) in [("local", &s.local), ("remote", &s.remote)] {
        let plan = Plan::build(&r.pipeline, &r.registry).expect("plan");
        let (sender, mut receiver) = start_session(plan, &options())
            .expect("session")
            .into_split();
        g.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter(|| {
                sender.send(Data::Int(1)).expect("send");
                receiver.recv_batch().expect("output")
            })
        });
        drop(sender);
        receiver.finish().expect("finish");
    }
    g.finish();
}

fn main() {
    let s = setup();
    let mut c = Criterion::default().configure_from_args();
    latency_report(&s);
    benches(&mut c, &s);
    c.final_summary();
    drop(s.rt);
}
