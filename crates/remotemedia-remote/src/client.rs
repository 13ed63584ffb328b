//! Client side of the `remotemedia.v1.Executor` service.

use std::collections::HashMap;
use std::future::poll_fn;
use std::time::{Duration, Instant};

use remotemedia_core::capabilities::CapabilitySet;
use remotemedia_core::{Data, PipelineNodeError};
use tokio::sync::mpsc;
use tonic::body::Body;
use tonic::codegen::http::{self, header, HeaderValue};
use tonic::codegen::Service;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::service::Interceptor;
use tonic::transport::Channel;
use tonic::{Code, Status};

use crate::convert::{
    capabilities_from_pb, failure_from_pb, items_from_pb, items_to_pb, ConvertError,
};
use crate::error::RemoteError;
use crate::pb;
use crate::pb::stream_response::Msg as Resp;
use crate::tls::ClientTls;
use crate::wire;

/// HTTP/2 flow-control window per stream: how much may be in flight unacknowledged.
pub const STREAM_WINDOW: u32 = 16 << 20;
/// HTTP/2 flow-control window per connection.
pub const CONNECTION_WINDOW: u32 = 64 << 20;
/// Largest HTTP/2 frame either side accepts: big buffers travel in few frames.
pub const MAX_FRAME: u32 = 1 << 20;
/// Largest message a client accepts from an executor.
pub const MAX_CLIENT_MESSAGE: usize = 1 << 30;

/// How to reach one executor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// Name in messages.
    pub name: String,
    /// `host:port`.
    pub address: String,
    /// Bearer token, when the executor needs one.
    pub token: Option<String>,
    /// TLS, for an executor written `https://HOST:PORT`; `None` is plaintext.
    pub tls: Option<ClientTls>,
}

impl Endpoint {
    /// A plaintext endpoint.
    pub fn plain(
        name: impl Into<String>,
        address: impl Into<String>,
        token: Option<String>,
    ) -> Self {
        Self {
            name: name.into(),
            address: address.into(),
            token,
            tls: None,
        }
    }

    /// The address as a user writes it: `https://HOST:PORT` with TLS, else `HOST:PORT`.
    pub fn url(&self) -> String {
        match self.tls {
            Some(_) => format!("https://{}", self.address),
            None => self.address.clone(),
        }
    }

    /// Whether the address is on this machine (`localhost`, a loopback IP address),
    /// where a plaintext token stays off the network.
    pub fn is_loopback(&self) -> bool {
        let host = host_of(&self.address);
        host.eq_ignore_ascii_case("localhost")
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.to_canonical().is_loopback())
    }
}

/// The host of `HOST:PORT` (`[::1]:50051` gives `::1`).
pub fn host_of(address: &str) -> &str {
    let host = address.rsplit_once(':').map_or(address, |(h, _)| h);
    host.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
}

/// Adds `authorization: Bearer …` to every call.
#[derive(Clone, Debug)]
pub struct BearerAuth(Option<MetadataValue<Ascii>>);

impl Interceptor for BearerAuth {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(v) = &self.0 {
            req.metadata_mut().insert("authorization", v.clone());
        }
        Ok(req)
    }
}

type Inner = pb::executor_client::ExecutorClient<InterceptedService<Channel, BearerAuth>>;

/// A connection to one executor.
#[derive(Clone, Debug)]
pub struct ExecutorClient {
    endpoint: Endpoint,
    inner: Inner,
    /// The connection itself, for `StreamPipeline` (framed by [`crate::wire`]).
    channel: Channel,
    authorization: Option<HeaderValue>,
}

/// What `GetCapabilities` returned.
#[derive(Clone, Debug, PartialEq)]
pub struct RemoteCapabilities {
    /// The executor's capabilities.
    pub capabilities: CapabilitySet,
    /// Node types it runs.
    pub node_types: Vec<String>,
    /// Its load (active streams per slot).
    pub load: f64,
    /// Streams open now.
    pub active_streams: u32,
    /// Streams it runs at once.
    pub max_streams: u32,
    /// Its version.
    pub version: String,
    /// Its advertised cost per hour.
    pub cost_per_hour: Option<f64>,
    /// Python node classes it serves, as `NAME=module:Class`.
    pub python_nodes: Vec<String>,
    /// Whether it runs any Python code a client sends (`--allow-python-source`).
    pub python_source_allowed: bool,
}

