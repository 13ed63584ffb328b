//! The executor service in-process on loopback: what it runs, and everything it
//! refuses without going down — missing or wrong tokens, garbage bytes, oversized
//! messages, inline Python source, too many streams, protocol mistakes — plus
//! graceful shutdown and the local → remote fallback of a node that cannot start here.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use remotemedia_core::capabilities::{CapabilitySet, GpuInfo};
use remotemedia_core::executor::{run_pipeline, RunOptions};
use remotemedia_core::manifest::{self, Format, GpuType};
use remotemedia_core::placement::{self, Policy, Target};
use remotemedia_core::registry::{NodeDoc, NodeFactory, Params};
use remotemedia_core::{Data, ErrorKind, Node, NodeContext, NodeError, Registry};
use remotemedia_remote::client::{Chunk, Endpoint, ExecutorClient, StreamError};
use remotemedia_remote::pb;
use remotemedia_remote::pb::executor_client::ExecutorClient as RawClient;
use remotemedia_remote::server::{start, RunningServer, ServeConfig};
use remotemedia_remote::stage::RemoteEvent;
use remotemedia_remote::tonic::Code;
use remotemedia_remote::{distribute, probe, RemoteError, StageOptions};
use tokio::runtime::Runtime;

const TIMEOUT: Duration = Duration::from_secs(5);

fn gpu_caps() -> CapabilitySet {
    CapabilitySet {
        cpu_cores: 8,
        arch: "x86_64".into(),
        memory_total_gb: 32.0,
        memory_available_gb: None,
        gpus: vec![GpuInfo {
            kind: GpuType::Cuda,
            vendor: "NVIDIA".into(),
            model: "Test".into(),
            memory_gb: 24.0,
        }],
    }
}

fn cpu_caps() -> CapabilitySet {
    CapabilitySet {
        gpus: Vec::new(),
        ..gpu_caps()
    }
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// An executor on a free loopback port, configured by `tune`.
fn serve(rt: &Runtime, tune: impl FnOnce(&mut ServeConfig)) -> RunningServer {
    let mut config = ServeConfig::new(gpu_caps(), Registry::builtin(), 0);
    tune(&mut config);
    rt.block_on(start(config)).unwrap()
}

fn endpoint(server: &RunningServer, token: Option<&str>) -> Endpoint {
    Endpoint {
        name: "exec".into(),
        address: server.local_addr.to_string(),
        token: token.map(String::from),
        tls: None,
    }
}

async fn client(server_addr: SocketAddr, token: Option<&str>) -> ExecutorClient {
    let e = Endpoint {
        name: "exec".into(),
        address: server_addr.to_string(),
        token: token.map(String::from),
        tls: None,
    };
    ExecutorClient::connect(&e, TIMEOUT).await.unwrap()
}

fn rpc_status(e: &RemoteError) -> (Code, String) {
    match e {
        RemoteError::Rpc { status, .. } => (status.code(), status.message().to_string()),
        other => panic!("expected a gRPC status, got {other}"),
    }
}

fn stream_status(e: &StreamError) -> (Code, String) {
    match e {
        StreamError::Executor(e) => rpc_status(e),
        StreamError::Node(n) => panic!("expected a gRPC status, got a node failure: {n}"),
    }
}

const CALC: &str = r#"{"version":"v1","metadata":{"name":"calc"},
  "nodes":[{"id":"in","node_type":"PassThrough"},
           {"id":"add","node_type":"Calculator","params":{"operation":"add","operand":1}}],
  "connections":[{"from":"in","to":"add"}]}"#;

/// The executor still answers: the check after every abuse.
async fn still_serving(addr: SocketAddr, token: Option<&str>) {
    let mut c = client(addr, token).await;
    let caps = c.capabilities().await.unwrap();
    assert_eq!(caps.capabilities, gpu_caps());
    let out = c.execute(CALC.into(), &[Data::Int(1)]).await.unwrap();
    assert_eq!(out.outputs, vec![("add".to_string(), vec![Data::Int(2)])]);
}

