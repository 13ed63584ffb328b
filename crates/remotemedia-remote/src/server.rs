//! The executor: a tonic server for `remotemedia.v1.Executor`.
//!
//! - **Binding**: whatever address it is given; the CLI defaults to loopback.
//! - **Auth**: with a token, every call needs `authorization: Bearer <token>`
//!   (compared in constant time); without one, only loopback clients are accepted.
//! - **Limits**: a largest message (larger ones get `OUT_OF_RANGE`, the connection and
//!   server live on), a number of concurrent streams and runs (more get
//!   `RESOURCE_EXHAUSTED`), inline Python source refused unless allowed. A slot is held
//!   from admission, so a stream that never sends its `open` message counts, and is
//!   refused after the handshake timeout.
//! - **Connections**: a bounded number, idle ones closed ([`crate::listener`]).
//! - **Memory**: every request message reserves its bytes and an estimate of its
//!   decoded size from a shared budget before it is decoded ([`crate::budget`]); one
//!   over the per-request limit or the budget gets `RESOURCE_EXHAUSTED`.
//! - **Per-request work**: nodes, nodes with `timeout_ms` (a thread each) and Python
//!   worker processes are bounded per request.
//! - **Cancellation**: a run whose client went away, or whose `grpc-timeout` passed,
//!   is cancelled ([`CancelToken`]): it stops at its next node call or back-off, cleans
//!   up and frees its slot.
//! - **Framing**: `ExecutePipeline` and `StreamPipeline` are framed by this crate
//!   rather than by tonic's codec, so large payloads are not copied on the way in or
//!   out and nothing is decoded before the budget allows it; the other calls go
//!   through the generated service.
//! - **Streams**: each `StreamPipeline` runs its chain on a blocking thread with a
//!   [`ChainRunner`]; one `outputs` answer per `items` message, so the client can
//!   acknowledge inputs by sequence number.
//! - **Shutdown**: [`RunningServer::shutdown`] stops accepting, lets open streams
//!   finish for at most the drain timeout, then cancels every run and returns;
//!   [`serve_blocking`] does not wait for node calls that never return.
//! - **Metrics**: Prometheus text on an optional second address.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use remotemedia_core::capabilities::CapabilitySet;
use remotemedia_core::executor::{run_pipeline, CancelOnDrop, CancelToken, RunOptions};
use remotemedia_core::manifest::{self, Pipeline};
use remotemedia_core::plan::Plan;
use remotemedia_core::Registry;
use serde_json::Value;
use subtle::ConstantTimeEq;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, Notify, Semaphore};
use tonic::body::Body;
use tonic::codegen::http::{self, header};
use tonic::codegen::{BoxFuture, Service};
use tonic::server::NamedService;
use tonic::service::interceptor::InterceptedService;
use tonic::{Code, Request, Response, Status, Streaming};

use crate::budget::{Budget, Reservation, Shape, MIB};
use crate::client::{CONNECTION_WINDOW, MAX_FRAME, STREAM_WINDOW};
use crate::convert::{capabilities_to_pb, failure_to_pb, items_from_pb, items_to_pb};
use crate::error::RemoteError;
use crate::frontend::SharedFrontend;
use crate::http::H2Settings;
use crate::listener::{ConnLimits, ConnStats, Incoming};
use crate::pb;
use crate::pb::executor_server::{Executor, ExecutorServer};
use crate::pb::stream_request::Msg as Req;
use crate::pb::stream_response::Msg as Resp;
use crate::wire;
use remotemedia_core::executor::ChainRunner;

/// The version executors report.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// How an executor runs.
#[derive(Clone, Debug)]
pub struct ServeConfig {
    /// Address to listen on (port 0 picks a free one).
    pub listen: SocketAddr,
    /// Bearer token; `None` accepts loopback clients only.
    pub token: Option<String>,
    /// What the executor advertises.
    pub capabilities: CapabilitySet,
    /// Node types it runs.
    pub registry: Registry,
    /// Run any code a client's params choose (node types whose
    /// `NodeFactory::executes_client_code` is true). Off, such node types make
    /// [`start`] fail: register the served form instead.
    pub allow_python_source: bool,
    /// Python node classes served to clients, for `GetCapabilities` (the registry's
    /// `PythonNode` is what enforces them).
    pub python_nodes: Vec<pb::ServedPythonNode>,
    /// Streams and runs at once; more are refused.
    pub max_streams: usize,
    /// Largest request message in bytes.
    pub max_message_bytes: usize,
    /// Where to serve Prometheus metrics, if anywhere.
    pub metrics_listen: Option<SocketAddr>,
    /// How long shutdown waits for open streams.
    pub drain_timeout: Duration,
    /// Advertised price per hour.
    pub cost_per_hour: Option<f64>,
    /// How long a stream may take to send its `open` message, and a run its request.
    pub handshake_timeout: Duration,
    /// Connections served at once; more are closed as soon as they are accepted.
    pub max_connections: usize,
    /// A connection that sends nothing for this long is closed. HTTP/2 keepalive
    /// pings go out well within it, so live clients always answer in time.
    pub idle_timeout: Duration,
    /// Memory, in bytes, that all requests together may hold decoded.
    pub memory_budget_bytes: usize,
    /// Memory, in bytes, that one request message may take decoded.
    pub max_request_memory_bytes: usize,
    /// Nodes in one request's pipeline.
    pub max_nodes: usize,
    /// Nodes with `timeout_ms` in one request (each runs on a thread of its own).
    pub max_timeout_nodes: usize,
    /// Python worker processes one request may start (the `workers` of its
    /// `PythonNode`s, `"auto"` counting as the CPU count).
    pub max_workers: usize,
    /// Routes served beside the executor on the same address (live sessions, a web
    /// page), drained with it.
    pub frontend: Option<SharedFrontend>,
    /// Serve every connection over TLS (see [`crate::tls::server_config`]).
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

/// The CPU count, for the `"auto"` worker count and the default worker limit.
fn cpu_count() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// A connection must send the HTTP/2 preface this soon (or within the idle timeout,
/// if shorter): a real client sends it at once.
const PREFACE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long runs cancelled at the drain deadline get to clean up before shutdown
/// returns anyway.
const CANCEL_GRACE: Duration = Duration::from_secs(1);

impl ServeConfig {
    /// Loopback on `port`, no token, 64 streams, 64 MiB messages, 30 s drain, 10 s
    /// handshakes, 1024 connections idle for at most 60 s, a 2 GiB memory budget
    /// with 512 MiB per request, 256 nodes, 32 with `timeout_ms` and as many Python
    /// workers as CPUs (at least 4) per request.
    pub fn new(capabilities: CapabilitySet, registry: Registry, port: u16) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], port)),
            token: None,
            capabilities,
            registry,
            allow_python_source: false,
            python_nodes: Vec::new(),
            max_streams: 64,
            max_message_bytes: 64 << 20,
            metrics_listen: None,
            drain_timeout: Duration::from_secs(30),
            cost_per_hour: None,
            handshake_timeout: Duration::from_secs(10),
            max_connections: 1024,
            idle_timeout: Duration::from_secs(60),
            memory_budget_bytes: 2048 * MIB,
            max_request_memory_bytes: 512 * MIB,
            max_nodes: 256,
            max_timeout_nodes: 32,
            // A few single-worker nodes are a normal pipeline even on a small machine.
            max_workers: cpu_count().max(4),
            frontend: None,
            tls: None,
        }
    }
}

