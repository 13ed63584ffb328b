//! What runs log: a span per run, per stage and per node, and the events at their
//! start and end.
//!
//! Levels: `info` once per run and per stage (started, finished with item counts,
//! duration and outcome); `debug` for each decision (fusion, pools, node lifecycle,
//! retries, skips). Nothing is logged per item at `info`. A span that is disabled costs
//! a check when entered, so the hot path is unchanged when logs are off.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tracing::Span;

use crate::node::Execution;
use crate::plan::PlannedNode;

/// Runs started in this process: the next run's `run_id`.
static NEXT_RUN: AtomicU64 = AtomicU64::new(1);

/// Milliseconds with microsecond precision, for `duration_ms` fields.
pub(crate) fn millis(d: Duration) -> f64 {
    d.as_micros() as f64 / 1000.0
}

/// `a+b+c`: the node ids of a fused chain.
pub(crate) struct NodeList<'a>(pub(crate) &'a [PlannedNode]);

impl fmt::Display for NodeList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, n) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("+")?;
            }
            f.write_str(&n.ctx.node_id)?;
        }
        Ok(())
    }
}

/// The span of one run of `pipeline` (a finite run, a streaming session, a stepped
/// chain), numbered by `run_id` within the process; its stages' spans are its children
/// on whatever thread they run.
pub(crate) fn run_span(pipeline: &str) -> Span {
    tracing::info_span!(
        "run",
        pipeline = %pipeline,
        run_id = NEXT_RUN.fetch_add(1, Ordering::Relaxed)
    )
}

/// Where a stage's steps run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Pool {
    /// On the thread that started the run.
    Caller,
    /// On the pool of inline stages.
    Compute,
    /// On the pool of stages headed by a dedicated node.
    Dedicated,
}

impl Pool {
    fn name(self) -> &'static str {
        match self {
            Pool::Caller => "caller",
            Pool::Compute => "compute",
            Pool::Dedicated => "dedicated",
        }
    }

    /// The pool a stage headed by a node of `execution` runs on in the engine.
    pub(crate) fn of(execution: Execution) -> Pool {
        match execution {
            Execution::Inline => Pool::Compute,
            Execution::Dedicated => Pool::Dedicated,
        }
    }
}

/// The span of stage `index` of a run, with its fused nodes (`a+b`) and pool.
pub(crate) fn stage_span(run: &Span, index: usize, nodes: &[PlannedNode], pool: Pool) -> Span {
    tracing::info_span!(
        parent: run,
        "stage",
        stage = index,
        nodes = %NodeList(nodes),
        pool = pool.name()
    )
}

/// The span of one node of a stage.
pub(crate) fn node_span(stage: &Span, node: &PlannedNode) -> Span {
    tracing::info_span!(
        parent: stage,
        "node",
        node = %node.ctx.node_id,
        node_type = %node.ctx.node_type
    )
}

/// How a stage ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ending {
    /// End of stream: every node was finished.
    Finished,
    /// One of its nodes failed for good.
    Failed,
    /// It stopped early: the run failed elsewhere or was cancelled, or a target ended.
    Stopped,
    /// Its task panicked.
    Panicked,
}

impl Ending {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Ending::Finished => "ok",
            Ending::Failed => "failed",
            Ending::Stopped => "stopped",
            Ending::Panicked => "panicked",
        }
    }
}

/// Logs the end of a stage (inside its span): items in at its head, out of its tail,
/// failed items and retries of its nodes, time since it started, outcome.
pub(crate) fn stage_finished(nodes: &[PlannedNode], started: Instant, ending: Ending) {
    if !tracing::enabled!(tracing::Level::INFO) {
        return;
    }
    let items_in = nodes.first().map_or(0, |n| n.state.counters.items_in);
    let items_out = nodes.last().map_or(0, |n| n.state.counters.items_out);
    let errors: u64 = nodes.iter().map(|n| n.state.counters.errors).sum();
    let retries: u64 = nodes.iter().map(|n| n.state.counters.retries).sum();
    tracing::info!(
        items_in,
        items_out,
        errors,
        retries,
        duration_ms = millis(started.elapsed()),
        outcome = ending.name(),
        "stage finished"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_milliseconds_to_the_microsecond() {
        assert_eq!(millis(Duration::from_micros(1_234_567)), 1234.567);
        assert_eq!(millis(Duration::from_nanos(999)), 0.0);
    }

    #[test]
    fn node_lists_join_ids_with_plus() {
        let registry = crate::Registry::builtin();
        let p = crate::manifest::load_str(
            "version: v1\nmetadata: { name: t }\nnodes:\n  - { id: a, node_type: PassThrough }\n  - { id: b, node_type: PassThrough }\nconnections: [{ from: a, to: b }]\n",
            crate::manifest::Format::Yaml,
            &registry,
        )
        .unwrap();
        let plan = crate::plan::Plan::build(&p, &registry).unwrap();
        assert_eq!(NodeList(&plan.stages[0].nodes).to_string(), "a+b");
        assert_eq!(NodeList(&[]).to_string(), "");
    }
}