#[test]
fn runs_manifests_and_reports_capabilities() {
    let rt = runtime();
    let server = serve(&rt, |c| c.cost_per_hour = Some(1.5));
    let addr = server.local_addr;
    rt.block_on(async {
        let mut c = client(addr, None).await;
        let caps = c.capabilities().await.unwrap();
        assert_eq!(caps.capabilities, gpu_caps());
        assert!(caps.node_types.iter().any(|t| t == "Calculator"));
        assert_eq!(caps.version, env!("CARGO_PKG_VERSION"));
        assert_eq!(caps.cost_per_hour, Some(1.5));
        assert_eq!(caps.load, 0.0);
        let (health, _) = c.health().await.unwrap();
        assert_eq!(health.status(), pb::health_response::Status::Serving);

        let inputs: Vec<Data> = (0..100).map(Data::Int).collect();
        let out = c.execute(CALC.into(), &inputs).await.unwrap();
        let expected: Vec<Data> = (1..101).map(Data::Int).collect();
        assert_eq!(out.outputs, vec![("add".to_string(), expected)]);
        assert_eq!(out.error, None);
        assert_eq!(out.metrics["items_in"], 100);

        // A node failure comes back as a structured error, not a broken call.
        let div = CALC.replace(r#""add","operand":1"#, r#""divide","operand":0"#);
        let out = c.execute(div, &[Data::Int(1)]).await.unwrap();
        let err = out.error.expect("division by zero fails");
        assert_eq!(err.node_id, "add");
        assert_eq!(err.node_type, "Calculator");
    });
}

#[test]
fn streams_a_chain_item_batches_in_order() {
    let rt = runtime();
    let server = serve(&rt, |_| {});
    let addr = server.local_addr;
    rt.block_on(async {
        let mut c = client(addr, None).await;
        let mut s = c.open_stream(CALC.into(), vec![]).await.unwrap();
        assert_eq!(s.node_ids, vec!["in", "add"]);
        let chunks: Vec<Chunk> = (0..20)
            .map(|k| Chunk {
                first_seq: k * 50,
                port: 0,
                items: (k * 50..k * 50 + 50).map(|i| Data::Int(i as i64)).collect(),
            })
            .collect();
        let (mut acked, mut out, mut skipped) = (0, Vec::new(), Vec::new());
        s.exchange(&chunks, &mut acked, 4, &mut out, &mut skipped)
            .await
            .unwrap();
        assert_eq!(acked, 20);
        assert_eq!(out, (1..1001).map(Data::Int).collect::<Vec<_>>());
        let summary = s.close().await.unwrap();
        assert_eq!(summary.items, vec![]);
        assert_eq!(summary.metrics["items_in"], 1000);
    });
}

#[test]
fn a_token_is_required_when_configured() {
    let rt = runtime();
    let server = serve(&rt, |c| c.token = Some("s3cret".into()));
    let e = endpoint(&server, None);
    rt.block_on(async {
        for token in [None, Some("wrong"), Some("s3cret ")] {
            let mut c = ExecutorClient::connect(
                &Endpoint {
                    token: token.map(String::from),
                    ..e.clone()
                },
                TIMEOUT,
            )
            .await
            .unwrap();
            let (code, message) = rpc_status(&c.capabilities().await.unwrap_err());
            assert_eq!(code, Code::Unauthenticated, "{token:?}");
            assert_eq!(message, "missing or wrong bearer token");
            let err = c.open_stream(CALC.into(), vec![]).await.unwrap_err();
            assert_eq!(stream_status(&err).0, Code::Unauthenticated);
            let err = c.execute(CALC.into(), &[]).await.unwrap_err();
            assert_eq!(rpc_status(&err).0, Code::Unauthenticated);
        }
        // The raw header without `Bearer ` is not the token either.
        let mut raw = RawClient::connect(format!("http://{}", e.address))
            .await
            .unwrap();
        let mut req = remotemedia_remote::tonic::Request::new(pb::HealthRequest {});
        req.metadata_mut()
            .insert("authorization", "s3cret".parse().unwrap());
        assert_eq!(
            raw.health(req).await.unwrap_err().code(),
            Code::Unauthenticated
        );
        still_serving(server.local_addr, Some("s3cret")).await;
    });
}

/// Writes `bytes` on a fresh connection, ends it, and reads whatever comes back until
/// the server closes the connection.
fn poke(addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut sock = TcpStream::connect(addr).unwrap();
    sock.set_read_timeout(Some(TIMEOUT)).unwrap();
    let _ = sock.write_all(bytes);
    let _ = sock.shutdown(std::net::Shutdown::Write);
    let mut back = Vec::new();
    let _ = sock.read_to_end(&mut back);
    back
}

#[test]
fn garbage_on_the_port_never_takes_the_server_down() {
    let rt = runtime();
    let server = serve(&rt, |_| {});
    let addr = server.local_addr;
    let mut noise = vec![0u8; 64 << 10];
    let mut x: u32 = 0x9e37_79b9;
    for b in noise.iter_mut() {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        *b = x as u8;
    }
    let preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    let mut bad_frames = preface.to_vec();
    // A SETTINGS frame with a length that is not a multiple of 6, then noise.
    bad_frames.extend_from_slice(&[0, 0, 5, 4, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5]);
    bad_frames.extend_from_slice(&noise[..1024]);
    let mut huge_frame = preface.to_vec();
    // A frame header announcing 16 MiB of DATA on stream 1.
    huge_frame.extend_from_slice(&[0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 1]);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("random bytes", noise.clone()),
        (
            "an HTTP/1 request",
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        ),
        ("a bad HTTP/2 frame", bad_frames),
        ("an oversized HTTP/2 frame", huge_frame),
        ("half a preface", preface[..10].to_vec()),
        ("nothing", Vec::new()),
    ];
    for (what, bytes) in &cases {
        poke(addr, bytes);
        rt.block_on(still_serving(addr, None));
        // Several at once.
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let b = bytes.clone();
                std::thread::spawn(move || poke(addr, &b))
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        rt.block_on(still_serving(addr, None));
        eprintln!("survived {what}");
    }

    // A well-formed gRPC call whose message is not protobuf.
    rt.block_on(async {
        let mut raw = RawClient::connect(format!("http://{addr}")).await.unwrap();
        // A valid request type with nonsense content: a manifest that is not JSON.
        let err = raw
            .execute_pipeline(pb::ExecuteRequest {
                manifest_json: "\u{0}\u{1}not json".into(),
                inputs: vec![],
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
        assert!(
            err.message().starts_with("the manifest is not JSON: "),
            "{}",
            err.message()
        );
        // Values that do not convert (audio whose byte count is not whole samples).
        let err = raw
            .execute_pipeline(pb::ExecuteRequest {
                manifest_json: CALC.into(),
                inputs: vec![pb::Value {
                    kind: Some(pb::value::Kind::AudioValue(pb::Audio {
                        sample_rate: 16_000,
                        channels: 1,
                        samples: vec![1u8, 2, 3].into(),
                        pts_us: 0,
                    })),
                }],
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{}", err.message());
        still_serving(addr, None).await;
    });
}

#[test]
fn oversized_messages_are_refused_and_the_connection_lives_on() {
    let rt = runtime();
    let server = serve(&rt, |c| c.max_message_bytes = 64 << 10);
    let addr = server.local_addr;
    rt.block_on(async {
        let mut c = client(addr, None).await;
        let big = Data::Bytes(vec![7u8; 256 << 10].into());
        let err = c
            .execute(CALC.into(), std::slice::from_ref(&big))
            .await
            .unwrap_err();
        let (code, message) = rpc_status(&err);
        assert_eq!(code, Code::OutOfRange, "{message}");
        assert!(message.contains("message length too large"), "{message}");

        // On a stream: refused, the stream ends with that status.
        let mut s = c.open_stream(CALC.into(), vec![]).await.unwrap();
        let chunks = [Chunk {
            first_seq: 0,
            port: 0,
            items: vec![big],
        }];
        let (mut acked, mut out, mut skipped) = (0, Vec::new(), Vec::new());
        let err = s
            .exchange(&chunks, &mut acked, 1, &mut out, &mut skipped)
            .await
            .unwrap_err();
        assert_eq!(acked, 0);
        assert_eq!(stream_status(&err).0, Code::OutOfRange);

        // The same client (same connection) carries on.
        let out = c.execute(CALC.into(), &[Data::Int(41)]).await.unwrap();
        assert_eq!(out.outputs[0].1, vec![Data::Int(42)]);
        still_serving(addr, None).await;
    });
}

/// A node type whose params choose code to run (like an unrestricted `PythonNode`).
struct RunsClientCode(std::sync::Arc<remotemedia_core::NodeDoc>);

impl remotemedia_core::NodeFactory for RunsClientCode {
    fn doc(&self) -> &remotemedia_core::NodeDoc {
        &self.0
    }
    fn validate(&self, _: &remotemedia_core::Params) -> Vec<remotemedia_core::ParamIssue> {
        Vec::new()
    }
    fn create(
        &self,
        _: &remotemedia_core::Params,
    ) -> Result<Box<dyn remotemedia_core::Node>, remotemedia_core::NodeError> {
        unreachable!("never built: the executor does not start")
    }
    fn executes_client_code(&self) -> bool {
        true
    }
}

#[test]
fn an_executor_with_a_node_type_running_client_code_starts_only_when_allowed() {
    let rt = runtime();
    let mut registry = Registry::builtin();
    registry.register(std::sync::Arc::new(RunsClientCode(
        remotemedia_core::NodeDoc::with_params::<remotemedia_core::NoParams>(
            "Shell",
            &[],
            "runs a command",
            "any",
            "any",
        ),
    )));
    let mut config = ServeConfig::new(gpu_caps(), registry, 0);
    let err = rt.block_on(start(config.clone())).unwrap_err();
    assert_eq!(
        err.to_string(),
        "node type(s) Shell would run code chosen by clients; serve only chosen classes \
         (remotemedia_python::register_served) or allow client code explicitly"
    );
    config.allow_python_source = true;
    let server = rt.block_on(start(config)).unwrap();
    rt.block_on(async {
        let mut c = client(server.local_addr, None).await;
        let caps = c.capabilities().await.unwrap();
        assert!(caps.node_types.iter().any(|t| t == "Shell"));
        assert!(caps.python_source_allowed);
    });
    let strict = serve(&rt, |_| {});
    rt.block_on(async {
        let caps = client(strict.local_addr, None).await.capabilities().await;
        let caps = caps.unwrap();
        assert!(!caps.python_source_allowed);
        assert!(caps.python_nodes.is_empty());
    });
}

#[test]
fn concurrent_streams_are_limited() {
    let rt = runtime();
    let server = serve(&rt, |c| c.max_streams = 1);
    let addr = server.local_addr;
    rt.block_on(async {
        let mut c = client(addr, None).await;
        let first = c.open_stream(CALC.into(), vec![]).await.unwrap();
        let err = c.open_stream(CALC.into(), vec![]).await.unwrap_err();
        assert_eq!(
            stream_status(&err),
            (
                Code::ResourceExhausted,
                "the executor is at its limit of 1 concurrent streams (--max-streams)".into()
            )
        );
        let err = c.execute(CALC.into(), &[]).await.unwrap_err();
        assert_eq!(rpc_status(&err).0, Code::ResourceExhausted);
        let caps = c.capabilities().await.unwrap();
        assert_eq!((caps.active_streams, caps.load), (1, 1.0));
        first.close().await.unwrap();
        // The slot is free again once the stream is over.
        let mut freed = false;
        for _ in 0..500 {
            if c.capabilities().await.unwrap().active_streams == 0 {
                freed = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(freed, "the closed stream still holds its slot");
        let again = c.open_stream(CALC.into(), vec![]).await.unwrap();
        again.close().await.unwrap();
    });
}

#[test]
fn stream_protocol_mistakes_get_clear_errors() {
    let rt = runtime();
    let server = serve(&rt, |_| {});
    let addr = server.local_addr;
    rt.block_on(async {
        let mut c = client(addr, None).await;
        // An invalid sub-graph: the validation message names the node and field.
        let bad = CALC.replace(r#""operation":"add""#, r#""operation":"plus""#);
        let (code, message) = stream_status(&c.open_stream(bad, vec![]).await.unwrap_err());
        assert_eq!(code, Code::InvalidArgument);
        assert!(message.starts_with("invalid manifest:\n"), "{message}");
        assert!(
            message.contains("add") && message.contains("plus"),
            "{message}"
        );

        // A sub-graph that is not a chain.
        let fan = r#"{"version":"v1","metadata":{"name":"fan"},
          "nodes":[{"id":"a","node_type":"PassThrough"},{"id":"b","node_type":"PassThrough"},
                   {"id":"c","node_type":"PassThrough"}],
          "connections":[{"from":"a","to":"b"},{"from":"a","to":"c"}]}"#;
        let (code, message) = stream_status(&c.open_stream(fan.into(), vec![]).await.unwrap_err());
        assert_eq!(code, Code::InvalidArgument);
        assert!(message.contains("not a chain"), "{message}");

        // An input port the head does not have.
        let mut s = c.open_stream(CALC.into(), vec![]).await.unwrap();
        let chunks = [Chunk {
            first_seq: 0,
            port: 3,
            items: vec![Data::Int(1)],
        }];
        let (mut acked, mut out, mut skipped) = (0, Vec::new(), Vec::new());
        let err = s
            .exchange(&chunks, &mut acked, 1, &mut out, &mut skipped)
            .await
            .unwrap_err();
        assert_eq!(
            stream_status(&err),
            (
                Code::InvalidArgument,
                "input port 3 does not exist; the head has 1".into()
            )
        );

        // A stream that does not start with `open`.
        let mut raw = RawClient::connect(format!("http://{addr}")).await.unwrap();
        let first = pb::StreamRequest {
            msg: Some(pb::stream_request::Msg::Close(pb::Close {})),
        };
        let err = raw
            .stream_pipeline(tokio_stream::iter(vec![first]))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
        assert_eq!(
            err.message(),
            "the first message of a stream must be `open`"
        );
        // Nothing at all.
        let err = raw
            .stream_pipeline(tokio_stream::iter(Vec::<pb::StreamRequest>::new()))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
        still_serving(addr, None).await;
    });
}

#[test]
fn shutdown_lets_open_streams_finish() {
    let rt = runtime();
    let server = serve(&rt, |_| {});
    let addr = server.local_addr;
    rt.block_on(async {
        let mut c = client(addr, None).await;
        let mut s = c.open_stream(CALC.into(), vec![]).await.unwrap();
        let draining = tokio::spawn(server.shutdown());
        // Wait until the executor is draining: it says so, or (once it has told the
        // connection to take no new calls) a new call fails.
        let mut seen = false;
        for _ in 0..500 {
            match c.health().await {
                Ok((h, _)) if h.status() == pb::health_response::Status::Serving => {}
                _ => {
                    seen = true;
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(seen, "the executor never started draining");
        // New work is refused: by the executor while it drains, or by the connection
        // it told to take no new calls.
        let err = c.execute(CALC.into(), &[]).await.unwrap_err();
        let (code, message) = rpc_status(&err);
        assert!(
            matches!(code, Code::Unavailable | Code::Cancelled),
            "{code:?}: {message}"
        );
        // …while the open stream carries on to its end.
        let chunks = [Chunk {
            first_seq: 0,
            port: 0,
            items: vec![Data::Int(1), Data::Int(2)],
        }];
        let (mut acked, mut out, mut skipped) = (0, Vec::new(), Vec::new());
        s.exchange(&chunks, &mut acked, 1, &mut out, &mut skipped)
            .await
            .unwrap();
        assert_eq!(out, vec![Data::Int(2), Data::Int(3)]);
        s.close().await.unwrap();
        drop(c);
        assert!(draining.await.unwrap(), "shutdown hit the drain deadline");
    });
}

#[test]
fn shutdown_gives_up_on_streams_open_past_the_deadline() {
    let rt = runtime();
    let server = serve(&rt, |c| c.drain_timeout = Duration::from_millis(200));
    let addr = server.local_addr;
    rt.block_on(async {
        let mut c = client(addr, None).await;
        let _s = c.open_stream(CALC.into(), vec![]).await.unwrap();
        assert!(
            !server.shutdown().await,
            "a stream never closed cannot drain"
        );
    });
}

/// `Scarce`: multiplies by 10 — but only where `available`; elsewhere it cannot start
/// (a resource error at initialize, like a model that does not fit in memory).
struct ScarceFactory {
    doc: std::sync::Arc<NodeDoc>,
    available: bool,
}

impl ScarceFactory {
    fn new(available: bool) -> Arc<Self> {
        Arc::new(Self {
            doc: NodeDoc::with_params::<remotemedia_core::NoParams>(
                "Scarce",
                &[],
                "Multiplies by 10 where it has the resources.",
                "integer",
                "integer",
            ),
            available,
        })
    }
}

struct Scarce {
    available: bool,
}

impl NodeFactory for ScarceFactory {
    fn doc(&self) -> &NodeDoc {
        &self.doc
    }

    fn validate(&self, params: &Params) -> Vec<remotemedia_core::ParamIssue> {
        self.doc.check(params)
    }

    fn create(&self, _params: &Params) -> Result<Box<dyn Node>, NodeError> {
        Ok(Box::new(Scarce {
            available: self.available,
        }))
    }
}

impl Node for Scarce {
    fn initialize(&mut self, _ctx: &NodeContext) -> Result<(), NodeError> {
        if self.available {
            Ok(())
        } else {
            Err(NodeError::new(
                ErrorKind::Resource,
                "cannot allocate 20 GB for the model",
            ))
        }
    }

    fn process(&mut self, item: Data, out: &mut Vec<Data>) -> Result<(), NodeError> {
        match item {
            Data::Int(i) => out.push(Data::Int(i * 10)),
            other => out.push(other),
        }
        Ok(())
    }
}

#[test]
fn a_node_that_cannot_start_locally_falls_back_to_an_executor() {
    let rt = runtime();
    let mut remote_registry = Registry::builtin();
    remote_registry.register(ScarceFactory::new(true));
    let server = serve(&rt, |c| c.registry = remote_registry);
    let mut local_registry = Registry::builtin();
    local_registry.register(ScarceFactory::new(false));
    let manifest = r#"{"version":"v1","metadata":{"name":"fallback"},
      "nodes":[{"id":"in","node_type":"PassThrough"},{"id":"big","node_type":"Scarce"},
               {"id":"out","node_type":"Calculator","params":{"operation":"add","operand":1}}],
      "connections":[{"from":"in","to":"big"},{"from":"big","to":"out"}]}"#;
    let pipeline = manifest::load_str(manifest, Format::Json, &local_registry).unwrap();
    let inputs: Vec<Data> = (1..=1000).map(Data::Int).collect();

    // Without executors the run fails on the local resource error.
    let err = run_pipeline(
        &pipeline,
        &local_registry,
        inputs.clone(),
        &RunOptions::default(),
    )
    .unwrap_err();
    assert!(err.error.to_string().contains("cannot allocate 20 GB"));

    let e = endpoint(&server, None);
    let info = rt.block_on(probe::probe(&e, None, TIMEOUT));
    let placed = placement::place(&pipeline, &cpu_caps(), &[info], Policy::Greedy).unwrap();
    assert!(placed.nodes.iter().all(|n| n.target == Target::Local));
    let d = distribute(
        &pipeline,
        &local_registry,
        &placed,
        &[e],
        StageOptions {
            local_registry: local_registry.clone(),
            ..StageOptions::default()
        },
    )
    .unwrap();
    let result = run_pipeline(&d.pipeline, &d.registry, inputs, &RunOptions::default()).unwrap();
    let expected: Vec<Data> = (1..=1000).map(|i| Data::Int(i * 10 + 1)).collect();
    assert_eq!(result.outputs[0].items, expected);
    let events = d.report.snapshot().events;
    assert_eq!(
        events,
        vec![RemoteEvent::Fallback {
            node: "big".into(),
            to: "exec".into(),
            reason: events
                .first()
                .map(|e| match e {
                    RemoteEvent::Fallback { reason, .. } => reason.clone(),
                    _ => String::new(),
                })
                .unwrap_or_default(),
        }]
    );
    assert!(events[0].to_string().contains("cannot allocate 20 GB"));
}
