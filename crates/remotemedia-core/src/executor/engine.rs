//! Threaded execution: every stage is a task, run by a small pool of worker threads,
//! with bounded queues of batches between stages.
//!
//! A stage task is scheduled when something changes for it: a batch arrived on its
//! queue, an upstream stage ended, a full queue it sends to made room, or the run
//! failed. Nothing polls, and an idle stage costs nothing, so the cost of a run grows
//! with the work done (nodes × items), not with the number of stages waiting.
//!
//! Threads are bounded by pool sizes, never by the number of stages: inline stages run
//! on a pool of `min(available_parallelism, COMPUTE_THREADS)` threads; stages headed
//! by an [`Execution::Dedicated`] node (foreign runtimes, nodes with `timeout_ms`),
//! whose calls block on something else, run on a second pool of at most
//! [`DEDICATED_THREADS`], so they never hold up the inline stages, nor those them.
//!
//! Backpressure: a stage (a source included) runs only while every queue it sends to
//! has room, so a queue holds at most its capacity plus one batch per producer; the
//! run's callers block (or, async, wait) while a root queue is full.

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::{Poll, Waker};
use std::thread::JoinHandle;
use std::time::Instant;

use crate::data::Data;
use crate::error::{PipelineNodeError, RunError};
use crate::metrics::{NodeMetrics, QueueMetrics};
use crate::node::{Execution, Pull};
use crate::plan::{Plan, Target};

use super::chain::{Chain, NodeRunner};
use super::trace::{stage_finished, stage_span, Ending, Pool as PoolKind};
use super::RunOptions;

/// A batch arriving on a port of a stage's head node.
pub(crate) type Msg = (usize, Vec<Data>);
/// A batch reaching sink number `.0`.
pub(crate) type SinkMsg = (usize, Vec<Data>);

/// Most threads of the pool running inline stages (fewer when the machine has fewer
/// cores, or the plan fewer stages).
pub const COMPUTE_THREADS: usize = 16;
/// Most threads of the pool running stages headed by a dedicated node (fewer when the
/// plan has fewer such stages).
pub const DEDICATED_THREADS: usize = 16;

/// Locks a mutex, also after a panic elsewhere (the state it guards stays consistent:
/// every critical section here is a few plain updates).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

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
    fn fail(&self, e: PipelineNodeError) {
        let mut slot = lock(&self.fatal);
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
        lock(&self.fatal).take()
    }
}

/// What a stage hands back when it ends.
pub(crate) struct StageReport {
    pub(crate) nodes: Vec<(usize, NodeMetrics)>,
    pub(crate) skipped: Vec<PipelineNodeError>,
    pub(crate) cleanup_errors: Vec<PipelineNodeError>,
}

/// The input queue of one stage.
struct Queue {
    inner: Mutex<QueueInner>,
    /// Signalled when the queue makes room or dies (for blocked external senders).
    room: Condvar,
    stat: Arc<QueueStat>,
    capacity: usize,
}

struct QueueInner {
    batches: VecDeque<Msg>,
    /// Senders still open: one per upstream stage, plus the run's input for a root.
    open: usize,
    /// The stage ended: nothing more is taken.
    dead: bool,
    /// Stages waiting for room here.
    blocked: Vec<usize>,
    /// Async external senders waiting for room.
    wakers: Vec<Waker>,
}

/// What taking from a queue found.
enum Took {
    Batch(Msg),
    /// Empty, but a sender is still open.
    Empty,
    /// Empty, and every sender has closed.
    Closed,
}

impl Queue {
    fn new(capacity: usize, open: usize) -> Self {
        Self {
            inner: Mutex::new(QueueInner {
                batches: VecDeque::new(),
                open,
                dead: false,
                blocked: Vec::new(),
                wakers: Vec::new(),
            }),
            room: Condvar::new(),
            stat: Arc::default(),
            capacity,
        }
    }

