//! Running a fused chain: lifecycle calls, retries, panics and metrics per node.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Instant;

use crate::data::Data;
use crate::error::{ErrorKind, NodeError, Phase, PipelineNodeError};
use crate::manifest::OnError;
use crate::metrics::{NodeCounters, NodeMetrics};
use crate::node::{GroupOutcome, ItemError, Node, Pull};
use crate::plan::PlannedNode;

use super::trace::{millis, node_span};
use super::CancelToken;
use tracing::Span;

/// Length of input previews in error messages.
const PREVIEW_CHARS: usize = 120;

/// What the executor keeps per node while it runs: counters and lifecycle flags.
/// Lives inside [`PlannedNode`], so starting a run moves no node and allocates nothing.
#[derive(Debug)]
pub(crate) struct NodeState {
    pub(crate) counters: NodeCounters,
    initialized: bool,
    cleaned_up: bool,
    /// Members of the node group starting at this node (see `Node::group_key`); 0 or
    /// 1 when it heads none.
    group_len: usize,
    /// The run's cancellation, checked before each call and during back-offs (none
    /// when the run cannot be cancelled: no clone, no check).
    cancel: Option<CancelToken>,
    /// The node's span, entered around each call (none until its chain gets a stage
    /// span, and whenever logs at its level are off).
    span: Span,
}

impl Default for NodeState {
    fn default() -> Self {
        Self {
            counters: NodeCounters::default(),
            initialized: false,
            cleaned_up: false,
            group_len: 0,
            cancel: None,
            span: Span::none(),
        }
    }
}

/// A planned node with its run state: the unit a chain drives.
pub(crate) type NodeRunner = PlannedNode;

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

impl PlannedNode {
    fn error(&self, phase: Phase, e: NodeError, input: Option<&Data>, attempts: u32) -> Fatal {
        Box::new(PipelineNodeError {
            node_id: self.ctx.node_id.to_string(),
            node_type: self.ctx.node_type.to_string(),
            phase,
            kind: e.kind,
            message: e.message,
            input_preview: input.map(|d| d.preview(PREVIEW_CHARS)),
            traceback: e.traceback,
            attempts,
        })
    }

    fn is_cancelled(&self) -> bool {
        self.state
            .cancel
            .as_ref()
            .is_some_and(CancelToken::is_cancelled)
    }

    /// The error of a call not made because the run was cancelled.
    fn cancelled(&self, input: Option<&Data>) -> Fatal {
        let e = NodeError::new(ErrorKind::Cancelled, "the run was cancelled");
        self.error(Phase::Process, e, input, 1)
    }

    /// Runs `f` inside the node's span. The span is moved out meanwhile (not cloned),
    /// so `f` has the whole node; without a span this is one check.
    fn traced<R>(&mut self, f: impl FnOnce(&mut Self) -> R) -> R {
        if self.state.span.is_none() {
            return f(self);
        }
        let span = std::mem::replace(&mut self.state.span, Span::none());
        let r = span.in_scope(|| f(self));
        self.state.span = span;
        r
    }

    pub(crate) fn initialize(&mut self) -> Result<(), Fatal> {
        self.traced(|n| {
            let start = Instant::now();
            let r = n.initialize_untraced();
            match &r {
                Ok(()) => {
                    tracing::debug!(duration_ms = millis(start.elapsed()), "node initialized")
                }
                Err(e) => tracing::debug!(
                    duration_ms = millis(start.elapsed()),
                    error = %e,
                    "node failed to initialize"
                ),
            }
            r
        })
    }

