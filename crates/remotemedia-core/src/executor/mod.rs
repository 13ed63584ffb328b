//! Executing a [`Plan`]: a finite [`run`] or a streaming [`Session`].
//!
//! A finite run of a plan of one stage (a plain chain), or of inline nodes only, runs
//! on the caller's thread: no thread, no queue. Anything else, and every session, runs
//! its stages as tasks on a bounded pool of worker threads (see `engine`): at most
//! [`COMPUTE_THREADS`] for inline stages and [`DEDICATED_THREADS`] for stages headed by
//! a dedicated node, whatever the number of stages.

mod cancel;
mod chain;
mod engine;
mod session;
mod stepper;
pub(crate) mod timeout;
mod trace;

use std::time::Instant;

use crate::data::Data;
use crate::error::{PipelineNodeError, RunError};
use crate::manifest::Pipeline;
use crate::metrics::{NodeCounters, NodeMetrics, RunMetrics};
use crate::plan::{Plan, Target};
use crate::registry::Registry;

pub use cancel::{CancelOnDrop, CancelToken};
use chain::Chain;
pub(crate) use chain::NodeState;
use engine::Engine;
pub use engine::{COMPUTE_THREADS, DEDICATED_THREADS};
pub use session::{start_session, Session, SessionReceiver, SessionSender, SinkItem};
pub use stepper::{ChainReport, ChainRunner, NotAChain};
pub(crate) use trace::NodeList;
use trace::{stage_finished, stage_span, Ending, Pool};

/// Tuning knobs of the executor.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Largest batch carried on a queue between stages (items).
    pub batch_size: usize,
    /// Capacity of each queue between stages (batches).
    pub channel_capacity: usize,
    /// Run even a single chain on threads (normally it runs inline).
    pub force_threads: bool,
    /// Cancels the run: every later node call fails with kind `cancelled` (never
    /// retried or skipped), back-offs end at once, and every node is cleaned up.
    /// Default: [`CancelToken::never`].
    pub cancel: CancelToken,
}

impl Default for RunOptions {
    /// Batches of up to 1024 items, 2 batches per queue: enough to keep every stage
    /// busy, and little enough that a long stream holds only a few batches in memory.
    fn default() -> Self {
        Self {
            batch_size: 1024,
            channel_capacity: 2,
            force_threads: false,
            cancel: CancelToken::never(),
        }
    }
}

/// Items that reached one sink.
#[derive(Clone, Debug, PartialEq)]
pub struct SinkOutput {
    /// Sink node id.
    pub sink: String,
    /// Items in arrival order.
    pub items: Vec<Data>,
}

/// What a finished run produced.
#[derive(Clone, Debug, Default)]
pub struct RunResult {
    /// Outputs per sink, in manifest order of the sinks.
    pub outputs: Vec<SinkOutput>,
    /// Items that failed on a node with `on_error: skip`.
    pub skipped: Vec<PipelineNodeError>,
    /// Errors raised by `cleanup` (the run itself succeeded).
    pub cleanup_errors: Vec<PipelineNodeError>,
    /// Metrics.
    pub metrics: RunMetrics,
}

impl RunResult {
    /// Items of the sink with this id.
    pub fn sink(&self, id: &str) -> Option<&[Data]> {
        self.outputs
            .iter()
            .find(|s| s.sink == id)
            .map(|s| s.items.as_slice())
    }

    /// All outputs, sink by sink.
    pub fn all_items(&self) -> impl Iterator<Item = &Data> {
        self.outputs.iter().flat_map(|s| s.items.iter())
    }
}

/// A failed run: the error, plus everything produced before it.
#[derive(Debug)]
pub struct RunFailure {
    /// What went wrong.
    pub error: RunError,
    /// Outputs, skipped items, cleanup errors and metrics up to the failure.
    pub partial: Box<RunResult>,
}

impl std::fmt::Display for RunFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error.fmt(f)
    }
}

impl std::error::Error for RunFailure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