    /// Takes the next batch, with the queued batches for the same port behind it up to
    /// `max` items. Returns the stages to wake because room was made.
    fn take(&self, max: usize) -> (Took, Vec<usize>) {
        let mut q = lock(&self.inner);
        let Some((port, mut batch)) = q.batches.pop_front() else {
            let took = if q.open == 0 {
                Took::Closed
            } else {
                Took::Empty
            };
            return (took, Vec::new());
        };
        let mut n = batch.len();
        while batch.len() < max && q.batches.front().is_some_and(|(p, _)| *p == port) {
            let (_, more) = q.batches.pop_front().expect("checked");
            n += more.len();
            batch.extend(more);
        }
        self.stat.removed(n);
        let woken = if q.batches.len() < self.capacity {
            for w in q.wakers.drain(..) {
                w.wake();
            }
            std::mem::take(&mut q.blocked)
        } else {
            Vec::new()
        };
        drop(q);
        self.room.notify_all();
        (Took::Batch((port, batch)), woken)
    }

    /// Appends a batch whatever the queue's length (the sender checked for room before
    /// it ran). False when the stage has ended.
    fn push(&self, msg: Msg) -> bool {
        let mut q = lock(&self.inner);
        if q.dead {
            return false;
        }
        self.stat.added(msg.1.len());
        q.batches.push_back(msg);
        true
    }

    /// True when the queue has room or is dead (a send will not wait); otherwise
    /// records `stage` to be woken when it makes room.
    fn has_room_or_wait(&self, stage: usize) -> bool {
        let mut q = lock(&self.inner);
        if q.dead || q.batches.len() < self.capacity {
            return true;
        }
        if !q.blocked.contains(&stage) {
            q.blocked.push(stage);
        }
        false
    }

    /// Ends the queue: later sends fail, waiting senders are released. Returns the
    /// stages that were waiting for room.
    fn kill(&self) -> Vec<usize> {
        let mut q = lock(&self.inner);
        q.dead = true;
        let n: usize = q.batches.drain(..).map(|(_, b)| b.len()).sum();
        self.stat.removed(n);
        for w in q.wakers.drain(..) {
            w.wake();
        }
        let blocked = std::mem::take(&mut q.blocked);
        drop(q);
        self.room.notify_all();
        blocked
    }

    /// One sender closed.
    fn close_one(&self) {
        let mut q = lock(&self.inner);
        q.open = q.open.saturating_sub(1);
    }
}

/// Where a stage's output goes.
enum Out {
    Stage(usize, usize),
    Sink(flume::Sender<SinkMsg>, usize),
}

/// A stage's chain and what it keeps while it runs.
struct Body {
    chain: Chain,
    outs: Vec<Out>,
    skipped: Vec<PipelineNodeError>,
    initialized: bool,
    /// When the stage started (initialized its chain).
    started: Instant,
}

/// Task states.
const IDLE: u8 = 0;
const SCHEDULED: u8 = 1;
const RUNNING: u8 = 2;
/// Running, and notified meanwhile: runs again.
const NOTIFIED: u8 = 3;
const DONE: u8 = 4;

struct StageTask {
    state: AtomicU8,
    /// Index of the pool that runs it.
    pool: usize,
    queue: Queue,
    /// Targets that are stages.
    downstream: Vec<usize>,
    body: Mutex<Option<Body>>,
    /// Takes the run's inputs.
    root: bool,
    source: bool,
    /// Entered around each step, on whichever worker runs it.
    span: tracing::Span,
}

/// What a step of a stage leaves to do.
enum Step {
    /// Nothing until something changes for the stage.
    Wait,
    /// More to do now: run again (behind the tasks already waiting).
    Again,
    /// The stage has ended.
    Done,
}

/// The ready tasks of one pool.
#[derive(Default)]
struct Pool {
    ready: Mutex<(VecDeque<usize>, bool)>,
    wake: Condvar,
}

/// One run's stages and pools.
pub(crate) struct Run {
    shared: Arc<Shared>,
    stages: Vec<StageTask>,
    pools: [Pool; 2],
    remaining: AtomicUsize,
    reports: Mutex<Vec<StageReport>>,
    panicked: AtomicBool,
    max: usize,
    /// Roots and sources: woken when the run fails, so they stop taking input.
    wake_on_fail: Vec<usize>,
    /// The run's span, entered with a stage's around each step: filters on its fields
    /// (`[run{pipeline=…}]`) then apply on the worker threads too.
    span: tracing::Span,
}