    fn initialize_untraced(&mut self) -> Result<(), Fatal> {
        let ctx = &self.ctx;
        let node = &mut self.node;
        let r = catch_unwind(AssertUnwindSafe(|| node.initialize(ctx)));
        // Cleanup is owed even when initialize fails half-way.
        self.state.initialized = true;
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
        if !self.state.initialized || self.state.cleaned_up {
            return None;
        }
        self.state.cleaned_up = true;
        self.traced(|n| {
            let node = &mut n.node;
            let r = match catch_unwind(AssertUnwindSafe(|| node.cleanup())) {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(n.error(Phase::Cleanup, e, None, 1)),
                Err(p) => Some(n.error(Phase::Cleanup, panic_error(&*p), None, 1)),
            };
            let c = &n.state.counters;
            match &r {
                None => tracing::debug!(
                    items_in = c.items_in,
                    items_out = c.items_out,
                    errors = c.errors,
                    retries = c.retries,
                    busy_ms = millis(c.busy),
                    "node cleaned up"
                ),
                Some(e) => tracing::debug!(error = %e, "node cleanup failed"),
            }
            r
        })
    }

    /// Processes every item of `input` into `out`, leaving `input` empty. Failed items
    /// are retried per the node's policy; with `on_error: skip` a failure is pushed to
    /// `skipped` and the rest of the batch goes on, otherwise it is returned.
    ///
    /// `clock` is the time the call started; it is moved to the time it ended, so a
    /// chain reads the clock once per node rather than twice.
    pub(crate) fn process(
        &mut self,
        port: usize,
        input: &mut Vec<Data>,
        out: &mut Vec<Data>,
        skipped: &mut Vec<PipelineNodeError>,
        clock: &mut Instant,
    ) -> Result<(), Fatal> {
        let n_in = input.len() as u64;
        let out_before = out.len();
        self.state.counters.items_in += n_in;
        let result = self.traced(|n| n.drive(port, input, out, skipped));
        let now = Instant::now();
        self.state
            .counters
            .record_call(n_in, now.saturating_duration_since(*clock));
        *clock = now;
        self.state.counters.items_out += (out.len() - out_before) as u64;
        result
    }

    /// Hands `input` to the node batch-wise until it is consumed, retrying or skipping
    /// failed items; leaves `input` empty.
    fn drive(
        &mut self,
        port: usize,
        input: &mut Vec<Data>,
        out: &mut Vec<Data>,
        skipped: &mut Vec<PipelineNodeError>,
    ) -> Result<(), Fatal> {
        let result = loop {
            if input.is_empty() {
                break Ok(());
            }
            if self.is_cancelled() {
                break Err(self.cancelled(input.first()));
            }
            let node = &mut self.node;
            let r = catch_unwind(AssertUnwindSafe(|| node.process_batch(port, input, out)));
            match r {
                Ok(Ok(())) => break Ok(()),
                Ok(Err(ItemError { item, error })) => {
                    if let Err(fatal) = self.retry_or_skip(port, item, error, out, skipped) {
                        break Err(fatal);
                    }
                }
                Err(p) => {
                    self.state.counters.errors += 1;
                    break Err(self.error(Phase::Process, panic_error(&*p), None, 1));
                }
            }
        };
        input.clear();
        result
    }

    /// Carries on after this node failed on an item inside a group run: the item is
    /// retried or skipped per the policy, then `rest` goes through the node as usual.
    /// Its items were counted by the group run already.
    fn resume(
        &mut self,
        port: usize,
        failed: ItemError,
        mut rest: Vec<Data>,
        out: &mut Vec<Data>,
        skipped: &mut Vec<PipelineNodeError>,
    ) -> Result<(), Fatal> {
        let start = Instant::now();
        let before = out.len();
        let result = self.traced(|n| {
            n.retry_or_skip(port, failed.item, failed.error, out, skipped)
                .and_then(|()| n.drive(port, &mut rest, out, skipped))
        });
        self.state.counters.busy += start.elapsed();
        self.state.counters.items_out += (out.len() - before) as u64;
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
        if let Some(policy) = self.retry.clone() {
            while attempts <= policy.max_retries
                && error.kind != ErrorKind::Panic
                && error.kind != ErrorKind::Cancelled
            {
                let backoff = policy.backoff(attempts);
                tracing::debug!(
                    attempt = attempts + 1,
                    max_attempts = policy.max_retries + 1,
                    backoff_ms = millis(backoff),
                    kind = %error.kind,
                    error = %error.message,
                    "retrying a failed item"
                );
                let slept = match &self.state.cancel {
                    Some(c) => c.sleep(backoff),
                    None => {
                        std::thread::sleep(backoff);
                        true
                    }
                };
                if !slept {
                    return Err(self.cancelled(Some(&item)));
                }
                attempts += 1;
                self.state.counters.retries += 1;
                let node = &mut self.node;
                let again = item.clone();
                match catch_unwind(AssertUnwindSafe(|| node.process_from(port, again, out))) {
                    Ok(Ok(())) => {
                        tracing::debug!(attempts, "a retry succeeded");
                        return Ok(());
                    }
                    Ok(Err(e)) => error = e,
                    Err(p) => error = panic_error(&*p),
                }
            }
        }
        self.state.counters.errors += 1;
        let fatal = self.error(Phase::Process, error, Some(&item), attempts);
        if self.on_error == OnError::Skip
            && fatal.kind != ErrorKind::Panic
            && fatal.kind != ErrorKind::Cancelled
        {
            // Not a warning: the run's result reports it (`skipped`), and whoever runs
            // the pipeline says so once.
            tracing::debug!(
                node = %fatal.node_id,
                attempts,
                kind = %fatal.kind,
                "skipping failed item (on_error: skip): {fatal}"
            );
            skipped.push(*fatal);
            Ok(())
        } else {
            Err(fatal)
        }
    }

