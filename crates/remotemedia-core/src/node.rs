//! The [`Node`] trait: the unit of work in a pipeline.
//!
//! Lifecycle, driven by the executor: [`Node::initialize`] once, then
//! [`Node::process`] per item, emitting zero, one or many outputs, then
//! [`Node::finish`] at end of stream to flush buffered state, and [`Node::cleanup`]
//! always — also after an error or a panic elsewhere in the pipeline. The executor
//! hands items over in batches through [`Node::process_batch`], which by default calls
//! [`Node::process_from`] (by default [`Node::process`]) per item; a node may override
//! it to handle a batch at once.
//!
//! Nodes that run batches together with their neighbours (Python nodes of one embedded
//! interpreter) implement the executor-facing [`GroupMember`] extension as well.

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use crate::data::Data;
use crate::error::NodeError;

/// What a node learns about its place in the pipeline when it is initialized.
///
/// Names are shared with the pipeline they come from (building a plan copies none).
#[derive(Clone, Debug, Default)]
pub struct NodeContext {
    /// The node's id in the manifest.
    pub node_id: Arc<str>,
    /// The node's registered type.
    pub node_type: Arc<str>,
    /// Ids of the upstream nodes, in port order (port `i` receives from `inputs[i]`).
    /// Empty for a root, which receives the run's inputs on port 0.
    pub inputs: Arc<[Arc<str>]>,
}

/// How the executor may schedule a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Execution {
    /// Cheap, non-blocking work: fused with its neighbours into one loop.
    Inline,
    /// May block (foreign interpreter, network, device): runs on a thread of its own.
    Dedicated,
}

/// A failed item, handed back so the executor can report or retry it.
#[derive(Debug)]
pub struct ItemError {
    /// The input that failed.
    pub item: Data,
    /// Why it failed.
    pub error: NodeError,
}

/// What one member of a group run did, for its metrics (see
/// [`GroupMember::process_group`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemberRun {
    /// Input items handed to the member (its whole input batch, failed item included).
    pub items_in: u64,
    /// Outputs the member emitted.
    pub items_out: u64,
    /// Time spent in the member.
    pub elapsed: Duration,
}

/// A member of a group run that failed on an item (see [`GroupOutcome`]).
#[derive(Debug)]
pub struct GroupFailure {
    /// The failed input of that member and why it failed.
    pub error: ItemError,
    /// That member's inputs after the failed one, in order, not yet processed.
    pub rest: Vec<Data>,
}

/// What [`GroupMember::process_group`] did.
///
/// `members` has one entry per member that ran, in order, this node first. Every
/// member but the last of them processed its whole input, its outputs being the next
/// member's input. The outputs of the last member that ran are in `out`: all of them
/// when `failure` is `None`, else those of the inputs before the failed one. When fewer
/// members ran than were offered and nothing failed, the executor runs the rest one by
/// one as usual.
#[derive(Debug, Default)]
pub struct GroupOutcome {
    /// Members that ran, in order.
    pub members: Vec<MemberRun>,
    /// The last member's failure, if it failed.
    pub failure: Option<GroupFailure>,
}

/// What a source's [`Node::pull`] says about its stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pull {
    /// More items may follow: the executor calls `pull` again.
    More,
    /// The stream has ended (the items pushed by this call are its last).
    Done,
}

/// A processing step: what a node author writes. Only [`Node::process`] is required;
/// every other method has a default that fits most nodes. Implementations must be
/// `Send`; the executor never calls one node from two threads at once.
pub trait Node: Send {
    /// Called once before the first item.
    fn initialize(&mut self, _ctx: &NodeContext) -> Result<(), NodeError> {
        Ok(())
    }

    /// Processes one item, pushing any outputs (zero, one or many) onto `out`.
    fn process(&mut self, item: Data, out: &mut Vec<Data>) -> Result<(), NodeError>;

    /// Processes one item that arrived on input `port` (see [`NodeContext::inputs`]).
    /// Only nodes with several inputs that care where an item came from (e.g. `Zip`)
    /// override this; the default is [`Node::process`].
    fn process_from(
        &mut self,
        _port: usize,
        item: Data,
        out: &mut Vec<Data>,
    ) -> Result<(), NodeError> {
        self.process(item, out)
    }

    /// Processes a batch of items that arrived on `port`, for nodes that gain from
    /// seeing many at once (a loop without per-item calls, work in place). The result
    /// must equal calling [`Node::process_from`] per item. On success every item was
    /// consumed and `items` is left empty; on failure the failed item is returned with
    /// its error, the outputs of the items before it are in `out`, and the items after
    /// it stay in `items` (in order), so the executor can retry or skip it and go on.
    /// The default does exactly that with [`Node::process_from`].
    fn process_batch(
        &mut self,
        port: usize,
        items: &mut Vec<Data>,
        out: &mut Vec<Data>,
    ) -> Result<(), ItemError> {
        let mut drain = items.drain(..);
        while let Some(item) = drain.next() {
            let kept = item.clone();
            if let Err(error) = self.process_from(port, item, out) {
                let rest: Vec<Data> = drain.collect();
                *items = rest;
                return Err(ItemError { item: kept, error });
            }
        }
        Ok(())
    }

