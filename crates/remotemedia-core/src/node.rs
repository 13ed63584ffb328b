//! The [`Node`] trait: the unit of work in a pipeline.
//!
//! Lifecycle, driven by the executor: [`Node::initialize`] once, then
//! [`Node::process`] per item, emitting zero, one or many outputs, then
//! [`Node::finish`] at end of stream to flush buffered state, and [`Node::cleanup`]
//! always — also after an error or a panic elsewhere in the pipeline. The executor
//! hands items over in batches through [`Node::process_vec`] (which by default calls
//! [`Node::process_batch`], which by default calls [`Node::process_from`] per item);
//! a node may override either to handle a batch at once.

use crate::data::Data;
use crate::error::NodeError;

/// What a node learns about its place in the pipeline when it is initialized.
#[derive(Clone, Debug, Default)]
pub struct NodeContext {
    /// The node's id in the manifest.
    pub node_id: String,
    /// The node's registered type.
    pub node_type: String,
    /// Ids of the upstream nodes, in port order (port `i` receives from `inputs[i]`).
    /// Empty for a root, which receives the run's inputs on port 0.
    pub inputs: Vec<String>,
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

/// A processing step. Implementations must be `Send`; the executor never calls one
/// node from two threads at once.
pub trait Node: Send {
    /// Called once before the first item.
    fn initialize(&mut self, _ctx: &NodeContext) -> Result<(), NodeError> {
        Ok(())
    }

    /// Processes one item, pushing any outputs onto `out`.
    fn process(&mut self, item: Data, out: &mut Vec<Data>) -> Result<(), NodeError>;

    /// Processes one item that arrived on input `port` (see [`NodeContext::inputs`]).
    /// Nodes that care where an item came from (e.g. `Zip`) override this.
    fn process_from(
        &mut self,
        _port: usize,
        item: Data,
        out: &mut Vec<Data>,
    ) -> Result<(), NodeError> {
        self.process(item, out)
    }

    /// Processes items from `items` until it is empty or an item fails. On failure the
    /// failed item is returned and the rest stay in `items`, so the executor can retry
    /// it and carry on. Override for a faster loop; the result must equal calling
    /// [`Node::process_from`] per item.
    fn process_batch(
        &mut self,
        port: usize,
        items: &mut std::vec::Drain<'_, Data>,
        out: &mut Vec<Data>,
    ) -> Result<(), ItemError> {
        for item in items.by_ref() {
            let kept = item.clone();
            if let Err(error) = self.process_from(port, item, out) {
                return Err(ItemError { item: kept, error });
            }
        }
        Ok(())
    }

    /// Processes a whole batch held in a vector: the executor's entry point. On success
    /// every item was consumed and `items` is left empty; on failure the failed item is
    /// returned, the outputs of the items before it are in `out`, and the items after
    /// it stay in `items` (in order), so the executor can retry or skip it and call
    /// again with the rest.
    ///
    /// The default drains `items` through [`Node::process_batch`]. Override it to work
    /// on the vector as a whole (move it to `out`, update it in place); the result must
    /// equal calling [`Node::process_from`] per item.
    fn process_vec(
        &mut self,
        port: usize,
        items: &mut Vec<Data>,
        out: &mut Vec<Data>,
    ) -> Result<(), ItemError> {
        let mut drain = items.drain(..);
        match self.process_batch(port, &mut drain, out) {
            Ok(()) => Ok(()),
            Err(e) => {
                let rest: Vec<Data> = drain.collect();
                *items = rest;
                Err(e)
            }
        }
    }

    /// Called once at end of stream; may emit buffered outputs.
    fn finish(&mut self, _out: &mut Vec<Data>) -> Result<(), NodeError> {
        Ok(())
    }

    /// Called once at the very end, whatever happened before.
    fn cleanup(&mut self) -> Result<(), NodeError> {
        Ok(())
    }

    /// How the executor may schedule this node.
    fn execution(&self) -> Execution {
        Execution::Inline
    }
}
