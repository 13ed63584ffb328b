//! [`RemoteStage`]: a pipeline node that runs a placed sub-graph on a remote executor.
//!
//! The stage stands in for a chain of nodes placed on one executor. Each batch the
//! executor hands it is cut into chunks (small items batched up to
//! [`StageOptions::max_chunk_items`] / [`StageOptions::max_chunk_bytes`]), numbered by
//! sequence, and streamed over `StreamPipeline` with at most
//! [`StageOptions::window`] chunks unanswered (on top of HTTP/2 flow control); the
//! call returns when every chunk's outputs are back, so the outputs stay in input
//! order and the stage adds one round trip of latency per batch.
//!
//! **Failover**: when the executor breaks or vanishes mid-stream, the chunks not yet
//! answered are sent again — to the same executor once more (with exponential backoff
//! between connection attempts), then to the next compatible executor, then locally
//! when this machine can run the nodes. Answers are per chunk, so no output is lost or
//! repeated for stateless nodes. Nodes declared `stateful: true` start over with fresh
//! state on the new executor, and the [`RunReport`] says so. When every candidate has
//! failed, the error lists each one and why.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use remotemedia_core::manifest::{self, Format};
use remotemedia_core::metrics::{NodeMetrics, RunMetrics};
use remotemedia_core::plan::Plan;
use remotemedia_core::{
    Data, ErrorKind, Execution, ItemError, Node, NodeContext, NodeError, PipelineNodeError,
    Registry,
};
use serde::Serialize;

use crate::client::{Chunk, Endpoint, ExecutorClient, RemoteStream, StreamError, StreamSummary};
use crate::convert::approx_size;
use crate::error::RemoteError;
use crate::runtime::block_on;
use remotemedia_core::data::too_deep_message;
use remotemedia_core::executor::ChainRunner;
use remotemedia_core::MAX_DEPTH;

/// Where a sub-graph may run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Candidate {
    /// On this remote executor.
    Remote(Endpoint),
    /// In this process.
    Local,
}

impl Candidate {
    fn name(&self) -> &str {
        match self {
            Candidate::Remote(e) => &e.name,
            Candidate::Local => "local",
        }
    }
}

/// A sub-graph placed remotely: what a [`RemoteStage`] runs.
#[derive(Clone, Debug)]
pub struct GroupSpec {
    /// Node ids in chain order.
    pub node_ids: Vec<String>,
    /// Ids of the nodes among them declared `stateful: true`.
    pub stateful_nodes: Vec<String>,
    /// The sub-graph as a manifest (JSON): these nodes and the edges between them.
    pub manifest_json: String,
    /// Upstream ids of the head in the full graph (its input ports).
    pub head_inputs: Vec<String>,
    /// Where it may run, in order of preference; the first is where it was placed.
    pub candidates: Vec<Candidate>,
}

impl GroupSpec {
    /// `a → b → c`.
    pub fn label(&self) -> String {
        self.node_ids.join(" → ")
    }
}

/// Tuning of remote stages.
#[derive(Clone, Debug)]
pub struct StageOptions {
    /// Most items per chunk.
    pub max_chunk_items: usize,
    /// Most bytes per chunk (approximate; a larger single item travels alone).
    pub max_chunk_bytes: usize,
    /// Chunks in flight before waiting for answers.
    pub window: usize,
    /// Time limit for connecting to an executor.
    pub connect_timeout: Duration,
    /// Connection attempts per executor before moving to the next.
    pub connect_attempts: u32,
    /// Wait before the second attempt; doubles after each.
    pub initial_backoff: Duration,
    /// Node types for running a sub-graph locally (the last failover candidate).
    pub local_registry: Registry,
}

impl Default for StageOptions {
    fn default() -> Self {
        Self {
            max_chunk_items: 4096,
            max_chunk_bytes: 1 << 20,
            window: 8,
            connect_timeout: Duration::from_secs(3),
            connect_attempts: 3,
            initial_backoff: Duration::from_millis(25),
            local_registry: Registry::builtin(),
        }
    }
}