/// Counters behind the Prometheus metrics.
#[derive(Debug, Default)]
pub struct Stats {
    active_streams: AtomicU64,
    capability_requests: AtomicU64,
    streams_total: AtomicU64,
    executes_total: AtomicU64,
    items_in: AtomicU64,
    items_out: AtomicU64,
    node_failures: AtomicU64,
    rejected_auth: AtomicU64,
    rejected_limit: AtomicU64,
    rejected_invalid: AtomicU64,
    rejected_draining: AtomicU64,
    rejected_memory: AtomicU64,
    rejected_handshake: AtomicU64,
    cancelled: AtomicU64,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

struct Shared {
    config: ServeConfig,
    node_types: Vec<String>,
    stats: Stats,
    slots: Arc<Semaphore>,
    draining: AtomicBool,
    conns: Arc<ConnStats>,
    budget: Arc<Budget>,
    /// The cancel token of every admitted request, by slot id: shutdown cancels them.
    runs: Mutex<HashMap<u64, CancelToken>>,
    next_slot: AtomicU64,
}

impl Shared {
    fn new(config: ServeConfig) -> Arc<Self> {
        Arc::new(Shared {
            node_types: config.registry.types().map(String::from).collect(),
            slots: Arc::new(Semaphore::new(config.max_streams.max(1))),
            budget: Budget::new(config.memory_budget_bytes),
            config,
            stats: Stats::default(),
            draining: AtomicBool::new(false),
            conns: Arc::new(ConnStats::default()),
            runs: Mutex::new(HashMap::new()),
            next_slot: AtomicU64::new(0),
        })
    }

    fn load(&self) -> pb::Load {
        let active = self.stats.active_streams.load(Ordering::Relaxed);
        let max = self.config.max_streams.max(1) as u64;
        let reserved = self.budget.used() as u64;
        let budget = self.budget.total().max(1) as u64;
        pb::Load {
            active_streams: active as u32,
            max_streams: max as u32,
            // A full memory budget refuses work as surely as full slots.
            load: (active as f64 / max as f64).max(reserved as f64 / budget as f64),
            items_processed: self.stats.items_in.load(Ordering::Relaxed),
            active_connections: self.conns.active.load(Ordering::Relaxed) as u32,
            max_connections: self.config.max_connections as u32,
            memory_reserved_bytes: reserved,
            memory_budget_bytes: budget,
        }
    }

    /// Takes a stream slot, or says why not. The slot counts as active from now on.
    fn admit(self: &Arc<Self>) -> Result<Slot, Status> {
        if self.draining.load(Ordering::Relaxed) {
            bump(&self.stats.rejected_draining);
            return Err(Status::unavailable("the executor is shutting down"));
        }
        let permit = Arc::clone(&self.slots).try_acquire_owned().map_err(|_| {
            bump(&self.stats.rejected_limit);
            Status::resource_exhausted(format!(
                "the executor is at its limit of {} concurrent streams (--max-streams)",
                self.config.max_streams
            ))
        })?;
        let id = self.next_slot.fetch_add(1, Ordering::Relaxed);
        let cancel = CancelToken::new();
        self.runs_lock().insert(id, cancel.clone());
        self.stats.active_streams.fetch_add(1, Ordering::Relaxed);
        Ok(Slot {
            shared: Arc::clone(self),
            id,
            cancel,
            _permit: permit,
        })
    }

    fn runs_lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, CancelToken>> {
        self.runs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Cancels every admitted request.
    fn cancel_all(&self) {
        for token in self.runs_lock().values() {
            token.cancel();
        }
    }

    /// Counts a refusal by the message reader (over the memory limits, or invalid).
    fn refused(&self, status: Status) -> Status {
        match status.code() {
            Code::ResourceExhausted => bump(&self.stats.rejected_memory),
            // Counted where they are decided.
            Code::Cancelled | Code::DeadlineExceeded => {}
            _ => bump(&self.stats.rejected_invalid),
        }
        status
    }

    /// A message reader for a request body, bounded by the message size limit and
    /// the memory budget.
    fn reader(&self, body: Body, shape: Shape) -> wire::Reader {
        wire::Reader::new(body, self.config.max_message_bytes).with_budget(
            Arc::clone(&self.budget),
            self.config.max_request_memory_bytes,
            shape,
        )
    }

    /// Refuses pipelines that would take more than one request's share of nodes,
    /// threads or processes.
    fn check_work(&self, pipeline: &Pipeline) -> Result<(), Status> {
        let c = &self.config;
        let nodes = pipeline.nodes.len();
        let timeouts = pipeline
            .nodes
            .iter()
            .filter(|n| n.timeout_ms.is_some())
            .count();
        let workers: usize = pipeline
            .nodes
            .iter()
            .filter(|n| n.node_type == PYTHON_NODE_TYPE)
            .map(|n| python_workers(&n.params))
            .fold(0, usize::saturating_add);
        let over = if nodes > c.max_nodes {
            Some(format!(
                "the pipeline has {nodes} nodes; this executor runs at most {} per request \
                 (--max-nodes)",
                c.max_nodes
            ))
        } else if timeouts > c.max_timeout_nodes {
            Some(format!(
                "the pipeline has {timeouts} nodes with `timeout_ms` (a thread each); this \
                 executor runs at most {} per request (--max-timeout-nodes)",
                c.max_timeout_nodes
            ))
        } else if workers > c.max_workers {
            Some(format!(
                "the pipeline's Python nodes ask for {workers} worker processes; this \
                 executor starts at most {} per request (--max-workers)",
                c.max_workers
            ))
        } else {
            None
        };
        match over {
            Some(message) => {
                bump(&self.stats.rejected_limit);
                Err(Status::resource_exhausted(message))
            }
            None => Ok(()),
        }
    }

    /// Parses and validates a manifest. What code it may run is the registry's
    /// business: an executor's registry serves only the Python classes it was told to
    /// (checked by [`start`]).
    fn pipeline(&self, manifest_json: &str) -> Result<Pipeline, Status> {
        let value: Value = serde_json::from_str(manifest_json).map_err(|e| {
            bump(&self.stats.rejected_invalid);
            Status::invalid_argument(format!("the manifest is not JSON: {e}"))
        })?;
        manifest::validate_value(&value, &self.config.registry).map_err(|e| {
            bump(&self.stats.rejected_invalid);
            Status::invalid_argument(format!("invalid manifest:\n{e}"))
        })
    }
}

/// The node type whose nodes may start Python worker processes.
const PYTHON_NODE_TYPE: &str = "PythonNode";

/// Worker processes a Python node may start: its `workers` (`"auto"`: the CPU
/// count), else one — an executor runs served Python nodes in the process host by
/// default, whatever runtime the client named.
fn python_workers(params: &remotemedia_core::registry::Params) -> usize {
    match params.get("workers") {
        Some(Value::String(_)) => cpu_count(),
        Some(v) => v
            .as_u64()
            .map_or(1, |n| usize::try_from(n).unwrap_or(usize::MAX)),
        None => 1,
    }
}

/// A request's stream slot: counted as active, its run cancellable at shutdown, until
/// dropped.
struct Slot {
    shared: Arc<Shared>,
    id: u64,
    cancel: CancelToken,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.shared.runs_lock().remove(&self.id);
        self.shared
            .stats
            .active_streams
            .fetch_sub(1, Ordering::Relaxed);
    }
}

/// The deadline a client set with `grpc-timeout`, if any (and well-formed).
fn grpc_timeout(headers: &http::HeaderMap) -> Option<Duration> {
    let text = headers.get("grpc-timeout")?.to_str().ok()?;
    let (digits, unit) = text.split_at(text.len().checked_sub(1)?);
    // The spec allows at most 8 digits.
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.saturating_mul(3600)),
        "M" => Duration::from_secs(n.saturating_mul(60)),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// How much earlier than a client's `grpc-timeout` its run is cancelled, at most (see
/// `Routes::call`).
const DEADLINE_MARGIN: Duration = Duration::from_millis(50);

/// A client's deadline: its `grpc-timeout`, and when this executor acts on it.
type Deadline = (Duration, tokio::time::Instant);

fn deadline_exceeded(after: Duration) -> Status {
    Status::deadline_exceeded(format!(
        "the request's deadline ({} ms, from grpc-timeout) passed; its run was cancelled",
        after.as_millis()
    ))
}

/// A gRPC response carrying the messages queued on `rx`, then the status; `guard` is
/// held until it has been sent (or dropped).
fn grpc_response(
    rx: mpsc::Receiver<wire::Encoded>,
    guard: impl Send + Sync + 'static,
) -> http::Response<Body> {
    let body = wire::Outgoing::response(rx).holding(guard);
    let mut response = http::Response::new(Body::new(body));
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, wire::GRPC_CONTENT_TYPE);
    response
}