    /// Pulls the next items of a source into `out` (see `Node::pull`); `clock` as in
    /// [`NodeRunner::process`]. A failed pull is fatal: a source's stream cannot be
    /// retried item by item.
    pub(crate) fn pull(
        &mut self,
        max: usize,
        out: &mut Vec<Data>,
        clock: &mut Instant,
    ) -> Result<Pull, Fatal> {
        if self.is_cancelled() {
            return Err(self.cancelled(None));
        }
        let before = out.len();
        let node = &mut self.node;
        let r = catch_unwind(AssertUnwindSafe(|| node.pull(max, out)));
        let now = Instant::now();
        let n_out = (out.len() - before) as u64;
        self.state
            .counters
            .record_call(n_out, now.saturating_duration_since(*clock));
        *clock = now;
        self.state.counters.items_out += n_out;
        match r {
            Ok(Ok(p)) => Ok(p),
            Ok(Err(e)) => {
                self.state.counters.errors += 1;
                Err(self.error(Phase::Process, e, None, 1))
            }
            Err(p) => {
                self.state.counters.errors += 1;
                Err(self.error(Phase::Process, panic_error(&*p), None, 1))
            }
        }
    }

    /// Calls the node's `finish`; `clock` as in [`NodeRunner::process`].
    pub(crate) fn finish(&mut self, out: &mut Vec<Data>, clock: &mut Instant) -> Result<(), Fatal> {
        // A cancelled run flushes nothing more.
        if self.is_cancelled() {
            let e = NodeError::new(ErrorKind::Cancelled, "the run was cancelled");
            return Err(self.error(Phase::Finish, e, None, 1));
        }
        let before = out.len();
        let node = &mut self.node;
        let r = catch_unwind(AssertUnwindSafe(|| node.finish(out)));
        let now = Instant::now();
        self.state.counters.busy += now.saturating_duration_since(*clock);
        *clock = now;
        self.state.counters.items_out += (out.len() - before) as u64;
        match r {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(self.error(Phase::Finish, e, None, 1)),
            Err(p) => Err(self.error(Phase::Finish, panic_error(&*p), None, 1)),
        }
    }

    /// Metrics of this node with its manifest index (the names are shared, not copied).
    pub(crate) fn metrics(&self) -> (usize, NodeMetrics) {
        (
            self.index,
            self.state.counters.snapshot_owned(
                Arc::clone(&self.ctx.node_id),
                Arc::clone(&self.ctx.node_type),
            ),
        )
    }
}

/// The group a node runs batches with (see [`crate::node::GroupMember`]), if any.
fn group_key(node: &mut dyn Node) -> Option<usize> {
    node.group_member().map(|m| m.group_key())
}

/// A fused chain of node runners with a scratch buffer reused across batches.
#[derive(Default)]
pub(crate) struct Chain {
    pub(crate) runners: Vec<NodeRunner>,
    scratch: Vec<Data>,
}