/// Something that happened to remote execution during a run.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum RemoteEvent {
    /// A sub-graph moved to another executor mid-stream.
    Failover {
        /// The nodes moved.
        nodes: Vec<String>,
        /// Where they ran.
        from: String,
        /// Where they run now.
        to: String,
        /// Why they moved.
        reason: String,
        /// Items sent again.
        resent_items: u64,
    },
    /// Stateful nodes lost their state in a failover and started over.
    StateRestarted {
        /// The stateful nodes.
        nodes: Vec<String>,
        /// Where they start over.
        executor: String,
        /// Items they had processed before.
        items_before: u64,
    },
    /// A node placed locally could not start for lack of resources and moved to an
    /// executor.
    Fallback {
        /// The node.
        node: String,
        /// Where it runs now.
        to: String,
        /// The local error.
        reason: String,
    },
}

impl fmt::Display for RemoteEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RemoteEvent::Failover {
                nodes,
                from,
                to,
                reason,
                resent_items,
            } => write!(
                f,
                "failover: {} moved from {from} to {to} ({resent_items} items resent): {reason}",
                nodes.join(" → ")
            ),
            RemoteEvent::StateRestarted {
                nodes,
                executor,
                items_before,
            } => write!(
                f,
                "stateful node(s) {} restarted with fresh state on {executor} after {items_before} items",
                nodes.join(", ")
            ),
            RemoteEvent::Fallback { node, to, reason } => {
                write!(f, "node `{node}` could not start locally ({reason}); running on {to}")
            }
        }
    }
}

/// What remote stages saw during a run; cloned handles share it.
#[derive(Clone, Debug, Default)]
pub struct RunReport(Arc<Mutex<ReportData>>);

/// The contents of a [`RunReport`].
#[derive(Clone, Debug, Default, Serialize)]
pub struct ReportData {
    /// Failovers, state restarts, fallbacks, in order.
    pub events: Vec<RemoteEvent>,
    /// Items skipped on executors (`on_error: skip`).
    pub skipped: Vec<PipelineNodeError>,
    /// Cleanup errors on executors.
    pub cleanup_errors: Vec<PipelineNodeError>,
    /// Metrics of each remote sub-graph, with where it finished.
    pub remote_metrics: Vec<RemoteMetrics>,
}

/// Metrics of one remote sub-graph.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RemoteMetrics {
    /// Its node ids, in chain order.
    pub nodes: Vec<String>,
    /// Where it finished: the executor's name, or `local` after a failover to this
    /// machine. After a failover, the executor's figures cover only what it ran.
    pub executor: String,
    /// The sub-graph's run metrics as that executor reported them (a `RunMetrics`).
    pub metrics: serde_json::Value,
    /// The stage's own figures in this run, once [`ReportData::merge_node_metrics`]
    /// has moved them here: items sent and received, and the time per batch with its
    /// round trips to the executor.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transport: Option<NodeMetrics>,
}

impl RemoteMetrics {
    /// Each node's entry as the executor reported it, marked with where it ran, in
    /// chain order; `None` when the report lacks one of them.
    fn node_entries(&self) -> Option<Vec<NodeMetrics>> {
        let reported = self.metrics.get("nodes")?.as_array()?;
        self.nodes
            .iter()
            .map(|id| {
                let entry = reported.iter().find(|n| n["node_id"] == id.as_str())?;
                let mut m: NodeMetrics = serde_json::from_value(entry.clone()).ok()?;
                m.executor = Some(self.executor.as_str().into());
                Some(m)
            })
            .collect()
    }
}

impl ReportData {
    /// Gives every remote node an entry of its own in `metrics.nodes`, shaped like a
    /// local node's and marked with the executor it ran on: the entry of the stage
    /// that stood for a sub-graph (under the id of its last node) is replaced by the
    /// entries of its nodes, in chain order, and moves to that sub-graph's
    /// [`RemoteMetrics::transport`]. A sub-graph whose executor reported no metrics
    /// for some of its nodes keeps the stage's entry. Running it again changes
    /// nothing.
    pub fn merge_node_metrics(&mut self, metrics: &mut RunMetrics) {
        for r in &mut self.remote_metrics {
            let Some(tail) = r.nodes.last() else { continue };
            let Some(at) = metrics
                .nodes
                .iter()
                .position(|n| &*n.node_id == tail.as_str() && n.executor.is_none())
            else {
                continue;
            };
            let Some(entries) = r.node_entries() else {
                continue;
            };
            r.transport = metrics.nodes.splice(at..=at, entries).next();
        }
    }
}