/// The `remotemedia.v1.Executor` service.
#[derive(Clone)]
pub struct ExecutorService {
    shared: Arc<Shared>,
}

type ResponseStream =
    Pin<Box<dyn tokio_stream::Stream<Item = Result<pb::StreamResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Executor for ExecutorService {
    async fn get_capabilities(
        &self,
        _req: Request<pb::GetCapabilitiesRequest>,
    ) -> Result<Response<pb::GetCapabilitiesResponse>, Status> {
        let s = &self.shared;
        bump(&s.stats.capability_requests);
        Ok(Response::new(pb::GetCapabilitiesResponse {
            capabilities: Some(capabilities_to_pb(&s.config.capabilities)),
            node_types: s.node_types.clone(),
            load: Some(s.load()),
            version: VERSION.to_string(),
            cost_per_hour: s.config.cost_per_hour,
            python_nodes: s.config.python_nodes.clone(),
            python_source_allowed: s.config.allow_python_source,
        }))
    }

    async fn health(
        &self,
        _req: Request<pb::HealthRequest>,
    ) -> Result<Response<pb::HealthResponse>, Status> {
        let s = &self.shared;
        let status = if s.draining.load(Ordering::Relaxed) {
            pb::health_response::Status::Draining
        } else {
            pb::health_response::Status::Serving
        };
        Ok(Response::new(pb::HealthResponse {
            status: status as i32,
            load: Some(s.load()),
            version: VERSION.to_string(),
        }))
    }

    /// Never called: the executor answers `ExecutePipeline` itself, with its own
    /// framing, so that the request is bounded before it is decoded.
    async fn execute_pipeline(
        &self,
        _req: Request<pb::ExecuteRequest>,
    ) -> Result<Response<pb::ExecuteResponse>, Status> {
        Err(Status::unimplemented(
            "ExecutePipeline is served by the executor's routes",
        ))
    }

    type StreamPipelineStream = ResponseStream;

    /// Never called: the executor answers `StreamPipeline` itself, with its own framing,
    /// before the generated service sees the call.
    async fn stream_pipeline(
        &self,
        _req: Request<Streaming<pb::StreamRequest>>,
    ) -> Result<Response<Self::StreamPipelineStream>, Status> {
        Err(Status::unimplemented(
            "StreamPipeline is served by the executor's routes",
        ))
    }
}

/// `ExecutePipeline`: reads the request within the memory budget, runs it on a
/// blocking thread, answers with one message. Dropping this future (the client went
/// away) or reaching the client's deadline cancels the run.
async fn execute_pipeline(
    shared: Arc<Shared>,
    req: http::Request<Body>,
    deadline: Option<Deadline>,
) -> Result<http::Response<Body>, Status> {
    let slot = shared.admit()?;
    let cancel = slot.cancel.clone();
    // Held by this future: when hyper drops it (reset stream, closed connection) or it
    // ends at the deadline, the run stops at its next node call or back-off.
    let _cancel_on_drop = CancelOnDrop(cancel.clone());
    let work = execute(Arc::clone(&shared), slot, req.into_body());
    let response = match deadline {
        Some((after, at)) => match tokio::time::timeout_at(at, work).await {
            Ok(r) => r?,
            Err(_) => {
                bump(&shared.stats.cancelled);
                return Err(deadline_exceeded(after));
            }
        },
        None => work.await?,
    };
    let (response, guard) = response;
    let (tx, rx) = mpsc::channel(1);
    let _ = tx.try_send(wire::encode(&response));
    Ok(grpc_response(rx, guard))
}

/// What a run holds until its answer has been sent: its slot and its request's memory.
struct Held {
    _slot: Slot,
    _memory: Option<Reservation>,
}

/// Reads and runs one `ExecutePipeline` request; the answer, with what stays held
/// until it is sent.
async fn execute(
    shared: Arc<Shared>,
    slot: Slot,
    body: Body,
) -> Result<(pb::ExecuteResponse, Held), Status> {
    let mut inbound = shared.reader(body, Shape::Execute);
    let first = first_message(&shared, &mut inbound, "the request").await;
    let (req, held): (pb::ExecuteRequest, _) = match first {
        Ok(Some(m)) => m,
        Ok(None) => {
            bump(&shared.stats.rejected_invalid);
            return Err(Status::invalid_argument(
                "the call carried no request message",
            ));
        }
        Err(status) => return Err(shared.refused(status)),
    };
    let pipeline = shared.pipeline(&req.manifest_json)?;
    shared.check_work(&pipeline)?;
    let inputs = items_from_pb(req.inputs).map_err(|e| {
        bump(&shared.stats.rejected_invalid);
        Status::invalid_argument(e.to_string())
    })?;
    bump(&shared.stats.executes_total);
    shared
        .stats
        .items_in
        .fetch_add(inputs.len() as u64, Ordering::Relaxed);
    let worker = Arc::clone(&shared);
    let options = RunOptions {
        cancel: slot.cancel.clone(),
        ..RunOptions::default()
    };
    let items_in = inputs.len();
    tracing::info!(pipeline = %pipeline.name, items_in, "execute started");
    let span = tracing::Span::current();
    let (result, held) = tokio::task::spawn_blocking(move || {
        let _entered = span.enter();
        // The slot and the memory stay taken until the run has ended and cleaned up,
        // even when the caller stopped waiting for it (then they go with the closure),
        // and after that until the answer is sent.
        let held = Held {
            _slot: slot,
            _memory: held,
        };
        let result = run_pipeline(&pipeline, &worker.config.registry, inputs, &options);
        (result, held)
    })
    .await
    .map_err(|e| Status::internal(format!("the run panicked: {e}")))?;
    let (result, error) = match result {
        Ok(r) => (r, None),
        Err(f) => {
            bump(&shared.stats.node_failures);
            let error = match f.error.node_error() {
                Some(e) => failure_to_pb(e),
                None => pb::NodeFailure {
                    message: f.error.to_string(),
                    kind: "other".into(),
                    phase: "process".into(),
                    attempts: 1,
                    ..Default::default()
                },
            };
            (*f.partial, Some(error))
        }
    };
    let items_out = result.all_items().count();
    shared
        .stats
        .items_out
        .fetch_add(items_out as u64, Ordering::Relaxed);
    tracing::info!(
        items_in,
        items_out,
        outcome = if error.is_some() { "node_failed" } else { "ok" },
        "execute finished"
    );
    let response = pb::ExecuteResponse {
        outputs: result
            .outputs
            .iter()
            .map(|s| pb::SinkOutput {
                sink: s.sink.clone(),
                items: items_to_pb(&s.items),
            })
            .collect(),
        skipped: result.skipped.iter().map(failure_to_pb).collect(),
        error,
        metrics_json: serde_json::to_string(&result.metrics).unwrap_or_default(),
        cleanup_errors: result.cleanup_errors.iter().map(failure_to_pb).collect(),
    };
    Ok((response, held))
}

