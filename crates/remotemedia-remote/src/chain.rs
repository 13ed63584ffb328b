//! Stepping a chain of nodes by hand: a batch in, exactly that batch's outputs out.
//!
//! The executor's fused stages are driven by queues, so an output cannot be traced
//! back to the input that produced it. A remote stage needs that — it acknowledges
//! inputs by sequence number so that a failover loses and repeats nothing — so
//! executors run placed sub-graphs (chains) with [`ChainRunner`]: same per-node
//! semantics (retry with backoff, `on_error: skip`, panics caught, metrics), all on the
//! caller's thread, one batch at a time.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Instant;

use remotemedia_core::manifest::OnError;
use remotemedia_core::metrics::{NodeCounters, RunMetrics};
use remotemedia_core::plan::{Plan, PlannedNode, Target};
use remotemedia_core::{Data, ErrorKind, ItemError, NodeError, Phase, PipelineNodeError};

/// Length of input previews in error messages.
const PREVIEW_CHARS: usize = 120;

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

struct Runner {
    planned: PlannedNode,
    counters: NodeCounters,
    initialized: bool,
    cleaned_up: bool,
}

/// A chain of nodes stepped batch by batch (see the module docs).
pub struct ChainRunner {
    runners: Vec<Runner>,
    scratch: Vec<Data>,
    skipped: Vec<PipelineNodeError>,
    items_in: u64,
    items_out: u64,
    start: Instant,
    closed: bool,
}

impl std::fmt::Debug for ChainRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChainRunner")
            .field("nodes", &self.node_ids())
            .finish()
    }
}

fn panic_error(payload: &(dyn std::any::Any + Send)) -> NodeError {
    let text = if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_string()
    };
    NodeError::new(ErrorKind::Panic, format!("panicked: {text}"))
}

impl Runner {
    fn error(
        &self,
        phase: Phase,
        e: NodeError,
        input: Option<&Data>,
        attempts: u32,
    ) -> Box<PipelineNodeError> {
        Box::new(PipelineNodeError {
            node_id: self.planned.ctx.node_id.clone(),
            node_type: self.planned.ctx.node_type.clone(),
            phase,
            kind: e.kind,
            message: e.message,
            input_preview: input.map(|d| d.preview(PREVIEW_CHARS)),
            traceback: e.traceback,
            attempts,
        })
    }

    fn initialize(&mut self) -> Result<(), Box<PipelineNodeError>> {
        let ctx = &self.planned.ctx;
        let node = &mut self.planned.node;
        let r = catch_unwind(AssertUnwindSafe(|| node.initialize(ctx)));
        self.initialized = true;
        match r {
            Ok(Ok(())) => Ok(()),
            Ok(Err(mut e)) => {
                if e.kind == ErrorKind::Other {
                    e.kind = ErrorKind::Initialize;
                }
                Err(self.error(Phase::Initialize, e, None, 1))
            }
            Err(p) => Err(self.error(Phase::Initialize, panic_error(&*p), None, 1)),
        }
    }

    fn process(
        &mut self,
        port: usize,
        input: &mut Vec<Data>,
        out: &mut Vec<Data>,
        skipped: &mut Vec<PipelineNodeError>,
    ) -> Result<(), Box<PipelineNodeError>> {
        let n_in = input.len() as u64;
        let out_before = out.len();
        let start = Instant::now();
        self.counters.items_in += n_in;
        let result = loop {
            let node = &mut self.planned.node;
            match catch_unwind(AssertUnwindSafe(|| node.process_vec(port, input, out))) {
                Ok(Ok(())) => break Ok(()),
                Ok(Err(ItemError { item, error })) => {
                    if let Err(fatal) = self.retry_or_skip(port, item, error, out, skipped) {
                        break Err(fatal);
                    }
                    if input.is_empty() {
                        break Ok(());
                    }
                }
                Err(p) => {
                    self.counters.errors += 1;
                    break Err(self.error(Phase::Process, panic_error(&*p), None, 1));
                }
            }
        };
        input.clear();
        self.counters.record_call(n_in, start.elapsed());
        self.counters.items_out += (out.len() - out_before) as u64;
        result
    }

    fn retry_or_skip(
        &mut self,
        port: usize,
        item: Data,
        mut error: NodeError,
        out: &mut Vec<Data>,
        skipped: &mut Vec<PipelineNodeError>,
    ) -> Result<(), Box<PipelineNodeError>> {
        let mut attempts = 1;
        if let Some(policy) = self.planned.retry.clone() {
            while attempts <= policy.max_retries && error.kind != ErrorKind::Panic {
                std::thread::sleep(policy.backoff(attempts));
                attempts += 1;
                self.counters.retries += 1;
                let node = &mut self.planned.node;
                let again = item.clone();
                match catch_unwind(AssertUnwindSafe(|| node.process_from(port, again, out))) {
                    Ok(Ok(())) => return Ok(()),
                    Ok(Err(e)) => error = e,
                    Err(p) => error = panic_error(&*p),
                }
            }
        }
        self.counters.errors += 1;
        let fatal = self.error(Phase::Process, error, Some(&item), attempts);
        if self.planned.on_error == OnError::Skip && fatal.kind != ErrorKind::Panic {
            skipped.push(*fatal);
            Ok(())
        } else {
            Err(fatal)
        }
    }

