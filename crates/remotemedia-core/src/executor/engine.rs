//! Threaded execution: one thread per stage, bounded queues of batches between them.
//!
//! Stages are CPU-bound synchronous loops, or nodes that block on a foreign runtime, so
//! they run on OS threads rather than async tasks. The queues are `flume` channels,
//! which have blocking and async ends: stage threads block, async callers (gRPC
//! handlers, Python's asyncio) await.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::data::Data;
use crate::error::{PipelineNodeError, RunError};
use crate::metrics::{NodeMetrics, QueueMetrics};
use crate::plan::{Plan, Target};

use super::chain::{Chain, NodeRunner};
use super::RunOptions;

/// A batch arriving on a port of a stage's head node.
pub(crate) type Msg = (usize, Vec<Data>);
/// A batch reaching sink number `.0`.
pub(crate) type SinkMsg = (usize, Vec<Data>);

/// How long an idle root stage waits before checking whether the run failed (a failed
/// run takes no new input, so an idle root has nothing more to do).
const FAILURE_POLL: Duration = Duration::from_millis(20);

/// Items currently waiting in one queue, and the most ever seen.
#[derive(Debug, Default)]
pub(crate) struct QueueStat {
    current: AtomicI64,
    peak: AtomicI64,
}

impl QueueStat {
    fn added(&self, n: usize) {
        let now = self.current.fetch_add(n as i64, Ordering::AcqRel) + n as i64;
        self.peak.fetch_max(now, Ordering::AcqRel);
    }
    fn removed(&self, n: usize) {
        self.current.fetch_sub(n as i64, Ordering::AcqRel);
    }
    pub(crate) fn peak(&self) -> u64 {
        self.peak.load(Ordering::Acquire).max(0) as u64
    }
}

/// The sending end of one stage's input queue.
#[derive(Clone)]
pub(crate) struct StageInput {
    pub(crate) tx: flume::Sender<Msg>,
    pub(crate) stat: Arc<QueueStat>,
}

impl StageInput {
    /// Sends `batch` in pieces of at most `max` items. False when the stage is gone.
    pub(crate) fn send(&self, port: usize, batch: Vec<Data>, max: usize) -> bool {
        for piece in split(batch, max) {
            let n = piece.len();
            if self.tx.send((port, piece)).is_err() {
                return false;
            }
            self.stat.added(n);
        }
        true
    }

    /// Async version of [`StageInput::send`].
    pub(crate) async fn send_async(&self, port: usize, batch: Vec<Data>, max: usize) -> bool {
        for piece in split(batch, max) {
            let n = piece.len();
            if self.tx.send_async((port, piece)).await.is_err() {
                return false;
            }
            self.stat.added(n);
        }
        true
    }
}

fn split(mut batch: Vec<Data>, max: usize) -> Vec<Vec<Data>> {
    if batch.len() <= max {
        return vec![batch];
    }
    let mut pieces = Vec::with_capacity(batch.len().div_ceil(max));
    while batch.len() > max {
        let rest = batch.split_off(max);
        pieces.push(std::mem::replace(&mut batch, rest));
    }
    pieces.push(batch);
    pieces
}

/// State shared by every stage of one run.
///
/// After a node fails for good the run drains rather than stops: no new input is
/// accepted, batches already accepted still flow downstream to the sinks (so the
/// outputs of items before the failure are delivered), and no node is finished.
#[derive(Default)]
pub(crate) struct Shared {
    failed: AtomicBool,
    fatal: Mutex<Option<PipelineNodeError>>,
}

impl Shared {
    /// Records a fatal error (the first one wins) and puts the run into draining.
    pub(crate) fn fail(&self, e: PipelineNodeError) {
        let mut slot = self.fatal.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            *slot = Some(e);
        }
        self.failed.store(true, Ordering::Release);
    }
    /// True once a node has failed for good.
    pub(crate) fn failed(&self) -> bool {
        self.failed.load(Ordering::Acquire)
    }
    pub(crate) fn take_fatal(&self) -> Option<PipelineNodeError> {
        self.fatal.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

/// What a stage thread hands back when it ends.
pub(crate) struct StageReport {
    pub(crate) nodes: Vec<(usize, NodeMetrics)>,
    pub(crate) skipped: Vec<PipelineNodeError>,
    pub(crate) cleanup_errors: Vec<PipelineNodeError>,
}

enum Out {
    Stage(StageInput, usize),
    Sink(flume::Sender<SinkMsg>, usize),
}

impl Out {
    fn send(&self, batch: Vec<Data>, max: usize) -> bool {
        match self {
            Out::Stage(input, port) => input.send(*port, batch, max),
            Out::Sink(tx, sink) => tx.send((*sink, batch)).is_ok(),
        }
    }
}

/// A running set of stage threads.
pub(crate) struct Engine {
    pub(crate) handles: Vec<JoinHandle<StageReport>>,
    pub(crate) roots: Vec<StageInput>,
    pub(crate) outputs: flume::Receiver<SinkMsg>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) queues: Vec<(String, Arc<QueueStat>)>,
    pub(crate) start: Instant,
    pub(crate) stage_count: usize,
}

