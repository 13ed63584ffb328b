//! One live session, whatever carries it: text frames of JSON messages and binary
//! frames of PCM in, the same out ([`crate::protocol`]). The WebSocket and gRPC
//! handlers only move frames; everything a session does is here.
//!
//! A session is one task: it reads the client's frames, re-frames PCM into chunks of
//! [`CHUNK_MS`] with their `pts_us`, feeds them to its own run of the pipeline (one set
//! of node instances; models are shared by the node types) and writes outputs as they
//! come. It reads the socket only while little input is waiting, so a slow pipeline
//! slows the client (TCP backpressure) instead of growing a queue; every queue on the
//! way is bounded. `flush` abandons the run — cancelled, it stops at its next node
//! call and cleans up on a thread of its own, even when a node is stuck — and starts a
//! fresh one, so the next input meets nodes in their initial state.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use remotemedia_audio::pcm::{PcmFormat, PcmSpec, PcmStreamDecoder};
use remotemedia_core::executor::{CancelToken, RunOptions, SessionSender};
use remotemedia_core::plan::Plan;
use remotemedia_core::{AudioBuffer, Data, RunError};
use serde_json::{json, Map, Value};
use tokio::sync::mpsc;

use crate::catalog::NamedPipeline;
use crate::metrics::{LatencyStats, PipelineMetrics};
use crate::protocol::{parse_client, ClientMessage, ErrorKind, InputFormat, ServerMessage};
use crate::server::Shared;

/// Length of the audio chunks a session feeds its pipeline, whatever the client's
/// frames were.
pub const CHUNK_MS: u32 = 20;

/// Audio waiting to enter the pipeline before the session stops reading the client.
const MAX_PENDING_MS: u64 = 1000;

/// Input (bytes of its frames) waiting to enter the pipeline before the session stops
/// reading the client; with the pipeline's own bounded queues, this bounds what one
/// session holds.
const MAX_PENDING_BYTES: usize = 4 << 20;

/// Input chunks remembered to compute output latency (about 10 s of 20 ms chunks).
const LATENCY_WINDOW: usize = 512;

/// A frame of either kind.
#[derive(Clone, Debug, PartialEq)]
pub enum Frame {
    /// A JSON message.
    Text(String),
    /// PCM bytes.
    Binary(Bytes),
}

/// What carries a session's frames (a WebSocket, a gRPC stream).
pub trait Transport: Send {
    /// The next frame from the client; `None` when it has gone; `Err` with a message
    /// when the frame was unacceptable (too large, not a frame at all).
    fn recv(&mut self) -> impl std::future::Future<Output = Option<Result<Frame, String>>> + Send;
    /// Sends a frame; `false` when the client has gone.
    fn send(&mut self, frame: Frame) -> impl std::future::Future<Output = bool> + Send;
}

/// One input chunk on its way, to time the outputs it causes.
struct Sent {
    start_us: i64,
    end_us: i64,
    at: Instant,
}

/// Outputs of a run, tagged with the run they belong to (a flush starts a new one).
enum RunEvent {
    Outputs {
        generation: u64,
        sink: usize,
        items: Vec<Data>,
    },
    Finished {
        generation: u64,
        result: Result<Value, RunError>,
    },
}

/// The session's current run of the pipeline.
struct Run {
    generation: u64,
    input: Option<mpsc::Sender<Data>>,
    cancel: CancelToken,
    sinks: Arc<[String]>,
}

/// Why a session ended, for the metrics and logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// `end`, every output, `summary`.
    Completed,
    /// The client went away.
    Disconnected,
    /// An error closed it.
    Failed,
}

impl Outcome {
    /// The outcome's name in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Completed => "completed",
            Outcome::Disconnected => "disconnected",
            Outcome::Failed => "failed",
        }
    }
}

/// Runs one session on `transport` (`via`: `websocket` or `grpc`) from `peer` until
/// it ends, in a span of its own (session id, pipeline, peer) that its runs' spans
/// are children of. The slot in `shared` is held by the caller.
pub async fn run_session<T: Transport>(
    shared: Arc<Shared>,
    pipeline: Arc<NamedPipeline>,
    id: String,
    peer: Option<std::net::SocketAddr>,
    via: &'static str,
    transport: T,
) -> Outcome {
    let span = tracing::info_span!(
        "session",
        session = %id,
        pipeline = %pipeline.name,
        peer = %peer.map_or_else(|| "?".to_string(), |a| a.to_string())
    );
    tracing::Instrument::instrument(
        run_session_in_span(shared, pipeline, id, via, transport),
        span,
    )
    .await
}

