//! Streaming sessions: send items in, receive outputs as they are produced.
//!
//! Every queue is bounded, so a slow node slows the sender: [`SessionSender::send`]
//! blocks (or [`SessionSender::send_async`] waits) while the first stage's queue is
//! full. Send and receive from different threads or tasks.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use crate::data::Data;
use crate::error::{PipelineNodeError, RunError};
use crate::metrics::RunMetrics;
use crate::plan::Plan;

use super::engine::{queue_metrics, Engine, Shared, SinkMsg, StageInput};
use super::{node_metrics, RunFailure, RunOptions, RunResult, SinkOutput};

/// One output of a session.
#[derive(Clone, Debug, PartialEq)]
pub struct SinkItem {
    /// Index of the sink (see [`SessionReceiver::sink_ids`]).
    pub sink: usize,
    /// The item.
    pub item: Data,
}

/// Starts a streaming session on its own worker threads (see `engine`).
pub fn start_session(plan: Plan, options: &RunOptions) -> Result<Session, RunError> {
    let span = super::trace::run_span(&plan.pipeline);
    let _entered = span.enter();
    tracing::info!(
        mode = "session",
        stages = plan.stages.len(),
        nodes = plan.node_count(),
        "run started"
    );
    let sinks = plan.sinks.clone();
    let names = plan.node_names();
    let capacity = Some(options.channel_capacity.max(1));
    let mut engine = match Engine::start(plan, options, capacity, &span) {
        Ok(e) => e,
        Err(e) => {
            tracing::info!(outcome = "failed", error = %e, "run finished");
            return Err(e);
        }
    };
    // Only the sender may hold the root queues: when it is dropped, the stream ends.
    let sender = SessionSender {
        roots: std::mem::take(&mut engine.roots),
        shared: Arc::clone(&engine.shared),
        max: options.batch_size.max(1),
        sent: Arc::new(std::sync::atomic::AtomicU64::new(0)),
    };
    let mut collector = Collector::new(engine, sinks, names, options.clone());
    collector.sent = Some(Arc::clone(&sender.sent));
    drop(_entered);
    Ok(Session {
        sender,
        receiver: SessionReceiver {
            collector,
            buffer: VecDeque::new(),
            span,
        },
    })
}

/// A running streaming session; split it to send and receive from different threads.
pub struct Session {
    sender: SessionSender,
    receiver: SessionReceiver,
}

impl Session {
    /// Separates the sending and receiving ends.
    pub fn into_split(self) -> (SessionSender, SessionReceiver) {
        (self.sender, self.receiver)
    }
}

/// The input end of a session. Dropping every clone (or calling
/// [`SessionSender::close`]) ends the stream.
#[derive(Clone)]
pub struct SessionSender {
    roots: Vec<StageInput>,
    shared: Arc<Shared>,
    max: usize,
    sent: Arc<std::sync::atomic::AtomicU64>,
}

impl SessionSender {
    /// Sends one item to every root, blocking while the pipeline is full.
    pub fn send(&self, item: Data) -> Result<(), RunError> {
        self.send_batch(vec![item])
    }