/// The outcome of `ExecutePipeline`.
#[derive(Clone, Debug, PartialEq)]
pub struct ExecuteOutcome {
    /// Outputs per sink, in manifest order of the sinks.
    pub outputs: Vec<(String, Vec<Data>)>,
    /// Items skipped by `on_error: skip`.
    pub skipped: Vec<PipelineNodeError>,
    /// The failure, when the run failed.
    pub error: Option<PipelineNodeError>,
    /// The run's metrics as JSON.
    pub metrics: serde_json::Value,
}

/// Why a stream stopped early.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// A node failed on the executor; the stream is over.
    #[error("{0}")]
    Node(Box<PipelineNodeError>),
    /// The executor refused the stream, broke it or went away.
    #[error(transparent)]
    Executor(#[from] RemoteError),
}

/// The chain of causes of an error, `: `-joined.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let next = s.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        cur = s.source();
    }
    text
}

impl ExecutorClient {
    /// Connects, giving up after `timeout`.
    pub async fn connect(endpoint: &Endpoint, timeout: Duration) -> Result<Self, RemoteError> {
        let fail = |message: String| RemoteError::Connect {
            executor: endpoint.name.clone(),
            address: endpoint.url(),
            message,
        };
        let scheme = if endpoint.tls.is_some() {
            "https"
        } else {
            "http"
        };
        let mut builder =
            tonic::transport::Endpoint::from_shared(format!("{scheme}://{}", endpoint.address))
                .map_err(|e| fail(format!("invalid address: {e}")))?
                .connect_timeout(timeout)
                .tcp_nodelay(true)
                .initial_stream_window_size(STREAM_WINDOW)
                .initial_connection_window_size(CONNECTION_WINDOW)
                .max_frame_size(MAX_FRAME)
                .http2_keep_alive_interval(Duration::from_secs(10))
                .keep_alive_timeout(Duration::from_secs(10));
        if let Some(tls) = &endpoint.tls {
            let config = tls.config(timeout).map_err(|e| fail(format!("TLS: {e}")))?;
            builder = builder
                .tls_config(config)
                .map_err(|e| fail(format!("TLS: {}", error_chain(&e))))?;
        }
        let channel = builder.connect().await.map_err(|e| {
            let handshake = endpoint.tls.as_ref().and_then(|t| t.handshake_failure(&e));
            fail(handshake.unwrap_or_else(|| error_chain(&e)))
        })?;
        let bearer = endpoint.token.as_ref().map(|t| format!("Bearer {t}"));
        let invalid = || fail("the token is not valid header text".into());
        let auth = match &bearer {
            None => BearerAuth(None),
            Some(b) => BearerAuth(Some(b.parse().map_err(|_| invalid())?)),
        };
        let authorization = match &bearer {
            None => None,
            Some(b) => Some(HeaderValue::from_str(b).map_err(|_| invalid())?),
        };
        let inner = pb::executor_client::ExecutorClient::with_interceptor(channel.clone(), auth)
            .max_decoding_message_size(MAX_CLIENT_MESSAGE)
            .max_encoding_message_size(MAX_CLIENT_MESSAGE);
        Ok(Self {
            endpoint: endpoint.clone(),
            inner,
            channel,
            authorization,
        })
    }