async fn run_session_in_span<T: Transport>(
    shared: Arc<Shared>,
    pipeline: Arc<NamedPipeline>,
    id: String,
    via: &'static str,
    mut transport: T,
) -> Outcome {
    tracing::info!(via, "session opened");
    let metrics = shared.metrics.pipeline(&pipeline.name);
    let mut session = Session::new(Arc::clone(&shared), pipeline, id, metrics);
    let outcome = session.drive(&mut transport).await;
    session.abandon_run();
    match outcome {
        Outcome::Completed => session.metrics.completed.fetch_add(1, Ordering::Relaxed),
        Outcome::Disconnected => session.metrics.disconnected.fetch_add(1, Ordering::Relaxed),
        Outcome::Failed => session.metrics.failed.fetch_add(1, Ordering::Relaxed),
    };
    tracing::info!(
        session = %session.id,
        pipeline = %session.pipeline.name,
        frames_in = session.frames_in,
        outputs = session.outputs,
        flushes = session.flushes,
        dropped = session.dropped,
        duration_ms = session.started.elapsed().as_micros() as f64 / 1000.0,
        outcome = outcome.as_str(),
        error = session.error.as_deref().unwrap_or(""),
        "session closed"
    );
    outcome
}

struct Session {
    shared: Arc<Shared>,
    pipeline: Arc<NamedPipeline>,
    id: String,
    metrics: Arc<PipelineMetrics>,
    started: Instant,
    /// The validated pipeline with the client's overrides.
    resolved: Option<Arc<remotemedia_core::manifest::Pipeline>>,
    decoder: Option<PcmStreamDecoder>,
    /// Samples decoded but not yet a whole chunk.
    partial: Vec<f32>,
    /// Frames of audio turned into chunks so far (the stream clock).
    frames: u64,
    pending: VecDeque<Data>,
    pending_audio_us: u64,
    /// Sizes of the pending items' frames, in the same order.
    pending_sizes: VecDeque<usize>,
    pending_bytes: usize,
    run: Option<Run>,
    generation: u64,
    events_tx: mpsc::Sender<RunEvent>,
    events_rx: mpsc::Receiver<RunEvent>,
    sent: VecDeque<Sent>,
    latency: LatencyStats,
    frames_in: u64,
    outputs: u64,
    flushes: u64,
    dropped: u64,
    ended: bool,
    /// Audio received, for the real-time limit.
    received_us: u64,
    /// Why the session failed, for its log.
    error: Option<String>,
}

impl Session {
    fn new(
        shared: Arc<Shared>,
        pipeline: Arc<NamedPipeline>,
        id: String,
        metrics: Arc<PipelineMetrics>,
    ) -> Self {
        let (events_tx, events_rx) = mpsc::channel(16);
        Session {
            shared,
            pipeline,
            id,
            metrics,
            started: Instant::now(),
            resolved: None,
            decoder: None,
            partial: Vec::new(),
            frames: 0,
            pending: VecDeque::new(),
            pending_audio_us: 0,
            pending_sizes: VecDeque::new(),
            pending_bytes: 0,
            run: None,
            generation: 0,
            events_tx,
            events_rx,
            sent: VecDeque::new(),
            latency: LatencyStats::default(),
            frames_in: 0,
            outputs: 0,
            flushes: 0,
            dropped: 0,
            ended: false,
            received_us: 0,
            error: None,
        }
    }