impl RunReport {
    fn with<R>(&self, f: impl FnOnce(&mut ReportData) -> R) -> R {
        let mut guard = self.0.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut guard)
    }

    /// Records an event (also logged at `info` level; callers report events to their
    /// users themselves).
    pub fn push(&self, e: RemoteEvent) {
        let kind = match &e {
            RemoteEvent::Failover { .. } => "failover",
            RemoteEvent::StateRestarted { .. } => "state_restarted",
            RemoteEvent::Fallback { .. } => "fallback",
        };
        tracing::info!(event = kind, "{e}");
        self.with(|d| d.events.push(e));
    }

    /// A copy of everything recorded.
    pub fn snapshot(&self) -> ReportData {
        self.with(|d| d.clone())
    }

    fn skipped(&self, mut items: Vec<PipelineNodeError>) {
        if !items.is_empty() {
            self.with(|d| d.skipped.append(&mut items));
        }
    }
}

/// Where a stage's items currently go.
enum Conn {
    Remote(Box<RemoteStream>),
    Local(Box<ChainRunner>),
}

/// Runs a [`GroupSpec`] remotely, with failover (see the module docs).
pub struct RemoteStage {
    spec: Arc<GroupSpec>,
    options: Arc<StageOptions>,
    report: RunReport,
    conn: Option<Conn>,
    /// Candidate in use.
    current: Option<usize>,
    /// Next candidate to try.
    next: usize,
    /// Mid-stream failures per candidate.
    failures: Vec<u32>,
    /// Why each abandoned attempt failed.
    tried: Vec<String>,
    /// A failover waiting for its destination: (from, reason, resent items).
    pending_failover: Option<(String, String, u64)>,
    next_seq: u64,
    processed_here: u64,
    /// When the current connection opened, and the outputs it has given so far.
    opened_at: Option<Instant>,
    outputs_here: u64,
    /// The current stream ended with a node failure.
    node_failed: bool,
}

impl fmt::Debug for RemoteStage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteStage")
            .field("nodes", &self.spec.node_ids)
            .field("current", &self.current)
            .finish()
    }
}

impl RemoteStage {
    /// How a remote stage is scheduled: its calls wait on the network.
    pub const EXECUTION: Execution = Execution::Dedicated;

    /// A stage for `spec`; it connects in [`Node::initialize`].
    pub fn new(spec: Arc<GroupSpec>, options: Arc<StageOptions>, report: RunReport) -> Self {
        let n = spec.candidates.len();
        Self {
            spec,
            options,
            report,
            conn: None,
            current: None,
            next: 0,
            failures: vec![0; n],
            tried: Vec::new(),
            pending_failover: None,
            next_seq: 0,
            processed_here: 0,
            opened_at: None,
            outputs_here: 0,
            node_failed: false,
        }
    }

    /// Logs the end of the current connection (`outcome`: ok, broken, node_failed,
    /// stopped) with what went through it.
    fn log_closed(&self, outcome: &str, error: Option<&str>) {
        let Some(i) = self.current else {
            return;
        };
        let duration_ms = self
            .opened_at
            .map_or(0.0, |t| t.elapsed().as_micros() as f64 / 1000.0);
        let (kind, executor, address) = match &self.spec.candidates[i] {
            Candidate::Remote(e) => ("remote stream closed", e.name.as_str(), e.address.as_str()),
            Candidate::Local => ("local run of the sub-graph closed", "local", ""),
        };
        tracing::info!(
            executor,
            address,
            nodes = %self.spec.label(),
            items = self.processed_here,
            outputs = self.outputs_here,
            duration_ms,
            outcome,
            error = error.unwrap_or(""),
            "{kind}"
        );
    }

    /// The candidate in use, if connected.
    pub fn current(&self) -> Option<&Candidate> {
        self.current.map(|i| &self.spec.candidates[i])
    }

    fn exhausted(&self) -> NodeError {
        NodeError::new(
            ErrorKind::Crashed,
            format!(
                "no executor left for {}; tried: {}",
                self.spec.label(),
                if self.tried.is_empty() {
                    "nothing".to_string()
                } else {
                    self.tried.join("; ")
                }
            ),
        )
    }