impl Engine {
    /// Starts one thread per stage. `output_capacity` bounds the sink queue (None:
    /// unbounded, for finite runs whose caller collects everything anyway).
    pub(crate) fn start(
        plan: Plan,
        opts: &RunOptions,
        output_capacity: Option<usize>,
    ) -> Result<Engine, RunError> {
        let start = Instant::now();
        let shared = Arc::new(Shared::default());
        let (out_tx, out_rx) = match output_capacity {
            Some(c) => flume::bounded(c),
            None => flume::unbounded(),
        };
        let stage_count = plan.stages.len();
        let mut inputs: Vec<(StageInput, flume::Receiver<Msg>)> = Vec::with_capacity(stage_count);
        let mut queues = Vec::with_capacity(stage_count);
        for stage in &plan.stages {
            let (tx, rx) = flume::bounded(opts.channel_capacity.max(1));
            let stat = Arc::new(QueueStat::default());
            queues.push((stage.nodes[0].ctx.node_id.to_string(), Arc::clone(&stat)));
            inputs.push((StageInput { tx, stat }, rx));
        }
        let roots: Vec<StageInput> = plan.roots.iter().map(|&r| inputs[r].0.clone()).collect();
        let mut handles = Vec::with_capacity(stage_count);
        let senders: Vec<StageInput> = inputs.iter().map(|(i, _)| i.clone()).collect();
        let mut receivers: Vec<Option<flume::Receiver<Msg>>> =
            inputs.into_iter().map(|(_, rx)| Some(rx)).collect();
        for (si, stage) in plan.stages.into_iter().enumerate() {
            let outs: Vec<Out> = stage
                .targets
                .iter()
                .map(|t| match *t {
                    Target::Stage { stage, port } => Out::Stage(senders[stage].clone(), port),
                    Target::Sink(s) => Out::Sink(out_tx.clone(), s),
                })
                .collect();
            let rx = receivers[si].take().expect("one receiver per stage");
            let stat = Arc::clone(&queues[si].1);
            let shared = Arc::clone(&shared);
            let max = opts.batch_size.max(1);
            let source = stage.is_source();
            let mut chain = Chain::new(stage.nodes);
            chain.set_cancel(&opts.cancel);
            let name = format!("rm-stage-{}", queues[si].0);
            let root = stage.input_ports == 0;
            let handle = std::thread::Builder::new()
                .name(name)
                .spawn(move || {
                    if source {
                        drop(rx);
                        source_main(chain, outs, shared, max)
                    } else {
                        stage_main(chain, rx, stat, outs, shared, max, root)
                    }
                })
                .map_err(|e| {
                    shared_abort_on_spawn_error();
                    RunError::Spawn(e.to_string())
                })?;
            handles.push(handle);
        }
        drop(senders);
        drop(out_tx);
        Ok(Engine {
            handles,
            roots,
            outputs: out_rx,
            shared,
            queues,
            start,
            stage_count,
        })
    }
}

fn shared_abort_on_spawn_error() {
    tracing::error!("could not spawn a stage thread");
}

