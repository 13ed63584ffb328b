//! The executor: a tonic server for `remotemedia.v1.Executor`.
//!
//! - **Binding**: whatever address it is given; the CLI defaults to loopback.
//! - **Auth**: with a token, every call needs `authorization: Bearer <token>`
//!   (compared in constant time); without one, only loopback clients are accepted.
//! - **Limits**: a largest message (larger ones get `OUT_OF_RANGE`, the connection and
//!   server live on), a number of concurrent streams and runs (more get
//!   `RESOURCE_EXHAUSTED`), inline Python source refused unless allowed.
//! - **Streams**: each `StreamPipeline` runs its chain on a blocking thread with a
//!   [`ChainRunner`]; one `outputs` answer per `items` message, so the client can
//!   acknowledge inputs by sequence number. Its messages are framed by this crate
//!   rather than by tonic's codec, so large payloads are not copied on the way in or
//!   out; the other calls go through the generated service.
//! - **Shutdown**: [`RunningServer::shutdown`] stops accepting, lets open streams
//!   finish for at most the drain timeout, then returns.
//! - **Metrics**: Prometheus text on an optional second address.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use remotemedia_core::capabilities::CapabilitySet;
use remotemedia_core::executor::{run_pipeline, RunOptions};
use remotemedia_core::manifest::{self, Pipeline};
use remotemedia_core::plan::Plan;
use remotemedia_core::Registry;
use serde_json::Value;
use subtle::ConstantTimeEq;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, Semaphore};
use tonic::body::Body;
use tonic::codegen::http::{self, header};
use tonic::codegen::{BoxFuture, Service};
use tonic::server::NamedService;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::server::TcpIncoming;
use tonic::{Code, Request, Response, Status, Streaming};

use crate::client::{CONNECTION_WINDOW, MAX_FRAME, STREAM_WINDOW};
use crate::convert::{capabilities_to_pb, failure_to_pb, items_from_pb, items_to_pb};
use crate::error::RemoteError;
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
}

impl ServeConfig {
    /// Loopback on `port`, no token, 64 streams, 64 MiB messages, 30 s drain.
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
        }
    }
}

/// Counters behind the Prometheus metrics.
#[derive(Debug, Default)]
pub struct Stats {
    active_streams: AtomicU64,
    streams_total: AtomicU64,
    executes_total: AtomicU64,
    items_in: AtomicU64,
    items_out: AtomicU64,
    node_failures: AtomicU64,
    rejected_auth: AtomicU64,
    rejected_limit: AtomicU64,
    rejected_invalid: AtomicU64,
    rejected_draining: AtomicU64,
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
}

impl Shared {
    fn load(&self) -> pb::Load {
        let active = self.stats.active_streams.load(Ordering::Relaxed);
        let max = self.config.max_streams.max(1) as u64;
        pb::Load {
            active_streams: active as u32,
            max_streams: max as u32,
            load: active as f64 / max as f64,
            items_processed: self.stats.items_in.load(Ordering::Relaxed),
        }
    }

    /// Takes a stream slot, or says why not.
    fn admit(&self) -> Result<tokio::sync::OwnedSemaphorePermit, Status> {
        if self.draining.load(Ordering::Relaxed) {
            bump(&self.stats.rejected_draining);
            return Err(Status::unavailable("the executor is shutting down"));
        }
        Arc::clone(&self.slots).try_acquire_owned().map_err(|_| {
            bump(&self.stats.rejected_limit);
            Status::resource_exhausted(format!(
                "the executor is at its limit of {} concurrent streams",
                self.config.max_streams
            ))
        })
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

    async fn execute_pipeline(
        &self,
        req: Request<pb::ExecuteRequest>,
    ) -> Result<Response<pb::ExecuteResponse>, Status> {
        let shared = Arc::clone(&self.shared);
        let permit = shared.admit()?;
        let req = req.into_inner();
        let pipeline = shared.pipeline(&req.manifest_json)?;
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
        let result = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let _active = ActiveStream::new(&worker.stats);
            run_pipeline(
                &pipeline,
                &worker.config.registry,
                inputs,
                &RunOptions::default(),
            )
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
        shared
            .stats
            .items_out
            .fetch_add(result.all_items().count() as u64, Ordering::Relaxed);
        Ok(Response::new(pb::ExecuteResponse {
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
        }))
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

/// The next message of a stream; a client that cancelled has simply gone.
async fn next_request(inbound: &mut wire::Reader) -> Result<Option<pb::StreamRequest>, Status> {
    match inbound.message().await {
        Err(s) if s.code() == Code::Cancelled => Ok(None),
        r => r,
    }
}

/// `StreamPipeline`: checks the `open` message, then answers with a stream fed by a
/// [`stream_worker`].
async fn stream_pipeline(shared: Arc<Shared>, body: Body) -> Result<http::Response<Body>, Status> {
    let permit = shared.admit()?;
    let mut inbound = wire::Reader::new(body, shared.config.max_message_bytes);
    let open = match next_request(&mut inbound).await? {
        Some(pb::StreamRequest {
            msg: Some(Req::Open(open)),
        }) => open,
        _ => {
            bump(&shared.stats.rejected_invalid);
            return Err(Status::invalid_argument(
                "the first message of a stream must be `open`",
            ));
        }
    };
    let pipeline = shared.pipeline(&open.manifest_json)?;
    let plan = Plan::build(&pipeline, &shared.config.registry)
        .map_err(|e| Status::invalid_argument(e.to_string()))?;
    let mut runner = ChainRunner::new(plan).map_err(|e| {
        bump(&shared.stats.rejected_invalid);
        Status::invalid_argument(e.to_string())
    })?;
    let ports = open.head_inputs.len().max(1);
    runner.set_head_inputs(open.head_inputs);
    bump(&shared.stats.streams_total);
    let (tx, rx) = mpsc::channel(4);
    let handle = tokio::runtime::Handle::current();
    let worker = Arc::clone(&shared);
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let _active = ActiveStream::new(&worker.stats);
        stream_worker(&worker, runner, ports, inbound, &tx, &handle);
    });
    let mut response = http::Response::new(Body::new(wire::Outgoing::response(rx)));
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, wire::GRPC_CONTENT_TYPE);
    Ok(response)
}