/// The slowest rate, in bytes per second, at which a call's first message may arrive
/// once the handshake timeout has passed: a large request on a slow link gets the time
/// it needs, one trickled in does not hold its slot for long.
const MIN_UPLOAD_RATE: f64 = MIB as f64;

/// The first message of a call and what it holds of the budget. It must be in within
/// the handshake timeout, plus a second per MiB its prefix announces: a call that
/// never sends it (or trickles it in) would otherwise hold its slot for as long as the
/// client answers keepalive pings.
async fn first_message<M: prost::Message + Default>(
    shared: &Shared,
    inbound: &mut wire::Reader,
    what: &str,
) -> Result<Option<(M, Option<Reservation>)>, Status> {
    let handshake = shared.config.handshake_timeout;
    let start = tokio::time::Instant::now();
    let mut deadline = start + handshake;
    loop {
        // Reading is cancel-safe: what arrived stays in the reader between polls.
        tokio::select! {
            r = inbound.message_reserved::<M>() => return r,
            () = tokio::time::sleep_until(deadline) => {}
        }
        let allowance = inbound.announced().map_or(Duration::ZERO, |len| {
            Duration::from_secs_f64(len as f64 / MIN_UPLOAD_RATE)
        });
        let allowed = start + handshake + allowance;
        if allowed <= deadline {
            bump(&shared.stats.rejected_handshake);
            return Err(Status::deadline_exceeded(format!(
                "{what} did not arrive within {:.1} s: the handshake timeout of {} s \
                 (--handshake-timeout), plus 1 s per MiB announced",
                (allowed - start).as_secs_f64(),
                handshake.as_secs_f64()
            )));
        }
        deadline = allowed;
    }
}

/// The next message of a stream and what it holds of the budget; a client that
/// cancelled has simply gone.
async fn next_request(
    inbound: &mut wire::Reader,
) -> Result<Option<(pb::StreamRequest, Option<Reservation>)>, Status> {
    match inbound.message_reserved().await {
        Err(s) if s.code() == Code::Cancelled => Ok(None),
        r => r,
    }
}

/// `StreamPipeline`: checks the `open` message (which must come within the handshake
/// timeout), then answers with a stream fed by a [`stream_worker`].
async fn stream_pipeline(
    shared: Arc<Shared>,
    req: http::Request<Body>,
    deadline: Option<Deadline>,
) -> Result<http::Response<Body>, Status> {
    // Dropped with this future until the worker takes it: a client that goes away
    // during the handshake frees the slot at once.
    let slot = shared.admit()?;
    let mut inbound = shared.reader(req.into_body(), Shape::Stream);
    let first = match first_message(&shared, &mut inbound, "the stream's `open` message").await {
        Ok(first) => first,
        // The client cancelled: it has gone.
        Err(s) if s.code() == Code::Cancelled => None,
        Err(s) => return Err(shared.refused(s)),
    };
    let open = match first {
        Some((
            pb::StreamRequest {
                msg: Some(Req::Open(open)),
            },
            _held,
        )) => open,
        _ => {
            bump(&shared.stats.rejected_invalid);
            return Err(Status::invalid_argument(
                "the first message of a stream must be `open`",
            ));
        }
    };
    let pipeline = shared.pipeline(&open.manifest_json)?;
    shared.check_work(&pipeline)?;
    let plan = Plan::build(&pipeline, &shared.config.registry)
        .map_err(|e| Status::invalid_argument(e.to_string()))?;
    let mut runner = ChainRunner::new(plan).map_err(|e| {
        bump(&shared.stats.rejected_invalid);
        Status::invalid_argument(e.to_string())
    })?;
    let ports = open.head_inputs.len().max(1);
    let label = (pipeline.name.clone(), runner.node_ids().join("+"));
    tracing::info!(
        pipeline = %label.0,
        nodes = %label.1,
        head_inputs = ?open.head_inputs,
        "stream opened"
    );
    runner.set_head_inputs(open.head_inputs);
    runner.set_cancel(&slot.cancel);
    bump(&shared.stats.streams_total);
    let (tx, rx) = mpsc::channel(4);
    let handle = tokio::runtime::Handle::current();
    let stop = Arc::new(Notify::new());
    // Watches the client for the worker, which is busy in node calls: when the
    // response is dropped (the client went away) or the deadline passes, the run is
    // cancelled, so a back-off or a wait for the next message ends at once.
    let (done_tx, done_rx) = oneshot::channel::<()>();
    let watch = Watch {
        tx: tx.clone(),
        cancel: slot.cancel.clone(),
        stop: Arc::clone(&stop),
        shared: Arc::clone(&shared),
    };
    tokio::spawn(watch.run(done_rx, deadline.map(|(_, at)| at)));
    let worker = Arc::clone(&shared);
    // Shared by the worker and the response: the slot is free once the run has ended
    // and its last answers have been sent (or the client is gone).
    let slot = Arc::new(slot);
    let body_slot = Arc::clone(&slot);
    // The worker logs in the request's span (it runs on a thread of its own).
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || {
        let _entered = span.enter();
        let _slot = slot;
        let _done = done_tx;
        let stream = Stream {
            shared: &worker,
            ports,
            tx: &tx,
            handle: &handle,
            stop: &stop,
            deadline,
        };
        stream.run(runner, inbound, &label);
    });
    Ok(grpc_response(rx, body_slot))
}

/// Cancels a stream's run when its client goes away or its deadline passes.
struct Watch {
    tx: Outbound,
    cancel: CancelToken,
    stop: Arc<Notify>,
    shared: Arc<Shared>,
}

impl Watch {
    /// Until the worker is done (`done` resolves when it drops the sender), watches
    /// the response and the deadline. Holding a sender here keeps the response open
    /// only as long as the worker runs.
    async fn run(self, done: oneshot::Receiver<()>, deadline: Option<tokio::time::Instant>) {
        let deadline = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            _ = done => return,
            _ = self.tx.closed() => {}
            _ = deadline => {}
        }
        bump(&self.shared.stats.cancelled);
        self.cancel.cancel();
        self.stop.notify_one();
    }
}

type Outbound = mpsc::Sender<wire::Encoded>;

fn respond(tx: &Outbound, msg: Resp) -> bool {
    tx.blocking_send(wire::encode(&pb::StreamResponse { msg: Some(msg) }))
        .is_ok()
}

/// One stream's worker, on a blocking thread.
struct Stream<'a> {
    shared: &'a Shared,
    ports: usize,
    tx: &'a Outbound,
    handle: &'a tokio::runtime::Handle,
    /// Woken by the [`Watch`] when the run was cancelled.
    stop: &'a Notify,
    deadline: Option<Deadline>,
}