    /// The endpoint this client talks to.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    fn rpc(&self, status: tonic::Status) -> RemoteError {
        let status = if refused_by_going_away(&status) {
            tonic::Status::unavailable(format!(
                "the executor is closing the connection and took no new call ({})",
                status.message()
            ))
        } else {
            status
        };
        RemoteError::Rpc {
            executor: self.endpoint.name.clone(),
            status: Box::new(status),
        }
    }

    fn protocol(&self, message: impl Into<String>) -> RemoteError {
        RemoteError::Protocol {
            executor: self.endpoint.name.clone(),
            message: message.into(),
        }
    }

    /// `GetCapabilities`.
    pub async fn capabilities(&mut self) -> Result<RemoteCapabilities, RemoteError> {
        let r = self
            .inner
            .get_capabilities(pb::GetCapabilitiesRequest {})
            .await
            .map_err(|s| self.rpc(s))?
            .into_inner();
        let load = r.load.unwrap_or_default();
        Ok(RemoteCapabilities {
            capabilities: capabilities_from_pb(
                r.capabilities
                    .ok_or_else(|| self.protocol("no capabilities in the answer"))?,
            ),
            node_types: r.node_types,
            load: load.load,
            active_streams: load.active_streams,
            max_streams: load.max_streams,
            version: r.version,
            cost_per_hour: r.cost_per_hour,
            python_nodes: r
                .python_nodes
                .iter()
                .map(|p| format!("{}={}:{}", p.name, p.module, p.class_name))
                .collect(),
            python_source_allowed: r.python_source_allowed,
        })
    }

    /// `Health`, with the measured round-trip time.
    pub async fn health(&mut self) -> Result<(pb::HealthResponse, Duration), RemoteError> {
        let start = Instant::now();
        let r = self
            .inner
            .health(pb::HealthRequest {})
            .await
            .map_err(|s| self.rpc(s))?
            .into_inner();
        Ok((r, start.elapsed()))
    }

    /// `ExecutePipeline`: runs a whole manifest (JSON) over `inputs`.
    pub async fn execute(
        &mut self,
        manifest_json: String,
        inputs: &[Data],
    ) -> Result<ExecuteOutcome, RemoteError> {
        let r = self
            .inner
            .execute_pipeline(pb::ExecuteRequest {
                manifest_json,
                inputs: items_to_pb(inputs),
            })
            .await
            .map_err(|s| self.rpc(s))?
            .into_inner();
        let mut outputs = Vec::with_capacity(r.outputs.len());
        for s in r.outputs {
            outputs.push((s.sink, items_from_pb(s.items)?));
        }
        Ok(ExecuteOutcome {
            outputs,
            skipped: r.skipped.into_iter().map(failure_from_pb).collect(),
            error: r.error.map(failure_from_pb),
            metrics: serde_json::from_str(&r.metrics_json).unwrap_or(serde_json::Value::Null),
        })
    }

    /// Opens a `StreamPipeline` for a sub-graph (a manifest whose nodes form one chain),
    /// and waits until the executor has initialized its nodes.
    pub async fn open_stream(
        &mut self,
        manifest_json: String,
        head_inputs: Vec<String>,
    ) -> Result<RemoteStream, StreamError> {
        let (tx, rx) = mpsc::channel(32);
        let open = pb::StreamRequest {
            msg: Some(pb::stream_request::Msg::Open(pb::Open {
                manifest_json,
                head_inputs,
            })),
        };
        tx.send(wire::encode(&open))
            .await
            .map_err(|_| self.protocol("request channel closed"))?;
        let mut request = http::Request::new(Body::new(wire::Outgoing::request(rx)));
        *request.method_mut() = http::Method::POST;
        *request.uri_mut() = http::Uri::from_static(wire::STREAM_PIPELINE);
        let headers = request.headers_mut();
        headers.insert(header::CONTENT_TYPE, wire::GRPC_CONTENT_TYPE);
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
        if let Some(a) = &self.authorization {
            headers.insert(header::AUTHORIZATION, a.clone());
        }
        let transport = |e: tonic::transport::Error| self.rpc(Status::from_error(Box::new(e)));
        let mut channel = self.channel.clone();
        poll_fn(|cx| channel.poll_ready(cx))
            .await
            .map_err(transport)?;
        let response = channel.call(request).await.map_err(transport)?;
        // An error before the stream starts comes as headers only.
        if let Some(status) = Status::from_header_map(response.headers()) {
            if status.code() != Code::Ok {
                return Err(self.rpc(status).into());
            }
        }
        if response.status() != http::StatusCode::OK {
            let status = Status::unknown(format!("HTTP status {}", response.status()));
            return Err(self.rpc(status).into());
        }
        let mut responses = Answers(wire::Reader::new(response.into_body(), MAX_CLIENT_MESSAGE));
        match responses.message().await {
            Ok(Some(pb::StreamResponse {
                msg: Some(Resp::Opened(o)),
            })) => Ok(RemoteStream {
                executor: self.endpoint.name.clone(),
                _open: OpenStream::new(&self.endpoint.address),
                tx,
                rx: responses,
                node_ids: o.node_ids,
            }),
            Ok(Some(pb::StreamResponse {
                msg: Some(Resp::Error(f)),
            })) => Err(StreamError::Node(Box::new(failure_from_pb(f)))),
            Ok(_) => Err(self
                .protocol("the stream did not start with `opened`")
                .into()),
            Err(s) => Err(self.rpc(s).into()),
        }
    }
}