impl Run {
    /// Schedules stage `s` (or makes it run again if it is running).
    fn notify(&self, s: usize) {
        let st = &self.stages[s].state;
        let mut cur = st.load(Ordering::Acquire);
        loop {
            let next = match cur {
                IDLE => SCHEDULED,
                RUNNING => NOTIFIED,
                _ => return,
            };
            match st.compare_exchange_weak(cur, next, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) if next == SCHEDULED => {
                    self.enqueue(s);
                    return;
                }
                Ok(_) => return,
                Err(now) => cur = now,
            }
        }
    }

    fn enqueue(&self, s: usize) {
        let pool = &self.pools[self.stages[s].pool];
        lock(&pool.ready).0.push_back(s);
        pool.wake.notify_one();
    }

    fn fail(&self, e: PipelineNodeError) {
        self.shared.fail(e);
        for &s in &self.wake_on_fail {
            self.notify(s);
        }
    }

    /// A worker thread of pool `p`: runs ready tasks until every stage has ended.
    fn work(&self, p: usize) {
        let pool = &self.pools[p];
        loop {
            let s = {
                let mut ready = lock(&pool.ready);
                loop {
                    if let Some(s) = ready.0.pop_front() {
                        break s;
                    }
                    if ready.1 {
                        return;
                    }
                    ready = pool.wake.wait(ready).unwrap_or_else(|e| e.into_inner());
                }
            };
            self.run_task(s);
        }
    }

    fn run_task(&self, s: usize) {
        let task = &self.stages[s];
        task.state.store(RUNNING, Ordering::Release);
        let _run = self.span.enter();
        let _stage = task.span.enter();
        let step = match catch_unwind(AssertUnwindSafe(|| self.step(s))) {
            Ok(step) => step,
            Err(_) => {
                self.panicked.store(true, Ordering::Release);
                if let Some(body) = lock(&task.body).take() {
                    self.end(s, body, Ending::Panicked);
                }
                Step::Done
            }
        };
        match step {
            Step::Done => task.state.store(DONE, Ordering::Release),
            Step::Again => {
                task.state.store(SCHEDULED, Ordering::Release);
                self.enqueue(s);
            }
            Step::Wait => {
                if task
                    .state
                    .compare_exchange(RUNNING, IDLE, Ordering::AcqRel, Ordering::Acquire)
                    .is_err()
                {
                    // Notified while running.
                    task.state.store(SCHEDULED, Ordering::Release);
                    self.enqueue(s);
                }
            }
        }
    }

    /// Runs one batch through stage `s` (or initializes it, or ends it).
    fn step(&self, s: usize) -> Step {
        let task = &self.stages[s];
        let mut guard = lock(&task.body);
        let Some(body) = guard.as_mut() else {
            return Step::Done;
        };
        if !body.initialized {
            body.initialized = true;
            body.started = Instant::now();
            tracing::info!("stage started");
            if let Err(f) = body.chain.initialize() {
                self.fail(*f);
                let body = guard.take().expect("present");
                drop(guard);
                self.end(s, body, Ending::Failed);
                return Step::Done;
            }
        }
        if task.source && self.shared.failed() {
            // A failed run takes no new input, also from sources.
            let body = guard.take().expect("present");
            drop(guard);
            self.end(s, body, Ending::Stopped);
            return Step::Done;
        }
        // Backpressure: run only while every queue this stage sends to has room.
        for &t in &task.downstream {
            if !self.stages[t].queue.has_room_or_wait(s) {
                return Step::Wait;
            }
        }
        if task.source {
            return self.pull(s, guard);
        }
        let (took, woken) = task.queue.take(self.max);
        for w in woken {
            self.notify(w);
        }
        match took {
            Took::Batch((port, mut batch)) => {
                let result =
                    body.chain
                        .push(port, &mut batch, &mut body.skipped, &mut Instant::now());
                // On failure the outputs of the items before the failing one go first.
                let sent = self.emit(&body.outs, batch);
                let failed = result.is_err();
                if let Err(f) = result {
                    self.fail(*f);
                }
                if failed || !sent {
                    let body = guard.take().expect("present");
                    drop(guard);
                    let ending = if failed {
                        Ending::Failed
                    } else {
                        Ending::Stopped
                    };
                    self.end(s, body, ending);
                    return Step::Done;
                }
                // Nothing queued and an upstream still open: wait for it. (A queue
                // closed meanwhile needs one more step, to end the stage.)
                if task.queue.is_idle() {
                    Step::Wait
                } else {
                    Step::Again
                }
            }
            Took::Closed => {
                let body = guard.take().expect("present");
                drop(guard);
                self.end(s, body, Ending::Finished);
                Step::Done
            }
            Took::Empty => {
                // A failed run takes no new input: an idle root has drained what was
                // accepted. Other stages end when their upstream does.
                if task.root && self.shared.failed() {
                    let body = guard.take().expect("present");
                    drop(guard);
                    self.end(s, body, Ending::Stopped);
                    return Step::Done;
                }
                Step::Wait
            }
        }
    }

    /// A step of a stage headed by a source: pulls one batch and sends it on.
    fn pull(&self, s: usize, mut guard: MutexGuard<'_, Option<Body>>) -> Step {
        let body = guard.as_mut().expect("present");
        let mut batch = Vec::new();
        let pulled = body
            .chain
            .pull(self.max, &mut batch, &mut body.skipped, &mut Instant::now());
        let sent = self.emit(&body.outs, batch);
        let ending = match pulled {
            Ok(Pull::More) if sent => return Step::Again,
            Ok(Pull::Done) if sent => Ending::Finished,
            Ok(_) => Ending::Stopped,
            Err(f) => {
                self.fail(*f);
                Ending::Failed
            }
        };
        let body = guard.take().expect("present");
        drop(guard);
        self.end(s, body, ending);
        Step::Done
    }

    /// Sends a batch to every target (cloning for all but the last). False when a
    /// target has ended, which only happens when the run is being torn down.
    fn emit(&self, outs: &[Out], batch: Vec<Data>) -> bool {
        if batch.is_empty() {
            return true;
        }
        let Some((last, rest)) = outs.split_last() else {
            return true;
        };
        for o in rest {
            if !self.send(o, batch.clone()) {
                return false;
            }
        }
        self.send(last, batch)
    }

    fn send(&self, out: &Out, batch: Vec<Data>) -> bool {
        match out {
            Out::Stage(t, port) => {
                let q = &self.stages[*t].queue;
                for piece in split(batch, self.max) {
                    if !q.push((*port, piece)) {
                        return false;
                    }
                }
                self.notify(*t);
                true
            }
            // A session's sink queue is bounded: this waits for its receiver.
            Out::Sink(tx, sink) => tx.send((*sink, batch)).is_ok(),
        }
    }

    /// Ends stage `s`: finishes its chain (at end of stream, unless the run failed),
    /// closes its queue and its targets', cleans up and reports.
    fn end(&self, s: usize, mut body: Body, mut ending: Ending) {
        if ending == Ending::Finished && self.shared.failed() {
            ending = Ending::Stopped;
        }
        if ending == Ending::Finished {
            let mut rest = Vec::new();
            match body
                .chain
                .finish(&mut rest, &mut body.skipped, &mut Instant::now())
            {
                Ok(()) => {
                    self.emit(&body.outs, rest);
                }
                Err(f) => {
                    self.emit(&body.outs, rest);
                    self.fail(*f);
                    ending = Ending::Failed;
                }
            }
        }
        if body.initialized {
            stage_finished(&body.chain.runners, body.started, ending);
        }
        let task = &self.stages[s];
        for w in task.queue.kill() {
            self.notify(w);
        }
        for &t in &task.downstream {
            self.stages[t].queue.close_one();
            self.notify(t);
        }
        drop(std::mem::take(&mut body.outs));
        let cleanup_errors = body.chain.cleanup().into_iter().map(|e| *e).collect();
        lock(&self.reports).push(StageReport {
            nodes: body.chain.runners.iter().map(NodeRunner::metrics).collect(),
            skipped: body.skipped,
            cleanup_errors,
        });
        if self.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.shutdown();
        }
    }

    /// Lets every worker thread return once its pool has nothing ready.
    fn shutdown(&self) {
        for pool in &self.pools {
            lock(&pool.ready).1 = true;
            pool.wake.notify_all();
        }
    }

    /// Sends `msg` to root stage `s` from outside the pool, waiting while its queue
    /// is full. False when the stage has ended.
    fn send_external(&self, s: usize, msg: Msg) -> bool {
        let q = &self.stages[s].queue;
        let mut inner = lock(&q.inner);
        while !inner.dead && inner.batches.len() >= q.capacity {
            inner = q.room.wait(inner).unwrap_or_else(|e| e.into_inner());
        }
        if inner.dead {
            return false;
        }
        q.stat.added(msg.1.len());
        inner.batches.push_back(msg);
        drop(inner);
        self.notify(s);
        true
    }

    /// Async [`Run::send_external`]: `msg` is taken when there is room.
    fn poll_send_external(
        &self,
        s: usize,
        msg: &mut Option<Msg>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<bool> {
        let q = &self.stages[s].queue;
        let mut inner = lock(&q.inner);
        if inner.dead {
            return Poll::Ready(false);
        }
        if inner.batches.len() >= q.capacity {
            inner.wakers.push(cx.waker().clone());
            return Poll::Pending;
        }
        let Some(m) = msg.take() else {
            return Poll::Ready(true);
        };
        q.stat.added(m.1.len());
        inner.batches.push_back(m);
        drop(inner);
        self.notify(s);
        Poll::Ready(true)
    }
}