impl Chain {
    pub(crate) fn new(mut nodes: Vec<PlannedNode>) -> Self {
        // Node groups: runs of consecutive nodes with the same key.
        let mut i = 0;
        while i < nodes.len() {
            let key = group_key(&mut *nodes[i].node);
            let mut end = i + 1;
            if key.is_some() {
                while end < nodes.len() && group_key(&mut *nodes[end].node) == key {
                    end += 1;
                }
            }
            nodes[i].state.group_len = end - i;
            if end - i > 1 {
                tracing::debug!(
                    nodes = %super::trace::NodeList(&nodes[i..end]),
                    "node group: these nodes get each batch together, in one call"
                );
            }
            i = end;
        }
        Self {
            runners: nodes,
            scratch: Vec::new(),
        }
    }

    /// Gives every node a span, a child of the stage's `span`.
    pub(crate) fn set_span(&mut self, span: &Span) {
        if span.is_none() {
            return;
        }
        for r in &mut self.runners {
            r.state.span = node_span(span, r);
        }
    }

    /// Makes every node of the chain watch `cancel`.
    pub(crate) fn set_cancel(&mut self, cancel: &CancelToken) {
        if !cancel.can_cancel() {
            return;
        }
        for r in &mut self.runners {
            r.state.cancel = Some(cancel.clone());
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
    /// chain's output replaces the contents of `batch`. `clock` as in
    /// [`NodeRunner::process`].
    ///
    /// When a node fails, the outputs it produced for the items before the failing one
    /// still go through the rest of the chain and end up in `batch`: what was accepted
    /// before a failure is not lost. The first failure is returned.
    fn push_from(
        &mut self,
        from: usize,
        port: usize,
        batch: &mut Vec<Data>,
        skipped: &mut Vec<PipelineNodeError>,
        clock: &mut Instant,
    ) -> Result<(), Fatal> {
        let mut port = port;
        let mut i = from;
        while i < self.runners.len() {
            if batch.is_empty() {
                break;
            }
            self.scratch.clear();
            let (result, next) = if self.runners[i].state.group_len > 1 {
                self.push_group(i, port, batch, skipped, clock)
            } else {
                let r = self.runners[i].process(port, batch, &mut self.scratch, skipped, clock);
                (r.map_err(|f| (f, i)), i + 1)
            };
            std::mem::swap(batch, &mut self.scratch);
            if let Err((fatal, at)) = result {
                // Later failures on these partial outputs are secondary to this one.
                let _ = self.push_from(at + 1, 0, batch, skipped, clock);
                return Err(fatal);
            }
            port = 0;
            i = next;
        }
        Ok(())
    }

    /// Runs the node group starting at `head` on `batch` (see `Node::process_group`),
    /// leaving the outputs in the scratch buffer. Returns the result with the index of
    /// the node that failed, and the index of the next node to run.
    #[allow(clippy::type_complexity)]
    fn push_group(
        &mut self,
        head: usize,
        port: usize,
        batch: &mut Vec<Data>,
        skipped: &mut Vec<PipelineNodeError>,
        clock: &mut Instant,
    ) -> (Result<(), (Fatal, usize)>, usize) {
        let end = head + self.runners[head].state.group_len;
        let out = &mut self.scratch;
        let (first, later) = self.runners.split_at_mut(head + 1);
        let leader = &mut first[head];
        let mut rest: Vec<&mut dyn Node> = later[..end - head - 1]
            .iter_mut()
            .map(|r| &mut *r.node as &mut dyn Node)
            .collect();
        // The group's call runs in the span of its first node.
        let span = std::mem::replace(&mut leader.state.span, Span::none()).entered();
        let node = &mut leader.node;
        let run = catch_unwind(AssertUnwindSafe(|| match node.group_member() {
            Some(member) => member.process_group(port, batch, &mut rest, out),
            None => crate::node::process_alone(&mut **node, port, batch, out),
        }));
        leader.state.span = span.exit();
        drop(rest);
        *clock = Instant::now();
        let GroupOutcome { members, failure } = match run {
            Ok(outcome) => outcome,
            Err(p) => {
                leader.state.counters.items_in += batch.len() as u64;
                leader.state.counters.errors += 1;
                batch.clear();
                let fatal = leader.error(Phase::Process, panic_error(&*p), None, 1);
                return (Err((fatal, head)), head + 1);
            }
        };
        batch.clear();
        for (runner, m) in self.runners[head..end].iter_mut().zip(&members) {
            let c = &mut runner.state.counters;
            c.items_in += m.items_in;
            c.items_out += m.items_out;
            c.record_call(m.items_in, m.elapsed);
        }
        let ran = members.len().clamp(1, end - head);
        let Some(failure) = failure else {
            return (Ok(()), head + ran);
        };
        let at = head + ran - 1;
        let port = if at == head { port } else { 0 };
        let result = self.runners[at].resume(
            port,
            failure.error,
            failure.rest,
            &mut self.scratch,
            skipped,
        );
        *clock = Instant::now();
        (result.map_err(|f| (f, at)), at + 1)
    }

    /// Pushes a batch arriving on `port` through the whole chain. `clock` is a recent
    /// time with nothing but executor bookkeeping since; it ends as the time the last
    /// node returned (see [`NodeRunner::process`]).
    pub(crate) fn push(
        &mut self,
        port: usize,
        batch: &mut Vec<Data>,
        skipped: &mut Vec<PipelineNodeError>,
        clock: &mut Instant,
    ) -> Result<(), Fatal> {
        self.push_from(0, port, batch, skipped, clock)
    }

    /// Pulls the next items from the chain's head, a source, and pushes them through
    /// the rest of the chain; the chain's output replaces the contents of `batch`.
    /// When the pull or a node fails, what was pulled before still goes through (see
    /// [`Chain::push`]) and the first failure is returned.
    pub(crate) fn pull(
        &mut self,
        max: usize,
        batch: &mut Vec<Data>,
        skipped: &mut Vec<PipelineNodeError>,
        clock: &mut Instant,
    ) -> Result<Pull, Fatal> {
        batch.clear();
        let pulled = self.runners[0].traced(|r| r.pull(max, batch, clock));
        let pushed = self.push_from(1, 0, batch, skipped, clock);
        let state = pulled?;
        pushed?;
        Ok(state)
    }

    /// End of stream: finishes each node in order, pushing what it flushes through the
    /// rest of the chain; appends the chain's final outputs to `out`. `clock` as in
    /// [`Chain::push`].
    pub(crate) fn finish(
        &mut self,
        out: &mut Vec<Data>,
        skipped: &mut Vec<PipelineNodeError>,
        clock: &mut Instant,
    ) -> Result<(), Fatal> {
        for i in 0..self.runners.len() {
            let mut flushed = Vec::new();
            let finished = self.runners[i].traced(|r| r.finish(&mut flushed, clock));
            // What a node flushed before failing still goes downstream (see `push_from`).
            let pushed = self.push_from(i + 1, 0, &mut flushed, skipped, clock);
            crate::nodes::emit_all(&mut flushed, out);
            finished?;
            pushed?;
        }
        Ok(())
    }

    /// Metrics of every node of `chains`, in manifest order.
    pub(crate) fn metrics(chains: &[Chain]) -> Vec<NodeMetrics> {
        // Snapshots taken in place (the large node runners are not moved), straight
        // into a vector of the final size when the nodes are already in manifest order.
        let runners = || chains.iter().flat_map(|c| c.runners.iter());
        let in_order = runners().enumerate().all(|(k, r)| r.index == k);
        if in_order {
            let mut all = Vec::with_capacity(runners().count());
            all.extend(runners().map(|r| r.metrics().1));
            return all;
        }
        super::in_manifest_order(runners().map(NodeRunner::metrics).collect())
    }

    /// Cleans up every initialized node; returns the cleanup errors.
    pub(crate) fn cleanup(&mut self) -> Vec<Fatal> {
        self.runners
            .iter_mut()
            .filter_map(NodeRunner::cleanup)
            .collect()
    }
}