/// The executor's answers on a stream, ended by its status.
#[derive(Debug)]
struct Answers(wire::Reader);

impl Answers {
    async fn message(&mut self) -> Result<Option<pb::StreamResponse>, Status> {
        if let Some(m) = self.0.message().await? {
            return Ok(Some(m));
        }
        match self.0.trailers().and_then(Status::from_header_map) {
            Some(s) if s.code() == Code::Ok => Ok(None),
            Some(s) => Err(s),
            None => Err(Status::unknown(
                "the executor ended the stream without a status",
            )),
        }
    }
}

/// A batch of items for the head's input `port`, numbered from `first_seq`.
#[derive(Clone, Debug, PartialEq)]
pub struct Chunk {
    /// Sequence number of the first item.
    pub first_seq: u64,
    /// Input port of the sub-graph's head.
    pub port: u32,
    /// The items.
    pub items: Vec<Data>,
}

impl Chunk {
    /// Sequence number of the last item.
    pub fn last_seq(&self) -> u64 {
        self.first_seq + (self.items.len() as u64).saturating_sub(1)
    }
}

/// What the executor sent at the end of a stream.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StreamSummary {
    /// What the nodes flushed at end of input.
    pub items: Vec<Data>,
    /// Items skipped by `on_error: skip` at finish.
    pub skipped: Vec<PipelineNodeError>,
    /// Cleanup errors on the executor.
    pub cleanup_errors: Vec<PipelineNodeError>,
    /// The sub-graph's metrics as JSON.
    pub metrics: serde_json::Value,
}

/// Streams this process has open, by executor address (see [`open_streams`]).
static OPEN_STREAMS: std::sync::LazyLock<std::sync::Mutex<HashMap<String, usize>>> =
    std::sync::LazyLock::new(Default::default);

/// How many `StreamPipeline` streams this process has open to `address` now: what a
/// cached load report of that executor is corrected by.
pub fn open_streams(address: &str) -> usize {
    let open = OPEN_STREAMS.lock().unwrap_or_else(|e| e.into_inner());
    open.get(address).copied().unwrap_or(0)
}

/// Counts one open stream to an address for as long as it lives.
#[derive(Debug)]
struct OpenStream(String);

impl OpenStream {
    fn new(address: &str) -> Self {
        let mut open = OPEN_STREAMS.lock().unwrap_or_else(|e| e.into_inner());
        *open.entry(address.to_string()).or_default() += 1;
        OpenStream(address.to_string())
    }
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        let mut open = OPEN_STREAMS.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&self.0) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.0);
            }
        }
    }
}

/// An open `StreamPipeline`.
#[derive(Debug)]
pub struct RemoteStream {
    executor: String,
    _open: OpenStream,
    tx: mpsc::Sender<wire::Encoded>,
    rx: Answers,
    /// Node ids of the sub-graph, as the executor reports them.
    pub node_ids: Vec<String>,
}

impl RemoteStream {
    fn broken(&self, message: impl Into<String>) -> StreamError {
        StreamError::Executor(RemoteError::Protocol {
            executor: self.executor.clone(),
            message: message.into(),
        })
    }

    fn status(&self, s: tonic::Status) -> StreamError {
        StreamError::Executor(RemoteError::Rpc {
            executor: self.executor.clone(),
            status: Box::new(s),
        })
    }