/// Builds a plan from a validated pipeline and runs `inputs` through it.
pub fn run_pipeline(
    pipeline: &Pipeline,
    registry: &Registry,
    inputs: Vec<Data>,
    options: &RunOptions,
) -> Result<RunResult, RunFailure> {
    let plan = Plan::build(pipeline, registry).map_err(|error| RunFailure {
        error,
        partial: Box::default(),
    })?;
    run(plan, inputs, options)
}

/// Runs `inputs` through `plan` to the end of stream. Every input goes to every root;
/// outputs are collected per sink.
///
/// A plan of one stage, or of inline nodes only, runs on the caller's thread, stage by
/// stage in topological order (see [`RunOptions::force_threads`]); anything else runs
/// its stages as tasks on the engine's bounded worker pools.
pub fn run(plan: Plan, inputs: Vec<Data>, options: &RunOptions) -> Result<RunResult, RunFailure> {
    if plan.roots.is_empty() && !inputs.is_empty() {
        return Err(RunFailure {
            error: RunError::NoInputNode,
            partial: Box::default(),
        });
    }
    let span = trace::run_span(&plan.pipeline);
    let _entered = span.enter();
    // Sources are pulled on threads of their own, paced by their consumers.
    let inline = !options.force_threads
        && !plan.has_sources()
        && (plan.stages.len() == 1 || plan.is_all_inline());
    tracing::info!(
        mode = if inline { "inline" } else { "threads" },
        stages = plan.stages.len(),
        nodes = plan.node_count(),
        items_in = inputs.len(),
        "run started"
    );
    let result = if inline {
        run_inline(plan, inputs, options)
    } else {
        run_threaded(plan, inputs, &span, options)
    };
    run_finished(&result);
    result
}

/// Logs the end of a run (inside its span).
pub(crate) fn run_finished(result: &Result<RunResult, RunFailure>) {
    let (r, error) = match result {
        Ok(r) => (r, None),
        Err(f) => (&*f.partial, Some(&f.error)),
    };
    let m = &r.metrics;
    let duration_ms = m.wall_time_us.round() / 1000.0;
    match error {
        None => tracing::info!(
            items_in = m.items_in,
            items_out = m.items_out,
            skipped = r.skipped.len(),
            cleanup_errors = r.cleanup_errors.len(),
            duration_ms,
            outcome = "ok",
            "run finished"
        ),
        Some(e) => tracing::info!(
            items_in = m.items_in,
            items_out = m.items_out,
            skipped = r.skipped.len(),
            cleanup_errors = r.cleanup_errors.len(),
            duration_ms,
            outcome = "failed",
            error = %e,
            "run finished"
        ),
    }
}

/// Node metrics in manifest order from `(index, metrics)` pairs covering every node.
pub(crate) fn in_manifest_order(mut reported: Vec<(usize, NodeMetrics)>) -> Vec<NodeMetrics> {
    reported.sort_unstable_by_key(|(i, _)| *i);
    reported.into_iter().map(|(_, m)| m).collect()
}

/// Node metrics in manifest order from `(index, metrics)` pairs; nodes without a report
/// (their stage task panicked) get empty metrics under their name from `names`.
fn node_metrics(
    names: &[(std::sync::Arc<str>, std::sync::Arc<str>)],
    mut reported: Vec<(usize, NodeMetrics)>,
) -> Vec<NodeMetrics> {
    if reported.len() == names.len() {
        return in_manifest_order(reported);
    }
    reported.sort_unstable_by_key(|(i, _)| *i);
    let mut reported = reported.into_iter().peekable();
    names
        .iter()
        .enumerate()
        .map(|(i, (id, ty))| match reported.next_if(|(j, _)| *j == i) {
            Some((_, m)) => m,
            None => NodeCounters::default().snapshot_owned(id.clone(), ty.clone()),
        })
        .collect()
}

/// Where an inline stage's output goes: a port slot of a later stage, or a sink.
#[derive(Clone, Copy)]
enum Dest {
    Slot(usize),
    Sink(usize),
}

/// One stage of an inline run: its chain, where its input ports are in the shared port
/// slots, and where its output goes.
struct InlineStage {
    chain: Chain,
    first_port: usize,
    ports: usize,
    dests: Vec<Dest>,
    span: tracing::Span,
    started: Instant,
}