impl Stream<'_> {
    fn fail(&self, status: Status) {
        let _ = self.tx.blocking_send(Err(status));
    }

    /// Ends a stream whose run failed: with the deadline's status when that was the
    /// cause, else with the node failure.
    fn node_failed(&self, e: &remotemedia_core::PipelineNodeError) -> Ended {
        if let Some((after, at)) = self.deadline {
            if tokio::time::Instant::now() >= at {
                let status = deadline_exceeded(after);
                let ended = Ended::with("deadline", status.message());
                self.fail(status);
                return ended;
            }
        }
        bump(&self.shared.stats.node_failures);
        respond(self.tx, Resp::Error(failure_to_pb(e)));
        Ended::with("node_failed", e)
    }

    /// Ends a stream with `status` (a refused or malformed message).
    fn refuse(&self, status: Status) -> Ended {
        let ended = Ended::with("invalid", status.message());
        self.fail(status);
        ended
    }

    /// Runs one stream and logs its end: the pipeline and nodes of `label`, items in
    /// and out, time, outcome.
    fn run(&self, runner: ChainRunner, inbound: wire::Reader, label: &(String, String)) {
        let start = Instant::now();
        let mut items = (0, 0);
        let ended = self.serve(runner, inbound, &mut items);
        tracing::info!(
            pipeline = %label.0,
            nodes = %label.1,
            items_in = items.0,
            items_out = items.1,
            duration_ms = start.elapsed().as_micros() as f64 / 1000.0,
            outcome = ended.outcome,
            error = ended.error.as_deref().unwrap_or(""),
            "stream closed"
        );
    }

    /// Runs one stream: initialize, then one answer per `items`, then the summary.
    /// Counts the items in and out in `items`; returns how it ended.
    fn serve(
        &self,
        mut runner: ChainRunner,
        mut inbound: wire::Reader,
        items: &mut (u64, u64),
    ) -> Ended {
        let shared = self.shared;
        let tx = self.tx;
        if let Err(e) = runner.initialize() {
            return self.node_failed(&e);
        }
        let opened = pb::Opened {
            node_ids: runner.node_ids(),
            version: VERSION.to_string(),
        };
        if !respond(tx, Resp::Opened(opened)) {
            return Ended::new("client_gone");
        }
        loop {
            let next = self.handle.block_on(async {
                tokio::select! {
                    biased;
                    _ = self.stop.notified() => None,
                    r = next_request(&mut inbound) => Some(r),
                }
            });
            let next = match next {
                Some(r) => r,
                // Cancelled while waiting for the client: at the deadline it is told
                // why; a client that went away is told nothing.
                None => {
                    if let Some((after, at)) = self.deadline {
                        self.fail(deadline_exceeded(after));
                        if tokio::time::Instant::now() >= at {
                            return Ended::new("deadline");
                        }
                    }
                    return Ended::new("cancelled");
                }
            };
            match next {
                Ok(Some((
                    pb::StreamRequest {
                        msg: Some(Req::Items(chunk)),
                    },
                    // The chunk's memory is held until it is answered.
                    _held,
                ))) => {
                    let n = chunk.items.len() as u64;
                    let port = chunk.port as usize;
                    if port >= self.ports {
                        bump(&shared.stats.rejected_invalid);
                        return self.refuse(Status::invalid_argument(format!(
                            "input port {port} does not exist; the head has {}",
                            self.ports
                        )));
                    }
                    let mut batch = match items_from_pb(chunk.items) {
                        Ok(b) => b,
                        Err(e) => {
                            bump(&shared.stats.rejected_invalid);
                            return self.refuse(Status::invalid_argument(e.to_string()));
                        }
                    };
                    shared.stats.items_in.fetch_add(n, Ordering::Relaxed);
                    items.0 += n;
                    if let Err(e) = runner.push(port, &mut batch) {
                        return self.node_failed(&e);
                    }
                    items.1 += batch.len() as u64;
                    shared
                        .stats
                        .items_out
                        .fetch_add(batch.len() as u64, Ordering::Relaxed);
                    let outputs = pb::Outputs {
                        through_seq: chunk.first_seq + n.max(1) - 1,
                        items: items_to_pb(&batch),
                        skipped: runner.take_skipped().iter().map(failure_to_pb).collect(),
                    };
                    if !respond(tx, Resp::Outputs(outputs)) {
                        return Ended::new("client_gone");
                    }
                }
                Ok(Some((
                    pb::StreamRequest {
                        msg: Some(Req::Close(_)),
                    },
                    _,
                ))) => {
                    let mut out = Vec::new();
                    if let Err(e) = runner.finish(&mut out) {
                        return self.node_failed(&e);
                    }
                    items.1 += out.len() as u64;
                    shared
                        .stats
                        .items_out
                        .fetch_add(out.len() as u64, Ordering::Relaxed);
                    let skipped: Vec<pb::NodeFailure> =
                        runner.take_skipped().iter().map(failure_to_pb).collect();
                    let report = runner.close();
                    let sent = respond(
                        tx,
                        Resp::Summary(pb::Summary {
                            items: items_to_pb(&out),
                            skipped,
                            cleanup_errors: report
                                .cleanup_errors
                                .iter()
                                .map(failure_to_pb)
                                .collect(),
                            metrics_json: serde_json::to_string(&report.metrics)
                                .unwrap_or_default(),
                        }),
                    );
                    return Ended::new(if sent { "ok" } else { "client_gone" });
                }
                Ok(Some(_)) => {
                    bump(&shared.stats.rejected_invalid);
                    return self.refuse(Status::invalid_argument("expected `items` or `close`"));
                }
                // The client went away: clean up and stop.
                Ok(None) => return Ended::new("client_gone"),
                // The message was refused (too large for the budget, malformed).
                Err(status) => return self.refuse(shared.refused(status)),
            }
        }
    }
}

/// How a stream ended, for its log: `ok`, `client_gone`, `cancelled`, `deadline`,
/// `node_failed` or `invalid`, with the error when there is one.
struct Ended {
    outcome: &'static str,
    error: Option<String>,
}

impl Ended {
    fn new(outcome: &'static str) -> Self {
        Self {
            outcome,
            error: None,
        }
    }

    fn with(outcome: &'static str, error: impl std::fmt::Display) -> Self {
        Self {
            outcome,
            error: Some(error.to_string()),
        }
    }
}

/// The executor's service: `ExecutePipeline` and `StreamPipeline` framed by
/// [`crate::wire`], every other call through the generated service.
#[derive(Clone)]
struct Routes {
    generated: ExecutorServer<ExecutorService>,
    shared: Arc<Shared>,
}

impl NamedService for Routes {
    const NAME: &'static str = pb::executor_server::SERVICE_NAME;
}

impl Service<http::Request<Body>> for Routes {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        let shared = Arc::clone(&self.shared);
        // tonic runs its own `grpc-timeout` timer around this service and answers a bare
        // CANCELLED when it fires. This deadline passes a little earlier (a tenth of the
        // time, at most 50 ms), so that the run is cancelled and the client hears this
        // executor's DEADLINE_EXCEEDED, saying why, even on a busy machine.
        let deadline = grpc_timeout(req.headers()).map(|after| {
            let margin = (after / 10).min(DEADLINE_MARGIN);
            (after, tokio::time::Instant::now() + after - margin)
        });
        match req.uri().path() {
            wire::STREAM_PIPELINE => Box::pin(async move {
                Ok(stream_pipeline(shared, req, deadline)
                    .await
                    .unwrap_or_else(|status| refused("stream", status)))
            }),
            wire::EXECUTE_PIPELINE => Box::pin(async move {
                Ok(execute_pipeline(shared, req, deadline)
                    .await
                    .unwrap_or_else(|status| refused("execute", status)))
            }),
            _ => self.generated.call(req),
        }
    }
}

/// Logs a call answered with an error before it ran (`what`: stream or execute) and
/// turns the status into the answer.
fn refused(what: &str, status: Status) -> http::Response<Body> {
    tracing::info!(
        call = what,
        code = ?status.code(),
        error = %status.message(),
        outcome = "refused",
        "call refused"
    );
    status.into_http()
}

/// Checks the bearer token, or that the client is on loopback when there is none.
#[derive(Clone)]
struct Auth {
    expected: Option<Arc<Vec<u8>>>,
    shared: Arc<Shared>,
}