fn stage_main(
    mut chain: Chain,
    rx: flume::Receiver<Msg>,
    stat: Arc<QueueStat>,
    outs: Vec<Out>,
    shared: Arc<Shared>,
    max: usize,
    root: bool,
) -> StageReport {
    let mut skipped = Vec::new();
    if let Err(f) = chain.initialize() {
        shared.fail(*f);
    } else {
        let mut pending: Option<Msg> = None;
        'run: loop {
            let (port, mut batch) = match pending.take() {
                Some(m) => m,
                None => match rx.recv_timeout(FAILURE_POLL) {
                    Ok(m) => {
                        stat.removed(m.1.len());
                        m
                    }
                    Err(flume::RecvTimeoutError::Timeout) => {
                        // A failed run takes no new input: an idle root has drained
                        // what was accepted. Other stages end when their upstream does.
                        if root && shared.failed() {
                            break 'run;
                        }
                        continue;
                    }
                    Err(flume::RecvTimeoutError::Disconnected) => {
                        // End of stream; after a failure nothing is finished.
                        if !shared.failed() {
                            let mut rest = Vec::new();
                            match chain.finish(&mut rest, &mut skipped, &mut Instant::now()) {
                                Ok(()) => {
                                    emit(&outs, rest, max);
                                }
                                Err(f) => shared.fail(*f),
                            }
                        }
                        break 'run;
                    }
                },
            };
            // Coalesce queued batches for the same port, up to the batch limit.
            while batch.len() < max {
                match rx.try_recv() {
                    Ok((p, more)) => {
                        stat.removed(more.len());
                        if p == port {
                            batch.extend(more);
                        } else {
                            pending = Some((p, more));
                            break;
                        }
                    }
                    Err(_) => break,
                }
            }
            if let Err(f) = chain.push(port, &mut batch, &mut skipped, &mut Instant::now()) {
                // Outputs of the items before the failing one go out first.
                if !batch.is_empty() {
                    emit(&outs, batch, max);
                }
                shared.fail(*f);
                break;
            }
            if !batch.is_empty() && !emit(&outs, batch, max) {
                break;
            }
        }
    }
    drop(rx);
    drop(outs);
    let cleanup_errors = chain.cleanup().into_iter().map(|e| *e).collect();
    StageReport {
        nodes: chain.runners.iter().map(NodeRunner::metrics).collect(),
        skipped,
        cleanup_errors,
    }
}

/// A stage headed by a source: pulls batches from it and sends them downstream until
/// the source ends (then the chain is finished), the run fails or a target is gone.
/// Sending blocks while the next queue is full, so the source runs only as fast as its
/// consumers.
fn source_main(mut chain: Chain, outs: Vec<Out>, shared: Arc<Shared>, max: usize) -> StageReport {
    let mut skipped = Vec::new();
    if let Err(f) = chain.initialize() {
        shared.fail(*f);
    } else {
        loop {
            // A failed run takes no new input, also from sources.
            if shared.failed() {
                break;
            }
            let mut batch = Vec::new();
            let pulled = chain.pull(max, &mut batch, &mut skipped, &mut Instant::now());
            let sent = emit(&outs, batch, max);
            match pulled {
                Ok(crate::node::Pull::More) if sent => {}
                Ok(crate::node::Pull::More) => break,
                Ok(crate::node::Pull::Done) => {
                    if sent && !shared.failed() {
                        let mut rest = Vec::new();
                        match chain.finish(&mut rest, &mut skipped, &mut Instant::now()) {
                            Ok(()) => {
                                emit(&outs, rest, max);
                            }
                            Err(f) => shared.fail(*f),
                        }
                    }
                    break;
                }
                Err(f) => {
                    shared.fail(*f);
                    break;
                }
            }
        }
    }
    drop(outs);
    let cleanup_errors = chain.cleanup().into_iter().map(|e| *e).collect();
    StageReport {
        nodes: chain.runners.iter().map(NodeRunner::metrics).collect(),
        skipped,
        cleanup_errors,
    }
}

/// Sends a batch to every target (cloning for all but the last). False when a target
/// is gone, which only happens when the run is being torn down.
fn emit(outs: &[Out], batch: Vec<Data>, max: usize) -> bool {
    if batch.is_empty() {
        return true;
    }
    let Some((last, rest)) = outs.split_last() else {
        return true;
    };
    for o in rest {
        if !o.send(batch.clone(), max) {
            return false;
        }
    }
    last.send(batch, max)
}

/// Queue metrics in stage order.
pub(crate) fn queue_metrics(
    queues: &[(String, Arc<QueueStat>)],
    opts: &RunOptions,
) -> Vec<QueueMetrics> {
    queues
        .iter()
        .map(|(head, stat)| QueueMetrics {
            stage_head: head.clone(),
            capacity_batches: opts.channel_capacity.max(1),
            max_batch: opts.batch_size.max(1),
            peak_items: stat.peak(),
        })
        .collect()
}