/// Appends `batch` to `dest`, moving the vector when `dest` is empty.
fn deliver(dest: &mut Vec<Data>, mut batch: Vec<Data>) {
    if dest.is_empty() {
        *dest = batch;
    } else {
        dest.append(&mut batch);
    }
}

/// Pushes `batch` (arriving on `port`) through `chain` in pieces of at most `max`
/// items, appending the outputs to `emitted`.
fn feed(
    chain: &mut Chain,
    port: usize,
    mut batch: Vec<Data>,
    max: usize,
    emitted: &mut Vec<Data>,
    skipped: &mut Vec<PipelineNodeError>,
    clock: &mut Instant,
) -> Result<(), Box<PipelineNodeError>> {
    // On failure the outputs of the items before the failing one are still emitted.
    if batch.len() <= max {
        let result = chain.push(port, &mut batch, skipped, clock);
        deliver(emitted, batch);
        return result;
    }
    let mut rest = batch.into_iter();
    let mut piece = Vec::with_capacity(max);
    loop {
        piece.extend(rest.by_ref().take(max));
        if piece.is_empty() {
            return Ok(());
        }
        let result = chain.push(port, &mut piece, skipped, clock);
        emitted.append(&mut piece);
        result?;
    }
}

/// Sends `batch` to every destination (cloned for all but the last).
fn route(dests: &[Dest], batch: Vec<Data>, slots: &mut [Vec<Data>], outputs: &mut [Vec<Data>]) {
    let Some((&last, others)) = dests.split_last() else {
        return;
    };
    let mut send = |d: Dest, b: Vec<Data>| match d {
        Dest::Slot(k) => deliver(&mut slots[k], b),
        Dest::Sink(k) => deliver(&mut outputs[k], b),
    };
    for &d in others {
        send(d, batch.clone());
    }
    send(last, batch);
}