    async fn drive<T: Transport>(&mut self, transport: &mut T) -> Outcome {
        let limits = self.shared.limits.clone();
        let mut shutdown = self.shared.shutdown.subscribe();
        let mut idle_deadline = tokio::time::Instant::now() + limits.idle_timeout;
        let mut end_deadline: Option<tokio::time::Instant> = None;
        loop {
            let reading = !self.ended
                && self.pending_audio_us < MAX_PENDING_MS * 1000
                && self.pending.len() < 64
                && self.pending_bytes < MAX_PENDING_BYTES;
            let input = self.run.as_ref().and_then(|r| r.input.clone());
            let can_feed = !self.pending.is_empty() && input.is_some();
            let end_at = end_deadline
                .unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(3600));
            tokio::select! {
                biased;
                _ = shutdown.changed() => {
                    self.error = Some("shutting_down".into());
                    let msg = ServerMessage::error(ErrorKind::ShuttingDown, "the server is shutting down; the session is closed");
                    transport.send(Frame::Text(msg.to_text())).await;
                    return Outcome::Failed;
                }
                event = self.events_rx.recv() => {
                    let Some(event) = event else { continue };
                    match self.on_event(event, transport).await {
                        Step::Go => {}
                        Step::Stop(outcome) => return outcome,
                    }
                }
                permit = async { input.as_ref().expect("checked").reserve().await }, if can_feed => {
                    match permit {
                        Ok(permit) => {
                            let item = self.pending.pop_front().expect("checked");
                            self.pending_bytes -= self.pending_sizes.pop_front().unwrap_or(0);
                            if let Data::Audio(a) = &item {
                                self.pending_audio_us = self.pending_audio_us.saturating_sub(chunk_us(a));
                                self.sent.push_back(Sent { start_us: a.pts_us, end_us: a.end_pts_us(), at: Instant::now() });
                                if self.sent.len() > LATENCY_WINDOW {
                                    self.sent.pop_front();
                                }
                            }
                            permit.send(item);
                            if self.ended && self.pending.is_empty() {
                                self.close_input();
                            }
                        }
                        // The run stopped taking input: it failed, and its end event says why.
                        Err(_) => self.clear_pending(),
                    }
                }
                frame = transport.recv(), if reading => {
                    idle_deadline = tokio::time::Instant::now() + limits.idle_timeout;
                    let frame = match frame {
                        None => return Outcome::Disconnected,
                        Some(Err(message)) => {
                            self.error = Some(format!("frame_too_large: {message}"));
                            let msg = ServerMessage::error(ErrorKind::FrameTooLarge, message);
                            transport.send(Frame::Text(msg.to_text())).await;
                            return Outcome::Failed;
                        }
                        Some(Ok(frame)) => frame,
                    };
                    match self.on_frame(frame, transport).await {
                        Step::Go => {}
                        Step::Stop(outcome) => return outcome,
                    }
                    if self.ended && end_deadline.is_none() {
                        end_deadline = Some(tokio::time::Instant::now() + limits.end_timeout);
                    }
                    self.throttle().await;
                }
                _ = tokio::time::sleep_until(idle_deadline), if !self.ended => {
                    self.error = Some("idle_timeout".into());
                    let msg = ServerMessage::error(ErrorKind::IdleTimeout, format!(
                        "no message for {} s; the session is closed", limits.idle_timeout.as_secs_f64()));
                    transport.send(Frame::Text(msg.to_text())).await;
                    return Outcome::Failed;
                }
                _ = tokio::time::sleep_until(end_at), if end_deadline.is_some() => {
                    self.error = Some("end_timeout".into());
                    let msg = ServerMessage::error(ErrorKind::Internal, format!(
                        "the pipeline did not finish within {} s of `end`; the session is closed", limits.end_timeout.as_secs_f64()));
                    transport.send(Frame::Text(msg.to_text())).await;
                    return Outcome::Failed;
                }
            }
        }
    }

    /// Holds reading back while the client is ahead of real time by more than the
    /// allowed factor (plus a second of burst): the client then feels backpressure.
    async fn throttle(&mut self) {
        let factor = self.shared.limits.max_realtime_factor;
        if factor <= 0.0 {
            return;
        }
        let allowed_us = self.started.elapsed().as_secs_f64() * 1e6 * factor + 1e6;
        let ahead_us = self.received_us as f64 - allowed_us;
        if ahead_us > 0.0 {
            self.metrics.throttled.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_secs_f64(ahead_us / factor / 1e6)).await;
        }
    }

    async fn on_frame<T: Transport>(&mut self, frame: Frame, transport: &mut T) -> Step {
        match frame {
            Frame::Binary(bytes) => {
                if self.resolved.is_none() {
                    return self
                        .fail(
                            transport,
                            ErrorKind::Protocol,
                            "audio before `start`: send `start` first",
                        )
                        .await;
                }
                let Some(decoder) = self.decoder.as_mut() else {
                    return self.complain(transport, ErrorKind::BadInput,
                        "binary frame, but `start` gave no `input` format: give `input` to send audio, or send `item` messages").await;
                };
                let spec = decoder.spec();
                if let Some(buf) = decoder.push(&bytes) {
                    self.frames_in += 1;
                    self.metrics.frames_in.fetch_add(1, Ordering::Relaxed);
                    self.received_us +=
                        remotemedia_core::frames_to_us(buf.frames() as u64, spec.sample_rate)
                            as u64;
                    self.partial.extend_from_slice(&buf.samples);
                    self.cut_chunks(spec, false);
                }
                Step::Go
            }
            Frame::Text(text) => {
                let message = match parse_client(&text) {
                    Ok(m) => m,
                    Err(e) => return self.complain(transport, ErrorKind::BadMessage, e).await,
                };
                self.on_message(message, text.len(), transport).await
            }
        }
    }

    /// Handles one message; `frame_len` is its text frame's length (what a pending
    /// `item` counts against the input bound).
    async fn on_message<T: Transport>(
        &mut self,
        message: ClientMessage,
        frame_len: usize,
        transport: &mut T,
    ) -> Step {
        match message {
            ClientMessage::Ping => self.say(transport, ServerMessage::Pong).await,
            ClientMessage::Start { input, params } => {
                if self.resolved.is_some() {
                    return self
                        .complain(
                            transport,
                            ErrorKind::Protocol,
                            "the session has started already; `start` comes once",
                        )
                        .await;
                }
                if let Err(e) = check_input(input) {
                    return self.fail(transport, ErrorKind::BadStart, e).await;
                }
                let resolved = match self
                    .pipeline
                    .with_overrides(&params.unwrap_or_default(), &self.shared.registry)
                {
                    Ok(p) => p,
                    Err(e) => return self.fail(transport, ErrorKind::BadStart, e).await,
                };
                self.resolved = Some(resolved);
                self.decoder = input.map(|i| {
                    PcmStreamDecoder::new(PcmSpec {
                        format: i.format,
                        sample_rate: i.sample_rate,
                        channels: i.channels,
                    })
                });
                if let Err(e) = self.start_run().await {
                    return self.fail(transport, ErrorKind::Internal, e).await;
                }
                self.say(
                    transport,
                    ServerMessage::Ready {
                        session: self.id.clone(),
                    },
                )
                .await
            }
            _ if self.resolved.is_none() => {
                self.fail(
                    transport,
                    ErrorKind::Protocol,
                    "the first message must be `start`",
                )
                .await
            }
            _ if self.ended => {
                self.complain(
                    transport,
                    ErrorKind::Protocol,
                    "the input has ended; only `ping` is answered now",
                )
                .await
            }
            ClientMessage::Item { item } => match Data::from_json(&item) {
                Ok(data) => {
                    self.frames_in += 1;
                    self.metrics.frames_in.fetch_add(1, Ordering::Relaxed);
                    if let Data::Audio(a) = &data {
                        self.pending_audio_us += chunk_us(a);
                        self.received_us += chunk_us(a);
                    }
                    self.push_pending(data, frame_len);
                    Step::Go
                }
                Err(e) => {
                    self.complain(transport, ErrorKind::BadInput, format!("`item`: {e}"))
                        .await
                }
            },
            ClientMessage::Flush => {
                self.flush();
                if let Err(e) = self.start_run().await {
                    return self.fail(transport, ErrorKind::Internal, e).await;
                }
                self.say(transport, ServerMessage::Flushed).await
            }
            ClientMessage::End => {
                if let Some(decoder) = self.decoder.as_mut() {
                    if let Err(e) = decoder.finish() {
                        // The partial frame is dropped; what came before goes on.
                        let msg = ServerMessage::error(ErrorKind::BadInput, e);
                        if !transport.send(Frame::Text(msg.to_text())).await {
                            return Step::Stop(Outcome::Disconnected);
                        }
                    }
                    if let Some(spec) = self.decoder.as_ref().map(|d| d.spec()) {
                        self.cut_chunks(spec, true);
                    }
                }
                self.ended = true;
                if self.pending.is_empty() {
                    self.close_input();
                }
                Step::Go
            }
        }
    }

    fn push_pending(&mut self, item: Data, bytes: usize) {
        self.pending.push_back(item);
        self.pending_sizes.push_back(bytes);
        self.pending_bytes += bytes;
    }

    fn clear_pending(&mut self) {
        self.pending.clear();
        self.pending_sizes.clear();
        self.pending_bytes = 0;
        self.pending_audio_us = 0;
    }

    /// Moves whole chunks of `partial` to the pending queue (and the rest too, at the
    /// end of the stream).
    fn cut_chunks(&mut self, spec: PcmSpec, last: bool) {
        let ch = usize::from(spec.channels);
        let chunk = (spec.sample_rate as usize * CHUNK_MS as usize / 1000).max(1) * ch;
        let mut start = 0;
        while self.partial.len() - start >= chunk || (last && self.partial.len() > start) {
            let end = (start + chunk).min(self.partial.len());
            let samples = self.partial[start..end].to_vec();
            let pts = remotemedia_core::frames_to_us(self.frames, spec.sample_rate);
            self.frames += ((end - start) / ch) as u64;
            let buf = AudioBuffer::new(samples, spec.sample_rate, spec.channels).with_pts(pts);
            self.pending_audio_us +=
                remotemedia_core::frames_to_us(((end - start) / ch) as u64, spec.sample_rate)
                    as u64;
            self.push_pending(Data::Audio(Arc::new(buf)), (end - start) * 4);
            start = end;
        }
        self.partial.drain(..start);
    }

    /// Starts a run of the resolved pipeline: a plan (fresh node instances), a
    /// streaming session on the executor, a task feeding it and one forwarding its
    /// outputs.
    async fn start_run(&mut self) -> Result<(), String> {
        let pipeline = Arc::clone(self.resolved.as_ref().expect("started"));
        let cancel = CancelToken::new();
        let options = RunOptions {
            batch_size: 64,
            channel_capacity: 4,
            force_threads: true,
            cancel: cancel.clone(),
        };
        // Building nodes can block (a worker process starting, a model loading): not
        // on the event loop.
        let shared = Arc::clone(&self.shared);
        // The run's span is a child of the session's.
        let span = tracing::Span::current();
        let session = tokio::task::spawn_blocking(move || {
            let _entered = span.enter();
            let plan = Plan::build(&pipeline, &shared.registry)?;
            plan.start_session(&options)
        })
        .await
        .map_err(|e| format!("cannot start the pipeline: {e}"))?
        .map_err(|e| format!("cannot start the pipeline: {e}"))?;
        let (sender, mut receiver) = session.into_split();
        let sinks: Arc<[String]> = receiver.sink_ids().to_vec().into();
        self.generation += 1;
        let generation = self.generation;
        let (input_tx, input_rx) = mpsc::channel::<Data>(8);
        tokio::spawn(feed(sender, input_rx));
        let events = self.events_tx.clone();
        tokio::spawn(async move {
            while let Some((sink, items)) = receiver.recv_batch_async().await {
                if events
                    .send(RunEvent::Outputs {
                        generation,
                        sink,
                        items,
                    })
                    .await
                    .is_err()
                {
                    break;
                }
            }
            // Joining the run's threads blocks; it is quick once the stream ended.
            let result = tokio::task::spawn_blocking(move || match receiver.finish() {
                Ok(r) => Ok(serde_json::to_value(&r.metrics).unwrap_or(Value::Null)),
                Err(f) => Err(f.error),
            })
            .await
            .unwrap_or_else(|e| Err(RunError::Spawn(e.to_string())));
            let _ = events.send(RunEvent::Finished { generation, result }).await;
        });
        self.run = Some(Run {
            generation,
            input: Some(input_tx),
            cancel,
            sinks,
        });
        Ok(())
    }

    /// Ends the run's input: it finishes what it has and ends.
    fn close_input(&mut self) {
        if let Some(run) = self.run.as_mut() {
            run.input = None;
        }
    }

    /// Barge-in: drops the queued input and the current run (cancelled; its outputs
    /// still on the way are discarded as they arrive).
    fn flush(&mut self) {
        tracing::debug!(
            dropped = self.pending.len(),
            "flush: the run is abandoned and a fresh one started"
        );
        self.flushes += 1;
        self.metrics.flushes.fetch_add(1, Ordering::Relaxed);
        let dropped = self.pending.len() as u64;
        self.dropped += dropped;
        self.metrics.dropped.fetch_add(dropped, Ordering::Relaxed);
        self.clear_pending();
        self.partial.clear();
        if let Some(spec) = self.decoder.as_ref().map(|d| d.spec()) {
            // A partial frame belongs to the audio dropped.
            self.decoder = Some(PcmStreamDecoder::new(spec));
        }
        self.sent.clear();
        self.abandon_run();
    }

    /// Cancels the current run and leaves it to finish on its own threads.
    fn abandon_run(&mut self) {
        if let Some(run) = self.run.take() {
            run.cancel.cancel();
        }
    }

    async fn on_event<T: Transport>(&mut self, event: RunEvent, transport: &mut T) -> Step {
        let current = self.run.as_ref().map(|r| r.generation);
        match event {
            RunEvent::Outputs {
                generation,
                sink,
                items,
            } => {
                if Some(generation) != current {
                    return Step::Go;
                }
                let sink_id = self
                    .run
                    .as_ref()
                    .and_then(|r| r.sinks.get(sink).cloned())
                    .unwrap_or_default();
                for item in items {
                    if let Step::Stop(o) = self.send_output(&sink_id, item, transport).await {
                        return Step::Stop(o);
                    }
                }
                Step::Go
            }
            RunEvent::Finished { generation, result } => {
                if Some(generation) != current {
                    return Step::Go;
                }
                match result {
                    Ok(run_metrics) if self.ended => {
                        let summary = ServerMessage::Summary {
                            metrics: self.summary(run_metrics),
                        };
                        transport.send(Frame::Text(summary.to_text())).await;
                        Step::Stop(Outcome::Completed)
                    }
                    Ok(_) => {
                        self.fail(
                            transport,
                            ErrorKind::Internal,
                            "the pipeline ended before the input did",
                        )
                        .await
                    }
                    Err(RunError::Node(e)) => {
                        self.metrics.errors.fetch_add(1, Ordering::Relaxed);
                        self.error = Some(format!("node_failed: {e}"));
                        let msg = ServerMessage::Error {
                            message: e.to_string(),
                            node_id: Some(e.node_id.clone()),
                            kind: e.kind.as_str().to_string(),
                        };
                        transport.send(Frame::Text(msg.to_text())).await;
                        Step::Stop(Outcome::Failed)
                    }
                    Err(e) => {
                        self.fail(transport, ErrorKind::Internal, e.to_string())
                            .await
                    }
                }
            }
        }
    }

    async fn send_output<T: Transport>(
        &mut self,
        sink: &str,
        item: Data,
        transport: &mut T,
    ) -> Step {
        self.outputs += 1;
        self.metrics.frames_out.fetch_add(1, Ordering::Relaxed);
        let pts = match &item {
            Data::Audio(a) => Some(a.pts_us),
            Data::Map(m) => match m.get("pts_us") {
                Some(Data::Int(p)) => Some(*p),
                _ => None,
            },
            _ => None,
        };
        // An event says which input decided it (a VAD's `decided_at_us`): that input
        // frame is where its latency starts; otherwise the output's own time.
        let decided = match &item {
            Data::Map(m) => match m.get("decided_at_us") {
                Some(Data::Int(p)) => Some(*p),
                _ => None,
            },
            _ => None,
        };
        // Audio is complete once the input up to its end is in.
        let known = match &item {
            Data::Audio(a) => Some(a.end_pts_us()),
            _ => pts,
        };
        if let Some(p) = decided.or(known) {
            if let Some(at) = self.input_time(p) {
                let us = at.elapsed().as_micros() as u64;
                self.latency.record(us);
                self.metrics.latency.record(us);
            }
        }
        let ok = match item {
            Data::Audio(a) => {
                let mut bytes = Vec::with_capacity(a.samples.len() * 2);
                PcmFormat::S16le.encode_into(&a.samples, &mut bytes);
                let header = ServerMessage::Audio {
                    sink: sink.to_string(),
                    pts_us: a.pts_us,
                    format: "s16le",
                    sample_rate: a.sample_rate,
                    channels: a.channels,
                    bytes: bytes.len(),
                };
                transport.send(Frame::Text(header.to_text())).await
                    && transport.send(Frame::Binary(bytes.into())).await
            }
            other => {
                let msg = ServerMessage::Output {
                    sink: sink.to_string(),
                    item: other.to_json(),
                    pts_us: pts,
                };
                transport.send(Frame::Text(msg.to_text())).await
            }
        };
        if ok {
            Step::Go
        } else {
            Step::Stop(Outcome::Disconnected)
        }
    }

    /// When the stream reached time `pts_us`: the input chunk ending at or after it
    /// (the one holding the sample just before it) was fed to the pipeline (the last
    /// one fed, for a time past it).
    fn input_time(&self, pts_us: i64) -> Option<Instant> {
        let i = self.sent.partition_point(|s| s.start_us < pts_us);
        if i == 0 {
            return None;
        }
        let s = &self.sent[i - 1];
        (pts_us <= s.end_us || i == self.sent.len()).then_some(s.at)
    }

    fn summary(&self, run_metrics: Value) -> Value {
        let mut m = Map::new();
        m.insert("session".into(), json!(self.id));
        m.insert("pipeline".into(), json!(self.pipeline.name));
        m.insert(
            "duration_ms".into(),
            json!(self.started.elapsed().as_millis() as u64),
        );
        m.insert("frames_in".into(), json!(self.frames_in));
        m.insert("outputs".into(), json!(self.outputs));
        m.insert("flushes".into(), json!(self.flushes));
        m.insert("dropped".into(), json!(self.dropped));
        m.insert("latency_us".into(), self.latency.to_json());
        m.insert("run".into(), run_metrics);
        Value::Object(m)
    }

    async fn say<T: Transport>(&mut self, transport: &mut T, msg: ServerMessage) -> Step {
        if transport.send(Frame::Text(msg.to_text())).await {
            Step::Go
        } else {
            Step::Stop(Outcome::Disconnected)
        }
    }

    /// A bad client message the session survives.
    async fn complain<T: Transport>(
        &mut self,
        transport: &mut T,
        kind: ErrorKind,
        message: impl Into<String>,
    ) -> Step {
        self.metrics.bad_messages.fetch_add(1, Ordering::Relaxed);
        let message = message.into();
        tracing::debug!(kind = kind.as_str(), error = %message, "bad client message");
        self.say(transport, ServerMessage::error(kind, message))
            .await
    }

    /// An error that ends the session.
    async fn fail<T: Transport>(
        &mut self,
        transport: &mut T,
        kind: ErrorKind,
        message: impl Into<String>,
    ) -> Step {
        self.metrics.errors.fetch_add(1, Ordering::Relaxed);
        let message = message.into();
        self.error = Some(format!("{}: {message}", kind.as_str()));
        transport
            .send(Frame::Text(ServerMessage::error(kind, message).to_text()))
            .await;
        Step::Stop(Outcome::Failed)
    }
}

enum Step {
    Go,
    Stop(Outcome),
}

/// Feeds a run's input one chunk at a time; dropping the sender at the end ends the
/// run's stream.
async fn feed(sender: SessionSender, mut input: mpsc::Receiver<Data>) {
    while let Some(item) = input.recv().await {
        if sender.send_async(item).await.is_err() {
            break;
        }
    }
}

fn chunk_us(a: &AudioBuffer) -> u64 {
    remotemedia_core::frames_to_us(a.frames() as u64, a.sample_rate).max(0) as u64
}

/// Checks a `start` message's input format.
fn check_input(input: Option<InputFormat>) -> Result<(), String> {
    let Some(i) = input else { return Ok(()) };
    if !(1..=768_000).contains(&i.sample_rate) {
        return Err(format!(
            "`input.sample_rate` must be from 1 to 768000 Hz, found {}",
            i.sample_rate
        ));
    }
    if !(1..=8).contains(&i.channels) {
        return Err(format!(
            "`input.channels` must be from 1 to 8, found {}",
            i.channels
        ));
    }
    Ok(())
}