    /// Connects to the next candidate that works, retrying each with backoff.
    fn connect(&mut self) -> Result<(), NodeError> {
        // The first candidate that failed in this call, to report a move at start too.
        let mut passed_over: Option<(String, String)> = None;
        while self.next < self.spec.candidates.len() {
            let i = self.next;
            let candidate = self.spec.candidates[i].clone();
            let started = Instant::now();
            match self.open(&candidate)? {
                Ok(conn) => {
                    self.conn = Some(conn);
                    self.current = Some(i);
                    self.opened_at = Some(started);
                    self.outputs_here = 0;
                    self.node_failed = false;
                    match &candidate {
                        Candidate::Remote(e) => tracing::info!(
                            executor = %e.name,
                            address = %e.address,
                            nodes = %self.spec.label(),
                            duration_ms = started.elapsed().as_micros() as f64 / 1000.0,
                            "remote stream opened"
                        ),
                        Candidate::Local => tracing::info!(
                            nodes = %self.spec.label(),
                            "running the sub-graph locally: no executor left to take it"
                        ),
                    }
                    if self.pending_failover.is_none() {
                        if let Some((from, reason)) = passed_over {
                            self.pending_failover = Some((from, reason, 0));
                        }
                    }
                    if let Some((from, reason, resent)) = self.pending_failover.take() {
                        self.report.push(RemoteEvent::Failover {
                            nodes: self.spec.node_ids.clone(),
                            from,
                            to: candidate.name().to_string(),
                            reason,
                            resent_items: resent,
                        });
                        if !self.spec.stateful_nodes.is_empty() && self.processed_here > 0 {
                            self.report.push(RemoteEvent::StateRestarted {
                                nodes: self.spec.stateful_nodes.clone(),
                                executor: candidate.name().to_string(),
                                items_before: self.processed_here,
                            });
                        }
                    }
                    self.processed_here = 0;
                    return Ok(());
                }
                Err(reason) => {
                    tracing::info!(
                        executor = candidate.name(),
                        address = match &candidate {
                            Candidate::Remote(e) => e.address.as_str(),
                            Candidate::Local => "",
                        },
                        nodes = %self.spec.label(),
                        outcome = "unavailable",
                        reason = %reason,
                        "cannot open the stream here: trying the next candidate"
                    );
                    self.tried.push(format!("{}: {reason}", candidate.name()));
                    if passed_over.is_none() {
                        passed_over = Some((candidate.name().to_string(), reason));
                    }
                    self.next += 1;
                }
            }
        }
        Err(self.exhausted())
    }

    /// One candidate: `Ok(Ok(conn))`, `Ok(Err(why))` to move on, `Err` for a node
    /// failure that ends the run.
    fn open(&self, candidate: &Candidate) -> Result<Result<Conn, String>, NodeError> {
        match candidate {
            Candidate::Local => Ok(self.open_local()),
            Candidate::Remote(endpoint) => {
                let mut last = String::new();
                let attempts = self.options.connect_attempts.max(1);
                let mut made = 0;
                for attempt in 0..attempts {
                    made += 1;
                    if attempt > 0 {
                        let backoff = self.options.initial_backoff * 2u32.pow(attempt - 1);
                        tracing::debug!(
                            executor = %endpoint.name,
                            address = %endpoint.address,
                            attempt = attempt + 1,
                            max_attempts = attempts,
                            backoff_ms = backoff.as_micros() as f64 / 1000.0,
                            error = %last,
                            "retrying the connection"
                        );
                        std::thread::sleep(backoff);
                    }
                    let spec = &self.spec;
                    let timeout = self.options.connect_timeout;
                    let r = block_on(async {
                        let mut client = ExecutorClient::connect(endpoint, timeout)
                            .await
                            .map_err(StreamError::Executor)?;
                        client
                            .open_stream(spec.manifest_json.clone(), spec.head_inputs.clone())
                            .await
                    });
                    match r {
                        Ok(stream) => return Ok(Ok(Conn::Remote(Box::new(stream)))),
                        Err(StreamError::Node(e)) if e.kind == ErrorKind::Resource => {
                            return Ok(Err(format!("cannot start: {e}")));
                        }
                        Err(StreamError::Node(e)) => {
                            return Err(NodeError::new(
                                e.kind,
                                format!("on {}: {e}", endpoint.name),
                            ));
                        }
                        Err(StreamError::Executor(e)) => {
                            let permanent = matches!(&e, RemoteError::Rpc { status, .. }
                                if matches!(status.code(),
                                    tonic::Code::Unauthenticated
                                    | tonic::Code::PermissionDenied
                                    | tonic::Code::InvalidArgument
                                    | tonic::Code::Unimplemented));
                            last = e.to_string();
                            if permanent {
                                tracing::debug!(
                                    executor = %endpoint.name,
                                    error = %last,
                                    "the executor refused the stream: not retried"
                                );
                                break;
                            }
                        }
                    }
                }
                Ok(Err(format!(
                    "{} ({} attempt(s))",
                    last.strip_prefix(&format!("{}: ", endpoint.name))
                        .unwrap_or(&last),
                    made
                )))
            }
        }
    }