/// A finite run on the caller's thread: each stage, in topological order, processes
/// everything its upstream stages produced (port by port, in batches of at most
/// `batch_size`), finishes, and hands its output to its targets (cloned for all but
/// the last). A fan-in stage therefore sees its ports in port order.
fn run_inline(
    plan: Plan,
    inputs: Vec<Data>,
    options: &RunOptions,
) -> Result<RunResult, RunFailure> {
    let start = Instant::now();
    let items_in = inputs.len() as u64;
    let max = options.batch_size.max(1);
    let Plan {
        mut stages,
        roots,
        mut sinks,
        ..
    } = plan;
    let stage_count = stages.len();
    let mut skipped = Vec::new();
    let mut clock = start;

    if stage_count == 1 {
        // A plain chain: no port slots, no routing.
        let mut chain = Chain::new(stages.pop().expect("one stage").nodes);
        let span = stage_span(&tracing::Span::current(), 0, &chain.runners, Pool::Caller);
        let _entered = span.enter();
        chain.set_span(&span);
        chain.set_cancel(&options.cancel);
        let mut out = Vec::new();
        tracing::info!("stage started");
        let result = chain.initialize().and_then(|()| {
            clock = Instant::now();
            feed(
                &mut chain,
                0,
                inputs,
                max,
                &mut out,
                &mut skipped,
                &mut clock,
            )?;
            chain.finish(&mut out, &mut skipped, &mut clock)
        });
        let ending = if result.is_ok() {
            Ending::Finished
        } else {
            Ending::Failed
        };
        stage_finished(&chain.runners, start, ending);
        let cleanup_errors = chain.cleanup().into_iter().map(|e| *e).collect();
        let outputs = vec![SinkOutput {
            sink: sinks.pop().unwrap_or_default(),
            items: out,
        }];
        return inline_result(
            result,
            outputs,
            skipped,
            cleanup_errors,
            Chain::metrics(std::slice::from_ref(&chain)),
            (start, clock, items_in, stage_count),
        );
    }

    // Port slots: stage `s` owns slots `first_port[s]..first_port[s] + ports`.
    let mut run: Vec<InlineStage> = Vec::with_capacity(stage_count);
    let mut total_ports = 0;
    for s in &stages {
        let ports = s.input_ports.max(1);
        run.push(InlineStage {
            chain: Chain::default(),
            first_port: total_ports,
            ports,
            dests: Vec::new(),
            span: tracing::Span::none(),
            started: start,
        });
        total_ports += ports;
    }
    for (si, s) in stages.into_iter().enumerate() {
        let dests = s
            .targets
            .iter()
            .map(|t| match *t {
                Target::Stage { stage, port } => Dest::Slot(run[stage].first_port + port),
                Target::Sink(k) => Dest::Sink(k),
            })
            .collect();
        let r = &mut run[si];
        r.chain = Chain::new(s.nodes);
        r.span = stage_span(
            &tracing::Span::current(),
            si,
            &r.chain.runners,
            Pool::Caller,
        );
        r.chain.set_span(&r.span);
        r.chain.set_cancel(&options.cancel);
        r.dests = dests;
    }
    let mut slots: Vec<Vec<Data>> = std::iter::repeat_with(Vec::new).take(total_ports).collect();
    if let Some((&last, others)) = roots.split_last() {
        for &r in others {
            slots[run[r].first_port] = inputs.clone();
        }
        slots[run[last].first_port] = inputs;
    }
    let mut outputs: Vec<Vec<Data>> = std::iter::repeat_with(Vec::new).take(sinks.len()).collect();

    let result = (|| {
        for stage in &mut run {
            let _entered = stage.span.enter();
            tracing::info!("stage started");
            stage.started = Instant::now();
            stage.chain.initialize()?;
        }
        clock = Instant::now();
        // After a failure the later stages still process what reached them (the
        // outputs of items before the failure), but no node is finished.
        let mut failed = None;
        for stage in &mut run {
            let _entered = stage.span.enter();
            let failed_before = failed.is_some();
            let mut emitted: Vec<Data> = Vec::new();
            for port in 0..stage.ports {
                let batch = std::mem::take(&mut slots[stage.first_port + port]);
                if !batch.is_empty() {
                    let chain = &mut stage.chain;
                    let fed = feed(
                        chain,
                        port,
                        batch,
                        max,
                        &mut emitted,
                        &mut skipped,
                        &mut clock,
                    );
                    if let Err(e) = fed {
                        failed.get_or_insert(e);
                        break;
                    }
                }
            }
            if failed.is_none() {
                if let Err(e) = stage.chain.finish(&mut emitted, &mut skipped, &mut clock) {
                    failed = Some(e);
                }
            }
            let ending = match (failed_before, failed.is_some()) {
                (false, false) => Ending::Finished,
                (false, true) => Ending::Failed,
                (true, _) => Ending::Stopped,
            };
            stage_finished(&stage.chain.runners, stage.started, ending);
            route(&stage.dests, emitted, &mut slots, &mut outputs);
        }
        failed.map_or(Ok(()), Err)
    })();

    let mut cleanup_errors: Vec<PipelineNodeError> = Vec::new();
    let mut chains = Vec::with_capacity(run.len());
    for stage in run {
        let _entered = stage.span.enter();
        let mut chain = stage.chain;
        cleanup_errors.extend(chain.cleanup().into_iter().map(|e| *e));
        chains.push(chain);
    }
    let outputs = sinks
        .into_iter()
        .zip(outputs)
        .map(|(sink, items)| SinkOutput { sink, items })
        .collect();
    inline_result(
        result,
        outputs,
        skipped,
        cleanup_errors,
        Chain::metrics(&chains),
        (start, clock, items_in, stage_count),
    )
}

/// Assembles the result of an inline run. `timing` is (start, end of the last stage,
/// items in, stages).
fn inline_result(
    result: Result<(), Box<PipelineNodeError>>,
    outputs: Vec<SinkOutput>,
    skipped: Vec<PipelineNodeError>,
    cleanup_errors: Vec<PipelineNodeError>,
    nodes: Vec<NodeMetrics>,
    (start, end, items_in, stages): (Instant, Instant, u64, usize),
) -> Result<RunResult, RunFailure> {
    let items_out = outputs.iter().map(|o| o.items.len() as u64).sum();
    let partial = RunResult {
        outputs,
        skipped,
        cleanup_errors,
        metrics: RunMetrics {
            wall_time_us: crate::metrics::micros(end.saturating_duration_since(start)),
            items_in,
            items_out,
            stages,
            peak_rss_bytes: None,
            nodes,
            queues: Vec::new(),
        },
    };
    match result {
        Ok(()) => Ok(partial),
        Err(e) => Err(RunFailure {
            error: RunError::Node(e),
            partial: Box::new(partial),
        }),
    }
}