    /// For a source (a node type with [`crate::NodeType::SOURCE`]): pushes the next items
    /// of its stream onto `out` — at most `max`, usually a chunk or a few — and says
    /// whether more follow. The executor calls it in a loop on the source's own thread,
    /// sending each batch downstream before the next call, so a source is paced by its
    /// consumers (backpressure): it never needs to hold its whole stream. After
    /// [`Pull::Done`], [`Node::finish`] is called as for any node. An error ends the run;
    /// the items pulled before it still go downstream. Non-sources are never pulled.
    fn pull(&mut self, max: usize, out: &mut Vec<Data>) -> Result<Pull, NodeError> {
        let _ = (max, out);
        Err(NodeError::new(
            crate::error::ErrorKind::Other,
            "this node type is not a source",
        ))
    }

    /// Called once at end of stream; may emit buffered outputs.
    fn finish(&mut self, _out: &mut Vec<Data>) -> Result<(), NodeError> {
        Ok(())
    }

    /// Called once at the very end, whatever happened before (also after an error).
    fn cleanup(&mut self) -> Result<(), NodeError> {
        Ok(())
    }

    /// How the executor may schedule this node (default: fused inline).
    fn execution(&self) -> Execution {
        Execution::Inline
    }

    /// The node's [`GroupMember`] side, for the few nodes (hosts of a foreign runtime)
    /// that run batches together with their neighbours. Default: none — node authors
    /// never need it.
    fn group_member(&mut self) -> Option<&mut dyn GroupMember> {
        None
    }
}

/// The executor's extension for nodes that run batches together with their
/// neighbours: consecutive nodes of one stage with the same [`GroupMember::group_key`]
/// are handed each batch together through the first one's
/// [`GroupMember::process_group`], so values stay in the runtime's own form between
/// them (the embedded CPython host uses it). Reached through [`Node::group_member`].
pub trait GroupMember: Send {
    /// The kind of group: nodes with equal keys run together. Keys must be unique to
    /// the kind of group (use the address of a static). Asked once per run.
    fn group_key(&self) -> usize;

    /// Runs `items` (arriving on `port`) through this node, then its output through
    /// `rest` (the following members of its group, in order), and so on; see
    /// [`GroupOutcome`] for what must be left where. Retries, `on_error` and metrics
    /// stay the executor's: a member that fails is reported, not retried.
    fn process_group(
        &mut self,
        port: usize,
        items: &mut Vec<Data>,
        rest: &mut [&mut dyn Node],
        out: &mut Vec<Data>,
    ) -> GroupOutcome;

    /// The node as [`Any`], so that a group's first member can reach the others' state.
    fn as_any_mut(&mut self) -> &mut dyn Any;
}

/// A group run of `node` alone: [`Node::process_batch`] on the batch, reported as a
/// [`GroupOutcome`] of one member (what a group's first member falls back to when it
/// cannot reach the others).
pub fn process_alone<N: Node + ?Sized>(
    node: &mut N,
    port: usize,
    items: &mut Vec<Data>,
    out: &mut Vec<Data>,
) -> GroupOutcome {
    let items_in = items.len() as u64;
    let start = std::time::Instant::now();
    let before = out.len();
    let failure = node
        .process_batch(port, items, out)
        .err()
        .map(|error| GroupFailure {
            error,
            rest: std::mem::take(items),
        });
    GroupOutcome {
        members: vec![MemberRun {
            items_in,
            items_out: (out.len() - before) as u64,
            elapsed: start.elapsed(),
        }],
        failure,
    }
}

/// Batch helper: hands a fully processed batch to `out`: moves the vector itself when `out` is
/// empty (no per-item moves), appends otherwise. Leaves `items` empty.
#[inline]
pub fn emit_all(items: &mut Vec<Data>, out: &mut Vec<Data>) {
    if out.is_empty() {
        std::mem::swap(items, out);
    } else {
        out.append(items);
    }
}

/// Batch helper: splits a batch processed in place at the item `k` that failed: items `..k` (already
/// processed) go to `out`, items after `k` stay in `items`, and item `k` is returned
/// with `error`.
pub fn fail_at(
    items: &mut Vec<Data>,
    k: usize,
    out: &mut Vec<Data>,
    error: NodeError,
) -> ItemError {
    let rest = items.split_off(k + 1);
    let item = items.pop().expect("the failed item is in the batch");
    out.append(items);
    *items = rest;
    ItemError { item, error }
}