impl tonic::service::Interceptor for Auth {
    fn call(&mut self, req: Request<()>) -> Result<Request<()>, Status> {
        let ok = match &self.expected {
            Some(expected) => req
                .metadata()
                .get("authorization")
                .map(|v| v.as_bytes())
                .is_some_and(|got| bool::from(got.ct_eq(expected.as_slice()))),
            // A dual-stack listener sees IPv4 clients as `::ffff:a.b.c.d`.
            None => req
                .remote_addr()
                .is_some_and(|a| a.ip().to_canonical().is_loopback()),
        };
        if ok {
            return Ok(req);
        }
        bump(&self.shared.stats.rejected_auth);
        Err(match &self.expected {
            Some(_) => Status::unauthenticated("missing or wrong bearer token"),
            None => Status::permission_denied(
                "this executor has no token and accepts loopback clients only",
            ),
        })
    }
}

/// A server started by [`start`].
pub struct RunningServer {
    /// The address it listens on.
    pub local_addr: SocketAddr,
    /// The metrics address, when serving metrics.
    pub metrics_addr: Option<SocketAddr>,
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
    metrics_task: Option<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for RunningServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningServer")
            .field("local_addr", &self.local_addr)
            .finish()
    }
}

impl RunningServer {
    /// Streams open now.
    pub fn active_streams(&self) -> u64 {
        self.shared.stats.active_streams.load(Ordering::Relaxed)
    }

    /// Graceful shutdown: stop accepting, let open streams finish for at most the
    /// drain timeout, then cancel every run still going, drop its connection and give
    /// it a moment to clean up. Returns `false` when streams were still open at the
    /// deadline. Never waits for a node call that does not return.
    pub async fn shutdown(mut self) -> bool {
        self.shared.draining.store(true, Ordering::Relaxed);
        let frontend = self.shared.config.frontend.clone();
        if let Some(f) = &frontend {
            f.0.drain();
        }
        // The listener stays open while draining: health probes get their answer
        // (`/readyz` 503) and new work a clear refusal, instead of a refused connection.
        let deadline = tokio::time::Instant::now() + self.shared.config.drain_timeout;
        let busy = |s: &Self| {
            s.active_streams() > 0 || frontend.as_ref().is_some_and(|f| f.0.active() > 0)
        };
        while busy(&self) && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let drained = !busy(&self);
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(m) = self.metrics_task.take() {
            m.abort();
        }
        if drained {
            // Connections left are idle or finishing an answer: a moment to close.
            if tokio::time::timeout(CANCEL_GRACE, &mut self.task)
                .await
                .is_err()
            {
                self.task.abort();
            }
            return true;
        }
        tracing::warn!(
            open_streams = self.active_streams(),
            open_sessions = frontend.as_ref().map_or(0, |f| f.0.active()),
            "drain timeout reached: cancelling the runs still open"
        );
        self.shared.cancel_all();
        if let Some(f) = &frontend {
            f.0.abort();
        }
        self.task.abort();
        // Cancelled runs stop at their next node call and clean up their nodes (worker
        // processes among them); one stuck inside a call is left behind.
        let grace = Instant::now() + CANCEL_GRACE;
        while busy(&self) && Instant::now() < grace {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    }
}

/// Binds and starts serving on the current tokio runtime.
pub async fn start(config: ServeConfig) -> Result<RunningServer, RemoteError> {
    let code = config.registry.code_executing_types();
    if !config.allow_python_source && !code.is_empty() {
        return Err(RemoteError::Config(format!(
            "node type(s) {} would run code chosen by clients; serve only chosen classes \
             (remotemedia_python::register_served) or allow client code explicitly",
            code.join(", ")
        )));
    }
    crate::memory::retain_freed_buffers();
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|e| RemoteError::Config(format!("cannot listen on {}: {e}", config.listen)))?;
    let local_addr = listener.local_addr()?;
    let metrics_listener = match config.metrics_listen {
        Some(a) => Some(
            TcpListener::bind(a)
                .await
                .map_err(|e| RemoteError::Config(format!("cannot serve metrics on {a}: {e}")))?,
        ),
        None => None,
    };
    let metrics_addr = match &metrics_listener {
        Some(l) => Some(l.local_addr()?),
        None => None,
    };
    let max_message = config.max_message_bytes;
    let max_streams = config.max_streams.max(1);
    let token = config.token.clone();
    let limits = ConnLimits {
        max_connections: config.max_connections.max(1),
        idle_timeout: config.idle_timeout,
        preface_timeout: PREFACE_TIMEOUT,
    };
    // Pings well within the idle timeout, so that a live client always has something
    // to answer before its connection counts as idle.
    let keepalive =
        (config.idle_timeout / 3).clamp(Duration::from_millis(250), Duration::from_secs(10));
    let shared = Shared::new(config);
    let auth = Auth {
        expected: token.map(|t| Arc::new(format!("Bearer {t}").into_bytes())),
        shared: Arc::clone(&shared),
    };
    let service = Routes {
        generated: ExecutorServer::new(ExecutorService {
            shared: Arc::clone(&shared),
        })
        .max_decoding_message_size(max_message)
        .max_encoding_message_size(usize::MAX),
        shared: Arc::clone(&shared),
    };
    let (stop, stopped) = oneshot::channel::<()>();
    let incoming = Incoming::new(listener, limits, Arc::clone(&shared.conns));
    let mut router =
        tonic::service::Routes::new(InterceptedService::new(service, auth)).into_axum_router();
    router = router.merge(orchestrator_routes(Arc::clone(&shared)));
    if let Some(frontend) = &shared.config.frontend {
        router = router.merge(frontend.0.routes());
    }
    // Unknown paths: gRPC's UNIMPLEMENTED for gRPC clients, a plain 404 for the rest.
    router = router.fallback(|req: axum::extract::Request| async move {
        use axum::response::IntoResponse;
        let grpc = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| t.starts_with("application/grpc"));
        if grpc {
            Status::unimplemented(format!("no method {}", req.uri().path()))
                .into_http::<axum::body::Body>()
                .into_response()
        } else {
            (axum::http::StatusCode::NOT_FOUND, "not found\n").into_response()
        }
    });
    let h2 = H2Settings {
        stream_window: STREAM_WINDOW,
        connection_window: CONNECTION_WINDOW,
        max_frame: MAX_FRAME,
        max_concurrent_streams: (max_streams as u32).saturating_mul(2).max(16),
        keepalive_interval: keepalive,
        keepalive_timeout: Duration::from_secs(10),
    };
    let tls = shared
        .config
        .tls
        .clone()
        .map(tokio_rustls::TlsAcceptor::from);
    let task = tokio::spawn(crate::http::serve(incoming, router, h2, tls, stopped));
    let metrics_task =
        metrics_listener.map(|l| tokio::spawn(serve_metrics(l, Arc::clone(&shared))));
    Ok(RunningServer {
        local_addr,
        metrics_addr,
        shared,
        stop: Some(stop),
        task,
        metrics_task,
    })
}

/// Runs an executor until SIGTERM or Ctrl-C, then drains: builds its own runtime.
/// `on_ready` is called once it listens (with the bound addresses).
pub fn serve_blocking(
    config: ServeConfig,
    on_ready: impl FnOnce(&RunningServer),
) -> Result<bool, RemoteError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .thread_name("rm-executor")
        .enable_all()
        .build()?;
    let result = rt.block_on(async move {
        let server = start(config).await?;
        on_ready(&server);
        wait_for_signal().await?;
        tracing::info!(
            open_streams = server.active_streams(),
            "shutting down: draining open streams"
        );
        Ok(server.shutdown().await)
    });
    // Dropping the runtime would wait for every blocking thread, and a run stuck in
    // a node call (already cancelled) never ends: leave those threads to the exit.
    rt.shutdown_background();
    if matches!(result, Ok(false)) {
        let killed = kill_child_processes();
        if killed > 0 {
            tracing::warn!(
                killed,
                "killed worker processes of runs stuck at the drain deadline"
            );
        }
    }
    result
}