    fn open_local(&self) -> Result<Conn, String> {
        let registry = &self.options.local_registry;
        let pipeline = manifest::load_str(&self.spec.manifest_json, Format::Json, registry)
            .map_err(|e| format!("cannot run here: {e}"))?;
        let plan = Plan::build(&pipeline, registry).map_err(|e| e.to_string())?;
        let mut runner = ChainRunner::new(plan).map_err(|e| e.to_string())?;
        runner.set_head_inputs(self.spec.head_inputs.clone());
        runner.initialize().map_err(|e| e.to_string())?;
        Ok(Conn::Local(Box::new(runner)))
    }

    /// The stream broke: drop it and choose where to go next.
    fn broken(&mut self, reason: String, resend: u64) {
        self.log_closed("broken", Some(&reason));
        let Some(i) = self.current.take() else {
            return;
        };
        if let Some(Conn::Local(r)) = self.conn.take() {
            r.close();
        }
        let name = self.spec.candidates[i].name().to_string();
        self.tried.push(format!("{name}: {reason}"));
        self.failures[i] += 1;
        // Reconnect to the same executor once (it may have been a blip), then move on.
        self.next = if self.failures[i] < 2 { i } else { i + 1 };
        tracing::debug!(
            executor = %name,
            failures = self.failures[i],
            resend,
            next = self.spec.candidates.get(self.next).map_or("none", Candidate::name),
            "failing over: the unanswered chunks go to the next candidate"
        );
        self.pending_failover = Some((name, reason, resend));
    }

    fn cut(&mut self, port: usize, items: Vec<Data>) -> Vec<Chunk> {
        let max_items = self.options.max_chunk_items.max(1);
        let max_bytes = self.options.max_chunk_bytes.max(1);
        let mut chunks = Vec::new();
        let mut cur: Vec<Data> = Vec::new();
        let mut bytes = 0;
        let flush = |cur: &mut Vec<Data>, chunks: &mut Vec<Chunk>, seq: &mut u64| {
            let items = std::mem::take(cur);
            let n = items.len() as u64;
            chunks.push(Chunk {
                first_seq: *seq,
                port: port as u32,
                items,
            });
            *seq += n;
        };
        let small = items.len() <= max_items;
        for item in items {
            let size = if small && max_bytes >= (1 << 20) && is_scalar(&item) {
                0
            } else {
                approx_size(&item)
            };
            if !cur.is_empty() && (cur.len() >= max_items || bytes + size > max_bytes) {
                flush(&mut cur, &mut chunks, &mut self.next_seq);
                bytes = 0;
            }
            bytes += size;
            cur.push(item);
        }
        if !cur.is_empty() {
            flush(&mut cur, &mut chunks, &mut self.next_seq);
        }
        chunks
    }

    fn remote_failure(&self, e: &PipelineNodeError) -> NodeError {
        let at = self.current().map_or("?", Candidate::name);
        let mut err = NodeError::new(e.kind, format!("on {at}: {e}"));
        err.traceback = e.traceback.clone();
        err
    }

    fn summary(&self, s: StreamSummary, out: &mut Vec<Data>) {
        out.extend(s.items);
        self.report.skipped(s.skipped);
        let at = self.current().map_or("?", Candidate::name).to_string();
        self.report.with(|d| {
            d.cleanup_errors.extend(s.cleanup_errors);
            d.remote_metrics.push(RemoteMetrics {
                nodes: self.spec.node_ids.clone(),
                executor: at,
                metrics: s.metrics,
                transport: None,
            });
        });
    }
}

/// Items whose encoded size is a few bytes: not worth measuring one by one.
fn is_scalar(d: &Data) -> bool {
    matches!(
        d,
        Data::Null | Data::Bool(_) | Data::Int(_) | Data::Float(_)
    )
}

impl Node for RemoteStage {
    fn initialize(&mut self, _ctx: &NodeContext) -> Result<(), NodeError> {
        if self.conn.is_none() {
            self.connect()?;
        }
        Ok(())
    }