impl Queue {
    /// Empty, with a sender still open.
    fn is_idle(&self) -> bool {
        let q = lock(&self.inner);
        q.batches.is_empty() && q.open > 0
    }
}

/// Closes a root's input when the last handle on it is dropped.
struct InputCloser {
    run: Arc<Run>,
    stage: usize,
}

impl Drop for InputCloser {
    fn drop(&mut self) {
        self.run.stages[self.stage].queue.close_one();
        self.run.notify(self.stage);
    }
}

/// The run's input into one root stage; the input ends when every clone is dropped.
#[derive(Clone)]
pub(crate) struct StageInput {
    closer: Arc<InputCloser>,
}

impl StageInput {
    /// Sends `batch` in pieces of at most `max` items, waiting while the queue is
    /// full. False when the stage is gone.
    pub(crate) fn send(&self, port: usize, batch: Vec<Data>, max: usize) -> bool {
        let c = &self.closer;
        split(batch, max)
            .into_iter()
            .all(|piece| c.run.send_external(c.stage, (port, piece)))
    }

    /// Async version of [`StageInput::send`].
    pub(crate) async fn send_async(&self, port: usize, batch: Vec<Data>, max: usize) -> bool {
        let c = &self.closer;
        for piece in split(batch, max) {
            let mut msg = Some((port, piece));
            let sent =
                std::future::poll_fn(|cx| c.run.poll_send_external(c.stage, &mut msg, cx)).await;
            if !sent {
                return false;
            }
        }
        true
    }
}