/// Kills this process's child processes — the Python workers of runs still stuck in
/// a node call after the drain deadline, which would otherwise outlive the executor
/// until their call returned. Returns how many were signalled.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn kill_child_processes() -> usize {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    let mut killed = 0;
    for task in tasks.flatten() {
        let Ok(children) = std::fs::read_to_string(task.path().join("children")) else {
            continue;
        };
        for pid in children.split_whitespace().filter_map(|p| p.parse().ok()) {
            // SAFETY: `kill` takes plain integers and touches no memory of ours.
            if unsafe { libc::kill(pid, libc::SIGKILL) } == 0 {
                killed += 1;
            }
        }
    }
    killed
}

/// Elsewhere the workers are left to notice their closed pipes.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn kill_child_processes() -> usize {
    0
}

#[cfg(unix)]
async fn wait_for_signal() -> Result<(), RemoteError> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    tokio::select! {
        _ = term.recv() => {}
        r = tokio::signal::ctrl_c() => r?,
    }
    Ok(())
}

#[cfg(not(unix))]
async fn wait_for_signal() -> Result<(), RemoteError> {
    tokio::signal::ctrl_c().await?;
    Ok(())
}

/// Scrapes answered at once; more are closed at once, so that the metrics port
/// cannot be used to run the executor out of descriptors.
const METRICS_CONNECTIONS: usize = 16;

/// A minimal HTTP/1 responder for `GET /metrics`.
async fn serve_metrics(listener: TcpListener, shared: Arc<Shared>) {
    let scrapes = Arc::new(Semaphore::new(METRICS_CONNECTIONS));
    loop {
        let mut sock = match listener.accept().await {
            Ok((sock, _)) => sock,
            Err(e) => {
                // Out of descriptors, or one aborted connection: do not spin on it.
                tracing::debug!(error = %e, "metrics accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = Arc::clone(&scrapes).try_acquire_owned() else {
            continue;
        };
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            let _permit = permit;
            let mut buf = vec![0u8; 4096];
            let mut n = 0;
            let read = async {
                while n < buf.len() {
                    match sock.read(&mut buf[n..]).await {
                        Ok(0) | Err(_) => break,
                        Ok(k) => n += k,
                    }
                    if buf[..n].windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
            };
            if tokio::time::timeout(Duration::from_secs(5), read)
                .await
                .is_err()
            {
                return;
            }
            let request = String::from_utf8_lossy(&buf[..n]);
            let path = request.split_whitespace().nth(1).unwrap_or("/");
            let (status, body) = if path == "/metrics" || path == "/" {
                ("200 OK", render_metrics(&shared))
            } else {
                ("404 Not Found", "not found\n".to_string())
            };
            let response = format!(
                "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = sock.write_all(response.as_bytes()).await;
            let _ = sock.shutdown().await;
        });
    }
}

/// `/healthz` (alive), `/readyz` (accepting work: not draining) and `/metrics`
/// (Prometheus), answered on the executor's own address.
fn orchestrator_routes(shared: Arc<Shared>) -> axum::Router {
    use axum::http::StatusCode;
    use axum::routing::get;
    let ready = Arc::clone(&shared);
    axum::Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/readyz",
            get(move || {
                let draining = ready.draining.load(Ordering::Relaxed);
                async move {
                    if draining {
                        (StatusCode::SERVICE_UNAVAILABLE, "draining\n")
                    } else {
                        (StatusCode::OK, "ready\n")
                    }
                }
            }),
        )
        .route(
            "/metrics",
            get(move || {
                let body = render_metrics(&shared);
                async move { ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body) }
            }),
        )
}

fn render_metrics(shared: &Shared) -> String {
    let s = &shared.stats;
    let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, samples: &[(&str, u64)]| {
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
        for (labels, v) in samples {
            out.push_str(&format!("{name}{labels} {v}\n"));
        }
    };
    metric(
        "remotemedia_streams_active",
        "gauge",
        "Streams and runs holding a slot (handshakes included).",
        &[("", get(&s.active_streams))],
    );
    // The name autoscalers are configured with (beside remotemedia_active_sessions).
    metric(
        "remotemedia_active_streams",
        "gauge",
        "Streams and runs open now (the same count as remotemedia_streams_active).",
        &[("", get(&s.active_streams))],
    );
    metric(
        "remotemedia_stream_slots",
        "gauge",
        "Streams and runs allowed at once.",
        &[("", shared.config.max_streams as u64)],
    );
    metric(
        "remotemedia_capability_requests_total",
        "counter",
        "GetCapabilities calls answered (clients probing before they place nodes).",
        &[("", get(&s.capability_requests))],
    );
    metric(
        "remotemedia_streams_total",
        "counter",
        "Sub-graph streams opened.",
        &[("", get(&s.streams_total))],
    );
    metric(
        "remotemedia_execute_requests_total",
        "counter",
        "Whole-pipeline runs.",
        &[("", get(&s.executes_total))],
    );
    metric(
        "remotemedia_items_in_total",
        "counter",
        "Items received.",
        &[("", get(&s.items_in))],
    );
    metric(
        "remotemedia_items_out_total",
        "counter",
        "Items sent back.",
        &[("", get(&s.items_out))],
    );
    metric(
        "remotemedia_node_failures_total",
        "counter",
        "Streams and runs ended by a node failure.",
        &[("", get(&s.node_failures))],
    );
    metric(
        "remotemedia_rejected_requests_total",
        "counter",
        "Requests refused, by reason.",
        &[
            ("{reason=\"auth\"}", get(&s.rejected_auth)),
            ("{reason=\"limit\"}", get(&s.rejected_limit)),
            ("{reason=\"invalid\"}", get(&s.rejected_invalid)),
            ("{reason=\"draining\"}", get(&s.rejected_draining)),
            ("{reason=\"memory\"}", get(&s.rejected_memory)),
            ("{reason=\"handshake_timeout\"}", get(&s.rejected_handshake)),
        ],
    );
    metric(
        "remotemedia_runs_cancelled_total",
        "counter",
        "Runs cancelled because their client went away or their deadline passed.",
        &[("", get(&s.cancelled))],
    );
    let c = &shared.conns;
    metric(
        "remotemedia_connections_active",
        "gauge",
        "Client connections open.",
        &[("", get(&c.active))],
    );
    metric(
        "remotemedia_connection_slots",
        "gauge",
        "Client connections served at once.",
        &[("", shared.config.max_connections as u64)],
    );
    metric(
        "remotemedia_connections_total",
        "counter",
        "Client connections accepted and served.",
        &[("", get(&c.total))],
    );
    metric(
        "remotemedia_connections_closed_total",
        "counter",
        "Client connections closed by the executor, by reason.",
        &[
            ("{reason=\"limit\"}", get(&c.refused)),
            ("{reason=\"idle\"}", get(&c.timed_out)),
        ],
    );
    metric(
        "remotemedia_accept_pauses_total",
        "counter",
        "Times accepting paused because file descriptors or kernel memory ran out.",
        &[("", get(&c.accept_pauses))],
    );
    metric(
        "remotemedia_memory_reserved_bytes",
        "gauge",
        "Memory reserved by requests in progress (wire bytes and decoded estimate).",
        &[("", shared.budget.used() as u64)],
    );
    metric(
        "remotemedia_memory_budget_bytes",
        "gauge",
        "Memory all requests may reserve together.",
        &[("", shared.budget.total() as u64)],
    );
    metric(
        "remotemedia_draining",
        "gauge",
        "1 while shutting down.",
        &[("", u64::from(shared.draining.load(Ordering::Relaxed)))],
    );
    // The load GetCapabilities reports (what `balanced` placement ranks by), for an
    // autoscaler that scales on it rather than on raw counts.
    let load = shared.load();
    out.push_str(&format!(
        "# HELP remotemedia_load Load as reported to clients: the larger of streams per \
         slot and reserved memory per budget (0 idle, 1 full).\n# TYPE remotemedia_load \
         gauge\nremotemedia_load {}\n",
        load.load
    ));
    for (name, help, v) in [
        (
            "remotemedia_memory_reserved_bytes",
            "Memory reserved by admitted requests.",
            load.memory_reserved_bytes,
        ),
        (
            "remotemedia_memory_budget_bytes",
            "Memory that admitted requests may reserve.",
            load.memory_budget_bytes,
        ),
    ] {
        out.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}\n"
        ));
    }
    if let Some(f) = &shared.config.frontend {
        out.push_str(&f.0.metrics_text());
    }
    out
}