    fn finish(&mut self, out: &mut Vec<Data>) -> Result<(), Box<PipelineNodeError>> {
        let before = out.len();
        let start = Instant::now();
        let node = &mut self.planned.node;
        let r = catch_unwind(AssertUnwindSafe(|| node.finish(out)));
        self.counters.busy += start.elapsed();
        self.counters.items_out += (out.len() - before) as u64;
        match r {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(self.error(Phase::Finish, e, None, 1)),
            Err(p) => Err(self.error(Phase::Finish, panic_error(&*p), None, 1)),
        }
    }

    fn cleanup(&mut self) -> Option<PipelineNodeError> {
        if !self.initialized || self.cleaned_up {
            return None;
        }
        self.cleaned_up = true;
        let node = &mut self.planned.node;
        match catch_unwind(AssertUnwindSafe(|| node.cleanup())) {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(*self.error(Phase::Cleanup, e, None, 1)),
            Err(p) => Some(*self.error(Phase::Cleanup, panic_error(&*p), None, 1)),
        }
    }
}

impl ChainRunner {
    /// Takes the nodes of `plan`, which must be a single chain: one root, each node
    /// feeding only the next, one sink. Every node runs on the caller's thread,
    /// whatever its [`remotemedia_core::Execution`].
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
                    stage.nodes.last().map_or("?", |n| n.ctx.node_id.as_str())
                )));
            }
        }
        let runners = plan
            .stages
            .into_iter()
            .flat_map(|s| s.nodes)
            .map(|planned| Runner {
                planned,
                counters: NodeCounters::default(),
                initialized: false,
                cleaned_up: false,
            })
            .collect();
        Ok(Self {
            runners,
            scratch: Vec::new(),
            skipped: Vec::new(),
            items_in: 0,
            items_out: 0,
            start: Instant::now(),
            closed: false,
        })
    }

    /// Node ids in chain order.
    pub fn node_ids(&self) -> Vec<String> {
        self.runners
            .iter()
            .map(|r| r.planned.ctx.node_id.clone())
            .collect()
    }

    /// Sets the upstream ids the head node sees in its context (its input ports), for
    /// a chain cut out of a larger graph. Call before [`ChainRunner::initialize`].
    pub fn set_head_inputs(&mut self, inputs: Vec<String>) {
        if let Some(head) = self.runners.first_mut() {
            head.planned.ctx.inputs = inputs;
        }
    }

    /// Initializes every node in order; stops at the first failure.
    pub fn initialize(&mut self) -> Result<(), Box<PipelineNodeError>> {
        self.start = Instant::now();
        for r in &mut self.runners {
            r.initialize()?;
        }
        Ok(())
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
        self.push_from(0, port, batch)?;
        self.items_out += batch.len() as u64;
        Ok(())
    }

    fn push_from(
        &mut self,
        from: usize,
        port: usize,
        batch: &mut Vec<Data>,
    ) -> Result<(), Box<PipelineNodeError>> {
        let mut port = port;
        for runner in &mut self.runners[from..] {
            if batch.is_empty() {
                break;
            }
            self.scratch.clear();
            runner.process(port, batch, &mut self.scratch, &mut self.skipped)?;
            std::mem::swap(batch, &mut self.scratch);
            port = 0;
        }
        Ok(())
    }

    /// End of stream: finishes every node in order, pushing what each flushes through
    /// the rest of the chain, and appends the chain's final outputs to `out`.
    pub fn finish(&mut self, out: &mut Vec<Data>) -> Result<(), Box<PipelineNodeError>> {
        for i in 0..self.runners.len() {
            let mut flushed = Vec::new();
            self.runners[i].finish(&mut flushed)?;
            self.push_from(i + 1, 0, &mut flushed)?;
            self.items_out += flushed.len() as u64;
            out.append(&mut flushed);
        }
        Ok(())
    }

    /// Items skipped since the last call.
    pub fn take_skipped(&mut self) -> Vec<PipelineNodeError> {
        std::mem::take(&mut self.skipped)
    }

    /// Cleans up every initialized node and reports metrics.
    pub fn close(mut self) -> ChainReport {
        self.closed = true;
        let cleanup_errors = self
            .runners
            .iter_mut()
            .filter_map(Runner::cleanup)
            .collect();
        let mut runners = std::mem::take(&mut self.runners);
        runners.sort_by_key(|r| r.planned.index);
        ChainReport {
            cleanup_errors,
            metrics: RunMetrics {
                wall_time_us: self.start.elapsed().as_secs_f64() * 1e6,
                items_in: self.items_in,
                items_out: self.items_out,
                stages: 1,
                peak_rss_bytes: None,
                nodes: runners
                    .iter()
                    .map(|r| {
                        r.counters
                            .snapshot(&r.planned.ctx.node_id, &r.planned.ctx.node_type)
                    })
                    .collect(),
                queues: Vec::new(),
            },
        }
    }
}

impl Drop for ChainRunner {
    fn drop(&mut self) {
        if !self.closed {
            for r in &mut self.runners {
                let _ = r.cleanup();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use remotemedia_core::manifest::{load_str, Format};
    use remotemedia_core::Registry;

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