/// A running set of stages and the worker threads that run them.
pub(crate) struct Engine {
    threads: Vec<JoinHandle<()>>,
    run: Arc<Run>,
    pub(crate) roots: Vec<StageInput>,
    pub(crate) outputs: flume::Receiver<SinkMsg>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) queues: Vec<(String, Arc<QueueStat>)>,
    pub(crate) start: Instant,
    pub(crate) stage_count: usize,
}

/// Threads of the pool running inline stages.
fn compute_threads(stages: usize) -> usize {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    cores.clamp(1, COMPUTE_THREADS).min(stages)
}

impl Engine {
    /// Starts the stages on the worker pools. `output_capacity` bounds the sink queue
    /// (None: unbounded, for finite runs whose caller collects everything anyway).
    pub(crate) fn start(
        plan: Plan,
        opts: &RunOptions,
        output_capacity: Option<usize>,
        run_span: &tracing::Span,
    ) -> Result<Engine, RunError> {
        let start = Instant::now();
        let shared = Arc::new(Shared::default());
        let (out_tx, out_rx) = match output_capacity {
            Some(c) => flume::bounded(c),
            None => flume::unbounded(),
        };
        let stage_count = plan.stages.len();
        let capacity = opts.channel_capacity.max(1);
        // Senders of each stage's queue: one per upstream stage, plus the run's input.
        let mut open = vec![0usize; stage_count];
        for stage in &plan.stages {
            for t in &stage.targets {
                if let Target::Stage { stage, .. } = *t {
                    open[stage] += 1;
                }
            }
        }
        for &r in &plan.roots {
            open[r] += 1;
        }
        let mut tasks = Vec::with_capacity(stage_count);
        let mut queues = Vec::with_capacity(stage_count);
        let mut wake_on_fail = Vec::new();
        let mut dedicated = 0;
        for (si, stage) in plan.stages.into_iter().enumerate() {
            let outs: Vec<Out> = stage
                .targets
                .iter()
                .map(|t| match *t {
                    Target::Stage { stage, port } => Out::Stage(stage, port),
                    Target::Sink(s) => Out::Sink(out_tx.clone(), s),
                })
                .collect();
            let downstream = outs
                .iter()
                .filter_map(|o| match o {
                    Out::Stage(t, _) => Some(*t),
                    Out::Sink(..) => None,
                })
                .collect();
            let source = stage.is_source();
            let root = plan.roots.contains(&si);
            if source || root {
                wake_on_fail.push(si);
            }
            let execution = stage.nodes[0].node.execution();
            let pool = usize::from(execution == Execution::Dedicated);
            dedicated += pool;
            let mut chain = Chain::new(stage.nodes);
            let span = stage_span(run_span, si, &chain.runners, PoolKind::of(execution));
            chain.set_span(&span);
            chain.set_cancel(&opts.cancel);
            let queue = Queue::new(capacity, open[si]);
            queues.push((
                chain.runners[0].ctx.node_id.to_string(),
                Arc::clone(&queue.stat),
            ));
            tasks.push(StageTask {
                state: AtomicU8::new(IDLE),
                pool,
                queue,
                downstream,
                body: Mutex::new(Some(Body {
                    chain,
                    outs,
                    skipped: Vec::new(),
                    initialized: false,
                    started: start,
                })),
                root,
                source,
                span,
            });
        }
        drop(out_tx);
        let run = Arc::new(Run {
            shared: Arc::clone(&shared),
            stages: tasks,
            pools: [Pool::default(), Pool::default()],
            remaining: AtomicUsize::new(stage_count),
            reports: Mutex::new(Vec::with_capacity(stage_count)),
            panicked: AtomicBool::new(false),
            max: opts.batch_size.max(1),
            wake_on_fail,
            span: run_span.clone(),
        });
        let roots: Vec<StageInput> = plan
            .roots
            .iter()
            .map(|&stage| StageInput {
                closer: Arc::new(InputCloser {
                    run: Arc::clone(&run),
                    stage,
                }),
            })
            .collect();
        let sizes = [
            compute_threads(stage_count - dedicated),
            dedicated.min(DEDICATED_THREADS),
        ];
        let _entered = run_span.enter();
        tracing::debug!(
            compute_threads = sizes[0],
            dedicated_threads = sizes[1],
            dedicated_stages = dedicated,
            inline_stages = stage_count - dedicated,
            "worker pools: inline stages share the compute threads, dedicated stages the dedicated ones"
        );
        let mut threads = Vec::new();
        for (p, &n) in sizes.iter().enumerate() {
            for i in 0..n {
                let r = Arc::clone(&run);
                let spawned = std::thread::Builder::new()
                    .name(format!("rm-{}-{i}", ["worker", "dedicated"][p]))
                    .spawn(move || r.work(p));
                match spawned {
                    Ok(h) => threads.push(h),
                    Err(e) if i == 0 => {
                        tracing::error!("could not spawn a worker thread: {e}");
                        // A pool without a thread would never run its stages. No stage
                        // has run yet: the threads started end at once.
                        run.shutdown();
                        for h in threads {
                            let _ = h.join();
                        }
                        return Err(RunError::Spawn(e.to_string()));
                    }
                    // A smaller pool still runs every stage.
                    Err(e) => tracing::warn!("could not spawn a worker thread: {e}"),
                }
            }
        }
        // Every stage runs once at the start: it initializes its chain (and a source
        // starts pulling).
        for s in 0..stage_count {
            run.notify(s);
        }
        if stage_count == 0 {
            run.shutdown();
        }
        Ok(Engine {
            threads,
            run,
            roots,
            outputs: out_rx,
            shared,
            queues,
            start,
            stage_count,
        })
    }

    /// Waits for every worker thread; returns the stage reports and whether a stage
    /// task panicked. Call once every sink batch has been received.
    pub(crate) fn join(&mut self) -> (Vec<StageReport>, bool) {
        for h in self.threads.drain(..) {
            if h.join().is_err() {
                self.run.panicked.store(true, Ordering::Release);
            }
        }
        let reports = std::mem::take(&mut *lock(&self.run.reports));
        (reports, self.run.panicked.load(Ordering::Acquire))
    }
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