/// The executor's service: `StreamPipeline` framed by [`crate::wire`], every other
/// call through the generated service.
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
        if req.uri().path() != wire::STREAM_PIPELINE {
            return self.generated.call(req);
        }
        let shared = Arc::clone(&self.shared);
        Box::pin(async move {
            Ok(stream_pipeline(shared, req.into_body())
                .await
                .unwrap_or_else(|status| status.into_http()))
        })
    }
}

/// Counts a stream as active while alive.
struct ActiveStream<'a>(&'a Stats);

impl<'a> ActiveStream<'a> {
    fn new(stats: &'a Stats) -> Self {
        stats.active_streams.fetch_add(1, Ordering::Relaxed);
        Self(stats)
    }
}

impl Drop for ActiveStream<'_> {
    fn drop(&mut self) {
        self.0.active_streams.fetch_sub(1, Ordering::Relaxed);
    }
}

type Outbound = mpsc::Sender<wire::Encoded>;

fn respond(tx: &Outbound, msg: Resp) -> bool {
    tx.blocking_send(wire::encode(&pb::StreamResponse { msg: Some(msg) }))
        .is_ok()
}

/// Runs one stream: initialize, then one answer per `items`, then the summary.
fn stream_worker(
    shared: &Shared,
    mut runner: ChainRunner,
    ports: usize,
    mut inbound: wire::Reader,
    tx: &Outbound,
    handle: &tokio::runtime::Handle,
) {
    if let Err(e) = runner.initialize() {
        bump(&shared.stats.node_failures);
        respond(tx, Resp::Error(failure_to_pb(&e)));
        return;
    }
    let opened = pb::Opened {
        node_ids: runner.node_ids(),
        version: VERSION.to_string(),
    };
    if !respond(tx, Resp::Opened(opened)) {
        return;
    }
    loop {
        let next = handle.block_on(next_request(&mut inbound));
        match next {
            Ok(Some(pb::StreamRequest {
                msg: Some(Req::Items(chunk)),
            })) => {
                let n = chunk.items.len() as u64;
                let port = chunk.port as usize;
                if port >= ports {
                    bump(&shared.stats.rejected_invalid);
                    let _ = tx.blocking_send(Err(Status::invalid_argument(format!(
                        "input port {port} does not exist; the head has {ports}"
                    ))));
                    return;
                }
                let mut batch = match items_from_pb(chunk.items) {
                    Ok(b) => b,
                    Err(e) => {
                        bump(&shared.stats.rejected_invalid);
                        let _ = tx.blocking_send(Err(Status::invalid_argument(e.to_string())));
                        return;
                    }
                };
                shared.stats.items_in.fetch_add(n, Ordering::Relaxed);
                if let Err(e) = runner.push(port, &mut batch) {
                    bump(&shared.stats.node_failures);
                    respond(tx, Resp::Error(failure_to_pb(&e)));
                    return;
                }
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
                    return;
                }
            }
            Ok(Some(pb::StreamRequest {
                msg: Some(Req::Close(_)),
            })) => {
                let mut out = Vec::new();
                if let Err(e) = runner.finish(&mut out) {
                    bump(&shared.stats.node_failures);
                    respond(tx, Resp::Error(failure_to_pb(&e)));
                    return;
                }
                shared
                    .stats
                    .items_out
                    .fetch_add(out.len() as u64, Ordering::Relaxed);
                let skipped: Vec<pb::NodeFailure> =
                    runner.take_skipped().iter().map(failure_to_pb).collect();
                let report = runner.close();
                respond(
                    tx,
                    Resp::Summary(pb::Summary {
                        items: items_to_pb(&out),
                        skipped,
                        cleanup_errors: report.cleanup_errors.iter().map(failure_to_pb).collect(),
                        metrics_json: serde_json::to_string(&report.metrics).unwrap_or_default(),
                    }),
                );
                return;
            }
            Ok(Some(_)) => {
                bump(&shared.stats.rejected_invalid);
                let _ =
                    tx.blocking_send(Err(Status::invalid_argument("expected `items` or `close`")));
                return;
            }
            // The client went away (or its message was refused): clean up and stop.
            Ok(None) => return,
            Err(status) => {
                let _ = tx.blocking_send(Err(status));
                return;
            }
        }
    }
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
            None => req.remote_addr().is_some_and(|a| a.ip().is_loopback()),
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
    task: tokio::task::JoinHandle<Result<(), tonic::transport::Error>>,
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
    /// drain timeout. Returns `false` when streams were still open at the deadline.
    pub async fn shutdown(mut self) -> bool {
        self.shared.draining.store(true, Ordering::Relaxed);
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let drained = tokio::time::timeout(self.shared.config.drain_timeout, &mut self.task).await;
        if let Some(m) = self.metrics_task.take() {
            m.abort();
        }
        match drained {
            Ok(_) => true,
            Err(_) => {
                self.task.abort();
                false
            }
        }
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
    let shared = Arc::new(Shared {
        node_types: config.registry.types().map(String::from).collect(),
        slots: Arc::new(Semaphore::new(max_streams)),
        config,
        stats: Stats::default(),
        draining: AtomicBool::new(false),
    });
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
    // The builder's `tcp_nodelay` only applies to listeners it binds itself; without
    // it on accepted sockets, Nagle holds back small writes (answers, stream opens)
    // until the client's delayed ACK, about 40 ms later.
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    let server = tonic::transport::Server::builder()
        .initial_stream_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .max_frame_size(MAX_FRAME)
        .max_concurrent_streams(Some((max_streams as u32).saturating_mul(2).max(16)))
        .http2_keepalive_interval(Some(Duration::from_secs(10)))
        .http2_keepalive_timeout(Some(Duration::from_secs(10)))
        .add_service(InterceptedService::new(service, auth));
    let task = tokio::spawn(server.serve_with_incoming_shutdown(incoming, async {
        let _ = stopped.await;
    }));
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
    rt.block_on(async move {
        let server = start(config).await?;
        on_ready(&server);
        wait_for_signal().await?;
        tracing::info!(
            open_streams = server.active_streams(),
            "shutting down: draining open streams"
        );
        Ok(server.shutdown().await)
    })
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

/// A minimal HTTP/1 responder for `GET /metrics`.
async fn serve_metrics(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((mut sock, _)) = listener.accept().await else {
            continue;
        };
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
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
        "Streams and runs in progress.",
        &[("", get(&s.active_streams))],
    );
    metric(
        "remotemedia_stream_slots",
        "gauge",
        "Streams and runs allowed at once.",
        &[("", shared.config.max_streams as u64)],
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
        ],
    );
    metric(
        "remotemedia_draining",
        "gauge",
        "1 while shutting down.",
        &[("", u64::from(shared.draining.load(Ordering::Relaxed)))],
    );
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
        let config = ServeConfig::new(caps, Registry::builtin(), 0);
        Arc::new(Shared {
            node_types: Vec::new(),
            slots: Arc::new(Semaphore::new(1)),
            config,
            stats: Stats::default(),
            draining: AtomicBool::new(false),
        })
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
        for remote in ["10.1.2.3:4000", "192.168.0.7:50051", "[2001:db8::1]:1"] {
            let err = auth.call(from(remote, Some("Bearer x"))).unwrap_err();
            assert_eq!(err.code(), tonic::Code::PermissionDenied, "{remote}");
            assert_eq!(
                err.message(),
                "this executor has no token and accepts loopback clients only"
            );
        }
        // No address known (not a TCP connection): refused too.
        assert!(auth.call(Request::new(())).is_err());
        assert_eq!(shared.stats.rejected_auth.load(Ordering::Relaxed), 4);
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
}
