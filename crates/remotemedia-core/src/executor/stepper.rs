//! Stepping a chain of nodes by hand: a batch in, exactly that batch's outputs out.
//!
//! The executor's fused stages are driven by queues, so an output cannot be traced back
//! to the input that produced it. A caller that needs that — a remote executor
//! acknowledges inputs by sequence number so that a failover loses and repeats nothing
//! — drives a single chain with [`ChainRunner`]: the same per-node semantics as every
//! stage (it is the same [`Chain`]: retry with backoff, `on_error: skip`, panics
//! caught, metrics), all on the caller's thread, one batch at a time.

use std::time::Instant;

use crate::data::Data;
use crate::error::PipelineNodeError;
use crate::metrics::RunMetrics;
use crate::plan::{Plan, Target};

use super::chain::Chain;
use super::trace::{self, millis, stage_finished, Ending, Pool};

/// The plan given to [`ChainRunner::new`] is not a single chain.
#[derive(Debug, thiserror::Error)]
#[error("the sub-graph is not a chain: {0}")]
pub struct NotAChain(pub String);

/// What a closed [`ChainRunner`] reports.
#[derive(Debug, Default)]
pub struct ChainReport {
    /// Errors raised by `cleanup`.
    pub cleanup_errors: Vec<PipelineNodeError>,
    /// Metrics of the chain's nodes.
    pub metrics: RunMetrics,
}

/// A chain of nodes stepped batch by batch (see the module docs).
pub struct ChainRunner {
    chain: Chain,
    skipped: Vec<PipelineNodeError>,
    items_in: u64,
    items_out: u64,
    start: Instant,
    closed: bool,
    /// A node failed for good (the outcome its logs report).
    failed: bool,
    /// The run's span and its one stage's.
    run_span: tracing::Span,
    stage_span: tracing::Span,
}

impl std::fmt::Debug for ChainRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChainRunner")
            .field("nodes", &self.node_ids())
            .finish()
    }
}

impl ChainRunner {
    /// Takes the nodes of `plan`, which must be a single chain: one root, each node
    /// feeding only the next, one sink. Every node runs on the caller's thread,
    /// whatever its [`crate::Execution`].
    pub fn new(plan: Plan) -> Result<Self, NotAChain> {
        let Some(last) = plan.stages.len().checked_sub(1) else {
            return Err(NotAChain("it has no nodes".into()));
        };
        if plan.roots != [0] || plan.sinks.len() != 1 {
            return Err(NotAChain(format!(
                "expected one root and one sink, found {} and {}",
                plan.roots.len(),
                plan.sinks.len()
            )));
        }
        for (i, stage) in plan.stages.iter().enumerate() {
            let expected = if i == last {
                Target::Sink(0)
            } else {
                Target::Stage {
                    stage: i + 1,
                    port: 0,
                }
            };
            if stage.targets != [expected] || (i > 0 && stage.input_ports != 1) {
                return Err(NotAChain(format!(
                    "node `{}` does not feed exactly the next node",
                    stage.nodes.last().map_or("?", |n| &*n.ctx.node_id)
                )));
            }
        }
        let run_span = trace::run_span(&plan.pipeline);
        let nodes = plan.stages.into_iter().flat_map(|s| s.nodes).collect();
        // Made inside the run's span, so that filters on its fields see them.
        let (chain, stage_span) = run_span.in_scope(|| {
            let mut chain = Chain::new(nodes);
            let stage_span = trace::stage_span(&run_span, 0, &chain.runners, Pool::Caller);
            chain.set_span(&stage_span);
            (chain, stage_span)
        });
        Ok(Self {
            chain,
            skipped: Vec::new(),
            items_in: 0,
            items_out: 0,
            start: Instant::now(),
            closed: false,
            failed: false,
            run_span,
            stage_span,
        })
    }

    /// Node ids in chain order.
    pub fn node_ids(&self) -> Vec<String> {
        self.chain
            .runners
            .iter()
            .map(|n| n.ctx.node_id.to_string())
            .collect()
    }

    /// Sets the upstream ids the head node sees in its context (its input ports), for
    /// a chain cut out of a larger graph. Call before [`ChainRunner::initialize`].
    pub fn set_head_inputs(&mut self, inputs: Vec<String>) {
        if let Some(head) = self.chain.runners.first_mut() {
            head.ctx.inputs = inputs.into_iter().map(std::sync::Arc::from).collect();
        }
    }

    /// Makes every node watch `cancel`: once cancelled, each later call fails with
    /// kind `cancelled` and back-offs end at once.
    pub fn set_cancel(&mut self, cancel: &super::CancelToken) {
        self.chain.set_cancel(cancel);
    }

    /// Initializes every node in order; stops at the first failure.
    pub fn initialize(&mut self) -> Result<(), Box<PipelineNodeError>> {
        self.start = Instant::now();
        self.run_span.in_scope(|| {
            tracing::info!(
                mode = "stepped",
                stages = 1,
                nodes = self.chain.runners.len(),
                "run started"
            );
        });
        let _run = self.run_span.enter();
        let _stage = self.stage_span.enter();
        tracing::info!("stage started");
        let r = self.chain.initialize();
        self.failed |= r.is_err();
        r
    }