    /// Sends several items at once (cheaper per item than [`SessionSender::send`]).
    pub fn send_batch(&self, items: Vec<Data>) -> Result<(), RunError> {
        if self.shared.failed() {
            return Err(RunError::SessionClosed);
        }
        let n = items.len() as u64;
        if self.roots.is_empty() && n > 0 {
            return Err(RunError::NoInputNode);
        }
        if let Some((last, others)) = self.roots.split_last() {
            for r in others {
                if !r.send(0, items.clone(), self.max) {
                    return Err(RunError::SessionClosed);
                }
            }
            if !last.send(0, items, self.max) {
                return Err(RunError::SessionClosed);
            }
        }
        self.sent.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    /// Async [`SessionSender::send_batch`]: waits without blocking the thread.
    pub async fn send_batch_async(&self, items: Vec<Data>) -> Result<(), RunError> {
        if self.shared.failed() {
            return Err(RunError::SessionClosed);
        }
        let n = items.len() as u64;
        if let Some((last, others)) = self.roots.split_last() {
            for r in others {
                if !r.send_async(0, items.clone(), self.max).await {
                    return Err(RunError::SessionClosed);
                }
            }
            if !last.send_async(0, items, self.max).await {
                return Err(RunError::SessionClosed);
            }
        }
        self.sent.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    /// Async [`SessionSender::send`].
    pub async fn send_async(&self, item: Data) -> Result<(), RunError> {
        self.send_batch_async(vec![item]).await
    }

    /// True once a node has failed; further sends will fail (what was already sent
    /// still drains to the outputs).
    pub fn is_aborted(&self) -> bool {
        self.shared.failed()
    }

    /// Ends the input stream (same as dropping this sender and all its clones).
    pub fn close(self) {}
}

/// The output end of a session.
pub struct SessionReceiver {
    collector: Collector,
    buffer: VecDeque<SinkItem>,
    /// The run's span, entered to log its end.
    span: tracing::Span,
}

impl SessionReceiver {
    /// Sink node ids; [`SinkItem::sink`] indexes this.
    pub fn sink_ids(&self) -> &[String] {
        &self.collector.sinks
    }

    /// The next output, blocking; `None` at end of stream or after a failure (then
    /// [`SessionReceiver::finish`] says what failed).
    pub fn recv(&mut self) -> Option<SinkItem> {
        if let Some(i) = self.buffer.pop_front() {
            return Some(i);
        }
        let (sink, batch) = self.collector.recv_batch()?;
        self.buffer
            .extend(batch.into_iter().map(|item| SinkItem { sink, item }));
        self.buffer.pop_front()
    }

    /// The next batch of outputs from one sink, blocking; `None` at end of stream.
    pub fn recv_batch(&mut self) -> Option<(usize, Vec<Data>)> {
        if let Some(first) = self.buffer.pop_front() {
            let mut items = vec![first.item];
            while self.buffer.front().is_some_and(|i| i.sink == first.sink) {
                items.push(self.buffer.pop_front().expect("checked").item);
            }
            return Some((first.sink, items));
        }
        self.collector.recv_batch()
    }

    /// Async [`SessionReceiver::recv_batch`].
    pub async fn recv_batch_async(&mut self) -> Option<(usize, Vec<Data>)> {
        if !self.buffer.is_empty() {
            return self.recv_batch();
        }
        self.collector.recv_batch_async().await
    }

    /// Waits for the end of the run. Outputs not yet received are returned in the
    /// result (per sink); on failure, with the error.
    ///
    /// The stream ends when every [`SessionSender`] (clones included) is closed or
    /// dropped: drop or [`SessionSender::close`] them all first, or this waits for them.
    pub fn finish(mut self) -> Result<RunResult, RunFailure> {
        for SinkItem { sink, item } in self.buffer.drain(..) {
            self.collector.outputs[sink].push(item);
        }
        let _entered = self.span.enter();
        let result = self.collector.finish();
        super::run_finished(&result);
        result
    }
}

/// Drains sink batches, waits for the worker threads and assembles the result.
pub(crate) struct Collector {
    engine: Engine,
    pub(crate) sinks: Vec<String>,
    names: Vec<(Arc<str>, Arc<str>)>,
    options: RunOptions,
    pub(crate) outputs: Vec<Vec<Data>>,
    items_in: u64,
    items_out: u64,
    pub(crate) sent: Option<Arc<std::sync::atomic::AtomicU64>>,
}

impl Collector {
    pub(crate) fn new(
        engine: Engine,
        sinks: Vec<String>,
        names: Vec<(Arc<str>, Arc<str>)>,
        options: RunOptions,
    ) -> Self {
        let outputs = vec![Vec::new(); sinks.len()];
        Self {
            engine,
            sinks,
            names,
            options,
            outputs,
            items_in: 0,
            items_out: 0,
            sent: None,
        }
    }

    pub(crate) fn set_items_in(&mut self, n: u64) {
        self.items_in = n;
    }

    fn recv_batch(&mut self) -> Option<SinkMsg> {
        // Stages always drop their sink senders when they end, also after a failure, so
        // waiting for disconnection cannot hang.
        let m = self.engine.outputs.recv().ok()?;
        self.items_out += m.1.len() as u64;
        Some(m)
    }

    async fn recv_batch_async(&mut self) -> Option<SinkMsg> {
        // Stages always drop their sink senders when they end, also after a failure,
        // so waiting for disconnection cannot hang.
        match self.engine.outputs.recv_async().await {
            Ok(m) => {
                self.items_out += m.1.len() as u64;
                Some(m)
            }
            Err(_) => None,
        }
    }

    pub(crate) fn finish(mut self) -> Result<RunResult, RunFailure> {
        // Close our handles on the roots so the stream can end.
        self.engine.roots.clear();
        while let Ok((sink, mut batch)) = self.engine.outputs.recv() {
            self.items_out += batch.len() as u64;
            self.outputs[sink].append(&mut batch);
        }
        let mut reported = Vec::new();
        let mut skipped: Vec<PipelineNodeError> = Vec::new();
        let mut cleanup_errors = Vec::new();
        let (reports, panicked) = self.engine.join();
        for report in reports {
            reported.extend(report.nodes);
            skipped.extend(report.skipped);
            cleanup_errors.extend(report.cleanup_errors);
        }
        let panicked = panicked.then(|| RunError::Spawn("a stage task panicked".into()));
        let items_in = match &self.sent {
            Some(s) => s.load(std::sync::atomic::Ordering::Relaxed),
            None => self.items_in,
        };
        let result = RunResult {
            outputs: self
                .sinks
                .iter()
                .cloned()
                .zip(self.outputs)
                .map(|(sink, items)| SinkOutput { sink, items })
                .collect(),
            skipped,
            cleanup_errors,
            metrics: RunMetrics {
                wall_time_us: elapsed_us(self.engine.start),
                items_in,
                items_out: self.items_out,
                stages: self.engine.stage_count,
                peak_rss_bytes: None,
                nodes: node_metrics(&self.names, reported),
                queues: queue_metrics(&self.engine.queues, &self.options),
            },
        };
        if let Some(fatal) = self.engine.shared.take_fatal() {
            return Err(RunFailure {
                error: RunError::Node(Box::new(fatal)),
                partial: Box::new(result),
            });
        }
        if let Some(error) = panicked {
            return Err(RunFailure {
                error,
                partial: Box::new(result),
            });
        }
        Ok(result)
    }
}

fn elapsed_us(start: Instant) -> f64 {
    crate::metrics::micros(start.elapsed())
}

impl Plan {
    /// Convenience: [`start_session`] on this plan.
    pub fn start_session(self, options: &RunOptions) -> Result<Session, RunError> {
        start_session(self, options)
    }
}
