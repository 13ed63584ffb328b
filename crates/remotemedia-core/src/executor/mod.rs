//! Executing a [`Plan`]: a finite [`run`] or a streaming [`Session`].
//!
//! A plan of one stage (a plain chain) runs inline on the caller's thread: no thread,
//! no queue. Anything else runs one thread per stage (see `engine`).

mod chain;
mod engine;
mod session;
pub(crate) mod timeout;

use std::time::Instant;

use crate::data::Data;
use crate::error::{PipelineNodeError, RunError};
use crate::manifest::Pipeline;
use crate::metrics::{NodeCounters, RunMetrics};
use crate::plan::Plan;
use crate::registry::Registry;

use chain::Chain;
use engine::Engine;
pub use session::{start_session, Session, SessionReceiver, SessionSender, SinkItem};

/// Tuning knobs of the executor.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Largest batch carried on a queue between stages (items).
    pub batch_size: usize,
    /// Capacity of each queue between stages (batches).
    pub channel_capacity: usize,
    /// Run even a single chain on threads (normally it runs inline).
    pub force_threads: bool,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            batch_size: 1024,
            channel_capacity: 8,
            force_threads: false,
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
pub fn run(plan: Plan, inputs: Vec<Data>, options: &RunOptions) -> Result<RunResult, RunFailure> {
    if plan.stages.len() == 1 && !options.force_threads {
        run_inline(plan, inputs, options)
    } else {
        run_threaded(plan, inputs, options)
    }
}

fn node_metrics(
    names: &[(String, String)],
    counters: Vec<(usize, NodeCounters)>,
) -> Vec<crate::metrics::NodeMetrics> {
    let mut by_index: Vec<Option<NodeCounters>> = (0..names.len()).map(|_| None).collect();
    for (i, c) in counters {
        by_index[i] = Some(c);
    }
    by_index
        .into_iter()
        .enumerate()
        .map(|(i, c)| c.unwrap_or_default().snapshot(&names[i].0, &names[i].1))
        .collect()
}

fn run_inline(
    mut plan: Plan,
    mut inputs: Vec<Data>,
    options: &RunOptions,
) -> Result<RunResult, RunFailure> {
    let start = Instant::now();
    let stage = plan.stages.pop().expect("one stage");
    let mut chain = Chain::new(stage.nodes);
    let mut skipped = Vec::new();
    let mut out: Vec<Data> = Vec::new();
    let items_in = inputs.len() as u64;
    let max = options.batch_size.max(1);

    let result = (|| {
        chain.initialize()?;
        if inputs.len() <= max {
            chain.push(0, &mut inputs, &mut skipped)?;
            out.append(&mut inputs);
        } else {
            let mut rest = inputs.into_iter();
            let mut batch = Vec::with_capacity(max);
            loop {
                batch.extend(rest.by_ref().take(max));
                if batch.is_empty() {
                    break;
                }
                chain.push(0, &mut batch, &mut skipped)?;
                out.append(&mut batch);
            }
        }
        let mut flushed = chain.finish(&mut skipped)?;
        out.append(&mut flushed);
        Ok(())
    })();
    let cleanup_errors: Vec<PipelineNodeError> = chain.cleanup().into_iter().map(|e| *e).collect();
    let counters = chain
        .runners
        .into_iter()
        .map(|r| (r.planned.index, r.counters))
        .collect();
    let items_out = out.len() as u64;
    let partial = RunResult {
        outputs: vec![SinkOutput {
            sink: plan.sinks.pop().unwrap_or_default(),
            items: out,
        }],
        skipped,
        cleanup_errors,
        metrics: RunMetrics {
            wall_time_us: start.elapsed().as_secs_f64() * 1e6,
            items_in,
            items_out,
            stages: 1,
            peak_rss_bytes: None,
            nodes: node_metrics(&plan.node_names, counters),
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
    options: &RunOptions,
) -> Result<RunResult, RunFailure> {
    let sinks = plan.sinks.clone();
    let names = plan.node_names.clone();
    let items_in = inputs.len() as u64;
    let engine = Engine::start(plan, options, None).map_err(|error| RunFailure {
        error,
        partial: Box::default(),
    })?;
    let max = options.batch_size.max(1);
    // Feed on this thread; the sink queue is unbounded, so stages never wait on us.
    let mut rest = inputs.into_iter();
    'feed: loop {
        let batch: Vec<Data> = rest.by_ref().take(max).collect();
        if batch.is_empty() {
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