    /// Runs `batch`, arriving on input `port` of the head, through the chain; on
    /// success `batch` holds the chain's outputs for it. Items skipped on the way
    /// (`on_error: skip`) are kept for [`ChainRunner::take_skipped`].
    pub fn push(
        &mut self,
        port: usize,
        batch: &mut Vec<Data>,
    ) -> Result<(), Box<PipelineNodeError>> {
        self.items_in += batch.len() as u64;
        let _run = self.run_span.enter();
        let _stage = self.stage_span.enter();
        if let Err(e) = self
            .chain
            .push(port, batch, &mut self.skipped, &mut Instant::now())
        {
            self.failed = true;
            return Err(e);
        }
        self.items_out += batch.len() as u64;
        Ok(())
    }

    /// End of stream: finishes every node in order, pushing what each flushes through
    /// the rest of the chain, and appends the chain's final outputs to `out`.
    pub fn finish(&mut self, out: &mut Vec<Data>) -> Result<(), Box<PipelineNodeError>> {
        let before = out.len();
        let _run = self.run_span.enter();
        let _stage = self.stage_span.enter();
        let result = self
            .chain
            .finish(out, &mut self.skipped, &mut Instant::now());
        self.failed |= result.is_err();
        self.items_out += (out.len() - before) as u64;
        result
    }

    /// Items skipped since the last call.
    pub fn take_skipped(&mut self) -> Vec<PipelineNodeError> {
        std::mem::take(&mut self.skipped)
    }

    /// Cleans up every initialized node and reports metrics.
    pub fn close(mut self) -> ChainReport {
        self.closed = true;
        let ending = if self.failed {
            Ending::Failed
        } else {
            Ending::Finished
        };
        self.log_end(ending);
        let cleanup_errors: Vec<PipelineNodeError> = {
            let _run = self.run_span.enter();
            let _stage = self.stage_span.enter();
            self.chain.cleanup().into_iter().map(|e| *e).collect()
        };
        let chain = std::mem::take(&mut self.chain);
        ChainReport {
            cleanup_errors,
            metrics: RunMetrics {
                wall_time_us: crate::metrics::micros(self.start.elapsed()),
                items_in: self.items_in,
                items_out: self.items_out,
                stages: 1,
                peak_rss_bytes: None,
                nodes: Chain::metrics(std::slice::from_ref(&chain)),
                queues: Vec::new(),
            },
        }
    }
}

impl ChainRunner {
    /// Logs the end of the stage and of the run.
    fn log_end(&self, ending: Ending) {
        let run = self.run_span.enter();
        self.stage_span
            .in_scope(|| stage_finished(&self.chain.runners, self.start, ending));
        drop(run);
        self.run_span.in_scope(|| {
            tracing::info!(
                items_in = self.items_in,
                items_out = self.items_out,
                duration_ms = millis(self.start.elapsed()),
                outcome = ending.name(),
                "run finished"
            );
        });
    }
}

impl Drop for ChainRunner {
    fn drop(&mut self) {
        if !self.closed {
            // Not closed: a node failed, or whoever stepped it stopped early.
            let ending = if self.failed {
                Ending::Failed
            } else {
                Ending::Stopped
            };
            self.log_end(ending);
            let _run = self.run_span.enter();
            let _stage = self.stage_span.enter();
            let _ = self.chain.cleanup();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{load_str, Format};
    use crate::Registry;

    fn runner(yaml: &str) -> Result<ChainRunner, NotAChain> {
        let registry = Registry::builtin();
        let p = load_str(yaml, Format::Yaml, &registry).unwrap();
        ChainRunner::new(Plan::build(&p, &registry).unwrap())
    }

    #[test]
    fn pushes_batches_and_finishes() {
        let mut r = runner(
            r#"
version: v1
metadata: { name: t }
nodes:
  - { id: add, node_type: Calculator, params: { operation: add, operand: 1 } }
  - { id: echo, node_type: Echo, timeout_ms: 1000 }
connections: [{ from: add, to: echo }]
"#,
        )
        .unwrap();
        r.initialize().unwrap();
        let mut batch = vec![Data::Int(1), Data::Int(2)];
        r.push(0, &mut batch).unwrap();
        assert_eq!(batch.len(), 2);
        assert_eq!(batch[1].as_map().unwrap()["count"], Data::Int(2));
        assert_eq!(batch[1].as_map().unwrap()["data"], Data::Int(3));
        let mut out = Vec::new();
        r.finish(&mut out).unwrap();
        let report = r.close();
        assert_eq!(report.metrics.items_in, 2);
        assert_eq!(report.metrics.nodes.len(), 2);
    }

    #[test]
    fn skip_and_fail_follow_the_node_policy() {
        let mut r = runner(
            r#"
version: v1
metadata: { name: t }
nodes:
  - { id: div, node_type: Calculator, params: { operation: divide, operand: 0 }, on_error: skip }
"#,
        )
        .unwrap();
        r.initialize().unwrap();
        let mut batch = vec![Data::Int(1), Data::Int(2)];
        r.push(0, &mut batch).unwrap();
        assert!(batch.is_empty());
        assert_eq!(r.take_skipped().len(), 2);
    }

    #[test]
    fn fan_out_is_not_a_chain() {
        let err = runner(
            r#"
version: v1
metadata: { name: t }
nodes:
  - { id: a, node_type: PassThrough }
  - { id: b, node_type: PassThrough }
  - { id: c, node_type: PassThrough }
connections: [{ from: a, to: b }, { from: a, to: c }]
"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("one root and one sink"), "{err}");
    }
}