    /// Sends `chunks[*acked..]` and collects their outputs into `out`, keeping at most
    /// `window` chunks unanswered. Each answered chunk advances `*acked` — so after a
    /// failure, `chunks[*acked..]` are exactly the inputs whose outputs are missing —
    /// and adds items skipped on the executor to `skipped`.
    pub async fn exchange(
        &mut self,
        chunks: &[Chunk],
        acked: &mut usize,
        window: usize,
        out: &mut Vec<Data>,
        skipped: &mut Vec<PipelineNodeError>,
    ) -> Result<(), StreamError> {
        let window = window.max(1);
        let mut sent = *acked;
        while *acked < chunks.len() {
            let can_send = sent < chunks.len() && sent - *acked < window;
            tokio::select! {
                biased;
                permit = self.tx.reserve(), if can_send => {
                    let permit = permit.map_err(|_| self.broken("the request stream closed"))?;
                    let c = &chunks[sent];
                    permit.send(wire::encode(&pb::StreamRequest {
                        msg: Some(pb::stream_request::Msg::Items(pb::Items {
                            first_seq: c.first_seq,
                            port: c.port,
                            items: items_to_pb(&c.items),
                        })),
                    }));
                    sent += 1;
                }
                msg = self.rx.message() => {
                    match msg {
                        Ok(Some(pb::StreamResponse { msg: Some(Resp::Outputs(o)) })) => {
                            let expected = chunks[*acked].last_seq();
                            if sent <= *acked || o.through_seq != expected {
                                return Err(self.broken(format!(
                                    "answer through item {} while expecting {expected}",
                                    o.through_seq
                                )));
                            }
                            let items = items_from_pb(o.items)
                                .map_err(|e: ConvertError| self.broken(e.to_string()))?;
                            out.extend(items);
                            skipped.extend(o.skipped.into_iter().map(failure_from_pb));
                            *acked += 1;
                        }
                        Ok(Some(pb::StreamResponse { msg: Some(Resp::Error(f)) })) => {
                            return Err(StreamError::Node(Box::new(failure_from_pb(f))));
                        }
                        Ok(Some(_)) => return Err(self.broken("unexpected message")),
                        Ok(None) => return Err(self.broken("the executor ended the stream")),
                        Err(s) => return Err(self.status(s)),
                    }
                }
            }
        }
        Ok(())
    }

    /// Ends the input and waits for the executor's summary (what the nodes flushed).
    pub async fn close(mut self) -> Result<StreamSummary, StreamError> {
        let close = pb::StreamRequest {
            msg: Some(pb::stream_request::Msg::Close(pb::Close {})),
        };
        if self.tx.send(wire::encode(&close)).await.is_err() {
            return Err(self.broken("the request stream closed"));
        }
        match self.rx.message().await {
            Ok(Some(pb::StreamResponse {
                msg: Some(Resp::Summary(s)),
            })) => Ok(StreamSummary {
                items: items_from_pb(s.items).map_err(|e| self.broken(e.to_string()))?,
                skipped: s.skipped.into_iter().map(failure_from_pb).collect(),
                cleanup_errors: s.cleanup_errors.into_iter().map(failure_from_pb).collect(),
                metrics: serde_json::from_str(&s.metrics_json).unwrap_or_default(),
            }),
            Ok(Some(pb::StreamResponse {
                msg: Some(Resp::Error(f)),
            })) => Err(StreamError::Node(Box::new(failure_from_pb(f)))),
            Ok(Some(_)) => Err(self.broken("unexpected message instead of the summary")),
            Ok(None) => Err(self.broken("the executor ended the stream without a summary")),
            Err(s) => Err(self.status(s)),
        }
    }
}

/// Whether `status` reports a call the executor never took because it was closing the
/// connection (an HTTP/2 GOAWAY without error, as in a graceful shutdown). tonic reports
/// that as `Internal`; it is an unavailable executor, and the call may go elsewhere.
fn refused_by_going_away(status: &tonic::Status) -> bool {
    let mut source = std::error::Error::source(status);
    while let Some(e) = source {
        if let Some(h2) = e.downcast_ref::<h2::Error>() {
            return h2.is_go_away() && h2.is_remote() && h2.reason() == Some(h2::Reason::NO_ERROR);
        }
        source = e.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_streams_are_counted_while_they_live() {
        let address = "192.0.2.7:50051";
        assert_eq!(open_streams(address), 0);
        let a = OpenStream::new(address);
        let b = OpenStream::new(address);
        assert_eq!(open_streams(address), 2);
        drop(a);
        assert_eq!(open_streams(address), 1);
        drop(b);
        assert_eq!(open_streams(address), 0);
    }
}
