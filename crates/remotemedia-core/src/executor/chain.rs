//! Running a fused chain: lifecycle calls, retries, panics and metrics per node.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Instant;

use crate::data::Data;
use crate::error::{ErrorKind, NodeError, Phase, PipelineNodeError};
use crate::manifest::OnError;
use crate::metrics::NodeCounters;
use crate::node::ItemError;
use crate::plan::PlannedNode;

/// Length of input previews in error messages.
const PREVIEW_CHARS: usize = 120;

/// A planned node plus its run state.
pub(crate) struct NodeRunner {
    pub(crate) planned: PlannedNode,
    pub(crate) counters: NodeCounters,
    initialized: bool,
    cleaned_up: bool,
}

/// The outcome of a failed step that stops the run.
pub(crate) type Fatal = Box<PipelineNodeError>;

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_string()
    }
}

fn panic_error(payload: &(dyn std::any::Any + Send)) -> NodeError {
    NodeError::new(
        ErrorKind::Panic,
        format!("panicked: {}", panic_message(payload)),
    )
}

impl NodeRunner {
    pub(crate) fn new(planned: PlannedNode) -> Self {
        Self {
            planned,
            counters: NodeCounters::default(),
            initialized: false,
            cleaned_up: false,
        }
    }

    fn error(&self, phase: Phase, e: NodeError, input: Option<&Data>, attempts: u32) -> Fatal {
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

    pub(crate) fn initialize(&mut self) -> Result<(), Fatal> {
        let ctx = &self.planned.ctx;
        let node = &mut self.planned.node;
        let r = catch_unwind(AssertUnwindSafe(|| node.initialize(ctx)));
        // Cleanup is owed even when initialize fails half-way.
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

    /// Runs cleanup once if the node was initialized; returns its error, if any.
    pub(crate) fn cleanup(&mut self) -> Option<Fatal> {
        if !self.initialized || self.cleaned_up {
            return None;
        }
        self.cleaned_up = true;
        let node = &mut self.planned.node;
        match catch_unwind(AssertUnwindSafe(|| node.cleanup())) {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(self.error(Phase::Cleanup, e, None, 1)),
            Err(p) => Some(self.error(Phase::Cleanup, panic_error(&*p), None, 1)),
        }
    }

    /// Processes every item of `input` (drained) into `out`. Failed items are retried per
    /// the node's policy; with `on_error: skip` a failure is pushed to `skipped` and the
    /// batch goes on, otherwise it is returned.
    pub(crate) fn process(
        &mut self,
        port: usize,
        input: &mut Vec<Data>,
        out: &mut Vec<Data>,
        skipped: &mut Vec<PipelineNodeError>,
    ) -> Result<(), Fatal> {
        let n_in = input.len() as u64;
        let out_before = out.len();
        self.counters.items_in += n_in;
        let start = Instant::now();
        let mut drain = input.drain(..);
        let result = loop {
            let node = &mut self.planned.node;
            let r = catch_unwind(AssertUnwindSafe(|| {
                node.process_batch(port, &mut drain, out)
            }));
            match r {
                Ok(Ok(())) => break Ok(()),
                Ok(Err(ItemError { item, error })) => {
                    if let Err(fatal) = self.retry_or_skip(port, item, error, out, skipped) {
                        break Err(fatal);
                    }
                }
                Err(p) => {
                    self.counters.errors += 1;
                    break Err(self.error(Phase::Process, panic_error(&*p), None, 1));
                }
            }
        };
        drop(drain);
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
    ) -> Result<(), Fatal> {
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
            tracing::warn!(node = %fatal.node_id, "skipping failed item: {fatal}");
            skipped.push(*fatal);
            Ok(())
        } else {
            Err(fatal)
        }
    }

    pub(crate) fn finish(&mut self, out: &mut Vec<Data>) -> Result<(), Fatal> {
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
}

/// A fused chain of node runners with two scratch buffers reused across batches.
pub(crate) struct Chain {
    pub(crate) runners: Vec<NodeRunner>,
    scratch: Vec<Data>,
}

impl Chain {
    pub(crate) fn new(nodes: Vec<PlannedNode>) -> Self {
        Self {
            runners: nodes.into_iter().map(NodeRunner::new).collect(),
            scratch: Vec::new(),
        }
    }

    /// Initializes every node in order; stops at the first failure.
    pub(crate) fn initialize(&mut self) -> Result<(), Fatal> {
        for r in &mut self.runners {
            r.initialize()?;
        }
        Ok(())
    }

    /// Pushes `batch` (arriving on `port` of the head) through nodes `from..`; the
    /// chain's output replaces the contents of `batch`.
    pub(crate) fn push_from(
        &mut self,
        from: usize,
        port: usize,
        batch: &mut Vec<Data>,
        skipped: &mut Vec<PipelineNodeError>,
    ) -> Result<(), Fatal> {
        let mut port = port;
        for runner in &mut self.runners[from..] {
            if batch.is_empty() {
                break;
            }
            self.scratch.clear();
            runner.process(port, batch, &mut self.scratch, skipped)?;
            std::mem::swap(batch, &mut self.scratch);
            port = 0;
        }
        Ok(())
    }

    /// Pushes a batch arriving on `port` through the whole chain.
    pub(crate) fn push(
        &mut self,
        port: usize,
        batch: &mut Vec<Data>,
        skipped: &mut Vec<PipelineNodeError>,
    ) -> Result<(), Fatal> {
        self.push_from(0, port, batch, skipped)
    }

    /// End of stream: finishes each node in order, pushing what it flushes through the
    /// rest of the chain; returns the chain's final outputs.
    pub(crate) fn finish(
        &mut self,
        skipped: &mut Vec<PipelineNodeError>,
    ) -> Result<Vec<Data>, Fatal> {
        let mut all = Vec::new();
        for i in 0..self.runners.len() {
            let mut flushed = Vec::new();
            self.runners[i].finish(&mut flushed)?;
            self.push_from(i + 1, 0, &mut flushed, skipped)?;
            all.append(&mut flushed);
        }
        Ok(all)
    }

    /// Cleans up every initialized node; returns the cleanup errors.
    pub(crate) fn cleanup(&mut self) -> Vec<Fatal> {
        self.runners
            .iter_mut()
            .filter_map(NodeRunner::cleanup)
            .collect()
    }
}