    fn process(&mut self, item: Data, out: &mut Vec<Data>) -> Result<(), NodeError> {
        let mut items = vec![item];
        self.process_batch(0, &mut items, out)
            .map_err(|ItemError { error, .. }| error)
    }

    fn process_from(
        &mut self,
        port: usize,
        item: Data,
        out: &mut Vec<Data>,
    ) -> Result<(), NodeError> {
        let mut items = vec![item];
        self.process_batch(port, &mut items, out)
            .map_err(|ItemError { error, .. }| error)
    }

    fn process_batch(
        &mut self,
        port: usize,
        items: &mut Vec<Data>,
        out: &mut Vec<Data>,
    ) -> Result<(), ItemError> {
        if items.is_empty() {
            return Ok(());
        }
        // An item no executor would decode fails alone, before anything is sent (the
        // items before it go first), instead of breaking the stream.
        if let Some(k) = items.iter().position(|d| d.depth() > MAX_DEPTH) {
            let mut rest = items.split_off(k);
            let deep = rest.remove(0);
            if let Err(e) = self.process_batch(port, items, out) {
                items.push(deep);
                items.append(&mut rest);
                return Err(e);
            }
            *items = rest;
            return Err(ItemError {
                item: deep,
                error: NodeError::new(ErrorKind::InvalidInput, too_deep_message()),
            });
        }
        let mut chunks = self.cut(port, std::mem::take(items));
        let mut acked = 0usize;
        let fail = |chunks: &[Chunk], acked: usize, error: NodeError| ItemError {
            item: chunks
                .get(acked)
                .and_then(|c| c.items.first().cloned())
                .unwrap_or_default(),
            error,
        };
        loop {
            if self.conn.is_none() {
                if let Err(e) = self.connect() {
                    return Err(fail(&chunks, acked, e));
                }
            }
            let window = self.options.window;
            let before = acked;
            match self.conn.as_mut().expect("connected") {
                Conn::Local(runner) => {
                    while acked < chunks.len() {
                        let c = &mut chunks[acked];
                        let mut batch = std::mem::take(&mut c.items);
                        if let Err(e) = runner.push(port, &mut batch) {
                            let error = self.remote_failure(&e);
                            return Err(ItemError {
                                item: Data::Null,
                                error,
                            });
                        }
                        out.append(&mut batch);
                        acked += 1;
                    }
                    let skipped = runner.take_skipped();
                    self.report.skipped(skipped);
                    return Ok(());
                }
                Conn::Remote(stream) => {
                    let mut skipped = Vec::new();
                    let out_before = out.len();
                    let r =
                        block_on(stream.exchange(&chunks, &mut acked, window, out, &mut skipped));
                    self.outputs_here += (out.len() - out_before) as u64;
                    self.report.skipped(skipped);
                    self.processed_here += chunks[before..acked]
                        .iter()
                        .map(|c| c.items.len() as u64)
                        .sum::<u64>();
                    match r {
                        Ok(()) => return Ok(()),
                        Err(StreamError::Node(e)) => {
                            self.node_failed = true;
                            let error = self.remote_failure(&e);
                            return Err(fail(&chunks, acked, error));
                        }
                        Err(StreamError::Executor(e)) => {
                            let resend = chunks[acked..].iter().map(|c| c.items.len() as u64).sum();
                            self.broken(format!("stream broke: {e}"), resend);
                        }
                    }
                }
            }
        }
    }

    fn finish(&mut self, out: &mut Vec<Data>) -> Result<(), NodeError> {
        loop {
            if self.conn.is_none() {
                self.connect()?;
            }
            match self.conn.take().expect("connected") {
                Conn::Local(mut runner) => {
                    let r = runner.finish(out);
                    let outcome = if r.is_ok() { "ok" } else { "node_failed" };
                    self.log_closed(outcome, r.as_ref().err().map(|e| e.message.as_str()));
                    self.report.skipped(runner.take_skipped());
                    let report = runner.close();
                    self.summary(
                        StreamSummary {
                            items: Vec::new(),
                            skipped: Vec::new(),
                            cleanup_errors: report.cleanup_errors,
                            metrics: serde_json::to_value(&report.metrics).unwrap_or_default(),
                        },
                        out,
                    );
                    return r.map_err(|e| self.remote_failure(&e));
                }
                Conn::Remote(stream) => match block_on(stream.close()) {
                    Ok(summary) => {
                        self.outputs_here += summary.items.len() as u64;
                        self.log_closed("ok", None);
                        self.summary(summary, out);
                        return Ok(());
                    }
                    Err(StreamError::Node(e)) => {
                        self.log_closed("node_failed", Some(&e.message));
                        return Err(self.remote_failure(&e));
                    }
                    Err(StreamError::Executor(e)) => {
                        // Put the stage back in a state `broken` understands.
                        self.broken(format!("stream broke at the end: {e}"), 0);
                    }
                },
            }
        }
    }