fn run_threaded(
    plan: Plan,
    inputs: Vec<Data>,
    span: &tracing::Span,
    options: &RunOptions,
) -> Result<RunResult, RunFailure> {
    let sinks = plan.sinks.clone();
    let names = plan.node_names();
    let items_in = inputs.len() as u64;
    let engine = Engine::start(plan, options, None, span).map_err(|error| RunFailure {
        error,
        partial: Box::default(),
    })?;
    let max = options.batch_size.max(1);
    // Feed on this thread; the sink queue is unbounded, so stages never wait on us.
    let mut rest = inputs.into_iter();
    'feed: loop {
        let batch: Vec<Data> = rest.by_ref().take(max).collect();
        if batch.is_empty() || engine.shared.failed() {
            break;
        }
        if let Some((last, others)) = engine.roots.split_last() {
            for r in others {
                if !r.send(0, batch.clone(), max) {
                    break 'feed;
                }
            }
            if !last.send(0, batch, max) {
                break 'feed;
            }
        }
    }
    let mut collector = session::Collector::new(engine, sinks, names, options.clone());
    collector.set_items_in(items_in);
    collector.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{self, Format};

    /// src → (half: divide by 2, skip failures; triple) → zip, plus src → big (filter).
    const GRAPH: &str = r#"
version: v1
metadata: { name: inline-graph }
nodes:
  - { id: src, node_type: PassThrough }
  - { id: inv, node_type: Calculator, params: { operation: divide, operand: 0 }, on_error: skip }
  - { id: half, node_type: Calculator, params: { operation: multiply, operand: 2 } }
  - { id: zip, node_type: Zip, params: { strict: false } }
  - { id: big, node_type: Filter, params: { gte: 5 } }
connections:
  - { from: src, to: inv }
  - { from: src, to: half }
  - { from: inv, to: zip }
  - { from: half, to: zip }
  - { from: src, to: big }
"#;

    fn run_with(options: &RunOptions, n: i64) -> RunResult {
        let registry = Registry::builtin();
        let pipeline = manifest::load_str(GRAPH, Format::Yaml, &registry).unwrap();
        let inputs = (0..n).map(Data::Int).collect();
        run_pipeline(&pipeline, &registry, inputs, options).unwrap()
    }

    #[test]
    fn inline_graph_matches_threads() {
        let inline = RunOptions {
            batch_size: 7,
            ..RunOptions::default()
        };
        let threads = RunOptions {
            force_threads: true,
            ..inline.clone()
        };
        let a = run_with(&inline, 40);
        let b = run_with(&threads, 40);
        assert_eq!(a.outputs, b.outputs);
        assert_eq!(a.metrics.stages, b.metrics.stages);
        assert!(a.metrics.queues.is_empty());
        assert_eq!(b.metrics.queues.len(), b.metrics.stages);
        // Every item fails in `inv` and is skipped, so `zip` gets nothing from it.
        assert_eq!(a.skipped.len(), 40);
        assert_eq!(a.sink("zip").unwrap().len(), 0);
        let big: Vec<i64> = a
            .sink("big")
            .unwrap()
            .iter()
            .filter_map(Data::as_i64)
            .collect();
        assert_eq!(big, (5..40).collect::<Vec<_>>());
        let names: Vec<&str> = a.metrics.nodes.iter().map(|m| &*m.node_id).collect();
        assert_eq!(names, ["src", "inv", "half", "zip", "big"]);
        for (x, y) in a.metrics.nodes.iter().zip(&b.metrics.nodes) {
            assert_eq!(
                (x.items_in, x.items_out, x.errors),
                (y.items_in, y.items_out, y.errors),
                "{}",
                x.node_id
            );
        }
        assert_eq!(a.metrics.node("inv").unwrap().errors, 40);
        assert_eq!((a.metrics.items_in, a.metrics.items_out), (40, 35));
    }
}