#[cfg(test)]
mod tests {
    use tonic::service::Interceptor;
    use tonic::transport::server::TcpConnectInfo;

    use super::*;

    fn shared() -> Arc<Shared> {
        let caps = CapabilitySet {
            cpu_cores: 1,
            arch: "x86_64".into(),
            memory_total_gb: 1.0,
            memory_available_gb: None,
            gpus: Vec::new(),
        };
        let mut config = ServeConfig::new(caps, Registry::builtin(), 0);
        config.max_streams = 1;
        Shared::new(config)
    }

    fn from(addr: &str, authorization: Option<&str>) -> Request<()> {
        let mut req = Request::new(());
        req.extensions_mut().insert(TcpConnectInfo {
            local_addr: None,
            remote_addr: Some(addr.parse().unwrap()),
        });
        if let Some(a) = authorization {
            req.metadata_mut()
                .insert("authorization", a.parse().unwrap());
        }
        req
    }

    #[test]
    fn without_a_token_only_loopback_clients_get_in() {
        let shared = shared();
        let mut auth = Auth {
            expected: None,
            shared: Arc::clone(&shared),
        };
        assert!(auth.call(from("127.0.0.1:4000", None)).is_ok());
        assert!(auth.call(from("[::1]:4000", None)).is_ok());
        // An IPv4 client of a dual-stack (`[::]`) listener.
        assert!(auth.call(from("[::ffff:127.0.0.1]:4000", None)).is_ok());
        for remote in [
            "10.1.2.3:4000",
            "192.168.0.7:50051",
            "[2001:db8::1]:1",
            "[::ffff:10.1.2.3]:1",
        ] {
            let err = auth.call(from(remote, Some("Bearer x"))).unwrap_err();
            assert_eq!(err.code(), tonic::Code::PermissionDenied, "{remote}");
            assert_eq!(
                err.message(),
                "this executor has no token and accepts loopback clients only"
            );
        }
        // No address known (not a TCP connection): refused too.
        assert!(auth.call(Request::new(())).is_err());
        assert_eq!(shared.stats.rejected_auth.load(Ordering::Relaxed), 5);
    }

    #[test]
    fn with_a_token_any_address_with_the_token_gets_in() {
        let mut auth = Auth {
            expected: Some(Arc::new(b"Bearer s3cret".to_vec())),
            shared: shared(),
        };
        assert!(auth
            .call(from("10.1.2.3:4000", Some("Bearer s3cret")))
            .is_ok());
        for bad in [
            None,
            Some("Bearer s3cre"),
            Some("s3cret"),
            Some("Bearer s3cret2"),
        ] {
            let err = auth.call(from("127.0.0.1:1", bad)).unwrap_err();
            assert_eq!(err.code(), tonic::Code::Unauthenticated, "{bad:?}");
        }
    }

    #[test]
    fn grpc_timeouts_are_read_in_every_unit() {
        let t = |v: &str| {
            let mut h = http::HeaderMap::new();
            h.insert("grpc-timeout", v.parse().unwrap());
            grpc_timeout(&h)
        };
        assert_eq!(t("2S"), Some(Duration::from_secs(2)));
        assert_eq!(t("1500m"), Some(Duration::from_millis(1500)));
        assert_eq!(t("3M"), Some(Duration::from_secs(180)));
        assert_eq!(t("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(t("250u"), Some(Duration::from_micros(250)));
        assert_eq!(t("99999999n"), Some(Duration::from_nanos(99_999_999)));
        for bad in ["", "S", "5", "5x", "123456789S", "-1S", "1.5S"] {
            assert_eq!(t(bad), None, "{bad:?}");
        }
        assert_eq!(grpc_timeout(&http::HeaderMap::new()), None);
    }

    fn pipeline(nodes: &str) -> Pipeline {
        let text = format!(
            r#"{{"version":"v1","metadata":{{"name":"p"}},"nodes":[{nodes}],"connections":[]}}"#
        );
        manifest::validate_value(&serde_json::from_str(&text).unwrap(), &Registry::builtin())
            .unwrap()
    }

    #[test]
    fn per_request_work_is_bounded_with_the_flag_named() {
        let mut config = ServeConfig::new(
            CapabilitySet {
                cpu_cores: 1,
                arch: "x86_64".into(),
                memory_total_gb: 1.0,
                memory_available_gb: None,
                gpus: Vec::new(),
            },
            Registry::builtin(),
            0,
        );
        config.max_nodes = 3;
        config.max_timeout_nodes = 1;
        let shared = Shared::new(config);
        let node =
            |i: usize, extra: &str| format!(r#"{{"id":"n{i}","node_type":"PassThrough"{extra}}}"#);
        let three = (0..3).map(|i| node(i, "")).collect::<Vec<_>>().join(",");
        assert!(shared.check_work(&pipeline(&three)).is_ok());
        let four = (0..4).map(|i| node(i, "")).collect::<Vec<_>>().join(",");
        let err = shared.check_work(&pipeline(&four)).unwrap_err();
        assert_eq!(err.code(), Code::ResourceExhausted);
        assert!(err.message().contains("4 nodes") && err.message().contains("--max-nodes"));
        let timed = [
            node(0, r#","timeout_ms":100"#),
            node(1, r#","timeout_ms":100"#),
        ]
        .join(",");
        let err = shared.check_work(&pipeline(&timed)).unwrap_err();
        assert!(
            err.message().contains("--max-timeout-nodes"),
            "{}",
            err.message()
        );
        assert_eq!(shared.stats.rejected_limit.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn python_workers_count_what_the_node_may_start() {
        let p = |json: &str| -> remotemedia_core::registry::Params {
            serde_json::from_str(json).unwrap()
        };
        assert_eq!(python_workers(&p(r#"{"workers": 64}"#)), 64);
        assert_eq!(python_workers(&p(r#"{"workers": "auto"}"#)), cpu_count());
        // Without `workers`, one: the executor's host may be the process host whatever
        // the client named.
        assert_eq!(python_workers(&p(r#"{"runtime": "process"}"#)), 1);
        assert_eq!(python_workers(&p(r#"{"runtime": "cpython"}"#)), 1);
        assert_eq!(python_workers(&p("{}")), 1);
    }

    #[test]
    fn slots_count_from_admission_and_shutdown_cancels_them() {
        let shared = shared();
        let slot = shared.admit().unwrap();
        assert_eq!(shared.load().active_streams, 1);
        assert_eq!(shared.load().load, 1.0);
        let err = shared.admit().err().unwrap();
        assert_eq!(err.code(), Code::ResourceExhausted);
        assert!(err.message().contains("--max-streams"));
        let token = slot.cancel.clone();
        shared.cancel_all();
        assert!(token.is_cancelled());
        drop(slot);
        assert_eq!(shared.load().active_streams, 0);
        assert!(shared.runs_lock().is_empty());
        assert!(shared.admit().is_ok());
    }
}