    fn cleanup(&mut self) -> Result<(), NodeError> {
        // Still open: the run stopped early, or a node failed on the executor.
        if self.conn.is_some() {
            let outcome = if self.node_failed {
                "node_failed"
            } else {
                "stopped"
            };
            self.log_closed(outcome, None);
        }
        match self.conn.take() {
            Some(Conn::Local(r)) => {
                r.close();
            }
            Some(Conn::Remote(stream)) => drop(stream),
            None => {}
        }
        Ok(())
    }

    fn execution(&self) -> Execution {
        Self::EXECUTION
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: &str, node_type: &str, items: u64) -> NodeMetrics {
        NodeMetrics {
            node_id: id.into(),
            node_type: node_type.into(),
            items_in: items,
            items_out: items,
            busy_us: items as f64,
            latency_p50_us: 1.0,
            latency_p99_us: 1.0,
            errors: 0,
            retries: 0,
            executor: None,
        }
    }

    #[test]
    fn remote_nodes_get_entries_of_their_own() {
        let mut metrics = RunMetrics {
            nodes: vec![
                entry("input", "PassThrough", 5),
                entry("offset", "RemoteStage", 5),
                entry("output", "PassThrough", 5),
            ],
            ..RunMetrics::default()
        };
        let stage = metrics.nodes[1].clone();
        let remote_run = RunMetrics {
            nodes: vec![
                entry("scale", "Calculator", 5),
                entry("offset", "Calculator", 4),
            ],
            ..RunMetrics::default()
        };
        let mut report = ReportData {
            remote_metrics: vec![RemoteMetrics {
                nodes: vec!["scale".into(), "offset".into()],
                executor: "gpu-1".into(),
                metrics: serde_json::to_value(&remote_run).unwrap(),
                transport: None,
            }],
            ..ReportData::default()
        };
        report.merge_node_metrics(&mut metrics);
        let ids: Vec<(&str, &str, Option<&str>)> = metrics
            .nodes
            .iter()
            .map(|n| (&*n.node_id, &*n.node_type, n.executor.as_deref()))
            .collect();
        assert_eq!(
            ids,
            [
                ("input", "PassThrough", None),
                ("scale", "Calculator", Some("gpu-1")),
                ("offset", "Calculator", Some("gpu-1")),
                ("output", "PassThrough", None),
            ]
        );
        assert_eq!(metrics.node("offset").unwrap().items_out, 4);
        assert_eq!(report.remote_metrics[0].transport.as_ref(), Some(&stage));
        let json = serde_json::to_value(&metrics.nodes[1]).unwrap();
        assert_eq!(json["executor"], "gpu-1");
        assert!(serde_json::to_value(&metrics.nodes[0]).unwrap()["executor"].is_null());

        // Merging twice changes nothing.
        let (before, report_before) = (metrics.clone(), report.remote_metrics.clone());
        report.merge_node_metrics(&mut metrics);
        assert_eq!(metrics, before);
        assert_eq!(report.remote_metrics, report_before);
    }

    #[test]
    fn a_sub_graph_without_its_nodes_metrics_keeps_the_stage_entry() {
        let mut metrics = RunMetrics {
            nodes: vec![entry("b", "RemoteStage", 3)],
            ..RunMetrics::default()
        };
        let before = metrics.clone();
        let mut report = ReportData {
            remote_metrics: vec![RemoteMetrics {
                nodes: vec!["a".into(), "b".into()],
                executor: "old-executor".into(),
                metrics: serde_json::json!({"nodes": [{"node_id": "b"}]}),
                transport: None,
            }],
            ..ReportData::default()
        };
        report.merge_node_metrics(&mut metrics);
        assert_eq!(metrics, before);
        assert_eq!(report.remote_metrics[0].transport, None);
    }
}
